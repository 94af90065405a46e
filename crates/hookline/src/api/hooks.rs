//! Routes of accepted hooks: the trace of one hook under an app key, and the admin's search for a
//! hookId across app keys.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};

use super::auth::{Caller, require_admin, require_app_key};
use super::error::{ApiError, ApiResult, ErrorKind};
use super::views::{self, HookTraceListResponse, HookTraceResponse, ok};
use super::{SharedState, openapi};

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/appkeys/{app_key}/hooks/{hook_id}", get(trace))
        .route("/v1/hooks/{hook_id}", get(search))
}

fn stored_body_error(e: serde_json::Error) -> ApiError {
    ApiError::new(ErrorKind::Internal, format!("stored hook is not JSON: {e}"))
}

/// Trace a hook
///
/// What this app key accepted under `hookId` (its product, event, acceptance time and body as
/// delivered) and, for every config of the app key for that product, what became of it:
/// `QUEUED`, `IN_DELIVERY`, `DELIVERED`, `FAILED`, `EXPIRED`, `CANCELLED` or `HELD` with the
/// deliveries that carry it, or why the config did not get it: `NOT_SUBSCRIBED`, `PAUSED`,
/// `CREATED_AFTER` (`FILTERED_OUT` is reserved for config filters). 404 when this app key never
/// accepted that hookId, or retention removed it.
#[utoipa::path(get, path = "/v1/appkeys/{appKey}/hooks/{hookId}", tag = "hooks",
    params(openapi::AppKeyPath, openapi::HookIdPath),
    responses((status = 200, description = "The hook and its outcome for each config", body = HookTraceResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn trace(
    State(state): State<SharedState>,
    caller: Caller,
    Path((app_key, hook_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<HookTraceResponse>> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let trace = state.service.trace_hook(&app_key, &hook_id).await?;
    Ok(Json(HookTraceResponse {
        header: ok(),
        hook: views::hook_trace(&trace).map_err(stored_body_error)?,
    }))
}

/// Find a hook in every app key
///
/// Admin token only. A hookId is unique per app key, so several app keys may have accepted the
/// same one: `hooks` holds, by app key, each one's trace (the same shape as
/// `GET /v1/appkeys/{appKey}/hooks/{hookId}`, with `appKey`). 404 when no app key accepted it
/// (or retention removed it).
#[utoipa::path(get, path = "/v1/hooks/{hookId}", tag = "hooks",
    params(openapi::HookIdPath),
    responses((status = 200, description = "The hook's trace under every app key that accepted it", body = HookTraceListResponse), openapi::AdminReadErrors),
    security(("adminToken" = [])))]
pub async fn search(
    State(state): State<SharedState>,
    caller: Caller,
    Path(hook_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<HookTraceListResponse>> {
    require_admin(&state, caller, &headers)?;
    let traces = state.service.trace_hook_everywhere(&hook_id).await?;
    Ok(Json(HookTraceListResponse {
        header: ok(),
        hooks: traces
            .iter()
            .map(views::hook_trace)
            .collect::<Result<Vec<_>, _>>()
            .map_err(stored_body_error)?,
    }))
}
