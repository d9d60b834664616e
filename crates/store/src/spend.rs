//! The per-call spend log: one row per request id, written in batches, idempotently.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::connect::{Backend, Store};
use crate::error::{QueryContext, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendStatus {
    Success,
    Failure,
}

impl SpendStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SpendStatus::Success => "success",
            SpendStatus::Failure => "failure",
        }
    }

    fn parse(s: &str) -> SpendStatus {
        if s == "success" {
            SpendStatus::Success
        } else {
            SpendStatus::Failure
        }
    }
}

/// One call, as the ledger records it. Never holds a secret: `api_key` is the key's SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRecord {
    pub request_id: String,
    /// `chat_completion`, `text_completion` or `embedding`.
    pub call_type: String,
    pub api_key: String,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub end_user: Option<String>,
    /// The model the upstream was asked for.
    pub model: String,
    /// The public model name the caller used.
    pub model_group: String,
    /// The deployment that answered (its `model_info.id`, or its index).
    pub model_id: Option<String>,
    pub custom_llm_provider: Option<String>,
    pub spend_nanos: i64,
    /// False when no price was known for the model, so the zero spend is not a real zero.
    pub priced: bool,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub usage_estimated: bool,
    pub stream: bool,
    pub status: SpendStatus,
    pub http_status: i32,
    pub error_type: Option<String>,
    pub attempts: i32,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub completion_start_time: Option<DateTime<Utc>>,
    pub request_duration_ms: i64,
    pub ttft_ms: Option<i64>,
    pub metadata: serde_json::Value,
}

impl SpendRecord {
    pub fn total_tokens(&self) -> i64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

const INSERT_COLUMNS: &str = "request_id, call_type, api_key, user_id, team_id, end_user, model, \
    model_group, model_id, custom_llm_provider, spend_nanos, priced, prompt_tokens, \
    completion_tokens, total_tokens, cache_read_input_tokens, cache_creation_input_tokens, \
    usage_estimated, stream, status, http_status, error_type, attempts, start_time, end_time, \
    completion_start_time, request_duration_ms, ttft_ms, metadata";

pub(crate) const SELECT_COLUMNS: &str =
    "request_id, call_type, api_key, user_id, team_id, end_user, model, \
    model_group, model_id, custom_llm_provider, spend_nanos, priced, prompt_tokens, \
    completion_tokens, cache_read_input_tokens, cache_creation_input_tokens, \
    usage_estimated, stream, status, http_status, error_type, attempts, start_time, end_time, \
    completion_start_time, request_duration_ms, ttft_ms";

macro_rules! bind_record {
    ($q:expr, $r:expr, $meta:expr) => {
        $q.bind(&$r.request_id)
            .bind(&$r.call_type)
            .bind(&$r.api_key)
            .bind(&$r.user_id)
            .bind(&$r.team_id)
            .bind(&$r.end_user)
            .bind(&$r.model)
            .bind(&$r.model_group)
            .bind(&$r.model_id)
            .bind(&$r.custom_llm_provider)
            .bind($r.spend_nanos)
            .bind($r.priced)
            .bind($r.prompt_tokens)
            .bind($r.completion_tokens)
            .bind($r.total_tokens())
            .bind($r.cache_read_input_tokens)
            .bind($r.cache_creation_input_tokens)
            .bind($r.usage_estimated)
            .bind($r.stream)
            .bind($r.status.as_str())
            .bind($r.http_status)
            .bind(&$r.error_type)
            .bind($r.attempts)
            .bind($r.start_time)
            .bind($r.end_time)
            .bind($r.completion_start_time)
            .bind($r.request_duration_ms)
            .bind($r.ttft_ms)
            .bind($meta)
    };
}

/// The spend of keys, users and teams moves with their calls' records, in the same transaction:
/// a record inserted once adds its cost once, and a retried batch (whose rows already exist)
/// adds nothing.
const ADD_KEY_SPEND: &str =
    "UPDATE verification_tokens SET spend_nanos = spend_nanos + $1 WHERE token = $2";
const ADD_USER_SPEND: &str = "UPDATE users SET spend_nanos = spend_nanos + $1 WHERE user_id = $2";
const ADD_TEAM_SPEND: &str = "UPDATE teams SET spend_nanos = spend_nanos + $1 WHERE team_id = $2";

/// Per owner (key, user, team), the cost of the records that were actually inserted.
fn owner_spend<'a>(
    records: &'a [SpendRecord],
    inserted: &HashSet<&str>,
) -> Vec<(&'static str, &'a str, i64)> {
    let mut per_owner: BTreeMap<(&'static str, &str), i64> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.spend_nanos > 0 && inserted.contains(r.request_id.as_str()))
    {
        *per_owner
            .entry((ADD_KEY_SPEND, r.api_key.as_str()))
            .or_default() += r.spend_nanos;
        if let Some(u) = &r.user_id {
            *per_owner.entry((ADD_USER_SPEND, u.as_str())).or_default() += r.spend_nanos;
        }
        if let Some(t) = &r.team_id {
            *per_owner.entry((ADD_TEAM_SPEND, t.as_str())).or_default() += r.spend_nanos;
        }
    }
    per_owner
        .into_iter()
        .map(|((sql, owner), n)| (sql, owner, n))
        .collect()
}

/// One row of `daily_spend`: the key columns, then the counters added on conflict.
#[derive(Debug, Default, PartialEq)]
struct DailyDelta {
    spend_nanos: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    requests: i64,
    successful_requests: i64,
    failed_requests: i64,
}

/// (day, api_key, user_id, team_id, model_group, custom_llm_provider); absent ids are ''.
type DailyKey<'a> = (String, &'a str, &'a str, &'a str, &'a str, &'a str);

