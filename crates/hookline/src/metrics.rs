//! Prometheus metrics: one function per event, so the code that sees the event records it in one
//! line, and the renderer behind `GET /metrics`.
//!
//! Counters and the latency histogram are recorded as events happen (the `metrics` crate's global
//! recorder, rendered by `metrics-exporter-prometheus`). Gauges that describe stored state (queue
//! depth, age of the oldest queued hook, configs by health, open deliveries) are read from the
//! store at scrape time ([`crate::store::Store::stats`]), so they are true after a restart too.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `hookline_hooks_ingested_total` | counter | `event`: hooks newly stored by ingest |
//! | `hookline_hooks_duplicate_total` | counter | `event`: hooks acknowledged again (idempotent retries) |
//! | `hookline_attempts_total` | counter | `outcome`: `success`, `http_4xx`, `http_5xx`, ..., or the error kind (`timeout`, `connect`, ...) |
//! | `hookline_attempt_duration_seconds` | histogram | `result`: `success` or `failure` |
//! | `hookline_deliveries_total` | counter | `status`: what an attempt moved the delivery to (`SUCCEEDED`, `RETRYING`, `FAILED`, `CANCELLED`, `EXPIRED`), or `EXPIRED` for one its `deliveryDeadline` ended before an attempt |
//! | `hookline_queue_depth` | gauge | hooks queued for a config, not yet in a delivery |
//! | `hookline_queue_oldest_age_seconds` | gauge | age of the oldest queued hook (0 when empty) |
//! | `hookline_open_deliveries` | gauge | `status`: `PENDING`, `RETRYING` |
//! | `hookline_configs` | gauge | `state`: `HEALTHY`, `FAILING`, `DISABLED`, `PAUSED` (enabled: false) |
//! | `hookline_hooks_dropped_total` | counter | `reason`: `retention` (held for a DISABLED config too long) |
//! | `hookline_operational_events_total` | counter | `event`: operational events produced (product `hookline`) |
//!
//! Per tenant, only with `serve --metrics-app-key-label` (one series per app key and label value:
//! mind the cardinality), named apart so that the metrics above keep their shape either way:
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `hookline_app_key_hooks_ingested_total` | counter | `app_key` |
//! | `hookline_app_key_attempts_total` | counter | `app_key`, `outcome` (as above) |
//! | `hookline_app_key_deliveries_total` | counter | `app_key`, `status` (as above) |
//! | `hookline_app_key_queue_depth` | gauge | `app_key` (read at scrape time) |
//! | `hookline_app_key_queue_oldest_age_seconds` | gauge | `app_key` (read at scrape time) |

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use hookline_wire::Event;
use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::model::{AttemptErrorKind, AttemptResult, DeliveryStatus, HealthState, Millis};
use crate::store::{AppKeyQueue, StoreStats};

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const ATTEMPT_DURATION: &str = "hookline_attempt_duration_seconds";
/// Buckets of the attempt latency histogram, in seconds (timeouts go up to 60 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Whether the per-tenant series are recorded (`serve --metrics-app-key-label`).
static BY_APP_KEY: AtomicBool = AtomicBool::new(false);
/// The app keys whose queue gauges were set: one whose queue emptied is set to 0, not left at
/// its last value.
static QUEUE_APP_KEYS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Turns the per-tenant series on (for the life of the process).
pub fn label_by_app_key(on: bool) {
    BY_APP_KEY.store(on, Ordering::Relaxed);
}

/// Whether the per-tenant series are recorded.
pub fn by_app_key() -> bool {
    BY_APP_KEY.load(Ordering::Relaxed)
}

