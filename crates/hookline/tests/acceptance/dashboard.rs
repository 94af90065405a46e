//! Issue 6: the dashboard's server side. Sign-in, sessions, CSRF protection and HTML escaping,
//! over plain HTTP (the browser flow is in scripts/ecosystem/dashboard/).

use serde_json::{Value, json};

use crate::support::browser::Browser;
use crate::support::*;

async fn configs_of(srv: &Server, app: &App) -> Vec<Value> {
    let body = srv.expect(
        srv.get(&app.auth(), &app.path("/webhook-configs")).await,
        200,
        "list configs",
    );
    body["webhookConfigs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refuses_a_wrong_secret_and_pages_need_a_session() {
    let srv = Server::start().await;
    let app = srv.create_app_key("dash").await;
    let other = srv.create_app_key("other").await;
    let mut browser = Browser::new(&srv);

    // Without a session: the sign-in page, and every other page sends there.
    let home = browser.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("name=\"secretKey\""), "{}", home.body);
    for path in [
        "/ui/deliveries",
        "/ui/configs/new",
        "/ui/configs/nope",
        "/ui/deliveries/nope",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 303, "GET {path} without a session");
        assert_eq!(page.location(), "/", "GET {path} without a session");
    }
    let post = browser.post("/ui/configs", &[("csrf", "x")], &[]).await;
    assert_eq!(post.status, 303, "POST without a session");
    assert_eq!(post.location(), "/");

    // Wrong secrets: not this app key's, another app key's, empty.
    for (secret, what) in [
        ("not-the-secret", "a wrong secret"),
        (other.secret.as_str(), "another app key's secret"),
        ("", "no secret"),
    ] {
        let page = browser
            .post(
                "/ui/signin",
                &[("appKey", &app.app_key), ("secretKey", secret)],
                &[],
            )
            .await;
        assert_eq!(page.status, 401, "sign-in with {what}");
        assert!(page.session_cookie().is_none(), "no session for {what}");
        assert!(page.body.contains("do not match"), "{}", page.body);
        assert!(
            !page.body.contains(&app.secret),
            "the page never echoes a secret"
        );
    }

    // The right one: a session cookie that scripts cannot read and other sites do not send.
    let page = browser
        .post(
            "/ui/signin",
            &[("appKey", &app.app_key), ("secretKey", &app.secret)],
            &[],
        )
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/");
    let (id, attrs) = page.session_cookie().expect("session cookie");
    assert!(id.len() >= 32, "session id {id:?} is long and random");
    assert!(
        !id.contains(&app.secret),
        "the cookie does not hold the secret"
    );
    assert!(attrs.contains("HttpOnly"), "{attrs}");
    assert!(attrs.contains("SameSite=Strict"), "{attrs}");
    browser.cookie = Some(id);
    let log = browser.get("/ui/deliveries").await;
    assert_eq!(log.status, 200);
    assert!(log.body.contains("Delivery log"));
    assert!(log.body.contains(&app.app_key));
    assert!(!log.body.contains(&app.secret));

    // A made-up session id is no session.
    let forged = Browser {
        cookie: Some("0123456789abcdef0123456789abcdef".into()),
        ..Browser::new(&srv)
    };
    assert_eq!(forged.get("/ui/deliveries").await.status, 303);

    // Rotating the secret key ends the sessions opened with the old one.
    srv.expect(
        srv.post(&app.auth(), &app.path("/secret-key/rotate"), json!({}))
            .await,
        200,
        "rotate the secret key",
    );
    let page = browser.get("/ui/deliveries").await;
    assert_eq!(page.status, 303, "session ended by the rotation");
    assert_eq!(page.location(), "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_session_csrf_token_are_refused() {
    let srv = Server::start().await;
    let app = srv.create_app_key("dash").await;
    let mut browser = Browser::new(&srv);
    browser.sign_in(&app).await;
    let form = browser.get("/ui/configs/new").await;
    assert_eq!(form.status, 200);
    let token = form.csrf();
    // A second session of the same app key has its own token.
    let mut second = Browser::new(&srv);
    second.sign_in(&app).await;
    let second_token = second.get("/ui/configs/new").await.csrf();
    assert_ne!(token, second_token);

    let url = "http://127.0.0.1:9/hooks";
    let fields = |csrf: Option<&'static str>| -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("productName", "SMS".to_owned()),
            ("events", "UNSUBSCRIBE".to_owned()),
            ("url", url.to_owned()),
            ("signature", "sig".to_owned()),
            ("enabled", "true".to_owned()),
        ];
        if let Some(c) = csrf {
            f.push(("csrf", c.to_owned()));
        }
        f
    };
    let post = |extra_fields: Vec<(&'static str, String)>,
                headers: Vec<(&'static str, &'static str)>| {
        let browser = &browser;
        async move {
            let pairs: Vec<(&str, &str)> =
                extra_fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser.post("/ui/configs", &pairs, &headers).await
        }
    };

    // No token, a wrong token, another session's token: refused, nothing created.
    let page = post(fields(None), vec![]).await;
    assert_eq!(page.status, 403, "no token: {}", page.body);
    let mut wrong = fields(None);
    wrong.push(("csrf", "0".repeat(32)));
    assert_eq!(post(wrong, vec![]).await.status, 403, "a wrong token");
    let mut others = fields(None);
    others.push(("csrf", second_token.clone()));
    assert_eq!(
        post(others, vec![]).await.status,
        403,
        "another session's token"
    );
    // The right token from a page of another origin: refused too.
    let mut cross = fields(None);
    cross.push(("csrf", token.clone()));
    assert_eq!(
        post(cross, vec![("origin", "http://evil.example")])
            .await
            .status,
        403,
        "a cross-origin POST"
    );
    assert!(
        configs_of(&srv, &app).await.is_empty(),
        "no config was created by a refused form"
    );
    // The other state-changing forms check it too.
    let signout = browser.post("/ui/signout", &[], &[]).await;
    assert_eq!(signout.status, 403, "sign-out without the token");

    // With the token: created, and the page of the new config follows.
    let mut good = fields(None);
    good.push(("csrf", token.clone()));
    let page = post(good, vec![]).await;
    assert_eq!(page.status, 303, "with the token: {}", page.body);
    let configs = configs_of(&srv, &app).await;
    assert_eq!(configs.len(), 1);
    let id = s(&configs[0], "webhookConfigId");
    assert_eq!(page.location(), format!("/ui/configs/{id}"));
    assert_eq!(configs[0]["events"], json!(["UNSUBSCRIBE"]));

    // Disable without, then with, the token.
    let path = format!("/ui/configs/{id}/enabled");
    let page = browser.post(&path, &[("enabled", "false")], &[]).await;
    assert_eq!(page.status, 403);
    assert_eq!(configs_of(&srv, &app).await[0]["enabled"], json!(true));
    let page = browser
        .post(&path, &[("enabled", "false"), ("csrf", &token)], &[])
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(configs_of(&srv, &app).await[0]["enabled"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_escape_what_they_show_and_stay_within_the_app_key() {
    let srv = Server::start().await;
    let app = srv.create_app_key("dash").await;
    let other = srv.create_app_key("other").await;
    let script = "<script>alert(\"x\")</script>";
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], "http://127.0.0.1:9/hooks");
    body["description"] = json!(script);
    body["signature"] = json!("sig\"><img src=x onerror=alert(1)>");
    body["signingSecret"] = json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let cfg = srv.create_config(&app, body).await;
    let id = s(&cfg, "webhookConfigId");
    let theirs = srv
        .create_config(
            &other,
            config_body(SMS, &["UNSUBSCRIBE"], "http://127.0.0.1:9/x"),
        )
        .await;

    let mut browser = Browser::new(&srv);
    browser.sign_in(&app).await;
    for path in [
        "/".to_owned(),
        format!("/ui/configs/{id}"),
        format!("/ui/configs/{id}/edit"),
        format!("/ui/deliveries?webhookConfigId={id}"),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200, "GET {path}");
        assert!(
            !page.body.contains("<script"),
            "GET {path}: a raw <script> in the page:\n{}",
            page.body
        );
        assert!(
            !page.body.contains("<img"),
            "GET {path}: a raw <img> in the page"
        );
        assert!(
            page.body
                .contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"),
            "GET {path}: the description, escaped:\n{}",
            page.body
        );
        assert!(
            !page.body.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "GET {path}: the signing secret is never shown"
        );
    }
    let page = browser.get(&format!("/ui/configs/{id}")).await;
    assert!(
        page.body
            .contains("sig&quot;&gt;&lt;img src=x onerror=alert(1)&gt;")
    );
    // A query value is escaped too, in the filter form that shows it back.
    let page = browser
        .get("/ui/deliveries?hookId=%22%3E%3Cscript%3Ex%3C%2Fscript%3E")
        .await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script"));
    assert!(
        page.body
            .contains("value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\"")
    );

    // Another app key's config is not found from this session.
    let page = browser
        .get(&format!("/ui/configs/{}", s(&theirs, "webhookConfigId")))
        .await;
    assert_eq!(page.status, 404);
    let list = browser.get("/").await;
    assert!(!list.body.contains(&s(&theirs, "webhookConfigId")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_counts_the_configs_attempts() {
    let rx = Receiver::start().await;
    let rx_other = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("dash").await;
    // This config's receiver fails once: two attempts, one successful.
    rx.respond_with(&[500]);
    let cfg = srv
        .create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/c")))
        .await;
    let id = s(&cfg, "webhookConfigId");
    // Another config's attempt does not count.
    srv.create_config(
        &app,
        config_body(SMS, &["UNSUBSCRIBE"], &rx_other.url("/d")),
    )
    .await;
    srv.ingest(
        &app,
        SMS,
        "UNSUBSCRIBE",
        vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
    )
    .await;
    let done = srv
        .wait_for_deliveries(
            &app,
            "status=SUCCEEDED",
            PROMPT,
            "both deliveries SUCCEEDED",
            |d| d.len() == 2,
        )
        .await;
    let own: Vec<&Value> = done
        .iter()
        .filter(|d| d["webhookConfigId"] == json!(id))
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["attemptCount"], json!(2));

    let mut browser = Browser::new(&srv);
    browser.sign_in(&app).await;
    let page = browser.get(&format!("/ui/configs/{id}?range=7d")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("data-attempts=\"2\""),
        "two attempts in the chart:\n{}",
        page.body
    );
    assert!(page.body.contains("<b>50 %</b> succeeded"), "{}", page.body);
    let bars = page.body.matches("<rect class=\"bar warn").count();
    assert_eq!(
        bars, 1,
        "one interval (of 3 h) with attempts, half of them failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_page_shows_what_became_of_a_hook_for_each_config() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("dash-trace").await;
    let other = srv.create_app_key("other").await;
    let delivered = s(
        &srv.create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/a")))
            .await,
        "webhookConfigId",
    );
    let mut paused_body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/c"));
    paused_body["enabled"] = json!(false);
    let paused = s(
        &srv.create_config(&app, paused_body).await,
        "webhookConfigId",
    );
    let hook = samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", 0), "dash-trace-1");
    srv.ingest(&app, SMS, "UNSUBSCRIBE", vec![hook]).await;
    let d = srv
        .wait_for_hook_delivery(&app, &delivered, "dash-trace-1", "SUCCEEDED", PROMPT)
        .await;
    let theirs = samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", 0), "their-hook");
    srv.ingest(&other, SMS, "UNSUBSCRIBE", vec![theirs]).await;

    let mut browser = Browser::new(&srv);
    let page = browser.get("/ui/hooks?hookId=dash-trace-1").await;
    assert_eq!(page.status, 303, "a trace needs a session");
    browser.sign_in(&app).await;

    // The search box is on every page (the nav) and on the trace page itself.
    let page = browser.get("/").await;
    assert!(page.body.contains("href=\"/ui/hooks\""), "{}", page.body);
    let page = browser.get("/ui/hooks").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"trace-search\""), "{}", page.body);

    let page = browser.get("/ui/hooks?hookId=dash-trace-1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    for (id, outcome) in [(&delivered, "DELIVERED"), (&paused, "PAUSED")] {
        assert!(
            page.body.contains(&format!(
                "data-config-id=\"{id}\" data-outcome=\"{outcome}\""
            )),
            "config {id} {outcome} in:\n{}",
            page.body
        );
    }
    assert!(page.body.contains(&s(&d, "hooksId")), "{}", page.body);

    // Another app key's hook is not found from this session; a bad id is escaped back.
    let page = browser.get("/ui/hooks?hookId=their-hook").await;
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(page.body.contains("hookId"), "{}", page.body);
    let page = browser
        .get("/ui/hooks?hookId=%22%3E%3Cscript%3Ex%3C%2Fscript%3E")
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(
        page.body
            .contains("value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""),
        "{}",
        page.body
    );
}

/// A credential in a custom header is shown masked on the config's page and in its form, and
/// saving the form with the mask untouched keeps the stored value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_header_credentials_are_masked_and_kept_by_an_edit() {
    let srv = Server::start().await;
    let app = srv.create_app_key("dash-headers").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], "http://127.0.0.1:9/hooks");
    body["headers"] = json!({"Authorization": "Bearer s3cr3t-t0ken", "X-Team": "blue"});
    let cfg = srv.create_config(&app, body).await;
    let id = s(&cfg, "webhookConfigId");

    let mut browser = Browser::new(&srv);
    browser.sign_in(&app).await;
    for path in [
        format!("/ui/configs/{id}"),
        format!("/ui/configs/{id}/edit"),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200, "GET {path}");
        assert!(
            !page.body.contains("s3cr3t-t0ken"),
            "GET {path} shows the credential"
        );
        assert!(page.body.contains("Authorization: ********"), "GET {path}");
        assert!(page.body.contains("X-Team: blue"), "GET {path}");
    }
    let form = browser.get(&format!("/ui/configs/{id}/edit")).await;
    let csrf = form.csrf();
    let saved = browser
        .post(
            &format!("/ui/configs/{id}"),
            &[
                ("csrf", csrf.as_str()),
                ("productName", SMS),
                ("events", "UNSUBSCRIBE"),
                ("url", "http://127.0.0.1:9/hooks"),
                ("signature", "sig"),
                ("enabled", "true"),
                ("headers", "Authorization: ********\r\nX-Team: green"),
            ],
            &[],
        )
        .await;
    assert_eq!(saved.status, 303, "save: {}", saved.body);
    let stored = srv.get_config(&app, &id).await;
    assert_eq!(
        stored["headers"],
        json!({"Authorization": "Bearer s3cr3t-t0ken", "X-Team": "green"}),
        "{stored}"
    );
}

