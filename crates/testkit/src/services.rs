//! The machine's PostgreSQL and Redis for tests that need them: a fresh database per test, a
//! key prefix per test, each removed afterwards. Outside CI a missing service skips the test
//! (with a note); in CI (CI=true) it fails.

use std::time::{SystemTime, UNIX_EPOCH};

/// A name no other test of any process has: the clock alone repeats when two tests of one
/// process ask in the same tick (it did, and CREATE DATABASE failed).
fn unique(tag: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{tag}_{}_{n}_{nanos}", std::process::id())
}

fn unavailable(what: &str, why: &str) {
    assert!(std::env::var("CI").is_err(), "CI needs {what}: {why}");
    eprintln!("skipped: {what} is not available ({why})");
}

/// A database of its own on `TOLLGATE_TEST_POSTGRES_URL`'s server, dropped by [`drop_db`].
pub struct TestDatabase {
    admin: sqlx::PgPool,
    name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Option<TestDatabase> {
        let Ok(admin_url) = std::env::var("TOLLGATE_TEST_POSTGRES_URL") else {
            unavailable("PostgreSQL", "TOLLGATE_TEST_POSTGRES_URL is not set");
            return None;
        };
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .expect("connect to TOLLGATE_TEST_POSTGRES_URL");
        let name = unique("tollgate_t");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .expect("create a test database");
        let mut u = url::Url::parse(&admin_url).expect("TOLLGATE_TEST_POSTGRES_URL is a URL");
        u.set_path(&format!("/{name}"));
        Some(TestDatabase {
            admin,
            name,
            url: u.to_string(),
        })
    }

    pub async fn drop_db(self) {
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&self.admin)
        .await;
    }
}

/// A key prefix of its own on the local Redis (or `TOLLGATE_TEST_REDIS_URL`), cleaned by
/// [`TestRedis::cleanup`].
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    pub async fn create() -> Option<TestRedis> {
        let url = std::env::var("TOLLGATE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_string());
        let client = redis::Client::open(url.as_str()).expect("a Redis URL");
        if let Err(e) = client.get_multiplexed_async_connection().await {
            unavailable("Redis", &e.to_string());
            return None;
        }
        Some(TestRedis {
            url,
            prefix: unique("tollgate-test"),
        })
    }

    pub async fn cleanup(&self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
    }
}
