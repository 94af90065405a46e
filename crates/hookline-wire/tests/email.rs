//! The Email product as docs/wire-format.md gives it: its two events' required fields,
//! enumerations, `mailSeq` as a string or an integer, the `senderGroupKey` alias, and the typed
//! models receivers read.

use hookline_wire::{
    EmailMailStatus, Envelope, Event, Hook, IngestLimits, MailSeq, Product,
    ValidationErrorKind as K, validate_ingest, write_envelope,
};
use serde_json::{Value, json};

fn ingest(
    event: &str,
    hooks: Vec<Value>,
) -> Result<hookline_wire::ValidatedBatch, hookline_wire::ValidationError> {
    let body = json!({"productName": "email", "event": event, "hooks": hooks});
    validate_ingest(
        &serde_json::to_vec(&body).unwrap(),
        &IngestLimits::default(),
    )
}

fn result_hook() -> Value {
    json!({"hookId": "h1", "messageType": "NORMAL_MAIL", "requestId": "r1", "mailSeq": "0",
           "mailStatusCode": "SST2", "senderGroupKey": "g", "dsnCode": "2.5.0"})
}

#[test]
fn email_is_a_product_with_two_events() {
    assert_eq!(Product::parse("EMAIL"), Some(Product::Email));
    assert_eq!(
        Product::Email.events(),
        [Event::Unsubscribe, Event::MessageResultUpdate]
    );
}

#[test]
fn a_result_hook_is_accepted_with_its_alias_renamed_in_place() {
    let batch = ingest("MESSAGE_RESULT_UPDATE", vec![result_hook()]).unwrap();
    assert_eq!(batch.product, Product::Email);
    assert_eq!(
        batch.hooks[0].json,
        r#"{"hookId":"h1","messageType":"NORMAL_MAIL","requestId":"r1","mailSeq":"0","mailStatusCode":"SST2","senderGroupingKey":"g","dsnCode":"2.5.0"}"#
    );
    let mut integer_seq = result_hook();
    integer_seq["mailSeq"] = json!(3);
    assert!(ingest("MESSAGE_RESULT_UPDATE", vec![integer_seq]).is_ok());
}

#[test]
fn bad_result_hooks_name_the_field() {
    let cases: Vec<(&str, Value, K)> = vec![
        ("messageType", json!("SMS"), K::NotInEnum),
        ("mailStatusCode", json!("SST4"), K::NotInEnum),
        ("mailSeq", json!(1.5), K::WrongType),
        ("mailSeq", json!(null), K::MissingField),
        ("requestId", json!(7), K::WrongType),
        ("senderGroupKey", json!(["g"]), K::WrongType),
    ];
    for (field, value, kind) in cases {
        let mut hook = result_hook();
        hook[field] = value;
        let e = ingest("MESSAGE_RESULT_UPDATE", vec![result_hook(), hook]).unwrap_err();
        assert_eq!(
            (e.kind, e.path.as_str()),
            (kind, format!("hooks[1].{field}").as_str()),
            "{e}"
        );
    }
    let e = ingest(
        "UNSUBSCRIBE",
        vec![json!({"createdDateTime": "2020-09-09T11:25:10.000+09:00"})],
    )
    .unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (K::MissingField, "hooks[0].receiveMailAddr")
    );
    let e = ingest(
        "UNSUBSCRIBE",
        vec![json!({"receiveMailAddr": "a@b.c", "createdDateTime": "2020-09-09"})],
    )
    .unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (K::BadFormat, "hooks[0].createdDateTime")
    );
    let e = ingest("CONVERSION_BLOCK", vec![json!({"countryCode": "1"})]).unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::EventNotForProduct, "event"));
}

#[test]
fn receivers_read_email_hooks_as_typed_models() {
    let batch = ingest("MESSAGE_RESULT_UPDATE", vec![result_hook()]).unwrap();
    let jsons: Vec<&str> = batch.hooks.iter().map(|h| h.json.as_str()).collect();
    let mut body = Vec::new();
    write_envelope(
        &mut body,
        "hs",
        "cfg",
        Product::Email,
        "ak",
        Event::MessageResultUpdate,
        &jsons,
    );
    let envelope = Envelope::parse(&body).unwrap();
    match &envelope.typed_hooks().unwrap()[0] {
        Hook::EmailMessageResultUpdate(h) => {
            assert_eq!(h.mail_seq, MailSeq::String("0".into()));
            assert_eq!(h.mail_status_code, EmailMailStatus::Sent);
            assert_eq!(h.sender_grouping_key.as_deref(), Some("g"));
            assert!(h.extra.is_empty());
        }
        other => panic!("not an Email result hook: {other:?}"),
    }
}
