//! The delivery engine: turns queued hooks into HTTP deliveries, retries them, and records every
//! attempt.
//!
//! One dispatcher task owns all scheduling state (per config: requests in flight, whether its
//! queue has hooks, deliveries due for a retry, health). Attempts run as separate tasks and talk
//! back to it with messages, so a slow receiver only ever occupies its own config's slots.
//!
//! Life of a delivery:
//! 1. The store signals `NewWork` for a config after an ingest commit.
//! 2. When the config has a free slot, an attempt task *claims* up to `maxHooksPerRequest` queued
//!    hooks of one event: the store turns them into a PENDING delivery with a new hooksId in one
//!    commit. There is no linger: batches form by themselves while earlier requests are in flight.
//! 3. The task POSTs the envelope ([`client`]), asks the dispatcher for the verdict (retry policy
//!    in [`retry`], health in [`health`]), and records the attempt and the delivery's new status
//!    in one commit. Only then is a retry scheduled or the slot given back.
//! 4. A retry timer makes the delivery *ready*; it takes a slot like new work, with priority.
//!
//! At start, PENDING and RETRYING deliveries and non-empty queues are read back from the store,
//! so nothing accepted is lost across restarts.
//!
//! Several nodes on one store (PostgreSQL): every attempt of an existing delivery first takes
//! its lease ([`Store::lease_delivery`]), so two nodes never send the same attempt; claims lease
//! what they create. Other nodes' work reaches this one as store signals (their ingests, config
//! changes) and through the *sweep* (`sweep_every`): due retries and expired leases of a node
//! that died. `maxRequestsInFlight` is split among the live nodes (`Membership::share`); the
//! FAILING probe pacing is per node.

pub mod client;
pub mod health;
pub mod retry;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::model::{
    AttemptOutcome, AttemptResult, DeliveryStatus, Health, HealthState, Millis, SendableDelivery,
    WebhookConfig, now_millis,
};
use crate::store::{Lease, Membership, OpenDelivery, Store, StoreError, StoreSignal};
use client::{DeliveryClient, Outgoing};
use health::HealthPolicy;

/// How long to wait before trying again after the store refused a claim or a load.
const STORE_BACKOFF: Duration = Duration::from_secs(1);
/// How long to wait before claiming again when another node's claim held every queued row.
const CONTENDED_BACKOFF: Duration = Duration::from_millis(20);
/// Most deliveries one sweep schedules.
const SWEEP_LIMIT: u32 = 1000;

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub allow_private_targets: bool,
    pub health: HealthPolicy,
    /// The longest a graceful shutdown waits for attempts in flight.
    pub shutdown_grace: Duration,
    /// With a shared store: how often to look for due work no signal announces (other nodes'
    /// retries, leases expired with their node). `None`: this process is the only one.
    pub sweep_every: Option<Duration>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            allow_private_targets: false,
            health: HealthPolicy::default(),
            shutdown_grace: Duration::from_secs(30),
            sweep_every: None,
        }
    }
}

/// A cheap handle to the running engine.
#[derive(Clone)]
pub struct Engine {
    commands: mpsc::UnboundedSender<Command>,
    client: DeliveryClient,
}

enum Command {
    ConfigChanged(Box<WebhookConfig>),
    ConfigDeleted(String),
    DeliveryCreated { config_id: String, hooks_id: String },
    Shutdown(oneshot::Sender<()>),
}

/// Messages from attempt tasks to the dispatcher.
enum TaskEvent {
    /// A claim that reserved `asked` slots produced `got` deliveries (each goes on in one of
    /// those slots); the other slots are given back. `drained`: the store found the queue
    /// empty, as of the config's `work_epoch` when the claim started.
    Claimed {
        config_id: String,
        asked: u32,
        got: u32,
        drained: bool,
        contended: bool,
        epoch: u64,
    },
    /// A delivery's retry is not due yet (another node rescheduled it): the slot is given back
    /// and the delivery waits until then.
    NotDue {
        config_id: String,
        hooks_id: String,
        at: Millis,
    },
    /// A config read again after a signal (`None`: it was deleted).
    ConfigLoaded {
        config_id: String,
        config: Option<Box<WebhookConfig>>,
    },
    /// Reading a changed config failed for good: stop waiting for it.
    ConfigLoadFailed { config_id: String },
    /// Every config, read again after a `Resync`.
    ConfigsLoaded(Vec<WebhookConfig>),
    /// The sweep's finds: open deliveries due soon that nobody holds.
    Swept(Vec<OpenDelivery>),
    /// This node's place among the live nodes, read again.
    Membership(Membership),
    /// The store failed a claim or a load: the slots are given back and the work retried later.
    StoreFailed {
        config_id: String,
        hooks_id: Option<String>,
        slots: u32,
    },
    /// The delivery is no longer open (cancelled, or finished elsewhere): the slot is given back.
    Abandoned { config_id: String },
    /// The shutdown grace period ran out: stop waiting for attempts in flight.
    GraceExpired,
    /// An attempt ended: the dispatcher judges it, queues its record, schedules a retry if
    /// due, and gives the slot back.
    Finished {
        config_id: String,
        hooks_id: String,
        number: u32,
        result: AttemptResult,
    },
}

