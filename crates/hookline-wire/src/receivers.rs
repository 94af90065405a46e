//! Writing a receiver: what an endpoint that hookline delivers to should do.
//!
//! hookline POSTs one [envelope](crate::Envelope) per delivery. A receiver:
//!
//! 1. **Checks who sent it.** `X-Toast-Webhook-Signature` carries the static signature entered in
//!    the webhook config: compare it with [`verify_static_signature`](crate::verify_static_signature)
//!    (constant time). If the config has a `signingSecret` (`whsec_...`), the request also carries
//!    the [Standard Webhooks](https://www.standardwebhooks.com/) headers `webhook-id` (the
//!    `hooksId`), `webhook-timestamp` and `webhook-signature`: check them with
//!    [`standard_webhooks::verify`](crate::standard_webhooks::verify), which also refuses
//!    timestamps more than five minutes away (replays). During a secret rotation the header holds
//!    two signatures, one per key; `verify` accepts the message if either matches the secret you
//!    hold, so receivers switch to the new secret whenever they like within the grace period.
//! 2. **Reads it** with [`Envelope::parse`](crate::Envelope::parse) (and
//!    [`Envelope::typed_hooks`](crate::Envelope::typed_hooks) for typed hooks; unknown fields are
//!    kept, so a newer hookline does not break an older receiver).
//! 3. **Deduplicates on `hookId`.** Delivery is at-least-once: a retry, a redelivery or a replay
//!    carries the same hooks again (a retry also the same `hooksId`). Process each `hookId` once.
//! 4. **Answers 2xx quickly**, once the hooks are safely stored. Anything else (another status, no
//!    answer within the config's `timeoutMs`) is a failed attempt, retried on the config's schedule;
//!    429 or 503 with `Retry-After` stretches the next delay.
//!
//! For development, `hookline listen --port 9000 --signature <sig>` is such a receiver: it checks
//! the signature and pretty-prints every envelope (`--fail-rate 0.5` answers half with 500).
//!
//! # Example: an axum handler
//!
//! ```rust,no_run
//! use std::collections::HashSet;
//! use std::sync::{Arc, Mutex};
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use axum::body::Bytes;
//! use axum::extract::State;
//! use axum::http::{HeaderMap, StatusCode};
//! use axum::routing::post;
//! use axum::Router;
//! use hookline_wire::{Envelope, SIGNATURE_HEADER, standard_webhooks, verify_static_signature};
//!
//! #[derive(Clone)]
//! struct Receiver {
//!     /// The static signature entered in the webhook config.
//!     signature: String,
//!     /// The config's `signingSecret`, if it has one.
//!     signing_secret: Option<String>,
//!     /// hookIds already processed. A real receiver keeps them in its database, in the same
//!     /// transaction that stores the hook.
//!     seen: Arc<Mutex<HashSet<String>>>,
//! }
//!
//! fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
//!     headers.get(name)?.to_str().ok()
//! }
//!
//! /// Checks the Standard Webhooks headers against the secret.
//! fn signed_by(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
//!     let (Some(id), Some(timestamp), Some(signatures)) = (
//!         header(headers, standard_webhooks::ID_HEADER),
//!         header(headers, standard_webhooks::TIMESTAMP_HEADER).and_then(|t| t.parse().ok()),
//!         header(headers, standard_webhooks::SIGNATURE_HEADER),
//!     ) else {
//!         return false;
//!     };
//!     let now = SystemTime::now()
//!         .duration_since(UNIX_EPOCH)
//!         .map_or(0, |d| d.as_secs() as i64);
//!     standard_webhooks::verify(
//!         secret,
//!         id,
//!         timestamp,
//!         body,
//!         signatures,
//!         now,
//!         standard_webhooks::DEFAULT_TOLERANCE_SECS,
//!     )
//!     .is_ok()
//! }
//!
//! async fn hooks(State(rx): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
//!     let static_ok = header(&headers, SIGNATURE_HEADER)
//!         .is_some_and(|got| verify_static_signature(got, &rx.signature));
//!     if !static_ok {
//!         return StatusCode::UNAUTHORIZED;
//!     }
//!     if let Some(secret) = &rx.signing_secret
//!         && !signed_by(secret, &headers, &body)
//!     {
//!         return StatusCode::UNAUTHORIZED;
//!     }
//!     let Ok(envelope) = Envelope::parse(&body) else {
//!         return StatusCode::BAD_REQUEST;
//!     };
//!     for hook in &envelope.hooks {
//!         // `Envelope::parse` checked that every hook has a string hookId.
//!         let Some(hook_id) = hook["hookId"].as_str() else { continue };
//!         let mut seen = rx.seen.lock().unwrap_or_else(|e| e.into_inner());
//!         if !seen.insert(hook_id.to_owned()) {
//!             continue; // already processed: a retry, redelivery or replay
//!         }
//!         println!("{} {} {hook}", envelope.event, envelope.hooks_id);
//!     }
//!     StatusCode::NO_CONTENT
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let receiver = Receiver {
//!         signature: "my-shared-signature".into(),
//!         signing_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
//!         seen: Arc::default(),
//!     };
//!     let app = Router::new().route("/hooks", post(hooks)).with_state(receiver);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//!     axum::serve(listener, app).await
//! }
//! ```
