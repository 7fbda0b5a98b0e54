//! Our own events, pushed to destinations beside the platforms' (received ones are queued by
//! the store as they are stored): a new suppression, a finished sync, an integration that
//! needs reauthorisation. Publishing never fails the work that caused it: an error is logged.

use chrono::Utc;
use domain::Platform;
use serde_json::json;
use store::{OutboundEvent, Suppression};

use crate::state::AppState;

pub const SUPPRESSION_CREATED: &str = "suppression.created";
pub const SYNC_SUCCEEDED: &str = "sync.succeeded";
pub const SYNC_FAILED: &str = "sync.failed";
pub const REAUTH_REQUIRED: &str = "integration.reauth_required";

/// Queues `event` for every destination that wants it and wakes the worker.
pub async fn publish(state: &AppState, event: OutboundEvent) {
    match state.store.publish_events(&[event], Utc::now()).await {
        Ok(0) => {}
        Ok(_) => state.outbound.wake(),
        Err(e) => tracing::error!(error = %e, "queueing an event for destinations failed"),
    }
}

/// A new ledger entry (its id is the event's: one message per entry and destination).
pub async fn suppression_created(state: &AppState, s: &Suppression) {
    publish(
        state,
        OutboundEvent {
            event_id: s.id.clone(),
            publisher_id: s.publisher_id.clone(),
            event_type: SUPPRESSION_CREATED.to_owned(),
            platform: s.source.platform,
            reader: Some(s.email.clone()),
            occurred_at: s.created_at,
            data: json!({
                "publisherId": s.publisher_id,
                "email": s.email,
                "reason": s.reason,
                "source": {
                    "kind": s.source.kind.as_str(),
                    "platform": s.source.platform,
                    "eventId": s.source.event_id,
                },
                "createdAt": s.created_at,
            }),
        },
    )
    .await;
}

/// The publisher of an integration, for events that name only the integration.
async fn publisher_of(state: &AppState, integration_id: &str) -> Option<String> {
    match state.store.get_integration_by_id(integration_id).await {
        Ok(found) => found.map(|r| r.publisher_id),
        Err(e) => {
            tracing::error!(error = %e, "reading an integration for its event failed");
            None
        }
    }
}

/// A sync job that ended (`error` is `(code, message)` for a failed one).
pub async fn sync_finished(
    state: &AppState,
    job: &store::SyncJobRecord,
    error: Option<(&str, &str)>,
) {
    // Deleted meanwhile: no one to tell.
    let Some(publisher_id) = publisher_of(state, &job.integration_id).await else {
        return;
    };
    let publisher_id = publisher_id.as_str();
    let (kind, error) = match error {
        None => (SYNC_SUCCEEDED, serde_json::Value::Null),
        Some((code, message)) => (SYNC_FAILED, json!({"code": code, "message": message})),
    };
    publish(
        state,
        OutboundEvent {
            event_id: format!("{}.{kind}", job.id),
            publisher_id: publisher_id.to_owned(),
            event_type: kind.to_owned(),
            platform: Some(job.platform),
            reader: None,
            occurred_at: Utc::now(),
            data: json!({
                "publisherId": publisher_id,
                "integrationId": job.integration_id,
                "platform": job.platform,
                "jobId": job.id,
                "kinds": job.kinds,
                "full": job.full,
                "error": error,
            }),
        },
    )
    .await;
}

/// An integration the platform stopped accepting: the publisher must reconnect it.
pub async fn reauth_required(
    state: &AppState,
    integration_id: &str,
    platform: Platform,
    reason: &str,
) {
    let Some(publisher_id) = publisher_of(state, integration_id).await else {
        return;
    };
    let publisher_id = publisher_id.as_str();
    let now = Utc::now();
    publish(
        state,
        OutboundEvent {
            event_id: format!("{integration_id}.reauth.{}", now.timestamp_millis()),
            publisher_id: publisher_id.to_owned(),
            event_type: REAUTH_REQUIRED.to_owned(),
            platform: Some(platform),
            reader: None,
            occurred_at: now,
            data: json!({
                "publisherId": publisher_id,
                "integrationId": integration_id,
                "platform": platform,
                "reason": reason,
            }),
        },
    )
    .await;
}
