//! Realistic hooks of the built-in events, after the examples in the platform's API guides (docs/wire-format.md).

use serde_json::{Value, json};

/// A valid hook of `event` without a `hookId`; `i` varies its content.
pub fn hook(product: &str, event: &str, i: usize) -> Value {
    match (product, event) {
        (super::KAKAO, "TEMPLATE_STATUS_UPDATE") => json!({
            "senderKey": "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
            "templateCode": format!("TPL_{i:04}"),
            "kakaoTemplateCode": format!("KTPL_{i:04}"),
            "status": "TSC03",
            "comments": [{
                "id": 1000 + i,
                "content": "Approved after review",
                "userName": "reviewer",
                "createdAt": "2022-05-01 00:00:00",
                "attachment": [{"originalFileName": "guide.png", "filePath": "/files/guide.png"}],
                "status": "APR"
            }],
            "updateDate": "2022-05-01 00:00:00"
        }),
        (super::KAKAO, "MESSAGE_RESULT_UPDATE") => json!({
            "kakaoMessageType": "ALIMTALK_NORMAL",
            "requestId": "20240429205802y0Tl7Gbz0e0",
            "recipientSeq": i + 1,
            "requestDate": "2024-04-29 20:58:02",
            "createDate": "2024-04-29 20:58:03",
            "receiveDate": "2023-06-01",
            "recipientNo": "01012341234",
            "resultCode": "1000",
            "senderGroupingKey": "SenderGroupingKey",
            "recipientGroupingKey": "RecipientGroupingKey",
            "_links": {"self": {"href": format!(
                "https://api-alimtalk.cloud.toast.com/alimtalk/v2.3/appkeys/k/messages/20240429205802y0Tl7Gbz0e0/{}", i + 1)}}
        }),
        (super::SMS, "UNSUBSCRIBE") => json!({
            "recipientNo": format!("010{:08}", i),
            "unsubscribeNo": "08012341234",
            "enterpriseName": "NHN Cloud",
            "createdDateTime": "2020-09-09T11:25:10.000+09:00"
        }),
        (super::SMS, "MESSAGE_RESULT_UPDATE") => json!({
            "senderType": "NORMAL_SMS",
            "requestId": "20240429205802y0Tl7Gbz0e0",
            "recipientSeq": i + 1,
            "requestDate": "2024-04-29T20:58:02",
            "receiveDate": "2024-04-29T20:58:04",
            "sendNo": "15446859",
            "recipientNo": "01012341234",
            "messageStatus": "COMPLETED",
            "recipientGroupingKey": "RecipientGroupingKey",
            "senderGroupingKey": "SenderGroupingKey",
            "resultCode": "1000",
            "messageCount": 1,
            "_links": {"self": {"href": format!(
                "https://api-sms.cloud.toast.com/sms/v2.4/appKeys/k/sender/sms/20240429205802y0Tl7Gbz0e0?recipientSeq={}", i + 1)}}
        }),
        (super::SMS, "CONVERSION_BLOCK") => json!({
            "countryCode": format!("{}", 1 + i % 90),
            "blockedDateTime": "2024-05-28T09:00:00.000+09:00"
        }),
        (super::SMS, "INTERNATIONAL_DELIVERY_RECEIPT") => json!({
            "requestId": "20240925160005UvxdDrJ4g20",
            "recipientSeq": i + 1,
            "dlrStatus": "ACCEPTED",
            "networkCode": "US-VIRTUAL-BANDWIDTH",
            "errorCode": "0"
        }),
        (super::EMAIL, "UNSUBSCRIBE") => json!({
            "receiveMailAddr": format!("customer{i}@example.com"),
            "createdDateTime": "2020-09-09T11:25:10.000+09:00"
        }),
        (super::EMAIL, "MESSAGE_RESULT_UPDATE") => json!({
            "messageType": "NORMAL_MAIL",
            "requestId": "20200909112508aBcDeFgHiJ0",
            "mailSeq": format!("{i}"),
            "senderName": "NHN Cloud",
            "senderAddress": "noreply@example.com",
            "receiveName": "Customer",
            "receiveMailAddr": format!("customer{i}@example.com"),
            "mailStatusCode": "SST2",
            "requestDate": "2020-09-09T11:25:08.000+09:00",
            "createDate": "2020-09-09T11:25:08.000+09:00",
            "resultDate": "2020-09-09T11:25:10.000+09:00",
            "dsnCode": "2.5.0",
            "dsnMessage": "250 2.5.0 OK",
            "senderGroupingKey": "SenderGroupingKey",
            "_links": {"self": {"href": format!(
                "https://api-mail.cloud.toast.com/email/v2.0/appKeys/k/sender/mail/20200909112508aBcDeFgHiJ0/{i}")}}
        }),
        _ => panic!("no sample for {product} {event}"),
    }
}