/// The inserted records summed per day and dimension, so a batch of 500 calls on one key and
/// model becomes one upsert row. Sorted, so concurrent writers lock rows in the same order.
fn daily_deltas<'a>(
    records: &'a [SpendRecord],
    inserted: &HashSet<&str>,
) -> BTreeMap<DailyKey<'a>, DailyDelta> {
    let mut out: BTreeMap<DailyKey<'a>, DailyDelta> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| inserted.contains(r.request_id.as_str()))
    {
        let key = (
            r.start_time.format("%Y-%m-%d").to_string(),
            r.api_key.as_str(),
            r.user_id.as_deref().unwrap_or(""),
            r.team_id.as_deref().unwrap_or(""),
            r.model_group.as_str(),
            r.custom_llm_provider.as_deref().unwrap_or(""),
        );
        let d = out.entry(key).or_default();
        d.spend_nanos = d.spend_nanos.saturating_add(r.spend_nanos);
        d.prompt_tokens = d.prompt_tokens.saturating_add(r.prompt_tokens);
        d.completion_tokens = d.completion_tokens.saturating_add(r.completion_tokens);
        d.requests += 1;
        match r.status {
            SpendStatus::Success => d.successful_requests += 1,
            SpendStatus::Failure => d.failed_requests += 1,
        }
    }
    out
}

const DAILY_COLUMNS: usize = 12;
/// 12 parameters a row: 1,200 per statement, under SQLite's and PostgreSQL's limits.
const DAILY_ROWS_PER_STATEMENT: usize = 100;

fn daily_upsert_sql(rows: usize, numbered: bool) -> String {
    let mut s = String::from(
        "INSERT INTO daily_spend (day, api_key, user_id, team_id, model_group, \
         custom_llm_provider, spend_nanos, prompt_tokens, completion_tokens, requests, \
         successful_requests, failed_requests) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for col in 1..=DAILY_COLUMNS {
            if col > 1 {
                s.push_str(", ");
            }
            if numbered {
                s.push_str(&format!("${}", row * DAILY_COLUMNS + col));
            } else {
                s.push('?');
            }
        }
        s.push(')');
    }
    s.push_str(
        " ON CONFLICT (day, api_key, user_id, team_id, model_group, custom_llm_provider) \
         DO UPDATE SET spend_nanos = daily_spend.spend_nanos + excluded.spend_nanos, \
         prompt_tokens = daily_spend.prompt_tokens + excluded.prompt_tokens, \
         completion_tokens = daily_spend.completion_tokens + excluded.completion_tokens, \
         requests = daily_spend.requests + excluded.requests, \
         successful_requests = daily_spend.successful_requests + excluded.successful_requests, \
         failed_requests = daily_spend.failed_requests + excluded.failed_requests",
    );
    s
}

