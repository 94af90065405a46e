//! Connections to the database: the driver's errors as [`StoreError`]s, the pools (the writer's
//! one connection, and the connections that reads and claims use), statements prepared once per
//! connection, requests pipelined on one connection, and scratch databases for tests.
//!
//! **Prepared statements.** Every statement goes through [`prepared`]: parsed and planned once
//! per connection and kept in that connection's cache (deadpool-postgres's `prepare_cached`),
//! so running it again is one Bind/Execute round trip instead of a Parse/Describe round trip,
//! a Bind/Execute round trip and the server planning it again. A connection that is opened again
//! (the server restarted) comes with an empty cache and prepares again on first use. The SQL of
//! every statement is a constant text (no values are ever formatted into it), so the caches hold
//! a few dozen statements and never grow.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use super::PostgresStore;
use super::tls::{MakeRustls, split_url};
use crate::store::{StoreError, StoreResult};

/// The planner setting of the writer's session and of claims. A prepared statement is planned
/// for its parameters five times, then once for all (a generic plan), kept until the tables it
/// reads are vacuumed or analyzed. Planned while a table is small (a fresh database, a queue
/// that is nearly always empty), a sequential scan is the cheapest way to find a few rows, and
/// stays the plan after the table has grown (a backlog of a million queued hooks, scanned by
/// every claim). Every statement of the writer and of claims finds its rows by key through an
/// index, so sequential scans are priced out there (a table without a usable index is still
/// scanned). Reads keep the planner's defaults.
pub(super) const NO_SEQSCAN: &str = "enable_seqscan=off";

/// With sequential scans priced out, the plan made once for all parameters is as good as one
/// made for each execution, which costs as much planning as running (0.2 to 0.5 ms for a claim
/// or a group's records): the writer's session and claims always use the generic plan.
pub(super) const GENERIC_PLANS: &str = "plan_cache_mode=force_generic_plan";

/// A pooled connection with its statement cache.
pub(crate) type Conn = deadpool_postgres::Object;

/// A pooled connection inside a transaction opened with several round trips (an ordered claim).
/// The pool recycles connections without looking for an open transaction (`RecyclingMethod::Fast`:
/// a check would cost a round trip per use), so if the future holding this is dropped before
/// its `COMMIT` or `ROLLBACK` came back (a cancelled caller, a failed `ROLLBACK`), the
/// connection leaves the pool instead of going back into it mid-transaction, holding its locks
/// and taking the next user's statements into that transaction. Closing it rolls back.
pub(super) struct InTransaction(Option<Conn>);

impl InTransaction {
    /// Sends `begin` (a `BEGIN` with its settings) on `conn`.
    pub(super) async fn begin(conn: Conn, begin: &str) -> StoreResult<InTransaction> {
        let tx = InTransaction(Some(conn));
        tx.conn()?.batch_execute(begin).await.map_err(pg_err)?;
        Ok(tx)
    }

    pub(super) fn conn(&self) -> StoreResult<&Conn> {
        self.0
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("a transaction's connection is gone".into()))
    }

    /// Ends the transaction with `end` (`COMMIT` or `ROLLBACK`); only once that came back does
    /// the connection go back to the pool.
    pub(super) async fn end(mut self, end: &str) -> StoreResult<()> {
        self.conn()?.batch_execute(end).await.map_err(pg_err)?;
        drop(self.0.take());
        Ok(())
    }
}

impl Drop for InTransaction {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            // Out of the pool, and closed when the client drops here.
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}

/// Statement parameters.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Connection and I/O failures make the store unavailable (callers answer 503); so does any other
/// database error: nothing was half-written, the group rolled back.
pub(super) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(format!("postgres: {}", describe(&e)))
}

