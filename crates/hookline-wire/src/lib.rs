//! The wire format of hookline, a webhook delivery service: the event catalogue, ingest validation,
//! envelopes, typed hook models, ids and signatures. No I/O.
//!
//! Producers send ingest requests (`{"productName": "SMS", "event": "MESSAGE_RESULT_UPDATE",
//! "hooks": [..]}`) that [`validate_ingest`] checks and normalises; hookline stores each hook's JSON
//! once and later POSTs [envelopes](write_envelope) to receivers.
//!
//! Receivers can depend on this crate alone to check a delivery and read it ([`receivers`] has a
//! whole axum handler that also deduplicates on `hookId`):
//!
//! ```
//! use hookline_wire::{Envelope, Hook, SIGNATURE_HEADER, standard_webhooks, verify_static_signature};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // What arrived (the headers and body of one POST).
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let body = br#"{"hooksId":"20240429205810Xw3kPq9LmZ01","webhookConfigId":"20240101000000AbCdEfGhIjK",
//!   "productName":"SMS","appKey":"akb3dukdmdjsdSvgk","event":"MESSAGE_RESULT_UPDATE",
//!   "hooks":[{"hookId":"20240429205809GcSUXthVA00","requestId":"20240429205802y0Tl7Gbz0e0",
//!   "recipientSeq":1,"messageStatus":"COMPLETED","resultCode":"1000","newField":7}]}"#;
//! let webhook_id = "20240429205810Xw3kPq9LmZ01";
//! let webhook_timestamp = 1_714_391_290;
//! # let webhook_signature = standard_webhooks::sign(secret, webhook_id, webhook_timestamp, body)?;
//! # let toast_signature = "my-shared-signature";
//! # let now = webhook_timestamp + 3;
//!
//! // The documents' static signature: compare with the one entered in the webhook config.
//! assert_eq!(SIGNATURE_HEADER, "X-Toast-Webhook-Signature");
//! if !verify_static_signature(toast_signature, "my-shared-signature") {
//!     return Err("wrong X-Toast-Webhook-Signature".into());
//! }
//!
//! // The Standard Webhooks signature, when the config has a signing secret.
//! standard_webhooks::verify(
//!     secret,
//!     webhook_id,
//!     webhook_timestamp,
//!     body,
//!     &webhook_signature,
//!     now,
//!     standard_webhooks::DEFAULT_TOLERANCE_SECS,
//! )?;
//!
//! // Then read it. Deduplicate on hookId: a retry carries the same hooks again.
//! let envelope = Envelope::parse(body)?;
//! for hook in envelope.typed_hooks()? {
//!     match hook {
//!         Hook::SmsMessageResultUpdate(h) => {
//!             assert_eq!(h.hook_id, "20240429205809GcSUXthVA00");
//!             assert_eq!(h.recipient_seq, 1);
//!             assert_eq!(h.result_code.as_deref(), Some("1000"));
//!             // Fields newer than this crate are kept, not rejected.
//!             assert_eq!(h.extra["newField"], 7);
//!         }
//!         other => println!("hook {} of another event", other.hook_id()),
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod canonical;
mod catalogue;
mod dates;
mod envelope;
mod hooks;
mod ids;
mod json;
pub mod receivers;
mod samples;
mod schema;
mod signature;
mod validate;

pub use catalogue::{
    Catalogue, CatalogueError, Event, EventEntry, MAX_FIELD_CHARS, MAX_LINK_CHARS, Product,
    ProductEntry, catalogue, install_catalogue, product_list,
};
pub use envelope::{Envelope, EnvelopeError, write_envelope};
pub use hooks::{
    CommentId, ConfigHealthHook, ConfigHealthState, DeliveryEndStatus, DeliveryFailedHook,
    DlrStatus, EmailMailStatus, EmailMessageResultHook, EmailMessageType, EmailUnsubscribeHook,
    Hook, KakaoCommentStatus, KakaoMessageResultHook, KakaoMessageType, KakaoTemplateAttachment,
    KakaoTemplateComment, KakaoTemplateStatus, KakaoTemplateStatusHook, Link, Links, MailSeq,
    SmsConversionBlockHook, SmsInternationalDeliveryReceiptHook, SmsMessageResultHook,
    SmsMessageStatus, SmsUnsubscribeHook,
};
pub use ids::{
    GENERATED_ID_LEN, MAX_HOOK_ID_LEN, derived_id, generate_id, is_generated_id, is_valid_hook_id,
};
pub use samples::{sample_from_example, sample_hook};
pub use signature::{SIGNATURE_HEADER, SignatureError, standard_webhooks, verify_static_signature};
pub use validate::{
    IngestLimits, ValidatedBatch, ValidatedHook, ValidationError, ValidationErrorKind,
    validate_hook, validate_ingest,
};
