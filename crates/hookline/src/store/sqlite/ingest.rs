//! Ingest: stores a request's hooks once per (app key, hookId) and queues every new one for each
//! subscribed config, in one group commit, signalling `NewWork` for those configs.

use hookline_wire::{Event, Product, ValidatedHook};
use rusqlite::params;

use super::SqliteStore;
use crate::model::now_millis;
use crate::store::{IngestOutcome, StoreResult, StoreSignal};

impl SqliteStore {
    pub(super) async fn ingest(
        &self,
        app_key: &str,
        product: Product,
        event: Event,
        hooks: Vec<ValidatedHook>,
    ) -> StoreResult<IngestOutcome> {
        let app_key = app_key.to_owned();
        self.write(move |tx| {
            let conn = tx.conn;
            let configs: Vec<String> = conn
                .prepare_cached(
                    "SELECT config_id FROM subscriptions \
                     WHERE app_key = ?1 AND product = ?2 AND event = ?3",
                )?
                .query_map(params![app_key, product.as_str(), event.as_str()], |r| {
                    r.get(0)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let now = now_millis();
            let mut insert_hook = conn.prepare_cached(
                "INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (app_key, hook_id) DO NOTHING",
            )?;
            let mut insert_queue = conn.prepare_cached(
                "INSERT OR IGNORE INTO queue (config_id, event, hook_seq) VALUES (?1, ?2, ?3)",
            )?;
            let mut outcome = IngestOutcome::default();
            for hook in &hooks {
                let inserted = insert_hook.execute(params![
                    app_key,
                    hook.hook_id,
                    product.as_str(),
                    event.as_str(),
                    hook.json,
                    now
                ])?;
                if inserted == 0 {
                    continue; // accepted before: idempotent retry of a producer
                }
                outcome.new_hooks += 1;
                let seq = conn.last_insert_rowid();
                for config_id in &configs {
                    insert_queue.execute(params![config_id, event.as_str(), seq])?;
                    outcome.queued += 1;
                }
            }
            if outcome.queued > 0 {
                for config_id in configs {
                    tx.signals.push(StoreSignal::NewWork { config_id });
                }
            }
            Ok(outcome)
        })
        .await
    }
}
