//! The delivery log with its filters, one delivery (envelope exactly as sent, every attempt),
//! and redelivery. Filters are read by the service's `input::delivery_filter`, as the API's are.

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use hookline_wire::Event;

use super::html::{self, esc, time, url_enc};
use super::session::Flash;
use super::{
    Dash, DashResult, FormData, form_session, html_response, query_map, see_other, signed_in,
    signed_in_page,
};
use crate::model::{ConfigFilter, DeliveryStatus, DeliverySummary, PageRequest};
use crate::service::ErrorKind;
use crate::service::input::{delivery_filter, page_request};

/// Envelopes larger than this are shown cut (the API serves them whole).
const ENVELOPE_SHOWN: usize = 256 * 1024;
const PAGE_SIZE: &str = "50";

/// The log's table; `names` maps config ids to names (a column when given).
pub(super) fn table(items: &[DeliverySummary], names: Option<&HashMap<String, String>>) -> String {
    let mut out = String::from(
        "<table class=\"list\" id=\"deliveries\"><thead><tr><th>Created (UTC)</th><th>hooksId</th>",
    );
    if names.is_some() {
        out.push_str("<th>Config</th>");
    }
    out.push_str(
        "<th>Event</th><th>Status</th><th class=\"num\">Hooks</th><th class=\"num\">Attempts</th>\
         <th>Next attempt (UTC)</th></tr></thead><tbody>",
    );
    for d in items {
        let _ = write!(
            out,
            "<tr data-hooks-id=\"{id}\" data-status=\"{status}\"><td class=\"nowrap\">{created}</td>\
             <td><a class=\"mono\" href=\"/ui/deliveries/{id_url}\">{id}</a></td>",
            id = esc(&d.hooks_id),
            id_url = url_enc(&d.hooks_id),
            status = d.status.as_str(),
            created = esc(&time(d.created_at)),
        );
        if let Some(names) = names {
            let name = names.get(&d.config_id).unwrap_or(&d.config_id);
            let _ = write!(
                out,
                "<td><a href=\"/ui/configs/{}\">{}</a></td>",
                url_enc(&d.config_id),
                esc(name)
            );
        }
        let _ = write!(
            out,
            "<td>{event}</td><td>{badge}{test}</td><td class=\"num\">{hooks}</td>\
             <td class=\"num\">{attempts}</td><td class=\"nowrap\">{next}</td></tr>",
            event = esc(d.event.as_str()),
            badge = html::status_badge(d.status),
            // A test send's record: the operator must not take it for a real delivery.
            test = if d.test { " (test)" } else { "" },
            hooks = d.hook_ids.len(),
            attempts = d.attempt_count,
            next = d
                .next_attempt_at
                .filter(|_| d.status.is_open())
                .map(|t| esc(&time(t)))
                .unwrap_or_else(|| "–".into()),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A `datetime-local` value (`2026-01-31T09:00`, read as UTC) or an RFC 3339 time, as RFC 3339.
fn to_rfc3339(text: &str) -> String {
    let text = text.trim();
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return text.to_owned();
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return t
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        }
    }
    text.to_owned()
}

/// The value a `datetime-local` input shows for a filter time.
fn to_input(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|_| text.to_owned())
}

