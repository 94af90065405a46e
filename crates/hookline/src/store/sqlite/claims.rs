//! The engine's work: claims that turn queued hooks into PENDING deliveries, and the reads of open
//! deliveries it sends and resumes. One process owns every delivery, so a lease is always granted
//! and membership is always [`Membership::alone`].

use std::fmt::Write as _;

use foldhash::{HashMapExt, HashSetExt};
use hookline_wire::{Event, Product};
use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use super::deliveries::{
    NewDeliveries, insert_deliveries, insert_delivery_rows, load_delivery_row, sendable,
};
use super::writer::WriteTx;
use crate::model::{DeliveryStatus, Millis, SendableDelivery, StoredHook, WebhookConfig};
use crate::store::ordered;
use crate::store::rows::{parse_event, parse_status};
use crate::store::{
    Claim, ClaimedBatch, Lease, Membership, OpenDelivery, StoreError, StoreResult, StoreSignal,
};

/// `hooks_id, config_id, due` as selected by the open-delivery queries.
fn open_delivery(r: &Row<'_>) -> rusqlite::Result<OpenDelivery> {
    Ok(OpenDelivery {
        hooks_id: r.get(0)?,
        config_id: r.get(1)?,
        next_attempt_at: r.get(2)?,
    })
}

/// The event of the config's oldest queued hook (index `queue_by_config_seq`: one probe).
pub(super) const OLDEST_QUEUED: &str =
    "SELECT event FROM queue WHERE config_id = ?1 ORDER BY hook_seq LIMIT 1";
pub(super) const TAKE_QUEUED: &str = "SELECT q.hook_seq, h.hook_id, h.body, h.created_at \
     FROM queue q JOIN hooks h ON h.seq = q.hook_seq \
     WHERE q.config_id = ?1 AND q.event = ?2 ORDER BY q.hook_seq LIMIT ?3";
pub(super) const DELETE_QUEUED: &str =
    "DELETE FROM queue WHERE config_id = ?1 AND event = ?2 AND hook_seq <= ?3";

fn oldest_queued(tx: &mut WriteTx<'_, '_>, config_id: &str) -> StoreResult<Option<Event>> {
    let event: Option<String> = tx
        .hot
        .oldest_queued
        .query_row(params![config_id], |r| r.get(0))
        .optional()?;
    event.as_deref().map(parse_event).transpose()
}

/// What one claim took: its deliveries, and whether the config's queue is empty after it.
struct Taken {
    batches: Vec<ClaimedBatch>,
    drained: bool,
    /// What is left queued waits for an ordering key (`Claim::held_by_order`).
    held_by_order: bool,
    /// The highest hook seq taken (`None`: none taken).
    newest_seq: Option<i64>,
}

/// The ordering keys of the config's open deliveries: their later hooks stay queued. Read
/// through the open deliveries (a status index), never through `deliveries_by_config`, which
/// walks the config's whole history: `+` keeps the planner off that index. Not `DISTINCT`: the
/// caller's hash set drops repeats for less than SQLite's temporary index did.
const HELD_KEYS: &str = "SELECT dh.ordering_key FROM deliveries d \
     JOIN delivery_hooks dh ON dh.delivery_seq = d.seq \
     WHERE d.status IN ('PENDING', 'RETRYING') AND +d.config_id = ?1 \
     AND dh.ordering_key IS NOT NULL";
/// One page of the config's queue in acceptance order, after the hook `?2`: index only (the
/// index `queue_by_config_seq` carries `ordering_key`, and the primary key's `event`). Held keys
/// are dropped by the caller with a hash set: in SQL, a `NOT IN` filter let one claim walk the
/// whole queue in search of free rows.
const QUEUED_IN_ORDER: &str = "SELECT hook_seq, event, ordering_key FROM queue \
     WHERE config_id = ?1 AND hook_seq > ?2 ORDER BY hook_seq LIMIT ?3";
