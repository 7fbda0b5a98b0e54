//! `GET /api/export/data.json`: newline-delimited JSON, streamed, windowed by time.

use std::ops::Range;

use axum::{
    body::{Body, Bytes},
    extract::{RawQuery, State},
    http::header,
    response::{IntoResponse, Response},
};
use chrono::{Duration, Utc};
use serde_json::{Map, Value};

use crate::{
    data::parse_datetime,
    errors,
    project::{Project, Shared, lock},
    query::Q,
    users,
};

/// The SPEC's `dataTypeName` enum.
pub const DATA_TYPES: &[&str] = &[
    "emailSend",
    "emailOpen",
    "emailClick",
    "hostedUnsubscribeClick",
    "emailComplaint",
    "emailBounce",
    "emailSendSkip",
    "pushSend",
    "pushOpen",
    "pushUninstall",
    "pushBounce",
    "pushSendSkip",
    "inAppSend",
    "inAppOpen",
    "inAppClick",
    "inAppClose",
    "inAppDelete",
    "inAppDelivery",
    "inAppSendSkip",
    "inAppRecall",
    "inboxSession",
    "inboxMessageImpression",
    "smsSend",
    "smsBounce",
    "smsClick",
    "smsReceived",
    "smsSendSkip",
    "webPushSend",
    "webPushClick",
    "webPushSendSkip",
    "rcsSend",
    "rcsSendSkip",
    "emailSubscribe",
    "emailUnSubscribe",
    "purchase",
    "customEvent",
    "user",
    "smsUsageInfo",
    "embeddedSend",
    "embeddedSendSkip",
    "embeddedClick",
    "embeddedReceived",
    "embeddedImpression",
    "embeddedSession",
    "unknownSession",
    "journeyExit",
    "whatsAppBounce",
    "whatsAppClick",
    "whatsAppReceived",
    "whatsAppSeen",
    "whatsAppSend",
    "whatsAppSendSkip",
    "whatsAppUsageInfo",
];

/// The SPEC's media type of the export.
pub const CONTENT_TYPE: &str = "application/x-json-stream";

/// Indices generated per streamed chunk.
const CHUNK: u64 = 2000;

/// `[start, end)` in epoch ms from `range` or `startDateTime`/`endDateTime` (UTC). Without either,
/// the SPEC's declared default `range=Today` applies.
fn window(q: &Q, now_ms: i64) -> Result<(i64, i64), Response> {
    let parse = |k: &str| -> Result<Option<i64>, Response> {
        match q.get(k) {
            None => Ok(None),
            Some(v) => parse_datetime(v)
                .map(Some)
                .ok_or_else(|| errors::bad_params(format!("Invalid {k}: {v}"))),
        }
    };
    let start = parse("startDateTime")?;
    let end = parse("endDateTime")?;
    if start.is_some() || end.is_some() {
        return Ok((start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX)));
    }
    let now = chrono::DateTime::<Utc>::from_timestamp_millis(now_ms).unwrap_or_default();
    let midnight = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp_millis())
        .unwrap_or(now_ms);
    let day = Duration::days(1).num_milliseconds();
    match q.get("range").unwrap_or("Today") {
        "Today" => Ok((midnight, midnight + day)),
        "Yesterday" => Ok((midnight - day, midnight)),
        "BeforeToday" => Ok((i64::MIN, midnight)),
        "All" => Ok((i64::MIN, i64::MAX)),
        other => Err(errors::bad_params(format!("Invalid range: {other}"))),
    }
}

/// `onlyFields` (repeatable and/or comma separated) and `omitFields` (comma separated).
struct FieldFilter {
    only: Vec<String>,
    omit: Vec<String>,
}

