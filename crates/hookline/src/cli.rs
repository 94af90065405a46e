//! The command line: `serve`, `listen` (a local receiver), `emit` (sample events) and `admin`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::{Args, Parser, Subcommand};
use hookline_wire::{Envelope, Event, Product};
use serde_json::{Value, json};

use crate::serve::ServeArgs;

#[derive(Debug, Parser)]
#[command(
    name = "hookline",
    version,
    about = "Webhook delivery for messaging platforms: ingest events, deliver them in the \
             platform's wire format, retry, and log every attempt."
)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "HOOKLINE_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: API, delivery engine, embedded store.
    Serve(ServeArgs),
    /// Run a local receiver that checks the signature and pretty-prints every envelope.
    Listen(ListenArgs),
    /// Send realistic sample events to a server.
    Emit(EmitArgs),
    /// Manage app keys and webhook configs of a running server.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Measure throughput, latency and cost: starts a server, a sink and producers.
    Bench(crate::bench::BenchArgs),
}

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

#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// The hookline server.
    #[arg(long, env = "HOOKLINE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
}

#[derive(Debug, Args)]
pub struct AppKeyCredentials {
    #[arg(long, env = "HOOKLINE_APP_KEY")]
    pub app_key: String,
    #[arg(long, env = "HOOKLINE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: String,
}

#[derive(Debug, Args)]
pub struct EmitArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub credentials: AppKeyCredentials,
    /// SMS or "KakaoTalk Bizmessage".
    #[arg(long, default_value = "SMS")]
    pub product: String,
    #[arg(long, default_value = "MESSAGE_RESULT_UPDATE")]
    pub event: String,
    /// How many hooks to send in all.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Hooks per ingest request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an app key (needs the admin token); prints its secret key once.
    CreateAppKey {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        admin: AdminToken,
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List app keys (needs the admin token).
    ListAppKeys {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        admin: AdminToken,
    },
    /// Create a webhook config for an app key.
    CreateConfig {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        credentials: AppKeyCredentials,
        #[arg(long, default_value = "SMS")]
        product: String,
        /// Comma-separated event names.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        #[arg(long)]
        url: String,
        #[arg(long)]
        signature: String,
        #[arg(long)]
        max_hooks_per_request: Option<u32>,
        #[arg(long)]
        timeout_ms: Option<u32>,
        /// Comma-separated delays, e.g. 1s,5s,30s.
        #[arg(long, value_delimiter = ',')]
        retry_schedule: Option<Vec<String>>,
    },
}

#[derive(Debug, Args)]
pub struct AdminToken {
    /// The admin token; by default read from HOOKLINE_ADMIN_TOKEN or <data-dir>/admin-token.
    #[arg(long, env = "HOOKLINE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[arg(long, env = "HOOKLINE_DATA_DIR", default_value = "./hookline-data")]
    pub data_dir: PathBuf,
}

impl AdminToken {
    fn resolve(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.admin_token {
            return Ok(token.clone());
        }
        let path = self.data_dir.join("admin-token");
        let token = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no --admin-token given and cannot read {} (is the server's data dir elsewhere?)",
                path.display()
            )
        })?;
        Ok(token.trim().to_owned())
    }
}

// ---------- listen ----------

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

// ---------- client commands ----------

