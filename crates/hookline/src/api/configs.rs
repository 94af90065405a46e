//! Routes of webhook configs: create, list, get, replace, delete, send a test event, rotate the
//! signing secret. Each handler checks credentials, reads the body and calls the service.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};

use super::auth::{Caller, require_app_key};
use super::body::{parse_object, read_json_body, read_optional_json_body};
use super::error::{ApiError, ApiResult};
use super::views::{
    self, ConfigListResponse, ConfigResponse, RotatedSigningSecretResponse, TestAttemptResponse, ok,
};
use super::{SharedState, openapi};
use crate::model::{ConfigFilter, WebhookConfig};
use crate::service::ConfigInput;
use crate::service::input::{optional_string, page_request, parse_event_name, parse_product};
use crate::service::signing_secrets::SigningSecretRotation;

pub(super) fn routes() -> Router<SharedState> {
    const CONFIG: &str = "/v1/appkeys/{app_key}/webhook-configs/{webhook_config_id}";
    Router::new()
        .route(
            "/v1/appkeys/{app_key}/webhook-configs",
            post(create_config).get(list_configs),
        )
        .route(
            CONFIG,
            axum::routing::get(get_config)
                .put(put_config)
                .patch(patch_config)
                .delete(delete_config),
        )
        .route(&format!("{CONFIG}/test"), post(test_config))
        .route(
            &format!("{CONFIG}/signing-secret/rotate"),
            post(rotate_signing_secret),
        )
}

fn config_response(config: &WebhookConfig) -> Json<ConfigResponse> {
    Json(ConfigResponse {
        header: ok(),
        webhook_config: views::config(config),
    })
}

