//! Adaptive concurrency: how many requests a config may have in flight right now.
//!
//! A fixed limit is wrong both ways: 8 requests at once cap a receiver that answers in a
//! millisecond at a few thousand one-hook POSTs a second, and are already too many for one that
//! is drowning. So each config's limit moves with what its receiver shows (additive increase,
//! multiplicative decrease, as TCP does with its window):
//!
//! - It starts at [`INITIAL_LIMIT`] (never above the config's `maxRequestsInFlight`, which is the
//!   ceiling the customer sets, all of it on the config's home in a cluster). A node that becomes
//!   a config's home starts it afresh.
//! - Results are looked at in windows of about one limit's worth of answers. A window in which
//!   the limit was reached (more work was waiting), with no sign of pressure and a mean latency
//!   within [`LATENCY_TOLERANCE`] of the receiver's usual latency, raises the limit by one.
//! - Pressure lowers it at once, for the rest of its window: a 429, a 5xx, a timeout or a broken
//!   connection multiply it by [`BACKOFF`]; a window whose mean latency grew past the tolerance
//!   multiplies it by the tolerated latency over the window's (at most [`LATENCY_BACKOFF`], at
//!   least one half): the further latency ran off, the harder the limit comes down. It never
//!   drops below 1.
//! - Other answers (a 4xx, a refused address) say nothing about load and leave it alone; health
//!   (FAILING, DISABLED) deals with receivers that keep failing.
//!
//! The receiver's usual latency is a slow moving average of the windows' means that follows a
//! faster receiver at once, so a limit that grew because latency held does not drag the
//! reference up with it. Pure: the caller passes each answer's latency and class, and reads
//! [`AdaptiveLimit::current`].

use std::time::Duration;

/// Where every config starts (the fixed limit hookline used before it adapted).
pub const INITIAL_LIMIT: u32 = 8;
/// The factor applied on back-pressure (429, 5xx, timeouts, broken connections).
pub const BACKOFF: f64 = 0.75;
/// The largest factor applied when a window's mean latency grew past the tolerance (the smallest
/// is 0.5).
pub const LATENCY_BACKOFF: f64 = 0.9;
/// How much slower than usual a window may be and still count as "latency held": twice the
/// usual latency, plus a few milliseconds so that sub-millisecond noise on a fast receiver is
/// not mistaken for load.
pub const LATENCY_TOLERANCE: (f64, Duration) = (2.0, Duration::from_millis(5));
/// Weight of a new window in the usual latency when it is slower than the usual.
const BASELINE_WEIGHT: f64 = 0.05;

/// What an answer says about the receiver's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Answered normally (any answer that is not pressure).
    Fine,
    /// The receiver or the path to it is overloaded: 429, 5xx, a timeout, a broken connection.
    Pressure,
    /// Says nothing about load (a 4xx, a refused or invalid address): not counted.
    Neutral,
}

/// One config's adaptive limit on this node.
#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    limit: f64,
    /// The receiver's usual latency, in seconds (`None` until the first full window).
    baseline: Option<f64>,
    window: Window,
}

#[derive(Debug, Clone, Default)]
struct Window {
    answers: u32,
    latency_sum: f64,
    /// The limit was reached while this window ran: more work waited for a slot.
    saturated: bool,
    /// The limit was already lowered for pressure in this window.
    backed_off: bool,
}

impl Default for AdaptiveLimit {
    fn default() -> Self {
        AdaptiveLimit {
            limit: f64::from(INITIAL_LIMIT),
            baseline: None,
            window: Window::default(),
        }
    }
}

impl AdaptiveLimit {
    /// The limit now, within `1..=ceiling` (a ceiling of 0 means this node sends nothing).
    pub fn current(&self, ceiling: u32) -> u32 {
        if ceiling == 0 {
            return 0;
        }
        (self.limit.floor() as u32).clamp(1, ceiling)
    }

    /// More work was waiting when the limit was reached.
    pub fn saturated(&mut self) {
        self.window.saturated = true;
    }

