//! The shared store: one PostgreSQL database that several `hookline serve` processes can use.
//!
//! Same semantics as the SQLite store (`sqlite.rs`), which stays the reference. Writes go through
//! one **writer task** that group-commits: it takes every job queued since its last commit
//! (ingests, claims, attempt records, config changes) and runs them, one after the other, in a
//! single transaction on its own connection, so one commit (one WAL flush) serves many callers.
//! As in SQLite, jobs run without savepoints: a job that refuses (a conflict) decides before it
//! writes, and a real error rolls the whole group back and fails every job in it. Reads use a
//! `deadpool-postgres` pool.
//!
//! Claims take queue rows with `FOR UPDATE SKIP LOCKED`, so two claimers (two nodes' writers)
//! never take the same rows. Ingest is idempotent through `ON CONFLICT (app_key, hook_id) DO
//! NOTHING`.
//!
//! Migrations: an ordered list below; `schema_migrations` records the versions applied. They run
//! at open under a transaction-scoped advisory lock, so nodes starting together migrate once.
//!
//! Several nodes (see ARCHITECTURE.md, "Several nodes"):
//! - **Leases.** A delivery is sent only by the node that holds its lease (`lease_owner`,
//!   `lease_expires_at`). A claim leases the deliveries it creates; [`Store::lease_delivery`]
//!   leases an existing one whose attempt is due; the attempt's record frees it. A background
//!   task renews this node's leases every third of the lease time, so only a node that stopped
//!   (crashed, or cut off from the database) loses them, and [`Store::close`] hands back those
//!   left. Other nodes find expired leases with [`Store::due_deliveries`].
//! - **Notifications.** Ingest and replay `NOTIFY hookline_work, '<config id>'` in their
//!   transaction, config changes `NOTIFY hookline_config`. A listener connection turns them into
//!   [`StoreSignal`]s (after a lost connection, one `Resync`). Signals of this node's own commits
//!   are also emitted locally, at once.
//!

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use hookline_wire::{Event, Product, ValidatedHook};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, GenericClient, NoTls, Row};

use super::sqlite::{
    CONFIG_COLUMNS, ConfigRow, DELIVERY_COLUMNS, DeliveryRow, corrupt, join_events, page_size,
    paginate, parse_event, parse_status, schedule_text,
};
use super::{
    AttemptBucket, Claim, ClaimedBatch, DeliveryDetail, HookPurge, IngestOutcome, JobStatus, Lease,
    Membership, OpenDelivery, Store, StoreError, StoreResult, StoreSignal, StoreStats, cursor,
    job_status,
};
use crate::model::{
    AppKeyRecord, AttemptErrorKind, AttemptOutcome, AttemptRecord, AttemptResult, ConfigFilter,
    DeliveryFilter, DeliveryStatus, DeliverySummary, Health, HealthState, Millis, Page,
    PageRequest, ReplayFilter, SendableDelivery, StoredHook, WebhookConfig, now_millis,
};

/// Most jobs folded into one transaction: bounds a group's latency under a flood.
const MAX_JOBS_PER_COMMIT: usize = 1024;
/// Pooled connections: reads, and claims (each its own short transaction).
const READER_POOL_SIZE: usize = 16;

/// Schema migrations, applied in order at open; `schema_migrations` records which ran.
/// Times are epoch milliseconds (BIGINT); hook bodies are TEXT so envelopes stay byte-exact.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE app_keys (
    app_key     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);
CREATE TABLE webhook_configs (
    id                   TEXT PRIMARY KEY,
    app_key              TEXT NOT NULL,
    product              TEXT NOT NULL,
    events               TEXT NOT NULL,
    url                  TEXT NOT NULL,
    signature            TEXT NOT NULL,
    signing_secret       TEXT,
    enabled              BOOLEAN NOT NULL,
    description          TEXT NOT NULL,
    max_hooks            BIGINT NOT NULL,
    max_in_flight        BIGINT NOT NULL,
    timeout_ms           BIGINT NOT NULL,
    retry_schedule       TEXT NOT NULL,
    health_state         TEXT NOT NULL,
    consecutive_failures BIGINT NOT NULL,
    last_success_at      BIGINT,
    last_failure_at      BIGINT,
    failing_since        BIGINT,
    disabled_reason      TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    previous_signing_secret TEXT,
    previous_signing_secret_expires_at BIGINT
);
CREATE INDEX webhook_configs_by_app_key ON webhook_configs (app_key, id);
CREATE TABLE subscriptions (
    app_key   TEXT NOT NULL,
    product   TEXT NOT NULL,
    event     TEXT NOT NULL,
    config_id TEXT NOT NULL,
    PRIMARY KEY (app_key, product, event, config_id)
);
CREATE INDEX subscriptions_by_config ON subscriptions (config_id);
CREATE TABLE hooks (
    seq        BIGSERIAL PRIMARY KEY,
    app_key    TEXT NOT NULL,
    hook_id    TEXT NOT NULL,
    product    TEXT NOT NULL,
    event      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (app_key, hook_id)
);
CREATE TABLE queue (
    config_id TEXT NOT NULL,
    event     TEXT NOT NULL,
    hook_seq  BIGINT NOT NULL,
    PRIMARY KEY (config_id, event, hook_seq)
);
-- A claim picks the event of the config's oldest queued hook.
CREATE INDEX queue_by_config_seq ON queue (config_id, hook_seq);
CREATE INDEX queue_by_hook ON queue (hook_seq);
CREATE TABLE deliveries (
    hooks_id        TEXT PRIMARY KEY,
    app_key         TEXT NOT NULL,
    config_id       TEXT NOT NULL,
    product         TEXT NOT NULL,
    event           TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt_count   BIGINT NOT NULL,
    next_attempt_at BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_log ON deliveries (app_key, created_at DESC, hooks_id DESC);
CREATE INDEX deliveries_by_config ON deliveries (config_id, created_at);
CREATE INDEX deliveries_by_status ON deliveries (status, updated_at);
CREATE TABLE delivery_hooks (
    hooks_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    hook_seq BIGINT NOT NULL,
    PRIMARY KEY (hooks_id, position)
);
CREATE INDEX delivery_hooks_by_hook ON delivery_hooks (hook_seq);
CREATE TABLE attempts (
    hooks_id      TEXT NOT NULL,
    number        BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    status_code   BIGINT,
    error_kind    TEXT,
    error_message TEXT,
    response_body TEXT,
    PRIMARY KEY (hooks_id, number)
);
"#,
    // 2: leases, so several nodes share the deliveries (see the module doc).
    r#"
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
ALTER TABLE deliveries ADD COLUMN lease_expires_at BIGINT;
-- The sweep for due work: open deliveries by due time.
CREATE INDEX deliveries_open_by_due ON deliveries ((COALESCE(next_attempt_at, 0)))
    WHERE status IN ('PENDING', 'RETRYING');
-- Renewing and handing back one node's leases.
CREATE INDEX deliveries_by_lease_owner ON deliveries (lease_owner)
    WHERE lease_owner IS NOT NULL;
"#,
    // 3: the live nodes, so per-config limits are split among them.
    r#"
CREATE TABLE nodes (
    node_id      TEXT PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
"#,
];

/// Notification channels (payload: a config id).
const WORK_CHANNEL: &str = "hookline_work";
const CONFIG_CHANNEL: &str = "hookline_config";
/// A node handed its leases back (payload: its node id).
const FREED_CHANNEL: &str = "hookline_freed";
/// A node joined or left (payload: its node id).
const NODES_CHANNEL: &str = "hookline_nodes";
/// A node that has not been heard of for this long is forgotten (its row deleted).
const FORGET_NODES_AFTER_MS: i64 = 24 * 3_600_000;

/// Who this node is among those sharing the database, and how long its leases last.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Written as `lease_owner`; unique per running process.
    pub node_id: String,
    /// How long a lease outlives the last renewal: the time another node waits before taking
    /// over the work of a node that died. Renewed every third of it.
    pub lease_ttl: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            node_id: generated_node_id(),
            lease_ttl: Duration::from_secs(30),
        }
    }
}

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
struct Node {
    id: Arc<str>,
    ttl_ms: i64,
}

impl Node {
    fn lease_until(&self) -> Millis {
        now_millis() + self.ttl_ms
    }
}

