//! The claim of a config with an `orderingKey`: which of its queued hooks the next batches take,
//! so that hooks of one key value go out one delivery at a time, in acceptance order. Pure (the
//! rule alone, unit-tested here); both backends read the rows it needs and write what it chose
//! (`sqlite/claims.rs`, `postgres/claims.rs`).
//!
//! The rule: a queued hook whose key value is held by an open (PENDING or RETRYING) delivery of
//! the config is not taken, and neither is any later hook of a key one of whose hooks is left
//! queued by this claim (so a key never overtakes itself). A key's hooks taken by one claim all
//! go into one batch, in queue (acceptance) order: two deliveries of one key are never open at
//! once. Hooks without a key value are taken as in an unordered claim. Each batch holds hooks of
//! one event, like every delivery.
//!
//! What holds a key is read from stored rows (`delivery_hooks.ordering_key` of open deliveries),
//! never kept in memory, so a restart (even a `kill -9`) neither releases nor loses an order.

use std::collections::{HashMap, HashSet};

use hookline_wire::Event;

/// Queue rows an ordered claim reads at most, oldest first, without the keys open deliveries
/// hold (the store leaves those out): a bound on one claim's work however long the queue is.
/// When every row it read stays queued, the claim counts as held (see [`Plan::held`]).
pub(crate) const SCAN_LIMIT: u32 = 10_000;

/// One queued hook of an ordered config, as the claim reads it (queue order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueuedRow {
    pub(crate) hook_seq: i64,
    pub(crate) event: Event,
    /// The hook's value of the config's `orderingKey`; `None`: not ordered.
    pub(crate) key: Option<String>,
}

/// One batch an ordered claim makes: hooks of one event, in queue order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedBatch {
    pub(crate) event: Event,
    pub(crate) rows: Vec<QueuedRow>,
}

/// What an ordered claim takes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Plan {
    pub(crate) batches: Vec<PlannedBatch>,
    /// The batches filled up before the rows read ran out: more may be claimable at once.
    pub(crate) full: bool,
    /// Rows read were left queued because their key is held (by this claim or an earlier one).
    pub(crate) skipped: bool,
}

impl Plan {
    /// Whether what stays queued waits for an ordering key to be released: the batches did not
    /// fill, yet the queue is not empty. (`queue_left`: the store found rows after taking.)
    pub(crate) fn held(&self, queue_left: bool) -> bool {
        !self.full && queue_left
    }
}

/// Cuts `rows` (the config's queue in order, without the keys open deliveries hold) into up to
/// `wanted` batches of up to `max_hooks` hooks, keeping each key to one batch and in order.
pub(crate) fn plan(
    rows: impl IntoIterator<Item = QueuedRow>,
    wanted: usize,
    max_hooks: usize,
) -> Plan {
    let (wanted, max_hooks) = (wanted.max(1), max_hooks.max(1));
    let mut plan = Plan::default();
    // Keys a later hook of must stay queued: one of theirs was left queued here.
    let mut blocked: HashSet<String> = HashSet::new();
    // Keys taken by this claim, and the batch holding them.
    let mut placed: HashMap<String, usize> = HashMap::new();
    let mut full_batches = 0;
    for row in rows {
        if full_batches == wanted {
            plan.full = true;
            break;
        }
        if let Some(key) = &row.key {
            if blocked.contains(key) {
                plan.skipped = true;
                continue;
            }
            if let Some(&b) = placed.get(key) {
                let batch = &mut plan.batches[b];
                if batch.event == row.event && batch.rows.len() < max_hooks {
                    batch.rows.push(row);
                    if batch.rows.len() == max_hooks {
                        full_batches += 1;
                    }
                } else {
                    // Another batch would be a second open delivery of this key.
                    blocked.insert(key.clone());
                    plan.skipped = true;
                }
                continue;
            }
        }
        let open = plan
            .batches
            .iter()
            .position(|b| b.event == row.event && b.rows.len() < max_hooks);
        let b = match open {
            Some(b) => b,
            None if plan.batches.len() < wanted => {
                plan.batches.push(PlannedBatch {
                    event: row.event,
                    rows: Vec::new(),
                });
                plan.batches.len() - 1
            }
            None => {
                // No room for its event: it stays queued, and so does the rest of its key.
                if let Some(key) = row.key {
                    blocked.insert(key);
                }
                plan.skipped = true;
                continue;
            }
        };
        if let Some(key) = &row.key {
            placed.insert(key.clone(), b);
        }
        let batch = &mut plan.batches[b];
        batch.rows.push(row);
        if batch.rows.len() == max_hooks {
            full_batches += 1;
        }
    }
    if full_batches == wanted {
        plan.full = true;
    }
    plan
}

