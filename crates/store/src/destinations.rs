//! Event destinations' storage (migration 0010, issue 19): the destinations a publisher (or the
//! operator, for every publisher) registered, one message per (destination, event) with its
//! delivery state, and every attempt.
//!
//! A message is a row that any replica's worker claims with a lease, so delivery is at least
//! once and survives restarts. Two rules live in the claim itself: a message waits while an
//! earlier message for the same reader (`reader`, the address it is about) to the same
//! destination is still pending, and a destination has at most `limit` messages in flight.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{Platform, PublisherId};
use serde_json::Value;

use crate::{StoreError, StoreResult, consent::corrupt};

/// Whose destinations a call reads or changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationOwner {
    /// One publisher's: its events only.
    Publisher(PublisherId),
    /// The operator's: every publisher's events.
    Operator,
}

impl DestinationOwner {
    /// The publisher id column's value: `None` for the operator.
    pub fn publisher_id(&self) -> Option<&str> {
        match self {
            DestinationOwner::Publisher(p) => Some(p.as_str()),
            DestinationOwner::Operator => None,
        }
    }
}

/// A registered destination. Its secrets stay sealed here; `Debug` leaves them out.
#[derive(Clone, PartialEq, Eq)]
pub struct Destination {
    /// `dst_…`
    pub id: String,
    /// `None`: operator-wide.
    pub publisher_id: Option<String>,
    pub url: String,
    pub description: Option<String>,
    /// Event types it receives (`email.opened`, `email.*`); empty = every type.
    pub event_types: Vec<String>,
    /// Platforms whose events it receives; empty = every platform (and our own events).
    pub platforms: Vec<Platform>,
    pub enabled: bool,
    /// Why it was disabled, when the delivery worker disabled it.
    pub disabled_reason: Option<String>,
    /// The vault envelope of the current signing secret.
    pub secret: Vec<u8>,
    /// The secret before the last rotation, and until when it still signs.
    pub old_secret: Option<(Vec<u8>, DateTime<Utc>)>,
    /// The first failed attempt since the last success.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("id", &self.id)
            .field("publisher_id", &self.publisher_id)
            .field("url", &self.url)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Destination {
    /// Whether this destination receives an event of `event_type` from `platform` (`None`: our
    /// own events, such as `sync.succeeded` of no one platform).
    pub fn wants(&self, event_type: &str, platform: Option<Platform>) -> bool {
        let type_ok = self.event_types.is_empty()
            || self.event_types.iter().any(|t| match t.strip_suffix(".*") {
                Some(subject) => event_type
                    .split_once('.')
                    .is_some_and(|(s, _)| s == subject),
                None => t == event_type,
            });
        let platform_ok =
            self.platforms.is_empty() || platform.is_some_and(|p| self.platforms.contains(&p));
        type_ok && platform_ok
    }
}

/// A destination to register.
#[derive(Clone)]
pub struct NewDestination {
    pub id: String,
    pub owner: DestinationOwner,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub platforms: Vec<Platform>,
    /// The vault key that sealed `secret`.
    pub secret_key_id: u32,
    pub secret: Vec<u8>,
    pub now: DateTime<Utc>,
}

/// Changes to a destination; `None` keeps a field.
#[derive(Clone, Debug, Default)]
pub struct DestinationPatch {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub event_types: Option<Vec<String>>,
    pub platforms: Option<Vec<Platform>>,
    /// `true` also clears the disabled reason and the failing streak.
    pub enabled: Option<bool>,
}

/// An event to push: a received webhook event, or one of ours (`suppression.created`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundEvent {
    /// The event's id (`evt_…` for a received one): a destination gets one message per id.
    pub event_id: String,
    pub publisher_id: String,
    /// `email.opened`, `sync.succeeded`, …
    pub event_type: String,
    pub platform: Option<Platform>,
    /// Whom it is about (a normalised address, else a user id): messages for one reader are
    /// delivered in order.
    pub reader: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// The body's `data`.
    pub data: Value,
}

