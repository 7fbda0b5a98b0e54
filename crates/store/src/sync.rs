//! Storage for the sync engine: durable jobs with leases, checkpoints, and synced records.
//!
//! Kept apart from the rest of [`Store`](crate::Store) (a supertrait, [`SyncStore`]) because
//! its rules are its own: every write that continues a job first checks, in the same
//! transaction, that the caller still holds the job's lease, so a worker that lost its lease
//! (paused, partitioned, presumed dead) can never commit over the one that took the job over.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Platform;
use serde::Serialize;
use serde_json::{Value, value::RawValue};

use crate::{NewSyncJob, StoreResult, SyncJobRecord};

/// A record as a sync page or a webhook delivers it.
///
/// Both bodies are JSON text ([`RawValue`]): the platform's raw JSON is kept as the bytes it
/// arrived in and the normalised shape is serialised once, straight from its type, so a
/// million-record sync never builds a `Value` tree per record only to print it again.
#[derive(Clone, Debug)]
pub struct NewRecord {
    pub platform_id: String,
    pub normalized: Box<RawValue>,
    pub raw: Box<RawValue>,
}

impl NewRecord {
    /// A record whose raw JSON is already text (a slice of the platform's page).
    pub fn new<N: Serialize + ?Sized>(
        platform_id: String,
        normalized: &N,
        raw: Box<RawValue>,
    ) -> serde_json::Result<Self> {
        Ok(Self {
            platform_id,
            normalized: serde_json::value::to_raw_value(normalized)?,
            raw,
        })
    }

    /// A record from parsed values (sources whose platform answers need reshaping first).
    pub fn from_values<N: Serialize + ?Sized>(
        platform_id: String,
        normalized: &N,
        raw: &Value,
    ) -> serde_json::Result<Self> {
        Self::new(
            platform_id,
            normalized,
            serde_json::value::to_raw_value(raw)?,
        )
    }

    /// The normalised shape, parsed (for tests and the rare reader that needs fields).
    pub fn normalized_value(&self) -> Value {
        serde_json::from_str(self.normalized.get()).unwrap_or(Value::Null)
    }

