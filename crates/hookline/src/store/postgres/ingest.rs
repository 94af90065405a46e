//! Ingest: stores a request's hooks once per (app key, hookId) and queues every new one for each
//! subscribed config, notifying every node of the configs that got work. The writer folds the
//! ingests queued next to each other into one statement ([`Fold`]): one execution for many
//! requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hookline_wire::{Event, Product, ValidatedHook};
use tokio::sync::oneshot;
use tokio_postgres::Statement;

use super::PostgresStore;
use super::columns::col;
use super::connection::{Conn, Step, pg_err, prepared};
use super::notify::WORK_CHANNEL;
use super::routes::{Answers, KeyRoutes, learnt};
use super::writer::{Finisher, Job, StepRun};
use crate::model::now_millis;
use crate::store::fair::ROWS_PER_GROUP;
use crate::store::{IngestOutcome, StoreError, StoreResult, StoreSignal};

/// Rows (hooks and queue rows, as [`FanOut`] estimates them) above which an ingest does not go
/// through the writer but runs beside it ([`PostgresStore::ingest_beside_the_writer`]). A
/// writer runs its group's statements one after the other: a request of 100 hooks to 100
/// configs (10,100 rows) held it, and every tenant's ingest queued behind it, for half a
/// second. PostgreSQL takes concurrent writers, so such a request gets a connection of its own;
/// its commit amortises itself, and group commit gains nothing from it.
pub(super) const ROWS_IN_THE_WRITER: usize = 2_000;

/// The hook bytes one folded statement carries at most: a flood of large requests becomes
/// several groups of a statement each ([`IngestJob::group_weight`]) rather than one huge
/// message. (`Fold::fits` would split a larger group into several statements; the ingest lane
/// takes none.)
const FOLD_MAX_BYTES: usize = 4 << 20;

/// A new hook's body (`n.body`) as `jsonb`: a real `\u0000` escape read as `\ufffd` (see
/// [`INGEST`]). A macro, so that both places of the statement that read it use one text.
macro_rules! body_as_jsonb {
    () => {
        "(CASE WHEN strpos(n.body, '\\u0000') = 0 THEN n.body \
         ELSE regexp_replace(n.body, '(?<!\\\\)((?:\\\\\\\\)*)\\\\u0000', '\\1\\\\ufffd', 'g') \
         END)::jsonb"
    };
}

