//! The trace of a hook: a hookId search box (a GET form, so a trace can be shared by its
//! address) and, for the hook found, what became of it for each config of the signed-in app key,
//! as the API's `GET /v1/appkeys/{appKey}/hooks/{hookId}` answers (the same service call).

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};

use super::html::{self, esc, time, url_enc};
use super::{Dash, DashResult, html_response, query_map, signed_in, signed_in_page};
use crate::service::traces::{Trace, TraceOutcome};

/// The badge class of an outcome: good, still on its way, bad, or "did not get it".
fn outcome_badge(outcome: TraceOutcome) -> String {
    let class = match outcome {
        TraceOutcome::Delivered => "good",
        TraceOutcome::Queued | TraceOutcome::InDelivery => "info",
        TraceOutcome::Held | TraceOutcome::Paused => "warn",
        TraceOutcome::Failed | TraceOutcome::Expired => "bad",
        TraceOutcome::Cancelled
        | TraceOutcome::NotSubscribed
        | TraceOutcome::FilteredOut
        | TraceOutcome::CreatedAfter => "muted",
    };
    format!("<span class=\"badge {class}\">{}</span>", outcome.as_str())
}

/// The search form, with `hook_id` in its box.
pub(super) fn search_form(hook_id: &str) -> String {
    format!(
        "<form method=\"get\" action=\"/ui/hooks\" class=\"card filters\" id=\"trace-search\">\
         <label>hookId <input name=\"hookId\" value=\"{}\" spellcheck=\"false\" size=\"32\" \
         required></label><div class=\"actions\"><button type=\"submit\" class=\"primary\">\
         Trace</button></div></form>",
        esc(hook_id)
    )
}

fn render(t: &Trace) -> String {
    let h = &t.hook;
    let mut out = String::new();
    let _ = write!(
        out,
        "<section class=\"card\" id=\"trace-hook\"><dl>\
         <dt>hookId</dt><dd class=\"mono\" id=\"trace-hook-id\">{id}</dd>\
         <dt>Product</dt><dd>{product}</dd><dt>Event</dt><dd>{event}</dd>\
         <dt>Accepted</dt><dd>{accepted} UTC</dd></dl>\
         <pre class=\"mono\" id=\"trace-body\">{body}</pre></section>",
        id = esc(&h.hook_id),
        product = esc(h.product.as_str()),
        event = esc(h.event.as_str()),
        accepted = esc(&time(h.accepted_at)),
        body = esc(&h.body),
    );
    if t.configs.is_empty() {
        out.push_str(
            "<section class=\"card empty\"><p>This app key has no config for this product.</p>\
             </section>",
        );
        return out;
    }
    out.push_str(
        "<section class=\"card flush\"><table class=\"list\" id=\"trace-configs\"><thead><tr>\
         <th>Config</th><th>Outcome</th><th>Why</th><th>Deliveries</th></tr></thead><tbody>",
    );
    for c in &t.configs {
        let deliveries = c
            .deliveries
            .iter()
            .map(|d| {
                format!(
                    "<a class=\"mono\" href=\"/ui/deliveries/{}\">{}</a> {} ({} attempts)",
                    url_enc(&d.hooks_id),
                    esc(&d.hooks_id),
                    html::status_badge(d.status),
                    d.attempt_count
                )
            })
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = write!(
            out,
            "<tr data-config-id=\"{id}\" data-outcome=\"{outcome}\">\
             <td><a href=\"/ui/configs/{id_url}\">{name}</a></td><td>{badge}</td>\
             <td>{why}</td><td>{deliveries}</td></tr>",
            id = esc(&c.config.id),
            id_url = url_enc(&c.config.id),
            outcome = c.outcome.as_str(),
            name = esc(&html::config_name(&c.config)),
            badge = outcome_badge(c.outcome),
            why = esc(&c.explanation),
            deliveries = if deliveries.is_empty() {
                "–".to_owned()
            } else {
                deliveries
            },
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

pub(super) async fn show(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> DashResult {
    let session = signed_in(&dash, &headers).await?;
    let query = query_map(query);
    let hook_id = query.get("hookId").map(|s| s.trim()).unwrap_or("");
    let mut body = String::from("<h1>Trace a hook</h1>");
    body.push_str(&search_form(hook_id));
    let status = if hook_id.is_empty() {
        body.push_str(
            "<p class=\"muted\">Enter a hookId to see what became of it for each config.</p>",
        );
        StatusCode::OK
    } else {
        match dash.service.trace_hook(&session.app_key, hook_id).await {
            Ok(trace) => {
                body.push_str(&render(&trace));
                StatusCode::OK
            }
            Err(e) if e.kind.status().is_server_error() => return Err(e.into()),
            Err(e) => {
                body.push_str(&html::flash_error(&e.message));
                e.kind.status()
            }
        }
    };
    Ok(html_response(
        status,
        signed_in_page(&dash, &session, "trace", "Trace a hook", &body),
    ))
}