pub(super) async fn log(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> DashResult {
    let session = signed_in(&dash, &headers).await?;
    let mut query = query_map(query);
    for field in ["since", "until"] {
        if let Some(v) = query.get_mut(field) {
            *v = to_rfc3339(v);
        }
    }
    let configs = dash
        .service
        .list_configs(
            &session.app_key,
            ConfigFilter::default(),
            PageRequest {
                size: 1000,
                cursor: None,
            },
        )
        .await?;
    let names: HashMap<String, String> = configs
        .items
        .iter()
        .map(|c| (c.id.clone(), html::config_name(c)))
        .collect();

    let q = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    let mut body = String::from("<h1>Delivery log</h1>");
    // The filter form (GET: the filters are in the address, so a filtered view can be shared).
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/ui/deliveries\" class=\"card filters\" id=\"filters\">\
         <label>Config <select name=\"webhookConfigId\"><option value=\"\">All</option>"
    );
    for c in &configs.items {
        let _ = write!(
            body,
            "<option value=\"{}\"{}>{}</option>",
            esc(&c.id),
            if q("webhookConfigId") == c.id {
                " selected"
            } else {
                ""
            },
            esc(&html::config_name(c))
        );
    }
    body.push_str(
        "</select></label><label>Event <select name=\"event\"><option value=\"\">All</option>",
    );
    let mut events = Event::all().to_vec();
    events.sort_by_key(|e| e.as_str());
    for e in events {
        let _ = write!(
            body,
            "<option{}>{}</option>",
            if q("event") == e.as_str() {
                " selected"
            } else {
                ""
            },
            esc(e.as_str())
        );
    }
    body.push_str(
        "</select></label><label>Status <select name=\"status\"><option value=\"\">All</option>",
    );
    for s in DeliveryStatus::ALL {
        let _ = write!(
            body,
            "<option{}>{}</option>",
            if q("status") == s.as_str() {
                " selected"
            } else {
                ""
            },
            s.as_str()
        );
    }
    let _ = write!(
        body,
        "</select></label>\
         <label>Since (UTC) <input type=\"datetime-local\" step=\"1\" name=\"since\" value=\"{since}\"></label>\
         <label>Until (UTC) <input type=\"datetime-local\" step=\"1\" name=\"until\" value=\"{until}\"></label>\
         <label>hookId <input name=\"hookId\" value=\"{hook_id}\" spellcheck=\"false\" size=\"16\"></label>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\">Filter</button>\
         <a href=\"/ui/deliveries\">Clear</a></div></form>",
        since = esc(&to_input(q("since"))),
        until = esc(&to_input(q("until"))),
        hook_id = esc(q("hookId")),
    );

    let mut paging = query.clone();
    paging.insert("pageSize".into(), PAGE_SIZE.into());
    let listed = match (delivery_filter(&query), page_request(&paging)) {
        (Ok(filter), Ok(page)) => {
            dash.service
                .list_deliveries(&session.app_key, filter, page)
                .await
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let status = match listed {
        Ok(page) => {
            if page.items.is_empty() {
                body.push_str(
                    "<section class=\"card empty\" id=\"no-deliveries\"><p>No deliveries match.</p></section>",
                );
            } else {
                body.push_str("<section class=\"card flush\">");
                body.push_str(&table(&page.items, Some(&names)));
                body.push_str("</section>");
            }
            if let Some(next) = page.next_cursor {
                let mut link = String::from("/ui/deliveries?");
                for (k, v) in query.iter().filter(|(k, _)| k.as_str() != "cursor") {
                    let _ = write!(link, "{}={}&", url_enc(k), url_enc(v));
                }
                let _ = write!(link, "cursor={}", url_enc(&next));
                let _ = write!(
                    body,
                    "<p class=\"pager\"><a href=\"{}\" id=\"older\">Older deliveries →</a></p>",
                    esc(&link)
                );
            }
            StatusCode::OK
        }
        Err(e) if e.kind.status().is_server_error() => return Err(e.into()),
        Err(e) => {
            body.push_str(&html::flash_error(&e.message));
            e.kind.status()
        }
    };
    Ok(html_response(
        status,
        signed_in_page(&dash, &session, "deliveries", "Delivery log", &body),
    ))
}

pub(super) async fn show(
    State(dash): State<Dash>,
    Path(hooks_id): Path<String>,
    headers: HeaderMap,
) -> DashResult {
    let session = signed_in(&dash, &headers).await?;
    let detail = dash
        .service
        .get_delivery(&session.app_key, &hooks_id)
        .await?;
    let d = &detail.summary;
    // The config may be gone (deleted since): the delivery is still shown.
    let config_name = match dash
        .service
        .get_config(&session.app_key, &d.config_id)
        .await
    {
        Ok(c) => Some(html::config_name(&c)),
        Err(e) if e.kind == ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let id_url = url_enc(&d.hooks_id);
    let mut body = String::new();
    let _ = write!(
        body,
        "<p class=\"crumbs\"><a href=\"/ui/deliveries\">Deliveries</a> /</p>\
         <div class=\"title-row\"><h1>Delivery <span class=\"mono\" id=\"hooks-id\">{id}</span> \
         <span id=\"delivery-status\">{badge}</span>{test}</h1><div class=\"actions\">{redeliver}\
         </div></div>",
        id = esc(&d.hooks_id),
        badge = html::status_badge(d.status),
        // A test send's record: marked, and never redelivered (the API answers 409).
        test = if d.test {
            " <span class=\"badge\" id=\"test-marker\">test send</span>"
        } else {
            ""
        },
        redeliver = if d.test {
            String::new()
        } else {
            format!(
                "<form method=\"post\" action=\"/ui/deliveries/{id_url}/redeliver\">{}\
                 <button type=\"submit\" class=\"primary\" id=\"redeliver\">Redeliver</button></form>",
                html::csrf_field(&session.csrf)
            )
        },
    );
    let config_cell = match &config_name {
        Some(name) => format!(
            "<a href=\"/ui/configs/{}\">{}</a> <span class=\"sub mono\">{}</span>",
            url_enc(&d.config_id),
            esc(name),
            esc(&d.config_id)
        ),
        None => format!(
            "<span class=\"mono\">{}</span> (deleted)",
            esc(&d.config_id)
        ),
    };
    let _ = write!(
        body,
        "<section class=\"card\"><dl>\
         <dt>Config</dt><dd>{config_cell}</dd>\
         <dt>Product</dt><dd>{product}</dd><dt>Event</dt><dd>{event}</dd>\
         <dt>Status</dt><dd>{status}</dd><dt>Attempts</dt><dd>{attempts}</dd>\
         <dt>Created</dt><dd>{created} UTC</dd><dt>Updated</dt><dd>{updated} UTC</dd>\
         <dt>Next attempt</dt><dd>{next}</dd>\
         <dt>hookIds</dt><dd class=\"mono\" id=\"hook-ids\">{hook_ids}</dd></dl></section>",
        product = esc(d.product.as_str()),
        event = esc(d.event.as_str()),
        status = d.status.as_str(),
        attempts = d.attempt_count,
        created = esc(&time(d.created_at)),
        updated = esc(&time(d.updated_at)),
        next = d
            .next_attempt_at
            .filter(|_| d.status.is_open())
            .map(|t| format!("{} UTC", esc(&time(t))))
            .unwrap_or_else(|| "–".into()),
        hook_ids = d
            .hook_ids
            .iter()
            .map(|h| format!(
                "<a href=\"/ui/hooks?hookId={}\" title=\"Trace this hook\">{}</a>",
                url_enc(h),
                esc(h)
            ))
            .collect::<Vec<_>>()
            .join("<br>"),
    );

    body.push_str("<section class=\"card flush\" id=\"attempts\"><h2 class=\"pad\">Attempts</h2>");
    if detail.attempts.is_empty() {
        body.push_str("<p class=\"pad muted\">No attempt yet.</p>");
    } else {
        body.push_str(
            "<table class=\"list\"><thead><tr><th class=\"num\">#</th><th>Started (UTC)</th>\
             <th class=\"num\">Duration</th><th>Result</th><th>Response body (first 1 KiB)</th></tr></thead><tbody>",
        );
        for a in &detail.attempts {
            let r = &a.result;
            let result = match (r.status_code, r.error_kind) {
                (_, Some(kind)) => format!(
                    "<span class=\"badge bad\">{}</span> {}",
                    kind.as_str(),
                    esc(r.error_message.as_deref().unwrap_or(""))
                ),
                (Some(code), None) => format!(
                    "<span class=\"badge {}\">HTTP {code}</span>",
                    if r.succeeded() { "good" } else { "bad" }
                ),
                (None, None) => "–".to_owned(),
            };
            let _ = write!(
                body,
                "<tr class=\"attempt\"><td class=\"num\">{}</td><td class=\"nowrap\">{}</td><td class=\"num nowrap\">{} ms</td>\
                 <td>{result}{sent}</td><td><pre class=\"response\">{}</pre></td></tr>",
                a.number,
                esc(&time(r.started_at)),
                r.duration_ms,
                esc(r.response_body.as_deref().unwrap_or("")),
                sent = if r.request_headers.is_empty() {
                    String::new()
                } else {
                    // As stored: credential-like values are masked before they are recorded.
                    let lines: Vec<String> = r
                        .request_headers
                        .iter()
                        .map(|(n, v)| esc(&format!("{n}: {v}")))
                        .collect();
                    format!(
                        "<div class=\"muted small mono sent-headers\">sent {}</div>",
                        lines.join("<br>")
                    )
                },
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");

    let shown = &detail.envelope[..detail.envelope.len().min(ENVELOPE_SHOWN)];
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Envelope <span class=\"muted small\">exactly as sent, {} \
         bytes{}</span></h2><pre class=\"envelope\" id=\"envelope\">{}</pre></section>",
        detail.envelope.len(),
        if shown.len() < detail.envelope.len() {
            "; cut here, the API shows it whole"
        } else {
            ""
        },
        esc(&String::from_utf8_lossy(shown)),
    );
    Ok(html_response(
        StatusCode::OK,
        signed_in_page(&dash, &session, "deliveries", "Delivery", &body),
    ))
}

pub(super) async fn redeliver(
    State(dash): State<Dash>,
    Path(hooks_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> DashResult {
    let session = form_session(&dash, &headers, &FormData(form)).await?;
    match dash.service.redeliver(&session.app_key, &hooks_id).await {
        Ok(summary) => {
            dash.sessions.set_flash(
                &session.key,
                Flash::Ok(format!(
                    "Redelivered as a new delivery (same hooks) of {}.",
                    hooks_id
                )),
            );
            Ok(see_other(&format!(
                "/ui/deliveries/{}",
                url_enc(&summary.hooks_id)
            )))
        }
        Err(e) if e.kind.status().is_server_error() => Err(e.into()),
        Err(e) => {
            dash.sessions.set_flash(
                &session.key,
                Flash::Error(format!("Not redelivered: {}", e.message)),
            );
            Ok(see_other(&format!("/ui/deliveries/{}", url_enc(&hooks_id))))
        }
    }
}
