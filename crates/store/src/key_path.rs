//! What a call through a virtual key needs of the key and of everyone it answers to (its user,
//! its team, and the user's membership of that team), read in one statement. A key cache miss
//! is on a caller's path: one round trip and the few columns the checks use, instead of four
//! whole rows (metadata, timestamps, a user's team list) decoded and thrown away.

use chrono::{DateTime, Utc};

use crate::connect::Store;
use crate::db::{on_backend, ReadRow};
use crate::error::{QueryContext, StoreError};

/// Spend, budget and rate limits of one owner on a key's path. Money is in nanodollars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathLimits {
    pub spend_nanos: i64,
    pub max_budget_nanos: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
}

/// The key's user, when the key names one that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathUser {
    pub user_role: String,
    pub models: Vec<String>,
    pub limits: PathLimits,
}

/// The key's team, when the key names one that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTeam {
    pub models: Vec<String>,
    pub blocked: bool,
    pub limits: PathLimits,
}

/// The key's user as a member of the key's team (LiteLLM's `max_budget_in_team`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMember {
    pub spend_nanos: i64,
    pub max_budget_in_team_nanos: Option<i64>,
}

/// A key with what it answers to. `user_id`/`team_id` are the key's own columns: a key may
/// name a user or team that is gone, and then `user`/`team` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    pub token: String,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    /// Empty means "inherit" (team, then user, then all models).
    pub models: Vec<String>,
    pub soft_budget_nanos: Option<i64>,
    pub expires: Option<DateTime<Utc>>,
    pub blocked: bool,
    pub limits: PathLimits,
    pub user: Option<PathUser>,
    pub team: Option<PathTeam>,
    pub member: Option<PathMember>,
}

macro_rules! path_query {
    ($models:literal, $u_models:literal, $t_models:literal) => {
        concat!(
            "SELECT k.token, k.key_alias, k.user_id, k.team_id, ",
            $models,
            ", k.soft_budget_nanos, k.expires, k.blocked, \
             k.spend_nanos, k.max_budget_nanos, k.rpm_limit, k.tpm_limit, k.max_parallel_requests, \
             u.user_id AS u_id, u.user_role AS u_role, ",
            $u_models,
            ", u.spend_nanos AS u_spend_nanos, u.max_budget_nanos AS u_max_budget_nanos, \
             u.rpm_limit AS u_rpm_limit, u.tpm_limit AS u_tpm_limit, \
             u.max_parallel_requests AS u_max_parallel_requests, \
             t.team_id AS t_id, ",
            $t_models,
            ", t.blocked AS t_blocked, t.spend_nanos AS t_spend_nanos, \
             t.max_budget_nanos AS t_max_budget_nanos, t.rpm_limit AS t_rpm_limit, \
             t.tpm_limit AS t_tpm_limit, t.max_parallel_requests AS t_max_parallel_requests, \
             m.user_id AS m_id, m.spend_nanos AS m_spend_nanos, \
             m.max_budget_in_team_nanos AS m_max_budget_in_team_nanos \
             FROM verification_tokens AS k \
             LEFT JOIN users AS u ON u.user_id = k.user_id \
             LEFT JOIN teams AS t ON t.team_id = k.team_id \
             LEFT JOIN team_members AS m ON m.team_id = k.team_id AND m.user_id = k.user_id \
             WHERE k.token = $1"
        )
    };
}

const SQLITE: &str = path_query!("k.models", "u.models AS u_models", "t.models AS t_models");
const POSTGRES: &str = path_query!(
    "k.models::text AS models",
    "u.models::text AS u_models",
    "t.models::text AS t_models"
);

/// Where one owner's limits are in the joined row.
struct LimitColumns {
    spend: &'static str,
    budget: &'static str,
    rpm: &'static str,
    tpm: &'static str,
    parallel: &'static str,
}

const KEY: LimitColumns = LimitColumns {
    spend: "spend_nanos",
    budget: "max_budget_nanos",
    rpm: "rpm_limit",
    tpm: "tpm_limit",
    parallel: "max_parallel_requests",
};
const USER: LimitColumns = LimitColumns {
    spend: "u_spend_nanos",
    budget: "u_max_budget_nanos",
    rpm: "u_rpm_limit",
    tpm: "u_tpm_limit",
    parallel: "u_max_parallel_requests",
};
const TEAM: LimitColumns = LimitColumns {
    spend: "t_spend_nanos",
    budget: "t_max_budget_nanos",
    rpm: "t_rpm_limit",
    tpm: "t_tpm_limit",
    parallel: "t_max_parallel_requests",
};

fn limits(r: &impl ReadRow, c: &LimitColumns) -> Result<PathLimits, sqlx::Error> {
    Ok(PathLimits {
        spend_nanos: r.int(c.spend)?,
        max_budget_nanos: r.opt_int(c.budget)?,
        rpm_limit: r.opt_int(c.rpm)?,
        tpm_limit: r.opt_int(c.tpm)?,
        max_parallel_requests: r.opt_int(c.parallel)?,
    })
}

fn key_path(r: &impl ReadRow) -> Result<KeyPath, sqlx::Error> {
    // A joined row's columns are NULL when there is nothing to join; its id says which.
    let user = match r.opt_text("u_id")? {
        Some(_) => Some(PathUser {
            user_role: r.text("u_role")?,
            models: r.strings("u_models")?,
            limits: limits(r, &USER)?,
        }),
        None => None,
    };
    let team = match r.opt_text("t_id")? {
        Some(_) => Some(PathTeam {
            models: r.strings("t_models")?,
            blocked: r.flag("t_blocked")?,
            limits: limits(r, &TEAM)?,
        }),
        None => None,
    };
    let member = match r.opt_text("m_id")? {
        Some(_) => Some(PathMember {
            spend_nanos: r.int("m_spend_nanos")?,
            max_budget_in_team_nanos: r.opt_int("m_max_budget_in_team_nanos")?,
        }),
        None => None,
    };
    Ok(KeyPath {
        token: r.text("token")?,
        key_alias: r.opt_text("key_alias")?,
        user_id: r.opt_text("user_id")?,
        team_id: r.opt_text("team_id")?,
        models: r.strings("models")?,
        soft_budget_nanos: r.opt_int("soft_budget_nanos")?,
        expires: r.opt_time("expires")?,
        blocked: r.flag("blocked")?,
        limits: limits(r, &KEY)?,
        user,
        team,
        member,
    })
}

impl Store {
    /// The key with this token hash and what it answers to, as one consistent read.
    pub async fn get_key_path(&self, token_hash: &str) -> Result<Option<KeyPath>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q)
                .bind(token_hash)
                .fetch_optional(pool)
                .await
                .context("reading a key and its owners")?
                .map(|r| key_path(&r))
                .transpose()
        })
        .context("decoding a key and its owners")
    }
}
