//! Per-config scheduling state, owned by the dispatcher, and its small rules: when a config is
//! paused, how fast a FAILING one probes, what a config change or a new health does to it, and
//! when its health is worth writing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::model::{Health, HealthState, Millis, WebhookConfig};

use super::concurrency::AdaptiveLimit;
use super::retry;

/// While a config has requests in flight, its claims start at least this far apart.
///
/// Why: a claim is a transaction of its own (on PostgreSQL a round trip, a statement and a
/// commit), and under load a config was claimed once per ingest commit that reached it, a few
/// hooks each. With one hook per request and per POST that was one claim for every 23 hooks on
/// one node, and more with two (each node's ingest commits are smaller, and each wakes the
/// home). Spaced, a claim takes what 5 ms brought: about half the claims (1,001 → 519 per
/// 20,000 hooks with two nodes), +3 % hooks a second on one PostgreSQL node and +11 % on two;
/// SQLite level (BENCHMARKS.md, "Claims of a busy config spaced"). A config with nothing in
/// flight claims at once, so a quiet receiver's hook does not wait: the spacing only delays
/// hooks that come while the receiver is already answering others, and by at most this.
pub(super) const BUSY_CLAIM_SPACING: Duration = Duration::from_millis(5);

pub(super) struct ConfigState {
    pub(super) config: Arc<WebhookConfig>,
    /// `config`, published to the attempt tasks under way (see `AttemptTask::current`).
    pub(super) published: watch::Sender<Arc<WebhookConfig>>,
    pub(super) in_flight: u32,
    /// The store may hold queued hooks for this config.
    pub(super) queued: bool,
    /// A claim is under way (one at a time, so batches are as full as the queue allows).
    pub(super) claiming: bool,
    /// Deliveries due now, oldest first.
    pub(super) ready: VecDeque<String>,
    /// Deliveries waiting for a retry, with their due time (the heap may hold stale entries).
    pub(super) scheduled: HashMap<String, Instant>,
    pub(super) health: Health,
    /// The health as last written to the store.
    pub(super) health_written: Health,
    /// While FAILING: the earliest time a new batch may be taken off the queue.
    pub(super) next_claim_at: Option<Instant>,
    /// Counts `NewWork` signals: a claim that found the queue empty clears `queued` only if none
    /// came while it ran (its answer and other nodes' signals arrive in no fixed order).
    pub(super) work_epoch: u64,
    /// The earliest time to claim again: after a claim that got nothing although the queue was
    /// not empty (rows locked by another node's claim), or that the store refused (it is down:
    /// without this every freed slot would claim again at once, a busy loop of errors).
    pub(super) claim_not_before: Option<Instant>,
    /// When the last claim started ([`ConfigState::claim_paced_until`]).
    pub(super) last_claim_at: Option<Instant>,
    /// The wake-up already set for a paced claim: each slot freed meanwhile would set another.
    pub(super) paced_wake: Option<Instant>,
    /// Reads of the config under way after change signals (another node changed it): no claims
    /// until they are done (they would send with the old settings, e.g. a rotated-out secret).
    pub(super) reloading: u32,
    /// How many requests may be in flight now, within the config's ceiling
    /// (`maxRequestsInFlight`, all of it on the config's home, none elsewhere).
    pub(super) concurrency: AdaptiveLimit,
}

impl ConfigState {
    pub(super) fn new(config: WebhookConfig) -> Self {
        let config = Arc::new(config);
        ConfigState {
            health: config.health.clone(),
            health_written: config.health.clone(),
            published: watch::Sender::new(config.clone()),
            config,
            in_flight: 0,
            queued: false,
            claiming: false,
            ready: VecDeque::new(),
            scheduled: HashMap::new(),
            next_claim_at: None,
            work_epoch: 0,
            claim_not_before: None,
            last_claim_at: None,
            paced_wake: None,
            reloading: 0,
            concurrency: AdaptiveLimit::default(),
        }
    }

    /// Paused configs keep their queue and open deliveries until enabled again.
    pub(super) fn paused(&self) -> bool {
        !self.config.enabled || self.health.state == HealthState::Disabled
    }

    /// How long a FAILING config waits between new batches.
    pub(super) fn probe_interval(&self) -> Duration {
        self.config
            .retry_schedule
            .first()
            .copied()
            .unwrap_or(retry::DEFAULT_SCHEDULE[0])
    }

    /// When the next claim may start if not `now`: while requests are in flight, no sooner than
    /// [`BUSY_CLAIM_SPACING`] after the last one started. `None`: now.
    pub(super) fn claim_paced_until(&self, now: Instant) -> Option<Instant> {
        if self.in_flight == 0 {
            return None;
        }
        let at = self.last_claim_at? + BUSY_CLAIM_SPACING;
        (at > now).then_some(at)
    }

    /// Takes the health as stored, whole: a config another node disabled, or one whose home this
    /// node just became (see `Dispatcher::on_homes_loaded`).
    pub(super) fn adopt_health(&mut self, health: Health) {
        self.health_written = health.clone();
        self.health = health;
    }

