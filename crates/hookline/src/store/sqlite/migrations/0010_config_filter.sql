-- Payload filters per config: the filter's JSON as the customer wrote it, NULL when none.
ALTER TABLE webhook_configs ADD COLUMN filter TEXT;
