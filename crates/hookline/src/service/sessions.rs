//! Dashboard sessions: started on sign-in, found by the cookie's id, ended on sign-out or when
//! the secret key they were started with is no longer the app key's. They live in the store
//! (hashed ids, expiry, CSRF token), so with several nodes any node serves any session and a
//! load balancer needs no sticky sessions; a restart signs nobody out.

use super::credentials::{hash_secret, new_secret};
use super::{Result, Service};
use crate::model::{SessionOrigin, SessionRecord, now_millis};

/// Length of a session id (the cookie's value) and of its CSRF token.
pub(super) const ID_LEN: usize = 32;

/// A session just started: the id goes into the cookie and is not kept anywhere.
pub struct NewSession {
    pub id: String,
}

impl Service {
    /// Starts a session for `app_key`, signed in with the secret key hashing to `secret_hash`,
    /// lasting `ttl_ms`. At most `keep_per_app_key` sessions of one app key live at once (the
    /// oldest go first).
    pub async fn start_session(
        &self,
        app_key: String,
        secret_hash: String,
        ttl_ms: i64,
        keep_per_app_key: usize,
    ) -> Result<NewSession> {
        let id = new_secret(ID_LEN);
        let now = now_millis();
        let record = SessionRecord {
            id_hash: hash_secret(&id),
            app_key,
            secret_hash,
            csrf: new_secret(ID_LEN),
            created_at: now,
            expires_at: now + ttl_ms,
            origin: SessionOrigin::SignIn,
        };
        self.store.create_session(record, keep_per_app_key).await?;
        Ok(NewSession { id })
    }

    /// The live session of the cookie's `id`, if any; `None` for an unknown or expired id.
    pub async fn find_session(&self, id: &str) -> Result<Option<SessionRecord>> {
        Ok(self
            .store
            .find_session(&hash_secret(id), now_millis())
            .await?)
    }

    /// Ends the session whose id hashes to `id_hash`.
    pub async fn end_session(&self, id_hash: &str) -> Result<()> {
        Ok(self.store.delete_session(id_hash).await?)
    }
}
