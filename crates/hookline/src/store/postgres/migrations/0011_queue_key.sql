-- One index fewer for every queued row to write (ingest) and delete (claim): a hook has one event,
-- so (config_id, hook_seq) is a key on its own, and its index gives a config's rows oldest first,
-- which is all that queue_by_config_seq was for. The old key (config_id, event, hook_seq) and that
-- index go. Building the new key locks the queue for as long as it takes (seconds for a queue of
-- millions): nodes still running meanwhile see their ingests and claims fail after
-- --pg-lock-timeout, answered 503 or tried again, as for any lock.
ALTER TABLE queue DROP CONSTRAINT queue_pkey;
DROP INDEX queue_by_config_seq;
ALTER TABLE queue ADD CONSTRAINT queue_pkey PRIMARY KEY (config_id, hook_seq);
