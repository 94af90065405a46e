//! Attempt records: queued for the writer's next group without waiting for it, written there
//! together in two statements, and kept for another try when the group does not commit, so a
//! database that comes back gets every attempt.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::PostgresStore;
use super::connection::pg_err;
use super::writer::{Finisher, Group, Job, JobRun};
use crate::model::{AttemptErrorKind, AttemptOutcome, now_millis};
use crate::store::{JobStatus, StoreError, StoreResult};

/// Attempt records whose group did not commit (the database was unreachable), waiting to be
/// submitted again by the retry task, so a database that comes back gets every attempt.
pub(super) type Unrecorded = Arc<Mutex<Vec<AttemptOutcome>>>;

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
pub(super) async fn retry_unrecorded(jobs: mpsc::WeakUnboundedSender<Job>, unrecorded: Unrecorded) {
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
pub(super) async fn flush_records(group: &Group) -> StoreResult<()> {
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

impl PostgresStore {
    pub(super) fn record_attempt(&self, outcome: AttemptOutcome) {
        // Queued for the next group, not awaited (as in the embedded store).
        let job = record_job(outcome, self.unrecorded.clone());
        if let Err(e) = self.submit(job) {
            tracing::error!(error = %e, "an attempt record could not be queued");
        }
    }
}