impl FieldFilter {
    fn from(q: &Q) -> Self {
        let split = |vals: Vec<&str>| -> Vec<String> {
            vals.iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Self {
            only: split(q.all("onlyFields")),
            omit: split(q.all("omitFields")),
        }
    }

    fn apply(&self, mut row: Map<String, Value>) -> Map<String, Value> {
        if !self.only.is_empty() {
            row.retain(|k, _| self.only.iter().any(|o| o == k));
        }
        row.retain(|k, _| !self.omit.iter().any(|o| o == k));
        row
    }
}

fn push_row(out: &mut String, row: &Map<String, Value>) {
    if let Ok(s) = serde_json::to_string(row) {
        out.push_str(&s);
        out.push('\n');
    }
}

pub async fn data_json(State(p): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    let q = Q::parse(raw.as_deref());
    let Some(data_type) = q.get("dataTypeName") else {
        return errors::bad_params("dataTypeName is required");
    };
    let Some(data_type) = DATA_TYPES.iter().copied().find(|t| *t == data_type) else {
        return errors::bad_params(format!("Invalid dataTypeName: {data_type}"));
    };
    let (start, end) = match window(&q, Project::now_ms()) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let campaign = match q.get("campaignId").map(str::parse::<u64>) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => return errors::bad_params("Invalid campaignId"),
    };
    let filter = FieldFilter::from(&q);
    p.control.incr("exports");
    let p_faults = p.clone();
    let is_user = data_type == "user";
    let range: Range<u64> = if is_user {
        if p.generated_users() == 0 {
            0..0
        } else {
            p.ds.user_range(start, end)
        }
    } else {
        p.ds.event_range(start, end)
    };
    let stream = futures::stream::unfold(Some(range.start), move |state| {
        let p = p.clone();
        let filter_only = filter.only.clone();
        let filter_omit = filter.omit.clone();
        async move {
            let filter = FieldFilter {
                only: filter_only,
                omit: filter_omit,
            };
            let i = state?;
            let mut out = String::new();
            if i < range.end {
                let stop = (i + CHUNK).min(range.end);
                if is_user {
                    let store = lock(&p.store);
                    for k in i..stop {
                        let email = p.ds.user_email(k);
                        if Project::generated_shadowed(&store, &email) {
                            continue;
                        }
                        let u = users::generated(&p.ds, k);
                        push_row(&mut out, &filter.apply(users::export_row(&u)));
                    }
                } else {
                    for k in i..stop {
                        let (kind, row) = p.ds.event(k);
                        if kind != data_type {
                            continue;
                        }
                        if campaign.is_some_and(|c| {
                            row.get("campaignId").and_then(Value::as_u64) != Some(c)
                        }) {
                            continue;
                        }
                        push_row(&mut out, &filter.apply(row));
                    }
                }
                return Some((Ok::<_, std::io::Error>(Bytes::from(out)), Some(stop)));
            }
            // Records written through the API, after the generated ones.
            let store = lock(&p.store);
            if is_user {
                let mut written: Vec<_> = store
                    .users
                    .values()
                    .filter(|u| u.updated_ms >= start && u.updated_ms < end)
                    .collect();
                written.sort_by_key(|u| u.updated_ms);
                for u in written {
                    push_row(&mut out, &filter.apply(users::export_row(u)));
                }
            } else {
                for e in store.events.iter().filter(|e| {
                    e.data_type == data_type
                        && e.at_ms >= start
                        && e.at_ms < end
                        && campaign.is_none_or(|c| {
                            e.row.get("campaignId").and_then(Value::as_u64) == Some(c)
                        })
                }) {
                    push_row(&mut out, &filter.apply(e.row.clone()));
                }
            }
            Some((Ok(Bytes::from(out)), None))
        }
    });
    // This response's cut, counted off the faults' `times`.
    let cut = {
        let mut f = lock(&p_faults.export_faults);
        match (f.cut_after_rows, f.times) {
            (Some(n), Some(t)) => {
                if t <= 1 {
                    f.cut_after_rows = None;
                    f.times = None;
                } else {
                    f.times = Some(t - 1);
                }
                (t > 0).then_some(n)
            }
            (cut, _) => cut,
        }
    };
    let faulted = Faulted {
        inner: Box::pin(stream),
        pending: Bytes::new(),
        sent: 0,
        cut,
        p: p_faults,
        state: FaultState::Open,
        held: false,
    };
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        Body::from_stream(futures::stream::unfold(faulted, Faulted::next)),
    )
        .into_response()
}

#[derive(PartialEq)]
enum FaultState {
    Open,
    /// Half a line went out; the connection drops next.
    Cutting,
    Done,
}

/// An export body with the project's mid-stream faults applied: cut off after `cut` rows, held
/// after `hold_after_rows` rows. Counts `exports_finished`, `exports_cut` and `exports_held`.
struct Faulted {
    inner: std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
    pending: Bytes,
    sent: u64,
    cut: Option<u64>,
    p: Shared,
    state: FaultState,
    held: bool,
}

impl Faulted {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        use futures::StreamExt as _;
        loop {
            match self.state {
                FaultState::Done => return None,
                FaultState::Cutting => {
                    self.state = FaultState::Done;
                    return Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "export cut off (simulated)",
                        )),
                        self,
                    ));
                }
                FaultState::Open => {}
            }
            if self.pending.is_empty() {
                match self.inner.next().await {
                    None => {
                        self.p.control.incr("exports_finished");
                        self.state = FaultState::Done;
                        return None;
                    }
                    Some(Err(e)) => return Some((Err(e), self)),
                    Some(Ok(b)) => self.pending = b,
                }
                continue;
            }
            let hold = lock(&self.p.export_faults)
                .hold_after_rows
                .filter(|h| *h >= self.sent);
            if hold == Some(self.sent) {
                if !self.held {
                    self.held = true;
                    self.p.control.incr("exports_held");
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            if self.cut == Some(self.sent) {
                // Half of the next line, then the connection drops.
                let line = self
                    .pending
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(self.pending.len());
                let half = self.pending.slice(..line / 2);
                self.p.control.incr("exports_cut");
                self.state = FaultState::Cutting;
                return Some((Ok(half), self));
            }
            let stop = match (self.cut, hold) {
                (Some(c), Some(h)) => Some(c.min(h)),
                (c, h) => c.or(h),
            };
            let Some(stop) = stop else {
                let out = std::mem::take(&mut self.pending);
                return Some((Ok(out), self));
            };
            // Up to `stop - sent` whole lines of what is pending.
            let mut allowed = stop - self.sent;
            let mut end = 0;
            for (i, b) in self.pending.iter().enumerate() {
                if *b == b'\n' {
                    end = i + 1;
                    allowed -= 1;
                    self.sent += 1;
                    if allowed == 0 {
                        break;
                    }
                }
            }
            if end == 0 {
                // No whole line pending: send it all (the rest of a line counts at its newline).
                end = self.pending.len();
            }
            let out = self.pending.split_to(end);
            return Some((Ok(out), self));
        }
    }
}
