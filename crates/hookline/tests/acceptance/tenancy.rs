//! Issue 5, item 5: tenancy and secrets. A secret key opens only its own app key, on every route
//! under `/v1/appkeys/{appKey}/` (the table is checked against the served OpenAPI document, so a
//! new route cannot be left out); app key management needs the admin token; secret keys are
//! stored hashed; secrets, signing secrets and the admin token never appear in logs or in list and
//! get answers.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::server::Options;
use crate::support::*;

const UNSUB: &str = "UNSUBSCRIBE";

/// Every route under `/v1/appkeys/{appKey}/`, as the OpenAPI document spells it, with a valid body.
fn routes(rx_url: &str) -> Vec<(Method, &'static str, Option<Value>)> {
    let config = config_body(SMS, &[UNSUB], rx_url);
    let window = json!({"since": rfc3339(-3600), "until": rfc3339(3600)});
    vec![
        (Method::POST, "/webhook-configs", Some(config.clone())),
        (Method::GET, "/webhook-configs", None),
        (Method::GET, "/webhook-configs/{webhookConfigId}", None),
        (
            Method::PUT,
            "/webhook-configs/{webhookConfigId}",
            Some(config),
        ),
        (
            Method::PATCH,
            "/webhook-configs/{webhookConfigId}",
            Some(json!({"description": "patched by another tenant"})),
        ),
        (Method::DELETE, "/webhook-configs/{webhookConfigId}", None),
        (
            Method::POST,
            "/webhook-configs/{webhookConfigId}/test",
            Some(json!({"event": UNSUB})),
        ),
        (
            Method::POST,
            "/webhook-configs/{webhookConfigId}/replay",
            Some(window),
        ),
        (
            Method::POST,
            "/webhook-configs/{webhookConfigId}/signing-secret/rotate",
            Some(json!({})),
        ),
        (
            Method::POST,
            "/events",
            Some(
                json!({"productName": SMS, "event": UNSUB, "hooks": [samples::hook(SMS, UNSUB, 0)]}),
            ),
        ),
        (Method::GET, "/deliveries", None),
        (Method::GET, "/deliveries/{hooksId}", None),
        (
            Method::POST,
            "/deliveries/{hooksId}/redeliver",
            Some(json!({})),
        ),
        (Method::POST, "/secret-key/rotate", Some(json!({}))),
        (Method::POST, "/portal-links", Some(json!({}))),
        (Method::GET, "/hooks/{hookId}", None),
    ]
}

/// One app key with a config and a SUCCEEDED delivery: (app, configId, hooksId).
async fn tenant(srv: &Server, rx: &Receiver, name: &str) -> (App, String, String) {
    let app = srv.create_app_key(name).await;
    let cfg = srv
        .create_config(
            &app,
            config_body(SMS, &[UNSUB], &rx.url(&format!("/{name}"))),
        )
        .await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let hook = samples::with_id(samples::hook(SMS, UNSUB, 0), &format!("{name}-hook"));
    srv.ingest(&app, SMS, UNSUB, vec![hook]).await;
    let d = srv
        .wait_for_hook_delivery(&app, &cfg_id, &format!("{name}-hook"), "SUCCEEDED", PROMPT)
        .await;
    (app, cfg_id, s(&d, "hooksId"))
}

fn fill(template: &str, app: &App, cfg: &str, hooks_id: &str) -> String {
    app.path(
        &template
            .replace("{webhookConfigId}", cfg)
            .replace("{hooksId}", hooks_id)
            // The hook `tenant()` ingested for tenant A.
            .replace("{hookId}", "tenant-a-hook"),
    )
}

async fn call(
    srv: &Server,
    method: &Method,
    path: &str,
    auth: &Auth,
    body: &Option<Value>,
) -> (StatusCode, Value) {
    let body = match body {
        Some(v) => Body::Json(v.clone()),
        None => Body::None,
    };
    srv.call(method.clone(), path, auth, body).await
}

