//! The delivery worker: claims due messages (any replica may; the store's lease decides who
//! sends one), POSTs each, signed, to its destination, and records the attempt and the outcome.
//!
//! One claim loop per process hands messages to delivery tasks, at most [`IN_FLIGHT`] at once;
//! the store keeps each reader's order and each destination's in-flight limit
//! ([`PER_DESTINATION`]). A non-2xx answer, a timeout ([`TIMEOUT`]) or a refused connection is
//! retried on [`SCHEDULE`] (jittered); after its last attempt a message is `failed`, and a
//! destination failing every attempt for [`DISABLE_AFTER`] is disabled with the reason.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use rand::Rng as _;
use store::{Attempt, DeliveryOutcome, Destination, Message};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use url::Url;

pub use super::outbound::TIMEOUT;
use super::{guard, signing};
use crate::state::AppState;

/// The waits after the 1st, 2nd, … failed attempt (svix's schedule): eight attempts in all.
pub const SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// A destination failing every attempt this long is disabled.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);
/// Messages one destination may have in flight at once (across replicas).
pub const PER_DESTINATION: u32 = 8;
/// Deliveries one process runs at once.
pub const IN_FLIGHT: usize = 32;
/// How much of an answer is kept with the attempt.
pub const RESPONSE_KEPT: usize = 1024;
/// How much of an answer is read at most (the rest is dropped with the connection).
const RESPONSE_READ: usize = 64 * 1024;
/// How long a claimed message is ours: well past one attempt's timeout.
const LEASE: Duration = Duration::from_secs(60);
/// How often an idle worker looks for due messages another process queued.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Spawns the worker; it stops when `shutdown` is cancelled.
pub fn spawn(state: &AppState, shutdown: &CancellationToken) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    let shutdown = shutdown.clone();
    let worker = format!("deliver-{}", crate::sync::engine::worker_name(0));
    tokio::spawn(async move { work(state, worker, shutdown).await })
}

