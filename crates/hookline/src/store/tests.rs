//! The store's behaviour suite: every test runs against a fresh SQLite store and a fresh
//! PostgreSQL database (a new database per test on the server of `HOOKLINE_TEST_DATABASE_URL`,
//! which `./scripts/test.sh` provides). Without that variable the PostgreSQL variants fail: they
//! never skip silently.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hookline_wire::{Event, Product, ValidatedHook};

use super::postgres::{NodeOptions, PostgresStore, create_test_database};
use super::sqlite::SqliteStore;
use super::{Lease, Store, StoreError, StoreSignal};
use crate::model::{
    AppKeyRecord, AttemptOutcome, AttemptResult, DeliveryFilter, DeliveryStatus, Health,
    PageRequest, PortalLinkRecord, PortalRedemption, ReplayFilter, SessionOrigin, SessionRecord,
    SessionStart, StoredHook, TestSendRecord, WebhookConfig, now_millis,
};

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test's store lives, so it can be opened again (restart tests).
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(Box<super::postgres::DbConfig>),
}

impl Place {
    async fn new(backend: Backend) -> Place {
        match backend {
            Backend::Sqlite => Place::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres => {
                let url = std::env::var("HOOKLINE_TEST_DATABASE_URL").unwrap_or_else(|_| {
                    panic!(
                        "HOOKLINE_TEST_DATABASE_URL is not set: run ./scripts/test.sh, which \
                         starts a throwaway PostgreSQL (or `scripts/pg.sh start` yourself)"
                    )
                });
                Place::Postgres(Box::new(create_test_database(&url).await.unwrap()))
            }
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        self.open_with(NodeOptions::default()).await
    }

    /// Like `open`, with room for a tenant's claims to race each other on one node (32 at
    /// once, 8 a tenant, where a node's default is one a tenant): for tests whose point is
    /// claims running at the same moment.
    async fn open_racing(&self) -> Arc<dyn Store> {
        self.open_with(NodeOptions {
            claims_at_once: 32,
            ..NodeOptions::default()
        })
        .await
    }

    async fn open_with(&self, options: NodeOptions) -> Arc<dyn Store> {
        match self {
            Place::Sqlite(dir) => Arc::new(SqliteStore::open(dir.path()).unwrap()),
            Place::Postgres(config) => Arc::new(
                PostgresStore::open_config((**config).clone(), options)
                    .await
                    .unwrap(),
            ),
        }
    }
}

async fn open(backend: Backend) -> (Place, Arc<dyn Store>) {
    let place = Place::new(backend).await;
    let store = place.open().await;
    (place, store)
}

/// Each test once per store: `sqlite::NAME` and `postgres::NAME`.
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Postgres).await
            })*
        }
    };
}

store_tests!(
    app_keys_are_listed_in_byte_order_on_both_stores,
    concurrent_ingests_are_all_committed_and_fanned_out,
    concurrent_ingests_of_the_same_hooks_store_and_queue_each_once,
    ingest_is_idempotent_per_app_key_and_hook_id,
    deleting_a_config_cancels_open_and_queued_work,
    open_work_survives_reopening,
    a_bad_cursor_is_refused,
    concurrent_claims_never_take_the_same_hooks,
    the_delivery_log_redelivery_replay_stats_and_retention,
    retention_keeps_a_hook_while_any_config_of_its_app_key_has_it_queued,
    claims_take_the_oldest_event_first_in_full_batches,
    fan_out_follows_config_changes_at_once,
    a_small_ingest_behind_huge_ones_of_another_tenant_does_not_wait_for_them,
    a_test_send_is_logged_finished_and_never_sent_again,
    a_trace_reads_the_hook_its_queues_and_its_deliveries,
    dashboard_sessions_are_found_by_hash_expire_survive_reopening_and_are_capped,
    a_portal_link_opens_one_session_once_until_it_expires_and_a_rotation_revokes_it,
    a_filtered_config_is_queued_only_the_hooks_its_filter_matches,
    a_filter_changed_after_the_store_knew_it_applies_at_once,
    an_ordering_key_changed_after_the_store_knew_it_applies_at_once,
    a_hook_with_a_nul_character_is_filtered_and_ordered_like_any_other,
    an_open_delivery_expires_unsent_a_finished_one_stays_and_hooks_carry_their_acceptance,
    operational_events_are_written_with_the_state_changes_they_report_once_each,
    a_config_update_is_a_newer_version_even_from_a_clock_behind_the_last_writer,
    an_ordered_config_holds_each_key_until_its_delivery_ends_also_across_a_reopen,
    concurrent_ordered_claims_never_open_two_deliveries_of_one_key,
    an_ordered_claim_takes_the_free_rows_around_a_held_keys_rows_and_leaves_those,
    a_held_keys_long_backlog_does_not_hide_the_keys_behind_it,
    a_failed_delivery_of_several_keys_keeps_its_first_key_and_gives_the_others_back,
);

fn session(id_hash: &str, app_key: &str, created_at: i64, expires_at: i64) -> SessionRecord {
    SessionRecord {
        id_hash: id_hash.into(),
        app_key: app_key.into(),
        secret_hash: format!("secret-of-{app_key}"),
        csrf: format!("csrf-{id_hash}"),
        created_at,
        expires_at,
        origin: SessionOrigin::SignIn,
    }
}

async fn dashboard_sessions_are_found_by_hash_expire_survive_reopening_and_are_capped(
    backend: Backend,
) {
    let (place, store) = open(backend).await;
    let now = now_millis();
    let hour = 3_600_000;
    store
        .create_session(session("quiet", "other", now, now + hour), 3)
        .await
        .unwrap();
    // Expired by the time it is looked for: not found.
    store
        .create_session(session("stale", "other", now, now + 10), 3)
        .await
        .unwrap();
    assert_eq!(store.find_session("stale", now + 10).await.unwrap(), None);
    for i in 0..5 {
        store
            .create_session(
                session(&format!("noisy-{i}"), "noisy", now, now + hour + i),
                3,
            )
            .await
            .unwrap();
    }
    let found = store.find_session("quiet", now).await.unwrap().unwrap();
    assert_eq!(found.app_key, "other");
    assert_eq!(found.secret_hash, "secret-of-other");
    assert_eq!(found.csrf, "csrf-quiet");
    assert_eq!(found.expires_at, now + hour);
    assert_eq!(store.find_session("unknown", now).await.unwrap(), None);
    // One app key signing in again and again keeps its newest 3, and the others' sessions.
    let mut live = Vec::new();
    for i in 0..5 {
        if store
            .find_session(&format!("noisy-{i}"), now)
            .await
            .unwrap()
            .is_some()
        {
            live.push(i);
        }
    }
    assert_eq!(live, vec![2, 3, 4]);

    // Sessions are stored, not kept by the process: a reopened store (a restart, another
    // node) finds them.
    drop(store);
    let store = place.open().await;
    assert!(store.find_session("quiet", now).await.unwrap().is_some());
    store.delete_session("quiet").await.unwrap();
    assert_eq!(store.find_session("quiet", now).await.unwrap(), None);
}

fn portal_link(
    token_hash: &str,
    app_key: &str,
    read_only: bool,
    expires_at: i64,
) -> PortalLinkRecord {
    PortalLinkRecord {
        token_hash: token_hash.into(),
        app_key: app_key.into(),
        read_only,
        created_at: now_millis(),
        expires_at,
    }
}

/// The session a test opens with a link: id `session-<n>`.
fn session_start(n: &str, created_at: i64) -> SessionStart {
    SessionStart {
        id_hash: format!("session-{n}"),
        csrf: format!("csrf-{n}"),
        created_at,
        expires_at: created_at + 3_600_000,
    }
}

/// App keys named `names`, each with the secret hash `hash-<name>`.
async fn create_app_keys(store: &Arc<dyn Store>, names: &[&str]) {
    for ak in names {
        let record = AppKeyRecord {
            app_key: (*ak).into(),
            name: (*ak).into(),
            created_at: 0,
            previous_secret_key_expires_at: None,
        };
        store
            .create_app_key(record, format!("hash-{ak}"))
            .await
            .unwrap();
    }
}

async fn a_portal_link_opens_one_session_once_until_it_expires_and_a_rotation_revokes_it(
    backend: Backend,
) {
    let (place, store) = open(backend).await;
    create_app_keys(&store, &["ak", "other"]).await;
    let now = now_millis();
    let hour = 3_600_000;
    let opened = |app_key: &str, read_only: bool| PortalRedemption::Opened {
        app_key: app_key.into(),
        read_only,
    };
    // No link for an app key that does not exist.
    assert!(
        !store
            .create_portal_link(portal_link("nobody's", "nobody", false, now + hour), 10)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .redeem_portal_link("nobody's", session_start("x", now), 10)
            .await
            .unwrap(),
        PortalRedemption::Gone
    );

    // A link opens a session carrying the app key's secret hash, once.
    for (hash, read_only) in [("full", false), ("ro", true)] {
        assert!(
            store
                .create_portal_link(portal_link(hash, "ak", read_only, now + hour), 10)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        store
            .redeem_portal_link("full", session_start("full", now), 10)
            .await
            .unwrap(),
        opened("ak", false)
    );
    let found = store
        .find_session("session-full", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.app_key, "ak");
    assert_eq!(found.secret_hash, "hash-ak");
    assert_eq!(found.csrf, "csrf-full");
    assert_eq!(found.origin, SessionOrigin::PortalLink { read_only: false });
    assert_eq!(
        store
            .redeem_portal_link("full", session_start("again", now), 10)
            .await
            .unwrap(),
        PortalRedemption::Gone,
        "a second use"
    );
    assert_eq!(
        store.find_session("session-again", now).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .redeem_portal_link("ro", session_start("ro", now), 10)
            .await
            .unwrap(),
        opened("ak", true)
    );
    assert_eq!(
        store
            .find_session("session-ro", now)
            .await
            .unwrap()
            .unwrap()
            .origin,
        SessionOrigin::PortalLink { read_only: true }
    );

    // Used at once by many: one session, whoever wins.
    store
        .create_portal_link(portal_link("raced", "ak", false, now + hour), 10)
        .await
        .unwrap();
    let uses = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .redeem_portal_link("raced", session_start(&format!("raced-{i}"), now), 100)
                .await
                .unwrap()
        })
    });
    let mut opened_count = 0;
    for use_ in uses {
        if use_.await.unwrap() != PortalRedemption::Gone {
            opened_count += 1;
        }
    }
    assert_eq!(
        opened_count, 1,
        "a link raced by 8 uses opened {opened_count} sessions"
    );

    // Expired by the time it is used: nothing opens.
    store
        .create_portal_link(portal_link("short", "ak", false, now + 10), 10)
        .await
        .unwrap();
    assert_eq!(
        store
            .redeem_portal_link("short", session_start("short", now + 10), 10)
            .await
            .unwrap(),
        PortalRedemption::Gone
    );
    assert_eq!(
        store.find_session("session-short", now + 10).await.unwrap(),
        None
    );

    // One app key making links over and over keeps its newest 3 unused ones.
    for i in 0..5 {
        store
            .create_portal_link(
                portal_link(&format!("many-{i}"), "other", false, now + hour),
                3,
            )
            .await
            .unwrap();
    }
    let mut live = Vec::new();
    for i in 0..5 {
        if store
            .redeem_portal_link(
                &format!("many-{i}"),
                session_start(&format!("many-{i}"), now),
                10,
            )
            .await
            .unwrap()
            != PortalRedemption::Gone
        {
            live.push(i);
        }
    }
    assert_eq!(live, vec![2, 3, 4]);

    // Links are stored: a reopened store (a restart, another node) opens them.
    store
        .create_portal_link(portal_link("kept", "ak", false, now + hour), 10)
        .await
        .unwrap();
    store
        .create_portal_link(portal_link("theirs", "other", false, now + hour), 10)
        .await
        .unwrap();
    store
        .create_session(session("signed-in", "ak", now, now + hour), 10)
        .await
        .unwrap();
    drop(store);
    let store = place.open().await;
    assert!(
        store
            .find_session("session-full", now)
            .await
            .unwrap()
            .is_some()
    );

    // A rotation, even with a grace period, revokes the app key's unused links and ends the
    // sessions links opened; a signed-in session keeps the grace; other app keys keep theirs.
    assert!(
        store
            .set_secret_hash("ak", "hash-ak-2".into(), Some(now + hour))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .redeem_portal_link("kept", session_start("kept", now), 10)
            .await
            .unwrap(),
        PortalRedemption::Gone,
        "an unused link after a rotation"
    );
    for id in ["session-full", "session-ro"] {
        assert_eq!(store.find_session(id, now).await.unwrap(), None, "{id}");
    }
    assert!(
        store
            .find_session("signed-in", now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .find_session("session-many-2", now)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .redeem_portal_link("theirs", session_start("theirs", now), 10)
            .await
            .unwrap(),
        opened("other", false)
    );
    // A link made after the rotation carries the new secret hash.
    store
        .create_portal_link(portal_link("new", "ak", false, now + hour), 10)
        .await
        .unwrap();
    store
        .redeem_portal_link("new", session_start("new", now), 10)
        .await
        .unwrap();
    assert_eq!(
        store
            .find_session("session-new", now)
            .await
            .unwrap()
            .unwrap()
            .secret_hash,
        "hash-ak-2"
    );
}

/// The config `ordered` of app key `ak` on CONVERSION_BLOCK, ordered by the hook field `k`,
/// stored.
async fn insert_ordered_config(store: &dyn Store) -> WebhookConfig {
    let mut cfg = config("ordered", "ak", vec![Event::ConversionBlock]);
    cfg.ordering_key = Some("k".into());
    store.insert_config(cfg.clone()).await.unwrap();
    cfg
}

/// The hookIds of each batch a claim took, in order.
fn batch_ids(claim: &super::Claim) -> Vec<Vec<String>> {
    claim
        .batches
        .iter()
        .map(|b| b.delivery.hooks.iter().map(|h| h.hook_id.clone()).collect())
        .collect()
}

/// The configs a sweep asks about, in the tests that make one config, `c1`.
fn c1() -> Vec<String> {
    vec!["c1".to_owned()]
}

fn config(id: &str, app_key: &str, events: Vec<Event>) -> WebhookConfig {
    WebhookConfig {
        id: id.into(),
        app_key: app_key.into(),
        events,
        url: "http://127.0.0.1:1/".into(),
        signature: "sig".into(),
        max_hooks_per_request: 100,
        max_requests_in_flight: 8,
        timeout_ms: 1000,
        retry_schedule: vec![Duration::from_secs(1)],
        ..WebhookConfig::for_tests()
    }
}

fn hooks(prefix: &str, n: usize) -> Vec<ValidatedHook> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            ValidatedHook {
                json: format!(r#"{{"hookId":"{id}","countryCode":"1"}}"#),
                hook_id: id,
                id_generated: false,
            }
        })
        .collect()
}

async fn concurrent_ingests_are_all_committed_and_fanned_out(backend: Backend) {
    let (_place, store) = open(backend).await;
    store
        .insert_config(config("c1", "ak", vec![Event::ConversionBlock]))
        .await
        .unwrap();
    store
        .insert_config(config("c2", "ak", vec![Event::ConversionBlock]))
        .await
        .unwrap();
    let mut other = config("c3", "ak", vec![Event::Unsubscribe]);
    other.enabled = true;
    store.insert_config(other).await.unwrap();
    let mut signals = store.take_signals().unwrap();

    let mut tasks = Vec::new();
    for t in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .ingest(
                    "ak",
                    Product::Sms,
                    Event::ConversionBlock,
                    hooks(&format!("t{t}"), 50),
                )
                .await
        }));
    }
    let mut new_hooks = 0;
    for task in tasks {
        let outcome = task.await.unwrap().unwrap();
        new_hooks += outcome.new_hooks;
        assert_eq!(outcome.queued, outcome.new_hooks * 2);
    }
    assert_eq!(new_hooks, 1000);
    let mut woken = HashSet::new();
    while let Ok(signal) = signals.try_recv() {
        if let StoreSignal::NewWork { config_id } = signal {
            woken.insert(config_id);
        }
    }
    assert_eq!(woken, HashSet::from(["c1".to_owned(), "c2".to_owned()]));

    // Claims drain each config's queue exactly once, in batches of at most 100.
    for config_id in ["c1", "c2"] {
        let cfg = config(config_id, "ak", vec![Event::ConversionBlock]);
        let mut seen = HashSet::new();
        for batch in store.claim_batches(&cfg, 100, 1000).await.unwrap().batches {
            assert!(batch.delivery.hooks.len() <= 100);
            for hook in batch.delivery.hooks {
                assert!(seen.insert(hook.hook_id), "a hook was claimed twice");
            }
        }
        assert_eq!(seen.len(), 1000);
    }
    let cfg3 = config("c3", "ak", vec![Event::Unsubscribe]);
    assert!(
        store
            .claim_batches(&cfg3, 100, 8)
            .await
            .unwrap()
            .batches
            .is_empty()
    );
}

/// Producers retrying at once: 20 requests carrying the same 50 hookIds, side by side, land in
/// the same groups (one statement holding a hookId several times, and a key several times) and
/// in groups of both of PostgreSQL's ingest writers (one waiting for the other's insert of a
/// hookId). Each hook is stored once and queued once per config (PostgreSQL inserts queue rows
/// without `ON CONFLICT`: a repeated row would fail the whole group).
async fn concurrent_ingests_of_the_same_hooks_store_and_queue_each_once(backend: Backend) {
    let (_place, store) = open(backend).await;
    for id in ["c1", "c2"] {
        store
            .insert_config(config(id, "ak", vec![Event::ConversionBlock]))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 50))
                .await
        }));
    }
    let mut new_hooks = 0;
    for task in tasks {
        let outcome = task.await.unwrap().unwrap();
        assert_eq!(outcome.queued, outcome.new_hooks * 2);
        new_hooks += outcome.new_hooks;
    }
    assert_eq!(new_hooks, 50);
    for config_id in ["c1", "c2"] {
        let cfg = config(config_id, "ak", vec![Event::ConversionBlock]);
        let claimed = store.claim_batches(&cfg, 100, 10).await.unwrap();
        let ids: Vec<String> = claimed
            .batches
            .into_iter()
            .flat_map(|b| b.delivery.hooks.into_iter().map(|h| h.hook_id))
            .collect();
        let want: Vec<String> = (0..50).map(|i| format!("h-{i}")).collect();
        assert_eq!(ids, want, "{config_id}'s queue");
    }
}

async fn ingest_is_idempotent_per_app_key_and_hook_id(backend: Backend) {
    let (_place, store) = open(backend).await;
    store
        .insert_config(config("c1", "ak", vec![Event::ConversionBlock]))
        .await
        .unwrap();
    let first = store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 5))
        .await
        .unwrap();
    let again = store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 6))
        .await
        .unwrap();
    assert_eq!((first.new_hooks, again.new_hooks), (5, 1));
    // The same hookId under another app key is another hook.
    let other = store
        .ingest("other", Product::Sms, Event::ConversionBlock, hooks("h", 5))
        .await
        .unwrap();
    assert_eq!(other.new_hooks, 5);
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    let batch = store
        .claim_batches(&cfg, 100, 1)
        .await
        .unwrap()
        .batches
        .remove(0);
    assert_eq!(batch.delivery.hooks.len(), 6);
}

async fn deleting_a_config_cancels_open_and_queued_work(backend: Backend) {
    let (_place, store) = open(backend).await;
    let mut cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    cfg.max_hooks_per_request = 2;
    store.insert_config(cfg.clone()).await.unwrap();
    store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 5))
        .await
        .unwrap();
    let claimed = store
        .claim_batches(&cfg, 2, 1)
        .await
        .unwrap()
        .batches
        .remove(0);
    assert!(store.delete_config("ak", "c1").await.unwrap());
    assert!(!store.delete_config("ak", "c1").await.unwrap());

    // An attempt that finishes after the delete does not reopen the delivery.
    store.record_attempt(AttemptOutcome {
        hooks_id: claimed.delivery.hooks_id.clone(),
        config_id: "c1".into(),
        number: 1,
        result: AttemptResult {
            started_at: 0,
            duration_ms: 1,
            status_code: Some(500),
            error_kind: None,
            error_message: None,
            response_body: None,
            retry_after: None,
            request_headers: Vec::new(),
        },
        new_status: DeliveryStatus::Retrying,
        next_attempt_at: Some(1),
        health: Some(Health::default()),
        wakes_queue: false,
        split_by_key: false,
    });
    store.flush().await.unwrap();
    let page = store
        .list_deliveries(
            "ak",
            DeliveryFilter::default(),
            PageRequest {
                size: 100,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert!(
        page.items
            .iter()
            .all(|d| d.status == DeliveryStatus::Cancelled)
    );
    let cancelled_hooks: usize = page.items.iter().map(|d| d.hook_ids.len()).sum();
    assert_eq!(cancelled_hooks, 5);
    assert!(store.open_deliveries().await.unwrap().is_empty());
    assert!(store.configs_with_queued_hooks().await.unwrap().is_empty());
}

async fn open_work_survives_reopening(backend: Backend) {
    let place = Place::new(backend).await;
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    let hooks_id = {
        let store = place.open().await;
        store.insert_config(cfg.clone()).await.unwrap();
        store
            .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 150))
            .await
            .unwrap();
        let batch = store
            .claim_batches(&cfg, 100, 1)
            .await
            .unwrap()
            .batches
            .remove(0);
        store.close().await;
        batch.delivery.hooks_id
    };
    let store = place.open().await;
    let open = store.open_deliveries().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].hooks_id, hooks_id);
    assert_eq!(
        store.configs_with_queued_hooks().await.unwrap(),
        vec!["c1".to_owned()]
    );
    let delivery = store.load_delivery(&hooks_id).await.unwrap().unwrap();
    assert_eq!(delivery.hooks.len(), 100);
    assert_eq!(delivery.hooks[0].hook_id, "h-0");
    let rest = store
        .claim_batches(&cfg, 100, 8)
        .await
        .unwrap()
        .batches
        .remove(0);
    assert_eq!(rest.delivery.hooks.len(), 50);
}

async fn a_bad_cursor_is_refused(backend: Backend) {
    let (_place, store) = open(backend).await;
    let result = store
        .list_deliveries(
            "ak",
            DeliveryFilter::default(),
            PageRequest {
                size: 10,
                cursor: Some("garbage".into()),
            },
        )
        .await;
    assert!(matches!(result, Err(StoreError::BadCursor)));
}

/// Two stores on one database (two nodes) claiming the same config at once: every hook is
/// taken exactly once (on PostgreSQL claims of one config wait for each other's claim lock, and
/// take their rows `FOR UPDATE SKIP LOCKED`; one writer on SQLite).
async fn concurrent_claims_never_take_the_same_hooks(backend: Backend) {
    let place = Place::new(backend).await;
    let first = place.open_racing().await;
    // SQLite allows one store per file per process: its second "node" is the same store.
    let second = match backend {
        Backend::Sqlite => first.clone(),
        Backend::Postgres => place.open_racing().await,
    };
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    first.insert_config(cfg.clone()).await.unwrap();
    first
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 2000))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let claim = store.claim_batches(&cfg, 10, 2).await.unwrap();
                if claim.contended {
                    // Every row it could take held by another claim (one that outwaited the
                    // claim lock's wait and claimed beside it): that claim ends in a moment.
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "claims stayed contended"
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                if claim.batches.is_empty() {
                    return ids;
                }
                for batch in claim.batches {
                    ids.extend(batch.delivery.hooks.into_iter().map(|h| h.hook_id));
                }
            }
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id), "a hook was claimed twice");
        }
    }
    assert_eq!(seen.len(), 2000);
}

