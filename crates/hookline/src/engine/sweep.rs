//! The work of several nodes on one store: the sweep for due deliveries no signal announces
//! (other nodes' retries, leases of a node that died or handed them back), this node's place
//! among the live nodes (read every second: which configs it serves, and its part of their
//! limits), and reading configs again after
//! another node changed them. Only a shared store (`sweep_every` set, and the signals that start
//! the rest) brings any of it into play.

use std::time::Duration;

use foldhash::HashSet;

use crate::model::{Millis, WebhookConfig, now_millis};
use crate::store::{Membership, OpenDelivery, StoreError};

use super::concurrency::AdaptiveLimit;
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

    /// Reads this node's place among the live nodes again, in a task; while a read is under way,
    /// once it has answered (answers never arrive out of order).
    pub(super) fn refresh_membership(&mut self) {
        if self.membership_reading {
            // Read again once this one answers: it may have started before the change.
            self.membership_again = true;
            return;
        }
        self.membership_reading = true;
        let store = self.store.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let membership = match store.membership().await {
                Ok(membership) => Some(membership),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the live nodes failed");
                    None
                }
            };
            let _ = events.send(TaskEvent::Membership(membership));
        });
    }

    /// The configs this node serves now (its share of their limit is above 0) that send.
    fn served_configs(&self) -> Vec<String> {
        let membership = &self.membership;
        self.configs
            .iter()
            .filter(|(id, st)| {
                !st.paused() && membership.share(st.config.max_requests_in_flight.max(1), id) > 0
            })
            .map(|(id, _)| id.clone())
            .collect()
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
        // Only work overdue by a whole sweep interval: a retry is sent on time by the node that
        // scheduled it, so what is still due this late has no live node behind it (its node
        // died or left, or the config's home moved while its attempt was in flight). Only the
        // configs this node serves: a page of another home's backlog would hide the work this
        // node has to take over.
        let until = now_millis() - overdue_by.as_millis() as Millis;
        let served = self.served_configs();
        self.sweep_configs(until, served);
    }

    /// Looks for the open deliveries of `configs` due before `until` that nobody holds.
    pub(super) fn sweep_configs(&self, until: Millis, configs: Vec<String>) {
        if configs.is_empty() {
            return;
        }
        let store = self.store.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            match store.due_deliveries(until, SWEEP_LIMIT, &configs).await {
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

    /// The live nodes, read again: the configs whose home this node became take the health their
    /// previous home wrote (their claims wait for that read: `load_gained`), start their
    /// adaptive limit afresh and have their open deliveries found at once, whenever they are
    /// due (the previous home's retries); the configs this node no longer serves drop the
    /// retries it had scheduled (their new home finds them).
    pub(super) fn on_membership(&mut self, membership: Option<Membership>) {
        self.membership_reading = false;
        if std::mem::take(&mut self.membership_again) {
            self.refresh_membership();
        }
        let Some(membership) = membership.filter(|m| *m != self.membership) else {
            return;
        };
        if membership.is_outside() {
            tracing::warn!(
                live_nodes = membership.nodes(),
                "this node's listener is counted out while other nodes are live: it serves no \
                 config until its listener is back"
            );
        } else {
            tracing::info!(
                rank = membership.rank(),
                nodes = membership.nodes(),
                "live nodes changed; each config is served by its home among them"
            );
        }
        let before = std::mem::replace(&mut self.membership, membership.clone());
        let mut gained = Vec::new();
        for (id, st) in &mut self.configs {
            let limit = st.config.max_requests_in_flight.max(1);
            match (before.share(limit, id) > 0, membership.share(limit, id) > 0) {
                (false, true) => {
                    st.concurrency = AdaptiveLimit::default();
                    st.reloading += 1;
                    // Left from when this node last served it: the sweep below finds what is
                    // still open.
                    st.ready.clear();
                    st.scheduled.clear();
                    gained.push(id.clone());
                }
                (true, false) => {
                    st.ready.clear();
                    st.scheduled.clear();
                }
                _ => {}
            }
        }
        self.dirty.extend(self.configs.keys().cloned());
        if gained.is_empty() {
            return;
        }
        self.load_gained(gained.clone());
        if !self.draining {
            self.sweep_configs(Millis::MAX, gained);
        }
    }

    /// Reads every config once (one read however many homes moved here), in a task, until it
    /// works; the answer comes back as [`TaskEvent::HomesLoaded`].
    fn load_gained(&self, gained: Vec<String>) {
        let store = self.store.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let configs = loop {
                match store.all_configs().await {
                    Ok(configs) => break configs,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the configs this node now serves failed; retrying");
                        tokio::time::sleep(STORE_BACKOFF).await;
                    }
                }
            };
            let _ = events.send(TaskEvent::HomesLoaded { gained, configs });
        });
    }

    /// The configs whose home this node became, read: each takes the health stored by its
    /// previous home (this node's own view, from when it last served the config, may say
    /// FAILING since days ago, and one failure would then disable a config that recovered), and
    /// its claims go on.
    pub(super) fn on_homes_loaded(&mut self, gained: Vec<String>, configs: Vec<WebhookConfig>) {
        let wanted: HashSet<&str> = gained.iter().map(String::as_str).collect();
        for config in configs {
            if !wanted.contains(config.id.as_str()) {
                continue;
            }
            if let Some(st) = self.configs.get_mut(&config.id) {
                st.adopt_health(config.health.clone());
            }
            self.apply_loaded(config);
        }
        for id in gained {
            if let Some(st) = self.configs.get_mut(&id) {
                st.reloading = st.reloading.saturating_sub(1);
                self.dirty.insert(id);
            }
        }
    }

    /// The sweep's finds: open deliveries due soon that nobody holds.
    pub(super) fn on_swept(&mut self, found: Vec<OpenDelivery>) {
        let now = now_millis();
        let membership = self.membership.clone();
        for delivery in found {
            // Only what this node would send now: not a paused config's, and not one whose
            // home is another node (the sweep asked for this node's configs, but the home may
            // have moved since).
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
