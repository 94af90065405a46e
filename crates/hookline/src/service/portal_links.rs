//! Portal links: a short-lived, single-use link that opens a dashboard session for an app key,
//! made by the app key's secret key or the admin token (for someone who should see the dashboard
//! without ever holding the secret key). The token in the link is random and stored only as its
//! hash; using the link deletes it, in the write that stores the session it opens. A rotation of
//! the secret key revokes the unused links and ends the sessions they opened (the store does both
//! in the rotation's write).

use std::time::Duration;

use serde_json::{Map, Value};

use super::credentials::{hash_secret, new_secret};
use super::input::{optional_string, wrong_type};
use super::sessions::ID_LEN;
use super::{Error, Result, Service};
use crate::duration::Period;
use crate::model::{Millis, PortalLinkRecord, PortalRedemption, SessionStart, now_millis};

/// The shortest and longest life of a link, and its default.
pub const MIN_EXPIRES_IN: Duration = Duration::from_secs(60);
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(10 * 60);
/// Most unused links of one app key at once; beyond it the oldest is revoked, so a loop making
/// links cannot grow the table (expired ones go as new ones come).
pub const MAX_LINKS_PER_APP_KEY: usize = 100;
/// Letters and digits in a link's token.
const TOKEN_LEN: usize = 32;
/// Where a link's path starts; the token follows.
pub const PORTAL_PATH: &str = "/ui/portal/";

/// What a link is asked to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalLinkRequest {
    pub expires_in: Duration,
    pub read_only: bool,
}

impl Default for PortalLinkRequest {
    fn default() -> Self {
        PortalLinkRequest {
            expires_in: DEFAULT_EXPIRES_IN,
            read_only: false,
        }
    }
}

impl PortalLinkRequest {
    /// Reads `{"expiresIn": "10m", "readOnly": false}` (both optional). Anything else is refused,
    /// naming the field, so a typo of `readOnly` never makes a link that can change things.
    pub fn from_json(body: &Map<String, Value>) -> Result<Self> {
        if let Some(unknown) = body
            .keys()
            .find(|k| !matches!(k.as_str(), "expiresIn" | "readOnly"))
        {
            return Err(Error::field(
                unknown,
                "unknown field; the fields are expiresIn, readOnly",
            ));
        }
        let expires_in = match optional_string(body, "expiresIn", 32)? {
            None => DEFAULT_EXPIRES_IN,
            Some(text) => Period::parse_within(&text, MIN_EXPIRES_IN, MAX_EXPIRES_IN)
                .map(Period::get)
                .map_err(|_| {
                    Error::field(
                        "expiresIn",
                        format!("{text:?} is not a duration from 1m to 24h such as \"10m\""),
                    )
                })?,
        };
        let read_only = match body.get("readOnly") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(wrong_type("readOnly", "true or false", other)),
        };
        Ok(PortalLinkRequest {
            expires_in,
            read_only,
        })
    }
}

/// A link just made: the token goes into its URL and is not kept anywhere.
#[derive(Debug, Clone)]
pub struct NewPortalLink {
    pub token: String,
    pub expires_at: Millis,
    pub read_only: bool,
}

impl NewPortalLink {
    /// The link's path (`/ui/portal/<token>`); a server with a public URL puts that before it.
    pub fn path(&self) -> String {
        format!("{PORTAL_PATH}{}", self.token)
    }
}

/// A session a link opened: the id goes into the cookie and is not kept anywhere.
#[derive(Debug, Clone)]
pub struct PortalSession {
    pub id: String,
    pub app_key: String,
    pub read_only: bool,
}

impl Service {
    /// Makes a link that opens a dashboard session for `app_key`.
    pub async fn create_portal_link(
        &self,
        app_key: &str,
        request: PortalLinkRequest,
    ) -> Result<NewPortalLink> {
        let token = new_secret(TOKEN_LEN);
        let now = now_millis();
        let expires_at = now + request.expires_in.as_millis() as i64;
        let record = PortalLinkRecord {
            token_hash: hash_secret(&token),
            app_key: app_key.to_owned(),
            read_only: request.read_only,
            created_at: now,
            expires_at,
        };
        if !self
            .store
            .create_portal_link(record, MAX_LINKS_PER_APP_KEY)
            .await?
        {
            return Err(Error::not_found(format!("appKey: no app key {app_key:?}")));
        }
        // No token in the line: the link is a credential until it is used.
        tracing::info!(
            app_key,
            read_only = request.read_only,
            expires_in = %crate::duration::format(request.expires_in),
            "portal link created"
        );
        Ok(NewPortalLink {
            token,
            expires_at,
            read_only: request.read_only,
        })
    }

    /// Uses the link of `token`: a session lasting `ttl_ms` (capped at `keep_per_app_key` per app
    /// key, like sign-ins), or `None` when the link was used, expired, was revoked, or never was.
    pub async fn open_portal_link(
        &self,
        token: &str,
        ttl_ms: i64,
        keep_per_app_key: usize,
    ) -> Result<Option<PortalSession>> {
        let id = new_secret(ID_LEN);
        let now = now_millis();
        let start = SessionStart {
            id_hash: hash_secret(&id),
            csrf: new_secret(ID_LEN),
            created_at: now,
            expires_at: now + ttl_ms,
        };
        match self
            .store
            .redeem_portal_link(&hash_secret(token), start, keep_per_app_key)
            .await?
        {
            PortalRedemption::Opened { app_key, read_only } => {
                tracing::info!(
                    app_key,
                    read_only,
                    "dashboard session opened by a portal link"
                );
                Ok(Some(PortalSession {
                    id,
                    app_key,
                    read_only,
                }))
            }
            PortalRedemption::Gone => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ErrorKind;
    use serde_json::json;

    fn read(body: Value) -> Result<PortalLinkRequest> {
        match body {
            Value::Object(map) => PortalLinkRequest::from_json(&map),
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn a_request_reads_its_two_fields_within_their_bounds() {
        assert_eq!(read(json!({})).unwrap(), PortalLinkRequest::default());
        assert_eq!(
            read(json!({"expiresIn": "24h", "readOnly": true})).unwrap(),
            PortalLinkRequest {
                expires_in: MAX_EXPIRES_IN,
                read_only: true
            }
        );
        assert_eq!(
            read(json!({"expiresIn": "1m"})).unwrap().expires_in,
            MIN_EXPIRES_IN
        );
        for (body, field, kind) in [
            (
                json!({"expiresIn": "59s"}),
                "expiresIn",
                ErrorKind::InvalidField,
            ),
            (
                json!({"expiresIn": "25h"}),
                "expiresIn",
                ErrorKind::InvalidField,
            ),
            (
                json!({"expiresIn": "soon"}),
                "expiresIn",
                ErrorKind::InvalidField,
            ),
            (json!({"expiresIn": 600}), "expiresIn", ErrorKind::WrongType),
            (json!({"readOnly": "yes"}), "readOnly", ErrorKind::WrongType),
            (
                json!({"readonly": true}),
                "readonly",
                ErrorKind::InvalidField,
            ),
        ] {
            let e = read(body.clone()).unwrap_err();
            assert_eq!(e.kind, kind, "{body}");
            assert!(
                e.message.starts_with(&format!("{field}: ")),
                "{body}: {}",
                e.message
            );
        }
    }
}
