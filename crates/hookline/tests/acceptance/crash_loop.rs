//! Issue 5, crash safety: a real server under steady ingest is SIGKILLed at random moments,
//! several times, and restarted. Every acknowledged hook reaches the receiver (0 lost), and every
//! duplicate is explained by what the store held in flight at a kill: right after each kill
//! (the process is dead, so the store holds exactly what committed) the test reads the open
//! deliveries and the queued hooks, and a hook may arrive again after that kill only as one of
//! those open deliveries (same hooksId) or, for a claim that had not committed, from the queue
//! (new hooksId; never on PostgreSQL, whose claims commit before they are sent). On the embedded
//! store an open delivery explains a duplicate only if it was sent shortly before the kill
//! (within what the config's slots keep in flight, [`IN_FLIGHT_DEPTH`] requests): a delivery
//! answered long before and still open would be a lost record, not an attempt in flight.
//!
//! The kill times come from a seeded generator: the seed is printed, and
//! `HOOKLINE_CRASH_LOOP_SEED=<seed>` replays the same kill times.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use serde_json::json;

use crate::support::*;

const KILLS: usize = 5;
const MAX_IN_FLIGHT: usize = 8;
const MAX_HOOKS: usize = 50;
const HOOKS_PER_INGEST: usize = 20;
/// On the embedded store, how far back before a kill a delivery may have been sent and still be
/// unrecorded: a slot holds one request being answered, at most one answered whose record waits
/// for the writer's group, and one more whose claim runs in that same group (claims go through
/// the writer after the records queued before them). On PostgreSQL claims are transactions of
/// their own and do not wait behind records, so only the store's open set ties duplicates there.
const IN_FLIGHT_DEPTH: usize = 3 * MAX_IN_FLIGHT;

/// What the store held when the process died.
struct AtKill {
    /// Requests the receiver had got by then (the process is dead: no more from it).
    received: usize,
    /// Open deliveries (PENDING, RETRYING): sent again after the restart, same hooksId.
    open: BTreeSet<String>,
    /// Hooks still queued for the config: claimed again after the restart, new hooksId.
    queued: BTreeSet<String>,
}

async fn at_kill(srv: &Server, rx: &Receiver) -> AtKill {
    let column = |rows: Vec<Vec<Option<String>>>| -> BTreeSet<String> {
        rows.into_iter()
            .filter_map(|row| row.into_iter().next().flatten())
            .collect()
    };
    let open = column(
        srv.store_query_strings(
            "SELECT hooks_id FROM deliveries WHERE status IN ('PENDING', 'RETRYING')",
            &[],
        )
        .await,
    );
    let queued = column(
        srv.store_query_strings(
            "SELECT h.hook_id FROM queue q JOIN hooks h ON h.seq = q.hook_seq",
            &[],
        )
        .await,
    );
    AtKill {
        // Read after the store: a request the dead process had fully sent is recorded by now.
        received: rx.requests().len(),
        open,
        queued,
    }
}

