//! Budget periods: keys, users and teams with a `budget_duration` get their spend set to 0 when
//! `budget_reset_at` passes, and the next reset moves forward (snapped to the calendar). Rows
//! given a duration without a reset time are scheduled first. Each reset is a compare-and-set on
//! the old `budget_reset_at`, so two instances running the job never reset a budget twice.

use chrono::{DateTime, Utc};
use tollgate_domain::duration::next_reset;

use crate::connect::Store;
use crate::db::{on_backend, ReadRow};
use crate::error::{QueryContext, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetOwnerKind {
    Key,
    User,
    Team,
}

/// A budget whose period ended: its spend is now 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetReset {
    pub kind: BudgetOwnerKind,
    /// The key's hash, the user id or the team id.
    pub id: String,
    pub next_reset_at: DateTime<Utc>,
}

struct Table {
    kind: BudgetOwnerKind,
    due: &'static str,
    schedule: &'static str,
    reset: &'static str,
}

macro_rules! table {
    ($kind:expr, $t:literal, $id:literal) => {
        Table {
            kind: $kind,
            due: concat!(
                "SELECT ", $id, " AS id, budget_duration, budget_reset_at FROM ", $t,
                " WHERE budget_duration IS NOT NULL AND (budget_reset_at IS NULL OR budget_reset_at <= $1)"
            ),
            schedule: concat!(
                "UPDATE ", $t, " SET budget_reset_at = $1 WHERE ", $id,
                " = $2 AND budget_reset_at IS NULL"
            ),
            reset: concat!(
                "UPDATE ", $t, " SET spend_nanos = 0, budget_reset_at = $1 WHERE ", $id,
                " = $2 AND budget_reset_at = $3"
            ),
        }
    };
}

/// Sets when a budget period ends, for rows carried over from another gateway with their own
/// schedule; `None` lets the reset job schedule one.
const SET_RESET_AT: [&str; 3] = [
    "UPDATE verification_tokens SET budget_reset_at = $1 WHERE token = $2",
    "UPDATE users SET budget_reset_at = $1 WHERE user_id = $2",
    "UPDATE teams SET budget_reset_at = $1 WHERE team_id = $2",
];

const TABLES: [Table; 3] = [
    table!(BudgetOwnerKind::Key, "verification_tokens", "token"),
    table!(BudgetOwnerKind::User, "users", "user_id"),
    table!(BudgetOwnerKind::Team, "teams", "team_id"),
];

struct Due {
    id: String,
    duration: String,
    reset_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Resets every budget whose period ended by `now` and schedules new ones. Returns the
    /// budgets that were reset, so in-process counters can follow.
    pub async fn reset_due_budgets(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<BudgetReset>, StoreError> {
        let mut done = Vec::new();
        for t in &TABLES {
            let due: Vec<Due> = on_backend!(self, ((), ()), |pool, _q| {
                let rows = sqlx::query(t.due)
                    .bind(now)
                    .fetch_all(pool)
                    .await
                    .context("finding budgets due for a reset")?;
                rows.iter()
                    .map(|r| {
                        Ok(Due {
                            id: r.text("id")?,
                            duration: r.text("budget_duration")?,
                            reset_at: r.opt_time("budget_reset_at")?,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .context("decoding budgets due for a reset")?
            });
            for d in due {
                // An unparseable duration (written before validation existed) never resets.
                let Some(next) = next_reset(&d.duration, now) else {
                    continue;
                };
                let changed = on_backend!(self, ((), ()), |pool, _q| {
                    match d.reset_at {
                        None => sqlx::query(t.schedule)
                            .bind(next)
                            .bind(&d.id)
                            .execute(pool)
                            .await
                            .context("scheduling a budget reset")?,
                        Some(old) => sqlx::query(t.reset)
                            .bind(next)
                            .bind(&d.id)
                            .bind(old)
                            .execute(pool)
                            .await
                            .context("resetting a budget")?,
                    }
                    .rows_affected()
                });
                if changed == 1 && d.reset_at.is_some() {
                    done.push(BudgetReset {
                        kind: t.kind,
                        id: d.id,
                        next_reset_at: next,
                    });
                }
            }
        }
        Ok(done)
    }

    /// Sets the end of a key's, user's or team's current budget period; returns whether the row
    /// exists.
    pub async fn set_budget_reset_at(
        &self,
        kind: BudgetOwnerKind,
        id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let sql = match kind {
            BudgetOwnerKind::Key => SET_RESET_AT[0],
            BudgetOwnerKind::User => SET_RESET_AT[1],
            BudgetOwnerKind::Team => SET_RESET_AT[2],
        };
        let changed = on_backend!(self, ((), ()), |pool, _q| {
            sqlx::query(sql)
                .bind(at)
                .bind(id)
                .execute(pool)
                .await
                .context("setting a budget reset time")?
                .rows_affected()
        });
        Ok(changed == 1)
    }
}
