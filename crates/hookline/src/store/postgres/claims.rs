//! The engine's work: claims that turn queued hooks into PENDING deliveries (leased to this node),
//! and the reads of open deliveries it sends and resumes. Leases of existing deliveries, and the
//! sweep for those whose lease is free, are the cluster's (`cluster`).

use foldhash::{HashMapExt, HashSetExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::PostgresStore;
use super::cluster::Node;
use super::columns::{col, delivery_row, open_delivery};
use super::connection::{
    Conn, InTransaction, Step, execute, pg_err, pipeline, prepared, query, query_one, query_opt,
};
use super::deliveries::delivery_hooks;
use super::turns::Turns;
use super::writer::{Durability, quiet_job};
use crate::model::{SendableDelivery, StoredHook, WebhookConfig, now_millis};
use crate::store::ordered;
use crate::store::rows::{DELIVERY_COLUMNS, parse_event, parse_status};
use crate::store::{Claim, ClaimedBatch, OpenDelivery, StoreError, StoreResult};

/// The turns of claims (see `turns`): `at_once` a node (`--pg-claims-at-once`, 4 by default),
/// a quarter of them (at least one) a tenant. A claim keeps a backend of the database busy: a
/// flooding tenant's hundred configs claiming on every pooled connection left every other
/// statement (a quiet tenant's ingest and claim) a sixteenth of a two-core database, and the
/// tenant's own claims side by side went slower than one after another (BENCHMARKS.md, "Claims
/// take turns on PostgreSQL"). A config claims one set of batches at a time anyway (the
/// engine), so a tenant's one busy config waits only for other tenants' claims; each node has
/// its own turns. A database with many cores may take more (the flag).
pub(super) fn claim_turns(at_once: usize, wait: std::time::Duration) -> Turns {
    let at_once = at_once.max(1);
    Turns::new(at_once, (at_once / 4).max(1), wait)
}

/// One claim, in one statement: picks the event of the config's oldest queued hook (FIFO across
/// events), takes up to `$2` of its queued hooks among the config's first `4 x $2` (the
/// `window`), cuts them into batches of `$4` in queue order
/// (batch k is the delivery `$3[k]`, ids made by the caller), writes those PENDING deliveries
/// leased to this node and their hook lists (`delivery_hook_lists`, a row per delivery), and
/// answers the hooks with their delivery, plus whether
/// the queue held more than was taken. Rows another transaction has locked (a config's deletion,
/// a claim of a node of an older version) are skipped, never taken twice, never waited for.
///
/// Claims of one config run one at a time across nodes (a config has one home,
/// `Membership::share`, so two nodes claim it side by side only while the membership changes):
/// each waits first for the config's claim lock ([`CONFIG_CLAIM_LOCK`], an advisory transaction
/// lock, its own statement before this one, so this statement's snapshot is taken after the
/// claim before it committed). A claim
/// beside another node's claim of the config used to read past every row that claim had locked,
/// twice (the oldest row's event, then the window): two nodes' claims read 25-27 buffers per
/// hook taken instead of 16-17. Waiting, it reads the rows the other claim took as gone, and
/// takes those after them (BENCHMARKS.md, "PostgreSQL: claims of one config one at a time across
/// nodes"). The wait is bounded (`NodeOptions::claim_lock_wait`): a claim whose node froze or
/// lost the database with the claim's transaction open (the server blocked writing the answer,
/// or the COMMIT never sent) holds the lock until the server drops that connection, and the
/// claims of the other nodes then run beside it (see `EventClaim::take`). One node never claims a
/// config twice at once (the engine), so its claims never wait. Rows are still locked as they
/// are read (`FOR UPDATE SKIP LOCKED`): that lock is what keeps a hook from being taken twice,
/// whatever else reads the queue.
///
/// `more`: a claim that took all it could (`$2`) says so without counting: the engine claims
/// again, and the next claim finds what is left or finds the queue drained (when the queue held
/// exactly `$2`, that is one claim more, and the config's concurrency counts this one as
/// saturated: every slot got a full batch). Otherwise the queue is counted: every statement of
/// one query sees the same snapshot, so the queue as counted still holds the rows taken; it held
/// more when it counts more than were taken (counting stops at one past the most a claim takes).
/// Rows skipped because another transaction holds them count: the queue is not drained, the
/// claim is `contended`. The count walks the index from the config's first entry, past the
/// entries of rows earlier claims deleted that no vacuum has removed yet (about a second's worth,
/// at least 10,000, between the node's vacuums of the queue, see `vacuum`): skipping it when the
/// claim is full saves that walk on every claim of a busy config.
///
/// Its plan is generic (made once, without the values), so it is written to leave the planner
/// one good plan whatever the queue and the hooks table hold:
/// - The config's rows are read through the queue's key `(config_id, hook_seq)` (migration 16),
///   never by walking an index of every config's rows in hook order until the config's turn
///   comes (`queue_by_hook`, until migration 15 dropped it): with `config_id = $1` the planner
///   may take such an index, and the walk costs every row queued for other configs before this
///   one's oldest (a config far ahead of the others read tens of thousands per claim). As a
///   range (`>= $1 AND <= $1`) `config_id` is not a constant to the planner, so only the key
///   gives the order `config_id, hook_seq`.
/// - The event is the first row's of the window (`first_value`, over the rows in the order they
///   are read: an `ORDER BY` in the window function would sort the whole window, the planner not
///   knowing that the locking subquery's rows come ordered), so the config's rows are read once:
///   as a separate read of the oldest row (`ev`, until 2026-12), each claim walked the index
///   entries of rows deleted by earlier claims twice.
/// - The event is filtered among the rows read (`w`, the window: the key in order, each row
///   locked as it is read, rows another claim holds skipped, `LIMIT 4 x $2`), never in the
///   scan: with `event = ...` beside the range, the generic plan made on an empty queue was a
///   bitmap scan and a sort of every row the config had queued (BENCHMARKS.md, "One index
///   fewer on the queue, withdrawn"). The outer `LIMIT $2`
///   stops the read once it has its hooks: a config of one event reads `$2` rows. Hooks of
///   the event beyond the window stay for a later claim, behind the other events' older ones.
///   Rows of other events read into the window stay locked (and queued) until this claim
///   commits; no other claim of the config runs meanwhile (its claim lock).
/// - The rows to take are picked once (`picked`, materialized) and deleted by key. As
///   `DELETE ... WHERE (key) IN (SELECT ... LIMIT $2 FOR UPDATE SKIP LOCKED)` the generic plan
///   made while the queue's statistics said "empty" (a new database, or before autovacuum's
///   first ANALYZE) was a nested loop that ran the locking subquery again for every queued row:
///   quadratic in the queue (claims of 20-30 s on 4,000 queued rows, ended by the statement
///   timeout: the ~60 s stalls of the one-event benchmark), and each rerun could skip different
///   rows, so a claim could take more than `$2` (a batch without a delivery id). The rows are
///   deleted by their `ctid` (a TID scan, whatever the statistics say; the row lock taken in the
///   same statement keeps it valid), not by key: by key, a generic plan may read every row the
///   config has queued to find the few picked.
/// - Each hook's text is looked up by its key (`LATERAL ... LIMIT 1`, which the planner cannot
///   flatten into a join): as a join, the generic plan expects thousands of taken rows and
///   hashes the whole hooks table on every claim.
pub(crate) const CLAIM: &str = "WITH picked AS MATERIALIZED ( \
         SELECT row_id, event FROM ( \
             SELECT row_id, event, \
                 first_value(event) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) \
                     AS oldest \
             FROM ( \
                 SELECT ctid AS row_id, event FROM queue \
                 WHERE config_id >= $1 AND config_id <= $1 \
                 ORDER BY config_id, hook_seq LIMIT $2::BIGINT * 4 FOR UPDATE SKIP LOCKED) w \
             ) o \
         WHERE event = oldest LIMIT $2), \
     ev AS (SELECT event FROM picked LIMIT 1), \
     taken AS ( \
         DELETE FROM queue WHERE ctid = ANY (ARRAY(SELECT row_id FROM picked)) \
         RETURNING hook_seq), \
     placed AS MATERIALIZED ( \
         SELECT hook_seq, ($3::TEXT[])[(n - 1) / $4 + 1] AS hooks_id, (n - 1) % $4 AS position \
         FROM (SELECT hook_seq, row_number() OVER (ORDER BY hook_seq) AS n FROM taken) t), \
     batches AS MATERIALIZED ( \
         SELECT hooks_id, array_agg(hook_seq ORDER BY position) AS seqs, \
             int8range(min(hook_seq), max(hook_seq), '[]') AS seq_range \
         FROM placed GROUP BY hooks_id), \
     made AS ( \
         INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, status, \
             attempt_count, next_attempt_at, created_at, updated_at, lease_owner, \
             lease_expires_at) \
         SELECT b.hooks_id, $5, $1, $6, ev.event, 'PENDING', 0, NULL, $7, $7, $8, $9 \
         FROM batches b CROSS JOIN ev), \
     listed AS ( \
         INSERT INTO delivery_hook_lists (hooks_id, hook_seqs, hook_range) \
         SELECT hooks_id, seqs, seq_range FROM batches), \
     more AS ( \
         SELECT CASE WHEN (SELECT count(*) FROM taken) >= $2 THEN TRUE \
             ELSE (SELECT count(*) FROM (SELECT 1 FROM queue WHERE config_id = $1 LIMIT $2 + 1) q) \
                 > (SELECT count(*) FROM taken) END AS more) \
     SELECT m.more, ev.event, p.hooks_id, h.hook_id, h.body, h.created_at \
     FROM more m LEFT JOIN ev ON TRUE \
     LEFT JOIN (placed p CROSS JOIN LATERAL ( \
         SELECT hook_id, body, created_at FROM hooks WHERE seq = p.hook_seq LIMIT 1) h) ON TRUE \
     ORDER BY p.hook_seq";

/// The config's claim lock, waited for before the claim, in its transaction (see [`CLAIM`]);
/// released at the commit. `NodeOptions::claim_lock_wait` bounds the wait (`EventClaim::take`).
pub(crate) const CONFIG_CLAIM_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('hookline.claim:' || $1, 0))";

