//! The dispatcher: the one task that owns the scheduling state and decides what runs when. Its
//! loop takes the handle's commands, the store's signals and the tasks' events, fires retry and
//! wake-up timers, and `pump`s each config whose state changed: due retries first, then a claim
//! for its free slots, never more than its share of `maxRequestsInFlight`. It never awaits I/O:
//! attempts ([`attempt`](super::attempt)), reloads and sweeps ([`sweep`](super::sweep)) run as
//! tasks and answer with a [`TaskEvent`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::model::{
    AttemptOutcome, AttemptResult, DeliveryStatus, HealthState, Millis, WebhookConfig, now_millis,
};
use crate::store::{Membership, OpenDelivery, Store, StoreSignal};

use super::attempt::{AttemptTask, Job};
use super::client::DeliveryClient;
use super::config_state::ConfigState;
use super::sweep::MEMBERSHIP_EVERY;
use super::{Command, EngineSettings, TestSlotRefused, retry, verdict};

/// How long to wait before trying again after the store refused a claim or a load.
pub(super) const STORE_BACKOFF: Duration = Duration::from_secs(1);
/// How long to wait before claiming again when another transaction (another node's claim, a
/// config's deletion) held every queued row.
const CONTENDED_BACKOFF: Duration = Duration::from_millis(20);

/// Messages to the dispatcher from the tasks it starts: attempts, reloads and sweeps, and the
/// shutdown grace timer.
pub(super) enum TaskEvent {
    /// A claim that reserved `asked` slots produced `got` deliveries (each goes on in one of
    /// those slots); the other slots are given back. `drained`: the store found the queue
    /// empty, as of the config's `work_epoch` when the claim started.
    Claimed {
        config_id: String,
        asked: u32,
        got: u32,
        drained: bool,
        contended: bool,
        /// What is left queued waits for an ordering key to be released (`Claim::held_by_order`).
        held_by_order: bool,
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
    /// This node's place among the live nodes, read again (`None`: the read failed).
    Membership(Option<Membership>),
    /// The configs whose home this node became, and every config as stored.
    HomesLoaded {
        gained: Vec<String>,
        configs: Vec<WebhookConfig>,
    },
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
        /// From sending the request to its answer (the adaptive limit's latency signal).
        latency: Duration,
        /// When the delivery's oldest hook was accepted (where `deliveryDeadline` counts from).
        accepted_at: Option<Millis>,
    },
    /// A delivery was not sent: its config's `deliveryDeadline` had passed when its attempt was
    /// to start. The dispatcher queues it as EXPIRED and gives the slot back.
    Expired { config_id: String, hooks_id: String },
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    seq: u64,
    config_id: String,
    /// `None`: just wake the config (a FAILING config's next claim, a store back-off).
    hooks_id: Option<String>,
}

pub(super) struct Dispatcher {
    pub(super) store: Arc<dyn Store>,
    client: DeliveryClient,
    pub(super) settings: EngineSettings,
    pub(super) configs: HashMap<String, ConfigState>,
    timers: BinaryHeap<Reverse<Timer>>,
    timer_seq: u64,
    pub(super) dirty: HashSet<String>,
    pub(super) events_tx: mpsc::UnboundedSender<TaskEvent>,
    total_in_flight: usize,
    pub(super) draining: bool,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    /// Which configs this node serves, and its share of their limits (see `Membership::share`).
    pub(super) membership: Membership,
    /// A read of the membership is under way: the next waits for it, so answers never arrive
    /// out of order (an older one would bring a dead node back for a second).
    pub(super) membership_reading: bool,
    /// A change was signalled while a read was under way: read again once it answers.
    pub(super) membership_again: bool,
    /// Configs with a test send under way (one each), and whether it took a slot of the config's
    /// state (`false`: the config was not known here yet, so there was no count to take it from).
    test_sends: HashMap<String, bool>,
    /// Wakes the task that turns operational events into hooks (`operational.rs`).
    pub(super) outbox: Arc<tokio::sync::Notify>,
}

pub(super) fn instant_at(at: Millis, now: Millis) -> Instant {
    Instant::now() + Duration::from_millis(at.saturating_sub(now).max(0) as u64)
}

