//! Retention: hooks, deliveries and attempt records older than the configured period are deleted
//! in the background, in small batches (one short write transaction each), so the store's size
//! stays bounded under steady load without stalling delivery.
//!
//! Never deleted: open (PENDING, RETRYING) deliveries, hooks still queued for a config, and hooks
//! that a remaining delivery carries. A hook deleted by retention is forgotten: a producer that
//! sends the same hookId again after the period gets it accepted as new.

use std::sync::Arc;
use std::time::Duration;

use crate::model::now_millis;
use crate::store::Store;

/// Rows per transaction: small enough that the writer is never held for long.
const BATCH: u32 = 500;
/// Pause between batches, so deliveries' commits interleave with retention's.
const PAUSE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    /// How long finished deliveries, their attempts and their hooks are kept.
    pub keep: Duration,
    /// How often a purge pass runs.
    pub interval: Duration,
}

pub fn spawn(store: Arc<dyn Store>, settings: RetentionSettings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(settings.interval).await;
            let cutoff = now_millis() - settings.keep.as_millis() as i64;
            match purge(store.as_ref(), cutoff).await {
                Ok((deliveries, hooks)) if deliveries + hooks > 0 => {
                    tracing::info!(deliveries, hooks, "retention removed expired history");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention pass failed; retried next pass"),
            }
        }
    })
}

/// One full pass: every finished delivery and unreferenced hook older than `cutoff`.
pub async fn purge(
    store: &dyn Store,
    cutoff: i64,
) -> Result<(usize, usize), crate::store::StoreError> {
    let mut deliveries = 0;
    loop {
        let n = store.purge_deliveries(cutoff, BATCH).await?;
        deliveries += n;
        if n < BATCH as usize {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    let mut hooks = 0;
    let mut after = 0;
    loop {
        let step = store.purge_hooks(cutoff, after, BATCH).await?;
        hooks += step.deleted;
        match step.next {
            Some(next) => after = next,
            None => break,
        }
        tokio::time::sleep(PAUSE).await;
    }
    Ok((deliveries, hooks))
}
