//! Criterion 5: a hook reaches only the enabled configs of its app key, product and event; an app
//! key's secret opens nothing else.

use std::collections::{BTreeSet, HashMap};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

fn path_hooks(rx: &Receiver) -> HashMap<String, BTreeSet<String>> {
    let mut m: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in rx.requests() {
        m.entry(r.path.clone()).or_default().extend(r.hook_ids());
    }
    m
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_enabled_configs_of_the_same_app_key_product_and_event_receive_a_hook() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let a = srv.create_app_key("tenant-a").await;
    let b = srv.create_app_key("tenant-b").await;
    let mru = "MESSAGE_RESULT_UPDATE";

    let matching = srv
        .create_config(&a, config_body(SMS, &[mru], &rx.url("/match")))
        .await;
    let other_product = srv
        .create_config(&a, config_body(KAKAO, &[mru], &rx.url("/kakao")))
        .await;
    let other_event = srv
        .create_config(
            &a,
            config_body(SMS, &["UNSUBSCRIBE", "CONVERSION_BLOCK"], &rx.url("/unsub")),
        )
        .await;
    let mut disabled_body = config_body(SMS, &[mru], &rx.url("/disabled"));
    disabled_body["enabled"] = json!(false);
    let disabled = srv.create_config(&a, disabled_body.clone()).await;
    assert_eq!(disabled["enabled"], json!(false));
    let other_app = srv
        .create_config(&b, config_body(SMS, &[mru], &rx.url("/other-app")))
        .await;

    srv.ingest(&a, SMS, mru, vec![samples::sms_result("iso-1")])
        .await;
    srv.ok(rx
        .wait_until(PROMPT, "iso-1 at /match", |reqs| {
            reqs.iter()
                .any(|r| r.path == "/match" && r.hook_ids().iter().any(|i| i == "iso-1"))
        })
        .await);
    srv.wait_for_hook_delivery(
        &a,
        &s(&matching, "webhookConfigId"),
        "iso-1",
        "SUCCEEDED",
        PROMPT,
    )
    .await;

    // Sentinels: a hook each of the other configs does subscribe to. Once they arrived, anything
    // the first hook had wrongly queued for them would have arrived too.
    let kakao = samples::with_id(samples::hook(KAKAO, mru, 0), "sentinel-kakao");
    srv.ingest(&a, KAKAO, mru, vec![kakao]).await;
    let unsub = samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", 0), "sentinel-unsub");
    srv.ingest(&a, SMS, "UNSUBSCRIBE", vec![unsub]).await;
    srv.ingest(&b, SMS, mru, vec![samples::sms_result("sentinel-b")])
        .await;
    // Enabling the disabled config: it gets what comes next, not what came while it was disabled.
    disabled_body["enabled"] = json!(true);
    let dis_id = s(&disabled, "webhookConfigId");
    let put = srv
        .put(
            &a.auth(),
            &a.path(&format!("/webhook-configs/{dis_id}")),
            disabled_body,
        )
        .await;
    assert_eq!(
        srv.expect(put, 200, "enable config")["webhookConfig"]["enabled"],
        json!(true)
    );
    srv.ingest(&a, SMS, mru, vec![samples::sms_result("sentinel-enabled")])
        .await;

    let want: HashMap<&str, BTreeSet<String>> = HashMap::from([
        ("/match", set(&["iso-1", "sentinel-enabled"])),
        ("/kakao", set(&["sentinel-kakao"])),
        ("/unsub", set(&["sentinel-unsub"])),
        ("/disabled", set(&["sentinel-enabled"])),
        ("/other-app", set(&["sentinel-b"])),
    ]);
    let all_arrived = |reqs: &[Recorded]| {
        want.iter().all(|(path, ids)| {
            let got: BTreeSet<String> = reqs
                .iter()
                .filter(|r| r.path == *path)
                .flat_map(|r| r.hook_ids())
                .collect();
            ids.is_subset(&got)
        })
    };
    srv.ok(rx.wait_until(PROMPT, "every sentinel", all_arrived).await);
    // Let the deliveries be logged, then compare receiver and log.
    for (app, cfg, ids) in [
        (&a, &matching, vec!["iso-1", "sentinel-enabled"]),
        (&a, &other_product, vec!["sentinel-kakao"]),
        (&a, &other_event, vec!["sentinel-unsub"]),
        (&a, &disabled, vec!["sentinel-enabled"]),
        (&b, &other_app, vec!["sentinel-b"]),
    ] {
        let cfg_id = s(cfg, "webhookConfigId");
        for id in &ids {
            srv.wait_for_hook_delivery(app, &cfg_id, id, "SUCCEEDED", PROMPT)
                .await;
        }
        let logged: BTreeSet<String> = srv
            .list_deliveries(app, &format!("webhookConfigId={cfg_id}"))
            .await
            .iter()
            .flat_map(|d| str_array(&d["hookIds"], "hookIds"))
            .collect();
        assert_eq!(
            logged,
            set(&ids),
            "delivery log of config {} ({})",
            cfg_id,
            cfg["url"]
        );
    }
    let got = path_hooks(&rx);
    for (path, ids) in &want {
        assert_eq!(got.get(*path), Some(ids), "hooks that reached {path}");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "no request to any other path: {got:?}"
    );
}

