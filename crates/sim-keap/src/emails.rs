//! Sent-email records (REST v1 `GET /emails`, `EmailSentQueryResult`): seeded over the days
//! before the simulator started, appended by `POST /emails/queue`, and listable by sent date
//! with `limit`/`offset`. The records and their generation live here, below the state that holds
//! them; the routes over them are in `v1` (`GET /emails`) and `sim` (`/_sim/emails`).
//!
//! A record carries Keap's first open and first click only (`opened_date`, `clicked_date`);
//! seeded ones open within [`config::EMAIL_OPEN_WITHIN_HOURS`] of being sent, and never after
//! the simulator's start.

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use serde_json::{Value, json};
use sim_core::{mix, pick};

use crate::{
    config,
    contacts::{ContactStore, v1_time},
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
