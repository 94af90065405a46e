//! JSON renderings of hookline's records, as the API contract names their fields. Each is a typed
//! struct, so the OpenAPI document (`openapi.rs`) describes exactly what is sent.

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::engine::retry::format_delay;
use crate::model::{AppKeyRecord, AttemptResult, DeliverySummary, WebhookConfig, rfc3339};
use crate::service::configs::TestSend;
use crate::service::portal_links::NewPortalLink;
use crate::service::traces::{Trace, TraceOutcome};
use crate::store::DeliveryDetail;

/// The platform's result header, on every answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"isSuccessful": true, "resultCode": 0, "resultMessage": "SUCCESS"}))]
pub struct Header {
    pub is_successful: bool,
    /// 0 on success; a stable negative number per error kind.
    pub result_code: i32,
    /// `SUCCESS`, or a sentence that names the offending field by its path.
    pub result_message: String,
}

impl Header {
    pub fn success() -> Self {
        Header {
            is_successful: true,
            result_code: 0,
            result_message: "SUCCESS".to_owned(),
        }
    }
}

/// An app key. `secretKey` is present only when it is created or rotated.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"appKey": "k2Xb9QmZ4tLpR7wNc3Vd", "name": "shop",
    "createdAt": "2026-01-31T09:00:00.000Z", "secretKey": "S3cr3tK3yS3cr3tK3yS3cr3tK3yS3cr3"}))]
pub struct AppKeyView {
    pub app_key: String,
    pub name: String,
    pub created_at: String,
    /// Shown only by create and rotate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    /// Until when the secret key replaced by the last rotation keeps working (its grace
    /// period); null when it stopped at once or has stopped since.
    #[schema(format = DateTime)]
    pub previous_secret_key_expires_at: Option<String>,
}

pub fn app_key(k: &AppKeyRecord, secret_key: Option<&str>) -> AppKeyView {
    AppKeyView {
        app_key: k.app_key.clone(),
        name: k.name.clone(),
        created_at: rfc3339(k.created_at),
        secret_key: secret_key.map(str::to_owned),
        previous_secret_key_expires_at: k
            .previous_secret_key_expires_at
            .filter(|&at| at > crate::model::now_millis())
            .map(rfc3339),
    }
}

/// A portal link: a short-lived, single-use link that signs its holder into the dashboard for
/// this app key.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"url": "https://hookline.example.com/ui/portal/Q2xQk0m9ZbT4vR8sLp1WnY7cX3dF6gHj",
    "expiresAt": "2026-01-31T09:10:00.000Z", "readOnly": false}))]
pub struct PortalLinkView {
    /// Absolute when the server has `--public-url`, else a path (`/ui/portal/<token>`). The first
    /// `GET` signs the browser in; a second use, or a use after `expiresAt`, answers 410.
    pub url: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// The session it opens sees every page and can change nothing.
    pub read_only: bool,
}

/// The link's URL: the path after the server's public URL (without its trailing `/`), if any.
pub fn portal_link(link: &NewPortalLink, public_url: Option<&str>) -> PortalLinkView {
    let path = link.path();
    PortalLinkView {
        url: match public_url {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => path,
        },
        expires_at: rfc3339(link.expires_at),
        read_only: link.read_only,
    }
}

/// A config's delivery health (read-only).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    /// `HEALTHY`, `FAILING` or `DISABLED`.
    #[schema(example = "HEALTHY")]
    pub state: HealthStateName,
    pub consecutive_failures: u32,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    /// Start of the current unbroken run of failures.
    pub failing_since: Option<String>,
    /// Why health checks disabled the config.
    pub disabled_reason: Option<String>,
}

/// Health states.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthStateName {
    Healthy,
    Failing,
    Disabled,
}

