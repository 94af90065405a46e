//! Issue 5, item 4: hostile input. The per-app-key ingest rate limit (429 with `Retry-After`), the
//! body limit, long strings, deep nesting, bytes that are not UTF-8 and huge numbers: each refused
//! in the documented error shape naming the field, and nothing of a refused request stored.
//! Hostile but valid hooks are stored and delivered as they came.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};

use crate::support::*;

const MRU: &str = "MESSAGE_RESULT_UPDATE";

/// One POST with raw bytes; the status, the headers and the body as JSON (`Null` if not JSON).
async fn post_raw(
    srv: &Server,
    auth: &Auth,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = srv
        .http
        .post(srv.url(path))
        .header("Content-Type", "application/json")
        .body(body);
    req = match auth {
        Auth::Secret(s) => req.header("X-Secret-Key", s),
        Auth::Admin => req.header("Authorization", format!("Bearer {}", srv.admin_token)),
        _ => req,
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => srv.fail(format!("POST {path}: {e}")),
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn ingest_body(hooks: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"productName": SMS, "event": MRU, "hooks": hooks})).unwrap()
}

fn hooks(ids: &[&str]) -> Vec<Value> {
    ids.iter().map(|id| samples::sms_result(id)).collect()
}

/// The hookIds stored for `app` (read from the server's store, the SQLite file or its PostgreSQL
/// database; every answer of ingest comes after its commit, so what is read here is what the
/// answers promised).
async fn stored_hook_ids(srv: &Server, app: &App) -> BTreeSet<String> {
    srv.store_query_strings(
        "SELECT hook_id FROM hooks WHERE app_key = $1",
        &[&app.app_key],
    )
    .await
    .into_iter()
    .map(|row| match row.as_slice() {
        [Some(id)] => id.clone(),
        _ => srv.fail(format!("a stored hook without a hook_id: {row:?}")),
    })
    .collect()
}

fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_rate_limit_answers_429_with_retry_after_and_stores_nothing() {
    // One hook per 100 s after a burst of 5: no refill worth counting during the test.
    let srv = Server::start_with(&[
        "--ingest-rate-limit",
        "0.01",
        "--ingest-burst",
        "5",
        "--max-hooks-per-request",
        "5",
    ])
    .await;
    let a = srv.create_app_key("rate-a").await;
    let b = srv.create_app_key("rate-b").await;
    let events = a.path("/events");

    let (st, _, body) = post_raw(
        &srv,
        &a.auth(),
        &events,
        ingest_body(hooks(&["rl-1", "rl-2", "rl-3"])),
    )
    .await;
    srv.expect((st, body), 202, "3 hooks within the burst of 5");

    // 3 more with 2 tokens left: refused whole, with the wait for the missing one (100 s).
    let (st, headers, body) = post_raw(
        &srv,
        &a.auth(),
        &events,
        ingest_body(hooks(&["rl-4", "rl-5", "rl-6"])),
    )
    .await;
    srv.ok(check_error(&(st, body.clone()), &[429], Some("hooks")));
    assert_eq!(body["header"]["resultCode"], json!(-1060), "{body}");
    let wait = retry_after(&headers)
        .unwrap_or_else(|| srv.fail(format!("429 without a Retry-After in seconds: {headers:?}")));
    assert!(
        (90..=100).contains(&wait),
        "Retry-After {wait}, want about 100"
    );
    let message = body["header"]["resultMessage"].as_str().unwrap_or("");
    assert!(message.contains("rate limit"), "{message}");

    // The refusal took nothing: the 2 tokens are still there.
    let (st, _, body) = post_raw(
        &srv,
        &a.auth(),
        &events,
        ingest_body(hooks(&["rl-7", "rl-8"])),
    )
    .await;
    srv.expect((st, body), 202, "2 hooks with 2 tokens left");

    // Empty bucket: refused before the body is read or validated (invalid JSON gets 429, not 400),
    // with the admin token too (the limit is the app key's, whoever calls).
    for (auth, what) in [(a.auth(), "own secret"), (Auth::Admin, "admin token")] {
        let (st, headers, body) = post_raw(&srv, &auth, &events, b"{not json".to_vec()).await;
        srv.ok(check_error(&(st, body), &[429], Some("hooks"))
            .map_err(|e| format!("empty bucket, {what}: {e}")));
        assert!(
            retry_after(&headers).is_some_and(|s| (90..=100).contains(&s)),
            "{headers:?}"
        );
        let (st, _, body) = post_raw(&srv, &auth, &events, ingest_body(hooks(&["rl-9"]))).await;
        srv.ok(check_error(&(st, body), &[429], Some("hooks")).map_err(|e| format!("{what}: {e}")));
    }

    // Another app key has its own bucket.
    let (st, _, body) = post_raw(
        &srv,
        &b.auth(),
        &b.path("/events"),
        ingest_body(hooks(&["rl-b1", "rl-b2", "rl-b3", "rl-b4", "rl-b5"])),
    )
    .await;
    srv.expect((st, body), 202, "another app key's full burst");

    let want: BTreeSet<String> = ["rl-1", "rl-2", "rl-3", "rl-7", "rl-8"]
        .map(String::from)
        .into();
    assert_eq!(
        stored_hook_ids(&srv, &a).await,
        want,
        "only the accepted hooks are stored"
    );
    assert_eq!(stored_hook_ids(&srv, &b).await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_rate_limit_counts_each_hook_once_per_subscribed_config() {
    // No refill worth counting during the test: 45 queue rows, then one per 100 s.
    let srv = Server::start_with(&[
        "--ingest-rate-limit",
        "0.01",
        "--ingest-burst",
        "45",
        "--max-hooks-per-request",
        "5",
    ])
    .await;
    let rx = Receiver::start().await;
    let wide = srv.create_app_key("fan-out-10").await;
    let narrow = srv.create_app_key("fan-out-1").await;
    for i in 0..10 {
        srv.create_config(
            &wide,
            config_body(SMS, &[MRU], &rx.url(&format!("/wide/{i}"))),
        )
        .await;
    }
    srv.create_config(&narrow, config_body(SMS, &[MRU], &rx.url("/narrow")))
        .await;

    // One hook to 10 configs costs 10: 4 requests leave 5 tokens; the 5th takes the one it can
    // before it is stored and its other 9 after its commit (accepted, it crosses the limit).
    let mut accepted = Vec::new();
    for i in 1..=5 {
        let id = format!("wide-{i}");
        let (st, _, body) = post_raw(
            &srv,
            &wide.auth(),
            &wide.path("/events"),
            ingest_body(hooks(&[&id])),
        )
        .await;
        srv.expect(
            (st, body),
            202,
            &format!("hook {i} of the 10-config app key"),
        );
        accepted.push(id);
    }
    // In debt now: refused, with the wait for the debt and one hook (6 tokens at 0.01 a second:
    // about 600 s).
    let (st, headers, body) = post_raw(
        &srv,
        &wide.auth(),
        &wide.path("/events"),
        ingest_body(hooks(&["wide-6"])),
    )
    .await;
    srv.ok(check_error(&(st, body.clone()), &[429], Some("hooks")));
    let message = body["header"]["resultMessage"].as_str().unwrap_or("");
    assert!(message.contains("queue rows"), "{message}");
    let wait = retry_after(&headers)
        .unwrap_or_else(|| srv.fail(format!("429 without a Retry-After in seconds: {headers:?}")));
    assert!(
        (550..=600).contains(&wait),
        "Retry-After {wait}, want about 600 (5 tokens in debt, 1 needed, 0.01 a second)"
    );

    // One config: one hook costs one, so the same bucket holds 45 of them, 9 times as many.
    let mut narrow_ids = Vec::new();
    for i in 0..9 {
        let ids: Vec<String> = (0..5).map(|j| format!("narrow-{i}-{j}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (st, _, body) = post_raw(
            &srv,
            &narrow.auth(),
            &narrow.path("/events"),
            ingest_body(hooks(&refs)),
        )
        .await;
        srv.expect(
            (st, body),
            202,
            &format!("request {i} of the 1-config app key"),
        );
        narrow_ids.extend(ids);
    }
    let (st, _, body) = post_raw(
        &srv,
        &narrow.auth(),
        &narrow.path("/events"),
        ingest_body(hooks(&["narrow-over"])),
    )
    .await;
    srv.ok(check_error(&(st, body), &[429], Some("hooks")));

    assert_eq!(
        stored_hook_ids(&srv, &wide).await,
        accepted.into_iter().collect::<BTreeSet<_>>(),
        "the refused hook of the 10-config app key is not stored"
    );
    assert_eq!(
        stored_hook_ids(&srv, &narrow).await,
        narrow_ids.into_iter().collect::<BTreeSet<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refuses_a_burst_smaller_than_a_request() {
    // Would make the largest valid request impossible to accept: refused at start, not at ingest.
    // Under a time limit: a server that started serving instead would hang here, not fail.
    let dir = tempfile::tempdir().unwrap();
    let out = process::run(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--ingest-rate-limit",
                "10",
            ])
            .args(["--ingest-burst", "10", "--max-hooks-per-request", "100"])
            .arg("--data-dir")
            .arg(dir.path())
            .env("HOOKLINE_ADMIN_TOKEN", "t")
            .env_remove("HOOKLINE_LISTEN"),
        std::time::Duration::from_secs(30),
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--ingest-burst") && stderr.contains("--max-hooks-per-request"),
        "{stderr}"
    );
}

struct Case {
    name: &'static str,
    body: Vec<u8>,
    status: u16,
    code: Option<i64>,
    field: &'static str,
}

fn with_field(id: &str, key: &str, value: Value) -> Value {
    let mut h = samples::sms_result(id);
    h[key] = value;
    h
}

/// A body with `raw` spliced in as the value of an unknown field of one hook.
fn raw_field(id: &str, raw: &[u8]) -> Vec<u8> {
    let mut out =
        br#"{"productName":"SMS","event":"MESSAGE_RESULT_UPDATE","hooks":[{"hookId":""#.to_vec();
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(
        br#"","requestId":"r","recipientSeq":1,"messageStatus":"COMPLETED","extra":"#,
    );
    out.extend_from_slice(raw);
    out.extend_from_slice(b"}]}");
    out
}

fn cases() -> Vec<Case> {
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    let mut link = samples::sms_result("hi-href");
    link["_links"]["self"]["href"] = json!(format!("https://x/{}", "p".repeat(5000)));
    vec![
        Case {
            name: "a body of exactly 1 MiB (the limit) with an invalid hook",
            body: {
                let mut b = ingest_body(vec![with_field("hi-pad", "messageStatus", json!("DONE"))]);
                b.resize(1024 * 1024, b' ');
                b
            },
            status: 400,
            code: Some(-1005),
            field: "hooks[0].messageStatus",
        },
        Case {
            name: "requestId of 1025 characters",
            body: ingest_body(vec![with_field(
                "hi-long-1",
                "requestId",
                json!("r".repeat(1025)),
            )]),
            status: 400,
            code: Some(-1014),
            field: "hooks[0].requestId",
        },
        Case {
            name: "resultCode of 1025 two-byte characters",
            body: ingest_body(vec![with_field(
                "hi-long-2",
                "resultCode",
                json!("é".repeat(1025)),
            )]),
            status: 400,
            code: Some(-1014),
            field: "hooks[0].resultCode",
        },
        Case {
            name: "a link of 5000 characters",
            body: ingest_body(vec![link]),
            status: 400,
            code: Some(-1014),
            field: "hooks[0]._links.self.href",
        },
        Case {
            name: "an unknown field of 70 KiB (over the hook limit)",
            body: ingest_body(vec![with_field(
                "hi-long-3",
                "note",
                json!("n".repeat(70 * 1024)),
            )]),
            status: 413,
            code: Some(-1012),
            field: "hooks[0]",
        },
        Case {
            name: "an unknown field name of 70 KiB",
            body: raw_field(
                "hi-long-4",
                format!("1,\"{}\":1", "k".repeat(70 * 1024)).as_bytes(),
            ),
            status: 413,
            code: Some(-1012),
            field: "hooks[0]",
        },
        Case {
            name: "100,000 nested arrays",
            body: raw_field("hi-deep-1", &deep(100_000)),
            status: 400,
            code: Some(-1001),
            field: "body",
        },
        Case {
            name: "500,000 unclosed brackets",
            body: vec![b'['; 500_000],
            status: 400,
            code: Some(-1001),
            field: "body",
        },
        Case {
            name: "bytes that are not UTF-8 in a string",
            body: raw_field("hi-utf8-1", b"\"\xff\xfe\xc3\x28\""),
            status: 400,
            code: Some(-1001),
            field: "body",
        },
        Case {
            name: "an escaped lone surrogate",
            body: raw_field("hi-utf8-2", br#""\ud800""#),
            status: 400,
            code: Some(-1001),
            field: "body",
        },
        Case {
            name: "a body of invalid bytes",
            body: vec![0xff, 0xfe, 0x00, 0x80],
            status: 400,
            code: Some(-1001),
            field: "body",
        },
        Case {
            name: "a number beyond f64 (1e400)",
            body: raw_field("hi-num-1", b"1e400"),
            status: 400,
            code: Some(-1001),
            field: "body",
        },
        Case {
            name: "recipientSeq beyond u64",
            body: String::from_utf8(ingest_body(vec![with_field(
                "hi-num-2",
                "recipientSeq",
                json!("SEQ"),
            )]))
            .unwrap()
            .replace("\"SEQ\"", "184467440737095516160")
            .into_bytes(),
            status: 400,
            code: Some(-1004),
            field: "hooks[0].recipientSeq",
        },
        Case {
            name: "recipientSeq of 2^63 (beyond i64)",
            body: ingest_body(vec![with_field(
                "hi-num-3",
                "recipientSeq",
                json!(1u64 << 63),
            )]),
            status: 400,
            code: Some(-1004),
            field: "hooks[0].recipientSeq",
        },
        Case {
            name: "100,000 hooks",
            body: ingest_body(vec![json!({}); 100_000]),
            status: 413,
            code: Some(-1011),
            field: "hooks",
        },
    ]
}

/// Sends the head of a POST of `length` bytes with `Expect: 100-continue` over a raw connection,
/// and the body only if the server asks for it; returns the final answer's status and JSON body.
/// (An answer given before a body was read would otherwise race the client's upload: the
/// server closes a connection with unread data, which a client may see as a reset.)
async fn post_expecting_continue(srv: &Server, app: &App, body: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = srv.base_url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nX-Secret-Key: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        app.path("/events"),
        app.secret,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        answer.extend_from_slice(&chunk[..n]);
        if answer.starts_with(b"HTTP/1.1 100")
            && let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n")
        {
            answer.drain(..end + 4);
            stream.write_all(body).await.unwrap();
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| srv.fail(format!("no HTTP answer: {text:?}")));
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_before_it_is_read() {
    let srv = Server::start().await;
    let app = srv.create_app_key("body-limit").await;
    let mut body = ingest_body(hooks(&["bl-1"]));
    body.resize(1024 * 1024 + 1, b' ');
    let (status, json) = post_expecting_continue(&srv, &app, &body).await;
    let resp = (StatusCode::from_u16(status).unwrap(), json.clone());
    srv.ok(check_error(&resp, &[413], Some("body")));
    assert_eq!(json["header"]["resultCode"], json!(-1030), "{json}");
    // At the limit, the body is read (the server asks for it) and accepted.
    body.truncate(1024 * 1024);
    let (status, json) = post_expecting_continue(&srv, &app, &body).await;
    assert_eq!(status, 202, "{json}");
    assert_eq!(
        stored_hook_ids(&srv, &app).await,
        BTreeSet::from(["bl-1".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_are_refused_naming_the_field_and_store_nothing() {
    let rx = Receiver::start().await;
    let srv = Server::start().await;
    let app = srv.create_app_key("hostile").await;
    srv.create_config(&app, config_body(SMS, &[MRU], &rx.url("/hostile")))
        .await;

    let mut failures = Vec::new();
    for c in cases() {
        let len = c.body.len();
        let (st, _, body) = post_raw(&srv, &app.auth(), &app.path("/events"), c.body).await;
        if let Err(e) = check_error(&(st, body.clone()), &[c.status], Some(c.field)) {
            failures.push(format!("- {} ({len} bytes): {e}", c.name));
            continue;
        }
        if let Some(code) = c.code
            && body["header"]["resultCode"] != json!(code)
        {
            failures.push(format!("- {}: want resultCode {code}: {body}", c.name));
        }
        let message = body["header"]["resultMessage"].as_str().unwrap_or("");
        if message.len() > 600 {
            failures.push(format!("- {}: a {} byte message", c.name, message.len()));
        }
    }
    if !failures.is_empty() {
        srv.fail(format!(
            "{} problem(s):\n{}",
            failures.len(),
            failures.join("\n")
        ));
    }
    let (st, _) = srv.get(&Auth::None, "/healthz").await;
    assert_eq!(st, StatusCode::OK, "the server still serves");

    // Hostile but valid: control characters, a 100-deep value, floats, extreme integers, and a
    // 1024-character requestId are stored and delivered as they came.
    let odd = json!({
        "nul": "a\u{0}b\u{1f}\u{7f}\u{2028}\u{202e}",
        "emoji": "🎉한글",
        "deep": serde_json::from_str::<Value>(&format!("{}1{}", "[".repeat(100), "]".repeat(100))).unwrap(),
        "floats": [0.1, -0.0, 1e300, 2.2250738585072014e-308, 123456789.12345678],
        "ints": [i64::MIN, u64::MAX],
    });
    let mut hook = with_field("hi-ok", "extra", odd.clone());
    hook["requestId"] = json!("q".repeat(1024));
    let (st, _, body) = post_raw(
        &srv,
        &app.auth(),
        &app.path("/events"),
        ingest_body(vec![hook]),
    )
    .await;
    srv.expect((st, body), 202, "a hostile but valid hook");
    let reqs = srv.ok(rx.wait_for_hooks(&["hi-ok".to_string()], PROMPT).await);
    let got = &reqs[0].hooks()[0];
    assert_eq!(got["extra"], odd, "delivered as it came");
    assert_eq!(got["requestId"].as_str().map(str::len), Some(1024));

    assert_eq!(
        stored_hook_ids(&srv, &app).await,
        BTreeSet::from(["hi-ok".to_string()]),
        "nothing of a refused request is stored"
    );
}
