//! Keap's reporting, as far as its API offers it (issue 9).
//!
//! Keap's REST API has no per-campaign email metrics and no email webhooks. What it has:
//!
//! - **Sent-email records** (v1 `GET /emails`, filtered by sent date, paged by `limit`/`offset`):
//!   one record per email sent to a contact, with its `sent_date` and the date of its **first**
//!   open and first click. `GET /api/integrations/{publisherId}/keap/emails/metrics` counts them
//!   over a window: `sent` by sent date; `opens`/`clicks`, emails first opened/clicked in the
//!   window (Keap keeps no later opens, so these are opened and clicked *emails*, each once);
//!   `uniqueOpens`/`uniqueClicks`, distinct recipients (address, else contact id) among those.
//!   No campaign id: the records do not say which campaign or broadcast sent them.
//!   An email opened in the window may have been sent before it, so records are read from
//!   [`OPEN_LOOKBACK`] before `from`; opens later than that after their send are not counted.
//!   At most [`MAX_EMAIL_PAGES`] pages of [`EMAIL_PAGE`] records are read (oldest first); when
//!   more remain the answer says `truncated: true` and its figures cover only what was read.
//! - **Campaign counts** (v2 `GET /campaigns/{id}`): how many contacts are in the campaign now
//!   (`active_contact_count`) and how many finished it (`completed_contact_count`). These are
//!   Keap's only per-campaign figures; the campaign metrics answer reports them as the
//!   Keap-only totals `activeContacts` and `completedContacts` (counts as of now, whatever the
//!   window), and none of the ten shared keys.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use connectors::keap::crm::{MAX_PAGE, SentEmail};
use domain::{Platform, PublisherId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::buckets::{EventCounts, Window};
use crate::{error::Result, platforms::keap::tokens, state::AppState};

/// Records per `GET /emails` page (Keap's largest).
pub const EMAIL_PAGE: u32 = MAX_PAGE;
/// Pages one answer reads at most (20,000 records: 20 requests, a few seconds of Keap's budget).
pub const MAX_EMAIL_PAGES: u64 = 20;
/// How long before `from` records are read, so that opens and clicks in the window of emails
/// sent shortly before it count.
pub const OPEN_LOOKBACK: Duration = Duration::days(7);
/// What Keap's sent-email records report, in answer order.
pub const EMAIL_METRICS: [&str; 5] = ["sent", "opens", "uniqueOpens", "clicks", "uniqueClicks"];

/// Keap's per-campaign figures from its campaign object (our keys, in answer order).
pub const CAMPAIGN_KEYS: [&str; 2] = [
    connectors::keap::CAMPAIGN_COUNTS[0].0,
    connectors::keap::CAMPAIGN_COUNTS[1].0,
];

/// Counts sent-email records into the window's buckets (see the module doc); a record listed
/// twice (paging over a changing list) counts once.
pub fn count_emails(emails: &[SentEmail], window: &Window) -> EventCounts {
    let mut out = EventCounts::default();
    for b in window.buckets() {
        out.series
            .insert(b, EMAIL_METRICS.iter().map(|m| (*m, 0)).collect());
    }
    out.totals = EMAIL_METRICS.iter().map(|m| (*m, 0)).collect();
    let mut ids = BTreeSet::new();
    let mut uniques: BTreeSet<(&str, String)> = BTreeSet::new();
    let mut bucket_uniques: BTreeSet<(DateTime<Utc>, &str, String)> = BTreeSet::new();
    for e in emails {
        if !ids.insert(e.id.as_str()) {
            continue;
        }
        let person =
            e.to.as_deref()
                .map(str::to_ascii_lowercase)
                .or_else(|| e.contact_id.clone())
                .unwrap_or_else(|| e.id.clone());
        for (at, metric, unique) in [
            (e.sent, "sent", None),
            (e.opened, "opens", Some("uniqueOpens")),
            (e.clicked, "clicks", Some("uniqueClicks")),
        ] {
            let Some(at) = at.filter(|t| *t >= window.from && *t < window.to) else {
                continue;
            };
            let bucket = window.interval.floor(at);
            *out.totals.entry(metric).or_default() += 1;
            if let Some(u) = unique
                && uniques.insert((u, person.clone()))
            {
                *out.totals.entry(u).or_default() += 1;
            }
            // Every time in the window has its bucket.
            let Some(point) = out.series.get_mut(&bucket) else {
                continue;
            };
            *point.entry(metric).or_default() += 1;
            if let Some(u) = unique
                && bucket_uniques.insert((bucket, u, person.clone()))
            {
                *point.entry(u).or_default() += 1;
            }
        }
    }
    out
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmailMetricsQuery {
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
}

/// The account's email metrics from Keap's sent-email records.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeapEmailMetrics {
    pub platform: Platform,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: &'static str,
    /// `sent`, `opens`, `uniqueOpens`, `clicks`, `uniqueClicks` over the range.
    #[schema(value_type = Object)]
    pub totals: BTreeMap<&'static str, u64>,
    /// One point per interval: `{"at", <metric>: n, …}`.
    #[schema(value_type = Vec<Object>)]
    pub series: Vec<Value>,
    /// Metric → `platform` (Keap's sent-email records).
    #[schema(value_type = Object)]
    pub sources: BTreeMap<&'static str, &'static str>,
    /// The same for the series.
    #[schema(value_type = Object)]
    pub series_sources: BTreeMap<&'static str, &'static str>,
    /// Sent-email records read (from 7 days before `from` to `to`).
    pub emails_read: u64,
    /// More records were left unread than the page cap allows: the figures cover only the
    /// oldest ones read; narrow the window.
    pub truncated: bool,
}

/// Email metrics of the whole Keap account over a time range, from its sent-email records
/// (Keap has no per-campaign email reporting).
pub async fn email_metrics(
    state: &AppState,
    publisher: &PublisherId,
    window: Window,
) -> Result<KeapEmailMetrics> {
    let mut session =
        crate::platforms::open_own::<crate::platforms::keap::KeapSession>(state, publisher).await?;
    let keap = state.connectors.keap.clone();
    let since = window.from - OPEN_LOOKBACK;
    let (mut emails, mut offset, mut pages, mut truncated) = (Vec::new(), 0u64, 0u64, false);
    loop {
        let page = tokens::call(state, &mut session, |cred| {
            let keap = keap.clone();
            async move {
                keap.sent_emails(&cred, since, window.to, EMAIL_PAGE, offset)
                    .await
            }
        })
        .await?;
        let got = page.emails.len() as u64;
        emails.extend(page.emails);
        offset += got;
        pages += 1;
        if got == 0 || offset >= page.count {
            break;
        }
        if pages >= MAX_EMAIL_PAGES {
            truncated = true;
            break;
        }
    }
    let counts = count_emails(&emails, &window);
    let sources: BTreeMap<_, _> = EMAIL_METRICS.iter().map(|m| (*m, "platform")).collect();
    let series = counts
        .series
        .iter()
        .map(|(at, values)| {
            let mut point = serde_json::Map::new();
            point.insert("at".into(), Value::String(at.to_rfc3339()));
            for key in EMAIL_METRICS {
                point.insert(
                    key.into(),
                    Value::from(values.get(key).copied().unwrap_or(0)),
                );
            }
            Value::Object(point)
        })
        .collect();
    Ok(KeapEmailMetrics {
        platform: Platform::Keap,
        from: window.from,
        to: window.to,
        interval: window.interval.as_str(),
        totals: counts.totals,
        series,
        series_sources: sources.clone(),
        sources,
        emails_read: emails.len() as u64,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::buckets::parse_time;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time("t", s).unwrap()
    }

    fn email(
        id: &str,
        to: &str,
        sent: &str,
        opened: Option<&str>,
        clicked: Option<&str>,
    ) -> SentEmail {
        SentEmail {
            id: id.into(),
            contact_id: None,
            to: Some(to.into()),
            sent: Some(t(sent)),
            opened: opened.map(t),
            clicked: clicked.map(t),
        }
    }

    #[test]
    fn emails_count_by_their_own_dates_and_recipients() {
        let w = Window::parse(Some("2026-03-01"), Some("2026-03-03"), None, Utc::now()).unwrap();
        let emails = [
            // Sent before the window, opened in it: an open, not a send.
            email(
                "1",
                "a@x.com",
                "2026-02-28T20:00:00Z",
                Some("2026-03-01T08:00:00Z"),
                None,
            ),
            email(
                "2",
                "A@x.com",
                "2026-03-01T09:00:00Z",
                Some("2026-03-01T10:00:00Z"),
                Some("2026-03-01T10:01:00Z"),
            ),
            email(
                "3",
                "b@x.com",
                "2026-03-02T09:00:00Z",
                Some("2026-03-02T09:30:00Z"),
                None,
            ),
            email(
                "4",
                "a@x.com",
                "2026-03-02T11:00:00Z",
                Some("2026-03-03T00:00:00Z"),
                None,
            ),
            // Listed twice: once.
            email(
                "3",
                "b@x.com",
                "2026-03-02T09:00:00Z",
                Some("2026-03-02T09:30:00Z"),
                None,
            ),
        ];
        let c = count_emails(&emails, &w);
        assert_eq!(c.totals["sent"], 3);
        assert_eq!(c.totals["opens"], 3);
        assert_eq!(c.totals["uniqueOpens"], 2);
        assert_eq!((c.totals["clicks"], c.totals["uniqueClicks"]), (1, 1));
        let day1 = &c.series[&t("2026-03-01T00:00:00Z")];
        assert_eq!(
            (day1["sent"], day1["opens"], day1["uniqueOpens"]),
            (1, 2, 1)
        );
        let day2 = &c.series[&t("2026-03-02T00:00:00Z")];
        assert_eq!(
            (day2["sent"], day2["opens"], day2["uniqueOpens"]),
            (2, 1, 1)
        );
    }
}