impl OutboundEvent {
    /// A received webhook event, with the contract's Event shape as its data.
    pub fn received(event: &crate::NewEvent) -> Self {
        let shape = domain::shapes::Event {
            id: event.id.clone(),
            platform: event.platform,
            kind: event.kind.clone(),
            platform_event_id: event.platform_event_id.clone(),
            occurred_at: event.occurred_at,
            received_at: event.received_at,
            email: event.email.clone(),
            user_id: event.user_id.clone(),
            campaign_id: event.campaign_id.clone(),
            data: event.data.clone(),
        };
        let mut data = serde_json::to_value(shape).unwrap_or(Value::Null);
        if let Some(o) = data.as_object_mut() {
            o.insert(
                "publisherId".into(),
                Value::from(event.publisher_id.clone()),
            );
            o.insert(
                "integrationId".into(),
                Value::from(event.integration_id.clone()),
            );
        }
        Self {
            event_id: event.id.clone(),
            publisher_id: event.publisher_id.clone(),
            event_type: event.kind.clone(),
            platform: Some(event.platform),
            reader: event
                .email
                .as_deref()
                .map(|e| e.trim().to_lowercase())
                .or_else(|| event.user_id.clone()),
            occurred_at: event.occurred_at,
            data,
        }
    }

    /// The JSON body, as Standard Webhooks suggests: `{"type", "timestamp", "data"}`.
    pub fn payload(&self) -> String {
        serde_json::json!({
            "type": self.event_type,
            "timestamp": self.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": self.data,
        })
        .to_string()
    }
}

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageStatus {
    /// Waiting for its (next) attempt, or in flight.
    Pending,
    Succeeded,
    /// Every attempt of the schedule failed.
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Succeeded => "succeeded",
            MessageStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        [
            MessageStatus::Pending,
            MessageStatus::Succeeded,
            MessageStatus::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One event for one destination.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub seq: i64,
    /// `msg_…`: the `webhook-id` of every attempt.
    pub id: String,
    pub destination_id: String,
    pub publisher_id: String,
    pub event_id: String,
    pub event_type: String,
    pub platform: Option<Platform>,
    pub reader: Option<String>,
    /// The body, byte for byte as signed.
    pub payload: String,
    pub status: MessageStatus,
    /// Attempts in the current schedule (a manual retry or a replay starts a new one).
    pub attempts: u32,
    pub next_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Message {
    // The reader and the payload (an address) stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("destination_id", &self.destination_id)
            .field("event_type", &self.event_type)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// `None`: no answer (timeout, refused connection, blocked address).
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The first 1 KiB of the answer.
    pub response: Option<String>,
    pub error: Option<String>,
}

/// How an attempt ends its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Succeeded,
    /// Failed; try again at this time.
    Retry {
        next_at: DateTime<Utc>,
    },
    /// Failed for the last time.
    Failed,
}

/// What [`DestinationStore::finish_message`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Finished {
    /// `false`: the lease was lost (another worker has the message); nothing was written.
    pub recorded: bool,
    /// This failure disabled the destination (failing for `disable_after`).
    pub disabled: bool,
}

/// A page of messages, newest first, each with its attempts (oldest first).
#[derive(Clone, Debug)]
pub struct MessagePage {
    pub messages: Vec<(Message, Vec<Attempt>)>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next: Option<i64>,
}

