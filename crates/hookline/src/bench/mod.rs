//! `hookline bench`: a load generator and a sink in one process, measuring a real server.
//!
//! It starts a server (or targets one), runs a cheap hyper sink on loopback, creates configs,
//! ingests hooks from concurrent producers (open throttle or a fixed rate; each producer posts on
//! one keep-alive HTTP/1 connection of a bare hyper client), waits until every
//! hook has been received, and reports ingest and end-to-end throughput, ingest-to-receipt
//! latency (HDR histogram), duplicates and losses, and the server's CPU time and peak RSS.
//!
//! Hooks carry producer-given ids `b<index>`; the sink finds them in the body with a byte scan
//! (no JSON parse) and looks up when each was sent, so measuring costs the sink almost nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;

mod ceiling;
mod noisy;
mod suite;

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Target a running server instead of starting one (needs --admin-token; --server-pid
    /// lets the bench read its CPU time and RSS).
    #[arg(long)]
    pub server: Option<String>,
    #[arg(long, env = "HOOKLINE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Data dir of the server the bench starts (default: a fresh temporary dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Extra arguments for the server the bench starts (e.g. "--database-url=postgres://...").
    #[arg(long, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// Servers to start on one PostgreSQL database (needs --database-url): several nodes
    /// sharing the work, as in production. The producers are spread over them; CPU is their sum,
    /// RSS the largest.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Webhook configs. Each has its own app key and receives its share of the hooks.
    #[arg(long, default_value_t = 1)]
    pub configs: usize,
    /// Hooks to ingest in all.
    #[arg(long, default_value_t = 100_000)]
    pub hooks: usize,
    /// Concurrent producers.
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    /// Hooks per ingest request.
    #[arg(long, default_value_t = 100)]
    pub hooks_per_request: usize,
    /// Fixed ingest rate in hooks/s (0: as fast as the server accepts).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// The configs' maxHooksPerRequest (default: the config's default, as a customer creates it).
    #[arg(long)]
    pub max_hooks_per_request: Option<u32>,
    /// The configs' maxRequestsInFlight (default: the config's default).
    #[arg(long)]
    pub max_requests_in_flight: Option<u32>,
    /// A filter (JSON) every config gets, to measure what filters cost at ingest. It must pass
    /// the bench's hooks (SMS MESSAGE_RESULT_UPDATE samples), or the run waits for deliveries
    /// that never come.
    #[arg(long)]
    pub filter: Option<String>,
    /// An `orderingKey` every config gets (e.g. `recipientNo`: the bench's hooks cycle through
    /// 1,000 recipients), to measure what ordering costs.
    #[arg(long)]
    pub ordering_key: Option<String>,
    /// Run the server on PostgreSQL: a fresh database is created on this cluster for the run
    /// (`postgres://user@host:port/any-database`). Unset: the embedded store.
    #[arg(long, env = "HOOKLINE_BENCH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Run the documented scenario set (BENCHMARKS.md) three times each on this store and print
    /// the medians as table rows.
    #[arg(long)]
    pub suite: bool,
    /// Build a backlog first: the sink is down while every hook is ingested, then comes up and
    /// the drain is measured.
    #[arg(long)]
    pub backlog: bool,
    /// Give every tenant a second config whose receiver accepts connections and never answers,
    /// to show that a hanging receiver does not slow the healthy configs down.
    #[arg(long)]
    pub hanging_configs: bool,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Run the noisy-neighbour scenario instead: tenant A (100 configs on its event) ingests
    /// flat out from --producers connections with --hooks-per-request hooks a request, beside
    /// tenant B sending one hook a request at 100 requests/s; reports B's ingest latency and A's
    /// throughput over --duration-secs.
    #[arg(long)]
    pub noisy_neighbour: bool,
    /// How long the noisy-neighbour scenario runs, in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// Measure the machine's ceilings instead: a bare hyper client into the same sink, and the
    /// embedded store's raw commit rate.
    #[arg(long)]
    pub ceiling: bool,
}

