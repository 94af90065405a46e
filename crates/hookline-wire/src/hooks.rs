//! Typed views of the built-in hook types, for receivers (operators' events have none: read them as
//! JSON). A test checks every model against the catalogue's schema of its event.
//!
//! Every struct keeps fields it does not know in `extra` (in their original order), so a newer
//! producer adding fields never breaks an older receiver, and re-serialising loses nothing but
//! explicit `null`s of known optional fields. Enumerated fields are strict enums: a value outside the
//! catalogue is a deserialisation error, as it is on ingest.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A hook together with its type, as found in an envelope of a given product and event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Hook {
    /// KakaoTalk Bizmessage `TEMPLATE_STATUS_UPDATE`.
    KakaoTemplateStatusUpdate(KakaoTemplateStatusHook),
    /// KakaoTalk Bizmessage `MESSAGE_RESULT_UPDATE`.
    KakaoMessageResultUpdate(KakaoMessageResultHook),
    /// SMS `UNSUBSCRIBE`.
    SmsUnsubscribe(SmsUnsubscribeHook),
    /// SMS `MESSAGE_RESULT_UPDATE`.
    SmsMessageResultUpdate(SmsMessageResultHook),
    /// SMS `CONVERSION_BLOCK`.
    SmsConversionBlock(SmsConversionBlockHook),
    /// SMS `INTERNATIONAL_DELIVERY_RECEIPT`.
    SmsInternationalDeliveryReceipt(SmsInternationalDeliveryReceiptHook),
    /// Email `UNSUBSCRIBE`.
    EmailUnsubscribe(EmailUnsubscribeHook),
    /// Email `MESSAGE_RESULT_UPDATE`.
    EmailMessageResultUpdate(EmailMessageResultHook),
    /// hookline `WEBHOOK_CONFIG_FAILING` (an operational event).
    WebhookConfigFailing(ConfigHealthHook),
    /// hookline `WEBHOOK_CONFIG_DISABLED` (an operational event).
    WebhookConfigDisabled(ConfigHealthHook),
    /// hookline `WEBHOOK_CONFIG_RECOVERED` (an operational event).
    WebhookConfigRecovered(ConfigHealthHook),
    /// hookline `DELIVERY_FAILED` (an operational event).
    DeliveryFailed(DeliveryFailedHook),
}

impl Hook {
    /// The hook's id, whatever its type.
    pub fn hook_id(&self) -> &str {
        match self {
            Hook::KakaoTemplateStatusUpdate(h) => &h.hook_id,
            Hook::KakaoMessageResultUpdate(h) => &h.hook_id,
            Hook::SmsUnsubscribe(h) => &h.hook_id,
            Hook::SmsMessageResultUpdate(h) => &h.hook_id,
            Hook::SmsConversionBlock(h) => &h.hook_id,
            Hook::SmsInternationalDeliveryReceipt(h) => &h.hook_id,
            Hook::EmailUnsubscribe(h) => &h.hook_id,
            Hook::EmailMessageResultUpdate(h) => &h.hook_id,
            Hook::WebhookConfigFailing(h)
            | Hook::WebhookConfigDisabled(h)
            | Hook::WebhookConfigRecovered(h) => &h.hook_id,
            Hook::DeliveryFailed(h) => &h.hook_id,
        }
    }
}

/// KakaoTalk template status (`status` of [`KakaoTemplateStatusHook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KakaoTemplateStatus {
    /// `TSC01`: requested.
    #[serde(rename = "TSC01")]
    Requested,
    /// `TSC02`: being reviewed.
    #[serde(rename = "TSC02")]
    Reviewing,
    /// `TSC03`: approved.
    #[serde(rename = "TSC03")]
    Approved,
    /// `TSC04`: rejected.
    #[serde(rename = "TSC04")]
    Rejected,
}

/// Status of a template review comment (`comments[].status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KakaoCommentStatus {
    /// `INQ`: inquired.
    #[serde(rename = "INQ")]
    Inquired,
    /// `APR`: approved.
    #[serde(rename = "APR")]
    Approved,
    /// `REJ`: rejected.
    #[serde(rename = "REJ")]
    Rejected,
    /// `REP`: replied.
    #[serde(rename = "REP")]
    Replied,
    /// `REQ`: requested (only in the Korean edition of the guide).
    #[serde(rename = "REQ")]
    Requested,
}

