//! The SQLite backend: one file, WAL, a busy timeout, foreign keys on.

use std::{str::FromStr, time::Duration};

use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{
    StoreError, StoreResult, sessions::impl_session_store, sql::impl_common_store,
    sync::impl_sync_store,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// [`crate::Store`] on a SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    pub(crate) epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SqliteStore {
    /// Opens (creating the file and its folder) and migrates `sqlite://path`.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL {url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable against application crashes; only an OS crash can lose the
            // last transactions, which the sync engine's checkpoints then redo.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Other(format!("cannot create {}: {e}", dir.display())))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
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

    /// Applies pending migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("SQLite migration failed: {e}")))
    }

    /// Closes the pool (tests reopen the same file to prove restarts keep data).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_common_store!(SqliteStore, sqlx::Sqlite, "sqlite");
impl_sync_store!(
    SqliteStore,
    sqlx::Sqlite,
    "",
    crate::sync::upsert_records_sqlite
);
impl_session_store!(SqliteStore);
