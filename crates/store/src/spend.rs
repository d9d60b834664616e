//! The per-call spend log: one row per request id, written in batches, idempotently.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;
use tokio::sync::{RwLock, RwLockWriteGuard};

use crate::connect::{Backend, Store};
use crate::error::{QueryContext, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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

mod instant;
mod json_line;
mod sql_time;
pub(crate) mod sqlite_writer;

/// One call, as the ledger records it. Never holds a secret: `api_key` is the key's SHA-256.
/// Serializable so the spend journal can hold records until they are committed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    #[serde(with = "instant")]
    pub start_time: DateTime<Utc>,
    #[serde(with = "instant")]
    pub end_time: DateTime<Utc>,
    #[serde(with = "instant::option", default)]
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

/// Per owner (key, user, team), the cost of the inserted records, sorted by owner so that
/// concurrent PostgreSQL writers lock owner rows in one order.
#[derive(Debug, Default, PartialEq)]
struct OwnerSpend<'a> {
    keys: Vec<(&'a str, i64)>,
    users: Vec<(&'a str, i64)>,
    teams: Vec<(&'a str, i64)>,
    /// `((team_id, user_id), nanos)`: a user's spend within a team.
    members: Vec<((&'a str, &'a str), i64)>,
}

impl OwnerSpend<'_> {
    fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.users.is_empty()
            && self.teams.is_empty()
            && self.members.is_empty()
    }
}

/// The spend of keys, users and teams moves with their calls' records, in the same transaction:
/// a record inserted once adds its cost once, and a retried batch (whose rows already exist)
/// adds nothing.
fn owner_spend<'a>(inserted: &[&'a SpendRecord]) -> OwnerSpend<'a> {
    let mut keys: BTreeMap<&str, i64> = BTreeMap::new();
    let mut users: BTreeMap<&str, i64> = BTreeMap::new();
    let mut teams: BTreeMap<&str, i64> = BTreeMap::new();
    let mut members: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for r in inserted.iter().filter(|r| r.spend_nanos > 0) {
        *keys.entry(r.api_key.as_str()).or_default() += r.spend_nanos;
        if let Some(u) = &r.user_id {
            *users.entry(u.as_str()).or_default() += r.spend_nanos;
        }
        if let Some(t) = &r.team_id {
            *teams.entry(t.as_str()).or_default() += r.spend_nanos;
        }
        if let (Some(t), Some(u)) = (&r.team_id, &r.user_id) {
            *members.entry((t.as_str(), u.as_str())).or_default() += r.spend_nanos;
        }
    }
    OwnerSpend {
        keys: keys.into_iter().collect(),
        users: users.into_iter().collect(),
        teams: teams.into_iter().collect(),
        members: members.into_iter().collect(),
    }
}

/// PostgreSQL moves every owner's spend in one statement (data-modifying CTEs), the owners and
/// amounts as parallel arrays.
const PG_ADD_OWNER_SPEND: &str = "WITH \
    k AS (UPDATE verification_tokens AS t SET spend_nanos = t.spend_nanos + d.n \
          FROM unnest($1::text[], $2::bigint[]) AS d(id, n) WHERE t.token = d.id RETURNING 1), \
    u AS (UPDATE users AS t SET spend_nanos = t.spend_nanos + d.n \
          FROM unnest($3::text[], $4::bigint[]) AS d(id, n) WHERE t.user_id = d.id RETURNING 1), \
    m AS (UPDATE team_members AS t SET spend_nanos = t.spend_nanos + d.n \
          FROM unnest($7::text[], $8::text[], $9::bigint[]) AS d(tid, uid, n) \
          WHERE t.team_id = d.tid AND t.user_id = d.uid RETURNING 1) \
    UPDATE teams AS t SET spend_nanos = t.spend_nanos + d.n \
    FROM unnest($5::text[], $6::bigint[]) AS d(id, n) WHERE t.team_id = d.id";

