//! SharpSend's storage.
//!
//! [`Store`] has use-case-shaped methods and no sqlx types; [`open`] picks the backend from the
//! URL scheme: SQLite (`sqlite://path`, the single-machine default) or PostgreSQL
//! (`postgres://…`, for several replicas). Both backends share their SQL where the dialects agree
//! (see `sql.rs`) and keep their own migrations (`migrations/{sqlite,postgres}`); the conformance
//! suite in `tests/` runs against both.
#![forbid(unsafe_code)]

pub mod consent;
pub mod destinations;
mod idempotency;
mod models;
mod postgres;
mod sessions;
mod sql;
mod sqlite;
mod sync;
#[cfg(feature = "test-util")]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;
use domain::{Platform, PublisherId};

pub use consent::{
    AuditEntry, AuditPage, ConsentJob, ConsentJobKind, ConsentJobStatus, ConsentOutcome,
    ConsentStore, ErasedCopies, ErasureRecord, ErasureStatus, NewAuditEntry, NewErasure,
    NewPlatformState, NewSuppression, PlatformState, SourceKind, Suppression, SuppressionFilter,
    SuppressionPage, SuppressionSource,
};
pub use destinations::{
    Attempt, DeliveryOutcome, Destination, DestinationOwner, DestinationPatch, DestinationStore,
    Finished, Message, MessagePage, MessageStatus, NewDestination, OutboundEvent,
};
pub use idempotency::{Claim, IdempotencyKey, IdempotencyRecord, IdempotencyStore};
pub use models::*;
pub use postgres::PgStore;
pub use sessions::{SessionRecord, SessionStore};
pub use sqlite::SqliteStore;
pub use sync::{
    Checkpoint, DueIntegration, JobOutcome, KindFinish, NewRecord, PageCommit, StoredRecord,
    SyncStore,
};

