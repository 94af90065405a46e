//! `hookline trace <hookId>`: what became of one hook for each config of its app key (the
//! app key's credentials from flags or the environment), or with `--admin`, under every app key
//! that accepted that hookId.

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::client::{ApiClient, Connection, Credential};
use super::configs::urlencode;
use super::output::{details, field, show, table};

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The hookId, as ingest answered it.
    pub hook_id: String,
    /// Search every app key with the admin token (`GET /v1/hooks/{hookId}`) instead of one
    /// app key's hooks.
    #[arg(long)]
    pub admin: bool,
}

/// The readable form of one hook's trace.
fn human(hook: &Value) -> String {
    let mut out = details(
        hook,
        &["appKey", "hookId", "productName", "event", "acceptedAt"],
    );
    out.push('\n');
    let mut rows = Vec::new();
    for c in hook["configs"].as_array().into_iter().flatten() {
        let deliveries: Vec<String> = c["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                format!(
                    "{} {} ({} attempts)",
                    field(d, "hooksId"),
                    field(d, "status"),
                    field(d, "attempts")
                )
            })
            .collect();
        rows.push(vec![
            field(c, "webhookConfigId"),
            field(c, "outcome"),
            if deliveries.is_empty() {
                "-".to_owned()
            } else {
                deliveries.join(", ")
            },
            field(c, "explanation"),
        ]);
    }
    if rows.is_empty() {
        out.push_str("(this app key has no config for this product)\n");
    } else {
        out.push_str(&table(&["CONFIG", "OUTCOME", "DELIVERIES", "WHY"], &rows));
    }
    out
}

pub async fn trace(conn: &Connection, args: TraceArgs) -> anyhow::Result<()> {
    let api = ApiClient::new(conn)?;
    let id = urlencode(&args.hook_id);
    if args.admin {
        let answer = api
            .call(
                Method::GET,
                &format!("/v1/hooks/{id}"),
                None,
                Credential::Admin,
                "trace",
            )
            .await?;
        show(conn.json, &answer, |a| {
            a["hooks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(human)
                .collect::<Vec<_>>()
                .join("\n")
        });
    } else {
        let answer = api
            .app(Method::GET, &format!("/hooks/{id}"), None, "trace")
            .await?;
        show(conn.json, &answer, |a| human(&a["hook"]));
    }
    Ok(())
}