macro_rules! bind_daily {
    ($q:expr, $k:expr, $d:expr) => {
        $q.bind(&$k.0)
            .bind($k.1)
            .bind($k.2)
            .bind($k.3)
            .bind($k.4)
            .bind($k.5)
            .bind($d.spend_nanos)
            .bind($d.prompt_tokens)
            .bind($d.completion_tokens)
            .bind($d.requests)
            .bind($d.successful_requests)
            .bind($d.failed_requests)
    };
}

/// Adds the inserted records to keys, users, teams and the daily aggregates, inside the batch's
/// transaction. Written once per backend by the caller's macro expansion.
macro_rules! apply_inserted {
    ($tx:expr, $records:expr, $inserted:expr, $numbered:expr) => {{
        let inserted: HashSet<&str> = $inserted.iter().map(String::as_str).collect();
        for (sql, owner, nanos) in owner_spend($records, &inserted) {
            sqlx::query(sql)
                .bind(nanos)
                .bind(owner)
                .execute(&mut *$tx)
                .await
                .context("adding spend to keys, users and teams")?;
        }
        let deltas: Vec<_> = daily_deltas($records, &inserted).into_iter().collect();
        for chunk in deltas.chunks(DAILY_ROWS_PER_STATEMENT) {
            let sql = daily_upsert_sql(chunk.len(), $numbered);
            let mut q = sqlx::query(&sql);
            for (k, d) in chunk {
                q = bind_daily!(q, k, d);
            }
            q.execute(&mut *$tx)
                .await
                .context("adding spend to the daily aggregates")?;
        }
    }};
}

const COLUMNS_PER_ROW: usize = 29;
/// Rows per INSERT: 29 parameters each stays well under SQLite's and PostgreSQL's limits.
const ROWS_PER_STATEMENT: usize = 100;

/// SQLite gets plain `?` placeholders: sqlx resolves `$N` names one by one for each parameter,
/// which is quadratic in a multi-row statement (it was 40% of the gateway's CPU under load).
fn insert_sql(rows: usize, json_cast: &str, numbered: bool) -> String {
    let mut s = format!("INSERT INTO spend_logs ({INSERT_COLUMNS}) VALUES ");
    for row in 0..rows {
        if row > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for col in 1..=COLUMNS_PER_ROW {
            if col > 1 {
                s.push_str(", ");
            }
            if numbered {
                s.push_str(&format!("${}", row * COLUMNS_PER_ROW + col));
            } else {
                s.push('?');
            }
            if col == COLUMNS_PER_ROW {
                s.push_str(json_cast);
            }
        }
        s.push(')');
    }
    s.push_str(" ON CONFLICT (request_id) DO NOTHING RETURNING request_id");
    s
}

