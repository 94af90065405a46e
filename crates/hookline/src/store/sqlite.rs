//! The embedded store: one SQLite database file in WAL mode.
//!
//! Writes go through a single writer thread that **group-commits**: it takes every job queued
//! since its last commit (many ingest requests, claims and attempt records) and runs them in one
//! transaction, each inside its own savepoint so one failing job does not undo the others. One
//! fsync per group, not per request. Callers get their answer only after the commit.
//!
//! Reads use a small pool of separate connections (WAL lets them run beside the writer).
//!
//! `synchronous=NORMAL` in WAL mode: a committed transaction survives a crash of the process; a
//! power loss may lose the last commits (`--fsync full`, [`Fsync::Full`], is the knob for that).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hookline_wire::{Event, Product, ValidatedHook};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use tokio::sync::{mpsc, oneshot};

use super::{
    AttemptBucket, Claim, ClaimedBatch, DeliveryDetail, HookPurge, IngestOutcome, JobStatus, Lease,
    Membership, OpenDelivery, Store, StoreError, StoreResult, StoreSignal, StoreStats, cursor,
    job_status,
};
use crate::model::{
    AppKeyRecord, AttemptErrorKind, AttemptOutcome, AttemptRecord, AttemptResult, ConfigFilter,
    DeliveryFilter, DeliveryStatus, DeliverySummary, Health, HealthState, Millis, Page,
    PageRequest, PreviousSecret, ReplayFilter, SendableDelivery, StoredHook, WebhookConfig,
    now_millis,
};

/// Most jobs folded into one transaction: bounds a group's latency under a flood.
const MAX_JOBS_PER_COMMIT: usize = 1024;
const READER_POOL_SIZE: usize = 4;
/// How often the background checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Schema migrations, applied in order at open; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE app_keys (
    app_key     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);
CREATE TABLE webhook_configs (
    id                   TEXT PRIMARY KEY,
    app_key              TEXT NOT NULL,
    product              TEXT NOT NULL,
    events               TEXT NOT NULL,
    url                  TEXT NOT NULL,
    signature            TEXT NOT NULL,
    signing_secret       TEXT,
    enabled              INTEGER NOT NULL,
    description          TEXT NOT NULL,
    max_hooks            INTEGER NOT NULL,
    max_in_flight        INTEGER NOT NULL,
    timeout_ms           INTEGER NOT NULL,
    retry_schedule       TEXT NOT NULL,
    health_state         TEXT NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    last_success_at      INTEGER,
    last_failure_at      INTEGER,
    failing_since        INTEGER,
    disabled_reason      TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX webhook_configs_by_app_key ON webhook_configs (app_key, id);
-- Enabled configs by what they receive: the fan-out lookup of ingest.
CREATE TABLE subscriptions (
    app_key   TEXT NOT NULL,
    product   TEXT NOT NULL,
    event     TEXT NOT NULL,
    config_id TEXT NOT NULL,
    PRIMARY KEY (app_key, product, event, config_id)
) WITHOUT ROWID;
CREATE INDEX subscriptions_by_config ON subscriptions (config_id);
-- Each accepted hook once, its normalised JSON stored as received.
CREATE TABLE hooks (
    seq        INTEGER PRIMARY KEY,
    app_key    TEXT NOT NULL,
    hook_id    TEXT NOT NULL,
    product    TEXT NOT NULL,
    event      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (app_key, hook_id)
);
-- Hooks waiting for a config, not yet in a delivery.
CREATE TABLE queue (
    config_id TEXT NOT NULL,
    event     TEXT NOT NULL,
    hook_seq  INTEGER NOT NULL,
    PRIMARY KEY (config_id, event, hook_seq)
) WITHOUT ROWID;
CREATE TABLE deliveries (
    hooks_id        TEXT PRIMARY KEY,
    app_key         TEXT NOT NULL,
    config_id       TEXT NOT NULL,
    product         TEXT NOT NULL,
    event           TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt_count   INTEGER NOT NULL,
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX deliveries_log ON deliveries (app_key, created_at DESC, hooks_id DESC);
CREATE INDEX deliveries_by_config ON deliveries (config_id, created_at);
CREATE INDEX deliveries_open ON deliveries (status) WHERE status IN ('PENDING', 'RETRYING');
CREATE TABLE delivery_hooks (
    hooks_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    hook_seq INTEGER NOT NULL,
    PRIMARY KEY (hooks_id, position)
) WITHOUT ROWID;
CREATE INDEX delivery_hooks_by_hook ON delivery_hooks (hook_seq);
CREATE TABLE attempts (
    hooks_id      TEXT NOT NULL,
    number        INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    status_code   INTEGER,
    error_kind    TEXT,
    error_message TEXT,
    response_body TEXT,
    PRIMARY KEY (hooks_id, number)
) WITHOUT ROWID;
"#,
    // 2: Standard Webhooks secret rotation: the replaced secret signs until it expires.
    r#"
ALTER TABLE webhook_configs ADD COLUMN previous_signing_secret TEXT;
ALTER TABLE webhook_configs ADD COLUMN previous_signing_secret_expires_at INTEGER;
"#,
    // 3: deliveries without a rowid, retention's lookups, and a partial index whose predicate the planner must check against bound values makes SQLite
    // re-prepare statements over and over; a plain index on status serves the same queries.
    r#"
-- Keyed by hooksId without a separate rowid: one B-tree less to write per delivery.
CREATE TABLE deliveries_by_id (
    hooks_id        TEXT PRIMARY KEY,
    app_key         TEXT NOT NULL,
    config_id       TEXT NOT NULL,
    product         TEXT NOT NULL,
    event           TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt_count   INTEGER NOT NULL,
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO deliveries_by_id SELECT hooks_id, app_key, config_id, product, event, status,
    attempt_count, next_attempt_at, created_at, updated_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_id RENAME TO deliveries;
CREATE INDEX deliveries_log ON deliveries (app_key, created_at DESC, hooks_id DESC);
CREATE INDEX deliveries_by_config ON deliveries (config_id, created_at);
CREATE INDEX deliveries_by_status ON deliveries (status, updated_at);
-- Retention must know whether a hook is still queued for some config.
CREATE INDEX queue_by_hook ON queue (hook_seq);
"#,
];

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        db_err(e)
    }
}

/// What a write job sees: the open transaction and the signals to emit if it commits.
pub struct WriteTx<'a> {
    conn: &'a Connection,
    signals: &'a mut Vec<StoreSignal>,
}

