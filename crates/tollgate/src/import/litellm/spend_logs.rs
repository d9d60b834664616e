//! `--spend-logs`: LiteLLM's call log streamed into Tollgate's in batches, so the memory used is
//! one batch however long the history. Records already in the store (by request id) are skipped
//! by the store itself, which makes re-running safe.

use std::io::{IsTerminal, Write};

use tollgate_store::Store;

use super::convert;
use super::source::Source;
use super::ImportError;
use crate::import::report::Report;

/// Exceptions listed one by one; past this many only the count grows (a bad column in a
/// 10-million-row table must not fill memory with messages).
const MAX_LISTED: u64 = 100;

const KIND: &str = "spend logs";

/// Imports the logs that started on or after the UTC day `since`; older ones are counted as
/// skipped (their days come from LiteLLM's daily totals, see `daily`).
pub async fn import(
    source: &mut Source,
    store: &Store,
    since: &str,
    batch_size: i64,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), ImportError> {
    let all = source.count("LiteLLM_SpendLogs").await?;
    let older = source.count_logs_before(since).await?;
    let total = all - older;
    report.count_mut(KIND).found = u64::try_from(all).unwrap_or(0);
    if older > 0 {
        report.count_mut(KIND).skipped += u64::try_from(older).unwrap_or(0);
        report.except(
            "spend logs",
            format!("before {since}"),
            format!(
                "{older} logs not imported: an earlier import took those days from LiteLLM's \
                 daily totals, so their calls are in the daily views already"
            ),
        );
    }
    if dry_run {
        report.except(
            "spend logs",
            "*",
            "dry run: counted only; logs already in the store are skipped by a real run"
                .to_string(),
        );
        return Ok(());
    }
    let progress = std::io::stderr().is_terminal();
    let mut last = String::new();
    let mut done: u64 = 0;
    let mut unlisted: u64 = 0;
    loop {
        let rows = source.spend_logs_after(&last, since, batch_size).await?;
        let Some(tail) = rows.last().and_then(|r| r.text("request_id")) else {
            break;
        };
        last = tail;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            match convert::spend_record(row) {
                Ok(r) => records.push(r),
                Err(why) => {
                    report.count_mut(KIND).skipped += 1;
                    if report.count(KIND).skipped <= MAX_LISTED {
                        let id = row.text("request_id").unwrap_or_default();
                        report.except("spend log", id, why);
                    } else {
                        unlisted += 1;
                    }
                }
            }
        }
        let inserted = store.insert_spend_history(&records).await?.len() as u64;
        let c = report.count_mut(KIND);
        c.imported += inserted;
        c.unchanged += records.len() as u64 - inserted;
        done += rows.len() as u64;
        if progress {
            let pct = (done * 100).checked_div(total.max(1) as u64).unwrap_or(100);
            eprint!("\rspend logs: {done}/{total} ({pct}%)");
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprintln!();
    }
    if unlisted > 0 {
        report.except(
            "spend log",
            "...",
            format!("{unlisted} more spend logs skipped"),
        );
    }
    Ok(())
}
