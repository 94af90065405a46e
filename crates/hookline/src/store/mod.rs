//! Durable state behind one interface.
//!
//! [`Store`] is everything the API and the engine need from storage. It has two implementations:
//! `sqlite`, the embedded store (one database file, one process), and `postgres`, the shared
//! store (one database that several nodes use). Every statement lives in one of them, so dialect
//! details never leak out of this module; neither uses the other. What both share is here: the
//! rows they store and their mapping to the model (`rows`), pages and cursors (`page`), how a
//! group-commit job ended ([`JobStatus`]), which queued jobs a group takes (`fair`) and how a deleted config's queue is cut into deliveries
//! ([`runs_by_event`]).
//!
//! Durability contract: when a write method returns `Ok`, its effect is committed (WAL, survives a
//! process crash). Ingest in particular answers only after the commit that holds the hooks and
//! their queue rows.

mod fair;
mod ordered;
mod page;
pub mod postgres;
mod rows;
pub mod sqlite;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use hookline_wire::{Event, Product, ValidatedHook};
use tokio::sync::mpsc;

use crate::model::{
    AppKeyRecord, AttemptOutcome, AttemptRecord, ConfigFilter, DeliveryFilter, DeliverySummary,
    Health, HookTrace, Millis, Page, PageRequest, PortalLinkRecord, PortalRedemption, ReplayFilter,
    SendableDelivery, SessionRecord, SessionStart, TestSendRecord, WebhookConfig,
};
use crate::operational::OperationalEvent;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take writes or reads right now (I/O error, disk full, closed). Callers
    /// answer 503; nothing was half-written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// A page cursor that this server did not hand out.
    #[error("cursor: not a cursor returned by this server")]
    BadCursor,
    /// Stored data that does not parse back (a bug or a manual edit).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Signals the store emits after commits, in commit order, so the engine learns of new work
/// without polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSignal {
    /// Hooks were queued for this config.
    NewWork { config_id: String },
    /// A claim found this config's queue empty (emitted in commit order relative to `NewWork`, so
    /// the engine never loses a wake-up). Only stores whose signals are ordered with their claims
    /// (SQLite: one writer) send it; the others answer [`Claim::drained`].
    QueueDrained { config_id: String },
    /// A config was created, changed or deleted, possibly by another node: read it again.
    ConfigChanged { config_id: String },
    /// Another node handed its leases back (it is shutting down): their deliveries are free
    /// now, not when the leases would have expired. Look for due work at once.
    LeasesFreed,
    /// Open deliveries of this config that nobody holds wait for its home (a redelivery, a retry
    /// recorded by a node the config's home moved away from): its home looks for them at once,
    /// whenever they are due.
    DeliveriesWaiting { config_id: String },
    /// A node joined or left: read the membership again ([`Store::membership`]).
    NodesChanged,
    /// Signals may have been missed (the notification connection was lost and is back): assume
    /// every queue has work and read every config again.
    Resync,
    /// Operational events were written to the outbox ([`Store::operational_events`]): turn them
    /// into hooks.
    OperationalEvents,
}

/// How a job of a store's group-commit writer ended. Jobs run without savepoints (in SQLite
/// they cost a sub-journal write per page), so a job that refuses (a conflict, a bad cursor) must
/// decide before it writes anything; any other error rolls the whole group back and every job in
/// it fails.
pub(crate) enum JobStatus {
    Done,
    Refused,
    Failed(StoreError),
}

pub(crate) fn job_status<R>(result: &StoreResult<R>) -> JobStatus {
    match result {
        Ok(_) => JobStatus::Done,
        Err(StoreError::Conflict(_) | StoreError::BadCursor) => JobStatus::Refused,
        Err(e) => JobStatus::Failed(e.clone()),
    }
}

/// What an ingest call did.
#[derive(Debug, Clone, Default)]
pub struct IngestOutcome {
    /// Hooks newly stored (the rest were already accepted earlier: idempotent retries).
    pub new_hooks: usize,
    /// Queue rows written (new hooks × matching configs).
    pub queued: usize,
}

