//! The upstream work Keap deliveries cause, bounded per integration (issue 14, items 1 and 2).
//!
//! Keap deliveries carry ids only and no signature, so the contacts they name are re-read from
//! Keap. Done naively that makes the webhook URL an amplifier: one 3,000-id delivery meant 3,000
//! reads with the publisher's token. Here a delivery only *queues* work, after it is answered:
//!
//! * **Re-reads** of named contacts run in one drain task per integration. Each read first takes
//!   a turn from a per-integration allowance ([`READ_BURST`] at once, then one per
//!   [`READ_EVERY`]) and then from the connector's own rate budget for the credential. An id
//!   already queued is not queued again, and at most [`COALESCE_ABOVE`] ids wait.
//! * **Coalescing**: a delivery naming more than [`COALESCE_ABOVE`] contacts, and whatever
//!   overflows the queue (a flood of small deliveries), becomes one `contacts` sync job of the
//!   integration instead: incremental for `contact.add`/`contact.edit`, a full listing for
//!   `contact.delete` (a full listing marks the contacts Keap no longer lists as deleted). The
//!   store keeps one active job per integration, so nothing is added while one is queued or
//!   running; this module asks for a job at most once per [`SYNC_EVERY`] (a full one at most once
//!   per [`FULL_SYNC_EVERY`]) and keeps a request made inside that window until it ends.
//! * **Deletes are hints** (item 1): a contact is marked deleted only when Keap answers 404 for
//!   its id (or a full listing no longer has it). A 200 means it is alive: it is upserted. Delete
//!   hints are first narrowed to the contacts we hold, so ids we never synced cost nothing.
//!
//! So a delivery of more than [`COALESCE_ABOVE`] contacts costs no per-id read, only (a share
//! of) one contacts sync; a smaller one at most its own ids; and a sustained flood at most
//! [`READ_BURST`] reads, then one per [`READ_EVERY`], and one sync per [`SYNC_EVERY`], per
//! integration. The allowance is per process (replicas each have their own).