/// What the sink and the producers share.
struct Tracker {
    start: Instant,
    /// Nanoseconds after `start` when each hook's ingest request was sent (0: not yet).
    sent_at: Vec<AtomicU64>,
    /// Receipts per hook.
    received: Vec<AtomicU32>,
    receipts: AtomicUsize,
    sink_requests: AtomicUsize,
    latencies: std::sync::Mutex<hdrhistogram::Histogram<u64>>,
    done: tokio::sync::Notify,
    expected: usize,
    sink_up: AtomicBool,
}

impl Tracker {
    fn new(expected: usize) -> anyhow::Result<Self> {
        Ok(Tracker {
            start: Instant::now(),
            sent_at: (0..expected).map(|_| AtomicU64::new(0)).collect(),
            received: (0..expected).map(|_| AtomicU32::new(0)).collect(),
            receipts: AtomicUsize::new(0),
            sink_requests: AtomicUsize::new(0),
            latencies: std::sync::Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .context("histogram bounds")?,
            ),
            done: tokio::sync::Notify::new(),
            expected,
            sink_up: AtomicBool::new(false),
        })
    }

    fn record_body(&self, body: &[u8]) {
        let now = self.start.elapsed().as_nanos() as u64;
        let mut local = Vec::with_capacity(128);
        let needle = b"\"hookId\":\"b";
        let mut i = 0;
        while let Some(pos) = find(&body[i..], needle) {
            let mut j = i + pos + needle.len();
            let mut n: usize = 0;
            while j < body.len() && body[j].is_ascii_digit() {
                n = n * 10 + usize::from(body[j] - b'0');
                j += 1;
            }
            i = j;
            let Some(sent) = self.sent_at.get(n) else {
                continue;
            };
            let previous = self.received[n].fetch_add(1, Ordering::Relaxed);
            if previous == 0 {
                let sent = sent.load(Ordering::Relaxed);
                local.push(now.saturating_sub(sent) / 1000);
            }
        }
        if !local.is_empty() {
            if let Ok(mut h) = self.latencies.lock() {
                for us in &local {
                    let _ = h.record(*us);
                }
            }
            let total = self.receipts.fetch_add(local.len(), Ordering::Relaxed) + local.len();
            if total >= self.expected {
                self.done.notify_waiters();
            }
        }
        self.sink_requests.fetch_add(1, Ordering::Relaxed);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn run_sink(listener: TcpListener, tracker: Arc<Tracker>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tracker = tracker.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let tracker = tracker.clone();
                async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    tracker.record_body(&body);
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A server process the bench started.
struct Spawned {
    child: tokio::process::Child,
    _data_dir: Option<tempfile::TempDir>,
}

/// The server a run measures: another build's, given by `--server` (e.g. to compare before a
/// change), or the `--nodes` this binary starts.
struct ServerUnderTest {
    token: String,
    /// Where the run's set-up (app keys, configs) is sent: the first node.
    base: String,
    /// Every node, the first included: producers are spread over them.
    bases: Vec<String>,
    /// The servers started here (stopped when dropped); none with `--server`.
    spawned: Vec<Spawned>,
    /// The processes whose CPU and RSS are reported.
    pids: Vec<u32>,
    /// The PostgreSQL database made for this run (`--database-url`, and its name), dropped by
    /// [`ServerUnderTest::stop`].
    scratch_database: Option<(String, String)>,
}

impl ServerUnderTest {
    /// CPU seconds of all the nodes and the largest peak RSS, once every one answered.
    fn usage(&self) -> Option<(f64, u64)> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().try_fold((0.0, 0), |(cpu, rss), pid| {
            let (c, r) = process_usage(*pid)?;
            Some((cpu + c, rss.max(r)))
        })
    }

    /// Stops the servers started here, each as an operator would (SIGTERM, then its drain).
    async fn stop(&mut self) {
        for spawned in &mut self.spawned {
            if let Some(pid) = spawned.child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
        }
        for spawned in &mut self.spawned {
            let _ = tokio::time::timeout(Duration::from_secs(35), spawned.child.wait()).await;
        }
        if let Some((url, name)) = self.scratch_database.take()
            && let Err(e) = crate::store::postgres::drop_scratch_database(&url, &name).await
        {
            eprintln!("warning: the benchmark's database {name} was not dropped: {e}");
        }
    }
}

async fn server_under_test(args: &BenchArgs) -> anyhow::Result<ServerUnderTest> {
    let token = args
        .admin_token
        .clone()
        .unwrap_or_else(|| crate::service::credentials::new_secret(32));
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if args.nodes > 1 && (args.database_url.is_none() || args.server.is_some()) {
        bail!("--nodes above 1 needs --database-url (the nodes share one PostgreSQL database)");
    }
    match &args.server {
        Some(url) => {
            if args.admin_token.is_none() {
                bail!("--server needs --admin-token (or HOOKLINE_ADMIN_TOKEN)");
            }
            let base = url.trim_end_matches('/').to_owned();
            Ok(ServerUnderTest {
                token,
                bases: vec![base.clone()],
                base,
                spawned: Vec::new(),
                pids: args.server_pid.into_iter().collect(),
                scratch_database: None,
            })
        }
        None => {
            let mut server_args = args.server_arg.clone();
            let mut scratch_database = None;
            if let Some(url) = &args.database_url {
                // A fresh database per run: no run sees another's rows or its autovacuum debt.
                let name = crate::store::postgres::create_scratch_database(url)
                    .await
                    .context("cannot create the benchmark's database (--database-url)")?;
                server_args.push(format!("--database-url={}", with_database(url, &name)));
                scratch_database = Some((url.clone(), name));
            }
            let mut server = ServerUnderTest {
                token,
                base: String::new(),
                bases: Vec::new(),
                spawned: Vec::new(),
                pids: Vec::new(),
                scratch_database,
            };
            for _ in 0..args.nodes {
                let (base, spawned) = match start_server(args, &server_args, &server.token).await {
                    Ok(started) => started,
                    Err(e) => {
                        server.stop().await;
                        return Err(e);
                    }
                };
                server.pids.extend(spawned.child.id());
                server.bases.push(base);
                server.spawned.push(spawned);
            }
            server.base = server.bases.first().cloned().context("no node started")?;
            Ok(server)
        }
    }
}

/// Starts one `hookline serve` with `server_args`, in its own data dir (the given one for a
/// single node).
async fn start_server(
    args: &BenchArgs,
    server_args: &[String],
    token: &str,
) -> anyhow::Result<(String, Spawned)> {
    let exe = std::env::current_exe().context("cannot find the hookline binary")?;
    let temp = match &args.data_dir {
        Some(_) if args.nodes == 1 => None,
        _ => Some(tempfile::tempdir()?),
    };
    let data_dir = args
        .data_dir
        .clone()
        .filter(|_| args.nodes == 1)
        .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()))
        .context("no data dir")?;
    let mut child = tokio::process::Command::new(exe)
        .arg("serve")
        .arg("--listen=127.0.0.1:0")
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg("--allow-private-targets")
        .args(server_args)
        .env("HOOKLINE_ADMIN_TOKEN", token)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start hookline serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("hookline listening on ") {
                return Ok::<_, anyhow::Error>(url.trim().to_owned());
            }
        }
        bail!("the server exited before it was ready")
    })
    .await
    .context("the server did not become ready in 30 s")??;
    Ok((
        url,
        Spawned {
            child,
            _data_dir: temp,
        },
    ))
}

