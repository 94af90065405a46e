//! The `test` route is no unlogged request generator: a test send takes one of its config's
//! `maxRequestsInFlight` slots (one test per config at a time), a burst of test calls opens at
//! most one connection (the rest answer 429 with `Retry-After`), and every test that went out is
//! in the delivery log, marked as a test, with its one attempt, without touching the config's
//! health.

use serde_json::{Value, json};

use crate::support::*;

/// One `test` call over the server's HTTP client: the status, `Retry-After`, and the body.
async fn test_call(
    http: reqwest::Client,
    url: String,
    secret: String,
) -> (u16, Option<String>, Value) {
    let resp = http
        .post(url)
        .header("X-Secret-Key", secret)
        .header("Content-Type", "application/json")
        .body(r#"{"event": "UNSUBSCRIBE"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST test: {e}"));
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// A test call that is expected to get the slot: right after a slot is given back the config's
/// next claim (which looks at the queue, on PostgreSQL a round trip) may hold it for a moment, and
/// the answer is then 429 with `Retry-After`, so it is tried again as a client would, a bounded
/// number of times.
async fn test_call_when_free(
    http: reqwest::Client,
    url: String,
    secret: String,
) -> (u16, Option<String>, Value) {
    for _ in 0..20 {
        let answer = test_call(http.clone(), url.clone(), secret.clone()).await;
        if answer.0 != 429 {
            return answer;
        }
        let wait: u64 = answer
            .1
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
    test_call(http, url, secret).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sends_take_a_slot_of_the_config_answer_429_when_none_is_free_and_are_logged() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("test-sends").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/held"));
    body["maxRequestsInFlight"] = json!(1);
    // Held requests must stay in flight until released, not time out meanwhile.
    body["timeoutMs"] = json!(60_000);
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let url = srv.url(&app.path(&format!("/webhook-configs/{cfg_id}/test")));
    // A new config's first claim (it may have hooks queued before it was known) holds its one
    // slot for a moment: one test send that waits for the slot, so the burst below meets a
    // free config.
    let (status, _, warm_up) =
        test_call_when_free(srv.http.clone(), url.clone(), app.secret.clone()).await;
    assert_eq!(status, 200, "the first test send: {warm_up}");
    let warm_up_hooks_id = s(&warm_up["attempt"], "hooksId");
    rx.set_hold(true);

    // Ten test calls at once towards a receiver that holds every request.
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..10 {
        let call = test_call(srv.http.clone(), url.clone(), app.secret.clone());
        let answers_tx = answers_tx.clone();
        tokio::spawn(async move {
            let _ = answers_tx.send(call.await);
        });
    }
    drop(answers_tx);
    // While the receiver holds, no test can end with 200: the first nine answers are refusals,
    // each without a request made.
    let mut refused = 0;
    for _ in 0..9 {
        let (status, retry_after, body) = match answers.recv().await {
            Some(answer) => answer,
            None => srv.fail("a test call task ended without an answer"),
        };
        assert_eq!(status, 429, "a test call with no free slot: {body}");
        assert_eq!(body["header"]["resultCode"], json!(-1060), "{body}");
        let message = body["header"]["resultMessage"].as_str().unwrap_or("");
        assert!(
            message.contains("maxRequestsInFlight"),
            "the refusal names the limit: {message}"
        );
        let secs: u64 = retry_after
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| srv.fail(format!("429 without a Retry-After in seconds: {body}")));
        assert!(secs >= 1, "Retry-After {secs}");
        refused += 1;
    }
    srv.ok(rx.wait_for_requests(2, PROMPT).await);
    rx.set_hold(false);
    let (status, _, sent) = match answers.recv().await {
        Some(answer) => answer,
        None => srv.fail("the tenth test call ended without an answer"),
    };
    assert_eq!(status, 200, "the one test that got the slot: {sent}");
    assert_eq!(refused, 9);
    assert_eq!(
        rx.requests_to("/held").len(),
        2,
        "one test of the ten went out"
    );
    assert!(
        rx.peak_concurrency("/held") <= 1,
        "ten test calls at once on maxRequestsInFlight 1: {} requests at once",
        rx.peak_concurrency("/held")
    );
    let test_hooks_id = s(&sent["attempt"], "hooksId");

    // A test holding the slot holds back deliveries: a hook ingested meanwhile waits for it.
    rx.set_hold(true);
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let call = test_call_when_free(srv.http.clone(), url.clone(), app.secret.clone());
    tokio::spawn(async move {
        let _ = answers_tx.send(call.await);
    });
    srv.ok(rx.wait_for_requests(3, PROMPT).await);
    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    rx.set_hold(false);
    let (status, _, second) = match answers.recv().await {
        Some(answer) => answer,
        None => srv.fail("the second test call ended without an answer"),
    };
    assert_eq!(status, 200, "second test: {second}");
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    let second_hooks_id = s(&second["attempt"], "hooksId");

    // And a delivery holding the slot refuses a test.
    rx.set_hold(true);
    let more = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 2)],
        )
        .await;
    srv.ok(rx.wait_for_requests(5, PROMPT).await);
    let (status, retry_after, body) =
        test_call(srv.http.clone(), url.clone(), app.secret.clone()).await;
    assert_eq!(
        status, 429,
        "a test while a delivery holds the slot: {body}"
    );
    assert!(retry_after.is_some(), "Retry-After on 429: {body}");
    rx.set_hold(false);
    srv.ok(rx.wait_for_hooks(&more, PROMPT).await);
    srv.wait_for_deliveries(
        &app,
        &format!("webhookConfigId={cfg_id}&status=SUCCEEDED"),
        PROMPT,
        "the two real deliveries to succeed",
        |list| list.iter().filter(|d| d["test"] == json!(false)).count() == 2,
    )
    .await;
    assert!(
        rx.peak_concurrency("/held") <= 1,
        "tests and deliveries share maxRequestsInFlight 1: {} requests at once",
        rx.peak_concurrency("/held")
    );

    // A failing test is logged as FAILED and leaves the config's health alone.
    rx.respond_with(&[500]);
    let (status, _, failed) =
        test_call_when_free(srv.http.clone(), url.clone(), app.secret.clone()).await;
    assert_eq!(status, 200, "a failed test is still answered: {failed}");
    assert_eq!(failed["attempt"]["statusCode"], json!(500), "{failed}");
    let failed_hooks_id = s(&failed["attempt"], "hooksId");
    let health = &srv.get_config(&app, &cfg_id).await["health"];
    assert_eq!(health["state"], json!("HEALTHY"), "{health}");
    assert_eq!(health["consecutiveFailures"], json!(0), "{health}");

    // Every test that went out is in the log, marked, with its one attempt; receivers saw
    // exactly those (the `X-Hookline-Test` requests).
    let tests_received: Vec<String> = rx
        .requests_to("/held")
        .iter()
        .filter(|r| r.header("x-hookline-test") == Some("true"))
        .filter_map(|r| r.hooks_id())
        .collect();
    let log = srv
        .list_deliveries(&app, &format!("webhookConfigId={cfg_id}"))
        .await;
    let mut logged_tests: Vec<String> = log
        .iter()
        .filter(|d| d["test"] == json!(true))
        .map(|d| s(d, "hooksId"))
        .collect();
    let mut expected = vec![
        warm_up_hooks_id,
        test_hooks_id.clone(),
        second_hooks_id.clone(),
        failed_hooks_id.clone(),
    ];
    let mut received = tests_received.clone();
    logged_tests.sort();
    expected.sort();
    received.sort();
    assert_eq!(logged_tests, expected, "the log's tests: {log:?}");
    assert_eq!(received, expected, "the tests the receiver got");
    for (hooks_id, status, code) in [
        (&test_hooks_id, "SUCCEEDED", 200),
        (&second_hooks_id, "SUCCEEDED", 200),
        (&failed_hooks_id, "FAILED", 500),
    ] {
        let d = srv.get_delivery(&app, hooks_id).await;
        assert_eq!(d["test"], json!(true), "{d}");
        assert_eq!(d["status"], json!(status), "{d}");
        assert_eq!(d["attemptCount"], json!(1), "{d}");
        assert_eq!(d["nextAttemptAt"], Value::Null, "never retried: {d}");
        let attempts = d["attempts"].as_array().cloned().unwrap_or_default();
        assert_eq!(attempts.len(), 1, "one attempt: {d}");
        assert_eq!(attempts[0]["statusCode"], json!(code), "{d}");
        assert!(attempts[0]["durationMs"].is_u64(), "{d}");
        assert_eq!(d["envelope"]["hooksId"], json!(hooks_id), "{d}");
    }

    // Not redelivered (a sample is not real work), and not replayed.
    let resp = srv
        .post(
            &app.auth(),
            &app.path(&format!("/deliveries/{failed_hooks_id}/redeliver")),
            json!({}),
        )
        .await;
    srv.ok(check_error(&resp, &[409], Some("hooksId"))
        .map_err(|e| format!("redeliver a test send: {e}")));
    let replayed = srv.expect(
        srv.post(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{cfg_id}/replay")),
            json!({}),
        )
        .await,
        202,
        "replay",
    );
    assert_eq!(
        replayed["count"],
        json!(2),
        "only the two real hooks are replayed: {replayed}"
    );
}
