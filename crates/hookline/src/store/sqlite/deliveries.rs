//! The delivery log and what is done with logged deliveries: listing and reading them,
//! redelivering one, replaying a config's, and the delivery rows and their hooks that claims and
//! config deletions write.

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use std::fmt::Write;

use hookline_wire::{Event, Product};

use super::SqliteStore;
use super::statements::Hot;
use crate::model::{
    AttemptErrorKind, DeliveryFilter, DeliveryStatus, DeliverySummary, Millis, Page, PageRequest,
    ReplayFilter, SendableDelivery, StoredHook, TestSendRecord,
};
use crate::store::page::{cursor, page_size, paginate};
use crate::store::rows::{
    AttemptRow, DELIVERY_COLUMNS, DeliveryRow, parse_event, parse_product, request_headers_text,
};
use crate::store::{DeliveryDetail, StoreError, StoreResult, StoreSignal};

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        hooks_id: r.get(0)?,
        app_key: r.get(1)?,
        config_id: r.get(2)?,
        product: r.get(3)?,
        event: r.get(4)?,
        status: r.get(5)?,
        attempt_count: r.get(6)?,
        next_attempt_at: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        test: r.get(10)?,
    })
}

fn delivery_hooks(conn: &Connection, hooks_id: &str) -> StoreResult<Vec<StoredHook>> {
    let mut stmt = conn.prepare_cached(
        "SELECT h.hook_id, h.body, h.created_at FROM deliveries x \
         JOIN delivery_hooks d ON d.delivery_seq = x.seq JOIN hooks h ON h.seq = d.hook_seq \
         WHERE x.hooks_id = ?1 ORDER BY d.position",
    )?;
    let rows = stmt.query_map(params![hooks_id], |r| {
        Ok(StoredHook {
            hook_id: r.get(0)?,
            json: r.get(1)?,
            accepted_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn delivery_hook_ids(conn: &Connection, hooks_id: &str) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT h.hook_id FROM deliveries x JOIN delivery_hooks d ON d.delivery_seq = x.seq \
         JOIN hooks h ON h.seq = d.hook_seq WHERE x.hooks_id = ?1 ORDER BY d.position",
    )?;
    let rows = stmt.query_map(params![hooks_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// The hookIds of several deliveries, each in envelope order.
fn page_hook_ids<'a>(
    conn: &Connection,
    hooks_ids: impl Iterator<Item = &'a str>,
) -> StoreResult<std::collections::HashMap<String, Vec<String>>> {
    let hooks_ids: Vec<&str> = hooks_ids.collect();
    let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    if hooks_ids.is_empty() {
        return Ok(out);
    }
    let marks = vec!["?"; hooks_ids.len()].join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT x.hooks_id, h.hook_id FROM deliveries x \
         JOIN delivery_hooks d ON d.delivery_seq = x.seq JOIN hooks h ON h.seq = d.hook_seq \
         WHERE x.hooks_id IN ({marks}) ORDER BY x.hooks_id, d.position"
    ))?;
    let rows = stmt.query_map(params_from_iter(hooks_ids), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (hooks_id, hook_id) = row?;
        out.entry(hooks_id).or_default().push(hook_id);
    }
    Ok(out)
}

pub(super) fn load_delivery_row(
    conn: &Connection,
    hooks_id: &str,
) -> StoreResult<Option<DeliveryRow>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE hooks_id = ?1"
        ))?
        .query_row(params![hooks_id], delivery_row)
        .optional()?)
}

pub(super) fn sendable(conn: &Connection, row: DeliveryRow) -> StoreResult<SendableDelivery> {
    let hooks = delivery_hooks(conn, &row.hooks_id)?;
    row.into_sendable(hooks)
}

/// New deliveries that share everything but their hooksId and hooks (the deliveries of one claim,
/// or of one event of a deleted config's queue).
pub(super) struct NewDeliveries<'a> {
    pub(super) app_key: &'a str,
    pub(super) config_id: &'a str,
    pub(super) product: Product,
    pub(super) event: Event,
    /// PENDING (due now) or CANCELLED.
    pub(super) status: DeliveryStatus,
    pub(super) now: Millis,
}

// `OR IGNORE`, with the rows counted after, and no function call per row: an INSERT ... SELECT
// that could abort halfway (on a constraint, or in a function) makes SQLite keep a statement
// journal, a copy of every page it touches. Ignoring cannot abort, and a row missing from the
// count (a hooksId already taken) fails the job instead.
pub(super) const INSERT_DELIVERIES: &str = "INSERT OR IGNORE INTO deliveries (hooks_id, app_key, \
     config_id, product, event, status, attempt_count, next_attempt_at, created_at, updated_at) \
     SELECT value, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?8 FROM json_each(?1)";
