//! The attempt task: claims new deliveries off a config's queue or leases an existing one, sends
//! it, and reports the result to the dispatcher (which judges it and queues the record).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::model::{SendableDelivery, WebhookConfig};
use crate::store::{Lease, Store};

use super::client::{DeliveryClient, Outgoing};
use super::dispatcher::TaskEvent;

pub(super) enum Job {
    /// Take up to `slots` batches off the queue, one per reserved slot; `epoch` is the config's
    /// `work_epoch` when the claim was decided.
    Claim { slots: u32, epoch: u64 },
    /// Attempt an existing delivery.
    Send(String),
}

impl Job {
    pub(super) fn slots(&self) -> u32 {
        match self {
            Job::Claim { slots, .. } => *slots,
            Job::Send(_) => 1,
        }
    }
}

#[derive(Clone)]
pub(super) struct AttemptTask {
    pub(super) store: Arc<dyn Store>,
    pub(super) client: DeliveryClient,
    pub(super) events: mpsc::UnboundedSender<TaskEvent>,
    /// The config as it was when the task started (which queue to claim from, how much).
    pub(super) config: Arc<WebhookConfig>,
    /// The config as the dispatcher knows it now: a request is built from this when it is sent,
    /// so a change answered before then (URL, headers, a rotated signing secret) is in force for
    /// it even if the claim or lease was asked for before the change.
    pub(super) current: watch::Receiver<Arc<WebhookConfig>>,
}

/// Deliveries the store failed to lease, logged at most once per [`FailureLog::EVERY`] (see
/// there).
static LEASE_FAILURES: FailureLog = FailureLog::new();

/// A failure that may come once per delivery per second while the store is away, logged at most
/// once per [`FailureLog::EVERY`] with the number left out since the last line: with the records'
/// writer stuck (PostgreSQL), every due retry's lease is refused and tried again each second:
/// ten thousand due retries would log ten thousand lines a second. What is left out is counted,
/// not lost (`hookline_store_not_answering_total` counts the refusals themselves).
struct FailureLog {
    /// Milliseconds since the process's clock epoch of the last line; 0 before the first.
    logged_at_ms: AtomicU64,
    /// Failures since the last line that were not logged.
    left_out: AtomicU64,
}

impl FailureLog {
    const EVERY: Duration = Duration::from_secs(10);

