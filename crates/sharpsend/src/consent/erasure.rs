//! Erasure requests: every platform forgets the reader, and so do we.

use chrono::Utc;
use domain::{Platform, PublisherId, consent::PropagationStatus};
use serde_json::json;
use store::{ErasureRecord, NewErasure, NewPlatformState};

use super::{audit, email_ref, normalize};
use crate::{error::Error, state::AppState};

/// Starts erasing `email` for `publisher`: an erase job per connected platform (a platform not
/// connected is `skipped`), then our own copies at once — synced records, stored events, the
/// suppression and its open opt-out jobs — leaving the salted hash that keeps the address
/// suppressed. The erasure row never holds the address; the jobs hold it until they finish.
/// Audited without the address.
pub async fn request(
    state: &AppState,
    publisher: &PublisherId,
    email: &str,
    principal: &str,
) -> Result<ErasureRecord, Error> {
    let email = normalize(email, "email")?;
    let connected: Vec<Platform> = state
        .store
        .list_integrations(publisher)
        .await?
        .into_iter()
        .map(|i| i.platform)
        .collect();
    let platforms = Platform::ALL
        .into_iter()
        .map(|platform| {
            if connected.contains(&platform) {
                NewPlatformState {
                    platform,
                    status: PropagationStatus::Pending,
                    note: None,
                }
            } else {
                NewPlatformState {
                    platform,
                    status: PropagationStatus::Skipped,
                    note: Some("not connected".to_owned()),
                }
            }
        })
        .collect();
    let now = Utc::now();
    let erasure = state
        .store
        .create_erasure(NewErasure {
            publisher: publisher.clone(),
            email: email.clone(),
            platforms,
            now,
        })
        .await?;
    let copies = state
        .store
        .erase_local_copies(publisher, &email, now)
        .await?;
    tracing::info!(
        %publisher,
        erasure_id = %erasure.id,
        email = %email_ref(&email),
        records = copies.records,
        events = copies.events,
        suppressions = copies.suppressions,
        "erasure requested; local copies deleted"
    );
    audit::append(
        state,
        publisher,
        principal,
        "erasure.requested",
        json!({
            "erasureId": erasure.id,
            "deleted": {
                "records": copies.records,
                "events": copies.events,
                "suppressions": copies.suppressions,
            },
        }),
    )
    .await?;
    Ok(erasure)
}