/// The hooks of several requests, in queue order (`$4`..`$8`, one element per hook), returning
/// only the new ones (ON CONFLICT DO NOTHING makes a producer's retry accepted again but stored
/// once), their queue rows for every subscribed config of the requests' (app key, product,
/// event) keys (`$1`..`$3`), and a NOTIFY per config that got rows. It answers which hooks were
/// new (ordered by seq, so the two arrays line up), how many configs each key fans out to, and
/// the configs woken. `notified` is MATERIALIZED so its pg_notify calls run, counted or not.
/// Each hook's seq is taken in queue order (`numbered`, MATERIALIZED so its `nextval` calls run
/// in that order, before the insert), and the hooks are inserted in the order of their keys (app
/// key, hookId; compared by bytes, the unique index's collation since migration 18, whatever the
/// database's default; the fold sends a hookId once, and were one sent twice the seq would put the
/// earlier first, the later its duplicate): two statements that share hooks, running side by
/// side, take their keys in the same order, and the second waits for the first's commit at the
/// first key they share instead of each holding a key the other waits for (a deadlock, which
/// PostgreSQL ended after `deadlock_timeout` by failing one of them:
/// `ingests_sharing_hook_ids_in_opposite_orders_side_by_side_both_commit`). An ingest group is
/// one such statement ([`IngestJob::group_weight`]).
/// A config with a filter gets only the hooks its `filter_path` (the filter as a jsonpath
/// predicate, see `crate::filter`) matches: parsed as jsonb only for such configs. A config with
/// an `orderingKey` gets each hook's value of that field on its queue row (a string as it is,
/// another value as its JSON text, NULL when absent or null: `model::ordering_value`'s rule),
/// also parsed only for such configs. The fan-out counts (`$3`'s keys) count every subscribed
/// config, filtered or not; when a filter is among them, the sixth column counts each new hook's
/// queue rows (an initplan: not run otherwise), so a request's `queued` is exact either way.
/// `jsonb` refuses the escape of U+0000 that a hook's strings may hold: where the statement reads
/// a hook as `jsonb`, such a character reads as U+FFFD (one hook must not fail the statement and
/// every request folded into it). Only a real escape is rewritten: `\u0000` after an escaped
/// backslash (a string holding a backslash, then `u0000`) is text, and stays so, as the node's
/// own reading of the hook keeps it (`regexp_replace` with a look-behind, only for bodies where
/// `\u0000` appears at all).
/// What the node already evaluated (`routes.rs`: `$11` each hook's marks, `$12` where its values
/// start in `$13`, `$14`..`$18` the configs they are for, by key ordinal) is not evaluated again
/// where the config's stored filter and `orderingKey` are still the ones evaluated; the last
/// column lists, as JSON, the configs with a filter or an `orderingKey` of every key that had
/// one the node did not know (NULL when none), to be learnt.
/// The queue rows are inserted without `ON CONFLICT`: its speculative insertion (a probe of the
/// key, a lock on a token and a record confirming each row) added 2-4 µs to the ~5 µs of a
/// row's insertion (BENCHMARKS.md), and no row can conflict. Each is a new hook's (its seq is this
/// statement's) for one config, and the statement makes each (hook, config) pair once: the
/// hooks are sent once per (app key, hookId) and the keys once per (app key, product, event)
/// (`FoldParams`), `answers` has one row per hook sent, `known` one per (key, config), and a
/// config is subscribed once per key (the primary key of `subscriptions`).
/// FOR KEY SHARE on the configs: a concurrent delete_config (another node) waits for this commit,
/// and then finds and cancels these queue rows, instead of leaving rows no config will claim.
/// Every join has the small side (keys, subscriptions) on one end, whatever plan is chosen.
pub(super) const INGEST: &str = concat!(
    "WITH keys AS ( \
         SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[]) WITH ORDINALITY \
             AS k(app_key, product, event, n)), \
     numbered AS MATERIALIZED ( \
         SELECT nextval('hooks_seq_seq') AS seq, u.* \
         FROM unnest($4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[]) \
             WITH ORDINALITY AS u(app_key, product, event, id, body, ord) \
         ORDER BY u.ord), \
     new AS ( \
         INSERT INTO hooks (seq, app_key, hook_id, product, event, body, created_at) \
         SELECT t.seq, t.app_key, t.id, t.product, t.event, t.body, $9 \
         FROM numbered t \
         ORDER BY t.app_key COLLATE \"C\", t.id COLLATE \"C\", t.seq \
         ON CONFLICT (app_key, hook_id) DO NOTHING \
         RETURNING seq, app_key, hook_id, product, event, body), \
     answers AS ( \
         SELECT * FROM unnest($4::TEXT[], $7::TEXT[], $11::TEXT[], $12::INT[]) \
             AS a(app_key, id, marks, off) \
         WHERE cardinality($11::TEXT[]) > 0), \
     known AS ( \
         SELECT DISTINCT ON (n, config_id) * \
         FROM unnest($14::BIGINT[], $15::TEXT[], $16::TEXT[], $17::TEXT[], $18::INT[]) \
             AS e(n, config_id, filter, ordering_key, pos)), \
     subs AS ( \
         SELECT s.app_key, s.product, s.event, s.config_id, c.filter_path, c.ordering_key, \
             k.n, c.filter, e.pos AS known \
         FROM subscriptions s \
         JOIN webhook_configs c ON c.id = s.config_id \
         JOIN keys k ON k.app_key = s.app_key AND k.product = s.product AND k.event = s.event \
         LEFT JOIN known e ON e.n = k.n AND e.config_id = s.config_id \
             AND e.filter IS NOT DISTINCT FROM c.filter \
             AND e.ordering_key IS NOT DISTINCT FROM c.ordering_key \
         FOR KEY SHARE OF c), \
     queued AS ( \
         INSERT INTO queue (config_id, event, hook_seq, ordering_key) \
         SELECT s.config_id, n.event, n.seq, \
             CASE WHEN s.ordering_key IS NULL THEN NULL \
             WHEN s.known IS NOT NULL AND substr(a.marks, s.known, 1) = '1' \
                 THEN ($13::TEXT[])[a.off + s.known] \
             ELSE ( \
                 SELECT CASE jsonb_typeof(v) WHEN 'string' THEN v #>> '{}' \
                        WHEN 'null' THEN NULL ELSE v::TEXT END \
                 FROM (SELECT ",
    body_as_jsonb!(),
    " -> s.ordering_key AS v) o) END \
         FROM new n \
         JOIN subs s ON s.app_key = n.app_key AND s.product = n.product AND s.event = n.event \
         LEFT JOIN answers a ON a.app_key = n.app_key AND a.id = n.hook_id \
         WHERE CASE WHEN s.filter_path IS NULL THEN TRUE \
               WHEN s.known IS NOT NULL AND a.marks IS NOT NULL \
                   THEN substr(a.marks, s.known, 1) <> '0' \
               ELSE COALESCE(jsonb_path_match(",
    body_as_jsonb!(),
    ", \
                   s.filter_path, '{}', TRUE), FALSE) END \
         ORDER BY n.seq, s.config_id \
         RETURNING config_id, hook_seq), \
     woken AS (SELECT DISTINCT config_id FROM queued), \
     notified AS MATERIALIZED (SELECT pg_notify($10, config_id) FROM woken) \
     SELECT ARRAY(SELECT app_key FROM new ORDER BY seq), \
            ARRAY(SELECT hook_id FROM new ORDER BY seq), \
            ARRAY(SELECT (SELECT count(*) FROM subs s WHERE s.app_key = k.app_key \
                          AND s.product = k.product AND s.event = k.event) \
                  FROM keys k ORDER BY k.n), \
            ARRAY(SELECT config_id FROM woken ORDER BY config_id), \
            (SELECT count(*) FROM notified), \
            CASE WHEN EXISTS (SELECT 1 FROM subs WHERE filter_path IS NOT NULL) THEN \
                ARRAY(SELECT count(q.config_id) FROM new n \
                      LEFT JOIN queued q ON q.hook_seq = n.seq GROUP BY n.seq ORDER BY n.seq) \
            END, \
            CASE WHEN EXISTS (SELECT 1 FROM subs WHERE known IS NULL \
                              AND (filter_path IS NOT NULL OR ordering_key IS NOT NULL)) \
            THEN (SELECT json_agg(json_build_array(s.n, s.config_id, s.filter, s.ordering_key) \
                                  ORDER BY s.n, s.config_id)::TEXT \
                  FROM subs s WHERE (s.filter_path IS NOT NULL OR s.ordering_key IS NOT NULL) \
                      AND s.n IN (SELECT n FROM subs WHERE known IS NULL \
                                  AND (filter_path IS NOT NULL OR ordering_key IS NOT NULL))) \
            END"
);