    const fn new() -> FailureLog {
        FailureLog {
            logged_at_ms: AtomicU64::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// Whether a failure at `now_ms` (milliseconds from any fixed epoch, never 0) is logged: then
    /// how many were left out before it.
    fn admit(&self, now_ms: u64) -> Option<u64> {
        let last = self.logged_at_ms.load(Ordering::Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last) >= Self::EVERY.as_millis() as u64;
        if due
            && self
                .logged_at_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.left_out.swap(0, Ordering::Relaxed));
        }
        self.left_out.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Milliseconds since the first call: a clock for [`FailureLog`] that is never 0.
fn process_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

/// The slots an attempt task holds, given back if the task ends without reporting on them (a
/// panic, or a future dropped): otherwise the dispatcher would count them in flight forever and,
/// for a claim, never claim for that config again. Reported as a store failure: the config
/// claims again, or the delivery is tried again, after the back-off.
struct Slots {
    events: mpsc::UnboundedSender<TaskEvent>,
    config_id: String,
    hooks_id: Option<String>,
    count: u32,
}

impl Slots {
    /// Reported: the event sent carries the slots.
    fn reported(mut self) {
        self.count = 0;
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        if self.count > 0 {
            tracing::error!(
                config_id = self.config_id,
                hooks_id = self.hooks_id.as_deref(),
                slots = self.count,
                "an attempt task ended without a result; its slots are given back"
            );
            let _ = self.events.send(TaskEvent::StoreFailed {
                config_id: std::mem::take(&mut self.config_id),
                hooks_id: self.hooks_id.take(),
                slots: self.count,
            });
        }
    }
}

impl AttemptTask {
    fn slots(&self, hooks_id: Option<&str>, count: u32) -> Slots {
        Slots {
            events: self.events.clone(),
            config_id: self.config.id.clone(),
            hooks_id: hooks_id.map(str::to_owned),
            count,
        }
    }

    pub(super) async fn run(self, job: Job) {
        let config_id = self.config.id.clone();
        let held = match &job {
            Job::Claim { slots, .. } => self.slots(None, *slots),
            Job::Send(hooks_id) => self.slots(Some(hooks_id), 1),
        };
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
                        held.reported();
                        self.tell(TaskEvent::StoreFailed {
                            config_id,
                            hooks_id: None,
                            slots,
                        });
                        return;
                    }
                };
                let mut batches = claim.batches;
                // From here each batch is an attempt, which answers for its own slot.
                held.reported();
                self.tell(TaskEvent::Claimed {
                    config_id,
                    asked: slots,
                    got: batches.len() as u32,
                    drained: claim.drained,
                    contended: claim.contended,
                    held_by_order: claim.held_by_order,
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
                Ok(Lease::Granted(delivery)) => {
                    held.reported();
                    delivery
                }
                Ok(Lease::NotDue(at)) => {
                    held.reported();
                    self.tell(TaskEvent::NotDue {
                        config_id,
                        hooks_id,
                        at,
                    });
                    return;
                }
                Ok(Lease::Unavailable) => {
                    held.reported();
                    self.tell(TaskEvent::Abandoned { config_id });
                    return;
                }
                Err(e) => {
                    if let Some(left_out) = LEASE_FAILURES.admit(process_ms()) {
                        tracing::error!(
                            hooks_id,
                            error = %e,
                            left_out,
                            "loading a delivery failed (logged at most every 10 s; left_out: the failures since the last line)"
                        );
                    }
                    held.reported();
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

    /// Sends one attempt of a delivery and reports its result: the dispatcher judges it and
    /// queues its record.
    async fn attempt(self, delivery: SendableDelivery) {
        let held = self.slots(Some(&delivery.hooks_id), 1);
        let config_id = self.config.id.clone();
        let number = delivery.attempt_count + 1;
        let config = self.current.borrow().clone();
        let accepted_at = delivery.accepted_at();
        let deadline = super::verdict::deadline(accepted_at, config.delivery_deadline);
        if super::verdict::expired(deadline, crate::model::now_millis()) {
            // Too late to start: a result that arrives after the deadline is worth less than
            // none to this receiver (an OTP, a time-bound notice). Ended unsent.
            tracing::info!(
                hooks_id = delivery.hooks_id,
                config_id,
                hooks = delivery.hooks.len(),
                attempt = number,
                "delivery expired before its attempt: deliveryDeadline passed"
            );
            held.reported();
            self.tell(TaskEvent::Expired {
                config_id,
                hooks_id: delivery.hooks_id,
            });
            return;
        }
        let started = std::time::Instant::now();
        let result = self
            .client
            .send(Outgoing {
                config: &config,
                hooks_id: &delivery.hooks_id,
                envelope: Bytes::from(delivery.envelope()),
                test: false,
            })
            .await;
        let latency = started.elapsed();
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

        held.reported();
        self.tell(TaskEvent::Finished {
            config_id,
            hooks_id: delivery.hooks_id,
            number,
            result,
            latency,
            accepted_at,
        });
    }

    fn tell(&self, event: TaskEvent) {
        let _ = self.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_log_logs_the_first_then_one_line_per_period_with_what_it_left_out() {
        let log = FailureLog::new();
        let every = FailureLog::EVERY.as_millis() as u64;
        assert_eq!(log.admit(5), Some(0), "the first is logged");
        assert_eq!(log.admit(6), None);
        assert_eq!(log.admit(5 + every - 1), None);
        assert_eq!(
            log.admit(5 + every),
            Some(2),
            "a period later, with the two left out"
        );
        assert_eq!(log.admit(5 + every + 1), None);
        assert_eq!(log.admit(5 + 3 * every), Some(1));
    }
}
