//! Keap REST hooks: registration at connect, the `X-Hook-Secret` handshake, deliveries, and
//! removal at disconnect.
//!
//! - **Registration** ([`register`]): after the integration is stored, one subscription per key
//!   of [`hooks::EVENT_KEYS`] at the integration's webhook URL. Keap verifies each during the call
//!   by POSTing `X-Hook-Secret`, which [`receive`] echoes. Failures never fail the connect: they
//!   are logged and shown in the integration's `config.hooks` (`status` `registered`, `partial`
//!   or `failed`, each hook's key and Keap status, and the errors).
//! - **Deliveries** carry ids only and no signature (platforms/keap.md §5; the secret appears in
//!   the handshake only, so there is nothing to keep): the unguessable webhook URL is the
//!   credential, only the event keys we subscribe to are accepted, and the payload is treated
//!   as a hint: each object is recorded as an event (de-duplicated on event key, id and Keap's
//!   timestamp) and, for contacts, after the 200 has been sent, the contact is re-read from
//!   Keap: a 200 upserts it into the synced records (kind `contacts`), a 404 marks it deleted
//!   (a `contact.delete` alone never does). The re-reads are bounded per integration and large
//!   or overlapping deliveries coalesce into one contacts sync ([`crate::webhooks::work`]).
//! - **Disconnect** ([`unregister`]) deletes the subscriptions on Keap, best effort.

use axum::http::{HeaderMap, HeaderValue};
use chrono::Utc;
use connectors::keap::{
    KeapCredential,
    hooks::{self, Delivery, RestHook},
};
use domain::{Platform, PublisherId, events::event_type};
use serde_json::{Value, json};
use store::IntegrationRecord;

use crate::webhooks::{Incoming, Reply, header, rejected, store_all, work};
use crate::{
    error::{Error, Result},
    integrations,
    platforms::keap::tokens,
    state::AppState,
};

/// Our event type for a Keap event key: `contact.add` → `contact.created`, `contact.edit` →
/// `contact.updated`, `contact.delete` → `contact.deleted`, `opportunity.stage_move` →
/// `opportunity.stage_moved`, `contactGroup.applied` → `tag.applied`.
pub fn kind_of(event_key: &str) -> String {
    let (object, verb) = event_key.rsplit_once('.').unwrap_or((event_key, "changed"));
    let subject = match object {
        "contactGroup" => "tag".to_owned(),
        other => domain::events::snake(other),
    };
    let action = match verb {
        "add" => "created",
        "edit" => "updated",
        "delete" => "deleted",
        "stage_move" => "stage_moved",
        "complete" => "completed",
        "incomplete" => "reopened",
        "activate" => "activated",
        other => other,
    };
    event_type(&subject, action)
}

fn events_of(d: &Delivery) -> Vec<Incoming> {
    d.object_keys
        .iter()
        .map(|k| Incoming {
            kind: kind_of(&d.event_key),
            platform_event_id: format!(
                "{}:{}:{}",
                d.event_key,
                k.id,
                k.timestamp.as_deref().unwrap_or("-")
            ),
            occurred_at: k
                .timestamp
                .as_deref()
                .and_then(connectors::keap::parse_time),
            email: None,
            user_id: (d.object_type == "contact").then(|| k.id.clone()),
            campaign_id: None,
            data: json!({
                "eventKey": d.event_key,
                "objectType": d.object_type,
                "objectId": k.id,
                "timestamp": k.timestamp,
            }),
        })
        .collect()
}

