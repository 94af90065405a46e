//! Criterion 10: SIGTERM stops the server cleanly; a restart on the same data dir serves everything.

use serde_json::json;
use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_and_a_restart_keeps_the_data() {
    let rx = Receiver::start().await;
    let mut srv = Server::start().await;
    let app = srv.create_app_key("graceful").await;
    let cfg = srv
        .create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/g")))
        .await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    let before = srv
        .wait_for_hook_delivery(&app, &cfg_id, &ids[0], "SUCCEEDED", PROMPT)
        .await;
    let cfg_before = srv.get_config(&app, &cfg_id).await;

    let status = srv.stop_sigterm(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "hookline exits 0 on SIGTERM, got {status}"
    );

    srv.restart().await;
    assert_eq!(
        srv.get_config(&app, &cfg_id).await,
        cfg_before,
        "the config survives a restart"
    );
    let after = srv.get_delivery(&app, &s(&before, "hooksId")).await;
    assert_eq!(after, before, "the delivery log survives a restart");
    let keys = srv.expect(
        srv.get(&Auth::Admin, "/v1/appkeys").await,
        200,
        "app keys after restart",
    );
    assert!(
        keys["appKeys"]
            .as_array()
            .is_some_and(|a| a.iter().any(|k| k["appKey"] == json!(app.app_key)))
    );
    // It serves again: a new hook is accepted and delivered, the old one is not sent again.
    let more = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    srv.ok(rx.wait_for_hooks(&more, PROMPT).await);
    assert_eq!(
        rx.hook_counts(None).get(&ids[0]),
        Some(&1),
        "a SUCCEEDED hook is not resent after restart"
    );
}

/// SIGTERM while an attempt is in flight that ends within `--shutdown-grace`: the server waits
/// for it, records it, and exits 0; after a restart the delivery is SUCCEEDED and not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_an_attempt_that_ends_within_the_grace() {
    let rx = Receiver::start().await;
    rx.set_hold(true);
    let mut srv = Server::start_with(&["--shutdown-grace", "60s"]).await;
    let app = srv.create_app_key("graceful-drain").await;
    let mut body = config_body(SMS, &["CONVERSION_BLOCK"], &rx.url("/drain"));
    body["timeoutMs"] = json!(60_000);
    body["retrySchedule"] = schedule(30, "200ms");
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let ids = srv
        .ingest(
            &app,
            SMS,
            "CONVERSION_BLOCK",
            vec![samples::hook(SMS, "CONVERSION_BLOCK", 0)],
        )
        .await;
    let reqs = srv.ok(rx.wait_for_requests(1, PROMPT).await);
    let hooks_id = reqs[0].hooks_id().expect("hooksId");

    srv.signal(libc::SIGTERM);
    srv.wait_for_log(&["delivery engine draining"], PROMPT)
        .await;
    // Draining: the server is still there, waiting for the attempt. It ends now.
    rx.set_hold(false);
    let status = srv.wait_for_exit(PROMPT).await;
    assert!(
        status.success(),
        "hookline exits 0 after draining, got {status}"
    );

    srv.restart().await;
    let d = srv.get_delivery(&app, &hooks_id).await;
    assert_eq!(
        d["status"],
        json!("SUCCEEDED"),
        "recorded before exit: {d:#}"
    );
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(1), "{d:#}");
    // A hook ingested after the restart arrives; the drained delivery would have gone first.
    let later = srv
        .ingest(
            &app,
            SMS,
            "CONVERSION_BLOCK",
            vec![samples::hook(SMS, "CONVERSION_BLOCK", 1)],
        )
        .await;
    srv.wait_for_hook_delivery(&app, &cfg_id, &later[0], "SUCCEEDED", PROMPT)
        .await;
    assert_eq!(
        rx.hook_counts(None).get(&ids[0]),
        Some(&1),
        "a drained, recorded attempt is not sent again"
    );
}

/// SIGTERM while an attempt is still in flight when `--shutdown-grace` runs out (its timeout is a
/// minute away): the server stops waiting at the grace, exits 0 long before the attempt could
/// time out, and after the restart the same delivery (same hooksId) is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_an_attempt_in_flight_when_the_grace_runs_out_loses_nothing() {
    let rx = Receiver::start().await;
    rx.set_hold(true);
    let mut srv = Server::start_with(&["--shutdown-grace", "1s"]).await;
    let app = srv.create_app_key("graceful-inflight").await;
    let mut body = config_body(SMS, &["CONVERSION_BLOCK"], &rx.url("/slow"));
    // The attempt cannot end by itself before the grace does: only the grace ends the wait.
    body["timeoutMs"] = json!(60_000);
    body["retrySchedule"] = schedule(30, "200ms");
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let ids = srv
        .ingest(
            &app,
            SMS,
            "CONVERSION_BLOCK",
            vec![samples::hook(SMS, "CONVERSION_BLOCK", 0)],
        )
        .await;
    let reqs = srv.ok(rx.wait_for_requests(1, PROMPT).await);
    let hooks_id = reqs[0].hooks_id().expect("hooksId");

    // Well under the attempt's 60 s timeout: a server that waited for the attempt fails here.
    let status = srv.stop_sigterm(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "hookline exits 0 on SIGTERM with an attempt in flight, got {status}"
    );
    srv.wait_for_log(&["shutdown grace period over"], PROMPT)
        .await;

    rx.set_hold(false);
    let answered_before = rx.requests().len();
    srv.restart().await;
    let again = srv.ok(rx
        .wait_until(PROMPT, "the delivery again after the restart", |reqs| {
            reqs[answered_before..]
                .iter()
                .any(|r| r.hook_ids().contains(&ids[0]))
        })
        .await);
    let resent = again[answered_before..]
        .iter()
        .find(|r| r.hook_ids().contains(&ids[0]))
        .expect("found above");
    assert_eq!(
        resent.hooks_id().as_deref(),
        Some(hooks_id.as_str()),
        "the unfinished delivery is sent again as itself"
    );
    let d = srv
        .wait_for_hook_delivery(&app, &cfg_id, &ids[0], "SUCCEEDED", PROMPT)
        .await;
    assert_eq!(d["hooksId"], json!(hooks_id));
}
