//! The delivery log and what is done with logged deliveries: listing and reading them,
//! redelivering one, replaying a config's, and the delivery rows and their hooks that config
//! deletions and redeliveries write and leases read.

use super::PostgresStore;
use super::cluster::DbClock;
use super::columns::{col, delivery_row};
use super::connection::{Conn, execute, query, query_one, query_opt};
use super::notify::{WAITING_CHANNEL, WORK_CHANNEL, notify};
use super::writer::Durability;
use crate::model::{
    AttemptErrorKind, DeliveryFilter, DeliveryStatus, DeliverySummary, Millis, Page, PageRequest,
    ReplayFilter, StoredHook, TestSendRecord, now_millis,
};
use crate::store::page::{cursor, page_size, paginate};
use crate::store::rows::{
    AttemptRow, DELIVERY_COLUMNS, DeliveryRow, parse_event, parse_product, request_headers_text,
};
use crate::store::{DeliveryDetail, StoreError, StoreResult, StoreSignal};

/// SQL: the delivery list `l` (a row of `delivery_hook_lists`) holds the hook of seq `$seq` (a
/// parameter or a column). Its first half is the expression of the index
/// `delivery_hook_lists_by_hook` (migration 19, which says why a box), so the lists whose seqs
/// span the hook's are found through it; the second is exact.
macro_rules! list_holds_hook {
    ($seq:literal) => {
        concat!(
            "(box(point(lower(l.hook_range), 0), point(upper(l.hook_range), 1)) \
             @> box(point(",
            $seq,
            "::BIGINT, 0.5), point(",
            $seq,
            "::BIGINT, 0.5)) AND ",
            $seq,
            "::BIGINT = ANY(l.hook_seqs))"
        )
    };
}
pub(super) use list_holds_hook;

/// The lists holding the hook of seq `$1`, as the lookups ask (for the tests of the index).
#[cfg(test)]
pub(crate) const LISTS_HOLDING_HOOK: &str = concat!(
    "SELECT l.hooks_id FROM delivery_hook_lists l WHERE ",
    list_holds_hook!("$1"),
    " ORDER BY l.hooks_id"
);

