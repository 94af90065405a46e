//! Operational events (product `hookline`): which state changes an app key is told of, and the
//! hooks that tell it. Pure rules; both stores call them inside the transaction of the change
//! they report (see ARCHITECTURE.md, "Operational events").
//!
//! How an event travels: the store that writes a state change (a config's health, a delivery
//! ending FAILED or EXPIRED) writes in the same transaction a row of `operational_events`, the
//! outbox, holding the hook without its `hookId`; `engine/operational.rs` turns each row into a
//! hook of product `hookline` through the store's ordinary ingest (fan-out, filters, queue) and
//! then forgets the row. The hookId is derived from the row ([`hook_id`]), so a row turned into
//! a hook twice (a crash between the two steps, two nodes draining at once) is stored once.

use hookline_wire::{Event, Product};
use serde_json::{Map, Value, json};

use crate::model::{AttemptResult, DeliveryStatus, Health, HealthState, Millis, rfc3339};

/// An operational event waiting in the outbox to become a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationalEvent {
    /// The outbox row (unique per store).
    pub id: i64,
    pub app_key: String,
    pub event: Event,
    /// The hook as JSON, every field but `hookId`.
    pub hook: String,
    /// When the state change it reports committed.
    pub created_at: Millis,
}

/// The event a config's health change is reported as (the caller writes one only when the state
/// changed).
pub fn health_event(after: HealthState) -> Event {
    match after {
        HealthState::Healthy => Event::WebhookConfigRecovered,
        HealthState::Failing => Event::WebhookConfigFailing,
        HealthState::Disabled => Event::WebhookConfigDisabled,
    }
}

/// Whether a change of a config's health from `before` to `after` is reported, for a config of
/// `product`. Never about a config of product `hookline` itself: its own failures would produce
/// events for itself, without end.
pub fn reports_health(product: &str, before: Option<HealthState>, after: HealthState) -> bool {
    !is_operational_product(product) && before.is_some_and(|b| b != after)
}

/// Whether a delivery that ended of a config of `product` is reported (not one of product
/// `hookline`: see [`reports_health`]).
pub fn reports_delivery(product: &str) -> bool {
    !is_operational_product(product)
}

fn is_operational_product(product: &str) -> bool {
    product.eq_ignore_ascii_case(Product::Hookline.as_str())
}

/// What an attempt's failure is called in an event's `lastError`: the HTTP status (`HTTP 503`)
/// or the error kind (`TIMEOUT`). The SQL that reads it back from a stored attempt
/// (`LAST_ERROR_SQL`) spells the same.
pub fn last_error(result: &AttemptResult) -> Option<String> {
    match (result.status_code, result.error_kind) {
        (Some(code), _) => Some(format!("HTTP {code}")),
        (None, Some(kind)) => Some(kind.as_str().to_owned()),
        (None, None) => None,
    }
}

/// `lastError` of a delivery's last stored attempt, as SQL over the `attempts` table aliased
/// `a` (the same spelling as [`last_error`]; both stores' SQL accepts it).
pub const LAST_ERROR_SQL: &str = "CASE WHEN a.status_code IS NOT NULL \
     THEN 'HTTP ' || CAST(a.status_code AS TEXT) ELSE a.error_kind END";

/// The fields of a health event the store knows without reading the config row: the caller adds
/// `webhookConfigId`, `productName` and `url` ([`config_fields`]).
pub fn health_facts(health: &Health, last_error: Option<&str>, at: Millis) -> Map<String, Value> {
    let mut facts = Map::new();
    facts.insert("occurredAt".into(), json!(rfc3339(at)));
    facts.insert("state".into(), json!(health.state.as_str()));
    facts.insert(
        "consecutiveFailures".into(),
        json!(health.consecutive_failures),
    );
    facts.insert("lastError".into(), json!(last_error));
    if health.state == HealthState::Disabled {
        let reason = health
            .disabled_reason
            .as_deref()
            .unwrap_or("disabled by its health");
        facts.insert("reason".into(), json!(reason));
    }
    facts
}

/// A health event's fields about the config.
pub fn config_fields(facts: &mut Map<String, Value>, config_id: &str, product: &str, url: &str) {
    facts.insert("webhookConfigId".into(), json!(config_id));
    facts.insert("productName".into(), json!(product));
    facts.insert("url".into(), json!(url));
}

/// The fields of a `DELIVERY_FAILED` the store knows without reading the delivery: the caller
/// adds `webhookConfigId`, `hooksId` and `hookIds` ([`delivery_fields`]).
pub fn delivery_facts(
    status: DeliveryStatus,
    attempts: u32,
    last_error: Option<&str>,
    at: Millis,
) -> Map<String, Value> {
    let mut facts = Map::new();
    facts.insert("occurredAt".into(), json!(rfc3339(at)));
    facts.insert("status".into(), json!(status.as_str()));
    facts.insert("attempts".into(), json!(attempts));
    facts.insert("lastError".into(), json!(last_error));
    facts
}

/// A `DELIVERY_FAILED`'s fields about the delivery.
pub fn delivery_fields(
    facts: &mut Map<String, Value>,
    config_id: &str,
    hooks_id: &str,
    hook_ids: &[String],
) {
    facts.insert("webhookConfigId".into(), json!(config_id));
    facts.insert("hooksId".into(), json!(hooks_id));
    facts.insert("hookIds".into(), json!(hook_ids));
}

/// Whether a delivery that ends with `status` is reported as `DELIVERY_FAILED`.
pub fn is_reported_end(status: DeliveryStatus) -> bool {
    matches!(status, DeliveryStatus::Failed | DeliveryStatus::Expired)
}

