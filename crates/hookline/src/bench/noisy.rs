//! `hookline bench --noisy-neighbour`: does one tenant's flood slow another tenant's ingest?
//!
//! Tenant A has 100 configs subscribed to its event (each of its hooks becomes 100 queue rows)
//! and ingests flat out from `--producers` connections, `--hooks-per-request` hooks a request.
//! Beside it tenant B, with one config, sends one hook per request at 100 requests a second (on a
//! schedule, over a few connections, so a slow answer does not delay the next request). The
//! report is B's ingest latency (request sent to `202` received), B's ingest-to-receipt (request
//! sent to the sink reading the hook: what B's customer sees) and A's throughput, over
//! `--duration-secs`. Both tenants' configs point at a sink that answers `200` at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{BenchArgs, IngestTarget, Tracker, api, hook_json};

/// Configs of the noisy tenant, all subscribed to its event (the default cap per app key).
const NOISY_CONFIGS: usize = 100;
/// The quiet tenant's requests per second, one hook each.
const QUIET_RATE: u64 = 100;
/// Connections the quiet tenant spreads its requests over.
const QUIET_CONNECTIONS: u64 = 4;
/// How long B's last hooks may take to arrive after the flood stops.
const QUIET_DRAIN: Duration = Duration::from_secs(60);

