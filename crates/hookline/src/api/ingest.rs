//! `POST /v1/appkeys/{appKey}/events`: validate everything, store durably, then answer 202.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::auth::require_app_key;
use super::error::ApiResult;
use super::views::{HookIdsResponse, ok};
use super::{SharedState, openapi, read_json_body};

#[utoipa::path(post, path = "/v1/appkeys/{appKey}/events", tag = "events",
    params(openapi::AppKeyPath),
    request_body(content = openapi::IngestRequest, description = "All or nothing: every hook is validated against its event's table before anything is stored; the first error names its path (`hooks[3].messageStatus`). Idempotent on (appKey, hookId).", content_type = "application/json"),
    responses((status = 202, description = "Durably stored; the hookIds in input order", body = HookIdsResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn ingest(
    State(state): State<SharedState>,
    Path(app_key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    require_app_key(&state, &headers, &app_key).await?;
    let bytes = read_json_body(&headers, body, state.limits.max_body_bytes).await?;
    // All or nothing: the whole request is validated before anything is stored.
    let batch = hookline_wire::validate_ingest(&bytes, &state.limits.ingest)?;
    let hook_ids = batch.input_ids;
    let (event, unique) = (batch.event, batch.hooks.len());
    // Answers only after the commit that holds the hooks and their queue rows.
    let outcome = state
        .store
        .ingest(&app_key, batch.product, batch.event, batch.hooks)
        .await?;
    crate::metrics::hooks_ingested(event.as_str(), unique, outcome.new_hooks);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(HookIdsResponse {
            header: ok(),
            hook_ids,
        }),
    ))
}