use std::{
    collections::{BTreeMap, HashMap},
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use domain::{ErrorCode, Platform, PublisherId};
use governor::{DefaultKeyedRateLimiter, Quota};
use store::IntegrationRecord;

use crate::{error::Result, platforms::keap::tokens, state::AppState};

/// Deliveries naming more contacts than this, and queue overflow, become one sync job.
pub const COALESCE_ABOVE: usize = 25;
/// Re-reads an integration may make at once.
pub const READ_BURST: u32 = 25;
/// After the burst, one re-read per this, per integration.
pub const READ_EVERY: Duration = Duration::from_secs(2);
/// At most one coalesced sync request per integration in this window.
pub const SYNC_EVERY: Duration = Duration::from_secs(60);
/// At most one coalesced *full* contacts listing per integration in this window.
pub const FULL_SYNC_EVERY: Duration = Duration::from_secs(600);
/// How often a drain task with only a deferred sync looks again (new ids are read meanwhile).
const OWED_POLL: Duration = Duration::from_millis(500);

/// The sync kind a coalesced request runs.
const CONTACTS: &str = "contacts";

/// Work queued per integration, and the allowance its re-reads draw on.
pub struct HookWork {
    queues: Mutex<HashMap<String, Queue>>,
    allowance: DefaultKeyedRateLimiter<String>,
}

#[derive(Default)]
struct Queue {
    /// Contact id → whether a delete hint named it.
    ids: BTreeMap<String, bool>,
    /// A coalesced incremental contacts sync is owed.
    owed_incremental: bool,
    /// A coalesced full contacts listing is owed (covers an incremental one).
    owed_full: bool,
    last_sync: Option<Instant>,
    last_full: Option<Instant>,
    /// A drain task runs for this integration.
    draining: bool,
}

enum Step {
    Read { id: String },
    Sync { full: bool },
    Wait(Duration),
    Done,
}

impl Default for HookWork {
    fn default() -> Self {
        Self::new()
    }
}

impl HookWork {
    pub fn new() -> Self {
        let burst = NonZeroU32::new(READ_BURST).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(READ_EVERY)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            queues: Mutex::new(HashMap::new()),
            allowance: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether nothing is queued or running for the integration (a sync owed for later counts
    /// as queued). For tests and diagnostics.
    pub fn is_idle(&self, integration_id: &str) -> bool {
        self.lock().get(integration_id).is_none_or(|q| !q.draining)
    }

    /// Contact ids waiting to be re-read for the integration.
    pub fn queued(&self, integration_id: &str) -> usize {
        self.lock().get(integration_id).map_or(0, |q| q.ids.len())
    }

    /// Queues `ids` (or a sync, when there are too many); answers whether a drain task must be
    /// started.
    fn enqueue(&self, integration_id: &str, ids: Vec<String>, deleted: bool) -> bool {
        let mut queues = self.lock();
        let q = queues.entry(integration_id.to_owned()).or_default();
        if ids.len() > COALESCE_ABOVE {
            q.owe(deleted);
        } else {
            for id in ids {
                if let Some(d) = q.ids.get_mut(&id) {
                    *d |= deleted;
                } else if q.ids.len() < COALESCE_ABOVE {
                    q.ids.insert(id, deleted);
                } else {
                    q.owe(deleted);
                }
            }
        }
        let start = !q.draining && (!q.ids.is_empty() || q.owes());
        if start {
            q.draining = true;
        }
        start
    }

    /// What the drain task does next; `Done` also ends its turn (the next delivery starts one).
    fn next(&self, integration_id: &str) -> Step {
        let mut queues = self.lock();
        let Some(q) = queues.get_mut(integration_id) else {
            return Step::Done;
        };
        if let Some((id, _)) = q.ids.pop_first() {
            return Step::Read { id };
        }
        if q.owes() {
            let now = Instant::now();
            let left = |t: Option<Instant>, every: Duration| {
                t.map_or(Duration::ZERO, |t| every.saturating_sub(now - t))
            };
            let any = left(q.last_sync, SYNC_EVERY);
            let full = any.max(left(q.last_full, FULL_SYNC_EVERY));
            // A full listing covers an incremental one; an owed incremental one does not wait
            // for the full listing's longer window.
            let step = if q.owed_full && full.is_zero() {
                q.owed_full = false;
                q.owed_incremental = false;
                q.last_full = Some(now);
                true
            } else if q.owed_incremental && any.is_zero() {
                q.owed_incremental = false;
                false
            } else {
                let wait = if q.owed_incremental { any } else { full };
                return Step::Wait(wait.min(OWED_POLL));
            };
            q.last_sync = Some(now);
            return Step::Sync { full: step };
        }
        q.draining = false;
        Step::Done
    }

    /// Records that a sync is still owed (the request could not be made or was not enough).
    fn owe(&self, integration_id: &str, full: bool) {
        self.lock()
            .entry(integration_id.to_owned())
            .or_default()
            .owe(full);
    }

    /// Drops everything queued for the integration (it cannot be worked on).
    fn abandon(&self, integration_id: &str) {
        if let Some(q) = self.lock().get_mut(integration_id) {
            q.ids.clear();
            q.owed_full = false;
            q.owed_incremental = false;
        }
    }
}

impl Queue {
    fn owe(&mut self, full: bool) {
        if full {
            self.owed_full = true;
        } else {
            self.owed_incremental = true;
        }
    }

    fn owes(&self) -> bool {
        self.owed_full || self.owed_incremental
    }
}

/// A Keap contact id as a delivery may name it: digits only (anything else cannot be one, and
/// is dropped before it reaches a URL or a log).
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Takes the contact ids a delivery named (`deleted` for `contact.delete`) and queues the
/// bounded work for them; nothing upstream happens before it returns (the drain task does it).
pub async fn submit(state: &AppState, record: &IntegrationRecord, ids: Vec<String>, deleted: bool) {
    let mut ids: Vec<String> = ids.into_iter().filter(|id| plausible_id(id)).collect();
    ids.sort_unstable();
    ids.dedup();
    if deleted && !ids.is_empty() {
        // Only contacts we hold can be marked deleted: hints about others cost nothing.
        match state.store.get_records(&record.id, CONTACTS, &ids).await {
            Ok(held) => ids = held.into_iter().map(|r| r.platform_id).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "Keap hook: held contacts not looked up; the delete hints are left to a full sync");
                ids.clear();
                state.hook_work.owe(&record.id, true);
            }
        }
    }
    let named = ids.len();
    if state.hook_work.enqueue(&record.id, ids, deleted) {
        tracing::debug!(named, deleted, "Keap hook: contact work queued");
        let state = state.clone();
        let integration_id = record.id.clone();
        let publisher = record.publisher_id.clone();
        tokio::spawn(async move { drain(&state, &integration_id, &publisher).await });
    }
}

/// Works one integration's queue until it is empty.
async fn drain(state: &AppState, integration_id: &str, publisher: &str) {
    let work = &state.hook_work;
    let publisher = match PublisherId::parse(publisher) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "Keap hook: stored publisher id unreadable");
            work.abandon(integration_id);
            while !matches!(work.next(integration_id), Step::Done) {}
            return;
        }
    };
    let mut session: Option<tokens::Session> = None;
    let (mut read, mut alive, mut gone) = (0u32, 0u32, 0u32);
    loop {
        match work.next(integration_id) {
            Step::Read { id } => {
                work.allowance
                    .until_key_ready(&integration_id.to_owned())
                    .await;
                read += 1;
                match reread(state, &publisher, &mut session, &id).await {
                    Ok(true) => alive += 1,
                    Ok(false) => gone += 1,
                    Err(e) if stops(e.code()) => {
                        tracing::warn!(error = %e, "Keap hook: contacts not re-read; queue dropped");
                        work.abandon(integration_id);
                    }
                    Err(e) => {
                        // Left to the coalesced sync (it retries with backoff).
                        tracing::warn!(error = %e, "Keap hook: contact not re-read; a sync will catch up");
                        session = None;
                        work.owe(integration_id, false);
                    }
                }
            }
            Step::Sync { full } => request_sync(state, integration_id, &publisher, full).await,
            Step::Wait(d) => tokio::time::sleep(d).await,
            Step::Done => break,
        }
    }
    if read > 0 {
        tracing::info!(
            publisher = %publisher,
            read,
            alive,
            deleted = gone,
            "Keap hook: contacts re-read"
        );
    }
}

