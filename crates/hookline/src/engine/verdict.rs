//! The verdict on an attempt: what its result means for the delivery and for the config's health.
//!
//! The one place that decides what counts as success (a 2xx answer; a redirect, any other status
//! and any network error are failures), that a `410 Gone` disables the config at once, and when
//! a failed delivery is tried again: the schedule with its jitter (policy in [`retry`]),
//! stretched by a `Retry-After` on 429/503 (the client only captures the raw header, see
//! [`honours_retry_after`]). Health moves per [`HealthPolicy`].
//!
//! [`decide`] is pure: the clock and the random jitter come in as arguments, so the dispatcher
//! applies the verdict (state, timers, the record, logs, metrics) and tests pin exact times.

use std::time::Duration;

use crate::model::{AttemptResult, DeliveryStatus, Health, Millis};

use super::concurrency::Load;
use super::health::HealthPolicy;
use super::retry;

/// A receiver accepted the delivery: a 2xx answer, and nothing went wrong reading it.
pub fn succeeded(result: &AttemptResult) -> bool {
    matches!(result.status_code, Some(s) if (200..300).contains(&s)) && result.error_kind.is_none()
}

/// Whether an answer with this status may ask for a later retry with `Retry-After` (429 Too Many
/// Requests, 503 Service Unavailable): the client captures the header only then.
pub fn honours_retry_after(status: u16) -> bool {
    status == 429 || status == 503
}

/// What an answer says about the receiver's load, for the adaptive concurrency limit
/// ([`concurrency`](super::concurrency)): 429, any 5xx, a timeout and a broken or refused
/// connection are pressure; other answers are fine, except those that say nothing about load
/// (a 4xx, an address that is refused, invalid or does not resolve, a TLS failure).
pub fn load(result: &AttemptResult) -> Load {
    use crate::model::AttemptErrorKind as E;
    match (result.error_kind, result.status_code) {
        (Some(E::Timeout | E::Connect | E::Io), _) => Load::Pressure,
        (Some(E::Dns | E::Tls | E::BlockedAddress | E::InvalidUrl), _) => Load::Neutral,
        (None, Some(429)) => Load::Pressure,
        (None, Some(s)) if s >= 500 => Load::Pressure,
        (None, Some(s)) if (400..500).contains(&s) => Load::Neutral,
        (None, _) => Load::Fine,
    }
}

/// The delivery's next state after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStatus {
    Succeeded,
    /// Attempted again at `at` (once the config sends again, if the verdict paused it).
    Retrying {
        at: Millis,
    },
    /// The schedule is used up.
    Failed,
    /// The next attempt would start after the config's `deliveryDeadline`.
    Expired,
}

impl NextStatus {
    pub fn status(self) -> DeliveryStatus {
        match self {
            NextStatus::Succeeded => DeliveryStatus::Succeeded,
            NextStatus::Retrying { .. } => DeliveryStatus::Retrying,
            NextStatus::Failed => DeliveryStatus::Failed,
            NextStatus::Expired => DeliveryStatus::Expired,
        }
    }

    pub fn next_attempt_at(self) -> Option<Millis> {
        match self {
            NextStatus::Retrying { at } => Some(at),
            NextStatus::Succeeded | NextStatus::Failed | NextStatus::Expired => None,
        }
    }
}

/// What one attempt's result means.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub delivery: NextStatus,
    /// The config's health after the attempt.
    pub health: Health,
}

/// The last moment an attempt of a delivery may start: its oldest hook's acceptance plus the
/// config's `deliveryDeadline`; `None` without a deadline.
pub fn deadline(
    accepted_at: Option<Millis>,
    delivery_deadline: Option<Duration>,
) -> Option<Millis> {
    Some(accepted_at? + i64::try_from(delivery_deadline?.as_millis()).unwrap_or(i64::MAX / 2))
}

/// Whether an attempt may no longer start at `now`: the delivery ends EXPIRED unsent.
pub fn expired(deadline: Option<Millis>, now: Millis) -> bool {
    deadline.is_some_and(|last| now > last)
}

/// What bounds a delivery's retries: the config's `retrySchedule`, and the last moment an attempt
/// may start ([`deadline`]; `None`: no `deliveryDeadline`).
#[derive(Debug, Clone, Copy)]
pub struct RetryBounds<'a> {
    pub schedule: &'a [Duration],
    pub deadline: Option<Millis>,
}