/// A claim takes the event of the oldest queued hook, that event's hooks in order (skipping the
/// other events' hooks queued between them), cut into full batches; the other event waits for
/// the next claim.
async fn claims_take_the_oldest_event_first_in_full_batches(backend: Backend) {
    let (_place, store) = open(backend).await;
    let cfg = config("c1", "ak", vec![Event::ConversionBlock, Event::Unsubscribe]);
    store.insert_config(cfg.clone()).await.unwrap();
    for (event, prefix, n) in [
        (Event::ConversionBlock, "cb", 3),
        (Event::Unsubscribe, "un", 2),
        (Event::ConversionBlock, "cb2", 2),
    ] {
        let outcome = store
            .ingest("ak", Product::Sms, event, hooks(prefix, n))
            .await
            .unwrap();
        assert_eq!(outcome.queued, n);
    }
    let claimed = |claim: super::Claim| -> Vec<(Event, Vec<String>)> {
        claim
            .batches
            .into_iter()
            .map(|b| {
                let ids = b.delivery.hooks.into_iter().map(|h| h.hook_id).collect();
                (b.delivery.event, ids)
            })
            .collect()
    };
    let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let first = claimed(store.claim_batches(&cfg, 2, 3).await.unwrap());
    assert_eq!(
        first,
        vec![
            (Event::ConversionBlock, ids(&["cb-0", "cb-1"])),
            (Event::ConversionBlock, ids(&["cb-2", "cb2-0"])),
            (Event::ConversionBlock, ids(&["cb2-1"])),
        ]
    );
    let second = claimed(store.claim_batches(&cfg, 2, 3).await.unwrap());
    assert_eq!(second, vec![(Event::Unsubscribe, ids(&["un-0", "un-1"]))]);
    assert!(
        store
            .claim_batches(&cfg, 2, 3)
            .await
            .unwrap()
            .batches
            .is_empty()
    );
}

/// Ingest queues for the configs subscribed at that moment: pausing, resuming, adding and
/// deleting a config each count for the very next ingest; a config DISABLED for failing keeps
/// queueing (its hooks are held for it) until retention drops them.
async fn fan_out_follows_config_changes_at_once(backend: Backend) {
    let (_place, store) = open(backend).await;
    let ingest = |prefix: &'static str| {
        let store = store.clone();
        async move {
            store
                .ingest("ak", Product::Sms, Event::ConversionBlock, hooks(prefix, 1))
                .await
                .unwrap()
                .queued
        }
    };
    let mut c1 = config("c1", "ak", vec![Event::ConversionBlock]);
    store.insert_config(c1.clone()).await.unwrap();
    assert_eq!(ingest("a").await, 1);
    c1.enabled = false;
    assert!(store.update_config(c1.clone()).await.unwrap().is_some());
    assert_eq!(ingest("b").await, 0, "a paused config gets nothing new");
    let c2 = config("c2", "ak", vec![Event::ConversionBlock]);
    store.insert_config(c2).await.unwrap();
    assert_eq!(ingest("c").await, 1, "a new config gets the next hook");
    c1.enabled = true;
    assert!(store.update_config(c1).await.unwrap().is_some());
    assert_eq!(ingest("d").await, 2, "a resumed config gets the next hook");
    let disabled = Health {
        state: crate::model::HealthState::Disabled,
        ..Health::default()
    };
    store.set_health("c2", disabled).await.unwrap();
    assert_eq!(
        ingest("e").await,
        2,
        "a config disabled for failing still queues: its hooks are held for it"
    );
    assert!(store.delete_config("ak", "c1").await.unwrap());
    assert_eq!(ingest("f").await, 1, "a deleted config gets nothing new");

    // Retention drops what a DISABLED config held too long (c2: c, d, e, f), and nothing of a
    // paused config's queue (c3: g).
    let mut c3 = config("c3", "ak", vec![Event::ConversionBlock]);
    store.insert_config(c3.clone()).await.unwrap();
    assert_eq!(ingest("g").await, 2);
    c3.enabled = false;
    assert!(store.update_config(c3).await.unwrap().is_some());
    assert_eq!(
        store.purge_held(0, 100).await.unwrap(),
        0,
        "nothing is older than the cutoff"
    );
    let future = now_millis() + 60_000;
    assert_eq!(store.purge_held(future, 2).await.unwrap(), 2, "in batches");
    assert_eq!(store.purge_held(future, 100).await.unwrap(), 3);
    assert_eq!(store.purge_held(future, 100).await.unwrap(), 0);
    assert_eq!(
        store.stats().await.unwrap().queued_hooks,
        1,
        "the paused config's queue is kept"
    );
    let other = store
        .ingest("other", Product::Sms, Event::ConversionBlock, hooks("g", 1))
        .await
        .unwrap();
    assert_eq!(other.queued, 0, "configs of another app key get nothing");
}

/// Each config with a filter gets exactly the hooks `Filter::matches` passes, whichever
/// evaluator answered: the same bodies are ingested twice (new hookIds), first when the store
/// knows none of the filters (SQLite: the writer evaluates them; PostgreSQL: the statement, by
/// the filter's jsonpath), then when it knows them (both: `Filter::matches_json` on the
/// request's task). So this holds the evaluators to the same answers over hooks chosen for their
/// corners (arrays at each level, nulls, missing fields, other types, big and negative numbers,
/// non-ASCII strings).
async fn a_filtered_config_is_queued_only_the_hooks_its_filter_matches(backend: Backend) {
    use serde_json::json;
    let (_place, store) = open(backend).await;
    let bodies = [
        json!({"messageStatus": "FAILED", "sendNo": "15446859", "n": 5, "tags": ["a", "b"],
               "comments": [{"status": "OK"}, {"status": "REJECTED"}]}),
        json!({"messageStatus": "COMPLETED", "sendNo": "15446859", "n": 5.5, "tags": [],
               "comments": []}),
        json!({"messageStatus": "FAILED_AD", "sendNo": "1", "n": "6", "x": null}),
        json!({"n": -3, "nested": {"a": {"b": "https://x"}}, "deep": [[1, 2], [3]]}),
        json!({"n": 1000.0, "s": "가나다", "b": true}),
        json!({"n": 9_007_199_254_740_993_u64, "s": "zeta", "b": false,
               "comments": {"status": "REJECTED"}}),
        json!({"messageStatus": null, "n": 0}),
        json!({"arr": [{"k": 1}, {"k": "1"}, [{"k": 2}]]}),
    ];
    let hooks: Vec<ValidatedHook> = ["f", "g"]
        .iter()
        .flat_map(|round| {
            bodies.iter().enumerate().map(move |(i, body)| {
                let mut body = body.clone();
                body["hookId"] = json!(format!("{round}-{i}"));
                ValidatedHook {
                    json: body.to_string(),
                    hook_id: format!("{round}-{i}"),
                    id_generated: false,
                }
            })
        })
        .collect();
    let filters = [
        json!({"messageStatus": {"$in": ["FAILED", "FAILED_AD"]}, "sendNo": "15446859"}),
        json!({"comments.status": "REJECTED"}),
        json!({"n": {"$gt": 0}}),
        json!({"n": {"$ne": 5}}),
        json!({"$not": {"n": {"$gte": 5}}}),
        json!({"s": {"$gt": "m"}}),
        json!({"nested.a.b": {"$prefix": "https://"}}),
        json!({"deep": 3}),
        json!({"x": {"$exists": true}}),
        json!({"messageStatus": {"$nin": ["FAILED", null]}}),
        json!({"$or": [{"b": true}, {"arr.k": 2}, {"arr.k": "1"}]}),
        json!({"tags": {"$in": ["b", 7]}}),
        json!({"n": {"$lte": -3}}),
        json!({"n": 9_007_199_254_740_993_u64}),
        json!({"n": {"$gte": 1000, "$lt": 1000.5}}),
    ];
    let mut configs = Vec::new();
    for (i, filter) in filters.iter().enumerate() {
        let mut cfg = config(&format!("f{i}"), "ak", vec![Event::ConversionBlock]);
        cfg.filter = crate::filter::Filter::parse(filter).unwrap();
        store.insert_config(cfg.clone()).await.unwrap();
        configs.push(cfg);
    }
    let unfiltered = config("all", "ak", vec![Event::ConversionBlock]);
    store.insert_config(unfiltered.clone()).await.unwrap();
    // Two requests, each every body once: the first evaluated where nothing is known yet, the
    // second on the request's task (SQLite: against the copy the writer published; PostgreSQL:
    // against the filters the first answer listed).
    let mut outcome = crate::store::IngestOutcome::default();
    for half in hooks.chunks(hooks.len() / 2) {
        let part = store
            .ingest("ak", Product::Sms, Event::ConversionBlock, half.to_vec())
            .await
            .unwrap();
        outcome.new_hooks += part.new_hooks;
        outcome.queued += part.queued;
    }
    // The outcome counts the queue rows written (the ingest rate limit charges them), not
    // hooks × subscribed configs.
    let rows: usize = configs
        .iter()
        .chain([&unfiltered])
        .map(|c| {
            let f = c.filter.as_ref();
            hooks
                .iter()
                .filter(|h| f.is_none_or(|f| f.matches_json(&h.json)))
                .count()
        })
        .sum();
    assert_eq!(outcome.new_hooks, hooks.len());
    assert_eq!(outcome.queued, rows);
    for cfg in configs.iter().chain([&unfiltered]) {
        let want: Vec<String> = hooks
            .iter()
            .filter(|h| cfg.filter.as_ref().is_none_or(|f| f.matches_json(&h.json)))
            .map(|h| h.hook_id.clone())
            .collect();
        let got = claimed_ids(&*store, cfg, 1000, 1).await;
        assert_eq!(
            got,
            want,
            "config {} with filter {:?}",
            cfg.id,
            cfg.filter.as_ref().map(|f| f.source().to_string())
        );
    }
    // Not vacuous: the filters split the hooks.
    let passed: usize = configs
        .iter()
        .map(|c| {
            hooks
                .iter()
                .filter(|h| c.filter.as_ref().is_some_and(|f| f.matches_json(&h.json)))
                .count()
        })
        .sum();
    assert!(passed > 0 && passed < configs.len() * hooks.len());
}

/// A hook may carry U+0000 in a string (JSON allows it, ingest accepts it). Evaluating filters
/// and ordering keys must not trip on it: PostgreSQL's `jsonb` refuses that escape, and one such
/// hook failed the whole ingest statement, other requests folded with it included.
async fn a_hook_with_a_nul_character_is_filtered_and_ordered_like_any_other(backend: Backend) {
    use serde_json::json;
    let (_place, store) = open(backend).await;
    let mut filtered = config("flt", "ak", vec![Event::ConversionBlock]);
    filtered.filter = crate::filter::Filter::parse(&json!({"messageStatus": "FAILED"})).unwrap();
    let mut ordered = config("ord", "ak", vec![Event::ConversionBlock]);
    ordered.ordering_key = Some("to".into());
    for cfg in [&filtered, &ordered] {
        store.insert_config(cfg.clone()).await.unwrap();
    }
    let hook = |id: &str, status: &str, to: serde_json::Value| ValidatedHook {
        json: json!({"hookId": id, "messageStatus": status, "to": to, "note": "a\u{0}b"})
            .to_string(),
        hook_id: id.into(),
        id_generated: false,
    };
    // The first request before the store knows the configs, the others after (a string key
    // value, then one that is not a string).
    for (n, to) in [json!("01\u{0}2"), json!("34\u{0}5"), json!({"n\u{0}": 1})]
        .into_iter()
        .enumerate()
    {
        let outcome = store
            .ingest(
                "ak",
                Product::Sms,
                Event::ConversionBlock,
                vec![
                    hook(&format!("f{n}"), "FAILED", to.clone()),
                    hook(&format!("c{n}"), "COMPLETED", to),
                ],
            )
            .await
            .unwrap();
        assert_eq!(outcome.new_hooks, 2);
        assert_eq!(
            outcome.queued, 3,
            "the filter passes FAILED only; the ordered config gets both"
        );
    }
    assert_eq!(
        claimed_ids(&*store, &filtered, 10, 10).await,
        ["f0", "f1", "f2"]
    );
    let mut ordered_ids = claimed_ids(&*store, &ordered, 10, 10).await;
    ordered_ids.sort();
    assert_eq!(ordered_ids, ["c0", "c1", "c2", "f0", "f1", "f2"]);

    // A key value holding a backslash then `u0000` (text, not the escape), first read by the
    // statement (a config the store does not know yet), then by the node: one key, so the
    // second hook waits for the first one's delivery.
    let mut text_key = config("txt", "ak2", vec![Event::ConversionBlock]);
    text_key.ordering_key = Some("to".into());
    store.insert_config(text_key.clone()).await.unwrap();
    for id in ["t0", "t1"] {
        let hook = ValidatedHook {
            json: json!({"hookId": id, "messageStatus": "FAILED", "to": "01\\u00002"}).to_string(),
            hook_id: id.into(),
            id_generated: false,
        };
        let outcome = store
            .ingest("ak2", Product::Sms, Event::ConversionBlock, vec![hook])
            .await
            .unwrap();
        assert_eq!(outcome.queued, 1);
    }
    assert_eq!(claimed_ids(&*store, &text_key, 1, 1).await, ["t0"]);
    assert!(
        claimed_ids(&*store, &text_key, 1, 1).await.is_empty(),
        "t1 has t0's key, which t0's open delivery holds"
    );
}

/// Likewise for an `orderingKey`: after the field changes, hooks are ordered by the new field's
/// value, never by a value of the old field computed before the writer.
async fn an_ordering_key_changed_after_the_store_knew_it_applies_at_once(backend: Backend) {
    use serde_json::json;
    let (_place, store) = open(backend).await;
    let mut cfg = config("ord", "ak", vec![Event::ConversionBlock]);
    cfg.ordering_key = Some("a".into());
    store.insert_config(cfg.clone()).await.unwrap();
    let hook = |id: &str, a: &str, b: &str| ValidatedHook {
        json: json!({"hookId": id, "a": a, "b": b}).to_string(),
        hook_id: id.into(),
        id_generated: false,
    };
    // Two requests: the store knows the config's key field by the second.
    for id in ["l1", "l2"] {
        store
            .ingest(
                "ak",
                Product::Sms,
                Event::ConversionBlock,
                vec![hook(id, id, id)],
            )
            .await
            .unwrap();
    }
    let learning = store.claim_batches(&cfg, 10, 10).await.unwrap();
    let taken: usize = learning
        .batches
        .iter()
        .map(|b| b.delivery.hooks.len())
        .sum();
    assert_eq!(taken, 2, "two keys, both free");
    cfg.ordering_key = Some("b".into());
    assert!(store.update_config(cfg.clone()).await.unwrap().is_some());
    // One `a` for all three; by `b`, two keys.
    store
        .ingest(
            "ak",
            Product::Sms,
            Event::ConversionBlock,
            vec![
                hook("h1", "same", "k1"),
                hook("h2", "same", "k2"),
                hook("h3", "same", "k1"),
            ],
        )
        .await
        .unwrap();
    // One hook per batch: a key's second hook cannot join its first, so it stays queued.
    let claim = store.claim_batches(&cfg, 1, 3).await.unwrap();
    let got: Vec<Vec<String>> = claim
        .batches
        .iter()
        .map(|b| b.delivery.hooks.iter().map(|h| h.hook_id.clone()).collect())
        .collect();
    assert_eq!(got, [["h1"], ["h2"]], "ordered by b: h3 waits behind h1");
}

/// A store that evaluates filters before its writer (both do, once they know a key's filters)
/// never applies a filter the config no longer has: each request after a change follows the
/// changed filter.
async fn a_filter_changed_after_the_store_knew_it_applies_at_once(backend: Backend) {
    use serde_json::json;
    let (_place, store) = open(backend).await;
    let status_filter =
        |status: &str| crate::filter::Filter::parse(&json!({"messageStatus": status})).unwrap();
    let mut cfg = config("flt", "ak", vec![Event::ConversionBlock]);
    cfg.filter = status_filter("FAILED");
    store.insert_config(cfg.clone()).await.unwrap();
    let hook = |id: String, status: &str| ValidatedHook {
        json: json!({"hookId": id, "messageStatus": status}).to_string(),
        hook_id: id,
        id_generated: false,
    };
    let mut n = 0;
    let mut round = |statuses: [&str; 2]| {
        n += 1;
        statuses.map(|s| hook(format!("{s}-{n}"), s)).to_vec()
    };
    let ingest = |hooks: Vec<ValidatedHook>| {
        let store = store.clone();
        async move {
            store
                .ingest("ak", Product::Sms, Event::ConversionBlock, hooks)
                .await
                .unwrap()
                .queued
        }
    };
    // Learnt, then evaluated early: FAILED passes each time.
    assert_eq!(ingest(round(["FAILED", "COMPLETED"])).await, 1);
    assert_eq!(ingest(round(["FAILED", "COMPLETED"])).await, 1);
    cfg.filter = status_filter("COMPLETED");
    assert!(store.update_config(cfg.clone()).await.unwrap().is_some());
    for _ in 0..3 {
        assert_eq!(ingest(round(["FAILED", "COMPLETED"])).await, 1);
    }
    let got = claimed_ids(&*store, &cfg, 1000, 1).await;
    assert_eq!(
        got,
        [
            "FAILED-1",
            "FAILED-2",
            "COMPLETED-3",
            "COMPLETED-4",
            "COMPLETED-5"
        ]
    );
}

/// The hookIds one claim of `cfg` takes, in order.
async fn claimed_ids(
    store: &dyn Store,
    cfg: &WebhookConfig,
    max_hooks: u32,
    max_batches: u32,
) -> Vec<String> {
    let claim = store
        .claim_batches(cfg, max_hooks, max_batches)
        .await
        .unwrap();
    claim
        .batches
        .iter()
        .flat_map(|b| b.delivery.hooks.iter().map(|h| h.hook_id.clone()))
        .collect()
}

fn attempt(hooks_id: &str, number: u32, code: u16, status: DeliveryStatus) -> AttemptOutcome {
    AttemptOutcome {
        hooks_id: hooks_id.into(),
        config_id: "c1".into(),
        number,
        result: AttemptResult {
            started_at: now_millis(),
            duration_ms: 7,
            status_code: Some(code),
            error_kind: None,
            error_message: None,
            response_body: Some("ok".into()),
            retry_after: None,
            request_headers: Vec::new(),
        },
        new_status: status,
        next_attempt_at: None,
        health: None,
        wakes_queue: false,
        split_by_key: false,
    }
}

/// The log, redelivery, replay, the metrics' counts, the chart and retention, end to end on one
/// delivery.
async fn an_open_delivery_expires_unsent_a_finished_one_stays_and_hooks_carry_their_acceptance(
    backend: Backend,
) {
    let (_place, store) = open(backend).await;
    let mut cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    cfg.delivery_deadline = Some(Duration::from_secs(90));
    store.insert_config(cfg.clone()).await.unwrap();
    let stored = store.find_config("c1").await.unwrap().unwrap();
    assert_eq!(stored.delivery_deadline, Some(Duration::from_secs(90)));
    let before = now_millis();
    store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 4))
        .await
        .unwrap();
    let after = now_millis();
    let mut claim = store.claim_batches(&cfg, 2, 2).await.unwrap();
    assert_eq!(claim.batches.len(), 2);
    for batch in &claim.batches {
        for hook in &batch.delivery.hooks {
            assert!(
                (before..=after).contains(&hook.accepted_at),
                "{} accepted at {}, ingested between {before} and {after}",
                hook.hook_id,
                hook.accepted_at
            );
        }
        assert!(batch.delivery.accepted_at().is_some());
    }
    let second = claim.batches.remove(1).delivery.hooks_id;
    let first = claim.batches.remove(0).delivery.hooks_id;
    store.flush().await.unwrap();
    // Loaded again (a retry), its hooks still carry when they were accepted.
    let loaded = store.load_delivery(&first).await.unwrap().unwrap();
    assert!(
        loaded
            .hooks
            .iter()
            .all(|h| (before..=after).contains(&h.accepted_at))
    );

    store.record_attempt(attempt(&second, 1, 200, DeliveryStatus::Succeeded));
    store.expire_delivery(first.clone());
    store.expire_delivery(second.clone());
    store.flush().await.unwrap();
    let expired = store.get_delivery("ak", &first).await.unwrap().unwrap();
    assert_eq!(expired.summary.status, DeliveryStatus::Expired);
    assert_eq!(expired.summary.next_attempt_at, None);
    assert!(expired.attempts.is_empty(), "expired without an attempt");
    let done = store.get_delivery("ak", &second).await.unwrap().unwrap();
    assert_eq!(
        done.summary.status,
        DeliveryStatus::Succeeded,
        "a finished delivery does not expire"
    );
    let open = store.open_deliveries().await.unwrap();
    assert!(open.iter().all(|d| d.hooks_id != first), "EXPIRED is final");
    let listed = store
        .list_deliveries(
            "ak",
            DeliveryFilter {
                status: Some(DeliveryStatus::Expired),
                ..DeliveryFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = listed.items.iter().map(|d| d.hooks_id.as_str()).collect();
    assert_eq!(ids, [first.as_str()]);
}

/// Each reported change writes one outbox row in its own transaction (a FAILED record, an expiry,
/// a health change, a re-enable); a record written again, a health written again in the same
/// state, and every change of a config of product `hookline` write none. Forgotten rows are gone.
async fn operational_events_are_written_with_the_state_changes_they_report_once_each(
    backend: Backend,
) {
    let (_place, store) = open(backend).await;
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    store.insert_config(cfg.clone()).await.unwrap();
    let mut ops = config("ops", "ak", vec![Event::DeliveryFailed]);
    ops.product = Product::Hookline;
    store.insert_config(ops.clone()).await.unwrap();
    store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 2))
        .await
        .unwrap();
    let claim = store.claim_batches(&cfg, 1, 2).await.unwrap();
    let ids: Vec<String> = claim
        .batches
        .iter()
        .map(|b| b.delivery.hooks_id.clone())
        .collect();
    assert_eq!(ids.len(), 2);
    store.flush().await.unwrap();
    assert!(store.operational_events(10).await.unwrap().is_empty());

    // Retries exhausted: one DELIVERY_FAILED; the same record written again (a group whose
    // commit answer was lost) and a later one change nothing.
    let mut failed = attempt(&ids[0], 1, 500, DeliveryStatus::Failed);
    failed.health = Some(Health {
        state: crate::model::HealthState::Failing,
        consecutive_failures: 5,
        ..Health::default()
    });
    store.record_attempt(failed.clone());
    store.flush().await.unwrap();
    store.record_attempt(failed.clone());
    store.expire_delivery(ids[0].clone());
    store.flush().await.unwrap();
    let events = store.operational_events(10).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        ["DELIVERY_FAILED", "WEBHOOK_CONFIG_FAILING"],
        "{events:?}"
    );
    let delivery: serde_json::Value = serde_json::from_str(&events[0].hook).unwrap();
    assert_eq!(delivery["status"], "FAILED");
    assert_eq!(delivery["hooksId"], ids[0].as_str());
    assert_eq!(delivery["hookIds"], serde_json::json!(["h-0"]));
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["lastError"], "HTTP 500");
    assert_eq!(delivery["webhookConfigId"], "c1");
    let failing: serde_json::Value = serde_json::from_str(&events[1].hook).unwrap();
    assert_eq!(failing["state"], "FAILING");
    assert_eq!(failing["consecutiveFailures"], 5);
    assert_eq!(failing["url"], cfg.url.as_str());
    assert_eq!(failing["productName"], "SMS");
    assert_eq!(failing["lastError"], "HTTP 500");
    assert!(events.iter().all(|e| e.app_key == "ak"));
    for e in &events {
        let hook: serde_json::Value = serde_json::from_str(&e.hook).unwrap();
        let mut hook = hook.as_object().unwrap().clone();
        hook.insert("hookId".into(), "x".into());
        hookline_wire::validate_hook(Product::Hookline, e.event, hook.into(), 0)
            .unwrap_or_else(|err| panic!("{}: {err}", e.event));
    }
    store
        .forget_operational_events(events.iter().map(|e| e.id).collect())
        .await
        .unwrap();
    assert!(store.operational_events(10).await.unwrap().is_empty());

    // The same state again: nothing. DISABLED, then enabled again by its owner: two events.
    let mut health = Health {
        state: crate::model::HealthState::Failing,
        consecutive_failures: 6,
        ..Health::default()
    };
    store.set_health("c1", health.clone()).await.unwrap();
    health.state = crate::model::HealthState::Disabled;
    health.disabled_reason = Some("the receiver answered 410 Gone".into());
    store.set_health("c1", health).await.unwrap();
    let mut enabled = store.find_config("c1").await.unwrap().unwrap();
    enabled.health = Health::default();
    store.update_config(enabled).await.unwrap();
    // An expiry, with the attempts made and the last one's error as stored.
    store.record_attempt(attempt(&ids[1], 1, 503, DeliveryStatus::Retrying));
    store.expire_delivery(ids[1].clone());
    store.flush().await.unwrap();
    let events = store.operational_events(10).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "WEBHOOK_CONFIG_DISABLED",
            "WEBHOOK_CONFIG_RECOVERED",
            "DELIVERY_FAILED"
        ],
        "{events:?}"
    );
    let disabled: serde_json::Value = serde_json::from_str(&events[0].hook).unwrap();
    assert_eq!(disabled["reason"], "the receiver answered 410 Gone");
    let expired: serde_json::Value = serde_json::from_str(&events[2].hook).unwrap();
    assert_eq!(expired["status"], "EXPIRED");
    assert_eq!(expired["attempts"], 1);
    assert_eq!(expired["lastError"], "HTTP 503");
    assert_eq!(expired["hookIds"], serde_json::json!(["h-1"]));
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));

    // Nothing about a config of product `hookline`: its own failures would feed themselves.
    store
        .forget_operational_events(events.iter().map(|e| e.id).collect())
        .await
        .unwrap();
    let gone = Health {
        state: crate::model::HealthState::Disabled,
        ..Health::default()
    };
    store.set_health("ops", gone).await.unwrap();
    store
        .ingest(
            "ak",
            Product::Hookline,
            Event::DeliveryFailed,
            hooks("op", 1),
        )
        .await
        .unwrap();
    let claim = store.claim_batches(&ops, 1, 1).await.unwrap();
    let op = claim.batches[0].delivery.hooks_id.clone();
    let mut failed = attempt(&op, 1, 500, DeliveryStatus::Failed);
    failed.config_id = "ops".into();
    store.record_attempt(failed);
    store.flush().await.unwrap();
    assert!(store.operational_events(10).await.unwrap().is_empty());
}

