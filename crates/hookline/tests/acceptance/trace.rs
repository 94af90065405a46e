//! Issue 17, item 2: the trace of a hook. One hookId, four configs of one app key: delivered
//! (with its delivery), not subscribed (another event), paused before the hook was accepted (no
//! queue row), created after it; 404 for a hookId never accepted, 400 for one that cannot be a
//! hookId; the tenancy rules; the admin's search across app keys; and `hookline trace` run as a
//! binary.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const UNSUB: &str = "UNSUBSCRIBE";
const RESULT: &str = "MESSAGE_RESULT_UPDATE";
const HOOK_ID: &str = "trace-hook-1";

struct Setup {
    app: App,
    delivered: String,
    not_subscribed: String,
    paused: String,
    created_after: String,
    hooks_id: String,
}

/// An app key with the four configs, the hook accepted, and its delivery to the first awaited.
async fn setup(srv: &Server, rx: &Receiver) -> Setup {
    let app = srv.create_app_key("trace").await;
    let id = |c: Value| s(&c, "webhookConfigId");
    let delivered = id(srv
        .create_config(&app, config_body(SMS, &[UNSUB], &rx.url("/a")))
        .await);
    let not_subscribed = id(srv
        .create_config(&app, config_body(SMS, &[RESULT], &rx.url("/b")))
        .await);
    let mut paused_body = config_body(SMS, &[UNSUB], &rx.url("/c"));
    paused_body["enabled"] = Value::Bool(false);
    let paused = id(srv.create_config(&app, paused_body).await);
    let hook = samples::with_id(samples::hook(SMS, UNSUB, 0), HOOK_ID);
    srv.ingest(&app, SMS, UNSUB, vec![hook]).await;
    let d = srv
        .wait_for_hook_delivery(&app, &delivered, HOOK_ID, "SUCCEEDED", PROMPT)
        .await;
    let created_after = id(srv
        .create_config(&app, config_body(SMS, &[UNSUB], &rx.url("/e")))
        .await);
    Setup {
        app,
        delivered,
        not_subscribed,
        paused,
        created_after,
        hooks_id: s(&d, "hooksId"),
    }
}

fn config_of<'a>(srv: &Server, hook: &'a Value, id: &str) -> &'a Value {
    hook["configs"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["webhookConfigId"] == id))
        .unwrap_or_else(|| srv.fail(format!("config {id} not in the trace {hook}")))
}

