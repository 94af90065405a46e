-- Test sends (the `test` route) are logged as finished deliveries marked as tests: they are never
-- retried, redelivered or replayed, and the log shows the marker.
ALTER TABLE deliveries ADD COLUMN test BOOLEAN NOT NULL DEFAULT FALSE;
