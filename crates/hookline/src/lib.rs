//! hookline: webhook delivery for messaging platforms.
//!
//! Start with `ARCHITECTURE.md` at the repository root: it follows one event from ingest to the
//! receiver through these modules.
//!
//! - [`api`]: the HTTP API (thin handlers); [`dashboard`]: the HTML pages at `/`.
//! - [`store`]: durable state behind the [`store::Store`] trait; SQL lives only there.
//! - [`engine`]: dispatching, retries ([`engine::retry`]), health, the HTTP client.
//! - [`model`]: the records they share.
//! - [`serve`] and [`cli`]: the binary's commands.

pub mod api;
pub mod bench;
pub mod cli;
pub mod dashboard;
pub mod duration;
pub mod engine;
pub mod filter;
pub mod listener;
pub mod metrics;
pub mod model;
pub mod operational;
pub mod retention;
pub mod serve;
pub mod service;
pub mod store;
pub mod throttle;
