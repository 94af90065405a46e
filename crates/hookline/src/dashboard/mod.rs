//! The dashboard at `/`: server-rendered HTML pages over the service layer, like the API
//! (configs, test events, the delivery log, redelivery, the trace of a hook, per-config charts
//! and health). It never calls the API's code, nor the API the dashboard's: `serve` puts the two
//! routers side by side.
//!
//! Sessions are opened by signing in, or by a portal link ([`portal`]); a read-only session's
//! forms are refused. Plain HTML forms (POST, then a redirect), one stylesheet compiled into the
//! binary, no script, nothing from other hosts. Sessions and CSRF protection: see [`session`].
//! Pages escape every value they show ([`html::esc`]); signing secrets are never shown, secret
//! keys never stored.

mod chart;
mod configs;
mod deliveries;
mod html;
mod portal;
mod session;
mod traces;

use std::collections::HashMap;
use std::sync::Arc;

use std::net::IpAddr;

use axum::Extension;
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::service::credentials::hash_secret;
use crate::service::{self, ErrorKind, Service};
use crate::throttle::FailureThrottle;
use html::{esc, page};
use session::{SessionInfo, Sessions};

const CSS: &str = include_str!("assets/app.css");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// The dashboard's state: the service, the sessions, and the sign-in throttle.
pub struct Dashboard {
    service: Arc<Service>,
    sessions: Sessions,
    /// Shared with the API: a guesser gains nothing by alternating between the two.
    sign_in_failures: Arc<FailureThrottle>,
}

type Dash = Arc<Dashboard>;

/// The dashboard's routes: `/` and `/ui/...`. `auth_failures` counts failed sign-ins (the API
/// counts its failed authentications in the same one).
pub fn router(service: Arc<Service>, auth_failures: Arc<FailureThrottle>) -> Router {
    let state = Arc::new(Dashboard {
        service,
        sessions: Sessions::default(),
        sign_in_failures: auth_failures,
    });
    Router::new()
        .route("/", get(home))
        .route("/ui/app.css", get(stylesheet))
        .route("/ui/favicon.svg", get(favicon))
        .route("/ui/signin", post(sign_in))
        .route("/ui/signout", post(sign_out))
        .route("/ui/portal/{token}", get(portal::open))
        .route("/ui/configs", post(configs::create))
        .route("/ui/configs/new", get(configs::new_form))
        .route(
            "/ui/configs/{config_id}",
            get(configs::show).post(configs::update),
        )
        .route("/ui/configs/{config_id}/edit", get(configs::edit_form))
        .route(
            "/ui/configs/{config_id}/enabled",
            post(configs::set_enabled),
        )
        .route("/ui/configs/{config_id}/test", post(configs::send_test))
        .route("/ui/deliveries", get(deliveries::log))
        .route("/ui/hooks", get(traces::show))
        .route("/ui/deliveries/{hooks_id}", get(deliveries::show))
        .route(
            "/ui/deliveries/{hooks_id}/redeliver",
            post(deliveries::redeliver),
        )
        .with_state(state)
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers on every dashboard answer: no caching of pages, no framing, no foreign content.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let defaults = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON,
    )
        .into_response()
}

// ---------- answers ----------

pub(super) fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(super) fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Why a dashboard request did not get its page.
#[derive(Debug)]
pub(super) enum DashError {
    /// No live session: go to the sign-in page.
    SignIn,
    /// A form without the session's CSRF token, or from another origin.
    Refused,
    /// A form of a read-only session (opened by a read-only portal link).
    ReadOnly,
    /// The operation failed: what the API would have answered, as a page.
    Service(service::Error),
}

impl From<service::Error> for DashError {
    fn from(e: service::Error) -> Self {
        DashError::Service(e)
    }
}

pub(super) type DashResult = Result<Response, DashError>;

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            DashError::SignIn => return see_other("/"),
            DashError::Refused => (
                StatusCode::FORBIDDEN,
                "Form refused",
                "This form did not come from a current dashboard page (its security token is \
                 missing or stale). Go back, reload the page and try again."
                    .to_owned(),
            ),
            DashError::ReadOnly => (
                StatusCode::FORBIDDEN,
                "Read-only session",
                "This session was opened by a read-only portal link: it can look at every page \
                 and change nothing. Nothing was changed."
                    .to_owned(),
            ),
            DashError::Service(e) => (
                e.kind.status(),
                match e.kind {
                    ErrorKind::NotFound => "Not found",
                    ErrorKind::StoreUnavailable => "Try again",
                    _ => "Error",
                },
                e.message,
            ),
        };
        let body = format!(
            "<section class=\"card narrow\"><h1>{}</h1><p>{}</p><p><a href=\"/\">Back to the \
             dashboard</a></p></section>",
            esc(title),
            esc(&message)
        );
        html_response(status, page(title, None, &body))
    }
}

/// A submitted form: every name/value pair, in order (checkbox groups repeat a name).
pub(super) struct FormData(Vec<(String, String)>);

