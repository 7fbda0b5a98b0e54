//! What each rate budget is doing, as this process sees it: requests sent per endpoint class and
//! credential, 429s received, turns the budget refused, and when a turn is next free.
//!
//! [`UpstreamClient`](crate::http::UpstreamClient) records every attempt here; the service shows
//! it per integration (`GET …/{platform}/limits`) and, summed over credentials, as Prometheus
//! gauges by platform and class. Entries are keyed by the budget key (a digest of the
//! credential, never the credential) and forget what is older than an hour, so memory stays
//! bounded by the credentials in use.
//!
//! With budgets shared through Redis the figures are still this process's own: another replica's
//! requests are not counted here (the next free turn they cause is, once this process waits).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use crate::rate::Rate;

/// 429s and refusals are kept this long.
pub const HISTORY: Duration = Duration::from_secs(3600);
/// Without a budget, "used now" counts the requests of this last window.
const UNBUDGETED_WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Slot {
    /// Requests sent (one per attempt), newest last, within the class's window.
    sent: VecDeque<Instant>,
    /// 429s received in the last hour.
    limited: VecDeque<Instant>,
    /// Turns the budget refused (the wait was longer than a call may wait) in the last hour.
    refused: VecDeque<Instant>,
    /// GCRA theoretical arrival time of this process's own requests.
    tat: Option<Instant>,
    /// The platform asked us to wait until then (a 429's `Retry-After`), or our budget said a
    /// turn was that far away.
    blocked_until: Option<Instant>,
    /// Last activity: idle slots are dropped after [`HISTORY`].
    touched: Option<Instant>,
}

/// One endpoint class of one credential (or of all credentials, for [`LimitsTracker::totals`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassLimits {
    pub class: &'static str,
    /// The proactive budget, if the class has one.
    pub rate: Option<Rate>,
    /// Requests sent in the budget's window (its `per`; the last minute without a budget).
    pub used: u64,
    /// The window `used` counts.
    pub window: Duration,
    /// 429s the platform answered in the last hour.
    pub rate_limited_last_hour: u64,
    /// Calls our budget refused in the last hour (their wait exceeded what a call may wait).
    pub refused_last_hour: u64,
    /// When the next request may go without waiting (`now` when it may go at once).
    pub next_free_at: SystemTime,
}

/// The figures of one platform's budgets.
pub struct LimitsTracker {
    budgets: Vec<(&'static str, Rate)>,
    slots: Mutex<HashMap<(&'static str, String), Slot>>,
}

impl std::fmt::Debug for LimitsTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitsTracker")
            .field("classes", &self.budgets.len())
            .finish_non_exhaustive()
    }
}

fn prune(q: &mut VecDeque<Instant>, now: Instant, keep: Duration) {
    while q.front().is_some_and(|t| now.duration_since(*t) > keep) {
        q.pop_front();
    }
}

fn to_system(at: Instant, now: Instant, wall: SystemTime) -> SystemTime {
    wall + at.saturating_duration_since(now)
}

