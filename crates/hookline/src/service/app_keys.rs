//! App keys: create, list, rotate the secret key, and find whose a secret key is.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::credentials::{
    APP_KEY_LEN, SECRET_KEY_LEN, SecretDigest, hash_secret, new_secret, secret_digest,
};
use super::input::optional_string;
use super::verified_secrets::Trust;
use super::{Error, Result, Service};
use crate::duration::Period;
use crate::model::{AppKeyRecord, Page, PageRequest, now_millis};

/// The longest time a replaced secret key keeps working after a rotation.
pub const MAX_SECRET_KEY_GRACE: Duration = Duration::from_secs(7 * 86_400);

/// What a secret-key rotation asks for: how long the replaced key keeps working (default: it
/// stops at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecretKeyRotation {
    pub grace: Duration,
}

impl SecretKeyRotation {
    /// Reads `{"gracePeriod": "1h"}` (optional, `0s` to `7d`). Anything else is refused, so a
    /// request that meant something else never rotates.
    pub fn from_json(body: &Map<String, Value>) -> Result<Self> {
        if let Some(unknown) = body.keys().find(|k| k.as_str() != "gracePeriod") {
            return Err(Error::field(
                unknown,
                "unknown field; the only field is gracePeriod",
            ));
        }
        let grace = match optional_string(body, "gracePeriod", 32)? {
            None => Duration::ZERO,
            Some(text) => Period::parse_within(&text, Duration::ZERO, MAX_SECRET_KEY_GRACE)
                .map(Period::get)
                .map_err(|_| {
                    Error::field(
                        "gracePeriod",
                        format!("{text:?} is not a duration from 0s to 7d such as \"1h\""),
                    )
                })?,
        };
        Ok(SecretKeyRotation { grace })
    }
}

/// Whose a secret key presented for an app key's routes is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKeyOwner {
    /// The app key's own secret key.
    ThisAppKey,
    /// Another app key's.
    AnotherAppKey,
    /// Nobody's.
    Unknown,
}

/// An app key with its secret key in clear: only ever shown in the answer that made it.
#[derive(Debug, Clone)]
pub struct AppKeyWithSecret {
    pub record: AppKeyRecord,
    pub secret_key: String,
}

impl Service {
    pub async fn create_app_key(&self, name: String) -> Result<AppKeyWithSecret> {
        let record = AppKeyRecord {
            app_key: new_secret(APP_KEY_LEN),
            name,
            created_at: now_millis(),
            previous_secret_key_expires_at: None,
        };
        let secret_key = new_secret(SECRET_KEY_LEN);
        self.store
            .create_app_key(record.clone(), hash_secret(&secret_key))
            .await?;
        tracing::info!(app_key = record.app_key, "app key created");
        Ok(AppKeyWithSecret { record, secret_key })
    }

    pub async fn list_app_keys(&self, page: PageRequest) -> Result<Page<AppKeyRecord>> {
        Ok(self.store.list_app_keys(page).await?)
    }

    /// Whether the app key exists (for the admin, who may name any).
    pub async fn app_key_exists(&self, app_key: &str) -> Result<bool> {
        Ok(self.store.get_app_key(app_key).await?.is_some())
    }

    /// The app key a secret key belongs to, by the secret's hash.
    pub async fn owner_of_secret_hash(&self, secret_hash: &str) -> Result<Option<String>> {
        Ok(self
            .store
            .app_key_by_secret_hash(secret_hash, now_millis())
            .await?)
    }

    /// Whose `secret` is, for a request to `app_key`'s routes. A secret key the store confirmed
    /// as `app_key`'s is trusted from memory for a second after (see `verified_secrets`), and
    /// refreshed in the background past half of that.
    pub async fn secret_key_owner(&self, app_key: &str, secret: &str) -> Result<SecretKeyOwner> {
        let digest = secret_digest(secret);
        let now = Instant::now();
        match self.verified_secrets.check(app_key, &digest, now) {
            Trust::Trusted => return Ok(SecretKeyOwner::ThisAppKey),
            Trust::TrustedRefreshDue => {
                self.refresh_verified_secret(app_key, digest, now);
                return Ok(SecretKeyOwner::ThisAppKey);
            }
            Trust::Unknown => {}
        }
        let epoch = self.verified_secrets.epoch();
        Ok(
            match self
                .store
                .app_key_by_secret_hash(&hex::encode(digest), now_millis())
                .await?
            {
                Some(owner) if owner == app_key => {
                    self.verified_secrets.remember(app_key, digest, epoch, now);
                    SecretKeyOwner::ThisAppKey
                }
                Some(_) => SecretKeyOwner::AnotherAppKey,
                None => SecretKeyOwner::Unknown,
            },
        )
    }

    /// Reads the store again for a secret key trusted from memory, on a task of its own (see
    /// `verified_secrets`, "Refreshed ahead").
    fn refresh_verified_secret(&self, app_key: &str, digest: SecretDigest, now: Instant) {
        let (store, cache) = (self.store.clone(), self.verified_secrets.clone());
        let app_key = app_key.to_owned();
        let epoch = cache.epoch();
        tokio::spawn(async move {
            match store
                .app_key_by_secret_hash(&hex::encode(digest), now_millis())
                .await
            {
                Ok(Some(owner)) if owner == app_key => cache.remember(&app_key, digest, epoch, now),
                Ok(_) => cache.drop_secret(&app_key, &digest),
                Err(_) => cache.refresh_failed(&app_key, &digest),
            }
        });
    }

    /// A new secret key; the old one keeps working for `rotation.grace`, then stops (without a
    /// grace: at once on this node, and on other nodes of a shared store within
    /// `verified_secrets::VERIFIED_SECRET_TTL`; the same bound applies when a grace ends).
    pub async fn rotate_secret_key(
        &self,
        app_key: &str,
        rotation: SecretKeyRotation,
    ) -> Result<AppKeyWithSecret> {
        let secret_key = new_secret(SECRET_KEY_LEN);
        let no_such = || Error::not_found(format!("appKey: no app key {app_key:?}"));
        let previous_until =
            (!rotation.grace.is_zero()).then(|| now_millis() + rotation.grace.as_millis() as i64);
        if !self
            .store
            .set_secret_hash(app_key, hash_secret(&secret_key), previous_until)
            .await?
        {
            return Err(no_such());
        }
        // After the commit, so no request can verify the old key again here. (A rotation whose
        // request is dropped before this line leaves the old key trusted for up to a second.)
        self.verified_secrets.forget(app_key);
        let record = self.store.get_app_key(app_key).await?.ok_or_else(no_such)?;
        tracing::info!(
            app_key,
            grace = %crate::duration::format(rotation.grace),
            "secret key rotated"
        );
        Ok(AppKeyWithSecret { record, secret_key })
    }
}