/// The hooksId of the delivery of seq `?1` (see [`insert_delivery_rows`]).
pub(super) const HOOKS_ID_AT_SEQ: &str = "SELECT hooks_id FROM deliveries WHERE seq = ?1";
/// `?2` holds one array of seqs per delivery of `?1`, in the same order; `?3` is the first
/// delivery's seq (see [`insert_delivery_rows`]).
pub(super) const INSERT_DELIVERY_HOOKS: &str = "INSERT OR IGNORE INTO delivery_hooks \
     (delivery_seq, position, hook_seq) SELECT ?3 + d.key, h.key, h.value \
     FROM json_each(?1) d, json_each(?2, '$[' || d.key || ']') h";

/// Writes the deliveries `hooks_ids`, the i-th holding the hooks `seqs[i * per..(i + 1) * per]` in
/// that order (the last may hold fewer). Two statements, however many deliveries and hooks: the
/// ids and seqs go in as JSON arrays that `json_each` reads back, where a statement per delivery
/// and per hook cost a claim of eight one-hook deliveries sixteen executions.
pub(super) fn insert_deliveries(
    hot: &mut Hot<'_>,
    new: &NewDeliveries<'_>,
    hooks_ids: &[String],
    seqs: &[i64],
    per: usize,
) -> StoreResult<()> {
    let per = per.max(1);
    debug_assert!(seqs.len() <= hooks_ids.len() * per);
    let (ids, first_seq) = insert_delivery_rows(hot, new, hooks_ids)?;
    let mut seq_lists = String::with_capacity(seqs.len() * 8 + hooks_ids.len() * 3 + 2);
    seq_lists.push('[');
    for (i, chunk) in seqs.chunks(per).enumerate() {
        if i > 0 {
            seq_lists.push(',');
        }
        seq_lists.push('[');
        for (j, seq) in chunk.iter().enumerate() {
            if j > 0 {
                seq_lists.push(',');
            }
            let _ = write!(seq_lists, "{seq}");
        }
        seq_lists.push(']');
    }
    seq_lists.push(']');
    let hooks = hot
        .insert_delivery_hooks
        .execute(params![ids, seq_lists, first_seq])?;
    if hooks != seqs.len() {
        // The whole group rolls back, as a failed constraint did.
        return Err(StoreError::Unavailable(format!(
            "{hooks} of {} hooks of new deliveries written",
            seqs.len()
        )));
    }
    Ok(())
}

/// Writes the rows of the deliveries `hooks_ids` (not their hooks) in one statement, and gives
/// back the ids as the JSON array it bound and the first delivery's seq: the i-th has the seq
/// `first + i`. (A new row's seq is one more than the table's highest, and the statement writes
/// every row, in order, or fails. SQLite picks random rowids once the highest is `i64::MAX`,
/// which no table reaches by counting: the first and last rows are checked, two probes of
/// pages the insert just wrote, and a mismatch fails the job.)
pub(super) fn insert_delivery_rows(
    hot: &mut Hot<'_>,
    new: &NewDeliveries<'_>,
    hooks_ids: &[String],
) -> StoreResult<(String, i64)> {
    let ids = serde_json::to_string(hooks_ids)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode hooksIds: {e}")))?;
    let deliveries = hot.insert_deliveries.execute(params![
        ids,
        new.app_key,
        new.config_id,
        new.product.as_str(),
        new.event.as_str(),
        new.status.as_str(),
        new.status.is_open().then_some(new.now),
        new.now
    ])?;
    if deliveries != hooks_ids.len() {
        // The whole group rolls back, as a failed constraint did.
        return Err(StoreError::Unavailable(format!(
            "{deliveries} of {} deliveries written: a hooksId already exists",
            hooks_ids.len()
        )));
    }
    if deliveries == 0 {
        return Ok((ids, 0));
    }
    let last = hot.conn.last_insert_rowid();
    let first = last - deliveries as i64 + 1;
    for (seq, expected) in [(first, hooks_ids.first()), (last, hooks_ids.last())] {
        let found: Option<String> = hot
            .hooks_id_at_seq
            .query_row(params![seq], |r| r.get(0))
            .optional()?;
        if found.as_ref() != expected {
            return Err(StoreError::Corrupt(format!(
                "new deliveries are not at consecutive seqs ending at {last}"
            )));
        }
    }
    Ok((ids, first))
}

