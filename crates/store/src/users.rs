//! Internal users: identity, role, budget and limits. The password hash lives in the same row
//! but leaves the store only through the login-specific reads, never in a [`UserRow`].

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::connect::Store;
use crate::db::{
    in_given_order, json_strings, like_contains, limit_offset, now, on_backend, ReadRow, WritePool,
};
use crate::error::{violation, QueryContext, StoreError, Violation};

/// A user as the rest of Tollgate sees it: everything but the password hash.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub user_role: String,
    /// LiteLLM's denormalised team list. The store keeps it in step with `team_members`
    /// when members are added or removed and teams deleted.
    pub teams: Vec<String>,
    pub models: Vec<String>,
    pub max_budget_nanos: Option<i64>,
    pub budget_duration: Option<String>,
    pub spend_nanos: i64,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user to create. Start from [`NewUser::new`] and set what differs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub user_role: String,
    pub teams: Vec<String>,
    pub models: Vec<String>,
    pub max_budget_nanos: Option<i64>,
    pub budget_duration: Option<String>,
    pub spend_nanos: i64,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub metadata: Value,
}

impl NewUser {
    /// A user with no email, no limits, no models and empty metadata.
    pub fn new(user_id: impl Into<String>, user_role: impl Into<String>) -> NewUser {
        NewUser {
            user_id: user_id.into(),
            user_email: None,
            user_alias: None,
            user_role: user_role.into(),
            teams: Vec::new(),
            models: Vec::new(),
            max_budget_nanos: None,
            budget_duration: None,
            spend_nanos: 0,
            tpm_limit: None,
            rpm_limit: None,
            max_parallel_requests: None,
            metadata: Value::Object(Default::default()),
        }
    }
}

/// Changes to a user. `None` leaves a field unchanged; for nullable fields `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub user_email: Option<Option<String>>,
    pub user_alias: Option<Option<String>>,
    pub user_role: Option<String>,
    pub teams: Option<Vec<String>>,
    pub models: Option<Vec<String>>,
    pub max_budget_nanos: Option<Option<i64>>,
    pub budget_duration: Option<Option<String>>,
    pub spend_nanos: Option<i64>,
    pub tpm_limit: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i64>>,
    pub max_parallel_requests: Option<Option<i64>>,
    pub metadata: Option<Value>,
}

impl UserPatch {
    fn apply(&self, before: &UserRow) -> UserRow {
        let p = self.clone();
        let b = before.clone();
        UserRow {
            user_email: p.user_email.unwrap_or(b.user_email),
            user_alias: p.user_alias.unwrap_or(b.user_alias),
            user_role: p.user_role.unwrap_or(b.user_role),
            teams: p.teams.unwrap_or(b.teams),
            models: p.models.unwrap_or(b.models),
            max_budget_nanos: p.max_budget_nanos.unwrap_or(b.max_budget_nanos),
            budget_duration: p.budget_duration.unwrap_or(b.budget_duration),
            spend_nanos: p.spend_nanos.unwrap_or(b.spend_nanos),
            tpm_limit: p.tpm_limit.unwrap_or(b.tpm_limit),
            rpm_limit: p.rpm_limit.unwrap_or(b.rpm_limit),
            max_parallel_requests: p.max_parallel_requests.unwrap_or(b.max_parallel_requests),
            metadata: p.metadata.unwrap_or(b.metadata),
            ..b
        }
    }
}

/// Which users to list, and which page of them.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFilter {
    pub role: Option<String>,
    /// Case-insensitive substring of the email; taken literally (`%` and `_` are not wildcards).
    pub email_contains: Option<String>,
    pub user_ids: Option<Vec<String>>,
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
}

impl Default for UserFilter {
    fn default() -> UserFilter {
        UserFilter {
            role: None,
            email_contains: None,
            user_ids: None,
            page: 1,
            page_size: 25,
        }
    }
}

macro_rules! columns {
    () => {
        "user_id, user_email, user_alias, user_role, teams, models, max_budget_nanos, \
         budget_duration, spend_nanos, tpm_limit, rpm_limit, max_parallel_requests, metadata, \
         created_at, updated_at"
    };
}

