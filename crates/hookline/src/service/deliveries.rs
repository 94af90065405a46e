//! The delivery log and sending hooks again: list, one delivery, redeliver, replay, and the
//! per-config chart of attempts.

use super::{Error, Result, Service};
use crate::model::{DeliveryFilter, DeliverySummary, Millis, Page, PageRequest, ReplayFilter};
use crate::store::{AttemptBucket, DeliveryDetail};

impl Service {
    pub async fn list_deliveries(
        &self,
        app_key: &str,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> Result<Page<DeliverySummary>> {
        Ok(self.store.list_deliveries(app_key, filter, page).await?)
    }

    pub async fn get_delivery(&self, app_key: &str, hooks_id: &str) -> Result<DeliveryDetail> {
        self.store
            .get_delivery(app_key, hooks_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("hooksId: no delivery {hooks_id:?}")))
    }

    /// A new PENDING delivery (new hooksId) with the same hooks to the config's current
    /// settings, handed to the engine.
    pub async fn redeliver(&self, app_key: &str, hooks_id: &str) -> Result<DeliverySummary> {
        let summary = self
            .store
            .redeliver(app_key, hooks_id, hookline_wire::generate_id())
            .await?
            .ok_or_else(|| Error::not_found(format!("hooksId: no delivery {hooks_id:?}")))?;
        self.engine
            .delivery_created(summary.config_id.clone(), summary.hooks_id.clone());
        Ok(summary)
    }

    /// Queues again, for the config, the hooks of its deliveries that match; answers how many.
    /// The store's commit signals the new work to the engine.
    pub async fn replay(
        &self,
        app_key: &str,
        config_id: &str,
        filter: ReplayFilter,
    ) -> Result<u64> {
        self.get_config(app_key, config_id).await?;
        Ok(self.store.replay(app_key, config_id, filter).await?)
    }

    /// The dashboard's chart: attempts per time bucket (see `Store::attempt_buckets`).
    pub async fn attempt_buckets(
        &self,
        app_key: &str,
        config_id: &str,
        since: Millis,
        bucket_ms: i64,
        buckets: u32,
    ) -> Result<Vec<AttemptBucket>> {
        Ok(self
            .store
            .attempt_buckets(app_key, config_id, since, bucket_ms, buckets)
            .await?)
    }
}