fn check_trace(srv: &Server, hook: &Value, set: &Setup) {
    assert_eq!(hook["hookId"], HOOK_ID, "{hook}");
    assert_eq!(hook["appKey"], set.app.app_key.as_str(), "{hook}");
    assert_eq!(hook["productName"], SMS, "{hook}");
    assert_eq!(hook["event"], UNSUB, "{hook}");
    assert!(hook["acceptedAt"].is_string(), "{hook}");
    assert_eq!(hook["body"]["hookId"], HOOK_ID, "the stored hook: {hook}");
    assert_eq!(
        hook["configs"].as_array().map(Vec::len),
        Some(4),
        "every config of the app key for SMS: {hook}"
    );

    let a = config_of(srv, hook, &set.delivered);
    assert_eq!(a["outcome"], "DELIVERED", "{a}");
    let deliveries = a["deliveries"].as_array().cloned().unwrap_or_default();
    assert_eq!(deliveries.len(), 1, "{a}");
    assert_eq!(deliveries[0]["hooksId"], set.hooks_id.as_str(), "{a}");
    assert_eq!(deliveries[0]["status"], "SUCCEEDED", "{a}");
    assert_eq!(deliveries[0]["attempts"], 1, "{a}");
    assert_eq!(deliveries[0]["lastStatusCode"], 200, "{a}");

    for (id, outcome) in [
        (&set.not_subscribed, "NOT_SUBSCRIBED"),
        (&set.paused, "PAUSED"),
        (&set.created_after, "CREATED_AFTER"),
    ] {
        let c = config_of(srv, hook, id);
        assert_eq!(c["outcome"], outcome, "{c}");
        assert_eq!(c["deliveries"], serde_json::json!([]), "{c}");
        assert!(
            c["explanation"].as_str().is_some_and(|e| !e.is_empty()),
            "{c}"
        );
    }
    let after = config_of(srv, hook, &set.created_after);
    assert!(
        after["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("created") && e.contains("after")),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_tells_delivered_not_subscribed_paused_and_created_after_apart() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let set = setup(&srv, &rx).await;
    let path = set.app.path(&format!("/hooks/{HOOK_ID}"));

    for auth in [set.app.auth(), Auth::Admin] {
        let body = srv.expect(srv.get(&auth, &path).await, 200, "GET the trace");
        check_trace(&srv, &body["hook"], &set);
    }

    // Never accepted: 404 naming the hookId. Not a hookId at all: 400 naming the field.
    let resp = srv
        .get(&set.app.auth(), &set.app.path("/hooks/never-accepted"))
        .await;
    srv.ok(check_error(&resp, &[404], Some("hookId")));
    let too_long = "x".repeat(65);
    let resp = srv
        .get(
            &set.app.auth(),
            &set.app.path(&format!("/hooks/{too_long}")),
        )
        .await;
    srv.ok(check_error(&resp, &[400], Some("hookId")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_follows_the_tenancy_rules_and_the_admin_finds_every_app_key() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let set = setup(&srv, &rx).await;
    let other = srv.create_app_key("other").await;
    let path = set.app.path(&format!("/hooks/{HOOK_ID}"));

    srv.ok(check_error(
        &srv.get(&Auth::None, &path).await,
        &[401],
        None,
    ));
    srv.ok(check_error(
        &srv.get(&other.auth(), &path).await,
        &[403],
        None,
    ));
    // A's hookId under the other app key's own path: as if it did not exist.
    let resp = srv
        .get(&other.auth(), &other.path(&format!("/hooks/{HOOK_ID}")))
        .await;
    srv.ok(check_error(&resp, &[404], Some("hookId")));

    // The admin's search: one app key, then two once the other accepts the same hookId.
    let search = format!("/v1/hooks/{HOOK_ID}");
    for auth in [
        Auth::None,
        set.app.auth(),
        Auth::Bearer(set.app.secret.clone()),
    ] {
        srv.ok(check_error(&srv.get(&auth, &search).await, &[401], None));
    }
    let found = srv.expect(srv.get(&Auth::Admin, &search).await, 200, "admin search");
    let hooks = found["hooks"].as_array().cloned().unwrap_or_default();
    assert_eq!(hooks.len(), 1, "{found}");
    check_trace(&srv, &hooks[0], &set);

    let hook = samples::with_id(samples::hook(SMS, RESULT, 0), HOOK_ID);
    srv.ingest(&other, SMS, RESULT, vec![hook]).await;
    let found = srv.expect(srv.get(&Auth::Admin, &search).await, 200, "admin search");
    let mut keys: Vec<String> = found["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| s(h, "appKey"))
        .collect();
    keys.sort();
    let mut expected = vec![set.app.app_key.clone(), other.app_key.clone()];
    expected.sort();
    assert_eq!(keys, expected, "{found}");
    let theirs = found["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["appKey"] == other.app_key.as_str())
        .unwrap_or_else(|| srv.fail(format!("no hook of the other app key in {found}")));
    assert_eq!(theirs["event"], RESULT, "{theirs}");
    assert_eq!(theirs["configs"], serde_json::json!([]), "{theirs}");

    let resp = srv.get(&Auth::Admin, "/v1/hooks/never-accepted").await;
    srv.ok(check_error(&resp, &[404], Some("hookId")));
}

/// Runs `hookline <args>` with only `env` for credentials; (exit code, stdout, stderr).
async fn hookline(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
    cmd.args(args)
        .env_remove("HOOKLINE_APP_KEY")
        .env_remove("HOOKLINE_SECRET_KEY")
        .env_remove("HOOKLINE_ADMIN_TOKEN")
        .env_remove("HOOKLINE_SERVER")
        .env_remove("HOOKLINE_DATA_DIR")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("hookline {args:?} did not finish in 60 s"))
        .unwrap_or_else(|e| panic!("cannot run hookline: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hookline_trace_shows_why_a_hook_did_or_did_not_arrive() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let set = setup(&srv, &rx).await;
    let tenant = [
        ("HOOKLINE_SERVER", srv.base_url.as_str()),
        ("HOOKLINE_APP_KEY", set.app.app_key.as_str()),
        ("HOOKLINE_SECRET_KEY", set.app.secret.as_str()),
    ];

    let (code, out, err) = hookline(&tenant, &["trace", HOOK_ID, "--json"]).await;
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    let answer: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    check_trace(&srv, &answer["hook"], &set);

    let (code, out, err) = hookline(&tenant, &["trace", HOOK_ID]).await;
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    for (id, outcome) in [
        (&set.delivered, "DELIVERED"),
        (&set.not_subscribed, "NOT_SUBSCRIBED"),
        (&set.paused, "PAUSED"),
        (&set.created_after, "CREATED_AFTER"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(id.as_str()) && l.contains(outcome)),
            "no row `{id} ... {outcome}` in:\n{out}"
        );
    }
    assert!(
        out.contains(&set.hooks_id),
        "the delivery's hooksId:\n{out}"
    );

    let (code, out, err) = hookline(&tenant, &["trace", "never-accepted"]).await;
    assert_ne!(code, Some(0), "stdout: {out}");
    assert!(
        err.contains("404") && err.contains("hookId"),
        "stderr: {err}"
    );

    let admin = [
        ("HOOKLINE_SERVER", srv.base_url.as_str()),
        ("HOOKLINE_ADMIN_TOKEN", srv.admin_token.as_str()),
    ];
    let (code, out, err) = hookline(&admin, &["trace", "--admin", HOOK_ID, "--json"]).await;
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    let answer: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!(
        answer["hooks"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    check_trace(&srv, &answer["hooks"][0], &set);
}