/// Installs the process-wide recorder (once; later calls return the same handle). `None` when
/// another recorder was installed first (then `/metrics` answers only the store gauges' names).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(ATTEMPT_DURATION.into()), LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "hookline_hooks_ingested_total",
        "Hooks newly stored by ingest."
    );
    describe_counter!(
        "hookline_hooks_duplicate_total",
        "Hooks acknowledged again without being stored (hookId already accepted)."
    );
    describe_counter!(
        "hookline_hooks_dropped_total",
        "Hooks removed unsent from a config's queue, by reason (retention: held for a DISABLED config longer than --retention)."
    );
    describe_counter!(
        "hookline_operational_events_total",
        "Operational events (product hookline) turned into hooks, by event."
    );
    describe_counter!(
        "hookline_attempts_total",
        "Delivery attempts by outcome (success, http_NXX, or the error kind)."
    );
    describe_histogram!(
        ATTEMPT_DURATION,
        Unit::Seconds,
        "Duration of delivery attempts."
    );
    describe_counter!(
        "hookline_deliveries_total",
        "Delivery state changes recorded after an attempt, by the new status."
    );
    describe_gauge!(
        "hookline_queue_depth",
        "Hooks queued for a config and not yet in a delivery."
    );
    describe_gauge!(
        "hookline_queue_oldest_age_seconds",
        Unit::Seconds,
        "Age of the oldest queued hook (0 when the queue is empty)."
    );
    describe_gauge!(
        "hookline_open_deliveries",
        "Deliveries waiting for an attempt, by status."
    );
    describe_counter!(
        "hookline_app_key_hooks_ingested_total",
        "Hooks newly stored by ingest, per app key (--metrics-app-key-label)."
    );
    describe_counter!(
        "hookline_app_key_attempts_total",
        "Delivery attempts by outcome, per app key (--metrics-app-key-label)."
    );
    describe_counter!(
        "hookline_app_key_deliveries_total",
        "Delivery state changes after an attempt, per app key (--metrics-app-key-label)."
    );
    describe_gauge!(
        "hookline_app_key_queue_depth",
        "Hooks queued for the app key's configs, not yet in a delivery (--metrics-app-key-label)."
    );
    describe_gauge!(
        "hookline_app_key_queue_oldest_age_seconds",
        Unit::Seconds,
        "Age of the app key's oldest queued hook (--metrics-app-key-label)."
    );
    describe_counter!(
        "hookline_claims_total",
        "Claims of queued hooks by outcome: batches (it took work), empty (the queue was \
         drained), contended (another statement or node held every row it could take)."
    );
    describe_counter!(
        "hookline_claim_lock_missed_total",
        "PostgreSQL: claims that waited for their config's claim lock in vain (another node's \
         claim of the config slow or stuck) and claimed beside that claim instead."
    );
    describe_counter!(
        "hookline_store_not_answering_total",
        "PostgreSQL: calls to the database given up because it did not answer in time \
         (statement timeout + lock timeout + 5 s; 5 s for /readyz), or refused at once because a \
         writer had had no answer that long: the request answered 503."
    );
    describe_counter!(
        "hookline_queue_vacuums_total",
        "PostgreSQL: VACUUM statements this node ran on the queue (at most one a second, once \
         its claims took 10,000 rows), so claims do not walk the entries of rows taken since \
         autovacuum's last visit."
    );
    describe_gauge!(
        "hookline_configs",
        "Webhook configs by health state (PAUSED: enabled is false)."
    );
}

/// Metric handles, one per label value of a closed set, each registered on its first use: the
/// label strings and the recorder's lookup of the series are paid once, not on every event (an
/// ingest used to allocate its labels twice). Handles are kept only once this module's recorder
/// is installed; before that, events go to whatever recorder is global, as the macros do.
struct Handles<T, const N: usize>([OnceLock<T>; N]);

impl<T, const N: usize> Handles<T, N> {
    const fn new() -> Self {
        Handles([const { OnceLock::new() }; N])
    }

    fn get(&self, slot: usize, register: impl FnOnce() -> T) -> Option<&T> {
        let installed = HANDLE.get().is_some_and(Option::is_some);
        installed.then(|| self.0[slot].get_or_init(register))
    }
}

