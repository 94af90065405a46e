//! Criterion 8: bad ingest requests get the documented 4xx, an error naming the field, and store
//! and deliver nothing.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    statuses: &'static [u16],
    field: Option<&'static str>,
}

fn body(product: &str, event: &str, hooks: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"productName": product, "event": event, "hooks": hooks})).unwrap()
}

fn case(
    name: &'static str,
    b: Vec<u8>,
    statuses: &'static [u16],
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        content_type: Some("application/json"),
        body: b,
        statuses,
        field,
    }
}

/// A valid SMS MESSAGE_RESULT_UPDATE hook with `id`, changed by `f`.
fn mru(id: &str, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut h = samples::sms_result(id);
    f(h.as_object_mut().unwrap());
    h
}

fn of(
    product: &str,
    event: &str,
    id: &str,
    f: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Value {
    let mut h = samples::with_id(samples::hook(product, event, 0), id);
    f(h.as_object_mut().unwrap());
    h
}

const MRU: &str = "MESSAGE_RESULT_UPDATE";

fn cases() -> Vec<Case> {
    let e400: &'static [u16] = &[400];
    vec![
        Case {
            name: "invalid JSON (the document's trailing comma)",
            content_type: Some("application/json"),
            body: br#"{"productName":"SMS","event":"MESSAGE_RESULT_UPDATE","hooks":[{"hookId":"bad-json","requestId":"r1","recipientSeq":1,"messageStatus":"COMPLETED",}]}"#.to_vec(),
            statuses: e400,
            field: None,
        },
        Case {
            name: "text/plain content type",
            content_type: Some("text/plain"),
            body: body(SMS, MRU, vec![mru("bad-ct-1", |_| {})]),
            statuses: &[415],
            field: None,
        },
        Case {
            name: "form content type",
            content_type: Some("application/x-www-form-urlencoded"),
            body: body(SMS, MRU, vec![mru("bad-ct-2", |_| {})]),
            statuses: &[415],
            field: None,
        },
        Case {
            name: "no content type",
            content_type: None,
            body: body(SMS, MRU, vec![mru("bad-ct-3", |_| {})]),
            statuses: &[400, 415],
            field: None,
        },
        case("unknown product", body("MMS", MRU, vec![mru("bad-p1", |_| {})]), e400, Some("productName")),
        case(
            "missing productName",
            serde_json::to_vec(&json!({"event": MRU, "hooks": [mru("bad-p2", |_| {})]})).unwrap(),
            e400,
            Some("productName"),
        ),
        case(
            "productName not a string",
            serde_json::to_vec(&json!({"productName": 42, "event": MRU, "hooks": [mru("bad-p3", |_| {})]})).unwrap(),
            e400,
            Some("productName"),
        ),
        case("unknown event", body(SMS, "MESSAGE_RESULT", vec![mru("bad-e1", |_| {})]), e400, Some("event")),
        case(
            "event of the other product",
            body(SMS, "TEMPLATE_STATUS_UPDATE", vec![of(KAKAO, "TEMPLATE_STATUS_UPDATE", "bad-e2", |_| {})]),
            e400,
            Some("event"),
        ),
        case(
            "recipientSeq as a string",
            body(SMS, MRU, vec![mru("bad-t1", |h| { h.insert("recipientSeq".into(), json!("1")); })]),
            e400,
            Some("hooks[0].recipientSeq"),
        ),
        case(
            "recipientSeq as 1.0",
            body(SMS, MRU, vec![mru("bad-t2", |h| { h.insert("recipientSeq".into(), json!(1.0)); })]),
            e400,
            Some("hooks[0].recipientSeq"),
        ),
        case(
            "messageCount as a string",
            body(SMS, MRU, vec![mru("bad-t3", |h| { h.insert("messageCount".into(), json!("1")); })]),
            e400,
            Some("hooks[0].messageCount"),
        ),
        case(
            "requestId not a string",
            body(SMS, MRU, vec![mru("bad-t4", |h| { h.insert("requestId".into(), json!(123)); })]),
            e400,
            Some("hooks[0].requestId"),
        ),
        case(
            "messageStatus outside its enum",
            body(SMS, MRU, vec![mru("bad-v1", |h| { h.insert("messageStatus".into(), json!("DONE")); })]),
            e400,
            Some("hooks[0].messageStatus"),
        ),
        case(
            "missing requestId",
            body(SMS, MRU, vec![mru("bad-m1", |h| { h.remove("requestId"); })]),
            e400,
            Some("hooks[0].requestId"),
        ),
        case(
            "missing messageStatus",
            body(SMS, MRU, vec![mru("bad-m2", |h| { h.remove("messageStatus"); })]),
            e400,
            Some("hooks[0].messageStatus"),
        ),
        case(
            "requestDate in the wrong format",
            body(SMS, MRU, vec![mru("bad-d1", |h| { h.insert("requestDate".into(), json!("2024/04/29 20:58:02")); })]),
            e400,
            Some("hooks[0].requestDate"),
        ),
        case("empty hooks", body(SMS, MRU, vec![]), e400, Some("hooks")),
        case(
            "missing hooks",
            serde_json::to_vec(&json!({"productName": SMS, "event": MRU})).unwrap(),
            e400,
            Some("hooks"),
        ),
        case(
            "hooks not an array",
            serde_json::to_vec(&json!({"productName": SMS, "event": MRU, "hooks": mru("bad-h3", |_| {})})).unwrap(),
            e400,
            Some("hooks"),
        ),
        case("a hook that is not an object", body(SMS, MRU, vec![json!("bad-h4")]), e400, Some("hooks[0]")),
        case(
            "hookId with a space",
            body(SMS, MRU, vec![mru("bad h5", |_| {})]),
            e400,
            Some("hooks[0].hookId"),
        ),
        case("empty hookId", body(SMS, MRU, vec![mru("", |_| {})]), e400, Some("hooks[0].hookId")),
        case(
            "hookId of 65 chars",
            body(SMS, MRU, vec![mru(&"h".repeat(65), |_| {})]),
            e400,
            Some("hooks[0].hookId"),
        ),
        case(
            "hookId not a string",
            body(SMS, MRU, vec![mru("x", |h| { h.insert("hookId".into(), json!(12345)); })]),
            e400,
            Some("hooks[0].hookId"),
        ),
        case(
            "second hook invalid",
            body(SMS, MRU, vec![mru("bad-i1", |_| {}), mru("bad-i2", |h| { h.insert("messageStatus".into(), json!("DONE")); })]),
            e400,
            Some("hooks[1].messageStatus"),
        ),
        case(
            "UNSUBSCRIBE without recipientNo",
            body(SMS, "UNSUBSCRIBE", vec![of(SMS, "UNSUBSCRIBE", "bad-u1", |h| { h.remove("recipientNo"); })]),
            e400,
            Some("hooks[0].recipientNo"),
        ),
        case(
            "UNSUBSCRIBE createdDateTime in the wrong format",
            body(SMS, "UNSUBSCRIBE", vec![of(SMS, "UNSUBSCRIBE", "bad-u2", |h| {
                h.insert("createdDateTime".into(), json!("2020-09-09 11:25:10"));
            })]),
            e400,
            Some("hooks[0].createdDateTime"),
        ),
        case(
            "CONVERSION_BLOCK countryCode as an integer",
            body(SMS, "CONVERSION_BLOCK", vec![of(SMS, "CONVERSION_BLOCK", "bad-c1", |h| {
                h.insert("countryCode".into(), json!(1));
            })]),
            e400,
            Some("hooks[0].countryCode"),
        ),
        case(
            "INTERNATIONAL_DELIVERY_RECEIPT dlrStatus outside its enum",
            body(SMS, "INTERNATIONAL_DELIVERY_RECEIPT", vec![of(SMS, "INTERNATIONAL_DELIVERY_RECEIPT", "bad-r1", |h| {
                h.insert("dlrStatus".into(), json!("SENT"));
            })]),
            e400,
            Some("hooks[0].dlrStatus"),
        ),
        case(
            "INTERNATIONAL_DELIVERY_RECEIPT without dlrStatus",
            body(SMS, "INTERNATIONAL_DELIVERY_RECEIPT", vec![of(SMS, "INTERNATIONAL_DELIVERY_RECEIPT", "bad-r2", |h| {
                h.remove("dlrStatus");
            })]),
            e400,
            Some("hooks[0].dlrStatus"),
        ),
        case(
            "TEMPLATE_STATUS_UPDATE status outside its enum",
            body(KAKAO, "TEMPLATE_STATUS_UPDATE", vec![of(KAKAO, "TEMPLATE_STATUS_UPDATE", "bad-k1", |h| {
                h.insert("status".into(), json!("TSC09"));
            })]),
            e400,
            Some("hooks[0].status"),
        ),
        case(
            "TEMPLATE_STATUS_UPDATE without senderKey",
            body(KAKAO, "TEMPLATE_STATUS_UPDATE", vec![of(KAKAO, "TEMPLATE_STATUS_UPDATE", "bad-k2", |h| {
                h.remove("senderKey");
            })]),
            e400,
            Some("hooks[0].senderKey"),
        ),
        case(
            "a comment status outside its enum",
            body(KAKAO, "TEMPLATE_STATUS_UPDATE", vec![of(KAKAO, "TEMPLATE_STATUS_UPDATE", "bad-k3", |h| {
                h["comments"][0]["status"] = json!("BAD");
            })]),
            e400,
            Some("hooks[0].comments[0].status"),
        ),
        case(
            "a comment createdAt in the wrong format",
            body(KAKAO, "TEMPLATE_STATUS_UPDATE", vec![of(KAKAO, "TEMPLATE_STATUS_UPDATE", "bad-k4", |h| {
                h["comments"][0]["createdAt"] = json!("2022/05/01");
            })]),
            e400,
            Some("hooks[0].comments[0].createdAt"),
        ),
        case(
            "a comment id that is neither string nor integer",
            body(KAKAO, "TEMPLATE_STATUS_UPDATE", vec![of(KAKAO, "TEMPLATE_STATUS_UPDATE", "bad-k5", |h| {
                h["comments"][0]["id"] = json!(true);
            })]),
            e400,
            Some("hooks[0].comments[0].id"),
        ),
        case(
            "kakaoMessageType outside its enum",
            body(KAKAO, MRU, vec![of(KAKAO, MRU, "bad-k6", |h| {
                h.insert("kakaoMessageType".into(), json!("SMS"));
            })]),
            e400,
            Some("hooks[0].kakaoMessageType"),
        ),
        case(
            "Kakao recipientSeq as a string",
            body(KAKAO, MRU, vec![of(KAKAO, MRU, "bad-k7", |h| {
                h.insert("recipientSeq".into(), json!("1"));
            })]),
            e400,
            Some("hooks[0].recipientSeq"),
        ),
        case(
            "isAddedChannel not a boolean",
            body(KAKAO, MRU, vec![of(KAKAO, MRU, "bad-k8", |h| {
                h.insert("isAddedChannel".into(), json!("yes"));
            })]),
            e400,
            Some("hooks[0].isAddedChannel"),
        ),
        case(
            "more hooks than --max-hooks-per-request 3",
            body(SMS, MRU, (0..4).map(|i| mru(&format!("bad-n{i}"), |_| {})).collect()),
            &[400, 413],
            Some("hooks"),
        ),
        case(
            "a hook over --max-hook-bytes 1024",
            body(SMS, MRU, vec![mru("bad-big-hook", |h| { h.insert("note".into(), json!("x".repeat(1200))); })]),
            &[400, 413],
            Some("hooks[0]"),
        ),
        case(
            "a body over --max-body-bytes 4096",
            body(SMS, MRU, vec![
                mru("bad-big-1", |h| { h.insert("note".into(), json!("y".repeat(900))); }),
                mru("bad-big-2", |h| { h.insert("note".into(), json!("y".repeat(900))); }),
                mru("bad-big-3", |h| { h.insert("note".into(), json!("y".repeat(900))); }),
            ])
            .into_iter()
            .chain(std::iter::repeat_n(b' ', 2000))
            .collect(),
            &[413],
            None,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_rejected_naming_the_field_and_store_nothing() {
    let rx = Receiver::start().await;
    let srv = Server::start_with(&[
        "--max-body-bytes",
        "4096",
        "--max-hooks-per-request",
        "3",
        "--max-hook-bytes",
        "1024",
    ])
    .await;
    let app = srv.create_app_key("bad-input").await;
    let sms_events = [
        "UNSUBSCRIBE",
        MRU,
        "CONVERSION_BLOCK",
        "INTERNATIONAL_DELIVERY_RECEIPT",
    ];
    let sms_cfg = srv
        .create_config(&app, config_body(SMS, &sms_events, &rx.url("/sms")))
        .await;
    let kakao_cfg = srv
        .create_config(
            &app,
            config_body(KAKAO, &["TEMPLATE_STATUS_UPDATE", MRU], &rx.url("/kakao")),
        )
        .await;

    let mut failures = Vec::new();
    for c in cases() {
        let len = c.body.len();
        let resp = srv
            .call(
                Method::POST,
                &app.path("/events"),
                &app.auth(),
                Body::Raw(c.content_type.map(str::to_string), c.body),
            )
            .await;
        if let Err(e) = check_error(&resp, c.statuses, c.field) {
            failures.push(format!("- {} ({len} bytes): {e}", c.name));
        }
    }

    // A valid sentinel, sent as the documents' producers send it.
    let sentinel =
        json!({"productName": SMS, "event": MRU, "hooks": [samples::sms_result("sentinel-ok")]});
    let resp = srv
        .call(
            Method::POST,
            &app.path("/events"),
            &app.auth(),
            Body::Raw(
                Some("application/json;charset=UTF-8".into()),
                serde_json::to_vec(&sentinel).unwrap(),
            ),
        )
        .await;
    srv.expect(
        resp,
        202,
        "a valid request with Content-Type application/json;charset=UTF-8",
    );
    srv.ok(rx
        .wait_for_hooks(&["sentinel-ok".to_string()], PROMPT)
        .await);
    srv.wait_for_hook_delivery(
        &app,
        &s(&sms_cfg, "webhookConfigId"),
        "sentinel-ok",
        "SUCCEEDED",
        PROMPT,
    )
    .await;

    let got: BTreeSet<String> = rx.hook_counts(None).into_keys().collect();
    if got != BTreeSet::from(["sentinel-ok".to_string()]) {
        failures.push(format!(
            "- the receiver got hooks of rejected requests: {got:?}"
        ));
    }
    let logged: BTreeSet<String> = srv
        .list_deliveries(&app, "")
        .await
        .iter()
        .flat_map(|d| str_array(&d["hookIds"], "hookIds"))
        .collect();
    if logged != BTreeSet::from(["sentinel-ok".to_string()]) {
        failures.push(format!(
            "- the delivery log holds hooks of rejected requests: {logged:?}"
        ));
    }
    let kakao_log = srv
        .list_deliveries(
            &app,
            &format!("webhookConfigId={}", s(&kakao_cfg, "webhookConfigId")),
        )
        .await;
    if !kakao_log.is_empty() {
        failures.push(format!("- the Kakao config has deliveries: {kakao_log:?}"));
    }
    if !failures.is_empty() {
        srv.fail(format!(
            "{} problem(s):\n{}",
            failures.len(),
            failures.join("\n")
        ));
    }
}

/// One invalid hook among valid ones: nothing of the request is stored (its valid hookIds are
/// accepted as new later), and the error names the first offending index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invalid_hook_rejects_the_whole_request() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("all-or-nothing").await;
    srv.create_config(&app, config_body(SMS, &[MRU], &rx.url("/aon")))
        .await;
    let valid: Vec<Value> = (0..5)
        .map(|i| samples::with_id(samples::hook(SMS, MRU, i), &format!("aon-{i}")))
        .collect();

    let mut hooks = valid.clone();
    hooks[3]["messageStatus"] = json!("DONE");
    let resp = srv
        .post(
            &app.auth(),
            &app.path("/events"),
            json!({"productName": SMS, "event": MRU, "hooks": hooks}),
        )
        .await;
    srv.ok(check_error(&resp, &[400], Some("hooks[3].messageStatus"))
        .map_err(|e| format!("invalid hooks[3]: {e}")));

    let mut hooks = valid.clone();
    hooks[1]["recipientSeq"] = json!("2");
    hooks[4].as_object_mut().unwrap().remove("requestId");
    let resp = srv
        .post(
            &app.auth(),
            &app.path("/events"),
            json!({"productName": SMS, "event": MRU, "hooks": hooks}),
        )
        .await;
    srv.ok(check_error(&resp, &[400], Some("hooks[1].recipientSeq"))
        .map_err(|e| format!("first offender hooks[1]: {e}")));

    // Had any valid hook of those requests been stored, idempotency would swallow it now.
    let ids = srv.ingest(&app, SMS, MRU, valid).await;
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    let counts = rx.hook_counts(None);
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}
