//! Writes through the Track API: people upserts, one (`PUT /api/v1/customers/{id}`) or many
//! (`POST /api/v2/batch`, whose 207 partial failures are mapped back per item by `batch_index`).
//!
//! Customer.io's limits are checked before sending ([`check_person`]) so that a person gets a
//! validation error naming the field rather than a platform rejection.

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Api, Credentials, CustomerioConnector, budget_key, class, errors};
use crate::{ConnectorError, http::Call};

/// Identifiers and attribute names: at most 150 bytes.
pub const MAX_ID_BYTES: usize = 150;
/// Attribute values: at most 1000 bytes.
pub const MAX_VALUE_BYTES: usize = 1000;
/// Attributes per person.
pub const MAX_ATTRIBUTES: usize = 300;
/// One v2 operation.
pub const MAX_OP_BYTES: usize = 32 * 1024;
/// One v2 batch request.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// How a person is identified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersonId {
    Id(String),
    Email(String),
    /// E.164; only the v2 API identifies by phone.
    Phone(String),
}

impl PersonId {
    fn key(&self) -> &'static str {
        match self {
            PersonId::Id(_) => "id",
            PersonId::Email(_) => "email",
            PersonId::Phone(_) => "phone",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            PersonId::Id(v) | PersonId::Email(v) | PersonId::Phone(v) => v,
        }
    }
}

/// A person to create or update.
#[derive(Clone, Debug)]
pub struct PersonUpsert {
    pub identifier: PersonId,
    pub attributes: Map<String, Value>,
}

/// A person's profile in our terms (values already trimmed and checked by the caller); the
/// connector names them as Customer.io attributes.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// Stored as the `tags` attribute.
    pub tags: Option<Vec<String>>,
    /// Custom attributes, sent as they are.
    pub attributes: Map<String, Value>,
}

impl PersonUpsert {
    /// The person identified by `identifier`, with the profile as Customer.io attributes
    /// (`email`, `first_name`, `last_name`, `phone`, `tags` over any custom attribute of the
    /// same name).
    pub fn new(identifier: PersonId, profile: Profile) -> Self {
        let mut attributes = profile.attributes;
        let mut set = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                attributes.insert(k.to_owned(), Value::String(v));
            }
        };
        set("email", profile.email);
        set("first_name", profile.first_name);
        set("last_name", profile.last_name);
        set("phone", profile.phone);
        if let Some(tags) = profile.tags {
            attributes.insert("tags".into(), json!(tags));
        }
        Self {
            identifier,
            attributes,
        }
    }
}

/// A limit a person breaks: the field (relative to the person) and a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitError {
    pub field: String,
    pub message: String,
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    }
}

/// Customer.io's documented limits on a person: identifier and attribute names ≤150 bytes,
/// values ≤1000 bytes, ≤300 attributes.
/// An identifier that is a dot segment: it goes into a Track URL path, where `.` and `..` would
/// name another resource.
fn dot_segment(field: &str) -> LimitError {
    LimitError {
        field: field.to_owned(),
        message: "The identifier cannot be `.` or `..`: it is part of Customer.io's URL."
            .to_owned(),
    }
}

pub fn check_person(p: &PersonUpsert) -> Result<(), LimitError> {
    let id = p.identifier.value();
    if id == "." || id == ".." {
        return Err(dot_segment(p.identifier.key()));
    }
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(LimitError {
            field: p.identifier.key().to_owned(),
            message: format!(
                "The identifier must be 1–{MAX_ID_BYTES} bytes (Customer.io's limit); it is {} bytes.",
                id.len()
            ),
        });
    }
    if p.attributes.len() > MAX_ATTRIBUTES {
        return Err(LimitError {
            field: "attributes".to_owned(),
            message: format!(
                "Customer.io takes at most {MAX_ATTRIBUTES} attributes per person; {} were given.",
                p.attributes.len()
            ),
        });
    }
    for (name, value) in &p.attributes {
        if name.len() > MAX_ID_BYTES {
            return Err(LimitError {
                field: format!("attributes.{}", name.chars().take(40).collect::<String>()),
                message: format!(
                    "Attribute names are limited to {MAX_ID_BYTES} bytes by Customer.io."
                ),
            });
        }
        if value_len(value) > MAX_VALUE_BYTES {
            return Err(LimitError {
                field: format!("attributes.{name}"),
                message: format!(
                    "Attribute `{name}` is {} bytes; Customer.io limits values to {MAX_VALUE_BYTES} bytes.",
                    value_len(value)
                ),
            });
        }
    }
    Ok(())
}

