//! Read side of spend: summaries from the daily aggregates (never a scan of the log), and the
//! log itself paged newest first by keyset on `(start_time, request_id)`.
//!
//! A summary reads the narrowest aggregate that has every column it filters or groups on (see
//! [`daily_source`]): `daily_spend_by_team_model` (a few hundred rows a day) for gateway-wide
//! and per-team totals and team/model/provider breakdowns, `daily_spend_by_key` for key
//! rankings, `daily_spend` (every dimension) for the rest.
//!
//! Every filter is a bound parameter; only fixed column and table names (and the status
//! literal, from its enum) are spliced into the SQL. Each filter combination has an index:
//! summaries use the primary key (day first) or `(user_id|team_id|api_key, day)`, log pages
//! `(scope column, start_time, request_id)`, failures a partial index of their own.

use chrono::{DateTime, NaiveDate, Utc};

use crate::connect::{Backend, Store};
use crate::db::{on_backend, ReadRow};
use crate::error::{QueryContext, StoreError};
use crate::spend::{day_text, pg_row, sqlite_row, SpendRecord, SpendStatus, SELECT_COLUMNS};

/// Whose spend: all `None` = the whole gateway. Fields combine with AND.
#[derive(Debug, Clone, Default)]
pub struct SpendScope {
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    /// The key's SHA-256 (as stored), never the plaintext.
    pub api_key: Option<String>,
}

/// What a breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendGroup {
    /// The public model name the caller used (`model_group`).
    Model,
    Key,
    Team,
    User,
}

impl SpendGroup {
    fn column(self) -> &'static str {
        match self {
            SpendGroup::Model => "model_group",
            SpendGroup::Key => "api_key",
            SpendGroup::Team => "team_id",
            SpendGroup::User => "user_id",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpendTotals {
    pub spend_nanos: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub requests: i64,
    pub successful_requests: i64,
    pub failed_requests: i64,
}

impl SpendTotals {
    pub fn total_tokens(&self) -> i64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DailySpend {
    pub day: NaiveDate,
    pub totals: SpendTotals,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpendBreakdown {
    /// model_group / api_key hash / team_id / user_id; "" when the call had none.
    pub name: String,
    pub totals: SpendTotals,
}

/// One day's totals for one value of a dimension (see [`Store::daily_spend_breakdown`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyBreakdown {
    pub day: NaiveDate,
    pub name: String,
    pub totals: SpendTotals,
}

/// Dimensions of the per-day breakdown; `Provider` exists only there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DailyDimension {
    Group(SpendGroup),
    Provider,
}

impl DailyDimension {
    fn column(self) -> &'static str {
        match self {
            DailyDimension::Group(g) => g.column(),
            DailyDimension::Provider => "custom_llm_provider",
        }
    }
}

/// One `daily_spend` row: a day's totals for one key, user, team, model and provider.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyActivityRow {
    pub day: NaiveDate,
    pub api_key: String,
    /// "" when the call had no user (likewise team and provider).
    pub user_id: String,
    pub team_id: String,
    pub model_group: String,
    pub custom_llm_provider: String,
    pub totals: SpendTotals,
}

#[derive(Debug, Clone, Default)]
pub struct SpendLogFilter {
    pub scope: SpendScope,
    /// The public model name (`model_group`).
    pub model: Option<String>,
    pub status: Option<SpendStatus>,
    /// Inclusive lower bound on `start_time`.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `start_time`.
    pub to: Option<DateTime<Utc>>,
    pub request_id: Option<String>,
}

/// One day's totals for one team, model and provider (see [`Store::daily_activity`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyGroupRow {
    pub day: NaiveDate,
    /// "" when the calls had no team (likewise provider).
    pub team_id: String,
    pub model_group: String,
    pub custom_llm_provider: String,
    pub totals: SpendTotals,
}

/// LiteLLM's per-day activity, read in two queries whatever the number of keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DailyActivity {
    /// Per day, team, model and provider, ascending by day: totals and every breakdown but
    /// the keys'.
    pub groups: Vec<DailyGroupRow>,
    /// Per day, the keys among the range's `key_limit` highest-spend keys (LiteLLM's
    /// `USAGE_TOP_API_KEYS_LIMIT`), ascending by day then highest spend first.
    pub keys: Vec<DailyBreakdown>,
    /// Distinct keys with spend in the range; more than `key_limit` means some were left out.
    pub distinct_keys: i64,
}

