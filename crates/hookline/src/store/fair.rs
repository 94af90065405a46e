//! The fair share of a write group: which queued jobs a backend's writer takes into its next
//! group commit, so that one tenant's large ingests cannot hold another tenant's small one for
//! long. Shared by both backends' writers.
//!
//! A group's commit answers every job in it at once, so a small job waits for everything its
//! group holds and for the group running before it. Taking jobs in queue order up to a count of
//! jobs let a tenant with many configs (each of its hooks is a queue row per config) fill a group
//! with hundreds of thousands of rows. So a group is formed here:
//!
//! - **Jobs of no tenant** (claims, attempt records, config writes, leases, flushes) all go in,
//!   in queue order: they are small, and the engine's progress depends on them.
//! - **Ingests are grouped by tenant (app key)** and weighed in rows (hooks × their fan-out, as
//!   the writer knows it). Each tenant with queued ingests offers its oldest; those a previous
//!   group passed over go in first whatever they weigh, then the others lightest first while the
//!   group stays within [`ROWS_PER_GROUP`] (the first one goes in even if it alone is heavier:
//!   a job is never split). Then the tenants served take further turns, one job each per round,
//!   while the group stays within the bound. A tenant whose job did not fit is passed over and
//!   goes first in the next group: a heavy job waits for at most one group, and a light job of a
//!   quiet tenant does not wait behind a busy tenant's queue, only behind the group running.
//! - One tenant alone still gets groups of many small jobs (up to the bound): group commit stays
//!   as efficient as before for the single-tenant flood.
//!
//! Reordering is safe: an ingest's caller waits for its own commit, and jobs queued by different
//! callers at the same time were never ordered for either of them. Jobs of one tenant leave this
//! queue in their order (the SQLite writer then runs a group's light ingests first, and a request
//! written in parts sends its next part only after the last one committed).

use std::collections::{HashMap, VecDeque};

/// Rows (hooks and queue rows) a PostgreSQL writer group takes from tenants' ingests beyond the
/// first ingest it takes: keeps a group short (tens of milliseconds) while still amortising its
/// commit over many requests. (The SQLite writer has its own, smaller bound.)
pub(crate) const ROWS_PER_GROUP: usize = 10_000;

/// One tenant's queued ingests.
struct Lane<J> {
    jobs: VecDeque<J>,
    /// Passed over by the last group: goes in first next time.
    passed: bool,
    /// When the tenant's first queued job came (ties between equal weights go to the oldest).
    since: u64,
}

/// The writer's queue: jobs waiting for a group.
pub(crate) struct FairQueue<J> {
    shared: VecDeque<J>,
    lanes: HashMap<String, Lane<J>>,
    arrivals: u64,
    len: usize,
}

impl<J> Default for FairQueue<J> {
    fn default() -> Self {
        FairQueue {
            shared: VecDeque::new(),
            lanes: HashMap::new(),
            arrivals: 0,
            len: 0,
        }
    }
}