/// The delivery log's query for one page: `size + 1` rows of the app key's deliveries that
/// match `filter`, newest first, after the `cursor`'s row.
///
/// With a hookId the hook's deliveries (a few, found through `delivery_hooks_by_hook`) are read
/// by their seq and then filtered and sorted; the other equality tests are kept off the indexes
/// (`+column`). Without statistics (the store runs no ANALYZE) SQLite preferred to walk the app
/// key's whole log (`deliveries_log`, for its order) or every delivery of the filtered status
/// and test each against the hook's few: a search by hookId read the app key's entire history.
fn list_sql(
    app_key: &str,
    filter: &DeliveryFilter,
    cursor: Option<&str>,
    size: u32,
) -> StoreResult<(String, Vec<rusqlite::types::Value>)> {
    let plus = if filter.hook_id.is_some() { "+" } else { "" };
    let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {plus}app_key = ?1");
    let mut args: Vec<rusqlite::types::Value> = vec![app_key.to_owned().into()];
    if let Some(c) = cursor {
        let parts = cursor::decode(c, 2).ok_or(StoreError::BadCursor)?;
        let created: i64 = parts[0].parse().map_err(|_| StoreError::BadCursor)?;
        args.push(created.into());
        args.push(parts[1].clone().into());
        sql += &format!(
            " AND (created_at < ?{a} OR (created_at = ?{a} AND hooks_id < ?{b}))",
            a = args.len() - 1,
            b = args.len()
        );
    }
    if let Some(config_id) = &filter.config_id {
        args.push(config_id.clone().into());
        sql += &format!(" AND {plus}config_id = ?{}", args.len());
    }
    if let Some(event) = filter.event {
        args.push(event.as_str().to_owned().into());
        sql += &format!(" AND event = ?{}", args.len());
    }
    if let Some(status) = filter.status {
        args.push(status.as_str().to_owned().into());
        sql += &format!(" AND {plus}status = ?{}", args.len());
    }
    if let Some(since) = filter.since {
        args.push(since.into());
        sql += &format!(" AND created_at >= ?{}", args.len());
    }
    if let Some(until) = filter.until {
        args.push(until.into());
        sql += &format!(" AND created_at < ?{}", args.len());
    }
    if let Some(hook_id) = &filter.hook_id {
        args.push(hook_id.clone().into());
        sql += &format!(
            " AND seq IN (SELECT d.delivery_seq FROM delivery_hooks d \
             JOIN hooks h ON h.seq = d.hook_seq WHERE h.app_key = ?1 AND h.hook_id = ?{})",
            args.len()
        );
    }
    args.push(i64::from(size + 1).into());
    sql += &format!(
        " ORDER BY created_at DESC, hooks_id DESC LIMIT ?{}",
        args.len()
    );
    Ok((sql, args))
}