/// What a spend breakdown shows next to a key's hash (see [`Store::key_labels`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyLabel {
    pub token: String,
    pub key_name: String,
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
}

/// The narrowest aggregate table holding every column a summary filters (`scope`) or groups
/// on (`group`, besides the day). All three hold the same sums: the writer adds each batch to
/// all of them in one transaction, and migration 0006 built the rollups from `daily_spend`.
fn daily_source(scope: &SpendScope, group: &[&str]) -> &'static str {
    let by_user_or_key = scope.user_id.is_some() || scope.api_key.is_some();
    let team_model = |c: &&str| matches!(*c, "team_id" | "model_group" | "custom_llm_provider");
    if !by_user_or_key && group.iter().all(team_model) {
        "daily_spend_by_team_model"
    } else if !by_user_or_key && scope.team_id.is_none() && group == ["api_key"] {
        "daily_spend_by_key"
    } else {
        "daily_spend"
    }
}

/// A bound parameter of a dynamically assembled query.
enum Arg {
    Text(String),
    Int(i64),
    Time(DateTime<Utc>),
}

/// WHERE clauses with `$n` placeholders numbered as they are added, and their values.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Where {
    fn push(&mut self, clause_with_placeholder: &str, arg: Arg) {
        self.args.push(arg);
        let n = self.args.len();
        self.clauses
            .push(clause_with_placeholder.replace("{}", &format!("${n}")));
    }

    fn next_placeholder(&self) -> String {
        format!("${}", self.args.len() + 1)
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn scope(&mut self, scope: &SpendScope) {
        if let Some(u) = &scope.user_id {
            self.push("user_id = {}", Arg::Text(u.clone()));
        }
        if let Some(t) = &scope.team_id {
            self.push("team_id = {}", Arg::Text(t.clone()));
        }
        if let Some(k) = &scope.api_key {
            self.push("api_key = {}", Arg::Text(k.clone()));
        }
    }

    /// Scope and an inclusive range of UTC days, for `daily_spend`.
    fn daily(scope: &SpendScope, from: NaiveDate, to: NaiveDate) -> Where {
        let mut w = Where::default();
        w.scope(scope);
        w.push("day >= {}", Arg::Text(day_text(from)));
        w.push("day <= {}", Arg::Text(day_text(to)));
        w
    }
}

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
                Arg::Time(t) => q.bind(*t),
            };
        }
        q
    }};
}

fn parse_day(s: &str) -> Result<NaiveDate, sqlx::Error> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// PostgreSQL's SUM(bigint) is NUMERIC; cast back so both backends decode an i64.
const SUMS: &str = "CAST(COALESCE(SUM(spend_nanos), 0) AS BIGINT) AS spend_nanos, \
    CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
    CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
    CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, \
    CAST(COALESCE(SUM(successful_requests), 0) AS BIGINT) AS successful_requests, \
    CAST(COALESCE(SUM(failed_requests), 0) AS BIGINT) AS failed_requests";

fn read_totals<R: ReadRow>(r: &R) -> Result<SpendTotals, sqlx::Error> {
    Ok(SpendTotals {
        spend_nanos: r.int("spend_nanos")?,
        prompt_tokens: r.int("prompt_tokens")?,
        completion_tokens: r.int("completion_tokens")?,
        requests: r.int("requests")?,
        successful_requests: r.int("successful_requests")?,
        failed_requests: r.int("failed_requests")?,
    })
}

fn read_daily<R: ReadRow>(r: &R) -> Result<DailySpend, sqlx::Error> {
    Ok(DailySpend {
        day: parse_day(&r.text("day")?)?,
        totals: read_totals(r)?,
    })
}

fn read_breakdown<R: ReadRow>(r: &R) -> Result<SpendBreakdown, sqlx::Error> {
    Ok(SpendBreakdown {
        name: r.text("name")?,
        totals: read_totals(r)?,
    })
}

