//! Test harness: the server process, a recording HTTP receiver, sample hooks and JSON helpers.

#![allow(dead_code)]

pub mod browser;
pub mod crypto;
pub mod process;
pub mod receiver;
pub mod samples;
pub mod server;
pub mod store;
pub mod tls;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub use receiver::{Receiver, Recorded};
pub use server::{App, Auth, Body, Server};

/// Deadline for something that should happen promptly (a delivery to a healthy receiver).
pub const PROMPT: Duration = Duration::from_secs(20);
/// Deadline for something that needs a few retries or a restart.
pub const SLOW: Duration = Duration::from_secs(45);

pub const SMS: &str = "SMS";
pub const KAKAO: &str = "KakaoTalk Bizmessage";
pub const EMAIL: &str = "Email";

/// The wire format's six (product, event) pairs.
pub const ALL_EVENTS: [(&str, &str); 6] = [
    (KAKAO, "TEMPLATE_STATUS_UPDATE"),
    (KAKAO, "MESSAGE_RESULT_UPDATE"),
    (SMS, "UNSUBSCRIBE"),
    (SMS, "MESSAGE_RESULT_UPDATE"),
    (SMS, "CONVERSION_BLOCK"),
    (SMS, "INTERNATIONAL_DELIVERY_RECEIPT"),
];

/// A webhook config body with short timeouts, suitable for tests; adjust fields as needed.
pub fn config_body(product: &str, events: &[&str], url: &str) -> Value {
    serde_json::json!({
        "productName": product,
        "events": events,
        "url": url,
        "signature": "sig-1",
        "maxHooksPerRequest": 100,
        "timeoutMs": 2000,
        "retrySchedule": ["200ms", "200ms"],
    })
}

/// `n` entries of the same duration, for retry schedules that must not run out during a test.
pub fn schedule(n: usize, each: &str) -> Value {
    Value::Array((0..n).map(|_| Value::String(each.to_string())).collect())
}

/// Checks the documents' id shape: 25 chars = 14 digits of a UTC `yyyyMMddHHmmss` timestamp
/// (not far from now) + 11 base62 chars.
pub fn check_id_shape(id: &str) -> Result<(), String> {
    let bytes = id.as_bytes();
    if bytes.len() != 25 {
        return Err(format!("id {id:?} is {} chars long, want 25", bytes.len()));
    }
    if !bytes[..14].iter().all(u8::is_ascii_digit) {
        return Err(format!("id {id:?} does not start with 14 digits"));
    }
    if !bytes[14..].iter().all(u8::is_ascii_alphanumeric) {
        return Err(format!("id {id:?} does not end with 11 base62 chars"));
    }
    let num = |r: std::ops::Range<usize>| id[r].parse::<u32>().unwrap();
    let (mo, d, h, mi, s) = (num(4..6), num(6..8), num(8..10), num(10..12), num(12..14));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(format!(
            "id {id:?} does not start with a valid yyyyMMddHHmmss timestamp"
        ));
    }
    // The id was generated during this test run, so its UTC timestamp is within minutes of now.
    let now = utc_compact(0);
    let lo = utc_compact(-600);
    let hi = utc_compact(600);
    if id[..14] < *lo || id[..14] > *hi {
        return Err(format!(
            "id {id:?}: timestamp {} is not the current UTC time (now {now})",
            &id[..14]
        ));
    }
    Ok(())
}

pub fn assert_id_shape(id: &str, what: &str) {
    if let Err(e) = check_id_shape(id) {
        panic!("{what}: {e}");
    }
}

fn now_secs(offset: i64) -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + offset
}

/// (year, month, day, hour, minute, second) in UTC, `offset` seconds from now.
fn utc_parts(offset: i64) -> (i64, u32, u32, u32, u32, u32) {
    let t = now_secs(offset);
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
    )
}

