//! The outbox of operational events turned into hooks: a task that reads what the stores wrote
//! beside each reported state change (`crate::operational`), ingests each as a hook of product
//! `hookline` through the ordinary ingest (so the app key's `hookline` configs get it with their
//! filters, batches, retries and signing), then forgets it.
//!
//! Exactly once: a row's hookId is derived from the row, so a row ingested twice (a crash before
//! it was forgotten, two nodes draining at once) is stored once. Nothing is lost: a row is
//! forgotten only after its hook's ingest committed.

use std::sync::Arc;
use std::time::Duration;

use hookline_wire::{Product, ValidatedHook};
use tokio::sync::Notify;

use crate::operational::{self, OperationalEvent};
use crate::store::{Store, StoreError, StoreResult};

/// Rows read at a time.
const PAGE: u32 = 100;
/// How often the outbox is read without a signal: rows another node wrote and could not turn
/// into hooks (it stopped), or a signal lost with a failed group.
const LOOK_EVERY: Duration = Duration::from_secs(5);
/// After a store error, the wait before the next try.
const BACKOFF: Duration = Duration::from_secs(1);

/// Runs until aborted: drains the outbox at start, whenever `wake` is notified, and every
/// [`LOOK_EVERY`].
pub(super) async fn run(store: Arc<dyn Store>, wake: Arc<Notify>) {
    loop {
        if let Err(e) = drain(store.as_ref()).await {
            tracing::warn!(error = %e, "operational events not delivered yet; will retry");
            tokio::time::sleep(BACKOFF).await;
            continue;
        }
        let _ = tokio::time::timeout(LOOK_EVERY, wake.notified()).await;
    }
}

/// Turns every event of the outbox into a hook; returns how many.
pub(super) async fn drain(store: &dyn Store) -> StoreResult<usize> {
    let mut done = 0;
    loop {
        let events = store.operational_events(PAGE).await?;
        if events.is_empty() {
            return Ok(done);
        }
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            ingest(store, &event).await?;
            ids.push(event.id);
        }
        done += ids.len();
        store.forget_operational_events(ids).await?;
    }
}

async fn ingest(store: &dyn Store, event: &OperationalEvent) -> StoreResult<()> {
    let hook_id = operational::hook_id(event.id, event.created_at);
    let Some(json) = operational::with_hook_id(&hook_id, &event.hook) else {
        // Kept, it would stop every later event: reported, and forgotten with the others.
        let e = StoreError::Corrupt(format!(
            "operational event {}: its hook is not a JSON object",
            event.id
        ));
        tracing::error!(error = %e, "an operational event is dropped");
        return Ok(());
    };
    let hook = ValidatedHook {
        hook_id,
        json,
        id_generated: false,
    };
    let outcome = store
        .ingest(&event.app_key, Product::Hookline, event.event, vec![hook])
        .await?;
    if outcome.new_hooks > 0 {
        crate::metrics::operational_event(event.event);
    }
    tracing::info!(
        app_key = event.app_key,
        event = %event.event,
        configs = outcome.queued,
        "operational event produced"
    );
    Ok(())
}
