//! Dashboard sessions (`dashboard_sessions`): created through the writer, found by the hash of
//! their id, capped per app key, expired ones removed as new ones come.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::model::{Millis, SessionRecord};
use crate::store::StoreResult;

impl SqliteStore {
    pub(super) async fn create_session(
        &self,
        session: SessionRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<()> {
        // The app key's newest `keep - 1` stay beside the new one.
        let keep_others = keep_per_app_key.saturating_sub(1) as i64;
        self.write(move |tx| {
            tx.conn
                .prepare_cached("DELETE FROM dashboard_sessions WHERE expires_at <= ?1")?
                .execute(params![session.created_at])?;
            tx.conn
                .prepare_cached(
                    "DELETE FROM dashboard_sessions WHERE app_key = ?1 AND id_hash NOT IN \
                     (SELECT id_hash FROM dashboard_sessions WHERE app_key = ?1 \
                      ORDER BY expires_at DESC LIMIT ?2)",
                )?
                .execute(params![session.app_key, keep_others])?;
            tx.conn
                .prepare_cached(
                    "INSERT INTO dashboard_sessions \
                     (id_hash, app_key, secret_hash, csrf, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    session.id_hash,
                    session.app_key,
                    session.secret_hash,
                    session.csrf,
                    session.expires_at
                ])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn find_session(
        &self,
        id_hash: &str,
        now: Millis,
    ) -> StoreResult<Option<SessionRecord>> {
        let id_hash = id_hash.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT id_hash, app_key, secret_hash, csrf, expires_at \
                     FROM dashboard_sessions WHERE id_hash = ?1 AND expires_at > ?2",
                )?
                .query_row(params![id_hash, now], |r| {
                    let expires_at: Millis = r.get(4)?;
                    Ok(SessionRecord {
                        id_hash: r.get(0)?,
                        app_key: r.get(1)?,
                        secret_hash: r.get(2)?,
                        csrf: r.get(3)?,
                        // Not stored: only the expiry matters once created.
                        created_at: 0,
                        expires_at,
                    })
                })
                .optional()?)
        })
        .await
    }

    pub(super) async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        let id_hash = id_hash.to_owned();
        self.write(move |tx| {
            tx.conn
                .prepare_cached("DELETE FROM dashboard_sessions WHERE id_hash = ?1")?
                .execute(params![id_hash])?;
            Ok(())
        })
        .await
    }
}
