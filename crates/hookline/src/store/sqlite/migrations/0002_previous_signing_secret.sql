ALTER TABLE webhook_configs ADD COLUMN previous_signing_secret TEXT;
ALTER TABLE webhook_configs ADD COLUMN previous_signing_secret_expires_at INTEGER;
