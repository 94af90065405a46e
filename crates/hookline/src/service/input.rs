//! Reading operation inputs: fields of a JSON object, names of products, events and statuses,
//! times, paging and the delivery log's filters. Every error names the field it is about, in the
//! path form the API documents (`events[2]`, `retrySchedule[0]`).

use std::collections::HashMap;

use hookline_wire::{Event, Product};
use serde_json::{Map, Value};

use super::error::{Error, ErrorKind, Result};
use crate::model::{DeliveryFilter, DeliveryStatus, Millis, PageRequest, ReplayFilter};

/// Longest free text field (`description`, `signature`, `name`).
pub const MAX_TEXT_LEN: usize = 1024;

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn wrong_type(path: &str, expected: &str, got: &Value) -> Error {
    Error::new(
        ErrorKind::WrongType,
        format!("{path}: expected {expected}, got {}", type_name(got)),
    )
}

pub(crate) fn required_string(body: &Map<String, Value>, field: &str) -> Result<String> {
    match body.get(field) {
        None | Some(Value::Null) => Err(Error::new(
            ErrorKind::MissingField,
            format!("{field}: required field is missing"),
        )),
        Some(Value::String(s)) if s.contains('\0') => Err(nul_in(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(wrong_type(field, "a string", other)),
    }
}

/// No stored text may hold NUL (PostgreSQL's TEXT refuses it; no field has a use for it).
pub(crate) fn nul_in(field: &str) -> Error {
    Error::field(field, "must not contain NUL characters (\\u0000)")
}

pub(crate) fn optional_string(
    body: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.contains('\0') => Err(nul_in(field)),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(Error::field(field, format!("longer than {max} bytes"))),
        Some(other) => Err(wrong_type(field, "a string", other)),
    }
}

pub(crate) fn optional_int(
    body: &Map<String, Value>,
    field: &str,
    min: u32,
    max: u32,
    default: u32,
) -> Result<u32> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if (u64::from(min)..=u64::from(max)).contains(&v) => Ok(v as u32),
            _ => Err(Error::field(
                field,
                format!("{n} is outside {min} to {max}"),
            )),
        },
        Some(other) => Err(wrong_type(field, "an integer", other)),
    }
}

pub(crate) fn event_list(product: Product) -> String {
    product
        .events()
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn parse_product(field: &str, name: &str) -> Result<Product> {
    Product::parse(name).ok_or_else(|| {
        Error::new(
            ErrorKind::UnknownProduct,
            format!(
                "{field}: {name:?} is not one of {}",
                Product::all()
                    .map(Product::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

pub fn parse_event_name(field: &str, name: &str) -> Result<Event> {
    Event::parse(name).ok_or_else(|| {
        Error::new(
            ErrorKind::UnknownEvent,
            format!(
                "{field}: {name:?} is not an event (one of {})",
                Event::all()
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

pub fn page_request(query: &HashMap<String, String>) -> Result<PageRequest> {
    let size = match query.get("pageSize") {
        None => 50,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(Error::field(
                    "pageSize",
                    format!("{text:?} is not an integer from 1 to 1000"),
                ));
            }
        },
    };
    Ok(PageRequest {
        size,
        cursor: query.get("cursor").cloned(),
    })
}

pub fn parse_time(field: &str, text: &str) -> Result<Millis> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            Error::field(
                field,
                format!("{text:?} is not an RFC 3339 time such as 2026-01-31T09:00:00Z"),
            )
        })
}

pub fn parse_status(field: &str, text: &str) -> Result<DeliveryStatus> {
    DeliveryStatus::parse(text).ok_or_else(|| {
        Error::new(
            ErrorKind::NotInEnum,
            format!(
                "{field}: {text:?} is not one of PENDING, RETRYING, SUCCEEDED, FAILED, CANCELLED, EXPIRED"
            ),
        )
    })
}

/// The delivery log's filters from a query string (`webhookConfigId`, `event`, `status`,
/// `since`, `until`, `hookId`).
pub fn delivery_filter(query: &HashMap<String, String>) -> Result<DeliveryFilter> {
    Ok(DeliveryFilter {
        config_id: query.get("webhookConfigId").cloned(),
        event: query
            .get("event")
            .map(|e| parse_event_name("event", e))
            .transpose()?,
        status: query
            .get("status")
            .map(|s| parse_status("status", s))
            .transpose()?,
        since: query
            .get("since")
            .map(|t| parse_time("since", t))
            .transpose()?,
        until: query
            .get("until")
            .map(|t| parse_time("until", t))
            .transpose()?,
        hook_id: query.get("hookId").cloned(),
    })
}

/// Which past deliveries a replay queues again: `{"since", "until", "status": [...]}`, each
/// optional.
/// An unknown field is refused rather than ignored: a field the server does not know (a
/// `dryRun` from a newer client, a typo of `status`) would otherwise replay more than asked.
pub fn replay_filter(body: &Map<String, Value>, now: Millis) -> Result<ReplayFilter> {
    const FIELDS: [&str; 4] = ["since", "until", "status", "dryRun"];
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Error::field(
            unknown,
            "unknown field; the fields are since, until, status, dryRun",
        ));
    }
    // An RFC 3339 time, or a duration before `now` ("1h": the last hour).
    let time = |field: &str| -> Result<Option<Millis>> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(t)) => match t.parse::<crate::duration::Period>() {
                Ok(ago) => Ok(Some(now - ago.get().as_millis() as i64)),
                Err(_) => parse_time(field, t).map(Some).map_err(|_| {
                    Error::field(
                        field,
                        format!("{t:?} is neither an RFC 3339 time nor a duration such as \"1h\""),
                    )
                }),
            },
            Some(_) => Err(Error::field(
                field,
                "expected an RFC 3339 time or a duration such as \"1h\"",
            )),
        }
    };
    let dry_run = match body.get("dryRun") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(wrong_type("dryRun", "true or false", other)),
    };
    let since = time("since")?;
    let until = time("until")?;
    let statuses = match body.get("status") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => parse_status(&format!("status[{i}]"), s),
                _ => Err(Error::field(&format!("status[{i}]"), "expected a string")),
            })
            .collect::<Result<Vec<_>>>()?,
        Some(_) => {
            return Err(Error::field(
                "status",
                "expected an array of statuses such as [\"FAILED\"]",
            ));
        }
    };
    Ok(ReplayFilter {
        since,
        until,
        statuses,
        dry_run,
    })
}
