//! The settable fields of a webhook config and their rules: what a create or a replace may
//! set, each field checked with an error that names it. Pure: no store, no engine.

use std::time::Duration;

use hookline_wire::{Event, Product};
use serde_json::{Map, Value};

use super::error::{Error, ErrorKind, Result};
use super::input::{
    MAX_TEXT_LEN, event_list, optional_int, optional_string, parse_event_name, parse_product,
    required_string, wrong_type,
};
use crate::engine::retry;
use crate::filter::Filter;
use crate::model::{Health, PreviousSecret, WebhookConfig};

const MAX_URL_LEN: usize = 2048;
/// The default ceiling of a config's adaptive concurrency (see `engine::concurrency`): high,
/// because the limit itself starts at 8 and grows only while the receiver keeps up.
pub const DEFAULT_MAX_REQUESTS_IN_FLIGHT: u32 = 64;

/// What a write does to the write-only `signingSecret`: a client never sees it, so it cannot send
/// it back; leaving it out must not remove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretChange {
    /// Not in the body: the secret stays as it is (none on a new config).
    Keep,
    /// `null`: no secret (and a rotated-out one stops signing).
    Remove,
    Set(String),
}

/// The settable fields of a webhook config, validated.
pub struct ConfigInput {
    pub(super) product: Product,
    pub(super) events: Vec<Event>,
    pub(super) url: String,
    pub(super) signature: String,
    pub(super) signing_secret: SecretChange,
    pub(super) enabled: bool,
    pub(super) description: String,
    pub(super) max_hooks_per_request: u32,
    pub(super) max_requests_in_flight: u32,
    pub(super) timeout_ms: u32,
    pub(super) retry_schedule: Vec<Duration>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) filter: Option<Filter>,
    pub(super) delivery_deadline: Option<Duration>,
    pub(super) ordering_key: Option<String>,
}

/// Longest `orderingKey` (a field name), in bytes.
pub const MAX_ORDERING_KEY_LEN: usize = 64;

/// Reads `orderingKey`: absent or `null` for none, else the name of a top-level hook field:
/// 1 to 64 ASCII letters, digits or `_`, not starting with a digit (so both stores can address it
/// as a path without quoting, and a typo cannot name a nested path).
pub fn parse_ordering_key(value: Option<&Value>) -> Result<Option<String>> {
    const WHAT: &str = "the name of a top-level hook field such as \"recipientNo\"";
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) => {
            if name.is_empty() || name.len() > MAX_ORDERING_KEY_LEN {
                return Err(Error::field(
                    "orderingKey",
                    format!("{WHAT}, 1 to {MAX_ORDERING_KEY_LEN} characters"),
                ));
            }
            let mut chars = name.chars();
            let starts_well = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::field(
                    "orderingKey",
                    format!("{WHAT}: ASCII letters, digits and _, not starting with a digit"),
                ));
            }
            Ok(Some(name.clone()))
        }
        Some(other) => Err(wrong_type("orderingKey", WHAT, other)),
    }
}

/// The shortest and longest `deliveryDeadline`.
pub const DELIVERY_DEADLINE_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(30 * 86_400));

/// Reads `deliveryDeadline`: absent or `null` for none, else a duration from 1s to 30d.
pub fn parse_delivery_deadline(value: Option<&Value>) -> Result<Option<Duration>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let (min, max) = DELIVERY_DEADLINE_RANGE;
            crate::duration::Period::parse_within(text, min, max)
                .map(|p| Some(p.get()))
                .map_err(|e| Error::field("deliveryDeadline", e.to_string()))
        }
        Some(other) => Err(wrong_type(
            "deliveryDeadline",
            "a duration such as \"10m\" (1s to 30d)",
            other,
        )),
    }
}

