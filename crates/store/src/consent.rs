//! The consent ledger's storage (migration 0009, issue 17): suppressions with their propagation
//! per platform, the publisher's propagate setting, erasures, the salted hashes of erased
//! addresses, the durable jobs that push opt-outs and erasures to the platforms, and the audit log.
//!
//! An address is kept in clear in two places only: a live suppression (the publisher's own
//! ledger) and an open job (a worker must send it). A finished job clears it; an erasure never
//! stores it and [`ConsentStore::erase_local_copies`] leaves only a salted hash behind.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    Platform, PublisherId,
    consent::{PropagationStatus, Reason},
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{StoreError, StoreResult};

/// Where a suppression came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Webhook,
    Sync,
    Api,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Webhook => "webhook",
            SourceKind::Sync => "sync",
            SourceKind::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<SourceKind> {
        [SourceKind::Webhook, SourceKind::Sync, SourceKind::Api]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The origin of a suppression: a platform's event (`webhook`), a synced record (`sync`), or an
/// API caller (`api`, with its principal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuppressionSource {
    pub kind: SourceKind,
    pub platform: Option<Platform>,
    pub event_id: Option<String>,
    pub principal: Option<String>,
}

/// Where one platform stands with a suppression or an erasure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformState {
    pub platform: Platform,
    pub status: PropagationStatus,
    /// The error (`failed`, or the last retried one while `pending`), why (`skipped`), or what
    /// was done (`done`).
    pub note: Option<String>,
    pub attempts: u32,
    pub updated_at: DateTime<Utc>,
}

/// A platform row to create with a suppression or an erasure. A `pending` row queues a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPlatformState {
    pub platform: Platform,
    pub status: PropagationStatus,
    pub note: Option<String>,
}

/// A suppression as stored. Its `Debug` leaves the address out (log lines never carry one).
#[derive(Clone, PartialEq, Eq)]
pub struct Suppression {
    pub id: String,
    pub publisher_id: String,
    /// Normalised (`domain::consent::normalize_email`).
    pub email: String,
    pub reason: Reason,
    pub source: SuppressionSource,
    pub created_at: DateTime<Utc>,
    /// In platform order.
    pub platforms: Vec<PlatformState>,
}

/// A suppression to record.
#[derive(Clone)]
pub struct NewSuppression {
    pub publisher: PublisherId,
    /// Already normalised.
    pub email: String,
    pub reason: Reason,
    pub source: SuppressionSource,
    /// One row per platform; `pending` ones get an `opt_out` job due at `now`.
    pub platforms: Vec<NewPlatformState>,
    pub now: DateTime<Utc>,
}

impl std::fmt::Debug for Suppression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suppression")
            .field("id", &self.id)
            .field("publisher_id", &self.publisher_id)
            .field("reason", &self.reason)
            .field("source", &self.source)
            .field("created_at", &self.created_at)
            .field("platforms", &self.platforms)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewSuppression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSuppression")
            .field("publisher", &self.publisher)
            .field("reason", &self.reason)
            .field("platforms", &self.platforms)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewErasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewErasure")
            .field("publisher", &self.publisher)
            .field("platforms", &self.platforms)
            .finish_non_exhaustive()
    }
}

/// Filters of [`ConsentStore::list_suppressions`].
#[derive(Clone, Debug, Default)]
pub struct SuppressionFilter {
    /// Normalised address.
    pub email: Option<String>,
    pub reason: Option<Reason>,
}

/// A page of suppressions, newest first.
#[derive(Clone, Debug)]
pub struct SuppressionPage {
    pub suppressions: Vec<Suppression>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next: Option<i64>,
}

/// Where an erasure stands as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErasureStatus {
    /// Some platform has not finished.
    Pending,
    /// Every platform finished (done or skipped).
    Done,
    /// Every platform finished and at least one failed.
    Failed,
}

impl ErasureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureStatus::Pending => "pending",
            ErasureStatus::Done => "done",
            ErasureStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ErasureStatus> {
        [
            ErasureStatus::Pending,
            ErasureStatus::Done,
            ErasureStatus::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// An erasure request as stored: it never holds the address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureRecord {
    /// `era_…`
    pub id: String,
    pub publisher_id: String,
    pub status: ErasureStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub platforms: Vec<PlatformState>,
}

/// An erasure to start.
#[derive(Clone)]
pub struct NewErasure {
    pub publisher: PublisherId,
    /// Already normalised; only the `erase` jobs keep it, until they finish.
    pub email: String,
    /// One row per platform; `pending` ones get an `erase` job due at `now`.
    pub platforms: Vec<NewPlatformState>,
    pub now: DateTime<Utc>,
}

/// What a consent job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentJobKind {
    OptOut,
    Erase,
}

