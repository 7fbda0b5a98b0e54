//! `GET /api/campaigns/metrics`: Iterable's campaign totals over a time window, as **CSV text**
//! (one row per campaign; `id` then metric columns such as `Total Email Sends`; 10 requests a
//! minute per project). Parsed with the `csv` crate, so quoted fields (commas, doubled quotes,
//! line breaks) read as one cell; an empty cell means Iterable did not report that column for
//! the campaign and stays absent, never 0.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Credentials, IterableConnector, errors};
use crate::{ConnectorError, http::Call};

/// One campaign's row: column → value, only the non-empty numeric cells.
pub type MetricsRow = BTreeMap<String, f64>;

/// Parses the CSV answer: rows by campaign id. A header without `id`, a row with a different
/// number of cells, or unreadable CSV is malformed; non-numeric cells (a label) are skipped.
pub fn parse_metrics_csv(text: &str) -> Result<BTreeMap<String, MetricsRow>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("unreadable CSV header ({e})"))?
        .clone();
    let id_col = headers
        .iter()
        .position(|h| h == "id")
        .ok_or_else(|| "the CSV has no id column".to_owned())?;
    let mut out = BTreeMap::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("unreadable CSV row {} ({e})", n + 1))?;
        let Some(id) = record.get(id_col).filter(|s| !s.is_empty()) else {
            continue;
        };
        let mut row = MetricsRow::new();
        for (i, cell) in record.iter().enumerate() {
            if i == id_col || cell.is_empty() {
                continue;
            }
            if let (Some(name), Ok(v)) = (headers.get(i), cell.replace(',', "").parse::<f64>())
                && v.is_finite()
            {
                row.insert(name.to_owned(), v);
            }
        }
        out.insert(id.to_owned(), row);
    }
    Ok(out)
}

fn iterable_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// At most this many campaigns per metrics request (as Airbyte's connector asks).
pub const METRICS_BATCH: usize = 20;