/// Most custom headers per config.
pub const MAX_HEADERS: usize = 20;
/// Longest custom header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 1024;
/// Headers hookline sets itself (compared without letter case), plus every `webhook-*`: a config
/// cannot replace them, so the envelope, its signatures and the test marker stay hookline's.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "user-agent",
    "x-toast-webhook-signature",
    "x-hookline-test",
];

pub use crate::model::{MASKED_HEADER_VALUE, is_sensitive_header, shown_header_value};

/// Reads `headers`: an object of at most [`MAX_HEADERS`] names (HTTP tokens, not reserved, no two
/// differing only in letter case) to string values (at most [`MAX_HEADER_VALUE_LEN`] bytes of
/// visible ASCII, spaces and tabs: no CR, LF or NUL). Errors name `headers.<name>`.
pub fn parse_headers(value: Option<&Value>) -> Result<Vec<(String, String)>> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(wrong_type("headers", "an object of name → value", other)),
    };
    if map.len() > MAX_HEADERS {
        return Err(Error::field(
            "headers",
            format!("at most {MAX_HEADERS} headers, got {}", map.len()),
        ));
    }
    let mut headers: Vec<(String, String)> = Vec::with_capacity(map.len());
    for (name, value) in map {
        let path = format!("headers.{name}");
        let is_token = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !is_token {
            return Err(Error::field(
                &path,
                "a header name is letters, digits and !#$%&'*+-.^_`|~ only",
            ));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("webhook-") {
            return Err(Error::field(
                &path,
                "hookline sets this header itself; it cannot be replaced",
            ));
        }
        if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(Error::field(
                &path,
                "named twice (header names are not case-sensitive)",
            ));
        }
        let Value::String(text) = value else {
            return Err(wrong_type(&path, "a string", value));
        };
        if text.len() > MAX_HEADER_VALUE_LEN {
            return Err(Error::field(
                &path,
                format!("at most {MAX_HEADER_VALUE_LEN} bytes"),
            ));
        }
        if text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(Error::field(&path, "must not contain CR, LF or NUL"));
        }
        if !text
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(Error::field(
                &path,
                "only visible ASCII characters, spaces and tabs",
            ));
        }
        headers.push((name.clone(), text.clone()));
    }
    headers.sort_by_key(|(n, _)| n.to_ascii_lowercase());
    Ok(headers)
}

/// Reads `filter` (docs/api.md, "Filters"): absent, `null` or `{}` is none. Errors name the path
/// inside it, e.g. `filter.messageStatus.$within`.
pub fn parse_filter(value: Option<&Value>) -> Result<Option<Filter>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => Filter::parse(value).map_err(|e| {
            let path = if e.path.is_empty() {
                "filter".to_owned()
            } else {
                format!("filter.{}", e.path)
            };
            Error::field(&path, e.message)
        }),
    }
}

const SETTABLE: &[&str] = &[
    "productName",
    "events",
    "url",
    "signature",
    "signingSecret",
    "enabled",
    "description",
    "maxHooksPerRequest",
    "maxRequestsInFlight",
    "timeoutMs",
    "retrySchedule",
    "headers",
    "filter",
    "deliveryDeadline",
    "orderingKey",
];
/// Read-only fields a client may send back unchanged from a GET.
const READ_ONLY: &[&str] = &[
    "webhookConfigId",
    "appKey",
    "health",
    "createdAt",
    "updatedAt",
    "hasSigningSecret",
    "previousSigningSecretExpiresAt",
];

