-- Deliveries, their hooks and their attempts stored in the order they are made. hooksIds are a
-- second's timestamp and random characters, so three b-trees keyed by hooksId (the deliveries,
-- delivery_hooks and attempts) took every new row, and every record's update of its delivery,
-- at a random page among the current second's: at thousands of one-hook deliveries a second,
-- nearly one page per b-tree per delivery in every commit (about five 4 KiB WAL frames per
-- hook). Keyed by a seq, they append; the hooksId keeps one index of small entries.
-- Existing deliveries get seqs in hooksId order (the primary key's: no sort, and a hooksId
-- starts with its second). Attempts and hooks of deliveries that no longer exist (an attempt
-- record written after retention removed its delivery) are not copied.
CREATE TABLE deliveries_by_seq (
    seq             INTEGER PRIMARY KEY,
    hooks_id        TEXT NOT NULL,
    app_key         TEXT NOT NULL,
    config_id       TEXT NOT NULL,
    product         TEXT NOT NULL,
    event           TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt_count   INTEGER NOT NULL,
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    test            INTEGER NOT NULL DEFAULT 0
);
INSERT INTO deliveries_by_seq (hooks_id, app_key, config_id, product, event, status,
    attempt_count, next_attempt_at, created_at, updated_at, test)
    SELECT hooks_id, app_key, config_id, product, event, status, attempt_count, next_attempt_at,
        created_at, updated_at, test
    FROM deliveries ORDER BY hooks_id;
CREATE TABLE delivery_hooks_by_seq (
    delivery_seq INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    hook_seq     INTEGER NOT NULL,
    ordering_key TEXT,
    PRIMARY KEY (delivery_seq, position)
) WITHOUT ROWID;
INSERT INTO delivery_hooks_by_seq (delivery_seq, position, hook_seq, ordering_key)
    SELECT d.seq, dh.position, dh.hook_seq, dh.ordering_key
    FROM delivery_hooks dh JOIN deliveries_by_seq d ON d.hooks_id = dh.hooks_id;
CREATE TABLE attempts_by_seq (
    delivery_seq    INTEGER NOT NULL,
    number          INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    status_code     INTEGER,
    error_kind      TEXT,
    error_message   TEXT,
    response_body   TEXT,
    request_headers TEXT,
    PRIMARY KEY (delivery_seq, number)
) WITHOUT ROWID;
INSERT INTO attempts_by_seq (delivery_seq, number, started_at, duration_ms, status_code,
    error_kind, error_message, response_body, request_headers)
    SELECT d.seq, a.number, a.started_at, a.duration_ms, a.status_code, a.error_kind,
        a.error_message, a.response_body, a.request_headers
    FROM attempts a JOIN deliveries_by_seq d ON d.hooks_id = a.hooks_id;
DROP TABLE attempts;
DROP TABLE delivery_hooks;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_seq RENAME TO deliveries;
ALTER TABLE delivery_hooks_by_seq RENAME TO delivery_hooks;
ALTER TABLE attempts_by_seq RENAME TO attempts;
CREATE UNIQUE INDEX deliveries_by_hooks_id ON deliveries (hooks_id);
CREATE INDEX deliveries_log ON deliveries (app_key, created_at DESC, hooks_id DESC);
CREATE INDEX deliveries_by_config ON deliveries (config_id, created_at);
CREATE INDEX deliveries_by_status ON deliveries (status, updated_at);
CREATE INDEX delivery_hooks_by_hook ON delivery_hooks (hook_seq);
