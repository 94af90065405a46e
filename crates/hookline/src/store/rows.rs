//! The rows both backends store, and their mapping to the model.
//!
//! Both schemas have the same config and delivery columns, in the same order: a backend reads a
//! result row's columns into a [`ConfigRow`], [`DeliveryRow`] or [`AttemptRow`], and the
//! conversion to model types happens here, after the statement is done, so a stored value that does
//! not parse back is our [`StoreError::Corrupt`], not a driver error.

use std::time::Duration;

use hookline_wire::{Event, Product};

use super::{StoreError, StoreResult};
use crate::model::{
    AttemptErrorKind, AttemptRecord, AttemptResult, DeliveryStatus, DeliverySummary, Health,
    HealthState, HookTrace, PreviousSecret, SendableDelivery, StoredHook, TracedDelivery,
    WebhookConfig,
};

pub(super) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

pub(super) fn parse_product(s: &str) -> StoreResult<Product> {
    Product::parse(s).ok_or_else(|| corrupt("product", s))
}

pub(super) fn parse_event(s: &str) -> StoreResult<Event> {
    Event::parse(s).ok_or_else(|| corrupt("event", s))
}

pub(super) fn parse_status(s: &str) -> StoreResult<DeliveryStatus> {
    DeliveryStatus::parse(s).ok_or_else(|| corrupt("delivery status", s))
}

pub(super) fn parse_health_state(s: &str) -> StoreResult<HealthState> {
    HealthState::parse(s).ok_or_else(|| corrupt("health state", s))
}

