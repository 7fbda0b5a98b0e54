//! Dashboard sign-in sessions (migration 0005).
//!
//! Kept apart from the rest of [`Store`](crate::Store) (a supertrait, [`SessionStore`]) so the
//! dashboard's storage reads as one piece. The store never sees a session id, only its digest,
//! and never a token in clear, only the vault's envelope.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreResult;

/// A session as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the session id the browser holds, hex.
    pub id_hash: String,
    /// The publisher the dashboard shows (an admin session may not have picked one yet).
    pub publisher_id: Option<String>,
    pub is_admin: bool,
    pub csrf_token: String,
    /// The master key that sealed `sealed_token`.
    pub token_key_id: u32,
    /// The API token the session signed in with, sealed by the vault.
    pub sealed_token: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("publisher_id", &self.publisher_id)
            .field("is_admin", &self.is_admin)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Storage of dashboard sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create_session(&self, session: SessionRecord) -> StoreResult<()>;
    /// The session with this digest, unless it expired before `now`.
    async fn get_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>>;
    /// Changes the publisher an (admin) session shows; false when the session is gone.
    async fn set_session_publisher(&self, id_hash: &str, publisher_id: &str) -> StoreResult<bool>;
    /// Deletes a session (sign-out); false when it was already gone.
    async fn delete_session(&self, id_hash: &str) -> StoreResult<bool>;
    /// Deletes sessions that expired before `now`; answers how many.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id_hash: String,
    publisher_id: Option<String>,
    is_admin: bool,
    csrf_token: String,
    token_key_id: i64,
    sealed_token: Vec<u8>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl TryFrom<SessionRow> for SessionRecord {
    type Error = crate::StoreError;

    fn try_from(r: SessionRow) -> StoreResult<Self> {
        Ok(SessionRecord {
            token_key_id: u32::try_from(r.token_key_id).map_err(|_| {
                crate::StoreError::Corrupt(format!("token_key_id {}", r.token_key_id))
            })?,
            id_hash: r.id_hash,
            publisher_id: r.publisher_id,
            is_admin: r.is_admin,
            csrf_token: r.csrf_token,
            sealed_token: r.sealed_token,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

/// Implements [`SessionStore`] for a backend whose pool is `self.pool` (the SQL is the same in
/// both dialects).
macro_rules! impl_session_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::sessions::SessionStore for $store {
            async fn create_session(&self, s: $crate::sessions::SessionRecord) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO dashboard_sessions (id_hash, publisher_id, is_admin, csrf_token, \
                     token_key_id, sealed_token, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&s.id_hash)
                .bind(&s.publisher_id)
                .bind(s.is_admin)
                .bind(&s.csrf_token)
                .bind(i64::from(s.token_key_id))
                .bind(&s.sealed_token)
                .bind(s.created_at)
                .bind(s.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_session(
                &self,
                id_hash: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Option<$crate::sessions::SessionRecord>> {
                let row = sqlx::query_as::<_, $crate::sessions::SessionRow>(
                    "SELECT id_hash, publisher_id, is_admin, csrf_token, token_key_id, sealed_token, \
                     created_at, expires_at FROM dashboard_sessions WHERE id_hash = $1",
                )
                .bind(id_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let record: $crate::sessions::SessionRecord = row.try_into()?;
                Ok((record.expires_at > now).then_some(record))
            }

            async fn set_session_publisher(&self, id_hash: &str, publisher_id: &str) -> $crate::StoreResult<bool> {
                let done = sqlx::query("UPDATE dashboard_sessions SET publisher_id = $2 WHERE id_hash = $1")
                    .bind(id_hash)
                    .bind(publisher_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_session(&self, id_hash: &str) -> $crate::StoreResult<bool> {
                let done = sqlx::query("DELETE FROM dashboard_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_expired_sessions(&self, now: chrono::DateTime<chrono::Utc>) -> $crate::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_session_store;