/// One item the platform refused in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemFailure {
    /// The item's index in the caller's list.
    pub index: usize,
    pub message: String,
}

#[derive(Deserialize)]
struct BatchErrors {
    #[serde(default)]
    errors: Vec<BatchError>,
}

#[derive(Deserialize)]
struct BatchError {
    #[serde(default)]
    batch_index: Option<usize>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl CustomerioConnector {
    pub(super) fn track_call<'a>(&self, operation: &'static str, digest: &'a str) -> Call<'a> {
        Call {
            operation,
            class: class::TRACK,
            budget_key: digest,
            idempotent: true,
        }
    }

    /// Creates or updates one person (`PUT /api/v1/customers/{identifier}`). Phone identifiers
    /// go through v2, the only API that takes them.
    pub async fn upsert_person(
        &self,
        creds: &Credentials,
        person: &PersonUpsert,
    ) -> Result<(), ConnectorError> {
        if let PersonId::Phone(_) = person.identifier {
            let failures = self
                .upsert_batch(creds, std::slice::from_ref(person))
                .await?;
            return match failures.into_iter().next() {
                None => Ok(()),
                Some(f) => Err(ConnectorError::new(
                    domain::Platform::Customerio,
                    crate::ErrorKind::InvalidRequest,
                    f.message,
                )
                .with_status(207)),
            };
        }
        let key = creds.track_key();
        let digest = budget_key(key);
        let segment =
            crate::http::path_segment(domain::Platform::Customerio, person.identifier.value())?;
        let url = self.url(
            Api::Track,
            creds.region,
            &format!("/api/v1/customers/{segment}"),
        );
        let mut body = person.attributes.clone();
        if let PersonId::Email(e) = &person.identifier {
            body.insert("email".to_owned(), json!(e));
        }
        let answer = self
            .client
            .send(self.track_call("identify", &digest), |http| {
                http.put(&url)
                    .basic_auth(&creds.site_id, Some(key.expose_secret()))
                    .json(&body)
            })
            .await?;
        if answer.is_success() {
            Ok(())
        } else {
            Err(errors::map_answer(Api::Track, "updating a person", &answer))
        }
    }

    /// Creates or updates many people through `/api/v2/batch`, in requests under 500 KB.
    /// Answers the items Customer.io refused (207), by their index in `people`.
    pub async fn upsert_batch(
        &self,
        creds: &Credentials,
        people: &[PersonUpsert],
    ) -> Result<Vec<ItemFailure>, ConnectorError> {
        let ops: Vec<(usize, Value)> = people
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut identifiers = Map::new();
                identifiers.insert(p.identifier.key().to_owned(), json!(p.identifier.value()));
                (
                    i,
                    json!({
                        "type": "person",
                        "action": "identify",
                        "identifiers": identifiers,
                        "attributes": p.attributes,
                    }),
                )
            })
            .collect();
        let mut failures = Vec::new();
        let mut chunk: Vec<(usize, Value)> = Vec::new();
        let mut size = 16;
        for (i, op) in ops {
            let len = op.to_string().len();
            if len > MAX_OP_BYTES {
                failures.push(ItemFailure {
                    index: i,
                    message: format!(
                        "The person is {len} bytes as a Customer.io operation; the limit is {MAX_OP_BYTES}."
                    ),
                });
                continue;
            }
            if size + len + 1 > MAX_BATCH_BYTES && !chunk.is_empty() {
                failures.extend(self.send_batch(creds, std::mem::take(&mut chunk)).await?);
                size = 16;
            }
            size += len + 1;
            chunk.push((i, op));
        }
        if !chunk.is_empty() {
            failures.extend(self.send_batch(creds, chunk).await?);
        }
        failures.sort_by_key(|f| f.index);
        Ok(failures)
    }

    async fn send_batch(
        &self,
        creds: &Credentials,
        chunk: Vec<(usize, Value)>,
    ) -> Result<Vec<ItemFailure>, ConnectorError> {
        let key = creds.track_key();
        let digest = budget_key(key);
        let url = self.url(Api::Track, creds.region, "/api/v2/batch");
        let body = json!({"batch": chunk.iter().map(|(_, op)| op).collect::<Vec<_>>()});
        let answer = self
            .client
            .send(self.track_call("batch", &digest), |http| {
                http.post(&url)
                    .basic_auth(&creds.site_id, Some(key.expose_secret()))
                    .json(&body)
            })
            .await?;
        match answer.status.as_u16() {
            207 => {
                let parsed: BatchErrors =
                    errors::parse(Api::Track, "updating people in a batch", &answer)?;
                Ok(parsed
                    .errors
                    .into_iter()
                    .filter_map(|e| {
                        let (index, _) = chunk.get(e.batch_index?)?;
                        let field = e.field.filter(|f| !f.is_empty());
                        let what = e.message.or(e.reason).unwrap_or_else(|| "refused".into());
                        Some(ItemFailure {
                            index: *index,
                            message: match field {
                                Some(f) => format!("Customer.io refused `{f}`: {what}."),
                                None => format!("Customer.io refused this person: {what}."),
                            },
                        })
                    })
                    .collect())
            }
            200..=299 => Ok(Vec::new()),
            _ => Err(errors::map_answer(
                Api::Track,
                "updating people in a batch",
                &answer,
            )),
        }
    }
}

