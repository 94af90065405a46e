//! The writer's copy of the `subscriptions` table, per app key: which configs an ingest queues
//! its hooks for, without a SELECT per ingest job.
//!
//! The copy is also **published** to request tasks ([`Published`]): an ingest evaluates its
//! hooks' filters and ordering-key values against it before the writer ([`Routes`]), on the
//! request's own task, so the single writer thread only binds the answers. The writer uses them
//! only if its copy of that app key is still the very one they were computed from (the same
//! `Arc`); otherwise (a config changed meanwhile) it evaluates them itself, as before.
//!
//! Exact because every write of the table runs on the writer thread, in a job that clears this
//! copy (`configs.rs`: a config created, changed, deleted or disabled for failing), and because
//! a group that rolls back clears it too: an app key read again inside a group sees that group's
//! uncommitted rows, which a rollback takes back. An app key is read from the table on its first
//! ingest after a clear.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hookline_wire::{Event, Product, ValidatedHook};
use rusqlite::{Connection, params};

use crate::filter::Filter;
use crate::store::rows::{parse_event, parse_product};
use crate::store::{StoreError, StoreResult};

/// App keys remembered at most: a bound on memory, however many tenants ingest. Past it the copy
/// starts over (a SELECT per app key again), which costs little.
const MAX_APP_KEYS: usize = 10_000;

pub(super) struct Subscription {
    product: Product,
    event: Event,
    config_id: String,
    /// The config's filter (read with the subscription: a config change clears this copy).
    filter: Option<Arc<Filter>>,
    /// The config's `orderingKey` (read with the subscription, like the filter).
    ordering_key: Option<Arc<str>>,
}

/// A config an ingest queues its hooks for, and the filter a hook must pass for it.
#[derive(Clone, Copy)]
pub(super) struct Subscribed<'a> {
    pub(super) config_id: &'a str,
    pub(super) filter: Option<&'a Filter>,
    /// The hook field whose value each queue row carries (`None`: not ordered).
    pub(super) ordering_key: Option<&'a str>,
}

/// One app key's subscriptions as the writer read them (shared with request tasks).
pub(super) type AppKeySubscriptions = Arc<Vec<Subscription>>;

/// The writer's copy, readable by request tasks: an app key is here from the writer's first
/// read of it until its next clear.
#[derive(Clone, Default)]
pub(super) struct Published(Arc<Mutex<HashMap<String, AppKeySubscriptions>>>);

impl Published {
    pub(super) fn get(&self, app_key: &str) -> Option<AppKeySubscriptions> {
        self.0.lock().ok()?.get(app_key).cloned()
    }

    fn clear(&self) {
        if let Ok(mut published) = self.0.lock() {
            published.clear();
        }
    }

    fn insert(&self, app_key: &str, subscriptions: &AppKeySubscriptions) {
        if let Ok(mut published) = self.0.lock() {
            published.insert(app_key.to_owned(), subscriptions.clone());
        }
    }
}

pub(super) struct Subscriptions {
    by_app_key: HashMap<String, AppKeySubscriptions>,
    published: Published,
}

/// The configs of `subscriptions` subscribed to `event` of `product`, in a fixed order (the
/// order [`Routes`] answers in).
pub(super) fn matching(
    subscriptions: &[Subscription],
    product: Product,
    event: Event,
) -> impl Iterator<Item = Subscribed<'_>> + Clone {
    subscriptions
        .iter()
        .filter(move |s| s.product == product && s.event == event)
        .map(|s| Subscribed {
            config_id: s.config_id.as_str(),
            filter: s.filter.as_deref(),
            ordering_key: s.ordering_key.as_deref(),
        })
}

impl Subscriptions {
    pub(super) fn new(published: Published) -> Self {
        Subscriptions {
            by_app_key: HashMap::new(),
            published,
        }
    }

    /// Forgets everything: the table changed, or a group rolled back.
    pub(super) fn clear(&mut self) {
        self.by_app_key.clear();
        self.published.clear();
    }

