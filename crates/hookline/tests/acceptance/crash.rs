//! Criterion 6: an accepted hook survives a SIGKILL: after a restart on the same data dir every
//! accepted hookId arrives (duplicates allowed, losses not).

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::*;

/// Waits until the config's delivery log has settled: nothing PENDING or RETRYING, and every hook
/// of `ids` in a SUCCEEDED delivery.
async fn wait_for_log_to_settle(srv: &Server, app: &App, cfg_id: &str, ids: &[String]) {
    let want: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    srv.wait_for_deliveries(
        app,
        &format!("webhookConfigId={cfg_id}"),
        SLOW,
        "every hook in a SUCCEEDED delivery and nothing pending",
        |l| {
            let done: BTreeSet<&str> = l
                .iter()
                .filter(|d| d["status"] == json!("SUCCEEDED"))
                .flat_map(|d| {
                    d["hookIds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str())
                })
                .collect();
            want.is_subset(&done)
                && l.iter()
                    .all(|d| d["status"] != json!("PENDING") && d["status"] != json!("RETRYING"))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_with_the_receiver_down_loses_no_accepted_hook() {
    // The receiver's port is reserved but nobody listens: every attempt before the crash fails.
    let rx = Receiver::reserve();
    let mut srv = Server::start().await;
    let app = srv.create_app_key("crash").await;
    let mut body = config_body(SMS, &["MESSAGE_RESULT_UPDATE"], &rx.url("/crash"));
    body["retrySchedule"] = schedule(30, "500ms");
    body["timeoutMs"] = json!(2000);
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");

    let mut all = Vec::new();
    for batch in 0..4 {
        if batch == 2 {
            // Half the hooks have had failed attempts (RETRYING deliveries), half may not have.
            srv.wait_for_deliveries(
                &app,
                &format!("webhookConfigId={cfg_id}"),
                PROMPT,
                "a RETRYING delivery",
                |l| l.iter().any(|d| d["status"] == json!("RETRYING")),
            )
            .await;
        }
        let hooks = (0..50)
            .map(|i| {
                let h = samples::hook(SMS, "MESSAGE_RESULT_UPDATE", batch * 50 + i);
                // Half with producer-given hookIds, half generated.
                if batch % 2 == 0 {
                    samples::with_id(h, &format!("crash-{batch}-{i}"))
                } else {
                    h
                }
            })
            .collect();
        all.extend(srv.ingest(&app, SMS, "MESSAGE_RESULT_UPDATE", hooks).await);
    }
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 200);
    srv.kill9().await;

    srv.restart().await;
    rx.listen();
    srv.ok(rx.wait_for_hooks(&all, SLOW).await);
    wait_for_log_to_settle(&srv, &app, &cfg_id, &all).await;
    // The app key, its secret and the config survived too.
    assert_eq!(
        srv.get_config(&app, &cfg_id).await["url"],
        json!(rx.url("/crash"))
    );
    let unknown: Vec<String> = rx
        .hook_counts(None)
        .into_keys()
        .filter(|id| !all.contains(id))
        .collect();
    assert!(
        unknown.is_empty(),
        "hooks that were never ingested arrived: {unknown:?}"
    );
}

/// `kill -9` while deliveries are in flight: the receiver holds the first requests unanswered,
/// their deliveries are committed (PENDING in the log), the server is killed, and after the
/// restart those very deliveries (same hooksId) arrive again, and every accepted hook arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_while_delivering_loses_no_accepted_hook() {
    let rx = Receiver::start().await;
    rx.set_hold(true);
    // A short lease on PostgreSQL: the restarted process is another node, which takes over the
    // dead one's deliveries once their leases expire (ignored by the embedded store).
    let mut srv = Server::start_with(&["--lease-ttl", "2s"]).await;
    let app = srv.create_app_key("crash-live").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/live"));
    body["retrySchedule"] = schedule(30, "500ms");
    body["maxHooksPerRequest"] = json!(10);
    body["maxRequestsInFlight"] = json!(2);
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");

    let mut all = Vec::new();
    for batch in 0..20 {
        let hooks = (0..10)
            .map(|i| samples::hook(SMS, "UNSUBSCRIBE", batch * 10 + i))
            .collect();
        all.extend(srv.ingest(&app, SMS, "UNSUBSCRIBE", hooks).await);
    }
    // Two requests in flight, held unanswered; their deliveries are committed.
    let held = srv.ok(rx.wait_for_requests(2, PROMPT).await);
    let held: BTreeSet<String> = held.iter().filter_map(|r| r.hooks_id()).collect();
    assert_eq!(held.len(), 2, "two deliveries in flight");
    for hooks_id in &held {
        srv.wait_for_delivery_status(&app, hooks_id, "PENDING", PROMPT)
            .await;
    }
    srv.kill9().await;
    rx.set_hold(false);
    let before_restart = rx.requests().len();
    srv.restart().await;
    srv.ok(rx
        .wait_until(
            SLOW,
            "the deliveries in flight at the kill, again",
            |reqs| {
                let again: BTreeSet<String> = reqs[before_restart..]
                    .iter()
                    .filter_map(|r| r.hooks_id())
                    .collect();
                held.is_subset(&again)
            },
        )
        .await);
    srv.ok(rx.wait_for_hooks(&all, SLOW).await);
    wait_for_log_to_settle(&srv, &app, &cfg_id, &all).await;
}
