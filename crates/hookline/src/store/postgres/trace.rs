//! The trace of a hook: one read, in one REPEATABLE READ snapshot, of the hook, its app key's
//! configs for its product, the queues that hold it and the deliveries that carry it, every
//! lookup by an index (`hooks`' UNIQUE (app_key, hook_id), `webhook_configs_by_app_key`,
//! the queue's key `(config_id, hook_seq)` once per config of the app key,
//! `delivery_hook_lists_by_hook`, the span of seqs each delivery holds). Nothing here
//! touches the ingest path.

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use super::PostgresStore;
use super::columns::{col, config_row};
use super::connection::pg_err;
use super::deliveries::list_holds_hook;
use crate::model::HookTrace;
use crate::store::StoreResult;
use crate::store::rows::{
    CONFIG_COLUMNS, TRACE_HOOK_COLUMNS, TraceDeliveryRow, TraceHookRow, trace_deliveries_sql,
};

/// A statement of the trace, prepared once per connection (the pool's statement cache).
async fn query(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<Row>> {
    let statement = tx.prepare_cached(sql).await.map_err(pg_err)?;
    tx.query(&statement, params).await.map_err(pg_err)
}

fn hook_row(r: &Row) -> StoreResult<TraceHookRow> {
    Ok(TraceHookRow {
        seq: col(r, 0)?,
        app_key: col(r, 1)?,
        hook_id: col(r, 2)?,
        product: col(r, 3)?,
        event: col(r, 4)?,
        body: col(r, 5)?,
        created_at: col(r, 6)?,
    })
}

async fn trace_one(c: &Transaction<'_>, hook: TraceHookRow) -> StoreResult<HookTrace> {
    let configs = query(
        c,
        &format!(
            "SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE app_key = $1 AND product = $2 \
             ORDER BY id"
        ),
        &[&hook.app_key, &hook.product],
    )
    .await?
    .iter()
    .map(config_row)
    .collect::<StoreResult<Vec<_>>>()?;
    let queued_for = query(
        c,
        "SELECT c.id FROM webhook_configs c JOIN queue q \
         ON q.config_id = c.id AND q.hook_seq = $1 WHERE c.app_key = $2 ORDER BY c.id",
        &[&hook.seq, &hook.app_key],
    )
    .await?
    .iter()
    .map(|r| col(r, 0))
    .collect::<StoreResult<Vec<String>>>()?;
    let deliveries = query(
        c,
        &trace_deliveries_sql(
            concat!(
                "SELECT d.* FROM delivery_hook_lists l JOIN deliveries d \
                 ON d.hooks_id = l.hooks_id WHERE ",
                list_holds_hook!("$1")
            ),
            "hooks_id",
            "hooks_id",
        ),
        &[&hook.seq],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(TraceDeliveryRow {
            hooks_id: col(r, 0)?,
            config_id: col(r, 1)?,
            status: col(r, 2)?,
            attempt_count: col(r, 3)?,
            created_at: col(r, 4)?,
            updated_at: col(r, 5)?,
            test: col(r, 6)?,
            last_attempt_at: col(r, 7)?,
            last_status_code: col(r, 8)?,
        })
    })
    .collect::<StoreResult<Vec<_>>>()?;
    hook.into_trace(configs, queued_for, deliveries)
}

async fn trace_in(
    c: &Transaction<'_>,
    app_key: Option<&str>,
    hook_id: &str,
) -> StoreResult<Vec<HookTrace>> {
    let rows = match app_key {
        Some(app_key) => {
            query(
                c,
                &format!(
                    "SELECT {TRACE_HOOK_COLUMNS} FROM hooks h \
                     WHERE h.app_key = $1 AND h.hook_id = $2"
                ),
                &[&app_key, &hook_id],
            )
            .await?
        }
        // No index on hook_id alone (it would cost every ingest): one probe of
        // UNIQUE (app_key, hook_id) per app key.
        None => {
            query(
                c,
                &format!(
                    "SELECT {TRACE_HOOK_COLUMNS} FROM app_keys a CROSS JOIN LATERAL \
                     (SELECT * FROM hooks x WHERE x.app_key = a.app_key AND x.hook_id = $1) h \
                     ORDER BY a.app_key"
                ),
                &[&hook_id],
            )
            .await?
        }
    };
    let mut traces = Vec::with_capacity(rows.len());
    for row in &rows {
        traces.push(trace_one(c, hook_row(row)?).await?);
    }
    Ok(traces)
}

impl PostgresStore {
    pub(super) async fn trace_hook(
        &self,
        app_key: Option<&str>,
        hook_id: &str,
    ) -> StoreResult<Vec<HookTrace>> {
        let mut c = self.reader().await?;
        // One snapshot: a hook claimed between two statements shows in its queue or in its
        // delivery, never in neither. Dropped unfinished (the caller went away), the transaction
        // rolls back before the connection serves anyone else.
        let tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_err)?;
        let traces = trace_in(&tx, app_key, hook_id).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(traces)
    }
}
