//! The event catalogue: which products exist, which events each product emits, and the static field
//! table every hook of an event is validated against (see docs/wire-format.md, "Products and events").

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A product (service) of the messaging platform that emits webhook events.
///
/// Serialised as its wire name (`"SMS"`, `"KakaoTalk Bizmessage"`); deserialised ASCII
/// case-insensitively, like [`Product::parse`], because producers send `"Sms"` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Product {
    /// The SMS service (`"SMS"`).
    Sms,
    /// The KakaoTalk Bizmessage service (`"KakaoTalk Bizmessage"`).
    KakaoTalkBizmessage,
}

impl Product {
    /// Every product, in a stable order.
    pub const ALL: [Product; 2] = [Product::Sms, Product::KakaoTalkBizmessage];

    /// The canonical wire name: `"SMS"` or `"KakaoTalk Bizmessage"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Sms => "SMS",
            Product::KakaoTalkBizmessage => "KakaoTalk Bizmessage",
        }
    }

    /// Parses a product name in any ASCII letter case (`"Sms"`, `"kakaotalk bizmessage"`).
    ///
    /// Surrounding whitespace is not trimmed: `" SMS"` is not a product name.
    pub fn parse(s: &str) -> Option<Product> {
        Product::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// The events this product emits, in the order its document lists them.
    pub fn events(self) -> &'static [Event] {
        match self {
            Product::Sms => &[
                Event::Unsubscribe,
                Event::MessageResultUpdate,
                Event::ConversionBlock,
                Event::InternationalDeliveryReceipt,
            ],
            Product::KakaoTalkBizmessage => {
                &[Event::TemplateStatusUpdate, Event::MessageResultUpdate]
            }
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Product {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Product {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Borrowing would fail for strings with escapes, so take an owned-or-borrowed Cow.
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Product::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown product {s:?} (expected SMS or KakaoTalk Bizmessage)"
            ))
        })
    }
}

/// A webhook event name. Which products emit it: [`Product::events`].
///
/// Serialised and deserialised as its exact wire name, e.g. `"MESSAGE_RESULT_UPDATE"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    /// KakaoTalk Bizmessage: a template's status or inquiry changed.
    TemplateStatusUpdate,
    /// SMS and KakaoTalk Bizmessage: a message's sending result changed.
    MessageResultUpdate,
    /// SMS: a recipient number was registered for ad-message unsubscription.
    Unsubscribe,
    /// SMS: a country was blocked because of its conversion rate.
    ConversionBlock,
    /// SMS: an international delivery receipt (DLR) arrived.
    InternationalDeliveryReceipt,
}

impl Event {
    /// Every event, in a stable order.
    pub const ALL: [Event; 5] = [
        Event::TemplateStatusUpdate,
        Event::MessageResultUpdate,
        Event::Unsubscribe,
        Event::ConversionBlock,
        Event::InternationalDeliveryReceipt,
    ];

    /// The wire name, e.g. `"TEMPLATE_STATUS_UPDATE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::TemplateStatusUpdate => "TEMPLATE_STATUS_UPDATE",
            Event::MessageResultUpdate => "MESSAGE_RESULT_UPDATE",
            Event::Unsubscribe => "UNSUBSCRIBE",
            Event::ConversionBlock => "CONVERSION_BLOCK",
            Event::InternationalDeliveryReceipt => "INTERNATIONAL_DELIVERY_RECEIPT",
        }
    }

    /// Parses an exact wire name (event names are case-sensitive, unlike product names).
    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Whether product `p` emits this event.
    pub fn is_valid_for(self, p: Product) -> bool {
        p.events().contains(&self)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Field tables (crate-private: validation walks them, samples and docs follow them).
// ---------------------------------------------------------------------------------------------

/// A date format that ingest checks (the documents' Java-style patterns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateFormat {
    /// `yyyy-MM-dd HH:mm:ss`
    SpaceSeconds,
    /// `yyyy-MM-dd'T'HH:mm:ss`
    IsoSeconds,
    /// `yyyy-MM-dd'T'HH:mm:ss.SSSXXX` (XXX: `Z` or `+hh:mm` / `-hh:mm`)
    IsoMillisOffset,
    /// `yyyy-MM-dd`, or that date followed by a time (see `dates::is_date_or_date_time`).
    DateOrDateTime,
}

