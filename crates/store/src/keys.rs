//! Virtual keys (LiteLLM's `LiteLLM_VerificationToken`). A key is identified by the SHA-256 hex
//! of its plaintext, which is never stored. Deleting a key moves it to `deleted_verification_tokens`
//! (LiteLLM's `LiteLLM_DeletedVerificationToken`) in the same transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::connect::Store;
use crate::db::{in_given_order, json_strings, limit_offset, now, on_backend, ReadRow, WritePool};
use crate::error::{violation, QueryContext, StoreError, Violation};

/// A key as stored. Budgets and spend are in nanodollars.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    /// SHA-256 hex of the whole plaintext key.
    pub token: String,
    /// Masked display form, `sk-...abcd`.
    pub key_name: String,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    /// Empty means "inherit" (team, then user, then all models).
    pub models: Vec<String>,
    pub max_budget_nanos: Option<i64>,
    pub soft_budget_nanos: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<DateTime<Utc>>,
    pub spend_nanos: i64,
    /// `None` never expires.
    pub expires: Option<DateTime<Utc>>,
    pub blocked: bool,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<String>,
    pub last_active: Option<DateTime<Utc>>,
    pub rotation_count: i64,
}

/// A key to create. Start from [`NewKey::new`] and set what differs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    pub token: String,
    pub key_name: String,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub models: Vec<String>,
    pub max_budget_nanos: Option<i64>,
    pub soft_budget_nanos: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<DateTime<Utc>>,
    pub spend_nanos: i64,
    pub expires: Option<DateTime<Utc>>,
    pub blocked: bool,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub metadata: Value,
    /// Also recorded as the first `updated_by`.
    pub created_by: Option<String>,
}

impl NewKey {
    /// An unblocked, never-expiring key with no owner, no limits, no models and empty metadata.
    pub fn new(token: impl Into<String>, key_name: impl Into<String>) -> NewKey {
        NewKey {
            token: token.into(),
            key_name: key_name.into(),
            key_alias: None,
            user_id: None,
            team_id: None,
            models: Vec::new(),
            max_budget_nanos: None,
            soft_budget_nanos: None,
            budget_duration: None,
            budget_reset_at: None,
            spend_nanos: 0,
            expires: None,
            blocked: false,
            tpm_limit: None,
            rpm_limit: None,
            max_parallel_requests: None,
            metadata: Value::Object(Default::default()),
            created_by: None,
        }
    }
}

/// Changes to a key. `None` leaves a field unchanged; for nullable fields `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPatch {
    pub key_alias: Option<Option<String>>,
    pub user_id: Option<Option<String>>,
    pub team_id: Option<Option<String>>,
    pub models: Option<Vec<String>>,
    pub max_budget_nanos: Option<Option<i64>>,
    pub soft_budget_nanos: Option<Option<i64>>,
    pub budget_duration: Option<Option<String>>,
    pub budget_reset_at: Option<Option<DateTime<Utc>>>,
    pub spend_nanos: Option<i64>,
    pub expires: Option<Option<DateTime<Utc>>>,
    pub blocked: Option<bool>,
    pub tpm_limit: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i64>>,
    pub max_parallel_requests: Option<Option<i64>>,
    pub metadata: Option<Value>,
}

impl KeyPatch {
    fn apply(&self, before: &KeyRow) -> KeyRow {
        let p = self.clone();
        let b = before.clone();
        KeyRow {
            key_alias: p.key_alias.unwrap_or(b.key_alias),
            user_id: p.user_id.unwrap_or(b.user_id),
            team_id: p.team_id.unwrap_or(b.team_id),
            models: p.models.unwrap_or(b.models),
            max_budget_nanos: p.max_budget_nanos.unwrap_or(b.max_budget_nanos),
            soft_budget_nanos: p.soft_budget_nanos.unwrap_or(b.soft_budget_nanos),
            budget_duration: p.budget_duration.unwrap_or(b.budget_duration),
            budget_reset_at: p.budget_reset_at.unwrap_or(b.budget_reset_at),
            spend_nanos: p.spend_nanos.unwrap_or(b.spend_nanos),
            expires: p.expires.unwrap_or(b.expires),
            blocked: p.blocked.unwrap_or(b.blocked),
            tpm_limit: p.tpm_limit.unwrap_or(b.tpm_limit),
            rpm_limit: p.rpm_limit.unwrap_or(b.rpm_limit),
            max_parallel_requests: p.max_parallel_requests.unwrap_or(b.max_parallel_requests),
            metadata: p.metadata.unwrap_or(b.metadata),
            ..b
        }
    }
}

