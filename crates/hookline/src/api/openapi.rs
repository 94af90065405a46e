//! The OpenAPI 3 document (`GET /openapi.json`), generated from the handlers' `#[utoipa::path]`
//! annotations and the typed answers of `views.rs`, and the browsable docs at `/docs` (Swagger UI,
//! its assets compiled into the binary).
//!
//! Request bodies are parsed by hand (to name the offending field in errors); the request schemas
//! here describe what those parsers accept.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

use super::views::{self, ErrorResponse, EventName, ProductName};

// ---------- parameters ----------

#[derive(IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
pub struct AppKeyPath {
    /// The app key (20 letters and digits).
    #[param(example = "k2Xb9QmZ4tLpR7wNc3Vd")]
    pub app_key: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
pub struct ConfigPath {
    #[param(example = "20260131090000AbCdEfGhIjK")]
    pub webhook_config_id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
pub struct HooksIdPath {
    /// The delivery's id, as sent in the envelope's `hooksId`.
    #[param(example = "20260131090001Xw3kPq9LmZ0")]
    pub hooks_id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
pub struct HookIdPath {
    /// A hook's id, as answered by ingest and sent in the envelope's `hooks[].hookId`.
    #[param(example = "msg-20260131-0001")]
    pub hook_id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct PageParams {
    /// Items per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ConfigListParams {
    pub product_name: Option<ProductName>,
    /// Configs subscribed to this event.
    pub event: Option<EventName>,
    pub enabled: Option<bool>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct DeliveryListParams {
    pub webhook_config_id: Option<String>,
    pub event: Option<EventName>,
    pub status: Option<views::DeliveryStatusName>,
    /// Deliveries created at or after this RFC 3339 time.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Deliveries created before this RFC 3339 time.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Deliveries that carry this hook.
    pub hook_id: Option<String>,
}

// ---------- request bodies ----------

/// Create an app key.
#[derive(serde::Deserialize, ToSchema)]
#[schema(example = json!({"name": "shop"}))]
pub struct AppKeyRequest {
    /// A name for people (default empty).
    #[schema(max_length = 1024)]
    pub name: Option<String>,
}

/// The settable fields of a webhook config.
#[derive(serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"productName": "SMS", "events": ["MESSAGE_RESULT_UPDATE", "UNSUBSCRIBE"],
    "url": "https://example.com/hooks", "signature": "my-shared-signature",
    "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "maxHooksPerRequest": 100,
    "retrySchedule": ["5s", "30s", "2m"]}))]
pub struct ConfigRequest {
    /// Any letter case is accepted (`Sms`).
    pub product_name: ProductName,
    /// The events it receives, each valid for the product.
    #[schema(min_items = 1)]
    pub events: Vec<EventName>,
    /// An absolute `http` or `https` URL.
    #[schema(pattern = "^https?://", max_length = 2048)]
    pub url: String,
    /// Sent verbatim in `X-Toast-Webhook-Signature`.
    #[schema(min_length = 1, max_length = 1024)]
    pub signature: String,
    /// `whsec_` + base64 of a 24 to 64 byte key: adds the Standard Webhooks headers. Write-only.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]+={0,2}$")]
    pub signing_secret: Option<String>,
    /// Default true; a disabled config receives nothing new.
    pub enabled: Option<bool>,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    /// Default 100.
    #[schema(minimum = 1, maximum = 1000)]
    pub max_hooks_per_request: Option<u32>,
    /// The ceiling of the adaptive concurrency (which starts at 8); default 64.
    #[schema(minimum = 1, maximum = 64)]
    pub max_requests_in_flight: Option<u32>,
    /// Per attempt; default 10000.
    #[schema(minimum = 100, maximum = 60000)]
    pub timeout_ms: Option<u32>,
    /// Delays before attempts 2, 3, ...: durations such as `500ms`, `5s`, `2m`, `1h`, from 100ms
    /// to 24h; ±20 % jitter applies. Default `5s, 30s, 2m, 10m, 30m, 1h, 2h, 4h`.
    #[schema(max_items = 30)]
    pub retry_schedule: Option<Vec<String>>,
    /// Extra request headers sent with every attempt, name → value: at most 20; names are HTTP
    /// tokens; values at most 1,024 bytes of visible ASCII (no CR, LF or NUL). Refused: `Host`,
    /// `Content-Type`, `Content-Length`, `Transfer-Encoding`, `Connection`, `User-Agent`,
    /// `X-Toast-Webhook-Signature`, `X-Hookline-Test` and every `webhook-*`. A replace without
    /// it removes them.
    #[schema(example = json!({"Authorization": "Bearer abc123"}))]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Which hooks this config receives: an object whose keys are field paths of the hook
    /// (`messageStatus`, `_links.self.href`; through arrays: any element) and whose values are a
    /// string, number, boolean or null (equality) or an object of operators that must all hold:
    /// `$eq`, `$ne`, `$in`, `$nin`, `$gt`, `$gte`, `$lt`, `$lte`, `$exists`, `$prefix`; `$and` and
    /// `$or` take an array of filters, `$not` a filter. A hook that does not match is not queued
    /// for this config. At most 64 conditions, nested at most 8 deep.
    #[schema(value_type = Option<Object>, example = json!({"messageStatus": {"$in": ["FAILED", "FAILED_AD"]}, "sendNo": "15446859"}))]
    pub filter: Option<serde_json::Value>,
    /// A duration from `1s` to `30d`: no attempt starts later than this after a hook was
    /// accepted (counted from the oldest hook of a delivery); a delivery whose next attempt would
    /// start later ends `EXPIRED`. Absent or `null`: no deadline.
    #[schema(example = "10m")]
    pub delivery_deadline: Option<String>,
    /// The name of a top-level hook field (e.g. `recipientNo`): hooks with the same value of it
    /// are delivered in the order they were accepted, one delivery at a time; a key whose
    /// receiver keeps failing holds back only that key (docs/api.md, "Ordering"). 1 to 64 ASCII
    /// letters, digits or `_`, not starting with a digit. Absent or `null`: not ordered.
    #[schema(
        example = "recipientNo",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z_][A-Za-z0-9_]*$"
    )]
    pub ordering_key: Option<String>,
}