impl IterableConnector {
    /// The metrics row of `campaign_id` over `[start, end)`; `None` when Iterable answered no
    /// row for it (an unknown campaign).
    pub async fn campaign_metrics(
        &self,
        creds: &Credentials,
        campaign_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Option<MetricsRow>, ConnectorError> {
        let mut rows = self
            .campaigns_metrics(creds, &[campaign_id.to_owned()], start, end)
            .await?;
        Ok(rows.remove(campaign_id))
    }

    /// The metrics rows of up to [`METRICS_BATCH`] campaigns over `[start, end)`, in one
    /// request (one of the project's 10 a minute); campaigns Iterable answered no row for are
    /// absent.
    pub async fn campaigns_metrics(
        &self,
        creds: &Credentials,
        campaign_ids: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<BTreeMap<String, MetricsRow>, ConnectorError> {
        let header = creds.header()?;
        let url = self.url(creds.region, "/api/campaigns/metrics");
        let mut query: Vec<(&str, String)> = campaign_ids
            .iter()
            .map(|id| ("campaignId", id.clone()))
            .collect();
        query.push(("startDateTime", iterable_date(start)));
        query.push(("endDateTime", iterable_date(end)));
        let call = Call {
            operation: "campaign_metrics",
            class: "campaigns_metrics",
            budget_key: creds.budget_key(),
            idempotent: true,
        };
        let answer = self
            .client
            .send(call, |http| {
                http.get(&url)
                    .header("Api-Key", header.clone())
                    .header(reqwest::header::ACCEPT, "text/csv")
                    .query(&query)
            })
            .await?;
        if !answer.is_success() {
            return Err(errors::map(&answer, "campaign_metrics"));
        }
        let text = std::str::from_utf8(&answer.body).map_err(|_| {
            errors::malformed("campaign_metrics", answer.status.as_u16(), "not UTF-8")
        })?;
        parse_metrics_csv(text).map_err(|why| {
            tracing::debug!(why, "unreadable Iterable metrics CSV");
            errors::malformed("campaign_metrics", answer.status.as_u16(), "unreadable CSV")
        })
    }
}

/// Iterable CSV columns per metric, by medium; the first non-empty one wins.
const ITERABLE_COLUMNS: [(&str, &[&str]); 10] = [
    (
        "sent",
        &[
            "Total Email Sends",
            "Total Pushes Sent",
            "Total SMS Sent",
            "Total In-App Sent",
            "Total Web Pushes Sent",
        ],
    ),
    (
        "delivered",
        &[
            "Total Emails Delivered",
            "Total Pushes Delivered",
            "Total SMS Delivered",
        ],
    ),
    (
        "opens",
        &[
            "Total Email Opens",
            "Total Pushes Opened",
            "Total In-App Opens",
        ],
    ),
    (
        "uniqueOpens",
        &[
            "Unique Email Opens",
            "Unique Pushes Opened",
            "Unique In-App Opens",
        ],
    ),
    (
        "clicks",
        &[
            "Total Emails Clicked",
            "Total SMS Clicks",
            "Total In-App Clicks",
            "Total Web Push Clicks",
        ],
    ),
    (
        "uniqueClicks",
        &[
            "Unique Email Clicks",
            "Unique SMS Clicks",
            "Unique In-App Clicks",
            "Unique Web Push Clicks",
        ],
    ),
    (
        "bounces",
        &[
            "Total Emails Bounced",
            "Total Pushes Bounced",
            "Total SMS Bounced",
        ],
    ),
    ("unsubscribes", &["Total Unsubscribes"]),
    ("complaints", &["Total Complaints"]),
    ("conversions", &["Total Custom Conversions"]),
];

/// Our keys from an Iterable metrics row; columns the row lacks (or left empty) stay absent.
pub fn totals(row: &MetricsRow) -> BTreeMap<&'static str, u64> {
    ITERABLE_COLUMNS
        .iter()
        .filter_map(|(key, cols)| {
            cols.iter()
                .find_map(|c| row.get(*c))
                .map(|v| (*key, v.max(0.0).round() as u64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_and_empty_cells() {
        let text = "id,\"Revenue, net\",Total Email Sends,\"Label \"\"x\"\"\",Unique Email Opens\n\
                    7,\"1,234.5\",100,\"a, \"\"quoted\"\" label\",\n\
                    8,,,,3\n";
        let rows = parse_metrics_csv(text).unwrap();
        let r7 = &rows["7"];
        assert_eq!(r7["Revenue, net"], 1234.5);
        assert_eq!(r7["Total Email Sends"], 100.0);
        // A label is not a number; an empty cell is absent, not 0.
        assert!(!r7.contains_key("Label \"x\""));
        assert!(!r7.contains_key("Unique Email Opens"));
        let r8 = &rows["8"];
        assert_eq!(r8.len(), 1);
        assert_eq!(r8["Unique Email Opens"], 3.0);
    }

    #[test]
    fn malformed_csv_is_an_error() {
        assert!(parse_metrics_csv("campaign,x\n1,2\n").is_err());
        assert!(parse_metrics_csv("id,a\n1,2,3\n").is_err());
        assert!(parse_metrics_csv("").is_err());
        assert_eq!(parse_metrics_csv("id,a\n").unwrap().len(), 0);
    }

    #[test]
    fn iterable_columns_map_and_blanks_stay_absent() {
        let row: MetricsRow = [
            ("Total Email Sends".to_owned(), 100.0),
            ("Unique Email Opens".to_owned(), 30.0),
            ("Total Unsubscribes".to_owned(), 1.0),
        ]
        .into_iter()
        .collect();
        let m = totals(&row);
        assert_eq!(m["sent"], 100);
        assert_eq!(m["uniqueOpens"], 30);
        assert_eq!(m["unsubscribes"], 1);
        assert!(!m.contains_key("delivered"));
        assert!(!m.contains_key("opens"));
    }
}
