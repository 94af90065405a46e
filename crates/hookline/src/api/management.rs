//! App keys and webhook configs: create, read, update, delete, rotate, test.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hookline_wire::{Event, Product};
use serde_json::{Map, Value};

use super::auth::{hash_secret, new_secret, require_admin, require_app_key};
use super::error::{ApiError, ApiResult, ErrorKind};
use super::openapi;
use super::views::{
    AppKeyListResponse, AppKeyResponse, ConfigListResponse, ConfigResponse,
    RotatedSigningSecretResponse, TestAttemptResponse, TestAttemptView, ok,
};
use super::{SharedState, parse_object, read_json_body, read_optional_json_body, views};
use crate::engine::retry;
use crate::model::{
    AppKeyRecord, ConfigFilter, Health, HealthState, PageRequest, PreviousSecret, WebhookConfig,
    now_millis,
};

pub const APP_KEY_LEN: usize = 20;
pub const SECRET_KEY_LEN: usize = 32;
const MAX_URL_LEN: usize = 2048;
const MAX_TEXT_LEN: usize = 1024;

// ---------- app keys ----------

#[utoipa::path(post, path = "/v1/appkeys", tag = "app keys",
    request_body(content = openapi::AppKeyRequest, content_type = "application/json"),
    responses((status = 201, description = "Created; the secret key is shown only here", body = AppKeyResponse), openapi::AdminErrors),
    security(("adminToken" = [])))]
