//! `hookline app-keys`: create (admin token; `--env` prints the export line), list (admin token),
//! rotate the secret key.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{ApiClient, Connection, Credential};
use super::output::{field, show, table};

#[derive(Debug, Subcommand)]
pub enum AppKeyCommand {
    /// Create an app key (admin token); its secret key is shown once.
    Create {
        /// A name for people.
        #[arg(long, default_value = "")]
        name: String,
        /// Print `export HOOKLINE_APP_KEY=... HOOKLINE_SECRET_KEY=...` for a shell to eval.
        #[arg(long)]
        env: bool,
    },
    /// List app keys (admin token).
    List,
    /// Give the app key a new secret key, shown once. The old one stops working at once, or
    /// after --grace-period (switch producers meanwhile: no downtime).
    Rotate {
        /// How long the old secret key keeps working beside the new one, e.g. 1h (0s to 7d).
        #[arg(long)]
        grace_period: Option<String>,
        /// Print `export HOOKLINE_SECRET_KEY=...` for a shell to eval.
        #[arg(long)]
        env: bool,
    },
}

pub async fn run(conn: &Connection, command: AppKeyCommand) -> anyhow::Result<()> {
    let api = ApiClient::new(conn)?;
    match command {
        AppKeyCommand::Create { name, env } => {
            let body = json!({ "name": name });
            let answer = api
                .call(
                    Method::POST,
                    "/v1/appkeys",
                    Some(&body),
                    Credential::Admin,
                    "create app key",
                )
                .await?;
            if env {
                print_env(&answer["appKey"]);
                return Ok(());
            }
            show(conn.json, &answer, |a| {
                let k = &a["appKey"];
                format!(
                    "app key created (the secret key is shown only now: keep it)\n  appKey:    \
                     {}\n  secretKey: {}\n",
                    field(k, "appKey"),
                    field(k, "secretKey")
                )
            });
        }
        AppKeyCommand::List => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/v1/appkeys?pageSize=1000&cursor={c}"),
                    None => "/v1/appkeys?pageSize=1000".to_owned(),
                };
                let page = api
                    .call(Method::GET, &path, None, Credential::Admin, "list app keys")
                    .await?;
                all.extend(page["appKeys"].as_array().cloned().unwrap_or_default());
                match page["nextCursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let answer = json!({ "appKeys": all });
            show(conn.json, &answer, |a| {
                let rows: Vec<Vec<String>> = a["appKeys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| vec![field(k, "appKey"), field(k, "name"), field(k, "createdAt")])
                    .collect();
                table(&["APP KEY", "NAME", "CREATED"], &rows)
            });
        }
        AppKeyCommand::Rotate { grace_period, env } => {
            let body = match grace_period {
                Some(g) => json!({ "gracePeriod": g }),
                None => json!({}),
            };
            let answer = api
                .app(
                    Method::POST,
                    "/secret-key/rotate",
                    Some(&body),
                    "rotate the secret key",
                )
                .await?;
            if env {
                println!(
                    "export HOOKLINE_SECRET_KEY={}",
                    shell_quote(&field(&answer["appKey"], "secretKey"))
                );
                return Ok(());
            }
            show(conn.json, &answer, |a| {
                let k = &a["appKey"];
                let old = match k["previousSecretKeyExpiresAt"].as_str() {
                    Some(until) => format!("the old one keeps working until {until}"),
                    None => "the old one no longer works".to_owned(),
                };
                format!(
                    "secret key rotated ({old}; the new one is shown only now)\n  secretKey: {}\n",
                    field(k, "secretKey")
                )
            });
        }
    }
    Ok(())
}

/// The shell line that puts a new app key's credentials in the environment.
fn print_env(key: &Value) {
    println!(
        "export HOOKLINE_APP_KEY={} HOOKLINE_SECRET_KEY={}",
        shell_quote(&field(key, "appKey")),
        shell_quote(&field(key, "secretKey"))
    );
}

/// Generated keys are letters and digits; quoted anyway, so the line is safe to eval.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