fn json_pairs(pairs: &[(&str, i64)]) -> String {
    let mut out = String::from("[");
    for (i, (k, n)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        crate::db::push_json_string(&mut out, k);
        // Writing to a String cannot fail.
        let _ = write!(out, ",{n}]");
    }
    out.push(']');
    out
}

fn unzip_pairs<'a>(pairs: &[(&'a str, i64)]) -> (Vec<&'a str>, Vec<i64>) {
    pairs.iter().copied().unzip()
}

/// The counters every aggregate row carries, added on conflict.
#[derive(Debug, Default, PartialEq, Clone)]
struct DailyDelta {
    spend_nanos: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    requests: i64,
    successful_requests: i64,
    failed_requests: i64,
}

impl DailyDelta {
    fn add(&mut self, o: &DailyDelta) {
        self.spend_nanos = self.spend_nanos.saturating_add(o.spend_nanos);
        self.prompt_tokens = self.prompt_tokens.saturating_add(o.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(o.completion_tokens);
        self.requests += o.requests;
        self.successful_requests += o.successful_requests;
        self.failed_requests += o.failed_requests;
    }
}

/// (day, api_key, user_id, team_id, model_group, custom_llm_provider); absent ids are ''. The
/// day is written out (`day_text`) only per row bound, not per record summed.
type DailyKey<'a> = (NaiveDate, &'a str, &'a str, &'a str, &'a str, &'a str);

/// A day as the aggregate tables store it.
pub(crate) fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// The inserted records summed per day and dimension, so a batch of 500 calls on one key and
/// model becomes one upsert row. Sorted, so concurrent writers lock rows in the same order.
fn daily_deltas<'a>(inserted: &[&'a SpendRecord]) -> BTreeMap<DailyKey<'a>, DailyDelta> {
    let mut out: BTreeMap<DailyKey<'a>, DailyDelta> = BTreeMap::new();
    for r in inserted {
        let key = (
            r.start_time.date_naive(),
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

/// (day, api_key): the rollup the key views read.
type KeyRollup<'d> = BTreeMap<(NaiveDate, &'d str), DailyDelta>;
/// (day, team_id, model_group, custom_llm_provider): the rollup the gateway-wide views read.
type TeamModelRollup<'d> = BTreeMap<(NaiveDate, &'d str, &'d str, &'d str), DailyDelta>;

/// The narrower rollups of migration 0006, summed from the same deltas as `daily_spend`, so
/// they always agree with it.
fn rollup_deltas<'d, 'a: 'd>(
    daily: &'d BTreeMap<DailyKey<'a>, DailyDelta>,
) -> (KeyRollup<'d>, TeamModelRollup<'d>) {
    let mut by_key = KeyRollup::new();
    let mut by_team_model = TeamModelRollup::new();
    for (k, d) in daily {
        by_key.entry((k.0, k.1)).or_default().add(d);
        by_team_model
            .entry((k.0, k.3, k.4, k.5))
            .or_default()
            .add(d);
    }
    (by_key, by_team_model)
}

const COUNTERS: &[&str] = &[
    "spend_nanos",
    "prompt_tokens",
    "completion_tokens",
    "requests",
    "successful_requests",
    "failed_requests",
];

/// Rows per upsert statement: at most 12 parameters a row, 6,144 a statement, under SQLite's
/// (32,766) and PostgreSQL's (65,535) limits. A power of two, like every statement's row count.
const UPSERT_ROWS_PER_STATEMENT: usize = 512;