/// A comment id: the documents disagree on its type, so both are accepted and kept as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommentId {
    /// A JSON integer id.
    Integer(i64),
    /// A JSON string id.
    String(String),
}

/// KakaoTalk Bizmessage `TEMPLATE_STATUS_UPDATE` hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KakaoTemplateStatusHook {
    /// Id of this event occurrence.
    pub hook_id: String,
    /// Sender key.
    pub sender_key: String,
    /// Template code.
    pub template_code: String,
    /// Original template code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kakao_template_code: Option<String>,
    /// Template status.
    pub status: KakaoTemplateStatus,
    /// Review results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments: Option<Vec<KakaoTemplateComment>>,
    /// Modification date, `yyyy-MM-dd HH:mm:ss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_date: Option<String>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One review comment of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KakaoTemplateComment {
    /// Inquiry id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<CommentId>,
    /// Inquiry content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Registration date, `yyyy-MM-dd HH:mm:ss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Attached files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Vec<KakaoTemplateAttachment>>,
    /// Comment status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<KakaoCommentStatus>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A file attached to a review comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KakaoTemplateAttachment {
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_file_name: Option<String>,
    /// File path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_path: Option<String>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// KakaoTalk message type (`kakaoMessageType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KakaoMessageType {
    /// `ALIMTALK_NORMAL`
    AlimtalkNormal,
    /// `ALIMTALK_AUTH`
    AlimtalkAuth,
    /// `ALIMTALK_MASS`
    AlimtalkMass,
    /// `FRIENDTALK_NORMAL`
    FriendtalkNormal,
    /// `FRIENDTALK_MASS`
    FriendtalkMass,
    /// `BRAND_MESSAGE_NORMAL`
    BrandMessageNormal,
    /// `BRAND_MESSAGE_MASS`
    BrandMessageMass,
}

/// `_links` of a message result hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Links {
    /// The `self` link.
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<Link>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The URL (of the platform's message query API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// KakaoTalk Bizmessage `MESSAGE_RESULT_UPDATE` hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KakaoMessageResultHook {
    /// Id of this event occurrence.
    pub hook_id: String,
    /// Message type.
    pub kakao_message_type: KakaoMessageType,
    /// Request id.
    pub request_id: String,
    /// Recipient sequence number.
    pub recipient_seq: i64,
    /// Date and time of the request (format not fixed by the documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_date: Option<String>,
    /// Date and time of creation (format not fixed by the documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_date: Option<String>,
    /// Date (`yyyy-MM-dd`) or date-time of receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_date: Option<String>,
    /// Recipient number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_no: Option<String>,
    /// Result code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_code: Option<String>,
    /// Sender grouping key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_grouping_key: Option<String>,
    /// Recipient grouping key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_grouping_key: Option<String>,
    /// Whether the recipient added the channel (meaningful for `BRAND_MESSAGE_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_added_channel: Option<bool>,
    /// Link to the message query API.
    #[serde(rename = "_links", default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Links>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// SMS `UNSUBSCRIBE` hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsUnsubscribeHook {
    /// Id of this event occurrence.
    pub hook_id: String,
    /// The unsubscribed mobile number.
    pub recipient_no: String,
    /// The 080 number of the unsubscription service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe_no: Option<String>,
    /// Enterprise name registered with the unsubscription service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_name: Option<String>,
    /// When, `yyyy-MM-dd'T'HH:mm:ss.SSSXXX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// SMS message status (`messageStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SmsMessageStatus {
    /// `COMPLETED`
    Completed,
    /// `FAILED`
    Failed,
    /// `CANCEL`
    Cancel,
    /// `DUPLICATED`
    Duplicated,
    /// `FAILED_AD`: failed because of ad-message restrictions.
    FailedAd,
}

