//! Hostile input: property tests (proptest, bounded case counts so `cargo test` stays fast) of the
//! ingest validator and the envelope parser, and the string length limits.
//!
//! Properties:
//! - `validate_ingest`, `Envelope::parse` and `Envelope::typed_hooks` never panic, whatever the
//!   bytes (random bytes, and valid bodies with random bytes flipped, inserted or removed);
//! - an accepted batch, sent again as it was stored, validates to the same hooks;
//! - every error carries a path, and the path is one of the request's (`body`, `productName`,
//!   `event`, `hooks`, `hooks[i]...`);
//! - an envelope written by `write_envelope` (any ids, even with control characters) parses back
//!   to the same fields and hooks, and its hooks are typed.
//!
//! Case counts: `PROPTEST_CASES` overrides them (e.g. `PROPTEST_CASES=100000` for a long run).

mod common;

use common::{body, expect_err, get, ingest_one, set, specs};
use hookline_wire::{
    Envelope, IngestLimits, MAX_FIELD_CHARS, MAX_LINK_CHARS, ValidatedBatch, ValidationError,
    ValidationErrorKind as K, validate_ingest, write_envelope,
};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // A failure is reported with its minimal input; nothing is written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Every field name of the catalogue and its aliases, so random objects hit the validator's rules.
const KEYS: &[&str] = &[
    "hookId",
    "senderKey",
    "templateCode",
    "kakaoTemplateCode",
    "status",
    "comments",
    "id",
    "content",
    "userName",
    "createdAt",
    "attachment",
    "originalFileName",
    "filePath",
    "updateDate",
    "kakaoMessageType",
    "requestId",
    "recipientSeq",
    "requestDate",
    "createDate",
    "receiveDate",
    "recipientNo",
    "resultCode",
    "senderGroupingKey",
    "recipientGroupingKey",
    "recipientGropuingKey",
    "isAddedChannel",
    "_links",
    "_link",
    "self",
    "href",
    "unsubscribeNo",
    "enterpriseName",
    "createdDateTime",
    "senderType",
    "sendNo",
    "messageStatus",
    "messageCount",
    "countryCode",
    "blockedDateTime",
    "dlrStatus",
    "networkCode",
    "errorCode",
    "productName",
    "event",
    "hooks",
];

/// Enumerated values and date-like strings: random strings alone would almost never pass a rule.
const STRINGS: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "TSC01",
    "TSC03",
    "APR",
    "REQ",
    "ALIMTALK_NORMAL",
    "BRAND_MESSAGE_MASS",
    "ACCEPTED",
    "UNKNOWN",
    "SMS",
    "sms",
    "KakaoTalk Bizmessage",
    "MESSAGE_RESULT_UPDATE",
    "UNSUBSCRIBE",
    "2024-04-29T20:58:02",
    "2022-05-01 00:00:00",
    "2020-09-09T11:25:10.000+09:00",
    "2023-06-01",
    "2024-02-30T00:00:00",
    "20240429205809GcSUXthVA00",
    "hook.id-1_2",
    "",
];

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(STRINGS).prop_map(str::to_owned),
        2 => prop::collection::vec(any::<char>(), 0..24).prop_map(|c| c.into_iter().collect()),
        // Date-shaped noise: the date matchers index bytes, so aim at their edges.
        2 => prop::collection::vec(select(&b"0123456789-:T .+Z"[..]), 0..32)
            .prop_map(|b| String::from_utf8(b).unwrap_or_default()),
        // Strings around the length limits.
        1 => (MAX_FIELD_CHARS - 1..MAX_FIELD_CHARS + 2).prop_map(|n| "é".repeat(n)),
        1 => (MAX_LINK_CHARS - 1..MAX_LINK_CHARS + 2).prop_map(|n| "h".repeat(n)),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(KEYS).prop_map(str::to_owned),
        1 => prop::collection::vec(any::<char>(), 0..8).prop_map(|c| c.into_iter().collect()),
    ]
}

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-3i64..4).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        Just(json!(1.0)),
    ]
}

