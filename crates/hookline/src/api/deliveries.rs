//! The delivery log: list, one delivery with its attempts, redeliver, replay.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;

use super::auth::require_app_key;
use super::error::{ApiError, ApiResult, ErrorKind};
use super::management::{page_request, parse_event_name};
use super::openapi;
use super::views::{
    CountResponse, DeliveryDetailResponse, DeliveryListResponse, DeliveryResponse, ErrorResponse,
    ok,
};
use super::{SharedState, parse_object, read_json_body, views};
use crate::model::{DeliveryFilter, DeliveryStatus, DeliverySummary, Millis, ReplayFilter};

pub(crate) fn parse_time(field: &str, text: &str) -> ApiResult<Millis> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::field(
                field,
                format!("{text:?} is not an RFC 3339 time such as 2026-01-31T09:00:00Z"),
            )
        })
}

fn parse_status(field: &str, text: &str) -> ApiResult<DeliveryStatus> {
    DeliveryStatus::parse(text).ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotInEnum,
            format!(
                "{field}: {text:?} is not one of PENDING, RETRYING, SUCCEEDED, FAILED, CANCELLED"
            ),
        )
    })
}

#[utoipa::path(get, path = "/v1/appkeys/{appKey}/deliveries", tag = "deliveries",
    params(openapi::AppKeyPath, openapi::DeliveryListParams, openapi::PageParams),
    responses((status = 200, description = "The delivery log, newest first", body = DeliveryListResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn list(
    State(state): State<SharedState>,
    Path(app_key): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<DeliveryListResponse>> {
    require_app_key(&state, &headers, &app_key).await?;
    let filter = delivery_filter(&query)?;
    let page = state
        .store
        .list_deliveries(&app_key, filter, page_request(&query)?)
        .await?;
    Ok(Json(DeliveryListResponse {
        header: ok(),
        deliveries: page.items.iter().map(views::delivery).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The delivery log's filters from a query string (the list route and the dashboard).
pub(crate) fn delivery_filter(query: &HashMap<String, String>) -> ApiResult<DeliveryFilter> {
    Ok(DeliveryFilter {
        config_id: query.get("webhookConfigId").cloned(),
        event: query
            .get("event")
            .map(|e| parse_event_name("event", e))
            .transpose()?,
        status: query
            .get("status")
            .map(|s| parse_status("status", s))
            .transpose()?,
        since: query
            .get("since")
            .map(|t| parse_time("since", t))
            .transpose()?,
        until: query
            .get("until")
            .map(|t| parse_time("until", t))
            .transpose()?,
        hook_id: query.get("hookId").cloned(),
    })
}

#[utoipa::path(get, path = "/v1/appkeys/{appKey}/deliveries/{hooksId}", tag = "deliveries",
    params(openapi::AppKeyPath, openapi::HooksIdPath),
    responses((status = 200, description = "The delivery: its envelope exactly as sent, its status, and every attempt", body = DeliveryDetailResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn get_one(
    State(state): State<SharedState>,
    Path((app_key, hooks_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<DeliveryDetailResponse>> {
    require_app_key(&state, &headers, &app_key).await?;
    let detail = state
        .store
        .get_delivery(&app_key, &hooks_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("hooksId: no delivery {hooks_id:?}")))?;
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

#[utoipa::path(post, path = "/v1/appkeys/{appKey}/deliveries/{hooksId}/redeliver", tag = "deliveries",
    params(openapi::AppKeyPath, openapi::HooksIdPath),
    responses((status = 202, description = "A new PENDING delivery (new hooksId, same hookIds) to the config's current URL and settings", body = DeliveryResponse),
        (status = 409, description = "The delivery's config was deleted", body = ErrorResponse),
        openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn redeliver(
    State(state): State<SharedState>,
    Path((app_key, hooks_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    require_app_key(&state, &headers, &app_key).await?;
    let summary = redeliver_one(&state, &app_key, &hooks_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeliveryResponse {
            header: ok(),
            delivery: views::delivery(&summary),
        }),
    ))
}

/// A new PENDING delivery with the same hooks, handed to the engine (the redeliver route and the
/// dashboard).
pub(crate) async fn redeliver_one(
    state: &SharedState,
    app_key: &str,
    hooks_id: &str,
) -> ApiResult<DeliverySummary> {
    let summary = state
        .store
        .redeliver(app_key, hooks_id, hookline_wire::generate_id())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("hooksId: no delivery {hooks_id:?}")))?;
    state
        .engine
        .delivery_created(summary.config_id.clone(), summary.hooks_id.clone());
    Ok(summary)
}

#[utoipa::path(post, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}/replay", tag = "deliveries",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    request_body(content = openapi::ReplayRequest, content_type = "application/json"),
    responses((status = 202, description = "How many hooks were queued again", body = CountResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn replay(
    State(state): State<SharedState>,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    require_app_key(&state, &headers, &app_key).await?;
    let bytes = read_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let body = parse_object(&bytes)?;
    state
        .store
        .get_config(&app_key, &config_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("webhookConfigId: no webhook config {config_id:?}"))
        })?;
    let time = |field: &str| -> ApiResult<Option<Millis>> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(t)) => parse_time(field, t).map(Some),
            Some(_) => Err(ApiError::field(field, "expected an RFC 3339 time string")),
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    let statuses = match body.get("status") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => parse_status(&format!("status[{i}]"), s),
                _ => Err(ApiError::field(
                    &format!("status[{i}]"),
                    "expected a string",
                )),
            })
            .collect::<ApiResult<Vec<_>>>()?,
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "expected an array of statuses such as [\"FAILED\"]",
            ));
        }
    };
    let count = state
        .store
        .replay(
            &app_key,
            &config_id,
            ReplayFilter {
                since,
                until,
                statuses,
            },
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CountResponse {
            header: ok(),
            count,
        }),
    ))
}