impl SqliteStore {
    pub(super) async fn list_deliveries(
        &self,
        app_key: &str,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliverySummary>> {
        let app_key = app_key.to_owned();
        self.read(move |conn| {
            let size = page_size(&page);
            let (sql, args) = list_sql(&app_key, &filter, page.cursor.as_deref(), size)?;
            let rows = conn
                .prepare(&sql)?
                .query_map(params_from_iter(args), delivery_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // The page's hookIds in one query, not one per delivery.
            let mut ids = page_hook_ids(conn, rows.iter().map(|r| r.hooks_id.as_str()))?;
            let mut items = Vec::with_capacity(rows.len());
            for row in rows {
                let hook_ids = ids.remove(&row.hooks_id).unwrap_or_default();
                items.push(row.into_summary(hook_ids)?);
            }
            Ok(paginate(items, size, |d| {
                cursor::encode(&[&d.created_at.to_string(), &d.hooks_id])
            }))
        })
        .await
    }

    pub(super) async fn get_delivery(
        &self,
        app_key: &str,
        hooks_id: &str,
    ) -> StoreResult<Option<DeliveryDetail>> {
        let app_key = app_key.to_owned();
        let hooks_id = hooks_id.to_owned();
        self.read(move |conn| {
            let Some(row) = load_delivery_row(conn, &hooks_id)? else {
                return Ok(None);
            };
            if row.app_key != app_key {
                return Ok(None);
            }
            let attempts = conn
                .prepare_cached(
                    "SELECT number, started_at, duration_ms, status_code, error_kind, \
                     error_message, response_body, request_headers FROM attempts \
                     WHERE delivery_seq = (SELECT seq FROM deliveries WHERE hooks_id = ?1) \
                     ORDER BY number",
                )?
                .query_map(params![hooks_id], |r| {
                    Ok(AttemptRow {
                        number: r.get(0)?,
                        started_at: r.get(1)?,
                        duration_ms: r.get(2)?,
                        status_code: r.get(3)?,
                        error_kind: r.get(4)?,
                        error_message: r.get(5)?,
                        response_body: r.get(6)?,
                        request_headers: r.get(7)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .map(AttemptRow::into_record)
                .collect::<StoreResult<Vec<_>>>()?;
            let delivery = sendable(conn, row.clone())?;
            let hook_ids = delivery.hooks.iter().map(|h| h.hook_id.clone()).collect();
            Ok(Some(DeliveryDetail {
                summary: row.into_summary(hook_ids)?,
                envelope: delivery.envelope(),
                attempts,
            }))
        })
        .await
    }

    pub(super) async fn redeliver(
        &self,
        app_key: &str,
        hooks_id: &str,
        new_hooks_id: String,
    ) -> StoreResult<Option<DeliverySummary>> {
        let app_key = app_key.to_owned();
        let hooks_id = hooks_id.to_owned();
        self.write(move |tx| {
            let conn = tx.conn;
            let Some(row) = load_delivery_row(conn, &hooks_id)? else {
                return Ok(None);
            };
            if row.app_key != app_key {
                return Ok(None);
            }
            if row.test {
                return Err(test_not_redelivered());
            }
            let config_exists: Option<i64> = conn
                .prepare_cached("SELECT 1 FROM webhook_configs WHERE id = ?1")?
                .query_row(params![row.config_id], |r| r.get(0))
                .optional()?;
            if config_exists.is_none() {
                return Err(StoreError::Conflict(format!(
                    "webhookConfigId: the config {} of this delivery was deleted",
                    row.config_id
                )));
            }
            let seqs: Vec<i64> = conn
                .prepare_cached(
                    "SELECT hook_seq FROM delivery_hooks \
                     WHERE delivery_seq = (SELECT seq FROM deliveries WHERE hooks_id = ?1) \
                     ORDER BY position",
                )?
                .query_map(params![hooks_id], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let summary = DeliverySummary::new(
                new_hooks_id,
                &row.app_key,
                &row.config_id,
                parse_product(&row.product)?,
                parse_event(&row.event)?,
                DeliveryStatus::Pending,
                delivery_hook_ids(conn, &hooks_id)?,
                tx.now,
            );
            let new = NewDeliveries {
                app_key: &summary.app_key,
                config_id: &summary.config_id,
                product: summary.product,
                event: summary.event,
                status: summary.status,
                now: summary.created_at,
            };
            let ids = [summary.hooks_id.clone()];
            insert_deliveries(tx.hot, &new, &ids, &seqs, seqs.len())?;
            Ok(Some(summary))
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
        let (conditions, args) = replay_conditions(&app_key, &config_id, &filter);
        if filter.dry_run {
            // What the INSERT below would add: matching hooks not queued for the config now.
            return self
                .read(move |conn| {
                    let sql = format!(
                        "SELECT COUNT(*) FROM (SELECT DISTINCT d.event, dh.hook_seq \
                         FROM deliveries d JOIN delivery_hooks dh ON dh.delivery_seq = d.seq \
                         WHERE {conditions} AND NOT EXISTS (SELECT 1 FROM queue q \
                         WHERE q.config_id = d.config_id AND q.event = d.event \
                         AND q.hook_seq = dh.hook_seq))"
                    );
                    let n: i64 = conn
                        .prepare(&sql)?
                        .query_row(params_from_iter(args), |r| r.get(0))?;
                    Ok(n as u64)
                })
                .await;
        }
        self.write(move |tx| {
            let conn = tx.conn;
            // The config is checked in the write, not only before it: a config deleted since
            // would keep queue rows nothing claims, for hooks retention then removes.
            let sql = format!(
                "INSERT OR IGNORE INTO queue (config_id, event, hook_seq, ordering_key) \
                 SELECT d.config_id, d.event, dh.hook_seq, dh.ordering_key FROM deliveries d \
                 JOIN delivery_hooks dh ON dh.delivery_seq = d.seq WHERE {conditions} \
                 AND EXISTS (SELECT 1 FROM webhook_configs c WHERE c.id = ?2 AND c.app_key = ?1)"
            );
            let queued = conn.prepare(&sql)?.execute(params_from_iter(args))?;
            if queued > 0 {
                tx.signals.push(StoreSignal::NewWork { config_id });
            }
            Ok(queued as u64)
        })
        .await
    }

    pub(super) async fn record_test_send(&self, record: TestSendRecord) -> StoreResult<()> {
        self.write(move |tx| {
            let conn = tx.conn;
            let r = &record.result;
            // The sample hook is stored like an ingested one (the log rebuilds envelopes from
            // stored hooks) but queued for nobody. Its hookId is fresh: a clash is refused before
            // anything is written, so the rest of the group is not rolled back for it.
            let stored = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO hooks (app_key, hook_id, product, event, body, \
                     created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    record.app_key,
                    record.hook.hook_id,
                    record.product.as_str(),
                    record.event.as_str(),
                    record.hook.json,
                    tx.now
                ])?;
            if stored != 1 {
                return Err(StoreError::Conflict(format!(
                    "hookId: the test hook {} already exists",
                    record.hook.hook_id
                )));
            }
            let hook_seq = conn.last_insert_rowid();
            conn.prepare_cached(
                "INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, status, \
                 attempt_count, next_attempt_at, created_at, updated_at, test) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, NULL, ?7, ?8, 1)",
            )?
            .execute(params![
                record.hooks_id,
                record.app_key,
                record.config_id,
                record.product.as_str(),
                record.event.as_str(),
                record.status().as_str(),
                r.started_at,
                tx.now
            ])?;
            let delivery_seq = conn.last_insert_rowid();
            conn.prepare_cached(
                "INSERT INTO delivery_hooks (delivery_seq, position, hook_seq) VALUES (?1, 0, ?2)",
            )?
            .execute(params![delivery_seq, hook_seq])?;
            tx.hot.insert_attempt.execute(params![
                record.hooks_id,
                1,
                r.started_at,
                r.duration_ms as i64,
                r.status_code,
                r.error_kind.map(AttemptErrorKind::as_str),
                r.error_message,
                r.response_body,
                request_headers_text(r)
            ])?;
            Ok(())
        })
        .await
    }
}

/// A test send's record is what happened to one sample hook; sending it again would deliver the
/// sample as if it were real work (without the test header). Another test send is the way.
fn test_not_redelivered() -> StoreError {
    StoreError::Conflict(
        "hooksId: a test send is not redelivered; send another test instead".to_owned(),
    )
}

/// The WHERE conditions (over `deliveries d`) of a replay, with their parameters: the config's
/// logged deliveries (never test sends) that match the filter.
fn replay_conditions(
    app_key: &str,
    config_id: &str,
    filter: &ReplayFilter,
) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = String::from("d.app_key = ?1 AND d.config_id = ?2 AND d.test = 0");
    let mut args: Vec<rusqlite::types::Value> =
        vec![app_key.to_owned().into(), config_id.to_owned().into()];
    if let Some(since) = filter.since {
        args.push(since.into());
        sql += &format!(" AND d.created_at >= ?{}", args.len());
    }
    if let Some(until) = filter.until {
        args.push(until.into());
        sql += &format!(" AND d.created_at < ?{}", args.len());
    }
    if !filter.statuses.is_empty() {
        let mut marks = Vec::new();
        for status in &filter.statuses {
            args.push(status.as_str().to_owned().into());
            marks.push(format!("?{}", args.len()));
        }
        sql += &format!(" AND d.status IN ({})", marks.join(", "));
    }
    (sql, args)
}

#[cfg(test)]
mod tests {
    use hookline_wire::Event;

    use super::list_sql;
    use crate::model::{DeliveryFilter, DeliveryStatus};
    use crate::store::page::cursor;

    /// The plan of the log's page for `filter`, on an empty database of the current schema.
    fn plan(filter: &DeliveryFilter) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::create_at_schema_version(dir.path(), usize::MAX).unwrap();
        let at = cursor::encode(&["5", "h"]);
        let (sql, args) = list_sql("ak", filter, Some(&at), 50).unwrap();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn a_search_by_hook_id_reads_the_hooks_deliveries_not_the_app_keys_log() {
        let by_hook = DeliveryFilter {
            hook_id: Some("h-1".into()),
            config_id: Some("c1".into()),
            event: Some(Event::ConversionBlock),
            status: Some(DeliveryStatus::Succeeded),
            since: Some(1),
            until: Some(10),
        };
        let steps = plan(&by_hook);
        assert!(
            steps[0].starts_with("SEARCH deliveries USING INTEGER PRIMARY KEY"),
            "{steps:?}"
        );
        assert!(
            steps.iter().any(|s| s.contains("delivery_hooks_by_hook")),
            "{steps:?}"
        );
        // Without a hookId the log's own index gives the order.
        let steps = plan(&DeliveryFilter::default());
        assert!(steps[0].contains("deliveries_log"), "{steps:?}");
    }
}
