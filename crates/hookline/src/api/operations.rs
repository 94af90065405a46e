//! Routes for operators and tools: liveness, readiness, Prometheus metrics, the OpenAPI
//! document.

use axum::Router;
use axum::http::header;
use axum::routing::get;

use super::error::ApiResult;
use super::{SharedState, openapi, views};

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
}

/// Liveness
///
/// 200 while the process serves requests, whatever the store does.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process serves", body = String, content_type = "text/plain", example = "ok")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness
///
/// 200 when the store answers; 503 while it is unavailable (a load balancer should send no
/// traffic then).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "The store is reachable", body = String, content_type = "text/plain", example = "ready"),
        (status = 503, description = "The store is unavailable", body = views::ErrorResponse)))]
pub async fn readyz(
    axum::extract::State(state): axum::extract::State<SharedState>,
) -> ApiResult<&'static str> {
    state.service.ping().await?;
    Ok("ready")
}

/// The OpenAPI document
///
/// This API as an OpenAPI 3.1 document, generated from the handlers; `/docs` shows it.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", body = Object, content_type = "application/json")))]
pub async fn openapi_json() -> axum::Json<serde_json::Value> {
    axum::Json(openapi::document())
}

/// Prometheus metrics
///
/// The counters and the attempt latency histogram recorded so far, and the store's gauges
/// (queue depth, oldest queued hook, open deliveries, configs by health) read now.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format (hookline_* metrics)", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 503, description = "The store is unavailable", body = views::ErrorResponse)))]
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<SharedState>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let stats = state.service.stats().await?;
    crate::metrics::store_stats(&stats, crate::model::now_millis());
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(),
    ))
}