/// A JSON Merge Patch of a webhook config: only the fields present change.
#[derive(serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"url": "https://example.com/new-hooks", "enabled": false}))]
pub struct ConfigPatch {
    pub product_name: Option<ProductName>,
    #[schema(min_items = 1)]
    pub events: Option<Vec<EventName>>,
    #[schema(pattern = "^https?://", max_length = 2048)]
    pub url: Option<String>,
    #[schema(min_length = 1, max_length = 1024)]
    pub signature: Option<String>,
    /// `null` removes the signing secret.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]+={0,2}$")]
    pub signing_secret: Option<String>,
    pub enabled: Option<bool>,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    #[schema(minimum = 1, maximum = 1000)]
    pub max_hooks_per_request: Option<u32>,
    #[schema(minimum = 1, maximum = 64)]
    pub max_requests_in_flight: Option<u32>,
    #[schema(minimum = 100, maximum = 60000)]
    pub timeout_ms: Option<u32>,
    #[schema(max_items = 30)]
    pub retry_schedule: Option<Vec<String>>,
    /// Merged into the config's headers: a name with `null` removes that header.
    pub headers: Option<std::collections::BTreeMap<String, Option<String>>>,
    /// Merged into the config's filter as JSON Merge Patch merges objects: a key with `null`
    /// removes that condition; `"filter": null` removes the filter.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// `null` removes the deadline.
    pub delivery_deadline: Option<String>,
    /// `null` removes the ordering: later hooks are no longer ordered.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z_][A-Za-z0-9_]*$")]
    pub ordering_key: Option<String>,
}

/// Ingest: hooks of one product and event.
#[derive(serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"productName": "SMS", "event": "MESSAGE_RESULT_UPDATE", "hooks": [
    {"hookId": "20240429205809GcSUXthVA00", "requestId": "20240429205802y0Tl7Gbz0e0",
     "recipientSeq": 1, "messageStatus": "COMPLETED", "resultCode": "1000"}]}))]
