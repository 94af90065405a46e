//! Dashboard sessions (`dashboard_sessions`), shared by every node: created and ended through
//! the writer (durably: a sign-in answered must survive), found by the hash of their id on a
//! pooled connection, capped per app key, expired ones removed as new ones come.

use super::PostgresStore;
use super::columns::col;
use super::connection::{execute, query_opt};
use super::writer::Durability;
use crate::model::{Millis, SessionRecord};
use crate::store::StoreResult;

impl PostgresStore {
    pub(super) async fn create_session(
        &self,
        session: SessionRecord,
        keep_per_app_key: usize,
    ) -> StoreResult<()> {
        // The app key's newest `keep - 1` stay beside the new one.
        let keep_others = keep_per_app_key.saturating_sub(1) as i64;
        self.write(Durability::Durable, move |c| async move {
            execute(
                &c,
                "DELETE FROM dashboard_sessions WHERE expires_at <= $1",
                &[&session.created_at],
            )
            .await?;
            execute(
                &c,
                "DELETE FROM dashboard_sessions WHERE app_key = $1 AND id_hash NOT IN \
                 (SELECT id_hash FROM dashboard_sessions WHERE app_key = $1 \
                  ORDER BY expires_at DESC LIMIT $2)",
                &[&session.app_key, &keep_others],
            )
            .await?;
            execute(
                &c,
                "INSERT INTO dashboard_sessions (id_hash, app_key, secret_hash, csrf, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &session.id_hash,
                    &session.app_key,
                    &session.secret_hash,
                    &session.csrf,
                    &session.expires_at,
                ],
            )
            .await?;
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
            "SELECT id_hash, app_key, secret_hash, csrf, expires_at \
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
}
