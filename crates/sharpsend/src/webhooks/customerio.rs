//! Customer.io reporting webhooks: one signed JSON event per POST.
//!
//! `X-CIO-Signature` is the lowercase hex HMAC-SHA256 of `v0:{X-CIO-Timestamp}:{raw body}` under
//! the workspace's webhook signing key (stored at connect as `webhookSigningKey`); it is checked
//! on the raw bytes in constant time. `X-CIO-Timestamp` (unix seconds) must be within
//! [`TOLERANCE`] of our clock, so a captured delivery cannot be replayed later; a replay within
//! the window is caught by the `event_id` de-duplication.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use domain::events::event_type;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::Sha256;
use store::IntegrationRecord;
use subtle::ConstantTimeEq;

use super::{Incoming, Reply, header, rejected, store_all};
use crate::{
    error::{Error, Result},
    integrations,
    state::AppState,
};

/// How far `X-CIO-Timestamp` may be from now, either way (Customer.io documents none; five
/// minutes is the usual choice, written in docs/webhooks.md).
pub const TOLERANCE: chrono::Duration = chrono::Duration::minutes(5);

/// The credential field that holds the signing key.
pub const KEY_FIELD: &str = "webhookSigningKey";

/// The expected signature of a body.
pub fn sign(key: &[u8], timestamp: &str, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Checks signature and timestamp; `Err` is the reason, for the 401.
pub fn verify(
    key: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), &'static str> {
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err("Missing X-CIO-Timestamp or X-CIO-Signature header.");
    };
    let Some(given) = hex::decode(sig.trim()).ok().filter(|g| g.len() == 32) else {
        return Err("X-CIO-Signature is not a hex HMAC-SHA256.");
    };
    let expected = sign(key.as_bytes(), ts, body);
    if !bool::from(expected.ct_eq(&given)) {
        return Err(
            "Signature mismatch: X-CIO-Signature is not the HMAC-SHA256 of v0:{timestamp}:{body} under this integration's webhookSigningKey.",
        );
    }
    let Some(at) = ts
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
    else {
        return Err("X-CIO-Timestamp is not unix seconds.");
    };
    if (now - at).abs() > TOLERANCE {
        return Err(
            "Stale X-CIO-Timestamp: more than 5 minutes from now, so the delivery may be a replay.",
        );
    }
    Ok(())
}

/// Our action for Customer.io's `metric`.
fn action(metric: &str) -> String {
    match metric {
        "spammed" => "complained".into(),
        "cio_subscription_preferences_changed" => "preferences_changed".into(),
        "email_deferred" => "deferred".into(),
        other => domain::events::snake(other),
    }
}

/// Reads a reporting webhook body into our event.
pub fn normalize(body: &[u8]) -> Result<Incoming, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let s = |obj: &Value, k: &str| -> Option<String> {
        match obj.get(k)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let metric = s(&v, "metric").ok_or("the body has no metric")?;
    let event_id = s(&v, "event_id").ok_or("the body has no event_id")?;
    let object_type = s(&v, "object_type").ok_or("the body has no object_type")?;
    let data = v.get("data").cloned().unwrap_or(Value::Null);
    let ids = data.get("identifiers").cloned().unwrap_or(Value::Null);
    let email = s(&ids, "email")
        .or_else(|| s(&data, "email_address"))
        .or_else(|| {
            (object_type == "email")
                .then(|| s(&data, "recipient"))
                .flatten()
        });
    let user_id = s(&ids, "id").or_else(|| s(&data, "customer_id"));
    let campaign_id = s(&data, "campaign_id")
        .or_else(|| s(&data, "broadcast_id"))
        .or_else(|| s(&data, "newsletter_id"))
        .or_else(|| s(&data, "transactional_message_id"));
    let occurred_at = v
        .get("timestamp")
        .and_then(Value::as_i64)
        .and_then(|t| DateTime::from_timestamp(t, 0));
    let mut data = data;
    if let Value::Object(m) = &mut data {
        m.insert("metric".into(), Value::String(metric.clone()));
        m.insert("objectType".into(), Value::String(object_type.clone()));
    }
    Ok(Incoming {
        kind: event_type(&domain::events::snake(&object_type), &action(&metric)),
        platform_event_id: event_id,
        occurred_at,
        email,
        user_id,
        campaign_id,
        data,
    })
}

pub async fn receive(
    state: &AppState,
    record: &IntegrationRecord,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply> {
    let secrets = integrations::open_secrets(state, record).await?;
    let Some(key) = secrets.get(KEY_FIELD) else {
        return Err(rejected(
            "This Customer.io integration has no webhook signing key, so deliveries cannot be verified: reconnect with `webhookSigningKey` (Customer.io › Data & Integrations › Reporting Webhooks › your webhook › signing key).",
        ));
    };
    if let Err(reason) = verify(
        key.expose_secret(),
        header(headers, "x-cio-timestamp"),
        header(headers, "x-cio-signature"),
        body,
        Utc::now(),
    ) {
        tracing::warn!(integration_id = %record.id, reason, "Customer.io webhook rejected");
        return Err(rejected(reason));
    }
    let event = normalize(body).map_err(|e| {
        Error::invalid("body", format!("Not a Customer.io reporting webhook: {e}."))
    })?;
    let receipt = store_all(state, record, vec![event]).await?;
    Ok(Reply::Stored(receipt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_and_objects_map_onto_our_types() {
        for (object, metric, ours) in [
            ("email", "sent", "email.sent"),
            ("email", "delivered", "email.delivered"),
            ("email", "opened", "email.opened"),
            ("email", "clicked", "email.clicked"),
            ("email", "bounced", "email.bounced"),
            ("email", "unsubscribed", "email.unsubscribed"),
            ("email", "converted", "email.converted"),
            ("email", "spammed", "email.complained"),
            ("push", "opened", "push.opened"),
            ("sms", "delivered", "sms.delivered"),
            ("in_app", "clicked", "in_app.clicked"),
            ("webhook", "sent", "webhook.sent"),
            ("customer", "subscribed", "customer.subscribed"),
            (
                "customer",
                "cio_subscription_preferences_changed",
                "customer.preferences_changed",
            ),
        ] {
            let body = format!(
                r#"{{"metric":"{metric}","event_id":"E1","object_type":"{object}","timestamp":1613063089,"data":{{"identifiers":{{"id":"42","email":"a@b.co"}},"campaign_id":7}}}}"#
            );
            let e = normalize(body.as_bytes()).unwrap();
            assert_eq!(e.kind, ours);
            assert!(domain::events::is_event_type(&e.kind));
            assert_eq!(e.platform_event_id, "E1");
            assert_eq!(e.email.as_deref(), Some("a@b.co"));
            assert_eq!(e.user_id.as_deref(), Some("42"));
            assert_eq!(e.campaign_id.as_deref(), Some("7"));
        }
        assert!(normalize(b"{}").is_err());
    }
}
