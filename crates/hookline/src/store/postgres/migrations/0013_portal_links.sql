-- Portal links: single-use, short-lived links that open a dashboard session for an app key. The
-- token (the last part of the link) is kept only as its SHA-256 (`token_hash`): reading the table
-- gives no usable link. `secret_hash` is the app key's when the link was made; a rotation deletes
-- the app key's links. A link is deleted when it is used.
CREATE TABLE portal_links (
    token_hash  TEXT PRIMARY KEY,
    app_key     TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    read_only   BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX portal_links_by_app_key ON portal_links (app_key, created_at);
CREATE INDEX portal_links_by_expiry ON portal_links (expires_at);

-- Sessions opened by a portal link (`portal`): a rotation of the secret key ends them even within
-- its grace period. `read_only`: every form is refused.
ALTER TABLE dashboard_sessions ADD COLUMN portal BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE dashboard_sessions ADD COLUMN read_only BOOLEAN NOT NULL DEFAULT FALSE;
