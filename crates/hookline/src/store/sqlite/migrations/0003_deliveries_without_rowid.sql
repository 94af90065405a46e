-- Keyed by hooksId without a separate rowid: one B-tree less to write per delivery.
CREATE TABLE deliveries_by_id (
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
) WITHOUT ROWID;
INSERT INTO deliveries_by_id SELECT hooks_id, app_key, config_id, product, event, status,
    attempt_count, next_attempt_at, created_at, updated_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_id RENAME TO deliveries;
CREATE INDEX deliveries_log ON deliveries (app_key, created_at DESC, hooks_id DESC);
CREATE INDEX deliveries_by_config ON deliveries (config_id, created_at);
CREATE INDEX deliveries_by_status ON deliveries (status, updated_at);
-- Retention must know whether a hook is still queued for some config.
CREATE INDEX queue_by_hook ON queue (hook_seq);
