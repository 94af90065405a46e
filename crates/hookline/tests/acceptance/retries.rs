//! Criteria 3 and 4: failed attempts are retried on the config's schedule with the same hooksId,
//! recorded in the delivery log, and a failed delivery can be redelivered.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::support::*;

fn attempts(d: &Value) -> Vec<Value> {
    d["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("delivery without attempts array: {d:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_500s_then_200_succeeds_on_the_third_attempt_with_the_same_hooks_id() {
    let rx = Receiver::start().await;
    rx.respond_with(&[500, 500]);
    let srv = Server::start().await;
    let app = srv.create_app_key("retry").await;
    let mut body = config_body(SMS, &["MESSAGE_RESULT_UPDATE"], &rx.url("/flaky"));
    body["retrySchedule"] = json!(["200ms", "200ms"]);
    let cfg = srv.create_config(&app, body).await;
    let ids = srv
        .ingest(
            &app,
            SMS,
            "MESSAGE_RESULT_UPDATE",
            vec![samples::sms_result("retry-me-1")],
        )
        .await;

    let reqs = srv.ok(rx.wait_for_requests(3, PROMPT).await);
    let hooks_id = reqs[0].hooks_id().expect("hooksId in the first request");
    for r in &reqs[..3] {
        assert_eq!(
            r.hooks_id().as_deref(),
            Some(hooks_id.as_str()),
            "a retry keeps its hooksId"
        );
        assert_eq!(r.hook_ids(), ids, "a retry carries the same hooks");
        assert_eq!(
            r.json, reqs[0].json,
            "every attempt sends the same envelope"
        );
    }
    let d = srv
        .wait_for_delivery_status(&app, &hooks_id, "SUCCEEDED", PROMPT)
        .await;
    let a = attempts(&d);
    let codes: Vec<&Value> = a.iter().map(|x| &x["statusCode"]).collect();
    assert_eq!(
        codes,
        [&json!(500), &json!(500), &json!(200)],
        "attempt status codes: {d:#}"
    );
    let numbers: Vec<&Value> = a.iter().map(|x| &x["number"]).collect();
    assert_eq!(numbers, [&json!(1), &json!(2), &json!(3)]);
    assert_eq!(
        a[0]["responseBody"],
        json!("receiver says 500"),
        "the response body is recorded"
    );
    assert_eq!(a[2]["errorKind"], Value::Null);
    assert_eq!(d["attemptCount"], json!(3));
    assert_eq!(d["webhookConfigId"], cfg["webhookConfigId"]);
    assert_eq!(str_array(&d["hookIds"], "hookIds"), ids);
    // No attempt after success. A wrong one would follow the schedule (at most 240 ms after the
    // success); a hook ingested now whose first two attempts fail gets its third at least
    // 2 x 160 ms later, so once that third attempt succeeded, a wrong one would have come.
    rx.respond_with(&[500, 500]);
    let later = srv
        .ingest(
            &app,
            SMS,
            "MESSAGE_RESULT_UPDATE",
            vec![samples::sms_result("retry-me-later")],
        )
        .await;
    srv.wait_for_hook_delivery(
        &app,
        &s(&cfg, "webhookConfigId"),
        &later[0],
        "SUCCEEDED",
        PROMPT,
    )
    .await;
    let again = rx
        .requests()
        .iter()
        .filter(|r| r.hooks_id().as_deref() == Some(hooks_id.as_str()))
        .count();
    assert_eq!(again, 3, "no attempt after success");
    assert_eq!(
        srv.get_config(&app, &s(&cfg, "webhookConfigId")).await["health"]["state"],
        json!("HEALTHY"),
        "a config whose last attempt succeeded is HEALTHY"
    );
}

/// Any non-2xx answer is a failed attempt, 4xx included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_answer_is_retried_too() {
    let rx = Receiver::start().await;
    // 410 Gone has its own meaning (it disables the config); any other 4xx is retried.
    rx.respond_with(&[404]);
    let srv = Server::start().await;
    let app = srv.create_app_key("retry-4xx").await;
    srv.create_config(
        &app,
        config_body(SMS, &["CONVERSION_BLOCK"], &rx.url("/missing")),
    )
    .await;
    srv.ingest(
        &app,
        SMS,
        "CONVERSION_BLOCK",
        vec![samples::hook(SMS, "CONVERSION_BLOCK", 3)],
    )
    .await;
    let reqs = srv.ok(rx.wait_for_requests(2, PROMPT).await);
    let hooks_id = reqs[0].hooks_id().unwrap();
    assert_eq!(reqs[1].hooks_id(), Some(hooks_id.clone()));
    let d = srv
        .wait_for_delivery_status(&app, &hooks_id, "SUCCEEDED", PROMPT)
        .await;
    let codes: Vec<Value> = attempts(&d)
        .iter()
        .map(|x| x["statusCode"].clone())
        .collect();
    assert_eq!(codes, [json!(404), json!(200)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_end_failed_and_stop() {
    let rx = Receiver::start().await;
    rx.set_default_status(503);
    let srv = Server::start().await;
    let app = srv.create_app_key("exhaust").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/down"));
    body["retrySchedule"] = json!(["100ms", "100ms"]);
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    srv.ingest(
        &app,
        SMS,
        "UNSUBSCRIBE",
        vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
    )
    .await;
    let reqs = srv.ok(rx.wait_for_requests(1, PROMPT).await);
    let hooks_id = reqs[0].hooks_id().unwrap();
    let d = srv
        .wait_for_delivery_status(&app, &hooks_id, "FAILED", PROMPT)
        .await;
    let a = attempts(&d);
    assert_eq!(a.len(), 3, "1 + 2 retries: {d:#}");
    assert!(a.iter().all(|x| x["statusCode"] == json!(503)), "{d:#}");
    // No attempt after FAILED. A wrong one would follow the schedule (at most 120 ms later); a
    // hook ingested now fails its way through the same schedule, its third attempt at least
    // 2 x 80 ms after its first: once that one is FAILED too, a wrong attempt would have come.
    let later = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 2)],
        )
        .await;
    let later = srv
        .wait_for_hook_delivery(&app, &cfg_id, &later[0], "FAILED", PROMPT)
        .await;
    assert_eq!(attempts(&later).len(), 3, "{later:#}");
    let again = rx
        .requests()
        .iter()
        .filter(|r| r.hooks_id().as_deref() == Some(hooks_id.as_str()))
        .count();
    assert_eq!(again, 3, "no attempt after FAILED");
    assert!(
        d["nextAttemptAt"].is_null(),
        "a FAILED delivery has no next attempt: {}",
        d["nextAttemptAt"]
    );
    // How many failures make a config FAILING is the server's policy; the count and time are not.
    let health = &srv.get_config(&app, &cfg_id).await["health"];
    assert!(
        health["consecutiveFailures"].as_u64().unwrap_or(0) >= 1,
        "consecutiveFailures counts failures: {health}"
    );
    assert!(health["state"].is_string(), "health.state: {health}");
}

/// Criterion 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_end_failed_then_redelivery_to_the_fixed_url_succeeds() {
    let hanging = Receiver::start().await;
    hanging.set_hang(true);
    let healthy = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("timeouts").await;
    let mut body = config_body(
        SMS,
        &["INTERNATIONAL_DELIVERY_RECEIPT"],
        &hanging.url("/hang"),
    );
    body["timeoutMs"] = json!(300);
    body["retrySchedule"] = json!(["100ms", "100ms"]);
    let cfg = srv.create_config(&app, body.clone()).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let hooks = vec![
        samples::with_id(
            samples::hook(SMS, "INTERNATIONAL_DELIVERY_RECEIPT", 0),
            "dlr-a",
        ),
        samples::with_id(
            samples::hook(SMS, "INTERNATIONAL_DELIVERY_RECEIPT", 1),
            "dlr-b",
        ),
    ];
    let ids = srv
        .ingest(&app, SMS, "INTERNATIONAL_DELIVERY_RECEIPT", hooks)
        .await;

    let failed = srv
        .wait_for_deliveries(
            &app,
            &format!("webhookConfigId={cfg_id}&status=FAILED"),
            SLOW,
            "a FAILED delivery",
            |l| !l.is_empty(),
        )
        .await;
    let mut failed_ids = HashSet::new();
    for f in &failed {
        let d = srv.get_delivery(&app, f["hooksId"].as_str().unwrap()).await;
        assert_eq!(d["status"], json!("FAILED"));
        let a = attempts(&d);
        assert_eq!(a.len(), 3, "3 attempts before FAILED: {d:#}");
        for x in &a {
            assert_eq!(
                x["errorKind"],
                json!("TIMEOUT"),
                "a hanging receiver is a TIMEOUT: {d:#}"
            );
            assert_eq!(
                x["statusCode"],
                Value::Null,
                "no status code on a timeout: {d:#}"
            );
        }
        failed_ids.extend(str_array(&d["hookIds"], "hookIds"));
    }
    // Wait until both hooks' deliveries failed (they may be in one or two deliveries).
    let all_failed = srv
        .wait_for_deliveries(
            &app,
            &format!("webhookConfigId={cfg_id}"),
            SLOW,
            "all deliveries FAILED",
            |l| !l.is_empty() && l.iter().all(|d| d["status"] == json!("FAILED")),
        )
        .await;
    let hanging_reqs = hanging.requests();
    for f in &all_failed {
        let hid = f["hooksId"].as_str().unwrap();
        let n = hanging_reqs
            .iter()
            .filter(|r| r.hooks_id().as_deref() == Some(hid))
            .count();
        assert_eq!(n, 3, "the hanging receiver saw delivery {hid} three times");
    }

    // Fix the URL, redeliver each failed delivery.
    body["url"] = json!(healthy.url("/fixed"));
    body["timeoutMs"] = json!(2000);
    let put = srv
        .put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{cfg_id}")),
            body,
        )
        .await;
    let put = srv.expect(put, 200, "PUT config with the healthy URL");
    assert_eq!(put["webhookConfig"]["url"], json!(healthy.url("/fixed")));
    let mut new_ids = Vec::new();
    for f in &all_failed {
        let old = f["hooksId"].as_str().unwrap();
        let resp = srv
            .post(
                &app.auth(),
                &app.path(&format!("/deliveries/{old}/redeliver")),
                json!({}),
            )
            .await;
        let resp = srv.expect(resp, 202, "redeliver");
        let nd = &resp["delivery"];
        let new_id = s(nd, "hooksId");
        assert_ne!(
            new_id, old,
            "a redelivery is a new delivery with a new hooksId"
        );
        assert_id_shape(&new_id, "redelivery hooksId");
        assert_eq!(
            nd["hookIds"], f["hookIds"],
            "a redelivery carries the same hooks"
        );
        assert_eq!(nd["webhookConfigId"], json!(cfg_id));
        new_ids.push((new_id, str_array(&f["hookIds"], "hookIds")));
    }
    let reqs = srv.ok(healthy.wait_for_hooks(&ids, PROMPT).await);
    for (new_id, hook_ids) in &new_ids {
        let r = reqs
            .iter()
            .find(|r| r.hooks_id().as_deref() == Some(new_id.as_str()))
            .unwrap_or_else(|| panic!("the healthy receiver never got delivery {new_id}"));
        assert_eq!(&r.hook_ids(), hook_ids);
        let d = srv
            .wait_for_delivery_status(&app, new_id, "SUCCEEDED", PROMPT)
            .await;
        assert_eq!(attempts(&d).len(), 1);
        assert_eq!(d["envelope"]["hooksId"], json!(new_id));
    }
    // The old deliveries stay FAILED in the log.
    for f in &all_failed {
        let d = srv.get_delivery(&app, f["hooksId"].as_str().unwrap()).await;
        assert_eq!(d["status"], json!("FAILED"));
    }
    assert!(
        failed_ids.iter().all(|id| ids.contains(id)),
        "failed deliveries carry only our hooks"
    );
    let health = &srv.get_config(&app, &cfg_id).await["health"];
    assert_eq!(
        health["state"],
        json!("HEALTHY"),
        "after a success the config is HEALTHY again: {health}"
    );
    assert_eq!(health["consecutiveFailures"], json!(0), "{health}");
}

