//! The `hookline serve` process under test and a small client for its API.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::check_id_shape;

/// An app key and its secret.
#[derive(Clone, Debug)]
pub struct App {
    pub app_key: String,
    pub secret: String,
}

impl App {
    pub fn auth(&self) -> Auth {
        Auth::Secret(self.secret.clone())
    }
    /// `/v1/appkeys/{appKey}` + `rest`.
    pub fn path(&self, rest: &str) -> String {
        format!("/v1/appkeys/{}{}", self.app_key, rest)
    }
}

/// Credentials of one request.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <the server's admin token>`
    Admin,
    Bearer(String),
    /// `X-Secret-Key: <secret>`
    Secret(String),
}

/// Body of one request.
pub enum Body {
    None,
    Json(Value),
    /// Raw bytes with the given Content-Type (none if `None`).
    Raw(Option<String>, Vec<u8>),
}

/// How the harness starts `hookline serve`, beyond the extra flags.
#[derive(Clone, Debug)]
pub struct Options {
    /// Pass `--allow-private-targets` (the receivers listen on 127.0.0.1). Default true.
    pub allow_private_targets: bool,
    /// `RUST_LOG` of the server. Default `info`.
    pub rust_log: String,
    /// `--database-url` instead of the default one (none: the embedded store, or with
    /// `HOOKLINE_ACCEPTANCE_STORE=postgres` a new database per server). Servers given the same URL
    /// share one database (see [`scratch_postgres_database`]). Default `None`.
    pub database_url: Option<String>,
    /// Always the embedded store (SQLite in the data dir), even when the suite runs on PostgreSQL
    /// (`HOOKLINE_ACCEPTANCE_STORE=postgres`): for tests about the embedded store's own files and
    /// disk. Cannot be combined with `database_url`. Default false.
    pub embedded_store: bool,
    /// `HOOKLINE_ADMIN_TOKEN` instead of a long random one (e.g. a short one, to see the warning).
    /// Default `None`.
    pub admin_token: Option<String>,
    /// More environment variables of the server (test-only seams). Default none.
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allow_private_targets: true,
            rust_log: "info".to_string(),
            database_url: None,
            embedded_store: false,
            admin_token: None,
            env: Vec::new(),
        }
    }
}

/// Flags every server gets unless the test passes its own: tests send wrong credentials from
/// 127.0.0.1 on purpose (tenancy, bad input, the dashboard), far more than the production
/// defaults allow per minute. The throttle's own tests pass low limits.
const DEFAULT_FLAGS: [(&str, &str); 2] = [
    ("--auth-failures-per-address", "100000"),
    ("--auth-failures-per-target", "100000"),
];

pub struct Server {
    pub base_url: String,
    pub admin_token: String,
    pub http: reqwest::Client,
    child: Option<Child>,
    args: Vec<String>,
    options: Options,
    dir: tempfile::TempDir,
    /// `--database-url`: `Options::database_url`, or a new database per server when the suite runs
    /// on PostgreSQL (see [`postgres_database_url`]).
    database_url: Option<String>,
}

/// With `HOOKLINE_ACCEPTANCE_STORE=postgres`, every server gets a new database on the server of
/// `HOOKLINE_TEST_DATABASE_URL` (kept across its restarts) instead of the embedded store.
async fn postgres_database_url() -> Option<String> {
    let store = std::env::var("HOOKLINE_ACCEPTANCE_STORE").unwrap_or_default();
    if store != "postgres" {
        return None;
    }
    Some(scratch_postgres_database("HOOKLINE_ACCEPTANCE_STORE=postgres").await)
}

/// The URL of a new, empty database on the PostgreSQL server of `HOOKLINE_TEST_DATABASE_URL`
/// (set by `./scripts/test.sh`). Without that variable it panics, naming `needed_by`: what needs
/// PostgreSQL fails, never skips.
pub async fn scratch_postgres_database(needed_by: &str) -> String {
    let base = std::env::var("HOOKLINE_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{needed_by} needs HOOKLINE_TEST_DATABASE_URL (a PostgreSQL server to create \
                 databases on): run ./scripts/test.sh, or `eval \"$(scripts/pg.sh start)\"` first"
            )
        });
    let name = hookline::store::postgres::create_scratch_database(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot create a database on {base}: {e}"));
    // The query string (sslmode, sslrootcert) stays: only the database changes.
    let (path, query) = match base.split_once('?') {
        Some((path, query)) => (path, format!("?{query}")),
        None => (base.as_str(), String::new()),
    };
    let (server, _) = path
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("HOOKLINE_TEST_DATABASE_URL has no /database: {base}"));
    format!("{server}/{name}{query}")
}

