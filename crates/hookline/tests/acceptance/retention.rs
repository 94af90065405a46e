//! Issue 5, retention: expired history is purged in the background, so the store's size
//! plateaus under steady load, while open work is never touched.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

fn store_bytes(srv: &Server) -> u64 {
    ["hookline.db", "hookline.db-wal"]
        .iter()
        .map(|f| {
            std::fs::metadata(srv.data_dir().join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_history_is_purged_and_the_store_stops_growing() {
    let rx = Receiver::start().await;
    let down = Receiver::reserve();
    let srv = Server::start_with(&["--retention", "1s", "--retention-interval", "100ms"]).await;
    let app = srv.create_app_key("retention").await;
    let cfg = srv
        .create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/kept")))
        .await;
    let cfg_id = s(&cfg, "webhookConfigId");
    // A config whose receiver is down and whose retries are an hour away: its hooks stay queued or
    // in RETRYING deliveries, which retention must never delete.
    let mut stuck = config_body(SMS, &["CONVERSION_BLOCK"], &down.url("/down"));
    stuck["retrySchedule"] = json!(["1h"]);
    stuck["maxHooksPerRequest"] = json!(1000);
    let stuck = srv.create_config(&app, stuck).await;
    let stuck_id = s(&stuck, "webhookConfigId");
    // Its hooks are accepted once, long before every purge below.
    let stuck_ids = srv
        .ingest(
            &app,
            SMS,
            "CONVERSION_BLOCK",
            (0..300)
                .map(|i| samples::hook(SMS, "CONVERSION_BLOCK", i))
                .collect(),
        )
        .await;

    let mut sizes = Vec::new();
    for round in 0..8 {
        let hooks = (0..1000)
            .map(|i| {
                samples::with_id(
                    samples::hook(SMS, "UNSUBSCRIBE", i),
                    &format!("ret-{round}-{i}"),
                )
            })
            .collect();
        let ids = srv.ingest(&app, SMS, "UNSUBSCRIBE", hooks).await;
        srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);
        // Wait until this round's finished deliveries to the healthy config have expired.
        let deadline = Instant::now() + PROMPT;
        loop {
            let left = srv
                .list_deliveries(&app, &format!("webhookConfigId={cfg_id}&status=SUCCEEDED"))
                .await;
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                srv.fail(format!(
                    "round {round}: {} SUCCEEDED deliveries still there after {PROMPT:?}",
                    left.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sizes.push(store_bytes(&srv));
    }
    eprintln!("store bytes per round: {sizes:?}");
    // Without retention every round adds its 1000 hooks, deliveries and attempts for good (about
    // 270 KB a round even when only the hooks are kept).
    let early = sizes[1].max(sizes[2]);
    let late = sizes[3..].iter().copied().max().unwrap_or(0);
    assert!(
        late <= early + early / 10 + 128 * 1024,
        "the store keeps growing across rounds: {sizes:?} bytes"
    );

    // Open work survives: the stuck config still has every hook, queued or in open deliveries.
    let open = srv
        .list_deliveries(&app, &format!("webhookConfigId={stuck_id}"))
        .await;
    assert!(!open.is_empty(), "the stuck config has deliveries");
    for d in &open {
        let status = s(d, "status");
        assert!(
            status == "PENDING" || status == "RETRYING",
            "an open delivery was changed: {d}"
        );
        let detail = srv.get_delivery(&app, &s(d, "hooksId")).await;
        assert_eq!(
            detail["envelope"]["hooks"].as_array().map(Vec::len),
            detail["hookIds"].as_array().map(Vec::len),
            "an open delivery lost hooks: {detail}"
        );
    }
    // Once the receiver is back nothing of the stuck config is missing: its hooks were kept.
    down.listen();
    let (st, _) = srv
        .put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{stuck_id}")),
            {
                let mut body = config_body(SMS, &["CONVERSION_BLOCK"], &down.url("/down"));
                body["retrySchedule"] = json!(["100ms", "100ms", "100ms"]);
                body["maxHooksPerRequest"] = json!(1000);
                body
            },
        )
        .await;
    assert_eq!(st.as_u16(), 200);
    for d in &open {
        srv.post(
            &app.auth(),
            &app.path(&format!("/deliveries/{}/redeliver", s(d, "hooksId"))),
            json!({}),
        )
        .await;
    }
    srv.ok(down.wait_for_hooks(&stuck_ids, SLOW).await);
}