/// What an app key holds, as the admin sees it (configs and deliveries).
async fn snapshot(srv: &Server, app: &App) -> (Value, Vec<Value>) {
    let configs = srv.expect(
        srv.get(&Auth::Admin, &app.path("/webhook-configs")).await,
        200,
        "list configs",
    )["webhookConfigs"]
        .clone();
    (configs, srv.list_deliveries(app, "").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_key_opens_only_its_own_app_key_on_every_route() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let (a, a_cfg, a_hid) = tenant(&srv, &rx, "tenant-a").await;
    let (b, b_cfg, b_hid) = tenant(&srv, &rx, "tenant-b").await;
    let table = routes(&rx.url("/created"));

    // The table is every route of the document under /v1/appkeys/{appKey}/.
    let (st, doc) = srv.get(&Auth::None, "/openapi.json").await;
    assert_eq!(st, StatusCode::OK, "GET /openapi.json");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap_or_else(|| srv.fail("no paths in /openapi.json"))
        .iter()
        .filter_map(|(p, ops)| Some((p.strip_prefix("/v1/appkeys/{appKey}")?.to_string(), ops)))
        .filter(|(p, _)| !p.is_empty())
        .flat_map(|(p, ops)| {
            ops.as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| (m.to_uppercase(), p.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let tested: BTreeSet<(String, String)> = table
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        tested, documented,
        "the table must cover every documented route"
    );

    let before = snapshot(&srv, &a).await;
    let sent_before = rx.requests().len();
    let mut failures = Vec::new();
    let wrong = [
        (Auth::None, 401, "no credentials"),
        (
            Auth::Secret("not-a-secret-of-anyone".into()),
            401,
            "an unknown secret",
        ),
        (Auth::Secret(String::new()), 401, "an empty secret"),
        (
            Auth::Bearer("not-the-admin-token".into()),
            401,
            "a wrong admin token",
        ),
        (
            Auth::Bearer(a.secret.clone()),
            401,
            "the own secret as a bearer token",
        ),
        (b.auth(), 403, "another app key's secret"),
    ];
    for (method, template, body) in &table {
        let path = fill(template, &a, &a_cfg, &a_hid);
        for (auth, status, what) in &wrong {
            let resp = call(&srv, method, &path, auth, body).await;
            if let Err(e) = check_error(&resp, &[*status], None) {
                failures.push(format!("- {method} {template} with {what}: {e}"));
            }
        }
        // Another app key's ids under one's own path: as if they did not exist.
        if template.contains('{') {
            let path = fill(template, &b, &a_cfg, &a_hid);
            let resp = call(&srv, method, &path, &b.auth(), body).await;
            if let Err(e) = check_error(&resp, &[404], None) {
                failures.push(format!(
                    "- {method} {template}, A's ids under B's path with B's secret: {e}"
                ));
            }
        }
    }
    if !failures.is_empty() {
        srv.fail(format!(
            "{} problem(s):\n{}",
            failures.len(),
            failures.join("\n")
        ));
    }
    // Nothing of that changed anything or sent anything.
    assert_eq!(
        snapshot(&srv, &a).await,
        before,
        "refused requests changed app key A"
    );
    assert_eq!(
        rx.requests().len(),
        sent_before,
        "a refused request sent something"
    );

    // Allowed: the own secret and the admin token, on every route (destructive ones last, each on
    // its own config).
    let mut a = a;
    for who in ["own secret", "admin token"] {
        for (method, template, body) in &table {
            if *method == Method::DELETE || template.starts_with("/secret-key") {
                continue;
            }
            let auth = if who == "admin token" {
                Auth::Admin
            } else {
                a.auth()
            };
            let resp = call(
                &srv,
                method,
                &fill(template, &a, &a_cfg, &a_hid),
                &auth,
                body,
            )
            .await;
            if !resp.0.is_success() {
                failures.push(format!(
                    "- {method} {template} with the {who}: {} {}",
                    resp.0, resp.1
                ));
            }
        }
        let auth = if who == "admin token" {
            Auth::Admin
        } else {
            a.auth()
        };
        let doomed = srv
            .create_config(&a, config_body(SMS, &[UNSUB], &rx.url("/doomed")))
            .await;
        let path = a.path(&format!(
            "/webhook-configs/{}",
            s(&doomed, "webhookConfigId")
        ));
        let resp = srv.delete(&auth, &path).await;
        if !resp.0.is_success() {
            failures.push(format!("- DELETE with the {who}: {} {}", resp.0, resp.1));
        }
        let resp = srv
            .post(&auth, &a.path("/secret-key/rotate"), json!({}))
            .await;
        match resp.1["appKey"]["secretKey"]
            .as_str()
            .or(resp.1["secretKey"].as_str())
        {
            Some(new) if resp.0.is_success() => a.secret = new.to_string(),
            _ => failures.push(format!(
                "- secret-key/rotate with the {who}: {} {}",
                resp.0, resp.1
            )),
        }
    }
    if !failures.is_empty() {
        srv.fail(format!(
            "{} problem(s):\n{}",
            failures.len(),
            failures.join("\n")
        ));
    }
    // B was never touched by any of it.
    srv.expect(
        srv.get(&b.auth(), &b.path(&format!("/webhook-configs/{b_cfg}")))
            .await,
        200,
        "B's config",
    );
    srv.get_delivery(&b, &b_hid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_key_management_needs_the_admin_token() {
    let srv = Server::start().await;
    let a = srv.create_app_key("mgmt").await;
    let count = |v: &Value| v["appKeys"].as_array().map(Vec::len);
    let listed = srv.expect(srv.get(&Auth::Admin, "/v1/appkeys").await, 200, "list");
    for (auth, what) in [
        (Auth::None, "no credentials"),
        (a.auth(), "an app key's secret"),
        (
            Auth::Bearer(a.secret.clone()),
            "an app key's secret as a bearer token",
        ),
        (
            Auth::Bearer(format!("{}x", srv.admin_token)),
            "a wrong admin token",
        ),
        (
            Auth::Secret(srv.admin_token.clone()),
            "the admin token as a secret key",
        ),
    ] {
        let resp = srv
            .post(&auth, "/v1/appkeys", json!({"name": "intruder"}))
            .await;
        srv.ok(check_error(&resp, &[401], None).map_err(|e| format!("create with {what}: {e}")));
        let resp = srv.get(&auth, "/v1/appkeys").await;
        srv.ok(check_error(&resp, &[401], None).map_err(|e| format!("list with {what}: {e}")));
    }
    let after = srv.expect(srv.get(&Auth::Admin, "/v1/appkeys").await, 200, "list");
    assert_eq!(
        count(&after),
        count(&listed),
        "no app key was created: {after}"
    );
}

/// Every substring of `text` that is one of `secrets`, by name.
fn leaks<'a>(text: &str, secrets: &'a [(&'a str, String)]) -> Vec<&'a str> {
    secrets
        .iter()
        .filter(|(_, s)| text.contains(s.as_str()))
        .map(|(name, _)| *name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_stored_hashed_and_never_logged_or_listed() {
    let rx = Receiver::start().await;
    let mut srv = Server::start_with_options(
        &[],
        Options {
            rust_log: "debug".to_string(),
            ..Options::default()
        },
    )
    .await;
    let a = srv.create_app_key("secretive").await;
    let b = srv.create_app_key("other").await;
    let signing_1 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
    let signing_2 = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LW51bWJlci10d28=".to_string();
    let mut body = config_body(SMS, &[UNSUB], &rx.url("/signed"));
    body["signingSecret"] = json!(signing_1);
    let cfg = srv.create_config(&a, body).await;
    let cfg_id = s(&cfg, "webhookConfigId");
    let ids = srv
        .ingest(&a, SMS, UNSUB, vec![samples::hook(SMS, UNSUB, 1)])
        .await;
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);

    // Rotations: a given signing secret, a generated one (shown once), a new secret key.
    let rotate = a.path(&format!("/webhook-configs/{cfg_id}/signing-secret/rotate"));
    srv.expect(
        srv.post(
            &a.auth(),
            &rotate,
            json!({"signingSecret": signing_2, "gracePeriod": "1h"}),
        )
        .await,
        200,
        "rotate the signing secret",
    );
    let generated = srv.expect(
        srv.post(&a.auth(), &rotate, json!({})).await,
        200,
        "rotate again",
    );
    let signing_3 = generated
        .to_string()
        .split('"')
        .find(|t| t.starts_with("whsec_"))
        .map(str::to_string)
        .unwrap_or_else(|| srv.fail(format!("no generated whsec_ secret in {generated}")));
    let rotated = srv
        .post(&a.auth(), &a.path("/secret-key/rotate"), json!({}))
        .await;
    let secret_2 = rotated.1["appKey"]["secretKey"]
        .as_str()
        .or(rotated.1["secretKey"].as_str())
        .unwrap_or_else(|| srv.fail(format!("no new secret key in {}", rotated.1)))
        .to_string();
    let a2 = App {
        app_key: a.app_key.clone(),
        secret: secret_2.clone(),
    };
    // Refused credentials go through the logging paths too.
    assert_error(
        &srv,
        &srv.get(&a.auth(), &a.path("/webhook-configs")).await,
        401,
        "old secret",
    );
    assert_error(
        &srv,
        &srv.get(&b.auth(), &a.path("/webhook-configs")).await,
        403,
        "B's secret",
    );
    let ids = srv
        .ingest(&a2, SMS, UNSUB, vec![samples::hook(SMS, UNSUB, 2)])
        .await;
    srv.ok(rx.wait_for_hooks(&ids, PROMPT).await);

    let key_of = |w: &str| w.trim_start_matches("whsec_").to_string();
    let secrets = vec![
        ("A's first secret key", a.secret.clone()),
        ("A's second secret key", secret_2.clone()),
        ("B's secret key", b.secret.clone()),
        ("the admin token", srv.admin_token.clone()),
        ("signing secret 1", key_of(&signing_1)),
        ("signing secret 2", key_of(&signing_2)),
        ("signing secret 3", key_of(&signing_3)),
    ];

    // Not in list or get answers.
    let mut answers = vec![
        srv.get(&Auth::Admin, "/v1/appkeys").await,
        srv.get(&a2.auth(), &a2.path("/webhook-configs")).await,
        srv.get(&a2.auth(), &a2.path(&format!("/webhook-configs/{cfg_id}")))
            .await,
        srv.get(&a2.auth(), &a2.path("/deliveries")).await,
        srv.put(
            &a2.auth(),
            &a2.path(&format!("/webhook-configs/{cfg_id}")),
            {
                let mut body = config_body(SMS, &[UNSUB], &rx.url("/signed"));
                body["signingSecret"] = json!(signing_2);
                body
            },
        )
        .await,
    ];
    for d in srv.list_deliveries(&a2, "").await {
        answers.push(
            srv.get(
                &a2.auth(),
                &a2.path(&format!("/deliveries/{}", s(&d, "hooksId"))),
            )
            .await,
        );
    }
    for (st, body) in &answers {
        assert!(st.is_success(), "{st} {body}");
        let found = leaks(&body.to_string(), &secrets);
        assert!(found.is_empty(), "an answer shows {found:?}: {body}");
    }

    // Not in the logs, at debug level.
    let log = srv.stderr_all();
    assert!(log.contains("DEBUG"), "the server logged at debug level");
    let found = leaks(&log, &secrets);
    assert!(found.is_empty(), "the debug log shows {found:?}");

    // Stored hashed: no file of the data dir (whatever the server keeps there, the embedded
    // store's files among them) holds a secret key or the admin token, and every text of every
    // table of the store (the SQLite file or the PostgreSQL database) is free of them.
    srv.stop_sigterm(SLOW).await;
    let stored_secrets = &secrets[..4];
    let mut files = Vec::new();
    for entry in std::fs::read_dir(srv.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let found = leaks(&text, stored_secrets);
        assert!(found.is_empty(), "{} holds {found:?}", path.display());
        files.push(path);
    }
    if srv.database_url().is_none() {
        assert!(
            files.contains(&srv.data_dir().join("hookline.db")),
            "the embedded store's file was read: {files:?}"
        );
    }
    let stored = srv.stored_text().await;
    assert!(
        stored.tables.contains(&"app_keys".to_string()),
        "{:?}",
        stored.tables
    );
    for (table, text) in &stored.cells {
        let found = leaks(text, stored_secrets);
        assert!(found.is_empty(), "table {table} holds {found:?}");
    }
    let cells = stored.cells.len();
    assert!(cells > 10, "the store was read ({cells} text cells)");
    let hashes: Vec<String> = srv
        .store_query_strings("SELECT secret_hash FROM app_keys", &[])
        .await
        .into_iter()
        .map(|row| match row.as_slice() {
            [Some(hash)] => hash.clone(),
            _ => srv.fail(format!("an app key without a secret_hash: {row:?}")),
        })
        .collect();
    for hash in &hashes {
        assert!(
            stored
                .cells
                .iter()
                .any(|(t, c)| t == "app_keys" && c == hash),
            "the scan of the store read app_keys.secret_hash {hash}"
        );
    }
    assert_eq!(hashes.len(), 2);
    assert!(
        hashes
            .iter()
            .all(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit())),
        "SHA-256 hex digests: {hashes:?}"
    );
}
