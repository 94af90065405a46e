//! Issue 16, item 3: `orderingKey`. Hooks of a config with the same value of the named field go
//! out in acceptance order, one delivery at a time; a key whose receiver keeps failing holds back
//! only that key; a delivery that ends releases its key; the order survives a `kill -9`; hooks
//! without the field are not ordered. Bad values are refused by name.

use serde_json::{Value, json};

use crate::support::*;

const KEY_A: &str = "01011110000";
const KEY_B: &str = "01022220000";

/// An SMS result hook with `hookId` `id` and `recipientNo` `key`.
fn keyed(id: &str, key: &str) -> Value {
    let mut hook = samples::sms_result(id);
    hook["recipientNo"] = json!(key);
    hook
}

fn ids(prefix: &str, range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

/// Index of the first request carrying each of `ids` (panics naming one that never arrived).
fn first_arrivals(reqs: &[Recorded], ids: &[String]) -> Vec<usize> {
    ids.iter()
        .map(|id| {
            reqs.iter()
                .position(|r| r.hook_ids().contains(id))
                .unwrap_or_else(|| panic!("{id} never arrived"))
        })
        .collect()
}

/// The requests that carried any of `ids`, as lists of hookIds.
fn carrying(reqs: &[Recorded], ids: &[String]) -> Vec<Vec<String>> {
    reqs.iter()
        .map(Recorded::hook_ids)
        .filter(|h| h.iter().any(|id| ids.contains(id)))
        .collect()
}

fn ordered_config(rx: &Receiver, path: &str) -> Value {
    let mut body = config_body(SMS, &["MESSAGE_RESULT_UPDATE"], &rx.url(path));
    body["orderingKey"] = json!("recipientNo");
    body["maxHooksPerRequest"] = json!(10);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordering_key_is_refused_by_name_when_bad_and_round_trips_through_put_patch_and_get() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("ordering-input").await;
    for bad in [
        json!(""),
        json!(7),
        json!(["recipientNo"]),
        json!("k".repeat(65)),
        json!("recipient.no"),
    ] {
        let mut body = config_body(SMS, &["MESSAGE_RESULT_UPDATE"], &rx.url("/o"));
        body["orderingKey"] = bad.clone();
        let (status, answer) = srv
            .post(&app.auth(), &app.path("/webhook-configs"), body)
            .await;
        assert_eq!(status, 400, "orderingKey {bad}: {answer}");
        let message = answer["header"]["resultMessage"].as_str().unwrap_or("");
        assert!(
            message.starts_with("orderingKey: "),
            "orderingKey {bad}: {message}"
        );
    }
    let (_, listed) = srv.get(&app.auth(), &app.path("/webhook-configs")).await;
    assert_eq!(
        listed["webhookConfigs"].as_array().map(Vec::len),
        Some(0),
        "a refused config was stored: {listed}"
    );

    let cfg = srv.create_config(&app, ordered_config(&rx, "/o")).await;
    assert_eq!(cfg["orderingKey"], json!("recipientNo"), "{cfg:#}");
    let id = s(&cfg, "webhookConfigId");
    let path = app.path(&format!("/webhook-configs/{id}"));
    assert_eq!(
        srv.get_config(&app, &id).await["orderingKey"],
        json!("recipientNo")
    );

    // A bad change is refused by name and changes nothing.
    let (status, answer) = srv
        .patch(&app.auth(), &path, json!({"orderingKey": "1st"}))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["header"]["resultMessage"]
            .as_str()
            .unwrap_or("")
            .starts_with("orderingKey: "),
        "{answer}"
    );
    assert_eq!(
        srv.get_config(&app, &id).await["orderingKey"],
        json!("recipientNo")
    );

    let patched = srv.expect(
        srv.patch(&app.auth(), &path, json!({"orderingKey": "requestId"}))
            .await,
        200,
        "PATCH orderingKey",
    );
    assert_eq!(
        patched["webhookConfig"]["orderingKey"],
        json!("requestId"),
        "{patched:#}"
    );
    assert_eq!(
        srv.get_config(&app, &id).await["orderingKey"],
        json!("requestId")
    );

    let mut put = config_body(SMS, &["MESSAGE_RESULT_UPDATE"], &rx.url("/o"));
    put["orderingKey"] = json!("senderNo");
    let replaced = srv.expect(srv.put(&app.auth(), &path, put).await, 200, "PUT");
    assert_eq!(
        replaced["webhookConfig"]["orderingKey"],
        json!("senderNo"),
        "{replaced:#}"
    );

    let removed = srv.expect(
        srv.patch(&app.auth(), &path, json!({"orderingKey": null}))
            .await,
        200,
        "PATCH orderingKey null",
    );
    assert_eq!(
        removed["webhookConfig"].get("orderingKey"),
        None,
        "{removed:#}"
    );
    assert!(removed["webhookConfig"]["webhookConfigId"].is_string());
    assert_eq!(srv.get_config(&app, &id).await.get("orderingKey"), None);
}