impl<J> FairQueue<J> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `job`, an ingest of the tenant `tenant` says or (`None`) a job of no tenant.
    pub(crate) fn push(&mut self, job: J, tenant: impl Fn(&J) -> Option<&str>) {
        self.len += 1;
        self.arrivals += 1;
        let Some(key) = tenant(&job) else {
            self.shared.push_back(job);
            return;
        };
        match self.lanes.get_mut(key) {
            Some(lane) => lane.jobs.push_back(job),
            None => {
                let key = key.to_owned();
                self.lanes.insert(
                    key,
                    Lane {
                        jobs: VecDeque::from([job]),
                        passed: false,
                        since: self.arrivals,
                    },
                );
            }
        }
    }

    /// Puts back jobs a group took but did not reach (an earlier job failed it, or its time was
    /// up), in the order
    /// they were taken: they go first into the next group.
    pub(crate) fn put_back(&mut self, jobs: Vec<J>, tenant: impl Fn(&J) -> Option<&str>) {
        for job in jobs.into_iter().rev() {
            self.len += 1;
            match tenant(&job).map(str::to_owned) {
                None => self.shared.push_front(job),
                Some(t) => {
                    let lane = self.lanes.entry(t).or_insert_with(|| Lane {
                        jobs: VecDeque::new(),
                        passed: true,
                        since: 0,
                    });
                    lane.passed = true;
                    lane.since = 0;
                    lane.jobs.push_front(job);
                }
            }
        }
    }

    /// Takes the next group: at most `max_jobs` jobs, its tenants' ingests within `max_rows`
    /// rows as `rows` weighs them (see the module doc).
    pub(crate) fn take_group(
        &mut self,
        max_jobs: usize,
        max_rows: usize,
        mut rows: impl FnMut(&J) -> usize,
    ) -> Vec<J> {
        let shared = self.shared.len().min(max_jobs);
        let mut group: Vec<J> = self.shared.drain(..shared).collect();
        // Each tenant's oldest job: passed-over tenants first, then the lightest.
        let mut offers: Vec<(bool, usize, u64, String)> = self
            .lanes
            .iter()
            .filter_map(|(tenant, lane)| {
                let weight = rows(lane.jobs.front()?);
                Some((!lane.passed, weight, lane.since, tenant.clone()))
            })
            .collect();
        offers.sort_unstable();
        let mut taken_rows = 0usize;
        let mut served: Vec<String> = Vec::new();
        for (fresh, weight, _, tenant) in offers {
            let Some(lane) = self.lanes.get_mut(&tenant) else {
                continue;
            };
            let fits = !fresh || served.is_empty() || taken_rows + weight <= max_rows;
            if group.len() >= max_jobs || !fits {
                lane.passed = true;
                continue;
            }
            if let Some(job) = lane.jobs.pop_front() {
                lane.passed = false;
                taken_rows += weight;
                group.push(job);
                served.push(tenant);
            }
        }
        // Further turns for the tenants served, one job each per round, while they fit.
        while !served.is_empty() && group.len() < max_jobs {
            served.retain(|tenant| {
                if group.len() >= max_jobs {
                    return false;
                }
                let Some(lane) = self.lanes.get_mut(tenant) else {
                    return false;
                };
                let Some(weight) = lane.jobs.front().map(&mut rows) else {
                    return false;
                };
                if taken_rows + weight > max_rows {
                    return false;
                }
                if let Some(job) = lane.jobs.pop_front() {
                    taken_rows += weight;
                    group.push(job);
                }
                true
            });
        }
        self.lanes.retain(|_, lane| !lane.jobs.is_empty());
        self.len -= group.len();
        group
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (tenant, rows, label)
    type J = (Option<&'static str>, usize, &'static str);

    fn queue(jobs: &[J]) -> FairQueue<J> {
        let mut q = FairQueue::default();
        for &job in jobs {
            q.push(job, |j| j.0);
        }
        q
    }

    fn labels(group: Vec<J>) -> Vec<&'static str> {
        group.into_iter().map(|j| j.2).collect()
    }

    #[test]
    fn a_small_job_behind_huge_ones_goes_in_the_next_group_and_huge_ones_are_not_starved() {
        let mut q = queue(&[
            (Some("a"), 8_000, "a1"),
            (Some("a"), 8_000, "a2"),
            (Some("a"), 8_000, "a3"),
            (None, 0, "claim"),
            (Some("b"), 2, "b1"),
        ]);
        // The lightest first: b's hook and a's first ingest, whose rows fit; a2 would not.
        assert_eq!(
            labels(q.take_group(1024, 10_000, |j| j.1)),
            ["claim", "b1", "a1"]
        );
        // b sends again; a was not passed over (a1 went in), so b's lighter job goes first and
        // a's heavy one does not fit beside it: a is passed over...
        q.push((Some("b"), 2_500, "b2"), |j| j.0);
        assert_eq!(labels(q.take_group(1024, 10_000, |j| j.1)), ["b2"]);
        // ...and goes first next time, whatever it weighs.
        q.push((Some("b"), 2, "b3"), |j| j.0);
        assert_eq!(labels(q.take_group(1024, 10_000, |j| j.1)), ["a2", "b3"]);
        assert_eq!(labels(q.take_group(1024, 10_000, |j| j.1)), ["a3"]);
        assert!(q.is_empty());
    }

    #[test]
    fn one_tenant_alone_gets_many_small_jobs_per_group_within_the_bounds() {
        let mut q = FairQueue::default();
        for _ in 0..3000 {
            q.push((Some("a"), 1, "a"), |j| j.0);
        }
        assert_eq!(q.take_group(1024, 10_000, |j| j.1).len(), 1024);
        assert_eq!(q.take_group(1024, 500, |j| j.1).len(), 500);
        assert_eq!(q.len(), 3000 - 1524);
    }

    #[test]
    fn every_waiting_tenant_gets_a_turn_and_jobs_of_one_tenant_keep_their_order() {
        let mut q = queue(&[
            (Some("a"), 10, "a1"),
            (Some("a"), 10, "a2"),
            (Some("a"), 10, "a3"),
            (Some("b"), 10, "b1"),
            (Some("b"), 10, "b2"),
            (Some("c"), 10, "c1"),
        ]);
        // Rows for 5 jobs: one each, then a second turn for the two first in line.
        assert_eq!(
            labels(q.take_group(1024, 50, |j| j.1)),
            ["a1", "b1", "c1", "a2", "b2"]
        );
        assert_eq!(labels(q.take_group(1024, 50, |j| j.1)), ["a3"]);
    }

    #[test]
    fn jobs_put_back_go_first_in_their_order() {
        let mut q = queue(&[(Some("a"), 1, "a1"), (None, 0, "s1"), (Some("b"), 1, "b1")]);
        let group = q.take_group(1024, 10_000, |j| j.1);
        assert_eq!(
            labels(q.take_group(1024, 10_000, |j| j.1)),
            Vec::<&str>::new()
        );
        q.push((None, 0, "s2"), |j| j.0);
        q.push((Some("a"), 1, "a2"), |j| j.0);
        q.put_back(group, |j| j.0);
        assert_eq!(q.len(), 5);
        assert_eq!(
            labels(q.take_group(1024, 10_000, |j| j.1)),
            ["s1", "s2", "a1", "b1", "a2"]
        );
    }
}
