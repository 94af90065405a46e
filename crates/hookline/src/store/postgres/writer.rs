//! The writer tasks and their group commit.
//!
//! A writer is a task on its own connection that takes every job queued for it since its last
//! commit and runs them in a single transaction, so one commit (one WAL flush) serves many
//! callers. Every statement is prepared once per connection (`connection`).
//!
//! **Two lanes.** Jobs go to one of two inboxes ([`Lane`]): ingests to the ingest lane, with
//! writers of its own (two, see below); everything else (attempt records, leases, config and
//! API writes, maintenance) to the jobs lane, served by another. Why: a producer's ingest is
//! answered after its group's commit, and a group waits for the one before it on its connection.
//! With one writer for everything, an ingest waited behind groups of attempt records (a flooding
//! tenant's hundred configs gave groups of 20-60 records taking 20-40 ms on a busy server) and
//! then for its own group's records: a quiet tenant's one-hook ingest had a p99 of 110-130 ms.
//! Ingest groups now hold ingests only. Why the lanes need no order between them: every job of
//! the jobs lane that depends on an ingest comes from a caller that was answered for that
//! ingest (after its commit), and no ingest depends on a job queued beside it. In the database,
//! an ingest group takes `FOR KEY SHARE` of its configs and inserts hooks and queue rows; the
//! jobs lane never waits on those rows (its config writes wait for the ingests' share locks,
//! which wait for nothing of the jobs lane). `Store::flush` waits for the jobs lane only: an
//! ingest is always awaited by its caller.
//!
//! **Two ingest writers, side by side** ([`IngestLane`]). A writer's connection is idle while its
//! group's `COMMIT` waits for the WAL flush, and the next group waited for it: at 100 hooks per
//! request the one ingest connection ran about two thirds of the time. The ingest lane has
//! [`INGEST_WRITERS`] writers on one inbox: a writer holds the inbox only to take its group, so
//! the other writer's next group runs while the first's statements run or its commit is
//! flushed (on two database processes: with eight 100-hook producers, a fifth of the machine was
//! idle while the groups' statements ran one after the other). Only a group worth it starts
//! beside another in flight ([`starts_beside_another_group`]): a small one waits for that group
//! to end and takes what came meanwhile, as with one writer. Split into halves, the
//! one-hook-per-request flood's groups cost the database more in fixed costs than the overlap
//! saved (9 % fewer hooks a second, 8 % with two nodes); groups of 100-hook requests gain from it
//! (BENCHMARKS.md). Neither statement order nor commit order between the two writers is queue
//! order: no ingest depends on another one queued beside it (a caller is answered after its own
//! commit, and two requests in flight together have no order of acceptance). A hookId two groups
//! both carry waits, in the database, for the first's statements and commit (the later is the
//! duplicate; a wait longer than `lock_timeout` fails the later group). Two statements never
//! wait for each other both ways: each inserts its hooks in the order of their keys (app key,
//! hookId), so the one that holds the first key the two share waits for nothing the other holds
//! (`ingest`, `INGEST`). When hooks were inserted in request order, two groups carrying two
//! same hookIds in opposite orders (two requests folded one way, their retries the other way;
//! two nodes' groups; two wide ingests) each held a hook the other wanted next, and PostgreSQL
//! failed one after `deadlock_timeout`. For that, a group is one statement: the lane takes no
//! more hooks' bytes into a group than a folded statement carries (`IngestJob::group_weight`);
//! folded into two, a group would take its keys in order within each only.
//!
//! What a group costs is round trips and executions, not statements, so a group is sent in as
//! few of them as its jobs allow:
//!
//! - **Ingests are folded.** The ingests of a group (the ingest lane's groups hold nothing
//!   else) become one statement (`ingest`; the lane takes no more into a group than one
//!   carries): all their hooks, queue rows and notifications at once, one execution on the
//!   server instead of one per request. A hook of
//!   a later request that repeats one of an earlier request is the later's duplicate, as if they
//!   had run one after the other (the fold sends it once, for the earlier: `FoldParams`).
//! - **Attempt records are collected**, as before, and written in two statements at the end of
//!   the group (or before the next job that reads delivery state: a lease).
//! - **The rest is pipelined.** `BEGIN`, the folded ingests, the records, the health writes and
//!   `COMMIT` are sent together without waiting for each other's answers ([`pipeline_then`]);
//!   the server runs them in the order sent. A group of ingests, or of records, is one round
//!   trip (and its WAL flush, for ingests), not one per job.
//! - **Any other job runs alone** (`Job::Run`): what was sent before it is answered first, then
//!   it runs with the connection to itself (it may read and decide), and what comes after it is
//!   sent only when it is done.
//! - **Config writes get a transaction of their own** ([`Grouping::Alone`]: `update_config`,
//!   `delete_config`, `set_health`): the group ends before one, and the next holds it and
//!   nothing else. Beside other jobs, a config write would hold its config row while the group
//!   goes on to wait for another node's rows (a delivery it records, or, when ingests still
//!   shared the group, another node's uncommitted insert of the same hookId); that node's group,
//!   in turn, waits for the same config row (its ingest's `FOR KEY SHARE`, or its health write
//!   at the end of the group): a deadlock, which PostgreSQL breaks after `deadlock_timeout` by
//!   failing one whole group. Alone, a config write holds no hook and no delivery when it waits
//!   for the config row, so nobody waiting for it is something it waits for.
//!
//! Which queued jobs a group takes is the fair share (`store::fair`): every job of no tenant, and
//! the tenants' ingests round-robin within a bound on rows, each weighed as its hooks times the
//! fan-out its (app key, event) had in the last answer ([`FanOut`]), so one tenant's huge ingests
//! cannot hold another's small one for long. An ingest estimated wider than
//! `ingest::ROWS_IN_THE_WRITER` never comes here: it runs beside the writer. "Queue order" below
//! is the order within a group.
//!
//! Why the rules of a group still hold:
//! - **Commit order is queue order for dependent jobs** (within a lane; see "Two lanes" for
//!   between them). The server runs requests in the order they were sent, and they are sent in
//!   queue order: a fold holds only consecutive ingests, a `Run` job starts after everything
//!   before it has answered and nothing after it is sent before it ends. A lease (a `Run` job)
//!   writes the records queued before it first. The jobs lane's groups commit one after the
//!   other.
//! - **A real error fails the group.** After an error the server refuses every later statement
//!   of the transaction, and the `COMMIT` behind them rolls it back (answered without an error:
//!   the group's result is the statement's error, never that answer). Every job that was sent
//!   fails (a fold's ingests all answer 503: nothing of theirs is stored); `Run` jobs not reached
//!   go first into the next group. So that a statement's answer decides nothing the server did
//!   not, a pipelined step fails only when the server refused it: the fold's answer, if it cannot
//!   be read, is logged and the engine told to look at every queue, and the requests still
//!   succeed (their hooks are committed). A failure found before the group's last statements
//!   are sent (a `Run` job failed, a lock is poisoned) sends no `COMMIT`: the group is rolled
//!   back.
//! - **A refusing job decides before writing** (see [`JobStatus`]): only `Run` jobs refuse, and
//!   they read their answer before they write.
//!
//! **A caller that stopped waiting.** Every call of the store is bounded (`answered`): a caller
//! whose database stopped answering is answered `Unavailable` (503) and stops waiting. Its job
//! is then not started if it has not been (a write its caller was told failed must not be
//! applied behind its back: a retried replay would be applied twice); one already sent runs to
//! its end; the one exception is a record of what already happened outside the database (a test
//! send that went out: [`PostgresStore::write_regardless`]). A lane that has had no answer for
//! the bound counts as stuck ([`LaneProgress`]): jobs whose callers wait (and claims, whose
//! deliveries need the jobs lane) are refused at once rather than queued behind it.
//!
//! **Durability per group.** A group holding an ingest or an API write (config, app key,
//! redeliver, replay) commits with the server's `synchronous_commit` (on): its callers are
//! answered after the WAL flush. A group holding nothing but attempt records, leases and their
//! renewals, retention and the like runs `SET LOCAL synchronous_commit = off`: its commit does
//! not wait for the flush. Losing such a commit in a database crash is harmless (an unrecorded
//! attempt counts as in flight and is sent again; a lost lease or renewal is a lease not held),
//! and the WAL is written in order, so a later durable commit makes every earlier one durable
//! too. See ARCHITECTURE.md, "Several nodes (PostgreSQL)".
//!
//! [`JobStatus`]: crate::store::JobStatus

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{Notify, mpsc, oneshot};

