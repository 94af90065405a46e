//! PostgreSQL's own faults, with real processes: the database restarting under load (a cluster
//! of the test's own, so that the restart cannot touch the other tests' databases), a node cut
//! off from the database (stopped with SIGSTOP) for longer than its lease, a database that stops
//! answering, and a network that stops carrying the node's connections (`tc`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::server::{Options, scratch_postgres_database};
use crate::support::*;

/// The cluster's owner when the tests run as root (postgres refuses root); `scripts/pg.sh`
/// creates it.
const PG_USER: &str = "hookline-pg";
const PG_COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// A throwaway PostgreSQL cluster of one test's own (initdb in a temp dir), stopped and removed
/// when dropped. Uses the binaries of `HOOKLINE_PG_BINDIR` (exported by `scripts/pg.sh start`).
struct OwnCluster {
    bindir: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn as_owner(program: &Path) -> Command {
    // SAFETY: geteuid(2) only reads the process's credentials.
    if unsafe { libc::geteuid() } == 0 {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", PG_USER, "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

impl OwnCluster {
    fn start() -> OwnCluster {
        let bindir = PathBuf::from(std::env::var("HOOKLINE_PG_BINDIR").unwrap_or_else(|_| {
            panic!(
                "HOOKLINE_PG_BINDIR is not set: run ./scripts/test.sh, or \
                 `eval \"$(scripts/pg.sh start)\"` first (this test makes a cluster of its own)"
            )
        }));
        let dir = tempfile::Builder::new()
            .prefix("hookline-own-pg-")
            .tempdir()
            .expect("temp dir");
        // SAFETY: geteuid(2) only reads the process's credentials.
        if unsafe { libc::geteuid() } == 0 {
            process::run_ok(
                Command::new("chown").arg(PG_USER).arg(dir.path()),
                PG_COMMAND_LIMIT,
            );
        }
        process::run_ok(
            as_owner(&bindir.join("initdb"))
                .arg("-D")
                .arg(dir.path().join("data"))
                .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
                .arg("--locale=C"),
            PG_COMMAND_LIMIT,
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = OwnCluster { bindir, dir, port };
        // fsync off (a process crash, not the machine's, is the fault here), but
        // synchronous_commit stays on: a commit is acknowledged only once its WAL is written,
        // which is what makes "0 lost" the database's promise and hookline's to keep.
        cluster.pg_ctl(&[
            "-o",
            &format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
                cluster.port,
                cluster.dir.path().display()
            ),
            "start",
        ]);
        cluster
    }

    fn pg_ctl(&self, args: &[&str]) {
        process::run_ok(
            as_owner(&self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-w", "-t", "30"])
                .args(args),
            PG_COMMAND_LIMIT,
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl OwnCluster {
    /// The postmaster's pid (the first line of `postmaster.pid`).
    fn postmaster(&self) -> libc::pid_t {
        let pid_file = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .expect("postmaster.pid");
        pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("the postmaster's pid")
    }

    /// The postmaster's children (backends, WAL writer, checkpointer...).
    fn children(&self, postmaster: libc::pid_t) -> Vec<libc::pid_t> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
                continue;
            };
            // `pid (comm) state ppid ...`: the name may hold spaces, so read after its `)`.
            let parent = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<libc::pid_t>().ok()
                });
            if parent == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }
}

/// Processes stopped (SIGSTOP) until this is dropped (SIGCONT): a test that fails meanwhile does
/// not leave the database stopped (stopping the cluster at its end would wait for it).
struct Stopped(Vec<libc::pid_t>);

impl Stopped {
    fn stop(pids: Vec<libc::pid_t>) -> Stopped {
        for &pid in &pids {
            // SAFETY: kill(2) only sends a signal.
            let sent = unsafe { libc::kill(pid, libc::SIGSTOP) };
            assert_eq!(
                sent,
                0,
                "SIGSTOP to {pid}: {}",
                std::io::Error::last_os_error()
            );
        }
        Stopped(pids)
    }

    /// The whole server: the postmaster first (stopped, it forks no new backend), then its
    /// children as they are then.
    fn cluster(pg: &OwnCluster) -> Stopped {
        let postmaster = pg.postmaster();
        let mut stopped = Stopped::stop(vec![postmaster]);
        for pid in pg.children(postmaster) {
            // SAFETY: kill(2) only sends a signal. A child that ended meanwhile is not stopped.
            if unsafe { libc::kill(pid, libc::SIGSTOP) } == 0 {
                stopped.0.push(pid);
            }
        }
        stopped
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: kill(2) only sends a signal.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = process::run_sync(
            as_owner(&self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-m", "immediate", "-w", "stop"]),
            PG_COMMAND_LIMIT,
        );
    }
}

/// Polls `cond` until it holds; fails with the server's stderr after `SLOW`.
async fn wait_for(srv: &Server, what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + SLOW;
    while !cond() {
        if Instant::now() > end {
            srv.fail(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `hookline serve` stderr lines containing `text`.
fn log_lines(srv: &Server, text: &str) -> usize {
    srv.stderr_all()
        .lines()
        .filter(|l| l.contains(text))
        .count()
}

/// PostgreSQL crashes (`pg_ctl stop -m immediate`) and starts again while a producer ingests and
/// hookline delivers, with attempts in flight that end while it is away: ingest answers 503
/// meanwhile, the same hookline process recovers by itself, the attempts that ended during the
/// outage are recorded once it is back (not sent again), every acknowledged hook arrives, and
/// the only hooks that arrive twice are those of the claims and records the crash lost (sent in
/// the last moments before it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarting_under_load_loses_nothing() {
    let pg = Arc::new(
        tokio::task::spawn_blocking(OwnCluster::start)
            .await
            .expect("start a cluster"),
    );
    let rx = Receiver::start().await;
    let options = Options {
        database_url: Some(pg.url()),
        rust_log: "info,hookline::store::postgres::writer=debug".into(),
        ..Options::default()
    };
    let srv = Server::start_with_options(&[], options).await;
    let pid = srv.pid();
    let app = srv.create_app_key("pg-restart").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/pg"));
    body["maxHooksPerRequest"] = json!(50);
    body["retrySchedule"] = schedule(30, "200ms");
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");

    // A producer that retries every request until it is acknowledged, counting refusals.
    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
        let url = srv.url(&app.path("/events"));
        let secret = app.secret.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let ids: Vec<String> = (n..n + 20).map(|i| format!("pg-{i}")).collect();
                let hooks: Vec<_> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", i), id))
                    .collect();
                let body = json!({"productName": SMS, "event": "UNSUBSCRIBE", "hooks": hooks});
                loop {
                    let sent = client
                        .post(&url)
                        .header("X-Secret-Key", &secret)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().as_u16() == 202 => {
                            acked.lock().expect("acked").extend(ids);
                            break;
                        }
                        Ok(r) if r.status().as_u16() == 503 => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => panic!("ingest answered {}", r.status()),
                        Err(e) => panic!("ingest failed: {e}"),
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                n += 20;
            }
        })
    };
    let acked_now = || acked.lock().expect("acked").len();
    // Under way: hooks acknowledged and delivered. Then requests are held in flight.
    wait_for(&srv, "the producer to get going", || {
        acked_now() >= 400 && rx.requests().len() >= 5
    })
    .await;
    let before_hold = rx.requests().len();
    rx.set_hold(true);
    let held = srv.ok(rx.wait_for_requests(before_hold + 1, PROMPT).await);
    let held: Vec<String> = held[before_hold..]
        .iter()
        .filter_map(|r| r.hooks_id())
        .collect();

    // The database crashes; ingest is refused meanwhile.
    let pg_stop = pg.clone();
    tokio::task::spawn_blocking(move || pg_stop.pg_ctl(&["-m", "immediate", "stop"]))
        .await
        .expect("stop PostgreSQL");
    let crashed_at = Instant::now();
    let crashed_at_wall = std::time::SystemTime::now();
    let refused_before = refused.load(Ordering::SeqCst);
    wait_for(&srv, "an ingest refused while the database is down", || {
        refused.load(Ordering::SeqCst) > refused_before
    })
    .await;
    // The held attempts end now, while it is down: their records cannot be written. The jobs
    // writer (records, not ingests) fails its next groups: the records go back to be written
    // again, and are retried every 250 ms.
    let failed_groups = || {
        log_lines(&srv, "postgres jobs writer cannot reconnect")
            + log_lines(&srv, "write group rolled back (jobs writer)")
    };
    let failed_before = failed_groups();
    rx.set_hold(false);
    wait_for(&srv, "the writer to fail groups after the answers", || {
        failed_groups() >= failed_before + 5
    })
    .await;
    // Claims the store refuses wait before the next (no busy loop of errors while it is away):
    // one config, at most a claim a second, plus a little slack.
    let outage = crashed_at.elapsed().as_secs() as usize;
    let claim_errors = log_lines(&srv, "claiming a batch failed");
    assert!(
        claim_errors <= 3 + 2 * outage,
        "{claim_errors} failed claims in a {outage} s outage: claims retry without waiting"
    );
    let pg_start = pg.clone();
    tokio::task::spawn_blocking(move || {
        pg_start.pg_ctl(&[
            "-o",
            &format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
                pg_start.port,
                pg_start.dir.path().display()
            ),
            "start",
        ])
    })
    .await
    .expect("start PostgreSQL again");

    // Recovered by itself: new hooks are acknowledged again by the same process.
    let restarted_at = acked_now();
    wait_for(&srv, "ingest to recover", || {
        acked_now() >= restarted_at + 400
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    producer.await.expect("producer");
    assert_eq!(srv.pid(), pid, "the same hookline process");

    let acked = acked.lock().expect("acked").clone();
    if let Err(e) = rx.wait_for_hooks(&acked, SLOW).await {
        // What the store holds, to tell a stalled engine from lost work.
        let open = srv
            .list_deliveries(&app, &format!("webhookConfigId={cfg_id}"))
            .await
            .iter()
            .filter(|d| d["status"] == json!("PENDING") || d["status"] == json!("RETRYING"))
            .map(|d| {
                format!(
                    "{} {} attempts {}",
                    d["hooksId"], d["status"], d["attempts"]
                )
            })
            .collect::<Vec<_>>();
        let metrics = match reqwest::get(srv.url("/metrics")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => format!("GET /metrics: {e}"),
        };
        let gauges: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("hookline_queue") || l.starts_with("hookline_open"))
            .collect();
        srv.fail(format!(
            "{e}\nopen deliveries: {open:?}\nqueue gauges: {gauges:?}"
        ));
    }
    srv.wait_for_deliveries(
        &app,
        &format!("webhookConfigId={cfg_id}"),
        SLOW,
        "every delivery finished",
        |l| {
            l.iter()
                .all(|d| d["status"] != json!("PENDING") && d["status"] != json!("RETRYING"))
        },
    )
    .await;
    // The attempts that ended during the outage were recorded afterwards, as they happened;
    // unless the claim that made the delivery was itself lost in the crash (it commits without
    // waiting for the WAL flush): then its hooks were queued again and sent again.
    let counts: HashMap<String, usize> = rx.hook_counts(None);
    for hooks_id in &held {
        let resp = srv
            .get(&app.auth(), &app.path(&format!("/deliveries/{hooks_id}")))
            .await;
        if resp.0.as_u16() == 404 {
            let request = rx
                .requests()
                .into_iter()
                .find(|r| r.hooks_id().as_deref() == Some(hooks_id.as_str()))
                .expect("the held request");
            for hook_id in request.hook_ids() {
                assert!(
                    counts.get(&hook_id).is_some_and(|n| *n > 1),
                    "{hook_id} was in {hooks_id}, which the crash lost, and was not sent again"
                );
            }
            continue;
        }
        let d = srv.expect(resp, 200, "a held delivery")["delivery"].clone();
        assert_eq!(d["status"], json!("SUCCEEDED"), "{d:#}");
        assert_eq!(d["attempts"].as_array().map(Vec::len), Some(1), "{d:#}");
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let refused = refused.load(Ordering::SeqCst);
    eprintln!(
        "PostgreSQL crash and start: {} hooks acknowledged, {refused} ingests refused (503) \
         meanwhile, {} attempts ended during the outage, {} hooks delivered twice",
        acked.len(),
        held.len(),
        twice.len()
    );
    // Claims and attempt records commit without waiting for the WAL flush (they acknowledge
    // nothing to a client), so a database crash may lose the last of them: their hooks are sent
    // again. Only those: every hook that arrived twice had first arrived just before the crash
    // (PostgreSQL writes the WAL of such commits within a few wal_writer_delay of 200 ms).
    let first_arrival: HashMap<String, std::time::SystemTime> = {
        let mut first = HashMap::new();
        for r in rx.requests() {
            for hook_id in r.hook_ids() {
                first.entry(hook_id).or_insert(r.received_at);
            }
        }
        first
    };
    for (hook_id, _) in &twice {
        let at = first_arrival[hook_id.as_str()];
        let before_crash = crashed_at_wall.duration_since(at);
        assert!(
            before_crash
                .as_ref()
                .is_ok_and(|d| *d <= Duration::from_secs(2)),
            "{hook_id} arrived twice, first {before_crash:?} before the crash: only commits of \
             the last moments before a database crash may be lost"
        );
    }
    assert_eq!(counts.len(), acked.len(), "only acknowledged hooks arrived");
}

/// A node cut off from the database for longer than its lease (SIGSTOP: it neither renews nor
/// answers) while it holds a delivery in flight: the other node sends that delivery again, with
/// the same hooksId, once the lease expired. When the stopped node goes on, its late answer
/// changes nothing, the delivery is SUCCEEDED, and the node serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_for_longer_than_its_lease_has_its_delivery_sent_by_another() {
    let db = scratch_postgres_database("cluster::faults (two nodes on one database)").await;
    let rx = Receiver::start().await;
    rx.set_hold(true);
    let node = |id: &str| {
        let options = Options {
            database_url: Some(db.clone()),
            ..Options::default()
        };
        let id = id.to_string();
        async move {
            Server::start_with_options(&["--node-id", &id, "--lease-ttl", "2s"], options).await
        }
    };
    let mut nodes = [node("a").await, node("b").await];
    let app = nodes[0].create_app_key("cut-off").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/cut"));
    // The held request stays in flight until released, however slow the machine: a timeout
    // would make the cut-off node send it again itself before it is stopped.
    body["timeoutMs"] = json!(60_000);
    let cfg = nodes[0].create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    nodes[1].get_config(&app, &cfg_id).await;
    let ids = nodes[0]
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    let first = nodes[0].ok(rx.wait_for_requests(1, PROMPT).await);
    let hooks_id = first[0].hooks_id().expect("hooksId");
    let owner = nodes[0]
        .store_query_strings(
            "SELECT lease_owner FROM deliveries WHERE hooks_id = $1",
            &[&hooks_id],
        )
        .await;
    let (cut, other) = match owner.as_slice() {
        [row] if row.first() == Some(&Some("a".to_string())) => (0, 1),
        [row] if row.first() == Some(&Some("b".to_string())) => (1, 0),
        _ => nodes[0].fail(format!("who holds {hooks_id}? {owner:?}")),
    };

    nodes[cut].signal(libc::SIGSTOP);
    // The other node takes over once the lease expired: the same delivery arrives again.
    let reqs = nodes[other].ok(rx
        .wait_until(SLOW, "the delivery again, from the other node", |reqs| {
            reqs.iter()
                .filter(|r| r.hooks_id().as_deref() == Some(hooks_id.as_str()))
                .count()
                == 2
        })
        .await);
    let resent: Vec<_> = reqs
        .iter()
        .filter(|r| r.hook_ids().contains(&ids[0]))
        .collect();
    assert_eq!(resent.len(), 2, "twice, and only as that delivery");
    rx.set_hold(false);
    nodes[other]
        .wait_for_delivery_status(&app, &hooks_id, "SUCCEEDED", PROMPT)
        .await;

    // The cut-off node goes on: its late answer does not move the delivery back, and it serves.
    nodes[cut].signal(libc::SIGCONT);
    let later = nodes[cut]
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    nodes[cut]
        .wait_for_hook_delivery(&app, &cfg_id, &later[0], "SUCCEEDED", PROMPT)
        .await;
    let d = nodes[cut].get_delivery(&app, &hooks_id).await;
    assert_eq!(d["status"], json!("SUCCEEDED"), "{d:#}");
    assert_eq!(
        rx.hook_counts(None).get(&ids[0]),
        Some(&2),
        "sent by the cut-off node and once more by the other, no more"
    );
    for n in &mut nodes {
        n.stop_sigterm(PROMPT).await;
    }
}

/// A node on a cluster of the test's own, with `--pg-statement-timeout 2s --pg-lock-timeout 1s`
/// (so it waits at most 2 + 1 + 5 = 8 s for an answer), an app key and a config of `SMS
/// UNSUBSCRIBE` to a receiver; and an HTTP client of the test's own, whose timeout (60 s) is far
/// past that bound: a hang shows as its error. For the tests of a database that stops answering.
struct Unanswered {
    pg: OwnCluster,
    rx: Receiver,
    srv: Server,
    app: App,
    cfg_id: String,
    client: reqwest::Client,
}

impl Unanswered {
    async fn start(name: &str) -> Unanswered {
        let pg = tokio::task::spawn_blocking(OwnCluster::start)
            .await
            .expect("start a cluster");
        let rx = Receiver::start().await;
        let options = Options {
            database_url: Some(pg.url()),
            ..Options::default()
        };
        let srv = Server::start_with_options(
            &["--pg-statement-timeout", "2s", "--pg-lock-timeout", "1s"],
            options,
        )
        .await;
        let app = srv.create_app_key(name).await;
        let cfg = srv
            .create_config(
                &app,
                config_body(SMS, &["UNSUBSCRIBE"], &rx.url(&format!("/{name}"))),
            )
            .await;
        let cfg_id = s(&cfg, "webhookConfigId");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Unanswered {
            pg,
            rx,
            srv,
            app,
            cfg_id,
            client,
        }
    }
}

/// An ingest of one UNSUBSCRIBE hook with this `hookId`, authenticated with `secret`.
fn one_hook_ingest(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    id: &str,
) -> reqwest::RequestBuilder {
    let hook = samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", 0), id);
    client
        .post(url)
        .header("X-Secret-Key", secret)
        .json(&json!({"productName": SMS, "event": "UNSUBSCRIBE", "hooks": [hook]}))
}

impl Unanswered {
    /// Sends an ingest of one hook with this `hookId` (`what` names it in a failure) and answers
    /// its status; no answer at all (the client's limit, 60 s) fails the test.
    async fn ingest(&self, id: &str, what: &str) -> u16 {
        let url = self.srv.url(&self.app.path("/events"));
        let answer = one_hook_ingest(&self.client, &url, &self.app.secret, id)
            .send()
            .await;
        match answer {
            Ok(r) => r.status().as_u16(),
            Err(e) => self.srv.fail(format!("{what} got no answer: {e}")),
        }
    }

    /// Sends ingests of one hook each (`warm-1`, `warm-2`, ...) every 100 ms until aborted, so
    /// that the app key's secret key stays verified in the node's memory
    /// (`service::verified_secrets`, trusted for 1 s after the store read that confirmed it,
    /// refreshed past half of that): an ingest sent right after stays off the pool. Without
    /// it, an ingest sent more than a second after the last verified one reads the store first,
    /// on a pooled connection, and gets its 503 there without reaching an ingest writer.
    fn keep_secret_verified(&self) -> tokio::task::JoinHandle<()> {
        let (client, url, secret) = (
            self.client.clone(),
            self.srv.url(&self.app.path("/events")),
            self.app.secret.clone(),
        );
        tokio::spawn(async move {
            // Each ingest on a task of its own: a slow answer does not space the next one out.
            let mut every = tokio::time::interval(Duration::from_millis(100));
            for n in 1.. {
                every.tick().await;
                let send = one_hook_ingest(&client, &url, &secret, &format!("warm-{n}")).send();
                // Its answer does not matter: once packets are held back it never comes. The
                // task is not aborted with this one: it ends with its answer or the test.
                tokio::spawn(async move {
                    let _ = send.await;
                });
            }
        })
    }

    /// A column of `pg_stat_activity` (`pid`, `client_port`) for each of the node's two ingest
    /// writers' connections.
    async fn ingest_writers<T: std::str::FromStr>(&self, column: &str) -> Vec<T> {
        let writers: Vec<T> = self
            .srv
            .store_query_strings(
                &format!(
                    "SELECT {column}::TEXT FROM pg_stat_activity \
                     WHERE application_name LIKE '% ingest-writer-%'"
                ),
                &[],
            )
            .await
            .into_iter()
            .filter_map(|row| row.first().cloned().flatten()?.parse().ok())
            .collect();
        assert_eq!(writers.len(), 2, "the node's two ingest writers' {column}");
        writers
    }

    /// Sends the ingest of `id` again until it is accepted (503 while the node recovers, for
    /// `PROMPT` at most), then waits for its hook's delivery.
    async fn ingest_until_delivered(&self, id: &str) {
        let end = Instant::now() + PROMPT;
        loop {
            match self.ingest(id, id).await {
                202 => break,
                503 if Instant::now() < end => tokio::time::sleep(Duration::from_millis(100)).await,
                other => self
                    .srv
                    .fail(format!("the ingest of {id} answered {other}")),
            }
        }
        self.srv
            .wait_for_hook_delivery(&self.app, &self.cfg_id, id, "SUCCEEDED", PROMPT)
            .await;
    }
}

/// PostgreSQL stops answering without closing anything (its processes stopped with SIGSTOP, as
/// a frozen host or a cut-off network leaves them: the connections stay open and nothing comes
/// back). An ingest answers 503 once `--pg-statement-timeout` + `--pg-lock-timeout` + 5 s have
/// passed (here 2 + 1 + 5 s) instead of waiting as long as the database does, `/readyz` answers
/// 503, and once the database answers again the producer's retry of the same request is
/// acknowledged and its hook delivered once, whether or not the first request's group committed
/// on the way back. Stopped again, the node still stops on SIGTERM (it used to wait for the
/// database as long as it was stopped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_gets_503s_not_hangs_and_loses_nothing() {
    let Unanswered {
        pg,
        rx,
        mut srv,
        app,
        cfg_id,
        client,
    } = Unanswered::start("pg-stopped").await;
    let before = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::with_id(
                samples::hook(SMS, "UNSUBSCRIBE", 0),
                "before-stop",
            )],
        )
        .await;
    srv.wait_for_hook_delivery(&app, &cfg_id, &before[0], "SUCCEEDED", PROMPT)
        .await;

    let hook = samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", 1), "while-stopped");
    let body = json!({"productName": SMS, "event": "UNSUBSCRIBE", "hooks": [hook]});
    let events_url = srv.url(&app.path("/events"));
    let ingest = || {
        client
            .post(&events_url)
            .header("X-Secret-Key", &app.secret)
            .json(&body)
            .send()
    };

    let stopped = Stopped::cluster(&pg);
    let started = Instant::now();
    let answer = ingest().await;
    let waited = started.elapsed();
    let status = match answer {
        Ok(r) => r.status().as_u16(),
        Err(e) => srv.fail(format!("the ingest got no answer after {waited:?}: {e}")),
    };
    assert_eq!(
        status, 503,
        "an ingest the database does not answer is refused"
    );
    assert!(
        waited >= Duration::from_secs(7),
        "refused after waiting for the database (2 s + 1 s + 5 s), not at once: {waited:?}"
    );
    let ready = client.get(srv.url("/readyz")).send().await;
    match ready {
        Ok(r) => assert_eq!(
            r.status().as_u16(),
            503,
            "/readyz while the database is stopped"
        ),
        Err(e) => srv.fail(format!("/readyz got no answer: {e}")),
    }
    assert!(
        srv.stderr_all().contains("the database is not answering"),
        "the log says why: {}",
        srv.stderr_tail()
    );

    drop(stopped);
    // The producer sends the same request again until it is acknowledged.
    let end = Instant::now() + PROMPT;
    loop {
        match ingest().await {
            Ok(r) if r.status().as_u16() == 202 => break,
            Ok(r) if r.status().as_u16() == 503 && Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(r) => srv.fail(format!("the retry answered {}", r.status())),
            Err(e) => srv.fail(format!("the retry got no answer: {e}")),
        }
    }
    let (status, _) = srv.get(&Auth::None, "/readyz").await;
    assert_eq!(status.as_u16(), 200, "ready again");
    srv.wait_for_hook_delivery(&app, &cfg_id, "while-stopped", "SUCCEEDED", PROMPT)
        .await;
    let carrying = srv.list_deliveries(&app, "hookId=while-stopped").await;
    assert_eq!(
        carrying.len(),
        1,
        "one delivery holds the hook: {carrying:#?}"
    );
    assert_eq!(
        rx.hook_counts(None).get("while-stopped"),
        Some(&1),
        "delivered once"
    );

    // Stopped again, the node is asked to stop: closing the store (handing its leases back,
    // writing what is queued) gives up after the same bound, and the process exits.
    let stopped = Stopped::cluster(&pg);
    let status = srv.stop_sigterm(Duration::from_secs(40)).await;
    drop(stopped);
    assert!(status.success(), "a clean exit: {status:?}");
    assert!(
        srv.stderr_all()
            .contains("closing the store: leases perhaps not handed back"),
        "the log says what was left: {}",
        srv.stderr_tail()
    );
}

/// Only the ingest writers' connections stop answering (their server processes stopped), the
/// rest of the database answering: an ingest waits for the bound (2 + 1 + 5 s) and answers 503;
/// its writer's group stays under way, and the other writer is free (the node is still ready);
/// the next ingest goes to that one (it does not wait for the silent group any longer) and waits
/// for the bound too. From then on the node's ingest writers count as stuck, so a request is
/// refused at once instead of queueing behind them (each retry would otherwise leave another
/// copy of its hooks in memory until the database answers), and `/readyz` answers 503 although
/// reads work. Once they answer again, so does the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingests_behind_writers_that_get_no_answer_are_refused_at_once() {
    let node = Unanswered::start("writers-stopped").await;
    let (srv, app) = (&node.srv, &node.app);
    let writers: Vec<libc::pid_t> = node.ingest_writers("pid").await;

