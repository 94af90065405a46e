//! Signatures: the documents' static `X-Toast-Webhook-Signature` and, beyond them, Standard Webhooks
//! HMAC signatures.

use subtle::ConstantTimeEq;

/// The header that carries a config's static signature string, verbatim.
pub const SIGNATURE_HEADER: &str = "X-Toast-Webhook-Signature";

/// Compares a received `X-Toast-Webhook-Signature` value with the one the receiver configured, in
/// time that does not depend on where they differ (so an attacker cannot guess it byte by byte).
///
/// The comparison does leak whether the lengths are equal: the signature's length is not secret
/// enough to matter, and hiding it would need padding to an assumed maximum length.
pub fn verify_static_signature(received: &str, expected: &str) -> bool {
    received.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Why signing or verifying failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The secret is not `whsec_` followed by standard base64 of a non-empty key, or no secret was
    /// given at all.
    #[error("invalid signing secret: {0}")]
    InvalidSecret(&'static str),
    /// The `webhook-timestamp` is further from now than the tolerance (a replay, or a clock far off).
    #[error("webhook-timestamp {timestamp} is more than {tolerance_secs} s away from now ({now})")]
    TimestampOutOfTolerance {
        /// The message's timestamp (unix seconds).
        timestamp: i64,
        /// The verifier's clock (unix seconds).
        now: i64,
        /// The allowed difference in seconds, either way.
        tolerance_secs: i64,
    },
    /// The `webhook-signature` header holds no `v1,` signature.
    #[error("webhook-signature holds no v1 signature")]
    NoSignature,
    /// No `v1` signature in the header matches the secret and message.
    #[error("no webhook-signature matches")]
    Mismatch,
}

/// [Standard Webhooks](https://www.standardwebhooks.com/) signatures: HMAC-SHA256 over
/// `"{webhook-id}.{webhook-timestamp}.{body}"`, sent as `webhook-signature: v1,<base64>`, verifiable
/// by the official Standard Webhooks (and Svix) libraries.
pub mod standard_webhooks {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, KeyInit, Mac};
    use rand::Rng;
    use sha2::Sha256;
    use subtle::ConstantTimeEq;

    pub use super::SignatureError;

    /// Header carrying the message id (hookline sends the `hooksId`).
    pub const ID_HEADER: &str = "webhook-id";
    /// Header carrying the attempt's unix timestamp in seconds.
    pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
    /// Header carrying the space-separated `v1,<base64>` signatures.
    pub const SIGNATURE_HEADER: &str = "webhook-signature";
    /// Prefix of every secret.
    pub const SECRET_PREFIX: &str = "whsec_";
    /// The tolerance the Standard Webhooks libraries use: five minutes either way.
    pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

    /// Shortest key [`is_valid_secret`] accepts (the specification's recommendation).
    pub const MIN_KEY_BYTES: usize = 24;
    /// Longest key [`is_valid_secret`] accepts (the specification's recommendation).
    pub const MAX_KEY_BYTES: usize = 64;
    const GENERATED_KEY_BYTES: usize = 24;

    fn key(secret: &str) -> Result<Vec<u8>, SignatureError> {
        let encoded = secret
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SignatureError::InvalidSecret("it must start with whsec_"))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SignatureError::InvalidSecret("the part after whsec_ is not base64"))?;
        if key.is_empty() {
            return Err(SignatureError::InvalidSecret("the key is empty"));
        }
        Ok(key)
    }

    fn mac(
        key: &[u8],
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Result<String, SignatureError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|_| SignatureError::InvalidSecret("the key cannot key HMAC-SHA256"))?;
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        Ok(STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// Signs one message: `"v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">"`, keyed by the
    /// base64-decoded part of `secret` (`whsec_<base64>`).
    pub fn sign(
        secret: &str,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Result<String, SignatureError> {
        let key = key(secret)?;
        Ok(format!("v1,{}", mac(&key, msg_id, timestamp, body)?))
    }

    /// Signs with every secret and joins the signatures with spaces, for key rotation: a receiver
    /// holding either the old or the new secret accepts the message. Fails on an empty list.
    pub fn sign_all(
        secrets: &[&str],
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Result<String, SignatureError> {
        if secrets.is_empty() {
            return Err(SignatureError::InvalidSecret("no secret given"));
        }
        let signatures = secrets
            .iter()
            .map(|secret| sign(secret, msg_id, timestamp, body))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(signatures.join(" "))
    }

    /// Verifies a message as a receiver: `timestamp` must be within `tolerance_secs` of `now` (both
    /// unix seconds; either direction), and at least one `v1,` signature of the space-separated
    /// `header` must match. Signatures of other versions are ignored. Each candidate is compared in
    /// constant time (only its length can leak, and the length of a `v1` signature is public).
    pub fn verify(
        secret: &str,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
        header: &str,
        now: i64,
        tolerance_secs: i64,
    ) -> Result<(), SignatureError> {
        let key = key(secret)?;
        if now.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
            return Err(SignatureError::TimestampOutOfTolerance {
                timestamp,
                now,
                tolerance_secs,
            });
        }
        let expected = mac(&key, msg_id, timestamp, body)?;
        let mut any_v1 = false;
        for candidate in header.split_whitespace() {
            let Some(signature) = candidate.strip_prefix("v1,") else {
                continue;
            };
            any_v1 = true;
            if bool::from(signature.as_bytes().ct_eq(expected.as_bytes())) {
                return Ok(());
            }
        }
        Err(if any_v1 {
            SignatureError::Mismatch
        } else {
            SignatureError::NoSignature
        })
    }

    /// A new secret: `whsec_` + standard base64 of 24 bytes from a cryptographically secure RNG.
    pub fn generate_secret() -> String {
        let mut key = [0u8; GENERATED_KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
    }

    /// Whether `s` is a usable secret: `whsec_` then standard base64 (padded as needed) of a key of
    /// 24 to 64 bytes, the range the Standard Webhooks specification recommends. ([`sign`] and
    /// [`verify`] accept any non-empty key, so receivers can still check a shorter legacy key.)
    pub fn is_valid_secret(s: &str) -> bool {
        key(s).is_ok_and(|k| (MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&k.len()))
    }
}