/// Any JSON value, nested a few levels, biased towards the catalogue's names and values.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// A request body built from random parts: the product, the event and hooks that are each either
/// a valid hook of some event with random fields changed, or any JSON value.
fn arb_request() -> impl Strategy<Value = Value> {
    let specs = specs();
    let fulls: Vec<Value> = specs.iter().map(|s| s.full.clone()).collect();
    let names: Vec<(String, String)> = specs
        .iter()
        .map(|s| (s.product.as_str().to_owned(), s.event.as_str().to_owned()))
        .collect();
    let hook = prop_oneof![
        3 => (select(fulls), prop::collection::vec((arb_key(), arb_json()), 0..4)).prop_map(
            |(mut hook, changes)| {
                if let Some(map) = hook.as_object_mut() {
                    for (k, v) in changes {
                        map.insert(k, v);
                    }
                }
                hook
            }
        ),
        1 => arb_json(),
    ];
    (
        select(names),
        prop::collection::vec(hook, 0..5),
        any::<bool>(),
        prop::collection::vec((arb_key(), arb_json()), 0..2),
    )
        .prop_map(|((product, event), hooks, same_pair, extra)| {
            let mut top = Map::new();
            top.insert("productName".into(), json!(product));
            // Mostly the pair the hooks were made for; sometimes another event of any product.
            let event = if same_pair {
                event
            } else {
                "INTERNATIONAL_DELIVERY_RECEIPT".to_owned()
            };
            top.insert("event".into(), json!(event));
            top.insert("hooks".into(), Value::Array(hooks));
            for (k, v) in extra {
                top.insert(k, v);
            }
            Value::Object(top)
        })
}

/// Small limits so the limit paths are taken too.
fn limits() -> IngestLimits {
    IngestLimits {
        max_hooks: 4,
        max_hook_bytes: 8 * 1024,
    }
}

/// The error names a path of the request.
fn check_error_path(e: &ValidationError) -> Result<(), TestCaseError> {
    prop_assert!(!e.path.is_empty(), "error without a path: {e:?}");
    let top_level = ["body", "productName", "event", "hooks"].contains(&e.path.as_str());
    prop_assert!(
        top_level || e.path.starts_with("hooks["),
        "error path {:?} is not a path of the request: {e}",
        e.path
    );
    let prefix = format!("{}: ", e.path);
    prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
    prop_assert!(!e.message.is_empty());
    // Messages cut long values: a request cannot make a huge error message.
    prop_assert!(
        e.message.len() < 600,
        "message of {} bytes",
        e.message.len()
    );
    Ok(())
}

/// Sends the stored hooks again as one request: the same hooks come out.
fn check_revalidates(batch: &ValidatedBatch, limits: &IngestLimits) -> Result<(), TestCaseError> {
    prop_assert!(!batch.hooks.is_empty());
    prop_assert!(batch.input_ids.len() >= batch.hooks.len());
    for id in &batch.input_ids {
        prop_assert!(batch.hooks.iter().any(|h| &h.hook_id == id));
    }
    let mut again = String::from("{\"productName\":\"");
    again.push_str(batch.product.as_str());
    again.push_str("\",\"event\":\"");
    again.push_str(batch.event.as_str());
    again.push_str("\",\"hooks\":[");
    for (i, h) in batch.hooks.iter().enumerate() {
        if i > 0 {
            again.push(',');
        }
        again.push_str(&h.json);
    }
    again.push_str("]}");
    let second = validate_ingest(again.as_bytes(), limits);
    prop_assert!(
        second.is_ok(),
        "stored hooks do not validate again: {second:?}"
    );
    let second = second.unwrap_or_else(|_| unreachable!());
    prop_assert_eq!(second.product, batch.product);
    prop_assert_eq!(second.event, batch.event);
    prop_assert_eq!(second.hooks.len(), batch.hooks.len());
    for (a, b) in batch.hooks.iter().zip(&second.hooks) {
        prop_assert_eq!(&a.hook_id, &b.hook_id);
        prop_assert_eq!(&a.json, &b.json);
        prop_assert!(!b.id_generated);
    }
    Ok(())
}