/// The proof: a receiver fails every request carrying key A for a while. A's hooks
/// arrive in acceptance order (first arrival of each hookId), none before the one ahead of it
/// succeeded; key B's hooks (ingested interleaved with A's) arrive meanwhile without waiting; and
/// batches still form for both keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_receiver_fails_holds_back_only_itself_and_arrives_in_acceptance_order() {
    let rx = Receiver::start().await;
    rx.fail_requests_carrying(Some(("recipientNo", json!(KEY_A))));
    let srv = Server::start().await;
    let app = srv.create_app_key("ordering").await;
    let mut body = ordered_config(&rx, "/ordered");
    body["retrySchedule"] = schedule(30, "200ms");
    srv.create_config(&app, body).await;

    srv.ingest(&app, SMS, "MESSAGE_RESULT_UPDATE", vec![keyed("a1", KEY_A)])
        .await;
    srv.ok(rx.wait_for_requests(1, PROMPT).await);
    // A's next hooks and B's, interleaved, in one request, while a1 is failing.
    let (a, b) = (ids("a", 1..=5), ids("b", 1..=5));
    let mut hooks = Vec::new();
    for i in 1..=4 {
        hooks.push(keyed(&a[i], KEY_A));
        hooks.push(keyed(&b[i - 1], KEY_B));
    }
    hooks.push(keyed(&b[4], KEY_B));
    srv.ingest(&app, SMS, "MESSAGE_RESULT_UPDATE", hooks).await;

    // B's hooks arrive while A still fails, in one batch, in acceptance order.
    let reqs = srv.ok(rx.wait_for_hooks(&b, PROMPT).await);
    assert_eq!(
        carrying(&reqs, &b),
        std::slice::from_ref(&b),
        "B's hooks, in one batch in acceptance order"
    );
    // More of B flows too, still while A fails.
    let b_more = ids("b", 6..=7);
    srv.ingest(
        &app,
        SMS,
        "MESSAGE_RESULT_UPDATE",
        b_more.iter().map(|id| keyed(id, KEY_B)).collect(),
    )
    .await;
    srv.ok(rx.wait_for_hooks(&b_more, PROMPT).await);
    let reqs = srv.ok(rx
        .wait_until(PROMPT, "a1 failing three times", |reqs| {
            carrying(reqs, &a[..1]).len() >= 3
        })
        .await);
    assert_eq!(
        carrying(&reqs, &a[1..]),
        Vec::<Vec<String>>::new(),
        "a hook of A went out while the one ahead of it was failing"
    );
    for r in carrying(&reqs, &a) {
        assert_eq!(r, [a[0].clone()], "a1 is retried alone");
    }

    // A's receiver recovers: a1 goes through, then the rest of A in one batch, in order.
    rx.fail_requests_carrying(None);
    let reqs = srv.ok(rx.wait_for_hooks(&a, PROMPT).await);
    let a_reqs = carrying(&reqs, &a);
    let first = first_arrivals(&reqs, &a);
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(
        first, sorted,
        "A's first arrivals out of acceptance order: {a_reqs:?}"
    );
    assert!(first[0] < first[1], "a2 came with or before a1: {a_reqs:?}");
    assert_eq!(
        a_reqs.last().cloned(),
        Some(a[1..].to_vec()),
        "the rest of A, in one batch in acceptance order after a1: {a_reqs:?}"
    );
    // Every request before a1's success carried a1 alone.
    let a1_success = a_reqs.len() - 2;
    for r in &a_reqs[..=a1_success] {
        assert_eq!(r, &[a[0].clone()], "{a_reqs:?}");
    }
}

