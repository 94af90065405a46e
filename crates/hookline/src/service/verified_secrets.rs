//! Secret keys verified recently, per app key, so that an ingest does not read the store (on the
//! blocking pool) to authenticate: the hash of a secret key the store confirmed is remembered for
//! [`VERIFIED_SECRET_TTL`].
//!
//! - **Why one second.** A rotation on this node forgets the app key at once ([`forget`]), but
//!   another node sharing a PostgreSQL database does not hear of it: it accepts the old secret
//!   key until its entry expires. One second bounds that window to less than anyone needs to
//!   hand the new key out, while a producer sending many requests a second still reads the store
//!   about once a second per app key.
//! - **Only successes are remembered** (no negative caching): a guesser's wrong secrets all go to
//!   the store and never grow this map, and an app key's entry is only ever a secret that the
//!   store said is its own.
//! - **Constant time.** Entries are found by app key (from the path, not secret); the presented
//!   secret's hash is compared with the remembered one with `subtle`.
//! - **Bounded**: at most [`MAX_APP_KEYS`] entries; when full, expired ones are dropped, and if
//!   that is not enough the new one is not remembered.
//!
//! [`forget`]: VerifiedSecrets::forget

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::credentials::SecretDigest;

/// How long a verified secret key is trusted without asking the store again.
pub const VERIFIED_SECRET_TTL: Duration = Duration::from_secs(1);
/// Most app keys remembered at once.
pub const MAX_APP_KEYS: usize = 10_000;

pub struct VerifiedSecrets {
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_app_key: HashMap<String, Verified>,
    /// Moves on at every rotation: a verification that read the store before a rotation
    /// committed must not be remembered after it (it may have read the old secret).
    epoch: u64,
}

struct Verified {
    digest: SecretDigest,
    /// When the store read that confirmed it started.
    at: Instant,
}

impl Default for VerifiedSecrets {
    fn default() -> Self {
        VerifiedSecrets::new(VERIFIED_SECRET_TTL)
    }
}

impl VerifiedSecrets {
    pub fn new(ttl: Duration) -> Self {
        VerifiedSecrets {
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether `digest` is the secret key of `app_key` as verified less than the TTL ago.
    pub fn check(&self, app_key: &str, digest: &SecretDigest, now: Instant) -> bool {
        let Ok(inner) = self.inner.lock() else {
            return false;
        };
        inner.by_app_key.get(app_key).is_some_and(|v| {
            now.saturating_duration_since(v.at) < self.ttl && bool::from(v.digest.ct_eq(digest))
        })
    }

    /// Taken before reading the store; hand it to [`VerifiedSecrets::remember`].
    pub fn epoch(&self) -> u64 {
        self.inner.lock().map_or(u64::MAX, |inner| inner.epoch)
    }

    /// Remembers that the store, read from `at` on, said `digest` is `app_key`'s secret key;
    /// ignored if a rotation happened since `epoch` was taken.
    pub fn remember(&self, app_key: &str, digest: SecretDigest, epoch: u64, at: Instant) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.epoch != epoch {
            return;
        }
        if inner.by_app_key.len() >= MAX_APP_KEYS && !inner.by_app_key.contains_key(app_key) {
            let ttl = self.ttl;
            inner
                .by_app_key
                .retain(|_, v| at.saturating_duration_since(v.at) < ttl);
            if inner.by_app_key.len() >= MAX_APP_KEYS {
                return;
            }
        }
        inner
            .by_app_key
            .insert(app_key.to_owned(), Verified { digest, at });
    }

    /// The app key's secret key changed: forget it, and anything being verified right now.
    pub fn forget(&self, app_key: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.by_app_key.remove(app_key);
            inner.epoch = inner.epoch.wrapping_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::credentials::secret_digest;

    #[test]
    fn a_verified_secret_is_trusted_until_the_ttl() {
        let cache = VerifiedSecrets::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let good = secret_digest("good");
        assert!(!cache.check("app", &good, t0));
        cache.remember("app", good, cache.epoch(), t0);
        assert!(cache.check("app", &good, t0 + Duration::from_millis(999)));
        assert!(!cache.check("app", &good, t0 + Duration::from_secs(1)));
        assert!(!cache.check("app", &secret_digest("bad"), t0));
        assert!(!cache.check("other", &good, t0));
    }

    #[test]
    fn a_rotation_forgets_at_once_and_drops_verifications_in_flight() {
        let cache = VerifiedSecrets::default();
        let t0 = Instant::now();
        let old = secret_digest("old");
        cache.remember("app", old, cache.epoch(), t0);
        // A request read the store (old secret still valid) just before the rotation committed.
        let epoch = cache.epoch();
        cache.forget("app");
        assert!(!cache.check("app", &old, t0));
        cache.remember("app", old, epoch, t0);
        assert!(
            !cache.check("app", &old, t0),
            "remembered across a rotation"
        );
        cache.remember("app", secret_digest("new"), cache.epoch(), t0);
        assert!(cache.check("app", &secret_digest("new"), t0));
    }

    #[test]
    fn the_map_is_bounded() {
        let cache = VerifiedSecrets::default();
        let t0 = Instant::now();
        let digest = secret_digest("s");
        for i in 0..MAX_APP_KEYS + 10 {
            cache.remember(&format!("app{i}"), digest, cache.epoch(), t0);
        }
        assert!(!cache.check(&format!("app{}", MAX_APP_KEYS + 5), &digest, t0));
        // Once the old entries expired, new ones take their place.
        let later = t0 + Duration::from_secs(2);
        cache.remember("fresh", digest, cache.epoch(), later);
        assert!(cache.check("fresh", &digest, later));
        let len = cache.inner.lock().map(|i| i.by_app_key.len()).unwrap_or(0);
        assert_eq!(len, 1);
    }
}
