//! Every JSON example of the platform's three API guides (the documents the wire format comes
//! from), verbatim, then corrected the way docs/wire-format.md decides.

mod common;

use hookline_wire::{
    Envelope, Hook, IngestLimits, ValidatedBatch, ValidationError, ValidationErrorKind as K,
    validate_ingest,
};
use serde_json::{Value, json};

/// The documents show `"hooks": [...]` fragments; an ingest request wraps them.
fn ingest_fragment(
    product: &str,
    event: &str,
    fragment: &str,
) -> Result<ValidatedBatch, ValidationError> {
    let body = format!(r#"{{"productName": "{product}", "event": "{event}", {fragment}}}"#);
    validate_ingest(body.as_bytes(), &IngestLimits::default())
}

fn stored(batch: &ValidatedBatch) -> Value {
    serde_json::from_str(&batch.hooks[0].json).unwrap()
}

// ---------------- KakaoTalk Bizmessage (000 Japanese edition, 001 English edition) ----------------

/// Identical in both editions.
const KAKAO_TEMPLATE_VERBATIM: &str = r#""hooks": [
    {
      "senderKey": "String",
      "templateCode": "String",
      "kakaoTemplateCode": "String",
      "status": "String",
      "comments": [
        {
          "id": "Integer",
          "content": "String",
          "userName": "String",
          "createdAt": "2022-05-01 00:00:00",
          "attachment": [
            {
              "originalFileName": "String",
              "filePath": "String"
            }
          ],
          "status": "String"
        }
      ],
      "updateDate": "2022-05-01 00:00:00",
      "hookId": "String"
    }
]"#;

const KAKAO_RESULT_VERBATIM_JA: &str = r#""hooks": [
  {
     "kakaoMessageType": "String(ALIMTALK_NORMAL / ALIMTALK_AUTH / ALIMTALK_MASS / FRIENDTALK_NORMAL / FRIENDTALK_MASS / BRAND_MESSAGE_NORMAL / BRAND_MESSAGE_MASS)",
    "requestId": "String",
     "recipientSeq": "Integer",
     "requestDate": "String",
     "createDate": "String",
     "receiveDate": "2023-06-01",
     "recipientNo": "String",
     "resultCode": "String",
     "senderGroupingKey": "String",
     "recipientGroupingKey": "String",
     "_links": {
       "self": {
         "href": "String"
       }
     },
    "hookId": "String"
  }
]"#;

const KAKAO_RESULT_VERBATIM_EN: &str = r#""hooks": [
  {
     "kakaoMessageType": "String(ALIMTALK_NORMAL / ALIMTALK_AUTH / ALIMTALK_MASS / FRIENDTALK_NORMAL / FRIENDTALK_MASS)",
    "requestId": "String",
     "recipientSeq": "Integer",
     "requestDate": "String",
     "createDate": "String",
     "receiveDate": "2023-06-01",
     "recipientNo": "String",
     "resultCode": "String",
     "senderGroupingKey": "String",
     "recipientGroupingKey": "String",
     "_links": {
       "self": {
         "href": "String"
       }
     },
    "hookId": "String"
  }
]"#;

#[test]
fn kakao_template_example_verbatim_fails_on_its_placeholder_status() {
    let e = ingest_fragment(
        "KakaoTalk Bizmessage",
        "TEMPLATE_STATUS_UPDATE",
        KAKAO_TEMPLATE_VERBATIM,
    )
    .unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::NotInEnum, "hooks[0].status"));
    assert_eq!(
        e.to_string(),
        "hooks[0].status: \"String\" is not one of TSC01, TSC02, TSC03, TSC04"
    );
    // With the template status fixed, the comment's placeholder status is next.
    let fixed =
        KAKAO_TEMPLATE_VERBATIM.replacen(r#""status": "String","#, r#""status": "TSC04","#, 1);
    let e = ingest_fragment("KakaoTalk Bizmessage", "TEMPLATE_STATUS_UPDATE", &fixed).unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (K::NotInEnum, "hooks[0].comments[0].status")
    );
}

