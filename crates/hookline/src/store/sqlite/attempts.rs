//! Attempt records: queued for the writer's next group commit without waiting for it, and kept
//! for another try when that commit fails, so a store that comes back (a full disk freed, an I/O
//! error gone) gets every attempt without a restart.

use std::sync::{Arc, Mutex};

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::configs::write_health;
use super::operational::report_delivery_end;
use super::writer::{Finisher, Job, JobFn, WriteTx, signal_new_work};
use crate::model::{AttemptErrorKind, AttemptOutcome, DeliveryStatus};
use crate::operational;
use crate::store::rows::request_headers_text;
use crate::store::{StoreResult, job_status};

/// Attempt records whose commit failed (a full disk, an I/O error), waiting to be written again.
pub(super) type Unrecorded = Arc<Mutex<Vec<AttemptOutcome>>>;

/// The writer job of one attempt record. If its group fails to commit, the outcome goes to
/// `unrecorded` and the background thread submits it again, so a store that comes back gets
/// every attempt without a restart.
fn record_job(outcome: AttemptOutcome, unrecorded: Unrecorded) -> Job {
    let run: JobFn = Box::new(move |ctx| {
        let result = ctx.and_then(|tx| write_attempt(tx, &outcome));
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
    });
    Job::shared(run)
}

/// Of the delivery `?1` (a hooksId); nothing when it is gone (retention removed it).
pub(super) const INSERT_ATTEMPT: &str = "INSERT OR REPLACE INTO attempts (delivery_seq, number, \
     started_at, duration_ms, status_code, error_kind, error_message, response_body, \
     request_headers) SELECT seq, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM deliveries \
     WHERE hooks_id = ?1";
/// Only forward: a record written again late never undoes a later attempt's state.
pub(super) const ADVANCE_DELIVERY: &str = "UPDATE deliveries SET status = ?2, attempt_count = ?3, \
     next_attempt_at = ?4, updated_at = ?5 WHERE hooks_id = ?1 \
     AND status IN ('PENDING', 'RETRYING') AND attempt_count < ?3";

/// Back to the queue: a failed delivery's hooks of other key values than its first hook's
/// (NULL counts as a value: hooks without one), at their places (their seqs) in it; see
/// `AttemptOutcome::split_by_key`.
const REQUEUE_OTHER_KEYS: &str = "INSERT OR IGNORE INTO queue (config_id, event, hook_seq, \
     ordering_key) SELECT d.config_id, d.event, dh.hook_seq, dh.ordering_key FROM deliveries d \
     JOIN delivery_hooks dh ON dh.delivery_seq = d.seq WHERE d.hooks_id = ?1 \
     AND dh.ordering_key IS NOT (SELECT ordering_key FROM delivery_hooks \
         WHERE delivery_seq = (SELECT seq FROM deliveries WHERE hooks_id = ?1) \
         ORDER BY position LIMIT 1)";
/// ... and out of the delivery (the same rows: the first hook stays, so the subquery's answer
/// does not change as rows go).
const DROP_OTHER_KEYS: &str = "DELETE FROM delivery_hooks \
     WHERE delivery_seq = (SELECT seq FROM deliveries WHERE hooks_id = ?1) \
     AND ordering_key IS NOT (SELECT f.ordering_key FROM delivery_hooks f \
         WHERE f.delivery_seq = (SELECT seq FROM deliveries WHERE hooks_id = ?1) \
         ORDER BY f.position LIMIT 1)";

