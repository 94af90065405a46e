//! JSON renderings of hookline's records, as the API contract names their fields.

use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::engine::retry::format_delay;
use crate::model::{AppKeyRecord, AttemptResult, DeliverySummary, WebhookConfig, rfc3339};
use crate::store::DeliveryDetail;

pub fn app_key(k: &AppKeyRecord, secret_key: Option<&str>) -> Value {
    let mut v = json!({
        "appKey": k.app_key,
        "name": k.name,
        "createdAt": rfc3339(k.created_at),
    });
    if let Some(secret) = secret_key {
        v["secretKey"] = json!(secret);
    }
    v
}

/// A config without its signing secret (write-only); `hasSigningSecret` tells whether one is set.
pub fn config(c: &WebhookConfig) -> Value {
    json!({
        "webhookConfigId": c.id,
        "appKey": c.app_key,
        "productName": c.product.as_str(),
        "events": c.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "url": c.url,
        "signature": c.signature,
        "hasSigningSecret": c.signing_secret.is_some(),
        "enabled": c.enabled,
        "description": c.description,
        "maxHooksPerRequest": c.max_hooks_per_request,
        "maxRequestsInFlight": c.max_requests_in_flight,
        "timeoutMs": c.timeout_ms,
        "retrySchedule": c.retry_schedule.iter().map(|d| format_delay(*d)).collect::<Vec<_>>(),
        "health": {
            "state": c.health.state.as_str(),
            "consecutiveFailures": c.health.consecutive_failures,
            "lastSuccessAt": c.health.last_success_at.map(rfc3339),
            "lastFailureAt": c.health.last_failure_at.map(rfc3339),
            "failingSince": c.health.failing_since.map(rfc3339),
            "disabledReason": c.health.disabled_reason,
        },
        "createdAt": rfc3339(c.created_at),
        "updatedAt": rfc3339(c.updated_at),
    })
}

pub fn delivery(d: &DeliverySummary) -> Value {
    json!({
        "hooksId": d.hooks_id,
        "webhookConfigId": d.config_id,
        "productName": d.product.as_str(),
        "event": d.event.as_str(),
        "status": d.status.as_str(),
        "hookIds": d.hook_ids,
        "attemptCount": d.attempt_count,
        "nextAttemptAt": d.next_attempt_at.map(rfc3339),
        "createdAt": rfc3339(d.created_at),
        "updatedAt": rfc3339(d.updated_at),
    })
}

pub fn attempt(number: u32, r: &AttemptResult) -> Value {
    json!({
        "number": number,
        "startedAt": rfc3339(r.started_at),
        "durationMs": r.duration_ms,
        "statusCode": r.status_code,
        "errorKind": r.error_kind.map(|k| k.as_str()),
        "errorMessage": r.error_message,
        "responseBody": r.response_body,
    })
}

/// A delivery with its attempts. The envelope is embedded as raw JSON: exactly the bytes sent,
/// not a re-encoding of them.
#[derive(serde::Serialize)]
pub struct DeliveryDetailView {
    #[serde(flatten)]
    summary: Value,
    envelope: Box<RawValue>,
    attempts: Vec<Value>,
}

pub fn delivery_detail(d: &DeliveryDetail) -> Result<DeliveryDetailView, serde_json::Error> {
    let envelope = RawValue::from_string(String::from_utf8_lossy(&d.envelope).into_owned())?;
    Ok(DeliveryDetailView {
        summary: delivery(&d.summary),
        envelope,
        attempts: d
            .attempts
            .iter()
            .map(|a| attempt(a.number, &a.result))
            .collect(),
    })
}