/// Which keys to list, and which page of them. Filters are exact matches and combine with AND.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFilter {
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub key_alias: Option<String>,
    /// 1-based.
    pub page: u32,
    pub size: u32,
}

impl Default for KeyFilter {
    fn default() -> KeyFilter {
        KeyFilter {
            user_id: None,
            team_id: None,
            key_alias: None,
            page: 1,
            size: 10,
        }
    }
}

/// The key columns, in the order shared by both tables (the archive adds two at the end).
macro_rules! columns {
    () => {
        "token, key_name, key_alias, user_id, team_id, models, max_budget_nanos, \
         soft_budget_nanos, budget_duration, budget_reset_at, spend_nanos, expires, blocked, \
         tpm_limit, rpm_limit, max_parallel_requests, metadata, created_at, created_by, \
         updated_at, updated_by, last_active, rotation_count"
    };
}

macro_rules! columns_pg {
    () => {
        "token, key_name, key_alias, user_id, team_id, models::text AS models, max_budget_nanos, \
         soft_budget_nanos, budget_duration, budget_reset_at, spend_nanos, expires, blocked, \
         tpm_limit, rpm_limit, max_parallel_requests, metadata::text AS metadata, created_at, \
         created_by, updated_at, updated_by, last_active, rotation_count"
    };
}

macro_rules! insert_head {
    () => {
        "INSERT INTO verification_tokens (token, key_name, key_alias, user_id, team_id, models, \
         max_budget_nanos, soft_budget_nanos, budget_duration, budget_reset_at, spend_nanos, \
         expires, blocked, tpm_limit, rpm_limit, max_parallel_requests, metadata, created_at, \
         created_by, updated_at, updated_by) VALUES "
    };
}

macro_rules! filter_sqlite {
    () => {
        "WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR team_id = ?2) \
         AND (?3 IS NULL OR key_alias = ?3)"
    };
}

macro_rules! filter_pg {
    () => {
        "WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR team_id = $2) \
         AND ($3::text IS NULL OR key_alias = $3)"
    };
}

struct Queries {
    insert: &'static str,
    get: &'static str,
    get_by_alias: &'static str,
    list: &'static str,
    count: &'static str,
    lock: &'static str,
    update: &'static str,
    set_blocked: &'static str,
    regenerate: &'static str,
    add_spend: &'static str,
    get_deleted: &'static str,
    /// Selects (and on PostgreSQL locks) the live keys among a JSON list of tokens.
    lock_tokens: &'static str,
    /// Selects (and on PostgreSQL locks) a user's live keys.
    lock_user: &'static str,
    clear_archived: &'static str,
    archive: &'static str,
    delete: &'static str,
}