/// One ingest request: an app key's hooks of one product and event.
pub(super) struct IngestRequest {
    app_key: String,
    product: Product,
    event: Event,
    hooks: Vec<ValidatedHook>,
    /// Its hooks' filters and key values, computed on the request's task (`routes.rs`), when
    /// the node knew its key's configs.
    answers: Option<Answers>,
}

/// An ingest request waiting for the writer.
pub(super) struct IngestJob {
    request: IngestRequest,
    /// Its rows as [`FanOut`] estimated them when it came: the writer's fair share weighs it
    /// with this, so the writer's task does not look the estimate up again.
    rows: usize,
    /// Its hooks' bytes, summed once: the fair share, the group's bound and the fold read them.
    bytes: usize,
    reply: oneshot::Sender<StoreResult<IngestOutcome>>,
}

impl IngestJob {
    fn new(
        request: IngestRequest,
        rows: usize,
        reply: oneshot::Sender<StoreResult<IngestOutcome>>,
    ) -> IngestJob {
        let bytes = request.hooks.iter().map(|h| h.json.len()).sum();
        IngestJob {
            request,
            rows,
            bytes,
            reply,
        }
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn app_key(&self) -> &str {
        &self.request.app_key
    }

    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// What it weighs in the ingest lane's groups, which take at most `ROWS_PER_GROUP`: its
    /// rows, or its hooks' bytes as a share of [`FOLD_MAX_BYTES`] if that is more. So a group is
    /// one folded statement (the first job alone may be larger, and still is one): a statement
    /// inserts its hooks in the order of their keys, and a group of several statements would
    /// take its keys in order within each only, and could deadlock with another group sharing
    /// its hooks (the writer's module doc).
    pub(super) fn group_weight(&self) -> usize {
        let of_a_fold = (self.bytes() * ROWS_PER_GROUP).div_ceil(FOLD_MAX_BYTES);
        self.rows.max(of_a_fold)
    }

    /// Its caller stopped waiting (the database did not answer in time, `answered`, or the
    /// request went away): a caller told its ingest failed must not find it stored.
    pub(super) fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    /// Answers its caller `e`: it never ran.
    pub(super) fn fail(self, e: StoreError) {
        let _ = self.reply.send(Err(e));
    }
}

/// Most (app key, product, event) fan-outs remembered; beyond it they are forgotten and learnt
/// again.
const MAX_FAN_OUTS: usize = 10_000;

/// The fan-out of each (app key, product, event) as the writer last learnt it from an ingest's
/// answer (queue rows per new hook), to weigh an ingest before it runs: the fair share of a
/// group (`store::fair`) bounds a group's rows. The writer cannot ask the database before
/// sending a group without a round trip; an estimate from the last answer is right unless the
/// configs just changed, and then wrong for one group. Beside it, the key's configs with a filter
/// or an `orderingKey`, for the next requests to evaluate on their own task (`routes.rs`).
#[derive(Clone, Default)]
pub(super) struct FanOut(Arc<Mutex<HashMap<FanOutKey, Known>>>);

/// (app key, product, event).
type FanOutKey = (String, Product, Event);

/// What ingest answers taught about one (app key, product, event).
#[derive(Default)]
struct Known {
    /// Queue rows per new hook, when learnt.
    configs: Option<usize>,
    routes: Option<Arc<KeyRoutes>>,
}

/// The configs an ingest is assumed to fan out to until an answer taught the node better: the
/// default cap on configs per app key. Assuming one, the first requests of a tenant with 100
/// configs on its event (100 hooks each: 10,100 rows, not 200) went through the ingest writer
/// together before any had answered, and held every tenant's ingest for a second.
const UNLEARNT_CONFIGS: usize = 100;

impl FanOut {
    /// Rows `job` writes (each hook and its queue rows, [`UNLEARNT_CONFIGS`] when not known
    /// yet), whether its fan-out was learnt, and the configs with a filter or an `orderingKey`
    /// known for its key, if any: one lookup, as this runs for every request.
    pub(super) fn rows_and_routes(
        &self,
        job: &IngestRequest,
    ) -> (usize, bool, Option<Arc<KeyRoutes>>) {
        let (configs, routes) = match self.0.lock() {
            Ok(known) => match known.get(&(job.app_key.clone(), job.product, job.event)) {
                Some(k) => (k.configs, k.routes.clone()),
                None => (None, None),
            },
            Err(_) => (None, None),
        };
        let rows = job
            .hooks
            .len()
            .saturating_mul(1 + configs.unwrap_or(UNLEARNT_CONFIGS));
        (rows, configs.is_some(), routes)
    }