/// The driver's error in words an operator can act on. `Display` of a server error says only
/// "db error", and of a failed connection only "error performing TLS handshake" or "error
/// connecting to server": the causes are the useful part, so they are appended. None of them
/// holds the connection config (nor its password): the driver's causes are server messages,
/// I/O errors and [`super::tls::TlsError`]s, which name the host and the TLS parameters only.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} ({})", db.message(), db.code().code());
        // A `hostssl`-only pg_hba.conf answers a plaintext connection with "no pg_hba.conf entry
        // for ... no encryption": say what to change on this side.
        if *db.code() == tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && db.message().contains("no encryption")
        {
            text.push_str(
                "; the server refuses connections without TLS: use sslmode=require, verify-ca \
                 or verify-full in --database-url",
            );
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.contains("server does not support TLS") {
        text.push_str(
            " (the sslmode in --database-url requires TLS; the server does not offer it)",
        );
    }
    text
}

pub(super) fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    // Only the error's text: a pool error never carries the connection config (nor its password).
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        e => StoreError::Unavailable(format!("postgres pool: {e}")),
    }
}

pub(super) fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("store lock poisoned".into())
}

/// How to reach the database: the driver's config and the TLS connector the URL's `sslmode`
/// and `sslrootcert` asked for (`tls.rs`).
#[derive(Clone)]
pub struct DbConfig {
    pub(super) pg: tokio_postgres::Config,
    pub(super) tls: MakeRustls,
}

impl DbConfig {
    /// The same server, another database (tests' scratch databases).
    pub fn with_dbname(mut self, name: &str) -> DbConfig {
        self.pg.dbname(name);
        self
    }

    /// Names the connections made from this config `hookline <node> <role>` in
    /// `pg_stat_activity` (and in the server's logs with `%a`), so that an operator sees which
    /// node, and which of its parts (its writer, its pool, its listener), holds a session, a lock
    /// or a long transaction. An `application_name` in the URL is kept as it is.
    pub(super) fn named(mut self, node: &str, role: &str) -> DbConfig {
        if self.pg.get_application_name().is_none() {
            self.pg.application_name(format!("hookline {node} {role}"));
        }
        self
    }

    /// For tests: the same server and database as another role.
    #[cfg(test)]
    pub(crate) fn with_user(mut self, user: &str) -> DbConfig {
        self.pg.user(user);
        self
    }

    /// For tests: a connection of their own, to look at or lock rows behind the store's back.
    #[cfg(test)]
    pub(crate) async fn connect(&self) -> StoreResult<Client> {
        connect(self).await
    }
}

/// A connection of its own, outside the pools (the listener's, scratch databases, the ceiling).
pub(super) async fn connect(config: &DbConfig) -> StoreResult<Client> {
    let (client, connection) = config
        .pg
        .connect(config.tls.clone())
        .await
        .map_err(pg_err)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %describe(&e), "postgres connection ended");
        }
    });
    Ok(client)
}

/// A connection of its own to `url` (TLS as its `sslmode` says), for tools and tests that look
/// at the database behind the store's back. Its connection task runs until the client is dropped.
pub async fn connect_url(url: &str) -> StoreResult<Client> {
    connect(&parse_url(url)?).await
}

/// Parses a `postgres://` URL, with libpq's `sslmode` and `sslrootcert` (see `tls.rs`). Errors
/// never repeat the URL: it may hold a password.
pub fn parse_url(url: &str) -> StoreResult<DbConfig> {
    let (url, tls_options) = split_url(url)?;
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Unavailable(format!("database url: {e}")))?;
    config.ssl_mode(tls_options.driver_mode());
    // A database that cannot be reached must make requests fail (503) in seconds, not hang
    // them on a connection attempt for as long as the kernel retries (`connect_timeout` in the
    // URL overrides this).
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    idle_connection_probes(&mut config);
    Ok(DbConfig {
        pg: config,
        tls: MakeRustls::new(&tls_options)?,
    })
}

