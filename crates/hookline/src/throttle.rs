//! Throttling failed authentications (API credentials, dashboard sign-in), so guessing a secret
//! costs time, without slowing anyone whose credentials are right.
//!
//! Failures are counted per client address and per credential target (an app key, the admin
//! token) in fixed windows:
//!
//! - An address with too many failures in the window is refused (429 with `Retry-After`) before
//!   its credentials are even looked at, until the window ends.
//! - A target with too many failures in the window (a guess spread over many addresses) is
//!   refused, likewise, to every address that has failed in this window, while an address that
//!   has not failed (the target's own producers, whose credentials are right) goes on as usual:
//!   a guesser cannot lock the owner out.
//!
//! A limit of 0 turns that half off; with both at 0 nothing is counted.
//!
//! One throttle serves the API and the dashboard's sign-in (`serve` builds it from
//! `--auth-failures-per-address` and `--auth-failures-per-target`), so a guesser gains nothing by
//! alternating between them.
//!
//! Memory is bounded: at most [`MAX_KEYS`] addresses and targets are remembered; when full, the
//! expired entries go, and if none has expired new failures are not counted (the throttle
//! fails open rather than growing).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most addresses plus targets remembered at once.
pub const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    /// Failures one address may have in a window (0: no limit per address).
    pub per_address: u32,
    /// Failures one target may have in a window, from any addresses (0: no limit per target).
    pub per_target: u32,
    pub window: Duration,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        ThrottleLimits {
            per_address: 20,
            per_target: 100,
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    window_start: Instant,
}

/// What a failed authentication tried to open. The admin token is its own kind of target, so no
/// app key (a path segment, any string) can be counted as the admin token or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    AppKey(&'a str),
    AdminToken,
}

