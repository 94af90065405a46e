//! Endpoint health: how attempt outcomes move a config between HEALTHY, FAILING and DISABLED.
//! Which outcome an attempt had (success, failure, 410 Gone) is the
//! [`verdict`](super::verdict)'s to say; it calls these.
//!
//! - `failing_after` consecutive failed attempts make a config FAILING. A FAILING config still
//!   retries its open deliveries on their schedules, but takes new batches off its queue only
//!   one at a time, at most once per probe interval, so a dead receiver costs little.
//! - Failing without a break for `disable_after` makes it DISABLED, with the reason recorded; it
//!   then receives nothing until a PUT with `enabled: true`.
//! - A receiver that answers `410 Gone` says the endpoint no longer exists: the config becomes
//!   DISABLED at once, with that reason. Its queued hooks and open deliveries wait (nothing is
//!   dropped) until an operator enables it again.
//! - Any success heals it back to HEALTHY.

use std::time::Duration;

use crate::model::{Health, HealthState, Millis, rfc3339};

#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    pub failing_after: u32,
    pub disable_after: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            failing_after: 5,
            disable_after: Duration::from_secs(3 * 24 * 60 * 60),
        }
    }
}

impl HealthPolicy {
    pub fn after_success(&self, h: &Health, now: Millis) -> Health {
        Health {
            state: if h.state == HealthState::Disabled {
                HealthState::Disabled
            } else {
                HealthState::Healthy
            },
            consecutive_failures: 0,
            last_success_at: Some(now),
            last_failure_at: h.last_failure_at,
            failing_since: None,
            disabled_reason: h.disabled_reason.clone(),
        }
    }

    /// The receiver answered 410 Gone.
    pub fn after_gone(&self, h: &Health, now: Millis) -> Health {
        let mut next = self.after_failure(h, now);
        if next.state != HealthState::Disabled {
            next.state = HealthState::Disabled;
            next.disabled_reason = Some(format!(
                "the receiver answered 410 Gone at {}",
                rfc3339(now)
            ));
        }
        next
    }

    pub fn after_failure(&self, h: &Health, now: Millis) -> Health {
        let consecutive_failures = h.consecutive_failures.saturating_add(1);
        let failing_since = h.failing_since.unwrap_or(now);
        let mut next = Health {
            state: h.state,
            consecutive_failures,
            last_success_at: h.last_success_at,
            last_failure_at: Some(now),
            failing_since: Some(failing_since),
            disabled_reason: h.disabled_reason.clone(),
        };
        if next.state == HealthState::Disabled {
            return next;
        }
        if consecutive_failures >= self.failing_after {
            next.state = HealthState::Failing;
        }
        let failing_for = now.saturating_sub(failing_since);
        if next.state == HealthState::Failing
            && failing_for >= self.disable_after.as_millis() as i64
        {
            next.state = HealthState::Disabled;
            next.disabled_reason = Some(format!(
                "every attempt failed since {} ({} consecutive failures)",
                rfc3339(failing_since),
                consecutive_failures
            ));
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_make_failing_then_disabled_and_success_heals() {
        let policy = HealthPolicy {
            failing_after: 3,
            disable_after: Duration::from_secs(60),
        };
        let mut h = Health::default();
        h = policy.after_failure(&h, 1_000);
        h = policy.after_failure(&h, 2_000);
        assert_eq!(h.state, HealthState::Healthy);
        assert_eq!(h.failing_since, Some(1_000));
        h = policy.after_failure(&h, 3_000);
        assert_eq!(h.state, HealthState::Failing);
        let healed = policy.after_success(&h, 4_000);
        assert_eq!(healed.state, HealthState::Healthy);
        assert_eq!(healed.consecutive_failures, 0);
        assert_eq!(healed.failing_since, None);

        h = policy.after_failure(&h, 61_000);
        assert_eq!(h.state, HealthState::Disabled);
        assert!(
            h.disabled_reason
                .as_deref()
                .unwrap_or("")
                .contains("4 consecutive")
        );
        // Disabled stays disabled until an operator enables the config again.
        assert_eq!(
            policy.after_success(&h, 70_000).state,
            HealthState::Disabled
        );
    }

    #[test]
    fn gone_disables_at_once_with_the_reason() {
        let policy = HealthPolicy::default();
        let h = policy.after_gone(&Health::default(), 1_000);
        assert_eq!(h.state, HealthState::Disabled);
        assert_eq!(h.consecutive_failures, 1);
        assert!(
            h.disabled_reason
                .as_deref()
                .unwrap_or("")
                .contains("410 Gone")
        );
    }
}