/// The stored hooks go out in an envelope that a receiver parses and types.
fn check_envelope(
    batch: &ValidatedBatch,
    hooks_id: &str,
    app_key: &str,
) -> Result<(), TestCaseError> {
    let hooks: Vec<&str> = batch.hooks.iter().map(|h| h.json.as_str()).collect();
    let mut out = Vec::new();
    write_envelope(
        &mut out,
        hooks_id,
        "20240101000000AbCdEfGhIjK",
        batch.product,
        app_key,
        batch.event,
        &hooks,
    );
    let envelope = Envelope::parse(&out);
    prop_assert!(
        envelope.is_ok(),
        "{envelope:?}: {}",
        String::from_utf8_lossy(&out)
    );
    let envelope = envelope.unwrap_or_else(|_| unreachable!());
    prop_assert_eq!(&envelope.hooks_id, hooks_id);
    prop_assert_eq!(&envelope.app_key, app_key);
    prop_assert_eq!(envelope.product().ok(), Some(batch.product));
    prop_assert_eq!(envelope.event().ok(), Some(batch.event));
    prop_assert_eq!(envelope.hooks.len(), batch.hooks.len());
    for (parsed, stored) in envelope.hooks.iter().zip(&batch.hooks) {
        let stored: Value = serde_json::from_str(&stored.json).unwrap_or(Value::Null);
        prop_assert_eq!(parsed, &stored);
    }
    let typed = envelope.typed_hooks();
    prop_assert!(typed.is_ok(), "{typed:?}");
    let typed = typed.unwrap_or_default();
    for (t, stored) in typed.iter().zip(&batch.hooks) {
        prop_assert_eq!(t.hook_id(), stored.hook_id.as_str());
    }
    Ok(())
}

/// A valid body of one hook per event, to mutate byte by byte.
fn seed_bodies() -> Vec<Vec<u8>> {
    specs()
        .iter()
        .map(|s| body(s.product.as_str(), s.event.as_str(), vec![s.full.clone()]))
        .collect()
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match *e {
            Edit::Flip(i, b) => {
                if let Some(x) = bytes.get_mut(i % n) {
                    *x ^= b;
                }
            }
            Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Edit::Remove(i) => {
                if !bytes.is_empty() {
                    bytes.remove(i % n);
                }
            }
        }
    }
    bytes
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    let byte = prop_oneof![
        any::<u8>(),
        select(&b"{}[]\",:0123456789.-eE\\ntfu"[..]),
        Just(0xff),
        Just(0xc3),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Remove),
    ]
}

