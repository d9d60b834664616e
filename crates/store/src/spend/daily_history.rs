//! Daily totals carried over from another gateway for days whose calls it no longer logs: added
//! to the daily aggregates (and their rollups) without log rows, each source row once.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;

use super::{
    day_text, pow2_chunks, rollup_deltas, upsert_sql, DailyDelta, DailyKey, BY_KEY_KEYS,
    BY_TEAM_MODEL_KEYS, DAILY_KEYS, UPSERT_ROWS_PER_STATEMENT,
};
use crate::connect::{Backend, Store};
use crate::db::WritePool;
use crate::error::{QueryContext, StoreError};
use crate::imported::{PG_RECORD, SQLITE_RECORD};

/// One day's totals for one key, user, team, model and provider ("" where there is none).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyHistory {
    /// The row's id in the source, recorded in `imported_rows` so it is added once.
    pub source_id: String,
    pub day: NaiveDate,
    pub api_key: String,
    pub user_id: String,
    pub team_id: String,
    pub model_group: String,
    pub custom_llm_provider: String,
    pub spend_nanos: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub requests: i64,
    pub successful_requests: i64,
    pub failed_requests: i64,
}

const SQLITE_DONE: &str = "SELECT source_id FROM imported_rows WHERE source = ? AND kind = ? \
    AND source_id IN (SELECT value FROM json_each(?))";
const PG_DONE: &str = "SELECT source_id FROM imported_rows WHERE source = $1 AND kind = $2 \
    AND source_id = ANY($3)";

fn deltas<'a>(rows: &[&'a DailyHistory]) -> BTreeMap<DailyKey<'a>, DailyDelta> {
    let mut out: BTreeMap<DailyKey<'a>, DailyDelta> = BTreeMap::new();
    for r in rows {
        let key = (
            r.day,
            r.api_key.as_str(),
            r.user_id.as_str(),
            r.team_id.as_str(),
            r.model_group.as_str(),
            r.custom_llm_provider.as_str(),
        );
        out.entry(key).or_default().add(&DailyDelta {
            spend_nanos: r.spend_nanos,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            requests: r.requests,
            successful_requests: r.successful_requests,
            failed_requests: r.failed_requests,
        });
    }
    out
}

/// The rows not recorded yet, each id once.
fn fresh<'a>(rows: &'a [DailyHistory], done: &HashSet<String>) -> Vec<&'a DailyHistory> {
    let mut seen = HashSet::new();
    rows.iter()
        .filter(|r| !done.contains(&r.source_id) && seen.insert(r.source_id.as_str()))
        .collect()
}

impl Store {
    /// Adds `rows` to the daily aggregates, skipping those already recorded as imported from
    /// `source` under `kind`, and records the rest, in one transaction: a rerun adds nothing.
    /// Returns how many rows were added.
    pub async fn insert_daily_history(
        &self,
        source: &str,
        kind: &str,
        rows: &[DailyHistory],
    ) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.source_id.as_str()).collect();
        let id_list = crate::db::json_strings(&ids);
        macro_rules! run {
            ($tx:expr, $done_sql:expr, $done_ids:expr, $record_sql:expr, $numbered:expr) => {{
                let mut tx = $tx;
                let done: Vec<String> = sqlx::query_scalar($done_sql)
                    .bind(source)
                    .bind(kind)
                    .bind($done_ids)
                    .fetch_all(&mut *tx)
                    .await
                    .context("reading imported daily rows")?;
                let done: HashSet<String> = done.into_iter().collect();
                let fresh = fresh(rows, &done);
                if !fresh.is_empty() {
                    apply_daily_map!(tx, deltas(&fresh), $numbered);
                    let fresh_ids: Vec<&str> = fresh.iter().map(|r| r.source_id.as_str()).collect();
                    sqlx::query($record_sql)
                        .bind(source)
                        .bind(kind)
                        .bind(crate::db::now())
                        .bind(crate::db::json_strings(&fresh_ids))
                        .execute(&mut *tx)
                        .await
                        .context("recording imported daily rows")?;
                }
                tx.commit().await.context("committing daily history")?;
                Ok(fresh.len())
            }};
        }
        match &self.backend {
            Backend::Sqlite(p) => {
                let tx = p.begin_write().await.context("starting daily history")?;
                run!(tx, SQLITE_DONE, &id_list, SQLITE_RECORD, false)
            }
            Backend::Postgres(p) => {
                let tx = p.begin().await.context("starting daily history")?;
                run!(tx, PG_DONE, &ids, PG_RECORD, true)
            }
        }
    }
}
