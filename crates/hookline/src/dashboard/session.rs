//! Dashboard sessions and CSRF protection.
//!
//! Signing in with an app key and its secret key creates a session: a random 32-character id in
//! an `HttpOnly; SameSite=Strict` cookie, mapped in memory to the app key, the secret key's hash
//! (checked against the store on every request, so rotating the secret key ends the session), a
//! per-session CSRF token and an expiry. The secret key itself is never kept. Sessions live in
//! this process only: a restart signs everyone out.
//!
//! Every state-changing form carries the session's CSRF token in a hidden `csrf` field, compared
//! in constant time; `SameSite=Strict` keeps the cookie off cross-site requests as a second
//! line, and a POST whose `Origin` names another host is refused before anything else.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::model::{Millis, now_millis};
use crate::service::configs::TestSend;
use crate::service::credentials::{hash_secret, new_secret};

pub const COOKIE: &str = "hookline_session";
/// How long a session lasts after sign-in.
pub const TTL_SECS: i64 = 8 * 3600;
/// Most sessions kept at once; beyond it the oldest goes.
const MAX_SESSIONS: usize = 100_000;
/// Most sessions of one app key; beyond it that app key's oldest goes, so one tenant signing in
/// over and over cannot push everyone else's sessions out.
pub const MAX_SESSIONS_PER_APP_KEY: usize = 32;
const ID_LEN: usize = 32;

/// A message shown once, on the next page (after a POST and its redirect).
#[derive(Debug, Clone)]
pub enum Flash {
    Ok(String),
    Error(String),
    /// The result of "send a test event".
    Test(Box<TestSend>),
}

#[derive(Debug, Clone)]
struct Session {
    app_key: String,
    secret_hash: String,
    csrf: String,
    expires_at: Millis,
    flash: Option<Flash>,
}

/// What a request learns from its session cookie.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session's key in the map (the hash of its id).
    pub key: String,
    pub app_key: String,
    pub secret_hash: String,
    pub csrf: String,
}

#[derive(Default)]
pub struct Sessions {
    /// By the SHA-256 of the session id: the map never holds a usable id.
    inner: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for an app key; returns the id for the cookie.
    pub fn create(&self, app_key: String, secret_hash: String) -> String {
        let id = new_secret(ID_LEN);
        let now = now_millis();
        let session = Session {
            app_key,
            secret_hash,
            csrf: new_secret(ID_LEN),
            expires_at: now + TTL_SECS * 1000,
            flash: None,
        };
        if let Ok(mut map) = self.inner.lock() {
            map.retain(|_, s| s.expires_at > now);
            let oldest_of = |map: &HashMap<String, Session>, app_key: Option<&str>| {
                map.iter()
                    .filter(|(_, s)| app_key.is_none_or(|k| s.app_key == k))
                    .min_by_key(|(_, s)| s.expires_at)
                    .map(|(k, _)| k.clone())
            };
            let of_this_key = map
                .values()
                .filter(|s| s.app_key == session.app_key)
                .count();
            if of_this_key >= MAX_SESSIONS_PER_APP_KEY
                && let Some(oldest) = oldest_of(&map, Some(&session.app_key))
            {
                map.remove(&oldest);
            }
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = oldest_of(&map, None)
            {
                map.remove(&oldest);
            }
            map.insert(hash_secret(&id), session);
        }
        id
    }

    /// The live session named by the request's cookie, if any.
    pub fn lookup(&self, headers: &HeaderMap) -> Option<SessionInfo> {
        let id = cookie_value(headers, COOKIE)?;
        let key = hash_secret(id);
        let mut map = self.inner.lock().ok()?;
        let session = map.get(&key)?;
        if session.expires_at <= now_millis() {
            map.remove(&key);
            return None;
        }
        Some(SessionInfo {
            app_key: session.app_key.clone(),
            secret_hash: session.secret_hash.clone(),
            csrf: session.csrf.clone(),
            key,
        })
    }

    pub fn remove(&self, key: &str) {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(key);
        }
    }

    pub fn set_flash(&self, key: &str, flash: Flash) {
        if let Ok(mut map) = self.inner.lock()
            && let Some(s) = map.get_mut(key)
        {
            s.flash = Some(flash);
        }
    }

    pub fn take_flash(&self, key: &str) -> Option<Flash> {
        self.inner.lock().ok()?.get_mut(key)?.flash.take()
    }
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

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, value.parse().unwrap());
        h
    }

    #[test]
    fn one_app_key_signing_in_again_and_again_keeps_others_signed_in() {
        let sessions = Sessions::default();
        let other = sessions.create("quiet".into(), "h".into());
        let mut noisy = Vec::new();
        for _ in 0..(MAX_SESSIONS_PER_APP_KEY * 3) {
            noisy.push(sessions.create("noisy".into(), "h".into()));
        }
        let live = |id: &str| {
            sessions
                .inner
                .lock()
                .unwrap()
                .contains_key(&hash_secret(id))
        };
        assert!(live(&other), "another app key's session survives");
        let alive = noisy.iter().filter(|id| live(id)).count();
        assert_eq!(alive, MAX_SESSIONS_PER_APP_KEY);
        assert!(live(noisy.last().unwrap()), "the newest stays");
        assert!(!live(&noisy[0]), "the oldest of that app key goes");
    }

    #[test]
    fn a_session_is_found_by_its_cookie_only() {
        let sessions = Sessions::default();
        let id = sessions.create("app".into(), "hash".into());
        let found = sessions
            .lookup(&with_cookie(&format!("other=1; {COOKIE}={id}")))
            .unwrap();
        assert_eq!(found.app_key, "app");
        assert!(csrf_ok(&found, Some(&found.csrf)));
        assert!(!csrf_ok(&found, Some("wrong")));
        assert!(!csrf_ok(&found, None));
        assert!(
            sessions
                .lookup(&with_cookie(&format!("{COOKIE}=x{id}")))
                .is_none()
        );
        sessions.remove(&found.key);
        assert!(
            sessions
                .lookup(&with_cookie(&format!("{COOKIE}={id}")))
                .is_none()
        );
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
