//! Attempt records: queued for the writer's next group without waiting for it, written there
//! together in two statements, and kept for another try when the group does not commit, so a
//! database that comes back gets every attempt.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_postgres::Statement;

use super::PostgresStore;
use super::cluster::HeldLeases;
use super::columns::col;
use super::connection::{Conn, Step, pg_err, pipeline, prepared, query_one};
use super::notify::{WAITING_CHANNEL, WORK_CHANNEL, notify};
use super::operational::hook_ids_sql;
use super::writer::{Durability, Finisher, Group, Grouping, Job, JobRun, RunJob, StepRun};
use crate::model::{AttemptErrorKind, AttemptOutcome, DeliveryStatus, now_millis};
use crate::operational::{self, LAST_ERROR_SQL};
use crate::store::rows::request_headers_text;
use crate::store::{StoreError, StoreResult, StoreSignal, job_status};

/// Attempt records whose group did not commit (the database was unreachable), waiting to be
/// submitted again by the retry task, so a database that comes back gets every attempt.
pub(super) type Unrecorded = Arc<Mutex<Vec<AttemptOutcome>>>;

/// How often the retry task resubmits unrecorded attempts.
const RECORD_RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// An attempt record waiting for the writer. Dropped unrun (its group could not begin), it hands
/// the record back to `unrecorded` instead of losing it.
pub(super) struct RecordJob {
    outcome: Option<AttemptOutcome>,
    unrecorded: Unrecorded,
    /// Once the record commits, its lease is no longer renewed.
    held: HeldLeases,
}

impl Drop for RecordJob {
    fn drop(&mut self) {
        if let Some(outcome) = self.outcome.take()
            && let Ok(mut list) = self.unrecorded.lock()
        {
            list.push(outcome);
        }
    }
}

impl RecordJob {
    pub(super) fn job(outcome: AttemptOutcome, unrecorded: Unrecorded, held: HeldLeases) -> Job {
        Job::Record(Box::new(RecordJob {
            outcome: Some(outcome),
            unrecorded,
            held,
        }))
    }

    /// Nothing waits for this record's commit: the dispatcher queued it and went on (and the
    /// retry it may schedule is 80 ms away at least), and it frees no `orderingKey`, neither by
    /// ending its delivery nor by giving the hooks of its other keys back to the queue (their
    /// hooks would wait for the `NewWork` signalled at the commit).
    pub(super) fn waits_for_nobody(&self) -> bool {
        self.outcome
            .as_ref()
            .is_some_and(|o| !o.wakes_queue && !o.split_by_key)
    }

    /// Adds the record to the group's, to be written with the others (`record_steps`); the
    /// group's commit decides for all of them. What to do once the commit is known: if it
    /// failed, the record goes back to `unrecorded` for the retry task.
    pub(super) fn collect(mut self: Box<Self>, group: &Group) -> StoreResult<Finisher> {
        let Some(outcome) = self.outcome.take() else {
            return Ok(Box::new(|_| {}));
        };
        group
            .records
            .lock()
            .map_err(|_| StoreError::Unavailable("records lock".into()))?
            .push(outcome.clone());
        let unrecorded = self.unrecorded.clone();
        let held = self.held.clone();
        Ok(Box::new(move |commit| {
            if commit.is_ok() {
                held.release(&outcome.hooks_id);
            }
            if let Err(e) = commit {
                tracing::warn!(error = %e, hooks_id = outcome.hooks_id, "attempt record not committed; will retry");
                if let Ok(mut list) = unrecorded.lock() {
                    list.push(outcome);
                }
            }
        }))
    }
}

