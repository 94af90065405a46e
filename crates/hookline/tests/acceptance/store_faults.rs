//! Issue 5, a full store: ingest answers 503 with nothing half-written, deliveries wait, attempt
//! records that could not commit are written when space is back, and the server recovers by
//! itself; `--fsync` is what the store runs with.
//!
//! The data dir is a real 8 MiB tmpfs that the test fills up, so this needs root (as CI and the
//! developers' machines run): it fails, never skips, when it cannot mount.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::server::Options;
use crate::support::*;

/// Limit for the small system commands (mount, df).
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        let out = process::run_sync(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(at),
            COMMAND_LIMIT,
        );
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs as the data dir and needs root: mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = process::run_sync(Command::new("umount").arg("-l").arg(&self.0), COMMAND_LIMIT);
    }
}

/// Fills the file system at `dir` with a file, leaving about `leave` bytes free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let out = process::run_ok(
        Command::new("df").args(["--output=avail", "-B1"]).arg(dir),
        COMMAND_LIMIT,
    );
    let free = out
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse::<u64>().ok())
        .expect("df output");
    let size = free.saturating_sub(leave) as usize;
    // In chunks, and a full disk ends the filling: the server may write (an attempt record, a
    // checkpoint) between `df` and here, and a disk that fills up sooner is what this wants.
    let mut file = std::fs::File::create(&path).expect("create filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        match std::io::Write::write_all(&mut file, &chunk[..n]) {
            Ok(()) => left -= n,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("write filler: {e}"),
        }
    }
    path
}

