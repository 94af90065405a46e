//! Issue 5, misbehaving receivers: each failure mode is recorded for what it is, never follows
//! the receiver's lead beyond what the log keeps, and never stalls other configs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Read the request, then reset the connection.
    Reset,
    /// Answer 200 and then stream a body that never ends.
    EndlessBody,
}

/// A raw TCP receiver that misbehaves on purpose.
struct BadReceiver {
    port: u16,
    requests: Arc<AtomicUsize>,
}

async fn read_request_head(stream: &mut TcpStream) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        match stream.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") || got == buf.len() {
            return true;
        }
    }
}

impl BadReceiver {
    async fn start(how: Misbehaviour) -> BadReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    if !read_request_head(&mut stream).await {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    match how {
                        Misbehaviour::Reset => {
                            let _ = stream.set_zero_linger();
                            drop(stream);
                        }
                        Misbehaviour::EndlessBody => {
                            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                                        transfer-encoding: chunked\r\n\r\n";
                            if stream.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            let chunk = format!("{:x}\r\n{}\r\n", 4096, "x".repeat(4096));
                            // Until hookline hangs up.
                            while stream.write_all(chunk.as_bytes()).await.is_ok() {}
                        }
                    }
                });
            }
        });
        BadReceiver { port, requests }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/bad", self.port)
    }
}

