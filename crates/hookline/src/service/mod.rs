//! The operations hookline offers, whichever front end asks: the HTTP API (`api/`), the dashboard
//! (`dashboard/`) and, through the API, the CLI. Typed in and out; front ends only translate
//! (HTTP bodies, HTML forms) and render.
//!
//! This is the only place that pairs a store write with the engine's notification
//! (`Engine::config_changed`, `config_deleted`, `delivery_created`): a front end cannot forget
//! it. Rules that need no I/O (what a config may be set to, how inputs read) are pure functions
//! beside the operations: [`config_input`], [`input`].
//!
//! One file per resource: [`app_keys`], [`configs`] (with [`signing_secrets`] and the test
//! send), [`deliveries`] (log, redeliver, replay, chart), [`events`] (ingest), [`sessions`]
//! (the dashboard's sign-ins), [`portal_links`] (links that open a dashboard session), [`traces`] (the trace of a hook).

pub mod app_keys;
pub mod config_input;
pub mod configs;
pub mod credentials;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod input;
pub mod portal_links;
pub mod sessions;
pub mod signing_secrets;
pub mod traces;
pub mod verified_secrets;

use std::sync::Arc;

use crate::engine::Engine;
use crate::store::{Store, StoreStats};

pub use config_input::ConfigInput;
pub use error::{Error, ErrorKind, Result};
use verified_secrets::VerifiedSecrets;

/// Bounds on what one tenant may hold (server flags).
#[derive(Debug, Clone, Copy)]
pub struct TenantLimits {
    /// Webhook configs per app key: every hook of an event is queued once per subscribed config,
    /// so this bounds the fan-out one tenant can ask of the store.
    pub max_configs_per_app_key: u32,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            max_configs_per_app_key: 100,
        }
    }
}

/// The store and the engine behind every operation, the tenant limits, and the secret keys
/// verified recently.
pub struct Service {
    store: Arc<dyn Store>,
    engine: Engine,
    limits: TenantLimits,
    verified_secrets: Arc<VerifiedSecrets>,
}

impl Service {
    pub fn new(store: Arc<dyn Store>, engine: Engine, limits: TenantLimits) -> Self {
        Service {
            store,
            engine,
            limits,
            verified_secrets: Arc::new(VerifiedSecrets::default()),
        }
    }

    /// Readiness: the store answers.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    /// Counts of stored state for `/metrics`.
    pub async fn stats(&self) -> Result<StoreStats> {
        Ok(self.store.stats().await?)
    }

    /// The queue per app key (the opt-in per-tenant metrics).
    pub async fn queue_by_app_key(&self) -> Result<Vec<crate::store::AppKeyQueue>> {
        Ok(self.store.queue_by_app_key().await?)
    }
}
