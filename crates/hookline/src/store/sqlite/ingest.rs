//! Ingest: stores a request's hooks once per (app key, hookId) and queues every new one for each
//! subscribed config, signalling `NewWork` for those configs.
//!
//! A request is written in **parts** of at most [`ROWS_PER_PART`] rows (hooks and their queue
//! rows), one writer job each, one after the other. Most requests are one part. One that fans
//! out wide (100 hooks to 100 configs: 10,100 rows) is several, so the single writer never
//! spends more than a part's time on one request before another tenant's small ingest gets its
//! turn: a commit holding 10,000 rows takes about 100 ms here, and a quiet tenant waiting behind
//! it felt every one of them. Each part commits its hooks with their queue rows, so a crash or a
//! failure between parts leaves whole hooks, each queued for every config or not stored at all:
//! the producer, answered `503`, sends the request again and the hookIds already stored are
//! acknowledged without being stored twice (docs/api.md, "Idempotency").

use std::sync::Arc;

use hookline_wire::{Event, Product, ValidatedHook};
use rusqlite::params;

use super::SqliteStore;
use super::subscriptions::{Answer, Routes, matching};
use super::writer::{Job, Tenant, WriteTx, signal_new_work, write_via};
use crate::store::{IngestOutcome, StoreError, StoreResult};

/// Rows (hooks and queue rows) one part of a request writes at most (a hook and its queue rows
/// are never split: a hook fanned out wider than this is a part alone).
pub(super) const ROWS_PER_PART: usize = 1_000;

/// Hooks per part for a hook that is `1 + configs` rows (itself and a queue row per config).
pub(super) fn hooks_per_part(configs: usize) -> usize {
    (ROWS_PER_PART / (1 + configs)).max(1)
}

pub(super) const INSERT_HOOK: &str = "INSERT INTO hooks (app_key, hook_id, product, event, body, \
     created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (app_key, hook_id) DO NOTHING";
/// `?4`: the hook's value of the config's `orderingKey` (NULL for an unordered config).
pub(super) const INSERT_QUEUE: &str = "INSERT OR IGNORE INTO queue (config_id, event, hook_seq, \
     ordering_key) VALUES (?1, ?2, ?3, ?4)";

impl SqliteStore {
    pub(super) async fn ingest(
        &self,
        app_key: &str,
        product: Product,
        event: Event,
        hooks: Vec<ValidatedHook>,
    ) -> StoreResult<IngestOutcome> {
        // Filters and ordering keys evaluated here, on the request's task, against the writer's
        // published subscriptions: the writer only binds the answers (see `subscriptions.rs`).
        let routes = self
            .published
            .get(app_key)
            .and_then(|subscriptions| Routes::compute(subscriptions, product, event, &hooks))
            .map(Arc::new);
        let hooks = Arc::new(hooks);
        let app_key: Arc<str> = Arc::from(app_key);
        let sender = self.sender()?;
        let first = write_part(&sender, &app_key, product, event, &hooks, &routes, 0).await?;
        if first.1 >= hooks.len() {
            return Ok(first.0);
        }
        // The later parts in a task of their own: a caller that stops waiting (a client gone, a
        // shutdown) does not leave the request stopped between two parts.
        let rest = tokio::spawn(async move {
            let (mut outcome, mut start) = first;
            // Parts one after the other: a request's hooks keep their order. A part writes at
            // least one hook: `end > start` until the last.
            while start < hooks.len() {
                let (part, end) =
                    write_part(&sender, &app_key, product, event, &hooks, &routes, start).await?;
                outcome.new_hooks += part.new_hooks;
                outcome.queued += part.queued;
                start = end;
            }
            Ok(outcome)
        });
        rest.await
            .map_err(|e| StoreError::Unavailable(format!("an ingest's parts stopped: {e}")))?
    }
}

/// Submits the part of `hooks` that starts at `start` and waits for its commit: what it did,
/// and where the next part starts.
async fn write_part(
    sender: &std::sync::mpsc::Sender<Job>,
    app_key: &Arc<str>,
    product: Product,
    event: Event,
    hooks: &Arc<Vec<ValidatedHook>>,
    routes: &Option<Arc<Routes>>,
    start: usize,
) -> StoreResult<(IngestOutcome, usize)> {
    let tenant = Tenant {
        app_key: app_key.to_string(),
        product,
        event,
        hooks: hooks.len() - start,
    };
    let (part_hooks, part_key, part_routes) = (hooks.clone(), app_key.clone(), routes.clone());
    write_via(sender, Some(tenant), move |tx| {
        ingest_part(
            tx,
            &part_key,
            (product, event),
            &part_hooks,
            part_routes.as_deref(),
            start,
        )
    })
    .await
}

/// Writes the part of `hooks` that starts at `start`: what it did, and where the next part
/// starts (`hooks.len()` after the last).
fn ingest_part(
    tx: &mut WriteTx<'_, '_>,
    app_key: &str,
    (product, event): (Product, Event),
    hooks: &[ValidatedHook],
    routes: Option<&Routes>,
    start: usize,
) -> StoreResult<(IngestOutcome, usize)> {
    let WriteTx {
        conn,
        hot,
        subscriptions,
        signals,
        now,
        stored_from,
    } = tx;
    // The writer's copy of the subscriptions: no SELECT per ingest.
    let subscribed = subscriptions.app_key(conn, app_key)?;
    // Answers computed before the writer count only if made from this very copy.
    let routes = routes.filter(|r| Arc::ptr_eq(&r.subscriptions, &subscribed));
    let configs = matching(&subscribed, product, event);
    let end = hooks
        .len()
        .min(start.saturating_add(hooks_per_part(configs.clone().count())));
    // Configs that got rows, in subscription order (a few: a linear search is enough).
    let mut woken: Vec<&str> = Vec::new();
    let mut outcome = IngestOutcome::default();
    for (index, hook) in hooks.iter().enumerate().take(end).skip(start) {
        let inserted = hot.insert_hook.execute(params![
            app_key,
            hook.hook_id,
            product.as_str(),
            event.as_str(),
            hook.json,
            *now
        ])?;
        if inserted == 0 {
            continue; // accepted before: idempotent retry of a producer
        }
        outcome.new_hooks += 1;
        let seq = conn.last_insert_rowid();
        stored_from.get_or_insert(seq);
        for (c, subscribed) in configs.clone().enumerate() {
            let evaluated;
            let answer = if subscribed.filter.is_none() && subscribed.ordering_key.is_none() {
                None
            } else if let Some(known) = routes.and_then(|r| r.answer(index, c)) {
                Some(known)
            } else {
                evaluated = Answer::of(&subscribed, hook);
                Some(&evaluated)
            };
            if answer.is_some_and(|a| !a.passes) {
                continue;
            }
            hot.insert_queue.execute(params![
                subscribed.config_id,
                event.as_str(),
                seq,
                answer.and_then(|a| a.key.as_deref())
            ])?;
            outcome.queued += 1;
            if !woken.contains(&subscribed.config_id) {
                woken.push(subscribed.config_id);
            }
        }
    }
    for config_id in woken {
        signal_new_work(signals, config_id);
    }
    Ok((outcome, end))
}
