//! Criterion 2: hooks pending together go in one envelope, up to maxHooksPerRequest.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_ingested_together_arrive_in_a_handful_of_batches() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("batching").await;
    let mut body = config_body(SMS, &["MESSAGE_RESULT_UPDATE"], &rx.url("/batch"));
    body["maxHooksPerRequest"] = json!(100);
    body["timeoutMs"] = json!(10000);
    body["retrySchedule"] = schedule(5, "200ms");
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");

    let hooks = (0..250)
        .map(|i| samples::hook(SMS, "MESSAGE_RESULT_UPDATE", i))
        .collect();
    let ids = srv.ingest(&app, SMS, "MESSAGE_RESULT_UPDATE", hooks).await;
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        250,
        "250 distinct generated hookIds"
    );
    for id in &ids {
        assert_id_shape(id, "generated hookId");
    }

    let reqs = srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    let sizes: Vec<usize> = reqs.iter().map(|r| r.hooks().len()).collect();
    assert!(
        sizes.iter().all(|&n| (1..=100).contains(&n)),
        "every envelope carries 1 to 100 hooks, got sizes {sizes:?}"
    );
    assert!(
        (3..=10).contains(&reqs.len()),
        "250 hooks pending at once for maxHooksPerRequest 100 must arrive in a handful (3..=10) of requests, got {} (sizes {sizes:?})",
        reqs.len()
    );
    let counts = rx.hook_counts(None);
    let dup: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        dup.is_empty(),
        "each hook arrives exactly once; these did not: {dup:?}"
    );
    assert_eq!(counts.len(), 250, "only the ingested hooks arrive");
    let hooks_ids: HashSet<_> = reqs.iter().map(|r| r.hooks_id()).collect();
    assert_eq!(
        hooks_ids.len(),
        reqs.len(),
        "every request is its own delivery (distinct hooksId)"
    );

    // The delivery log agrees: the same deliveries, all SUCCEEDED, covering the 250 hooks once each.
    let q = format!("webhookConfigId={cfg_id}");
    let n_req = reqs.len();
    let list = srv
        .wait_for_deliveries(&app, &q, PROMPT, "all deliveries SUCCEEDED", |l| {
            l.len() >= n_req && l.iter().all(|d| d["status"] == json!("SUCCEEDED"))
        })
        .await;
    assert_eq!(
        list.len(),
        n_req,
        "one logged delivery per request: {list:#?}"
    );
    let mut logged: HashMap<String, usize> = HashMap::new();
    for d in &list {
        let ids = str_array(&d["hookIds"], "delivery.hookIds");
        assert!(
            ids.len() <= 100,
            "a logged delivery carries at most 100 hooks"
        );
        for id in ids {
            *logged.entry(id).or_default() += 1;
        }
        assert!(hooks_ids.contains(&d["hooksId"].as_str().map(str::to_string)));
    }
    assert_eq!(logged.len(), 250);
    assert!(logged.values().all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_hooks_per_request_one_sends_one_hook_per_request() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("one-by-one").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/one"));
    body["maxHooksPerRequest"] = json!(1);
    srv.create_config(&app, body).await;
    let hooks = (0..5)
        .map(|i| samples::hook(SMS, "UNSUBSCRIBE", i))
        .collect();
    let ids = srv.ingest(&app, SMS, "UNSUBSCRIBE", hooks).await;
    let reqs = srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    assert_eq!(
        reqs.len(),
        5,
        "five requests of one hook each: {:?}",
        reqs.iter().map(|r| r.summary()).collect::<Vec<_>>()
    );
    assert!(reqs.iter().all(|r| r.hooks().len() == 1));
}

/// A config subscribed to two events: every envelope holds hooks of its own event only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_never_mixes_events() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("mixed").await;
    srv.create_config(
        &app,
        config_body(
            SMS,
            &["MESSAGE_RESULT_UPDATE", "UNSUBSCRIBE"],
            &rx.url("/mixed"),
        ),
    )
    .await;
    let mut by_event: HashMap<String, String> = HashMap::new();
    let mut all = Vec::new();
    for round in 0..3 {
        for event in ["MESSAGE_RESULT_UPDATE", "UNSUBSCRIBE"] {
            let hooks = (0..20)
                .map(|i| samples::hook(SMS, event, round * 100 + i))
                .collect();
            for id in srv.ingest(&app, SMS, event, hooks).await {
                by_event.insert(id.clone(), event.to_string());
                all.push(id);
            }
        }
    }
    let reqs = srv.ok(rx.wait_for_hooks(&all, PROMPT).await);
    for r in &reqs {
        let ev = r.json.as_ref().unwrap()["event"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for id in r.hook_ids() {
            assert_eq!(
                by_event[&id], ev,
                "hook {id} of {} came in an envelope of {ev}",
                by_event[&id]
            );
        }
        // The hooks' own fields match the envelope's event too.
        for h in r.hooks() {
            let is_unsub = h.get("unsubscribeNo").is_some();
            assert_eq!(is_unsub, ev == "UNSUBSCRIBE", "hook {h} in a {ev} envelope");
        }
    }
}

/// While a config's only request slot is busy, new hooks pile up; when the slot frees, they all go
/// in the next envelope (batching is required, not optional).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_that_pile_up_behind_a_busy_request_go_in_one_envelope() {
    let rx = Receiver::start().await;
    rx.set_hold(true);
    let srv = Server::start().await;
    let app = srv.create_app_key("pile-up").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/pile"));
    body["maxRequestsInFlight"] = json!(1);
    body["maxHooksPerRequest"] = json!(100);
    body["timeoutMs"] = json!(30000);
    srv.create_config(&app, body).await;

    let first = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    srv.ok(rx.wait_for_hooks(&first, PROMPT).await);
    let mut rest = Vec::new();
    for i in 1..=29 {
        rest.extend(
            srv.ingest(
                &app,
                SMS,
                "UNSUBSCRIBE",
                vec![samples::hook(SMS, "UNSUBSCRIBE", i)],
            )
            .await,
        );
    }
    assert_eq!(
        rx.requests().len(),
        1,
        "maxRequestsInFlight 1: nothing else is sent while the first request is unanswered"
    );
    rx.set_hold(false);
    let reqs = srv.ok(rx.wait_for_hooks(&rest, PROMPT).await);
    let sizes: Vec<usize> = reqs.iter().map(|r| r.hooks().len()).collect();
    assert_eq!(
        sizes,
        [1, 29],
        "the 29 hooks pending when the slot freed go in one envelope"
    );
}

/// Connections to a receiver are pooled and kept alive: one request after another over the
/// same TCP connection, not a new connection per delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_a_receiver_are_kept_alive() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("keep-alive").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/ka"));
    body["maxHooksPerRequest"] = json!(1);
    body["maxRequestsInFlight"] = json!(1);
    srv.create_config(&app, body).await;
    let hooks = (0..20)
        .map(|i| samples::hook(SMS, "UNSUBSCRIBE", i))
        .collect();
    let ids = srv.ingest(&app, SMS, "UNSUBSCRIBE", hooks).await;
    let reqs = srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    assert_eq!(reqs.len(), 20, "one hook per request");
    let peers: HashSet<_> = reqs.iter().map(|r| r.peer).collect();
    assert!(
        peers.len() <= 2,
        "20 sequential requests should share a pooled connection, they used {} connections",
        peers.len()
    );
}
