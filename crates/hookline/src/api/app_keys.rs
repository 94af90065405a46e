//! Routes of app keys (admin token): create, list, rotate a secret key.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};

use super::auth::{Caller, require_admin, require_app_key};
use super::body::{parse_object, read_json_body, read_optional_json_body};
use super::error::ApiResult;
use super::views::{self, AppKeyListResponse, AppKeyResponse, ok};
use super::{SharedState, openapi};
use crate::service::app_keys::SecretKeyRotation;
use crate::service::input::{MAX_TEXT_LEN, optional_string, page_request};

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/appkeys", post(create_app_key).get(list_app_keys))
        .route(
            "/v1/appkeys/{app_key}/secret-key/rotate",
            post(rotate_secret),
        )
}

/// Create an app key
///
/// Creates a tenant: a new app key and its secret key. The secret key is shown only in this
/// answer (hookline keeps its hash); keep it, it opens every route of this app key.
#[utoipa::path(post, path = "/v1/appkeys", tag = "app keys",
    request_body(content = openapi::AppKeyRequest, content_type = "application/json"),
    responses((status = 201, description = "Created; the secret key is shown only here", body = AppKeyResponse), openapi::AdminErrors),
    security(("adminToken" = [])))]
pub async fn create_app_key(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, caller, &headers)?;
    let bytes = read_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let body = parse_object(&bytes)?;
    let name = optional_string(&body, "name", MAX_TEXT_LEN)?.unwrap_or_default();
    let created = state.service.create_app_key(name).await?;
    Ok((
        StatusCode::CREATED,
        Json(AppKeyResponse {
            header: ok(),
            app_key: views::app_key(&created.record, Some(&created.secret_key)),
        }),
    ))
}

/// List app keys
///
/// Every app key with its name and creation time, oldest first, without secrets. Paged with
/// `pageSize` and `cursor`.
#[utoipa::path(get, path = "/v1/appkeys", tag = "app keys",
    params(openapi::PageParams),
    responses((status = 200, description = "A page of app keys (without secrets)", body = AppKeyListResponse), openapi::AdminErrors),
    security(("adminToken" = [])))]
pub async fn list_app_keys(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<AppKeyListResponse>> {
    require_admin(&state, caller, &headers)?;
    let page = state.service.list_app_keys(page_request(&query)?).await?;
    Ok(Json(AppKeyListResponse {
        header: ok(),
        app_keys: page.items.iter().map(|k| views::app_key(k, None)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Rotate the secret key
///
/// Replaces the app key's secret key with a new random one, shown only in this answer. The body
/// is optional: `{"gracePeriod": "1h"}` (`0s` to `7d`, default `0s`) keeps the old secret key
/// working that long beside the new one (API calls and dashboard sessions alike), so producers
/// can switch without downtime; `previousSecretKeyExpiresAt` says until when. Without a grace
/// period the old key stops at once. A body that does not parse answers 400 and rotates nothing.
#[utoipa::path(post, path = "/v1/appkeys/{appKey}/secret-key/rotate", tag = "app keys",
    params(openapi::AppKeyPath),
    request_body(content = Option<openapi::SecretKeyRotationRequest>, content_type = "application/json"),
    responses((status = 200, description = "The new secret key (shown only here); the old one works until previousSecretKeyExpiresAt, or stops at once", body = AppKeyResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn rotate_secret(
    State(state): State<SharedState>,
    caller: Caller,
    Path(app_key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<AppKeyResponse>> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let bytes = read_optional_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let rotation = SecretKeyRotation::from_json(&parse_object(&bytes)?)?;
    let rotated = state.service.rotate_secret_key(&app_key, rotation).await?;
    Ok(Json(AppKeyResponse {
        header: ok(),
        app_key: views::app_key(&rotated.record, Some(&rotated.secret_key)),
    }))
}
