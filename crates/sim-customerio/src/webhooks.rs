//! Signed reporting webhooks (Customer.io → a receiver): one JSON event per POST, headers
//! `X-CIO-Timestamp` and `X-CIO-Signature` = hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` with
//! the workspace's signing key; retried on non-2xx with a short, configurable schedule.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use hmac::{Hmac, Mac};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use sim_core::{Control, lock};
use tokio::sync::{mpsc, oneshot};

use crate::{
    config::{MAX_WEBHOOK_DELIVERIES, WEBHOOK_RETRY_SCHEDULE_MS, WEBHOOK_TIMEOUT},
    data::Seeded,
    store::{Person, now},
};

/// A new ULID: 48 bits of milliseconds and 80 random bits, Crockford base32 (26 characters).
pub fn ulid() -> String {
    let ms = u128::try_from(chrono::Utc::now().timestamp_millis().max(0)).unwrap_or(0);
    let mut rnd = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut rnd);
    let r = rnd.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let v = ((ms & 0xFFFF_FFFF_FFFF) << 80) | r;
    const A: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26)
        .rev()
        .map(|i| {
            let idx = usize::try_from((v >> (i * 5)) & 0x1F).unwrap_or(0);
            char::from(A[idx])
        })
        .collect()
}

/// The `X-CIO-Signature` of a body: lowercase hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
pub fn sign(signing_key: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(signing_key.as_bytes()) else {
        return String::new();
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Retry knobs of the emitter.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    /// Waits before attempt 2, 3, …; attempts = 1 + its length.
    pub retry_schedule_ms: Vec<u64>,
    pub timeout_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            retry_schedule_ms: WEBHOOK_RETRY_SCHEDULE_MS.to_vec(),
            timeout_ms: u64::try_from(WEBHOOK_TIMEOUT.as_millis()).unwrap_or(4000),
        }
    }
}

/// One delivery attempt as `/_sim/webhooks/deliveries` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub event_id: String,
    pub url: String,
    pub attempt: u32,
    pub timestamp: String,
    pub signature: String,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// One event waiting in a receiver's queue; `done` gets the attempts when it is finished.
#[derive(Debug)]
pub struct Job {
    pub out: Outgoing,
    pub done: Option<oneshot::Sender<Vec<Attempt>>>,
}

/// The emitter's state.
#[derive(Debug)]
pub struct WebhookState {
    /// Where delivery counters go (`webhook_attempts`, `webhook_delivered`, `webhook_failed`).
    control: Control,
    pub config: Mutex<WebhookConfig>,
    pub attempts: Mutex<Vec<Attempt>>,
    /// One delivery queue per receiver URL: Customer.io backlogs later events while an earlier
    /// one is failing, so events reach a receiver one at a time, in order.
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Box<Job>>>>,
    /// The reporting webhook each workspace (us, eu) has configured in its UI
    /// (`POST /_sim/webhooks/reporting` stands in for the UI); events the workspace emits by
    /// itself (an unsubscribe through the API, the sandbox's event stream) go there.
    pub reporting: Mutex<[Option<ReportingHook>; 2]>,
}

/// A workspace's configured reporting webhook.
#[derive(Clone, Debug)]
pub struct ReportingHook {
    pub url: String,
    /// What its deliveries are signed with: Customer.io shows each reporting webhook's own
    /// signing key; the sandbox takes the one it is told, else the workspace's.
    pub signing_key: String,
}

impl WebhookState {
    pub fn new(control: Control) -> Self {
        Self {
            control,
            config: Mutex::default(),
            attempts: Mutex::default(),
            queues: Mutex::default(),
            reporting: Mutex::default(),
        }
    }

    pub fn reset(&self) {
        *lock(&self.config) = WebhookConfig::default();
        lock(&self.attempts).clear();
        // Dropping the senders ends each worker after its current event.
        lock(&self.queues).clear();
        *lock(&self.reporting) = Default::default();
    }

    fn record(&self, a: Attempt) {
        let mut v = lock(&self.attempts);
        if v.len() >= MAX_WEBHOOK_DELIVERIES {
            v.remove(0);
        }
        v.push(a);
    }
}

/// The named example events the fire route accepts, in the shapes of the reporting-webhooks spec.
pub const NAMED_EVENTS: &[&str] = &[
    "customer_subscribed",
    "customer_unsubscribed",
    "email_sent",
    "email_delivered",
    "email_opened",
    "email_clicked",
    "email_bounced",
    "email_unsubscribed",
    "email_converted",
    "sms_sent",
    "push_sent",
];

/// Builds a named event about seeded person 0 and the newest sent newsletter.
pub fn named_event(name: &str, seeded: &Seeded) -> Option<Value> {
    let newest_sent = seeded.sizes.newsletters.saturating_sub(1).max(1);
    event_about(name, seeded, 0, newest_sent)
}

