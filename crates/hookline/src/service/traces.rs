//! The trace of a hook: what an app key accepted under a hookId, and what became of it for each
//! of its configs. [`outcome`] is the pure rule that names a config's outcome; [`Service::trace_hook`]
//! and [`Service::trace_hook_everywhere`] (the admin's search across app keys) read the store.

use super::{Error, Result, Service};
use crate::model::{DeliveryStatus, HealthState, HookTrace, Millis, TracedDelivery, WebhookConfig};

/// What became of a hook for one config (docs/api.md, "Trace of one hook").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceOutcome {
    /// In the config's queue, waiting for a claim (the config is busy, or paused after the hook
    /// was queued).
    Queued,
    /// In an open delivery (PENDING or RETRYING).
    InDelivery,
    /// A delivery that carries it succeeded.
    Delivered,
    /// Its last delivery failed (the retry schedule ran out).
    Failed,
    /// Its last delivery expired. Reserved: no delivery expires yet.
    Expired,
    /// Its last delivery was cancelled (the config was deleted, or the delivery cancelled).
    Cancelled,
    /// In the queue of a config that its health DISABLED: sent when it is enabled again.
    Held,
    /// The config does not subscribe to the hook's event.
    NotSubscribed,
    /// The config subscribes but got no queue row: it was paused when the hook was accepted
    /// (or, as far as is known now, subscribed to the event only later).
    Paused,
    /// The config's filter leaves the hook out.
    FilteredOut,
    /// The config was created after the hook was accepted.
    CreatedAfter,
}

impl TraceOutcome {
    pub const ALL: [TraceOutcome; 11] = [
        TraceOutcome::Queued,
        TraceOutcome::InDelivery,
        TraceOutcome::Delivered,
        TraceOutcome::Failed,
        TraceOutcome::Expired,
        TraceOutcome::Cancelled,
        TraceOutcome::Held,
        TraceOutcome::NotSubscribed,
        TraceOutcome::Paused,
        TraceOutcome::FilteredOut,
        TraceOutcome::CreatedAfter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TraceOutcome::Queued => "QUEUED",
            TraceOutcome::InDelivery => "IN_DELIVERY",
            TraceOutcome::Delivered => "DELIVERED",
            TraceOutcome::Failed => "FAILED",
            TraceOutcome::Expired => "EXPIRED",
            TraceOutcome::Cancelled => "CANCELLED",
            TraceOutcome::Held => "HELD",
            TraceOutcome::NotSubscribed => "NOT_SUBSCRIBED",
            TraceOutcome::Paused => "PAUSED",
            TraceOutcome::FilteredOut => "FILTERED_OUT",
            TraceOutcome::CreatedAfter => "CREATED_AFTER",
        }
    }
}

/// One config's part of a trace: its outcome, a sentence that explains it, and the deliveries
/// to it that carry the hook (oldest first).
#[derive(Debug, Clone)]
pub struct ConfigTrace {
    pub config: WebhookConfig,
    pub outcome: TraceOutcome,
    pub explanation: String,
    pub deliveries: Vec<TracedDelivery>,
}

/// A hook and what became of it for each config of its app key for its product.
#[derive(Debug, Clone)]
pub struct Trace {
    pub hook: HookTrace,
    pub configs: Vec<ConfigTrace>,
}