/// A claim's transaction: committed without waiting for the WAL flush (see `claim_batches`),
/// planned once, without sequential scans (see `connection::NO_SEQSCAN` and `GENERIC_PLANS`).
const CLAIM_BEGIN: &str = "BEGIN; SET LOCAL synchronous_commit = off; \
     SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan";

/// Frees the leases of deliveries a claim may have made although it failed (its answer was lost
/// after the server ran it): the sweep then sends them, instead of this node renewing leases on
/// deliveries its engine never heard of.
const FREE_UNCLAIMED: &str = "UPDATE deliveries SET lease_owner = NULL, lease_expires_at = NULL \
     WHERE hooks_id = ANY($1::TEXT[]) AND lease_owner = $2";

/// Serialises the ordered claims of one config across nodes: a claim reads which keys open
/// deliveries hold, and another node's claim under way (its deliveries not committed yet) would
/// be invisible to it. Tried, never waited for: a claim that does not get it answers
/// `contended`, and the engine claims again in a moment. Released at the commit, after which the
/// next claim's statements see the committed deliveries (READ COMMITTED: a snapshot per
/// statement, taken after the lock). Whether it was taken is also kept in the transaction's
/// setting `hookline.ordered_claim`, which the reads sent with it in one round trip check
/// ([`HELD_KEYS`], [`QUEUED_IN_ORDER`]): a claim that did not get the lock reads nothing.
const ORDER_LOCK: &str = "SELECT set_config('hookline.ordered_claim', \
     pg_try_advisory_xact_lock(hashtextextended('hookline.ordered-claim:' || $1, 0))::TEXT, \
     TRUE)::BOOLEAN";
