//! hookline's HTTP API (`../shared/spec/api.md`): thin handlers that check credentials, parse and
//! validate input, call the store or the engine, and render the platform's response shape.

mod auth;
mod deliveries;
pub mod error;
mod ingest;
mod management;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};

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
}

pub type SharedState = Arc<AppState>;

pub fn router(state: SharedState) -> Router {
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
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            ApiError::not_found("no such route; the routes are listed in the README")
        })
        .with_state(state)
}

async fn readyz(
    axum::extract::State(state): axum::extract::State<SharedState>,
) -> ApiResult<&'static str> {
    state.store.ping().await?;
    Ok("ready")
}

/// `{"header": success, key: value}`: the platform's success shape.
pub fn success(key: &str, value: Value) -> axum::Json<Value> {
    let mut body = Map::new();
    body.insert("header".into(), success_header());
    body.insert(key.into(), value);
    axum::Json(Value::Object(body))
}

pub fn success_header() -> Value {
    json!({"isSuccessful": true, "resultCode": 0, "resultMessage": "SUCCESS"})
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
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && length > limit
    {
        return Err(too_large());
    }
    let collected = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_large()
            } else {
                ApiError::new(
                    ErrorKind::InvalidJson,
                    format!("body: could not be read: {e}"),
                )
            }
        })?;
    Ok(collected.to_bytes().to_vec())
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