impl FormData {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The signed-in session of a page request, its secret key still the app key's.
pub(super) async fn signed_in(
    dash: &Dashboard,
    headers: &HeaderMap,
) -> Result<SessionInfo, DashError> {
    let session = dash
        .sessions
        .lookup(&dash.service, headers)
        .await?
        .ok_or(DashError::SignIn)?;
    match dash
        .service
        .owner_of_secret_hash(&session.secret_hash)
        .await?
    {
        Some(owner) if owner == session.app_key => Ok(session),
        _ => {
            dash.sessions.remove(&dash.service, &session.key).await?;
            Err(DashError::SignIn)
        }
    }
}

/// The session of a state-changing form: same origin, signed in, the session's CSRF token, and
/// allowed to change things (not read-only). Every form but sign-out goes through here, so a
/// read-only session cannot use one added later either.
pub(super) async fn form_session(
    dash: &Dashboard,
    headers: &HeaderMap,
    form: &FormData,
) -> Result<SessionInfo, DashError> {
    let session = form_session_of_any_kind(dash, headers, form).await?;
    if session.read_only {
        return Err(DashError::ReadOnly);
    }
    Ok(session)
}

/// The session of a form that changes only the session itself (sign-out), which a read-only
/// session may use too: same origin, signed in, the session's CSRF token.
async fn form_session_of_any_kind(
    dash: &Dashboard,
    headers: &HeaderMap,
    form: &FormData,
) -> Result<SessionInfo, DashError> {
    if session::cross_origin(headers) {
        return Err(DashError::Refused);
    }
    let session = signed_in(dash, headers).await?;
    if !session::csrf_ok(&session, form.get("csrf")) {
        return Err(DashError::Refused);
    }
    Ok(session)
}

/// The page shell for a signed-in session, with the flash message waiting for it (if any).
pub(super) fn signed_in_page(
    dash: &Dashboard,
    session: &SessionInfo,
    active: &str,
    title: &str,
    body: &str,
) -> String {
    let flash = match dash.sessions.take_flash(&session.key) {
        Some(session::Flash::Ok(m)) => html::flash_ok(&m),
        Some(session::Flash::Error(m)) => html::flash_error(&m),
        Some(session::Flash::Test(t)) => configs::test_result(&t),
        None => String::new(),
    };
    let nav = html::Nav {
        app_key: &session.app_key,
        csrf: &session.csrf,
        active,
        read_only: session.read_only,
    };
    page(title, Some(&nav), &format!("{flash}{body}"))
}

pub(super) fn query_map(pairs: Vec<(String, String)>) -> HashMap<String, String> {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect()
}

// ---------- sign in and out ----------

async fn home(
    State(dash): State<Dash>,
    headers: HeaderMap,
    query: axum::extract::Query<Vec<(String, String)>>,
) -> DashResult {
    match signed_in(&dash, &headers).await {
        Ok(session) => configs::list(&dash, &session, query_map(query.0)).await,
        Err(DashError::SignIn) => Ok(sign_in_page(StatusCode::OK, "", None)),
        Err(e) => Err(e),
    }
}

fn sign_in_page(status: StatusCode, app_key: &str, error: Option<&str>) -> Response {
    let body = format!(
        "<section class=\"card narrow signin\"><h1>Sign in</h1>\
         <p class=\"muted\">Use an app key and its secret key (<code>POST /v1/appkeys</code> with \
         the admin token creates one).</p>{}\
         <form method=\"post\" action=\"/ui/signin\" class=\"stack\">\
         <label>App key <input name=\"appKey\" value=\"{}\" required autocomplete=\"username\" \
         autofocus spellcheck=\"false\"></label>\
         <label>Secret key <input name=\"secretKey\" type=\"password\" required \
         autocomplete=\"current-password\"></label>\
         <button type=\"submit\" class=\"primary\">Sign in</button></form></section>",
        error.map(html::flash_error).unwrap_or_default(),
        esc(app_key)
    );
    html_response(status, page("Sign in", None, &body))
}

async fn sign_in(
    State(dash): State<Dash>,
    client: Option<Extension<crate::listener::ClientAddress>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> DashResult {
    if session::cross_origin(&headers) {
        return Err(DashError::Refused);
    }
    let form = FormData(form);
    let app_key = form.get("appKey").unwrap_or("").trim().to_owned();
    let address = client.map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.0);
    let now = std::time::Instant::now();
    if let Err(wait) = dash.sign_in_failures.check(address, app_key.as_str(), now) {
        let mut page = sign_in_page(
            StatusCode::TOO_MANY_REQUESTS,
            &app_key,
            Some(&format!(
                "Too many failed sign-ins. Try again in {} seconds.",
                wait.as_secs().max(1)
            )),
        );
        page.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return Ok(page);
    }
    let secret = form.get("secretKey").unwrap_or("");
    let secret_hash = hash_secret(secret);
    let owner = if secret.is_empty() {
        None
    } else {
        dash.service.owner_of_secret_hash(&secret_hash).await?
    };
    if app_key.is_empty() || owner.as_deref() != Some(app_key.as_str()) {
        if dash.sign_in_failures.failed(address, app_key.as_str(), now) {
            // Once per address (or app key) and window; no secret in the line.
            tracing::warn!(
                address = %address,
                app_key,
                "too many failed sign-ins; refusing with 429 until the window ends"
            );
        }
        return Ok(sign_in_page(
            StatusCode::UNAUTHORIZED,
            &app_key,
            Some("That app key and secret key do not match."),
        ));
    }
    tracing::info!(app_key, "dashboard sign-in");
    let id = dash
        .sessions
        .create(&dash.service, app_key, secret_hash)
        .await?;
    let mut response = see_other("/");
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(&headers, &id)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

async fn sign_out(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> DashResult {
    let session = match form_session_of_any_kind(&dash, &headers, &FormData(form)).await {
        Ok(session) => Some(session),
        Err(DashError::SignIn) => None,
        Err(e) => return Err(e),
    };
    if let Some(session) = session {
        dash.sessions.remove(&dash.service, &session.key).await?;
    }
    let mut response = see_other("/");
    if let Ok(cookie) = HeaderValue::from_str(&session::clear_cookie(&headers)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}
