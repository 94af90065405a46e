//! Retention: hooks, deliveries and attempt records older than the configured period are deleted
//! in the background, in small batches (one short write transaction each), so the store's size
//! stays bounded under steady load without stalling delivery.
//!
//! Never deleted: open (PENDING, RETRYING) deliveries, hooks still queued for a live or paused
//! config, and hooks that a remaining delivery carries. Hooks held for a config DISABLED by its
//! health are kept for the period too, then dropped unsent and counted
//! (`hookline_hooks_dropped_total{reason="retention"}`): the one place hookline drops an
//! accepted hook, bounded by the operator's `--retention` and never silent. A hook deleted by retention is forgotten: a producer that
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
                Ok(Purged {
                    deliveries,
                    hooks,
                    held,
                }) if deliveries + hooks + held > 0 => {
                    if held > 0 {
                        tracing::warn!(
                            held,
                            "retention dropped hooks held unsent for DISABLED configs"
                        );
                    }
                    tracing::info!(deliveries, hooks, "retention removed expired history");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention pass failed; retried next pass"),
            }
        }
    })
}

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Finished deliveries (with their attempts).
    pub deliveries: usize,
    /// Hooks nothing referred to any more.
    pub hooks: usize,
    /// Queue rows of DISABLED configs whose hooks were never sent.
    pub held: usize,
}

/// One full pass: hooks held too long for DISABLED configs, then every finished delivery and
/// unreferenced hook older than `cutoff`.
pub async fn purge(store: &dyn Store, cutoff: i64) -> Result<Purged, crate::store::StoreError> {
    let mut held = 0;
    loop {
        let n = store.purge_held(cutoff, BATCH).await?;
        held += n;
        crate::metrics::hooks_dropped("retention", n);
        if n < BATCH as usize {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
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
    Ok(Purged {
        deliveries,
        hooks,
        held,
    })
}