/// A refused connection is recorded as CONNECT and retried; when the receiver is back (same port)
/// the delivery succeeds with its hooksId.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_retried_until_the_receiver_is_back() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("refused").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/back"));
    body["retrySchedule"] = schedule(30, "200ms");
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");

    let first = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    srv.ok(rx.wait_for_hooks(&first, PROMPT).await);
    rx.stop().await;

    let second = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    let q = format!("webhookConfigId={cfg_id}&hookId={}", second[0]);
    let list = srv
        .wait_for_deliveries(
            &app,
            &q,
            PROMPT,
            "a RETRYING delivery of the second hook",
            |l| l.iter().any(|d| d["status"] == json!("RETRYING")),
        )
        .await;
    let hooks_id = s(&list[0], "hooksId");
    let d = srv.get_delivery(&app, &hooks_id).await;
    let a = attempts(&d);
    assert!(!a.is_empty());
    assert_eq!(
        a[0]["errorKind"],
        json!("CONNECT"),
        "a refused connection is CONNECT: {d:#}"
    );
    assert_eq!(a[0]["statusCode"], Value::Null);
    assert!(
        d["nextAttemptAt"].is_string(),
        "a RETRYING delivery has nextAttemptAt: {d:#}"
    );

    rx.listen();
    let reqs = srv.ok(rx.wait_for_hooks(&second, PROMPT).await);
    let r = reqs.iter().find(|r| r.hook_ids() == second).unwrap();
    assert_eq!(
        r.hooks_id(),
        Some(hooks_id.clone()),
        "the retry keeps the delivery's hooksId"
    );
    let d = srv
        .wait_for_delivery_status(&app, &hooks_id, "SUCCEEDED", PROMPT)
        .await;
    let a = attempts(&d);
    assert!(a.len() >= 2);
    assert_eq!(a.last().unwrap()["statusCode"], json!(200));
    assert!(
        a[..a.len() - 1]
            .iter()
            .all(|x| x["errorKind"] == json!("CONNECT")),
        "{d:#}"
    );
}

