//! Operational events (product `hookline`): an app key's config of product `hookline` hears when
//! another of its configs is DISABLED, recovers, or loses a delivery (FAILED); once each, never
//! about a `hookline` config itself, and not lost by a `kill -9` right after the change.

use serde_json::{Value, json};

use crate::support::server::Options;
use crate::support::*;

const HOOKLINE: &str = "hookline";
const ALL_EVENTS: [&str; 4] = [
    "WEBHOOK_CONFIG_FAILING",
    "WEBHOOK_CONFIG_DISABLED",
    "WEBHOOK_CONFIG_RECOVERED",
    "DELIVERY_FAILED",
];

/// The operational hooks the receiver got, as (event, hook), in arrival order; each envelope is
/// checked to be product `hookline` and to read as hookline-wire's typed model.
fn operational_hooks(rx: &Receiver) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for r in rx.requests() {
        let Some(envelope) = &r.json else { continue };
        assert_eq!(envelope["productName"], json!(HOOKLINE), "{envelope}");
        let parsed = hookline_wire::Envelope::parse(&r.body)
            .unwrap_or_else(|e| panic!("not an envelope: {e}: {envelope}"));
        parsed
            .typed_hooks()
            .unwrap_or_else(|e| panic!("not the typed model: {e}: {envelope}"));
        let event = envelope["event"].as_str().unwrap_or_default().to_owned();
        for hook in r.hooks() {
            out.push((event.clone(), hook));
        }
    }
    out
}

/// Waits until the receiver got an envelope of `event`.
async fn wait_for_event(srv: &Server, ops: &Receiver, event: &str) {
    srv.ok(ops
        .wait_until(PROMPT, event, |reqs| {
            reqs.iter()
                .any(|r| r.json.as_ref().is_some_and(|j| j["event"] == event))
        })
        .await);
}