/// A webhook config without its signing secrets (write-only): `hasSigningSecret` tells whether
/// one is set, `previousSigningSecretExpiresAt` until when a rotated-out one still signs.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigView {
    #[schema(example = "20260131090000AbCdEfGhIjK")]
    pub webhook_config_id: String,
    pub app_key: String,
    #[schema(example = "SMS")]
    pub product_name: ProductName,
    #[schema(example = json!(["MESSAGE_RESULT_UPDATE"]))]
    pub events: Vec<EventName>,
    #[schema(example = "https://example.com/hooks")]
    pub url: String,
    pub signature: String,
    pub has_signing_secret: bool,
    /// Until when the previous signing secret still signs (after a rotation), if one does.
    pub previous_signing_secret_expires_at: Option<String>,
    pub enabled: bool,
    pub description: String,
    pub max_hooks_per_request: u32,
    pub max_requests_in_flight: u32,
    pub timeout_ms: u32,
    #[schema(example = json!(["5s", "30s", "2m", "10m", "30m", "1h", "2h", "4h"]))]
    pub retry_schedule: Vec<String>,
    /// Extra request headers sent with every attempt, name → value.
    #[schema(example = json!({"Authorization": "Bearer abc123"}))]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The config's filter as written (docs/api.md, "Filters"); absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!({"messageStatus": {"$in": ["FAILED", "FAILED_AD"]}}))]
    pub filter: Option<serde_json::Value>,
    /// No attempt starts later than this after a hook was accepted; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "10m")]
    pub delivery_deadline: Option<String>,
    /// The top-level hook field whose value orders deliveries (docs/api.md, "Ordering"); absent
    /// when the config is not ordered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "recipientNo")]
    pub ordering_key: Option<String>,
    pub health: HealthView,
    pub created_at: String,
    pub updated_at: String,
}

/// A product's name, as emitted: one of the catalogue's products (`GET /v1/catalogue`). Its
/// schema in the OpenAPI document lists the products of the catalogue in force.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(transparent)]
pub struct ProductName(pub &'static str);

impl ProductName {
    pub fn of(p: hookline_wire::Product) -> Self {
        ProductName(p.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ProductName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hookline_wire::Product::deserialize(d).map(ProductName::of)
    }
}

impl utoipa::PartialSchema for ProductName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names: Vec<&str> = hookline_wire::Product::all()
            .map(hookline_wire::Product::as_str)
            .collect();
        string_enum("A product of the catalogue (GET /v1/catalogue).", names)
    }
}

impl ToSchema for ProductName {}

/// An event name: one of the catalogue's events. Its schema in the OpenAPI document lists the
/// events of the catalogue in force.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(transparent)]
pub struct EventName(pub &'static str);

impl EventName {
    pub fn of(e: hookline_wire::Event) -> Self {
        EventName(e.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hookline_wire::Event::deserialize(d).map(EventName::of)
    }
}

impl utoipa::PartialSchema for EventName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names: Vec<&str> = hookline_wire::Event::all()
            .iter()
            .map(|e| e.as_str())
            .collect();
        string_enum(
            "An event of the catalogue (GET /v1/catalogue); which products emit it is listed there.",
            names,
        )
    }
}

impl ToSchema for EventName {}

fn string_enum(
    description: &str,
    values: Vec<&str>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

/// Delivery statuses.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeliveryStatusName {
    Pending,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
    /// Its config's `deliveryDeadline` passed before the next attempt.
    Expired,
}

impl DeliveryStatusName {
    pub fn of(s: crate::model::DeliveryStatus) -> Self {
        use crate::model::DeliveryStatus as S;
        match s {
            S::Pending => DeliveryStatusName::Pending,
            S::Retrying => DeliveryStatusName::Retrying,
            S::Succeeded => DeliveryStatusName::Succeeded,
            S::Failed => DeliveryStatusName::Failed,
            S::Cancelled => DeliveryStatusName::Cancelled,
            S::Expired => DeliveryStatusName::Expired,
        }
    }
}

pub fn config(c: &WebhookConfig) -> ConfigView {
    use crate::model::HealthState as H;
    ConfigView {
        webhook_config_id: c.id.clone(),
        app_key: c.app_key.clone(),
        product_name: ProductName::of(c.product),
        events: c.events.iter().map(|e| EventName::of(*e)).collect(),
        url: c.url.clone(),
        signature: c.signature.clone(),
        has_signing_secret: c.signing_secret.is_some(),
        previous_signing_secret_expires_at: c
            .previous_signing_secret
            .as_ref()
            .map(|p| rfc3339(p.expires_at)),
        enabled: c.enabled,
        description: c.description.clone(),
        max_hooks_per_request: c.max_hooks_per_request,
        max_requests_in_flight: c.max_requests_in_flight,
        timeout_ms: c.timeout_ms,
        retry_schedule: c.retry_schedule.iter().map(|d| format_delay(*d)).collect(),
        headers: c.headers.iter().cloned().collect(),
        filter: c.filter.as_ref().map(|f| f.source().clone()),
        delivery_deadline: c.delivery_deadline.map(crate::duration::format),
        ordering_key: c.ordering_key.clone(),
        health: HealthView {
            state: match c.health.state {
                H::Healthy => HealthStateName::Healthy,
                H::Failing => HealthStateName::Failing,
                H::Disabled => HealthStateName::Disabled,
            },
            consecutive_failures: c.health.consecutive_failures,
            last_success_at: c.health.last_success_at.map(rfc3339),
            last_failure_at: c.health.last_failure_at.map(rfc3339),
            failing_since: c.health.failing_since.map(rfc3339),
            disabled_reason: c.health.disabled_reason.clone(),
        },
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
    }
}