#[test]
fn kakao_template_example_corrected_is_accepted_verbatim() {
    for (id_literal, id_value) in [("1", json!(1)), (r#""1""#, json!("1"))] {
        let corrected = KAKAO_TEMPLATE_VERBATIM
            .replacen(r#""status": "String","#, r#""status": "TSC04","#, 1)
            .replace(r#""status": "String""#, r#""status": "REJ""#)
            .replace(r#""id": "Integer""#, &format!(r#""id": {id_literal}"#))
            .replace(
                r#""hookId": "String""#,
                r#""hookId": "20220501000000AbCdEfGhIjK""#,
            );
        let batch =
            ingest_fragment("kakaotalk bizmessage", "TEMPLATE_STATUS_UPDATE", &corrected).unwrap();
        let hook = &batch.hooks[0];
        assert_eq!(hook.hook_id, "20220501000000AbCdEfGhIjK");
        assert!(!hook.id_generated);
        let original: Value =
            serde_json::from_str::<Value>(&format!("{{{corrected}}}")).unwrap()["hooks"][0].clone();
        assert_eq!(hook.json, serde_json::to_string(&original).unwrap());
        assert_eq!(stored(&batch)["comments"][0]["id"], id_value);
        assert!(hook.json.ends_with(
            r#""updateDate":"2022-05-01 00:00:00","hookId":"20220501000000AbCdEfGhIjK"}"#
        ));
    }
}

#[test]
fn kakao_result_examples_verbatim_fail_on_their_placeholders() {
    for verbatim in [KAKAO_RESULT_VERBATIM_JA, KAKAO_RESULT_VERBATIM_EN] {
        let e =
            ingest_fragment("KakaoTalk Bizmessage", "MESSAGE_RESULT_UPDATE", verbatim).unwrap_err();
        assert_eq!(
            (e.kind, e.path.as_str()),
            (K::NotInEnum, "hooks[0].kakaoMessageType")
        );
        let typed = verbatim.replace(
            verbatim
                .lines()
                .find(|l| l.contains("kakaoMessageType"))
                .unwrap(),
            r#""kakaoMessageType": "ALIMTALK_NORMAL","#,
        );
        let e =
            ingest_fragment("KakaoTalk Bizmessage", "MESSAGE_RESULT_UPDATE", &typed).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hooks[0].recipientSeq: expected an integer, got the string \"Integer\""
        );
    }
}

#[test]
fn kakao_result_examples_corrected_are_accepted_with_every_message_type() {
    for (verbatim, types) in [
        (
            KAKAO_RESULT_VERBATIM_JA,
            &[
                "ALIMTALK_NORMAL",
                "ALIMTALK_AUTH",
                "ALIMTALK_MASS",
                "FRIENDTALK_NORMAL",
                "FRIENDTALK_MASS",
                "BRAND_MESSAGE_NORMAL",
                "BRAND_MESSAGE_MASS",
            ][..],
        ),
        (
            KAKAO_RESULT_VERBATIM_EN,
            &[
                "ALIMTALK_NORMAL",
                "ALIMTALK_AUTH",
                "ALIMTALK_MASS",
                "FRIENDTALK_NORMAL",
                "FRIENDTALK_MASS",
            ][..],
        ),
    ] {
        let type_line = verbatim
            .lines()
            .find(|l| l.contains("kakaoMessageType"))
            .unwrap();
        for message_type in types {
            let corrected = verbatim
                .replace(type_line, &format!(r#""kakaoMessageType": "{message_type}","#))
                .replace(r#""recipientSeq": "Integer""#, r#""recipientSeq": 1"#)
                .replace(r#""requestDate": "String""#, r#""requestDate": "2023-06-01 10:00:00""#)
                .replace(r#""href": "String""#, r#""href": "https://api-alimtalk.cloud.toast.com/alimtalk/v2.3/appkeys/k/messages/r/1""#);
            let batch =
                ingest_fragment("KakaoTalk Bizmessage", "MESSAGE_RESULT_UPDATE", &corrected)
                    .unwrap_or_else(|e| panic!("{message_type}: {e}"));
            let hook = stored(&batch);
            assert_eq!(hook["kakaoMessageType"], *message_type);
            assert_eq!(hook["receiveDate"], "2023-06-01");
            assert_eq!(hook["recipientSeq"], 1);
            // Strings whose format the documents leave open ("String") stay accepted as they are.
            assert_eq!(hook["createDate"], "String");
            assert_eq!(batch.hooks[0].hook_id, "String");
        }
    }
}

// ---------------- SMS (004 English edition) ----------------

const SMS_UNSUBSCRIBE_VERBATIM: &str = r#""hooks": [
{
"hookId": "202007271010101010sadasdavas",
"recipientNo": "01012341234",
"unsubscribeNo": "08012341234",
"enterpriseName": "NHN Cloud",
"createdDateTime": "2020-09-09T11:25:10.000+09:00"
}
]"#;

const SMS_RESULT_VERBATIM: &str = r#""hooks": [
{
"hookId": "20240429205809GcSUXthVA00",
"senderType": "NORMAL_SMS",
"requestId": "20240429205802y0Tl7Gbz0e0",
"recipientSeq": 1,
"requestDate": "2024-04-29T20:58:02",
"receiveDate": "2024-04-29T20:58:04",
"sendNo": "15446859",
"recipientNo": "01012341234",
"messageStatus": "COMPLETED",
"recipientGropuingKey": "RecipientGroupingKey",
"senderGroupingKey": "SenderGroupingKey",
"resultCode": "1000",
"messageCount": 1,
"_link": {
"self": {
"href": "https://api-sms.cloud.toast.com/sms/v2.4/appKeys/{appKey}/sender/sms/20240429205802y0Tl7Gbz0e0?recipientSeq=1"
}
},
}
]"#;

const SMS_BLOCK_VERBATIM: &str = r#""hooks": [
{
"hookId": "20240429205809GcSUXthVA00",
"countryCode": "1",
"blockedDateTime": "2024-05-28T09:00:00.000+09:00"
}
]"#;

const SMS_DLR_VERBATIM: &str = r#""hooks": [
{
"hookId": "202409251600118GSDDYTwzX0",
"requestId": "20240925160005UvxdDrJ4g20",
"recipientSeq": 1,
"dlrStatus": "ACCEPTED",
"networkCode": "US-VIRTUAL-BANDWIDTH",
"errorCode": "0"
}
]"#;

#[test]
fn sms_unsubscribe_example_is_accepted_verbatim() {
    let batch = ingest_fragment("SMS", "UNSUBSCRIBE", SMS_UNSUBSCRIBE_VERBATIM).unwrap();
    assert_eq!(
        batch.hooks[0].json,
        r#"{"hookId":"202007271010101010sadasdavas","recipientNo":"01012341234","unsubscribeNo":"08012341234","enterpriseName":"NHN Cloud","createdDateTime":"2020-09-09T11:25:10.000+09:00"}"#
    );
    assert_eq!(batch.input_ids, ["202007271010101010sadasdavas"]);
}

#[test]
fn sms_result_example_verbatim_is_invalid_json() {
    let e = ingest_fragment("SMS", "MESSAGE_RESULT_UPDATE", SMS_RESULT_VERBATIM).unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::InvalidJson, "body"));
    assert!(e.message.contains("trailing comma"), "{e}");
    // The line of the offending `}` in the wrapped body (the fragment starts on line 1).
    assert!(e.message.contains("line 21"), "{e}");
}

#[test]
fn sms_result_example_with_the_comma_fixed_is_accepted_and_normalised() {
    let fixed = SMS_RESULT_VERBATIM.replace("}\n},\n}", "}\n}\n}");
    assert_ne!(fixed, SMS_RESULT_VERBATIM);
    let batch = ingest_fragment("SMS", "MESSAGE_RESULT_UPDATE", &fixed).unwrap();
    let hook = &batch.hooks[0];
    assert_eq!(hook.hook_id, "20240429205809GcSUXthVA00");
    assert_eq!(
        hook.json,
        concat!(
            r#"{"hookId":"20240429205809GcSUXthVA00","senderType":"NORMAL_SMS","requestId":"20240429205802y0Tl7Gbz0e0","#,
            r#""recipientSeq":1,"requestDate":"2024-04-29T20:58:02","receiveDate":"2024-04-29T20:58:04","#,
            r#""sendNo":"15446859","recipientNo":"01012341234","messageStatus":"COMPLETED","#,
            r#""recipientGroupingKey":"RecipientGroupingKey","senderGroupingKey":"SenderGroupingKey","#,
            r#""resultCode":"1000","messageCount":1,"#,
            r#""_links":{"self":{"href":"https://api-sms.cloud.toast.com/sms/v2.4/appKeys/{appKey}/sender/sms/20240429205802y0Tl7Gbz0e0?recipientSeq=1"}}}"#
        )
    );
}

#[test]
fn sms_conversion_block_example_is_accepted_verbatim() {
    let batch = ingest_fragment("SMS", "CONVERSION_BLOCK", SMS_BLOCK_VERBATIM).unwrap();
    assert_eq!(
        batch.hooks[0].json,
        r#"{"hookId":"20240429205809GcSUXthVA00","countryCode":"1","blockedDateTime":"2024-05-28T09:00:00.000+09:00"}"#
    );
}

#[test]
fn sms_delivery_receipt_example_is_accepted_verbatim() {
    let batch = ingest_fragment("SMS", "INTERNATIONAL_DELIVERY_RECEIPT", SMS_DLR_VERBATIM).unwrap();
    assert_eq!(
        batch.hooks[0].json,
        r#"{"hookId":"202409251600118GSDDYTwzX0","requestId":"20240925160005UvxdDrJ4g20","recipientSeq":1,"dlrStatus":"ACCEPTED","networkCode":"US-VIRTUAL-BANDWIDTH","errorCode":"0"}"#
    );
}

// ---------------- The envelope examples (request body and cURL samples) ----------------

/// The documents' envelope examples with their `{ ... }` placeholder hook replaced by a real hook
/// and `"webhookConfigId": "String"` kept (any string is a config id to a receiver).
fn envelope_example(product: &str, event: &str, hook_fragment: &str) -> String {
    let hooks = serde_json::from_str::<Value>(&format!("{{{hook_fragment}}}")).unwrap()["hooks"]
        .to_string();
    format!(
        r#"{{
"hooksId": "202007271010101010sadasdavas",
"webhookConfigId": "String",
"productName": "{product}",
"appKey": "akb3dukdmdjsdSvgk",
"event": "{event}",
"hooks": {hooks}
}}"#
    )
}