type Finisher = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// A job gets the transaction (or the reason there is none) and returns how it went and what to
/// do once the group's commit is known.
type Job = Box<dyn FnOnce(StoreResult<&mut WriteTx<'_>>) -> (JobStatus, Finisher) + Send>;

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn get(&self) -> StoreResult<Connection> {
        if let Some(conn) = self.idle.lock().map_err(poisoned)?.pop() {
            return Ok(conn);
        }
        open_connection(&self.path, true)
    }

    fn put(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < READER_POOL_SIZE
        {
            idle.push(conn);
        }
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("reader pool lock poisoned".into())
}

pub struct SqliteStore {
    writer: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<ReaderPool>,
    signals_rx: Mutex<Option<mpsc::UnboundedReceiver<StoreSignal>>>,
    checkpointer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer_stop: Arc<std::sync::atomic::AtomicBool>,
    unrecorded: Unrecorded,
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

fn open_connection(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    if read_only {
        conn.pragma_update(None, "query_only", "ON")?;
    } else {
        // A moderate cache: SQLite scans the page cache's hash at every commit, so a huge cache
        // costs more per commit than it saves in reads.
        conn.pragma_update(None, "cache_size", "-8192")?;
        // Checkpoints run on their own thread (see `checkpoint_loop`).
        conn.pragma_update(None, "wal_autocheckpoint", "0")?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `hookline.db` in `data_dir`, runs migrations and starts the
    /// writer thread.
    pub fn open(data_dir: &Path) -> StoreResult<Self> {
        SqliteStore::open_with(data_dir, Fsync::Normal)
    }

    /// Like [`SqliteStore::open`], choosing how hard commits are synced to disk.
    pub fn open_with(data_dir: &Path, fsync: Fsync) -> StoreResult<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", data_dir.display())))?;
        let path = data_dir.join("hookline.db");
        let mut conn = open_connection(&path, false)?;
        if fsync == Fsync::Full {
            conn.pragma_update(None, "synchronous", "FULL")?;
        }
        migrate(&mut conn)?;

        let (job_tx, job_rx) = std::sync::mpsc::channel::<Job>();
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, job_rx, sig_tx))
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
                .spawn(move || checkpoint_loop(path, stop, jobs, unrecorded))
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot start checkpoint thread: {e}"))
                })?
        };
        Ok(SqliteStore {
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

    /// Runs `f` in the writer's next group commit and returns its result once committed.
    async fn write<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteTx<'_>) -> StoreResult<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<R>>();
        let job: Job = Box::new(move |ctx| match ctx {
            Ok(ctx) => {
                let result = f(ctx);
                let status = job_status(&result);
                let finish: Finisher = Box::new(move |commit| {
                    let _ = tx.send(commit.and(result));
                });
                (status, finish)
            }
            Err(e) => {
                let status = JobStatus::Failed(e.clone());
                let finish: Finisher = Box::new(move |_| {
                    let _ = tx.send(Err(e));
                });
                (status, finish)
            }
        });
        self.submit(job)?;
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// Runs `f` in the writer's next group and answers as soon as it has run, before the group
    /// commits. For work whose loss in a failed commit is harmless: the engine's claims (if the
    /// commit fails, the hooks stay queued and are claimed again: at-least-once).
    async fn write_uncommitted<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteTx<'_>) -> StoreResult<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<R>>();
        let job: Job = Box::new(move |ctx| {
            let result = ctx.and_then(f);
            let status = job_status(&result);
            let _ = tx.send(result);
            let finish: Finisher = Box::new(|commit| {
                if let Err(e) = commit {
                    tracing::warn!(error = %e, "a claim's commit failed; its hooks stay queued");
                }
            });
            (status, finish)
        });
        self.submit(job)?;
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
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

    /// Runs `f` on a reader connection on the blocking pool.
    async fn read<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            let result = f(&conn);
            pool.put(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reader task failed: {e}")))?
    }
}

/// Transaction control statements, prepared once: parsing them per job showed in profiles.
fn run_cached(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn writer_loop(
    conn: Connection,
    jobs: std::sync::mpsc::Receiver<Job>,
    signals_out: mpsc::UnboundedSender<StoreSignal>,
) {
    let mut signals: Vec<StoreSignal> = Vec::new();
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    let mut finishers: Vec<Finisher> = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    // Jobs that did not run because an earlier job of their group failed: first in the next.
    let mut carried: Vec<Job> = Vec::new();
    loop {
        if carried.is_empty() {
            match jobs.recv() {
                Ok(first) => batch.push(first),
                Err(_) => break,
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

        if let Err(e) = run_cached(&conn, "BEGIN IMMEDIATE") {
            for job in batch.drain(..) {
                let (_, finish) = job(Err(e.clone()));
                finish(Err(e.clone()));
            }
            continue;
        }
        let mut failure = None;
        let mut pending = batch.drain(..);
        for job in pending.by_ref() {
            let mut ctx = WriteTx {
                conn: &conn,
                signals: &mut signals,
            };
            let (status, finish) = job(Ok(&mut ctx));
            finishers.push(finish);
            if let JobStatus::Failed(e) = status {
                failure = Some(e);
                break;
            }
        }
        carried.extend(pending);
        let outcome = match failure {
            None => run_cached(&conn, "COMMIT"),
            Some(e) => Err(e),
        };
        if let Err(e) = &outcome {
            tracing::error!(error = %e, jobs = finishers.len(), "write group rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            signals.clear();
        }
        // Signals first, then answers: whoever learns that its write committed can rely on the
        // engine having been told of the work it created.
        for signal in signals.drain(..) {
            let _ = signals_out.send(signal);
        }
        for finish in finishers.drain(..) {
            finish(outcome.clone());
        }
    }
    // Every sender is gone: checkpoint so the WAL does not linger.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

/// Attempt records whose commit failed (a full disk, an I/O error), waiting to be written again.
type Unrecorded = Arc<Mutex<Vec<AttemptOutcome>>>;

/// The writer job of one attempt record. If its group fails to commit, the outcome goes to
/// `unrecorded` and the background thread submits it again, so a store that comes back gets
/// every attempt without a restart.
fn record_job(outcome: AttemptOutcome, unrecorded: Unrecorded) -> Job {
    Box::new(move |ctx| {
        let result = ctx.and_then(|tx| write_attempt(tx.conn, &outcome));
        let status = job_status(&result);
        let finish: Finisher = Box::new(move |commit| {
            if let Err(e) = commit.and(result) {
                tracing::warn!(error = %e, hooks_id = outcome.hooks_id, "attempt record not committed; will retry");
                if let Ok(mut list) = unrecorded.lock() {
                    list.push(outcome);
                }
            }
        });
        (status, finish)
    })
}

fn write_attempt(conn: &Connection, outcome: &AttemptOutcome) -> StoreResult<()> {
    let r = &outcome.result;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO attempts (hooks_id, number, started_at, duration_ms, \
         status_code, error_kind, error_message, response_body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        outcome.hooks_id,
        outcome.number,
        r.started_at,
        r.duration_ms as i64,
        r.status_code,
        r.error_kind.map(AttemptErrorKind::as_str),
        r.error_message,
        r.response_body
    ])?;
    // Only forward: a record written again late never undoes a later attempt's state.
    conn.prepare_cached(
        "UPDATE deliveries SET status = ?2, attempt_count = ?3, next_attempt_at = ?4, \
         updated_at = ?5 WHERE hooks_id = ?1 AND status IN ('PENDING', 'RETRYING') \
         AND attempt_count < ?3",
    )?
    .execute(params![
        outcome.hooks_id,
        outcome.new_status.as_str(),
        outcome.number,
        outcome.next_attempt_at,
        now_millis()
    ])?;
    if let Some(health) = &outcome.health {
        write_health(conn, &outcome.config_id, health)?;
    }
    Ok(())
}

/// Copies the WAL into the database file in the background, so the writer never pays for
/// checkpoints (and their fsync) on its own thread.
fn checkpoint_loop(
    path: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
    jobs: std::sync::mpsc::Sender<Job>,
    unrecorded: Unrecorded,
) {
    let conn = match Connection::open(&path) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(error = %e, "checkpointer cannot open the database");
            return;
        }
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::park_timeout(CHECKPOINT_EVERY);
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "background checkpoint failed");
        }
        let retry = unrecorded
            .lock()
            .map(|mut list| std::mem::take(&mut *list))
            .unwrap_or_default();
        for outcome in retry {
            let _ = jobs.send(record_job(outcome, unrecorded.clone()));
        }
    }
}

// ---------- row mapping ----------

pub(super) fn join_events(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

pub(super) fn parse_product(s: &str) -> StoreResult<Product> {
    Product::parse(s).ok_or_else(|| corrupt("product", s))
}

pub(super) fn parse_event(s: &str) -> StoreResult<Event> {
    Event::parse(s).ok_or_else(|| corrupt("event", s))
}

pub(super) fn parse_status(s: &str) -> StoreResult<DeliveryStatus> {
    DeliveryStatus::parse(s).ok_or_else(|| corrupt("delivery status", s))
}

pub(super) const CONFIG_COLUMNS: &str = "id, app_key, product, events, url, signature, signing_secret, \
    enabled, description, max_hooks, max_in_flight, timeout_ms, retry_schedule, health_state, \
    consecutive_failures, last_success_at, last_failure_at, failing_since, disabled_reason, \
    created_at, updated_at, previous_signing_secret, previous_signing_secret_expires_at";

/// Raw columns of a config row; converted after the statement is done so conversion errors
/// are ours, not rusqlite's.
pub(super) struct ConfigRow {
    pub(super) id: String,
    pub(super) app_key: String,
    pub(super) product: String,
    pub(super) events: String,
    pub(super) url: String,
    pub(super) signature: String,
    pub(super) signing_secret: Option<String>,
    pub(super) enabled: bool,
    pub(super) description: String,
    pub(super) max_hooks: i64,
    pub(super) max_in_flight: i64,
    pub(super) timeout_ms: i64,
    pub(super) retry_schedule: String,
    pub(super) health_state: String,
    pub(super) consecutive_failures: i64,
    pub(super) last_success_at: Option<i64>,
    pub(super) last_failure_at: Option<i64>,
    pub(super) failing_since: Option<i64>,
    pub(super) disabled_reason: Option<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) previous_signing_secret: Option<String>,
    pub(super) previous_signing_secret_expires_at: Option<i64>,
}

/// `hooks_id, config_id, due` as selected by the open-delivery queries.
fn open_delivery(r: &Row<'_>) -> rusqlite::Result<OpenDelivery> {
    Ok(OpenDelivery {
        hooks_id: r.get(0)?,
        config_id: r.get(1)?,
        next_attempt_at: r.get(2)?,
    })
}

fn config_row(r: &Row<'_>) -> rusqlite::Result<ConfigRow> {
    Ok(ConfigRow {
        id: r.get(0)?,
        app_key: r.get(1)?,
        product: r.get(2)?,
        events: r.get(3)?,
        url: r.get(4)?,
        signature: r.get(5)?,
        signing_secret: r.get(6)?,
        enabled: r.get(7)?,
        description: r.get(8)?,
        max_hooks: r.get(9)?,
        max_in_flight: r.get(10)?,
        timeout_ms: r.get(11)?,
        retry_schedule: r.get(12)?,
        health_state: r.get(13)?,
        consecutive_failures: r.get(14)?,
        last_success_at: r.get(15)?,
        last_failure_at: r.get(16)?,
        failing_since: r.get(17)?,
        disabled_reason: r.get(18)?,
        created_at: r.get(19)?,
        updated_at: r.get(20)?,
        previous_signing_secret: r.get(21)?,
        previous_signing_secret_expires_at: r.get(22)?,
    })
}

impl ConfigRow {
    pub(super) fn into_config(self) -> StoreResult<WebhookConfig> {
        let events = if self.events.is_empty() {
            Vec::new()
        } else {
            self.events
                .split(',')
                .map(parse_event)
                .collect::<StoreResult<Vec<_>>>()?
        };
        let retry_schedule = if self.retry_schedule.is_empty() {
            Vec::new()
        } else {
            self.retry_schedule
                .split(',')
                .map(|ms| {
                    ms.parse::<u64>()
                        .map(Duration::from_millis)
                        .map_err(|_| corrupt("retry schedule", &self.retry_schedule))
                })
                .collect::<StoreResult<Vec<_>>>()?
        };
        Ok(WebhookConfig {
            product: parse_product(&self.product)?,
            events,
            retry_schedule,
            health: Health {
                state: HealthState::parse(&self.health_state)
                    .ok_or_else(|| corrupt("health state", &self.health_state))?,
                consecutive_failures: self.consecutive_failures as u32,
                last_success_at: self.last_success_at,
                last_failure_at: self.last_failure_at,
                failing_since: self.failing_since,
                disabled_reason: self.disabled_reason,
            },
            id: self.id,
            app_key: self.app_key,
            url: self.url,
            signature: self.signature,
            signing_secret: self.signing_secret,
            previous_signing_secret: self
                .previous_signing_secret
                .zip(self.previous_signing_secret_expires_at)
                .map(|(secret, expires_at)| PreviousSecret { secret, expires_at }),
            enabled: self.enabled,
            description: self.description,
            max_hooks_per_request: self.max_hooks as u32,
            max_requests_in_flight: self.max_in_flight as u32,
            timeout_ms: self.timeout_ms as u32,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub(super) fn schedule_text(config: &WebhookConfig) -> String {
    config
        .retry_schedule
        .iter()
        .map(|d| d.as_millis().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn write_subscriptions(conn: &Connection, config: &WebhookConfig) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM subscriptions WHERE config_id = ?1")?
        .execute(params![config.id])?;
    if config.enabled && config.health.state != HealthState::Disabled {
        let mut insert = conn.prepare_cached(
            "INSERT OR IGNORE INTO subscriptions (app_key, product, event, config_id) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for event in &config.events {
            insert.execute(params![
                config.app_key,
                config.product.as_str(),
                event.as_str(),
                config.id
            ])?;
        }
    }
    Ok(())
}

pub(super) const DELIVERY_COLUMNS: &str = "hooks_id, app_key, config_id, product, event, status, \
    attempt_count, next_attempt_at, created_at, updated_at";

pub(super) struct DeliveryRow {
    pub(super) hooks_id: String,
    pub(super) app_key: String,
    pub(super) config_id: String,
    pub(super) product: String,
    pub(super) event: String,
    pub(super) status: String,
    pub(super) attempt_count: i64,
    pub(super) next_attempt_at: Option<i64>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        hooks_id: r.get(0)?,
        app_key: r.get(1)?,
        config_id: r.get(2)?,
        product: r.get(3)?,
        event: r.get(4)?,
        status: r.get(5)?,
        attempt_count: r.get(6)?,
        next_attempt_at: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

impl DeliveryRow {
    pub(super) fn into_summary(self, hook_ids: Vec<String>) -> StoreResult<DeliverySummary> {
        let status = parse_status(&self.status)?;
        Ok(DeliverySummary {
            product: parse_product(&self.product)?,
            event: parse_event(&self.event)?,
            next_attempt_at: if status.is_open() {
                self.next_attempt_at
            } else {
                None
            },
            status,
            hooks_id: self.hooks_id,
            app_key: self.app_key,
            config_id: self.config_id,
            attempt_count: self.attempt_count as u32,
            hook_ids,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn delivery_hooks(conn: &Connection, hooks_id: &str) -> StoreResult<Vec<StoredHook>> {
    let mut stmt = conn.prepare_cached(
        "SELECT h.hook_id, h.body FROM delivery_hooks d JOIN hooks h ON h.seq = d.hook_seq \
         WHERE d.hooks_id = ?1 ORDER BY d.position",
    )?;
    let rows = stmt.query_map(params![hooks_id], |r| {
        Ok(StoredHook {
            hook_id: r.get(0)?,
            json: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn delivery_hook_ids(conn: &Connection, hooks_id: &str) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT h.hook_id FROM delivery_hooks d JOIN hooks h ON h.seq = d.hook_seq \
         WHERE d.hooks_id = ?1 ORDER BY d.position",
    )?;
    let rows = stmt.query_map(params![hooks_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// The hookIds of several deliveries, each in envelope order.
fn page_hook_ids<'a>(
    conn: &Connection,
    hooks_ids: impl Iterator<Item = &'a str>,
) -> StoreResult<std::collections::HashMap<String, Vec<String>>> {
    let hooks_ids: Vec<&str> = hooks_ids.collect();
    let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    if hooks_ids.is_empty() {
        return Ok(out);
    }
    let marks = vec!["?"; hooks_ids.len()].join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT d.hooks_id, h.hook_id FROM delivery_hooks d JOIN hooks h ON h.seq = d.hook_seq \
         WHERE d.hooks_id IN ({marks}) ORDER BY d.hooks_id, d.position"
    ))?;
    let rows = stmt.query_map(params_from_iter(hooks_ids), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (hooks_id, hook_id) = row?;
        out.entry(hooks_id).or_default().push(hook_id);
    }
    Ok(out)
}

fn load_delivery_row(conn: &Connection, hooks_id: &str) -> StoreResult<Option<DeliveryRow>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE hooks_id = ?1"
        ))?
        .query_row(params![hooks_id], delivery_row)
        .optional()?)
}

fn sendable(conn: &Connection, row: DeliveryRow) -> StoreResult<SendableDelivery> {
    let hooks = delivery_hooks(conn, &row.hooks_id)?;
    Ok(SendableDelivery {
        product: parse_product(&row.product)?,
        event: parse_event(&row.event)?,
        hooks_id: row.hooks_id,
        config_id: row.config_id,
        app_key: row.app_key,
        attempt_count: row.attempt_count as u32,
        hooks,
    })
}

fn insert_delivery(
    conn: &Connection,
    summary: &DeliverySummary,
    hook_seqs: &[i64],
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, status, \
         attempt_count, next_attempt_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        summary.hooks_id,
        summary.app_key,
        summary.config_id,
        summary.product.as_str(),
        summary.event.as_str(),
        summary.status.as_str(),
        summary.attempt_count,
        summary.next_attempt_at,
        summary.created_at,
        summary.updated_at
    ])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO delivery_hooks (hooks_id, position, hook_seq) VALUES (?1, ?2, ?3)",
    )?;
    for (position, seq) in hook_seqs.iter().enumerate() {
        insert.execute(params![summary.hooks_id, position as i64, seq])?;
    }
    Ok(())
}

pub(super) fn page_size(page: &PageRequest) -> u32 {
    page.size.clamp(1, 1000)
}

/// Takes up to `batches` x `max_hooks` queued hooks of one event (the event whose oldest hook is
/// oldest: FIFO across events) with one read and one delete, and turns them into up to `batches`
/// PENDING deliveries of at most `max_hooks` hooks each. Empty when the queue is.
fn claim_event(
    conn: &Connection,
    config_id: &str,
    app_key: &str,
    product: Product,
    max_hooks: u32,
    batches: u32,
) -> StoreResult<Vec<ClaimedBatch>> {
    let mut oldest: Option<(i64, Event)> = None;
    {
        let mut min_seq = conn.prepare_cached(
            "SELECT MIN(hook_seq) FROM queue WHERE config_id = ?1 AND event = ?2",
        )?;
        for event in product.events() {
            let seq: Option<i64> =
                min_seq.query_row(params![config_id, event.as_str()], |r| r.get(0))?;
            if let Some(seq) = seq
                && oldest.is_none_or(|(s, _)| seq < s)
            {
                oldest = Some((seq, *event));
            }
        }
    }
    let Some((_, event)) = oldest else {
        return Ok(Vec::new());
    };
    let max_hooks = max_hooks.max(1);
    let taken: Vec<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT q.hook_seq, h.hook_id, h.body FROM queue q \
             JOIN hooks h ON h.seq = q.hook_seq \
             WHERE q.config_id = ?1 AND q.event = ?2 ORDER BY q.hook_seq LIMIT ?3",
        )?
        .query_map(
            params![
                config_id,
                event.as_str(),
                i64::from(max_hooks) * i64::from(batches)
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let Some(last_seq) = taken.last().map(|t| t.0) else {
        return Err(StoreError::Corrupt(format!(
            "queue of {config_id} names hooks that do not exist"
        )));
    };
    conn.prepare_cached(
        "DELETE FROM queue WHERE config_id = ?1 AND event = ?2 AND hook_seq <= ?3",
    )?
    .execute(params![config_id, event.as_str(), last_seq])?;
    let now = now_millis();
    let mut claimed = Vec::with_capacity(batches as usize);
    let mut rows = taken.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<(i64, String, String)> = rows.by_ref().take(max_hooks as usize).collect();
        let hooks_id = hookline_wire::generate_id();
        let summary = DeliverySummary::new(
            hooks_id.clone(),
            app_key,
            config_id,
            product,
            event,
            DeliveryStatus::Pending,
            Vec::new(),
            now,
        );
        let seqs: Vec<i64> = chunk.iter().map(|t| t.0).collect();
        insert_delivery(conn, &summary, &seqs)?;
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
    Ok(claimed)
}

#[async_trait]
impl Store for SqliteStore {
    fn take_signals(&self) -> Option<mpsc::UnboundedReceiver<StoreSignal>> {
        self.signals_rx.lock().ok()?.take()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    async fn create_app_key(&self, record: AppKeyRecord, secret_hash: String) -> StoreResult<()> {
        self.write(move |tx| {
            let inserted = tx
                .conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO app_keys (app_key, name, secret_hash, created_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    record.app_key,
                    record.name,
                    secret_hash,
                    record.created_at
                ])?;
            if inserted == 0 {
                return Err(StoreError::Conflict("app key already exists".into()));
            }
            Ok(())
        })
        .await
    }

    async fn list_app_keys(&self, page: PageRequest) -> StoreResult<Page<AppKeyRecord>> {
        self.read(move |conn| {
            let size = page_size(&page);
            let after = match &page.cursor {
                Some(c) => cursor::decode(c, 1).ok_or(StoreError::BadCursor)?.remove(0),
                None => String::new(),
            };
            let mut stmt = conn.prepare_cached(
                "SELECT app_key, name, created_at FROM app_keys WHERE app_key > ?1 \
                 ORDER BY app_key LIMIT ?2",
            )?;
            let items = stmt
                .query_map(params![after, size + 1], |r| {
                    Ok(AppKeyRecord {
                        app_key: r.get(0)?,
                        name: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(paginate(items, size, |k| cursor::encode(&[&k.app_key])))
        })
        .await
    }

    async fn get_app_key(&self, app_key: &str) -> StoreResult<Option<AppKeyRecord>> {
        let app_key = app_key.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT app_key, name, created_at FROM app_keys WHERE app_key = ?1",
                )?
                .query_row(params![app_key], |r| {
                    Ok(AppKeyRecord {
                        app_key: r.get(0)?,
                        name: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn app_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<Option<String>> {
        let secret_hash = secret_hash.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT app_key FROM app_keys WHERE secret_hash = ?1")?
                .query_row(params![secret_hash], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn set_secret_hash(&self, app_key: &str, secret_hash: String) -> StoreResult<bool> {
        let app_key = app_key.to_owned();
        self.write(move |tx| {
            let n = tx
                .conn
                .prepare_cached("UPDATE app_keys SET secret_hash = ?2 WHERE app_key = ?1")?
                .execute(params![app_key, secret_hash])?;
            Ok(n == 1)
        })
        .await
    }

    async fn insert_config(&self, config: WebhookConfig) -> StoreResult<()> {
        self.write(move |tx| {
            tx.conn
                .prepare_cached(&format!(
                    "INSERT INTO webhook_configs ({CONFIG_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                      ?17, ?18, ?19, ?20, ?21, ?22, ?23)"
                ))?
                .execute(params![
                    config.id,
                    config.app_key,
                    config.product.as_str(),
                    join_events(&config.events),
                    config.url,
                    config.signature,
                    config.signing_secret,
                    config.enabled,
                    config.description,
                    config.max_hooks_per_request,
                    config.max_requests_in_flight,
                    config.timeout_ms,
                    schedule_text(&config),
                    config.health.state.as_str(),
                    config.health.consecutive_failures,
                    config.health.last_success_at,
                    config.health.last_failure_at,
                    config.health.failing_since,
                    config.health.disabled_reason,
                    config.created_at,
                    config.updated_at,
                    config.previous_signing_secret.as_ref().map(|p| &p.secret),
                    config
                        .previous_signing_secret
                        .as_ref()
                        .map(|p| p.expires_at)
                ])?;
            write_subscriptions(tx.conn, &config)
        })
        .await
    }

    async fn update_config(&self, config: WebhookConfig) -> StoreResult<bool> {
        self.write(move |tx| {
            let n = tx
                .conn
                .prepare_cached(
                    "UPDATE webhook_configs SET product = ?3, events = ?4, url = ?5, \
                     signature = ?6, signing_secret = ?7, enabled = ?8, description = ?9, \
                     max_hooks = ?10, max_in_flight = ?11, timeout_ms = ?12, \
                     retry_schedule = ?13, health_state = ?14, consecutive_failures = ?15, \
                     last_success_at = ?16, last_failure_at = ?17, failing_since = ?18, \
                     disabled_reason = ?19, updated_at = ?20, previous_signing_secret = ?21, \
                     previous_signing_secret_expires_at = ?22 \
                     WHERE app_key = ?1 AND id = ?2",
                )?
                .execute(params![
                    config.app_key,
                    config.id,
                    config.product.as_str(),
                    join_events(&config.events),
                    config.url,
                    config.signature,
                    config.signing_secret,
                    config.enabled,
                    config.description,
                    config.max_hooks_per_request,
                    config.max_requests_in_flight,
                    config.timeout_ms,
                    schedule_text(&config),
                    config.health.state.as_str(),
                    config.health.consecutive_failures,
                    config.health.last_success_at,
                    config.health.last_failure_at,
                    config.health.failing_since,
                    config.health.disabled_reason,
                    config.updated_at,
                    config.previous_signing_secret.as_ref().map(|p| &p.secret),
                    config
                        .previous_signing_secret
                        .as_ref()
                        .map(|p| p.expires_at)
                ])?;
            if n == 0 {
                return Ok(false);
            }
            write_subscriptions(tx.conn, &config)?;
            Ok(true)
        })
        .await
    }

    async fn delete_config(&self, app_key: &str, config_id: &str) -> StoreResult<bool> {
        let app_key = app_key.to_owned();
        let config_id = config_id.to_owned();
        self.write(move |tx| {
            let conn = tx.conn;
            let found: Option<(String, i64)> = conn
                .prepare_cached(
                    "SELECT product, max_hooks FROM webhook_configs WHERE app_key = ?1 AND id = ?2",
                )?
                .query_row(params![app_key, config_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((product, max_hooks)) = found else {
                return Ok(false);
            };
            let product = parse_product(&product)?;
            let now = now_millis();
            conn.prepare_cached("DELETE FROM webhook_configs WHERE id = ?1")?
                .execute(params![config_id])?;
            conn.prepare_cached("DELETE FROM subscriptions WHERE config_id = ?1")?
                .execute(params![config_id])?;
            conn.prepare_cached(
                "UPDATE deliveries SET status = 'CANCELLED', next_attempt_at = NULL, \
                 updated_at = ?2 WHERE config_id = ?1 AND status IN ('PENDING', 'RETRYING')",
            )?
            .execute(params![config_id, now])?;
            // Hooks still queued become CANCELLED deliveries too, so the log shows what this
            // config never received.
            let queued: Vec<(String, i64)> = conn
                .prepare_cached(
                    "SELECT event, hook_seq FROM queue WHERE config_id = ?1 \
                     ORDER BY event, hook_seq",
                )?
                .query_map(params![config_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
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
                insert_delivery(conn, &summary, &seqs)?;
            }
            conn.prepare_cached("DELETE FROM queue WHERE config_id = ?1")?
                .execute(params![config_id])?;
            Ok(true)
        })
        .await
    }

    async fn get_config(
        &self,
        app_key: &str,
        config_id: &str,
    ) -> StoreResult<Option<WebhookConfig>> {
        let app_key = app_key.to_owned();
        let config_id = config_id.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE app_key = ?1 AND id = ?2"
                ))?
                .query_row(params![app_key, config_id], config_row)
                .optional()?;
            row.map(ConfigRow::into_config).transpose()
        })
        .await
    }

    async fn list_configs(
        &self,
        app_key: &str,
        filter: ConfigFilter,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookConfig>> {
        let app_key = app_key.to_owned();
        self.read(move |conn| {
            let size = page_size(&page);
            let after = match &page.cursor {
                Some(c) => cursor::decode(c, 1).ok_or(StoreError::BadCursor)?.remove(0),
                None => String::new(),
            };
            let mut sql = format!(
                "SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE app_key = ?1 AND id > ?2"
            );
            let mut args: Vec<rusqlite::types::Value> = vec![app_key.into(), after.into()];
            if let Some(product) = filter.product {
                args.push(product.as_str().to_owned().into());
                sql += &format!(" AND product = ?{}", args.len());
            }
            if let Some(event) = filter.event {
                args.push(event.as_str().to_owned().into());
                sql += &format!(
                    " AND (',' || events || ',') LIKE ('%,' || ?{} || ',%')",
                    args.len()
                );
            }
            if let Some(enabled) = filter.enabled {
                args.push(i64::from(enabled).into());
                sql += &format!(" AND enabled = ?{}", args.len());
            }
            args.push(i64::from(size + 1).into());
            sql += &format!(" ORDER BY id LIMIT ?{}", args.len());
            let rows = conn
                .prepare(&sql)?
                .query_map(params_from_iter(args), config_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let items = rows
                .into_iter()
                .map(ConfigRow::into_config)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(paginate(items, size, |c| cursor::encode(&[&c.id])))
        })
        .await
    }

    async fn all_configs(&self) -> StoreResult<Vec<WebhookConfig>> {
        self.read(|conn| {
            let rows = conn
                .prepare(&format!("SELECT {CONFIG_COLUMNS} FROM webhook_configs"))?
                .query_map([], config_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(ConfigRow::into_config).collect()
        })
        .await
    }

    async fn set_health(&self, config_id: &str, health: Health) -> StoreResult<()> {
        let config_id = config_id.to_owned();
        self.write(move |tx| write_health(tx.conn, &config_id, &health))
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
        self.write(move |tx| {
            let conn = tx.conn;
            let configs: Vec<String> = conn
                .prepare_cached(
                    "SELECT config_id FROM subscriptions \
                     WHERE app_key = ?1 AND product = ?2 AND event = ?3",
                )?
                .query_map(params![app_key, product.as_str(), event.as_str()], |r| {
                    r.get(0)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let now = now_millis();
            let mut insert_hook = conn.prepare_cached(
                "INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (app_key, hook_id) DO NOTHING",
            )?;
            let mut insert_queue = conn.prepare_cached(
                "INSERT OR IGNORE INTO queue (config_id, event, hook_seq) VALUES (?1, ?2, ?3)",
            )?;
            let mut outcome = IngestOutcome::default();
            for hook in &hooks {
                let inserted = insert_hook.execute(params![
                    app_key,
                    hook.hook_id,
                    product.as_str(),
                    event.as_str(),
                    hook.json,
                    now
                ])?;
                if inserted == 0 {
                    continue; // accepted before: idempotent retry of a producer
                }
                outcome.new_hooks += 1;
                let seq = conn.last_insert_rowid();
                for config_id in &configs {
                    insert_queue.execute(params![config_id, event.as_str(), seq])?;
                    outcome.queued += 1;
                }
            }
            if outcome.queued > 0 {
                for config_id in configs {
                    tx.signals.push(StoreSignal::NewWork { config_id });
                }
            }
            Ok(outcome)
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
        // Answered before the commit, so `drained` is left false: the QueueDrained signal comes
        // in commit order with the NewWork signals instead.
        self.write_uncommitted(move |tx| {
            let mut batches = Vec::new();
            let wanted = max_batches.max(1) as usize;
            while batches.len() < wanted {
                let room = (wanted - batches.len()) as u32;
                let claimed = claim_event(tx.conn, &config_id, &app_key, product, max_hooks, room)?;
                if claimed.is_empty() {
                    break;
                }
                batches.extend(claimed);
            }
            let more: Option<i64> = tx
                .conn
                .prepare_cached("SELECT 1 FROM queue WHERE config_id = ?1 LIMIT 1")?
                .query_row(params![config_id], |r| r.get(0))
                .optional()?;
            if more.is_none() {
                tx.signals.push(StoreSignal::QueueDrained { config_id });
            }
            Ok(Claim {
                batches,
                drained: false,
                contended: false,
            })
        })
        .await
    }

    async fn lease_delivery(&self, hooks_id: &str) -> StoreResult<Lease> {
        // One process owns every delivery: an open delivery is always this node's to send.
        Ok(match self.load_delivery(hooks_id).await? {
            Some(delivery) => Lease::Granted(delivery),
            None => Lease::Unavailable,
        })
    }

    async fn due_deliveries(&self, until: Millis, limit: u32) -> StoreResult<Vec<OpenDelivery>> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT hooks_id, config_id, COALESCE(next_attempt_at, 0) AS due \
                     FROM deliveries WHERE status IN ('PENDING', 'RETRYING') \
                     AND COALESCE(next_attempt_at, 0) <= ?1 ORDER BY due LIMIT ?2",
                )?
                .query_map(params![until, limit], open_delivery)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn membership(&self) -> StoreResult<Membership> {
        Ok(Membership::ALONE)
    }

    async fn find_config(&self, config_id: &str) -> StoreResult<Option<WebhookConfig>> {
        let config_id = config_id.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE id = ?1"
                ))?
                .query_row(params![config_id], config_row)
                .optional()?;
            row.map(ConfigRow::into_config).transpose()
        })
        .await
    }

    async fn load_delivery(&self, hooks_id: &str) -> StoreResult<Option<SendableDelivery>> {
        let hooks_id = hooks_id.to_owned();
        self.read(move |conn| {
            let Some(row) = load_delivery_row(conn, &hooks_id)? else {
                return Ok(None);
            };
            if !parse_status(&row.status)?.is_open() {
                return Ok(None);
            }
            sendable(conn, row).map(Some)
        })
        .await
    }

    fn record_attempt(&self, outcome: AttemptOutcome) {
        let job = record_job(outcome, self.unrecorded.clone());
        if let Err(e) = self.submit(job) {
            tracing::error!(error = %e, "an attempt record could not be queued");
        }
    }

    async fn flush(&self) -> StoreResult<()> {
        self.write(|_| Ok(())).await
    }

    async fn open_deliveries(&self) -> StoreResult<Vec<OpenDelivery>> {
        self.read(|conn| {
            Ok(conn
                .prepare(
                    "SELECT hooks_id, config_id, COALESCE(next_attempt_at, 0) FROM deliveries \
                     WHERE status IN ('PENDING', 'RETRYING')",
                )?
                .query_map([], open_delivery)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn configs_with_queued_hooks(&self) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            // Skip-scan over the primary key: one probe per config, not one per row.
            let mut ids = Vec::new();
            let mut next = conn.prepare(
                "SELECT config_id FROM queue WHERE config_id > ?1 ORDER BY config_id LIMIT 1",
            )?;
            let mut after = String::new();
            while let Some(id) = next
                .query_row(params![after], |r| r.get::<_, String>(0))
                .optional()?
            {
                after = id.clone();
                ids.push(id);
            }
            Ok(ids)
        })
        .await
    }

    async fn list_deliveries(
        &self,
        app_key: &str,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliverySummary>> {
        let app_key = app_key.to_owned();
        self.read(move |conn| {
            let size = page_size(&page);
            let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE app_key = ?1");
            let mut args: Vec<rusqlite::types::Value> = vec![app_key.clone().into()];
            if let Some(c) = &page.cursor {
                let parts = cursor::decode(c, 2).ok_or(StoreError::BadCursor)?;
                let created: i64 = parts[0].parse().map_err(|_| StoreError::BadCursor)?;
                args.push(created.into());
                args.push(parts[1].clone().into());
                sql += &format!(
                    " AND (created_at < ?{a} OR (created_at = ?{a} AND hooks_id < ?{b}))",
                    a = args.len() - 1,
                    b = args.len()
                );
            }
            if let Some(config_id) = &filter.config_id {
                args.push(config_id.clone().into());
                sql += &format!(" AND config_id = ?{}", args.len());
            }
            if let Some(event) = filter.event {
                args.push(event.as_str().to_owned().into());
                sql += &format!(" AND event = ?{}", args.len());
            }
            if let Some(status) = filter.status {
                args.push(status.as_str().to_owned().into());
                sql += &format!(" AND status = ?{}", args.len());
            }
            if let Some(since) = filter.since {
                args.push(since.into());
                sql += &format!(" AND created_at >= ?{}", args.len());
            }
            if let Some(until) = filter.until {
                args.push(until.into());
                sql += &format!(" AND created_at < ?{}", args.len());
            }
            if let Some(hook_id) = &filter.hook_id {
                args.push(hook_id.clone().into());
                sql += &format!(
                    " AND hooks_id IN (SELECT d.hooks_id FROM delivery_hooks d \
                     JOIN hooks h ON h.seq = d.hook_seq WHERE h.app_key = ?1 AND h.hook_id = ?{})",
                    args.len()
                );
            }
            args.push(i64::from(size + 1).into());
            sql += &format!(
                " ORDER BY created_at DESC, hooks_id DESC LIMIT ?{}",
                args.len()
            );
            let rows = conn
                .prepare(&sql)?
                .query_map(params_from_iter(args), delivery_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // The page's hookIds in one query, not one per delivery.
            let mut ids = page_hook_ids(conn, rows.iter().map(|r| r.hooks_id.as_str()))?;
            let mut items = Vec::with_capacity(rows.len());
            for row in rows {
                let hook_ids = ids.remove(&row.hooks_id).unwrap_or_default();
                items.push(row.into_summary(hook_ids)?);
            }
            Ok(paginate(items, size, |d| {
                cursor::encode(&[&d.created_at.to_string(), &d.hooks_id])
            }))
        })
        .await
    }

    async fn get_delivery(
        &self,
        app_key: &str,
        hooks_id: &str,
    ) -> StoreResult<Option<DeliveryDetail>> {
        let app_key = app_key.to_owned();
        let hooks_id = hooks_id.to_owned();
        self.read(move |conn| {
            let Some(row) = load_delivery_row(conn, &hooks_id)? else {
                return Ok(None);
            };
            if row.app_key != app_key {
                return Ok(None);
            }
            let attempts = conn
                .prepare_cached(
                    "SELECT number, started_at, duration_ms, status_code, error_kind, \
                     error_message, response_body FROM attempts WHERE hooks_id = ?1 \
                     ORDER BY number",
                )?
                .query_map(params![hooks_id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .map(
                    |(number, started_at, duration, status, kind, message, body)| {
                        let error_kind = match kind {
                            Some(k) => Some(
                                AttemptErrorKind::parse(&k)
                                    .ok_or_else(|| corrupt("error kind", &k))?,
                            ),
                            None => None,
                        };
                        Ok(AttemptRecord {
                            number: number as u32,
                            result: AttemptResult {
                                started_at,
                                duration_ms: duration.max(0) as u64,
                                status_code: status.map(|s| s as u16),
                                error_kind,
                                error_message: message,
                                response_body: body,
                                retry_after: None,
                            },
                        })
                    },
                )
                .collect::<StoreResult<Vec<_>>>()?;
            let status = row.status.clone();
            let hooks_id_row = row.hooks_id.clone();
            let delivery = sendable(
                conn,
                DeliveryRow {
                    hooks_id: hooks_id_row,
                    app_key: row.app_key.clone(),
                    config_id: row.config_id.clone(),
                    product: row.product.clone(),
                    event: row.event.clone(),
                    status,
                    attempt_count: row.attempt_count,
                    next_attempt_at: row.next_attempt_at,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                },
            )?;
            let hook_ids = delivery.hooks.iter().map(|h| h.hook_id.clone()).collect();
            Ok(Some(DeliveryDetail {
                summary: row.into_summary(hook_ids)?,
                envelope: delivery.envelope(),
                attempts,
            }))
        })
        .await
    }

    async fn redeliver(
        &self,
        app_key: &str,
        hooks_id: &str,
        new_hooks_id: String,
    ) -> StoreResult<Option<DeliverySummary>> {
        let app_key = app_key.to_owned();
        let hooks_id = hooks_id.to_owned();
        self.write(move |tx| {
            let conn = tx.conn;
            let Some(row) = load_delivery_row(conn, &hooks_id)? else {
                return Ok(None);
            };
            if row.app_key != app_key {
                return Ok(None);
            }
            let config_exists: Option<i64> = conn
                .prepare_cached("SELECT 1 FROM webhook_configs WHERE id = ?1")?
                .query_row(params![row.config_id], |r| r.get(0))
                .optional()?;
            if config_exists.is_none() {
                return Err(StoreError::Conflict(format!(
                    "webhookConfigId: the config {} of this delivery was deleted",
                    row.config_id
                )));
            }
            let seqs: Vec<i64> = conn
                .prepare_cached(
                    "SELECT hook_seq FROM delivery_hooks WHERE hooks_id = ?1 ORDER BY position",
                )?
                .query_map(params![hooks_id], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let now = now_millis();
            let summary = DeliverySummary::new(
                new_hooks_id,
                &row.app_key,
                &row.config_id,
                parse_product(&row.product)?,
                parse_event(&row.event)?,
                DeliveryStatus::Pending,
                delivery_hook_ids(conn, &hooks_id)?,
                now,
            );
            insert_delivery(conn, &summary, &seqs)?;
            Ok(Some(summary))
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
        self.write(move |tx| {
            let conn = tx.conn;
            let mut sql = String::from(
                "INSERT OR IGNORE INTO queue (config_id, event, hook_seq) \
                 SELECT d.config_id, d.event, dh.hook_seq FROM deliveries d \
                 JOIN delivery_hooks dh ON dh.hooks_id = d.hooks_id \
                 WHERE d.app_key = ?1 AND d.config_id = ?2",
            );
            let mut args: Vec<rusqlite::types::Value> =
                vec![app_key.into(), config_id.clone().into()];
            if let Some(since) = filter.since {
                args.push(since.into());
                sql += &format!(" AND d.created_at >= ?{}", args.len());
            }
            if let Some(until) = filter.until {
                args.push(until.into());
                sql += &format!(" AND d.created_at < ?{}", args.len());
            }
            if !filter.statuses.is_empty() {
                let mut marks = Vec::new();
                for status in &filter.statuses {
                    args.push(status.as_str().to_owned().into());
                    marks.push(format!("?{}", args.len()));
                }
                sql += &format!(" AND d.status IN ({})", marks.join(", "));
            }
            let queued = conn.prepare(&sql)?.execute(params_from_iter(args))?;
            if queued > 0 {
                tx.signals.push(StoreSignal::NewWork { config_id });
            }
            Ok(queued as u64)
        })
        .await
    }

    async fn purge_deliveries(&self, cutoff: Millis, batch: u32) -> StoreResult<usize> {
        self.write(move |tx| {
            let conn = tx.conn;
            let mut expired: Vec<String> = Vec::new();
            {
                let mut select = conn.prepare_cached(
                    "SELECT hooks_id FROM deliveries WHERE status = ?1 AND updated_at < ?2 \
                     LIMIT ?3",
                )?;
                for status in ["SUCCEEDED", "FAILED", "CANCELLED"] {
                    let room = i64::from(batch) - expired.len() as i64;
                    if room <= 0 {
                        break;
                    }
                    let ids = select
                        .query_map(params![status, cutoff, room], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()?;
                    expired.extend(ids);
                }
            }
            let mut attempts = conn.prepare_cached("DELETE FROM attempts WHERE hooks_id = ?1")?;
            let mut links =
                conn.prepare_cached("DELETE FROM delivery_hooks WHERE hooks_id = ?1")?;
            let mut rows = conn.prepare_cached("DELETE FROM deliveries WHERE hooks_id = ?1")?;
            for hooks_id in &expired {
                attempts.execute(params![hooks_id])?;
                links.execute(params![hooks_id])?;
                rows.execute(params![hooks_id])?;
            }
            Ok(expired.len())
        })
        .await
    }

    async fn purge_hooks(&self, cutoff: Millis, after: i64, batch: u32) -> StoreResult<HookPurge> {
        self.write(move |tx| {
            let conn = tx.conn;
            let candidates: Vec<(i64, i64)> = conn
                .prepare_cached(
                    "SELECT seq, created_at FROM hooks WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?
                .query_map(params![after, batch], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut purge = HookPurge {
                deleted: 0,
                next: None,
            };
            let mut referenced = conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM delivery_hooks WHERE hook_seq = ?1) \
                 OR EXISTS (SELECT 1 FROM queue WHERE hook_seq = ?1)",
            )?;
            let mut delete = conn.prepare_cached("DELETE FROM hooks WHERE seq = ?1")?;
            for (seq, created_at) in &candidates {
                if *created_at >= cutoff {
                    // Hooks are numbered in arrival order: the rest are younger still.
                    return Ok(purge);
                }
                if !referenced.query_row(params![seq], |r| r.get::<_, bool>(0))? {
                    delete.execute(params![seq])?;
                    purge.deleted += 1;
                }
                purge.next = Some(*seq);
            }
            if candidates.len() < batch as usize {
                purge.next = None;
            }
            Ok(purge)
        })
        .await
    }

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

    async fn stats(&self) -> StoreResult<StoreStats> {
        self.read(|conn| {
            // One pass over the queue's primary key; hooks.seq grows with acceptance time, so the
            // smallest queued seq is the oldest queued hook (a point lookup).
            let (queued_hooks, oldest_seq): (i64, Option<i64>) = conn
                .prepare_cached("SELECT COUNT(*), MIN(hook_seq) FROM queue")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let oldest_queued_at = match oldest_seq {
                Some(seq) => conn
                    .prepare_cached("SELECT created_at FROM hooks WHERE seq = ?1")?
                    .query_row(params![seq], |r| r.get(0))
                    .optional()?,
                None => None,
            };
            // The partial index deliveries_open holds exactly these rows.
            let mut open_deliveries = Vec::new();
            for row in conn
                .prepare_cached(
                    "SELECT status, COUNT(*) FROM deliveries \
                     WHERE status IN ('PENDING', 'RETRYING') GROUP BY status",
                )?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            {
                let (status, n) = row?;
                open_deliveries.push((parse_status(&status)?, n as u64));
            }
            let mut configs_by_health = Vec::new();
            let mut paused_configs = 0;
            for row in conn
                .prepare_cached(
                    "SELECT enabled, health_state, COUNT(*) FROM webhook_configs \
                     GROUP BY enabled, health_state",
                )?
                .query_map([], |r| {
                    Ok((
                        r.get::<_, bool>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
            {
                let (enabled, state, n) = row?;
                if !enabled {
                    paused_configs += n as u64;
                    continue;
                }
                let state =
                    HealthState::parse(&state).ok_or_else(|| corrupt("health state", &state))?;
                configs_by_health.push((state, n as u64));
            }
            Ok(StoreStats {
                queued_hooks: queued_hooks as u64,
                oldest_queued_at,
                open_deliveries,
                configs_by_health,
                paused_configs,
            })
        })
        .await
    }

    async fn attempt_buckets(
        &self,
        app_key: &str,
        config_id: &str,
        since: Millis,
        bucket_ms: i64,
        buckets: u32,
    ) -> StoreResult<Vec<AttemptBucket>> {
        let app_key = app_key.to_owned();
        let config_id = config_id.to_owned();
        let bucket_ms = bucket_ms.max(1);
        let until = since.saturating_add(bucket_ms.saturating_mul(i64::from(buckets)));
        self.read(move |conn| {
            // deliveries_by_config (config_id, created_at) bounds the deliveries; each one's
            // attempts are a range of the attempts primary key.
            let rows = conn
                .prepare_cached(
                    "SELECT (a.started_at - ?3) / ?5 AS bucket, COUNT(*), \
                     SUM(a.status_code BETWEEN 200 AND 299 AND a.error_kind IS NULL), \
                     SUM(a.duration_ms), MAX(a.duration_ms) \
                     FROM deliveries d JOIN attempts a ON a.hooks_id = d.hooks_id \
                     WHERE d.config_id = ?2 AND d.app_key = ?1 AND d.created_at >= ?6 \
                     AND d.created_at < ?4 AND a.started_at >= ?3 AND a.started_at < ?4 \
                     GROUP BY bucket ORDER BY bucket",
                )?
                .query_map(
                    params![
                        app_key,
                        config_id,
                        since,
                        until,
                        bucket_ms,
                        since.saturating_sub(super::ATTEMPT_LOOKBACK)
                    ],
                    |r| {
                        Ok(AttemptBucket {
                            index: r.get::<_, i64>(0)?.clamp(0, i64::from(u32::MAX)) as u32,
                            attempts: r.get::<_, i64>(1)?.max(0) as u64,
                            succeeded: r.get::<_, Option<i64>>(2)?.unwrap_or(0).max(0) as u64,
                            total_ms: r.get::<_, Option<i64>>(3)?.unwrap_or(0).max(0) as u64,
                            max_ms: r.get::<_, Option<i64>>(4)?.unwrap_or(0).max(0) as u64,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }
}

fn write_health(conn: &Connection, config_id: &str, health: &Health) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE webhook_configs SET health_state = ?2, consecutive_failures = ?3, \
         last_success_at = ?4, last_failure_at = ?5, failing_since = ?6, disabled_reason = ?7 \
         WHERE id = ?1",
    )?
    .execute(params![
        config_id,
        health.state.as_str(),
        health.consecutive_failures,
        health.last_success_at,
        health.last_failure_at,
        health.failing_since,
        health.disabled_reason
    ])?;
    if health.state == HealthState::Disabled {
        // A config disabled for failing receives nothing new until it is enabled again.
        conn.prepare_cached("DELETE FROM subscriptions WHERE config_id = ?1")?
            .execute(params![config_id])?;
    }
    Ok(())
}

/// Cuts a `size + 1` fetch down to `size` and makes the cursor of the last item kept.
pub(super) fn paginate<T>(mut items: Vec<T>, size: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() > size as usize {
        items.truncate(size as usize);
        items.last().map(&key)
    } else {
        None
    };
    Page { items, next_cursor }
}

// The store's tests are shared with PostgreSQL: see `store/tests.rs`.
