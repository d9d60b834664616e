//! Small named values the gateway keeps for itself (e.g. the hash of a generated master key).

use chrono::Utc;

use crate::connect::{Backend, Store};
use crate::error::{QueryContext, StoreError};

/// Hash of the master key Tollgate generated when none was configured.
pub const GENERATED_MASTER_KEY_HASH: &str = "generated_master_key_sha256";

impl Store {
    pub async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let sql = "SELECT value FROM tollgate_settings WHERE key = $1";
        match &self.backend {
            Backend::Sqlite(p) => sqlx::query_scalar(sql).bind(key).fetch_optional(p).await,
            Backend::Postgres(p) => sqlx::query_scalar(sql).bind(key).fetch_optional(p).await,
        }
        .context("reading a setting")
    }

    /// Stores `value` unless the key already has one; returns whether this call stored it.
    /// Two instances starting at once therefore agree on a single value.
    pub async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let sql = "INSERT INTO tollgate_settings (key, value, updated_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (key) DO NOTHING";
        let now = Utc::now();
        let done = match &self.backend {
            Backend::Sqlite(p) => sqlx::query(sql)
                .bind(key)
                .bind(value)
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Backend::Postgres(p) => sqlx::query(sql)
                .bind(key)
                .bind(value)
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
        }
        .context("storing a setting")?;
        Ok(done == 1)
    }

    pub async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let sql = "INSERT INTO tollgate_settings (key, value, updated_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
        let now = Utc::now();
        match &self.backend {
            Backend::Sqlite(p) => sqlx::query(sql)
                .bind(key)
                .bind(value)
                .bind(now)
                .execute(p)
                .await
                .map(|_| ()),
            Backend::Postgres(p) => sqlx::query(sql)
                .bind(key)
                .bind(value)
                .bind(now)
                .execute(p)
                .await
                .map(|_| ()),
        }
        .context("storing a setting")
    }
}
