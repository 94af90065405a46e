//! The schema: migrations in `migrations/`, applied in order at open. `schema_migrations`
//! records the versions applied (a migration's place in [`MIGRATIONS`] is its version: only ever
//! append). They run under a transaction-scoped advisory lock, so nodes starting together migrate
//! once.
//!
//! Times are epoch milliseconds (BIGINT); hook bodies are TEXT so envelopes stay byte-exact.

use tokio_postgres::Client;

use super::connection::pg_err;
use crate::model::now_millis;
use crate::store::StoreResult;

/// Schema migrations, applied in order at open.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    // 2: leases, so several nodes share the deliveries (see `cluster`).
    include_str!("migrations/0002_leases.sql"),
    // 3: the live nodes (each config's home is one of them).
    include_str!("migrations/0003_nodes.sql"),
    // 4: test sends are logged, marked as tests.
    include_str!("migrations/0004_test_deliveries.sql"),
    // 5: DISABLED configs stay subscribed (their hooks are held): give back what earlier versions
    // removed.
    include_str!("migrations/0005_hold_while_disabled.sql"),
    // 6: a secret-key rotation with a grace period keeps the replaced key working until it ends.
    include_str!("migrations/0006_secret_key_grace.sql"),
    // 7: custom request headers per config.
    include_str!("migrations/0007_config_headers.sql"),
    // 8: dashboard sessions in the store, so any node serves any session.
    include_str!("migrations/0008_dashboard_sessions.sql"),
    // 9: payload filters per config (and their jsonpath, for ingest's fan-out).
    include_str!("migrations/0009_config_filter.sql"),
    // 10: the custom headers each attempt sent, for the delivery log.
    include_str!("migrations/0010_attempt_request_headers.sql"),
    // 11: a delivery deadline per config.
    include_str!("migrations/0011_delivery_deadline.sql"),
    // 12: the outbox of operational events.
    include_str!("migrations/0012_operational_events.sql"),
    // 13: portal links, and which sessions they opened.
    include_str!("migrations/0013_portal_links.sql"),
    // 14: orderingKey per config, and each queued or delivered hook's value of it.
    include_str!("migrations/0014_ordering_key.sql"),
    // 15: no index of the queue by hook: one index fewer to write per queued hook.
    include_str!("migrations/0015_queue_without_hook_index.sql"),
    // 16: the queue keyed by (config, hook): one index where there were two.
    include_str!("migrations/0016_queue_keyed_by_config_and_hook.sql"),
    // 17: a row per delivery for its hooks (`delivery_hook_lists`) instead of a row per hook.
    include_str!("migrations/0017_delivery_hook_lists.sql"),
    // 18: every text column compared byte by byte (`COLLATE "C"`), whatever the database's
    // default collation.
    include_str!("migrations/0018_identifiers_compared_by_bytes.sql"),
    // 19: the deliveries of a hook found through a GiST index of boxes instead of ranges: a third
    // of the cost to insert.
    include_str!("migrations/0019_hook_lists_found_by_box.sql"),
    // 20: each node's listener connection, so a node whose process died is counted out within a
    // second, not after `--lease-ttl`.
    include_str!("migrations/0020_nodes_listener_pid.sql"),
];

pub(super) async fn migrate(client: &mut Client) -> StoreResult<()> {
    migrate_to(client, MIGRATIONS.len()).await
}

/// Applies the first `version` migrations (those not applied yet).
pub(super) async fn migrate_to(client: &mut Client, version: usize) -> StoreResult<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_at BIGINT NOT NULL
             )",
        )
        .await
        .map_err(pg_err)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().take(version) {
        let version = (i + 1) as i64;
        let tx = client.transaction().await.map_err(pg_err)?;
        // Nodes starting together: one migrates, the others wait here and then see it done.
        tx.execute("SELECT pg_advisory_xact_lock(7307413)", &[])
            .await
            .map_err(pg_err)?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[&version],
            )
            .await
            .map_err(pg_err)?;
        if done.is_none() {
            tx.batch_execute(sql).await.map_err(pg_err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&version, &now_millis()],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
    }
    Ok(())
}