/// Claim, hand to a delivery task, repeat, until shutdown; then wait for the deliveries in
/// flight (each ends within [`TIMEOUT`]).
pub async fn work(state: AppState, worker: String, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while !shutdown.is_cancelled() {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let now = Utc::now();
        match claim(&state, &worker, now).await {
            Ok(Some(message)) => {
                let state = state.clone();
                let worker = worker.clone();
                tokio::spawn(async move {
                    if let Err(e) = deliver_claimed(&state, &worker, message, now).await {
                        tracing::warn!(error = %e, "recording a delivery failed; the lease will hand the message over");
                    }
                    drop(slot);
                    // A finished delivery frees a place in its destination's in-flight limit and
                    // may unblock its reader's next message: claim again now, not at the next poll.
                    state.outbound.wake();
                });
            }
            Ok(None) => {
                drop(slot);
                tokio::select! {
                    () = state.outbound.wakeup.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    () = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                drop(slot);
                tracing::warn!(%worker, error = %e, "claiming a message failed; retrying");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
    let _ = tokio::time::timeout(
        TIMEOUT + Duration::from_secs(1),
        slots.acquire_many(u32::try_from(IN_FLIGHT).unwrap_or(u32::MAX)),
    )
    .await;
}

async fn claim(
    state: &AppState,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<Option<Message>, store::StoreError> {
    let lease = chrono::Duration::from_std(LEASE).unwrap_or_else(|_| chrono::Duration::minutes(1));
    state
        .store
        .claim_message(worker, now, now + lease, PER_DESTINATION)
        .await
}

/// Claims and delivers one due message as if it were `now` (tests move the clock past a
/// retry's wait with it); answers whether there was one.
pub async fn run_next_at(
    state: &AppState,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<bool, store::StoreError> {
    let Some(message) = claim(state, worker, now).await? else {
        return Ok(false);
    };
    deliver_claimed(state, worker, message, now).await?;
    Ok(true)
}

/// One attempt of a claimed message, recorded with its outcome.
async fn deliver_claimed(
    state: &AppState,
    worker: &str,
    message: Message,
    now: DateTime<Utc>,
) -> Result<(), store::StoreError> {
    let attempt = match state
        .store
        .destination_by_id(&message.destination_id)
        .await?
    {
        Some(destination) => attempt(state, &destination, &message, now).await,
        // Deleted meanwhile: its messages went with it.
        None => return Ok(()),
    };
    let ok = attempt.status_code.is_some_and(|c| (200..300).contains(&c));
    let outcome = if ok {
        DeliveryOutcome::Succeeded
    } else {
        schedule(message.attempts, now)
    };
    let label = match outcome {
        DeliveryOutcome::Succeeded => "succeeded",
        DeliveryOutcome::Retry { .. } => "retry",
        DeliveryOutcome::Failed => "failed",
    };
    tracing::info!(
        message = %message.id,
        destination = %message.destination_id,
        event_type = %message.event_type,
        attempt = message.attempts,
        status = attempt.status_code,
        latency_ms = attempt.latency_ms,
        error = attempt.error.as_deref(),
        outcome = label,
        "destination delivery"
    );
    let disable_after =
        chrono::Duration::from_std(DISABLE_AFTER).unwrap_or_else(|_| chrono::Duration::days(5));
    let reason = format!(
        "DESTINATION_FAILING: every delivery has failed for {} days (last: {}). Fix the endpoint, then PATCH {{\"enabled\": true}}; pending messages resume.",
        DISABLE_AFTER.as_secs() / 86_400,
        describe(&attempt)
    );
    let finished = state
        .store
        .finish_message(
            &message.id,
            worker,
            attempt,
            outcome,
            disable_after,
            &reason,
        )
        .await?;
    if !finished.recorded {
        tracing::warn!(message = %message.id, "lost the message's lease before recording the attempt; another worker has it");
    }
    if finished.disabled {
        tracing::warn!(destination = %message.destination_id, "destination disabled: failing for {} days", DISABLE_AFTER.as_secs() / 86_400);
    }
    Ok(())
}

/// What happens after failed attempt number `attempts` (1-based): the next one on the
/// schedule, jittered by ±10 %, or `failed` after the last.
pub fn schedule(attempts: u32, now: DateTime<Utc>) -> DeliveryOutcome {
    let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    match SCHEDULE.get(index) {
        Some(wait) => {
            let jitter = rand::thread_rng().gen_range(0.9..1.1);
            let wait = wait.mul_f64(jitter);
            DeliveryOutcome::Retry {
                next_at: now
                    + chrono::Duration::from_std(wait)
                        .unwrap_or_else(|_| chrono::Duration::hours(10)),
            }
        }
        None => DeliveryOutcome::Failed,
    }
}

fn describe(a: &Attempt) -> String {
    match (a.status_code, &a.error) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "no answer".to_owned(),
    }
}

/// POSTs the message, signed with the destination's secret (and its previous one during a
/// rotation's overlap).
async fn attempt(
    state: &AppState,
    destination: &Destination,
    message: &Message,
    now: DateTime<Utc>,
) -> Attempt {
    let started = std::time::Instant::now();
    let failed = |error: String| Attempt {
        at: now,
        status_code: None,
        latency_ms: 0,
        response: None,
        error: Some(error),
    };
    let keys = match super::signing_keys(state, destination, Utc::now()) {
        Ok(keys) => keys,
        Err(e) => return failed(format!("the signing secret cannot be opened: {e}")),
    };
    let url = match Url::parse(&destination.url) {
        Ok(u) => u,
        Err(e) => return failed(format!("stored URL does not parse: {e}")),
    };
    if !state.outbound.allow_private && (url.scheme() != "https" || guard::literal_is_private(&url))
    {
        return failed(
            "the URL is not https:// to a public address (SHARPSEND_DESTINATIONS_ALLOW_PRIVATE is off)"
                .to_owned(),
        );
    }
    // The header carries the real time even under a test clock: receivers check it against
    // theirs.
    let timestamp = Utc::now().timestamp();
    let body = message.payload.as_bytes();
    let signature = signing::signature_header(&keys, &message.id, timestamp, body);
    let sent = state
        .outbound
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &message.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(message.payload.clone())
        .send()
        .await;
    let answer = match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = read_capped(resp).await;
            Attempt {
                at: now,
                status_code: Some(status),
                latency_ms: 0,
                response: (!text.is_empty()).then_some(text),
                error: None,
            }
        }
        Err(e) => failed(connection_error(e)),
    };
    Attempt {
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        ..answer
    }
}

/// The first [`RESPONSE_KEPT`] bytes of an answer (as text), reading at most
/// [`RESPONSE_READ`].
async fn read_capped(resp: reqwest::Response) -> String {
    let mut kept = Vec::with_capacity(RESPONSE_KEPT);
    let mut read = 0usize;
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = RESPONSE_KEPT.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        read += chunk.len();
        if read >= RESPONSE_READ {
            break;
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// A person-readable cause (without the URL's query, which may hold a token).
fn connection_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        return format!("timed out after {} s", TIMEOUT.as_secs());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_svixs_with_jitter_then_failed() {
        let now = Utc::now();
        for (i, wait) in SCHEDULE.iter().enumerate() {
            let attempt = u32::try_from(i + 1).unwrap();
            let DeliveryOutcome::Retry { next_at } = schedule(attempt, now) else {
                panic!("attempt {attempt} should be retried");
            };
            let got = (next_at - now).to_std().unwrap().as_secs_f64();
            let want = wait.as_secs_f64();
            assert!(
                got >= want * 0.9 - 0.01 && got <= want * 1.1 + 0.01,
                "{attempt}: {got} vs {want}"
            );
        }
        assert_eq!(schedule(8, now), DeliveryOutcome::Failed);
    }
}
