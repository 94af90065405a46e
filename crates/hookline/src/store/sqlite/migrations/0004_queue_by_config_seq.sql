-- A claim starts with the event of the config's oldest queued hook: one probe of this index
-- instead of one MIN(hook_seq) per event of the product.
CREATE INDEX queue_by_config_seq ON queue (config_id, hook_seq);