/// SMS `MESSAGE_RESULT_UPDATE` hook.
///
/// Also reads the original platform's misspellings `recipientGropuingKey` and `_link` (hookline
/// itself always delivers the correct names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsMessageResultHook {
    /// Id of this event occurrence.
    pub hook_id: String,
    /// Send type, e.g. `NORMAL_SMS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_type: Option<String>,
    /// Request id.
    pub request_id: String,
    /// Recipient sequence number.
    pub recipient_seq: i64,
    /// Sending time, `yyyy-MM-dd'T'HH:mm:ss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_date: Option<String>,
    /// Receiving time, `yyyy-MM-dd'T'HH:mm:ss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_date: Option<String>,
    /// Sender number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_no: Option<String>,
    /// Recipient number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_no: Option<String>,
    /// Message status.
    pub message_status: SmsMessageStatus,
    /// Recipient grouping key.
    #[serde(
        default,
        alias = "recipientGropuingKey",
        skip_serializing_if = "Option::is_none"
    )]
    pub recipient_grouping_key: Option<String>,
    /// Sender grouping key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_grouping_key: Option<String>,
    /// Result code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_code: Option<String>,
    /// Number of messages sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_count: Option<i64>,
    /// Link to the message query API.
    #[serde(
        rename = "_links",
        alias = "_link",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub links: Option<Links>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// SMS `CONVERSION_BLOCK` hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsConversionBlockHook {
    /// Id of this event occurrence.
    pub hook_id: String,
    /// The blocked country's calling code, e.g. `1`.
    pub country_code: String,
    /// When, `yyyy-MM-dd'T'HH:mm:ss.SSSXXX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_date_time: Option<String>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// International delivery receipt status (`dlrStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DlrStatus {
    /// `ACCEPTED`
    Accepted,
    /// `DELIVERED`
    Delivered,
    /// `BUFFERED`
    Buffered,
    /// `EXPIRED`
    Expired,
    /// `FAILED`
    Failed,
    /// `REJECTED`
    Rejected,
    /// `UNKNOWN`: the status the carrier reported as unknown (a real wire value, not a catch-all).
    Unknown,
}

/// SMS `INTERNATIONAL_DELIVERY_RECEIPT` hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsInternationalDeliveryReceiptHook {
    /// Id of this event occurrence.
    pub hook_id: String,
    /// Request id.
    pub request_id: String,
    /// Recipient sequence number.
    pub recipient_seq: i64,
    /// Delivery receipt status.
    pub dlr_status: DlrStatus,
    /// Network code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_code: Option<String>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Email `UNSUBSCRIBE` hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailUnsubscribeHook {
    /// Id of this event occurrence.
    pub hook_id: String,
    /// The address that asked to unsubscribe.
    pub receive_mail_addr: String,
    /// When, `yyyy-MM-dd'T'HH:mm:ss.SSSXXX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Email message type (`messageType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EmailMessageType {
    /// `NORMAL_MAIL`
    NormalMail,
    /// `NORMAL_MAIL_AD`
    NormalMailAd,
    /// `NORMAL_MAIL_AUTH`
    NormalMailAuth,
    /// `MASS_MAIL`
    MassMail,
    /// `MASS_MAIL_AD`
    MassMailAd,
    /// `MASS_MAIL_AUTH`
    MassMailAuth,
    /// `TAG_MAIL`
    TagMail,
    /// `TAG_MAIL_AD`
    TagMailAd,
    /// `TAG_MAIL_AUTH`
    TagMailAuth,
}

/// Email sending status (`mailStatusCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EmailMailStatus {
    /// `SST0`: ready.
    #[serde(rename = "SST0")]
    Ready,
    /// `SST1`: sending.
    #[serde(rename = "SST1")]
    Sending,
    /// `SST2`: sent.
    #[serde(rename = "SST2")]
    Sent,
    /// `SST3`: failed.
    #[serde(rename = "SST3")]
    Failed,
    /// `SST5`: the recipient unsubscribed.
    #[serde(rename = "SST5")]
    Unsubscribed,
    /// `SST7`: unauthorised.
    #[serde(rename = "SST7")]
    Unauthorised,
    /// `SST8`: whitelist failure.
    #[serde(rename = "SST8")]
    WhitelistFailure,
}

/// A mail sequence number: the guide sends a string (`"0"`), an integer is accepted too; kept as
/// received.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MailSeq {
    /// A JSON integer.
    Integer(i64),
    /// A JSON string.
    String(String),
}