#[test]
fn document_envelopes_parse_and_type() {
    // SMS request body example ("SMS") and the cURL sample ("Sms").
    for product in ["SMS", "Sms"] {
        let body = envelope_example(product, "UNSUBSCRIBE", SMS_UNSUBSCRIBE_VERBATIM);
        let envelope = Envelope::parse(body.as_bytes()).unwrap();
        assert_eq!(envelope.hooks_id, "202007271010101010sadasdavas");
        assert_eq!(envelope.product_name, product);
        let hooks = envelope.typed_hooks().unwrap();
        let [Hook::SmsUnsubscribe(h)] = hooks.as_slice() else {
            panic!("{hooks:?}")
        };
        assert_eq!(h.recipient_no, "01012341234");
        assert_eq!(
            h.created_date_time.as_deref(),
            Some("2020-09-09T11:25:10.000+09:00")
        );
    }
    // Kakao cURL sample (MESSAGE_RESULT_UPDATE), with the corrected hook.
    let hook = KAKAO_RESULT_VERBATIM_EN
        .replace(
            KAKAO_RESULT_VERBATIM_EN
                .lines()
                .find(|l| l.contains("kakaoMessageType"))
                .unwrap(),
            r#""kakaoMessageType": "FRIENDTALK_MASS","#,
        )
        .replace(r#""recipientSeq": "Integer""#, r#""recipientSeq": 3"#);
    let body = envelope_example("KakaoTalk Bizmessage", "MESSAGE_RESULT_UPDATE", &hook);
    let hooks = Envelope::parse(body.as_bytes())
        .unwrap()
        .typed_hooks()
        .unwrap();
    let [Hook::KakaoMessageResultUpdate(h)] = hooks.as_slice() else {
        panic!("{hooks:?}")
    };
    assert_eq!(h.recipient_seq, 3);
    assert_eq!(
        h.kakao_message_type,
        hookline_wire::KakaoMessageType::FriendtalkMass
    );
    assert_eq!(
        h.links
            .as_ref()
            .and_then(|l| l.self_link.as_ref())
            .and_then(|s| s.href.as_deref()),
        Some("String")
    );
}

#[test]
fn verbatim_sms_result_is_readable_by_receivers_with_the_misspellings() {
    // A receiver of the original platform sees `_link` and `recipientGropuingKey`: the typed model
    // reads both.
    let fixed = SMS_RESULT_VERBATIM.replace("}\n},\n}", "}\n}\n}");
    let body = envelope_example("SMS", "MESSAGE_RESULT_UPDATE", &fixed);
    let hooks = Envelope::parse(body.as_bytes())
        .unwrap()
        .typed_hooks()
        .unwrap();
    let [Hook::SmsMessageResultUpdate(h)] = hooks.as_slice() else {
        panic!("{hooks:?}")
    };
    assert_eq!(
        h.recipient_grouping_key.as_deref(),
        Some("RecipientGroupingKey")
    );
    assert!(
        h.links
            .as_ref()
            .unwrap()
            .self_link
            .as_ref()
            .unwrap()
            .href
            .as_deref()
            .unwrap()
            .ends_with("recipientSeq=1")
    );
    assert!(h.extra.is_empty(), "{:?}", h.extra);
}