/// Errors after which nothing queued for the integration can succeed.
fn stops(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidCredentials | ErrorCode::IntegrationNotFound | ErrorCode::NotFound
    )
}

/// Re-reads one contact: Keap's 200 upserts it (`true`), Keap's 404 marks it deleted (`false`).
async fn reread(
    state: &AppState,
    publisher: &PublisherId,
    session: &mut Option<tokens::Session>,
    id: &str,
) -> Result<bool> {
    let s = match session {
        Some(s) => s,
        None => session.insert(tokens::session(state, publisher).await?),
    };
    let keap = &state.connectors.keap;
    let found = tokens::call(
        state,
        s,
        |cred| async move { keap.get_contact(&cred, id).await },
    )
    .await?;
    let integration_id = s.record.id.clone();
    match found {
        Some((contact, raw)) => {
            let record = store::NewRecord::from_values(contact.id.clone(), &contact, &raw)
                .map_err(crate::error::Error::internal)?;
            state
                .store
                .upsert_records(&integration_id, CONTACTS, vec![record])
                .await?;
            Ok(true)
        }
        None => {
            state
                .store
                .delete_records(&integration_id, CONTACTS, &[id.to_owned()])
                .await?;
            Ok(false)
        }
    }
}

/// Asks for one contacts sync of the integration; an active job stands for it, unless a full
/// listing is needed and the active job is not one (then it is asked for again later).
async fn request_sync(state: &AppState, integration_id: &str, publisher: &PublisherId, full: bool) {
    let work = &state.hook_work;
    match crate::sync::jobs::request(
        state,
        publisher,
        Platform::Keap,
        Some(vec![CONTACTS.to_owned()]),
        full,
    )
    .await
    {
        Ok((job, created)) => {
            tracing::info!(job_id = %job.id, created, full, "Keap hook: deliveries coalesced into a contacts sync");
            if !created && full && !(job.full && job.kinds.iter().any(|k| k == CONTACTS)) {
                work.owe(integration_id, true);
            } else if !created && !job.kinds.iter().any(|k| k == CONTACTS) {
                work.owe(integration_id, false);
            }
        }
        Err(e) if stops(e.code()) => {
            tracing::warn!(error = %e, "Keap hook: no contacts sync possible; queue dropped");
            work.abandon(integration_id);
        }
        Err(e) => {
            tracing::warn!(error = %e, "Keap hook: contacts sync not queued; trying again later");
            work.owe(integration_id, full);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|i| i.to_string()).collect()
    }

    #[test]
    fn small_deliveries_queue_ids_once_and_overflow_into_one_sync() {
        let w = HookWork::new();
        assert!(
            w.enqueue("i", ids(0..10), false),
            "first work starts a drain"
        );
        assert!(!w.enqueue("i", ids(5..15), false), "a drain already runs");
        assert_eq!(w.queued("i"), 15, "overlapping ids are queued once");
        assert!(!w.enqueue("i", ids(100..120), true));
        assert_eq!(w.queued("i"), COALESCE_ABOVE, "the queue is bounded");
        let mut reads = 0;
        let mut syncs = Vec::new();
        loop {
            match w.next("i") {
                Step::Read { .. } => reads += 1,
                Step::Sync { full } => syncs.push(full),
                Step::Wait(_) => panic!("no sync was made yet"),
                Step::Done => break,
            }
        }
        assert_eq!(reads, COALESCE_ABOVE);
        assert_eq!(
            syncs,
            vec![true],
            "the overflow (delete hints) became one full listing"
        );
        assert!(w.is_idle("i"));
        // Inside the window another sync is deferred, not made.
        assert!(w.enqueue("i", ids(0..1000), false));
        assert!(matches!(w.next("i"), Step::Wait(_)));
        // Once the short window has passed, an owed incremental sync does not wait for the
        // full listing's longer one; the full listing stays owed.
        {
            let mut queues = w.lock();
            let q = queues.get_mut("i").unwrap();
            q.last_sync = Instant::now().checked_sub(SYNC_EVERY);
            q.owed_full = true;
        }
        assert!(matches!(w.next("i"), Step::Sync { full: false }));
        assert!(
            matches!(w.next("i"), Step::Wait(_)),
            "the full listing waits"
        );
    }

    #[test]
    fn only_digit_ids_are_kept() {
        assert!(plausible_id("12345"));
        assert!(!plausible_id(""));
        assert!(!plausible_id(".."));
        assert!(!plausible_id("1/2"));
        assert!(!plausible_id("1\n2"));
        assert!(!plausible_id(&"9".repeat(21)));
    }
}