/// Resubmits unrecorded attempts until the writer is gone (the store closed).
pub(super) async fn retry_unrecorded(
    jobs: mpsc::WeakUnboundedSender<Job>,
    unrecorded: Unrecorded,
    held: HeldLeases,
) {
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
            let _ = sender.send(RecordJob::job(outcome, unrecorded.clone(), held.clone()));
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

/// The attempts, one row per (delivery, number); written again late, a row is kept as it was.
const INSERT_ATTEMPTS: &str = "INSERT INTO attempts (hooks_id, number, started_at, duration_ms, \
     status_code, error_kind, error_message, response_body, request_headers) \
     SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], \
                          $5::BIGINT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[]) \
     ON CONFLICT (hooks_id, number) DO NOTHING";

/// Each delivery's next state, only forward (an open delivery, `$7` the open statuses), freeing
/// its lease if this node (`$6`) holds it. Each record must find its delivery by primary key,
/// whatever the table held when the plan was made (the writer plans once per connection, and
/// a plan is made again only when the table's statistics or schema change, e.g. at an
/// ANALYZE), so no index of statuses may serve the status test:
/// - The open statuses are a parameter, not literals: not the partial index of open deliveries.
/// - The test is `(...) IS TRUE` (the same in a WHERE), not a bare `= ANY`: not
///   `deliveries_by_status`. With the bare test, a plan made while `deliveries` was nearly empty
///   (a new database) read every delivery with an open status's index entry (one for every
///   delivery made since the last vacuum) and compared each with every record of the group:
///   groups of 1,024 records took 1.3-2.1 s, and the records fell behind for as long as
///   autovacuum had not analyzed the table (BENCHMARKS.md, "A record's plan").
///   `store::tests::recording_reads_each_delivery_by_its_key_whatever_the_plan_saw`.
/// - The keys are not listed again (`d.hooks_id = ANY($1)` beside the join, tried): the plan
///   made on the empty table then read the listed deliveries and scanned every record for each
///   (a group of 1,024: a million comparisons), and one-event runs lost 15 %.
///
/// A delivery this statement ends FAILED (`$8`: the facts of its `DELIVERY_FAILED`, NULL for
/// the others) gets its operational event in the outbox, its hookIds added here; one that had
/// ended already (a record written again late) is not advanced, so it reports nothing twice.
/// Answers how many events it wrote.
const ADVANCE_DELIVERIES: &str = "WITH advanced AS ( \
         UPDATE deliveries d SET status = u.status, attempt_count = u.number, \
         next_attempt_at = u.next_at, updated_at = $5, lease_owner = NULL, \
         lease_expires_at = NULL \
         FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $8::TEXT[]) \
              AS u(hooks_id, status, number, next_at, facts) \
         WHERE d.hooks_id = u.hooks_id AND (d.status = ANY($7::TEXT[])) IS TRUE \
         AND d.attempt_count < u.number AND (d.lease_owner IS NULL OR d.lease_owner = $6) \
         RETURNING d.hooks_id, d.app_key, d.config_id, d.product, u.facts), \
     reported AS ( \
         INSERT INTO operational_events (app_key, event, hook, created_at) \
         SELECT a.app_key, 'DELIVERY_FAILED', (a.facts::jsonb || jsonb_build_object( \
                'webhookConfigId', a.config_id, 'hooksId', a.hooks_id, 'hookIds', HOOK_IDS))::TEXT, $5 \
         FROM advanced a WHERE a.facts IS NOT NULL AND a.product <> 'hookline' RETURNING 1) \
     SELECT count(*) FROM reported";

/// [`ADVANCE_DELIVERIES`] with the hookIds of each delivery it reports.
pub(crate) fn advance_deliveries_sql() -> String {
    ADVANCE_DELIVERIES.replace("HOOK_IDS", &hook_ids_sql("a"))
}

/// The statuses of a delivery that may still be attempted.
const OPEN_STATUSES: &[&str] = &["PENDING", "RETRYING"];

/// Takes the group's pending attempt records and returns the two statements that write them
/// (the attempts, and each delivery's next state), ready to be pipelined: nothing is sent until
/// they are polled. Only forward: a record written again late never undoes a later attempt's
/// state. A record frees the delivery's lease; a node whose lease was taken over (it was cut off
/// for longer than the lease time) leaves the delivery to the new holder. The health the records
/// carry goes to the group's, written at its end (see `Group::health`).
pub(super) async fn record_steps(group: &Group) -> StoreResult<Vec<Step<'static, StepRun>>> {
    let records = match group.records.lock() {
        Ok(mut records) => std::mem::take(&mut *records),
        Err(_) => return Err(StoreError::Unavailable("records lock".into())),
    };
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let c = group.client.clone();
    // Prepared now, so each step sends its statement on its first poll.
    let insert = prepared(&c, INSERT_ATTEMPTS).await?;
    let advance = prepared(&c, &advance_deliveries_sql()).await?;
    if let Ok(mut health) = group.health.lock() {
        for outcome in &records {
            if let Some(h) = &outcome.health {
                let last_error = operational::last_error(&outcome.result);
                health.insert(outcome.config_id.clone(), (h.clone(), last_error));
            }
        }
    }
    let records = Arc::new(records);
    let attempts: Step<'static, StepRun> = Box::pin({
        let (c, records) = (c.clone(), records.clone());
        async move { StepRun::of(insert_attempts(&c, &insert, &records).await) }
    });
    let node = group.node.clone();
    let states: Step<'static, StepRun> = Box::pin(async move {
        match advance_deliveries(&c, &advance, &records, &node).await {
            Ok(signals) => StepRun {
                result: Ok(()),
                signals,
                finishers: Vec::new(),
            },
            Err(e) => StepRun::of(Err(e)),
        }
    });
    Ok(vec![attempts, states])
}