/// CPU seconds (user + system) and peak RSS in bytes of a process, from /proc.
fn process_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let ticks = 100.0; // USER_HZ on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(((utime + stime) / ticks, hwm_kb * 1024))
}

fn current_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Distinct recipients the bench's hooks cycle through (the keys of `--ordering-key recipientNo`).
const RECIPIENTS: usize = 1000;

/// One realistic SMS MESSAGE_RESULT_UPDATE hook with the bench's id, to one of [`RECIPIENTS`].
fn hook_json(index: usize, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(
        out,
        r#"{{"hookId":"b{index}","senderType":"NORMAL_SMS","requestId":"20240429205802y0Tl7Gbz0e0","recipientSeq":{seq},"requestDate":"2024-04-29T20:58:02","receiveDate":"2024-04-29T20:58:04","sendNo":"15446859","recipientNo":"0101234{recipient:04}","messageStatus":"COMPLETED","recipientGroupingKey":"RecipientGroupingKey","senderGroupingKey":"SenderGroupingKey","resultCode":"1000","messageCount":1,"_links":{{"self":{{"href":"https://api-sms.cloud.toast.com/sms/v2.4/appKeys/x/sender/sms/20240429205802y0Tl7Gbz0e0?recipientSeq={seq}"}}}}}}"#,
        seq = index % 1000 + 1,
        recipient = index % RECIPIENTS,
    );
}

