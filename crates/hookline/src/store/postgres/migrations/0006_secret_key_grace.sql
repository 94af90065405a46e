-- A secret-key rotation with a grace period: the replaced key keeps working until it expires.
ALTER TABLE app_keys ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE app_keys ADD COLUMN previous_secret_expires_at BIGINT;
CREATE INDEX app_keys_by_previous_secret ON app_keys (previous_secret_hash)
    WHERE previous_secret_hash IS NOT NULL;