/// Splits `items` into runs whose lengths are powers of two, at most `max` (a power of two):
/// a multi-row statement's text depends on its row count, and with only these counts the few
/// texts repeat from batch to batch, so each connection's statement cache prepares each once
/// (with any count, nearly every batch was parsed and planned afresh).
fn pow2_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if rest.len() >= max {
            max
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// Appends `rows` placeholder tuples of `cols` values: `$N` numbered across the statement, or
/// plain `?` (see `insert_sql` for why SQLite gets those). `last_cast` follows each row's last
/// placeholder (e.g. `::jsonb`).
fn push_value_rows(s: &mut String, rows: usize, cols: usize, numbered: bool, last_cast: &str) {
    for row in 0..rows {
        if row > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for col in 1..=cols {
            if col > 1 {
                s.push_str(", ");
            }
            if numbered {
                s.push_str(&format!("${}", row * cols + col));
            } else {
                s.push('?');
            }
        }
        s.push_str(last_cast);
        s.push(')');
    }
}

/// A multi-row upsert adding the counters of `rows` rows into `table`, keyed by `keys`.
fn upsert_sql(table: &str, keys: &[&str], rows: usize, numbered: bool) -> String {
    let cols = keys.len() + COUNTERS.len();
    let mut s = format!(
        "INSERT INTO {table} ({}, {}) VALUES ",
        keys.join(", "),
        COUNTERS.join(", ")
    );
    push_value_rows(&mut s, rows, cols, numbered, "");
    s.push_str(&format!(
        " ON CONFLICT ({}) DO UPDATE SET ",
        keys.join(", ")
    ));
    let sets: Vec<String> = COUNTERS
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    s.push_str(&sets.join(", "));
    s
}

const DAILY_KEYS: &[&str] = &[
    "day",
    "api_key",
    "user_id",
    "team_id",
    "model_group",
    "custom_llm_provider",
];
const BY_KEY_KEYS: &[&str] = &["day", "api_key"];
const BY_TEAM_MODEL_KEYS: &[&str] = &["day", "team_id", "model_group", "custom_llm_provider"];

macro_rules! bind_counters {
    ($q:expr, $d:expr) => {
        $q.bind($d.spend_nanos)
            .bind($d.prompt_tokens)
            .bind($d.completion_tokens)
            .bind($d.requests)
            .bind($d.successful_requests)
            .bind($d.failed_requests)
    };
}

/// Upserts `$map`'s rows into `$table`; `$bind_key` binds one key tuple.
macro_rules! upsert_rows {
    ($tx:expr, $table:expr, $keys:expr, $map:expr, $numbered:expr, |$q:ident, $k:ident| $bind_key:expr) => {{
        let rows: Vec<_> = $map.iter().collect();
        for chunk in pow2_chunks(&rows, UPSERT_ROWS_PER_STATEMENT) {
            let sql = upsert_sql($table, $keys, chunk.len(), $numbered);
            let mut $q = sqlx::query(&sql);
            for ($k, d) in chunk {
                $q = $bind_key;
                $q = bind_counters!($q, d);
            }
            $q.execute(&mut *$tx)
                .await
                .context("adding spend to the daily aggregates")?;
        }
    }};
}

/// Adds the inserted records to the daily aggregates (`daily_spend` and its two rollups),
/// inside the batch's transaction: three statements for a live batch.
macro_rules! apply_daily {
    ($tx:expr, $inserted:expr, $numbered:expr) => {{
        let daily = daily_deltas($inserted);
        apply_daily_map!($tx, daily, $numbered);
    }};
}

/// Adds per-day deltas (`daily_spend`'s rows) to the aggregates and their two rollups.
macro_rules! apply_daily_map {
    ($tx:expr, $daily:expr, $numbered:expr) => {{
        let daily = $daily;
        let (by_key, by_team_model) = rollup_deltas(&daily);
        upsert_rows!($tx, "daily_spend", DAILY_KEYS, daily, $numbered, |q, k| q
            .bind(day_text(k.0))
            .bind(k.1)
            .bind(k.2)
            .bind(k.3)
            .bind(k.4)
            .bind(k.5));
        upsert_rows!(
            $tx,
            "daily_spend_by_key",
            BY_KEY_KEYS,
            by_key,
            $numbered,
            |q, k| q.bind(day_text(k.0)).bind(k.1)
        );
        upsert_rows!(
            $tx,
            "daily_spend_by_team_model",
            BY_TEAM_MODEL_KEYS,
            by_team_model,
            $numbered,
            |q, k| q.bind(day_text(k.0)).bind(k.1).bind(k.2).bind(k.3)
        );
    }};
}

mod daily_history;
pub use daily_history::DailyHistory;

const COLUMNS_PER_ROW: usize = 29;
/// Rows per INSERT: 29 parameters each stays well under SQLite's and PostgreSQL's limits (a
/// power of two: see `pow2_chunks`).
const ROWS_PER_STATEMENT: usize = 64;

/// `numbered`: `$N` placeholders (PostgreSQL), else plain `?` (SQLite's spend thread, which
/// binds by position).
fn insert_sql(rows: usize, json_cast: &str, numbered: bool, returning: bool) -> String {
    let mut s = format!("INSERT INTO spend_logs ({INSERT_COLUMNS}) VALUES ");
    push_value_rows(&mut s, rows, COLUMNS_PER_ROW, numbered, json_cast);
    s.push_str(" ON CONFLICT (request_id) DO NOTHING");
    if returning {
        s.push_str(" RETURNING request_id");
    }
    s
}

/// Which of the batch's request ids are already stored: one parameter however long the batch.
const PG_STORED_IDS: &str = "SELECT request_id FROM spend_logs WHERE request_id = ANY($1)";

/// The records to insert: the first record of each request id that is not in `stored`, in
/// batch order (a repeated id within the batch counts once, like a retried one).
fn fresh_records<'a>(records: &'a [SpendRecord], stored: &HashSet<&str>) -> Vec<&'a SpendRecord> {
    let mut seen: HashSet<&str> = HashSet::with_capacity(records.len());
    records
        .iter()
        .filter(|r| !stored.contains(r.request_id.as_str()) && seen.insert(r.request_id.as_str()))
        .collect()
}

