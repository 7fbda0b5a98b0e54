//! Idempotency keys (migration 0008): the first answer to a side-effecting POST, per
//! (principal, route, key), for 24 hours.
//!
//! A key is *claimed* by the request that runs; a repeat finds it running (no status yet) or
//! finished (its status and sealed answer). A claim left running past `stale_before` (its
//! process died) or past its expiry is taken over, so a crash never blocks a key for a day.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreResult;

/// Which key: the principal's, on one route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// `admin`, or the publisher API key's id.
    pub principal: String,
    /// Method and path.
    pub route: String,
    pub key: String,
}

/// A key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub body_hash: String,
    /// `None` while the first request runs.
    pub status: Option<u16>,
    /// The master key that sealed `sealed_response`.
    pub key_id: Option<u32>,
    pub sealed_response: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for IdempotencyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyRecord")
            .field("status", &self.status)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// What a claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: run the request, then complete or release it.
    Claimed,
    /// Another request has (or had) it.
    Existing(IdempotencyRecord),
}

/// Storage of idempotency keys.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request with this body digest, unless a live claim exists (then
    /// answers it). Claims that expired before `now`, and running ones made before
    /// `stale_before`, are taken over.
    async fn claim_idempotency_key(
        &self,
        key: &IdempotencyKey,
        body_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> StoreResult<Claim>;
    /// Stores the answer of a claimed key; false when the claim was lost (taken over).
    async fn complete_idempotency_key(
        &self,
        key: &IdempotencyKey,
        status: u16,
        key_id: u32,
        sealed_response: &[u8],
    ) -> StoreResult<bool>;
    /// Gives a claimed key up (its answer is not kept: a retry runs again).
    async fn release_idempotency_key(&self, key: &IdempotencyKey) -> StoreResult<()>;
    /// Deletes keys that expired before `now`; answers how many.
    async fn delete_expired_idempotency_keys(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

#[derive(sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    body_hash: String,
    status: Option<i64>,
    key_id: Option<i64>,
    sealed_response: Option<Vec<u8>>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl TryFrom<IdempotencyRow> for IdempotencyRecord {
    type Error = crate::StoreError;

    fn try_from(r: IdempotencyRow) -> StoreResult<Self> {
        let corrupt = |what: &str| crate::StoreError::Corrupt(format!("idempotency {what}"));
        Ok(IdempotencyRecord {
            body_hash: r.body_hash,
            status: r
                .status
                .map(|s| u16::try_from(s).map_err(|_| corrupt("status")))
                .transpose()?,
            key_id: r
                .key_id
                .map(|k| u32::try_from(k).map_err(|_| corrupt("key_id")))
                .transpose()?,
            sealed_response: r.sealed_response,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

/// Implements [`IdempotencyStore`] for a backend whose pool is `self.pool` (the SQL is the same
/// in both dialects).
macro_rules! impl_idempotency_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::idempotency::IdempotencyStore for $store {
            async fn claim_idempotency_key(
                &self,
                key: &$crate::idempotency::IdempotencyKey,
                body_hash: &str,
                now: chrono::DateTime<chrono::Utc>,
                expires_at: chrono::DateTime<chrono::Utc>,
                stale_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<$crate::idempotency::Claim> {
                // A claim that expired, or whose request died running, is taken over.
                sqlx::query(
                    "DELETE FROM idempotency_keys WHERE principal = $1 AND route = $2 \
                     AND idem_key = $3 AND (expires_at <= $4 OR (status IS NULL AND created_at <= $5))",
                )
                .bind(&key.principal)
                .bind(&key.route)
                .bind(&key.key)
                .bind(now)
                .bind(stale_before)
                .execute(&self.pool)
                .await?;
                // Two attempts: a row seen by the insert may be released before the select.
                for _ in 0..2 {
                    let inserted = sqlx::query(
                        "INSERT INTO idempotency_keys (principal, route, idem_key, body_hash, \
                         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (principal, route, idem_key) DO NOTHING",
                    )
                    .bind(&key.principal)
                    .bind(&key.route)
                    .bind(&key.key)
                    .bind(body_hash)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                    if inserted.rows_affected() == 1 {
                        return Ok($crate::idempotency::Claim::Claimed);
                    }
                    let row = sqlx::query_as::<_, $crate::idempotency::IdempotencyRow>(
                        "SELECT body_hash, status, key_id, sealed_response, created_at, expires_at \
                         FROM idempotency_keys WHERE principal = $1 AND route = $2 AND idem_key = $3",
                    )
                    .bind(&key.principal)
                    .bind(&key.route)
                    .bind(&key.key)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(row) = row {
                        return Ok($crate::idempotency::Claim::Existing(row.try_into()?));
                    }
                }
                Err($crate::StoreError::Corrupt(
                    "idempotency key neither inserted nor found".into(),
                ))
            }

            async fn complete_idempotency_key(
                &self,
                key: &$crate::idempotency::IdempotencyKey,
                status: u16,
                key_id: u32,
                sealed_response: &[u8],
            ) -> $crate::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE idempotency_keys SET status = $4, key_id = $5, sealed_response = $6 \
                     WHERE principal = $1 AND route = $2 AND idem_key = $3 AND status IS NULL",
                )
                .bind(&key.principal)
                .bind(&key.route)
                .bind(&key.key)
                .bind(i64::from(status))
                .bind(i64::from(key_id))
                .bind(sealed_response)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_idempotency_key(
                &self,
                key: &$crate::idempotency::IdempotencyKey,
            ) -> $crate::StoreResult<()> {
                sqlx::query(
                    "DELETE FROM idempotency_keys WHERE principal = $1 AND route = $2 \
                     AND idem_key = $3 AND status IS NULL",
                )
                .bind(&key.principal)
                .bind(&key.route)
                .bind(&key.key)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_expired_idempotency_keys(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_idempotency_store;