/// How long opening a connection may take unless the URL says otherwise.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// An idle connection's keepalive probes: the first after this much silence, then one every
/// [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_RETRIES`] of them unanswered and the kernel closes it
/// (the URL's `keepalives_idle`, `keepalives_interval`, `keepalives_retries` override them).
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;
/// The driver's keepalive idle time when the URL gives none (libpq's default, the kernel's): a
/// URL that asks for exactly this gets [`KEEPALIVE_IDLE`] too (the two cannot be told apart).
const DRIVER_KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(2 * 60 * 60);

/// Lets the kernel close a connection the network stopped carrying. A database failed over
/// behind the same address, a route or a firewall's state table lost: packets vanish and nothing
/// closes the connection, which stays open (and in its pool, or as a writer's) for as long as
/// the kernel retransmits (about 15 minutes) or, idle, for two hours before its first keepalive
/// probe; every call that gets it waits for the answer bound and fails (503). Idle, it is probed
/// from [`KEEPALIVE_IDLE`] of silence on; the store's connections also have a user timeout
/// ([`unacknowledged_for`]), with which the kernel counts silence, not probes: it closes the
/// connection at the first probe once the silence has lasted that timeout (about 40 s with the
/// default timeouts), and its pool, writer or listener opens a new one. A database whose
/// processes are stopped is not such a connection (its kernel still answers the probes): the
/// answer bound covers that.
fn idle_connection_probes(config: &mut tokio_postgres::Config) {
    if config.get_keepalives() {
        if config.get_keepalives_idle() == DRIVER_KEEPALIVE_IDLE {
            config.keepalives_idle(KEEPALIVE_IDLE);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(KEEPALIVE_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(KEEPALIVE_RETRIES);
        }
    }
}

/// The store's connections (reads, claims, the writers', the listener) are also closed by the
/// kernel once what they sent has gone unacknowledged for the answer bound (`TCP_USER_TIMEOUT`;
/// the URL's `tcp_user_timeout` overrides it): by then their callers have given up
/// (`answered`), and a statement that may still legitimately run (within `statement_timeout` +
/// `lock_timeout`) ends before it, even one whose server, busy with it, stopped reading what was
/// pipelined behind it (a zero window counts as unacknowledged). Without it, such a connection
/// stayed in its pool for as long as the kernel retransmits, and every call that got it failed
/// at the bound.
pub(super) fn unacknowledged_for(config: &mut tokio_postgres::Config, limits: &Limits) {
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(limits.answer_within());
    }
}

/// The statement `sql`, prepared on this connection the first time it is asked for and taken
/// from the connection's cache after that (no round trip).
pub(super) async fn prepared(c: &Conn, sql: &str) -> StoreResult<Statement> {
    c.prepare_cached(sql).await.map_err(pg_err)
}

pub(super) async fn query(c: &Conn, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
    let statement = prepared(c, sql).await?;
    c.query(&statement, params).await.map_err(pg_err)
}

pub(super) async fn query_one(c: &Conn, sql: &str, params: Params<'_>) -> StoreResult<Row> {
    let statement = prepared(c, sql).await?;
    c.query_one(&statement, params).await.map_err(pg_err)
}

pub(super) async fn query_opt(c: &Conn, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
    let statement = prepared(c, sql).await?;
    c.query_opt(&statement, params).await.map_err(pg_err)
}

pub(super) async fn execute(c: &Conn, sql: &str, params: Params<'_>) -> StoreResult<u64> {
    let statement = prepared(c, sql).await?;
    c.execute(&statement, params).await.map_err(pg_err)
}