/// Email `MESSAGE_RESULT_UPDATE` hook.
///
/// Also reads the guide's example spelling `senderGroupKey` (hookline delivers
/// `senderGroupingKey`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailMessageResultHook {
    /// Id of this event occurrence.
    pub hook_id: String,
    /// Message type.
    pub message_type: EmailMessageType,
    /// Request id.
    pub request_id: String,
    /// The mail's sequence number within its request.
    pub mail_seq: MailSeq,
    /// Sender name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// Sender address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_address: Option<String>,
    /// Recipient name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_name: Option<String>,
    /// Recipient address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_mail_addr: Option<String>,
    /// Sending status.
    pub mail_status_code: EmailMailStatus,
    /// Request date-time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_date: Option<String>,
    /// Creation date-time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_date: Option<String>,
    /// Result date-time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_date: Option<String>,
    /// Delivery status notification code, e.g. `2.5.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn_code: Option<String>,
    /// Delivery status notification message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn_message: Option<String>,
    /// Sender grouping key.
    #[serde(
        default,
        alias = "senderGroupKey",
        skip_serializing_if = "Option::is_none"
    )]
    pub sender_grouping_key: Option<String>,
    /// Link to the mail query API.
    #[serde(rename = "_links", default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Links>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A config's health as an operational event reports it (`state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConfigHealthState {
    /// `HEALTHY`: attempts succeed (or the config was enabled again).
    Healthy,
    /// `FAILING`: attempts keep failing; hookline still sends.
    Failing,
    /// `DISABLED`: hookline stopped sending; hooks accepted meanwhile are held for the config.
    Disabled,
}

/// hookline `WEBHOOK_CONFIG_FAILING`, `WEBHOOK_CONFIG_DISABLED` and `WEBHOOK_CONFIG_RECOVERED`: one
/// of the app key's webhook configs changed health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigHealthHook {
    /// Id of this event occurrence.
    pub hook_id: String,
    /// When the health changed (RFC 3339, UTC).
    pub occurred_at: String,
    /// The config whose health changed.
    pub webhook_config_id: String,
    /// That config's product.
    pub product_name: String,
    /// That config's URL.
    pub url: String,
    /// The health it changed to.
    pub state: ConfigHealthState,
    /// Failed attempts in a row when it changed.
    pub consecutive_failures: u64,
    /// The last failed attempt's HTTP status (`HTTP 503`) or error kind (`TIMEOUT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Why it was disabled (`WEBHOOK_CONFIG_DISABLED` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How a delivery ended unsent (`status` of [`DeliveryFailedHook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryEndStatus {
    /// `FAILED`: its retries ran out.
    Failed,
    /// `EXPIRED`: its `deliveryDeadline` passed.
    Expired,
}

