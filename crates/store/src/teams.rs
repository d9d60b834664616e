//! Teams and their members. Membership lives in `team_members`; each member's `users.teams`
//! list is kept in step in the same transaction, as LiteLLM keeps both.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::connect::Store;
use crate::db::{in_given_order, json_strings, now, on_backend, ReadRow, WritePool};
use crate::error::{violation, QueryContext, StoreError, Violation};

#[derive(Debug, Clone, PartialEq)]
pub struct TeamRow {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub models: Vec<String>,
    pub max_budget_nanos: Option<i64>,
    pub budget_duration: Option<String>,
    pub spend_nanos: i64,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub blocked: bool,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A team to create. Start from [`NewTeam::new`] and set what differs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTeam {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub models: Vec<String>,
    pub max_budget_nanos: Option<i64>,
    pub budget_duration: Option<String>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub blocked: bool,
    pub metadata: Value,
}

impl NewTeam {
    /// An unblocked team with no alias, no limits, no models and empty metadata.
    pub fn new(team_id: impl Into<String>) -> NewTeam {
        NewTeam {
            team_id: team_id.into(),
            team_alias: None,
            models: Vec::new(),
            max_budget_nanos: None,
            budget_duration: None,
            tpm_limit: None,
            rpm_limit: None,
            max_parallel_requests: None,
            blocked: false,
            metadata: Value::Object(Default::default()),
        }
    }
}

/// Changes to a team. `None` leaves a field unchanged; for nullable fields `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamPatch {
    pub team_alias: Option<Option<String>>,
    pub models: Option<Vec<String>>,
    pub max_budget_nanos: Option<Option<i64>>,
    pub budget_duration: Option<Option<String>>,
    pub spend_nanos: Option<i64>,
    pub tpm_limit: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i64>>,
    pub max_parallel_requests: Option<Option<i64>>,
    pub blocked: Option<bool>,
    pub metadata: Option<Value>,
}

