//! Dashboard sessions and CSRF protection.
//!
//! Signing in with an app key and its secret key, or opening a portal link
//! (`service::portal_links`), creates a session: a random 32-character id in
//! an `HttpOnly; SameSite=Strict` cookie. The session itself is in the store
//! (`service::sessions`): the SHA-256 of its id, the app key, the secret key's hash (checked
//! against the store on every request, so rotating the secret key ends the session), a
//! per-session CSRF token and an expiry. The id and the secret key themselves are never kept.
//! So any node of a cluster serves any session, and a restart signs nobody out.
//!
//! The one-time messages a page shows after a form's redirect (flashes) stay in this process:
//! with several nodes behind a load balancer, the page after a POST may be served by another
//! node and then shows no message (the change itself is made and shown either way).
//!
//! Every state-changing form carries the session's CSRF token in a hidden `csrf` field, compared
//! in constant time; `SameSite=Strict` keeps the cookie off cross-site requests as a second
//! line, and a POST whose `Origin` names another host is refused before anything else.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::service::configs::TestSend;
use crate::service::portal_links::PortalSession;
use crate::service::{Result, Service};

pub const COOKIE: &str = "hookline_session";
/// How long a session lasts after sign-in.
pub const TTL_SECS: i64 = 8 * 3600;
/// Most flashes waiting at once; beyond it they are dropped (a flash is taken by the next page).
const MAX_FLASHES: usize = 100_000;
/// Most sessions of one app key; beyond it that app key's oldest goes, so one tenant signing in
/// over and over cannot push everyone else's sessions out.
pub const MAX_SESSIONS_PER_APP_KEY: usize = 32;

/// A message shown once, on the next page (after a POST and its redirect).
#[derive(Debug, Clone)]
pub enum Flash {
    Ok(String),
    Error(String),
    /// The result of "send a test event".
    Test(Box<TestSend>),
}

/// What a request learns from its session cookie.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session's key in the store (the hash of its id).
    pub key: String,
    pub app_key: String,
    pub secret_hash: String,
    pub csrf: String,
    /// Opened by a read-only portal link: every form but sign-out is refused.
    pub read_only: bool,
}

/// The sessions (in the store, through the service) and this process's flashes.
#[derive(Default)]
pub struct Sessions {
    /// By the session's key (the hash of its id).
    flashes: Mutex<HashMap<String, Flash>>,
}

impl Sessions {
    /// Starts a session for an app key; returns the id for the cookie.
    pub async fn create(
        &self,
        service: &Service,
        app_key: String,
        secret_hash: String,
    ) -> Result<String> {
        let session = service
            .start_session(
                app_key,
                secret_hash,
                TTL_SECS * 1000,
                MAX_SESSIONS_PER_APP_KEY,
            )
            .await?;
        Ok(session.id)
    }

    /// Uses a portal link: the session it opens (the id for the cookie), or `None` when the
    /// link no longer works (used, expired, revoked, or never made).
    pub async fn open_portal_link(
        &self,
        service: &Service,
        token: &str,
    ) -> Result<Option<PortalSession>> {
        service
            .open_portal_link(token, TTL_SECS * 1000, MAX_SESSIONS_PER_APP_KEY)
            .await
    }

    /// The live session named by the request's cookie, if any.
    pub async fn lookup(
        &self,
        service: &Service,
        headers: &HeaderMap,
    ) -> Result<Option<SessionInfo>> {
        let Some(id) = cookie_value(headers, COOKIE) else {
            return Ok(None);
        };
        Ok(service.find_session(id).await?.map(|s| SessionInfo {
            key: s.id_hash,
            app_key: s.app_key,
            secret_hash: s.secret_hash,
            csrf: s.csrf,
            read_only: s.origin.is_read_only(),
        }))
    }

    pub async fn remove(&self, service: &Service, key: &str) -> Result<()> {
        if let Ok(mut map) = self.flashes.lock() {
            map.remove(key);
        }
        service.end_session(key).await
    }

    pub fn set_flash(&self, key: &str, flash: Flash) {
        if let Ok(mut map) = self.flashes.lock()
            && (map.len() < MAX_FLASHES || map.contains_key(key))
        {
            map.insert(key.to_owned(), flash);
        }
    }

    pub fn take_flash(&self, key: &str) -> Option<Flash> {
        self.flashes.lock().ok()?.remove(key)
    }
}

/// The key (hash) of the session id in the request's cookie, for tests of the cookie parsing.
#[cfg(test)]
fn cookie_key(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, COOKIE).map(crate::service::credentials::hash_secret)
}

/// Constant-time comparison of the form's token with the session's.
pub fn csrf_ok(session: &SessionInfo, form_token: Option<&str>) -> bool {
    match form_token {
        Some(token) => token.as_bytes().ct_eq(session.csrf.as_bytes()).into(),
        None => false,
    }
}

/// A POST from a page of another origin: its `Origin` (or `Sec-Fetch-Site`) says so.
pub fn cross_origin(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// `Secure` is added when a proxy in front says the request came over HTTPS.
fn secure_attr(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if https { "; Secure" } else { "" }
}

pub fn set_cookie(headers: &HeaderMap, id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={TTL_SECS}{}",
        secure_attr(headers)
    )
}

pub fn clear_cookie(headers: &HeaderMap) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_attr(headers)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::credentials::hash_secret;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, value.parse().unwrap());
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_compared_exactly() {
        let key = cookie_key(&with_cookie(&format!("other=1; {COOKIE}=abc")));
        assert_eq!(key, Some(hash_secret("abc")));
        assert_eq!(cookie_key(&with_cookie("other=1")), None);
        let info = SessionInfo {
            key: "k".into(),
            app_key: "app".into(),
            secret_hash: "h".into(),
            csrf: "token".into(),
            read_only: false,
        };
        assert!(csrf_ok(&info, Some("token")));
        assert!(!csrf_ok(&info, Some("wrong")));
        assert!(!csrf_ok(&info, None));
    }

    #[test]
    fn origin_of_another_host_is_cross_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(!cross_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(!cross_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(cross_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(cross_origin(&h));
    }
}
