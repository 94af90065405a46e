//! The physical ceilings the benchmark compares hookline against, on this machine:
//!
//! - **HTTP**: a bare hyper client posting envelopes straight into the same sink the benchmark
//!   uses, over `connections` keep-alive connections, as fast as it can.
//! - **Store**: the embedded store's raw commit rate: one hook per commit (each awaited), and
//!   many concurrent 100-hook ingests sharing group commits. With `--database-url`, PostgreSQL's:
//!   64 clients committing one hook each (what `pgbench` would measure), and 16 clients
//!   committing 100 hooks at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hookline_wire::{Event, Product, ValidatedHook};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::{Tracker, hook_json, run_sink};
use crate::model::{Health, WebhookConfig};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// Requests/s and hooks/s of a bare hyper client into the benchmark's sink.
pub async fn http(
    hooks_per_post: usize,
    posts: usize,
    connections: usize,
) -> anyhow::Result<Value> {
    let tracker = Arc::new(Tracker::new(posts * hooks_per_post)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(run_sink(listener, tracker.clone()));

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut body = String::new();
            loop {
                let p = next.fetch_add(1, Ordering::Relaxed);
                if p >= posts {
                    return Ok::<(), anyhow::Error>(());
                }
                body.clear();
                body.push_str(r#"{"hooksId":"20240429205810Xw3kPq9LmZ0","webhookConfigId":"20240101000000AbCdEfGhIjK","productName":"SMS","appKey":"ceiling","event":"MESSAGE_RESULT_UPDATE","hooks":["#);
                for i in p * hooks_per_post..(p + 1) * hooks_per_post {
                    if i > p * hooks_per_post {
                        body.push(',');
                    }
                    hook_json(i, &mut body);
                }
                body.push_str("]}");
                let request = Request::post(format!("http://{addr}/ceiling"))
                    .header("content-type", "application/json;charset=UTF-8")
                    .header("x-toast-webhook-signature", "bench")
                    .body(Full::new(Bytes::from(body.clone())))?;
                let response = sender.send_request(request).await?;
                response.into_body().collect().await?;
            }
        }));
    }
    for task in tasks {
        task.await.context("ceiling client task")??;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "hooksPerPost": hooks_per_post,
        "connections": connections,
        "posts": posts,
        "requestsPerSec": posts as f64 / secs,
        "hooksPerSec": (posts * hooks_per_post) as f64 / secs,
    }))
}

fn ceiling_config() -> WebhookConfig {
    WebhookConfig {
        id: "ceiling-config".into(),
        app_key: "ceiling".into(),
        product: Product::Sms,
        events: vec![Event::MessageResultUpdate],
        url: "http://127.0.0.1:9/".into(),
        signature: "bench".into(),
        signing_secret: None,
        previous_signing_secret: None,
        enabled: true,
        description: String::new(),
        max_hooks_per_request: 100,
        max_requests_in_flight: 8,
        timeout_ms: 1000,
        retry_schedule: vec![Duration::from_secs(1)],
        headers: Vec::new(),
        filter: None,
        delivery_deadline: None,
        ordering_key: None,
        health: Health::default(),
        created_at: 0,
        updated_at: 0,
    }
}

fn hooks(from: usize, n: usize) -> Vec<ValidatedHook> {
    (from..from + n)
        .map(|i| {
            let mut json = String::new();
            hook_json(i, &mut json);
            ValidatedHook {
                hook_id: format!("b{i}"),
                json,
                id_generated: false,
            }
        })
        .collect()
}

/// Commits/s with one hook per awaited commit, and hooks/s with concurrent 100-hook ingests.
pub async fn store(data_dir: &std::path::Path) -> anyhow::Result<Value> {
    let store = Arc::new(SqliteStore::open(data_dir)?);
    store.insert_config(ceiling_config()).await?;

    let sequential = 3000;
    let started = Instant::now();
    for i in 0..sequential {
        store
            .ingest(
                "ceiling",
                Product::Sms,
                Event::MessageResultUpdate,
                hooks(i, 1),
            )
            .await?;
    }
    let commits_per_sec = sequential as f64 / started.elapsed().as_secs_f64();

    let (tasks, per_task, per_ingest) = (16, 125, 100);
    let started = Instant::now();
    let mut running = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        running.push(tokio::spawn(async move {
            for k in 0..per_task {
                let from = 1_000_000 + (t * per_task + k) * per_ingest;
                store
                    .ingest(
                        "ceiling",
                        Product::Sms,
                        Event::MessageResultUpdate,
                        hooks(from, per_ingest),
                    )
                    .await?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for task in running {
        task.await.context("store ceiling task")??;
    }
    let grouped = (tasks * per_task * per_ingest) as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    Ok(json!({
        "commitsPerSecOneHookEach": commits_per_sec,
        "hooksPerSecConcurrent100HookIngests": grouped,
    }))
}

/// PostgreSQL's raw commit rate of hook rows on the cluster of `url` (fresh databases).
pub async fn postgres(url: &str) -> anyhow::Result<Value> {
    let one = crate::store::postgres::commit_rate(url, 64, 1, 200, hook_json).await?;
    let grouped = crate::store::postgres::commit_rate(url, 16, 100, 50, hook_json).await?;
    Ok(json!({
        "commitsPerSecOneHookEach64Clients": one,
        "hooksPerSec100HookCommits16Clients": grouped,
    }))
}