impl<'a> From<&'a str> for Target<'a> {
    fn from(app_key: &'a str) -> Self {
        Target::AppKey(app_key)
    }
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::AppKey(app_key) => write!(f, "app key {app_key:?}"),
            Target::AdminToken => f.write_str("the admin token"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Counted {
    Address(IpAddr),
    AppKey(String),
    AdminToken,
}

impl Counted {
    fn target(target: Target<'_>) -> Counted {
        match target {
            Target::AppKey(app_key) => Counted::AppKey(app_key.to_owned()),
            Target::AdminToken => Counted::AdminToken,
        }
    }
}

pub struct FailureThrottle {
    limits: ThrottleLimits,
    counts: Mutex<HashMap<Counted, Count>>,
}

impl FailureThrottle {
    pub fn new(limits: ThrottleLimits) -> Self {
        FailureThrottle {
            limits,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether no limit applies at all (both are 0): then nothing is counted.
    fn is_off(&self) -> bool {
        self.limits.per_address == 0 && self.limits.per_target == 0
    }

    /// `Err(wait)` when an attempt from `address` on `target` must be refused now, before its
    /// credentials are checked; `wait` is how long until it may try again.
    pub fn check<'a>(
        &self,
        address: IpAddr,
        target: impl Into<Target<'a>>,
        now: Instant,
    ) -> Result<(), Duration> {
        let Ok(counts) = self.counts.lock() else {
            return Ok(());
        };
        if counts.is_empty() {
            return Ok(());
        }
        let live = |key: &Counted| {
            counts
                .get(key)
                .filter(|c| now.duration_since(c.window_start) < self.limits.window)
                .copied()
        };
        let wait = |c: Count| {
            self.limits
                .window
                .saturating_sub(now.duration_since(c.window_start))
                .max(Duration::from_secs(1))
        };
        let from = live(&Counted::Address(address));
        if let Some(c) = from
            && self.limits.per_address > 0
            && c.failures >= self.limits.per_address
        {
            return Err(wait(c));
        }
        // The address first: one that has not failed (the valid path) is done here, without
        // building the target's key.
        if from.is_some_and(|c| c.failures > 0)
            && self.limits.per_target > 0
            && let Some(t) = live(&Counted::target(target.into()))
            && t.failures >= self.limits.per_target
        {
            return Err(wait(t));
        }
        Ok(())
    }

    /// Counts a failed authentication from `address` on `target`. True when this failure made
    /// the address or the target reach its limit (once per window: worth a log line).
    pub fn failed<'a>(&self, address: IpAddr, target: impl Into<Target<'a>>, now: Instant) -> bool {
        if self.is_off() {
            return false;
        }
        let Ok(mut counts) = self.counts.lock() else {
            return false;
        };
        let mut reached = false;
        if counts.len() + 2 > MAX_KEYS {
            let window = self.limits.window;
            counts.retain(|_, c| now.duration_since(c.window_start) < window);
        }
        let keys = [
            (Counted::Address(address), self.limits.per_address),
            (Counted::target(target.into()), self.limits.per_target),
        ];
        for (key, limit) in keys {
            if !counts.contains_key(&key) && counts.len() >= MAX_KEYS {
                continue;
            }
            let c = counts.entry(key).or_insert(Count {
                failures: 0,
                window_start: now,
            });
            if now.duration_since(c.window_start) >= self.limits.window {
                *c = Count {
                    failures: 0,
                    window_start: now,
                };
            }
            c.failures = c.failures.saturating_add(1);
            reached |= limit > 0 && c.failures == limit;
        }
        reached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn throttle() -> FailureThrottle {
        FailureThrottle::new(ThrottleLimits {
            per_address: 3,
            per_target: 5,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn an_address_that_keeps_failing_waits_for_the_window() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(t.check(ip(1), "app", now).is_ok());
            t.failed(ip(1), "app", now);
        }
        let wait = t.check(ip(1), "app", now).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        assert!(t.check(ip(1), "other-app", now).is_err(), "per address");
        assert!(t.check(ip(2), "app", now).is_ok(), "another address");
        let later = now + Duration::from_secs(61);
        assert!(t.check(ip(1), "app", later).is_ok(), "a new window");
    }

    #[test]
    fn a_target_under_a_spread_guess_refuses_failing_addresses_only() {
        let t = throttle();
        let now = Instant::now();
        for a in 1..=5 {
            t.failed(ip(a), "victim", now);
        }
        assert!(
            t.check(ip(3), "victim", now).is_err(),
            "an address that failed on the hot target"
        );
        assert!(
            t.check(ip(100), "victim", now).is_ok(),
            "the owner's producer, which never failed, goes on"
        );
        assert!(t.check(ip(3), "elsewhere", now).is_ok(), "other targets");
    }

    #[test]
    fn a_limit_of_zero_turns_its_half_off() {
        let now = Instant::now();
        let no_target_limit = FailureThrottle::new(ThrottleLimits {
            per_address: 3,
            per_target: 0,
            window: Duration::from_secs(60),
        });
        for a in 1..=50 {
            no_target_limit.failed(ip(a), "victim", now);
        }
        assert!(
            no_target_limit.check(ip(7), "victim", now).is_ok(),
            "no limit per target"
        );
        for _ in 0..3 {
            no_target_limit.failed(ip(7), "victim", now);
        }
        assert!(no_target_limit.check(ip(7), "victim", now).is_err());

        let no_address_limit = FailureThrottle::new(ThrottleLimits {
            per_address: 0,
            per_target: 5,
            window: Duration::from_secs(60),
        });
        for _ in 0..4 {
            no_address_limit.failed(ip(1), "a", now);
            no_address_limit.failed(ip(1), "b", now);
        }
        assert!(
            no_address_limit.check(ip(1), "c", now).is_ok(),
            "no limit per address: 8 failures spread over targets pass"
        );
        no_address_limit.failed(ip(1), "a", now);
        assert!(
            no_address_limit.check(ip(1), "a", now).is_err(),
            "per target"
        );

        let off = FailureThrottle::new(ThrottleLimits {
            per_address: 0,
            per_target: 0,
            window: Duration::from_secs(60),
        });
        for _ in 0..100 {
            off.failed(ip(1), "a", now);
        }
        assert!(off.check(ip(1), "a", now).is_ok());
        assert!(off.counts.lock().unwrap().is_empty(), "nothing counted");
    }

    #[test]
    fn the_admin_token_is_a_target_no_app_key_can_name() {
        let t = throttle();
        let now = Instant::now();
        for a in 1..=5 {
            t.failed(ip(a), Target::AdminToken, now);
        }
        assert!(t.check(ip(2), Target::AdminToken, now).is_err());
        assert!(
            t.check(ip(100), Target::AdminToken, now).is_ok(),
            "never failed"
        );
        for name in ["admin token", "the admin token", ""] {
            assert!(t.check(ip(2), name, now).is_ok(), "app key {name:?}");
        }
    }

    #[test]
    fn reaching_a_limit_is_reported_once() {
        let t = throttle();
        let now = Instant::now();
        let reached: Vec<bool> = (0..4).map(|_| t.failed(ip(1), "app", now)).collect();
        assert_eq!(
            reached,
            [false, false, true, false],
            "the 3rd failure reaches 3"
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let t = FailureThrottle::new(ThrottleLimits::default());
        let now = Instant::now();
        for i in 0..(MAX_KEYS as u32 + 10_000) {
            let address = IpAddr::from(i.to_be_bytes());
            t.failed(address, "app", now);
        }
        assert!(t.counts.lock().unwrap().len() <= MAX_KEYS);
    }
}