    /// The platform's JSON, parsed.
    pub fn raw_value(&self) -> Value {
        serde_json::from_str(self.raw.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for NewRecord {
    fn eq(&self, other: &Self) -> bool {
        self.platform_id == other.platform_id
            && self.normalized.get() == other.normalized.get()
            && self.raw.get() == other.raw.get()
    }
}

/// A record as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    pub platform_id: String,
    pub kind: String,
    /// Change order: moves when the record's raw JSON changes or it is deleted or revived.
    pub seq: i64,
    pub normalized: Value,
    pub raw: Value,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Where a kind's reading stands for one integration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Where the next incremental listing starts (source-defined); `None`: list from the start.
    pub watermark: Option<String>,
    /// The job whose listing is in progress, and where it goes on.
    pub run_job_id: Option<String>,
    pub run_cursor: Option<String>,
    /// Whether that listing began at the start (so that, complete, it may mark deletes).
    pub run_from_start: bool,
    /// Whether that job finished this kind (a resumed job skips it).
    pub run_done: bool,
}

/// One page to commit, atomically with its cursor and the job's progress.
#[derive(Clone, Debug)]
pub struct PageCommit {
    pub job_id: String,
    pub worker: String,
    pub integration_id: String,
    pub kind: String,
    pub records: Vec<NewRecord>,
    /// Where the listing goes on after this page (`None` after its last page).
    pub next: Option<String>,
    pub from_start: bool,
    /// The job's counts after this page (the lease holder keeps them).
    pub counts: BTreeMap<String, u64>,
    pub now: DateTime<Utc>,
}

/// The end of one kind's listing.
#[derive(Clone, Debug)]
pub struct KindFinish {
    pub job_id: String,
    pub worker: String,
    pub integration_id: String,
    pub kind: String,
    /// Where the next incremental listing starts.
    pub watermark: Option<String>,
    /// The listing began at the start and reached its end: records it did not see are gone —
    /// except those written since `listing_started` (a webhook delivery may add a record the
    /// listing had already passed).
    pub delete_unseen: bool,
    pub listing_started: DateTime<Utc>,
    /// The job's deleted counts before this kind (this kind's number is added).
    pub deleted: BTreeMap<String, u64>,
    pub now: DateTime<Utc>,
}

/// How a job's run ended.
#[derive(Clone, Debug)]
pub enum JobOutcome {
    Succeeded,
    /// A permanent failure (bad credentials, a bug): the job ends.
    Failed {
        code: String,
        message: String,
    },
    /// A retryable failure: the job is queued again for `at`, keeping its checkpoints.
    Retry {
        at: DateTime<Utc>,
        code: String,
        message: String,
    },
    /// Shutdown: the job is queued again at once for another worker; the run is not counted.
    Release,
}

/// A connected integration the scheduler may queue a sync for.
#[derive(Clone, Debug, PartialEq)]
pub struct DueIntegration {
    pub id: String,
    pub publisher_id: String,
    pub platform: Platform,
    pub config: Value,
    pub next_sync_at: Option<DateTime<Utc>>,
}

/// The sync engine's storage (implemented by both backends; see the module docs).
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Queues `job` unless the integration has a queued or running job; answers the active job
    /// and whether it is the new one. Two concurrent calls create one job.
    async fn enqueue_sync_job(&self, job: NewSyncJob) -> StoreResult<(SyncJobRecord, bool)>;
    async fn get_sync_job(
        &self,
        integration_id: &str,
        job_id: &str,
    ) -> StoreResult<Option<SyncJobRecord>>;
    /// The newest jobs first.
    async fn list_sync_jobs(
        &self,
        integration_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<SyncJobRecord>>;
    /// Claims the oldest runnable job — queued and due, or running with an expired lease (its
    /// worker died) — for `worker` until `lease_until`, counting an attempt. `only` restricts
    /// the claim to one job (the CLI). PostgreSQL skips rows other claimers hold
    /// (`FOR UPDATE SKIP LOCKED`); SQLite's single write lock serialises claimers.
    async fn claim_sync_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        only: Option<&str>,
    ) -> StoreResult<Option<SyncJobRecord>>;
    /// Extends the lease if `worker` still holds it; answers whether it does.
    async fn renew_sync_lease(
        &self,
        job_id: &str,
        worker: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn get_checkpoint(
        &self,
        integration_id: &str,
        kind: &str,
    ) -> StoreResult<Option<Checkpoint>>;
    /// Commits a page's records (upserted by platform id, de-duplicated within the page), the
    /// listing's cursor and the job's progress in one transaction, if `worker` holds the lease;
    /// answers whether it did.
    async fn commit_sync_page(&self, page: PageCommit) -> StoreResult<bool>;
    /// Ends a kind's listing: stores the watermark, clears the run cursor and, when asked, marks
    /// records the listing did not see deleted — in one transaction, if `worker` holds the
    /// lease. Answers how many were marked deleted, or `None` when the lease was lost.
    async fn finish_sync_kind(&self, finish: KindFinish) -> StoreResult<Option<u64>>;
    /// Ends a run, if `worker` holds the lease; answers whether it did.
    async fn finish_sync_job(
        &self,
        job_id: &str,
        worker: &str,
        outcome: JobOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Upserts records outside a sync (webhook deliveries); answers how many were written.
    async fn upsert_records(
        &self,
        integration_id: &str,
        kind: &str,
        records: Vec<NewRecord>,
    ) -> StoreResult<u64>;
    /// Marks records deleted outside a sync (webhook deliveries); answers how many.
    async fn delete_records(
        &self,
        integration_id: &str,
        kind: &str,
        platform_ids: &[String],
    ) -> StoreResult<u64>;
    /// Newest change first; `after` is the `(seq, platform_id)` of the last record of the
    /// previous page.
    async fn list_records(
        &self,
        integration_id: &str,
        kind: &str,
        limit: u32,
        after: Option<(i64, String)>,
        include_deleted: bool,
    ) -> StoreResult<Vec<StoredRecord>>;
    /// How many live (not deleted) records of a kind are stored.
    async fn count_records(&self, integration_id: &str, kind: &str) -> StoreResult<u64>;
    /// The live records of a kind among `platform_ids` (any order; absent ids are left out).
    async fn get_records(
        &self,
        integration_id: &str,
        kind: &str,
        platform_ids: &[String],
    ) -> StoreResult<Vec<StoredRecord>>;

    /// An integration by its id (the engine knows jobs by integration id).
    async fn get_integration_by_id(
        &self,
        integration_id: &str,
    ) -> StoreResult<Option<crate::IntegrationRecord>>;

    /// Connected integrations whose scheduled sync is due (`next_sync_at` unset or past).
    async fn due_integrations(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueIntegration>>;
    /// Moves an integration's next scheduled sync from `expected` to `next`; answers whether
    /// this caller did (replicas race for it; the winner queues the job).
    async fn set_next_sync(
        &self,
        integration_id: &str,
        expected: Option<DateTime<Utc>>,
        next: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

/// The change order of the `index`-th record written at `now`: later writes sort later.
pub(crate) fn change_seq(now: DateTime<Utc>, index: usize) -> i64 {
    now.timestamp_micros()
        .saturating_mul(1000)
        .saturating_add(i64::try_from(index % 1000).unwrap_or(0))
}

/// The last record per platform id (a platform may list one twice in a page; one statement
/// may not upsert a row twice).
pub(crate) fn dedup_last(records: Vec<NewRecord>) -> Vec<NewRecord> {
    let mut seen = std::collections::HashMap::with_capacity(records.len());
    let mut out: Vec<NewRecord> = Vec::with_capacity(records.len());
    for r in records {
        match seen.get(&r.platform_id) {
            Some(&i) => out[i] = r,
            None => {
                seen.insert(r.platform_id.clone(), out.len());
                out.push(r);
            }
        }
    }
    out
}

#[derive(sqlx::FromRow)]
pub(crate) struct RecordRow {
    platform_id: String,
    kind: String,
    seq: i64,
    normalized: String,
    raw: String,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

impl TryFrom<RecordRow> for StoredRecord {
    type Error = crate::StoreError;

    fn try_from(r: RecordRow) -> StoreResult<Self> {
        let parse = |what: &str, s: &str| {
            serde_json::from_str(s).map_err(|_| {
                crate::StoreError::Corrupt(format!("record {what} of {}", r.platform_id))
            })
        };
        Ok(StoredRecord {
            normalized: parse("normalized", &r.normalized)?,
            raw: parse("raw", &r.raw)?,
            platform_id: r.platform_id,
            kind: r.kind,
            seq: r.seq,
            updated_at: r.updated_at,
            deleted_at: r.deleted_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CheckpointRow {
    pub(crate) watermark: Option<String>,
    pub(crate) run_job_id: Option<String>,
    pub(crate) run_cursor: Option<String>,
    pub(crate) run_from_start: bool,
    pub(crate) run_done: bool,
}

#[derive(sqlx::FromRow)]
pub(crate) struct DueRow {
    id: String,
    publisher_id: String,
    platform: String,
    config: String,
    next_sync_at: Option<DateTime<Utc>>,
}

impl TryFrom<DueRow> for DueIntegration {
    type Error = crate::StoreError;

    fn try_from(r: DueRow) -> StoreResult<Self> {
        Ok(DueIntegration {
            platform: Platform::parse(&r.platform)
                .ok_or_else(|| crate::StoreError::Corrupt(format!("platform {}", r.platform)))?,
            config: serde_json::from_str(&r.config)
                .map_err(|_| crate::StoreError::Corrupt(format!("config of {}", r.id)))?,
            id: r.id,
            publisher_id: r.publisher_id,
            next_sync_at: r.next_sync_at,
        })
    }
}

pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// The columns every record upsert writes, in bind order.
const UPSERT_INTO: &str = "INSERT INTO synced_records \
     (integration_id, kind, platform_id, seq, normalized, raw, updated_at, last_seen_job) ";

/// What a record upsert does to a record already stored: an unchanged record keeps its place in
/// the change order; a changed or revived one moves to the front.
const UPSERT_ON_CONFLICT: &str = " ON CONFLICT (integration_id, kind, platform_id) DO UPDATE SET \
     seq = CASE WHEN synced_records.raw <> excluded.raw OR synced_records.deleted_at IS NOT NULL \
           THEN excluded.seq ELSE synced_records.seq END, \
     updated_at = CASE WHEN synced_records.raw <> excluded.raw OR synced_records.deleted_at IS NOT NULL \
           THEN excluded.updated_at ELSE synced_records.updated_at END, \
     normalized = excluded.normalized, raw = excluded.raw, deleted_at = NULL, \
     last_seen_job = COALESCE(excluded.last_seen_job, synced_records.last_seen_job)";

/// The records a job did not see (`last_seen_job` NULL or another job's), as three disjoint
/// conditions that are each one range of the partial index `synced_records_unseen`
/// (`integration_id, kind, last_seen_job` of the live records, migration 0007). The single
/// `last_seen_job IS NULL OR last_seen_job <> $3` matched the same rows but neither backend
/// can seek on `<>`, so the delete-unseen step read every record of the kind (1 s at 1M on
/// PostgreSQL); the three ranges skip the block the job saw and cost what the unseen rows cost.
pub(crate) const UNSEEN: [&str; 3] = [
    "last_seen_job IS NULL",
    "last_seen_job < $3",
    "last_seen_job > $3",
];

/// One page's upsert: `records` already de-duplicated, `job` the job that saw them (the
/// delete-unseen step of a full run spares them).
pub(crate) struct RecordUpsert<'a> {
    pub integration_id: &'a str,
    pub kind: &'a str,
    pub records: &'a [NewRecord],
    pub job: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// SQLite: multi-row `VALUES`, 1,000 rows × 8 binds a statement (under its 32,766 bind limit).
pub(crate) async fn upsert_records_sqlite(
    conn: &mut sqlx::SqliteConnection,
    up: RecordUpsert<'_>,
) -> StoreResult<u64> {
    let mut written = 0u64;
    for (chunk_no, chunk) in up.records.chunks(1000).enumerate() {
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(UPSERT_INTO);
        qb.push_values(chunk.iter().enumerate(), |mut b, (i, r)| {
            b.push_bind(up.integration_id)
                .push_bind(up.kind)
                .push_bind(&r.platform_id)
                .push_bind(change_seq(up.now, chunk_no * 1000 + i))
                .push_bind(r.normalized.get())
                .push_bind(r.raw.get())
                .push_bind(up.now)
                .push_bind(up.job);
        });
        qb.push(UPSERT_ON_CONFLICT);
        written += qb.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(written)
}

/// PostgreSQL: the page's columns bound as four arrays and unnested, so one prepared statement of
/// eight parameters serves every page. A `VALUES` list of 8,000 parameters cost the server most of
/// the page's commit time in parsing, planning and binding, on the cores the sync shares with it.
pub(crate) async fn upsert_records_postgres(
    conn: &mut sqlx::PgConnection,
    up: RecordUpsert<'_>,
) -> StoreResult<u64> {
    let n = up.records.len();
    let mut ids = Vec::with_capacity(n);
    let mut seqs = Vec::with_capacity(n);
    let mut normalized = Vec::with_capacity(n);
    let mut raw = Vec::with_capacity(n);
    for (i, r) in up.records.iter().enumerate() {
        ids.push(r.platform_id.as_str());
        seqs.push(change_seq(up.now, i));
        normalized.push(r.normalized.get());
        raw.push(r.raw.get());
    }
    let sql = format!(
        "{UPSERT_INTO}SELECT $1, $2, r.platform_id, r.seq, r.normalized, r.raw, $3, $4 \
         FROM UNNEST($5::text[], $6::bigint[], $7::text[], $8::text[]) AS r(platform_id, seq, normalized, raw)\
         {UPSERT_ON_CONFLICT}"
    );
    let done = sqlx::query(&sql)
        .bind(up.integration_id)
        .bind(up.kind)
        .bind(up.now)
        .bind(up.job)
        .bind(ids)
        .bind(seqs)
        .bind(normalized)
        .bind(raw)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Implements [`SyncStore`] for a backend; `$claim_lock` is the row-lock clause of the claim's
/// subquery (PostgreSQL `FOR UPDATE SKIP LOCKED`, SQLite none: its write lock serialises).
macro_rules! impl_sync_store {
    ($store:ty, $db:ty, $claim_lock:literal, $upsert:path) => {
        impl $store {
            /// Whether `worker` holds the running job's lease, checked inside `tx`. A no-op
            /// write rather than a read, so that on SQLite the transaction takes the write lock
            /// first (waiting out the busy timeout) instead of failing to upgrade a read lock
            /// when another process wrote meanwhile.
            async fn holds_lease(
                tx: &mut sqlx::Transaction<'static, $db>,
                job_id: &str,
                worker: &str,
            ) -> $crate::StoreResult<bool> {
                let held = sqlx::query(
                    "UPDATE sync_jobs SET locked_until = locked_until \
                     WHERE id = $1 AND locked_by = $2 AND status = 'running'",
                )
                .bind(job_id)
                .bind(worker)
                .execute(&mut **tx)
                .await?;
                Ok(held.rows_affected() == 1)
            }

            async fn job_by_id(&self, job_id: &str) -> $crate::StoreResult<Option<$crate::SyncJobRecord>> {
                sqlx::query_as::<_, $crate::sql::SyncJobRow>(&format!(
                    "SELECT {} FROM sync_jobs WHERE id = $1",
                    $crate::sql::SYNC_JOB_COLUMNS
                ))
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }
        }

        #[async_trait::async_trait]
        impl $crate::SyncStore for $store {
            async fn enqueue_sync_job(
                &self,
                job: $crate::NewSyncJob,
            ) -> $crate::StoreResult<($crate::SyncJobRecord, bool)> {
                let integration_id = job.integration_id.clone();
                for _ in 0..3 {
                    let active = sqlx::query_as::<_, $crate::sql::SyncJobRow>(&format!(
                        "SELECT {} FROM sync_jobs WHERE integration_id = $1 AND status IN ('queued', 'running')",
                        $crate::sql::SYNC_JOB_COLUMNS
                    ))
                    .bind(&integration_id)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(row) = active {
                        return Ok((row.try_into()?, false));
                    }
                    // The partial unique index settles a race between two enqueuers.
                    match $crate::Store::insert_sync_job(self, job.clone()).await {
                        Ok(created) => return Ok((created, true)),
                        Err($crate::StoreError::Conflict { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err($crate::StoreError::Other(format!(
                    "integration {integration_id}'s active sync job kept changing"
                )))
            }

            async fn get_sync_job(
                &self,
                integration_id: &str,
                job_id: &str,
            ) -> $crate::StoreResult<Option<$crate::SyncJobRecord>> {
                Ok(self
                    .job_by_id(job_id)
                    .await?
                    .filter(|j| j.integration_id == integration_id))
            }

            async fn list_sync_jobs(
                &self,
                integration_id: &str,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::SyncJobRecord>> {
                sqlx::query_as::<_, $crate::sql::SyncJobRow>(&format!(
                    "SELECT {} FROM sync_jobs WHERE integration_id = $1 ORDER BY seq DESC LIMIT $2",
                    $crate::sql::SYNC_JOB_COLUMNS
                ))
                .bind(integration_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            async fn claim_sync_job(
                &self,
                worker: &str,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                only: Option<&str>,
            ) -> $crate::StoreResult<Option<$crate::SyncJobRecord>> {
                let runnable = "((status = 'queued' AND run_at <= $3) OR (status = 'running' AND locked_until < $3))";
                let only_clause = if only.is_some() { " AND id = $4" } else { "" };
                // The outer condition repeats `runnable`: PostgreSQL re-checks it on a row that
                // changed while this statement waited, so two claimers never both win.
                let sql = format!(
                    "UPDATE sync_jobs SET status = 'running', locked_by = $1, locked_until = $2, \
                     attempts = attempts + 1, started_at = COALESCE(started_at, $3) \
                     WHERE {runnable} AND seq = (SELECT seq FROM sync_jobs WHERE {runnable}{only_clause} \
                     ORDER BY run_at, seq LIMIT 1 {}) RETURNING {}",
                    $claim_lock,
                    $crate::sql::SYNC_JOB_COLUMNS
                );
                let mut q = sqlx::query_as::<_, $crate::sql::SyncJobRow>(&sql)
                    .bind(worker)
                    .bind(lease_until)
                    .bind(now);
                if let Some(id) = only {
                    q = q.bind(id);
                }
                let claimed = q.fetch_optional(&self.pool).await?;
                if claimed.is_some() {
                    self.bump_epoch().await?;
                }
                claimed.map(TryInto::try_into).transpose()
            }

            async fn renew_sync_lease(
                &self,
                job_id: &str,
                worker: &str,
                until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE sync_jobs SET locked_until = $3 WHERE id = $1 AND locked_by = $2 AND status = 'running'",
                )
                .bind(job_id)
                .bind(worker)
                .bind(until)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn get_checkpoint(
                &self,
                integration_id: &str,
                kind: &str,
            ) -> $crate::StoreResult<Option<$crate::Checkpoint>> {
                let row = sqlx::query_as::<_, $crate::sync::CheckpointRow>(
                    "SELECT watermark, run_job_id, run_cursor, run_from_start, run_done FROM sync_checkpoints \
                     WHERE integration_id = $1 AND kind = $2",
                )
                .bind(integration_id)
                .bind(kind)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| $crate::Checkpoint {
                    watermark: r.watermark,
                    run_job_id: r.run_job_id,
                    run_cursor: r.run_cursor,
                    run_from_start: r.run_from_start,
                    run_done: r.run_done,
                }))
            }

            async fn commit_sync_page(&self, page: $crate::PageCommit) -> $crate::StoreResult<bool> {
                let records = $crate::sync::dedup_last(page.records);
                let mut tx = self.pool.begin().await?;
                let progress = sqlx::query(
                    "UPDATE sync_jobs SET pages = pages + 1, counts = $3, current_kind = $4, locked_until = locked_until \
                     WHERE id = $1 AND locked_by = $2 AND status = 'running'",
                )
                .bind(&page.job_id)
                .bind(&page.worker)
                .bind($crate::sync::json_text(&page.counts))
                .bind(&page.kind)
                .execute(&mut *tx)
                .await?;
                if progress.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                $upsert(
                    &mut *tx,
                    $crate::sync::RecordUpsert {
                        integration_id: &page.integration_id,
                        kind: &page.kind,
                        records: &records,
                        job: Some(page.job_id.as_str()),
                        now: page.now,
                    },
                )
                .await?;
                sqlx::query(
                    "INSERT INTO sync_checkpoints (integration_id, kind, run_job_id, run_cursor, run_from_start, run_done, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $7, $6) \
                     ON CONFLICT (integration_id, kind) DO UPDATE SET run_job_id = excluded.run_job_id, \
                     run_cursor = excluded.run_cursor, run_from_start = excluded.run_from_start, run_done = excluded.run_done, \
                     updated_at = excluded.updated_at",
                )
                .bind(&page.integration_id)
                .bind(&page.kind)
                .bind(&page.job_id)
                .bind(&page.next)
                .bind(page.from_start)
                .bind(page.now)
                .bind(false)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.bump_epoch().await?;
                Ok(true)
            }

            async fn finish_sync_kind(&self, finish: $crate::KindFinish) -> $crate::StoreResult<Option<u64>> {
                let mut tx = self.pool.begin().await?;
                if !Self::holds_lease(&mut tx, &finish.job_id, &finish.worker).await? {
                    tx.rollback().await?;
                    return Ok(None);
                }
                let mut deleted = 0;
                if finish.delete_unseen {
                    for unseen in $crate::sync::UNSEEN {
                        deleted += sqlx::query(&format!(
                            "UPDATE synced_records SET deleted_at = $4, seq = $5, updated_at = $4 \
                             WHERE integration_id = $1 AND kind = $2 AND deleted_at IS NULL \
                             AND {unseen} AND updated_at < $6"
                        ))
                        .bind(&finish.integration_id)
                        .bind(&finish.kind)
                        .bind(&finish.job_id)
                        .bind(finish.now)
                        .bind($crate::sync::change_seq(finish.now, 0))
                        .bind(finish.listing_started)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                }
                sqlx::query(
                    "INSERT INTO sync_checkpoints (integration_id, kind, watermark, run_job_id, run_from_start, run_done, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (integration_id, kind) DO UPDATE SET watermark = excluded.watermark, \
                     run_job_id = excluded.run_job_id, run_cursor = NULL, run_from_start = excluded.run_from_start, \
                     run_done = excluded.run_done, updated_at = excluded.updated_at",
                )
                .bind(&finish.integration_id)
                .bind(&finish.kind)
                .bind(&finish.watermark)
                .bind(&finish.job_id)
                .bind(false)
                .bind(true)
                .bind(finish.now)
                .execute(&mut *tx)
                .await?;
                let mut all_deleted = finish.deleted;
                *all_deleted.entry(finish.kind.clone()).or_default() += deleted;
                sqlx::query("UPDATE sync_jobs SET deleted = $2 WHERE id = $1")
                    .bind(&finish.job_id)
                    .bind($crate::sync::json_text(&all_deleted))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.bump_epoch().await?;
                Ok(Some(deleted))
            }

            async fn finish_sync_job(
                &self,
                job_id: &str,
                worker: &str,
                outcome: $crate::JobOutcome,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<bool> {
                use $crate::JobOutcome as O;
                // (status, run_at, finished_at, replace the error?, error, runs given back)
                let (status, run_at, finished_at, set_error, error, give_back) = match &outcome {
                    O::Succeeded => ("succeeded", None, Some(now), true, None, 0),
                    O::Failed { code, message } => {
                        ("failed", None, Some(now), true, Some((code, message)), 0)
                    }
                    O::Retry { at, code, message } => {
                        ("queued", Some(*at), None, true, Some((code, message)), 0)
                    }
                    O::Release => ("queued", Some(now), None, false, None, 1),
                };
                let q = sqlx::query(
                    "UPDATE sync_jobs SET status = $3, run_at = COALESCE($4, run_at), finished_at = $5, \
                     locked_by = NULL, locked_until = NULL, current_kind = NULL, \
                     error_code = CASE WHEN $6 THEN $7 ELSE error_code END, \
                     error_message = CASE WHEN $6 THEN $8 ELSE error_message END, \
                     attempts = attempts - $9 \
                     WHERE id = $1 AND locked_by = $2 AND status = 'running'",
                )
                .bind(job_id)
                .bind(worker)
                .bind(status)
                .bind(run_at)
                .bind(finished_at)
                .bind(set_error)
                .bind(error.map(|(c, _)| c.as_str()))
                .bind(error.map(|(_, m)| m.as_str()))
                .bind(give_back);
                let done = q.execute(&self.pool).await?.rows_affected() == 1;
                if done {
                    self.bump_epoch().await?;
                }
                Ok(done)
            }

            async fn upsert_records(
                &self,
                integration_id: &str,
                kind: &str,
                records: Vec<$crate::NewRecord>,
            ) -> $crate::StoreResult<u64> {
                let records = $crate::sync::dedup_last(records);
                let now = chrono::Utc::now();
                let mut tx = self.pool.begin().await?;
                let written = $upsert(
                    &mut *tx,
                    $crate::sync::RecordUpsert {
                        integration_id,
                        kind,
                        records: &records,
                        job: None,
                        now,
                    },
                )
                .await?;
                tx.commit().await?;
                Ok(written)
            }

            async fn delete_records(
                &self,
                integration_id: &str,
                kind: &str,
                platform_ids: &[String],
            ) -> $crate::StoreResult<u64> {
                let now = chrono::Utc::now();
                let mut n = 0;
                let mut tx = self.pool.begin().await?;
                for id in platform_ids {
                    n += sqlx::query(
                        "UPDATE synced_records SET deleted_at = $4, seq = $5, updated_at = $4 \
                         WHERE integration_id = $1 AND kind = $2 AND platform_id = $3 AND deleted_at IS NULL",
                    )
                    .bind(integration_id)
                    .bind(kind)
                    .bind(id)
                    .bind(now)
                    .bind($crate::sync::change_seq(now, 0))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                Ok(n)
            }

            async fn list_records(
                &self,
                integration_id: &str,
                kind: &str,
                limit: u32,
                after: Option<(i64, String)>,
                include_deleted: bool,
            ) -> $crate::StoreResult<Vec<$crate::StoredRecord>> {
                let live = if include_deleted { "" } else { " AND deleted_at IS NULL" };
                let keyset = if after.is_some() {
                    " AND (seq < $4 OR (seq = $4 AND platform_id < $5))"
                } else {
                    ""
                };
                let sql = format!(
                    "SELECT platform_id, kind, seq, normalized, raw, updated_at, deleted_at FROM synced_records \
                     WHERE integration_id = $1 AND kind = $2{live}{keyset} \
                     ORDER BY seq DESC, platform_id DESC LIMIT $3"
                );
                let mut q = sqlx::query_as::<_, $crate::sync::RecordRow>(&sql)
                    .bind(integration_id)
                    .bind(kind)
                    .bind(i64::from(limit));
                if let Some((seq, id)) = after {
                    q = q.bind(seq).bind(id);
                }
                q.fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn get_records(
                &self,
                integration_id: &str,
                kind: &str,
                platform_ids: &[String],
            ) -> $crate::StoreResult<Vec<$crate::StoredRecord>> {
                let mut out = Vec::new();
                // Chunks keep the bind count far below either backend's limit.
                for chunk in platform_ids.chunks(500) {
                    let marks = (0..chunk.len())
                        .map(|i| format!("${}", i + 3))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "SELECT platform_id, kind, seq, normalized, raw, updated_at, deleted_at FROM synced_records \
                         WHERE integration_id = $1 AND kind = $2 AND deleted_at IS NULL AND platform_id IN ({marks})"
                    );
                    let mut q = sqlx::query_as::<_, $crate::sync::RecordRow>(&sql)
                        .bind(integration_id)
                        .bind(kind);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    for row in q.fetch_all(&self.pool).await? {
                        out.push(row.try_into()?);
                    }
                }
                Ok(out)
            }

            async fn count_records(&self, integration_id: &str, kind: &str) -> $crate::StoreResult<u64> {
                let n = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM synced_records WHERE integration_id = $1 AND kind = $2 AND deleted_at IS NULL",
                )
                .bind(integration_id)
                .bind(kind)
                .fetch_one(&self.pool)
                .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn get_integration_by_id(
                &self,
                integration_id: &str,
            ) -> $crate::StoreResult<Option<$crate::IntegrationRecord>> {
                sqlx::query_as::<_, $crate::sql::IntegrationRow>(&format!(
                    "SELECT {} FROM integrations WHERE id = $1",
                    $crate::sql::INTEGRATION_COLUMNS
                ))
                .bind(integration_id)
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }

            async fn due_integrations(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::DueIntegration>> {
                sqlx::query_as::<_, $crate::sync::DueRow>(
                    "SELECT id, publisher_id, platform, config, next_sync_at FROM integrations \
                     WHERE status = 'connected' AND (next_sync_at IS NULL OR next_sync_at <= $1) \
                     ORDER BY next_sync_at LIMIT $2",
                )
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            async fn set_next_sync(
                &self,
                integration_id: &str,
                expected: Option<chrono::DateTime<chrono::Utc>>,
                next: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE integrations SET next_sync_at = $3 WHERE id = $1 AND next_sync_at IS NOT DISTINCT FROM $2",
                )
                .bind(integration_id)
                .bind(expected)
                .bind(next)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}
pub(crate) use impl_sync_store;