/// A test send's record is marked on its delivery page, which offers no redelivery (the API
/// refuses one with 409); a real delivery's page offers it and has no marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_send_is_marked_on_its_delivery_page() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("dash-test-send").await;
    let cfg = srv
        .create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/t")))
        .await;
    let id = s(&cfg, "webhookConfigId");
    srv.expect(
        srv.post(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{id}/test")),
            json!({}),
        )
        .await,
        200,
        "test send",
    );
    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    let logged = srv
        .wait_for_deliveries(
            &app,
            &format!("webhookConfigId={id}"),
            PROMPT,
            "both logged",
            |l| l.len() == 2,
        )
        .await;
    let mut browser = Browser::new(&srv);
    browser.sign_in(&app).await;
    for d in &logged {
        let page = browser
            .get(&format!("/ui/deliveries/{}", s(d, "hooksId")))
            .await;
        assert_eq!(page.status, 200);
        let is_test = d["test"] == json!(true);
        assert_eq!(page.body.contains("id=\"test-marker\""), is_test, "{d}");
        assert_eq!(page.body.contains("id=\"redeliver\""), !is_test, "{d}");
    }
    assert_eq!(
        logged.iter().filter(|d| d["test"] == json!(true)).count(),
        1,
        "{logged:?}"
    );
}

