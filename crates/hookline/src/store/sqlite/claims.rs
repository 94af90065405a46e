//! The engine's work: claims that turn queued hooks into PENDING deliveries, and the reads of open
//! deliveries it sends and resumes. One process owns every delivery, so a lease is always granted
//! and membership is always [`Membership::ALONE`].

use hookline_wire::{Event, Product};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::deliveries::{insert_delivery, load_delivery_row, sendable};
use crate::model::{
    DeliveryStatus, DeliverySummary, Millis, SendableDelivery, StoredHook, WebhookConfig,
    now_millis,
};
use crate::store::rows::parse_status;
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

impl SqliteStore {
    pub(super) async fn claim_batches(
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

    pub(super) async fn lease_delivery(&self, hooks_id: &str) -> StoreResult<Lease> {
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
    ) -> StoreResult<Vec<OpenDelivery>> {
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

    pub(super) async fn membership(&self) -> StoreResult<Membership> {
        Ok(Membership::ALONE)
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
