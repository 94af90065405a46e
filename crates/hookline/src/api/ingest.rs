//! `POST /v1/appkeys/{appKey}/events`: validate everything, store durably, then answer 202.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use super::auth::require_app_key;
use super::error::ApiResult;
use super::{SharedState, read_json_body, success};

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
    // Answers only after the commit that holds the hooks and their queue rows.
    state
        .store
        .ingest(&app_key, batch.product, batch.event, batch.hooks)
        .await?;
    Ok((StatusCode::ACCEPTED, success("hookIds", json!(hook_ids))))
}