use super::PostgresStore;
use super::attempts::{RecordJob, record_steps};
use super::configs::health_steps;
use super::connection::{
    Conn, Step, pg_err, pipeline, pipeline_then, poisoned, pool_err, prepared, query_one,
};
use super::ingest::{FanOut, Fold, INGEST, IngestJob};
use crate::model::{AttemptOutcome, Health};
use crate::store::fair::{FairQueue, ROWS_PER_GROUP};
use crate::store::{JobStatus, StoreError, StoreResult, StoreSignal, job_status};

/// Most jobs folded into one transaction: bounds a group's latency under a flood.
const MAX_JOBS_PER_COMMIT: usize = 1024;
/// Most jobs moved from the channel into the fair queue at a time (its share is decided among
/// these): a few groups' worth.
const MAX_QUEUED: usize = 4 * MAX_JOBS_PER_COMMIT;

/// How long the jobs writer waits for more attempt records while only records nobody waits for
/// are queued ([`Inbox::linger_for_records`]), and how many it waits for at most.
///
/// Why wait at all: each group is a transaction of its own, and its records' two statements
/// cost about as much for 10 records as for 60. Taken as they come, at one hook per POST a node
/// wrote a records group per 20 attempts, and two nodes, each with half the attempts, twice as
/// many groups for the same attempts (BENCHMARKS.md, "PostgreSQL: attempt records gathered for
/// 3 ms"). Nothing waits for these records: the dispatcher queues each, schedules its retry and
/// gives its slot back in the same step, without waiting for it.
const RECORD_LINGER: Duration = Duration::from_millis(3);
const RECORD_LINGER_UNTIL: usize = 64;

/// Writers of the ingest lane (see the module doc, "Two ingest writers").
pub(super) const INGEST_WRITERS: usize = 2;

/// Rows (hooks and queue rows, as `FanOut` estimates them) a group needs to start while another
/// ingest writer's group is in flight. A statement costs the database a fixed 0.2-0.5 ms besides
/// its ~10 µs a hook (BENCHMARKS.md, "Two nodes"): from 200 rows (two requests of 100 hooks to one
/// config) the fixed part is a small share, below it the group waits for the other and grows.
const ROWS_BESIDE_A_GROUP: usize = 200;

/// Whether an ingest writer takes its group now, with `groups_in_flight` other groups running
/// their statements or waiting for their commits and `queued_rows` waiting: at once when none is
/// (nothing to overlap), beside one only when the group is large enough to pay for its own
/// statement.
fn starts_beside_another_group(groups_in_flight: usize, queued_rows: usize) -> bool {
    groups_in_flight == 0 || queued_rows >= ROWS_BESIDE_A_GROUP
}

pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(super) type Finisher = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// Whether a write's commit must be on disk before its caller is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// It acknowledges something to a client (an API write): the group commits durably.
    Durable,
    /// Losing it in a database crash is harmless (leases, renewals, retention, flushes): on its
    /// own, its group commits without waiting for the WAL flush.
    Relaxed,
}

/// What a job ran: its status, the signals to emit if the group commits, and what to do once
/// the commit is known.
pub(super) struct JobRun {
    pub(super) status: JobStatus,
    pub(super) signals: Vec<StoreSignal>,
    pub(super) finish: Finisher,
}

/// A job that runs alone, with the writer's connection inside the group's open transaction.
pub(super) type RunJob = Box<dyn FnOnce(Group) -> BoxFuture<JobRun> + Send>;

/// What the writer is asked to do.
pub(super) enum Job {
    /// An ingest: folded with the ingests queued next to it into one statement.
    Ingest(IngestJob),
    /// An attempt record: written with the group's others.
    Record(Box<RecordJob>),
    /// Anything else: runs alone, in queue order.
    Run {
        durability: Durability,
        grouping: Grouping,
        run: RunJob,
    },
}

/// What becomes of a job whose caller stopped waiting before it started (see the module doc,
/// "A caller that stopped waiting").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abandoned {
    /// Not started: its caller was told it failed.
    Skip,
    /// Made anyway: it records what already happened.
    Run,
}

/// Whether a `Run` job may share its group's transaction with the group's other jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grouping {
    /// In the group, in queue order.
    Shared,
    /// In a transaction of its own: config writes (see the module doc: with ingests beside them
    /// they can deadlock with another node's group).
    Alone,
}

impl Job {
    /// Whose ingest it is (the fair share of a group); `None` for every other job.
    fn tenant(&self) -> Option<&str> {
        match self {
            Job::Ingest(job) => Some(job.app_key()),
            _ => None,
        }
    }

    fn durable(&self) -> bool {
        match self {
            Job::Ingest(_) => true,
            Job::Record(_) => false,
            Job::Run { durability, .. } => *durability == Durability::Durable,
        }
    }
}

/// What one pipelined step of a group did: its result (an error fails the group), the signals
/// to emit if the group commits, and the answers to give once the commit is known.
pub(super) struct StepRun {
    pub(super) result: StoreResult<()>,
    pub(super) signals: Vec<StoreSignal>,
    pub(super) finishers: Vec<Finisher>,
}