fn read_daily_breakdown<R: ReadRow>(r: &R) -> Result<DailyBreakdown, sqlx::Error> {
    Ok(DailyBreakdown {
        day: parse_day(&r.text("day")?)?,
        name: r.text("name")?,
        totals: read_totals(r)?,
    })
}

fn read_group_row<R: ReadRow>(r: &R) -> Result<DailyGroupRow, sqlx::Error> {
    Ok(DailyGroupRow {
        day: parse_day(&r.text("day")?)?,
        team_id: r.text("team_id")?,
        model_group: r.text("model_group")?,
        custom_llm_provider: r.text("custom_llm_provider")?,
        totals: read_totals(r)?,
    })
}

/// A per-day key row and the range's distinct key count it carries.
fn read_key_row<R: ReadRow>(r: &R) -> Result<(DailyBreakdown, i64), sqlx::Error> {
    Ok((read_daily_breakdown(r)?, r.int("distinct_keys")?))
}

fn read_key_label<R: ReadRow>(r: &R) -> Result<KeyLabel, sqlx::Error> {
    Ok(KeyLabel {
        token: r.text("token")?,
        key_name: r.text("key_name")?,
        key_alias: r.opt_text("key_alias")?,
        team_id: r.opt_text("team_id")?,
        user_id: r.opt_text("user_id")?,
    })
}

fn read_activity<R: ReadRow>(r: &R) -> Result<DailyActivityRow, sqlx::Error> {
    Ok(DailyActivityRow {
        day: parse_day(&r.text("day")?)?,
        api_key: r.text("api_key")?,
        user_id: r.text("user_id")?,
        team_id: r.text("team_id")?,
        model_group: r.text("model_group")?,
        custom_llm_provider: r.text("custom_llm_provider")?,
        totals: read_totals(r)?,
    })
}

/// Runs `$sql` with `$args` and decodes every row with `$read`.
macro_rules! fetch_rows {
    ($store:expr, $sql:expr, $args:expr, $read:ident, $what:expr) => {
        on_backend!($store, ((), ()), |pool, _q| {
            let rows = bind_args!(sqlx::query($sql), $args)
                .fetch_all(pool)
                .await
                .context($what)?;
            rows.iter()
                .map(|r| $read(r))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .context($what)
        })
    };
}

/// The totals columns `SUMS` names, in its order.
const SUM_COLUMNS: &str =
    "spend_nanos, prompt_tokens, completion_tokens, requests, successful_requests, failed_requests";

/// The six sums of a row handed over as JSON (see `sqlite_rows_as_json`).
type JsonSums = (i64, i64, i64, i64, i64, i64);

fn totals_of(t: JsonSums) -> SpendTotals {
    SpendTotals {
        spend_nanos: t.0,
        prompt_tokens: t.1,
        completion_tokens: t.2,
        requests: t.3,
        successful_requests: t.4,
        failed_requests: t.5,
    }
}

/// SQLite only: every row of `sql` (its `columns`, in `order`) as one JSON array of arrays that
/// SQLite builds itself, read into tuples. sqlx hands SQLite's rows over from its worker
/// thread one at a time, waking the calling task for each: on one core that was about three
/// context switches a row, most of the time of a view with thousands of rows (bench/RESULTS.md,
/// "Stop 31"). One row crosses instead.
async fn sqlite_rows_as_json<T: serde::de::DeserializeOwned>(
    pool: &sqlx::SqlitePool,
    sql: &str,
    columns: &str,
    order: &str,
    args: &[Arg],
    what: &'static str,
) -> Result<Vec<T>, StoreError> {
    let whole =
        format!("SELECT json_group_array(json_array({columns}) ORDER BY {order}) FROM ({sql})");
    let json: String = bind_args!(sqlx::query_scalar(&whole), args)
        .fetch_one(pool)
        .await
        .context(what)?;
    serde_json::from_str(&json)
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
        .context(what)
}

mod reports;
pub use reports::{EndUserSpend, ReportFilter, ReportRow};

