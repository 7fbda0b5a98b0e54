//! `GET /api/campaigns/metrics`: CSV text, one row per campaign, a header that is `id` and the
//! union of the rows' columns (sorted), blank cells where a column does not apply. Column names
//! per medium are those of the recorded Airbyte records (Email, Push, WebPush); SMS and InApp
//! names are inferred by analogy.

use axum::{
    extract::{RawQuery, State},
    http::header,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use crate::{
    errors,
    project::{Shared, lock},
    query::Q,
};

const COMMON: &[&str] = &[
    "Average Custom Conversion Value",
    "Average Order Value",
    "Revenue",
    "Sum of Custom Conversions",
    "Total Custom Conversions",
    "Total Purchases",
    "Total Unsubscribes",
    "Unique Custom Conversions",
    "Unique Purchases",
    "Unique Unsubscribes",
];

/// Recorded (campaign 2220229 of Airbyte's sandbox).
const EMAIL: &[&str] = &[
    "Purchases / M (Email)",
    "Revenue / M (Email)",
    "Total Complaints",
    "Total Email Holdout",
    "Total Email Opens",
    "Total Email Opens (filtered)",
    "Total Email Send Skips",
    "Total Email Sends",
    "Total Emails Bounced",
    "Total Emails Clicked",
    "Total Emails Delivered",
    "Unique Email Clicks",
    "Unique Email Opens",
    "Unique Email Opens (filtered)",
    "Unique Email Opens Or Clicks",
    "Unique Email Sends",
    "Unique Emails Bounced",
    "Unique Emails Delivered",
];

/// Recorded (campaign 2197857).
const PUSH: &[&str] = &[
    "Purchases / M (Push)",
    "Revenue / M (Push)",
    "Total App Uninstalls",
    "Total Push Holdout",
    "Total Push Send Skips",
    "Total Pushes Bounced",
    "Total Pushes Delivered",
    "Total Pushes Opened",
    "Total Pushes Sent",
    "Unique Pushes Bounced",
    "Unique Pushes Delivered",
    "Unique Pushes Opened",
    "Unique Pushes Sent",
];

/// Inferred.
const SMS: &[&str] = &[
    "Total SMS Bounced",
    "Total SMS Clicks",
    "Total SMS Delivered",
    "Total SMS Holdout",
    "Total SMS Send Skips",
    "Total SMS Sent",
    "Unique SMS Clicks",
    "Unique SMS Delivered",
    "Unique SMS Sent",
];

/// Inferred.
const IN_APP: &[&str] = &[
    "Total In-App Clicks",
    "Total In-App Holdout",
    "Total In-App Opens",
    "Total In-App Send Skips",
    "Total In-App Sent",
    "Unique In-App Clicks",
    "Unique In-App Opens",
    "Unique In-App Sent",
];

/// A plausible value for a metric column of a campaign that sent `sent` messages.
fn value_for(col: &str, sent: u64) -> u64 {
    let unique = col.starts_with("Unique");
    let part = |num: u64, den: u64| sent * num / den;
    if col.contains("Revenue")
        || col.contains("Purchase")
        || col.contains("Conversion")
        || col.contains("Order")
        || col.contains("Holdout")
    {
        0
    } else if col.contains("Sends") || col.contains("Sent") {
        if unique { part(98, 100) } else { sent }
    } else if col.contains("Delivered") {
        part(97, 100)
    } else if col.contains("Open") {
        if unique { part(30, 100) } else { part(45, 100) }
    } else if col.contains("Click") {
        if unique { part(5, 100) } else { part(8, 100) }
    } else if col.contains("Bounced") {
        part(2, 100)
    } else if col.contains("Skips") {
        part(1, 100)
    } else if col.contains("Unsubscribes") {
        part(1, 200)
    } else if col.contains("Complaints") || col.contains("Uninstalls") {
        part(1, 1000)
    } else {
        0
    }
}

/// The metrics row of a generated campaign.
pub fn generated_row(campaign: &Value) -> Map<String, Value> {
    let medium = campaign
        .get("messageMedium")
        .and_then(Value::as_str)
        .unwrap_or("");
    let cols: &[&str] = match medium {
        "Email" => EMAIL,
        "Push" => PUSH,
        "SMS" => SMS,
        "InApp" => IN_APP,
        _ => &[],
    };
    let state = campaign
        .get("campaignState")
        .and_then(Value::as_str)
        .unwrap_or("");
    let sent = match state {
        "Draft" | "Ready" | "Scheduled" => 0,
        _ => campaign
            .get("sendSize")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| campaign.get("id").and_then(Value::as_u64).unwrap_or(0) % 5000),
    };
    let mut row = Map::new();
    row.insert(
        "id".into(),
        campaign.get("id").cloned().unwrap_or(Value::Null),
    );
    for c in COMMON.iter().chain(cols) {
        row.insert((*c).into(), json!(value_for(c, sent)));
    }
    row
}

