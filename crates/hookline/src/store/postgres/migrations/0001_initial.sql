CREATE TABLE app_keys (
    app_key     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);
CREATE TABLE webhook_configs (
    id                   TEXT PRIMARY KEY,
    app_key              TEXT NOT NULL,
    product              TEXT NOT NULL,
    events               TEXT NOT NULL,
    url                  TEXT NOT NULL,
    signature            TEXT NOT NULL,
    signing_secret       TEXT,
    enabled              BOOLEAN NOT NULL,
    description          TEXT NOT NULL,
    max_hooks            BIGINT NOT NULL,
    max_in_flight        BIGINT NOT NULL,
    timeout_ms           BIGINT NOT NULL,
    retry_schedule       TEXT NOT NULL,
    health_state         TEXT NOT NULL,
    consecutive_failures BIGINT NOT NULL,
    last_success_at      BIGINT,
    last_failure_at      BIGINT,
    failing_since        BIGINT,
    disabled_reason      TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    previous_signing_secret TEXT,
    previous_signing_secret_expires_at BIGINT
);
CREATE INDEX webhook_configs_by_app_key ON webhook_configs (app_key, id);
CREATE TABLE subscriptions (
    app_key   TEXT NOT NULL,
    product   TEXT NOT NULL,
    event     TEXT NOT NULL,
    config_id TEXT NOT NULL,
    PRIMARY KEY (app_key, product, event, config_id)
);
CREATE INDEX subscriptions_by_config ON subscriptions (config_id);
CREATE TABLE hooks (
    seq        BIGSERIAL PRIMARY KEY,
    app_key    TEXT NOT NULL,
    hook_id    TEXT NOT NULL,
    product    TEXT NOT NULL,
    event      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (app_key, hook_id)
);
CREATE TABLE queue (
    config_id TEXT NOT NULL,
    event     TEXT NOT NULL,
    hook_seq  BIGINT NOT NULL,
    PRIMARY KEY (config_id, event, hook_seq)
);
-- A claim picks the event of the config's oldest queued hook.
CREATE INDEX queue_by_config_seq ON queue (config_id, hook_seq);
CREATE INDEX queue_by_hook ON queue (hook_seq);
CREATE TABLE deliveries (
    hooks_id        TEXT PRIMARY KEY,
    app_key         TEXT NOT NULL,
    config_id       TEXT NOT NULL,
    product         TEXT NOT NULL,
    event           TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt_count   BIGINT NOT NULL,
    next_attempt_at BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_log ON deliveries (app_key, created_at DESC, hooks_id DESC);
CREATE INDEX deliveries_by_config ON deliveries (config_id, created_at);
CREATE INDEX deliveries_by_status ON deliveries (status, updated_at);
CREATE TABLE delivery_hooks (
    hooks_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    hook_seq BIGINT NOT NULL,
    PRIMARY KEY (hooks_id, position)
);
CREATE INDEX delivery_hooks_by_hook ON delivery_hooks (hook_seq);
CREATE TABLE attempts (
    hooks_id      TEXT NOT NULL,
    number        BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    status_code   BIGINT,
    error_kind    TEXT,
    error_message TEXT,
    response_body TEXT,
    PRIMARY KEY (hooks_id, number)
);