fn seed() -> u64 {
    match std::env::var("HOOKLINE_CRASH_LOOP_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("HOOKLINE_CRASH_LOOP_SEED={text:?} is not a u64")),
        Err(_) => rand::random(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kill9s_under_steady_ingest_lose_nothing() {
    let seed = seed();
    eprintln!("crash loop: seed {seed} (replay with HOOKLINE_CRASH_LOOP_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let on_postgres = std::env::var("HOOKLINE_ACCEPTANCE_STORE").as_deref() == Ok("postgres");

    let rx = Receiver::start().await;
    // A short lease on PostgreSQL: each restart is a new node, which takes over the dead one's
    // deliveries once their leases expire (ignored by the embedded store).
    let mut srv = Server::start_with(&["--lease-ttl", "2s"]).await;
    let app = srv.create_app_key("crash-loop").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/loop"));
    body["maxHooksPerRequest"] = json!(MAX_HOOKS);
    body["maxRequestsInFlight"] = json!(MAX_IN_FLIGHT);
    body["retrySchedule"] = schedule(30, "200ms");
    // Far beyond any answer of this receiver: a retry within one run would be a timeout, and
    // is allowed only as such (checked below).
    body["timeoutMs"] = json!(20_000);
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");

    // A producer that keeps ingesting and, like a real one, retries a request whose answer it
    // did not get (ingest is idempotent on hookId). Only 202-acknowledged hooks count.
    let base = Arc::new(Mutex::new(srv.url("")));
    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (base, acked, stop) = (base.clone(), acked.clone(), stop.clone());
        let (app_key, secret) = (app.app_key.clone(), app.secret.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let ids: Vec<String> = (n..n + HOOKS_PER_INGEST)
                    .map(|i| format!("loop-{i}"))
                    .collect();
                let hooks: Vec<_> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", i), id))
                    .collect();
                let body = json!({"productName": SMS, "event": "UNSUBSCRIBE", "hooks": hooks});
                loop {
                    let url = format!("{}/v1/appkeys/{app_key}/events", base.lock().unwrap());
                    let sent = client
                        .post(url)
                        .header("X-Secret-Key", &secret)
                        .json(&body)
                        .send()
                        .await;
                    if matches!(&sent, Ok(r) if r.status().as_u16() == 202) {
                        acked.lock().unwrap().extend(ids);
                        break;
                    }
                    // The server is down (being restarted): back off a little and retry.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                n += HOOKS_PER_INGEST;
            }
        })
    };

    // Until the producer has had `hooks` acknowledged in all (each server up long enough to
    // take some, however slow the machine).
    let acked_reach = |hooks: usize| {
        let acked = acked.clone();
        async move {
            let deadline = tokio::time::Instant::now() + SLOW;
            while acked.lock().unwrap().len() < hooks {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the producer's acknowledged hooks did not reach {hooks}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let mut kills = Vec::new();
    for _ in 0..KILLS {
        // Ingest under way on this run first (a few requests acknowledged since the start).
        let so_far = acked.lock().unwrap().len();
        acked_reach(so_far + 3 * HOOKS_PER_INGEST).await;
        // Chaos: the kill lands at an arbitrary moment of steady ingest and delivery.
        let wait = rng.random_range(150..600u64);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        srv.kill9().await;
        kills.push(at_kill(&srv, &rx).await);
        srv.restart().await;
        *base.lock().unwrap() = srv.url("");
    }
    acked_reach(500).await;
    stop.store(true, Ordering::SeqCst);
    producer.await.unwrap();

    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 500,
        "seed {seed}: the producer kept ingesting through the kills: {} hooks",
        acked.len()
    );
    srv.ok(rx.wait_for_hooks(&acked, SLOW).await);
    // Settled: nothing open any more, so nothing more will arrive.
    srv.wait_for_deliveries(
        &app,
        &format!("webhookConfigId={cfg_id}"),
        SLOW,
        "every delivery finished",
        |l| {
            l.iter()
                .all(|d| d["status"] != json!("PENDING") && d["status"] != json!("RETRYING"))
        },
    )
    .await;
    let requests = rx.requests();
    let counts = rx.hook_counts(None);
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "seed {seed}: lost hooks: {lost:?}");

    // Every arrival of a hook after its first must be explained by the kill that ended the
    // run of its earlier arrival, or be a retry after a failed attempt within one run.
    let epoch = |index: usize| kills.iter().filter(|k| k.received <= index).count();
    let mut first_seen: HashMap<String, (usize, String)> = HashMap::new();
    let mut per_kill = vec![0usize; KILLS];
    let mut resent_deliveries = vec![BTreeSet::new(); KILLS];
    let mut unexplained = BTreeSet::new();
    let mut same_run_retries = BTreeSet::new();
    let mut depth = 0;
    for (index, r) in requests.iter().enumerate() {
        let hooks_id = r.hooks_id().unwrap_or_default();
        for hook in r.hook_ids() {
            let Some((earlier, earlier_hooks_id)) = first_seen.get(&hook).cloned() else {
                first_seen.insert(hook, (index, hooks_id.clone()));
                continue;
            };
            let (run, earlier_run) = (epoch(index), epoch(earlier));
            if run == earlier_run {
                // No kill in between: only a retry of the same delivery after a failed attempt.
                if hooks_id == earlier_hooks_id {
                    same_run_retries.insert(hooks_id.clone());
                } else {
                    unexplained.insert(format!("{hook} in {hooks_id}: twice in one run"));
                }
                continue;
            }
            // The kill that ended the run before this arrival's.
            let kill = &kills[run - 1];
            if kill.open.contains(&hooks_id) {
                per_kill[run - 1] += 1;
                resent_deliveries[run - 1].insert(hooks_id.clone());
                // How many requests reached the receiver after this delivery's last arrival
                // before the kill: it was in flight only if that is within what the slots allow.
                let last_before = requests[..kill.received]
                    .iter()
                    .rposition(|x| x.hooks_id().as_deref() == Some(hooks_id.as_str()));
                if let Some(at) = last_before {
                    depth = depth.max(kill.received - at);
                    if !on_postgres && kill.received - at > IN_FLIGHT_DEPTH {
                        unexplained.insert(format!(
                            "{hooks_id} resent after kill {run}: {} requests arrived after it \
                             before the kill, more than the slots keep in flight",
                            kill.received - at
                        ));
                    }
                }
            } else if kill.queued.contains(&hook) && !on_postgres {
                per_kill[run - 1] += 1;
            } else {
                unexplained.insert(format!(
                    "{hook} again in {hooks_id} after kill {run} (first in {earlier_hooks_id}): \
                     neither that delivery was open nor the hook queued at the kill"
                ));
            }
        }
    }
    // A retry within one run must be recorded as one: a failed attempt of that delivery.
    for hooks_id in &same_run_retries {
        let d = srv.get_delivery(&app, hooks_id).await;
        let failed = d["attempts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["statusCode"] != json!(200));
        if !failed {
            unexplained.insert(format!(
                "{hooks_id} sent twice in one run without a failed attempt: {d}"
            ));
        }
    }
    assert!(
        unexplained.is_empty(),
        "seed {seed}: {} unexplained duplicates, e.g. {:#?}",
        unexplained.len(),
        unexplained.iter().take(10).collect::<Vec<_>>()
    );
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "crash loop (seed {seed}): {} hooks acknowledged, {duplicates} duplicates across {KILLS} \
         kills, per kill {per_kill:?} hooks in {:?} deliveries open at the kill; {} retries \
         after a failed attempt; a resent delivery was sent at most {depth} requests before its kill",
        acked.len(),
        resent_deliveries
            .iter()
            .map(BTreeSet::len)
            .collect::<Vec<_>>(),
        same_run_retries.len()
    );
}
