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
//! What holds a key is read from stored rows (the key values of open deliveries' hooks: SQLite's
//! `delivery_hooks.ordering_key`, PostgreSQL's `delivery_hook_lists.hook_keys`),
//! never kept in memory, so a restart (even a `kill -9`) neither releases nor loses an order.

use hookline_wire::Event;

/// The hash map and set of a claim's keys. Keys are tenants' values, so the hash is seeded per
/// process and per map (foldhash: minimally DoS-resistant, and about five times cheaper per key here than the
/// standard library's SipHash, which was 7 % of an ordered claim's instructions). The tables live
/// for one claim.
pub(crate) type KeyMap<V> = foldhash::HashMap<String, V>;
pub(crate) type KeySet = foldhash::HashSet<String>;

/// Queue rows an ordered claim reads at most, oldest first, without the keys open deliveries
/// hold (the store leaves those out): a bound on one claim's work however long the queue is.
/// When every row it read stays queued, the claim counts as held (see [`Plan::held`]).
pub(crate) const SCAN_LIMIT: u32 = 10_000;

/// Queue rows an ordered claim reads at most, held keys' rows included: with a long backlog of
/// held keys in front, the keys behind it are still found, within this bound.
pub(crate) const READ_LIMIT: usize = 50_000;

/// Queue rows a store reads per statement of an ordered claim (keyset pages in queue order).
pub(crate) const PAGE_ROWS: i64 = 2_000;

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
    /// Rows read were left queued: their key is held (by this claim or an earlier one), or the
    /// batches had no room for them.
    pub(crate) skipped: bool,
}

impl Plan {
    /// Whether what stays queued waits for an ordering key to be released: the batches did not
    /// fill, yet the queue is not empty. (`queue_left`: the store found rows after taking.)
    pub(crate) fn held(&self, queue_left: bool) -> bool {
        !self.full && queue_left
    }
}

/// A run: the rows of one key this claim may take (its first rows read, of one event, at most
/// a batch), or one row without a key.
#[derive(Debug)]
struct Run {
    event: Event,
    rows: Vec<QueuedRow>,
    /// A later row of the key stays queued (another event, or more than a batch): so does
    /// every one after it (a key never overtakes itself).
    closed: bool,
}

/// Whether the store should read on after a row it gave [`Planner::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    More,
    Enough,
}

/// Cuts the config's queue, given row by row in order without the keys open deliveries hold,
/// into up to `wanted` batches of up to `max_hooks` hooks, keeping each key to one batch and in
/// order; says when reading on cannot help.
///
/// Two steps. While reading, each key's rows gather into its run (its first rows, one event,
/// at most a batch). Then [`Planner::finish`] packs the runs, in the order of their first rows,
/// into batches: a whole run into the first batch of its event with room for it, else into a
/// new batch while fewer than `wanted` are open, else as much of it as fits in a batch with
/// room (the rest stays queued). So a key brings several hooks to its delivery when the queue
/// holds them: filling the first batch row by row instead put one hook of each of 100 keys in
/// a batch, and every key's next hook, a turn of the keys later in the queue, found it full
/// (1,000 keys gave 1,000 hooks per claim, whatever the free slots).
///
/// Reading stops when the runs could fill every batch, when the claim has read as many rows as
/// its batches could use twice (at most [`SCAN_LIMIT`]), or after a run of rows none of which
/// can go (their key's run is closed). That run is what a claim meets when few keys are free:
/// the rest of the queue is its own keys' later hooks, so reading on would read up to
/// [`READ_LIMIT`] rows per claim for nothing. It is a bet, not a proof: past it there may be
/// free keys (one key's backlog longer than the run, in front of others). They are not lost:
/// the claim counts as held, and the next claim, when a delivery this one opened ends, reads
/// again from the front. The run is long (at least 1,000 rows) so that such a backlog has to be
/// long before it delays the keys behind it.
pub(crate) struct Planner {
    wanted: usize,
    max_hooks: usize,
    /// Rows this claim may read (`2 * wanted * max_hooks`, at most SCAN_LIMIT).
    enough: usize,
    /// Rows that cannot go, one after the other, before reading stops.
    run_limit: usize,
    /// The runs, in the order of their first rows.
    runs: Vec<Run>,
    /// Each key met: its run.
    keys: KeyMap<usize>,
    /// Rows in runs: what the batches could take at most.
    takeable: usize,
    skipped: bool,
    pushed: usize,
    left_in_a_row: usize,
}

