//! The opt-in `metrics` kind (Iterable, Customer.io): each recently active campaign's metrics,
//! one record per campaign per completed UTC day, so campaign history outlives the platform's
//! retention. Records are keyed `{campaignId}:{YYYY-MM-DD}` (Customer.io broadcasts and
//! newsletters `broadcast:{id}:…`, `newsletter:{id}:…`); `data` is `{campaignId, object, date,
//! <metric keys the platform reported>}` (absent, not zero, where it reports nothing) and `raw`
//! the platform's figures of that day.
//!
//! - **Which campaigns**: those the `campaigns` kind stored (Customer.io: also `broadcasts` and
//!   `newsletters`) that are running or were created or changed in the last [`ACTIVE_DAYS`]
//!   days. Sync `campaigns` first (a run with both does) or there is nothing to follow.
//! - **Which days**: completed UTC days only (today is never final), from the campaign's
//!   creation day on. Customer.io: every day of its 45-day daily series (one request per
//!   campaign, only for campaigns with a day not yet stored). Iterable: the last
//!   [`ACTIVE_DAYS`] days, one CSV request per day for up to 20 campaigns (one-day window),
//!   newest day first, at most [`ITERABLE_CALLS_PER_RUN`] requests a run (one minute of the
//!   project's 10 a minute, so the metrics endpoint stays usable meanwhile); later runs go on
//!   with older days.
//! - **Incremental**: a stored day is final and never fetched again; a campaign Iterable
//!   answers no row for gets a day record without figures, so it is not asked again either.
//! - **Deletes**: none. The engine never marks `metrics` records deleted
//!   (`domain::capabilities::sync_kind_keeps_history`), so history outlives retention.
//!
//! Pages: one per request; the cursor is the last campaign (and day) done, so a resumed run
//! goes on after it without asking again.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::sync::source::{decode_cursor, encode_cursor};
use crate::{
    analytics::history::{day_id, metrics_key},
    error::Error,
    state::AppState,
    sync::source::{Page, SyncRecord},
};

/// A campaign is followed when it is running or was created or changed this recently.
pub const ACTIVE_DAYS: i64 = 30;
/// Iterable metrics requests a run may make.
pub const ITERABLE_CALLS_PER_RUN: usize = 10;
/// Customer.io serves this many daily periods, the last being today.
const CUSTOMERIO_DAYS: i64 = 45;

/// A campaign whose daily metrics are kept.
#[derive(Clone, Debug)]
pub struct Tracked {
    /// `campaign`, `broadcast` or `newsletter`.
    pub object: &'static str,
    pub id: String,
    /// Its record key ([`metrics_key`]).
    pub key: String,
    /// The first day it can have figures (its creation day; unknown: no bound).
    pub first_day: Option<NaiveDate>,
}

fn active(c: &Value, since: DateTime<Utc>) -> bool {
    let status = c.get("status").and_then(Value::as_str).unwrap_or("");
    let recent = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .is_some_and(|t| t >= since)
    };
    matches!(
        status,
        "running" | "recurring" | "starting" | "active" | "sending"
    ) || recent("createdAt")
        || recent("updatedAt")
}

