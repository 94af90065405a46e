CREATE TABLE app_keys (
    app_key     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);
CREATE TABLE webhook_configs (
    id                   TEXT PRIMARY KEY,
    app_key              TEXT NOT NULL,
    product              TEXT NOT NULL,
    events               TEXT NOT NULL,
    url                  TEXT NOT NULL,
    signature            TEXT NOT NULL,
    signing_secret       TEXT,
    enabled              INTEGER NOT NULL,
    description          TEXT NOT NULL,
    max_hooks            INTEGER NOT NULL,
    max_in_flight        INTEGER NOT NULL,
    timeout_ms           INTEGER NOT NULL,
    retry_schedule       TEXT NOT NULL,
    health_state         TEXT NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    last_success_at      INTEGER,
    last_failure_at      INTEGER,
    failing_since        INTEGER,
    disabled_reason      TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX webhook_configs_by_app_key ON webhook_configs (app_key, id);
-- Enabled configs by what they receive: the fan-out lookup of ingest.
CREATE TABLE subscriptions (
    app_key   TEXT NOT NULL,
    product   TEXT NOT NULL,
    event     TEXT NOT NULL,
    config_id TEXT NOT NULL,
    PRIMARY KEY (app_key, product, event, config_id)
) WITHOUT ROWID;
CREATE INDEX subscriptions_by_config ON subscriptions (config_id);
-- Each accepted hook once, its normalised JSON stored as received.
CREATE TABLE hooks (
    seq        INTEGER PRIMARY KEY,
    app_key    TEXT NOT NULL,
    hook_id    TEXT NOT NULL,
    product    TEXT NOT NULL,
    event      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (app_key, hook_id)
);
-- Hooks waiting for a config, not yet in a delivery.
CREATE TABLE queue (
    config_id TEXT NOT NULL,
    event     TEXT NOT NULL,
    hook_seq  INTEGER NOT NULL,
    PRIMARY KEY (config_id, event, hook_seq)
) WITHOUT ROWID;
CREATE TABLE deliveries (
    hooks_id        TEXT PRIMARY KEY,
    app_key         TEXT NOT NULL,
    config_id       TEXT NOT NULL,
    product         TEXT NOT NULL,
    event           TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt_count   INTEGER NOT NULL,
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX deliveries_log ON deliveries (app_key, created_at DESC, hooks_id DESC);
CREATE INDEX deliveries_by_config ON deliveries (config_id, created_at);
CREATE INDEX deliveries_open ON deliveries (status) WHERE status IN ('PENDING', 'RETRYING');
CREATE TABLE delivery_hooks (
    hooks_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    hook_seq INTEGER NOT NULL,
    PRIMARY KEY (hooks_id, position)
) WITHOUT ROWID;
CREATE INDEX delivery_hooks_by_hook ON delivery_hooks (hook_seq);
CREATE TABLE attempts (
    hooks_id      TEXT NOT NULL,
    number        INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    status_code   INTEGER,
    error_kind    TEXT,
    error_message TEXT,
    response_body TEXT,
    PRIMARY KEY (hooks_id, number)
) WITHOUT ROWID;