impl Engine {
    /// Loads configs and open work from the store and starts dispatching.
    pub async fn start(
        store: Arc<dyn Store>,
        settings: EngineSettings,
    ) -> anyhow::Result<(Engine, tokio::task::JoinHandle<()>)> {
        let client = DeliveryClient::new(settings.allow_private_targets)?;
        let signals = store
            .take_signals()
            .ok_or_else(|| anyhow::anyhow!("the store's signals are already taken"))?;
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();

        let mut dispatcher = Dispatcher {
            store: store.clone(),
            client: client.clone(),
            settings,
            configs: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            dirty: HashSet::new(),
            events_tx,
            total_in_flight: 0,
            draining: false,
            shutdown_waiters: Vec::new(),
            membership: Membership::ALONE,
        };
        dispatcher.load().await?;
        let handle = tokio::spawn(dispatcher.run(commands_rx, events_rx, signals));
        Ok((
            Engine {
                commands: commands_tx,
                client,
            },
            handle,
        ))
    }

    /// A config was created or changed (settings, enabled, health reset).
    pub fn config_changed(&self, config: WebhookConfig) {
        let _ = self.commands.send(Command::ConfigChanged(Box::new(config)));
    }

    pub fn config_deleted(&self, config_id: String) {
        let _ = self.commands.send(Command::ConfigDeleted(config_id));
    }

    /// A new PENDING delivery exists (redeliver): send it as soon as a slot is free.
    pub fn delivery_created(&self, config_id: String, hooks_id: String) {
        let _ = self.commands.send(Command::DeliveryCreated {
            config_id,
            hooks_id,
        });
    }

    /// One attempt outside the queue and the log (the `test` route).
    pub async fn send_once(
        &self,
        config: &WebhookConfig,
        hooks_id: &str,
        envelope: Vec<u8>,
    ) -> AttemptResult {
        self.client
            .send(Outgoing {
                config,
                hooks_id,
                envelope: Bytes::from(envelope),
            })
            .await
    }

    /// Stops starting attempts and waits (up to the grace period) for those in flight to be
    /// recorded. What is left is retried after the next start.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct ConfigState {
    config: Arc<WebhookConfig>,
    in_flight: u32,
    /// The store may hold queued hooks for this config.
    queued: bool,
    /// A claim is under way (one at a time, so batches are as full as the queue allows).
    claiming: bool,
    /// Deliveries due now, oldest first.
    ready: VecDeque<String>,
    /// Deliveries waiting for a retry, with their due time (the heap may hold stale entries).
    scheduled: HashMap<String, Instant>,
    health: Health,
    /// The health as last written to the store.
    health_written: Health,
    /// While FAILING: the earliest time a new batch may be taken off the queue.
    next_claim_at: Option<Instant>,
    /// Counts `NewWork` signals: a claim that found the queue empty clears `queued` only if none
    /// came while it ran (its answer and other nodes' signals arrive in no fixed order).
    work_epoch: u64,
    /// After a claim that got nothing although the queue was not empty (rows locked by another
    /// node's claim): the earliest time to try again.
    contended_until: Option<Instant>,
    /// Reads of the config under way after change signals (another node changed it): no claims
    /// until they are done (they would send with the old settings, e.g. a rotated-out secret).
    reloading: u32,
}

