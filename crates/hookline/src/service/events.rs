//! Ingest: validated hooks stored durably and queued for every subscribed config. The store
//! signals the new work to the engine after its commit, so nothing is paired by hand here.

use hookline_wire::{Event, Product, ValidatedHook};

use super::{Result, Service};
use crate::store::IngestOutcome;

impl Service {
    /// Answers only after the commit that holds the hooks and their queue rows.
    pub async fn ingest(
        &self,
        app_key: &str,
        product: Product,
        event: Event,
        hooks: Vec<ValidatedHook>,
    ) -> Result<IngestOutcome> {
        Ok(self.store.ingest(app_key, product, event, hooks).await?)
    }
}
