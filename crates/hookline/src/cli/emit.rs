//! `hookline emit`: realistic sample events sent to a server's ingest route, one request per
//! `--batch` hooks.

use anyhow::{Context, bail};
use clap::Args;
use hookline_wire::{Event, Product};
use serde_json::{Value, json};

use super::client::{ApiClient, Connection};

#[derive(Debug, Args)]
pub struct EmitArgs {
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

pub async fn emit(conn: &Connection, args: EmitArgs) -> anyhow::Result<()> {
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
    let api = ApiClient::new(conn)?;
    let app_key = api.app_key()?.to_owned();
    let path = format!("/v1/appkeys/{app_key}/events");
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
        let answer = api
            .send(reqwest::Method::POST, &path, Some(&body), "ingest")
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
    if conn.json {
        println!(
            "{}",
            json!({"accepted": sent, "productName": product.as_str(), "event": event.as_str(),
                   "lastHookIds": last_ids})
        );
        return Ok(());
    }
    println!(
        "accepted {sent} {} {} hook(s) for app key {app_key}",
        product.as_str(),
        event.as_str(),
    );
    if args.count == 1
        && let Some(id) = last_ids.first().and_then(Value::as_str)
    {
        println!("hookId: {id}");
    }
    Ok(())
}
