//! Ingest: stores a request's hooks once per (app key, hookId) and queues every new one for each
//! subscribed config, in one group commit, signalling `NewWork` for those configs.

use hookline_wire::{Event, Product, ValidatedHook};
use rusqlite::params;

use super::SqliteStore;
use super::writer::{Tenant, WriteTx, signal_new_work};
use crate::store::{IngestOutcome, StoreResult};

pub(super) const INSERT_HOOK: &str = "INSERT INTO hooks (app_key, hook_id, product, event, body, \
     created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (app_key, hook_id) DO NOTHING";
/// `?4`: the hook's value of the config's `orderingKey` (NULL for an unordered config).
pub(super) const INSERT_QUEUE: &str = "INSERT OR IGNORE INTO queue (config_id, event, hook_seq, \
     ordering_key) VALUES (?1, ?2, ?3, ?4)";

impl SqliteStore {
    pub(super) async fn ingest(
        &self,
        app_key: &str,
        product: Product,
        event: Event,
        hooks: Vec<ValidatedHook>,
    ) -> StoreResult<IngestOutcome> {
        let tenant = Tenant {
            app_key: app_key.to_owned(),
            product,
            event,
            hooks: hooks.len(),
        };
        let app_key = app_key.to_owned();
        self.write_for(Some(tenant), move |tx| {
            ingest_job(tx, &app_key, product, event, &hooks)
        })
        .await
    }
}

fn ingest_job(
    tx: &mut WriteTx<'_, '_>,
    app_key: &str,
    product: Product,
    event: Event,
    hooks: &[ValidatedHook],
) -> StoreResult<IngestOutcome> {
    let WriteTx {
        conn,
        hot,
        subscriptions,
        signals,
        now,
    } = tx;
    // The writer's copy of the subscriptions: no SELECT per ingest.
    let configs = subscriptions.configs(conn, app_key, product, event)?;
    // Configs that got rows, in subscription order (a few: a linear search is enough).
    let mut woken: Vec<&str> = Vec::new();
    let mut outcome = IngestOutcome::default();
    for hook in hooks {
        let inserted = hot.insert_hook.execute(params![
            app_key,
            hook.hook_id,
            product.as_str(),
            event.as_str(),
            hook.json,
            *now
        ])?;
        if inserted == 0 {
            continue; // accepted before: idempotent retry of a producer
        }
        outcome.new_hooks += 1;
        let seq = conn.last_insert_rowid();
        for subscribed in configs.clone() {
            // Each filter reads only the fields it names from the hook's text.
            if let Some(filter) = subscribed.filter
                && !filter.matches_json(&hook.json)
            {
                continue;
            }
            // Only an ordered config parses the hook for its key; the others bind NULL.
            let ordering_value = subscribed
                .ordering_key
                .and_then(|field| crate::model::ordering_value(&hook.json, field));
            hot.insert_queue.execute(params![
                subscribed.config_id,
                event.as_str(),
                seq,
                ordering_value
            ])?;
            outcome.queued += 1;
            if !woken.contains(&subscribed.config_id) {
                woken.push(subscribed.config_id);
            }
        }
    }
    for config_id in woken {
        signal_new_work(signals, config_id);
    }
    Ok(outcome)
}
