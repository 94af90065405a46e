//! App keys and webhook configs: their rows, the subscriptions that ingest fans out by, and the
//! health the engine judges. Deleting a config turns its open and queued work into CANCELLED
//! deliveries.

use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use super::SqliteStore;
use super::deliveries::{NewDeliveries, insert_deliveries};
use super::operational::{config_before, report_health};
use super::writer::WriteTx;
use crate::model::{
    AppKeyRecord, ConfigFilter, DeliveryStatus, Health, Millis, Page, PageRequest, WebhookConfig,
};
use crate::store::page::{cursor, page_size, paginate};
use crate::store::rows::{
    CONFIG_COLUMNS, ConfigRow, deadline_ms, filter_text, headers_text, join_events, parse_event,
    parse_product, schedule_text,
};
use crate::store::{StoreError, StoreResult, runs_by_event};

pub(super) fn config_row(r: &Row<'_>) -> rusqlite::Result<ConfigRow> {
    Ok(ConfigRow {
        id: r.get(0)?,
        app_key: r.get(1)?,
        product: r.get(2)?,
        events: r.get(3)?,
        url: r.get(4)?,
        signature: r.get(5)?,
        signing_secret: r.get(6)?,
        enabled: r.get(7)?,
        description: r.get(8)?,
        max_hooks: r.get(9)?,
        max_in_flight: r.get(10)?,
        timeout_ms: r.get(11)?,
        retry_schedule: r.get(12)?,
        health_state: r.get(13)?,
        consecutive_failures: r.get(14)?,
        last_success_at: r.get(15)?,
        last_failure_at: r.get(16)?,
        failing_since: r.get(17)?,
        disabled_reason: r.get(18)?,
        created_at: r.get(19)?,
        updated_at: r.get(20)?,
        previous_signing_secret: r.get(21)?,
        previous_signing_secret_expires_at: r.get(22)?,
        headers: r.get(23)?,
        filter: r.get(24)?,
        delivery_deadline_ms: r.get(25)?,
        ordering_key: r.get(26)?,
    })
}

fn write_subscriptions(tx: &mut WriteTx<'_, '_>, config: &WebhookConfig) -> StoreResult<()> {
    let conn = tx.conn;
    tx.subscriptions.clear();
    conn.prepare_cached("DELETE FROM subscriptions WHERE config_id = ?1")?
        .execute(params![config.id])?;
    // A config its health DISABLED stays subscribed: what is accepted meanwhile is held in its
    // queue until it is enabled again (or retention drops it). Only a pause stops the queueing.
    if config.enabled {
        let mut insert = conn.prepare_cached(
            "INSERT OR IGNORE INTO subscriptions (app_key, product, event, config_id) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for event in &config.events {
            insert.execute(params![
                config.app_key,
                config.product.as_str(),
                event.as_str(),
                config.id
            ])?;
        }
    }
    Ok(())
}

/// Writes a config's health, and the operational event of its change of state if it changed
/// (`last_error`: the attempt that changed it, if one did).
pub(super) fn write_health(
    tx: &mut WriteTx<'_, '_>,
    config_id: &str,
    health: &Health,
    last_error: Option<&str>,
) -> StoreResult<()> {
    let before = config_before(tx, config_id)?;
    let conn = tx.conn;
    conn.prepare_cached(
        "UPDATE webhook_configs SET health_state = ?2, consecutive_failures = ?3, \
         last_success_at = ?4, last_failure_at = ?5, failing_since = ?6, disabled_reason = ?7 \
         WHERE id = ?1",
    )?
    .execute(params![
        config_id,
        health.state.as_str(),
        health.consecutive_failures,
        health.last_success_at,
        health.last_failure_at,
        health.failing_since,
        health.disabled_reason
    ])?;
    // DISABLED keeps the subscriptions: the engine stops sending, the queue holds what comes.
    report_health(tx, config_id, before, health, last_error)
}

