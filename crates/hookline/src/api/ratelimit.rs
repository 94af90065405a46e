//! The per-app-key ingest rate limit: a token bucket of queue rows per app key.
//!
//! Each app key has a bucket holding up to `burst` tokens that refills at `rate` tokens per
//! second. What an ingest costs is the work it makes: one token per queue row it wrote (a hook
//! for each enabled config subscribed to its event), and at least one per hook. An ingest request
//! of n hooks takes n tokens before it is stored, or is refused with `429` and a `Retry-After` of
//! the seconds until n tokens are there; a refused request takes nothing and stores nothing. The
//! rest of its cost (its fan-out beyond one row per hook) is known only from the store's answer,
//! so it is charged after the commit ([`IngestRateLimiter::charge`]) and may leave the bucket in
//! debt: the request that crosses the limit is accepted, and the next ones wait until the debt is
//! paid. Charging up front instead would need the fan-out before the write, and would make a
//! request whose rows exceed the burst impossible to ever accept.
//!
//! The buckets live in a map split into shards, each behind its own short-held mutex (a lookup and
//! a few float operations, never held across an await), so requests of different app keys rarely
//! meet on a lock and there is no global lock on the ingest path. The map holds one entry per app
//! key that has ingested since the start: only authenticated app keys reach it, so its size is
//! bounded by the number of app keys.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shards of the bucket map (a power of two).
const SHARDS: usize = 64;

/// The limit: `rate` tokens (queue rows) per second per app key, bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub hooks_per_second: f64,
    pub burst: f64,
}

/// Why a rate limit cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RateLimitError {
    #[error("--ingest-rate-limit must be a positive number of queue rows per second, got {0}")]
    BadRate(f64),
    #[error(
        "--ingest-burst ({burst}) must be at least --max-hooks-per-request ({max_hooks}), or the \
         largest requests could never be accepted"
    )]
    BurstBelowRequestSize { burst: f64, max_hooks: usize },
}

impl RateLimit {
    /// The limit for `hooks_per_second` (0: no limit) and `burst` (default: one second's worth,
    /// and at least `max_hooks_per_request`, so every valid request can eventually pass).
    pub fn from_flags(
        hooks_per_second: f64,
        burst: Option<u32>,
        max_hooks_per_request: usize,
    ) -> Result<Option<RateLimit>, RateLimitError> {
        if hooks_per_second == 0.0 {
            return Ok(None);
        }
        if !hooks_per_second.is_finite() || hooks_per_second < 0.0 {
            return Err(RateLimitError::BadRate(hooks_per_second));
        }
        let max_hooks = max_hooks_per_request as f64;
        let burst = match burst {
            Some(b) => f64::from(b),
            None => hooks_per_second.max(max_hooks).ceil(),
        };
        if burst < max_hooks {
            return Err(RateLimitError::BurstBelowRequestSize {
                burst,
                max_hooks: max_hooks_per_request,
            });
        }
        Ok(Some(RateLimit {
            hooks_per_second,
            burst,
        }))
    }
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of every app key.
pub struct IngestRateLimiter {
    limit: RateLimit,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<String, Bucket>>]>,
}

impl IngestRateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        IngestRateLimiter {
            limit,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Runs `f` on `app_key`'s bucket, refilled up to `now`. A new app key starts full.
    fn with_bucket<T>(&self, app_key: &str, now: Instant, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let shard = self.hasher.hash_one(app_key) as usize & (SHARDS - 1);
        // A panic while holding the lock cannot leave a bucket half-updated (plain floats), so a
        // poisoned lock is used as it is rather than failing every later request.
        let mut map = self.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let full = || Bucket {
            tokens: self.limit.burst,
            updated: now,
        };
        // Two lookups on a new app key only, so the hot path does not allocate the key.
        if !map.contains_key(app_key) {
            map.insert(app_key.to_owned(), full());
        }
        let mut unreachable_fallback = full();
        let bucket = map.get_mut(app_key).unwrap_or(&mut unreachable_fallback);
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens =
            (bucket.tokens + elapsed * self.limit.hooks_per_second).min(self.limit.burst);
        bucket.updated = bucket.updated.max(now);
        f(bucket)
    }

    /// How long until `needed` tokens are in a bucket holding `tokens`.
    fn wait_for(&self, tokens: f64, needed: f64) -> Duration {
        let missing = (needed - tokens).max(0.0);
        Duration::from_secs_f64(missing / self.limit.hooks_per_second)
    }

    /// A cheap check before the body is read: refused (with the wait) when not even one hook may
    /// be ingested now. Takes nothing.
    pub fn check(&self, app_key: &str, now: Instant) -> Result<(), Duration> {
        self.with_bucket(app_key, now, |b| {
            if b.tokens >= 1.0 {
                Ok(())
            } else {
                Err(self.wait_for(b.tokens, 1.0))
            }
        })
    }

    /// Takes `hooks` tokens, or takes nothing and answers how long until there are that many.
    pub fn take(&self, app_key: &str, hooks: usize, now: Instant) -> Result<(), Duration> {
        let needed = hooks as f64;
        self.with_bucket(app_key, now, |b| {
            if b.tokens >= needed {
                b.tokens -= needed;
                Ok(())
            } else {
                Err(self.wait_for(b.tokens, needed))
            }
        })
    }
}

