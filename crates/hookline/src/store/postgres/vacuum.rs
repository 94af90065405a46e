//! The queue's own vacuum. A claim deletes the queue rows it takes, and each deleted row leaves
//! its entry in the queue's key `(config_id, hook_seq)` until a VACUUM removes it: every later
//! claim of the config reads its rows from the config's first entry, so it walks past the
//! entries of every row taken since the last vacuum (marked dead on the way, but still on the
//! index's pages). Autovacuum comes by at most once per `autovacuum_naptime` (a minute by
//! default), and by then a busy config's claims walk a minute of taken rows: at 40,000 hooks/s
//! the walk grew from 0.1 ms to 5-10 ms per claim within seconds, and kept the claims behind the
//! ingests (BENCHMARKS.md, "PostgreSQL: a delivery's hooks in one row, one read of the queue per
//! claim, the queue's own vacuum"). So each node vacuums the queue once its claims have taken
//! [`VACUUM_AFTER_ROWS`] rows, looking every [`VACUUM_EVERY`] (so about a second's worth of
//! taken rows, at least that many, between two vacuums of a busy node).
//!
//! The options, each for a reason: `SKIP_LOCKED`, a vacuum already under way (another node's,
//! autovacuum's) is not waited for; `INDEX_CLEANUP ON`, the index entries are what claims walk,
//! and by default a vacuum leaves them when few of the table's pages held dead rows (a queue
//! holding a large backlog, a DISABLED config's held hooks); `TRUNCATE false`, a queue that
//! drains leaves empty pages at its end, and giving them back takes the table's ACCESS
//! EXCLUSIVE lock, which every ingest and claim (and a standby's replay) would wait for. A
//! vacuum costs a pass over the queue's key, so with a large backlog it is not cheap: the next
//! one waits at least [`VACUUM_DUTY`] times as long as the last one took.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;

use super::connection::{pg_err, pool_err};
use crate::store::StoreResult;

/// How often the node looks at its claims' count of rows taken.
pub(super) const VACUUM_EVERY: Duration = Duration::from_secs(1);

/// Rows this node's claims take before it vacuums the queue: 10,000 dead entries are some 60
/// index pages for a claim to walk; a vacuum of a queue holding little costs a few
/// milliseconds.
pub(super) const VACUUM_AFTER_ROWS: u64 = 10_000;

/// The wait after a vacuum, as a multiple of the time it took: a node's vacuums of a queue
/// holding a large backlog keep to a tenth of one database connection's time.
pub(super) const VACUUM_DUTY: u32 = 10;

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
    let mut rest = VACUUM_EVERY;
    loop {
        tokio::time::sleep(rest).await;
        rest = VACUUM_EVERY;
        if churn.0.load(Ordering::Relaxed) < VACUUM_AFTER_ROWS {
            continue;
        }
        let rows = churn.0.swap(0, Ordering::Relaxed);
        let started = Instant::now();
        let outcome = vacuum(&pool).await;
        let took = started.elapsed();
        rest = rest.max(took * VACUUM_DUTY);
        match outcome {
            Ok(()) => {
                crate::metrics::queue_vacuumed();
                tracing::debug!(rows, ms = took.as_millis() as u64, "vacuumed the queue");
            }
            Err(e) => {
                // Tried again at the next look (autovacuum still comes by meanwhile).
                churn.taken(rows as usize);
                tracing::warn!(error = %e, "the queue could not be vacuumed");
            }
        }
    }
}

async fn vacuum(pool: &Pool) -> StoreResult<()> {
    let c = pool.get().await.map_err(pool_err)?;
    c.batch_execute("VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON, TRUNCATE false) queue")
        .await
        .map_err(pg_err)
}