fn utc_compact(offset: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(offset);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// RFC 3339 UTC time `offset` seconds from now, e.g. `2024-05-01T12:00:00Z`.
pub fn rfc3339(offset: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(offset);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The keys of the top-level JSON object in `bytes`, in the order they appear (serde_json's `Value`
/// does not keep order). Errors if `bytes` is not an object.
pub fn top_level_keys(bytes: &[u8]) -> Result<Vec<String>, String> {
    let s = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut it = s.char_indices().peekable();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices>| {
        while matches!(it.peek(), Some((_, c)) if c.is_whitespace()) {
            it.next();
        }
    };
    // Reads a JSON string starting at the opening quote; returns its raw source text inside quotes.
    let read_string =
        |it: &mut std::iter::Peekable<std::str::CharIndices>| -> Result<String, String> {
            let (start, q) = it.next().ok_or("eof")?;
            if q != '"' {
                return Err(format!("expected '\"' at {start}"));
            }
            let mut raw = String::new();
            loop {
                let (_, c) = it.next().ok_or("eof in string")?;
                match c {
                    '"' => return Ok(raw),
                    '\\' => {
                        let (_, e) = it.next().ok_or("eof in escape")?;
                        raw.push('\\');
                        raw.push(e);
                    }
                    c => raw.push(c),
                }
            }
        };
    skip_ws(&mut it);
    match it.next() {
        Some((_, '{')) => {}
        _ => return Err("not a JSON object".into()),
    }
    let mut keys = Vec::new();
    loop {
        skip_ws(&mut it);
        if let Some((_, '}')) = it.peek() {
            return Ok(keys);
        }
        let raw = read_string(&mut it)?;
        let key: String = serde_json::from_str(&format!("\"{raw}\"")).map_err(|e| e.to_string())?;
        keys.push(key);
        skip_ws(&mut it);
        match it.next() {
            Some((_, ':')) => {}
            _ => return Err("expected ':'".into()),
        }
        // Skip the value: track nesting, skip strings.
        let mut depth = 0i32;
        loop {
            skip_ws(&mut it);
            match it.peek().copied() {
                None => return Err("eof in value".into()),
                Some((_, '"')) => {
                    read_string(&mut it)?;
                }
                Some((_, '{' | '[')) => {
                    depth += 1;
                    it.next();
                }
                Some((_, '}' | ']')) if depth > 0 => {
                    depth -= 1;
                    it.next();
                }
                Some((_, ',')) if depth == 0 => {
                    it.next();
                    break;
                }
                Some((_, '}')) if depth == 0 => break,
                Some(_) => {
                    it.next();
                }
            }
        }
    }
}

/// `s` as an array of strings (panics with `what` otherwise).
pub fn str_array(v: &Value, what: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: not an array: {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("{what}: not a string: {x}"))
                .to_string()
        })
        .collect()
}

/// Field `key` of `v` as a string (panics otherwise).
pub fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("field {key:?} is not a string in {v}"))
        .to_string()
}

/// Checks an error answer: one of `statuses`, `{"header": {"isSuccessful": false, "resultCode":
/// <negative>, "resultMessage": <string>}}`, and a message naming `field` (a substring) if given.
pub fn check_error(
    resp: &(reqwest::StatusCode, Value),
    statuses: &[u16],
    field: Option<&str>,
) -> Result<(), String> {
    let (st, body) = resp;
    if !statuses.contains(&st.as_u16()) {
        return Err(format!("want HTTP {statuses:?}, got {st}: {body}"));
    }
    let h = &body["header"];
    let code_ok = h["resultCode"].as_i64().is_some_and(|c| c < 0);
    let Some(msg) = h["resultMessage"].as_str() else {
        return Err(format!("no header.resultMessage string: {body}"));
    };
    if h["isSuccessful"] != serde_json::json!(false) || !code_ok {
        return Err(format!(
            "want header {{isSuccessful: false, resultCode: <negative>, resultMessage}}, got {body}"
        ));
    }
    if let Some(f) = field
        && !msg.contains(f)
    {
        return Err(format!(
            "resultMessage {msg:?} does not name the field {f:?}"
        ));
    }
    Ok(())
}

/// `check_error` with one status and no field, failing with the server's stderr.
#[track_caller]
pub fn assert_error(srv: &Server, resp: &(reqwest::StatusCode, Value), status: u16, what: &str) {
    if let Err(e) = check_error(resp, &[status], None) {
        srv.fail(format!("{what}: {e}"));
    }
}
