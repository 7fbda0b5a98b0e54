//! Received webhook events that put an address on the ledger: unsubscribes, spam complaints
//! and hard bounces. Which of a platform's events count is the platform's wire knowledge, so its
//! connector answers (`connectors::{iterable, customerio}::webhooks::consent_reason`); Keap sends
//! no such events (a Keap opt-out arrives when a hooked contact is re-read, `webhooks::work`).
//!
//! Our own propagated unsubscribes come back as these same events: the address is already on
//! the ledger then, so recording it again changes nothing and nothing propagates twice.

use domain::{Platform, PublisherId, consent::Reason, events::IncomingEvent};
use store::{IntegrationRecord, SourceKind, SuppressionSource};

use super::{email_ref, ledger};
use crate::state::AppState;

/// One ledger entry a delivery asks for.
pub struct Signal {
    email: String,
    reason: Reason,
    event_id: String,
}

/// The entries `platform`'s `events` ask for (read before the events are stored, which
/// consumes them).
pub fn signals(platform: Platform, events: &[IncomingEvent]) -> Vec<Signal> {
    events
        .iter()
        .filter_map(|e| {
            let reason = reason_of(platform, e)?;
            Some(Signal {
                email: e.email.clone()?,
                reason,
                event_id: e.platform_event_id.clone(),
            })
        })
        .collect()
}

fn reason_of(platform: Platform, e: &IncomingEvent) -> Option<Reason> {
    match platform {
        Platform::Iterable => connectors::iterable::webhooks::consent_reason(&e.kind, &e.data),
        Platform::Customerio => connectors::customerio::webhooks::consent_reason(&e.kind),
        Platform::Keap => None,
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
    use serde_json::{Value, json};

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
        use Platform::{Customerio as C, Iterable as I, Keap as K};
        let cases = [
            (
                I,
                "email.unsubscribed",
                json!({"unsubSource": "API"}),
                Some(Reason::Unsubscribed),
            ),
            (I, "email.unsubscribed", json!({"unsubSource": "SMS"}), None),
            (
                C,
                "customer.unsubscribed",
                json!({}),
                Some(Reason::Unsubscribed),
            ),
            (
                C,
                "email.unsubscribed",
                json!({}),
                Some(Reason::Unsubscribed),
            ),
            (I, "email.complained", json!({}), Some(Reason::Complained)),
            (C, "email.complained", json!({}), Some(Reason::Complained)),
            (
                I,
                "email.bounced",
                json!({"recipientState": "HardBounce"}),
                Some(Reason::Bounced),
            ),
            (
                I,
                "email.bounced",
                json!({"recipientState": "SoftBounceMailboxFull"}),
                None,
            ),
            (
                C,
                "email.bounced",
                json!({"failure_message": "550 no such user"}),
                None,
            ),
            (I, "email.unsubscribe_clicked", json!({}), None),
            (I, "email.opened", json!({}), None),
            (K, "contact.updated", json!({}), None),
        ];
        for (platform, kind, data, want) in cases {
            let got = signals(platform, &[event(kind, data.clone())])
                .first()
                .map(|s| s.reason);
            assert_eq!(got, want, "{platform} {kind} {data}");
        }
        let mut anonymous = event("email.complained", json!({}));
        anonymous.email = None;
        assert!(signals(I, &[anonymous]).is_empty());
    }
}