fn csv_cell(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Rows as CSV: `id`, then the sorted union of the other columns; blanks where absent.
pub fn to_csv(rows: &[Map<String, Value>]) -> String {
    let mut cols: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.keys().map(String::as_str))
        .filter(|k| *k != "id")
        .collect();
    cols.sort_unstable();
    cols.dedup();
    let mut out = String::from("id");
    for c in &cols {
        out.push(',');
        out.push_str(&csv_cell(&json!(c)));
    }
    out.push('\n');
    for r in rows {
        out.push_str(&csv_cell(r.get("id").unwrap_or(&Value::Null)));
        for c in &cols {
            out.push(',');
            out.push_str(&csv_cell(r.get(*c).unwrap_or(&Value::Null)));
        }
        out.push('\n');
    }
    out
}

/// How long a generated campaign's sends take: its counts accrue evenly over this span from
/// its `startAt` (else `createdAt`).
pub const SEND_SPAN_MS: i64 = 7 * 86_400_000;

/// The part of `total` that accrues in `[start, end)` (each end open when `None`) when it
/// accrues evenly over `[from, from + SEND_SPAN_MS)`: a difference of whole cumulative counts,
/// so adjacent windows (one day after another) add up to the total exactly.
pub fn accrued(total: u64, from: i64, start: Option<i64>, end: Option<i64>) -> u64 {
    let upto = |t: i64| {
        let elapsed = u128::try_from((t - from).clamp(0, SEND_SPAN_MS)).unwrap_or(0);
        let part = u128::from(total) * elapsed / SEND_SPAN_MS as u128;
        u64::try_from(part).unwrap_or(total)
    };
    let hi = end.map_or(total, upto);
    let lo = start.map_or(0, upto);
    hi.saturating_sub(lo)
}

/// A generated campaign's row over the window.
fn generated_in_window(
    campaign: &Value,
    start: Option<i64>,
    end: Option<i64>,
) -> Map<String, Value> {
    let mut row = generated_row(campaign);
    let from = ["startAt", "createdAt"]
        .iter()
        .find_map(|k| campaign.get(*k).and_then(Value::as_i64))
        .unwrap_or(0);
    for (k, v) in &mut row {
        if k != "id"
            && let Some(n) = v.as_u64()
        {
            *v = json!(accrued(n, from, start, end));
        }
    }
    row
}

/// A number in a fixture cell (`12`, `1.5`, `"1,234"`).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.replace(',', "").trim().parse().ok(),
        _ => None,
    }
}

/// Fixture rows of one campaign over the window. Rows with a `"date": "YYYY-MM-DD"` are that
/// UTC day's counts: those whose day starts in `[start, end)` are summed (0s when none is);
/// rows without a date are served verbatim whatever the window (recorded totals).
fn fixture_in_window(
    rows: &[Map<String, Value>],
    id: u64,
    start: Option<i64>,
    end: Option<i64>,
) -> Option<Map<String, Value>> {
    let mine: Vec<&Map<String, Value>> = rows
        .iter()
        .filter(|r| r.get("id").and_then(Value::as_u64) == Some(id))
        .collect();
    if let Some(undated) = mine.iter().find(|r| !r.contains_key("date")) {
        return Some((*undated).clone());
    }
    let first = mine.first()?;
    let mut out = Map::new();
    out.insert("id".into(), first.get("id").cloned().unwrap_or(Value::Null));
    for r in &mine {
        let day = r
            .get("date")
            .and_then(Value::as_str)
            .and_then(crate::data::parse_datetime);
        let inside = day.is_some_and(|d| start.is_none_or(|s| d >= s) && end.is_none_or(|e| d < e));
        for (k, v) in r.iter().filter(|(k, _)| *k != "id" && *k != "date") {
            let Some(n) = number(v) else { continue };
            let add = if inside { n } else { 0.0 };
            let sum = out.get(k).and_then(Value::as_f64).unwrap_or(0.0) + add;
            let cell = if sum.fract() == 0.0 && sum >= 0.0 {
                json!(sum as u64)
            } else {
                json!(sum)
            };
            out.insert(k.clone(), cell);
        }
    }
    Some(out)
}

