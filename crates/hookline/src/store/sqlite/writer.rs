//! The single writer thread and its group commit, and the checkpointer beside it.
//!
//! The writer takes every job queued since its last commit (ingests, claims, attempt records,
//! config changes) and runs them one after the other in one transaction: one fsync per group, not
//! per request. Jobs run without savepoints (see [`JobStatus`]): a job that refuses decides
//! before it writes anything, and any other error rolls the whole group back; the jobs that ran
//! in it fail, those it did not reach go first into the next group. Callers get their answer
//! only after the commit ([`SqliteStore::write`]), except claims
//! ([`SqliteStore::write_uncommitted`]) that took no hook stored in their own transaction. Jobs
//! find the writer's hot statements prepared (`statements`) and its copy of the subscriptions
//! (`subscriptions`) in [`WriteTx`].
//!
//! Which queued jobs a group takes is the fair share (`store::fair`): every job of no tenant, and
//! the tenants' ingests round-robin within a bound on rows, weighed with the writer's copy of the
//! subscriptions (hooks × configs), so one tenant's huge ingests cannot hold another's small one
//! for long. Then two rules of this writer's own: a group's light ingests ([`LIGHT_ROWS`]) run
//! first and commit in a transaction of their own when heavy work follows, and a transaction
//! stops taking jobs once [`GROUP_TIME_BUDGET`] has passed (the rest goes first into the next).
//! With requests written in parts (`ingest`), a small ingest waits for the transaction running
//! when it came, not for the engine's claims and another tenant's parts in its own group.
//!
//! The checkpointer copies the WAL into the database file on its own thread, so the writer never
//! pays for checkpoints.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_wire::{Event, Product};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::SqliteStore;
use super::attempts::{Unrecorded, resubmit_unrecorded};
use super::connection::poisoned;
use super::ingest::hooks_per_part;
use super::statements::Hot;
use super::subscriptions::{Published, Subscriptions};
use crate::model::{Millis, now_millis};
use crate::store::fair::FairQueue;
use crate::store::{JobStatus, StoreError, StoreResult, StoreSignal, job_status};

/// Most jobs folded into one transaction: bounds a group's latency under a flood.
const MAX_JOBS_PER_COMMIT: usize = 1024;
/// Most jobs moved from the channel into the fair queue at a time (its share is decided among
/// these): a few groups' worth.
const MAX_QUEUED: usize = 4 * MAX_JOBS_PER_COMMIT;
/// Rows (hooks and queue rows) a group takes from tenants' ingests beyond the first part it
/// takes (`store::fair`). A small ingest waits for the group running and then for its own: at
/// about 10 µs a row on this single writer, 2,000 rows keep each under about 20 ms. Commits are
/// cheap here (WAL, no fsync at `synchronous=NORMAL`), so smaller groups cost little.
const ROWS_PER_GROUP: usize = 2_000;
/// The most rows (see [`Job::rows`]) of an ingest committed ahead of its group's other work:
/// one hook to a few configs, or a batch of 100 hooks to one.
const LIGHT_ROWS: usize = 200;
/// Jobs of no tenant (claims, records) after a group's light ingests beyond which the light
/// ingests commit on their own: about what a tenant with 100 configs makes per group, well
/// above what one config's deliveries make.
const HEAVY_JOBS: usize = 64;
/// How long a group runs jobs before it leaves the rest for the next group (it always runs one).
/// A small ingest waits for the group running and then for its own, so this bounds what it
/// waits for even when the engine's claims and records, which are not weighed, are many: a
/// tenant with 100 configs makes about 200 of them per group.
const GROUP_TIME_BUDGET: Duration = Duration::from_millis(15);
/// When the background checkpointer works.
pub(super) struct Checkpoints {
    /// How often it copies the WAL into the database.
    pub(super) every: Duration,
    /// WAL frames (pages of 4 KiB) beyond which it asks the writer to let the WAL start again
    /// from its beginning (see [`WalRestart`]).
    pub(super) restart_wal_frames: i64,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints {
            every: Duration::from_millis(250),
            // 64 MiB.
            restart_wal_frames: 16_384,
        }
    }
}