impl ConsentJobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentJobKind::OptOut => "opt_out",
            ConsentJobKind::Erase => "erase",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentJobKind> {
        [ConsentJobKind::OptOut, ConsentJobKind::Erase]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Where a consent job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentJobStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl ConsentJobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentJobStatus::Queued => "queued",
            ConsentJobStatus::Running => "running",
            ConsentJobStatus::Done => "done",
            ConsentJobStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentJobStatus> {
        [
            ConsentJobStatus::Queued,
            ConsentJobStatus::Running,
            ConsentJobStatus::Done,
            ConsentJobStatus::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One durable opt-out or erasure for one platform.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsentJob {
    pub id: String,
    pub kind: ConsentJobKind,
    pub publisher_id: String,
    pub platform: Platform,
    /// `opt_out`: the suppression it propagates.
    pub suppression_id: Option<String>,
    /// `erase`: the erasure it serves.
    pub erasure_id: Option<String>,
    /// The normalised address while the job is open (always set on a claimed job); `None` once
    /// it finished.
    pub email: Option<String>,
    pub reason: Option<Reason>,
    pub status: ConsentJobStatus,
    /// Runs so far, this one included for a claimed job.
    pub attempts: u32,
    pub next_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl std::fmt::Debug for ConsentJob {
    // The address stays out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentJob")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("publisher_id", &self.publisher_id)
            .field("platform", &self.platform)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// How a consent job's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsentOutcome {
    /// The platform holds it; `detail` (never the address) goes on the platform's row.
    Done { detail: String },
    /// Try again at `next_at`; the row stays `pending` with `error`.
    Retry {
        next_at: DateTime<Utc>,
        error: String,
    },
    /// Give up: the row is `failed` with `error`.
    Failed { error: String },
}

/// What [`ConsentStore::erase_local_copies`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErasedCopies {
    /// Synced records (any kind, any of the publisher's integrations).
    pub records: u64,
    /// Received webhook events.
    pub events: u64,
    /// The suppression (0 or 1).
    pub suppressions: u64,
    /// Open opt-out jobs, superseded by the erasure.
    pub jobs: u64,
    /// Audit entries whose detail named the address (the detail is replaced, the entry kept).
    pub audit: u64,
    /// Messages for event destinations about the address, delivered or not.
    pub messages: u64,
}

/// An audit entry to append.
#[derive(Clone, Debug)]
pub struct NewAuditEntry {
    pub publisher: PublisherId,
    pub at: DateTime<Utc>,
    /// `admin`, a publisher key's id, or `system` (a webhook, a sync).
    pub principal: String,
    /// Such as `suppression.created`, `consent.updated`, `erasure.requested`.
    pub action: String,
    /// A JSON object.
    pub detail: Value,
}

/// An audit entry as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub principal: String,
    pub action: String,
    pub detail: Value,
}

/// A page of audit entries, newest first.
#[derive(Clone, Debug)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next: Option<i64>,
}

/// The settings key of the server-wide salt of erased addresses' hashes.
pub const ERASURE_SALT_SETTING: &str = "consent.erasure_salt";

/// The consent ledger's storage (implemented by both backends; see the module docs).
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Records a suppression unless the publisher has one for the address; answers the stored
    /// entry (the first one when it existed) and whether it is new. A new entry's platform rows
    /// are stored with it, and each `pending` one queues an `opt_out` job, in one transaction.
    async fn record_suppression(&self, new: NewSuppression) -> StoreResult<(Suppression, bool)>;
    async fn get_suppression(
        &self,
        publisher: &PublisherId,
        email: &str,
    ) -> StoreResult<Option<Suppression>>;
    /// Newest first, `limit` of them, older than `before` (a page's `next`).
    async fn list_suppressions(
        &self,
        publisher: &PublisherId,
        filter: &SuppressionFilter,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<SuppressionPage>;
    /// Deletes an entry and its platform rows; answers whether it existed. Jobs already queued
    /// still run (deleting an entry re-subscribes no one).
    async fn delete_suppression(&self, publisher: &PublisherId, email: &str) -> StoreResult<bool>;

    /// The reasons the publisher propagates; `None` when it never chose (the caller applies
    /// `Reason::DEFAULT_PROPAGATE`).
    async fn get_consent_propagate(
        &self,
        publisher: &PublisherId,
    ) -> StoreResult<Option<Vec<Reason>>>;
    async fn put_consent_propagate(
        &self,
        publisher: &PublisherId,
        propagate: &[Reason],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Stores an erasure (`era_…`) with its platform rows and an `erase` job per `pending` row.
    /// An open `erase` job for the same (publisher, platform, address) is not duplicated: that
    /// platform's row here is `skipped`, naming the erasure already under way. With no pending
    /// row the erasure is `done` at once.
    async fn create_erasure(&self, new: NewErasure) -> StoreResult<ErasureRecord>;
    async fn get_erasure(
        &self,
        publisher: &PublisherId,
        erasure_id: &str,
    ) -> StoreResult<Option<ErasureRecord>>;

    /// Deletes the publisher's own copies of an address — synced records and received events
    /// holding it, its suppression and open opt-out jobs — replaces audit details naming it,
    /// and records the salted hash, in one transaction.
    async fn erase_local_copies(
        &self,
        publisher: &PublisherId,
        email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ErasedCopies>;
    /// Whether the (normalised) address was erased for this publisher.
    async fn is_erased(&self, publisher: &PublisherId, email: &str) -> StoreResult<bool>;

    /// Claims the oldest runnable job — queued and due, or running with an expired lease — for
    /// `worker` until `lease_until`, counting an attempt. PostgreSQL skips rows other claimers
    /// hold (`FOR UPDATE SKIP LOCKED`); SQLite's single write lock serialises claimers.
    async fn claim_consent_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<ConsentJob>>;
    /// Ends a run if `worker` still holds the lease, updating the job and its suppression's or
    /// erasure's platform row in one transaction (and the erasure's status once its last
    /// platform finished); answers whether it did. A finished job forgets the address.
    async fn finish_consent_job(
        &self,
        job_id: &str,
        worker: &str,
        outcome: ConsentOutcome,
    ) -> StoreResult<bool>;
    /// A publisher's jobs, newest first (tests, operators).
    async fn list_consent_jobs(
        &self,
        publisher: &PublisherId,
        limit: u32,
    ) -> StoreResult<Vec<ConsentJob>>;

    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<()>;
    /// Newest first, `limit` of them, older than `before` (a page's `next`).
    async fn list_audit(
        &self,
        publisher: &PublisherId,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<AuditPage>;
}

/// SHA-256 hex of `salt:email`.
pub(crate) fn salted_hash(salt: &str, email: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b":");
    h.update(email.as_bytes());
    hex::encode(h.finalize())
}

/// A new random salt (32 bytes, hex).
pub(crate) fn new_salt() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The `LIKE` pattern (escape character `\`) matching a text that holds `email` as a JSON
/// string: the address JSON-encoded with its quotes, so `ada@x.io` never matches
/// `ada@x.io.evil` or `bada@x.io`; `%`, `_` and `\` in it are taken literally.
pub(crate) fn json_string_pattern(email: &str) -> String {
    let quoted = serde_json::to_string(email).unwrap_or_default();
    let mut out = String::with_capacity(quoted.len() + 2);
    out.push('%');
    for c in quoted.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("consent {what}: {value:?}"))
}

fn platform(s: &str) -> StoreResult<Platform> {
    Platform::parse(s).ok_or_else(|| corrupt("platform", s))
}

fn reason(s: &str) -> StoreResult<Reason> {
    Reason::parse(s).ok_or_else(|| corrupt("reason", s))
}

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

#[derive(sqlx::FromRow)]
pub(crate) struct SuppressionRow {
    pub(crate) seq: i64,
    pub(crate) id: String,
    publisher_id: String,
    email: String,
    reason: String,
    source_kind: String,
    source_platform: Option<String>,
    source_event_id: Option<String>,
    source_principal: Option<String>,
    created_at: DateTime<Utc>,
}

pub(crate) const SUPPRESSION_COLUMNS: &str = "seq, id, publisher_id, email, reason, source_kind, \
     source_platform, source_event_id, source_principal, created_at";

impl SuppressionRow {
    pub(crate) fn into_record(self, platforms: Vec<PlatformState>) -> StoreResult<Suppression> {
        Ok(Suppression {
            reason: reason(&self.reason)?,
            source: SuppressionSource {
                kind: SourceKind::parse(&self.source_kind)
                    .ok_or_else(|| corrupt("source kind", &self.source_kind))?,
                platform: self.source_platform.as_deref().map(platform).transpose()?,
                event_id: self.source_event_id,
                principal: self.source_principal,
            },
            id: self.id,
            publisher_id: self.publisher_id,
            email: self.email,
            created_at: self.created_at,
            platforms,
        })
    }
}

/// A platform row with the id of the suppression or erasure it belongs to.
#[derive(sqlx::FromRow)]
pub(crate) struct PlatformRow {
    pub(crate) owner: String,
    platform: String,
    status: String,
    note: Option<String>,
    attempts: i64,
    updated_at: DateTime<Utc>,
}

impl TryFrom<PlatformRow> for PlatformState {
    type Error = StoreError;

    fn try_from(r: PlatformRow) -> StoreResult<Self> {
        Ok(PlatformState {
            platform: platform(&r.platform)?,
            status: PropagationStatus::parse(&r.status)
                .ok_or_else(|| corrupt("status", &r.status))?,
            note: r.note,
            attempts: count(r.attempts),
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ErasureRow {
    id: String,
    publisher_id: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ErasureRow {
    pub(crate) fn into_record(self, platforms: Vec<PlatformState>) -> StoreResult<ErasureRecord> {
        Ok(ErasureRecord {
            status: ErasureStatus::parse(&self.status)
                .ok_or_else(|| corrupt("erasure status", &self.status))?,
            id: self.id,
            publisher_id: self.publisher_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            platforms,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConsentJobRow {
    id: String,
    kind: String,
    publisher_id: String,
    platform: String,
    suppression_id: Option<String>,
    erasure_id: Option<String>,
    email: Option<String>,
    reason: Option<String>,
    status: String,
    attempts: i64,
    next_at: DateTime<Utc>,
    locked_by: Option<String>,
    locked_until: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

pub(crate) const CONSENT_JOB_COLUMNS: &str = "id, kind, publisher_id, platform, suppression_id, \
     erasure_id, email, reason, status, attempts, next_at, locked_by, locked_until, last_error";

impl TryFrom<ConsentJobRow> for ConsentJob {
    type Error = StoreError;

    fn try_from(r: ConsentJobRow) -> StoreResult<Self> {
        Ok(ConsentJob {
            kind: ConsentJobKind::parse(&r.kind).ok_or_else(|| corrupt("job kind", &r.kind))?,
            platform: platform(&r.platform)?,
            reason: r.reason.as_deref().map(reason).transpose()?,
            status: ConsentJobStatus::parse(&r.status)
                .ok_or_else(|| corrupt("job status", &r.status))?,
            attempts: count(r.attempts),
            id: r.id,
            publisher_id: r.publisher_id,
            suppression_id: r.suppression_id,
            erasure_id: r.erasure_id,
            email: r.email,
            next_at: r.next_at,
            locked_by: r.locked_by,
            locked_until: r.locked_until,
            last_error: r.last_error,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub(crate) seq: i64,
    at: DateTime<Utc>,
    principal: String,
    action: String,
    detail: String,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;

    fn try_from(r: AuditRow) -> StoreResult<Self> {
        Ok(AuditEntry {
            detail: serde_json::from_str(&r.detail).map_err(|_| corrupt("audit detail", ""))?,
            at: r.at,
            principal: r.principal,
            action: r.action,
        })
    }
}

/// Groups platform rows by their owner id, in the order of `owners`.
pub(crate) fn group_platforms(
    owners: &[String],
    rows: Vec<PlatformRow>,
) -> StoreResult<Vec<Vec<PlatformState>>> {
    let mut out: Vec<Vec<PlatformState>> = owners.iter().map(|_| Vec::new()).collect();
    for row in rows {
        if let Some(i) = owners.iter().position(|o| *o == row.owner) {
            out[i].push(row.try_into()?);
        }
    }
    for states in &mut out {
        states.sort_by_key(|s| s.platform.as_str());
    }
    Ok(out)
}

/// Implements [`ConsentStore`] for a backend whose pool is `self.pool`; `$claim_lock` is the
/// claim's row-locking clause (PostgreSQL's `FOR UPDATE SKIP LOCKED`, nothing on SQLite).
macro_rules! impl_consent_store {
    ($store:ty, $db:ty, $claim_lock:literal) => {
        impl $store {
            /// The server-wide salt of erased addresses' hashes, made on first use (replicas
            /// racing to make it all end up with the first one stored).
            async fn erasure_salt(&self) -> $crate::StoreResult<String> {
                use $crate::Store as _;
                if let Some(salt) = self.get_setting($crate::consent::ERASURE_SALT_SETTING).await? {
                    return Ok(salt);
                }
                self.put_setting_if_absent(
                    $crate::consent::ERASURE_SALT_SETTING,
                    &$crate::consent::new_salt(),
                )
                .await?;
                self.get_setting($crate::consent::ERASURE_SALT_SETTING)
                    .await?
                    .ok_or_else(|| $crate::StoreError::Corrupt("erasure salt vanished".into()))
            }

            /// The platform rows of these suppressions (`table` `suppression_platforms`, owner
            /// column `suppression_id`) or erasures (`erasure_platforms`, `erasure_id`).
            async fn platform_rows<'e, E>(
                exec: E,
                table: &str,
                owner: &str,
                owners: &[String],
            ) -> $crate::StoreResult<Vec<Vec<$crate::consent::PlatformState>>>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                if owners.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {owner} AS owner, platform, status, note, attempts, updated_at \
                     FROM {table} WHERE {owner} IN ("
                ));
                let mut list = qb.separated(", ");
                for o in owners {
                    list.push_bind(o.clone());
                }
                qb.push(")");
                let rows = qb
                    .build_query_as::<$crate::consent::PlatformRow>()
                    .fetch_all(exec)
                    .await?;
                $crate::consent::group_platforms(owners, rows)
            }

            /// Inserts platform rows, and a job for each pending one; answers the rows as
            /// stored (a pending one whose job already exists open is `skipped` when
            /// `skip_duplicates`, else the open job is pointed at this owner).
            #[allow(clippy::too_many_arguments)]
            async fn insert_platforms(
                tx: &mut sqlx::Transaction<'static, $db>,
                kind: $crate::consent::ConsentJobKind,
                owner_id: &str,
                publisher: &str,
                email: &str,
                reason: Option<domain::consent::Reason>,
                platforms: &[$crate::consent::NewPlatformState],
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<usize> {
                use $crate::consent::ConsentJobKind as K;
                use domain::consent::PropagationStatus as P;
                let (table, owner_col) = match kind {
                    K::OptOut => ("suppression_platforms", "suppression_id"),
                    K::Erase => ("erasure_platforms", "erasure_id"),
                };
                let mut pending = 0;
                for p in platforms {
                    let mut status = p.status;
                    let mut note = p.note.clone();
                    if status == P::Pending {
                        let inserted = sqlx::query(&format!(
                            "INSERT INTO consent_jobs (id, kind, publisher_id, platform, {owner_col}, \
                             email, reason, status, attempts, next_at, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $8, $8) \
                             ON CONFLICT DO NOTHING"
                        ))
                        .bind(format!("cj_{}", uuid::Uuid::now_v7().simple()))
                        .bind(kind.as_str())
                        .bind(publisher)
                        .bind(p.platform.as_str())
                        .bind(owner_id)
                        .bind(email)
                        .bind(reason.map(|r| r.as_str()))
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                        if inserted.rows_affected() == 0 {
                            // An open job for this (publisher, kind, platform, address) exists.
                            match kind {
                                // The entry it served was deleted and recorded again: it now
                                // serves this one.
                                K::OptOut => {
                                    sqlx::query(
                                        "UPDATE consent_jobs SET suppression_id = $5 \
                                         WHERE publisher_id = $1 AND kind = $2 AND platform = $3 \
                                         AND email = $4 AND status IN ('queued', 'running')",
                                    )
                                    .bind(publisher)
                                    .bind(kind.as_str())
                                    .bind(p.platform.as_str())
                                    .bind(email)
                                    .bind(owner_id)
                                    .execute(&mut **tx)
                                    .await?;
                                    pending += 1;
                                }
                                K::Erase => {
                                    let earlier = sqlx::query_scalar::<_, Option<String>>(
                                        "SELECT erasure_id FROM consent_jobs \
                                         WHERE publisher_id = $1 AND kind = $2 AND platform = $3 \
                                         AND email = $4 AND status IN ('queued', 'running')",
                                    )
                                    .bind(publisher)
                                    .bind(kind.as_str())
                                    .bind(p.platform.as_str())
                                    .bind(email)
                                    .fetch_optional(&mut **tx)
                                    .await?;
                                    status = P::Skipped;
                                    note = Some(format!(
                                        "erasure {} of this address is under way",
                                        earlier.flatten().unwrap_or_default()
                                    ));
                                }
                            }
                        } else {
                            pending += 1;
                        }
                    }
                    sqlx::query(&format!(
                        "INSERT INTO {table} ({owner_col}, platform, status, note, attempts, updated_at) \
                         VALUES ($1, $2, $3, $4, 0, $5)"
                    ))
                    .bind(owner_id)
                    .bind(p.platform.as_str())
                    .bind(status.as_str())
                    .bind(note)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(pending)
            }
        }

        #[async_trait::async_trait]
        impl $crate::consent::ConsentStore for $store {
            async fn record_suppression(
                &self,
                new: $crate::consent::NewSuppression,
            ) -> $crate::StoreResult<($crate::consent::Suppression, bool)> {
                let mut tx = self.pool.begin().await?;
                let id = format!("sup_{}", uuid::Uuid::new_v4().simple());
                let inserted = sqlx::query(
                    "INSERT INTO suppressions (id, publisher_id, email, reason, source_kind, \
                     source_platform, source_event_id, source_principal, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (publisher_id, email) DO NOTHING",
                )
                .bind(&id)
                .bind(new.publisher.as_str())
                .bind(&new.email)
                .bind(new.reason.as_str())
                .bind(new.source.kind.as_str())
                .bind(new.source.platform.map(|p| p.as_str()))
                .bind(&new.source.event_id)
                .bind(&new.source.principal)
                .bind(new.now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if inserted {
                    Self::insert_platforms(
                        &mut tx,
                        $crate::consent::ConsentJobKind::OptOut,
                        &id,
                        new.publisher.as_str(),
                        &new.email,
                        Some(new.reason),
                        &new.platforms,
                        new.now,
                    )
                    .await?;
                }
                tx.commit().await?;
                let stored = self
                    .get_suppression(&new.publisher, &new.email)
                    .await?
                    .ok_or_else(|| $crate::StoreError::Corrupt("suppression vanished".into()))?;
                Ok((stored, inserted))
            }

            async fn get_suppression(
                &self,
                publisher: &domain::PublisherId,
                email: &str,
            ) -> $crate::StoreResult<Option<$crate::consent::Suppression>> {
                let page = self
                    .list_suppressions(
                        publisher,
                        &$crate::consent::SuppressionFilter {
                            email: Some(email.to_owned()),
                            reason: None,
                        },
                        1,
                        None,
                    )
                    .await?;
                Ok(page.suppressions.into_iter().next())
            }

            async fn list_suppressions(
                &self,
                publisher: &domain::PublisherId,
                filter: &$crate::consent::SuppressionFilter,
                limit: u32,
                before: Option<i64>,
            ) -> $crate::StoreResult<$crate::consent::SuppressionPage> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM suppressions WHERE publisher_id = ",
                    $crate::consent::SUPPRESSION_COLUMNS
                ));
                qb.push_bind(publisher.as_str().to_owned());
                if let Some(email) = &filter.email {
                    qb.push(" AND email = ").push_bind(email.clone());
                }
                if let Some(reason) = filter.reason {
                    qb.push(" AND reason = ").push_bind(reason.as_str());
                }
                if let Some(before) = before {
                    qb.push(" AND seq < ").push_bind(before);
                }
                qb.push(" ORDER BY seq DESC LIMIT ")
                    .push_bind(i64::from(limit) + 1);
                let mut rows = qb
                    .build_query_as::<$crate::consent::SuppressionRow>()
                    .fetch_all(&self.pool)
                    .await?;
                let next = if rows.len() > limit as usize {
                    rows.truncate(limit as usize);
                    rows.last().map(|r| r.seq)
                } else {
                    None
                };
                let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
                let platforms =
                    Self::platform_rows(&self.pool, "suppression_platforms", "suppression_id", &ids)
                        .await?;
                let suppressions = rows
                    .into_iter()
                    .zip(platforms.into_iter().chain(std::iter::repeat_with(Vec::new)))
                    .map(|(row, states)| row.into_record(states))
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::consent::SuppressionPage { suppressions, next })
            }

            async fn delete_suppression(
                &self,
                publisher: &domain::PublisherId,
                email: &str,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let id: Option<String> = sqlx::query_scalar(
                    "DELETE FROM suppressions WHERE publisher_id = $1 AND email = $2 RETURNING id",
                )
                .bind(publisher.as_str())
                .bind(email)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(id) = &id {
                    // The foreign key cascades too; explicit for a connection without it.
                    sqlx::query("DELETE FROM suppression_platforms WHERE suppression_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(id.is_some())
            }

            async fn get_consent_propagate(
                &self,
                publisher: &domain::PublisherId,
            ) -> $crate::StoreResult<Option<Vec<domain::consent::Reason>>> {
                let raw: Option<String> = sqlx::query_scalar(
                    "SELECT propagate FROM consent_settings WHERE publisher_id = $1",
                )
                .bind(publisher.as_str())
                .fetch_optional(&self.pool)
                .await?;
                raw.map(|raw| {
                    serde_json::from_str::<Vec<domain::consent::Reason>>(&raw)
                        .map_err(|_| $crate::consent::corrupt("propagate", &raw))
                })
                .transpose()
            }

            async fn put_consent_propagate(
                &self,
                publisher: &domain::PublisherId,
                propagate: &[domain::consent::Reason],
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<()> {
                let json = serde_json::to_string(propagate)
                    .map_err(|e| $crate::StoreError::Other(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO consent_settings (publisher_id, propagate, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (publisher_id) DO UPDATE SET propagate = excluded.propagate, \
                     updated_at = excluded.updated_at",
                )
                .bind(publisher.as_str())
                .bind(json)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn create_erasure(
                &self,
                new: $crate::consent::NewErasure,
            ) -> $crate::StoreResult<$crate::consent::ErasureRecord> {
                let id = format!("era_{}", uuid::Uuid::new_v4().simple());
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO erasures (id, publisher_id, status, created_at, updated_at) \
                     VALUES ($1, $2, 'pending', $3, $3)",
                )
                .bind(&id)
                .bind(new.publisher.as_str())
                .bind(new.now)
                .execute(&mut *tx)
                .await?;
                let pending = Self::insert_platforms(
                    &mut tx,
                    $crate::consent::ConsentJobKind::Erase,
                    &id,
                    new.publisher.as_str(),
                    &new.email,
                    None,
                    &new.platforms,
                    new.now,
                )
                .await?;
                if pending == 0 {
                    sqlx::query("UPDATE erasures SET status = 'done' WHERE id = $1")
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                self.get_erasure(&new.publisher, &id)
                    .await?
                    .ok_or_else(|| $crate::StoreError::Corrupt("erasure vanished".into()))
            }

            async fn get_erasure(
                &self,
                publisher: &domain::PublisherId,
                erasure_id: &str,
            ) -> $crate::StoreResult<Option<$crate::consent::ErasureRecord>> {
                let row = sqlx::query_as::<_, $crate::consent::ErasureRow>(
                    "SELECT id, publisher_id, status, created_at, updated_at FROM erasures \
                     WHERE publisher_id = $1 AND id = $2",
                )
                .bind(publisher.as_str())
                .bind(erasure_id)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let platforms = Self::platform_rows(
                    &self.pool,
                    "erasure_platforms",
                    "erasure_id",
                    &[erasure_id.to_owned()],
                )
                .await?
                .pop()
                .unwrap_or_default();
                row.into_record(platforms).map(Some)
            }

            async fn erase_local_copies(
                &self,
                publisher: &domain::PublisherId,
                email: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<$crate::consent::ErasedCopies> {
                let hash = $crate::consent::salted_hash(&self.erasure_salt().await?, email);
                // Where the address is kept: synced records hold it inside their normalised and
                // raw JSON (a contact's `email`, Keap's `email_addresses[].email`, …), events in
                // their `email` column and their JSON `data`. Both JSON texts are matched,
                // lowercased, against the address as a quoted JSON string (see
                // `json_string_pattern`): any string value equal to it, in any field, counts.
                // An address written with \u escapes in a platform's JSON is not matched.
                let pattern = $crate::consent::json_string_pattern(email);
                let mut tx = self.pool.begin().await?;
                let records = sqlx::query(
                    "DELETE FROM synced_records WHERE integration_id IN \
                     (SELECT id FROM integrations WHERE publisher_id = $1) \
                     AND (lower(normalized) LIKE $2 ESCAPE '\\' OR lower(raw) LIKE $2 ESCAPE '\\')",
                )
                .bind(publisher.as_str())
                .bind(&pattern)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let events = sqlx::query(
                    "DELETE FROM received_events WHERE publisher_id = $1 \
                     AND (lower(email) = $3 OR lower(data) LIKE $2 ESCAPE '\\')",
                )
                .bind(publisher.as_str())
                .bind(&pattern)
                .bind(email)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // Messages for destinations carry the event (and the address) in their payload.
                let messages_about = "SELECT id FROM destination_messages WHERE publisher_id = $1 \
                     AND (reader = $3 OR lower(payload) LIKE $2 ESCAPE '\\')";
                sqlx::query(&format!(
                    "DELETE FROM destination_attempts WHERE message_id IN ({messages_about})"
                ))
                .bind(publisher.as_str())
                .bind(&pattern)
                .bind(email)
                .execute(&mut *tx)
                .await?;
                let messages = sqlx::query(&format!(
                    "DELETE FROM destination_messages WHERE id IN ({messages_about})"
                ))
                .bind(publisher.as_str())
                .bind(&pattern)
                .bind(email)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let ids: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM suppressions WHERE publisher_id = $1 AND email = $2 RETURNING id",
                )
                .bind(publisher.as_str())
                .bind(email)
                .fetch_all(&mut *tx)
                .await?;
                for id in &ids {
                    sqlx::query("DELETE FROM suppression_platforms WHERE suppression_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                let jobs = sqlx::query(
                    "DELETE FROM consent_jobs WHERE publisher_id = $1 AND kind = 'opt_out' \
                     AND email = $2 AND status IN ('queued', 'running')",
                )
                .bind(publisher.as_str())
                .bind(email)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let audit = sqlx::query(
                    "UPDATE audit_log SET detail = '{\"redacted\":\"erased address\"}' \
                     WHERE publisher_id = $1 AND lower(detail) LIKE $2 ESCAPE '\\'",
                )
                .bind(publisher.as_str())
                .bind(&pattern)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(
                    "INSERT INTO erased_addresses (publisher_id, email_hash, erased_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (publisher_id, email_hash) DO UPDATE SET erased_at = excluded.erased_at",
                )
                .bind(publisher.as_str())
                .bind(&hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.bump_epoch().await?;
                Ok($crate::consent::ErasedCopies {
                    records,
                    events,
                    suppressions: ids.len() as u64,
                    jobs,
                    audit,
                    messages,
                })
            }

            async fn is_erased(
                &self,
                publisher: &domain::PublisherId,
                email: &str,
            ) -> $crate::StoreResult<bool> {
                let hash = $crate::consent::salted_hash(&self.erasure_salt().await?, email);
                let found: Option<String> = sqlx::query_scalar(
                    "SELECT email_hash FROM erased_addresses WHERE publisher_id = $1 AND email_hash = $2",
                )
                .bind(publisher.as_str())
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(found.is_some())
            }

            async fn claim_consent_job(
                &self,
                worker: &str,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Option<$crate::consent::ConsentJob>> {
                let runnable = "((status = 'queued' AND next_at <= $3) OR (status = 'running' AND locked_until < $3))";
                // The outer condition repeats `runnable`: PostgreSQL re-checks it on a row that
                // changed while this statement waited, so two claimers never both win.
                let sql = format!(
                    "UPDATE consent_jobs SET status = 'running', locked_by = $1, locked_until = $2, \
                     attempts = attempts + 1, updated_at = $3 \
                     WHERE {runnable} AND seq = (SELECT seq FROM consent_jobs WHERE {runnable} \
                     ORDER BY next_at, seq LIMIT 1 {}) RETURNING {}",
                    $claim_lock,
                    $crate::consent::CONSENT_JOB_COLUMNS
                );
                sqlx::query_as::<_, $crate::consent::ConsentJobRow>(&sql)
                    .bind(worker)
                    .bind(lease_until)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn finish_consent_job(
                &self,
                job_id: &str,
                worker: &str,
                outcome: $crate::consent::ConsentOutcome,
            ) -> $crate::StoreResult<bool> {
                use $crate::consent::ConsentOutcome as O;
                use domain::consent::PropagationStatus as P;
                let now = chrono::Utc::now();
                // (job status, next run, job error, row status, row note)
                let (status, next_at, error, row_status, note) = match &outcome {
                    O::Done { detail } => ("done", None, None, P::Done, detail.as_str()),
                    O::Retry { next_at, error } => {
                        ("queued", Some(*next_at), Some(error.as_str()), P::Pending, error.as_str())
                    }
                    O::Failed { error } => ("failed", None, Some(error.as_str()), P::Failed, error.as_str()),
                };
                let finished = status != "queued";
                let mut tx = self.pool.begin().await?;
                let job: Option<(String, String, Option<String>, Option<String>, i64)> =
                    sqlx::query_as(
                        "UPDATE consent_jobs SET status = $3, next_at = COALESCE($4, next_at), \
                         last_error = $5, locked_by = NULL, locked_until = NULL, updated_at = $6, \
                         email = CASE WHEN $7 THEN NULL ELSE email END \
                         WHERE id = $1 AND locked_by = $2 AND status = 'running' \
                         RETURNING kind, platform, suppression_id, erasure_id, attempts",
                    )
                    .bind(job_id)
                    .bind(worker)
                    .bind(status)
                    .bind(next_at)
                    .bind(error)
                    .bind(now)
                    .bind(finished)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((kind, platform, suppression_id, erasure_id, attempts)) = job else {
                    return Ok(false);
                };
                let (table, owner_col, owner) = match $crate::consent::ConsentJobKind::parse(&kind) {
                    Some($crate::consent::ConsentJobKind::OptOut) => {
                        ("suppression_platforms", "suppression_id", suppression_id)
                    }
                    Some($crate::consent::ConsentJobKind::Erase) => {
                        ("erasure_platforms", "erasure_id", erasure_id.clone())
                    }
                    None => return Err($crate::consent::corrupt("job kind", &kind)),
                };
                // The entry may be gone (deleted, erased): then only the job is updated.
                sqlx::query(&format!(
                    "UPDATE {table} SET status = $3, note = $4, attempts = $5, updated_at = $6 \
                     WHERE {owner_col} = $1 AND platform = $2"
                ))
                .bind(&owner)
                .bind(&platform)
                .bind(row_status.as_str())
                .bind(note)
                .bind(attempts)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if let (true, Some(erasure_id)) = (finished, &erasure_id) {
                    // The erasure ends with its last platform: failed if any platform failed.
                    let (open, failed): (i64, i64) = sqlx::query_as(
                        "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), \
                         COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) \
                         FROM erasure_platforms WHERE erasure_id = $1",
                    )
                    .bind(erasure_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if open == 0 {
                        sqlx::query(
                            "UPDATE erasures SET status = $2, updated_at = $3 WHERE id = $1",
                        )
                        .bind(erasure_id)
                        .bind(if failed > 0 { "failed" } else { "done" })
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn list_consent_jobs(
                &self,
                publisher: &domain::PublisherId,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::consent::ConsentJob>> {
                sqlx::query_as::<_, $crate::consent::ConsentJobRow>(&format!(
                    "SELECT {} FROM consent_jobs WHERE publisher_id = $1 ORDER BY seq DESC LIMIT $2",
                    $crate::consent::CONSENT_JOB_COLUMNS
                ))
                .bind(publisher.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            async fn append_audit(
                &self,
                entry: $crate::consent::NewAuditEntry,
            ) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO audit_log (publisher_id, at, principal, action, detail) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(entry.publisher.as_str())
                .bind(entry.at)
                .bind(&entry.principal)
                .bind(&entry.action)
                .bind(entry.detail.to_string())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_audit(
                &self,
                publisher: &domain::PublisherId,
                limit: u32,
                before: Option<i64>,
            ) -> $crate::StoreResult<$crate::consent::AuditPage> {
                let mut rows = sqlx::query_as::<_, $crate::consent::AuditRow>(
                    "SELECT seq, at, principal, action, detail FROM audit_log \
                     WHERE publisher_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                )
                .bind(publisher.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let next = if rows.len() > limit as usize {
                    rows.truncate(limit as usize);
                    rows.last().map(|r| r.seq)
                } else {
                    None
                };
                Ok($crate::consent::AuditPage {
                    entries: rows
                        .into_iter()
                        .map(TryInto::try_into)
                        .collect::<$crate::StoreResult<Vec<_>>>()?,
                    next,
                })
            }
        }
    };
}

pub(crate) use impl_consent_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pattern_is_literal_and_quoted() {
        assert_eq!(json_string_pattern("a_b@x.io"), "%\"a\\_b@x.io\"%");
        assert_eq!(json_string_pattern("a%b@x.io"), "%\"a\\%b@x.io\"%");
    }

    #[test]
    fn hashes_depend_on_salt_and_address() {
        let h = salted_hash("s1", "ada@example.com");
        assert_eq!(h.len(), 64);
        assert_ne!(h, salted_hash("s2", "ada@example.com"));
        assert_ne!(h, salted_hash("s1", "bob@example.com"));
        assert_ne!(new_salt(), new_salt());
    }
}
