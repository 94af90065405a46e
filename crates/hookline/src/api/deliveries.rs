//! Routes of the delivery log: list, one delivery with its attempts, redeliver, replay.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::{Caller, require_app_key};
use super::body::{parse_object, read_json_body};
use super::error::{ApiError, ApiResult, ErrorKind};
use super::views::{
    self, CountResponse, DeliveryDetailResponse, DeliveryListResponse, DeliveryResponse,
    ErrorResponse, ok,
};
use super::{SharedState, openapi};
use crate::service::input::{delivery_filter, page_request, replay_filter};

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/appkeys/{app_key}/deliveries", get(list))
        .route("/v1/appkeys/{app_key}/deliveries/{hooks_id}", get(get_one))
        .route(
            "/v1/appkeys/{app_key}/deliveries/{hooks_id}/redeliver",
            post(redeliver),
        )
        .route(
            "/v1/appkeys/{app_key}/webhook-configs/{webhook_config_id}/replay",
            post(replay),
        )
}

/// List deliveries
///
/// The delivery log, newest first: one entry per POST hookline made or will make (a batch of
/// hooks under one `hooksId`), with its status and attempt count. Filters: config, event,
/// status, creation time window, and a `hookId` it carries.
#[utoipa::path(get, path = "/v1/appkeys/{appKey}/deliveries", tag = "deliveries",
    params(openapi::AppKeyPath, openapi::DeliveryListParams, openapi::PageParams),
    responses((status = 200, description = "The delivery log, newest first", body = DeliveryListResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Path(app_key): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<DeliveryListResponse>> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let filter = delivery_filter(&query)?;
    let page = state
        .service
        .list_deliveries(&app_key, filter, page_request(&query)?)
        .await?;
    Ok(Json(DeliveryListResponse {
        header: ok(),
        deliveries: page.items.iter().map(views::delivery).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Get a delivery
///
/// One delivery: the envelope exactly as it was sent (rebuilt byte for byte), its status, and
/// every attempt with its status code, latency, error and the start of the response body.
#[utoipa::path(get, path = "/v1/appkeys/{appKey}/deliveries/{hooksId}", tag = "deliveries",
    params(openapi::AppKeyPath, openapi::HooksIdPath),
    responses((status = 200, description = "The delivery: its envelope exactly as sent, its status, and every attempt", body = DeliveryDetailResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn get_one(
    State(state): State<SharedState>,
    caller: Caller,
    Path((app_key, hooks_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<DeliveryDetailResponse>> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let detail = state.service.get_delivery(&app_key, &hooks_id).await?;
    let view = views::delivery_detail(&detail).map_err(|e| {
        ApiError::new(
            ErrorKind::Internal,
            format!("stored envelope is not JSON: {e}"),
        )
    })?;
    Ok(Json(DeliveryDetailResponse {
        header: ok(),
        delivery: view,
    }))
}

/// Redeliver a delivery
///
/// Sends the delivery's hooks again as a new PENDING delivery (new `hooksId`, same hookIds) to
/// the config's current URL and settings. The original stays as it was in the log.
#[utoipa::path(post, path = "/v1/appkeys/{appKey}/deliveries/{hooksId}/redeliver", tag = "deliveries",
    params(openapi::AppKeyPath, openapi::HooksIdPath),
    responses((status = 202, description = "A new PENDING delivery (new hooksId, same hookIds) to the config's current URL and settings", body = DeliveryResponse),
        (status = 409, description = "The delivery's config was deleted", body = ErrorResponse),
        openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn redeliver(
    State(state): State<SharedState>,
    caller: Caller,
    Path((app_key, hooks_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let summary = state.service.redeliver(&app_key, &hooks_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeliveryResponse {
            header: ok(),
            delivery: views::delivery(&summary),
        }),
    ))
}

/// Replay a config's deliveries
///
/// Queues again, for this config, the hooks of its past deliveries that match (created within
/// `since`/`until`, with one of the given statuses). They go out in new batches with new
/// hooksIds; a hook in several matching deliveries is queued once. Answers how many hooks were
/// queued.
#[utoipa::path(post, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}/replay", tag = "deliveries",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    request_body(content = openapi::ReplayRequest, content_type = "application/json"),
    responses((status = 202, description = "How many hooks were queued again", body = CountResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn replay(
    State(state): State<SharedState>,
    caller: Caller,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let bytes = read_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let body = parse_object(&bytes)?;
    // The config is looked up before the filter is read, so an unknown config is a 404
    // whatever the body says.
    state.service.get_config(&app_key, &config_id).await?;
    let filter = replay_filter(&body, crate::model::now_millis())?;
    let count = state.service.replay(&app_key, &config_id, filter).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CountResponse {
            header: ok(),
            count,
        }),
    ))
}
