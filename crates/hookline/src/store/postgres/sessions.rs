//! Dashboard sessions (`dashboard_sessions`) and the portal links that open them
//! (`portal_links`), shared by every node: created, used and ended through the writer (durably:
//! a sign-in answered must survive), sessions found by the hash of their id on a pooled
//! connection, capped per app key, expired ones removed as new ones come.

use super::PostgresStore;
use super::columns::col;
use super::connection::{Conn, execute, query_opt};
use super::writer::Durability;
use crate::model::{
    Millis, PortalLinkRecord, PortalRedemption, SessionOrigin, SessionRecord, SessionStart,
};
use crate::store::StoreResult;

/// Stores `session`; expired sessions go, and the app key's oldest beyond `keep_per_app_key`
/// (the new one counted).
async fn insert_session(
    c: &Conn,
    session: &SessionRecord,
    keep_per_app_key: usize,
) -> StoreResult<()> {
    // The app key's newest `keep - 1` stay beside the new one.
    let keep_others = keep_per_app_key.saturating_sub(1) as i64;
    execute(
        c,
        "DELETE FROM dashboard_sessions WHERE expires_at <= $1",
        &[&session.created_at],
    )
    .await?;
    execute(
        c,
        "DELETE FROM dashboard_sessions WHERE app_key = $1 AND id_hash NOT IN \
         (SELECT id_hash FROM dashboard_sessions WHERE app_key = $1 \
          ORDER BY expires_at DESC LIMIT $2)",
        &[&session.app_key, &keep_others],
    )
    .await?;
    let (portal, read_only) = session.origin.columns();
    execute(
        c,
        "INSERT INTO dashboard_sessions \
         (id_hash, app_key, secret_hash, csrf, expires_at, portal, read_only) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &session.id_hash,
            &session.app_key,
            &session.secret_hash,
            &session.csrf,
            &session.expires_at,
            &portal,
            &read_only,
        ],
    )
    .await?;
    Ok(())
}

impl PostgresStore {
    pub(super) async fn create_session(
        &self,
        session: SessionRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<()> {
        self.write(Durability::Durable, move |c| async move {
            insert_session(&c, &session, keep_per_app_key).await?;
            Ok(((), Vec::new()))
        })
        .await
    }

    pub(super) async fn find_session(
        &self,
        id_hash: &str,
        now: Millis,
    ) -> StoreResult<Option<SessionRecord>> {
        let c = self.reader().await?;
        let row = query_opt(
            &c,
            "SELECT id_hash, app_key, secret_hash, csrf, expires_at, portal, read_only \
             FROM dashboard_sessions WHERE id_hash = $1 AND expires_at > $2",
            &[&id_hash, &now],
        )
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            id_hash: col(&row, 0)?,
            app_key: col(&row, 1)?,
            secret_hash: col(&row, 2)?,
            csrf: col(&row, 3)?,
            // Not stored: only the expiry matters once created.
            created_at: 0,
            expires_at: col(&row, 4)?,
            origin: SessionOrigin::from_columns(col(&row, 5)?, col(&row, 6)?),
        }))
    }

    pub(super) async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        let id_hash = id_hash.to_owned();
        self.write(Durability::Durable, move |c| async move {
            execute(
                &c,
                "DELETE FROM dashboard_sessions WHERE id_hash = $1",
                &[&id_hash],
            )
            .await?;
            Ok(((), Vec::new()))
        })
        .await
    }

    pub(super) async fn create_portal_link(
        &self,
        link: PortalLinkRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<bool> {
        let keep_others = keep_per_app_key.saturating_sub(1) as i64;
        self.write(Durability::Durable, move |c| async move {
            // The app key's current secret hash, locked first: a rotation committing meanwhile is
            // waited for (so the link carries the new hash, or the rotation deletes the link),
            // and this write takes no link's lock before it, so the two cannot deadlock.
            let Some(owner) = query_opt(
                &c,
                "SELECT secret_hash FROM app_keys WHERE app_key = $1 FOR SHARE",
                &[&link.app_key],
            )
            .await?
            else {
                return Ok((false, Vec::new()));
            };
            let secret_hash: String = col(&owner, 0)?;
            execute(
                &c,
                "DELETE FROM portal_links WHERE expires_at <= $1",
                &[&link.created_at],
            )
            .await?;
            execute(
                &c,
                "DELETE FROM portal_links WHERE app_key = $1 AND token_hash NOT IN \
                 (SELECT token_hash FROM portal_links WHERE app_key = $1 \
                  ORDER BY created_at DESC LIMIT $2)",
                &[&link.app_key, &keep_others],
            )
            .await?;
            execute(
                &c,
                "INSERT INTO portal_links \
                 (token_hash, app_key, secret_hash, read_only, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &link.token_hash,
                    &link.app_key,
                    &secret_hash,
                    &link.read_only,
                    &link.created_at,
                    &link.expires_at,
                ],
            )
            .await?;
            Ok((true, Vec::new()))
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
        self.write(Durability::Durable, move |c| async move {
            // Deleted as it is read: of two uses (on any nodes), the second waits for the first's
            // row lock and then finds no row, so a link opens at most one session.
            let Some(row) = query_opt(
                &c,
                "DELETE FROM portal_links WHERE token_hash = $1 \
                 RETURNING app_key, secret_hash, read_only, expires_at",
                &[&token_hash],
            )
            .await?
            else {
                return Ok((PortalRedemption::Gone, Vec::new()));
            };
            let app_key: String = col(&row, 0)?;
            let read_only: bool = col(&row, 2)?;
            let expires_at: Millis = col(&row, 3)?;
            if expires_at <= start.created_at {
                return Ok((PortalRedemption::Gone, Vec::new()));
            }
            let session = start.into_record(
                app_key.clone(),
                col(&row, 1)?,
                SessionOrigin::PortalLink { read_only },
            );
            insert_session(&c, &session, keep_sessions_per_app_key).await?;
            Ok((PortalRedemption::Opened { app_key, read_only }, Vec::new()))
        })
        .await
    }
}
