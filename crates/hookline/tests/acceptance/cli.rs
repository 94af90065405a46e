//! The command line against a real server: `hookline admin` creates and lists app keys and
//! creates configs, `hookline emit` ingests hooks that get delivered, and `hookline listen`
//! receives them, checking both signatures and answering 401 to a wrong one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::*;

/// Each CLI command must finish within this.
const CLI_LIMIT: Duration = Duration::from_secs(30);

/// `hookline <args>` with a clean environment (no HOOKLINE_* or proxy variables of the caller).
pub(crate) fn hookline(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookline"));
    cmd.args(args).env("NO_COLOR", "1").env("NO_PROXY", "*");
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().to_string();
        if key.starts_with("HOOKLINE_") || key.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `hookline <args>` to its end under [`CLI_LIMIT`]; returns (success, stdout, stderr).
pub(crate) async fn run(args: &[&str]) -> (bool, String, String) {
    let out = process::run(&mut hookline(args), CLI_LIMIT).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `hookline <args>`, asserting success; returns its stdout.
pub(crate) async fn run_ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = run(args).await;
    assert!(ok, "hookline {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// The value after `label` on a line of `text` (`appKey` in `  appKey:    abc` or in the
/// CLI's tables, `webhookConfigId   abc`).
fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix(label)?;
            let rest = rest.strip_prefix(':').unwrap_or(rest);
            rest.starts_with(char::is_whitespace).then(|| rest.trim())
        })
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
}

