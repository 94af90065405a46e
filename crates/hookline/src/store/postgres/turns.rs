//! Turns at work that takes a pooled connection and a core of the database for a while (wide
//! ingests, claims), shared tenant by tenant.
//!
//! A node lets `at_once` such jobs run, and a tenant holds at most `per_tenant` places in the
//! node's line: each job first waits behind its own tenant's earlier jobs, then for the node. So
//! a tenant with a hundred configs claiming at once holds `per_tenant` places, and another
//! tenant's claim waits for a free place, not for the hundred (the node's line alone is first
//! come, first served, and a tenant's would fill it).
//!
//! Why bound the node at all: every job here is a busy backend on the database. With one per
//! pooled connection (16), a flooding tenant's claims kept 16 backends runnable on a
//! two-core server, and every other statement, a quiet tenant's one-hook ingest among them, got
//! a sixteenth of a core (BENCHMARKS.md, "Claims take turns on PostgreSQL").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use crate::store::{StoreError, StoreResult};

/// Tenants whose lines are remembered before the idle ones are forgotten.
const MAX_TENANT_LINES: usize = 1_000;

pub(super) struct Turns {
    node: Semaphore,
    per_tenant: usize,
    /// The longest a job waits for its turn (as long as for a pooled connection): jobs stuck
    /// in the database hold their turns until their statements time out, and everyone behind
    /// them fails (and backs off) instead of queueing forever.
    wait: Duration,
    lines: Mutex<Lines>,
}

/// Each tenant's line, and when to forget the idle ones: at `MAX_TENANT_LINES`, or at twice
/// what was left after the last time, so that a thousand busy tenants do not make every turn
/// walk the map.
struct Lines {
    tenants: HashMap<String, Arc<Semaphore>>,
    forget_at: usize,
}

/// A job's turn: held while it runs.
pub(crate) struct Turn<'a> {
    _tenant: OwnedSemaphorePermit,
    _node: SemaphorePermit<'a>,
}

impl Turns {
    pub(super) fn new(at_once: usize, per_tenant: usize, wait: Duration) -> Self {
        Turns {
            node: Semaphore::new(at_once.max(1)),
            per_tenant: per_tenant.max(1),
            wait,
            lines: Mutex::new(Lines {
                tenants: HashMap::new(),
                forget_at: MAX_TENANT_LINES,
            }),
        }
    }

    /// Waits for a place in `app_key`'s line, then for the node's; fails when that takes
    /// longer than the turns' `wait`.
    pub(super) async fn take(&self, app_key: &str) -> StoreResult<Turn<'_>> {
        let tenant = {
            let mut lines = self
                .lines
                .lock()
                .map_err(|_| StoreError::Unavailable("turns lock".into()))?;
            if lines.tenants.len() >= lines.forget_at {
                // Only the map holds these: nobody runs or waits on them.
                lines.tenants.retain(|_, line| Arc::strong_count(line) > 1);
                lines.forget_at = MAX_TENANT_LINES.max(2 * lines.tenants.len());
            }
            lines
                .tenants
                .entry(app_key.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                .clone()
        };
        let closed = |_| StoreError::Unavailable("store is closed".into());
        let both = async {
            let own = tenant.acquire_owned().await.map_err(closed)?;
            let node = self.node.acquire().await.map_err(closed)?;
            Ok(Turn {
                _tenant: own,
                _node: node,
            })
        };
        tokio::time::timeout(self.wait, both).await.map_err(|_| {
            StoreError::Unavailable(format!(
                "no turn within {} ms: the database is slow or stuck",
                self.wait.as_millis()
            ))
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tenant with more jobs waiting than its places leaves the node's other places free: a
    /// second tenant's job takes one at once while the first tenant's further jobs wait.
    #[tokio::test]
    async fn a_tenant_holds_at_most_its_places_and_another_tenant_goes_past_its_waiting_jobs() {
        let turns = Turns::new(3, 2, Duration::from_secs(60));
        let a1 = turns.take("a").await.expect("first");
        let a2 = turns.take("a").await.expect("second");
        // A third job of `a` waits for its own line although the node has a place.
        let waiting = turns.take("a");
        tokio::pin!(waiting);
        assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        // `b` takes the node's last place at once.
        let b = tokio::time::timeout(std::time::Duration::from_secs(5), turns.take("b"))
            .await
            .expect("b is not held behind a's line")
            .expect("b's turn");
        // The node is full (a, a, b): `c` waits for it.
        let c = turns.take("c");
        tokio::pin!(c);
        assert!(futures_poll_once(c.as_mut()).await.is_none());
        // `a`'s first job ends: its third gets `a`'s place, then waits behind `c` for the node's.
        drop(a1);
        let c = tokio::time::timeout(std::time::Duration::from_secs(5), c)
            .await
            .expect("c runs once a place is free")
            .expect("c's turn");
        assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        drop(b);
        let a3 = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("a's third job runs once the node has a place")
            .expect("a's turn");
        drop((a2, a3, c));
    }

    /// Polls `f` once: `Some` if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    /// A job whose turn does not come within the wait fails (and holds no place after).
    #[tokio::test]
    async fn a_turn_that_does_not_come_in_time_fails_and_leaves_no_place_taken() {
        let turns = Turns::new(1, 1, Duration::from_millis(50));
        let a = turns.take("a").await.expect("a's turn");
        match turns.take("b").await {
            Err(StoreError::Unavailable(why)) => assert!(why.contains("no turn"), "{why}"),
            Err(e) => panic!("another error: {e}"),
            Ok(_) => panic!("b got a turn while a held the node's only place"),
        }
        drop(a);
        // `b`'s failed wait gave back the place it had taken in its own line.
        let b = tokio::time::timeout(Duration::from_secs(5), turns.take("b"))
            .await
            .expect("b's line is free again")
            .expect("b's turn");
        drop(b);
    }
}
