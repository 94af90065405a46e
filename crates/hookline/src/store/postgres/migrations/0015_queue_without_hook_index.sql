-- Every queued row was written to the heap and three indexes (the primary key,
-- queue_by_config_seq and this one), each change in the WAL a commit waits for, for two rare
-- readers: retention asking whether a hook is still queued, and a hook's trace. Both now ask
-- the hook's app key's configs through queue_by_config_seq (a queue row always belongs to a
-- config of its hook's app key).
DROP INDEX IF EXISTS queue_by_hook;
