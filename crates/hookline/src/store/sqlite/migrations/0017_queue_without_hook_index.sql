-- Every queued row was written to three b-trees (the primary key, queue_by_config_seq and this
-- index) at ingest and deleted from three at claim, for two rare readers: retention asking
-- whether a hook is still queued, and a hook's trace. Both now ask the hook's app key's configs
-- through queue_by_config_seq (a queue row always belongs to a config of its hook's app key), so
-- the hot paths write two b-trees per queued hook.
DROP INDEX queue_by_hook;
