//! Nodes whose clocks are wrong (a test-only offset of the whole process, ±10 minutes): retries a
//! node scheduled are due for the others at the right moment, not ten minutes late or early, and
//! the cluster still delivers every hook once.

use std::time::Duration;

use serde_json::json;

use crate::support::server::{Options, scratch_postgres_database};
use crate::support::*;

const TEN_MINUTES_MS: i64 = 600_000;
const HOOKS: usize = 20;
const MORE_HOOKS: usize = 200;

fn skewed(db: &str, offset_ms: i64) -> Options {
    Options {
        database_url: Some(db.to_owned()),
        env: vec![(
            "HOOKLINE_TEST_CLOCK_OFFSET_MS".to_owned(),
            offset_ms.to_string(),
        )],
        ..Options::default()
    }
}

fn hooks(prefix: &str, n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            samples::with_id(
                samples::hook(SMS, "UNSUBSCRIBE", i),
                &format!("{prefix}-{i:03}"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_a_node_ten_minutes_ahead_scheduled_are_due_on_time_for_the_others() {
    let db = scratch_postgres_database("cluster::clocks (nodes with wrong clocks)").await;
    let rx = Receiver::start().await;
    let flags = |id: &'static str| ["--node-id", id, "--lease-ttl", "3s"];
    // Alone at first, ten minutes ahead: every first attempt fails and it schedules every retry.
    let mut ahead = Server::start_with_options(&flags("ahead"), skewed(&db, TEN_MINUTES_MS)).await;
    let app = ahead.create_app_key("clocks").await;
    let mut body = config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/clocks"));
    body["maxHooksPerRequest"] = json!(5);
    body["retrySchedule"] = json!(["2s", "2s", "2s", "2s", "2s", "2s", "2s", "2s"]);
    let cfg = ahead.create_config(&app, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    rx.set_default_status(503);
    let first = ahead
        .ingest(&app, SMS, "UNSUBSCRIBE", hooks("ahead", HOOKS))
        .await;
    ahead.ok(rx.wait_for_hooks(&first, PROMPT).await);
    // It dies once every delivery is RETRYING (its failure recorded, the retry due 2 s after it).
    let deliveries = HOOKS / 5;
    let end = std::time::Instant::now() + PROMPT;
    loop {
        let retrying = ahead
            .list_deliveries(&app, &format!("webhookConfigId={cfg_id}&status=RETRYING"))
            .await;
        if retrying.len() == deliveries {
            break;
        }
        if std::time::Instant::now() > end {
            ahead.fail(format!(
                "{} of {deliveries} deliveries RETRYING after {PROMPT:?}",
                retrying.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ahead.kill9().await;
    rx.set_default_status(200);
    let from = rx.requests().len();

    // Two nodes take over, one right and one ten minutes behind.
    let a = Server::start_with_options(&flags("a"), skewed(&db, 0)).await;
    let behind = Server::start_with_options(&flags("behind"), skewed(&db, -TEN_MINUTES_MS)).await;
    // Due within the lease (3 s) and the retry (2 s), plus a sweep: ten minutes late would fail.
    let started = std::time::Instant::now();
    for id in &first {
        a.wait_for_hook_delivery(&app, &cfg_id, id, "SUCCEEDED", Duration::from_secs(30))
            .await;
    }
    let took = started.elapsed();

    // The two live nodes, a clock apart, share new work: each hook arrives once.
    let more_a = a
        .ingest(&app, SMS, "UNSUBSCRIBE", hooks("more-a", MORE_HOOKS / 2))
        .await;
    let more_b = behind
        .ingest(&app, SMS, "UNSUBSCRIBE", hooks("more-b", MORE_HOOKS / 2))
        .await;
    let more: Vec<String> = more_a.into_iter().chain(more_b).collect();
    a.ok(rx.wait_for_hooks(&more, PROMPT).await);
    let last = a
        .ingest(&app, SMS, "UNSUBSCRIBE", hooks("sentinel", 1))
        .await;
    a.wait_for_hook_delivery(&app, &cfg_id, &last[0], "SUCCEEDED", PROMPT)
        .await;
    let after: Vec<_> = rx.requests_from(from);
    let mut counts = std::collections::HashMap::new();
    for r in &after {
        for id in r.hook_ids() {
            *counts.entry(id).or_insert(0usize) += 1;
        }
    }
    let not_once: Vec<_> = first
        .iter()
        .chain(&more)
        .filter(|id| counts.get(*id) != Some(&1))
        .map(|id| (id, counts.get(id)))
        .collect();
    assert!(
        not_once.is_empty(),
        "after the switch to 200, hooks not delivered exactly once: {not_once:?}"
    );
    assert!(
        took < Duration::from_secs(30),
        "the dead node's retries took {took:?}"
    );
}
