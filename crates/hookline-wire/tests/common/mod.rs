//! Shared test helpers: an independent, per-event description of the catalogue (written from
//! docs/wire-format.md, not from the crate's tables, so the two check each other) and path helpers.
#![allow(dead_code)]

use hookline_wire::{
    Event, IngestLimits, Product, ValidatedBatch, ValidationError, ValidationErrorKind,
    validate_ingest,
};
use serde_json::{Value, json};

/// What docs/wire-format.md says about one event's hook.
pub struct EventSpec {
    pub product: Product,
    pub event: Event,
    /// A valid hook with every catalogue field present.
    pub full: Value,
    pub required: &'static [&'static str],
    /// (path inside the hook, accepted values)
    pub enums: &'static [(&'static str, &'static [&'static str])],
    pub integers: &'static [&'static str],
    pub strings: &'static [&'static str],
    /// (path, good values, bad values)
    pub dates: &'static [(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    )],
    pub objects: &'static [&'static str],
    pub arrays: &'static [&'static str],
}

const SPACE_GOOD: &[&str] = &["2022-05-01 00:00:00", "2024-02-29 23:59:59"];
const SPACE_BAD: &[&str] = &[
    "2022-05-01T00:00:00",
    "2022-05-01",
    "2022-05-01 00:00",
    "2022-02-30 00:00:00",
    "01/05/2022 00:00:00",
    "String",
];
const ISO_GOOD: &[&str] = &["2024-04-29T20:58:02", "2024-12-31T00:00:00"];
const ISO_BAD: &[&str] = &[
    "2024-04-29 20:58:02",
    "2024-04-29T20:58:02Z",
    "2024-04-29T20:58:02.000+09:00",
    "2024-04-29T25:58:02",
    "2024-04-29",
    "",
];
const MILLIS_GOOD: &[&str] = &[
    "2020-09-09T11:25:10.000+09:00",
    "2024-05-28T09:00:00.000Z",
    "2024-05-28T09:00:00.123-04:00",
];
const MILLIS_BAD: &[&str] = &[
    "2020-09-09 11:25",
    "2020-09-09T11:25:10+09:00",
    "2020-09-09T11:25:10.000",
    "2020-09-09T11:25:10.000+0900",
    "2020-09-09T11:25:10.0+09:00",
    "2020-13-09T11:25:10.000+09:00",
];
const ANY_DATE_GOOD: &[&str] = &[
    "2023-06-01",
    "2023-06-01 12:34:56",
    "2023-06-01T12:34:56",
    "2023-06-01T12:34:56.789+09:00",
    "2023-06-01T12:34:56Z",
];
const ANY_DATE_BAD: &[&str] = &[
    "2023-6-1",
    "2023-06-32",
    "06/01/2023",
    "2023-06-01T12",
    "String",
];