/// `updated_at` is a config's version: engines keep the newer of two reads of it. A write from a
/// node whose clock is behind the last writer's (ten minutes here) still makes a newer version.
async fn a_config_update_is_a_newer_version_even_from_a_clock_behind_the_last_writer(
    backend: Backend,
) {
    let (_place, store) = open(backend).await;
    let mut cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    let ahead = now_millis() + 600_000;
    cfg.updated_at = ahead;
    store.insert_config(cfg.clone()).await.unwrap();
    cfg.url = "http://127.0.0.1:2/".into();
    cfg.updated_at = now_millis();
    let answered = store.update_config(cfg.clone()).await.unwrap();
    let stored = store.find_config("c1").await.unwrap().unwrap();
    assert_eq!(stored.url, "http://127.0.0.1:2/");
    assert!(
        stored.updated_at > ahead,
        "the update's version {} is not newer than {ahead}",
        stored.updated_at
    );
    // The update answers the version it stored, not the one it was given: the API answers it
    // and the engine keeps it, and both must be what a read shows.
    assert_eq!(answered, Some(stored.updated_at));
    // Given the same, older, version again: one past the last, as stored.
    let again = store.update_config(cfg.clone()).await.unwrap();
    assert_eq!(again, Some(stored.updated_at + 1));
    let reread = store.find_config("c1").await.unwrap().unwrap();
    assert_eq!(again, Some(reread.updated_at));
    // Given a newer version, that one.
    cfg.updated_at = reread.updated_at + 1_000;
    assert_eq!(
        store.update_config(cfg.clone()).await.unwrap(),
        Some(cfg.updated_at)
    );
    let mut elsewhere = cfg.clone();
    elsewhere.app_key = "other".into();
    assert_eq!(
        store.update_config(elsewhere).await.unwrap(),
        None,
        "another app key's config of that id"
    );
    cfg.id = "nobody".into();
    assert_eq!(
        store.update_config(cfg).await.unwrap(),
        None,
        "no such config"
    );
}

async fn the_delivery_log_redelivery_replay_stats_and_retention(backend: Backend) {
    let (_place, store) = open(backend).await;
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    store.insert_config(cfg.clone()).await.unwrap();
    store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 3))
        .await
        .unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.queued_hooks, 3);
    assert!(stats.oldest_queued_at.is_some());

    let batch = store
        .claim_batches(&cfg, 100, 1)
        .await
        .unwrap()
        .batches
        .remove(0);
    let hooks_id = batch.delivery.hooks_id.clone();
    // A claim may answer before its group commits (SQLite does): flush before reading.
    store.flush().await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.queued_hooks, 0);
    assert_eq!(stats.open_deliveries, vec![(DeliveryStatus::Pending, 1)]);

    store.record_attempt(attempt(&hooks_id, 1, 200, DeliveryStatus::Succeeded));
    store.flush().await.unwrap();
    let detail = store.get_delivery("ak", &hooks_id).await.unwrap().unwrap();
    assert_eq!(detail.summary.status, DeliveryStatus::Succeeded);
    assert_eq!(detail.summary.hook_ids, vec!["h-0", "h-1", "h-2"]);
    assert_eq!(detail.attempts.len(), 1);
    assert_eq!(detail.attempts[0].result.status_code, Some(200));
    assert_eq!(detail.envelope, batch.delivery.envelope());
    // Another tenant sees nothing.
    assert!(
        store
            .get_delivery("other", &hooks_id)
            .await
            .unwrap()
            .is_none()
    );
    // The delivery is finished: nothing to resume.
    assert!(store.load_delivery(&hooks_id).await.unwrap().is_none());

    let chart = store
        .attempt_buckets("ak", "c1", now_millis() - 60_000, 60_000, 2)
        .await
        .unwrap();
    assert_eq!(chart.len(), 1);
    assert_eq!((chart[0].attempts, chart[0].succeeded), (1, 1));

    let again = store
        .redeliver("ak", &hooks_id, "new-id".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.status, DeliveryStatus::Pending);
    assert_eq!(again.hook_ids, vec!["h-0", "h-1", "h-2"]);
    let resend = store.load_delivery("new-id").await.unwrap().unwrap();
    let json = |hooks: &[crate::model::StoredHook]| -> Vec<String> {
        hooks.iter().map(|h| h.json.clone()).collect()
    };
    assert_eq!(json(&resend.hooks), json(&batch.delivery.hooks));

    let replayed = store
        .replay(
            "ak",
            "c1",
            ReplayFilter {
                since: None,
                until: None,
                dry_run: false,
                statuses: vec![DeliveryStatus::Succeeded],
            },
        )
        .await
        .unwrap();
    assert_eq!(replayed, 3);
    assert_eq!(
        store.configs_with_queued_hooks().await.unwrap(),
        vec!["c1".to_owned()]
    );

    // Retention: only the finished delivery goes; hooks stay while queued or referenced.
    let future = now_millis() + 60_000;
    assert_eq!(store.purge_deliveries(future, 100).await.unwrap(), 1);
    assert!(store.get_delivery("ak", &hooks_id).await.unwrap().is_none());
    let purge = store.purge_hooks(future, 0, 100).await.unwrap();
    assert_eq!(purge.deleted, 0);
    assert_eq!(purge.next, None);
    assert!(store.delete_config("ak", "c1").await.unwrap());
}

/// Retention's question "is this hook still queued?" on its own: hooks only queued (no delivery
/// carries them) stay while any config of their app key holds them, whichever config, and go
/// once no queue holds them; another app key's configs and hooks change nothing.
async fn retention_keeps_a_hook_while_any_config_of_its_app_key_has_it_queued(backend: Backend) {
    let (_place, store) = open(backend).await;
    let c1 = config("c1", "ak", vec![Event::ConversionBlock]);
    let c2 = config("c2", "ak", vec![Event::Unsubscribe]);
    let other = config("c9", "ak2", vec![Event::ConversionBlock]);
    for cfg in [c1.clone(), c2.clone(), other] {
        store.insert_config(cfg).await.unwrap();
    }
    store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("b", 2))
        .await
        .unwrap();
    store
        .ingest("ak", Product::Sms, Event::Unsubscribe, hooks("u", 1))
        .await
        .unwrap();
    store
        .ingest("ak2", Product::Sms, Event::ConversionBlock, hooks("x", 1))
        .await
        .unwrap();
    let future = now_millis() + 60_000;
    // Every hook is queued (b-* for c1, u-0 for c2, x-0 for c9): none goes.
    let purge = store.purge_hooks(future, 0, 100).await.unwrap();
    assert_eq!((purge.deleted, purge.next), (0, None));

    // c1's two hooks are delivered and their delivery purged: they go; u-0 (c2) and x-0 stay.
    let hooks_id = claim_one(&store, &c1, 100).await;
    store.flush().await.unwrap();
    store.record_attempt(attempt(&hooks_id, 1, 200, DeliveryStatus::Succeeded));
    store.flush().await.unwrap();
    assert_eq!(store.purge_deliveries(future, 100).await.unwrap(), 1);
    assert_eq!(store.purge_hooks(future, 0, 100).await.unwrap().deleted, 2);
    for (ak, id, kept) in [
        ("ak", "b-0", false),
        ("ak", "u-0", true),
        ("ak2", "x-0", true),
    ] {
        let traces = store.trace_hook(Some(ak), id).await.unwrap();
        assert_eq!(traces.len(), usize::from(kept), "{ak}/{id}");
    }
    let traces = store.trace_hook(Some("ak"), "u-0").await.unwrap();
    assert_eq!(traces[0].queued_for, ["c2"]);

    // Deleting c2 empties its queue (its hooks end in a CANCELED delivery, purged here): u-0
    // goes, x-0 (another app key's) still stays.
    assert!(store.delete_config("ak", "c2").await.unwrap());
    // A replay whose check of the config raced its deletion queues nothing for it.
    let everything = ReplayFilter {
        since: None,
        until: None,
        dry_run: false,
        statuses: Vec::new(),
    };
    assert_eq!(store.replay("ak", "c2", everything).await.unwrap(), 0);
    store.purge_deliveries(future, 100).await.unwrap();
    assert_eq!(store.purge_hooks(future, 0, 100).await.unwrap().deleted, 1);
    assert!(
        store
            .trace_hook(Some("ak"), "u-0")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.trace_hook(Some("ak2"), "x-0").await.unwrap().len(), 1);
}

/// A test send's record: a finished delivery marked as a test with its one attempt, in the log,
/// never open (nothing resumes or sweeps it), not redelivered, not replayed, and the config's
/// health untouched.
async fn a_test_send_is_logged_finished_and_never_sent_again(backend: Backend) {
    let (_place, store) = open(backend).await;
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    store.insert_config(cfg.clone()).await.unwrap();
    let record = TestSendRecord {
        hooks_id: "test-1".into(),
        app_key: "ak".into(),
        config_id: "c1".into(),
        product: Product::Sms,
        event: Event::ConversionBlock,
        hook: StoredHook {
            hook_id: "sample-1".into(),
            json: r#"{"hookId":"sample-1","countryCode":"1"}"#.into(),
            accepted_at: 0,
        },
        result: attempt("test-1", 1, 500, DeliveryStatus::Failed).result,
    };
    store.record_test_send(record.clone()).await.unwrap();

    let detail = store.get_delivery("ak", "test-1").await.unwrap().unwrap();
    assert!(detail.summary.test);
    assert_eq!(detail.summary.status, DeliveryStatus::Failed);
    assert_eq!(detail.summary.attempt_count, 1);
    assert_eq!(detail.summary.next_attempt_at, None);
    assert_eq!(detail.summary.hook_ids, vec!["sample-1"]);
    assert_eq!(detail.attempts.len(), 1);
    assert_eq!(detail.attempts[0].result.status_code, Some(500));
    let envelope: serde_json::Value = serde_json::from_slice(&detail.envelope).unwrap();
    assert_eq!(envelope["hooksId"], "test-1");
    assert_eq!(envelope["hooks"][0]["hookId"], "sample-1");
    let page = store
        .list_deliveries("ak", DeliveryFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.items[0].test);

    // Finished when written: nothing to resume, lease or sweep.
    assert!(store.open_deliveries().await.unwrap().is_empty());
    assert!(store.load_delivery("test-1").await.unwrap().is_none());
    assert!(
        store
            .due_deliveries(now_millis() + 3_600_000, 100, &c1())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.redeliver("ak", "test-1", "again".into()).await,
        Err(StoreError::Conflict(_))
    ));
    let replayed = store
        .replay(
            "ak",
            "c1",
            ReplayFilter {
                since: None,
                until: None,
                dry_run: false,
                statuses: Vec::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(replayed, 0);
    assert!(store.configs_with_queued_hooks().await.unwrap().is_empty());
    let found = store.find_config("c1").await.unwrap().unwrap();
    assert_eq!(found.health, Health::default());

    // The same hookId again is refused, and the refusal writes nothing.
    let clash = TestSendRecord {
        hooks_id: "test-2".into(),
        ..record
    };
    assert!(matches!(
        store.record_test_send(clash).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.get_delivery("ak", "test-2").await.unwrap().is_none());
}

// ---------- several nodes on one PostgreSQL database ----------

/// Two nodes on one fresh database, with short leases.
async fn two_nodes(
    lease_ttl: Duration,
) -> (Arc<dyn Store>, Arc<dyn Store>, super::postgres::DbConfig) {
    let Place::Postgres(config) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let node = |id: &str| NodeOptions {
        node_id: id.into(),
        lease_ttl,
        ..NodeOptions::default()
    };
    let a = PostgresStore::open_config((*config).clone(), node("a"))
        .await
        .unwrap();
    let b = PostgresStore::open_config((*config).clone(), node("b"))
        .await
        .unwrap();
    (Arc::new(a), Arc::new(b), *config)
}

/// The hooksId of one new batch of up to `max_hooks` of the config's queued hooks.
async fn claim_one(store: &Arc<dyn Store>, cfg: &WebhookConfig, max_hooks: u32) -> String {
    let mut claim = store.claim_batches(cfg, max_hooks, 1).await.unwrap();
    assert_eq!(claim.batches.len(), 1, "one batch claimed");
    claim.batches.remove(0).delivery.hooks_id
}

fn retry_now(hooks_id: &str, number: u32) -> AttemptOutcome {
    AttemptOutcome {
        next_attempt_at: Some(now_millis()),
        ..attempt(hooks_id, number, 500, DeliveryStatus::Retrying)
    }
}

async fn lease(store: &Arc<dyn Store>, hooks_id: &str) -> Option<crate::model::SendableDelivery> {
    match store.lease_delivery(hooks_id).await.unwrap() {
        Lease::Granted(delivery) => Some(delivery),
        Lease::NotDue(_) | Lease::Unavailable => None,
    }
}

/// Config `c1` made through `a`, three hooks ingested through `b`, and `a`'s claim of them: the
/// delivery's id (leased to `a`).
async fn a_claims_what_b_ingested(a: &Arc<dyn Store>, b: &Arc<dyn Store>) -> String {
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    a.insert_config(cfg.clone()).await.unwrap();
    b.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 3))
        .await
        .unwrap();
    claim_one(a, &cfg, 100).await
}

#[tokio::test]
async fn a_lease_keeps_other_nodes_off_a_delivery_until_its_attempt_is_recorded() {
    let (a, b, _) = two_nodes(Duration::from_secs(30)).await;
    let hooks_id = a_claims_what_b_ingested(&a, &b).await;

    // A holds it: B can neither lease nor find it, and A does not take it a second time.
    assert!(lease(&b, &hooks_id).await.is_none());
    assert!(lease(&a, &hooks_id).await.is_none());
    assert!(
        b.due_deliveries(now_millis(), 10, &c1())
            .await
            .unwrap()
            .is_empty()
    );

    // A's record frees it: the retry is due now, so either node may take it, but only one.
    a.record_attempt(retry_now(&hooks_id, 1));
    a.flush().await.unwrap();
    let found = b.due_deliveries(now_millis(), 10, &c1()).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].hooks_id, hooks_id);
    // Only the configs asked about: a node sweeps for the configs it serves.
    let others = ["c2".to_owned()];
    assert!(
        b.due_deliveries(now_millis(), 10, &others)
            .await
            .unwrap()
            .is_empty()
    );
    let taken = lease(&b, &hooks_id).await.expect("B leases the due retry");
    assert_eq!(taken.attempt_count, 1);
    assert_eq!(taken.hooks.len(), 3);
    assert!(lease(&a, &hooks_id).await.is_none());

    // A late record from a node that lost the lease does not touch the delivery.
    a.record_attempt(retry_now(&hooks_id, 2));
    a.flush().await.unwrap();
    assert!(lease(&a, &hooks_id).await.is_none());

    // A retry scheduled later is not due: the lease answers when it is.
    let later = now_millis() + 60_000;
    b.record_attempt(AttemptOutcome {
        next_attempt_at: Some(later),
        ..attempt(&hooks_id, 2, 500, DeliveryStatus::Retrying)
    });
    b.flush().await.unwrap();
    match a.lease_delivery(&hooks_id).await.unwrap() {
        // Stored in the database's time by B's measured offset, read back by A's: the same time
        // give or take the two measurements.
        Lease::NotDue(at) => about(at, later, "not due until"),
        other => panic!("expected NotDue, got {other:?}"),
    }
}

/// Writes queued behind a stuck one, whose callers stopped waiting (the database did not answer
/// in time, so `answered` gave up and the request answered 503), are not applied once the
/// database answers: a caller told its ingest, its new config or its replay failed sends it
/// again, and it must not then be applied twice. The write already sent to the server when its
/// caller gave up is applied (nothing can take it back): its ingest is the idempotent kind.
#[tokio::test]
async fn writes_whose_callers_stopped_waiting_are_not_applied_later() {
    let (db, store) = postgres_store().await;
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    store.insert_config(cfg.clone()).await.unwrap();
    // Both writers wait behind a lock on the config's row: an ingest's `FOR KEY SHARE` of it,
    // and a config write.
    let locker = db.connect().await.unwrap();
    locker
        .batch_execute("BEGIN; SELECT 1 FROM webhook_configs WHERE id = 'c1' FOR UPDATE")
        .await
        .unwrap();
    let stuck_ingest = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("sent", 1))
                .await
        })
    };
    let stuck_update = {
        let (store, cfg) = (store.clone(), cfg.clone());
        tokio::spawn(async move { store.update_config(cfg).await })
    };
    let watcher = db.connect().await.unwrap();
    lock_waits(&watcher, "hookline %", 2, "the ingest and the config write").await;
    let given_up = Duration::from_millis(200);
    let late_ingest = store.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("late", 1));
    assert!(tokio::time::timeout(given_up, late_ingest).await.is_err());
    let late_config = store.insert_config(config("c2", "ak", vec![Event::ConversionBlock]));
    assert!(tokio::time::timeout(given_up, late_config).await.is_err());

    locker.batch_execute("ROLLBACK").await.unwrap();
    let sent = stuck_ingest.await.unwrap().unwrap();
    assert_eq!(
        sent.new_hooks, 1,
        "the ingest under way when the lock went is stored"
    );
    stuck_update.await.unwrap().unwrap();
    store.flush().await.unwrap();
    assert!(
        store.get_config("ak", "c2").await.unwrap().is_none(),
        "the config whose caller gave up was not created"
    );
    let again = store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("late", 1))
        .await
        .unwrap();
    assert_eq!(
        again.new_hooks, 1,
        "the ingest whose caller gave up was not stored"
    );
}

/// Waits until `n` sessions of the test's database whose `application_name` is `LIKE` `who`
/// wait for a lock.
async fn lock_waits(watcher: &tokio_postgres::Client, who: &str, n: i64, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND application_name LIKE $1",
                &[&who],
            )
            .await
            .unwrap()
            .get(0);
        if waiting >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never waited: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A lease whose caller stopped waiting after the writer had started it (the database stopped
/// answering mid-job, so `answered` gave up) is granted anyway once the database answers: this
/// node never sends that delivery, so it must not keep the lease alive. Unrenewed, it expires
/// and another node leases the delivery; renewed (held by the writer's job), nobody would ever
/// send it again. (A lease whose caller gave up before it started is not started at all:
/// `writes_whose_callers_stopped_waiting_are_not_applied_later`.)
#[tokio::test]
async fn a_lease_whose_caller_stopped_waiting_mid_job_is_not_renewed() {
    use std::future::Future;
    use std::task::Poll;

    let (a, b, db) = two_nodes(Duration::from_secs(1)).await;
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    a.insert_config(cfg.clone()).await.unwrap();
    a.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("x", 1))
        .await
        .unwrap();
    let x = claim_one(&a, &cfg, 1).await;
    a.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("y", 1))
        .await
        .unwrap();
    let y = claim_one(&a, &cfg, 1).await;
    a.record_attempt(retry_now(&y, 1));
    a.flush().await.unwrap();

    // A's jobs writer waits behind a lock on the config's row (a config write, alone in its
    // group), while X's record and Y's lease queue behind it: the next group holds both, and
    // the lease starts by writing the record, whose attempt waits for another transaction's
    // insert of the same attempt (nothing else of A's, its lease renewals, touches attempts).
    let (config_lock, row_lock) = (db.connect().await.unwrap(), db.connect().await.unwrap());
    config_lock
        .batch_execute("BEGIN; SELECT 1 FROM webhook_configs WHERE id = 'c1' FOR UPDATE")
        .await
        .unwrap();
    row_lock
        .batch_execute(&format!(
            "BEGIN; INSERT INTO attempts (hooks_id, number, started_at, duration_ms) \
             VALUES ('{x}', 1, 0, 0)"
        ))
        .await
        .unwrap();
    let update = {
        let (a, cfg) = (a.clone(), cfg.clone());
        tokio::spawn(async move { a.update_config(cfg).await })
    };
    let watcher = db.connect().await.unwrap();
    // The jobs writer's application name ends with ` writer` (the ingest writers' with a number).
    lock_waits(&watcher, "hookline a writer", 1, "the config write").await;
    a.record_attempt(retry_now(&x, 1));
    let mut leasing = Box::pin(a.lease_delivery(&y));
    let polled = std::future::poll_fn(|cx| Poll::Ready(leasing.as_mut().poll(cx))).await;
    assert!(polled.is_pending(), "the lease is queued");
    config_lock.batch_execute("ROLLBACK").await.unwrap();
    update.await.unwrap().unwrap();
    lock_waits(
        &watcher,
        "hookline a writer",
        1,
        "the lease's group writing X's record",
    )
    .await;

    // Its caller gives up mid-job; then the database answers and the job grants the lease.
    drop(leasing);
    row_lock.batch_execute("ROLLBACK").await.unwrap();
    a.flush().await.unwrap();
    assert!(
        lease_expiry(&watcher, &y).await.is_some(),
        "the lease was granted to A after all"
    );

    // Not renewed: it expires (1 s) and B leases the delivery.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while lease(&b, &y).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A kept renewing a lease for a delivery it will never send"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lease expiry the database holds for `hooks_id` (`None`: not leased).