macro_rules! columns_pg {
    () => {
        "user_id, user_email, user_alias, user_role, teams::text AS teams, models::text AS models, \
         max_budget_nanos, budget_duration, spend_nanos, tpm_limit, rpm_limit, \
         max_parallel_requests, metadata::text AS metadata, created_at, updated_at"
    };
}

macro_rules! insert_head {
    () => {
        "INSERT INTO users (user_id, user_email, user_email_lower, user_alias, user_role, teams, \
         models, max_budget_nanos, budget_duration, spend_nanos, tpm_limit, rpm_limit, \
         max_parallel_requests, metadata, created_at, updated_at) VALUES "
    };
}

macro_rules! update_head {
    () => {
        "UPDATE users SET user_email = ?, user_email_lower = ?, user_alias = ?, user_role = ?, \
         teams = ?, models = ?, max_budget_nanos = ?, budget_duration = ?, spend_nanos = ?, \
         tpm_limit = ?, rpm_limit = ?, max_parallel_requests = ?, metadata = ?, updated_at = ? \
         WHERE user_id = ? RETURNING "
    };
}

macro_rules! filter_sqlite {
    () => {
        r"WHERE (?1 IS NULL OR user_role = ?1)
            AND (?2 IS NULL OR user_email_lower LIKE ?2 ESCAPE '\')
            AND (?3 IS NULL OR user_id IN (SELECT value FROM json_each(?3)))"
    };
}

macro_rules! filter_pg {
    () => {
        r"WHERE ($1::text IS NULL OR user_role = $1)
            AND ($2::text IS NULL OR user_email_lower LIKE $2 ESCAPE '\')
            AND ($3::jsonb IS NULL OR user_id IN (SELECT jsonb_array_elements_text($3::jsonb)))"
    };
}

struct Queries {
    insert: &'static str,
    get: &'static str,
    get_by_email: &'static str,
    login_by_email: &'static str,
    password_hash: &'static str,
    set_password_hash: &'static str,
    list: &'static str,
    count: &'static str,
    lock: &'static str,
    update: &'static str,
    delete: &'static str,
}

// SQLite statements with many parameters use plain `?`: sqlx looks `$N` names up one by one.
const SQLITE: Queries = Queries {
    insert: concat!(
        insert_head!(),
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
        columns!()
    ),
    get: concat!("SELECT ", columns!(), " FROM users WHERE user_id = $1"),
    get_by_email: concat!(
        "SELECT ",
        columns!(),
        " FROM users WHERE user_email_lower = $1"
    ),
    login_by_email: concat!(
        "SELECT ",
        columns!(),
        ", password_hash FROM users WHERE user_email_lower = $1"
    ),
    password_hash: "SELECT password_hash FROM users WHERE user_id = $1",
    set_password_hash: "UPDATE users SET password_hash = $1, updated_at = $2 WHERE user_id = $3",
    list: concat!(
        "SELECT ",
        columns!(),
        " FROM users ",
        filter_sqlite!(),
        " ORDER BY created_at, user_id LIMIT ?4 OFFSET ?5"
    ),
    count: concat!("SELECT COUNT(*) FROM users ", filter_sqlite!()),
    lock: concat!("SELECT ", columns!(), " FROM users WHERE user_id = $1"),
    update: concat!(update_head!(), columns!()),
    delete:
        "DELETE FROM users WHERE user_id IN (SELECT value FROM json_each($1)) RETURNING user_id",
};

const POSTGRES: Queries = Queries {
    insert: concat!(
        insert_head!(),
        "($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, \
         $16) RETURNING ",
        columns_pg!()
    ),
    get: concat!("SELECT ", columns_pg!(), " FROM users WHERE user_id = $1"),
    get_by_email: concat!(
        "SELECT ",
        columns_pg!(),
        " FROM users WHERE user_email_lower = $1"
    ),
    login_by_email: concat!(
        "SELECT ",
        columns_pg!(),
        ", password_hash FROM users WHERE user_email_lower = $1"
    ),
    password_hash: "SELECT password_hash FROM users WHERE user_id = $1",
    set_password_hash: "UPDATE users SET password_hash = $1, updated_at = $2 WHERE user_id = $3",
    list: concat!(
        "SELECT ",
        columns_pg!(),
        " FROM users ",
        filter_pg!(),
        " ORDER BY created_at, user_id LIMIT $4 OFFSET $5"
    ),
    count: concat!("SELECT COUNT(*) FROM users ", filter_pg!()),
    // Holds the row until commit so a concurrent update cannot slip between before and after.
    lock: concat!(
        "SELECT ",
        columns_pg!(),
        " FROM users WHERE user_id = $1 FOR UPDATE"
    ),
    update: concat!(
        "UPDATE users SET user_email = $1, user_email_lower = $2, user_alias = $3, \
         user_role = $4, teams = $5::jsonb, models = $6::jsonb, max_budget_nanos = $7, \
         budget_duration = $8, spend_nanos = $9, tpm_limit = $10, rpm_limit = $11, \
         max_parallel_requests = $12, metadata = $13::jsonb, updated_at = $14 \
         WHERE user_id = $15 RETURNING ",
        columns_pg!()
    ),
    delete: "DELETE FROM users WHERE user_id IN (SELECT jsonb_array_elements_text($1::jsonb)) \
             RETURNING user_id",
};

fn user_row(r: &impl ReadRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        user_id: r.text("user_id")?,
        user_email: r.opt_text("user_email")?,
        user_alias: r.opt_text("user_alias")?,
        user_role: r.text("user_role")?,
        teams: r.strings("teams")?,
        models: r.strings("models")?,
        max_budget_nanos: r.opt_int("max_budget_nanos")?,
        budget_duration: r.opt_text("budget_duration")?,
        spend_nanos: r.int("spend_nanos")?,
        tpm_limit: r.opt_int("tpm_limit")?,
        rpm_limit: r.opt_int("rpm_limit")?,
        max_parallel_requests: r.opt_int("max_parallel_requests")?,
        metadata: r.json("metadata")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

fn lower(email: &Option<String>) -> Option<String> {
    email.as_deref().map(str::to_lowercase)
}

/// Duplicate ids and (case-insensitively) duplicate emails become [`StoreError::Conflict`].
fn write_error(source: sqlx::Error, context: &'static str) -> StoreError {
    match violation(&source) {
        Some(Violation::Unique(detail)) if detail.contains("email") => StoreError::Conflict {
            what: "user_email".to_string(),
        },
        Some(Violation::Unique(_)) => StoreError::Conflict {
            what: "user_id".to_string(),
        },
        _ => StoreError::Query { context, source },
    }
}

impl Store {
    /// Creates a user. A taken `user_id`, or an email taken in any letter case, is a
    /// [`StoreError::Conflict`] naming `user_id` or `user_email`.
    pub async fn create_user(&self, user: &NewUser) -> Result<UserRow, StoreError> {
        let at = now();
        let row = on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let row = sqlx::query(q.insert)
                .bind(&user.user_id)
                .bind(&user.user_email)
                .bind(lower(&user.user_email))
                .bind(&user.user_alias)
                .bind(&user.user_role)
                .bind(json_strings(&user.teams))
                .bind(json_strings(&user.models))
                .bind(user.max_budget_nanos)
                .bind(&user.budget_duration)
                .bind(user.spend_nanos)
                .bind(user.tpm_limit)
                .bind(user.rpm_limit)
                .bind(user.max_parallel_requests)
                .bind(user.metadata.to_string())
                .bind(at)
                .bind(at)
                .fetch_one(pool)
                .await
                .map_err(|e| write_error(e, "creating a user"))?;
            user_row(&row)
        });
        row.context("decoding a user")
    }

    pub async fn get_user(&self, user_id: &str) -> Result<Option<UserRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.get)
                .bind(user_id)
                .fetch_optional(pool)
                .await
                .context("reading a user")?
                .map(|r| user_row(&r))
                .transpose()
        })
        .context("decoding a user")
    }

    /// The user with this email, in any letter case.
    pub async fn get_user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let email = email.to_lowercase();
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.get_by_email)
                .bind(&email)
                .fetch_optional(pool)
                .await
                .context("reading a user by email")?
                .map(|r| user_row(&r))
                .transpose()
        })
        .context("decoding a user")
    }

    /// For password login only: the user with this email (any letter case) and its password
    /// hash, if one is set.
    pub async fn get_login_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(UserRow, Option<String>)>, StoreError> {
        let email = email.to_lowercase();
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.login_by_email)
                .bind(&email)
                .fetch_optional(pool)
                .await
                .context("reading a login")?
                .map(|r| -> Result<_, sqlx::Error> {
                    Ok((user_row(&r)?, r.opt_text("password_hash")?))
                })
                .transpose()
        })
        .context("decoding a user")
    }

    /// The user's password hash; `None` when the user does not exist or has no password.
    pub async fn get_password_hash(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        let hash: Option<Option<String>> = on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query_scalar(q.password_hash)
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })
        .context("reading a password hash")?;
        Ok(hash.flatten())
    }

    /// Stores a new password hash; returns whether the user exists.
    pub async fn set_password_hash(&self, user_id: &str, hash: &str) -> Result<bool, StoreError> {
        let done = on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.set_password_hash)
                .bind(hash)
                .bind(now())
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .context("storing a password hash")?;
        Ok(done > 0)
    }

    /// One page of the users matching `filter`, oldest first, and how many match in all.
    pub async fn list_users(&self, filter: &UserFilter) -> Result<(Vec<UserRow>, i64), StoreError> {
        let email = filter
            .email_contains
            .as_deref()
            .map(|e| like_contains(&e.to_lowercase()));
        let ids = filter.user_ids.as_deref().map(json_strings);
        let (limit, offset) = limit_offset(filter.page, filter.page_size);
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let rows = sqlx::query(q.list)
                .bind(&filter.role)
                .bind(&email)
                .bind(&ids)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await
                .context("listing users")?;
            let total: i64 = sqlx::query_scalar(q.count)
                .bind(&filter.role)
                .bind(&email)
                .bind(&ids)
                .fetch_one(pool)
                .await
                .context("counting users")?;
            let users = rows
                .iter()
                .map(user_row)
                .collect::<Result<Vec<_>, _>>()
                .context("decoding a user")?;
            Ok((users, total))
        })
    }

    /// Applies `patch` in one transaction and returns the user as it was and as it is now;
    /// `None` when there is no such user. An email taken by another user is a `Conflict`.
    pub async fn update_user(
        &self,
        user_id: &str,
        patch: &UserPatch,
    ) -> Result<Option<(UserRow, UserRow)>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let mut tx = pool.begin_write().await.context("starting a user update")?;
            let before = sqlx::query(q.lock)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .context("reading a user")?
                .map(|r| user_row(&r))
                .transpose()
                .context("decoding a user")?;
            let Some(before) = before else {
                return Ok(None);
            };
            let next = patch.apply(&before);
            let row = sqlx::query(q.update)
                .bind(&next.user_email)
                .bind(lower(&next.user_email))
                .bind(&next.user_alias)
                .bind(&next.user_role)
                .bind(json_strings(&next.teams))
                .bind(json_strings(&next.models))
                .bind(next.max_budget_nanos)
                .bind(&next.budget_duration)
                .bind(next.spend_nanos)
                .bind(next.tpm_limit)
                .bind(next.rpm_limit)
                .bind(next.max_parallel_requests)
                .bind(next.metadata.to_string())
                .bind(now())
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| write_error(e, "updating a user"))?;
            let after = user_row(&row).context("decoding a user")?;
            tx.commit().await.context("committing a user update")?;
            Ok(Some((before, after)))
        })
    }

    /// Deletes the users, and with them their invitations, sessions and team memberships.
    /// Returns the ids that existed, in the order given.
    pub async fn delete_users(&self, user_ids: &[String]) -> Result<Vec<String>, StoreError> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = json_strings(user_ids);
        let deleted: Vec<String> = on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query_scalar(q.delete)
                .bind(&ids)
                .fetch_all(pool)
                .await
        })
        .context("deleting users")?;
        Ok(in_given_order(user_ids, &deleted))
    }
}
