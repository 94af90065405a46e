//! Config pages: the list, one config (health, settings, test event, chart, recent deliveries),
//! the create/edit form, enable/disable and the test event. The form is read into the same
//! `ConfigInput` as an API body, so validation and its messages are the API's.

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use hookline_wire::{Event, Product};
use serde_json::{Map, Value};

use super::html::{self, config_name, esc, opt_time, time, url_enc};
use super::session::{Flash, SessionInfo};
use super::{
    Dash, DashError, DashResult, Dashboard, FormData, chart, form_session, html_response,
    query_map, see_other, signed_in, signed_in_page,
};
use crate::duration;
use crate::model::{ConfigFilter, DeliveryFilter, PageRequest, WebhookConfig, now_millis};
use crate::service::config_input;
use crate::service::configs::TestSend;
use crate::service::input::page_request;
use crate::service::{self, ConfigInput};

/// The config list (the home page when signed in).
pub(super) async fn list(
    dash: &Dashboard,
    session: &SessionInfo,
    query: HashMap<String, String>,
) -> DashResult {
    let mut paging = query.clone();
    paging.insert("pageSize".into(), "100".into());
    let page = dash
        .service
        .list_configs(
            &session.app_key,
            ConfigFilter::default(),
            page_request(&paging)?,
        )
        .await?;
    let mut body = String::from(
        "<div class=\"title-row\"><h1>Webhook configs</h1>\
         <a class=\"button primary\" href=\"/ui/configs/new\">New config</a></div>",
    );
    if page.items.is_empty() {
        body.push_str(
            "<section class=\"card empty\"><p>No webhook configs yet. A config says where \
             hookline sends which events.</p><p><a class=\"button primary\" \
             href=\"/ui/configs/new\">Create the first one</a></p></section>",
        );
    } else {
        body.push_str(
            "<section class=\"card flush\"><table class=\"list\" id=\"configs\"><thead><tr>\
             <th>Config</th><th>Product and events</th><th>URL</th><th>State</th>\
             <th class=\"num\">Failures in a row</th><th>Last success (UTC)</th></tr></thead><tbody>",
        );
        for c in &page.items {
            let _ = write!(
                body,
                "<tr data-config-id=\"{id}\"><td><a href=\"/ui/configs/{id_url}\">{name}</a>\
                 <div class=\"sub mono\">{id}</div></td><td>{product}<div class=\"sub\">{events}</div></td>\
                 <td class=\"url mono\">{url}</td><td>{enabled} {health}</td>\
                 <td class=\"num\">{failures}</td><td class=\"nowrap\">{last}</td></tr>",
                id = esc(&c.id),
                id_url = url_enc(&c.id),
                name = esc(&config_name(c)),
                product = esc(c.product.as_str()),
                events = esc(&event_names(&c.events)),
                url = esc(&c.url),
                enabled = html::enabled_badge(c.enabled),
                health = html::health_badge(c.health.state),
                failures = c.health.consecutive_failures,
                last = esc(&opt_time(c.health.last_success_at)),
            );
        }
        body.push_str("</tbody></table></section>");
        if let Some(next) = &page.next_cursor {
            let _ = write!(
                body,
                "<p class=\"pager\"><a href=\"/?cursor={}\">More configs →</a></p>",
                url_enc(next)
            );
        }
    }
    Ok(html_response(
        StatusCode::OK,
        signed_in_page(dash, session, "configs", "Webhook configs", &body),
    ))
}

