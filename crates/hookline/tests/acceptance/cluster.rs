//! Issue 3, several nodes: two real `hookline serve` processes share one PostgreSQL database and
//! the work. 10,000 hooks to 20 configs reach every config exactly once when no node fails; when
//! one node is SIGKILLed mid-run every hook still arrives, and the only duplicates are resends
//! (same hooksId) of the deliveries the killed node had in flight.
//!
//! Needs `HOOKLINE_TEST_DATABASE_URL` (set by `./scripts/test.sh`): without it these tests fail.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::support::server::{Options, scratch_postgres_database};
use crate::support::*;

mod clocks;
mod faults;
mod idempotency;
mod sessions;

const CONFIGS: usize = 20;
const HOOKS: usize = 10_000;
const PAIRS: usize = CONFIGS * HOOKS;
const HOOKS_PER_INGEST: usize = 100;
const PRODUCERS: usize = 4;
const MAX_HOOKS: usize = 10;
const MAX_IN_FLIGHT: usize = 2;
const EVENT: &str = "UNSUBSCRIBE";
/// Long enough that, after the kill, the test reads node a's leases before they expire.
const LEASE_TTL: &str = "5s";
const NODE_NAMES: [&str; 2] = ["a", "b"];
/// Deadline for every (config, hook) pair to arrive, from the first ingest (a run takes about a
/// minute on 2 cores, the two tests side by side).
const RUN_DEADLINE: Duration = Duration::from_secs(300);
/// The kill test: how many hooks ingest may run ahead of delivery, so that it is still going on
/// when the node dies.
const PACE_BACKLOG: usize = 2_000;
/// The kill test: node A dies once this many (config, hook) pairs arrived (40 %).
const KILL_AT: usize = PAIRS * 2 / 5;
/// The kill test: how long each receiver answer takes, so that requests are in flight.
const RECEIVER_DELAY: Duration = Duration::from_millis(30);

fn hook_id(i: usize) -> String {
    format!("hook-{i:05}")
}

fn is_our_hook_id(id: &str) -> bool {
    id.strip_prefix("hook-")
        .filter(|n| n.len() == 5)
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n < HOOKS)
}

fn config_path(config: usize) -> String {
    format!("/cfg-{config:02}")
}

fn config_index(path: &str) -> Option<usize> {
    path.strip_prefix("/cfg-")
        .filter(|n| n.len() == 2)
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n < CONFIGS)
}

/// Two nodes on one fresh database, one app key and 20 configs (all created through node A),
/// each config subscribed to `EVENT` and pointing at its own path of one receiver.
struct Cluster {
    a: Server,
    b: Server,
    app: App,
    rx: Receiver,
    /// The shared database's URL.
    db: String,
}

