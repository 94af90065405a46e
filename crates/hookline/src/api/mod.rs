//! hookline's HTTP API (docs/api.md): thin handlers that check credentials, read the request,
//! call the service layer ([`crate::service`]) and render the platform's response shape. One file
//! per resource, each with its own `routes()`.
//!
//! The API never reaches the dashboard, nor the dashboard the API: both are front ends over the
//! service, put side by side by `serve`.

mod app_keys;
mod auth;
mod body;
mod catalogue;
mod configs;
mod deliveries;
pub mod error;
mod hooks;
mod ingest;
pub mod openapi;
mod operations;
mod portal_links;
pub mod ratelimit;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::http::header;

use crate::service::Service;
use error::{ApiError, ErrorKind};

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
    pub service: Arc<Service>,
    /// SHA-256 of the admin token; the token itself is not kept.
    pub admin_token_hash: String,
    pub limits: Limits,
    /// The per-app-key ingest rate limit (`None`: off).
    pub ingest_rate_limiter: Option<ratelimit::IngestRateLimiter>,
    /// Failed authentications per address and target; shared with the dashboard's sign-in.
    pub auth_failures: Arc<crate::throttle::FailureThrottle>,
    /// Where people reach this server (`--public-url`, without a trailing `/`): portal links
    /// are absolute under it; `None`, they are paths.
    pub public_url: Option<String>,
}

pub type SharedState = Arc<AppState>;

/// Every API route, `/docs`, and the API's error shape on whatever axum answers by itself.
pub fn router(state: SharedState) -> Router {
    crate::metrics::install();
    Router::new()
        .merge(app_keys::routes())
        .merge(catalogue::routes())
        .merge(configs::routes())
        .merge(ingest::routes())
        .merge(deliveries::routes())
        .merge(hooks::routes())
        .merge(operations::routes())
        .merge(portal_links::routes())
        .fallback(|| async {
            ApiError::not_found("no such route; the routes are listed in docs/api.md")
        })
        .with_state(state)
        .merge(
            Router::from(utoipa_swagger_ui::SwaggerUi::new("/docs").config(
                utoipa_swagger_ui::Config::from("/openapi.json").persist_authorization(false),
            ))
            .layer(axum::middleware::map_response(docs_headers)),
        )
        .layer(axum::middleware::map_response(json_errors))
}

/// `/docs` shares the dashboard's origin: it gets a Content-Security-Policy (its own scripts and
/// styles only; Swagger UI sets inline styles), no framing and no sniffing, like the dashboard.
async fn docs_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::HeaderValue;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
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