/// Connection and I/O failures make the store unavailable (callers answer 503); so does any other
/// database error: nothing was half-written, the group rolled back.
fn pg_err(e: tokio_postgres::Error) -> StoreError {
    // `Display` of a server error says only "db error": the code and message are the useful part.
    match e.as_db_error() {
        Some(db) => {
            StoreError::Unavailable(format!("postgres: {} ({})", db.message(), db.code().code()))
        }
        None => StoreError::Unavailable(format!("postgres: {e}")),
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("postgres pool: {e}"))
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Finisher = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// What a job ran: its status, the signals to emit if the group commits, and what to do once
/// the commit is known.
struct JobRun {
    status: JobStatus,
    signals: Vec<StoreSignal>,
    finish: Finisher,
}

/// A job gets the writer's connection, inside the group's open transaction.
type Job = Box<dyn FnOnce(Group) -> BoxFuture<JobRun> + Send>;

/// What the jobs of one write group share.
#[derive(Clone)]
struct Group {
    client: Arc<Client>,
    /// This node (the lease owner its records may free).
    node: Arc<str>,
    /// Attempt records of the group not written yet: they are written together, in two
    /// statements, before the next job that reads delivery state (a lease) and at the end of the
    /// group. One round trip per record would bound the writer at a few thousand a second.
    records: Arc<Mutex<Vec<AttemptOutcome>>>,
    /// Config health from the group's attempt records, the last per config, written at the end
    /// of the group in config id order. Two nodes' groups each update several config rows; in
    /// the order their attempts happened to come, they deadlock (one group rolls back). In one
    /// fixed order, at the end, they only ever wait.
    health: Arc<Mutex<std::collections::BTreeMap<String, Health>>>,
}

/// Attempt records whose group did not commit (the database was unreachable), waiting to be
/// submitted again by the retry task, so a database that comes back gets every attempt.
type Unrecorded = Arc<Mutex<Vec<AttemptOutcome>>>;

/// How often the retry task resubmits unrecorded attempts.
const RECORD_RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Holds an attempt record until its job has run; a job dropped unrun (its group could not
/// begin) hands the record back to `unrecorded` instead of losing it.
struct PendingRecord {
    outcome: Option<AttemptOutcome>,
    unrecorded: Unrecorded,
}

impl Drop for PendingRecord {
    fn drop(&mut self) {
        if let Some(outcome) = self.outcome.take()
            && let Ok(mut list) = self.unrecorded.lock()
        {
            list.push(outcome);
        }
    }
}

/// The writer job of one attempt record: if its group fails to commit, the record goes back to
/// `unrecorded` for the retry task.
fn record_job(outcome: AttemptOutcome, unrecorded: Unrecorded) -> Job {
    let mut pending = PendingRecord {
        outcome: Some(outcome),
        unrecorded,
    };
    Box::new(move |group: Group| {
        Box::pin(async move {
            let Some(outcome) = pending.outcome.take() else {
                return JobRun {
                    status: JobStatus::Done,
                    signals: Vec::new(),
                    finish: Box::new(|_| {}),
                };
            };
            // Written with the group's other records (`flush_records`); the group's commit
            // decides for all of them.
            let status = match group.records.lock() {
                Ok(mut records) => {
                    records.push(outcome.clone());
                    JobStatus::Done
                }
                Err(_) => JobStatus::Failed(StoreError::Unavailable("records lock".into())),
            };
            let unrecorded = pending.unrecorded.clone();
            let finish: Finisher = Box::new(move |commit| {
                if let Err(e) = commit {
                    tracing::warn!(error = %e, hooks_id = outcome.hooks_id, "attempt record not committed; will retry");
                    if let Ok(mut list) = unrecorded.lock() {
                        list.push(outcome);
                    }
                }
            });
            JobRun {
                status,
                signals: Vec::new(),
                finish,
            }
        })
    })
}

/// Resubmits unrecorded attempts until the writer is gone (the store closed).
async fn retry_unrecorded(jobs: mpsc::WeakUnboundedSender<Job>, unrecorded: Unrecorded) {
    loop {
        tokio::time::sleep(RECORD_RETRY_EVERY).await;
        let Some(sender) = jobs.upgrade() else {
            return;
        };
        let retry = unrecorded
            .lock()
            .map(|mut list| std::mem::take(&mut *list))
            .unwrap_or_default();
        for outcome in retry {
            let _ = sender.send(record_job(outcome, unrecorded.clone()));
        }
    }
}

pub struct PostgresStore {
    node: Node,
    unrecorded: Unrecorded,
    /// Background tasks (lease renewal, notification listener), stopped at close.
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    writer: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pool: Pool,
    signals_rx: Mutex<Option<mpsc::UnboundedReceiver<StoreSignal>>>,
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

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("store lock poisoned".into())
}

async fn connect(config: &tokio_postgres::Config) -> StoreResult<Client> {
    let (client, connection) = config.connect(NoTls).await.map_err(pg_err)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "postgres writer connection ended");
        }
    });
    Ok(client)
}

fn parse_url(url: &str) -> StoreResult<tokio_postgres::Config> {
    url.parse()
        .map_err(|e| StoreError::Unavailable(format!("database url: {e}")))
}

/// For tests: creates a new, empty database on the server of `url` and returns its name, so
/// every test (or test server) starts from nothing.
pub async fn create_scratch_database(url: &str) -> StoreResult<String> {
    let config = parse_url(url)?;
    let client = connect(&config).await?;
    let name = format!(
        "hookline_test_{}",
        hookline_wire::generate_id().to_lowercase()
    );
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(pg_err)?;
    Ok(name)
}

#[cfg(test)]
pub(crate) async fn create_test_database(url: &str) -> StoreResult<tokio_postgres::Config> {
    let name = create_scratch_database(url).await?;
    let mut config = parse_url(url)?;
    config.dbname(&name);
    Ok(config)
}

