-- Custom request headers per config: a JSON array of [name, value] pairs, NULL when none.
ALTER TABLE webhook_configs ADD COLUMN headers TEXT;