/// Handles for the first events of the catalogue; an event beyond them (a catalogue with very many
/// events) is counted through the macro, which looks its series up each time.
const EVENT_SLOTS: usize = 32;
static HOOKS_INGESTED: Handles<Counter, EVENT_SLOTS> = Handles::new();
static HOOKS_DUPLICATE: Handles<Counter, EVENT_SLOTS> = Handles::new();
/// `success`, the error kinds, `http_0xx` to `http_9xx`, `unknown`.
static ATTEMPTS: Handles<Counter, 19> = Handles::new();
/// `success`, `failure`.
static ATTEMPT_DURATIONS: Handles<Histogram, 2> = Handles::new();
static DELIVERIES: Handles<Counter, { DeliveryStatus::ALL.len() }> = Handles::new();
/// `batches`, `empty`, `contended`.
static CLAIMS: Handles<Counter, 3> = Handles::new();

/// The event's position among the catalogue's event names, if it has a handle slot.
fn event_slot(event: Event) -> Option<usize> {
    Event::all()
        .iter()
        .position(|e| *e == event)
        .filter(|i| *i < EVENT_SLOTS)
}

fn status_slot(status: DeliveryStatus) -> usize {
    match status {
        DeliveryStatus::Pending => 0,
        DeliveryStatus::Retrying => 1,
        DeliveryStatus::Succeeded => 2,
        DeliveryStatus::Failed => 3,
        DeliveryStatus::Cancelled => 4,
        DeliveryStatus::Expired => 5,
    }
}

/// The slot of an attempt's `outcome` label in [`ATTEMPTS`]; `None` for a status code beyond
/// 999, which HTTP does not have.
fn outcome_slot(result: &AttemptResult) -> Option<usize> {
    if result.succeeded() {
        return Some(0);
    }
    match (result.error_kind, result.status_code) {
        (Some(kind), _) => Some(match kind {
            AttemptErrorKind::Timeout => 1,
            AttemptErrorKind::Connect => 2,
            AttemptErrorKind::Dns => 3,
            AttemptErrorKind::Tls => 4,
            AttemptErrorKind::BlockedAddress => 5,
            AttemptErrorKind::InvalidUrl => 6,
            AttemptErrorKind::Io => 7,
        }),
        (None, Some(code)) if code < 1000 => Some(8 + usize::from(code / 100)),
        (None, Some(_)) => None,
        (None, None) => Some(18),
    }
}

/// Ingest stored `new` hooks of `event` out of `acknowledged` (the rest were duplicates).
pub fn hooks_ingested(event: Event, acknowledged: usize, new: usize) {
    let name = event.as_str();
    let duplicates = acknowledged.saturating_sub(new) as u64;
    let slot = event_slot(event);
    match slot.and_then(|slot| {
        HOOKS_INGESTED.get(
            slot,
            || counter!("hookline_hooks_ingested_total", "event" => name),
        )
    }) {
        Some(c) => c.increment(new as u64),
        None => counter!("hookline_hooks_ingested_total", "event" => name).increment(new as u64),
    }
    match slot.and_then(|slot| {
        HOOKS_DUPLICATE.get(
            slot,
            || counter!("hookline_hooks_duplicate_total", "event" => name),
        )
    }) {
        Some(c) => c.increment(duplicates),
        None => counter!("hookline_hooks_duplicate_total", "event" => name).increment(duplicates),
    }
}

/// `n` queued hooks were removed without being sent, for `reason` (rare: no cached handle).
pub fn hooks_dropped(reason: &'static str, n: usize) {
    counter!("hookline_hooks_dropped_total", "reason" => reason).increment(n as u64);
}

/// An operational event became a hook (rare: no cached handle).
pub fn operational_event(event: Event) {
    counter!("hookline_operational_events_total", "event" => event.as_str()).increment(1);
}

/// An ingest of `app_key` stored `new` hooks (per-tenant series only).
pub fn app_key_hooks_ingested(app_key: &str, new: usize) {
    if by_app_key() {
        counter!("hookline_app_key_hooks_ingested_total", "app_key" => app_key.to_owned())
            .increment(new as u64);
    }
}