/// A batch that carries several keys and fails is split: the hooks of its first key wait for
/// their retry, the other keys' go again at once, in acceptance order and with what came after
/// them, instead of waiting with the failing key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_of_several_keys_holds_back_only_its_failing_key() {
    let rx = Receiver::start().await;
    rx.fail_requests_carrying(Some(("recipientNo", json!(KEY_A))));
    let srv = Server::start().await;
    let app = srv.create_app_key("ordering-split").await;
    let mut body = ordered_config(&rx, "/ordered");
    // A's retry is far beyond the test's patience: nothing of B may wait for it.
    body["retrySchedule"] = schedule(3, "10m");
    srv.create_config(&app, body).await;
    let (a, b) = (ids("a", 1..=2), ids("b", 1..=3));
    // One request: the first claim puts both keys into one batch.
    srv.ingest(
        &app,
        SMS,
        "MESSAGE_RESULT_UPDATE",
        vec![
            keyed(&a[0], KEY_A),
            keyed(&b[0], KEY_B),
            keyed(&a[1], KEY_A),
            keyed(&b[1], KEY_B),
        ],
    )
    .await;
    let reqs = srv.ok(rx.wait_for_requests(1, PROMPT).await);
    assert_eq!(
        reqs[0].hook_ids(),
        [a[0].clone(), b[0].clone(), a[1].clone(), b[1].clone()],
        "the first batch carries both keys"
    );
    // It fails (it carries A): B's two hooks go again at once, without A's, in order.
    let reqs = srv.ok(rx
        .wait_until(PROMPT, "B's hooks sent again", |reqs| {
            carrying(reqs, &b[..1]).len() >= 2
        })
        .await);
    assert_eq!(carrying(&reqs, &b[..2])[1], b[..2].to_vec(), "{reqs:?}");
    // And B goes on flowing while A waits for its retry.
    srv.ingest(
        &app,
        SMS,
        "MESSAGE_RESULT_UPDATE",
        vec![keyed(&b[2], KEY_B)],
    )
    .await;
    let reqs = srv.ok(rx.wait_for_hooks(&b[2..], PROMPT).await);
    assert_eq!(carrying(&reqs, &b[2..]), [b[2..].to_vec()]);
    let first_b = first_arrivals(&reqs, &b);
    assert!(first_b.windows(2).all(|w| w[0] <= w[1]), "{first_b:?}");
    assert_eq!(
        carrying(&reqs, &a).len(),
        1,
        "A was sent again before its retry: {reqs:?}"
    );
}

/// Hooks without the field are not ordered: one of them failing holds back nothing, neither the
/// next hook without the field nor a keyed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_without_the_ordering_field_are_not_held_back() {
    let rx = Receiver::start().await;
    rx.fail_requests_carrying(Some(("hookId", json!("u1"))));
    let srv = Server::start().await;
    let app = srv.create_app_key("ordering-none").await;
    let mut body = ordered_config(&rx, "/unordered");
    // A field the sample hooks do not have (unknown fields are kept, so a hook may carry it).
    body["orderingKey"] = json!("customerRef");
    body["retrySchedule"] = schedule(30, "200ms");
    srv.create_config(&app, body).await;

    srv.ingest(
        &app,
        SMS,
        "MESSAGE_RESULT_UPDATE",
        vec![samples::sms_result("u1")],
    )
    .await;
    let first = srv.ok(rx.wait_for_requests(1, PROMPT).await);
    let u1_hooks_id = first[0].hooks_id().expect("hooksId");
    let mut keyed_hook = samples::sms_result("k1");
    keyed_hook["customerRef"] = json!("r-1");
    srv.ingest(
        &app,
        SMS,
        "MESSAGE_RESULT_UPDATE",
        vec![samples::sms_result("u2"), keyed_hook],
    )
    .await;
    // u2 (no field, like u1) and k1 arrive while u1 keeps failing.
    let later = ["u2".to_string(), "k1".to_string()];
    let reqs = srv.ok(rx.wait_for_hooks(&later, PROMPT).await);
    assert_eq!(
        carrying(&reqs, &later),
        [later.to_vec()],
        "u2 and k1 in one batch, without u1"
    );
    rx.fail_requests_carrying(None);
    srv.wait_for_delivery_status(&app, &u1_hooks_id, "SUCCEEDED", PROMPT)
        .await;
}