async fn lease_expiry(db: &tokio_postgres::Client, hooks_id: &str) -> Option<i64> {
    db.query_one(
        "SELECT lease_expires_at FROM deliveries WHERE hooks_id = $1",
        &[&hooks_id],
    )
    .await
    .unwrap()
    .get(0)
}

/// `lease(store, hooks_id)`, asserting that it is refused while the lease the database holds
/// has not expired. The expiry is read first and compared after the answer, so a pause of the
/// machine can only make the check vacuous (the lease really expired meanwhile), never fail it.
async fn lease_unless_expired(
    db: &tokio_postgres::Client,
    store: &Arc<dyn Store>,
    hooks_id: &str,
    what: &str,
) -> Option<crate::model::SendableDelivery> {
    let expiry = lease_expiry(db, hooks_id).await;
    let got = lease(store, hooks_id).await;
    if got.is_some() {
        let now = now_millis();
        assert!(
            expiry.is_none_or(|e| e < now),
            "{what}: leased at {now} although the lease held expires at {expiry:?}"
        );
    }
    got
}

#[tokio::test]
async fn leases_of_a_node_that_stops_expire_and_a_closing_node_hands_them_back() {
    // Long enough that a loaded machine's pauses (a renewal a second late, opening a store)
    // stay inside it; the expiries themselves are read from the database, not assumed.
    let ttl = Duration::from_secs(3);
    let (a, b, config) = two_nodes(ttl).await;
    let db = config.connect().await.unwrap();
    let cfg = config_with_app("c1", "ak");
    a.insert_config(cfg.clone()).await.unwrap();
    a.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 2))
        .await
        .unwrap();
    let first = claim_one(&a, &cfg, 1).await;
    let claimed_until = lease_expiry(&db, &first).await.expect("a claim leases");

    // While A lives it renews its lease: the expiry moves on, and once the claim's own expiry
    // is past, B still cannot take the delivery.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while now_millis() <= claimed_until + 100 {
        assert!(
            lease_unless_expired(&db, &b, &first, "while A lives")
                .await
                .is_none(),
            "a live node's lease was taken"
        );
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(ttl / 10).await;
    }
    let renewed_until = lease_expiry(&db, &first).await.expect("still leased");
    assert!(
        renewed_until > claimed_until,
        "A never renewed its lease ({claimed_until} -> {renewed_until})"
    );
    assert!(
        lease_unless_expired(&db, &b, &first, "after renewal")
            .await
            .is_none()
    );

    // A closes: its lease is handed back at once.
    a.close().await;
    assert_eq!(
        lease_expiry(&db, &first).await,
        None,
        "closing hands the lease back"
    );
    assert!(lease(&b, &first).await.is_some());

    // A node that dies (C, dropped without closing) stops renewing; once its lease expires,
    // the survivor's sweep finds the delivery and takes it over, not before. The survivor is
    // opened first, so that opening it takes nothing from the lease's time.
    let (c, b2, config) = two_nodes(ttl).await;
    drop(b2);
    let db = config.connect().await.unwrap();
    let survivor: Arc<dyn Store> = Arc::new(
        PostgresStore::open_config(
            config,
            NodeOptions {
                node_id: "survivor".into(),
                lease_ttl: ttl,
                ..NodeOptions::default()
            },
        )
        .await
        .unwrap(),
    );
    let cfg2 = config_with_app("c2", "ak2");
    c.insert_config(cfg2.clone()).await.unwrap();
    c.ingest("ak2", Product::Sms, Event::ConversionBlock, hooks("k", 1))
        .await
        .unwrap();
    let orphan = claim_one(&c, &cfg2, 1).await;
    drop(c);
    assert!(
        lease_unless_expired(&db, &survivor, &orphan, "right after C died")
            .await
            .is_none(),
        "taken before expiry"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let expiry = lease_expiry(&db, &orphan).await;
        let due = survivor
            .due_deliveries(now_millis(), 10, &["c1".into(), "c2".into()])
            .await
            .unwrap();
        if due.iter().any(|d| d.hooks_id == orphan) {
            let now = now_millis();
            assert!(
                expiry.is_none_or(|e| e < now),
                "the sweep found a delivery whose lease expires at {expiry:?} (now {now})"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the expired lease was never found"
        );
        tokio::time::sleep(ttl / 10).await;
    }
    assert!(lease(&survivor, &orphan).await.is_some());
}

/// A lease the node's engine never heard of (a claim or lease that committed although its
/// answer was lost) is not renewed: it expires and another node sends the delivery, while the
/// leases of the attempts in flight are renewed.
#[tokio::test]
async fn only_the_leases_of_attempts_in_flight_are_renewed() {
    let ttl = Duration::from_secs(3);
    let (a, b, config) = two_nodes(ttl).await;
    let db = config.connect().await.unwrap();
    let cfg = config_with_app("c1", "ak");
    a.insert_config(cfg.clone()).await.unwrap();
    a.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 2))
        .await
        .unwrap();
    let in_flight = claim_one(&a, &cfg, 1).await;
    // Claimed by B, then made A's behind A's back: A's engine knows nothing of it.
    let stranded = claim_one(&b, &cfg, 1).await;
    b.record_attempt(attempt(&stranded, 1, 500, DeliveryStatus::Retrying));
    b.flush().await.unwrap();
    db.execute(
        "UPDATE deliveries SET lease_owner = 'a', lease_expires_at = $2, next_attempt_at = 0 \
         WHERE hooks_id = $1",
        &[&stranded, &(now_millis() + ttl.as_millis() as i64)],
    )
    .await
    .unwrap();
    let in_flight_until = lease_expiry(&db, &in_flight).await.expect("leased");
    let stranded_until = lease_expiry(&db, &stranded).await.expect("leased");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let taken = loop {
        if let Some(d) = lease_unless_expired(&db, &b, &stranded, "the stranded lease").await {
            break d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stranded lease was renewed (expires {:?}, was {stranded_until})",
            lease_expiry(&db, &stranded).await
        );
        tokio::time::sleep(ttl / 10).await;
    };
    assert_eq!(taken.hooks_id, stranded);
    // Meanwhile the lease of A's attempt in flight was renewed and still holds.
    let renewed = lease_expiry(&db, &in_flight).await.expect("still leased");
    assert!(
        renewed > in_flight_until,
        "the lease in flight was not renewed ({in_flight_until} -> {renewed})"
    );
    assert!(
        lease_unless_expired(&db, &b, &in_flight, "in flight on A")
            .await
            .is_none()
    );
}

async fn next_signal(
    signals: &mut tokio::sync::mpsc::UnboundedReceiver<StoreSignal>,
) -> StoreSignal {
    tokio::time::timeout(Duration::from_secs(10), signals.recv())
        .await
        .expect("a signal within 10 s")
        .expect("signals open")
}

fn config_with_app(id: &str, app_key: &str) -> WebhookConfig {
    config(id, app_key, vec![Event::ConversionBlock])
}

#[tokio::test]
async fn other_nodes_hear_of_new_work_and_config_changes() {
    let (a, b, _) = two_nodes(Duration::from_secs(30)).await;
    let mut signals = b.take_signals().unwrap();
    // The listener says `Resync` once it listens: from then on nothing is missed.
    assert_eq!(next_signal(&mut signals).await, StoreSignal::Resync);

    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    a.insert_config(cfg.clone()).await.unwrap();
    assert_eq!(
        next_signal(&mut signals).await,
        StoreSignal::ConfigChanged {
            config_id: "c1".into()
        }
    );
    assert_eq!(b.find_config("c1").await.unwrap().unwrap().app_key, "ak");
    a.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 2))
        .await
        .unwrap();
    assert_eq!(
        next_signal(&mut signals).await,
        StoreSignal::NewWork {
            config_id: "c1".into()
        }
    );
    assert!(a.delete_config("ak", "c1").await.unwrap());
    assert_eq!(
        next_signal(&mut signals).await,
        StoreSignal::ConfigChanged {
            config_id: "c1".into()
        }
    );
    assert!(b.find_config("c1").await.unwrap().is_none());
}

/// The live nodes `ids` (sorted by bytes), as each of them sees the membership.
fn memberships(ids: &[&str]) -> Vec<super::Membership> {
    let mut live: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    live.sort_unstable();
    live.iter()
        .map(|me| super::Membership::of(&live, me))
        .collect()
}

/// The node (id) whose share of `config_id`'s limit is not 0.
fn home_of(ids: &[&str], config_id: &str) -> String {
    let mut live: Vec<&str> = ids.to_vec();
    live.sort_unstable();
    let homes: Vec<&str> = memberships(ids)
        .iter()
        .zip(&live)
        .filter(|(m, _)| m.share(64, config_id) > 0)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(homes.len(), 1, "{config_id} on {ids:?}: homes {homes:?}");
    homes[0].to_owned()
}

#[test]
fn each_config_is_served_by_one_live_node_its_home_and_homes_differ() {
    let all = ["node-a", "node-b", "node-c", "node-d", "node-e"];
    for n in 1..=all.len() {
        for total in [0, 1, 2, 3, 17, 63, 64] {
            for config_id in ["c1", "c2", "WHK0000000001", "another config"] {
                let shares: Vec<u32> = memberships(&all[..n])
                    .iter()
                    .map(|m| m.share(total, config_id))
                    .collect();
                assert_eq!(shares.iter().sum::<u32>(), total, "{shares:?} of {total}");
                let serving = shares.iter().filter(|&&s| s > 0).count();
                assert_eq!(serving, usize::from(total > 0), "{shares:?} of {total}");
            }
        }
    }
    // With 3 nodes, 40 configs have homes on all three.
    let three = &all[..3];
    let homes: HashSet<String> = (0..40)
        .map(|i| home_of(three, &format!("config-{i}")))
        .collect();
    assert_eq!(homes.len(), 3);
    assert_eq!(super::Membership::alone().share(5, "c1"), 5);
}

/// Rendezvous homes: a node that joins takes only configs it wins (none moves between two nodes
/// that stay), and a node that leaves gives away only its own; each takes about its part.
#[test]
fn a_join_or_a_leave_moves_only_the_configs_of_the_node_that_came_or_went() {
    let three = ["a", "b", "c"];
    let four = ["a", "b", "c", "d"];
    let configs: Vec<String> = (0..2000).map(|i| format!("WHK{i:010}")).collect();
    let mut moved = 0;
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for config_id in &configs {
        let (before, after) = (home_of(&three, config_id), home_of(&four, config_id));
        *per_node.entry(after.clone()).or_default() += 1;
        if before != after {
            assert_eq!(
                after, "d",
                "{config_id} moved from {before} to {after} on d's join"
            );
            moved += 1;
        }
        let without_b = home_of(&["a", "c"], config_id);
        if before != "b" {
            assert_eq!(without_b, before, "{config_id} moved on b's leave");
        }
    }
    // A quarter of the configs go to the fourth node, and each node has about a quarter.
    assert!((400..600).contains(&moved), "{moved} of 2000 moved to d");
    assert_eq!(per_node.len(), 4, "{per_node:?}");
    assert!(
        per_node.values().all(|n| (400..600).contains(n)),
        "{per_node:?}"
    );
}

/// A node that records a retry for a config it no longer serves tells the config's home once the
/// record has committed (`Store::tell_home`): the home hears `DeliveriesWaiting` and then finds
/// the retry free, long before it is due.
#[tokio::test]
async fn a_retry_left_to_the_config_s_home_is_told_to_it_after_its_record() {
    let (a, b, _) = two_nodes(Duration::from_secs(30)).await;
    let mut signals = b.take_signals().unwrap();
    let hooks_id = a_claims_what_b_ingested(&a, &b).await;
    a.record_attempt(AttemptOutcome {
        next_attempt_at: Some(now_millis() + 600_000),
        ..attempt(&hooks_id, 1, 500, DeliveryStatus::Retrying)
    });
    a.tell_home("c1".into());
    loop {
        if let StoreSignal::DeliveriesWaiting { config_id } = next_signal(&mut signals).await {
            assert_eq!(config_id, "c1");
            break;
        }
    }
    let found = b
        .due_deliveries(crate::model::Millis::MAX, 10, &c1())
        .await
        .unwrap();
    let found: Vec<&str> = found.iter().map(|d| d.hooks_id.as_str()).collect();
    assert_eq!(
        found,
        [hooks_id.as_str()],
        "the record committed before the home was told"
    );
}

/// Both nodes judge a config DISABLED at once (each has its own attempts): the change is written
/// once, so its operational event is too; and both nodes read the one outbox.
#[tokio::test]
async fn two_nodes_disabling_one_config_at_once_write_one_operational_event() {
    let (a, b, _) = two_nodes(Duration::from_secs(30)).await;
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    a.insert_config(cfg.clone()).await.unwrap();
    let disabled = Health {
        state: crate::model::HealthState::Disabled,
        consecutive_failures: 1,
        disabled_reason: Some("the receiver answered 410 Gone".into()),
        ..Health::default()
    };
    let rounds = 10;
    for _ in 0..rounds {
        let (x, y) = tokio::join!(
            a.set_health("c1", disabled.clone()),
            b.set_health("c1", disabled.clone())
        );
        x.unwrap();
        y.unwrap();
        // Enabled again by its owner: a fresh health.
        assert!(b.update_config(cfg.clone()).await.unwrap().is_some());
    }
    let events = b.operational_events(100).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    let once_each: Vec<&str> = ["WEBHOOK_CONFIG_DISABLED", "WEBHOOK_CONFIG_RECOVERED"]
        .into_iter()
        .cycle()
        .take(2 * rounds)
        .collect();
    assert_eq!(names, once_each);
    assert_eq!(a.operational_events(100).await.unwrap(), events);
}

#[tokio::test]
async fn nodes_see_each_other_join_and_leave() {
    let (a, b, config) = two_nodes(Duration::from_secs(30)).await;
    let ma = a.membership().await.unwrap();
    let mb = b.membership().await.unwrap();
    assert_eq!((ma.nodes(), mb.nodes()), (2, 2));
    assert_ne!(ma.rank(), mb.rank());
    // The two nodes agree on every config's home: exactly one of them serves it.
    for i in 0..50 {
        let config_id = format!("config-{i}");
        let shares = [ma.share(64, &config_id), mb.share(64, &config_id)];
        assert!(
            shares == [64, 0] || shares == [0, 64],
            "{config_id}: {shares:?}"
        );
    }
    // A third process under a live node's id is refused (it would free that node's leases).
    let same_id = NodeOptions {
        node_id: "a".into(),
        lease_ttl: Duration::from_secs(30),
        ..NodeOptions::default()
    };
    let refused = PostgresStore::open_config(config.clone(), same_id.clone()).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "a second live node \"a\" was let in"
    );
    let mut signals = b.take_signals().unwrap();
    a.close().await;
    loop {
        if next_signal(&mut signals).await == StoreSignal::NodesChanged {
            break;
        }
    }
    let alone = b.membership().await.unwrap();
    assert_eq!((alone.rank(), alone.nodes()), (0, 1), "{alone:?}");
    // Node "a" left cleanly: a new process may take its id at once.
    let again = PostgresStore::open_config(config, same_id).await.unwrap();
    assert_eq!(again.membership().await.unwrap().nodes(), 2);
}

/// Each node finds itself among the live nodes by a search in byte order: with ids whose byte
/// order is not a language's (`B` before `a`), every node counts them all once and takes a rank
/// of its own. When the node searched the list in the order the database gave it (on the en-US
/// test cluster before migration 18), the search missed: a node counted itself twice (7 nodes
/// of 6), and two nodes could share a rank and with it a config's remainder.
#[tokio::test]
async fn nodes_whose_ids_sort_differently_by_bytes_each_take_a_rank_of_their_own() {
    let Place::Postgres(config) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let ids = ["a", "B", "c", "D", "e-1", "E_0"];
    let mut nodes = Vec::new();
    for id in ids {
        let options = NodeOptions {
            node_id: id.into(),
            lease_ttl: Duration::from_secs(30),
            ..NodeOptions::default()
        };
        let store: Arc<dyn Store> = Arc::new(
            PostgresStore::open_config((*config).clone(), options)
                .await
                .unwrap(),
        );
        nodes.push(store);
    }
    let mut ranks = Vec::new();
    for (id, store) in ids.iter().zip(&nodes) {
        let membership = store.membership().await.unwrap();
        assert_eq!(membership.nodes(), ids.len(), "node {id}: {membership:?}");
        ranks.push(membership.rank());
    }
    ranks.sort_unstable();
    assert_eq!(ranks, (0..ids.len()).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_receivers_nul_bytes_do_not_poison_the_writer() {
    let (a, _b, _) = two_nodes(Duration::from_secs(30)).await;
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    a.insert_config(cfg.clone()).await.unwrap();
    a.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 1))
        .await
        .unwrap();
    let hooks_id = claim_one(&a, &cfg, 100).await;
    let mut outcome = attempt(&hooks_id, 1, 200, DeliveryStatus::Succeeded);
    outcome.result.response_body = Some("ok\0then\0more".into());
    outcome.result.error_message = Some("nul\0".into());
    a.record_attempt(outcome);
    // The group commits (PostgreSQL's TEXT refuses NUL: stored as U+FFFD instead).
    a.flush().await.unwrap();
    let detail = a.get_delivery("ak", &hooks_id).await.unwrap().unwrap();
    assert_eq!(detail.summary.status, DeliveryStatus::Succeeded);
    assert_eq!(
        detail.attempts[0].result.response_body.as_deref(),
        Some("ok\u{fffd}then\u{fffd}more")
    );
}

#[test]
fn generated_node_ids_differ_within_one_process() {
    let ids: HashSet<String> = (0..100)
        .map(|_| super::postgres::generated_node_id())
        .collect();
    assert_eq!(ids.len(), 100);
}

async fn a_small_ingest_behind_huge_ones_of_another_tenant_does_not_wait_for_them(
    backend: Backend,
) {
    let (_place, store) = open(backend).await;
    for i in 0..10 {
        store
            .insert_config(config(
                &format!("wide-{i}"),
                "wide",
                vec![Event::ConversionBlock],
            ))
            .await
            .unwrap();
    }
    store
        .insert_config(config("narrow", "narrow", vec![Event::ConversionBlock]))
        .await
        .unwrap();
    // One ingest first, so the writer knows the wide tenant's fan-out (PostgreSQL learns it
    // from an answer).
    let warm = store
        .ingest(
            "wide",
            Product::Sms,
            Event::ConversionBlock,
            hooks("warm", 10),
        )
        .await
        .unwrap();
    assert_eq!(warm.queued, 100);

    // Five ingests of 2,000 hooks to 10 configs (22,000 rows each, more than a group takes
    // beside another job), and meanwhile the other tenant's one-hook ingests, one after the
    // other, until the last huge one is done.
    let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..5 {
        let (store, finished) = (store.clone(), finished.clone());
        tasks.push(tokio::spawn(async move {
            let outcome = store
                .ingest(
                    "wide",
                    Product::Sms,
                    Event::ConversionBlock,
                    hooks(&format!("j{t}"), 2000),
                )
                .await;
            finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            outcome
        }));
    }
    let mut narrow = 0;
    while finished.load(std::sync::atomic::Ordering::SeqCst) < 5 {
        let outcome = store
            .ingest(
                "narrow",
                Product::Sms,
                Event::ConversionBlock,
                hooks(&format!("n{narrow}"), 1),
            )
            .await
            .unwrap();
        assert_eq!(outcome.queued, 1);
        narrow += 1;
    }
    let mut queued = Vec::new();
    for task in tasks {
        queued.push(task.await.unwrap().unwrap().queued);
    }
    assert_eq!(
        queued, [20_000; 5],
        "every ingest committed with its fan-out"
    );
    // A one-hook ingest waits for no huge one to finish: on SQLite each huge one is written in
    // parts (about a dozen each) and the small one commits between two of them, ahead of its
    // group's other work; on PostgreSQL the huge ones run beside the writer. When each small
    // one waited for a huge one, about 5 got through.
    assert!(
        narrow >= 15,
        "only {narrow} one-hook ingests got through while 5 huge ones of another tenant ran"
    );
}

/// The trace's one read: the hook, its app key's configs for its product, the queues that hold
/// it and the deliveries that carry it (with the last attempt); by app key, or across all.
async fn a_trace_reads_the_hook_its_queues_and_its_deliveries(backend: Backend) {
    let (_place, store) = open(backend).await;
    create_app_keys(&store, &["ak", "ak2"]).await;
    let c1 = config("c1", "ak", vec![Event::ConversionBlock]);
    for cfg in [
        c1.clone(),
        config("c2", "ak", vec![Event::ConversionBlock]),
        config("c3", "ak", vec![Event::Unsubscribe]),
    ] {
        store.insert_config(cfg).await.unwrap();
    }
    store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("t", 2))
        .await
        .unwrap();
    store
        .ingest("ak2", Product::Sms, Event::ConversionBlock, hooks("t", 1))
        .await
        .unwrap();
    // c1 takes t-0 alone; c2's queue keeps it.
    let hooks_id = claim_one(&store, &c1, 1).await;
    store.flush().await.unwrap();
    store.record_attempt(attempt(&hooks_id, 1, 200, DeliveryStatus::Succeeded));
    store.flush().await.unwrap();

    let traces = store.trace_hook(Some("ak"), "t-0").await.unwrap();
    assert_eq!(traces.len(), 1);
    let t = &traces[0];
    assert_eq!((t.app_key.as_str(), t.hook_id.as_str()), ("ak", "t-0"));
    assert_eq!((t.product, t.event), (Product::Sms, Event::ConversionBlock));
    assert!(t.body.contains(r#""hookId":"t-0""#), "{}", t.body);
    let ids: Vec<&str> = t.configs.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c1", "c2", "c3"]);
    assert_eq!(t.queued_for, ["c2"]);
    assert_eq!(t.deliveries.len(), 1);
    let d = &t.deliveries[0];
    assert_eq!(
        (d.hooks_id.as_str(), d.config_id.as_str()),
        (hooks_id.as_str(), "c1")
    );
    assert_eq!((d.status, d.attempt_count), (DeliveryStatus::Succeeded, 1));
    assert_eq!(d.last_status_code, Some(200));
    assert!(d.last_attempt_at.is_some());

    // t-1 is still queued for both.
    let t1 = store.trace_hook(Some("ak"), "t-1").await.unwrap();
    assert_eq!(t1[0].queued_for, ["c1", "c2"]);
    assert!(t1[0].deliveries.is_empty());

    assert!(
        store
            .trace_hook(Some("ak"), "nope")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .trace_hook(Some("ak2"), "t-1")
            .await
            .unwrap()
            .is_empty()
    );
    let everywhere = store.trace_hook(None, "t-0").await.unwrap();
    let keys: Vec<&str> = everywhere.iter().map(|t| t.app_key.as_str()).collect();
    assert_eq!(keys, ["ak", "ak2"]);
    assert!(everywhere[1].configs.is_empty());
}

// ---------- PostgreSQL: lock and statement timeouts, config locks, the connection budget ----------

/// A fresh PostgreSQL database and a node's store on it with `options` (the store itself, for
/// what only PostgreSQL has), and the database's config for connections of the test's own.
async fn postgres_node(options: NodeOptions) -> (PostgresStore, super::postgres::DbConfig) {
    let Place::Postgres(config) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let store = PostgresStore::open_config((*config).clone(), options)
        .await
        .unwrap();
    (store, *config)
}

/// Like [`postgres_node`], the store as any store.
async fn postgres_with(options: NodeOptions) -> (Arc<dyn Store>, super::postgres::DbConfig) {
    let (store, config) = postgres_node(options).await;
    (Arc::new(store), config)
}

/// The first column of what `sql` answers, as text.
async fn text_column(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Fails the test instead of hanging it: what these tests check is that nothing hangs.
async fn within_a_minute<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung behind the lock"))
}

fn is_lock_timeout<T>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Unavailable(m)) if m.contains("lock timeout"))
}