impl IngestRateLimiter {
    /// Takes `tokens` whatever the bucket holds, down below zero if need be: the cost of work
    /// already committed (an ingest's fan-out), which cannot be refused any more. Until the
    /// bucket is back above what a request needs, that app key's requests are refused.
    pub fn charge(&self, app_key: &str, tokens: usize, now: Instant) {
        if tokens == 0 {
            return;
        }
        self.with_bucket(app_key, now, |b| b.tokens -= tokens as f64);
    }

    /// Gives back what `take` took for a request that then stored nothing (the store failed), so
    /// a producer retrying a 503 is not refused for hooks that were never accepted.
    pub fn give_back(&self, app_key: &str, hooks: usize, now: Instant) {
        self.with_bucket(app_key, now, |b| {
            b.tokens = (b.tokens + hooks as f64).min(self.limit.burst);
        });
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: f64) -> IngestRateLimiter {
        IngestRateLimiter::new(RateLimit {
            hooks_per_second: rate,
            burst,
        })
    }

    #[test]
    fn a_bucket_starts_full_and_refills_at_the_rate() {
        let l = limiter(10.0, 100.0);
        let t0 = Instant::now();
        assert_eq!(l.take("a", 100, t0), Ok(()));
        // Empty: 5 hooks need half a second.
        assert_eq!(l.take("a", 5, t0), Err(Duration::from_millis(500)));
        assert_eq!(l.check("a", t0), Err(Duration::from_millis(100)));
        // A refusal took nothing: after 0.5 s, exactly 5 are there.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(l.take("a", 5, t1), Ok(()));
        assert!(l.take("a", 1, t1).is_err());
        // Refills stop at the burst.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!(l.take("a", 100, t2), Ok(()));
        assert!(l.take("a", 1, t2).is_err());
    }

    #[test]
    fn what_is_given_back_can_be_taken_again() {
        let l = limiter(0.001, 10.0);
        let t0 = Instant::now();
        assert_eq!(l.take("a", 8, t0), Ok(()));
        assert!(l.take("a", 8, t0).is_err());
        l.give_back("a", 8, t0);
        assert_eq!(l.take("a", 10, t0), Ok(()));
        // Never above the burst.
        l.give_back("a", 100, t0);
        assert!(l.take("a", 11, t0).is_err());
    }

    #[test]
    fn a_charge_leaves_a_debt_that_refills_before_the_next_request() {
        let l = limiter(10.0, 100.0);
        let t0 = Instant::now();
        assert_eq!(l.take("a", 10, t0), Ok(()));
        // The fan-out of that request: 10 hooks to 10 configs, 90 rows more than its hooks.
        l.charge("a", 90, t0);
        assert_eq!(l.check("a", t0), Err(Duration::from_millis(100)));
        l.charge("a", 50, t0);
        // 50 tokens in debt: 5 s until one is there, 5.1 s until one hook can pass.
        assert_eq!(l.check("a", t0), Err(Duration::from_millis(5100)));
        assert!(l.take("a", 1, t0 + Duration::from_secs(5)).is_err());
        assert_eq!(l.take("a", 1, t0 + Duration::from_millis(5100)), Ok(()));
        // Another app key does not pay for it.
        assert_eq!(l.take("b", 100, t0), Ok(()));
    }

    #[test]
    fn app_keys_have_their_own_buckets() {
        let l = limiter(1.0, 10.0);
        let t0 = Instant::now();
        assert_eq!(l.take("a", 10, t0), Ok(()));
        assert!(l.take("a", 1, t0).is_err());
        assert_eq!(l.take("b", 10, t0), Ok(()));
        for i in 0..1000 {
            assert_eq!(l.check(&format!("k{i}"), t0), Ok(()));
        }
    }

    #[test]
    fn a_clock_going_backwards_does_not_add_tokens() {
        let l = limiter(1.0, 10.0);
        let t0 = Instant::now() + Duration::from_secs(10);
        assert_eq!(l.take("a", 10, t0), Ok(()));
        assert!(l.take("a", 1, t0 - Duration::from_secs(5)).is_err());
        assert!(l.take("a", 1, t0).is_err());
        assert_eq!(l.take("a", 1, t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn flags() {
        assert_eq!(RateLimit::from_flags(0.0, None, 1000), Ok(None));
        assert_eq!(
            RateLimit::from_flags(50.0, None, 1000),
            Ok(Some(RateLimit {
                hooks_per_second: 50.0,
                burst: 1000.0
            }))
        );
        assert_eq!(
            RateLimit::from_flags(5000.0, None, 1000).map(|l| l.map(|l| l.burst)),
            Ok(Some(5000.0))
        );
        assert!(matches!(
            RateLimit::from_flags(50.0, Some(10), 1000),
            Err(RateLimitError::BurstBelowRequestSize { .. })
        ));
        assert!(RateLimit::from_flags(-1.0, None, 10).is_err());
        assert!(RateLimit::from_flags(f64::NAN, None, 10).is_err());
    }
}