/// An attempt of a delivery of `app_key` ended (per-tenant series only).
pub fn app_key_attempt_finished(app_key: &str, result: &AttemptResult, status: DeliveryStatus) {
    if by_app_key() {
        counter!(
            "hookline_app_key_attempts_total",
            "app_key" => app_key.to_owned(),
            "outcome" => attempt_outcome(result)
        )
        .increment(1);
        counter!(
            "hookline_app_key_deliveries_total",
            "app_key" => app_key.to_owned(),
            "status" => status.as_str()
        )
        .increment(1);
    }
}

/// Sets the per-tenant queue gauges from the store's reading; app keys no longer queued go to 0.
pub fn app_key_queues(queues: &[AppKeyQueue], now: Millis) {
    let Ok(mut known) = QUEUE_APP_KEYS.lock() else {
        return;
    };
    let current: BTreeSet<String> = queues.iter().map(|q| q.app_key.clone()).collect();
    for gone in known.difference(&current) {
        gauge!("hookline_app_key_queue_depth", "app_key" => gone.clone()).set(0.0);
        gauge!("hookline_app_key_queue_oldest_age_seconds", "app_key" => gone.clone()).set(0.0);
    }
    for q in queues {
        gauge!("hookline_app_key_queue_depth", "app_key" => q.app_key.clone())
            .set(q.queued_hooks as f64);
        let age = q
            .oldest_queued_at
            .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
        gauge!("hookline_app_key_queue_oldest_age_seconds", "app_key" => q.app_key.clone())
            .set(age);
    }
    *known = current;
}

/// The `outcome` label of an attempt.
pub fn attempt_outcome(result: &AttemptResult) -> String {
    if result.succeeded() {
        return "success".to_owned();
    }
    match (result.error_kind, result.status_code) {
        (Some(kind), _) => kind.as_str().to_ascii_lowercase(),
        (None, Some(code)) => format!("http_{}xx", code / 100),
        (None, None) => "unknown".to_owned(),
    }
}

/// An attempt of a logged delivery ended with `result` and moved the delivery to `status`.
pub fn attempt_finished(result: &AttemptResult, status: DeliveryStatus) {
    let attempts = outcome_slot(result).and_then(|slot| {
        ATTEMPTS.get(
            slot,
            || counter!("hookline_attempts_total", "outcome" => attempt_outcome(result)),
        )
    });
    match attempts {
        Some(c) => c.increment(1),
        None => {
            counter!("hookline_attempts_total", "outcome" => attempt_outcome(result)).increment(1)
        }
    }
    let (slot, label) = if result.succeeded() {
        (0, "success")
    } else {
        (1, "failure")
    };
    let seconds = result.duration_ms as f64 / 1000.0;
    match ATTEMPT_DURATIONS.get(slot, || histogram!(ATTEMPT_DURATION, "result" => label)) {
        Some(h) => h.record(seconds),
        None => histogram!(ATTEMPT_DURATION, "result" => label).record(seconds),
    }
    delivery_finished(status);
}

/// PostgreSQL: a claim did not get its config's claim lock within its wait and claimed beside
/// the claim holding it (`store::postgres::claims`). Now and then under load; steadily, a claim
/// is stuck on another node.
pub fn claim_lock_missed() {
    counter!("hookline_claim_lock_missed_total").increment(1);
}

/// PostgreSQL: a caller of the store gave up waiting for the database's answer
/// (`--pg-statement-timeout` + `--pg-lock-timeout` + 5 s; 5 s for `/readyz`), or was refused at
/// once because a writer lane had had no answer that long: the database stopped answering (its
/// host frozen or cut off, its processes stopped).
pub fn store_not_answering() {
    counter!("hookline_store_not_answering_total").increment(1);
}

/// PostgreSQL: this node vacuumed the queue (`store::postgres::vacuum`).
pub fn queue_vacuumed() {
    counter!("hookline_queue_vacuums_total").increment(1);
}

