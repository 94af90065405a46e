-- orderingKey per config: the top-level hook field whose value orders its deliveries (NULL: none).
ALTER TABLE webhook_configs ADD COLUMN ordering_key TEXT;
-- The hook's value of its config's orderingKey, computed once at ingest's fan-out (NULL: the
-- config is not ordered, or the hook has no value). Copied to delivery_hooks by a claim, so a key
-- held by an open delivery is known from stored rows alone (after a restart too).
ALTER TABLE queue ADD COLUMN ordering_key TEXT;
ALTER TABLE delivery_hooks ADD COLUMN ordering_key TEXT;
