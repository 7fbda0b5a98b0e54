//! Iterable system webhooks, as received: the authenticity check and the normalisation into the
//! contract's Event (CONTRACT §6, §8). Pure functions; the service's public receiver
//! (`POST /webhooks/iterable/{webhookId}`) calls them.
//!
//! Iterable signs nothing. The publisher configures, under Integrations → System Webhooks, an
//! auth type whose token Iterable sends in `Authorization` — `Basic` (the bare token, or
//! `Basic <token>`), `OAuth2` (`OAuth2 <token>`) — or a custom header ([`SECRET_HEADER`]). The
//! token is the integration's generated webhook secret; it is compared in constant time.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::models::{id_string, snake, time};

/// The custom header a publisher may add instead of an auth type ("Add HTTP Header").
pub const SECRET_HEADER: &str = "x-sharpsend-webhook-token";

/// Compares two secrets in constant time (over their SHA-256 digests, so lengths leak nothing).
pub fn same_secret(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// Whether a delivery carries the integration's secret: `authorization` is the
/// `Authorization` header (bare token, `Basic`, `OAuth2` or `Bearer` scheme), `custom` the
/// [`SECRET_HEADER`]. Every candidate is compared, so timing does not say which matched.
pub fn authorized(authorization: Option<&str>, custom: Option<&str>, secret: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let mut candidates: Vec<&str> = Vec::new();
    if let Some(a) = authorization.map(str::trim) {
        candidates.push(a);
        if let Some((scheme, token)) = a.split_once(' ')
            && ["basic", "oauth2", "bearer"].contains(&scheme.to_ascii_lowercase().as_str())
        {
            candidates.push(token.trim());
        }
    }
    if let Some(c) = custom {
        candidates.push(c.trim());
    }
    candidates
        .iter()
        .fold(false, |ok, c| same_secret(c, secret) | ok)
}

/// A received event in our terms (the caller assigns our id and the receipt time).
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingEvent {
    /// `email_send`, `email_open`, `email_click`, `email_bounce`, `email_unsubscribe`,
    /// `sms_send`, `push_open`, `in_app_send`, … (Iterable's `eventName` in snake case).
    pub kind: String,
    /// What de-duplicates redeliveries: Iterable's `messageId` with the event name, or a digest
    /// of the body when there is none.
    pub platform_event_id: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub campaign_id: Option<String>,
    /// Iterable's `dataFields`.
    pub data: Value,
}

/// Our event type for Iterable's `eventName`.
pub fn event_type(name: &str) -> String {
    match name {
        "emailUnSubscribe" | "emailUnsubscribe" => "email_unsubscribe".to_owned(),
        "hostedUnsubscribeClick" => "email_unsubscribe_click".to_owned(),
        other => snake(other),
    }
}

/// Reads a system webhook body `{"email", "userId"?, "eventName", "dataFields": {…}}`.
pub fn normalize(body: &[u8]) -> Result<IncomingEvent, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let name = v
        .get("eventName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("the body has no eventName")?;
    let data = v.get("dataFields").cloned().unwrap_or(Value::Null);
    let text = |obj: &Value, k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let email = text(&v, "email").or_else(|| text(&data, "email"));
    let user_id = text(&v, "userId").or_else(|| text(&data, "userId"));
    let created = data.get("createdAt");
    let platform_event_id = match data.get("messageId").and_then(id_string) {
        Some(m) => format!("{name}:{m}"),
        None => {
            // No message id (custom or profile events): the same body is the same event.
            let digest = Sha256::digest(body);
            format!("{name}:{}", hex::encode(&digest[..16]))
        }
    };
    Ok(IncomingEvent {
        kind: event_type(name),
        platform_event_id,
        occurred_at: time(created),
        email,
        user_id,
        campaign_id: data.get("campaignId").and_then(id_string),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auth_header_forms() {
        let s = "whsec_0123456789abcdef";
        assert!(authorized(Some(s), None, s));
        assert!(authorized(Some(&format!("Basic {s}")), None, s));
        assert!(authorized(Some(&format!("OAuth2 {s}")), None, s));
        assert!(authorized(None, Some(s), s));
        assert!(!authorized(None, None, s));
        assert!(!authorized(Some("Basic wrong"), Some("nope"), s));
        assert!(!authorized(Some(""), None, ""));
        assert!(!authorized(Some(&s[..10]), None, s));
    }

    #[test]
    fn a_send_webhook_normalised() {
        let body = json!({"email": "r@example.com", "userId": "u1", "eventName": "emailSend",
            "dataFields": {"campaignId": 1001, "messageId": "m-9", "createdAt": "2024-01-01 12:00:00 +00:00",
                "templateId": 7}});
        let e = normalize(body.to_string().as_bytes()).unwrap();
        assert_eq!(e.kind, "email_send");
        assert_eq!(e.platform_event_id, "emailSend:m-9");
        assert_eq!(e.campaign_id.as_deref(), Some("1001"));
        assert_eq!(e.email.as_deref(), Some("r@example.com"));
        assert_eq!(e.user_id.as_deref(), Some("u1"));
        assert_eq!(
            e.occurred_at.unwrap().to_rfc3339(),
            "2024-01-01T12:00:00+00:00"
        );
        assert_eq!(event_type("emailUnSubscribe"), "email_unsubscribe");
        assert_eq!(event_type("inAppOpen"), "in_app_open");
        assert_eq!(event_type("smsBounce"), "sms_bounce");
    }

    #[test]
    fn events_without_message_ids_dedupe_on_the_body() {
        let body = br#"{"email":"a@b.co","eventName":"customEvent","dataFields":{"x":1}}"#;
        let a = normalize(body).unwrap();
        let b = normalize(body).unwrap();
        assert_eq!(a.platform_event_id, b.platform_event_id);
        assert!(normalize(b"{}").is_err());
        assert!(normalize(b"not json").is_err());
    }
}