/// What a claim found: `got` batches, or none because the queue was drained or (`contended`)
/// another statement held every row it could take (an ordered claim of another node, a config
/// being deleted).
pub fn claim_finished(got: u32, contended: bool) {
    let (slot, label) = match (got, contended) {
        (1.., _) => (0, "batches"),
        (0, false) => (1, "empty"),
        (0, true) => (2, "contended"),
    };
    match CLAIMS.get(
        slot,
        || counter!("hookline_claims_total", "outcome" => label),
    ) {
        Some(c) => c.increment(1),
        None => counter!("hookline_claims_total", "outcome" => label).increment(1),
    }
}

/// A delivery ended EXPIRED without another attempt: its `deliveryDeadline` passed first.
pub fn delivery_expired_unsent() {
    delivery_finished(DeliveryStatus::Expired);
}

/// A delivery moved to `status` (after an attempt, or EXPIRED before one).
pub fn delivery_finished(status: DeliveryStatus) {
    let label = status.as_str();
    match DELIVERIES.get(
        status_slot(status),
        || counter!("hookline_deliveries_total", "status" => label),
    ) {
        Some(c) => c.increment(1),
        None => counter!("hookline_deliveries_total", "status" => label).increment(1),
    }
}

/// Sets the gauges read from the store at scrape time.
pub fn store_stats(stats: &StoreStats, now: Millis) {
    gauge!("hookline_queue_depth").set(stats.queued_hooks as f64);
    let age = stats
        .oldest_queued_at
        .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
    gauge!("hookline_queue_oldest_age_seconds").set(age);
    for status in [DeliveryStatus::Pending, DeliveryStatus::Retrying] {
        let n = stats
            .open_deliveries
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        gauge!("hookline_open_deliveries", "status" => status.as_str()).set(n as f64);
    }
    for state in [
        HealthState::Healthy,
        HealthState::Failing,
        HealthState::Disabled,
    ] {
        let n = stats
            .configs_by_health
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        gauge!("hookline_configs", "state" => state.as_str()).set(n as f64);
    }
    gauge!("hookline_configs", "state" => "PAUSED").set(stats.paused_configs as f64);
}

/// The Prometheus text of every metric.
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttemptErrorKind;

    fn result(status: Option<u16>, error: Option<AttemptErrorKind>) -> AttemptResult {
        AttemptResult {
            started_at: 0,
            duration_ms: 12,
            status_code: status,
            error_kind: error,
            error_message: None,
            response_body: None,
            retry_after: None,
            request_headers: Vec::new(),
        }
    }

    #[test]
    fn outcome_labels_name_the_class_or_the_error() {
        assert_eq!(attempt_outcome(&result(Some(204), None)), "success");
        assert_eq!(attempt_outcome(&result(Some(503), None)), "http_5xx");
        assert_eq!(attempt_outcome(&result(Some(302), None)), "http_3xx");
        assert_eq!(
            attempt_outcome(&result(None, Some(AttemptErrorKind::BlockedAddress))),
            "blocked_address"
        );
    }

    #[test]
    fn rendered_text_has_the_recorded_metrics() {
        install();
        hooks_ingested(Event::Unsubscribe, 3, 2);
        attempt_finished(&result(Some(500), None), DeliveryStatus::Retrying);
        store_stats(
            &StoreStats {
                queued_hooks: 7,
                oldest_queued_at: Some(1_000),
                open_deliveries: vec![(DeliveryStatus::Retrying, 1)],
                configs_by_health: vec![(HealthState::Failing, 2)],
                paused_configs: 0,
            },
            11_000,
        );
        let text = render();
        assert!(text.contains("hookline_hooks_ingested_total{event=\"UNSUBSCRIBE\"} "));
        assert!(text.contains("hookline_attempts_total{outcome=\"http_5xx\"} "));
        assert!(text.contains(
            "hookline_attempt_duration_seconds_bucket{result=\"failure\",le=\"0.025\"} "
        ));
        assert!(text.contains("hookline_queue_depth 7"));
        assert!(text.contains("hookline_queue_oldest_age_seconds 10"));
        assert!(text.contains("hookline_configs{state=\"FAILING\"} 2"));
    }
}