/// The ordering keys of the config's open deliveries: their later hooks stay queued. Read
/// through the open deliveries (`deliveries_by_status`), never through `deliveries_by_config`,
/// which walks the config's whole history: compared as an expression, `config_id` offers the
/// generic plan no index. Reads nothing without the lock ([`ORDER_LOCK`]; the setting's check is
/// a one-time filter, not a per-row one).
const HELD_KEYS: &str = concat!(
    "SELECT DISTINCT k.ordering_key FROM deliveries d \
     JOIN delivery_hook_lists l ON l.hooks_id = d.hooks_id \
     CROSS JOIN LATERAL unnest(l.hook_keys) AS k(ordering_key) \
     WHERE d.status IN ('PENDING', 'RETRYING') AND (d.config_id || '') = $1 \
     AND k.ordering_key IS NOT NULL AND ",
    "current_setting('hookline.ordered_claim', TRUE) = 'true'"
);
/// One page of the config's queue in acceptance order, after the hook `$2` (keyset paging
/// through the queue's key `(config_id, hook_seq)`: the row comparison positions the index
/// scan). Held keys are dropped by the caller with a hash set: in SQL, `NOT (ordering_key = ANY($held))` under a
/// generic plan compares every row with every held key (10,000 rows x 1,000 keys per claim).
/// Reads nothing without the lock, as [`HELD_KEYS`].
const QUEUED_IN_ORDER: &str = concat!(
    "SELECT hook_seq, event, ordering_key FROM queue \
     WHERE (config_id, hook_seq) > ($1, $2) AND config_id <= $1 AND ",
    "current_setting('hookline.ordered_claim', TRUE) = 'true'",
    " ORDER BY config_id, hook_seq LIMIT $3"
);
/// A row per queue row deleted (the claim compares their number with the plan's).
const DELETE_PLANNED: &str = "DELETE FROM queue WHERE config_id = $1 \
     AND (event, hook_seq) IN (SELECT * FROM unnest($2::TEXT[], $3::BIGINT[])) RETURNING 1";