pub fn specs() -> Vec<EventSpec> {
    vec![
        EventSpec {
            product: Product::KakaoTalkBizmessage,
            event: Event::TemplateStatusUpdate,
            full: json!({
                "senderKey": "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
                "templateCode": "TPL_000123",
                "kakaoTemplateCode": "TPL_000123",
                "status": "TSC03",
                "comments": [
                    {
                        "id": 1,
                        "content": "Approved.",
                        "userName": "reviewer",
                        "createdAt": "2022-05-01 00:00:00",
                        "attachment": [{"originalFileName": "a.png", "filePath": "/files/a.png"}],
                        "status": "APR"
                    },
                    {
                        "id": "c-2",
                        "content": "Thanks",
                        "userName": "me",
                        "createdAt": "2022-05-02 10:00:00",
                        "attachment": [],
                        "status": "REP"
                    }
                ],
                "updateDate": "2022-05-01 00:00:00",
                "hookId": "tpl-hook-1"
            }),
            required: &["senderKey", "templateCode", "status"],
            enums: &[
                ("status", &["TSC01", "TSC02", "TSC03", "TSC04"]),
                ("comments[1].status", &["INQ", "APR", "REJ", "REP", "REQ"]),
            ],
            integers: &[],
            strings: &[
                "senderKey",
                "templateCode",
                "kakaoTemplateCode",
                "status",
                "updateDate",
                "comments[0].content",
                "comments[0].userName",
                "comments[0].createdAt",
                "comments[0].status",
                "comments[0].attachment[0].originalFileName",
                "comments[0].attachment[0].filePath",
            ],
            dates: &[
                ("updateDate", SPACE_GOOD, SPACE_BAD),
                ("comments[1].createdAt", SPACE_GOOD, SPACE_BAD),
            ],
            objects: &["comments[0]", "comments[0].attachment[0]"],
            arrays: &["comments", "comments[0].attachment"],
        },
        EventSpec {
            product: Product::KakaoTalkBizmessage,
            event: Event::MessageResultUpdate,
            full: json!({
                "kakaoMessageType": "ALIMTALK_NORMAL",
                "requestId": "20230601120000aBcDeFgHiJ0",
                "recipientSeq": 1,
                "requestDate": "2023-06-01 12:00:00",
                "createDate": "2023-06-01 12:00:00",
                "receiveDate": "2023-06-01",
                "recipientNo": "01012341234",
                "resultCode": "1000",
                "senderGroupingKey": "SenderGroupingKey",
                "recipientGroupingKey": "RecipientGroupingKey",
                "isAddedChannel": true,
                "_links": {"self": {"href": "https://api-alimtalk.cloud.toast.com/alimtalk/v2.3/appkeys/k/messages/20230601120000aBcDeFgHiJ0/1"}},
                "hookId": "20230601120001ZyXwVuTsRq0"
            }),
            required: &["kakaoMessageType", "requestId", "recipientSeq"],
            enums: &[(
                "kakaoMessageType",
                &[
                    "ALIMTALK_NORMAL",
                    "ALIMTALK_AUTH",
                    "ALIMTALK_MASS",
                    "FRIENDTALK_NORMAL",
                    "FRIENDTALK_MASS",
                    "BRAND_MESSAGE_NORMAL",
                    "BRAND_MESSAGE_MASS",
                ],
            )],
            integers: &["recipientSeq"],
            strings: &[
                "kakaoMessageType",
                "requestId",
                "requestDate",
                "createDate",
                "receiveDate",
                "recipientNo",
                "resultCode",
                "senderGroupingKey",
                "recipientGroupingKey",
                "_links.self.href",
            ],
            dates: &[("receiveDate", ANY_DATE_GOOD, ANY_DATE_BAD)],
            objects: &["_links", "_links.self"],
            arrays: &[],
        },
        EventSpec {
            product: Product::Sms,
            event: Event::Unsubscribe,
            full: json!({
                "hookId": "202007271010101010sadasdavas",
                "recipientNo": "01012341234",
                "unsubscribeNo": "08012341234",
                "enterpriseName": "NHN Cloud",
                "createdDateTime": "2020-09-09T11:25:10.000+09:00"
            }),
            required: &["recipientNo"],
            enums: &[],
            integers: &[],
            strings: &[
                "recipientNo",
                "unsubscribeNo",
                "enterpriseName",
                "createdDateTime",
            ],
            dates: &[("createdDateTime", MILLIS_GOOD, MILLIS_BAD)],
            objects: &[],
            arrays: &[],
        },
        EventSpec {
            product: Product::Sms,
            event: Event::MessageResultUpdate,
            full: json!({
                "hookId": "20240429205809GcSUXthVA00",
                "senderType": "NORMAL_SMS",
                "requestId": "20240429205802y0Tl7Gbz0e0",
                "recipientSeq": 1,
                "requestDate": "2024-04-29T20:58:02",
                "receiveDate": "2024-04-29T20:58:04",
                "sendNo": "15446859",
                "recipientNo": "01012341234",
                "messageStatus": "COMPLETED",
                "recipientGroupingKey": "RecipientGroupingKey",
                "senderGroupingKey": "SenderGroupingKey",
                "resultCode": "1000",
                "messageCount": 1,
                "_links": {"self": {"href": "https://api-sms.cloud.toast.com/sms/v2.4/appKeys/{appKey}/sender/sms/20240429205802y0Tl7Gbz0e0?recipientSeq=1"}}
            }),
            required: &["requestId", "recipientSeq", "messageStatus"],
            enums: &[(
                "messageStatus",
                &["COMPLETED", "FAILED", "CANCEL", "DUPLICATED", "FAILED_AD"],
            )],
            integers: &["recipientSeq", "messageCount"],
            strings: &[
                "senderType",
                "requestId",
                "requestDate",
                "receiveDate",
                "sendNo",
                "recipientNo",
                "messageStatus",
                "recipientGroupingKey",
                "senderGroupingKey",
                "resultCode",
                "_links.self.href",
            ],
            dates: &[
                ("requestDate", ISO_GOOD, ISO_BAD),
                ("receiveDate", ISO_GOOD, ISO_BAD),
            ],
            objects: &["_links", "_links.self"],
            arrays: &[],
        },
        EventSpec {
            product: Product::Sms,
            event: Event::ConversionBlock,
            full: json!({
                "hookId": "20240429205809GcSUXthVA00",
                "countryCode": "1",
                "blockedDateTime": "2024-05-28T09:00:00.000+09:00"
            }),
            required: &["countryCode"],
            enums: &[],
            integers: &[],
            strings: &["countryCode", "blockedDateTime"],
            dates: &[("blockedDateTime", MILLIS_GOOD, MILLIS_BAD)],
            objects: &[],
            arrays: &[],
        },
        EventSpec {
            product: Product::Sms,
            event: Event::InternationalDeliveryReceipt,
            full: json!({
                "hookId": "202409251600118GSDDYTwzX0",
                "requestId": "20240925160005UvxdDrJ4g20",
                "recipientSeq": 1,
                "dlrStatus": "ACCEPTED",
                "networkCode": "US-VIRTUAL-BANDWIDTH",
                "errorCode": "0"
            }),
            required: &["requestId", "recipientSeq", "dlrStatus"],
            enums: &[(
                "dlrStatus",
                &[
                    "ACCEPTED",
                    "DELIVERED",
                    "BUFFERED",
                    "EXPIRED",
                    "FAILED",
                    "REJECTED",
                    "UNKNOWN",
                ],
            )],
            integers: &["recipientSeq"],
            strings: &["requestId", "dlrStatus", "networkCode", "errorCode"],
            dates: &[],
            objects: &[],
            arrays: &[],
        },
    ]
}

