//! `hookline deliveries` (list with the API's filters, get, redeliver) and `hookline replay`
//! (a config's past deliveries queued again, with relative times such as `--since 1h`).

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{ApiClient, Connection};
use super::configs::urlencode;
use super::output::{details, field, show, table};
use crate::duration::Period;

#[derive(Debug, Subcommand)]
pub enum DeliveryCommand {
    /// The delivery log, newest first.
    List {
        #[command(flatten)]
        filter: DeliveryFilter,
        #[arg(long)]
        hook_id: Option<String>,
        /// Most deliveries to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One delivery: its envelope as sent and every attempt.
    Get { hooks_id: String },
    /// Send a delivery's hooks again, as a new delivery to the config's current URL.
    Redeliver { hooks_id: String },
}

/// Which deliveries: the filters the log and replay share.
#[derive(Debug, Args)]
pub struct DeliveryFilter {
    /// Only this config's deliveries.
    #[arg(long = "config")]
    pub config_id: Option<String>,
    #[arg(long)]
    pub event: Option<String>,
    /// PENDING, RETRYING, SUCCEEDED, FAILED, CANCELLED or EXPIRED.
    #[arg(long)]
    pub status: Option<String>,
    /// Created at or after this time: RFC 3339, or a duration ago such as 1h or 30m.
    #[arg(long)]
    pub since: Option<String>,
    /// Created before this time: RFC 3339, or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The config whose past deliveries are queued again.
    pub config_id: String,
    /// Deliveries created at or after this time: RFC 3339, or a duration ago such as 1h.
    #[arg(long)]
    pub since: Option<String>,
    /// Deliveries created before this time: RFC 3339, or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
    /// Only deliveries in these statuses (comma-separated, e.g. FAILED).
    #[arg(long, value_delimiter = ',')]
    pub status: Option<Vec<String>>,
    /// Only count what would be queued again; queue nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// An RFC 3339 time, or a duration before now (`1h`) turned into one.
fn absolute_time(flag: &str, text: &str) -> anyhow::Result<String> {
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return Ok(text.to_owned());
    }
    let ago: Period = text.parse().with_context(|| {
        format!("--{flag}: {text:?} is neither an RFC 3339 time nor a duration such as 1h")
    })?;
    let at = chrono::Utc::now()
        - chrono::Duration::from_std(ago.get())
            .with_context(|| format!("--{flag}: {text:?} is too long ago"))?;
    Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

pub async fn run(conn: &Connection, command: DeliveryCommand) -> anyhow::Result<()> {
    let api = ApiClient::new(conn)?;
    match command {
        DeliveryCommand::List {
            filter,
            hook_id,
            limit,
        } => {
            let mut query = Vec::new();
            if let Some(c) = &filter.config_id {
                query.push(format!("webhookConfigId={}", urlencode(c)));
            }
            if let Some(e) = &filter.event {
                query.push(format!("event={}", urlencode(e)));
            }
            if let Some(s) = &filter.status {
                query.push(format!("status={}", urlencode(s)));
            }
            if let Some(s) = &filter.since {
                query.push(format!("since={}", urlencode(&absolute_time("since", s)?)));
            }
            if let Some(u) = &filter.until {
                query.push(format!("until={}", urlencode(&absolute_time("until", u)?)));
            }
            if let Some(h) = &hook_id {
                query.push(format!("hookId={}", urlencode(h)));
            }
            let mut all: Vec<Value> = Vec::new();
            let mut cursor: Option<String> = None;
            while all.len() < limit {
                let mut q = query.clone();
                q.push(format!("pageSize={}", (limit - all.len()).clamp(1, 1000)));
                if let Some(c) = &cursor {
                    q.push(format!("cursor={}", urlencode(c)));
                }
                let path = format!("/deliveries?{}", q.join("&"));
                let page = api.app(Method::GET, &path, None, "list deliveries").await?;
                all.extend(page["deliveries"].as_array().cloned().unwrap_or_default());
                match page["nextCursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            all.truncate(limit);
            let answer = json!({ "deliveries": all });
            show(conn.json, &answer, |a| {
                let rows: Vec<Vec<String>> = a["deliveries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        vec![
                            field(d, "createdAt"),
                            field(d, "hooksId"),
                            field(d, "webhookConfigId"),
                            field(d, "event"),
                            field(d, "status"),
                            d["hookIds"].as_array().map_or(0, Vec::len).to_string(),
                            field(d, "attemptCount"),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "CREATED", "HOOKS ID", "CONFIG", "EVENT", "STATUS", "HOOKS", "ATTEMPTS",
                    ],
                    &rows,
                )
            });
        }
        DeliveryCommand::Get { hooks_id } => {
            let answer = api
                .app(
                    Method::GET,
                    &format!("/deliveries/{}", urlencode(&hooks_id)),
                    None,
                    "get delivery",
                )
                .await?;
            show(conn.json, &answer, |a| {
                let d = &a["delivery"];
                let mut out = details(
                    d,
                    &[
                        "hooksId",
                        "webhookConfigId",
                        "productName",
                        "event",
                        "status",
                        "hookIds",
                        "attemptCount",
                        "nextAttemptAt",
                        "createdAt",
                        "updatedAt",
                    ],
                );
                let rows: Vec<Vec<String>> = d["attempts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|at| {
                        vec![
                            field(at, "number"),
                            field(at, "startedAt"),
                            field(at, "durationMs"),
                            match at["errorKind"].as_str() {
                                Some(kind) => kind.to_owned(),
                                None => field(at, "statusCode"),
                            },
                            field(at, "errorMessage"),
                        ]
                    })
                    .collect();
                out.push('\n');
                out.push_str(&table(&["#", "STARTED", "MS", "RESULT", "DETAIL"], &rows));
                out
            });
        }
        DeliveryCommand::Redeliver { hooks_id } => {
            let answer = api
                .app(
                    Method::POST,
                    &format!("/deliveries/{}/redeliver", urlencode(&hooks_id)),
                    None,
                    "redeliver",
                )
                .await?;
            show(conn.json, &answer, |a| {
                format!(
                    "redelivered as a new delivery {} (PENDING)\n",
                    field(&a["delivery"], "hooksId")
                )
            });
        }
    }
    Ok(())
}

pub async fn replay(conn: &Connection, args: ReplayArgs) -> anyhow::Result<()> {
    let api = ApiClient::new(conn)?;
    let mut body = Map::new();
    if let Some(s) = &args.since {
        body.insert("since".into(), absolute_time("since", s)?.into());
    }
    if let Some(u) = &args.until {
        body.insert("until".into(), absolute_time("until", u)?.into());
    }
    if let Some(statuses) = args.status {
        body.insert("status".into(), json!(statuses));
    }
    if args.dry_run {
        body.insert("dryRun".into(), Value::Bool(true));
    }
    let answer = api
        .app(
            Method::POST,
            &format!("/webhook-configs/{}/replay", urlencode(&args.config_id)),
            Some(&Value::Object(body)),
            "replay",
        )
        .await?;
    show(conn.json, &answer, |a| {
        if args.dry_run {
            format!(
                "{} hook(s) would be queued again (dry run)\n",
                field(a, "count")
            )
        } else {
            format!("{} hook(s) queued again\n", field(a, "count"))
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        assert_eq!(
            absolute_time("since", "2026-01-31T09:00:00Z").unwrap(),
            "2026-01-31T09:00:00Z"
        );
        let ago = absolute_time("since", "1h").unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(&ago).unwrap();
        let delta = chrono::Utc::now() - at.with_timezone(&chrono::Utc);
        assert!((3590..=3610).contains(&delta.num_seconds()), "{delta}");
        assert!(absolute_time("since", "yesterday").is_err());
    }
}
