-- Dashboard sessions live in the store, so any node serves any session (no sticky sessions at
-- the load balancer) and a restart keeps everyone signed in. The id is kept only as its SHA-256
-- (`id_hash`): reading the table gives no usable cookie. `csrf` is the session's form token
-- (useless without the cookie).
CREATE TABLE dashboard_sessions (
    id_hash     TEXT PRIMARY KEY,
    app_key     TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_by_app_key ON dashboard_sessions (app_key, expires_at);
CREATE INDEX dashboard_sessions_by_expiry ON dashboard_sessions (expires_at);
