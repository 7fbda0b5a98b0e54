//! Iterable's error answers mapped onto [`ConnectorError`], in one table.
//!
//! Iterable answers errors as `{"msg", "code", "params"}` (and sometimes says `"Success"` in an
//! error, so the HTTP status decides first). 429, 5xx, timeouts and resets never reach this table:
//! the shared [`UpstreamClient`](crate::http::UpstreamClient) retries them and answers
//! `RATE_LIMIT_EXCEEDED` / `CONNECTION_FAILED` itself.
//!
//! | status | Iterable `code` | kind | public code |
//! | --- | --- | --- | --- |
//! | 401 | `InvalidJwtPayload`, `BadAuthorizationHeader`, `JwtUserIdentifiersMismatched` | InvalidCredentials (a JWT-enabled client-side key) | `INVALID_CREDENTIALS` |
//! | 401 | `BadApiKey`, `Unauthorized`, anything else | InvalidCredentials (wrong, revoked, client-side or other-region key) | `INVALID_CREDENTIALS` |
//! | 401 on a write or export, `BadApiKey`, while `GET /api/channels` works with the key | PermissionDenied (a read-only key) | `PERMISSION_DENIED` |
//! | 403 | any (`Forbidden`, `ForbiddenParamsError`, …) | PermissionDenied | `PERMISSION_DENIED` |
//! | 404 | any | NotFound | `NOT_FOUND` |
//! | 400, 409, 413, 422 | `BadParams`, `BadJsonBody`, `InvalidEmailAddressError`, `RequestFieldsTypesMismatched`, `ExternalKeyConflict`, `BatchTooLarge`, … | InvalidRequest | `VALIDATION_ERROR` |
//! | other 4xx | any | Unavailable | `CONNECTION_FAILED` |
//! | 2xx | body not the JSON expected | Unavailable | `CONNECTION_FAILED` |

use domain::{Platform, Region};
use serde_json::Value;

use crate::{ConnectorError, ErrorKind, http::Answer};

/// Iterable's error envelope, read leniently.
#[derive(Debug, Default)]
pub(crate) struct IterableError {
    pub code: String,
    pub msg: String,
}

impl IterableError {
    pub fn parse(body: &[u8]) -> Self {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect::<String>()
        };
        Self {
            code: text("code"),
            msg: text("msg").trim().to_owned(),
        }
    }

    fn described(&self) -> String {
        match (self.code.is_empty(), self.msg.is_empty()) {
            (false, false) => format!("{} ({})", self.msg.trim_end_matches('.'), self.code),
            (false, true) => self.code.clone(),
            (true, false) => self.msg.trim_end_matches('.').to_owned(),
            (true, true) => "no reason given".to_owned(),
        }
    }
}

/// The codes Iterable answers for a JWT-enabled key used without a valid JWT.
const JWT_CODES: [&str; 3] = [
    "InvalidJwtPayload",
    "BadAuthorizationHeader",
    "JwtUserIdentifiersMismatched",
];

/// Whether an error is Iterable refusing the key itself (not a JWT problem).
pub(crate) fn is_bad_key(e: &ConnectorError) -> bool {
    e.kind == ErrorKind::InvalidCredentials && !e.message.contains("JWT")
}

pub(crate) fn data_center(region: Region) -> &'static str {
    match region {
        Region::Us => "US",
        Region::Eu => "EU",
    }
}

pub(crate) fn app_host(region: Region) -> &'static str {
    match region {
        Region::Us => "app.iterable.com",
        Region::Eu => "app.eu.iterable.com",
    }
}

/// The sentence for a key Iterable refused: the likely causes, most likely first.
pub(crate) fn bad_key_message(region: Region, key_len: usize, key_hex: bool) -> String {
    let dc = data_center(region);
    let mut s = format!(
        "Iterable's {dc} data centre rejected the API key (BadApiKey). Check that it is a server-side \
(\"Standard\") key — mobile and JavaScript (client-side) keys cannot read project data — that it \
was not revoked, and that it was created in a project on {} (keys only work in the data centre \
of their project; set \"region\" to \"{}\" for a project on {}).",
        app_host(region),
        region.other().as_str(),
        app_host(region.other()),
    );
    if key_len != 32 || !key_hex {
        s.push_str(&format!(
            " The key given is {key_len} characters long; Iterable keys are 32 hexadecimal characters, so it may be cut off or contain extra characters."
        ));
    }
    s
}

/// The sentence for a key that Iterable knows only in the other data centre.
pub(crate) fn other_region_message(region: Region) -> String {
    let other = region.other();
    format!(
        "This API key belongs to a project in Iterable's {} data centre ({}), not the {} one: set \"region\" to \"{}\".",
        data_center(other),
        app_host(other),
        data_center(region),
        other.as_str()
    )
}

/// The sentence for a client-side (mobile or JavaScript) key.
pub(crate) fn client_side_message() -> String {
    "This is a client-side (mobile or JavaScript) API key: it may only update users and track \
events from apps, not read campaigns, lists or templates. Create a server-side (\"Standard\") key \
under Integrations → API Keys and use that."
        .to_owned()
}

/// The sentence for a key that may read project data but not do `operation` (a read-only key).
pub(crate) fn read_only_message(operation: &str) -> String {
    format!(
        "Iterable refused {}: the connected API key is a read-only key, which may read \
campaigns, lists and templates but not write or export. Reconnect with a server-side (\"Standard\") \
key, which may also update users, track events, send and export.",
        what(operation)
    )
}

