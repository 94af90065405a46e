//! Issue 17, item 3: portal links. `POST /v1/appkeys/{appKey}/portal-links` (the app key's secret
//! key or the admin token) makes a single-use, short-lived link; its first `GET` signs the
//! browser into the dashboard (the sign-in's cookie, then `/`), a second use or a use after
//! `expiresAt` answers 410; a read-only session sees every page and every form answers 403; a
//! rotation of the secret key revokes the unused links and ends the sessions they opened; the
//! secret key is never on a page a portal session sees; `--public-url` makes links absolute;
//! `hookline portal-link` prints one. The browser flow is in scripts/ecosystem/dashboard/.

use serde_json::{Value, json};

use crate::cli::run_ok;
use crate::support::browser::{Browser, Page};
use crate::support::server::Options;
use crate::support::*;

const UNSUB: &str = "UNSUBSCRIBE";
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Makes a link with `auth` and `body`, asserting 201; returns `portalLink`.
async fn create_link(srv: &Server, app: &App, auth: &Auth, body: Value) -> Value {
    srv.expect(
        srv.post(auth, &app.path("/portal-links"), body).await,
        201,
        "create a portal link",
    )["portalLink"]
        .clone()
}

/// The link's path (its `url` may be absolute).
fn link_path(link: &Value) -> String {
    let url = s(link, "url");
    let at = url
        .find("/ui/portal/")
        .unwrap_or_else(|| panic!("not a portal link: {url}"));
    url[at..].to_owned()
}

/// Opens `link` in a new browser, asserting the sign-in's answer: 303 to `/` with the session
/// cookie. Returns the browser (holding the cookie) and the cookie's attributes.
async fn open_link<'a>(srv: &'a Server, link: &Value) -> (Browser<'a>, String) {
    let mut browser = Browser::new(srv);
    let page = browser.get(&link_path(link)).await;
    assert_eq!(page.status, 303, "opening a portal link: {}", page.body);
    assert_eq!(page.location(), "/");
    let (id, attrs) = page
        .session_cookie()
        .expect("a portal link sets the session cookie");
    browser.cookie = Some(id);
    (browser, attrs)
}

/// The 410 page of a link that no longer works, and no session.
fn assert_gone(page: &Page, what: &str) {
    assert_eq!(page.status, 410, "{what}: {}", page.body);
    assert!(
        page.body
            .contains("already been used, has expired, or was revoked"),
        "{what}: the page says why:\n{}",
        page.body
    );
    assert!(page.session_cookie().is_none(), "{what}: no session cookie");
}

/// An app key with a config (with a signing secret) and one delivered hook: (app, configId,
/// hooksId).
async fn tenant_with_a_delivery(srv: &Server, rx: &Receiver) -> (App, String, String) {
    let app = srv.create_app_key("portal").await;
    let mut body = config_body(SMS, &[UNSUB], &rx.url("/portal"));
    body["signingSecret"] = json!(SIGNING_SECRET);
    body["description"] = json!("Orders receiver");
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let hook = samples::with_id(samples::hook(SMS, UNSUB, 0), "portal-hook");
    srv.ingest(&app, SMS, UNSUB, vec![hook]).await;
    let d = srv
        .wait_for_hook_delivery(&app, &cfg_id, "portal-hook", "SUCCEEDED", PROMPT)
        .await;
    (app, cfg_id, s(&d, "hooksId"))
}

