//! `POST /v1/appkeys/{appKey}/events`: validate everything, store durably, then answer 202.

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use std::time::{Duration, Instant};

use super::auth::{Caller, require_app_key};
use super::body::read_json_body;
use super::error::{ApiError, ApiResult};
use super::ratelimit::{IngestRateLimiter, retry_after_secs};
use super::views::{HookIdsResponse, ok};
use super::{SharedState, openapi};

pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/v1/appkeys/{app_key}/events", post(ingest))
}

/// Ingest events
///
/// Stores hooks of one product and event durably and queues each new one for every enabled
/// config of the app key subscribed to the event. Answers `202` with the hookIds (in input
/// order) only after the commit that holds them. Idempotent on (appKey, hookId): a hook already
/// accepted is acknowledged again but neither stored nor delivered twice.
#[utoipa::path(post, path = "/v1/appkeys/{appKey}/events", tag = "events",
    params(openapi::AppKeyPath),
    request_body(content = openapi::IngestRequest, description = "All or nothing: every hook is validated against its event's table before anything is stored; the first error names its path (`hooks[3].messageStatus`). Idempotent on (appKey, hookId).", content_type = "application/json"),
    responses((status = 202, description = "Durably stored; the hookIds in input order", body = HookIdsResponse), openapi::AppKeyBodyErrors,
        (status = 429, description = "The app key is over its ingest rate limit (`--ingest-rate-limit`, resultCode -1060, counted in queue rows: a hook costs one per enabled config subscribed to its event, at least one); nothing was stored. Or this address has too many failed authentications (resultCode -1061): refused before the credentials are checked. `Retry-After` says in how many seconds the request can pass.", body = super::views::ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait before sending the request again")))),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn ingest(
    State(state): State<SharedState>,
    Path(app_key): Path<String>,
    request: Request,
) -> ApiResult<impl IntoResponse> {
    // The request taken whole, not a `HeaderMap` extractor: that one clones every header.
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    require_app_key(&state, Caller::of(&parts.extensions), &headers, &app_key).await?;
    let limiter = state.ingest_rate_limiter.as_ref();
    // An app key over its rate is refused before its body is read or validated.
    if let Some(limiter) = limiter {
        limiter
            .check(&app_key, Instant::now())
            .map_err(|wait| rate_limited(limiter, 1, wait))?;
    }
    let bytes = read_json_body(&headers, body, state.limits.max_body_bytes).await?;
    // All or nothing: the whole request is validated before anything is stored.
    let batch = hookline_wire::validate_ingest(&bytes, &state.limits.ingest)?;
    if let Some(limiter) = limiter {
        let hooks = batch.input_ids.len();
        limiter
            .take(&app_key, hooks, Instant::now())
            .map_err(|wait| rate_limited(limiter, hooks, wait))?;
    }
    let hook_ids = batch.input_ids;
    let (event, unique) = (batch.event, batch.hooks.len());
    // Answers only after the commit that holds the hooks and their queue rows.
    let outcome = match state
        .service
        .ingest(&app_key, batch.product, batch.event, batch.hooks)
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => {
            if let Some(limiter) = limiter {
                limiter.give_back(&app_key, hook_ids.len(), Instant::now());
            }
            return Err(e);
        }
    };
    if let Some(limiter) = limiter {
        // The limit counts the work an ingest makes: a hook fanned out to 10 configs costs 10.
        // Only the store knows the fan-out, after the commit: the rest of the cost is charged
        // now, and may leave the bucket in debt (this request is accepted, the next ones wait).
        let extra = outcome.queued.saturating_sub(hook_ids.len());
        limiter.charge(&app_key, extra, Instant::now());
    }
    crate::metrics::hooks_ingested(event, unique, outcome.new_hooks);
    crate::metrics::app_key_hooks_ingested(&app_key, outcome.new_hooks);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(HookIdsResponse {
            header: ok(),
            hook_ids,
        }),
    ))
}

/// 429: the app key sent more than its rate allows; `Retry-After` says when `hooks` can pass.
fn rate_limited(limiter: &IngestRateLimiter, hooks: usize, wait: Duration) -> ApiError {
    let secs = retry_after_secs(wait);
    let limit = limiter.limit();
    tracing::debug!(hooks, retry_after_secs = secs, "ingest rate limited");
    ApiError::rate_limited(
        format!(
            "hooks: {hooks} hook(s) are over this app key's ingest rate limit of {} queue rows \
             (hooks times their subscribed configs) per second (bursts of {}); nothing was \
             stored, retry in {secs} s",
            limit.hooks_per_second, limit.burst
        ),
        secs,
    )
}
