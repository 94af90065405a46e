//! Criterion 1: every event arrives on the wire exactly as docs/wire-format.md says.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::support::*;

const ENVELOPE_KEYS: [&str; 6] = [
    "hooksId",
    "webhookConfigId",
    "productName",
    "appKey",
    "event",
    "hooks",
];
const SIGNATURE: &str = "s1g-Ab:cd/ef+gh== verbatim";

/// Checks one request against the wire format: method, headers, envelope fields and their order.
fn check_wire_request(
    r: &Recorded,
    path: &str,
    config_id: &str,
    app_key: &str,
    product: &str,
    event: &str,
    signature: &str,
) -> Result<(), String> {
    let ctx = r.summary();
    let err = |m: String| Err(format!("{m}\n  in request {ctx}"));
    if r.method != "POST" {
        return err(format!("method {}, want POST", r.method));
    }
    if r.path != path {
        return err(format!("path {}, want {path}", r.path));
    }
    if r.header("content-type") != Some("application/json;charset=UTF-8") {
        return err(format!(
            "Content-Type {:?}, want \"application/json;charset=UTF-8\"",
            r.header("content-type")
        ));
    }
    if r.header("x-toast-webhook-signature") != Some(signature)
        || r.header_count("x-toast-webhook-signature") != 1
    {
        return err(format!(
            "X-Toast-Webhook-Signature {:?}, want exactly one, {signature:?}",
            r.header("x-toast-webhook-signature")
        ));
    }
    let ua = format!("hookline/{}", env!("CARGO_PKG_VERSION"));
    if r.header("user-agent") != Some(ua.as_str()) {
        return err(format!(
            "User-Agent {:?}, want {ua:?}",
            r.header("user-agent")
        ));
    }
    match r.header("content-length").map(str::parse::<usize>) {
        Some(Ok(n)) if n == r.body.len() => {}
        other => {
            return err(format!(
                "Content-Length {other:?}, body is {} bytes",
                r.body.len()
            ));
        }
    }
    if r.header("transfer-encoding").is_some() {
        return err(
            "body sent chunked (Transfer-Encoding present), want whole with Content-Length".into(),
        );
    }
    if r.header("webhook-signature").is_some() {
        return err("webhook-signature sent for a config without a signingSecret".into());
    }
    if r.header("x-secret-key").is_some() {
        return err("an X-Secret-Key header was sent to the receiver".into());
    }
    if r.header("x-hookline-test").is_some() {
        return err("a real delivery was marked X-Hookline-Test".into());
    }
    let Some(j) = &r.json else {
        return err(format!(
            "body is not JSON: {}",
            String::from_utf8_lossy(&r.body)
        ));
    };
    match top_level_keys(&r.body) {
        Ok(keys) if keys == ENVELOPE_KEYS => {}
        Ok(keys) => {
            return err(format!(
                "envelope keys {keys:?}, want exactly {ENVELOPE_KEYS:?} in that order"
            ));
        }
        Err(e) => return err(format!("envelope is not a JSON object: {e}")),
    }
    if let Err(e) = check_id_shape(j["hooksId"].as_str().unwrap_or("")) {
        return err(format!("hooksId: {e}"));
    }
    for (k, want) in [
        ("webhookConfigId", config_id),
        ("productName", product),
        ("appKey", app_key),
        ("event", event),
    ] {
        if j[k] != json!(want) {
            return err(format!("envelope {k} = {}, want {want:?}", j[k]));
        }
    }
    let Some(hooks) = j["hooks"].as_array() else {
        return err("hooks is not an array".into());
    };
    if hooks.is_empty() {
        return err("hooks is empty".into());
    }
    for h in hooks {
        if !h.is_object() || !h["hookId"].is_string() {
            return err(format!("hook without a string hookId: {h}"));
        }
    }
    Ok(())
}