/// Backend-neutral storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (`constraint` names it).
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// The database could not be reached or timed out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded (a bug or a hand-edited row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                constraint: db.constraint().unwrap_or("unique").to_owned(),
            },
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// Everything SharpSend keeps. Implementations: [`SqliteStore`], [`PgStore`].
#[async_trait]
pub trait Store:
    SyncStore
    + SessionStore
    + IdempotencyStore
    + ConsentStore
    + DestinationStore
    + Send
    + Sync
    + 'static
{
    /// Which backend this is, for logs and `/readyz`.
    fn backend(&self) -> &'static str;

    /// A trivial query: is the database answering?
    async fn ping(&self) -> StoreResult<()>;

    /// Moves after every write through this store object that a read cache may hold (API keys,
    /// integrations, credentials, sync jobs).
    fn local_epoch(&self) -> u64;
    /// Moves after every such write by any process on this database; servers poll it to drop
    /// entries another process (a replica, the CLI) made stale.
    async fn shared_epoch(&self) -> StoreResult<i64>;

    // --- operator settings ---

    async fn get_setting(&self, key: &str) -> StoreResult<Option<String>>;
    /// Stores `value` unless `key` is set; answers whether it stored it.
    async fn put_setting_if_absent(&self, key: &str, value: &str) -> StoreResult<bool>;
    /// Every setting whose key starts with `prefix` (taken literally), in key order.
    async fn settings_with_prefix(&self, prefix: &str) -> StoreResult<Vec<(String, String)>>;
    /// Deletes these settings; answers how many existed.
    async fn delete_settings(&self, keys: &[String]) -> StoreResult<u64>;

    // --- publisher API keys ---

    /// Stores a new key (creating its publisher on first use).
    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKeyRecord>;
    /// The key whose SHA-256 is `key_hash`, revoked or not.
    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>>;
    async fn list_api_keys(&self, publisher: &PublisherId) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Marks a key revoked; `None` when no such key exists. Revoking twice keeps the first time.
    async fn revoke_api_key(&self, key_id: &str) -> StoreResult<Option<ApiKeyRecord>>;

    // --- integrations and their sealed credentials ---

    /// Creates the integration `new.id`, or replaces the credentials and config of the publisher's
    /// existing integration with that platform when it has the same id. An existing integration
    /// with another id answers `Conflict` (read it and seal again under its id).
    async fn save_integration(&self, new: NewIntegration) -> StoreResult<SavedIntegration>;
    async fn get_integration(
        &self,
        publisher: &PublisherId,
        platform: Platform,
    ) -> StoreResult<Option<IntegrationRecord>>;
    async fn get_integration_by_webhook(
        &self,
        platform: Platform,
        webhook_id: &str,
    ) -> StoreResult<Option<IntegrationRecord>>;
    async fn list_integrations(
        &self,
        publisher: &PublisherId,
    ) -> StoreResult<Vec<IntegrationRecord>>;
    /// Every publisher's integration with `platform` (background work such as Keap's idle-token
    /// sweep), oldest first.
    async fn list_platform_integrations(
        &self,
        platform: Platform,
    ) -> StoreResult<Vec<IntegrationRecord>>;
    /// Deletes an integration with its credentials, jobs, checkpoints, records and events.
    /// Answers the deleted row, or `None` when there was none.
    async fn delete_integration(
        &self,
        publisher: &PublisherId,
        platform: Platform,
    ) -> StoreResult<Option<IntegrationRecord>>;
    async fn set_integration_status(
        &self,
        integration_id: &str,
        status: domain::shapes::IntegrationStatus,
        reason: Option<&str>,
    ) -> StoreResult<()>;

    async fn get_credentials(&self, integration_id: &str) -> StoreResult<Option<Credentials>>;
    /// Replaces the given fields (others are kept) if the credentials are still at
    /// `expected_version`; answers the new version, or `None` when someone else wrote first.
    async fn swap_credentials(
        &self,
        integration_id: &str,
        expected_version: i64,
        fields: Vec<SealedField>,
    ) -> StoreResult<Option<i64>>;

    /// Takes an exclusive lock on an integration's credentials for a token refresh that must
    /// never race, across processes: PostgreSQL `SELECT … FOR UPDATE` on the integration row,
    /// SQLite an immediate (write-locking) transaction. Answers the credentials as they are once
    /// the lock is held (re-read: another holder may have refreshed meanwhile), or `None` when the
    /// integration is gone. The lock lasts until [`CredentialLock::commit`] or
    /// [`CredentialLock::release`] (or the guard is dropped, which rolls back).
    async fn lock_credentials(
        &self,
        integration_id: &str,
    ) -> StoreResult<Option<Box<dyn CredentialLock>>>;

    /// Up to `limit` sealed fields not under `active_key_id`, for `vault rotate`.
    async fn credentials_not_under(
        &self,
        active_key_id: u32,
        limit: u32,
    ) -> StoreResult<Vec<CredentialRow>>;
    /// Replaces one sealed field if it still holds `old_ciphertext` (so a concurrent token refresh
    /// is never overwritten with an older value); answers whether it did.
    async fn reseal_credential(&self, row: &CredentialRow, new: &SealedField) -> StoreResult<bool>;
    /// How many sealed fields each master key id seals.
    async fn credential_key_counts(&self) -> StoreResult<Vec<(u32, u64)>>;

    // --- received events ---

    /// Stores a webhook event once per (integration, platform event id): a redelivery is not an
    /// error, it answers the row stored first and `false`.
    async fn record_event(&self, event: NewEvent) -> StoreResult<(EventRecord, bool)>;
    /// [`Self::record_event`] for many events in one transaction (a webhook delivery of
    /// thousands of objects); answers how many were new (the rest were redeliveries).
    async fn record_events(&self, events: Vec<NewEvent>) -> StoreResult<u64>;
    /// A publisher's received events, newest first, `limit` of them, older than `before`.
    async fn list_events(
        &self,
        publisher: &PublisherId,
        filter: &EventFilter,
        limit: u32,
        before: Option<EventCursor>,
    ) -> StoreResult<EventPage>;
    /// An integration's received events of one campaign that occurred in `[from, to)`, oldest
    /// first, at most `limit` (our own campaign metrics count them).
    async fn campaign_events(
        &self,
        integration_id: &str,
        campaign_id: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>>;
    /// Replaces an integration's non-secret config (webhook registrations made after connect,
    /// such as Keap's REST hook keys, are kept there).
    async fn set_integration_config(
        &self,
        integration_id: &str,
        config: serde_json::Value,
    ) -> StoreResult<()>;

    // --- sync jobs ---

    /// The newest job of an integration.
    async fn latest_sync_job(&self, integration_id: &str) -> StoreResult<Option<SyncJobRecord>>;
    /// Queues a job (used by the sync engine and tests).
    async fn insert_sync_job(&self, job: NewSyncJob) -> StoreResult<SyncJobRecord>;
}

/// An exclusive hold on one integration's credentials (see [`Store::lock_credentials`]).
#[async_trait]
pub trait CredentialLock: Send {
    /// The credentials read under the lock.
    fn credentials(&self) -> &Credentials;
    /// Replaces the given fields (others are kept), moves the version on, and releases the lock;
    /// answers the new version.
    async fn commit(self: Box<Self>, fields: Vec<SealedField>) -> StoreResult<i64>;
    /// Releases the lock without writing.
    async fn release(self: Box<Self>) -> StoreResult<()>;
}

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Reads the scheme: `sqlite:` or `postgres:`/`postgresql:`.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// Opens the database a URL names and applies its migrations.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    match Backend::of_url(url) {
        Some(Backend::Sqlite) => Ok(Arc::new(SqliteStore::open(url).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(PgStore::open(url).await?)),
        None => Err(StoreError::Other(format!(
            "unsupported database URL scheme in {}: use sqlite://… or postgres://…",
            redact_url(url)
        ))),
    }
}

/// The URL with any password replaced by `****`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_scheme() {
        assert_eq!(Backend::of_url("sqlite://data/x.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::of_url("mysql://u@h/db"), None);
    }

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:****@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
