//! The consent job worker: claims the durable opt-out and erasure jobs the ledger queues (any
//! replica may; the store's lease decides who runs one), runs each through the platform's
//! session (`PlatformSession::opt_out` / `erase`, inside the platform's rate budgets), and
//! records the outcome on the job and its ledger row in one write.
//!
//! A retryable failure (the platform's 429 or outage after the connector's own quick retries)
//! is tried again with backoff, at most [`MAX_ATTEMPTS`] runs; anything else, or the last
//! retry, is `failed` with the reason. A platform disconnected since the job was queued fails it
//! at once. The address never reaches a log line ([`super::email_ref`]).

use std::time::Duration;

use chrono::Utc;
use domain::{
    PublisherId,
    consent::{Applied, OptOut, Reason},
};
use store::{ConsentJob, ConsentJobKind, ConsentOutcome};
use tokio_util::sync::CancellationToken;

use super::email_ref;
use crate::{error::Error, platforms, state::AppState};

/// Runs of one job before a retryable error fails it for good.
pub const MAX_ATTEMPTS: u32 = 6;
/// How often an idle worker looks for due jobs.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How long a claimed job is ours: far longer than one opt-out or erasure takes (a few calls).
const LEASE: Duration = Duration::from_secs(120);

/// Spawns the consent worker; it stops when `shutdown` is cancelled.
pub fn spawn(state: &AppState, shutdown: &CancellationToken) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    let shutdown = shutdown.clone();
    let worker = format!("consent-{}", crate::sync::engine::worker_name(0));
    tokio::spawn(async move { work(state, worker, shutdown).await })
}

/// Claim, run, repeat, until shutdown.
pub async fn work(state: AppState, worker: String, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match run_next(&state, &worker).await {
            Ok(true) => {}
            Ok(false) => {
                tokio::select! {
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    () = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(%worker, error = %e, "claiming a consent job failed; retrying");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
}

/// Claims and runs one due job; answers whether there was one.
pub async fn run_next(state: &AppState, worker: &str) -> Result<bool, store::StoreError> {
    run_next_at(state, worker, Utc::now()).await
}

/// [`run_next`] as if it were `now`: tests move the clock past a retry's backoff with it.
pub async fn run_next_at(
    state: &AppState,
    worker: &str,
    now: chrono::DateTime<Utc>,
) -> Result<bool, store::StoreError> {
    let lease = chrono::Duration::from_std(LEASE).unwrap_or_else(|_| chrono::Duration::minutes(2));
    let Some(job) = state
        .store
        .claim_consent_job(worker, now, now + lease)
        .await?
    else {
        return Ok(false);
    };
    let outcome = run(state, &job).await;
    let (label, error) = match &outcome {
        ConsentOutcome::Done { .. } => ("done", None),
        ConsentOutcome::Retry { error, .. } => ("retry", Some(error.as_str())),
        ConsentOutcome::Failed { error } => ("failed", Some(error.as_str())),
    };
    tracing::info!(
        job = %job.id,
        kind = job.kind.as_str(),
        publisher = %job.publisher_id,
        platform = job.platform.as_str(),
        email = %job.email.as_deref().map(email_ref).unwrap_or_default(),
        attempts = job.attempts,
        outcome = label,
        error,
        "consent job ran"
    );
    if !state
        .store
        .finish_consent_job(&job.id, worker, outcome)
        .await?
    {
        tracing::warn!(job = %job.id, "consent job's lease was lost before it finished; another worker has it");
    }
    Ok(true)
}

/// One run of a claimed job.
async fn run(state: &AppState, job: &ConsentJob) -> ConsentOutcome {
    let Some(email) = job.email.clone() else {
        return ConsentOutcome::Failed {
            error: "the job no longer holds its address".to_owned(),
        };
    };
    let publisher = match PublisherId::parse(&job.publisher_id) {
        Ok(p) => p,
        Err(e) => {
            return ConsentOutcome::Failed {
                error: format!("stored publisher id is invalid: {e}"),
            };
        }
    };
    let applied = async {
        let mut session = platforms::open_for(state, &publisher, job.platform).await?;
        match job.kind {
            ConsentJobKind::OptOut => {
                let opt_out = OptOut {
                    email,
                    reason: job.reason.unwrap_or(Reason::Manual),
                };
                session.opt_out(state, &opt_out).await
            }
            ConsentJobKind::Erase => session.erase(state, &email).await,
        }
    }
    .await;
    match applied {
        Ok(Applied::Done { detail }) => ConsentOutcome::Done { detail },
        Ok(Applied::NothingToDo { detail }) => ConsentOutcome::Done {
            detail: format!("nothing to do: {detail}"),
        },
        Err(e) => failure(job, &e),
    }
}

/// Retry later, or give up with the reason a person can act on.
fn failure(job: &ConsentJob, err: &Error) -> ConsentOutcome {
    let error = format!("{}: {}", err.code().as_str(), err.public_message());
    if let Some(cause) = err.cause_chain() {
        tracing::warn!(job = %job.id, code = err.code().as_str(), %cause, "consent job failed");
    }
    if err.is_retryable() && job.attempts < MAX_ATTEMPTS {
        let wait = crate::sync::engine::backoff(
            i32::try_from(job.attempts).unwrap_or(i32::MAX),
            err.retry_after(),
        );
        let next_at = Utc::now()
            + chrono::Duration::from_std(wait).unwrap_or_else(|_| chrono::Duration::minutes(1));
        return ConsentOutcome::Retry { next_at, error };
    }
    ConsentOutcome::Failed { error }
}
