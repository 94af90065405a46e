//! HTML building blocks: escaping, the page layout, small widgets. Every value that comes from
//! a request or the store goes through [`esc`] before it is put in a page.

use std::fmt::Write;

use crate::model::{DeliveryStatus, HealthState, Millis, WebhookConfig};

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string value.
pub fn url_enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A time for people: `2026-01-31 09:00:01` (UTC).
pub fn time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

pub fn opt_time(ms: Option<Millis>) -> String {
    ms.map(time).unwrap_or_else(|| "never".to_owned())
}

/// The page shell. `nav` is set when signed in: (app key, CSRF token, active section).
pub struct Nav<'a> {
    pub app_key: &'a str,
    pub csrf: &'a str,
    pub active: &'a str,
    /// A read-only session (a read-only portal link): said in the header, since its forms are
    /// shown but refused.
    pub read_only: bool,
}

pub fn page(title: &str, nav: Option<&Nav<'_>>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1500);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · hookline</title><link rel=\"icon\" href=\"/ui/favicon.svg\">\
         <link rel=\"stylesheet\" href=\"/ui/app.css\"></head><body>\
         <header class=\"top\"><a class=\"brand\" href=\"/\">hookline</a>",
        esc(title)
    );
    if let Some(nav) = nav {
        let tab = |href: &str, name: &str, label: &str| {
            format!(
                "<a href=\"{href}\"{}>{label}</a>",
                if nav.active == name {
                    " class=\"active\" aria-current=\"page\""
                } else {
                    ""
                }
            )
        };
        let _ = write!(
            out,
            "<nav>{}{}{}<a href=\"/docs\">API docs</a></nav>\
             <div class=\"who\">{}<span>app key <code>{}</code></span>\
             <form method=\"post\" action=\"/ui/signout\">{}<button class=\"link\" type=\"submit\">Sign out</button></form></div>",
            tab("/", "configs", "Configs"),
            tab("/ui/deliveries", "deliveries", "Deliveries"),
            tab("/ui/hooks", "trace", "Trace a hook"),
            if nav.read_only {
                "<span class=\"badge info\" id=\"read-only\" title=\"This session can look at \
                 every page and change nothing\">read-only</span>"
            } else {
                ""
            },
            esc(nav.app_key),
            csrf_field(nav.csrf),
        );
    }
    let _ = write!(out, "</header><main>{body}</main></body></html>");
    out
}

pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

pub fn flash_ok(message: &str) -> String {
    format!(
        "<div class=\"flash ok\" role=\"status\">{}</div>",
        esc(message)
    )
}

pub fn flash_error(message: &str) -> String {
    format!(
        "<div class=\"flash error\" role=\"alert\">{}</div>",
        esc(message)
    )
}

pub fn status_badge(status: DeliveryStatus) -> String {
    let class = match status {
        DeliveryStatus::Succeeded => "good",
        DeliveryStatus::Pending => "info",
        DeliveryStatus::Retrying => "warn",
        DeliveryStatus::Failed => "bad",
        DeliveryStatus::Cancelled | DeliveryStatus::Expired => "muted",
    };
    format!("<span class=\"badge {class}\">{}</span>", status.as_str())
}

pub fn health_badge(state: HealthState) -> String {
    let class = match state {
        HealthState::Healthy => "good",
        HealthState::Failing => "warn",
        HealthState::Disabled => "bad",
    };
    format!("<span class=\"badge {class}\">{}</span>", state.as_str())
}

pub fn enabled_badge(enabled: bool) -> &'static str {
    if enabled {
        "<span class=\"badge good\">ENABLED</span>"
    } else {
        "<span class=\"badge muted\">PAUSED</span>"
    }
}

/// A config's name for people: its description, or its id when it has none.
pub fn config_name(c: &WebhookConfig) -> String {
    if c.description.trim().is_empty() {
        c.id.clone()
    } else {
        c.description.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(esc("plain"), "plain");
    }

    #[test]
    fn url_enc_encodes_reserved_bytes() {
        assert_eq!(url_enc("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
