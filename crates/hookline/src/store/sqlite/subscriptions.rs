//! The writer's copy of the `subscriptions` table, per app key: which configs an ingest queues
//! its hooks for, without a SELECT per ingest job.
//!
//! Exact because every write of the table runs on the writer thread, in a job that clears this
//! copy (`configs.rs`: a config created, changed, deleted or disabled for failing), and because
//! a group that rolls back clears it too: an app key read again inside a group sees that group's
//! uncommitted rows, which a rollback takes back. An app key is read from the table on its first
//! ingest after a clear.

use std::collections::HashMap;

use hookline_wire::{Event, Product};
use rusqlite::{Connection, params};

use crate::store::StoreResult;
use crate::store::rows::{parse_event, parse_product};

/// App keys remembered at most: a bound on memory, however many tenants ingest. Past it the copy
/// starts over (a SELECT per app key again), which costs little.
const MAX_APP_KEYS: usize = 10_000;

struct Subscription {
    product: Product,
    event: Event,
    config_id: String,
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
    ) -> StoreResult<impl Iterator<Item = &str> + Clone> {
        if !self.by_app_key.contains_key(app_key) {
            let rows = conn
                .prepare_cached(
                    "SELECT product, event, config_id FROM subscriptions WHERE app_key = ?1",
                )?
                .query_map(params![app_key], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let subscriptions = rows
                .into_iter()
                .map(|(product, event, config_id)| {
                    Ok(Subscription {
                        product: parse_product(&product)?,
                        event: parse_event(&event)?,
                        config_id,
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
            .map(|s| s.config_id.as_str()))
    }
}