/// `?campaignId=…&campaignId=…[&startDateTime&endDateTime]`. Unknown ids are left out
/// (inferred). The window is applied: generated campaigns accrue their counts evenly over the
/// week from their start ([`SEND_SPAN_MS`]); dated fixture rows count on their day.
pub async fn campaign_metrics(State(p): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    let q = Q::parse(raw.as_deref());
    let ids = q.all("campaignId");
    if ids.is_empty() {
        return errors::bad_params("campaignId is required");
    }
    let mut parsed = Vec::new();
    for id in ids {
        match id.trim().parse::<u64>() {
            Ok(i) => parsed.push(i),
            Err(_) => return errors::bad_params(format!("Invalid campaignId: {id}")),
        }
    }
    let mut window = [None, None];
    for (i, k) in ["startDateTime", "endDateTime"].into_iter().enumerate() {
        if let Some(v) = q.get(k) {
            match crate::data::parse_datetime(v) {
                Some(t) => window[i] = Some(t),
                None => return errors::bad_params(format!("Invalid {k}: {v}")),
            }
        }
    }
    let [start, end] = window;
    let fixtures = lock(&p.store).fixtures.campaign_metrics.clone();
    let rows: Vec<Map<String, Value>> = parsed
        .iter()
        .filter_map(|id| match &fixtures {
            Some(f) => fixture_in_window(f, *id, start, end),
            None => p.campaign(*id).map(|c| generated_in_window(&c, start, end)),
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        to_csv(&rows),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_is_a_union_header_with_blanks() {
        let a = json!({"id": 1, "b": 2, "a": 1})
            .as_object()
            .unwrap()
            .clone();
        let b = json!({"id": 2, "c": "x,y"}).as_object().unwrap().clone();
        assert_eq!(to_csv(&[a, b]), "id,a,b,c\n1,1,2,\n2,,,\"x,y\"\n");
    }

    #[test]
    fn one_day_windows_add_up_to_the_whole() {
        const DAY: i64 = 86_400_000;
        let start = 1_767_225_600_000 + 5 * 3_600_000; // 05:00 on some day
        let c = json!({"id": 9, "messageMedium": "Email", "campaignState": "Finished",
            "sendSize": 1001, "startAt": start});
        let whole = generated_in_window(&c, None, None);
        let midnight = start - 5 * 3_600_000;
        let mut sum = 0;
        for d in 0..9 {
            let day =
                generated_in_window(&c, Some(midnight + d * DAY), Some(midnight + (d + 1) * DAY));
            sum += day["Total Email Sends"].as_u64().unwrap();
            if d == 8 {
                assert_eq!(day["Total Email Sends"], 0, "after the send span");
            }
        }
        assert_eq!(json!(sum), whole["Total Email Sends"]);
        assert_eq!(whole["Total Email Sends"], 1001);

        let rows: Vec<Map<String, Value>> = [
            json!({"id": 5, "date": "2026-03-01", "Total Email Sends": 10, "Unique Email Opens": "1,000"}),
            json!({"id": 5, "date": "2026-03-02", "Total Email Sends": 7}),
            json!({"id": 6, "Total Email Sends": 99}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        let t = |s: &str| crate::data::parse_datetime(s);
        let d1 = fixture_in_window(&rows, 5, t("2026-03-01"), t("2026-03-02")).unwrap();
        assert_eq!(
            (
                d1["Total Email Sends"].clone(),
                d1["Unique Email Opens"].clone()
            ),
            (json!(10), json!(1000))
        );
        assert!(!d1.contains_key("date"));
        let both = fixture_in_window(&rows, 5, t("2026-03-01"), t("2026-03-03")).unwrap();
        assert_eq!(both["Total Email Sends"], 17);
        let none = fixture_in_window(&rows, 5, t("2026-04-01"), t("2026-04-02")).unwrap();
        assert_eq!(none["Total Email Sends"], 0);
        // Undated rows are recorded totals, whatever the window.
        let undated = fixture_in_window(&rows, 6, t("2026-04-01"), t("2026-04-02")).unwrap();
        assert_eq!(undated["Total Email Sends"], 99);
        assert!(fixture_in_window(&rows, 7, None, None).is_none());
    }

    #[test]
    fn drafts_have_sent_nothing() {
        let c = json!({"id": 9, "messageMedium": "Email", "campaignState": "Draft"});
        let r = generated_row(&c);
        assert_eq!(r["Total Email Sends"], 0);
        let c = json!({"id": 9, "messageMedium": "Email", "campaignState": "Finished", "sendSize": 1000});
        let r = generated_row(&c);
        assert_eq!(r["Total Email Sends"], 1000);
        assert_eq!(r["Unique Email Opens"], 300);
    }
}
