//! Issue 5, item 5: SSRF. Without `--allow-private-targets`, a config URL that reaches this machine
//! in any spelling (a name that resolves to loopback, IPv4-mapped IPv6, `[::1]`, decimal, octal,
//! hex and short IPv4 forms, `0.0.0.0`) is never connected to: every attempt records
//! `BLOCKED_ADDRESS` and the listener on that port accepts nothing. Redirects are never followed.

use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::server::Options;
use crate::support::*;

const UNSUB: &str = "UNSUBSCRIBE";

/// A port listened on at 127.0.0.1 and, when this machine has IPv6 loopback, at [::1] too. It
/// never answers; it counts the connections the kernel completed (accepted or still queued).
struct Probe {
    port: u16,
    v4: TcpListener,
    v6: Option<TcpListener>,
}

impl Probe {
    fn start() -> Probe {
        for _ in 0..50 {
            let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            let port = v4.local_addr().unwrap().port();
            let v6 = match TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))) {
                Ok(l) => Some(l),
                // No IPv6 loopback here: the [::1] forms are still blocked, just not observed.
                Err(e) if e.kind() == ErrorKind::AddrNotAvailable => None,
                Err(_) => continue,
            };
            v4.set_nonblocking(true).unwrap();
            if let Some(l) = &v6 {
                l.set_nonblocking(true).unwrap();
            }
            return Probe { port, v4, v6 };
        }
        panic!("no port free on both 127.0.0.1 and [::1]");
    }

    /// Connections made to the port so far (drains the accept queues).
    fn connections(&self) -> usize {
        let mut n = 0;
        for l in std::iter::once(&self.v4).chain(self.v6.as_ref()) {
            while l.accept().is_ok() {
                n += 1;
            }
        }
        n
    }
}

