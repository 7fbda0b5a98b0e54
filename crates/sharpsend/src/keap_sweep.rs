//! Keeps idle Keap integrations alive: Keap's refresh tokens lapse when unused for 45 days, so
//! an integration nobody called for weeks would silently need a reconnect. Every hour `serve`
//! looks for OAuth integrations whose token was last refreshed more than [`IDLE_AFTER`] ago and
//! refreshes them through the same single-flight refresh the API uses
//! (`platforms::keap::tokens`), so replicas sweeping at once still refresh each token once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{Platform, PublisherId, shapes::IntegrationStatus};
use tokio_util::sync::CancellationToken;

use crate::{platforms::keap::tokens, state::AppState};

/// How often the sweep runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3_600);
/// A token last refreshed longer ago than this is refreshed by the sweep (well inside the 45
/// days, so a few failed sweeps in a row still leave time).
pub const IDLE_AFTER: chrono::Duration = chrono::Duration::days(7);
/// Keap's access-token lifetime: the last refresh is taken as the stored expiry minus this.
const TOKEN_LIFETIME: chrono::Duration = chrono::Duration::hours(24);

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Integrations looked at (Keap OAuth with a refresh token, not awaiting reauthorisation).
    pub checked: usize,
    /// Tokens refreshed by this sweep (or found refreshed by someone else meanwhile).
    pub refreshed: usize,
    /// Refreshes that failed (a refused refresh marks the integration `reauth_required`).
    pub failed: usize,
}

/// One sweep as of `now`: refreshes every Keap OAuth integration last refreshed before
/// `now - idle_after`.
pub async fn sweep_once(
    state: &AppState,
    now: DateTime<Utc>,
    idle_after: chrono::Duration,
) -> SweepReport {
    let mut report = SweepReport::default();
    let integrations = match state.store.list_platform_integrations(Platform::Keap).await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %e, "Keap token sweep: cannot list integrations");
            return report;
        }
    };
    for record in integrations {
        if record.status == IntegrationStatus::ReauthRequired {
            continue;
        }
        let (expires, version) = match tokens::oauth_expiry(state, &record.id).await {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(integration_id = %record.id, error = %e, "Keap token sweep: cannot read credentials");
                report.failed += 1;
                continue;
            }
        };
        report.checked += 1;
        let last_refresh = expires - TOKEN_LIFETIME;
        if now - last_refresh < idle_after {
            continue;
        }
        let Ok(publisher) = PublisherId::parse(&record.publisher_id) else {
            continue;
        };
        // The refresh is the single-flight one: a replica that got there first is seen through
        // the credentials version, and Keap is not called twice.
        let outcome = match crate::platforms::open_own::<crate::platforms::keap::KeapSession>(
            state, &publisher,
        )
        .await
        {
            Ok(mut session) if session.version() == version => {
                tokens::refresh(state, &mut session).await
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(integration_id = %record.id, "Keap token sweep: idle token refreshed");
                report.refreshed += 1;
            }
            Err(e) => {
                tracing::warn!(integration_id = %record.id, error = %e, "Keap token sweep: refresh failed");
                report.failed += 1;
            }
        }
    }
    report
}

/// Runs the sweep every [`SWEEP_EVERY`] until `shutdown` (the first one shortly after start).
pub fn spawn(state: AppState, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(60),
            SWEEP_EVERY,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let report = sweep_once(&state, Utc::now(), IDLE_AFTER).await;
                    if report.refreshed + report.failed > 0 {
                        tracing::info!(checked = report.checked, refreshed = report.refreshed, failed = report.failed, "Keap token sweep done");
                    }
                }
            }
        }
    });
}
