//! Running sync jobs: workers claim jobs with a lease, read each kind page by page from the
//! platform's [`SyncSession`], and commit every page with its cursor in one transaction.
//!
//! What can go wrong, and what happens:
//! * **The worker dies** (crash, kill, OOM): its lease is not renewed; once it expires any worker
//!   claims the job and resumes every unfinished kind at its last committed page. Pages are
//!   upserts by platform id, so the page that was in flight is read again without doubling.
//! * **The worker stalls and loses its lease**: every write it tries afterwards is refused by
//!   the store (lease check in the same transaction), and it stops.
//! * **A retryable error** (a platform error whose connector marked it temporary — a 429, an
//!   outage — or our database being away; `Error::is_retryable`) after the connector's own
//!   retries: the job is queued again with exponential backoff and
//!   jitter (never before the platform's `Retry-After`), keeping its checkpoints, up to
//!   [`MAX_ATTEMPTS`] runs; the job shows the error and when it will try again.
//! * **A permanent error**: the job fails with the contract's code and message; an
//!   `INVALID_CREDENTIALS` also marks the integration `reauth_required`, which stops its
//!   scheduled syncs until the publisher reconnects.
//! * **Consent**: each page's records whose subscription state says "do not mail" are recorded
//!   in the publisher's consent ledger just before the page commits
//!   ([`crate::consent::feed`]); a failure there is logged and never fails the run.
//! * **Shutdown**: workers stop claiming, let the page in flight commit, and give their jobs
//!   back (queued, the run not counted) so another worker resumes them at once.

use std::{collections::BTreeMap, time::Duration};

use chrono::Utc;
use domain::{ErrorCode, PublisherId, shapes::IntegrationStatus};
use rand::Rng as _;
use store::{JobOutcome, KindFinish, PageCommit, SyncJobRecord};
use tokio_util::sync::CancellationToken;

use super::{
    source::{Page, SyncSession},
    sources,
};
use crate::{consent::feed, error::Error, state::AppState};

/// Runs of one job before a retryable error fails it for good.
pub const MAX_ATTEMPTS: i32 = 6;
/// How often an idle worker looks for due jobs (a job queued by this process wakes it at once).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// A unique name for one worker of this process, recorded as the lease holder.
pub fn worker_name(index: usize) -> String {
    format!(
        "{}-{}-{index}",
        hostname(),
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..8)
            .unwrap_or("0")
    )
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("pid{}", std::process::id()))
}

/// Spawns `config.sync_workers` workers; they stop when `shutdown` is cancelled.
pub fn spawn_workers(
    state: &AppState,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..state.config.sync_workers as usize)
        .map(|i| {
            let state = state.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { work(state, worker_name(i), shutdown).await })
        })
        .collect()
}

