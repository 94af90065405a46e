//! Criterion 9: webhook configs and app keys are managed as docs/api.md says; plus the test, replay and
//! service routes.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

fn looks_like_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() >= 20
            && s.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && s.as_bytes()[4] == b'-'
            && s.as_bytes()[10] == b'T'
            && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configs_are_rejected_naming_the_field() {
    let srv = Server::start().await;
    let app = srv.create_app_key("config-validation").await;
    let base = config_body(SMS, &["MESSAGE_RESULT_UPDATE"], "http://127.0.0.1:9/hook");
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("relative url", with("url", json!("/hook")), "url"),
        ("ftp url", with("url", json!("ftp://127.0.0.1/hook")), "url"),
        ("not a url", with("url", json!("not a url")), "url"),
        ("missing url", without("url"), "url"),
        (
            "event of the other product",
            with("events", json!(["TEMPLATE_STATUS_UPDATE"])),
            "events",
        ),
        (
            "unknown event",
            with("events", json!(["MESSAGE_RESULT_UPDATE", "NOPE"])),
            "events",
        ),
        ("empty events", with("events", json!([])), "events"),
        ("missing events", without("events"), "events"),
        (
            "unknown product",
            with("productName", json!("MMS")),
            "productName",
        ),
        ("missing productName", without("productName"), "productName"),
        ("missing signature", without("signature"), "signature"),
        (
            "NUL in the description",
            with("description", json!("a\u{0}b")),
            "description",
        ),
        (
            "maxHooksPerRequest 0",
            with("maxHooksPerRequest", json!(0)),
            "maxHooksPerRequest",
        ),
        (
            "maxHooksPerRequest 1001",
            with("maxHooksPerRequest", json!(1001)),
            "maxHooksPerRequest",
        ),
        (
            "maxHooksPerRequest as a string",
            with("maxHooksPerRequest", json!("10")),
            "maxHooksPerRequest",
        ),
        ("timeoutMs 50", with("timeoutMs", json!(50)), "timeoutMs"),
        (
            "timeoutMs 60001",
            with("timeoutMs", json!(60001)),
            "timeoutMs",
        ),
        (
            "retrySchedule entry 5x",
            with("retrySchedule", json!(["1s", "5x"])),
            "retrySchedule",
        ),
        (
            "retrySchedule entry below 100ms",
            with("retrySchedule", json!(["50ms"])),
            "retrySchedule",
        ),
        (
            "retrySchedule entry above 24h",
            with("retrySchedule", json!(["25h"])),
            "retrySchedule",
        ),
        (
            "retrySchedule of 31 entries",
            with("retrySchedule", schedule(31, "1s")),
            "retrySchedule",
        ),
        (
            "retrySchedule not an array",
            with("retrySchedule", json!("5s")),
            "retrySchedule",
        ),
        (
            "enabled not a boolean",
            with("enabled", json!("yes")),
            "enabled",
        ),
        (
            "url with port 65536 (would wrap to port 0)",
            with("url", json!("http://127.0.0.1:65536/x")),
            "url",
        ),
        (
            "maxRequestsInFlight 0",
            with("maxRequestsInFlight", json!(0)),
            "maxRequestsInFlight",
        ),
        (
            "signingSecret without whsec_",
            with("signingSecret", json!("not-a-whsec-secret")),
            "signingSecret",
        ),
    ];
    let mut failures = Vec::new();
    for (name, body, field) in cases {
        let resp = srv
            .post(&app.auth(), &app.path("/webhook-configs"), body)
            .await;
        if let Err(e) = check_error(&resp, &[400], Some(field)) {
            failures.push(format!("- {name}: {e}"));
        }
    }
    let resp = srv
        .call(
            Method::POST,
            &app.path("/webhook-configs"),
            &app.auth(),
            Body::Raw(Some("application/json".into()), b"{\"url\":".to_vec()),
        )
        .await;
    if let Err(e) = check_error(&resp, &[400], None) {
        failures.push(format!("- invalid JSON: {e}"));
    }
    let resp = srv
        .call(
            Method::POST,
            &app.path("/webhook-configs"),
            &app.auth(),
            Body::Raw(
                Some("text/plain".into()),
                serde_json::to_vec(&base).unwrap(),
            ),
        )
        .await;
    if let Err(e) = check_error(&resp, &[415], None) {
        failures.push(format!("- text/plain body: {e}"));
    }
    // The minimal valid config: only the required fields; the rest takes its defaults.
    let minimal = json!({"productName": SMS, "events": ["UNSUBSCRIBE"], "url": "https://example.com/hooks", "signature": "s"});
    let cfg = srv.create_config(&app, minimal).await;
    for (k, v) in [
        ("enabled", json!(true)),
        ("maxHooksPerRequest", json!(100)),
        ("timeoutMs", json!(10000)),
        // The ceiling of the adaptive limit (which itself starts at 8).
        ("maxRequestsInFlight", json!(64)),
    ] {
        if cfg[k] != v {
            failures.push(format!("- default {k}: want {v}, got {}", cfg[k]));
        }
    }
    if cfg["retrySchedule"].as_array().map(Vec::len) != Some(8) {
        failures.push(format!(
            "- default retrySchedule: want 8 entries, got {}",
            cfg["retrySchedule"]
        ));
    }
    // An invalid PUT changes nothing.
    let id = s(&cfg, "webhookConfigId");
    let resp = srv
        .put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{id}")),
            with("timeoutMs", json!(50)),
        )
        .await;
    if let Err(e) = check_error(&resp, &[400], Some("timeoutMs")) {
        failures.push(format!("- PUT timeoutMs 50: {e}"));
    }
    let after = srv.get_config(&app, &id).await;
    if after != cfg {
        failures.push(format!(
            "- a rejected PUT changed the config: {after} (was {cfg})"
        ));
    }
    let list = srv.expect(
        srv.get(&app.auth(), &app.path("/webhook-configs")).await,
        200,
        "list configs",
    );
    let n = list["webhookConfigs"].as_array().map(Vec::len);
    if n != Some(1) {
        failures.push(format!("- rejected configs were stored: {list}"));
    }
    if !failures.is_empty() {
        srv.fail(format!(
            "{} problem(s):\n{}",
            failures.len(),
            failures.join("\n")
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_create_get_put_list_delete_roundtrip() {
    let srv = Server::start().await;
    let app = srv.create_app_key("crud").await;
    let body = json!({
        "productName": SMS,
        "events": ["MESSAGE_RESULT_UPDATE", "UNSUBSCRIBE"],
        "url": "http://127.0.0.1:9/first",
        "signature": "sig-crud",
        "enabled": true,
        "description": "first version",
        "maxHooksPerRequest": 50,
        "timeoutMs": 1500,
        "retrySchedule": ["1s", "5s"],
        "maxRequestsInFlight": 4,
        "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    });
    let created = srv.create_config(&app, body.clone()).await;
    let id = s(&created, "webhookConfigId");
    for k in [
        "productName",
        "events",
        "url",
        "signature",
        "enabled",
        "description",
        "maxHooksPerRequest",
        "timeoutMs",
        "retrySchedule",
        "maxRequestsInFlight",
    ] {
        assert_eq!(created[k], body[k], "created.{k}: {created:#}");
    }
    assert!(
        created.get("signingSecret").is_none_or(Value::is_null),
        "signingSecret is write-only: {created}"
    );
    assert!(
        !created
            .to_string()
            .contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    );
    assert_eq!(created["health"]["state"], json!("HEALTHY"), "{created:#}");
    assert_eq!(
        created["health"]["consecutiveFailures"],
        json!(0),
        "{created:#}"
    );
    assert!(
        looks_like_rfc3339(&created["createdAt"]),
        "createdAt {}",
        created["createdAt"]
    );
    assert!(
        looks_like_rfc3339(&created["updatedAt"]),
        "updatedAt {}",
        created["updatedAt"]
    );

    let got = srv.get_config(&app, &id).await;
    assert_eq!(got, created, "GET answers what POST answered");

    // PUT replaces; omitted optional fields return to their defaults.
    let put_body = json!({
        "productName": SMS,
        "events": ["UNSUBSCRIBE"],
        "url": "https://example.com/second",
        "signature": "sig-crud-2",
        "enabled": false,
        "description": "second version",
        "maxHooksPerRequest": 10,
        "timeoutMs": 800,
    });
    let put = srv
        .put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{id}")),
            put_body.clone(),
        )
        .await;
    let put = srv.expect(put, 200, "PUT config")["webhookConfig"].clone();
    for k in [
        "productName",
        "events",
        "url",
        "signature",
        "enabled",
        "description",
        "maxHooksPerRequest",
        "timeoutMs",
    ] {
        assert_eq!(put[k], put_body[k], "after PUT, {k}: {put:#}");
    }
    assert_eq!(put["webhookConfigId"], json!(id));
    assert_eq!(put["createdAt"], created["createdAt"]);
    assert_eq!(
        put["maxRequestsInFlight"],
        json!(64),
        "omitted maxRequestsInFlight returns to its default, 64"
    );
    assert_eq!(
        put["retrySchedule"].as_array().map(Vec::len),
        Some(8),
        "omitted retrySchedule returns to the default: {put:#}"
    );
    assert!(looks_like_rfc3339(&put["updatedAt"]));
    assert_eq!(
        srv.get_config(&app, &id).await,
        put,
        "GET answers what PUT answered"
    );

    let minimal = json!({"productName": SMS, "events": ["UNSUBSCRIBE"], "url": "https://example.com/third", "signature": "s3"});
    let put = srv
        .put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{id}")),
            minimal,
        )
        .await;
    let put = srv.expect(put, 200, "PUT minimal config")["webhookConfig"].clone();
    assert_eq!(put["enabled"], json!(true));
    assert_eq!(put["maxHooksPerRequest"], json!(100));
    assert_eq!(put["timeoutMs"], json!(10000));

    let list = srv.expect(
        srv.get(&app.auth(), &app.path("/webhook-configs")).await,
        200,
        "list",
    );
    assert_eq!(
        list["webhookConfigs"],
        json!([put]),
        "the list holds the config as GET shows it"
    );

    let del = srv
        .delete(&app.auth(), &app.path(&format!("/webhook-configs/{id}")))
        .await;
    assert!(
        matches!(del.0.as_u16(), 200 | 204),
        "DELETE: {} {}",
        del.0,
        del.1
    );
    let gone = srv
        .get(&app.auth(), &app.path(&format!("/webhook-configs/{id}")))
        .await;
    assert_error(&srv, &gone, 404, "GET a deleted config");
    let again = srv
        .delete(&app.auth(), &app.path(&format!("/webhook-configs/{id}")))
        .await;
    assert_error(&srv, &again, 404, "DELETE a deleted config");
    let put = srv
        .put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{id}")),
            put_body,
        )
        .await;
    assert_error(&srv, &put, 404, "PUT a deleted config");
    let list = srv.expect(
        srv.get(&app.auth(), &app.path("/webhook-configs")).await,
        200,
        "list",
    );
    assert_eq!(list["webhookConfigs"], json!([]));
    let unknown = srv
        .get(
            &app.auth(),
            &app.path("/webhook-configs/20240101000000AAAAAAAAAAA"),
        )
        .await;
    assert_error(&srv, &unknown, 404, "GET an unknown config id");
    let unknown = srv
        .get(
            &app.auth(),
            &app.path("/deliveries/20240101000000AAAAAAAAAAA"),
        )
        .await;
    assert_error(&srv, &unknown, 404, "GET an unknown hooksId");
}

/// A config's version (`updatedAt`) never goes back, and every answer to a write shows the
/// version stored, as GET then does: written by a server whose clock runs ten minutes ahead,
/// then changed by one whose clock does not, each change is stored one past the last version,
/// and the PUT's and the PATCH's answers say so (they answered the server's own time before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_answers_the_version_stored_even_from_a_clock_behind_the_last_writer() {
    let ahead = server::Options {
        env: vec![("HOOKLINE_TEST_CLOCK_OFFSET_MS".into(), "600000".into())],
        ..server::Options::default()
    };
    let mut srv = Server::start_with_options(&[], ahead).await;
    let app = srv.create_app_key("versions").await;
    let created = srv
        .create_config(
            &app,
            config_body(SMS, &["UNSUBSCRIBE"], "https://example.com/v"),
        )
        .await;
    let id = s(&created, "webhookConfigId");
    srv.stop_sigterm(SLOW).await;
    srv.restart_with_env(Vec::new()).await;

    let path = app.path(&format!("/webhook-configs/{id}"));
    let put_body = config_body(SMS, &["UNSUBSCRIBE"], "https://example.com/w");
    let put = srv.put(&app.auth(), &path, put_body).await;
    let put = srv.expect(put, 200, "PUT config")["webhookConfig"].clone();
    let got = srv.get_config(&app, &id).await;
    assert_eq!(
        got["updatedAt"], put["updatedAt"],
        "GET shows what PUT answered"
    );
    let patch = srv
        .patch(&app.auth(), &path, json!({"description": "patched"}))
        .await;
    let patched = srv.expect(patch, 200, "PATCH config")["webhookConfig"].clone();
    let got = srv.get_config(&app, &id).await;
    assert_eq!(
        got["updatedAt"], patched["updatedAt"],
        "GET shows what PATCH answered"
    );
    let versions: Vec<&str> = [&created, &put, &patched]
        .iter()
        .map(|c| c["updatedAt"].as_str().unwrap_or_default())
        .collect();
    // One format (RFC 3339, milliseconds, UTC): later versions sort later as text.
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "each version newer than the last: {versions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_list_filters_and_pages() {
    let srv = Server::start().await;
    let app = srv.create_app_key("list").await;
    let a = srv
        .create_config(
            &app,
            config_body(SMS, &["MESSAGE_RESULT_UPDATE"], "http://127.0.0.1:9/a"),
        )
        .await;
    let mut b_body = config_body(SMS, &["UNSUBSCRIBE"], "http://127.0.0.1:9/b");
    b_body["enabled"] = json!(false);
    let b = srv.create_config(&app, b_body).await;
    let c = srv
        .create_config(
            &app,
            config_body(KAKAO, &["TEMPLATE_STATUS_UPDATE"], "http://127.0.0.1:9/c"),
        )
        .await;
    let ids = |v: &Value| -> BTreeSet<String> {
        v["webhookConfigs"]
            .as_array()
            .unwrap_or_else(|| panic!("no webhookConfigs in {v}"))
            .iter()
            .map(|c| s(c, "webhookConfigId"))
            .collect()
    };
    let id = |c: &Value| s(c, "webhookConfigId");
    for (query, want) in [
        ("productName=SMS", vec![id(&a), id(&b)]),
        ("productName=KakaoTalk%20Bizmessage", vec![id(&c)]),
        ("event=UNSUBSCRIBE", vec![id(&b)]),
        ("enabled=false", vec![id(&b)]),
        ("enabled=true", vec![id(&a), id(&c)]),
        ("", vec![id(&a), id(&b), id(&c)]),
    ] {
        let path = app.path(&format!("/webhook-configs?{query}"));
        let body = srv.expect(srv.get(&app.auth(), &path).await, 200, &path);
        assert_eq!(ids(&body), want.into_iter().collect(), "GET {path}");
    }
    // Paging with pageSize=1 walks all three, each once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut path = app.path("/webhook-configs?pageSize=1");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", server::urlencode(c)));
        }
        let body = srv.expect(srv.get(&app.auth(), &path).await, 200, &path);
        let page = ids(&body);
        assert!(page.len() <= 1, "pageSize=1 gave {page:?}");
        seen.extend(page);
        match body["nextCursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
            _ => break,
        }
    }
    seen.sort();
    let mut all = vec![id(&a), id(&b), id(&c)];
    all.sort();
    assert_eq!(seen, all, "paging returns every config exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_config_cancels_its_pending_deliveries() {
    let rx = Receiver::reserve();
    let srv = Server::start().await;
    let app = srv.create_app_key("delete-cancels").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/deleted"));
    body["retrySchedule"] = schedule(30, "200ms");
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    let list = srv
        .wait_for_deliveries(
            &app,
            &format!("webhookConfigId={cfg_id}"),
            PROMPT,
            "a RETRYING delivery",
            |l| l.iter().any(|d| d["status"] == json!("RETRYING")),
        )
        .await;
    let hooks_id = s(&list[0], "hooksId");
    let del = srv
        .delete(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{cfg_id}")),
        )
        .await;
    assert!(
        matches!(del.0.as_u16(), 200 | 204),
        "DELETE: {} {}",
        del.0,
        del.1
    );
    let d = srv
        .wait_for_delivery_status(&app, &hooks_id, "CANCELLED", PROMPT)
        .await;
    assert_eq!(str_array(&d["hookIds"], "hookIds"), ids);
    let cancelled = srv.list_deliveries(&app, "status=CANCELLED").await;
    assert!(
        cancelled.iter().any(|x| x["hooksId"] == json!(hooks_id)),
        "status=CANCELLED filter: {cancelled:#?}"
    );

    // Really cancelled: with the receiver up, only a new config's hook arrives.
    rx.listen();
    srv.create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/after")))
        .await;
    let sentinel = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    let reqs = srv.ok(rx.wait_for_hooks(&sentinel, PROMPT).await);
    assert!(
        reqs.iter()
            .all(|r| r.path == "/after" && !r.hook_ids().contains(&ids[0])),
        "{reqs:?}"
    );
    assert_eq!(
        srv.get_delivery(&app, &hooks_id).await["status"],
        json!("CANCELLED")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_keys_are_admin_only_and_listed_without_secrets() {
    let srv = Server::start().await;
    let a = srv.create_app_key("first").await;
    let b = srv.create_app_key("second").await;
    assert_ne!(a.app_key, b.app_key);
    assert_ne!(a.secret, b.secret);

    let body = json!({"name": "x"});
    let resp = srv.post(&Auth::None, "/v1/appkeys", body.clone()).await;
    assert_error(&srv, &resp, 401, "POST /v1/appkeys without a token");
    let resp = srv
        .post(&Auth::Bearer("wrong".into()), "/v1/appkeys", body.clone())
        .await;
    assert_error(&srv, &resp, 401, "POST /v1/appkeys with a wrong token");
    let resp = srv.post(&a.auth(), "/v1/appkeys", body.clone()).await;
    srv.ok(check_error(&resp, &[401, 403], None)
        .map_err(|e| format!("POST /v1/appkeys with an app key's secret: {e}")));
    let resp = srv.get(&Auth::None, "/v1/appkeys").await;
    assert_error(&srv, &resp, 401, "GET /v1/appkeys without a token");

    let created = srv.expect(
        srv.post(&Auth::Admin, "/v1/appkeys", json!({"name": "third"}))
            .await,
        201,
        "create",
    );
    let third = &created["appKey"];
    assert!(looks_like_rfc3339(&third["createdAt"]), "{created}");
    let secret3 = s(third, "secretKey");

    let list = srv.expect(
        srv.get(&Auth::Admin, "/v1/appkeys").await,
        200,
        "GET /v1/appkeys",
    );
    let keys = list["appKeys"]
        .as_array()
        .unwrap_or_else(|| panic!("no appKeys array: {list}"));
    let names: BTreeSet<(String, String)> = keys
        .iter()
        .map(|k| (s(k, "appKey"), s(k, "name")))
        .collect();
    for (k, n) in [
        (&a.app_key, "first"),
        (&b.app_key, "second"),
        (&s(third, "appKey"), "third"),
    ] {
        assert!(
            names.contains(&(k.clone(), n.to_string())),
            "{k} {n} listed: {list}"
        );
    }
    let text = list.to_string();
    for secret in [&a.secret, &b.secret, &secret3] {
        assert!(
            !text.contains(secret.as_str()),
            "the list shows a secret: {list}"
        );
    }
    assert!(
        keys.iter()
            .all(|k| k.get("secretKey").is_none_or(Value::is_null)),
        "{list}"
    );
}

fn secret_in(body: &Value) -> Option<String> {
    body["appKey"]["secretKey"]
        .as_str()
        .or(body["secretKey"].as_str())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_secret_key_retires_the_old_one() {
    let srv = Server::start().await;
    let app = srv.create_app_key("rotate").await;
    let configs = app.path("/webhook-configs");

    let resp = srv
        .post(&app.auth(), &app.path("/secret-key/rotate"), json!({}))
        .await;
    assert!(
        matches!(resp.0.as_u16(), 200 | 201),
        "rotate with own secret: {} {}",
        resp.0,
        resp.1
    );
    let new1 = secret_in(&resp.1).unwrap_or_else(|| panic!("no new secretKey in {}", resp.1));
    assert_ne!(new1, app.secret);
    assert_error(
        &srv,
        &srv.get(&app.auth(), &configs).await,
        401,
        "the old secret after rotation",
    );
    let app1 = App {
        app_key: app.app_key.clone(),
        secret: new1.clone(),
    };
    srv.expect(srv.get(&app1.auth(), &configs).await, 200, "the new secret");
    srv.ingest(
        &app1,
        SMS,
        "UNSUBSCRIBE",
        vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
    )
    .await;

    let resp = srv
        .post(&Auth::Admin, &app.path("/secret-key/rotate"), json!({}))
        .await;
    assert!(
        matches!(resp.0.as_u16(), 200 | 201),
        "rotate with the admin token: {} {}",
        resp.0,
        resp.1
    );
    let new2 = secret_in(&resp.1).unwrap_or_else(|| panic!("no new secretKey in {}", resp.1));
    assert_ne!(new2, new1);
    assert_error(
        &srv,
        &srv.get(&app1.auth(), &configs).await,
        401,
        "the second-to-last secret",
    );
    assert_error(
        &srv,
        &srv.get(&app.auth(), &configs).await,
        401,
        "the first secret",
    );
    let app2 = App {
        app_key: app.app_key.clone(),
        secret: new2,
    };
    srv.expect(
        srv.get(&app2.auth(), &configs).await,
        200,
        "the newest secret",
    );
}

/// Rotation with a grace period: both secret keys work until `previousSecretKeyExpiresAt`, then
/// only the new one; a body that does not parse answers 400 naming the field and rotates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_key_rotation_with_a_grace_period_keeps_the_old_key_until_it_ends() {
    let srv = Server::start().await;
    let app = srv.create_app_key("rotate-grace").await;
    let configs = app.path("/webhook-configs");
    let rotate = app.path("/secret-key/rotate");

    // Refused bodies change nothing: the original key keeps working alone.
    for (body, field) in [
        (json!({"gracePeriod": "8d"}), "gracePeriod"),
        (json!({"gracePeriod": 60}), "gracePeriod"),
        (json!({"gracePeriod": "soon"}), "gracePeriod"),
        (json!({"grace": "1h"}), "grace"),
    ] {
        let (st, answer) = srv.post(&app.auth(), &rotate, body.clone()).await;
        assert_eq!(st.as_u16(), 400, "{body}: {answer}");
        let message = answer["header"]["resultMessage"].as_str().unwrap_or("");
        assert!(message.starts_with(field), "{body}: {answer}");
    }
    let (st, answer) = srv
        .call(
            Method::POST,
            &rotate,
            &app.auth(),
            Body::Raw(
                Some("application/json".into()),
                b"{\"gracePeriod\":".to_vec(),
            ),
        )
        .await;
    assert_eq!(st.as_u16(), 400, "broken JSON: {answer}");
    srv.expect(srv.get(&app.auth(), &configs).await, 200, "nothing rotated");

    let before = chrono::Utc::now();
    let answer = srv.expect(
        srv.post(&app.auth(), &rotate, json!({"gracePeriod": "3s"}))
            .await,
        200,
        "rotate with a grace period",
    );
    let new_secret = secret_in(&answer).unwrap_or_else(|| panic!("no secretKey in {answer}"));
    let until = answer["appKey"]["previousSecretKeyExpiresAt"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no previousSecretKeyExpiresAt in {answer}"));
    let grace = until.signed_duration_since(before).num_milliseconds();
    assert!(
        (2_500..=4_000).contains(&grace),
        "expires {grace} ms after the rotation"
    );
    let renewed = App {
        app_key: app.app_key.clone(),
        secret: new_secret,
    };
    srv.expect(srv.get(&renewed.auth(), &configs).await, 200, "the new key");
    srv.expect(
        srv.get(&app.auth(), &configs).await,
        200,
        "the old key during the grace period",
    );
    srv.ingest(
        &app,
        SMS,
        "UNSUBSCRIBE",
        vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
    )
    .await;
    let listed = srv.expect(srv.get(&Auth::Admin, "/v1/appkeys").await, 200, "list");
    let mine = listed["appKeys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["appKey"] == json!(app.app_key)))
        .unwrap_or_else(|| panic!("the app key is listed: {listed}"));
    assert_eq!(
        mine["previousSecretKeyExpiresAt"], answer["appKey"]["previousSecretKeyExpiresAt"],
        "{mine}"
    );

    // Once the grace period is over, the old key stops (never before it ends), within about a
    // second (2.5 s allowed) although it is used all along: a verified secret key is trusted from memory for a
    // second after the store last confirmed it, and refreshed ahead while in use
    // (`service::verified_secrets`), never beyond that.
    let deadline = tokio::time::Instant::now() + SLOW;
    loop {
        let (st, _) = srv.get(&app.auth(), &configs).await;
        let now = chrono::Utc::now();
        match st.as_u16() {
            200 => {}
            401 => {
                assert!(now >= until, "the old key stopped at {now}, before {until}");
                assert!(
                    now <= until + chrono::Duration::milliseconds(2_500),
                    "the old key worked until {now}, long after its grace ended at {until}"
                );
                break;
            }
            other => srv.fail(format!("the old key answered {other}")),
        }
        if tokio::time::Instant::now() > deadline {
            srv.fail("the old key still works long after its grace period");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    srv.expect(srv.get(&renewed.auth(), &configs).await, 200, "the new key");
    let listed = srv.expect(srv.get(&Auth::Admin, "/v1/appkeys").await, 200, "list");
    let mine = listed["appKeys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["appKey"] == json!(app.app_key)))
        .unwrap_or_else(|| panic!("the app key is listed: {listed}"));
    assert_eq!(mine["previousSecretKeyExpiresAt"], Value::Null, "{mine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_route_sends_one_sample_now_and_reports_the_attempt() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("test-route").await;
    let cfg = srv
        .create_config(
            &app,
            config_body(
                SMS,
                &["UNSUBSCRIBE", "MESSAGE_RESULT_UPDATE"],
                &rx.url("/test"),
            ),
        )
        .await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let path = app.path(&format!("/webhook-configs/{cfg_id}/test"));

    let resp = srv.expect(
        srv.post(&app.auth(), &path, json!({"event": "UNSUBSCRIBE"}))
            .await,
        200,
        "test route",
    );
    let at = &resp["attempt"];
    assert_eq!(at["statusCode"], json!(200), "{resp}");
    assert_eq!(at["errorKind"], Value::Null, "{resp}");
    assert!(at["durationMs"].is_u64(), "durationMs: {resp}");
    assert!(looks_like_rfc3339(&at["startedAt"]), "startedAt: {resp}");
    assert_eq!(at["responseBody"], json!("{\"received\":true}"));
    let reqs = srv.ok(rx.wait_for_requests(1, PROMPT).await);
    let r = &reqs[0];
    let env = r.json.as_ref().expect("a JSON envelope");
    assert_eq!(env["event"], json!("UNSUBSCRIBE"));
    assert_eq!(env["productName"], json!(SMS));
    assert_eq!(env["webhookConfigId"], json!(cfg_id));
    assert_eq!(env["appKey"], json!(app.app_key));
    assert_id_shape(
        env["hooksId"].as_str().unwrap_or(""),
        "test delivery hooksId",
    );
    let hooks = r.hooks();
    assert!(
        !hooks.is_empty()
            && hooks
                .iter()
                .all(|h| h["hookId"].is_string() && h["recipientNo"].is_string()),
        "a realistic UNSUBSCRIBE sample hook (with its required recipientNo): {env}"
    );
    assert_eq!(r.header("x-toast-webhook-signature"), Some("sig-1"));
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    // Marked, so that a receiver can tell a sample from a real event.
    assert_eq!(r.header("x-hookline-test"), Some("true"));

    // The receiver's failure is reported, not an error of the route.
    rx.respond_with(&[500]);
    let resp = srv.expect(
        srv.post(
            &app.auth(),
            &path,
            json!({"event": "MESSAGE_RESULT_UPDATE"}),
        )
        .await,
        200,
        "test route",
    );
    assert_eq!(resp["attempt"]["statusCode"], json!(500), "{resp}");
    assert_eq!(
        resp["attempt"]["responseBody"],
        json!("receiver says 500"),
        "{resp}"
    );
    let reqs = srv.ok(rx.wait_for_requests(2, PROMPT).await);
    let h = &reqs[1].hooks()[0];
    assert!(
        h["requestId"].is_string() && h["recipientSeq"].is_u64() && h["messageStatus"].is_string(),
        "realistic sample: {h}"
    );
    // No event: a sample of one of the config's events.
    let resp = srv.expect(
        srv.post(&app.auth(), &path, json!({})).await,
        200,
        "test route without an event",
    );
    assert_eq!(resp["attempt"]["statusCode"], json!(200), "{resp}");
    // The body is optional: no body and no Content-Type at all.
    let resp = srv.expect(
        srv.call(
            Method::POST,
            &path,
            &app.auth(),
            Body::Raw(None, Vec::new()),
        )
        .await,
        200,
        "test route without a body",
    );
    assert_eq!(resp["attempt"]["statusCode"], json!(200), "{resp}");

    let resp = srv
        .post(
            &app.auth(),
            &path,
            json!({"event": "TEMPLATE_STATUS_UPDATE"}),
        )
        .await;
    srv.ok(check_error(&resp, &[400], Some("event"))
        .map_err(|e| format!("test route with another product's event: {e}")));

    // A refused connection is reported as CONNECT.
    let down = Receiver::reserve();
    let cfg2 = srv
        .create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &down.url("/down")))
        .await;
    let path2 = app.path(&format!(
        "/webhook-configs/{}/test",
        s(&cfg2, "webhookConfigId")
    ));
    let resp = srv.expect(
        srv.post(&app.auth(), &path2, json!({"event": "UNSUBSCRIBE"}))
            .await,
        200,
        "test route, receiver down",
    );
    assert_eq!(resp["attempt"]["errorKind"], json!("CONNECT"), "{resp}");
    assert_eq!(resp["attempt"]["statusCode"], Value::Null, "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_requeues_the_hooks_of_failed_deliveries() {
    let rx = Receiver::start().await;
    rx.set_default_status(500);
    let srv = Server::start().await;
    let app = srv.create_app_key("replay").await;
    let mut body = config_body(SMS, &["MESSAGE_RESULT_UPDATE"], &rx.url("/replay"));
    body["retrySchedule"] = json!(["100ms", "100ms"]);
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let ids = srv
        .ingest(
            &app,
            SMS,
            "MESSAGE_RESULT_UPDATE",
            vec![
                samples::sms_result("rp-1"),
                samples::with_id(samples::hook(SMS, "MESSAGE_RESULT_UPDATE", 1), "rp-2"),
            ],
        )
        .await;
    let failed = srv
        .wait_for_deliveries(
            &app,
            &format!("webhookConfigId={cfg_id}"),
            PROMPT,
            "both hooks FAILED",
            |l| {
                let f: BTreeSet<String> = l
                    .iter()
                    .filter(|d| d["status"] == json!("FAILED"))
                    .flat_map(|d| str_array(&d["hookIds"], "hookIds"))
                    .collect();
                ids.iter().all(|i| f.contains(i))
                    && l.iter().all(|d| d["status"] == json!("FAILED"))
            },
        )
        .await;
    let failed_hooks_ids: BTreeSet<String> = failed.iter().map(|d| s(d, "hooksId")).collect();
    rx.set_default_status(200);

    let replay = app.path(&format!("/webhook-configs/{cfg_id}/replay"));
    let future = json!({"since": rfc3339(3600), "until": rfc3339(7200), "status": ["FAILED"]});
    let resp = srv.expect(
        srv.post(&app.auth(), &replay, future).await,
        202,
        "replay of an empty window",
    );
    assert_eq!(resp["count"], json!(0), "{resp}");
    let resp = srv.expect(
        srv.post(
            &app.auth(),
            &replay,
            json!({"since": rfc3339(-3600), "until": rfc3339(3600), "status": ["SUCCEEDED"]}),
        )
        .await,
        202,
        "replay of SUCCEEDED deliveries",
    );
    assert_eq!(
        resp["count"],
        json!(0),
        "no SUCCEEDED delivery to replay: {resp}"
    );
    // A field the server does not know is refused, not ignored, and so is a bad dryRun.
    let resp = srv
        .post(
            &app.auth(),
            &replay,
            json!({"status": ["FAILED"], "dryRn": true}),
        )
        .await;
    srv.ok(check_error(&resp, &[400], Some("dryRn")));
    let resp = srv
        .post(&app.auth(), &replay, json!({"dryRun": "yes"}))
        .await;
    srv.ok(check_error(&resp, &[400], Some("dryRun")));
    let resp = srv
        .post(&app.auth(), &replay, json!({"since": "an hour ago"}))
        .await;
    srv.ok(check_error(&resp, &[400], Some("since")));
    // A dry run counts what would go and queues nothing: with the config paused, anything
    // queued would stay queued, and a second dry run would then count 0.
    let config_path = app.path(&format!("/webhook-configs/{cfg_id}"));
    srv.expect(
        srv.patch(&app.auth(), &config_path, json!({"enabled": false}))
            .await,
        200,
        "pause",
    );
    for _ in 0..2 {
        let resp = srv.expect(
            srv.post(
                &app.auth(),
                &replay,
                json!({"since": "1h", "status": ["FAILED"], "dryRun": true}),
            )
            .await,
            202,
            "dry run",
        );
        assert_eq!(
            resp["count"],
            json!(2),
            "a dry run counts both hooks: {resp}"
        );
    }
    // A relative `since` that starts after the deliveries matches none.
    let resp = srv.expect(
        srv.post(
            &app.auth(),
            &replay,
            json!({"until": "1h", "status": ["FAILED"], "dryRun": true}),
        )
        .await,
        202,
        "dry run before the deliveries",
    );
    assert_eq!(resp["count"], json!(0), "{resp}");
    srv.expect(
        srv.patch(&app.auth(), &config_path, json!({"enabled": true}))
            .await,
        200,
        "resume",
    );
    let resp = srv.expect(
        srv.post(
            &app.auth(),
            &replay,
            json!({"since": "1h", "until": rfc3339(3600), "status": ["FAILED"]}),
        )
        .await,
        202,
        "replay",
    );

    assert_eq!(resp["count"], json!(2), "two hooks requeued: {resp}");

    let want: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let reqs = srv.ok(rx
        .wait_until(PROMPT, "both hooks in new deliveries", |reqs| {
            let got: BTreeSet<String> = reqs
                .iter()
                .filter(|r| r.hooks_id().is_some_and(|h| !failed_hooks_ids.contains(&h)))
                .flat_map(|r| r.hook_ids())
                .collect();
            want.iter().all(|i| got.contains(*i))
        })
        .await);
    for r in reqs
        .iter()
        .filter(|r| r.hooks_id().is_some_and(|h| !failed_hooks_ids.contains(&h)))
    {
        let d = srv
            .wait_for_delivery_status(&app, &r.hooks_id().unwrap(), "SUCCEEDED", PROMPT)
            .await;
        assert_eq!(d["webhookConfigId"], json!(cfg_id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_routes_answer() {
    let srv = Server::start().await;
    for p in ["/healthz", "/readyz"] {
        let (st, body) = srv.get(&Auth::None, p).await;
        assert_eq!(st.as_u16(), 200, "GET {p}: {body}");
    }
    // An unknown route answers in the API's error shape.
    let (st, body) = srv.get(&Auth::None, "/no/such/route").await;
    assert_eq!(st.as_u16(), 404, "GET /no/such/route: {body}");
    assert_eq!(body["header"]["isSuccessful"], json!(false), "{body}");
    // /metrics and /openapi.json belong to the ecosystem issue and get their tests there.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_log_filters_pages_and_redelivers() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("log").await;
    let cfg = srv
        .create_config(
            &app,
            config_body(SMS, &["UNSUBSCRIBE", "CONVERSION_BLOCK"], &rx.url("/log")),
        )
        .await;
    let cfg_id = s(&cfg, "webhookConfigId");
    // Three deliveries, one after the other.
    let mut order = Vec::new();
    for (event, id) in [
        ("UNSUBSCRIBE", "log-u1"),
        ("CONVERSION_BLOCK", "log-c1"),
        ("UNSUBSCRIBE", "log-u2"),
    ] {
        srv.ingest(
            &app,
            SMS,
            event,
            vec![samples::with_id(samples::hook(SMS, event, order.len()), id)],
        )
        .await;
        let d = srv
            .wait_for_hook_delivery(&app, &cfg_id, id, "SUCCEEDED", PROMPT)
            .await;
        order.push((s(&d, "hooksId"), id));
    }
    let all = srv.list_deliveries(&app, "").await;
    let got: Vec<String> = all.iter().map(|d| s(d, "hooksId")).collect();
    let newest_first: Vec<String> = order.iter().rev().map(|(h, _)| h.clone()).collect();
    assert_eq!(got, newest_first, "the log lists newest first");
    for d in &all {
        for k in [
            "hooksId",
            "webhookConfigId",
            "event",
            "status",
            "hookIds",
            "attemptCount",
            "createdAt",
        ] {
            assert!(
                d.get(k).is_some_and(|v| !v.is_null()),
                "list item lacks {k}: {d}"
            );
        }
        assert!(looks_like_rfc3339(&d["createdAt"]), "{d}");
        assert_eq!(d["attemptCount"], json!(1));
        assert!(
            d["nextAttemptAt"].is_null(),
            "no next attempt for a SUCCEEDED delivery: {d}"
        );
    }
    let count = |q: &'static str| {
        let srv = &srv;
        let app = &app;
        async move { srv.list_deliveries(app, q).await.len() }
    };
    assert_eq!(count("event=UNSUBSCRIBE").await, 2);
    assert_eq!(count("event=CONVERSION_BLOCK").await, 1);
    assert_eq!(count("status=SUCCEEDED").await, 3);
    assert_eq!(count("status=FAILED").await, 0);
    assert_eq!(count("hookId=log-c1").await, 1);
    let future = format!("since={}", server::urlencode(&rfc3339(3600)));
    assert_eq!(
        srv.list_deliveries(&app, &future).await.len(),
        0,
        "since in the future"
    );
    let past = format!("until={}", server::urlencode(&rfc3339(-3600)));
    assert_eq!(
        srv.list_deliveries(&app, &past).await.len(),
        0,
        "until in the past"
    );
    let window = format!(
        "since={}&until={}",
        server::urlencode(&rfc3339(-3600)),
        server::urlencode(&rfc3339(3600))
    );
    assert_eq!(
        srv.list_deliveries(&app, &window).await.len(),
        3,
        "since/until around now"
    );

    // pageSize=1 walks the log in the same order.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut path = app.path("/deliveries?pageSize=1");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", server::urlencode(c)));
        }
        let body = srv.expect(srv.get(&app.auth(), &path).await, 200, &path);
        let page = body["deliveries"].as_array().cloned().unwrap_or_default();
        assert!(page.len() <= 1, "pageSize=1: {body}");
        paged.extend(page.iter().map(|d| s(d, "hooksId")));
        match body["nextCursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
            _ => break,
        }
    }
    assert_eq!(
        paged, newest_first,
        "paging gives every delivery once, newest first"
    );

    // Redelivering a SUCCEEDED delivery sends its hooks again, as a new delivery.
    let (first_hooks_id, first_hook) = &order[0];
    let resp = srv
        .post(
            &app.auth(),
            &app.path(&format!("/deliveries/{first_hooks_id}/redeliver")),
            json!({}),
        )
        .await;
    let resp = srv.expect(resp, 202, "redeliver a SUCCEEDED delivery");
    let new_id = s(&resp["delivery"], "hooksId");
    assert_ne!(&new_id, first_hooks_id);
    srv.ok(rx
        .wait_until(PROMPT, "the redelivery", |reqs| {
            reqs.iter()
                .any(|r| r.hooks_id().as_deref() == Some(new_id.as_str()))
        })
        .await);
    assert_eq!(
        rx.hook_counts(None).get(*first_hook),
        Some(&2),
        "a redelivery sends the hook again"
    );
    srv.wait_for_delivery_status(&app, &new_id, "SUCCEEDED", PROMPT)
        .await;
    assert_eq!(
        count("hookId=log-u1").await,
        2,
        "the hook is now in two deliveries"
    );
}

/// The write-only signing secret survives the usual GET, edit, PUT round trip (the GET never
/// shows it, so the PUT cannot send it back); `null` removes it. PATCH changes only the fields it
/// names, `null` resets a field to its default, and a bad patch changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_keeps_the_signing_secret_and_patch_changes_only_what_it_names() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("patch").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/signed"));
    body["signingSecret"] = json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    body["timeoutMs"] = json!(5000);
    let cfg = srv.create_config(&app, body).await;
    let id = s(&cfg, "webhookConfigId");
    let path = app.path(&format!("/webhook-configs/{id}"));

    // GET, change the description, PUT it back: still signed.
    let (_, got) = srv.get(&app.auth(), &path).await;
    let mut edited = got["webhookConfig"].clone();
    edited["description"] = json!("edited");
    let put = srv.expect(srv.put(&app.auth(), &path, edited).await, 200, "PUT");
    assert_eq!(
        put["webhookConfig"]["hasSigningSecret"],
        json!(true),
        "{put}"
    );
    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    let reqs = srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    assert!(
        reqs[0].header("webhook-signature").is_some(),
        "a delivery after the round trip is still signed"
    );

    // PATCH: only the named field changes.
    let patched = srv.expect(
        srv.patch(&app.auth(), &path, json!({"url": rx.url("/patched")}))
            .await,
        200,
        "PATCH url",
    );
    let c = &patched["webhookConfig"];
    assert_eq!(c["url"], json!(rx.url("/patched")));
    assert_eq!(c["description"], json!("edited"));
    assert_eq!(c["timeoutMs"], json!(5000));
    assert_eq!(c["hasSigningSecret"], json!(true));
    // `null` returns a field to its default.
    let reset = srv.expect(
        srv.patch(&app.auth(), &path, json!({"timeoutMs": null}))
            .await,
        200,
        "PATCH timeoutMs null",
    );
    assert_eq!(reset["webhookConfig"]["timeoutMs"], json!(10000));
    // A bad patch names the field and changes nothing.
    let resp = srv
        .patch(
            &app.auth(),
            &path,
            json!({"description": "x", "maxHooksPerRequest": 0}),
        )
        .await;
    srv.ok(check_error(&resp, &[400], Some("maxHooksPerRequest")));
    let (_, after) = srv.get(&app.auth(), &path).await;
    assert_eq!(after["webhookConfig"]["description"], json!("edited"));
    // `"signingSecret": null` removes the secret.
    let removed = srv.expect(
        srv.patch(&app.auth(), &path, json!({"signingSecret": null}))
            .await,
        200,
        "PATCH signingSecret null",
    );
    assert_eq!(removed["webhookConfig"]["hasSigningSecret"], json!(false));
    // And a PUT with `null` removes it too, while an omission keeps "none".
    let mut put_body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/patched"));
    put_body["signingSecret"] = json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    srv.expect(
        srv.put(&app.auth(), &path, put_body.clone()).await,
        200,
        "PUT secret",
    );
    put_body["signingSecret"] = json!(null);
    let cleared = srv.expect(srv.put(&app.auth(), &path, put_body).await, 200, "PUT null");
    assert_eq!(cleared["webhookConfig"]["hasSigningSecret"], json!(false));
}

/// Custom headers: sent on every attempt (a retry too) and on test sends, shown by GET, merged by
/// PATCH, removed by a PUT that leaves them out; refused with the header's name when they would
/// replace hookline's own headers, smuggle a line break, or break the limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_go_with_every_attempt_and_bad_ones_are_refused_by_name() {
    let rx = Receiver::start().await;
    rx.respond_with(&[500]);
    let srv = Server::start().await;
    let app = srv.create_app_key("headers").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/h"));
    body["retrySchedule"] = schedule(3, "100ms");
    body["headers"] = json!({"Authorization": "Bearer abc123", "X-Tenant": "t-1"});
    let cfg = srv.create_config(&app, body.clone()).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let path = app.path(&format!("/webhook-configs/{cfg_id}"));
    assert_eq!(cfg["headers"], body["headers"], "{cfg}");

    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    srv.ok(rx.wait_for_requests(2, PROMPT).await);
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    let test = srv.expect(
        srv.post(&app.auth(), &format!("{path}/test"), json!({}))
            .await,
        200,
        "test send",
    );
    assert!(test["attempt"].is_object(), "{test}");
    let reqs = rx.requests();
    assert!(
        reqs.len() >= 3,
        "a failed attempt, its retry and the test send"
    );
    for r in &reqs {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer abc123"),
            "{}",
            r.summary()
        );
        assert_eq!(r.header("x-tenant"), Some("t-1"), "{}", r.summary());
        assert_eq!(r.header_count("authorization"), 1);
    }
    assert!(
        reqs.iter()
            .any(|r| r.header("x-hookline-test") == Some("true"))
    );
    // The delivery log shows each attempt's headers as sent, the credential masked (it is
    // never stored); so does the test send's.
    let failed = reqs
        .iter()
        .find(|r| r.header("x-hookline-test").is_none())
        .and_then(|r| r.hooks_id())
        .expect("a delivery's request");
    let logged = srv.get_delivery(&app, &failed).await;
    let sent = json!({"Authorization": "********", "X-Tenant": "t-1"});
    let attempts = logged["attempts"].as_array().cloned().unwrap_or_default();
    assert!(attempts.len() >= 2, "{logged:#}");
    for a in &attempts {
        assert_eq!(a["requestHeaders"], sent, "{logged:#}");
    }
    assert_eq!(test["attempt"]["requestHeaders"], sent, "{test}");

    // PATCH merges (null removes one header), PUT without `headers` removes them all.
    let patched = srv.expect(
        srv.patch(
            &app.auth(),
            &path,
            json!({"headers": {"X-Tenant": null, "X-Region": "eu"}}),
        )
        .await,
        200,
        "patch headers",
    );
    assert_eq!(
        patched["webhookConfig"]["headers"],
        json!({"Authorization": "Bearer abc123", "X-Region": "eu"}),
        "{patched}"
    );

    // Refusals name the header and change nothing.
    let long = "v".repeat(1025);
    let many: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    let cases = [
        (json!({"Host": "evil.example"}), "headers.Host"),
        (json!({"content-length": "1"}), "headers.content-length"),
        (json!({"webhook-id": "x"}), "headers.webhook-id"),
        (
            json!({"X-Hookline-Test": "false"}),
            "headers.X-Hookline-Test",
        ),
        (
            json!({"X-Toast-Webhook-Signature": "x"}),
            "headers.X-Toast-Webhook-Signature",
        ),
        (json!({"Bad Name": "x"}), "headers.Bad Name"),
        (json!({"X-Split": "a\r\nX-Injected: 1"}), "headers.X-Split"),
        (json!({"X-Nul": "a\u{0}b"}), "headers.X-Nul"),
        (json!({"X-Long": long}), "headers.X-Long"),
        (json!({"X-Number": 5}), "headers.X-Number"),
        (json!({"X-A": "1", "x-a": "2"}), "headers.x-a"),
        (Value::Object(many), "headers"),
        (json!(["X-A: 1"]), "headers"),
    ];
    for (headers, field) in cases {
        let mut bad = body.clone();
        bad["headers"] = headers.clone();
        let (st, answer) = srv.put(&app.auth(), &path, bad).await;
        assert_eq!(st.as_u16(), 400, "{headers}: {answer}");
        let message = answer["header"]["resultMessage"].as_str().unwrap_or("");
        assert!(
            message.starts_with(&format!("{field}:")),
            "{headers}: expected the message to name {field}: {answer}"
        );
    }
    let unchanged = srv.get_config(&app, &cfg_id).await;
    assert_eq!(
        unchanged["headers"],
        json!({"Authorization": "Bearer abc123", "X-Region": "eu"}),
        "{unchanged}"
    );

    let mut without = body.clone();
    without
        .as_object_mut()
        .map(|o| o.remove("headers"))
        .unwrap_or_default();
    let replaced = srv.expect(srv.put(&app.auth(), &path, without).await, 200, "put");
    assert_eq!(
        replaced["webhookConfig"]["headers"],
        json!({}),
        "{replaced}"
    );
}

/// A config with a filter gets only the hooks that match it, while a config without one gets
/// every hook; the trace says why a hook was left out; bad filters are refused naming the path
/// inside them and change nothing; PATCH and PUT change and remove it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_sends_only_the_hooks_that_match_and_bad_ones_are_refused_by_path() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("filters").await;
    let event = "MESSAGE_RESULT_UPDATE";
    let every = srv
        .create_config(&app, config_body(SMS, &[event], &rx.url("/every")))
        .await;
    let filter = json!({"messageStatus": {"$in": ["FAILED", "FAILED_AD"]}, "sendNo": "15446859"});
    let mut body = config_body(SMS, &[event], &rx.url("/failed"));
    body["filter"] = filter.clone();
    let cfg = srv.create_config(&app, body.clone()).await;
    assert_eq!(cfg["filter"], filter, "{cfg}");
    assert!(
        every.get("filter").is_none(),
        "no filter, no field: {every}"
    );
    let cfg_id = s(&cfg, "webhookConfigId");
    let path = app.path(&format!("/webhook-configs/{cfg_id}"));

    let statuses = [
        ("COMPLETED", "15446859"),
        ("FAILED", "15446859"),
        ("FAILED_AD", "15446859"),
        ("FAILED", "1"),
        ("CANCEL", "15446859"),
    ];
    let hooks: Vec<Value> = statuses
        .iter()
        .enumerate()
        .map(|(i, (status, send_no))| {
            let mut hook = samples::hook(SMS, event, i);
            hook["messageStatus"] = json!(status);
            hook["sendNo"] = json!(send_no);
            hook
        })
        .collect();
    let ids = srv.ingest(&app, SMS, event, hooks).await;
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    let wanted = vec![ids[1].clone(), ids[2].clone()];
    let failed_ids = || -> Vec<String> {
        rx.requests()
            .iter()
            .filter(|r| r.path == "/failed")
            .flat_map(|r| r.hook_ids())
            .collect()
    };
    let deadline = std::time::Instant::now() + PROMPT;
    while !wanted.iter().all(|id| failed_ids().contains(id)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the matching hooks did not reach the filtered config: {:?}",
            failed_ids()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let every_ids: Vec<String> = rx
        .requests()
        .iter()
        .filter(|r| r.path == "/every")
        .flat_map(|r| r.hook_ids())
        .collect();
    assert_eq!(every_ids.len(), ids.len(), "the unfiltered config gets all");
    // Everything accepted was delivered to /every; /failed has had its chance at the rest.
    srv.wait_for_deliveries(&app, "status=PENDING", PROMPT, "nothing open", |l| {
        l.is_empty()
    })
    .await;
    let mut got = failed_ids();
    got.sort();
    let mut want = wanted.clone();
    want.sort();
    assert_eq!(
        got, want,
        "the filtered config gets only the matching hooks"
    );

    // The trace says why the others did not go to it.
    for (i, hook_id) in ids.iter().enumerate() {
        let trace = srv.expect(
            srv.get(&app.auth(), &app.path(&format!("/hooks/{hook_id}")))
                .await,
            200,
            "trace",
        );
        let outcome_of = |id: &str| {
            trace["hook"]["configs"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["webhookConfigId"] == json!(id)))
                .map(|c| c["outcome"].clone())
        };
        let expected = if wanted.contains(hook_id) {
            "DELIVERED"
        } else {
            "FILTERED_OUT"
        };
        assert_eq!(
            outcome_of(&cfg_id),
            Some(json!(expected)),
            "hook {i}: {trace}"
        );
        assert_eq!(
            outcome_of(&s(&every, "webhookConfigId")),
            Some(json!("DELIVERED")),
            "hook {i}: {trace}"
        );
    }

    // Refusals name the path inside the filter and change nothing.
    let cases = [
        (
            json!({"messageStatus": {"$within": ["FAILED"]}}),
            "filter.messageStatus.$within",
        ),
        (
            json!({"$and": [{"a": 1}, {"b": {"$in": 3}}]}),
            "filter.$and[1].b.$in",
        ),
        (json!({"a": {"$gt": true}}), "filter.a.$gt"),
        (json!({"a..b": 1}), "filter.a..b"),
        (json!({"$where": "1"}), "filter.$where"),
        (json!("messageStatus = FAILED"), "filter"),
    ];
    for (bad_filter, field) in cases {
        let mut bad = body.clone();
        bad["filter"] = bad_filter.clone();
        let (st, answer) = srv.put(&app.auth(), &path, bad).await;
        assert_eq!(st.as_u16(), 400, "{bad_filter}: {answer}");
        let message = answer["header"]["resultMessage"].as_str().unwrap_or("");
        assert!(
            message.starts_with(&format!("{field}:")),
            "{bad_filter}: expected the message to name {field}: {answer}"
        );
    }
    assert_eq!(srv.get_config(&app, &cfg_id).await["filter"], filter);

    // PATCH merges into the filter (a key with null removes that condition); PUT without it
    // removes the filter: the config gets every hook again.
    let patched = srv.expect(
        srv.patch(&app.auth(), &path, json!({"filter": {"sendNo": null}}))
            .await,
        200,
        "patch filter",
    );
    assert_eq!(
        patched["webhookConfig"]["filter"],
        json!({"messageStatus": {"$in": ["FAILED", "FAILED_AD"]}}),
        "{patched}"
    );
    let mut without = body.clone();
    without
        .as_object_mut()
        .map(|o| o.remove("filter"))
        .unwrap_or_default();
    let replaced = srv.expect(srv.put(&app.auth(), &path, without).await, 200, "put");
    assert!(
        replaced["webhookConfig"].get("filter").is_none(),
        "{replaced}"
    );
    let later = srv
        .ingest(&app, SMS, event, vec![samples::hook(SMS, event, 9)])
        .await;
    srv.ok(rx.wait_for_hooks(&later, PROMPT).await);
    let deadline = std::time::Instant::now() + PROMPT;
    while !failed_ids().contains(&later[0]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the config without its filter did not get the next hook"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