/// One step of hook retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookPurge {
    pub deleted: usize,
    /// Where the next step starts; `None` when every hook old enough has been looked at.
    pub next: Option<i64>,
}

/// A batch taken off a config's queue and turned into a PENDING delivery.
#[derive(Debug, Clone)]
pub struct ClaimedBatch {
    pub delivery: SendableDelivery,
}

/// What [`Store::claim_batches`] took.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    pub batches: Vec<ClaimedBatch>,
    /// The config's queue was empty when the claim committed. Stores that signal
    /// [`StoreSignal::QueueDrained`] instead leave it false.
    pub drained: bool,
    /// Nothing was taken although the queue has hooks: another transaction holds them (another
    /// node's claim, a config's deletion).
    pub contended: bool,
    /// Every hook left in the queue that the claim looked at waits for an earlier hook of its
    /// `orderingKey` value (one in an open delivery, or one left queued): claiming again is
    /// worth it only after one of the config's deliveries ends (`AttemptOutcome::wakes_queue`)
    /// or new hooks come.
    pub held_by_order: bool,
}

/// This node's place among the live nodes sharing a store: which configs it serves, and its part
/// of their limits, follow from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The live nodes' ids, hashed ([`id_hash`]), in the ids' byte order; this node among them
    /// unless it is [`Membership::outside`].
    keys: std::sync::Arc<[u64]>,
    /// This node's position among them; `keys.len()` when it is not among them
    /// ([`Membership::outside`]).
    rank: usize,
}