/// One worker: claim, run, repeat, until shutdown.
pub async fn work(state: AppState, worker: String, shutdown: CancellationToken) {
    tracing::debug!(%worker, "sync worker started");
    while !shutdown.is_cancelled() {
        match claim(&state, &worker, None).await {
            Ok(Some(job)) => run_claimed(&state, &worker, job, &shutdown).await,
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    () = state.sync_wakeup.notified() => {}
                    () = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(%worker, error = %e, "claiming a sync job failed; retrying");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
    tracing::debug!(%worker, "sync worker stopped");
}

/// Claims the next due job (or only `job_id`) for `worker`.
pub async fn claim(
    state: &AppState,
    worker: &str,
    job_id: Option<&str>,
) -> Result<Option<SyncJobRecord>, store::StoreError> {
    let now = Utc::now();
    let lease = chrono::Duration::from_std(state.config.sync_lease)
        .unwrap_or_else(|_| chrono::Duration::seconds(30));
    state
        .store
        .claim_sync_job(worker, now, now + lease, job_id)
        .await
}

/// Runs a claimed job to its outcome, renewing the lease meanwhile.
pub async fn run_claimed(
    state: &AppState,
    worker: &str,
    job: SyncJobRecord,
    shutdown: &CancellationToken,
) {
    let lease_lost = CancellationToken::new();
    let renewer = tokio::spawn(renew_lease(
        state.clone(),
        job.id.clone(),
        worker.to_owned(),
        lease_lost.clone(),
    ));
    let span = tracing::info_span!("sync", job_id = %job.id, platform = %job.platform, attempt = job.attempts);
    let outcome = tracing::Instrument::instrument(
        run(state, worker, &job, shutdown, &lease_lost),
        span.clone(),
    )
    .await;
    renewer.abort();
    let _enter = span.enter();
    let outcome = match outcome {
        Ended::LeaseLost => {
            tracing::warn!("lost the lease; another worker has the job");
            return;
        }
        Ended::Stopped => JobOutcome::Release,
        Ended::Done => JobOutcome::Succeeded,
        Ended::Failed(err) => failure(state, &job, &err).await,
    };
    let label = match &outcome {
        JobOutcome::Succeeded => "succeeded",
        JobOutcome::Failed { .. } => "failed",
        JobOutcome::Retry { .. } => "retry",
        JobOutcome::Release => "released",
    };
    state.metrics.sync_run(job.platform.as_str(), label);
    match &outcome {
        JobOutcome::Succeeded => tracing::info!("sync succeeded"),
        JobOutcome::Failed { code, message } => tracing::warn!(%code, %message, "sync failed"),
        JobOutcome::Retry { at, code, message } => {
            tracing::info!(%code, %message, retry_at = %at, "sync will retry")
        }
        JobOutcome::Release => tracing::info!("shutting down; job released"),
    }
    let ended = match &outcome {
        JobOutcome::Succeeded => Some(None),
        JobOutcome::Failed { code, message } => Some(Some((code.clone(), message.clone()))),
        JobOutcome::Retry { .. } | JobOutcome::Release => None,
    };
    match state
        .store
        .finish_sync_job(&job.id, worker, outcome, Utc::now())
        .await
    {
        Ok(true) => {
            if let Some(error) = ended {
                let error = error.as_ref().map(|(c, m)| (c.as_str(), m.as_str()));
                crate::destinations::events::sync_finished(state, &job, error).await;
            }
        }
        Ok(false) => tracing::warn!("lost the lease before recording the outcome"),
        Err(e) => {
            tracing::error!(error = %e, "recording the job's outcome failed; its lease will expire and it will be resumed")
        }
    }
}

async fn renew_lease(state: AppState, job_id: String, worker: String, lost: CancellationToken) {
    let every = state.config.sync_lease / 3;
    let lease = chrono::Duration::from_std(state.config.sync_lease)
        .unwrap_or_else(|_| chrono::Duration::seconds(30));
    loop {
        tokio::time::sleep(every).await;
        match state
            .store
            .renew_sync_lease(&job_id, &worker, Utc::now() + lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                lost.cancel();
                return;
            }
            // The database is briefly away: keep trying; the page commit checks the lease too.
            Err(e) => tracing::warn!(error = %e, "renewing the sync lease failed"),
        }
    }
}

enum Ended {
    Done,
    Stopped,
    LeaseLost,
    Failed(Error),
}

impl From<store::StoreError> for Ended {
    /// The database failing mid-run is retried like a platform outage (the checkpoint is safe);
    /// a corrupt row is a bug and fails the job.
    fn from(e: store::StoreError) -> Self {
        Ended::Failed(match e {
            store::StoreError::Corrupt(_) => e.into(),
            other => {
                tracing::warn!(error = %other, "the database failed during a sync run");
                Error::coded(
                    ErrorCode::ServiceUnavailable,
                    "The database did not answer while the sync ran; it resumes from its checkpoint.",
                )
            }
        })
    }
}

async fn run(
    state: &AppState,
    worker: &str,
    job: &SyncJobRecord,
    shutdown: &CancellationToken,
    lease_lost: &CancellationToken,
) -> Ended {
    let record = match state.store.get_integration_by_id(&job.integration_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Ended::LeaseLost, // deleted: its jobs went with it
        Err(e) => return e.into(),
    };
    if record.status == IntegrationStatus::ReauthRequired {
        return Ended::Failed(Error::coded(
            ErrorCode::InvalidCredentials,
            format!(
                "{} The publisher must reconnect {} before it can sync.",
                record
                    .status_reason
                    .as_deref()
                    .unwrap_or("The platform refused the stored credentials."),
                record.platform
            ),
        ));
    }
    let mut session = match sources::open(state, &record).await {
        Ok(s) => s,
        Err(e) => return Ended::Failed(e),
    };
    // Synced opt-outs go to this publisher's consent ledger (a stored id always parses).
    let publisher = PublisherId::parse(&record.publisher_id).ok();
    let mut counts = job.counts.clone();
    let mut deleted = job.deleted.clone();
    for kind in &job.kinds {
        let ended = sync_kind(
            state,
            worker,
            job,
            publisher.as_ref(),
            kind,
            session.as_mut(),
            &mut counts,
            &mut deleted,
            shutdown,
            lease_lost,
        )
        .await;
        if !matches!(ended, Ended::Done) {
            return ended;
        }
    }
    Ended::Done
}

#[allow(clippy::too_many_arguments)]
async fn sync_kind(
    state: &AppState,
    worker: &str,
    job: &SyncJobRecord,
    publisher: Option<&PublisherId>,
    kind: &str,
    session: &mut dyn SyncSession,
    counts: &mut BTreeMap<String, u64>,
    deleted: &mut BTreeMap<String, u64>,
    shutdown: &CancellationToken,
    lease_lost: &CancellationToken,
) -> Ended {
    let checkpoint = match state.store.get_checkpoint(&job.integration_id, kind).await {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return e.into(),
    };
    let resuming = checkpoint.run_job_id.as_deref() == Some(job.id.as_str());
    if resuming && checkpoint.run_done {
        return Ended::Done;
    }
    let (mut cursor, from_start) = if resuming {
        (checkpoint.run_cursor, checkpoint.run_from_start)
    } else if job.full || checkpoint.watermark.is_none() {
        (None, true)
    } else {
        (checkpoint.watermark, false)
    };
    counts.entry(kind.to_owned()).or_insert(0);
    // Pipelined: while page N commits, page N+1 is fetched. A fetched page is only ever
    // committed after the one before it, so the checkpoint order is unchanged.
    let mut fetched = session.page(kind, cursor.as_deref()).await;
    loop {
        if lease_lost.is_cancelled() {
            return Ended::LeaseLost;
        }
        if shutdown.is_cancelled() {
            return Ended::Stopped;
        }
        let page = match fetched {
            Ok(p) => p,
            Err(e) => return Ended::Failed(e),
        };
        let read = page.records.len() as u64;
        *counts.entry(kind.to_owned()).or_insert(0) += read;
        let records = page.records;
        let next = page.next;
        let opt_outs = match publisher {
            Some(p) => feed::read_opt_outs(p, job.platform, kind, session, &records).await,
            None => Vec::new(),
        };
        // After the last page the listing resumes where that page began: read again, it
        // upserts the same records, and the kind then finishes.
        let commit = state.store.commit_sync_page(PageCommit {
            job_id: job.id.clone(),
            worker: worker.to_owned(),
            integration_id: job.integration_id.clone(),
            kind: kind.to_owned(),
            records,
            next: next.clone().or_else(|| cursor.clone()),
            from_start,
            counts: counts.clone(),
            now: Utc::now(),
        });
        // The page's opt-outs are recorded before its commit (a crash between the two re-reads
        // the page, and recording again is a no-op), overlapping the next page's fetch too.
        let commit = async {
            if let Some(p) = publisher.filter(|_| !opt_outs.is_empty()) {
                feed::from_synced_records(state, p, job.platform, &opt_outs).await;
            }
            commit.await
        };
        let committed = match &next {
            Some(n) => {
                let (committed, after) = tokio::join!(commit, session.page(kind, Some(n)));
                fetched = after;
                committed
            }
            None => {
                fetched = Ok(Page::default());
                commit.await
            }
        };
        match committed {
            Ok(true) => state.metrics.synced(job.platform.as_str(), kind, read),
            Ok(false) => return Ended::LeaseLost,
            Err(e) => return e.into(),
        }
        let Some(next) = next else {
            let finished = state
                .store
                .finish_sync_kind(KindFinish {
                    job_id: job.id.clone(),
                    worker: worker.to_owned(),
                    integration_id: job.integration_id.clone(),
                    kind: kind.to_owned(),
                    watermark: page.watermark,
                    // History kinds keep what the platform no longer lists.
                    delete_unseen: from_start
                        && !domain::capabilities::sync_kind_keeps_history(kind),
                    listing_started: job.started_at.unwrap_or(job.created_at),
                    deleted: deleted.clone(),
                    now: Utc::now(),
                })
                .await;
            return match finished {
                Ok(Some(n)) => {
                    *deleted.entry(kind.to_owned()).or_insert(0) += n;
                    Ended::Done
                }
                Ok(None) => Ended::LeaseLost,
                Err(e) => e.into(),
            };
        };
        cursor = Some(next);
    }
}

/// The outcome of a failed run: retry later, or fail (marking the integration when the
/// credentials are refused).
async fn failure(state: &AppState, job: &SyncJobRecord, err: &Error) -> JobOutcome {
    let code = err.code().as_str().to_owned();
    let message = err.public_message().into_owned();
    if let Some(cause) = err.cause_chain() {
        tracing::warn!(%code, %cause, "sync run failed");
    }
    // The error's own retry flag decides (a connector that knows retrying cannot help says so,
    // whatever its public code).
    if err.is_retryable() && job.attempts < MAX_ATTEMPTS {
        let at = Utc::now()
            + chrono::Duration::from_std(backoff(job.attempts, err.retry_after()))
                .unwrap_or_else(|_| chrono::Duration::seconds(60));
        return JobOutcome::Retry { at, code, message };
    }
    if err.code() == ErrorCode::InvalidCredentials {
        let reason = format!("{message} Reconnect to resume syncing.");
        if let Err(e) = state
            .store
            .set_integration_status(
                &job.integration_id,
                IntegrationStatus::ReauthRequired,
                Some(&reason),
            )
            .await
        {
            tracing::error!(error = %e, "marking the integration reauth_required failed");
        } else {
            crate::destinations::events::reauth_required(
                state,
                &job.integration_id,
                job.platform,
                &reason,
            )
            .await;
        }
    }
    JobOutcome::Failed { code, message }
}

/// Exponential backoff, jittered between half and all of 5 s, 10 s, 20 s … capped at 10 min,
/// never shorter than the platform's `Retry-After`.
pub fn backoff(attempts: i32, retry_after: Option<Duration>) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 8) - 1).unwrap_or(0);
    let ceiling = Duration::from_secs(5 * 2u64.pow(exp)).min(Duration::from_secs(600));
    let jittered = ceiling.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
    jittered.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        for attempts in 1..=10 {
            let b = backoff(attempts, None);
            let ceiling = Duration::from_secs(5 * 2u64.pow((attempts.min(8) - 1) as u32))
                .min(Duration::from_secs(600));
            assert!(b <= ceiling && b >= ceiling / 2, "{attempts}: {b:?}");
        }
        assert!(backoff(1, Some(Duration::from_secs(90))) >= Duration::from_secs(90));
    }
}