pub async fn create_app_key(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &headers)?;
    let bytes = read_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let body = parse_object(&bytes)?;
    let name = optional_string(&body, "name", MAX_TEXT_LEN)?.unwrap_or_default();
    let record = AppKeyRecord {
        app_key: new_secret(APP_KEY_LEN),
        name,
        created_at: now_millis(),
    };
    let secret = new_secret(SECRET_KEY_LEN);
    state
        .store
        .create_app_key(record.clone(), hash_secret(&secret))
        .await?;
    tracing::info!(app_key = record.app_key, "app key created");
    Ok((
        StatusCode::CREATED,
        Json(AppKeyResponse {
            header: ok(),
            app_key: views::app_key(&record, Some(&secret)),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/appkeys", tag = "app keys",
    params(openapi::PageParams),
    responses((status = 200, description = "A page of app keys (without secrets)", body = AppKeyListResponse), openapi::AdminErrors),
    security(("adminToken" = [])))]
pub async fn list_app_keys(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<AppKeyListResponse>> {
    require_admin(&state, &headers)?;
    let page = state.store.list_app_keys(page_request(&query)?).await?;
    Ok(Json(AppKeyListResponse {
        header: ok(),
        app_keys: page.items.iter().map(|k| views::app_key(k, None)).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(post, path = "/v1/appkeys/{appKey}/secret-key/rotate", tag = "app keys",
    params(openapi::AppKeyPath),
    responses((status = 200, description = "The new secret key (shown only here); the old one stops working", body = AppKeyResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn rotate_secret(
    State(state): State<SharedState>,
    Path(app_key): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<AppKeyResponse>> {
    require_app_key(&state, &headers, &app_key).await?;
    let secret = new_secret(SECRET_KEY_LEN);
    if !state
        .store
        .set_secret_hash(&app_key, hash_secret(&secret))
        .await?
    {
        return Err(ApiError::not_found(format!(
            "appKey: no app key {app_key:?}"
        )));
    }
    let record = state
        .store
        .get_app_key(&app_key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("appKey: no app key {app_key:?}")))?;
    tracing::info!(app_key, "secret key rotated");
    Ok(Json(AppKeyResponse {
        header: ok(),
        app_key: views::app_key(&record, Some(&secret)),
    }))
}

// ---------- webhook configs ----------

#[utoipa::path(post, path = "/v1/appkeys/{appKey}/webhook-configs", tag = "webhook configs",
    params(openapi::AppKeyPath),
    request_body(content = openapi::ConfigRequest, content_type = "application/json"),
    responses((status = 201, description = "Created", body = ConfigResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn create_config(
    State(state): State<SharedState>,
    Path(app_key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    require_app_key(&state, &headers, &app_key).await?;
    let bytes = read_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let config = create_config_from(&state, &app_key, &parse_object(&bytes)?).await?;
    Ok((StatusCode::CREATED, config_response(&config)))
}

/// Validates the settable fields and stores a new config (the create route and the dashboard).
pub(crate) async fn create_config_from(
    state: &SharedState,
    app_key: &str,
    body: &Map<String, Value>,
) -> ApiResult<WebhookConfig> {
    let input = ConfigInput::parse(body)?;
    let now = now_millis();
    let config = input.into_config(
        hookline_wire::generate_id(),
        app_key.to_owned(),
        Health::default(),
        None,
        now,
        now,
    );
    state.store.insert_config(config.clone()).await?;
    state.engine.config_changed(config.clone());
    Ok(config)
}

#[utoipa::path(get, path = "/v1/appkeys/{appKey}/webhook-configs", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigListParams, openapi::PageParams),
    responses((status = 200, description = "A page of webhook configs", body = ConfigListResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn list_configs(
    State(state): State<SharedState>,
    Path(app_key): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ConfigListResponse>> {
    require_app_key(&state, &headers, &app_key).await?;
    let mut filter = ConfigFilter::default();
    if let Some(p) = query.get("productName") {
        filter.product = Some(parse_product("productName", p)?);
    }
    if let Some(e) = query.get("event") {
        filter.event = Some(parse_event_name("event", e)?);
    }
    if let Some(enabled) = query.get("enabled") {
        filter.enabled = Some(match enabled.as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(ApiError::field(
                    "enabled",
                    format!("{other:?} is not true or false"),
                ));
            }
        });
    }
    let page = state
        .store
        .list_configs(&app_key, filter, page_request(&query)?)
        .await?;
    Ok(Json(ConfigListResponse {
        header: ok(),
        webhook_configs: page.items.iter().map(views::config).collect(),
        next_cursor: page.next_cursor,
    }))
}

fn config_response(config: &WebhookConfig) -> Json<ConfigResponse> {
    Json(ConfigResponse {
        header: ok(),
        webhook_config: views::config(config),
    })
}

pub(crate) async fn load_config(
    state: &SharedState,
    app_key: &str,
    config_id: &str,
) -> ApiResult<WebhookConfig> {
    state
        .store
        .get_config(app_key, config_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("webhookConfigId: no webhook config {config_id:?}"))
        })
}

#[utoipa::path(get, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    responses((status = 200, description = "The config with its health", body = ConfigResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn get_config(
    State(state): State<SharedState>,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<ConfigResponse>> {
    require_app_key(&state, &headers, &app_key).await?;
    let config = load_config(&state, &app_key, &config_id).await?;
    Ok(config_response(&config))
}

#[utoipa::path(put, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    request_body(content = openapi::ConfigRequest, description = "Replaces the settable fields: an omitted optional field returns to its default; `enabled: true` also clears a DISABLED health state. Read-only fields of a GET may be sent back unchanged.", content_type = "application/json"),
    responses((status = 200, description = "The config as stored now", body = ConfigResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn put_config(
    State(state): State<SharedState>,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ConfigResponse>> {
    require_app_key(&state, &headers, &app_key).await?;
    let bytes = read_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let config = replace_config(&state, &app_key, &config_id, &parse_object(&bytes)?).await?;
    Ok(config_response(&config))
}

/// Validates the settable fields and replaces the config's (the PUT route and the dashboard).
pub(crate) async fn replace_config(
    state: &SharedState,
    app_key: &str,
    config_id: &str,
    body: &Map<String, Value>,
) -> ApiResult<WebhookConfig> {
    let input = ConfigInput::parse(body)?;
    let existing = load_config(state, app_key, config_id).await?;
    let mut health = existing.health.clone();
    if input.enabled && health.state == HealthState::Disabled {
        // Enabling a config that health checks disabled gives it a fresh start.
        health = Health::default();
    }
    // A rotated-out signing secret keeps its grace period unless the signing secret is removed.
    let previous = existing
        .previous_signing_secret
        .filter(|_| input.signing_secret.is_some());
    let config = input.into_config(
        existing.id,
        existing.app_key,
        health,
        previous,
        existing.created_at,
        now_millis(),
    );
    if !state.store.update_config(config.clone()).await? {
        return Err(ApiError::not_found(format!(
            "webhookConfigId: no webhook config {config_id:?}"
        )));
    }
    state.engine.config_changed(config.clone());
    Ok(config)
}

#[utoipa::path(delete, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    responses((status = 200, description = "Deleted; pending deliveries to it are CANCELLED. Answers the config as it was.", body = ConfigResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn delete_config(
    State(state): State<SharedState>,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<ConfigResponse>> {
    require_app_key(&state, &headers, &app_key).await?;
    let config = load_config(&state, &app_key, &config_id).await?;
    if !state.store.delete_config(&app_key, &config_id).await? {
        return Err(ApiError::not_found(format!(
            "webhookConfigId: no webhook config {config_id:?}"
        )));
    }
    state.engine.config_deleted(config_id);
    Ok(config_response(&config))
}

/// Sends one realistic sample hook to the config now, outside the queue and the log.
#[utoipa::path(post, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}/test", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    request_body(content = Option<openapi::TestRequest>, description = "Optional: which event to send (default: the config's first)", content_type = "application/json"),
    responses((status = 200, description = "The attempt: status code, latency, error. A failed attempt is still a 200 answer (see `succeeded`).", body = TestAttemptResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn test_config(
    State(state): State<SharedState>,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<TestAttemptResponse>> {
    require_app_key(&state, &headers, &app_key).await?;
    let bytes = read_optional_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let body = parse_object(&bytes)?;
    let config = load_config(&state, &app_key, &config_id).await?;
    let event = optional_string(&body, "event", 64)?;
    Ok(Json(TestAttemptResponse {
        header: ok(),
        attempt: send_test_event(&state, &config, event.as_deref()).await?,
    }))
}

/// Sends one realistic sample hook of `event` (default: the config's first) to the config now,
/// outside the queue and the log (the test route and the dashboard).
pub(crate) async fn send_test_event(
    state: &SharedState,
    config: &WebhookConfig,
    event: Option<&str>,
) -> ApiResult<TestAttemptView> {
    let event = match event {
        Some(name) => {
            let event = parse_event_name("event", name)?;
            if !event.is_valid_for(config.product) {
                return Err(ApiError::field(
                    "event",
                    format!("{name:?} is not an event of {}", config.product.as_str()),
                ));
            }
            event
        }
        None => *config.events.first().ok_or_else(|| {
            ApiError::field("event", "the config subscribes to no event; name one")
        })?,
    };
    let sample = hookline_wire::sample_hook(config.product, event);
    let hook = hookline_wire::validate_hook(config.product, event, sample, 0).map_err(|e| {
        ApiError::new(
            ErrorKind::Internal,
            format!("sample hook did not validate: {e}"),
        )
    })?;
    let hooks_id = hookline_wire::generate_id();
    let mut envelope = Vec::new();
    hookline_wire::write_envelope(
        &mut envelope,
        &hooks_id,
        &config.id,
        config.product,
        &config.app_key,
        event,
        &[hook.json.as_str()],
    );
    let result = state.engine.send_once(config, &hooks_id, envelope).await;
    Ok(TestAttemptView {
        attempt: views::attempt(1, &result),
        hooks_id,
        hook_id: hook.hook_id,
        succeeded: result.succeeded(),
    })
}

// ---------- input parsing ----------

/// The settable fields of a webhook config, validated.
struct ConfigInput {
    product: Product,
    events: Vec<Event>,
    url: String,
    signature: String,
    signing_secret: Option<String>,
    enabled: bool,
    description: String,
    max_hooks_per_request: u32,
    max_requests_in_flight: u32,
    timeout_ms: u32,
    retry_schedule: Vec<Duration>,
}

const SETTABLE: &[&str] = &[
    "productName",
    "events",
    "url",
    "signature",
    "signingSecret",
    "enabled",
    "description",
    "maxHooksPerRequest",
    "maxRequestsInFlight",
    "timeoutMs",
    "retrySchedule",
];
/// Read-only fields a client may send back unchanged from a GET.
const READ_ONLY: &[&str] = &[
    "webhookConfigId",
    "appKey",
    "health",
    "createdAt",
    "updatedAt",
    "hasSigningSecret",
    "previousSigningSecretExpiresAt",
];

impl ConfigInput {
    fn parse(body: &Map<String, Value>) -> ApiResult<Self> {
        if let Some(unknown) = body
            .keys()
            .find(|k| !SETTABLE.contains(&k.as_str()) && !READ_ONLY.contains(&k.as_str()))
        {
            return Err(ApiError::field(
                unknown,
                format!("unknown field; settable fields are {}", SETTABLE.join(", ")),
            ));
        }
        let product_name = required_string(body, "productName")?;
        let product = parse_product("productName", &product_name)?;

        let events = match body.get("events") {
            None | Some(Value::Null) => {
                return Err(ApiError::new(
                    ErrorKind::MissingField,
                    "events: required field is missing",
                ));
            }
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(ApiError::field("events", "must name at least one event"));
            }
            Some(Value::Array(items)) => {
                let mut events = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let path = format!("events[{i}]");
                    let Value::String(name) = item else {
                        return Err(wrong_type(&path, "a string", item));
                    };
                    let event = parse_event_name(&path, name)?;
                    if !event.is_valid_for(product) {
                        return Err(ApiError::new(
                            ErrorKind::EventNotForProduct,
                            format!(
                                "{path}: {name:?} is not an event of {} (expected one of {})",
                                product.as_str(),
                                event_list(product)
                            ),
                        ));
                    }
                    if !events.contains(&event) {
                        events.push(event);
                    }
                }
                events
            }
            Some(other) => return Err(wrong_type("events", "an array of event names", other)),
        };

        let url = required_string(body, "url")?;
        validate_url(&url)?;
        let signature = required_string(body, "signature")?;
        if signature.is_empty() || signature.len() > MAX_TEXT_LEN {
            return Err(ApiError::field(
                "signature",
                format!("must be 1 to {MAX_TEXT_LEN} bytes"),
            ));
        }
        if signature.chars().any(|c| c.is_control()) {
            return Err(ApiError::field(
                "signature",
                "must not contain control characters (it is sent as an HTTP header)",
            ));
        }
        let signing_secret = optional_string(body, "signingSecret", MAX_TEXT_LEN)?;
        if let Some(secret) = &signing_secret
            && !hookline_wire::standard_webhooks::is_valid_secret(secret)
        {
            return Err(ApiError::field(
                "signingSecret",
                "must be whsec_ followed by a base64 key",
            ));
        }
        let enabled = match body.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(wrong_type("enabled", "true or false", other)),
        };
        let description = optional_string(body, "description", MAX_TEXT_LEN)?.unwrap_or_default();
        let max_hooks_per_request = optional_int(body, "maxHooksPerRequest", 1, 1000, 100)?;
        let max_requests_in_flight = optional_int(body, "maxRequestsInFlight", 1, 64, 8)?;
        let timeout_ms = optional_int(body, "timeoutMs", 100, 60_000, 10_000)?;
        let retry_schedule = match body.get("retrySchedule") {
            None | Some(Value::Null) => retry::DEFAULT_SCHEDULE.to_vec(),
            Some(Value::Array(items)) => {
                if items.len() > retry::MAX_ENTRIES {
                    return Err(ApiError::field(
                        "retrySchedule",
                        format!("at most {} entries", retry::MAX_ENTRIES),
                    ));
                }
                let mut schedule = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let path = format!("retrySchedule[{i}]");
                    let Value::String(text) = item else {
                        return Err(wrong_type(&path, "a duration string such as \"5s\"", item));
                    };
                    schedule.push(retry::parse_delay(text).map_err(|e| ApiError::field(&path, e))?);
                }
                schedule
            }
            Some(other) => {
                return Err(wrong_type(
                    "retrySchedule",
                    "an array of durations such as [\"5s\", \"1m\"]",
                    other,
                ));
            }
        };
        Ok(ConfigInput {
            product,
            events,
            url,
            signature,
            signing_secret,
            enabled,
            description,
            max_hooks_per_request,
            max_requests_in_flight,
            timeout_ms,
            retry_schedule,
        })
    }

    fn into_config(
        self,
        id: String,
        app_key: String,
        health: Health,
        previous_signing_secret: Option<PreviousSecret>,
        created_at: i64,
        updated_at: i64,
    ) -> WebhookConfig {
        WebhookConfig {
            id,
            app_key,
            product: self.product,
            events: self.events,
            url: self.url,
            signature: self.signature,
            signing_secret: self.signing_secret,
            previous_signing_secret,
            enabled: self.enabled,
            description: self.description,
            max_hooks_per_request: self.max_hooks_per_request,
            max_requests_in_flight: self.max_requests_in_flight,
            timeout_ms: self.timeout_ms,
            retry_schedule: self.retry_schedule,
            health,
            created_at,
            updated_at,
        }
    }
}

fn validate_url(url: &str) -> ApiResult<()> {
    if url.len() > MAX_URL_LEN {
        return Err(ApiError::field(
            "url",
            format!("longer than {MAX_URL_LEN} bytes"),
        ));
    }
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| ApiError::field("url", format!("{url:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => {
            return Err(ApiError::field(
                "url",
                format!("scheme {other:?} is not http or https"),
            ));
        }
        None => {
            return Err(ApiError::field(
                "url",
                format!("{url:?} is not an absolute http(s) URL"),
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ApiError::field("url", format!("{url:?} has no host")));
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(path: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::new(
        ErrorKind::WrongType,
        format!("{path}: expected {expected}, got {}", type_name(got)),
    )
}

fn required_string(body: &Map<String, Value>, field: &str) -> ApiResult<String> {
    match body.get(field) {
        None | Some(Value::Null) => Err(ApiError::new(
            ErrorKind::MissingField,
            format!("{field}: required field is missing"),
        )),
        Some(Value::String(s)) if s.contains('\0') => Err(nul_in(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(wrong_type(field, "a string", other)),
    }
}

/// No stored text may hold NUL (PostgreSQL's TEXT refuses it; no field has a use for it).
fn nul_in(field: &str) -> ApiError {
    ApiError::field(field, "must not contain NUL characters (\\u0000)")
}

fn optional_string(
    body: &Map<String, Value>,
    field: &str,
    max: usize,
) -> ApiResult<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.contains('\0') => Err(nul_in(field)),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(ApiError::field(field, format!("longer than {max} bytes"))),
        Some(other) => Err(wrong_type(field, "a string", other)),
    }
}

fn optional_int(
    body: &Map<String, Value>,
    field: &str,
    min: u32,
    max: u32,
    default: u32,
) -> ApiResult<u32> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if (u64::from(min)..=u64::from(max)).contains(&v) => Ok(v as u32),
            _ => Err(ApiError::field(
                field,
                format!("{n} is outside {min} to {max}"),
            )),
        },
        Some(other) => Err(wrong_type(field, "an integer", other)),
    }
}

fn event_list(product: Product) -> String {
    product
        .events()
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn parse_product(field: &str, name: &str) -> ApiResult<Product> {
    Product::parse(name).ok_or_else(|| {
        ApiError::new(
            ErrorKind::UnknownProduct,
            format!("{field}: {name:?} is not one of SMS, KakaoTalk Bizmessage"),
        )
    })
}

pub fn parse_event_name(field: &str, name: &str) -> ApiResult<Event> {
    Event::parse(name).ok_or_else(|| {
        ApiError::new(
            ErrorKind::UnknownEvent,
            format!(
                "{field}: {name:?} is not an event (one of TEMPLATE_STATUS_UPDATE, \
                 MESSAGE_RESULT_UPDATE, UNSUBSCRIBE, CONVERSION_BLOCK, \
                 INTERNATIONAL_DELIVERY_RECEIPT)"
            ),
        )
    })
}

pub fn page_request(query: &HashMap<String, String>) -> ApiResult<PageRequest> {
    let size = match query.get("pageSize") {
        None => 50,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::field(
                    "pageSize",
                    format!("{text:?} is not an integer from 1 to 1000"),
                ));
            }
        },
    };
    Ok(PageRequest {
        size,
        cursor: query.get("cursor").cloned(),
    })
}

// ---------- Standard Webhooks signing secret rotation ----------

/// The longest grace period a rotated-out signing secret may keep signing.
const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);
/// How long the old secret signs beside the new one when the request does not say.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(86_400);

/// Replaces the config's signing secret; the old one keeps signing beside it for the grace
/// period, so receivers can switch keys without rejecting a delivery.
#[utoipa::path(post, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}/signing-secret/rotate", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    request_body(content = Option<openapi::RotateSigningSecretRequest>, content_type = "application/json"),
    responses((status = 200, description = "Rotated; the new secret is shown only here. During the grace period every delivery carries two signatures (new and old).", body = RotatedSigningSecretResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn rotate_signing_secret(
    State(state): State<SharedState>,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<RotatedSigningSecretResponse>> {
    require_app_key(&state, &headers, &app_key).await?;
    let bytes = read_optional_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let body = parse_object(&bytes)?;
    if let Some(unknown) = body
        .keys()
        .find(|k| !["signingSecret", "gracePeriod"].contains(&k.as_str()))
    {
        return Err(ApiError::field(
            unknown,
            "unknown field; the fields are signingSecret, gracePeriod",
        ));
    }
    let new_secret = match optional_string(&body, "signingSecret", MAX_TEXT_LEN)? {
        Some(secret) if hookline_wire::standard_webhooks::is_valid_secret(&secret) => secret,
        Some(_) => {
            return Err(ApiError::field(
                "signingSecret",
                "must be whsec_ followed by a base64 key of 24 to 64 bytes",
            ));
        }
        None => hookline_wire::standard_webhooks::generate_secret(),
    };
    let grace = match optional_string(&body, "gracePeriod", 32)? {
        None => DEFAULT_GRACE,
        Some(text) => crate::duration::Period::parse_within(&text, Duration::ZERO, MAX_GRACE)
            .map(crate::duration::Period::get)
            .map_err(|_| {
                ApiError::field(
                    "gracePeriod",
                    format!("{text:?} is not a duration from 0s to 30d such as \"24h\""),
                )
            })?,
    };
    let mut config = load_config(&state, &app_key, &config_id).await?;
    if config.signing_secret.as_deref() == Some(new_secret.as_str()) {
        return Err(ApiError::field(
            "signingSecret",
            "is the current signing secret; a rotation needs a new one",
        ));
    }
    let now = now_millis();
    config.previous_signing_secret = config.signing_secret.take().and_then(|secret| {
        let expires_at = now.saturating_add(grace.as_millis() as i64);
        (expires_at > now).then_some(PreviousSecret { secret, expires_at })
    });
    config.signing_secret = Some(new_secret.clone());
    config.updated_at = now;
    if !state.store.update_config(config.clone()).await? {
        return Err(ApiError::not_found(format!(
            "webhookConfigId: no webhook config {config_id:?}"
        )));
    }
    state.engine.config_changed(config.clone());
    tracing::info!(config_id, grace = ?grace, "signing secret rotated");
    Ok(Json(RotatedSigningSecretResponse {
        header: ok(),
        webhook_config: views::config(&config),
        signing_secret: new_secret,
    }))
}