/// How a batch went in: the fast path (nothing per record comes back) or a concurrent writer
/// got some of its ids in first, so the batch must be redone with RETURNING.
enum Attempt<'g> {
    /// The new ids, and the commit gate when one was given.
    Inserted(Vec<String>, Option<RwLockWriteGuard<'g, ()>>),
    Raced,
}

/// Takes `gate` for writing, when there is one.
pub(crate) async fn close(gate: Option<&RwLock<()>>) -> Option<RwLockWriteGuard<'_, ()>> {
    match gate {
        Some(g) => Some(g.write().await),
        None => None,
    }
}

/// The count and the closed gate a gated batch hands back; a gated batch always has one.
fn gated(inserted: usize, closed: Option<RwLockWriteGuard<'_, ()>>) -> GatedResult<'_> {
    closed.map(|c| (inserted, c)).ok_or(StoreError::SpendThread(
        "a gated batch came back without its gate",
    ))
}

type GatedResult<'g> = Result<(usize, RwLockWriteGuard<'g, ()>), StoreError>;

/// Whether inserted records add to their key's, user's and team's running spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerTotals {
    Add,
    Keep,
}

impl Store {
    /// Inserts the records in one transaction. Records whose `request_id` is already stored are
    /// skipped (and so is a repeat of an id within the batch), so a batch retried after an
    /// ambiguous failure never counts a call twice. Returns the request ids that were newly
    /// inserted, in batch order.
    pub async fn insert_spend_batch(
        &self,
        records: &[SpendRecord],
    ) -> Result<Vec<String>, StoreError> {
        self.insert_spend(records, OwnerTotals::Add).await
    }

    /// Like [`Store::insert_spend_batch`] for history carried over from another gateway: the
    /// records and the daily aggregates go in, but the keys', users' and teams' running spend is
    /// left alone (it was carried over with them, and would otherwise count twice).
    pub async fn insert_spend_history(
        &self,
        records: &[SpendRecord],
    ) -> Result<Vec<String>, StoreError> {
        self.insert_spend(records, OwnerTotals::Keep).await
    }

    /// The spend writer's way in: the records are moved (with SQLite, to its spend thread and
    /// back) rather than copied, and come back with how many were newly inserted, whatever
    /// the outcome, so a failed batch can be kept for another try.
    pub async fn insert_spend_owned(
        &self,
        records: Vec<SpendRecord>,
    ) -> (Vec<SpendRecord>, Result<usize, StoreError>) {
        let gate = RwLock::new(());
        let (records, result) = self.insert_spend_gated(records, &gate).await;
        (records, result.map(|(inserted, _closed)| inserted))
    }

