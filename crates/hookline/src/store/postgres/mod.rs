//! The shared store: one PostgreSQL database that several `hookline serve` processes can use.
//!
//! Same semantics as the embedded store, which stays the reference. Writes go through
//! **writer tasks** that group-commit (`writer`), each on its own connection: two for ingests
//! (side by side, so one's group runs while the other's statements run or its commit is
//! flushed), one for everything else (attempt records, leases, config changes). A writer takes
//! every job queued for it since its last group and runs them, one after the other, in a single
//! transaction, so one commit (one WAL flush) serves many callers.
//! Jobs run without savepoints (see [`JobStatus`]). Reads use a `deadpool-postgres` pool
//! (`connection`), and so do claims, each its own short transaction (`claims`).
//!
//! Claims take queue rows with `FOR UPDATE SKIP LOCKED`, so two claimers (two nodes) never take
//! the same rows. Ingest is idempotent through `ON CONFLICT (app_key, hook_id) DO NOTHING`.
//!
//! Several nodes (see ARCHITECTURE.md, "Several nodes"): leases, node membership and hand-back at
//! close are in `cluster`; the notifications that tell every node of every commit in `notify`.
//!
//! This file holds the store, its opening and closing, and the [`Store`] implementation, each
//! method handed to the file of its concern: `schema` (migrations), `connection`, `writer`,
//! `attempts` (attempt records), `ingest`, `claims` (the engine's work), `cluster`, `notify`,
//! `configs` (app keys and configs), `deliveries` (the delivery log, redelivery, replay), `trace`
//! (the trace of a hook) and
//! `maintenance` (retention, stats, the chart). The behaviour tests both backends share are in
//! `store/tests.rs`.
//!
//! [`JobStatus`]: crate::store::JobStatus

mod attempts;
mod ceiling;
mod claims;
mod cluster;
mod columns;
mod configs;
mod connection;
mod deliveries;
mod ingest;
mod maintenance;
mod notify;
mod operational;
mod routes;
mod schema;
mod sessions;
mod tls;
mod trace;
mod turns;
mod vacuum;
mod writer;

use std::pin::pin;
use std::sync::atomic::AtomicI32;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use hookline_wire::{Event, Product, ValidatedHook};
use tokio::sync::mpsc;

#[cfg(test)]
pub(crate) use self::attempts::advance_deliveries_sql;
pub use self::ceiling::commit_rate;
#[cfg(test)]
pub(crate) use self::claims::{CLAIM, CONFIG_CLAIM_LOCK};
pub use self::cluster::{
    CONNECTIONS_BESIDES_POOL, DEFAULT_CLAIM_LOCK_WAIT, DEFAULT_CLAIMS_AT_ONCE,
    DEFAULT_LOCK_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_STATEMENT_TIMEOUT, NodeOptions,
    generated_node_id,
};
#[cfg(test)]
pub(crate) use self::connection::create_test_database;
pub use self::connection::{
    DbConfig, connect_url, create_scratch_database, drop_scratch_database, parse_url,
};
#[cfg(test)]
pub(crate) use self::deliveries::LISTS_HOLDING_HOOK;
pub use self::tls::{SslMode, TlsOptions};

use self::attempts::{Unrecorded, retry_unrecorded};
use self::cluster::{DbClock, HeldLeases, Node, renew_leases};
use self::connection::{
    Limits, PING_WITHIN, answered, check_connection_budget, pool_err, reader_pool, writer_pool,
};
use self::ingest::FanOut;
use self::notify::listen;
use self::writer::{
    INGEST_WRITERS, Inbox, IngestLane, Job, LaneProgress, WriterConn, WriterContext, Writers,
    ingest_writer_loop, writer_loop,
};
use super::{
    AttemptBucket, Claim, DeliveryDetail, HookPurge, IngestOutcome, Lease, Membership,
    OpenDelivery, Store, StoreResult, StoreSignal, StoreStats,
};
use crate::model::{
    AppKeyRecord, AttemptOutcome, ConfigFilter, DeliveryFilter, DeliverySummary, Health, HookTrace,
    Millis, Page, PageRequest, PortalLinkRecord, PortalRedemption, ReplayFilter, SendableDelivery,
    SessionRecord, SessionStart, TestSendRecord, WebhookConfig,
};
use crate::operational::OperationalEvent;