    fn learn(&self, job: &IngestRequest, outcome: &IngestOutcome) {
        if outcome.new_hooks == 0 {
            return; // retries only: nothing learnt
        }
        self.update((job.app_key.clone(), job.product, job.event), |k| {
            k.configs = Some(outcome.queued / outcome.new_hooks);
        });
    }

    /// Keeps the list already known when the new one is the same: requests computed against
    /// it, still on their way, keep their answers.
    fn learn_routes(&self, key: FanOutKey, routes: KeyRoutes) {
        self.update(key, |k| {
            if k.routes
                .as_deref()
                .is_none_or(|known| !known.same_as(&routes))
            {
                k.routes = Some(Arc::new(routes));
            }
        });
    }

    fn update(&self, key: FanOutKey, change: impl FnOnce(&mut Known)) {
        if let Ok(mut known) = self.0.lock() {
            if known.len() >= MAX_FAN_OUTS && !known.contains_key(&key) {
                known.clear();
            }
            change(known.entry(key).or_default());
        }
    }
}

/// Consecutive ingests of one group, run as one statement.
#[derive(Default)]
pub(super) struct Fold {
    jobs: Vec<IngestJob>,
    bytes: usize,
}

/// The statement's parameters for a fold, and which request each hook and key came from.
struct FoldParams<'a> {
    key_app: Vec<&'a str>,
    key_product: Vec<&'static str>,
    key_event: Vec<&'static str>,
    /// Each key's product and event, as the enums they were named from.
    key_kind: Vec<(Product, Event)>,
    /// Per request: its key's index.
    job_key: Vec<usize>,
    app: Vec<&'a str>,
    product: Vec<&'static str>,
    event: Vec<&'static str>,
    id: Vec<&'a str>,
    body: Vec<&'a str>,
    /// Each hook's marks (`$11`) and where its values start (`$12`) in `values` (`$13`): all
    /// empty when no request has answers.
    marks: Vec<Option<&'a str>>,
    offsets: Vec<Option<i32>>,
    values: Vec<Option<&'a str>>,
    /// The configs those answers are for (`$14`..`$18`): key ordinal, config, stored filter,
    /// `orderingKey`, position in the marks.
    known_key: Vec<i64>,
    known_config: Vec<&'a str>,
    known_filter: Vec<Option<&'a str>>,
    known_ordering: Vec<Option<&'a str>>,
    known_pos: Vec<i32>,
    /// (app key, hookId) of each hook sent, to the request it counts for.
    owner: HashMap<(&'a str, &'a str), usize>,
}