/// Issue 16: the dashboard sets, shows and edits a config's `deliveryDeadline`; a bad value is
/// refused by name and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_form_sets_and_shows_a_delivery_deadline() {
    let srv = Server::start().await;
    let app = srv.create_app_key("dash").await;
    let mut browser = Browser::new(&srv);
    browser.sign_in(&app).await;
    let token = browser.get("/ui/configs/new").await.csrf();
    let form = |deadline: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("productName", "SMS".to_owned()),
            ("events", "UNSUBSCRIBE".to_owned()),
            ("url", "http://127.0.0.1:9/hooks".to_owned()),
            ("signature", "sig".to_owned()),
            ("enabled", "true".to_owned()),
            ("deliveryDeadline", deadline.to_owned()),
            ("csrf", token.clone()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let browser = &browser;
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser.post("/ui/configs", &pairs, &[]).await
        }
    };
    let refused = post(form("45d")).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("deliveryDeadline"),
        "{}",
        refused.body
    );
    assert!(
        configs_of(&srv, &app).await.is_empty(),
        "a refused form created a config"
    );

    let created = post(form("10m")).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let configs = configs_of(&srv, &app).await;
    assert_eq!(configs[0]["deliveryDeadline"], json!("10m"));
    let page = browser.get(created.location()).await;
    assert!(
        page.body.contains("10m after acceptance"),
        "the config page shows the deadline: {}",
        page.body
    );
    let id = s(&configs[0], "webhookConfigId");
    let edit = browser.get(&format!("/ui/configs/{id}/edit")).await;
    assert_eq!(edit.status, 200, "{}", edit.body);
    assert!(
        edit.body
            .contains("name=\"deliveryDeadline\" value=\"10m\""),
        "the edit form holds it: {}",
        edit.body
    );
}