/// Removes the claimed hooks of the event `?2` from `?3` to `?4` (every queued row of the config
/// there is taken: `ordered::taken_rows`): one descent of the primary key, then the next cell.
const DELETE_TAKEN_RANGE: &str = "DELETE FROM queue WHERE config_id = ?1 AND event = ?2 \
     AND hook_seq BETWEEN ?3 AND ?4";
/// Removes the claimed hooks `?2` (a JSON array of seqs) that are not in a range, one descent of
/// `queue_by_config_seq` each. (By the primary key, one statement per event, this cost 5 % more
/// of the claim's instructions: each step of that descent compares the event's text too.)
const DELETE_TAKEN: &str = "DELETE FROM queue WHERE config_id = ?1 \
     AND hook_seq IN (SELECT value FROM json_each(?2))";
/// The hooks `?1` (a JSON array of seqs) names, each with its seq.
const HOOKS_BY_SEQS: &str = "SELECT h.seq, h.hook_id, h.body, h.created_at \
     FROM json_each(?1) j JOIN hooks h ON h.seq = j.value";
/// A delivery's hooks with their keys: `?2` is a JSON object from each hook's seq to its key
/// (`null`: none), in queue order. The seq is also the hook's position: a delivery's hooks are in
/// seq order, and `position` only orders them. No function call per row (`->>` on pairs cost 40 %
/// more, measured on SQLite 3.40, and a statement journal: see `deliveries::INSERT_DELIVERIES`).
const INSERT_KEYED_DELIVERY_HOOKS: &str = "INSERT OR IGNORE INTO delivery_hooks (delivery_seq, \
     position, hook_seq, ordering_key) SELECT ?1, h.key, h.key, h.value FROM json_each(?2) h";

