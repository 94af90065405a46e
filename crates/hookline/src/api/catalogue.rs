//! The route of the event catalogue (`GET /v1/catalogue`): every product and event with its hook
//! schema, aliases and example, open to the admin and to every app key.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};

use super::auth::{Caller, require_admin_or_any_app_key};
use super::error::ApiResult;
use super::views::{self, CatalogueResponse, ok};
use super::{SharedState, openapi};

pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/v1/catalogue", get(get_catalogue))
}

/// The event catalogue
///
/// Every product and its events: what each event means, the JSON Schema (draft 2020-12) of one of
/// its hooks (equivalent to what ingest checks), the aliases ingest accepts and renames, and an
/// example hook. Built in: SMS, KakaoTalk Bizmessage, Email, and hookline's own operational events
/// (product `hookline`, not ingestible); the operator may add products and events (`hookline serve
/// --catalogue FILE`).
#[utoipa::path(get, path = "/v1/catalogue", tag = "catalogue",
    responses((status = 200, description = "The catalogue in force", body = CatalogueResponse), openapi::AppKeyErrors),
    security(("secretKey" = []), ("adminToken" = [])))]
pub async fn get_catalogue(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Json<CatalogueResponse>> {
    require_admin_or_any_app_key(&state, caller, &headers).await?;
    Ok(Json(CatalogueResponse {
        header: ok(),
        catalogue: views::catalogue(hookline_wire::catalogue()),
    }))
}
