//! Backend setup shared by the contract suites. SQLite always runs; PostgreSQL runs when
//! `TOLLGATE_TEST_POSTGRES_URL` names a server (CI sets it), each test in a fresh database that
//! is dropped afterwards.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use tollgate_store::Store;

/// A migrated store to test, and what to clean up after it.
pub struct TestDb {
    pub store: Store,
    pub cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn drop_db(self) {
        self.store.close().await;
        drop_postgres(self.cleanup).await;
    }
}

/// A database that exists but has never been opened by Tollgate.
pub struct EmptyDb {
    pub url: String,
    pub cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl EmptyDb {
    pub fn is_postgres(&self) -> bool {
        self.cleanup.is_some()
    }

    /// Opens (and so migrates) the database.
    pub async fn open(self) -> TestDb {
        let store = Store::open(Some(&self.url)).await.unwrap();
        if self.is_postgres() {
            assert_eq!(store.backend_name(), "postgresql");
        }
        TestDb {
            store,
            cleanup: self.cleanup,
            _dir: self._dir,
        }
    }
}

pub async fn drop_postgres(cleanup: Option<(String, String)>) {
    if let Some((admin_url, name)) = cleanup {
        let admin = admin_pool(&admin_url).await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&admin)
            .await
            .expect("drop test database");
        admin.close().await;
    }
}

pub async fn admin_pool(url: &str) -> sqlx::PgPool {
    sqlx::PgPool::connect(url)
        .await
        .expect("connect to TOLLGATE_TEST_POSTGRES_URL")
}

/// A fresh SQLite file, and a fresh PostgreSQL database when one is configured.
pub async fn empty_databases() -> Vec<EmptyDb> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contract.db");
    let mut out = vec![EmptyDb {
        url: format!("sqlite:{}", path.display()),
        cleanup: None,
        _dir: Some(dir),
    }];
    if let Ok(url) = std::env::var("TOLLGATE_TEST_POSTGRES_URL") {
        let name = format!("tollgate_contract_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_pool(&url).await;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        out.push(EmptyDb {
            url: with_database(&url, &name),
            cleanup: Some((url, name)),
            _dir: None,
        });
    } else if std::env::var("CI").is_ok() {
        panic!("CI must set TOLLGATE_TEST_POSTGRES_URL so the PostgreSQL backend is tested");
    }
    out
}

/// Every backend, opened and migrated.
pub async fn backends() -> Vec<TestDb> {
    let mut out = Vec::new();
    for db in empty_databases().await {
        out.push(db.open().await);
    }
    out
}

pub fn with_database(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_path(&format!("/{name}"));
    u.to_string()
}