async fn attempts_of_the_only_delivery(srv: &Server, app: &App, cfg_id: &str, n: usize) -> Value {
    let deadline = std::time::Instant::now() + SLOW;
    loop {
        let list = srv
            .list_deliveries(app, &format!("webhookConfigId={cfg_id}"))
            .await;
        if let Some(d) = list.first() {
            let detail = srv.get_delivery(app, &s(d, "hooksId")).await;
            if detail["attempts"].as_array().map_or(0, Vec::len) >= n {
                return detail;
            }
        }
        if std::time::Instant::now() > deadline {
            srv.fail(format!(
                "no delivery of {cfg_id} reached {n} attempts: {list:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_and_a_tls_failure_are_recorded_as_such() {
    let reset = BadReceiver::start(Misbehaviour::Reset).await;
    let plain = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("bad-receivers").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &reset.url("http"));
    body["retrySchedule"] = json!(["100ms"]);
    let resetting = srv.create_config(&app, body).await;
    // https to a port that speaks plain HTTP: the handshake fails.
    let mut body = config_body(
        SMS,
        &["UNSUBSCRIBE"],
        &plain.url("/x").replace("http:", "https:"),
    );
    body["retrySchedule"] = json!(["100ms"]);
    let tls = srv.create_config(&app, body).await;

    srv.ingest(
        &app,
        SMS,
        "UNSUBSCRIBE",
        vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
    )
    .await;
    let d = attempts_of_the_only_delivery(&srv, &app, &s(&resetting, "webhookConfigId"), 2).await;
    for a in d["attempts"].as_array().unwrap() {
        assert_eq!(a["statusCode"], Value::Null, "{d}");
        let kind = a["errorKind"].as_str().unwrap_or("");
        assert!(
            kind == "IO" || kind == "CONNECT",
            "a reset is an I/O failure: {d}"
        );
    }
    assert!(reset.requests.load(Ordering::SeqCst) >= 2);
    let d = srv
        .wait_for_delivery_status(&app, &s(&d, "hooksId"), "FAILED", SLOW)
        .await;
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(2));

    let d = attempts_of_the_only_delivery(&srv, &app, &s(&tls, "webhookConfigId"), 1).await;
    assert_eq!(d["attempts"][0]["errorKind"], json!("TLS"), "{d}");
    assert!(
        plain.requests().is_empty(),
        "no HTTP request went over the failed handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_is_cut_at_what_the_log_keeps() {
    let endless = BadReceiver::start(Misbehaviour::EndlessBody).await;
    let srv = Server::start().await;
    let app = srv.create_app_key("endless").await;
    let cfg = srv
        .create_config(
            &app,
            config_body(SMS, &["UNSUBSCRIBE"], &endless.url("http")),
        )
        .await;
    srv.ingest(
        &app,
        SMS,
        "UNSUBSCRIBE",
        vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
    )
    .await;
    let d = attempts_of_the_only_delivery(&srv, &app, &s(&cfg, "webhookConfigId"), 1).await;
    let d = srv
        .wait_for_delivery_status(&app, &s(&d, "hooksId"), "SUCCEEDED", PROMPT)
        .await;
    let attempt = &d["attempts"][0];
    assert_eq!(attempt["statusCode"], json!(200), "{d}");
    assert_eq!(
        attempt["responseBody"].as_str().map(str::len),
        Some(1024),
        "exactly the first 1 KiB is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_config_until_it_is_enabled_again() {
    let rx = Receiver::start().await;
    let witness = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("gone").await;
    let body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/gone"));
    let cfg = srv.create_config(&app, body.clone()).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    srv.create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &witness.url("/w")))
        .await;
    rx.respond_with(&[410]);
    let first = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    srv.ok(rx.wait_for_requests(1, PROMPT).await);
    let got = srv
        .wait_for_config(&app, &cfg_id, PROMPT, "410 to disable the config", |c| {
            c["health"]["state"] == json!("DISABLED")
        })
        .await;
    assert!(
        got["health"]["disabledReason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "the reason is recorded: {got}"
    );
    // New hooks are not sent to it (the witness shows they were processed).
    let second = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    srv.ok(witness.wait_for_hooks(&second, PROMPT).await);
    assert_eq!(rx.requests().len(), 1, "a DISABLED config receives nothing");

    // Enabling it again resumes what waited: the first hook's retry.
    let (st, put) = srv
        .put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{cfg_id}")),
            body,
        )
        .await;
    assert_eq!(st.as_u16(), 200, "{put}");
    assert_eq!(put["webhookConfig"]["health"]["state"], json!("HEALTHY"));
    srv.ok(rx.wait_for_hooks(&first, SLOW).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_on_429_pushes_the_next_attempt_back() {
    let rx = Receiver::start().await;
    rx.respond_with(&[429]);
    rx.set_retry_after(Some("2"));
    let srv = Server::start().await;
    let app = srv.create_app_key("slow-down").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/429"));
    body["retrySchedule"] = json!(["100ms", "100ms"]);
    let cfg = srv.create_config(&app, body).await;
    srv.ingest(
        &app,
        SMS,
        "UNSUBSCRIBE",
        vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
    )
    .await;
    let d = attempts_of_the_only_delivery(&srv, &app, &s(&cfg, "webhookConfigId"), 2).await;
    let d = srv
        .wait_for_delivery_status(&app, &s(&d, "hooksId"), "SUCCEEDED", SLOW)
        .await;
    let started = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(d["attempts"][i]["startedAt"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(d["attempts"][0]["statusCode"], json!(429));
    let gap = started(1) - started(0);
    assert!(
        gap >= chrono::Duration::milliseconds(2000),
        "Retry-After: 2 must hold the next attempt back 2 s, not the schedule's 100 ms: {gap}"
    );
}

/// https against real TLS receivers with certificates made by the test: delivery succeeds when the
/// receiver's certificate chains to a CA the server trusts, and fails as `TLS` (no request sent)
/// with an unknown CA, an expired certificate and a certificate for another host name. A server
/// not told to trust the test CA refuses even the valid one: the extra root is never on by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_delivered_only_to_a_certificate_that_checks_out() {
    let ca = tls::TestCa::new("trusted");
    let stranger = tls::TestCa::new("unknown");
    let good = Receiver::start_tls(ca.server_config(tls::Leaf::Valid)).await;
    let unknown = Receiver::start_tls(stranger.server_config(tls::Leaf::Valid)).await;
    let expired = Receiver::start_tls(ca.server_config(tls::Leaf::Expired)).await;
    let other_name = Receiver::start_tls(ca.server_config(tls::Leaf::OtherName)).await;
    let trust = ca.trust_args();
    let srv = Server::start_with(&[trust[0].as_str(), trust[1].as_str()]).await;
    let app = srv.create_app_key("tls").await;
    let mut configs = Vec::new();
    for (rx, path) in [
        (&good, "/good"),
        (&unknown, "/unknown-ca"),
        (&expired, "/expired"),
        (&other_name, "/other-name"),
    ] {
        let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url(path));
        body["retrySchedule"] = json!([]);
        let cfg = srv.create_config(&app, body).await;
        configs.push(s(&cfg, "webhookConfigId"));
    }
    assert!(good.url("/").starts_with("https://"));
    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;

    let reqs = srv.ok(good.wait_for_hooks(&ids, PROMPT).await);
    assert_eq!(reqs[0].path, "/good");
    srv.wait_for_hook_delivery(&app, &configs[0], &ids[0], "SUCCEEDED", PROMPT)
        .await;
    for (rx, cfg_id, what) in [
        (&unknown, &configs[1], "a certificate from an unknown CA"),
        (&expired, &configs[2], "an expired certificate"),
        (
            &other_name,
            &configs[3],
            "a certificate for another host name",
        ),
    ] {
        let d = srv
            .wait_for_hook_delivery(&app, cfg_id, &ids[0], "FAILED", PROMPT)
            .await;
        let attempt = &d["attempts"][0];
        assert_eq!(attempt["errorKind"], json!("TLS"), "{what}: {d:#}");
        assert_eq!(attempt["statusCode"], Value::Null, "{what}: {d:#}");
        assert!(
            rx.tls_failures() >= 1,
            "{what}: the receiver saw no failed handshake"
        );
        assert!(
            rx.requests().is_empty(),
            "{what}: a request went over a refused handshake"
        );
    }

    // Without --test-extra-root-ca the same valid receiver is refused: only the webpki roots.
    let plain = Server::start().await;
    let app = plain.create_app_key("tls-default").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &good.url("/untrusted"));
    body["retrySchedule"] = json!([]);
    let cfg = plain.create_config(&app, body).await;
    let ids = plain
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    let d = plain
        .wait_for_hook_delivery(&app, &s(&cfg, "webhookConfigId"), &ids[0], "FAILED", PROMPT)
        .await;
    assert_eq!(d["attempts"][0]["errorKind"], json!("TLS"), "{d:#}");
    assert!(good.requests_to("/untrusted").is_empty());
}

/// Milliseconds since the epoch of an RFC 3339 time in a JSON field.
fn millis(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .timestamp_millis()
}

/// 503 with `Retry-After` pushes the next attempt back as asked; a receiver asking for more than
/// the cap (1 hour) gets its retry at the cap, not when it asked (a day later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_on_503_is_honoured_up_to_the_cap() {
    let asks_2s = Receiver::start().await;
    asks_2s.respond_with(&[503]);
    asks_2s.set_retry_after(Some("2"));
    let asks_a_day = Receiver::start().await;
    asks_a_day.set_default_status(503);
    asks_a_day.set_retry_after(Some("86400"));
    let srv = Server::start().await;
    let app = srv.create_app_key("retry-after-503").await;
    let mut configs = Vec::new();
    for rx in [&asks_2s, &asks_a_day] {
        let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/503"));
        body["retrySchedule"] = json!(["100ms", "100ms"]);
        configs.push(s(&srv.create_config(&app, body).await, "webhookConfigId"));
    }
    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;

    let d = srv
        .wait_for_hook_delivery(&app, &configs[0], &ids[0], "SUCCEEDED", SLOW)
        .await;
    let attempts = d["attempts"].as_array().expect("attempts");
    assert_eq!(attempts[0]["statusCode"], json!(503), "{d:#}");
    let first_end =
        millis(&attempts[0]["startedAt"]) + attempts[0]["durationMs"].as_i64().unwrap_or(0);
    let gap = millis(&attempts[1]["startedAt"]) - first_end;
    assert!(
        gap >= 2000,
        "Retry-After: 2 on a 503 must hold the next attempt back 2 s, not the schedule's 100 ms: {gap} ms"
    );

    let d = srv
        .wait_for_hook_delivery(&app, &configs[1], &ids[0], "RETRYING", PROMPT)
        .await;
    let attempt = &d["attempts"][0];
    assert_eq!(attempt["statusCode"], json!(503), "{d:#}");
    let end = millis(&attempt["startedAt"]) + attempt["durationMs"].as_i64().unwrap_or(0);
    let delay = millis(&d["nextAttemptAt"]) - end;
    let cap = 3_600_000;
    assert!(
        (cap..cap + 10_000).contains(&delay),
        "Retry-After: 86400 is capped at 1 h: the next attempt is {delay} ms after the first: {d:#}"
    );
    assert_eq!(asks_a_day.requests().len(), 1);
}