fn random_token() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let a = h.finish();
    let mut h = RandomState::new().build_hasher();
    h.write_u64(a);
    format!("admin-{a:016x}{:016x}", h.finish())
}

impl Server {
    /// Starts `hookline serve` with the harness's standard flags.
    pub async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// Starts `hookline serve` with the standard flags plus `extra` (e.g. `["--max-body-bytes", "4096"]`).
    pub async fn start_with(extra: &[&str]) -> Server {
        Server::start_prepared(extra, |_| {}).await
    }

    /// Like `start_with`, running `prepare` on the (empty) data dir before the server starts
    /// (e.g. to mount a small file system there).
    pub async fn start_prepared(extra: &[&str], prepare: impl FnOnce(&std::path::Path)) -> Server {
        Server::start_full(extra, Options::default(), prepare).await
    }

    /// Like `start_with`, with other `options` (e.g. without `--allow-private-targets`).
    pub async fn start_with_options(extra: &[&str], options: Options) -> Server {
        Server::start_full(extra, options, |_| {}).await
    }

    /// Like `start_prepared`, with other `options`.
    pub async fn start_full(
        extra: &[&str],
        options: Options,
        prepare: impl FnOnce(&std::path::Path),
    ) -> Server {
        assert!(
            !(options.embedded_store && options.database_url.is_some()),
            "Options: embedded_store and database_url exclude each other"
        );
        let dir = tempfile::Builder::new()
            .prefix("hookline-acceptance-")
            .tempdir()
            .expect("create temp dir");
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        prepare(&dir.path().join("data"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let database_url = match &options.database_url {
            Some(url) => Some(url.clone()),
            None if options.embedded_store => None,
            None => postgres_database_url().await,
        };
        let mut server = Server {
            base_url: String::new(),
            admin_token: options.admin_token.clone().unwrap_or_else(random_token),
            http,
            child: None,
            args: extra.iter().map(|s| s.to_string()).collect(),
            options,
            dir,
            database_url,
        };
        server.spawn().await;
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The PostgreSQL database the server stores in (`--database-url`), or `None` for the embedded
    /// store (`<data_dir>/hookline.db`). See `support::store` to read either.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    /// Everything the server (all its runs) wrote to stderr.
    pub fn stderr_all(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.stderr_path()).unwrap_or_default()).into_owned()
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("hookline.stderr.log")
    }

    /// The last few KiB of everything the server (all its runs) wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read(self.stderr_path()).unwrap_or_default();
        let text = strip_ansi(&String::from_utf8_lossy(&text));
        let max = 6000;
        if text.len() > max {
            let mut cut = text.len() - max;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            format!("...{}", &text[cut..])
        } else {
            text
        }
    }

