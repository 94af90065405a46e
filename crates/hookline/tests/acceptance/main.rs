//! Black-box acceptance tests of `hookline`.
//!
//! Every test starts its own `hookline serve` process (own temp data dir, own port) and its own
//! receivers (real HTTP servers on 127.0.0.1), and talks to the server only over its public HTTP API.
//! Synchronisation is by awaiting the receivers' notifications or by polling the API with a deadline,
//! never by sleeping.

mod support;

mod auth_throttle;
mod bad_input;
mod batching;
mod catalogue;
mod cli;
mod cluster;
mod concurrency;
mod crash;
mod crash_loop;
mod dashboard;
mod ecosystem;
mod graceful;
mod health;
mod hostile_input;
mod hostile_load;
mod idempotency;
mod isolation;
mod management;
mod operational_events;
mod operator_cli;
mod ordering;
mod portal;
mod receivers;
mod retention;
mod retries;
mod ssrf;
mod store_faults;
mod tenancy;
mod test_sends;
mod trace;
mod wire_events;