/// The claim of a config with an `orderingKey` (see `store::ordered`): reads the keys its open
/// deliveries hold and its queue without them, lets [`ordered::Planner`] choose, and writes the
/// chosen batches with each hook's key on `delivery_hooks`, so the keys stay held, by stored
/// rows alone, until the delivery ends. Statements per claim: a delete per run of rows taken
/// that lie together in the queue and one for the rest, one read of the hooks taken, two inserts
/// per batch (the seqs and keys go in as JSON arrays).
fn take_ordered(
    tx: &mut WriteTx<'_, '_>,
    config: &ClaimTarget,
    max_hooks: u32,
    wanted: usize,
) -> StoreResult<Taken> {
    let max_hooks = max_hooks.max(1) as usize;
    let conn = tx.conn;
    let mut held = ordered::KeySet::with_capacity(HELD_KEYS_EXPECTED);
    for key in conn
        .prepare_cached(HELD_KEYS)?
        .query_map(params![config.id], |r| r.get(0))?
    {
        held.insert(key?);
    }
    // The queue without the held keys' rows, page by page, until the planner has enough or
    // READ_LIMIT rows are read.
    let mut planner = ordered::Planner::new(wanted, max_hooks);
    let (mut after, mut read) = (i64::MIN, 0usize);
    // Every row read, in queue order: which taken rows lie next to each other.
    let mut read_seqs: Vec<i64> = Vec::with_capacity(ordered::PAGE_ROWS as usize);
    let mut page = conn.prepare_cached(QUEUED_IN_ORDER)?;
    'pages: while read < ordered::READ_LIMIT {
        let mut rows = page.query(params![config.id, after, ordered::PAGE_ROWS])?;
        let mut in_page = 0;
        while let Some(r) = rows.next()? {
            in_page += 1;
            after = r.get(0)?;
            read_seqs.push(after);
            let key = r.get_ref(2)?.as_str_or_null().map_err(not_text)?;
            if key.is_some_and(|k| held.contains(k)) {
                continue;
            }
            let row = ordered::QueuedRow {
                hook_seq: after,
                event: parse_event(r.get_ref(1)?.as_str().map_err(not_text)?)?,
                key: key.map(str::to_owned),
            };
            if planner.push(row) == ordered::Flow::Enough {
                break 'pages;
            }
        }
        read += in_page;
        if (in_page as i64) < ordered::PAGE_ROWS {
            break; // the end of the queue
        }
    }
    drop(page);
    let plan = planner.finish();
    let mut batches = Vec::with_capacity(plan.batches.len());
    let newest_seq = plan
        .batches
        .iter()
        .flat_map(|b| b.rows.iter().map(|r| r.hook_seq))
        .max();
    if !plan.batches.is_empty() {
        let seqs: Vec<i64> = plan
            .batches
            .iter()
            .flat_map(|b| b.rows.iter().map(|r| r.hook_seq))
            .collect();
        let seqs_json = encode(&seqs)?;
        let taken = ordered::taken_rows(&read_seqs, &plan);
        let mut deleted = 0;
        if !taken.ranges.is_empty() {
            let mut delete = conn.prepare_cached(DELETE_TAKEN_RANGE)?;
            for (event, first, last) in &taken.ranges {
                deleted += delete.execute(params![config.id, event.as_str(), first, last])?;
            }
        }
        if !taken.singles.is_empty() {
            deleted += conn
                .prepare_cached(DELETE_TAKEN)?
                .execute(params![config.id, encode(&taken.singles)?])?;
        }
        if deleted != seqs.len() {
            // Every row taken was read in this transaction: another count is a broken invariant
            // (e.g. two queue rows of one hook and config), and the claim is rolled back.
            return Err(StoreError::Corrupt(format!(
                "{deleted} of {} queued hooks of {} taken",
                seqs.len(),
                config.id
            )));
        }
        let mut hooks: foldhash::HashMap<i64, StoredHook> =
            foldhash::HashMap::with_capacity(seqs.len());
        let mut read = conn.prepare_cached(HOOKS_BY_SEQS)?;
        let mut found = read.query(params![seqs_json])?;
        while let Some(r) = found.next()? {
            let hook = StoredHook {
                hook_id: r.get(1)?,
                json: r.get(2)?,
                accepted_at: r.get(3)?,
            };
            hooks.insert(r.get(0)?, hook);
        }
        drop(found);
        for planned in &plan.batches {
            let hooks_id = hookline_wire::generate_id();
            let keyed = keys_by_seq(&planned.rows)?;
            let new = NewDeliveries {
                app_key: &config.app_key,
                config_id: &config.id,
                product: config.product,
                event: planned.event,
                status: DeliveryStatus::Pending,
                now: tx.now,
            };
            let (_, delivery_seq) =
                insert_delivery_rows(tx.hot, &new, std::slice::from_ref(&hooks_id))?;
            let written = conn
                .prepare_cached(INSERT_KEYED_DELIVERY_HOOKS)?
                .execute(params![delivery_seq, keyed])?;
            if written != planned.rows.len() {
                return Err(StoreError::Unavailable(format!(
                    "{written} of {} hooks of delivery {hooks_id} written",
                    planned.rows.len()
                )));
            }
            let hooks = planned
                .rows
                .iter()
                .map(|row| {
                    hooks.remove(&row.hook_seq).ok_or_else(|| {
                        StoreError::Corrupt(format!(
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
                    event: planned.event,
                    attempt_count: 0,
                    hooks,
                },
            });
        }
    }
    let queue_left = oldest_queued(tx, &config.id)?.is_some();
    Ok(Taken {
        batches,
        drained: !queue_left,
        held_by_order: plan.held(queue_left),
        newest_seq,
    })
}

/// Held keys a claim makes room for before it reads them (a config's open deliveries times
/// their hooks, typically): the set then rarely grows while it is read.
const HELD_KEYS_EXPECTED: usize = 1_024;

fn not_text(e: rusqlite::types::FromSqlError) -> StoreError {
    StoreError::Corrupt(format!(
        "a queue row's event or ordering key is not text: {e}"
    ))
}

/// A batch's rows as the JSON object `INSERT_KEYED_DELIVERY_HOOKS` reads: seq to key.
fn keys_by_seq(rows: &[ordered::QueuedRow]) -> StoreResult<String> {
    let mut object = String::with_capacity(rows.len() * 24 + 2);
    object.push('{');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            object.push(',');
        }
        let _ = write!(object, "\"{}\":", row.hook_seq);
        match &row.key {
            // Most keys need no escaping (a recipient number, an id): written as they are.
            Some(key) if !key.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') => {
                object.push('"');
                object.push_str(key);
                object.push('"');
            }
            Some(key) => object.push_str(&encode(key)?),
            None => object.push_str("null"),
        }
    }
    object.push('}');
    Ok(object)
}