impl Planner {
    pub(crate) fn new(wanted: usize, max_hooks: usize) -> Self {
        let (wanted, max_hooks) = (wanted.max(1), max_hooks.max(1));
        Planner {
            wanted,
            max_hooks,
            enough: (2 * wanted * max_hooks).min(SCAN_LIMIT as usize),
            run_limit: (2 * max_hooks).max(1_000),
            runs: Vec::new(),
            keys: KeyMap::default(),
            takeable: 0,
            skipped: false,
            pushed: 0,
            left_in_a_row: 0,
        }
    }

    /// Gathers the next row of the queue into its key's run (or leaves it queued);
    /// `Flow::Enough`: stop reading.
    pub(crate) fn push(&mut self, row: QueuedRow) -> Flow {
        if self.takeable >= self.wanted * self.max_hooks {
            return Flow::Enough;
        }
        self.pushed += 1;
        if self.gather(row) {
            self.takeable += 1;
            self.left_in_a_row = 0;
        } else {
            self.skipped = true;
            self.left_in_a_row += 1;
        }
        if self.takeable >= self.wanted * self.max_hooks
            || self.pushed >= self.enough
            || self.left_in_a_row >= self.run_limit
        {
            return Flow::Enough;
        }
        Flow::More
    }

    /// Whether `row` joined a run.
    fn gather(&mut self, row: QueuedRow) -> bool {
        let Some(key) = &row.key else {
            self.runs.push(Run {
                event: row.event,
                rows: vec![row],
                closed: true,
            });
            return true;
        };
        if let Some(&r) = self.keys.get(key.as_str()) {
            let run = &mut self.runs[r];
            if run.closed {
                return false;
            }
            if run.event != row.event || run.rows.len() >= self.max_hooks {
                // Another event, or more than a batch: this row and the key's later ones wait.
                run.closed = true;
                return false;
            }
            run.rows.push(row);
            return true;
        }
        self.keys.insert(key.clone(), self.runs.len());
        self.runs.push(Run {
            event: row.event,
            rows: vec![row],
            closed: false,
        });
        true
    }

    /// Packs the runs into batches (see [`Planner`]).
    pub(crate) fn finish(self) -> Plan {
        let (wanted, max_hooks) = (self.wanted, self.max_hooks);
        let mut plan = Plan {
            skipped: self.skipped,
            ..Plan::default()
        };
        for run in self.runs {
            let len = run.rows.len();
            let whole = plan
                .batches
                .iter()
                .position(|b| b.event == run.event && max_hooks - b.rows.len() >= len);
            let b = match whole {
                Some(b) => b,
                None if plan.batches.len() < wanted => {
                    plan.batches.push(PlannedBatch {
                        event: run.event,
                        rows: Vec::with_capacity(len),
                    });
                    plan.batches.len() - 1
                }
                None => {
                    // The batches are all open: as much of the run as one has room for.
                    let Some(b) = plan
                        .batches
                        .iter()
                        .position(|b| b.event == run.event && b.rows.len() < max_hooks)
                    else {
                        plan.skipped = true;
                        continue;
                    };
                    b
                }
            };
            let batch = &mut plan.batches[b];
            let room = max_hooks - batch.rows.len();
            if room < len {
                plan.skipped = true;
            }
            batch.rows.extend(run.rows.into_iter().take(room));
        }
        for batch in &mut plan.batches {
            // A batch's hooks in queue order (each run already is).
            batch.rows.sort_unstable_by_key(|r| r.hook_seq);
        }
        plan.full =
            plan.batches.len() == wanted && plan.batches.iter().all(|b| b.rows.len() == max_hooks);
        plan
    }
}

