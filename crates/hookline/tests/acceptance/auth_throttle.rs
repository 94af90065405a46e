//! Issue 13, item 4: guessing credentials is throttled. Wrong secret keys, wrong admin tokens and
//! failed dashboard sign-ins are counted per client address and per target (an app key, the admin
//! token); over the limit the server answers `429` with `Retry-After` before it looks at the
//! credentials, while an address that has not failed goes on. The servers here run with low
//! limits (`--auth-failures-per-address`, `--auth-failures-per-target`); the clients bind to
//! other loopback addresses (127.0.0.2, ...) to be other clients. The limits' arithmetic (windows,
//! memory bound, a limit of 0) is unit-tested in `src/throttle.rs`.

use std::net::IpAddr;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::server::Options;
use crate::support::*;

const UNSUB: &str = "UNSUBSCRIBE";

/// A client whose requests come from `127.0.0.<last>`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::from([127, 0, 0, last]))
        // A redirect is an answer to check (the sign-in's 303), not to follow.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One answer: status, `Retry-After` (if any) and the body (JSON, or the text as a JSON string).
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

async fn send(
    srv: &Server,
    client: &reqwest::Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Answer {
    let mut req = client.request(method.clone(), srv.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some((content_type, bytes)) = body {
        req = req.header("content-type", content_type).body(bytes);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| srv.fail(format!("{method} {path}: {e}")));
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp
        .bytes()
        .await
        .unwrap_or_else(|e| srv.fail(format!("{method} {path}: reading the body: {e}")));
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        retry_after,
        body,
    }
}

/// `GET` of an app key's config list with `X-Secret-Key: secret`.
async fn list_configs(srv: &Server, client: &reqwest::Client, app: &App, secret: &str) -> Answer {
    let path = app.path("/webhook-configs");
    send(
        srv,
        client,
        Method::GET,
        &path,
        &[("X-Secret-Key", secret)],
        None,
    )
    .await
}

/// `GET /v1/appkeys` with `Authorization: Bearer token`.
async fn list_app_keys(srv: &Server, client: &reqwest::Client, token: &str) -> Answer {
    let bearer = format!("Bearer {token}");
    let headers = [("Authorization", bearer.as_str())];
    send(srv, client, Method::GET, "/v1/appkeys", &headers, None).await
}

/// Ingest of one hook with `X-Secret-Key: secret`.
async fn ingest(srv: &Server, client: &reqwest::Client, app: &App, secret: &str) -> Answer {
    let body = json!({"productName": SMS, "event": UNSUB, "hooks": [samples::hook(SMS, UNSUB, 0)]});
    send(
        srv,
        client,
        Method::POST,
        &app.path("/events"),
        &[("X-Secret-Key", secret)],
        Some(("application/json", serde_json::to_vec(&body).unwrap())),
    )
    .await
}

/// Asserts the API's throttled answer: 429, `Retry-After` within the one-minute window, the
/// error shape with resultCode -1061 and a message that names `field` and says to wait.
#[track_caller]
fn assert_throttled(srv: &Server, answer: &Answer, field: &str, what: &str) {
    if answer.status != StatusCode::TOO_MANY_REQUESTS {
        srv.fail(format!(
            "{what}: want 429, got {} with {}",
            answer.status, answer.body
        ));
    }
    let secs: u64 = answer
        .retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| srv.fail(format!("{what}: Retry-After {:?}", answer.retry_after)));
    assert!((1..=60).contains(&secs), "{what}: Retry-After {secs}");
    let header = &answer.body["header"];
    assert_eq!(
        header["isSuccessful"],
        json!(false),
        "{what}: {}",
        answer.body
    );
    assert_eq!(
        header["resultCode"],
        json!(-1061),
        "{what}: {}",
        answer.body
    );
    let message = header["resultMessage"].as_str().unwrap_or("");
    assert!(
        message.starts_with(&format!("{field}: ")) && message.contains("wait"),
        "{what}: message {message:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_keys_from_one_address_get_429_and_then_even_the_right_one_waits() {
    let srv = Server::start_with(&[
        "--auth-failures-per-address=3",
        "--auth-failures-per-target=1000",
    ])
    .await;
    let app = srv.create_app_key("guessed").await;
    let other = srv.create_app_key("bystander").await;
    let guesser = client_from(2);

    // Up to the limit, wrong secrets get their usual answers: unknown (401), another app key's
    // secret (403).
    for (secret, status) in [
        ("guess-1", StatusCode::UNAUTHORIZED),
        (other.secret.as_str(), StatusCode::FORBIDDEN),
        ("guess-3", StatusCode::UNAUTHORIZED),
    ] {
        let answer = list_configs(&srv, &guesser, &app, secret).await;
        assert_eq!(answer.status, status, "a wrong secret: {}", answer.body);
        assert!(answer.retry_after.is_none());
    }

    // Over it: refused before the secret is looked at, so even the right one is refused, on
    // every route (ingest too) and every app key, from this address.
    let wrong = list_configs(&srv, &guesser, &app, "guess-4").await;
    assert_throttled(&srv, &wrong, "X-Secret-Key", "a 4th wrong secret");
    let right = list_configs(&srv, &guesser, &app, &app.secret).await;
    assert_throttled(
        &srv,
        &right,
        "X-Secret-Key",
        "the right secret, throttled address",
    );
    let ingested = ingest(&srv, &guesser, &app, &app.secret).await;
    assert_throttled(&srv, &ingested, "X-Secret-Key", "ingest, throttled address");
    let elsewhere = list_configs(&srv, &guesser, &other, &other.secret).await;
    assert_throttled(&srv, &elsewhere, "X-Secret-Key", "another app key");

    // The app key's own producer, at another address that never failed, is not slowed.
    let producer = client_from(1);
    let listed = list_configs(&srv, &producer, &app, &app.secret).await;
    assert_eq!(listed.status, StatusCode::OK, "producer: {}", listed.body);
    let ingested = ingest(&srv, &producer, &app, &app.secret).await;
    assert_eq!(ingested.status, StatusCode::ACCEPTED, "{}", ingested.body);
    assert!(
        !srv.stderr_all().contains(&app.secret),
        "no secret in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_admin_tokens_get_429_and_then_even_the_right_one_waits() {
    let srv = Server::start_with(&[
        "--auth-failures-per-address=3",
        "--auth-failures-per-target=1000",
    ])
    .await;
    let app = srv.create_app_key("admin-guessed").await;
    let guesser = client_from(3);

    // A wrong admin token counts on app key routes as on admin routes: it is one target.
    let answer = list_app_keys(&srv, &guesser, "not-the-token-1").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    let answer = list_app_keys(&srv, &guesser, "not-the-token-2").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    let path = app.path("/webhook-configs");
    let headers = [("Authorization", "Bearer not-the-token-3")];
    let answer = send(&srv, &guesser, Method::GET, &path, &headers, None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);

    let wrong = list_app_keys(&srv, &guesser, "not-the-token-4").await;
    assert_throttled(&srv, &wrong, "Authorization", "a 4th wrong admin token");
    let right = list_app_keys(&srv, &guesser, &srv.admin_token).await;
    assert_throttled(
        &srv,
        &right,
        "Authorization",
        "the right token, throttled address",
    );
    let bearer = format!("Bearer {}", srv.admin_token);
    let headers = [("Authorization", bearer.as_str())];
    let right = send(&srv, &guesser, Method::GET, &path, &headers, None).await;
    assert_throttled(
        &srv,
        &right,
        "Authorization",
        "the right token on an app key route",
    );

    // The operator, at an address that never failed, goes on.
    let operator = client_from(1);
    let listed = list_app_keys(&srv, &operator, &srv.admin_token).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert!(
        !srv.stderr_all().contains(&srv.admin_token),
        "the admin token is never logged"
    );
}

/// A guess spread over many addresses, each under its own limit: past the target's limit, the
/// addresses that failed on it are refused (even with the right secret), while the app key's own
/// producers, which never failed, go on; the guessers' other targets are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spread_guess_on_one_app_key_refuses_the_guessers_not_its_producers() {
    let srv = Server::start_with(&[
        "--auth-failures-per-address=1000",
        "--auth-failures-per-target=5",
    ])
    .await;
    let victim = srv.create_app_key("victim").await;
    let other = srv.create_app_key("unrelated").await;
    let guessers: Vec<reqwest::Client> = (10..15).map(client_from).collect();
    for (i, guesser) in guessers.iter().enumerate() {
        let answer = list_configs(&srv, guesser, &victim, &format!("guess-{i}")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    }

    let answer = list_configs(&srv, &guessers[2], &victim, &victim.secret).await;
    assert_throttled(
        &srv,
        &answer,
        "X-Secret-Key",
        "a guesser with the right secret",
    );
    let producer = client_from(1);
    let listed = list_configs(&srv, &producer, &victim, &victim.secret).await;
    assert_eq!(listed.status, StatusCode::OK, "producer: {}", listed.body);
    let ingested = ingest(&srv, &producer, &victim, &victim.secret).await;
    assert_eq!(ingested.status, StatusCode::ACCEPTED, "{}", ingested.body);
    let unrelated = list_configs(&srv, &guessers[2], &other, &other.secret).await;
    assert_eq!(
        unrelated.status,
        StatusCode::OK,
        "a guesser's own app key: {}",
        unrelated.body
    );
}

/// `POST /ui/signin` with the app key and `secret` as the form fields.
async fn sign_in(srv: &Server, client: &reqwest::Client, app: &App, secret: &str) -> Answer {
    let form = format!("appKey={}&secretKey={}", app.app_key, secret);
    let body = ("application/x-www-form-urlencoded", form.into_bytes());
    send(srv, client, Method::POST, "/ui/signin", &[], Some(body)).await
}

/// The dashboard's sign-in shares the throttle: failed sign-ins get the sign-in page with `429`
/// and `Retry-After`, and the address is then refused on the API as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_dashboard_sign_ins_get_429_and_count_for_the_api_too() {
    let srv = Server::start_with(&[
        "--auth-failures-per-address=3",
        "--auth-failures-per-target=1000",
    ])
    .await;
    let app = srv.create_app_key("dash-guessed").await;
    let guesser = client_from(4);
    for i in 0..3 {
        let page = sign_in(&srv, &guesser, &app, &format!("guess-{i}")).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    }
    for (secret, what) in [
        ("guess-3", "a 4th wrong secret"),
        (app.secret.as_str(), "the right secret"),
    ] {
        let page = sign_in(&srv, &guesser, &app, secret).await;
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{what}");
        let secs: u64 = page
            .retry_after
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| srv.fail(format!("{what}: Retry-After {:?}", page.retry_after)));
        assert!((1..=60).contains(&secs), "{what}: Retry-After {secs}");
        let text = page.body.as_str().unwrap_or("");
        assert!(text.contains("Too many failed sign-ins"), "{what}: {text}");
        assert!(
            !text.contains(&app.secret),
            "the page never echoes a secret"
        );
    }
    let api = list_configs(&srv, &guesser, &app, &app.secret).await;
    assert_throttled(&srv, &api, "X-Secret-Key", "the API after failed sign-ins");

    // The owner, at an address that never failed, signs in: a session and a redirect home.
    let page = sign_in(&srv, &client_from(1), &app, &app.secret).await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the owner: {}",
        page.body
    );
}

