//! App keys and webhook configs: their rows, the subscriptions that ingest fans out by, and the
//! health the nodes judge. Every config change tells the other nodes (`hookline_config`).
//! Deleting a config turns its open and queued work into CANCELLED deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::Statement;

use super::PostgresStore;
use super::columns::{app_key_record, col, config_row};
use super::connection::{
    Conn, Step, execute, pg_err, poisoned, prepared, query, query_one, query_opt,
};
use super::deliveries::insert_delivery;
use super::notify::{CONFIG_CHANNEL, notify};
use super::operational::{health_params, report_config_update};
use super::writer::{Durability, Group, StepRun};
use crate::model::{
    AppKeyRecord, ConfigFilter, DeliveryStatus, DeliverySummary, Health, HealthState, Millis, Page,
    PageRequest, WebhookConfig, now_millis,
};
use crate::store::page::{cursor, page_size, paginate};
use crate::store::rows::{
    CONFIG_COLUMNS, ConfigRow, deadline_ms, filter_text, headers_text, join_events, parse_event,
    parse_product, schedule_text,
};
use crate::store::{StoreError, StoreResult, StoreSignal, runs_by_event};

async fn write_subscriptions(c: &Conn, config: &WebhookConfig) -> StoreResult<()> {
    execute(
        c,
        "DELETE FROM subscriptions WHERE config_id = $1",
        &[&config.id],
    )
    .await?;
    // A config its health DISABLED stays subscribed: what is accepted meanwhile is held in its
    // queue until it is enabled again (or retention drops it). Only a pause stops the queueing.
    if config.enabled {
        let events: Vec<&str> = config.events.iter().map(|e| e.as_str()).collect();
        execute(
            c,
            "INSERT INTO subscriptions (app_key, product, event, config_id) \
             SELECT $1, $2, e, $4 FROM unnest($3::TEXT[]) AS e ON CONFLICT DO NOTHING",
            &[
                &config.app_key,
                &config.product.as_str(),
                &events,
                &config.id,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Writes the health a node judged, in one statement. A config's home judges from its attempts
/// (a node that was the home may still record a late one), so
/// a DISABLED row is never turned back by another node's older view (only `update_config`, an
/// operator enabling the config again, does that), and disabling tells every node
/// (`hookline_config`) so that they stop sending to it. Its subscriptions stay: what is accepted
/// while it is DISABLED is held in its queue until it is enabled again.
/// A change of state writes its operational event (`reported`, `$9` the event, `$10` the facts the
/// node knows): the old state is read locked, so of two nodes judging the same change one reports
/// it. `FOR NO KEY UPDATE`, the lock the UPDATE takes anyway: a stronger `FOR UPDATE` would also
/// wait for other nodes' ingests (their `FOR KEY SHARE` of the config) and deadlock with them.
const WRITE_HEALTH: &str = "WITH before AS ( \
         SELECT id, health_state FROM webhook_configs WHERE id = $1 FOR NO KEY UPDATE), \
     written AS ( \
         UPDATE webhook_configs c SET health_state = $2, consecutive_failures = $3, \
         last_success_at = $4, last_failure_at = $5, failing_since = $6, disabled_reason = $7 \
         FROM before b \
         WHERE c.id = b.id AND (b.health_state <> 'DISABLED' OR $2 = 'DISABLED') \
         RETURNING c.id, c.app_key, c.product, c.url, b.health_state AS was), \
     disabled AS MATERIALIZED (SELECT id FROM written WHERE $2 = 'DISABLED'), \
     told AS MATERIALIZED (SELECT pg_notify($8, id) FROM disabled), \
     reported AS MATERIALIZED ( \
         INSERT INTO operational_events (app_key, event, hook, created_at) \
         SELECT app_key, $9, ($10::TEXT::jsonb || jsonb_build_object('webhookConfigId', id, \
                'productName', product, 'url', url))::TEXT, $11 \
         FROM written WHERE was <> $2 AND product <> 'hookline' RETURNING 1) \
     SELECT (SELECT count(*) FROM told), (SELECT count(*) FROM reported)";

/// Writes `health` with `statement` ([`WRITE_HEALTH`] prepared on `c`): nothing is awaited before
/// the statement is sent, so it can be a pipeline step.
async fn write_health(
    c: &Conn,
    statement: &Statement,
    config_id: &str,
    health: &Health,
    last_error: Option<&str>,
) -> StoreResult<Vec<StoreSignal>> {
    let (event, facts) = health_params(health, last_error);
    let rows = c
        .query(
            statement,
            &[
                &config_id,
                &health.state.as_str(),
                &i64::from(health.consecutive_failures),
                &health.last_success_at,
                &health.last_failure_at,
                &health.failing_since,
                &health.disabled_reason,
                &CONFIG_CHANNEL,
                &event,
                &facts,
                &now_millis(),
            ],
        )
        .await
        .map_err(pg_err)?;
    // The statement's only failure is the server's (see `writer::commit`): an answer that does
    // not read says "perhaps an event", and the engine looks (an empty outbox costs one read).
    let reported = rows
        .first()
        .and_then(|r| r.try_get::<_, i64>(1).ok())
        .is_none_or(|n| n > 0);
    Ok(if reported {
        vec![StoreSignal::OperationalEvents]
    } else {
        Vec::new()
    })
}

/// The health the group's records carry, one statement per config in config id order (the order
/// every node locks config rows in), ready to be pipelined.
pub(super) async fn health_steps(group: &Group) -> StoreResult<Vec<Step<'static, StepRun>>> {
    let health = group
        .health
        .lock()
        .map(|mut h| std::mem::take(&mut *h))
        .map_err(poisoned)?;
    if health.is_empty() {
        return Ok(Vec::new());
    }
    // Prepared now, so each step sends its statement on its first poll.
    let statement = prepared(&group.client, WRITE_HEALTH).await?;
    Ok(health
        .into_iter()
        .map(
            |(config_id, (health, last_error))| -> Step<'static, StepRun> {
                let (c, statement) = (group.client.clone(), statement.clone());
                Box::pin(async move {
                    let written =
                        write_health(&c, &statement, &config_id, &health, last_error.as_deref())
                            .await;
                    match written {
                        Ok(signals) => StepRun {
                            result: Ok(()),
                            signals,
                            finishers: Vec::new(),
                        },
                        Err(e) => StepRun::of(Err(e)),
                    }
                })
            },
        )
        .collect())
}

/// The rotated-out signing secret and its expiry, as two columns.
fn previous_secret(config: &WebhookConfig) -> (Option<String>, Option<Millis>) {
    match &config.previous_signing_secret {
        Some(p) => (Some(p.secret.clone()), Some(p.expires_at)),
        None => (None, None),
    }
}

/// The config columns that are not a field as it is: text made from one, or a field split in two.
struct Derived {
    events: String,
    schedule: String,
    prev: Option<String>,
    prev_exp: Option<Millis>,
    headers: Option<String>,
    filter: Option<String>,
    deadline_ms: Option<i64>,
    /// The filter as a jsonpath predicate, for ingest's fan-out.
    filter_path: Option<String>,
}

impl Derived {
    fn of(config: &WebhookConfig) -> Derived {
        let (prev, prev_exp) = previous_secret(config);
        Derived {
            events: join_events(&config.events),
            schedule: schedule_text(config),
            prev,
            prev_exp,
            headers: headers_text(config),
            filter: filter_text(config),
            deadline_ms: deadline_ms(config),
            filter_path: config.filter.as_ref().map(|f| f.jsonpath()),
        }
    }
}

/// The 27 config columns in `CONFIG_COLUMNS` order, then the filter's jsonpath (`$28`), as
/// statement parameters; `$d` is the config's [`Derived`] columns.
macro_rules! config_params {
    ($c:expr, $d:expr) => {
        [
            &$c.id as &(dyn tokio_postgres::types::ToSql + Sync),
            &$c.app_key,
            &$c.product.as_str(),
            &$d.events,
            &$c.url,
            &$c.signature,
            &$c.signing_secret,
            &$c.enabled,
            &$c.description,
            &i64::from($c.max_hooks_per_request),
            &i64::from($c.max_requests_in_flight),
            &i64::from($c.timeout_ms),
            &$d.schedule,
            &$c.health.state.as_str(),
            &i64::from($c.health.consecutive_failures),
            &$c.health.last_success_at,
            &$c.health.last_failure_at,
            &$c.health.failing_since,
            &$c.health.disabled_reason,
            &$c.created_at,
            &$c.updated_at,
            &$d.prev,
            &$d.prev_exp,
            &$d.headers,
            &$d.filter,
            &$d.deadline_ms,
            &$c.ordering_key,
            &$d.filter_path,
        ]
    };
}

impl PostgresStore {
    pub(super) async fn create_app_key(
        &self,
        record: AppKeyRecord,
        secret_hash: String,
    ) -> StoreResult<()> {
        self.write(Durability::Durable, move |c| async move {
            // ON CONFLICT keeps the group's transaction usable: a refusal writes nothing.
            let n = execute(
                &c,
                "INSERT INTO app_keys (app_key, name, secret_hash, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[
                    &record.app_key,
                    &record.name,
                    &secret_hash,
                    &record.created_at,
                ],
            )
            .await?;
            if n == 0 {
                return Err(StoreError::Conflict("app key already exists".into()));
            }
            Ok(((), Vec::new()))
        })
        .await
    }

    pub(super) async fn list_app_keys(&self, page: PageRequest) -> StoreResult<Page<AppKeyRecord>> {
        let size = page_size(&page);
        let after = match &page.cursor {
            Some(c) => cursor::decode(c, 1).ok_or(StoreError::BadCursor)?.remove(0),
            None => String::new(),
        };
        let c = self.reader().await?;
        let rows = query(
            &c,
            "SELECT app_key, name, created_at, previous_secret_expires_at FROM app_keys \
             WHERE app_key > $1 \
                 ORDER BY app_key LIMIT $2",
            &[&after, &i64::from(size + 1)],
        )
        .await?;
        let items = rows
            .iter()
            .map(app_key_record)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paginate(items, size, |k| cursor::encode(&[&k.app_key])))
    }

    pub(super) async fn get_app_key(&self, app_key: &str) -> StoreResult<Option<AppKeyRecord>> {
        let c = self.reader().await?;
        let row = query_opt(
            &c,
            "SELECT app_key, name, created_at, previous_secret_expires_at FROM app_keys \
             WHERE app_key = $1",
            &[&app_key],
        )
        .await?;
        row.as_ref().map(app_key_record).transpose()
    }

    pub(super) async fn app_key_by_secret_hash(
        &self,
        secret_hash: &str,
        now: Millis,
    ) -> StoreResult<Option<String>> {
        let c = self.reader().await?;
        let row = query_opt(
            &c,
            "SELECT app_key FROM app_keys WHERE secret_hash = $1 UNION ALL \
             SELECT app_key FROM app_keys WHERE previous_secret_hash = $1 \
             AND previous_secret_expires_at > $2 LIMIT 1",
            &[&secret_hash, &now],
        )
        .await?;
        row.as_ref().map(|r| col(r, 0)).transpose()
    }

    pub(super) async fn set_secret_hash(
        &self,
        app_key: &str,
        secret_hash: String,
        previous_until: Option<Millis>,
    ) -> StoreResult<bool> {
        let app_key = app_key.to_owned();
        self.write(Durability::Durable, move |c| async move {
            // The right-hand sides read the row as it was: the replaced hash is the old one.
            let n = execute(
                &c,
                "UPDATE app_keys SET secret_hash = $2, \
                 previous_secret_hash = CASE WHEN $3::BIGINT IS NULL THEN NULL \
                 ELSE secret_hash END, previous_secret_expires_at = $3 WHERE app_key = $1",
                &[&app_key, &secret_hash, &previous_until],
            )
            .await?;
            // Even within a grace period: what a portal link opens ends with the key it was made
            // under (signed-in sessions keep the grace, as API calls do). Links first: a link
            // being used meanwhile holds its row until its session is committed, which the
            // sessions' delete (a statement of its own, so a snapshot of its own) then sees.
            execute(
                &c,
                "DELETE FROM portal_links WHERE app_key = $1",
                &[&app_key],
            )
            .await?;
            execute(
                &c,
                "DELETE FROM dashboard_sessions WHERE app_key = $1 AND portal",
                &[&app_key],
            )
            .await?;
            Ok((n == 1, Vec::new()))
        })
        .await
    }

    pub(super) async fn insert_config(&self, config: WebhookConfig) -> StoreResult<()> {
        self.write(Durability::Durable, move |c| async move {
            let derived = Derived::of(&config);
            execute(
                &c,
                &format!(
                    "INSERT INTO webhook_configs ({CONFIG_COLUMNS}, filter_path) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                      $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28::TEXT::jsonpath)"
                ),
                &config_params!(config, derived),
            )
            .await?;
            write_subscriptions(&c, &config).await?;
            notify(&c, CONFIG_CHANNEL, std::slice::from_ref(&config.id)).await?;
            Ok(((), Vec::new()))
        })
        .await
    }

    pub(super) async fn update_config(&self, config: WebhookConfig) -> StoreResult<Option<Millis>> {
        // Alone (see `writer::Grouping::Alone`): it holds the config row, and with ingests in
        // its transaction could deadlock with another node's group. Alone, no attempt record
        // shares its group either, so no health judged before the change is written over it at
        // the group's end (that would undo a re-enable).
        self.write_alone(move |c| async move {
            // The health before, for the event of a change (a re-enable: RECOVERED). Locked, so
            // another node's health write cannot slip in between.
            let before = query_opt(
                &c,
                "SELECT health_state FROM webhook_configs WHERE id = $1 AND app_key = $2 \
                 FOR NO KEY UPDATE",
                &[&config.id, &config.app_key],
            )
            .await?
            .map(|r| col::<String>(&r, 0))
            .transpose()?
            .and_then(|s| HealthState::parse(&s));
            let derived = Derived::of(&config);
            // The same 28 parameters as the insert; created_at ($20) is not settable, so it is
            // only compared (a no-op) to give the parameter a type. `updated_at` is the config's
            // version (nodes keep the newer of two reads): never lower than the one it replaces,
            // even when this node's clock is behind the node that wrote that one.
            let stored = query_opt(
                &c,
                "UPDATE webhook_configs SET product = $3, events = $4, url = $5, \
                     signature = $6, signing_secret = $7, enabled = $8, description = $9, \
                     max_hooks = $10, max_in_flight = $11, timeout_ms = $12, \
                     retry_schedule = $13, health_state = $14, consecutive_failures = $15, \
                     last_success_at = $16, last_failure_at = $17, failing_since = $18, \
                     disabled_reason = $19, \
                     updated_at = GREATEST($21, webhook_configs.updated_at + 1), \
                     previous_signing_secret = $22, \
                     previous_signing_secret_expires_at = $23, headers = $24, filter = $25, \
                     delivery_deadline_ms = $26, ordering_key = $27, filter_path = $28::TEXT::jsonpath \
                     WHERE id = $1 AND app_key = $2 AND ($20::BIGINT IS NULL OR TRUE) \
                     RETURNING updated_at",
                &config_params!(config, derived),
            )
            .await?
            .map(|r| col::<Millis>(&r, 0))
            .transpose()?;
            if stored.is_none() {
                return Ok((None, Vec::new()));
            }
            write_subscriptions(&c, &config).await?;
            notify(&c, CONFIG_CHANNEL, std::slice::from_ref(&config.id)).await?;
            let signals = report_config_update(&c, &config, before).await?;
            Ok((stored, signals))
        })
        .await
    }

    /// Deletes the config and turns its open and queued work into CANCELLED deliveries, in a
    /// transaction of its own that, once it holds the config row, waits for no other lock: the
    /// rows it must change and another transaction holds (a claim's queue rows, a delivery a
    /// node's group is leasing or recording) make it roll back and start again a moment later,
    /// instead of waiting for them while holding the config row. Another node's writer group
    /// takes delivery rows and config rows in either order (a lease and then an ingest's
    /// `FOR KEY SHARE` of the config; an ingest and then its records; records and then the
    /// config's health), so a delete waiting for one while holding the other could deadlock
    /// with it. It waits only for the config row itself, holding nothing yet.
    pub(super) async fn delete_config(&self, app_key: &str, config_id: &str) -> StoreResult<bool> {
        let started = tokio::time::Instant::now();
        let mut pause = DELETE_FIRST_PAUSE;
        loop {
            let held = Arc::new(AtomicBool::new(false));
            let result = self
                .write_alone({
                    let (app_key, config_id, held) =
                        (app_key.to_owned(), config_id.to_owned(), held.clone());
                    move |c| delete_config_once(c, app_key, config_id, held)
                })
                .await;
            let again = result.is_err()
                && held.load(Ordering::Relaxed)
                && started.elapsed() < DELETE_TRIES_FOR;
            if !again {
                return result;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(DELETE_MOST_PAUSE);
        }
    }

    pub(super) async fn get_config(
        &self,
        app_key: &str,
        config_id: &str,
    ) -> StoreResult<Option<WebhookConfig>> {
        let c = self.reader().await?;
        let row = query_opt(
            &c,
            &format!("SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE app_key = $1 AND id = $2"),
            &[&app_key, &config_id],
        )
        .await?;
        row.as_ref()
            .map(|r| config_row(r).and_then(ConfigRow::into_config))
            .transpose()
    }

    pub(super) async fn list_configs(
        &self,
        app_key: &str,
        filter: ConfigFilter,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookConfig>> {
        let size = page_size(&page);
        let after = match &page.cursor {
            Some(c) => cursor::decode(c, 1).ok_or(StoreError::BadCursor)?.remove(0),
            None => String::new(),
        };
        // NULL filters match everything: one statement, planned once.
        let product = filter.product.map(|p| p.as_str());
        let event = filter.event.map(|e| e.as_str());
        let c = self.reader().await?;
        let rows = query(
            &c,
            &format!(
                "SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE app_key = $1 AND id > $2 \
                     AND ($3::TEXT IS NULL OR product = $3) \
                     AND ($4::TEXT IS NULL OR (',' || events || ',') LIKE ('%,' || $4 || ',%')) \
                     AND ($5::BOOLEAN IS NULL OR enabled = $5) \
                     ORDER BY id LIMIT $6"
            ),
            &[
                &app_key,
                &after,
                &product,
                &event,
                &filter.enabled,
                &i64::from(size + 1),
            ],
        )
        .await?;
        let items = rows
            .iter()
            .map(|r| config_row(r).and_then(ConfigRow::into_config))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paginate(items, size, |c| cursor::encode(&[&c.id])))
    }

    pub(super) async fn all_configs(&self) -> StoreResult<Vec<WebhookConfig>> {
        let c = self.reader().await?;
        let rows = query(
            &c,
            &format!("SELECT {CONFIG_COLUMNS} FROM webhook_configs"),
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| config_row(r).and_then(ConfigRow::into_config))
            .collect()
    }

    pub(super) async fn set_health(&self, config_id: &str, health: Health) -> StoreResult<()> {
        let config_id = config_id.to_owned();
        // Alone: it holds the config row (see `writer::Grouping::Alone`).
        self.write_alone(move |c| async move {
            let statement = prepared(&c, WRITE_HEALTH).await?;
            let signals = write_health(&c, &statement, &config_id, &health, None).await?;
            Ok(((), signals))
        })
        .await
    }

    pub(super) async fn find_config(&self, config_id: &str) -> StoreResult<Option<WebhookConfig>> {
        let c = self.reader().await?;
        let row = query_opt(
            &c,
            &format!("SELECT {CONFIG_COLUMNS} FROM webhook_configs WHERE id = $1"),
            &[&config_id],
        )
        .await?;
        row.as_ref()
            .map(|r| config_row(r).and_then(ConfigRow::into_config))
            .transpose()
    }
}

/// How long `delete_config` keeps starting again while other transactions hold rows it must
/// change (they hold them for one group or claim: milliseconds); after it, the delete fails
/// (503) and nothing of it is written.
const DELETE_TRIES_FOR: Duration = Duration::from_secs(10);
/// Its first pause before starting again, doubled each time up to [`DELETE_MOST_PAUSE`].
const DELETE_FIRST_PAUSE: Duration = Duration::from_millis(5);
const DELETE_MOST_PAUSE: Duration = Duration::from_millis(200);

/// One try of `delete_config` (see there). `held` is set when a row to change was held by
/// another transaction: the try then fails, so that its transaction rolls back.
async fn delete_config_once(
    c: Arc<Conn>,
    app_key: String,
    config_id: String,
    held: Arc<AtomicBool>,
) -> StoreResult<(bool, Vec<StoreSignal>)> {
    let found = query_opt(
        &c,
        "SELECT product, max_hooks FROM webhook_configs WHERE app_key = $1 AND id = $2",
        &[&app_key, &config_id],
    )
    .await?;
    let Some(found) = found else {
        return Ok((false, Vec::new()));
    };
    let product = parse_product(&col::<String>(&found, 0)?)?;
    let max_hooks: i64 = col(&found, 1)?;
    let now = now_millis();
    // The one wait: for the ingests, redeliveries and replays writing for this config
    // (`FOR KEY SHARE`) and other nodes' health writes, while this transaction holds nothing.
    // Those that come after wait for this delete and then find no config.
    execute(
        &c,
        "DELETE FROM webhook_configs WHERE id = $1",
        &[&config_id],
    )
    .await?;
    execute(
        &c,
        "DELETE FROM subscriptions WHERE config_id = $1",
        &[&config_id],
    )
    .await?;
    // Hooks still queued become CANCELLED deliveries too, so the log shows what this config
    // never received. Rows a claim holds are skipped (and the delete starts again): by then the
    // claim has committed its deliveries, which the next try cancels. The rows are locked once
    // (an `ARRAY(...)` is run once) and then found by `ctid`: as `IN (SELECT ... FOR UPDATE
    // SKIP LOCKED)` a nested-loop plan may run the locking select again for every row (see
    // `claims::CLAIM`). (Queue rows are only ever inserted and deleted, so a locked row's
    // `ctid` is the one the statement sees; deliveries are updated by others, so below they
    // are found by key, and the update follows the row to the version locked.)
    let rows = query(
        &c,
        "DELETE FROM queue WHERE ctid = ANY (ARRAY( \
             SELECT ctid FROM queue WHERE config_id = $1 FOR UPDATE SKIP LOCKED)) \
         RETURNING event, hook_seq",
        &[&config_id],
    )
    .await?;
    execute(
        &c,
        "UPDATE deliveries SET status = 'CANCELLED', next_attempt_at = NULL, \
         updated_at = $2, lease_owner = NULL, lease_expires_at = NULL \
         WHERE hooks_id = ANY (ARRAY(SELECT hooks_id FROM deliveries \
             WHERE config_id = $1 AND status IN ('PENDING', 'RETRYING') \
             FOR UPDATE SKIP LOCKED))",
        &[&config_id, &now],
    )
    .await?;
    // What is still queued or open was held by another transaction (or made by a claim that
    // committed meanwhile): start again rather than wait for it holding the config row.
    let left = query_one(
        &c,
        "SELECT EXISTS (SELECT 1 FROM queue WHERE config_id = $1) \
             OR EXISTS (SELECT 1 FROM deliveries WHERE config_id = $1 \
                 AND status IN ('PENDING', 'RETRYING'))",
        &[&config_id],
    )
    .await?;
    if col::<bool>(&left, 0)? {
        held.store(true, Ordering::Relaxed);
        return Err(StoreError::Unavailable(format!(
            "config {config_id}: its queued hooks or open deliveries are held by another \
             transaction; the delete is tried again"
        )));
    }
    let mut queued = Vec::with_capacity(rows.len());
    for r in &rows {
        queued.push((col::<String>(r, 0)?, col::<i64>(r, 1)?));
    }
    queued.sort();
    for (event, seqs) in runs_by_event(&queued, max_hooks as u32) {
        let summary = DeliverySummary::new(
            hookline_wire::generate_id(),
            &app_key,
            &config_id,
            product,
            parse_event(event)?,
            DeliveryStatus::Cancelled,
            Vec::new(),
            now,
        );
        insert_delivery(&c, &summary, &seqs, None).await?;
    }
    notify(&c, CONFIG_CHANNEL, std::slice::from_ref(&config_id)).await?;
    Ok((true, Vec::new()))
}
