//! Iterable writes: user upserts (`users/update`, `users/bulkUpdate` in batches within 1,000 users
//! and 4 MB), events (`events/track`, `events/trackBulk`) and per-user sends
//! (`/api/{medium}/target`).
//!
//! Retry safety: upserts merge the same fields again, and every event we send carries an `id`
//! (Iterable updates the event with an existing id), so those are retried after an ambiguous
//! failure; a target send is not (it could send twice).

use chrono::{DateTime, Utc};
use domain::operations::Channel;
use serde_json::{Map, Value, json};

use super::{Credentials, IterableConnector, errors};
use crate::{ConnectorError, ErrorKind, http::Call};

/// Most users in one `users/bulkUpdate` call.
pub const BULK_MAX_USERS: usize = 1000;
/// Most events in one `events/trackBulk` call (Iterable states no limit; 1,000 like users).
pub const BULK_MAX_EVENTS: usize = 1000;
/// Largest bulk body Iterable accepts, less room for the wrapper.
pub const BULK_MAX_BYTES: usize = 4 * 1024 * 1024 - 1024;

/// One item of a bulk call that Iterable did not accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemFailure {
    /// Position in the caller's input.
    pub index: usize,
    pub kind: ErrorKind,
    pub reason: String,
}

/// What a bulk call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    pub accepted: usize,
    pub failed: Vec<ItemFailure>,
}

/// The media of `/api/{medium}/target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    Email,
    Sms,
    Push,
    InApp,
}

impl Medium {
    fn path(self) -> &'static str {
        match self {
            Medium::Email => "/api/email/target",
            Medium::Sms => "/api/sms/target",
            Medium::Push => "/api/push/target",
            Medium::InApp => "/api/inApp/target",
        }
    }
}

impl From<Channel> for Medium {
    fn from(channel: Channel) -> Self {
        match channel {
            Channel::Email => Medium::Email,
            Channel::Sms => Medium::Sms,
            Channel::Push => Medium::Push,
            Channel::InApp => Medium::InApp,
        }
    }
}

/// A user to create or update, already checked by the caller (at least one of `email` and
/// `user_id`; Iterable checks the rest).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Stored as the profile's `phoneNumber`.
    pub phone: Option<String>,
    /// More profile fields, merged into the user's.
    pub attributes: Map<String, Value>,
    /// Stored as the profile's `tags` array (Iterable has no tags of its own).
    pub tags: Option<Vec<String>>,
}

impl UserUpdate {
    /// Iterable's `users/update` body: `email`/`userId` and `dataFields`.
    fn body(&self) -> Value {
        let mut fields = self.attributes.clone();
        for (name, value) in [
            ("firstName", &self.first_name),
            ("lastName", &self.last_name),
            ("phoneNumber", &self.phone),
        ] {
            if let Some(v) = value {
                fields.insert(name.to_owned(), Value::String(v.clone()));
            }
        }
        if let Some(tags) = &self.tags {
            fields.insert("tags".to_owned(), json!(tags));
        }
        let mut user = Map::new();
        if let Some(e) = &self.email {
            user.insert("email".into(), json!(e));
        }
        if let Some(u) = &self.user_id {
            user.insert("userId".into(), json!(u));
            if self.email.is_none() {
                // Create the user by userId when Iterable has none yet.
                user.insert("preferUserId".into(), json!(true));
            }
        }
        user.insert("dataFields".into(), Value::Object(fields));
        Value::Object(user)
    }
}

/// An event about a user, already checked by the caller (a name, and an email or a userId).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Our id for the event: Iterable updates an event with a known id, so a retry never
    /// duplicates it.
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub data: Map<String, Value>,
}

impl Event {
    /// Iterable's `events/track` body (`createdAt` in epoch seconds).
    fn body(&self) -> Value {
        let mut ev = Map::new();
        ev.insert("id".into(), json!(self.id));
        ev.insert("eventName".into(), json!(self.name));
        if let Some(v) = &self.email {
            ev.insert("email".into(), json!(v));
        }
        if let Some(v) = &self.user_id {
            ev.insert("userId".into(), json!(v));
        }
        ev.insert("createdAt".into(), json!(self.created_at.timestamp()));
        ev.insert("dataFields".into(), Value::Object(self.data.clone()));
        Value::Object(ev)
    }
}