/// Set by the checkpointer when the WAL has grown past [`Checkpoints::restart_wal_frames`]; the
/// writer then checkpoints the last frames itself between two transactions.
///
/// Why the writer: SQLite writes the WAL from its beginning again only when a write transaction
/// starts with every frame already copied into the database. The checkpointer's copies run beside
/// the writer, which appends frames meanwhile, so under steady load that moment never came: the
/// WAL grew for as long as the load lasted (600 MB after 60,000 one-hook ingests, gigabytes a
/// minute at that rate, until the disk filled), and each new frame extended the file (a page
/// allocated and zeroed by the kernel: a tenth of the writer's time). Between two of the
/// writer's transactions nothing appends, so its checkpoint copies what the checkpointer has not
/// (a fraction of a second's frames) and the next transaction starts the WAL again, unless a
/// reader still reads from it; the WAL then stays a little above this size (100-120 MB on disk at
/// full load: what comes between two checkpoints), its pages reused in place. A reader that keeps
/// one read transaction open keeps the WAL from starting again for as long as it does. (A
/// RESTART or TRUNCATE checkpoint would start the WAL again too, but it makes the writer wait
/// for the whole copy.)
pub(super) type WalRestart = Arc<std::sync::atomic::AtomicBool>;

/// What a write job sees: the open transaction, the writer's prepared statements and its copy of
/// the subscriptions, the signals to emit if the group commits, and the group's clock.
pub(super) struct WriteTx<'a, 'c> {
    pub(super) conn: &'c Connection,
    pub(super) hot: &'a mut Hot<'c>,
    pub(super) subscriptions: &'a mut Subscriptions,
    pub(super) signals: &'a mut Vec<StoreSignal>,
    /// When the group started: one clock read per group, not one per job. Every write of a group
    /// commits at once, so they may share a time.
    pub(super) now: Millis,
    /// The seq of the first hook an ingest stored in this transaction (a new hook's seq is
    /// above every seq present when it is stored, so every hook stored in it has this seq or a
    /// higher one, and every hook committed before has a lower one). A claim that takes such a hook answers
    /// only once it commits: a hook is never sent before the commit that stores it (a
    /// rolled-back ingest's hooks were never acknowledged, and must not reach a receiver).
    pub(super) stored_from: &'a mut Option<i64>,
}

/// Queues `NewWork` for a config unless the latest signal of this group about it already is one:
/// a group of many one-hook ingests for one config wakes the engine once, not once per ingest.
/// A `QueueDrained` in between is kept in order, so the engine ends in the same state.
pub(super) fn signal_new_work(signals: &mut Vec<StoreSignal>, config_id: &str) {
    let latest = signals.iter().rev().find(|s| match s {
        StoreSignal::NewWork { config_id: id } | StoreSignal::QueueDrained { config_id: id } => {
            id == config_id
        }
        _ => false,
    });
    if !matches!(latest, Some(StoreSignal::NewWork { .. })) {
        signals.push(StoreSignal::NewWork {
            config_id: config_id.to_owned(),
        });
    }
}

pub(super) type Finisher = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// A job gets the transaction (or the reason there is none) and returns how it went and what to
/// do once the group's commit is known.
pub(super) type JobFn =
    Box<dyn FnOnce(StoreResult<&mut WriteTx<'_, '_>>) -> (JobStatus, Finisher) + Send>;

/// What the writer is asked to run, and for whom (the fair share of a group).
pub(super) struct Job {
    /// An ingest's tenant; `None` for every other job (claims, records, config writes).
    pub(super) tenant: Option<Tenant>,
    pub(super) run: JobFn,
    /// A transaction left it for the next (its time was up, or an earlier job failed): it runs
    /// first in the next, whatever the time, so no job waits for more than one more group.
    carried: bool,
}

/// Whose ingest a job is and what it writes, to weigh it before it runs.
pub(super) struct Tenant {
    pub(super) app_key: String,
    pub(super) product: Product,
    pub(super) event: Event,
    /// Hooks still to write (a request written in parts: from its current part on).
    pub(super) hooks: usize,
}

