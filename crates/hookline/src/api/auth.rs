//! Who may call a route: the admin token (`Authorization: Bearer`, app key management and every
//! app key's routes) or an app key's own secret key (`X-Secret-Key`). Secrets are compared by
//! their hashes in constant time (`service::credentials`); a secret key verified in the last
//! second is trusted without reading the store (`service::verified_secrets`).
//!
//! Guessing is throttled ([`crate::throttle`]): a wrong admin token, an unknown secret key or
//! another app key's secret key counts as a failure of the client's address on its target (the
//! app key, or the admin token). An address over its limit, or one that has failed on a target
//! under a spread guess, gets `429` with `Retry-After` before its credentials are looked at. An
//! address that has not failed pays one lock of an empty map, and goes on even while its
//! target is under attack.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};

use super::SharedState;
use super::error::{ApiError, ApiResult, ErrorKind};
use crate::service::app_keys::SecretKeyOwner;
use crate::service::credentials::secret_matches;
use crate::throttle::Target;

pub const SECRET_KEY_HEADER: &str = "X-Secret-Key";
const AUTHORIZATION: &str = "Authorization";

/// The client's address, as the listener saw it (for the failure throttle). Without one (a
/// router called without the listener, in tests), every client counts as `0.0.0.0`.
#[derive(Debug, Clone, Copy)]
pub struct Caller(IpAddr);

impl Caller {
    pub fn of(extensions: &Extensions) -> Caller {
        Caller(
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([0, 0, 0, 0]), |peer| peer.0.ip()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller::of(&parts.extensions))
    }
}

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

/// 429 when `caller` may not try `target` now; called before any credential is checked, so a
/// throttled guesser learns nothing, not even from a right guess.
fn not_throttled(
    state: &SharedState,
    caller: Caller,
    target: Target<'_>,
    field: &str,
) -> ApiResult<()> {
    state
        .auth_failures
        .check(caller.0, target, Instant::now())
        .map_err(|wait| {
            tracing::debug!(address = %caller.0, %target, "authentication throttled");
            ApiError::too_many_failed_authentications(
                field,
                super::ratelimit::retry_after_secs(wait),
            )
        })
}

/// Counts a failed authentication of `caller` on `target`, and passes `error` on.
fn failed(state: &SharedState, caller: Caller, target: Target<'_>, error: ApiError) -> ApiError {
    if state.auth_failures.failed(caller.0, target, Instant::now()) {
        // Once per address (or target) and window: the operator learns of a guess, with no
        // credential in the line.
        tracing::warn!(
            address = %caller.0,
            %target,
            "too many failed authentications; refusing with 429 until the window ends"
        );
    }
    error
}

/// Admin routes: a valid admin token or 401.
pub fn require_admin(state: &SharedState, caller: Caller, headers: &HeaderMap) -> ApiResult<()> {
    not_throttled(state, caller, Target::AdminToken, AUTHORIZATION)?;
    match bearer(headers) {
        Some(token) if is_admin_token(state, token) => Ok(()),
        Some(_) => Err(failed(
            state,
            caller,
            Target::AdminToken,
            ApiError::new(
                ErrorKind::Unauthorized,
                "Authorization: the admin token is not valid",
            ),
        )),
        None => Err(ApiError::new(
            ErrorKind::Unauthorized,
            "Authorization: this route needs the admin token (Authorization: Bearer <token>)",
        )),
    }
}

/// Routes open to every tenant (the catalogue): the admin token, or the secret key of any app key.
pub async fn require_admin_or_any_app_key(
    state: &SharedState,
    caller: Caller,
    headers: &HeaderMap,
) -> ApiResult<()> {
    if bearer(headers).is_some() {
        return require_admin(state, caller, headers);
    }
    let Some(secret) = headers.get(SECRET_KEY_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "X-Secret-Key: this route needs an app key's secret key or the admin token",
        ));
    };
    // No app key names the target here, so failures count against the address (and the shared
    // admin target, the one every unscoped guess tries).
    not_throttled(state, caller, Target::AdminToken, SECRET_KEY_HEADER)?;
    match state
        .service
        .owner_of_secret_hash(&crate::service::credentials::hash_secret(secret))
        .await?
    {
        Some(_) => Ok(()),
        None => Err(failed(
            state,
            caller,
            Target::AdminToken,
            ApiError::new(ErrorKind::Unauthorized, "X-Secret-Key: unknown secret key"),
        )),
    }
}

/// Routes under `/v1/appkeys/{appKey}/`: the app key's own secret key, or the admin token.
/// A valid secret of another app key is 403; no or an unknown secret is 401; an unknown app key
/// is 404 for the admin (others never learn whether it exists).
pub async fn require_app_key(
    state: &SharedState,
    caller: Caller,
    headers: &HeaderMap,
    app_key: &str,
) -> ApiResult<()> {
    if let Some(token) = bearer(headers) {
        not_throttled(state, caller, Target::AdminToken, AUTHORIZATION)?;
        if !is_admin_token(state, token) {
            return Err(failed(
                state,
                caller,
                Target::AdminToken,
                ApiError::new(
                    ErrorKind::Unauthorized,
                    "Authorization: the admin token is not valid",
                ),
            ));
        }
        return match state.service.app_key_exists(app_key).await? {
            true => Ok(()),
            false => Err(ApiError::not_found(format!(
                "appKey: no app key {app_key:?}"
            ))),
        };
    }
    let target = Target::AppKey(app_key);
    not_throttled(state, caller, target, SECRET_KEY_HEADER)?;
    let Some(secret) = headers.get(SECRET_KEY_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "X-Secret-Key: this route needs the app key's secret key",
        ));
    };
    match state.service.secret_key_owner(app_key, secret).await? {
        SecretKeyOwner::ThisAppKey => Ok(()),
        // Another app key's secret fails like an unknown one: it does not open this app key.
        SecretKeyOwner::AnotherAppKey => Err(failed(
            state,
            caller,
            target,
            ApiError::new(
                ErrorKind::Forbidden,
                "X-Secret-Key: this secret key belongs to another app key",
            ),
        )),
        SecretKeyOwner::Unknown => Err(failed(
            state,
            caller,
            target,
            ApiError::new(ErrorKind::Unauthorized, "X-Secret-Key: unknown secret key"),
        )),
    }
}
