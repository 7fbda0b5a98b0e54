//! Wire helpers shared by the v1 and v2 handlers.

use axum::{
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// `http://host:port` as the client addressed us, for v1's absolute `next`/`previous` URLs.
pub fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

pub fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        v.to_string(),
    )
        .into_response()
}

/// A v1 application error: `{"message": ...}` (PHP#190, amp-labs fixtures).
pub fn v1_error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "message": message }))
}

/// v1's answer to a body or parameter it cannot read (PHP#190).
pub fn v1_bad_input() -> Response {
    v1_error(
        StatusCode::BAD_REQUEST,
        "Input could not be converted to a valid request",
    )
}

/// A v2 error: `Error {code, message, status, details}` (V2SPEC). The `status` strings are
/// inferred (Google API style, as Keap's v2 is modelled on it).
pub fn v2_error(status: StatusCode, message: &str) -> Response {
    let name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        409 => "ALREADY_EXISTS",
        501 => "UNIMPLEMENTED",
        _ => "INTERNAL",
    };
    json_response(
        status,
        &json!({"code": status.as_u16(), "message": message, "status": name, "details": []}),
    )
}

/// The value of query parameter `name` (last one wins).
pub fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Comma lists, accepting repeated parameters too.
pub fn list_param(q: &[(String, String)], name: &str) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// v1 paging: `limit` (default and max 1000, inferred) and `offset`.
pub fn v1_paging(q: &[(String, String)]) -> Result<(u64, u64), Response> {
    let limit = match param(q, "limit") {
        None | Some("") => 0,
        Some(v) => v.parse::<i64>().map_err(|_| v1_bad_input())?,
    };
    let offset = match param(q, "offset") {
        None | Some("") => 0,
        Some(v) => v.parse::<i64>().map_err(|_| v1_bad_input())?,
    };
    let limit = if limit <= 0 {
        crate::config::V1_MAX_LIMIT
    } else {
        u64::try_from(limit)
            .unwrap_or(0)
            .min(crate::config::V1_MAX_LIMIT)
    };
    Ok((limit, u64::try_from(offset.max(0)).unwrap_or(0)))
}

/// v1 list envelope: `{<key>: [...], count, next, previous}` with absolute URLs that repeat the
/// query (minus `optional_properties`, which Keap drops) and are present even on an empty page.
#[allow(clippy::too_many_arguments)]
pub fn v1_list(
    headers: &HeaderMap,
    path: &str,
    q: &[(String, String)],
    key: &str,
    items: Vec<Value>,
    count: u64,
    offset: u64,
    limit: u64,
) -> Response {
    json_response(
        StatusCode::OK,
        &v1_list_body(headers, path, q, key, items, count, offset, limit),
    )
}

/// The body of [`v1_list`], for lists that add a field.
#[allow(clippy::too_many_arguments)]
pub fn v1_list_body(
    headers: &HeaderMap,
    path: &str,
    q: &[(String, String)],
    key: &str,
    items: Vec<Value>,
    count: u64,
    offset: u64,
    limit: u64,
) -> Value {
    let base = format!("{}{}/", origin(headers), path.trim_end_matches('/'));
    let rest: Vec<(String, String)> = q
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "limit" | "offset" | "optional_properties"))
        .cloned()
        .collect();
    let url = |off: u64| {
        let mut pairs = vec![
            ("limit".to_owned(), limit.to_string()),
            ("offset".to_owned(), off.to_string()),
        ];
        pairs.extend(rest.iter().cloned());
        format!(
            "{base}?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    };
    let mut body = serde_json::Map::new();
    body.insert(key.to_owned(), Value::Array(items));
    body.insert("count".into(), json!(count));
    body.insert("next".into(), json!(url(offset + limit)));
    body.insert("previous".into(), json!(url(offset.saturating_sub(limit))));
    Value::Object(body)
}

/// Parses a JSON request body, answering v1's 400 when it is not JSON.
pub fn json_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|_| v1_bad_input())
}