    /// [`Store::insert_spend_owned`] that closes `gate` (takes it for writing) just before the
    /// batch commits, and on success hands it back still closed: whoever reads stored spend
    /// under `gate` then sees the batch either not yet stored, or stored and already noted by
    /// the caller, never in between. The batch's inserts run with the gate open.
    pub async fn insert_spend_gated<'g>(
        &self,
        records: Vec<SpendRecord>,
        gate: &'g RwLock<()>,
    ) -> (
        Vec<SpendRecord>,
        Result<(usize, RwLockWriteGuard<'g, ()>), StoreError>,
    ) {
        match &self.sqlite_spend {
            Some(thread) => {
                let (records, result) = thread.insert(records, OwnerTotals::Add, Some(gate)).await;
                (
                    records,
                    result.and_then(|(fresh, closed)| gated(fresh.len(), closed)),
                )
            }
            None => {
                let result = self
                    .insert_spend_pg(&records, OwnerTotals::Add, Some(gate))
                    .await;
                (
                    records,
                    result.and_then(|(ids, closed)| gated(ids.len(), closed)),
                )
            }
        }
    }

    async fn insert_spend(
        &self,
        records: &[SpendRecord],
        owners: OwnerTotals,
    ) -> Result<Vec<String>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if let (Backend::Sqlite(_), Some(thread)) = (&self.backend, &self.sqlite_spend) {
            let (records, result) = thread.insert(records.to_vec(), owners, None).await;
            return result.map(|(fresh, _)| {
                fresh
                    .iter()
                    .filter_map(|&i| records.get(i))
                    .map(|r| r.request_id.clone())
                    .collect()
            });
        }
        self.insert_spend_pg(records, owners, None)
            .await
            .map(|(ids, _)| ids)
    }

    /// PostgreSQL's batch, retried on a deadlock or serialization conflict; with `gate`, the
    /// gate is taken just before the commit and handed back with the ids.
    async fn insert_spend_pg<'g>(
        &self,
        records: &[SpendRecord],
        owners: OwnerTotals,
        gate: Option<&'g RwLock<()>>,
    ) -> Result<(Vec<String>, Option<RwLockWriteGuard<'g, ()>>), StoreError> {
        if records.is_empty() {
            return Ok((Vec::new(), close(gate).await));
        }
        let pool = match (&self.backend, &self.sqlite_spend) {
            (Backend::Postgres(pool), _) => pool,
            (Backend::Sqlite(_), _) => {
                return Err(StoreError::SpendThread("this store has none"));
            }
        };
        // Several instances committing at once may deadlock on shared owner or daily rows;
        // PostgreSQL then aborts one transaction, which is retried whole (nothing of it stayed).
        let mut attempt = 0u32;
        loop {
            let result = match insert_spend_batch_fast(pool, records, owners, gate).await {
                Ok(Attempt::Inserted(ids, closed)) => Ok((ids, closed)),
                Ok(Attempt::Raced) => {
                    insert_spend_batch_returning(pool, records, owners, gate).await
                }
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_transient_conflict() && attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(
                        attempt,
                        "spend batch hit a deadlock or serialization conflict; retrying"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                }
                other => return other,
            }
        }
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

/// At most one statement per owner table (none for a table no record touches).
/// PostgreSQL's common case: one query finds the ids already stored (normally none) and the
/// rest go in with plain multi-row INSERTs, so no row crosses back from the database per record.
async fn insert_spend_batch_fast<'g>(
    pool: &sqlx::PgPool,
    records: &[SpendRecord],
    owners: OwnerTotals,
    gate: Option<&'g RwLock<()>>,
) -> Result<Attempt<'g>, StoreError> {
    let ids: Vec<&str> = records.iter().map(|r| r.request_id.as_str()).collect();
    let mut tx = pool.begin().await.context("starting a spend batch")?;
    let stored: Vec<String> = sqlx::query_scalar::<_, String>(PG_STORED_IDS)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .context("finding spend records already stored")?;
    let stored: HashSet<&str> = stored.iter().map(String::as_str).collect();
    let fresh = fresh_records(records, &stored);
    let mut affected = 0u64;
    for chunk in pow2_chunks(&fresh, ROWS_PER_STATEMENT) {
        let sql = insert_sql(chunk.len(), "::jsonb", true, false);
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = bind_record!(q, r, r.metadata.to_string());
        }
        affected += q
            .execute(&mut *tx)
            .await
            .context("inserting spend records")?
            .rows_affected();
    }
    if affected != fresh.len() as u64 {
        // Another writer stored some of these ids since the check.
        tx.rollback().await.context("rolling back a spend batch")?;
        return Ok(Attempt::Raced);
    }
    if owners == OwnerTotals::Add {
        add_owner_spend_pg(&mut tx, &owner_spend(&fresh)).await?;
    }
    apply_daily!(tx, &fresh, true);
    let closed = close(gate).await;
    tx.commit().await.context("committing a spend batch")?;
    Ok(Attempt::Inserted(
        fresh.iter().map(|r| r.request_id.clone()).collect(),
        closed,
    ))
}