#[tokio::test]
async fn writes_and_claims_behind_a_held_lock_fail_after_the_lock_timeout_then_recover() {
    let (store, config) = postgres_with(NodeOptions {
        lock_timeout: Duration::from_millis(200),
        ..NodeOptions::default()
    })
    .await;
    let cfg = config_with_app("c1", "ak");
    store.insert_config(cfg.clone()).await.unwrap();
    store
        .ingest(
            "ak",
            Product::Sms,
            Event::ConversionBlock,
            hooks("before", 2),
        )
        .await
        .unwrap();

    // Another session (an operator, a migration, a stuck transaction) holds the queue.
    let other = config.connect().await.unwrap();
    other
        .batch_execute("BEGIN; LOCK TABLE queue IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let ingest = within_a_minute(
        "an ingest",
        store.ingest(
            "ak",
            Product::Sms,
            Event::ConversionBlock,
            hooks("during", 1),
        ),
    )
    .await;
    assert!(is_lock_timeout(&ingest), "{:?}", ingest.map(|_| ()));
    let claim = within_a_minute("a claim", store.claim_batches(&cfg, 10, 1)).await;
    assert!(is_lock_timeout(&claim), "{:?}", claim.map(|_| ()));

    // The lock gone, the same store works again: nothing was left half-done.
    other.batch_execute("ROLLBACK").await.unwrap();
    store
        .ingest(
            "ak",
            Product::Sms,
            Event::ConversionBlock,
            hooks("after", 1),
        )
        .await
        .unwrap();
    let claimed = claimed_ids(&*store, &cfg, 10, 1).await;
    assert_eq!(claimed, vec!["before-0", "before-1", "after-0"]);
}

#[tokio::test]
async fn a_statement_running_past_the_statement_timeout_is_ended_by_the_server() {
    let Place::Postgres(config) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let store = PostgresStore::open_config(
        *config,
        NodeOptions {
            statement_timeout: Duration::from_millis(200),
            ..NodeOptions::default()
        },
    )
    .await
    .unwrap();
    // 30 s if nothing ends it: the test then fails on the answer, not on a hang.
    let slow = within_a_minute(
        "a slow statement",
        store.execute_on_pool_for_test("SELECT pg_sleep(30)"),
    )
    .await;
    assert!(
        matches!(&slow, Err(StoreError::Unavailable(m)) if m.contains("statement timeout")),
        "{slow:?}"
    );
}