impl DateFormat {
    /// The pattern as a person reads it in an error message.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            DateFormat::SpaceSeconds => "yyyy-MM-dd HH:mm:ss",
            DateFormat::IsoSeconds => "yyyy-MM-dd'T'HH:mm:ss",
            DateFormat::IsoMillisOffset => "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
            DateFormat::DateOrDateTime => {
                "yyyy-MM-dd or a date-time such as yyyy-MM-dd'T'HH:mm:ss or yyyy-MM-dd HH:mm:ss"
            }
        }
    }
}

/// The JSON type a catalogue field must have.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldType {
    /// A JSON string.
    String,
    /// A JSON integer (not `1.0`, not `"1"`).
    Integer,
    /// `true`, `false` or `null`.
    BoolOrNull,
    /// A JSON string or a JSON integer (`comments[].id`: the documents disagree).
    StringOrInteger,
    /// A JSON object whose known fields follow the given table.
    Object(&'static [Field]),
    /// A JSON array of objects, each following the given table.
    ArrayOfObjects(&'static [Field]),
}

/// One row of a field table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
    /// Accepted values; empty means any value of the type.
    pub values: &'static [&'static str],
    pub date: Option<DateFormat>,
    /// Other spellings accepted on ingest and renamed to `name` in the stored JSON.
    pub aliases: &'static [&'static str],
    /// Most characters of a string value (`None`: only the hook's size limit applies).
    pub max_chars: Option<usize>,
}

/// Most characters of a string field that holds an id, a code, a number, a name, a date or an
/// enumerated value (every catalogue string field unless said otherwise).
pub const MAX_FIELD_CHARS: usize = 1024;
/// Most characters of a string field that holds a link or a file path (`_links.self.href`,
/// `comments[].attachment[].filePath`).
pub const MAX_LINK_CHARS: usize = 4096;

impl Field {
    const fn new(name: &'static str, ty: FieldType) -> Field {
        Field {
            name,
            ty,
            required: false,
            values: &[],
            date: None,
            aliases: &[],
            max_chars: match ty {
                FieldType::String | FieldType::StringOrInteger => Some(MAX_FIELD_CHARS),
                _ => None,
            },
        }
    }
    const fn required(mut self) -> Field {
        self.required = true;
        self
    }
    const fn one_of(mut self, values: &'static [&'static str]) -> Field {
        self.values = values;
        self
    }
    const fn date(mut self, f: DateFormat) -> Field {
        self.date = Some(f);
        self
    }
    const fn alias(mut self, aliases: &'static [&'static str]) -> Field {
        self.aliases = aliases;
        self
    }
    /// A link or a path: [`MAX_LINK_CHARS`].
    const fn link(mut self) -> Field {
        self.max_chars = Some(MAX_LINK_CHARS);
        self
    }
    /// Free text: only the hook's size limit applies.
    const fn free_text(mut self) -> Field {
        self.max_chars = None;
        self
    }
}

const fn s(name: &'static str) -> Field {
    Field::new(name, FieldType::String)
}
const fn int(name: &'static str) -> Field {
    Field::new(name, FieldType::Integer)
}

/// Enumerated values, shared with the typed models' tests.
pub(crate) const TEMPLATE_STATUSES: &[&str] = &["TSC01", "TSC02", "TSC03", "TSC04"];
pub(crate) const COMMENT_STATUSES: &[&str] = &["INQ", "APR", "REJ", "REP", "REQ"];
pub(crate) const KAKAO_MESSAGE_TYPES: &[&str] = &[
    "ALIMTALK_NORMAL",
    "ALIMTALK_AUTH",
    "ALIMTALK_MASS",
    "FRIENDTALK_NORMAL",
    "FRIENDTALK_MASS",
    "BRAND_MESSAGE_NORMAL",
    "BRAND_MESSAGE_MASS",
];
pub(crate) const SMS_MESSAGE_STATUSES: &[&str] =
    &["COMPLETED", "FAILED", "CANCEL", "DUPLICATED", "FAILED_AD"];
pub(crate) const DLR_STATUSES: &[&str] = &[
    "ACCEPTED",
    "DELIVERED",
    "BUFFERED",
    "EXPIRED",
    "FAILED",
    "REJECTED",
    "UNKNOWN",
];

const ATTACHMENT: &[Field] = &[s("originalFileName"), s("filePath").link()];

const COMMENT: &[Field] = &[
    Field::new("id", FieldType::StringOrInteger),
    s("content").free_text(),
    s("userName"),
    s("createdAt").date(DateFormat::SpaceSeconds),
    Field::new("attachment", FieldType::ArrayOfObjects(ATTACHMENT)),
    s("status").one_of(COMMENT_STATUSES),
];