/// A delivery as listed in the log.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    #[schema(example = "20260131090001Xw3kPq9LmZ0")]
    pub hooks_id: String,
    pub webhook_config_id: String,
    pub product_name: ProductName,
    pub event: EventName,
    pub status: DeliveryStatusName,
    /// The hooks it carries, in envelope order.
    pub hook_ids: Vec<String>,
    pub attempt_count: u32,
    /// When RETRYING: the next attempt's time.
    // As stored. On PostgreSQL that is the database's time (the store turns each node's retry
    // times into it), the one clock every node agrees on: the time a retry is due wherever it
    // is sent from, whichever node's API is asked and however far that node's clock is off.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// A test send's record (the config's `test` route): one sample hook, one attempt, SUCCEEDED
    /// or FAILED; never retried, redelivered or replayed.
    pub test: bool,
}

pub fn delivery(d: &DeliverySummary) -> DeliveryView {
    DeliveryView {
        hooks_id: d.hooks_id.clone(),
        webhook_config_id: d.config_id.clone(),
        product_name: ProductName::of(d.product),
        event: EventName::of(d.event),
        status: DeliveryStatusName::of(d.status),
        hook_ids: d.hook_ids.clone(),
        attempt_count: d.attempt_count,
        next_attempt_at: d.next_attempt_at.map(rfc3339),
        created_at: rfc3339(d.created_at),
        updated_at: rfc3339(d.updated_at),
        test: d.test,
    }
}

/// One HTTP attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub number: u32,
    pub started_at: String,
    pub duration_ms: u64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why there is no usable answer: `TIMEOUT`, `CONNECT`, `DNS`, `TLS`, `BLOCKED_ADDRESS`,
    /// `INVALID_URL`, `IO`.
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    /// The first 1 KiB of the response body.
    pub response_body: Option<String>,
    /// The config's custom headers as this attempt sent them, values of credential-like names
    /// (`Authorization`, `*token*`, `*key*`, ...) as `********`; absent when it sent none.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schema(example = json!({"Authorization": "********", "X-Tenant": "t-1"}))]
    pub request_headers: std::collections::BTreeMap<String, String>,
}

pub fn attempt(number: u32, r: &AttemptResult) -> AttemptView {
    AttemptView {
        number,
        started_at: rfc3339(r.started_at),
        duration_ms: r.duration_ms,
        status_code: r.status_code,
        error_kind: r.error_kind.map(|k| k.as_str().to_owned()),
        error_message: r.error_message.clone(),
        response_body: r.response_body.clone(),
        request_headers: r.request_headers.iter().cloned().collect(),
    }
}

/// The attempt of the `test` route: outside the queue, logged as a test delivery (`hooksId`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestAttemptView {
    #[serde(flatten)]
    pub attempt: AttemptView,
    pub hooks_id: String,
    pub hook_id: String,
    pub succeeded: bool,
}

pub fn test_attempt(t: &TestSend) -> TestAttemptView {
    TestAttemptView {
        attempt: attempt(1, &t.result),
        hooks_id: t.hooks_id.clone(),
        hook_id: t.hook_id.clone(),
        succeeded: t.succeeded,
    }
}

/// The envelope POSTed to a receiver (docs/wire-format.md).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeSchema {
    pub hooks_id: String,
    pub webhook_config_id: String,
    pub product_name: ProductName,
    pub app_key: String,
    pub event: EventName,
    /// One object per hook, each with its `hookId`.
    pub hooks: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// A delivery with its attempts. The envelope is embedded as raw JSON: exactly the bytes sent,
/// not a re-encoding of them.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetailView {
    #[serde(flatten)]
    pub summary: DeliveryView,
    #[schema(value_type = EnvelopeSchema)]
    pub envelope: Box<RawValue>,
    pub attempts: Vec<AttemptView>,
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

