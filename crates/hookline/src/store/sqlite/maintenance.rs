//! Maintenance and observation: retention (finished deliveries, then unreferenced hooks), the
//! counts `/metrics` reads, and the dashboard chart's attempt buckets.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::model::Millis;
use crate::store::rows::{parse_health_state, parse_status};
use crate::store::{
    ATTEMPT_LOOKBACK, AppKeyQueue, AttemptBucket, HookPurge, StoreResult, StoreStats,
};

/// Whether the hook `?1` of the app key `?2` is still carried by a delivery or queued for a
/// config. The queue is read through its configs: every queue row belongs to a config of its
/// hook's app key (fan-out, replays and requeues only queue a hook for such configs).
const QUEUED_OR_DELIVERED: &str = "SELECT EXISTS (SELECT 1 FROM delivery_hooks WHERE hook_seq = ?1) \
     OR EXISTS (SELECT 1 FROM webhook_configs c JOIN queue q \
         ON q.config_id = c.id AND q.hook_seq = ?1 WHERE c.app_key = ?2)";

impl SqliteStore {
    pub(super) async fn purge_deliveries(&self, cutoff: Millis, batch: u32) -> StoreResult<usize> {
        self.write(move |tx| {
            let conn = tx.conn;
            let mut expired: Vec<i64> = Vec::new();
            {
                let mut select = conn.prepare_cached(
                    "SELECT seq FROM deliveries WHERE status = ?1 AND updated_at < ?2 LIMIT ?3",
                )?;
                // Every final status: an open delivery is the engine's.
                let finals = crate::model::DeliveryStatus::ALL
                    .into_iter()
                    .filter(|s| !s.is_open())
                    .map(|s| s.as_str());
                for status in finals {
                    let room = i64::from(batch) - expired.len() as i64;
                    if room <= 0 {
                        break;
                    }
                    let ids = select
                        .query_map(params![status, cutoff, room], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<i64>>>()?;
                    expired.extend(ids);
                }
            }
            let mut attempts =
                conn.prepare_cached("DELETE FROM attempts WHERE delivery_seq = ?1")?;
            let mut links =
                conn.prepare_cached("DELETE FROM delivery_hooks WHERE delivery_seq = ?1")?;
            let mut rows = conn.prepare_cached("DELETE FROM deliveries WHERE seq = ?1")?;
            for seq in &expired {
                attempts.execute(params![seq])?;
                links.execute(params![seq])?;
                rows.execute(params![seq])?;
            }
            Ok(expired.len())
        })
        .await
    }

    pub(super) async fn purge_held(&self, cutoff: Millis, batch: u32) -> StoreResult<usize> {
        self.write(move |tx| {
            Ok(tx
                .conn
                .prepare_cached(
                    "DELETE FROM queue WHERE (config_id, event, hook_seq) IN ( \
                         SELECT q.config_id, q.event, q.hook_seq FROM webhook_configs c \
                         JOIN queue q ON q.config_id = c.id \
                         JOIN hooks h ON h.seq = q.hook_seq \
                         WHERE c.health_state = 'DISABLED' AND h.created_at < ?1 LIMIT ?2)",
                )?
                .execute(params![cutoff, i64::from(batch)])?)
        })
        .await
    }

    pub(super) async fn purge_hooks(
        &self,
        cutoff: Millis,
        after: i64,
        batch: u32,
    ) -> StoreResult<HookPurge> {
        self.write(move |tx| {
            let conn = tx.conn;
            let candidates: Vec<(i64, i64, String)> = conn
                .prepare_cached(
                    "SELECT seq, created_at, app_key FROM hooks WHERE seq > ?1 ORDER BY seq \
                     LIMIT ?2",
                )?
                .query_map(params![after, batch], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut purge = HookPurge {
                deleted: 0,
                next: None,
            };
            // A hook is queued only for configs of its own app key: one probe of
            // `queue_by_config_seq` per config of the app key (the queue has no index by hook).
            let mut referenced = conn.prepare_cached(QUEUED_OR_DELIVERED)?;
            let mut delete = conn.prepare_cached("DELETE FROM hooks WHERE seq = ?1")?;
            for (seq, created_at, app_key) in &candidates {
                if *created_at >= cutoff {
                    // Hooks are numbered in arrival order: the rest are younger still.
                    return Ok(purge);
                }
                if !referenced.query_row(params![seq, app_key], |r| r.get::<_, bool>(0))? {
                    delete.execute(params![seq])?;
                    purge.deleted += 1;
                }
                purge.next = Some(*seq);
            }
            if candidates.len() < batch as usize {
                purge.next = None;
            }
            Ok(purge)
        })
        .await
    }

    pub(super) async fn queue_by_app_key(&self) -> StoreResult<Vec<AppKeyQueue>> {
        self.read(|conn| {
            // hooks.seq grows with acceptance time: the smallest queued seq is the oldest hook.
            let mut stmt = conn.prepare_cached(
                "SELECT q.app_key, q.n, h.created_at FROM ( \
                     SELECT c.app_key AS app_key, COUNT(*) AS n, MIN(queue.hook_seq) AS oldest \
                     FROM queue JOIN webhook_configs c ON c.id = queue.config_id \
                     GROUP BY c.app_key) q \
                 LEFT JOIN hooks h ON h.seq = q.oldest ORDER BY q.app_key",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(AppKeyQueue {
                        app_key: r.get(0)?,
                        queued_hooks: r.get::<_, i64>(1)? as u64,
                        oldest_queued_at: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    pub(super) async fn stats(&self) -> StoreResult<StoreStats> {
        self.read(|conn| {
            // One pass over the queue's primary key; hooks.seq grows with acceptance time, so the
            // smallest queued seq is the oldest queued hook (a point lookup).
            let (queued_hooks, oldest_seq): (i64, Option<i64>) = conn
                .prepare_cached("SELECT COUNT(*), MIN(hook_seq) FROM queue")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let oldest_queued_at = match oldest_seq {
                Some(seq) => conn
                    .prepare_cached("SELECT created_at FROM hooks WHERE seq = ?1")?
                    .query_row(params![seq], |r| r.get(0))
                    .optional()?,
                None => None,
            };
            // Two ranges of the index deliveries_by_status (migration 3 replaced the partial
            // index deliveries_open): no scan of the table.
            let mut open_deliveries = Vec::new();
            for row in conn
                .prepare_cached(
                    "SELECT status, COUNT(*) FROM deliveries \
                     WHERE status IN ('PENDING', 'RETRYING') GROUP BY status",
                )?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            {
                let (status, n) = row?;
                open_deliveries.push((parse_status(&status)?, n as u64));
            }
            let mut configs_by_health = Vec::new();
            let mut paused_configs = 0;
            for row in conn
                .prepare_cached(
                    "SELECT enabled, health_state, COUNT(*) FROM webhook_configs \
                     GROUP BY enabled, health_state",
                )?
                .query_map([], |r| {
                    Ok((
                        r.get::<_, bool>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
            {
                let (enabled, state, n) = row?;
                if !enabled {
                    paused_configs += n as u64;
                    continue;
                }
                configs_by_health.push((parse_health_state(&state)?, n as u64));
            }
            Ok(StoreStats {
                queued_hooks: queued_hooks as u64,
                oldest_queued_at,
                open_deliveries,
                configs_by_health,
                paused_configs,
            })
        })
        .await
    }

    pub(super) async fn attempt_buckets(
        &self,
        app_key: &str,
        config_id: &str,
        since: Millis,
        bucket_ms: i64,
        buckets: u32,
    ) -> StoreResult<Vec<AttemptBucket>> {
        let app_key = app_key.to_owned();
        let config_id = config_id.to_owned();
        let bucket_ms = bucket_ms.max(1);
        let until = since.saturating_add(bucket_ms.saturating_mul(i64::from(buckets)));
        self.read(move |conn| {
            // deliveries_by_config (config_id, created_at) bounds the deliveries; each one's
            // attempts are a range of the attempts primary key.
            let rows = conn
                .prepare_cached(
                    "SELECT (a.started_at - ?3) / ?5 AS bucket, COUNT(*), \
                     SUM(a.status_code BETWEEN 200 AND 299 AND a.error_kind IS NULL), \
                     SUM(a.duration_ms), MAX(a.duration_ms) \
                     FROM deliveries d JOIN attempts a ON a.delivery_seq = d.seq \
                     WHERE d.config_id = ?2 AND d.app_key = ?1 AND d.created_at >= ?6 \
                     AND d.created_at < ?4 AND a.started_at >= ?3 AND a.started_at < ?4 \
                     GROUP BY bucket ORDER BY bucket",
                )?
                .query_map(
                    params![
                        app_key,
                        config_id,
                        since,
                        until,
                        bucket_ms,
                        since.saturating_sub(ATTEMPT_LOOKBACK)
                    ],
                    |r| {
                        Ok(AttemptBucket {
                            index: r.get::<_, i64>(0)?.clamp(0, i64::from(u32::MAX)) as u32,
                            attempts: r.get::<_, i64>(1)?.max(0) as u64,
                            succeeded: r.get::<_, Option<i64>>(2)?.unwrap_or(0).max(0) as u64,
                            total_ms: r.get::<_, Option<i64>>(3)?.unwrap_or(0).max(0) as u64,
                            max_ms: r.get::<_, Option<i64>>(4)?.unwrap_or(0).max(0) as u64,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }
}
