//! The outbox of operational events (`crate::operational`): rows written by the writer's jobs in
//! the transaction of the state change they report, read and deleted by the engine.

use hookline_wire::Event;
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value};

use super::SqliteStore;
use super::writer::WriteTx;
use crate::model::{DeliveryStatus, Health, HealthState, Millis};
use crate::operational::{self, LAST_ERROR_SQL, OperationalEvent};
use crate::store::{StoreError, StoreResult, StoreSignal};

/// What a health event says about its config, read before the health is written.
pub(super) struct ConfigBefore {
    app_key: String,
    product: String,
    url: String,
    state: Option<HealthState>,
}

/// The config's state before a health write (`None`: no such config).
pub(super) fn config_before(
    tx: &WriteTx<'_, '_>,
    config_id: &str,
) -> StoreResult<Option<ConfigBefore>> {
    Ok(tx
        .conn
        .prepare_cached(
            "SELECT app_key, product, url, health_state FROM webhook_configs WHERE id = ?1",
        )?
        .query_row(params![config_id], |r| {
            Ok(ConfigBefore {
                app_key: r.get(0)?,
                product: r.get(1)?,
                url: r.get(2)?,
                state: HealthState::parse(&r.get::<_, String>(3)?),
            })
        })
        .optional()?)
}

/// Writes the health event of a config whose health was `before` and is now `health`, if the
/// state changed (`crate::operational::reports_health`).
pub(super) fn report_health(
    tx: &mut WriteTx<'_, '_>,
    config_id: &str,
    before: Option<ConfigBefore>,
    health: &Health,
    last_error: Option<&str>,
) -> StoreResult<()> {
    let Some(before) = before else {
        return Ok(());
    };
    if !operational::reports_health(&before.product, before.state, health.state) {
        return Ok(());
    }
    let mut hook = operational::health_facts(health, last_error, tx.now);
    operational::config_fields(&mut hook, config_id, &before.product, &before.url);
    let event = operational::health_event(health.state);
    write_event(tx, &before.app_key, event, hook)
}

/// Writes the `DELIVERY_FAILED` of a delivery that just ended `status` after `attempts`;
/// `last_error` is the last attempt's, or `None` to read it from the stored attempts.
pub(super) fn report_delivery_end(
    tx: &mut WriteTx<'_, '_>,
    hooks_id: &str,
    status: DeliveryStatus,
    attempts: Option<u32>,
    last_error: Option<String>,
) -> StoreResult<()> {
    let found: Option<(i64, String, String, String, u32)> = tx
        .conn
        .prepare_cached(
            "SELECT seq, app_key, config_id, product, attempt_count FROM deliveries \
             WHERE hooks_id = ?1",
        )?
        .query_row(params![hooks_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((seq, app_key, config_id, product, attempt_count)) = found else {
        return Ok(());
    };
    if !operational::reports_delivery(&product) {
        return Ok(());
    }
    let last_error = match last_error {
        Some(e) => Some(e),
        None => tx
            .conn
            .prepare_cached(&format!(
                "SELECT {LAST_ERROR_SQL} FROM attempts a WHERE a.delivery_seq = ?1 \
                 ORDER BY a.number DESC LIMIT 1"
            ))?
            .query_row(params![seq], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten(),
    };
    let hook_ids = tx
        .conn
        .prepare_cached(
            "SELECT h.hook_id FROM delivery_hooks dh JOIN hooks h ON h.seq = dh.hook_seq \
             WHERE dh.delivery_seq = ?1 ORDER BY dh.position",
        )?
        .query_map(params![seq], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let attempts = attempts.unwrap_or(attempt_count);
    let mut hook = operational::delivery_facts(status, attempts, last_error.as_deref(), tx.now);
    operational::delivery_fields(&mut hook, &config_id, hooks_id, &hook_ids);
    write_event(tx, &app_key, Event::DeliveryFailed, hook)
}

fn write_event(
    tx: &mut WriteTx<'_, '_>,
    app_key: &str,
    event: Event,
    hook: Map<String, Value>,
) -> StoreResult<()> {
    let hook = serde_json::to_string(&hook)
        .map_err(|e| StoreError::Corrupt(format!("an operational event: {e}")))?;
    tx.conn
        .prepare_cached(
            "INSERT INTO operational_events (app_key, event, hook, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![app_key, event.as_str(), hook, tx.now])?;
    if !tx.signals.contains(&StoreSignal::OperationalEvents) {
        tx.signals.push(StoreSignal::OperationalEvents);
    }
    Ok(())
}

impl SqliteStore {
    pub(super) async fn operational_events(
        &self,
        limit: u32,
    ) -> StoreResult<Vec<OperationalEvent>> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT id, app_key, event, hook, created_at FROM operational_events \
                     ORDER BY id LIMIT ?1",
                )?
                .query_map(params![limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Millis>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(id, app_key, event, hook, created_at)| {
                    let event = Event::parse(&event).ok_or_else(|| {
                        StoreError::Corrupt(format!("operational event {id}: event {event:?}"))
                    })?;
                    Ok(OperationalEvent {
                        id,
                        app_key,
                        event,
                        hook,
                        created_at,
                    })
                })
                .collect()
        })
        .await
    }

    pub(super) async fn forget_operational_events(&self, ids: Vec<i64>) -> StoreResult<()> {
        self.write(move |tx| {
            let mut delete = tx
                .conn
                .prepare_cached("DELETE FROM operational_events WHERE id = ?1")?;
            for id in &ids {
                delete.execute(params![id])?;
            }
            Ok(())
        })
        .await
    }
}