/// A value as the JSON text a statement reads back with `json_each`.
fn encode<T: serde::Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode claim rows: {e}")))
}

/// Takes up to `wanted` batches of at most `max_hooks` queued hooks each, every batch of one
/// event: the event of the oldest queued hook first (FIFO across events), its hooks in order,
/// then the next oldest event while batches are wanted. Each batch becomes a PENDING delivery.
///
/// Per event taken: one read of one row more than fits (that row tells whether the event has
/// more without another query), one delete, and two inserts for all its deliveries. The oldest
/// event is probed before each event and once more when the batches are full but the last
/// event had no more, to know whether the queue is empty.
fn take_batches(
    tx: &mut WriteTx<'_, '_>,
    config: &ClaimTarget,
    max_hooks: u32,
    wanted: usize,
) -> StoreResult<Taken> {
    let max_hooks = max_hooks.max(1) as usize;
    let mut batches = Vec::new();
    let mut newest_seq = None;
    let mut next = oldest_queued(tx, &config.id)?;
    loop {
        let Some(event) = next else {
            return Ok(Taken {
                batches,
                drained: true,
                held_by_order: false,
                newest_seq,
            });
        };
        let limit = (wanted - batches.len()) * max_hooks;
        let mut rows: Vec<(i64, String, String, i64)> = tx
            .hot
            .take_queued
            .query_map(
                params![config.id, event.as_str(), (limit + 1) as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let event_has_more = rows.len() > limit;
        rows.truncate(limit);
        let Some(last_seq) = rows.last().map(|t| t.0) else {
            return Err(StoreError::Corrupt(format!(
                "queue of {} names hooks that do not exist",
                config.id
            )));
        };
        tx.hot
            .delete_queued
            .execute(params![config.id, event.as_str(), last_seq])?;
        newest_seq = newest_seq.max(Some(last_seq));
        let count = rows.len().div_ceil(max_hooks);
        let hooks_ids: Vec<String> = (0..count).map(|_| hookline_wire::generate_id()).collect();
        let seqs: Vec<i64> = rows.iter().map(|t| t.0).collect();
        let new = NewDeliveries {
            app_key: &config.app_key,
            config_id: &config.id,
            product: config.product,
            event,
            status: DeliveryStatus::Pending,
            now: tx.now,
        };
        insert_deliveries(tx.hot, &new, &hooks_ids, &seqs, max_hooks)?;
        let mut rows = rows.into_iter();
        for hooks_id in hooks_ids {
            batches.push(ClaimedBatch {
                delivery: SendableDelivery {
                    hooks_id,
                    config_id: config.id.clone(),
                    app_key: config.app_key.clone(),
                    product: config.product,
                    event,
                    attempt_count: 0,
                    hooks: rows
                        .by_ref()
                        .take(max_hooks)
                        .map(|(_, hook_id, json, accepted_at)| StoredHook {
                            hook_id,
                            json,
                            accepted_at,
                        })
                        .collect(),
                },
            });
        }
        if event_has_more {
            // The batches are full (this event alone filled them) and hooks are left.
            return Ok(Taken {
                batches,
                drained: false,
                held_by_order: false,
                newest_seq,
            });
        }
        next = oldest_queued(tx, &config.id)?;
        if batches.len() >= wanted {
            return Ok(Taken {
                drained: next.is_none(),
                held_by_order: false,
                batches,
                newest_seq,
            });
        }
    }
}

/// The config fields a claim needs.
struct ClaimTarget {
    id: String,
    app_key: String,
    product: Product,
    /// The config has an `orderingKey`: its claims keep each key's hooks in order.
    ordered: bool,
}

impl SqliteStore {
    pub(super) async fn claim_batches(
        &self,
        config: &WebhookConfig,
        max_hooks: u32,
        max_batches: u32,
    ) -> StoreResult<Claim> {
        let target = ClaimTarget {
            id: config.id.clone(),
            app_key: config.app_key.clone(),
            product: config.product,
            ordered: config.ordering_key.is_some(),
        };
        // Answered before the commit (unless it took a hook stored in its own transaction), so
        // `drained` is left false: the QueueDrained signal comes in commit order with the
        // NewWork signals instead.
        self.write_uncommitted(move |tx| {
            let wanted = max_batches.max(1) as usize;
            // Configs without an orderingKey keep the cheap claim (a few statements per event).
            let taken = if target.ordered {
                take_ordered(tx, &target, max_hooks, wanted)?
            } else {
                take_batches(tx, &target, max_hooks, wanted)?
            };
            if taken.drained {
                tx.signals.push(StoreSignal::QueueDrained {
                    config_id: target.id,
                });
            }
            // A hook stored by an ingest earlier in this transaction is sent only once it
            // commits (see `WriteTx::stored_from`): such a claim answers at the commit.
            let took_unstored = tx
                .stored_from
                .is_some_and(|first| taken.newest_seq.is_some_and(|newest| newest >= first));
            let claim = Claim {
                batches: taken.batches,
                drained: false,
                contended: false,
                held_by_order: taken.held_by_order,
            };
            Ok((claim, took_unstored))
        })
        .await
    }

    pub(super) async fn lease_delivery(&self, hooks_id: &str) -> StoreResult<Lease> {
        // The records queued before this lease are written first, as in every store: a retry
        // must send what its last record left in the delivery. A failed delivery of several
        // keys gives hooks back to the queue in that record (`AttemptOutcome::split_by_key`);
        // read before it, the retry would carry them while a claim sends them again.
        self.flush().await?;
        // One process owns every delivery: an open delivery is always this node's to send.
        Ok(match self.load_delivery(hooks_id).await? {
            Some(delivery) => Lease::Granted(delivery),
            None => Lease::Unavailable,
        })
    }

    pub(super) async fn due_deliveries(
        &self,
        until: Millis,
        limit: u32,
        configs: &[String],
    ) -> StoreResult<Vec<OpenDelivery>> {
        let configs = serde_json::to_string(configs)
            .map_err(|e| StoreError::Corrupt(format!("config ids as JSON: {e}")))?;
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT hooks_id, config_id, COALESCE(next_attempt_at, 0) AS due \
                     FROM deliveries WHERE status IN ('PENDING', 'RETRYING') \
                     AND COALESCE(next_attempt_at, 0) <= ?1 \
                     AND config_id IN (SELECT value FROM json_each(?3)) ORDER BY due LIMIT ?2",
                )?
                .query_map(params![until, limit, configs], open_delivery)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    pub(super) async fn membership(&self) -> StoreResult<Membership> {
        Ok(Membership::alone())
    }

    pub(super) async fn load_delivery(
        &self,
        hooks_id: &str,
    ) -> StoreResult<Option<SendableDelivery>> {
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

    pub(super) async fn open_deliveries(&self) -> StoreResult<Vec<OpenDelivery>> {
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

    pub(super) async fn configs_with_queued_hooks(&self) -> StoreResult<Vec<String>> {
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
}
