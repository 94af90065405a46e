//! How the client commands reach a server: where it is (`--server`, `HOOKLINE_SERVER`), the
//! credentials (`--app-key`/`--secret-key`, `--admin-token`, each from the environment too), the
//! output mode (`--json`), and the HTTP calls with the API's errors turned into messages.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::Method;
use serde_json::Value;

/// Options every client command takes (before or after its subcommand).
#[derive(Debug, Args, Clone)]
pub struct Connection {
    /// The hookline server.
    #[arg(
        long,
        global = true,
        env = "HOOKLINE_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// The app key the command is about.
    #[arg(long, global = true, env = "HOOKLINE_APP_KEY")]
    pub app_key: Option<String>,
    /// The app key's secret key.
    #[arg(
        long,
        global = true,
        env = "HOOKLINE_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// The admin token (app key management, and any app key's routes). Without it the commands
    /// that need it read `<data dir>/admin-token` of a local server.
    #[arg(
        long,
        global = true,
        env = "HOOKLINE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Where a local server keeps its admin token (read when no --admin-token is given).
    #[arg(
        long,
        global = true,
        env = "HOOKLINE_DATA_DIR",
        default_value = "./hookline-data"
    )]
    pub data_dir: PathBuf,
    /// Print the server's JSON answer instead of a table (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

impl Connection {
    /// The admin token: the flag or environment, else the data dir's `admin-token` file.
    fn admin_token(&self) -> anyhow::Result<String> {
        if let Some(token) = self.admin_token.as_ref().filter(|t| !t.is_empty()) {
            return Ok(token.clone());
        }
        let path = self.data_dir.join("admin-token");
        let token = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "this command needs the admin token: give --admin-token (or HOOKLINE_ADMIN_TOKEN); \
                 {} cannot be read",
                path.display()
            )
        })?;
        Ok(token.trim().to_owned())
    }
}

/// Which credential a call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The admin token.
    Admin,
    /// The app key's secret key, or the admin token when no secret key is given.
    AppKey,
}

pub struct ApiClient<'a> {
    conn: &'a Connection,
    http: reqwest::Client,
    base: String,
}

impl<'a> ApiClient<'a> {
    pub fn new(conn: &'a Connection) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("hookline-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(ApiClient {
            conn,
            http,
            base: conn.server.trim_end_matches('/').to_owned(),
        })
    }

    /// The app key the command works on.
    pub fn app_key(&self) -> anyhow::Result<&'a str> {
        self.conn
            .app_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .context("this command works on an app key: give --app-key (or HOOKLINE_APP_KEY)")
    }

    /// Calls an app key's route (`path` under `/v1/appkeys/{appKey}`).
    pub async fn app(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> anyhow::Result<Value> {
        let full = format!("/v1/appkeys/{}{path}", self.app_key()?);
        self.call(method, &full, body, Credential::AppKey, what)
            .await
    }

    /// `send` with the app key's credential: for routes whose path the caller built.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> anyhow::Result<Value> {
        self.call(method, path, body, Credential::AppKey, what)
            .await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        credential: Credential,
        what: &str,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match (credential, &self.conn.secret_key) {
            (Credential::AppKey, Some(secret)) if !secret.is_empty() => {
                request.header("X-Secret-Key", secret)
            }
            (Credential::AppKey, _) => match self.conn.admin_token() {
                Ok(token) => request.bearer_auth(token),
                Err(_) => bail!(
                    "{what}: needs the app key's secret key (--secret-key or HOOKLINE_SECRET_KEY) \
                     or the admin token (--admin-token or HOOKLINE_ADMIN_TOKEN)"
                ),
            },
            (Credential::Admin, _) => request.bearer_auth(self.conn.admin_token()?),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{what}: cannot reach the server at {}", self.base))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["header"]["resultMessage"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or(text);
            bail!("{what}: {status}: {message}");
        }
        Ok(body)
    }
}
