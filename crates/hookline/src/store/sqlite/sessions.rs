//! Dashboard sessions (`dashboard_sessions`) and the portal links that open them
//! (`portal_links`): created through the writer, found by the hash of their id or token, capped
//! per app key, expired ones removed as new ones come.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::model::{
    Millis, PortalLinkRecord, PortalRedemption, SessionOrigin, SessionRecord, SessionStart,
};
use crate::store::StoreResult;

/// Stores `session`; expired sessions go, and the app key's oldest beyond `keep_per_app_key`
/// (the new one counted).
fn insert_session(
    conn: &Connection,
    session: &SessionRecord,
    keep_per_app_key: usize,
) -> StoreResult<()> {
    // The app key's newest `keep - 1` stay beside the new one.
    let keep_others = keep_per_app_key.saturating_sub(1) as i64;
    conn.prepare_cached("DELETE FROM dashboard_sessions WHERE expires_at <= ?1")?
        .execute(params![session.created_at])?;
    conn.prepare_cached(
        "DELETE FROM dashboard_sessions WHERE app_key = ?1 AND id_hash NOT IN \
         (SELECT id_hash FROM dashboard_sessions WHERE app_key = ?1 \
          ORDER BY expires_at DESC LIMIT ?2)",
    )?
    .execute(params![session.app_key, keep_others])?;
    let (portal, read_only) = session.origin.columns();
    conn.prepare_cached(
        "INSERT INTO dashboard_sessions \
         (id_hash, app_key, secret_hash, csrf, expires_at, portal, read_only) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        session.id_hash,
        session.app_key,
        session.secret_hash,
        session.csrf,
        session.expires_at,
        portal,
        read_only
    ])?;
    Ok(())
}

impl SqliteStore {
    pub(super) async fn create_session(
        &self,
        session: SessionRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<()> {
        self.write(move |tx| insert_session(tx.conn, &session, keep_per_app_key))
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
                    "SELECT id_hash, app_key, secret_hash, csrf, expires_at, portal, read_only \
                     FROM dashboard_sessions WHERE id_hash = ?1 AND expires_at > ?2",
                )?
                .query_row(params![id_hash, now], |r| {
                    Ok(SessionRecord {
                        id_hash: r.get(0)?,
                        app_key: r.get(1)?,
                        secret_hash: r.get(2)?,
                        csrf: r.get(3)?,
                        // Not stored: only the expiry matters once created.
                        created_at: 0,
                        expires_at: r.get(4)?,
                        origin: SessionOrigin::from_columns(r.get(5)?, r.get(6)?),
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

    pub(super) async fn create_portal_link(
        &self,
        link: PortalLinkRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<bool> {
        let keep_others = keep_per_app_key.saturating_sub(1) as i64;
        self.write(move |tx| {
            let conn = tx.conn;
            conn.prepare_cached("DELETE FROM portal_links WHERE expires_at <= ?1")?
                .execute(params![link.created_at])?;
            conn.prepare_cached(
                "DELETE FROM portal_links WHERE app_key = ?1 AND token_hash NOT IN \
                 (SELECT token_hash FROM portal_links WHERE app_key = ?1 \
                  ORDER BY created_at DESC LIMIT ?2)",
            )?
            .execute(params![link.app_key, keep_others])?;
            // The app key's current secret hash, read in the statement that stores the link: no
            // row when the app key does not exist.
            let n = conn
                .prepare_cached(
                    "INSERT INTO portal_links \
                     (token_hash, app_key, secret_hash, read_only, created_at, expires_at) \
                     SELECT ?1, app_key, secret_hash, ?3, ?4, ?5 FROM app_keys WHERE app_key = ?2",
                )?
                .execute(params![
                    link.token_hash,
                    link.app_key,
                    link.read_only,
                    link.created_at,
                    link.expires_at
                ])?;
            Ok(n == 1)
        })
        .await
    }

    pub(super) async fn redeem_portal_link(
        &self,
        token_hash: &str,
        start: SessionStart,
        keep_sessions_per_app_key: usize,
    ) -> StoreResult<PortalRedemption> {
        let token_hash = token_hash.to_owned();
        self.write(move |tx| {
            // Deleted as it is read: of two uses, only one gets the row (the writer runs one job
            // at a time), so a link opens at most one session.
            let link = tx
                .conn
                .prepare_cached(
                    "DELETE FROM portal_links WHERE token_hash = ?1 \
                     RETURNING app_key, secret_hash, read_only, expires_at",
                )?
                .query_row(params![token_hash], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, Millis>(3)?,
                    ))
                })
                .optional()?;
            let Some((app_key, secret_hash, read_only, expires_at)) = link else {
                return Ok(PortalRedemption::Gone);
            };
            if expires_at <= start.created_at {
                return Ok(PortalRedemption::Gone);
            }
            let session = start.into_record(
                app_key.clone(),
                secret_hash,
                SessionOrigin::PortalLink { read_only },
            );
            insert_session(tx.conn, &session, keep_sessions_per_app_key)?;
            Ok(PortalRedemption::Opened { app_key, read_only })
        })
        .await
    }
}
