//! Queuing a sync job on request (the API's `POST …/sync` and `sharpsend sync`).

use chrono::Utc;
use domain::{ErrorCode, Platform, PublisherId, shapes::IntegrationStatus};
use store::{NewSyncJob, SyncJobRecord};

use crate::{
    error::{Error, Result},
    state::AppState,
};

/// The publisher's integration with `platform`, or `INTEGRATION_NOT_FOUND`.
pub use crate::platforms::integration;

/// The kinds to run: all of the platform's CONTRACT §6 kinds when `None` (never the opt-in
/// ones); each requested kind must be one of its kinds or opt-in kinds.
pub fn kinds(platform: Platform, requested: Option<Vec<String>>) -> Result<Vec<String>> {
    let all = platform.sync_kinds();
    let Some(requested) = requested else {
        return Ok(all.iter().map(|k| (*k).to_owned()).collect());
    };
    let offered = || {
        all.iter()
            .chain(platform.optional_sync_kinds())
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    };
    if requested.is_empty() {
        return Err(Error::invalid(
            "kinds",
            format!(
                "`kinds` is empty; leave it out to sync all of {platform}'s kinds: {}.",
                all.join(", ")
            ),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(requested.len());
    for k in requested {
        if !all.contains(&k.as_str()) && !platform.optional_sync_kinds().contains(&k.as_str()) {
            return Err(Error::invalid(
                "kinds",
                format!(
                    "`{k}` is not a sync kind of {platform}; use any of: {}.",
                    offered()
                ),
            ));
        }
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// Queues a sync of the publisher's integration, or answers its active job (`false`).
pub async fn request(
    state: &AppState,
    publisher: &PublisherId,
    platform: Platform,
    requested_kinds: Option<Vec<String>>,
    full: bool,
) -> Result<(SyncJobRecord, bool)> {
    let kinds = kinds(platform, requested_kinds)?;
    let record = integration(state, publisher, platform).await?;
    if record.status == IntegrationStatus::ReauthRequired {
        return Err(Error::coded(
            ErrorCode::InvalidCredentials,
            format!(
                "{} Publisher '{publisher}' must reconnect {platform} before it can sync.",
                record
                    .status_reason
                    .as_deref()
                    .unwrap_or("The platform refused the stored credentials.")
            ),
        ));
    }
    let (job, created) = state
        .store
        .enqueue_sync_job(NewSyncJob {
            id: super::new_job_id(),
            integration_id: record.id,
            platform,
            kinds,
            full,
            now: Utc::now(),
        })
        .await?;
    if created {
        state.sync_wakeup.notify_one();
    }
    Ok((job, created))
}
