//! Budgets driven by Keap's own headers (platforms/keap.md §6): every answer tells how much of
//! the per-minute throttle (`x-keap-product-throttle-*`), the daily quota
//! (`x-keap-product-quota-*`, resetting at `expiry-time`) and the tenant's windows
//! (`x-keap-tenant-throttle-*`, scalars or pipe-joined `minute|day` lists) is left. When a window
//! runs low, the remaining calls are spread over the time until it resets, so a busy app slows
//! down smoothly instead of meeting a quota wall; other processes sharing the app are seen
//! through the same headers.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use reqwest::header::HeaderMap;

/// A window is low when less than this share of it is left.
const LOW_SHARE: f64 = 0.10;
/// … or when fewer calls than this are left (small PAT/SAK windows).
const LOW_CALLS: u64 = 5;

/// One quota window as the headers describe it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Window {
    limit: u64,
    available: u64,
    /// Until the window has room again (its reset, or its length when it rolls).
    reset_in: Duration,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)?.to_str().ok().map(str::trim)
}

/// A header's values: `10000|250000` → two, `1500` → one.
fn list(h: &HeaderMap, name: &str) -> Vec<String> {
    header(h, name)
        .map(|v| v.split('|').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default()
}

fn unit_secs(unit: &str) -> Option<u64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "second" | "seconds" => 1,
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3_600,
        "day" | "days" => 86_400,
        "week" | "weeks" => 604_800,
        "month" | "months" => 2_592_000,
        _ => return None,
    })
}

/// The windows of one header family (`x-keap-product-throttle`, …), scalar or pipe-joined.
fn windows(h: &HeaderMap, family: &str, now: SystemTime) -> Vec<Window> {
    let limits = list(h, &format!("{family}-limit"));
    let available = list(h, &format!("{family}-available"));
    let units = list(h, &format!("{family}-time-unit"));
    let intervals = list(h, &format!("{family}-interval"));
    let expiry = list(h, &format!("{family}-expiry-time"));
    let mut out = Vec::new();
    for (i, (limit, avail)) in limits.iter().zip(&available).enumerate() {
        let (Ok(limit), Ok(avail)) = (limit.parse::<u64>(), avail.parse::<i64>()) else {
            continue;
        };
        let length = units
            .get(i)
            .and_then(|u| unit_secs(u))
            .map(|secs| {
                let n = intervals
                    .get(i)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(1);
                Duration::from_secs(secs.saturating_mul(n.max(1)))
            })
            .unwrap_or(Duration::from_secs(60));
        // `expiry-time` is epoch milliseconds (observed); a value too small to be one (the docs'
        // example "158663200") is ignored.
        let reset_in = expiry
            .get(i)
            .and_then(|e| e.parse::<u64>().ok())
            .filter(|ms| *ms > 1_000_000_000_000)
            .map(|ms| {
                (SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO)
            })
            .map(|d| d.min(length))
            .unwrap_or(length);
        out.push(Window {
            limit,
            available: u64::try_from(avail).unwrap_or(0),
            reset_in,
        });
    }
    out
}

/// How far apart calls should be, given an answer's headers: `None` while every window has
/// room; otherwise the remaining calls of the tightest window spread over its time to reset
/// (a whole reset period when nothing is left).
pub fn spacing(h: &HeaderMap, now: SystemTime) -> Option<Duration> {
    [
        "x-keap-product-throttle",
        "x-keap-product-quota",
        "x-keap-tenant-throttle",
    ]
    .iter()
    .flat_map(|family| windows(h, family, now))
    .filter(|w| {
        w.limit > 0
            && (w.available < LOW_CALLS || (w.available as f64) < w.limit as f64 * LOW_SHARE)
    })
    .map(|w| {
        if w.available == 0 {
            w.reset_in
        } else {
            w.reset_in / u32::try_from(w.available).unwrap_or(u32::MAX)
        }
    })
    .max()
}

/// How long to wait after a 429 fault before trying again: a quota violation waits for the
/// window the headers show exhausted; a spike arrest (or anything unknown) answers `None`, for
/// the usual jittered backoff.
pub fn quota_wait(h: &HeaderMap, body: &[u8], now: SystemTime) -> Option<Duration> {
    let code = super::errors::fault_code(body)?;
    if !code.contains("QuotaViolation") {
        return None;
    }
    [
        "x-keap-product-throttle",
        "x-keap-product-quota",
        "x-keap-tenant-throttle",
    ]
    .iter()
    .flat_map(|family| windows(h, family, now))
    .filter(|w| w.available == 0)
    .map(|w| w.reset_in)
    .min()
}

