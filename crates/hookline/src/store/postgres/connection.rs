//! Connections to the database: the driver's errors as [`StoreError`]s, connecting, the pool
//! that reads and claims use, and scratch databases for tests.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{Client, NoTls};

use super::PostgresStore;
use crate::store::{StoreError, StoreResult};

/// Pooled connections: reads, and claims (each its own short transaction).
const READER_POOL_SIZE: usize = 16;

/// Connection and I/O failures make the store unavailable (callers answer 503); so does any other
/// database error: nothing was half-written, the group rolled back.
pub(super) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    // `Display` of a server error says only "db error": the code and message are the useful part.
    match e.as_db_error() {
        Some(db) => {
            StoreError::Unavailable(format!("postgres: {} ({})", db.message(), db.code().code()))
        }
        None => StoreError::Unavailable(format!("postgres: {e}")),
    }
}

pub(super) fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("postgres pool: {e}"))
}

pub(super) fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("store lock poisoned".into())
}

pub(super) async fn connect(config: &tokio_postgres::Config) -> StoreResult<Client> {
    let (client, connection) = config.connect(NoTls).await.map_err(pg_err)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "postgres writer connection ended");
        }
    });
    Ok(client)
}

pub(super) fn parse_url(url: &str) -> StoreResult<tokio_postgres::Config> {
    url.parse()
        .map_err(|e| StoreError::Unavailable(format!("database url: {e}")))
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

#[cfg(test)]
pub(crate) async fn create_test_database(url: &str) -> StoreResult<tokio_postgres::Config> {
    let name = create_scratch_database(url).await?;
    let mut config = parse_url(url)?;
    config.dbname(&name);
    Ok(config)
}

/// The pool of connections for reads and claims.
pub(super) fn reader_pool(config: tokio_postgres::Config) -> StoreResult<Pool> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(READER_POOL_SIZE)
        .build()
        .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))
}

impl PostgresStore {
    /// A pooled connection for reads.
    pub(super) async fn reader(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_err)
    }

    pub(super) async fn ping(&self) -> StoreResult<()> {
        let c = self.reader().await?;
        c.query_one("SELECT 1", &[]).await.map_err(pg_err)?;
        Ok(())
    }
}