/// Writes the group's pending attempt records now (before a job that reads delivery state).
pub(super) async fn flush_records(group: &Group) -> StoreResult<()> {
    for run in pipeline(record_steps(group).await?).await {
        run.result?;
        if !run.signals.is_empty()
            && let Ok(mut flushed) = group.flushed_signals.lock()
        {
            flushed.extend(run.signals);
        }
    }
    Ok(())
}

async fn insert_attempts(
    c: &Conn,
    statement: &Statement,
    records: &[AttemptOutcome],
) -> StoreResult<()> {
    // One row per (delivery, attempt): the statement must not touch a row twice.
    let mut attempts: BTreeMap<(&str, u32), &AttemptOutcome> = BTreeMap::new();
    for outcome in records {
        attempts.insert((&outcome.hooks_id, outcome.number), outcome);
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
    let sent_headers: Vec<Option<String>> =
        a.iter().map(|o| request_headers_text(&o.result)).collect();
    c.execute(
        statement,
        &[
            &hooks_ids,
            &numbers,
            &started,
            &durations,
            &codes,
            &kinds,
            &messages,
            &bodies,
            &sent_headers,
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn advance_deliveries(
    c: &Conn,
    statement: &Statement,
    records: &[AttemptOutcome],
    node: &str,
) -> StoreResult<Vec<StoreSignal>> {
    // One state per delivery, the latest attempt's: the statement must not touch a row twice.
    let mut states: BTreeMap<&str, &AttemptOutcome> = BTreeMap::new();
    for outcome in records {
        let newer = states
            .get(outcome.hooks_id.as_str())
            .is_none_or(|o| o.number <= outcome.number);
        if newer {
            states.insert(&outcome.hooks_id, outcome);
        }
    }
    let s: Vec<&AttemptOutcome> = states.into_values().collect();
    let ids: Vec<&str> = s.iter().map(|o| o.hooks_id.as_str()).collect();
    let statuses: Vec<&str> = s.iter().map(|o| o.new_status.as_str()).collect();
    let numbers: Vec<i64> = s.iter().map(|o| i64::from(o.number)).collect();
    let next: Vec<Option<i64>> = s.iter().map(|o| o.next_attempt_at).collect();
    let now = now_millis();
    let facts: Vec<Option<String>> = s
        .iter()
        .map(|o| {
            operational::is_reported_end(o.new_status).then(|| {
                let last_error = operational::last_error(&o.result);
                let facts =
                    operational::delivery_facts(o.new_status, o.number, last_error.as_deref(), now);
                serde_json::Value::Object(facts).to_string()
            })
        })
        .collect();
    let rows = c
        .query(
            statement,
            &[
                &ids,
                &statuses,
                &numbers,
                &next,
                &now,
                &node,
                &OPEN_STATUSES,
                &facts,
            ],
        )
        .await
        .map_err(pg_err)?;
    // The statement's only failure is the server's: an answer that does not read says "perhaps
    // an event", and the engine looks.
    let reported = rows
        .first()
        .and_then(|r| r.try_get::<_, i64>(0).ok())
        .is_none_or(|n| n > 0);
    let mut signals = if reported {
        vec![StoreSignal::OperationalEvents]
    } else {
        Vec::new()
    };
    // Deliveries of ordered configs that ended: their keys are free once this commits, and
    // hooks of theirs may wait in the queue (a claim before the commit found them held). Every
    // node is told (a node whose last claim found the keys held waits for this), this one by a
    // signal (the listener skips its own writer's notifications).
    let mut woken: Vec<String> = Vec::new();
    for o in s.iter().filter(|o| o.wakes_queue) {
        if !woken.contains(&o.config_id) {
            woken.push(o.config_id.clone());
        }
    }
    // Failed deliveries of ordered configs keep only their first key's hooks; the configs that
    // got hooks back in their queue are woken the same way. Its own round trip, only for them.
    let split: Vec<&AttemptOutcome> = s.iter().copied().filter(|o| o.split_by_key).collect();
    if !split.is_empty() {
        let ids: Vec<&str> = split.iter().map(|o| o.hooks_id.as_str()).collect();
        let numbers: Vec<i64> = split.iter().map(|o| i64::from(o.number)).collect();
        let statement = prepared(c, REQUEUE_OTHER_KEYS).await?;
        for row in c
            .query(&statement, &[&ids, &numbers])
            .await
            .map_err(pg_err)?
        {
            let config_id: String = col(&row, 0)?;
            if !woken.contains(&config_id) {
                woken.push(config_id);
            }
        }
    }
    signals.extend(woken.iter().map(|config_id| StoreSignal::NewWork {
        config_id: config_id.clone(),
    }));
    notify(c, WORK_CHANNEL, &woken).await?;
    Ok(signals)
}

/// A failed delivery of an ordered config keeps only the hooks of its first hook's key value
/// (NULL counts as a value) and the others go back to the queue at their places (their seqs):
/// see `AttemptOutcome::split_by_key`. Only for a delivery RETRYING at that very attempt (the
/// one this record moved it to, or another node's record of the same number after a lease
/// take-over): the split is safe to run twice, a second run finds one key and moves nothing.
/// Two runs at once (two nodes' records): the list is rewritten only if it still holds the
/// hooks this run read (`l.hook_seqs = k.read`, checked again on the row the other run
/// committed), and only a run that rewrote it queues the other keys' hooks: never both, so a
/// hook a claim took in between is not queued again.
/// Each delivery is found by its key, never through an index of statuses (`IS TRUE`: see
/// [`ADVANCE_DELIVERIES`]; checked with `EXPLAIN` on an empty table, where the bare test took
/// `deliveries_by_status`). Answers the configs that got hooks back.
const REQUEUE_OTHER_KEYS: &str = "WITH r AS ( \
         SELECT DISTINCT d.hooks_id, d.config_id, d.event, l.hook_seqs, l.hook_keys \
         FROM deliveries d \
         JOIN unnest($1::TEXT[], $2::BIGINT[]) AS a(hooks_id, number) \
             ON a.hooks_id = d.hooks_id \
         JOIN delivery_hook_lists l ON l.hooks_id = d.hooks_id \
         WHERE (d.status = 'RETRYING') IS TRUE AND d.attempt_count = a.number \
         AND l.hook_keys IS NOT NULL), \
     placed AS ( \
         SELECT r.hooks_id, u.hook_seq, u.ordering_key, u.position, \
             u.ordering_key IS NOT DISTINCT FROM r.hook_keys[1] AS kept \
         FROM r CROSS JOIN LATERAL unnest(r.hook_seqs, r.hook_keys) WITH ORDINALITY \
             AS u(hook_seq, ordering_key, position)), \
     trimmed AS ( \
         UPDATE delivery_hook_lists l SET hook_seqs = k.seqs, hook_keys = k.keys, \
             hook_range = int8range(k.first, k.last, '[]') \
         FROM (SELECT p.hooks_id, r.hook_seqs AS read, \
                   array_agg(p.hook_seq ORDER BY p.position) AS seqs, \
                   array_agg(p.ordering_key ORDER BY p.position) AS keys, \
                   min(p.hook_seq) AS first, max(p.hook_seq) AS last \
               FROM placed p JOIN r ON r.hooks_id = p.hooks_id WHERE p.kept \
               GROUP BY p.hooks_id, r.hook_seqs \
               HAVING count(*) < cardinality(r.hook_seqs)) k \
         WHERE l.hooks_id = k.hooks_id AND l.hook_seqs = k.read \
         RETURNING l.hooks_id), \
     queued AS ( \
         INSERT INTO queue (config_id, event, hook_seq, ordering_key) \
         SELECT r.config_id, r.event, m.hook_seq, m.ordering_key \
         FROM placed m JOIN r ON r.hooks_id = m.hooks_id \
         WHERE NOT m.kept AND m.hooks_id IN (SELECT hooks_id FROM trimmed) \
         ON CONFLICT DO NOTHING RETURNING config_id) \
     SELECT DISTINCT config_id FROM queued";

impl PostgresStore {
    /// Ends an open delivery EXPIRED without an attempt, its lease freed. Queued, not awaited;
    /// lost (a failed group, a crash), the delivery is still open: this node stops renewing its
    /// lease either way, so a sweep finds it and it ends the same way when its next attempt is
    /// about to start.
    pub(super) fn expire_delivery(&self, hooks_id: String) {
        let held = self.node.held.clone();
        let run: RunJob = Box::new(move |group: Group| {
            Box::pin(async move {
                // Records queued before it come first (an attempt that succeeded meanwhile
                // finishes the delivery, and then this changes nothing).
                let result = match flush_records(&group).await {
                    Ok(()) => expire(&group, &hooks_id).await,
                    Err(e) => Err(e),
                };
                let signals = result.as_ref().cloned().unwrap_or_default();
                JobRun {
                    status: job_status(&result),
                    signals,
                    finish: Box::new(move |commit| {
                        held.release(&hooks_id);
                        if let Err(e) = commit.and(result) {
                            tracing::warn!(error = %e, "an expired delivery could not be recorded");
                        }
                    }),
                }
            })
        });
        if let Err(e) = self.submit(Job::Run {
            durability: Durability::Relaxed,
            grouping: Grouping::Shared,
            run,
        }) {
            tracing::error!(error = %e, "an expired delivery could not be queued");
        }
    }

    /// See [`crate::store::Store::tell_home`]: after the records queued before, one `NOTIFY`.
    pub(super) fn tell_home(&self, config_id: String) {
        let run: RunJob = Box::new(move |group: Group| {
            Box::pin(async move {
                let result = match flush_records(&group).await {
                    Ok(()) => notify(&group.client, WAITING_CHANNEL, &[config_id]).await,
                    Err(e) => Err(e),
                };
                JobRun {
                    status: job_status(&result),
                    signals: Vec::new(),
                    finish: Box::new(move |commit| {
                        if let Err(e) = commit.and(result) {
                            tracing::warn!(error = %e, "a config's home could not be told of its deliveries");
                        }
                    }),
                }
            })
        });
        if let Err(e) = self.submit(Job::Run {
            durability: Durability::Relaxed,
            grouping: Grouping::Shared,
            run,
        }) {
            tracing::error!(error = %e, "telling a config's home of its deliveries could not be queued");
        }
    }

    pub(super) fn record_attempt(&self, mut outcome: AttemptOutcome) {
        // The retry time is stored in the database's time, so that every node finds it due at
        // the same moment (see `cluster`, "The database's clock"): turned once, here, where it
        // leaves the engine's clock; a record written again later keeps it as turned.
        outcome.next_attempt_at = outcome.next_attempt_at.map(|at| self.node.clock.to_db(at));
        // Queued for the next group, not awaited (as in the embedded store).
        let job = RecordJob::job(outcome, self.unrecorded.clone(), self.node.held.clone());
        if let Err(e) = self.submit(job) {
            tracing::error!(error = %e, "an attempt record could not be queued");
        }
    }
}

/// Ends an open delivery EXPIRED, its lease freed (see `PostgresStore::expire_delivery`).
/// Its `DELIVERY_FAILED` goes to the outbox in the same statement, with the attempts made and
/// the last one's error as stored.
async fn expire(group: &Group, hooks_id: &str) -> StoreResult<Vec<StoreSignal>> {
    let now = now_millis();
    let facts = operational::delivery_facts(DeliveryStatus::Expired, 0, None, now);
    let row = query_one(
        &group.client,
        &format!(
            "WITH expired AS ( \
                 UPDATE deliveries SET status = 'EXPIRED', next_attempt_at = NULL, \
                 updated_at = $2, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE hooks_id = $1 AND status IN ('PENDING', 'RETRYING') \
                 RETURNING hooks_id, app_key, config_id, product, attempt_count), \
             reported AS ( \
                 INSERT INTO operational_events (app_key, event, hook, created_at) \
                 SELECT e.app_key, 'DELIVERY_FAILED', ($3::TEXT::jsonb || jsonb_build_object( \
                        'attempts', e.attempt_count, \
                        'lastError', (SELECT {LAST_ERROR_SQL} FROM attempts a \
                                      WHERE a.hooks_id = e.hooks_id \
                                      ORDER BY a.number DESC LIMIT 1), \
                        'webhookConfigId', e.config_id, 'hooksId', e.hooks_id, \
                        'hookIds', {hook_ids}))::TEXT, $2 \
                 FROM expired e WHERE e.product <> 'hookline' RETURNING 1) \
             SELECT (SELECT count(*) FROM reported), \
                 (SELECT e.config_id FROM expired e \
                      WHERE EXISTS (SELECT 1 FROM delivery_hook_lists l \
                          CROSS JOIN LATERAL unnest(l.hook_keys) k \
                          WHERE l.hooks_id = e.hooks_id AND k IS NOT NULL)) \
             ",
            hook_ids = hook_ids_sql("e"),
        ),
        &[
            &hooks_id,
            &now,
            &serde_json::Value::Object(facts).to_string(),
        ],
    )
    .await?;
    let reported: i64 = col(&row, 0)?;
    let mut signals = if reported > 0 {
        vec![StoreSignal::OperationalEvents]
    } else {
        Vec::new()
    };
    // It held ordering keys: they are free once this commits (every node told, as for a record).
    if let Some(config_id) = col::<Option<String>>(&row, 1)? {
        notify(
            &group.client,
            WORK_CHANNEL,
            std::slice::from_ref(&config_id),
        )
        .await?;
        signals.push(StoreSignal::NewWork { config_id });
    }
    Ok(signals)
}