/// The recently active campaigns stored by `kinds` (`(kind, object)` pairs), by key.
pub async fn tracked(
    state: &AppState,
    integration_id: &str,
    kinds: &[(&str, &'static str)],
    now: DateTime<Utc>,
) -> Result<Vec<Tracked>, Error> {
    let since = now - Duration::days(ACTIVE_DAYS);
    let mut out = Vec::new();
    for (kind, object) in kinds {
        let mut after = None;
        loop {
            let page = state
                .store
                .list_records(integration_id, kind, 1000, after.clone(), false)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.seq, last.platform_id.clone()));
            for r in &page {
                if !active(&r.normalized, since) {
                    continue;
                }
                let first_day = r
                    .normalized
                    .get("createdAt")
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc).date_naive());
                out.push(Tracked {
                    object,
                    id: r.platform_id.clone(),
                    key: metrics_key(object, &r.platform_id),
                    first_day,
                });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Completed days from `oldest` (or the campaign's first day, if later) to yesterday.
fn wanted_days(t: &Tracked, oldest: NaiveDate, today: NaiveDate) -> Vec<NaiveDate> {
    let from = t.first_day.map_or(oldest, |f| f.max(oldest));
    from.iter_days().take_while(|d| *d < today).collect()
}

/// The days of `days` not yet stored for `key`.
async fn missing_days(
    state: &AppState,
    integration_id: &str,
    key: &str,
    days: Vec<NaiveDate>,
) -> Result<Vec<NaiveDate>, Error> {
    let ids: Vec<String> = days.iter().map(|d| day_id(key, *d)).collect();
    let stored: BTreeSet<String> = state
        .store
        .get_records(integration_id, "metrics", &ids)
        .await?
        .into_iter()
        .map(|r| r.platform_id)
        .collect();
    Ok(days
        .into_iter()
        .filter(|d| !stored.contains(&day_id(key, *d)))
        .collect())
}

/// One day's record.
pub fn day_record(
    t: &Tracked,
    day: NaiveDate,
    values: &BTreeMap<&'static str, u64>,
    raw: &Value,
) -> Result<SyncRecord, Error> {
    let mut data = serde_json::Map::new();
    data.insert("campaignId".into(), json!(t.id));
    data.insert("object".into(), json!(t.object));
    data.insert("date".into(), json!(day.format("%Y-%m-%d").to_string()));
    for (k, v) in values {
        data.insert((*k).into(), json!(v));
    }
    SyncRecord::from_values(day_id(&t.key, day), &Value::Object(data), raw).map_err(Error::internal)
}

/// Where a metrics run is: the last campaign key done (and, for Iterable, its day and the
/// requests made so far).
#[derive(Serialize, Deserialize, Default)]
pub struct MetricsCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    day: Option<NaiveDate>,
    after: String,
    #[serde(default)]
    calls: usize,
}

fn cursor_of(cursor: Option<&str>) -> Result<Option<MetricsCursor>, Error> {
    cursor.map(|c| decode_cursor("metrics", c)).transpose()
}

/// Customer.io: the next campaign with a completed day not yet stored, read with one request
/// (its daily series) and stored day by day.
pub async fn customerio_page(
    state: &AppState,
    integration_id: &str,
    creds: &connectors::customerio::Credentials,
    cursor: Option<&str>,
) -> Result<Page, Error> {
    use connectors::customerio::metrics::{MetricsObject, Period};
    let now = Utc::now();
    let today = now.date_naive();
    let oldest = today - Duration::days(CUSTOMERIO_DAYS - 1);
    let after = cursor_of(cursor)?.map(|c| c.after);
    let campaigns = tracked(
        state,
        integration_id,
        &[
            ("campaigns", "campaign"),
            ("broadcasts", "broadcast"),
            ("newsletters", "newsletter"),
        ],
        now,
    )
    .await?;
    for t in campaigns
        .iter()
        .filter(|t| after.as_ref().is_none_or(|a| t.key > *a))
    {
        let missing =
            missing_days(state, integration_id, &t.key, wanted_days(t, oldest, today)).await?;
        if missing.is_empty() {
            continue;
        }
        let object = MetricsObject::parse(t.object).unwrap_or(MetricsObject::Campaign);
        let series = state
            .connectors
            .customerio
            .period_metrics(creds, object, &t.id, Period::Days, CUSTOMERIO_DAYS as u32)
            .await?;
        let mut records = Vec::new();
        // A campaign deleted meanwhile (404) has nothing to store.
        if let Some(series) = series {
            for day in missing {
                let back = usize::try_from((today - day).num_days()).unwrap_or(usize::MAX);
                let at = |arr: &Vec<u64>| {
                    arr.len()
                        .checked_sub(back + 1)
                        .and_then(|i| arr.get(i).copied())
                };
                let raw: serde_json::Map<String, Value> = series
                    .iter()
                    .filter_map(|(k, arr)| at(arr).map(|v| (k.clone(), json!(v))))
                    .collect();
                let values = connectors::customerio::metrics::values(|theirs| {
                    series.get(theirs).and_then(&at)
                });
                records.push(day_record(t, day, &values, &Value::Object(raw))?);
            }
        }
        return Ok(Page {
            records,
            next: Some(encode_cursor(&MetricsCursor {
                day: None,
                after: t.key.clone(),
                calls: 0,
            })?),
            watermark: None,
        });
    }
    Ok(Page::last(Vec::new()))
}

/// Iterable: the next request of the run's plan (newest day first, up to 20 campaigns missing
/// that day), over a one-day window.
pub async fn iterable_page(
    state: &AppState,
    integration_id: &str,
    creds: &connectors::iterable::Credentials,
    cursor: Option<&str>,
) -> Result<Page, Error> {
    let now = Utc::now();
    let today = now.date_naive();
    let oldest = today - Duration::days(ACTIVE_DAYS);
    let position = cursor_of(cursor)?;
    let calls = position.as_ref().map_or(0, |c| c.calls);
    if calls >= ITERABLE_CALLS_PER_RUN {
        return Ok(Page::last(Vec::new()));
    }
    let campaigns = tracked(state, integration_id, &[("campaigns", "campaign")], now).await?;
    // Day → campaigns missing it.
    let mut by_day: BTreeMap<NaiveDate, Vec<&Tracked>> = BTreeMap::new();
    for t in &campaigns {
        for day in
            missing_days(state, integration_id, &t.key, wanted_days(t, oldest, today)).await?
        {
            by_day.entry(day).or_default().push(t);
        }
    }
    for (day, missing) in by_day.iter().rev() {
        let batch: Vec<&Tracked> = missing
            .iter()
            .filter(|t| match &position {
                None => true,
                Some(p) => p
                    .day
                    .is_none_or(|d| *day < d || (*day == d && t.key > p.after)),
            })
            .take(connectors::iterable::METRICS_BATCH)
            .copied()
            .collect();
        let Some(last) = batch.last() else { continue };
        let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let ids: Vec<String> = batch.iter().map(|t| t.id.clone()).collect();
        let mut rows = state
            .connectors
            .iterable
            .campaigns_metrics(creds, &ids, start, start + Duration::days(1))
            .await?;
        let mut records = Vec::with_capacity(batch.len());
        for t in &batch {
            // No row (a campaign Iterable no longer knows): a day without figures, so it is
            // not asked again.
            let (values, raw) = match rows.remove(&t.id) {
                Some(row) => (
                    connectors::iterable::metric_totals(&row),
                    serde_json::to_value(&row).map_err(Error::internal)?,
                ),
                None => (BTreeMap::new(), Value::Null),
            };
            records.push(day_record(t, *day, &values, &raw)?);
        }
        return Ok(Page {
            records,
            next: Some(encode_cursor(&MetricsCursor {
                day: Some(*day),
                after: last.key.clone(),
                calls: calls + 1,
            })?),
            watermark: None,
        });
    }
    Ok(Page::last(Vec::new()))
}
