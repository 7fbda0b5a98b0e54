//! `GET /v1/campaigns/{id}/metrics`, `/v1/broadcasts/{id}/metrics`, `/v1/newsletters/{id}/metrics`
//! (App API): `?period=hours|days|weeks&steps=N[&type=email]` → `{"metric": {"series": {<metric>:
//! [n, …]}}}`, one array per metric of the spec's `periodMessageMetrics`, oldest period first,
//! the last entry the current period. Steps default to, and may not exceed, Customer.io's
//! maxima (24 hours, 45 days, 12 weeks; inferred from its docs: older periods are not served).
//! `months` is not simulated (400). Numbers are a pure function of (seed, object, id, absolute
//! period), so a day's figures do not change as time moves on. Weeks start on Monday (UTC).

use serde_json::{Map, Value, json};

use crate::data::Seeded;

/// The properties of the spec's `periodMessageMetrics`.
pub const SERIES_KEYS: [&str; 20] = [
    "attempted",
    "bounced",
    "clicked",
    "human_clicked",
    "prefetch_clicked",
    "converted",
    "created",
    "deferred",
    "delivered",
    "drafted",
    "failed",
    "opened",
    "human_opened",
    "prefetch_opened",
    "sent",
    "spammed",
    "suppressed",
    "undeliverable",
    "topic_unsubscribed",
    "unsubscribed",
];

/// A period: its length in seconds and the most steps served.
pub fn period(name: &str) -> Option<(i64, u64)> {
    match name {
        "hours" => Some((3_600, 24)),
        "days" => Some((86_400, 45)),
        "weeks" => Some((604_800, 12)),
        _ => None,
    }
}

/// The absolute index of the period holding `t` (weeks from a Monday).
pub fn period_index(len: i64, t: i64) -> i64 {
    // 1970-01-01 was a Thursday; Monday 1969-12-29 starts week 0.
    let shift = if len == 604_800 { 3 * 86_400 } else { 0 };
    (t + shift).div_euclid(len)
}

/// The figures of one period of one object.
fn figures(seeded: &Seeded, object: u64, id: u64, index: i64) -> Map<String, Value> {
    let h = seeded.metric_hash(object, id.wrapping_mul(1_000_003) ^ index.unsigned_abs());
    let sent = h % 400;
    let part = |n: u64, d: u64| sent * n / d;
    let opened = part(42, 100);
    let clicked = part(7, 100);
    let mut m = Map::new();
    for key in SERIES_KEYS {
        let v = match key {
            "created" | "attempted" | "sent" => sent,
            "drafted" | "deferred" | "suppressed" | "topic_unsubscribed" => 0,
            "delivered" => part(97, 100),
            "opened" => opened,
            "human_opened" => part(30, 100),
            "prefetch_opened" => opened - part(30, 100),
            "clicked" => clicked,
            "human_clicked" => part(6, 100),
            "prefetch_clicked" => clicked - part(6, 100),
            "converted" => part(1, 100),
            "bounced" => part(2, 100),
            "failed" | "undeliverable" => part(1, 200),
            "spammed" => part(1, 1000),
            "unsubscribed" => part(1, 200),
            _ => 0,
        };
        m.insert(key.into(), json!(v));
    }
    m
}

/// The `{"metric": {"series": …}}` answer: `steps` periods ending with the one holding `now`.
pub fn series(seeded: &Seeded, object: u64, id: u64, len: i64, steps: u64, now: i64) -> Value {
    let last = period_index(len, now);
    let steps = i64::try_from(steps).unwrap_or(1);
    let mut arrays: Map<String, Value> = SERIES_KEYS
        .iter()
        .map(|k| ((*k).to_owned(), Value::Array(Vec::new())))
        .collect();
    for index in (last - steps + 1)..=last {
        for (k, v) in figures(seeded, object, id, index) {
            if let Some(Value::Array(a)) = arrays.get_mut(&k) {
                a.push(v);
            }
        }
    }
    json!({"metric": {"series": arrays}})
}