impl Store {
    /// One row per day in [from, to] (inclusive, UTC days) that has spend, ascending; from the
    /// daily aggregates.
    pub async fn daily_spend(
        &self,
        scope: &SpendScope,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailySpend>, StoreError> {
        let w = Where::daily(scope, from, to);
        let src = daily_source(scope, &[]);
        let sql = format!(
            "SELECT day, {SUMS} FROM {src}{} GROUP BY day ORDER BY day",
            w.sql()
        );
        fetch_rows!(self, &sql, &w.args, read_daily, "summing spend per day")
    }

    /// Totals over [from, to] grouped by `by`, highest spend first, at most `limit` rows; from
    /// the daily aggregates.
    pub async fn spend_breakdown(
        &self,
        scope: &SpendScope,
        from: NaiveDate,
        to: NaiveDate,
        by: SpendGroup,
        limit: u32,
    ) -> Result<Vec<SpendBreakdown>, StoreError> {
        let mut w = Where::daily(scope, from, to);
        let col = by.column();
        let src = daily_source(scope, &[col]);
        let limit_at = w.next_placeholder();
        let sql = format!(
            "SELECT {col} AS name, {SUMS} FROM {src}{} GROUP BY {col} \
             ORDER BY spend_nanos DESC, name LIMIT {limit_at}",
            w.sql()
        );
        w.args.push(Arg::Int(i64::from(limit)));
        fetch_rows!(
            self,
            &sql,
            &w.args,
            read_breakdown,
            "summing spend by group"
        )
    }

    /// Totals over [from, to]; from the daily aggregates.
    pub async fn spend_totals(
        &self,
        scope: &SpendScope,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<SpendTotals, StoreError> {
        let w = Where::daily(scope, from, to);
        let src = daily_source(scope, &[]);
        let sql = format!("SELECT {SUMS} FROM {src}{}", w.sql());
        let rows = fetch_rows!(self, &sql, &w.args, read_totals, "summing spend")?;
        Ok(rows.into_iter().next().unwrap_or_default())
    }

    /// Per day and per value of `by`, over [from, to], ascending by day then highest spend
    /// first; from the daily aggregates. Feeds LiteLLM's per-day `breakdown`.
    pub async fn daily_spend_breakdown(
        &self,
        scope: &SpendScope,
        from: NaiveDate,
        to: NaiveDate,
        by: DailyDimension,
    ) -> Result<Vec<DailyBreakdown>, StoreError> {
        let w = Where::daily(scope, from, to);
        let col = by.column();
        let src = daily_source(scope, &[col]);
        let sql = format!(
            "SELECT day, {col} AS name, {SUMS} FROM {src}{} GROUP BY day, {col} \
             ORDER BY day, spend_nanos DESC, name",
            w.sql()
        );
        fetch_rows!(
            self,
            &sql,
            &w.args,
            read_daily_breakdown,
            "summing spend per day and group"
        )
    }

    /// The aggregate rows themselves over [from, to], optionally for one model (public name),
    /// ascending by day: LiteLLM's activity views break each day down several ways at once.
    pub async fn daily_activity_rows(
        &self,
        scope: &SpendScope,
        model: Option<&str>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyActivityRow>, StoreError> {
        let mut w = Where::daily(scope, from, to);
        if let Some(m) = model {
            w.push("model_group = {}", Arg::Text(m.to_string()));
        }
        let sql = format!(
            "SELECT day, api_key, user_id, team_id, model_group, custom_llm_provider, \
             spend_nanos, prompt_tokens, completion_tokens, requests, successful_requests, \
             failed_requests FROM daily_spend{} ORDER BY day",
            w.sql()
        );
        fetch_rows!(
            self,
            &sql,
            &w.args,
            read_activity,
            "reading daily spend rows"
        )
    }

    /// Per-day activity over [from, to], optionally for one model (public name), with the
    /// key breakdown limited to the range's `key_limit` highest-spend keys: two queries, each
    /// on the narrowest aggregate that can answer it (gateway-wide, ~130 and ~3,000 rows for 30
    /// days at 1,000 keys, instead of every key's rows of `daily_spend`).
    pub async fn daily_activity(
        &self,
        scope: &SpendScope,
        model: Option<&str>,
        from: NaiveDate,
        to: NaiveDate,
        key_limit: u32,
    ) -> Result<DailyActivity, StoreError> {
        let mut w = Where::daily(scope, from, to);
        if let Some(m) = model {
            w.push("model_group = {}", Arg::Text(m.to_string()));
        }
        let groups_from = daily_source(scope, &["team_id", "model_group", "custom_llm_provider"]);
        let groups_sql = format!(
            "SELECT day, team_id, model_group, custom_llm_provider, {SUMS} FROM {groups_from}{} \
             GROUP BY day, team_id, model_group, custom_llm_provider ORDER BY day",
            w.sql()
        );
        let groups_what = "summing spend per day, team and model";
        let groups = match &self.backend {
            Backend::Sqlite(pool) => {
                let rows: Vec<(String, String, String, String, JsonSums)> = sqlite_rows_as_json(
                    pool,
                    &groups_sql,
                    &format!(
                        "day, team_id, model_group, custom_llm_provider, json_array({SUM_COLUMNS})"
                    ),
                    "day",
                    &w.args,
                    groups_what,
                )
                .await?;
                rows.into_iter()
                    .map(|(day, team_id, model_group, custom_llm_provider, sums)| {
                        Ok(DailyGroupRow {
                            day: parse_day(&day)?,
                            team_id,
                            model_group,
                            custom_llm_provider,
                            totals: totals_of(sums),
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .context(groups_what)?
            }
            Backend::Postgres(_) => {
                fetch_rows!(self, &groups_sql, &w.args, read_group_row, groups_what)?
            }
        };
        // The key rollup has no model column: a model filter reads `daily_spend`.
        let keys_from = if model.is_some() {
            "daily_spend"
        } else {
            daily_source(scope, &["api_key"])
        };
        // The ranking and the per-day rows share the WHERE clause's parameters.
        let limit_at = w.next_placeholder();
        let keys_sql = format!(
            "WITH top AS (SELECT api_key, COUNT(*) OVER () AS distinct_keys FROM {keys_from}{where_} \
             GROUP BY api_key ORDER BY SUM(spend_nanos) DESC, api_key LIMIT {limit_at}) \
             SELECT day, api_key AS name, top.distinct_keys AS distinct_keys, {SUMS} \
             FROM {keys_from} JOIN top USING (api_key){where_} GROUP BY day, api_key, \
             top.distinct_keys ORDER BY day, spend_nanos DESC, name",
            where_ = w.sql()
        );
        w.args.push(Arg::Int(i64::from(key_limit)));
        let keys_what = "summing spend per day for the top keys";
        let rows = match &self.backend {
            Backend::Sqlite(pool) => {
                let rows: Vec<(String, String, i64, JsonSums)> = sqlite_rows_as_json(
                    pool,
                    &keys_sql,
                    &format!("day, name, distinct_keys, json_array({SUM_COLUMNS})"),
                    "day, spend_nanos DESC, name",
                    &w.args,
                    keys_what,
                )
                .await?;
                rows.into_iter()
                    .map(|(day, name, distinct, sums)| {
                        let day = parse_day(&day)?;
                        Ok((
                            DailyBreakdown {
                                day,
                                name,
                                totals: totals_of(sums),
                            },
                            distinct,
                        ))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .context(keys_what)?
            }
            Backend::Postgres(_) => fetch_rows!(self, &keys_sql, &w.args, read_key_row, keys_what)?,
        };
        let distinct_keys = rows.first().map(|(_, n)| *n).unwrap_or(0);
        Ok(DailyActivity {
            groups,
            keys: rows.into_iter().map(|(k, _)| k).collect(),
            distinct_keys,
        })
    }

    /// Labels of the existing keys among `tokens` (hashes), in one query however many: a
    /// breakdown of 100 keys is one round trip, not 100. Deleted or unknown keys are absent.
    pub async fn key_labels(&self, tokens: &[String]) -> Result<Vec<KeyLabel>, StoreError> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let cols = "token, key_name, key_alias, team_id, user_id";
        let sqlite = format!(
            "SELECT {cols} FROM verification_tokens WHERE token IN (SELECT value FROM json_each($1))"
        );
        let pg = format!(
            "SELECT {cols} FROM verification_tokens \
             WHERE token IN (SELECT jsonb_array_elements_text($1::jsonb))"
        );
        let list = crate::db::json_strings(tokens);
        on_backend!(self, (sqlite, pg), |pool, sql| {
            let rows = sqlx::query(sql.as_str())
                .bind(&list)
                .fetch_all(pool)
                .await
                .context("reading key labels")?;
            rows.iter()
                .map(read_key_label)
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .context("reading key labels")
        })
    }

    /// Newest first, keyset-paginated: pass the previous page's last (start_time, request_id)
    /// as `before`. Ties on start_time are ordered by request_id, descending.
    pub async fn spend_logs_page(
        &self,
        filter: &SpendLogFilter,
        before: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> Result<Vec<SpendRecord>, StoreError> {
        let mut w = log_where(filter);
        if let Some((t, id)) = before {
            // A row-value comparison is one index range on (…, start_time, request_id).
            let at = w.next_placeholder();
            w.args.push(Arg::Time(t));
            w.push(
                &format!("(start_time, request_id) < ({at}, {{}})"),
                Arg::Text(id),
            );
        }
        let limit_at = w.next_placeholder();
        w.args.push(Arg::Int(i64::from(limit)));
        let order = format!(
            "{} ORDER BY start_time DESC, request_id DESC LIMIT {limit_at}",
            w.sql()
        );
        self.select_logs(&order, &w.args).await
    }

    /// Newest first, `limit` records after skipping `offset`: LiteLLM's numbered pages, for
    /// callers that need them. A deep page costs its offset; [`Store::spend_logs_page`] does not.
    pub async fn spend_logs_at(
        &self,
        filter: &SpendLogFilter,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<SpendRecord>, StoreError> {
        let mut w = log_where(filter);
        let limit_at = w.next_placeholder();
        w.args.push(Arg::Int(i64::from(limit)));
        let offset_at = w.next_placeholder();
        w.args.push(Arg::Int(offset.max(0)));
        let order = format!(
            "{} ORDER BY start_time DESC, request_id DESC LIMIT {limit_at} OFFSET {offset_at}",
            w.sql()
        );
        self.select_logs(&order, &w.args).await
    }

    /// How many records match, counting no further than `cap` (so a count over a huge log
    /// stays cheap; the caller says when the number is a floor).
    pub async fn count_spend_logs_matching(
        &self,
        filter: &SpendLogFilter,
        cap: i64,
    ) -> Result<i64, StoreError> {
        let mut w = log_where(filter);
        let cap_at = w.next_placeholder();
        w.args.push(Arg::Int(cap));
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM spend_logs{} LIMIT {cap_at}) AS matching",
            w.sql()
        );
        on_backend!(self, (sql.clone(), sql), |pool, sql| {
            bind_args!(sqlx::query_scalar::<_, i64>(sql.as_str()), &w.args)
                .fetch_one(pool)
                .await
                .context("counting spend records")
        })
    }

    async fn select_logs(&self, tail: &str, args: &[Arg]) -> Result<Vec<SpendRecord>, StoreError> {
        let sqlite = format!("SELECT {SELECT_COLUMNS}, metadata FROM spend_logs{tail}");
        let pg =
            format!("SELECT {SELECT_COLUMNS}, metadata::text AS metadata FROM spend_logs{tail}");
        on_backend!(self, (sqlite, pg), |pool, sql| {
            let rows = bind_args!(sqlx::query(sql.as_str()), args)
                .fetch_all(pool)
                .await
                .context("paging spend records")?;
            rows.iter().map(decode).collect()
        })
    }
}

/// Spend under one request tag.
#[derive(Debug, Clone, PartialEq)]
pub struct TagSpend {
    pub tag: String,
    pub spend_nanos: i64,
    pub requests: i64,
}

/// Tags of a record: `metadata.tags` when it is a list, its text elements only (an imported log
/// may hold any JSON there). `{where}` is the scope and range, as `AND …`.
const SQLITE_TAGS: &str = "SELECT t.value AS tag, SUM(s.spend_nanos) AS spend, COUNT(*) AS n \
    FROM spend_logs s, json_each(s.metadata, '$.tags') t \
    WHERE json_type(s.metadata, '$.tags') = 'array' AND t.type = 'text'{where} \
    GROUP BY t.value ORDER BY spend DESC, tag";

const PG_TAGS: &str = "SELECT t.value #>> '{}' AS tag, SUM(s.spend_nanos)::BIGINT AS spend, \
    COUNT(*) AS n \
    FROM spend_logs s CROSS JOIN LATERAL jsonb_array_elements( \
        CASE WHEN jsonb_typeof(s.metadata -> 'tags') = 'array' THEN s.metadata -> 'tags' \
        ELSE '[]'::jsonb END) AS t(value) \
    WHERE jsonb_typeof(t.value) = 'string'{where} \
    GROUP BY 1 ORDER BY spend DESC, tag";

impl Store {
    /// Spend per request tag (`metadata.tags` of each record) for the calls in `scope` started
    /// in `[from, to)` (either end open), largest first. Reads the log itself: tags have no
    /// daily aggregate.
    pub async fn spend_by_tag(
        &self,
        scope: &SpendScope,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<TagSpend>, StoreError> {
        let mut w = Where::default();
        w.scope(scope);
        if let Some(f) = from {
            w.push("s.start_time >= {}", Arg::Time(f));
        }
        if let Some(t) = to {
            w.push("s.start_time < {}", Arg::Time(t));
        }
        let and: String = w.clauses.iter().map(|c| format!(" AND {c}")).collect();
        let sql = match self.backend() {
            crate::connect::Backend::Sqlite(_) => SQLITE_TAGS.replace("{where}", &and),
            crate::connect::Backend::Postgres(_) => PG_TAGS.replace("{where}", &and),
        };
        fetch_rows!(self, &sql, &w.args, read_tag, "summing spend per tag")
    }
}

fn read_tag<R: ReadRow>(r: &R) -> Result<TagSpend, sqlx::Error> {
    Ok(TagSpend {
        tag: r.text("tag")?,
        spend_nanos: r.int("spend")?,
        requests: r.int("n")?,
    })
}

/// The WHERE clause of a spend log filter.
fn log_where(filter: &SpendLogFilter) -> Where {
    let mut w = Where::default();
    w.scope(&filter.scope);
    if let Some(m) = &filter.model {
        w.push("model_group = {}", Arg::Text(m.clone()));
    }
    if let Some(st) = filter.status {
        // A literal (from the enum, never from input), so the planner can use the partial
        // index of failures; a bound value would hide which rows the query wants.
        w.clauses.push(format!("status = '{}'", st.as_str()));
    }
    if let Some(id) = &filter.request_id {
        w.push("request_id = {}", Arg::Text(id.clone()));
    }
    if let Some(f) = filter.from {
        w.push("start_time >= {}", Arg::Time(f));
    }
    if let Some(t) = filter.to {
        w.push("start_time < {}", Arg::Time(t));
    }
    w
}

/// Picks the spend module's decoder for the row's backend.
trait DecodeRecord {
    fn decode_record(&self) -> Result<SpendRecord, StoreError>;
}

impl DecodeRecord for sqlx::sqlite::SqliteRow {
    fn decode_record(&self) -> Result<SpendRecord, StoreError> {
        sqlite_row(self)
    }
}

impl DecodeRecord for sqlx::postgres::PgRow {
    fn decode_record(&self) -> Result<SpendRecord, StoreError> {
        pg_row(self)
    }
}

fn decode<R: DecodeRecord>(r: &R) -> Result<SpendRecord, StoreError> {
    r.decode_record()
}

#[cfg(test)]
mod tests {
    use super::{SUMS, SUM_COLUMNS};

    /// SQLite's whole-result read names the sums by `SUM_COLUMNS`: it must stay `SUMS`' aliases,
    /// in their order, or a sum added to one would be left out of the other's rows.
    #[test]
    fn sum_columns_are_the_aliases_of_sums() {
        let aliases: Vec<&str> = SUMS
            .split(" AS BIGINT) AS ")
            .skip(1)
            .map(|rest| rest.split(',').next().unwrap_or_default().trim())
            .collect();
        let columns: Vec<&str> = SUM_COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(aliases, columns);
        assert_eq!(columns.len(), 6, "JsonSums holds six");
    }
}
