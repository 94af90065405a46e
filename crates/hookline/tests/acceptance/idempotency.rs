//! Criterion 7: a hookId an app key already accepted is acknowledged again but neither stored nor
//! delivered twice.

use std::collections::HashMap;

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_twice_delivers_each_hook_once() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("idem").await;
    let cfg = srv
        .create_config(
            &app,
            config_body(SMS, &["MESSAGE_RESULT_UPDATE"], &rx.url("/idem")),
        )
        .await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let hooks: Vec<_> = (0..5)
        .map(|i| {
            samples::with_id(
                samples::hook(SMS, "MESSAGE_RESULT_UPDATE", i),
                &format!("idem-{i}"),
            )
        })
        .collect();
    let first = srv
        .ingest(&app, SMS, "MESSAGE_RESULT_UPDATE", hooks.clone())
        .await;
    let second = srv
        .ingest(&app, SMS, "MESSAGE_RESULT_UPDATE", hooks.clone())
        .await;
    let want: Vec<String> = (0..5).map(|i| format!("idem-{i}")).collect();
    assert_eq!(first, want);
    assert_eq!(
        second, want,
        "a repeated request is acknowledged with the same hookIds"
    );
    srv.ok(rx.wait_for_hooks(&want, PROMPT).await);

    // Once more after delivery, with different content under the same ids: still acknowledged,
    // still not delivered again.
    let changed: Vec<_> = (0..5)
        .map(|i| {
            samples::with_id(
                samples::hook(SMS, "MESSAGE_RESULT_UPDATE", 50 + i),
                &format!("idem-{i}"),
            )
        })
        .collect();
    let third = srv
        .ingest(&app, SMS, "MESSAGE_RESULT_UPDATE", changed)
        .await;
    assert_eq!(third, want);

    // A sentinel: once it arrived, any duplicate queued before it would have been sent too.
    let sentinel = srv
        .ingest(
            &app,
            SMS,
            "MESSAGE_RESULT_UPDATE",
            vec![samples::sms_result("idem-sentinel")],
        )
        .await;
    srv.ok(rx.wait_for_hooks(&sentinel, PROMPT).await);
    srv.wait_for_hook_delivery(&app, &cfg_id, "idem-sentinel", "SUCCEEDED", PROMPT)
        .await;

    let counts = rx.hook_counts(None);
    for id in want.iter().chain(&sentinel) {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "hook {id} delivered once; counts {counts:?}"
        );
    }
    assert_eq!(counts.len(), 6);
    // The first content is the one delivered.
    for r in rx.requests() {
        for h in r.hooks() {
            if let Some(i) = h["hookId"]
                .as_str()
                .and_then(|id| id.strip_prefix("idem-"))
                .and_then(|n| n.parse::<usize>().ok())
            {
                assert_eq!(
                    h["recipientSeq"],
                    json!(i + 1),
                    "the first accepted content is delivered: {h}"
                );
            }
        }
    }
    let mut logged: HashMap<String, usize> = HashMap::new();
    for d in srv
        .list_deliveries(&app, &format!("webhookConfigId={cfg_id}"))
        .await
    {
        for id in str_array(&d["hookIds"], "hookIds") {
            *logged.entry(id).or_default() += 1;
        }
    }
    assert_eq!(logged.len(), 6, "{logged:?}");
    assert!(
        logged.values().all(|&n| n == 1),
        "each hook in one delivery: {logged:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_hook_id_twice_in_one_request_is_one_hook() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("idem-dup").await;
    srv.create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/dup")))
        .await;
    let h = samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", 0), "dup-1");
    let body = json!({"productName": SMS, "event": "UNSUBSCRIBE", "hooks": [h.clone(), h]});
    let resp = srv.expect(
        srv.post(&app.auth(), &app.path("/events"), body).await,
        202,
        "ingest a duplicate pair",
    );
    let ids = str_array(&resp["hookIds"], "hookIds");
    assert!(
        !ids.is_empty() && ids.iter().all(|i| i == "dup-1"),
        "hookIds of a request with the same hook twice: {ids:?}"
    );
    let sentinel = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    srv.ok(rx
        .wait_for_hooks(&["dup-1".to_string(), sentinel[0].clone()], PROMPT)
        .await);
    // The sentinel was ingested after the pair; give it the same chance to be followed by a duplicate.
    let s2 = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 2)],
        )
        .await;
    srv.ok(rx.wait_for_hooks(&s2, PROMPT).await);
    assert_eq!(rx.hook_counts(None).get("dup-1"), Some(&1));
}

/// Idempotency is per app key: another app key may use the same hookId.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_ids_are_scoped_to_the_app_key() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let a = srv.create_app_key("scope-a").await;
    let b = srv.create_app_key("scope-b").await;
    srv.create_config(&a, config_body(SMS, &["CONVERSION_BLOCK"], &rx.url("/a")))
        .await;
    srv.create_config(&b, config_body(SMS, &["CONVERSION_BLOCK"], &rx.url("/b")))
        .await;
    let h = samples::with_id(samples::hook(SMS, "CONVERSION_BLOCK", 0), "shared-id-1");
    srv.ingest(&a, SMS, "CONVERSION_BLOCK", vec![h.clone()])
        .await;
    srv.ok(rx
        .wait_for_hooks(&["shared-id-1".to_string()], PROMPT)
        .await);
    srv.ingest(&b, SMS, "CONVERSION_BLOCK", vec![h]).await;
    srv.ok(rx
        .wait_until(PROMPT, "shared-id-1 at /b", |reqs| {
            reqs.iter()
                .any(|r| r.path == "/b" && r.hook_ids().iter().any(|i| i == "shared-id-1"))
        })
        .await);
    assert_eq!(rx.hook_counts(Some("/a")).get("shared-id-1"), Some(&1));
    assert_eq!(rx.hook_counts(Some("/b")).get("shared-id-1"), Some(&1));
    for r in rx.requests_to("/b") {
        assert_eq!(r.json.as_ref().unwrap()["appKey"], json!(b.app_key));
    }
}