/// Builds a named event about seeded person `person` and newsletter number `issue` (1-based).
pub fn event_about(name: &str, seeded: &Seeded, person: u64, issue: u64) -> Option<Value> {
    if !NAMED_EVENTS.contains(&name) {
        return None;
    }
    let (object_type, metric) = name.split_once('_')?;
    let person = seeded.person(person);
    let identifiers = json!({
        "id": person.as_ref().and_then(|p| p.id.clone()),
        "email": person.as_ref().map(|p| p.email.clone()),
        "cio_id": person.as_ref().map_or_else(|| "000000000000".to_owned(), |p| p.cio_id.clone()),
    });
    let email = person.as_ref().map(|p| p.email.clone());
    let mut data = json!({
        "identifiers": identifiers,
        "customer_id": person.as_ref().and_then(|p| p.id.clone()),
    });
    if object_type == "customer" {
        data["email_address"] = json!(email);
    } else {
        let nid = crate::data::NEWSLETTER_ID_BASE + issue;
        data["delivery_id"] = json!(format!("SBX{}", &ulid()[..25]));
        data["newsletter_id"] = json!(nid);
        data["content_id"] = json!(nid * 10 + 1);
        if object_type == "push" {
            data["recipients"] =
                json!([{"device_id": "device-token-sandbox", "device_platform": "ios"}]);
        } else {
            data["recipient"] = match object_type {
                "sms" => json!("+15551234567"),
                _ => json!(email),
            };
        }
        if object_type == "email" {
            data["subject"] = json!(format!("Weekly Digest #{issue}"));
        }
        match metric {
            "clicked" => {
                data["href"] = json!("https://example.com/articles/1");
                data["link_id"] = json!(1);
                data["machine"] = json!(false);
            }
            "opened" => {
                data["proxied"] = json!(false);
                data["prefetched"] = json!(false);
            }
            "bounced" => {
                data["failure_message"] = json!("550 5.1.1 The email account does not exist");
            }
            _ => {}
        }
    }
    Some(json!({
        "metric": metric,
        "event_id": ulid(),
        "object_type": object_type,
        "timestamp": now(),
        "data": data,
    }))
}

/// `customer`/`unsubscribed` as the reporting-webhooks spec shapes it (`person_unsubscribed`:
/// `data.identifiers` and `data.email_address` required; `object_type` is `customer` when no
/// message caused the change).
pub fn customer_unsubscribed(p: &Person) -> Value {
    json!({
        "event_id": ulid(),
        "object_type": "customer",
        "metric": "unsubscribed",
        "timestamp": now(),
        "data": {
            "identifiers": {"id": p.id, "email": p.email, "cio_id": p.cio_id},
            "customer_id": p.id.clone().unwrap_or_default(),
            "email_address": p.email,
        },
    })
}

/// One event to deliver.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub url: String,
    pub body: Vec<u8>,
    pub event_id: String,
    pub signing_key: String,
    /// Fixed timestamp for every attempt (tests); otherwise each attempt is signed anew with the
    /// time of sending (inferred: retries span days, so a stale timestamp would be rejected).
    pub timestamp: Option<String>,
    pub schedule: Vec<u64>,
    pub timeout: Duration,
}

/// Queues `job` behind the events already waiting for the same URL.
pub fn enqueue(state: &Arc<WebhookState>, job: Job) {
    let mut queues = lock(&state.queues);
    let url = job.out.url.clone();
    let mut job = Box::new(job);
    if let Some(tx) = queues.get(&url) {
        match tx.send(job) {
            Ok(()) => return,
            // The worker is gone: start a new one below.
            Err(mpsc::error::SendError(back)) => job = back,
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(worker(Arc::downgrade(state), rx));
    let _ = tx.send(job);
    queues.insert(url, tx);
}

async fn worker(state: Weak<WebhookState>, mut rx: mpsc::UnboundedReceiver<Box<Job>>) {
    let http = reqwest::Client::new();
    while let Some(job) = rx.recv().await {
        let Some(state) = state.upgrade() else { break };
        let job = *job;
        let attempts = deliver(state, http.clone(), job.out).await;
        if let Some(done) = job.done {
            let _ = done.send(attempts);
        }
    }
}

/// Delivers with retries; returns this delivery's attempts.
async fn deliver(state: Arc<WebhookState>, http: reqwest::Client, out: Outgoing) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    let total = out.schedule.len() + 1;
    for n in 0..total {
        if n > 0 {
            let wait = out.schedule.get(n - 1).copied().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        let ts = out.timestamp.clone().unwrap_or_else(|| now().to_string());
        let sig = sign(&out.signing_key, &ts, &out.body);
        let res = http
            .post(&out.url)
            .timeout(out.timeout)
            .header("content-type", "application/json")
            .header("x-cio-timestamp", &ts)
            .header("x-cio-signature", &sig)
            .body(out.body.clone())
            .send()
            .await;
        let (status, error) = match res {
            Ok(r) => (Some(r.status().as_u16()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let attempt = Attempt {
            event_id: out.event_id.clone(),
            url: out.url.clone(),
            attempt: u32::try_from(n + 1).unwrap_or(u32::MAX),
            timestamp: ts,
            signature: sig,
            status,
            error,
        };
        state.control.incr("webhook_attempts");
        state.record(attempt.clone());
        attempts.push(attempt);
        if status.is_some_and(|s| (200..300).contains(&s)) {
            state.control.incr("webhook_delivered");
            return attempts;
        }
    }
    state.control.incr("webhook_failed");
    attempts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_are_26_crockford_chars_and_sortable() {
        let a = ulid();
        assert_eq!(a.len(), 26);
        assert!(
            a.chars()
                .all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c))
        );
        assert_ne!(a, ulid());
        // The time part leads: a ULID made now sorts after one from 2020.
        assert!(a.as_str() > "01E4C4CT6YDC7Y5M7FE1GWWPQJ");
    }

    #[test]
    fn signature_covers_prefix_timestamp_and_body() {
        let s = sign("k", "1", b"{}");
        assert_eq!(s.len(), 64);
        assert_ne!(s, sign("k", "2", b"{}"));
        assert_ne!(s, sign("k", "1", b"{} "));
        assert_ne!(s, sign("k2", "1", b"{}"));
    }
}
