//! Fresh databases for tests: a temp-file SQLite database, or a new PostgreSQL database on the
//! server `TEST_DATABASE_URL` names (dropped again by [`TestDb::cleanup`] unless
//! `TEST_KEEP_DB=1`).

use std::sync::Arc;

use sqlx::{Connection as _, PgConnection};

use crate::{Backend, Store, StoreResult};

/// The environment variable that turns on the PostgreSQL runs.
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

/// A database made for one test.
pub struct TestDb {
    pub backend: Backend,
    /// The URL the service or store should open.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh SQLite file in a temp folder.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Self {
            backend: Backend::Sqlite,
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` when `TEST_DATABASE_URL` is unset.
    pub async fn postgres() -> Option<Self> {
        let admin_url = std::env::var(TEST_DATABASE_URL).ok()?;
        let name = format!("sharpsend_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{TEST_DATABASE_URL}: cannot connect: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = conn.close().await;
        let mut url =
            url::Url::parse(&admin_url).unwrap_or_else(|e| panic!("{TEST_DATABASE_URL}: {e}"));
        url.set_path(&format!("/{name}"));
        Some(Self {
            backend: Backend::Postgres,
            url: url.to_string(),
            _dir: None,
            pg: Some((admin_url, name)),
        })
    }

    /// Fresh databases for every backend this run covers: SQLite always, PostgreSQL when set.
    pub async fn all() -> Vec<Self> {
        let mut dbs = vec![Self::sqlite()];
        dbs.extend(Self::postgres().await);
        dbs
    }

    /// Opens (and migrates) the store.
    pub async fn open(&self) -> StoreResult<Arc<dyn Store>> {
        crate::open(&self.url).await
    }

    /// Drops a PostgreSQL test database (SQLite's temp folder goes on drop).
    pub async fn cleanup(self) {
        if let Some((admin_url, name)) = &self.pg {
            if std::env::var("TEST_KEEP_DB").as_deref() == Ok("1") {
                return;
            }
            if let Ok(mut conn) = PgConnection::connect(admin_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        }
    }
}
