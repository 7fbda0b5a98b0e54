//! Scheduled syncs: every connected integration is synced every
//! `SHARPSEND_SYNC_INTERVAL_MINUTES` (or its own `config.syncIntervalMinutes`), with jitter so
//! that publishers connected together do not all sync together.
//!
//! Each integration's next sync time is stored (`next_sync_at`); every replica's scheduler looks
//! for due ones, and moves the time on with a compare-and-swap, so exactly one replica queues
//! each scheduled job. A never-synced integration gets its first sync within
//! [`FIRST_SYNC_SPREAD`]. Integrations in `reauth_required` are not due (their status and reason
//! say why); they are scheduled again once reconnected.

use std::time::Duration;

use chrono::Utc;
use rand::Rng as _;
use store::{DueIntegration, NewSyncJob};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// How often the scheduler looks for due integrations.
const TICK: Duration = Duration::from_secs(15);
/// A new integration's first scheduled sync comes within this.
pub const FIRST_SYNC_SPREAD: Duration = Duration::from_secs(60);

/// The sync period of an integration: its `config.syncIntervalMinutes` when set, else the
/// default; `None` when it is not scheduled.
pub fn interval_of(config: &serde_json::Value, default_minutes: u32) -> Option<Duration> {
    let minutes = config
        .get("syncIntervalMinutes")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(u64::from(default_minutes));
    (minutes > 0).then(|| Duration::from_secs(minutes * 60))
}

/// The kinds a scheduled sync runs: the platform's CONTRACT §6 kinds, plus the opt-in
/// `metrics` when the integration's `config.metricsHistory` is `true` (so daily history is kept
/// without anyone asking).
pub fn scheduled_kinds(platform: domain::Platform, config: &serde_json::Value) -> Vec<String> {
    let mut kinds: Vec<String> = platform
        .sync_kinds()
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    let history = config
        .get("metricsHistory")
        .and_then(serde_json::Value::as_bool)
        == Some(true);
    if history && platform.optional_sync_kinds().contains(&"metrics") {
        kinds.push("metrics".to_owned());
    }
    kinds
}

/// `interval` give or take a tenth (at most 5 minutes), so runs drift apart.
fn jittered(interval: Duration) -> Duration {
    let spread = (interval / 10).min(Duration::from_secs(300));
    let mut rng = rand::thread_rng();
    interval.saturating_sub(spread) + spread.mul_f64(rng.gen_range(0.0..=2.0))
}

/// Runs until `shutdown`; does nothing when the default interval is 0.
pub fn spawn(
    state: &AppState,
    shutdown: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if state.config.sync_interval_minutes == 0 {
        tracing::info!("SHARPSEND_SYNC_INTERVAL_MINUTES=0: scheduled syncs are off");
        return None;
    }
    let state = state.clone();
    let shutdown = shutdown.clone();
    Some(tokio::spawn(async move {
        loop {
            if let Err(e) = tick(&state).await {
                tracing::warn!(error = %e, "sync scheduler tick failed");
            }
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }))
}

/// Queues the syncs that are due; answers how many this replica queued.
pub async fn tick(state: &AppState) -> Result<usize, store::StoreError> {
    let now = Utc::now();
    let mut queued = 0;
    for due in state.store.due_integrations(now, 200).await? {
        let Some(interval) = interval_of(&due.config, state.config.sync_interval_minutes) else {
            continue;
        };
        let next = match due.next_sync_at {
            // Never scheduled: spread first syncs over the next minute.
            None => FIRST_SYNC_SPREAD.mul_f64(rand::thread_rng().gen_range(0.0..=1.0)),
            Some(_) => jittered(interval),
        };
        let next_at = now + chrono::Duration::from_std(next).unwrap_or_default();
        if !state
            .store
            .set_next_sync(&due.id, due.next_sync_at, next_at)
            .await?
        {
            continue; // another replica took this one
        }
        if due.next_sync_at.is_some() && enqueue_scheduled(state, &due).await? {
            queued += 1;
        }
    }
    if queued > 0 {
        state.sync_wakeup.notify_waiters();
    }
    Ok(queued)
}

async fn enqueue_scheduled(
    state: &AppState,
    due: &DueIntegration,
) -> Result<bool, store::StoreError> {
    let (job, created) = state
        .store
        .enqueue_sync_job(NewSyncJob {
            id: super::new_job_id(),
            integration_id: due.id.clone(),
            platform: due.platform,
            kinds: scheduled_kinds(due.platform, &due.config),
            full: false,
            now: Utc::now(),
        })
        .await?;
    tracing::info!(publisher = %due.publisher_id, platform = %due.platform, job_id = %job.id, created, "scheduled sync");
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn per_integration_interval_overrides_the_default() {
        assert_eq!(interval_of(&json!({}), 60), Some(Duration::from_secs(3600)));
        assert_eq!(
            interval_of(&json!({"syncIntervalMinutes": 5}), 60),
            Some(Duration::from_secs(300))
        );
        assert_eq!(interval_of(&json!({"syncIntervalMinutes": 0}), 60), None);
        use domain::Platform;
        let plain = scheduled_kinds(Platform::Iterable, &json!({}));
        assert!(!plain.contains(&"metrics".to_owned()), "{plain:?}");
        let kept = scheduled_kinds(Platform::Iterable, &json!({"metricsHistory": true}));
        assert_eq!(kept.last().map(String::as_str), Some("metrics"));
        assert_eq!(kept.len(), plain.len() + 1);
        let cio = scheduled_kinds(Platform::Customerio, &json!({"metricsHistory": true}));
        assert!(cio.contains(&"metrics".to_owned()));
        // Keap offers no metrics kind: the knob adds nothing there.
        let keap = scheduled_kinds(Platform::Keap, &json!({"metricsHistory": true}));
        assert_eq!(keap.len(), Platform::Keap.sync_kinds().len());
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(3600));
            assert!(
                j >= Duration::from_secs(3240) && j <= Duration::from_secs(3960),
                "{j:?}"
            );
        }
    }
}