/// Every app-key route with another app key's secret: 403; with an unknown or no secret: 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_app_keys_secret_is_refused() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let a = srv.create_app_key("tenant-a").await;
    let b = srv.create_app_key("tenant-b").await;
    let cfg = srv
        .create_config(&a, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/a")))
        .await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let ids = srv
        .ingest(
            &a,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    let d = srv
        .wait_for_hook_delivery(&a, &cfg_id, &ids[0], "SUCCEEDED", PROMPT)
        .await;
    let hooks_id = s(&d, "hooksId");

    let ingest_body = json!({"productName": SMS, "event": "UNSUBSCRIBE",
        "hooks": [samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", 5), "intruder-hook")]});
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, a.path("/webhook-configs"), None),
        (
            Method::GET,
            a.path(&format!("/webhook-configs/{cfg_id}")),
            None,
        ),
        (
            Method::POST,
            a.path("/webhook-configs"),
            Some(config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/intruder"))),
        ),
        (
            Method::DELETE,
            a.path(&format!("/webhook-configs/{cfg_id}")),
            None,
        ),
        (Method::POST, a.path("/events"), Some(ingest_body.clone())),
        (Method::GET, a.path("/deliveries"), None),
        (
            Method::GET,
            a.path(&format!("/deliveries/{hooks_id}")),
            None,
        ),
        (
            Method::POST,
            a.path(&format!("/deliveries/{hooks_id}/redeliver")),
            Some(json!({})),
        ),
        (Method::POST, a.path("/secret-key/rotate"), Some(json!({}))),
    ];
    let creds = [
        (
            Auth::Secret(b.secret.clone()),
            403,
            "the secret of another app key",
        ),
        (
            Auth::Secret("not-a-secret-key".into()),
            401,
            "an unknown secret",
        ),
        (Auth::None, 401, "no credentials"),
        (
            Auth::Bearer("not-the-admin-token".into()),
            401,
            "a wrong admin token",
        ),
    ];
    for (method, path, body) in &routes {
        for (auth, status, what) in &creds {
            let b = match body {
                Some(v) => Body::Json(v.clone()),
                None => Body::None,
            };
            let resp = srv.call(method.clone(), path, auth, b).await;
            assert_error(
                &srv,
                &resp,
                *status,
                &format!("{method} {path} with {what}"),
            );
        }
    }
    // The admin token is accepted on app-key routes.
    srv.expect(
        srv.get(&Auth::Admin, &a.path("/webhook-configs")).await,
        200,
        "admin token on an app-key route",
    );
    // Nothing of the refused requests took effect.
    let list = srv.expect(
        srv.get(&a.auth(), &a.path("/webhook-configs")).await,
        200,
        "list configs",
    );
    assert_eq!(
        list["webhookConfigs"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
    srv.get_config(&a, &cfg_id).await;
    let q = "hookId=intruder-hook";
    assert!(srv.list_deliveries(&a, q).await.is_empty());
    // a's secret still works (it was not rotated by b).
    srv.expect(
        srv.get(&a.auth(), &a.path("/deliveries")).await,
        200,
        "a's own secret",
    );
    let logged = srv.list_deliveries(&a, "").await;
    assert_eq!(logged.len(), 1, "no redelivery was made: {logged:#?}");
    assert_eq!(rx.requests().len(), 1);
}

/// Another app key's config, delivery or hook id under one's own path: 404, as if it did not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_app_keys_ids_are_not_found_under_ones_own_path() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let a = srv.create_app_key("tenant-a").await;
    let b = srv.create_app_key("tenant-b").await;
    let body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/a"));
    let cfg = srv.create_config(&a, body.clone()).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let ids = srv
        .ingest(
            &a,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    let d = srv
        .wait_for_hook_delivery(&a, &cfg_id, &ids[0], "SUCCEEDED", PROMPT)
        .await;
    let hooks_id = s(&d, "hooksId");
    let replay =
        json!({"since": rfc3339(-3600), "until": rfc3339(3600), "status": ["SUCCEEDED", "FAILED"]});

    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::GET,
            b.path(&format!("/webhook-configs/{cfg_id}")),
            None,
        ),
        (
            Method::PUT,
            b.path(&format!("/webhook-configs/{cfg_id}")),
            Some(body.clone()),
        ),
        (
            Method::DELETE,
            b.path(&format!("/webhook-configs/{cfg_id}")),
            None,
        ),
        (
            Method::POST,
            b.path(&format!("/webhook-configs/{cfg_id}/test")),
            Some(json!({"event": "UNSUBSCRIBE"})),
        ),
        (
            Method::POST,
            b.path(&format!("/webhook-configs/{cfg_id}/replay")),
            Some(replay),
        ),
        (
            Method::GET,
            b.path(&format!("/deliveries/{hooks_id}")),
            None,
        ),
        (
            Method::POST,
            b.path(&format!("/deliveries/{hooks_id}/redeliver")),
            Some(json!({})),
        ),
    ];
    for (method, path, body) in cases {
        let bb = match body {
            Some(v) => Body::Json(v),
            None => Body::None,
        };
        let resp = srv.call(method.clone(), &path, &b.auth(), bb).await;
        assert_error(
            &srv,
            &resp,
            404,
            &format!("{method} {path} with b's secret"),
        );
    }
    let mine = srv.list_deliveries(&b, &format!("hookId={}", ids[0])).await;
    assert!(
        mine.is_empty(),
        "b's delivery log shows nothing of a's hook: {mine:#?}"
    );
    let list = srv.expect(
        srv.get(&b.auth(), &b.path("/webhook-configs")).await,
        200,
        "b's configs",
    );
    assert_eq!(
        list["webhookConfigs"],
        json!([]),
        "b has no configs: {list}"
    );

    // a's things are untouched: the config exists with its URL, nothing was sent again.
    assert_eq!(
        srv.get_config(&a, &cfg_id).await["url"],
        json!(rx.url("/a"))
    );
    assert_eq!(
        srv.get_delivery(&a, &hooks_id).await["status"],
        json!("SUCCEEDED")
    );
    assert_eq!(srv.list_deliveries(&a, "").await.len(), 1);
    assert_eq!(
        rx.requests().len(),
        1,
        "no test, replay or redelivery reached a's receiver"
    );
}

/// A receiver that never answers holds only its own config's slots: a healthy config of the same
/// app key and event gets every hook while the hung one is stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_receiver_does_not_delay_other_configs() {
    let healthy = Receiver::start().await;
    let hung = Receiver::start().await;
    hung.set_hang(true);
    let srv = Server::start().await;
    let app = srv.create_app_key("noisy-neighbour").await;
    let mut slow = config_body(SMS, &["UNSUBSCRIBE"], &hung.url("/hung"));
    slow["timeoutMs"] = json!(60_000);
    slow["maxHooksPerRequest"] = json!(1);
    slow["maxRequestsInFlight"] = json!(2);
    srv.create_config(&app, slow).await;
    let mut fast = config_body(SMS, &["UNSUBSCRIBE"], &healthy.url("/healthy"));
    fast["maxHooksPerRequest"] = json!(1);
    srv.create_config(&app, fast).await;

    let mut ids = Vec::new();
    for round in 0..20 {
        ids.extend(
            srv.ingest(
                &app,
                SMS,
                "UNSUBSCRIBE",
                (0..5)
                    .map(|i| samples::hook(SMS, "UNSUBSCRIBE", round * 5 + i))
                    .collect(),
            )
            .await,
        );
    }
    srv.ok(healthy.wait_for_hooks(&ids, PROMPT).await);
    // The hung config got its two slots' worth and nothing more: all still unanswered.
    let stuck = hung.requests();
    assert_eq!(
        stuck.len(),
        2,
        "the hung config has exactly maxRequestsInFlight requests open: {:?}",
        stuck.iter().map(|r| r.summary()).collect::<Vec<_>>()
    );
    let counts = healthy.hook_counts(None);
    assert_eq!(counts.len(), 100, "every hook reached the healthy config");
    assert!(
        counts.values().all(|n| *n == 1),
        "each exactly once: {counts:?}"
    );
}
