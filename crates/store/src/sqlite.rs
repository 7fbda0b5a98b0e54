//! The SQLite backend: one file, WAL, a busy timeout, foreign keys on.

use std::{str::FromStr, time::Duration};

use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{
    StoreError, StoreResult, consent::impl_consent_store, destinations::impl_destination_store,
    idempotency::impl_idempotency_store, sessions::impl_session_store, sql::impl_common_store,
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
        let file = options.get_filename();
        if file != std::path::Path::new(":memory:") && !file.as_os_str().is_empty() {
            secure_files(file)?;
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

/// The database holds sealed credentials and API key hashes: its folder is created 0700 and the
/// file 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm` files the database
/// file's mode). An existing file (and its `-wal`/`-shm`) readable by others is narrowed to 0600;
/// an existing folder is left as it is (it may be shared).
fn secure_files(file: &std::path::Path) -> StoreResult<()> {
    let io = |path: &std::path::Path, e: std::io::Error| {
        StoreError::Other(format!("cannot prepare {}: {e}", path.display()))
    };
    if let Some(dir) = file.parent()
        && !dir.as_os_str().is_empty()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| io(dir, e))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file);
        match created {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut name = file.as_os_str().to_owned();
                    name.push(suffix);
                    let path = std::path::Path::new(&name);
                    if let Ok(meta) = std::fs::metadata(path)
                        && meta.is_file()
                        && meta.permissions().mode() & 0o077 != 0
                    {
                        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                            .map_err(|e| io(path, e))?;
                    }
                }
            }
            Err(e) => return Err(io(file, e)),
        }
    }
    Ok(())
}

impl_common_store!(SqliteStore, sqlx::Sqlite, "sqlite");
impl_sync_store!(
    SqliteStore,
    sqlx::Sqlite,
    "",
    crate::sync::upsert_records_sqlite
);
impl_session_store!(SqliteStore);
impl_idempotency_store!(SqliteStore);
impl_consent_store!(SqliteStore, sqlx::Sqlite, "");
impl_destination_store!(SqliteStore, sqlx::Sqlite, "", "BEGIN IMMEDIATE");
