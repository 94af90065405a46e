-- An ordered claim reads its config's queue in order with each row's key and event: with the
-- key in this index (and the primary key's event, which every entry of an index of a WITHOUT
-- ROWID table carries), that read never visits the table. A NULL key (unordered configs)
-- adds one byte to an entry.
DROP INDEX queue_by_config_seq;
CREATE INDEX queue_by_config_seq ON queue (config_id, hook_seq, ordering_key);