/// Event destinations' storage (both backends; see the module docs).
#[async_trait]
pub trait DestinationStore: Send + Sync {
    async fn create_destination(&self, new: NewDestination) -> StoreResult<Destination>;
    async fn get_destination(
        &self,
        owner: &DestinationOwner,
        id: &str,
    ) -> StoreResult<Option<Destination>>;
    /// Any owner's (the delivery worker).
    async fn destination_by_id(&self, id: &str) -> StoreResult<Option<Destination>>;
    /// Oldest first.
    async fn list_destinations(&self, owner: &DestinationOwner) -> StoreResult<Vec<Destination>>;
    async fn update_destination(
        &self,
        owner: &DestinationOwner,
        id: &str,
        patch: DestinationPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Destination>>;
    /// Deletes it with its messages; answers whether it existed.
    async fn delete_destination(&self, owner: &DestinationOwner, id: &str) -> StoreResult<bool>;
    /// Makes `secret` the signing secret; the current one keeps signing until `old_until`.
    async fn rotate_destination_secret(
        &self,
        owner: &DestinationOwner,
        id: &str,
        secret_key_id: u32,
        secret: Vec<u8>,
        old_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Destination>>;

    /// One pending message per enabled destination that wants each event (its publisher's and
    /// the operator's), due at `now`; an event a destination already has is not queued again.
    /// Answers how many messages were queued.
    async fn publish_events(
        &self,
        events: &[OutboundEvent],
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Claims the oldest due message of an enabled destination whose reader has no earlier
    /// pending message there and whose destination has fewer than `per_destination` in flight,
    /// for `worker` until `lease_until`, counting an attempt.
    async fn claim_message(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        per_destination: u32,
    ) -> StoreResult<Option<Message>>;
    /// Records an attempt of a claimed message and its outcome; a failure starts (or continues)
    /// the destination's failing streak and disables it once the streak is `disable_after`
    /// long, with `disable_reason`; a success ends the streak.
    async fn finish_message(
        &self,
        message_id: &str,
        worker: &str,
        attempt: Attempt,
        outcome: DeliveryOutcome,
        disable_after: chrono::Duration,
        disable_reason: &str,
    ) -> StoreResult<Finished>;
    /// A destination's messages, newest first, `limit` of them, older than `before`.
    async fn list_messages(
        &self,
        destination_id: &str,
        status: Option<MessageStatus>,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<MessagePage>;
    async fn get_message(
        &self,
        destination_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<(Message, Vec<Attempt>)>>;
    /// Queues a message again now, with a new schedule (unless it is in flight: then `None`).
    async fn retry_message(
        &self,
        destination_id: &str,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Message>>;
    /// Every destination of every owner (master-key rotation re-seals their secrets).
    async fn all_destinations(&self) -> StoreResult<Vec<Destination>>;
    /// Replaces a sealed secret (`previous`: the rotated-out one) if it still holds `old`, so a
    /// concurrent rotation is never overwritten; answers whether it did.
    async fn reseal_destination_secret(
        &self,
        id: &str,
        previous: bool,
        old: &[u8],
        new: &[u8],
        key_id: u32,
    ) -> StoreResult<bool>;
    /// Queues every message of the destination created at or after `since` again now, with a
    /// new schedule (those in flight are left to finish); answers how many.
    async fn replay_messages(
        &self,
        destination_id: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
}

fn platform(s: &str) -> StoreResult<Platform> {
    Platform::parse(s).ok_or_else(|| corrupt("platform", s))
}

#[derive(sqlx::FromRow)]
pub(crate) struct DestinationRow {
    id: String,
    publisher_id: Option<String>,
    url: String,
    description: Option<String>,
    event_types: String,
    platforms: String,
    enabled: bool,
    disabled_reason: Option<String>,
    secret: Vec<u8>,
    old_secret: Option<Vec<u8>>,
    old_secret_until: Option<DateTime<Utc>>,
    failing_since: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(crate) const DESTINATION_COLUMNS: &str = "id, publisher_id, url, description, event_types, \
     platforms, enabled, disabled_reason, secret, old_secret, old_secret_until, failing_since, \
     created_at, updated_at";

impl TryFrom<DestinationRow> for Destination {
    type Error = StoreError;

    fn try_from(r: DestinationRow) -> StoreResult<Self> {
        let event_types: Vec<String> = serde_json::from_str(&r.event_types)
            .map_err(|_| corrupt("destination event types", &r.event_types))?;
        let platforms: Vec<String> = serde_json::from_str(&r.platforms)
            .map_err(|_| corrupt("destination platforms", &r.platforms))?;
        Ok(Destination {
            id: r.id,
            publisher_id: r.publisher_id,
            url: r.url,
            description: r.description,
            event_types,
            platforms: platforms
                .iter()
                .map(|p| platform(p))
                .collect::<StoreResult<_>>()?,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            secret: r.secret,
            old_secret: r.old_secret.zip(r.old_secret_until),
            failing_since: r.failing_since,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub(crate) fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    seq: i64,
    id: String,
    destination_id: String,
    publisher_id: String,
    event_id: String,
    event_type: String,
    platform: Option<String>,
    reader: Option<String>,
    payload: String,
    status: String,
    attempts: i64,
    next_at: DateTime<Utc>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(crate) const MESSAGE_COLUMNS: &str = "seq, id, destination_id, publisher_id, event_id, \
     event_type, platform, reader, payload, status, attempts, next_at, last_error, created_at, \
     updated_at";

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;

    fn try_from(r: MessageRow) -> StoreResult<Self> {
        Ok(Message {
            platform: r.platform.as_deref().map(platform).transpose()?,
            status: MessageStatus::parse(&r.status)
                .ok_or_else(|| corrupt("message status", &r.status))?,
            attempts: u32::try_from(r.attempts.max(0)).unwrap_or(u32::MAX),
            seq: r.seq,
            id: r.id,
            destination_id: r.destination_id,
            publisher_id: r.publisher_id,
            event_id: r.event_id,
            event_type: r.event_type,
            reader: r.reader,
            payload: r.payload,
            next_at: r.next_at,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AttemptRow {
    pub(crate) message_id: String,
    at: DateTime<Utc>,
    status_code: Option<i64>,
    latency_ms: i64,
    response: Option<String>,
    error: Option<String>,
}

impl From<AttemptRow> for Attempt {
    fn from(r: AttemptRow) -> Self {
        Attempt {
            at: r.at,
            status_code: r.status_code.and_then(|c| u16::try_from(c).ok()),
            latency_ms: u64::try_from(r.latency_ms.max(0)).unwrap_or(0),
            response: r.response,
            error: r.error,
        }
    }
}

/// Implements [`DestinationStore`] for a backend whose pool is `self.pool`; `$claim_lock` is the
/// claim's row-locking clause (PostgreSQL's `FOR UPDATE SKIP LOCKED`, nothing on SQLite), and
/// `$begin_write` how a transaction that reads before it writes begins (SQLite's
/// `BEGIN IMMEDIATE`: a deferred one that read first cannot take the write lock once another
/// connection wrote, and fails with SQLITE_BUSY_SNAPSHOT instead of waiting).
macro_rules! impl_destination_store {
    ($store:ty, $db:ty, $claim_lock:literal, $begin_write:literal) => {
        impl $store {
            async fn message_attempts(
                &self,
                ids: &[String],
            ) -> $crate::StoreResult<Vec<$crate::destinations::AttemptRow>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT message_id, at, status_code, latency_ms, response, error \
                     FROM destination_attempts WHERE message_id IN (",
                );
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(id.clone());
                }
                qb.push(") ORDER BY seq");
                Ok(qb
                    .build_query_as::<$crate::destinations::AttemptRow>()
                    .fetch_all(&self.pool)
                    .await?)
            }

            /// Queues the messages of `events` inside `tx` (see `publish_events`).
            pub(crate) async fn queue_messages(
                tx: &mut sqlx::Transaction<'static, $db>,
                events: &[$crate::destinations::OutboundEvent],
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<u64> {
                if events.is_empty() {
                    return Ok(0);
                }
                let mut publishers: Vec<&str> =
                    events.iter().map(|e| e.publisher_id.as_str()).collect();
                publishers.sort_unstable();
                publishers.dedup();
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM destinations WHERE enabled = TRUE \
                     AND (publisher_id IS NULL OR publisher_id IN (",
                    $crate::destinations::DESTINATION_COLUMNS
                ));
                let mut list = qb.separated(", ");
                for p in &publishers {
                    list.push_bind(p.to_string());
                }
                qb.push("))");
                let destinations = qb
                    .build_query_as::<$crate::destinations::DestinationRow>()
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect::<$crate::StoreResult<Vec<$crate::destinations::Destination>>>()?;
                if destinations.is_empty() {
                    return Ok(0);
                }
                let mut queued = 0;
                for e in events {
                    let payload = e.payload();
                    for d in &destinations {
                        let mine = d
                            .publisher_id
                            .as_deref()
                            .is_none_or(|p| p == e.publisher_id);
                        if !mine || !d.wants(&e.event_type, e.platform) {
                            continue;
                        }
                        queued += sqlx::query(
                            "INSERT INTO destination_messages (id, destination_id, publisher_id, \
                             event_id, event_type, platform, reader, payload, status, attempts, \
                             next_at, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9, $9) \
                             ON CONFLICT (destination_id, event_id) DO NOTHING",
                        )
                        .bind(format!("msg_{}", uuid::Uuid::now_v7().simple()))
                        .bind(&d.id)
                        .bind(&e.publisher_id)
                        .bind(&e.event_id)
                        .bind(&e.event_type)
                        .bind(e.platform.map(|p| p.as_str()))
                        .bind(&e.reader)
                        .bind(&payload)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                    }
                }
                Ok(queued)
            }
        }

        #[async_trait::async_trait]
        impl $crate::destinations::DestinationStore for $store {
            async fn create_destination(
                &self,
                new: $crate::destinations::NewDestination,
            ) -> $crate::StoreResult<$crate::destinations::Destination> {
                let row = sqlx::query_as::<_, $crate::destinations::DestinationRow>(&format!(
                    "INSERT INTO destinations (id, publisher_id, url, description, event_types, \
                     platforms, enabled, secret_key_id, secret, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $8, $9, $9) RETURNING {}",
                    $crate::destinations::DESTINATION_COLUMNS
                ))
                .bind(&new.id)
                .bind(new.owner.publisher_id())
                .bind(&new.url)
                .bind(&new.description)
                .bind($crate::destinations::json_list(&new.event_types))
                .bind($crate::destinations::json_list(
                    &new.platforms.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                ))
                .bind(i64::from(new.secret_key_id))
                .bind(&new.secret)
                .bind(new.now)
                .fetch_one(&self.pool)
                .await?;
                row.try_into()
            }

            async fn get_destination(
                &self,
                owner: &$crate::destinations::DestinationOwner,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::destinations::Destination>> {
                // `IS NOT DISTINCT FROM` is PostgreSQL's; `IS` is SQLite's: spell it out.
                sqlx::query_as::<_, $crate::destinations::DestinationRow>(&format!(
                    "SELECT {} FROM destinations WHERE id = $1 \
                     AND (($2 IS NULL AND publisher_id IS NULL) OR publisher_id = $2)",
                    $crate::destinations::DESTINATION_COLUMNS
                ))
                .bind(id)
                .bind(owner.publisher_id())
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }

            async fn destination_by_id(
                &self,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::destinations::Destination>> {
                sqlx::query_as::<_, $crate::destinations::DestinationRow>(&format!(
                    "SELECT {} FROM destinations WHERE id = $1",
                    $crate::destinations::DESTINATION_COLUMNS
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }

            async fn list_destinations(
                &self,
                owner: &$crate::destinations::DestinationOwner,
            ) -> $crate::StoreResult<Vec<$crate::destinations::Destination>> {
                sqlx::query_as::<_, $crate::destinations::DestinationRow>(&format!(
                    "SELECT {} FROM destinations \
                     WHERE (($1 IS NULL AND publisher_id IS NULL) OR publisher_id = $1) ORDER BY seq",
                    $crate::destinations::DESTINATION_COLUMNS
                ))
                .bind(owner.publisher_id())
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            async fn update_destination(
                &self,
                owner: &$crate::destinations::DestinationOwner,
                id: &str,
                patch: $crate::destinations::DestinationPatch,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Option<$crate::destinations::Destination>> {
                let enable = patch.enabled == Some(true);
                sqlx::query_as::<_, $crate::destinations::DestinationRow>(&format!(
                    "UPDATE destinations SET url = COALESCE($3, url), \
                     description = CASE WHEN $4 THEN $5 ELSE description END, \
                     event_types = COALESCE($6, event_types), platforms = COALESCE($7, platforms), \
                     enabled = COALESCE($8, enabled), \
                     disabled_reason = CASE WHEN $9 THEN NULL ELSE disabled_reason END, \
                     failing_since = CASE WHEN $9 THEN NULL ELSE failing_since END, \
                     updated_at = $10 \
                     WHERE id = $1 AND (($2 IS NULL AND publisher_id IS NULL) OR publisher_id = $2) \
                     RETURNING {}",
                    $crate::destinations::DESTINATION_COLUMNS
                ))
                .bind(id)
                .bind(owner.publisher_id())
                .bind(patch.url)
                .bind(patch.description.is_some())
                .bind(patch.description.flatten())
                .bind(patch.event_types.map(|t| $crate::destinations::json_list(&t)))
                .bind(patch.platforms.map(|p| {
                    $crate::destinations::json_list(&p.iter().map(|p| p.as_str()).collect::<Vec<_>>())
                }))
                .bind(patch.enabled)
                .bind(enable)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }

            async fn delete_destination(
                &self,
                owner: &$crate::destinations::DestinationOwner,
                id: &str,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                let found = sqlx::query_scalar::<_, String>(
                    "SELECT id FROM destinations WHERE id = $1 \
                     AND (($2 IS NULL AND publisher_id IS NULL) OR publisher_id = $2)",
                )
                .bind(id)
                .bind(owner.publisher_id())
                .fetch_optional(&mut *tx)
                .await?;
                if found.is_none() {
                    return Ok(false);
                }
                // Explicit, not only ON DELETE CASCADE: SQLite enforces foreign keys only when
                // asked to.
                sqlx::query(
                    "DELETE FROM destination_attempts WHERE message_id IN \
                     (SELECT id FROM destination_messages WHERE destination_id = $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM destination_messages WHERE destination_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM destinations WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn rotate_destination_secret(
                &self,
                owner: &$crate::destinations::DestinationOwner,
                id: &str,
                secret_key_id: u32,
                secret: Vec<u8>,
                old_until: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Option<$crate::destinations::Destination>> {
                sqlx::query_as::<_, $crate::destinations::DestinationRow>(&format!(
                    "UPDATE destinations SET old_secret = secret, old_secret_until = $3, \
                     secret = $4, secret_key_id = $5, updated_at = $6 \
                     WHERE id = $1 AND (($2 IS NULL AND publisher_id IS NULL) OR publisher_id = $2) \
                     RETURNING {}",
                    $crate::destinations::DESTINATION_COLUMNS
                ))
                .bind(id)
                .bind(owner.publisher_id())
                .bind(old_until)
                .bind(secret)
                .bind(i64::from(secret_key_id))
                .bind(now)
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }

            async fn publish_events(
                &self,
                events: &[$crate::destinations::OutboundEvent],
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<u64> {
                if events.is_empty() {
                    return Ok(0);
                }
                let mut tx = self.pool.begin_with($begin_write).await?;
                let queued = Self::queue_messages(&mut tx, events, now).await?;
                tx.commit().await?;
                Ok(queued)
            }

            async fn claim_message(
                &self,
                worker: &str,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                per_destination: u32,
            ) -> $crate::StoreResult<Option<$crate::destinations::Message>> {
                let free = "(status = 'pending' AND next_at <= $3 \
                     AND (locked_until IS NULL OR locked_until < $3))";
                // Runnable: free, its destination enabled, no earlier pending message for the same
                // reader there, and room in the destination's in-flight limit. The outer
                // condition repeats `free` so that two claimers never both win a row.
                let sql = format!(
                    "UPDATE destination_messages SET locked_by = $1, locked_until = $2, \
                     attempts = attempts + 1, updated_at = $3 \
                     WHERE {free} AND seq = (SELECT m.seq FROM destination_messages m \
                       WHERE m.status = 'pending' AND m.next_at <= $3 \
                       AND (m.locked_until IS NULL OR m.locked_until < $3) \
                       AND m.destination_id IN (SELECT id FROM destinations WHERE enabled = TRUE) \
                       AND NOT EXISTS (SELECT 1 FROM destination_messages e \
                         WHERE e.destination_id = m.destination_id AND e.reader = m.reader \
                         AND e.status = 'pending' AND e.seq < m.seq) \
                       AND (SELECT COUNT(*) FROM destination_messages f \
                         WHERE f.destination_id = m.destination_id AND f.locked_until >= $3) < $4 \
                       ORDER BY m.next_at, m.seq LIMIT 1 {}) \
                     RETURNING {}",
                    $claim_lock,
                    $crate::destinations::MESSAGE_COLUMNS
                );
                sqlx::query_as::<_, $crate::destinations::MessageRow>(&sql)
                    .bind(worker)
                    .bind(lease_until)
                    .bind(now)
                    .bind(i64::from(per_destination))
                    .fetch_optional(&self.pool)
                    .await?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn finish_message(
                &self,
                message_id: &str,
                worker: &str,
                attempt: $crate::destinations::Attempt,
                outcome: $crate::destinations::DeliveryOutcome,
                disable_after: chrono::Duration,
                disable_reason: &str,
            ) -> $crate::StoreResult<$crate::destinations::Finished> {
                use $crate::destinations::DeliveryOutcome as O;
                let (status, next_at) = match outcome {
                    O::Succeeded => ("succeeded", None),
                    O::Retry { next_at } => ("pending", Some(next_at)),
                    O::Failed => ("failed", None),
                };
                let mut tx = self.pool.begin().await?;
                let destination = sqlx::query_scalar::<_, String>(
                    "UPDATE destination_messages SET status = $3, next_at = COALESCE($4, next_at), \
                     last_error = $5, locked_by = NULL, locked_until = NULL, updated_at = $6 \
                     WHERE id = $1 AND locked_by = $2 AND status = 'pending' \
                     RETURNING destination_id",
                )
                .bind(message_id)
                .bind(worker)
                .bind(status)
                .bind(next_at)
                .bind(&attempt.error)
                .bind(attempt.at)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(destination) = destination else {
                    return Ok($crate::destinations::Finished::default());
                };
                sqlx::query(
                    "INSERT INTO destination_attempts (message_id, at, status_code, latency_ms, \
                     response, error) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(message_id)
                .bind(attempt.at)
                .bind(attempt.status_code.map(i64::from))
                .bind(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX))
                .bind(&attempt.response)
                .bind(&attempt.error)
                .execute(&mut *tx)
                .await?;
                let mut disabled = false;
                if outcome == O::Succeeded {
                    sqlx::query(
                        "UPDATE destinations SET failing_since = NULL \
                         WHERE id = $1 AND failing_since IS NOT NULL",
                    )
                    .bind(&destination)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query(
                        "UPDATE destinations SET failing_since = $2 \
                         WHERE id = $1 AND failing_since IS NULL",
                    )
                    .bind(&destination)
                    .bind(attempt.at)
                    .execute(&mut *tx)
                    .await?;
                    disabled = sqlx::query(
                        "UPDATE destinations SET enabled = FALSE, disabled_reason = $3, \
                         updated_at = $4 WHERE id = $1 AND enabled = TRUE AND failing_since <= $2",
                    )
                    .bind(&destination)
                    .bind(attempt.at - disable_after)
                    .bind(disable_reason)
                    .bind(attempt.at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        > 0;
                }
                tx.commit().await?;
                Ok($crate::destinations::Finished {
                    recorded: true,
                    disabled,
                })
            }

            async fn list_messages(
                &self,
                destination_id: &str,
                status: Option<$crate::destinations::MessageStatus>,
                limit: u32,
                before: Option<i64>,
            ) -> $crate::StoreResult<$crate::destinations::MessagePage> {
                let rows = sqlx::query_as::<_, $crate::destinations::MessageRow>(&format!(
                    "SELECT {} FROM destination_messages WHERE destination_id = $1 \
                     AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR seq < $3) \
                     ORDER BY seq DESC LIMIT $4",
                    $crate::destinations::MESSAGE_COLUMNS
                ))
                .bind(destination_id)
                .bind(status.map(|s| s.as_str()))
                .bind(before)
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let more = rows.len() > limit as usize;
                let messages = rows
                    .into_iter()
                    .take(limit as usize)
                    .map(TryInto::try_into)
                    .collect::<$crate::StoreResult<Vec<$crate::destinations::Message>>>()?;
                let next = if more { messages.last().map(|m| m.seq) } else { None };
                let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
                let mut attempts = self.message_attempts(&ids).await?;
                let messages = messages
                    .into_iter()
                    .map(|m| {
                        let (mine, rest): (Vec<_>, Vec<_>) =
                            attempts.drain(..).partition(|a| a.message_id == m.id);
                        attempts = rest;
                        (m, mine.into_iter().map(Into::into).collect())
                    })
                    .collect();
                Ok($crate::destinations::MessagePage { messages, next })
            }

            async fn get_message(
                &self,
                destination_id: &str,
                message_id: &str,
            ) -> $crate::StoreResult<
                Option<($crate::destinations::Message, Vec<$crate::destinations::Attempt>)>,
            > {
                let row = sqlx::query_as::<_, $crate::destinations::MessageRow>(&format!(
                    "SELECT {} FROM destination_messages WHERE destination_id = $1 AND id = $2",
                    $crate::destinations::MESSAGE_COLUMNS
                ))
                .bind(destination_id)
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let message: $crate::destinations::Message = row.try_into()?;
                let attempts = self
                    .message_attempts(std::slice::from_ref(&message.id))
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect();
                Ok(Some((message, attempts)))
            }

            async fn retry_message(
                &self,
                destination_id: &str,
                message_id: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Option<$crate::destinations::Message>> {
                sqlx::query_as::<_, $crate::destinations::MessageRow>(&format!(
                    "UPDATE destination_messages SET status = 'pending', attempts = 0, \
                     next_at = $3, updated_at = $3 \
                     WHERE destination_id = $1 AND id = $2 \
                     AND (locked_until IS NULL OR locked_until < $3) RETURNING {}",
                    $crate::destinations::MESSAGE_COLUMNS
                ))
                .bind(destination_id)
                .bind(message_id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }

            async fn all_destinations(
                &self,
            ) -> $crate::StoreResult<Vec<$crate::destinations::Destination>> {
                sqlx::query_as::<_, $crate::destinations::DestinationRow>(&format!(
                    "SELECT {} FROM destinations ORDER BY seq",
                    $crate::destinations::DESTINATION_COLUMNS
                ))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            async fn reseal_destination_secret(
                &self,
                id: &str,
                previous: bool,
                old: &[u8],
                new: &[u8],
                key_id: u32,
            ) -> $crate::StoreResult<bool> {
                let sql = if previous {
                    "UPDATE destinations SET old_secret = $3 WHERE id = $1 AND old_secret = $2"
                } else {
                    "UPDATE destinations SET secret = $3, secret_key_id = $4 WHERE id = $1 AND secret = $2"
                };
                Ok(sqlx::query(sql)
                    .bind(id)
                    .bind(old)
                    .bind(new)
                    .bind(i64::from(key_id))
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    > 0)
            }

            async fn replay_messages(
                &self,
                destination_id: &str,
                since: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<u64> {
                Ok(sqlx::query(
                    "UPDATE destination_messages SET status = 'pending', attempts = 0, \
                     next_at = $3, updated_at = $3 \
                     WHERE destination_id = $1 AND created_at >= $2 \
                     AND (locked_until IS NULL OR locked_until < $3)",
                )
                .bind(destination_id)
                .bind(since)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected())
            }
        }
    };
}

pub(crate) use impl_destination_store;

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(types: &[&str], platforms: &[Platform]) -> Destination {
        Destination {
            id: "dst_1".into(),
            publisher_id: None,
            url: "https://example.com".into(),
            description: None,
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            platforms: platforms.to_vec(),
            enabled: true,
            disabled_reason: None,
            secret: Vec::new(),
            old_secret: None,
            failing_since: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn filters_match_types_subjects_and_platforms() {
        let all = destination(&[], &[]);
        assert!(all.wants("email.opened", Some(Platform::Iterable)));
        assert!(all.wants("sync.succeeded", None));

        let emails = destination(&["email.*", "suppression.created"], &[]);
        assert!(emails.wants("email.bounced", Some(Platform::Keap)));
        assert!(emails.wants("suppression.created", None));
        assert!(!emails.wants("sms.sent", Some(Platform::Iterable)));
        assert!(!emails.wants("emailx.sent", Some(Platform::Iterable)));

        let cio = destination(&["email.opened"], &[Platform::Customerio]);
        assert!(cio.wants("email.opened", Some(Platform::Customerio)));
        assert!(!cio.wants("email.opened", Some(Platform::Iterable)));
        assert!(!cio.wants("email.opened", None));
    }

    #[test]
    fn payload_is_type_timestamp_and_data() {
        let e = OutboundEvent {
            event_id: "evt_1".into(),
            publisher_id: "pub_1".into(),
            event_type: "email.opened".into(),
            platform: Some(Platform::Iterable),
            reader: Some("a@example.com".into()),
            occurred_at: "2026-12-01T10:00:00Z".parse().unwrap(),
            data: serde_json::json!({"x": 1}),
        };
        let v: Value = serde_json::from_str(&e.payload()).unwrap();
        assert_eq!(v["type"], "email.opened");
        assert_eq!(v["timestamp"], "2026-12-01T10:00:00.000Z");
        assert_eq!(v["data"]["x"], 1);
    }
}
