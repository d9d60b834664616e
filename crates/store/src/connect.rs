//! Opening the database named by a URL, and keeping the pool for the right backend.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::error::{QueryContext, StoreError};
use crate::migrate;

/// The default database when none is configured: a file beside where Tollgate was started.
pub const DEFAULT_SQLITE_PATH: &str = "./tollgate.db";

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A handle to the database; cheap to clone (the pools are shared).
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) backend: Backend,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    /// `None` means the embedded SQLite file [`DEFAULT_SQLITE_PATH`].
    pub async fn open(url: Option<&str>) -> Result<Store, StoreError> {
        let url = url.map(str::trim).filter(|u| !u.is_empty());
        let store = match url {
            None => Store::open_sqlite_file(DEFAULT_SQLITE_PATH).await?,
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Store::open_postgres(u).await?
            }
            Some(u) if u.starts_with("sqlite:") => {
                let opts = SqliteConnectOptions::from_str(u)
                    .map_err(|e| StoreError::BadUrl(redact_url_error(&e)))?;
                Store::open_sqlite(opts).await?
            }
            Some(_) => {
                return Err(StoreError::BadUrl(
                    "expected a postgresql:// or sqlite: URL".to_string(),
                ))
            }
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    pub async fn open_sqlite_file(path: &str) -> Result<Store, StoreError> {
        Store::open_sqlite(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open_sqlite(opts: SqliteConnectOptions) -> Result<Store, StoreError> {
        // WAL lets readers (auth, health) run while the spend writer commits; busy_timeout turns
        // brief writer contention into a short wait instead of an error.
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(StoreError::Connect)?;
        Ok(Store {
            backend: Backend::Sqlite(pool),
        })
    }

    async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(redact_url_error(&e)))?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await
            .map_err(StoreError::Connect)?;
        Ok(Store {
            backend: Backend::Postgres(pool),
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgresql",
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
            Backend::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        }
        .context("checking the connection")
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }
}

/// URL parse errors can quote the URL, password included; keep only the kind of error.
fn redact_url_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(_) => "the URL could not be parsed".to_string(),
        _ => "the URL could not be used".to_string(),
    }
}
