//! Maintenance and observation: retention (finished deliveries, then unreferenced hooks), the
//! counts `/metrics` reads, and the dashboard chart's attempt buckets.

use super::PostgresStore;
use super::columns::col;
use super::connection::{execute, query, query_one};
use super::deliveries::list_holds_hook;
use super::writer::Durability;
use crate::model::Millis;
use crate::store::rows::{parse_health_state, parse_status};
use crate::store::{
    ATTEMPT_LOOKBACK, AppKeyQueue, AttemptBucket, HookPurge, StoreResult, StoreStats,
};

impl PostgresStore {
    pub(super) async fn purge_deliveries(&self, cutoff: Millis, batch: u32) -> StoreResult<usize> {
        // The batch is picked once (`ARRAY(...)` runs once); as `IN (SELECT ... LIMIT)` a
        // nested-loop plan could run it again per row (see `claims::CLAIM`).
        self.write(Durability::Relaxed, move |c| async move {
            let rows = query(
                &c,
                "WITH expired AS ( \
                         DELETE FROM deliveries WHERE hooks_id = ANY (ARRAY( \
                             SELECT hooks_id FROM deliveries \
                             WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'EXPIRED') \
                             AND updated_at < $1 LIMIT $2)) \
                         RETURNING hooks_id), \
                     gone_attempts AS ( \
                         DELETE FROM attempts WHERE hooks_id IN (SELECT hooks_id FROM expired)), \
                     gone_lists AS ( \
                         DELETE FROM delivery_hook_lists \
                         WHERE hooks_id IN (SELECT hooks_id FROM expired)) \
                     SELECT hooks_id FROM expired",
                &[&cutoff, &i64::from(batch)],
            )
            .await?;
            Ok((rows.len(), Vec::new()))
        })
        .await
    }

    pub(super) async fn purge_held(&self, cutoff: Millis, batch: u32) -> StoreResult<usize> {
        self.write(Durability::Relaxed, move |c| async move {
            let rows = query(
                &c,
                "WITH held AS ( \
                         SELECT q.config_id, q.event, q.hook_seq FROM webhook_configs c \
                         JOIN queue q ON q.config_id = c.id \
                         JOIN hooks h ON h.seq = q.hook_seq \
                         WHERE c.health_state = 'DISABLED' AND h.created_at < $1 LIMIT $2), \
                     gone AS ( \
                         DELETE FROM queue q USING held \
                         WHERE q.config_id = held.config_id AND q.event = held.event \
                         AND q.hook_seq = held.hook_seq RETURNING 1) \
                     SELECT count(*) FROM gone",
                &[&cutoff, &i64::from(batch)],
            )
            .await?;
            let n = match rows.first() {
                Some(r) => col::<i64>(r, 0)?,
                None => 0,
            };
            Ok((usize::try_from(n).unwrap_or(0), Vec::new()))
        })
        .await
    }

    pub(super) async fn purge_hooks(
        &self,
        cutoff: Millis,
        after: i64,
        batch: u32,
    ) -> StoreResult<HookPurge> {
        self.write(Durability::Relaxed, move |c| async move {
            let rows = query(
                &c,
                "SELECT seq, created_at FROM hooks WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &i64::from(batch)],
            )
            .await?;
            let mut candidates = Vec::with_capacity(rows.len());
            for r in &rows {
                candidates.push((col::<i64>(r, 0)?, col::<i64>(r, 1)?));
            }
            let mut purge = HookPurge {
                deleted: 0,
                next: None,
            };
            for (seq, created_at) in &candidates {
                if *created_at >= cutoff {
                    // Hooks are numbered in arrival order: the rest are younger still.
                    return Ok((purge, Vec::new()));
                }
                // A hook is queued only for configs of its own app key: one probe of the
                // queue's key `(config_id, hook_seq)` per config of the app key (the queue has no
                // index by hook: migration 15).
                let n = execute(
                    &c,
                    concat!(
                        "DELETE FROM hooks h WHERE h.seq = $1 \
                         AND NOT EXISTS (SELECT 1 FROM delivery_hook_lists l WHERE ",
                        list_holds_hook!("$1"),
                        ") \
                         AND NOT EXISTS (SELECT 1 FROM webhook_configs c JOIN queue q \
                             ON q.config_id = c.id AND q.hook_seq = $1 \
                             WHERE c.app_key = h.app_key)"
                    ),
                    &[seq],
                )
                .await?;
                purge.deleted += n as usize;
                purge.next = Some(*seq);
            }
            if candidates.len() < batch as usize {
                purge.next = None;
            }
            Ok((purge, Vec::new()))
        })
        .await
    }

