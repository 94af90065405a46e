//! Domain types shared by the API, the store and the delivery engine.
//!
//! These are hookline's own records (app keys, webhook configs, deliveries, attempts); the wire
//! shapes of hooks and envelopes live in `hookline-wire`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use hookline_wire::{Event, Product};
use hyper::header::HeaderValue;

/// Milliseconds since the Unix epoch, UTC. Every stored time uses it.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis() + TEST_CLOCK_OFFSET_MS.load(Ordering::Relaxed)
}

/// Tests only: how far this process's clock pretends to be off (see
/// [`set_test_clock_offset_ms`]); 0 otherwise.
static TEST_CLOCK_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Tests only (`serve`'s hidden `HOOKLINE_TEST_CLOCK_OFFSET_MS`): makes every reading of this
/// process's clock off by `ms`, as on a machine whose clock is wrong, so that a cluster test's
/// skewed node is skewed everywhere (engine, API, store) and its parts agree with each other,
/// as they would on such a machine.
pub fn set_test_clock_offset_ms(ms: i64) {
    TEST_CLOCK_OFFSET_MS.store(ms, Ordering::Relaxed);
}

/// RFC 3339 rendering for API responses.
pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A dashboard session as stored: found by the SHA-256 of its id (the cookie's value), never
/// the id itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: String,
    pub app_key: String,
    /// The hash of the secret key signed in with: the session ends when it is no longer the app
    /// key's (a rotation).
    pub secret_hash: String,
    /// The form token of this session (CSRF).
    pub csrf: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// How it was opened: a sign-in, or a portal link (which a rotation of the secret key ends
    /// even within a grace period, and which may be read-only).
    pub origin: SessionOrigin,
}

/// How a dashboard session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOrigin {
    /// Signed in with the app key and its secret key.
    SignIn,
    /// Opened by a portal link; `read_only`: it may look at every page and change nothing.
    PortalLink { read_only: bool },
}

impl SessionOrigin {
    pub fn is_portal(self) -> bool {
        matches!(self, SessionOrigin::PortalLink { .. })
    }

    pub fn is_read_only(self) -> bool {
        matches!(self, SessionOrigin::PortalLink { read_only: true })
    }

    /// The stored columns `(portal, read_only)`.
    pub fn columns(self) -> (bool, bool) {
        (self.is_portal(), self.is_read_only())
    }

    /// From the stored columns `(portal, read_only)`.
    pub fn from_columns(portal: bool, read_only: bool) -> Self {
        if portal {
            SessionOrigin::PortalLink { read_only }
        } else {
            SessionOrigin::SignIn
        }
    }
}

/// A portal link as stored: found by the SHA-256 of its token (the last part of its URL), never
/// the token itself. The secret key's hash is the app key's when the link was made: the session
/// it opens is checked against it like a signed-in one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalLinkRecord {
    pub token_hash: String,
    pub app_key: String,
    pub read_only: bool,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// A session about to be opened by a portal link: whose it is (the app key, the secret key's
/// hash, read-only or not) the link says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    pub id_hash: String,
    pub csrf: String,
    pub created_at: Millis,
    pub expires_at: Millis,
}

impl SessionStart {
    pub fn into_record(
        self,
        app_key: String,
        secret_hash: String,
        origin: SessionOrigin,
    ) -> SessionRecord {
        SessionRecord {
            id_hash: self.id_hash,
            app_key,
            secret_hash,
            csrf: self.csrf,
            created_at: self.created_at,
            expires_at: self.expires_at,
            origin,
        }
    }
}

/// What opening a portal link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalRedemption {
    /// The link was live: it is used up, and the session is stored (for this app key).
    Opened { app_key: String, read_only: bool },
    /// Used, expired, revoked by a rotation, or never made: nothing was opened.
    Gone,
}

#[derive(Debug, Clone)]
pub struct AppKeyRecord {
    pub app_key: String,
    pub name: String,
    pub created_at: Millis,
    /// Until when the secret key replaced by the last rotation still works (its grace period);
    /// `None` when it stopped at once or no rotation happened.
    pub previous_secret_key_expires_at: Option<Millis>,
}

