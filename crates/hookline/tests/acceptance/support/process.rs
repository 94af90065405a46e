//! Other processes the tests run (mount, df, kill, pg_ctl, the `hookline` CLI), each under a
//! time limit: a command that hangs fails its test instead of hanging the suite.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs `cmd` to its end, with its output captured; panics if it cannot start or runs longer
/// than `limit` (it is then killed).
pub fn run_sync(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("waiting for {what}: {e}"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of the child started above, which has not been reaped
            // (its waiter thread is still waiting), so the pid is still ours.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("{what} did not finish within {limit:?}; killed")
        }
    }
}

/// `run_sync`, asserting that the command succeeded; returns its stdout.
pub fn run_ok(cmd: &mut Command, limit: Duration) -> String {
    let what = format!("{cmd:?}");
    let out = run_sync(cmd, limit);
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd` to its end (async), with its output captured; panics if it cannot start or runs
/// longer than `limit` (it is then killed).
pub async fn run(cmd: &mut tokio::process::Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let output = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(limit, output).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("cannot run {what}: {e}"),
        // Dropping the future killed the process (kill_on_drop).
        Err(_) => panic!("{what} did not finish within {limit:?}; killed"),
    }
}

/// Sends `signal` (e.g. `libc::SIGSTOP`) to `pid`.
pub fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory effects; the pid is a child the harness started and still
    // holds (not reaped), so it cannot have been reused.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}