pub(super) type Step<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs requests on one connection without waiting for each other's answers: tokio-postgres
/// sends a request when its future is first polled, and the server runs requests in the order
/// they arrive. This polls the futures in the order given, every time, so their requests are
/// sent (and run) in that order, all in one round trip. Each future must send its one request on
/// its first poll: its statement prepared beforehand ([`prepared`]), nothing awaited before it.
pub(super) async fn pipeline<'a, T>(steps: Vec<Step<'a, T>>) -> Vec<T> {
    let mut steps: Vec<Option<Step<'a, T>>> = steps.into_iter().map(Some).collect();
    let mut done: Vec<Option<T>> = steps.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (step, out) in steps.iter_mut().zip(done.iter_mut()) {
            if let Some(future) = step {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *out = Some(value);
                        *step = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// Like [`pipeline`], with `last` sent after all the steps but not waited for: once the steps
/// have answered it is handed back, its request on its way (or already answered), for the
/// caller to wait for elsewhere.
pub(super) async fn pipeline_then<'a, T, L: Send + 'a>(
    steps: Vec<Step<'a, T>>,
    last: Step<'a, L>,
) -> (Vec<T>, Step<'a, L>) {
    let mut steps: Vec<Option<Step<'a, T>>> = steps.into_iter().map(Some).collect();
    let mut done: Vec<Option<T>> = steps.iter().map(|_| None).collect();
    let mut last = Some(last);
    let mut last_done: Option<L> = None;
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (step, out) in steps.iter_mut().zip(done.iter_mut()) {
            if let Some(future) = step {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *out = Some(value);
                        *step = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        // Polled after the steps every time, so its request goes out behind theirs; whether it
        // has answered does not decide when this returns.
        if let Some(future) = &mut last
            && let Poll::Ready(value) = future.as_mut().poll(cx)
        {
            last_done = Some(value);
            last = None;
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    let last = match (last, last_done) {
        (Some(future), _) => future,
        (None, Some(value)) => Box::pin(std::future::ready(value)),
        // Unreachable: `last` is either still pending or has answered.
        (None, None) => Box::pin(std::future::pending()),
    };
    (done.into_iter().flatten().collect(), last)
}

/// For tests: creates a new, empty database on the server of `url` and returns its name, so
/// every test (or test server) starts from nothing.
pub async fn create_scratch_database(url: &str) -> StoreResult<String> {
    let config = parse_url(url)?;
    let client = connect(&config).await?;
    let name = format!(
        "hookline_test_{}",
        hookline_wire::generate_id().to_lowercase()
    );
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(pg_err)?;
    Ok(name)
}

/// Drops a database [`create_scratch_database`] made, so benchmark runs do not pile up on the
/// cluster: `WITH (FORCE)` ends sessions still on it (PostgreSQL 13 and later), else a plain
/// `DROP` (older servers). `name` is only ever one that function returned (letters, digits and
/// `_`).
pub async fn drop_scratch_database(url: &str, name: &str) -> StoreResult<()> {
    if !name.starts_with("hookline_test_")
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(crate::store::StoreError::Unavailable(format!(
            "{name} is not a scratch database"
        )));
    }
    let client = connect(&parse_url(url)?).await?;
    if client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .is_ok()
    {
        return Ok(());
    }
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .map_err(pg_err)
}

#[cfg(test)]
pub(crate) async fn create_test_database(url: &str) -> StoreResult<DbConfig> {
    let name = create_scratch_database(url).await?;
    Ok(parse_url(url)?.with_dbname(&name))
}

/// How the store's connections behave: their number and the server-side timeouts.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub pool_size: usize,
    pub lock_timeout: std::time::Duration,
    pub statement_timeout: std::time::Duration,
}

impl Limits {
    /// Session settings of every pooled connection (the writer's, reads and claims):
    /// `lock_timeout` and `statement_timeout`, so that a statement stuck behind another
    /// session's lock (an operator's `LOCK TABLE`, a long migration, another node's stuck
    /// transaction) or running away fails with an error (the writer's group fails: its ingests
    /// answer 503, its records are written again later; a claim fails and the config backs
    /// off) instead of holding the writer, and every request behind it, forever. Sent in the
    /// startup packet, so a reconnected connection has them too.
    ///
    /// And `jit = off`: the store's statements are short, and the sessions that plan without
    /// sequential scans (`NO_SEQSCAN`) price any seq scan left in a plan (the `nodes` table's
    /// few rows, a CTE's) at 10^10, far above `jit_above_cost`: the server then compiled such a
    /// statement with LLVM on every execution, 50 to 300 ms each for a statement that runs in
    /// well under one (the writer's heartbeat, measured with `auto_explain` in the cluster tests).
    ///
    /// And `idle_in_transaction_session_timeout` of the answer bound: a transaction of the
    /// node's own that waits for its next statement longer than that has been given up on by
    /// its caller (`answered`); its next statement was lost with the network, or the node froze
    /// or died mid-job. The server then ends the session and its locks go with it (a config row
    /// or a delivery's, a hook being inserted), where they were held until the server noticed
    /// the connection gone (its `tcp_keepalives_*`: two hours by default). The store's own
    /// transactions wait between statements only for the node's next step (microseconds to
    /// milliseconds).
    fn session_options(&self) -> String {
        format!(
            "-c jit=off -c lock_timeout={} -c statement_timeout={} \
             -c idle_in_transaction_session_timeout={}",
            self.lock_timeout.as_millis().max(1),
            self.statement_timeout.as_millis().max(1),
            self.answer_within().as_millis().max(1)
        )
    }

    /// How long a request waits for a pooled connection: as long as a statement may run, so
    /// a pool whose connections are all stuck answers 503 rather than queueing requests forever.
    pub(super) fn pool_wait(&self) -> std::time::Duration {
        self.statement_timeout
            .saturating_add(self.lock_timeout)
            .max(std::time::Duration::from_secs(1))
    }

    /// The longest any caller of the store waits for the database to answer (`answered`):
    /// longer than any statement may wait for a lock and run, by [`ANSWER_MARGIN`].
    ///
    /// The server's timeouts end statements that wait or run too long, but a database that stops
    /// answering altogether (its host frozen or cut off without a reset, the server's processes
    /// stopped) ends nothing: the kernel still acknowledges what is sent, or nothing comes back
    /// at all, and a caller waited for its answer as long as that lasted (an ingest 100 s and
    /// more, measured with the server's processes stopped). Past this bound the caller gets
    /// "unavailable" (an ingest `503`) while the statement may still run once the database is
    /// back: an ingest's hooks may then be stored, which is why a producer sends the same
    /// request again (same `hookId`s: acknowledged, not stored twice).
    pub(super) fn answer_within(&self) -> std::time::Duration {
        self.pool_wait().saturating_add(ANSWER_MARGIN)
    }
}

/// How much longer than a statement may take (its lock wait and its run) a caller waits for the
/// database's answer: the round trips and the commit around the statement.
const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a readiness check (`ping`) waits: a database that takes longer to answer `SELECT 1`
/// is not ready to serve, and a load balancer's check should learn it before its own timeout.
pub(super) const PING_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// `op`, or "unavailable" once `limit` has passed without its answer (see
/// [`Limits::answer_within`]). Dropping `op` there leaves no pooled connection inside a
/// transaction: a transaction on a pooled connection is either an [`InTransaction`] (the
/// connection leaves the pool when it is dropped before its end), or sent whole on its first
/// poll (`BEGIN` to `COMMIT`, the plain claim: the server runs it to its end whatever the
/// caller does), or the driver's own `Transaction` (rolled back when dropped). A writer's caller
/// only stops waiting: the writer skips a job whose caller is gone before it starts
/// (`writer::run_job`, `IngestJob::abandoned`; but for a test send's record, made regardless),
/// and finishes one already sent. What a job left for its caller to do is not done: a claim's
/// deliveries, or a lease, are not held (renewed), so they are sent once their lease expires.
pub(super) async fn answered<T>(
    limit: std::time::Duration,
    op: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    match tokio::time::timeout(limit, op).await {
        Ok(result) => result,
        Err(_) => {
            crate::metrics::store_not_answering();
            Err(StoreError::Unavailable(format!(
                "postgres: no answer within {} ms: the database is not answering",
                limit.as_millis()
            )))
        }
    }
}

fn with_options(mut config: DbConfig, ours: &str) -> DbConfig {
    let options = match config.pg.get_options() {
        Some(given) => format!("{given} {ours}"),
        None => ours.to_owned(),
    };
    config.pg.options(&options);
    config
}

fn pool(config: DbConfig, size: usize, limits: &Limits) -> StoreResult<Pool> {
    let mut config = with_options(config, &limits.session_options());
    unacknowledged_for(&mut config.pg, limits);
    let manager = Manager::from_config(
        config.pg,
        config.tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(limits.pool_wait()))
        // `connect_timeout` bounds the TCP connect only; the TLS handshake and the start-up
        // exchange after it are bounded here, so a server that accepts and then never answers
        // (one going down or coming up) fails the caller instead of holding it forever.
        .create_timeout(Some(CONNECT_TIMEOUT.saturating_mul(2)))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))
}

/// The pool of connections for reads and claims (`--pg-pool-size`).
pub(super) fn reader_pool(config: DbConfig, limits: &Limits) -> StoreResult<Pool> {
    pool(config, limits.pool_size, limits)
}

/// The writer's one connection, in a pool of its own: it gets a statement cache like the others,
/// and a connection that died (a server restart) is replaced, with an empty cache, the next time
/// the writer asks for it. Its sessions plan without sequential scans ([`NO_SEQSCAN`]), once per
/// statement ([`GENERIC_PLANS`]).
pub(super) fn writer_pool(config: DbConfig, limits: &Limits) -> StoreResult<Pool> {
    let config = with_options(config, &format!("-c {NO_SEQSCAN} -c {GENERIC_PLANS}"));
    pool(config, 1, limits)
}

/// Refuses to start a node whose connections the server cannot take: `max_connections`, less
/// the slots reserved for superusers (and, from PostgreSQL 16, `reserved_connections`) unless
/// this role is a superuser, less the client connections open now (other nodes', other
/// clients', this node's jobs writer), must leave room for the rest of this node's: its pool,
/// its ingest writers and its listener. Found at start, with the numbers, rather than as "too many clients" on some
/// request under load. Other nodes' pools open lazily, so connections they have not opened yet
/// are not counted: size `max_connections` for every node's full share (README, "Several
/// nodes").
pub(super) async fn check_connection_budget(writer: &Conn, limits: &Limits) -> StoreResult<()> {
    let row = query_one(
        writer,
        "SELECT current_setting('max_connections')::INT,                 current_setting('superuser_reserved_connections')::INT,                 COALESCE(NULLIF(current_setting('reserved_connections', true), '')::INT, 0),                 (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::INT,                 (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
        &[],
    )
    .await?;
    let get = |i: usize| -> StoreResult<i64> {
        row.try_get::<_, i32>(i)
            .map(i64::from)
            .map_err(|e| StoreError::Unavailable(format!("postgres: max_connections: {e}")))
    };
    let max = get(0)?;
    let reserved = get(1)? + get(2)?;
    let in_use = get(3)?;
    let superuser: bool = row
        .try_get::<_, Option<bool>>(4)
        .ok()
        .flatten()
        .unwrap_or(false);
    let allowed = if superuser { max } else { max - reserved };
    // The jobs writer's connection is open (counted in `in_use`); the pool, the ingest writers'
    // and the listener's are not.
    let wanted = (limits.pool_size + super::cluster::CONNECTIONS_BESIDES_POOL) as i64 - 1;
    if in_use + wanted > allowed {
        return Err(StoreError::Unavailable(format!(
            "PostgreSQL cannot take this node's connections: it needs {} (--pg-pool-size {} + \
             the writers' + the listener's), {in_use} are open already (this node's writer, \
             other nodes and clients), and the server allows {allowed} (max_connections {max}{}); \
             lower --pg-pool-size or raise max_connections",
            limits.pool_size + super::cluster::CONNECTIONS_BESIDES_POOL,
            limits.pool_size,
            if superuser {
                String::new()
            } else {
                format!(" less {reserved} reserved")
            }
        )));
    }
    Ok(())
}

impl PostgresStore {
    /// A pooled connection for reads.
    pub(super) async fn reader(&self) -> StoreResult<Conn> {
        self.pool.get().await.map_err(pool_err)
    }

    /// For tests: a pooled connection, held (not back in the pool) until dropped.
    #[cfg(test)]
    pub(crate) async fn pooled_for_test(&self) -> StoreResult<Conn> {
        self.reader().await
    }

    /// For tests: runs `sql` on a pooled connection, with the pool's session settings.
    #[cfg(test)]
    pub(crate) async fn execute_on_pool_for_test(&self, sql: &str) -> StoreResult<()> {
        let c = self.reader().await?;
        c.batch_execute(sql).await.map_err(pg_err)
    }

    /// Readiness: a read answers, and neither writer lane is stuck (a node whose writers get no
    /// answer refuses the writes that wait for them, see `writer::LaneProgress`, while its reads
    /// may still work).
    pub(super) async fn ping(&self) -> StoreResult<()> {
        self.refuse_if_stuck(super::writer::Lane::Ingests)?;
        self.refuse_if_stuck(super::writer::Lane::Jobs)?;
        let c = self.reader().await?;
        query_one(&c, "SELECT 1", &[]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_closes_a_connection_the_network_stopped_carrying_unless_the_url_says_otherwise() {
        let limits = Limits {
            pool_size: 4,
            lock_timeout: std::time::Duration::from_secs(5),
            statement_timeout: std::time::Duration::from_secs(30),
        };
        let mut plain = parse_url("postgres://u@db.example/hl?sslmode=disable").unwrap();
        assert!(plain.pg.get_keepalives(), "keepalives stay on");
        assert_eq!(plain.pg.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(plain.pg.get_keepalives_interval(), Some(KEEPALIVE_INTERVAL));
        assert_eq!(plain.pg.get_keepalives_retries(), Some(KEEPALIVE_RETRIES));
        // Probed from 30 s of silence on, every 10 s.
        let probed = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_RETRIES;
        assert!(probed <= std::time::Duration::from_secs(60), "{probed:?}");
        // The store's own (pools, writers, listener) also give up once what they sent, or the
        // silence their probes met, has lasted the answer bound: after any statement their
        // timeouts allow.
        assert_eq!(plain.pg.get_tcp_user_timeout(), None, "set by the store");
        unacknowledged_for(&mut plain.pg, &limits);
        assert_eq!(
            plain.pg.get_tcp_user_timeout(),
            Some(&limits.answer_within())
        );
        assert!(limits.answer_within() > limits.statement_timeout + limits.lock_timeout);

        // The URL's own values win (tokio-postgres reads these in seconds).
        let mut own = parse_url(
            "postgres://u@db.example/hl?sslmode=disable&tcp_user_timeout=90\
             &keepalives_idle=600&keepalives_interval=30&keepalives_retries=9",
        )
        .unwrap();
        unacknowledged_for(&mut own.pg, &limits);
        assert_eq!(
            own.pg.get_tcp_user_timeout(),
            Some(&std::time::Duration::from_secs(90))
        );
        assert_eq!(
            own.pg.get_keepalives_idle(),
            std::time::Duration::from_secs(600)
        );
        assert_eq!(
            own.pg.get_keepalives_interval(),
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(own.pg.get_keepalives_retries(), Some(9));

        // Keepalives turned off stay off.
        let off = parse_url("postgres://u@db.example/hl?sslmode=disable&keepalives=0").unwrap();
        assert!(!off.pg.get_keepalives());
    }
}
