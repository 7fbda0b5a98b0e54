//! Customer.io reporting webhooks, as received: the normalisation of one delivery's body into the
//! contract's Event (CONTRACT §6, §8). Pure functions; the service's public receiver
//! (`POST /webhooks/customerio/{webhookId}`) checks the signature and calls them.

use chrono::DateTime;
use domain::{
    consent::Reason,
    events::{event_type, snake},
};
use serde_json::Value;

pub use domain::events::IncomingEvent;

/// Our action for Customer.io's `metric`.
fn action(metric: &str) -> String {
    match metric {
        "spammed" => "complained".into(),
        "cio_subscription_preferences_changed" => "preferences_changed".into(),
        "email_deferred" => "deferred".into(),
        other => snake(other),
    }
}

/// Reads a reporting webhook body `{"metric", "event_id", "object_type", "timestamp", "data"}`;
/// `Err` says what is missing.
pub fn normalize(body: &[u8]) -> Result<IncomingEvent, String> {
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
    Ok(IncomingEvent {
        kind: event_type(&snake(&object_type), &action(&metric)),
        platform_event_id: event_id,
        occurred_at,
        email,
        user_id,
        campaign_id,
        data,
    })
}

/// Whether one of Customer.io's reporting events, as typed here, puts the address on the consent
/// ledger (fact sheet `consent.md` §2.3): the person-level `customer`/`unsubscribed`, a
/// message's `email`/`unsubscribed`, and `email`/`spammed`. A `bounced` event carries no
/// hard/soft field, so it never does.
pub fn consent_reason(kind: &str) -> Option<Reason> {
    match kind {
        "email.unsubscribed" | "customer.unsubscribed" => Some(Reason::Unsubscribed),
        "email.complained" => Some(Reason::Complained),
        _ => None,
    }
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
            assert_eq!(e.data["metric"], metric);
            assert_eq!(e.data["objectType"], object);
        }
        assert!(normalize(b"{}").is_err());
    }

    #[test]
    fn people_and_messages_are_found_where_each_object_keeps_them() {
        let e = normalize(
            br#"{"metric":"sent","event_id":"E2","object_type":"email","timestamp":1,"data":{"customer_id":"7","recipient":"r@b.co","transactional_message_id":3}}"#,
        )
        .unwrap();
        assert_eq!(e.user_id.as_deref(), Some("7"));
        assert_eq!(e.email.as_deref(), Some("r@b.co"));
        assert_eq!(e.campaign_id.as_deref(), Some("3"));
        assert_eq!(e.occurred_at, DateTime::from_timestamp(1, 0));
        // A recipient of an SMS is a phone number, not an email.
        let e = normalize(
            br#"{"metric":"sent","event_id":"E3","object_type":"sms","data":{"recipient":"+15550100","broadcast_id":"9"}}"#,
        )
        .unwrap();
        assert_eq!(e.email, None);
        assert_eq!(e.campaign_id.as_deref(), Some("9"));
    }
}