/// The hookIds an app key accepted are remembered across a restart (`kill -9`, so nothing but
/// what committed counts): the same request after the restart is acknowledged with the same
/// hookIds and nothing is delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_ids_are_remembered_across_a_restart() {
    let rx = Receiver::start().await;
    let mut srv = Server::start_with(&["--lease-ttl", "2s"]).await;
    let app = srv.create_app_key("idem-restart").await;
    let cfg = srv
        .create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/r")))
        .await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let hooks: Vec<_> = (0..5)
        .map(|i| samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", i), &format!("kept-{i}")))
        .collect();
    let ids = srv.ingest(&app, SMS, "UNSUBSCRIBE", hooks.clone()).await;
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    for id in &ids {
        srv.wait_for_hook_delivery(&app, &cfg_id, id, "SUCCEEDED", PROMPT)
            .await;
    }
    srv.kill9().await;
    srv.restart().await;
    let again = srv.ingest(&app, SMS, "UNSUBSCRIBE", hooks).await;
    assert_eq!(again, ids, "acknowledged with the same hookIds");
    // A hook ingested after the repeat arrives; a repeated hook queued again would have gone
    // out before it.
    let sentinel = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::with_id(
                samples::hook(SMS, "UNSUBSCRIBE", 9),
                "kept-sentinel",
            )],
        )
        .await;
    srv.wait_for_hook_delivery(&app, &cfg_id, &sentinel[0], "SUCCEEDED", PROMPT)
        .await;
    let counts = rx.hook_counts(None);
    for id in &ids {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "{id} delivered again after a restart"
        );
    }
}

/// Idempotency lasts as long as retention keeps the hook: once retention purged it (its
/// delivery finished and expired), the same hookId is accepted as a new hook and delivered
/// again, with its new content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_id_purged_by_retention_is_accepted_as_new() {
    let rx = Receiver::start().await;
    let srv = Server::start_with(&["--retention", "1s", "--retention-interval", "100ms"]).await;
    let app = srv.create_app_key("idem-purged").await;
    let cfg = srv
        .create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/p")))
        .await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let first = samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", 1), "reborn-1");
    let ids = srv.ingest(&app, SMS, "UNSUBSCRIBE", vec![first]).await;
    srv.wait_for_hook_delivery(&app, &cfg_id, &ids[0], "SUCCEEDED", PROMPT)
        .await;
    // Wait until retention removed the hook itself, not only its delivery.
    let end = std::time::Instant::now() + PROMPT;
    loop {
        let stored = srv
            .store_query_strings(
                "SELECT hook_id FROM hooks WHERE app_key = $1 AND hook_id = $2",
                &[&app.app_key, "reborn-1"],
            )
            .await;
        if stored.is_empty() {
            break;
        }
        if std::time::Instant::now() > end {
            srv.fail("retention never purged the hook");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let second = samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", 2), "reborn-1");
    let again = srv
        .ingest(&app, SMS, "UNSUBSCRIBE", vec![second.clone()])
        .await;
    assert_eq!(again, ids);
    let reqs = srv.ok(rx
        .wait_until(PROMPT, "reborn-1 a second time", |reqs| {
            reqs.iter()
                .filter(|r| r.hook_ids().iter().any(|i| i == "reborn-1"))
                .count()
                == 2
        })
        .await);
    let last = reqs
        .iter()
        .rev()
        .find(|r| r.hook_ids().iter().any(|i| i == "reborn-1"))
        .expect("found above");
    assert_eq!(last.hooks()[0], second, "the new content is delivered");
}

/// A producer that retries a request whose hooks carry no hookId gets new generated hookIds:
/// the hooks are not deduplicated and arrive twice (why producers that retry send their own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_hook_ids_sent_twice_is_two_hooks() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("idem-none").await;
    srv.create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/n")))
        .await;
    let hook = samples::hook(SMS, "UNSUBSCRIBE", 7);
    let first = srv
        .ingest(&app, SMS, "UNSUBSCRIBE", vec![hook.clone()])
        .await;
    let second = srv.ingest(&app, SMS, "UNSUBSCRIBE", vec![hook]).await;
    assert_ne!(first, second, "a generated hookId is new every time");
    let reqs = srv.ok(rx
        .wait_for_hooks(&[first[0].clone(), second[0].clone()], PROMPT)
        .await);
    let arrived: Vec<_> = reqs.iter().flat_map(|r| r.hooks()).collect();
    assert_eq!(
        arrived.len(),
        2,
        "the same content arrived twice: {arrived:?}"
    );
}