/// The outcome of a hook accepted at `accepted_at` for `config`, from what the store holds now:
/// whether the config's queue holds it, and the deliveries to that config that carry it.
///
/// In order: queued (HELD when the config's health DISABLED it); else, among its deliveries, an
/// open one (IN_DELIVERY), else one that succeeded (DELIVERED), else the last one's status;
/// else why it got nothing: NOT_SUBSCRIBED, CREATED_AFTER, PAUSED.
pub fn outcome(
    config: &WebhookConfig,
    event: hookline_wire::Event,
    body: &str,
    accepted_at: Millis,
    queued: bool,
    deliveries: &[&TracedDelivery],
) -> (TraceOutcome, String) {
    if queued {
        return if config.health.state == HealthState::Disabled {
            (
                TraceOutcome::Held,
                "held in the queue of this DISABLED config: sent when it is enabled again".into(),
            )
        } else if !config.enabled {
            (
                TraceOutcome::Queued,
                "in the queue of this paused config: sent when it is resumed".into(),
            )
        } else {
            (
                TraceOutcome::Queued,
                "in the config's queue, waiting for a free request slot".into(),
            )
        };
    }
    if let Some(open) = deliveries.iter().find(|d| d.status.is_open()) {
        return (
            TraceOutcome::InDelivery,
            format!(
                "in delivery {} ({}, {} attempts so far)",
                open.hooks_id,
                open.status.as_str(),
                open.attempt_count
            ),
        );
    }
    if let Some(done) = deliveries
        .iter()
        .find(|d| d.status == DeliveryStatus::Succeeded)
    {
        return (
            TraceOutcome::Delivered,
            format!("delivered in {}", done.hooks_id),
        );
    }
    if let Some(last) = deliveries.last() {
        let outcome = match last.status {
            DeliveryStatus::Cancelled => TraceOutcome::Cancelled,
            DeliveryStatus::Expired => TraceOutcome::Expired,
            _ => TraceOutcome::Failed,
        };
        return (
            outcome,
            format!(
                "its last delivery {} is {} after {} attempts",
                last.hooks_id,
                last.status.as_str(),
                last.attempt_count
            ),
        );
    }
    if !config.subscribes_to(event) {
        return (
            TraceOutcome::NotSubscribed,
            format!("the config does not subscribe to {}", event.as_str()),
        );
    }
    if config.created_at > accepted_at {
        return (
            TraceOutcome::CreatedAfter,
            format!(
                "the config was created at {}, after the hook was accepted at {}",
                crate::model::rfc3339(config.created_at),
                crate::model::rfc3339(accepted_at)
            ),
        );
    }
    if let Some(filter) = &config.filter
        && !filter.matches_json(body)
    {
        return (
            TraceOutcome::FilteredOut,
            "the config's filter leaves this hook out (the filter as it is now; it may have \
             changed since the hook was accepted)"
                .into(),
        );
    }
    let now = if config.enabled {
        "it is enabled now"
    } else {
        "it is still paused"
    };
    (
        TraceOutcome::Paused,
        format!(
            "the config got no queue row: it was paused when the hook was accepted ({now}); \
             resume it and replay, or send the hook again"
        ),
    )
}

fn trace(hook: HookTrace) -> Trace {
    let configs = hook
        .configs
        .iter()
        .map(|config| {
            let deliveries: Vec<&TracedDelivery> = hook
                .deliveries
                .iter()
                .filter(|d| d.config_id == config.id && !d.test)
                .collect();
            let queued = hook.queued_for.contains(&config.id);
            let (outcome, explanation) = outcome(
                config,
                hook.event,
                &hook.body,
                hook.accepted_at,
                queued,
                &deliveries,
            );
            ConfigTrace {
                config: config.clone(),
                outcome,
                explanation,
                deliveries: deliveries.into_iter().cloned().collect(),
            }
        })
        .collect();
    Trace { hook, configs }
}

fn check_hook_id(hook_id: &str) -> Result<()> {
    if hookline_wire::is_valid_hook_id(hook_id) {
        Ok(())
    } else {
        Err(Error::field(
            "hookId",
            format!(
                "{hook_id:?} is not a hookId (1 to {} letters, digits, '-', '_' or '.')",
                hookline_wire::MAX_HOOK_ID_LEN
            ),
        ))
    }
}

impl Service {
    /// The trace of the hook `hook_id` of `app_key`; not found when this app key never accepted
    /// it (or retention removed it).
    pub async fn trace_hook(&self, app_key: &str, hook_id: &str) -> Result<Trace> {
        check_hook_id(hook_id)?;
        self.store
            .trace_hook(Some(app_key), hook_id)
            .await?
            .into_iter()
            .next()
            .map(trace)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "hookId: this app key never accepted a hook {hook_id:?} (or retention \
                     removed it)"
                ))
            })
    }

    /// The admin's search: the trace of `hook_id` under every app key that accepted it (a hookId
    /// is unique per app key only), by app key; not found when none did.
    pub async fn trace_hook_everywhere(&self, hook_id: &str) -> Result<Vec<Trace>> {
        check_hook_id(hook_id)?;
        let traces: Vec<Trace> = self
            .store
            .trace_hook(None, hook_id)
            .await?
            .into_iter()
            .map(trace)
            .collect();
        if traces.is_empty() {
            return Err(Error::not_found(format!(
                "hookId: no app key accepted a hook {hook_id:?} (or retention removed it)"
            )));
        }
        Ok(traces)
    }
}

