//! Webhook configs: read, create, replace, enable or pause, delete, and send a test event.
//! Every write tells the engine, here and nowhere else.

use hookline_wire::Event;

use serde_json::{Map, Value};

use super::config_input::{merge_patch, settable_json};
use super::input::parse_event_name;
use super::{ConfigInput, Error, ErrorKind, Result, Service};
use crate::engine::TestSlotRefused;
use crate::model::{
    AttemptResult, ConfigFilter, Health, HealthState, Page, PageRequest, StoredHook,
    TestSendRecord, WebhookConfig, now_millis,
};

/// How long a caller refused a test slot is told to wait: a slot frees when a request in flight
/// ends, which is usually well within a second, and at worst the config's timeout.
const TEST_SLOT_RETRY_AFTER_SECS: u64 = 1;

/// What a test send did: outside the queue, logged as a test delivery (`hooks_id`).
#[derive(Debug, Clone)]
pub struct TestSend {
    pub hooks_id: String,
    pub hook_id: String,
    pub result: AttemptResult,
    pub succeeded: bool,
}

fn no_such_config(config_id: &str) -> Error {
    Error::not_found(format!("webhookConfigId: no webhook config {config_id:?}"))
}

impl Service {
    pub async fn get_config(&self, app_key: &str, config_id: &str) -> Result<WebhookConfig> {
        self.store
            .get_config(app_key, config_id)
            .await?
            .ok_or_else(|| no_such_config(config_id))
    }

    pub async fn list_configs(
        &self,
        app_key: &str,
        filter: ConfigFilter,
        page: PageRequest,
    ) -> Result<Page<WebhookConfig>> {
        Ok(self.store.list_configs(app_key, filter, page).await?)
    }