impl StepRun {
    /// A step that answers nobody (a statement of the group's own).
    pub(super) fn of(result: StoreResult<()>) -> StepRun {
        StepRun {
            result,
            signals: Vec::new(),
            finishers: Vec::new(),
        }
    }
}

/// A config's health as an attempt judged it, with that attempt's error (`lastError` of the
/// operational event of a change of state).
pub(super) type JudgedHealth = (Health, Option<String>);

/// What the jobs of one write group share.
#[derive(Clone)]
pub(super) struct Group {
    pub(super) client: Arc<Conn>,
    /// This node (the lease owner its records may free).
    pub(super) node: Arc<str>,
    /// Attempt records of the group not written yet: they are written together, in two
    /// statements, before the next job that reads delivery state (a lease) and at the end of the
    /// group. One round trip per record would bound the writer at a few thousand a second.
    pub(super) records: Arc<Mutex<Vec<AttemptOutcome>>>,
    /// Config health from the group's attempt records, the last per config, written at the end
    /// of the group in config id order. Two nodes' groups each update several config rows; in
    /// the order their attempts happened to come, they deadlock (one group rolls back). In one
    /// fixed order, at the end, they only ever wait.
    /// Each with the last error of the attempt that judged it, for the operational event of a
    /// change of state.
    pub(super) health: Arc<Mutex<std::collections::BTreeMap<String, JudgedHealth>>>,
    /// Signals of records written early (`flush_records`, inside a `Run` job), emitted with the
    /// group's.
    pub(super) flushed_signals: Arc<Mutex<Vec<StoreSignal>>>,
}

/// Which of the node's lanes a job goes to (see the module doc, "Two lanes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// Everything but ingests: API writes, attempt records, leases, maintenance.
    Jobs,
    /// Ingests (the ones not wide enough to run beside the writers), with writers of their
    /// own (see the module doc, "Two lanes" and "Two ingest writers").
    Ingests,
}

impl Lane {
    fn of(job: &Job) -> Lane {
        match job {
            Job::Ingest(_) => Lane::Ingests,
            Job::Record(_) | Job::Run { .. } => Lane::Jobs,
        }
    }
}

/// The way in to the node's two lanes.
pub(super) struct Writers {
    pub(super) jobs: mpsc::UnboundedSender<Job>,
    pub(super) ingests: mpsc::UnboundedSender<Job>,
}

impl PostgresStore {
    /// Refuses a job whose caller would wait behind a stuck lane (see [`LaneProgress`]).
    pub(super) fn refuse_if_stuck(&self, lane: Lane) -> StoreResult<()> {
        let progress = match lane {
            Lane::Jobs => &self.jobs_progress,
            Lane::Ingests => &self.ingests_progress,
        };
        if progress.stuck(self.answer_within) {
            crate::metrics::store_not_answering();
            return Err(StoreError::Unavailable(format!(
                "postgres: the writer has had no answer for {} ms: the database is not answering",
                self.answer_within.as_millis()
            )));
        }
        Ok(())
    }