/// A server on the embedded store in an 8 MiB tmpfs (even when the suite runs on PostgreSQL:
/// the full disk is the embedded store's own, which a PostgreSQL store never writes to).
async fn server_on_a_small_disk(extra: &[&str]) -> (Server, Mount) {
    let mut mount = None;
    let options = Options {
        embedded_store: true,
        ..Options::default()
    };
    let srv = Server::start_full(extra, options, |data| {
        mount = Some(Mount::tmpfs(data, "8m"))
    })
    .await;
    (srv, mount.expect("mounted"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_changes_nothing_and_recovers_by_itself() {
    let rx = Receiver::start().await;
    let (srv, mount) = server_on_a_small_disk(&[]).await;
    let app = srv.create_app_key("full-disk").await;
    srv.create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/full")))
        .await;
    let before = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    srv.ok(rx.wait_for_hooks(&before, PROMPT).await);

    let filler = fill(&srv.data_dir(), 0);
    // Large hooks so the next commit cannot fit in what the WAL has spare.
    let big: Vec<_> = (0..100)
        .map(|i| {
            let mut h =
                samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", i), &format!("full-{i}"));
            h["padding"] = json!("p".repeat(8000));
            h
        })
        .collect();
    let refused_ids: Vec<String> = (0..100).map(|i| format!("full-{i}")).collect();
    let resp = srv
        .post(
            &app.auth(),
            &app.path("/events"),
            json!({"productName": SMS, "event": "UNSUBSCRIBE", "hooks": big}),
        )
        .await;
    srv.ok(check_error(&resp, &[503], None).map_err(|e| format!("ingest on a full disk: {e}")));
    assert!(
        srv.get(&Auth::None, "/healthz").await.0.is_success(),
        "the process keeps serving"
    );

    // Space comes back: the very next request is accepted, with no restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let after = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    srv.ok(rx.wait_for_hooks(&after, PROMPT).await);
    // Nothing of the refused request was stored or delivered: its hookIds are unknown.
    let counts = rx.hook_counts(None);
    assert!(
        refused_ids.iter().all(|id| !counts.contains_key(id)),
        "a hook of the refused request was delivered"
    );
    for id in &refused_ids[..3] {
        let found = srv.list_deliveries(&app, &format!("hookId={id}")).await;
        assert!(found.is_empty(), "{id} was half-written: {found:?}");
    }
    drop(srv);
    drop(mount);
}

/// An attempt that happens while the disk is full: its record cannot commit, the server keeps
/// it and writes it once space is back, with no restart; the delivery is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_record_that_cannot_commit_is_written_when_space_is_back() {
    let rx = Receiver::start().await;
    rx.set_hold(true);
    let (srv, mount) = server_on_a_small_disk(&[]).await;
    let app = srv.create_app_key("full-disk-record").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/held"));
    body["retrySchedule"] = schedule(30, "200ms");
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    // The attempt is under way (held by the receiver) and its delivery is committed.
    let reqs = srv.ok(rx.wait_for_requests(1, PROMPT).await);
    let hooks_id = reqs[0].hooks_id().expect("hooksId");
    srv.wait_for_delivery_status(&app, &hooks_id, "PENDING", PROMPT)
        .await;

    // Fill the disk, then write until the store refuses. Hooks of an event no config takes, so
    // nothing else is sent. Big ones first: their new pages cannot be checkpointed into the
    // full database file, so the WAL can no longer start over and must grow; then small ones
    // until even those fail, which leaves the WAL less room than any attempt record needs.
    let filler = fill(&srv.data_dir(), 0);
    for (size, prefix) in [(8000, "pad"), (0, "tiny")] {
        let mut refused = false;
        for i in 0..400 {
            let mut h = samples::with_id(
                samples::hook(SMS, "CONVERSION_BLOCK", i),
                &format!("{prefix}-{i}"),
            );
            if size > 0 {
                h["padding"] = json!("p".repeat(size));
            }
            let resp = srv
                .post(
                    &app.auth(),
                    &app.path("/events"),
                    json!({"productName": SMS, "event": "CONVERSION_BLOCK", "hooks": [h]}),
                )
                .await;
            match resp.0.as_u16() {
                202 => continue,
                503 => {
                    refused = true;
                    break;
                }
                other => srv.fail(format!(
                    "ingest on a full disk answered {other}: {}",
                    resp.1
                )),
            }
        }
        assert!(
            refused,
            "the store kept accepting {prefix} hooks on a full disk"
        );
    }

    // The receiver answers: the attempt succeeds, and its record cannot commit.
    rx.set_hold(false);
    srv.wait_for_log(&["attempt record not committed", &hooks_id], PROMPT)
        .await;
    let d = srv.get_delivery(&app, &hooks_id).await;
    assert_eq!(d["status"], json!("PENDING"), "nothing was recorded: {d:#}");
    assert_eq!(d["attempts"], json!([]), "{d:#}");

    // Space comes back: the kept record is written, with no restart and no second attempt.
    std::fs::remove_file(&filler).expect("remove filler");
    let d = srv
        .wait_for_delivery_status(&app, &hooks_id, "SUCCEEDED", PROMPT)
        .await;
    let attempts = d["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{d:#}");
    assert_eq!(attempts[0]["statusCode"], json!(200), "{d:#}");
    // A later hook to the same config goes through: had the delivery been sent again, it would
    // have been sent before this one was.
    let later = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    srv.wait_for_hook_delivery(&app, &cfg_id, &later[0], "SUCCEEDED", PROMPT)
        .await;
    let sent = rx
        .requests()
        .iter()
        .filter(|r| r.hooks_id().as_deref() == Some(hooks_id.as_str()))
        .count();
    assert_eq!(sent, 1, "the delivery whose record waited was sent again");
    assert_eq!(rx.hook_counts(None).get(&ids[0]), Some(&1));
    drop(srv);
    drop(mount);
}

/// `--fsync full` is what the embedded store runs with: the server reads `PRAGMA synchronous`
/// back from its writer connection and logs it (`FULL`; `NORMAL` by default). It serves, and
/// keeps its data across `kill -9`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_full_is_what_the_store_runs_with() {
    let embedded = || Options {
        embedded_store: true,
        ..Options::default()
    };
    let by_default = Server::start_with_options(&[], embedded()).await;
    let line = by_default
        .wait_for_log(&["embedded store opened"], PROMPT)
        .await;
    assert!(line.contains("synchronous=\"NORMAL\""), "{line}");
    drop(by_default);

    let rx = Receiver::start().await;
    let mut srv = Server::start_with_options(&["--fsync", "full"], embedded()).await;
    let line = srv.wait_for_log(&["embedded store opened"], PROMPT).await;
    assert!(
        line.contains("synchronous=\"FULL\""),
        "--fsync full did not reach the store: {line}"
    );
    let app = srv.create_app_key("fsync-full").await;
    let cfg = srv
        .create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/f")))
        .await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    // Killed only once the delivery's record is committed (the log reads committed rows): the
    // receiver may have the hook before its claim commits (an embedded claim answers before its
    // group's commit), and a claim lost to the kill is redelivered, not kept.
    let delivered = srv
        .wait_for_hook_delivery(&app, &cfg_id, &ids[0], "SUCCEEDED", PROMPT)
        .await;
    srv.kill9().await;
    srv.restart().await;
    let found = srv
        .list_deliveries(&app, &format!("hookId={}", ids[0]))
        .await;
    assert_eq!(found.len(), 1, "the delivery survived: {found:?}");
    assert_eq!(found[0]["hooksId"], delivered["hooksId"], "{found:?}");
    assert_eq!(found[0]["status"], json!("SUCCEEDED"), "{found:?}");
    let restarted = srv.stderr_all();
    assert_eq!(
        restarted
            .lines()
            .filter(|l| l.contains("embedded store opened") && l.contains("synchronous=\"FULL\""))
            .count(),
        2,
        "the restart runs with --fsync full too"
    );
}

/// With PostgreSQL, durability is the database server's (`synchronous_commit`): `--fsync full`
/// would do nothing there, so the server refuses it at start, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_full_is_refused_with_postgresql() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Refused before any connection: the URL needs no server behind it.
    let out = process::run(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(["serve", "--listen", "127.0.0.1:0", "--fsync", "full"])
            .args(["--database-url", "postgres://nobody@127.0.0.1:1/none"])
            .arg("--data-dir")
            .arg(dir.path())
            .env("HOOKLINE_ADMIN_TOKEN", "t")
            .env_remove("HOOKLINE_LISTEN")
            .env_remove("HOOKLINE_FSYNC"),
        Duration::from_secs(30),
    )
    .await;
    assert!(!out.status.success(), "it started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--fsync full") && stderr.contains("synchronous_commit"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(dir.path()).is_ok_and(|mut d| d.next().is_none()),
        "the refused start wrote to its data dir"
    );
}