pub async fn receive(
    state: &AppState,
    record: &IntegrationRecord,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply> {
    // The verification handshake: answer 200 echoing the secret.
    if let Some(secret) = header(headers, "x-hook-secret") {
        let secret = HeaderValue::from_str(secret).map_err(|_| {
            Error::invalid(
                "X-Hook-Secret",
                "X-Hook-Secret is not a valid header value.",
            )
        })?;
        tracing::info!(integration_id = %record.id, "Keap REST hook verification answered");
        return Ok(Reply::Handshake { secret });
    }
    let delivery = hooks::parse_delivery(body)
        .map_err(|e| Error::invalid("body", format!("Not a Keap REST hook delivery: {e}.")))?;
    if !hooks::EVENT_KEYS.contains(&delivery.event_key.as_str()) {
        return Err(rejected(format!(
            "SharpSend did not subscribe this integration to Keap's '{}' events.",
            delivery.event_key
        )));
    }
    let receipt = store_all(state, record, events_of(&delivery)).await?;
    if delivery.object_type == "contact" && receipt.received > 0 {
        let ids: Vec<String> = delivery.object_keys.iter().map(|k| k.id.clone()).collect();
        let deleted = delivery.event_key == "contact.delete";
        // Only queued here (Keap counts a reply after 30 s as a failure): the re-reads run after
        // the answer, bounded per integration (`work`).
        work::submit(state, record, ids, deleted).await;
    }
    Ok(Reply::Stored(receipt))
}

/// The hook keys stored in an integration's config.
pub fn hook_keys(config: &Value) -> Vec<String> {
    config["hooks"]["registrations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["key"].as_str().map(str::to_owned))
        .collect()
}

/// How registration reaches Keap: the credential a connect has just tested (no refresh, so a
/// connect never spends the refresh token), or a stored session.
enum Access {
    Direct(KeapCredential),
    Session(Box<tokens::Session>),
}

impl Access {
    async fn call<T, F, Fut>(&mut self, state: &AppState, op: F) -> Result<T>
    where
        F: Fn(KeapCredential) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, connectors::keap::KeapError>>,
    {
        match self {
            Access::Direct(cred) => op(cred.clone())
                .await
                .map_err(|e| connectors::ConnectorError::from(e).into()),
            Access::Session(s) => tokens::call(state, s, op).await,
        }
    }
}

/// Subscribes the publisher's Keap integration to [`hooks::EVENT_KEYS`] at its webhook URL,
/// first deleting `previous` subscriptions (a reconnect), and writes the outcome into
/// `config.hooks`. `cred` is the credential the connect just tested (else the stored session is
/// used). Never fails the caller: problems are logged and recorded.
pub async fn register(
    state: &AppState,
    publisher: &PublisherId,
    previous: &[String],
    cred: Option<KeapCredential>,
) {
    if let Err(e) = try_register(state, publisher, previous, cred).await {
        tracing::warn!(publisher = %publisher, error = %e, "Keap REST hooks could not be registered");
    }
}

async fn try_register(
    state: &AppState,
    publisher: &PublisherId,
    previous: &[String],
    cred: Option<KeapCredential>,
) -> Result<()> {
    let (record, mut access) = match cred {
        Some(c) => {
            let record = state
                .store
                .get_integration(publisher, Platform::Keap)
                .await?
                .ok_or_else(|| Error::internal("Keap integration vanished while connecting"))?;
            (record, Access::Direct(c))
        }
        None => {
            let s =
                crate::platforms::open_own::<crate::platforms::keap::KeapSession>(state, publisher)
                    .await?;
            (s.record.clone(), Access::Session(Box::new(s)))
        }
    };
    let keap = &state.connectors.keap;
    for key in previous {
        let key = key.as_str();
        if let Err(e) = access
            .call(
                state,
                |cred| async move { keap.delete_hook(&cred, key).await },
            )
            .await
        {
            tracing::warn!(hook = key, error = %e, "old Keap REST hook not deleted");
        }
    }
    let url = integrations::webhook_url(state, Platform::Keap, &record.webhook_id);
    let mut registrations: Vec<RestHook> = Vec::new();
    let mut errors: Vec<Value> = Vec::new();
    for event_key in hooks::EVENT_KEYS {
        let url = url.as_str();
        match access
            .call(state, |cred| async move {
                keap.create_hook(&cred, event_key, url).await
            })
            .await
        {
            Ok(h) => registrations.push(h),
            Err(e) => {
                tracing::warn!(event_key, error = %e, "Keap REST hook not registered");
                errors.push(json!({"eventKey": event_key, "error": e.to_string()}));
            }
        }
    }
    let verified = registrations
        .iter()
        .filter(|h| h.status == "Verified")
        .count();
    let status = if verified == hooks::EVENT_KEYS.len() {
        "registered"
    } else if registrations.is_empty() {
        "failed"
    } else {
        "partial"
    };
    let mut config = record.config.clone();
    if !config.is_object() {
        config = json!({});
    }
    config["hooks"] = json!({
        "status": status,
        "hookUrl": url,
        "registrations": registrations.iter().map(|h| json!({"key": h.key, "eventKey": h.event_key, "status": h.status})).collect::<Vec<_>>(),
        "errors": errors,
        "checkedAt": Utc::now(),
    });
    state
        .store
        .set_integration_config(&record.id, config)
        .await?;
    tracing::info!(status, verified, "Keap REST hooks registered");
    Ok(())
}

/// Deletes the integration's subscriptions on Keap, best effort (before a disconnect).
pub async fn unregister(state: &AppState, publisher: &PublisherId, record: &IntegrationRecord) {
    let keys = hook_keys(&record.config);
    if keys.is_empty() {
        return;
    }
    let mut session = match crate::platforms::open_own::<crate::platforms::keap::KeapSession>(
        state, publisher,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(publisher = %publisher, error = %e, "Keap REST hooks not deleted: no usable token");
            return;
        }
    };
    let keap = &state.connectors.keap;
    for key in &keys {
        let key = key.as_str();
        if let Err(e) = tokens::call(state, &mut session, |cred| async move {
            keap.delete_hook(&cred, key).await
        })
        .await
        {
            tracing::warn!(hook = key, error = %e, "Keap REST hook not deleted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_map_onto_our_types() {
        assert_eq!(kind_of("contact.add"), "contact.created");
        assert_eq!(kind_of("contact.edit"), "contact.updated");
        assert_eq!(kind_of("contact.delete"), "contact.deleted");
        assert_eq!(kind_of("order.add"), "order.created");
        assert_eq!(kind_of("opportunity.stage_move"), "opportunity.stage_moved");
        assert_eq!(kind_of("contactGroup.applied"), "tag.applied");
        assert_eq!(kind_of("invoice.payment.add"), "invoice_payment.created");
        for k in hooks::EVENT_KEYS {
            assert!(domain::events::is_event_type(&kind_of(k)), "{k}");
        }
    }
}
