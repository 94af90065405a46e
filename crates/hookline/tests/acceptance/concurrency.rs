//! Adaptive concurrency: a receiver that keeps up gets more requests at once than the initial
//! eight, never more than the config's `maxRequestsInFlight`, and one that answers with pressure
//! (503) gets fewer again.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// One-hook deliveries of `n` hooks, ingested 1,000 per request.
async fn flood(srv: &Server, app: &App, from: usize, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(1000) {
        let hooks = chunk
            .iter()
            .map(|i| samples::hook(SMS, "UNSUBSCRIBE", *i))
            .collect();
        ids.extend(srv.ingest(app, SMS, "UNSUBSCRIBE", hooks).await);
    }
    ids
}

/// The most requests that were under way at once among the last `n` requests to `path`.
fn late_concurrency(rx: &Receiver, path: &str, n: usize) -> usize {
    let reqs = rx.requests_to(path);
    reqs.iter()
        .skip(reqs.len().saturating_sub(n))
        .map(|r| r.concurrent)
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_keeps_up_gets_more_than_eight_requests_at_once_up_to_the_ceiling() {
    let rx = Receiver::start().await;
    // Each answer takes 10 ms: at 8 requests at once that is 800 deliveries a second, so a
    // backlog keeps every slot busy and the limit has reason to grow.
    rx.set_delay(Duration::from_millis(10));
    let srv = Server::start().await;
    let app = srv.create_app_key("adaptive").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/grows"));
    body["maxHooksPerRequest"] = json!(1);
    let cfg = srv.create_config(&app, body).await;
    assert_eq!(
        cfg["maxRequestsInFlight"],
        json!(64),
        "the default ceiling: {cfg}"
    );
    let ids = flood(&srv, &app, 0, 2000).await;
    srv.ok(rx.wait_for_hooks(&ids, Duration::from_secs(60)).await);
    let peak = rx.peak_concurrency("/grows");
    eprintln!("peak concurrency {peak}");
    assert!(
        peak > 8,
        "a receiver that keeps up should get more than the initial 8 requests at once; peak {peak}"
    );
    assert!(peak <= 64, "never past the ceiling: peak {peak}");

    // The same config with a ceiling of 4: the limit comes down to it at once.
    let id = cfg["webhookConfigId"].as_str().unwrap().to_owned();
    let mut put = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/capped"));
    put["maxHooksPerRequest"] = json!(1);
    put["maxRequestsInFlight"] = json!(4);
    srv.expect(
        srv.put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{id}")),
            put,
        )
        .await,
        200,
        "PUT with a ceiling of 4",
    );
    let ids = flood(&srv, &app, 10_000, 400).await;
    srv.ok(rx.wait_for_hooks(&ids, Duration::from_secs(60)).await);
    let capped = rx.peak_concurrency("/capped");
    assert!(
        capped <= 4,
        "maxRequestsInFlight 4 is a ceiling: {capped} at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_under_pressure_gets_fewer_requests_at_once() {
    let rx = Receiver::start().await;
    rx.set_delay(Duration::from_millis(10));
    let srv = Server::start().await;
    let app = srv.create_app_key("pressure").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/busy"));
    body["maxHooksPerRequest"] = json!(1);
    body["retrySchedule"] = json!(["100ms"]);
    srv.create_config(&app, body).await;

    // First the limit grows on a healthy receiver...
    let ids = flood(&srv, &app, 0, 2000).await;
    srv.ok(rx.wait_for_hooks(&ids, Duration::from_secs(60)).await);
    let grown = late_concurrency(&rx, "/busy", 200);
    assert!(
        grown > 8,
        "the limit should have grown on a healthy receiver first: {grown}"
    );

    // ...then every other answer is a 503 (so the config never turns FAILING, which would send
    // one request at a time anyway): back-pressure brings the limit down.
    let pattern: Vec<u16> = (0..4000)
        .map(|i| if i % 2 == 0 { 503 } else { 200 })
        .collect();
    rx.set_delay(Duration::from_millis(5));
    rx.respond_with(&pattern);
    let ids = flood(&srv, &app, 10_000, 400).await;
    srv.ok(rx.wait_for_hooks(&ids, Duration::from_secs(60)).await);
    let pressed = late_concurrency(&rx, "/busy", 100);
    eprintln!("concurrency {grown} before the 503s, {pressed} at the end");
    assert!(
        pressed * 2 <= grown,
        "under 503s the limit should come down: {pressed} at once at the end, {grown} before"
    );
}

/// While a config has requests in flight its claims are spaced (`BUSY_CLAIM_SPACING`, 5 ms): a
/// hook that comes within that time of the last claim waits for a timer, not for an answer.
/// Here no answer ever comes (every request hangs), hooks come one request at a time back to
/// back, and each must still go out: were the paced claim's wake-up missing, the hooks after the
/// first paced one would wait for an answer that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_that_come_while_every_request_hangs_still_go_out() {
    let rx = Receiver::start().await;
    rx.set_hang(true);
    let srv = Server::start().await;
    let app = srv.create_app_key("paced").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/hung"));
    body["maxHooksPerRequest"] = json!(1);
    body["timeoutMs"] = json!(60_000);
    srv.create_config(&app, body).await;

    // Six: within the adaptive limit's first eight slots, which hanging requests never grow.
    let mut ids = Vec::new();
    for i in 0..6 {
        let hook = samples::hook(SMS, "UNSUBSCRIBE", i);
        ids.extend(srv.ingest(&app, SMS, "UNSUBSCRIBE", vec![hook]).await);
    }
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    assert_eq!(
        rx.requests().len(),
        6,
        "one request a hook, none answered, none sent twice"
    );
}