/// Event names: at most 100 bytes.
pub const MAX_EVENT_NAME_BYTES: usize = 100;
/// Event data: at most 100,000 bytes.
pub const MAX_EVENT_DATA_BYTES: usize = 100_000;

/// An event to track.
#[derive(Clone, Debug)]
pub struct TrackEvent {
    pub name: String,
    /// `None`: an anonymous event.
    pub person: Option<PersonId>,
    pub data: Map<String, Value>,
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
}

/// Checks the event against Customer.io's limits (name ≤100 bytes, data ≤100,000 bytes).
pub fn check_event(e: &TrackEvent) -> Result<(), LimitError> {
    let name = e.name.trim();
    if name.is_empty() || name.len() > MAX_EVENT_NAME_BYTES {
        return Err(LimitError {
            field: "name".into(),
            message: format!(
                "The event name must be 1–{MAX_EVENT_NAME_BYTES} bytes (Customer.io's limit)."
            ),
        });
    }
    let size = Value::Object(e.data.clone()).to_string().len();
    if size > MAX_EVENT_DATA_BYTES {
        return Err(LimitError {
            field: "data".into(),
            message: format!(
                "Event data is {size} bytes; Customer.io takes at most {MAX_EVENT_DATA_BYTES}."
            ),
        });
    }
    if let Some(p) = &e.person
        && (p.value() == "." || p.value() == "..")
    {
        return Err(dot_segment(p.key()));
    }
    if let Some(p) = &e.person
        && (p.value().is_empty() || p.value().len() > MAX_ID_BYTES)
    {
        return Err(LimitError {
            field: p.key().into(),
            message: format!(
                "The identifier must be 1–{MAX_ID_BYTES} bytes (Customer.io's limit)."
            ),
        });
    }
    Ok(())
}