impl<'a> FoldParams<'a> {
    fn new(jobs: &[&'a IngestRequest]) -> Self {
        let hooks: usize = jobs.iter().map(|j| j.hooks.len()).sum();
        let mut p = FoldParams {
            key_app: Vec::new(),
            key_product: Vec::new(),
            key_event: Vec::new(),
            key_kind: Vec::new(),
            job_key: Vec::with_capacity(jobs.len()),
            app: Vec::with_capacity(hooks),
            product: Vec::with_capacity(hooks),
            event: Vec::with_capacity(hooks),
            id: Vec::with_capacity(hooks),
            body: Vec::with_capacity(hooks),
            marks: Vec::new(),
            offsets: Vec::new(),
            values: Vec::new(),
            known_key: Vec::new(),
            known_config: Vec::new(),
            known_filter: Vec::new(),
            known_ordering: Vec::new(),
            known_pos: Vec::new(),
            owner: HashMap::with_capacity(hooks),
        };
        let any_answers = jobs.iter().any(|j| j.answers.is_some());
        if any_answers {
            p.marks.reserve(hooks);
            p.offsets.reserve(hooks);
        }
        // Per key: the configs its answers were computed against (the first request's that has
        // any; a later request of the key computed against another list falls back).
        let mut key_routes: Vec<Option<&'a Arc<KeyRoutes>>> = Vec::new();
        let mut keys: HashMap<(&str, &str, &str), usize> = HashMap::new();
        for (j, job) in jobs.iter().enumerate() {
            let (product, event) = (job.product.as_str(), job.event.as_str());
            let next = keys.len();
            let key = *keys
                .entry((job.app_key.as_str(), product, event))
                .or_insert(next);
            if key == next {
                p.key_app.push(&job.app_key);
                p.key_product.push(product);
                p.key_event.push(event);
                p.key_kind.push((job.product, job.event));
                key_routes.push(None);
            }
            p.job_key.push(key);
            let answers = job.answers.as_ref().filter(|a| match key_routes[key] {
                Some(known) => Arc::ptr_eq(known, &a.routes),
                None => {
                    key_routes[key] = Some(&a.routes);
                    for (pos, c) in a.routes.configs.iter().enumerate() {
                        p.known_key.push(key as i64 + 1);
                        p.known_config.push(&c.config_id);
                        p.known_filter.push(c.filter_stored.as_deref());
                        p.known_ordering.push(c.ordering_key.as_deref());
                        p.known_pos.push(pos as i32 + 1);
                    }
                    true
                }
            });
            for (index, hook) in job.hooks.iter().enumerate() {
                // A hookId an earlier request of the fold already sent is this request's
                // duplicate, as if the two had run one after the other: sent once, for the first.
                let slot = (job.app_key.as_str(), hook.hook_id.as_str());
                if p.owner.contains_key(&slot) {
                    continue;
                }
                p.owner.insert(slot, j);
                p.app.push(&job.app_key);
                p.product.push(product);
                p.event.push(event);
                p.id.push(&hook.hook_id);
                p.body.push(&hook.json);
                if any_answers {
                    let marks = answers.and_then(|a| Some((a, a.per_hook.get(index)?)));
                    match marks {
                        Some((a, marks)) => {
                            let width = a.routes.configs.len();
                            let start = index * width;
                            p.marks.push(Some(marks));
                            p.offsets.push(Some(p.values.len() as i32));
                            p.values.extend(
                                a.values
                                    .get(start..start + width)
                                    .into_iter()
                                    .flatten()
                                    .map(Option::as_deref),
                            );
                        }
                        None => {
                            p.marks.push(None);
                            p.offsets.push(None);
                        }
                    }
                }
            }
        }
        p
    }
}

impl Fold {
    pub(super) fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Whether `job` may join this fold (an empty fold takes any request, however large).
    pub(super) fn fits(&self, job: &IngestJob) -> bool {
        self.jobs.is_empty() || self.bytes + job.bytes() <= FOLD_MAX_BYTES
    }

