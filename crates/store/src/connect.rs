//! Opening the database named by a URL, and keeping the pool for the right backend.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection, PgPool, SqlitePool};

use crate::error::{QueryContext, StoreError};
use crate::migrate;
use crate::spend::sqlite_writer::{SpendThread, SqliteTarget};

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
    /// SQLite only: the thread and connection spend batches are written on
    /// (`spend/sqlite_writer.rs`). SQLite has one writer at a time anyway.
    pub(crate) sqlite_spend: Option<Arc<SpendThread>>,
}

/// The page cache of each pooled connection to an SQLite file, in KiB (`Store::sqlite`): 16
/// pages of SQLite's default 4 KiB.
const SQLITE_POOL_CACHE_KIB: u32 = 64;

/// How long one attempt to reach PostgreSQL may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    /// `None` means the embedded SQLite file [`DEFAULT_SQLITE_PATH`].
    pub async fn open(url: Option<&str>) -> Result<Store, StoreError> {
        let store = Store::connect(url)?;
        store.prepare().await?;
        Ok(store)
    }

    /// A handle to the database at `url` that connects when first used: nothing is reached yet,
    /// only the URL is checked. [`Store::prepare`] reaches it and migrates it.
    pub fn connect(url: Option<&str>) -> Result<Store, StoreError> {
        let url = url.map(str::trim).filter(|u| !u.is_empty());
        match url {
            None => Ok(Store::sqlite(
                SqliteConnectOptions::new().filename(DEFAULT_SQLITE_PATH),
                false,
            )),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                let opts = PgConnectOptions::from_str(u)
                    .map_err(|e| StoreError::BadUrl(redact_url_error(&e)))?;
                Ok(Store::postgres(opts))
            }
            Some(u) if u.starts_with("sqlite:") => {
                let opts = SqliteConnectOptions::from_str(u)
                    .map_err(|e| StoreError::BadUrl(redact_url_error(&e)))?;
                Ok(Store::sqlite(opts, sqlite_url_in_memory(u)))
            }
            Some(_) => Err(StoreError::BadUrl(
                "expected a postgresql:// or sqlite: URL".to_string(),
            )),
        }
    }

    /// Like [`Store::connect`], but `None` for an SQLite file that does not exist yet: nothing
    /// is created, for a caller that must not change anything.
    pub fn connect_existing(url: Option<&str>) -> Result<Option<Store>, StoreError> {
        let store = Store::connect(url)?;
        if let Backend::Sqlite(pool) = &store.backend {
            let opts = pool.connect_options();
            let path = opts.get_filename();
            let in_memory = path.as_os_str().is_empty() || path.as_os_str() == ":memory:";
            if !in_memory && !path.exists() {
                return Ok(None);
            }
        }
        Ok(Some(store))
    }

    /// The database's own tables (SQLite: the main schema; PostgreSQL: every schema but the
    /// system ones), by name.
    pub async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => {
                sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name",
                )
                .fetch_all(p)
                .await
            }
            Backend::Postgres(p) => {
                sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_catalog.pg_tables \
                     WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
                )
                .fetch_all(p)
                .await
            }
        }
        .context("listing the database's tables")
    }

    /// Reaches the database and brings its schema up to date. An unreachable database fails
    /// with an error for which [`StoreError::is_unavailable`] holds, naming the cause.
    pub async fn prepare(&self) -> Result<(), StoreError> {
        self.reach().await?;
        migrate::run(self).await
    }

    /// Reaches the database without changing it. An unreachable database fails with an error
    /// for which [`StoreError::is_unavailable`] holds, naming the cause.
    pub async fn reach(&self) -> Result<(), StoreError> {
        if let Backend::Postgres(pool) = &self.backend {
            // One direct connection first: the pool retries a refused connection until its
            // acquire timeout and then reports only that it timed out, losing the cause.
            let opts = pool.connect_options();
            let conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts))
                .await
                .map_err(|_| {
                    StoreError::Connect(sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no answer within 5 s",
                    )))
                })?
                .map_err(StoreError::Connect)?;
            // Only a probe: a failed goodbye changes nothing.
            let _ = conn.close().await;
        }
        Ok(())
    }

    pub async fn open_sqlite_file(path: &str) -> Result<Store, StoreError> {
        let store = Store::sqlite(SqliteConnectOptions::new().filename(path), false);
        store.prepare().await?;
        Ok(store)
    }

    fn sqlite(opts: SqliteConnectOptions, in_memory: bool) -> Store {
        // WAL lets readers (auth, health) run while the spend writer commits; busy_timeout turns
        // brief writer contention into a short wait instead of an error.
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // A multi-row statement inside a transaction keeps a statement journal (to undo
            // just that statement); past 64 KiB SQLite spills it to a temporary file, which each
            // spend batch did: half of the writer's write calls were that file's pages.
            .pragma("temp_store", "memory");
        // A pooled connection's page cache starts with up to 20 pages allocated in one piece
        // and allocates each page past those on its own. Every spend batch changes the WAL, and
        // SQLite empties a reader's cache when it sees that, so with the default cache (2,000
        // KiB) each read after a batch allocated its pages past those 20 again, one by one, on
        // the connection's own thread; that churn grew the threads' allocator arenas by a few
        // pages a read, and a 30-minute soak's memory by about 80 KB a minute. A cache of 16
        // pages is that first piece alone, reused read after read (bench/RESULTS.md, stop 39).
        // An in-memory database is its own cache, so it is left alone.
        let opts = if in_memory {
            opts
        } else {
            opts.pragma("cache_size", format!("-{SQLITE_POOL_CACHE_KIB}"))
        };
        let spend = SpendThread::new(SqliteTarget {
            path: opts.get_filename().to_path_buf(),
            in_memory,
        });
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_lazy_with(opts);
        Store {
            backend: Backend::Sqlite(pool),
            sqlite_spend: Some(Arc::new(spend)),
        }
    }

    fn postgres(opts: PgConnectOptions) -> Store {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(opts);
        Store {
            backend: Backend::Postgres(pool),
            sqlite_spend: None,
        }
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
        if let Some(t) = &self.sqlite_spend {
            t.close().await;
        }
        match &self.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }
}