    pub(super) fn submit(&self, job: Job) -> StoreResult<()> {
        let writers = self.writers.lock().map_err(poisoned)?;
        let writers = writers
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))?;
        let sender = match Lane::of(&job) {
            Lane::Jobs => &writers.jobs,
            Lane::Ingests => &writers.ingests,
        };
        sender
            .send(job)
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))
    }

    /// Runs `f` alone in the writer's next group commit and returns its result once committed.
    pub(super) async fn write<R, F, Fut>(&self, durability: Durability, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(Arc<Conn>) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<(R, Vec<StoreSignal>)>> + Send + 'static,
    {
        self.write_in_group(durability, move |group| f(group.client))
            .await
    }

    /// Like [`PostgresStore::write`], for jobs that need the group (its pending records).
    pub(super) async fn write_in_group<R, F, Fut>(
        &self,
        durability: Durability,
        f: F,
    ) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(Group) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<(R, Vec<StoreSignal>)>> + Send + 'static,
    {
        self.run_job(durability, Grouping::Shared, Abandoned::Skip, f)
            .await
    }

    /// Runs `f` in a transaction of its own (a config write, see [`Grouping::Alone`]), durably,
    /// and returns its result once committed.
    pub(super) async fn write_alone<R, F, Fut>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(Arc<Conn>) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<(R, Vec<StoreSignal>)>> + Send + 'static,
    {
        self.run_job(
            Durability::Durable,
            Grouping::Alone,
            Abandoned::Skip,
            move |group| f(group.client),
        )
        .await
    }

    /// Like [`PostgresStore::write`], for a write that must be made even when its caller stops
    /// waiting: the record of something already done outside the database (a test send that
    /// went out). In a transaction of its own, and never refused for a stuck lane: it waits for
    /// its turn.
    pub(super) async fn write_regardless<R, F, Fut>(
        &self,
        durability: Durability,
        f: F,
    ) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(Arc<Conn>) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<(R, Vec<StoreSignal>)>> + Send + 'static,
    {
        // Alone: another job failing the group must not roll it back with its own.
        self.run_job(durability, Grouping::Alone, Abandoned::Run, move |group| {
            f(group.client)
        })
        .await
    }

    async fn run_job<R, F, Fut>(
        &self,
        durability: Durability,
        grouping: Grouping,
        abandoned: Abandoned,
        f: F,
    ) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(Group) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<(R, Vec<StoreSignal>)>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<R>>();
        let run: RunJob = Box::new(move |group: Group| {
            Box::pin(async move {
                if abandoned == Abandoned::Skip && tx.is_closed() {
                    // Its caller stopped waiting before it started (the database did not answer
                    // in time, `answered`; or the request went away): told it failed, the write
                    // must not be applied behind its back (a retried replay would be applied
                    // twice).
                    return JobRun {
                        status: JobStatus::Done,
                        signals: Vec::new(),
                        finish: Box::new(|_| {}),
                    };
                }
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
        if abandoned == Abandoned::Skip {
            self.refuse_if_stuck(Lane::Jobs)?;
        }
        self.submit(Job::Run {
            durability,
            grouping,
            run,
        })?;
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// Waits until every write queued before this call is committed. Only the jobs' writer:
    /// an ingest is always awaited by its caller (`Store::flush` leaves those out).
    pub(super) async fn flush(&self) -> StoreResult<()> {
        self.write(Durability::Relaxed, |_| async { Ok(((), Vec::new())) })
            .await
    }
}

/// A writer job that runs `f` alone and reports nothing back (background maintenance): a failure
/// is logged as `what` failing.
pub(super) fn quiet_job<F, Fut>(durability: Durability, what: &'static str, f: F) -> Job
where
    F: FnOnce(Arc<Conn>) -> Fut + Send + 'static,
    Fut: Future<Output = StoreResult<()>> + Send + 'static,
{
    let run: RunJob = Box::new(move |group: Group| {
        Box::pin(async move {
            let result = f(group.client).await;
            JobRun {
                status: job_status(&result),
                signals: Vec::new(),
                finish: Box::new(move |commit| {
                    if let Err(e) = commit.and(result) {
                        tracing::warn!(error = %e, "{what} failed");
                    }
                }),
            }
        })
    });
    Job::Run {
        durability,
        grouping: Grouping::Shared,
        run,
    }
}

/// What a group leaves to do after its commit (or rollback).
#[derive(Default)]
struct Outcome {
    finishers: Vec<Finisher>,
    signals: Vec<StoreSignal>,
    failure: Option<StoreError>,
}

impl Outcome {
    /// Takes in what pipelined steps did; the first error (in sending order) is the group's.
    fn settle(&mut self, runs: Vec<StepRun>) {
        for run in runs {
            self.finishers.extend(run.finishers);
            match run.result {
                Ok(()) => self.signals.extend(run.signals),
                Err(e) => {
                    if self.failure.is_none() {
                        self.failure = Some(e);
                    }
                }
            }
        }
    }
}

/// `BEGIN`, relaxed when nothing in the group acknowledges a client's write.
fn begin(c: &Arc<Conn>, durable: bool) -> Step<'static, StepRun> {
    let c = c.clone();
    Box::pin(async move {
        let sql = if durable {
            "BEGIN"
        } else {
            "BEGIN; SET LOCAL synchronous_commit = off"
        };
        StepRun::of(c.batch_execute(sql).await.map_err(pg_err))
    })
}

/// `COMMIT`, sent behind the group's last statements. If one of them failed, the server has
/// aborted the transaction and this `COMMIT` rolls it back (answered without an error): the
/// group's result is then the failure, never this answer.
fn commit(c: &Arc<Conn>) -> Step<'static, StoreResult<()>> {
    let c = c.clone();
    Box::pin(async move { c.batch_execute("COMMIT").await.map_err(pg_err) })
}

/// Runs the jobs of one group up to its commit: returns the `COMMIT` on its way, or `None` when
/// the group failed before it (it is rolled back). Jobs it did not reach (after a failure) go to
/// `carried`.
async fn run_group(
    c: &Arc<Conn>,
    node: &Arc<str>,
    fan_out: &FanOut,
    progress: &LaneProgress,
    batch: &mut Vec<Job>,
    carried: &mut Vec<Job>,
    out: &mut Outcome,
) -> Option<Step<'static, StoreResult<()>>> {
    let durable = batch.iter().any(Job::durable);
    // Prepared before the pipeline, so each step sends its statement on its first poll.
    let ingest = if batch.iter().any(|j| matches!(j, Job::Ingest(_))) {
        match prepared(c, INGEST).await {
            Ok(statement) => Some(statement),
            Err(e) => {
                // Nothing ran. An ingest's caller hears why (the statement is prepared on each
                // ingest writer's connection at its first group: behind a lock on a table it
                // names, that fails with the lock timeout); the other jobs are dropped, their
                // callers answered `Unavailable` (attempt records go back to the unrecorded ones).
                for job in batch.drain(..) {
                    if let Job::Ingest(ingest) = job {
                        ingest.fail(e.clone());
                    }
                }
                out.failure = Some(e);
                return None;
            }
        }
    } else {
        None
    };
    let group = Group {
        client: c.clone(),
        node: node.clone(),
        records: Arc::default(),
        health: Arc::default(),
        flushed_signals: Arc::default(),
    };
    let mut steps: Vec<Step<'static, StepRun>> = vec![begin(c, durable)];
    let mut fold = Fold::default();
    let mut jobs = batch.drain(..);
    let mut first = true;
    for job in jobs.by_ref() {
        let alone = matches!(
            job,
            Job::Run {
                grouping: Grouping::Alone,
                ..
            }
        );
        if alone && !first {
            // The group ends before it; it opens the next one (see `Grouping::Alone`).
            carried.push(job);
            break;
        }
        first = false;
        match job {
            // Its caller stopped waiting (see `run_job`): not written.
            Job::Ingest(ingest_job) if ingest_job.abandoned() => {}
            Job::Ingest(ingest_job) => {
                if !fold.fits(&ingest_job)
                    && let Some(statement) = &ingest
                {
                    steps.push(std::mem::take(&mut fold).step(
                        c.clone(),
                        statement.clone(),
                        fan_out.clone(),
                    ));
                }
                fold.push(ingest_job);
            }
            Job::Record(record) => match record.collect(&group) {
                Ok(finish) => out.finishers.push(finish),
                Err(e) => {
                    out.failure = Some(e);
                    break;
                }
            },
            Job::Run {
                durability,
                grouping,
                run,
            } => {
                if let Some(statement) = &ingest
                    && !fold.is_empty()
                {
                    steps.push(std::mem::take(&mut fold).step(
                        c.clone(),
                        statement.clone(),
                        fan_out.clone(),
                    ));
                }
                out.settle(pipeline(std::mem::take(&mut steps)).await);
                progress.answered();
                if out.failure.is_some() {
                    carried.push(Job::Run {
                        durability,
                        grouping,
                        run,
                    });
                    break;
                }
                let run = run(group.clone()).await;
                progress.answered();
                out.finishers.push(run.finish);
                match run.status {
                    JobStatus::Failed(e) => {
                        out.failure = Some(e);
                        break;
                    }
                    JobStatus::Refused => {}
                    JobStatus::Done => out.signals.extend(run.signals),
                }
            }
        }
        if alone {
            // Nothing joins it: the jobs after it go to the next group.
            break;
        }
    }
    carried.extend(jobs);
    if out.failure.is_none()
        && let Some(statement) = &ingest
        && !fold.is_empty()
    {
        steps.push(std::mem::take(&mut fold).step(c.clone(), statement.clone(), fan_out.clone()));
    }
    // Ingests collected but not sent (the group failed first) fail with it.
    out.finishers.extend(fold.abandon());
    if out.failure.is_none() {
        match record_steps(&group).await {
            Ok(records) => steps.extend(records),
            Err(e) => out.failure = Some(e),
        }
    }
    if out.failure.is_none() {
        match health_steps(&group).await {
            Ok(health) => steps.extend(health),
            Err(e) => out.failure = Some(e),
        }
    }
    if out.failure.is_some() {
        // Sent anyway (`BEGIN` may be among them): they fail with the group, rolled back.
        out.settle(pipeline(steps).await);
        return None;
    }
    if let Ok(mut flushed) = group.flushed_signals.lock() {
        out.signals.append(&mut flushed);
    }
    // Every step left is a statement whose only failure is the server's (which aborts the
    // transaction), so `COMMIT` goes in the same round trip.
    let (runs, commit) = pipeline_then(steps, commit(c)).await;
    out.settle(runs);
    Some(commit)
}

/// The server process of the writer's connection, for the listener to know this node's own
/// notifications (see `notify::listen`); 0 when it cannot be asked.
async fn backend_pid(c: &Conn) -> i32 {
    match query_one(c, "SELECT pg_backend_pid()", &[]).await {
        Ok(row) => row.try_get(0).unwrap_or_default(),
        Err(_) => 0,
    }
}

/// Waits for a group's commit (or rolls it back), then emits its signals and answers its
/// callers. Signals first, then answers (as in the embedded store): a caller that learns its
/// write committed can rely on the engine having been told of the work it created.
async fn finish(
    c: &Conn,
    name: &'static str,
    commit: Option<Step<'static, StoreResult<()>>>,
    mut out: Outcome,
    signals_out: &mpsc::UnboundedSender<StoreSignal>,
) {
    let outcome = match (out.failure.take(), commit) {
        (None, Some(commit)) => commit.await,
        (failure, commit) => {
            if let Some(commit) = commit {
                let _ = commit.await;
            }
            Err(failure.unwrap_or_else(|| StoreError::Unavailable("write group failed".into())))
        }
    };
    if let Err(e) = &outcome {
        tracing::error!(error = %e, jobs = out.finishers.len(), "write group rolled back ({name} writer)");
        let _ = c.batch_execute("ROLLBACK").await;
        out.signals.clear();
    }
    for signal in out.signals.drain(..) {
        let _ = signals_out.send(signal);
    }
    for answer in out.finishers.drain(..) {
        answer(outcome.clone());
    }
}

/// The jobs waiting for one lane's writer: the channel, and the fair queue the next group is
/// taken from (with the jobs a failed group did not reach, put back first).
pub(super) struct Inbox {
    jobs: mpsc::UnboundedReceiver<Job>,
    queue: FairQueue<Job>,
    /// The rows of the ingests in `queue`.
    rows: usize,
    /// The jobs in `queue` someone waits for: all but the records nobody waits for
    /// ([`RecordJob::waits_for_nobody`]).
    awaited: usize,
}

/// Whether someone waits for `job`'s commit (see [`Inbox::linger_for_records`]).
fn awaited(job: &Job) -> bool {
    !matches!(job, Job::Record(record) if record.waits_for_nobody())
}

/// A job's rows as the fair share weighs it: an ingest's estimate, nothing for the others.
fn job_rows(job: &Job) -> usize {
    match job {
        Job::Ingest(ingest) => ingest.rows(),
        _ => 0,
    }
}

/// What a job weighs in a group (`ROWS_PER_GROUP` at most): an ingest's rows, or its bytes'
/// share of a folded statement if more ([`IngestJob::group_weight`]: an ingest group is one
/// statement).
fn job_weight(job: &Job) -> usize {
    match job {
        Job::Ingest(ingest) => ingest.group_weight(),
        _ => 0,
    }
}

impl Inbox {
    pub(super) fn new(jobs: mpsc::UnboundedReceiver<Job>) -> Inbox {
        Inbox {
            jobs,
            queue: FairQueue::default(),
            rows: 0,
            awaited: 0,
        }
    }

    fn push(&mut self, job: Job) {
        self.rows += job_rows(&job);
        self.awaited += usize::from(awaited(&job));
        self.queue.push(job, Job::tenant);
    }

    /// Waits until a job is queued; `false` once every sender is gone and nothing is left.
    async fn wait_for_work(&mut self) -> bool {
        if self.queue.is_empty() {
            match self.jobs.recv().await {
                Some(job) => self.push(job),
                None => return false,
            }
        }
        self.take_arrived();
        true
    }

    /// Moves the jobs already sent into the fair queue (up to [`MAX_QUEUED`]).
    fn take_arrived(&mut self) {
        while self.queue.len() < MAX_QUEUED {
            match self.jobs.try_recv() {
                Ok(job) => self.push(job),
                Err(_) => break,
            }
        }
    }

    /// Waits for one more job; `false` once every sender is gone.
    async fn wait_for_more(&mut self) -> bool {
        match self.jobs.recv().await {
            Some(job) => {
                self.push(job);
                self.take_arrived();
                true
            }
            None => false,
        }
    }

    /// The next group's jobs, from what is queued (see [`Inbox::wait_for_work`]).
    fn take_group(&mut self) -> Vec<Job> {
        let group = self
            .queue
            .take_group(MAX_JOBS_PER_COMMIT, ROWS_PER_GROUP, job_weight);
        let taken: usize = group.iter().map(job_rows).sum();
        self.rows = self.rows.saturating_sub(taken);
        let awaited_taken = group.iter().filter(|job| awaited(job)).count();
        self.awaited = self.awaited.saturating_sub(awaited_taken);
        group
    }

    /// While every queued job is an attempt record nobody waits for, and fewer than
    /// [`RECORD_LINGER_UNTIL`], waits up to [`RECORD_LINGER`] for more, so that they commit in
    /// fewer, larger groups. Any other job arriving ends the wait at once. The jobs writer's
    /// only (the ingest lane never holds records).
    async fn linger_for_records(&mut self) {
        let until = tokio::time::Instant::now() + RECORD_LINGER;
        while self.awaited == 0 && !self.queue.is_empty() && self.queue.len() < RECORD_LINGER_UNTIL
        {
            match tokio::time::timeout_at(until, self.wait_for_more()).await {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
        }
    }

    fn put_back(&mut self, jobs: Vec<Job>) {
        self.rows += jobs.iter().map(job_rows).sum::<usize>();
        self.awaited += jobs.iter().filter(|job| awaited(job)).count();
        self.queue.put_back(jobs, Job::tenant);
    }
}

/// The ingest lane's inbox, shared by its writers (see the module doc, "Two ingest writers"):
/// the writer holding it takes the next group; when each group in flight (taken, not yet
/// committed) was taken; and a wake-up when one of them is done.
pub(super) struct IngestLane {
    inbox: tokio::sync::Mutex<Inbox>,
    taken_at: std::sync::Mutex<Vec<std::time::Instant>>,
    group_done: Notify,
}

impl IngestLane {
    pub(super) fn new(jobs: mpsc::UnboundedReceiver<Job>) -> Arc<IngestLane> {
        Arc::new(IngestLane {
            inbox: tokio::sync::Mutex::new(Inbox::new(jobs)),
            taken_at: std::sync::Mutex::new(Vec::with_capacity(INGEST_WRITERS)),
            group_done: Notify::new(),
        })
    }

    fn taken_at(&self) -> std::sync::MutexGuard<'_, Vec<std::time::Instant>> {
        // A list of instants is whole whatever a panicking holder did.
        self.taken_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The groups in flight, and how much longer a writer at the gate waits for them: until the
    /// oldest has been under way for `bound` (zero once it has; `None` without one). Its own
    /// age, not the lane's last answer: the other writer's answers must not keep small groups
    /// waiting behind a group that gets none (a connection the network stopped carrying).
    fn in_flight(&self, bound: Duration) -> (usize, Option<Duration>) {
        let taken_at = self.taken_at();
        let oldest = taken_at.iter().min();
        (
            taken_at.len(),
            oldest.map(|at| bound.saturating_sub(at.elapsed())),
        )
    }
}

/// Counts a group in flight until dropped (also when the writer's task is cancelled).
struct GroupInFlight<'a> {
    lane: &'a IngestLane,
    taken_at: std::time::Instant,
}

impl<'a> GroupInFlight<'a> {
    fn new(lane: &'a IngestLane) -> Self {
        let taken_at = std::time::Instant::now();
        lane.taken_at().push(taken_at);
        GroupInFlight { lane, taken_at }
    }
}

impl Drop for GroupInFlight<'_> {
    fn drop(&mut self) {
        {
            let mut taken_at = self.lane.taken_at();
            if let Some(i) = taken_at.iter().position(|at| *at == self.taken_at) {
                taken_at.swap_remove(i);
            }
        }
        self.lane.group_done.notify_waiters();
    }
}

/// One of the ingest lane's writers: holds the inbox while it waits for work (and, beside another
/// writer's group in flight, for enough of it: [`starts_beside_another_group`]), takes a group
/// and lets the other writer take the inbox, runs the group's statements and its `COMMIT`, and
/// answers its callers.
pub(super) async fn ingest_writer_loop(
    mut conn: WriterConn,
    lane: Arc<IngestLane>,
    progress: Arc<LaneProgress>,
    cx: WriterContext,
) {
    loop {
        let mut inbox = lane.inbox.lock().await;
        if !inbox.wait_for_work().await {
            return;
        }
        loop {
            // Registered before the test, so a group that ends in between still wakes it.
            let done = lane.group_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            // A group under way for the bound is not waited for any longer: this writer may
            // still get answers (only that connection may be cut off).
            let (in_flight, wait_left) = lane.in_flight(cx.answer_within);
            if starts_beside_another_group(in_flight, inbox.rows)
                || wait_left == Some(Duration::ZERO)
            {
                break;
            }
            // Waiting here with work queued blocks the lane as much as a group does.
            let _gated = progress.gate();
            tokio::select! {
                () = &mut done => {}
                more = inbox.wait_for_more() => if !more { break },
                () = tokio::time::sleep(wait_left.unwrap_or_default()), if wait_left.is_some() => {}
            }
        }
        let mut under_way = progress.begin();
        let taken = inbox.take_group();
        let in_flight = GroupInFlight::new(&lane);
        drop(inbox);
        let Some(group) = start_group(&mut conn, &cx, &progress, taken).await else {
            continue;
        };
        under_way.committing();
        // An ingest group holds ingests only, and `run_group` reaches every one of them: it
        // carries nothing to the next group. Were it to, dropping a job answers its caller
        // `Unavailable` (its reply channel closes) with nothing of it written.
        debug_assert!(group.carried.is_empty(), "an ingest group carried jobs");
        drop(group.carried);
        let client = group.client;
        finish(&client, conn.name, group.commit, group.out, &cx.signals_out).await;
        drop(in_flight);
        drop(under_way);
    }
}

/// A writer's connection: its pool of one (to reconnect), the connection while it has one, and
/// the server process id the listener knows it by.
pub(super) struct WriterConn {
    /// In log lines: which writer.
    name: &'static str,
    pool: Pool,
    /// `None` while the writer has no connection (the last one died and no new one could be had).
    client: Option<Arc<Conn>>,
    pid: Arc<AtomicI32>,
}

impl WriterConn {
    pub(super) async fn new(
        name: &'static str,
        pool: Pool,
        client: Conn,
        pid: Arc<AtomicI32>,
    ) -> WriterConn {
        let client = Arc::new(client);
        pid.store(backend_pid(&client).await, Ordering::Relaxed);
        WriterConn {
            name,
            pool,
            client: Some(client),
            pid,
        }
    }

    /// The connection to run `batch` on, reconnecting if it died; `None` (and `batch` dropped:
    /// each caller answered `Unavailable`) when no connection can be had.
    async fn ready(&mut self, batch: &mut Vec<Job>) -> Option<Arc<Conn>> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            // The connection died (a server restart): a new one for this group, with an empty
            // statement cache. The dead one goes back to its pool first (the pool holds one
            // connection: asking for another while holding it would wait for ever), and the
            // pool drops it. Its server process id may now be another's: forgotten first.
            self.pid.store(0, Ordering::Relaxed);
            self.client = None;
            match self.pool.get().await {
                Ok(c) => {
                    self.pid.store(backend_pid(&c).await, Ordering::Relaxed);
                    self.client = Some(Arc::new(c));
                }
                Err(e) => {
                    let name = self.name;
                    tracing::error!(error = %pool_err(e), jobs = batch.len(), "postgres {name} writer cannot reconnect");
                    // The jobs never run outside a transaction: dropping them answers each
                    // caller `Unavailable` ("writer stopped" from its dropped reply channel).
                    batch.clear();
                    return None;
                }
            }
        }
        self.client.clone()
    }
}