    pub(super) fn push(&mut self, job: IngestJob) {
        self.bytes += job.bytes();
        self.jobs.push(job);
    }

    /// Answers for requests that were never sent: their group failed first.
    pub(super) fn abandon(self) -> Vec<Finisher> {
        self.jobs
            .into_iter()
            .map(|job| -> Finisher {
                Box::new(move |commit| {
                    let _ = job.reply.send(commit.and(Err(StoreError::Unavailable(
                        "the write group failed before this ingest ran".into(),
                    ))));
                })
            })
            .collect()
    }

    /// The fold's statement as a pipeline step; `statement` is [`INGEST`] prepared on `c`.
    pub(super) fn step(
        self,
        c: Arc<Conn>,
        statement: Statement,
        fan_out: FanOut,
    ) -> Step<'static, StepRun> {
        Box::pin(async move {
            let jobs = self.jobs;
            let requests: Vec<&IngestRequest> = jobs.iter().map(|j| &j.request).collect();
            let result = run(&c, &statement, &requests).await;
            drop(requests);
            let (outcomes, signals, filters) = match result {
                Ok(done) => done,
                Err(e) => {
                    let finishers = jobs
                        .into_iter()
                        .map(|job| -> Finisher {
                            let e = e.clone();
                            Box::new(move |commit| {
                                let _ = job.reply.send(commit.and(Err(e)));
                            })
                        })
                        .collect();
                    return StepRun {
                        result: Err(e),
                        signals: Vec::new(),
                        finishers,
                    };
                }
            };
            for (job, outcome) in jobs.iter().zip(&outcomes) {
                fan_out.learn(&job.request, outcome);
            }
            for (key, learnt) in filters {
                fan_out.learn_routes(key, learnt);
            }
            let finishers = jobs
                .into_iter()
                .zip(outcomes)
                .map(|(job, outcome)| -> Finisher {
                    Box::new(move |commit| {
                        let _ = job.reply.send(commit.map(|()| outcome));
                    })
                })
                .collect();
            StepRun {
                result: Ok(()),
                signals,
                finishers,
            }
        })
    }
}

/// What a fold's statement answered: each request's outcome, the configs that got work, and the
/// configs it listed for the node to learn.
type Answered = (
    Vec<IngestOutcome>,
    Vec<StoreSignal>,
    Vec<(FanOutKey, KeyRoutes)>,
);

/// Runs a fold's statement: each request's outcome, and the configs that got work. Its only
/// error is the server's (the statement failed and aborted the group's transaction): the
/// group's `COMMIT` is sent behind it without waiting for its answer, so an answer that cannot
/// be read must not fail requests whose hooks that `COMMIT` stores (see `interpret`).
async fn run(c: &Conn, statement: &Statement, jobs: &[&IngestRequest]) -> StoreResult<Answered> {
    let p = FoldParams::new(jobs);
    // Nothing awaited before the query: it is sent on this step's first poll (see `pipeline`).
    let rows = c
        .query(
            statement,
            &[
                &p.key_app,
                &p.key_product,
                &p.key_event,
                &p.app,
                &p.product,
                &p.event,
                &p.id,
                &p.body,
                &now_millis(),
                &WORK_CHANNEL,
                &p.marks,
                &p.offsets,
                &p.values,
                &p.known_key,
                &p.known_config,
                &p.known_filter,
                &p.known_ordering,
                &p.known_pos,
            ],
        )
        .await
        .map_err(pg_err)?;
    match rows.first().map(|row| interpret(row, &p)) {
        Some(Ok(done)) => Ok(done),
        Some(Err(e)) => Ok(unread(jobs.len(), e)),
        None => Ok(unread(
            jobs.len(),
            StoreError::Corrupt("ingest answered no row".into()),
        )),
    }
}

