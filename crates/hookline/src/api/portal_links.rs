//! Routes of portal links: make a short-lived, single-use link that signs its holder into the
//! dashboard for an app key (the dashboard opens it at `/ui/portal/{token}`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};

use super::auth::{Caller, require_app_key};
use super::body::{parse_object, read_optional_json_body};
use super::error::ApiResult;
use super::views::{self, PortalLinkResponse, ok};
use super::{SharedState, openapi};
use crate::service::portal_links::PortalLinkRequest;

pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/v1/appkeys/{app_key}/portal-links", post(create))
}

/// Create a portal link
///
/// A link that signs its holder into the dashboard for this app key, without the secret key: the
/// first `GET` of `url` sets the session cookie and redirects to `/`. The body is optional:
/// `{"expiresIn": "10m", "readOnly": false}` (`expiresIn` from `1m` to `24h`, default `10m`;
/// `readOnly: true` opens a session that sees every page and whose every form answers 403).
/// A link works once: a second use, or a use after `expiresAt`, answers 410. `url` is absolute
/// when the server has `--public-url`, else a path. Rotating the app key's secret key revokes its
/// unused links and ends the sessions they opened. A body that does not parse answers 400 naming
/// the field, and makes no link.
#[utoipa::path(post, path = "/v1/appkeys/{appKey}/portal-links", tag = "portal links",
    params(openapi::AppKeyPath),
    request_body(content = Option<openapi::PortalLinkRequest>, content_type = "application/json"),
    responses((status = 201, description = "The link; its token is shown only here", body = PortalLinkResponse), openapi::AppKeyBodyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    Path(app_key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    require_app_key(&state, caller, &headers, &app_key).await?;
    let bytes = read_optional_json_body(&headers, body, state.limits.max_body_bytes).await?;
    let request = PortalLinkRequest::from_json(&parse_object(&bytes)?)?;
    let link = state.service.create_portal_link(&app_key, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(PortalLinkResponse {
            header: ok(),
            portal_link: views::portal_link(&link, state.public_url.as_deref()),
        }),
    ))
}
