//! Standard Webhooks signing secret rotation: the new secret signs at once, and the old one
//! keeps signing beside it for a grace period, so receivers can switch keys without rejecting a
//! delivery.

use std::time::Duration;

use serde_json::{Map, Value};

use super::input::{MAX_TEXT_LEN, optional_string};
use super::{Error, Result, Service};
use crate::duration::Period;
use crate::model::{PreviousSecret, WebhookConfig, now_millis};

/// The longest grace period a rotated-out signing secret may keep signing.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);
/// How long the old secret signs beside the new one when the request does not say.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(86_400);

/// What a rotation asks for: the new secret (generated when not given) and the grace period.
#[derive(Debug, Clone)]
pub struct SigningSecretRotation {
    pub new_secret: String,
    pub grace: Duration,
}

impl SigningSecretRotation {
    /// Reads `{"signingSecret": "whsec_...", "gracePeriod": "24h"}`, both optional.
    pub fn from_json(body: &Map<String, Value>) -> Result<Self> {
        if let Some(unknown) = body
            .keys()
            .find(|k| !["signingSecret", "gracePeriod"].contains(&k.as_str()))
        {
            return Err(Error::field(
                unknown,
                "unknown field; the fields are signingSecret, gracePeriod",
            ));
        }
        let new_secret = match optional_string(body, "signingSecret", MAX_TEXT_LEN)? {
            Some(secret) if hookline_wire::standard_webhooks::is_valid_secret(&secret) => secret,
            Some(_) => {
                return Err(Error::field(
                    "signingSecret",
                    "must be whsec_ followed by a base64 key of 24 to 64 bytes",
                ));
            }
            None => hookline_wire::standard_webhooks::generate_secret(),
        };
        let grace = match optional_string(body, "gracePeriod", 32)? {
            None => DEFAULT_GRACE,
            Some(text) => Period::parse_within(&text, Duration::ZERO, MAX_GRACE)
                .map(Period::get)
                .map_err(|_| {
                    Error::field(
                        "gracePeriod",
                        format!("{text:?} is not a duration from 0s to 30d such as \"24h\""),
                    )
                })?,
        };
        Ok(SigningSecretRotation { new_secret, grace })
    }
}

impl Service {
    /// Replaces the config's signing secret; the old one signs beside it until the grace period
    /// ends (not at all with a grace of 0s).
    pub async fn rotate_signing_secret(
        &self,
        app_key: &str,
        config_id: &str,
        rotation: SigningSecretRotation,
    ) -> Result<WebhookConfig> {
        let mut config = self.get_config(app_key, config_id).await?;
        if config.signing_secret.as_deref() == Some(rotation.new_secret.as_str()) {
            return Err(Error::field(
                "signingSecret",
                "is the current signing secret; a rotation needs a new one",
            ));
        }
        let now = now_millis();
        config.previous_signing_secret = config.signing_secret.take().and_then(|secret| {
            let expires_at = now.saturating_add(rotation.grace.as_millis() as i64);
            (expires_at > now).then_some(PreviousSecret { secret, expires_at })
        });
        config.signing_secret = Some(rotation.new_secret);
        config.updated_at = now;
        let config = self.update_config(config).await?;
        tracing::info!(config_id, grace = ?rotation.grace, "signing secret rotated");
        Ok(config)
    }
}
