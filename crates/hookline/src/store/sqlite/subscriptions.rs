//! The writer's copy of the `subscriptions` table, per app key: which configs an ingest queues
//! its hooks for, without a SELECT per ingest job.
//!
//! Exact because every write of the table runs on the writer thread, in a job that clears this
//! copy (`configs.rs`: a config created, changed, deleted or disabled for failing), and because
//! a group that rolls back clears it too: an app key read again inside a group sees that group's
//! uncommitted rows, which a rollback takes back. An app key is read from the table on its first
//! ingest after a clear.

use std::collections::HashMap;
use std::sync::Arc;

use hookline_wire::{Event, Product};
use rusqlite::{Connection, params};

use crate::filter::Filter;
use crate::store::rows::{parse_event, parse_product};
use crate::store::{StoreError, StoreResult};

/// App keys remembered at most: a bound on memory, however many tenants ingest. Past it the copy
/// starts over (a SELECT per app key again), which costs little.
const MAX_APP_KEYS: usize = 10_000;

struct Subscription {
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

#[derive(Default)]
pub(super) struct Subscriptions {
    by_app_key: HashMap<String, Vec<Subscription>>,
}

impl Subscriptions {
    /// Forgets everything: the table changed, or a group rolled back.
    pub(super) fn clear(&mut self) {
        self.by_app_key.clear();
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
        if !self.by_app_key.contains_key(app_key) {
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
                self.by_app_key.clear();
            }
            self.by_app_key.insert(app_key.to_owned(), subscriptions);
        }
        let subscriptions = self.by_app_key.get(app_key).map_or(&[][..], Vec::as_slice);
        Ok(subscriptions
            .iter()
            .filter(move |s| s.product == product && s.event == event)
            .map(|s| Subscribed {
                config_id: s.config_id.as_str(),
                filter: s.filter.as_deref(),
                ordering_key: s.ordering_key.as_deref(),
            }))
    }
}
