//! Webhooks we receive (CONTRACT §8): `POST /webhooks/{platform}/{webhookId}`.
//!
//! The webhook id (random, unguessable, one per integration) finds the integration; then its
//! platform's driver (`platforms::Driver::receive_webhook`) runs the platform's own
//! authenticity check on the raw bytes before anything is parsed or stored, in
//! `platforms/<platform>/webhooks.rs`:
//!
//! - Iterable: the integration's generated webhook secret, sent by Iterable as its configured
//!   auth token (`Authorization`) or in the `X-SharpSend-Webhook-Secret` header;
//! - Customer.io: `X-CIO-Signature`, the hex HMAC-SHA256 of `v0:{X-CIO-Timestamp}:{body}` under
//!   the stored `webhookSigningKey`, within five minutes of now;
//! - Keap: the `X-Hook-Secret` handshake is echoed; deliveries (which Keap does not sign) are
//!   only hints whose records are re-read from Keap ([`work`]).
//!
//! This module holds what they share: the entry ([`receive`]), storing events once each, the
//! reply, and Keap's hook-work queue.
//!
//! A request that fails the check answers 401 and stores nothing. Valid events are normalised to
//! the contract's Event (types from `domain::events`) and stored once per (integration, platform
//! event id); a redelivery answers 200 again, so the platform stops retrying.

pub mod queue;
mod receive;
pub mod work;

pub use receive::{receive, unknown_webhook};

use axum::http::HeaderMap;
use chrono::Utc;
use domain::ErrorCode;
use serde::Serialize;
use store::{IntegrationRecord, NewEvent};

use crate::{
    error::{Error, Result},
    state::AppState,
};

/// An event in our terms, before it gets our id and receipt time.
pub use domain::events::IncomingEvent as Incoming;

/// What a delivery did: how many events were new and how many were redeliveries.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub received: u32,
    pub duplicates: u32,
}

/// What to answer a delivery that passed its platform's check.
#[derive(Debug)]
pub enum Reply {
    /// The events were stored (or were already).
    Stored(Receipt),
    /// A Keap hook handshake: answer 200 echoing this `X-Hook-Secret` value.
    Handshake { secret: axum::http::HeaderValue },
}

/// The 401 of a failed authenticity check (nothing is stored).
pub fn rejected(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::coded(ErrorCode::Unauthorized, message)
}

/// Stores events once each (one transaction, however many a delivery carries); answers the
/// receipt.
pub async fn store_all(
    state: &AppState,
    record: &IntegrationRecord,
    events: Vec<Incoming>,
) -> Result<Receipt> {
    let now = Utc::now();
    let total = events.len();
    let consent = crate::consent::webhooks::signals(record.platform, &events);
    let events: Vec<NewEvent> = events
        .into_iter()
        .map(|e| NewEvent {
            id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
            integration_id: record.id.clone(),
            publisher_id: record.publisher_id.clone(),
            platform: record.platform,
            kind: e.kind,
            platform_event_id: e.platform_event_id,
            occurred_at: e.occurred_at.unwrap_or(now),
            received_at: now,
            email: e.email,
            user_id: e.user_id,
            campaign_id: e.campaign_id,
            data: e.data,
        })
        .collect();
    // The store queues each new event's destination messages in the same write.
    let inserted = state.store.record_events(events).await?;
    if inserted > 0 {
        state.outbound.wake();
    }
    let received = u32::try_from(inserted).unwrap_or(u32::MAX);
    let receipt = Receipt {
        received,
        duplicates: u32::try_from(total)
            .unwrap_or(u32::MAX)
            .saturating_sub(received),
    };
    tracing::info!(
        received = receipt.received,
        duplicates = receipt.duplicates,
        "webhook events stored"
    );
    crate::consent::webhooks::record(state, record, consent).await;
    Ok(receipt)
}

/// A header as text, when present and readable.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