const LINK_SELF: &[Field] = &[s("href").link()];
const LINKS: &[Field] = &[Field::new("self", FieldType::Object(LINK_SELF))];

const KAKAO_TEMPLATE_STATUS_UPDATE: &[Field] = &[
    s("senderKey").required(),
    s("templateCode").required(),
    s("kakaoTemplateCode"),
    s("status").required().one_of(TEMPLATE_STATUSES),
    Field::new("comments", FieldType::ArrayOfObjects(COMMENT)),
    s("updateDate").date(DateFormat::SpaceSeconds),
];

const KAKAO_MESSAGE_RESULT_UPDATE: &[Field] = &[
    s("kakaoMessageType").required().one_of(KAKAO_MESSAGE_TYPES),
    s("requestId").required(),
    int("recipientSeq").required(),
    // The documents give no format for these two (their examples say "String"), so any string.
    s("requestDate"),
    s("createDate"),
    s("receiveDate").date(DateFormat::DateOrDateTime),
    s("recipientNo"),
    s("resultCode"),
    s("senderGroupingKey"),
    s("recipientGroupingKey"),
    Field::new("isAddedChannel", FieldType::BoolOrNull),
    Field::new("_links", FieldType::Object(LINKS)),
];

const SMS_UNSUBSCRIBE: &[Field] = &[
    s("recipientNo").required(),
    s("unsubscribeNo"),
    s("enterpriseName"),
    s("createdDateTime").date(DateFormat::IsoMillisOffset),
];

const SMS_MESSAGE_RESULT_UPDATE: &[Field] = &[
    s("senderType"),
    s("requestId").required(),
    int("recipientSeq").required(),
    s("requestDate").date(DateFormat::IsoSeconds),
    s("receiveDate").date(DateFormat::IsoSeconds),
    s("sendNo"),
    s("recipientNo"),
    s("messageStatus").required().one_of(SMS_MESSAGE_STATUSES),
    s("recipientGroupingKey").alias(&["recipientGropuingKey"]),
    s("senderGroupingKey"),
    s("resultCode"),
    int("messageCount"),
    Field::new("_links", FieldType::Object(LINKS)).alias(&["_link"]),
];

const SMS_CONVERSION_BLOCK: &[Field] = &[
    s("countryCode").required(),
    s("blockedDateTime").date(DateFormat::IsoMillisOffset),
];

const SMS_INTERNATIONAL_DELIVERY_RECEIPT: &[Field] = &[
    s("requestId").required(),
    int("recipientSeq").required(),
    s("dlrStatus").required().one_of(DLR_STATUSES),
    s("networkCode"),
    s("errorCode"),
];

/// The field table of `event` as emitted by `product` (without `hookId`, which validation treats
/// on its own), or `None` when the product does not emit that event.
pub(crate) fn table(product: Product, event: Event) -> Option<&'static [Field]> {
    match (product, event) {
        (Product::KakaoTalkBizmessage, Event::TemplateStatusUpdate) => {
            Some(KAKAO_TEMPLATE_STATUS_UPDATE)
        }
        (Product::KakaoTalkBizmessage, Event::MessageResultUpdate) => {
            Some(KAKAO_MESSAGE_RESULT_UPDATE)
        }
        (Product::Sms, Event::Unsubscribe) => Some(SMS_UNSUBSCRIBE),
        (Product::Sms, Event::MessageResultUpdate) => Some(SMS_MESSAGE_RESULT_UPDATE),
        (Product::Sms, Event::ConversionBlock) => Some(SMS_CONVERSION_BLOCK),
        (Product::Sms, Event::InternationalDeliveryReceipt) => {
            Some(SMS_INTERNATIONAL_DELIVERY_RECEIPT)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_product_event_pair_has_a_table_exactly_when_valid() {
        for p in Product::ALL {
            for e in Event::ALL {
                assert_eq!(table(p, e).is_some(), e.is_valid_for(p), "{p} {e}");
            }
        }
    }

    #[test]
    fn enum_tables_match_wire_format() {
        assert_eq!(SMS_MESSAGE_STATUSES.len(), 5);
        assert_eq!(KAKAO_MESSAGE_TYPES.len(), 7);
        assert_eq!(DLR_STATUSES.len(), 7);
        assert!(COMMENT_STATUSES.contains(&"REQ"));
    }
}
