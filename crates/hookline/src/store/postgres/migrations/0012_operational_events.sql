-- The outbox of operational events (product `hookline`): a row is written in the transaction of
-- the state change it reports (a config's health, a delivery ending FAILED or EXPIRED), then
-- turned into a hook by the engine (`engine/operational.rs`) and deleted. `hook` is the hook's
-- JSON without its hookId, which is derived from (id, created_at).
CREATE TABLE operational_events (
    id         BIGSERIAL PRIMARY KEY,
    app_key    TEXT NOT NULL,
    event      TEXT NOT NULL,
    hook       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
