//! The per-integration queue of webhook work and its allowance: data only, no I/O (see
//! [`super::work`] for what runs it).

use std::{
    collections::{BTreeMap, HashMap},
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota};

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
pub const CONTACTS: &str = "contacts";

/// Work queued per integration, and the allowance its re-reads draw on.
pub struct HookWork {
    queues: Mutex<HashMap<String, Queue>>,
    pub allowance: DefaultKeyedRateLimiter<String>,
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

pub enum Step {
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
    pub fn enqueue(&self, integration_id: &str, ids: Vec<String>, deleted: bool) -> bool {
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
    pub fn next(&self, integration_id: &str) -> Step {
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
    pub fn owe(&self, integration_id: &str, full: bool) {
        self.lock()
            .entry(integration_id.to_owned())
            .or_default()
            .owe(full);
    }

    /// Drops everything queued for the integration (it cannot be worked on).
    pub fn abandon(&self, integration_id: &str) {
        if let Some(q) = self.lock().get_mut(integration_id) {
            q.ids.clear();
            q.owed_full = false;
            q.owed_incremental = false;
        }
    }
}

impl Queue {
    pub fn owe(&mut self, full: bool) {
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
pub fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
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