fn write_attempt(tx: &mut WriteTx<'_, '_>, outcome: &AttemptOutcome) -> StoreResult<()> {
    let r = &outcome.result;
    tx.hot.insert_attempt.execute(params![
        outcome.hooks_id,
        outcome.number,
        r.started_at,
        r.duration_ms as i64,
        r.status_code,
        r.error_kind.map(AttemptErrorKind::as_str),
        r.error_message,
        r.response_body,
        request_headers_text(r)
    ])?;
    let advanced = tx.hot.advance_delivery.execute(params![
        outcome.hooks_id,
        outcome.new_status.as_str(),
        outcome.number,
        outcome.next_attempt_at,
        tx.now
    ])?;
    // Only when this record ended it: a record written again late reports nothing twice.
    if advanced == 1 && operational::is_reported_end(outcome.new_status) {
        report_delivery_end(
            tx,
            &outcome.hooks_id,
            outcome.new_status,
            Some(outcome.number),
            operational::last_error(r),
        )?;
    }
    if advanced == 1 && outcome.split_by_key {
        tx.conn
            .prepare_cached(REQUEUE_OTHER_KEYS)?
            .execute(params![outcome.hooks_id])?;
        let moved = tx
            .conn
            .prepare_cached(DROP_OTHER_KEYS)?
            .execute(params![outcome.hooks_id])?;
        if moved > 0 {
            // Their keys are free from this commit on (see `AttemptOutcome::split_by_key`).
            signal_new_work(tx.signals, &outcome.config_id);
        }
    }
    if advanced == 1 && outcome.wakes_queue {
        // Its ordering keys are free from this commit on: hooks of theirs may wait in the queue.
        signal_new_work(tx.signals, &outcome.config_id);
    }
    if let Some(health) = &outcome.health {
        let last_error = operational::last_error(r);
        write_health(tx, &outcome.config_id, health, last_error.as_deref())?;
    }
    Ok(())
}

/// Submits again the records whose commit failed (called by the checkpointer's rounds).
pub(super) fn resubmit_unrecorded(jobs: &std::sync::mpsc::Sender<Job>, unrecorded: &Unrecorded) {
    let retry = unrecorded
        .lock()
        .map(|mut list| std::mem::take(&mut *list))
        .unwrap_or_default();
    for outcome in retry {
        let _ = jobs.send(record_job(outcome, unrecorded.clone()));
    }
}

/// Ends an open delivery EXPIRED without an attempt.
pub(super) const EXPIRE_DELIVERY: &str = "UPDATE deliveries SET status = 'EXPIRED', \
     next_attempt_at = NULL, updated_at = ?2 WHERE hooks_id = ?1 \
     AND status IN ('PENDING', 'RETRYING')";

/// The config of a delivery whose hooks carry an ordering key (no row: none does).
const EXPIRED_HELD_KEYS: &str = "SELECT d.config_id FROM deliveries d WHERE d.hooks_id = ?1 \
     AND EXISTS (SELECT 1 FROM delivery_hooks dh WHERE dh.delivery_seq = d.seq \
     AND dh.ordering_key IS NOT NULL)";

impl SqliteStore {
    /// Queued, not awaited, like a record. Lost in a crash, the delivery is still open and ends
    /// the same way when its next attempt is about to start.
    pub(super) fn expire_delivery(&self, hooks_id: String) {
        let run: JobFn = Box::new(move |ctx| {
            let result = ctx.and_then(|tx| {
                let expired = tx
                    .conn
                    .prepare_cached(EXPIRE_DELIVERY)?
                    .execute(params![hooks_id, tx.now])?;
                if expired == 1 {
                    report_delivery_end(tx, &hooks_id, DeliveryStatus::Expired, None, None)?;
                    // An expiry is rare: asking the store whether it held ordering keys costs
                    // nothing that matters, and frees them for the config's queue.
                    let ordered: Option<String> = tx
                        .conn
                        .prepare_cached(EXPIRED_HELD_KEYS)?
                        .query_row(params![hooks_id], |r| r.get(0))
                        .optional()?;
                    if let Some(config_id) = ordered {
                        signal_new_work(tx.signals, &config_id);
                    }
                }
                Ok(())
            });
            let status = job_status(&result);
            let finish: Finisher = Box::new(move |commit| {
                if let Err(e) = commit.and(result) {
                    tracing::warn!(error = %e, "an expired delivery could not be recorded");
                }
            });
            (status, finish)
        });
        if let Err(e) = self.submit(Job::shared(run)) {
            tracing::error!(error = %e, "an expired delivery could not be queued");
        }
    }

    pub(super) fn record_attempt(&self, outcome: AttemptOutcome) {
        let job = record_job(outcome, self.unrecorded.clone());
        if let Err(e) = self.submit(job) {
            tracing::error!(error = %e, "an attempt record could not be queued");
        }
    }
}