impl CustomerioConnector {
    /// Tracks an event: through Data Pipelines (`/v1/track`) when a `cdpApiKey` is stored and the
    /// person has a user id, else through the Track API (`/api/v1/customers/{id}/events`, or
    /// `/api/v1/events` for an anonymous event). Answers which API took it.
    pub async fn track_event(
        &self,
        creds: &Credentials,
        event: &TrackEvent,
    ) -> Result<Api, ConnectorError> {
        if let (Some(cdp), Some(PersonId::Id(user))) = (&creds.cdp_api_key, &event.person) {
            let digest = budget_key(cdp);
            let url = self.url(Api::Cdp, creds.region, "/v1/track");
            let mut body =
                json!({"userId": user, "event": event.name.trim(), "properties": event.data});
            if let Some(t) = event.timestamp {
                body["timestamp"] = json!(t.to_rfc3339());
            }
            let answer = self
                .client
                .send(
                    Call {
                        operation: "cdp_track",
                        class: class::CDP,
                        budget_key: &digest,
                        idempotent: false,
                    },
                    |http| {
                        http.post(&url)
                            .basic_auth(cdp.expose_secret(), Some(""))
                            .header("X-Strict-Mode", "1")
                            .json(&body)
                    },
                )
                .await?;
            return if answer.is_success() {
                Ok(Api::Cdp)
            } else {
                Err(errors::map_answer(Api::Cdp, "tracking an event", &answer))
            };
        }
        let key = creds.track_key();
        let digest = budget_key(key);
        let mut body = json!({"name": event.name.trim(), "data": event.data});
        if let Some(t) = event.timestamp {
            body["timestamp"] = json!(t.timestamp());
        }
        let path = match &event.person {
            Some(p) => format!(
                "/api/v1/customers/{}/events",
                crate::http::path_segment(domain::Platform::Customerio, p.value())?
            ),
            None => "/api/v1/events".to_owned(),
        };
        let url = self.url(Api::Track, creds.region, &path);
        let answer = self
            .client
            .send(
                Call {
                    operation: "track_event",
                    class: class::TRACK,
                    budget_key: &digest,
                    idempotent: false,
                },
                |http| {
                    http.post(&url)
                        .basic_auth(&creds.site_id, Some(key.expose_secret()))
                        .json(&body)
                },
            )
            .await?;
        if answer.is_success() {
            Ok(Api::Track)
        } else {
            Err(errors::map_answer(Api::Track, "tracking an event", &answer))
        }
    }
}

/// A transactional message to send (`/v1/send/{email|push|sms|in_app}`).
#[derive(Clone, Debug)]
pub struct Transactional {
    pub channel: domain::operations::Channel,
    /// The transactional message's id or trigger name.
    pub message_id: String,
    /// Who it is for: an id or an email (`cio_…` ids are not taken here).
    pub person: PersonId,
    /// The address: an email for email, an E.164 number for SMS; none for push and in-app.
    pub to: Option<String>,
    pub data: Map<String, Value>,
    pub send_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Who an API-triggered broadcast goes to.
#[derive(Clone, Debug)]
pub enum BroadcastAudience {
    /// People by id (`ids`).
    Ids(Vec<String>),
    /// People by email (`emails`).
    Emails(Vec<String>),
}

#[derive(Deserialize)]
struct Triggered {
    id: Value,
}

#[derive(Deserialize)]
struct Queued {
    delivery_id: String,
}

impl CustomerioConnector {
    /// Triggers an API-triggered broadcast (App API `POST /v1/campaigns/{id}/triggers`) for the
    /// given people with `data`; answers the trigger id. Its budget is one per 10 s per
    /// workspace key (conservative: the platform documents "1 request / 10 s"); a second
    /// trigger within it answers `RateLimited` at once with the wait. Not repeated after an
    /// ambiguous failure.
    pub async fn trigger_broadcast(
        &self,
        creds: &Credentials,
        broadcast_id: &str,
        audience: &BroadcastAudience,
        data: &Map<String, Value>,
    ) -> Result<String, ConnectorError> {
        let digest = budget_key(&creds.api_key);
        let url = self.url(
            Api::App,
            creds.region,
            &format!(
                "/v1/campaigns/{}/triggers",
                crate::http::path_segment(domain::Platform::Customerio, broadcast_id)?
            ),
        );
        let mut body = json!({ "data": data });
        match audience {
            BroadcastAudience::Ids(ids) => {
                body["ids"] = json!(ids);
            }
            BroadcastAudience::Emails(emails) => {
                body["emails"] = json!(emails);
            }
        }
        let answer = self
            .client
            .send(
                Call {
                    operation: "trigger_broadcast",
                    class: class::TRIGGER,
                    budget_key: &digest,
                    idempotent: false,
                },
                |http| {
                    http.post(&url)
                        .bearer_auth(creds.api_key.expose_secret())
                        .json(&body)
                },
            )
            .await?;
        let t: Triggered = errors::parse(Api::App, "triggering the broadcast", &answer)?;
        Ok(match t.id {
            Value::String(s) => s,
            other => other.to_string(),
        })
    }