/// Whether an `sqlite:` URL names an in-memory database, as sqlx reads it (`sqlite::memory:`,
/// or `mode=memory` among its parameters): SQLite's spend thread must then open it as such.
fn sqlite_url_in_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (db, params) = rest.split_once('?').unwrap_or((rest, ""));
    db == ":memory:"
        || url::form_urlencoded::parse(params.as_bytes()).any(|(k, v)| k == "mode" && v == "memory")
}

/// URL parse errors can quote the URL, password included; keep only the kind of error.
fn redact_url_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(_) => "the URL could not be parsed".to_string(),
        _ => "the URL could not be used".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{sqlite_url_in_memory, Backend, Store, SQLITE_POOL_CACHE_KIB};

    async fn pool_pragma(url: &str, pragma: &str) -> i64 {
        let store = Store::connect(Some(url)).unwrap();
        let Backend::Sqlite(pool) = store.backend() else {
            panic!("{url} is not SQLite");
        };
        let sql = format!("PRAGMA {pragma}");
        let value = sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap();
        store.close().await;
        value
    }

    #[tokio::test]
    async fn pooled_connections_to_an_sqlite_file_keep_a_page_cache_of_sixteen_pages() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("cache.db").display());
        let kib = i64::from(SQLITE_POOL_CACHE_KIB);
        assert_eq!(pool_pragma(&url, "cache_size").await, -kib);
        // Within the 20 pages SQLite allocates in one piece.
        assert_eq!(kib * 1024 / pool_pragma(&url, "page_size").await, 16);
        assert_eq!(
            pool_pragma("sqlite::memory:", "cache_size").await,
            -2000,
            "SQLite's default"
        );
    }

    #[test]
    fn in_memory_sqlite_urls_are_told_from_files() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite:shared?mode=memory",
            "sqlite:shared?cache=shared&mode=memory",
        ] {
            assert!(sqlite_url_in_memory(url), "{url}");
        }
        for url in [
            "sqlite:tollgate.db",
            "sqlite://./data/tollgate.db?mode=rwc",
            "sqlite:/tmp/memory.db",
            "sqlite:memory",
        ] {
            assert!(!sqlite_url_in_memory(url), "{url}");
        }
    }
}