/// Whatever `bytes` is, the three entry points answer without panicking, and an error names a
/// path; an accepted batch re-validates and goes out in a parseable envelope.
fn check_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    let limits = limits();
    match validate_ingest(bytes, &limits) {
        Ok(batch) => {
            check_revalidates(&batch, &limits)?;
            check_envelope(&batch, "20240429205810Xw3kPq9LmZ01", "app")?;
        }
        Err(e) => check_error_path(&e)?,
    }
    // The properties of fuzz/fuzz_targets/envelope_parse.rs, on proptest's inputs.
    if let Ok(envelope) = Envelope::parse(bytes) {
        prop_assert!(
            !envelope.hooks.is_empty(),
            "an envelope without hooks parsed"
        );
        let _ = envelope.event();
        if let Ok(hooks) = envelope.typed_hooks() {
            prop_assert_eq!(hooks.len(), envelope.hooks.len());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_bytes(&bytes)?;
    }

    #[test]
    fn mutated_valid_bodies_never_panic(
        seed in select(seed_bodies()),
        edits in prop::collection::vec(arb_edit(), 1..6),
    ) {
        check_bytes(&apply(seed, &edits))?;
    }

    #[test]
    fn random_requests_validate_or_name_a_path(request in arb_request()) {
        let bytes = serde_json::to_vec(&request).unwrap_or_default();
        check_bytes(&bytes)?;
        // The request as a receiver would see it if it were an envelope: no panic either.
        if let Ok(envelope) = Envelope::parse(&bytes) {
            let _ = envelope.typed_hooks();
        }
    }

    #[test]
    fn changed_fields_of_valid_hooks(
        which in 0..6usize,
        changes in prop::collection::vec((arb_key(), arb_json()), 1..4),
    ) {
        // One valid hook of each event with random fields set: accepted (and then consistent) or
        // refused naming a field of that hook.
        let spec = &specs()[which];
        let mut hook = spec.full.clone();
        if let Some(map) = hook.as_object_mut() {
            for (k, v) in changes {
                map.insert(k, v);
            }
        }
        match ingest_one(spec, hook) {
            Ok(batch) => {
                check_revalidates(&batch, &IngestLimits::default())?;
                check_envelope(&batch, "h", "a")?;
            }
            Err(e) => {
                check_error_path(&e)?;
                prop_assert!(e.path.starts_with("hooks[0]"), "{e}");
            }
        }
    }

    #[test]
    fn envelopes_parse_back_whatever_the_ids(
        hooks_id in prop::collection::vec(any::<char>(), 0..30).prop_map(String::from_iter),
        app_key in prop::collection::vec(any::<char>(), 0..30).prop_map(String::from_iter),
        which in 0..6usize,
        copies in 1..4usize,
    ) {
        let spec = &specs()[which];
        let hooks: Vec<Value> = (0..copies)
            .map(|i| {
                let mut h = spec.full.clone();
                set(&mut h, "hookId", json!(format!("h{i}")));
                h
            })
            .collect();
        let batch = validate_ingest(
            &body(spec.product.as_str(), spec.event.as_str(), hooks),
            &IngestLimits::default(),
        );
        prop_assert!(batch.is_ok(), "{batch:?}");
        let batch = batch.unwrap_or_else(|_| unreachable!());
        check_envelope(&batch, &hooks_id, &app_key)?;
    }
}

#[test]
fn every_string_field_has_a_length_limit() {
    for spec in specs() {
        for path in spec.strings {
            let limit = if path.ends_with("href") || path.ends_with("filePath") {
                Some(MAX_LINK_CHARS)
            } else if path.ends_with("content") {
                None
            } else {
                Some(MAX_FIELD_CHARS)
            };
            let constrained = spec.enums.iter().any(|(p, _)| p == path)
                || spec.dates.iter().any(|(p, _, _)| p == path)
                || path.ends_with("Date")
                || path.ends_with("DateTime")
                || path.ends_with("createdAt")
                || path.ends_with("status")
                || path.ends_with("Status")
                || path.ends_with("Type");
            let Some(limit) = limit else {
                // Free text: only the hook's size limit applies.
                let mut hook = spec.full.clone();
                set(&mut hook, path, json!("x".repeat(MAX_LINK_CHARS * 2)));
                assert!(ingest_one(&spec, hook).is_ok(), "{} {path}", spec.event);
                continue;
            };
            // Counted in characters: `limit` two-byte characters are within it.
            if !constrained {
                let mut hook = spec.full.clone();
                set(&mut hook, path, json!("é".repeat(limit)));
                let ok = ingest_one(&spec, hook);
                assert!(ok.is_ok(), "{} {path} at the limit: {ok:?}", spec.event);
            }
            let mut hook = spec.full.clone();
            set(&mut hook, path, json!("a".repeat(limit + 1)));
            let e = expect_err(
                ingest_one(&spec, hook),
                K::StringTooLong,
                &format!("hooks[0].{path}"),
            );
            assert!(
                e.message.contains(&format!("{} characters", limit + 1))
                    && e.message.contains(&limit.to_string()),
                "{e}"
            );
            assert!(e.message.len() < 200, "{e}");
        }
    }
    // The comment id may be a string: limited too.
    let spec = &specs()[0];
    let mut hook = spec.full.clone();
    set(
        &mut hook,
        "comments[1].id",
        json!("i".repeat(MAX_FIELD_CHARS + 1)),
    );
    assert_eq!(get(&spec.full, "comments[1].id"), &json!("c-2"));
    expect_err(
        ingest_one(spec, hook),
        K::StringTooLong,
        "hooks[0].comments[1].id",
    );
}