impl ConfigInput {
    pub fn from_json(body: &Map<String, Value>) -> Result<Self> {
        if let Some(unknown) = body
            .keys()
            .find(|k| !SETTABLE.contains(&k.as_str()) && !READ_ONLY.contains(&k.as_str()))
        {
            return Err(Error::field(
                unknown,
                format!("unknown field; settable fields are {}", SETTABLE.join(", ")),
            ));
        }
        let product_name = required_string(body, "productName")?;
        let product = parse_product("productName", &product_name)?;

        let events = match body.get("events") {
            None | Some(Value::Null) => {
                return Err(Error::new(
                    ErrorKind::MissingField,
                    "events: required field is missing",
                ));
            }
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(Error::field("events", "must name at least one event"));
            }
            Some(Value::Array(items)) => {
                let mut events = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let path = format!("events[{i}]");
                    let Value::String(name) = item else {
                        return Err(wrong_type(&path, "a string", item));
                    };
                    let event = parse_event_name(&path, name)?;
                    if !event.is_valid_for(product) {
                        return Err(Error::new(
                            ErrorKind::EventNotForProduct,
                            format!(
                                "{path}: {name:?} is not an event of {} (expected one of {})",
                                product.as_str(),
                                event_list(product)
                            ),
                        ));
                    }
                    if !events.contains(&event) {
                        events.push(event);
                    }
                }
                events
            }
            Some(other) => return Err(wrong_type("events", "an array of event names", other)),
        };

        let url = required_string(body, "url")?;
        validate_url(&url)?;
        let signature = required_string(body, "signature")?;
        if signature.is_empty() || signature.len() > MAX_TEXT_LEN {
            return Err(Error::field(
                "signature",
                format!("must be 1 to {MAX_TEXT_LEN} bytes"),
            ));
        }
        if signature.chars().any(|c| c.is_control()) {
            return Err(Error::field(
                "signature",
                "must not contain control characters (it is sent as an HTTP header)",
            ));
        }
        let signing_secret = match body.get("signingSecret") {
            None => SecretChange::Keep,
            Some(Value::Null) => SecretChange::Remove,
            Some(_) => match optional_string(body, "signingSecret", MAX_TEXT_LEN)? {
                Some(secret) if hookline_wire::standard_webhooks::is_valid_secret(&secret) => {
                    SecretChange::Set(secret)
                }
                _ => {
                    return Err(Error::field(
                        "signingSecret",
                        "must be whsec_ followed by a base64 key of 24 to 64 bytes",
                    ));
                }
            },
        };
        let enabled = match body.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(wrong_type("enabled", "true or false", other)),
        };
        let description = optional_string(body, "description", MAX_TEXT_LEN)?.unwrap_or_default();
        let max_hooks_per_request = optional_int(body, "maxHooksPerRequest", 1, 1000, 100)?;
        let max_requests_in_flight = optional_int(
            body,
            "maxRequestsInFlight",
            1,
            64,
            DEFAULT_MAX_REQUESTS_IN_FLIGHT,
        )?;
        let timeout_ms = optional_int(body, "timeoutMs", 100, 60_000, 10_000)?;
        let retry_schedule = match body.get("retrySchedule") {
            None | Some(Value::Null) => retry::DEFAULT_SCHEDULE.to_vec(),
            Some(Value::Array(items)) => {
                if items.len() > retry::MAX_ENTRIES {
                    return Err(Error::field(
                        "retrySchedule",
                        format!("at most {} entries", retry::MAX_ENTRIES),
                    ));
                }
                let mut schedule = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let path = format!("retrySchedule[{i}]");
                    let Value::String(text) = item else {
                        return Err(wrong_type(&path, "a duration string such as \"5s\"", item));
                    };
                    schedule.push(retry::parse_delay(text).map_err(|e| Error::field(&path, e))?);
                }
                schedule
            }
            Some(other) => {
                return Err(wrong_type(
                    "retrySchedule",
                    "an array of durations such as [\"5s\", \"1m\"]",
                    other,
                ));
            }
        };
        let headers = parse_headers(body.get("headers"))?;
        let filter = parse_filter(body.get("filter"))?;
        let delivery_deadline = parse_delivery_deadline(body.get("deliveryDeadline"))?;
        let ordering_key = parse_ordering_key(body.get("orderingKey"))?;
        Ok(ConfigInput {
            ordering_key,
            headers,
            filter,
            delivery_deadline,
            product,
            events,
            url,
            signature,
            signing_secret,
            enabled,
            description,
            max_hooks_per_request,
            max_requests_in_flight,
            timeout_ms,
            retry_schedule,
        })
    }

    /// The config these fields make. `current` is the config being replaced (`None` for a new
    /// one): its secrets stay unless this input changes them; a rotated-out secret keeps its
    /// grace period unless the secret is removed.
    pub(super) fn into_config(
        self,
        id: String,
        app_key: String,
        health: Health,
        current: Option<&WebhookConfig>,
        created_at: i64,
        updated_at: i64,
    ) -> WebhookConfig {
        let current_secret = current.and_then(|c| c.signing_secret.clone());
        let current_previous = current.and_then(|c| c.previous_signing_secret.clone());
        let (signing_secret, previous_signing_secret): (Option<String>, Option<PreviousSecret>) =
            match self.signing_secret {
                SecretChange::Keep => (current_secret, current_previous),
                SecretChange::Remove => (None, None),
                SecretChange::Set(secret) => (Some(secret), current_previous),
            };
        WebhookConfig {
            id,
            app_key,
            product: self.product,
            events: self.events,
            url: self.url,
            signature: self.signature,
            signing_secret,
            previous_signing_secret,
            enabled: self.enabled,
            description: self.description,
            max_hooks_per_request: self.max_hooks_per_request,
            max_requests_in_flight: self.max_requests_in_flight,
            timeout_ms: self.timeout_ms,
            retry_schedule: self.retry_schedule,
            headers: self.headers,
            filter: self.filter,
            delivery_deadline: self.delivery_deadline,
            ordering_key: self.ordering_key,
            health,
            created_at,
            updated_at,
        }
    }
}

