//! Reading request bodies: the content type (415), the size limit (413, counted while reading,
//! whatever `Content-Length` says) and, for management routes, a JSON object.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult, ErrorKind};

/// For routes whose body is optional: no Content-Type and an empty body read as empty; anything
/// else is checked like [`read_json_body`].
pub async fn read_optional_json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> ApiResult<Vec<u8>> {
    if headers.contains_key(header::CONTENT_TYPE) {
        return read_json_body(headers, body, limit).await;
    }
    let bytes = read_limited(headers, body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    Err(not_json(""))
}

fn not_json(content_type: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotJson,
        format!(
            "Content-Type: expected application/json, got {}",
            if content_type.is_empty() {
                "nothing".to_owned()
            } else {
                format!("{content_type:?}")
            }
        ),
    )
}

/// Reads a JSON request body: checks the content type (415), the size limit (413) and the syntax
/// (400), without trusting Content-Length alone.
pub async fn read_json_body(headers: &HeaderMap, body: Body, limit: usize) -> ApiResult<Vec<u8>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !(mime.starts_with("application/") && mime.ends_with("+json"))
    {
        return Err(not_json(content_type));
    }
    read_limited(headers, body, limit).await
}

async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> ApiResult<Vec<u8>> {
    let too_large = || {
        ApiError::new(
            ErrorKind::BodyTooLarge,
            format!("body: larger than the limit of {limit} bytes"),
        )
    };
    // A body over the limit is still read (and thrown away) up to this bound before the 413 goes
    // out: answering while the client is still sending makes it see a reset, not the answer.
    // Beyond the bound the connection is closed instead.
    let drain_bound = limit.saturating_mul(4).clamp(1 << 20, 16 << 20);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > drain_bound) {
        return Err(too_large());
    }
    let mut body = body;
    let mut kept = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                ErrorKind::InvalidJson,
                format!("body: could not be read: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > drain_bound {
            return Err(too_large());
        }
        if seen <= limit {
            kept.extend_from_slice(&data);
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(kept)
}

/// Parses a management body into a JSON object (an empty body counts as `{}`).
pub fn parse_object(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(
            ErrorKind::NotAnObject,
            "body: expected a JSON object",
        )),
        Err(e) => Err(ApiError::new(
            ErrorKind::InvalidJson,
            format!("body: invalid JSON: {e}"),
        )),
    }
}
