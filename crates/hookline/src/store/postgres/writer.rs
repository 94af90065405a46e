//! The writer task and its group commit.
//!
//! One task on its own connection takes every job queued since its last commit (ingests, attempt
//! records, leases, config changes) and runs them one after the other in a single transaction, so
//! one commit (one WAL flush) serves many callers. Jobs run without savepoints (see
//! [`JobStatus`]): a job that refuses (a conflict) decides before it writes, and a real error
//! rolls the whole group back; the jobs that ran in it fail, those it did not reach go first into
//! the next group. The group's attempt records and the health they carry are written at its end.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

use super::PostgresStore;
use super::attempts::flush_records;
use super::configs::write_health;
use super::connection::{connect, pg_err, poisoned};
use crate::model::{AttemptOutcome, Health};
use crate::store::{JobStatus, StoreError, StoreResult, StoreSignal, job_status};

/// Most jobs folded into one transaction: bounds a group's latency under a flood.
const MAX_JOBS_PER_COMMIT: usize = 1024;

pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(super) type Finisher = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// What a job ran: its status, the signals to emit if the group commits, and what to do once
/// the commit is known.
pub(super) struct JobRun {
    pub(super) status: JobStatus,
    pub(super) signals: Vec<StoreSignal>,
    pub(super) finish: Finisher,
}

/// A job gets the writer's connection, inside the group's open transaction.
pub(super) type Job = Box<dyn FnOnce(Group) -> BoxFuture<JobRun> + Send>;

/// What the jobs of one write group share.
#[derive(Clone)]
pub(super) struct Group {
    pub(super) client: Arc<Client>,
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
    pub(super) health: Arc<Mutex<std::collections::BTreeMap<String, Health>>>,
}

impl PostgresStore {
    pub(super) fn submit(&self, job: Job) -> StoreResult<()> {
        let writer = self.writer.lock().map_err(poisoned)?;
        let sender = writer
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))?;
        sender
            .send(job)
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))
    }

    /// Runs `f` in the writer's next group commit and returns its result once committed.
    pub(super) async fn write<R, F, Fut>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(Arc<Client>) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<(R, Vec<StoreSignal>)>> + Send + 'static,
    {
        self.write_in_group(move |group| f(group.client)).await
    }

    /// Like [`PostgresStore::write`], for jobs that need the group (its pending records).
    pub(super) async fn write_in_group<R, F, Fut>(&self, f: F) -> StoreResult<R>
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

    /// Waits until every write queued before this call is committed.
    pub(super) async fn flush(&self) -> StoreResult<()> {
        self.write(|_| async { Ok(((), Vec::new())) }).await
    }
}

pub(super) async fn writer_loop(
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
        // Signals first, then answers (as in the embedded store): a caller that learns its write
        // committed can rely on the engine having been told of the work it created.
        for signal in signals.drain(..) {
            let _ = signals_out.send(signal);
        }
        for finish in finishers.drain(..) {
            finish(outcome.clone());
        }
    }
}