impl Cluster {
    async fn start(rust_log: &str) -> Cluster {
        let db = scratch_postgres_database("cluster.rs (two nodes sharing one database)").await;
        let rx = Receiver::start().await;
        let node = |id: &'static str| {
            let options = Options {
                rust_log: rust_log.to_string(),
                database_url: Some(db.clone()),
                ..Options::default()
            };
            async move {
                Server::start_with_options(&["--lease-ttl", LEASE_TTL, "--node-id", id], options)
                    .await
            }
        };
        let a = node(NODE_NAMES[0]).await;
        let b = node(NODE_NAMES[1]).await;
        let app = a.create_app_key("cluster").await;
        let mut ids = Vec::new();
        for c in 0..CONFIGS {
            let mut body = config_body(SMS, &[EVENT], &rx.url(&config_path(c)));
            body["maxHooksPerRequest"] = json!(MAX_HOOKS);
            body["maxRequestsInFlight"] = json!(MAX_IN_FLIGHT);
            body["timeoutMs"] = json!(10_000);
            body["retrySchedule"] = schedule(30, "200ms");
            ids.push(s(&a.create_config(&app, body).await, "webhookConfigId"));
        }
        // Node B accepts the app key and sees the configs made through node A.
        for id in &ids {
            b.get_config(&app, id).await;
        }
        Cluster { a, b, app, rx, db }
    }

    fn base_urls(&self) -> [String; 2] {
        [self.a.url(""), self.b.url("")]
    }

    /// Panics with `msg`, what the shared database is doing (its sessions and the locks they
    /// wait for: a stall shows where it waits), each node's panics and warnings, and the tails
    /// of both nodes' stderr.
    async fn fail(&self, msg: impl std::fmt::Display) -> ! {
        let activity = database_activity(&self.db).await;
        panic!(
            "{msg}\n--- the database's sessions ---\n{activity}\n--- node a: {} ---\n\
             --- node b: {} ---\n--- node a stderr (tail) ---\n{}\n--- node b stderr (tail) \
             ---\n{}\n--- end ---",
            problem_lines(&self.a),
            problem_lines(&self.b),
            self.a.stderr_tail(),
            self.b.stderr_tail()
        )
    }

    /// Follows the receiver (and the producers) until `done` holds; fails at `end`, on a producer's
    /// error, or as soon as the tally sees a request that breaks a rule.
    async fn follow(
        &self,
        tally: &mut Tally,
        producers: &mut Producers,
        end: Instant,
        what: &str,
        done: impl Fn(&Tally) -> bool,
    ) {
        loop {
            tally.absorb(&self.rx);
            producers
                .delivered
                .store(tally.pairs.len(), Ordering::Relaxed);
            if let Err(e) = producers.check().await {
                self.fail(e).await;
            }
            if !tally.problems.is_empty() {
                self.fail(tally.problems_report()).await;
            }
            if done(tally) {
                return;
            }
            if Instant::now() >= end {
                self.fail(format!(
                    "timed out waiting for {what}: {}",
                    tally.progress_report()
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every producer finished (each request acknowledged).
    async fn wait_for_producers(&self, producers: &mut Producers, end: Instant) {
        loop {
            if let Err(e) = producers.check().await {
                self.fail(e).await;
            }
            if producers.all_done() {
                return;
            }
            if Instant::now() >= end {
                self.fail("timed out waiting for the producers to finish")
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the delivery log (through `srv`) shows nothing PENDING or RETRYING: every
    /// delivery reached its final state, so nothing more (no late resend) can arrive.
    async fn wait_until_settled(&self, srv: &Server, end: Instant) {
        loop {
            let mut open = Vec::new();
            for status in ["PENDING", "RETRYING"] {
                let path = self
                    .app
                    .path(&format!("/deliveries?status={status}&pageSize=100"));
                let body = srv.expect(srv.get(&self.app.auth(), &path).await, 200, &path);
                let list = body["deliveries"].as_array().cloned().unwrap_or_default();
                open.extend(list);
            }
            if open.is_empty() {
                return;
            }
            if Instant::now() >= end {
                let sample: Vec<String> = open
                    .iter()
                    .take(10)
                    .map(|d| format!("{} {} {}", d["hooksId"], d["webhookConfigId"], d["status"]))
                    .collect();
                self.fail(format!(
                    "every hook arrived, but deliveries are still open (PENDING/RETRYING) at the \
                     deadline, e.g. {sample:#?}"
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One delivery (config, hooksId) as the receiver saw it.
struct Receipt {
    count: usize,
    hook_ids: Vec<String>,
    /// Index (in the receiver's arrival order) of its last receipt.
    last_at: usize,
}

/// What the receiver got, built up incrementally (200,000 hook deliveries are too many to
/// recount on every poll).
#[derive(Default)]
struct Tally {
    /// Receiver requests looked at so far.
    seen: usize,
    /// (config, hooksId) → its receipts.
    deliveries: HashMap<(usize, String), Receipt>,
    /// (config, hookId) → how often it arrived, and the hooksId that first carried it.
    pairs: HashMap<(usize, String), (usize, String)>,
    /// Rules broken (capped); `problem_count` counts them all.
    problems: Vec<String>,
    problem_count: usize,
}

impl Tally {
    fn problem(&mut self, msg: String) {
        self.problem_count += 1;
        if self.problems.len() < 20 {
            self.problems.push(msg);
        }
    }

    fn absorb(&mut self, rx: &Receiver) {
        for r in rx.requests_from(self.seen) {
            let at = self.seen;
            self.seen += 1;
            let Some(config) = config_index(&r.path) else {
                self.problem(format!("a request to an unknown path: {}", r.summary()));
                continue;
            };
            let Some(hooks_id) = r.hooks_id() else {
                self.problem(format!("a request without hooksId: {}", r.summary()));
                continue;
            };
            let ids = r.hook_ids();
            if ids.is_empty() || ids.len() > MAX_HOOKS {
                self.problem(format!(
                    "an envelope of {} hooks (want 1 to maxHooksPerRequest {MAX_HOOKS}): {}",
                    ids.len(),
                    r.summary()
                ));
            }
            if let Some(bad) = ids.iter().find(|id| !is_our_hook_id(id)) {
                self.problem(format!(
                    "a hook that was never ingested ({bad}): {}",
                    r.summary()
                ));
                continue;
            }
            match self.deliveries.entry((config, hooks_id.clone())) {
                Entry::Occupied(mut e) => {
                    let d = e.get_mut();
                    d.count += 1;
                    d.last_at = at;
                    if d.hook_ids != ids {
                        let first = d.hook_ids.clone();
                        self.problem(format!(
                            "delivery {hooks_id} to {} was sent again with other hooks: first \
                             {first:?}, then {ids:?}",
                            r.path
                        ));
                    }
                }
                Entry::Vacant(e) => {
                    e.insert(Receipt {
                        count: 1,
                        hook_ids: ids.clone(),
                        last_at: at,
                    });
                }
            }
            for id in ids {
                let other = match self.pairs.entry((config, id.clone())) {
                    Entry::Occupied(mut e) => {
                        let (n, first) = e.get_mut();
                        *n += 1;
                        (*first != hooks_id).then(|| first.clone())
                    }
                    Entry::Vacant(e) => {
                        e.insert((1, hooks_id.clone()));
                        None
                    }
                };
                if let Some(first) = other {
                    self.problem(format!(
                        "hook {id} reached {} in two different deliveries, {first} and \
                         {hooks_id}: a duplicate that is not a resend",
                        r.path
                    ));
                }
            }
        }
    }

    fn complete(&self) -> bool {
        self.pairs.len() == PAIRS
    }

    fn requests(&self) -> usize {
        self.seen
    }

    /// Hook deliveries beyond the first of each (config, hook).
    fn duplicate_hooks(&self) -> usize {
        self.pairs.values().map(|(n, _)| n - 1).sum()
    }

    /// Deliveries received more than once (resends with the same hooksId).
    fn resent(&self) -> Vec<(&(usize, String), &Receipt)> {
        let mut v: Vec<_> = self
            .deliveries
            .iter()
            .filter(|(_, d)| d.count > 1)
            .collect();
        v.sort_by(|x, y| x.0.cmp(y.0));
        v
    }

    fn problems_report(&self) -> String {
        format!(
            "{} rule(s) broken, the first ones:\n  {}",
            self.problem_count,
            self.problems.join("\n  ")
        )
    }

    fn progress_report(&self) -> String {
        let mut per_config = [0usize; CONFIGS];
        for (config, _) in self.pairs.keys() {
            per_config[*config] += 1;
        }
        let missing: Vec<String> = (0..CONFIGS)
            .flat_map(|c| (0..HOOKS).map(move |i| (c, hook_id(i))))
            .filter(|k| !self.pairs.contains_key(k))
            .take(10)
            .map(|(c, id)| format!("{id} to {}", config_path(c)))
            .collect();
        format!(
            "{} of {PAIRS} (config, hook) pairs arrived in {} requests; distinct hooks per \
             config {per_config:?}; missing e.g. {missing:?}",
            self.pairs.len(),
            self.seen
        )
    }
}

/// Producer tasks ingesting the 10,000 hooks, `HOOKS_PER_INGEST` per request, batch `k` first to
/// node `k % 2`.
struct Producers {
    handles: Vec<Option<JoinHandle<Result<usize, String>>>>,
    /// (config, hook) pairs delivered so far, for the pacing of the kill test.
    delivered: Arc<AtomicUsize>,
    /// Hooks acknowledged (202) so far.
    acked: Arc<AtomicUsize>,
    /// How often a request was sent again to the other node.
    failovers: usize,
}

impl Producers {
    /// `failover`: like a producer behind a load balancer, send a request that got no answer (or a
    /// 5xx) to the other node; otherwise any failure fails the test. `paced`: keep ingest at most
    /// `PACE_BACKLOG` hooks ahead of delivery.
    fn spawn(cluster: &Cluster, failover: bool, paced: bool) -> Producers {
        let delivered = Arc::new(AtomicUsize::new(0));
        let acked = Arc::new(AtomicUsize::new(0));
        let handles = (0..PRODUCERS)
            .map(|p| {
                let producer = Producer {
                    index: p,
                    nodes: cluster.base_urls(),
                    app: cluster.app.clone(),
                    failover,
                    pace: paced.then(|| delivered.clone()),
                    acked: acked.clone(),
                };
                Some(tokio::spawn(producer.run()))
            })
            .collect();
        Producers {
            handles,
            delivered,
            acked,
            failovers: 0,
        }
    }

    /// Collects the producers that finished; the first error, if any.
    async fn check(&mut self) -> Result<(), String> {
        for slot in &mut self.handles {
            if slot.as_ref().is_some_and(|h| h.is_finished()) {
                match slot.take().unwrap().await {
                    Ok(Ok(failovers)) => self.failovers += failovers,
                    Ok(Err(e)) => return Err(format!("a producer failed: {e}")),
                    Err(e) => return Err(format!("a producer panicked: {e}")),
                }
            }
        }
        Ok(())
    }

    fn all_done(&self) -> bool {
        self.handles.iter().all(Option::is_none)
    }
}

struct Producer {
    index: usize,
    /// Base URLs of node a and node b.
    nodes: [String; 2],
    app: App,
    failover: bool,
    /// Delivered (config, hook) pairs, when ingest is paced.
    pace: Option<Arc<AtomicUsize>>,
    acked: Arc<AtomicUsize>,
}

impl Producer {
    /// Ingests its share of the batches; returns how often it failed over.
    async fn run(self) -> Result<usize, String> {
        let Producer {
            index: p,
            nodes,
            app,
            failover,
            pace,
            acked: acked_hooks,
        } = self;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut failovers = 0;
        for batch in (p..HOOKS / HOOKS_PER_INGEST).step_by(PRODUCERS) {
            let first = batch * HOOKS_PER_INGEST;
            if let Some(delivered) = &pace {
                let want = first.saturating_sub(PACE_BACKLOG) * CONFIGS;
                while delivered.load(Ordering::Relaxed) < want {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            let ids: Vec<String> = (first..first + HOOKS_PER_INGEST).map(hook_id).collect();
            let hooks: Vec<Value> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| samples::with_id(samples::hook(SMS, EVENT, first + i), id))
                .collect();
            let body = json!({"productName": SMS, "event": EVENT, "hooks": hooks});
            let started = Instant::now();
            let mut node = batch % 2;
            loop {
                let what = format!("ingest of hooks {first}.. on node {}", NODE_NAMES[node]);
                let url = format!("{}{}", nodes[node], app.path("/events"));
                let sent = client
                    .post(url)
                    .header("X-Secret-Key", &app.secret)
                    .json(&body)
                    .send()
                    .await;
                let error = match sent {
                    Ok(resp) if resp.status().as_u16() == 202 => match resp.json::<Value>().await {
                        Ok(answer) => {
                            let acked = str_array(&answer["hookIds"], "ingest hookIds");
                            if acked != ids {
                                return Err(format!("{what}: hookIds {acked:?}, want {ids:?}"));
                            }
                            acked_hooks.fetch_add(ids.len(), Ordering::Relaxed);
                            break;
                        }
                        Err(e) => format!("{what}: reading the answer: {e}"),
                    },
                    Ok(resp) => {
                        let status = resp.status();
                        let text = resp.text().await.unwrap_or_default();
                        let error = format!("{what}: HTTP {status}: {text}");
                        if status.is_client_error() {
                            return Err(error);
                        }
                        error
                    }
                    Err(e) => format!(
                        "{what}: {} (after {:.1?})",
                        error_chain(&e),
                        started.elapsed()
                    ),
                };
                if !failover {
                    return Err(error);
                }
                if started.elapsed() > Duration::from_secs(60) {
                    return Err(format!(
                        "hooks {first}.. not acknowledged by either node within 60 s; last: {error}"
                    ));
                }
                // Like a load balancer: the same request, to the other node.
                failovers += 1;
                node = 1 - node;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(failovers)
    }
}

/// An error and every error beneath it: reqwest's own message does not say whether the
/// connection was reset, refused or timed out.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// A node's panics and its last warnings and errors, which its tail of debug lines may not reach.
fn problem_lines(srv: &Server) -> String {
    let text = srv.stderr_all();
    let panics: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("panicked at") || l.contains("without a result"))
        .take(10)
        .collect();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    let last = &warnings[warnings.len().saturating_sub(15)..];
    format!(
        "panics {panics:#?}; {} warnings and errors, the last: {last:#?}",
        warnings.len()
    )
}

/// The sessions on the database `db` (what each runs or waits for, since when) and the locks
/// not granted, as text; an error reading them is reported in its place.
async fn database_activity(db: &str) -> String {
    let client = match hookline::store::postgres::connect_url(db).await {
        Ok(client) => client,
        Err(e) => return format!("cannot connect to read them: {e}"),
    };
    let sessions = client
        .query(
            "SELECT pid::TEXT, COALESCE(application_name, ''), COALESCE(state, ''), \
                    COALESCE(wait_event_type || '/' || wait_event, ''), \
                    COALESCE((now() - xact_start)::TEXT, ''), \
                    COALESCE((now() - state_change)::TEXT, ''), \
                    COALESCE(pg_blocking_pids(pid)::TEXT, ''), left(query, 160) \
             FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
             ORDER BY xact_start NULLS LAST",
            &[],
        )
        .await;
    match sessions {
        Ok(rows) => rows
            .iter()
            .map(|r| {
                let cell = |i: usize| r.get::<_, String>(i);
                format!(
                    "pid {} app {:?} {} wait {:?} in transaction for {:?}, in this state for \
                     {:?}, blocked by {}: {}",
                    cell(0),
                    cell(1),
                    cell(2),
                    cell(3),
                    cell(4),
                    cell(5),
                    cell(6),
                    cell(7)
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("cannot read pg_stat_activity: {e}"),
    }
}

/// Successful attempts a node logged (`delivered`, debug level of `hookline::engine`).
fn delivered_log_lines(srv: &Server) -> usize {
    srv.stderr_all()
        .lines()
        .filter(|l| l.contains("hookline::engine") && l.contains(" delivered "))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_every_hook_exactly_once() {
    let cluster = Cluster::start("info,hookline::engine=debug").await;
    let started = Instant::now();
    let end = started + RUN_DEADLINE;
    let mut tally = Tally::default();
    let mut producers = Producers::spawn(&cluster, false, false);
    cluster
        .follow(
            &mut tally,
            &mut producers,
            end,
            "every hook at every config",
            |t| t.complete(),
        )
        .await;
    let elapsed = started.elapsed();
    cluster.wait_for_producers(&mut producers, end).await;
    cluster.wait_until_settled(&cluster.b, end).await;
    tally.absorb(&cluster.rx);
    if !tally.problems.is_empty() {
        cluster.fail(tally.problems_report()).await;
    }

    let (by_a, by_b) = (
        delivered_log_lines(&cluster.a),
        delivered_log_lines(&cluster.b),
    );
    eprintln!(
        "cluster, no failure: {PAIRS} (config, hook) pairs in {} requests ({:.1} hooks each) \
         in {elapsed:.1?}; successful attempts logged: node a {by_a}, node b {by_b}",
        tally.requests(),
        PAIRS as f64 / tally.requests() as f64
    );
    assert_eq!(tally.pairs.len(), PAIRS, "{}", tally.progress_report());
    let duplicated: Vec<String> = tally
        .pairs
        .iter()
        .filter(|(_, (n, _))| *n > 1)
        .take(10)
        .map(|((c, id), (n, h))| format!("{id} to {} {n} times (hooksId {h})", config_path(*c)))
        .collect();
    assert_eq!(
        tally.duplicate_hooks(),
        0,
        "no node failed: every hook reaches every config exactly once; duplicates e.g. {duplicated:?}"
    );
    let resent: Vec<String> = tally
        .resent()
        .iter()
        .take(10)
        .map(|((c, h), d)| format!("{h} to {} {} times", config_path(*c), d.count))
        .collect();
    assert!(
        resent.is_empty(),
        "no node failed: no delivery (hooksId) arrives twice; these did: {resent:?}"
    );
    assert!(
        by_a > 0 && by_b > 0,
        "both nodes share the work: successful attempts logged by node a {by_a}, node b {by_b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_node_mid_run_loses_nothing_and_bounds_duplicates() {
    let mut cluster = Cluster::start("info").await;
    cluster.rx.set_delay(RECEIVER_DELAY);
    let started = Instant::now();
    let end = started + RUN_DEADLINE;
    let mut tally = Tally::default();
    let mut producers = Producers::spawn(&cluster, true, true);
    cluster
        .follow(
            &mut tally,
            &mut producers,
            end,
            "40 % of the (config, hook) pairs before the kill",
            |t| t.pairs.len() >= KILL_AT,
        )
        .await;

    cluster.a.kill9().await;
    let killed = Instant::now();
    // What node a had in flight: the deliveries whose lease it held when it died (sent, or
    // claimed and about to be sent, and not yet recorded). Read before the leases expire.
    let in_flight_on_a = leased_by(&cluster.db, NODE_NAMES[0]).await;
    tally.absorb(&cluster.rx);
    let (pairs_at_kill, requests_at_kill) = (tally.pairs.len(), tally.requests());
    let acked_at_kill = producers.acked.load(Ordering::Relaxed);

    cluster
        .follow(
            &mut tally,
            &mut producers,
            end,
            "every hook at every config after node a was killed",
            |t| t.complete(),
        )
        .await;
    let recovered = killed.elapsed();
    cluster.wait_for_producers(&mut producers, end).await;
    // Resends of node a's deliveries come after its leases expire: wait until nothing is open.
    cluster.wait_until_settled(&cluster.b, end).await;
    tally.absorb(&cluster.rx);
    if !tally.problems.is_empty() {
        cluster.fail(tally.problems_report()).await;
    }

    let resent = tally.resent();
    let duplicates = tally.duplicate_hooks();
    let mut resent_per_config = [0usize; CONFIGS];
    let held = in_flight_on_a.len();
    for ((c, _), _) in &resent {
        resent_per_config[*c] += 1;
    }
    eprintln!(
        "cluster, node a SIGKILLed at {pairs_at_kill} of {PAIRS} pairs ({:.0} %, \
         {requests_at_kill} requests, after {:.1?}, {acked_at_kill} of {HOOKS} hooks ingested): \
         all pairs arrived {recovered:.1?} after the kill, {} requests in all; {} deliveries \
         resent with the same hooksId (per config {resent_per_config:?}) of the {held} node a held \
         leases on, {duplicates} duplicate hook deliveries; {} ingest requests failed over to the \
         other node",
        pairs_at_kill as f64 * 100.0 / PAIRS as f64,
        killed - started,
        tally.requests(),
        resent.len(),
        producers.failovers,
    );

    assert_eq!(tally.pairs.len(), PAIRS, "{}", tally.progress_report());
    assert!(
        pairs_at_kill < PAIRS,
        "node a must die mid-run, but every pair had arrived already"
    );
    for ((c, h), d) in &resent {
        assert!(
            d.count == 2,
            "delivery {h} to {} arrived {} times: one node died once, so at most one resend",
            config_path(*c),
            d.count
        );
        assert!(
            d.last_at >= requests_at_kill,
            "delivery {h} to {} arrived twice before node a was killed: a resend without a failure",
            config_path(*c)
        );
    }
    // A duplicate hook is always a resend of its (only) delivery: `absorb` checked that a hook
    // reaches a config in one hooksId only; here, that its extra copies are that delivery's.
    for ((c, id), (n, h)) in &tally.pairs {
        if *n > 1 {
            let d = &tally.deliveries[&(*c, h.clone())];
            assert!(
                *n <= d.count,
                "hook {id} reached {} {n} times, its delivery {h} only {} times",
                config_path(*c),
                d.count
            );
        }
    }
    // The bound: only deliveries node a held a lease on when it died are sent again. (That is
    // more than its requests in flight: an attempt's record is queued for the writer's next group
    // commit, and the lease ends with that commit, not with the answer.)
    let outside: Vec<String> = resent
        .iter()
        .filter(|((_, h), _)| !in_flight_on_a.contains(h))
        .map(|((c, h), _)| format!("{h} to {}", config_path(*c)))
        .collect();
    assert!(
        outside.is_empty(),
        "resent deliveries that node a did not hold when it died ({} held): {outside:?}",
        in_flight_on_a.len()
    );
    let max_duplicates = in_flight_on_a.len() * MAX_HOOKS;
    assert!(
        duplicates <= max_duplicates,
        "{duplicates} duplicate hook deliveries, more than the {} deliveries node a held \
         could carry ({max_duplicates})",
        in_flight_on_a.len()
    );
}

/// The hooksIds of the deliveries whose lease `node` holds, read from the shared database.
async fn leased_by(db: &str, node: &str) -> std::collections::HashSet<String> {
    let client = hookline::store::postgres::connect_url(db)
        .await
        .unwrap_or_else(|e| panic!("connect to {db}: {e}"));
    client
        .query(
            "SELECT hooks_id FROM deliveries WHERE lease_owner = $1",
            &[&node],
        )
        .await
        .unwrap_or_else(|e| panic!("read the leases of node {node}: {e}"))
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// SIGTERM hands a node's leases back: the deliveries that the shutdown grace period cut short
/// are sent by the other node at once (same hooksIds), not after the leases (five minutes here)
/// would have expired, nor at the other node's next sweep (every 100 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopping_gracefully_hands_its_leases_back() {
    let db = scratch_postgres_database("cluster.rs (leases handed back on SIGTERM)").await;
    let rx = Receiver::start().await;
    rx.set_hold(true);
    let node = |id: &'static str| {
        let options = Options {
            database_url: Some(db.clone()),
            ..Options::default()
        };
        async move {
            Server::start_with_options(
                &[
                    "--lease-ttl",
                    "300s",
                    "--shutdown-grace",
                    "1s",
                    "--node-id",
                    id,
                ],
                options,
            )
            .await
        }
    };
    let mut a = node("a").await;
    let app = a.create_app_key("handback").await;
    let mut body = config_body(SMS, &[EVENT], &rx.url("/handback"));
    body["maxHooksPerRequest"] = json!(5);
    body["maxRequestsInFlight"] = json!(4);
    body["timeoutMs"] = json!(60_000);
    a.create_config(&app, body).await;
    let hooks: Vec<Value> = (0..20)
        .map(|i| samples::with_id(samples::hook(SMS, EVENT, i), &format!("handback-{i:02}")))
        .collect();
    a.ingest(&app, SMS, EVENT, hooks).await;

    // Node A has four deliveries of five hooks in flight, all held unanswered by the receiver.
    let held = rx
        .wait_until(Duration::from_secs(30), "4 held requests", |reqs| {
            reqs.len() >= 4
        })
        .await
        .unwrap_or_else(|e| a.fail(e));
    let held: Vec<String> = held
        .iter()
        .map(|r| {
            r.hooks_id()
                .unwrap_or_else(|| a.fail("a request without hooksId"))
        })
        .collect();
    assert_eq!(held.len(), 4, "only node A's four slots: {held:?}");

    // Node B starts; it sees the four deliveries but A holds their leases.
    let b = node("b").await;
    let status = a.stop_sigterm(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "node A exits cleanly on SIGTERM: {status:?}"
    );
    assert!(
        a.stderr_all().contains("leases handed back"),
        "node A says it handed its leases back:\n{}",
        a.stderr_tail()
    );
    rx.set_hold(false);

    // B sends each of them again, with the same hooksId, long before a lease could expire.
    rx.wait_until(
        Duration::from_secs(60),
        "each held delivery sent again by node B",
        |reqs| {
            held.iter().all(|h| {
                reqs.iter()
                    .filter(|r| r.hooks_id().as_deref() == Some(h.as_str()))
                    .count()
                    >= 2
            })
        },
    )
    .await
    .unwrap_or_else(|e| b.fail(e));
    let delivered = rx.hook_counts(None);
    assert_eq!(delivered.len(), 20, "every hook arrived: {delivered:?}");
}

/// A config's home that dies (`kill -9`) is counted out once the database has closed its
/// connections: the other node serves the config within seconds, long before `--lease-ttl` (here
/// 60 s) would have counted the home out by its missing heartbeat: the hooks ingested after the
/// death, and the retry the home had scheduled, sent when it is due (not a sweep interval, 20 s
/// here, after that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_that_dies_hands_its_configs_over_within_seconds() {
    let db = scratch_postgres_database("cluster.rs (a home that dies)").await;
    let rx = Receiver::start().await;
    let node = |id: &'static str| {
        let options = Options {
            rust_log: "info,hookline::engine=debug".to_string(),
            database_url: Some(db.clone()),
            ..Options::default()
        };
        async move {
            Server::start_with_options(&["--lease-ttl", "60s", "--node-id", id], options).await
        }
    };
    let a = node("a").await;
    let b = node("b").await;
    let app = a.create_app_key("home").await;
    let mut body = config_body(SMS, &[EVENT], &rx.url("/home"));
    body["maxHooksPerRequest"] = json!(1);
    body["retrySchedule"] = schedule(3, "8s");
    let id = s(&a.create_config(&app, body).await, "webhookConfigId");
    b.get_config(&app, &id).await;
    let hooks = |round: &str, n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| samples::with_id(samples::hook(SMS, EVENT, i), &format!("{round}-{i}")))
            .collect()
    };
    let first = a.ingest(&app, SMS, EVENT, hooks("before", 5)).await;
    rx.wait_for_hooks(&first, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| a.fail(e));
    // Which node is the home: the one that logged the attempts (each is logged once recorded).
    let logged = Instant::now() + Duration::from_secs(30);
    let (by_a, by_b) = loop {
        let counts = (delivered_log_lines(&a), delivered_log_lines(&b));
        if counts.0 + counts.1 >= first.len() || Instant::now() > logged {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        (by_a == 0) != (by_b == 0),
        "one node serves the config: node a {by_a}, node b {by_b}"
    );
    let (mut home, other) = if by_a > 0 { (a, b) } else { (b, a) };

    // A delivery the home leaves RETRYING, its next attempt 8 s away.
    rx.respond_with(&[500]);
    other.ingest(&app, SMS, EVENT, hooks("retried", 1)).await;
    home.wait_for_hook_delivery(&app, &id, "retried-0", "RETRYING", Duration::from_secs(30))
        .await;

    home.kill9().await;
    let killed = Instant::now();
    let later = other.ingest(&app, SMS, EVENT, hooks("after", 5)).await;
    rx.wait_for_hooks(&later, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| {
            other.fail(format!(
                "the node left did not serve the config within 20 s of the home's death \
                 (--lease-ttl 60s): {e}"
            ))
        });
    let served_after = killed.elapsed();
    rx.wait_until(
        Duration::from_secs(20).saturating_sub(killed.elapsed()),
        "the retry the dead home had scheduled, sent by the other node when due",
        |reqs| {
            reqs.iter()
                .filter(|r| r.hook_ids().iter().any(|h| h == "retried-0"))
                .count()
                >= 2
        },
    )
    .await
    .unwrap_or_else(|e| other.fail(e));
    eprintln!(
        "the home killed; the other node delivered the config's next hooks {served_after:.1?} \
         later, and the home's retry {:.1?} later",
        killed.elapsed()
    );
}

/// `maxRequestsInFlight` holds for the cluster, not per node: a config is served by one node, its
/// home (`Membership::share`), whichever node ingested its hooks. When
/// the home leaves, the node left serves the config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_limit_of_a_config_holds_across_the_nodes() {
    let db = scratch_postgres_database("cluster.rs (limits across nodes)").await;
    let rx = Receiver::start().await;
    rx.set_delay(Duration::from_millis(20));
    let node = |id: &'static str| {
        let options = Options {
            rust_log: "info,hookline::engine=debug".to_string(),
            database_url: Some(db.clone()),
            ..Options::default()
        };
        async move { Server::start_with_options(&["--node-id", id], options).await }
    };
    let a = node("a").await;
    let b = node("b").await;
    let app = a.create_app_key("limits").await;
    let mut body = config_body(SMS, &[EVENT], &rx.url("/limited"));
    body["maxHooksPerRequest"] = json!(1);
    body["maxRequestsInFlight"] = json!(3);
    let id = s(&a.create_config(&app, body).await, "webhookConfigId");
    b.get_config(&app, &id).await;

    let round_of_hooks = |round: usize| -> Vec<Value> {
        (0..75)
            .map(|i| {
                let id = format!("limit-{round}-{i:02}");
                samples::with_id(samples::hook(SMS, EVENT, i), &id)
            })
            .collect()
    };
    let mut ids = Vec::new();
    for (round, srv) in [&a, &b, &a, &b].into_iter().enumerate() {
        ids.extend(srv.ingest(&app, SMS, EVENT, round_of_hooks(round)).await);
    }
    rx.wait_for_hooks(&ids, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| a.fail(e));

    let peak = rx.peak_concurrency("/limited");
    let (by_a, by_b) = (delivered_log_lines(&a), delivered_log_lines(&b));
    eprintln!(
        "limit 3 across two nodes: peak {peak} requests at once; sent by a {by_a}, by b {by_b}"
    );
    assert!(
        peak <= 3,
        "maxRequestsInFlight 3 holds across both nodes; the receiver saw {peak} at once"
    );
    assert!(
        (by_a == 0) != (by_b == 0),
        "one node, the config's home, sends its deliveries: node a {by_a}, node b {by_b}"
    );

    // The home leaves; the other node serves the config from then on.
    let (mut home, other) = if by_a > 0 { (a, b) } else { (b, a) };
    let status = home.stop_sigterm(Duration::from_secs(30)).await;
    assert!(status.success(), "the home exits cleanly: {status:?}");
    // Only the node left can send them: the home has exited.
    let later = other.ingest(&app, SMS, EVENT, round_of_hooks(4)).await;
    rx.wait_for_hooks(&later, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| other.fail(e));
    let peak = rx.peak_concurrency("/limited");
    assert!(
        peak <= 3,
        "the limit holds after the home left: {peak} at once"
    );
}