impl TeamPatch {
    fn apply(&self, before: &TeamRow) -> TeamRow {
        let p = self.clone();
        let b = before.clone();
        TeamRow {
            team_alias: p.team_alias.unwrap_or(b.team_alias),
            models: p.models.unwrap_or(b.models),
            max_budget_nanos: p.max_budget_nanos.unwrap_or(b.max_budget_nanos),
            budget_duration: p.budget_duration.unwrap_or(b.budget_duration),
            spend_nanos: p.spend_nanos.unwrap_or(b.spend_nanos),
            tpm_limit: p.tpm_limit.unwrap_or(b.tpm_limit),
            rpm_limit: p.rpm_limit.unwrap_or(b.rpm_limit),
            max_parallel_requests: p.max_parallel_requests.unwrap_or(b.max_parallel_requests),
            blocked: p.blocked.unwrap_or(b.blocked),
            metadata: p.metadata.unwrap_or(b.metadata),
            ..b
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TeamMemberRow {
    pub team_id: String,
    pub user_id: String,
    /// `admin` or `user`.
    pub role: String,
    pub max_budget_in_team_nanos: Option<i64>,
    pub spend_nanos: i64,
}

macro_rules! columns {
    () => {
        "team_id, team_alias, models, max_budget_nanos, budget_duration, spend_nanos, tpm_limit, \
         rpm_limit, max_parallel_requests, blocked, metadata, created_at, updated_at"
    };
}

macro_rules! columns_pg {
    () => {
        "team_id, team_alias, models::text AS models, max_budget_nanos, budget_duration, \
         spend_nanos, tpm_limit, rpm_limit, max_parallel_requests, blocked, \
         metadata::text AS metadata, created_at, updated_at"
    };
}

macro_rules! insert_head {
    () => {
        "INSERT INTO teams (team_id, team_alias, models, max_budget_nanos, budget_duration, \
         tpm_limit, rpm_limit, max_parallel_requests, blocked, metadata, created_at, updated_at) \
         VALUES "
    };
}

macro_rules! member_columns {
    () => {
        "team_id, user_id, role, max_budget_in_team_nanos, spend_nanos"
    };
}

struct Queries {
    insert: &'static str,
    get: &'static str,
    list: &'static str,
    lock: &'static str,
    update: &'static str,
    /// Removes the given team ids from every user's `teams` list.
    strip_teams: &'static str,
    delete: &'static str,
    team_exists: &'static str,
    add_member: &'static str,
    /// Appends a team id to one user's `teams` list unless it is there already.
    append_team: &'static str,
    /// Removes a team id from one user's `teams` list.
    strip_team: &'static str,
    update_role: &'static str,
    set_budget: &'static str,
    set_member_spend: &'static str,
    remove_member: &'static str,
    members: &'static str,
    member: &'static str,
    teams_of_user: &'static str,
}

// SQLite statements with many parameters use plain `?`: sqlx looks `$N` names up one by one.
const SQLITE: Queries = Queries {
    insert: concat!(
        insert_head!(),
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
        columns!()
    ),
    get: concat!("SELECT ", columns!(), " FROM teams WHERE team_id = $1"),
    list: concat!(
        "SELECT ",
        columns!(),
        " FROM teams WHERE ($1 IS NULL OR team_id IN \
         (SELECT team_id FROM team_members WHERE user_id = $1)) ORDER BY created_at, team_id"
    ),
    lock: concat!("SELECT ", columns!(), " FROM teams WHERE team_id = $1"),
    update: concat!(
        "UPDATE teams SET team_alias = ?, models = ?, max_budget_nanos = ?, budget_duration = ?, \
         spend_nanos = ?, tpm_limit = ?, rpm_limit = ?, max_parallel_requests = ?, blocked = ?, \
         metadata = ?, updated_at = ? WHERE team_id = ? RETURNING ",
        columns!()
    ),
    strip_teams: "UPDATE users SET teams = (SELECT json_group_array(t.value) \
                  FROM json_each(users.teams) AS t \
                  WHERE t.value NOT IN (SELECT d.value FROM json_each($1) AS d)) \
                  WHERE EXISTS (SELECT 1 FROM json_each(users.teams) AS t \
                  WHERE t.value IN (SELECT d.value FROM json_each($1) AS d))",
    delete: "DELETE FROM teams WHERE team_id IN (SELECT value FROM json_each($1)) \
             RETURNING team_id",
    team_exists: "SELECT COUNT(*) FROM teams WHERE team_id = $1",
    add_member: concat!(
        "INSERT INTO team_members (team_id, user_id, role, max_budget_in_team_nanos) \
         VALUES ($1, $2, $3, $4) RETURNING ",
        member_columns!()
    ),
    append_team: "UPDATE users SET teams = json_insert(teams, '$[#]', $1) WHERE user_id = $2 \
                  AND NOT EXISTS (SELECT 1 FROM json_each(users.teams) AS t WHERE t.value = $1)",
    strip_team: "UPDATE users SET teams = (SELECT json_group_array(t.value) \
                 FROM json_each(users.teams) AS t WHERE t.value <> $1) WHERE user_id = $2",
    update_role: concat!(
        "UPDATE team_members SET role = $1 WHERE team_id = $2 AND user_id = $3 RETURNING ",
        member_columns!()
    ),
    set_budget: concat!(
        "UPDATE team_members SET max_budget_in_team_nanos = $1 \
         WHERE team_id = $2 AND user_id = $3 RETURNING ",
        member_columns!()
    ),
    set_member_spend:
        "UPDATE team_members SET spend_nanos = $1 WHERE team_id = $2 AND user_id = $3",
    remove_member: "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2",
    members: concat!(
        "SELECT ",
        member_columns!(),
        " FROM team_members WHERE team_id = $1 ORDER BY user_id"
    ),
    member: concat!(
        "SELECT ",
        member_columns!(),
        " FROM team_members WHERE team_id = $1 AND user_id = $2"
    ),
    teams_of_user: "SELECT team_id, role FROM team_members WHERE user_id = $1 ORDER BY team_id",
};

const POSTGRES: Queries = Queries {
    insert: concat!(
        insert_head!(),
        "($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12) RETURNING ",
        columns_pg!()
    ),
    get: concat!("SELECT ", columns_pg!(), " FROM teams WHERE team_id = $1"),
    list: concat!(
        "SELECT ",
        columns_pg!(),
        " FROM teams WHERE ($1::text IS NULL OR team_id IN \
         (SELECT team_id FROM team_members WHERE user_id = $1)) ORDER BY created_at, team_id"
    ),
    // Holds the row until commit so a concurrent update cannot slip between before and after.
    lock: concat!(
        "SELECT ",
        columns_pg!(),
        " FROM teams WHERE team_id = $1 FOR UPDATE"
    ),
    update: concat!(
        "UPDATE teams SET team_alias = $1, models = $2::jsonb, max_budget_nanos = $3, \
         budget_duration = $4, spend_nanos = $5, tpm_limit = $6, rpm_limit = $7, \
         max_parallel_requests = $8, blocked = $9, metadata = $10::jsonb, updated_at = $11 \
         WHERE team_id = $12 RETURNING ",
        columns_pg!()
    ),
    strip_teams:
        "UPDATE users SET teams = teams - ARRAY(SELECT jsonb_array_elements_text($1::jsonb)) \
                  WHERE teams ?| ARRAY(SELECT jsonb_array_elements_text($1::jsonb))",
    delete: "DELETE FROM teams WHERE team_id IN (SELECT jsonb_array_elements_text($1::jsonb)) \
             RETURNING team_id",
    team_exists: "SELECT COUNT(*) FROM teams WHERE team_id = $1",
    add_member: concat!(
        "INSERT INTO team_members (team_id, user_id, role, max_budget_in_team_nanos) \
         VALUES ($1, $2, $3, $4) RETURNING ",
        member_columns!()
    ),
    append_team: "UPDATE users SET teams = teams || jsonb_build_array($1::text) \
                  WHERE user_id = $2 AND NOT teams @> jsonb_build_array($1::text)",
    strip_team: "UPDATE users SET teams = teams - $1::text WHERE user_id = $2",
    update_role: concat!(
        "UPDATE team_members SET role = $1 WHERE team_id = $2 AND user_id = $3 RETURNING ",
        member_columns!()
    ),
    set_budget: concat!(
        "UPDATE team_members SET max_budget_in_team_nanos = $1 \
         WHERE team_id = $2 AND user_id = $3 RETURNING ",
        member_columns!()
    ),
    set_member_spend:
        "UPDATE team_members SET spend_nanos = $1 WHERE team_id = $2 AND user_id = $3",
    remove_member: "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2",
    members: concat!(
        "SELECT ",
        member_columns!(),
        " FROM team_members WHERE team_id = $1 ORDER BY user_id"
    ),
    member: concat!(
        "SELECT ",
        member_columns!(),
        " FROM team_members WHERE team_id = $1 AND user_id = $2"
    ),
    teams_of_user: "SELECT team_id, role FROM team_members WHERE user_id = $1 ORDER BY team_id",
};

fn team_row(r: &impl ReadRow) -> Result<TeamRow, sqlx::Error> {
    Ok(TeamRow {
        team_id: r.text("team_id")?,
        team_alias: r.opt_text("team_alias")?,
        models: r.strings("models")?,
        max_budget_nanos: r.opt_int("max_budget_nanos")?,
        budget_duration: r.opt_text("budget_duration")?,
        spend_nanos: r.int("spend_nanos")?,
        tpm_limit: r.opt_int("tpm_limit")?,
        rpm_limit: r.opt_int("rpm_limit")?,
        max_parallel_requests: r.opt_int("max_parallel_requests")?,
        blocked: r.flag("blocked")?,
        metadata: r.json("metadata")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

fn member_row(r: &impl ReadRow) -> Result<TeamMemberRow, sqlx::Error> {
    Ok(TeamMemberRow {
        team_id: r.text("team_id")?,
        user_id: r.text("user_id")?,
        role: r.text("role")?,
        max_budget_in_team_nanos: r.opt_int("max_budget_in_team_nanos")?,
        spend_nanos: r.int("spend_nanos")?,
    })
}

impl Store {
    /// Creates a team; a taken `team_id` is a [`StoreError::Conflict`].
    pub async fn create_team(&self, team: &NewTeam) -> Result<TeamRow, StoreError> {
        let at = now();
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let row = sqlx::query(q.insert)
                .bind(&team.team_id)
                .bind(&team.team_alias)
                .bind(json_strings(&team.models))
                .bind(team.max_budget_nanos)
                .bind(&team.budget_duration)
                .bind(team.tpm_limit)
                .bind(team.rpm_limit)
                .bind(team.max_parallel_requests)
                .bind(team.blocked)
                .bind(team.metadata.to_string())
                .bind(at)
                .bind(at)
                .fetch_one(pool)
                .await
                .map_err(|source| match violation(&source) {
                    Some(Violation::Unique(_)) => StoreError::Conflict {
                        what: "team_id".to_string(),
                    },
                    _ => StoreError::Query {
                        context: "creating a team",
                        source,
                    },
                })?;
            team_row(&row)
        })
        .context("decoding a team")
    }

    pub async fn get_team(&self, team_id: &str) -> Result<Option<TeamRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.get)
                .bind(team_id)
                .fetch_optional(pool)
                .await
                .context("reading a team")?
                .map(|r| team_row(&r))
                .transpose()
        })
        .context("decoding a team")
    }