async fn migrate(client: &mut Client) -> StoreResult<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_at BIGINT NOT NULL
             )",
        )
        .await
        .map_err(pg_err)?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = (i + 1) as i64;
        let tx = client.transaction().await.map_err(pg_err)?;
        // Nodes starting together: one migrates, the others wait here and then see it done.
        tx.execute("SELECT pg_advisory_xact_lock(7307413)", &[])
            .await
            .map_err(pg_err)?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[&version],
            )
            .await
            .map_err(pg_err)?;
        if done.is_none() {
            tx.batch_execute(sql).await.map_err(pg_err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&version, &now_millis()],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
    }
    Ok(())
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`), runs migrations and starts the writer.
    pub async fn open(url: &str, node: NodeOptions) -> StoreResult<Self> {
        PostgresStore::open_config(parse_url(url)?, node).await
    }

    /// Like [`PostgresStore::open`], from a parsed connection config.
    pub async fn open_config(
        config: tokio_postgres::Config,
        node: NodeOptions,
    ) -> StoreResult<Self> {
        let node = Node {
            id: Arc::from(node.node_id.as_str()),
            ttl_ms: node.lease_ttl.as_millis().max(1) as i64,
        };
        let mut writer_client = connect(&config).await?;
        let writer_config = config.clone();
        migrate(&mut writer_client).await?;
        // Two live processes under one node id would free each other's leases: refuse.
        let alive = writer_client
            .query_opt(
                "SELECT heartbeat_at FROM nodes WHERE node_id = $1 AND heartbeat_at > $2",
                &[&&*node.id, &(now_millis() - node.ttl_ms)],
            )
            .await
            .map_err(pg_err)?;
        if let Some(row) = alive {
            let ago = now_millis() - col::<i64>(&row, 0)?;
            return Err(StoreError::Conflict(format!(
                "node id {:?} is in use: a node with that id was alive {ago} ms ago. Give each \
                 node its own --node-id (the default is unique), or wait --lease-ttl after a \
                 crash",
                &*node.id
            )));
        }
        // A node restarted under the same --node-id (after the check above: its predecessor is
        // gone): what it held is free at once instead of after the lease time.
        writer_client
            .execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_expires_at = NULL \
                 WHERE lease_owner = $1",
                &[&&*node.id],
            )
            .await
            .map_err(pg_err)?;
        // Joined: the others split per-config limits with this node from now on.
        heartbeat(&writer_client, &node.id).await?;
        notify(&writer_client, NODES_CHANNEL, &[node.id.to_string()]).await?;

        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(READER_POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))?;

        let (job_tx, job_rx) = mpsc::unbounded_channel::<Job>();
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        let listener = tokio::spawn(listen(writer_config.clone(), sig_tx.clone()));
        let task = tokio::spawn(writer_loop(
            node.id.clone(),
            writer_config,
            Arc::new(writer_client),
            job_rx,
            sig_tx,
        ));
        let unrecorded: Unrecorded = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(retry_unrecorded(job_tx.downgrade(), unrecorded.clone()));
        let renewer = tokio::spawn(renew_leases(job_tx.downgrade(), node.clone()));
        Ok(PostgresStore {
            node,
            background: Mutex::new(vec![listener, renewer]),
            unrecorded,
            writer: Mutex::new(Some(job_tx)),
            writer_task: Mutex::new(Some(task)),
            pool,
            signals_rx: Mutex::new(Some(sig_rx)),
        })
    }

    fn submit(&self, job: Job) -> StoreResult<()> {
        let writer = self.writer.lock().map_err(poisoned)?;
        let sender = writer
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))?;
        sender
            .send(job)
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))
    }

    /// Runs `f` in the writer's next group commit and returns its result once committed.
    async fn write<R, F, Fut>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(Arc<Client>) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<(R, Vec<StoreSignal>)>> + Send + 'static,
    {
        self.write_in_group(move |group| f(group.client)).await
    }

    /// Like [`PostgresStore::write`], for jobs that need the group (its pending records).
    async fn write_in_group<R, F, Fut>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(Group) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<(R, Vec<StoreSignal>)>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<R>>();
        let job: Job = Box::new(move |group: Group| {
            Box::pin(async move {
                let result = f(group).await;
                let status = job_status(&result);
                let (result, signals) = match result {
                    Ok((r, s)) => (Ok(r), s),
                    Err(e) => (Err(e), Vec::new()),
                };
                let finish: Finisher = Box::new(move |commit| {
                    let _ = tx.send(commit.and(result));
                });
                JobRun {
                    status,
                    signals,
                    finish,
                }
            })
        });
        self.submit(job)?;
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// A pooled connection for reads.
    async fn reader(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_err)
    }
}

/// A writer job that runs `f` and reports nothing back (background maintenance).
fn quiet_job<F, Fut>(f: F) -> Job
where
    F: FnOnce(Arc<Client>) -> Fut + Send + 'static,
    Fut: Future<Output = StoreResult<()>> + Send + 'static,
{
    Box::new(move |group: Group| {
        Box::pin(async move {
            let result = f(group.client).await;
            JobRun {
                status: job_status(&result),
                signals: Vec::new(),
                finish: Box::new(|commit| {
                    if let Err(e) = commit.and(result) {
                        tracing::warn!(error = %e, "renewing this node's leases failed");
                    }
                }),
            }
        })
    })
}

/// Renews this node's leases every third of the lease time, until the writer is gone. A node
/// that stops renewing (it died, or lost the database) lets its leases expire, and the other
/// nodes take its deliveries over.
async fn renew_leases(jobs: mpsc::WeakUnboundedSender<Job>, node: Node) {
    let every = Duration::from_millis((node.ttl_ms / 3).max(1) as u64);
    loop {
        tokio::time::sleep(every).await;
        let Some(sender) = jobs.upgrade() else {
            return;
        };
        let node = node.clone();
        let job = quiet_job(move |c| async move {
            c.execute(
                "UPDATE deliveries SET lease_expires_at = $2 WHERE lease_owner = $1",
                &[&&*node.id, &node.lease_until()],
            )
            .await
            .map_err(pg_err)?;
            heartbeat(&c, &node.id).await?;
            c.execute(
                "DELETE FROM nodes WHERE heartbeat_at < $1",
                &[&(now_millis() - FORGET_NODES_AFTER_MS)],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        });
        if sender.send(job).is_err() {
            return;
        }
    }
}

/// Says this node is alive (its row in `nodes`).
async fn heartbeat(c: &Client, node_id: &str) -> StoreResult<()> {
    let now = now_millis();
    c.execute(
        "INSERT INTO nodes (node_id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
         ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
        &[&node_id, &now],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// How long the listener waits before connecting again after losing its connection.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Turns `NOTIFY`s of every node into signals, on a connection of its own. Each time it has
/// subscribed (at start too: the engine may have loaded its state just before) it sends
/// `Resync`, since notifications sent while it was not listening are gone.
async fn listen(config: tokio_postgres::Config, signals: mpsc::UnboundedSender<StoreSignal>) {
    let subscribe_sql = format!(
        "LISTEN {WORK_CHANNEL}; LISTEN {CONFIG_CHANNEL}; LISTEN {FREED_CHANNEL}; \
             LISTEN {NODES_CHANNEL}"
    );
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let subscribe = client.batch_execute(&subscribe_sql);
                tokio::pin!(subscribe);
                let mut subscribed = false;
                loop {
                    tokio::select! {
                        result = &mut subscribe, if !subscribed => match result {
                            Ok(()) => {
                                subscribed = true;
                                if signals.send(StoreSignal::Resync).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "postgres LISTEN failed");
                                break;
                            }
                        },
                        message = std::future::poll_fn(|cx| connection.poll_message(cx)) => {
                            match message {
                                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                                    let config_id = n.payload().to_owned();
                                    let signal = match n.channel() {
                                        CONFIG_CHANNEL => StoreSignal::ConfigChanged { config_id },
                                        FREED_CHANNEL => StoreSignal::LeasesFreed,
                                        NODES_CHANNEL => StoreSignal::NodesChanged,
                                        _ => StoreSignal::NewWork { config_id },
                                    };
                                    if signals.send(signal).is_err() {
                                        return;
                                    }
                                }
                                Some(Ok(_)) => {}
                                Some(Err(e)) => {
                                    tracing::warn!(error = %e, "postgres notification connection failed");
                                    break;
                                }
                                None => break,
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "postgres notification connection cannot connect");
            }
        }
        if signals.is_closed() {
            return;
        }
        tokio::time::sleep(LISTEN_RETRY).await;
    }
}

/// `NOTIFY`s, delivered to every node when the transaction commits (identical ones once).
async fn notify(c: &Client, channel: &str, config_ids: &[String]) -> StoreResult<()> {
    if config_ids.is_empty() {
        return Ok(());
    }
    c.execute(
        "SELECT pg_notify($1, id) FROM unnest($2::TEXT[]) AS id",
        &[&channel, &config_ids],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn writer_loop(
    node: Arc<str>,
    config: tokio_postgres::Config,
    mut client: Arc<Client>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    signals_out: mpsc::UnboundedSender<StoreSignal>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    let mut finishers: Vec<Finisher> = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    let mut signals: Vec<StoreSignal> = Vec::new();
    // Jobs that did not run because an earlier job of their group failed: first in the next.
    let mut carried: Vec<Job> = Vec::new();
    loop {
        if carried.is_empty() {
            match jobs.recv().await {
                Some(first) => batch.push(first),
                None => break,
            }
        } else {
            batch.append(&mut carried);
        }
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if client.is_closed() {
            // The writer's connection died (a server restart): open a new one for this group.
            match connect(&config).await {
                Ok(c) => client = Arc::new(c),
                Err(e) => tracing::error!(error = %e, "postgres writer cannot reconnect"),
            }
        }
        if let Err(e) = client.batch_execute("BEGIN").await {
            tracing::error!(error = %e, jobs = batch.len(), "write group could not begin");
            // The jobs never run outside a transaction: dropping them answers each caller
            // `Unavailable` ("writer stopped" from its dropped reply channel).
            batch.clear();
            continue;
        }
        let mut failure = None;
        let group = Group {
            client: client.clone(),
            node: node.clone(),
            records: Arc::default(),
            health: Arc::default(),
        };
        let mut pending = batch.drain(..);
        for job in pending.by_ref() {
            let run = job(group.clone()).await;
            finishers.push(run.finish);
            match run.status {
                JobStatus::Failed(e) => {
                    failure = Some(e);
                    break;
                }
                JobStatus::Refused => {}
                JobStatus::Done => signals.extend(run.signals),
            }
        }
        carried.extend(pending);
        if failure.is_none()
            && let Err(e) = flush_records(&group).await
        {
            failure = Some(e);
        }
        if failure.is_none() {
            let health = group
                .health
                .lock()
                .map(|mut h| std::mem::take(&mut *h))
                .unwrap_or_default();
            for (config_id, health) in &health {
                if let Err(e) = write_health(&client, config_id, health).await {
                    failure = Some(e);
                    break;
                }
            }
        }
        let outcome = match failure {
            None => client.batch_execute("COMMIT").await.map_err(pg_err),
            Some(e) => Err(e),
        };
        if let Err(e) = &outcome {
            tracing::error!(error = %e, jobs = finishers.len(), "write group rolled back");
            let _ = client.batch_execute("ROLLBACK").await;
            signals.clear();
        }
        // Signals first, then answers (as in SQLite): a caller that learns its write committed
        // can rely on the engine having been told of the work it created.
        for signal in signals.drain(..) {
            let _ = signals_out.send(signal);
        }
        for finish in finishers.drain(..) {
            finish(outcome.clone());
        }
    }
}

// ---------- row mapping ----------

fn config_row(r: &Row) -> StoreResult<ConfigRow> {
    let get = |e: tokio_postgres::Error| StoreError::Corrupt(format!("config row: {e}"));
    Ok(ConfigRow {
        id: r.try_get(0).map_err(get)?,
        app_key: r.try_get(1).map_err(get)?,
        product: r.try_get(2).map_err(get)?,
        events: r.try_get(3).map_err(get)?,
        url: r.try_get(4).map_err(get)?,
        signature: r.try_get(5).map_err(get)?,
        signing_secret: r.try_get(6).map_err(get)?,
        enabled: r.try_get(7).map_err(get)?,
        description: r.try_get(8).map_err(get)?,
        max_hooks: r.try_get(9).map_err(get)?,
        max_in_flight: r.try_get(10).map_err(get)?,
        timeout_ms: r.try_get(11).map_err(get)?,
        retry_schedule: r.try_get(12).map_err(get)?,
        health_state: r.try_get(13).map_err(get)?,
        consecutive_failures: r.try_get(14).map_err(get)?,
        last_success_at: r.try_get(15).map_err(get)?,
        last_failure_at: r.try_get(16).map_err(get)?,
        failing_since: r.try_get(17).map_err(get)?,
        disabled_reason: r.try_get(18).map_err(get)?,
        created_at: r.try_get(19).map_err(get)?,
        updated_at: r.try_get(20).map_err(get)?,
        previous_signing_secret: r.try_get(21).map_err(get)?,
        previous_signing_secret_expires_at: r.try_get(22).map_err(get)?,
    })
}

fn col<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> StoreResult<T> {
    r.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

fn delivery_row(r: &Row) -> StoreResult<DeliveryRow> {
    Ok(DeliveryRow {
        hooks_id: col(r, 0)?,
        app_key: col(r, 1)?,
        config_id: col(r, 2)?,
        product: col(r, 3)?,
        event: col(r, 4)?,
        status: col(r, 5)?,
        attempt_count: col(r, 6)?,
        next_attempt_at: col(r, 7)?,
        created_at: col(r, 8)?,
        updated_at: col(r, 9)?,
    })
}

fn parse_product(s: &str) -> StoreResult<Product> {
    Product::parse(s).ok_or_else(|| corrupt("product", s))
}

// ---------- shared write steps (run inside the writer's transaction) ----------

async fn write_subscriptions(c: &Client, config: &WebhookConfig) -> StoreResult<()> {
    c.execute(
        "DELETE FROM subscriptions WHERE config_id = $1",
        &[&config.id],
    )
    .await
    .map_err(pg_err)?;
    if config.enabled && config.health.state != HealthState::Disabled {
        for event in &config.events {
            c.execute(
                "INSERT INTO subscriptions (app_key, product, event, config_id) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[
                    &config.app_key,
                    &config.product.as_str(),
                    &event.as_str(),
                    &config.id,
                ],
            )
            .await
            .map_err(pg_err)?;
        }
    }
    Ok(())
}

/// Writes the health a node judged. Each node judges from its own attempts, so a DISABLED row is
/// never turned back by another node's older view (only `update_config`, an operator enabling the
/// config again, does that), and disabling tells every node (`hookline_config`).
async fn write_health(c: &Client, config_id: &str, health: &Health) -> StoreResult<()> {
    let written = c
        .execute(
            "UPDATE webhook_configs SET health_state = $2, consecutive_failures = $3, \
         last_success_at = $4, last_failure_at = $5, failing_since = $6, disabled_reason = $7 \
         WHERE id = $1 AND (health_state <> 'DISABLED' OR $2 = 'DISABLED')",
            &[
                &config_id,
                &health.state.as_str(),
                &i64::from(health.consecutive_failures),
                &health.last_success_at,
                &health.last_failure_at,
                &health.failing_since,
                &health.disabled_reason,
            ],
        )
        .await
        .map_err(pg_err)?;
    if health.state == HealthState::Disabled && written > 0 {
        // A config disabled for failing receives nothing new until it is enabled again.
        c.execute(
            "DELETE FROM subscriptions WHERE config_id = $1",
            &[&config_id],
        )
        .await
        .map_err(pg_err)?;
        notify(c, CONFIG_CHANNEL, &[config_id.to_owned()]).await?;
    }
    Ok(())
}

/// Inserts a delivery with its hooks; `lease` (owner, expiry) when this node is about to send it.
async fn insert_delivery(
    c: &impl GenericClient,
    summary: &DeliverySummary,
    hook_seqs: &[i64],
    lease: Option<(&str, Millis)>,
) -> StoreResult<()> {
    c.execute(
        "INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, status, \
         attempt_count, next_attempt_at, created_at, updated_at, lease_owner, lease_expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &summary.hooks_id,
            &summary.app_key,
            &summary.config_id,
            &summary.product.as_str(),
            &summary.event.as_str(),
            &summary.status.as_str(),
            &i64::from(summary.attempt_count),
            &summary.next_attempt_at,
            &summary.created_at,
            &summary.updated_at,
            &lease.map(|(owner, _)| owner),
            &lease.map(|(_, until)| until),
        ],
    )
    .await
    .map_err(pg_err)?;
    // One statement for all the positions: the array is expanded server-side.
    c.execute(
        "INSERT INTO delivery_hooks (hooks_id, position, hook_seq) \
         SELECT $1, t.ord - 1, t.seq FROM unnest($2::BIGINT[]) WITH ORDINALITY AS t(seq, ord)",
        &[&summary.hooks_id, &hook_seqs],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// `text` with NUL characters replaced by U+FFFD.
fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Writes the group's pending attempt records in two statements: the attempts, and each
/// delivery's next state. Only forward: a record written again late never undoes a later
/// attempt's state. A record frees the delivery's lease; a node whose lease was taken over (it was
/// cut off for longer than the lease time) leaves the delivery to the new holder. The health the
/// records carry is written at the end of the group (see `Group::health`).
async fn flush_records(group: &Group) -> StoreResult<()> {
    let records = match group.records.lock() {
        Ok(mut records) => std::mem::take(&mut *records),
        Err(_) => return Err(StoreError::Unavailable("records lock".into())),
    };
    if records.is_empty() {
        return Ok(());
    }
    // One row per (delivery, attempt) and one state per delivery, the latest attempt's: the
    // statements must not touch a row twice.
    let mut attempts: std::collections::BTreeMap<(&str, u32), &AttemptOutcome> =
        std::collections::BTreeMap::new();
    let mut states: std::collections::BTreeMap<&str, &AttemptOutcome> =
        std::collections::BTreeMap::new();
    for outcome in &records {
        attempts.insert((&outcome.hooks_id, outcome.number), outcome);
        let newer = states
            .get(outcome.hooks_id.as_str())
            .is_none_or(|o| o.number <= outcome.number);
        if newer {
            states.insert(&outcome.hooks_id, outcome);
        }
    }
    let a: Vec<&AttemptOutcome> = attempts.into_values().collect();
    let hooks_ids: Vec<&str> = a.iter().map(|o| o.hooks_id.as_str()).collect();
    let numbers: Vec<i64> = a.iter().map(|o| i64::from(o.number)).collect();
    let started: Vec<i64> = a.iter().map(|o| o.result.started_at).collect();
    let durations: Vec<i64> = a.iter().map(|o| o.result.duration_ms as i64).collect();
    let codes: Vec<Option<i64>> = a
        .iter()
        .map(|o| o.result.status_code.map(i64::from))
        .collect();
    let kinds: Vec<Option<&str>> = a
        .iter()
        .map(|o| o.result.error_kind.map(AttemptErrorKind::as_str))
        .collect();
    // Receivers choose these bytes; PostgreSQL's TEXT refuses NUL, and one refused record would
    // fail its whole group again every time it is resubmitted.
    let messages: Vec<Option<std::borrow::Cow<str>>> = a
        .iter()
        .map(|o| o.result.error_message.as_deref().map(without_nul))
        .collect();
    let bodies: Vec<Option<std::borrow::Cow<str>>> = a
        .iter()
        .map(|o| o.result.response_body.as_deref().map(without_nul))
        .collect();
    let c = &group.client;
    c.execute(
        "INSERT INTO attempts (hooks_id, number, started_at, duration_ms, status_code, \
         error_kind, error_message, response_body) \
         SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], \
                              $5::BIGINT[], $6::TEXT[], $7::TEXT[], $8::TEXT[]) \
         ON CONFLICT (hooks_id, number) DO NOTHING",
        &[
            &hooks_ids, &numbers, &started, &durations, &codes, &kinds, &messages, &bodies,
        ],
    )
    .await
    .map_err(pg_err)?;
    let s: Vec<&AttemptOutcome> = states.into_values().collect();
    let ids: Vec<&str> = s.iter().map(|o| o.hooks_id.as_str()).collect();
    let statuses: Vec<&str> = s.iter().map(|o| o.new_status.as_str()).collect();
    let numbers: Vec<i64> = s.iter().map(|o| i64::from(o.number)).collect();
    let next: Vec<Option<i64>> = s.iter().map(|o| o.next_attempt_at).collect();
    c.execute(
        "UPDATE deliveries d SET status = u.status, attempt_count = u.number, \
         next_attempt_at = u.next_at, updated_at = $5, lease_owner = NULL, \
         lease_expires_at = NULL \
         FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[]) \
              AS u(hooks_id, status, number, next_at) \
         WHERE d.hooks_id = u.hooks_id AND d.status IN ('PENDING', 'RETRYING') \
         AND d.attempt_count < u.number AND (d.lease_owner IS NULL OR d.lease_owner = $6)",
        &[
            &ids,
            &statuses,
            &numbers,
            &next,
            &now_millis(),
            &&*group.node,
        ],
    )
    .await
    .map_err(pg_err)?;
    if let Ok(mut health) = group.health.lock() {
        for outcome in &records {
            if let Some(h) = &outcome.health {
                health.insert(outcome.config_id.clone(), h.clone());
            }
        }
    }
    Ok(())
}

/// Takes up to `batches` x `max_hooks` queued hooks of one event (the event of the config's
/// oldest queued hook: FIFO across events) and turns them into PENDING deliveries. Rows another
/// transaction has locked (another node's claim) are skipped, never taken twice.
async fn claim_event(
    c: &impl GenericClient,
    config_id: &str,
    app_key: &str,
    product: Product,
    max_hooks: u32,
    batches: u32,
    node: &Node,
) -> StoreResult<Vec<ClaimedBatch>> {
    let Some(row) = c
        .query_opt(
            "SELECT event FROM queue WHERE config_id = $1 ORDER BY hook_seq LIMIT 1 \
             FOR UPDATE SKIP LOCKED",
            &[&config_id],
        )
        .await
        .map_err(pg_err)?
    else {
        return Ok(Vec::new());
    };
    let event = parse_event(&col::<String>(&row, 0)?)?;
    let max_hooks = max_hooks.max(1);
    let limit = i64::from(max_hooks) * i64::from(batches);
    let rows = c
        .query(
            "WITH taken AS ( \
                 DELETE FROM queue WHERE (config_id, event, hook_seq) IN ( \
                     SELECT config_id, event, hook_seq FROM queue \
                     WHERE config_id = $1 AND event = $2 ORDER BY hook_seq LIMIT $3 \
                     FOR UPDATE SKIP LOCKED) \
                 RETURNING hook_seq) \
             SELECT h.seq, h.hook_id, h.body FROM taken t JOIN hooks h ON h.seq = t.hook_seq \
             ORDER BY h.seq",
            &[&config_id, &event.as_str(), &limit],
        )
        .await
        .map_err(pg_err)?;
    let mut taken = Vec::with_capacity(rows.len());
    for r in &rows {
        taken.push((
            col::<i64>(r, 0)?,
            col::<String>(r, 1)?,
            col::<String>(r, 2)?,
        ));
    }
    let now = now_millis();
    let mut claimed = Vec::with_capacity(batches as usize);
    // Every batch's delivery row and hook positions in two statements, not two per batch.
    let mut hooks_ids: Vec<String> = Vec::with_capacity(batches as usize);
    let (mut pos_hooks_id, mut pos_position, mut pos_seq) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = taken.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<(i64, String, String)> = rows.by_ref().take(max_hooks as usize).collect();
        let hooks_id = hookline_wire::generate_id();
        for (position, (seq, _, _)) in chunk.iter().enumerate() {
            pos_hooks_id.push(hooks_id.clone());
            pos_position.push(position as i64);
            pos_seq.push(*seq);
        }
        hooks_ids.push(hooks_id.clone());
        claimed.push(ClaimedBatch {
            delivery: SendableDelivery {
                hooks_id,
                config_id: config_id.to_owned(),
                app_key: app_key.to_owned(),
                product,
                event,
                attempt_count: 0,
                hooks: chunk
                    .into_iter()
                    .map(|(_, hook_id, json)| StoredHook { hook_id, json })
                    .collect(),
            },
        });
    }
    if hooks_ids.is_empty() {
        return Ok(claimed);
    }
    c.execute(
        "INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, status, \
         attempt_count, next_attempt_at, created_at, updated_at, lease_owner, lease_expires_at) \
         SELECT id, $2, $3, $4, $5, 'PENDING', 0, NULL, $6, $6, $7, $8 \
         FROM unnest($1::TEXT[]) AS id",
        &[
            &hooks_ids,
            &app_key,
            &config_id,
            &product.as_str(),
            &event.as_str(),
            &now,
            &&*node.id,
            &node.lease_until(),
        ],
    )
    .await
    .map_err(pg_err)?;
    c.execute(
        "INSERT INTO delivery_hooks (hooks_id, position, hook_seq) \
         SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[])",
        &[&pos_hooks_id, &pos_position, &pos_seq],
    )
    .await
    .map_err(pg_err)?;
    Ok(claimed)
}

async fn load_delivery_row(c: &Client, hooks_id: &str) -> StoreResult<Option<DeliveryRow>> {
    let row = c
        .query_opt(
            &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE hooks_id = $1"),
            &[&hooks_id],
        )
        .await
        .map_err(pg_err)?;
    row.as_ref().map(delivery_row).transpose()
}

async fn delivery_hooks(c: &Client, hooks_id: &str) -> StoreResult<Vec<StoredHook>> {
    let rows = c
        .query(
            "SELECT h.hook_id, h.body FROM delivery_hooks d JOIN hooks h ON h.seq = d.hook_seq \
             WHERE d.hooks_id = $1 ORDER BY d.position",
            &[&hooks_id],
        )
        .await
        .map_err(pg_err)?;
    rows.iter()
        .map(|r| {
            Ok(StoredHook {
                hook_id: col(r, 0)?,
                json: col(r, 1)?,
            })
        })
        .collect()
}

/// `hooks_id, config_id, due` as selected by the open-delivery queries.
fn open_delivery(r: &Row) -> StoreResult<OpenDelivery> {
    Ok(OpenDelivery {
        hooks_id: col(r, 0)?,
        config_id: col(r, 1)?,
        next_attempt_at: col(r, 2)?,
    })
}

fn app_key_record(r: &Row) -> StoreResult<AppKeyRecord> {
    Ok(AppKeyRecord {
        app_key: col(r, 0)?,
        name: col(r, 1)?,
        created_at: col(r, 2)?,
    })
}

/// The rotated-out signing secret and its expiry, as two columns.
fn previous_secret(config: &WebhookConfig) -> (Option<String>, Option<Millis>) {
    match &config.previous_signing_secret {
        Some(p) => (Some(p.secret.clone()), Some(p.expires_at)),
        None => (None, None),
    }
}

/// The 23 config columns in `CONFIG_COLUMNS` order, as statement parameters.
macro_rules! config_params {
    ($c:expr, $events:expr, $schedule:expr, $prev:expr, $prev_exp:expr) => {
        [
            &$c.id as &(dyn tokio_postgres::types::ToSql + Sync),
            &$c.app_key,
            &$c.product.as_str(),
            &$events,
            &$c.url,
            &$c.signature,
            &$c.signing_secret,
            &$c.enabled,
            &$c.description,
            &i64::from($c.max_hooks_per_request),
            &i64::from($c.max_requests_in_flight),
            &i64::from($c.timeout_ms),
            &$schedule,
            &$c.health.state.as_str(),
            &i64::from($c.health.consecutive_failures),
            &$c.health.last_success_at,
            &$c.health.last_failure_at,
            &$c.health.failing_since,
            &$c.health.disabled_reason,
            &$c.created_at,
            &$c.updated_at,
            &$prev,
            &$prev_exp,
        ]
    };
}

#[async_trait]
impl Store for PostgresStore {
    fn take_signals(&self) -> Option<mpsc::UnboundedReceiver<StoreSignal>> {
        self.signals_rx.lock().ok()?.take()
    }

    async fn ping(&self) -> StoreResult<()> {
        let c = self.reader().await?;
        c.query_one("SELECT 1", &[]).await.map_err(pg_err)?;
        Ok(())
    }

    async fn create_app_key(&self, record: AppKeyRecord, secret_hash: String) -> StoreResult<()> {
        self.write(move |c| async move {
            // ON CONFLICT keeps the group's transaction usable: a refusal writes nothing.
            let n = c
                .execute(
                    "INSERT INTO app_keys (app_key, name, secret_hash, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        &record.app_key,
                        &record.name,
                        &secret_hash,
                        &record.created_at,
                    ],
                )
                .await
                .map_err(pg_err)?;
            if n == 0 {
                return Err(StoreError::Conflict("app key already exists".into()));
            }
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn list_app_keys(&self, page: PageRequest) -> StoreResult<Page<AppKeyRecord>> {
        let size = page_size(&page);
        let after = match &page.cursor {
            Some(c) => cursor::decode(c, 1).ok_or(StoreError::BadCursor)?.remove(0),
            None => String::new(),
        };
        let c = self.reader().await?;
        let rows = c
            .query(
                "SELECT app_key, name, created_at FROM app_keys WHERE app_key > $1 \
                 ORDER BY app_key LIMIT $2",
                &[&after, &i64::from(size + 1)],
            )
            .await
            .map_err(pg_err)?;
        let items = rows
            .iter()
            .map(app_key_record)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paginate(items, size, |k| cursor::encode(&[&k.app_key])))
    }

    async fn get_app_key(&self, app_key: &str) -> StoreResult<Option<AppKeyRecord>> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT app_key, name, created_at FROM app_keys WHERE app_key = $1",
                &[&app_key],
            )
            .await
            .map_err(pg_err)?;
        row.as_ref().map(app_key_record).transpose()
    }

    async fn app_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<Option<String>> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT app_key FROM app_keys WHERE secret_hash = $1",
                &[&secret_hash],
            )
            .await
            .map_err(pg_err)?;
        row.as_ref().map(|r| col(r, 0)).transpose()
    }

    async fn set_secret_hash(&self, app_key: &str, secret_hash: String) -> StoreResult<bool> {
        let app_key = app_key.to_owned();
        self.write(move |c| async move {
            let n = c
                .execute(
                    "UPDATE app_keys SET secret_hash = $2 WHERE app_key = $1",
                    &[&app_key, &secret_hash],
                )
                .await
                .map_err(pg_err)?;
            Ok((n == 1, Vec::new()))
        })
        .await
    }

    async fn insert_config(&self, config: WebhookConfig) -> StoreResult<()> {
        self.write(move |c| async move {
            let events = join_events(&config.events);
            let schedule = schedule_text(&config);
            let (prev, prev_exp) = previous_secret(&config);
            c.execute(
                &format!(
                    "INSERT INTO webhook_configs ({CONFIG_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                      $17, $18, $19, $20, $21, $22, $23)"
                ),
                &config_params!(config, events, schedule, prev, prev_exp),
            )
            .await
            .map_err(pg_err)?;
            write_subscriptions(&c, &config).await?;
            notify(&c, CONFIG_CHANNEL, std::slice::from_ref(&config.id)).await?;
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn update_config(&self, config: WebhookConfig) -> StoreResult<bool> {
        self.write_in_group(move |group| async move {
            // The group's records judged the config before this change: their health must not
            // be written over it at the end of the group (it would undo a re-enable).
            flush_records(&group).await?;
            if let Ok(mut health) = group.health.lock() {
                health.remove(&config.id);
            }
            let c = group.client;
            let events = join_events(&config.events);
            let schedule = schedule_text(&config);
            let (prev, prev_exp) = previous_secret(&config);
            // The same 23 parameters as the insert; created_at ($20) is not settable, so it is
            // only compared (a no-op) to give the parameter a type.
            let n = c
                .execute(
                    "UPDATE webhook_configs SET product = $3, events = $4, url = $5, \
                     signature = $6, signing_secret = $7, enabled = $8, description = $9, \
                     max_hooks = $10, max_in_flight = $11, timeout_ms = $12, \
                     retry_schedule = $13, health_state = $14, consecutive_failures = $15, \
                     last_success_at = $16, last_failure_at = $17, failing_since = $18, \
                     disabled_reason = $19, updated_at = $21, previous_signing_secret = $22, \
                     previous_signing_secret_expires_at = $23 \
                     WHERE id = $1 AND app_key = $2 AND ($20::BIGINT IS NULL OR TRUE)",
                    &config_params!(config, events, schedule, prev, prev_exp),
                )
                .await
                .map_err(pg_err)?;
            if n == 0 {
                return Ok((false, Vec::new()));
            }
            write_subscriptions(&c, &config).await?;
            notify(&c, CONFIG_CHANNEL, std::slice::from_ref(&config.id)).await?;
            Ok((true, Vec::new()))
        })
        .await
    }

    async fn delete_config(&self, app_key: &str, config_id: &str) -> StoreResult<bool> {
        let app_key = app_key.to_owned();
        let config_id = config_id.to_owned();
        self.write(move |c| async move {
            let found = c
                .query_opt(
                    "SELECT product, max_hooks FROM webhook_configs \
                     WHERE app_key = $1 AND id = $2",
                    &[&app_key, &config_id],
                )
                .await
                .map_err(pg_err)?;
            let Some(found) = found else {
                return Ok((false, Vec::new()));
            };
            let product = parse_product(&col::<String>(&found, 0)?)?;
            let max_hooks: i64 = col(&found, 1)?;
            let now = now_millis();
            c.execute("DELETE FROM webhook_configs WHERE id = $1", &[&config_id])
                .await
                .map_err(pg_err)?;
            c.execute(
                "DELETE FROM subscriptions WHERE config_id = $1",
                &[&config_id],
            )
            .await
            .map_err(pg_err)?;
            // Hooks still queued become CANCELLED deliveries too, so the log shows what this
            // config never received. First, because this waits for a claim of another node that
            // holds some of the rows: the deliveries that claim made are committed by the time
            // the next statement cancels the open ones.
            let rows = c
                .query(
                    "DELETE FROM queue WHERE config_id = $1 RETURNING event, hook_seq",
                    &[&config_id],
                )
                .await
                .map_err(pg_err)?;
            c.execute(
                "UPDATE deliveries SET status = 'CANCELLED', next_attempt_at = NULL, \
                 updated_at = $2, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE config_id = $1 AND status IN ('PENDING', 'RETRYING')",
                &[&config_id, &now],
            )
            .await
            .map_err(pg_err)?;
            let mut queued = Vec::with_capacity(rows.len());
            for r in &rows {
                queued.push((col::<String>(r, 0)?, col::<i64>(r, 1)?));
            }
            queued.sort();
            for (event, seqs) in super::runs_by_event(&queued, max_hooks as u32) {
                let summary = DeliverySummary::new(
                    hookline_wire::generate_id(),
                    &app_key,
                    &config_id,
                    product,
                    parse_event(event)?,
                    DeliveryStatus::Cancelled,
                    Vec::new(),
                    now,
                );
                insert_delivery(&*c, &summary, &seqs, None).await?;
            }
            notify(&c, CONFIG_CHANNEL, std::slice::from_ref(&config_id)).await?;
            Ok((true, Vec::new()))
        })
        .await
    }

    async fn get_config(
        &self,
        app_key: &str,
        config_id: &str,
    ) -> StoreResult<Option<WebhookConfig>> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE app_key = $1 AND id = $2"
                ),
                &[&app_key, &config_id],
            )
            .await
            .map_err(pg_err)?;
        row.as_ref()
            .map(|r| config_row(r).and_then(ConfigRow::into_config))
            .transpose()
    }

    async fn list_configs(
        &self,
        app_key: &str,
        filter: ConfigFilter,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookConfig>> {
        let size = page_size(&page);
        let after = match &page.cursor {
            Some(c) => cursor::decode(c, 1).ok_or(StoreError::BadCursor)?.remove(0),
            None => String::new(),
        };
        // NULL filters match everything: one statement, planned once.
        let product = filter.product.map(|p| p.as_str());
        let event = filter.event.map(|e| e.as_str());
        let c = self.reader().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE app_key = $1 AND id > $2 \
                     AND ($3::TEXT IS NULL OR product = $3) \
                     AND ($4::TEXT IS NULL OR (',' || events || ',') LIKE ('%,' || $4 || ',%')) \
                     AND ($5::BOOLEAN IS NULL OR enabled = $5) \
                     ORDER BY id LIMIT $6"
                ),
                &[
                    &app_key,
                    &after,
                    &product,
                    &event,
                    &filter.enabled,
                    &i64::from(size + 1),
                ],
            )
            .await
            .map_err(pg_err)?;
        let items = rows
            .iter()
            .map(|r| config_row(r).and_then(ConfigRow::into_config))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paginate(items, size, |c| cursor::encode(&[&c.id])))
    }

    async fn all_configs(&self) -> StoreResult<Vec<WebhookConfig>> {
        let c = self.reader().await?;
        let rows = c
            .query(
                &format!("SELECT {CONFIG_COLUMNS} FROM webhook_configs"),
                &[],
            )
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| config_row(r).and_then(ConfigRow::into_config))
            .collect()
    }

    async fn set_health(&self, config_id: &str, health: Health) -> StoreResult<()> {
        let config_id = config_id.to_owned();
        self.write(move |c| async move {
            write_health(&c, &config_id, &health).await?;
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn ingest(
        &self,
        app_key: &str,
        product: Product,
        event: Event,
        hooks: Vec<ValidatedHook>,
    ) -> StoreResult<IngestOutcome> {
        let app_key = app_key.to_owned();
        self.write(move |c| async move {
            let now = now_millis();
            let ids: Vec<&str> = hooks.iter().map(|h| h.hook_id.as_str()).collect();
            let bodies: Vec<&str> = hooks.iter().map(|h| h.json.as_str()).collect();
            // One statement, one round trip (the writer runs its jobs one after the other):
            // the request's hooks (RETURNING only the new ones: ON CONFLICT DO NOTHING makes a
            // producer's retry accepted again but stored once), their queue rows for every
            // subscribed config, and a NOTIFY per config that got rows. `notified` is
            // MATERIALIZED so its pg_notify calls run, counted or not. FOR KEY SHARE on the
            // configs: a concurrent delete_config (another node) waits for this commit, and then
            // finds and cancels these queue rows, instead of leaving rows no config will claim.
            let row = c
                .query_one(
                    "WITH new AS ( \
                         INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
                         SELECT $1, t.id, $2, $3, t.body, $4 \
                         FROM unnest($5::TEXT[], $6::TEXT[]) WITH ORDINALITY AS t(id, body, ord) \
                         ORDER BY t.ord \
                         ON CONFLICT (app_key, hook_id) DO NOTHING RETURNING seq), \
                     subs AS ( \
                         SELECT s.config_id FROM subscriptions s \
                         JOIN webhook_configs c ON c.id = s.config_id \
                         WHERE s.app_key = $1 AND s.product = $2 AND s.event = $3 \
                         FOR KEY SHARE OF c), \
                     queued AS ( \
                         INSERT INTO queue (config_id, event, hook_seq) \
                         SELECT s.config_id, $3, n.seq FROM subs s CROSS JOIN new n \
                         ON CONFLICT DO NOTHING RETURNING config_id), \
                     woken AS (SELECT DISTINCT config_id FROM queued), \
                     notified AS MATERIALIZED (SELECT pg_notify($7, config_id) FROM woken) \
                     SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM queued), \
                            ARRAY(SELECT config_id FROM woken ORDER BY config_id), \
                            (SELECT count(*) FROM notified)",
                    &[
                        &app_key,
                        &product.as_str(),
                        &event.as_str(),
                        &now,
                        &ids,
                        &bodies,
                        &WORK_CHANNEL,
                    ],
                )
                .await
                .map_err(pg_err)?;
            let outcome = IngestOutcome {
                new_hooks: col::<i64>(&row, 0)? as usize,
                queued: col::<i64>(&row, 1)? as usize,
            };
            let signals = col::<Vec<String>>(&row, 2)?
                .into_iter()
                .map(|config_id| StoreSignal::NewWork { config_id })
                .collect();
            Ok((outcome, signals))
        })
        .await
    }

    async fn claim_batches(
        &self,
        config: &WebhookConfig,
        max_hooks: u32,
        max_batches: u32,
    ) -> StoreResult<Claim> {
        let config_id = config.id.clone();
        let app_key = config.app_key.clone();
        let product = config.product;
        // Not through the writer: a claim in the writer's group waits for the group's ingests
        // (hundreds of statements) to commit, and a config's next batch waits for its claim, so
        // delivery throughput would be bounded by the ingest group's latency. A claim is its own
        // short transaction on a pooled connection instead, committed (durable) before it
        // answers. It never waits for a lock (SKIP LOCKED; the rows it writes are new), so it
        // cannot deadlock with the writer. PostgreSQL shares WAL flushes between concurrent
        // commits, so claims still group-commit with each other and with the writer.
        let mut c = self.reader().await?;
        // Rolled back if dropped unfinished (error or cancellation), never left open in the pool.
        let c = c.transaction().await.map_err(pg_err)?;
        let claimed = async {
            let mut batches = Vec::new();
            let wanted = max_batches.max(1) as usize;
            while batches.len() < wanted {
                let room = (wanted - batches.len()) as u32;
                let claimed = claim_event(
                    &*c, &config_id, &app_key, product, max_hooks, room, &self.node,
                )
                .await?;
                if claimed.is_empty() {
                    break;
                }
                batches.extend(claimed);
            }
            let more = c
                .query_opt(
                    "SELECT 1 FROM queue WHERE config_id = $1 LIMIT 1",
                    &[&config_id],
                )
                .await
                .map_err(pg_err)?;
            // No QueueDrained signal: another node's NewWork reaches the engine on another
            // connection, in no order with this one. `drained` lets the engine decide.
            let drained = more.is_none();
            StoreResult::Ok(Claim {
                contended: batches.is_empty() && !drained,
                batches,
                drained,
            })
        }
        .await;
        let claim = claimed?;
        c.commit().await.map_err(pg_err)?;
        Ok(claim)
    }

    async fn lease_delivery(&self, hooks_id: &str) -> StoreResult<Lease> {
        let hooks_id = hooks_id.to_owned();
        let node = self.node.clone();
        // Through the writer: it runs after this node's attempt records queued before, so a
        // retry never leases a delivery whose previous attempt is still unrecorded. The hooks
        // are read in the same job: a lease is only ever granted together with what to send
        // (a lease left held by a failed read would be renewed, and stranded, forever).
        self.write_in_group(move |group| async move {
            // This node's records queued before this lease are applied first.
            flush_records(&group).await?;
            let c = group.client;
            let now = now_millis();
            // SKIP LOCKED: a row another transaction is changing (another node's lease or
            // record) is not waited for; its lease decides, and it is someone else's now.
            let row = c
                .query_opt(
                    &format!(
                        "UPDATE deliveries SET lease_owner = $2, lease_expires_at = $3 \
                         WHERE hooks_id = (SELECT hooks_id FROM deliveries \
                             WHERE hooks_id = $1 AND status IN ('PENDING', 'RETRYING') \
                             AND COALESCE(next_attempt_at, 0) <= $4 \
                             AND (lease_owner IS NULL OR lease_expires_at < $4) \
                             FOR UPDATE SKIP LOCKED) \
                         RETURNING {DELIVERY_COLUMNS}"
                    ),
                    &[&hooks_id, &&*node.id, &node.lease_until(), &now],
                )
                .await
                .map_err(pg_err)?;
            let Some(row) = row else {
                // Why not: a retry not yet due gets its time; anything else is not ours (a lease
                // this node holds is not taken again: its attempt is in flight here).
                let due = c
                    .query_opt(
                        "SELECT COALESCE(next_attempt_at, 0) FROM deliveries \
                         WHERE hooks_id = $1 AND status IN ('PENDING', 'RETRYING') \
                         AND (lease_owner IS NULL OR lease_expires_at < $2)",
                        &[&hooks_id, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                let lease = match due.map(|r| col::<i64>(&r, 0)).transpose()? {
                    Some(at) if at > now => Lease::NotDue(at),
                    _ => Lease::Unavailable,
                };
                return Ok((lease, Vec::new()));
            };
            let row = delivery_row(&row)?;
            let hooks = delivery_hooks(&c, &row.hooks_id).await?;
            let delivery = SendableDelivery {
                product: parse_product(&row.product)?,
                event: parse_event(&row.event)?,
                hooks_id: row.hooks_id,
                config_id: row.config_id,
                app_key: row.app_key,
                attempt_count: row.attempt_count as u32,
                hooks,
            };
            Ok((Lease::Granted(delivery), Vec::new()))
        })
        .await
    }

    async fn due_deliveries(&self, until: Millis, limit: u32) -> StoreResult<Vec<OpenDelivery>> {
        let c = self.reader().await?;
        let rows = c
            .query(
                // Only configs that send: deliveries of a paused or DISABLED config wait for
                // it, and would otherwise fill every sweep's page with the same rows.
                "SELECT d.hooks_id, d.config_id, COALESCE(d.next_attempt_at, 0) \
                 FROM deliveries d JOIN webhook_configs c ON c.id = d.config_id \
                 WHERE d.status IN ('PENDING', 'RETRYING') \
                 AND COALESCE(d.next_attempt_at, 0) <= $1 \
                 AND (d.lease_owner IS NULL OR d.lease_expires_at < $2) \
                 AND c.enabled AND c.health_state <> 'DISABLED' \
                 ORDER BY COALESCE(d.next_attempt_at, 0) LIMIT $3",
                &[&until, &now_millis(), &i64::from(limit)],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(open_delivery).collect()
    }

    async fn membership(&self) -> StoreResult<Membership> {
        let c = self.reader().await?;
        let rows = c
            .query(
                "SELECT node_id FROM nodes WHERE heartbeat_at > $1 ORDER BY node_id",
                &[&(now_millis() - self.node.ttl_ms)],
            )
            .await
            .map_err(pg_err)?;
        let mut live: Vec<String> = rows.iter().map(|r| col(r, 0)).collect::<StoreResult<_>>()?;
        // This node counts even when its own heartbeat is late (the database was slow).
        if let Err(at) = live.binary_search_by(|id| id.as_str().cmp(&self.node.id)) {
            live.insert(at, self.node.id.to_string());
        }
        let rank = live
            .iter()
            .position(|id| **id == *self.node.id)
            .unwrap_or_default();
        Ok(Membership {
            rank,
            nodes: live.len(),
        })
    }

    async fn find_config(&self, config_id: &str) -> StoreResult<Option<WebhookConfig>> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                &format!("SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE id = $1"),
                &[&config_id],
            )
            .await
            .map_err(pg_err)?;
        row.as_ref()
            .map(|r| config_row(r).and_then(ConfigRow::into_config))
            .transpose()
    }

    async fn load_delivery(&self, hooks_id: &str) -> StoreResult<Option<SendableDelivery>> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {} FROM deliveries WHERE hooks_id = $1",
                    DELIVERY_COLUMNS
                ),
                &[&hooks_id],
            )
            .await
            .map_err(pg_err)?;
        let Some(row) = row.as_ref().map(delivery_row).transpose()? else {
            return Ok(None);
        };
        if !parse_status(&row.status)?.is_open() {
            return Ok(None);
        }
        let hooks = delivery_hooks(&c, &row.hooks_id).await?;
        Ok(Some(SendableDelivery {
            product: parse_product(&row.product)?,
            event: parse_event(&row.event)?,
            hooks_id: row.hooks_id,
            config_id: row.config_id,
            app_key: row.app_key,
            attempt_count: row.attempt_count as u32,
            hooks,
        }))
    }

    fn record_attempt(&self, outcome: AttemptOutcome) {
        // Queued for the next group, not awaited (as in SQLite).
        let job = record_job(outcome, self.unrecorded.clone());
        if let Err(e) = self.submit(job) {
            tracing::error!(error = %e, "an attempt record could not be queued");
        }
    }

    async fn flush(&self) -> StoreResult<()> {
        self.write(|_| async { Ok(((), Vec::new())) }).await
    }

    async fn open_deliveries(&self) -> StoreResult<Vec<OpenDelivery>> {
        let c = self.reader().await?;
        let rows = c
            .query(
                "SELECT hooks_id, config_id, COALESCE(next_attempt_at, 0) FROM deliveries \
                 WHERE status IN ('PENDING', 'RETRYING')",
                &[],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(open_delivery).collect()
    }

    async fn configs_with_queued_hooks(&self) -> StoreResult<Vec<String>> {
        let c = self.reader().await?;
        let rows = c
            .query(
                "SELECT DISTINCT config_id FROM queue ORDER BY config_id",
                &[],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    async fn list_deliveries(
        &self,
        app_key: &str,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliverySummary>> {
        let size = page_size(&page);
        let (after_created, after_id): (Option<i64>, Option<String>) = match &page.cursor {
            Some(c) => {
                let parts = cursor::decode(c, 2).ok_or(StoreError::BadCursor)?;
                let created: i64 = parts[0].parse().map_err(|_| StoreError::BadCursor)?;
                (Some(created), Some(parts[1].clone()))
            }
            None => (None, None),
        };
        let event = filter.event.map(|e| e.as_str());
        let status = filter.status.map(|s| s.as_str());
        // NULL parameters switch their filter off: one statement for every combination.
        let c = self.reader().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {} FROM deliveries WHERE app_key = $1 \
                     AND ($2::BIGINT IS NULL OR created_at < $2 \
                          OR (created_at = $2 AND hooks_id < $3::TEXT)) \
                     AND ($4::TEXT IS NULL OR config_id = $4) \
                     AND ($5::TEXT IS NULL OR event = $5) \
                     AND ($6::TEXT IS NULL OR status = $6) \
                     AND ($7::BIGINT IS NULL OR created_at >= $7) \
                     AND ($8::BIGINT IS NULL OR created_at < $8) \
                     AND ($9::TEXT IS NULL OR hooks_id IN (SELECT d.hooks_id FROM delivery_hooks d \
                          JOIN hooks h ON h.seq = d.hook_seq \
                          WHERE h.app_key = $1 AND h.hook_id = $9)) \
                     ORDER BY created_at DESC, hooks_id DESC LIMIT $10",
                    DELIVERY_COLUMNS
                ),
                &[
                    &app_key,
                    &after_created,
                    &after_id,
                    &filter.config_id,
                    &event,
                    &status,
                    &filter.since,
                    &filter.until,
                    &filter.hook_id,
                    &i64::from(size + 1),
                ],
            )
            .await
            .map_err(pg_err)?;
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            let row = delivery_row(r)?;
            let ids = delivery_hooks(&c, &row.hooks_id)
                .await?
                .into_iter()
                .map(|h| h.hook_id)
                .collect();
            items.push(row.into_summary(ids)?);
        }
        Ok(paginate(items, size, |d| {
            cursor::encode(&[&d.created_at.to_string(), &d.hooks_id])
        }))
    }

    async fn get_delivery(
        &self,
        app_key: &str,
        hooks_id: &str,
    ) -> StoreResult<Option<DeliveryDetail>> {
        let c = self.reader().await?;
        let Some(row) = load_delivery_row(&c, hooks_id).await? else {
            return Ok(None);
        };
        if row.app_key != app_key {
            return Ok(None);
        }
        let rows = c
            .query(
                "SELECT number, started_at, duration_ms, status_code, error_kind, \
                 error_message, response_body FROM attempts WHERE hooks_id = $1 \
                 ORDER BY number",
                &[&hooks_id],
            )
            .await
            .map_err(pg_err)?;
        let mut attempts = Vec::with_capacity(rows.len());
        for r in &rows {
            let kind: Option<String> = col(r, 4)?;
            let error_kind = match kind {
                Some(k) => {
                    Some(AttemptErrorKind::parse(&k).ok_or_else(|| corrupt("error kind", &k))?)
                }
                None => None,
            };
            attempts.push(AttemptRecord {
                number: col::<i64>(r, 0)? as u32,
                result: AttemptResult {
                    started_at: col(r, 1)?,
                    duration_ms: col::<i64>(r, 2)?.max(0) as u64,
                    status_code: col::<Option<i64>>(r, 3)?.map(|s| s as u16),
                    error_kind,
                    error_message: col(r, 5)?,
                    response_body: col(r, 6)?,
                    retry_after: None,
                },
            });
        }
        let hooks = delivery_hooks(&c, &row.hooks_id).await?;
        let delivery = SendableDelivery {
            product: parse_product(&row.product)?,
            event: parse_event(&row.event)?,
            hooks_id: row.hooks_id.clone(),
            config_id: row.config_id.clone(),
            app_key: row.app_key.clone(),
            attempt_count: row.attempt_count as u32,
            hooks,
        };
        let hook_ids = delivery.hooks.iter().map(|h| h.hook_id.clone()).collect();
        Ok(Some(DeliveryDetail {
            summary: row.into_summary(hook_ids)?,
            envelope: delivery.envelope(),
            attempts,
        }))
    }

    async fn redeliver(
        &self,
        app_key: &str,
        hooks_id: &str,
        new_hooks_id: String,
    ) -> StoreResult<Option<DeliverySummary>> {
        let app_key = app_key.to_owned();
        let hooks_id = hooks_id.to_owned();
        self.write(move |c| async move {
            let Some(row) = load_delivery_row(&c, &hooks_id).await? else {
                return Ok((None, Vec::new()));
            };
            if row.app_key != app_key {
                return Ok((None, Vec::new()));
            }
            let config_exists = c
                .query_opt(
                    "SELECT 1 FROM webhook_configs WHERE id = $1",
                    &[&row.config_id],
                )
                .await
                .map_err(pg_err)?;
            if config_exists.is_none() {
                // Decided before writing anything: the group's transaction stays clean.
                return Err(StoreError::Conflict(format!(
                    "webhookConfigId: the config {} of this delivery was deleted",
                    row.config_id
                )));
            }
            let rows = c
                .query(
                    "SELECT d.hook_seq, h.hook_id FROM delivery_hooks d \
                     JOIN hooks h ON h.seq = d.hook_seq WHERE d.hooks_id = $1 \
                     ORDER BY d.position",
                    &[&hooks_id],
                )
                .await
                .map_err(pg_err)?;
            let mut seqs = Vec::with_capacity(rows.len());
            let mut hook_ids = Vec::with_capacity(rows.len());
            for r in &rows {
                seqs.push(col::<i64>(r, 0)?);
                hook_ids.push(col::<String>(r, 1)?);
            }
            let now = now_millis();
            let summary = DeliverySummary::new(
                new_hooks_id,
                &row.app_key,
                &row.config_id,
                parse_product(&row.product)?,
                parse_event(&row.event)?,
                DeliveryStatus::Pending,
                hook_ids,
                now,
            );
            insert_delivery(&*c, &summary, &seqs, None).await?;
            Ok((Some(summary), Vec::new()))
        })
        .await
    }

    async fn replay(
        &self,
        app_key: &str,
        config_id: &str,
        filter: ReplayFilter,
    ) -> StoreResult<u64> {
        let app_key = app_key.to_owned();
        let config_id = config_id.to_owned();
        let statuses: Vec<&'static str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        self.write(move |c| async move {
            // An empty status list means every status.
            let queued = c
                .execute(
                    "INSERT INTO queue (config_id, event, hook_seq) \
                     SELECT d.config_id, d.event, dh.hook_seq FROM deliveries d \
                     JOIN delivery_hooks dh ON dh.hooks_id = d.hooks_id \
                     WHERE d.app_key = $1 AND d.config_id = $2 \
                     AND ($3::BIGINT IS NULL OR d.created_at >= $3) \
                     AND ($4::BIGINT IS NULL OR d.created_at < $4) \
                     AND (cardinality($5::TEXT[]) = 0 OR d.status = ANY($5)) \
                     ON CONFLICT DO NOTHING",
                    &[
                        &app_key,
                        &config_id,
                        &filter.since,
                        &filter.until,
                        &statuses,
                    ],
                )
                .await
                .map_err(pg_err)?;
            if queued > 0 {
                notify(&c, WORK_CHANNEL, std::slice::from_ref(&config_id)).await?;
            }
            let signals = if queued > 0 {
                vec![StoreSignal::NewWork { config_id }]
            } else {
                Vec::new()
            };
            Ok((queued, signals))
        })
        .await
    }

    async fn purge_deliveries(&self, cutoff: Millis, batch: u32) -> StoreResult<usize> {
        self.write(move |c| async move {
            let rows = c
                .query(
                    "WITH expired AS ( \
                         DELETE FROM deliveries WHERE hooks_id IN ( \
                             SELECT hooks_id FROM deliveries \
                             WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELLED') \
                             AND updated_at < $1 LIMIT $2) \
                         RETURNING hooks_id), \
                     gone_attempts AS ( \
                         DELETE FROM attempts WHERE hooks_id IN (SELECT hooks_id FROM expired)), \
                     gone_links AS ( \
                         DELETE FROM delivery_hooks \
                         WHERE hooks_id IN (SELECT hooks_id FROM expired)) \
                     SELECT hooks_id FROM expired",
                    &[&cutoff, &i64::from(batch)],
                )
                .await
                .map_err(pg_err)?;
            Ok((rows.len(), Vec::new()))
        })
        .await
    }

    async fn purge_hooks(&self, cutoff: Millis, after: i64, batch: u32) -> StoreResult<HookPurge> {
        self.write(move |c| async move {
            let rows = c
                .query(
                    "SELECT seq, created_at FROM hooks WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&after, &i64::from(batch)],
                )
                .await
                .map_err(pg_err)?;
            let mut candidates = Vec::with_capacity(rows.len());
            for r in &rows {
                candidates.push((col::<i64>(r, 0)?, col::<i64>(r, 1)?));
            }
            let mut purge = HookPurge {
                deleted: 0,
                next: None,
            };
            for (seq, created_at) in &candidates {
                if *created_at >= cutoff {
                    // Hooks are numbered in arrival order: the rest are younger still.
                    return Ok((purge, Vec::new()));
                }
                let n = c
                    .execute(
                        "DELETE FROM hooks WHERE seq = $1 \
                         AND NOT EXISTS (SELECT 1 FROM delivery_hooks WHERE hook_seq = $1) \
                         AND NOT EXISTS (SELECT 1 FROM queue WHERE hook_seq = $1)",
                        &[seq],
                    )
                    .await
                    .map_err(pg_err)?;
                purge.deleted += n as usize;
                purge.next = Some(*seq);
            }
            if candidates.len() < batch as usize {
                purge.next = None;
            }
            Ok((purge, Vec::new()))
        })
        .await
    }

    async fn close(&self) {
        for task in self
            .background
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
        {
            task.abort();
        }
        // Hand back the leases still held (attempts cut by the shutdown grace period): the other
        // nodes need not wait for them to expire. After the queued records, which free theirs.
        let node = self.node.clone();
        let handed_back = self
            .write(move |c| async move {
                let n = c
                    .execute(
                        "UPDATE deliveries SET lease_owner = NULL, lease_expires_at = NULL \
                         WHERE lease_owner = $1",
                        &[&&*node.id],
                    )
                    .await
                    .map_err(pg_err)?;
                if n > 0 {
                    // The other nodes sweep at once instead of at their next interval.
                    notify(&c, FREED_CHANNEL, &[node.id.to_string()]).await?;
                }
                // Left: the others take over this node's part of the per-config limits.
                c.execute("DELETE FROM nodes WHERE node_id = $1", &[&&*node.id])
                    .await
                    .map_err(pg_err)?;
                notify(&c, NODES_CHANNEL, &[node.id.to_string()]).await?;
                Ok((n, Vec::new()))
            })
            .await;
        match handed_back {
            Ok(n) => tracing::info!(leases = n, "leases handed back"),
            Err(e) => tracing::warn!(error = %e, "leases not handed back; they expire instead"),
        }
        // Dropping the sender lets the writer finish the queued jobs and stop.
        let sender = self.writer.lock().ok().and_then(|mut w| w.take());
        drop(sender);
        let task = self.writer_task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
        self.pool.close();
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let c = self.reader().await?;
        let row = c
            .query_one(
                "SELECT COUNT(*), (SELECT h.created_at FROM hooks h \
                 WHERE h.seq = (SELECT MIN(hook_seq) FROM queue)) FROM queue",
                &[],
            )
            .await
            .map_err(pg_err)?;
        let queued_hooks: i64 = col(&row, 0)?;
        let oldest_queued_at: Option<i64> = col(&row, 1)?;
        let mut open_deliveries = Vec::new();
        for r in c
            .query(
                "SELECT status, COUNT(*) FROM deliveries \
                 WHERE status IN ('PENDING', 'RETRYING') GROUP BY status",
                &[],
            )
            .await
            .map_err(pg_err)?
        {
            let status: String = col(&r, 0)?;
            open_deliveries.push((parse_status(&status)?, col::<i64>(&r, 1)? as u64));
        }
        let mut configs_by_health = Vec::new();
        let mut paused_configs = 0;
        for r in c
            .query(
                "SELECT enabled, health_state, COUNT(*) FROM webhook_configs \
                 GROUP BY enabled, health_state",
                &[],
            )
            .await
            .map_err(pg_err)?
        {
            let enabled: bool = col(&r, 0)?;
            let state: String = col(&r, 1)?;
            let n = col::<i64>(&r, 2)? as u64;
            if !enabled {
                paused_configs += n;
                continue;
            }
            let state =
                HealthState::parse(&state).ok_or_else(|| corrupt("health state", &state))?;
            configs_by_health.push((state, n));
        }
        Ok(StoreStats {
            queued_hooks: queued_hooks as u64,
            oldest_queued_at,
            open_deliveries,
            configs_by_health,
            paused_configs,
        })
    }

    async fn attempt_buckets(
        &self,
        app_key: &str,
        config_id: &str,
        since: Millis,
        bucket_ms: i64,
        buckets: u32,
    ) -> StoreResult<Vec<AttemptBucket>> {
        let bucket_ms = bucket_ms.max(1);
        let until = since.saturating_add(bucket_ms.saturating_mul(i64::from(buckets)));
        let lookback = since.saturating_sub(super::ATTEMPT_LOOKBACK);
        let c = self.reader().await?;
        // SUM over BIGINT is NUMERIC in PostgreSQL: cast back so the driver reads an i64.
        let rows = c
            .query(
                "SELECT (a.started_at - $3) / $5 AS bucket, COUNT(*), \
                 SUM(CASE WHEN a.status_code BETWEEN 200 AND 299 AND a.error_kind IS NULL \
                     THEN 1 ELSE 0 END)::BIGINT, \
                 SUM(a.duration_ms)::BIGINT, MAX(a.duration_ms) \
                 FROM deliveries d JOIN attempts a ON a.hooks_id = d.hooks_id \
                 WHERE d.config_id = $2 AND d.app_key = $1 AND d.created_at >= $6 \
                 AND d.created_at < $4 AND a.started_at >= $3 AND a.started_at < $4 \
                 GROUP BY bucket ORDER BY bucket",
                &[&app_key, &config_id, &since, &until, &bucket_ms, &lookback],
            )
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                Ok(AttemptBucket {
                    index: col::<i64>(r, 0)?.clamp(0, i64::from(u32::MAX)) as u32,
                    attempts: col::<i64>(r, 1)?.max(0) as u64,
                    succeeded: col::<Option<i64>>(r, 2)?.unwrap_or(0).max(0) as u64,
                    total_ms: col::<Option<i64>>(r, 3)?.unwrap_or(0).max(0) as u64,
                    max_ms: col::<Option<i64>>(r, 4)?.unwrap_or(0).max(0) as u64,
                })
            })
            .collect()
    }
}