/// The hookId of the outbox row `id` written at `created_at`: an id of the generated shape derived
/// from the row ([`hookline_wire::derived_id`]), so the same row always becomes the same hook. The
/// seed's wording is part of the id: changing it would re-deliver a row drained across an upgrade.
pub fn hook_id(id: i64, created_at: Millis) -> String {
    let at = chrono::DateTime::from_timestamp_millis(created_at).unwrap_or_default();
    hookline_wire::derived_id(
        at,
        format!("hookline operational event {id} {created_at}").as_bytes(),
    )
}

/// The hook to ingest: `hook` (an object without `hookId`) with `hookId` first.
pub fn with_hook_id(hook_id: &str, hook: &str) -> Option<String> {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(hook) else {
        return None;
    };
    let mut out = Map::new();
    out.insert("hookId".into(), json!(hook_id));
    out.extend(fields.into_iter().filter(|(k, _)| k != "hookId"));
    serde_json::to_string(&Value::Object(out)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttemptErrorKind;

    fn valid(event: Event, hook: &str) {
        let value: Value = serde_json::from_str(hook).unwrap();
        if let Err(e) = hookline_wire::validate_hook(Product::Hookline, event, value, 0) {
            panic!("{event}: {e}\n{hook}");
        }
    }

    #[test]
    fn health_changes_are_reported_only_when_the_state_changes_and_never_about_hookline_configs() {
        use HealthState::*;
        assert!(reports_health("SMS", Some(Healthy), Failing));
        assert!(reports_health("SMS", Some(Failing), Disabled));
        assert!(reports_health("Email", Some(Disabled), Healthy));
        assert!(!reports_health("SMS", Some(Failing), Failing));
        assert!(!reports_health("SMS", None, Failing), "a config not found");
        assert!(!reports_health("hookline", Some(Healthy), Disabled));
        assert!(!reports_health("HOOKLINE", Some(Healthy), Disabled));
        assert!(!reports_delivery("hookline"));
        assert!(reports_delivery("KakaoTalk Bizmessage"));
        assert_eq!(health_event(Healthy), Event::WebhookConfigRecovered);
        assert_eq!(health_event(Failing), Event::WebhookConfigFailing);
        assert_eq!(health_event(Disabled), Event::WebhookConfigDisabled);
        assert!(is_reported_end(DeliveryStatus::Failed));
        assert!(is_reported_end(DeliveryStatus::Expired));
        assert!(!is_reported_end(DeliveryStatus::Succeeded));
        assert!(!is_reported_end(DeliveryStatus::Cancelled));
    }

    #[test]
    fn the_hooks_built_are_valid_hooks_of_the_catalogue_s_events() {
        let at = 1_764_700_000_123;
        let mut health = Health {
            state: HealthState::Disabled,
            consecutive_failures: 1,
            disabled_reason: Some("the receiver answered 410 Gone".into()),
            ..Health::default()
        };
        for (state, event) in [
            (HealthState::Disabled, Event::WebhookConfigDisabled),
            (HealthState::Failing, Event::WebhookConfigFailing),
            (HealthState::Healthy, Event::WebhookConfigRecovered),
        ] {
            health.state = state;
            let mut facts = health_facts(&health, Some("HTTP 410"), at);
            config_fields(&mut facts, "cfg-1", "SMS", "https://example.com/h");
            let hook = serde_json::to_string(&facts).unwrap();
            let hook = with_hook_id(&hook_id(7, at), &hook).unwrap();
            assert!(hook.starts_with(r#"{"hookId":""#), "{hook}");
            valid(event, &hook);
        }
        let mut facts = delivery_facts(DeliveryStatus::Expired, 0, None, at);
        delivery_fields(&mut facts, "cfg-1", "d-1", &["h1".into(), "h2".into()]);
        let hook = with_hook_id("x", &serde_json::to_string(&facts).unwrap()).unwrap();
        valid(Event::DeliveryFailed, &hook);
        let value: Value = serde_json::from_str(&hook).unwrap();
        assert_eq!(value["hookIds"], json!(["h1", "h2"]));
        assert_eq!(value["lastError"], Value::Null);
        assert_eq!(value["occurredAt"], json!("2025-12-02T18:26:40.123Z"));
    }

    #[test]
    fn an_outbox_row_always_becomes_the_same_hook_id_and_different_rows_different_ones() {
        let at = 1_764_700_000_123;
        assert_eq!(hook_id(1, at), hook_id(1, at));
        assert_ne!(hook_id(1, at), hook_id(2, at));
        assert_ne!(hook_id(1, at), hook_id(1, at + 1));
        let id = hook_id(1, at);
        assert!(hookline_wire::is_generated_id(&id), "{id}");
        assert!(id.starts_with("20251202182640"), "{id}");
        // The id of a row is fixed across versions: a row drained by one version and again by the
        // next (a crash in between) must be stored once. Computed independently (Python's hashlib).
        assert_eq!(id, "20251202182640oJqA8FA15dy");
    }

    #[test]
    fn last_error_names_the_status_or_the_error_kind() {
        let mut r = AttemptResult {
            started_at: 0,
            duration_ms: 0,
            status_code: Some(503),
            error_kind: None,
            error_message: None,
            response_body: None,
            retry_after: None,
            request_headers: Vec::new(),
        };
        assert_eq!(last_error(&r).as_deref(), Some("HTTP 503"));
        r.status_code = None;
        r.error_kind = Some(AttemptErrorKind::Timeout);
        assert_eq!(last_error(&r).as_deref(), Some("TIMEOUT"));
        r.error_kind = None;
        assert_eq!(last_error(&r), None);
    }
}
