//! The outbox of operational events (`crate::operational`): rows written by the writer's
//! statements in the transaction of the state change they report (the health write, the
//! attempt records, an expiry, a config update), read and deleted by the engine.
//!
//! Most of an event's hook is built in Rust (`crate::operational`); what only the database
//! knows (the config's URL, the delivery's hookIds, the last stored attempt) is added by the
//! statement that writes the row, as `facts || jsonb_build_object(...)`.

use hookline_wire::Event;

use super::PostgresStore;
use super::columns::col;
use super::connection::{Conn, execute, query};
use super::writer::Durability;
use crate::model::{Health, HealthState, WebhookConfig, now_millis};
use crate::operational::{self, OperationalEvent};
use crate::store::{StoreError, StoreResult, StoreSignal};

/// The hookIds of the delivery `alias.hooks_id`, in its order, as a JSON array.
pub(super) fn hook_ids_sql(alias: &str) -> String {
    format!(
        "COALESCE((SELECT jsonb_agg(h.hook_id ORDER BY u.position) \
         FROM delivery_hook_lists l \
         CROSS JOIN LATERAL unnest(l.hook_seqs) WITH ORDINALITY AS u(seq, position) \
         JOIN hooks h ON h.seq = u.seq WHERE l.hooks_id = {alias}.hooks_id), '[]'::jsonb)"
    )
}

/// The facts of a health event about to be written (`$` parameters of the health statement):
/// the event its new state is reported as, and the hook's fields the node knows.
pub(super) fn health_params(health: &Health, last_error: Option<&str>) -> (&'static str, String) {
    let facts = operational::health_facts(health, last_error, now_millis());
    (
        operational::health_event(health.state).as_str(),
        serde_json::Value::Object(facts).to_string(),
    )
}

/// Writes the health event of a config updated through the API (a re-enable gives a DISABLED
/// config a fresh health: RECOVERED), if its state changed from `before`.
pub(super) async fn report_config_update(
    c: &Conn,
    config: &WebhookConfig,
    before: Option<HealthState>,
) -> StoreResult<Vec<StoreSignal>> {
    let product = config.product.as_str();
    if !operational::reports_health(product, before, config.health.state) {
        return Ok(Vec::new());
    }
    let now = now_millis();
    let mut hook = operational::health_facts(&config.health, None, now);
    operational::config_fields(&mut hook, &config.id, product, &config.url);
    execute(
        c,
        "INSERT INTO operational_events (app_key, event, hook, created_at) \
         VALUES ($1, $2, $3, $4)",
        &[
            &config.app_key,
            &operational::health_event(config.health.state).as_str(),
            &serde_json::Value::Object(hook).to_string(),
            &now,
        ],
    )
    .await?;
    Ok(vec![StoreSignal::OperationalEvents])
}

impl PostgresStore {
    pub(super) async fn operational_events(
        &self,
        limit: u32,
    ) -> StoreResult<Vec<OperationalEvent>> {
        let c = self.reader().await?;
        let rows = query(
            &c,
            "SELECT id, app_key, event, hook, created_at FROM operational_events \
             ORDER BY id LIMIT $1",
            &[&i64::from(limit)],
        )
        .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = col(r, 0)?;
                let event: String = col(r, 2)?;
                let event = Event::parse(&event).ok_or_else(|| {
                    StoreError::Corrupt(format!("operational event {id}: event {event:?}"))
                })?;
                Ok(OperationalEvent {
                    id,
                    app_key: col(r, 1)?,
                    event,
                    hook: col(r, 3)?,
                    created_at: col(r, 4)?,
                })
            })
            .collect()
    }

    pub(super) async fn forget_operational_events(&self, ids: Vec<i64>) -> StoreResult<()> {
        // Relaxed: a forget lost in a crash turns the rows into hooks again, and their hookIds
        // (derived from the rows) are stored already: nothing is delivered twice.
        self.write(Durability::Relaxed, move |c| async move {
            execute(
                &c,
                "DELETE FROM operational_events WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
            Ok(((), Vec::new()))
        })
        .await
    }
}