impl Job {
    pub(super) fn shared(run: JobFn) -> Job {
        Job {
            tenant: None,
            run,
            carried: false,
        }
    }

    fn tenant(&self) -> Option<&str> {
        self.tenant.as_ref().map(|t| t.app_key.as_str())
    }

    /// A tenant's ingest of at most [`LIGHT_ROWS`] rows (see [`Job::rows`]).
    fn is_light(&self, conn: &Connection, subscriptions: &mut Subscriptions) -> bool {
        self.tenant.is_some() && self.rows(conn, subscriptions) <= LIGHT_ROWS
    }

    /// Rows it writes: each hook of its part (`ingest::hooks_per_part`), and its queue row per
    /// subscribed config. A job of no tenant is not counted against the bound (it is small, and
    /// always in the group).
    fn rows(&self, conn: &Connection, subscriptions: &mut Subscriptions) -> usize {
        let Some(t) = &self.tenant else {
            return 0;
        };
        // Read outside a transaction, between groups: the committed subscriptions, which are
        // what the job will see (only this writer writes them). A failure to read weighs the
        // job as if no config were subscribed; the job itself reports the error.
        let configs = subscriptions
            .configs(conn, &t.app_key, t.product, t.event)
            .map_or(0, |c| c.count());
        t.hooks
            .min(hooks_per_part(configs))
            .saturating_mul(1 + configs)
    }
}

impl SqliteStore {
    /// Runs `f` in the writer's next group commit and returns its result once committed.
    pub(super) async fn write<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteTx<'_, '_>) -> StoreResult<R> + Send + 'static,
    {
        self.write_for(None, f).await
    }

    /// Like [`SqliteStore::write`], for a tenant's ingest (`tenant`): the fair share of a group
    /// weighs it and may leave it to a later group.
    pub(super) async fn write_for<R, F>(&self, tenant: Option<Tenant>, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteTx<'_, '_>) -> StoreResult<R> + Send + 'static,
    {
        let sender = self.sender()?;
        write_via(&sender, tenant, f).await
    }

    /// The writer's queue, for work that must reach its end even if its caller's future is
    /// dropped (a request's later parts): a task of its own holds it.
    pub(super) fn sender(&self) -> StoreResult<std::sync::mpsc::Sender<Job>> {
        let writer = self.writer.lock().map_err(poisoned)?;
        writer
            .clone()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))
    }

    /// Runs `f` in the writer's next group and answers as soon as it has run, before the group
    /// commits. For work whose loss in a failed commit is harmless: the engine's claims (if the
    /// commit fails, the hooks stay queued and are claimed again: at-least-once). Except when
    /// `f` says it read what an earlier job of its transaction wrote for a caller that waits for
    /// the commit (a claim that took hooks stored by an ingest: [`WriteTx::stored_from`]): then
    /// it answers at the commit.
    pub(super) async fn write_uncommitted<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteTx<'_, '_>) -> StoreResult<(R, bool)> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<R>>();
        let job: JobFn = Box::new(move |ctx| {
            let (result, answer_at_commit) = match ctx.and_then(f) {
                Ok((value, at_commit)) => (Ok(value), at_commit),
                Err(e) => (Err(e), false),
            };
            let status = job_status(&result);
            if !answer_at_commit {
                let _ = tx.send(result);
                let finish: Finisher = Box::new(|commit| {
                    if let Err(e) = commit {
                        tracing::warn!(error = %e, "a claim's commit failed; its hooks stay queued");
                    }
                });
                return (status, finish);
            }
            // It took what its own transaction stored: answered at the commit, and if that
            // fails the claim never happened (its hooks were never stored either).
            let finish: Finisher = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (status, finish)
        });
        self.submit(Job::shared(job))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    pub(super) fn submit(&self, job: Job) -> StoreResult<()> {
        let writer = self.writer.lock().map_err(poisoned)?;
        let sender = writer
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))?;
        sender
            .send(job)
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))
    }

    /// Waits until every write queued before this call is committed.
    pub(super) async fn flush(&self) -> StoreResult<()> {
        self.write(|_| Ok(())).await
    }
}