/// Every page of the dashboard a session of this app key can see.
fn pages(cfg_id: &str, hooks_id: &str) -> Vec<String> {
    vec![
        "/".to_owned(),
        "/ui/configs/new".to_owned(),
        format!("/ui/configs/{cfg_id}"),
        format!("/ui/configs/{cfg_id}/edit"),
        "/ui/deliveries".to_owned(),
        format!("/ui/deliveries/{hooks_id}"),
        "/ui/hooks".to_owned(),
        "/ui/hooks?hookId=portal-hook".to_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_link_signs_in_once_like_a_sign_in_and_never_shows_the_secret_key() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let (app, cfg_id, hooks_id) = tenant_with_a_delivery(&srv, &rx).await;

    // With the app key's secret key: a path, ten minutes, not read-only by default.
    let link = create_link(&srv, &app, &app.auth(), json!({})).await;
    let url = s(&link, "url");
    let token = url
        .strip_prefix("/ui/portal/")
        .unwrap_or_else(|| panic!("without --public-url the url is a path: {url}"));
    assert!(token.len() >= 32, "a long random token: {token:?}");
    assert_eq!(link["readOnly"], json!(false));
    let expires_at = chrono::DateTime::parse_from_rfc3339(&s(&link, "expiresAt"))
        .unwrap_or_else(|e| panic!("expiresAt {link}: {e}"));
    let in_ten_minutes = (expires_at.timestamp() - chrono::Utc::now().timestamp()) as f64 / 60.0;
    assert!(
        (9.0..=10.1).contains(&in_ten_minutes),
        "expiresAt is 10 minutes away by default, not {in_ten_minutes:.1}"
    );

    // Opening it: the same cookie as a sign-in (HttpOnly, SameSite=Strict, Path, Max-Age).
    let (portal, attrs) = open_link(&srv, &link).await;
    let signed_in = Browser::new(&srv);
    let sign_in = signed_in
        .post(
            "/ui/signin",
            &[("appKey", &app.app_key), ("secretKey", &app.secret)],
            &[],
        )
        .await;
    let (_, sign_in_attrs) = sign_in.session_cookie().expect("sign-in cookie");
    assert_eq!(attrs, sign_in_attrs, "the portal session's cookie flags");
    assert!(attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict"));

    // Every page works and none shows the secret key (nor the signing secret).
    for path in pages(&cfg_id, &hooks_id) {
        let page = portal.get(&path).await;
        assert_eq!(page.status, 200, "GET {path}: {}", page.body);
        assert!(page.body.contains(&app.app_key), "GET {path}: the app key");
        assert!(
            !page.body.contains(&app.secret),
            "GET {path}: the secret key is on a portal session's page"
        );
        assert!(!page.body.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(
            !page.body.contains("id=\"read-only\""),
            "GET {path}: not read-only"
        );
    }
    let home = portal.get("/").await;
    assert!(home.body.contains(&cfg_id), "the configs are listed");

    // A full session changes things, with its CSRF token, like a signed-in one.
    let csrf = portal.get(&format!("/ui/configs/{cfg_id}")).await.csrf();
    let page = portal
        .post(
            &format!("/ui/configs/{cfg_id}/enabled"),
            &[("enabled", "false"), ("csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(
        page.status, 303,
        "pause from a portal session: {}",
        page.body
    );
    assert_eq!(srv.get_config(&app, &cfg_id).await["enabled"], json!(false));
    let page = portal
        .post(
            &format!("/ui/configs/{cfg_id}/enabled"),
            &[("enabled", "true")],
            &[],
        )
        .await;
    assert_eq!(page.status, 403, "without the CSRF token");

    // The second use, and a token never made: 410, no session.
    assert_gone(&Browser::new(&srv).get(&url).await, "a second use");
    assert_gone(
        &Browser::new(&srv)
            .get("/ui/portal/0123456789abcdef0123456789abcdef")
            .await,
        "a made-up token",
    );
    // The first session goes on.
    assert_eq!(portal.get("/ui/deliveries").await.status, 200);

    // With the admin token, and behind an https proxy: the cookie is Secure, as a sign-in's.
    let admin_link = create_link(&srv, &app, &Auth::Admin, json!({"expiresIn": "1h"})).await;
    let browser = Browser::new(&srv);
    let page = browser
        .send(
            browser
                .http
                .get(srv.url(&link_path(&admin_link)))
                .header("x-forwarded-proto", "https"),
            "open the admin's link",
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let (_, attrs) = page.session_cookie().expect("cookie");
    assert!(attrs.contains("Secure"), "{attrs}");

    // Neither the tokens nor the secret key are in the server's log.
    let log = srv.stderr_all();
    assert!(
        log.contains("portal link created"),
        "the creation is logged"
    );
    assert!(!log.contains(token), "a link's token is in the log");
    assert!(!log.contains(&link_path(&admin_link)["/ui/portal/".len()..]));
    assert!(!log.contains(&app.secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_portal_session_sees_every_page_and_every_form_is_refused() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let (app, cfg_id, hooks_id) = tenant_with_a_delivery(&srv, &rx).await;
    let link = create_link(
        &srv,
        &app,
        &Auth::Admin,
        json!({"readOnly": true, "expiresIn": "24h"}),
    )
    .await;
    assert_eq!(link["readOnly"], json!(true));
    let (portal, _) = open_link(&srv, &link).await;

    for path in pages(&cfg_id, &hooks_id) {
        let page = portal.get(&path).await;
        assert_eq!(page.status, 200, "GET {path}: {}", page.body);
        assert!(
            page.body.contains("id=\"read-only\""),
            "GET {path}: the header says read-only"
        );
        assert!(
            !page.body.contains(&app.secret),
            "GET {path}: the secret key"
        );
    }

    // Every form, with the session's own CSRF token: 403, and nothing changes.
    let csrf = portal.get(&format!("/ui/configs/{cfg_id}")).await.csrf();
    let config_before = srv.get_config(&app, &cfg_id).await;
    let deliveries_before = srv.list_deliveries(&app, "").await.len();
    let requests_before = rx.requests().len();
    let config_form = [
        ("productName", SMS),
        ("events", UNSUB),
        ("url", "http://127.0.0.1:9/changed"),
        ("signature", "changed"),
        ("enabled", "true"),
        ("csrf", &csrf),
    ];
    let enabled_path = format!("/ui/configs/{cfg_id}/enabled");
    let update_path = format!("/ui/configs/{cfg_id}");
    let test_path = format!("/ui/configs/{cfg_id}/test");
    let redeliver_path = format!("/ui/deliveries/{hooks_id}/redeliver");
    let forms: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/ui/configs", config_form.to_vec()),
        (&update_path, config_form.to_vec()),
        (&enabled_path, vec![("enabled", "false"), ("csrf", &csrf)]),
        (&test_path, vec![("event", UNSUB), ("csrf", &csrf)]),
        (&redeliver_path, vec![("csrf", &csrf)]),
    ];
    for (path, fields) in &forms {
        let page = portal.post(path, fields, &[]).await;
        assert_eq!(page.status, 403, "POST {path}: {}", page.body);
        assert!(
            page.body.contains("Read-only session"),
            "POST {path}: the page says why:\n{}",
            page.body
        );
    }
    assert_eq!(srv.get_config(&app, &cfg_id).await, config_before);
    let configs = srv.expect(
        srv.get(&app.auth(), &app.path("/webhook-configs")).await,
        200,
        "list configs",
    );
    assert_eq!(configs["webhookConfigs"].as_array().map(Vec::len), Some(1));
    assert_eq!(srv.list_deliveries(&app, "").await.len(), deliveries_before);
    assert_eq!(
        rx.requests().len(),
        requests_before,
        "no test send, no redelivery"
    );

    // Signing out changes only the session: allowed.
    let page = portal.post("/ui/signout", &[("csrf", &csrf)], &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(portal.get("/ui/deliveries").await.status, 303, "signed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_link_used_after_its_expiry_answers_410() {
    let mut srv = Server::start().await;
    let app = srv.create_app_key("portal").await;
    let short = create_link(&srv, &app, &app.auth(), json!({"expiresIn": "1m"})).await;
    let long = create_link(&srv, &app, &app.auth(), json!({"expiresIn": "5m"})).await;
    // The server's clock two minutes on (the hidden test seam): the first link has expired, the
    // second has not. The links are stored, so a restart keeps them.
    srv.stop_sigterm(SLOW).await;
    srv.restart_with_env(vec![(
        "HOOKLINE_TEST_CLOCK_OFFSET_MS".into(),
        "120000".into(),
    )])
    .await;
    assert_gone(
        &Browser::new(&srv).get(&link_path(&short)).await,
        "a link used after expiresAt",
    );
    let (portal, _) = open_link(&srv, &long).await;
    assert_eq!(portal.get("/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_key_rotation_revokes_unused_links_and_ends_the_sessions_links_opened() {
    let srv = Server::start().await;
    let app = srv.create_app_key("portal").await;
    let other = srv.create_app_key("other").await;
    let used = create_link(&srv, &app, &app.auth(), json!({})).await;
    let unused = create_link(&srv, &app, &Auth::Admin, json!({})).await;
    let theirs = create_link(&srv, &other, &other.auth(), json!({})).await;
    let (portal, _) = open_link(&srv, &used).await;
    let mut signed_in = Browser::new(&srv);
    signed_in.sign_in(&app).await;
    assert_eq!(portal.get("/ui/deliveries").await.status, 200);

    // Even with a grace period for the old key: the links' sessions end, the unused link is
    // revoked. The signed-in session keeps the grace, as API calls do.
    let rotated = srv.expect(
        srv.post(
            &app.auth(),
            &app.path("/secret-key/rotate"),
            json!({"gracePeriod": "1h"}),
        )
        .await,
        200,
        "rotate with a grace period",
    );
    let page = portal.get("/ui/deliveries").await;
    assert_eq!(page.status, 303, "the portal session ended: {}", page.body);
    assert_eq!(page.location(), "/");
    assert_gone(
        &Browser::new(&srv).get(&link_path(&unused)).await,
        "an unused link after a rotation",
    );
    assert_eq!(signed_in.get("/ui/deliveries").await.status, 200);

    // A link made after the rotation works, with the new key; another app key's never stopped.
    let new_app = App {
        secret: s(&rotated["appKey"], "secretKey"),
        ..app.clone()
    };
    let fresh = create_link(&srv, &new_app, &new_app.auth(), json!({})).await;
    let (portal, _) = open_link(&srv, &fresh).await;
    let home = portal.get("/").await;
    assert_eq!(home.status, 200);
    assert!(!home.body.contains(&new_app.secret));
    let (theirs_session, _) = open_link(&srv, &theirs).await;
    assert!(theirs_session.get("/").await.body.contains(&other.app_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_portal_link_requests_answer_400_naming_the_field_and_make_no_link() {
    let srv = Server::start().await;
    let app = srv.create_app_key("portal").await;
    let other = srv.create_app_key("other").await;
    for (body, field, code) in [
        (json!({"expiresIn": "59s"}), "expiresIn", -1020),
        (json!({"expiresIn": "25h"}), "expiresIn", -1020),
        (json!({"expiresIn": "soon"}), "expiresIn", -1020),
        (json!({"expiresIn": 600}), "expiresIn", -1004),
        (json!({"readOnly": "yes"}), "readOnly", -1004),
        (json!({"readOnly": 1}), "readOnly", -1004),
        (json!({"readonly": true}), "readonly", -1020),
        (json!({"expiresIn": "1h", "scope": "all"}), "scope", -1020),
        (json!(["expiresIn"]), "body", -1002),
    ] {
        let resp = srv
            .post(&app.auth(), &app.path("/portal-links"), body.clone())
            .await;
        if let Err(e) = check_error(&resp, &[400], Some(&format!("{field}:"))) {
            srv.fail(format!("{body}: {e}"));
        }
        assert_eq!(
            resp.1["header"]["resultCode"],
            json!(code),
            "{body}: {}",
            resp.1
        );
    }
    let resp = srv
        .call(
            reqwest::Method::POST,
            &app.path("/portal-links"),
            &app.auth(),
            Body::Raw(Some("application/json".into()), b"{\"expiresIn\":".to_vec()),
        )
        .await;
    assert_error(&srv, &resp, 400, "a body that is not JSON");
    // Credentials: none, another app key's secret key, an unknown app key for the admin.
    assert_error(
        &srv,
        &srv.post(&Auth::None, &app.path("/portal-links"), json!({}))
            .await,
        401,
        "no credentials",
    );
    assert_error(
        &srv,
        &srv.post(&other.auth(), &app.path("/portal-links"), json!({}))
            .await,
        403,
        "another app key's secret key",
    );
    assert_error(
        &srv,
        &srv.post(&Auth::Admin, "/v1/appkeys/nope/portal-links", json!({}))
            .await,
        404,
        "no such app key",
    );
    // Nothing was made: the server logs every link it makes (without its token).
    assert!(
        !srv.stderr_all().contains("portal link created"),
        "a refused request made a link:\n{}",
        srv.stderr_tail()
    );
    create_link(&srv, &app, &app.auth(), json!({})).await;
    srv.wait_for_log(&["portal link created"], PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_public_url_links_are_absolute_and_the_cli_prints_them() {
    let srv = Server::start_with(&["--public-url", "https://hookline.example.com/"]).await;
    let app = srv.create_app_key("portal").await;
    let link = create_link(&srv, &app, &app.auth(), json!({})).await;
    let url = s(&link, "url");
    assert!(
        url.starts_with("https://hookline.example.com/ui/portal/"),
        "an absolute link under --public-url: {url}"
    );
    // Its path opens the dashboard here (the proxy at the public URL would forward it).
    open_link(&srv, &link).await;

    // `hookline portal-link`: the link on the first line; with the secret key, then the admin
    // token; `--json` prints the server's answer.
    let conn = [
        "--server",
        srv.base_url.as_str(),
        "--app-key",
        app.app_key.as_str(),
    ];
    let with_secret = [&conn[..], &["--secret-key", app.secret.as_str()]].concat();
    let out = run_ok(&[&["portal-link"], &with_secret[..]].concat()).await;
    let printed = out.lines().next().unwrap_or_default().trim().to_owned();
    assert!(
        printed.starts_with("https://hookline.example.com/ui/portal/"),
        "the CLI prints the link first:\n{out}"
    );
    open_link(&srv, &json!({ "url": printed })).await;
    assert_gone(
        &Browser::new(&srv)
            .get(&link_path(&json!({ "url": printed })))
            .await,
        "the CLI's link, used twice",
    );

    let with_admin = [&conn[..], &["--admin-token", srv.admin_token.as_str()]].concat();
    let out = run_ok(
        &[
            &["portal-link", "--read-only", "--expires-in", "1h", "--json"],
            &with_admin[..],
        ]
        .concat(),
    )
    .await;
    let answer: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("--json prints JSON ({e}):\n{out}"));
    assert_eq!(answer["header"]["isSuccessful"], json!(true));
    assert_eq!(answer["portalLink"]["readOnly"], json!(true));
    let (portal, _) = open_link(&srv, &answer["portalLink"]).await;
    assert!(portal.get("/").await.body.contains("id=\"read-only\""));

    // A refused request: the CLI fails with the server's message.
    let (ok, _, stderr) =
        crate::cli::run(&[&["portal-link", "--expires-in", "2d"], &with_secret[..]].concat()).await;
    assert!(!ok, "an out-of-range --expires-in fails");
    assert!(stderr.contains("expiresIn:"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hookline_public_url_in_the_environment_sets_the_public_url() {
    let srv = Server::start_with_options(
        &[],
        Options {
            env: vec![(
                "HOOKLINE_PUBLIC_URL".into(),
                "http://dashboard.internal:8080".into(),
            )],
            ..Options::default()
        },
    )
    .await;
    let app = srv.create_app_key("portal").await;
    let link = create_link(&srv, &app, &app.auth(), json!({})).await;
    assert!(
        s(&link, "url").starts_with("http://dashboard.internal:8080/ui/portal/"),
        "{link}"
    );
}
