//! Dashboard sessions across nodes: a session started through one node is served by another
//! (they are in the shared store), so a load balancer needs no sticky sessions; ending it on
//! one node ends it on all.

use reqwest::StatusCode;

use crate::support::server::{Options, scratch_postgres_database, urlencode};
use crate::support::*;

/// A form POST or a GET with the session cookie, redirects not followed.
async fn send(
    http: &reqwest::Client,
    srv: &Server,
    path: &str,
    cookie: Option<&str>,
    form: Option<&[(&str, &str)]>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = match form {
        Some(pairs) => http
            .post(srv.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                pairs
                    .iter()
                    .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&"),
            ),
        None => http.get(srv.url(path)),
    };
    if let Some(id) = cookie {
        req = req.header("cookie", format!("hookline_session={id}"));
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| srv.fail(format!("{path}: {e}")));
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap_or_default())
}

/// The CSRF token of a signed-in page's forms.
fn csrf(srv: &Server, body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let Some(start) = body.find(marker).map(|i| i + marker.len()) else {
        srv.fail(format!("no csrf field in page:\n{body}"))
    };
    let end = body[start..].find('"').map(|i| i + start).unwrap_or(start);
    body[start..end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_started_on_one_node_is_served_and_ended_by_another() {
    let db = scratch_postgres_database("cluster::sessions (two nodes on one database)").await;
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
    let app = a.create_app_key("sessions-cluster").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Sign in through node A.
    let (status, headers, body) = send(
        &http,
        &a,
        "/ui/signin",
        None,
        Some(&[("appKey", &app.app_key), ("secretKey", &app.secret)]),
    )
    .await;
    assert_eq!(status, 303, "sign-in on node a: {body}");
    let id = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("hookline_session="))
        .and_then(|rest| rest.split(';').next())
        .map(str::to_owned)
        .unwrap_or_else(|| a.fail("sign-in sets no session cookie"));

    // Node B serves it: the signed-in page (the app key, the forms' token), not the sign-in form.
    let (status, _, page_b) = send(&http, &b, "/", Some(&id), None).await;
    assert_eq!(status, 200, "node b: {page_b}");
    assert!(
        page_b.contains(&app.app_key),
        "node b does not know the session:\n{page_b}"
    );
    assert!(
        !page_b.contains("action=\"/ui/signin\""),
        "node b asks to sign in:\n{page_b}"
    );
    let token = csrf(&b, &page_b);
    let (_, _, page_a) = send(&http, &a, "/", Some(&id), None).await;
    assert_eq!(
        csrf(&a, &page_a),
        token,
        "one session, one token, on every node"
    );

    // A form on node B with the session's token is accepted: sign out there...
    let (status, _, body) = send(
        &http,
        &b,
        "/ui/signout",
        Some(&id),
        Some(&[("csrf", &token)]),
    )
    .await;
    assert_eq!(status, 303, "sign-out on node b: {body}");
    // ...and node A no longer knows the session.
    let (status, _, page_a) = send(&http, &a, "/", Some(&id), None).await;
    assert_eq!(status, 200);
    assert!(
        page_a.contains("action=\"/ui/signin\""),
        "node a still serves an ended session:\n{page_a}"
    );
}