/// A webhook config as stored. `signing_secret` is write-only in the API.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub id: String,
    pub app_key: String,
    pub product: Product,
    pub events: Vec<Event>,
    pub url: String,
    pub signature: String,
    pub signing_secret: Option<String>,
    /// After a rotation: the replaced signing secret, which keeps signing beside the new one
    /// until it expires (write-only in the API too).
    pub previous_signing_secret: Option<PreviousSecret>,
    pub enabled: bool,
    pub description: String,
    pub max_hooks_per_request: u32,
    pub max_requests_in_flight: u32,
    pub timeout_ms: u32,
    /// Delays before attempts 2, 3, ... (jitter is applied when scheduling, not stored).
    pub retry_schedule: Vec<Duration>,
    /// Extra request headers sent on every attempt, name → value, in name order (names as the
    /// customer spelled them; checked by `service::config_input::parse_headers`).
    pub headers: Vec<(String, String)>,
    /// Which hooks this config receives (`None`: every hook of its events); evaluated at
    /// ingest's fan-out (see `crate::filter`).
    pub filter: Option<crate::filter::Filter>,
    /// `deliveryDeadline`: no attempt starts later than this after a delivery's oldest hook was
    /// accepted (`None`: no deadline); see `engine::verdict`.
    pub delivery_deadline: Option<Duration>,
    /// `orderingKey`: the top-level hook field whose value orders this config's deliveries
    /// (`None`: unordered); see [`ordering_value`] and the claims in `store`.
    pub ordering_key: Option<String>,
    pub health: Health,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A signing secret that was rotated out and still signs until `expires_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_at: Millis,
}

impl WebhookConfig {
    /// A config `c` of app key `a` for unit tests: SMS `UNSUBSCRIBE`, one hook per request, one
    /// request at a time, no URL, no retries.
    #[cfg(test)]
    pub(crate) fn for_tests() -> WebhookConfig {
        WebhookConfig {
            id: "c".into(),
            app_key: "a".into(),
            product: hookline_wire::Product::Sms,
            events: vec![hookline_wire::Event::Unsubscribe],
            url: String::new(),
            signature: "s".into(),
            signing_secret: None,
            previous_signing_secret: None,
            enabled: true,
            description: String::new(),
            max_hooks_per_request: 1,
            max_requests_in_flight: 1,
            // Generous: a loaded CI machine can stall a task for seconds.
            timeout_ms: 30_000,
            retry_schedule: Vec::new(),
            headers: Vec::new(),
            filter: None,
            delivery_deadline: None,
            ordering_key: None,
            health: Health::default(),
            created_at: 0,
            updated_at: 0,
        }
    }

    /// The Standard Webhooks secrets that sign a delivery at `now`: the current one, then the
    /// previous one while its grace period lasts. Empty when the config has no signing secret.
    pub fn signing_secrets(&self, now: Millis) -> Vec<&str> {
        let mut secrets = Vec::new();
        if let Some(current) = &self.signing_secret {
            secrets.push(current.as_str());
            if let Some(previous) = &self.previous_signing_secret
                && previous.expires_at > now
            {
                secrets.push(previous.secret.as_str());
            }
        }
        secrets
    }

    pub fn subscribes_to(&self, event: Event) -> bool {
        self.events.contains(&event)
    }

    /// Total attempts a delivery to this config gets before it is FAILED.
    pub fn max_attempts(&self) -> u32 {
        self.retry_schedule.len() as u32 + 1
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Healthy,
    Failing,
    Disabled,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "HEALTHY",
            HealthState::Failing => "FAILING",
            HealthState::Disabled => "DISABLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HEALTHY" => Some(HealthState::Healthy),
            "FAILING" => Some(HealthState::Failing),
            "DISABLED" => Some(HealthState::Disabled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub state: HealthState,
    pub consecutive_failures: u32,
    pub last_success_at: Option<Millis>,
    pub last_failure_at: Option<Millis>,
    /// Start of the current unbroken run of failures.
    pub failing_since: Option<Millis>,
    pub disabled_reason: Option<String>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: HealthState::Healthy,
            consecutive_failures: 0,
            last_success_at: None,
            last_failure_at: None,
            failing_since: None,
            disabled_reason: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Pending,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
    /// Its config's `deliveryDeadline` passed before the next attempt could start.
    Expired,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Retrying,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
        DeliveryStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Retrying => "RETRYING",
            DeliveryStatus::Succeeded => "SUCCEEDED",
            DeliveryStatus::Failed => "FAILED",
            DeliveryStatus::Cancelled => "CANCELLED",
            DeliveryStatus::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Still owned by the engine: it will be attempted again.
    pub fn is_open(self) -> bool {
        matches!(self, DeliveryStatus::Pending | DeliveryStatus::Retrying)
    }
}

/// Why an attempt failed without an HTTP status (or with one we refuse to follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptErrorKind {
    Timeout,
    Connect,
    Dns,
    Tls,
    BlockedAddress,
    InvalidUrl,
    /// The connection broke while sending or reading (reset, protocol error).
    Io,
}

impl AttemptErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptErrorKind::Timeout => "TIMEOUT",
            AttemptErrorKind::Connect => "CONNECT",
            AttemptErrorKind::Dns => "DNS",
            AttemptErrorKind::Tls => "TLS",
            AttemptErrorKind::BlockedAddress => "BLOCKED_ADDRESS",
            AttemptErrorKind::InvalidUrl => "INVALID_URL",
            AttemptErrorKind::Io => "IO",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AttemptErrorKind::Timeout,
            AttemptErrorKind::Connect,
            AttemptErrorKind::Dns,
            AttemptErrorKind::Tls,
            AttemptErrorKind::BlockedAddress,
            AttemptErrorKind::InvalidUrl,
            AttemptErrorKind::Io,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Whether a custom header's value is a credential, so the delivery log and the dashboard show
/// it masked (the config API still returns it to its owner, so GET → edit → PUT keeps it).
pub fn is_sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "cookie",
        "token",
        "secret",
        "key",
        "password",
        "auth",
        "signature",
    ]
    .iter()
    .any(|part| name.contains(part))
}

/// How a custom header's value is shown in the log and the dashboard.
pub fn shown_header_value(name: &str, value: &str) -> String {
    if is_sensitive_header(name) {
        MASKED_HEADER_VALUE.to_owned()
    } else {
        value.to_owned()
    }
}

/// What a sensitive header's value is shown as.
pub const MASKED_HEADER_VALUE: &str = "********";

/// A config's custom headers as the delivery log keeps them: credential-like values masked, so
/// they are never stored with the attempt.
pub fn shown_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.clone(), shown_header_value(name, value)))
        .collect()
}

/// The outcome of one HTTP attempt, as recorded in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub started_at: Millis,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error_kind: Option<AttemptErrorKind>,
    /// A human-readable detail of the error (never contains secrets).
    pub error_message: Option<String>,
    /// The first bytes of the response body (see `engine::client::RESPONSE_BODY_LIMIT`).
    pub response_body: Option<String>,
    /// The raw `Retry-After` header of a 429/503 answer, as received: the verdict reads it
    /// ([`crate::engine::verdict`]). Not stored.
    pub retry_after: Option<HeaderValue>,
    /// The config's custom headers as this attempt sent them, credential-like values masked
    /// ([`shown_headers`]); empty when it had none.
    pub request_headers: Vec<(String, String)>,
}

impl AttemptResult {
    /// See [`crate::engine::verdict::succeeded`], the one definition of success.
    pub fn succeeded(&self) -> bool {
        crate::engine::verdict::succeeded(self)
    }
}

/// One attempt of a delivery, as read from the log.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub number: u32,
    pub result: AttemptResult,
}

/// A delivery row as listed in the log.
#[derive(Debug, Clone)]
pub struct DeliverySummary {
    pub hooks_id: String,
    pub app_key: String,
    pub config_id: String,
    pub product: Product,
    pub event: Event,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    pub hook_ids: Vec<String>,
    pub next_attempt_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// A test send's record (the `test` route): one attempt, never retried, redelivered or
    /// replayed.
    pub test: bool,
}

impl DeliverySummary {
    /// A delivery just created: PENDING (due now) or CANCELLED, no attempt yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        hooks_id: String,
        app_key: &str,
        config_id: &str,
        product: Product,
        event: Event,
        status: DeliveryStatus,
        hook_ids: Vec<String>,
        now: Millis,
    ) -> Self {
        DeliverySummary {
            hooks_id,
            app_key: app_key.to_owned(),
            config_id: config_id.to_owned(),
            product,
            event,
            status,
            attempt_count: 0,
            hook_ids,
            next_attempt_at: status.is_open().then_some(now),
            created_at: now,
            updated_at: now,
            test: false,
        }
    }
}

/// A test send (the `test` route) as the log keeps it: a finished delivery of one sample hook,
/// marked as a test, with its one attempt. Written after the send, so it is never open: nothing
/// retries it, and a crash during the send leaves no record (nor an answer to the caller).
#[derive(Debug, Clone)]
pub struct TestSendRecord {
    pub hooks_id: String,
    pub app_key: String,
    pub config_id: String,
    pub product: Product,
    pub event: Event,
    pub hook: StoredHook,
    pub result: AttemptResult,
}

impl TestSendRecord {
    /// SUCCEEDED or FAILED: a test send has one attempt and no retry.
    pub fn status(&self) -> DeliveryStatus {
        if self.result.succeeded() {
            DeliveryStatus::Succeeded
        } else {
            DeliveryStatus::Failed
        }
    }
}

/// Everything the engine needs to send a delivery: its identity and the stored hook JSON, in
/// envelope order.
#[derive(Debug, Clone)]
pub struct SendableDelivery {
    pub hooks_id: String,
    pub config_id: String,
    pub app_key: String,
    pub product: Product,
    pub event: Event,
    pub attempt_count: u32,
    pub hooks: Vec<StoredHook>,
}

#[derive(Debug, Clone)]
pub struct StoredHook {
    pub hook_id: String,
    pub json: String,
    /// When ingest accepted it.
    pub accepted_at: Millis,
}

impl SendableDelivery {
    /// When its oldest hook was accepted: where a `deliveryDeadline` counts from.
    pub fn accepted_at(&self) -> Option<Millis> {
        self.hooks.iter().map(|h| h.accepted_at).min()
    }

    /// The exact body sent: rebuilt deterministically from the stored hooks, so the log can show
    /// it without storing it twice.
    pub fn envelope(&self) -> Vec<u8> {
        let hooks: Vec<&str> = self.hooks.iter().map(|h| h.json.as_str()).collect();
        let mut out = Vec::with_capacity(160 + hooks.iter().map(|h| h.len() + 1).sum::<usize>());
        hookline_wire::write_envelope(
            &mut out,
            &self.hooks_id,
            &self.config_id,
            self.product,
            &self.app_key,
            self.event,
            &hooks,
        );
        out
    }
}

/// What the engine writes after an attempt: the attempt itself and the delivery's next state.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub hooks_id: String,
    pub config_id: String,
    pub number: u32,
    pub result: AttemptResult,
    pub new_status: DeliveryStatus,
    pub next_attempt_at: Option<Millis>,
    /// The config's health after this attempt, when it changed enough to be written.
    pub health: Option<Health>,
    /// The delivery ends here and its config has an `orderingKey`: the keys it held are free
    /// once this record commits, so the store signals `NewWork` for the config then (hooks of
    /// those keys wait in its queue, and a claim before the commit would still find them held).
    pub wakes_queue: bool,
    /// The delivery failed and will be retried, and its config has an `orderingKey`: the store
    /// keeps in it only the hooks of its first hook's key value and puts the others back in the
    /// queue (their keys free at once, their order kept by their place in it), so a key whose
    /// receiver keeps failing holds back only itself, never the keys batched with it. The store
    /// signals `NewWork` for the config when it moved any.
    pub split_by_key: bool,
}

/// A page request: `cursor` is opaque to clients.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub size: u32,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ConfigFilter {
    pub product: Option<Product>,
    pub event: Option<Event>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub config_id: Option<String>,
    pub event: Option<Event>,
    pub status: Option<DeliveryStatus>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub hook_id: Option<String>,
}

/// Selection of past deliveries whose hooks a replay sends again.
#[derive(Debug, Clone)]
pub struct ReplayFilter {
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub statuses: Vec<DeliveryStatus>,
    /// Count what would be queued again, queue nothing.
    pub dry_run: bool,
}

/// One accepted hook and what became of it, as [`crate::store::Store::trace_hook`] reads it:
/// the hook, the configs of its app key for its product as they are now, the configs whose
/// queue holds it, and the deliveries that carry it.
#[derive(Debug, Clone)]
pub struct HookTrace {
    pub app_key: String,
    pub hook_id: String,
    pub product: Product,
    pub event: Event,
    /// The stored hook JSON (as delivered).
    pub body: String,
    pub accepted_at: Millis,
    /// Every config of the app key for the hook's product, by id.
    pub configs: Vec<WebhookConfig>,
    /// Ids of the configs whose queue holds the hook now.
    pub queued_for: Vec<String>,
    /// Every delivery that carries the hook, oldest first.
    pub deliveries: Vec<TracedDelivery>,
}

/// A delivery that carries a traced hook.
#[derive(Debug, Clone, PartialEq)]
pub struct TracedDelivery {
    pub hooks_id: String,
    pub config_id: String,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// When its last attempt started, and the status code it got (if the receiver answered).
    pub last_attempt_at: Option<Millis>,
    pub last_status_code: Option<u16>,
    pub test: bool,
}

/// The value of a hook's `field` that orders it under a config's `orderingKey`: a string as it
/// is, any other value by its compact JSON text; `None` (not ordered) when the field is absent,
/// `null`, or the hook is not a JSON object. Computed at ingest for each hook and ordered config
/// on the request's task (SQLite: `store/sqlite/subscriptions.rs`, again by the writer if the
/// configs changed meanwhile; PostgreSQL: `store/postgres/routes.rs` for string values, and
/// `INGEST` computes the same for the others and for configs the node has not learnt).
pub fn ordering_value(hook_json: &str, field: &str) -> Option<String> {
    // Only the field is read: this runs for every hook and ordered config.
    ordering_value_of(crate::filter::top_level_field(hook_json, field)?)
}

/// [`ordering_value`] of a member's value already found (its JSON text).
pub fn ordering_value_of(raw: &str) -> Option<String> {
    match raw.as_bytes().first() {
        // Most values: a string without escapes is its own text.
        Some(b'"') => match raw.get(1..raw.len() - 1) {
            Some(inner) if !inner.contains('\\') && !inner.contains('"') => Some(inner.to_owned()),
            _ => serde_json::from_str::<String>(raw).ok(),
        },
        Some(b'n') => None,
        // Numbers, booleans, arrays and objects by their compact text, as a parsed value prints.
        _ => serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .map(|value| value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::ordering_value;

    #[test]
    fn an_ordering_value_is_a_string_as_is_and_any_other_value_by_its_compact_text() {
        let hook = r#"{"a": 1, "to": "010\"1", "n": 42, "o": {"b": 1, "a": [1, 2]}, "z": null}"#;
        assert_eq!(ordering_value(hook, "to").as_deref(), Some("010\"1"));
        assert_eq!(ordering_value(hook, "n").as_deref(), Some("42"));
        assert_eq!(
            ordering_value(hook, "o").as_deref(),
            Some(r#"{"b":1,"a":[1,2]}"#)
        );
        assert_eq!(ordering_value(hook, "z"), None);
        assert_eq!(ordering_value(hook, "absent"), None);
        assert_eq!(ordering_value("[1]", "to"), None);
        assert_eq!(ordering_value("{\"to\": ", "to"), None);
    }
}
