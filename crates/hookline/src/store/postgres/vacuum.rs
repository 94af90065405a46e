//! The queue's own vacuum. A claim deletes the queue rows it takes, and each deleted row leaves
//! its entry in the queue's key `(config_id, hook_seq)` until a VACUUM removes it: every later
//! claim of the config reads its rows from the config's first entry, so it walks past the
//! entries of every row taken since the last vacuum (marked dead on the way, but still on the
//! index's pages). Autovacuum comes by at most once per `autovacuum_naptime` (a minute by
//! default), and by then a busy config's claims walk a minute of taken rows: at 40,000 hooks/s
//! the walk grew from 0.1 ms to 5-10 ms per claim within seconds, and kept the claims behind the
//! ingests (BENCHMARKS.md, "The queue's own vacuum"). So each node vacuums the queue once its
//! claims have taken [`VACUUM_AFTER_ROWS`] rows, looking at most every [`VACUUM_EVERY`].
//! `SKIP_LOCKED`: a vacuum already under way (another node's, autovacuum's) is not waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;

use super::connection::{pg_err, pool_err};
use crate::store::StoreResult;

/// How often the node looks at its claims' count of rows taken.
pub(super) const VACUUM_EVERY: Duration = Duration::from_secs(1);

/// Rows this node's claims take between two vacuums of the queue: a claim then walks at most
/// about this many dead entries (some 60 index pages) on top of its own rows; a vacuum of the
/// queue after them costs a few milliseconds.
pub(super) const VACUUM_AFTER_ROWS: u64 = 10_000;

/// The queue rows this node's claims took since its last vacuum of the queue.
#[derive(Debug, Clone, Default)]
pub(super) struct QueueChurn(Arc<AtomicU64>);

impl QueueChurn {
    /// A claim committed, having taken `rows` queue rows.
    pub(super) fn taken(&self, rows: usize) {
        self.0.fetch_add(rows as u64, Ordering::Relaxed);
    }
}

/// Vacuums the queue whenever this node's claims took [`VACUUM_AFTER_ROWS`] rows since the last
/// time; runs until the store closes (aborted).
pub(super) async fn vacuum_queue(pool: Pool, churn: QueueChurn) {
    loop {
        tokio::time::sleep(VACUUM_EVERY).await;
        if churn.0.load(Ordering::Relaxed) < VACUUM_AFTER_ROWS {
            continue;
        }
        let rows = churn.0.swap(0, Ordering::Relaxed);
        let started = Instant::now();
        match vacuum(&pool).await {
            Ok(()) => {
                crate::metrics::queue_vacuumed();
                tracing::debug!(
                    rows,
                    ms = started.elapsed().as_millis() as u64,
                    "vacuumed the queue"
                );
            }
            // Autovacuum still comes by; the next try is after the next rows taken.
            Err(e) => tracing::warn!(error = %e, "the queue could not be vacuumed"),
        }
    }
}

async fn vacuum(pool: &Pool) -> StoreResult<()> {
    let c = pool.get().await.map_err(pool_err)?;
    c.batch_execute("VACUUM (SKIP_LOCKED) queue")
        .await
        .map_err(pg_err)
}
