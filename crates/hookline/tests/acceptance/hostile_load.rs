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
