//! Received webhook events that put an address on the ledger: unsubscribes, spam complaints
//! and hard bounces, in our event vocabulary (`domain::events`), whatever platform sent them.
//!
//! - `email.unsubscribed` (Iterable `emailUnSubscribe`, Customer.io `email`/`unsubscribed`) and
//!   `customer.unsubscribed` (Customer.io's person-level unsubscribe) → `unsubscribed`, except
//!   an Iterable SMS STOP reply, which arrives as an email unsubscribe with `unsubSource: SMS`;
//! - `email.complained` (Iterable `emailComplaint`, Customer.io `spammed`) → `complained`;
//! - `email.bounced` only when the platform says the bounce is hard (Iterable
//!   `recipientState: HardBounce`). Customer.io's `bounced` carries no hard/soft field, so it is
//!   not recorded (README, "Consent: one reader, one choice, everywhere").
//!
//! Iterable's `hostedUnsubscribeClick` is only a hint; its `emailUnSubscribe` follows. Our own
//! propagated unsubscribes come back as these same events: the address is already on the
//! ledger then, so recording it again changes nothing and nothing propagates twice.

use domain::{PublisherId, consent::Reason, events::IncomingEvent};
use serde_json::Value;
use store::{IntegrationRecord, SourceKind, SuppressionSource};

use super::{email_ref, ledger};
use crate::state::AppState;

/// One ledger entry a delivery asks for.
pub struct Signal {
    email: String,
    reason: Reason,
    event_id: String,
}

/// The entries `events` ask for (read before the events are stored, which consumes them).
pub fn signals(events: &[IncomingEvent]) -> Vec<Signal> {
    events
        .iter()
        .filter_map(|e| {
            let reason = reason_of(&e.kind, &e.data)?;
            Some(Signal {
                email: e.email.clone()?,
                reason,
                event_id: e.platform_event_id.clone(),
            })
        })
        .collect()
}

fn reason_of(kind: &str, data: &Value) -> Option<Reason> {
    let field = |k: &str| data.get(k).and_then(Value::as_str);
    match kind {
        "email.unsubscribed" if field("unsubSource") == Some("SMS") => None,
        "email.unsubscribed" | "customer.unsubscribed" => Some(Reason::Unsubscribed),
        "email.complained" => Some(Reason::Complained),
        "email.bounced" if field("recipientState") == Some("HardBounce") => Some(Reason::Bounced),
        _ => None,
    }
}

/// Records each signal for the integration's publisher, with the platform as its source. A
/// failure is logged and does not fail the delivery: the events are stored already, and the
/// platform would only redeliver them.
pub async fn record(state: &AppState, integration: &IntegrationRecord, signals: Vec<Signal>) {
    let Ok(publisher) = PublisherId::parse(&integration.publisher_id) else {
        return;
    };
    for signal in signals {
        let source = SuppressionSource {
            kind: SourceKind::Webhook,
            platform: Some(integration.platform),
            event_id: Some(signal.event_id),
            principal: None,
        };
        if let Err(e) =
            ledger::record(state, &publisher, &signal.email, signal.reason, source).await
        {
            tracing::warn!(
                %publisher,
                platform = integration.platform.as_str(),
                email = %email_ref(&signal.email),
                error = %e,
                "recording a webhook's suppression failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(kind: &str, data: Value) -> IncomingEvent {
        IncomingEvent {
            kind: kind.to_owned(),
            platform_event_id: "e1".to_owned(),
            occurred_at: None,
            email: Some("ada@example.com".to_owned()),
            user_id: None,
            campaign_id: None,
            data,
        }
    }

    #[test]
    fn only_unsubscribes_complaints_and_hard_bounces_are_signals() {
        let cases = [
            (
                "email.unsubscribed",
                json!({"unsubSource": "API"}),
                Some(Reason::Unsubscribed),
            ),
            ("email.unsubscribed", json!({"unsubSource": "SMS"}), None),
            (
                "customer.unsubscribed",
                json!({}),
                Some(Reason::Unsubscribed),
            ),
            ("email.complained", json!({}), Some(Reason::Complained)),
            (
                "email.bounced",
                json!({"recipientState": "HardBounce"}),
                Some(Reason::Bounced),
            ),
            (
                "email.bounced",
                json!({"recipientState": "SoftBounceMailboxFull"}),
                None,
            ),
            (
                "email.bounced",
                json!({"failure_message": "550 no such user"}),
                None,
            ),
            ("email.unsubscribe_clicked", json!({}), None),
            ("email.opened", json!({}), None),
        ];
        for (kind, data, want) in cases {
            let got = signals(&[event(kind, data.clone())])
                .first()
                .map(|s| s.reason);
            assert_eq!(got, want, "{kind} {data}");
        }
        let mut anonymous = event("email.complained", json!({}));
        anonymous.email = None;
        assert!(signals(&[anonymous]).is_empty());
    }
}
