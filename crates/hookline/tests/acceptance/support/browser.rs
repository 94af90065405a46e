//! A cookie-jar-of-one HTTP client for the dashboard's pages: no redirects followed, the
//! session cookie sent by hand, so a test sees every answer (status, `Set-Cookie`, `Location`).

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::server::urlencode;
use super::{App, Server};

/// One answer of the dashboard.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The session id from `Set-Cookie`, with the cookie's attributes.
    pub fn session_cookie(&self) -> Option<(String, String)> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                let rest = c.strip_prefix("hookline_session=")?;
                let (value, attrs) = rest.split_once(';').unwrap_or((rest, ""));
                Some((value.to_owned(), attrs.to_owned()))
            })
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf field in page:\n{}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

/// A cookie-less HTTP client that does not follow redirects: each test sees every answer.
pub struct Browser<'a> {
    pub srv: &'a Server,
    pub http: reqwest::Client,
    /// The session id sent in the `hookline_session` cookie.
    pub cookie: Option<String>,
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl<'a> Browser<'a> {
    pub fn new(srv: &'a Server) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            srv,
            http,
            cookie: None,
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Page {
        let req = match &self.cookie {
            Some(id) => req.header("cookie", format!("hookline_session={id}")),
            None => req,
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| self.srv.fail(format!("{what}: {e}")));
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(self.srv.url(path)), &format!("GET {path}"))
            .await
    }

    pub async fn post(&self, path: &str, pairs: &[(&str, &str)], extra: &[(&str, &str)]) -> Page {
        let mut headers = HeaderMap::new();
        for (k, v) in extra {
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let req = self
            .http
            .post(self.srv.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .headers(headers)
            .body(form_body(pairs));
        self.send(req, &format!("POST {path}")).await
    }

    /// Signs in (asserting success) and keeps the session cookie.
    pub async fn sign_in(&mut self, app: &App) {
        let page = self
            .post(
                "/ui/signin",
                &[("appKey", &app.app_key), ("secretKey", &app.secret)],
                &[],
            )
            .await;
        assert_eq!(page.status, 303, "sign-in: {}", page.body);
        let (id, _) = page
            .session_cookie()
            .expect("sign-in sets the session cookie");
        self.cookie = Some(id);
    }
}
