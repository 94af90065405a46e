//! The delivery engine: turns queued hooks into HTTP deliveries, retries them, and records every
//! attempt. This file is its public API: the [`Engine`] handle, its [`EngineSettings`], and the
//! commands the handle sends to the dispatcher.
//!
//! One dispatcher task (`dispatcher.rs`) owns all scheduling state (per config, `config_state.rs`:
//! requests in flight, whether its queue has hooks, deliveries due for a retry, health). Attempts
//! run as separate tasks (`attempt.rs`) and talk back to it with messages, so a slow receiver
//! only ever occupies its own config's slots.
//!
//! Life of a delivery:
//! 1. The store signals `NewWork` for a config after an ingest commit.
//! 2. When the config has a free slot, an attempt task *claims* up to `maxHooksPerRequest` queued
//!    hooks of one event: the store turns them into a PENDING delivery with a new hooksId in one
//!    commit. There is no linger: batches form by themselves while earlier requests are in flight
//!    (and a busy config's claims start at least `BUSY_CLAIM_SPACING`, 5 ms, apart).
//! 3. The task POSTs the envelope ([`client`]; the format is in `docs/wire-format.md`) and reports
//!    the result. The dispatcher takes the [`verdict`] (the delivery's next status, the retry
//!    time from [`retry`], the config's health from [`health`]) and queues the record (the
//!    attempt, the delivery's new status, the health) with [`Store::record_attempt`], which
//!    returns at once: the store's writer commits it with its next group. The dispatcher then
//!    schedules the retry, if any, and gives the slot back without waiting for that commit; the
//!    retry (at least 80 ms away) is loaded only after it.
//! 4. A retry timer makes the delivery *ready*; it takes a slot like new work, with priority.
//!
//! 5. A test send (the `test` route) takes one of its config's slots first
//!    ([`Engine::reserve_test_slot`]): at most one per config at a time, and none while the
//!    config's `maxRequestsInFlight` is taken; it is sent outside the queue, never judged (health
//!    and the adaptive limit ignore it), and the service logs it as a test delivery.
//!
//! At start, PENDING and RETRYING deliveries and non-empty queues are read back from the store,
//! so nothing accepted is lost across restarts.
//!
//! Several nodes on one store (PostgreSQL): every attempt of an existing delivery first takes
//! its lease ([`Store::lease_delivery`]), so two nodes never send the same attempt; claims lease
//! what they create. Other nodes' work reaches this one as store signals (their ingests, config
//! changes) and through the *sweep* (`sweep.rs`, every `sweep_every`): due retries and expired
//! leases of a node that died. Each config is served by one live node, its home, with its whole
//! `maxRequestsInFlight` (`Membership::share`); health and the FAILING probe pacing are the
//! home's.
//!
//! [`Store::record_attempt`]: crate::store::Store::record_attempt
//! [`Store::lease_delivery`]: crate::store::Store::lease_delivery

mod attempt;
pub mod client;
pub mod concurrency;
mod config_state;
mod dispatcher;
pub mod health;
mod operational;
pub mod retry;
mod sweep;
pub mod verdict;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::model::{AttemptResult, WebhookConfig};
use crate::store::Store;
use client::{DeliveryClient, Outgoing};
use dispatcher::Dispatcher;
use health::HealthPolicy;

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub allow_private_targets: bool,
    pub health: HealthPolicy,
    /// The longest a graceful shutdown waits for attempts in flight.
    pub shutdown_grace: Duration,
    /// With a shared store: how often to look for due work no signal announces (other nodes'
    /// retries, leases expired with their node). `None`: this process is the only one.
    pub sweep_every: Option<Duration>,
    /// Certificates trusted as roots beside the webpki roots (tests only; empty by default).
    pub extra_root_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Whether operational events are turned into hooks (tests only turn it off, to show that
    /// what the outbox holds survives a crash).
    pub produce_operational_events: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            allow_private_targets: false,
            health: HealthPolicy::default(),
            shutdown_grace: Duration::from_secs(30),
            sweep_every: None,
            extra_root_certs: Vec::new(),
            produce_operational_events: true,
        }
    }
}

