//! Hostile load: one client must not take the service away from everyone else.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::*;

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A flood of connections that send nothing, or half a request, far beyond the cap: the server
/// keeps within its cap (file descriptors and memory bounded), and a fresh client's `/healthz`
/// and ingest still get their answers while the flood holds its connections open. The header
/// timeout is set long, so only the cap's eviction of idle connections can explain that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_cannot_lock_other_clients_out() {
    let srv = Server::start_with(&[
        "--max-connections=500",
        "--max-connections-per-ip=500",
        "--header-read-timeout=120s",
    ])
    .await;
    let app = srv.create_app_key("flood").await;
    let pid = srv.pid();
    let fds_before = open_fds(pid);
    let addr = srv.base_url.trim_start_matches("http://").to_owned();

    let mut flood = Vec::new();
    for i in 0..2000 {
        let Ok(mut stream) = TcpStream::connect(&addr).await else {
            continue;
        };
        if i % 4 == 0 {
            // Half a request: headers that never end.
            let _ = stream
                .write_all(b"POST /v1/appkeys/x/events HTTP/1.1\r\nHost: a\r\nContent-Length: 9")
                .await;
        }
        flood.push(stream);
    }

    // A fresh client, while the flood's sockets are all still open on the test's side.
    let health = tokio::time::timeout(
        Duration::from_secs(30),
        srv.http.get(srv.url("/healthz")).send(),
    )
    .await
    .expect("/healthz answered during the flood")
    .expect("/healthz reached the server");
    assert_eq!(health.status(), 200);
    let ids = tokio::time::timeout(
        Duration::from_secs(30),
        srv.ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        ),
    )
    .await
    .expect("ingest answered during the flood");
    assert_eq!(ids.len(), 1);

    let fds = open_fds(pid);
    assert!(
        fds <= fds_before + 500 + 64,
        "the server holds {fds} descriptors ({fds_before} before the flood): past its cap of 500 \
         connections"
    );
    let rss = rss_mib(pid);
    assert!(
        rss < 200.0,
        "{rss:.0} MiB resident during a flood of 2,000 connections"
    );
    drop(flood);
}

/// A data dir that hookline creates is private, and so is its database: they hold signing
/// secrets, the admin token and phone numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_database_hookline_creates_are_private() {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncBufReadExt;
    // A data dir that does not exist yet, under the test's umask (022: a plain create would
    // make it 0755 and the database 0644). The embedded store on both passes: this is about its
    // files.
    let parent = tempfile::tempdir().expect("temp dir");
    let data_dir = parent.path().join("new").join("data");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env("HOOKLINE_ADMIN_TOKEN", "perms-test-token")
        .env_remove("HOOKLINE_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start hookline serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            if line.starts_with("hookline listening on") {
                return;
            }
        }
        panic!("hookline serve exited before it listened");
    })
    .await
    .expect("hookline serve listening within 60 s");
    let mode = |name: &str| {
        std::fs::metadata(data_dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700, "the data dir");
    // The migrations wrote through the WAL, so all three files exist by now.
    for file in [
        "hookline.db",
        "hookline.db-wal",
        "hookline.db-shm",
        "admin-token",
    ] {
        if file == "admin-token" && !data_dir.join(file).exists() {
            continue; // the token came from the environment
        }
        assert_eq!(mode(file), 0o600, "{file}");
    }
    let _ = child.kill().await;
}

/// `/docs` shares the dashboard's origin: it must not be framed or run foreign scripts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_docs_page_forbids_framing_and_foreign_scripts() {
    let srv = Server::start().await;
    let resp = srv
        .http
        .get(srv.url("/docs/"))
        .send()
        .await
        .expect("GET /docs/");
    assert_eq!(resp.status(), 200);
    let csp = resp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "CSP: {csp:?}");
    assert!(csp.contains("script-src 'self'"), "CSP: {csp:?}");
    assert_eq!(
        resp.headers()
            .get("x-frame-options")
            .and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
}

/// One tenant cannot make the store fan every hook out to thousands of configs: the number of
/// configs per app key is capped (409 naming the limit), per app key, and a deleted config
/// frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_per_app_key_are_capped() {
    let srv = Server::start_with(&["--max-configs-per-app-key=3"]).await;
    let greedy = srv.create_app_key("greedy").await;
    let other = srv.create_app_key("other").await;
    let body = || config_body(SMS, &["UNSUBSCRIBE"], "https://example.com/hooks");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(s(
            &srv.create_config(&greedy, body()).await,
            "webhookConfigId",
        ));
    }
    let configs = greedy.path("/webhook-configs");
    let resp = srv.post(&greedy.auth(), &configs, body()).await;
    srv.ok(check_error(&resp, &[409], Some("webhookConfigs")));
    let message = resp.1["header"]["resultMessage"].as_str().unwrap_or("");
    assert!(message.contains("--max-configs-per-app-key 3"), "{message}");
    // Nothing was created by the refused request.
    let (_, list) = srv.get(&greedy.auth(), &configs).await;
    assert_eq!(list["webhookConfigs"].as_array().map(Vec::len), Some(3));
    // Another tenant is not affected.
    srv.create_config(&other, body()).await;
    // Deleting one frees a place.
    srv.expect(
        srv.delete(
            &greedy.auth(),
            &greedy.path(&format!("/webhook-configs/{}", ids[0])),
        )
        .await,
        200,
        "delete",
    );
    srv.create_config(&greedy, body()).await;
}
