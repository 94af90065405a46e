//! `hookline serve`: opens the store, starts the engine, serves the API, and drains on
//! SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;

use crate::api::{self, AppState, Limits};
use crate::engine::health::HealthPolicy;
use crate::engine::{Engine, EngineSettings};
use crate::listener::ListenerLimits;
use crate::service::credentials::{hash_secret, new_secret};
use crate::service::{Service, TenantLimits};
use crate::store::Store;
use crate::store::postgres::{NodeOptions, PostgresStore, generated_node_id};
use crate::store::sqlite::{Fsync, SqliteStore};
use crate::throttle::{FailureThrottle, ThrottleLimits};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "HOOKLINE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Where the embedded database and the generated admin token live.
    #[arg(long, env = "HOOKLINE_DATA_DIR", default_value = "./hookline-data")]
    pub data_dir: PathBuf,
    /// Unset: embedded SQLite in the data dir. postgres://...: PostgreSQL (several nodes).
    #[arg(long, env = "HOOKLINE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// How commits of the embedded store reach the disk: `normal` survives a process crash,
    /// `full` also a power loss (an fsync per group commit).
    #[arg(long, env = "HOOKLINE_FSYNC", value_enum, default_value_t = Fsync::Normal)]
    pub fsync: Fsync,
    /// Allow deliveries to loopback, private and link-local addresses (development, tests).
    #[arg(long, env = "HOOKLINE_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,
    /// Also record per-tenant metrics (`hookline_app_key_*`, labelled by app key): queue depth,
    /// oldest queued age, ingested hooks, attempts and deliveries. One series per app key: with
    /// many thousands of app keys, mind your Prometheus' cardinality.
    #[arg(long, env = "HOOKLINE_METRICS_APP_KEY_LABEL")]
    pub metrics_app_key_label: bool,
    /// A proxy or load balancer in front of hookline whose `X-Forwarded-For` is believed, as an
    /// address or a range (`10.0.0.0/8`); repeatable, or comma-separated in the environment.
    /// Requests through it are counted (failed-authentication throttles) as the client it names,
    /// and it is held only to --max-connections, not --max-connections-per-ip. Other peers'
    /// `X-Forwarded-For` is ignored.
    #[arg(long, env = "HOOKLINE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxy: Vec<crate::listener::Cidr>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "HOOKLINE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most hooks in one ingest request.
    #[arg(long, env = "HOOKLINE_MAX_HOOKS_PER_REQUEST", default_value_t = 1000)]
    pub max_hooks_per_request: usize,
    /// Largest single hook, in bytes of JSON.
    #[arg(long, env = "HOOKLINE_MAX_HOOK_BYTES", default_value_t = 64 * 1024)]
    pub max_hook_bytes: usize,
    /// Ingest rate limit per app key, in queue rows per second (0: no limit): a hook costs one
    /// per enabled config subscribed to its event, at least one.
    #[arg(long, env = "HOOKLINE_INGEST_RATE_LIMIT", default_value_t = 0.0)]
    pub ingest_rate_limit: f64,
    /// Hooks an app key may ingest at once before the rate limit applies (default: one second's
    /// worth, at least --max-hooks-per-request).
    #[arg(long, env = "HOOKLINE_INGEST_BURST")]
    pub ingest_burst: Option<u32>,
    /// Consecutive failed attempts that make a config FAILING.
    #[arg(long, env = "HOOKLINE_FAILING_AFTER", default_value_t = 5)]
    pub failing_after: u32,
    /// How long a config may fail without a break before it is DISABLED (e.g. 3d, 12h, 30m).
    #[arg(long, env = "HOOKLINE_DISABLE_AFTER", default_value = "3d", value_parser = crate::duration::parse_flag)]
    pub disable_after: Duration,
    /// How long finished deliveries, their attempts and their hooks are kept (e.g. 30d, 12h).
    #[arg(long, env = "HOOKLINE_RETENTION", default_value = "30d", value_parser = crate::duration::parse_flag)]
    pub retention: Duration,
    /// How often expired history is purged.
    #[arg(long, env = "HOOKLINE_RETENTION_INTERVAL", default_value = "10m", value_parser = crate::duration::parse_flag)]
    pub retention_interval: Duration,
    /// The longest a graceful shutdown waits for attempts in flight (e.g. 30s).
    #[arg(long, env = "HOOKLINE_SHUTDOWN_GRACE", default_value = "30s", value_parser = crate::duration::parse_flag)]
    pub shutdown_grace: Duration,
    /// Most webhook configs one app key may hold (each hook is queued once per subscribed config,
    /// so this bounds one tenant's fan-out).
    #[arg(long, env = "HOOKLINE_MAX_CONFIGS_PER_APP_KEY", default_value_t = 100)]
    pub max_configs_per_app_key: u32,
    /// Most connections open at once (lowered to fit the open files limit). When full, a new
    /// connection closes the oldest idle one; if all are busy it gets a `503`.
    #[arg(long, env = "HOOKLINE_MAX_CONNECTIONS", default_value_t = 8192)]
    pub max_connections: usize,
    /// Most connections open at once from one client address (behind a load balancer every
    /// client may share its address: raise it to --max-connections then).
    #[arg(long, env = "HOOKLINE_MAX_CONNECTIONS_PER_IP", default_value_t = 1024)]
    pub max_connections_per_ip: usize,
    /// Failed authentications (a wrong secret key or admin token on the API, a failed dashboard
    /// sign-in) one client address may have per minute; beyond it that address gets `429` with
    /// `Retry-After`, even with the right credentials, until the minute ends (0: no limit).
    #[arg(long, env = "HOOKLINE_AUTH_FAILURES_PER_ADDRESS", default_value_t = 20)]
    pub auth_failures_per_address: u32,
    /// Failed authentications one target (an app key, the admin token) may have per minute from
    /// all addresses together; beyond it the addresses that failed on it get `429`, while those
    /// that have not failed (its own producers) go on (0: no limit).
    #[arg(long, env = "HOOKLINE_AUTH_FAILURES_PER_TARGET", default_value_t = 100)]
    pub auth_failures_per_target: u32,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may wait for its next request.
    #[arg(long, env = "HOOKLINE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = crate::duration::parse_flag)]
    pub header_read_timeout: Duration,
    /// With PostgreSQL: this node's name among those sharing the database (written as the
    /// owner of its leases). Must be unique among running nodes; default `<host>-<pid>-<random>`.
    #[arg(long, env = "HOOKLINE_NODE_ID")]
    pub node_id: Option<String>,
    /// With PostgreSQL: how long a node's leases outlive it. Another node takes over the
    /// deliveries of a node that died after this long; live nodes renew theirs every third of it.
    #[arg(long, env = "HOOKLINE_LEASE_TTL", default_value = "30s", value_parser = crate::duration::parse_flag)]
    pub lease_ttl: Duration,
    /// With PostgreSQL: connections this node keeps for reads and claims. The node also holds
    /// one for each of its three writers (jobs, two for ingests) and one for notifications, so it
    /// uses up to this + 4;
    /// it refuses to start when the server's `max_connections` cannot take them.
    #[arg(long, env = "HOOKLINE_PG_POOL_SIZE", default_value_t = crate::store::postgres::DEFAULT_POOL_SIZE)]
    pub pg_pool_size: usize,
    /// With PostgreSQL: claims (queued hooks turned into deliveries) this node runs at once,
    /// each a busy backend of the database; one tenant gets a quarter of them (at least one),
    /// so its many configs cannot crowd out another tenant's. Raise it for a database with
    /// many cores.
    #[arg(long, env = "HOOKLINE_PG_CLAIMS_AT_ONCE", default_value_t = crate::store::postgres::DEFAULT_CLAIMS_AT_ONCE)]
    pub pg_claims_at_once: usize,
    /// With PostgreSQL: how long a statement may wait for a lock another session holds before
    /// it fails (the request answers 503, background work is tried again) instead of hanging.
    #[arg(long, env = "HOOKLINE_PG_LOCK_TIMEOUT", default_value = "5s", value_parser = crate::duration::parse_flag)]
    pub pg_lock_timeout: Duration,
    /// With PostgreSQL: how long any one statement may run before the server cancels it (the
    /// request answers 503, background work is tried again).
    #[arg(long, env = "HOOKLINE_PG_STATEMENT_TIMEOUT", default_value = "30s", value_parser = crate::duration::parse_flag)]
    pub pg_statement_timeout: Duration,
    /// A catalogue file adding products and events (the shape of `GET /v1/catalogue`, without
    /// `ingestible`); repeat the flag for several files, or separate paths by `,` in the
    /// environment variable. A file that does not load stops the start, naming the file and the
    /// JSON path.
    #[arg(long = "catalogue", env = "HOOKLINE_CATALOGUE", value_delimiter = ',')]
    pub catalogue: Vec<PathBuf>,
    /// Where people reach this server's dashboard, e.g. `https://hookline.example.com` (the
    /// origin, behind any proxy): portal links are absolute URLs under it. Unset: they are paths
    /// (`/ui/portal/<token>`) for the caller to put after the address it knows.
    #[arg(long, env = "HOOKLINE_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// Tests only: also trust the CA certificates in this PEM file when delivering over https
    /// (the acceptance tests' TLS receivers). Hidden, with no environment variable, so that it is
    /// never on unless a command line asks for it.
    #[arg(long, hide = true)]
    pub test_extra_root_ca: Option<PathBuf>,
}

