//! The operator's CLI, run as a binary against a real server: app keys, configs (create, update
//! through PATCH, pause, resume, test, delete), emit, the delivery log, redeliver and replay with
//! a relative time; `--json` for scripts and tables otherwise; credentials from the environment.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Runs `hookline <args>` with `env`; returns stdout, failing the test on a non-zero exit.
async fn hookline(env: &[(&str, &str)], args: &[&str]) -> String {
    let (code, stdout, stderr) = hookline_status(env, args).await;
    assert_eq!(
        code,
        Some(0),
        "hookline {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

async fn hookline_status(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
    cmd.args(args)
        .env_remove("HOOKLINE_APP_KEY")
        .env_remove("HOOKLINE_SECRET_KEY")
        .env_remove("HOOKLINE_ADMIN_TOKEN")
        .env_remove("HOOKLINE_SERVER")
        .env_remove("RUST_BACKTRACE")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("hookline {args:?} did not finish in 60 s"))
        .expect("run hookline");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_runs_an_operators_everyday_tasks() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let server = srv.base_url.clone();
    let admin = [
        ("HOOKLINE_SERVER", server.as_str()),
        ("HOOKLINE_ADMIN_TOKEN", srv.admin_token.as_str()),
    ];

    // `app-keys create --env` prints a line a shell can eval.
    let line = hookline(&admin, &["app-keys", "create", "--name", "cli", "--env"]).await;
    let line = line.trim();
    assert!(line.starts_with("export HOOKLINE_APP_KEY='"), "{line}");
    let value = |name: &str| -> String {
        let start = line
            .find(&format!("{name}='"))
            .unwrap_or_else(|| panic!("{name} in {line}"))
            + name.len()
            + 2;
        line[start..]
            .split('\'')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let (app_key, secret_key) = (value("HOOKLINE_APP_KEY"), value("HOOKLINE_SECRET_KEY"));
    let tenant = [
        ("HOOKLINE_SERVER", server.as_str()),
        ("HOOKLINE_APP_KEY", app_key.as_str()),
        ("HOOKLINE_SECRET_KEY", secret_key.as_str()),
    ];
    let listed = json(&hookline(&admin, &["app-keys", "list", "--json"]).await);
    assert!(
        listed["appKeys"]
            .as_array()
            .is_some_and(|keys| keys.iter().any(|k| k["appKey"] == app_key.as_str())),
        "{listed}"
    );

    // A config with every kind of field, then a partial update through PATCH.
    let url = rx.url("/cli");
    let created = json(
        &hookline(
            &tenant,
            &[
                "configs",
                "create",
                "--json",
                "--product",
                SMS,
                "--events",
                "UNSUBSCRIBE,MESSAGE_RESULT_UPDATE",
                "--url",
                &url,
                "--signature",
                "cli-sig",
                "--description",
                "made by the CLI",
                "--max-hooks-per-request",
                "10",
                "--timeout-ms",
                "5000",
                "--retry-schedule",
                "1s,2s",
                "--header",
                "X-Team: blue",
                "--header",
                "Authorization: Bearer t0k",
            ],
        )
        .await,
    );
    let config = &created["webhookConfig"];
    let id = config["webhookConfigId"].as_str().expect("id").to_owned();
    assert_eq!(config["maxHooksPerRequest"], 10);
    assert_eq!(config["retrySchedule"], serde_json::json!(["1s", "2s"]));
    assert_eq!(
        config["headers"],
        serde_json::json!({"X-Team": "blue", "Authorization": "Bearer t0k"})
    );
    let updated = json(
        &hookline(
            &tenant,
            &[
                "configs",
                "update",
                &id,
                "--timeout-ms",
                "7000",
                "--header",
                "X-Team:",
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(updated["webhookConfig"]["timeoutMs"], 7000);
    assert_eq!(
        updated["webhookConfig"]["headers"],
        serde_json::json!({"Authorization": "Bearer t0k"}),
        "an update with an empty header value removes that header"
    );
    assert_eq!(
        updated["webhookConfig"]["description"], "made by the CLI",
        "an update changes only what it names"
    );

    // The table shows the config; pause and resume show in it.
    let table = hookline(&tenant, &["configs", "list"]).await;
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id) && table.contains("HEALTHY"), "{table}");
    hookline(&tenant, &["configs", "pause", &id]).await;
    assert!(
        hookline(&tenant, &["configs", "list"])
            .await
            .contains("PAUSED")
    );
    hookline(&tenant, &["configs", "resume", &id]).await;

    // A test send, then real events, then the log, a redelivery and a replay of the last hour.
    let test = json(&hookline(&tenant, &["configs", "test", &id, "--json"]).await);
    assert_eq!(test["attempt"]["succeeded"], true, "{test}");
    let emitted = json(
        &hookline(
            &tenant,
            &["emit", "--event", "UNSUBSCRIBE", "--count", "3", "--json"],
        )
        .await,
    );
    assert_eq!(emitted["accepted"], 3);
    srv.ok(rx
        .wait_until(PROMPT, "the test hook and 3 emitted hooks", |reqs| {
            reqs.iter().map(|r| r.hooks().len()).sum::<usize>() >= 4
        })
        .await);
    let log = json(
        &hookline(
            &tenant,
            &[
                "deliveries",
                "list",
                "--config",
                &id,
                "--since",
                "1h",
                "--json",
            ],
        )
        .await,
    );
    let deliveries = log["deliveries"].as_array().cloned().unwrap_or_default();
    assert!(!deliveries.is_empty(), "{log}");
    // A real delivery (the test send is in the log too, marked `test`, and cannot be redelivered).
    let hooks_id = deliveries
        .iter()
        .find(|d| d["test"] != serde_json::json!(true))
        .and_then(|d| d["hooksId"].as_str())
        .expect("hooksId")
        .to_owned();
    let shown = hookline(&tenant, &["deliveries", "get", &hooks_id]).await;
    assert!(
        shown.contains(&hooks_id) && shown.contains("STARTED"),
        "{shown}"
    );
    let redelivered =
        json(&hookline(&tenant, &["deliveries", "redeliver", &hooks_id, "--json"]).await);
    assert_ne!(redelivered["delivery"]["hooksId"], hooks_id.as_str());
    let replayed = json(
        &hookline(
            &tenant,
            &[
                "replay",
                &id,
                "--since",
                "1h",
                "--status",
                "SUCCEEDED",
                "--json",
            ],
        )
        .await,
    );
    assert!(
        replayed["count"].as_u64().is_some_and(|n| n >= 3),
        "{replayed}"
    );

    // Errors: a clear message and a non-zero exit.
    let (code, _, stderr) = hookline_status(&tenant, &["configs", "get", "no-such-config"]).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("error: get config: 404") && stderr.contains("no-such-config"),
        "{stderr}"
    );
    let (code, _, stderr) = hookline_status(
        &[("HOOKLINE_SERVER", server.as_str())],
        &["configs", "list", "--app-key", &app_key],
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("HOOKLINE_SECRET_KEY"), "{stderr}");

    hookline(&tenant, &["configs", "delete", &id]).await;
    let after = json(&hookline(&tenant, &["configs", "list", "--json"]).await);
    assert_eq!(after["webhookConfigs"], serde_json::json!([]));

    // Rotating the secret key with a grace period: both keys work until it ends.
    let rotated = json(
        &hookline(
            &tenant,
            &["app-keys", "rotate", "--grace-period", "1h", "--json"],
        )
        .await,
    );
    let new_secret = rotated["appKey"]["secretKey"].as_str().unwrap_or_default();
    assert!(
        !new_secret.is_empty() && new_secret != secret_key,
        "{rotated}"
    );
    assert!(
        rotated["appKey"]["previousSecretKeyExpiresAt"].is_string(),
        "{rotated}"
    );
    let renewed = [
        ("HOOKLINE_SERVER", server.as_str()),
        ("HOOKLINE_APP_KEY", app_key.as_str()),
        ("HOOKLINE_SECRET_KEY", new_secret),
    ];
    for env in [&tenant, &renewed] {
        let listed = json(&hookline(env, &["configs", "list", "--json"]).await);
        assert_eq!(listed["webhookConfigs"], serde_json::json!([]));
    }
    let (code, _, stderr) =
        hookline_status(&renewed, &["app-keys", "rotate", "--grace-period", "8d"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("gracePeriod"), "{stderr}");
}
