//! The envelope: the body of one delivery POST.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalogue::{Event, Product};
use crate::hooks::Hook;
use crate::json::write_str;

/// Appends one envelope to `out`, compact, fields in the documents' order:
/// `{"hooksId":..,"webhookConfigId":..,"productName":..,"appKey":..,"event":..,"hooks":[h1,h2]}`.
///
/// `hooks` are stored hook JSON texts (each [`crate::ValidatedHook::json`]) spliced in verbatim, not
/// re-encoded: that is what makes building an envelope of a thousand hooks cheap. They must be
/// valid JSON objects; an envelope carries at least one, but this writer does not check either (it
/// cannot fail, and the caller built them through validation). The string fields are JSON-escaped.
pub fn write_envelope(
    out: &mut Vec<u8>,
    hooks_id: &str,
    webhook_config_id: &str,
    product: Product,
    app_key: &str,
    event: Event,
    hooks: &[&str],
) {
    let hooks_len: usize = hooks.iter().map(|h| h.len() + 1).sum();
    out.reserve(96 + hooks_id.len() + webhook_config_id.len() + app_key.len() + hooks_len);
    out.extend_from_slice(b"{\"hooksId\":");
    write_str(out, hooks_id);
    out.extend_from_slice(b",\"webhookConfigId\":");
    write_str(out, webhook_config_id);
    out.extend_from_slice(b",\"productName\":");
    write_str(out, product.as_str());
    out.extend_from_slice(b",\"appKey\":");
    write_str(out, app_key);
    out.extend_from_slice(b",\"event\":");
    write_str(out, event.as_str());
    out.extend_from_slice(b",\"hooks\":[");
    for (i, hook) in hooks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(hook.as_bytes());
    }
    out.extend_from_slice(b"]}");
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is not JSON, or lacks a field or has one of the wrong type (serde's message says
    /// which, with line and column).
    #[error("invalid envelope: {0}")]
    Json(#[source] serde_json::Error),
    /// `hooks` is empty; an envelope carries at least one hook.
    #[error("invalid envelope: hooks is empty")]
    EmptyHooks,
    /// `hooks[index]` is not a JSON object.
    #[error("invalid envelope: hooks[{index}] is not an object")]
    HookNotAnObject {
        /// Position in `hooks`.
        index: usize,
    },
    /// `hooks[index]` has no string `hookId`.
    #[error("invalid envelope: hooks[{index}].hookId is missing or not a string")]
    MissingHookId {
        /// Position in `hooks`.
        index: usize,
    },
    /// `productName` is not a known product.
    #[error("unknown productName {0:?}")]
    UnknownProduct(String),
    /// `event` is not a known event.
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// `event` is known but not emitted by the product.
    #[error("event {event} is not an event of {product}")]
    EventNotForProduct {
        /// The envelope's product.
        product: Product,
        /// The envelope's event.
        event: Event,
    },
    /// The product and event are in the catalogue (an operator's) but this crate has no typed
    /// model for them: read [`Envelope::hooks`] as JSON.
    #[error("{product} {event} has no typed model in hookline-wire: read the hooks as JSON")]
    NoTypedModel {
        /// The envelope's product.
        product: Product,
        /// The envelope's event.
        event: Event,
    },
    /// `hooks[index]` does not fit its event's typed model (a required field missing, a value
    /// outside an enumeration, a wrong type).
    #[error("hooks[{index}] is not a valid {event} hook: {source}")]
    InvalidHook {
        /// Position in `hooks`.
        index: usize,
        /// The envelope's event.
        event: Event,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
}

/// A parsed envelope, as a receiver sees it. Field names on the wire are camelCase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Id of this delivery; the same on every retry of it.
    pub hooks_id: String,
    /// The webhook config this delivery is for.
    pub webhook_config_id: String,
    /// `SMS` or `KakaoTalk Bizmessage`.
    pub product_name: String,
    /// The app key the events happened in.
    pub app_key: String,
    /// The event name shared by all hooks.
    pub event: String,
    /// The hooks, untyped, unknown fields and order preserved ([`Envelope::typed_hooks`] for typed).
    pub hooks: Vec<Value>,
}

impl Envelope {
    /// Parses an envelope body and checks its shape: the six fields present with the right types,
    /// `hooks` not empty, and each hook an object with a string `hookId`. Unknown envelope fields are
    /// ignored. Product and event names are not checked here ([`Envelope::typed_hooks`] does), so a
    /// receiver can still read envelopes of events newer than this crate.
    pub fn parse(body: &[u8]) -> Result<Envelope, EnvelopeError> {
        let envelope: Envelope = serde_json::from_slice(body).map_err(EnvelopeError::Json)?;
        if envelope.hooks.is_empty() {
            return Err(EnvelopeError::EmptyHooks);
        }
        for (index, hook) in envelope.hooks.iter().enumerate() {
            let Value::Object(map) = hook else {
                return Err(EnvelopeError::HookNotAnObject { index });
            };
            if !matches!(map.get("hookId"), Some(Value::String(_))) {
                return Err(EnvelopeError::MissingHookId { index });
            }
        }
        Ok(envelope)
    }

    /// The product, parsed like [`Product::parse`] (any letter case).
    pub fn product(&self) -> Result<Product, EnvelopeError> {
        Product::parse(&self.product_name)
            .ok_or_else(|| EnvelopeError::UnknownProduct(self.product_name.clone()))
    }

    /// The event, checked to be one the product emits.
    pub fn event(&self) -> Result<Event, EnvelopeError> {
        let product = self.product()?;
        let event = Event::parse(&self.event)
            .ok_or_else(|| EnvelopeError::UnknownEvent(self.event.clone()))?;
        if !event.is_valid_for(product) {
            return Err(EnvelopeError::EventNotForProduct { product, event });
        }
        Ok(event)
    }

    /// Every hook as the typed model of the envelope's product and event, in order.
    pub fn typed_hooks(&self) -> Result<Vec<Hook>, EnvelopeError> {
        let product = self.product()?;
        let event = self.event()?;
        self.hooks
            .iter()
            .enumerate()
            .map(|(index, hook)| typed_hook(product, event, index, hook))
            .collect()
    }
}

pub(crate) fn typed_hook(
    product: Product,
    event: Event,
    index: usize,
    hook: &Value,
) -> Result<Hook, EnvelopeError> {
    let invalid = |source| EnvelopeError::InvalidHook {
        index,
        event,
        source,
    };
    // `&Value` implements `Deserializer`, so typing a hook does not clone it.
    let hook = match (product, event) {
        (Product::KakaoTalkBizmessage, Event::TemplateStatusUpdate) => {
            Hook::KakaoTemplateStatusUpdate(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        (Product::KakaoTalkBizmessage, Event::MessageResultUpdate) => {
            Hook::KakaoMessageResultUpdate(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        (Product::Sms, Event::Unsubscribe) => {
            Hook::SmsUnsubscribe(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        (Product::Sms, Event::MessageResultUpdate) => {
            Hook::SmsMessageResultUpdate(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        (Product::Sms, Event::ConversionBlock) => {
            Hook::SmsConversionBlock(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        (Product::Sms, Event::InternationalDeliveryReceipt) => {
            Hook::SmsInternationalDeliveryReceipt(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        (Product::Email, Event::Unsubscribe) => {
            Hook::EmailUnsubscribe(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        (Product::Email, Event::MessageResultUpdate) => {
            Hook::EmailMessageResultUpdate(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        (Product::Hookline, Event::WebhookConfigFailing) => {
            Hook::WebhookConfigFailing(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        (Product::Hookline, Event::WebhookConfigDisabled) => {
            Hook::WebhookConfigDisabled(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        (Product::Hookline, Event::WebhookConfigRecovered) => {
            Hook::WebhookConfigRecovered(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        (Product::Hookline, Event::DeliveryFailed) => {
            Hook::DeliveryFailed(Deserialize::deserialize(hook).map_err(invalid)?)
        }
        // An operator's event has no typed model: `Envelope::hooks` has it as JSON.
        _ => return Err(EnvelopeError::NoTypedModel { product, event }),
    };
    Ok(hook)
}