/// Issue 16, item 3: the dashboard sets, shows, edits and removes a config's `orderingKey`; a bad
/// value is refused by name and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_form_sets_shows_and_removes_an_ordering_key() {
    let srv = Server::start().await;
    let app = srv.create_app_key("dash").await;
    let mut browser = Browser::new(&srv);
    browser.sign_in(&app).await;
    let token = browser.get("/ui/configs/new").await.csrf();
    let form = |ordering_key: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("productName", "SMS".to_owned()),
            ("events", "UNSUBSCRIBE".to_owned()),
            ("url", "http://127.0.0.1:9/hooks".to_owned()),
            ("signature", "sig".to_owned()),
            ("enabled", "true".to_owned()),
            ("orderingKey", ordering_key.to_owned()),
            ("csrf", token.clone()),
        ]
    };
    let post = |path: String, fields: Vec<(&'static str, String)>| {
        let browser = &browser;
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser.post(&path, &pairs, &[]).await
        }
    };
    let refused = post("/ui/configs".into(), form("recipient.no")).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("orderingKey"), "{}", refused.body);
    assert!(
        configs_of(&srv, &app).await.is_empty(),
        "a refused form created a config"
    );

    let created = post("/ui/configs".into(), form("recipientNo")).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let configs = configs_of(&srv, &app).await;
    assert_eq!(configs[0]["orderingKey"], json!("recipientNo"));
    let page = browser.get(created.location()).await;
    assert!(
        page.body
            .contains("recipientNo: hooks with the same value go out in acceptance order"),
        "the config page shows the ordering key: {}",
        page.body
    );
    let id = s(&configs[0], "webhookConfigId");
    let edit = browser.get(&format!("/ui/configs/{id}/edit")).await;
    assert_eq!(edit.status, 200, "{}", edit.body);
    assert!(
        edit.body
            .contains("name=\"orderingKey\" value=\"recipientNo\""),
        "the edit form holds it: {}",
        edit.body
    );
    // Saved empty: the config is no longer ordered.
    let saved = post(format!("/ui/configs/{id}"), form("")).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let configs = configs_of(&srv, &app).await;
    assert_eq!(configs[0].get("orderingKey"), None, "{:?}", configs[0]);
}