/// Who a target send goes to: Iterable sends to users, not addresses or numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    Email(String),
    UserId(String),
}

/// One message through a triggered campaign (`/api/{medium}/target`).
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub medium: Medium,
    /// A running triggered campaign of the medium.
    pub campaign_id: u64,
    pub recipient: Recipient,
    /// The template's data.
    pub data: Option<Map<String, Value>>,
    /// When to send (Iterable schedules up to 365 days ahead); now when absent.
    pub send_at: Option<DateTime<Utc>>,
}

impl Target {
    /// Iterable's target body (`sendAt` as `YYYY-MM-DD HH:MM:SS` UTC).
    fn body(&self) -> Value {
        let mut target = Map::new();
        target.insert("campaignId".into(), json!(self.campaign_id));
        match &self.recipient {
            Recipient::Email(e) => target.insert("recipientEmail".into(), json!(e)),
            Recipient::UserId(u) => target.insert("recipientUserId".into(), json!(u)),
        };
        if let Some(data) = &self.data {
            target.insert("dataFields".into(), Value::Object(data.clone()));
        }
        if let Some(at) = self.send_at {
            target.insert(
                "sendAt".into(),
                json!(at.format("%Y-%m-%d %H:%M:%S").to_string()),
            );
        }
        Value::Object(target)
    }
}

/// Splits `items` into batches of at most `max` items and `BULK_MAX_BYTES` serialised bytes;
/// answers index ranges. An item larger than the byte limit gets a batch of its own (and
/// Iterable's 413 for it).
pub fn batches(items: &[Value], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, item) in items.iter().enumerate() {
        let size = serde_json::to_vec(item).map_or(0, |b| b.len()) + 1;
        if i > start && (i - start >= max || bytes + size > BULK_MAX_BYTES) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < items.len() {
        out.push(start..items.len());
    }
    out
}

/// The `failedUpdates` categories of Iterable's bulk answers, and what each means.
const FAILURE_CATEGORIES: [(&str, &str, ErrorKind, &str); 10] = [
    (
        "invalidEmails",
        "email",
        ErrorKind::InvalidRequest,
        "Iterable says the email address is invalid",
    ),
    (
        "invalidUserIds",
        "userId",
        ErrorKind::InvalidRequest,
        "Iterable says the userId is invalid",
    ),
    (
        "invalidDataEmails",
        "email",
        ErrorKind::InvalidRequest,
        "Iterable refused the data (a field's type differs from the project's)",
    ),
    (
        "invalidDataUserIds",
        "userId",
        ErrorKind::InvalidRequest,
        "Iterable refused the data (a field's type differs from the project's)",
    ),
    (
        "conflictEmails",
        "email",
        ErrorKind::InvalidRequest,
        "the email and userId belong to different Iterable users",
    ),
    (
        "conflictUserIds",
        "userId",
        ErrorKind::InvalidRequest,
        "the email and userId belong to different Iterable users",
    ),
    (
        "forgottenEmails",
        "email",
        ErrorKind::InvalidRequest,
        "the user was forgotten (GDPR) in Iterable",
    ),
    (
        "forgottenUserIds",
        "userId",
        ErrorKind::InvalidRequest,
        "the user was forgotten (GDPR) in Iterable",
    ),
    (
        "notFoundEmails",
        "email",
        ErrorKind::NotFound,
        "Iterable has no such user",
    ),
    (
        "notFoundUserIds",
        "userId",
        ErrorKind::NotFound,
        "Iterable has no such user",
    ),
];

/// Maps a bulk answer's `failedUpdates` back to input positions.
fn failures(answer: &Value, batch: &[Value], offset: usize) -> Vec<ItemFailure> {
    let mut out: Vec<ItemFailure> = Vec::new();
    let Some(failed) = answer.get("failedUpdates") else {
        return out;
    };
    for (category, field, kind, reason) in FAILURE_CATEGORIES {
        let Some(ids) = failed.get(category).and_then(Value::as_array) else {
            continue;
        };
        for id in ids.iter().filter_map(Value::as_str) {
            for (i, item) in batch.iter().enumerate() {
                let index = offset + i;
                if item.get(field).and_then(Value::as_str) == Some(id)
                    && !out.iter().any(|f| f.index == index)
                {
                    out.push(ItemFailure {
                        index,
                        kind,
                        reason: format!("{reason} ({id})."),
                    });
                }
            }
        }
    }
    out
}

