-- The queue keyed by (config_id, hook_seq): a hook's event is the hook's, so a config has at most
-- one row per hook and the event need not be part of the key. Every queued hook was written to
-- two indexes at ingest, the primary key (config_id, event, hook_seq) and queue_by_config_seq
-- (config_id, hook_seq), and each was probed once more by ingest's ON CONFLICT: one index and its
-- probe were about a third of an ingest's database time at 100 hooks per request. A claim reads
-- the config's rows in hook order through the new key and keeps those of the oldest row's event.
-- Not for a rolling upgrade: a node of an earlier version claims with the event in its scan, and
-- on this key its plan may read and sort every row queued for the config (README).
-- The ALTERs hold the queue's lock while the key is built: ingests and claims wait (the queue
-- holds what is waiting to be delivered, usually little: a million rows take under a second).
ALTER TABLE queue DROP CONSTRAINT queue_pkey;
DROP INDEX IF EXISTS queue_by_config_seq;
ALTER TABLE queue ADD CONSTRAINT queue_pkey PRIMARY KEY (config_id, hook_seq);
