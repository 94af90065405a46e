//! Secret keys verified recently, per app key, so that an ingest does not read the store (on the
//! blocking pool) to authenticate: the hash of a secret key the store confirmed is remembered for
//! [`VERIFIED_SECRET_TTL`].
//!
//! - **Why one second.** A rotation on this node forgets the app key at once ([`forget`]), but
//!   another node sharing a PostgreSQL database does not hear of it: it accepts the old secret
//!   key until its entry expires. One second bounds that window to less than anyone needs to
//!   hand the new key out, while a producer sending many requests a second reads the store
//!   about twice a second per app key (see the next point), in the background.
//! - **Refreshed ahead, off the request's path.** Past half its TTL an entry is still trusted,
//!   and the first request that sees it so starts one read of the store in the background
//!   ([`Trust::TrustedRefreshDue`]); that read's answer replaces the entry (or drops it, if the
//!   store no longer says so). So a producer sending steadily never waits for the store, which
//!   under another tenant's flood can mean waiting behind that tenant's claims for a pooled
//!   connection; the window above is unchanged, since an entry's age counts from the start of
//!   the read that confirmed it.
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
    /// A refresh of it is reading the store now.
    refreshing: bool,
}

/// What the cache says of a secret key presented for an app key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Verified less than the TTL ago.
    Trusted,
    /// Trusted, past half its TTL, and no refresh running: the caller starts one (see the
    /// module doc). Told to one caller at a time.
    TrustedRefreshDue,
    /// Not verified (or too long ago, or another secret): ask the store.
    Unknown,
}

impl Trust {
    pub fn trusted(self) -> bool {
        self != Trust::Unknown
    }
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

    /// Whether `digest` is the secret key of `app_key` as verified less than the TTL ago, and
    /// whether this caller should refresh it.
    pub fn check(&self, app_key: &str, digest: &SecretDigest, now: Instant) -> Trust {
        let Ok(mut inner) = self.inner.lock() else {
            return Trust::Unknown;
        };
        let Some(v) = inner.by_app_key.get_mut(app_key) else {
            return Trust::Unknown;
        };
        let age = now.saturating_duration_since(v.at);
        if age >= self.ttl || !bool::from(v.digest.ct_eq(digest)) {
            return Trust::Unknown;
        }
        if age >= self.ttl / 2 && !v.refreshing {
            v.refreshing = true;
            return Trust::TrustedRefreshDue;
        }
        Trust::Trusted
    }

    /// A refresh of `digest` could not read the store: the next caller past half the TTL tries
    /// again (unless the entry is another secret's by now).
    pub fn refresh_failed(&self, app_key: &str, digest: &SecretDigest) {
        if let Ok(mut inner) = self.inner.lock()
            && let Some(v) = inner.by_app_key.get_mut(app_key)
            && bool::from(v.digest.ct_eq(digest))
        {
            v.refreshing = false;
        }
    }

    /// The store no longer says `digest` is `app_key`'s secret key (rotated on another node):
    /// forget it, if it is still the one remembered.
    pub fn drop_secret(&self, app_key: &str, digest: &SecretDigest) {
        if let Ok(mut inner) = self.inner.lock()
            && inner
                .by_app_key
                .get(app_key)
                .is_some_and(|v| bool::from(v.digest.ct_eq(digest)))
        {
            inner.by_app_key.remove(app_key);
        }
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
        inner.by_app_key.insert(
            app_key.to_owned(),
            Verified {
                digest,
                at,
                refreshing: false,
            },
        );
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
        assert!(!cache.check("app", &good, t0).trusted());
        cache.remember("app", good, cache.epoch(), t0);
        assert!(
            cache
                .check("app", &good, t0 + Duration::from_millis(999))
                .trusted()
        );
        assert!(
            !cache
                .check("app", &good, t0 + Duration::from_secs(1))
                .trusted()
        );
        assert!(!cache.check("app", &secret_digest("bad"), t0).trusted());
        assert!(!cache.check("other", &good, t0).trusted());
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
        assert!(!cache.check("app", &old, t0).trusted());
        cache.remember("app", old, epoch, t0);
        assert!(
            !cache.check("app", &old, t0).trusted(),
            "remembered across a rotation"
        );
        cache.remember("app", secret_digest("new"), cache.epoch(), t0);
        assert!(cache.check("app", &secret_digest("new"), t0).trusted());
    }

    #[test]
    fn past_half_its_ttl_one_caller_refreshes_and_the_answer_replaces_the_entry() {
        let cache = VerifiedSecrets::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let good = secret_digest("good");
        cache.remember("app", good, cache.epoch(), t0);
        let half = t0 + Duration::from_millis(500);
        assert_eq!(
            cache.check("app", &good, t0 + Duration::from_millis(499)),
            Trust::Trusted
        );
        assert_eq!(cache.check("app", &good, half), Trust::TrustedRefreshDue);
        // One refresh at a time: the others are trusted without starting another.
        assert_eq!(cache.check("app", &good, half), Trust::Trusted);
        // A wrong secret is never trusted, and starts nothing.
        assert_eq!(
            cache.check("app", &secret_digest("bad"), half),
            Trust::Unknown
        );
        // The refresh failed: the next caller tries again.
        cache.refresh_failed("app", &good);
        assert_eq!(cache.check("app", &good, half), Trust::TrustedRefreshDue);
        // It read the store from `half` on: trusted a whole TTL from there.
        cache.remember("app", good, cache.epoch(), half);
        let later = t0 + Duration::from_millis(1_400);
        assert!(cache.check("app", &good, later).trusted());
        // Not refreshed: gone at the TTL, as before.
        assert_eq!(
            cache.check("app", &good, half + Duration::from_secs(1)),
            Trust::Unknown
        );
        // The store no longer says so (rotated elsewhere): dropped at once.
        cache.drop_secret("app", &good);
        assert_eq!(cache.check("app", &good, later), Trust::Unknown);
    }

    #[test]
    fn the_map_is_bounded() {
        let cache = VerifiedSecrets::default();
        let t0 = Instant::now();
        let digest = secret_digest("s");
        for i in 0..MAX_APP_KEYS + 10 {
            cache.remember(&format!("app{i}"), digest, cache.epoch(), t0);
        }
        assert!(
            !cache
                .check(&format!("app{}", MAX_APP_KEYS + 5), &digest, t0)
                .trusted()
        );
        // Once the old entries expired, new ones take their place.
        let later = t0 + Duration::from_secs(2);
        cache.remember("fresh", digest, cache.epoch(), later);
        assert!(cache.check("fresh", &digest, later).trusted());
        let len = cache.inner.lock().map(|i| i.by_app_key.len()).unwrap_or(0);
        assert_eq!(len, 1);
    }
}
