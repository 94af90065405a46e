//! The trace of a hook: one read of the hook, its app key's configs for its product, the queues
//! that hold it and the deliveries that carry it, every lookup by an index (`hooks`'
//! UNIQUE (app_key, hook_id), `webhook_configs_by_app_key`, `queue_by_config_seq` once per
//! config of the app key, `delivery_hooks_by_hook`). Nothing here touches the ingest path.

use rusqlite::{Connection, Row, params};

use super::SqliteStore;
use super::configs::config_row;
use crate::model::HookTrace;
use crate::store::StoreResult;
use crate::store::rows::{
    CONFIG_COLUMNS, TRACE_HOOK_COLUMNS, TraceDeliveryRow, TraceHookRow, trace_deliveries_sql,
};

fn hook_row(r: &Row<'_>) -> rusqlite::Result<TraceHookRow> {
    Ok(TraceHookRow {
        seq: r.get(0)?,
        app_key: r.get(1)?,
        hook_id: r.get(2)?,
        product: r.get(3)?,
        event: r.get(4)?,
        body: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn trace_one(conn: &Connection, hook: TraceHookRow) -> StoreResult<HookTrace> {
    let configs = conn
        .prepare_cached(&format!(
            "SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE app_key = ?1 AND product = ?2 \
             ORDER BY id"
        ))?
        .query_map(params![hook.app_key, hook.product], config_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let queued_for = conn
        .prepare_cached(
            "SELECT c.id FROM webhook_configs c JOIN queue q \
             ON q.config_id = c.id AND q.hook_seq = ?1 WHERE c.app_key = ?2 ORDER BY c.id",
        )?
        .query_map(params![hook.seq, hook.app_key], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let deliveries = conn
        .prepare_cached(&trace_deliveries_sql(
            "SELECT d.* FROM delivery_hooks dh JOIN deliveries d ON d.seq = dh.delivery_seq \
             WHERE dh.hook_seq = ?1",
            "seq",
            "delivery_seq",
        ))?
        .query_map(params![hook.seq], |r| {
            Ok(TraceDeliveryRow {
                hooks_id: r.get(0)?,
                config_id: r.get(1)?,
                status: r.get(2)?,
                attempt_count: r.get(3)?,
                created_at: r.get(4)?,
                updated_at: r.get(5)?,
                test: r.get(6)?,
                last_attempt_at: r.get(7)?,
                last_status_code: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    hook.into_trace(configs, queued_for, deliveries)
}

impl SqliteStore {
    pub(super) async fn trace_hook(
        &self,
        app_key: Option<&str>,
        hook_id: &str,
    ) -> StoreResult<Vec<HookTrace>> {
        let app_key = app_key.map(str::to_owned);
        let hook_id = hook_id.to_owned();
        self.read(move |conn| {
            // One snapshot for every statement of the trace.
            let tx = conn.unchecked_transaction()?;
            let hooks = match &app_key {
                Some(app_key) => tx
                    .prepare_cached(&format!(
                        "SELECT {TRACE_HOOK_COLUMNS} FROM hooks h \
                         WHERE h.app_key = ?1 AND h.hook_id = ?2"
                    ))?
                    .query_map(params![app_key, hook_id], hook_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                // No index on hook_id alone (it would cost every ingest): one probe of
                // UNIQUE (app_key, hook_id) per app key. CROSS JOIN keeps app_keys outside.
                None => tx
                    .prepare_cached(&format!(
                        "SELECT {TRACE_HOOK_COLUMNS} FROM app_keys a CROSS JOIN hooks h \
                         ON h.app_key = a.app_key AND h.hook_id = ?1 ORDER BY a.app_key"
                    ))?
                    .query_map(params![hook_id], hook_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            let traces = hooks
                .into_iter()
                .map(|hook| trace_one(&tx, hook))
                .collect::<StoreResult<Vec<_>>>()?;
            tx.finish()?;
            Ok(traces)
        })
        .await
    }
}