impl ConfigState {
    fn new(config: WebhookConfig) -> Self {
        ConfigState {
            health: config.health.clone(),
            health_written: config.health.clone(),
            config: Arc::new(config),
            in_flight: 0,
            queued: false,
            claiming: false,
            ready: VecDeque::new(),
            scheduled: HashMap::new(),
            next_claim_at: None,
            work_epoch: 0,
            contended_until: None,
            reloading: 0,
        }
    }

    /// Paused configs keep their queue and open deliveries until enabled again.
    fn paused(&self) -> bool {
        !self.config.enabled || self.health.state == HealthState::Disabled
    }

    /// How long a FAILING config waits between new batches.
    fn probe_interval(&self) -> Duration {
        self.config
            .retry_schedule
            .first()
            .copied()
            .unwrap_or(retry::DEFAULT_SCHEDULE[0])
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    seq: u64,
    config_id: String,
    /// `None`: just wake the config (a FAILING config's next claim, a store back-off).
    hooks_id: Option<String>,
}

struct Dispatcher {
    store: Arc<dyn Store>,
    client: DeliveryClient,
    settings: EngineSettings,
    configs: HashMap<String, ConfigState>,
    timers: BinaryHeap<Reverse<Timer>>,
    timer_seq: u64,
    dirty: HashSet<String>,
    events_tx: mpsc::UnboundedSender<TaskEvent>,
    total_in_flight: usize,
    draining: bool,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    /// Per-config limits are this node's share of them (see `Membership::share`).
    membership: Membership,
}

fn instant_at(at: Millis, now: Millis) -> Instant {
    Instant::now() + Duration::from_millis(at.saturating_sub(now).max(0) as u64)
}

impl Dispatcher {
    async fn load(&mut self) -> anyhow::Result<()> {
        self.membership = self.store.membership().await?;
        for config in self.store.all_configs().await? {
            self.configs
                .insert(config.id.clone(), ConfigState::new(config));
        }
        let now = now_millis();
        let open = self.store.open_deliveries().await?;
        let resumed = open.len();
        for delivery in open {
            let at = instant_at(delivery.next_attempt_at, now);
            self.schedule(&delivery.config_id, delivery.hooks_id, at);
        }
        let queued = self.store.configs_with_queued_hooks().await?;
        for config_id in &queued {
            if let Some(st) = self.configs.get_mut(config_id) {
                st.queued = true;
            }
        }
        self.dirty.extend(self.configs.keys().cloned());
        tracing::info!(
            configs = self.configs.len(),
            open_deliveries = resumed,
            configs_with_queued_hooks = queued.len(),
            "delivery engine loaded"
        );
        Ok(())
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<TaskEvent>,
        mut signals: mpsc::UnboundedReceiver<StoreSignal>,
    ) {
        let mut signals_open = true;
        let mut commands_open = true;
        let mut sweep = self.settings.sweep_every.map(|every| {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        loop {
            self.pump_dirty();
            let next_timer = self.timers.peek().map(|Reverse(t)| t.at);
            // Biased, commands before signals: a config change made through the API is sent
            // before the answer, so before any ingest that follows it; handled in that order, a
            // claim never uses the config as it was before the change (the old signing secret).
            tokio::select! {
                biased;
                command = commands.recv(), if commands_open => match command {
                    Some(command) => self.on_command(command),
                    // Every handle is gone: finish what is in flight, then stop.
                    None => {
                        commands_open = false;
                        self.draining = true;
                    }
                },
                Some(event) = events.recv() => self.on_event(event),
                signal = signals.recv(), if signals_open => match signal {
                    Some(signal) => self.on_signal(signal),
                    None => signals_open = false,
                },
                _ = sleep_until_opt(next_timer), if next_timer.is_some() => self.fire_timers(),
                _ = tick_opt(&mut sweep), if sweep.is_some() => self.sweep(None),
            }
            if self.draining && self.total_in_flight == 0 {
                for waiter in self.shutdown_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                if !commands_open {
                    break;
                }
            }
        }
    }

    fn schedule(&mut self, config_id: &str, hooks_id: String, at: Instant) {
        let Some(st) = self.configs.get_mut(config_id) else {
            return;
        };
        if at <= Instant::now() {
            st.scheduled.remove(&hooks_id);
            if !st.ready.contains(&hooks_id) {
                st.ready.push_back(hooks_id);
            }
            self.dirty.insert(config_id.to_owned());
            return;
        }
        st.scheduled.insert(hooks_id.clone(), at);
        self.timer_seq += 1;
        self.timers.push(Reverse(Timer {
            at,
            seq: self.timer_seq,
            config_id: config_id.to_owned(),
            hooks_id: Some(hooks_id),
        }));
    }

    fn wake_at(&mut self, config_id: &str, at: Instant) {
        self.timer_seq += 1;
        self.timers.push(Reverse(Timer {
            at,
            seq: self.timer_seq,
            config_id: config_id.to_owned(),
            hooks_id: None,
        }));
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse(timer)) = self.timers.peek() {
            if timer.at > now {
                break;
            }
            let Some(Reverse(timer)) = self.timers.pop() else {
                break;
            };
            let Some(st) = self.configs.get_mut(&timer.config_id) else {
                continue;
            };
            if let Some(hooks_id) = timer.hooks_id {
                // A stale entry (the retry was pulled forward or rescheduled) is skipped.
                if st.scheduled.get(&hooks_id) != Some(&timer.at) {
                    continue;
                }
                st.scheduled.remove(&hooks_id);
                st.ready.push_back(hooks_id);
            }
            self.dirty.insert(timer.config_id);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ConfigChanged(config) => self.apply_config(*config),
            Command::ConfigDeleted(id) => {
                self.configs.remove(&id);
            }
            Command::DeliveryCreated {
                config_id,
                hooks_id,
            } => self.schedule(&config_id, hooks_id, Instant::now()),
            Command::Shutdown(reply) => {
                self.draining = true;
                self.shutdown_waiters.push(reply);
                let grace = self.settings.shutdown_grace;
                let in_flight = self.total_in_flight;
                tracing::info!(in_flight, "delivery engine draining");
                // Past the grace period, give up waiting: what is in flight is retried after the
                // next start (at-least-once).
                let events = self.events_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    let _ = events.send(TaskEvent::GraceExpired);
                });
            }
        }
    }