pub struct PostgresStore {
    node: Node,
    unrecorded: Unrecorded,
    /// Background tasks (lease renewal, notification listener), stopped at close.
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The way in to the two lanes' writers; `None` once closed.
    writers: Mutex<Option<Writers>>,
    writer_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pool: Pool,
    signals_rx: Mutex<Option<mpsc::UnboundedReceiver<StoreSignal>>>,
    /// The fan-out of each (app key, product, event) as ingests answered it: weighs an ingest
    /// for the writer's fair share, and sends a wide one beside the writer (`ingest`).
    fan_out: FanOut,
    /// Wide ingests run beside the writer one at a time, tenant by tenant (`ingest.rs`).
    wide_ingests: turns::Turns,
    /// Claims take turns too, a few at a time (`claims.rs`).
    claims: turns::Turns,
    /// The longest a caller waits for the database's answer (`Limits::answer_within`): every
    /// call of the `Store` trait is bounded by it (`answered`).
    answer_within: std::time::Duration,
    /// How each writer lane is getting on: a stuck one refuses jobs at once (`LaneProgress`).
    jobs_progress: Arc<LaneProgress>,
    ingests_progress: Arc<LaneProgress>,
}

impl Drop for PostgresStore {
    /// A store dropped without `close` (a test's dying node) stops renewing and listening.
    fn drop(&mut self) {
        if let Ok(tasks) = self.background.get_mut() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

/// A database at the schema of the first `version` migrations, as an earlier release left it,
/// for tests of the migrations after: a connection to it.
#[cfg(test)]
pub(super) async fn create_at_schema_version(
    config: &DbConfig,
    version: usize,
) -> StoreResult<tokio_postgres::Client> {
    let mut client = config.connect().await?;
    schema::migrate_to(&mut client, version).await?;
    Ok(client)
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`), runs migrations and starts the writer.
    pub async fn open(url: &str, node: NodeOptions) -> StoreResult<Self> {
        PostgresStore::open_config(parse_url(url)?, node).await
    }

    /// Like [`PostgresStore::open`], from a parsed connection config.
    pub async fn open_config(config: DbConfig, node: NodeOptions) -> StoreResult<Self> {
        let claims_at_once = node.claims_at_once;
        let limits = Limits {
            pool_size: node.pool_size.max(1),
            lock_timeout: node.lock_timeout,
            statement_timeout: node.statement_timeout,
        };
        let node = Node {
            id: Arc::from(node.node_id.as_str()),
            ttl_ms: node.lease_ttl.as_millis().max(1) as i64,
            clock: DbClock::new(node.test_clock_skew_ms),
            held: HeldLeases::default(),
            claim_lock_wait: node.claim_lock_wait,
            churn: vacuum::QueueChurn::default(),
            listeners_gone: cluster::ListenersGone::default(),
        };
        let jobs_pool = writer_pool(config.clone().named(&node.id, "writer"), &limits)?;
        let mut writer_client = jobs_pool.get().await.map_err(pool_err)?;
        check_connection_budget(&writer_client, &limits).await?;
        // Before joining: a node that cannot open its writers leaves no heartbeat behind.
        let mut ingest_conns = Vec::with_capacity(INGEST_WRITERS);
        for n in 1..=INGEST_WRITERS {
            let name = format!("ingest-writer-{n}");
            let ingest_pool = writer_pool(config.clone().named(&node.id, &name), &limits)?;
            let ingest_client = ingest_pool.get().await.map_err(pool_err)?;
            ingest_conns.push((ingest_pool, ingest_client));
        }
        schema::migrate(&mut writer_client).await?;
        cluster::join(&writer_client, &node).await?;
        let pool = reader_pool(config.clone().named(&node.id, "pool"), &limits)?;

        let (job_tx, job_rx) = mpsc::unbounded_channel::<Job>();
        let (ingest_tx, ingest_rx) = mpsc::unbounded_channel::<Job>();
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        // The jobs writer's, then the ingest writers'.
        let writer_pids: Vec<Arc<AtomicI32>> = (0..=INGEST_WRITERS)
            .map(|_| Arc::new(AtomicI32::new(0)))
            .collect();
        let mut listener_config = config.named(&node.id, "listener");
        connection::unacknowledged_for(&mut listener_config.pg, &limits);
        let listener = tokio::spawn(listen(
            listener_config,
            node.id.clone(),
            sig_tx.clone(),
            writer_pids.clone(),
        ));
        let cx = WriterContext {
            node: node.id.clone(),
            answer_within: limits.answer_within(),
            signals_out: sig_tx,
            fan_out: FanOut::default(),
        };
        let fan_out = cx.fan_out.clone();
        let jobs_writer =
            WriterConn::new("jobs", jobs_pool, writer_client, writer_pids[0].clone()).await;
        let (jobs_progress, ingests_progress) =
            (LaneProgress::new(1), LaneProgress::new(INGEST_WRITERS));
        let mut tasks = vec![tokio::spawn(writer_loop(
            jobs_writer,
            Inbox::new(job_rx),
            jobs_progress.clone(),
            cx.clone(),
        ))];
        let ingest_lane = IngestLane::new(ingest_rx);
        for ((ingest_pool, ingest_client), pid) in ingest_conns.into_iter().zip(&writer_pids[1..]) {
            let writer = WriterConn::new("ingest", ingest_pool, ingest_client, pid.clone()).await;
            tasks.push(tokio::spawn(ingest_writer_loop(
                writer,
                ingest_lane.clone(),
                ingests_progress.clone(),
                cx.clone(),
            )));
        }
        let unrecorded: Unrecorded = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(retry_unrecorded(
            job_tx.downgrade(),
            unrecorded.clone(),
            node.held.clone(),
        ));
        let renewer = tokio::spawn(renew_leases(job_tx.downgrade(), node.clone()));
        let vacuum = tokio::spawn(vacuum::vacuum_queue(pool.clone(), node.churn.clone()));
        Ok(PostgresStore {
            node,
            background: Mutex::new(vec![listener, renewer, vacuum]),
            unrecorded,
            writers: Mutex::new(Some(Writers {
                jobs: job_tx,
                ingests: ingest_tx,
            })),
            writer_tasks: Mutex::new(tasks),
            pool,
            signals_rx: Mutex::new(Some(sig_rx)),
            fan_out,
            wide_ingests: turns::Turns::new(1, 1, limits.pool_wait()),
            claims: claims::claim_turns(claims_at_once, limits.pool_wait()),
            answer_within: limits.answer_within(),
            jobs_progress,
            ingests_progress,
        })
    }

    /// `op`, bounded by `answer_within` (see `Limits::answer_within`). Pinned where the caller
    /// made it (`pin!(self.ingest(..))`), not moved: a store call's future is as large as its
    /// whole state machine, and moving it into the timeout and through this function's own
    /// future copied it each time (callgrind, one event per request: 25 M more instructions of
    /// `memcpy` for 3,000 ingests, +7 % for the whole server).
    async fn answered<T>(
        &self,
        op: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        answered(self.answer_within, op).await
    }

    /// Stops the background tasks, hands this node's leases back and leaves, then stops the
    /// writers once they have committed the jobs queued before.
    async fn close(&self) {
        for task in self
            .background
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
        {
            task.abort();
        }
        self.leave().await;
        // Dropping the senders lets the writers finish the queued jobs and stop.
        let senders = self.writers.lock().ok().and_then(|mut w| w.take());
        drop(senders);
        let tasks = self
            .writer_tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        self.pool.close();
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn take_signals(&self) -> Option<mpsc::UnboundedReceiver<StoreSignal>> {
        self.signals_rx.lock().ok()?.take()
    }

    async fn ping(&self) -> StoreResult<()> {
        answered(PING_WITHIN.min(self.answer_within), pin!(self.ping())).await
    }

    async fn create_app_key(&self, record: AppKeyRecord, secret_hash: String) -> StoreResult<()> {
        self.answered(pin!(self.create_app_key(record, secret_hash)))
            .await
    }

    async fn list_app_keys(&self, page: PageRequest) -> StoreResult<Page<AppKeyRecord>> {
        self.answered(pin!(self.list_app_keys(page))).await
    }

    async fn get_app_key(&self, app_key: &str) -> StoreResult<Option<AppKeyRecord>> {
        self.answered(pin!(self.get_app_key(app_key))).await
    }

    async fn app_key_by_secret_hash(
        &self,
        secret_hash: &str,
        now: Millis,
    ) -> StoreResult<Option<String>> {
        self.answered(pin!(self.app_key_by_secret_hash(secret_hash, now)))
            .await
    }

    async fn set_secret_hash(
        &self,
        app_key: &str,
        secret_hash: String,
        previous_until: Option<Millis>,
    ) -> StoreResult<bool> {
        self.answered(pin!(self.set_secret_hash(
            app_key,
            secret_hash,
            previous_until
        )))
        .await
    }

    async fn create_session(
        &self,
        session: SessionRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<()> {
        self.answered(pin!(self.create_session(session, keep_per_app_key)))
            .await
    }

    async fn find_session(&self, id_hash: &str, now: Millis) -> StoreResult<Option<SessionRecord>> {
        self.answered(pin!(self.find_session(id_hash, now))).await
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        self.answered(pin!(self.delete_session(id_hash))).await
    }

    async fn create_portal_link(
        &self,
        link: PortalLinkRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<bool> {
        self.answered(pin!(self.create_portal_link(link, keep_per_app_key)))
            .await
    }

    async fn redeem_portal_link(
        &self,
        token_hash: &str,
        start: SessionStart,
        keep_sessions_per_app_key: usize,
    ) -> StoreResult<PortalRedemption> {
        self.answered(pin!(self.redeem_portal_link(
            token_hash,
            start,
            keep_sessions_per_app_key
        )))
        .await
    }

    async fn insert_config(&self, config: WebhookConfig) -> StoreResult<()> {
        self.answered(pin!(self.insert_config(config))).await
    }

    async fn update_config(&self, config: WebhookConfig) -> StoreResult<Option<Millis>> {
        self.answered(pin!(self.update_config(config))).await
    }

    async fn delete_config(&self, app_key: &str, config_id: &str) -> StoreResult<bool> {
        self.answered(pin!(self.delete_config(app_key, config_id)))
            .await
    }

    async fn get_config(
        &self,
        app_key: &str,
        config_id: &str,
    ) -> StoreResult<Option<WebhookConfig>> {
        self.answered(pin!(self.get_config(app_key, config_id)))
            .await
    }

    async fn list_configs(
        &self,
        app_key: &str,
        filter: ConfigFilter,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookConfig>> {
        self.answered(pin!(self.list_configs(app_key, filter, page)))
            .await
    }

    async fn all_configs(&self) -> StoreResult<Vec<WebhookConfig>> {
        self.answered(pin!(self.all_configs())).await
    }

    async fn set_health(&self, config_id: &str, health: Health) -> StoreResult<()> {
        self.answered(pin!(self.set_health(config_id, health)))
            .await
    }

    async fn operational_events(&self, limit: u32) -> StoreResult<Vec<OperationalEvent>> {
        self.answered(pin!(self.operational_events(limit))).await
    }

    async fn forget_operational_events(&self, ids: Vec<i64>) -> StoreResult<()> {
        self.answered(pin!(self.forget_operational_events(ids)))
            .await
    }

    async fn ingest(
        &self,
        app_key: &str,
        product: Product,
        event: Event,
        hooks: Vec<ValidatedHook>,
    ) -> StoreResult<IngestOutcome> {
        self.answered(pin!(self.ingest(app_key, product, event, hooks)))
            .await
    }

    async fn claim_batches(
        &self,
        config: &WebhookConfig,
        max_hooks: u32,
        max_batches: u32,
    ) -> StoreResult<Claim> {
        self.answered(pin!(self.claim_batches(config, max_hooks, max_batches)))
            .await
    }

    async fn load_delivery(&self, hooks_id: &str) -> StoreResult<Option<SendableDelivery>> {
        self.answered(pin!(self.load_delivery(hooks_id))).await
    }

    async fn lease_delivery(&self, hooks_id: &str) -> StoreResult<Lease> {
        self.answered(pin!(self.lease_delivery(hooks_id))).await
    }

    async fn due_deliveries(
        &self,
        until: Millis,
        limit: u32,
        configs: &[String],
    ) -> StoreResult<Vec<OpenDelivery>> {
        self.answered(pin!(self.due_deliveries(until, limit, configs)))
            .await
    }

    async fn membership(&self) -> StoreResult<Membership> {
        self.answered(pin!(self.membership())).await
    }

    async fn find_config(&self, config_id: &str) -> StoreResult<Option<WebhookConfig>> {
        self.answered(pin!(self.find_config(config_id))).await
    }

    fn record_attempt(&self, outcome: AttemptOutcome) {
        self.record_attempt(outcome)
    }

    fn expire_delivery(&self, hooks_id: String) {
        self.expire_delivery(hooks_id)
    }

    fn tell_home(&self, config_id: String) {
        self.tell_home(config_id)
    }

    async fn flush(&self) -> StoreResult<()> {
        self.answered(pin!(self.flush())).await
    }

    async fn open_deliveries(&self) -> StoreResult<Vec<OpenDelivery>> {
        self.answered(pin!(self.open_deliveries())).await
    }

    async fn configs_with_queued_hooks(&self) -> StoreResult<Vec<String>> {
        self.answered(pin!(self.configs_with_queued_hooks())).await
    }

    async fn list_deliveries(
        &self,
        app_key: &str,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliverySummary>> {
        self.answered(pin!(self.list_deliveries(app_key, filter, page)))
            .await
    }

    async fn get_delivery(
        &self,
        app_key: &str,
        hooks_id: &str,
    ) -> StoreResult<Option<DeliveryDetail>> {
        self.answered(pin!(self.get_delivery(app_key, hooks_id)))
            .await
    }

    async fn redeliver(
        &self,
        app_key: &str,
        hooks_id: &str,
        new_hooks_id: String,
    ) -> StoreResult<Option<DeliverySummary>> {
        self.answered(pin!(self.redeliver(app_key, hooks_id, new_hooks_id)))
            .await
    }

    async fn replay(
        &self,
        app_key: &str,
        config_id: &str,
        filter: ReplayFilter,
    ) -> StoreResult<u64> {
        self.answered(pin!(self.replay(app_key, config_id, filter)))
            .await
    }

    async fn record_test_send(&self, record: TestSendRecord) -> StoreResult<()> {
        self.answered(pin!(self.record_test_send(record))).await
    }

    async fn purge_deliveries(&self, cutoff: Millis, batch: u32) -> StoreResult<usize> {
        self.answered(pin!(self.purge_deliveries(cutoff, batch)))
            .await
    }

    async fn purge_hooks(&self, cutoff: Millis, after: i64, batch: u32) -> StoreResult<HookPurge> {
        self.answered(pin!(self.purge_hooks(cutoff, after, batch)))
            .await
    }

    async fn purge_held(&self, cutoff: Millis, batch: u32) -> StoreResult<usize> {
        self.answered(pin!(self.purge_held(cutoff, batch))).await
    }

    async fn close(&self) {
        // A database that stopped answering must not hold the process at its exit: what is
        // not written then is what a crash would lose (leases expire, and unrecorded attempts
        // are sent again after the restart).
        let closed = answered(self.answer_within, async {
            self.close().await;
            Ok(())
        });
        if let Err(e) = closed.await {
            tracing::warn!(
                error = %e,
                "closing the store: leases perhaps not handed back (they expire), attempt records \
                 still queued not written (their attempts are sent again)"
            );
        }
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        self.answered(pin!(self.stats())).await
    }

    async fn queue_by_app_key(&self) -> StoreResult<Vec<crate::store::AppKeyQueue>> {
        self.answered(pin!(self.queue_by_app_key())).await
    }

    async fn attempt_buckets(
        &self,
        app_key: &str,
        config_id: &str,
        since: Millis,
        bucket_ms: i64,
        buckets: u32,
    ) -> StoreResult<Vec<AttemptBucket>> {
        self.answered(pin!(
            self.attempt_buckets(app_key, config_id, since, bucket_ms, buckets)
        ))
        .await
    }

    async fn trace_hook(
        &self,
        app_key: Option<&str>,
        hook_id: &str,
    ) -> StoreResult<Vec<HookTrace>> {
        self.answered(pin!(self.trace_hook(app_key, hook_id))).await
    }
}
