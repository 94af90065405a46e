//! Reading what a server stored, whichever its store: the embedded SQLite file in its data dir, or
//! its PostgreSQL database (`HOOKLINE_ACCEPTANCE_STORE=postgres`, or `Options::database_url`).
//! For checks that the API cannot make (what a refused request left behind, how secrets are kept).

use std::path::PathBuf;

use rusqlite::types::ValueRef;
use tokio_postgres::types::{ToSql, Type};

use super::server::Server;

/// Every text a store holds, from every table of it (see [`Server::stored_text`]).
#[derive(Debug, Default)]
pub struct StoredText {
    /// The store's tables.
    pub tables: Vec<String>,
    /// (table, cell as text), one per cell read.
    pub cells: Vec<(String, String)>,
}

impl Server {
    /// The embedded store's file.
    fn sqlite_path(&self) -> PathBuf {
        self.data_dir().join("hookline.db")
    }

    /// The embedded store, read-only (the server may be running: the harness never writes).
    fn open_sqlite(&self) -> rusqlite::Connection {
        let path = self.sqlite_path();
        rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap_or_else(|e| self.fail(format!("open {}: {e}", path.display())))
    }

    /// A connection to the server's PostgreSQL database (its connection task runs until the client
    /// is dropped).
    async fn connect_postgres(&self, url: &str) -> tokio_postgres::Client {
        // The store's own connect: the URL's sslmode and sslrootcert as the server reads them.
        hookline::store::postgres::connect_url(url)
            .await
            .unwrap_or_else(|e| self.fail(format!("connect to {url}: {e}")))
    }

    /// Runs the query `sql` with `params` on the server's store, whichever it is, and returns its
    /// rows, each cell as text (`None` for NULL; numbers and booleans in their usual spelling).
    /// Placeholders are `$1`, `$2`, ... (both stores accept them); the SQL must suit both stores'
    /// schemas, which have the same tables and columns. Fails the test on any error.
    pub async fn store_query_strings(
        &self,
        sql: &str,
        params: &[&str],
    ) -> Vec<Vec<Option<String>>> {
        match self.database_url() {
            None => {
                let db = self.open_sqlite();
                let mut stmt = db
                    .prepare(sql)
                    .unwrap_or_else(|e| self.fail(format!("SQLite: prepare {sql:?}: {e}")));
                let n = stmt.column_count();
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(params))
                    .unwrap_or_else(|e| self.fail(format!("SQLite: {sql:?}: {e}")));
                let mut out = Vec::new();
                loop {
                    let row = match rows.next() {
                        Ok(Some(row)) => row,
                        Ok(None) => return out,
                        Err(e) => self.fail(format!("SQLite: {sql:?}: {e}")),
                    };
                    out.push(
                        (0..n)
                            .map(|i| match row.get_ref(i) {
                                Ok(v) => sqlite_text(v),
                                Err(e) => self.fail(format!("SQLite: {sql:?}: column {i}: {e}")),
                            })
                            .collect(),
                    );
                }
            }
            Some(url) => {
                let client = self.connect_postgres(url).await;
                let params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                let rows = client
                    .query(sql, &params)
                    .await
                    .unwrap_or_else(|e| self.fail(format!("PostgreSQL: {sql:?}: {e:?}")));
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                postgres_text(row, i).unwrap_or_else(|e| {
                                    self.fail(format!("PostgreSQL: {sql:?}: column {i}: {e}"))
                                })
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// Every text the server's store holds: every table, and in each every text cell (SQLite: its
    /// TEXT and BLOB values; PostgreSQL: every non-NULL cell of the schema `public`, cast to
    /// text). For proving that something is not stored in clear.
    pub async fn stored_text(&self) -> StoredText {
        let mut out = StoredText::default();
        match self.database_url() {
            None => {
                let db = self.open_sqlite();
                let fail = |e: rusqlite::Error| -> ! { self.fail(format!("SQLite: {e}")) };
                out.tables = db
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .unwrap_or_else(|e| fail(e))
                    .query_map([], |r| r.get(0))
                    .unwrap_or_else(|e| fail(e))
                    .collect::<Result<_, _>>()
                    .unwrap_or_else(|e| fail(e));
                for table in &out.tables {
                    let mut stmt = db
                        .prepare(&format!("SELECT * FROM {}", quote_ident(table)))
                        .unwrap_or_else(|e| fail(e));
                    let n = stmt.column_count();
                    let mut rows = stmt.query([]).unwrap_or_else(|e| fail(e));
                    while let Some(row) = rows.next().unwrap_or_else(|e| fail(e)) {
                        for i in 0..n {
                            if let ValueRef::Text(t) | ValueRef::Blob(t) =
                                row.get_ref(i).unwrap_or_else(|e| fail(e))
                            {
                                let text = String::from_utf8_lossy(t).into_owned();
                                out.cells.push((table.clone(), text));
                            }
                        }
                    }
                }
            }
            Some(url) => {
                let client = self.connect_postgres(url).await;
                let fail = |e: tokio_postgres::Error| -> ! {
                    self.fail(format!("PostgreSQL ({url}): {e:?}"))
                };
                out.tables = client
                    .query(
                        "SELECT table_name::text FROM information_schema.tables \
                         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
                         ORDER BY table_name",
                        &[],
                    )
                    .await
                    .unwrap_or_else(|e| fail(e))
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                for table in &out.tables {
                    let columns: Vec<String> = client
                        .query(
                            "SELECT column_name::text FROM information_schema.columns \
                             WHERE table_schema = 'public' AND table_name = $1 \
                             ORDER BY ordinal_position",
                            &[table],
                        )
                        .await
                        .unwrap_or_else(|e| fail(e))
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    if columns.is_empty() {
                        self.fail(format!("PostgreSQL: table {table} has no columns"));
                    }
                    let select = columns
                        .iter()
                        .map(|c| format!("{}::text", quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!("SELECT {select} FROM {}", quote_ident(table));
                    for row in client.query(&sql, &[]).await.unwrap_or_else(|e| fail(e)) {
                        for i in 0..row.len() {
                            if let Some(text) = row.get::<_, Option<String>>(i) {
                                out.cells.push((table.clone(), text));
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// `name` as an SQL identifier (both stores quote with `"`).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sqlite_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

/// Cell `i` of `row` as text, for the column types the store uses; others must be cast to text in
/// the query.
fn postgres_text(row: &tokio_postgres::Row, i: usize) -> Result<Option<String>, String> {
    fn text<T: ToString>(
        v: Result<Option<T>, tokio_postgres::Error>,
    ) -> Result<Option<String>, String> {
        v.map(|v| v.map(|v| v.to_string()))
            .map_err(|e| format!("{e:?}"))
    }
    let column = &row.columns()[i];
    match *column.type_() {
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            text(row.try_get::<_, Option<String>>(i))
        }
        Type::INT8 => text(row.try_get::<_, Option<i64>>(i)),
        Type::INT4 => text(row.try_get::<_, Option<i32>>(i)),
        Type::INT2 => text(row.try_get::<_, Option<i16>>(i)),
        Type::FLOAT8 => text(row.try_get::<_, Option<f64>>(i)),
        Type::FLOAT4 => text(row.try_get::<_, Option<f32>>(i)),
        Type::BOOL => text(row.try_get::<_, Option<bool>>(i)),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .map_err(|e| format!("{e:?}")),
        ref other => Err(format!(
            "column {:?} is of type {other}: cast it to text in the query",
            column.name()
        )),
    }
}