/// A delivery that ends FAILED (its retry schedule used up) releases its key: the next hook of
/// that key goes out then, and not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_ends_failed_releases_its_key() {
    let rx = Receiver::start().await;
    rx.fail_requests_carrying(Some(("hookId", json!("f1"))));
    let srv = Server::start().await;
    let app = srv.create_app_key("ordering-failed").await;
    let mut body = ordered_config(&rx, "/failed");
    body["retrySchedule"] = json!(["300ms", "300ms"]);
    srv.create_config(&app, body).await;

    srv.ingest(&app, SMS, "MESSAGE_RESULT_UPDATE", vec![keyed("f1", KEY_A)])
        .await;
    let first = srv.ok(rx.wait_for_requests(1, PROMPT).await);
    let f1_hooks_id = first[0].hooks_id().expect("hooksId");
    srv.ingest(&app, SMS, "MESSAGE_RESULT_UPDATE", vec![keyed("f2", KEY_A)])
        .await;
    let reqs = srv.ok(rx.wait_for_hooks(&["f2".to_string()], PROMPT).await);
    let d = srv.get_delivery(&app, &f1_hooks_id).await;
    assert_eq!(
        d["status"],
        json!("FAILED"),
        "f2 went out before f1 ended: {d:#}"
    );
    let sent: Vec<Vec<String>> = reqs.iter().map(Recorded::hook_ids).collect();
    assert_eq!(
        sent,
        [vec!["f1"], vec!["f1"], vec!["f1"], vec!["f2"]],
        "f1's three attempts, then f2"
    );
}

/// The order is kept in stored rows: after a `kill -9` the restarted server still holds the
/// key's later hook while the earlier one is retried, and sends it only after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_survives_a_kill_9() {
    let rx = Receiver::start().await;
    rx.fail_requests_carrying(Some(("recipientNo", json!(KEY_A))));
    // A short lease on PostgreSQL: the restarted process is another node, which takes over the
    // dead one's delivery once its lease expires (ignored by the embedded store).
    let mut srv = Server::start_with(&["--lease-ttl", "2s"]).await;
    let app = srv.create_app_key("ordering-crash").await;
    let mut body = ordered_config(&rx, "/crash");
    body["retrySchedule"] = schedule(30, "300ms");
    srv.create_config(&app, body).await;

    srv.ingest(&app, SMS, "MESSAGE_RESULT_UPDATE", vec![keyed("c1", KEY_A)])
        .await;
    srv.ok(rx.wait_for_requests(1, PROMPT).await);
    srv.ingest(&app, SMS, "MESSAGE_RESULT_UPDATE", vec![keyed("c2", KEY_A)])
        .await;
    srv.ok(rx.wait_for_requests(2, PROMPT).await);
    srv.kill9().await;
    let before = rx.requests().len();
    srv.restart().await;
    // c1 is retried by the restarted server, and c2 is still held.
    let reqs = srv.ok(rx
        .wait_until(SLOW, "c1 retried twice after the restart", |reqs| {
            reqs.len() >= before + 2
        })
        .await);
    let sent: Vec<Vec<String>> = reqs.iter().map(Recorded::hook_ids).collect();
    assert!(
        sent.iter().all(|h| h == &["c1"]),
        "c2 went out while c1 was failing: {sent:?}"
    );
    rx.fail_requests_carrying(None);
    let reqs = srv.ok(rx.wait_for_hooks(&["c2".to_string()], SLOW).await);
    let c = ["c1".to_string(), "c2".to_string()];
    let a_reqs = carrying(&reqs, &c);
    assert_eq!(
        a_reqs.last().cloned(),
        Some(vec!["c2".to_string()]),
        "{a_reqs:?}"
    );
    assert_eq!(
        a_reqs[a_reqs.len() - 2],
        ["c1"],
        "c1's success came right before c2: {a_reqs:?}"
    );
}