/// A config's events as stored: comma-separated names.
pub(super) fn join_events(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A config's retry schedule as stored: comma-separated milliseconds.
pub(super) fn schedule_text(config: &WebhookConfig) -> String {
    config
        .retry_schedule
        .iter()
        .map(|d| d.as_millis().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A config's filter as stored: its JSON text, NULL when none.
pub(super) fn filter_text(config: &WebhookConfig) -> Option<String> {
    config.filter.as_ref().map(|f| f.to_stored())
}

/// A config's `deliveryDeadline` as stored: milliseconds, NULL when none.
pub(super) fn deadline_ms(config: &WebhookConfig) -> Option<i64> {
    config
        .delivery_deadline
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A config's custom headers as stored (see [`ConfigRow::headers`]).
pub(super) fn headers_text(config: &WebhookConfig) -> Option<String> {
    if config.headers.is_empty() {
        None
    } else {
        serde_json::to_string(&config.headers).ok()
    }
}

pub(super) const CONFIG_COLUMNS: &str = "id, app_key, product, events, url, signature, signing_secret, \
    enabled, description, max_hooks, max_in_flight, timeout_ms, retry_schedule, health_state, \
    consecutive_failures, last_success_at, last_failure_at, failing_since, disabled_reason, \
    created_at, updated_at, previous_signing_secret, previous_signing_secret_expires_at, headers, \
    filter, delivery_deadline_ms, ordering_key";

/// Raw columns of a config row, in [`CONFIG_COLUMNS`] order.
pub(super) struct ConfigRow {
    pub(super) id: String,
    pub(super) app_key: String,
    pub(super) product: String,
    pub(super) events: String,
    pub(super) url: String,
    pub(super) signature: String,
    pub(super) signing_secret: Option<String>,
    pub(super) enabled: bool,
    pub(super) description: String,
    pub(super) max_hooks: i64,
    pub(super) max_in_flight: i64,
    pub(super) timeout_ms: i64,
    pub(super) retry_schedule: String,
    pub(super) health_state: String,
    pub(super) consecutive_failures: i64,
    pub(super) last_success_at: Option<i64>,
    pub(super) last_failure_at: Option<i64>,
    pub(super) failing_since: Option<i64>,
    pub(super) disabled_reason: Option<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) previous_signing_secret: Option<String>,
    pub(super) previous_signing_secret_expires_at: Option<i64>,
    /// Custom headers as a JSON array of `[name, value]` pairs; NULL when none.
    pub(super) headers: Option<String>,
    /// The filter's JSON; NULL when none.
    pub(super) filter: Option<String>,
    /// `deliveryDeadline` in milliseconds; NULL when none.
    pub(super) delivery_deadline_ms: Option<i64>,
    /// `orderingKey`: a top-level hook field's name; NULL when the config is not ordered.
    pub(super) ordering_key: Option<String>,
}

impl ConfigRow {
    pub(super) fn into_config(self) -> StoreResult<WebhookConfig> {
        let events = if self.events.is_empty() {
            Vec::new()
        } else {
            self.events
                .split(',')
                .map(parse_event)
                .collect::<StoreResult<Vec<_>>>()?
        };
        let retry_schedule = if self.retry_schedule.is_empty() {
            Vec::new()
        } else {
            self.retry_schedule
                .split(',')
                .map(|ms| {
                    ms.parse::<u64>()
                        .map(Duration::from_millis)
                        .map_err(|_| corrupt("retry schedule", &self.retry_schedule))
                })
                .collect::<StoreResult<Vec<_>>>()?
        };
        let headers = match &self.headers {
            None => Vec::new(),
            Some(text) => serde_json::from_str::<Vec<(String, String)>>(text)
                .map_err(|_| corrupt("headers", text))?,
        };
        let filter = match &self.filter {
            None => None,
            Some(text) => {
                crate::filter::Filter::from_stored(text).map_err(|_| corrupt("filter", text))?
            }
        };
        let delivery_deadline = match self.delivery_deadline_ms {
            None => None,
            Some(ms) => Some(
                u64::try_from(ms)
                    .map(Duration::from_millis)
                    .map_err(|_| corrupt("delivery deadline", &ms.to_string()))?,
            ),
        };
        Ok(WebhookConfig {
            headers,
            filter,
            delivery_deadline,
            ordering_key: self.ordering_key,
            product: parse_product(&self.product)?,
            events,
            retry_schedule,
            health: Health {
                state: parse_health_state(&self.health_state)?,
                consecutive_failures: self.consecutive_failures as u32,
                last_success_at: self.last_success_at,
                last_failure_at: self.last_failure_at,
                failing_since: self.failing_since,
                disabled_reason: self.disabled_reason,
            },
            id: self.id,
            app_key: self.app_key,
            url: self.url,
            signature: self.signature,
            signing_secret: self.signing_secret,
            previous_signing_secret: self
                .previous_signing_secret
                .zip(self.previous_signing_secret_expires_at)
                .map(|(secret, expires_at)| PreviousSecret { secret, expires_at }),
            enabled: self.enabled,
            description: self.description,
            max_hooks_per_request: self.max_hooks as u32,
            max_requests_in_flight: self.max_in_flight as u32,
            timeout_ms: self.timeout_ms as u32,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub(super) const DELIVERY_COLUMNS: &str = "hooks_id, app_key, config_id, product, event, status, \
    attempt_count, next_attempt_at, created_at, updated_at, test";

/// Raw columns of a delivery row, in [`DELIVERY_COLUMNS`] order.
#[derive(Clone)]
pub(super) struct DeliveryRow {
    pub(super) hooks_id: String,
    pub(super) app_key: String,
    pub(super) config_id: String,
    pub(super) product: String,
    pub(super) event: String,
    pub(super) status: String,
    pub(super) attempt_count: i64,
    pub(super) next_attempt_at: Option<i64>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    /// A test send's record (the `test` route), not a delivery of ingested hooks.
    pub(super) test: bool,
}

impl DeliveryRow {
    pub(super) fn into_summary(self, hook_ids: Vec<String>) -> StoreResult<DeliverySummary> {
        let status = parse_status(&self.status)?;
        Ok(DeliverySummary {
            product: parse_product(&self.product)?,
            event: parse_event(&self.event)?,
            next_attempt_at: if status.is_open() {
                self.next_attempt_at
            } else {
                None
            },
            status,
            hooks_id: self.hooks_id,
            app_key: self.app_key,
            config_id: self.config_id,
            attempt_count: self.attempt_count as u32,
            hook_ids,
            created_at: self.created_at,
            updated_at: self.updated_at,
            test: self.test,
        })
    }

    /// The delivery as the engine sends it, with its hooks in envelope order.
    pub(super) fn into_sendable(self, hooks: Vec<StoredHook>) -> StoreResult<SendableDelivery> {
        Ok(SendableDelivery {
            product: parse_product(&self.product)?,
            event: parse_event(&self.event)?,
            hooks_id: self.hooks_id,
            config_id: self.config_id,
            app_key: self.app_key,
            attempt_count: self.attempt_count as u32,
            hooks,
        })
    }
}

/// Raw columns of an attempt row: `number, started_at, duration_ms, status_code, error_kind,
/// error_message, response_body, request_headers`.
pub(super) struct AttemptRow {
    pub(super) number: i64,
    pub(super) started_at: i64,
    pub(super) duration_ms: i64,
    pub(super) status_code: Option<i64>,
    pub(super) error_kind: Option<String>,
    pub(super) error_message: Option<String>,
    pub(super) response_body: Option<String>,
    /// The custom headers sent, as [`request_headers_text`] wrote them.
    pub(super) request_headers: Option<String>,
}

/// An attempt's custom headers as stored: a JSON array of `[name, value]` pairs (values already
/// masked), NULL when none.
pub(super) fn request_headers_text(result: &AttemptResult) -> Option<String> {
    if result.request_headers.is_empty() {
        None
    } else {
        serde_json::to_string(&result.request_headers).ok()
    }
}

impl AttemptRow {
    pub(super) fn into_record(self) -> StoreResult<AttemptRecord> {
        let error_kind = match self.error_kind {
            Some(k) => Some(AttemptErrorKind::parse(&k).ok_or_else(|| corrupt("error kind", &k))?),
            None => None,
        };
        Ok(AttemptRecord {
            number: self.number as u32,
            result: AttemptResult {
                started_at: self.started_at,
                duration_ms: self.duration_ms.max(0) as u64,
                status_code: self.status_code.map(|s| s as u16),
                error_kind,
                error_message: self.error_message,
                response_body: self.response_body,
                retry_after: None,
                request_headers: match &self.request_headers {
                    None => Vec::new(),
                    Some(text) => serde_json::from_str(text)
                        .map_err(|_| corrupt("attempt request headers", text))?,
                },
            },
        })
    }
}

/// `seq, app_key, hook_id, product, event, body, created_at` of a traced hook.
pub(super) const TRACE_HOOK_COLUMNS: &str =
    "h.seq, h.app_key, h.hook_id, h.product, h.event, h.body, h.created_at";

/// The deliveries that carry a hook, with their last attempt (the attempts' primary key finds
/// it), oldest first. `carrying` is the backend's subquery of those deliveries' rows, named `d`
/// (SQLite: through `delivery_hooks_by_hook`; PostgreSQL: through `delivery_hook_lists_by_hook`,
/// the lists whose span of seqs holds it); `key` the deliveries' column that `attempts` names in
/// `reference` (SQLite: `seq` in `delivery_seq`; PostgreSQL: `hooks_id` in `hooks_id`).
pub(super) fn trace_deliveries_sql(carrying: &str, key: &str, reference: &str) -> String {
    format!(
        "SELECT d.hooks_id, d.config_id, d.status, d.attempt_count, d.created_at, d.updated_at, \
         d.test, a.started_at, a.status_code \
         FROM ({carrying}) d \
         LEFT JOIN attempts a ON a.{reference} = d.{key} AND a.number = \
         (SELECT max(l.number) FROM attempts l WHERE l.{reference} = d.{key}) \
         ORDER BY d.created_at, d.hooks_id"
    )
}

/// Raw columns of a traced hook, in [`TRACE_HOOK_COLUMNS`] order.
pub(super) struct TraceHookRow {
    pub(super) seq: i64,
    pub(super) app_key: String,
    pub(super) hook_id: String,
    pub(super) product: String,
    pub(super) event: String,
    pub(super) body: String,
    pub(super) created_at: i64,
}

/// Raw columns of [`trace_deliveries_sql`].
pub(super) struct TraceDeliveryRow {
    pub(super) hooks_id: String,
    pub(super) config_id: String,
    pub(super) status: String,
    pub(super) attempt_count: i64,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) test: bool,
    pub(super) last_attempt_at: Option<i64>,
    pub(super) last_status_code: Option<i64>,
}

impl TraceHookRow {
    pub(super) fn into_trace(
        self,
        configs: Vec<ConfigRow>,
        queued_for: Vec<String>,
        deliveries: Vec<TraceDeliveryRow>,
    ) -> StoreResult<HookTrace> {
        let deliveries = deliveries
            .into_iter()
            .map(|d| {
                Ok(TracedDelivery {
                    status: parse_status(&d.status)?,
                    hooks_id: d.hooks_id,
                    config_id: d.config_id,
                    attempt_count: d.attempt_count.max(0) as u32,
                    created_at: d.created_at,
                    updated_at: d.updated_at,
                    last_attempt_at: d.last_attempt_at,
                    last_status_code: d.last_status_code.and_then(|s| u16::try_from(s).ok()),
                    test: d.test,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(HookTrace {
            product: parse_product(&self.product)?,
            event: parse_event(&self.event)?,
            app_key: self.app_key,
            hook_id: self.hook_id,
            body: self.body,
            accepted_at: self.created_at,
            configs: configs
                .into_iter()
                .map(ConfigRow::into_config)
                .collect::<StoreResult<Vec<_>>>()?,
            queued_for,
            deliveries,
        })
    }
}