/// A run of taken rows at least this long is deleted as one range.
pub(crate) const RANGE_MIN: usize = 3;

/// The rows a plan takes, as a store deletes them from the queue: runs of rows that lie next
/// to each other in the queue as ranges (one descent of the primary key, then the next cell,
/// instead of a descent per row), the rest one by one. Claims are often runs: a delivery that
/// ends frees its keys together, and their next hooks were accepted together.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TakenRows {
    /// `(event, first seq, last seq)`: every queued row of the config in that span (all of them
    /// were read) is taken, and is of that event.
    pub(crate) ranges: Vec<(Event, i64, i64)>,
    /// The taken rows in runs shorter than [`RANGE_MIN`].
    pub(crate) singles: Vec<i64>,
}

/// Sorts the plan's rows into [`TakenRows`]. `read`: the seq of every queue row the claim read,
/// in queue order, held keys' rows included (any of them between two taken rows breaks a run).
pub(crate) fn taken_rows(read: &[i64], plan: &Plan) -> TakenRows {
    debug_assert!(
        read.windows(2).all(|w| w[0] < w[1]),
        "rows are read in queue order"
    );
    let mut taken: Vec<(i64, Event)> = plan
        .batches
        .iter()
        .flat_map(|b| b.rows.iter().map(|r| (r.hook_seq, b.event)))
        .collect();
    taken.sort_unstable_by_key(|t| t.0);
    let mut out = TakenRows::default();
    let flush = |out: &mut TakenRows, run: Option<(Event, usize, usize)>| {
        if let Some((event, start, len)) = run {
            let rows = &read[start..start + len];
            match (rows.first(), rows.last()) {
                (Some(&first), Some(&last)) if len >= RANGE_MIN => {
                    out.ranges.push((event, first, last))
                }
                _ => out.singles.extend_from_slice(rows),
            }
        }
    };
    // (event, index in `read` of its first row, rows)
    let mut run: Option<(Event, usize, usize)> = None;
    let mut next = taken.iter().peekable();
    for (i, &seq) in read.iter().enumerate() {
        match next.peek() {
            Some(&&(s, event)) if s == seq => {
                next.next();
                match &mut run {
                    Some((e, _, len)) if *e == event => *len += 1,
                    _ => {
                        flush(&mut out, run.take());
                        run = Some((event, i, 1));
                    }
                }
            }
            _ => flush(&mut out, run.take()),
        }
    }
    flush(&mut out, run.take());
    // A planned row is always one read; were one not, it and every later row taken are deleted
    // one by one (the walk above stopped matching at it).
    out.singles.extend(next.map(|t| t.0));
    out
}

