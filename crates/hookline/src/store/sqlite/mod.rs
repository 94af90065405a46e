//! The embedded store: one SQLite database file in WAL mode, for one process.
//!
//! Writes go through a single writer thread that **group-commits** (`writer`): it takes every job
//! queued since its last commit (many ingest requests, claims and attempt records) and runs them
//! one after the other in one transaction, without savepoints (see [`JobStatus`]). One fsync per
//! group, not per request. Callers get their answer only after the commit.
//!
//! Reads use a small pool of separate connections (`connection`; WAL lets them run beside the
//! writer).
//!
//! `synchronous=NORMAL` in WAL mode: a committed transaction survives a crash of the process; a
//! power loss may lose the last commits (`--fsync full`, [`Fsync::Full`], is the knob for that).
//!
//! This file holds the store, its opening and closing, and the [`Store`] implementation, each
//! method handed to the file of its concern: `schema` (migrations), `connection`, `writer` (with
//! `statements`, its prepared statements, and `subscriptions`, its copy of the fan-out index),
//! `attempts` (attempt records), `ingest`, `claims` (the engine's work), `configs` (app keys and
//! configs), `deliveries` (the delivery log, redelivery, replay), `trace` (the trace of a hook) and `maintenance` (retention,
//! stats, the chart). The behaviour tests both backends share are in `store/tests.rs`.
//!
//! [`JobStatus`]: crate::store::JobStatus

mod attempts;
mod claims;
mod configs;
mod connection;
mod deliveries;
mod ingest;
mod maintenance;
mod operational;
mod schema;
mod sessions;
mod statements;
mod subscriptions;
mod trace;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hookline_wire::{Event, Product, ValidatedHook};
use tokio::sync::mpsc;

use self::attempts::Unrecorded;
use self::connection::{ReaderPool, open_connection};
use self::subscriptions::Published;
use self::writer::{Checkpoints, Job, WalRestart, checkpoint_loop, writer_loop};
use super::{
    AttemptBucket, Claim, DeliveryDetail, HookPurge, IngestOutcome, Lease, Membership,
    OpenDelivery, Store, StoreError, StoreResult, StoreSignal, StoreStats,
};
use crate::model::{
    AppKeyRecord, AttemptOutcome, ConfigFilter, DeliveryFilter, DeliverySummary, Health, HookTrace,
    Millis, Page, PageRequest, PortalLinkRecord, PortalRedemption, ReplayFilter, SendableDelivery,
    SessionRecord, SessionStart, TestSendRecord, WebhookConfig,
};
use crate::operational::OperationalEvent;

pub struct SqliteStore {
    writer: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<ReaderPool>,
    signals_rx: Mutex<Option<mpsc::UnboundedReceiver<StoreSignal>>>,
    checkpointer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer_stop: Arc<std::sync::atomic::AtomicBool>,
    unrecorded: Unrecorded,
    /// The writer's subscriptions, for ingests to evaluate filters and keys before it.
    published: Published,
}

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Fsync {
    /// WAL with `synchronous=NORMAL`: a commit survives a crash of the process; a power loss may
    /// lose the last commits.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is synced; survives a power loss, costs an fsync per
    /// group commit.
    Full,
}