// SQLite statements with many parameters use plain `?`: sqlx looks `$N` names up one by one.
const SQLITE: Queries = Queries {
    insert: concat!(
        insert_head!(),
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
        columns!()
    ),
    get: concat!(
        "SELECT ",
        columns!(),
        " FROM verification_tokens WHERE token = $1"
    ),
    get_by_alias: concat!(
        "SELECT ",
        columns!(),
        " FROM verification_tokens WHERE key_alias = $1 ORDER BY created_at DESC, token DESC \
         LIMIT 1"
    ),
    list: concat!(
        "SELECT ",
        columns!(),
        " FROM verification_tokens ",
        filter_sqlite!(),
        " ORDER BY created_at DESC, token DESC LIMIT ?4 OFFSET ?5"
    ),
    count: concat!(
        "SELECT COUNT(*) FROM verification_tokens ",
        filter_sqlite!()
    ),
    lock: concat!(
        "SELECT ",
        columns!(),
        " FROM verification_tokens WHERE token = $1"
    ),
    update: concat!(
        "UPDATE verification_tokens SET key_alias = ?, user_id = ?, team_id = ?, models = ?, \
         max_budget_nanos = ?, soft_budget_nanos = ?, budget_duration = ?, budget_reset_at = ?, \
         spend_nanos = ?, expires = ?, blocked = ?, tpm_limit = ?, rpm_limit = ?, \
         max_parallel_requests = ?, metadata = ?, updated_at = ?, updated_by = ? \
         WHERE token = ? RETURNING ",
        columns!()
    ),
    set_blocked: concat!(
        "UPDATE verification_tokens SET blocked = $1, updated_at = $2, updated_by = $3 \
         WHERE token = $4 RETURNING ",
        columns!()
    ),
    regenerate: concat!(
        "UPDATE verification_tokens SET token = $1, key_name = $2, \
         rotation_count = rotation_count + 1, updated_at = $3, updated_by = $4 \
         WHERE token = $5 RETURNING ",
        columns!()
    ),
    add_spend: "UPDATE verification_tokens SET spend_nanos = spend_nanos + $1 WHERE token = $2 \
                RETURNING spend_nanos",
    get_deleted: concat!(
        "SELECT ",
        columns!(),
        ", deleted_at, deleted_by FROM deleted_verification_tokens WHERE token = $1"
    ),
    lock_tokens: "SELECT token FROM verification_tokens \
                  WHERE token IN (SELECT value FROM json_each($1))",
    lock_user: "SELECT token FROM verification_tokens WHERE user_id = $1",
    clear_archived: "DELETE FROM deleted_verification_tokens \
                     WHERE token IN (SELECT value FROM json_each($1))",
    archive: concat!(
        "INSERT INTO deleted_verification_tokens (",
        columns!(),
        ", deleted_at, deleted_by) SELECT ",
        columns!(),
        ", $2, $3 FROM verification_tokens WHERE token IN (SELECT value FROM json_each($1))"
    ),
    delete: "DELETE FROM verification_tokens WHERE token IN (SELECT value FROM json_each($1)) \
             RETURNING token",
};

const POSTGRES: Queries = Queries {
    insert: concat!(
        insert_head!(),
        "($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
         $17::jsonb, $18, $19, $20, $21) RETURNING ",
        columns_pg!()
    ),
    get: concat!(
        "SELECT ",
        columns_pg!(),
        " FROM verification_tokens WHERE token = $1"
    ),
    get_by_alias: concat!(
        "SELECT ",
        columns_pg!(),
        " FROM verification_tokens WHERE key_alias = $1 ORDER BY created_at DESC, token DESC \
         LIMIT 1"
    ),
    list: concat!(
        "SELECT ",
        columns_pg!(),
        " FROM verification_tokens ",
        filter_pg!(),
        " ORDER BY created_at DESC, token DESC LIMIT $4 OFFSET $5"
    ),
    count: concat!("SELECT COUNT(*) FROM verification_tokens ", filter_pg!()),
    // Holds the row until commit so a concurrent write cannot slip between before and after.
    lock: concat!(
        "SELECT ",
        columns_pg!(),
        " FROM verification_tokens WHERE token = $1 FOR UPDATE"
    ),
    update: concat!(
        "UPDATE verification_tokens SET key_alias = $1, user_id = $2, team_id = $3, \
         models = $4::jsonb, max_budget_nanos = $5, soft_budget_nanos = $6, \
         budget_duration = $7, budget_reset_at = $8, spend_nanos = $9, expires = $10, \
         blocked = $11, tpm_limit = $12, rpm_limit = $13, max_parallel_requests = $14, \
         metadata = $15::jsonb, updated_at = $16, updated_by = $17 WHERE token = $18 RETURNING ",
        columns_pg!()
    ),
    set_blocked: concat!(
        "UPDATE verification_tokens SET blocked = $1, updated_at = $2, updated_by = $3 \
         WHERE token = $4 RETURNING ",
        columns_pg!()
    ),
    regenerate: concat!(
        "UPDATE verification_tokens SET token = $1, key_name = $2, \
         rotation_count = rotation_count + 1, updated_at = $3, updated_by = $4 \
         WHERE token = $5 RETURNING ",
        columns_pg!()
    ),
    add_spend: "UPDATE verification_tokens SET spend_nanos = spend_nanos + $1 WHERE token = $2 \
                RETURNING spend_nanos",
    get_deleted: concat!(
        "SELECT ",
        columns_pg!(),
        ", deleted_at, deleted_by FROM deleted_verification_tokens WHERE token = $1"
    ),
    // Locking the rows first fixes the set that is archived and then deleted, so a key written
    // concurrently is either moved whole or left alone; the order avoids lock-order deadlocks.
    lock_tokens: "SELECT token FROM verification_tokens \
                  WHERE token IN (SELECT jsonb_array_elements_text($1::jsonb)) \
                  ORDER BY token FOR UPDATE",
    lock_user: "SELECT token FROM verification_tokens WHERE user_id = $1 \
                ORDER BY token FOR UPDATE",
    clear_archived: "DELETE FROM deleted_verification_tokens \
                     WHERE token IN (SELECT jsonb_array_elements_text($1::jsonb))",
    archive: concat!(
        "INSERT INTO deleted_verification_tokens (",
        columns!(),
        ", deleted_at, deleted_by) SELECT ",
        columns!(),
        ", $2, $3 FROM verification_tokens \
         WHERE token IN (SELECT jsonb_array_elements_text($1::jsonb))"
    ),
    delete: "DELETE FROM verification_tokens \
             WHERE token IN (SELECT jsonb_array_elements_text($1::jsonb)) RETURNING token",
};

