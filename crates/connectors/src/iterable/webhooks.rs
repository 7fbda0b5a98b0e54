//! Iterable system webhooks, as received: the authenticity check and the normalisation into the
//! contract's Event (CONTRACT §6, §8). Pure functions; the service's public receiver
//! (`POST /webhooks/iterable/{webhookId}`) calls them.
//!
//! Iterable signs nothing. The publisher configures, under Integrations → System Webhooks, an
//! auth type whose token Iterable sends in `Authorization` — `Basic` (the bare token, or
//! `Basic <token>`, or a standard `Basic base64(user:token)` with any user), `OAuth2`
//! (`OAuth2 <token>`) — or a custom header ([`SECRET_HEADER`], "Add HTTP Header"). The token is
//! the integration's generated webhook secret; it is compared in constant time.

use base64::Engine as _;
use domain::{
    consent::Reason,
    events::{event_type as typed, snake},
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::models::{id_string, time};

/// The custom header a publisher may add instead of an auth type ("Add HTTP Header").
pub const SECRET_HEADER: &str = "x-sharpsend-webhook-secret";

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
    // A standard Basic header: base64 of `user:password`, the password being the secret.
    let decoded = authorization
        .map(str::trim)
        .and_then(|a| a.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    if let Some((_, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
        candidates.push(password);
    }
    if let Some(c) = custom {
        candidates.push(c.trim());
    }
    candidates
        .iter()
        .fold(false, |ok, c| same_secret(c, secret) | ok)
}

pub use domain::events::IncomingEvent;

/// Iterable's channel prefixes of `eventName`, longest first, and our subject for each.
const CHANNELS: &[(&str, &str)] = &[
    ("webPush", "web_push"),
    ("whatsApp", "whatsapp"),
    ("embedded", "embedded"),
    ("inApp", "in_app"),
    ("email", "email"),
    ("push", "push"),
    ("sms", "sms"),
];

/// Iterable's verbs (the rest of `eventName`) and our action for each.
const VERBS: &[(&str, &str)] = &[
    ("Send", "sent"),
    ("BlastSend", "sent"),
    ("TriggeredSend", "sent"),
    ("SendSkip", "skipped"),
    ("Open", "opened"),
    ("Seen", "opened"),
    ("Impression", "opened"),
    ("Click", "clicked"),
    ("Bounce", "bounced"),
    ("Complaint", "complained"),
    ("Subscribe", "subscribed"),
    ("UnSubscribe", "unsubscribed"),
    ("Unsubscribe", "unsubscribed"),
    ("Received", "received"),
    ("Delivery", "delivered"),
    ("Delete", "deleted"),
    ("Recall", "deleted"),
    ("Close", "closed"),
    ("Uninstall", "uninstalled"),
];

/// Our event type (`domain::events`) for Iterable's `eventName`: `emailOpen` → `email.opened`,
/// `smsSend` → `sms.sent`, `inAppOpen` → `in_app.opened`, `emailUnSubscribe` →
/// `email.unsubscribed`, `journeyExit` → `journey.exited`. A name we do not know keeps its
/// channel and passes its verb through (`embeddedSession` → `embedded.session`); a name with no
/// channel is `custom.{snake_case}`.
pub fn event_type(name: &str) -> String {
    match name {
        "hostedUnsubscribeClick" => return typed("email", "unsubscribe_clicked"),
        "journeyExit" => return typed("journey", "exited"),
        _ => {}
    }
    for (prefix, subject) in CHANNELS {
        if let Some(verb) = name.strip_prefix(prefix)
            && !verb.is_empty()
        {
            let action = VERBS.iter().find(|(v, _)| *v == verb).map_or_else(
                || snake(verb).trim_start_matches('_').to_owned(),
                |(_, a)| (*a).to_owned(),
            );
            return typed(subject, &action);
        }
    }
    typed("custom", &snake(name))
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
    let occurred_at = time(created);
    // One message has one send but may have many opens and clicks: the event's time tells
    // those apart, while a redelivery of the same event carries the same time.
    let platform_event_id = match data.get("messageId").and_then(id_string) {
        Some(m) => match occurred_at {
            Some(t) => format!("{name}:{m}:{}", t.timestamp_millis()),
            None => format!("{name}:{m}"),
        },
        None => {
            // No message id (custom or profile events): the same body is the same event.
            let digest = Sha256::digest(body);
            format!("{name}:{}", hex::encode(&digest[..16]))
        }
    };
    Ok(IncomingEvent {
        kind: event_type(name),
        platform_event_id,
        occurred_at,
        email,
        user_id,
        campaign_id: data.get("campaignId").and_then(id_string),
        data,
    })
}

/// Whether one of Iterable's events, as [`normalize`] typed it, puts the address on the consent
/// ledger (fact sheet `consent.md` §1.2): `emailUnSubscribe` except an SMS STOP reply (which
/// Iterable reports as an email unsubscribe with `unsubSource: SMS`), `emailComplaint`, and an
/// `emailBounce` whose `recipientState` is `HardBounce`. `hostedUnsubscribeClick` is only a
/// hint: its `emailUnSubscribe` follows.
pub fn consent_reason(kind: &str, data: &Value) -> Option<Reason> {
    let field = |k: &str| data.get(k).and_then(Value::as_str);
    match kind {
        "email.unsubscribed" if field("unsubSource") == Some("SMS") => None,
        "email.unsubscribed" => Some(Reason::Unsubscribed),
        "email.complained" => Some(Reason::Complained),
        "email.bounced" if field("recipientState") == Some("HardBounce") => Some(Reason::Bounced),
        _ => None,
    }
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
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("iterable:{s}"));
        assert!(authorized(Some(&format!("Basic {basic}")), None, s));
        let wrong = base64::engine::general_purpose::STANDARD.encode("iterable:nope");
        assert!(!authorized(Some(&format!("Basic {wrong}")), None, s));
    }

    #[test]
    fn a_send_webhook_normalised() {
        let body = json!({"email": "r@example.com", "userId": "u1", "eventName": "emailSend",
            "dataFields": {"campaignId": 1001, "messageId": "m-9", "createdAt": "2024-01-01 12:00:00 +00:00",
                "templateId": 7}});
        let e = normalize(body.to_string().as_bytes()).unwrap();
        assert_eq!(e.kind, "email.sent");
        assert_eq!(e.platform_event_id, "emailSend:m-9:1704110400000");
        assert_eq!(e.campaign_id.as_deref(), Some("1001"));
        assert_eq!(e.email.as_deref(), Some("r@example.com"));
        assert_eq!(e.user_id.as_deref(), Some("u1"));
        assert_eq!(
            e.occurred_at.unwrap().to_rfc3339(),
            "2024-01-01T12:00:00+00:00"
        );
        for (name, ours) in [
            ("emailSend", "email.sent"),
            ("emailOpen", "email.opened"),
            ("emailClick", "email.clicked"),
            ("emailBounce", "email.bounced"),
            ("emailComplaint", "email.complained"),
            ("emailSendSkip", "email.skipped"),
            ("emailSubscribe", "email.subscribed"),
            ("emailUnSubscribe", "email.unsubscribed"),
            ("hostedUnsubscribeClick", "email.unsubscribe_clicked"),
            ("smsSend", "sms.sent"),
            ("smsBounce", "sms.bounced"),
            ("smsClick", "sms.clicked"),
            ("smsReceived", "sms.received"),
            ("pushSend", "push.sent"),
            ("pushOpen", "push.opened"),
            ("pushUninstall", "push.uninstalled"),
            ("inAppSend", "in_app.sent"),
            ("inAppOpen", "in_app.opened"),
            ("inAppClick", "in_app.clicked"),
            ("inAppDelete", "in_app.deleted"),
            ("webPushSend", "web_push.sent"),
            ("webPushClick", "web_push.clicked"),
            ("whatsAppSeen", "whatsapp.opened"),
            ("embeddedSession", "embedded.session"),
            ("journeyExit", "journey.exited"),
            ("customEvent", "custom.custom_event"),
        ] {
            assert_eq!(event_type(name), ours, "{name}");
            assert!(domain::events::is_event_type(&event_type(name)), "{name}");
        }
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