    pub(super) async fn queue_by_app_key(&self) -> StoreResult<Vec<AppKeyQueue>> {
        let c = self.reader().await?;
        // hooks.seq grows with acceptance time: the smallest queued seq is the oldest hook.
        let rows = query(
            &c,
            "SELECT q.app_key, q.n, h.created_at FROM ( \
                 SELECT c.app_key AS app_key, COUNT(*) AS n, MIN(queue.hook_seq) AS oldest \
                 FROM queue JOIN webhook_configs c ON c.id = queue.config_id \
                 GROUP BY c.app_key) q \
             LEFT JOIN hooks h ON h.seq = q.oldest ORDER BY q.app_key",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AppKeyQueue {
                    app_key: col(r, 0)?,
                    queued_hooks: col::<i64>(r, 1)? as u64,
                    oldest_queued_at: col(r, 2)?,
                })
            })
            .collect()
    }

    pub(super) async fn stats(&self) -> StoreResult<StoreStats> {
        let c = self.reader().await?;
        let row = query_one(
            &c,
            "SELECT q.n, (SELECT h.created_at FROM hooks h WHERE h.seq = q.oldest) \
             FROM (SELECT COUNT(*) AS n, MIN(hook_seq) AS oldest FROM queue) q",
            &[],
        )
        .await?;
        let queued_hooks: i64 = col(&row, 0)?;
        let oldest_queued_at: Option<i64> = col(&row, 1)?;
        let mut open_deliveries = Vec::new();
        for r in query(
            &c,
            "SELECT status, COUNT(*) FROM deliveries \
                 WHERE status IN ('PENDING', 'RETRYING') GROUP BY status",
            &[],
        )
        .await?
        {
            let status: String = col(&r, 0)?;
            open_deliveries.push((parse_status(&status)?, col::<i64>(&r, 1)? as u64));
        }
        let mut configs_by_health = Vec::new();
        let mut paused_configs = 0;
        for r in query(
            &c,
            "SELECT enabled, health_state, COUNT(*) FROM webhook_configs \
                 GROUP BY enabled, health_state",
            &[],
        )
        .await?
        {
            let enabled: bool = col(&r, 0)?;
            let state: String = col(&r, 1)?;
            let n = col::<i64>(&r, 2)? as u64;
            if !enabled {
                paused_configs += n;
                continue;
            }
            configs_by_health.push((parse_health_state(&state)?, n));
        }
        Ok(StoreStats {
            queued_hooks: queued_hooks as u64,
            oldest_queued_at,
            open_deliveries,
            configs_by_health,
            paused_configs,
        })
    }

    pub(super) async fn attempt_buckets(
        &self,
        app_key: &str,
        config_id: &str,
        since: Millis,
        bucket_ms: i64,
        buckets: u32,
    ) -> StoreResult<Vec<AttemptBucket>> {
        let bucket_ms = bucket_ms.max(1);
        let until = since.saturating_add(bucket_ms.saturating_mul(i64::from(buckets)));
        let lookback = since.saturating_sub(ATTEMPT_LOOKBACK);
        let c = self.reader().await?;
        // SUM over BIGINT is NUMERIC in PostgreSQL: cast back so the driver reads an i64.
        let rows = query(
            &c,
            "SELECT (a.started_at - $3) / $5 AS bucket, COUNT(*), \
                 SUM(CASE WHEN a.status_code BETWEEN 200 AND 299 AND a.error_kind IS NULL \
                     THEN 1 ELSE 0 END)::BIGINT, \
                 SUM(a.duration_ms)::BIGINT, MAX(a.duration_ms) \
                 FROM deliveries d JOIN attempts a ON a.hooks_id = d.hooks_id \
                 WHERE d.config_id = $2 AND d.app_key = $1 AND d.created_at >= $6 \
                 AND d.created_at < $4 AND a.started_at >= $3 AND a.started_at < $4 \
                 GROUP BY bucket ORDER BY bucket",
            &[&app_key, &config_id, &since, &until, &bucket_ms, &lookback],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptBucket {
                    index: col::<i64>(r, 0)?.clamp(0, i64::from(u32::MAX)) as u32,
                    attempts: col::<i64>(r, 1)?.max(0) as u64,
                    succeeded: col::<Option<i64>>(r, 2)?.unwrap_or(0).max(0) as u64,
                    total_ms: col::<Option<i64>>(r, 3)?.unwrap_or(0).max(0) as u64,
                    max_ms: col::<Option<i64>>(r, 4)?.unwrap_or(0).max(0) as u64,
                })
            })
            .collect()
    }
}
