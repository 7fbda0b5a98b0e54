//! `GET /api/integrations/{publisherId}/{platform}/campaigns/{campaignId}/metrics?from&to&interval`:
//! one campaign's metrics, normalised across platforms.
//!
//! The keys are [`METRICS`]. A key is present where a source reports it and **absent** (never 0)
//! where none does; `sources` says where each total came from (`platform`: the platform's own
//! reporting API, `webhooks`: our count of the webhook events we received), `seriesSources`
//! the same for the series.
//!
//! - **Iterable**: totals from `GET /api/campaigns/metrics` (CSV, one row per campaign over the
//!   window; a campaign Iterable answers no row for is `NOT_FOUND`). Iterable's API has no
//!   per-day breakdown within its 10-a-minute budget, so the series is our webhook count.
//! - **Customer.io**: its period metrics of the campaign, broadcast or newsletter within its
//!   retention (24 hours, 45 days, 12 weeks); our webhook counts for older windows and for the
//!   unique counts it does not report.
//! - **Keap**: no per-campaign email reporting in its API and no email webhooks, so none of the
//!   ten keys. Its campaign object's counts are its only per-campaign figures: the Keap-only
//!   totals `activeContacts` and `completedContacts` (contacts in the campaign now, and those
//!   who finished it; source `platform`). Keap's account-wide email figures are
//!   `…/keap/emails/metrics` (see [`super::keap`]).
//!
//! - **Stored days** (the opt-in `metrics` sync kind, [`crate::sync::sources::metrics`]): for
//!   windows the platform cannot serve (Customer.io beyond its retention) or does not break
//!   down by day (Iterable's series), the daily records kept locally are used, source `stored`.
//!   Precedence per key: the platform live > stored days > our webhook counts: the platform's
//!   own answer is the freshest and the most complete; a stored day is what the platform said
//!   once that day was over; webhook counts only see what reached us. Stored days serve `day`
//!   and `week` intervals only (a day cannot be split into hours); a bucket with no stored day
//!   (today, or a day not synced yet) leaves a stored key out of that point rather than show 0.
//!
//! Our own counts read the integration's received events of the campaign in `[from, to)`
//! (`Store::campaign_events`). Each event is stored once per platform event id, so a webhook
//! delivered twice counts once; on top, events of the same type, person and time count once
//! (a platform that re-sends an event under a new id). Unique opens and clicks count distinct
//! people (email, else user id) in the range (totals) or the bucket (series).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use connectors::customerio::metrics::MetricsObject;
use domain::{
    Platform, PublisherId,
    metrics::{METRICS, webhook_metrics},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::EventRecord;

use super::buckets::{EventCounts, Interval, Series, Window};
use crate::{
    error::{Error, Result},
    state::AppState,
    sync::jobs,
};

/// At most this many received events are counted per answer.
const MAX_EVENTS: u32 = 200_000;

/// What each of our event types counts as, for the channel subjects.
fn metric_of(action: &str) -> Option<&'static str> {
    Some(match action {
        "sent" => "sent",
        "delivered" => "delivered",
        "opened" => "opens",
        "clicked" => "clicks",
        "bounced" => "bounces",
        "unsubscribed" => "unsubscribes",
        "complained" => "complaints",
        "converted" => "conversions",
        _ => return None,
    })
}

