//! Connections to the database file: how each is opened (WAL, sync level, caches), the pool of
//! read-only connections that reads run on, and the mapping of driver errors to [`StoreError`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::config::DbConfig;

use super::SqliteStore;
use crate::store::{StoreError, StoreResult};

const READER_POOL_SIZE: usize = 4;

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        db_err(e)
    }
}

pub(super) struct ReaderPool {
    pub(super) path: PathBuf,
    pub(super) idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn get(&self) -> StoreResult<Connection> {
        if let Some(conn) = self.idle.lock().map_err(poisoned)?.pop() {
            return Ok(conn);
        }
        open_connection(&self.path, true)
    }

    fn put(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < READER_POOL_SIZE
        {
            idle.push(conn);
        }
    }
}

pub(super) fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("reader pool lock poisoned".into())
}

pub(super) fn open_connection(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    // Plans must not depend on bound values. Otherwise SQLite marks a statement whose plan might
    // (a `LIMIT ?`, a min/max probe) to be recompiled when its parameters change, and the
    // statement cache clears every statement's bindings when it takes it back: such statements
    // were compiled again on every use (a sixth of the server's instructions under load).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    if read_only {
        conn.pragma_update(None, "query_only", "ON")?;
    } else {
        // A moderate cache: SQLite scans the page cache's hash at every commit, so a huge cache
        // costs more per commit than it saves in reads.
        conn.pragma_update(None, "cache_size", "-8192")?;
        // Checkpoints run on their own thread (see `writer::checkpoint_loop`).
        conn.pragma_update(None, "wal_autocheckpoint", "0")?;
        // When the WAL starts again from its beginning, a file left larger (a reader kept it
        // from starting again for a while) is cut back to this: twice the size at which the
        // writer lets it start again (`writer::WalRestart`), so the usual cycle never cuts it.
        conn.pragma_update(None, "journal_size_limit", 128 * 1024 * 1024)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Runs `f` on a reader connection on the blocking pool.
    pub(super) async fn read<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            let result = f(&conn);
            pool.put(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reader task failed: {e}")))?
    }

    pub(super) async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}