/// A config's settable fields as the JSON a client would send (the write-only signing secret
/// left out: a patch that does not name it keeps it). The base a JSON Merge Patch applies to.
pub fn settable_json(config: &WebhookConfig) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("productName".into(), config.product.as_str().into());
    map.insert(
        "events".into(),
        config
            .events
            .iter()
            .map(|e| Value::from(e.as_str()))
            .collect(),
    );
    map.insert("url".into(), config.url.clone().into());
    map.insert("signature".into(), config.signature.clone().into());
    map.insert("enabled".into(), config.enabled.into());
    map.insert("description".into(), config.description.clone().into());
    map.insert(
        "maxHooksPerRequest".into(),
        config.max_hooks_per_request.into(),
    );
    map.insert(
        "maxRequestsInFlight".into(),
        config.max_requests_in_flight.into(),
    );
    map.insert(
        "headers".into(),
        Value::Object(
            config
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), Value::from(v.as_str())))
                .collect(),
        ),
    );
    if let Some(filter) = &config.filter {
        map.insert("filter".into(), filter.source().clone());
    }
    if let Some(deadline) = config.delivery_deadline {
        map.insert(
            "deliveryDeadline".into(),
            crate::duration::format(deadline).into(),
        );
    }
    if let Some(key) = &config.ordering_key {
        map.insert("orderingKey".into(), key.clone().into());
    }
    map.insert("timeoutMs".into(), config.timeout_ms.into());
    map.insert(
        "retrySchedule".into(),
        config
            .retry_schedule
            .iter()
            .map(|d| Value::from(crate::duration::format(*d)))
            .collect(),
    );
    map
}

/// Applies a JSON Merge Patch (RFC 7396) to `target`: a `null` removes the member (so the field
/// returns to its default), an object merges into an object, anything else replaces. The
/// write-only `signingSecret` stays in the result as the patch gave it (`null` included), so that
/// [`ConfigInput::from_json`] reads "remove" from it.
pub fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null if key == "signingSecret" => {
                target.insert(key.clone(), Value::Null);
            }
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let mut base = match target.remove(key) {
                    Some(Value::Object(base)) => base,
                    _ => Map::new(),
                };
                merge_patch(&mut base, inner);
                target.insert(key.clone(), Value::Object(base));
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