pub struct IngestRequest {
    /// `SMS` or `KakaoTalk Bizmessage`, any letter case.
    pub product_name: String,
    pub event: EventName,
    /// One object per event occurrence, each validated against the event's table
    /// (docs/wire-format.md); `hookId` is optional (generated when missing).
    #[schema(min_items = 1)]
    pub hooks: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Which event the `test` route sends.
#[derive(serde::Deserialize, ToSchema)]
#[schema(example = json!({"event": "UNSUBSCRIBE"}))]
pub struct TestRequest {
    /// Default: the config's first event.
    pub event: Option<EventName>,
}

/// Which past deliveries' hooks to queue again.
#[derive(serde::Deserialize, ToSchema)]
#[schema(example = json!({"since": "2026-01-31T00:00:00Z", "status": ["FAILED"]}))]
pub struct ReplayRequest {
    /// Deliveries created at or after this RFC 3339 time, or this long ago (`"1h"`).
    #[schema(example = "1h")]
    pub since: Option<String>,
    /// Deliveries created before this RFC 3339 time, or this long ago.
    pub until: Option<String>,
    /// Default: every status.
    pub status: Option<Vec<views::DeliveryStatusName>>,
    /// Only count what would be queued again; queue nothing.
    pub dry_run: Option<bool>,
}

/// A signing secret rotation.
#[derive(serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"gracePeriod": "24h"}))]
pub struct RotateSigningSecretRequest {
    /// The new secret; generated when omitted.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]+={0,2}$")]
    pub signing_secret: Option<String>,
    /// How long the old secret keeps signing beside the new one: `0s` to `30d`, default `24h`.
    pub grace_period: Option<String>,
}

/// An app key's secret-key rotation.
#[derive(serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"gracePeriod": "1h"}))]
pub struct SecretKeyRotationRequest {
    /// How long the replaced secret key keeps working beside the new one: `0s` to `7d`, default
    /// `0s` (it stops at once).
    pub grace_period: Option<String>,
}

/// What a portal link is asked to be (both fields optional).
#[derive(serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"expiresIn": "1h", "readOnly": true}))]
pub struct PortalLinkRequest {
    /// How long the link works if unused: a duration from `1m` to `24h`, default `10m`.
    #[schema(example = "10m")]
    pub expires_in: Option<String>,
    /// Default false. True: the session it opens sees every page and can change nothing.
    pub read_only: Option<bool>,
}

// ---------- error answers ----------

/// Errors of the admin routes.
#[derive(IntoResponses)]
pub enum AdminErrors {
    /// Bad input: the message names the field.
    #[response(status = 400)]
    BadRequest(ErrorResponse),
    /// No or a wrong admin token.
    #[response(status = 401)]
    Unauthorized(ErrorResponse),
    /// A unique value is taken.
    #[response(status = 409)]
    Conflict(ErrorResponse),
    /// The body is larger than the limit.
    #[response(status = 413)]
    TooLarge(ErrorResponse),
    /// The body is not `application/json`.
    #[response(status = 415)]
    NotJson(ErrorResponse),
    /// Too many failed authentications from this address (wrong admin tokens): refused before the
    /// credentials are checked, even right ones; `Retry-After` says in how many seconds to try
    /// again (`--auth-failures-per-address`, `--auth-failures-per-target`).
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))]
    TooManyFailedAuthentications(ErrorResponse),
    /// A bug: the message says what failed.
    #[response(status = 500)]
    Internal(ErrorResponse),
    /// The store is unavailable; nothing was changed, try again.
    #[response(status = 503)]
    Unavailable(ErrorResponse),
}

/// Errors of the admin routes that read (no body).
#[derive(IntoResponses)]
pub enum AdminReadErrors {
    /// Bad input (a path parameter): the message names it.
    #[response(status = 400)]
    BadRequest(ErrorResponse),
    /// No or a wrong admin token.
    #[response(status = 401)]
    Unauthorized(ErrorResponse),
    /// Nothing with that id.
    #[response(status = 404)]
    NotFound(ErrorResponse),
    /// Too many failed authentications from this address (wrong admin tokens): refused before the
    /// credentials are checked, even right ones; `Retry-After` says in how many seconds to try
    /// again (`--auth-failures-per-address`, `--auth-failures-per-target`).
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))]
    TooManyFailedAuthentications(ErrorResponse),
    /// A bug: the message says what failed.
    #[response(status = 500)]
    Internal(ErrorResponse),
    /// The store is unavailable; try again.
    #[response(status = 503)]
    Unavailable(ErrorResponse),
}

/// Errors of the routes under `/v1/appkeys/{appKey}/` that take no body.
#[derive(IntoResponses)]
pub enum AppKeyErrors {
    /// Bad input (a query parameter, a cursor): the message names it.
    #[response(status = 400)]
    BadRequest(ErrorResponse),
    /// No or an unknown secret key (or a wrong admin token).
    #[response(status = 401)]
    Unauthorized(ErrorResponse),
    /// A valid secret key of another app key.
    #[response(status = 403)]
    Forbidden(ErrorResponse),
    /// No such app key, config, delivery or hook under this app key.
    #[response(status = 404)]
    NotFound(ErrorResponse),
    /// Too many failed authentications from this address (wrong secret keys or admin tokens): refused before the
    /// credentials are checked, even right ones; `Retry-After` says in how many seconds to try
    /// again (`--auth-failures-per-address`, `--auth-failures-per-target`).
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))]
    TooManyFailedAuthentications(ErrorResponse),
    /// A bug: the message says what failed.
    #[response(status = 500)]
    Internal(ErrorResponse),
    /// The store is unavailable; nothing was changed, try again.
    #[response(status = 503)]
    Unavailable(ErrorResponse),
}