/// Per budget key: the spacing the last answer asked for and the next free turn.
#[derive(Default)]
pub struct Pacer {
    state: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl Pacer {
    /// Takes a turn for `key`: answers how long to wait first (zero while Keap shows room).
    pub fn turn(&self, key: &str) -> Duration {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((spacing, next)) = state.get_mut(key) else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let at = (*next).max(now);
        *next = at + *spacing;
        at - now
    }

    /// Learns from an answer's headers.
    pub fn observe(&self, key: &str, headers: &HeaderMap) {
        let spacing = spacing(headers, SystemTime::now());
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match spacing {
            None => {
                state.remove(key);
            }
            Some(s) => {
                // The answer just observed was a call: the next one waits a spacing.
                let entry = state
                    .entry(key.to_owned())
                    .or_insert((s, Instant::now() + s));
                entry.0 = s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn plenty_left_means_no_spacing() {
        let h = headers(&[
            ("x-keap-product-throttle-limit", "1500"),
            ("x-keap-product-throttle-available", "1499"),
            ("x-keap-product-throttle-time-unit", "minute"),
            ("x-keap-product-throttle-interval", "1"),
            ("x-keap-tenant-throttle-limit", "10000|250000"),
            ("x-keap-tenant-throttle-available", "9999|249999"),
            ("x-keap-tenant-throttle-time-unit", "minute|day"),
            ("x-keap-tenant-throttle-interval", "1|1"),
        ]);
        assert_eq!(spacing(&h, SystemTime::now()), None);
    }

    #[test]
    fn a_low_minute_window_spreads_what_is_left() {
        let h = headers(&[
            ("x-keap-product-throttle-limit", "1500"),
            ("x-keap-product-throttle-available", "120"),
            ("x-keap-product-throttle-time-unit", "minute"),
            ("x-keap-product-throttle-interval", "1"),
        ]);
        assert_eq!(
            spacing(&h, SystemTime::now()),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn pipe_joined_tenant_windows_and_scalar_forms_are_both_read() {
        let now = SystemTime::now();
        // The 2026 pipe-joined form: the minute window is low.
        let h = headers(&[
            ("x-keap-tenant-throttle-limit", "10000|250000"),
            ("x-keap-tenant-throttle-available", "600|249000"),
            ("x-keap-tenant-throttle-time-unit", "minute|day"),
            ("x-keap-tenant-throttle-interval", "1|1"),
        ]);
        assert_eq!(spacing(&h, now), Some(Duration::from_millis(100)));
        // The 2024 scalar form.
        let h = headers(&[
            ("x-keap-tenant-throttle-limit", "5000"),
            ("x-keap-tenant-throttle-available", "0"),
            ("x-keap-tenant-throttle-time-unit", "minute"),
            ("x-keap-tenant-throttle-interval", "1"),
        ]);
        assert_eq!(spacing(&h, now), Some(Duration::from_secs(60)));
    }

    #[test]
    fn the_daily_quota_spreads_until_its_expiry_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let expiry = (1_800_000_000u64 + 3_600) * 1000;
        let h = headers(&[
            ("x-keap-product-quota-limit", "150000"),
            ("x-keap-product-quota-available", "100"),
            ("x-keap-product-quota-time-unit", "day"),
            ("x-keap-product-quota-interval", "1"),
            ("x-keap-product-quota-expiry-time", &expiry.to_string()),
        ]);
        assert_eq!(spacing(&h, now), Some(Duration::from_secs(36)));
    }

    #[test]
    fn quota_faults_wait_for_the_exhausted_window_and_spikes_back_off() {
        let now = SystemTime::now();
        let h = headers(&[
            ("x-keap-product-throttle-limit", "1500"),
            ("x-keap-product-throttle-available", "0"),
            ("x-keap-product-throttle-time-unit", "minute"),
            ("x-keap-product-throttle-interval", "1"),
        ]);
        let quota = br#"{"fault":{"faultstring":"Rate limit quota violation. Quota limit exceeded. Identifier : x","detail":{"errorcode":"policies.ratelimit.QuotaViolation"}}}"#;
        let spike = br#"{"fault":{"faultstring":"Spike arrest violation.","detail":{"errorcode":"policies.ratelimit.SpikeArrestViolation"}}}"#;
        assert_eq!(quota_wait(&h, quota, now), Some(Duration::from_secs(60)));
        assert_eq!(quota_wait(&h, spike, now), None);
    }

    #[test]
    fn the_pacer_hands_out_spaced_turns() {
        let p = Pacer::default();
        assert_eq!(p.turn("k"), Duration::ZERO);
        let h = headers(&[
            ("x-keap-product-throttle-limit", "240"),
            ("x-keap-product-throttle-available", "2"),
            ("x-keap-product-throttle-time-unit", "minute"),
            ("x-keap-product-throttle-interval", "1"),
        ]);
        p.observe("k", &h);
        let first = p.turn("k");
        let second = p.turn("k");
        assert!(first >= Duration::from_secs(29), "{first:?}");
        assert!(second >= Duration::from_secs(59), "{second:?}");
        p.observe("k", &HeaderMap::new());
        assert_eq!(p.turn("k"), Duration::ZERO);
    }
}
