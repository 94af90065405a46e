//! Issue 6: `/metrics` in Prometheus text, the OpenAPI document and its docs page, and Standard
//! Webhooks secret rotation.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::*;

/// The value of the sample `name{labels}` (exact series text) in Prometheus text, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

async fn metrics_text(srv: &Server) -> String {
    let resp = reqwest::get(srv.url("/metrics"))
        .await
        .unwrap_or_else(|e| srv.fail(format!("GET /metrics: {e}")));
    assert_eq!(resp.status(), 200, "GET /metrics status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        ct.starts_with("text/plain"),
        "GET /metrics: Content-Type {ct:?}, want text/plain (Prometheus text format)"
    );
    resp.text()
        .await
        .unwrap_or_else(|e| srv.fail(format!("GET /metrics body: {e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_ingest_attempts_deliveries_and_configs() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("metrics").await;
    // First answer 500, then 200: one failed and one successful attempt.
    rx.respond_with(&[500]);
    let cfg = srv
        .create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/m")))
        .await;
    let mut paused = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/paused"));
    paused["enabled"] = json!(false);
    srv.create_config(&app, paused).await;

    let hooks: Vec<Value> = (0..3)
        .map(|i| samples::hook(SMS, "UNSUBSCRIBE", i))
        .collect();
    let ids = srv.ingest(&app, SMS, "UNSUBSCRIBE", hooks).await;
    // The same hooks again: acknowledged, not stored twice.
    let again: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", i), id))
        .collect();
    srv.ingest(&app, SMS, "UNSUBSCRIBE", again).await;
    srv.wait_for_hook_delivery(
        &app,
        &s(&cfg, "webhookConfigId"),
        &ids[0],
        "SUCCEEDED",
        PROMPT,
    )
    .await;

    let text = metrics_text(&srv).await;
    let want = |series: &str| {
        sample(&text, series).unwrap_or_else(|| {
            srv.fail(format!(
                "/metrics has no sample {series}; it answered:\n{text}"
            ))
        })
    };
    assert_eq!(
        want("hookline_hooks_ingested_total{event=\"UNSUBSCRIBE\"}"),
        3.0
    );
    assert_eq!(
        want("hookline_hooks_duplicate_total{event=\"UNSUBSCRIBE\"}"),
        3.0
    );
    assert_eq!(want("hookline_attempts_total{outcome=\"http_5xx\"}"), 1.0);
    assert_eq!(want("hookline_attempts_total{outcome=\"success\"}"), 1.0);
    assert_eq!(want("hookline_deliveries_total{status=\"RETRYING\"}"), 1.0);
    assert_eq!(want("hookline_deliveries_total{status=\"SUCCEEDED\"}"), 1.0);
    assert_eq!(
        want("hookline_attempt_duration_seconds_count{result=\"success\"}"),
        1.0
    );
    assert_eq!(
        want("hookline_attempt_duration_seconds_bucket{result=\"failure\",le=\"+Inf\"}"),
        1.0
    );
    assert_eq!(want("hookline_configs{state=\"HEALTHY\"}"), 1.0);
    assert_eq!(want("hookline_configs{state=\"PAUSED\"}"), 1.0);
    assert_eq!(want("hookline_configs{state=\"FAILING\"}"), 0.0);
    assert_eq!(want("hookline_queue_depth"), 0.0);
    assert_eq!(want("hookline_queue_oldest_age_seconds"), 0.0);
    assert_eq!(want("hookline_open_deliveries{status=\"PENDING\"}"), 0.0);
    // The hooks went out in one batch (then the retry): at least that claim took work.
    assert!(want("hookline_claims_total{outcome=\"batches\"}") >= 1.0);
    for name in [
        "hookline_hooks_ingested_total",
        "hookline_attempts_total",
        "hookline_attempt_duration_seconds",
        "hookline_deliveries_total",
        "hookline_claims_total",
        "hookline_queue_depth",
        "hookline_configs",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "/metrics has no # TYPE line for {name}:\n{text}"
        );
    }
}

/// Every route of docs/api.md, as (method, OpenAPI path).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/appkeys"),
    ("get", "/v1/appkeys"),
    ("post", "/v1/appkeys/{appKey}/secret-key/rotate"),
    ("post", "/v1/appkeys/{appKey}/webhook-configs"),
    ("get", "/v1/appkeys/{appKey}/webhook-configs"),
    (
        "get",
        "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}",
    ),
    (
        "put",
        "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}",
    ),
    (
        "patch",
        "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}",
    ),
    (
        "delete",
        "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}",
    ),
    (
        "post",
        "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}/test",
    ),
    ("post", "/v1/appkeys/{appKey}/events"),
    ("get", "/v1/appkeys/{appKey}/deliveries"),
    ("get", "/v1/appkeys/{appKey}/deliveries/{hooksId}"),
    (
        "post",
        "/v1/appkeys/{appKey}/deliveries/{hooksId}/redeliver",
    ),
    (
        "post",
        "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}/replay",
    ),
    (
        "post",
        "/v1/appkeys/{appKey}/webhook-configs/{webhookConfigId}/signing-secret/rotate",
    ),
    ("get", "/v1/appkeys/{appKey}/hooks/{hookId}"),
    ("get", "/v1/hooks/{hookId}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_every_route() {
    let srv = Server::start().await;
    let (status, doc) = srv.get(&Auth::None, "/openapi.json").await;
    assert_eq!(status, 200, "GET /openapi.json: {doc}");
    let version = doc["openapi"].as_str().unwrap_or("");
    assert!(version.starts_with("3."), "openapi version {version:?}");

    let paths = doc["paths"]
        .as_object()
        .unwrap_or_else(|| srv.fail(format!("no paths in {doc}")));
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    for (method, path) in ROUTES {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{} {path} is not in /openapi.json; it has {documented:?}",
            method.to_uppercase()
        );
        let op = &doc["paths"][path][method];
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| srv.fail(format!("{method} {path}: no responses")));
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{method} {path}: no success response in {responses:?}"
        );
        if path.starts_with("/v1/") {
            // 429: too many failed authentications, on every route that takes credentials.
            for code in ["400", "401", "429", "503"] {
                let body = &responses
                    .get(code)
                    .unwrap_or_else(|| srv.fail(format!("{method} {path}: no {code} response")))["content"]
                    ["application/json"]["schema"]["$ref"];
                assert_eq!(
                    body,
                    &json!("#/components/schemas/ErrorResponse"),
                    "{method} {path}: the {code} answer is not the error shape"
                );
            }
            assert!(
                op["security"].as_array().is_some_and(|s| !s.is_empty()),
                "{method} {path}: no security requirement"
            );
        }
        if path.starts_with("/v1/appkeys/{appKey}") {
            for code in ["403", "404"] {
                assert!(
                    responses.contains_key(code),
                    "{method} {path}: no {code} response"
                );
            }
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["secretKey"]["type"], "apiKey");
    assert_eq!(schemes["secretKey"]["in"], "header");
    assert_eq!(schemes["secretKey"]["name"], "X-Secret-Key");
    assert_eq!(schemes["adminToken"]["type"], "http");
    assert_eq!(schemes["adminToken"]["scheme"], "bearer");
    // The config schema shows health and hides the secret.
    let config = &doc["components"]["schemas"]["ConfigView"]["properties"];
    assert!(config.get("health").is_some(), "ConfigView: {config}");
    assert!(
        config.get("signingSecret").is_none(),
        "ConfigView: {config}"
    );

    // The browsable docs are served by hookline itself.
    let resp = reqwest::get(srv.url("/docs/"))
        .await
        .unwrap_or_else(|e| srv.fail(format!("GET /docs/: {e}")));
    assert_eq!(resp.status(), 200, "GET /docs/");
    let html = resp.text().await.unwrap_or_default();
    assert!(
        html.contains("swagger"),
        "GET /docs/ is not Swagger UI: {html}"
    );
}