impl LimitsTracker {
    pub fn new(budgets: &[(&'static str, Rate)]) -> Self {
        Self {
            budgets: budgets.to_vec(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn rate(&self, class: &str) -> Option<Rate> {
        self.budgets
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, r)| *r)
    }

    fn window(&self, class: &str) -> Duration {
        self.rate(class).map_or(UNBUDGETED_WINDOW, |r| r.per)
    }

    fn with_slot(&self, class: &'static str, key: &str, f: impl FnOnce(&mut Slot, Instant)) {
        let now = Instant::now();
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget idle credentials now and then (cheap: at most one pass per call).
        if slots.len() > 64 {
            slots.retain(|_, s| s.touched.is_some_and(|t| now.duration_since(t) < HISTORY));
        }
        let slot = slots.entry((class, key.to_owned())).or_default();
        slot.touched = Some(now);
        f(slot, now);
    }

    /// One request of `class` went out for `key`.
    pub fn sent(&self, class: &'static str, key: &str) {
        let window = self.window(class);
        let rate = self.rate(class);
        self.with_slot(class, key, |s, now| {
            s.sent.push_back(now);
            prune(&mut s.sent, now, window);
            if let Some(rate) = rate {
                let tat = s.tat.map_or(now, |t| t.max(now));
                s.tat = Some(tat + rate.interval());
            }
        });
    }

    /// The platform answered 429 (asking to wait `after`, when it said).
    pub fn rate_limited(&self, class: &'static str, key: &str, after: Option<Duration>) {
        self.with_slot(class, key, |s, now| {
            s.limited.push_back(now);
            prune(&mut s.limited, now, HISTORY);
            if let Some(after) = after {
                let until = now + after;
                s.blocked_until = Some(s.blocked_until.map_or(until, |b| b.max(until)));
            }
        });
    }

    /// Our budget refused a turn that was `after` away.
    pub fn refused(&self, class: &'static str, key: &str, after: Duration) {
        self.with_slot(class, key, |s, now| {
            s.refused.push_back(now);
            prune(&mut s.refused, now, HISTORY);
            let until = now + after;
            s.blocked_until = Some(s.blocked_until.map_or(until, |b| b.max(until)));
        });
    }

    fn figures(&self, class: &'static str, slot: Option<&Slot>, now: Instant) -> ClassLimits {
        let wall = SystemTime::now();
        let rate = self.rate(class);
        let window = self.window(class);
        let count = |q: &VecDeque<Instant>, keep: Duration| {
            q.iter().filter(|t| now.duration_since(**t) <= keep).count() as u64
        };
        let mut next = now;
        if let Some(s) = slot {
            if let (Some(tat), Some(rate)) = (s.tat, rate) {
                let tolerance = rate.interval() * rate.burst().saturating_sub(1);
                next = next.max(tat.checked_sub(tolerance).unwrap_or(now));
            }
            if let Some(b) = s.blocked_until {
                next = next.max(b);
            }
        }
        ClassLimits {
            class,
            rate,
            used: slot.map_or(0, |s| count(&s.sent, window)),
            window,
            rate_limited_last_hour: slot.map_or(0, |s| count(&s.limited, HISTORY)),
            refused_last_hour: slot.map_or(0, |s| count(&s.refused, HISTORY)),
            next_free_at: to_system(next, now, wall),
        }
    }

    /// Every budgeted class, plus any other class that was used, for the credentials `keys`
    /// (summed; the latest next-free time): what one integration's calls did.
    pub fn snapshot(&self, keys: &[&str]) -> Vec<ClassLimits> {
        let now = Instant::now();
        let slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut classes: Vec<&'static str> = self.budgets.iter().map(|(c, _)| *c).collect();
        for (class, key) in slots.keys() {
            if keys.contains(&key.as_str()) && !classes.contains(class) {
                classes.push(class);
            }
        }
        classes
            .into_iter()
            .map(|class| {
                let mut total = self.figures(class, None, now);
                for key in keys {
                    let one = self.figures(class, slots.get(&(class, (*key).to_owned())), now);
                    total = merge(total, one);
                }
                total
            })
            .collect()
    }

    /// Every class, summed over all credentials (for metrics: no credential appears).
    pub fn totals(&self) -> Vec<ClassLimits> {
        let now = Instant::now();
        let slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut classes: Vec<&'static str> = self.budgets.iter().map(|(c, _)| *c).collect();
        for (class, _) in slots.keys() {
            if !classes.contains(class) {
                classes.push(class);
            }
        }
        classes
            .into_iter()
            .map(|class| {
                slots
                    .iter()
                    .filter(|((c, _), _)| *c == class)
                    .fold(self.figures(class, None, now), |acc, (_, s)| {
                        merge(acc, self.figures(class, Some(s), now))
                    })
            })
            .collect()
    }
}

fn merge(a: ClassLimits, b: ClassLimits) -> ClassLimits {
    ClassLimits {
        used: a.used + b.used,
        rate_limited_last_hour: a.rate_limited_last_hour + b.rate_limited_last_hour,
        refused_last_hour: a.refused_last_hour + b.refused_last_hour,
        next_free_at: a.next_free_at.max(b.next_free_at),
        ..a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sends_429s_and_refusals_per_key() {
        let t = LimitsTracker::new(&[("export", Rate::per_minute(4))]);
        for _ in 0..4 {
            t.sent("export", "k1");
        }
        t.sent("export", "k2");
        t.rate_limited("export", "k1", None);
        t.refused("export", "k1", Duration::from_secs(30));
        let mine = t.snapshot(&["k1"]);
        assert_eq!(mine.len(), 1);
        let e = &mine[0];
        assert_eq!(e.used, 4);
        assert_eq!(e.window, Duration::from_secs(60));
        assert_eq!(e.rate_limited_last_hour, 1);
        assert_eq!(e.refused_last_hour, 1);
        // Four sends at 15 s spacing with a burst of four: the next turn is ~15 s away, the
        // refusal said 30 s: the later one.
        let wait = e
            .next_free_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        assert!(wait > Duration::from_secs(20), "{wait:?}");
        let other = &t.snapshot(&["k2"])[0];
        assert_eq!((other.used, other.rate_limited_last_hour), (1, 0));
        assert!(other.next_free_at <= SystemTime::now() + Duration::from_millis(5));
        let all = &t.totals()[0];
        assert_eq!(all.used, 5);
    }

    #[test]
    fn unbudgeted_classes_appear_once_used() {
        let t = LimitsTracker::new(&[("a", Rate::per_second(10))]);
        assert_eq!(t.snapshot(&["k"]).len(), 1);
        t.sent("b", "k");
        t.rate_limited("b", "k", Some(Duration::from_secs(10)));
        let s = t.snapshot(&["k"]);
        assert_eq!(s.len(), 2);
        let b = s.iter().find(|c| c.class == "b").unwrap();
        assert_eq!((b.rate, b.used, b.rate_limited_last_hour), (None, 1, 1));
        assert!(b.next_free_at > SystemTime::now() + Duration::from_secs(8));
        // Another credential's classes do not show.
        assert_eq!(t.snapshot(&["other"]).len(), 1);
    }
}
