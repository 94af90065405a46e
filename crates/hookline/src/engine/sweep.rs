//! The work of several nodes on one store: the sweep for due deliveries no signal announces
//! (other nodes' retries, leases of a node that died or handed them back), this node's place
//! among the live nodes (read every second: which configs it serves, and its part of their
//! limits), and reading configs again after
//! another node changed them. Only a shared store (`sweep_every` set, and the signals that start
//! the rest) brings any of it into play.

use std::time::Duration;

use crate::model::{Millis, WebhookConfig, now_millis};
use crate::store::{Membership, OpenDelivery, StoreError};

use super::dispatcher::{Dispatcher, STORE_BACKOFF, TaskEvent, instant_at};

/// Most deliveries one sweep schedules.
const SWEEP_LIMIT: u32 = 1000;

/// How often a node of a shared store reads the live nodes again. A config is served by its home
/// (`Membership::share`); when the home's process dies, the store counts it out as soon as the
/// database has closed its connection (PostgreSQL: `nodes.listener_pid`), and the config's hooks
/// wait for the next read here before another node claims them. One small read a second.
pub(super) const MEMBERSHIP_EVERY: Duration = Duration::from_secs(1);

impl Dispatcher {
    /// Reads configs again in a task; the answer comes back as an event.
    pub(super) fn reload_configs(&self, config_id: Option<String>) {
        let store = self.store.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let event = match config_id {
                Some(config_id) => loop {
                    match store.find_config(&config_id).await {
                        Ok(config) => {
                            break TaskEvent::ConfigLoaded {
                                config_id,
                                config: config.map(Box::new),
                            };
                        }
                        // The config waits (`reloading`) until it is read: try again while the
                        // store is unavailable; anything else (corrupt data) will not improve.
                        Err(StoreError::Unavailable(e)) => {
                            tracing::error!(config_id, error = %e, "reading a changed config failed; retrying");
                            tokio::time::sleep(STORE_BACKOFF).await;
                        }
                        Err(e) => {
                            tracing::error!(config_id, error = %e, "reading a changed config failed");
                            break TaskEvent::ConfigLoadFailed { config_id };
                        }
                    }
                },
                // After a Resync: retried until it works, since changes made meanwhile on other
                // nodes are known only from here.
                None => loop {
                    match store.all_configs().await {
                        Ok(configs) => break TaskEvent::ConfigsLoaded(configs),
                        Err(e) => {
                            tracing::error!(error = %e, "reading the configs again failed; retrying");
                            tokio::time::sleep(STORE_BACKOFF).await;
                        }
                    }
                },
            };
            let _ = events.send(event);
        });
    }

    /// A config read from the store replaces ours unless ours is newer (two reads can answer
    /// out of order).
    fn apply_loaded(&mut self, config: WebhookConfig) {
        let newer = self
            .configs
            .get(&config.id)
            .is_none_or(|st| st.config.updated_at <= config.updated_at);
        if newer {
            self.apply_config(config);
        }
    }

    /// Reads this node's place among the live nodes again, in a task.
    pub(super) fn refresh_membership(&self) {
        let store = self.store.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            match store.membership().await {
                Ok(membership) => {
                    let _ = events.send(TaskEvent::Membership(membership));
                }
                Err(e) => tracing::warn!(error = %e, "reading the live nodes failed"),
            }
        });
    }

    /// Looks for due work that no signal announces: the deliveries of a node whose leases
    /// expired or were handed back, and retries that the node which scheduled them did not send.
    ///
    /// `overdue_by`: how late the work must be (see below); zero after a node handed its leases
    /// back, since what it held is due now.
    pub(super) fn sweep(&mut self, overdue_by: Option<Duration>) {
        let Some(every) = self.settings.sweep_every else {
            return;
        };
        let overdue_by = overdue_by.unwrap_or(every);
        if self.draining {
            return;
        }
        let store = self.store.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            // Only work overdue by a whole sweep interval: a retry is sent on time by the node
            // that scheduled it, so what is still due this late has no live node behind it (its
            // node died or left, or its share of the config is 0). Taking everything due would
            // have every node try to lease every retry.
            let until = now_millis() - overdue_by.as_millis() as Millis;
            match store.due_deliveries(until, SWEEP_LIMIT).await {
                Ok(found) if !found.is_empty() => {
                    let _ = events.send(TaskEvent::Swept(found));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping for due deliveries failed"),
            }
        });
    }

    /// A config read again after a change signal (`None`: it was deleted meanwhile).
    pub(super) fn on_config_loaded(
        &mut self,
        config_id: String,
        config: Option<Box<WebhookConfig>>,
    ) {
        match config {
            Some(config) => {
                if let Some(st) = self.configs.get_mut(&config_id) {
                    st.reloading = st.reloading.saturating_sub(1);
                    self.dirty.insert(config_id);
                }
                self.apply_loaded(*config);
            }
            None => {
                self.configs.remove(&config_id);
            }
        }
    }

    pub(super) fn on_config_load_failed(&mut self, config_id: String) {
        if let Some(st) = self.configs.get_mut(&config_id) {
            st.reloading = st.reloading.saturating_sub(1);
            self.dirty.insert(config_id);
        }
    }

    /// Every config, read again after a `Resync`.
    pub(super) fn on_configs_loaded(&mut self, configs: Vec<WebhookConfig>) {
        for config in configs {
            self.apply_loaded(config);
        }
    }

    pub(super) fn on_membership(&mut self, membership: Membership) {
        if membership != self.membership {
            tracing::info!(
                rank = membership.rank,
                nodes = membership.nodes,
                "live nodes changed; per-config limits are split among them"
            );
            self.membership = membership;
            self.dirty.extend(self.configs.keys().cloned());
        }
    }

    /// The sweep's finds: open deliveries due soon that nobody holds.
    pub(super) fn on_swept(&mut self, found: Vec<OpenDelivery>) {
        let now = now_millis();
        let membership = self.membership;
        for delivery in found {
            // Only what this node would send now: not a paused config's, and not one
            // whose limit is all other nodes' (they found it too).
            let sendable = self.configs.get(&delivery.config_id).is_some_and(|st| {
                !st.paused()
                    && membership
                        .share(st.config.max_requests_in_flight.max(1), &delivery.config_id)
                        > 0
            });
            if !sendable {
                continue;
            }
            let at = instant_at(delivery.next_attempt_at, now);
            self.schedule(&delivery.config_id, delivery.hooks_id, at);
        }
    }
}