/// The fallback when a concurrent writer raced the fast path: the insert itself reports which
/// rows went in.
async fn insert_spend_batch_returning<'g>(
    pool: &sqlx::PgPool,
    records: &[SpendRecord],
    owners: OwnerTotals,
    gate: Option<&'g RwLock<()>>,
) -> Result<(Vec<String>, Option<RwLockWriteGuard<'g, ()>>), StoreError> {
    let mut tx = pool.begin().await.context("starting a spend batch")?;
    let mut returned: Vec<String> = Vec::with_capacity(records.len());
    for chunk in pow2_chunks(records, ROWS_PER_STATEMENT) {
        let sql = insert_sql(chunk.len(), "::jsonb", true, true);
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for r in chunk {
            q = bind_record!(q, r, r.metadata.to_string());
        }
        returned.extend(
            q.fetch_all(&mut *tx)
                .await
                .context("inserting spend records")?,
        );
    }
    // The inserted records are the first of each returned id; any other record with that id
    // was a repeat.
    let returned: HashSet<&str> = returned.iter().map(String::as_str).collect();
    let skipped: HashSet<&str> = records
        .iter()
        .map(|r| r.request_id.as_str())
        .filter(|id| !returned.contains(id))
        .collect();
    let fresh = fresh_records(records, &skipped);
    if owners == OwnerTotals::Add {
        add_owner_spend_pg(&mut tx, &owner_spend(&fresh)).await?;
    }
    apply_daily!(tx, &fresh, true);
    let closed = close(gate).await;
    tx.commit().await.context("committing a spend batch")?;
    Ok((fresh.iter().map(|r| r.request_id.clone()).collect(), closed))
}