/// The spellings of this machine's addresses, for `port`.
fn private_urls(port: u16) -> Vec<String> {
    [
        "http://localhost:{p}/hook",
        "http://LOCALHOST:{p}/hook",
        "http://127.0.0.1:{p}/hook",
        "http://127.1:{p}/hook",
        "http://2130706433:{p}/hook",
        "http://0177.0.0.1:{p}/hook",
        "http://0x7f.0.0.1:{p}/hook",
        "http://0x7f000001:{p}/hook",
        "http://0.0.0.0:{p}/hook",
        "http://0:{p}/hook",
        "http://[::1]:{p}/hook",
        "http://[::]:{p}/hook",
        "http://[::ffff:127.0.0.1]:{p}/hook",
        "http://[::ffff:7f00:1]:{p}/hook",
        "http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/hook",
        "http://[::127.0.0.1]:{p}/hook",
        "https://localhost:{p}/hook",
        "https://[::ffff:127.0.0.1]:{p}/hook",
    ]
    .iter()
    .map(|u| u.replace("{p}", &port.to_string()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_blocked_in_every_spelling() {
    let probe = Probe::start();
    let srv = Server::start_with_options(
        &[],
        Options {
            allow_private_targets: false,
            ..Options::default()
        },
    )
    .await;
    let app = srv.create_app_key("ssrf").await;
    let mut configs = Vec::new();
    for url in private_urls(probe.port) {
        let mut body = config_body(SMS, &[UNSUB], &url);
        // One attempt per delivery during the test.
        body["retrySchedule"] = json!(["1h"]);
        let cfg = srv.create_config(&app, body).await;
        configs.push((url, s(&cfg, "webhookConfigId")));
    }

    // The test route: one attempt now, reported in the answer.
    let mut failures = Vec::new();
    for (url, id) in &configs {
        let resp = srv.expect(
            srv.post(
                &app.auth(),
                &app.path(&format!("/webhook-configs/{id}/test")),
                json!({}),
            )
            .await,
            200,
            &format!("test {url}"),
        );
        let at = &resp["attempt"];
        if at["errorKind"] != json!("BLOCKED_ADDRESS") || !at["statusCode"].is_null() {
            failures.push(format!("- test route to {url}: {at}"));
        }
        // A tenant must not learn what a name resolves to inside the network.
        let message = at["errorMessage"].as_str().unwrap_or("");
        if message.contains("127.0.0.1") || message.contains("::1") || message.contains("0.0.0.0") {
            failures.push(format!(
                "- test route to {url}: the error names an address: {message:?}"
            ));
        }
    }

    // Real deliveries: one hook fans out to every config; each first attempt is recorded blocked.
    // (The test sends above are in the log too, marked `test`, FAILED: they are skipped here.)
    srv.ingest(
        &app,
        SMS,
        UNSUB,
        vec![samples::with_id(samples::hook(SMS, UNSUB, 0), "ssrf-1")],
    )
    .await;
    for (url, id) in &configs {
        let list = srv
            .wait_for_deliveries(
                &app,
                &format!("webhookConfigId={id}"),
                PROMPT,
                &format!("an attempt to {url}"),
                |l| {
                    l.iter().any(|d| {
                        d["test"] != json!(true) && d["attemptCount"].as_u64().unwrap_or(0) >= 1
                    })
                },
            )
            .await;
        let real = list
            .iter()
            .find(|d| d["test"] != json!(true) && d["attemptCount"].as_u64().unwrap_or(0) >= 1)
            .unwrap_or_else(|| srv.fail(format!("no real delivery to {url}")));
        let d = srv.get_delivery(&app, &s(real, "hooksId")).await;
        let first = &d["attempts"][0];
        if first["errorKind"] != json!("BLOCKED_ADDRESS") || !first["statusCode"].is_null() {
            failures.push(format!("- delivery to {url}: {first}"));
        }
        if d["status"] != json!("RETRYING") {
            failures.push(format!(
                "- delivery to {url} is {} (want RETRYING)",
                d["status"]
            ));
        }
    }
    // Every attempt above is recorded after its connection would have been made: whatever
    // reached the port is in its accept queue now.
    let reached = probe.connections();
    if reached != 0 {
        failures.push(format!(
            "- {reached} connection(s) reached the private port"
        ));
    }
    if !failures.is_empty() {
        srv.fail(format!(
            "{} problem(s):\n{}",
            failures.len(),
            failures.join("\n")
        ));
    }
}

/// With private targets allowed, the odd spellings do reach this machine: the test above blocks
/// real routes, not URLs that could not connect anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_odd_spellings_reach_this_machine_when_private_targets_are_allowed() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("ssrf-control").await;
    let mut failures = Vec::new();
    let spellings = [
        "localhost",
        "127.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "[::ffff:127.0.0.1]",
    ];
    for host in spellings {
        let url = format!("http://{host}:{}/control", rx.port());
        let cfg = srv
            .create_config(&app, config_body(SMS, &[UNSUB], &url))
            .await;
        let resp = srv.expect(
            srv.post(
                &app.auth(),
                &app.path(&format!(
                    "/webhook-configs/{}/test",
                    s(&cfg, "webhookConfigId")
                )),
                json!({}),
            )
            .await,
            200,
            &format!("test {url}"),
        );
        if resp["attempt"]["statusCode"] != json!(200) {
            failures.push(format!("- {url}: {}", resp["attempt"]));
        }
    }
    assert!(failures.is_empty(), "not reached:\n{}", failures.join("\n"));
    assert_eq!(rx.requests_to("/control").len(), spellings.len());
}

/// A receiver that answers every request with a redirect to `location`, after reading it whole.
struct Redirector {
    port: u16,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Redirector {
    async fn start(status: u16, location: String) -> Redirector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let count = count.clone();
                let location = location.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // The head, then Content-Length bytes of body.
                    let body_start = loop {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..body_start]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < body_start + length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Redirector {
            port,
            requests,
            task,
        }
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_failures_and_never_followed() {
    let target = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("redirects").await;
    let mut redirectors = Vec::new();
    for status in [301u16, 302, 303, 307, 308] {
        let r = Redirector::start(status, target.url(&format!("/after-{status}"))).await;
        let mut body = config_body(SMS, &[UNSUB], &format!("http://127.0.0.1:{}/hook", r.port));
        body["retrySchedule"] = json!(["1h"]);
        let cfg = srv.create_config(&app, body).await;
        redirectors.push((status, r, s(&cfg, "webhookConfigId")));
    }
    srv.ingest(
        &app,
        SMS,
        UNSUB,
        vec![samples::with_id(samples::hook(SMS, UNSUB, 0), "redirect-1")],
    )
    .await;
    for (status, r, id) in &redirectors {
        let list = srv
            .wait_for_deliveries(
                &app,
                &format!("webhookConfigId={id}"),
                PROMPT,
                &format!("the {status} attempt"),
                |l| {
                    l.iter().any(|d| {
                        d["test"] != json!(true) && d["attemptCount"].as_u64().unwrap_or(0) >= 1
                    })
                },
            )
            .await;
        let real = list
            .iter()
            .find(|d| d["test"] != json!(true) && d["attemptCount"].as_u64().unwrap_or(0) >= 1)
            .unwrap_or_else(|| srv.fail(format!("no real delivery for the {status} redirector")));
        let d = srv.get_delivery(&app, &s(real, "hooksId")).await;
        let first: &Value = &d["attempts"][0];
        assert_eq!(
            first["statusCode"],
            json!(status),
            "a {status} is the attempt's outcome: {d:#}"
        );
        assert_eq!(
            d["status"],
            json!("RETRYING"),
            "a {status} is a failure: {d:#}"
        );
        assert_eq!(
            r.requests.load(Ordering::SeqCst),
            1,
            "one request to the {status} receiver"
        );
    }
    // Each attempt is recorded only after its answer was read: a followed redirect would be here.
    assert!(
        target.requests().is_empty(),
        "a redirect was followed: {:?}",
        target
            .requests()
            .iter()
            .map(|r| r.summary())
            .collect::<Vec<_>>()
    );
}