/// The planned deliveries (`$1`, `$2`: one per batch) and their hooks (`$9`..`$12`: one per
/// hook, the delivery it goes to, its place there, its seq and its key value).
const INSERT_PLANNED: &str = "WITH made AS ( \
         INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, status, \
             attempt_count, next_attempt_at, created_at, updated_at, lease_owner, \
             lease_expires_at) \
         SELECT t.hooks_id, $3, $4, $5, t.event, 'PENDING', 0, NULL, $6, $6, $7, $8 \
         FROM unnest($1::TEXT[], $2::TEXT[]) AS t(hooks_id, event)), \
     listed AS ( \
         INSERT INTO delivery_hook_lists (hooks_id, hook_seqs, hook_keys, hook_range) \
         SELECT hooks_id, array_agg(seq ORDER BY position), \
             array_agg(ordering_key ORDER BY position), int8range(min(seq), max(seq), '[]') \
         FROM unnest($9::TEXT[], $10::BIGINT[], $11::BIGINT[], $12::TEXT[]) \
             AS u(hooks_id, position, seq, ordering_key) \
         GROUP BY hooks_id) \
     SELECT 1";
const HOOKS_BY_SEQ: &str =
    "SELECT seq, hook_id, body, created_at FROM hooks WHERE seq = ANY($1::BIGINT[])";
const QUEUE_LEFT: &str =
    "SELECT EXISTS (SELECT 1 FROM queue WHERE config_id >= $1 AND config_id <= $1)";

/// What one claim statement took.
struct Taken {
    batches: Vec<ClaimedBatch>,
    hooks: usize,
    more: bool,
}

/// One claim of a config's next event (see [`EventClaim::take`]).
struct EventClaim<'a> {
    c: &'a Conn,
    /// A delivery id for each batch it may make.
    hooks_ids: &'a [String],
    config: &'a WebhookConfig,
    max_hooks: u32,
    node: &'a Node,
}

