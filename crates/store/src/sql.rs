//! SQL shared by both backends.
//!
//! SQLite and PostgreSQL agree on everything these queries use (`$n` placeholders, `ON CONFLICT`,
//! `RETURNING`), and sqlx decodes the same Rust types from each dialect's column types, so the
//! [`Store`](crate::Store) methods are written once in [`impl_common_store!`] and instantiated for
//! each pool type. Dialect-specific work (locking, job claiming) lives in each backend's module.

use chrono::{DateTime, Utc};
use domain::{Platform, Region, shapes::IntegrationStatus, shapes::SyncStatus};

use crate::{ApiKeyRecord, IntegrationRecord, StoreError, StoreResult, SyncJobRecord};

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    publisher_id: String,
    key_hash: String,
    prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKeyRecord {
    fn from(r: ApiKeyRow) -> Self {
        ApiKeyRecord {
            id: r.id,
            publisher_id: r.publisher_id,
            key_hash: r.key_hash,
            prefix: r.prefix,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

pub(crate) const API_KEY_COLUMNS: &str =
    "id, publisher_id, key_hash, prefix, created_at, revoked_at";

#[derive(sqlx::FromRow)]
pub(crate) struct IntegrationRow {
    pub(crate) id: String,
    publisher_id: String,
    platform: String,
    status: String,
    status_reason: Option<String>,
    region: Option<String>,
    config: String,
    webhook_id: String,
    credentials_version: i64,
    connected_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(crate) const INTEGRATION_COLUMNS: &str = "id, publisher_id, platform, status, status_reason, region, config, \
     webhook_id, credentials_version, connected_at, updated_at";

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

impl TryFrom<IntegrationRow> for IntegrationRecord {
    type Error = StoreError;

    fn try_from(r: IntegrationRow) -> StoreResult<Self> {
        Ok(IntegrationRecord {
            platform: Platform::parse(&r.platform)
                .ok_or_else(|| corrupt("platform", &r.platform))?,
            status: IntegrationStatus::parse(&r.status)
                .ok_or_else(|| corrupt("status", &r.status))?,
            region: match r.region {
                None => None,
                Some(s) => Some(Region::parse(&s).ok_or_else(|| corrupt("region", &s))?),
            },
            config: serde_json::from_str(&r.config).map_err(|_| corrupt("config", &r.config))?,
            id: r.id,
            publisher_id: r.publisher_id,
            status_reason: r.status_reason,
            webhook_id: r.webhook_id,
            credentials_version: r.credentials_version,
            connected_at: r.connected_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CredentialRowDb {
    pub integration_id: String,
    pub field: String,
    pub key_id: i64,
    pub ciphertext: Vec<u8>,
}

impl CredentialRowDb {
    pub fn into_row(self) -> StoreResult<crate::CredentialRow> {
        Ok(crate::CredentialRow {
            integration_id: self.integration_id,
            sealed: crate::SealedField {
                field: self.field,
                key_id: u32::try_from(self.key_id)
                    .map_err(|_| corrupt("key_id", &self.key_id.to_string()))?,
                ciphertext: self.ciphertext,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SyncJobRow {
    id: String,
    integration_id: String,
    platform: String,
    status: String,
    kinds: String,
    full_sync: bool,
    counts: String,
    deleted: String,
    attempts: i32,
    pages: i64,
    current_kind: Option<String>,
    run_at: DateTime<Utc>,
    locked_by: Option<String>,
    locked_until: Option<DateTime<Utc>>,
    error_code: Option<String>,
    error_message: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

pub(crate) const SYNC_JOB_COLUMNS: &str = "id, integration_id, platform, status, kinds, full_sync, counts, deleted, \
     attempts, pages, current_kind, run_at, locked_by, locked_until, error_code, error_message, created_at, \
     started_at, finished_at";

impl TryFrom<SyncJobRow> for SyncJobRecord {
    type Error = StoreError;

    fn try_from(r: SyncJobRow) -> StoreResult<Self> {
        Ok(SyncJobRecord {
            platform: Platform::parse(&r.platform)
                .ok_or_else(|| corrupt("platform", &r.platform))?,
            status: SyncStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?,
            kinds: serde_json::from_str(&r.kinds).map_err(|_| corrupt("kinds", &r.kinds))?,
            counts: serde_json::from_str(&r.counts).map_err(|_| corrupt("counts", &r.counts))?,
            deleted: serde_json::from_str(&r.deleted)
                .map_err(|_| corrupt("deleted", &r.deleted))?,
            id: r.id,
            integration_id: r.integration_id,
            full: r.full_sync,
            attempts: r.attempts,
            pages: r.pages,
            current_kind: r.current_kind,
            run_at: r.run_at,
            locked_by: r.locked_by,
            locked_until: r.locked_until,
            error_code: r.error_code,
            error_message: r.error_message,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    id: String,
    integration_id: String,
    publisher_id: String,
    platform: String,
    #[sqlx(rename = "type")]
    kind: String,
    platform_event_id: String,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    email: Option<String>,
    user_id: Option<String>,
    campaign_id: Option<String>,
    data: String,
}

pub(crate) const EVENT_COLUMNS: &str = "seq, id, integration_id, publisher_id, platform, type, platform_event_id, \
     occurred_at, received_at, email, user_id, campaign_id, data";

impl TryFrom<EventRow> for crate::EventRecord {
    type Error = StoreError;

    fn try_from(r: EventRow) -> StoreResult<Self> {
        Ok(crate::EventRecord {
            platform: Platform::parse(&r.platform)
                .ok_or_else(|| corrupt("platform", &r.platform))?,
            data: serde_json::from_str(&r.data).map_err(|_| corrupt("event data", &r.data))?,
            seq: r.seq,
            id: r.id,
            integration_id: r.integration_id,
            publisher_id: r.publisher_id,
            kind: r.kind,
            platform_event_id: r.platform_event_id,
            occurred_at: r.occurred_at,
            received_at: r.received_at,
            email: r.email,
            user_id: r.user_id,
            campaign_id: r.campaign_id,
        })
    }
}

/// Implements the dialect-neutral [`Store`](crate::Store) methods for a store type with a
/// `pool: sqlx::Pool<$db>` field and a `dialect_*` set of inherent methods.
macro_rules! impl_common_store {
    ($store:ty, $db:ty, $backend:literal) => {
        /// [`crate::CredentialLock`] as an open transaction holding the lock.
        pub(crate) struct TxCredentialLock {
            tx: sqlx::Transaction<'static, $db>,
            store: $store,
            credentials: $crate::Credentials,
        }

        #[async_trait::async_trait]
        impl $crate::CredentialLock for TxCredentialLock {
            fn credentials(&self) -> &$crate::Credentials {
                &self.credentials
            }

            async fn commit(self: Box<Self>, fields: Vec<$crate::SealedField>) -> $crate::StoreResult<i64> {
                let this = *self;
                let mut tx = this.tx;
                let id = &this.credentials.integration_id;
                let version = this.credentials.version;
                sqlx::query(
                    "UPDATE integrations SET credentials_version = credentials_version + 1, updated_at = $3 \
                     WHERE id = $1 AND credentials_version = $2",
                )
                .bind(id)
                .bind(version)
                .bind(chrono::Utc::now())
                .execute(&mut *tx)
                .await?;
                for f in &fields {
                    sqlx::query(
                        "INSERT INTO credentials (integration_id, field, key_id, ciphertext) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (integration_id, field) DO UPDATE SET key_id = excluded.key_id, ciphertext = excluded.ciphertext",
                    )
                    .bind(id)
                    .bind(&f.field)
                    .bind(i64::from(f.key_id))
                    .bind(&f.ciphertext)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                this.store.bump_epoch().await?;
                Ok(version + 1)
            }

            async fn release(self: Box<Self>) -> $crate::StoreResult<()> {
                self.tx.rollback().await?;
                Ok(())
            }
        }

        impl $store {
            /// Records a committed write: the shared counter for other processes, then the local
            /// one. Called after the write, so a cache filled before it is always invalidated.
            async fn bump_epoch(&self) -> $crate::StoreResult<()> {
                sqlx::query("UPDATE change_epoch SET value = value + 1 WHERE id = 1")
                    .execute(&self.pool)
                    .await?;
                self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> $crate::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn local_epoch(&self) -> u64 {
                self.epoch.load(std::sync::atomic::Ordering::Acquire)
            }

            async fn shared_epoch(&self) -> $crate::StoreResult<i64> {
                Ok(sqlx::query_scalar::<_, i64>("SELECT value FROM change_epoch WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn get_setting(&self, key: &str) -> $crate::StoreResult<Option<String>> {
                Ok(sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn put_setting_if_absent(&self, key: &str, value: &str) -> $crate::StoreResult<bool> {
                let done = sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn settings_with_prefix(&self, prefix: &str) -> $crate::StoreResult<Vec<(String, String)>> {
                // substr, not LIKE: the prefix is literal (`_` and `%` are ordinary characters).
                Ok(sqlx::query_as::<_, (String, String)>(
                    "SELECT key, value FROM settings WHERE substr(key, 1, $1) = $2 ORDER BY key",
                )
                .bind(i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX))
                .bind(prefix)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn delete_settings(&self, keys: &[String]) -> $crate::StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let mut deleted = 0;
                for key in keys {
                    deleted += sqlx::query("DELETE FROM settings WHERE key = $1")
                        .bind(key)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(deleted)
            }

            async fn create_api_key(&self, key: $crate::NewApiKey) -> $crate::StoreResult<$crate::ApiKeyRecord> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("INSERT INTO publishers (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                    .bind(key.publisher_id.as_str())
                    .bind(key.created_at)
                    .execute(&mut *tx)
                    .await?;
                let row = sqlx::query_as::<_, $crate::sql::ApiKeyRow>(&format!(
                    "INSERT INTO api_keys (id, publisher_id, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5) \
                     RETURNING {}",
                    $crate::sql::API_KEY_COLUMNS
                ))
                .bind(&key.id)
                .bind(key.publisher_id.as_str())
                .bind(&key.key_hash)
                .bind(&key.prefix)
                .bind(key.created_at)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                self.bump_epoch().await?;
                Ok(row.into())
            }

            async fn find_api_key_by_hash(&self, key_hash: &str) -> $crate::StoreResult<Option<$crate::ApiKeyRecord>> {
                let row = sqlx::query_as::<_, $crate::sql::ApiKeyRow>(&format!(
                    "SELECT {} FROM api_keys WHERE key_hash = $1",
                    $crate::sql::API_KEY_COLUMNS
                ))
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn list_api_keys(&self, publisher: &domain::PublisherId) -> $crate::StoreResult<Vec<$crate::ApiKeyRecord>> {
                let rows = sqlx::query_as::<_, $crate::sql::ApiKeyRow>(&format!(
                    "SELECT {} FROM api_keys WHERE publisher_id = $1 ORDER BY created_at, id",
                    $crate::sql::API_KEY_COLUMNS
                ))
                .bind(publisher.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn revoke_api_key(&self, key_id: &str) -> $crate::StoreResult<Option<$crate::ApiKeyRecord>> {
                let row = sqlx::query_as::<_, $crate::sql::ApiKeyRow>(&format!(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING {}",
                    $crate::sql::API_KEY_COLUMNS
                ))
                .bind(key_id)
                .bind(chrono::Utc::now())
                .fetch_optional(&self.pool)
                .await?;
                self.bump_epoch().await?;
                Ok(row.map(Into::into))
            }

            async fn save_integration(&self, new: $crate::NewIntegration) -> $crate::StoreResult<$crate::SavedIntegration> {
                let mut tx = self.pool.begin().await?;
                // A write first, so SQLite takes its write lock at once rather than upgrading later.
                sqlx::query("INSERT INTO publishers (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                    .bind(new.publisher_id.as_str())
                    .bind(new.now)
                    .execute(&mut *tx)
                    .await?;
                let existing = sqlx::query_scalar::<_, String>(
                    "SELECT id FROM integrations WHERE publisher_id = $1 AND platform = $2",
                )
                .bind(new.publisher_id.as_str())
                .bind(new.platform.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let config = new.config.to_string();
                let region = new.region.map(|r| r.as_str());
                let replaced = match existing {
                    None => {
                        sqlx::query(
                            "INSERT INTO integrations (id, publisher_id, platform, status, region, config, webhook_id, \
                             credentials_version, connected_at, updated_at) \
                             VALUES ($1, $2, $3, 'connected', $4, $5, $6, 1, $7, $7)",
                        )
                        .bind(&new.id)
                        .bind(new.publisher_id.as_str())
                        .bind(new.platform.as_str())
                        .bind(region)
                        .bind(&config)
                        .bind(&new.webhook_id)
                        .bind(new.now)
                        .execute(&mut *tx)
                        .await?;
                        false
                    }
                    Some(id) if id == new.id => {
                        sqlx::query(
                            "UPDATE integrations SET status = 'connected', status_reason = NULL, region = $2, config = $3, \
                             credentials_version = credentials_version + 1, connected_at = $4, updated_at = $4 WHERE id = $1",
                        )
                        .bind(&new.id)
                        .bind(region)
                        .bind(&config)
                        .bind(new.now)
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query("DELETE FROM credentials WHERE integration_id = $1")
                            .bind(&new.id)
                            .execute(&mut *tx)
                            .await?;
                        true
                    }
                    Some(_) => {
                        return Err($crate::StoreError::Conflict {
                            constraint: "integrations_publisher_platform".into(),
                        });
                    }
                };
                for f in &new.credentials {
                    sqlx::query("INSERT INTO credentials (integration_id, field, key_id, ciphertext) VALUES ($1, $2, $3, $4)")
                        .bind(&new.id)
                        .bind(&f.field)
                        .bind(i64::from(f.key_id))
                        .bind(&f.ciphertext)
                        .execute(&mut *tx)
                        .await?;
                }
                let row = sqlx::query_as::<_, $crate::sql::IntegrationRow>(&format!(
                    "SELECT {} FROM integrations WHERE id = $1",
                    $crate::sql::INTEGRATION_COLUMNS
                ))
                .bind(&new.id)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                self.bump_epoch().await?;
                Ok($crate::SavedIntegration {
                    integration: row.try_into()?,
                    replaced,
                })
            }

            async fn get_integration(
                &self,
                publisher: &domain::PublisherId,
                platform: domain::Platform,
            ) -> $crate::StoreResult<Option<$crate::IntegrationRecord>> {
                sqlx::query_as::<_, $crate::sql::IntegrationRow>(&format!(
                    "SELECT {} FROM integrations WHERE publisher_id = $1 AND platform = $2",
                    $crate::sql::INTEGRATION_COLUMNS
                ))
                .bind(publisher.as_str())
                .bind(platform.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }

            async fn get_integration_by_webhook(
                &self,
                platform: domain::Platform,
                webhook_id: &str,
            ) -> $crate::StoreResult<Option<$crate::IntegrationRecord>> {
                sqlx::query_as::<_, $crate::sql::IntegrationRow>(&format!(
                    "SELECT {} FROM integrations WHERE webhook_id = $1 AND platform = $2",
                    $crate::sql::INTEGRATION_COLUMNS
                ))
                .bind(webhook_id)
                .bind(platform.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }

            async fn list_integrations(
                &self,
                publisher: &domain::PublisherId,
            ) -> $crate::StoreResult<Vec<$crate::IntegrationRecord>> {
                sqlx::query_as::<_, $crate::sql::IntegrationRow>(&format!(
                    "SELECT {} FROM integrations WHERE publisher_id = $1 ORDER BY platform",
                    $crate::sql::INTEGRATION_COLUMNS
                ))
                .bind(publisher.as_str())
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            async fn list_platform_integrations(
                &self,
                platform: domain::Platform,
            ) -> $crate::StoreResult<Vec<$crate::IntegrationRecord>> {
                sqlx::query_as::<_, $crate::sql::IntegrationRow>(&format!(
                    "SELECT {} FROM integrations WHERE platform = $1 ORDER BY connected_at, id",
                    $crate::sql::INTEGRATION_COLUMNS
                ))
                .bind(platform.as_str())
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            async fn delete_integration(
                &self,
                publisher: &domain::PublisherId,
                platform: domain::Platform,
            ) -> $crate::StoreResult<Option<$crate::IntegrationRecord>> {
                let mut tx = self.pool.begin().await?;
                let row = sqlx::query_as::<_, $crate::sql::IntegrationRow>(&format!(
                    "DELETE FROM integrations WHERE publisher_id = $1 AND platform = $2 RETURNING {}",
                    $crate::sql::INTEGRATION_COLUMNS
                ))
                .bind(publisher.as_str())
                .bind(platform.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(r) = &row {
                    // The foreign keys cascade too; deleting explicitly keeps this true even on a
                    // SQLite connection opened without foreign-key enforcement.
                    for table in ["credentials", "sync_jobs", "sync_checkpoints", "synced_records", "received_events"] {
                        sqlx::query(&format!("DELETE FROM {table} WHERE integration_id = $1"))
                            .bind(&r.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                self.bump_epoch().await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn set_integration_status(
                &self,
                integration_id: &str,
                status: domain::shapes::IntegrationStatus,
                reason: Option<&str>,
            ) -> $crate::StoreResult<()> {
                sqlx::query("UPDATE integrations SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1")
                    .bind(integration_id)
                    .bind(status.as_str())
                    .bind(reason)
                    .bind(chrono::Utc::now())
                    .execute(&self.pool)
                    .await?;
                self.bump_epoch().await?;
                Ok(())
            }

            async fn get_credentials(&self, integration_id: &str) -> $crate::StoreResult<Option<$crate::Credentials>> {
                let mut tx = self.pool.begin().await?;
                let version = sqlx::query_scalar::<_, i64>("SELECT credentials_version FROM integrations WHERE id = $1")
                    .bind(integration_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(version) = version else {
                    return Ok(None);
                };
                let rows = sqlx::query_as::<_, $crate::sql::CredentialRowDb>(
                    "SELECT integration_id, field, key_id, ciphertext FROM credentials WHERE integration_id = $1 ORDER BY field",
                )
                .bind(integration_id)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                let fields = rows
                    .into_iter()
                    .map(|r| r.into_row().map(|r| r.sealed))
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok(Some($crate::Credentials {
                    integration_id: integration_id.to_owned(),
                    version,
                    fields,
                }))
            }

            async fn swap_credentials(
                &self,
                integration_id: &str,
                expected_version: i64,
                fields: Vec<$crate::SealedField>,
            ) -> $crate::StoreResult<Option<i64>> {
                let mut tx = self.pool.begin().await?;
                let swapped = sqlx::query(
                    "UPDATE integrations SET credentials_version = credentials_version + 1, updated_at = $3 \
                     WHERE id = $1 AND credentials_version = $2",
                )
                .bind(integration_id)
                .bind(expected_version)
                .bind(chrono::Utc::now())
                .execute(&mut *tx)
                .await?;
                if swapped.rows_affected() != 1 {
                    return Ok(None);
                }
                for f in &fields {
                    sqlx::query(
                        "INSERT INTO credentials (integration_id, field, key_id, ciphertext) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (integration_id, field) DO UPDATE SET key_id = excluded.key_id, ciphertext = excluded.ciphertext",
                    )
                    .bind(integration_id)
                    .bind(&f.field)
                    .bind(i64::from(f.key_id))
                    .bind(&f.ciphertext)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                self.bump_epoch().await?;
                Ok(Some(expected_version + 1))
            }

            async fn lock_credentials(
                &self,
                integration_id: &str,
            ) -> $crate::StoreResult<Option<Box<dyn $crate::CredentialLock>>> {
                // SQLite: BEGIN IMMEDIATE takes the database's write lock now (waiting out the
                // busy timeout), so two processes cannot both read the old refresh token.
                // PostgreSQL: a row lock on the integration, held to commit.
                let (begin, suffix) = if $backend == "sqlite" {
                    ("BEGIN IMMEDIATE", "")
                } else {
                    ("BEGIN", " FOR UPDATE")
                };
                let mut tx = self.pool.begin_with(begin).await?;
                let version = sqlx::query_scalar::<_, i64>(&format!(
                    "SELECT credentials_version FROM integrations WHERE id = $1{suffix}"
                ))
                .bind(integration_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(version) = version else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let rows = sqlx::query_as::<_, $crate::sql::CredentialRowDb>(
                    "SELECT integration_id, field, key_id, ciphertext FROM credentials WHERE integration_id = $1 ORDER BY field",
                )
                .bind(integration_id)
                .fetch_all(&mut *tx)
                .await?;
                let fields = rows
                    .into_iter()
                    .map(|r| r.into_row().map(|r| r.sealed))
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok(Some(Box::new(TxCredentialLock {
                    tx,
                    store: self.clone(),
                    credentials: $crate::Credentials {
                        integration_id: integration_id.to_owned(),
                        version,
                        fields,
                    },
                })))
            }

            async fn credentials_not_under(
                &self,
                active_key_id: u32,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::CredentialRow>> {
                sqlx::query_as::<_, $crate::sql::CredentialRowDb>(
                    "SELECT integration_id, field, key_id, ciphertext FROM credentials WHERE key_id <> $1 \
                     ORDER BY integration_id, field LIMIT $2",
                )
                .bind(i64::from(active_key_id))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map($crate::sql::CredentialRowDb::into_row)
                .collect()
            }

            async fn reseal_credential(
                &self,
                row: &$crate::CredentialRow,
                new: &$crate::SealedField,
            ) -> $crate::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE credentials SET key_id = $3, ciphertext = $4 \
                     WHERE integration_id = $1 AND field = $2 AND ciphertext = $5",
                )
                .bind(&row.integration_id)
                .bind(&row.sealed.field)
                .bind(i64::from(new.key_id))
                .bind(&new.ciphertext)
                .bind(&row.sealed.ciphertext)
                .execute(&self.pool)
                .await?;
                self.bump_epoch().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn credential_key_counts(&self) -> $crate::StoreResult<Vec<(u32, u64)>> {
                let rows = sqlx::query_as::<_, (i64, i64)>(
                    "SELECT key_id, COUNT(*) FROM credentials GROUP BY key_id ORDER BY key_id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(k, n)| {
                        Ok((
                            u32::try_from(k).map_err(|_| $crate::StoreError::Corrupt(format!("key_id {k}")))?,
                            u64::try_from(n).unwrap_or(0),
                        ))
                    })
                    .collect()
            }

            async fn record_event(
                &self,
                event: $crate::NewEvent,
            ) -> $crate::StoreResult<($crate::EventRecord, bool)> {
                // The event and its destination messages commit together: a crash cannot store
                // one without the other (a redelivery finds the event and queues nothing).
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query_as::<_, $crate::sql::EventRow>(&format!(
                    "INSERT INTO received_events (id, integration_id, publisher_id, platform, type, platform_event_id, \
                     occurred_at, received_at, email, user_id, campaign_id, data) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (integration_id, platform_event_id) DO NOTHING RETURNING {}",
                    $crate::sql::EVENT_COLUMNS
                ))
                .bind(&event.id)
                .bind(&event.integration_id)
                .bind(&event.publisher_id)
                .bind(event.platform.as_str())
                .bind(&event.kind)
                .bind(&event.platform_event_id)
                .bind(event.occurred_at)
                .bind(event.received_at)
                .bind(&event.email)
                .bind(&event.user_id)
                .bind(&event.campaign_id)
                .bind(event.data.to_string())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = inserted {
                    Self::queue_messages(
                        &mut tx,
                        &[$crate::destinations::OutboundEvent::received(&event)],
                        event.received_at,
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok((row.try_into()?, true));
                }
                drop(tx);
                let row = sqlx::query_as::<_, $crate::sql::EventRow>(&format!(
                    "SELECT {} FROM received_events WHERE integration_id = $1 AND platform_event_id = $2",
                    $crate::sql::EVENT_COLUMNS
                ))
                .bind(&event.integration_id)
                .bind(&event.platform_event_id)
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    Some(row) => Ok((row.try_into()?, false)),
                    // The conflict was on our own id, not the platform's: a caller bug.
                    None => Err($crate::StoreError::Conflict { constraint: "received_events_id".into() }),
                }
            }

            async fn record_events(
                &self,
                events: Vec<$crate::NewEvent>,
            ) -> $crate::StoreResult<u64> {
                if events.is_empty() {
                    return Ok(0);
                }
                let mut inserted = 0u64;
                let mut tx = self.pool.begin().await?;
                // 500 rows × 12 binds a statement: under either backend's bind limit.
                for chunk in events.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO received_events (id, integration_id, publisher_id, platform, type, \
                         platform_event_id, occurred_at, received_at, email, user_id, campaign_id, data) ",
                    );
                    qb.push_values(chunk, |mut b, e| {
                        b.push_bind(&e.id)
                            .push_bind(&e.integration_id)
                            .push_bind(&e.publisher_id)
                            .push_bind(e.platform.as_str())
                            .push_bind(&e.kind)
                            .push_bind(&e.platform_event_id)
                            .push_bind(e.occurred_at)
                            .push_bind(e.received_at)
                            .push_bind(&e.email)
                            .push_bind(&e.user_id)
                            .push_bind(&e.campaign_id)
                            .push_bind(e.data.to_string());
                    });
                    qb.push(" ON CONFLICT (integration_id, platform_event_id) DO NOTHING RETURNING id");
                    let new_ids: std::collections::HashSet<String> = qb
                        .build_query_scalar::<String>()
                        .fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .collect();
                    inserted += new_ids.len() as u64;
                    // Only the new ones: a redelivered event was published when first stored.
                    let outbound: Vec<_> = chunk
                        .iter()
                        .filter(|e| new_ids.contains(&e.id))
                        .map($crate::destinations::OutboundEvent::received)
                        .collect();
                    let now = chunk.first().map_or_else(chrono::Utc::now, |e| e.received_at);
                    Self::queue_messages(&mut tx, &outbound, now).await?;
                }
                tx.commit().await?;
                Ok(inserted)
            }

            async fn list_events(
                &self,
                publisher: &domain::PublisherId,
                filter: &$crate::EventFilter,
                limit: u32,
                before: Option<$crate::EventCursor>,
            ) -> $crate::StoreResult<$crate::EventPage> {
                let rows = sqlx::query_as::<_, $crate::sql::EventRow>(&format!(
                    "SELECT {} FROM received_events WHERE publisher_id = $1 \
                     AND ($2 IS NULL OR platform = $2) AND ($3 IS NULL OR type = $3) AND ($4 IS NULL OR seq < $4) \
                     ORDER BY seq DESC LIMIT $5",
                    $crate::sql::EVENT_COLUMNS
                ))
                .bind(publisher.as_str())
                .bind(filter.platform.map(|p| p.as_str()))
                .bind(filter.kind.as_deref())
                .bind(before.map(|c| c.0))
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let more = rows.len() > limit as usize;
                let events = rows
                    .into_iter()
                    .take(limit as usize)
                    .map(TryInto::try_into)
                    .collect::<$crate::StoreResult<Vec<$crate::EventRecord>>>()?;
                let next = if more {
                    events.last().map(|e| $crate::EventCursor(e.seq))
                } else {
                    None
                };
                Ok($crate::EventPage { events, next })
            }

            async fn campaign_events(
                &self,
                integration_id: &str,
                campaign_id: &str,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::EventRecord>> {
                sqlx::query_as::<_, $crate::sql::EventRow>(&format!(
                    "SELECT {} FROM received_events WHERE integration_id = $1 AND campaign_id = $2 \
                     AND occurred_at >= $3 AND occurred_at < $4 ORDER BY occurred_at, seq LIMIT $5",
                    $crate::sql::EVENT_COLUMNS
                ))
                .bind(integration_id)
                .bind(campaign_id)
                .bind(from)
                .bind(to)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            async fn set_integration_config(
                &self,
                integration_id: &str,
                config: serde_json::Value,
            ) -> $crate::StoreResult<()> {
                sqlx::query("UPDATE integrations SET config = $2, updated_at = $3 WHERE id = $1")
                    .bind(integration_id)
                    .bind(config.to_string())
                    .bind(chrono::Utc::now())
                    .execute(&self.pool)
                    .await?;
                self.bump_epoch().await?;
                Ok(())
            }

            async fn latest_sync_job(&self, integration_id: &str) -> $crate::StoreResult<Option<$crate::SyncJobRecord>> {
                sqlx::query_as::<_, $crate::sql::SyncJobRow>(&format!(
                    "SELECT {} FROM sync_jobs WHERE integration_id = $1 ORDER BY seq DESC LIMIT 1",
                    $crate::sql::SYNC_JOB_COLUMNS
                ))
                .bind(integration_id)
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }

            async fn insert_sync_job(&self, job: $crate::NewSyncJob) -> $crate::StoreResult<$crate::SyncJobRecord> {
                let kinds = serde_json::to_string(&job.kinds).unwrap_or_else(|_| "[]".into());
                let row = sqlx::query_as::<_, $crate::sql::SyncJobRow>(&format!(
                    "INSERT INTO sync_jobs (id, integration_id, platform, status, kinds, full_sync, run_at, created_at) \
                     VALUES ($1, $2, $3, 'queued', $4, $5, $6, $6) RETURNING {}",
                    $crate::sql::SYNC_JOB_COLUMNS
                ))
                .bind(&job.id)
                .bind(&job.integration_id)
                .bind(job.platform.as_str())
                .bind(kinds)
                .bind(job.full)
                .bind(job.now)
                .fetch_one(&self.pool)
                .await?;
                self.bump_epoch().await?;
                row.try_into()
            }
        }
    };
}

pub(crate) use impl_common_store;
