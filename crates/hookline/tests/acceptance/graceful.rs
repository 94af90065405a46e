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

/// SIGTERM while an attempt is in flight (the receiver does not answer): the process still exits 0,
/// and the hook is delivered after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_an_attempt_in_flight_loses_nothing() {
    let rx = Receiver::start().await;
    rx.set_hang(true);
    let mut srv = Server::start().await;
    let app = srv.create_app_key("graceful-inflight").await;
    let mut body = config_body(SMS, &["CONVERSION_BLOCK"], &rx.url("/slow"));
    body["timeoutMs"] = json!(2000);
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
    srv.ok(rx.wait_for_requests(1, PROMPT).await);

    let status = srv.stop_sigterm(Duration::from_secs(20)).await;
    assert!(
        status.success(),
        "hookline exits 0 on SIGTERM with an attempt in flight, got {status}"
    );

    rx.set_hang(false);
    let answered_before = rx.requests().len();
    srv.restart().await;
    srv.ok(rx
        .wait_until(
            PROMPT,
            "the hook in an answered request after restart",
            |reqs| {
                reqs[answered_before..]
                    .iter()
                    .any(|r| r.hook_ids().contains(&ids[0]))
            },
        )
        .await);
    srv.wait_for_hook_delivery(&app, &cfg_id, &ids[0], "SUCCEEDED", PROMPT)
        .await;
}