/// Ingests the event's two wire-case hooks and checks everything that arrives and what the delivery
/// log recorded.
async fn check_event(product: &str, ingest_as: &str, event: &str) {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("wire").await;
    let mut body = config_body(product, &[event], &rx.url("/hook"));
    body["signature"] = json!(SIGNATURE);
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");

    let (input, expected) = samples::wire_case(product, event);
    let given_id = s(&input[0], "hookId");
    let ids = srv.ingest(&app, ingest_as, event, input).await;
    assert_eq!(
        ids[0], given_id,
        "the producer-given hookId is kept in the ingest answer"
    );
    assert_id_shape(&ids[1], "a generated hookId");
    assert_ne!(ids[0], ids[1]);

    let reqs = srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    let mut delivered: HashMap<String, Vec<Value>> = HashMap::new();
    let mut problems = Vec::new();
    for r in &reqs {
        if let Err(e) =
            check_wire_request(r, "/hook", &cfg_id, &app.app_key, product, event, SIGNATURE)
        {
            problems.push(e);
        }
        let raw = String::from_utf8_lossy(&r.body);
        if raw.contains("recipientGropuingKey")
            || raw.contains("\"_link\"")
            || raw.contains("senderGroupKey")
        {
            problems.push(format!("a misspelled alias was delivered as is: {raw}"));
        }
        for h in r.hooks() {
            let id = h["hookId"].as_str().unwrap_or_default().to_string();
            delivered.entry(id).or_default().push(h);
        }
    }
    if !problems.is_empty() {
        srv.fail(problems.join("\n"));
    }
    for (i, exp) in expected.into_iter().enumerate() {
        let mut exp = exp;
        exp["hookId"] = json!(ids[i]);
        let got = &delivered[&ids[i]];
        assert_eq!(
            got.len(),
            1,
            "hook {} arrived {} times to a receiver that answered 200",
            ids[i],
            got.len()
        );
        assert_eq!(
            got[0], exp,
            "hook {i} ({}) must arrive with its fields as ingested (aliases normalised, unknown fields kept)",
            ids[i]
        );
    }

    // The delivery log: the envelope as sent, one successful attempt.
    for r in &reqs {
        let hooks_id = r.hooks_id().unwrap();
        let d = srv
            .wait_for_delivery_status(&app, &hooks_id, "SUCCEEDED", PROMPT)
            .await;
        assert_eq!(d["hooksId"], json!(hooks_id));
        assert_eq!(d["webhookConfigId"], json!(cfg_id));
        assert_eq!(d["event"], json!(event));
        assert_eq!(
            str_array(&d["hookIds"], "delivery.hookIds"),
            r.hook_ids(),
            "delivery.hookIds = the hooks of the envelope, in order"
        );
        assert_eq!(
            Some(&d["envelope"]),
            r.json.as_ref(),
            "the delivery log's envelope must equal the body the receiver got"
        );
        let attempts = d["attempts"].as_array().expect("attempts array");
        assert_eq!(attempts.len(), 1, "one attempt: {d:#}");
        assert_eq!(attempts[0]["number"], json!(1));
        assert_eq!(attempts[0]["statusCode"], json!(200));
        assert_eq!(attempts[0]["errorKind"], Value::Null);
        assert_eq!(attempts[0]["responseBody"], json!("{\"received\":true}"));
        assert_eq!(d["attemptCount"], json!(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kakao_template_status_update_arrives_as_specified() {
    check_event(KAKAO, "kakaotalk bizmessage", "TEMPLATE_STATUS_UPDATE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kakao_message_result_update_arrives_as_specified() {
    check_event(KAKAO, "KAKAOTALK BIZMESSAGE", "MESSAGE_RESULT_UPDATE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_unsubscribe_arrives_as_specified() {
    check_event(SMS, "Sms", "UNSUBSCRIBE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_message_result_update_arrives_with_aliases_normalised() {
    check_event(SMS, "sms", "MESSAGE_RESULT_UPDATE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_conversion_block_arrives_as_specified() {
    check_event(SMS, "SMS", "CONVERSION_BLOCK").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_international_delivery_receipt_arrives_as_specified() {
    check_event(SMS, "Sms", "INTERNATIONAL_DELIVERY_RECEIPT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_unsubscribe_arrives_as_specified() {
    check_event(EMAIL, "email", "UNSUBSCRIBE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_message_result_update_arrives_with_aliases_normalised() {
    check_event(EMAIL, "EMAIL", "MESSAGE_RESULT_UPDATE").await;
}

/// A config with a signing secret also sends verifiable Standard Webhooks headers, and the secret is
/// never returned by the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_secret_adds_standard_webhooks_headers() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("stdwh").await;
    let key: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(7).wrapping_add(3))
        .collect();
    let secret = format!("whsec_{}", crypto::base64_encode(&key));
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/std"));
    body["signingSecret"] = json!(secret);
    let cfg = srv.create_config(&app, body).await;
    assert!(
        !cfg.to_string().contains(&secret) && cfg.get("signingSecret").is_none_or(Value::is_null),
        "signingSecret is write-only: {cfg}"
    );
    let got = srv.get_config(&app, &s(&cfg, "webhookConfigId")).await;
    assert!(
        !got.to_string().contains(&secret),
        "signingSecret is write-only: {got}"
    );

    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
        )
        .await;
    let reqs = srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    let r = &reqs[0];
    assert_eq!(
        r.header("x-toast-webhook-signature"),
        Some("sig-1"),
        "the static signature is still sent"
    );
    let id = r.header("webhook-id").expect("webhook-id header");
    assert_eq!(Some(id.to_string()), r.hooks_id(), "webhook-id = hooksId");
    let ts = fresh_timestamp(r);
    check_signed(r, &key, ts);
}

/// The request's `webhook-timestamp`, checked to be the time it was sent: within a few seconds
/// of its arrival (verifiers reject more than 5 minutes off).
fn fresh_timestamp(r: &Recorded) -> i64 {
    let ts = r
        .header("webhook-timestamp")
        .expect("webhook-timestamp header");
    let ts: i64 = ts
        .parse()
        .unwrap_or_else(|_| panic!("webhook-timestamp {ts:?} is not unix seconds"));
    let arrived = r
        .received_at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64;
    assert!(
        (arrived - 5..=arrived).contains(&ts),
        "webhook-timestamp {ts} is not when the request was sent (it arrived at {arrived})"
    );
    ts
}

/// Checks that `webhook-signature` holds the HMAC-SHA256 of `key` over id.timestamp.body.
fn check_signed(r: &Recorded, key: &[u8], ts: i64) {
    let id = r.header("webhook-id").expect("webhook-id header");
    let sigs = r
        .header("webhook-signature")
        .expect("webhook-signature header");
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    let want = format!(
        "v1,{}",
        crypto::base64_encode(&crypto::hmac_sha256(key, &signed))
    );
    assert!(
        sigs.split(' ').any(|s| s == want),
        "webhook-signature {sigs:?} does not contain {want:?} (HMAC-SHA256 over id.timestamp.body)"
    );
}

/// Every attempt is signed when it is made: a retry seconds later carries its own, later
/// `webhook-timestamp` (a verifier rejects a timestamp more than 5 minutes old, so a retry hours
/// later signed with the first attempt's time would be refused), the same `webhook-id`, and a
/// signature over its own timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_retry_is_signed_with_the_time_it_is_sent() {
    let rx = Receiver::start().await;
    rx.respond_with(&[500, 500]);
    let srv = Server::start().await;
    let app = srv.create_app_key("stdwh-retry").await;
    let key = [5u8; 32];
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/retried"));
    body["signingSecret"] = json!(format!("whsec_{}", crypto::base64_encode(&key)));
    // At least 2.4 s between attempts (with the jitter): a stale timestamp is 2 s behind or more.
    body["retrySchedule"] = json!(["3s", "3s"]);
    srv.create_config(&app, body).await;
    srv.ingest(
        &app,
        SMS,
        "UNSUBSCRIBE",
        vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
    )
    .await;
    let reqs = srv.ok(rx.wait_for_requests(3, SLOW).await);
    let hooks_id = reqs[0].hooks_id().expect("hooksId");
    let d = srv
        .wait_for_delivery_status(&app, &hooks_id, "SUCCEEDED", PROMPT)
        .await;
    let mut previous: Option<i64> = None;
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(
            r.header("webhook-id"),
            Some(hooks_id.as_str()),
            "attempt {i}"
        );
        let ts = fresh_timestamp(r);
        check_signed(r, &key, ts);
        // The attempt's own start, as the delivery log recorded it.
        let started = chrono::DateTime::parse_from_rfc3339(
            d["attempts"][i]["startedAt"].as_str().expect("startedAt"),
        )
        .expect("RFC 3339")
        .timestamp();
        assert!(
            (started..=started + 2).contains(&ts),
            "attempt {i}: webhook-timestamp {ts}, but the attempt started at {started}: {d:#}"
        );
        if let Some(before) = previous {
            assert!(
                ts >= before + 2,
                "attempt {i} is signed at {ts}, hardly after the one before ({before})"
            );
        }
        previous = Some(ts);
    }
}