/// `--public-url`: an absolute `http` or `https` URL with a host and no query or fragment,
/// kept without its trailing `/` (a link's path starts with one).
fn parse_public_url(text: &str) -> Result<String, String> {
    let wrong = |why: &str| format!("{text:?} {why}; expected e.g. https://hookline.example.com");
    let uri: axum::http::Uri = text.parse().map_err(|_| wrong("is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(wrong("is not an http or https URL"));
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err(wrong("has no host"));
    }
    if uri.query().is_some() || text.contains('#') {
        return Err(wrong("has a query or a fragment"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Loads the built-in catalogue and the operator's files and puts it in force for the process,
/// before anything validates or lists an event.
fn install_catalogue(files: &[PathBuf]) -> anyhow::Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let mut texts = Vec::with_capacity(files.len());
    for path in files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--catalogue: cannot read {}", path.display()))?;
        texts.push((path.display().to_string(), text));
    }
    let catalogue = hookline_wire::Catalogue::with_files(&texts)
        .map_err(|e| anyhow::anyhow!("--catalogue: {e}"))?;
    for product in catalogue.products().iter() {
        let added: Vec<&str> = product
            .events()
            .iter()
            .filter(|e| !e.is_builtin())
            .map(|e| e.event().as_str())
            .collect();
        if !added.is_empty() {
            tracing::info!(product = %product.product(), events = ?added, "catalogue: events added");
        }
    }
    hookline_wire::install_catalogue(catalogue).map_err(|_| {
        anyhow::anyhow!("--catalogue: the catalogue was in use before it could be loaded (a bug)")
    })
}

/// The certificates of `--test-extra-root-ca`: at least one, or a start-up error.
fn extra_root_certs(
    path: Option<&Path>,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("--test-extra-root-ca: cannot read {}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("--test-extra-root-ca: no certificate in {}", path.display());
    }
    tracing::warn!(
        file = %path.display(),
        certificates = certs.len(),
        "trusting extra root certificates for https deliveries (a test-only flag)"
    );
    Ok(certs)
}

/// An operator-chosen admin token shorter than this is warned about at start.
const SHORT_ADMIN_TOKEN: usize = 24;

/// The admin token: from the environment, or generated once and kept in the data dir.
/// Tests only: `HOOKLINE_TEST_CLOCK_OFFSET_MS` makes this process's clock pretend to be off by
/// that many milliseconds (a cluster test's skewed node): the whole process, not only the
/// store, so that the engine's retry times and the store's reading of them agree, as on a
/// machine whose clock is wrong. Deliberately undocumented.
fn test_clock_offset_ms() -> anyhow::Result<i64> {
    match std::env::var("HOOKLINE_TEST_CLOCK_OFFSET_MS") {
        Err(_) => Ok(0),
        Ok(text) => {
            let ms: i64 = text.trim().parse().with_context(|| {
                format!("HOOKLINE_TEST_CLOCK_OFFSET_MS: not milliseconds: {text}")
            })?;
            tracing::warn!(
                ms,
                "test-only clock offset in force (HOOKLINE_TEST_CLOCK_OFFSET_MS)"
            );
            Ok(ms)
        }
    }
}

/// Tests only: `HOOKLINE_TEST_HOLD_OPERATIONAL_EVENTS=1` leaves operational events in the outbox
/// (the crash test's window between a state change and its hook). Deliberately undocumented.
fn test_operational_events_held() -> bool {
    let held = std::env::var("HOOKLINE_TEST_HOLD_OPERATIONAL_EVENTS").is_ok_and(|v| v == "1");
    if held {
        tracing::warn!("test-only: operational events are held in the outbox");
    }
    held
}

fn admin_token(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("HOOKLINE_ADMIN_TOKEN")
        && !token.is_empty()
    {
        // Guessing is throttled, but only per address and per minute: a short token still falls
        // to a patient guess from many addresses. The length is logged, never the token.
        let length = token.chars().count();
        if length < SHORT_ADMIN_TOKEN {
            tracing::warn!(
                length,
                recommended = SHORT_ADMIN_TOKEN,
                "HOOKLINE_ADMIN_TOKEN is shorter than {SHORT_ADMIN_TOKEN} characters: guessing it \
                 is throttled, but a short token is still weak; use a long random one"
            );
        }
        return Ok(token);
    }
    let path = data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_owned();
        if !token.is_empty() {
            eprintln!("admin token: in {}", path.display());
            return Ok(token);
        }
    }
    let token = new_secret(40);
    write_private_file(&path, &token)
        .with_context(|| format!("cannot write the admin token to {}", path.display()))?;
    eprintln!(
        "admin token generated; it is in {} (set HOOKLINE_ADMIN_TOKEN to choose your own)",
        path.display()
    );
    Ok(token)
}

fn write_private_file(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Checked first: a bad flag must not touch the data dir.
    let ingest_rate = api::ratelimit::RateLimit::from_flags(
        args.ingest_rate_limit,
        args.ingest_burst,
        args.max_hooks_per_request,
    )?;
    // Durability on PostgreSQL is the server's (`synchronous_commit`): a flag that would do
    // nothing there is refused rather than ignored.
    if args.fsync == Fsync::Full && args.database_url.is_some() {
        anyhow::bail!(
            "--fsync full applies to the embedded store only; with --database-url, durability is \
             PostgreSQL's own setting (synchronous_commit, fsync)"
        );
    }
    let extra_roots = extra_root_certs(args.test_extra_root_ca.as_deref())?;
    // Before anything reads the clock.
    crate::model::set_test_clock_offset_ms(test_clock_offset_ms()?);
    install_catalogue(&args.catalogue)?;
    crate::metrics::label_by_app_key(args.metrics_app_key_label);
    {
        // A data dir hookline creates is private (0700): it holds the admin token and the
        // embedded database (signing secrets, phone numbers).
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            dir.mode(0o700);
        }
        dir.create(&args.data_dir)
            .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    }
    let lease_ttl = args.lease_ttl.max(Duration::from_millis(300));
    let node_id = args.node_id.clone().unwrap_or_else(generated_node_id);
    let mut shared = false;
    let store: Arc<dyn Store> = match &args.database_url {
        None => Arc::new(
            SqliteStore::open_with(&args.data_dir, args.fsync)
                .with_context(|| format!("cannot open the store in {}", args.data_dir.display()))?,
        ),
        Some(url) if url.starts_with("sqlite:") || url.starts_with("file:") => {
            anyhow::bail!("--database-url: use --data-dir for the embedded store")
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            shared = true;
            tracing::info!(
                node_id,
                lease_ttl_ms = lease_ttl.as_millis() as u64,
                "PostgreSQL store: this node shares the database with any others"
            );
            let node = NodeOptions {
                node_id: node_id.clone(),
                lease_ttl,
                pool_size: args.pg_pool_size.max(1),
                claims_at_once: args.pg_claims_at_once.max(1),
                lock_timeout: args.pg_lock_timeout,
                statement_timeout: args.pg_statement_timeout,
                claim_lock_wait: crate::store::postgres::DEFAULT_CLAIM_LOCK_WAIT,
                // The process's clock is skewed instead (`test_clock_offset_ms` above).
                test_clock_skew_ms: 0,
            };
            Arc::new(
                PostgresStore::open(url, node)
                    .await
                    .context("cannot open the PostgreSQL store (--database-url)")?,
            )
        }
        Some(_) => anyhow::bail!(
            "--database-url: expected postgres://user@host:port/database; leave it unset for \
             the embedded store"
        ),
    };
    let token = admin_token(&args.data_dir)?;

    let (engine, engine_task) = Engine::start(
        store.clone(),
        EngineSettings {
            allow_private_targets: args.allow_private_targets,
            health: HealthPolicy {
                failing_after: args.failing_after.max(1),
                disable_after: args.disable_after,
            },
            shutdown_grace: args.shutdown_grace,
            // Expired leases are found within a third of the lease time.
            sweep_every: shared.then(|| lease_ttl / 3),
            extra_root_certs: extra_roots,
            produce_operational_events: !test_operational_events_held(),
        },
    )
    .await?;

    let service = Arc::new(Service::new(
        store.clone(),
        engine.clone(),
        TenantLimits {
            max_configs_per_app_key: args.max_configs_per_app_key.max(1),
        },
    ));
    // One throttle for every credential check, the API's and the dashboard's sign-in.
    let auth_failures = Arc::new(FailureThrottle::new(ThrottleLimits {
        per_address: args.auth_failures_per_address,
        per_target: args.auth_failures_per_target,
        ..ThrottleLimits::default()
    }));
    let state = Arc::new(AppState {
        service: service.clone(),
        admin_token_hash: hash_secret(&token),
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            ingest: hookline_wire::IngestLimits {
                max_hooks: args.max_hooks_per_request,
                max_hook_bytes: args.max_hook_bytes,
            },
        },
        ingest_rate_limiter: ingest_rate.map(api::ratelimit::IngestRateLimiter::new),
        auth_failures: auth_failures.clone(),
        public_url: args.public_url.clone(),
    });
    let retention = crate::retention::spawn(
        store.clone(),
        crate::retention::RetentionSettings {
            keep: args.retention,
            interval: args.retention_interval.max(Duration::from_millis(10)),
        },
    );
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local: SocketAddr = listener.local_addr()?;
    tracing::info!(
        address = %local,
        data_dir = %args.data_dir.display(),
        allow_private_targets = args.allow_private_targets,
        "hookline serving"
    );
    // The one line on stdout: scripts and tests wait for it to know the server is ready.
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("hookline listening on http://{local}\n").as_bytes())
        .await?;
    stdout.flush().await?;

    // Two front ends over one service, side by side: the API (JSON, `/v1`, `/docs`, operations)
    // and the dashboard (HTML, `/` and `/ui/`).
    let app = api::router(state).merge(crate::dashboard::router(service, auth_failures));
    let limits = ListenerLimits {
        max_connections: args.max_connections.max(1),
        max_connections_per_ip: args.max_connections_per_ip.max(1),
        header_read_timeout: args.header_read_timeout.max(Duration::from_millis(100)),
        trusted_proxies: crate::listener::TrustedProxies::new(args.trusted_proxy.clone()),
    }
    .within_fd_limit();
    crate::listener::serve(listener, app, limits, shutdown_signal()).await?;
    tracing::info!("no longer accepting requests; draining deliveries");
    retention.abort();
    engine.shutdown().await;
    drop(engine);
    // Attempts are drained; the dispatcher ends once the last handle is gone.
    let _ = tokio::time::timeout(Duration::from_secs(2), engine_task).await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use super::parse_public_url;

    #[test]
    fn a_public_url_is_an_http_origin_kept_without_its_trailing_slash() {
        assert_eq!(
            parse_public_url("https://hookline.example.com/").as_deref(),
            Ok("https://hookline.example.com")
        );
        assert_eq!(
            parse_public_url("http://127.0.0.1:8080").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        for bad in [
            "hookline.example.com",
            "ftp://hookline.example.com",
            "https://hookline.example.com/?a=1",
            "https://hookline.example.com/#x",
            "/ui",
            "",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad:?} accepted");
        }
    }
}