impl EventClaim<'_> {
    /// Runs [`CLAIM`] once: up to `hooks_ids.len()` x `max_hooks` queued hooks of one event, as
    /// PENDING deliveries leased to `node`. Its own transaction, in one round trip, committed
    /// without waiting for the WAL flush (see `claim_batches`). The config's claim lock is waited
    /// for first, at most `node.claim_lock_wait`; a claim that does not get it in that time
    /// (another node's claim is slow, or stuck: its node frozen or cut off while the claim's
    /// transaction is open) runs again without it, beside that claim, passing over the rows it
    /// holds (`SKIP LOCKED`), so one stuck claim never stops a config on every node.
    async fn take(&self) -> StoreResult<Taken> {
        if let Some(taken) = self.once(true).await? {
            return Ok(taken);
        }
        crate::metrics::claim_lock_missed();
        tracing::debug!(
            config_id = self.config.id,
            "the config's claim lock is held: claiming beside it"
        );
        self.once(false)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a claim without the lock waited for it".into()))
    }

    /// One claim's transaction; with `locking`, after the config's claim lock. `None`: the lock
    /// was not had within `node.claim_lock_wait` (nothing was done).
    async fn once(&self, locking: bool) -> StoreResult<Option<Taken>> {
        let EventClaim {
            c,
            hooks_ids,
            config,
            max_hooks,
            node,
        } = *self;
        let (config_id, app_key, product) = (&config.id, &config.app_key, config.product);
        let limit = i64::from(max_hooks) * hooks_ids.len() as i64;
        let now = now_millis();
        let (lock, statement) = (
            prepared(c, CONFIG_CLAIM_LOCK).await?,
            prepared(c, CLAIM).await?,
        );
        // BEGIN with its settings, the config's claim lock (waited for at most
        // `claim_lock_wait`, then the connection's own lock timeout again), the claim and COMMIT
        // are sent together (one round trip): nothing depends on an answer. Keep it so: this
        // transaction is not an `InTransaction`, and a caller that stops waiting (`answered`)
        // drops it after its first poll, which must have sent everything up to the COMMIT. A
        // statement that fails leaves the transaction aborted, and the COMMIT behind it rolls
        // back.
        let (max, product_name, owner, lease) = (
            i64::from(max_hooks),
            product.as_str(),
            &*node.id,
            node.lease_until(),
        );
        let params: [&(dyn ToSql + Sync); 9] = [
            &config_id,
            &limit,
            &hooks_ids,
            &max,
            &app_key,
            &product_name,
            &now,
            &owner,
            &lease,
        ];
        let lock_params: [&(dyn ToSql + Sync); 1] = [&config_id];
        let wait_for_lock = format!(
            "SET LOCAL lock_timeout = {}",
            node.claim_lock_wait.as_millis().max(1)
        );
        let locked = async {
            if !locking {
                return Ok(());
            }
            let (wait, locked, reset) = tokio::join!(
                biased;
                c.batch_execute(&wait_for_lock),
                c.query(&lock, &lock_params),
                c.batch_execute("SET LOCAL lock_timeout TO DEFAULT"),
            );
            wait?;
            locked?;
            reset
        };
        let (begin, locked, rows, commit) = tokio::join!(
            biased;
            c.batch_execute(CLAIM_BEGIN),
            locked,
            c.query(&statement, &params),
            c.batch_execute("COMMIT"),
        );
        begin.map_err(pg_err)?;
        if let Err(e) = locked {
            if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                // The transaction was aborted at the lock and rolled back by the COMMIT:
                // nothing was done.
                return Ok(None);
            }
            return Err(pg_err(e));
        }
        let rows = rows.map_err(pg_err)?;
        commit.map_err(pg_err)?;
        let Some(first) = rows.first() else {
            return Err(crate::store::StoreError::Corrupt(
                "a claim answered no row".into(),
            ));
        };
        let more: bool = col(first, 0)?;
        let event = col::<Option<String>>(first, 1)?;
        let mut batches: Vec<ClaimedBatch> = Vec::new();
        let mut hooks = 0;
        if let Some(event) = event {
            let event = parse_event(&event)?;
            for r in &rows {
                let Some(hooks_id) = col::<Option<String>>(r, 2)? else {
                    continue;
                };
                let hook = StoredHook {
                    hook_id: col(r, 3)?,
                    json: col(r, 4)?,
                    accepted_at: col(r, 5)?,
                };
                hooks += 1;
                // Rows come in queue order, so a batch's hooks are next to each other.
                match batches.last_mut() {
                    Some(batch) if batch.delivery.hooks_id == hooks_id => {
                        batch.delivery.hooks.push(hook)
                    }
                    _ => batches.push(ClaimedBatch {
                        delivery: SendableDelivery {
                            hooks_id,
                            config_id: config_id.to_owned(),
                            app_key: app_key.to_owned(),
                            product,
                            event,
                            attempt_count: 0,
                            hooks: vec![hook],
                        },
                    }),
                }
            }
        }
        Ok(Some(Taken {
            batches,
            hooks,
            more,
        }))
    }
}

/// What an ordered claim took, and what it left.
struct OrderedTaken {
    batches: Vec<ClaimedBatch>,
    drained: bool,
    held_by_order: bool,
}

/// A pipeline step (see `pipeline`): `statement`, prepared on `c`, with `params`; its rows.
fn rows<'a>(
    c: &'a Conn,
    statement: &'a Statement,
    params: Vec<&'a (dyn ToSql + Sync)>,
) -> Step<'a, StoreResult<Vec<Row>>> {
    Box::pin(async move { c.query(statement, &params).await.map_err(pg_err) })
}

/// The answers of a pipeline's steps, one per call, in order (an error if there are fewer).
fn answers_in_order(answers: Vec<StoreResult<Vec<Row>>>) -> impl FnMut() -> StoreResult<Vec<Row>> {
    let mut answers = answers.into_iter();
    move || {
        answers.next().unwrap_or_else(|| {
            Err(StoreError::Corrupt(
                "a pipelined step gave no answer".into(),
            ))
        })
    }
}

