//! Issue 5, crash safety: a real server under steady ingest is SIGKILLed at random moments,
//! several times, and restarted. Every acknowledged hook reaches the receiver (0 lost), and the
//! only duplicates are hooks that were in flight when a kill struck.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::support::*;

const KILLS: usize = 5;
const MAX_IN_FLIGHT: usize = 8;
const MAX_HOOKS: usize = 50;
const HOOKS_PER_INGEST: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kill9s_under_steady_ingest_lose_nothing() {
    let rx = Receiver::start().await;
    let mut srv = Server::start().await;
    let app = srv.create_app_key("crash-loop").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/loop"));
    body["maxHooksPerRequest"] = json!(MAX_HOOKS);
    body["maxRequestsInFlight"] = json!(MAX_IN_FLIGHT);
    body["retrySchedule"] = schedule(30, "200ms");
    srv.create_config(&app, body).await;

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

    for _ in 0..KILLS {
        // Chaos: the kill lands at an arbitrary moment of steady ingest and delivery.
        let wait = rand::random_range(150..600u64);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        srv.kill9().await;
        srv.restart().await;
        *base.lock().unwrap() = srv.url("");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    producer.await.unwrap();

    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 500,
        "the producer kept ingesting through the kills: {} hooks",
        acked.len()
    );
    srv.ok(rx.wait_for_hooks(&acked, SLOW).await);
    let counts: HashMap<String, usize> = rx.hook_counts(None);
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "lost hooks: {lost:?}");
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    // Only what was in flight at a kill may arrive twice: at most every slot's batch, per kill.
    let bound = KILLS * MAX_IN_FLIGHT * MAX_HOOKS;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, more than the {bound} that can be in flight across {KILLS} kills"
    );
    eprintln!(
        "crash loop: {} hooks acknowledged, {duplicates} duplicates across {KILLS} kills",
        acked.len()
    );
}
