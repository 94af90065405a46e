//! Several nodes on one database (see ARCHITECTURE.md, "Several nodes"): who the nodes are (the
//! live ones are where configs have their homes), and the leases that keep two nodes from
//! sending the same delivery.
//!
//! - **Nodes.** Each node has a row in `nodes` with a heartbeat; a node id a live node uses is
//!   refused at open. [`PostgresStore::membership`] lists the live ones (configs' homes are
//!   among them).
//! - **Leases.** A delivery is sent only by the node that holds its lease (`lease_owner`,
//!   `lease_expires_at`). A claim leases the deliveries it creates;
//!   [`PostgresStore::lease_delivery`] leases an existing one whose attempt is due; the attempt's
//!   record frees it. A background task renews this node's leases every third of the lease time,
//!   so only a node that stopped (crashed, or cut off from the database) loses them, and closing
//!   hands back those left ([`PostgresStore::leave`]). Other nodes find expired leases with
//!   [`PostgresStore::due_deliveries`].
//! - **The database's clock.** Lease expiries, heartbeats and retry times (`next_attempt_at`)
//!   are written and compared in the database's time, not the node's: each node measures how
//!   far its clock is from the database's ([`DbClock`], at open and with every renewal) and
//!   writes and compares those times corrected by it. So a node whose clock is minutes ahead
//!   does not see a live node's leases as expired (and take them), and one whose clock is behind
//!   does not look dead to the others. A retry one node scheduled is due for every node at the
//!   same moment: a node ten minutes ahead that schedules one and dies does not leave it ten
//!   minutes late for the others, nor one ten minutes behind leave it due at once. The engine
//!   keeps its own clock: the times it gives (`AttemptOutcome::next_attempt_at`, the sweep's
//!   `until`) are turned into the database's time ([`DbClock::to_db`]) before they are written
//!   or compared, and the retry times handed back to it (`Lease::NotDue`, `OpenDelivery`) into
//!   its clock ([`DbClock::to_node`]). The delivery log shows the stored time: the database's,
//!   the one time every node agrees on.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::PostgresStore;
use super::attempts::flush_records;
use super::columns::{col, delivery_row, open_delivery};
use super::connection::{Conn, execute, query, query_one, query_opt};
use super::deliveries::delivery_hooks;
use super::notify::{FREED_CHANNEL, NODES_CHANNEL, notify};
use super::writer::{Durability, Job, quiet_job};
use crate::model::{Millis, now_millis};
use crate::store::rows::DELIVERY_COLUMNS;
use crate::store::{Lease, Membership, OpenDelivery, StoreError, StoreResult};

/// A node that has not been heard of for this long is forgotten (its row deleted).
const FORGET_NODES_AFTER_MS: i64 = 24 * 3_600_000;

/// Who this node is among those sharing the database, how long its leases last, and how it
/// uses the database's connections.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Written as `lease_owner`; unique per running process.
    pub node_id: String,
    /// How long a lease outlives the last renewal: the time another node waits before taking
    /// over the work of a node that died. Renewed every third of it.
    pub lease_ttl: Duration,
    /// Connections for reads and claims (`--pg-pool-size`); the node also holds one for each
    /// writer and one for the listener.
    pub pool_size: usize,
    /// Claims this node runs at once (`--pg-claims-at-once`); a tenant gets a quarter of them
    /// (at least one). See `claims::CLAIMS_AT_ONCE` for why few.
    pub claims_at_once: usize,
    /// How long a statement of the writer, a claim or a read waits for a row or table lock
    /// before it fails (`--pg-lock-timeout`): the group or request fails (503, or the work is
    /// tried again) instead of hanging behind a lock someone else holds.
    pub lock_timeout: Duration,
    /// How long any one statement of those connections may run (`--pg-statement-timeout`).
    pub statement_timeout: Duration,
    /// How long a claim waits for its config's claim lock, held by another node's claim of the
    /// config, before it claims beside that claim instead (see `claims::EventClaim::take`).
    pub claim_lock_wait: Duration,
    /// Tests only: this node's clock pretends to be off by this many milliseconds, to show that
    /// leases, heartbeats and retry times do not depend on the nodes' clocks agreeing. The
    /// engine's times given to this store (retry times) are taken to be in that skewed clock
    /// too, as a machine whose clock is wrong would give them: a test acting as the engine
    /// adds the skew. (`serve`'s hidden `HOOKLINE_TEST_CLOCK_OFFSET_MS` skews the whole
    /// process's clock instead, `model::set_test_clock_offset_ms`, and leaves this at 0.)
    pub test_clock_skew_ms: i64,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            node_id: generated_node_id(),
            lease_ttl: Duration::from_secs(30),
            pool_size: DEFAULT_POOL_SIZE,
            claims_at_once: DEFAULT_CLAIMS_AT_ONCE,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            claim_lock_wait: DEFAULT_CLAIM_LOCK_WAIT,
            test_clock_skew_ms: 0,
        }
    }
}