/// hookline `DELIVERY_FAILED`: a delivery to one of the app key's configs ended unsent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryFailedHook {
    /// Id of this event occurrence.
    pub hook_id: String,
    /// When the delivery ended (RFC 3339, UTC).
    pub occurred_at: String,
    /// The config the delivery was for.
    pub webhook_config_id: String,
    /// The delivery's id (its envelope's `hooksId`): redeliver it by this id.
    pub hooks_id: String,
    /// How it ended.
    pub status: DeliveryEndStatus,
    /// The hookIds it carried.
    pub hook_ids: Vec<String>,
    /// Attempts made.
    pub attempts: u64,
    /// The last attempt's HTTP status (`HTTP 500`) or error kind (`CONNECT`); none without an
    /// attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Fields this crate does not know, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{Event, Product, catalogue};
    use crate::schema::Schema;

    fn wire_names<T: Serialize>(values: &[T]) -> Vec<String> {
        values
            .iter()
            .map(|v| match serde_json::to_value(v) {
                Ok(Value::String(s)) => s,
                other => panic!("not a string: {other:?}"),
            })
            .collect()
    }

    /// The schema at `path` (property names, `[]` for an array's items) of an event's hook.
    fn schema_at(product: Product, event: Event, path: &[&str]) -> &'static Schema {
        let mut schema = &catalogue().event(product, event).unwrap().schema;
        for step in path {
            schema = if *step == "[]" {
                schema.items.as_deref().unwrap()
            } else {
                &schema
                    .properties
                    .iter()
                    .find(|p| p.name == *step)
                    .unwrap_or_else(|| panic!("{product} {event}: no {step}"))
                    .schema
            };
        }
        schema
    }

    fn enum_of(product: Product, event: Event, path: &[&str]) -> Vec<String> {
        schema_at(product, event, path).str_values.clone().unwrap()
    }

    #[test]
    fn typed_enums_match_the_catalogue() {
        use Event as E;
        use KakaoMessageType as M;
        use Product as P;
        assert_eq!(
            wire_names(&[
                M::AlimtalkNormal,
                M::AlimtalkAuth,
                M::AlimtalkMass,
                M::FriendtalkNormal,
                M::FriendtalkMass,
                M::BrandMessageNormal,
                M::BrandMessageMass
            ]),
            enum_of(
                P::KakaoTalkBizmessage,
                E::MessageResultUpdate,
                &["kakaoMessageType"]
            )
        );
        use SmsMessageStatus as S;
        assert_eq!(
            wire_names(&[
                S::Completed,
                S::Failed,
                S::Cancel,
                S::Duplicated,
                S::FailedAd
            ]),
            enum_of(P::Sms, E::MessageResultUpdate, &["messageStatus"])
        );
        use DlrStatus as D;
        assert_eq!(
            wire_names(&[
                D::Accepted,
                D::Delivered,
                D::Buffered,
                D::Expired,
                D::Failed,
                D::Rejected,
                D::Unknown
            ]),
            enum_of(P::Sms, E::InternationalDeliveryReceipt, &["dlrStatus"])
        );
        use KakaoTemplateStatus as T;
        assert_eq!(
            wire_names(&[T::Requested, T::Reviewing, T::Approved, T::Rejected]),
            enum_of(P::KakaoTalkBizmessage, E::TemplateStatusUpdate, &["status"])
        );
        use KakaoCommentStatus as C;
        assert_eq!(
            wire_names(&[
                C::Inquired,
                C::Approved,
                C::Rejected,
                C::Replied,
                C::Requested
            ]),
            enum_of(
                P::KakaoTalkBizmessage,
                E::TemplateStatusUpdate,
                &["comments", "[]", "status"]
            )
        );
        use EmailMessageType as EM;
        assert_eq!(
            wire_names(&[
                EM::NormalMail,
                EM::NormalMailAd,
                EM::NormalMailAuth,
                EM::MassMail,
                EM::MassMailAd,
                EM::MassMailAuth,
                EM::TagMail,
                EM::TagMailAd,
                EM::TagMailAuth
            ]),
            enum_of(P::Email, E::MessageResultUpdate, &["messageType"])
        );
        use EmailMailStatus as ES;
        assert_eq!(
            wire_names(&[
                ES::Ready,
                ES::Sending,
                ES::Sent,
                ES::Failed,
                ES::Unsubscribed,
                ES::Unauthorised,
                ES::WhitelistFailure
            ]),
            enum_of(P::Email, E::MessageResultUpdate, &["mailStatusCode"])
        );
        // Each health event names one state; together they are the typed enum's.
        let mut states: Vec<String> = [
            E::WebhookConfigFailing,
            E::WebhookConfigDisabled,
            E::WebhookConfigRecovered,
        ]
        .into_iter()
        .flat_map(|e| enum_of(P::Hookline, e, &["state"]))
        .collect();
        states.sort();
        use ConfigHealthState as H;
        assert_eq!(wire_names(&[H::Disabled, H::Failing, H::Healthy]), states);
        assert_eq!(
            wire_names(&[DeliveryEndStatus::Failed, DeliveryEndStatus::Expired]),
            enum_of(P::Hookline, E::DeliveryFailed, &["status"])
        );
    }

    /// The built-in events that have a typed model.
    const TYPED: [(Product, Event); 12] = [
        (Product::KakaoTalkBizmessage, Event::TemplateStatusUpdate),
        (Product::KakaoTalkBizmessage, Event::MessageResultUpdate),
        (Product::Sms, Event::Unsubscribe),
        (Product::Sms, Event::MessageResultUpdate),
        (Product::Sms, Event::ConversionBlock),
        (Product::Sms, Event::InternationalDeliveryReceipt),
        (Product::Email, Event::Unsubscribe),
        (Product::Email, Event::MessageResultUpdate),
        (Product::Hookline, Event::WebhookConfigFailing),
        (Product::Hookline, Event::WebhookConfigDisabled),
        (Product::Hookline, Event::WebhookConfigRecovered),
        (Product::Hookline, Event::DeliveryFailed),
    ];

    /// Every (path, schema) of a schema's properties, nested objects and arrays' items included
    /// (`comments[].status`).
    fn field_paths<'s>(schema: &'s Schema, prefix: &str, out: &mut Vec<(String, &'s Schema)>) {
        for p in &schema.properties {
            let path = format!("{prefix}{}", p.name);
            out.push((path.clone(), &p.schema));
            field_paths(&p.schema, &format!("{path}."), out);
            if let Some(items) = &p.schema.items {
                field_paths(items, &format!("{path}[]."), out);
            }
        }
    }

    /// `hook` with the value at `path` (as `field_paths` writes it) replaced by `value`; `None`
    /// when the hook has nothing there to replace.
    fn replaced(hook: &Value, path: &str, value: Value) -> Option<Value> {
        let mut hook = hook.clone();
        let mut at = &mut hook;
        let steps: Vec<&str> = path.split('.').collect();
        for (i, step) in steps.iter().enumerate() {
            let (name, first_item) = match step.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (*step, false),
            };
            let map = at.as_object_mut()?;
            if i == steps.len() - 1 {
                map.insert(name.to_owned(), value);
                return Some(hook);
            }
            at = map.get_mut(name)?;
            if first_item {
                at = at.as_array_mut()?.first_mut()?;
            }
        }
        None
    }

    /// Every field of the catalogue is a field of the typed model: a value of the wrong type there
    /// is refused by the model (an unknown field would land in `extra` and be accepted).
    #[test]
    fn every_catalogue_field_is_in_the_typed_model() {
        for (product, event) in TYPED {
            let entry = catalogue().event(product, event).unwrap();
            let example = entry.example();
            assert!(
                crate::envelope::typed_hook(product, event, 0, example).is_ok(),
                "{product} {event}: the example must read as the typed model"
            );
            let mut paths = Vec::new();
            field_paths(&entry.schema, "", &mut paths);
            for (path, schema) in paths {
                let probe = if schema.types.has(crate::schema::Types::OBJECT) {
                    Value::String("probe".into())
                } else {
                    serde_json::json!({"probe": true})
                };
                let Some(hook) = replaced(example, &path, probe) else {
                    panic!(
                        "{product} {event}: the example has no {path}: examples show every field"
                    );
                };
                assert!(
                    crate::envelope::typed_hook(product, event, 0, &hook).is_err(),
                    "{product} {event}: the catalogue's field {path} is not in the typed model"
                );
            }
        }
    }

    /// Every field of a typed model is in the catalogue: a model with every field set (the struct
    /// literals below name every field, so a field added to a model does not compile here until
    /// it is set) serialises to fields the catalogue's schema has.
    #[test]
    fn every_typed_model_field_is_in_the_catalogue() {
        let s = || Some("x".to_owned());
        let links = || {
            Some(Links {
                self_link: Some(Link {
                    href: s(),
                    extra: Map::new(),
                }),
                extra: Map::new(),
            })
        };
        let full = [
            Hook::KakaoTemplateStatusUpdate(KakaoTemplateStatusHook {
                hook_id: "h".into(),
                sender_key: "k".into(),
                template_code: "t".into(),
                kakao_template_code: s(),
                status: KakaoTemplateStatus::Approved,
                comments: Some(vec![KakaoTemplateComment {
                    id: Some(CommentId::Integer(1)),
                    content: s(),
                    user_name: s(),
                    created_at: s(),
                    attachment: Some(vec![KakaoTemplateAttachment {
                        original_file_name: s(),
                        file_path: s(),
                        extra: Map::new(),
                    }]),
                    status: Some(KakaoCommentStatus::Approved),
                    extra: Map::new(),
                }]),
                update_date: s(),
                extra: Map::new(),
            }),
            Hook::KakaoMessageResultUpdate(KakaoMessageResultHook {
                hook_id: "h".into(),
                kakao_message_type: KakaoMessageType::AlimtalkNormal,
                request_id: "r".into(),
                recipient_seq: 1,
                request_date: s(),
                create_date: s(),
                receive_date: s(),
                recipient_no: s(),
                result_code: s(),
                sender_grouping_key: s(),
                recipient_grouping_key: s(),
                is_added_channel: Some(true),
                links: links(),
                extra: Map::new(),
            }),
            Hook::SmsUnsubscribe(SmsUnsubscribeHook {
                hook_id: "h".into(),
                recipient_no: "n".into(),
                unsubscribe_no: s(),
                enterprise_name: s(),
                created_date_time: s(),
                extra: Map::new(),
            }),
            Hook::SmsMessageResultUpdate(SmsMessageResultHook {
                hook_id: "h".into(),
                sender_type: s(),
                request_id: "r".into(),
                recipient_seq: 1,
                request_date: s(),
                receive_date: s(),
                send_no: s(),
                recipient_no: s(),
                message_status: SmsMessageStatus::Completed,
                recipient_grouping_key: s(),
                sender_grouping_key: s(),
                result_code: s(),
                message_count: Some(1),
                links: links(),
                extra: Map::new(),
            }),
            Hook::SmsConversionBlock(SmsConversionBlockHook {
                hook_id: "h".into(),
                country_code: "1".into(),
                blocked_date_time: s(),
                extra: Map::new(),
            }),
            Hook::SmsInternationalDeliveryReceipt(SmsInternationalDeliveryReceiptHook {
                hook_id: "h".into(),
                request_id: "r".into(),
                recipient_seq: 1,
                dlr_status: DlrStatus::Delivered,
                network_code: s(),
                error_code: s(),
                extra: Map::new(),
            }),
            Hook::EmailUnsubscribe(EmailUnsubscribeHook {
                hook_id: "h".into(),
                receive_mail_addr: "a".into(),
                created_date_time: s(),
                extra: Map::new(),
            }),
            Hook::EmailMessageResultUpdate(EmailMessageResultHook {
                hook_id: "h".into(),
                message_type: EmailMessageType::NormalMail,
                request_id: "r".into(),
                mail_seq: MailSeq::String("0".into()),
                sender_name: s(),
                sender_address: s(),
                receive_name: s(),
                receive_mail_addr: s(),
                mail_status_code: EmailMailStatus::Sent,
                request_date: s(),
                create_date: s(),
                result_date: s(),
                dsn_code: s(),
                dsn_message: s(),
                sender_grouping_key: s(),
                links: links(),
                extra: Map::new(),
            }),
            Hook::WebhookConfigFailing(ConfigHealthHook {
                hook_id: "h".into(),
                occurred_at: "t".into(),
                webhook_config_id: "c".into(),
                product_name: "SMS".into(),
                url: "u".into(),
                state: ConfigHealthState::Failing,
                consecutive_failures: 1,
                last_error: s(),
                reason: None,
                extra: Map::new(),
            }),
            Hook::WebhookConfigDisabled(ConfigHealthHook {
                hook_id: "h".into(),
                occurred_at: "t".into(),
                webhook_config_id: "c".into(),
                product_name: "SMS".into(),
                url: "u".into(),
                state: ConfigHealthState::Disabled,
                consecutive_failures: 1,
                last_error: s(),
                reason: s(),
                extra: Map::new(),
            }),
            Hook::WebhookConfigRecovered(ConfigHealthHook {
                hook_id: "h".into(),
                occurred_at: "t".into(),
                webhook_config_id: "c".into(),
                product_name: "SMS".into(),
                url: "u".into(),
                state: ConfigHealthState::Healthy,
                consecutive_failures: 1,
                last_error: s(),
                reason: None,
                extra: Map::new(),
            }),
            Hook::DeliveryFailed(DeliveryFailedHook {
                hook_id: "h".into(),
                occurred_at: "t".into(),
                webhook_config_id: "c".into(),
                hooks_id: "d".into(),
                status: DeliveryEndStatus::Expired,
                hook_ids: vec!["h".into()],
                attempts: 2,
                last_error: s(),
                extra: Map::new(),
            }),
        ];
        for ((product, event), hook) in TYPED.into_iter().zip(full) {
            let entry = catalogue().event(product, event).unwrap();
            let mut known = Vec::new();
            field_paths(&entry.schema, "", &mut known);
            let known: Vec<String> = known.into_iter().map(|(p, _)| p).collect();
            let mut fields = Vec::new();
            model_paths(&serde_json::to_value(&hook).unwrap(), "", &mut fields);
            for field in fields.into_iter().filter(|f| f != "hookId") {
                assert!(
                    known.contains(&field),
                    "{product} {event}: the typed model's field {field} is not in the catalogue"
                );
            }
        }
    }

    fn model_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Object(map) = v {
            for (key, value) in map {
                let path = format!("{prefix}{key}");
                out.push(path.clone());
                match value {
                    Value::Array(items) => {
                        if let Some(first) = items.first() {
                            model_paths(first, &format!("{path}[]."), out);
                        }
                    }
                    other => model_paths(other, &format!("{path}."), out),
                }
            }
        }
    }
}