/// What became of a hook for one config (docs/api.md, "Trace of one hook").
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TraceOutcomeName {
    /// In the config's queue, waiting to be sent.
    Queued,
    /// In an open delivery (PENDING or RETRYING).
    InDelivery,
    /// A delivery that carries it succeeded.
    Delivered,
    /// Its last delivery failed.
    Failed,
    /// Its last delivery expired (reserved).
    Expired,
    /// Its last delivery was cancelled.
    Cancelled,
    /// Queued for a config that its health DISABLED: sent when it is enabled again.
    Held,
    /// The config does not subscribe to the hook's event.
    NotSubscribed,
    /// The config subscribes but was paused when the hook was accepted.
    Paused,
    /// The config's filter leaves it out.
    FilteredOut,
    /// The config was created after the hook was accepted.
    CreatedAfter,
}

impl TraceOutcomeName {
    pub fn of(o: TraceOutcome) -> Self {
        match o {
            TraceOutcome::Queued => TraceOutcomeName::Queued,
            TraceOutcome::InDelivery => TraceOutcomeName::InDelivery,
            TraceOutcome::Delivered => TraceOutcomeName::Delivered,
            TraceOutcome::Failed => TraceOutcomeName::Failed,
            TraceOutcome::Expired => TraceOutcomeName::Expired,
            TraceOutcome::Cancelled => TraceOutcomeName::Cancelled,
            TraceOutcome::Held => TraceOutcomeName::Held,
            TraceOutcome::NotSubscribed => TraceOutcomeName::NotSubscribed,
            TraceOutcome::Paused => TraceOutcomeName::Paused,
            TraceOutcome::FilteredOut => TraceOutcomeName::FilteredOut,
            TraceOutcome::CreatedAfter => TraceOutcomeName::CreatedAfter,
        }
    }
}

/// A delivery that carries the traced hook.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceDeliveryView {
    pub hooks_id: String,
    pub status: DeliveryStatusName,
    /// How many attempts it has had.
    pub attempts: u32,
    /// When its last attempt started.
    pub last_attempt_at: Option<String>,
    /// The receiver's HTTP status to its last attempt, when it answered.
    pub last_status_code: Option<u16>,
    pub created_at: String,
}

/// One config's part of a trace.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceConfigView {
    pub webhook_config_id: String,
    pub url: String,
    pub enabled: bool,
    pub health_state: HealthStateName,
    pub outcome: TraceOutcomeName,
    /// A sentence that explains the outcome.
    pub explanation: String,
    /// The deliveries to this config that carry the hook, oldest first.
    pub deliveries: Vec<TraceDeliveryView>,
}

/// A hook as accepted and what became of it for every config of its app key for its product.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookTraceView {
    pub hook_id: String,
    pub app_key: String,
    pub product_name: ProductName,
    pub event: EventName,
    pub accepted_at: String,
    /// The hook as stored and delivered (normalised JSON).
    #[schema(value_type = Object)]
    pub body: Box<RawValue>,
    pub configs: Vec<TraceConfigView>,
}

pub fn hook_trace(t: &Trace) -> Result<HookTraceView, serde_json::Error> {
    use crate::model::HealthState as H;
    Ok(HookTraceView {
        hook_id: t.hook.hook_id.clone(),
        app_key: t.hook.app_key.clone(),
        product_name: ProductName::of(t.hook.product),
        event: EventName::of(t.hook.event),
        accepted_at: rfc3339(t.hook.accepted_at),
        body: RawValue::from_string(t.hook.body.clone())?,
        configs: t
            .configs
            .iter()
            .map(|c| TraceConfigView {
                webhook_config_id: c.config.id.clone(),
                url: c.config.url.clone(),
                enabled: c.config.enabled,
                health_state: match c.config.health.state {
                    H::Healthy => HealthStateName::Healthy,
                    H::Failing => HealthStateName::Failing,
                    H::Disabled => HealthStateName::Disabled,
                },
                outcome: TraceOutcomeName::of(c.outcome),
                explanation: c.explanation.clone(),
                deliveries: c
                    .deliveries
                    .iter()
                    .map(|d| TraceDeliveryView {
                        hooks_id: d.hooks_id.clone(),
                        status: DeliveryStatusName::of(d.status),
                        attempts: d.attempt_count,
                        last_attempt_at: d.last_attempt_at.map(rfc3339),
                        last_status_code: d.last_status_code,
                        created_at: rfc3339(d.created_at),
                    })
                    .collect(),
            })
            .collect(),
    })
}

// ---------- whole answers: the result header and the payload beside it ----------

/// Every error answer: the header alone, `isSuccessful` false.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"header": {"isSuccessful": false, "resultCode": -1005,
    "resultMessage": "hooks[3].messageStatus: \"DONE\" is not one of COMPLETED, FAILED, CANCEL, DUPLICATED, FAILED_AD"}}))]
