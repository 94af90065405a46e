//! hookline's HTTP API (`../shared/spec/api.md`): thin handlers that check credentials, parse and
//! validate input, call the store or the engine, and render the platform's response shape.

mod auth;
pub(crate) mod deliveries;
pub mod error;
mod ingest;
pub(crate) mod management;
pub mod openapi;
pub mod ratelimit;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use crate::engine::Engine;
use crate::store::Store;
use error::{ApiError, ApiResult, ErrorKind};

pub use auth::{hash_secret, new_secret};

/// Limits of what a request may carry (each a server flag).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub ingest: hookline_wire::IngestLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            ingest: hookline_wire::IngestLimits::default(),
        }
    }
}

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    /// SHA-256 of the admin token; the token itself is not kept.
    pub admin_token_hash: String,
    pub limits: Limits,
    /// The per-app-key ingest rate limit (`None`: off).
    pub ingest_rate_limiter: Option<ratelimit::IngestRateLimiter>,
}

pub type SharedState = Arc<AppState>;

pub fn router(state: SharedState) -> Router {
    crate::metrics::install();
    let app_key_routes = Router::new()
        .route(
            "/webhook-configs",
            post(management::create_config).get(management::list_configs),
        )
        .route(
            "/webhook-configs/{webhook_config_id}",
            get(management::get_config)
                .put(management::put_config)
                .delete(management::delete_config),
        )
        .route(
            "/webhook-configs/{webhook_config_id}/test",
            post(management::test_config),
        )
        .route(
            "/webhook-configs/{webhook_config_id}/replay",
            post(deliveries::replay),
        )
        .route(
            "/webhook-configs/{webhook_config_id}/signing-secret/rotate",
            post(management::rotate_signing_secret),
        )
        .route("/events", post(ingest::ingest))
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/{hooks_id}", get(deliveries::get_one))
        .route(
            "/deliveries/{hooks_id}/redeliver",
            post(deliveries::redeliver),
        )
        .route("/secret-key/rotate", post(management::rotate_secret));

    Router::new()
        .route(
            "/v1/appkeys",
            post(management::create_app_key).get(management::list_app_keys),
        )
        .nest("/v1/appkeys/{app_key}", app_key_routes)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .fallback(|| async {
            ApiError::not_found("no such route; the routes are listed in the README")
        })
        .with_state(state.clone())
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs").config(
                utoipa_swagger_ui::Config::from("/openapi.json").persist_authorization(false),
            ),
        )
        .layer(axum::middleware::map_response(json_errors))
        .merge(crate::dashboard::router(state))
}

/// Errors that axum answers by itself (a path or query that does not decode, a method the
/// route does not have) come as plain text; they get the API's error shape too.
async fn json_errors(response: axum::response::Response) -> axum::response::Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let kind = match status {
        axum::http::StatusCode::METHOD_NOT_ALLOWED => ErrorKind::MethodNotAllowed,
        axum::http::StatusCode::NOT_FOUND => ErrorKind::NotFound,
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::BodyTooLarge,
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorKind::NotJson,
        s if s.is_server_error() => ErrorKind::Internal,
        _ => ErrorKind::InvalidField,
    };
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match (kind, text.is_empty()) {
        (ErrorKind::MethodNotAllowed, _) => {
            "method: this route does not take this method; see /openapi.json".to_owned()
        }
        (_, true) => status.canonical_reason().unwrap_or("error").to_owned(),
        (_, false) => format!("request: {text}"),
    };
    let mut fixed = axum::response::IntoResponse::into_response(ApiError::new(kind, message));
    *fixed.status_mut() = status;
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        fixed.headers_mut().insert(header::ALLOW, allow.clone());
    }
    fixed
}

/// Liveness: 200 while the process serves.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process serves", body = String, content_type = "text/plain", example = "ok")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: 200 when the store is reachable.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "The store is reachable", body = String, content_type = "text/plain", example = "ready"),
        (status = 503, description = "The store is unavailable", body = views::ErrorResponse)))]
pub async fn readyz(
    axum::extract::State(state): axum::extract::State<SharedState>,
) -> ApiResult<&'static str> {
    state.store.ping().await?;
    Ok("ready")
}

/// The OpenAPI 3 document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", body = Object, content_type = "application/json")))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(openapi::document())
}

/// Prometheus text: the counters and histogram recorded so far, and the store's gauges read now.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format (hookline_* metrics)", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 503, description = "The store is unavailable", body = views::ErrorResponse)))]
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<SharedState>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let stats = state.store.stats().await?;
    crate::metrics::store_stats(&stats, crate::model::now_millis());
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(),
    ))
}

/// For routes whose body is optional: no Content-Type and an empty body read as empty; anything
/// else is checked like [`read_json_body`].
pub async fn read_optional_json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> ApiResult<Vec<u8>> {
    if headers.contains_key(header::CONTENT_TYPE) {
        return read_json_body(headers, body, limit).await;
    }
    let bytes = read_limited(headers, body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    Err(not_json(""))
}

fn not_json(content_type: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotJson,
        format!(
            "Content-Type: expected application/json, got {}",
            if content_type.is_empty() {
                "nothing".to_owned()
            } else {
                format!("{content_type:?}")
            }
        ),
    )
}

/// Reads a JSON request body: checks the content type (415), the size limit (413) and the syntax
/// (400), without trusting Content-Length alone.
pub async fn read_json_body(headers: &HeaderMap, body: Body, limit: usize) -> ApiResult<Vec<u8>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !(mime.starts_with("application/") && mime.ends_with("+json"))
    {
        return Err(not_json(content_type));
    }
    read_limited(headers, body, limit).await
}

async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> ApiResult<Vec<u8>> {
    let too_large = || {
        ApiError::new(
            ErrorKind::BodyTooLarge,
            format!("body: larger than the limit of {limit} bytes"),
        )
    };
    // A body over the limit is still read (and thrown away) up to this bound before the 413 goes
    // out: answering while the client is still sending makes it see a reset, not the answer.
    // Beyond the bound the connection is closed instead.
    let drain_bound = limit.saturating_mul(4).clamp(1 << 20, 16 << 20);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > drain_bound) {
        return Err(too_large());
    }
    let mut body = body;
    let mut kept = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                ErrorKind::InvalidJson,
                format!("body: could not be read: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > drain_bound {
            return Err(too_large());
        }
        if seen <= limit {
            kept.extend_from_slice(&data);
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(kept)
}

/// Parses a management body into a JSON object (an empty body counts as `{}`).
pub fn parse_object(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(
            ErrorKind::NotAnObject,
            "body: expected a JSON object",
        )),
        Err(e) => Err(ApiError::new(
            ErrorKind::InvalidJson,
            format!("body: invalid JSON: {e}"),
        )),
    }
}