/// One statement for every owner table.
async fn add_owner_spend_pg(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    owners: &OwnerSpend<'_>,
) -> Result<(), StoreError> {
    if owners.is_empty() {
        return Ok(());
    }
    let (keys, key_nanos) = unzip_pairs(&owners.keys);
    let (users, user_nanos) = unzip_pairs(&owners.users);
    let (teams, team_nanos) = unzip_pairs(&owners.teams);
    let mut member_teams = Vec::with_capacity(owners.members.len());
    let mut member_users = Vec::with_capacity(owners.members.len());
    let mut member_nanos = Vec::with_capacity(owners.members.len());
    for ((t, u), n) in &owners.members {
        member_teams.push(*t);
        member_users.push(*u);
        member_nanos.push(*n);
    }
    sqlx::query(PG_ADD_OWNER_SPEND)
        .bind(keys)
        .bind(key_nanos)
        .bind(users)
        .bind(user_nanos)
        .bind(teams)
        .bind(team_nanos)
        .bind(member_teams)
        .bind(member_users)
        .bind(member_nanos)
        .execute(&mut **tx)
        .await
        .context("adding spend to keys, users and teams")?;
    Ok(())
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

    fn day(text: &str) -> NaiveDate {
        let d = NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
        assert_eq!(day_text(d), text);
        d
    }

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
        let inserted: Vec<&SpendRecord> = records[..400].iter().collect();
        let deltas = daily_deltas(&inserted);
        assert_eq!(deltas.len(), 1);
        let (key, d) = deltas.iter().next().unwrap();
        assert_eq!(key, &(day("2026-01-02"), "k", "u", "", "m", ""));
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
    fn statements_come_in_power_of_two_row_counts() {
        let items: Vec<u32> = (0..1000).collect();
        for n in [0, 1, 2, 3, 7, 64, 65, 100, 1000] {
            let chunks: Vec<&[u32]> = pow2_chunks(&items[..n], 64).collect();
            assert!(chunks
                .iter()
                .all(|c| c.len().is_power_of_two() && c.len() <= 64));
            let joined: Vec<u32> = chunks.concat();
            assert_eq!(joined, items[..n], "every item once, in order");
        }
        let sizes: Vec<usize> = pow2_chunks(&items[..100], 64).map(<[u32]>::len).collect();
        assert_eq!(sizes, [64, 32, 4]);
    }

    #[test]
    fn upserts_number_their_parameters_per_backend() {
        let pg = upsert_sql("daily_spend", DAILY_KEYS, 2, true);
        assert!(pg.contains("($13, $14,") && pg.contains("$24)"));
        assert!(!upsert_sql("daily_spend", DAILY_KEYS, 2, false).contains('$'));
        assert!(pg
            .ends_with("failed_requests = daily_spend.failed_requests + excluded.failed_requests"));
    }

    /// The rollups are sums of the daily rows, so they can never disagree with them.
    #[test]
    fn rollups_sum_the_daily_rows() {
        let mut records: Vec<SpendRecord> =
            (0..10).map(|i| call(i, SpendStatus::Success)).collect();
        records[3].api_key = "k2".into();
        records[4].team_id = Some("t".into());
        let inserted: Vec<&SpendRecord> = records.iter().collect();
        let daily = daily_deltas(&inserted);
        assert_eq!(daily.len(), 3);
        let (by_key, by_team_model) = rollup_deltas(&daily);
        assert_eq!(by_key.len(), 2);
        assert_eq!(by_key[&(day("2026-01-02"), "k")].requests, 9);
        assert_eq!(by_team_model.len(), 2);
        assert_eq!(
            by_team_model[&(day("2026-01-02"), "", "m", "")].spend_nanos,
            90
        );
        assert_eq!(
            by_team_model[&(day("2026-01-02"), "t", "m", "")].spend_nanos,
            10
        );
    }

    #[test]
    fn owner_totals_are_the_json_serde_writes() {
        let pairs = [("team \"a\"", 5), ("", -1), ("ü", i64::MAX)];
        let expected = serde_json::json!([["team \"a\"", 5], ["", -1], ["ü", i64::MAX]]);
        assert_eq!(json_pairs(&pairs), expected.to_string());
        assert_eq!(json_pairs(&[]), "[]");
    }

    /// A repeated id counts once; a stored one not at all.
    #[test]
    fn fresh_records_skip_stored_and_repeated_ids() {
        let records: Vec<SpendRecord> = [1, 2, 1, 3, 2]
            .iter()
            .map(|&i| call(i, SpendStatus::Success))
            .collect();
        let stored: HashSet<&str> = ["r3"].into_iter().collect();
        let fresh = fresh_records(&records, &stored);
        let ids: Vec<&str> = fresh.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2"]);
        let owners = owner_spend(&fresh);
        assert_eq!(owners.keys, [("k", 20)]);
        assert_eq!(owners.users, [("u", 20)]);
        assert!(owners.teams.is_empty());
        assert_eq!(json_pairs(&owners.keys), r#"[["k",20]]"#);
    }
}