    /// One answer came back after `latency`; `ceiling` is the most the limit may grow to.
    pub fn answered(&mut self, latency: Duration, load: Load, ceiling: u32) {
        let ceiling = f64::from(ceiling.max(1));
        // A lowered ceiling (a config change, another node joining) takes effect at once.
        self.limit = self.limit.min(ceiling);
        match load {
            Load::Neutral => return,
            Load::Pressure => {
                if !self.window.backed_off {
                    self.limit = (self.limit * BACKOFF).max(1.0);
                    self.window.backed_off = true;
                }
            }
            Load::Fine => {}
        }
        self.window.answers += 1;
        self.window.latency_sum += latency.as_secs_f64();
        if self.window.answers < (self.limit.floor() as u32).max(4) {
            return;
        }
        let window = std::mem::take(&mut self.window);
        let mean = window.latency_sum / f64::from(window.answers);
        let usual = *self.baseline.get_or_insert(mean);
        let (factor, slack) = LATENCY_TOLERANCE;
        let tolerated = usual * factor + slack.as_secs_f64();
        if window.backed_off {
            // Already lowered in this window.
        } else if mean > tolerated {
            let factor = (tolerated / mean).clamp(0.5, LATENCY_BACKOFF);
            self.limit = (self.limit * factor).max(1.0);
        } else if window.saturated {
            self.limit = (self.limit + 1.0).min(ceiling);
        }
        // The usual latency follows a faster receiver at once and a slower one slowly, and
        // learns nothing from windows under pressure.
        if !window.backed_off {
            self.baseline = Some(if mean < usual {
                mean
            } else {
                usual + (mean - usual) * BASELINE_WEIGHT
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `n` answers of `latency`, the limit reached before each.
    fn busy(limit: &mut AdaptiveLimit, n: u32, latency: Duration, ceiling: u32) {
        for _ in 0..n {
            limit.saturated();
            limit.answered(latency, Load::Fine, ceiling);
        }
    }

    #[test]
    fn starts_at_the_initial_limit_under_the_ceiling() {
        let limit = AdaptiveLimit::default();
        assert_eq!(limit.current(64), INITIAL_LIMIT);
        assert_eq!(limit.current(3), 3);
        assert_eq!(limit.current(0), 0, "a node whose share is 0 sends nothing");
    }

    #[test]
    fn grows_while_latency_holds_and_work_waits_up_to_the_ceiling() {
        let mut limit = AdaptiveLimit::default();
        busy(&mut limit, 200, MS, 64);
        let grown = limit.current(64);
        assert!(grown > INITIAL_LIMIT + 5, "grew only to {grown}");
        busy(&mut limit, 5000, MS, 64);
        assert_eq!(limit.current(64), 64, "stops at the ceiling");
    }

    #[test]
    fn does_not_grow_when_no_work_waited() {
        let mut limit = AdaptiveLimit::default();
        for _ in 0..1000 {
            limit.answered(MS, Load::Fine, 64);
        }
        assert_eq!(limit.current(64), INITIAL_LIMIT);
    }

    #[test]
    fn backs_off_on_pressure_once_per_window_and_never_below_one() {
        let mut limit = AdaptiveLimit::default();
        busy(&mut limit, 2000, MS, 64);
        assert_eq!(limit.current(64), 64);
        limit.answered(MS, Load::Pressure, 64);
        assert_eq!(limit.current(64), 48, "64 x 0.75");
        limit.answered(MS, Load::Pressure, 64);
        assert_eq!(limit.current(64), 48, "once per window");
        for _ in 0..10_000 {
            limit.answered(MS, Load::Pressure, 64);
        }
        assert_eq!(limit.current(64), 1);
    }

    #[test]
    fn backs_off_when_latency_grows_and_recovers_when_it_falls() {
        let mut limit = AdaptiveLimit::default();
        busy(&mut limit, 2000, MS, 64);
        assert_eq!(limit.current(64), 64);
        // The receiver slows to 50 ms (far past 2 x 1 ms + 5 ms): the limit comes down.
        busy(&mut limit, 300, 50 * MS, 64);
        let lowered = limit.current(64);
        assert!(lowered < 32, "still {lowered} with latency 50x the usual");
        // Back to normal: it climbs again.
        busy(&mut limit, 3000, MS, 64);
        assert_eq!(limit.current(64), 64);
    }

    #[test]
    fn small_noise_on_a_fast_receiver_is_not_load() {
        let mut limit = AdaptiveLimit::default();
        for i in 0..3000 {
            let latency = if i % 2 == 0 { MS / 4 } else { 3 * MS };
            limit.saturated();
            limit.answered(latency, Load::Fine, 64);
        }
        assert_eq!(limit.current(64), 64);
    }

    #[test]
    fn neutral_answers_change_nothing() {
        let mut limit = AdaptiveLimit::default();
        for _ in 0..1000 {
            limit.saturated();
            limit.answered(MS, Load::Neutral, 64);
        }
        assert_eq!(limit.current(64), INITIAL_LIMIT);
    }

    #[test]
    fn a_lower_ceiling_applies_at_once() {
        let mut limit = AdaptiveLimit::default();
        busy(&mut limit, 2000, MS, 64);
        limit.answered(MS, Load::Fine, 10);
        assert_eq!(limit.current(10), 10);
        busy(&mut limit, 100, MS, 10);
        assert_eq!(limit.current(10), 10);
    }
}