/// A valid SMS MESSAGE_RESULT_UPDATE hook with the given `hookId`.
pub fn sms_result(hook_id: &str) -> Value {
    with_id(hook(super::SMS, "MESSAGE_RESULT_UPDATE", 0), hook_id)
}

pub fn with_id(mut hook: Value, id: &str) -> Value {
    hook["hookId"] = json!(id);
    hook
}

/// For the wire test of one event: the hooks to ingest and, for each, what must arrive (without the
/// `hookId` where the input has none). The first hook carries a producer-given hookId, an unknown
/// extra field and (SMS MESSAGE_RESULT_UPDATE) the documents' misspelled aliases; the second has no
/// hookId and uses the other allowed variants of the event (e.g. a string comment id).
pub fn wire_case(product: &str, event: &str) -> (Vec<Value>, Vec<Value>) {
    let extra = json!({"nested": [1, "two", null, {"deep": true}], "flag": false, "n": 1.5});
    let given_id = match event {
        "TEMPLATE_STATUS_UPDATE" => "tsu-20240429205809-a_1.x",
        "UNSUBSCRIBE" => "202007271010101010sadasdavas",
        "INTERNATIONAL_DELIVERY_RECEIPT" => "202409251600118GSDDYTwzX0",
        _ => "20240429205809GcSUXthVA00",
    };
    let mut first = with_id(hook(product, event, 0), given_id);
    first["x-extension"] = extra.clone();
    first["vendorNote"] = json!("kept as is: \u{00e9}\u{1f600} \"quoted\"");
    // What must arrive: the table's spelling (set before the aliases are swapped in below).
    let first_expected = first.clone();
    let mut second = hook(product, event, 1);
    match (product, event) {
        (super::KAKAO, "TEMPLATE_STATUS_UPDATE") => {
            // The table says String, the example Integer: both accepted and delivered as received;
            // the Korean edition's REQ comment status is accepted too.
            second["comments"] = json!([
                {"id": "c-77", "content": "Please check", "userName": "ops", "createdAt": "2022-05-02 10:11:12",
                 "attachment": [], "status": "REQ"},
                {"id": 78, "content": "Replied", "userName": "reviewer", "createdAt": "2022-05-02 11:00:00",
                 "status": "REP"}
            ]);
            second["status"] = json!("TSC04");
        }
        (super::KAKAO, "MESSAGE_RESULT_UPDATE") => {
            second["kakaoMessageType"] = json!("BRAND_MESSAGE_NORMAL");
            second["isAddedChannel"] = json!(true);
            second["receiveDate"] = json!("2024-04-29 20:58:09");
        }
        (super::SMS, "MESSAGE_RESULT_UPDATE") => {
            // The SMS document's example: `recipientGropuingKey` and `_link` are aliases.
            let obj = first.as_object_mut().unwrap();
            let v = obj.remove("recipientGroupingKey").unwrap();
            obj.insert("recipientGropuingKey".into(), v);
            let v = obj.remove("_links").unwrap();
            obj.insert("_link".into(), v);
            second["messageStatus"] = json!("FAILED_AD");
        }
        (super::SMS, "INTERNATIONAL_DELIVERY_RECEIPT") => {
            second["dlrStatus"] = json!("UNKNOWN");
        }
        (super::EMAIL, "MESSAGE_RESULT_UPDATE") => {
            // The Email guide's example spells `senderGroupKey`: an alias, renamed where it stands.
            let obj = first.as_object_mut().unwrap();
            let v = obj.remove("senderGroupingKey").unwrap();
            obj.insert("senderGroupKey".into(), v);
            // The guide sends mailSeq as a string; an integer is accepted and kept too.
            second["mailSeq"] = json!(7);
            second["mailStatusCode"] = json!("SST5");
            second["messageType"] = json!("TAG_MAIL_AD");
        }
        _ => {}
    }
    let second_expected = second.clone();
    (vec![first, second], vec![first_expected, second_expected])
}