impl Dispatcher {
    pub(super) fn new(
        store: Arc<dyn Store>,
        client: DeliveryClient,
        settings: EngineSettings,
        events_tx: mpsc::UnboundedSender<TaskEvent>,
    ) -> Self {
        Dispatcher {
            store,
            client,
            settings,
            configs: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            dirty: HashSet::new(),
            events_tx,
            total_in_flight: 0,
            draining: false,
            shutdown_waiters: Vec::new(),
            membership: Membership::alone(),
            membership_reading: false,
            membership_again: false,
            test_sends: HashMap::new(),
            outbox: Arc::default(),
        }
    }

    pub(super) async fn load(&mut self) -> anyhow::Result<()> {
        self.membership = self.store.membership().await?;
        for config in self.store.all_configs().await? {
            self.configs
                .insert(config.id.clone(), ConfigState::new(config));
        }
        let now = now_millis();
        let open = self.store.open_deliveries().await?;
        let resumed = open.len();
        for delivery in open {
            // Another node's config (this one is not its home): its home sends it.
            if self.ceiling(&delivery.config_id) == 0 {
                continue;
            }
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

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<TaskEvent>,
        mut signals: mpsc::UnboundedReceiver<StoreSignal>,
    ) {
        let mut signals_open = true;
        let mut commands_open = true;
        let ticker = |every| {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        };
        let mut sweep = self.settings.sweep_every.map(ticker);
        // A shared store's live nodes, read every second: which configs this node serves
        // follows from them (see `sweep::MEMBERSHIP_EVERY`).
        let mut membership = self.settings.sweep_every.map(|_| ticker(MEMBERSHIP_EVERY));
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
                _ = tick_opt(&mut membership), if membership.is_some() => {
                    self.refresh_membership()
                }
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

    pub(super) fn schedule(&mut self, config_id: &str, hooks_id: String, at: Instant) {
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
                if !st.ready.contains(&hooks_id) {
                    st.ready.push_back(hooks_id);
                }
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
            } => {
                // Another node's config (this one is not its home): the store told the others
                // (PostgreSQL: `hookline_freed`), and its home's sweep finds it at once.
                if self.ceiling(&config_id) > 0 {
                    self.schedule(&config_id, hooks_id, Instant::now())
                }
            }
            Command::ReserveTestSlot { config_id, reply } => {
                let answer = self.reserve_test_slot(config_id.clone());
                if let Err(Ok(())) = reply.send(answer) {
                    // The caller went away before reading the grant: no `TestSlot` exists to
                    // give the slot back, so it goes back now.
                    self.release_test_slot(&config_id);
                }
            }
            Command::TestSlotReleased(config_id) => self.release_test_slot(&config_id),
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
    pub(super) fn apply_config(&mut self, config: WebhookConfig) {
        let id = config.id.clone();
        match self.configs.get_mut(&id) {
            Some(st) => st.update(config),
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
            StoreSignal::DeliveriesWaiting { config_id } => {
                if self.ceiling(&config_id) > 0 && !self.draining {
                    self.sweep_configs(Millis::MAX, vec![config_id]);
                }
            }
            StoreSignal::NodesChanged => self.refresh_membership(),
            StoreSignal::OperationalEvents => self.outbox.notify_one(),
            StoreSignal::Resync => {
                self.outbox.notify_one();
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

    /// A test send takes a slot like an attempt: within this node's share of the config's
    /// `maxRequestsInFlight` (the ceiling, not the adaptive limit, which only paces deliveries),
    /// and at most one test per config at a time, so tests hold at most one slot and a burst of
    /// them opens at most one connection. A node whose share is 0 (not the config's home) still
    /// allows that one: the test route answers on whichever node the caller reached (the
    /// cluster may then be over the limit by a test on each node the caller reaches, for the
    /// length of a test).
    fn reserve_test_slot(&mut self, config_id: String) -> Result<(), TestSlotRefused> {
        if self.draining {
            return Err(TestSlotRefused::ShuttingDown);
        }
        if self.test_sends.contains_key(&config_id) {
            return Err(TestSlotRefused::TestUnderway);
        }
        let membership = &self.membership;
        let counted = match self.configs.get_mut(&config_id) {
            Some(st) => {
                let limit = st.config.max_requests_in_flight.max(1);
                let share = membership.share(limit, &config_id).max(1);
                if st.in_flight >= share {
                    return Err(TestSlotRefused::Full { limit });
                }
                st.in_flight += 1;
                true
            }
            // Not known here yet (created on another node, its signal still on the way): it has
            // no deliveries in flight on this node to count against.
            None => false,
        };
        self.total_in_flight += 1;
        self.test_sends.insert(config_id, counted);
        Ok(())
    }

    fn release_test_slot(&mut self, config_id: &str) {
        match self.test_sends.remove(config_id) {
            Some(true) => self.release(config_id),
            Some(false) => self.total_in_flight = self.total_in_flight.saturating_sub(1),
            None => {}
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
                held_by_order,
                epoch,
            } => {
                crate::metrics::claim_finished(got, contended);
                if let Some(st) = self.configs.get_mut(&config_id) {
                    st.claiming = false;
                    if got == asked && !drained {
                        // Every slot asked for got a batch: the queue had at least as much work
                        // as the limit let through.
                        st.concurrency.saturated();
                    }
                    if (drained || held_by_order) && st.work_epoch == epoch {
                        // Held by order: the end of one of the config's deliveries (a record
                        // with `wakes_queue`, committed) or new work signals the queue again.
                        st.queued = false;
                    } else if got == 0 && contended {
                        // Another transaction holds the rows: look again in a moment.
                        let at = Instant::now() + CONTENDED_BACKOFF;
                        st.claim_not_before = Some(at);
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
            TaskEvent::ConfigLoaded { config_id, config } => {
                self.on_config_loaded(config_id, config)
            }
            TaskEvent::ConfigLoadFailed { config_id } => self.on_config_load_failed(config_id),
            TaskEvent::ConfigsLoaded(configs) => self.on_configs_loaded(configs),
            TaskEvent::Membership(membership) => self.on_membership(membership),
            TaskEvent::HomesLoaded { gained, configs } => self.on_homes_loaded(gained, configs),
            TaskEvent::Swept(found) => self.on_swept(found),
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
                    st.claim_not_before = Some(at);
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
            TaskEvent::Expired {
                config_id,
                hooks_id,
            } => {
                crate::metrics::delivery_expired_unsent();
                self.store.expire_delivery(hooks_id);
                self.release(&config_id);
            }
            TaskEvent::Finished {
                config_id,
                hooks_id,
                number,
                result,
                latency,
                accepted_at,
            } => {
                let ceiling = self.ceiling(&config_id);
                // An answer that comes back after the config's home moved away teaches this
                // node's limit nothing (its ceiling is 0 now; the limit starts again from the
                // default when the config comes back).
                if ceiling > 0
                    && let Some(st) = self.configs.get_mut(&config_id)
                {
                    st.concurrency
                        .answered(latency, verdict::load(&result), ceiling);
                }
                let outcome = self.judge(
                    &config_id,
                    hooks_id,
                    number,
                    result,
                    accepted_at,
                    ceiling > 0,
                );
                let retry_at = outcome
                    .next_attempt_at
                    .filter(|_| outcome.new_status == DeliveryStatus::Retrying)
                    .map(|at| instant_at(at, now_millis()));
                let hooks_id = outcome.hooks_id.clone();
                crate::metrics::attempt_finished(&outcome.result, outcome.new_status);
                if crate::metrics::by_app_key()
                    && let Some(st) = self.configs.get(&config_id)
                {
                    crate::metrics::app_key_attempt_finished(
                        &st.config.app_key,
                        &outcome.result,
                        outcome.new_status,
                    );
                }
                // Queued, not awaited: the writer commits it with its neighbours, and the retry
                // (at least 80 ms away: the shortest delay, 100 ms, less its jitter) is loaded
                // only after that commit.
                self.store.record_attempt(outcome);
                // The retry is this node's while it serves the config; otherwise its home is
                // told, after the record, and schedules it.
                if let Some(at) = retry_at {
                    if ceiling > 0 {
                        self.schedule(&config_id, hooks_id, at);
                    } else {
                        self.store.tell_home(config_id.clone());
                    }
                }
                self.release(&config_id);
            }
        }
    }

    /// Applies the verdict on an attempt's result: the config's new health and what it means for
    /// scheduling; returns the record to queue (the delivery's next status, its retry time, the
    /// health when worth writing).
    fn judge(
        &mut self,
        config_id: &str,
        hooks_id: String,
        number: u32,
        result: AttemptResult,
        accepted_at: Option<Millis>,
        serving: bool,
    ) -> AttemptOutcome {
        let now = now_millis();
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
                wakes_queue: false,
                split_by_key: false,
            };
        };
        let bounds = verdict::RetryBounds {
            schedule: &st.config.retry_schedule,
            deadline: verdict::deadline(accepted_at, st.config.delivery_deadline),
        };
        let verdict = verdict::decide(
            &result,
            &st.health,
            bounds,
            number,
            &self.settings.health,
            now,
            retry::random_jitter,
        );
        // An attempt that ends after the config's home moved away (`serving` false) leaves the
        // health alone: the new home took the stored health and judges it from its own attempts.
        let health = if serving {
            st.judged(verdict.health)
        } else {
            None
        };
        self.dirty.insert(config_id.to_owned());
        let new_status = verdict.delivery.status();
        AttemptOutcome {
            hooks_id,
            config_id: config_id.to_owned(),
            number,
            result,
            new_status,
            next_attempt_at: verdict.delivery.next_attempt_at(),
            health,
            wakes_queue: st.config.ordering_key.is_some() && !new_status.is_open(),
            split_by_key: st.config.ordering_key.is_some()
                && new_status == DeliveryStatus::Retrying,
        }
    }

    /// This node's share of the config's `maxRequestsInFlight`: the most its adaptive limit may
    /// grow to (the live nodes' shares add up to the config's ceiling).
    fn ceiling(&self, config_id: &str) -> u32 {
        self.configs.get(config_id).map_or(0, |st| {
            self.membership
                .share(st.config.max_requests_in_flight.max(1), config_id)
        })
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
        let membership = &self.membership;
        let Some(st) = self.configs.get_mut(config_id) else {
            return;
        };
        if st.paused() || st.reloading > 0 {
            return;
        }
        // This node's share of the config's ceiling: all of it on the config's home, 0 elsewhere
        // (`Membership::share`). A node whose share is 0 leaves the config to its home.
        // Within it, the adaptive limit: as many as the receiver shows it takes.
        let ceiling = membership.share(st.config.max_requests_in_flight.max(1), config_id);
        let limit = st.concurrency.current(ceiling);
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
            let now = Instant::now();
            if let Some(at) = st.claim_not_before {
                if at > now {
                    wake = Some(at);
                    break;
                }
                st.claim_not_before = None;
            }
            if st.health.state == HealthState::Failing {
                if st.in_flight > 0 {
                    break;
                }
                if let Some(at) = st.next_claim_at
                    && at > now
                {
                    wake = Some(at);
                    break;
                }
                st.next_claim_at = Some(now + st.probe_interval());
            } else if let Some(at) = st.claim_paced_until(now) {
                // A busy config's claims are spaced (`BUSY_CLAIM_SPACING`). One wake-up per
                // paced time: every slot freed meanwhile comes through here again, and each
                // would push a timer of its own.
                if st.paced_wake != Some(at) {
                    st.paced_wake = Some(at);
                    wake = Some(at);
                }
                break;
            }
            // One claim fills every free slot (a FAILING config probes with one batch), so a
            // config's claims cost one commit, not one per batch.
            let slots = if st.health.state == HealthState::Failing {
                1
            } else {
                limit - st.in_flight
            };
            st.claiming = true;
            st.last_claim_at = Some(now);
            st.in_flight += slots;
            jobs.push(Job::Claim {
                slots,
                epoch: st.work_epoch,
            });
        }
        if st.in_flight >= limit && !st.ready.is_empty() {
            // Retries are waiting for a slot: the limit, not the work, bounds this config now.
            st.concurrency.saturated();
        }
        let config = st.config.clone();
        let current = st.published.subscribe();
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
                current: current.clone(),
            };
            tokio::spawn(task.run(job));
        }
    }
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