fn of_event<'a>(hooks: &'a [(String, Value)], event: &str) -> Vec<&'a Value> {
    hooks
        .iter()
        .filter(|(e, _)| e == event)
        .map(|(_, h)| h)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_disabled_by_410_is_reported_once_then_its_recovery_and_never_a_hookline_config() {
    let rx = Receiver::start().await;
    let ops = Receiver::start().await;
    let gone_ops = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("ops-events").await;
    let ops_cfg = srv
        .create_config(&app, config_body(HOOKLINE, &ALL_EVENTS, &ops.url("/ops")))
        .await;
    // A second operational config whose receiver is gone: it is DISABLED in turn, and nothing
    // is ever produced about it.
    gone_ops.set_default_status(410);
    let gone_cfg = srv
        .create_config(
            &app,
            config_body(HOOKLINE, &ALL_EVENTS, &gone_ops.url("/gone")),
        )
        .await;
    let gone_id = s(&gone_cfg, "webhookConfigId");
    let body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/sms"));
    let cfg = srv.create_config(&app, body.clone()).await;
    let cfg_id = s(&cfg, "webhookConfigId");

    // Producers cannot send operational events.
    let resp = srv
        .post(
            &app.auth(),
            &app.path("/events"),
            json!({"productName": HOOKLINE, "event": "DELIVERY_FAILED",
                   "hooks": [{"webhookConfigId": cfg_id}]}),
        )
        .await;
    if let Err(e) = check_error(&resp, &[400], Some("productName")) {
        srv.fail(format!("ingest of product hookline: {e}"));
    }

    rx.respond_with(&[410]);
    srv.ingest(
        &app,
        SMS,
        "UNSUBSCRIBE",
        vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
    )
    .await;
    srv.wait_for_config(&app, &cfg_id, PROMPT, "410 to disable the config", |c| {
        c["health"]["state"] == json!("DISABLED")
    })
    .await;
    wait_for_event(&srv, &ops, "WEBHOOK_CONFIG_DISABLED").await;
    // The gone receiver got it too, and its config is DISABLED.
    srv.wait_for_config(
        &app,
        &gone_id,
        PROMPT,
        "410 to disable the ops config",
        |c| c["health"]["state"] == json!("DISABLED"),
    )
    .await;

    // Enabled again by its owner (PUT with enabled: the fresh health): RECOVERED.
    let resp = srv
        .put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{cfg_id}")),
            body,
        )
        .await;
    srv.expect(resp, 200, "re-enable");
    wait_for_event(&srv, &ops, "WEBHOOK_CONFIG_RECOVERED").await;

    let hooks = operational_hooks(&ops);
    let disabled = of_event(&hooks, "WEBHOOK_CONFIG_DISABLED");
    let about_cfg: Vec<&&Value> = disabled
        .iter()
        .filter(|h| h["webhookConfigId"] == json!(cfg_id))
        .collect();
    assert_eq!(about_cfg.len(), 1, "one DISABLED for the config: {hooks:?}");
    let hook = about_cfg[0];
    assert_eq!(hook["state"], json!("DISABLED"));
    assert_eq!(hook["productName"], json!(SMS));
    assert_eq!(hook["url"], json!(rx.url("/sms")));
    assert_eq!(hook["lastError"], json!("HTTP 410"));
    assert!(
        hook["reason"].as_str().is_some_and(|r| r.contains("410")),
        "{hook}"
    );
    assert!(
        hook["occurredAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let recovered = of_event(&hooks, "WEBHOOK_CONFIG_RECOVERED");
    assert_eq!(recovered.len(), 1, "{hooks:?}");
    assert_eq!(recovered[0]["webhookConfigId"], json!(cfg_id));
    assert_eq!(recovered[0]["state"], json!("HEALTHY"));
    // Nothing about either operational config, though one of them was DISABLED.
    for (event, hook) in &hooks {
        for id in [&gone_id, &s(&ops_cfg, "webhookConfigId")] {
            assert_ne!(
                hook["webhookConfigId"],
                json!(id),
                "{event} about a hookline config: {hook}"
            );
        }
    }
    // Each hook once (by hookId), signed and delivered like any other.
    let mut ids: Vec<&str> = hooks
        .iter()
        .filter_map(|(_, h)| h["hookId"].as_str())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "a hook delivered twice: {hooks:?}");
    assert!(
        ops.requests()
            .iter()
            .all(|r| r.header("webhook-signature").is_some()
                || r.header("x-toast-webhook-signature").is_some()),
        "operational events are signed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_whose_retries_run_out_is_reported_once_as_delivery_failed() {
    let rx = Receiver::start().await;
    let ops = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("ops-failed").await;
    srv.create_config(
        &app,
        config_body(HOOKLINE, &["DELIVERY_FAILED"], &ops.url("/ops")),
    )
    .await;
    rx.set_default_status(500);
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/down"));
    body["retrySchedule"] = json!(["100ms", "100ms"]);
    let cfg = srv.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let mut failed = Vec::new();
    for i in 0..2 {
        let ids = srv
            .ingest(
                &app,
                SMS,
                "UNSUBSCRIBE",
                vec![samples::hook(SMS, "UNSUBSCRIBE", i)],
            )
            .await;
        let delivery = srv
            .wait_for_hook_delivery(&app, &cfg_id, &ids[0], "FAILED", SLOW)
            .await;
        failed.push((ids[0].clone(), s(&delivery, "hooksId")));
    }
    srv.ok(ops
        .wait_until(PROMPT, "two DELIVERY_FAILED", |reqs| {
            reqs.iter().flat_map(|r| r.hooks()).count() >= 2
        })
        .await);
    let hooks = operational_hooks(&ops);
    let reported = of_event(&hooks, "DELIVERY_FAILED");
    assert_eq!(reported.len(), 2, "{hooks:?}");
    for (hook_id, hooks_id) in &failed {
        let hook = reported
            .iter()
            .find(|h| h["hooksId"] == json!(hooks_id))
            .unwrap_or_else(|| srv.fail(format!("no DELIVERY_FAILED for {hooks_id}: {hooks:?}")));
        assert_eq!(hook["webhookConfigId"], json!(cfg_id));
        assert_eq!(hook["status"], json!("FAILED"));
        assert_eq!(hook["hookIds"], json!([hook_id]));
        assert_eq!(hook["attempts"], json!(3), "the first try and two retries");
        assert_eq!(hook["lastError"], json!("HTTP 500"));
    }
}

/// The outbox is written with the change: a `kill -9` after the config is DISABLED and before
/// anything turned the event into a hook (held by a test-only switch) loses nothing; after the
/// restart it is delivered, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operational_event_survives_a_kill_9_right_after_the_change_and_arrives_once() {
    let rx = Receiver::start().await;
    let ops = Receiver::start().await;
    let held = vec![(
        "HOOKLINE_TEST_HOLD_OPERATIONAL_EVENTS".to_owned(),
        "1".to_owned(),
    )];
    let mut srv = Server::start_with_options(
        &[],
        Options {
            env: held.clone(),
            ..Options::default()
        },
    )
    .await;
    let app = srv.create_app_key("ops-crash").await;
    let ops_cfg = srv
        .create_config(
            &app,
            config_body(
                HOOKLINE,
                &[
                    "WEBHOOK_CONFIG_DISABLED",
                    "WEBHOOK_CONFIG_RECOVERED",
                    "DELIVERY_FAILED",
                ],
                &ops.url("/ops"),
            ),
        )
        .await;
    let ops_id = s(&ops_cfg, "webhookConfigId");
    rx.set_default_status(410);
    let body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/gone"));
    let cfg = srv.create_config(&app, body.clone()).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    srv.ingest(
        &app,
        SMS,
        "UNSUBSCRIBE",
        vec![samples::hook(SMS, "UNSUBSCRIBE", 0)],
    )
    .await;
    srv.wait_for_config(&app, &cfg_id, PROMPT, "410 to disable the config", |c| {
        c["health"]["state"] == json!("DISABLED")
    })
    .await;
    // And a delivery of another config whose retries run out: FAILED.
    let down = Receiver::start().await;
    down.set_default_status(500);
    let mut failing = config_body(SMS, &["CONVERSION_BLOCK"], &down.url("/down"));
    failing["retrySchedule"] = json!(["100ms"]);
    let failing_id = s(&srv.create_config(&app, failing).await, "webhookConfigId");
    let lost = srv
        .ingest(
            &app,
            SMS,
            "CONVERSION_BLOCK",
            vec![samples::hook(SMS, "CONVERSION_BLOCK", 0)],
        )
        .await;
    let failed = srv
        .wait_for_hook_delivery(&app, &failing_id, &lost[0], "FAILED", PROMPT)
        .await;
    srv.kill9().await;
    assert!(
        ops.requests().is_empty(),
        "nothing was sent before the kill"
    );

    srv.restart_with_env(Vec::new()).await;
    wait_for_event(&srv, &ops, "WEBHOOK_CONFIG_DISABLED").await;
    wait_for_event(&srv, &ops, "DELIVERY_FAILED").await;
    let hooks = operational_hooks(&ops);
    let disabled = of_event(&hooks, "WEBHOOK_CONFIG_DISABLED");
    assert_eq!(disabled.len(), 1, "{hooks:?}");
    assert_eq!(disabled[0]["webhookConfigId"], json!(cfg_id));
    let reported: Vec<_> = of_event(&hooks, "DELIVERY_FAILED")
        .into_iter()
        .filter(|h| h["hooksId"] == failed["hooksId"])
        .collect();
    assert_eq!(reported.len(), 1, "{hooks:?}");
    assert_eq!(reported[0]["hookIds"], json!(lost));

    // Once its delivery is recorded, killed and started again, then a later event (the config
    // enabled again: RECOVERED): the DISABLED hook, delivered and forgotten, is not produced a
    // second time.
    let hook_id = s(disabled[0], "hookId");
    srv.wait_for_hook_delivery(&app, &ops_id, &hook_id, "SUCCEEDED", PROMPT)
        .await;
    srv.kill9().await;
    srv.restart_with_env(Vec::new()).await;
    rx.set_default_status(200);
    let resp = srv
        .put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{cfg_id}")),
            body,
        )
        .await;
    srv.expect(resp, 200, "re-enable");
    wait_for_event(&srv, &ops, "WEBHOOK_CONFIG_RECOVERED").await;
    let after = operational_hooks(&ops);
    assert_eq!(
        of_event(&after, "WEBHOOK_CONFIG_DISABLED").len(),
        1,
        "{after:?}"
    );
}