impl IterableConnector {
    pub(super) async fn post_json(
        &self,
        creds: &Credentials,
        operation: &'static str,
        class: &'static str,
        path: &str,
        body: &Value,
        idempotent: bool,
    ) -> Result<Value, ConnectorError> {
        let header = creds.header()?;
        let url = self.url(creds.region, path);
        let call = Call {
            operation,
            class,
            budget_key: creds.budget_key(),
            idempotent,
        };
        let answer = self
            .client
            .send(call, |http| {
                http.post(&url).header("Api-Key", header.clone()).json(body)
            })
            .await?;
        if !answer.is_success() {
            let e = errors::map(&answer, operation);
            // A key that reads but may not write is a read-only key: say so, as a permission.
            if errors::is_bad_key(&e) && self.channels_raw(creds).await.is_ok() {
                return Err(ConnectorError {
                    kind: ErrorKind::PermissionDenied,
                    message: errors::read_only_message(operation),
                    ..e
                });
            }
            return Err(e);
        }
        let v: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| errors::malformed(operation, answer.status.as_u16(), "unreadable JSON"))?;
        // Iterable's envelope says "Success" on success; anything else in a 2xx is an error.
        match v.get("code").and_then(Value::as_str) {
            None | Some("Success") => Ok(v),
            Some(code) => Err(ConnectorError::new(
                domain::Platform::Iterable,
                ErrorKind::InvalidRequest,
                format!(
                    "Iterable refused {}: {} ({code}).",
                    errors::what(operation),
                    v.get("msg")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given")
                ),
            )
            .with_status(answer.status.as_u16())),
        }
    }

    /// Upserts one user (`POST /api/users/update`). Fields are merged.
    pub async fn upsert_user(
        &self,
        creds: &Credentials,
        user: &UserUpdate,
    ) -> Result<(), ConnectorError> {
        self.post_json(
            creds,
            "upsert_user",
            "users_update",
            "/api/users/update",
            &user.body(),
            true,
        )
        .await
        .map(|_| ())
    }

    /// Upserts many users through `users/bulkUpdate`, in batches within Iterable's limits; the
    /// users Iterable reports in `failedUpdates` are answered by position. A batch Iterable
    /// refuses as a whole (400/413) fails each of its users; credentials, rate-limit and
    /// connection errors fail the call.
    pub async fn bulk_upsert_users(
        &self,
        creds: &Credentials,
        users: &[UserUpdate],
    ) -> Result<BulkOutcome, ConnectorError> {
        let users: Vec<Value> = users.iter().map(UserUpdate::body).collect();
        self.bulk(
            creds,
            &users,
            BULK_MAX_USERS,
            (
                "bulk_upsert_users",
                "users_bulk_update",
                "/api/users/bulkUpdate",
                "users",
            ),
        )
        .await
    }

    /// Tracks one event (`POST /api/events/track`); its id makes retries safe.
    pub async fn track_event(
        &self,
        creds: &Credentials,
        event: &Event,
    ) -> Result<(), ConnectorError> {
        self.post_json(
            creds,
            "track_event",
            "events_track",
            "/api/events/track",
            &event.body(),
            true,
        )
        .await
        .map(|_| ())
    }

    /// Tracks many events through `events/trackBulk`, in batches.
    pub async fn track_events(
        &self,
        creds: &Credentials,
        events: &[Event],
    ) -> Result<BulkOutcome, ConnectorError> {
        let events: Vec<Value> = events.iter().map(Event::body).collect();
        self.bulk(
            creds,
            &events,
            BULK_MAX_EVENTS,
            (
                "track_events",
                "events_track_bulk",
                "/api/events/trackBulk",
                "events",
            ),
        )
        .await
    }

    async fn bulk(
        &self,
        creds: &Credentials,
        items: &[Value],
        max: usize,
        (operation, class, path, key): (&'static str, &'static str, &'static str, &'static str),
    ) -> Result<BulkOutcome, ConnectorError> {
        let mut outcome = BulkOutcome::default();
        for range in batches(items, max) {
            let batch = &items[range.clone()];
            let mut wrapper = serde_json::Map::new();
            wrapper.insert(key.to_owned(), Value::Array(batch.to_vec()));
            let body = Value::Object(wrapper);
            match self
                .post_json(creds, operation, class, path, &body, true)
                .await
            {
                Ok(answer) => {
                    let failed = failures(&answer, batch, range.start);
                    outcome.accepted += batch.len() - failed.len();
                    outcome.failed.extend(failed);
                }
                Err(e) if e.kind == ErrorKind::InvalidRequest => {
                    outcome.failed.extend(range.map(|index| ItemFailure {
                        index,
                        kind: e.kind,
                        reason: e.message.clone(),
                    }));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(outcome)
    }

    /// Sends one message through a triggered campaign (`POST /api/{medium}/target`). Answers
    /// Iterable's `params.messageId` or `params.id` when it gives one.
    pub async fn send_target(
        &self,
        creds: &Credentials,
        target: &Target,
    ) -> Result<Option<String>, ConnectorError> {
        let v = self
            .post_json(
                creds,
                "send_message",
                "target",
                target.medium.path(),
                &target.body(),
                false,
            )
            .await?;
        Ok(v.get("params").and_then(|p| {
            p.get("messageId")
                .or_else(|| p.get("id"))
                .and_then(super::models::id_string)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batches_respect_count_and_bytes() {
        let small: Vec<Value> = (0..2500)
            .map(|i| json!({"email": format!("u{i}@x.io")}))
            .collect();
        let b = batches(&small, 1000);
        assert_eq!(b, vec![0..1000, 1000..2000, 2000..2500]);
        let big = "x".repeat(1024 * 1024);
        let large: Vec<Value> = (0..9)
            .map(|_| json!({"dataFields": {"blob": big}}))
            .collect();
        let b = batches(&large, 1000);
        assert!(b.len() >= 3);
        assert!(b.iter().all(|r| r.len() <= 3));
        assert_eq!(b.last().unwrap().end, 9);
        assert!(batches(&[], 10).is_empty());
    }

    #[test]
    fn bodies_use_iterables_field_names() {
        let user = UserUpdate {
            user_id: Some("u-1".into()),
            first_name: Some("Ada".into()),
            phone: Some("+15550100".into()),
            attributes: Map::from_iter([("plan".to_owned(), json!("pro"))]),
            tags: Some(vec!["vip".into()]),
            ..UserUpdate::default()
        };
        assert_eq!(
            user.body(),
            json!({"userId": "u-1", "preferUserId": true, "dataFields":
                {"plan": "pro", "firstName": "Ada", "phoneNumber": "+15550100", "tags": ["vip"]}})
        );
        let with_email = UserUpdate {
            email: Some("a@x.io".into()),
            user_id: Some("u-1".into()),
            ..UserUpdate::default()
        };
        assert_eq!(
            with_email.body(),
            json!({"email": "a@x.io", "userId": "u-1", "dataFields": {}})
        );

        let at = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let event = Event {
            id: "e1".into(),
            name: "signup".into(),
            email: Some("a@x.io".into()),
            user_id: None,
            created_at: at,
            data: Map::new(),
        };
        assert_eq!(
            event.body(),
            json!({"id": "e1", "eventName": "signup", "email": "a@x.io",
                "createdAt": 1_714_564_800, "dataFields": {}})
        );

        let target = Target {
            medium: Channel::InApp.into(),
            campaign_id: 7,
            recipient: Recipient::UserId("u-1".into()),
            data: Some(Map::from_iter([("issue".to_owned(), json!(12))])),
            send_at: Some(at),
        };
        assert_eq!(target.medium.path(), "/api/inApp/target");
        assert_eq!(
            target.body(),
            json!({"campaignId": 7, "recipientUserId": "u-1", "dataFields": {"issue": 12},
                "sendAt": "2024-05-01 12:00:00"})
        );
    }

    #[test]
    fn failed_updates_map_back_to_positions() {
        let batch = vec![
            json!({"email": "a@x.io"}),
            json!({"email": "bad"}),
            json!({"userId": "u3"}),
        ];
        let answer = json!({"successCount": 1, "failCount": 2,
            "failedUpdates": {"invalidEmails": ["bad"], "notFoundUserIds": ["u3"]}});
        let f = failures(&answer, &batch, 10);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].index, 11);
        assert_eq!(f[0].kind, ErrorKind::InvalidRequest);
        assert_eq!(f[1].index, 12);
        assert_eq!(f[1].kind, ErrorKind::NotFound);
    }
}