/// An operation in words, for messages (`list_campaigns` → "the campaigns read").
pub(crate) fn what(operation: &str) -> &str {
    match operation {
        "list_campaigns" => "the campaigns read",
        "list_templates" => "the templates read",
        "list_lists" => "the lists read",
        "list_channels" => "the channels read",
        "upsert_user" => "the user update",
        "bulk_upsert_users" => "the bulk user update",
        "track_event" => "the event",
        "track_events" => "the bulk event upload",
        "send_message" => "the send",
        "export" => "the export",
        "unsubscribe_channel" => "the channel unsubscribe",
        "read_subscriptions" => "the subscriptions read",
        "update_subscriptions" => "the subscriptions update",
        "forget_user" => "the GDPR forget",
        other => other,
    }
}

/// Maps a non-2xx answer that got past the retry policy.
pub(crate) fn map(answer: &Answer, operation: &str) -> ConnectorError {
    let status = answer.status.as_u16();
    let err = IterableError::parse(&answer.body);
    let e = |kind, message: String| {
        ConnectorError::new(Platform::Iterable, kind, message).with_status(status)
    };
    match status {
        401 if JWT_CODES.contains(&err.code.as_str()) => e(
            ErrorKind::InvalidCredentials,
            format!(
                "This is a JWT-enabled client-side API key: Iterable requires a signed JWT with every call made with it ({}). SharpSend needs a server-side (\"Standard\") key without JWT; create one under Integrations → API Keys.",
                err.described()
            ),
        ),
        401 => e(
            ErrorKind::InvalidCredentials,
            format!(
                "Iterable rejected the API key ({}): it may be wrong, revoked, a client-side (mobile or JavaScript) key, or from the other data centre. Reconnect with a server-side (\"Standard\") key.",
                err.described()
            ),
        ),
        403 => e(
            ErrorKind::PermissionDenied,
            format!(
                "Iterable refused {}: the API key lacks the permission ({}). Use a server-side (\"Standard\") key, not a read-only or client-side one.",
                what(operation),
                err.described()
            ),
        ),
        404 => e(
            ErrorKind::NotFound,
            format!("Iterable has no such object ({}).", err.described()),
        ),
        400 | 409 | 413 | 422 => e(
            ErrorKind::InvalidRequest,
            format!("Iterable refused {}: {}.", what(operation), err.described()),
        ),
        _ => e(
            ErrorKind::Unavailable,
            format!(
                "Iterable answered {} with an unexpected HTTP {status} ({}).",
                what(operation),
                err.described()
            ),
        ),
    }
}

/// A 2xx body we could not read.
pub(crate) fn malformed(operation: &str, status: u16, what: &str) -> ConnectorError {
    ConnectorError::new(
        Platform::Iterable,
        ErrorKind::Unavailable,
        format!(
            "Iterable answered {} with a body that is not the JSON expected ({what}); try again later.",
            self::what(operation)
        ),
    )
    .with_status(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use reqwest::{StatusCode, header::HeaderMap};

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn the_table_row_by_row() {
        let cases = [
            (
                401,
                r#"{"msg":"Invalid API key","code":"BadApiKey","params":{"ip":"1.2.3.4","endpoint":"/api/channels"}}"#,
                ErrorKind::InvalidCredentials,
                "server-side",
            ),
            (
                401,
                r#"{"msg":"JWT token is expired","code":"InvalidJwtPayload","params":{}}"#,
                ErrorKind::InvalidCredentials,
                "JWT-enabled",
            ),
            (
                403,
                r#"{"msg":"Forbidden","code":"Forbidden"}"#,
                ErrorKind::PermissionDenied,
                "lacks the permission",
            ),
            (
                404,
                r#"{"msg":"Campaign not found","code":"NotFound"}"#,
                ErrorKind::NotFound,
                "Campaign not found",
            ),
            (
                400,
                r#"{"msg":"Invalid email","code":"InvalidEmailAddressError"}"#,
                ErrorKind::InvalidRequest,
                "InvalidEmailAddressError",
            ),
            (
                409,
                r#"{"msg":"conflict","code":"ExternalKeyConflict"}"#,
                ErrorKind::InvalidRequest,
                "ExternalKeyConflict",
            ),
            (
                413,
                r#"{"msg":"too big","code":"BatchTooLarge"}"#,
                ErrorKind::InvalidRequest,
                "BatchTooLarge",
            ),
            (418, "teapot", ErrorKind::Unavailable, "HTTP 418"),
        ];
        for (status, body, kind, needle) in cases {
            let e = map(&answer(status, body), "list_campaigns");
            assert_eq!(e.kind, kind, "{status} {body}");
            assert_eq!(e.platform_status, Some(status));
            assert!(e.message.contains(needle), "{}", e.message);
        }
        assert!(is_bad_key(&map(&answer(401, "{}"), "x")));
        assert!(!is_bad_key(&map(
            &answer(401, r#"{"code":"InvalidJwtPayload"}"#),
            "x"
        )));
    }

    #[test]
    fn key_messages_name_the_cause() {
        let m = bad_key_message(Region::Us, 12, true);
        assert!(m.contains("12 characters") && m.contains("\"eu\""), "{m}");
        assert!(!bad_key_message(Region::Eu, 32, true).contains("characters long"));
        assert!(other_region_message(Region::Us).contains("set \"region\" to \"eu\""));
    }
}
