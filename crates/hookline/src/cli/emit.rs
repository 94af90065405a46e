//! `hookline emit`: realistic sample events sent to a server's ingest route, one request per
//! `--batch` hooks.

use anyhow::{Context, bail};
use clap::Args;
use hookline_wire::{Event, Product};
use serde_json::{Value, json};

use super::client::{ApiClient, Connection};

#[derive(Debug, Args)]
pub struct EmitArgs {
    /// A product of the server's catalogue: SMS, "KakaoTalk Bizmessage", Email, or one its
    /// operator added (`GET /v1/catalogue`).
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
    if args.batch == 0 || args.count == 0 {
        bail!("--count and --batch must be at least 1");
    }
    let api = ApiClient::new(conn)?;
    let app_key = api.app_key()?.to_owned();
    let sample = Sample::resolve(&api, &args.product, &args.event).await?;
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
        let hooks: Vec<Value> = (0..n).map(|_| sample.hook()).collect();
        let body = json!({"productName": sample.product, "event": sample.event, "hooks": hooks});
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
            json!({"accepted": sent, "productName": sample.product, "event": sample.event,
                   "lastHookIds": last_ids})
        );
        return Ok(());
    }
    println!(
        "accepted {sent} {} {} hook(s) for app key {app_key}",
        sample.product, sample.event,
    );
    if args.count == 1
        && let Some(id) = last_ids.first().and_then(Value::as_str)
    {
        println!("hookId: {id}");
    }
    Ok(())
}

/// What to send: a built-in event's samples come from this binary's catalogue; any other event
/// (an operator's) from the example in the server's catalogue (`GET /v1/catalogue`).
struct Sample {
    product: String,
    event: String,
    source: SampleSource,
}

enum SampleSource {
    Local(Product, Event),
    Example(Value),
}

impl Sample {
    async fn resolve(api: &ApiClient<'_>, product: &str, event: &str) -> anyhow::Result<Sample> {
        if let Some(p) = Product::parse(product)
            && let Some(e) = Event::parse(event).filter(|e| e.is_valid_for(p))
        {
            return Ok(Sample {
                product: p.as_str().to_owned(),
                event: e.as_str().to_owned(),
                source: SampleSource::Local(p, e),
            });
        }
        let answer = api
            .send(reqwest::Method::GET, "/v1/catalogue", None, "catalogue")
            .await?;
        let products = answer["catalogue"]["products"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let Some(found) = products.iter().find(|p| {
            p["productName"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(product))
        }) else {
            let names: Vec<&str> = products
                .iter()
                .filter_map(|p| p["productName"].as_str())
                .collect();
            bail!(
                "--product: {product:?} is not a product of the server's catalogue (one of {})",
                names.join(", ")
            );
        };
        let product_name = found["productName"].as_str().unwrap_or(product).to_owned();
        let events = found["events"].as_array().cloned().unwrap_or_default();
        let Some(entry) = events.iter().find(|e| e["event"] == event) else {
            let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
            bail!(
                "--event: {event:?} is not an event of {product_name} (one of {})",
                names.join(", ")
            );
        };
        let example = entry.get("example").cloned().with_context(|| {
            format!("the server's catalogue has no example of {product_name} {event}")
        })?;
        Ok(Sample {
            product: product_name,
            event: event.to_owned(),
            source: SampleSource::Example(example),
        })
    }

    fn hook(&self) -> Value {
        match &self.source {
            SampleSource::Local(p, e) => hookline_wire::sample_hook(*p, *e),
            SampleSource::Example(example) => hookline_wire::sample_from_example(example),
        }
    }
}