/// Each request's outcome and the configs woken, from the fold's answer.
fn interpret(row: &tokio_postgres::Row, p: &FoldParams<'_>) -> StoreResult<Answered> {
    let new_apps: Vec<&str> = col(row, 0)?;
    let new_ids: Vec<&str> = col(row, 1)?;
    let fan_out: Vec<i64> = col(row, 2)?;
    let woken: Vec<String> = col(row, 3)?;
    let queued_per_hook: Option<Vec<i64>> = col(row, 5)?;
    let unknown_routes: Option<&str> = col(row, 6)?;
    let mut outcomes = vec![IngestOutcome::default(); p.job_key.len()];
    let mut owners = Vec::with_capacity(new_ids.len());
    for slot in new_apps.into_iter().zip(new_ids) {
        let Some(&j) = p.owner.get(&slot) else {
            return Err(StoreError::Corrupt(format!(
                "ingest returned a hook it was not given: {:?}",
                slot.1
            )));
        };
        outcomes[j].new_hooks += 1;
        owners.push(j);
    }
    if let Some(per_hook) = queued_per_hook {
        // A filter is among the configs: each new hook's own count, in the same (seq) order.
        for (owner, queued) in owners.iter().zip(per_hook) {
            outcomes[*owner].queued += queued.max(0) as usize;
        }
    } else {
        for (outcome, key) in outcomes.iter_mut().zip(&p.job_key) {
            // A new hook cannot have queue rows yet: each is queued once per subscribed config.
            let configs = fan_out.get(*key).copied().unwrap_or_default().max(0) as usize;
            outcome.queued = outcome.new_hooks * configs;
        }
    }
    let signals = woken
        .into_iter()
        .map(|config_id| StoreSignal::NewWork { config_id })
        .collect();
    let mut filters = Vec::new();
    // What cannot be learnt is only not learnt: the counts above stand.
    let listed = match unknown_routes.map(learnt).transpose() {
        Ok(listed) => listed.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "an ingest's configs to learn could not be read");
            Vec::new()
        }
    };
    for (ordinal, learnt) in listed {
        let key = ordinal.checked_sub(1).and_then(|k| {
            let (product, event) = *p.key_kind.get(k)?;
            Some(((*p.key_app.get(k)?).to_owned(), product, event))
        });
        if let Some(key) = key {
            filters.push((key, learnt));
        }
    }
    Ok((outcomes, signals, filters))
}

/// The server ran the fold but its answer could not be read: the hooks are stored, so the
/// requests succeed (their counts unknown, 0), and the engine looks at every queue instead of
/// the woken ones.
fn unread(requests: usize, e: StoreError) -> Answered {
    tracing::error!(error = %e, "an ingest's answer could not be read; its hooks are stored");
    (
        vec![IngestOutcome::default(); requests],
        vec![StoreSignal::Resync],
        Vec::new(),
    )
}