/// A transaction of the node's own left open (its next statement lost with the network, the node
/// frozen mid-job) is ended by the server once it has waited for its next statement for the
/// answer bound (here 0.2 + 0.2 + 5 s): the config row it held is writable again, where it
/// stayed held until the server noticed the connection gone (two hours of keepalive by default).
#[tokio::test]
async fn a_transaction_the_node_left_open_is_ended_by_the_server_after_the_answer_bound() {
    let Place::Postgres(config) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let store = PostgresStore::open_config(
        *config,
        NodeOptions {
            statement_timeout: Duration::from_millis(200),
            lock_timeout: Duration::from_millis(200),
            ..NodeOptions::default()
        },
    )
    .await
    .unwrap();
    let c1 = config_with_app("c1", "ak");
    store.insert_config(c1.clone()).await.unwrap();
    let left_open = store.pooled_for_test().await.unwrap();
    left_open
        .batch_execute("BEGIN; SELECT 1 FROM webhook_configs WHERE id = 'c1' FOR UPDATE")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(
        store.update_config(c1.clone()).await.is_err(),
        "the row is held: the update fails at the lock timeout"
    );
    let deadline = started + Duration::from_secs(30);
    while !left_open.is_closed() {
        assert!(
            std::time::Instant::now() < deadline,
            "the session idle in its transaction was not ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "ended at the bound, not before: {:?}",
        started.elapsed()
    );
    assert!(
        store.update_config(c1).await.unwrap().is_some(),
        "writable once the server ended it"
    );
}

#[tokio::test]
async fn redeliver_and_replay_wait_for_a_concurrent_config_delete_and_then_refuse() {
    let (store, config) = postgres_with(NodeOptions {
        // Long: the writer waits on the other session's lock until the test commits it.
        lock_timeout: Duration::from_secs(60),
        ..NodeOptions::default()
    })
    .await;
    let c1 = config_with_app("c1", "ak");
    let c2 = config_with_app("c2", "ak");
    store.insert_config(c1.clone()).await.unwrap();
    store.insert_config(c2.clone()).await.unwrap();
    store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 1))
        .await
        .unwrap();
    let delivery = claim_one(&store, &c1, 10).await;
    claim_one(&store, &c2, 10).await;

    // Another node deletes both configs; its transaction has not committed yet.
    let other = config.connect().await.unwrap();
    other
        .batch_execute("BEGIN; DELETE FROM webhook_configs WHERE id IN ('c1', 'c2')")
        .await
        .unwrap();
    let redeliver = tokio::spawn({
        let store = store.clone();
        async move { store.redeliver("ak", &delivery, "again".into()).await }
    });
    let replay = tokio::spawn({
        let store = store.clone();
        async move {
            let all = ReplayFilter {
                since: None,
                until: None,
                dry_run: false,
                statuses: Vec::new(),
            };
            store.replay("ak", "c2", all).await
        }
    });
    // Until the redelivery either waits for the delete's lock or (without one) has finished.
    within_a_minute("waiting for the lock", async {
        while !redeliver.is_finished() {
            let waiting: i64 = other
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE wait_event_type = 'Lock' AND datname = current_database()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    other.batch_execute("COMMIT").await.unwrap();
    let redelivered = within_a_minute("redeliver", redeliver).await.unwrap();
    assert!(
        matches!(redelivered, Err(StoreError::Conflict(_))),
        "a delivery was made for a deleted config: {:?}",
        redelivered.map(|d| d.map(|d| d.hooks_id))
    );
    let replayed = within_a_minute("replay", replay).await.unwrap().unwrap();
    assert_eq!(replayed, 0, "hooks were queued for a deleted config");
}

/// Migration 17 moves each delivery's hooks from `delivery_hooks` (a row per hook) to
/// `delivery_hook_lists` (a row per delivery: arrays in the delivery's order, the orderingKey
/// values, the range of seqs): what an earlier release logged reads the same after it (hooks in
/// order, the trace, the log's hookId filter), an open delivery resumes with its hook and still
/// holds its key, a failed ordered delivery gives its other keys' hooks back, and deliveries
/// written after it carry their hooks.
#[tokio::test]
async fn deliveries_logged_with_a_row_per_hook_read_resume_and_redeliver_after_migration_17() {
    let Place::Postgres(db) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let old = super::postgres::create_at_schema_version(&db, 16)
        .await
        .unwrap();
    old.batch_execute(
        r#"INSERT INTO hooks (seq, app_key, hook_id, product, event, body, created_at) VALUES
            (1, 'ak', 'h-0', 'SMS', 'CONVERSION_BLOCK', '{"hookId":"h-0","k":"a"}', 10),
            (2, 'ak', 'h-1', 'SMS', 'CONVERSION_BLOCK', '{"hookId":"h-1","k":"b"}', 10),
            (3, 'ak', 'h-2', 'SMS', 'CONVERSION_BLOCK', '{"hookId":"h-2","k":"c"}', 11),
            (4, 'ak', 'h-3', 'SMS', 'CONVERSION_BLOCK', '{"hookId":"h-3","k":"a"}', 12),
            (5, 'ak', 'h-4', 'SMS', 'CONVERSION_BLOCK', '{"hookId":"h-4","k":"d"}', 12),
            (6, 'ak', 'h-5', 'SMS', 'CONVERSION_BLOCK', '{"hookId":"h-5"}', 13);
        SELECT setval('hooks_seq_seq', 6);
        INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, status,
            attempt_count, next_attempt_at, created_at, updated_at, test) VALUES
            ('zz-old', 'ak', 'c1', 'SMS', 'CONVERSION_BLOCK', 'SUCCEEDED', 1, NULL, 20, 30, FALSE),
            ('aa-open', 'ak', 'c1', 'SMS', 'CONVERSION_BLOCK', 'PENDING', 0, 21, 21, 21, FALSE),
            ('mm-test', 'ak', 'c1', 'SMS', 'CONVERSION_BLOCK', 'SUCCEEDED', 1, NULL, 22, 22, TRUE),
            ('bb-keys', 'ak', 'c1', 'SMS', 'CONVERSION_BLOCK', 'PENDING', 0, 23, 23, 23, FALSE),
            ('cc-mixed', 'ak', 'c1', 'SMS', 'CONVERSION_BLOCK', 'SUCCEEDED', 1, NULL, 24, 24, FALSE);
        INSERT INTO delivery_hooks (hooks_id, position, hook_seq, ordering_key) VALUES
            ('zz-old', 1, 2, NULL), ('zz-old', 0, 1, NULL), ('aa-open', 0, 3, 'c'),
            ('mm-test', 0, 1, NULL), ('bb-keys', 0, 4, 'a'), ('bb-keys', 1, 5, 'd'),
            ('cc-mixed', 1, 1, 'x'), ('cc-mixed', 0, 6, NULL);
        INSERT INTO attempts (hooks_id, number, started_at, duration_ms, status_code)
            VALUES ('zz-old', 1, 25, 3, 200);"#,
    )
    .await
    .unwrap();
    drop(old);
    let (store, check) = opened_after_the_migrations(&db).await;
    let gone = text_column(
        &check,
        "SELECT COALESCE(to_regclass('delivery_hooks')::TEXT, 'dropped')",
    )
    .await;
    assert_eq!(gone, ["dropped"]);
    let arrays = text_column(
        &check,
        "SELECT hooks_id || ' ' || hook_seqs::TEXT || ' ' || COALESCE(hook_keys::TEXT, '-') \
             || ' ' || hook_range::TEXT FROM delivery_hook_lists ORDER BY hooks_id",
    )
    .await;
    assert_eq!(
        arrays,
        [
            "aa-open {3} {c} [3,4)",
            "bb-keys {4,5} {a,d} [4,6)",
            "cc-mixed {6,1} {NULL,x} [1,7)",
            "mm-test {1} - [1,2)",
            "zz-old {1,2} - [1,3)"
        ]
    );
    let mut cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    cfg.ordering_key = Some("k".into());
    store.insert_config(cfg.clone()).await.unwrap();

    let old = store.get_delivery("ak", "zz-old").await.unwrap().unwrap();
    assert_eq!(old.summary.hook_ids, vec!["h-0", "h-1"]);
    assert_eq!(old.attempts.len(), 1);
    let open = store.load_delivery("aa-open").await.unwrap().unwrap();
    let resumed: Vec<_> = open.hooks.iter().map(|h| h.hook_id.as_str()).collect();
    assert_eq!(resumed, vec!["h-2"]);

    // The open deliveries hold their keys: of hooks queued with keys c, a and e, only e's goes.
    store
        .ingest(
            "ak",
            Product::Sms,
            Event::ConversionBlock,
            ["c", "a", "e"]
                .iter()
                .map(|key| ValidatedHook {
                    json: format!(r#"{{"hookId":"n-{key}","k":"{key}"}}"#),
                    hook_id: format!("n-{key}"),
                    id_generated: false,
                })
                .collect(),
        )
        .await
        .unwrap();
    let claim = store.claim_batches(&cfg, 10, 1).await.unwrap();
    let claimed: Vec<_> = claim
        .batches
        .iter()
        .flat_map(|b| b.delivery.hooks.iter().map(|h| h.hook_id.as_str()))
        .collect();
    assert_eq!(claimed, vec!["n-e"]);

    // A failed ordered delivery keeps its first key's hooks; the others go back to the queue.
    store.record_attempt(AttemptOutcome {
        next_attempt_at: Some(now_millis() + 60_000),
        split_by_key: true,
        ..attempt("bb-keys", 1, 500, DeliveryStatus::Retrying)
    });
    store.flush().await.unwrap();
    let kept = store.get_delivery("ak", "bb-keys").await.unwrap().unwrap();
    assert_eq!(kept.summary.hook_ids, vec!["h-3"]);
    let requeued = text_column(
        &check,
        "SELECT q.ordering_key FROM queue q JOIN hooks h ON h.seq = q.hook_seq \
         WHERE h.hook_id = 'h-4'",
    )
    .await;
    assert_eq!(requeued, ["d"]);
    let range = text_column(
        &check,
        "SELECT hook_range::TEXT FROM delivery_hook_lists WHERE hooks_id = 'bb-keys'",
    )
    .await;
    assert_eq!(range, ["[4,5)"]);

    // Redelivered, traced, listed by hookId: old deliveries and new ones alike.
    assert!(
        store
            .redeliver("ak", "mm-test", "again".into())
            .await
            .is_err()
    );
    let (traced, listed) = redelivered_traced_and_listed(&store, "h-0").await;
    // Not cc-mixed: its range of seqs, [1, 6], holds h-1's seq 2, its hooks do not.
    assert_eq!(traced, vec!["zz-old", "new-id"]);
    assert_eq!(listed, vec!["cc-mixed", "mm-test", "new-id", "zz-old"]);
}

/// What the migration tests of both stores check of a log written before the migration: `zz-old`
/// (hooks h-0 and h-1) redelivered as `new-id` with the same hooks, in order and without
/// attempts. Answers the deliveries that the trace of h-1 shows, in its order, and those listed
/// by the hookId `listed_by` (sorted).
async fn redelivered_traced_and_listed(
    store: &dyn Store,
    listed_by: &str,
) -> (Vec<String>, Vec<String>) {
    store
        .redeliver("ak", "zz-old", "new-id".into())
        .await
        .unwrap()
        .unwrap();
    let again = store.get_delivery("ak", "new-id").await.unwrap().unwrap();
    assert_eq!(again.summary.hook_ids, vec!["h-0", "h-1"]);
    assert!(again.attempts.is_empty());
    let traced = store.trace_hook(Some("ak"), "h-1").await.unwrap()[0]
        .deliveries
        .iter()
        .map(|d| d.hooks_id.clone())
        .collect();
    let by_hook = store
        .list_deliveries(
            "ak",
            DeliveryFilter {
                hook_id: Some(listed_by.into()),
                ..DeliveryFilter::default()
            },
            PageRequest {
                size: 10,
                cursor: None,
            },
        )
        .await
        .unwrap();
    let mut listed: Vec<String> = by_hook.items.into_iter().map(|d| d.hooks_id).collect();
    listed.sort_unstable();
    (traced, listed)
}

/// A store opened on `db` (which runs the migrations not applied yet), and a connection of the
/// test's own to it.
async fn opened_after_the_migrations(
    db: &super::postgres::DbConfig,
) -> (PostgresStore, tokio_postgres::Client) {
    let store = PostgresStore::open_config(db.clone(), NodeOptions::default())
        .await
        .unwrap();
    (store, db.connect().await.unwrap())
}

/// Migration 16 rekeys a queue that holds rows: hooks of two events queued for a config,
/// interleaved, in a database an earlier release left (schema 15, the queue keyed by
/// `(config_id, event, hook_seq)`), are claimed by this version each once, the oldest event's
/// first, in acceptance order.
#[tokio::test]
async fn a_queue_holding_hooks_when_it_is_rekeyed_is_claimed_whole_and_in_order() {
    let Place::Postgres(db) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let old = super::postgres::create_at_schema_version(&db, 15)
        .await
        .unwrap();
    // u-0, c-0, c-1, u-1, c-2, u-2, ...: UNSUBSCRIBE first, the events alternating in pairs.
    old.batch_execute(&format!(
        "INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
             SELECT 'ak', CASE WHEN i % 3 = 0 THEN 'u-' ELSE 'c-' END || \
                 CASE WHEN i % 3 = 0 THEN i / 3 ELSE i - i / 3 - 1 END, '{sms}', \
                 CASE WHEN i % 3 = 0 THEN '{un}' ELSE '{cb}' END, '{{}}', 0 \
             FROM generate_series(0, 29) i ORDER BY i; \
         INSERT INTO queue (config_id, event, hook_seq) \
             SELECT 'c1', event, seq FROM hooks",
        sms = Product::Sms.as_str(),
        un = Event::Unsubscribe.as_str(),
        cb = Event::ConversionBlock.as_str(),
    ))
    .await
    .unwrap();
    drop(old);
    let (store, check) = opened_after_the_migrations(&db).await;
    let key = text_column(
        &check,
        "SELECT a.attname::TEXT FROM pg_index i JOIN pg_attribute a \
         ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = 'queue'::regclass AND i.indisprimary \
         ORDER BY array_position(i.indkey::INT2[], a.attnum)",
    )
    .await;
    assert_eq!(key, ["config_id", "hook_seq"]);
    let cfg = config("c1", "ak", vec![Event::Unsubscribe, Event::ConversionBlock]);
    store.insert_config(cfg.clone()).await.unwrap();
    let mut taken: Vec<(Event, Vec<String>)> = Vec::new();
    loop {
        let claim = store.claim_batches(&cfg, 100, 1).await.unwrap();
        let Some(batch) = claim.batches.into_iter().next() else {
            break;
        };
        let ids = batch
            .delivery
            .hooks
            .into_iter()
            .map(|h| h.hook_id)
            .collect();
        taken.push((batch.delivery.event, ids));
    }
    let ids = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}-{i}")).collect();
    assert_eq!(
        taken,
        vec![
            (Event::Unsubscribe, ids("u", 10)),
            (Event::ConversionBlock, ids("c", 20)),
        ]
    );
}

/// Migration 18 on a database holding rows (schema 17, its text columns in the cluster's default
/// collation, the test cluster's a language's): the hooks stay and their key still holds (an
/// ingest of stored hookIds stores only the new one), the queued hooks are claimed whole in
/// order, and the columns compare by bytes.
#[tokio::test]
async fn hooks_stored_before_the_columns_turn_to_bytes_keep_their_keys_and_their_queue() {
    let Place::Postgres(db) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let old = super::postgres::create_at_schema_version(&db, 17)
        .await
        .unwrap();
    let stored = ["h-b", "H-a", "h_c", "\u{e9}"];
    old.execute(
        &format!(
            "INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
                 SELECT 'ak', id, '{sms}', '{cb}', '{{}}', 0 \
                 FROM unnest($1::TEXT[]) WITH ORDINALITY AS u(id, n) ORDER BY n",
            sms = Product::Sms.as_str(),
            cb = Event::ConversionBlock.as_str(),
        ),
        &[&&stored[..]],
    )
    .await
    .unwrap();
    old.batch_execute(
        "INSERT INTO queue (config_id, event, hook_seq) SELECT 'c1', event, seq FROM hooks",
    )
    .await
    .unwrap();
    drop(old);
    let (store, check) = opened_after_the_migrations(&db).await;
    let collation = text_column(
        &check,
        "SELECT co.collname::TEXT FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation \
         WHERE a.attrelid = 'hooks'::regclass AND a.attname = 'hook_id'",
    )
    .await;
    assert_eq!(collation, ["C"]);
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    store.insert_config(cfg.clone()).await.unwrap();
    let again: Vec<ValidatedHook> = stored
        .iter()
        .chain(&["h-new"])
        .map(|id| ValidatedHook {
            json: format!(r#"{{"hookId":"{id}","countryCode":"1"}}"#),
            hook_id: (*id).to_owned(),
            id_generated: false,
        })
        .collect();
    let outcome = store
        .ingest("ak", Product::Sms, Event::ConversionBlock, again)
        .await
        .unwrap();
    assert_eq!(outcome.new_hooks, 1, "only h-new is new");
    let claim = store.claim_batches(&cfg, 100, 100).await.unwrap();
    let taken: Vec<String> = claim
        .batches
        .into_iter()
        .flat_map(|b| b.delivery.hooks)
        .map(|h| h.hook_id)
        .collect();
    assert_eq!(taken, ["h-b", "H-a", "h_c", "\u{e9}", "h-new"]);
}

#[tokio::test]
async fn a_pool_the_server_cannot_take_is_refused_at_start_with_the_numbers() {
    let Place::Postgres(config) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let opened = PostgresStore::open_config(
        (*config).clone(),
        NodeOptions {
            pool_size: 100_000,
            ..NodeOptions::default()
        },
    )
    .await;
    let Err(StoreError::Unavailable(message)) = opened else {
        panic!("a node needing 100,004 connections started");
    };
    assert!(message.contains("max_connections"), "{message}");
    assert!(message.contains("--pg-pool-size 100000"), "{message}");
    assert!(message.contains("needs 100004"), "{message}");
    // The default fits the test cluster (every other test opens stores with it).
    PostgresStore::open_config(*config, NodeOptions::default())
        .await
        .unwrap();
}

/// Prepares the claim on `other` as the store's claims run it: planned once, generically, without
/// sequential scans (the plan is made at its first execution and kept for the session).
async fn prepare_claim(other: &tokio_postgres::Client) {
    other
        .batch_execute(&format!(
            "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan; \
             PREPARE claim_for_test (TEXT, BIGINT, TEXT[], BIGINT, TEXT, TEXT, BIGINT, TEXT, \
             BIGINT) AS {}",
            super::postgres::CLAIM
        ))
        .await
        .unwrap();
}

/// What one execution of the prepared claim (see [`prepare_claim`]) reads (shared buffers hit
/// or read), for a claim of up to `limit` hooks of `config_id`, checking it took `took`; in a
/// transaction that is rolled back.
async fn claim_buffers(
    other: &tokio_postgres::Client,
    config_id: &str,
    limit: i64,
    took: i64,
) -> i64 {
    let plan = explain_rolled_back(
        other,
        &format!(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE claim_for_test('{config_id}', \
             {limit}, ARRAY['d1', 'd2', 'd3'], 10, 'ak', 'SMS', 0, 'n', 0)"
        ),
    )
    .await;
    let top = &plan[0]["Plan"];
    let taken = top["Actual Rows"].as_i64().unwrap();
    assert_eq!(taken, took, "the claim took {taken} hooks: {plan:#}");
    // A node's buffers include those of the nodes beneath it.
    top["Shared Hit Blocks"].as_i64().unwrap() + top["Shared Read Blocks"].as_i64().unwrap()
}

/// The plan of `explain` (an `EXPLAIN (ANALYZE, ..., FORMAT JSON)`), run in a transaction that
/// is rolled back.
async fn explain_rolled_back(other: &tokio_postgres::Client, explain: &str) -> serde_json::Value {
    other.batch_execute("BEGIN").await.unwrap();
    // EXPLAIN's JSON as text (the simple protocol answers text).
    let answer = other.simple_query(explain).await.unwrap();
    other.batch_execute("ROLLBACK").await.unwrap();
    let plan: String = answer
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap();
    serde_json::from_str(&plan).unwrap()
}

/// 20 configs with 10,000 hooks queued for each, in ingest's order (made in SQL: the store's
/// ingest would take seconds), the first 1,000 claimed by all but one (the index keeps their
/// pages, as after a busy hour); then `quiet`'s 20 hooks after them all, through the store.
async fn fill_the_queue(store: &Arc<dyn Store>, other: &tokio_postgres::Client) {
    other
        .batch_execute(
            "INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
                 SELECT 'ak', 'h' || i, 'SMS', 'CONVERSION_BLOCK', \
                        '{\"hookId\":\"h' || i || '\",\"countryCode\":\"1\"}', 0 \
                 FROM generate_series(1, 10000) i; \
             INSERT INTO queue (config_id, event, hook_seq) \
                 SELECT c.id, 'CONVERSION_BLOCK', h.seq FROM hooks h \
                 CROSS JOIN webhook_configs c WHERE c.id LIKE 'busy%' ORDER BY h.seq, c.id; \
             DELETE FROM queue WHERE hook_seq <= 1000 AND config_id <> 'busy00'",
        )
        .await
        .unwrap();
    store
        .ingest("ak", Product::Sms, Event::Unsubscribe, hooks("quiet", 20))
        .await
        .unwrap();
}

/// A store on a fresh PostgreSQL database, and where that database is.
async fn postgres_store() -> (Box<super::postgres::DbConfig>, Arc<dyn Store>) {
    let (store, db) = postgres_with(NodeOptions::default()).await;
    (Box::new(db), store)
}

/// A fresh PostgreSQL store with the configs of [`fill_the_queue`] (20 busy ones and `quiet`),
/// and a connection of the test's own to the same database.
async fn busy_and_quiet_configs() -> (Arc<dyn Store>, tokio_postgres::Client) {
    let (db, store) = postgres_store().await;
    store
        .insert_config(config("quiet", "ak", vec![Event::Unsubscribe]))
        .await
        .unwrap();
    for c in 0..20 {
        store
            .insert_config(config_with_app(&format!("busy{c:02}"), "ak"))
            .await
            .unwrap();
    }
    (store, db.connect().await.unwrap())
}

#[tokio::test]
async fn a_claim_planned_while_the_queue_was_empty_still_reads_only_what_it_takes() {
    let (store, other) = busy_and_quiet_configs().await;
    prepare_claim(&other).await;
    // The first claim on a connection makes its plan: here, on an empty queue (a new node, a
    // reconnect at a quiet moment), and kept while the queue fills.
    assert!(claim_buffers(&other, "quiet", 20, 1).await > 0);
    fill_the_queue(&store, &other).await;
    // About 550 for busy19 (its 1,000 claimed rows are dead in the index until a vacuum) and 200
    // for quiet. When the claim filtered the event in its scan of a queue keyed by
    // (config_id, hook_seq), this plan was a bitmap scan and a sort of every row of the config:
    // 1,766 here, and tens of seconds per claim with a queue of 400,000 (BENCHMARKS.md). The
    // claim now walks the key in order and filters the rows it read.
    for (who, took) in [("busy19", 20), ("quiet", 20)] {
        let reads = claim_buffers(&other, who, 20, took).await;
        assert!(
            reads < 1_000,
            "a claim of 20 hooks of {who}, planned on an empty queue, read {reads} buffers \
             with 10,020 hooks stored"
        );
    }
    // The claim's event is its window's first row's (`first_value` without an ORDER BY): that is
    // the oldest row only while the rows reach the window function in the key's order, straight
    // from the locking scan. A Sort between them would also read and lock the whole window.
    let plan = explain_rolled_back(
        &other,
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim_for_test('busy19', 20, \
         ARRAY['d1', 'd2', 'd3'], 10, 'ak', 'SMS', 0, 'n', 0)",
    )
    .await;
    fn nodes<'a>(node: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        out.push(node);
        for child in node["Plans"].as_array().into_iter().flatten() {
            nodes(child, out);
        }
    }
    let mut all = Vec::new();
    nodes(&plan[0]["Plan"], &mut all);
    let windows_over_the_scan: Vec<_> = all
        .iter()
        .filter(|n| n["Node Type"] == "WindowAgg")
        .filter_map(|w| {
            let mut below = Vec::new();
            nodes(w, &mut below);
            below
                .iter()
                .any(|n| n["Node Type"] == "LockRows")
                .then_some(below)
        })
        .collect();
    assert_eq!(windows_over_the_scan.len(), 1, "{plan:#}");
    assert!(
        !windows_over_the_scan[0]
            .iter()
            .any(|n| n["Node Type"] == "Sort"),
        "the claim's window is sorted: {plan:#}"
    );
}

/// The lookups of a hook's deliveries (its trace, the log filtered by hookId, retention's check)
/// find the lists whose seqs span the hook's through `delivery_hook_lists_by_hook` (migration
/// 19's boxes), whatever the plan's parameter, and answer only those that hold it.
#[tokio::test]
async fn the_deliveries_of_a_hook_are_found_through_the_index_of_their_spans() {
    let (db, _store) = postgres_store().await;
    let other = db.connect().await.unwrap();
    other
        .batch_execute(&format!(
            "INSERT INTO delivery_hook_lists (hooks_id, hook_seqs, hook_range) \
                 SELECT 'd' || i, ARRAY[i * 10, i * 10 + 4], int8range(i * 10, i * 10 + 4, '[]') \
                 FROM generate_series(1, 20000) i; \
             INSERT INTO delivery_hook_lists (hooks_id, hook_seqs, hook_range) \
                 VALUES ('wide', ARRAY[1000, 90000], int8range(1000, 90000, '[]')), \
                        ('none', ARRAY[]::BIGINT[], 'empty'); \
             ANALYZE delivery_hook_lists; \
             SET plan_cache_mode = force_generic_plan; \
             PREPARE holding (BIGINT) AS {}",
            super::postgres::LISTS_HOLDING_HOOK
        ))
        .await
        .unwrap();
    let holding = async |seq: i64| -> Vec<String> {
        other
            .query(&format!("EXECUTE holding({seq})"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    assert_eq!(holding(50_000).await, ["d5000"]);
    assert_eq!(holding(50_004).await, ["d5000"], "the last seq of a list");
    assert!(
        holding(50_002).await.is_empty(),
        "inside a list's span but not in it"
    );
    assert_eq!(holding(1_000).await, ["d100", "wide"]);
    assert_eq!(holding(90_000).await, ["d9000", "wide"]);
    assert!(holding(3).await.is_empty());
    let plan = explain_rolled_back(
        &other,
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE holding(50000)",
    )
    .await;
    let text = plan.to_string();
    assert!(
        text.contains("delivery_hook_lists_by_hook") && !text.contains("Seq Scan"),
        "the lookup goes through the index: {plan:#}"
    );
    let read = plan[0]["Plan"]["Shared Hit Blocks"].as_i64().unwrap()
        + plan[0]["Plan"]["Shared Read Blocks"].as_i64().unwrap();
    // A walk of the 20,002 lists reads every page of the table (about 200).
    assert!(read < 30, "the lookup read {read} buffers: {plan:#}");
}

/// A claim keeps the rows of its oldest row's event among the first four times its limit of the
/// config's queue: one hook of an event queued ahead of thousands of another event's is taken
/// alone, and the claim does not walk the config's queue to find more of its event.
#[tokio::test]
async fn a_claim_of_an_event_reads_a_window_of_the_config_s_queue_not_all_of_it() {
    let (db, _store) = postgres_store().await;
    let other = db.connect().await.unwrap();
    other
        .batch_execute(
            "INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
                 SELECT 'ak', 'h' || i, 'SMS', 'CONVERSION_BLOCK', '{}', 0 \
                 FROM generate_series(1, 10000) i; \
             INSERT INTO queue (config_id, event, hook_seq) \
                 SELECT 'c', CASE WHEN i = 1 OR i > 5000 THEN 'UNSUBSCRIBE' \
                                  ELSE 'CONVERSION_BLOCK' END, h.seq \
                 FROM hooks h JOIN generate_series(1, 10000) i ON h.hook_id = 'h' || i",
        )
        .await
        .unwrap();
    // VACUUM runs outside a transaction: on its own.
    other.batch_execute("VACUUM ANALYZE queue").await.unwrap();
    prepare_claim(&other).await;
    // The oldest hook is the one UNSUBSCRIBE before 4,999 CONVERSION_BLOCKs: taken alone.
    let reads = claim_buffers(&other, "c", 20, 1).await;
    // The window's 80 rows, the deliveries written and the queue counted: 174 buffers on the
    // tests' cluster (fsync off), 237 on a durable one. Walking the config's rows until 20
    // UNSUBSCRIBEs reads 5,020 rows, each a buffer of the queue's index and one of its heap.
    assert!(
        reads < 1_000,
        "a claim of 20 hooks read {reads} buffers to take one hook"
    );
    // A claim of the other event, alone ahead: 20 taken from the window.
    other
        .batch_execute("DELETE FROM queue WHERE hook_seq = (SELECT min(hook_seq) FROM queue)")
        .await
        .unwrap();
    claim_buffers(&other, "c", 20, 20).await;
}

/// A store on a fresh database whose config `busy00` has 5,000 hooks queued (h1..h5000), and
/// a connection acting as another node: its transaction open, holding the config's claim lock
/// and the config's first 4,000 queued rows, as that node's claim does while it runs.
async fn a_claim_under_way_on_another_node(
    options: NodeOptions,
) -> (
    Arc<dyn Store>,
    WebhookConfig,
    tokio_postgres::Client,
    tokio_postgres::Client,
) {
    let (store, db) = postgres_with(options).await;
    let cfg = config_with_app("busy00", "ak");
    store.insert_config(cfg.clone()).await.unwrap();
    let other = db.connect().await.unwrap();
    other
        .batch_execute(
            "INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
                 SELECT 'ak', 'h' || i, 'SMS', 'CONVERSION_BLOCK', \
                        '{\"hookId\":\"h' || i || '\"}', 0 \
                 FROM generate_series(1, 5000) i ORDER BY i; \
             INSERT INTO queue (config_id, event, hook_seq) \
                 SELECT 'busy00', 'CONVERSION_BLOCK', seq FROM hooks ORDER BY seq",
        )
        .await
        .unwrap();
    let node = db.connect().await.unwrap();
    node.batch_execute("BEGIN").await.unwrap();
    node.query(super::postgres::CONFIG_CLAIM_LOCK, &[&cfg.id])
        .await
        .unwrap();
    node.batch_execute(
        "SELECT count(*) FROM (SELECT 1 FROM queue WHERE config_id = 'busy00' \
         ORDER BY config_id, hook_seq LIMIT 4000 FOR UPDATE) held",
    )
    .await
    .unwrap();
    (store, cfg, other, node)
}

/// The hookIds a claim took, in order.
fn taken_ids(claim: &super::Claim) -> Vec<String> {
    batch_ids(claim).concat()
}

/// Claims of one config run one at a time across nodes (`CONFIG_CLAIM_LOCK`): a claim beside
/// another node's claim of the config waits for it, then takes the hooks after those it took.
/// Side by side, it read past every row the other held (twice the reads per hook; BENCHMARKS.md,
/// "PostgreSQL: claims of one config one at a time across nodes").
#[tokio::test]
async fn a_claim_beside_another_node_s_claim_of_its_config_waits_for_it_then_takes_the_next_hooks()
{
    let (store, cfg, other, node) = a_claim_under_way_on_another_node(NodeOptions {
        claim_lock_wait: Duration::from_secs(60),
        lock_timeout: Duration::from_secs(60),
        ..NodeOptions::default()
    })
    .await;
    let claim = tokio::spawn({
        let (store, cfg) = (store.clone(), cfg.clone());
        async move { store.claim_batches(&cfg, 10, 2).await }
    });
    // The claim waits for the config's lock (without it, it took h4001.. at once).
    let waiting = || async {
        let n: i64 = other
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        n
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while waiting().await == 0 {
        assert!(
            !claim.is_finished() && tokio::time::Instant::now() < deadline,
            "the claim did not wait for the other claim of its config"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The other claim ends, having taken its rows: this one takes the rows after them.
    node.batch_execute(
        "DELETE FROM queue WHERE hook_seq IN (SELECT q.hook_seq FROM queue q \
         JOIN hooks h ON h.seq = q.hook_seq WHERE substr(h.hook_id, 2)::INT <= 4000); COMMIT",
    )
    .await
    .unwrap();
    let claim = claim.await.unwrap().unwrap();
    let expected: Vec<String> = (4001..=4020).map(|i| format!("h{i}")).collect();
    assert_eq!(taken_ids(&claim), expected, "{claim:?}");
    assert!(!claim.contended && !claim.drained, "{claim:?}");
}

/// A claim that does not get its config's claim lock within `claim_lock_wait` (another node's
/// claim stuck: its node frozen or cut off with the transaction open) claims beside it, passing
/// over the rows it holds, so one stuck claim does not stop the config on every node. The held
/// rows stay queued: they are taken once that transaction ends.
#[tokio::test]
async fn a_claim_beside_a_stuck_claim_of_its_config_takes_the_hooks_after_the_ones_it_holds() {
    let (store, cfg, _other, node) = a_claim_under_way_on_another_node(NodeOptions {
        claim_lock_wait: Duration::from_millis(100),
        ..NodeOptions::default()
    })
    .await;
    let claim = store.claim_batches(&cfg, 10, 2).await.unwrap();
    let expected: Vec<String> = (4001..=4020).map(|i| format!("h{i}")).collect();
    assert_eq!(taken_ids(&claim), expected, "{claim:?}");
    // The stuck transaction ends without taking anything: its rows are claimed, first.
    node.batch_execute("ROLLBACK").await.unwrap();
    let claim = store.claim_batches(&cfg, 10, 2).await.unwrap();
    let expected: Vec<String> = (1..=20).map(|i| format!("h{i}")).collect();
    assert_eq!(taken_ids(&claim), expected, "{claim:?}");
}

#[tokio::test]
async fn a_claim_planned_when_statistics_said_the_queue_was_empty_takes_its_limit_in_one_pass() {
    let (store, other) = busy_and_quiet_configs().await;
    // Autovacuum's ANALYZE ran while the queue was empty (a new database, a quiet moment): the
    // statistics say "no rows" until the next one, and every connection that prepares the claim
    // meanwhile plans it on them.
    other.batch_execute("ANALYZE queue").await.unwrap();
    // The broken plan re-ran the locking subquery for every queued row: minutes here. Far above
    // the milliseconds a claim takes, so this ends a hang, not a slow run.
    other
        .batch_execute("SET statement_timeout = '60s'")
        .await
        .unwrap();
    prepare_claim(&other).await;
    // The plan is made at the first execution, on those statistics, and kept for the session.
    claim_buffers(&other, "quiet", 20, 1).await;
    fill_the_queue(&store, &other).await;
    for (who, took) in [("busy19", 20), ("quiet", 20), ("busy00", 20)] {
        // `claim_buffers` checks the claim took exactly `took`: never more than its limit.
        let reads = claim_buffers(&other, who, 20, took).await;
        assert!(
            reads < 1_000,
            "a claim of 20 hooks of {who}, planned on statistics of an empty queue, read \
             {reads} buffers with 10,020 hooks stored"
        );
    }
}

#[tokio::test]
async fn a_claim_reads_what_it_takes_not_the_other_configs_queues_nor_the_hooks_table() {
    let (store, other) = busy_and_quiet_configs().await;
    fill_the_queue(&store, &other).await;
    // VACUUM runs outside a transaction: on its own.
    other.batch_execute("VACUUM ANALYZE queue").await.unwrap();
    other.batch_execute("ANALYZE").await.unwrap();
    prepare_claim(&other).await;
    let busy_reads = claim_buffers(&other, "busy19", 20, 20).await;
    let quiet_reads = claim_buffers(&other, "quiet", 20, 20).await;
    // Taking 20 hooks (two deliveries, 20 links, 20 hook texts) reads about 200 buffers. With
    // `config_id = $1` the generic plan walked `queue_by_hook` past every row queued for the
    // other configs (3,500 here, growing with the queue); a join to `hooks` the planner may turn
    // into a hash of the whole table (seen on the cluster tests' database, not made here).
    for (who, reads) in [("quiet", quiet_reads), ("busy", busy_reads)] {
        assert!(
            reads < 600,
            "a claim of 20 hooks of the {who} config read {reads} buffers (10,020 hooks stored)"
        );
    }
}

/// Claims that took 10,000 queue rows have the node vacuum the queue itself (autovacuum comes by
/// once a minute at best, and until a vacuum every claim of a config walks the index entries of
/// the rows taken before it): counted in `pg_stat_user_tables.vacuum_count`, which autovacuum's
/// runs do not count, and the entries of the rows taken are gone from the index.
#[tokio::test]
async fn claims_that_took_ten_thousand_rows_have_the_node_vacuum_the_queue() {
    let (db, store) = postgres_store().await;
    let other = db.connect().await.unwrap();
    let cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    store.insert_config(cfg.clone()).await.unwrap();
    other
        .batch_execute(
            "ALTER TABLE queue SET (autovacuum_enabled = off); \
             INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
                 SELECT 'ak', 'h' || i, 'SMS', 'CONVERSION_BLOCK', \
                        '{\"hookId\":\"h' || i || '\",\"countryCode\":\"1\"}', 0 \
                 FROM generate_series(1, 10050) i; \
             INSERT INTO queue (config_id, event, hook_seq) \
                 SELECT 'c1', 'CONVERSION_BLOCK', seq FROM hooks ORDER BY seq",
        )
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let other = &other;
        async move { other.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let vacuums = "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'queue'";
    assert_eq!(count(vacuums).await, 0, "a vacuum before any claim");
    let mut taken = 0;
    while taken < 10_000 {
        let claim = store.claim_batches(&cfg, 100, 10).await.unwrap();
        assert!(!claim.batches.is_empty(), "the queue ran dry at {taken}");
        taken += claim
            .batches
            .iter()
            .map(|b| b.delivery.hooks.len())
            .sum::<usize>();
    }
    let vacuumed = tokio::time::timeout(Duration::from_secs(30), async {
        while count(vacuums).await == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        vacuumed.is_ok(),
        "no vacuum of the queue after 10,000 rows taken"
    );
    // The taken rows' entries are gone from the queue's key: a read of the config's rows through
    // it, as a claim reads them, passes the 50 left and little else (before the vacuum, the
    // 10,000 dead entries were some 60 index pages).
    other
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
    let plan = explain_rolled_back(
        &other,
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT hook_seq FROM queue \
         WHERE config_id >= 'c1' AND config_id <= 'c1' ORDER BY config_id, hook_seq",
    )
    .await;
    let top = &plan[0]["Plan"];
    let read =
        top["Shared Hit Blocks"].as_i64().unwrap() + top["Shared Read Blocks"].as_i64().unwrap();
    assert_eq!(
        top["Actual Rows"].as_i64().unwrap(),
        10_050 - taken as i64,
        "{plan:#}"
    );
    assert!(
        read < 20,
        "reading the rows left read {read} buffers: {plan:#}"
    );
}

/// The records' statement (`ADVANCE_DELIVERIES`), prepared and planned as the writer plans it
/// (once, generic, without sequential scans) while `deliveries` is empty, then run for 20
/// records once 10,000 deliveries are open: the rows of `deliveries` it reads, in a transaction
/// rolled back, after checking it advanced all 20.
#[tokio::test]
async fn recording_reads_each_delivery_by_its_key_whatever_the_plan_saw() {
    let (db, _store) = postgres_store().await;
    let other = db.connect().await.unwrap();
    other
        .batch_execute(&format!(
            "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan; \
             PREPARE advance_for_test (TEXT[], TEXT[], BIGINT[], BIGINT[], BIGINT, TEXT, \
             TEXT[], TEXT[]) AS {}",
            super::postgres::advance_deliveries_sql()
        ))
        .await
        .unwrap();
    let ids = |from: i32| {
        (from..from + 20)
            .map(|i| format!("'d{i}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let advance = |from: i32| {
        format!(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE advance_for_test(ARRAY[{}], \
             array_fill('DELIVERED'::TEXT, ARRAY[20]), array_fill(1::BIGINT, ARRAY[20]), \
             array_fill(NULL::BIGINT, ARRAY[20]), 5, 'n', ARRAY['PENDING', 'RETRYING'], \
             array_fill(NULL::TEXT, ARRAY[20]))",
            ids(from)
        )
    };
    // Autovacuum's ANALYZE would make the plan again, on the full table, whatever the
    // statement says.
    other
        .batch_execute("ALTER TABLE deliveries SET (autovacuum_enabled = off)")
        .await
        .unwrap();
    // The first execution makes the plan: on an empty table (a new database).
    other.simple_query(&advance(0)).await.unwrap();
    other
        .batch_execute(
            "INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, status, \
                 attempt_count, created_at, updated_at, lease_owner) \
             SELECT 'd' || i, 'ak', 'c', 'SMS', 'CONVERSION_BLOCK', 'PENDING', 0, i, i, 'n' \
             FROM generate_series(1, 10000) i",
        )
        .await
        .unwrap();
    let plan = explain_rolled_back(&other, &advance(5000)).await;
    // The statement's CTE (`advanced`) is the first sub-plan: the UPDATE.
    let update = &plan[0]["Plan"]["Plans"][0];
    assert_eq!(
        update["Node Type"], "ModifyTable",
        "the plan's first sub-plan is the UPDATE: {plan:#}"
    );
    // (Row counts may be printed with decimals by newer servers.)
    let number = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let advanced = number(&update["Actual Rows"]);
    assert_eq!(
        advanced, 20.0,
        "the records advanced {advanced} deliveries: {plan:#}"
    );
    // Rows the plan read from `deliveries`: every scan of it, those it kept and those its
    // filters dropped, times its loops (the UPDATE node names the table too but reads nothing).
    fn rows_read(node: &serde_json::Value) -> f64 {
        let number = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        let own = if node["Relation Name"] == "deliveries" && node["Node Type"] != "ModifyTable" {
            (number(&node["Actual Rows"])
                + number(&node["Rows Removed by Filter"])
                + number(&node["Rows Removed by Index Recheck"]))
                * node["Actual Loops"].as_f64().unwrap_or(1.0)
        } else {
            0.0
        };
        own + node["Plans"]
            .as_array()
            .map_or(0.0, |plans| plans.iter().map(rows_read).sum())
    }
    let read = rows_read(&plan[0]["Plan"]);
    // One a record, by key. Planned on the empty table with a bare `status = ANY(...)`: every
    // open delivery (through `deliveries_by_status`), each compared with every record.
    assert!(
        read <= 40.0,
        "20 records read {read} rows of deliveries with 10,000 open: {plan:#}"
    );
}

/// A tenant's claims take turns on a node (one of four places each, `claims::claim_turns`), and
/// another tenant's claim goes past a tenant whose place is taken.
#[tokio::test]
async fn a_tenants_claims_take_turns_and_another_tenants_claim_goes_past_them() {
    let (store, _) = postgres_node(NodeOptions::default()).await;
    let shared: &dyn Store = &store;
    let (a, b) = (config_with_app("a1", "ak"), config_with_app("b1", "bk"));
    for (cfg, prefix) in [(&a, "a"), (&b, "b")] {
        shared.insert_config(cfg.clone()).await.unwrap();
        shared
            .ingest(
                &cfg.app_key,
                Product::Sms,
                Event::ConversionBlock,
                hooks(prefix, 3),
            )
            .await
            .unwrap();
    }
    let held = store.claim_turn_for_test("ak").await.unwrap();
    let b_claim = tokio::time::timeout(Duration::from_secs(10), shared.claim_batches(&b, 10, 1))
        .await
        .expect("bk's claim does not wait for ak's turn")
        .unwrap();
    assert_eq!(b_claim.batches.len(), 1);
    // ak's claim waits for ak's place: nothing of it is done while the place is held. (Without
    // turns it takes a few milliseconds.)
    let a_claim = shared.claim_batches(&a, 10, 1);
    tokio::pin!(a_claim);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), a_claim.as_mut())
            .await
            .is_err(),
        "ak's claim ran while ak's only place was taken"
    );
    drop(held);
    let a_claim = tokio::time::timeout(Duration::from_secs(10), a_claim)
        .await
        .expect("ak's claim runs once its place is free")
        .unwrap();
    assert_eq!(a_claim.batches.len(), 1);
    assert_eq!(a_claim.batches[0].delivery.hooks.len(), 3);
}

#[tokio::test]
async fn the_store_s_sessions_never_compile_statements_with_jit() {
    let (store, _) = postgres_node(NodeOptions::default()).await;
    // The server's default is on: the store turns it off for its sessions (see
    // `connection::Limits::session_options` for what it cost).
    store
        .execute_on_pool_for_test(
            "DO $$ BEGIN IF current_setting('jit') <> 'off' THEN \
             RAISE EXCEPTION 'jit is %', current_setting('jit'); END IF; END $$",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn every_session_of_a_node_is_named_after_the_node_and_its_part() {
    let (store, config) = postgres_node(NodeOptions {
        node_id: "node-7".into(),
        ..NodeOptions::default()
    })
    .await;
    // A read opens a pooled connection; the writers and the listener are open from the start.
    store.list_app_keys(PageRequest::default()).await.unwrap();
    let other = config.connect().await.unwrap();
    let want = [
        "hookline node-7 ingest-writer-1",
        "hookline node-7 ingest-writer-2",
        "hookline node-7 listener",
        "hookline node-7 pool",
        "hookline node-7 writer",
    ];
    let names = within_a_minute("the listener's session", async {
        loop {
            let names = text_column(
                &other,
                "SELECT DISTINCT application_name FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 ORDER BY 1",
            )
            .await;
            if names.len() >= want.len() {
                return names;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(names, want);
}

/// Lists ordered by an id come out in byte order on both stores: SQLite compares text by bytes
/// (`BINARY`), and PostgreSQL's columns are `COLLATE "C"` (migration 18) whatever the database's
/// default (the test cluster's is ICU's en-US, which puts `a` before `B` and `é` before `f`),
/// and a page's cursor resumes in that order.
async fn app_keys_are_listed_in_byte_order_on_both_stores(backend: Backend) {
    let (_place, store) = open(backend).await;
    create_app_keys(&store, &["a", "B", "f", "\u{e9}", "A-1", "a_1"]).await;
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_app_keys(PageRequest { size: 2, cursor })
            .await
            .unwrap();
        listed.extend(page.items.into_iter().map(|r| r.app_key));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, ["A-1", "B", "a", "a_1", "f", "\u{e9}"]);
}

#[tokio::test]
async fn every_text_column_compares_by_bytes_whatever_the_database_collation() {
    let (_store, config) = postgres_with(NodeOptions::default()).await;
    let client = config.connect().await.unwrap();
    // The text columns of every table of the schema, so that a later migration's text column
    // without `COLLATE "C"` fails here on any cluster (a C cluster's default is not the `C`
    // collation). Catalog lookups, not `regcollation` (PostgreSQL 13 and later).
    let columns = "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid \
         WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
           AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
           AND a.atttypid IN ('text'::regtype, 'text[]'::regtype)";
    let by_bytes = "a.attcollation = (SELECT oid FROM pg_collation \
         WHERE collname = 'C' AND collnamespace = 'pg_catalog'::regnamespace)";
    let not_by_bytes = text_column(
        &client,
        &format!("SELECT c.relname || '.' || a.attname {columns} AND NOT {by_bytes} ORDER BY 1"),
    )
    .await;
    assert_eq!(not_by_bytes, Vec::<String>::new());
    let checked = text_column(
        &client,
        &format!("SELECT count(*)::TEXT {columns} AND {by_bytes}"),
    )
    .await;
    assert!(
        checked[0].parse::<u32>().unwrap() > 40,
        "the schema's text columns, all by bytes: {checked:?}"
    );
}

#[tokio::test]
async fn a_role_that_owns_its_database_but_is_no_superuser_runs_the_migrations_and_serves() {
    let Place::Postgres(config) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let admin = config.connect().await.unwrap();
    let role = format!(
        "hookline_role_{}",
        hookline_wire::generate_id().to_lowercase()
    )
    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
    // What the README asks for: a role that may log in and owns the database, nothing more.
    for sql in [
        format!("CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"),
        format!("CREATE DATABASE {role} OWNER {role}"),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    let as_owner = (*config).clone().with_dbname(&role).with_user(&role);
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::open_config(as_owner.clone(), NodeOptions::default())
            .await
            .unwrap(),
    );
    let cfg = config_with_app("c1", "ak");
    store.insert_config(cfg.clone()).await.unwrap();
    store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 1))
        .await
        .unwrap();
    claim_one(&store, &cfg, 10).await;
    // A second node of that role starts too (the migrations are recorded, not run again).
    PostgresStore::open_config(as_owner, NodeOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn nodes_whose_clocks_are_ten_minutes_off_neither_take_live_leases_nor_look_dead() {
    let Place::Postgres(config) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let ten_minutes = 600_000;
    let node = |id: &str, skew: i64| NodeOptions {
        node_id: id.into(),
        lease_ttl: Duration::from_secs(30),
        test_clock_skew_ms: skew,
        ..NodeOptions::default()
    };
    let open = |options: NodeOptions| {
        let config = (*config).clone();
        async move {
            let store: Arc<dyn Store> =
                Arc::new(PostgresStore::open_config(config, options).await.unwrap());
            store
        }
    };
    let live = open(node("live", 0)).await;
    let ahead = open(node("ahead", ten_minutes)).await;
    let behind = open(node("behind", -ten_minutes)).await;
    let cfg = config_with_app("c1", "ak");
    live.insert_config(cfg.clone()).await.unwrap();
    live.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 2))
        .await
        .unwrap();
    // The live node's delivery, leased for 30 s of the database's time.
    let held = claim_one(&live, &cfg, 1).await;

    // Ten minutes ahead, the lease would look expired by the node's own clock: it is not taken.
    let far = now_millis() + 2 * ten_minutes;
    for other in [&ahead, &behind] {
        let due = other.due_deliveries(far, 100, &c1()).await.unwrap();
        assert!(
            due.iter().all(|d| d.hooks_id != held),
            "a skewed node's sweep offers a live node's leased delivery"
        );
        assert!(
            matches!(
                other.lease_delivery(&held).await.unwrap(),
                Lease::Unavailable
            ),
            "a skewed node took a live node's lease"
        );
    }
    // Every node sees all three alive: the one behind does not look dead (its heartbeats are in
    // the database's time), and the one ahead does not make the others look dead.
    for store in [&live, &ahead, &behind] {
        assert_eq!(store.membership().await.unwrap().nodes(), 3);
    }
    // The work still goes round: the skewed nodes claim and lease what is free.
    let second = claim_one(&ahead, &cfg, 1).await;
    assert_ne!(second, held);
}

/// `at` is `want` give or take the clocks' measured offsets (a few milliseconds each) and the
/// test's own steps.
fn about(at: i64, want: i64, what: &str) {
    assert!(
        (at - want).abs() < 2_000,
        "{what}: {at} is {} ms from {want}",
        at - want
    );
}

#[tokio::test]
async fn a_retry_is_due_at_the_same_moment_for_every_node_whatever_the_clock_that_scheduled_it() {
    let Place::Postgres(config) = Place::new(Backend::Postgres).await else {
        unreachable!("a PostgreSQL place")
    };
    let ten_minutes: i64 = 600_000;
    let open = |id: &str, skew: i64| {
        let options = NodeOptions {
            node_id: id.into(),
            test_clock_skew_ms: skew,
            ..NodeOptions::default()
        };
        let config = (*config).clone();
        async move {
            let store: Arc<dyn Store> =
                Arc::new(PostgresStore::open_config(config, options).await.unwrap());
            store
        }
    };
    let live = open("live", 0).await;
    let ahead = open("ahead", ten_minutes).await;
    let behind = open("behind", -ten_minutes).await;
    let cfg = config_with_app("c1", "ak");
    live.insert_config(cfg.clone()).await.unwrap();
    live.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 2))
        .await
        .unwrap();

    // The node ten minutes ahead schedules a retry 2 s away by its clock (as its engine would:
    // its clock reads ten minutes more), and is gone.
    let from_ahead = claim_one(&ahead, &cfg, 1).await;
    let due = now_millis() + 2_000;
    ahead.record_attempt(AttemptOutcome {
        next_attempt_at: Some(due + ten_minutes),
        ..attempt(&from_ahead, 1, 500, DeliveryStatus::Retrying)
    });
    ahead.flush().await.unwrap();
    // The live node sees it due in 2 s, not in ten minutes and 2 s: in its sweep, in what it
    // resumes, and in the lease's answer, all in its own clock.
    let swept = live.due_deliveries(due + 1_000, 10, &c1()).await.unwrap();
    let found = swept.iter().find(|d| d.hooks_id == from_ahead);
    let found = found.expect("the live node's sweep finds the retry due in 2 s");
    about(found.next_attempt_at, due, "swept");
    let resumed = live.open_deliveries().await.unwrap();
    let resumed = resumed.iter().find(|d| d.hooks_id == from_ahead).unwrap();
    about(resumed.next_attempt_at, due, "resumed");
    match live.lease_delivery(&from_ahead).await.unwrap() {
        Lease::NotDue(at) => about(at, due, "not due until"),
        other => panic!("leased before it was due: {other:?}"),
    }
    // At that time the live node leases it (its timer would fire then).
    tokio::time::sleep(Duration::from_millis(
        (due - now_millis() + 100).max(0) as u64
    ))
    .await;
    let taken = lease(&live, &from_ahead).await;
    assert!(
        taken.is_some(),
        "the retry is not due at its time for the live node"
    );

    // The node ten minutes behind schedules one a minute away by its clock: for the others it is
    // not due now (it would be by nine minutes), and it is due a minute from now in each one's
    // clock.
    let from_behind = claim_one(&behind, &cfg, 1).await;
    let due = now_millis() + 60_000;
    behind.record_attempt(AttemptOutcome {
        next_attempt_at: Some(due - ten_minutes),
        ..attempt(&from_behind, 1, 500, DeliveryStatus::Retrying)
    });
    behind.flush().await.unwrap();
    let swept = live.due_deliveries(now_millis(), 10, &c1()).await.unwrap();
    assert!(
        swept.iter().all(|d| d.hooks_id != from_behind),
        "a retry scheduled by the node behind is due at once for the others"
    );
    for (store, skew) in [(&live, 0), (&ahead, ten_minutes), (&behind, -ten_minutes)] {
        match store.lease_delivery(&from_behind).await.unwrap() {
            Lease::NotDue(at) => about(at, due + skew, "not due until, in the node's clock"),
            other => panic!("leased a minute early: {other:?}"),
        }
        // The API's `nextAttemptAt` is in the node's clock too, the clock its attempts'
        // `startedAt` are written in (a retry never starts before the time it shows).
        let shown = store
            .get_delivery("ak", &from_behind)
            .await
            .unwrap()
            .unwrap();
        about(
            shown.summary.next_attempt_at.unwrap(),
            due + skew,
            "the API's nextAttemptAt, in the node's clock",
        );
    }
}

// ---------- PostgreSQL: config writes and other nodes' writer groups ----------

/// Until a session of one of node `node`'s writers (jobs or ingests) waits for a row lock, or
/// (`rolled_back`) has rolled a transaction back; fails the test after a minute.
async fn until_the_writer_of(
    node: &str,
    rolled_back: bool,
    other: &tokio_postgres::Client,
) -> &'static str {
    within_a_minute("waiting for the writer", async {
        loop {
            let row = other
                .query_one(
                    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), \
                            count(*) FILTER (WHERE state = 'idle' AND query = 'ROLLBACK') \
                     FROM pg_stat_activity \
                     WHERE datname = current_database() \
                     AND (application_name = $1 OR application_name LIKE $2)",
                    &[
                        &format!("hookline {node} writer"),
                        &format!("hookline {node} ingest-writer-%"),
                    ],
                )
                .await
                .unwrap();
            let (waiting, rolled): (i64, i64) = (row.get(0), row.get(1));
            if waiting > 0 {
                return "waits for a lock";
            }
            if rolled_back && rolled > 0 {
                return "rolled back";
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_config_delete_beside_an_ingest_does_not_deadlock_with_another_nodes_ingest_of_that_hook()
{
    let (a, config) = postgres_with(NodeOptions {
        node_id: "a".into(),
        // Long: waits end by the other session's commit, or by the deadlock detector (1 s).
        lock_timeout: Duration::from_secs(60),
        ..NodeOptions::default()
    })
    .await;
    let cfg = config_with_app("c1", "ak");
    a.insert_config(cfg.clone()).await.unwrap();
    a.flush().await.unwrap();

    // Node B's writer group, open: its ingest of the hook has inserted it and not committed.
    let b = config.connect().await.unwrap();
    b.batch_execute("BEGIN").await.unwrap();
    b.execute(
        "INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
         VALUES ('ak', 'same-0', $1, $2, '{}', 0)",
        &[&Product::Sms.as_str(), &Event::ConversionBlock.as_str()],
    )
    .await
    .unwrap();

    // On A the config is deleted and the same hook ingested at once (one poll submits both): the
    // delete on the jobs writer, the ingest on the ingest writer, side by side.
    let on_a = tokio::spawn({
        let a = a.clone();
        async move {
            tokio::join!(
                a.delete_config("ak", "c1"),
                a.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("same", 1)),
            )
        }
    });
    // A's ingest waits for B's insert of the same hookId.
    until_the_writer_of("a", false, &b).await;
    // B's ingest goes on to lock the config it fans out to (its `FOR KEY SHARE`): with the delete
    // uncommitted in A's transaction, B would wait for A while A waits for B.
    let b_locks = b
        .query(
            "SELECT id FROM webhook_configs WHERE id = 'c1' FOR KEY SHARE",
            &[],
        )
        .await;
    let b_commits = b.batch_execute("COMMIT").await;
    let (deleted, ingested) = within_a_minute("node A's writes", on_a).await.unwrap();
    assert!(
        b_locks.is_ok(),
        "node B's group failed: {:?}",
        b_locks.map(|_| ())
    );
    b_commits.unwrap();
    assert!(deleted.unwrap(), "the config was deleted");
    // Node B stored the hook first: A's ingest of it is the producer's retry, accepted.
    assert_eq!(ingested.unwrap().new_hooks, 0);
}

/// A health write (and an operator's update) reads the old state locked, to report a change
/// once: with the lock an UPDATE takes anyway (`FOR NO KEY UPDATE`), never a stronger one, so it
/// does not wait for another node's ingest holding `FOR KEY SHARE` of the config (a group's
/// ingest, then its health writes: with `FOR UPDATE` two nodes' groups deadlocked).
#[tokio::test]
async fn health_and_config_writes_do_not_wait_for_another_nodes_ingest_of_the_config() {
    let (a, config) = postgres_with(NodeOptions {
        node_id: "a".into(),
        // Long: a write that waited would hang, not fail.
        lock_timeout: Duration::from_secs(60),
        ..NodeOptions::default()
    })
    .await;
    let cfg = config_with_app("c1", "ak");
    a.insert_config(cfg.clone()).await.unwrap();
    // Another node's writer group, open, with its ingest's lock on the config.
    let b = config.connect().await.unwrap();
    b.batch_execute("BEGIN; SELECT id FROM webhook_configs WHERE id = 'c1' FOR KEY SHARE")
        .await
        .unwrap();
    let failing = Health {
        state: crate::model::HealthState::Failing,
        consecutive_failures: 5,
        ..Health::default()
    };
    let wait = Duration::from_secs(10);
    tokio::time::timeout(wait, a.set_health("c1", failing))
        .await
        .expect("the health write waited for the other node's ingest")
        .unwrap();
    tokio::time::timeout(wait, a.update_config(cfg))
        .await
        .expect("the config update waited for the other node's ingest")
        .unwrap();
    b.batch_execute("COMMIT").await.unwrap();
    let names: Vec<String> = a
        .operational_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.as_str().to_owned())
        .collect();
    assert_eq!(
        names,
        ["WEBHOOK_CONFIG_FAILING", "WEBHOOK_CONFIG_RECOVERED"]
    );
}

#[tokio::test]
async fn a_config_delete_does_not_deadlock_with_a_group_holding_its_delivery_then_ingesting_for_it()
{
    let (a, config) = postgres_with(NodeOptions {
        node_id: "a".into(),
        lock_timeout: Duration::from_secs(60),
        ..NodeOptions::default()
    })
    .await;
    let cfg = config_with_app("c1", "ak");
    a.insert_config(cfg.clone()).await.unwrap();
    a.ingest("ak", Product::Sms, Event::ConversionBlock, hooks("h", 2))
        .await
        .unwrap();
    let held = claim_one(&a, &cfg, 1).await;

    // Node B's writer group, open: a lease (or an attempt's record) holds the delivery's row.
    let b = config.connect().await.unwrap();
    b.batch_execute("BEGIN").await.unwrap();
    b.execute(
        "UPDATE deliveries SET lease_owner = 'b' WHERE hooks_id = $1",
        &[&held],
    )
    .await
    .unwrap();
    let delete = tokio::spawn({
        let a = a.clone();
        async move { a.delete_config("ak", "c1").await }
    });
    // Until the delete holds the config row and waits for the delivery (before), or has found
    // the delivery held and started again (now).
    let seen = until_the_writer_of("a", true, &b).await;
    // B's group goes on to ingest for the config: its `FOR KEY SHARE` of the config row.
    let b_locks = b
        .query(
            "SELECT id FROM webhook_configs WHERE id = 'c1' FOR KEY SHARE",
            &[],
        )
        .await;
    let b_commits = b.batch_execute("COMMIT").await;
    let deleted = within_a_minute("the delete", delete).await.unwrap();
    assert!(
        b_locks.is_ok(),
        "node B's group failed (the delete {seen}): {:?}",
        b_locks.map(|_| ())
    );
    b_commits.unwrap();
    assert!(deleted.unwrap(), "the config was deleted");
    // Its work is cancelled, the held delivery included, and nothing is left queued.
    let left = a
        .list_deliveries(
            "ak",
            DeliveryFilter::default(),
            PageRequest {
                size: 100,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(left.items.len(), 2, "the held delivery and the queued hook");
    assert!(
        left.items
            .iter()
            .all(|d| d.status == DeliveryStatus::Cancelled)
    );
    let queued: i64 = b
        .query_one("SELECT count(*) FROM queue", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 0);
}

/// `orderingKey` in the store: each hook's key value is computed at ingest by one rule on both
/// stores (a string as it is, other values by their JSON text, so `1` and `"1"` are one key;
/// absent and `null` are no key); a claim leaves queued the hooks of a key an open delivery
/// holds and says so (`held_by_order`); a delivery that ends (SUCCEEDED, or EXPIRED) releases
/// its keys; and what is held is read from stored rows, so a reopened store (a restart, another
/// node) holds the same keys.
/// A key held by an open delivery, with more queued hooks than a claim reads in one page
/// (PostgreSQL pages of 2,000), in front of another key: the claim still finds the other key.
async fn a_held_keys_long_backlog_does_not_hide_the_keys_behind_it(backend: Backend) {
    let (_place, store) = open(backend).await;
    let cfg = insert_ordered_config(&*store).await;
    let hook = |id: String, key: &str| ValidatedHook {
        json: format!(r#"{{"hookId":"{id}","k":"{key}"}}"#),
        hook_id: id,
        id_generated: false,
    };
    store
        .ingest(
            "ak",
            Product::Sms,
            Event::ConversionBlock,
            vec![hook("a0".into(), "A")],
        )
        .await
        .unwrap();
    let first = store.claim_batches(&cfg, 1, 1).await.unwrap();
    assert_eq!(first.batches.len(), 1, "{first:?}");
    // A's next 4,500 hooks (in requests of at most 1,000), then one hook of B.
    for chunk in 0..5 {
        let hooks: Vec<ValidatedHook> = (chunk * 1000..((chunk + 1) * 1000).min(4_500))
            .map(|i| hook(format!("a{}", i + 1), "A"))
            .collect();
        store
            .ingest("ak", Product::Sms, Event::ConversionBlock, hooks)
            .await
            .unwrap();
    }
    store
        .ingest(
            "ak",
            Product::Sms,
            Event::ConversionBlock,
            vec![hook("b1".into(), "B")],
        )
        .await
        .unwrap();
    store.flush().await.unwrap();
    let claim = store.claim_batches(&cfg, 10, 2).await.unwrap();
    let taken: Vec<&str> = claim
        .batches
        .iter()
        .flat_map(|b| b.delivery.hooks.iter().map(|h| h.hook_id.as_str()))
        .collect();
    assert_eq!(taken, ["b1"], "A is held by a0's delivery; B must go");
}

async fn an_ordered_config_holds_each_key_until_its_delivery_ends_also_across_a_reopen(
    backend: Backend,
) {
    use serde_json::json;
    let (place, store) = open(backend).await;
    let cfg = insert_ordered_config(&*store).await;
    let ingest = |bodies: Vec<(&'static str, serde_json::Value)>| {
        let store = store.clone();
        async move {
            let hooks = bodies
                .into_iter()
                .map(|(id, mut body)| {
                    body["hookId"] = json!(id);
                    ValidatedHook {
                        json: body.to_string(),
                        hook_id: id.to_owned(),
                        id_generated: false,
                    }
                })
                .collect();
            store
                .ingest("ak", Product::Sms, Event::ConversionBlock, hooks)
                .await
                .unwrap();
        }
    };
    let ids = batch_ids;

    ingest(vec![("a1", json!({"k": "A"})), ("b1", json!({"k": 1}))]).await;
    let first = store.claim_batches(&cfg, 1, 4).await.unwrap();
    assert_eq!(ids(&first), [vec!["a1"], vec!["b1"]]);
    let (a1, b1) = (
        first.batches[0].delivery.hooks_id.clone(),
        first.batches[1].delivery.hooks_id.clone(),
    );

    ingest(vec![
        ("a2", json!({"k": "A"})),
        ("b2", json!({"k": "1"})),
        ("n1", json!({"other": 1})),
        ("z1", json!({"k": null})),
        ("t1", json!({"k": true})),
        ("t2", json!({"k": true})),
    ])
    .await;
    store.flush().await.unwrap();
    // a2 and b2 wait for a1 and b1; the others go, t's two hooks in one batch, in order.
    let second = store.claim_batches(&cfg, 10, 4).await.unwrap();
    assert_eq!(ids(&second), [vec!["n1", "z1", "t1", "t2"]]);
    assert!(second.held_by_order && !second.drained, "{second:?}");
    let third = store.claim_batches(&cfg, 10, 4).await.unwrap();
    assert!(third.batches.is_empty() && third.held_by_order, "{third:?}");

    // a1 succeeds: a2 goes; b2 still waits for b1.
    store.record_attempt(AttemptOutcome {
        wakes_queue: true,
        ..attempt(&a1, 1, 200, DeliveryStatus::Succeeded)
    });
    store.flush().await.unwrap();
    let fourth = store.claim_batches(&cfg, 10, 4).await.unwrap();
    assert_eq!(ids(&fourth), [vec!["a2"]]);
    assert!(fourth.held_by_order, "{fourth:?}");

    // Reopened (a restart, another node): b1 is still open, so b2 still waits.
    drop(store);
    let store = place.open().await;
    let fifth = store.claim_batches(&cfg, 10, 4).await.unwrap();
    assert!(fifth.batches.is_empty() && fifth.held_by_order, "{fifth:?}");

    // b1 ends without being sent (EXPIRED): its key is released too.
    store.expire_delivery(b1.clone());
    store.flush().await.unwrap();
    let sixth = store.claim_batches(&cfg, 10, 4).await.unwrap();
    assert_eq!(ids(&sixth), [vec!["b2"]]);
    assert!(!sixth.held_by_order, "{sixth:?}");
}

/// An ordered claim whose free rows lie in runs between a held key's rows (SQLite deletes such
/// runs as ranges of the queue) takes every free row and leaves every held one: the held key's
/// hooks all go, in order, once its delivery ends, and nothing else is left.
async fn an_ordered_claim_takes_the_free_rows_around_a_held_keys_rows_and_leaves_those(
    backend: Backend,
) {
    use serde_json::json;
    let (_place, store) = open(backend).await;
    let cfg = insert_ordered_config(&*store).await;
    let hook = |id: String, key: String| ValidatedHook {
        json: json!({"hookId": id, "k": key}).to_string(),
        hook_id: id,
        id_generated: false,
    };
    let ids = batch_ids;
    store
        .ingest(
            "ak",
            Product::Sms,
            Event::ConversionBlock,
            vec![hook("x0".into(), "X".into())],
        )
        .await
        .unwrap();
    let first = store.claim_batches(&cfg, 100, 1).await.unwrap();
    assert_eq!(ids(&first), [vec!["x0"]]);
    // Five runs of five free keys, each run followed by one hook of the held key X; then runs
    // of two (shorter than a range) the same way.
    let (mut hooks, mut free, mut held) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..8 {
        let len = if run < 5 { 5 } else { 2 };
        for i in 0..len {
            let id = format!("f{run}_{i}");
            free.push(id.clone());
            hooks.push(hook(id, format!("free{run}_{i}")));
        }
        let id = format!("x{}", run + 1);
        held.push(id.clone());
        hooks.push(hook(id, "X".into()));
    }
    store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks)
        .await
        .unwrap();
    store.flush().await.unwrap();
    let second = store.claim_batches(&cfg, 100, 1).await.unwrap();
    assert_eq!(
        ids(&second),
        [free],
        "every free hook, in order, none of X's"
    );
    assert!(second.held_by_order, "{second:?}");
    store.record_attempt(AttemptOutcome {
        wakes_queue: true,
        ..attempt(
            &first.batches[0].delivery.hooks_id,
            1,
            200,
            DeliveryStatus::Succeeded,
        )
    });
    store.flush().await.unwrap();
    let third = store.claim_batches(&cfg, 100, 1).await.unwrap();
    assert_eq!(ids(&third), [held], "X's hooks, all still queued, in order");
    let fourth = store.claim_batches(&cfg, 100, 1).await.unwrap();
    assert!(fourth.batches.is_empty(), "{fourth:?}");
    assert_eq!(
        store.stats().await.unwrap().queued_hooks,
        0,
        "nothing else left"
    );
}

/// Claims of one ordered config from two nodes at once (PostgreSQL; on SQLite the same store
/// twice) never open two deliveries of one key value, and each key's hooks taken are the first
/// of that key in acceptance order. Nothing is finished, so every key is held after its first
/// delivery and the claims end with the queue held.
async fn concurrent_ordered_claims_never_open_two_deliveries_of_one_key(backend: Backend) {
    use serde_json::json;
    let place = Place::new(backend).await;
    let first = place.open_racing().await;
    let second = match backend {
        Backend::Sqlite => first.clone(),
        Backend::Postgres => place.open_racing().await,
    };
    let cfg = insert_ordered_config(&*first).await;
    // 10 keys, interleaved: hook i has key i % 10.
    let hooks: Vec<ValidatedHook> = (0..200)
        .map(|i| ValidatedHook {
            json: json!({"hookId": format!("h{i}"), "k": i % 10}).to_string(),
            hook_id: format!("h{i}"),
            id_generated: false,
        })
        .collect();
    first
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let mut batches = Vec::new();
            loop {
                let claim = store.claim_batches(&cfg, 3, 4).await.unwrap();
                if claim.batches.is_empty() && !claim.contended {
                    assert!(claim.held_by_order, "{claim:?}");
                    return batches;
                }
                if claim.contended {
                    // Another claim of the config holds its lock: it ends within one claim.
                    tokio::task::yield_now().await;
                }
                for batch in claim.batches {
                    let ids: Vec<usize> = batch
                        .delivery
                        .hooks
                        .iter()
                        .map(|h| h.hook_id[1..].parse().unwrap())
                        .collect();
                    batches.push(ids);
                }
            }
        }));
    }
    // key -> the delivery (task, batch) that took it, and the hooks it took.
    let mut taken: HashMap<usize, ((usize, usize), Vec<usize>)> = std::collections::HashMap::new();
    for (t, task) in tasks.into_iter().enumerate() {
        for (b, ids) in task.await.unwrap().into_iter().enumerate() {
            for id in ids {
                let (owner, hooks) = taken.entry(id % 10).or_insert(((t, b), Vec::new()));
                assert_eq!(*owner, (t, b), "key {} in two open deliveries", id % 10);
                hooks.push(id);
            }
        }
    }
    assert_eq!(taken.len(), 10, "every key got its first delivery");
    for (key, (_, hooks)) in taken {
        let first_of_key: Vec<usize> = (0..hooks.len()).map(|n| key + 10 * n).collect();
        assert_eq!(
            hooks, first_of_key,
            "key {key}: the first of its hooks, in order"
        );
    }
}

/// An ordered claim on PostgreSQL is several round trips in one transaction on a pooled
/// connection. A caller that stops waiting part way (a timeout, a shutdown) must not leave that
/// transaction open: the pool would hand the connection to its next user mid-transaction,
/// holding the config's lock and taking that user's statements into the transaction.
#[tokio::test]
async fn a_cancelled_ordered_claim_leaves_no_transaction_open_on_a_pooled_connection() {
    use std::future::Future;
    use std::task::Poll;

    let (db, store) = postgres_store().await;
    let cfg = insert_ordered_config(&*store).await;
    let hooks: Vec<ValidatedHook> = (0..500)
        .map(|i| ValidatedHook {
            json: format!(r#"{{"hookId":"h{i}","k":"key{}"}}"#, i % 50),
            hook_id: format!("h{i}"),
            id_generated: false,
        })
        .collect();
    store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks)
        .await
        .unwrap();
    store.flush().await.unwrap();

    // Each claim is polled n times, the server given time to answer between polls, then
    // dropped: that stops it after each of its round trips in turn. The last one is dropped
    // early (a later claim on the same connection would otherwise end what it left open).
    let mut dropped_pending = 0;
    for n in (1..=12).rev() {
        let mut claim = std::pin::pin!(store.claim_batches(&cfg, 1, 1));
        let mut finished = false;
        for _ in 0..n {
            let polled = std::future::poll_fn(|cx| Poll::Ready(claim.as_mut().poll(cx))).await;
            if polled.is_ready() {
                finished = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A claim that finished is not polled again (a finished future must not be).
        let pending = !finished
            && std::future::poll_fn(|cx| Poll::Ready(claim.as_mut().poll(cx)))
                .await
                .is_pending();
        if pending {
            dropped_pending += 1;
        }
    }
    assert!(
        dropped_pending >= 3,
        "only {dropped_pending} claims were dropped part way"
    );

    // A connection closed by the pool ends its transaction as soon as the server notices.
    let other = db.connect().await.unwrap();
    let open = || async {
        let n: i64 = other
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        n
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut left = open().await;
    while left > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = open().await;
    }
    assert_eq!(left, 0, "pooled connections left idle in a transaction");
    // And the config's claims go on: no lock is left held.
    let claim = store.claim_batches(&cfg, 10, 2).await.unwrap();
    assert!(!claim.contended, "{claim:?}");
    assert!(!claim.batches.is_empty(), "{claim:?}");
}

/// `AttemptOutcome::split_by_key`: a failed delivery of an ordered config that held several key
/// values keeps only its first hook's; the other hooks go back to the queue at their places, so
/// the next claim takes them (their keys free) while the first key waits for its retry. A
/// record written again late moves nothing twice.
async fn a_failed_delivery_of_several_keys_keeps_its_first_key_and_gives_the_others_back(
    backend: Backend,
) {
    let (_place, store) = open(backend).await;
    let mut signals = store.take_signals().unwrap();
    let mut cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    cfg.ordering_key = Some("k".into());
    store.insert_config(cfg.clone()).await.unwrap();
    let hook = |id: &str, key: Option<&str>| ValidatedHook {
        json: match key {
            Some(key) => format!(r#"{{"hookId":"{id}","k":"{key}"}}"#),
            None => format!(r#"{{"hookId":"{id}"}}"#),
        },
        hook_id: id.into(),
        id_generated: false,
    };
    let ingest = |hooks: Vec<ValidatedHook>| {
        let store = store.clone();
        async move {
            store
                .ingest("ak", Product::Sms, Event::ConversionBlock, hooks)
                .await
                .unwrap();
            store.flush().await.unwrap();
        }
    };
    let ids = batch_ids;
    ingest(vec![
        hook("a1", Some("A")),
        hook("b1", Some("B")),
        hook("a2", Some("A")),
        hook("n1", None),
        hook("b2", Some("B")),
    ])
    .await;
    let first = store.claim_batches(&cfg, 10, 1).await.unwrap();
    assert_eq!(ids(&first), [vec!["a1", "b1", "a2", "n1", "b2"]]);
    let delivery = first.batches[0].delivery.hooks_id.clone();
    // A later hook of B waits in the queue behind the open delivery.
    ingest(vec![hook("b3", Some("B"))]).await;
    let held = store.claim_batches(&cfg, 10, 1).await.unwrap();
    assert!(held.batches.is_empty() && held.held_by_order, "{held:?}");

    let failed = AttemptOutcome {
        next_attempt_at: Some(now_millis() + 60_000),
        split_by_key: true,
        ..attempt(&delivery, 1, 500, DeliveryStatus::Retrying)
    };
    while signals.try_recv().is_ok() {} // what the ingests signalled
    store.record_attempt(failed.clone());
    store.flush().await.unwrap();
    // The config is woken: hooks came back to its queue.
    let woken = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match signals.recv().await {
                Some(StoreSignal::NewWork { config_id }) if config_id == "c1" => break,
                Some(_) => continue,
                None => panic!("the store's signals ended"),
            }
        }
    })
    .await;
    assert!(woken.is_ok(), "no NewWork after the split");

    let kept = store.load_delivery(&delivery).await.unwrap().unwrap();
    let kept: Vec<&str> = kept.hooks.iter().map(|h| h.hook_id.as_str()).collect();
    assert_eq!(kept, ["a1", "a2"], "the first key's hooks stay, in order");
    // B's hooks (b3 behind them, in acceptance order) and the unkeyed one go at once; A waits.
    let next = store.claim_batches(&cfg, 10, 4).await.unwrap();
    assert_eq!(ids(&next), [vec!["b1", "n1", "b2", "b3"]], "{next:?}");

    // The same record again (a resubmission) moves nothing more.
    store.record_attempt(failed);
    store.flush().await.unwrap();
    let kept = store.load_delivery(&delivery).await.unwrap().unwrap();
    assert_eq!(kept.hooks.len(), 2);
    let after = store.claim_batches(&cfg, 10, 4).await.unwrap();
    assert!(after.batches.is_empty(), "{after:?}");
}

/// Wide PostgreSQL ingests (beside the writer, one at a time per node) take turns tenant by
/// tenant: a tenant with five wide requests waiting holds one place in the node's line, so
/// another tenant's wide request waits for the one running, not for all five.
#[tokio::test]
async fn a_tenants_wide_ingest_waits_behind_one_of_anothers_not_all() {
    let (_, store) = postgres_store().await;
    for tenant in ["noisy", "quiet"] {
        for i in 0..30 {
            let id = format!("{tenant}-{i}");
            let cfg = config(&id, tenant, vec![Event::ConversionBlock]);
            store.insert_config(cfg).await.unwrap();
        }
        // One ingest first: the node learns the tenant's fan-out from its answer.
        let warm = hooks(&format!("{tenant}-warm"), 1);
        let outcome = store
            .ingest(tenant, Product::Sms, Event::ConversionBlock, warm)
            .await
            .unwrap();
        assert_eq!(outcome.queued, 30);
    }
    let done = Arc::new(std::sync::Mutex::new(Vec::new()));
    let wide = |tenant: &'static str, request: usize| {
        let (store, done) = (store.clone(), done.clone());
        // 100 hooks to 30 configs: 3,100 rows, beside the writer.
        tokio::spawn(async move {
            let hooks = hooks(&format!("{tenant}{request}"), 100);
            let outcome = store
                .ingest(tenant, Product::Sms, Event::ConversionBlock, hooks)
                .await
                .unwrap();
            assert_eq!(outcome.queued, 3_000);
            done.lock().unwrap().push(format!("{tenant}{request}"));
        })
    };
    let mut tasks: Vec<_> = (0..5).map(|r| wide("noisy", r)).collect();
    // The test's runtime has one thread: yielding lets each noisy request run up to its turn.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tasks.push(wide("quiet", 0));
    for task in tasks {
        task.await.unwrap();
    }
    let order = done.lock().unwrap().clone();
    let quiet = order.iter().position(|t| t == "quiet0").unwrap();
    assert!(
        quiet <= 2,
        "the quiet tenant's wide ingest finished {} of 6: {order:?}",
        quiet + 1
    );
}

/// Migration 18 re-keys the deliveries, their hooks and their attempts by a seq: what an earlier
/// release logged reads the same after it (hooks in order, attempts in order, the trace, the log's
/// hookId filter), an open delivery resumes and records its attempt, and new deliveries written
/// after it (a redelivery) carry their hooks.
#[tokio::test]
async fn deliveries_logged_before_they_were_keyed_by_seq_read_resume_and_redeliver_after() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = super::sqlite::create_at_schema_version(dir.path(), 17).unwrap();
        conn.execute_batch(
            r#"INSERT INTO hooks (seq, app_key, hook_id, product, event, body, created_at) VALUES
                (1, 'ak', 'h-0', 'SMS', 'CONVERSION_BLOCK', '{"hookId":"h-0","countryCode":"1"}', 10),
                (2, 'ak', 'h-1', 'SMS', 'CONVERSION_BLOCK', '{"hookId":"h-1","countryCode":"1"}', 10),
                (3, 'ak', 'h-2', 'SMS', 'CONVERSION_BLOCK', '{"hookId":"h-2","countryCode":"1"}', 11);
            INSERT INTO deliveries (hooks_id, app_key, config_id, product, event, status,
                attempt_count, next_attempt_at, created_at, updated_at, test) VALUES
                ('zz-old', 'ak', 'c1', 'SMS', 'CONVERSION_BLOCK', 'SUCCEEDED', 2, NULL, 20, 30, 0),
                ('aa-open', 'ak', 'c1', 'SMS', 'CONVERSION_BLOCK', 'PENDING', 0, 21, 21, 21, 0),
                ('mm-test', 'ak', 'c1', 'SMS', 'CONVERSION_BLOCK', 'SUCCEEDED', 1, NULL, 22, 22, 1);
            INSERT INTO delivery_hooks (hooks_id, position, hook_seq, ordering_key) VALUES
                ('zz-old', 1, 2, NULL), ('zz-old', 0, 1, NULL), ('aa-open', 0, 3, 'k-3'),
                ('mm-test', 0, 1, NULL);
            INSERT INTO attempts (hooks_id, number, started_at, duration_ms, status_code,
                error_kind, error_message, request_headers) VALUES
                ('zz-old', 2, 25, 3, 200, NULL, NULL, '[["x-tenant","t-1"]]'),
                ('zz-old', 1, 20, 4, NULL, 'TIMEOUT', 'timed out', NULL),
                ('gone', 1, 20, 4, 200, NULL, NULL, NULL);"#,
        )
        .unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let mut cfg = config("c1", "ak", vec![Event::ConversionBlock]);
    cfg.max_hooks_per_request = 1;
    store.insert_config(cfg.clone()).await.unwrap();

    // What no read of the API shows: the ordering key a delivery's hook holds, and an attempt
    // of no delivery left behind.
    {
        let conn = rusqlite::Connection::open(dir.path().join("hookline.db")).unwrap();
        let key: Option<String> = conn
            .query_row(
                "SELECT dh.ordering_key FROM delivery_hooks dh \
                 JOIN deliveries d ON d.seq = dh.delivery_seq WHERE d.hooks_id = 'aa-open'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(key.as_deref(), Some("k-3"));
        let attempts: i64 = conn
            .query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(attempts, 2);
    }
    let old = store.get_delivery("ak", "zz-old").await.unwrap().unwrap();
    assert_eq!(old.summary.hook_ids, vec!["h-0", "h-1"]);
    let attempts: Vec<_> = old
        .attempts
        .iter()
        .map(|a| {
            let r = &a.result;
            (
                a.number,
                r.status_code,
                r.error_message.clone(),
                r.request_headers.len(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        vec![
            (1, None, Some("timed out".into()), 0),
            (2, Some(200), None, 1)
        ]
    );
    // A test send stays one: never redelivered.
    assert!(
        store
            .redeliver("ak", "mm-test", "again".into())
            .await
            .is_err()
    );

    // The open one resumes with its hook, and its attempt is recorded on it.
    let open = store.load_delivery("aa-open").await.unwrap().unwrap();
    let resumed: Vec<_> = open.hooks.iter().map(|h| h.hook_id.as_str()).collect();
    assert_eq!(resumed, vec!["h-2"]);
    store.record_attempt(attempt("aa-open", 1, 200, DeliveryStatus::Succeeded));
    store.flush().await.unwrap();
    let done = store.get_delivery("ak", "aa-open").await.unwrap().unwrap();
    assert_eq!(done.summary.status, DeliveryStatus::Succeeded);
    assert_eq!(done.attempts.len(), 1);

    // A new delivery after the old ones, of the old one's hooks.
    let (traced, listed) = redelivered_traced_and_listed(&*store, "h-2").await;
    assert_eq!(traced, vec!["zz-old", "new-id"]);
    assert_eq!(listed, vec!["aa-open"]);

    // A claim after the migration writes several deliveries at once, each with its own hook.
    store
        .ingest("ak", Product::Sms, Event::ConversionBlock, hooks("n", 3))
        .await
        .unwrap();
    let claim = store.claim_batches(&cfg, 1, 3).await.unwrap();
    assert_eq!(claim.batches.len(), 3);
    store.flush().await.unwrap();
    for batch in &claim.batches {
        let stored = store
            .get_delivery("ak", &batch.delivery.hooks_id)
            .await
            .unwrap()
            .unwrap();
        let claimed: Vec<_> = batch.delivery.hooks.iter().map(|h| &h.hook_id).collect();
        assert_eq!(stored.summary.hook_ids.iter().collect::<Vec<_>>(), claimed);
    }
}

/// A database migrated by a newer version is refused at open, naming both schema versions,
/// instead of failing every write on tables that version changed.
#[tokio::test]
async fn a_database_of_a_newer_schema_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = super::sqlite::create_at_schema_version(dir.path(), usize::MAX).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
    }
    let Err(e) = SqliteStore::open(dir.path()) else {
        panic!("a database of schema 999 was opened");
    };
    let e = e.to_string();
    assert!(e.contains("newer hookline (schema 999"), "{e}");
}

/// A steady flood of writes starts the WAL again from its beginning, time after time
/// (`writer::WalRestart`), where it used to grow for as long as the flood lasted: the
/// checkpointer's copies never caught up with a writer that never paused. Seen in the WAL's
/// header, whose checkpoint sequence number goes up by one each time the WAL starts again. Not
/// asserted: how far the WAL grows between two starts, which depends on how long the disk takes
/// to sync a checkpoint (with another process syncing large files beside it, the WAL of 600
/// ingests a producer reached 1.4-2.0 times the hooks' bytes, 2.5 with twice as many; 0.2-0.4 on a
/// quiet disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_flood_of_ingests_starts_the_wal_again_and_again() {
    const PRODUCERS: usize = 16;
    const HOOKS: usize = 4;
    const STARTS: u32 = 3;
    let dir = tempfile::tempdir().unwrap();
    // A checkpoint every 10 ms, and a WAL started again past 256 frames (1 MiB).
    let every = Duration::from_millis(10);
    let store = Arc::new(SqliteStore::open_with_checkpoints(dir.path(), every, 256).unwrap());
    let wal = dir.path().join("hookline.db-wal");
    let starts = Arc::new(WalStarts::default());
    // The flood goes on until the WAL has started again `STARTS` times (a few tenths of a
    // second here), or gives up.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    let padding = "x".repeat(1000);
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let (store, wal, starts, padding) =
            (store.clone(), wal.clone(), starts.clone(), padding.clone());
        producers.push(tokio::spawn(async move {
            let mut i = 0;
            while starts.seen() < STARTS && tokio::time::Instant::now() < give_up {
                let hooks = (0..HOOKS)
                    .map(|h| {
                        let id = format!("p{p}-{i}-{h}");
                        ValidatedHook {
                            json: format!(r#"{{"hookId":"{id}","padding":"{padding}"}}"#),
                            hook_id: id,
                            id_generated: false,
                        }
                    })
                    .collect();
                store
                    .ingest("ak", Product::Sms, Event::ConversionBlock, hooks)
                    .await
                    .unwrap();
                starts.look(&wal);
                // A WAL that does not start again grows by gigabytes a minute: given up at
                // 256 MiB rather than filling the disk (the assert below then fails).
                let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                if size > 256 << 20 {
                    break;
                }
                i += 1;
            }
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }
    assert!(
        starts.seen() >= STARTS,
        "the WAL started again {} times in a steady flood (30 s, or until it reached 256 MiB)",
        starts.seen()
    );
    store.close().await;
}

/// The times a WAL started again, from the checkpoint sequence numbers its header showed (bytes
/// 12-15, big-endian; one more each time): the largest seen less the first.
#[derive(Default)]
struct WalStarts(std::sync::Mutex<Option<(u32, u32)>>);

impl WalStarts {
    fn look(&self, wal: &std::path::Path) {
        use std::io::Read;
        let mut header = [0u8; 16];
        let read = std::fs::File::open(wal).and_then(|mut f| f.read_exact(&mut header));
        if read.is_err() {
            return;
        }
        let seq = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
        let mut seen = self.0.lock().unwrap();
        let (first, largest) = seen.get_or_insert((seq, seq));
        *largest = (*largest).max(seq);
        *first = (*first).min(seq);
    }

    fn seen(&self) -> u32 {
        self.0
            .lock()
            .unwrap()
            .map_or(0, |(first, largest)| largest - first)
    }
}

/// Two ingests that share hookIds, in opposite orders, run side by side: both commit, each hook
/// stored once. Each statement inserts its hooks in the order of their keys, so one waits for
/// the other's commit at the first hook they share, holding nothing the other needs. Inserted in
/// request order, each held a hook the other wanted next, and PostgreSQL failed one of them
/// after `deadlock_timeout`. Two ways they meet: on one node, in the two ingest writers' groups
/// side by side (a key whose fan-out the node has not learnt yet goes to the writer: a fresh app
/// key each round); on two nodes, as wide ingests on connections of their own (the fan-out
/// learnt first, 3,000 rows each; one node runs its wide ingests one at a time).
#[tokio::test]
async fn ingests_sharing_hook_ids_in_opposite_orders_side_by_side_both_commit() {
    let (a, b, _) = two_nodes(Duration::from_secs(30)).await;
    let both = |store: Arc<dyn Store>, other: Arc<dyn Store>, app_key: String, prefix: String| async move {
        let forward = hooks(&prefix, 1000);
        let mut backward = hooks(&prefix, 1000);
        backward.reverse();
        let (x, y) = tokio::join!(
            store.ingest(&app_key, Product::Sms, Event::ConversionBlock, forward),
            other.ingest(&app_key, Product::Sms, Event::ConversionBlock, backward),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.new_hooks + y.new_hooks, 1000, "{prefix}");
        assert_eq!(x.queued + y.queued, 3000, "{prefix}");
    };
    for round in 0..4 {
        let app_key = format!("ak{round}");
        for c in 0..3 {
            a.insert_config(config(
                &format!("{app_key}-c{c}"),
                &app_key,
                vec![Event::ConversionBlock],
            ))
            .await
            .unwrap();
        }
        both(a.clone(), a.clone(), app_key, format!("one-node-{round}")).await;
    }
    // Each node learns the fan-out of `ak0` from an answer of its own.
    for (node, store) in [("a", &a), ("b", &b)] {
        let warm = hooks(&format!("warm-{node}"), 1);
        let learnt = store
            .ingest("ak0", Product::Sms, Event::ConversionBlock, warm)
            .await
            .unwrap();
        assert_eq!(learnt.queued, 3);
    }
    for round in 0..3 {
        both(
            a.clone(),
            b.clone(),
            "ak0".into(),
            format!("two-nodes-{round}"),
        )
        .await;
    }
}