/// `--pg-pool-size`'s default.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// `--pg-claims-at-once`'s default (see `claims::claim_turns`).
pub const DEFAULT_CLAIMS_AT_ONCE: usize = 4;
/// How long a claim waits for its config's claim lock: a claim holds it for milliseconds (the
/// longest wait seen flat out on two nodes on two cores: 84 ms), and a stuck one costs each
/// claim of the config on the other nodes this long, not a failure.
pub const DEFAULT_CLAIM_LOCK_WAIT: Duration = Duration::from_millis(200);
/// `--pg-lock-timeout`'s default: well above any lock the store itself holds (a group commits in
/// milliseconds), well below a client's patience.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// `--pg-statement-timeout`'s default: far above the slowest statement the store runs on a busy
/// database (a retention batch, a log page), so it only ever ends a statement that is stuck.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections a node holds besides its pool: its writers' (jobs, and `writer::INGEST_WRITERS`
/// for ingests) and the listener's.
pub const CONNECTIONS_BESIDES_POOL: usize = 2 + super::writer::INGEST_WRITERS;

/// `<host>-<pid>-<random>`: readable in the database, unique across restarts.
pub fn generated_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    // The id's tail is random (its head is the date): 8 base62 characters, 47 bits.
    let id = hookline_wire::generate_id();
    let random = &id[id.len().saturating_sub(8)..];
    format!("{host}-{}-{random}", std::process::id())
}

/// This node's identity as the SQL statements need it.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) id: Arc<str>,
    pub(super) ttl_ms: i64,
    pub(super) clock: DbClock,
    /// The deliveries whose leases this node's engine holds: claimed or leased here, their
    /// attempt's record not committed yet. Only these are renewed, so a lease the engine never
    /// heard of (a claim or lease that committed although its answer was lost) expires and the
    /// sweep sends its delivery, instead of this node pinning it forever.
    pub(super) held: HeldLeases,
    /// See [`NodeOptions::claim_lock_wait`].
    pub(super) claim_lock_wait: Duration,
    /// The queue rows this node's claims took since its last vacuum of the queue (`vacuum`).
    pub(super) churn: super::vacuum::QueueChurn,
    /// Since when each node's listener (this node's own too: [`place`]) has been seen gone (see
    /// [`ListenersGone`]).
    pub(super) listeners_gone: ListenersGone,
}

/// How long another node's listener may be gone before that node is counted out: its listener
/// reconnects `notify::LISTEN_RETRY` (1 s) after losing its connection, plus the connection's
/// own set-up. A blip of the listener's connection must not move the node's configs to another
/// home and back (both nodes would serve them meanwhile, over their limits).
const LISTENER_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Since when each node's listener process has been seen gone, by this node's reads of the
/// membership.
#[derive(Debug, Clone, Default)]
pub(super) struct ListenersGone(Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>);

