//! `GET /ui/portal/{token}`: a portal link (made by `POST /v1/appkeys/{appKey}/portal-links`)
//! opens a dashboard session, with the same cookie as a sign-in, and sends the browser to `/`.
//! A link works once: used, expired, revoked by a rotation (or never made), it answers 410 with
//! a page that says so. The token is never logged.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::html::{esc, page};
use super::{Dash, DashResult, html_response, see_other, session};

pub(super) async fn open(
    State(dash): State<Dash>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> DashResult {
    let Some(opened) = dash
        .sessions
        .open_portal_link(&dash.service, &token)
        .await?
    else {
        return Ok(gone());
    };
    let mut response = see_other("/");
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(&headers, &opened.id)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The page of a link that no longer works. Which of the reasons it is, is not said: a token
/// that never existed looks like one that was used.
fn gone() -> Response {
    let title = "Link no longer valid";
    let body = format!(
        "<section class=\"card narrow\" id=\"portal-gone\"><h1>{}</h1><p>This sign-in link has \
         already been used, has expired, or was revoked: a portal link opens the dashboard once, \
         before it expires. Ask for a new link, or sign in with the app key and its secret \
         key.</p><p><a href=\"/\">Sign in</a></p></section>",
        esc(title)
    );
    html_response(StatusCode::GONE, page(title, None, &body))
}
