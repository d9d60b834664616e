//! Where the spend journal lives and whether it is on (`TOLLGATE_SPEND_JOURNAL`,
//! `TOLLGATE_SPEND_JOURNAL_DIR`), and the replay of what an earlier run left in it.

use std::path::PathBuf;
use std::sync::Arc;

use tollgate_ledger::Journal;
use tollgate_store::Store;

use crate::app::Options;
use crate::error::StartError;

/// Next to the SQLite file when there is one (so each database has its own journal), else in
/// the working folder.
fn default_dir(db_url: Option<&str>) -> PathBuf {
    let sqlite_file = match db_url.map(str::trim) {
        None | Some("") => Some(tollgate_store::DEFAULT_SQLITE_PATH.to_string()),
        Some(u) => u.strip_prefix("sqlite:").and_then(|rest| {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let path = rest.split('?').next().unwrap_or("");
            (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.to_string())
        }),
    };
    match sqlite_file {
        Some(f) => PathBuf::from(format!("{f}.spend-journal")),
        None => PathBuf::from("tollgate-spend-journal"),
    }
}

/// The journal's folder, or `None` when it is turned off. Read before the database is reached,
/// so a bad setting stops the start at once.
pub fn dir(opts: &Options, db_url: Option<&str>) -> Result<Option<PathBuf>, StartError> {
    let on = match opts
        .env_var("TOLLGATE_SPEND_JOURNAL")
        .as_deref()
        .map(str::trim)
    {
        None | Some("") | Some("on") | Some("true") | Some("1") => true,
        Some("off") | Some("false") | Some("0") => false,
        Some(other) => {
            return Err(StartError::Settings(format!(
                "TOLLGATE_SPEND_JOURNAL: expected on or off, got {other:?}"
            )))
        }
    };
    if !on {
        return Ok(None);
    }
    Ok(Some(
        opts.env_var("TOLLGATE_SPEND_JOURNAL_DIR")
            .filter(|d| !d.trim().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| default_dir(db_url)),
    ))
}

/// Opens the journal in `dir` (replaying an earlier run's records into the store first), or
/// `None` when it is turned off.
pub async fn open(
    dir: Option<&PathBuf>,
    store: &Store,
) -> Result<Option<Arc<Journal>>, StartError> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    let (journal, replay) = Journal::open(dir, store)
        .await
        .map_err(|e| StartError::Journal(Box::new(e)))?;
    if replay.records > 0 || replay.torn > 0 {
        tracing::warn!(
            records = replay.records,
            recovered = replay.inserted,
            torn_lines = replay.torn,
            dir = %dir.display(),
            "replayed the spend journal an earlier run left behind"
        );
    }
    Ok(Some(Arc::new(journal)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_sits_beside_the_sqlite_file() {
        assert_eq!(
            default_dir(None),
            PathBuf::from("./tollgate.db.spend-journal")
        );
        assert_eq!(
            default_dir(Some("sqlite:/var/lib/t.db?mode=rwc")),
            PathBuf::from("/var/lib/t.db.spend-journal")
        );
        assert_eq!(
            default_dir(Some("sqlite://data/t.db")),
            PathBuf::from("data/t.db.spend-journal")
        );
        assert_eq!(
            default_dir(Some("postgresql://u@h/db")),
            PathBuf::from("tollgate-spend-journal")
        );
    }
}