/// The database holds signing secrets and phone numbers: a data dir hookline creates is its
/// user's alone (0700). An existing dir keeps the permissions its owner gave it.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A new database file is created empty and private (0600) before the engine opens it; the
/// engine gives its WAL and shared-memory files the database file's permissions.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A database in `data_dir` at the schema of the first `version` migrations, as an earlier
/// release left it, for tests of the migrations after.
#[cfg(test)]
pub(super) fn create_at_schema_version(
    data_dir: &Path,
    version: usize,
) -> StoreResult<rusqlite::Connection> {
    let mut conn = open_connection(&data_dir.join("hookline.db"), false)?;
    schema::migrate_to(&mut conn, version)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) `hookline.db` in `data_dir`, runs migrations and starts the
    /// writer thread.
    pub fn open(data_dir: &Path) -> StoreResult<Self> {
        SqliteStore::open_with(data_dir, Fsync::Normal)
    }

    /// Like [`SqliteStore::open`], choosing how hard commits are synced to disk.
    pub fn open_with(data_dir: &Path, fsync: Fsync) -> StoreResult<Self> {
        SqliteStore::open_inner(data_dir, fsync, Checkpoints::default())
    }

    /// Like [`SqliteStore::open`], with checkpoints every `every` and the WAL started again past
    /// `frames` frames (a test fills a small WAL quickly).
    #[cfg(test)]
    pub(super) fn open_with_checkpoints(
        data_dir: &Path,
        every: std::time::Duration,
        frames: i64,
    ) -> StoreResult<Self> {
        let checkpoints = Checkpoints {
            every,
            restart_wal_frames: frames,
        };
        SqliteStore::open_inner(data_dir, Fsync::Normal, checkpoints)
    }

    fn open_inner(data_dir: &Path, fsync: Fsync, checkpoints: Checkpoints) -> StoreResult<Self> {
        let unavailable =
            |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", data_dir.display()));
        create_private_dir(data_dir).map_err(unavailable)?;
        let path = data_dir.join("hookline.db");
        create_private_file(&path).map_err(unavailable)?;
        let mut conn = open_connection(&path, false)?;
        if fsync == Fsync::Full {
            conn.pragma_update(None, "synchronous", "FULL")?;
        }
        // Read back from the writer's connection (the one whose commits it governs) and logged,
        // so `--fsync` is observable: a flag that silently did nothing would show here.
        let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0))?;
        let synchronous = match synchronous {
            0 => "OFF",
            1 => "NORMAL",
            2 => "FULL",
            3 => "EXTRA",
            _ => "unknown",
        };
        tracing::info!(
            synchronous,
            path = %path.display(),
            "embedded store opened (WAL)"
        );
        schema::migrate(&mut conn)?;

        let (job_tx, job_rx) = std::sync::mpsc::channel::<Job>();
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        let published = Published::default();
        let writer_published = published.clone();
        let wal_restart = WalRestart::default();
        let writer_wal_restart = wal_restart.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, job_rx, sig_tx, writer_published, writer_wal_restart))
            .map_err(|e| StoreError::Unavailable(format!("cannot start writer thread: {e}")))?;
        let checkpointer_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let unrecorded: Unrecorded = Arc::new(Mutex::new(Vec::new()));
        let checkpointer = {
            let path = path.clone();
            let stop = checkpointer_stop.clone();
            let jobs = job_tx.clone();
            let unrecorded = unrecorded.clone();
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || {
                    checkpoint_loop(path, stop, jobs, unrecorded, wal_restart, checkpoints)
                })
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot start checkpoint thread: {e}"))
                })?
        };
        Ok(SqliteStore {
            published,
            unrecorded,
            checkpointer: Mutex::new(Some(checkpointer)),
            checkpointer_stop,
            writer: Mutex::new(Some(job_tx)),
            writer_thread: Mutex::new(Some(thread)),
            readers: Arc::new(ReaderPool {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            signals_rx: Mutex::new(Some(sig_rx)),
        })
    }

    /// Stops the checkpointer, then the writer once it has committed the jobs queued before.
    async fn close(&self) {
        self.checkpointer_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let checkpointer = self.checkpointer.lock().ok().and_then(|mut t| t.take());
        if let Some(checkpointer) = checkpointer {
            checkpointer.thread().unpark();
            let _ = tokio::task::spawn_blocking(move || checkpointer.join()).await;
        }
        if let Ok(mut writer) = self.writer.lock() {
            writer.take();
        }
        let thread = self.writer_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn take_signals(&self) -> Option<mpsc::UnboundedReceiver<StoreSignal>> {
        self.signals_rx.lock().ok()?.take()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.ping().await
    }

    async fn create_app_key(&self, record: AppKeyRecord, secret_hash: String) -> StoreResult<()> {
        self.create_app_key(record, secret_hash).await
    }

    async fn list_app_keys(&self, page: PageRequest) -> StoreResult<Page<AppKeyRecord>> {
        self.list_app_keys(page).await
    }

    async fn get_app_key(&self, app_key: &str) -> StoreResult<Option<AppKeyRecord>> {
        self.get_app_key(app_key).await
    }

    async fn app_key_by_secret_hash(
        &self,
        secret_hash: &str,
        now: Millis,
    ) -> StoreResult<Option<String>> {
        self.app_key_by_secret_hash(secret_hash, now).await
    }

    async fn set_secret_hash(
        &self,
        app_key: &str,
        secret_hash: String,
        previous_until: Option<Millis>,
    ) -> StoreResult<bool> {
        self.set_secret_hash(app_key, secret_hash, previous_until)
            .await
    }

    async fn create_session(
        &self,
        session: SessionRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<()> {
        self.create_session(session, keep_per_app_key).await
    }

    async fn find_session(&self, id_hash: &str, now: Millis) -> StoreResult<Option<SessionRecord>> {
        self.find_session(id_hash, now).await
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        self.delete_session(id_hash).await
    }

    async fn create_portal_link(
        &self,
        link: PortalLinkRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<bool> {
        self.create_portal_link(link, keep_per_app_key).await
    }

    async fn redeem_portal_link(
        &self,
        token_hash: &str,
        start: SessionStart,
        keep_sessions_per_app_key: usize,
    ) -> StoreResult<PortalRedemption> {
        self.redeem_portal_link(token_hash, start, keep_sessions_per_app_key)
            .await
    }

    async fn insert_config(&self, config: WebhookConfig) -> StoreResult<()> {
        self.insert_config(config).await
    }

    async fn update_config(&self, config: WebhookConfig) -> StoreResult<Option<Millis>> {
        self.update_config(config).await
    }

    async fn delete_config(&self, app_key: &str, config_id: &str) -> StoreResult<bool> {
        self.delete_config(app_key, config_id).await
    }

    async fn get_config(
        &self,
        app_key: &str,
        config_id: &str,
    ) -> StoreResult<Option<WebhookConfig>> {
        self.get_config(app_key, config_id).await
    }

    async fn list_configs(
        &self,
        app_key: &str,
        filter: ConfigFilter,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookConfig>> {
        self.list_configs(app_key, filter, page).await
    }

    async fn all_configs(&self) -> StoreResult<Vec<WebhookConfig>> {
        self.all_configs().await
    }

    async fn set_health(&self, config_id: &str, health: Health) -> StoreResult<()> {
        self.set_health(config_id, health).await
    }

    async fn operational_events(&self, limit: u32) -> StoreResult<Vec<OperationalEvent>> {
        self.operational_events(limit).await
    }

    async fn forget_operational_events(&self, ids: Vec<i64>) -> StoreResult<()> {
        self.forget_operational_events(ids).await
    }

    async fn ingest(
        &self,
        app_key: &str,
        product: Product,
        event: Event,
        hooks: Vec<ValidatedHook>,
    ) -> StoreResult<IngestOutcome> {
        self.ingest(app_key, product, event, hooks).await
    }

    async fn claim_batches(
        &self,
        config: &WebhookConfig,
        max_hooks: u32,
        max_batches: u32,
    ) -> StoreResult<Claim> {
        self.claim_batches(config, max_hooks, max_batches).await
    }

    async fn load_delivery(&self, hooks_id: &str) -> StoreResult<Option<SendableDelivery>> {
        self.load_delivery(hooks_id).await
    }

    async fn lease_delivery(&self, hooks_id: &str) -> StoreResult<Lease> {
        self.lease_delivery(hooks_id).await
    }

    async fn due_deliveries(
        &self,
        until: Millis,
        limit: u32,
        configs: &[String],
    ) -> StoreResult<Vec<OpenDelivery>> {
        self.due_deliveries(until, limit, configs).await
    }

    async fn membership(&self) -> StoreResult<Membership> {
        self.membership().await
    }

    async fn find_config(&self, config_id: &str) -> StoreResult<Option<WebhookConfig>> {
        self.find_config(config_id).await
    }

    fn record_attempt(&self, outcome: AttemptOutcome) {
        self.record_attempt(outcome)
    }

    fn expire_delivery(&self, hooks_id: String) {
        self.expire_delivery(hooks_id)
    }

    async fn flush(&self) -> StoreResult<()> {
        self.flush().await
    }

    async fn open_deliveries(&self) -> StoreResult<Vec<OpenDelivery>> {
        self.open_deliveries().await
    }

    async fn configs_with_queued_hooks(&self) -> StoreResult<Vec<String>> {
        self.configs_with_queued_hooks().await
    }

    async fn list_deliveries(
        &self,
        app_key: &str,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliverySummary>> {
        self.list_deliveries(app_key, filter, page).await
    }

    async fn get_delivery(
        &self,
        app_key: &str,
        hooks_id: &str,
    ) -> StoreResult<Option<DeliveryDetail>> {
        self.get_delivery(app_key, hooks_id).await
    }

    async fn redeliver(
        &self,
        app_key: &str,
        hooks_id: &str,
        new_hooks_id: String,
    ) -> StoreResult<Option<DeliverySummary>> {
        self.redeliver(app_key, hooks_id, new_hooks_id).await
    }

    async fn replay(
        &self,
        app_key: &str,
        config_id: &str,
        filter: ReplayFilter,
    ) -> StoreResult<u64> {
        self.replay(app_key, config_id, filter).await
    }

    async fn record_test_send(&self, record: TestSendRecord) -> StoreResult<()> {
        self.record_test_send(record).await
    }

    async fn purge_deliveries(&self, cutoff: Millis, batch: u32) -> StoreResult<usize> {
        self.purge_deliveries(cutoff, batch).await
    }

    async fn purge_hooks(&self, cutoff: Millis, after: i64, batch: u32) -> StoreResult<HookPurge> {
        self.purge_hooks(cutoff, after, batch).await
    }

    async fn purge_held(&self, cutoff: Millis, batch: u32) -> StoreResult<usize> {
        self.purge_held(cutoff, batch).await
    }

    async fn close(&self) {
        self.close().await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        self.stats().await
    }

    async fn queue_by_app_key(&self) -> StoreResult<Vec<crate::store::AppKeyQueue>> {
        self.queue_by_app_key().await
    }

    async fn attempt_buckets(
        &self,
        app_key: &str,
        config_id: &str,
        since: Millis,
        bucket_ms: i64,
        buckets: u32,
    ) -> StoreResult<Vec<AttemptBucket>> {
        self.attempt_buckets(app_key, config_id, since, bucket_ms, buckets)
            .await
    }

    async fn trace_hook(
        &self,
        app_key: Option<&str>,
        hook_id: &str,
    ) -> StoreResult<Vec<HookTrace>> {
        self.trace_hook(app_key, hook_id).await
    }
}