    /// Polls the server's stderr (all its runs) until a line contains every one of `parts`;
    /// returns that line. Fails after `deadline`.
    pub async fn wait_for_log(&self, parts: &[&str], deadline: Duration) -> String {
        let end = Instant::now() + deadline;
        loop {
            if let Some(line) = self
                .stderr_all()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line.to_string();
            }
            if Instant::now() > end {
                self.fail(format!("no log line with {parts:?} within {deadline:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Panics with `msg` and the tail of the server's stderr.
    #[track_caller]
    pub fn fail(&self, msg: impl std::fmt::Display) -> ! {
        // Panics of the server anywhere in its stderr, which the tail may not reach.
        let text = std::fs::read(self.stderr_path()).unwrap_or_default();
        let text = strip_ansi(&String::from_utf8_lossy(&text));
        let panics: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("panicked at") || l.contains("without a result"))
            .take(20)
            .collect();
        panic!(
            "{msg}\n--- hookline panics: {panics:?} ---\n--- hookline stderr (tail), data dir {} \
             ---\n{}\n--- end of stderr ---",
            self.data_dir().display(),
            self.stderr_tail()
        )
    }

    /// Unwraps `r`, or fails with its error and the server's stderr.
    #[track_caller]
    pub fn ok<T>(&self, r: Result<T, String>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => self.fail(e),
        }
    }

    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .unwrap();
        {
            use std::io::Write;
            writeln!(
                log,
                "===== acceptance harness: starting hookline serve ====="
            )
            .unwrap();
        }
        // Time limit: its ready line must come within 30 s (below); then it serves until the test
        // stops it or drops it (`kill_on_drop`), and every request to it has the client's timeout.
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookline"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(
                self.options
                    .allow_private_targets
                    .then_some("--allow-private-targets"),
            )
            .args(&self.args)
            .args(
                DEFAULT_FLAGS
                    .iter()
                    .filter(|(flag, _)| {
                        !self
                            .args
                            .iter()
                            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
                    })
                    .flat_map(|(flag, value)| [*flag, *value]),
            )
            .args(
                self.database_url
                    .as_ref()
                    .map(|url| ["--database-url", url.as_str()])
                    .into_iter()
                    .flatten(),
            )
            .env("HOOKLINE_ADMIN_TOKEN", &self.admin_token)
            .env("RUST_LOG", &self.options.rust_log)
            .env("NO_COLOR", "1")
            .env_remove("HOOKLINE_LISTEN")
            .env_remove("HOOKLINE_DATA_DIR")
            .env_remove("HOOKLINE_DATABASE_URL")
            .env_remove("HOOKLINE_ALLOW_PRIVATE_TARGETS")
            .env_remove("HOOKLINE_INGEST_RATE_LIMIT")
            .env_remove("HOOKLINE_INGEST_BURST")
            .env_remove("HOOKLINE_AUTH_FAILURES_PER_ADDRESS")
            .env_remove("HOOKLINE_AUTH_FAILURES_PER_TARGET")
            .env_remove("HOOKLINE_PUBLIC_URL")
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", env!("CARGO_BIN_EXE_hookline")));
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(rest) = line.strip_prefix("hookline listening on ") {
                            return Ok(rest.trim().to_string());
                        }
                        seen.push(line);
                    }
                    Ok(None) => return Err("stdout closed before the ready line".to_string()),
                    Err(e) => return Err(format!("reading stdout: {e}")),
                }
            }
        })
        .await;
        let url = match ready {
            Ok(Ok(url)) => url,
            Ok(Err(e)) => {
                let status = child.wait().await.ok();
                self.fail(format!(
                    "hookline serve did not become ready: {e}; exit status {status:?}; stdout lines: {seen:?}"
                ))
            }
            Err(_) => {
                let _ = child.kill().await;
                self.fail(format!(
                    "hookline serve printed no `hookline listening on ...` line within 30 s; stdout lines: {seen:?}"
                ))
            }
        };
        if !url.starts_with("http://127.0.0.1:") {
            self.fail(format!("unexpected listen url {url:?}"));
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.base_url = url.trim_end_matches('/').to_string();
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(|c| c.id())
            .expect("server not running")
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill9(&mut self) {
        let mut child = self.child.take().expect("server not running");
        child.kill().await.expect("kill -9 hookline");
    }

    /// SIGTERM, then wait up to `deadline` for the process to exit; returns its exit status.
    /// Fails (after SIGKILL) if it does not exit in time.
    pub async fn stop_sigterm(&mut self, deadline: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_for_exit(deadline).await
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`, `SIGSTOP`, `SIGCONT`) to the running server.
    pub fn signal(&self, signal: libc::c_int) {
        super::process::signal(self.pid(), signal);
    }

    /// Waits up to `deadline` for the server to exit (after a signal); returns its exit status.
    /// Fails (after SIGKILL) if it does not exit in time.
    pub async fn wait_for_exit(&mut self, deadline: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("server not running");
        match tokio::time::timeout(deadline, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => self.fail(format!("waiting for hookline to exit: {e}")),
            Err(_) => {
                let _ = child.kill().await;
                self.fail(format!(
                    "hookline did not exit within {deadline:?} after a signal"
                ))
            }
        }
    }

    /// Starts the server again on the same data dir (after `kill9` or `stop_sigterm`), with
    /// `env` as its extra environment from now on.
    pub async fn restart_with_env(&mut self, env: Vec<(String, String)>) {
        self.options.env = env;
        self.spawn().await;
    }

    /// Starts the server again on the same data dir (after `kill9` or `stop_sigterm`).
    pub async fn restart(&mut self) {
        self.spawn().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    // ----- HTTP -----

    /// One request; returns the status and the body parsed as JSON (a JSON string holding the raw
    /// text if it is not JSON, `Null` if empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Body,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method.clone(), self.url(path));
        req = match auth {
            Auth::None => req,
            Auth::Admin => req.header("Authorization", format!("Bearer {}", self.admin_token)),
            Auth::Bearer(t) => req.header("Authorization", format!("Bearer {t}")),
            Auth::Secret(s) => req.header("X-Secret-Key", s),
        };
        req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&v).unwrap()),
            Body::Raw(ct, bytes) => {
                let req = match ct {
                    Some(ct) => req.header("Content-Type", ct),
                    None => req,
                };
                req.body(bytes)
            }
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => self.fail(format!("{method} {path}: request failed: {e}")),
        };
        let status = resp.status();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => self.fail(format!("{method} {path}: reading response failed: {e}")),
        };
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    pub async fn get(&self, auth: &Auth, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, auth, Body::None).await
    }
    pub async fn post(&self, auth: &Auth, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, auth, Body::Json(body)).await
    }
    pub async fn put(&self, auth: &Auth, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, auth, Body::Json(body)).await
    }
    pub async fn delete(&self, auth: &Auth, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, auth, Body::None).await
    }
    /// A JSON Merge Patch (`application/merge-patch+json`).
    pub async fn patch(&self, auth: &Auth, path: &str, body: Value) -> (StatusCode, Value) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let body = Body::Raw(Some("application/merge-patch+json".into()), bytes);
        self.call(Method::PATCH, path, auth, body).await
    }

    /// Asserts a success status and a successful result header; returns the body.
    #[track_caller]
    pub fn expect(&self, resp: (StatusCode, Value), status: u16, what: &str) -> Value {
        let (st, body) = resp;
        if st.as_u16() != status {
            self.fail(format!(
                "{what}: want HTTP {status}, got {st} with body {body}"
            ));
        }
        let h = &body["header"];
        if h["isSuccessful"] != json!(true) || h["resultCode"] != json!(0) {
            self.fail(format!(
                "{what}: want header {{isSuccessful: true, resultCode: 0}}, got body {body}"
            ));
        }
        body
    }

    // ----- API helpers -----

    pub async fn create_app_key(&self, name: &str) -> App {
        let body = self.expect(
            self.post(&Auth::Admin, "/v1/appkeys", json!({ "name": name }))
                .await,
            201,
            "POST /v1/appkeys",
        );
        let ak = &body["appKey"];
        let app_key = ak["appKey"]
            .as_str()
            .unwrap_or_else(|| self.fail(format!("no appKey.appKey in {body}")));
        let secret = ak["secretKey"]
            .as_str()
            .unwrap_or_else(|| self.fail(format!("no appKey.secretKey in {body}")));
        if ak["name"] != json!(name) {
            self.fail(format!("app key name not echoed: {body}"));
        }
        if app_key.is_empty() || secret.is_empty() {
            self.fail(format!("empty app key or secret: {body}"));
        }
        App {
            app_key: app_key.to_string(),
            secret: secret.to_string(),
        }
    }

    /// Creates a webhook config (asserting 201) and returns the `webhookConfig` object.
    pub async fn create_config(&self, app: &App, body: Value) -> Value {
        let resp = self
            .post(&app.auth(), &app.path("/webhook-configs"), body.clone())
            .await;
        let resp = self.expect(resp, 201, &format!("create webhook config {body}"));
        let cfg = resp["webhookConfig"].clone();
        match cfg["webhookConfigId"].as_str() {
            Some(id) => {
                if let Err(e) = check_id_shape(id) {
                    self.fail(format!("webhookConfigId: {e}"));
                }
            }
            None => self.fail(format!("no webhookConfig.webhookConfigId in {resp}")),
        }
        cfg
    }

    /// Ingests `hooks` (asserting 202) and returns `hookIds`.
    pub async fn ingest(
        &self,
        app: &App,
        product: &str,
        event: &str,
        hooks: Vec<Value>,
    ) -> Vec<String> {
        let n = hooks.len();
        let body = json!({ "productName": product, "event": event, "hooks": hooks });
        let resp = self.post(&app.auth(), &app.path("/events"), body).await;
        let resp = self.expect(resp, 202, &format!("ingest {n} {product} {event} hooks"));
        let ids: Vec<String> = match resp["hookIds"].as_array() {
            Some(a) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| self.fail(format!("bad hookIds {resp}")))
                })
                .collect(),
            None => self.fail(format!("ingest: no hookIds array in {resp}")),
        };
        if ids.len() != n {
            self.fail(format!(
                "ingest of {n} hooks returned {} hookIds: {resp}",
                ids.len()
            ));
        }
        ids
    }

    pub async fn get_config(&self, app: &App, id: &str) -> Value {
        let resp = self
            .get(&app.auth(), &app.path(&format!("/webhook-configs/{id}")))
            .await;
        self.expect(resp, 200, "GET webhook config")["webhookConfig"].clone()
    }

    /// `GET .../deliveries/{hooksId}` → the `delivery` object (asserting 200).
    pub async fn get_delivery(&self, app: &App, hooks_id: &str) -> Value {
        let resp = self
            .get(&app.auth(), &app.path(&format!("/deliveries/{hooks_id}")))
            .await;
        self.expect(resp, 200, &format!("GET delivery {hooks_id}"))["delivery"].clone()
    }

    /// Every delivery matching `query` (e.g. `webhookConfigId=...&status=FAILED`), following cursors.
    pub async fn list_deliveries(&self, app: &App, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let mut path = app.path(&format!("/deliveries?pageSize=1000&{query}"));
            if let Some(c) = &cursor {
                let _ = write!(path, "&cursor={}", urlencode(c));
            }
            let body = self.expect(
                self.get(&app.auth(), &path).await,
                200,
                &format!("GET {path}"),
            );
            match body["deliveries"].as_array() {
                Some(a) => out.extend(a.iter().cloned()),
                None => self.fail(format!("GET {path}: no deliveries array in {body}")),
            }
            match body["nextCursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
                _ => return out,
            }
        }
        self.fail("more than 100 pages of deliveries")
    }

    /// Polls `list_deliveries(query)` until `cond` holds; fails with the last state after `deadline`.
    pub async fn wait_for_deliveries(
        &self,
        app: &App,
        query: &str,
        deadline: Duration,
        what: &str,
        cond: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let end = Instant::now() + deadline;
        loop {
            let list = self.list_deliveries(app, query).await;
            if cond(&list) {
                return list;
            }
            if Instant::now() >= end {
                self.fail(format!(
                    "timed out after {deadline:?} waiting for {what}; deliveries?{query} = {}",
                    serde_json::to_string_pretty(&list).unwrap()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `GET .../webhook-configs/{id}` until `cond` holds; fails with the last state after
    /// `deadline`.
    pub async fn wait_for_config(
        &self,
        app: &App,
        config_id: &str,
        deadline: Duration,
        what: &str,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + deadline;
        loop {
            let config = self.get_config(app, config_id).await;
            if cond(&config) {
                return config;
            }
            if Instant::now() >= end {
                self.fail(format!(
                    "timed out after {deadline:?} waiting for {what}: {config}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `GET .../deliveries/{hooksId}` until its status is `status`; fails early if it reaches
    /// another final status, or with the last state after `deadline`.
    pub async fn wait_for_delivery_status(
        &self,
        app: &App,
        hooks_id: &str,
        status: &str,
        deadline: Duration,
    ) -> Value {
        let end = Instant::now() + deadline;
        let path = app.path(&format!("/deliveries/{hooks_id}"));
        loop {
            let (st, body) = self.get(&app.auth(), &path).await;
            let d = &body["delivery"];
            if st == StatusCode::OK {
                let cur = d["status"].as_str().unwrap_or("");
                if cur == status {
                    return d.clone();
                }
                if matches!(cur, "SUCCEEDED" | "FAILED" | "CANCELLED" | "EXPIRED") {
                    self.fail(format!(
                        "delivery {hooks_id} ended {cur}, want {status}: {d:#}"
                    ));
                }
            }
            if Instant::now() >= end {
                self.fail(format!(
                    "timed out after {deadline:?} waiting for delivery {hooks_id} to be {status}; last answer {st}: {body:#}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the delivery log shows a delivery to `config_id` carrying `hook_id` with `status`;
    /// returns that delivery in full (`GET .../deliveries/{hooksId}`).
    pub async fn wait_for_hook_delivery(
        &self,
        app: &App,
        config_id: &str,
        hook_id: &str,
        status: &str,
        deadline: Duration,
    ) -> Value {
        let q = format!("webhookConfigId={config_id}&hookId={}", urlencode(hook_id));
        let list = self
            .wait_for_deliveries(
                app,
                &q,
                deadline,
                &format!("a {status} delivery of hook {hook_id}"),
                |l| l.iter().any(|d| d["status"] == json!(status)),
            )
            .await;
        let d = list.iter().find(|d| d["status"] == json!(status)).unwrap();
        self.get_delivery(app, d["hooksId"].as_str().unwrap()).await
    }
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Removes ANSI colour sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
