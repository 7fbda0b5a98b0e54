//! What the store takes and gives. No sqlx types; secrets only as sealed bytes.

use chrono::{DateTime, Utc};
use domain::{Platform, PublisherId, Region, shapes::IntegrationStatus};
use serde_json::Value;

/// A publisher API key to store. The key itself is never stored, only its hash.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub id: String,
    pub publisher_id: PublisherId,
    pub key_hash: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

/// A stored publisher API key (without the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub publisher_id: String,
    pub key_hash: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One credential field sealed by the vault.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedField {
    pub field: String,
    pub key_id: u32,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedField")
            .field("field", &self.field)
            .field("key_id", &self.key_id)
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

/// A sealed field with the integration it belongs to (for key rotation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRow {
    pub integration_id: String,
    pub sealed: SealedField,
}

/// All sealed fields of an integration and their compare-and-swap version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub integration_id: String,
    pub version: i64,
    pub fields: Vec<SealedField>,
}

impl Credentials {
    pub fn field(&self, name: &str) -> Option<&SealedField> {
        self.fields.iter().find(|f| f.field == name)
    }
}

/// An integration to create or replace.
#[derive(Clone, Debug)]
pub struct NewIntegration {
    pub id: String,
    pub publisher_id: PublisherId,
    pub platform: Platform,
    pub region: Option<Region>,
    pub config: Value,
    /// Used only when the integration is created; a replace keeps the existing webhook id so
    /// that the URL configured on the platform keeps working.
    pub webhook_id: String,
    pub credentials: Vec<SealedField>,
    pub now: DateTime<Utc>,
}

/// The result of [`crate::Store::save_integration`].
#[derive(Clone, Debug)]
pub struct SavedIntegration {
    pub integration: IntegrationRecord,
    /// Whether an existing integration was replaced.
    pub replaced: bool,
}

/// A stored integration (credentials are fetched separately).
#[derive(Clone, Debug, PartialEq)]
pub struct IntegrationRecord {
    pub id: String,
    pub publisher_id: String,
    pub platform: Platform,
    pub status: IntegrationStatus,
    pub status_reason: Option<String>,
    pub region: Option<Region>,
    pub config: Value,
    pub webhook_id: String,
    pub credentials_version: i64,
    pub connected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A sync job to queue.
#[derive(Clone, Debug)]
pub struct NewSyncJob {
    pub id: String,
    pub integration_id: String,
    pub platform: Platform,
    pub kinds: Vec<String>,
    pub full: bool,
    pub now: DateTime<Utc>,
}

/// A stored sync job.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncJobRecord {
    pub id: String,
    pub integration_id: String,
    pub platform: Platform,
    pub status: domain::shapes::SyncStatus,
    pub kinds: Vec<String>,
    pub full: bool,
    pub counts: std::collections::BTreeMap<String, u64>,
    pub deleted: std::collections::BTreeMap<String, u64>,
    pub attempts: i32,
    pub pages: i64,
    pub current_kind: Option<String>,
    pub run_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl SyncJobRecord {
    /// The contract's SyncJob shape.
    pub fn to_shape(&self) -> domain::shapes::SyncJob {
        domain::shapes::SyncJob {
            job_id: self.id.clone(),
            platform: self.platform,
            status: self.status,
            kinds: self.kinds.clone(),
            counts: self.counts.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at,
            error: match (&self.error_code, &self.error_message) {
                (Some(code), message) => Some(domain::shapes::JobError {
                    code: code.clone(),
                    error: message.clone().unwrap_or_default(),
                }),
                _ => None,
            },
            full: self.full,
            created_at: self.created_at,
            attempts: self.attempts,
            pages: self.pages,
            current_kind: self.current_kind.clone(),
            deleted: self.deleted.clone(),
            next_attempt_at: (self.status == domain::shapes::SyncStatus::Queued
                && self.attempts > 0)
                .then_some(self.run_at),
        }
    }
}

/// A platform event received by webhook, to store once (CONTRACT §8).
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// Our id (`evt_…`).
    pub id: String,
    pub integration_id: String,
    pub publisher_id: String,
    pub platform: Platform,
    /// Our vocabulary (`email.opened`, see `domain::events`).
    pub kind: String,
    /// The platform's id for the event: what de-duplicates redeliveries, per integration.
    pub platform_event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub campaign_id: Option<String>,
    pub data: Value,
}

/// A stored received event.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    /// Arrival order (the paging key).
    pub seq: i64,
    pub id: String,
    pub integration_id: String,
    pub publisher_id: String,
    pub platform: Platform,
    pub kind: String,
    pub platform_event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub campaign_id: Option<String>,
    pub data: Value,
}

impl EventRecord {
    /// The contract's Event shape.
    pub fn to_shape(&self) -> domain::shapes::Event {
        domain::shapes::Event {
            id: self.id.clone(),
            platform: self.platform,
            kind: self.kind.clone(),
            platform_event_id: self.platform_event_id.clone(),
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            email: self.email.clone(),
            user_id: self.user_id.clone(),
            campaign_id: self.campaign_id.clone(),
            data: self.data.clone(),
        }
    }
}

/// Which received events to list.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub platform: Option<Platform>,
    /// Exact event type.
    pub kind: Option<String>,
}

/// A position in the newest-first event list: events older than it come next. Opaque to
/// clients (`to_token`/`parse`); a keyset on `seq`, so pages stay stable while events arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventCursor(pub i64);

impl EventCursor {
    const PREFIX: &'static str = "ev1.";

    /// The token handed to clients.
    pub fn to_token(self) -> String {
        // Hex of the seq XOR a fixed mask, behind a version prefix: opaque, not a secret.
        format!("{}{:x}", Self::PREFIX, self.0 ^ 0x5a5a_5a5a)
    }

    /// Reads a token made by [`Self::to_token`]; `None` for anything else.
    pub fn parse(token: &str) -> Option<Self> {
        let hex = token.strip_prefix(Self::PREFIX)?;
        if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let raw = u64::from_str_radix(hex, 16).ok()?;
        let seq = i64::try_from(raw).ok()? ^ 0x5a5a_5a5a;
        (seq > 0).then_some(Self(seq))
    }
}

/// One page of received events, newest first.
#[derive(Clone, Debug)]
pub struct EventPage {
    pub events: Vec<EventRecord>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next: Option<EventCursor>,
}