#[test]
fn unknown_fields_are_bounded_by_the_hook_limit_only() {
    let spec = &specs()[3];
    let mut hook = spec.full.clone();
    set(&mut hook, "note", json!("n".repeat(30_000)));
    assert!(ingest_one(spec, hook.clone()).is_ok());
    set(&mut hook, "note", json!("n".repeat(70_000)));
    expect_err(ingest_one(spec, hook), K::HookTooLarge, "hooks[0]");
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for depth in [200usize, 100_000] {
        let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let raw = format!(
            r#"{{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{{"countryCode":"1","deep":{nested}}}]}}"#
        );
        let e = validate_ingest(raw.as_bytes(), &IngestLimits::default()).unwrap_err();
        assert_eq!((e.kind, e.path.as_str()), (K::InvalidJson, "body"), "{e}");
        assert!(e.message.contains("recursion limit"), "{e}");
        assert!(Envelope::parse(raw.as_bytes()).is_err());
    }
    // Nesting within serde_json's limit (128) is kept as it came.
    let nested = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let raw = format!(
        r#"{{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{{"countryCode":"1","deep":{nested}}}]}}"#
    );
    let batch = validate_ingest(raw.as_bytes(), &IngestLimits::default()).unwrap();
    assert!(batch.hooks[0].json.contains(&nested));
}

#[test]
fn huge_numbers() {
    let spec = &specs()[5];
    // Out of f64's range: not JSON that can be read.
    let raw = br#"{"productName":"SMS","event":"INTERNATIONAL_DELIVERY_RECEIPT","hooks":[{"requestId":"r","recipientSeq":1e400,"dlrStatus":"ACCEPTED"}]}"#;
    let e = validate_ingest(raw, &IngestLimits::default()).unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::InvalidJson, "body"), "{e}");
    // Beyond u64: not an integer.
    let raw = br#"{"productName":"SMS","event":"INTERNATIONAL_DELIVERY_RECEIPT","hooks":[{"requestId":"r","recipientSeq":184467440737095516160,"dlrStatus":"ACCEPTED"}]}"#;
    let e = validate_ingest(raw, &IngestLimits::default()).unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (K::WrongType, "hooks[0].recipientSeq"),
        "{e}"
    );
    // Beyond i64 (what the typed models hold, so receivers can read every accepted hook).
    let mut hook = spec.full.clone();
    set(&mut hook, "recipientSeq", json!(u64::MAX));
    let e = expect_err(
        ingest_one(spec, hook),
        K::WrongType,
        "hooks[0].recipientSeq",
    );
    assert!(e.message.contains("64-bit"), "{e}");
    // The extremes of i64 are integers.
    for n in [json!(i64::MIN), json!(i64::MAX)] {
        let mut hook = spec.full.clone();
        set(&mut hook, "recipientSeq", n.clone());
        let batch = ingest_one(spec, hook).unwrap();
        assert!(batch.hooks[0].json.contains(&n.to_string()));
    }
}

#[test]
fn non_utf8_bytes_are_refused_as_the_body() {
    let mut raw =
        br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"#.to_vec();
    raw.extend_from_slice(b"\"\xff\xfe\"}]}");
    let e = validate_ingest(&raw, &IngestLimits::default()).unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::InvalidJson, "body"), "{e}");
    // An escaped lone surrogate is not a string either.
    let raw =
        br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"\ud800"}]}"#;
    let e = validate_ingest(raw, &IngestLimits::default()).unwrap_err();
    assert_eq!(e.path, "body", "{e}");
    // Product names are compared without panicking on any character.
    let raw = "{\"productName\":\"\u{1F600}SMS\",\"event\":\"x\",\"hooks\":[{}]}";
    let e = validate_ingest(raw.as_bytes(), &IngestLimits::default()).unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (K::UnknownProduct, "productName")
    );
}