struct Tenant {
    app_key: String,
    secret_key: String,
}

async fn api(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{what}: {status}: {body}");
    }
    Ok(body)
}

/// Where producers send ingest requests: the server's address, for bare HTTP/1 connections.
#[derive(Clone)]
struct IngestTarget {
    /// `host:port`, for connecting and for the `Host` header.
    authority: HeaderValue,
    address: String,
}

impl IngestTarget {
    fn new(base: &str) -> anyhow::Result<Self> {
        let uri: hyper::Uri = base.parse().with_context(|| format!("server URL {base}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("the producers speak plain HTTP/1: --server must be an http:// URL, not {base}");
        }
        let host = uri.host().context("server URL without a host")?;
        let address = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        Ok(IngestTarget {
            authority: HeaderValue::from_str(&address).context("server address")?,
            address,
        })
    }

    /// A new keep-alive connection (requests go one after the other on it).
    async fn connect(
        &self,
    ) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(&self.address)
            .await
            .with_context(|| format!("cannot connect to {}", self.address))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.ceiling {
        return run_ceiling(&args).await;
    }
    if args.suite {
        return suite::run(&args).await;
    }
    if args.noisy_neighbour {
        return noisy::run(&args).await;
    }
    if args.configs == 0 || args.hooks == 0 || args.producers == 0 || args.hooks_per_request == 0 {
        bail!("--configs, --hooks, --producers and --hooks-per-request must be at least 1");
    }
    let mut server = server_under_test(&args).await?;
    // Stopped (and its scratch database dropped) however the run ends.
    let outcome = run_scenario(&args, &server).await;
    server.stop().await;
    outcome
}

/// One scenario against a started server: set-up, load, the wait for every hook, the report.
async fn run_scenario(args: &BenchArgs, server: &ServerUnderTest) -> anyhow::Result<()> {
    let (token, base) = (server.token.clone(), server.base.clone());
    let pid = server.pids.first().copied();

    // The sink: bound now so configs can point at it; it accepts only once `sink_up`.
    let sink_socket = tokio::net::TcpSocket::new_v4()?;
    sink_socket.set_reuseaddr(true)?;
    sink_socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let sink_addr = sink_socket.local_addr()?;
    let expected = args.hooks;
    let tracker = Arc::new(Tracker::new(expected)?);
    let start_sink = |socket: tokio::net::TcpSocket| -> anyhow::Result<()> {
        let listener = socket.listen(1024)?;
        tracker.sink_up.store(true, Ordering::Relaxed);
        tokio::spawn(run_sink(listener, tracker.clone()));
        Ok(())
    };
    let mut held_socket = Some(sink_socket);
    if !args.backlog
        && let Some(socket) = held_socket.take()
    {
        start_sink(socket)?;
    }

    // A black hole: accepts connections, reads whatever comes, never answers.
    let black_hole = if args.hanging_configs {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        });
        Some(addr)
    } else {
        None
    };

    // Tenants and configs.
    let filter: Option<serde_json::Value> = match &args.filter {
        Some(text) => Some(
            serde_json::from_str(text).map_err(|e| anyhow::anyhow!("--filter: not JSON: {e}"))?,
        ),
        None => None,
    };
    let client = reqwest::Client::new();
    let mut tenants = Vec::with_capacity(args.configs);
    for i in 0..args.configs {
        let key = api(
            client
                .post(format!("{base}/v1/appkeys"))
                .bearer_auth(&token)
                .json(&json!({"name": format!("bench-{i}")})),
            "create app key",
        )
        .await?;
        let tenant = Tenant {
            app_key: key["appKey"]["appKey"].as_str().unwrap_or("").to_owned(),
            secret_key: key["appKey"]["secretKey"].as_str().unwrap_or("").to_owned(),
        };
        let config = |url: String| {
            let mut config = json!({
                "productName": "SMS",
                "events": ["MESSAGE_RESULT_UPDATE"],
                "url": url,
                "signature": "bench",
                "timeoutMs": 30000,
                // Short first delays so a backlog drains soon after the sink comes up.
                "retrySchedule": ["1s", "1s", "2s", "5s", "10s", "30s", "1m", "5m", "10m",
                                  "30m", "1h", "2h", "4h", "8h"],
            });
            // Unset: the config's defaults, as a customer creates it.
            if let Some(n) = args.max_hooks_per_request {
                config["maxHooksPerRequest"] = json!(n);
            }
            if let Some(n) = args.max_requests_in_flight {
                config["maxRequestsInFlight"] = json!(n);
            }
            if let Some(filter) = &filter {
                config["filter"] = filter.clone();
            }
            if let Some(field) = &args.ordering_key {
                config["orderingKey"] = json!(field);
            }
            config
        };
        let mut urls = vec![format!("http://{sink_addr}/c{i}")];
        urls.extend(black_hole.map(|hole| format!("http://{hole}/hang{i}")));
        for url in urls {
            api(
                client
                    .post(format!(
                        "{base}/v1/appkeys/{}/webhook-configs",
                        tenant.app_key
                    ))
                    .header("X-Secret-Key", &tenant.secret_key)
                    .json(&config(url)),
                "create webhook config",
            )
            .await?;
        }
        tenants.push(tenant);
    }
    let tenants = Arc::new(tenants);

    let bar = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(expected as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>9} {bar:40} {pos}/{len} hooks  {per_sec}  {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    };

    // Producers: each on one keep-alive HTTP/1 connection of a bare hyper client, so that the
    // load driver takes as little as it can of the machine it measures.
    let targets = server
        .bases
        .iter()
        .map(|base| IngestTarget::new(base))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let requests = Arc::new(
        tenants
            .iter()
            .map(|t| {
                Ok((
                    format!("/v1/appkeys/{}/events", t.app_key),
                    HeaderValue::from_str(&t.secret_key).context("secret key header")?,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let requests_total = expected.div_ceil(args.hooks_per_request);
    let next_request = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let ingest_started = Instant::now();
    let mut producers = Vec::new();
    for producer in 0..args.producers {
        // Spread over the nodes, as a load balancer in front of them would.
        let target = targets[producer % targets.len()].clone();
        let requests = requests.clone();
        let tracker = tracker.clone();
        let next_request = next_request.clone();
        let accepted = accepted.clone();
        let per = args.hooks_per_request;
        let rate = args.rate;
        producers.push(tokio::spawn(async move {
            let mut sender = target.connect().await?;
            let mut body = String::with_capacity(per * 560 + 128);
            loop {
                let r = next_request.fetch_add(1, Ordering::Relaxed);
                if r >= requests_total {
                    return Ok::<(), anyhow::Error>(());
                }
                let first = r * per;
                let last = (first + per).min(expected);
                if rate > 0 {
                    let due = ingest_started + Duration::from_secs_f64(first as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                // Spread requests over the tenants; each request goes to one tenant.
                let (path, secret) = &requests[r % requests.len()];
                body.clear();
                body.push_str(r#"{"productName":"SMS","event":"MESSAGE_RESULT_UPDATE","hooks":["#);
                for i in first..last {
                    if i > first {
                        body.push(',');
                    }
                    hook_json(i, &mut body);
                }
                body.push_str("]}");
                let request = Request::post(path.as_str())
                    .header(header::HOST, target.authority.clone())
                    .header("x-secret-key", secret.clone())
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body.clone())))?;
                let sent = tracker.start.elapsed().as_nanos() as u64;
                for i in first..last {
                    tracker.sent_at[i].store(sent, Ordering::Relaxed);
                }
                sender.ready().await.context("ingest connection")?;
                let response = sender
                    .send_request(request)
                    .await
                    .context("ingest request")?;
                let status = response.status();
                let answer = response.into_body().collect().await?.to_bytes();
                if status.as_u16() != 202 {
                    bail!(
                        "ingest answered {status}: {}",
                        String::from_utf8_lossy(&answer)
                    );
                }
                accepted.fetch_add(last - first, Ordering::Relaxed);
            }
        }));
    }

    // Progress and peak RSS while producers run and deliveries drain.
    let mut peak_rss_backlog: u64 = 0;
    let mut ingest_done_at: Option<Duration> = None;
    let mut sink_started_at: Option<Duration> = None;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    loop {
        let received = tracker.receipts.load(Ordering::Relaxed);
        let acc = accepted.load(Ordering::Relaxed);
        if ingest_done_at.is_none() && acc >= expected {
            ingest_done_at = Some(ingest_started.elapsed());
            if let Some(socket) = held_socket.take() {
                // Backlog built: bring the sink up and measure the drain.
                if let Some(pid) = pid {
                    peak_rss_backlog = peak_rss_backlog.max(current_rss(pid).unwrap_or(0));
                }
                sink_started_at = Some(ingest_started.elapsed());
                start_sink(socket)?;
            }
        }
        if let Some(pid) = pid
            && held_socket.is_some()
        {
            peak_rss_backlog = peak_rss_backlog.max(current_rss(pid).unwrap_or(0));
        }
        bar.set_message(if acc < expected {
            "ingesting"
        } else {
            "draining"
        });
        bar.set_position(received as u64);
        if received >= expected {
            break;
        }
        if producers.iter().any(|p| p.is_finished()) {
            // Surface a producer's error at once.
            for p in producers.iter_mut().filter(|p| p.is_finished()) {
                if let Ok(Err(e)) = p.await {
                    bar.abandon();
                    return Err(e);
                }
            }
            producers.retain(|p| !p.is_finished());
        }
        if Instant::now() > deadline {
            bar.abandon();
            bail!(
                "timed out after {} s: {received} of {expected} hooks received",
                args.timeout_secs
            );
        }
        tokio::select! {
            _ = tracker.done.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let end_to_end = ingest_started.elapsed();
    bar.finish_and_clear();

    // A short grace period shows duplicates that were already in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let usage = server.usage();
    let duplicates: u64 = tracker
        .received
        .iter()
        .map(|r| u64::from(r.load(Ordering::Relaxed).saturating_sub(1)))
        .sum();
    let lost = tracker
        .received
        .iter()
        .filter(|r| r.load(Ordering::Relaxed) == 0)
        .count();
    let sink_requests = tracker.sink_requests.load(Ordering::Relaxed);
    let histogram = tracker
        .latencies
        .lock()
        .map(|h| h.clone())
        .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let ingest_secs = ingest_done_at.unwrap_or(end_to_end).as_secs_f64();
    let delivery_secs = match sink_started_at {
        Some(at) => (end_to_end - at).as_secs_f64(),
        None => end_to_end.as_secs_f64(),
    };
    let report = json!({
        "hooks": expected,
        "configs": args.configs,
        "nodes": args.nodes,
        "producers": args.producers,
        "hooksPerIngestRequest": args.hooks_per_request,
        "maxHooksPerRequest": args.max_hooks_per_request,
        "maxRequestsInFlight": args.max_requests_in_flight,
        "filter": args.filter.is_some(),
        "orderingKey": args.ordering_key,
        "store": if args.database_url.is_some() { "postgres" } else { "sqlite" },
        "rate": args.rate,
        "backlog": args.backlog,
        "hangingConfigs": args.hanging_configs,
        "ingestHooksPerSec": expected as f64 / ingest_secs,
        "endToEndHooksPerSec": expected as f64 / delivery_secs,
        "sinkRequestsPerSec": sink_requests as f64 / delivery_secs,
        "sinkRequests": sink_requests,
        "seconds": end_to_end.as_secs_f64(),
        "drainSeconds": sink_started_at.map(|_| delivery_secs),
        "latencyMs": {
            "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99),
            "max": histogram.max() as f64 / 1000.0,
        },
        "duplicates": duplicates,
        "lost": lost,
        "serverCpuSeconds": usage.map(|u| u.0),
        "serverCpuMsPerHook": usage.map(|u| u.0 * 1000.0 / expected as f64),
        "serverPeakRssMiB": usage.map(|u| u.1 as f64 / 1_048_576.0),
        "serverRssDuringBacklogMiB": (peak_rss_backlog > 0).then(|| peak_rss_backlog as f64 / 1_048_576.0),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} hooks, {} config(s), {} producer(s) x {} hooks/request{}{}{}",
            expected,
            args.configs,
            args.producers,
            args.hooks_per_request,
            if args.rate > 0 {
                format!(", fixed rate {} hooks/s", args.rate)
            } else {
                String::new()
            },
            if args.hanging_configs {
                ", plus a hanging config per tenant"
            } else {
                ""
            },
            if args.nodes > 1 {
                format!(", {} nodes on one database", args.nodes)
            } else {
                String::new()
            }
        );
        println!(
            "  ingest accepted     {:>10.0} hooks/s",
            expected as f64 / ingest_secs
        );
        println!(
            "  end to end          {:>10.0} hooks/s  ({:.0} requests/s at the sink, {} requests){}",
            expected as f64 / delivery_secs,
            sink_requests as f64 / delivery_secs,
            sink_requests,
            if sink_started_at.is_some() {
                format!(", drain {delivery_secs:.1} s")
            } else {
                String::new()
            }
        );
        println!(
            "  latency ms          p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            histogram.max() as f64 / 1000.0
        );
        println!("  duplicates {duplicates}  lost {lost}");
        if let Some((cpu, rss)) = usage {
            println!(
                "  server CPU {:.2} s ({:.4} ms/hook)  peak RSS {:.1} MiB{}",
                cpu,
                cpu * 1000.0 / expected as f64,
                rss as f64 / 1_048_576.0,
                if peak_rss_backlog > 0 {
                    format!(
                        "  (RSS with backlog {:.1} MiB)",
                        peak_rss_backlog as f64 / 1_048_576.0
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    if lost > 0 {
        bail!("{lost} hooks were not received");
    }
    Ok(())
}

async fn run_ceiling(args: &BenchArgs) -> anyhow::Result<()> {
    let batched = ceiling::http(100, (args.hooks / 100).max(1), 8).await?;
    let single = ceiling::http(1, args.hooks.min(200_000), 8).await?;
    let single_64 = ceiling::http(1, args.hooks.min(200_000), 64).await?;
    let store = match &args.database_url {
        Some(url) => ceiling::postgres(url).await?,
        None => {
            let dir = tempfile::tempdir()?;
            ceiling::store(args.data_dir.as_deref().unwrap_or(dir.path())).await?
        }
    };
    let report = json!({
        "httpBatched": batched,
        "httpOneHookPerPost": single,
        "httpOneHookPerPost64Connections": single_64,
        "store": store,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let f = |v: &Value| v.as_f64().unwrap_or(0.0);
        println!("ceiling on this machine (bare hyper client -> the bench sink)");
        println!(
            "  100 hooks/POST, 8 connections    {:>10.0} requests/s  {:>10.0} hooks/s",
            f(&batched["requestsPerSec"]),
            f(&batched["hooksPerSec"])
        );
        println!(
            "  1 hook/POST, 8 connections       {:>10.0} requests/s",
            f(&single["requestsPerSec"])
        );
        println!(
            "  1 hook/POST, 64 connections      {:>10.0} requests/s",
            f(&single_64["requestsPerSec"])
        );
        match &args.database_url {
            Some(_) => {
                println!("store (PostgreSQL, durable commits, one statement per transaction)");
                println!(
                    "  64 clients, one hook per commit  {:>10.0} commits/s",
                    f(&store["commitsPerSecOneHookEach64Clients"])
                );
                println!(
                    "  16 clients, 100 hooks per commit {:>10.0} hooks/s",
                    f(&store["hooksPerSec100HookCommits16Clients"])
                );
            }
            None => {
                println!("store (SQLite, WAL, synchronous=NORMAL)");
                println!(
                    "  one hook per awaited commit      {:>10.0} commits/s",
                    f(&store["commitsPerSecOneHookEach"])
                );
                println!(
                    "  16 x 100-hook ingests            {:>10.0} hooks/s",
                    f(&store["hooksPerSecConcurrent100HookIngests"])
                );
            }
        }
    }
    Ok(())
}