/// An operator-chosen admin token shorter than 24 characters is warned about at start (never
/// printed); the harness's long token gets no warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_admin_token_is_warned_about_at_start_without_printing_it() {
    let token = "short-admin-tok";
    let srv = Server::start_with_options(
        &[],
        Options {
            admin_token: Some(token.to_owned()),
            ..Options::default()
        },
    )
    .await;
    let line = srv
        .wait_for_log(&["WARN", "HOOKLINE_ADMIN_TOKEN", "shorter than 24"], PROMPT)
        .await;
    assert!(line.contains("throttled"), "{line}");
    assert!(
        !srv.stderr_all().contains(token),
        "the token is never logged"
    );
    // Short, but it still works.
    srv.expect(
        srv.get(&Auth::Admin, "/v1/appkeys").await,
        200,
        "GET /v1/appkeys",
    );

    // The warning is written before the ready line the harness waits for: its absence is final.
    let long = Server::start().await;
    assert!(
        !long
            .stderr_all()
            .contains("HOOKLINE_ADMIN_TOKEN is shorter"),
        "{}",
        long.stderr_tail()
    );
}

/// Behind a trusted proxy (`--trusted-proxy`), failures are counted per client the proxy names
/// in `X-Forwarded-For`: one guesser behind the load balancer does not lock out every producer
/// behind it. From a peer that is not trusted, the header is ignored: a guesser cannot dodge the
/// throttle by making up addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_failures_count_per_forwarded_client() {
    let srv = Server::start_with(&[
        "--auth-failures-per-address=3",
        "--auth-failures-per-target=1000",
        "--trusted-proxy=127.0.0.3/32",
    ])
    .await;
    let app = srv.create_app_key("proxied").await;
    let proxy = client_from(3);
    let through = |client: &'static str, secret: String| {
        let srv = &srv;
        let proxy = &proxy;
        let app = &app;
        async move {
            send(
                srv,
                proxy,
                Method::GET,
                &app.path("/webhook-configs"),
                &[("X-Secret-Key", &secret), ("X-Forwarded-For", client)],
                None,
            )
            .await
        }
    };
    for i in 0..3 {
        let answer = through("203.0.113.7, 198.51.100.1", format!("guess-{i}")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    }
    let blocked = through("198.51.100.1", app.secret.clone()).await;
    assert_throttled(
        &srv,
        &blocked,
        "X-Secret-Key",
        "the guessing client, via the proxy",
    );
    // What the guesser wrote to the left of the proxy's entry does not count: it is the same
    // client whatever it claims.
    let claimed = through("192.0.2.99, 198.51.100.1", app.secret.clone()).await;
    assert_throttled(
        &srv,
        &claimed,
        "X-Secret-Key",
        "a made-up address on the left",
    );
    let producer = through("198.51.100.2", app.secret.clone()).await;
    assert_eq!(
        producer.status,
        StatusCode::OK,
        "another client behind the proxy: {}",
        producer.body
    );

    // An untrusted peer's X-Forwarded-For is ignored: fresh made-up addresses do not help.
    let guesser = client_from(4);
    for i in 0..4 {
        let forwarded = format!("198.51.100.{}", 50 + i);
        let answer = send(
            &srv,
            &guesser,
            Method::GET,
            &app.path("/webhook-configs"),
            &[("X-Secret-Key", "wrong"), ("X-Forwarded-For", &forwarded)],
            None,
        )
        .await;
        if i < 3 {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        } else {
            assert_throttled(
                &srv,
                &answer,
                "X-Secret-Key",
                "an untrusted peer's 4th guess",
            );
        }
    }
}