pub struct ErrorResponse {
    pub header: Header,
}

macro_rules! answer {
    ($(#[$doc:meta])* $name:ident { $field:ident : $ty:ty $(, $more:ident : $more_ty:ty)* }) => {
        $(#[$doc])*
        #[derive(Debug, Serialize, ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub header: Header,
            pub $field: $ty,
            $(pub $more: $more_ty,)*
        }
    };
}

answer!(
    /// `{"header", "appKey"}`.
    AppKeyResponse { app_key: AppKeyView }
);
answer!(
    /// `{"header", "portalLink"}`.
    PortalLinkResponse { portal_link: PortalLinkView }
);
answer!(
    /// A page of app keys; `nextCursor` is null on the last page.
    AppKeyListResponse { app_keys: Vec<AppKeyView>, next_cursor: Option<String> }
);
answer!(
    /// `{"header", "webhookConfig"}`.
    ConfigResponse { webhook_config: ConfigView }
);
answer!(
    /// `{"header", "webhookConfig", "signingSecret"}`: the new signing secret is shown only here.
    RotatedSigningSecretResponse { webhook_config: ConfigView, signing_secret: String }
);
answer!(
    /// A page of webhook configs; `nextCursor` is null on the last page.
    ConfigListResponse { webhook_configs: Vec<ConfigView>, next_cursor: Option<String> }
);
answer!(
    /// The hookIds of the accepted hooks, in input order.
    HookIdsResponse { hook_ids: Vec<String> }
);
answer!(
    /// A page of the delivery log, newest first; `nextCursor` is null on the last page.
    DeliveryListResponse { deliveries: Vec<DeliveryView>, next_cursor: Option<String> }
);
answer!(
    /// `{"header", "delivery"}` (the new delivery of a redeliver).
    DeliveryResponse { delivery: DeliveryView }
);
answer!(
    /// One delivery with its exact envelope and every attempt.
    DeliveryDetailResponse { delivery: DeliveryDetailView }
);
answer!(
    /// The attempt of the `test` route.
    TestAttemptResponse { attempt: TestAttemptView }
);
answer!(
    /// The trace of one hook.
    HookTraceResponse { hook: HookTraceView }
);
answer!(
    /// The admin's search: the trace of the hookId under every app key that accepted it.
    HookTraceListResponse { hooks: Vec<HookTraceView> }
);
answer!(
    /// How many hooks a replay queued again.
    CountResponse { count: u64 }
);
answer!(
    /// The event catalogue in force.
    CatalogueResponse { catalogue: CatalogueView }
);

/// The event catalogue: every product and its events.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogueView {
    pub products: Vec<CatalogueProductView>,
}

/// A product of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogueProductView {
    #[schema(example = "SMS")]
    pub product_name: String,
    /// False for a product whose events hookline produces itself (ingest refuses them).
    pub ingestible: bool,
    pub events: Vec<CatalogueEventView>,
}

/// An event of a product: what it means, the JSON Schema of one hook, aliases and an example.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogueEventView {
    #[schema(example = "MESSAGE_RESULT_UPDATE")]
    pub event: String,
    pub description: String,
    /// A JSON Schema (draft 2020-12) of one hook, equivalent to what ingest checks.
    #[schema(value_type = Object)]
    pub hook_schema: serde_json::Value,
    /// An accepted input field name and the name it is delivered under.
    #[schema(value_type = Object, example = json!({"_link": "_links"}))]
    pub aliases: serde_json::Map<String, serde_json::Value>,
    /// A valid hook of this event, as delivered.
    #[schema(value_type = Object)]
    pub example: serde_json::Value,
}

/// The catalogue as `GET /v1/catalogue` shows it.
pub fn catalogue(c: &hookline_wire::Catalogue) -> CatalogueView {
    CatalogueView {
        products: c
            .products()
            .iter()
            .map(|p| CatalogueProductView {
                product_name: p.product().as_str().to_owned(),
                ingestible: p.ingestible(),
                events: p
                    .events()
                    .iter()
                    .map(|e| CatalogueEventView {
                        event: e.event().as_str().to_owned(),
                        description: e.description().to_owned(),
                        hook_schema: e.hook_schema().clone(),
                        aliases: e
                            .aliases()
                            .iter()
                            .map(|(from, to)| (from.clone(), serde_json::Value::String(to.clone())))
                            .collect(),
                        example: e.example().clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// `{"header": success, key: value}` as a typed answer.
pub fn ok() -> Header {
    Header::success()
}