fn millis(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .timestamp_millis()
}

/// When attempt `i` of delivery `d` ended (its start plus its duration), in ms.
fn ended(d: &Value, i: usize) -> i64 {
    let a = &d["attempts"][i];
    millis(&a["startedAt"]) + a["durationMs"].as_i64().unwrap_or(0)
}

/// Retries follow the config's schedule, each delay with its own jitter, end to end: 20
/// deliveries fail twice on the schedule ["500ms", "4s"]. No retry comes before its entry less
/// 20 %, the first retry waits for the first entry and the second for the second; and the
/// second retry's delays (each read from its delivery's `nextAttemptAt` while it waits) are
/// spread over the ±20 % window, not all one value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_schedule_with_jitter() {
    const N: usize = 20;
    let rx = Receiver::start().await;
    rx.set_default_status(500);
    // Never FAILING here: a FAILING config paces its work, which would stretch the delays.
    let srv = Server::start_with(&["--failing-after", "1000"]).await;
    let app = srv.create_app_key("schedule").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/spacing"));
    body["retrySchedule"] = json!(["500ms", "4s"]);
    body["maxHooksPerRequest"] = json!(1);
    body["maxRequestsInFlight"] = json!(N);
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let hooks = (0..N)
        .map(|i| samples::hook(SMS, "UNSUBSCRIBE", i))
        .collect();
    srv.ingest(&app, SMS, "UNSUBSCRIBE", hooks).await;

    // Each delivery's wait before its third attempt, as scheduled (nextAttemptAt).
    let mut next_at: HashMap<String, i64> = HashMap::new();
    let deadline = std::time::Instant::now() + SLOW;
    while next_at.len() < N {
        for d in srv
            .list_deliveries(&app, &format!("webhookConfigId={cfg_id}&status=RETRYING"))
            .await
        {
            if d["attemptCount"] == json!(2) {
                next_at
                    .entry(s(&d, "hooksId"))
                    .or_insert_with(|| millis(&d["nextAttemptAt"]));
            }
        }
        if std::time::Instant::now() > deadline {
            srv.fail(format!(
                "only {} deliveries seen waiting for their third attempt",
                next_at.len()
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    rx.set_default_status(200);
    let done = srv
        .wait_for_deliveries(
            &app,
            &format!("webhookConfigId={cfg_id}&status=SUCCEEDED"),
            SLOW,
            "every delivery SUCCEEDED",
            |l| l.len() == N,
        )
        .await;
    let mut factors = Vec::new();
    for summary in &done {
        let d = srv.get_delivery(&app, &s(summary, "hooksId")).await;
        assert_eq!(attempts(&d).len(), 3, "{d:#}");
        let first_gap = millis(&d["attempts"][1]["startedAt"]) - ended(&d, 0);
        let second_gap = millis(&d["attempts"][2]["startedAt"]) - ended(&d, 1);
        // Never early; the first retry on the first entry (well short of the second's 3.2 s
        // minimum, however loaded the machine), the second on the second.
        assert!(
            (400..3000).contains(&first_gap),
            "first retry {first_gap} ms after the first attempt, schedule 500ms ±20 %: {d:#}"
        );
        assert!(
            second_gap >= 3200,
            "second retry {second_gap} ms after the second attempt, schedule 4s ±20 %: {d:#}"
        );
        let scheduled = next_at[&s(&d, "hooksId")] - ended(&d, 1);
        assert!(
            millis(&d["attempts"][2]["startedAt"]) >= next_at[&s(&d, "hooksId")],
            "the third attempt came before its nextAttemptAt: {d:#}"
        );
        factors.push(scheduled as f64 / 4000.0);
    }
    let min = factors.iter().copied().fold(f64::MAX, f64::min);
    let max = factors.iter().copied().fold(f64::MIN, f64::max);
    assert!(
        min >= 0.8 && max <= 1.35,
        "jitter factors outside 0.8-1.2 (+ up to 600 ms to judge an answer, 20 of them at once on a loaded machine): {factors:?}"
    );
    // 20 uniform draws over a 0.4 wide window span less than 0.1 of it with a probability of
    // about 20 * 0.25^19, nil; without jitter they would all be 1.0 (plus a few ms).
    assert!(
        max - min >= 0.1,
        "the retry delays are not jittered: factors {factors:?}"
    );
}

/// When ingest accepted `hook_id`, in epoch milliseconds (from its trace).
async fn accepted_at(srv: &Server, app: &App, hook_id: &str) -> i64 {
    let path = app.path(&format!("/hooks/{hook_id}"));
    let body = srv.expect(srv.get(&app.auth(), &path).await, 200, &path);
    millis(&body["hook"]["acceptedAt"])
}

/// Issue 16, item 4: with `deliveryDeadline`, no attempt starts later than the deadline after
/// the hook was accepted: a retry that would start later ends the delivery EXPIRED, and a
/// delivery that waited past it (behind a slow receiver) is never sent. Bad values are refused
/// by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_deadline_ends_late_deliveries_expired_and_no_attempt_starts_after_it() {
    let failing = Receiver::start().await;
    failing.set_default_status(500);
    let slow = Receiver::start().await;
    slow.set_delay(std::time::Duration::from_millis(2500));
    let srv = Server::start().await;
    let app = srv.create_app_key("deadline").await;

    for bad in [json!("500ms"), json!("31d"), json!("soon"), json!(60)] {
        let mut body = config_body(SMS, &["MESSAGE_RESULT_UPDATE"], &failing.url("/late"));
        body["deliveryDeadline"] = bad.clone();
        let (status, answer) = srv
            .post(&app.auth(), &app.path("/webhook-configs"), body)
            .await;
        assert_eq!(status, 400, "deliveryDeadline {bad}: {answer}");
        let message = answer["header"]["resultMessage"].as_str().unwrap_or("");
        assert!(
            message.starts_with("deliveryDeadline: "),
            "deliveryDeadline {bad}: {message}"
        );
    }
    let (_, listed) = srv.get(&app.auth(), &app.path("/webhook-configs")).await;
    assert_eq!(
        listed["webhookConfigs"].as_array().map(Vec::len),
        Some(0),
        "a refused config was stored: {listed}"
    );

    // Retries every 300 ms (±20 %) for up to 20 attempts, cut by a 2 s deadline.
    let mut body = config_body(SMS, &["MESSAGE_RESULT_UPDATE"], &failing.url("/late"));
    body["retrySchedule"] = Value::Array(vec![json!("300ms"); 19]);
    body["deliveryDeadline"] = json!("2s");
    let cfg = srv.create_config(&app, body).await;
    assert_eq!(cfg["deliveryDeadline"], json!("2s"));
    let ids = srv
        .ingest(
            &app,
            SMS,
            "MESSAGE_RESULT_UPDATE",
            vec![samples::sms_result("late-1")],
        )
        .await;
    let first = srv.ok(failing.wait_for_requests(1, PROMPT).await);
    let hooks_id = first[0].hooks_id().expect("hooksId in the first request");
    let d = srv
        .wait_for_delivery_status(&app, &hooks_id, "EXPIRED", PROMPT)
        .await;
    let accepted = accepted_at(&srv, &app, &ids[0]).await;
    let tried = attempts(&d);
    assert!(
        tried.len() >= 2 && tried.len() < 20,
        "the retries ran until the deadline, not to the end of the schedule: {d:#}"
    );
    for a in &tried {
        let started = millis(&a["startedAt"]);
        assert!(
            started <= accepted + 2_000,
            "an attempt started {} ms after the hook was accepted: {d:#}",
            started - accepted
        );
    }
    assert_eq!(d["nextAttemptAt"], Value::Null, "{d:#}");
    assert_eq!(
        failing.requests().len(),
        tried.len(),
        "the receiver got a request the log does not show"
    );
    let expired = srv
        .list_deliveries(&app, "status=EXPIRED")
        .await
        .iter()
        .map(|d| d["hooksId"].clone())
        .collect::<Vec<_>>();
    assert_eq!(expired, [json!(hooks_id)], "the list filtered by EXPIRED");
    let trace_path = app.path(&format!("/hooks/{}", ids[0]));
    let trace = srv.expect(srv.get(&app.auth(), &trace_path).await, 200, &trace_path);
    assert_eq!(
        trace["hook"]["configs"][0]["outcome"],
        json!("EXPIRED"),
        "{trace:#}"
    );

    // One request at a time to a receiver that takes 2.5 s: the second hook waits in the queue
    // past its 1 s deadline and is never sent.
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &slow.url("/slow"));
    body["maxRequestsInFlight"] = json!(1);
    body["maxHooksPerRequest"] = json!(1);
    body["timeoutMs"] = json!(10_000);
    body["deliveryDeadline"] = json!("1s");
    let slow_cfg = srv.create_config(&app, body).await;
    let slow_id = s(&slow_cfg, "webhookConfigId");
    srv.ingest(
        &app,
        SMS,
        "UNSUBSCRIBE",
        vec![
            samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", 1), "slow-1"),
            samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", 2), "slow-2"),
        ],
    )
    .await;
    let sent = srv
        .wait_for_hook_delivery(&app, &slow_id, "slow-1", "SUCCEEDED", PROMPT)
        .await;
    assert_eq!(attempts(&sent).len(), 1, "{sent:#}");
    let unsent = srv
        .wait_for_hook_delivery(&app, &slow_id, "slow-2", "EXPIRED", PROMPT)
        .await;
    assert_eq!(attempts(&unsent), Vec::<Value>::new(), "{unsent:#}");
    assert_eq!(unsent["attemptCount"], json!(0), "{unsent:#}");
    let received: Vec<Vec<String>> = slow.requests().iter().map(|r| r.hook_ids()).collect();
    assert_eq!(
        received,
        [vec!["slow-1".to_string()]],
        "only the hook in time was sent"
    );
}