/// A sink that answers `200` to everything and counts requests; the quiet tenant's deliveries
/// (its configs' URLs are under `/quiet/`) go to `quiet`, which times their hooks.
async fn sink(listener: TcpListener, requests: Arc<AtomicUsize>, quiet: Arc<Tracker>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (requests, quiet) = (requests.clone(), quiet.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (requests, quiet) = (requests.clone(), quiet.clone());
                async move {
                    let from_quiet = req.uri().path().starts_with("/quiet/");
                    let body = req.into_body().collect().await?.to_bytes();
                    if from_quiet {
                        quiet.record_body(&body);
                    }
                    requests.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An app key with `configs` configs on SMS MESSAGE_RESULT_UPDATE pointing at `sink`: its
/// events path and secret key.
async fn tenant(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    configs: usize,
    sink: &str,
) -> anyhow::Result<(String, HeaderValue)> {
    let key = api(
        client
            .post(format!("{base}/v1/appkeys"))
            .bearer_auth(token)
            .json(&json!({ "name": name })),
        "create app key",
    )
    .await?;
    let app_key = key["appKey"]["appKey"].as_str().unwrap_or("").to_owned();
    let secret = key["appKey"]["secretKey"].as_str().unwrap_or("").to_owned();
    for i in 0..configs {
        api(
            client
                .post(format!("{base}/v1/appkeys/{app_key}/webhook-configs"))
                .header("X-Secret-Key", &secret)
                .json(&json!({
                    "productName": "SMS",
                    "events": ["MESSAGE_RESULT_UPDATE"],
                    "url": format!("{sink}/{name}/{i}"),
                    "signature": "bench",
                })),
            "create webhook config",
        )
        .await?;
    }
    Ok((
        format!("/v1/appkeys/{app_key}/events"),
        HeaderValue::from_str(&secret).context("secret key header")?,
    ))
}

/// One ingest request of the hooks `ids` on `sender`; an answer other than `202` is an error.
async fn ingest(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    target: &IngestTarget,
    (path, secret): &(String, HeaderValue),
    ids: std::ops::Range<usize>,
    body: &mut String,
) -> anyhow::Result<()> {
    body.clear();
    body.push_str(r#"{"productName":"SMS","event":"MESSAGE_RESULT_UPDATE","hooks":["#);
    let first = ids.start;
    for i in ids {
        if i > first {
            body.push(',');
        }
        hook_json(i, body);
    }
    body.push_str("]}");
    let request = Request::post(path.as_str())
        .header(header::HOST, target.authority.clone())
        .header("x-secret-key", secret.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.clone())))?;
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
    Ok(())
}

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.producers == 0 || args.hooks_per_request == 0 || args.duration_secs == 0 {
        bail!("--producers, --hooks-per-request and --duration-secs must be at least 1");
    }
    let mut server = super::server_under_test(args).await?;
    // Stopped (and its scratch database dropped) however the run ends.
    let outcome = run_scenario(args, &server).await;
    server.stop().await;
    outcome
}

async fn run_scenario(args: &BenchArgs, server: &super::ServerUnderTest) -> anyhow::Result<()> {
    let (token, base) = (server.token.clone(), server.base.clone());

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let sink_url = format!("http://{}", listener.local_addr()?);
    let sink_requests = Arc::new(AtomicUsize::new(0));
    // B's hooks are numbered by their slot in its schedule (hook ids are per app key, so A's
    // may repeat them); room for every slot of the run.
    let quiet_slots = usize::try_from(args.duration_secs * QUIET_RATE)? + 1;
    let receipts = Arc::new(Tracker::new(quiet_slots)?);
    tokio::spawn(sink(listener, sink_requests.clone(), receipts.clone()));

    let client = reqwest::Client::new();
    let noisy = Arc::new(tenant(&client, &base, &token, "noisy", NOISY_CONFIGS, &sink_url).await?);
    let quiet = Arc::new(tenant(&client, &base, &token, "quiet", 1, &sink_url).await?);
    let target = IngestTarget::new(&base)?;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let until = started + Duration::from_secs(args.duration_secs);

    // Tenant A: flat out.
    let next_id = Arc::new(AtomicUsize::new(0));
    let noisy_hooks = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.producers {
        let (target, noisy, next_id, hooks, stop) = (
            target.clone(),
            noisy.clone(),
            next_id.clone(),
            noisy_hooks.clone(),
            stop.clone(),
        );
        let per = args.hooks_per_request;
        tasks.push(tokio::spawn(async move {
            let mut sender = target.connect().await?;
            let mut body = String::with_capacity(per * 560 + 128);
            while !stop.load(Ordering::Relaxed) {
                let first = next_id.fetch_add(per, Ordering::Relaxed);
                ingest(&mut sender, &target, &noisy, first..first + per, &mut body).await?;
                hooks.fetch_add(per, Ordering::Relaxed);
            }
            Ok::<(), anyhow::Error>(())
        }));
    }

    // Tenant B: one hook per request on a fixed schedule, each connection taking every
    // QUIET_CONNECTIONS-th slot.
    let latencies = Arc::new(std::sync::Mutex::new(
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
            .context("histogram bounds")?,
    ));
    let late = Arc::new(AtomicU64::new(0));
    let quiet_sent = Arc::new(AtomicUsize::new(0));
    let period = Duration::from_secs_f64(1.0 / QUIET_RATE as f64);
    for k in 0..QUIET_CONNECTIONS {
        let (target, quiet, latencies, late, receipts, sent_count) = (
            target.clone(),
            quiet.clone(),
            latencies.clone(),
            late.clone(),
            receipts.clone(),
            quiet_sent.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut sender = target.connect().await?;
            let mut body = String::with_capacity(1024);
            let mut slot = k;
            loop {
                let due = started + period * u32::try_from(slot).unwrap_or(u32::MAX);
                if due >= until {
                    return Ok(());
                }
                if Instant::now() > due {
                    // This connection's previous answer came after this slot: sent late.
                    late.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep_until(due.into()).await;
                let id = slot as usize;
                let sent = Instant::now();
                if let Some(at) = receipts.sent_at.get(id) {
                    at.store(
                        sent.duration_since(receipts.start).as_nanos() as u64,
                        Ordering::Relaxed,
                    );
                }
                ingest(&mut sender, &target, &quiet, id..id + 1, &mut body).await?;
                sent_count.fetch_add(1, Ordering::Relaxed);
                let us = sent.elapsed().as_micros() as u64;
                if let Ok(mut h) = latencies.lock() {
                    let _ = h.record(us.max(1));
                }
                slot += QUIET_CONNECTIONS;
            }
        }));
    }

    tokio::time::sleep_until(until.into()).await;
    stop.store(true, Ordering::Relaxed);
    let ingest_secs = started.elapsed().as_secs_f64();
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => bail!("a producer panicked: {e}"),
        }
    }
    let usage = server.usage();
    // B's last hooks, delivered once the flood's queue lets them (A's keeps draining). Those
    // still missing after QUIET_DRAIN are reported as such.
    let quiet_sent = quiet_sent.load(Ordering::Relaxed);
    let drain_until = Instant::now() + QUIET_DRAIN;
    while receipts.receipts.load(Ordering::Relaxed) < quiet_sent && Instant::now() < drain_until {
        tokio::select! {
            _ = receipts.done.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    let delivered = receipts
        .latencies
        .lock()
        .map(|h| h.clone())
        .map_err(|_| anyhow::anyhow!("receipt histogram poisoned"))?;
    let delivered_ms = |q: f64| delivered.value_at_quantile(q) as f64 / 1000.0;
    let missing = quiet_sent.saturating_sub(receipts.receipts.load(Ordering::Relaxed));
    let histogram = latencies
        .lock()
        .map(|h| h.clone())
        .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let noisy_hooks = noisy_hooks.load(Ordering::Relaxed);
    let report = json!({
        "scenario": "noisy-neighbour",
        "store": if args.database_url.is_some() || args.server_arg.iter().any(|a| a.contains("postgres")) { "postgres" } else if args.server.is_some() { "the server's" } else { "sqlite" },
        "seconds": ingest_secs,
        "noisy": {
            "configs": NOISY_CONFIGS,
            "producers": args.producers,
            "hooksPerRequest": args.hooks_per_request,
            "hooksPerSec": noisy_hooks as f64 / ingest_secs,
            "queueRowsPerSec": (noisy_hooks * NOISY_CONFIGS) as f64 / ingest_secs,
        },
        "quiet": {
            "requestsPerSec": QUIET_RATE,
            "requests": histogram.len(),
            "lateRequests": late.load(Ordering::Relaxed),
            "ingestLatencyMs": {
                "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99),
                "max": histogram.max() as f64 / 1000.0,
            },
            "ingestToReceiptMs": {
                "p50": delivered_ms(0.5), "p90": delivered_ms(0.9), "p99": delivered_ms(0.99),
                "max": delivered.max() as f64 / 1000.0,
            },
            "notReceived": missing,
        },
        "sinkRequests": sink_requests.load(Ordering::Relaxed),
        "serverCpuSeconds": usage.map(|u| u.0),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let f = |v: &Value| v.as_f64().unwrap_or(0.0);
        println!(
            "noisy neighbour, {:.0} s on {}",
            ingest_secs, report["store"]
        );
        println!(
            "  A ({NOISY_CONFIGS} configs, {} producers x {} hooks/request)  {:>8.0} hooks/s  \
             ({:.0} queue rows/s)",
            args.producers,
            args.hooks_per_request,
            f(&report["noisy"]["hooksPerSec"]),
            f(&report["noisy"]["queueRowsPerSec"])
        );
        println!(
            "  B (1 config, 1 hook/request at {QUIET_RATE}/s)  ingest ms  p50 {:.2}  p90 {:.2}  \
             p99 {:.2}  max {:.2}  ({} requests, {} sent late)",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            histogram.max() as f64 / 1000.0,
            histogram.len(),
            late.load(Ordering::Relaxed)
        );
        println!(
            "  B ingest-to-receipt ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}{}",
            delivered_ms(0.5),
            delivered_ms(0.9),
            delivered_ms(0.99),
            delivered.max() as f64 / 1000.0,
            if missing > 0 {
                format!(
                    "  ({missing} not received {} s after the flood)",
                    QUIET_DRAIN.as_secs()
                )
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