    /// A config is new or changed (here, or on another node).
    fn apply_config(&mut self, config: WebhookConfig) {
        let id = config.id.clone();
        match self.configs.get_mut(&id) {
            Some(st) => {
                // The dispatcher owns live health; a PUT that re-enables a DISABLED config
                // resets it, and a config another node disabled is disabled here too.
                if (st.health.state == HealthState::Disabled)
                    != (config.health.state == HealthState::Disabled)
                {
                    st.health = config.health.clone();
                    st.health_written = config.health.clone();
                }
                st.config = Arc::new(config);
                // Re-enabled or reconfigured: look at the queue again.
                st.queued = true;
                st.work_epoch += 1;
            }
            None => {
                // New work for a config can overtake the config itself (they come on different
                // channels), and `NewWork` for an unknown config is dropped: so a config starts
                // out assuming its queue has hooks. A claim that finds none costs one query.
                let mut st = ConfigState::new(config);
                st.queued = true;
                self.configs.insert(id.clone(), st);
            }
        }
        self.dirty.insert(id);
    }

    /// Reads configs again in a task; the answer comes back as an event.
    fn reload_configs(&self, config_id: Option<String>) {
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
    fn refresh_membership(&self) {
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
    fn sweep(&mut self, overdue_by: Option<Duration>) {
        let Some(every) = self.settings.sweep_every else {
            return;
        };
        let overdue_by = overdue_by.unwrap_or(every);
        if self.draining {
            return;
        }
        // Nodes that died are noticed here too: their part of the limits comes back.
        self.refresh_membership();
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

    fn on_signal(&mut self, signal: StoreSignal) {
        match signal {
            StoreSignal::NewWork { config_id } => {
                if let Some(st) = self.configs.get_mut(&config_id) {
                    st.queued = true;
                    st.work_epoch += 1;
                    self.dirty.insert(config_id);
                }
            }
            StoreSignal::QueueDrained { config_id } => {
                if let Some(st) = self.configs.get_mut(&config_id) {
                    st.queued = false;
                }
            }
            StoreSignal::ConfigChanged { config_id } => {
                if let Some(st) = self.configs.get_mut(&config_id) {
                    st.reloading += 1;
                }
                self.reload_configs(Some(config_id));
            }
            StoreSignal::LeasesFreed => self.sweep(Some(Duration::ZERO)),
            StoreSignal::NodesChanged => self.refresh_membership(),
            StoreSignal::Resync => {
                for (id, st) in &mut self.configs {
                    st.queued = true;
                    st.work_epoch += 1;
                    self.dirty.insert(id.clone());
                }
                self.reload_configs(None);
                self.refresh_membership();
            }
        }
    }

    fn release(&mut self, config_id: &str) {
        self.total_in_flight = self.total_in_flight.saturating_sub(1);
        if let Some(st) = self.configs.get_mut(config_id) {
            st.in_flight = st.in_flight.saturating_sub(1);
            self.dirty.insert(config_id.to_owned());
        }
    }

    fn on_event(&mut self, event: TaskEvent) {
        match event {
            TaskEvent::Claimed {
                config_id,
                asked,
                got,
                drained,
                contended,
                epoch,
            } => {
                if let Some(st) = self.configs.get_mut(&config_id) {
                    st.claiming = false;
                    if drained && st.work_epoch == epoch {
                        st.queued = false;
                    } else if got == 0 && contended {
                        // Another node's claim holds the rows: look again in a moment.
                        let at = Instant::now() + CONTENDED_BACKOFF;
                        st.contended_until = Some(at);
                        self.wake_at(&config_id, at);
                    }
                    self.dirty.insert(config_id.clone());
                }
                for _ in got..asked {
                    self.release(&config_id);
                }
            }
            TaskEvent::NotDue {
                config_id,
                hooks_id,
                at,
            } => {
                self.schedule(&config_id, hooks_id, instant_at(at, now_millis()));
                self.release(&config_id);
            }
            TaskEvent::ConfigLoaded { config_id, config } => match config {
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
            },
            TaskEvent::ConfigLoadFailed { config_id } => {
                if let Some(st) = self.configs.get_mut(&config_id) {
                    st.reloading = st.reloading.saturating_sub(1);
                    self.dirty.insert(config_id);
                }
            }
            TaskEvent::ConfigsLoaded(configs) => {
                for config in configs {
                    self.apply_loaded(config);
                }
            }
            TaskEvent::Membership(membership) => {
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
            TaskEvent::Swept(found) => {
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
            TaskEvent::StoreFailed {
                config_id,
                hooks_id,
                slots,
            } => {
                let at = Instant::now() + STORE_BACKOFF;
                if let Some(st) = self.configs.get_mut(&config_id)
                    && hooks_id.is_none()
                {
                    st.claiming = false;
                }
                match hooks_id {
                    Some(hooks_id) => self.schedule(&config_id, hooks_id, at),
                    None => self.wake_at(&config_id, at),
                }
                for _ in 0..slots {
                    self.release(&config_id);
                }
            }
            TaskEvent::Abandoned { config_id } => self.release(&config_id),
            TaskEvent::GraceExpired => {
                if self.draining && self.total_in_flight > 0 {
                    tracing::warn!(
                        in_flight = self.total_in_flight,
                        "shutdown grace period over; unfinished attempts are retried after restart"
                    );
                    self.total_in_flight = 0;
                }
            }
            TaskEvent::Finished {
                config_id,
                hooks_id,
                number,
                result,
            } => {
                let outcome = self.judge(&config_id, hooks_id, number, result);
                let retry_at = outcome
                    .next_attempt_at
                    .filter(|_| outcome.new_status == DeliveryStatus::Retrying)
                    .map(|at| instant_at(at, now_millis()));
                let hooks_id = outcome.hooks_id.clone();
                crate::metrics::attempt_finished(&outcome.result, outcome.new_status);
                // Queued, not awaited: the writer commits it with its neighbours, and the retry
                // (at least 100 ms away) is loaded only after that commit.
                self.store.record_attempt(outcome);
                if let Some(at) = retry_at {
                    self.schedule(&config_id, hooks_id, at);
                }
                self.release(&config_id);
            }
        }
    }

    /// Decides what an attempt's result means: the delivery's next status, its retry time and
    /// the config's health.
    fn judge(
        &mut self,
        config_id: &str,
        hooks_id: String,
        number: u32,
        result: AttemptResult,
    ) -> AttemptOutcome {
        let now = now_millis();
        let policy = self.settings.health;
        let success = result.succeeded();
        let Some(st) = self.configs.get_mut(config_id) else {
            // Deleted meanwhile: the store keeps the delivery CANCELLED whatever we say.
            return AttemptOutcome {
                hooks_id,
                config_id: config_id.to_owned(),
                number,
                result,
                new_status: DeliveryStatus::Cancelled,
                next_attempt_at: None,
                health: None,
            };
        };
        let was = st.health.state;
        st.health = if success {
            policy.after_success(&st.health, now)
        } else if result.status_code == Some(410) {
            policy.after_gone(&st.health, now)
        } else {
            policy.after_failure(&st.health, now)
        };
        let (new_status, next_attempt_at) = if success {
            (DeliveryStatus::Succeeded, None)
        } else {
            match retry::after_failure(&st.config.retry_schedule, number, result.retry_after) {
                retry::NextStep::RetryAfter(delay) => (
                    DeliveryStatus::Retrying,
                    Some(now + delay.as_millis() as i64),
                ),
                retry::NextStep::GiveUp => (DeliveryStatus::Failed, None),
            }
        };
        match (was, st.health.state) {
            (HealthState::Failing, HealthState::Healthy) => {
                // The receiver is back: everything waiting for a retry goes now.
                let due: Vec<String> = st.scheduled.drain().map(|(id, _)| id).collect();
                st.ready.extend(due);
                st.next_claim_at = None;
                tracing::info!(config_id, "receiver recovered; config is HEALTHY again");
            }
            (HealthState::Healthy, HealthState::Failing) => {
                st.next_claim_at = Some(Instant::now() + st.probe_interval());
                tracing::warn!(
                    config_id,
                    failures = st.health.consecutive_failures,
                    "config is FAILING; new batches slowed to one probe at a time"
                );
            }
            (_, HealthState::Disabled) if was != HealthState::Disabled => {
                tracing::warn!(
                    config_id,
                    reason = st.health.disabled_reason.as_deref().unwrap_or(""),
                    "config DISABLED"
                );
            }
            _ => {}
        }
        self.dirty.insert(config_id.to_owned());
        let health = if health_worth_writing(&st.health_written, &st.health) {
            st.health_written = st.health.clone();
            Some(st.health.clone())
        } else {
            None
        };
        AttemptOutcome {
            hooks_id,
            config_id: config_id.to_owned(),
            number,
            result,
            new_status,
            next_attempt_at,
            health,
        }
    }

    fn pump_dirty(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty: Vec<String> = self.dirty.drain().collect();
        for config_id in dirty {
            self.pump(&config_id);
        }
    }

    /// Starts as many attempts for this config as its free slots allow: due retries first, then
    /// a new batch from the queue.
    fn pump(&mut self, config_id: &str) {
        if self.draining {
            return;
        }
        let membership = self.membership;
        let Some(st) = self.configs.get_mut(config_id) else {
            return;
        };
        if st.paused() || st.reloading > 0 {
            return;
        }
        // This node's share of the config's limit: the live nodes' shares add up to it. A node
        // whose share is 0 leaves the config to the others (their sweeps find its retries).
        let limit = membership.share(st.config.max_requests_in_flight.max(1), config_id);
        if limit == 0 {
            return;
        }
        let mut wake = None;
        let mut jobs = Vec::new();
        while st.in_flight < limit {
            if let Some(hooks_id) = st.ready.pop_front() {
                st.in_flight += 1;
                jobs.push(Job::Send(hooks_id));
                continue;
            }
            if !st.queued || st.claiming {
                break;
            }
            if let Some(at) = st.contended_until {
                if at > Instant::now() {
                    wake = Some(at);
                    break;
                }
                st.contended_until = None;
            }
            if st.health.state == HealthState::Failing {
                if st.in_flight > 0 {
                    break;
                }
                let now = Instant::now();
                if let Some(at) = st.next_claim_at
                    && at > now
                {
                    wake = Some(at);
                    break;
                }
                st.next_claim_at = Some(now + st.probe_interval());
            }
            // One claim fills every free slot (a FAILING config probes with one batch), so a
            // config's claims cost one commit, not one per batch.
            let slots = if st.health.state == HealthState::Failing {
                1
            } else {
                limit - st.in_flight
            };
            st.claiming = true;
            st.in_flight += slots;
            jobs.push(Job::Claim {
                slots,
                epoch: st.work_epoch,
            });
        }
        let config = st.config.clone();
        if let Some(at) = wake {
            self.wake_at(config_id, at);
        }
        for job in jobs {
            self.total_in_flight += job.slots() as usize;
            let task = AttemptTask {
                store: self.store.clone(),
                client: self.client.clone(),
                events: self.events_tx.clone(),
                config: config.clone(),
            };
            tokio::spawn(task.run(job));
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

async fn tick_opt(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

enum Job {
    /// Take up to `slots` batches off the queue, one per reserved slot; `epoch` is the config's
    /// `work_epoch` when the claim was decided.
    Claim { slots: u32, epoch: u64 },
    /// Attempt an existing delivery.
    Send(String),
}

impl Job {
    fn slots(&self) -> u32 {
        match self {
            Job::Claim { slots, .. } => *slots,
            Job::Send(_) => 1,
        }
    }
}

#[derive(Clone)]
struct AttemptTask {
    store: Arc<dyn Store>,
    client: DeliveryClient,
    events: mpsc::UnboundedSender<TaskEvent>,
    config: Arc<WebhookConfig>,
}

impl AttemptTask {
    async fn run(self, job: Job) {
        let config_id = self.config.id.clone();
        let delivery = match job {
            Job::Claim { slots, epoch } => {
                let claimed = self
                    .store
                    .claim_batches(&self.config, self.config.max_hooks_per_request, slots)
                    .await;
                let claim = match claimed {
                    Ok(claim) => claim,
                    Err(e) => {
                        tracing::error!(config_id, error = %e, "claiming a batch failed");
                        self.tell(TaskEvent::StoreFailed {
                            config_id,
                            hooks_id: None,
                            slots,
                        });
                        return;
                    }
                };
                let mut batches = claim.batches;
                self.tell(TaskEvent::Claimed {
                    config_id,
                    asked: slots,
                    got: batches.len() as u32,
                    drained: claim.drained,
                    contended: claim.contended,
                    epoch,
                });
                if batches.is_empty() {
                    return;
                }
                let first = batches.remove(0);
                for batch in batches {
                    tokio::spawn(self.clone().attempt(batch.delivery));
                }
                first.delivery
            }
            Job::Send(hooks_id) => match self.store.lease_delivery(&hooks_id).await {
                Ok(Lease::Granted(delivery)) => delivery,
                Ok(Lease::NotDue(at)) => {
                    self.tell(TaskEvent::NotDue {
                        config_id,
                        hooks_id,
                        at,
                    });
                    return;
                }
                Ok(Lease::Unavailable) => {
                    self.tell(TaskEvent::Abandoned { config_id });
                    return;
                }
                Err(e) => {
                    tracing::error!(hooks_id, error = %e, "loading a delivery failed");
                    self.tell(TaskEvent::StoreFailed {
                        config_id,
                        hooks_id: Some(hooks_id),
                        slots: 1,
                    });
                    return;
                }
            },
        };
        self.attempt(delivery).await;
    }

    /// Sends one attempt of a delivery, has it judged, and records it.
    async fn attempt(self, delivery: SendableDelivery) {
        let config_id = self.config.id.clone();
        let number = delivery.attempt_count + 1;
        let result = self
            .client
            .send(Outgoing {
                config: &self.config,
                hooks_id: &delivery.hooks_id,
                envelope: Bytes::from(delivery.envelope()),
            })
            .await;
        if result.succeeded() {
            tracing::debug!(
                hooks_id = delivery.hooks_id,
                config_id,
                hooks = delivery.hooks.len(),
                hook_ids = ?delivery.hooks.iter().map(|h| &h.hook_id).collect::<Vec<_>>(),
                attempt = number,
                status = result.status_code,
                "delivered"
            );
        } else {
            tracing::info!(
                hooks_id = delivery.hooks_id,
                config_id,
                hooks = delivery.hooks.len(),
                hook_ids = ?delivery.hooks.iter().map(|h| &h.hook_id).collect::<Vec<_>>(),
                attempt = number,
                status = result.status_code,
                error = result.error_kind.map(|k| k.as_str()),
                detail = result.error_message.as_deref(),
                "attempt failed"
            );
        }

        self.tell(TaskEvent::Finished {
            config_id,
            hooks_id: delivery.hooks_id,
            number,
            result,
        });
    }

    fn tell(&self, event: TaskEvent) {
        let _ = self.events.send(event);
    }
}
