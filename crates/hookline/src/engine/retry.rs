//! The retry policy: when a failed delivery is attempted again, and when it gives up.
//!
//! This is the one place to change it. A config's `retrySchedule` lists the delays before attempts
//! 2, 3, ...; after the last one the delivery is FAILED. Every delay gets ±20 % jitter so a
//! receiver that comes back is not hit by every delivery at the same instant. A `Retry-After`
//! header (on 429 or 503) stretches the next delay, capped at [`MAX_RETRY_AFTER`].

use std::time::Duration;

use rand::RngExt;

use crate::duration::{DurationError, Period};
use crate::model::Millis;

/// The default schedule: about 8 hours from the first attempt to giving up.
pub const DEFAULT_SCHEDULE: [Duration; 8] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(2 * 60 * 60),
    Duration::from_secs(4 * 60 * 60),
];

pub const MIN_DELAY: Duration = Duration::from_millis(100);
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 60 * 60);
pub const MAX_ENTRIES: usize = 30;
/// The most a receiver's `Retry-After` may push an attempt back.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);
/// Every retry delay is multiplied by a factor within 1 ± this.
pub const JITTER: f64 = 0.2;

/// What the engine does after a failed attempt number `attempt` (1-based).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NextStep {
    RetryAfter(Duration),
    GiveUp,
}

/// `jitter` gives the factor applied to the scheduled delay (see [`random_jitter`]); it is called
/// only when there is a retry, so a success or a give-up costs no random draw. A factor outside
/// ±[`JITTER`] is clamped into it.
pub fn after_failure(
    schedule: &[Duration],
    attempt: u32,
    retry_after: Option<Duration>,
    jitter: impl FnOnce() -> f64,
) -> NextStep {
    let Some(base) = schedule.get(attempt.saturating_sub(1) as usize) else {
        return NextStep::GiveUp;
    };
    let factor = jitter().clamp(1.0 - JITTER, 1.0 + JITTER);
    let mut delay = base.mul_f64(factor);
    if let Some(asked) = retry_after {
        delay = delay.max(asked.min(MAX_RETRY_AFTER));
    }
    NextStep::RetryAfter(delay)
}

/// A random jitter factor, uniform within 1 ± [`JITTER`].
pub fn random_jitter() -> f64 {
    rand::rng().random_range((1.0 - JITTER)..=(1.0 + JITTER))
}

/// Parses one entry of a `retrySchedule`: a duration from [`MIN_DELAY`] to [`MAX_DELAY`].
pub fn parse_delay(text: &str) -> Result<Duration, DurationError> {
    Period::parse_within(text, MIN_DELAY, MAX_DELAY).map(Period::get)
}

/// The shortest text that `parse_delay` reads back as `d`.
pub fn format_delay(d: Duration) -> String {
    crate::duration::format(d)
}

/// Reads a `Retry-After` value: delay seconds or an HTTP date (a date already past asks for no
/// delay). The cap ([`MAX_RETRY_AFTER`]) is applied by [`after_failure`].
pub fn parse_retry_after(value: &str, now: Millis) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = at.timestamp_millis().saturating_sub(now);
    Some(Duration::from_millis(delta.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn parses_and_formats_delays() {
        assert_eq!(parse_delay("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_delay("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_delay("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_delay("24h"), Ok(Duration::from_secs(86_400)));
        assert!(matches!(parse_delay("5x"), Err(DurationError::Syntax(_))));
        assert!(matches!(parse_delay("s"), Err(DurationError::Syntax(_))));
        assert!(matches!(parse_delay("5"), Err(DurationError::Syntax(_))));
        assert!(matches!(
            parse_delay("99ms"),
            Err(DurationError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_delay("25h"),
            Err(DurationError::OutOfRange { .. })
        ));
        for text in ["500ms", "1500ms", "5s", "2m", "1h", "90s"] {
            let d = parse_delay(text).unwrap();
            assert_eq!(parse_delay(&format_delay(d)), Ok(d));
        }
        assert_eq!(format_delay(Duration::from_secs(120)), "2m");
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_schedule_ends() {
        let schedule = [Duration::from_secs(10), Duration::from_secs(100)];
        // The factor is applied as given, and clamped to the window.
        for (factor, want) in [(0.8, 8_000), (0.9, 9_000), (1.0, 10_000), (1.2, 12_000)] {
            assert_eq!(
                after_failure(&schedule, 1, None, || factor),
                NextStep::RetryAfter(Duration::from_millis(want)),
                "factor {factor}"
            );
        }
        assert_eq!(
            after_failure(&schedule, 1, None, || 0.1),
            NextStep::RetryAfter(Duration::from_secs(8))
        );
        // The random factor spreads over the window: were it gone (always 1.0), every delay
        // would be 10 s and this fails. 1000 uniform draws all miss the lowest (or highest) 22 %
        // of the window with a probability of 0.78^1000, about 1e-108.
        let mut delays = Vec::new();
        for _ in 0..1000 {
            let NextStep::RetryAfter(d) = after_failure(&schedule, 1, None, random_jitter) else {
                panic!("attempt 1 of 3 must be retried");
            };
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(12),
                "{d:?}"
            );
            delays.push(d);
        }
        let (min, max) = (delays.iter().min(), delays.iter().max());
        assert!(
            min.is_some_and(|d| *d < Duration::from_millis(8_900))
                && max.is_some_and(|d| *d > Duration::from_millis(11_100)),
            "jitter does not spread the delay over 8-12 s: {min:?}..{max:?}"
        );
        let distinct: HashSet<Duration> = delays.iter().copied().collect();
        assert!(distinct.len() > 900, "{} distinct delays", distinct.len());
        assert!(
            matches!(after_failure(&schedule, 2, None, random_jitter), NextStep::RetryAfter(d) if d >= Duration::from_secs(80))
        );
        assert_eq!(
            after_failure(&schedule, 3, None, random_jitter),
            NextStep::GiveUp
        );
        assert_eq!(after_failure(&[], 1, None, random_jitter), NextStep::GiveUp);
    }

    #[test]
    fn retry_after_stretches_but_is_capped() {
        let schedule = [Duration::from_secs(1)];
        let NextStep::RetryAfter(d) =
            after_failure(&schedule, 1, Some(Duration::from_secs(120)), random_jitter)
        else {
            panic!("must retry");
        };
        assert_eq!(d, Duration::from_secs(120));
        let NextStep::RetryAfter(d) = after_failure(
            &schedule,
            1,
            Some(Duration::from_secs(1_000_000)),
            random_jitter,
        ) else {
            panic!("must retry");
        };
        assert_eq!(d, MAX_RETRY_AFTER);
    }

    #[test]
    fn reads_retry_after_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