fn event_names(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One config: health, chart, test event, settings, recent deliveries.
pub(super) async fn show(
    State(dash): State<Dash>,
    Path(config_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> DashResult {
    let session = signed_in(&dash, &headers).await?;
    let query = query_map(query);
    let config = dash
        .service
        .get_config(&session.app_key, &config_id)
        .await?;
    let range = chart::Range::parse(query.get("range").map(String::as_str));
    let since = range.since(now_millis());
    let buckets = dash
        .service
        .attempt_buckets(
            &session.app_key,
            &config.id,
            since,
            range.bucket_ms,
            range.buckets,
        )
        .await?;
    let recent = dash
        .service
        .list_deliveries(
            &session.app_key,
            DeliveryFilter {
                config_id: Some(config.id.clone()),
                ..DeliveryFilter::default()
            },
            PageRequest {
                size: 10,
                cursor: None,
            },
        )
        .await?;

    let id_url = url_enc(&config.id);
    let mut body = String::new();
    let _ = write!(
        body,
        "<p class=\"crumbs\"><a href=\"/\">Configs</a> /</p>\
         <div class=\"title-row\"><h1 id=\"config-name\">{name}</h1><div class=\"actions\">\
         <a class=\"button\" href=\"/ui/configs/{id_url}/edit\">Edit</a>\
         <form method=\"post\" action=\"/ui/configs/{id_url}/enabled\">{csrf}\
         <input type=\"hidden\" name=\"enabled\" value=\"{toggle_value}\">\
         <button type=\"submit\" id=\"toggle-enabled\">{toggle_label}</button></form>\
         <a class=\"button\" href=\"/ui/deliveries?webhookConfigId={id_url}\">Deliveries</a>\
         </div></div>",
        name = esc(&config_name(&config)),
        csrf = html::csrf_field(&session.csrf),
        toggle_value = !config.enabled,
        toggle_label = if config.enabled { "Disable" } else { "Enable" },
    );

    // Health and settings side by side.
    let h = &config.health;
    let _ = write!(
        body,
        "<div class=\"grid2\"><section class=\"card\" id=\"health\"><h2>Health</h2><dl>\
         <dt>Config</dt><dd id=\"enabled-state\">{enabled}</dd>\
         <dt>State</dt><dd id=\"health-state\">{state}</dd>\
         <dt>Failures in a row</dt><dd id=\"consecutive-failures\">{failures}</dd>\
         <dt>Last success</dt><dd id=\"last-success\">{last_ok}</dd>\
         <dt>Last failure</dt><dd id=\"last-failure\">{last_fail}</dd>\
         <dt>Failing since</dt><dd>{failing_since}</dd>\
         <dt>Disabled because</dt><dd id=\"disabled-reason\">{reason}</dd></dl>\
         <p class=\"muted small\">Times are UTC. Enabling a config that health checks disabled \
         clears its state.</p></section>",
        enabled = html::enabled_badge(config.enabled),
        state = html::health_badge(h.state),
        failures = h.consecutive_failures,
        last_ok = esc(&opt_time(h.last_success_at)),
        last_fail = esc(&opt_time(h.last_failure_at)),
        failing_since = h
            .failing_since
            .map(|t| esc(&time(t)))
            .unwrap_or_else(|| "–".into()),
        reason = h
            .disabled_reason
            .as_deref()
            .map(esc)
            .unwrap_or_else(|| "–".into()),
    );
    let signing = match (&config.signing_secret, &config.previous_signing_secret) {
        (None, _) => "none".to_owned(),
        (Some(_), Some(p)) if p.expires_at > now_millis() => format!(
            "set (Standard Webhooks); the previous one also signs until {} UTC",
            esc(&time(p.expires_at))
        ),
        (Some(_), _) => "set (Standard Webhooks)".to_owned(),
    };
    let _ = write!(
        body,
        "<section class=\"card\" id=\"settings\"><h2>Settings</h2><dl>\
         <dt>webhookConfigId</dt><dd class=\"mono\">{id}</dd>\
         <dt>Product</dt><dd>{product}</dd>\
         <dt>Events</dt><dd>{events}</dd>\
         <dt>URL</dt><dd class=\"mono url\">{url}</dd>\
         <dt>Signature header</dt><dd class=\"mono\">{signature}</dd>\
         <dt>Signing secret</dt><dd>{signing}</dd>\
         <dt>Hooks per request</dt><dd>{max_hooks}</dd>\
         <dt>Requests in flight</dt><dd>{in_flight}</dd>\
         <dt>Timeout</dt><dd>{timeout} ms</dd>\
         <dt>Retry schedule</dt><dd>{schedule}</dd>\
         <dt>Headers</dt><dd class=\"mono\" id=\"custom-headers\">{custom_headers}</dd>\
         <dt>Filter</dt><dd class=\"mono\" id=\"filter\">{filter}</dd>\
         <dt>Delivery deadline</dt><dd id=\"delivery-deadline\">{deadline}</dd>\
         <dt>Ordering key</dt><dd class=\"mono\" id=\"ordering-key\">{ordering}</dd>\
         <dt>Created</dt><dd>{created} UTC</dd><dt>Updated</dt><dd>{updated} UTC</dd></dl></section></div>",
        id = esc(&config.id),
        product = esc(config.product.as_str()),
        events = esc(&event_names(&config.events)),
        url = esc(&config.url),
        signature = esc(&config.signature),
        max_hooks = config.max_hooks_per_request,
        in_flight = config.max_requests_in_flight,
        timeout = config.timeout_ms,
        schedule = esc(&schedule_text(&config)),
        custom_headers = if config.headers.is_empty() {
            "–".to_owned()
        } else {
            esc(&headers_text(&config)).replace('\n', "<br>")
        },
        filter = match &config.filter {
            None => "– (every hook of its events)".to_owned(),
            Some(f) => esc(&f.source().to_string()),
        },
        deadline = match config.delivery_deadline {
            None => "– (retries run their schedule)".to_owned(),
            Some(d) => format!(
                "{} after acceptance; later deliveries end EXPIRED",
                esc(&crate::duration::format(d))
            ),
        },
        ordering = match &config.ordering_key {
            None => "– (hooks are not ordered)".to_owned(),
            Some(key) => format!(
                "{}: hooks with the same value go out in acceptance order",
                esc(key)
            ),
        },
        created = esc(&time(config.created_at)),
        updated = esc(&time(config.updated_at)),
    );

    // The chart.
    body.push_str("<section class=\"card\" id=\"chart\"><div class=\"title-row\"><h2>Attempts over time</h2><nav class=\"tabs\">");
    for r in chart::RANGES {
        let _ = write!(
            body,
            "<a href=\"/ui/configs/{id_url}?range={}#chart\"{}>{}</a>",
            r.name,
            if r == range {
                " class=\"active\" aria-current=\"true\""
            } else {
                ""
            },
            r.name
        );
    }
    body.push_str("</nav></div>");
    body.push_str(&chart::render(range, since, &buckets));
    body.push_str(
        "<p class=\"muted small\">Attempts of logged deliveries (test events are not logged), \
         per interval; hover a bar or point for its numbers.</p></section>",
    );

    // The test event.
    let _ = write!(
        body,
        "<section class=\"card\" id=\"test\"><h2>Send a test event</h2>\
         <form method=\"post\" action=\"/ui/configs/{id_url}/test\" class=\"inline\">{}\
         <label>Event <select name=\"event\" id=\"test-event\">",
        html::csrf_field(&session.csrf)
    );
    for e in &config.events {
        let _ = write!(body, "<option>{}</option>", esc(e.as_str()));
    }
    body.push_str(
        "</select></label><button type=\"submit\" class=\"primary\" id=\"send-test\">Send test \
         event</button></form><p class=\"muted small\">Sends one realistic sample hook to the \
         URL now, outside the queue and the log, and shows the attempt.</p></section>",
    );

    // Recent deliveries.
    body.push_str("<section class=\"card flush\" id=\"recent\"><div class=\"title-row pad\"><h2>Recent deliveries</h2>");
    let _ = write!(
        body,
        "<a href=\"/ui/deliveries?webhookConfigId={id_url}\">All deliveries of this config →</a></div>"
    );
    if recent.items.is_empty() {
        body.push_str("<p class=\"pad muted\">No deliveries yet.</p>");
    } else {
        body.push_str(&super::deliveries::table(&recent.items, None));
    }
    body.push_str("</section>");

    Ok(html_response(
        StatusCode::OK,
        signed_in_page(&dash, &session, "configs", &config_name(&config), &body),
    ))
}

fn schedule_text(config: &WebhookConfig) -> String {
    config
        .retry_schedule
        .iter()
        .map(|d| duration::format(*d))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result of a test event, shown at the top of the config page.
pub(super) fn test_result(t: &TestSend) -> String {
    let a = &t.result;
    let outcome = match (&a.status_code, &a.error_kind) {
        (_, Some(kind)) => format!("error {}", esc(kind.as_str())),
        (Some(code), None) => format!("HTTP {code}"),
        (None, None) => "no answer".to_owned(),
    };
    let mut out = format!(
        "<section class=\"flash {class}\" id=\"test-result\" role=\"status\"><b>Test event \
         {verdict}:</b> <span id=\"test-outcome\">{outcome}</span> in {ms} ms \
         <span class=\"muted\">(hooksId <code>{hooks_id}</code>, hookId <code>{hook_id}</code>)</span>",
        class = if t.succeeded { "ok" } else { "error" },
        verdict = if t.succeeded { "delivered" } else { "failed" },
        ms = a.duration_ms,
        hooks_id = esc(&t.hooks_id),
        hook_id = esc(&t.hook_id),
    );
    if let Some(message) = &a.error_message {
        let _ = write!(out, "<div>{}</div>", esc(message));
    }
    if let Some(body) = a.response_body.as_deref().filter(|b| !b.is_empty()) {
        let _ = write!(
            out,
            "<div class=\"small\">Response body:</div><pre class=\"response\">{}</pre>",
            esc(body)
        );
    }
    out.push_str("</section>");
    out
}

// ---------- the form ----------

/// What the create/edit form shows.
struct FormValues {
    description: String,
    product: String,
    events: Vec<String>,
    url: String,
    signature: String,
    enabled: bool,
    max_hooks: String,
    max_in_flight: String,
    timeout_ms: String,
    retry_schedule: String,
    /// Custom headers, one `Name: value` per line; credentials shown masked.
    headers: String,
    /// The filter's JSON; empty for none.
    filter: String,
    /// `deliveryDeadline` as written (`10m`); empty for none.
    delivery_deadline: String,
    /// `orderingKey` (a hook field's name); empty for none.
    ordering_key: String,
    remove_secret: bool,
}

impl FormValues {
    fn new_config() -> Self {
        FormValues {
            description: String::new(),
            product: Product::Sms.as_str().to_owned(),
            events: Vec::new(),
            url: String::new(),
            signature: String::new(),
            enabled: true,
            max_hooks: String::new(),
            max_in_flight: String::new(),
            timeout_ms: String::new(),
            retry_schedule: String::new(),
            headers: String::new(),
            filter: String::new(),
            delivery_deadline: String::new(),
            ordering_key: String::new(),
            remove_secret: false,
        }
    }

    fn of(c: &WebhookConfig) -> Self {
        FormValues {
            description: c.description.clone(),
            product: c.product.as_str().to_owned(),
            events: c.events.iter().map(|e| e.as_str().to_owned()).collect(),
            url: c.url.clone(),
            signature: c.signature.clone(),
            enabled: c.enabled,
            max_hooks: c.max_hooks_per_request.to_string(),
            max_in_flight: c.max_requests_in_flight.to_string(),
            timeout_ms: c.timeout_ms.to_string(),
            retry_schedule: schedule_text(c),
            headers: headers_text(c),
            filter: c
                .filter
                .as_ref()
                .and_then(|f| serde_json::to_string_pretty(f.source()).ok())
                .unwrap_or_default(),
            delivery_deadline: c
                .delivery_deadline
                .map(crate::duration::format)
                .unwrap_or_default(),
            ordering_key: c.ordering_key.clone().unwrap_or_default(),
            remove_secret: false,
        }
    }

    fn submitted(form: &FormData) -> Self {
        let text = |name: &str| form.get(name).unwrap_or("").to_owned();
        FormValues {
            description: text("description"),
            product: text("productName"),
            events: form.all("events").into_iter().map(str::to_owned).collect(),
            url: text("url"),
            signature: text("signature"),
            enabled: form.get("enabled").is_some(),
            max_hooks: text("maxHooksPerRequest"),
            max_in_flight: text("maxRequestsInFlight"),
            timeout_ms: text("timeoutMs"),
            retry_schedule: text("retrySchedule"),
            headers: text("headers"),
            filter: text("filter"),
            delivery_deadline: text("deliveryDeadline"),
            ordering_key: text("orderingKey"),
            remove_secret: form.get("removeSigningSecret").is_some(),
        }
    }
}

/// A config's custom headers as the form shows them: `Name: value` lines, credentials masked
/// (the page never holds them; see [`headers_field`]).
fn headers_text(c: &WebhookConfig) -> String {
    c.headers
        .iter()
        .map(|(n, v)| format!("{n}: {}", config_input::shown_header_value(n, v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `headers` object of the form's `Name: value` lines. A masked value of a header the config
/// already has keeps that header's stored value, so saving the form never writes the mask.
/// A line without a colon becomes a name `ConfigInput` refuses, naming it.
fn headers_field(form: &FormData, existing: Option<&WebhookConfig>) -> Map<String, Value> {
    let mut map = Map::new();
    for line in form.get("headers").unwrap_or("").lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let (name, value) = (name.trim(), value.trim());
        let kept = existing.and_then(|c| {
            c.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .filter(|_| value == config_input::MASKED_HEADER_VALUE)
                .map(|(_, v)| v.clone())
        });
        map.insert(
            name.to_owned(),
            Value::String(kept.unwrap_or_else(|| value.to_owned())),
        );
    }
    map
}

/// The config body the form stands for, in the API's JSON shape (so `ConfigInput` names the
/// same fields in its errors). On edit, an empty signing secret field keeps the current secret
/// (unless "remove" is ticked): the page never holds it.
fn input_body(form: &FormData, existing: Option<&WebhookConfig>) -> Map<String, Value> {
    let mut body = Map::new();
    let text = |name: &str| form.get(name).unwrap_or("").trim().to_owned();
    body.insert("productName".into(), Value::String(text("productName")));
    body.insert(
        "events".into(),
        Value::Array(
            form.all("events")
                .into_iter()
                .map(|e| Value::String(e.to_owned()))
                .collect(),
        ),
    );
    body.insert("url".into(), Value::String(text("url")));
    // The signature is sent verbatim: not trimmed.
    body.insert(
        "signature".into(),
        Value::String(form.get("signature").unwrap_or("").to_owned()),
    );
    body.insert(
        "description".into(),
        Value::String(form.get("description").unwrap_or("").to_owned()),
    );
    body.insert("enabled".into(), Value::Bool(form.get("enabled").is_some()));
    for field in ["maxHooksPerRequest", "maxRequestsInFlight", "timeoutMs"] {
        let value = text(field);
        if value.is_empty() {
            continue;
        }
        // A number goes as a number; anything else as text, for the API's own error message.
        let v = match value.parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(value),
        };
        body.insert(field.into(), v);
    }
    let schedule = text("retrySchedule");
    if !schedule.is_empty() {
        body.insert(
            "retrySchedule".into(),
            Value::Array(
                schedule
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ),
        );
    }
    body.insert(
        "headers".into(),
        Value::Object(headers_field(form, existing)),
    );
    // Empty: no filter. Text that is not JSON goes as a string, which the service refuses with
    // the field's name.
    let filter = text("filter");
    if !filter.trim().is_empty() {
        body.insert(
            "filter".into(),
            serde_json::from_str(&filter).unwrap_or(Value::String(filter)),
        );
    }
    // Empty: no deadline.
    let deadline = text("deliveryDeadline");
    if !deadline.trim().is_empty() {
        body.insert(
            "deliveryDeadline".into(),
            Value::String(deadline.trim().to_owned()),
        );
    }
    // Empty: not ordered.
    let ordering_key = text("orderingKey");
    if !ordering_key.trim().is_empty() {
        body.insert(
            "orderingKey".into(),
            Value::String(ordering_key.trim().to_owned()),
        );
    }
    // The page never holds the secret: an empty field leaves it as it is (the field is left out,
    // which keeps a write-only field), "remove" sends `null`.
    let new_secret = text("signingSecret");
    if !new_secret.is_empty() {
        body.insert("signingSecret".into(), Value::String(new_secret));
    } else if existing.is_some() && form.get("removeSigningSecret").is_some() {
        body.insert("signingSecret".into(), Value::Null);
    }
    body
}

fn config_form(
    action: &str,
    values: &FormValues,
    existing: Option<&WebhookConfig>,
    csrf: &str,
    error: Option<&str>,
) -> String {
    let mut out = String::new();
    if let Some(e) = error {
        out.push_str(&html::flash_error(e));
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"{action}\" class=\"card form\" id=\"config-form\">{csrf}\
         <label>Description <input name=\"description\" value=\"{description}\" maxlength=\"1024\" \
         placeholder=\"e.g. Production SMS results\"></label>\
         <label>Product <select name=\"productName\">",
        action = esc(action),
        csrf = html::csrf_field(csrf),
        description = esc(&values.description),
    );
    for p in Product::all() {
        let _ = write!(
            out,
            "<option{}>{}</option>",
            if values.product == p.as_str() {
                " selected"
            } else {
                ""
            },
            esc(p.as_str())
        );
    }
    out.push_str(
        "</select></label><fieldset><legend>Events <span class=\"muted small\">(each must be an \
         event of the product)</span></legend>",
    );
    // Alphabetical: one list across every product, operators' included, in an order a person can
    // scan (and which does not move when a catalogue file adds events).
    let mut events = Event::all().to_vec();
    events.sort_by_key(|e| e.as_str());
    for e in events {
        let products: Vec<&str> = Product::all()
            .filter(|p| e.is_valid_for(*p))
            .map(|p| p.as_str())
            .collect();
        let _ = write!(
            out,
            "<label class=\"check\"><input type=\"checkbox\" name=\"events\" value=\"{name}\"{checked}> \
             <code>{name}</code> <span class=\"muted small\">{products}</span></label>",
            name = esc(e.as_str()),
            checked = if values.events.iter().any(|v| v == e.as_str()) {
                " checked"
            } else {
                ""
            },
            products = esc(&products.join(", ")),
        );
    }
    let _ = write!(
        out,
        "</fieldset>\
         <label>URL <input name=\"url\" type=\"url\" value=\"{url}\" required \
         placeholder=\"https://example.com/hooks\" spellcheck=\"false\"></label>\
         <label>Signature <span class=\"muted small\">sent verbatim in X-Toast-Webhook-Signature</span>\
         <input name=\"signature\" value=\"{signature}\" required spellcheck=\"false\"></label>\
         <label>Signing secret <span class=\"muted small\">optional <code>whsec_…</code>: adds \
         Standard Webhooks headers{secret_note}</span>\
         <input name=\"signingSecret\" type=\"password\" autocomplete=\"off\" spellcheck=\"false\"></label>",
        url = esc(&values.url),
        signature = esc(&values.signature),
        secret_note = match existing {
            Some(c) if c.signing_secret.is_some() => "; one is set: leave empty to keep it",
            _ => "",
        },
    );
    if existing.is_some_and(|c| c.signing_secret.is_some()) {
        let _ = write!(
            out,
            "<label class=\"check\"><input type=\"checkbox\" name=\"removeSigningSecret\" \
             value=\"true\"{}> Remove the signing secret</label>",
            if values.remove_secret { " checked" } else { "" }
        );
    }
    let _ = write!(
        out,
        "<label class=\"check\"><input type=\"checkbox\" name=\"enabled\" value=\"true\"{enabled}> \
         Enabled <span class=\"muted small\">(a paused config receives nothing new)</span></label>\
         <div class=\"row3\">\
         <label>Hooks per request <input name=\"maxHooksPerRequest\" inputmode=\"numeric\" \
         value=\"{max_hooks}\" placeholder=\"100\"></label>\
         <label>Requests in flight <input name=\"maxRequestsInFlight\" inputmode=\"numeric\" \
         value=\"{in_flight}\" placeholder=\"64\"></label>\
         <label>Timeout (ms) <input name=\"timeoutMs\" inputmode=\"numeric\" value=\"{timeout}\" \
         placeholder=\"10000\"></label></div>\
         <label>Retry schedule <span class=\"muted small\">delays before attempts 2, 3, …; empty \
         for the default</span><input name=\"retrySchedule\" value=\"{schedule}\" \
         placeholder=\"5s, 30s, 2m, 10m, 30m, 1h, 2h, 4h\" spellcheck=\"false\"></label>\
         <label>Headers <span class=\"muted small\">sent with every request, one \
         <code>Name: value</code> per line; credentials show as ******** (leave them so to \
         keep them)</span><textarea name=\"headers\" rows=\"3\" spellcheck=\"false\" \
         placeholder=\"Authorization: Bearer …\">{headers}</textarea></label>\
         <label>Filter <span class=\"muted small\">JSON: only the hooks that match are sent, e.g. \
         <code>{{\"messageStatus\": {{\"$in\": [\"FAILED\"]}}}}</code>; empty for every hook \
         </span><textarea name=\"filter\" rows=\"3\" spellcheck=\"false\">{filter}</textarea>\
         </label>\
         <label>Delivery deadline <span class=\"muted small\">no attempt starts later than this \
         after a hook was accepted (1s to 30d); later deliveries end EXPIRED; empty for none\
         </span><input name=\"deliveryDeadline\" value=\"{deadline}\" placeholder=\"10m\" \
         spellcheck=\"false\"></label>\
         <label>Ordering key <span class=\"muted small\">a top-level hook field, e.g. \
         <code>recipientNo</code>: hooks with the same value go out in acceptance order, and a \
         value whose receiver keeps failing holds back only its own hooks; empty for none\
         </span><input name=\"orderingKey\" value=\"{ordering_key}\" placeholder=\"recipientNo\" \
         spellcheck=\"false\"></label>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\">Save</button>\
         <a href=\"{cancel}\">Cancel</a></div></form>",
        enabled = if values.enabled { " checked" } else { "" },
        max_hooks = esc(&values.max_hooks),
        in_flight = esc(&values.max_in_flight),
        timeout = esc(&values.timeout_ms),
        schedule = esc(&values.retry_schedule),
        headers = esc(&values.headers),
        filter = esc(&values.filter),
        deadline = esc(&values.delivery_deadline),
        ordering_key = esc(&values.ordering_key),
        cancel = match existing {
            Some(c) => format!("/ui/configs/{}", url_enc(&c.id)),
            None => "/".to_owned(),
        },
    );
    out
}

fn form_page(
    dash: &Dashboard,
    session: &SessionInfo,
    status: StatusCode,
    existing: Option<&WebhookConfig>,
    values: &FormValues,
    error: Option<&str>,
) -> axum::response::Response {
    let (title, action, crumbs) = match existing {
        Some(c) => (
            "Edit config".to_owned(),
            format!("/ui/configs/{}", url_enc(&c.id)),
            format!(
                "<p class=\"crumbs\"><a href=\"/\">Configs</a> / <a href=\"/ui/configs/{}\">{}</a> /</p>",
                url_enc(&c.id),
                esc(&config_name(c))
            ),
        ),
        None => (
            "New config".to_owned(),
            "/ui/configs".to_owned(),
            "<p class=\"crumbs\"><a href=\"/\">Configs</a> /</p>".to_owned(),
        ),
    };
    let body = format!(
        "{crumbs}<h1>{}</h1>{}",
        esc(&title),
        config_form(&action, values, existing, &session.csrf, error)
    );
    html_response(
        status,
        signed_in_page(dash, session, "configs", &title, &body),
    )
}

pub(super) async fn new_form(State(dash): State<Dash>, headers: HeaderMap) -> DashResult {
    let session = signed_in(&dash, &headers).await?;
    Ok(form_page(
        &dash,
        &session,
        StatusCode::OK,
        None,
        &FormValues::new_config(),
        None,
    ))
}

pub(super) async fn edit_form(
    State(dash): State<Dash>,
    Path(config_id): Path<String>,
    headers: HeaderMap,
) -> DashResult {
    let session = signed_in(&dash, &headers).await?;
    let config = dash
        .service
        .get_config(&session.app_key, &config_id)
        .await?;
    Ok(form_page(
        &dash,
        &session,
        StatusCode::OK,
        Some(&config),
        &FormValues::of(&config),
        None,
    ))
}

/// A refused form goes back with the API's message and what was typed (except a secret).
fn invalid(
    dash: &Dashboard,
    session: &SessionInfo,
    existing: Option<&WebhookConfig>,
    form: &FormData,
    e: service::Error,
) -> DashResult {
    if e.kind.status().is_server_error() {
        return Err(DashError::Service(e));
    }
    Ok(form_page(
        dash,
        session,
        e.kind.status(),
        existing,
        &FormValues::submitted(form),
        Some(&e.message),
    ))
}

pub(super) async fn create(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> DashResult {
    let form = FormData(form);
    let session = form_session(&dash, &headers, &form).await?;
    let created = match ConfigInput::from_json(&input_body(&form, None)) {
        Ok(input) => dash.service.create_config(&session.app_key, input).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(config) => {
            dash.sessions
                .set_flash(&session.key, Flash::Ok("Config created.".into()));
            Ok(see_other(&format!("/ui/configs/{}", url_enc(&config.id))))
        }
        Err(e) => invalid(&dash, &session, None, &form, e),
    }
}

pub(super) async fn update(
    State(dash): State<Dash>,
    Path(config_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> DashResult {
    let form = FormData(form);
    let session = form_session(&dash, &headers, &form).await?;
    let existing = dash
        .service
        .get_config(&session.app_key, &config_id)
        .await?;
    let replaced = match ConfigInput::from_json(&input_body(&form, Some(&existing))) {
        Ok(input) => {
            dash.service
                .replace_config(&session.app_key, &config_id, input)
                .await
        }
        Err(e) => Err(e),
    };
    match replaced {
        Ok(config) => {
            dash.sessions
                .set_flash(&session.key, Flash::Ok("Config saved.".into()));
            Ok(see_other(&format!("/ui/configs/{}", url_enc(&config.id))))
        }
        Err(e) => invalid(&dash, &session, Some(&existing), &form, e),
    }
}

/// Enable or disable. Enabling a config that health checks DISABLED gives it a fresh health,
/// as `PUT` does.
pub(super) async fn set_enabled(
    State(dash): State<Dash>,
    Path(config_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> DashResult {
    let form = FormData(form);
    let session = form_session(&dash, &headers, &form).await?;
    let enabled = form.get("enabled") == Some("true");
    dash.service
        .set_config_enabled(&session.app_key, &config_id, enabled)
        .await?;
    dash.sessions.set_flash(
        &session.key,
        Flash::Ok(if enabled {
            "Config enabled.".into()
        } else {
            "Config disabled: it receives nothing new until enabled again.".into()
        }),
    );
    Ok(see_other(&format!("/ui/configs/{}", url_enc(&config_id))))
}

pub(super) async fn send_test(
    State(dash): State<Dash>,
    Path(config_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> DashResult {
    let form = FormData(form);
    let session = form_session(&dash, &headers, &form).await?;
    let config = dash
        .service
        .get_config(&session.app_key, &config_id)
        .await?;
    let flash = match dash
        .service
        .send_test_event(&config, form.get("event"))
        .await
    {
        Ok(sent) => Flash::Test(Box::new(sent)),
        Err(e) if !e.kind.status().is_server_error() => Flash::Error(e.message),
        Err(e) => return Err(DashError::Service(e)),
    };
    dash.sessions.set_flash(&session.key, flash);
    Ok(see_other(&format!("/ui/configs/{}", url_enc(&config_id))))
}
