-- The queue keyed by (config_id, hook_seq): a hook's event is the hook's, so a config has at most
-- one row per hook and the event need not be part of the key. Every queued hook was written to
-- two indexes at ingest, the primary key (config_id, event, hook_seq) and queue_by_config_seq
-- (config_id, hook_seq), and each was probed once more by ingest's ON CONFLICT: one index and its
-- probe of 20-30 % of an ingest's database time at 100 hooks per request. A claim reads the
-- config's rows in hook order through the new key and keeps those of the oldest row's event.
-- Nodes of earlier versions still work beside this schema: their claims filter the event while
-- walking the same key, and their ingests' ON CONFLICT names no constraint.
-- The ALTERs hold the queue's lock while the key is built: ingests and claims wait (the queue
-- holds what is waiting to be delivered, usually little).
ALTER TABLE queue DROP CONSTRAINT queue_pkey;
DROP INDEX IF EXISTS queue_by_config_seq;
ALTER TABLE queue ADD CONSTRAINT queue_pkey PRIMARY KEY (config_id, hook_seq);
