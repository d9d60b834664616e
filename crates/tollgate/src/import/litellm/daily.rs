//! `--spend-logs`, older days: LiteLLM deletes spend logs past its retention period but keeps its
//! daily per-user totals (`LiteLLM_DailyUserSpend`) for good. One cut-off day splits the two:
//! the days before it come from those totals, into the daily views (not the call log, which they
//! do not describe call by call); the days from it on come from the logs. The first import
//! decides the cut-off (the day of LiteLLM's oldest log then) and records it; later imports keep
//! it, however much LiteLLM has deleted since, so no day is counted twice.

use std::collections::HashMap;

use chrono::NaiveDate;
use tollgate_store::{DailyHistory, Store};

use super::plan::SOURCE;
use super::row::Row;
use super::source::Source;
use super::ImportError;
use crate::import::report::Report;

const KIND: &str = "daily spend";
/// The kind its rows are recorded under in `imported_rows`.
const RECORDED_AS: &str = "daily_user_spend";
/// The kind the cut-off day is recorded under (its id is the day).
const CUTOFF: &str = "daily_cutoff";

/// The cut-off day (`YYYY-MM-DD`): the one an earlier import recorded, else the day of the
/// oldest spend log (tomorrow when there are none: every day comes from the totals), recorded
/// now unless this is a dry run.
pub async fn cutoff(
    source: &mut Source,
    store: &Store,
    dry_run: bool,
) -> Result<String, ImportError> {
    let recorded = store.imported_ids(SOURCE, CUTOFF).await?;
    if let Some(day) = recorded.into_iter().min() {
        return Ok(day);
    }
    let day = match source.first_log_day().await? {
        Some(d) => d,
        None => (chrono::Utc::now() + chrono::Duration::days(1))
            .format("%Y-%m-%d")
            .to_string(),
    };
    if !dry_run {
        store
            .record_imported(SOURCE, CUTOFF, std::slice::from_ref(&day))
            .await
            .map_err(|source| ImportError::Write {
                row: "the daily spend cut-off".to_string(),
                source,
            })?;
    }
    Ok(day)
}

fn nanos(usd: Option<f64>) -> i64 {
    usd.map_or(0, |u| tollgate_domain::money::NanoUsd::from_usd(u).0)
}

/// A LiteLLM daily row as Tollgate's daily totals; `team_of` gives a key's team (LiteLLM's
/// per-user table has none).
fn history(r: &Row, team_of: &HashMap<String, String>) -> Result<DailyHistory, String> {
    let id = r.text("id").ok_or("no id")?;
    let day = r
        .text("date")
        .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
        .ok_or("no date as YYYY-MM-DD")?;
    let api_key = r.text("api_key").unwrap_or_default();
    let model = r.text("model").unwrap_or_default();
    Ok(DailyHistory {
        source_id: id,
        day,
        team_id: team_of.get(&api_key).cloned().unwrap_or_default(),
        api_key,
        user_id: r.text("user_id").unwrap_or_default(),
        model_group: r.text("model_group").unwrap_or(model),
        custom_llm_provider: r.text("custom_llm_provider").unwrap_or_default(),
        spend_nanos: nanos(r.float("spend")),
        prompt_tokens: r.int("prompt_tokens").unwrap_or(0),
        completion_tokens: r.int("completion_tokens").unwrap_or(0),
        requests: r.int("api_requests").unwrap_or(0),
        successful_requests: r.int("successful_requests").unwrap_or(0),
        failed_requests: r.int("failed_requests").unwrap_or(0),
    })
}

/// Imports the daily totals of the days before `cutoff`.
pub async fn import(
    source: &mut Source,
    store: &Store,
    team_of: &HashMap<String, String>,
    cutoff: &str,
    batch_size: i64,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), ImportError> {
    if !source.has_table("LiteLLM_DailyUserSpend").await? {
        return Ok(());
    }
    let before = Some(cutoff);
    let total = source.count_daily_before(before).await?;
    report.count_mut(KIND).found = u64::try_from(total).unwrap_or(0);
    if total > 0 {
        report.except(
            "daily spend",
            "LiteLLM_DailyUserSpend",
            format!(
                "the days before {cutoff} come from LiteLLM's daily totals: they show in the \
                 daily views, not in the call log (a day LiteLLM's retention cut part-way shows \
                 only its remaining logs)"
            ),
        );
    }
    if dry_run {
        return Ok(());
    }
    let mut last = String::new();
    loop {
        let rows = source.daily_after(&last, before, batch_size).await?;
        let Some(tail) = rows.last().and_then(|r| r.text("id")) else {
            break;
        };
        last = tail;
        let mut history_rows = Vec::with_capacity(rows.len());
        for r in &rows {
            match history(r, team_of) {
                Ok(h) => history_rows.push(h),
                Err(why) => {
                    report.count_mut(KIND).skipped += 1;
                    report.except(
                        "daily spend",
                        r.text("id").unwrap_or_default(),
                        why.to_string(),
                    );
                }
            }
        }
        let added = store
            .insert_daily_history(SOURCE, RECORDED_AS, &history_rows)
            .await
            .map_err(|source| ImportError::Write {
                row: "daily spend".to_string(),
                source,
            })? as u64;
        let c = report.count_mut(KIND);
        c.imported += added;
        c.unchanged += history_rows.len() as u64 - added;
    }
    Ok(())
}