impl Store {
    /// Inserts the records in one transaction. Records whose `request_id` is already stored are
    /// skipped, so a batch retried after an ambiguous failure never counts a call twice.
    /// Returns the request ids that were newly inserted.
    pub async fn insert_spend_batch(
        &self,
        records: &[SpendRecord],
    ) -> Result<Vec<String>, StoreError> {
        let mut inserted = Vec::with_capacity(records.len());
        // Multi-row statements: one round trip per chunk instead of per record.
        match &self.backend {
            Backend::Sqlite(p) => {
                let mut tx = p.begin().await.context("starting a spend batch")?;
                for chunk in records.chunks(ROWS_PER_STATEMENT) {
                    let sql = insert_sql(chunk.len(), "", false);
                    let mut q = sqlx::query_scalar::<_, String>(&sql);
                    for r in chunk {
                        q = bind_record!(q, r, r.metadata.to_string());
                    }
                    inserted.extend(
                        q.fetch_all(&mut *tx)
                            .await
                            .context("inserting spend records")?,
                    );
                }
                apply_inserted!(tx, records, inserted, false);
                tx.commit().await.context("committing a spend batch")?;
            }
            Backend::Postgres(p) => {
                let mut tx = p.begin().await.context("starting a spend batch")?;
                for chunk in records.chunks(ROWS_PER_STATEMENT) {
                    let sql = insert_sql(chunk.len(), "::jsonb", true);
                    let mut q = sqlx::query_scalar::<_, String>(&sql);
                    for r in chunk {
                        q = bind_record!(q, r, r.metadata.to_string());
                    }
                    inserted.extend(
                        q.fetch_all(&mut *tx)
                            .await
                            .context("inserting spend records")?,
                    );
                }
                apply_inserted!(tx, records, inserted, true);
                tx.commit().await.context("committing a spend batch")?;
            }
        }
        // RETURNING gives no order guarantee; callers get the ids in batch order.
        let set: HashSet<&str> = inserted.iter().map(String::as_str).collect();
        Ok(records
            .iter()
            .filter(|r| set.contains(r.request_id.as_str()))
            .map(|r| r.request_id.clone())
            .collect())
    }