fn validate_url(url: &str) -> Result<()> {
    if url.len() > MAX_URL_LEN {
        return Err(Error::field(
            "url",
            format!("longer than {MAX_URL_LEN} bytes"),
        ));
    }
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| Error::field("url", format!("{url:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => {
            return Err(Error::field(
                "url",
                format!("scheme {other:?} is not http or https"),
            ));
        }
        None => {
            return Err(Error::field(
                "url",
                format!("{url:?} is not an absolute http(s) URL"),
            ));
        }
    }
    // `Uri` reads any digits as the port; the connector would wrap an out-of-range one (65536
    // became port 0 → 80). A port must be 1 to 65535.
    let host_port = uri
        .authority()
        .map(|a| a.as_str().rsplit_once('@').map_or(a.as_str(), |(_, hp)| hp));
    if let Some(host_port) = host_port
        && let Some((_, port)) = host_port.rsplit_once(':')
        && !port.ends_with(']')
        && !matches!(port.parse::<u32>(), Ok(1..=65535))
    {
        return Err(Error::field(
            "url",
            format!("{url:?} has port {port:?}; a port is 1 to 65535"),
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(Error::field("url", format!("{url:?} has no host")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::{parse_delivery_deadline, parse_ordering_key, validate_url};

    #[test]
    fn an_ordering_key_is_a_top_level_field_name() {
        for name in ["recipientNo", "_k", "a1", &"k".repeat(64)] {
            assert_eq!(
                parse_ordering_key(Some(&json!(name))).unwrap().as_deref(),
                Some(name)
            );
        }
        assert_eq!(parse_ordering_key(None).unwrap(), None);
        assert_eq!(parse_ordering_key(Some(&json!(null))).unwrap(), None);
        for bad in [
            json!(""),
            json!("k".repeat(65)),
            json!("1st"),
            json!("a.b"),
            json!("a b"),
            json!("$.a"),
            json!(7),
            json!(["recipientNo"]),
        ] {
            let e = parse_ordering_key(Some(&bad)).expect_err(&bad.to_string());
            assert!(
                e.message.starts_with("orderingKey: "),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn a_delivery_deadline_is_a_duration_from_one_second_to_thirty_days() {
        for (text, secs) in [("1s", 1), ("90s", 90), ("10m", 600), ("30d", 30 * 86_400)] {
            assert_eq!(
                parse_delivery_deadline(Some(&json!(text))).unwrap(),
                Some(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(parse_delivery_deadline(None).unwrap(), None);
        assert_eq!(parse_delivery_deadline(Some(&json!(null))).unwrap(), None);
        for bad in [
            json!("999ms"),
            json!("31d"),
            json!("soon"),
            json!(60),
            json!(["1m"]),
        ] {
            let e = parse_delivery_deadline(Some(&bad)).expect_err(&bad.to_string());
            assert!(
                e.message.starts_with("deliveryDeadline: "),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn urls_need_a_scheme_a_host_and_a_real_port() {
        for ok in [
            "https://example.com/hooks",
            "http://example.com:8080/x",
            "http://user:secret@example.com/x",
            "http://user:secret@example.com:65535/x",
            "http://[2001:db8::1]/x",
            "http://[2001:db8::1]:443/x",
        ] {
            assert!(validate_url(ok).is_ok(), "{ok} must pass");
        }
        for bad in [
            "http://127.0.0.1:65536/x",
            "http://example.com:0/x",
            "http://example.com:99999999999/x",
            "http://[2001:db8::1]:70000/x",
            "ftp://example.com/x",
            "/relative",
            "http:///nohost",
        ] {
            let e = validate_url(bad).expect_err(bad);
            assert!(e.message.starts_with("url: "), "{bad}: {}", e.message);
        }
    }
}
