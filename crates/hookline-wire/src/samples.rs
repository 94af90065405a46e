//! Realistic sample hooks, for `hookline emit` and a config's test delivery.

use chrono::{DateTime, FixedOffset, Utc};
use rand::RngExt;
use serde_json::{Value, json};

use crate::catalogue::{self, Event, Product};
use crate::ids::generate_id;

/// A realistic hook of `event` as `product` emits it, shaped like the documents' examples: fresh
/// `hookId` and `requestId` from [`generate_id`], a random `recipientSeq`, phone numbers and
/// enumerated values, and the current time (Korea Standard Time, the platform's zone) in each date
/// field's format. It always passes [`crate::validate_hook`] for that product and event.
///
/// If `product` does not emit `event` (see [`Event::is_valid_for`]), the sample is that of the
/// product that does emit it, so the call never fails.
pub fn sample_hook(product: Product, event: Event) -> Value {
    let now = now_kst();
    let mut rng = rand::rng();
    let hook_id = generate_id();
    let request_id = generate_id();
    let recipient_seq: u32 = rng.random_range(1..=10);
    let recipient_no = format!("010{}", digits(&mut rng, 8));

    match (product, event) {
        (_, Event::TemplateStatusUpdate) => {
            let status = pick(&mut rng, catalogue::TEMPLATE_STATUSES);
            let template_code = format!("TPL_{}", digits(&mut rng, 6));
            json!({
                "senderKey": hex(&mut rng, 40),
                "templateCode": template_code,
                "kakaoTemplateCode": template_code,
                "status": status,
                "comments": [{
                    "id": rng.random_range(100_000..1_000_000u32),
                    "content": "Please check the template variables and the button link.",
                    "userName": "Kakao reviewer",
                    "createdAt": now.format("%Y-%m-%d %H:%M:%S").to_string(),
                    "attachment": [{
                        "originalFileName": "template_preview.png",
                        "filePath": format!("/alimtalk/attachments/{}.png", hex(&mut rng, 16)),
                    }],
                    "status": if status == "TSC04" { "REJ" } else { "APR" },
                }],
                "updateDate": now.format("%Y-%m-%d %H:%M:%S").to_string(),
                "hookId": hook_id,
            })
        }
        (Product::KakaoTalkBizmessage, Event::MessageResultUpdate) => {
            let message_type = pick(&mut rng, catalogue::KAKAO_MESSAGE_TYPES);
            let api = if message_type.starts_with("ALIMTALK") {
                "alimtalk"
            } else {
                "friendtalk"
            };
            let mut hook = json!({
                "kakaoMessageType": message_type,
                "requestId": request_id,
                "recipientSeq": recipient_seq,
                "requestDate": now.format("%Y-%m-%d %H:%M:%S").to_string(),
                "createDate": now.format("%Y-%m-%d %H:%M:%S").to_string(),
                "receiveDate": now.format("%Y-%m-%d %H:%M:%S").to_string(),
                "recipientNo": recipient_no,
                "resultCode": "1000",
                "senderGroupingKey": "SenderGroupingKey",
                "recipientGroupingKey": "RecipientGroupingKey",
                "_links": {"self": {"href": format!(
                    "https://api-{api}.cloud.toast.com/{api}/v2.3/appkeys/{{appKey}}/messages/{request_id}/{recipient_seq}"
                )}},
                "hookId": hook_id,
            });
            if message_type.starts_with("BRAND_MESSAGE")
                && let Value::Object(map) = &mut hook
            {
                map.shift_insert(10, "isAddedChannel".to_owned(), Value::Bool(rng.random()));
            }
            hook
        }
        (_, Event::Unsubscribe) => json!({
            "hookId": hook_id,
            "recipientNo": recipient_no,
            "unsubscribeNo": format!("080{}", digits(&mut rng, 7)),
            "enterpriseName": "NHN Cloud",
            "createdDateTime": now.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        }),
        (_, Event::MessageResultUpdate) => {
            let status = pick(&mut rng, &["COMPLETED", "COMPLETED", "COMPLETED", "FAILED"]);
            let sent = now - chrono::Duration::seconds(2);
            json!({
                "hookId": hook_id,
                "senderType": "NORMAL_SMS",
                "requestId": request_id,
                "recipientSeq": recipient_seq,
                "requestDate": sent.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "receiveDate": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "sendNo": "15446859",
                "recipientNo": recipient_no,
                "messageStatus": status,
                "recipientGroupingKey": "RecipientGroupingKey",
                "senderGroupingKey": "SenderGroupingKey",
                "resultCode": if status == "COMPLETED" { "1000" } else { "3015" },
                "messageCount": 1,
                "_links": {"self": {"href": format!(
                    "https://api-sms.cloud.toast.com/sms/v2.4/appKeys/{{appKey}}/sender/sms/{request_id}?recipientSeq={recipient_seq}"
                )}},
            })
        }
        (_, Event::ConversionBlock) => json!({
            "hookId": hook_id,
            "countryCode": pick(&mut rng, &["1", "44", "62", "63", "84", "880"]),
            "blockedDateTime": now.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        }),
        (_, Event::InternationalDeliveryReceipt) => json!({
            "hookId": hook_id,
            "requestId": request_id,
            "recipientSeq": recipient_seq,
            "dlrStatus": pick(&mut rng, &["ACCEPTED", "DELIVERED", "DELIVERED", "BUFFERED", "FAILED"]),
            "networkCode": "US-VIRTUAL-BANDWIDTH",
            "errorCode": "0",
        }),
    }
}

fn now_kst() -> DateTime<FixedOffset> {
    // UTC+09:00 has no daylight saving, so a fixed offset is exact; `east_opt` only fails beyond a day.
    match FixedOffset::east_opt(9 * 3600) {
        Some(kst) => Utc::now().with_timezone(&kst),
        None => Utc::now().fixed_offset(),
    }
}

fn pick(rng: &mut impl RngExt, values: &[&'static str]) -> &'static str {
    values[rng.random_range(0..values.len())]
}

fn digits(rng: &mut impl RngExt, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

fn hex(rng: &mut impl RngExt, n: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..n)
        .map(|_| char::from(HEX[rng.random_range(0..16usize)]))
        .collect()
}
