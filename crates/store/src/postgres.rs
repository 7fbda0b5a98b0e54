//! The PostgreSQL backend, for several stateless replicas on one database.

use std::{str::FromStr, time::Duration};

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{
    StoreError, StoreResult, consent::impl_consent_store, destinations::impl_destination_store,
    idempotency::impl_idempotency_store, sessions::impl_session_store, sql::impl_common_store,
    sync::impl_sync_store,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// [`crate::Store`] on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    pub(crate) epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl PgStore {
    /// Connects to and migrates `postgres://…`.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Other(format!(
                "bad PostgreSQL URL {}: {e}",
                crate::redact_url(url)
            ))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options)
            .await?;
        let store = Self {
            pool,
            epoch: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations. sqlx takes an advisory lock, so replicas starting together
    /// migrate once.
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("PostgreSQL migration failed: {e}")))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_common_store!(PgStore, sqlx::Postgres, "postgres");
impl_sync_store!(
    PgStore,
    sqlx::Postgres,
    "FOR UPDATE SKIP LOCKED",
    crate::sync::upsert_records_postgres
);
impl_session_store!(PgStore);
impl_idempotency_store!(PgStore);
impl_consent_store!(PgStore, sqlx::Postgres, "FOR UPDATE SKIP LOCKED");
impl_destination_store!(PgStore, sqlx::Postgres, "FOR UPDATE SKIP LOCKED", "BEGIN");