/// Counts `events` (one campaign's, in the window) into the window's buckets, de-duplicated.
pub fn count_events(events: &[EventRecord], window: &Window, metrics: &[&str]) -> EventCounts {
    let mut seen: BTreeSet<(&str, String, DateTime<Utc>)> = BTreeSet::new();
    let mut uniques: BTreeSet<(&'static str, String)> = BTreeSet::new();
    let mut bucket_uniques: BTreeSet<(DateTime<Utc>, &'static str, String)> = BTreeSet::new();
    let mut out = EventCounts::default();
    for b in window.buckets() {
        let zeros = metrics
            .iter()
            .filter_map(|m| METRICS.iter().find(|k| *k == m).copied())
            .map(|m| (m, 0))
            .collect();
        out.series.insert(b, zeros);
    }
    for m in metrics {
        if let Some(k) = METRICS.iter().find(|k| *k == m) {
            out.totals.insert(k, 0);
        }
    }
    for e in events {
        if e.occurred_at < window.from || e.occurred_at >= window.to {
            continue;
        }
        let Some((subject, action)) = e.kind.split_once('.') else {
            continue;
        };
        if !domain::events::CHANNELS.contains(&subject) {
            continue;
        }
        let Some(metric) = metric_of(action) else {
            continue;
        };
        let person = e
            .email
            .as_deref()
            .map(str::to_ascii_lowercase)
            .or_else(|| e.user_id.clone())
            .unwrap_or_else(|| e.platform_event_id.clone());
        if !seen.insert((e.kind.as_str(), person.clone(), e.occurred_at)) {
            continue;
        }
        let bucket = window.interval.floor(e.occurred_at);
        let mut add = |key: &'static str| {
            if !metrics.contains(&key) {
                return;
            }
            *out.totals.entry(key).or_default() += 1;
            if let Some(b) = out.series.get_mut(&bucket) {
                *b.entry(key).or_default() += 1;
            }
        };
        add(metric);
        let unique = match metric {
            "opens" => Some("uniqueOpens"),
            "clicks" => Some("uniqueClicks"),
            _ => None,
        };
        if let Some(u) = unique {
            if metrics.contains(&u) && uniques.insert((u, person.clone())) {
                *out.totals.entry(u).or_default() += 1;
            }
            if metrics.contains(&u)
                && bucket_uniques.insert((bucket, u, person))
                && let Some(b) = out.series.get_mut(&bucket)
            {
                *b.entry(u).or_default() += 1;
            }
        }
    }
    out
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// RFC 3339 (a `YYYY-MM-DD` date is taken too, as its midnight UTC; inclusive); default 30
    /// days before `to`.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339 (or `YYYY-MM-DD`; exclusive); default now.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// `hour` (≤ 31 days), `day` (default, ≤ 366 days) or `week` (≤ 157 weeks).
    #[param(pattern = "^(hour|day|week)$")]
    pub interval: Option<String>,
    /// Customer.io only: `campaign` (default), `broadcast` or `newsletter`.
    #[param(pattern = "^(campaign|broadcast|newsletter)$")]
    pub object: Option<String>,
}

/// Platform figures per bucket.
/// The daily records the `metrics` sync kind stored for `key` (see
/// [`crate::sync::sources::metrics`]) within the window, summed per bucket; `None` for hourly
/// windows (a day cannot be split) or when no day is stored. Only buckets with a stored day
/// have an entry, and only with the keys the platform reported that day.
async fn stored_series(
    state: &AppState,
    integration_id: &str,
    key: &str,
    window: &Window,
) -> Result<Option<Series>> {
    use super::history::{day_id, day_values};
    let buckets = window.buckets();
    let Some(first) = buckets.first().copied() else {
        return Ok(None);
    };
    if window.interval == Interval::Hour {
        return Ok(None);
    }
    let days: Vec<NaiveDate> = first
        .date_naive()
        .iter_days()
        .take_while(|d| {
            d.and_hms_opt(0, 0, 0)
                .is_some_and(|t| t.and_utc() < window.to)
        })
        .collect();
    let ids: Vec<String> = days.iter().map(|d| day_id(key, *d)).collect();
    let stored = state
        .store
        .get_records(integration_id, "metrics", &ids)
        .await?;
    if stored.is_empty() {
        return Ok(None);
    }
    let mut series = Series::new();
    for r in stored {
        let Some(day) = r
            .normalized
            .get("date")
            .and_then(Value::as_str)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
        else {
            continue;
        };
        let bucket = series
            .entry(window.interval.floor(day.and_utc()))
            .or_default();
        for (k, v) in day_values(&r.normalized) {
            *bucket.entry(k).or_default() += v;
        }
    }
    Ok(Some(series))
}

/// One campaign's metrics.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignMetrics {
    pub campaign_id: String,
    pub platform: Platform,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: &'static str,
    /// Metric → total over the range; a metric no source reports is absent. Keap adds its
    /// `activeContacts` and `completedContacts` (counts as of now) and none of the ten keys.
    #[schema(value_type = Object)]
    pub totals: BTreeMap<&'static str, u64>,
    /// One point per interval: `{"at", <metric>: n, …}`.
    #[schema(value_type = Vec<Object>)]
    pub series: Vec<Value>,
    /// Metric → `platform`, `webhooks` or `stored`: where each total came from.
    #[schema(value_type = Object)]
    pub sources: BTreeMap<&'static str, &'static str>,
    /// The same for the series.
    #[schema(value_type = Object)]
    pub series_sources: BTreeMap<&'static str, &'static str>,
    /// Whether this integration has received any webhook event. `false`: webhooks are not set
    /// up (or nothing happened yet), so the metrics only webhooks count are absent rather than
    /// a 0 that would read as a fact; docs/webhooks.md says how to set them up.
    pub webhooks_received: bool,
}

