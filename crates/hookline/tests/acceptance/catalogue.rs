//! Issue 15: the event catalogue as data. Email hooks are validated like the others, every tenant
//! reads the catalogue (`GET /v1/catalogue`), and an operator's catalogue file adds a product that
//! works everywhere a built-in one does; a bad file stops the start, naming the file and the path.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::server::urlencode;
use crate::support::*;

/// An operator's product with one event: a required bounded string, an enum, an integer range.
pub(crate) const PUSH_CATALOGUE: &str = r#"{"products": [{"productName": "Push", "events": [{
  "event": "OPENED",
  "description": "A push notification was opened.",
  "aliases": {"tok": "token"},
  "hookSchema": {
    "type": "object",
    "required": ["token", "platform"],
    "properties": {
      "token": {"type": "string", "minLength": 4, "maxLength": 64},
      "platform": {"type": "string", "enum": ["IOS", "ANDROID"]},
      "openedAt": {"type": "string", "format": "yyyy-MM-dd'T'HH:mm:ss"},
      "badge": {"type": "integer", "minimum": 0, "maximum": 99}
    }
  },
  "example": {"hookId": "20240429205809PuShOpEnE00", "token": "abcd-1234", "platform": "IOS",
              "openedAt": "2024-04-29T20:58:09", "badge": 3}
}]}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_email_hooks_are_refused_naming_the_field() {
    let srv = Server::start().await;
    let app = srv.create_app_key("email-bad").await;
    let good = || samples::hook(EMAIL, "MESSAGE_RESULT_UPDATE", 0);
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut h = good();
    h["messageType"] = json!("SMS_MAIL");
    cases.push((h, "hooks[0].messageType"));
    let mut h = good();
    h.as_object_mut().unwrap().remove("mailSeq");
    cases.push((h, "hooks[0].mailSeq"));
    let mut h = good();
    h["mailSeq"] = json!(1.5);
    cases.push((h, "hooks[0].mailSeq"));
    let mut h = good();
    h["receiveMailAddr"] = json!("x".repeat(1025));
    cases.push((h, "hooks[0].receiveMailAddr"));
    let mut h = good();
    h["senderGroupKey"] = json!(5);
    h.as_object_mut().unwrap().remove("senderGroupingKey");
    cases.push((h, "hooks[0].senderGroupKey"));
    for (hook, field) in cases {
        let body = json!({"productName": "Email", "event": "MESSAGE_RESULT_UPDATE",
                          "hooks": [samples::hook(EMAIL, "MESSAGE_RESULT_UPDATE", 1), hook]});
        let resp = srv.post(&app.auth(), &app.path("/events"), body).await;
        let want = field.replace("hooks[0]", "hooks[1]");
        if let Err(e) = check_error(&resp, &[400], Some(&want)) {
            srv.fail(format!("a bad Email hook ({want}): {e}"));
        }
    }
    // Email's UNSUBSCRIBE needs the address.
    let resp = srv
        .post(
            &app.auth(),
            &app.path("/events"),
            json!({"productName": "Email", "event": "UNSUBSCRIBE",
                   "hooks": [{"createdDateTime": "2020-09-09T11:25:10.000+09:00"}]}),
        )
        .await;
    if let Err(e) = check_error(&resp, &[400], Some("hooks[0].receiveMailAddr")) {
        srv.fail(e);
    }
    // An event of another product is not an Email event.
    let resp = srv
        .post(
            &app.auth(),
            &app.path("/webhook-configs"),
            config_body(EMAIL, &["CONVERSION_BLOCK"], "http://127.0.0.1:9/x"),
        )
        .await;
    if let Err(e) = check_error(&resp, &[400], Some("events[0]")) {
        srv.fail(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_reads_the_catalogue_with_a_schema_and_an_example_per_event() {
    let srv = Server::start().await;
    let app = srv.create_app_key("catalogue-reader").await;
    for auth in [app.auth(), Auth::Admin] {
        let resp = srv.get(&auth, "/v1/catalogue").await;
        let body = srv.expect(resp, 200, "GET /v1/catalogue");
        let products = body["catalogue"]["products"].as_array().cloned().unwrap();
        let names: Vec<&str> = products
            .iter()
            .filter_map(|p| p["productName"].as_str())
            .collect();
        for want in [SMS, KAKAO, EMAIL, "hookline"] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        for p in &products {
            // Operational events are produced by hookline, never ingested.
            let ingestible = p["productName"] != json!("hookline");
            assert_eq!(p["ingestible"], json!(ingestible), "{p}");
            for e in p["events"].as_array().unwrap() {
                assert_eq!(
                    e["hookSchema"]["$schema"],
                    json!("https://json-schema.org/draft/2020-12/schema"),
                    "{e}"
                );
                assert!(e["example"]["hookId"].is_string(), "{e}");
                assert!(e["aliases"].is_object(), "{e}");
            }
        }
        let email = products.iter().find(|p| p["productName"] == EMAIL).unwrap();
        let result = email["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "MESSAGE_RESULT_UPDATE")
            .unwrap();
        assert_eq!(
            result["aliases"],
            json!({"senderGroupKey": "senderGroupingKey"})
        );
    }
    let resp = srv.get(&Auth::None, "/v1/catalogue").await;
    assert_error(&srv, &resp, 401, "the catalogue without credentials");
    let resp = srv
        .get(&Auth::Secret("not-a-secret".into()), "/v1/catalogue")
        .await;
    assert_error(&srv, &resp, 401, "the catalogue with an unknown secret key");
}

/// Starts a server with `PUSH_CATALOGUE` as its operator's catalogue file.
async fn push_server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("push.json");
    std::fs::write(&file, PUSH_CATALOGUE).unwrap();
    let srv = Server::start_with(&["--catalogue", file.to_str().unwrap()]).await;
    (srv, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_catalogue_adds_a_product_that_works_everywhere() {
    let rx = Receiver::start().await;
    let (srv, _dir) = push_server().await;
    let app = srv.create_app_key("push").await;
    let cfg = srv
        .create_config(&app, config_body("Push", &["OPENED"], &rx.url("/push")))
        .await;
    assert_eq!(cfg["productName"], json!("Push"));

    // Ingest validates against the file's schema, with field paths, all or nothing.
    let good = json!({"tok": "abcd-9876", "platform": "ANDROID", "badge": 0, "vendor": {"x": 1}});
    for (bad, field) in [
        (json!({"token": "abc", "platform": "IOS"}), "hooks[1].token"),
        (
            json!({"token": "abcd", "platform": "WEB"}),
            "hooks[1].platform",
        ),
        (
            json!({"token": "abcd", "platform": "IOS", "badge": 100}),
            "hooks[1].badge",
        ),
        (
            json!({"token": "abcd", "platform": "IOS", "openedAt": "yesterday"}),
            "hooks[1].openedAt",
        ),
        (json!({"token": "abcd"}), "hooks[1].platform"),
    ] {
        let resp = srv
            .post(
                &app.auth(),
                &app.path("/events"),
                json!({"productName": "push", "event": "OPENED", "hooks": [good.clone(), bad]}),
            )
            .await;
        if let Err(e) = check_error(&resp, &[400], Some(field)) {
            srv.fail(format!("a bad Push hook ({field}): {e}"));
        }
    }
    let ids = srv.ingest(&app, "Push", "OPENED", vec![good.clone()]).await;
    let reqs = srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    let envelope = reqs[0].json.clone().unwrap();
    assert_eq!(envelope["productName"], json!("Push"));
    assert_eq!(envelope["event"], json!("OPENED"));
    assert_eq!(
        envelope["hooks"][0],
        json!({"token": "abcd-9876", "platform": "ANDROID", "badge": 0, "vendor": {"x": 1},
               "hookId": ids[0]}),
        "the alias is renamed, unknown fields are kept"
    );

    // The test route sends the event's example.
    let resp = srv
        .post(
            &app.auth(),
            &app.path(&format!(
                "/webhook-configs/{}/test",
                s(&cfg, "webhookConfigId")
            )),
            json!({"event": "OPENED"}),
        )
        .await;
    let attempt = srv.expect(resp, 200, "test send of an operator's event");
    assert_eq!(attempt["attempt"]["statusCode"], json!(200), "{attempt}");

    // The catalogue and the OpenAPI document list it.
    let resp = srv.get(&app.auth(), "/v1/catalogue").await;
    let body = srv.expect(resp, 200, "GET /v1/catalogue");
    let push = body["catalogue"]["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["productName"] == "Push")
        .cloned()
        .unwrap_or_else(|| srv.fail(format!("no Push in {body}")));
    assert_eq!(push["events"][0]["event"], json!("OPENED"));
    assert_eq!(
        push["events"][0]["hookSchema"]["properties"]["badge"]["type"],
        json!(["integer", "null"])
    );
    let doc: Value = srv
        .http
        .get(srv.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["ProductName"]["enum"]
            .as_array()
            .is_some_and(|v| v.contains(&json!("Push"))),
        "{}",
        schemas["ProductName"]
    );
    assert!(
        schemas["EventName"]["enum"]
            .as_array()
            .is_some_and(|v| v.contains(&json!("OPENED"))),
        "{}",
        schemas["EventName"]
    );
    assert_eq!(
        schemas["Hook.Push.OPENED"]["properties"]["platform"]["enum"],
        json!(["IOS", "ANDROID"])
    );

    // The dashboard offers it.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signin = http
        .post(srv.url("/ui/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "appKey={}&secretKey={}",
            urlencode(&app.app_key),
            urlencode(&app.secret)
        ))
        .send()
        .await
        .unwrap();
    let cookie = signin
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("hookline_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .unwrap_or_else(|| srv.fail("the dashboard's sign-in set no session"));
    let form = http
        .get(srv.url("/ui/configs/new"))
        .header("cookie", format!("hookline_session={cookie}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("<option>Push</option>"), "{form}");
    assert!(form.contains("value=\"OPENED\""), "{form}");

    // `hookline emit --product Push` sends the server's example, freshened.
    // Under a time limit, like every process a test starts: a hang fails, it does not stall CI.
    let out = process::run(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args([
                "emit",
                "--server",
                &srv.base_url,
                "--app-key",
                &app.app_key,
                "--secret-key",
                &app.secret,
                "--product",
                "push",
                "--event",
                "OPENED",
                "--json",
            ])
            .env("NO_PROXY", "*"),
        Duration::from_secs(60),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "emit --product push: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let emitted: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(emitted["productName"], json!("Push"));
    let emitted_ids = str_array(&emitted["lastHookIds"], "lastHookIds");
    srv.ok(rx.wait_for_hooks(&emitted_ids, PROMPT).await);
}

/// Runs `hookline serve` with `file` as a catalogue; it must exit at once, non-zero, saying why.
async fn refused_start(name: &str, text: &str, wants: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, text).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--catalogue",
        file.to_str().unwrap(),
    ])
    .env_remove("HOOKLINE_DATABASE_URL")
    .env_remove("HOOKLINE_CATALOGUE");
    let out = process::run(&mut cmd, Duration::from_secs(30)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{name} must stop the start: {stderr}"
    );
    for want in wants.iter().chain([&name]) {
        assert!(stderr.contains(want), "{name}: want {want:?} in:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_catalogue_files_stop_the_start_naming_the_file_and_the_path() {
    refused_start(
        "unknown-keyword.json",
        r#"{"products": [{"productName": "Push", "events": [{"event": "OPENED",
            "hookSchema": {"type": "object", "properties": {"token": {"type": "string", "oneOf": []}}},
            "example": {}}]}]}"#,
        &["$.products[0].events[0].hookSchema.properties.token.oneOf"],
    )
    .await;
    refused_start(
        "redefined.json",
        r#"{"products": [{"productName": "Sms", "events": [{"event": "UNSUBSCRIBE",
            "hookSchema": {"type": "object"}, "example": {}}]}]}"#,
        &["$.products[0].events[0].event", "built-in"],
    )
    .await;
    refused_start(
        "broken.json",
        "{\"products\": [{\"productName\": \"Push\",\n \"events\": [}",
        &["line 2 column"],
    )
    .await;
}