/// Create a webhook config
///
/// Says where and how the app key's events of one product are delivered: the events it
/// receives, the URL, the signature sent in `X-Toast-Webhook-Signature`, and optionally a
/// Standard Webhooks signing secret, batch size, concurrency, timeout and retry schedule.
/// Hooks ingested from now on are queued for it.
#[utoipa::path(post, path = "/v1/appkeys/{appKey}/webhook-configs", tag = "webhook configs",
    params(openapi::AppKeyPath),
    request_body(content = openapi::ConfigRequest, content_type = "application/json"),
    responses((status = 201, description = "Created", body = ConfigResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn create_config(
    State(state): State<SharedState>,
    caller: Caller,
    Path(app_key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let bytes = read_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let input = ConfigInput::from_json(&parse_object(&bytes)?)?;
    let config = state.service.create_config(&app_key, input).await?;
    Ok((StatusCode::CREATED, config_response(&config)))
}

/// List webhook configs
///
/// The app key's configs with their health, oldest first, optionally only those of a product,
/// those subscribed to an event, or only enabled or paused ones. Signing secrets are never
/// shown (`hasSigningSecret` says whether one is set).
#[utoipa::path(get, path = "/v1/appkeys/{appKey}/webhook-configs", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigListParams, openapi::PageParams),
    responses((status = 200, description = "A page of webhook configs", body = ConfigListResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn list_configs(
    State(state): State<SharedState>,
    caller: Caller,
    Path(app_key): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ConfigListResponse>> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let mut filter = ConfigFilter::default();
    if let Some(p) = query.get("productName") {
        filter.product = Some(parse_product("productName", p)?);
    }
    if let Some(e) = query.get("event") {
        filter.event = Some(parse_event_name("event", e)?);
    }
    if let Some(enabled) = query.get("enabled") {
        filter.enabled = Some(match enabled.as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(ApiError::field(
                    "enabled",
                    format!("{other:?} is not true or false"),
                ));
            }
        });
    }
    let page = state
        .service
        .list_configs(&app_key, filter, page_request(&query)?)
        .await?;
    Ok(Json(ConfigListResponse {
        header: ok(),
        webhook_configs: page.items.iter().map(views::config).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Get a webhook config
///
/// One config with its settings and health (HEALTHY, FAILING or DISABLED, consecutive
/// failures, last success and failure).
#[utoipa::path(get, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    responses((status = 200, description = "The config with its health", body = ConfigResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn get_config(
    State(state): State<SharedState>,
    caller: Caller,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<ConfigResponse>> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let config = state.service.get_config(&app_key, &config_id).await?;
    Ok(config_response(&config))
}

/// Replace a webhook config
///
/// Replaces every settable field: an omitted optional field returns to its default, except the
/// write-only `signingSecret`, which an omission keeps and `null` removes (so the usual GET, edit,
/// PUT round trip keeps it). The change applies to the next attempt of every delivery of this
/// config. `enabled: true` on a config that health checks DISABLED also gives it a fresh health.
#[utoipa::path(put, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    request_body(content = openapi::ConfigRequest, description = "Replaces the settable fields: an omitted optional field returns to its default, except `signingSecret` (omitted: kept; `null`: removed); `enabled: true` also clears a DISABLED health state. Read-only fields of a GET may be sent back unchanged.", content_type = "application/json"),
    responses((status = 200, description = "The config as stored now", body = ConfigResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn put_config(
    State(state): State<SharedState>,
    caller: Caller,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ConfigResponse>> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let bytes = read_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let input = ConfigInput::from_json(&parse_object(&bytes)?)?;
    let config = state
        .service
        .replace_config(&app_key, &config_id, input)
        .await?;
    Ok(config_response(&config))
}

/// Change some fields of a webhook config
///
/// A JSON Merge Patch (RFC 7396): only the fields in the body change; `null` returns an optional
/// field to its default, and `"signingSecret": null` removes the signing secret. The result is
/// checked like a whole config (the error names the field), and nothing changes if it fails.
#[utoipa::path(patch, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    request_body(content = openapi::ConfigPatch, description = "The fields to change (`application/merge-patch+json` or `application/json`).", content_type = "application/merge-patch+json"),
    responses((status = 200, description = "The config as stored now", body = ConfigResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn patch_config(
    State(state): State<SharedState>,
    caller: Caller,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ConfigResponse>> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let bytes = read_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let patch = parse_object(&bytes)?;
    let config = state
        .service
        .patch_config(&app_key, &config_id, &patch)
        .await?;
    Ok(config_response(&config))
}

/// Delete a webhook config
///
/// Deletes the config. Its queued hooks and open deliveries become CANCELLED deliveries (kept
/// in the log); nothing more is sent to it. Answers the config as it was.
#[utoipa::path(delete, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    responses((status = 200, description = "Deleted; pending deliveries to it are CANCELLED. Answers the config as it was.", body = ConfigResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn delete_config(
    State(state): State<SharedState>,
    caller: Caller,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<ConfigResponse>> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let config = state.service.delete_config(&app_key, &config_id).await?;
    Ok(config_response(&config))
}

/// Send a test event
///
/// Sends one realistic sample hook of the named event (default: the config's first) to the
/// config's URL now, signed like a real delivery, outside the queue. It takes one of the config's
/// `maxRequestsInFlight` slots, one test per config at a time: when none is free it answers 429
/// with `Retry-After` and sends nothing. The send is logged as a delivery with `test: true`
/// (SUCCEEDED or FAILED, its one attempt), never retried, and does not change the config's
/// health. Answers the attempt: status code, latency, error, the start of the response body.
#[utoipa::path(post, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}/test", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    request_body(content = Option<openapi::TestRequest>, description = "Optional: which event to send (default: the config's first)", content_type = "application/json"),
    responses((status = 200, description = "The attempt: status code, latency, error. A failed attempt is still a 200 answer (see `succeeded`). Logged as the delivery `hooksId`, with `test: true`.", body = TestAttemptResponse),
        (status = 429, description = "No slot free for a test: every one of the config's `maxRequestsInFlight` slots is taken, or another test to it is under way (resultCode -1060). Nothing was sent; `Retry-After` says when to try again.", body = super::views::ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn test_config(
    State(state): State<SharedState>,
    caller: Caller,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<TestAttemptResponse>> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let bytes = read_optional_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let body = parse_object(&bytes)?;
    let config = state.service.get_config(&app_key, &config_id).await?;
    let event = optional_string(&body, "event", 64)?;
    let sent = state
        .service
        .send_test_event(&config, event.as_deref())
        .await?;
    Ok(Json(TestAttemptResponse {
        header: ok(),
        attempt: views::test_attempt(&sent),
    }))
}

/// Rotate the signing secret
///
/// Replaces the config's Standard Webhooks signing secret (generated when the body names
/// none). The old secret keeps signing beside the new one for `gracePeriod` (default 24h, up to
/// 30d): meanwhile every delivery carries both signatures, so receivers can switch keys at any
/// time within it.
#[utoipa::path(post, path = "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}/signing-secret/rotate", tag = "webhook configs",
    params(openapi::AppKeyPath, openapi::ConfigPath),
    request_body(content = Option<openapi::RotateSigningSecretRequest>, content_type = "application/json"),
    responses((status = 200, description = "Rotated; the new secret is shown only here. During the grace period every delivery carries two signatures (new and old).", body = RotatedSigningSecretResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn rotate_signing_secret(
    State(state): State<SharedState>,
    caller: Caller,
    Path((app_key, config_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<RotatedSigningSecretResponse>> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let bytes = read_optional_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let rotation = SigningSecretRotation::from_json(&parse_object(&bytes)?)?;
    let signing_secret = rotation.new_secret.clone();
    let config = state
        .service
        .rotate_signing_secret(&app_key, &config_id, rotation)
        .await?;
    Ok(Json(RotatedSigningSecretResponse {
        header: ok(),
        webhook_config: views::config(&config),
        signing_secret,
    }))
}