fn key_row(r: &impl ReadRow) -> Result<KeyRow, sqlx::Error> {
    Ok(KeyRow {
        token: r.text("token")?,
        key_name: r.text("key_name")?,
        key_alias: r.opt_text("key_alias")?,
        user_id: r.opt_text("user_id")?,
        team_id: r.opt_text("team_id")?,
        models: r.strings("models")?,
        max_budget_nanos: r.opt_int("max_budget_nanos")?,
        soft_budget_nanos: r.opt_int("soft_budget_nanos")?,
        budget_duration: r.opt_text("budget_duration")?,
        budget_reset_at: r.opt_time("budget_reset_at")?,
        spend_nanos: r.int("spend_nanos")?,
        expires: r.opt_time("expires")?,
        blocked: r.flag("blocked")?,
        tpm_limit: r.opt_int("tpm_limit")?,
        rpm_limit: r.opt_int("rpm_limit")?,
        max_parallel_requests: r.opt_int("max_parallel_requests")?,
        metadata: r.json("metadata")?,
        created_at: r.time("created_at")?,
        created_by: r.opt_text("created_by")?,
        updated_at: r.time("updated_at")?,
        updated_by: r.opt_text("updated_by")?,
        last_active: r.opt_time("last_active")?,
        rotation_count: r.int("rotation_count")?,
    })
}

/// The only unique key is the token, so any unique violation is a taken token.
fn write_error(source: sqlx::Error, context: &'static str) -> StoreError {
    match violation(&source) {
        Some(Violation::Unique(_)) => StoreError::Conflict {
            what: "token".to_string(),
        },
        _ => StoreError::Query { context, source },
    }
}

