//! `hookline portal-link`: a short-lived, single-use link that signs its holder into the
//! dashboard for an app key (`POST /v1/appkeys/{appKey}/portal-links`), with the app key's secret
//! key or the admin token. Prints the link (`--json`: the server's answer).

use clap::Args;
use reqwest::Method;
use serde_json::{Map, Value};

use super::client::{ApiClient, Connection};
use super::output::{field, show};

#[derive(Debug, Args)]
pub struct PortalLinkArgs {
    /// How long the link works if unused, `1m` to `24h` (the server's default: 10m).
    #[arg(long)]
    pub expires_in: Option<String>,
    /// The session it opens sees every page and can change nothing.
    #[arg(long)]
    pub read_only: bool,
}

/// The request body: only what was asked, so the server's defaults apply to the rest.
fn body(args: &PortalLinkArgs) -> Value {
    let mut body = Map::new();
    if let Some(expires_in) = &args.expires_in {
        body.insert("expiresIn".into(), Value::String(expires_in.clone()));
    }
    if args.read_only {
        body.insert("readOnly".into(), Value::Bool(true));
    }
    Value::Object(body)
}

/// The link on its own line (for copying), then when it stops working.
fn human(answer: &Value) -> String {
    let link = &answer["portalLink"];
    let url = field(link, "url");
    let mut out = format!("{url}\n");
    out.push_str(&format!(
        "  works once, until {}{}\n",
        field(link, "expiresAt"),
        if link["readOnly"] == Value::Bool(true) {
            " (read-only)"
        } else {
            ""
        }
    ));
    if url.starts_with('/') {
        out.push_str(
            "  (a path: put the dashboard's address before it, or start the server with \
             --public-url)\n",
        );
    }
    out
}

pub async fn portal_link(conn: &Connection, args: PortalLinkArgs) -> anyhow::Result<()> {
    let api = ApiClient::new(conn)?;
    let answer = api
        .app(
            Method::POST,
            "/portal-links",
            Some(&body(&args)),
            "create a portal link",
        )
        .await?;
    show(conn.json, &answer, human);
    Ok(())
}
