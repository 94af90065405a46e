//! The engine's work: claims that turn queued hooks into PENDING deliveries (leased to this node),
//! and the reads of open deliveries it sends and resumes. Leases of existing deliveries, and the
//! sweep for those whose lease is free, are the cluster's (`cluster`).

use hookline_wire::Product;
use tokio_postgres::GenericClient;

use super::PostgresStore;
use super::cluster::Node;
use super::columns::{col, delivery_row, open_delivery};
use super::connection::pg_err;
use super::deliveries::delivery_hooks;
use crate::model::{SendableDelivery, StoredHook, WebhookConfig, now_millis};
use crate::store::rows::{DELIVERY_COLUMNS, parse_event, parse_status};
use crate::store::{Claim, ClaimedBatch, OpenDelivery, StoreResult};

/// Takes up to `batches` x `max_hooks` queued hooks of one event (the event of the config's
/// oldest queued hook: FIFO across events) and turns them into PENDING deliveries. Rows another
/// transaction has locked (another node's claim) are skipped, never taken twice.
async fn claim_event(
    c: &impl GenericClient,
    config_id: &str,
    app_key: &str,
    product: Product,
    max_hooks: u32,
    batches: u32,
    node: &Node,
) -> StoreResult<Vec<ClaimedBatch>> {
    let Some(row) = c
        .query_opt(
            "SELECT event FROM queue WHERE config_id = $1 ORDER BY hook_seq LIMIT 1 \
             FOR UPDATE SKIP LOCKED",
            &[&config_id],
        )
        .await
        .map_err(pg_err)?
    else {
        return Ok(Vec::new());
    };
    let event = parse_event(&col::<String>(&row, 0)?)?;
    let max_hooks = max_hooks.max(1);
    let limit = i64::from(max_hooks) * i64::from(batches);
    let rows = c
        .query(
            "WITH taken AS ( \
                 DELETE FROM queue WHERE (config_id, event, hook_seq) IN ( \
                     SELECT config_id, event, hook_seq FROM queue \
                     WHERE config_id = $1 AND event = $2 ORDER BY hook_seq LIMIT $3 \
                     FOR UPDATE SKIP LOCKED) \
                 RETURNING hook_seq) \
             SELECT h.seq, h.hook_id, h.body FROM taken t JOIN hooks h ON h.seq = t.hook_seq \
             ORDER BY h.seq",
            &[&config_id, &event.as_str(), &limit],
        )
        .await
        .map_err(pg_err)?;
    let mut taken = Vec::with_capacity(rows.len());
    for r in &rows {
        taken.push((
            col::<i64>(r, 0)?,
            col::<String>(r, 1)?,
            col::<String>(r, 2)?,
        ));
    }
    let now = now_millis();
    let mut claimed = Vec::with_capacity(batches as usize);
    // Every batch's delivery row and hook positions in two statements, not two per batch.
    let mut hooks_ids: Vec<String> = Vec::with_capacity(batches as usize);
    let (mut pos_hooks_id, mut pos_position, mut pos_seq) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = taken.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<(i64, String, String)> = rows.by_ref().take(max_hooks as usize).collect();
        let hooks_id = hookline_wire::generate_id();
        for (position, (seq, _, _)) in chunk.iter().enumerate() {
            pos_hooks_id.push(hooks_id.clone());
            pos_position.push(position as i64);
            pos_seq.push(*seq);
        }
        hooks_ids.push(hooks_id.clone());
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
    if hooks_ids.is_empty() {
        return Ok(claimed);
    }
    c.execute(
        "INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, status, \
         attempt_count, next_attempt_at, created_at, updated_at, lease_owner, lease_expires_at) \
         SELECT id, $2, $3, $4, $5, 'PENDING', 0, NULL, $6, $6, $7, $8 \
         FROM unnest($1::TEXT[]) AS id",
        &[
            &hooks_ids,
            &app_key,
            &config_id,
            &product.as_str(),
            &event.as_str(),
            &now,
            &&*node.id,
            &node.lease_until(),
        ],
    )
    .await
    .map_err(pg_err)?;
    c.execute(
        "INSERT INTO delivery_hooks (hooks_id, position, hook_seq) \
         SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[])",
        &[&pos_hooks_id, &pos_position, &pos_seq],
    )
    .await
    .map_err(pg_err)?;
    Ok(claimed)
}

impl PostgresStore {
    pub(super) async fn claim_batches(
        &self,
        config: &WebhookConfig,
        max_hooks: u32,
        max_batches: u32,
    ) -> StoreResult<Claim> {
        let config_id = config.id.clone();
        let app_key = config.app_key.clone();
        let product = config.product;
        // Not through the writer: a claim in the writer's group waits for the group's ingests
        // (hundreds of statements) to commit, and a config's next batch waits for its claim, so
        // delivery throughput would be bounded by the ingest group's latency. A claim is its own
        // short transaction on a pooled connection instead, committed (durable) before it
        // answers. It never waits for a lock (SKIP LOCKED; the rows it writes are new), so it
        // cannot deadlock with the writer. PostgreSQL shares WAL flushes between concurrent
        // commits, so claims still group-commit with each other and with the writer.
        let mut c = self.reader().await?;
        // Rolled back if dropped unfinished (error or cancellation), never left open in the pool.
        let c = c.transaction().await.map_err(pg_err)?;
        let claimed = async {
            let mut batches = Vec::new();
            let wanted = max_batches.max(1) as usize;
            while batches.len() < wanted {
                let room = (wanted - batches.len()) as u32;
                let claimed = claim_event(
                    &*c, &config_id, &app_key, product, max_hooks, room, &self.node,
                )
                .await?;
                if claimed.is_empty() {
                    break;
                }
                batches.extend(claimed);
            }
            let more = c
                .query_opt(
                    "SELECT 1 FROM queue WHERE config_id = $1 LIMIT 1",
                    &[&config_id],
                )
                .await
                .map_err(pg_err)?;
            // No QueueDrained signal: another node's NewWork reaches the engine on another
            // connection, in no order with this one. `drained` lets the engine decide.
            let drained = more.is_none();
            StoreResult::Ok(Claim {
                contended: batches.is_empty() && !drained,
                batches,
                drained,
            })
        }
        .await;
        let claim = claimed?;
        c.commit().await.map_err(pg_err)?;
        Ok(claim)
    }

    pub(super) async fn load_delivery(
        &self,
        hooks_id: &str,
    ) -> StoreResult<Option<SendableDelivery>> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {} FROM deliveries WHERE hooks_id = $1",
                    DELIVERY_COLUMNS
                ),
                &[&hooks_id],
            )
            .await
            .map_err(pg_err)?;
        let Some(row) = row.as_ref().map(delivery_row).transpose()? else {
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
        let rows = c
            .query(
                "SELECT hooks_id, config_id, COALESCE(next_attempt_at, 0) FROM deliveries \
                 WHERE status IN ('PENDING', 'RETRYING')",
                &[],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(open_delivery).collect()
    }

    pub(super) async fn configs_with_queued_hooks(&self) -> StoreResult<Vec<String>> {
        let c = self.reader().await?;
        let rows = c
            .query(
                "SELECT DISTINCT config_id FROM queue ORDER BY config_id",
                &[],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }
}
