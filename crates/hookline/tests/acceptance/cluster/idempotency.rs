//! Idempotency across nodes: two nodes on one database accept the same hookIds at the same
//! moment; each hook is stored once and delivered once.

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::server::{Options, scratch_postgres_database};
use crate::support::*;

const ROUNDS: usize = 30;
const HOOKS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_ingesting_the_same_hook_ids_at_once_store_and_deliver_each_once() {
    let db = scratch_postgres_database("cluster::idempotency (two nodes on one database)").await;
    let rx = Receiver::start().await;
    let node = |id: &str| {
        let options = Options {
            database_url: Some(db.clone()),
            ..Options::default()
        };
        let id = id.to_string();
        async move { Server::start_with_options(&["--node-id", &id], options).await }
    };
    let a = node("a").await;
    let b = node("b").await;
    let app = a.create_app_key("idem-cluster").await;
    let cfg = a
        .create_config(&app, config_body(SMS, &["UNSUBSCRIBE"], &rx.url("/both")))
        .await;
    let cfg_id = s(&cfg, "webhookConfigId");
    b.get_config(&app, &cfg_id).await;

    let mut all = Vec::new();
    for round in 0..ROUNDS {
        let hooks: Vec<_> = (0..HOOKS)
            .map(|i| {
                samples::with_id(
                    samples::hook(SMS, "UNSUBSCRIBE", i),
                    &format!("both-{round}-{i}"),
                )
            })
            .collect();
        // The same request to both nodes at once: both acknowledge the same hookIds.
        let (from_a, from_b) = tokio::join!(
            a.ingest(&app, SMS, "UNSUBSCRIBE", hooks.clone()),
            b.ingest(&app, SMS, "UNSUBSCRIBE", hooks),
        );
        assert_eq!(from_a, from_b, "round {round}");
        all.extend(from_a);
    }
    a.ok(rx.wait_for_hooks(&all, SLOW).await);
    // A hook ingested afterwards arrives: a second copy queued for any of the above would have
    // been claimed before it.
    let sentinel = b
        .ingest(
            &app,
            SMS,
            "UNSUBSCRIBE",
            vec![samples::with_id(
                samples::hook(SMS, "UNSUBSCRIBE", 0),
                "both-sentinel",
            )],
        )
        .await;
    b.wait_for_hook_delivery(&app, &cfg_id, &sentinel[0], "SUCCEEDED", PROMPT)
        .await;
    let counts = rx.hook_counts(None);
    let twice: Vec<_> = all
        .iter()
        .filter(|id| counts.get(*id) != Some(&1))
        .collect();
    assert!(twice.is_empty(), "not delivered exactly once: {twice:?}");
    let stored = a
        .store_query_strings(
            "SELECT hook_id FROM hooks WHERE app_key = $1",
            &[&app.app_key],
        )
        .await;
    assert_eq!(stored.len(), all.len() + 1, "each hook stored once");
    let distinct: BTreeSet<_> = stored.into_iter().collect();
    assert_eq!(distinct.len(), all.len() + 1);
    let logged = a
        .list_deliveries(&app, &format!("webhookConfigId={cfg_id}"))
        .await;
    let in_deliveries: usize = logged
        .iter()
        .map(|d| d["hookIds"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(in_deliveries, all.len() + 1, "each hook in one delivery");
    assert!(logged.iter().all(|d| d["status"] == json!("SUCCEEDED")));
}
