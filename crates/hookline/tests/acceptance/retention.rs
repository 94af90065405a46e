//! Issue 5, retention: expired history is purged in the background, so the store's size
//! plateaus under steady load, while open work is never touched.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// The store's size: the SQLite files, or on PostgreSQL the tables of the store's database with
/// their indexes and TOAST (`pg_total_relation_size`).
async fn store_bytes(srv: &Server) -> u64 {
    if srv.database_url().is_none() {
        let bytes: u64 = ["hookline.db", "hookline.db-wal"]
            .iter()
            .map(|f| {
                std::fs::metadata(srv.data_dir().join(f))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum();
        assert!(bytes > 0, "no SQLite files in {}", srv.data_dir().display());
        return bytes;
    }
    // What autovacuum does a minute later (its default nap), done now: the space of deleted rows
    // becomes reusable. Without retention there is nothing to reuse and the size grows anyway.
    srv.store_query_strings("VACUUM", &[]).await;
    let rows = srv
        .store_query_strings(
            "SELECT SUM(pg_total_relation_size(c.oid))::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind = 'r'",
            &[],
        )
        .await;
    match rows.as_slice() {
        [row] => match row.as_slice() {
            [Some(bytes)] => bytes.parse().expect("a size in bytes"),
            _ => srv.fail(format!("no size: {rows:?}")),
        },
        _ => srv.fail(format!("no size: {rows:?}")),
    }
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
        sizes.push(store_bytes(&srv).await);
    }
    eprintln!("store bytes per round: {sizes:?}");
    // Without retention every round adds its 1000 hooks, deliveries and attempts for good (about
    // 270 KB a round on SQLite even when only the hooks are kept, 800 KB on PostgreSQL), so five
    // more rounds grow it far beyond this margin (which PostgreSQL's page reuse needs: its size
    // wanders by a few hundred KB from round to round).
    let early = sizes[1].max(sizes[2]);
    let late = sizes[3..].iter().copied().max().unwrap_or(0);
    assert!(
        late <= early + early / 4 + 256 * 1024,
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

/// Retention never deletes hooks still queued for a config that is paused (`enabled: false`) or
/// FAILING, even once the same hooks' deliveries to a healthy config expired and were purged:
/// when the configs send again, every hook arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_queued_hooks_of_paused_and_failing_configs() {
    let witness = Receiver::start().await;
    let paused_rx = Receiver::start().await;
    paused_rx.set_hold(true);
    let failing_rx = Receiver::reserve();
    let srv = Server::start_with(&[
        "--retention",
        "1s",
        "--retention-interval",
        "100ms",
        "--failing-after",
        "1",
    ])
    .await;
    let app = srv.create_app_key("retention-queued").await;
    let w = srv
        .create_config(
            &app,
            config_body(
                SMS,
                &["UNSUBSCRIBE", "CONVERSION_BLOCK"],
                &witness.url("/w"),
            ),
        )
        .await;
    let w_id = s(&w, "webhookConfigId");
    let one_at_a_time = |url: &str, schedule: Value| {
        let mut body = config_body(SMS, &["UNSUBSCRIBE"], url);
        body["maxHooksPerRequest"] = json!(1);
        body["maxRequestsInFlight"] = json!(1);
        body["retrySchedule"] = schedule;
        body
    };
    let paused_body = one_at_a_time(&paused_rx.url("/p"), json!(["100ms"]));
    let p = srv.create_config(&app, paused_body.clone()).await;
    let p_id = s(&p, "webhookConfigId");
    // Refused connections: FAILING after the first, then one new batch per 5 s at most.
    let f = srv
        .create_config(&app, one_at_a_time(&failing_rx.url("/f"), json!(["5s"])))
        .await;
    let f_id = s(&f, "webhookConfigId");

    let hooks: Vec<Value> = (0..20)
        .map(|i| samples::with_id(samples::hook(SMS, "UNSUBSCRIBE", i), &format!("keep-{i}")))
        .collect();
    let ids = srv.ingest(&app, SMS, "UNSUBSCRIBE", hooks.clone()).await;
    // The paused config has one request in flight (held) and the rest queued; pause it.
    srv.ok(paused_rx.wait_for_requests(1, PROMPT).await);
    let mut off = paused_body.clone();
    off["enabled"] = json!(false);
    srv.expect(
        srv.put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{p_id}")),
            off,
        )
        .await,
        200,
        "pause the config",
    );
    srv.wait_for_config(&app, &f_id, PROMPT, "the failing config FAILING", |c| {
        c["health"]["state"] == json!("FAILING")
    })
    .await;

    // Retention runs past these hooks: the healthy config's deliveries of them are purged, and
    // then those of a hook ingested after that (for the witness alone), so whole purge passes
    // have run with a cutoff past the queued hooks.
    let w_log = format!("webhookConfigId={w_id}");
    srv.ok(witness.wait_for_hooks(&ids, PROMPT).await);
    srv.wait_for_deliveries(&app, &w_log, PROMPT, "the witness's history purged", |l| {
        l.is_empty()
    })
    .await;
    let more = srv
        .ingest(
            &app,
            SMS,
            "CONVERSION_BLOCK",
            vec![samples::hook(SMS, "CONVERSION_BLOCK", 0)],
        )
        .await;
    srv.ok(witness.wait_for_hooks(&more, PROMPT).await);
    srv.wait_for_deliveries(&app, &w_log, PROMPT, "the later history purged", |l| {
        l.is_empty()
    })
    .await;
    let q = format!("webhookConfigId={f_id}");
    let f_open = srv.list_deliveries(&app, &q).await;
    assert!(
        f_open.len() < ids.len(),
        "the FAILING config kept hooks queued: {} deliveries",
        f_open.len()
    );

    // Both configs send again: every hook arrives at each, with its content.
    paused_rx.set_hold(false);
    let on = srv
        .put(
            &app.auth(),
            &app.path(&format!("/webhook-configs/{p_id}")),
            paused_body,
        )
        .await;
    srv.expect(on, 200, "enable the paused config");
    failing_rx.listen();
    for (rx, name) in [(&paused_rx, "paused"), (&failing_rx, "failing")] {
        let reqs = srv.ok(rx.wait_for_hooks(&ids, SLOW).await);
        for hook in &hooks {
            let id = s(hook, "hookId");
            let got = reqs
                .iter()
                .flat_map(|r| r.hooks())
                .find(|h| h["hookId"] == json!(id))
                .unwrap_or_else(|| panic!("{name}: {id} missing"));
            assert_eq!(&got, hook, "{name}: {id} arrived changed");
        }
    }
}
