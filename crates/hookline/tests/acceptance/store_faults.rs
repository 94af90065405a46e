//! Issue 5, a full store: ingest answers 503 with nothing half-written, deliveries wait, and the
//! server recovers by itself when space is back.
//!
//! The data dir is a real 8 MiB tmpfs that the test fills up, so this needs root (as CI and the
//! developers' machines run): it fails, never skips, when it cannot mount.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::server::Options;
use crate::support::*;

struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test mounts a small tmpfs as the data dir and needs root: mount failed"
        );
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system at `dir` with a file, leaving about `leave` bytes free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let free = {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(dir)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .expect("df output")
    };
    let size = free.saturating_sub(leave);
    std::fs::write(&path, vec![0u8; size as usize]).expect("write filler");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_changes_nothing_and_recovers_by_itself() {
    let rx = Receiver::start().await;
    let mut mount = None;
    // The embedded store even when the suite runs on PostgreSQL: the full disk is the embedded
    // store's own (the data dir), which a PostgreSQL store never writes to.
    let options = Options {
        embedded_store: true,
        ..Options::default()
    };
    let srv = Server::start_full(&[], options, |data| mount = Some(Mount::tmpfs(data, "8m"))).await;
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

/// `--fsync full` (power-loss durability) is a real mode of the store: it serves, delivers and
/// keeps its data across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_full_serves_and_keeps_its_data() {
    let rx = Receiver::start().await;
    let mut srv = Server::start_with(&["--fsync", "full"]).await;
    let app = srv.create_app_key("fsync-full").await;
    srv.create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/f")))
        .await;
    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    srv.kill9().await;
    srv.restart().await;
    let found = srv
        .list_deliveries(&app, &format!("hookId={}", ids[0]))
        .await;
    assert_eq!(found.len(), 1, "the delivery survived: {found:?}");
}
