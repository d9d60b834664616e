//! Reports read straight from the call log, as LiteLLM's read its spend logs: spend per day by
//! team, end user or key with each model's share (`/global/spend/report` and the scoped
//! `/…/spend/report` routes), spend per end user, the end users and tags seen, and the admin's
//! reset of key and team spend.

use chrono::{DateTime, NaiveDate, Utc};

use super::{parse_day, Arg, Where};
use crate::connect::{Backend, Store};
use crate::db::{on_backend, ReadRow, WritePool};
use crate::error::{QueryContext, StoreError};

/// Which calls a report covers: started in `[from, to)`, narrowed by any filter set.
#[derive(Debug, Clone)]
pub struct ReportFilter {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The key's SHA-256 (as stored).
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub end_user: Option<String>,
}

impl ReportFilter {
    fn clauses(&self) -> Where {
        let mut w = Where::default();
        w.push("start_time >= {}", Arg::Time(self.from));
        w.push("start_time < {}", Arg::Time(self.to));
        for (col, v) in [
            ("api_key", &self.api_key),
            ("user_id", &self.user_id),
            ("team_id", &self.team_id),
            ("end_user", &self.end_user),
        ] {
            if let Some(v) = v {
                w.push(&format!("{col} = {{}}"), Arg::Text(v.clone()));
            }
        }
        w
    }
}

/// Calls summed per UTC day, team, end user, model and key.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub day: NaiveDate,
    pub team_id: Option<String>,
    pub end_user: Option<String>,
    /// The model the provider served (`model`), as LiteLLM's reports name it.
    pub model: String,
    pub api_key: String,
    pub spend_nanos: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// Spend and calls of one end user (`None`: calls that named none).
#[derive(Debug, Clone, PartialEq)]
pub struct EndUserSpend {
    pub end_user: Option<String>,
    pub requests: i64,
    pub spend_nanos: i64,
}

const SQLITE_DAY: &str = "substr(start_time, 1, 10)";
const PG_DAY: &str = "to_char(start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD')";

fn read_report_row<R: ReadRow>(r: &R) -> Result<ReportRow, sqlx::Error> {
    Ok(ReportRow {
        day: parse_day(&r.text("day")?)?,
        team_id: r.opt_text("team_id")?,
        end_user: r.opt_text("end_user")?,
        model: r.text("model")?,
        api_key: r.text("api_key")?,
        spend_nanos: r.int("spend_nanos")?,
        prompt_tokens: r.int("prompt_tokens")?,
        completion_tokens: r.int("completion_tokens")?,
    })
}

fn read_end_user<R: ReadRow>(r: &R) -> Result<EndUserSpend, sqlx::Error> {
    Ok(EndUserSpend {
        end_user: r.opt_text("end_user")?,
        requests: r.int("n")?,
        spend_nanos: r.int("spend_nanos")?,
    })
}

impl Store {
    fn log_day(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite(_) => SQLITE_DAY,
            Backend::Postgres(_) => PG_DAY,
        }
    }

    /// The calls of `filter`, summed per day, team, end user, model and key, by day then
    /// highest spend first.
    pub async fn spend_report_rows(
        &self,
        filter: &ReportFilter,
    ) -> Result<Vec<ReportRow>, StoreError> {
        let w = filter.clauses();
        let sql = format!(
            "SELECT {day} AS day, team_id, end_user, model, api_key, \
             CAST(SUM(spend_nanos) AS BIGINT) AS spend_nanos, \
             CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
             CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens \
             FROM spend_logs{} GROUP BY 1, team_id, end_user, model, api_key \
             ORDER BY 1, spend_nanos DESC, api_key, model, team_id IS NULL, team_id, \
             end_user IS NULL, end_user",
            w.sql(),
            day = self.log_day(),
        );
        fetch_rows!(
            self,
            &sql,
            &w.args,
            read_report_row,
            "summing a spend report"
        )
    }

    /// Spend and calls per end user over `[from, to)`, optionally of one key, highest spend
    /// first, at most `limit`.
    pub async fn spend_by_end_user(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        api_key: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EndUserSpend>, StoreError> {
        let filter = ReportFilter {
            from,
            to,
            api_key: api_key.map(str::to_string),
            user_id: None,
            team_id: None,
            end_user: None,
        };
        let mut w = filter.clauses();
        let limit_at = w.next_placeholder();
        let sql = format!(
            "SELECT end_user, COUNT(*) AS n, CAST(SUM(spend_nanos) AS BIGINT) AS spend_nanos \
             FROM spend_logs{} GROUP BY end_user \
             ORDER BY spend_nanos DESC, end_user IS NULL, end_user LIMIT {limit_at}",
            w.sql()
        );
        w.args.push(Arg::Int(i64::from(limit)));
        fetch_rows!(
            self,
            &sql,
            &w.args,
            read_end_user,
            "summing spend per end user"
        )
    }

    /// Every end user that appears in the log, by byte order (`None` last, once, when some
    /// calls named none).
    pub async fn end_users(&self) -> Result<Vec<Option<String>>, StoreError> {
        let sql = "SELECT end_user FROM spend_logs GROUP BY end_user";
        let mut users: Vec<Option<String>> = on_backend!(self, ((), ()), |pool, _q| {
            sqlx::query_scalar(sql)
                .fetch_all(pool)
                .await
                .context("listing end users")
        })?;
        // Sorted here: PostgreSQL's collation and SQLite's byte order disagree on mixed case.
        users.sort_by(|a, b| match (a, b) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        Ok(users)
    }

    /// Sets every key's and team's spend to 0 (users' spend is kept, as LiteLLM keeps it);
    /// returns the keys and teams that had spent something, which other counters must forget.
    pub async fn reset_key_and_team_spend(&self) -> Result<(Vec<String>, Vec<String>), StoreError> {
        const KEYS: &str = "UPDATE verification_tokens SET spend_nanos = 0 \
            WHERE spend_nanos <> 0 RETURNING token";
        const TEAMS: &str = "UPDATE teams SET spend_nanos = 0 WHERE spend_nanos <> 0 \
            RETURNING team_id";
        on_backend!(self, ((), ()), |pool, _q| {
            let mut tx = pool.begin_write().await.context("starting a spend reset")?;
            let keys: Vec<String> = sqlx::query_scalar(KEYS)
                .fetch_all(&mut *tx)
                .await
                .context("resetting key spend")?;
            let teams: Vec<String> = sqlx::query_scalar(TEAMS)
                .fetch_all(&mut *tx)
                .await
                .context("resetting team spend")?;
            tx.commit().await.context("committing a spend reset")?;
            Ok((keys, teams))
        })
    }
}