    /// The configs of `app_key` subscribed to `event` of `product` (enabled, not disabled for
    /// failing), read from the table when this app key is not known yet.
    pub(super) fn configs(
        &mut self,
        conn: &Connection,
        app_key: &str,
        product: Product,
        event: Event,
    ) -> StoreResult<impl Iterator<Item = Subscribed<'_>> + Clone> {
        self.app_key(conn, app_key)?;
        let subscriptions = self
            .by_app_key
            .get(app_key)
            .map_or(&[][..], |s| s.as_slice());
        Ok(matching(subscriptions, product, event))
    }

    /// Every subscription of `app_key`, read from the table when this app key is not known yet
    /// (and then published).
    pub(super) fn app_key(
        &mut self,
        conn: &Connection,
        app_key: &str,
    ) -> StoreResult<AppKeySubscriptions> {
        if let Some(known) = self.by_app_key.get(app_key) {
            return Ok(known.clone());
        }
        {
            let rows = conn
                .prepare_cached(
                    "SELECT s.product, s.event, s.config_id, c.filter, c.ordering_key \
                     FROM subscriptions s \
                     JOIN webhook_configs c ON c.id = s.config_id WHERE s.app_key = ?1",
                )?
                .query_map(params![app_key], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // One compiled filter per config, shared by its events' subscriptions.
            let mut filters: HashMap<String, Option<Arc<Filter>>> = HashMap::new();
            let subscriptions = rows
                .into_iter()
                .map(|(product, event, config_id, filter, ordering_key)| {
                    let filter = match filters.get(&config_id) {
                        Some(known) => known.clone(),
                        None => {
                            let parsed = match filter {
                                None => None,
                                Some(text) => Filter::from_stored(&text)
                                    .map_err(|e| {
                                        StoreError::Corrupt(format!(
                                            "the filter of config {config_id}: {e}"
                                        ))
                                    })?
                                    .map(Arc::new),
                            };
                            filters.insert(config_id.clone(), parsed.clone());
                            parsed
                        }
                    };
                    Ok(Subscription {
                        product: parse_product(&product)?,
                        event: parse_event(&event)?,
                        config_id,
                        filter,
                        ordering_key: ordering_key.map(Arc::from),
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            if self.by_app_key.len() >= MAX_APP_KEYS {
                self.clear();
            }
            let subscriptions = Arc::new(subscriptions);
            self.by_app_key
                .insert(app_key.to_owned(), subscriptions.clone());
            self.published.insert(app_key, &subscriptions);
            Ok(subscriptions)
        }
    }
}

/// What a hook does for a config that has a filter or an `orderingKey`.
pub(super) struct Answer {
    pub(super) passes: bool,
    /// Its value of the config's `orderingKey` (`None`: unordered, or no value).
    pub(super) key: Option<String>,
}

impl Answer {
    pub(super) fn of(subscribed: &Subscribed<'_>, hook: &ValidatedHook) -> Answer {
        // Each filter reads only the fields it names from the hook's text.
        let passes = subscribed.filter.is_none_or(|f| f.matches_json(&hook.json));
        // Only an ordered config parses the hook for its key; the others bind NULL.
        let key = match (passes, subscribed.ordering_key) {
            (true, Some(field)) => crate::model::ordering_value(&hook.json, field),
            _ => None,
        };
        Answer { passes, key }
    }
}

/// Every hook's [`Answer`] for every config of [`matching`], computed on the request's task
/// against the subscriptions it names.
pub(super) struct Routes {
    pub(super) subscriptions: AppKeySubscriptions,
    configs: usize,
    answers: Vec<Answer>,
}

impl Routes {
    /// `None` when no config of the event has a filter or an `orderingKey`: the writer has
    /// nothing to evaluate then.
    pub(super) fn compute(
        subscriptions: AppKeySubscriptions,
        product: Product,
        event: Event,
        hooks: &[ValidatedHook],
    ) -> Option<Routes> {
        let configs = matching(&subscriptions, product, event);
        if !configs
            .clone()
            .any(|s| s.filter.is_some() || s.ordering_key.is_some())
        {
            return None;
        }
        let count = configs.clone().count();
        let mut answers = Vec::with_capacity(hooks.len() * count);
        for hook in hooks {
            answers.extend(configs.clone().map(|s| Answer::of(&s, hook)));
        }
        drop(configs);
        Some(Routes {
            subscriptions,
            configs: count,
            answers,
        })
    }

    /// The answer of the `hook`-th hook for the `config`-th config of [`matching`].
    pub(super) fn answer(&self, hook: usize, config: usize) -> Option<&Answer> {
        self.answers.get(hook * self.configs + config)
    }
}