/// A campaign's metrics over a time range, normalised across platforms (`campaign_id` already
/// checked as a path segment).
pub async fn campaign_metrics(
    state: &AppState,
    publisher: &PublisherId,
    platform: Platform,
    campaign_id: String,
    q: MetricsQuery,
) -> Result<CampaignMetrics> {
    let window = Window::parse(
        q.from.as_deref(),
        q.to.as_deref(),
        q.interval.as_deref(),
        Utc::now(),
    )?;
    let record = jobs::integration(state, publisher, platform).await?;

    let object = match q.object.as_deref() {
        None | Some("") => MetricsObject::Campaign,
        Some(o) => MetricsObject::parse(o).ok_or_else(|| {
            Error::invalid(
                "object",
                "object must be campaign, broadcast or newsletter.",
            )
        })?,
    };
    // The platform's own figures, where its API reports them (NOT_FOUND for an unknown
    // campaign); Keap adds its contact counts.
    let mut session = crate::platforms::open(state, record.clone()).await?;
    let reported = session
        .campaign_metrics(state, object, &campaign_id, &window)
        .await?;
    let platform_series = reported.series;
    let mut platform_totals = reported.totals;
    for values in platform_series.iter().flat_map(BTreeMap::values) {
        for (k, v) in values {
            *platform_totals.entry(k).or_default() += v;
        }
    }
    let keap_totals = reported.extra;

    // Days the platform cannot report (outside its retention) or does not break down
    // (Iterable): what the `metrics` sync kind stored.
    let stored = if platform_series.is_none() && platform.optional_sync_kinds().contains(&"metrics")
    {
        let key = super::history::metrics_key(
            match object {
                MetricsObject::Campaign => "campaign",
                MetricsObject::Broadcast => "broadcast",
                MetricsObject::Newsletter => "newsletter",
            },
            &campaign_id,
        );
        stored_series(state, &record.id, &key, &window).await?
    } else {
        None
    };
    let mut stored_totals: BTreeMap<&'static str, u64> = BTreeMap::new();
    for values in stored.iter().flat_map(BTreeMap::values) {
        for (k, v) in values {
            *stored_totals.entry(k).or_default() += v;
        }
    }

    // Our own counts from received webhooks.
    let events = state
        .store
        .campaign_events(&record.id, &campaign_id, window.from, window.to, MAX_EVENTS)
        .await?;
    // With no webhook event ever received, a webhook count of 0 is not a fact: leave it out.
    let webhooks_received = !state
        .store
        .list_events(
            publisher,
            &store::EventFilter {
                platform: Some(platform),
                kind: None,
            },
            1,
            None,
        )
        .await?
        .events
        .is_empty();
    let counted: &[&str] = if webhooks_received {
        webhook_metrics(platform)
    } else {
        &[]
    };
    let counts = count_events(&events, &window, counted);

    let mut totals = BTreeMap::new();
    let mut sources = BTreeMap::new();
    for key in METRICS {
        if let Some(v) = platform_totals.get(key) {
            totals.insert(key, *v);
            sources.insert(key, "platform");
        } else if let Some(v) = stored_totals.get(key) {
            totals.insert(key, *v);
            sources.insert(key, "stored");
        } else if let Some(v) = counts.totals.get(key) {
            totals.insert(key, *v);
            sources.insert(key, "webhooks");
        }
    }
    for (key, v) in keap_totals {
        totals.insert(key, v);
        sources.insert(key, "platform");
    }
    let mut series_sources = BTreeMap::new();
    for key in METRICS {
        let from_platform = platform_series
            .as_ref()
            .and_then(|s| s.values().next())
            .is_some_and(|v| v.contains_key(key));
        if from_platform {
            series_sources.insert(key, "platform");
        } else if stored_totals.contains_key(key) {
            series_sources.insert(key, "stored");
        } else if counted.contains(&key) {
            series_sources.insert(key, "webhooks");
        }
    }
    let series = counts
        .series
        .iter()
        .map(|(at, values)| {
            let mut point = serde_json::Map::new();
            point.insert("at".into(), Value::String(at.to_rfc3339()));
            let live = platform_series.as_ref().and_then(|s| s.get(at));
            for key in METRICS {
                let v = match series_sources.get(key) {
                    Some(&"platform") => live.and_then(|l| l.get(key)),
                    // A bucket without a stored day leaves the key out.
                    Some(&"stored") => stored.as_ref().and_then(|s| s.get(at)?.get(key)),
                    Some(_) => values.get(key),
                    None => None,
                };
                if let Some(v) = v {
                    point.insert(key.into(), Value::from(*v));
                }
            }
            Value::Object(point)
        })
        .collect();
    Ok(CampaignMetrics {
        campaign_id,
        platform,
        from: window.from,
        to: window.to,
        interval: window.interval.as_str(),
        totals,
        series,
        sources,
        series_sources,
        webhooks_received,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::buckets::parse_time;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time("t", s).unwrap()
    }

    #[test]
    fn windows_validate_and_bucket() {
        let now = t("2026-03-10T12:34:56Z");
        let w = Window::parse(Some("2026-03-01"), Some("2026-03-04"), None, now).unwrap();
        assert_eq!(w.interval, Interval::Day);
        assert_eq!(w.buckets().len(), 3);
        let w = Window::parse(
            Some("2026-03-01T10:30:00Z"),
            Some("2026-03-01T13:00:00Z"),
            Some("hour"),
            now,
        )
        .unwrap();
        assert_eq!(
            w.buckets(),
            [
                t("2026-03-01T10:00:00Z"),
                t("2026-03-01T11:00:00Z"),
                t("2026-03-01T12:00:00Z")
            ]
        );
        // 2026-03-04 is a Wednesday: its week starts Monday the 2nd.
        assert_eq!(
            Interval::Week.floor(t("2026-03-04T08:00:00Z")),
            t("2026-03-02T00:00:00Z")
        );
        let field = |r: Result<Window>| r.unwrap_err().to_string();
        assert!(
            field(Window::parse(
                Some("2026-03-02"),
                Some("2026-03-01"),
                None,
                now
            ))
            .contains("before")
        );
        assert!(Window::parse(Some("yesterday"), None, None, now).is_err());
        assert!(Window::parse(None, None, Some("month"), now).is_err());
        assert!(Window::parse(Some("2024-01-01"), None, None, now).is_err());
        assert!(Window::parse(Some("2024-01-01"), None, Some("week"), now).is_ok());
        let d = Window::parse(None, None, None, now).unwrap();
        assert_eq!((d.to - d.from).num_days(), 30);
    }

    fn event(id: &str, kind: &str, email: &str, at: &str) -> EventRecord {
        EventRecord {
            seq: 1,
            id: id.into(),
            integration_id: "i".into(),
            publisher_id: "p".into(),
            platform: Platform::Customerio,
            kind: kind.into(),
            platform_event_id: id.into(),
            occurred_at: t(at),
            received_at: t(at),
            email: Some(email.into()),
            user_id: None,
            campaign_id: Some("c".into()),
            data: Value::Null,
        }
    }

    #[test]
    fn counts_are_deduplicated_and_unique_by_person() {
        let w = Window::parse(Some("2026-03-01"), Some("2026-03-03"), None, Utc::now()).unwrap();
        let events = [
            event("1", "email.opened", "a@x.com", "2026-03-01T10:00:00Z"),
            // The same open again under another id: counted once.
            event("1b", "email.opened", "A@x.com", "2026-03-01T10:00:00Z"),
            event("2", "email.opened", "a@x.com", "2026-03-01T11:00:00Z"),
            event("3", "email.opened", "a@x.com", "2026-03-02T09:00:00Z"),
            event("4", "email.clicked", "b@x.com", "2026-03-02T09:00:00Z"),
            event("5", "contact.updated", "b@x.com", "2026-03-02T09:00:00Z"),
            event("6", "email.opened", "c@x.com", "2026-03-05T09:00:00Z"),
        ];
        let c = count_events(&events, &w, &METRICS);
        assert_eq!(c.totals["opens"], 3);
        assert_eq!(c.totals["uniqueOpens"], 1);
        assert_eq!(c.totals["clicks"], 1);
        assert_eq!(c.totals["sent"], 0);
        let day1 = &c.series[&t("2026-03-01T00:00:00Z")];
        assert_eq!((day1["opens"], day1["uniqueOpens"]), (2, 1));
        let day2 = &c.series[&t("2026-03-02T00:00:00Z")];
        assert_eq!(
            (day2["opens"], day2["uniqueOpens"], day2["clicks"]),
            (1, 1, 1)
        );
        // Metrics a platform cannot report stay absent.
        let k = count_events(&events, &w, webhook_metrics(Platform::Keap));
        assert!(k.totals.is_empty());
    }
}