async fn call(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let response = request
        .send()
        .await
        .with_context(|| format!("{what}: cannot reach the server"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{what}: the server answered {status} with no JSON"))?;
    if !status.is_success() {
        let message = body["header"]["resultMessage"]
            .as_str()
            .unwrap_or("no message");
        bail!("{what}: {status}: {message}");
    }
    Ok(body)
}

pub async fn emit(args: EmitArgs) -> anyhow::Result<()> {
    let product = Product::parse(&args.product).with_context(|| {
        format!(
            "--product: {:?} is not SMS or KakaoTalk Bizmessage",
            args.product
        )
    })?;
    let event = Event::parse(&args.event)
        .filter(|e| e.is_valid_for(product))
        .with_context(|| {
            format!(
                "--event: {:?} is not an event of {}",
                args.event,
                product.as_str()
            )
        })?;
    if args.batch == 0 || args.count == 0 {
        bail!("--count and --batch must be at least 1");
    }
    let client = reqwest::Client::new();
    let url = format!(
        "{}/v1/appkeys/{}/events",
        args.server.server.trim_end_matches('/'),
        args.credentials.app_key
    );
    let progress = if args.count > args.batch {
        let bar = indicatif::ProgressBar::new(args.count as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} hooks  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let mut sent = 0;
    let mut last_ids = Vec::new();
    while sent < args.count {
        let n = args.batch.min(args.count - sent);
        let hooks: Vec<Value> = (0..n)
            .map(|_| hookline_wire::sample_hook(product, event))
            .collect();
        let body =
            json!({"productName": product.as_str(), "event": event.as_str(), "hooks": hooks});
        let answer = call(
            client
                .post(&url)
                .header("X-Secret-Key", &args.credentials.secret_key)
                .json(&body),
            "ingest",
        )
        .await?;
        last_ids = answer["hookIds"].as_array().cloned().unwrap_or_default();
        sent += n;
        if let Some(bar) = &progress {
            bar.set_position(sent as u64);
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    println!(
        "accepted {sent} {} {} hook(s) for app key {}",
        product.as_str(),
        event.as_str(),
        args.credentials.app_key
    );
    if args.count == 1
        && let Some(id) = last_ids.first().and_then(Value::as_str)
    {
        println!("hookId: {id}");
    }
    Ok(())
}

pub async fn admin(command: AdminCommand) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    match command {
        AdminCommand::CreateAppKey {
            server,
            admin,
            name,
        } => {
            let body = call(
                client
                    .post(format!(
                        "{}/v1/appkeys",
                        server.server.trim_end_matches('/')
                    ))
                    .bearer_auth(admin.resolve()?)
                    .json(&json!({"name": name})),
                "create app key",
            )
            .await?;
            let key = &body["appKey"];
            println!("app key created");
            println!("  appKey:    {}", key["appKey"].as_str().unwrap_or(""));
            println!("  secretKey: {}", key["secretKey"].as_str().unwrap_or(""));
            println!("  (the secret key is shown only now; keep it)");
        }
        AdminCommand::ListAppKeys { server, admin } => {
            let body = call(
                client
                    .get(format!(
                        "{}/v1/appkeys",
                        server.server.trim_end_matches('/')
                    ))
                    .bearer_auth(admin.resolve()?),
                "list app keys",
            )
            .await?;
            for key in body["appKeys"].as_array().into_iter().flatten() {
                println!(
                    "{}  {}  created {}",
                    key["appKey"].as_str().unwrap_or(""),
                    key["name"].as_str().unwrap_or(""),
                    key["createdAt"].as_str().unwrap_or("")
                );
            }
        }
        AdminCommand::CreateConfig {
            server,
            credentials,
            product,
            events,
            url,
            signature,
            max_hooks_per_request,
            timeout_ms,
            retry_schedule,
        } => {
            let mut body = json!({
                "productName": product,
                "events": events,
                "url": url,
                "signature": signature,
            });
            if let Some(n) = max_hooks_per_request {
                body["maxHooksPerRequest"] = json!(n);
            }
            if let Some(t) = timeout_ms {
                body["timeoutMs"] = json!(t);
            }
            if let Some(s) = retry_schedule {
                body["retrySchedule"] = json!(s);
            }
            let answer = call(
                client
                    .post(format!(
                        "{}/v1/appkeys/{}/webhook-configs",
                        server.server.trim_end_matches('/'),
                        credentials.app_key
                    ))
                    .header("X-Secret-Key", &credentials.secret_key)
                    .json(&body),
                "create webhook config",
            )
            .await?;
            let config = &answer["webhookConfig"];
            println!("webhook config created");
            println!(
                "  webhookConfigId: {}",
                config["webhookConfigId"].as_str().unwrap_or("")
            );
            println!(
                "  productName:     {}",
                config["productName"].as_str().unwrap_or("")
            );
            println!("  events:          {}", config["events"]);
            println!(
                "  url:             {}",
                config["url"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