impl SqliteStore {
    pub(super) async fn create_app_key(
        &self,
        record: AppKeyRecord,
        secret_hash: String,
    ) -> StoreResult<()> {
        self.write(move |tx| {
            let inserted = tx
                .conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO app_keys (app_key, name, secret_hash, created_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    record.app_key,
                    record.name,
                    secret_hash,
                    record.created_at
                ])?;
            if inserted == 0 {
                return Err(StoreError::Conflict("app key already exists".into()));
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn list_app_keys(&self, page: PageRequest) -> StoreResult<Page<AppKeyRecord>> {
        self.read(move |conn| {
            let size = page_size(&page);
            let after = match &page.cursor {
                Some(c) => cursor::decode(c, 1).ok_or(StoreError::BadCursor)?.remove(0),
                None => String::new(),
            };
            let mut stmt = conn.prepare_cached(
                "SELECT app_key, name, created_at, previous_secret_expires_at FROM app_keys \
                 WHERE app_key > ?1 \
                 ORDER BY app_key LIMIT ?2",
            )?;
            let items = stmt
                .query_map(params![after, size + 1], |r| {
                    Ok(AppKeyRecord {
                        app_key: r.get(0)?,
                        name: r.get(1)?,
                        created_at: r.get(2)?,
                        previous_secret_key_expires_at: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(paginate(items, size, |k| cursor::encode(&[&k.app_key])))
        })
        .await
    }

    pub(super) async fn get_app_key(&self, app_key: &str) -> StoreResult<Option<AppKeyRecord>> {
        let app_key = app_key.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT app_key, name, created_at, previous_secret_expires_at FROM app_keys \
                     WHERE app_key = ?1",
                )?
                .query_row(params![app_key], |r| {
                    Ok(AppKeyRecord {
                        app_key: r.get(0)?,
                        name: r.get(1)?,
                        created_at: r.get(2)?,
                        previous_secret_key_expires_at: r.get(3)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    pub(super) async fn app_key_by_secret_hash(
        &self,
        secret_hash: &str,
        now: Millis,
    ) -> StoreResult<Option<String>> {
        let secret_hash = secret_hash.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT app_key FROM app_keys WHERE secret_hash = ?1 UNION ALL \
                     SELECT app_key FROM app_keys WHERE previous_secret_hash = ?1 \
                     AND previous_secret_expires_at > ?2 LIMIT 1",
                )?
                .query_row(params![secret_hash, now], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    pub(super) async fn set_secret_hash(
        &self,
        app_key: &str,
        secret_hash: String,
        previous_until: Option<Millis>,
    ) -> StoreResult<bool> {
        let app_key = app_key.to_owned();
        self.write(move |tx| {
            // The right-hand sides read the row as it was: the replaced hash is the old one.
            let n = tx
                .conn
                .prepare_cached(
                    "UPDATE app_keys SET secret_hash = ?2, \
                     previous_secret_hash = CASE WHEN ?3 IS NULL THEN NULL ELSE secret_hash END, \
                     previous_secret_expires_at = ?3 WHERE app_key = ?1",
                )?
                .execute(params![app_key, secret_hash, previous_until])?;
            // Even within a grace period: what a portal link opens ends with the key it was made
            // under (signed-in sessions keep the grace, as API calls do).
            tx.conn
                .prepare_cached("DELETE FROM portal_links WHERE app_key = ?1")?
                .execute(params![app_key])?;
            tx.conn
                .prepare_cached("DELETE FROM dashboard_sessions WHERE app_key = ?1 AND portal")?
                .execute(params![app_key])?;
            Ok(n == 1)
        })
        .await
    }

    pub(super) async fn insert_config(&self, config: WebhookConfig) -> StoreResult<()> {
        self.write(move |tx| {
            tx.conn
                .prepare_cached(&format!(
                    "INSERT INTO webhook_configs ({CONFIG_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                      ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)"
                ))?
                .execute(params![
                    config.id,
                    config.app_key,
                    config.product.as_str(),
                    join_events(&config.events),
                    config.url,
                    config.signature,
                    config.signing_secret,
                    config.enabled,
                    config.description,
                    config.max_hooks_per_request,
                    config.max_requests_in_flight,
                    config.timeout_ms,
                    schedule_text(&config),
                    config.health.state.as_str(),
                    config.health.consecutive_failures,
                    config.health.last_success_at,
                    config.health.last_failure_at,
                    config.health.failing_since,
                    config.health.disabled_reason,
                    config.created_at,
                    config.updated_at,
                    config.previous_signing_secret.as_ref().map(|p| &p.secret),
                    config
                        .previous_signing_secret
                        .as_ref()
                        .map(|p| p.expires_at),
                    headers_text(&config),
                    filter_text(&config),
                    deadline_ms(&config),
                    config.ordering_key
                ])?;
            write_subscriptions(tx, &config)
        })
        .await
    }

    pub(super) async fn update_config(&self, config: WebhookConfig) -> StoreResult<Option<Millis>> {
        self.write(move |tx| {
            // Enabling a DISABLED config gives it a fresh health: RECOVERED.
            let before = config_before(tx, &config.id)?;
            let stored: Option<Millis> = tx
                .conn
                .prepare_cached(
                    "UPDATE webhook_configs SET product = ?3, events = ?4, url = ?5, \
                     signature = ?6, signing_secret = ?7, enabled = ?8, description = ?9, \
                     max_hooks = ?10, max_in_flight = ?11, timeout_ms = ?12, \
                     retry_schedule = ?13, health_state = ?14, consecutive_failures = ?15, \
                     last_success_at = ?16, last_failure_at = ?17, failing_since = ?18, \
                     disabled_reason = ?19, updated_at = MAX(?20, updated_at + 1), previous_signing_secret = ?21, \
                     previous_signing_secret_expires_at = ?22, headers = ?23, filter = ?24, \
                     delivery_deadline_ms = ?25, ordering_key = ?26 \
                     WHERE app_key = ?1 AND id = ?2 RETURNING updated_at",
                )?
                .query_row(params![
                    config.app_key,
                    config.id,
                    config.product.as_str(),
                    join_events(&config.events),
                    config.url,
                    config.signature,
                    config.signing_secret,
                    config.enabled,
                    config.description,
                    config.max_hooks_per_request,
                    config.max_requests_in_flight,
                    config.timeout_ms,
                    schedule_text(&config),
                    config.health.state.as_str(),
                    config.health.consecutive_failures,
                    config.health.last_success_at,
                    config.health.last_failure_at,
                    config.health.failing_since,
                    config.health.disabled_reason,
                    config.updated_at,
                    config.previous_signing_secret.as_ref().map(|p| &p.secret),
                    config
                        .previous_signing_secret
                        .as_ref()
                        .map(|p| p.expires_at),
                    headers_text(&config),
                    filter_text(&config),
                    deadline_ms(&config),
                    config.ordering_key
                ], |r| r.get(0))
                .optional()?;
            if stored.is_none() {
                return Ok(None);
            }
            write_subscriptions(tx, &config)?;
            report_health(tx, &config.id, before, &config.health, None)?;
            Ok(stored)
        })
        .await
    }

    pub(super) async fn delete_config(&self, app_key: &str, config_id: &str) -> StoreResult<bool> {
        let app_key = app_key.to_owned();
        let config_id = config_id.to_owned();
        self.write(move |tx| {
            let conn = tx.conn;
            let found: Option<(String, i64)> = conn
                .prepare_cached(
                    "SELECT product, max_hooks FROM webhook_configs WHERE app_key = ?1 AND id = ?2",
                )?
                .query_row(params![app_key, config_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((product, max_hooks)) = found else {
                return Ok(false);
            };
            let product = parse_product(&product)?;
            let now = tx.now;
            tx.subscriptions.clear();
            conn.prepare_cached("DELETE FROM webhook_configs WHERE id = ?1")?
                .execute(params![config_id])?;
            conn.prepare_cached("DELETE FROM subscriptions WHERE config_id = ?1")?
                .execute(params![config_id])?;
            conn.prepare_cached(
                "UPDATE deliveries SET status = 'CANCELLED', next_attempt_at = NULL, \
                 updated_at = ?2 WHERE config_id = ?1 AND status IN ('PENDING', 'RETRYING')",
            )?
            .execute(params![config_id, now])?;
            // Hooks still queued become CANCELLED deliveries too, so the log shows what this
            // config never received.
            let queued: Vec<(String, i64)> = conn
                .prepare_cached(
                    "SELECT event, hook_seq FROM queue WHERE config_id = ?1 \
                     ORDER BY event, hook_seq",
                )?
                .query_map(params![config_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for (event, seqs) in runs_by_event(&queued, max_hooks as u32) {
                let new = NewDeliveries {
                    app_key: &app_key,
                    config_id: &config_id,
                    product,
                    event: parse_event(event)?,
                    status: DeliveryStatus::Cancelled,
                    now,
                };
                let ids = [hookline_wire::generate_id()];
                insert_deliveries(tx.hot, &new, &ids, &seqs, seqs.len())?;
            }
            conn.prepare_cached("DELETE FROM queue WHERE config_id = ?1")?
                .execute(params![config_id])?;
            Ok(true)
        })
        .await
    }

    pub(super) async fn get_config(
        &self,
        app_key: &str,
        config_id: &str,
    ) -> StoreResult<Option<WebhookConfig>> {
        let app_key = app_key.to_owned();
        let config_id = config_id.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE app_key = ?1 AND id = ?2"
                ))?
                .query_row(params![app_key, config_id], config_row)
                .optional()?;
            row.map(ConfigRow::into_config).transpose()
        })
        .await
    }

    pub(super) async fn list_configs(
        &self,
        app_key: &str,
        filter: ConfigFilter,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookConfig>> {
        let app_key = app_key.to_owned();
        self.read(move |conn| {
            let size = page_size(&page);
            let after = match &page.cursor {
                Some(c) => cursor::decode(c, 1).ok_or(StoreError::BadCursor)?.remove(0),
                None => String::new(),
            };
            let mut sql = format!(
                "SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE app_key = ?1 AND id > ?2"
            );
            let mut args: Vec<rusqlite::types::Value> = vec![app_key.into(), after.into()];
            if let Some(product) = filter.product {
                args.push(product.as_str().to_owned().into());
                sql += &format!(" AND product = ?{}", args.len());
            }
            if let Some(event) = filter.event {
                args.push(event.as_str().to_owned().into());
                sql += &format!(
                    " AND (',' || events || ',') LIKE ('%,' || ?{} || ',%')",
                    args.len()
                );
            }
            if let Some(enabled) = filter.enabled {
                args.push(i64::from(enabled).into());
                sql += &format!(" AND enabled = ?{}", args.len());
            }
            args.push(i64::from(size + 1).into());
            sql += &format!(" ORDER BY id LIMIT ?{}", args.len());
            let rows = conn
                .prepare(&sql)?
                .query_map(params_from_iter(args), config_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let items = rows
                .into_iter()
                .map(ConfigRow::into_config)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(paginate(items, size, |c| cursor::encode(&[&c.id])))
        })
        .await
    }

    pub(super) async fn all_configs(&self) -> StoreResult<Vec<WebhookConfig>> {
        self.read(|conn| {
            let rows = conn
                .prepare(&format!("SELECT {CONFIG_COLUMNS} FROM webhook_configs"))?
                .query_map([], config_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(ConfigRow::into_config).collect()
        })
        .await
    }

    pub(super) async fn set_health(&self, config_id: &str, health: Health) -> StoreResult<()> {
        let config_id = config_id.to_owned();
        self.write(move |tx| write_health(tx, &config_id, &health, None))
            .await
    }

    pub(super) async fn find_config(&self, config_id: &str) -> StoreResult<Option<WebhookConfig>> {
        let config_id = config_id.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE id = ?1"
                ))?
                .query_row(params![config_id], config_row)
                .optional()?;
            row.map(ConfigRow::into_config).transpose()
        })
        .await
    }
}