    /// Sends a transactional message; answers Customer.io's delivery id.
    pub async fn send_transactional(
        &self,
        creds: &Credentials,
        msg: &Transactional,
    ) -> Result<String, ConnectorError> {
        let digest = budget_key(&creds.api_key);
        let channel =
            crate::http::path_segment(domain::Platform::Customerio, msg.channel.as_str())?;
        let url = self.url(Api::App, creds.region, &format!("/v1/send/{channel}"));
        let mut identifiers = Map::new();
        identifiers.insert(msg.person.key().to_owned(), json!(msg.person.value()));
        let id: Value = msg
            .message_id
            .parse::<u64>()
            .map_or_else(|_| json!(msg.message_id), |n| json!(n));
        let mut body = json!({
            "transactional_message_id": id,
            "identifiers": identifiers,
            "message_data": msg.data,
        });
        if let Some(to) = &msg.to {
            body["to"] = json!(to);
        }
        if let Some(at) = msg.send_at {
            body["send_at"] = json!(at.timestamp());
        }
        let answer = self
            .client
            .send(
                Call {
                    operation: "send_transactional",
                    class: class::TRANSACTIONAL,
                    budget_key: &digest,
                    idempotent: false,
                },
                |http| {
                    http.post(&url)
                        .bearer_auth(creds.api_key.expose_secret())
                        .json(&body)
                },
            )
            .await?;
        let queued: Queued = errors::parse(Api::App, "sending a transactional message", &answer)?;
        Ok(queued.delivery_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_becomes_customerio_attributes() {
        let mut custom = Map::new();
        custom.insert("plan".into(), json!("pro"));
        custom.insert("first_name".into(), json!("overridden"));
        let p = PersonUpsert::new(
            PersonId::Id("42".into()),
            Profile {
                email: Some("a@example.com".into()),
                first_name: Some("Ada".into()),
                last_name: None,
                phone: Some("+15551234567".into()),
                tags: Some(vec!["vip".into()]),
                attributes: custom,
            },
        );
        assert_eq!(p.identifier, PersonId::Id("42".into()));
        assert_eq!(
            Value::Object(p.attributes),
            json!({"email": "a@example.com", "first_name": "Ada", "phone": "+15551234567",
                   "tags": ["vip"], "plan": "pro"})
        );
    }

    #[test]
    fn limits_name_the_field() {
        let mut p = PersonUpsert {
            identifier: PersonId::Id("x".repeat(151)),
            attributes: Map::new(),
        };
        assert_eq!(check_person(&p).unwrap_err().field, "id");
        p.identifier = PersonId::Email("a@example.com".into());
        p.attributes.insert("bio".into(), json!("y".repeat(1001)));
        assert_eq!(check_person(&p).unwrap_err().field, "attributes.bio");
        p.attributes.insert("bio".into(), json!("y".repeat(1000)));
        assert!(check_person(&p).is_ok());
        for i in 0..300 {
            p.attributes.insert(format!("a{i}"), json!(1));
        }
        assert_eq!(check_person(&p).unwrap_err().field, "attributes");
    }
}