    let stopped = Stopped::stop(writers);
    for (id, what) in [
        ("first", "the first ingest"),
        ("beside", "the ingest after it"),
    ] {
        let started = Instant::now();
        let status = node.ingest(id, what).await;
        let waited = started.elapsed();
        assert_eq!(status, 503, "{what}: its writer gets no answer");
        assert!(
            waited >= Duration::from_secs(7),
            "{what}: refused after the bound (8 s), not at once: {waited:?}"
        );
        if id == "first" {
            let (ready, _) = srv.get(&Auth::None, "/readyz").await;
            assert_eq!(ready.as_u16(), 200, "one writer silent, the other free");
        }
    }
    // Counted from the group's start, a moment after the request's: the node declares itself
    // not ready once its writers have had no answer for the whole bound.
    let end = Instant::now() + PROMPT;
    while srv.get(&Auth::None, "/readyz").await.0.as_u16() != 503 {
        if Instant::now() > end {
            srv.fail("/readyz still answers 200 while the node's writers get no answer");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let second = node.ingest("refused", "the second ingest").await;
    let second_waited = started.elapsed();
    assert_eq!(second, 503, "the next ingest, while the writers are stuck");
    assert!(
        second_waited < Duration::from_secs(4),
        "refused at once, not after another 8 s: {second_waited:?}"
    );
    let (configs, _) = srv.get(&app.auth(), &app.path("/webhook-configs")).await;
    assert_eq!(configs.as_u16(), 200, "reads still work");

    drop(stopped);
    node.ingest_until_delivered("second").await;
    let (ready, _) = srv.get(&Auth::None, "/readyz").await;
    assert_eq!(ready.as_u16(), 200, "ready again");
    assert_eq!(
        srv.list_deliveries(app, "hookId=second").await.len(),
        1,
        "the request after them is delivered once"
    );
    // The refused request was not stored (it would have been written before the retry after
    // it, which is delivered).
    assert!(
        srv.list_deliveries(app, "hookId=refused").await.is_empty(),
        "the refused request was not stored"
    );
}

/// Packets to a port on this host's loopback held back until dropped: a class of 8 bits a second,
/// with a bucket of 10 bytes, for them (`tc`, htb), the rest of the loopback's traffic in a class
/// of its own at 100 Gbit/s. To its client's kernel, a connection to that port then looks like
/// one the network stopped carrying (a database failed over behind the same address, a lost
/// route): nothing it sends is acknowledged, nothing answers, and nothing closes it. (No
/// `netem` or `action drop` in this VM's kernel.) Needs root (`CAP_NET_ADMIN`), as CI runs the
/// tests. A qdisc left on `lo` by a run killed before its clean-up is taken away first.
struct Blackhole;

impl Blackhole {
    fn port(port: u16) -> Blackhole {
        drop(Blackhole);
        tc("qdisc add dev lo root handle 1: htb default 1");
        // From here on, dropping it takes the qdisc away again.
        let hole = Blackhole;
        tc("class add dev lo parent 1: classid 1:1 htb rate 100gbit");
        tc("class add dev lo parent 1: classid 1:2 htb rate 8bit ceil 8bit burst 10b cburst 10b");
        tc(&format!(
            "filter add dev lo parent 1: protocol ip prio 1 u32 match ip dport {port} 0xffff flowid 1:2"
        ));
        // A new class starts with its bucket full, and htb lets one packet of any size through
        // while any token is left: spent here on a connection attempt of the test's own (its
        // SYN), so that the next packet, the node's, waits about a minute.
        let _ = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(1),
        );
        hole
    }
}

/// How long one `tc` command may take.
const TC_LIMIT: Duration = Duration::from_secs(10);

impl Drop for Blackhole {
    fn drop(&mut self) {
        // Time limit: TC_LIMIT, then killed. Never a panic here: during a failed test's
        // unwinding it would abort the whole run.
        let Ok(mut child) = Command::new("tc")
            .args(["qdisc", "del", "dev", "lo", "root"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        else {
            return;
        };
        let end = Instant::now() + TC_LIMIT;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn tc(args: &str) {
    process::run_ok(Command::new("tc").args(args.split_whitespace()), TC_LIMIT);
}

/// Whether this host has an established TCP connection (IPv4) from local port `from` to remote
/// port `to`, from `/proc/net/tcp`.
fn established(from: u16, to: u16) -> bool {
    let port = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).any(|line| {
        let columns: Vec<&str> = line.split_whitespace().collect();
        columns.len() > 3
            && port(columns[1]) == Some(from)
            && port(columns[2]) == Some(to)
            && columns[3] == "01"
    })
}

/// The network stops carrying the node's connections to the database (packets to its port held
/// back, nothing closed). An ingest answers 503 at the bound (2 + 1 + 5 s), as when the database
/// stops answering; the kernel closes the ingest writer's connection that carried it once its
/// data has gone unacknowledged for that bound (`TCP_USER_TIMEOUT`), where it used to keep it
/// open for as long as it retransmits (about 15 minutes: every call that got it waited for the
/// bound). Once packets flow again, the node ingests and delivers on new connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_network_stopped_carrying_are_closed_and_replaced() {
    let node = Unanswered::start("blackholed").await;
    let (srv, pg) = (&node.srv, &node.pg);
    node.ingest_until_delivered("before").await;
    // The ingest writers' connections, by their local ports.
    let writers: Vec<u16> = node.ingest_writers("client_port").await;
    assert!(
        writers.iter().all(|&from| established(from, pg.port)),
        "both open: {writers:?}"
    );

    // The hole's `tc` commands may take a while on a busy machine: the secret key is kept
    // verified meanwhile, so that the ingest below goes straight to an ingest writer. A warm-up
    // ingest sent between the hole's filter and the abort is held back like it (and may spend
    // the packet the hole lets through instead of the test's connection attempt): then its
    // writer carries a statement nothing acknowledges too, which is what is tested below.
    let warm = node.keep_secret_verified();
    let port = pg.port;
    let hole = tokio::task::spawn_blocking(move || Blackhole::port(port))
        .await
        .expect("the hole's tc commands");
    warm.abort();
    let started = Instant::now();
    assert_eq!(
        node.ingest("unheard", "the ingest the network lost").await,
        503,
        "an ingest whose statement nothing acknowledges"
    );
    // Its writer sent the statement as the ingest came: the bound (8 s) later, its kernel gives
    // up. An idle writer's connection goes at its first keepalive probe, 30 s after its last
    // answer at the earliest: only a writer that carried an ingest sent after the hole (this
    // one, or a warm-up's) can close within 20 s.
    let end = started + Duration::from_secs(20);
    while writers.iter().all(|&from| established(from, pg.port)) {
        if Instant::now() > end {
            srv.fail(format!(
                "neither ingest writer's connection closed {:?} after the ingest's statement \
                 went unacknowledged",
                started.elapsed()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(hole);
    node.ingest_until_delivered("after").await;
}