/// FNV-1a, 64 bits: a stable hash of an id, the same on every node and every build.
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// How much a node wants a config (rendezvous hashing): both hashes mixed (SplitMix64's
/// finalizer), so the order of the nodes' scores for one config is unrelated to another's.
fn score(config: u64, node: u64) -> u64 {
    let mut z = config ^ node.rotate_left(29);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Membership {
    /// A store of one process: every config is this node's.
    pub fn alone() -> Membership {
        Membership {
            keys: std::sync::Arc::from([0_u64]),
            rank: 0,
        }
    }

    /// `live`: the live nodes' ids in byte order, `me` among them (a node missing from the list
    /// counts as alone: it serves what it has, rather than nothing).
    pub fn of(live: &[String], me: &str) -> Membership {
        match live.binary_search_by(|id| id.as_str().cmp(me)) {
            Ok(rank) if live.len() > 1 => Membership {
                keys: live.iter().map(|id| id_hash(id)).collect(),
                rank,
            },
            _ => Membership::alone(),
        }
    }

    /// A node the others count out while they are live: it serves no config, and the live
    /// nodes' homes cover every config without it. See `PostgresStore::membership`: a node
    /// whose listener is gone hears no other node's work, and the others have taken its
    /// configs; serving them too would put them over their limits.
    pub fn outside(live: &[String]) -> Membership {
        Membership {
            keys: live.iter().map(|id| id_hash(id)).collect(),
            rank: live.len(),
        }
    }

    /// This node's position among the live nodes (ids in byte order); [`Membership::nodes`]
    /// when it is not among them ([`Membership::outside`]).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Live nodes, this one included unless it is [`Membership::outside`].
    pub fn nodes(&self) -> usize {
        self.keys.len().max(1)
    }

    /// Whether this node serves no config, counted out while others are live.
    pub fn is_outside(&self) -> bool {
        self.rank >= self.keys.len()
    }

    /// This node's part of a per-config limit of `total`: all of it on the config's home, 0 on
    /// every other node; the parts of all live nodes add up to `total`. The home is the live
    /// node whose [`score`] for the config is highest (rendezvous hashing), so different
    /// configs have different homes, and when a node joins only the configs it wins move (to
    /// it), when one leaves only its own (to the others): no config moves between two nodes
    /// that both stay. (As `hash % nodes`, until 2026-12-06, a join or a leave moved most
    /// configs, each move a moment over its limit and a read of its health.)
    ///
    /// Why one node per config, not a part of its limit on every node: each node serving a config
    /// claims and records its own deliveries, so with two nodes a config's claims and attempt
    /// records took twice the statements for the same hooks, and the nodes' claims waited for
    /// each other's claim lock. On PostgreSQL, with one event per request, two nodes delivered
    /// 0.75x what one did; with a home per config, 0.89x (BENCHMARKS.md, "PostgreSQL: a home node
    /// per config"). Nothing is lost by it: a config's rate is bounded by its limit (at most 64
    /// requests at once, cluster-wide) and the database, and one node drives 64 requests at once
    /// with a small part of a core. A home that dies is counted out within a few seconds (the
    /// database closes its connections; see `PostgresStore::membership`), and its configs move.
    pub fn share(&self, total: u32, config_id: &str) -> u32 {
        if self.is_outside() {
            return 0;
        }
        if self.keys.len() == 1 {
            return total;
        }
        let config = id_hash(config_id);
        let home = self
            .keys
            .iter()
            .enumerate()
            // Ties (never seen) go to the lower rank, the same on every node.
            .max_by_key(|&(rank, &key)| (score(config, key), std::cmp::Reverse(rank)))
            .map_or(0, |(rank, _)| rank);
        if home == self.rank { total } else { 0 }
    }
}

/// What [`Store::lease_delivery`] found.
#[derive(Debug, Clone)]
pub enum Lease {
    /// This node holds the delivery's lease: send it.
    Granted(SendableDelivery),
    /// Open and free, but its next attempt is not due until then.
    NotDue(Millis),
    /// Finished, cancelled, gone, or leased by another live node (which records the attempt;
    /// a later sweep finds the delivery again if it is still open then).
    Unavailable,
}

/// One delivery that the engine must resume after a start: it is PENDING or RETRYING.
#[derive(Debug, Clone)]
pub struct OpenDelivery {
    pub hooks_id: String,
    pub config_id: String,
    pub next_attempt_at: Millis,
}

/// A delivery with its attempts, for the log.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    pub summary: DeliverySummary,
    pub envelope: Vec<u8>,
    pub attempts: Vec<AttemptRecord>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Signals of committed work. Call once, at engine start.
    fn take_signals(&self) -> Option<mpsc::UnboundedReceiver<StoreSignal>>;

    async fn ping(&self) -> StoreResult<()>;

    // --- app keys ---
    async fn create_app_key(&self, record: AppKeyRecord, secret_hash: String) -> StoreResult<()>;
    async fn list_app_keys(&self, page: PageRequest) -> StoreResult<Page<AppKeyRecord>>;
    async fn get_app_key(&self, app_key: &str) -> StoreResult<Option<AppKeyRecord>>;
    /// The app key that owns this secret hash, if any: its current secret key, or the one its
    /// last rotation replaced while that one's grace period (`previous_secret_key_expires_at`)
    /// has not passed `now`.
    async fn app_key_by_secret_hash(
        &self,
        secret_hash: &str,
        now: Millis,
    ) -> StoreResult<Option<String>>;
    /// Replaces the secret hash; the replaced one keeps working until `previous_until` (`None`:
    /// it stops at once). In the same write, the app key's unused portal links are revoked and
    /// the sessions portal links opened end, whatever the grace. False when the app key does not
    /// exist.
    async fn set_secret_hash(
        &self,
        app_key: &str,
        secret_hash: String,
        previous_until: Option<Millis>,
    ) -> StoreResult<bool>;

    // --- dashboard sessions ---
    /// Stores a new session. In the same write, sessions expired by `session.created_at` go,
    /// and so do the app key's oldest beyond `keep_per_app_key` (the new one counted), so one
    /// tenant signing in over and over cannot grow the table.
    async fn create_session(
        &self,
        session: SessionRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<()>;
    /// The session whose id hashes to `id_hash`, unless it expired by `now`.
    async fn find_session(&self, id_hash: &str, now: Millis) -> StoreResult<Option<SessionRecord>>;
    /// Ends a session (sign-out, or its secret key rotated).
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;

    // --- portal links ---
    /// Stores a portal link with its app key's current secret hash. In the same write, expired
    /// links go, and so do the app key's oldest beyond `keep_per_app_key` (the new one counted).
    /// False (nothing stored) when the app key does not exist.
    async fn create_portal_link(
        &self,
        link: PortalLinkRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<bool>;
    /// Uses up the link whose token hashes to `token_hash`: if it was live at
    /// `start.created_at`, opens the session `start` for the link's app key (with the link's
    /// secret hash and read-only flag, capped like [`Store::create_session`]) in the same write.
    /// A link is used at most once, whoever (on whichever node) asks at the same time.
    async fn redeem_portal_link(
        &self,
        token_hash: &str,
        start: SessionStart,
        keep_sessions_per_app_key: usize,
    ) -> StoreResult<PortalRedemption>;

    // --- webhook configs ---
    async fn insert_config(&self, config: WebhookConfig) -> StoreResult<()>;
    /// Replaces a config's settable fields and health. Answers the version stored as its
    /// `updated_at`: the one given when it is above the stored one, else the stored one + 1 (a
    /// version never goes back); `None` when the app key has no config of that id.
    async fn update_config(&self, config: WebhookConfig) -> StoreResult<Option<Millis>>;
    /// Deletes a config; its open deliveries and queued hooks become CANCELLED deliveries.
    async fn delete_config(&self, app_key: &str, config_id: &str) -> StoreResult<bool>;
    async fn get_config(
        &self,
        app_key: &str,
        config_id: &str,
    ) -> StoreResult<Option<WebhookConfig>>;
    async fn list_configs(
        &self,
        app_key: &str,
        filter: ConfigFilter,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookConfig>>;
    /// Every config, for the engine's cache.
    async fn all_configs(&self) -> StoreResult<Vec<WebhookConfig>>;
    async fn set_health(&self, config_id: &str, health: Health) -> StoreResult<()>;
    /// The oldest operational events of the outbox, at most `limit`. Each was written in the
    /// transaction of the state change it reports (a config's health, a delivery ending FAILED
    /// or EXPIRED, see `crate::operational`); the engine ingests them as hooks of product
    /// `hookline` and then forgets them.
    async fn operational_events(&self, limit: u32) -> StoreResult<Vec<OperationalEvent>>;
    /// Deletes these events from the outbox (their hooks are stored).
    async fn forget_operational_events(&self, ids: Vec<i64>) -> StoreResult<()>;

    // --- ingest ---
    /// Stores the hooks (idempotent on (app key, hookId)) and queues every new one for every
    /// enabled config of that app key subscribed to `event`: in one commit, or (the embedded
    /// store, a request that fans out wide) in parts, each whole hooks with all their queue rows.
    async fn ingest(
        &self,
        app_key: &str,
        product: Product,
        event: Event,
        hooks: Vec<ValidatedHook>,
    ) -> StoreResult<IngestOutcome>;

    // --- engine ---
    /// Takes up to `max_batches` batches of queued hooks for the config, each of up to
    /// `max_hooks` hooks of one event (oldest first), and turns each into a PENDING delivery with
    /// a new hooksId, in one commit. Empty when the queue is.
    ///
    /// For a config with an `orderingKey`, a hook whose key an open delivery of the config holds,
    /// or whose earlier hook of the same key stays queued, is not taken, and a key's hooks go
    /// into one batch in queue order (`store::ordered`); `Claim::held_by_order` says when what is
    /// left waits for a key.
    ///
    /// Shared stores give this node the lease of every delivery they create (see
    /// [`Store::lease_delivery`]).
    async fn claim_batches(
        &self,
        config: &WebhookConfig,
        max_hooks: u32,
        max_batches: u32,
    ) -> StoreResult<Claim>;
    /// An open delivery, to read (no lease taken).
    async fn load_delivery(&self, hooks_id: &str) -> StoreResult<Option<SendableDelivery>>;
    /// Takes the lease of an open delivery whose next attempt is due, so that no other node sends
    /// it: the engine calls this before every attempt of an existing delivery. The lease ends
    /// when the attempt is recorded ([`Store::record_attempt`]), when this node hands its leases
    /// back ([`Store::close`]), or when it expires because this node stopped renewing it (it
    /// died). A store with one process (SQLite) has nobody to share with: it grants every open
    /// delivery.
    async fn lease_delivery(&self, hooks_id: &str) -> StoreResult<Lease>;
    /// Open deliveries of `configs` (those this node serves) due before `until` whose lease is
    /// free or expired (retries of a config's previous home, the work of a node that died),
    /// soonest first, at most `limit`.
    async fn due_deliveries(
        &self,
        until: Millis,
        limit: u32,
        configs: &[String],
    ) -> StoreResult<Vec<OpenDelivery>>;
    /// This node's place among the live nodes; [`Membership::alone`] for a store of one process.
    async fn membership(&self) -> StoreResult<Membership>;
    /// One config by id, whatever its app key (to follow changes made on other nodes).
    async fn find_config(&self, config_id: &str) -> StoreResult<Option<WebhookConfig>>;
    /// Queues an attempt record for the writer's next group commit and returns at once: the
    /// attempt, the delivery's next state (a CANCELLED delivery stays cancelled) and the config's
    /// health (when given) are written in one commit. Writes commit in the order they are queued,
    /// so a later awaited write (or [`Store::flush`]) sees it. A crash before that commit makes
    /// the attempt count as in flight: the delivery is sent again after restart.
    fn record_attempt(&self, outcome: AttemptOutcome);
    /// Ends an open (PENDING or RETRYING) delivery EXPIRED without an attempt: its config's
    /// `deliveryDeadline` passed before the attempt could start. Queued like a record, not
    /// awaited; on PostgreSQL its lease is freed with it.
    fn expire_delivery(&self, hooks_id: String);
    /// Tells the config's home (another node) that open deliveries of the config wait for it
    /// (a retry this node recorded after the home moved away), once the records queued before
    /// are committed: its home sweeps the config at once (`StoreSignal::DeliveriesWaiting`).
    /// Queued like a record, not awaited. A store of one process has no other node to tell.
    fn tell_home(&self, config_id: String) {
        let _ = config_id;
    }
    /// Waits until every write queued before this call is committed, but for ingests: an
    /// ingest's caller is answered on its own commit (the fair share, `fair`, may leave it to a
    /// later group; on PostgreSQL ingests have a writer of their own, not waited for here).
    async fn flush(&self) -> StoreResult<()>;
    async fn open_deliveries(&self) -> StoreResult<Vec<OpenDelivery>>;
    /// Configs that have queued hooks (to resume after a start).
    async fn configs_with_queued_hooks(&self) -> StoreResult<Vec<String>>;

    // --- delivery log ---
    async fn list_deliveries(
        &self,
        app_key: &str,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliverySummary>>;
    async fn get_delivery(
        &self,
        app_key: &str,
        hooks_id: &str,
    ) -> StoreResult<Option<DeliveryDetail>>;
    /// A new PENDING delivery to the same config with the same hooks; `None` when the original
    /// does not exist for this app key or its config is gone.
    async fn redeliver(
        &self,
        app_key: &str,
        hooks_id: &str,
        new_hooks_id: String,
    ) -> StoreResult<Option<DeliverySummary>>;
    /// Queues again, for this config, the hooks of the matching deliveries. Returns the number of
    /// hooks queued.
    async fn replay(
        &self,
        app_key: &str,
        config_id: &str,
        filter: ReplayFilter,
    ) -> StoreResult<u64>;
    /// Logs a test send that ended: its sample hook, a finished delivery marked as a test (never
    /// open, so never retried) and its one attempt, in one commit. The config's health is not
    /// touched.
    async fn record_test_send(&self, record: TestSendRecord) -> StoreResult<()>;

    /// Retention: deletes up to `batch` finished (SUCCEEDED, FAILED, CANCELLED) deliveries last
    /// updated before `cutoff`, with their attempts. Returns how many went. Open deliveries are
    /// never touched.
    async fn purge_deliveries(&self, cutoff: Millis, batch: u32) -> StoreResult<usize>;
    /// Retention: looks at up to `batch` hooks after position `after` (0 to start) and deletes
    /// those accepted before `cutoff` that no queue row and no remaining delivery refers to.
    async fn purge_hooks(&self, cutoff: Millis, after: i64, batch: u32) -> StoreResult<HookPurge>;
    /// Retention: deletes up to `batch` queue rows that a config DISABLED by its health holds
    /// for hooks accepted before `cutoff` (they were never sent). Returns how many went, so the
    /// caller can count them as dropped. Queues of paused and of live configs are never touched.
    async fn purge_held(&self, cutoff: Millis, batch: u32) -> StoreResult<usize>;

    /// Flushes, hands this node's leases back (shared stores) and stops the writer; later writes
    /// fail with `Unavailable`.
    async fn close(&self);

    /// Counts for the metrics endpoint, read at scrape time.
    async fn stats(&self) -> StoreResult<StoreStats>;
    /// The queue per app key, for the opt-in per-tenant metrics: each app key with queued hooks,
    /// how many, and when its oldest queued hook was accepted. Read at scrape time.
    async fn queue_by_app_key(&self) -> StoreResult<Vec<AppKeyQueue>>;

    /// The dashboard's chart: the attempts of one config's deliveries that started in
    /// `[since, since + bucket_ms * buckets)`, counted per bucket of `bucket_ms` by start time
    /// (only buckets with attempts are returned, oldest first). Deliveries created more than
    /// [`ATTEMPT_LOOKBACK`] before `since` are not looked at: that bounds the scan of the index
    /// on (config, created_at).
    async fn attempt_buckets(
        &self,
        app_key: &str,
        config_id: &str,
        since: Millis,
        bucket_ms: i64,
        buckets: u32,
    ) -> StoreResult<Vec<AttemptBucket>>;

    /// The trace of a hook: the hook `hook_id` as `app_key` accepted it (or, with `None`, as
    /// every app key that accepted it did, by app key), each with its app key's configs for its
    /// product as they are now, the configs whose queue holds it and the deliveries that carry
    /// it. Empty when no such hook is stored (never accepted, or purged by retention). One read;
    /// every lookup uses an index (without an app key: one probe per app key).
    async fn trace_hook(&self, app_key: Option<&str>, hook_id: &str)
    -> StoreResult<Vec<HookTrace>>;
}

/// One app key's queue, for the per-tenant metrics (`--metrics-app-key-label`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppKeyQueue {
    pub app_key: String,
    pub queued_hooks: u64,
    pub oldest_queued_at: Option<Millis>,
}

/// What `/metrics` reads from the store at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// Queue rows: hooks waiting for a config, not yet in a delivery.
    pub queued_hooks: u64,
    /// When the oldest queued hook was accepted.
    pub oldest_queued_at: Option<Millis>,
    /// PENDING and RETRYING deliveries.
    pub open_deliveries: Vec<(crate::model::DeliveryStatus, u64)>,
    /// Enabled configs by health state.
    pub configs_by_health: Vec<(crate::model::HealthState, u64)>,
    /// Configs with `enabled: false`.
    pub paused_configs: u64,
}

/// Cuts a config's queued hooks, as `(event, hook_seq)` sorted by event then seq, into runs of one
/// event of at most `max_hooks` each: the deliveries that a deleted config's queue becomes.
pub(crate) fn runs_by_event(queued: &[(String, i64)], max_hooks: u32) -> Vec<(&str, Vec<i64>)> {
    let chunk = max_hooks.max(1) as usize;
    let mut runs = Vec::new();
    let mut start = 0;
    while start < queued.len() {
        let event = &queued[start].0;
        let mut end = start;
        while end < queued.len() && &queued[end].0 == event && end - start < chunk {
            end += 1;
        }
        runs.push((
            event.as_str(),
            queued[start..end].iter().map(|(_, seq)| *seq).collect(),
        ));
        start = end;
    }
    runs
}

/// A time in the past used when nothing is scheduled.
pub const EPOCH: Millis = 0;

/// How far before a chart's window [`Store::attempt_buckets`] looks for deliveries whose retries
/// fall in the window.
pub const ATTEMPT_LOOKBACK: Millis = 24 * 3_600_000;

/// One bucket of [`Store::attempt_buckets`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptBucket {
    /// Index of the bucket from the window's start.
    pub index: u32,
    pub attempts: u64,
    /// Attempts answered 2xx.
    pub succeeded: u64,
    pub total_ms: u64,
    pub max_ms: u64,
}