/// How a lane's writers are getting on: their groups running their statements, those waiting
/// for their `COMMIT`'s answer, the writers waiting at the ingest lane's gate for another's
/// group, and when the lane last had an answer from the database (a round trip of a group: a
/// batch of pipelined statements, a whole `Run` job, the statements before the `COMMIT`, the
/// commit; or a group began on an idle lane). A lane is stuck when it has had no answer for the
/// store's answer bound while every writer of the lane has a group under way (running its
/// statements or waiting for its commit: the jobs lane's one writer blocks it with any group), or
/// one has and the other waits for it at the gate: the database is not answering it. A job whose
/// caller waits is then refused at once ([`PostgresStore::refuse_if_stuck`]) instead of being
/// queued behind: its caller would be answered 503 at the bound anyway, and each retry of such a
/// caller would queue another copy of its request, in memory, for as long as the database stays
/// silent. Attempt records, lease
/// renewals and expiries are still queued (nobody waits for them, and a record refused would be
/// lost); the other background jobs (retention, the outbox of operational events) are refused
/// like any caller and try again later. On a live server each statement answers within its
/// timeouts, so a busy lane is judged stuck only when one round trip takes longer than the bound
/// (a `Run` job of many statements on a very slow database: retention's purge of up to 500
/// hooks, one statement each). A writer at the gate waits for another's group only until that
/// group has been under way for the bound (`IngestLane::in_flight`), then starts beside it: its
/// own connection may still get answers.
pub(super) struct LaneProgress {
    epoch: std::time::Instant,
    /// The lane's writers (the jobs lane one, the ingest lane `INGEST_WRITERS`).
    writers: usize,
    running: AtomicUsize,
    committing: AtomicUsize,
    /// Writers waiting, with work queued, for another's group to end (the ingest lane's gate,
    /// [`starts_beside_another_group`]).
    gated: AtomicUsize,
    /// Milliseconds from `epoch`.
    answered_at: AtomicU64,
}