    /// Stores a new config with a fresh health, within the app key's config limit.
    pub async fn create_config(&self, app_key: &str, input: ConfigInput) -> Result<WebhookConfig> {
        let limit = self.limits.max_configs_per_app_key;
        let existing = self
            .store
            .list_configs(
                app_key,
                ConfigFilter::default(),
                PageRequest {
                    size: limit.max(1),
                    cursor: None,
                },
            )
            .await?;
        // Two creates at the same moment may both pass: the limit bounds a tenant's fan-out,
        // it is not a quota to the unit.
        if existing.items.len() >= limit as usize {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "webhookConfigs: this app key has {} webhook configs, the most the server \
                     allows (--max-configs-per-app-key {limit}); delete one first",
                    existing.items.len()
                ),
            ));
        }
        let now = now_millis();
        let config = input.into_config(
            hookline_wire::generate_id(),
            app_key.to_owned(),
            Health::default(),
            None,
            now,
            now,
        );
        self.store.insert_config(config.clone()).await?;
        self.engine.config_changed(config.clone());
        Ok(config)
    }

    /// Replaces a config's settable fields. An omitted optional field returns to its default,
    /// except the write-only signing secret, which stays unless the input sets or removes it.
    /// Enabling a config that health checks DISABLED gives it a fresh health.
    pub async fn replace_config(
        &self,
        app_key: &str,
        config_id: &str,
        input: ConfigInput,
    ) -> Result<WebhookConfig> {
        let existing = self.get_config(app_key, config_id).await?;
        self.replace_with(existing, input).await
    }

    /// Changes only the fields a JSON Merge Patch names (RFC 7396): `null` returns an optional
    /// field to its default, `"signingSecret": null` removes the secret. The result is checked
    /// like a whole config.
    pub async fn patch_config(
        &self,
        app_key: &str,
        config_id: &str,
        patch: &Map<String, Value>,
    ) -> Result<WebhookConfig> {
        let existing = self.get_config(app_key, config_id).await?;
        let mut merged = settable_json(&existing);
        merge_patch(&mut merged, patch);
        let input = ConfigInput::from_json(&merged)?;
        self.replace_with(existing, input).await
    }

    async fn replace_with(
        &self,
        existing: WebhookConfig,
        input: ConfigInput,
    ) -> Result<WebhookConfig> {
        let mut health = existing.health.clone();
        if input.enabled && health.state == HealthState::Disabled {
            health = Health::default();
        }
        let config = input.into_config(
            existing.id.clone(),
            existing.app_key.clone(),
            health,
            Some(&existing),
            existing.created_at,
            now_millis(),
        );
        self.update_config(config).await
    }

    /// Pauses (`false`) or resumes (`true`) a config, everything else unchanged. Resuming a
    /// config that health checks DISABLED gives it a fresh health, as a replace does.
    pub async fn set_config_enabled(
        &self,
        app_key: &str,
        config_id: &str,
        enabled: bool,
    ) -> Result<WebhookConfig> {
        let mut config = self.get_config(app_key, config_id).await?;
        if enabled && config.health.state == HealthState::Disabled {
            config.health = Health::default();
        }
        config.enabled = enabled;
        config.updated_at = now_millis();
        self.update_config(config).await
    }

    /// Writes a changed config and tells the engine. Answers it as stored: its version may be
    /// one past the one it replaced rather than this node's time (see `Store::update_config`),
    /// and what the engine holds and the caller is told must be what a read will show.
    pub(super) async fn update_config(&self, mut config: WebhookConfig) -> Result<WebhookConfig> {
        let Some(version) = self.store.update_config(config.clone()).await? else {
            return Err(no_such_config(&config.id));
        };
        config.updated_at = version;
        self.engine.config_changed(config.clone());
        Ok(config)
    }

    /// Deletes a config; its open deliveries and queued hooks become CANCELLED deliveries.
    /// Answers the config as it was.
    pub async fn delete_config(&self, app_key: &str, config_id: &str) -> Result<WebhookConfig> {
        let config = self.get_config(app_key, config_id).await?;
        if !self.store.delete_config(app_key, config_id).await? {
            return Err(no_such_config(config_id));
        }
        self.engine.config_deleted(config_id.to_owned());
        Ok(config)
    }

    /// Sends one realistic sample hook of `event` (default: the config's first) to the config
    /// now, outside the queue, in one of the config's slots: at most one test per config at a
    /// time, and none while deliveries hold every slot (429 with `Retry-After`, no request
    /// made). The send is logged as a finished delivery marked as a test, never retried, and
    /// the config's health does not hear of it.
    pub async fn send_test_event(
        &self,
        config: &WebhookConfig,
        event: Option<&str>,
    ) -> Result<TestSend> {
        let event = match event {
            Some(name) => {
                let event = parse_event_name("event", name)?;
                if !event.is_valid_for(config.product) {
                    return Err(Error::field(
                        "event",
                        format!("{name:?} is not an event of {}", config.product.as_str()),
                    ));
                }
                event
            }
            None => *config.events.first().ok_or_else(|| {
                Error::field("event", "the config subscribes to no event; name one")
            })?,
        };
        let (hooks_id, hook, envelope) = test_envelope(config, event)?;
        let slot = self
            .engine
            .reserve_test_slot(config)
            .await
            .map_err(test_slot_refused)?;
        let result = self
            .engine
            .send_test(&slot, config, &hooks_id, envelope)
            .await;
        let hook_id = hook.hook_id.clone();
        // Logged before the slot goes back: a shutdown waits for the slot, then flushes the
        // store, so a test that went out is in the log.
        self.store
            .record_test_send(TestSendRecord {
                hooks_id: hooks_id.clone(),
                app_key: config.app_key.clone(),
                config_id: config.id.clone(),
                product: config.product,
                event,
                hook,
                result: result.clone(),
            })
            .await?;
        drop(slot);
        Ok(TestSend {
            hooks_id,
            hook_id,
            succeeded: result.succeeded(),
            result,
        })
    }
}

fn test_slot_refused(refused: TestSlotRefused) -> Error {
    match refused {
        TestSlotRefused::TestUnderway | TestSlotRefused::Full { .. } => Error::rate_limited(
            format!(
                "webhookConfigId: {refused}; no test was sent (a test send takes one of the \
                 config's maxRequestsInFlight slots, and one test per config at a time)"
            ),
            TEST_SLOT_RETRY_AFTER_SECS,
        ),
        TestSlotRefused::ShuttingDown => {
            Error::new(ErrorKind::StoreUnavailable, refused.to_string())
        }
    }
}

/// The envelope of a test send: one sample hook (returned, to be logged), a fresh hooksId.
fn test_envelope(config: &WebhookConfig, event: Event) -> Result<(String, StoredHook, Vec<u8>)> {
    let sample = hookline_wire::sample_hook(config.product, event);
    let hook = hookline_wire::validate_hook(config.product, event, sample, 0).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("sample hook did not validate: {e}"),
        )
    })?;
    let hooks_id = hookline_wire::generate_id();
    let mut envelope = Vec::new();
    hookline_wire::write_envelope(
        &mut envelope,
        &hooks_id,
        &config.id,
        config.product,
        &config.app_key,
        event,
        &[hook.json.as_str()],
    );
    Ok((
        hooks_id,
        StoredHook {
            hook_id: hook.hook_id,
            json: hook.json,
            accepted_at: now_millis(),
        },
        envelope,
    ))
}