    /// All teams, or only those `member` belongs to, oldest first.
    pub async fn list_teams(&self, member: Option<&str>) -> Result<Vec<TeamRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.list)
                .bind(member)
                .fetch_all(pool)
                .await
                .context("listing teams")?
                .iter()
                .map(team_row)
                .collect::<Result<Vec<_>, _>>()
        })
        .context("decoding a team")
    }

    /// Applies `patch` in one transaction and returns the team as it was and as it is now;
    /// `None` when there is no such team.
    pub async fn update_team(
        &self,
        team_id: &str,
        patch: &TeamPatch,
    ) -> Result<Option<(TeamRow, TeamRow)>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let mut tx = pool.begin_write().await.context("starting a team update")?;
            let before = sqlx::query(q.lock)
                .bind(team_id)
                .fetch_optional(&mut *tx)
                .await
                .context("reading a team")?
                .map(|r| team_row(&r))
                .transpose()
                .context("decoding a team")?;
            let Some(before) = before else {
                return Ok(None);
            };
            let next = patch.apply(&before);
            let row = sqlx::query(q.update)
                .bind(&next.team_alias)
                .bind(json_strings(&next.models))
                .bind(next.max_budget_nanos)
                .bind(&next.budget_duration)
                .bind(next.spend_nanos)
                .bind(next.tpm_limit)
                .bind(next.rpm_limit)
                .bind(next.max_parallel_requests)
                .bind(next.blocked)
                .bind(next.metadata.to_string())
                .bind(now())
                .bind(team_id)
                .fetch_one(&mut *tx)
                .await
                .context("updating a team")?;
            let after = team_row(&row).context("decoding a team")?;
            tx.commit().await.context("committing a team update")?;
            Ok(Some((before, after)))
        })
    }

    /// Deletes the teams with their memberships, and takes them off their members' `teams`
    /// lists. Returns the ids that existed, in the order given.
    pub async fn delete_teams(&self, team_ids: &[String]) -> Result<Vec<String>, StoreError> {
        if team_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = json_strings(team_ids);
        let deleted: Vec<String> = on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let mut tx = pool.begin_write().await.context("starting a team delete")?;
            sqlx::query(q.strip_teams)
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .context("removing teams from users")?;
            let deleted = sqlx::query_scalar(q.delete)
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await
                .context("deleting teams")?;
            tx.commit().await.context("committing a team delete")?;
            deleted
        });
        Ok(in_given_order(team_ids, &deleted))
    }

    /// Adds a user to a team with `role` (`admin` or `user`). Already a member is a
    /// `Conflict`; an unknown team or user is [`StoreError::NotFound`] naming which.
    pub async fn add_member(
        &self,
        team_id: &str,
        user_id: &str,
        role: &str,
        max_budget_in_team_nanos: Option<i64>,
    ) -> Result<TeamMemberRow, StoreError> {
        let added = on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let mut tx = pool.begin_write().await.context("starting a member add")?;
            let row = sqlx::query(q.add_member)
                .bind(team_id)
                .bind(user_id)
                .bind(role)
                .bind(max_budget_in_team_nanos)
                .fetch_one(&mut *tx)
                .await;
            match row {
                Ok(row) => {
                    sqlx::query(q.append_team)
                        .bind(team_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await
                        .context("adding a team to a user")?;
                    let member = member_row(&row).context("decoding a team member")?;
                    tx.commit().await.context("committing a member add")?;
                    Ok(member)
                }
                Err(e) => Err(e),
            }
        });
        match added {
            Ok(member) => Ok(member),
            Err(source) => match violation(&source) {
                Some(Violation::Unique(_)) => Err(StoreError::Conflict {
                    what: "team member".to_string(),
                }),
                Some(Violation::ForeignKey) => {
                    // The transaction is gone (PostgreSQL refuses further statements in it);
                    // look up which side is missing outside it.
                    let what = if self.team_exists(team_id).await? {
                        "user"
                    } else {
                        "team"
                    };
                    Err(StoreError::NotFound {
                        what: what.to_string(),
                    })
                }
                None => Err(StoreError::Query {
                    context: "adding a team member",
                    source,
                }),
            },
        }
    }

    async fn team_exists(&self, team_id: &str) -> Result<bool, StoreError> {
        let n: i64 = on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query_scalar(q.team_exists)
                .bind(team_id)
                .fetch_one(pool)
                .await
        })
        .context("checking a team exists")?;
        Ok(n > 0)
    }

    /// Sets a member's role; `None` when the user is not a member of the team.
    pub async fn update_member_role(
        &self,
        team_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<Option<TeamMemberRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.update_role)
                .bind(role)
                .bind(team_id)
                .bind(user_id)
                .fetch_optional(pool)
                .await
                .context("updating a member's role")?
                .map(|r| member_row(&r))
                .transpose()
        })
        .context("decoding a team member")
    }

    /// Sets (or clears) a member's budget within the team; `None` when not a member.
    pub async fn set_member_budget(
        &self,
        team_id: &str,
        user_id: &str,
        max_budget_in_team_nanos: Option<i64>,
    ) -> Result<Option<TeamMemberRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.set_budget)
                .bind(max_budget_in_team_nanos)
                .bind(team_id)
                .bind(user_id)
                .fetch_optional(pool)
                .await
                .context("updating a member's budget")?
                .map(|r| member_row(&r))
                .transpose()
        })
        .context("decoding a team member")
    }

    /// Sets a member's spend within the team (an import carrying it over); whether they are a
    /// member.
    pub async fn set_member_spend(
        &self,
        team_id: &str,
        user_id: &str,
        spend_nanos: i64,
    ) -> Result<bool, StoreError> {
        let done = on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.set_member_spend)
                .bind(spend_nanos)
                .bind(team_id)
                .bind(user_id)
                .execute(pool)
                .await
                .context("setting a member's spend")?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// Removes a user from a team (and the team from the user's `teams` list); returns
    /// whether they were a member.
    pub async fn remove_member(&self, team_id: &str, user_id: &str) -> Result<bool, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let mut tx = pool
                .begin_write()
                .await
                .context("starting a member removal")?;
            let removed = sqlx::query(q.remove_member)
                .bind(team_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .context("removing a team member")?
                .rows_affected();
            sqlx::query(q.strip_team)
                .bind(team_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .context("removing a team from a user")?;
            tx.commit().await.context("committing a member removal")?;
            Ok(removed > 0)
        })
    }

    /// The team's members, by user id.
    pub async fn list_members(&self, team_id: &str) -> Result<Vec<TeamMemberRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.members)
                .bind(team_id)
                .fetch_all(pool)
                .await
                .context("listing team members")?
                .iter()
                .map(member_row)
                .collect::<Result<Vec<_>, _>>()
        })
        .context("decoding a team member")
    }

    /// One member of a team, `None` when the user is not a member.
    pub async fn get_member(
        &self,
        team_id: &str,
        user_id: &str,
    ) -> Result<Option<TeamMemberRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.member)
                .bind(team_id)
                .bind(user_id)
                .fetch_optional(pool)
                .await
                .context("reading a team member")?
                .map(|r| member_row(&r))
                .transpose()
        })
        .context("decoding a team member")
    }

    /// `(team_id, role)` for each team the user belongs to, by team id.
    pub async fn teams_of_user(&self, user_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query_as(q.teams_of_user)
                .bind(user_id)
                .fetch_all(pool)
                .await
        })
        .context("listing a user's teams")
    }
}