/// A cheap handle to the running engine.
#[derive(Clone)]
pub struct Engine {
    commands: mpsc::UnboundedSender<Command>,
    client: DeliveryClient,
}

/// What the handle asks of the dispatcher.
enum Command {
    ConfigChanged(Box<WebhookConfig>),
    ConfigDeleted(String),
    DeliveryCreated {
        config_id: String,
        hooks_id: String,
    },
    /// A test send asks for a slot of its config.
    ReserveTestSlot {
        config_id: String,
        reply: oneshot::Sender<Result<(), TestSlotRefused>>,
    },
    /// A test send ended (its [`TestSlot`] was dropped): its slot is free.
    TestSlotReleased(String),
    Shutdown(oneshot::Sender<()>),
}

/// Why a test send got no slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestSlotRefused {
    /// Another test send to this config is under way: one at a time, so tests never hold more
    /// than one of a config's slots.
    #[error("a test send to this config is already under way")]
    TestUnderway,
    /// Every slot (this node's share of `maxRequestsInFlight`) is taken by deliveries.
    #[error("maxRequestsInFlight is {limit} and every slot is taken by deliveries")]
    Full { limit: u32 },
    #[error("the delivery engine is shutting down")]
    ShuttingDown,
}

/// One of a config's slots, held by a test send. Dropping it (the send ended, or its caller went
/// away) gives the slot back, so a slot cannot leak whatever path the request takes.
pub struct TestSlot {
    commands: mpsc::UnboundedSender<Command>,
    config_id: String,
}

impl Drop for TestSlot {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::TestSlotReleased(std::mem::take(
            &mut self.config_id,
        )));
    }
}

impl Engine {
    /// Loads configs and open work from the store and starts dispatching.
    pub async fn start(
        store: Arc<dyn Store>,
        settings: EngineSettings,
    ) -> anyhow::Result<(Engine, tokio::task::JoinHandle<()>)> {
        let client =
            DeliveryClient::new(settings.allow_private_targets, &settings.extra_root_certs)?;
        let signals = store
            .take_signals()
            .ok_or_else(|| anyhow::anyhow!("the store's signals are already taken"))?;
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();

        let mut dispatcher = Dispatcher::new(store.clone(), client.clone(), settings, events_tx);
        dispatcher.load().await?;
        // Operational events: drained at start (what a crash left) and on every signal; the
        // task lives as long as the dispatcher.
        let outbox = dispatcher
            .settings
            .produce_operational_events
            .then(|| tokio::spawn(operational::run(store, dispatcher.outbox.clone())));
        let handle = tokio::spawn(async move {
            dispatcher.run(commands_rx, events_rx, signals).await;
            if let Some(outbox) = outbox {
                outbox.abort();
            }
        });
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

    /// Takes one of the config's slots for a test send, or says why not (at once: a test send
    /// never waits for a slot).
    pub async fn reserve_test_slot(
        &self,
        config: &WebhookConfig,
    ) -> Result<TestSlot, TestSlotRefused> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::ReserveTestSlot {
                config_id: config.id.clone(),
                reply,
            })
            .map_err(|_| TestSlotRefused::ShuttingDown)?;
        // A dispatcher gone before answering has stopped: so has the engine.
        answer.await.map_err(|_| TestSlotRefused::ShuttingDown)??;
        Ok(TestSlot {
            commands: self.commands.clone(),
            config_id: config.id.clone(),
        })
    }

    /// One attempt outside the queue (the `test` route), in the slot `_slot` holds: not judged,
    /// so neither the config's health nor its adaptive limit hears of it. The caller logs it.
    pub async fn send_test(
        &self,
        _slot: &TestSlot,
        config: &WebhookConfig,
        hooks_id: &str,
        envelope: Vec<u8>,
    ) -> AttemptResult {
        self.client
            .send(Outgoing {
                config,
                hooks_id,
                envelope: Bytes::from(envelope),
                test: true,
            })
            .await
    }

    /// Stops starting attempts and waits (up to the grace period) for those in flight to end and
    /// their records to be queued (`Store::flush` or `Store::close` commits them). What is left
    /// is retried after the next start.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
