//! Sent-email records (REST v1 `GET /emails`, `EmailSentQueryResult`): seeded over the days
//! before the simulator started, appended by `POST /emails/queue`, and listable by sent date
//! with `limit`/`offset`.
//!
//! A record carries Keap's first open and first click only (`opened_date`, `clicked_date`);
//! seeded ones open within [`config::EMAIL_OPEN_WITHIN_HOURS`] of being sent, and never after
//! the simulator's start.

use axum::{
    Json,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sim_core::{mix, pick};

use crate::{
    config,
    contacts::{ContactStore, parse_time, v1_time},
    state::{App, lock},
    wire::{param, v1_bad_input, v1_error, v1_list, v1_paging},
};

const SUBJECTS: &[&str] = &[
    "Your weekly digest",
    "This week in newsletters",
    "Welcome aboard!",
    "Last chance: 20% off paid plans",
    "Webinar replay inside",
    "We miss you",
    "Your receipt",
];

/// One sent email as Keap keeps it.
#[derive(Clone, Debug)]
pub struct SentEmail {
    pub id: u64,
    pub contact_id: u64,
    pub to: String,
    pub subject: String,
    pub sent: DateTime<Utc>,
    pub received: Option<DateTime<Utc>>,
    pub opened: Option<DateTime<Utc>>,
    pub clicked: Option<DateTime<Utc>>,
}

impl SentEmail {
    /// `EmailSentQueryResult` (v1 times, integer ids).
    pub fn v1(&self) -> Value {
        json!({
            "id": self.id,
            "contact_id": self.contact_id,
            "subject": self.subject,
            "headers": null,
            "sent_to_address": self.to,
            "sent_to_cc_addresses": null,
            "sent_to_bcc_addresses": null,
            "sent_from_address": config::EMAIL_FROM,
            "sent_from_reply_address": config::EMAIL_FROM,
            "sent_date": v1_time(self.sent),
            "received_date": self.received.map(v1_time),
            "opened_date": self.opened.map(v1_time),
            "clicked_date": self.clicked.map(v1_time),
            "original_provider": "INFUSIONSOFT",
            "original_provider_id": null,
        })
    }
}

fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(t.timestamp_millis())
        .single()
        .unwrap_or(t)
}

/// `n` records sent evenly over `[from, to)` to the store's contacts, ids from `first_id`;
/// opens and clicks that would fall after `now` have not happened yet.
pub fn generate(
    seed: u64,
    contacts: &ContactStore,
    n: u64,
    first_id: u64,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Vec<SentEmail> {
    let population = contacts.len().max(1);
    let span_ms = (to - from).num_milliseconds().max(1);
    let step = (span_ms / i64::try_from(n.max(1)).unwrap_or(i64::MAX)).max(1);
    (0..n)
        .filter_map(|i| {
            let h = mix(seed ^ (i + first_id).wrapping_mul(0x2545_F491));
            let h2 = mix(h);
            let contact = contacts.get(1 + h % population)?;
            let jitter = i64::try_from(h2 % u64::try_from(step).unwrap_or(1)).unwrap_or(0);
            let sent = millis(
                from + Duration::milliseconds(i64::try_from(i).unwrap_or(0) * step + jitter),
            );
            // About 45% are opened, and about 4 in 10 of those clicked.
            let open_after = Duration::minutes(
                i64::try_from((h2 >> 20) % (config::EMAIL_OPEN_WITHIN_HOURS * 60)).unwrap_or(0),
            );
            let opened = ((h >> 32) % 100 < 45)
                .then(|| millis(sent + open_after + Duration::seconds(7)))
                .filter(|t| *t <= now);
            let clicked = opened
                .filter(|_| (h >> 40) % 10 < 4)
                .map(|o| {
                    millis(
                        o + Duration::seconds(30 + i64::try_from((h2 >> 40) % 3600).unwrap_or(0)),
                    )
                })
                .filter(|t| *t <= now);
            Some(SentEmail {
                id: first_id + i,
                contact_id: contact.id,
                to: contact.email1().unwrap_or_default().to_owned(),
                subject: (*pick(SUBJECTS, h >> 8)).to_owned(),
                sent,
                received: Some(sent + Duration::seconds(2 + i64::try_from(h2 % 30).unwrap_or(0))),
                opened,
                clicked,
            })
        })
        .collect()
}

/// The seeded records: `n` over the [`config::EMAIL_SEED_DAYS`] days before `now`.
pub fn seeded(seed: u64, contacts: &ContactStore, n: u64, now: DateTime<Utc>) -> Vec<SentEmail> {
    let from = now - Duration::days(config::EMAIL_SEED_DAYS);
    generate(seed, contacts, n, config::EMAIL_FIRST_ID, (from, now), now)
}

fn time_param(q: &[(String, String)], name: &str) -> Result<Option<DateTime<Utc>>, Response> {
    match param(q, name) {
        None | Some("") => Ok(None),
        Some(v) => parse_time(v).map(Some).ok_or_else(v1_bad_input),
    }
}

/// `GET /crm/rest/v1/emails`: `since_sent_date`/`until_sent_date` (both inclusive, inferred;
/// `until` needs `since`, as the spec says), `contact_id`, `email`, `ordered` (id order either
/// way here), paged by `limit`/`offset`.
pub async fn list(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let (limit, offset) = match v1_paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (since, until) = match (
        time_param(&q, "since_sent_date"),
        time_param(&q, "until_sent_date"),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if until.is_some() && since.is_none() {
        return v1_error(
            StatusCode::BAD_REQUEST,
            "since_sent_date must be present if until_sent_date is provided",
        );
    }
    let contact_id = match param(&q, "contact_id").filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => return v1_bad_input(),
        },
    };
    let email = param(&q, "email").filter(|s| !s.is_empty());
    let data = lock(&app.data);
    let matching: Vec<&SentEmail> = data
        .emails
        .iter()
        .filter(|e| since.is_none_or(|s| e.sent >= s) && until.is_none_or(|u| e.sent <= u))
        .filter(|e| contact_id.is_none_or(|c| e.contact_id == c))
        .filter(|e| email.is_none_or(|m| e.to.eq_ignore_ascii_case(m)))
        .collect();
    let count = matching.len() as u64;
    let items = matching
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(SentEmail::v1)
        .collect();
    drop(data);
    v1_list(
        &headers,
        uri.path(),
        &q,
        "emails",
        items,
        count,
        offset,
        limit,
    )
}

/// `GET /_sim/emails`: every record, in the v1 shape (what a test compares against).
pub async fn dump(State(app): State<App>) -> Json<Value> {
    let data = lock(&app.data);
    Json(json!({"emails": data.emails.iter().map(SentEmail::v1).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddRequest {
    count: u64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// `POST /_sim/emails {"count", "from", "to"}`: adds `count` generated records sent over
/// `[from, to)` (e.g. more than a client's page cap).
pub async fn add(State(app): State<App>, Json(r): Json<AddRequest>) -> Response {
    if r.from >= r.to || r.count > 1_000_000 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "from must be before to, count at most 1000000"})),
        )
            .into_response();
    }
    let mut data = lock(&app.data);
    let first = data.next_email_id();
    let added = generate(
        app.options.seed ^ first,
        &data.contacts,
        r.count,
        first,
        (r.from, r.to),
        Utc::now(),
    );
    let n = added.len();
    data.emails.extend(added);
    data.emails.sort_by_key(|e| (e.sent, e.id));
    (StatusCode::CREATED, Json(json!({"added": n}))).into_response()
}