impl PostgresStore {
    pub(super) async fn ingest(
        &self,
        app_key: &str,
        product: Product,
        event: Event,
        hooks: Vec<ValidatedHook>,
    ) -> StoreResult<IngestOutcome> {
        let mut request = IngestRequest {
            app_key: app_key.to_owned(),
            product,
            event,
            hooks,
            answers: None,
        };
        // On the request's task: the writer's connection only checks the answers.
        let (rows, learnt, routes) = self.fan_out.rows_and_routes(&request);
        request.answers = routes.map(|routes| Answers::compute(routes, &request.hooks));
        if rows > ROWS_IN_THE_WRITER {
            return self.ingest_beside_the_writer(request, learnt).await;
        }
        let (reply, answer) = oneshot::channel();
        self.refuse_if_stuck(super::writer::Lane::Ingests)?;
        self.submit(Job::Ingest(IngestJob::new(request, rows, reply)))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// A wide ingest (see [`ROWS_IN_THE_WRITER`]): its statement alone, committed at once
    /// (the server's `synchronous_commit`, on), on a pooled connection, one at a time per node,
    /// tenant by tenant ([`Turns`](super::turns::Turns)). Its `NOTIFY`s come back to this node
    /// through the listener (they are not the writer's), so the engine hears of the work as
    /// other nodes do. One whose fan-out the node has not `learnt` takes no turn: it is only
    /// assumed wide ([`UNLEARNT_CONFIGS`]), and a tenant's first batch of 20 hooks to one
    /// config should not wait behind another tenant's wide ingests.
    async fn ingest_beside_the_writer(
        &self,
        request: IngestRequest,
        learnt: bool,
    ) -> StoreResult<IngestOutcome> {
        let _turn = if learnt {
            Some(self.wide_ingests.take(&request.app_key).await?)
        } else {
            None
        };
        let c = self.reader().await?;
        let statement = prepared(&c, INGEST).await?;
        let (outcomes, _, filters) = run(&c, &statement, &[&request]).await?;
        let outcome = outcomes.into_iter().next().unwrap_or_default();
        self.fan_out.learn(&request, &outcome);
        for (key, learnt) in filters {
            self.fan_out.learn_routes(key, learnt);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: &str, body: serde_json::Value) -> ValidatedHook {
        ValidatedHook {
            hook_id: id.into(),
            json: body.to_string(),
            id_generated: false,
        }
    }

    fn request(
        app_key: &str,
        hooks: Vec<ValidatedHook>,
        routes: Option<Arc<KeyRoutes>>,
    ) -> IngestRequest {
        let answers = routes.map(|r| Answers::compute(r, &hooks));
        IngestRequest {
            app_key: app_key.into(),
            product: Product::Sms,
            event: Event::ConversionBlock,
            hooks,
            answers,
        }
    }

    /// The statement's `$11`..`$18` for a fold: answers line up with the hooks sent (a hookId an
    /// earlier request of the fold sent is skipped with its answers), each key's configs are
    /// listed once with their positions, and a request computed against another list of its
    /// key's configs than the fold's falls back (no marks).
    #[test]
    fn a_folds_answers_line_up_with_its_hooks_and_name_their_configs_once_per_key() {
        use serde_json::json;
        let listed = r#"[[1,"fa","{\"x\":1}",null],[1,"oa",null,"to"]]"#;
        let learn = || match crate::store::postgres::routes::learnt(listed).map(|mut l| l.pop()) {
            Ok(Some((_, routes))) => Arc::new(routes),
            other => panic!("not learnt: {}", other.is_ok()),
        };
        let (routes, other_list) = (learn(), learn());
        let jobs = [
            request(
                "a",
                vec![
                    hook("h1", json!({"x": 1, "to": "k1"})),
                    hook("h2", json!({"x": 2, "to": "k2"})),
                ],
                Some(routes.clone()),
            ),
            request("b", vec![hook("g1", json!({"x": 1}))], None),
            request(
                "a",
                vec![hook("h3", json!({"x": 1, "to": 7})), hook("h1", json!({}))],
                Some(routes),
            ),
            request("a", vec![hook("h5", json!({"x": 1}))], Some(other_list)),
        ];
        let refs: Vec<&IngestRequest> = jobs.iter().collect();
        let p = FoldParams::new(&refs);
        assert_eq!(p.id, ["h1", "h2", "g1", "h3", "h5"]);
        assert_eq!(p.job_key, [0, 1, 0, 0]);
        assert_eq!(p.marks, [Some("11"), Some("01"), None, Some("12"), None]);
        assert_eq!(p.offsets, [Some(0), Some(2), None, Some(4), None]);
        assert_eq!(p.values, [None, Some("k1"), None, Some("k2"), None, None]);
        assert_eq!(p.known_key, [1, 1]);
        assert_eq!(p.known_config, ["fa", "oa"]);
        assert_eq!(p.known_filter, [Some(r#"{"x":1}"#), None]);
        assert_eq!(p.known_ordering, [None, Some("to")]);
        assert_eq!(p.known_pos, [1, 2]);
    }

    /// The groups the ingest lane takes (within `ROWS_PER_GROUP` of `group_weight`) are each one
    /// folded statement: 1.5 MiB requests go two to a group, where by their rows all five would.
    #[test]
    fn a_group_of_the_ingest_lane_is_one_folded_statement() {
        use crate::store::fair::FairQueue;
        let large = |n: usize| {
            let hooks = vec![hook(
                &format!("h{n}"),
                serde_json::json!("x".repeat(1_500_000)),
            )];
            IngestJob::new(request("a", hooks, None), 1, oneshot::channel().0)
        };
        let mut queue = FairQueue::default();
        for n in 0..5 {
            queue.push(large(n), |j: &IngestJob| Some(j.app_key()));
        }
        let mut sizes = Vec::new();
        while !queue.is_empty() {
            let group = queue.take_group(1024, ROWS_PER_GROUP, IngestJob::group_weight);
            sizes.push(group.len());
            let mut fold = Fold::default();
            for job in group {
                assert!(fold.fits(&job), "a second statement in the group");
                fold.push(job);
            }
        }
        assert_eq!(sizes, [2, 2, 1]);
    }

    /// Without answers in the fold, the answer parameters stay empty (the statement skips them).
    #[test]
    fn a_fold_without_answers_sends_none() {
        let jobs = [request("a", vec![hook("h1", serde_json::json!({}))], None)];
        let refs: Vec<&IngestRequest> = jobs.iter().collect();
        let p = FoldParams::new(&refs);
        assert!(p.marks.is_empty() && p.offsets.is_empty() && p.values.is_empty());
        assert!(p.known_key.is_empty());
    }
}