/// [`Planner`] over rows already read.
#[cfg(test)]
pub(crate) fn plan(
    rows: impl IntoIterator<Item = QueuedRow>,
    wanted: usize,
    max_hooks: usize,
) -> Plan {
    let mut planner = Planner::new(wanted, max_hooks);
    for row in rows {
        if planner.push(row) == Flow::Enough {
            break;
        }
    }
    planner.finish()
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

    /// Each key of the plan is in one batch only, and its hooks there are its first rows of
    /// `rows` (the queue read), in queue order.
    fn each_key_in_one_batch_with_its_first_rows(
        p: &super::Plan,
        rows: &[QueuedRow],
    ) -> Result<(), String> {
        let mut batch_of = std::collections::HashMap::new();
        for (b, batch) in p.batches.iter().enumerate() {
            for key in batch.rows.iter().filter_map(|r| r.key.as_ref()) {
                if *batch_of.entry(key).or_insert(b) != b {
                    return Err(format!("key {key} in two batches"));
                }
            }
        }
        for (key, b) in batch_of {
            let taken: Vec<i64> = p.batches[b]
                .rows
                .iter()
                .filter(|r| r.key.as_ref() == Some(key))
                .map(|r| r.hook_seq)
                .collect();
            let first: Vec<i64> = rows
                .iter()
                .filter(|r| r.key.as_ref() == Some(key))
                .take(taken.len())
                .map(|r| r.hook_seq)
                .collect();
            if taken != first {
                return Err(format!(
                    "key {key}: took {taken:?}, its first rows are {first:?}"
                ));
            }
        }
        Ok(())
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
    fn reading_stops_after_a_run_of_rows_that_cannot_go() {
        // Ten keys in turn: each key's first ten hooks make a batch of its own (a batch holds
        // ten), and every later row is one of those keys, which must wait for its delivery.
        let keys = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        let rows = (0..5_000).map(|i| row(i, E, Some(keys[i as usize % 10])));
        let mut read = 0;
        // Five hundred batches wanted: the claim may read 10,000 rows, yet stops at 1,100.
        let p = plan(rows.inspect(|_| read += 1), 500, 10);
        let expected: Vec<Vec<i64>> = (0..10)
            .map(|k| (0..10).map(|n| k + 10 * n).collect())
            .collect();
        assert_eq!(seqs(&p), expected);
        assert!(p.skipped && !p.full);
        assert_eq!(
            read,
            100 + 1_000,
            "ten hooks of each key, then a run of 1,000 that must wait"
        );
    }

    #[test]
    fn a_key_brings_its_later_hooks_to_its_batch_when_the_queue_holds_them() {
        // 1,000 keys in turn, three turns queued, batches of 100, thirty wanted. Filling the
        // first batch row by row took 1,000 hooks (one per key: each key's next hook found its
        // batch full). Runs go whole: 33 keys' three hooks per batch (990 keys), and the last
        // ten keys one hook each where a batch has room.
        let p = plan(
            (0..3_000).map(|i| row(i, E, Some(&(i % 1_000).to_string()))),
            30,
            100,
        );
        assert_eq!(p.batches.len(), 30);
        let taken: usize = p.batches.iter().map(|b| b.rows.len()).sum();
        assert_eq!(taken, 990 * 3 + 10);
        assert!(p.skipped && !p.full);
        // Every key in one batch only, its hooks in queue order, none skipped over.
        let rows: Vec<QueuedRow> = (0..3_000)
            .map(|i| row(i, E, Some(&(i % 1_000).to_string())))
            .collect();
        if let Err(e) = each_key_in_one_batch_with_its_first_rows(&p, &rows) {
            panic!("{e}");
        }
    }

    #[test]
    fn a_busy_keys_backlog_shorter_than_the_run_does_not_hide_the_keys_behind_it() {
        // 900 hooks of one key in front: a batch takes 100 of them, the other 800 wait, and the
        // claim still reaches the free key behind them.
        let mut rows: Vec<_> = (0..900).map(|i| row(i, E, Some("busy"))).collect();
        rows.push(row(900, E, Some("free")));
        let p = plan(rows, 8, 100);
        assert_eq!(p.batches.len(), 2, "{p:?}");
        assert_eq!(p.batches[0].rows.len(), 100);
        assert_eq!(seqs(&p)[1], vec![900]);
    }

    #[test]
    fn rows_next_to_each_other_in_the_queue_are_taken_as_ranges() {
        // Read 1..=12; 5 and 9 stay queued (held), 12 is of another event.
        let rows = vec![
            row(1, E, Some("a")),
            row(2, E, Some("b")),
            row(3, E, Some("c")),
            row(4, E, Some("d")),
            row(6, E, Some("e")),
            row(7, E, Some("f")),
            row(8, E, Some("g")),
            row(10, E, Some("h")),
            row(11, E, Some("i")),
            row(12, F, Some("j")),
        ];
        let p = plan(rows, 2, 10);
        let read: Vec<i64> = (1..=12).collect();
        let taken = super::taken_rows(&read, &p);
        assert_eq!(taken.ranges, vec![(E, 1, 4), (E, 6, 8)]);
        assert_eq!(
            taken.singles,
            vec![10, 11, 12],
            "runs of two, and one of another event"
        );
    }

    #[test]
    fn a_taken_row_that_was_not_read_is_deleted_by_itself_and_so_are_those_after_it() {
        let rows = (1..=8).map(|i| row(i, E, None));
        let p = plan(rows, 1, 10);
        // 4 is missing from what was read: 1-3 are a range, 4-8 go one by one.
        let taken = super::taken_rows(&[1, 2, 3, 5, 6, 7, 8], &p);
        assert_eq!(taken.ranges, vec![(E, 1, 3)]);
        assert_eq!(taken.singles, vec![4, 5, 6, 7, 8]);
    }

    proptest::proptest! {
        /// Whatever the queue: a key's hooks taken are in one batch and are the first of its
        /// rows, in order; a batch holds one event and at most `max_hooks`; at most `wanted`
        /// batches.
        #[test]
        fn a_plan_keeps_every_key_in_one_batch_and_in_order(
            queue in proptest::collection::vec(
                (proptest::option::of(0u8..8), proptest::bool::ANY),
                0..300,
            ),
            wanted in 1usize..5,
            max_hooks in 1usize..12,
        ) {
            let rows: Vec<QueuedRow> = queue
                .iter()
                .enumerate()
                .map(|(i, &(key, other))| {
                    row(i as i64, if other { F } else { E }, key.map(|k| k.to_string()).as_deref())
                })
                .collect();
            let p = plan(rows.clone(), wanted, max_hooks);
            proptest::prop_assert!(p.batches.len() <= wanted);
            for batch in &p.batches {
                proptest::prop_assert!(!batch.rows.is_empty() && batch.rows.len() <= max_hooks);
                for r in &batch.rows {
                    proptest::prop_assert_eq!(r.event, batch.event);
                }
            }
            each_key_in_one_batch_with_its_first_rows(&p, &rows)
                .map_err(proptest::test_runner::TestCaseError::fail)?;
        }
    }

    proptest::proptest! {
        /// Whatever the queue and the plan: every taken row is deleted exactly once, and no
        /// range spans a row that stays queued or is of another event.
        #[test]
        fn taken_rows_delete_exactly_the_plan(
            queue in proptest::collection::vec(
                (proptest::option::of(0u8..6), proptest::bool::ANY, 1i64..4),
                0..200,
            ),
            held in proptest::collection::vec(0u8..6, 0..3),
            wanted in 1usize..4,
            max_hooks in 1usize..20,
        ) {
            let mut seq = 0;
            let queue: Vec<(i64, Event, Option<u8>)> = queue
                .into_iter()
                .map(|(key, other_event, gap)| {
                    seq += gap;
                    (seq, if other_event { F } else { E }, key)
                })
                .collect();
            let read: Vec<i64> = queue.iter().map(|q| q.0).collect();
            let rows = queue
                .iter()
                .filter(|q| q.2.is_none_or(|k| !held.contains(&k)))
                .map(|&(seq, event, key)| row(seq, event, key.map(|k| k.to_string()).as_deref()));
            let p = plan(rows, wanted, max_hooks);
            let planned: Vec<i64> = p.batches.iter().flat_map(|b| b.rows.iter().map(|r| r.hook_seq)).collect();
            // Rows past where the planner stopped count as read here: they stay queued, so they
            // can only end runs.
            let taken = super::taken_rows(&read, &p);
            let mut deleted: Vec<i64> = taken.singles.clone();
            for &(event, first, last) in &taken.ranges {
                for q in queue.iter().filter(|q| q.0 >= first && q.0 <= last) {
                    proptest::prop_assert!(planned.contains(&q.0), "{} in a range is not taken", q.0);
                    proptest::prop_assert_eq!(q.1, event);
                    deleted.push(q.0);
                }
            }
            deleted.sort_unstable();
            let mut expected = planned.clone();
            expected.sort_unstable();
            proptest::prop_assert_eq!(deleted, expected);
        }
    }

    #[test]
    fn an_empty_queue_is_not_held() {
        let p = plan(Vec::new(), 4, 10);
        assert!(p.batches.is_empty());
        assert!(!p.held(false));
    }
}