impl LaneProgress {
    pub(super) fn new(writers: usize) -> Arc<LaneProgress> {
        Arc::new(LaneProgress {
            epoch: std::time::Instant::now(),
            writers: writers.max(1),
            running: AtomicUsize::new(0),
            committing: AtomicUsize::new(0),
            gated: AtomicUsize::new(0),
            answered_at: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The database answered one of the lane's statements.
    fn answered(&self) {
        self.answered_at.store(self.now_ms(), Ordering::SeqCst);
    }

    /// A group begins running its statements; see [`GroupUnderWay`].
    fn begin(self: &Arc<Self>) -> GroupUnderWay {
        if self.under_way() == 0 {
            // Before the count: a lane idle for long must not look stuck for an instant.
            self.answered();
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        GroupUnderWay {
            lane: self.clone(),
            committing: false,
        }
    }

    /// Whether the lane is stuck (see the type's doc) for `after`.
    pub(super) fn stuck(&self, after: Duration) -> bool {
        self.stuck_at(after, self.now_ms())
    }

    /// [`LaneProgress::stuck`] at `now_ms` (milliseconds from `epoch`).
    fn stuck_at(&self, after: Duration, now_ms: u64) -> bool {
        let under_way = self.under_way();
        let blocked =
            under_way >= self.writers || (under_way > 0 && self.gated.load(Ordering::SeqCst) > 0);
        blocked
            && now_ms.saturating_sub(self.answered_at.load(Ordering::SeqCst))
                > after.as_millis() as u64
    }
}

impl LaneProgress {
    /// Groups running their statements or waiting for their commits.
    fn under_way(&self) -> usize {
        self.running.load(Ordering::SeqCst) + self.committing.load(Ordering::SeqCst)
    }

    /// A writer waits, with work queued, for another's group to end, until the guard is dropped.
    fn gate(self: &Arc<Self>) -> Gated {
        self.gated.fetch_add(1, Ordering::SeqCst);
        Gated(self.clone())
    }
}

/// A writer waiting at the ingest lane's gate (see [`LaneProgress::gate`]).
struct Gated(Arc<LaneProgress>);

impl Drop for Gated {
    fn drop(&mut self) {
        self.0.gated.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A group on a lane: running its statements, then (`committing`) waiting for the answer to its
/// `COMMIT` (or `ROLLBACK`, when it failed); its end is an answer too.
struct GroupUnderWay {
    lane: Arc<LaneProgress>,
    committing: bool,
}

impl GroupUnderWay {
    /// Its statements have answered and its `COMMIT` (or `ROLLBACK`) is on its way.
    fn committing(&mut self) {
        if !self.committing {
            self.committing = true;
            self.lane.answered();
            self.lane.committing.fetch_add(1, Ordering::SeqCst);
            self.lane.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for GroupUnderWay {
    fn drop(&mut self) {
        self.lane.answered();
        let count = if self.committing {
            &self.lane.committing
        } else {
            &self.lane.running
        };
        count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a writer needs besides its connection and its jobs.
#[derive(Clone)]
pub(super) struct WriterContext {
    pub(super) node: Arc<str>,
    /// The store's answer bound (`Limits::answer_within`, see [`LaneProgress`]).
    pub(super) answer_within: Duration,
    pub(super) signals_out: mpsc::UnboundedSender<StoreSignal>,
    pub(super) fan_out: FanOut,
}

/// A lane's writer: takes a group from its inbox, runs it on its connection, commits it, answers
/// its callers, and takes the next.
pub(super) async fn writer_loop(
    mut conn: WriterConn,
    mut inbox: Inbox,
    progress: Arc<LaneProgress>,
    cx: WriterContext,
) {
    while inbox.wait_for_work().await {
        inbox.linger_for_records().await;
        let batch = inbox.take_group();
        let mut under_way = progress.begin();
        let Some(group) = start_group(&mut conn, &cx, &progress, batch).await else {
            continue;
        };
        under_way.committing();
        let client = group.client;
        finish(&client, conn.name, group.commit, group.out, &cx.signals_out).await;
        drop(under_way);
        inbox.put_back(group.carried);
    }
}

/// A group run up to its commit (see [`run_group`]).
struct StartedGroup {
    client: Arc<Conn>,
    /// Its `COMMIT`, on its way; `None` when the group failed first (it is rolled back).
    commit: Option<Step<'static, StoreResult<()>>>,
    out: Outcome,
    /// Jobs it did not reach: they go back to the inbox, first into the next group.
    carried: Vec<Job>,
}

/// Runs `batch` on the writer's connection up to its `COMMIT`; `None` when no connection can be
/// had (the jobs are dropped, their callers answered `Unavailable`).
async fn start_group(
    conn: &mut WriterConn,
    cx: &WriterContext,
    progress: &LaneProgress,
    mut batch: Vec<Job>,
) -> Option<StartedGroup> {
    let client = conn.ready(&mut batch).await?;
    let mut out = Outcome::default();
    let mut carried = Vec::new();
    let commit = run_group(
        &client,
        &cx.node,
        &cx.fan_out,
        progress,
        &mut batch,
        &mut carried,
        &mut out,
    )
    .await;
    Some(StartedGroup {
        client,
        commit,
        out,
        carried,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttemptResult, DeliveryStatus};

    /// An attempt record's job; `frees_key`: it frees an `orderingKey` (ends its delivery, or
    /// gives the hooks of its other keys back, by turns).
    fn record(n: usize, frees_key: bool) -> Job {
        let even = n.is_multiple_of(2);
        let (wakes_queue, split_by_key) = (frees_key && even, frees_key && !even);
        let outcome = AttemptOutcome {
            hooks_id: format!("d-{n}"),
            config_id: "c1".into(),
            number: 1,
            result: AttemptResult {
                started_at: 0,
                duration_ms: 1,
                status_code: Some(200),
                error_kind: None,
                error_message: None,
                response_body: None,
                retry_after: None,
                request_headers: Vec::new(),
            },
            new_status: DeliveryStatus::Succeeded,
            next_attempt_at: None,
            health: None,
            wakes_queue,
            split_by_key,
        };
        RecordJob::job(outcome, Default::default(), Default::default())
    }

    /// The time the jobs writer's inbox waits before taking its next group, after `queued`.
    async fn lingered(queued: Vec<Job>, later: Vec<(Duration, Job)>) -> (Duration, usize) {
        let (send, receive) = mpsc::unbounded_channel();
        let mut inbox = Inbox::new(receive);
        for job in queued {
            send.send(job).ok();
        }
        let sender = send.clone();
        tokio::spawn(async move {
            for (after, job) in later {
                tokio::time::sleep(after).await;
                sender.send(job).ok();
            }
        });
        let start = tokio::time::Instant::now();
        assert!(inbox.wait_for_work().await);
        inbox.linger_for_records().await;
        let waited = start.elapsed();
        (waited, inbox.take_group().len())
    }

    #[tokio::test(start_paused = true)]
    async fn records_nobody_waits_for_wait_a_moment_for_more_and_nothing_else_does() {
        // Records alone: the writer waits the whole linger, taking the ones that come meanwhile.
        let (waited, taken) = lingered(
            vec![record(0, false)],
            vec![(Duration::from_millis(1), record(1, false))],
        )
        .await;
        assert_eq!((waited, taken), (RECORD_LINGER, 2));
        // A record that frees an orderingKey is waited for (its key's hooks wait for the
        // commit's NewWork): no linger, whether it ends its delivery or splits it.
        for freeing in [0, 1] {
            let (waited, taken) =
                lingered(vec![record(2, false), record(freeing, true)], Vec::new()).await;
            assert_eq!((waited, taken), (Duration::ZERO, 2), "record {freeing}");
        }
        // Any other job is waited for by its caller: one arriving ends the linger at once.
        let flush = || quiet_job(Durability::Relaxed, "test", |_| async { Ok(()) });
        let (waited, taken) = lingered(
            vec![record(0, false)],
            vec![(Duration::from_millis(1), flush())],
        )
        .await;
        assert_eq!((waited, taken), (Duration::from_millis(1), 2));
        let (waited, _) = lingered(vec![flush()], Vec::new()).await;
        assert_eq!(waited, Duration::ZERO);
        // The node closing (every sender gone): no wait.
        let (send, receive) = mpsc::unbounded_channel();
        let mut inbox = Inbox::new(receive);
        send.send(record(0, false)).ok();
        drop(send);
        let start = tokio::time::Instant::now();
        assert!(inbox.wait_for_work().await);
        inbox.linger_for_records().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(inbox.take_group().len(), 1);
        // Enough records for a full group: no wait.
        let many = (0..RECORD_LINGER_UNTIL).map(|n| record(n, false)).collect();
        let (waited, taken) = lingered(many, Vec::new()).await;
        assert_eq!((waited, taken), (Duration::ZERO, RECORD_LINGER_UNTIL));
    }

    #[test]
    fn a_lane_is_stuck_only_when_what_blocks_it_has_had_no_answer_for_the_bound() {
        let bound = Duration::from_secs(8);
        // Times counted from the lane's last answer, whenever the test gets to run.
        let after = |lane: &LaneProgress, ms: u64| lane.answered_at.load(Ordering::SeqCst) + ms;
        // The ingest lane's two writers.
        let lane = LaneProgress::new(2);
        assert!(!lane.stuck_at(bound, u64::MAX / 2), "idle: never stuck");
        // One group under way, running its statements or waiting for its commit: the other
        // writer is free to take the next group...
        let mut first = lane.begin();
        assert!(
            !lane.stuck_at(bound, after(&lane, 9_000)),
            "the other writer is free while the first runs its statements"
        );
        first.committing();
        assert!(
            !lane.stuck_at(bound, after(&lane, 9_000)),
            "the other writer is free while the first commits"
        );
        // ... unless that one waits for it at the gate (a group too small to start beside it).
        let gated = lane.gate();
        assert!(
            !lane.stuck_at(bound, after(&lane, 7_000)),
            "answered within the bound"
        );
        assert!(
            lane.stuck_at(bound, after(&lane, 9_000)),
            "the other waits for it"
        );
        drop(gated);
        // Both writers with a group under way, whatever its step.
        let second = lane.begin();
        assert!(
            lane.stuck_at(bound, after(&lane, 9_000)),
            "one commits, the other runs its statements"
        );
        drop(second);
        let mut second = lane.begin();
        second.committing();
        assert!(
            lane.stuck_at(bound, after(&lane, 9_000)),
            "both wait for commits"
        );
        drop(second);
        assert!(
            !lane.stuck_at(bound, after(&lane, 9_000)),
            "one commit answered"
        );
        drop(first);
        // The jobs lane's one writer: a group of many jobs, each answered in turn, is not stuck.
        let jobs = LaneProgress::new(1);
        let _group = jobs.begin();
        assert!(jobs.stuck_at(bound, after(&jobs, 9_000)));
        jobs.answered();
        assert!(!jobs.stuck_at(bound, after(&jobs, 7_000)), "answered since");
    }

    #[test]
    fn a_writer_at_the_gate_waits_for_another_group_only_until_it_has_been_under_way_for_the_bound()
    {
        let bound = Duration::from_secs(8);
        let (_jobs, inbox) = mpsc::unbounded_channel();
        let lane = IngestLane::new(inbox);
        assert_eq!(lane.in_flight(bound), (0, None), "no group in flight");
        let first = GroupInFlight::new(&lane);
        let (count, left) = lane.in_flight(bound);
        assert_eq!(count, 1);
        let left = left.expect("a group in flight");
        assert!(left > Duration::from_secs(7) && left <= bound, "{left:?}");
        assert_eq!(
            lane.in_flight(Duration::ZERO),
            (1, Some(Duration::ZERO)),
            "under way for the bound"
        );
        let second = GroupInFlight::new(&lane);
        assert_eq!(lane.in_flight(bound).0, 2);
        drop(first);
        assert_eq!(lane.in_flight(bound).0, 1, "the first one done");
        drop(second);
        assert_eq!(lane.in_flight(bound), (0, None));
    }

    #[test]
    fn a_group_starts_beside_another_in_flight_only_when_it_is_large_enough() {
        // No group in flight: nothing to wait for, whatever the group holds.
        assert!(starts_beside_another_group(0, 1));
        assert!(starts_beside_another_group(0, 0));
        // Beside one: a few one-hook requests wait for it and grow; two 100-hook requests to a
        // config (200 rows) go.
        assert!(!starts_beside_another_group(1, 54));
        assert!(!starts_beside_another_group(1, ROWS_BESIDE_A_GROUP - 1));
        assert!(starts_beside_another_group(1, ROWS_BESIDE_A_GROUP));
        assert!(starts_beside_another_group(2, 10_000));
    }
}
