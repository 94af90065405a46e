-- Every queued row was written to the heap and three indexes at ingest (the primary key,
-- queue_by_config_seq and this one), and its dead entries in each were left for vacuum after
-- the claim. Retention and a hook's trace stopped reading this index (they probe
-- queue_by_config_seq once per config of the hook's app key); it was kept while nodes of those
-- earlier versions could still run beside new ones. Such a node still works without it (its
-- retention and trace scan the queue instead).
DROP INDEX IF EXISTS queue_by_hook;