/// Errors of the routes under `/v1/appkeys/{appKey}/` that take a JSON body.
#[derive(IntoResponses)]
pub enum AppKeyBodyErrors {
    /// Bad input: the message names the offending field by its path.
    #[response(status = 400)]
    BadRequest(ErrorResponse),
    /// No or an unknown secret key (or a wrong admin token).
    #[response(status = 401)]
    Unauthorized(ErrorResponse),
    /// A valid secret key of another app key.
    #[response(status = 403)]
    Forbidden(ErrorResponse),
    /// No such app key, config or delivery under this app key.
    #[response(status = 404)]
    NotFound(ErrorResponse),
    /// A conflicting change.
    #[response(status = 409)]
    Conflict(ErrorResponse),
    /// The body, a hook, or the number of hooks is over its limit.
    #[response(status = 413)]
    TooLarge(ErrorResponse),
    /// The body is not `application/json`.
    #[response(status = 415)]
    NotJson(ErrorResponse),
    /// Too many failed authentications from this address (wrong secret keys or admin tokens): refused before the
    /// credentials are checked, even right ones; `Retry-After` says in how many seconds to try
    /// again (`--auth-failures-per-address`, `--auth-failures-per-target`).
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))]
    TooManyFailedAuthentications(ErrorResponse),
    /// A bug: the message says what failed.
    #[response(status = 500)]
    Internal(ErrorResponse),
    /// The store is unavailable; nothing was changed, try again.
    #[response(status = 503)]
    Unavailable(ErrorResponse),
}

// ---------- the document ----------

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "secretKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Secret-Key",
                "The app key's secret key: opens the routes under /v1/appkeys/{appKey}/ of that \
                 app key only.",
            ))),
        );
        components.add_security_scheme(
            "adminToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token (HOOKLINE_ADMIN_TOKEN): manages app keys and opens every \
                         app key's routes.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookline",
        description = "Webhook delivery for messaging platforms: ingest events, deliver them in \
            the platform's envelope with batching and retries, and read the delivery log. Every \
            answer carries the platform's result header `{isSuccessful, resultCode, resultMessage}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::app_keys::create_app_key,
        super::app_keys::list_app_keys,
        super::app_keys::rotate_secret,
        super::catalogue::get_catalogue,
        super::configs::create_config,
        super::configs::list_configs,
        super::configs::get_config,
        super::configs::put_config,
        super::configs::patch_config,
        super::configs::delete_config,
        super::configs::test_config,
        super::configs::rotate_signing_secret,
        super::ingest::ingest,
        super::deliveries::list,
        super::deliveries::get_one,
        super::deliveries::redeliver,
        super::deliveries::replay,
        super::hooks::trace,
        super::hooks::search,
        super::portal_links::create,
        super::operations::healthz,
        super::operations::readyz,
        super::operations::metrics,
        super::operations::openapi_json,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "app keys", description = "Tenants and their secret keys (admin token)"),
        (name = "webhook configs", description = "Where and how an app key's events are delivered"),
        (name = "events", description = "Ingest"),
        (name = "catalogue", description = "Products, events and the JSON Schema of their hooks"),
        (name = "deliveries", description = "The delivery log, redeliver and replay"),
        (name = "hooks", description = "Accepted hooks: the trace of one, and the admin's search across app keys"),
        (name = "portal links", description = "Short-lived, single-use links that sign their holder into the dashboard"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    ),
)]
pub struct ApiDoc;

/// The document served at `/openapi.json`: the generated one, plus the JSON Schema of every
/// catalogue event's hook as a component `Hook.<product>.<event>` (OpenAPI 3.1 schemas are JSON
/// Schema 2020-12, so the catalogue's `hookSchema` goes in as it is published).
pub fn document() -> serde_json::Value {
    let mut doc = match serde_json::to_value(ApiDoc::openapi()) {
        Ok(doc) => doc,
        // The generated document is plain data; reported in the answer rather than unwrapped.
        Err(e) => return serde_json::json!({"error": format!("cannot serialise: {e}")}),
    };
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    {
        for product in hookline_wire::catalogue().products() {
            for event in product.events() {
                schemas.insert(
                    hook_component_name(product.product().as_str(), event.event().as_str()),
                    event.hook_schema().clone(),
                );
            }
        }
    }
    doc
}

/// `Hook.<product>.<event>`, with what OpenAPI does not allow in a component name (a space, as in
/// `KakaoTalk Bizmessage`) written as `_`.
pub fn hook_component_name(product: &str, event: &str) -> String {
    format!("Hook.{product}.{event}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_summary_and_a_description() {
        let doc = serde_json::to_value(document()).expect("the document serialises");
        let paths = doc["paths"].as_object().expect("paths");
        let mut missing = Vec::new();
        for (path, ops) in paths {
            for (method, op) in ops.as_object().expect("operations") {
                for field in ["summary", "description"] {
                    if op[field].as_str().is_none_or(|s| s.trim().is_empty()) {
                        missing.push(format!("{method} {path}: no {field}"));
                    }
                }
            }
        }
        assert!(paths.len() >= 15, "only {} paths", paths.len());
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