/// An ingest body for `hooks`.
pub fn body(product: &str, event: &str, hooks: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"productName": product, "event": event, "hooks": hooks}))
        .expect("serialise body")
}

/// Ingests one hook of the spec's event with default limits.
pub fn ingest_one(spec: &EventSpec, hook: Value) -> Result<ValidatedBatch, ValidationError> {
    validate_ingest(
        &body(spec.product.as_str(), spec.event.as_str(), vec![hook]),
        &IngestLimits::default(),
    )
}

/// Expects `result` to fail with `kind` at `path`; returns the error for more checks.
#[track_caller]
pub fn expect_err(
    result: Result<ValidatedBatch, ValidationError>,
    kind: ValidationErrorKind,
    path: &str,
) -> ValidationError {
    match result {
        Ok(batch) => panic!("expected {kind:?} at {path}, got Ok({batch:?})"),
        Err(e) => {
            assert_eq!((e.kind, e.path.as_str()), (kind, path), "error was: {e}");
            e
        }
    }
}

/// One step of a path such as `comments[0].attachment[1].filePath`.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        out.push(Step::Key(key));
        for idx in rest.split('[') {
            if !idx.is_empty() {
                out.push(Step::Index(
                    idx.trim_end_matches(']').parse().expect("index"),
                ));
            }
        }
    }
    out
}

fn parent_mut<'v>(hook: &'v mut Value, path: &str) -> (&'v mut Value, String) {
    let steps = steps(path);
    let (last, init) = steps.split_last().expect("non-empty path");
    let mut cur = hook;
    for step in init {
        cur = match step {
            Step::Key(k) => cur.get_mut(*k).expect("key exists"),
            Step::Index(i) => cur.get_mut(*i).expect("index exists"),
        };
    }
    let last = match last {
        Step::Key(k) => (*k).to_owned(),
        Step::Index(i) => format!("#{i}"),
    };
    (cur, last)
}

/// Sets the value at an existing (or new, last-step) path.
pub fn set(hook: &mut Value, path: &str, v: Value) {
    let (parent, last) = parent_mut(hook, path);
    if let Some(i) = last.strip_prefix('#') {
        parent[i.parse::<usize>().expect("index")] = v;
    } else {
        parent.as_object_mut().expect("object").insert(last, v);
    }
}

/// Removes the key at `path` (keeping the order of the rest).
pub fn remove(hook: &mut Value, path: &str) {
    let (parent, last) = parent_mut(hook, path);
    parent
        .as_object_mut()
        .expect("object")
        .shift_remove(&last)
        .expect("key was present");
}

/// The value at `path`.
pub fn get<'v>(hook: &'v Value, path: &str) -> &'v Value {
    let mut cur = hook;
    for step in steps(path) {
        cur = match step {
            Step::Key(k) => &cur[k],
            Step::Index(i) => &cur[i],
        };
    }
    cur
}