impl ListenersGone {
    /// Of the nodes with a fresh heartbeat (`(id, listening)`), the live ones: a node whose
    /// listener is gone counts until it has been gone for [`LISTENER_GRACE`].
    fn live(&self, nodes: Vec<(String, bool)>, now: Instant) -> Vec<String> {
        let Ok(mut gone) = self.0.lock() else {
            return nodes.into_iter().map(|(id, _)| id).collect();
        };
        gone.retain(|id, _| nodes.iter().any(|(n, listening)| n == id && !listening));
        nodes
            .into_iter()
            .filter(|(id, listening)| {
                *listening
                    || now.duration_since(*gone.entry(id.clone()).or_insert(now)) < LISTENER_GRACE
            })
            .map(|(id, _)| id)
            .collect()
    }
}

/// See [`Node::held`].
#[derive(Debug, Clone, Default)]
pub(super) struct HeldLeases(Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl HeldLeases {
    pub(super) fn hold<'a>(&self, hooks_ids: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut held) = self.0.lock() {
            held.extend(hooks_ids.into_iter().map(str::to_owned));
        }
    }

    /// The attempt's record committed: it freed the lease (or the delivery was not open).
    pub(super) fn release(&self, hooks_id: &str) {
        if let Ok(mut held) = self.0.lock() {
            held.remove(hooks_id);
        }
    }

    fn ids(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|held| held.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Node {
    /// A lease taken or renewed now runs until then, in the database's time.
    pub(super) fn lease_until(&self) -> Millis {
        self.clock.now() + self.ttl_ms
    }
}

/// The database's time as this node estimates it: its own clock plus the offset measured with
/// `clock_timestamp()` (half the round trip's error at most, a millisecond or so on a LAN).
#[derive(Debug, Clone, Default)]
pub(super) struct DbClock {
    /// Tests only (`NodeOptions::test_clock_skew_ms`): this node's clock pretends to be off by this
    /// much, as a machine whose clock is wrong would be.
    skew_ms: i64,
    /// The database's time minus this node's, as last measured.
    offset_ms: Arc<AtomicI64>,
}

impl DbClock {
    pub(super) fn new(skew_ms: i64) -> DbClock {
        DbClock {
            skew_ms,
            offset_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    /// This node's own clock, as the store sees it: the engine's clock.
    fn local_now(&self) -> Millis {
        now_millis() + self.skew_ms
    }

    /// The database's time, estimated.
    pub(super) fn now(&self) -> Millis {
        self.to_db(self.local_now())
    }

    /// A time of this node's clock (the engine's: a retry's due time, the sweep's bound) in the
    /// database's time, as it is stored and compared.
    pub(super) fn to_db(&self, node_time: Millis) -> Millis {
        node_time.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// A stored time (the database's) in this node's clock, as the engine's timers count.
    pub(super) fn to_node(&self, db_time: Millis) -> Millis {
        db_time.saturating_sub(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Measures the offset again on `c`.
    pub(super) async fn sync(&self, c: &Conn) -> StoreResult<()> {
        let before = self.local_now();
        let row = query_one(
            c,
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT",
            &[],
        )
        .await?;
        let after = self.local_now();
        let database: i64 = col(&row, 0)?;
        self.offset_ms
            .store(database - (before + after) / 2, Ordering::Relaxed);
        Ok(())
    }
}

/// Joins the nodes sharing the database, at open, on the writer's connection: refuses a node id
/// that a live node uses, frees what a previous process under this id held, and says this node is
/// alive (configs have their homes among the nodes, this one included, from then on).
pub(super) async fn join(c: &Conn, node: &Node) -> StoreResult<()> {
    node.clock.sync(c).await?;
    // Two live processes under one node id would free each other's leases: refuse.
    let alive = query_opt(
        c,
        "SELECT heartbeat_at FROM nodes WHERE node_id = $1 AND heartbeat_at > $2",
        &[&&*node.id, &(node.clock.now() - node.ttl_ms)],
    )
    .await?;
    if let Some(row) = alive {
        let ago = node.clock.now() - col::<i64>(&row, 0)?;
        return Err(StoreError::Conflict(format!(
            "node id {:?} is in use: a node with that id was alive {ago} ms ago. Give each \
             node its own --node-id (the default is unique), or wait --lease-ttl after a \
             crash",
            &*node.id
        )));
    }
    // A node restarted under the same --node-id (after the check above: its predecessor is
    // gone): what it held is free at once instead of after the lease time.
    execute(
        c,
        "UPDATE deliveries SET lease_owner = NULL, lease_expires_at = NULL \
         WHERE lease_owner = $1",
        &[&&*node.id],
    )
    .await?;
    // Joined: configs have their homes among the nodes, this one included, from now on. A
    // listener process an earlier process under this id wrote is gone: the heartbeat alone
    // counts until this node's listener writes its own (`notify::listen`).
    heartbeat(c, node).await?;
    execute(
        c,
        "UPDATE nodes SET listener_pid = NULL WHERE node_id = $1",
        &[&&*node.id],
    )
    .await?;
    notify(c, NODES_CHANNEL, &[node.id.to_string()]).await?;
    Ok(())
}

/// Renews this node's leases every third of the lease time, until the writer is gone: those of
/// the deliveries its engine holds ([`Node::held`]), not every row naming it. A node that stops
/// renewing (it died, or lost the database) lets its leases expire, and the other nodes take its
/// deliveries over.
pub(super) async fn renew_leases(jobs: mpsc::WeakUnboundedSender<Job>, node: Node) {
    let every = Duration::from_millis((node.ttl_ms / 3).max(1) as u64);
    loop {
        tokio::time::sleep(every).await;
        let Some(sender) = jobs.upgrade() else {
            return;
        };
        let node = node.clone();
        // Relaxed: a renewal lost in a database crash is a lease that expires a little sooner.
        let job = quiet_job(
            Durability::Relaxed,
            "renewing this node's leases",
            move |c| async move {
                // The clocks drift (and get stepped): measured again every renewal.
                node.clock.sync(&c).await?;
                let held = node.held.ids();
                if !held.is_empty() {
                    execute(
                        &c,
                        "UPDATE deliveries SET lease_expires_at = $2 \
                         WHERE hooks_id = ANY($3::TEXT[]) AND lease_owner = $1",
                        &[&&*node.id, &node.lease_until(), &held],
                    )
                    .await?;
                }
                heartbeat(&c, &node).await?;
                execute(
                    &c,
                    "DELETE FROM nodes WHERE heartbeat_at < $1",
                    &[&(node.clock.now() - FORGET_NODES_AFTER_MS)],
                )
                .await?;
                Ok(())
            },
        );
        if sender.send(job).is_err() {
            return;
        }
    }
}

/// Says this node is alive (its row in `nodes`), in the database's time.
async fn heartbeat(c: &Conn, node: &Node) -> StoreResult<()> {
    let now = node.clock.now();
    execute(
        c,
        "INSERT INTO nodes (node_id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
         ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
        &[&&*node.id, &now],
    )
    .await?;
    Ok(())
}

/// The nodes with a heartbeat within the lease time, and whether each is listening: for a node
/// that wrote its listener's server process (migration 20), whether that process still serves
/// this database. A node's process that dies closes its connections, and the server ends their
/// processes at once, so the others count it out [`LISTENER_GRACE`] later, at a read of theirs
/// (every second, `engine/sweep.rs`), rather than `--lease-ttl` after its last heartbeat; its
/// configs' homes move then. (A node cut off from the database
/// without its connections closing, or frozen, still waits for its heartbeat to age: its
/// server processes live on until TCP gives up on them.) The process is matched by its pid and
/// database; should the system hand a dead node's pid to another connection to this database
/// within the lease time, that node is counted out by its heartbeat instead, as before
/// migration 20.
const LIVE_NODES: &str = "SELECT n.node_id, n.listener_pid IS NULL OR EXISTS ( \
         SELECT 1 FROM pg_stat_activity a \
         WHERE a.pid = n.listener_pid \
             AND a.datid = (SELECT oid FROM pg_database WHERE datname = current_database())) \
     FROM nodes n WHERE n.heartbeat_at > $1";

/// This node's place, from the live nodes as every node reads them (`live`, in any order) and
/// whether its own heartbeat was among the fresh ones (`listed`).
///
/// - Among the live nodes: its place among them.
/// - Listed but not live (its listener has been gone for [`LISTENER_GRACE`]) while other nodes
///   are live: [`Membership::outside`], no config. The others count it out the same way and
///   have taken its configs; a node that counted itself in served them beside their new homes,
///   over their limits, and it hears none of the others' work anyway.
/// - Not listed (its own heartbeat is late: the database was slow), or no node live at all (no
///   listener anywhere, e.g. the database refuses new connections): it counts itself in. Every
///   node serving every config is better than none serving any.
fn place(me: &str, listed: bool, mut live: Vec<String>) -> Membership {
    // Every node ranks the ids in the same order, Rust's (bytes), whatever the database's
    // collation: the search below in a list of another order could miss this node and count it
    // twice (as it did on a database of a language's collation before migration 18).
    live.sort_unstable();
    match live.binary_search_by(|id| id.as_str().cmp(me)) {
        Ok(_) => {}
        Err(_) if listed && !live.is_empty() => return Membership::outside(&live),
        Err(at) => live.insert(at, me.to_owned()),
    }
    Membership::of(&live, me)
}

impl PostgresStore {
    pub(super) async fn membership(&self) -> StoreResult<Membership> {
        let c = self.reader().await?;
        let rows = query(
            &c,
            LIVE_NODES,
            &[&(self.node.clock.now() - self.node.ttl_ms)],
        )
        .await?;
        let nodes = rows
            .iter()
            .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
            .collect::<StoreResult<Vec<(String, bool)>>>()?;
        let listed = nodes.iter().any(|(id, _)| **id == *self.node.id);
        let live = self.node.listeners_gone.live(nodes, Instant::now());
        Ok(place(&self.node.id, listed, live))
    }

    pub(super) async fn lease_delivery(&self, hooks_id: &str) -> StoreResult<Lease> {
        let hooks_id = hooks_id.to_owned();
        let node = self.node.clone();
        // Through the writer: it runs after this node's attempt records queued before, so a
        // retry never leases a delivery whose previous attempt is still unrecorded. The hooks
        // are read in the same job: a lease is only ever granted together with what to send
        // (a lease left held by a failed read would be renewed, and stranded, forever).
        let lease = self
            .write_in_group(Durability::Relaxed, move |group| async move {
                // This node's records queued before this lease are applied first.
                flush_records(&group).await?;
                let c = group.client;
                // Due and expired by the database's time, the clock retry times are stored in
                // (whichever node scheduled them).
                let db_now = node.clock.now();
                // SKIP LOCKED: a row another transaction is changing (another node's lease or
                // record) is not waited for; its lease decides, and it is someone else's now.
                let row = query_opt(
                    &c,
                    &format!(
                        "UPDATE deliveries SET lease_owner = $2, lease_expires_at = $3 \
                         WHERE hooks_id = (SELECT hooks_id FROM deliveries \
                             WHERE hooks_id = $1 AND status IN ('PENDING', 'RETRYING') \
                             AND COALESCE(next_attempt_at, 0) <= $4 \
                             AND (lease_owner IS NULL OR lease_expires_at < $5) \
                             FOR UPDATE SKIP LOCKED) \
                         RETURNING {DELIVERY_COLUMNS}"
                    ),
                    &[&hooks_id, &&*node.id, &node.lease_until(), &db_now, &db_now],
                )
                .await?;
                let Some(row) = row else {
                    // Why not: a retry not yet due gets its time; anything else is not ours (a
                    // lease this node holds is not taken again: its attempt is in flight here).
                    let due = query_opt(
                        &c,
                        "SELECT COALESCE(next_attempt_at, 0) FROM deliveries \
                         WHERE hooks_id = $1 AND status IN ('PENDING', 'RETRYING') \
                         AND (lease_owner IS NULL OR lease_expires_at < $2)",
                        &[&hooks_id, &db_now],
                    )
                    .await?;
                    // Handed back in this node's clock: the engine arms its timer with it.
                    let lease = match due.map(|r| col::<i64>(&r, 0)).transpose()? {
                        Some(at) if at > db_now => Lease::NotDue(node.clock.to_node(at)),
                        _ => Lease::Unavailable,
                    };
                    return Ok((lease, Vec::new()));
                };
                let row = delivery_row(&row, &node.clock)?;
                let hooks = delivery_hooks(&c, &row.hooks_id).await?;
                let delivery = row.into_sendable(hooks)?;
                Ok((Lease::Granted(delivery), Vec::new()))
            })
            .await?;
        // Held (renewed) only once the engine has it, here and not in the writer's job: a
        // caller that stopped waiting (the database did not answer in time, `answered`) never
        // sends the delivery, and a lease renewed for it would strand it for good; unrenewed,
        // the lease expires and the sweep finds the delivery.
        if let Lease::Granted(delivery) = &lease {
            self.node.held.hold([delivery.hooks_id.as_str()]);
        }
        Ok(lease)
    }

    pub(super) async fn due_deliveries(
        &self,
        until: Millis,
        limit: u32,
        configs: &[String],
    ) -> StoreResult<Vec<OpenDelivery>> {
        let c = self.reader().await?;
        let rows = query(
            &c,
            // Only configs that send: deliveries of a paused or DISABLED config wait for
            // it, and would otherwise fill every sweep's page with the same rows.
            "SELECT d.hooks_id, d.config_id, COALESCE(d.next_attempt_at, 0) \
                 FROM deliveries d JOIN webhook_configs c ON c.id = d.config_id \
                 WHERE d.status IN ('PENDING', 'RETRYING') \
                 AND COALESCE(d.next_attempt_at, 0) <= $1 \
                 AND (d.lease_owner IS NULL OR d.lease_expires_at < $2) \
                 AND c.enabled AND c.health_state <> 'DISABLED' \
                 AND d.config_id = ANY($4::TEXT[]) \
                 ORDER BY COALESCE(d.next_attempt_at, 0) LIMIT $3",
            &[
                &self.node.clock.to_db(until),
                &self.node.clock.now(),
                &i64::from(limit),
                &configs,
            ],
        )
        .await?;
        rows.iter()
            .map(|r| open_delivery(r, &self.node.clock))
            .collect()
    }

    /// Hands back the leases still held (attempts cut by the shutdown grace period): the other
    /// nodes need not wait for them to expire. After the queued records, which free theirs. Then
    /// leaves the nodes: the configs whose home it was move to the others.
    pub(super) async fn leave(&self) {
        let node = self.node.clone();
        let handed_back = self
            .write(Durability::Relaxed, move |c| async move {
                let n = execute(
                    &c,
                    "UPDATE deliveries SET lease_owner = NULL, lease_expires_at = NULL \
                         WHERE lease_owner = $1",
                    &[&&*node.id],
                )
                .await?;
                if n > 0 {
                    // The other nodes sweep at once instead of at their next interval.
                    notify(&c, FREED_CHANNEL, &[node.id.to_string()]).await?;
                }
                // Left: the configs whose home this node was move to the others.
                execute(&c, "DELETE FROM nodes WHERE node_id = $1", &[&&*node.id]).await?;
                notify(&c, NODES_CHANNEL, &[node.id.to_string()]).await?;
                Ok((n, Vec::new()))
            })
            .await;
        match handed_back {
            Ok(n) => tracing::info!(leases = n, "leases handed back"),
            Err(e) => tracing::warn!(error = %e, "leases not handed back; they expire instead"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{LISTENER_GRACE, ListenersGone, place};

    fn nodes(list: &[(&str, bool)]) -> Vec<(String, bool)> {
        list.iter().map(|(id, l)| (id.to_string(), *l)).collect()
    }

    /// A node whose listener is gone counts for `LISTENER_GRACE` (its listener may be
    /// reconnecting), then not; listening again, it counts at once, and a later loss has its
    /// grace again.
    #[test]
    fn a_node_whose_listener_is_gone_counts_until_the_grace_runs_out() {
        let gone = ListenersGone::default();
        let t0 = Instant::now();
        let both = |b: bool| nodes(&[("a", true), ("b", b)]);
        assert_eq!(gone.live(both(true), t0), ["a", "b"]);
        assert_eq!(gone.live(both(false), t0), ["a", "b"]);
        let almost = t0 + LISTENER_GRACE - Duration::from_millis(1);
        assert_eq!(gone.live(both(false), almost), ["a", "b"]);
        assert_eq!(gone.live(both(false), t0 + LISTENER_GRACE), ["a"]);
        // Back: it counts, and its next loss starts a grace of its own.
        let t1 = t0 + LISTENER_GRACE * 2;
        assert_eq!(gone.live(both(true), t1), ["a", "b"]);
        assert_eq!(gone.live(both(false), t1 + LISTENER_GRACE / 2), ["a", "b"]);
        // A node whose heartbeat went too is not listed, and is forgotten.
        assert_eq!(
            gone.live(nodes(&[("a", true)]), t1 + LISTENER_GRACE * 3),
            ["a"]
        );
        assert_eq!(gone.live(both(false), t1 + LISTENER_GRACE * 3), ["a", "b"]);
    }

    /// A node counted out by its listener while others are live serves no config, and the
    /// others' homes cover every config; a node whose heartbeat is late, or that finds no node
    /// live, counts itself in.
    #[test]
    fn a_node_whose_own_listener_is_counted_out_serves_nothing_while_others_are_live() {
        let ids = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let configs: Vec<String> = (0..200).map(|n| format!("c{n}")).collect();
        let out = place("b", true, ids(&["c", "a"]));
        let a = place("a", true, ids(&["c", "a"]));
        let c = place("c", true, ids(&["a", "c"]));
        for config in &configs {
            assert_eq!(out.share(8, config), 0, "{config}");
            assert_eq!(a.share(8, config) + c.share(8, config), 8, "{config}");
        }
        assert!(out.is_outside() && !a.is_outside());
        assert_eq!((out.nodes(), out.rank()), (2, 2));
        // One other node live: it serves every config, the node counted out none.
        let out_of_two = place("b", true, ids(&["a"]));
        let a_alone = place("a", true, ids(&["a"]));
        for config in &configs {
            assert_eq!(out_of_two.share(8, config), 0, "{config}");
            assert_eq!(a_alone.share(8, config), 8, "{config}");
        }
        // Alone among the listed, and its listener gone: the only one to serve.
        let lone = place("b", true, Vec::new());
        assert!(!lone.is_outside());
        assert!(configs.iter().all(|c| lone.share(8, c) == 8));
        // Its heartbeat late: it counts itself in beside the live ones and serves its homes among
        // them, while they, not listing it, serve every config (its configs twice until its
        // heartbeat is fresh again: the price of not stalling them).
        let late = place("b", false, ids(&["a"]));
        assert_eq!(late.nodes(), 2);
        let homes = configs.iter().filter(|c| late.share(8, c) == 8).count();
        assert!((50..150).contains(&homes), "{homes} of 200");
    }
}
