//! Ingest: stores a request's hooks once per (app key, hookId) and queues every new one for each
//! subscribed config, in one statement of the writer's group, notifying every node of the configs
//! that got work.

use hookline_wire::{Event, Product, ValidatedHook};

use super::PostgresStore;
use super::columns::col;
use super::connection::pg_err;
use super::notify::WORK_CHANNEL;
use crate::model::now_millis;
use crate::store::{IngestOutcome, StoreResult, StoreSignal};

impl PostgresStore {
    pub(super) async fn ingest(
        &self,
        app_key: &str,
        product: Product,
        event: Event,
        hooks: Vec<ValidatedHook>,
    ) -> StoreResult<IngestOutcome> {
        let app_key = app_key.to_owned();
        self.write(move |c| async move {
            let now = now_millis();
            let ids: Vec<&str> = hooks.iter().map(|h| h.hook_id.as_str()).collect();
            let bodies: Vec<&str> = hooks.iter().map(|h| h.json.as_str()).collect();
            // One statement, one round trip (the writer runs its jobs one after the other):
            // the request's hooks (RETURNING only the new ones: ON CONFLICT DO NOTHING makes a
            // producer's retry accepted again but stored once), their queue rows for every
            // subscribed config, and a NOTIFY per config that got rows. `notified` is
            // MATERIALIZED so its pg_notify calls run, counted or not. FOR KEY SHARE on the
            // configs: a concurrent delete_config (another node) waits for this commit, and then
            // finds and cancels these queue rows, instead of leaving rows no config will claim.
            let row = c
                .query_one(
                    "WITH new AS ( \
                         INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
                         SELECT $1, t.id, $2, $3, t.body, $4 \
                         FROM unnest($5::TEXT[], $6::TEXT[]) WITH ORDINALITY AS t(id, body, ord) \
                         ORDER BY t.ord \
                         ON CONFLICT (app_key, hook_id) DO NOTHING RETURNING seq), \
                     subs AS ( \
                         SELECT s.config_id FROM subscriptions s \
                         JOIN webhook_configs c ON c.id = s.config_id \
                         WHERE s.app_key = $1 AND s.product = $2 AND s.event = $3 \
                         FOR KEY SHARE OF c), \
                     queued AS ( \
                         INSERT INTO queue (config_id, event, hook_seq) \
                         SELECT s.config_id, $3, n.seq FROM subs s CROSS JOIN new n \
                         ON CONFLICT DO NOTHING RETURNING config_id), \
                     woken AS (SELECT DISTINCT config_id FROM queued), \
                     notified AS MATERIALIZED (SELECT pg_notify($7, config_id) FROM woken) \
                     SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM queued), \
                            ARRAY(SELECT config_id FROM woken ORDER BY config_id), \
                            (SELECT count(*) FROM notified)",
                    &[
                        &app_key,
                        &product.as_str(),
                        &event.as_str(),
                        &now,
                        &ids,
                        &bodies,
                        &WORK_CHANNEL,
                    ],
                )
                .await
                .map_err(pg_err)?;
            let outcome = IngestOutcome {
                new_hooks: col::<i64>(&row, 0)? as usize,
                queued: col::<i64>(&row, 1)? as usize,
            };
            let signals = col::<Vec<String>>(&row, 2)?
                .into_iter()
                .map(|config_id| StoreSignal::NewWork { config_id })
                .collect();
            Ok((outcome, signals))
        })
        .await
    }
}
