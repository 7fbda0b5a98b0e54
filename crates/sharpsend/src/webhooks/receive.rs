//! The entry of a delivery: the webhook id finds the integration, and its platform's driver
//! runs the authenticity check and stores the events (`platforms::Driver::receive_webhook`).

use axum::http::HeaderMap;
use bytes::Bytes;
use domain::{ErrorCode, Platform};

use super::Reply;
use crate::{
    error::{Error, Result},
    state::AppState,
};

/// Receives one delivery for `platform`/`webhook_id`; `Ok` is the response to send.
pub async fn receive(
    state: &AppState,
    platform: Platform,
    webhook_id: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Reply> {
    let record = state
        .store
        .get_integration_by_webhook(platform, webhook_id)
        .await?
        .ok_or_else(|| unknown_webhook(platform))?;
    let span = tracing::Span::current();
    span.record("publisher", record.publisher_id.as_str());
    span.record("platform", platform.as_str());
    crate::platforms::driver(platform)
        .receive_webhook(state, &record, headers, &body)
        .await
}

/// The 404 for a webhook id no integration has (never says whether the platform is wrong).
pub fn unknown_webhook(platform: Platform) -> Error {
    Error::coded(
        ErrorCode::NotFound,
        format!(
            "No {} integration has this webhook URL; copy webhookUrl from GET /api/integrations/{{publisherId}}.",
            platform.display_name()
        ),
    )
}