#[cfg(test)]
mod tests {
    use hookline_wire::Event;

    use super::{QueuedRow, plan};

    fn row(seq: i64, event: Event, key: Option<&str>) -> QueuedRow {
        QueuedRow {
            hook_seq: seq,
            event,
            key: key.map(str::to_owned),
        }
    }

    fn seqs(p: &super::Plan) -> Vec<Vec<i64>> {
        p.batches
            .iter()
            .map(|b| b.rows.iter().map(|r| r.hook_seq).collect())
            .collect()
    }

    const E: Event = Event::MessageResultUpdate;
    const F: Event = Event::Unsubscribe;

    #[test]
    fn a_keys_hooks_share_one_batch_in_queue_order() {
        let rows = vec![
            row(1, E, Some("a")),
            row(2, E, Some("b")),
            row(3, E, Some("a")),
            row(4, E, None),
        ];
        let p = plan(rows, 2, 10);
        assert_eq!(seqs(&p), vec![vec![1, 2, 3, 4]]);
        assert!(!p.skipped && !p.full);
    }

    #[test]
    fn a_key_never_goes_into_a_second_batch_and_its_later_hooks_wait() {
        // Batches of 2: a's third hook would need a second batch, so it and a's later hooks stay
        // queued, while b and unordered hooks go on.
        let rows = vec![
            row(1, E, Some("a")),
            row(2, E, Some("a")),
            row(3, E, Some("a")),
            row(4, E, Some("b")),
            row(5, E, Some("a")),
            row(6, E, None),
        ];
        let p = plan(rows, 3, 2);
        assert_eq!(seqs(&p), vec![vec![1, 2], vec![4, 6]]);
        assert!(p.skipped);
        assert!(!p.full);
        assert!(p.held(true));
    }

    #[test]
    fn a_key_that_changes_event_waits_for_its_first_batch() {
        let rows = vec![
            row(1, E, Some("a")),
            row(2, F, Some("a")),
            row(3, F, Some("b")),
            row(4, E, Some("a")),
        ];
        let p = plan(rows, 2, 10);
        assert_eq!(seqs(&p), vec![vec![1], vec![3]]);
        assert!(p.skipped);
    }

    #[test]
    fn a_hook_left_for_lack_of_room_holds_back_the_rest_of_its_key() {
        // One batch of F is all the room: a's F hook stays, so its later E hook must too.
        let rows = vec![
            row(1, E, Some("b")),
            row(2, F, Some("a")),
            row(3, E, Some("a")),
            row(4, E, Some("c")),
        ];
        let p = plan(rows, 1, 10);
        assert_eq!(seqs(&p), vec![vec![1, 4]]);
        assert!(p.skipped);
    }

    #[test]
    fn full_batches_stop_the_read_and_say_more_may_be_claimable() {
        let rows = (1..=10).map(|i| row(i, E, None));
        let p = plan(rows, 2, 3);
        assert_eq!(seqs(&p), vec![vec![1, 2, 3], vec![4, 5, 6]]);
        assert!(p.full);
        assert!(!p.held(true));
    }

    #[test]
    fn an_empty_queue_is_not_held() {
        let p = plan(Vec::new(), 4, 10);
        assert!(p.batches.is_empty());
        assert!(!p.held(false));
    }
}
