//! `hookline listen`: a local receiver for development. It checks the static signature (and a
//! Standard Webhooks signature when given a secret), answers 401 to a bad one, pretty-prints every
//! envelope whatever its product, and marks hooks it has seen before (retries, redeliveries).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::Args;
use hookline_wire::Envelope;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct ListenArgs {
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The signature the webhook config sends in X-Toast-Webhook-Signature; requests without it
    /// are answered 401.
    #[arg(long)]
    pub signature: Option<String>,
    /// Also verify Standard Webhooks signatures with this whsec_ secret.
    #[arg(long)]
    pub signing_secret: Option<String>,
    /// Answer this fraction of requests (0.0 to 1.0) with 500, to watch retries.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Print one line per delivery instead of the whole envelope.
    #[arg(long)]
    pub quiet: bool,
}

struct ListenState {
    signature: Option<String>,
    signing_secret: Option<String>,
    fail_rate: f64,
    quiet: bool,
    seen: Mutex<HashSet<String>>,
}

pub async fn listen(args: ListenArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.fail_rate) {
        bail!("--fail-rate: {} is not between 0.0 and 1.0", args.fail_rate);
    }
    let state = Arc::new(ListenState {
        signature: args.signature,
        signing_secret: args.signing_secret,
        fail_rate: args.fail_rate,
        quiet: args.quiet,
        seen: Mutex::new(HashSet::new()),
    });
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(state);
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .context("--host/--port: not an address")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!(
        "hookline listen: receiving webhooks on http://{}/ (Ctrl-C to stop)",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn receive(
    State(state): State<Arc<ListenState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let now = chrono::Local::now().format("%H:%M:%S%.3f");
    if let Some(expected) = &state.signature {
        let got = headers
            .get(hookline_wire::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !hookline_wire::verify_static_signature(got, expected) {
            println!("{now}  REJECTED: X-Toast-Webhook-Signature does not match (answered 401)");
            return (StatusCode::UNAUTHORIZED, "bad signature".into());
        }
    }
    if let Some(secret) = &state.signing_secret {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let timestamp = header("webhook-timestamp").parse::<i64>().unwrap_or(0);
        if let Err(e) = hookline_wire::standard_webhooks::verify(
            secret,
            &header("webhook-id"),
            timestamp,
            &body,
            &header("webhook-signature"),
            chrono::Utc::now().timestamp(),
            300,
        ) {
            println!("{now}  REJECTED: webhook-signature: {e} (answered 401)");
            return (StatusCode::UNAUTHORIZED, "bad webhook-signature".into());
        }
    }
    let envelope = match Envelope::parse(&body) {
        Ok(envelope) => envelope,
        Err(e) => {
            println!("{now}  REJECTED: not an envelope: {e} (answered 400)");
            return (StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    if state.fail_rate > 0.0 && rand::random::<f64>() < state.fail_rate {
        println!(
            "{now}  {}  simulated failure (answered 500)",
            envelope.hooks_id
        );
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "simulated failure".into(),
        );
    }
    let test = headers.contains_key("x-hookline-test");
    let duplicates = {
        let mut seen = state.seen.lock().unwrap_or_else(|e| e.into_inner());
        envelope
            .hooks
            .iter()
            .filter_map(|h| h.get("hookId").and_then(Value::as_str))
            .filter(|id| !seen.insert((*id).to_owned()))
            .count()
    };
    println!(
        "{now}  {} {} {}  hooksId={}  config={}  {} hook(s){}",
        envelope.product_name,
        envelope.event,
        envelope.app_key,
        envelope.hooks_id,
        envelope.webhook_config_id,
        envelope.hooks.len(),
        if duplicates > 0 {
            format!("  ({duplicates} seen before: a retry or redelivery)")
        } else {
            String::new()
        }
    );
    if test {
        println!("    (a test delivery: X-Hookline-Test: true)");
    }
    if !state.quiet {
        for hook in &envelope.hooks {
            let text = serde_json::to_string_pretty(hook).unwrap_or_default();
            for line in text.lines() {
                println!("    {line}");
            }
        }
    }
    (StatusCode::OK, "ok".into())
}