/// A running `hookline listen`, its stdout collected line by line.
struct Listen {
    _child: Child,
    url: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Listen {
    async fn start(args: &[&str]) -> Listen {
        let mut all = vec!["--quiet"];
        all.extend_from_slice(args);
        Listen::start_printing_hooks(&all).await
    }

    /// Like `start`, without `--quiet`: every hook is printed too.
    async fn start_printing_hooks(args: &[&str]) -> Listen {
        let mut all = vec!["listen", "--port", "0"];
        all.extend_from_slice(args);
        let mut child = hookline(&all)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start hookline listen");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(CLI_LIMIT, stdout.next_line())
            .await
            .expect("hookline listen printed nothing within its limit")
            .expect("read stdout")
            .expect("hookline listen exited");
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .trim_end_matches('/')
            .to_string();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                sink.lock().expect("lines").push(line);
            }
        });
        Listen {
            _child: child,
            url,
            lines,
        }
    }

    /// Waits until a printed line contains `text`; returns it.
    async fn wait_for_line(&self, text: &str) -> String {
        let end = std::time::Instant::now() + PROMPT;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .find(|l| l.contains(text))
            {
                return line.clone();
            }
            assert!(
                std::time::Instant::now() < end,
                "hookline listen never printed {text:?}; it printed {:?}",
                self.lines.lock().expect("lines")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `hookline admin` makes an app key and a config, `hookline emit` sends hooks through the server,
/// and `hookline listen` receives them with both signatures checked. A config whose signature is
/// wrong gets 401 from `listen` (recorded as such in the delivery log), as does a request without
/// one and one whose Standard Webhooks signature is made with another secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_emit_and_listen_work_against_a_real_server() {
    let srv = Server::start().await;
    let base = srv.base_url.clone();
    let token = srv.admin_token.clone();
    let secret = format!("whsec_{}", crypto::base64_encode(&[1u8; 32]));
    let listen = Listen::start(&["--signature", "sig-cli", "--signing-secret", &secret]).await;

    // admin: an app key, listed, and two configs (right and wrong static signature).
    let out = run_ok(&[
        "admin",
        "create-app-key",
        "--server",
        &base,
        "--admin-token",
        &token,
        "--name",
        "cli-app",
    ])
    .await;
    let app_key = field(&out, "appKey");
    let secret_key = field(&out, "secretKey");
    let out = run_ok(&[
        "admin",
        "list-app-keys",
        "--server",
        &base,
        "--admin-token",
        &token,
    ])
    .await;
    assert!(
        out.lines()
            .any(|l| l.starts_with(&app_key) && l.contains("cli-app")),
        "{out}"
    );
    let (ok, _, stderr) = run(&[
        "admin",
        "list-app-keys",
        "--server",
        &base,
        "--admin-token",
        "wrong",
    ])
    .await;
    assert!(
        !ok && stderr.contains("401"),
        "a wrong admin token: {stderr}"
    );
    let app = App {
        app_key: app_key.clone(),
        secret: secret_key.clone(),
    };
    let mut configs = Vec::new();
    for (signature, path) in [("sig-cli", "/right"), ("not-it", "/wrong")] {
        let url = format!("{}{path}", listen.url);
        let out = run_ok(&[
            "admin",
            "create-config",
            "--server",
            &base,
            "--app-key",
            &app_key,
            "--secret-key",
            &secret_key,
            "--product",
            "SMS",
            "--events",
            "MESSAGE_RESULT_UPDATE,UNSUBSCRIBE",
            "--url",
            &url,
            "--signature",
            signature,
            "--retry-schedule",
            "10m",
        ])
        .await;
        let id = field(&out, "webhookConfigId");
        let cfg = srv.get_config(&app, &id).await;
        assert_eq!(cfg["url"], json!(url), "{cfg}");
        assert_eq!(
            cfg["events"],
            json!(["MESSAGE_RESULT_UPDATE", "UNSUBSCRIBE"])
        );
        assert_eq!(cfg["retrySchedule"], json!(["10m"]), "{cfg}");
        configs.push(id);
    }
    // The Standard Webhooks secret, through the API (the CLI does not set one).
    for id in &configs {
        let resp = srv
            .post(
                &app.auth(),
                &app.path(&format!("/webhook-configs/{id}/signing-secret/rotate")),
                json!({"signingSecret": secret, "gracePeriod": "0s"}),
            )
            .await;
        srv.expect(resp, 200, "set the signing secret");
    }

    // emit: three hooks, accepted and delivered.
    let out = run_ok(&[
        "emit",
        "--server",
        &base,
        "--app-key",
        &app_key,
        "--secret-key",
        &secret_key,
        "--product",
        "SMS",
        "--event",
        "MESSAGE_RESULT_UPDATE",
        "--count",
        "3",
        "--batch",
        "2",
    ])
    .await;
    assert!(
        out.contains("accepted 3 SMS MESSAGE_RESULT_UPDATE hook(s)"),
        "{out}"
    );
    let delivered = srv
        .wait_for_deliveries(
            &app,
            &format!("webhookConfigId={}&status=SUCCEEDED", configs[0]),
            PROMPT,
            "the emitted hooks delivered to listen",
            |l| {
                l.iter()
                    .map(|d| d["hookIds"].as_array().map_or(0, Vec::len))
                    .sum::<usize>()
                    == 3
            },
        )
        .await;
    for d in &delivered {
        let line = listen
            .wait_for_line(&format!("hooksId={}", s(d, "hooksId")))
            .await;
        assert!(line.contains("SMS MESSAGE_RESULT_UPDATE"), "{line}");
    }
    // The config with the wrong signature: listen answered 401, recorded as the attempt's status.
    let wrong = srv
        .wait_for_deliveries(
            &app,
            &format!("webhookConfigId={}", configs[1]),
            PROMPT,
            "an attempt to the wrong-signature config",
            |l| l.iter().any(|d| d["attemptCount"].as_u64() >= Some(1)),
        )
        .await;
    let d = srv.get_delivery(&app, &s(&wrong[0], "hooksId")).await;
    assert_eq!(d["attempts"][0]["statusCode"], json!(401), "{d:#}");
    listen
        .wait_for_line("REJECTED: X-Toast-Webhook-Signature")
        .await;

    // Straight to listen: no signature, and a Standard Webhooks signature by another secret.
    let body = d["envelope"].to_string();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let status =
        |r: reqwest::Result<reqwest::Response>| r.expect("listen answers").status().as_u16();
    let unsigned = http
        .post(format!("{}/x", listen.url))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await;
    assert_eq!(status(unsigned), 401);
    let now = chrono::Utc::now().timestamp().to_string();
    let forged = crypto::base64_encode(&crypto::hmac_sha256(
        &[2u8; 32],
        format!("msg_1.{now}.{body}").as_bytes(),
    ));
    let other_secret = http
        .post(format!("{}/x", listen.url))
        .header("content-type", "application/json")
        .header("x-toast-webhook-signature", "sig-cli")
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", &now)
        .header("webhook-signature", format!("v1,{forged}"))
        .body(body)
        .send()
        .await;
    assert_eq!(status(other_secret), 401);
    listen.wait_for_line("REJECTED: webhook-signature").await;
}

/// `hookline listen` prints an envelope of any product, an operator's included (it reads hooks as
/// JSON, not through the typed models of the built-in events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_pretty_prints_an_operators_product() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("push.json");
    std::fs::write(&file, crate::catalogue::PUSH_CATALOGUE).unwrap();
    let srv = Server::start_with(&["--catalogue", file.to_str().unwrap()]).await;
    let listen = Listen::start_printing_hooks(&["--signature", "sig-1"]).await;
    let app = srv.create_app_key("listen-push").await;
    srv.create_config(
        &app,
        config_body("Push", &["OPENED"], &format!("{}/push", listen.url)),
    )
    .await;
    let ids = srv
        .ingest(
            &app,
            "Push",
            "OPENED",
            vec![json!({"token": "tok-42-listen", "platform": "ANDROID"})],
        )
        .await;
    let header = listen.wait_for_line("Push OPENED").await;
    assert!(header.contains(&app.app_key), "{header}");
    listen
        .wait_for_line(&format!("\"hookId\": \"{}\"", ids[0]))
        .await;
    listen.wait_for_line("\"token\": \"tok-42-listen\"").await;
}