    pub async fn count_spend_logs(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM spend_logs";
        match &self.backend {
            Backend::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Backend::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .context("counting spend logs")
    }

    pub async fn get_spend_log(&self, request_id: &str) -> Result<Option<SpendRecord>, StoreError> {
        let sqlite =
            format!("SELECT {SELECT_COLUMNS}, metadata FROM spend_logs WHERE request_id = $1");
        let pg = format!(
            "SELECT {SELECT_COLUMNS}, metadata::text AS metadata FROM spend_logs WHERE request_id = $1"
        );
        match &self.backend {
            Backend::Sqlite(p) => {
                let row = sqlx::query(&sqlite)
                    .bind(request_id)
                    .fetch_optional(p)
                    .await
                    .context("reading a spend record")?;
                row.map(|r| sqlite_row(&r)).transpose()
            }
            Backend::Postgres(p) => {
                let row = sqlx::query(&pg)
                    .bind(request_id)
                    .fetch_optional(p)
                    .await
                    .context("reading a spend record")?;
                row.map(|r| pg_row(&r)).transpose()
            }
        }
    }

    /// The newest records first, at most `limit`.
    pub async fn recent_spend_logs(&self, limit: i64) -> Result<Vec<SpendRecord>, StoreError> {
        let sqlite = format!(
            "SELECT {SELECT_COLUMNS}, metadata FROM spend_logs ORDER BY start_time DESC, request_id LIMIT $1"
        );
        let pg = format!(
            "SELECT {SELECT_COLUMNS}, metadata::text AS metadata FROM spend_logs ORDER BY start_time DESC, request_id LIMIT $1"
        );
        match &self.backend {
            Backend::Sqlite(p) => sqlx::query(&sqlite)
                .bind(limit)
                .fetch_all(p)
                .await
                .context("listing spend records")?
                .iter()
                .map(sqlite_row)
                .collect(),
            Backend::Postgres(p) => sqlx::query(&pg)
                .bind(limit)
                .fetch_all(p)
                .await
                .context("listing spend records")?
                .iter()
                .map(pg_row)
                .collect(),
        }
    }
}

macro_rules! read_record {
    ($row:expr) => {{
        let row = $row;
        let status: String = row.try_get("status")?;
        let metadata: String = row.try_get("metadata")?;
        Ok::<SpendRecord, sqlx::Error>(SpendRecord {
            request_id: row.try_get("request_id")?,
            call_type: row.try_get("call_type")?,
            api_key: row.try_get("api_key")?,
            user_id: row.try_get("user_id")?,
            team_id: row.try_get("team_id")?,
            end_user: row.try_get("end_user")?,
            model: row.try_get("model")?,
            model_group: row.try_get("model_group")?,
            model_id: row.try_get("model_id")?,
            custom_llm_provider: row.try_get("custom_llm_provider")?,
            spend_nanos: row.try_get("spend_nanos")?,
            priced: row.try_get("priced")?,
            prompt_tokens: row.try_get("prompt_tokens")?,
            completion_tokens: row.try_get("completion_tokens")?,
            cache_read_input_tokens: row.try_get("cache_read_input_tokens")?,
            cache_creation_input_tokens: row.try_get("cache_creation_input_tokens")?,
            usage_estimated: row.try_get("usage_estimated")?,
            stream: row.try_get("stream")?,
            status: SpendStatus::parse(&status),
            http_status: row.try_get("http_status")?,
            error_type: row.try_get("error_type")?,
            attempts: row.try_get("attempts")?,
            start_time: row.try_get("start_time")?,
            end_time: row.try_get("end_time")?,
            completion_start_time: row.try_get("completion_start_time")?,
            request_duration_ms: row.try_get("request_duration_ms")?,
            ttft_ms: row.try_get("ttft_ms")?,
            metadata: serde_json::from_str(&metadata).unwrap_or(serde_json::Value::Null),
        })
    }};
}

pub(crate) fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<SpendRecord, StoreError> {
    let read = || -> Result<SpendRecord, sqlx::Error> { read_record!(row) };
    read().context("decoding a spend record")
}

pub(crate) fn pg_row(row: &sqlx::postgres::PgRow) -> Result<SpendRecord, StoreError> {
    let read = || -> Result<SpendRecord, sqlx::Error> { read_record!(row) };
    read().context("decoding a spend record")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn call(id: usize, status: SpendStatus) -> SpendRecord {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        SpendRecord {
            request_id: format!("r{id}"),
            call_type: "chat_completion".into(),
            api_key: "k".into(),
            user_id: Some("u".into()),
            team_id: None,
            end_user: None,
            model: "m".into(),
            model_group: "m".into(),
            model_id: None,
            custom_llm_provider: None,
            spend_nanos: 10,
            priced: true,
            prompt_tokens: 2,
            completion_tokens: 1,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
            usage_estimated: false,
            stream: false,
            status,
            http_status: 200,
            error_type: None,
            attempts: 1,
            start_time: t,
            end_time: t,
            completion_start_time: None,
            request_duration_ms: 1,
            ttft_ms: None,
            metadata: serde_json::Value::Null,
        }
    }

    /// The writer's hot path: a full batch on one key and model is one upsert row, and only
    /// inserted records count.
    #[test]
    fn a_batch_on_one_key_is_one_daily_row() {
        let records: Vec<SpendRecord> = (0..500)
            .map(|i| {
                call(
                    i,
                    if i % 5 == 0 {
                        SpendStatus::Failure
                    } else {
                        SpendStatus::Success
                    },
                )
            })
            .collect();
        let ids: Vec<String> = records[..400]
            .iter()
            .map(|r| r.request_id.clone())
            .collect();
        let inserted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let deltas = daily_deltas(&records, &inserted);
        assert_eq!(deltas.len(), 1);
        let (key, d) = deltas.iter().next().unwrap();
        assert_eq!(key, &("2026-01-02".to_string(), "k", "u", "", "m", ""));
        assert_eq!(
            d,
            &DailyDelta {
                spend_nanos: 4000,
                prompt_tokens: 800,
                completion_tokens: 400,
                requests: 400,
                successful_requests: 320,
                failed_requests: 80,
            }
        );
    }

    #[test]
    fn upserts_number_their_parameters_per_backend() {
        let pg = daily_upsert_sql(2, true);
        assert!(pg.contains("($13, $14,") && pg.contains("$24)"));
        assert!(!daily_upsert_sql(2, false).contains('$'));
    }
}
