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
    /// Failures one address may have in a window.
    pub per_address: u32,
    /// Failures one target may have in a window, from any addresses.
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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Target(String),
}

pub struct FailureThrottle {
    limits: ThrottleLimits,
    counts: Mutex<HashMap<Key, Count>>,
}

impl FailureThrottle {
    pub fn new(limits: ThrottleLimits) -> Self {
        FailureThrottle {
            limits,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when an attempt from `address` on `target` must be refused now, before its
    /// credentials are checked; `wait` is how long until it may try again.
    pub fn check(&self, address: IpAddr, target: &str, now: Instant) -> Result<(), Duration> {
        let Ok(counts) = self.counts.lock() else {
            return Ok(());
        };
        if counts.is_empty() {
            return Ok(());
        }
        let live = |key: &Key| {
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
        let from = live(&Key::Address(address));
        if let Some(c) = from
            && c.failures >= self.limits.per_address
        {
            return Err(wait(c));
        }
        if let Some(t) = live(&Key::Target(target.to_owned()))
            && t.failures >= self.limits.per_target
            && from.is_some_and(|c| c.failures > 0)
        {
            return Err(wait(t));
        }
        Ok(())
    }

    /// Counts a failed authentication from `address` on `target`.
    pub fn failed(&self, address: IpAddr, target: &str, now: Instant) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        if counts.len() + 2 > MAX_KEYS {
            let window = self.limits.window;
            counts.retain(|_, c| now.duration_since(c.window_start) < window);
        }
        for key in [Key::Address(address), Key::Target(target.to_owned())] {
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
        }
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
