//! Customer.io's answers mapped onto [`ConnectorError`], in one table.
//!
//! Its error bodies come in several shapes: `{"meta":{"error"}}` and `{"meta":{"errors":[…]}}`
//! (Track v1, `/v1/send/*`, Data Pipelines strict mode), `{"errors":[{"detail"}]}` (broadcast
//! triggers, newsletters), `{"errors":[{"reason","field","message"}]}` (Track v2), and empty
//! 401/404s. The platform's own sentence is quoted (trimmed) when there is one.

use domain::Platform;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Api;
use crate::{ConnectorError, ErrorKind, http::Answer};

fn err(kind: ErrorKind, message: String) -> ConnectorError {
    ConnectorError::new(Platform::Customerio, kind, message)
}

/// The platform's own sentence from an error body, when it has one.
pub(crate) fn platform_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let text = |e: &Value| -> Option<String> {
        match e {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => {
                let msg = o
                    .get("message")
                    .or_else(|| o.get("detail"))
                    .or_else(|| o.get("error"))
                    .and_then(Value::as_str)?;
                match o.get("field").and_then(Value::as_str) {
                    Some(f) if !f.is_empty() => Some(format!("{f}: {msg}")),
                    _ => Some(msg.to_owned()),
                }
            }
            _ => None,
        }
    };
    let found = if let Some(meta) = v.get("meta") {
        meta.get("error").and_then(text).or_else(|| {
            meta.get("errors")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(text).collect::<Vec<_>>().join("; "))
        })
    } else if let Some(errors) = v.get("errors").and_then(Value::as_array) {
        Some(
            errors
                .iter()
                .filter_map(text)
                .collect::<Vec<_>>()
                .join("; "),
        )
    } else {
        None
    }?;
    let trimmed: String = found.trim().chars().take(300).collect();
    (!trimmed.is_empty()).then_some(trimmed)
}

/// Maps a non-2xx answer of `api` for `operation` (a phrase: "listing campaigns").
pub(crate) fn map_answer(api: Api, operation: &str, answer: &Answer) -> ConnectorError {
    let status = answer.status.as_u16();
    let said = platform_message(&answer.body)
        .map(|m| format!(" Customer.io said: \"{m}\"."))
        .unwrap_or_default();
    let (kind, message) = match status {
        401 => (
            ErrorKind::InvalidCredentials,
            format!(
                "Customer.io's {} rejected the credentials while {operation}: {}{said}",
                api.name(),
                match api {
                    Api::App =>
                        "check the App API key (Settings → Account Settings → API Credentials → App API Keys) and the region.",
                    Api::Track =>
                        "check the Site ID and Tracking API key pair (Settings → Workspace Settings → API and webhook credentials) and the region.",
                    Api::Cdp =>
                        "check the Data Pipelines source API key (Data Pipelines → Sources → your source → Settings) and the region.",
                }
            ),
        ),
        403 => (
            ErrorKind::PermissionDenied,
            format!(
                "Customer.io's {} refused {operation}: the key lacks the permission for it, or the content is not allowed.{said}",
                api.name()
            ),
        ),
        404 => (
            ErrorKind::NotFound,
            format!(
                "Customer.io found nothing while {operation}: the id does not exist in this workspace.{said}"
            ),
        ),
        400 | 413 | 422 => (
            ErrorKind::InvalidRequest,
            format!("Customer.io refused the request while {operation}.{said}"),
        ),
        _ => (
            ErrorKind::Unavailable,
            format!(
                "Customer.io's {} answered {status} while {operation}.{said}",
                api.name()
            ),
        ),
    };
    err(kind, message).with_status(status)
}

/// Parses a 2xx body, or maps the error; a body that is not the expected JSON is
/// `CONNECTION_FAILED` (the platform answered something we cannot read).
pub(crate) fn parse<T: DeserializeOwned>(
    api: Api,
    operation: &str,
    answer: &Answer,
) -> Result<T, ConnectorError> {
    if !answer.is_success() {
        return Err(map_answer(api, operation, answer));
    }
    serde_json::from_slice(&answer.body).map_err(|e| {
        err(
            ErrorKind::Unavailable,
            format!(
                "Customer.io's {} answered {} with a body we could not read while {operation} ({e}).",
                api.name(),
                answer.status.as_u16()
            ),
        )
        .with_status(answer.status.as_u16())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_every_error_shape() {
        assert_eq!(
            platform_message(br#"{"meta":{"error":"bad id"}}"#).unwrap(),
            "bad id"
        );
        assert_eq!(
            platform_message(br#"{"meta":{"errors":["a","b"]}}"#).unwrap(),
            "a; b"
        );
        assert_eq!(
            platform_message(br#"{"errors":[{"detail":"no such broadcast","status":"404"}]}"#)
                .unwrap(),
            "no such broadcast"
        );
        assert_eq!(
            platform_message(
                br#"{"errors":[{"reason":"required","field":"identifiers","message":"missing"}]}"#
            )
            .unwrap(),
            "identifiers: missing"
        );
        assert!(platform_message(b"").is_none());
        assert!(platform_message(b"{}").is_none());
    }
}