/// Which live keys a delete moves to the archive.
enum Doomed<'a> {
    /// A JSON array of token hashes.
    Tokens(&'a str),
    User(&'a str),
}

impl Store {
    /// Creates a key. A token already in use is a [`StoreError::Conflict`] naming `token`.
    pub async fn create_key(&self, key: &NewKey) -> Result<KeyRow, StoreError> {
        let at = now();
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let row = sqlx::query(q.insert)
                .bind(&key.token)
                .bind(&key.key_name)
                .bind(&key.key_alias)
                .bind(&key.user_id)
                .bind(&key.team_id)
                .bind(json_strings(&key.models))
                .bind(key.max_budget_nanos)
                .bind(key.soft_budget_nanos)
                .bind(&key.budget_duration)
                .bind(key.budget_reset_at)
                .bind(key.spend_nanos)
                .bind(key.expires)
                .bind(key.blocked)
                .bind(key.tpm_limit)
                .bind(key.rpm_limit)
                .bind(key.max_parallel_requests)
                .bind(key.metadata.to_string())
                .bind(at)
                .bind(&key.created_by)
                .bind(at)
                .bind(&key.created_by)
                .fetch_one(pool)
                .await
                .map_err(|e| write_error(e, "creating a key"))?;
            key_row(&row).context("decoding a key")
        })
    }

    pub async fn get_key(&self, token_hash: &str) -> Result<Option<KeyRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.get)
                .bind(token_hash)
                .fetch_optional(pool)
                .await
                .context("reading a key")?
                .map(|r| key_row(&r))
                .transpose()
        })
        .context("decoding a key")
    }

    /// The key with this alias. Aliases are not unique in the store (LiteLLM enforces that
    /// only optionally), so when several match this is the newest.
    pub async fn get_key_by_alias(&self, alias: &str) -> Result<Option<KeyRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.get_by_alias)
                .bind(alias)
                .fetch_optional(pool)
                .await
                .context("reading a key by alias")?
                .map(|r| key_row(&r))
                .transpose()
        })
        .context("decoding a key")
    }

    /// One page of the keys matching `filter`, newest first, and how many match in all.
    pub async fn list_keys(&self, filter: &KeyFilter) -> Result<(Vec<KeyRow>, i64), StoreError> {
        let (limit, offset) = limit_offset(filter.page, filter.size);
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let rows = sqlx::query(q.list)
                .bind(&filter.user_id)
                .bind(&filter.team_id)
                .bind(&filter.key_alias)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await
                .context("listing keys")?;
            let total: i64 = sqlx::query_scalar(q.count)
                .bind(&filter.user_id)
                .bind(&filter.team_id)
                .bind(&filter.key_alias)
                .fetch_one(pool)
                .await
                .context("counting keys")?;
            let keys = rows
                .iter()
                .map(key_row)
                .collect::<Result<Vec<_>, _>>()
                .context("decoding a key")?;
            Ok((keys, total))
        })
    }

    /// Applies `patch` in one transaction, recording `updated_by`, and returns the key as it
    /// was and as it is now; `None` when there is no such key.
    pub async fn update_key(
        &self,
        token_hash: &str,
        patch: &KeyPatch,
        updated_by: &str,
    ) -> Result<Option<(KeyRow, KeyRow)>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let mut tx = pool.begin_write().await.context("starting a key update")?;
            let before = sqlx::query(q.lock)
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .context("reading a key")?
                .map(|r| key_row(&r))
                .transpose()
                .context("decoding a key")?;
            let Some(before) = before else {
                return Ok(None);
            };
            let next = patch.apply(&before);
            let row = sqlx::query(q.update)
                .bind(&next.key_alias)
                .bind(&next.user_id)
                .bind(&next.team_id)
                .bind(json_strings(&next.models))
                .bind(next.max_budget_nanos)
                .bind(next.soft_budget_nanos)
                .bind(&next.budget_duration)
                .bind(next.budget_reset_at)
                .bind(next.spend_nanos)
                .bind(next.expires)
                .bind(next.blocked)
                .bind(next.tpm_limit)
                .bind(next.rpm_limit)
                .bind(next.max_parallel_requests)
                .bind(next.metadata.to_string())
                .bind(now())
                .bind(updated_by)
                .bind(token_hash)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| write_error(e, "updating a key"))?;
            let after = key_row(&row).context("decoding a key")?;
            tx.commit().await.context("committing a key update")?;
            Ok(Some((before, after)))
        })
    }

    /// Blocks or unblocks a key; `None` when there is no such key.
    pub async fn set_key_blocked(
        &self,
        token_hash: &str,
        blocked: bool,
        updated_by: &str,
    ) -> Result<Option<KeyRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.set_blocked)
                .bind(blocked)
                .bind(now())
                .bind(updated_by)
                .bind(token_hash)
                .fetch_optional(pool)
                .await
                .context("blocking a key")?
                .map(|r| key_row(&r))
                .transpose()
        })
        .context("decoding a key")
    }

    /// Moves the keys to the archive in one transaction. Returns the hashes that existed, in
    /// the order given.
    pub async fn delete_keys(
        &self,
        token_hashes: &[String],
        deleted_by: &str,
    ) -> Result<Vec<String>, StoreError> {
        if token_hashes.is_empty() {
            return Ok(Vec::new());
        }
        let list = json_strings(token_hashes);
        let deleted = self.archive_keys(Doomed::Tokens(&list), deleted_by).await?;
        Ok(in_given_order(token_hashes, &deleted))
    }

    /// Moves all of a user's keys to the archive in one transaction (LiteLLM deletes a user's
    /// keys with the user). Returns their hashes, sorted.
    pub async fn delete_keys_of_user(
        &self,
        user_id: &str,
        deleted_by: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut deleted = self.archive_keys(Doomed::User(user_id), deleted_by).await?;
        deleted.sort();
        Ok(deleted)
    }

    async fn archive_keys(
        &self,
        doomed: Doomed<'_>,
        deleted_by: &str,
    ) -> Result<Vec<String>, StoreError> {
        let at = now();
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let mut tx = pool.begin_write().await.context("starting a key delete")?;
            let found: Vec<String> = match doomed {
                Doomed::Tokens(list) => sqlx::query_scalar(q.lock_tokens).bind(list),
                Doomed::User(user_id) => sqlx::query_scalar(q.lock_user).bind(user_id),
            }
            .fetch_all(&mut *tx)
            .await
            .context("finding keys to delete")?;
            if found.is_empty() {
                return Ok(Vec::new());
            }
            let found = json_strings(&found);
            // A custom key deleted, re-created and deleted again replaces its earlier archive
            // row: the archive is keyed by token like LiteLLM's.
            sqlx::query(q.clear_archived)
                .bind(&found)
                .execute(&mut *tx)
                .await
                .context("replacing archived keys")?;
            sqlx::query(q.archive)
                .bind(&found)
                .bind(at)
                .bind(deleted_by)
                .execute(&mut *tx)
                .await
                .context("archiving keys")?;
            let deleted: Vec<String> = sqlx::query_scalar(q.delete)
                .bind(&found)
                .fetch_all(&mut *tx)
                .await
                .context("deleting keys")?;
            tx.commit().await.context("committing a key delete")?;
            Ok(deleted)
        })
    }

    /// Gives the key a new token (and masked name), keeping everything else and counting the
    /// rotation. `None` when there is no key `old_hash`; a `new_hash` already in use is a
    /// [`StoreError::Conflict`]. One statement, so it is atomic on both backends.
    pub async fn regenerate_key(
        &self,
        old_hash: &str,
        new_hash: &str,
        new_key_name: &str,
        updated_by: &str,
    ) -> Result<Option<KeyRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.regenerate)
                .bind(new_hash)
                .bind(new_key_name)
                .bind(now())
                .bind(updated_by)
                .bind(old_hash)
                .fetch_optional(pool)
                .await
                .map_err(|e| write_error(e, "regenerating a key"))?
                .map(|r| key_row(&r))
                .transpose()
                .context("decoding a key")
        })
    }

    /// An archived key with when and by whom it was deleted.
    pub async fn get_deleted_key(
        &self,
        token_hash: &str,
    ) -> Result<Option<(KeyRow, DateTime<Utc>, Option<String>)>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.get_deleted)
                .bind(token_hash)
                .fetch_optional(pool)
                .await
                .context("reading a deleted key")?
                .map(|r| -> Result<_, sqlx::Error> {
                    Ok((
                        key_row(&r)?,
                        r.time("deleted_at")?,
                        r.opt_text("deleted_by")?,
                    ))
                })
                .transpose()
        })
        .context("decoding a deleted key")
    }

    /// Adds to the key's spend in the database (concurrent calls never lose an increment).
    /// Returns the new spend, or `None` when there is no such key.
    pub async fn add_key_spend(
        &self,
        token_hash: &str,
        nanos: i64,
    ) -> Result<Option<i64>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query_scalar(q.add_spend)
                .bind(nanos)
                .bind(token_hash)
                .fetch_optional(pool)
                .await
        })
        .context("adding key spend")
    }
}