/// [`SqliteStore::write_for`] through `sender`: runs `f` in one of the writer's next groups and
/// returns its result once committed.
pub(super) async fn write_via<R, F>(
    sender: &std::sync::mpsc::Sender<Job>,
    tenant: Option<Tenant>,
    f: F,
) -> StoreResult<R>
where
    R: Send + 'static,
    F: FnOnce(&mut WriteTx<'_, '_>) -> StoreResult<R> + Send + 'static,
{
    let (tx, rx) = oneshot::channel::<StoreResult<R>>();
    let run: JobFn = Box::new(move |ctx| match ctx {
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
    sender
        .send(Job {
            tenant,
            run,
            carried: false,
        })
        .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
    rx.await
        .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
}

pub(super) fn writer_loop(
    conn: Connection,
    jobs: std::sync::mpsc::Receiver<Job>,
    signals_out: mpsc::UnboundedSender<StoreSignal>,
    published: Published,
    wal_restart: WalRestart,
) {
    let mut hot = match Hot::prepare(&conn) {
        Ok(hot) => hot,
        Err(e) => {
            // Cannot happen with a migrated schema; if it does, every write fails loudly.
            let e = StoreError::from(e);
            tracing::error!(error = %e, "the writer cannot prepare its statements");
            while let Ok(job) = jobs.recv() {
                let (_, finish) = (job.run)(Err(e.clone()));
                finish(Err(e.clone()));
            }
            return;
        }
    };
    let mut subscriptions = Subscriptions::new(published);
    let mut signals: Vec<StoreSignal> = Vec::new();
    let mut finishers: Vec<Finisher> = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    // Jobs waiting for a group, and those that did not run because an earlier job of their group
    // failed or its time was up (put back first).
    let mut queue: FairQueue<Job> = FairQueue::default();
    loop {
        if wal_restart.swap(false, std::sync::atomic::Ordering::Relaxed) {
            match passive_checkpoint(&conn) {
                // The checkpointer was copying: ask again after the next transaction.
                Ok(Checkpointed { busy: true, .. }) => {
                    wal_restart.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the writer's checkpoint failed"),
            }
        }
        if queue.is_empty() {
            match jobs.recv() {
                Ok(first) => queue.push(first, Job::tenant),
                Err(_) => break,
            }
        }
        while queue.len() < MAX_QUEUED {
            match jobs.try_recv() {
                Ok(job) => queue.push(job, Job::tenant),
                Err(_) => break,
            }
        }
        let batch = queue.take_group(MAX_JOBS_PER_COMMIT, ROWS_PER_GROUP, |job| {
            job.rows(&conn, &mut subscriptions)
        });
        // Small ingests first, committed on their own when heavy work follows (a large ingest's
        // part, or many of the engine's jobs): they wait for the transaction running when they
        // came, never for the claims and large ingests of their own group. A group of small jobs
        // and a few claims and records stays one commit.
        let (mut light, mut rest): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|job| job.is_light(&conn, &mut subscriptions));
        let heavy_follows = rest.len() > HEAVY_JOBS || rest.iter().any(|job| job.tenant.is_some());
        if !heavy_follows {
            light.append(&mut rest);
        }
        let mut carried = Vec::new();
        for mut part in [light, rest] {
            if part.is_empty() {
                continue;
            }
            // What an earlier transaction left goes first (a stable sort: each keeps its order).
            part.sort_by_key(|job| !job.carried);
            let mut group = Group {
                conn: &conn,
                hot: &mut hot,
                subscriptions: &mut subscriptions,
                signals: &mut signals,
                finishers: &mut finishers,
                signals_out: &signals_out,
            };
            carried.extend(group.commit(part));
        }
        queue.put_back(carried, Job::tenant);
    }
    drop(hot);
    // Every sender is gone: checkpoint so the WAL does not linger.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

/// What one transaction of the writer uses.
struct Group<'a, 'c> {
    conn: &'c Connection,
    hot: &'a mut Hot<'c>,
    subscriptions: &'a mut Subscriptions,
    signals: &'a mut Vec<StoreSignal>,
    finishers: &'a mut Vec<Finisher>,
    signals_out: &'a mpsc::UnboundedSender<StoreSignal>,
}

impl Group<'_, '_> {
    /// Runs `jobs` in one transaction, in their order, until one fails or the group's time
    /// ([`GROUP_TIME_BUDGET`]) is up (the first always runs), then commits (or rolls back),
    /// emits the signals and answers the callers. Returns the jobs it did not reach.
    fn commit(&mut self, jobs: Vec<Job>) -> Vec<Job> {
        if let Err(e) = self.hot.begin.execute([]) {
            let e = StoreError::from(e);
            for job in jobs {
                let (_, finish) = (job.run)(Err(e.clone()));
                finish(Err(e.clone()));
            }
            return Vec::new();
        }
        let now = now_millis();
        let started = Instant::now();
        let mut failure = None;
        let mut stored_from = None;
        let mut pending = jobs.into_iter().peekable();
        loop {
            // The rest of a group over its time goes first into the next one; what was carried
            // once always runs.
            let carried = pending.peek().is_some_and(|job| job.carried);
            if !carried && !self.finishers.is_empty() && started.elapsed() >= GROUP_TIME_BUDGET {
                break;
            }
            let Some(job) = pending.next() else {
                break;
            };
            let mut ctx = WriteTx {
                conn: self.conn,
                hot: &mut *self.hot,
                subscriptions: &mut *self.subscriptions,
                signals: &mut *self.signals,
                now,
                stored_from: &mut stored_from,
            };
            let (status, finish) = (job.run)(Ok(&mut ctx));
            self.finishers.push(finish);
            if let JobStatus::Failed(e) = status {
                failure = Some(e);
                break;
            }
        }
        let carried: Vec<Job> = pending
            .map(|mut job| {
                job.carried = true;
                job
            })
            .collect();
        let outcome = match failure {
            None => self
                .hot
                .commit
                .execute([])
                .map(drop)
                .map_err(StoreError::from),
            Some(e) => Err(e),
        };
        if let Err(e) = &outcome {
            tracing::error!(error = %e, jobs = self.finishers.len(), "write group rolled back");
            let _ = self.conn.execute_batch("ROLLBACK");
            self.signals.clear();
            // The copy may hold rows read inside the group that the rollback took back.
            self.subscriptions.clear();
        }
        // Signals first, then answers: whoever learns that its write committed can rely on the
        // engine having been told of the work it created.
        for signal in self.signals.drain(..) {
            let _ = self.signals_out.send(signal);
        }
        for finish in self.finishers.drain(..) {
            finish(outcome.clone());
        }
        carried
    }
}

/// What `PRAGMA wal_checkpoint(PASSIVE)` answered.
struct Checkpointed {
    /// Another connection was checkpointing: this one copied nothing.
    busy: bool,
    /// Frames in the WAL.
    frames: i64,
}

/// Copies into the database what the WAL holds beyond what a reader still reads, without waiting
/// for anyone (PASSIVE never calls the busy handler).
fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<Checkpointed> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Checkpointed {
            busy: r.get::<_, i64>(0)? != 0,
            frames: r.get(1)?,
        })
    })
}

/// Copies the WAL into the database file in the background, so the writer pays for checkpoints
/// (and their fsync) on its own thread only for the last frames before the WAL starts again
/// ([`WalRestart`]). Each round also resubmits the attempt records whose commit failed.
pub(super) fn checkpoint_loop(
    path: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
    jobs: std::sync::mpsc::Sender<Job>,
    unrecorded: Unrecorded,
    wal_restart: WalRestart,
    checkpoints: Checkpoints,
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
        std::thread::park_timeout(checkpoints.every);
        match passive_checkpoint(&conn) {
            Ok(done) if done.frames >= checkpoints.restart_wal_frames => {
                // Once more before asking the writer: this copies what came while the first
                // copy ran, so the writer is left only what comes after (a copy of a round's
                // frames, fsyncs included, took tens of ms at full load).
                if let Err(e) = passive_checkpoint(&conn) {
                    tracing::warn!(error = %e, "background checkpoint failed");
                }
                wal_restart.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "background checkpoint failed"),
        }
        resubmit_unrecorded(&jobs, &unrecorded);
    }
}