    /// The config changed (here, or on another node).
    pub(super) fn update(&mut self, config: WebhookConfig) {
        // The dispatcher owns live health; a PUT that re-enables a DISABLED config
        // resets it, and a config another node disabled is disabled here too.
        if (self.health.state == HealthState::Disabled)
            != (config.health.state == HealthState::Disabled)
        {
            self.adopt_health(config.health.clone());
        }
        self.config = Arc::new(config);
        self.published.send_replace(self.config.clone());
        // Re-enabled or reconfigured: look at the queue again.
        self.queued = true;
        self.work_epoch += 1;
    }

    /// Takes the health an attempt's verdict gives the config, and what a change of state means
    /// for scheduling. Returns the health to write with the attempt's record, if any.
    pub(super) fn judged(&mut self, health: Health) -> Option<Health> {
        let config_id = self.config.id.as_str();
        let was = self.health.state;
        self.health = health;
        match (was, self.health.state) {
            (HealthState::Failing, HealthState::Healthy) => {
                // The receiver is back: everything waiting for a retry goes now.
                let due: Vec<String> = self.scheduled.drain().map(|(id, _)| id).collect();
                self.ready.extend(due);
                self.next_claim_at = None;
                tracing::info!(config_id, "receiver recovered; config is HEALTHY again");
            }
            (HealthState::Healthy, HealthState::Failing) => {
                self.next_claim_at = Some(Instant::now() + self.probe_interval());
                tracing::warn!(
                    config_id,
                    failures = self.health.consecutive_failures,
                    "config is FAILING; new batches slowed to one probe at a time"
                );
            }
            (_, HealthState::Disabled) if was != HealthState::Disabled => {
                tracing::warn!(
                    config_id,
                    reason = self.health.disabled_reason.as_deref().unwrap_or(""),
                    "config DISABLED"
                );
            }
            _ => {}
        }
        if health_worth_writing(&self.health_written, &self.health) {
            self.health_written = self.health.clone();
            Some(self.health.clone())
        } else {
            None
        }
    }
}

/// Health is written when its state or failure count changes, and otherwise at most once a
/// second: a steady stream of successes should not rewrite the config row on every attempt.
fn health_worth_writing(written: &Health, now: &Health) -> bool {
    const EVERY_MS: Millis = 1000;
    let advanced = |a: Option<Millis>, b: Option<Millis>| match (a, b) {
        (Some(a), Some(b)) => b - a >= EVERY_MS,
        (None, Some(_)) => true,
        _ => false,
    };
    written.state != now.state
        || written.consecutive_failures != now.consecutive_failures
        || written.disabled_reason != now.disabled_reason
        || written.failing_since != now.failing_since
        || advanced(written.last_success_at, now.last_success_at)
        || advanced(written.last_failure_at, now.last_failure_at)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{BUSY_CLAIM_SPACING, ConfigState};
    use crate::model::{Health, HealthState, WebhookConfig};

    /// A config with nothing in flight claims at once however recent its last claim; with
    /// requests in flight, a claim waits for the spacing after the last one, and no longer.
    #[test]
    fn a_busy_config_s_claims_are_spaced_and_a_quiet_one_s_are_not() {
        let mut st = ConfigState::new(WebhookConfig::for_tests());
        let now = Instant::now();
        st.in_flight = 3;
        assert_eq!(st.claim_paced_until(now), None, "no claim yet");
        st.last_claim_at = Some(now);
        assert_eq!(
            st.claim_paced_until(now + Duration::from_millis(1)),
            Some(now + BUSY_CLAIM_SPACING)
        );
        assert_eq!(st.claim_paced_until(now + BUSY_CLAIM_SPACING), None);
        st.in_flight = 0;
        assert_eq!(
            st.claim_paced_until(now + Duration::from_millis(1)),
            None,
            "a quiet config"
        );
    }

    /// A config read again keeps the health this node judged (its attempts are the truth here),
    /// but for DISABLED, which another node may have decided; a node that becomes the config's
    /// home adopts the stored health whole (`Dispatcher::on_homes_loaded`).
    #[test]
    fn a_reread_keeps_the_node_s_own_health_and_adopting_takes_the_stored_one() {
        let mut st = ConfigState::new(WebhookConfig::for_tests());
        let failing_long_ago = Health {
            state: HealthState::Failing,
            consecutive_failures: 40,
            failing_since: Some(1),
            ..Health::default()
        };
        st.health = failing_long_ago.clone();
        let recovered = WebhookConfig {
            health: Health {
                last_success_at: Some(1_000),
                ..Health::default()
            },
            updated_at: 1,
            ..WebhookConfig::for_tests()
        };
        st.update(recovered.clone());
        assert_eq!(
            st.health, failing_long_ago,
            "a reread keeps the node's own view"
        );
        st.adopt_health(recovered.health.clone());
        assert_eq!(st.health, recovered.health);
        assert_eq!(st.health_written, recovered.health);
        let disabled = WebhookConfig {
            health: Health {
                state: HealthState::Disabled,
                ..Health::default()
            },
            updated_at: 2,
            ..WebhookConfig::for_tests()
        };
        st.update(disabled.clone());
        assert_eq!(
            st.health, disabled.health,
            "another node's DISABLED is taken"
        );
    }
}