/// The statements of an ordered claim, in its transaction (see `PostgresStore::claim_ordered`).
/// `None`: another claim of the config holds its lock, or changed the queue under this one.
async fn take_ordered(
    c: &Conn,
    config: &WebhookConfig,
    max_hooks: u32,
    wanted: usize,
    node: &Node,
) -> StoreResult<Option<OrderedTaken>> {
    // One round trip for the lock, the held keys and the queue's first page: the server runs
    // them in this order, so the reads come after the lock (and read nothing without it).
    let (lock, held_keys, queued) = (
        prepared(c, ORDER_LOCK).await?,
        prepared(c, HELD_KEYS).await?,
        prepared(c, QUEUED_IN_ORDER).await?,
    );
    let first_after = i64::MIN;
    let mut next = answers_in_order(
        pipeline(vec![
            rows(c, &lock, vec![&config.id]),
            rows(c, &held_keys, vec![&config.id]),
            rows(
                c,
                &queued,
                vec![&config.id, &first_after, &ordered::PAGE_ROWS],
            ),
        ])
        .await,
    );
    // The lock first: a claim without it is `contended`, whatever its reads answered.
    let locked: bool = match next()?.first() {
        Some(row) => col(row, 0)?,
        None => false,
    };
    if !locked {
        return Ok(None);
    }
    let (held_rows, first_page) = (next()?, next()?);
    let mut held = ordered::KeySet::with_capacity(held_rows.len());
    for r in &held_rows {
        held.insert(col(r, 0)?);
    }
    // The queue without the held keys' rows, page by page (a prefix of it: a later hook is
    // never read without the earlier ones of its key), until the planner has enough or
    // READ_LIMIT rows are read.
    let mut planner = ordered::Planner::new(wanted, max_hooks as usize);
    let (mut after, mut read) = (first_after, 0usize);
    let mut page = Some(first_page);
    'pages: while read < ordered::READ_LIMIT {
        let page = match page.take() {
            Some(first) => first,
            None => {
                query(
                    c,
                    QUEUED_IN_ORDER,
                    &[&config.id, &after, &ordered::PAGE_ROWS],
                )
                .await?
            }
        };
        read += page.len();
        for r in &page {
            after = col(r, 0)?;
            // Read in place: a held key's row (often most of a page) is skipped without copying.
            let key: Option<&str> = col(r, 2)?;
            if key.is_some_and(|k| held.contains(k)) {
                continue;
            }
            let row = ordered::QueuedRow {
                hook_seq: after,
                event: parse_event(col::<&str>(r, 1)?)?,
                key: key.map(str::to_owned),
            };
            if planner.push(row) == ordered::Flow::Enough {
                break 'pages;
            }
        }
        if (page.len() as i64) < ordered::PAGE_ROWS {
            break; // the end of the queue
        }
    }
    let plan = planner.finish();
    if plan.batches.is_empty() {
        // Nothing free to go (a held key's hooks, or an empty queue): nothing to write.
        let queue_left: bool = col(&query_one(c, QUEUE_LEFT, &[&config.id]).await?, 0)?;
        return Ok(Some(OrderedTaken {
            batches: Vec::new(),
            drained: !queue_left,
            held_by_order: plan.held(queue_left),
        }));
    }
    let planned = plan.batches.iter().flat_map(|b| b.rows.iter());
    let events: Vec<&str> = planned.clone().map(|r| r.event.as_str()).collect();
    let seqs: Vec<i64> = planned.map(|r| r.hook_seq).collect();
    let hooks_ids: Vec<String> = plan
        .batches
        .iter()
        .map(|_| hookline_wire::generate_id())
        .collect();
    let batch_events: Vec<&str> = plan.batches.iter().map(|b| b.event.as_str()).collect();
    let (mut link_ids, mut positions, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for (hooks_id, batch) in hooks_ids.iter().zip(&plan.batches) {
        for (position, row) in batch.rows.iter().enumerate() {
            link_ids.push(hooks_id.as_str());
            positions.push(position as i64);
            keys.push(row.key.as_deref());
        }
    }
    let now = now_millis();
    let (product, lease_until) = (config.product.as_str(), node.lease_until());
    // The writes, the bodies and whether the queue holds more: one round trip. A delete that
    // finds fewer rows than planned makes the caller roll all of it back.
    let (delete, insert, bodies_by_seq, queue_left) = (
        prepared(c, DELETE_PLANNED).await?,
        prepared(c, INSERT_PLANNED).await?,
        prepared(c, HOOKS_BY_SEQ).await?,
        prepared(c, QUEUE_LEFT).await?,
    );
    let mut next = answers_in_order(
        pipeline(vec![
            rows(c, &delete, vec![&config.id, &events, &seqs]),
            rows(
                c,
                &insert,
                vec![
                    &hooks_ids,
                    &batch_events,
                    &config.app_key,
                    &config.id,
                    &product,
                    &now,
                    &&*node.id,
                    &lease_until,
                    &link_ids,
                    &positions,
                    &seqs,
                    &keys,
                ],
            ),
            rows(c, &bodies_by_seq, vec![&seqs]),
            rows(c, &queue_left, vec![&config.id]),
        ])
        .await,
    );
    // The delete first: a queue changed under the claim makes it `contended`, whatever the
    // statements after it answered.
    if next()?.len() != seqs.len() {
        // Without row locks: a config deleted (its queue cancelled), or a claim of another
        // kind, took rows meanwhile. Rolled back; the engine looks again.
        return Ok(None);
    }
    let (_, body_rows, left_rows) = (next()?, next()?, next()?);
    let mut bodies: foldhash::HashMap<i64, StoredHook> =
        foldhash::HashMap::with_capacity(seqs.len());
    for r in body_rows {
        let hook = StoredHook {
            hook_id: col(&r, 1)?,
            json: col(&r, 2)?,
            accepted_at: col(&r, 3)?,
        };
        bodies.insert(col(&r, 0)?, hook);
    }
    let mut batches = Vec::with_capacity(plan.batches.len());
    for (hooks_id, batch) in hooks_ids.into_iter().zip(&plan.batches) {
        let hooks = batch
            .rows
            .iter()
            .map(|row| {
                bodies.remove(&row.hook_seq).ok_or_else(|| {
                    crate::store::StoreError::Corrupt(format!(
                        "queue of {} names hook {} that does not exist",
                        config.id, row.hook_seq
                    ))
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        batches.push(ClaimedBatch {
            delivery: SendableDelivery {
                hooks_id,
                config_id: config.id.clone(),
                app_key: config.app_key.clone(),
                product: config.product,
                event: batch.event,
                attempt_count: 0,
                hooks,
            },
        });
    }
    let queue_left: bool = match left_rows.first() {
        Some(row) => col(row, 0)?,
        None => return Err(StoreError::Corrupt("QUEUE_LEFT answered no row".into())),
    };
    Ok(Some(OrderedTaken {
        batches,
        drained: !queue_left,
        held_by_order: plan.held(queue_left),
    }))
}

impl PostgresStore {
    /// The claim of a config with an `orderingKey` (see `store::ordered`): under the config's
    /// lock ([`ORDER_LOCK`]), reads the keys its open deliveries hold and its queue without
    /// them, lets [`ordered::Planner`] choose, and writes the batches with each hook's key on
    /// `delivery_hook_lists` (the keys stay held, by stored rows alone, until the delivery ends).
    /// Several statements in one transaction: only ordered configs pay the round trips. Committed
    /// without waiting for the WAL flush, as every claim (see `claim_batches`).
    async fn claim_ordered(
        &self,
        config: &WebhookConfig,
        max_hooks: u32,
        wanted: usize,
    ) -> StoreResult<Claim> {
        let tx = InTransaction::begin(
            self.reader().await?,
            "BEGIN; SET LOCAL synchronous_commit = off",
        )
        .await?;
        let taken = take_ordered(tx.conn()?, config, max_hooks, wanted, &self.node).await;
        let OrderedTaken {
            batches,
            drained,
            held_by_order,
        } = match taken {
            Ok(Some(taken)) => taken,
            Ok(None) => {
                tx.end("ROLLBACK").await?;
                return Ok(Claim {
                    contended: true,
                    ..Claim::default()
                });
            }
            Err(e) => {
                // A connection that cannot roll back leaves the pool (see `InTransaction`).
                if let Err(rollback) = tx.end("ROLLBACK").await {
                    tracing::warn!(error = %rollback, "an ordered claim could not roll back");
                }
                return Err(e);
            }
        };
        let ids = || {
            batches
                .iter()
                .map(|b| b.delivery.hooks_id.clone())
                .collect::<Vec<_>>()
        };
        if let Err(e) = tx.end("COMMIT").await {
            self.free_unclaimed(ids());
            return Err(e);
        }
        self.node
            .held
            .hold(batches.iter().map(|b| b.delivery.hooks_id.as_str()));
        self.node
            .churn
            .taken(batches.iter().map(|b| b.delivery.hooks.len()).sum());
        Ok(Claim {
            drained,
            contended: false,
            held_by_order,
            batches,
        })
    }

    /// Tests only: takes one of `app_key`'s claim turns and holds it.
    #[cfg(test)]
    pub(crate) async fn claim_turn_for_test(
        &self,
        app_key: &str,
    ) -> StoreResult<super::turns::Turn<'_>> {
        self.claims.take(app_key).await
    }

    pub(super) async fn claim_batches(
        &self,
        config: &WebhookConfig,
        max_hooks: u32,
        max_batches: u32,
    ) -> StoreResult<Claim> {
        let max_hooks = max_hooks.max(1);
        let wanted = max_batches.max(1) as usize;
        // The deliveries a claim makes need the jobs lane (their records, their leases'
        // renewals): with that lane stuck, they would be sent and never recorded, and sent again
        // by another node once their leases expire.
        self.refuse_if_stuck(super::writer::Lane::Jobs)?;
        // Taken before a pooled connection: a claim waiting for its turn holds nothing.
        let _turn = self.claims.take(&config.app_key).await?;
        if config.ordering_key.is_some() {
            return self.claim_ordered(config, max_hooks, wanted).await;
        }
        // Not through the writer: a claim in the writer's group waits for the group's ingests
        // to commit, and a config's next batch waits for its claim, so delivery throughput would
        // be bounded by the ingest group's latency. A claim is its own short transaction on a
        // pooled connection instead. It cannot deadlock with the writer: the one lock it waits
        // for (its config's claim lock, briefly) it takes before any other, and after that it
        // waits for none (SKIP LOCKED; the rows it writes are new). The wait holds this node's
        // claim turn: a tenant's other configs wait behind it at most `claim_lock_wait`.
        //
        // Its commit does not wait for the WAL flush (`synchronous_commit = off`): a claim lost
        // in a database crash is harmless. Its hooks are still queued then and are claimed again
        // (at-least-once, with a new hooksId, as the embedded store's claims answered before
        // their commit); and the WAL is written in order, so any later durable commit (an
        // ingest) makes it durable too.
        let c = self.reader().await?;
        let mut batches: Vec<ClaimedBatch> = Vec::new();
        let mut drained = false;
        while batches.len() < wanted {
            let room = wanted - batches.len();
            let hooks_ids: Vec<String> = (0..room).map(|_| hookline_wire::generate_id()).collect();
            let claim = EventClaim {
                c: &c,
                hooks_ids: &hooks_ids,
                config,
                max_hooks,
                node: &self.node,
            };
            let taken = match claim.take().await {
                Ok(taken) => taken,
                Err(e) => {
                    self.free_unclaimed(hooks_ids);
                    if batches.is_empty() {
                        return Err(e);
                    }
                    // The earlier statements committed: what they took goes out.
                    tracing::warn!(error = %e, "a claim's next event could not be taken");
                    break;
                }
            };
            drained = !taken.more;
            let full = taken.hooks as u64 == u64::from(max_hooks) * room as u64;
            batches.extend(taken.batches);
            // The queue held more than one event's worth (or hooks another claim holds): the next
            // event's hooks fill the room left.
            if !taken.more || full || taken.hooks == 0 {
                break;
            }
        }
        self.node
            .held
            .hold(batches.iter().map(|b| b.delivery.hooks_id.as_str()));
        self.node
            .churn
            .taken(batches.iter().map(|b| b.delivery.hooks.len()).sum());
        // No QueueDrained signal: another node's NewWork reaches the engine on another
        // connection, in no order with this one. `drained` lets the engine decide.
        Ok(Claim {
            contended: batches.is_empty() && !drained,
            batches,
            drained,
            held_by_order: false,
        })
    }

    /// After a failed claim: frees the leases of the deliveries it may have made anyway (the
    /// statement ran but its answer was lost), so the sweep sends them. Through the writer,
    /// relaxed, not awaited.
    fn free_unclaimed(&self, hooks_ids: Vec<String>) {
        let node = self.node.id.clone();
        let job = quiet_job(
            Durability::Relaxed,
            "freeing the leases of a failed claim",
            move |c| async move {
                execute(&c, FREE_UNCLAIMED, &[&hooks_ids, &&*node]).await?;
                Ok(())
            },
        );
        if let Err(e) = self.submit(job) {
            tracing::warn!(error = %e, "leases of a failed claim not freed");
        }
    }

    pub(super) async fn load_delivery(
        &self,
        hooks_id: &str,
    ) -> StoreResult<Option<SendableDelivery>> {
        let c = self.reader().await?;
        let row = query_opt(
            &c,
            &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE hooks_id = $1"),
            &[&hooks_id],
        )
        .await?;
        let Some(row) = row
            .as_ref()
            .map(|r| delivery_row(r, &self.node.clock))
            .transpose()?
        else {
            return Ok(None);
        };
        if !parse_status(&row.status)?.is_open() {
            return Ok(None);
        }
        let hooks = delivery_hooks(&c, &row.hooks_id).await?;
        row.into_sendable(hooks).map(Some)
    }

    pub(super) async fn open_deliveries(&self) -> StoreResult<Vec<OpenDelivery>> {
        let c = self.reader().await?;
        let rows = query(
            &c,
            "SELECT hooks_id, config_id, COALESCE(next_attempt_at, 0) FROM deliveries \
             WHERE status IN ('PENDING', 'RETRYING')",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| open_delivery(r, &self.node.clock))
            .collect()
    }

    pub(super) async fn configs_with_queued_hooks(&self) -> StoreResult<Vec<String>> {
        let c = self.reader().await?;
        let rows = query(
            &c,
            "SELECT DISTINCT config_id FROM queue ORDER BY config_id",
            &[],
        )
        .await?;
        rows.iter().map(|r| col(r, 0)).collect()
    }
}
