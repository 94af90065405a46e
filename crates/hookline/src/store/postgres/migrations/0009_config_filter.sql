-- Payload filters per config: the filter's JSON as the customer wrote it, and the same filter as
-- a jsonpath predicate, which ingest's fan-out evaluates in its one statement. NULL when none.
ALTER TABLE webhook_configs ADD COLUMN filter TEXT, ADD COLUMN filter_path jsonpath;