/// Judges attempt number `attempt` (1-based) of a delivery to a config whose health is `health`,
/// at `now`, within `bounds`: a retry that would start after the deadline ends the delivery
/// EXPIRED instead.
///
/// `jitter` gives the retry delay's jitter factor (production: [`retry::random_jitter`]); it is
/// called only when a retry is scheduled.
pub fn decide(
    result: &AttemptResult,
    health: &Health,
    bounds: RetryBounds<'_>,
    attempt: u32,
    policy: &HealthPolicy,
    now: Millis,
    jitter: impl FnOnce() -> f64,
) -> Verdict {
    if succeeded(result) {
        return Verdict {
            delivery: NextStatus::Succeeded,
            health: policy.after_success(health, now),
        };
    }
    // 410: the endpoint is gone for good. The delivery is scheduled like any failure and waits,
    // with the config's queue, until an operator enables the config again.
    let health = if result.status_code == Some(410) {
        policy.after_gone(health, now)
    } else {
        policy.after_failure(health, now)
    };
    let asked = result
        .retry_after
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| retry::parse_retry_after(value, now));
    let delivery = match retry::after_failure(bounds.schedule, attempt, asked, jitter) {
        retry::NextStep::RetryAfter(delay) => {
            let at = now + delay.as_millis() as i64;
            if expired(bounds.deadline, at) {
                NextStatus::Expired
            } else {
                NextStatus::Retrying { at }
            }
        }
        retry::NextStep::GiveUp => NextStatus::Failed,
    };
    Verdict { delivery, health }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;
    use crate::model::{AttemptErrorKind, HealthState};

    /// 2026-01-01T00:00:00Z
    const NOW: Millis = 1_767_225_600_000;
    const SCHEDULE: [Duration; 2] = [Duration::from_secs(10), Duration::from_secs(100)];

    fn answered(status: u16) -> AttemptResult {
        AttemptResult {
            started_at: NOW - 50,
            duration_ms: 50,
            status_code: Some(status),
            error_kind: None,
            error_message: None,
            response_body: Some(String::new()),
            retry_after: None,
            request_headers: Vec::new(),
        }
    }

    fn asking_to_wait(status: u16, retry_after: &'static str) -> AttemptResult {
        AttemptResult {
            retry_after: Some(HeaderValue::from_static(retry_after)),
            ..answered(status)
        }
    }

    fn decide_at(result: &AttemptResult, health: &Health, attempt: u32, jitter: f64) -> Verdict {
        decide(
            result,
            health,
            RetryBounds {
                schedule: &SCHEDULE,
                deadline: None,
            },
            attempt,
            &HealthPolicy::default(),
            NOW,
            || jitter,
        )
    }

    fn failing() -> Health {
        let policy = HealthPolicy::default();
        let mut health = Health::default();
        for i in 0..policy.failing_after {
            health = policy.after_failure(&health, NOW - 60_000 + i64::from(i));
        }
        assert_eq!(health.state, HealthState::Failing);
        health
    }

    #[test]
    fn success_heals_and_finishes_the_delivery() {
        for status in [200, 204, 299] {
            let verdict = decide_at(&answered(status), &failing(), 1, 1.0);
            assert_eq!(verdict.delivery, NextStatus::Succeeded);
            assert_eq!(verdict.delivery.status(), DeliveryStatus::Succeeded);
            assert_eq!(verdict.delivery.next_attempt_at(), None);
            assert_eq!(verdict.health.state, HealthState::Healthy);
            assert_eq!(verdict.health.consecutive_failures, 0);
            assert_eq!(verdict.health.last_success_at, Some(NOW));
        }
    }

    #[test]
    fn a_5xx_is_retried_on_the_schedule_with_the_jitter() {
        let healthy = Health::default();
        let cases = [
            (1, 0.8, 8_000),
            (1, 1.0, 10_000),
            (1, 1.2, 12_000),
            (2, 0.8, 80_000),
            (2, 1.2, 120_000),
        ];
        for (attempt, jitter, delay) in cases {
            let verdict = decide_at(&answered(500), &healthy, attempt, jitter);
            assert_eq!(
                verdict.delivery,
                NextStatus::Retrying { at: NOW + delay },
                "attempt {attempt}, jitter {jitter}"
            );
            assert_eq!(verdict.delivery.status(), DeliveryStatus::Retrying);
            assert_eq!(verdict.health.consecutive_failures, 1);
            assert_eq!(verdict.health.last_failure_at, Some(NOW));
            assert_eq!(verdict.health.state, HealthState::Healthy);
        }
        // The factor never leaves the policy's window, whatever is injected.
        let verdict = decide_at(&answered(503), &healthy, 1, 3.0);
        assert_eq!(verdict.delivery, NextStatus::Retrying { at: NOW + 12_000 });
    }

    #[test]
    fn gone_disables_the_config_at_once() {
        let verdict = decide_at(&answered(410), &Health::default(), 1, 1.0);
        assert_eq!(verdict.health.state, HealthState::Disabled);
        assert!(
            verdict
                .health
                .disabled_reason
                .as_deref()
                .is_some_and(|reason| reason.contains("410 Gone"))
        );
        // The delivery keeps its schedule: it waits for the config to be enabled again.
        assert_eq!(verdict.delivery, NextStatus::Retrying { at: NOW + 10_000 });
        // On the last attempt it gives up like any failure.
        let verdict = decide_at(&answered(410), &Health::default(), 3, 1.0);
        assert_eq!(verdict.delivery, NextStatus::Failed);
        assert_eq!(verdict.health.state, HealthState::Disabled);
    }

    #[test]
    fn retry_after_on_429_or_503_stretches_the_delay_up_to_the_cap() {
        let healthy = Health::default();
        let verdict = decide_at(&asking_to_wait(429, "120"), &healthy, 1, 1.0);
        assert_eq!(verdict.delivery, NextStatus::Retrying { at: NOW + 120_000 });
        let verdict = decide_at(&asking_to_wait(503, " 30 "), &healthy, 1, 1.2);
        assert_eq!(verdict.delivery, NextStatus::Retrying { at: NOW + 30_000 });
        // Shorter than the schedule's delay: the schedule wins.
        let verdict = decide_at(&asking_to_wait(429, "2"), &healthy, 1, 0.8);
        assert_eq!(verdict.delivery, NextStatus::Retrying { at: NOW + 8_000 });
        let verdict = decide_at(&asking_to_wait(503, "1000000"), &healthy, 1, 1.0);
        let cap = retry::MAX_RETRY_AFTER.as_millis() as i64;
        assert_eq!(verdict.delivery, NextStatus::Retrying { at: NOW + cap });
        // A value that is neither form is ignored.
        let verdict = decide_at(&asking_to_wait(429, "soon"), &healthy, 1, 1.0);
        assert_eq!(verdict.delivery, NextStatus::Retrying { at: NOW + 10_000 });
        assert!(honours_retry_after(429) && honours_retry_after(503));
        assert!(!honours_retry_after(500) && !honours_retry_after(200));
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let verdict = decide_at(
            &asking_to_wait(503, "Thu, 01 Jan 2026 00:01:30 GMT"),
            &Health::default(),
            1,
            1.0,
        );
        assert_eq!(verdict.delivery, NextStatus::Retrying { at: NOW + 90_000 });
        // A date already past asks for nothing.
        let verdict = decide_at(
            &asking_to_wait(503, "Wed, 31 Dec 2025 23:00:00 GMT"),
            &Health::default(),
            1,
            1.0,
        );
        assert_eq!(verdict.delivery, NextStatus::Retrying { at: NOW + 10_000 });
    }

    #[test]
    fn the_last_attempt_gives_up() {
        let verdict = decide_at(&answered(500), &Health::default(), 3, 1.0);
        assert_eq!(verdict.delivery, NextStatus::Failed);
        assert_eq!(verdict.delivery.status(), DeliveryStatus::Failed);
        assert_eq!(verdict.delivery.next_attempt_at(), None);
        assert_eq!(verdict.health.consecutive_failures, 1);
        // Even when the receiver asks to be tried later.
        let verdict = decide_at(&asking_to_wait(429, "5"), &Health::default(), 3, 1.0);
        assert_eq!(verdict.delivery, NextStatus::Failed);
        // An empty schedule gives one attempt.
        let verdict = decide(
            &answered(500),
            &Health::default(),
            RetryBounds {
                schedule: &[],
                deadline: None,
            },
            1,
            &HealthPolicy::default(),
            NOW,
            || 1.0,
        );
        assert_eq!(verdict.delivery, NextStatus::Failed);
    }

    #[test]
    fn a_retry_that_would_start_after_the_deadline_expires_the_delivery() {
        let accepted = NOW - 5_000;
        let last = deadline(Some(accepted), Some(Duration::from_secs(15)));
        assert_eq!(last, Some(NOW + 10_000));
        assert_eq!(deadline(None, Some(Duration::from_secs(15))), None);
        assert_eq!(deadline(Some(accepted), None), None);
        let judge = |jitter: f64, asked: Option<&'static str>| {
            let result = match asked {
                Some(after) => asking_to_wait(503, after),
                None => answered(500),
            };
            decide(
                &result,
                &Health::default(),
                RetryBounds {
                    schedule: &SCHEDULE,
                    deadline: last,
                },
                1,
                &HealthPolicy::default(),
                NOW,
                || jitter,
            )
            .delivery
        };
        // 10 s later (8 to 12 with the jitter): on the deadline is still in time, past it is not.
        assert_eq!(judge(1.0, None), NextStatus::Retrying { at: NOW + 10_000 });
        assert_eq!(judge(0.8, None), NextStatus::Retrying { at: NOW + 8_000 });
        assert_eq!(judge(1.001, None), NextStatus::Expired);
        assert_eq!(judge(1.2, None), NextStatus::Expired);
        assert_eq!(NextStatus::Expired.status(), DeliveryStatus::Expired);
        assert_eq!(NextStatus::Expired.next_attempt_at(), None);
        // A receiver's Retry-After beyond the deadline too.
        assert_eq!(judge(0.8, Some("60")), NextStatus::Expired);
        // Success and an exhausted schedule say what they always say.
        let success = decide(
            &answered(200),
            &Health::default(),
            RetryBounds {
                schedule: &SCHEDULE,
                deadline: Some(NOW - 1),
            },
            1,
            &HealthPolicy::default(),
            NOW,
            || 1.0,
        );
        assert_eq!(success.delivery, NextStatus::Succeeded);
        assert!(expired(Some(NOW - 1), NOW));
        assert!(!expired(Some(NOW), NOW));
        assert!(!expired(None, NOW));
    }

    #[test]
    fn a_redirect_or_any_other_non_2xx_answer_is_a_failure() {
        for status in [100, 199, 301, 302, 304, 400, 404, 429, 500] {
            let result = answered(status);
            assert!(!succeeded(&result), "{status}");
            let verdict = decide_at(&result, &Health::default(), 1, 1.0);
            assert_eq!(verdict.delivery, NextStatus::Retrying { at: NOW + 10_000 });
            assert_eq!(verdict.health.consecutive_failures, 1);
            assert_eq!(verdict.health.state, HealthState::Healthy);
        }
    }

    #[test]
    fn a_network_error_is_a_failure() {
        let result = AttemptResult {
            started_at: NOW - 3_000,
            duration_ms: 3_000,
            status_code: None,
            error_kind: Some(AttemptErrorKind::Connect),
            error_message: Some("connection refused".to_owned()),
            response_body: None,
            retry_after: None,
            request_headers: Vec::new(),
        };
        assert!(!succeeded(&result));
        let verdict = decide_at(&result, &Health::default(), 1, 1.2);
        assert_eq!(verdict.delivery, NextStatus::Retrying { at: NOW + 12_000 });
        assert_eq!(verdict.health.consecutive_failures, 1);
        assert_eq!(verdict.health.last_failure_at, Some(NOW));
        // The failure that reaches the threshold makes the config FAILING.
        let policy = HealthPolicy::default();
        let mut health = Health::default();
        for _ in 1..policy.failing_after {
            health = policy.after_failure(&health, NOW - 1_000);
        }
        let verdict = decide_at(&result, &health, 1, 1.0);
        assert_eq!(verdict.health.state, HealthState::Failing);
    }

    #[test]
    fn load_tells_pressure_from_answers_that_say_nothing_about_load() {
        use crate::model::AttemptErrorKind as E;
        let answer = |status: Option<u16>, error: Option<E>| AttemptResult {
            status_code: status,
            error_kind: error,
            ..answered(200)
        };
        for (status, error, want) in [
            (Some(200), None, Load::Fine),
            (Some(204), None, Load::Fine),
            (Some(302), None, Load::Fine),
            (Some(429), None, Load::Pressure),
            (Some(500), None, Load::Pressure),
            (Some(503), None, Load::Pressure),
            (Some(400), None, Load::Neutral),
            (Some(410), None, Load::Neutral),
            (None, Some(E::Timeout), Load::Pressure),
            (None, Some(E::Connect), Load::Pressure),
            (None, Some(E::Io), Load::Pressure),
            (None, Some(E::Dns), Load::Neutral),
            (None, Some(E::Tls), Load::Neutral),
            (None, Some(E::BlockedAddress), Load::Neutral),
        ] {
            assert_eq!(load(&answer(status, error)), want, "{status:?} {error:?}");
        }
    }
}
