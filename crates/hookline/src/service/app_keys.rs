//! App keys: create, list, rotate the secret key, and find whose a secret key is.

use std::time::Instant;

use super::credentials::{APP_KEY_LEN, SECRET_KEY_LEN, hash_secret, new_secret, secret_digest};
use super::{Error, Result, Service};
use crate::model::{AppKeyRecord, Page, PageRequest, now_millis};

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
        Ok(self.store.app_key_by_secret_hash(secret_hash).await?)
    }

    /// Whose `secret` is, for a request to `app_key`'s routes. A secret key the store confirmed
    /// as `app_key`'s is trusted from memory for a second after (see `verified_secrets`).
    pub async fn secret_key_owner(&self, app_key: &str, secret: &str) -> Result<SecretKeyOwner> {
        let digest = secret_digest(secret);
        let now = Instant::now();
        if self.verified_secrets.check(app_key, &digest, now) {
            return Ok(SecretKeyOwner::ThisAppKey);
        }
        let epoch = self.verified_secrets.epoch();
        Ok(
            match self
                .store
                .app_key_by_secret_hash(&hex::encode(digest))
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

    /// A new secret key; the old one stops working at once on this node (on other nodes of a
    /// shared store, within `verified_secrets::VERIFIED_SECRET_TTL`).
    pub async fn rotate_secret_key(&self, app_key: &str) -> Result<AppKeyWithSecret> {
        let secret_key = new_secret(SECRET_KEY_LEN);
        let no_such = || Error::not_found(format!("appKey: no app key {app_key:?}"));
        if !self
            .store
            .set_secret_hash(app_key, hash_secret(&secret_key))
            .await?
        {
            return Err(no_such());
        }
        // After the commit, so no request can verify the old key again here. (A rotation whose
        // request is dropped before this line leaves the old key trusted for up to a second.)
        self.verified_secrets.forget(app_key);
        let record = self.store.get_app_key(app_key).await?.ok_or_else(no_such)?;
        tracing::info!(app_key, "secret key rotated");
        Ok(AppKeyWithSecret { record, secret_key })
    }
}