fn signatures_verifying(r: &Recorded, key: &[u8]) -> usize {
    let (Some(id), Some(ts), Some(sigs)) = (
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
    ) else {
        return 0;
    };
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    let want = format!(
        "v1,{}",
        crypto::base64_encode(&crypto::hmac_sha256(key, &signed))
    );
    sigs.split(' ').filter(|s| *s == want).count()
}

/// The key of a `whsec_<base64>` signing secret.
fn secret_key(secret: &str) -> Vec<u8> {
    use base64::Engine;
    let b64 = secret
        .strip_prefix("whsec_")
        .unwrap_or_else(|| panic!("not a whsec_ secret: {secret:?}"));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("{secret:?}: {e}"))
}

/// The previous signing secret signs only until its grace period ends: every request signed
/// (by its `webhook-timestamp`) a second or more before `previousSigningSecretExpiresAt` carries
/// both signatures, every one signed a second or more after carries the new key's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_signing_secret_stops_when_its_grace_ends() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("rotation-end").await;
    let old_key = [3u8; 32];
    let new_key = [4u8; 32];
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/grace"));
    body["signingSecret"] = json!(format!("whsec_{}", crypto::base64_encode(&old_key)));
    let cfg = srv.create_config(&app, body).await;
    let id = s(&cfg, "webhookConfigId");
    let resp = srv
        .post(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{id}/signing-secret/rotate")),
            json!({
                "signingSecret": format!("whsec_{}", crypto::base64_encode(&new_key)),
                // Long enough that the first hook is signed within it (a whole second before
                // its end: timestamps are in seconds) however slow the machine.
                "gracePeriod": "5s",
            }),
        )
        .await;
    let body = srv.expect(resp, 200, "rotate with a 5 s grace");
    let expires_at = chrono::DateTime::parse_from_rfc3339(&s(
        &body["webhookConfig"],
        "previousSigningSecretExpiresAt",
    ))
    .expect("RFC 3339")
    .timestamp_millis();

    // Hooks one after the other, each awaited, until one is signed well after the expiry.
    let (mut during, mut after) = (0, 0);
    for i in 0..200 {
        let ids = srv
            .ingest(
                &app,
                SMS,
                "UNSUBSCRIBE",
                vec![samples::hook(SMS, "UNSUBSCRIBE", i)],
            )
            .await;
        let reqs = srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
        let r = reqs
            .iter()
            .find(|r| r.hook_ids().contains(&ids[0]))
            .expect("arrived");
        let ts: i64 = r
            .header("webhook-timestamp")
            .and_then(|t| t.parse().ok())
            .expect("webhook-timestamp");
        let sigs = r.header("webhook-signature").unwrap_or("");
        if (ts + 1) * 1000 <= expires_at {
            during += 1;
            assert_eq!(sigs.split(' ').count(), 2, "within the grace: {sigs:?}");
            assert_eq!(signatures_verifying(r, &old_key), 1, "{sigs:?}");
            assert_eq!(signatures_verifying(r, &new_key), 1, "{sigs:?}");
        } else if ts * 1000 >= expires_at + 1000 {
            after += 1;
            assert_eq!(
                sigs.split(' ').count(),
                1,
                "signed at {ts}, after the grace ended at {expires_at} ms: {sigs:?}"
            );
            assert_eq!(signatures_verifying(r, &new_key), 1, "{sigs:?}");
            assert_eq!(signatures_verifying(r, &old_key), 0, "{sigs:?}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(during >= 1, "no request was signed within the grace");
    assert_eq!(after, 1, "no request was signed after the grace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_secret_rotation_signs_with_both_keys_during_the_grace_period() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("rotation").await;
    let old_key = [7u8; 32];
    let new_key = [9u8; 32];
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/r"));
    body["signingSecret"] = json!(format!("whsec_{}", crypto::base64_encode(&old_key)));
    let cfg = srv.create_config(&app, body).await;
    let id = s(&cfg, "webhookConfigId");
    let rotate = app.path(&format!("/webhook-configs/{id}/signing-secret/rotate"));

    let new_secret = format!("whsec_{}", crypto::base64_encode(&new_key));
    let resp = srv
        .post(
            &app.auth(),
            &rotate,
            json!({"signingSecret": new_secret, "gracePeriod": "1h"}),
        )
        .await;
    let body = srv.expect(resp, 200, "rotate signing secret");
    assert_eq!(body["signingSecret"], json!(new_secret));
    let cfg = &body["webhookConfig"];
    assert!(
        cfg["previousSigningSecretExpiresAt"].is_string(),
        "the old secret's expiry is shown: {cfg}"
    );
    assert!(
        !cfg.to_string().contains("whsec_"),
        "secrets are write-only: {cfg}"
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
    let sigs = r.header("webhook-signature").unwrap_or("");
    assert_eq!(sigs.split(' ').count(), 2, "two signatures: {sigs:?}");
    assert_eq!(signatures_verifying(r, &old_key), 1, "old key: {sigs:?}");
    assert_eq!(signatures_verifying(r, &new_key), 1, "new key: {sigs:?}");

    // A rotation with no grace period: only the new (generated) key signs.
    let resp = srv
        .post(&app.auth(), &rotate, json!({"gracePeriod": "0s"}))
        .await;
    let body = srv.expect(resp, 200, "rotate with no grace period");
    let generated = s(&body, "signingSecret");
    assert!(generated.starts_with("whsec_"), "generated {generated:?}");
    assert!(body["webhookConfig"]["previousSigningSecretExpiresAt"].is_null());
    let ids = srv
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::hook(SMS, "UNSUBSCRIBE", 1)],
        )
        .await;
    let reqs = srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
    let r = reqs
        .iter()
        .find(|r| r.hook_ids().contains(&ids[0]))
        .unwrap_or_else(|| srv.fail("the second hook's request is missing"));
    let sigs = r.header("webhook-signature").unwrap_or("");
    assert_eq!(sigs.split(' ').count(), 1, "one signature: {sigs:?}");
    assert_eq!(signatures_verifying(r, &new_key), 0, "{sigs:?}");
    assert_eq!(
        signatures_verifying(r, &secret_key(&generated)),
        1,
        "the generated secret signs: {sigs:?}"
    );

    // Bad input names the field.
    let resp = srv
        .post(&app.auth(), &rotate, json!({"gracePeriod": "forever"}))
        .await;
    srv.ok(check_error(&resp, &[400], Some("gracePeriod")));
    let resp = srv
        .post(&app.auth(), &rotate, json!({"signingSecret": "nope"}))
        .await;
    srv.ok(check_error(&resp, &[400], Some("signingSecret")));
}

/// The value of the first series of `name` whose labels include every `(label, value)` given.
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// `--metrics-app-key-label`: queue depth, ingested hooks, attempts and deliveries per app key,
/// so "which customer is backed up?" has an answer; without the flag no such series exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_tenant_metrics_show_which_app_key_is_backed_up() {
    let stuck_rx = Receiver::start().await;
    stuck_rx.set_hang(true);
    let fine_rx = Receiver::start().await;
    let srv = Server::start_with(&["--metrics-app-key-label"]).await;
    let stuck = srv.create_app_key("stuck").await;
    let fine = srv.create_app_key("fine").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &stuck_rx.url("/s"));
    body["maxHooksPerRequest"] = json!(1);
    body["maxRequestsInFlight"] = json!(1);
    // Its one request stays in flight however slow the machine: no timeout ends it meanwhile.
    body["timeoutMs"] = json!(60_000);
    srv.create_config(&stuck, body).await;
    srv.create_config(
        &fine,
        config_body(SMS, &["UNSUBSCRIBE"], &fine_rx.url("/f")),
    )
    .await;
    let three = || {
        (0..3)
            .map(|i| samples::hook(SMS, "UNSUBSCRIBE", i))
            .collect::<Vec<_>>()
    };
    srv.ingest(&stuck, SMS, "UNSUBSCRIBE", three()).await;
    let delivered = srv.ingest(&fine, SMS, "UNSUBSCRIBE", three()).await;
    srv.ok(fine_rx.wait_for_hooks(&delivered, PROMPT).await);
    srv.ok(stuck_rx.wait_for_requests(1, PROMPT).await);

    // One hook of the stuck tenant is in flight (its receiver never answers), two wait.
    let deadline = tokio::time::Instant::now() + PROMPT;
    let text = loop {
        let text = metrics_text(&srv).await;
        let fine_attempts = series(
            &text,
            "hookline_app_key_attempts_total",
            &[("app_key", &fine.app_key), ("outcome", "success")],
        );
        if fine_attempts.is_some() {
            break text;
        }
        if tokio::time::Instant::now() > deadline {
            srv.fail(format!("no per-tenant attempts in:\n{text}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let depth = |app: &App| {
        series(
            &text,
            "hookline_app_key_queue_depth",
            &[("app_key", &app.app_key)],
        )
    };
    assert_eq!(depth(&stuck), Some(2.0), "{text}");
    assert_eq!(
        depth(&fine),
        None,
        "an app key with nothing queued has no queue series"
    );
    assert!(
        series(
            &text,
            "hookline_app_key_queue_oldest_age_seconds",
            &[("app_key", &stuck.app_key)]
        )
        .is_some_and(|age| age >= 0.0),
        "{text}"
    );
    for app in [&stuck, &fine] {
        assert_eq!(
            series(
                &text,
                "hookline_app_key_hooks_ingested_total",
                &[("app_key", &app.app_key)]
            ),
            Some(3.0),
            "{text}"
        );
    }
    assert_eq!(
        series(
            &text,
            "hookline_app_key_deliveries_total",
            &[("app_key", &fine.app_key), ("status", "SUCCEEDED")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            "hookline_app_key_attempts_total",
            &[("app_key", &stuck.app_key)]
        ),
        None,
        "no attempt of the stuck tenant has ended"
    );

    // Off by default: the same traffic leaves no per-tenant series.
    let plain = Server::start().await;
    let app = plain.create_app_key("plain").await;
    plain.ingest(&app, SMS, "UNSUBSCRIBE", three()).await;
    let text = metrics_text(&plain).await;
    assert!(!text.contains("hookline_app_key_"), "{text}");
    assert!(text.contains("hookline_hooks_ingested_total"), "{text}");
}
