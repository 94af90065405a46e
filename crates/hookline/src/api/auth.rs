//! Who may call a route: the admin token (`Authorization: Bearer`, app key management and every
//! app key's routes) or an app key's own secret key (`X-Secret-Key`). Secrets are compared by
//! their hashes in constant time (`service::credentials`); a secret key verified in the last
//! second is trusted without reading the store (`service::verified_secrets`).

use axum::http::HeaderMap;

use super::SharedState;
use super::error::{ApiError, ApiResult, ErrorKind};
use crate::service::app_keys::SecretKeyOwner;
use crate::service::credentials::secret_matches;

pub const SECRET_KEY_HEADER: &str = "X-Secret-Key";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn is_admin_token(state: &SharedState, token: &str) -> bool {
    secret_matches(token, &state.admin_token_hash)
}

/// Admin routes: a valid admin token or 401.
pub fn require_admin(state: &SharedState, headers: &HeaderMap) -> ApiResult<()> {
    match bearer(headers) {
        Some(token) if is_admin_token(state, token) => Ok(()),
        Some(_) => Err(ApiError::new(
            ErrorKind::Unauthorized,
            "Authorization: the admin token is not valid",
        )),
        None => Err(ApiError::new(
            ErrorKind::Unauthorized,
            "Authorization: this route needs the admin token (Authorization: Bearer <token>)",
        )),
    }
}

/// Routes under `/v1/appkeys/{appKey}/`: the app key's own secret key, or the admin token.
/// A valid secret of another app key is 403; no or an unknown secret is 401; an unknown app key
/// is 404 for the admin (others never learn whether it exists).
pub async fn require_app_key(
    state: &SharedState,
    headers: &HeaderMap,
    app_key: &str,
) -> ApiResult<()> {
    if let Some(token) = bearer(headers) {
        if !is_admin_token(state, token) {
            return Err(ApiError::new(
                ErrorKind::Unauthorized,
                "Authorization: the admin token is not valid",
            ));
        }
        return match state.service.app_key_exists(app_key).await? {
            true => Ok(()),
            false => Err(ApiError::not_found(format!(
                "appKey: no app key {app_key:?}"
            ))),
        };
    }
    let Some(secret) = headers.get(SECRET_KEY_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "X-Secret-Key: this route needs the app key's secret key",
        ));
    };
    match state.service.secret_key_owner(app_key, secret).await? {
        SecretKeyOwner::ThisAppKey => Ok(()),
        SecretKeyOwner::AnotherAppKey => Err(ApiError::new(
            ErrorKind::Forbidden,
            "X-Secret-Key: this secret key belongs to another app key",
        )),
        SecretKeyOwner::Unknown => Err(ApiError::new(
            ErrorKind::Unauthorized,
            "X-Secret-Key: unknown secret key",
        )),
    }
}
