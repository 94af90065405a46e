//! The schema: migrations in `migrations/`, applied in order at open. `PRAGMA user_version`
//! records how many ran, so a migration's place in [`MIGRATIONS`] is its number: only ever append.

use rusqlite::Connection;

use crate::store::{StoreError, StoreResult};

/// Schema migrations, applied in order at open.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    // 2: Standard Webhooks secret rotation: the replaced secret signs until it expires.
    include_str!("migrations/0002_previous_signing_secret.sql"),
    // 3: deliveries without a rowid, retention's lookups, and a partial index whose predicate the
    // planner must check against bound values makes SQLite re-prepare statements over and over; a
    // plain index on status serves the same queries.
    include_str!("migrations/0003_deliveries_without_rowid.sql"),
    // 4: claims find the config's oldest queued hook with one probe.
    include_str!("migrations/0004_queue_by_config_seq.sql"),
    // 5: test sends are logged, marked as tests.
    include_str!("migrations/0005_test_deliveries.sql"),
    // 6: DISABLED configs stay subscribed (their hooks are held): give back what earlier versions
    // removed.
    include_str!("migrations/0006_hold_while_disabled.sql"),
    // 7: a secret-key rotation with a grace period keeps the replaced key working until it ends.
    include_str!("migrations/0007_secret_key_grace.sql"),
    // 8: custom request headers per config.
    include_str!("migrations/0008_config_headers.sql"),
    // 9: dashboard sessions in the store.
    include_str!("migrations/0009_dashboard_sessions.sql"),
    // 10: payload filters per config.
    include_str!("migrations/0010_config_filter.sql"),
    // 11: the custom headers each attempt sent, for the delivery log.
    include_str!("migrations/0011_attempt_request_headers.sql"),
    // 12: a delivery deadline per config.
    include_str!("migrations/0012_delivery_deadline.sql"),
    // 13: the outbox of operational events.
    include_str!("migrations/0013_operational_events.sql"),
    // 14: portal links, and which sessions they opened.
    include_str!("migrations/0014_portal_links.sql"),
    // 15: orderingKey per config, and each queued or delivered hook's value of it.
    include_str!("migrations/0015_ordering_key.sql"),
    // 16: the queue's per-config index carries the ordering key (ordered claims read only it).
    include_str!("migrations/0016_queue_by_config_seq_with_key.sql"),
    // 17: no index of the queue by hook: ingests and claims write one b-tree less per queued hook.
    include_str!("migrations/0017_queue_without_hook_index.sql"),
    // 18: deliveries keyed by a seq, their hooks and attempts by it: new rows append.
    include_str!("migrations/0018_deliveries_by_seq.sql"),
];

pub(super) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Applies the migrations not yet applied up to the `version`-th (a test builds a database as an
/// earlier release left it).
pub(super) fn migrate_to(conn: &mut Connection, version: usize) -> StoreResult<()> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if applied as usize > MIGRATIONS.len() {
        // Its statements would fail on tables a newer version changed: say so at start instead.
        return Err(StoreError::Unavailable(format!(
            "the database was migrated by a newer hookline (schema {applied}; this build knows \
             {}): run that version, or restore the backup taken before the upgrade",
            MIGRATIONS.len()
        )));
    }
    let pending = MIGRATIONS.iter().take(version).enumerate();
    for (i, sql) in pending.skip(applied as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