/// Inserts a delivery with its hooks; `lease` (owner, expiry) when this node is about to send it.
pub(super) async fn insert_delivery(
    c: &Conn,
    summary: &DeliverySummary,
    hook_seqs: &[i64],
    lease: Option<(&str, Millis)>,
) -> StoreResult<()> {
    execute(
        c,
        "WITH made AS ( \
             INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, status, \
             attempt_count, next_attempt_at, created_at, updated_at, lease_owner, \
             lease_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)) \
         INSERT INTO delivery_hook_lists (hooks_id, hook_seqs, hook_range) \
         SELECT $1, $13::BIGINT[], CASE WHEN count(s) = 0 THEN 'empty'::INT8RANGE \
             ELSE int8range(min(s), max(s), '[]') END \
         FROM unnest($13::BIGINT[]) s",
        &[
            &summary.hooks_id,
            &summary.app_key,
            &summary.config_id,
            &summary.product.as_str(),
            &summary.event.as_str(),
            &summary.status.as_str(),
            &i64::from(summary.attempt_count),
            &summary.next_attempt_at,
            &summary.created_at,
            &summary.updated_at,
            &lease.map(|(owner, _)| owner),
            &lease.map(|(_, until)| until),
            &hook_seqs,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn load_delivery_row(
    c: &Conn,
    hooks_id: &str,
    clock: &DbClock,
) -> StoreResult<Option<DeliveryRow>> {
    let row = query_opt(
        c,
        &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE hooks_id = $1"),
        &[&hooks_id],
    )
    .await?;
    row.as_ref().map(|r| delivery_row(r, clock)).transpose()
}

pub(super) async fn delivery_hooks(c: &Conn, hooks_id: &str) -> StoreResult<Vec<StoredHook>> {
    let rows = query(
        c,
        "SELECT h.hook_id, h.body, h.created_at FROM delivery_hook_lists l \
             CROSS JOIN LATERAL unnest(l.hook_seqs) WITH ORDINALITY AS u(seq, position) \
             JOIN hooks h ON h.seq = u.seq WHERE l.hooks_id = $1 ORDER BY u.position",
        &[&hooks_id],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredHook {
                hook_id: col(r, 0)?,
                json: col(r, 1)?,
                accepted_at: col(r, 2)?,
            })
        })
        .collect()
}

/// The hookIds of several deliveries, each in envelope order.
async fn page_hook_ids(
    c: &Conn,
    hooks_ids: &[&str],
) -> StoreResult<std::collections::HashMap<String, Vec<String>>> {
    let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    if hooks_ids.is_empty() {
        return Ok(out);
    }
    let rows = query(
        c,
        "SELECT l.hooks_id, h.hook_id FROM delivery_hook_lists l \
             CROSS JOIN LATERAL unnest(l.hook_seqs) WITH ORDINALITY AS u(seq, position) \
             JOIN hooks h ON h.seq = u.seq \
             WHERE l.hooks_id = ANY($1::TEXT[]) ORDER BY l.hooks_id, u.position",
        &[&hooks_ids],
    )
    .await?;
    for r in &rows {
        out.entry(col(r, 0)?).or_default().push(col(r, 1)?);
    }
    Ok(out)
}

impl PostgresStore {
    pub(super) async fn list_deliveries(
        &self,
        app_key: &str,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliverySummary>> {
        let size = page_size(&page);
        let (after_created, after_id): (Option<i64>, Option<String>) = match &page.cursor {
            Some(c) => {
                let parts = cursor::decode(c, 2).ok_or(StoreError::BadCursor)?;
                let created: i64 = parts[0].parse().map_err(|_| StoreError::BadCursor)?;
                (Some(created), Some(parts[1].clone()))
            }
            None => (None, None),
        };
        let event = filter.event.map(|e| e.as_str());
        let status = filter.status.map(|s| s.as_str());
        // NULL parameters switch their filter off: one statement for every combination.
        let c = self.reader().await?;
        let rows = query(
            &c,
            &format!(
                "SELECT {} FROM deliveries WHERE app_key = $1 \
                     AND ($2::BIGINT IS NULL OR created_at < $2 \
                          OR (created_at = $2 AND hooks_id < $3::TEXT)) \
                     AND ($4::TEXT IS NULL OR config_id = $4) \
                     AND ($5::TEXT IS NULL OR event = $5) \
                     AND ($6::TEXT IS NULL OR status = $6) \
                     AND ($7::BIGINT IS NULL OR created_at >= $7) \
                     AND ($8::BIGINT IS NULL OR created_at < $8) \
                     AND ($9::TEXT IS NULL OR hooks_id IN (SELECT l.hooks_id FROM hooks h \
                          JOIN delivery_hook_lists l \
                              ON {} \
                          WHERE h.app_key = $1 AND h.hook_id = $9)) \
                     ORDER BY created_at DESC, hooks_id DESC LIMIT $10",
                DELIVERY_COLUMNS,
                list_holds_hook!("h.seq"),
            ),
            &[
                &app_key,
                &after_created,
                &after_id,
                &filter.config_id,
                &event,
                &status,
                &filter.since,
                &filter.until,
                &filter.hook_id,
                &i64::from(size + 1),
            ],
        )
        .await?;
        let rows = rows
            .iter()
            .map(|r| delivery_row(r, &self.node.clock))
            .collect::<StoreResult<Vec<_>>>()?;
        // The page's hookIds in one query, not one per delivery.
        let page_ids: Vec<&str> = rows.iter().map(|r| r.hooks_id.as_str()).collect();
        let mut ids = page_hook_ids(&c, &page_ids).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let hook_ids = ids.remove(&row.hooks_id).unwrap_or_default();
            items.push(row.into_summary(hook_ids)?);
        }
        Ok(paginate(items, size, |d| {
            cursor::encode(&[&d.created_at.to_string(), &d.hooks_id])
        }))
    }

    pub(super) async fn get_delivery(
        &self,
        app_key: &str,
        hooks_id: &str,
    ) -> StoreResult<Option<DeliveryDetail>> {
        let c = self.reader().await?;
        let Some(row) = load_delivery_row(&c, hooks_id, &self.node.clock).await? else {
            return Ok(None);
        };
        if row.app_key != app_key {
            return Ok(None);
        }
        let rows = query(
            &c,
            "SELECT number, started_at, duration_ms, status_code, error_kind, \
                 error_message, response_body, request_headers FROM attempts WHERE hooks_id = $1 \
                 ORDER BY number",
            &[&hooks_id],
        )
        .await?;
        let mut attempts = Vec::with_capacity(rows.len());
        for r in &rows {
            let row = AttemptRow {
                number: col(r, 0)?,
                started_at: col(r, 1)?,
                duration_ms: col(r, 2)?,
                status_code: col(r, 3)?,
                error_kind: col(r, 4)?,
                error_message: col(r, 5)?,
                response_body: col(r, 6)?,
                request_headers: col(r, 7)?,
            };
            attempts.push(row.into_record()?);
        }
        let hooks = delivery_hooks(&c, &row.hooks_id).await?;
        let delivery = row.clone().into_sendable(hooks)?;
        let hook_ids = delivery.hooks.iter().map(|h| h.hook_id.clone()).collect();
        Ok(Some(DeliveryDetail {
            summary: row.into_summary(hook_ids)?,
            envelope: delivery.envelope(),
            attempts,
        }))
    }

    pub(super) async fn redeliver(
        &self,
        app_key: &str,
        hooks_id: &str,
        new_hooks_id: String,
    ) -> StoreResult<Option<DeliverySummary>> {
        let app_key = app_key.to_owned();
        let hooks_id = hooks_id.to_owned();
        let clock = self.node.clock.clone();
        self.write(Durability::Durable, move |c| async move {
            let Some(row) = load_delivery_row(&c, &hooks_id, &clock).await? else {
                return Ok((None, Vec::new()));
            };
            if row.app_key != app_key {
                return Ok((None, Vec::new()));
            }
            if row.test {
                // A test send's record is what happened to one sample hook; sending it again
                // would deliver the sample as real work (without the test header).
                return Err(StoreError::Conflict(
                    "hooksId: a test send is not redelivered; send another test instead".to_owned(),
                ));
            }
            // FOR KEY SHARE, as ingest does: a concurrent delete_config (another node) waits for
            // this commit and then cancels the new delivery; one that committed first is seen
            // here and refused, instead of a delivery for a config that no longer exists.
            let config_exists = query_opt(
                &c,
                "SELECT 1 FROM webhook_configs WHERE id = $1 FOR KEY SHARE",
                &[&row.config_id],
            )
            .await?;
            if config_exists.is_none() {
                // Decided before writing anything: the group's transaction stays clean.
                return Err(StoreError::Conflict(format!(
                    "webhookConfigId: the config {} of this delivery was deleted",
                    row.config_id
                )));
            }
            let rows = query(
                &c,
                "SELECT u.seq, h.hook_id FROM delivery_hook_lists l \
                     CROSS JOIN LATERAL unnest(l.hook_seqs) WITH ORDINALITY AS u(seq, position) \
                     JOIN hooks h ON h.seq = u.seq WHERE l.hooks_id = $1 \
                     ORDER BY u.position",
                &[&hooks_id],
            )
            .await?;
            let mut seqs = Vec::with_capacity(rows.len());
            let mut hook_ids = Vec::with_capacity(rows.len());
            for r in &rows {
                seqs.push(col::<i64>(r, 0)?);
                hook_ids.push(col::<String>(r, 1)?);
            }
            let now = now_millis();
            let summary = DeliverySummary::new(
                new_hooks_id,
                &row.app_key,
                &row.config_id,
                parse_product(&row.product)?,
                parse_event(&row.event)?,
                DeliveryStatus::Pending,
                hook_ids,
                now,
            );
            insert_delivery(&c, &summary, &seqs, None).await?;
            // The config's home may be another node: it looks for the config's deliveries at
            // once on this, and finds the new one (free, due now).
            notify(&c, WAITING_CHANNEL, std::slice::from_ref(&row.config_id)).await?;
            Ok((Some(summary), Vec::new()))
        })
        .await
    }

    pub(super) async fn replay(
        &self,
        app_key: &str,
        config_id: &str,
        filter: ReplayFilter,
    ) -> StoreResult<u64> {
        let app_key = app_key.to_owned();
        let config_id = config_id.to_owned();
        let statuses: Vec<&'static str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        if filter.dry_run {
            // What the INSERT below would add: matching hooks not queued for the config now.
            let c = self.reader().await?;
            let row = query_one(
                &c,
                "SELECT COUNT(*) FROM (SELECT DISTINCT d.event, dh.hook_seq FROM deliveries d \
                     JOIN delivery_hook_lists l ON l.hooks_id = d.hooks_id \
                     CROSS JOIN LATERAL unnest(l.hook_seqs) AS dh(hook_seq) \
                     WHERE d.app_key = $1 AND d.config_id = $2 AND NOT d.test \
                     AND ($3::BIGINT IS NULL OR d.created_at >= $3) \
                     AND ($4::BIGINT IS NULL OR d.created_at < $4) \
                     AND (cardinality($5::TEXT[]) = 0 OR d.status = ANY($5)) \
                     AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.config_id = d.config_id \
                     AND q.event = d.event AND q.hook_seq = dh.hook_seq)) AS would",
                &[
                    &app_key,
                    &config_id,
                    &filter.since,
                    &filter.until,
                    &statuses,
                ],
            )
            .await?;
            return Ok(col::<i64>(&row, 0)? as u64);
        }
        self.write(Durability::Durable, move |c| async move {
            // An empty status list means every status. The config row is locked FOR KEY SHARE,
            // as ingest does: a concurrent delete_config (another node) waits for this commit
            // and then cancels these queue rows; one that committed first leaves nothing to
            // lock, and nothing is queued for a config that no longer exists.
            let queued = execute(
                &c,
                "WITH cfg AS (SELECT id FROM webhook_configs WHERE id = $2 AND app_key = $1 \
                         FOR KEY SHARE) \
                 INSERT INTO queue (config_id, event, hook_seq, ordering_key) \
                     SELECT d.config_id, d.event, dh.hook_seq, l.hook_keys[dh.position] \
                     FROM deliveries d JOIN cfg ON cfg.id = d.config_id \
                     JOIN delivery_hook_lists l ON l.hooks_id = d.hooks_id \
                     CROSS JOIN LATERAL unnest(l.hook_seqs) WITH ORDINALITY \
                         AS dh(hook_seq, position) \
                     WHERE d.app_key = $1 AND d.config_id = $2 AND NOT d.test \
                     AND ($3::BIGINT IS NULL OR d.created_at >= $3) \
                     AND ($4::BIGINT IS NULL OR d.created_at < $4) \
                     AND (cardinality($5::TEXT[]) = 0 OR d.status = ANY($5)) \
                     ON CONFLICT DO NOTHING",
                &[
                    &app_key,
                    &config_id,
                    &filter.since,
                    &filter.until,
                    &statuses,
                ],
            )
            .await?;
            if queued > 0 {
                notify(&c, WORK_CHANNEL, std::slice::from_ref(&config_id)).await?;
            }
            let signals = if queued > 0 {
                vec![StoreSignal::NewWork { config_id }]
            } else {
                Vec::new()
            };
            Ok((queued, signals))
        })
        .await
    }

    pub(super) async fn record_test_send(&self, record: TestSendRecord) -> StoreResult<()> {
        // Made even if its caller goes away: the test send went out, so it is in the log.
        self.write_regardless(Durability::Durable, move |c| async move {
            let now = now_millis();
            let r = &record.result;
            // The sample hook is stored like an ingested one (the log rebuilds envelopes from
            // stored hooks) but queued for nobody. Its hookId is fresh: a clash is refused before
            // anything is written, so the rest of the group is not rolled back for it.
            let stored = query_opt(
                &c,
                "INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING seq",
                &[
                    &record.app_key,
                    &record.hook.hook_id,
                    &record.product.as_str(),
                    &record.event.as_str(),
                    &record.hook.json,
                    &now,
                ],
            )
            .await?;
            let Some(stored) = stored else {
                return Err(StoreError::Conflict(format!(
                    "hookId: the test hook {} already exists",
                    record.hook.hook_id
                )));
            };
            let seq: i64 = col(&stored, 0)?;
            execute(
                &c,
                "WITH made AS ( \
                     INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, \
                     status, attempt_count, next_attempt_at, created_at, updated_at, test) \
                     VALUES ($1, $2, $3, $4, $5, $6, 1, NULL, $7, $8, TRUE)) \
                 INSERT INTO delivery_hook_lists (hooks_id, hook_seqs, hook_range) \
                 VALUES ($1, ARRAY[$9::BIGINT], int8range($9, $9, '[]'))",
                &[
                    &record.hooks_id,
                    &record.app_key,
                    &record.config_id,
                    &record.product.as_str(),
                    &record.event.as_str(),
                    &record.status().as_str(),
                    &r.started_at,
                    &now,
                    &seq,
                ],
            )
            .await?;
            execute(
                &c,
                "INSERT INTO attempts (hooks_id, number, started_at, duration_ms, status_code, \
                 error_kind, error_message, response_body, request_headers) \
                 VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &record.hooks_id,
                    &r.started_at,
                    &(r.duration_ms as i64),
                    &r.status_code.map(i64::from),
                    &r.error_kind.map(AttemptErrorKind::as_str),
                    &r.error_message,
                    &r.response_body,
                    &request_headers_text(r),
                ],
            )
            .await?;
            Ok(((), Vec::new()))
        })
        .await
    }
}