#[cfg(test)]
mod tests {
    use hookline_wire::{Event, Product};

    use super::*;
    use crate::model::Health;

    fn config(events: Vec<Event>, enabled: bool, created_at: Millis) -> WebhookConfig {
        WebhookConfig {
            id: "c".into(),
            app_key: "k".into(),
            product: Product::Sms,
            events,
            url: "https://example.com/".into(),
            signature: String::new(),
            signing_secret: None,
            previous_signing_secret: None,
            enabled,
            description: String::new(),
            max_hooks_per_request: 1,
            max_requests_in_flight: 1,
            timeout_ms: 1000,
            retry_schedule: Vec::new(),
            health: Health::default(),
            headers: Vec::new(),
            filter: None,
            delivery_deadline: None,
            ordering_key: None,
            created_at,
            updated_at: created_at,
        }
    }

    fn delivery(hooks_id: &str, status: DeliveryStatus) -> TracedDelivery {
        TracedDelivery {
            hooks_id: hooks_id.into(),
            config_id: "c".into(),
            status,
            attempt_count: 1,
            created_at: 0,
            updated_at: 0,
            last_attempt_at: None,
            last_status_code: None,
            test: false,
        }
    }

    const EVENT: Event = Event::MessageResultUpdate;

    #[test]
    fn a_config_without_queue_row_or_delivery_says_why() {
        let other = config(vec![], true, 0);
        assert_eq!(
            outcome(&other, EVENT, "{}", 10, false, &[]).0,
            TraceOutcome::NotSubscribed
        );
        let later = config(vec![EVENT], true, 11);
        assert_eq!(
            outcome(&later, EVENT, "{}", 10, false, &[]).0,
            TraceOutcome::CreatedAfter
        );
        let paused = config(vec![EVENT], false, 0);
        assert_eq!(
            outcome(&paused, EVENT, "{}", 10, false, &[]).0,
            TraceOutcome::Paused
        );
        let mut filtered = config(vec![EVENT], true, 0);
        filtered.filter =
            crate::filter::Filter::parse(&serde_json::json!({"messageStatus": "FAILED"})).unwrap();
        let completed = r#"{"messageStatus":"COMPLETED"}"#;
        assert_eq!(
            outcome(&filtered, EVENT, completed, 10, false, &[]).0,
            TraceOutcome::FilteredOut
        );
        // A hook the filter passes but that got no queue row: paused then.
        assert_eq!(
            outcome(
                &filtered,
                EVENT,
                r#"{"messageStatus":"FAILED"}"#,
                10,
                false,
                &[]
            )
            .0,
            TraceOutcome::Paused
        );
    }

    #[test]
    fn the_queue_comes_first_then_open_then_succeeded_then_the_last() {
        let mut c = config(vec![EVENT], true, 0);
        let failed = delivery("a", DeliveryStatus::Failed);
        let ok = delivery("b", DeliveryStatus::Succeeded);
        let open = delivery("c", DeliveryStatus::Retrying);
        assert_eq!(
            outcome(&c, EVENT, "{}", 10, true, &[&ok]).0,
            TraceOutcome::Queued
        );
        assert_eq!(
            outcome(&c, EVENT, "{}", 10, false, &[&ok, &open]).0,
            TraceOutcome::InDelivery
        );
        assert_eq!(
            outcome(&c, EVENT, "{}", 10, false, &[&failed, &ok]).0,
            TraceOutcome::Delivered
        );
        assert_eq!(
            outcome(&c, EVENT, "{}", 10, false, &[&failed]).0,
            TraceOutcome::Failed
        );
        c.health.state = HealthState::Disabled;
        assert_eq!(
            outcome(&c, EVENT, "{}", 10, true, &[]).0,
            TraceOutcome::Held
        );
    }
}
