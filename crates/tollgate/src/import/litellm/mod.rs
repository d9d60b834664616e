//! `tollgate import litellm`: a LiteLLM proxy database carried into Tollgate's store, so every
//! existing `sk-…` key keeps working (LiteLLM and Tollgate both store the SHA-256 hex of a key).
//!
//! The run reads the LiteLLM database in one read-only transaction ([`source`]), converts its
//! rows ([`convert`]), decides what each becomes against the store ([`plan`]), stops before
//! writing if anything conflicts, then writes ([`write`]) and streams the spend logs
//! ([`spend_logs`]).

mod convert;
mod daily;
mod plan;
mod row;
mod source;
mod spend_logs;
mod write;

use chrono::Utc;
use tollgate_store::{Store, StoreError};

use crate::import::report::Report;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}: {1}")]
    Source(&'static str, #[source] sqlx::Error),
    #[error("--from must be a postgresql:// URL (LiteLLM's proxy database is PostgreSQL)")]
    NotPostgres,
    #[error("LiteLLM database: a row is not valid JSON: {0}")]
    RowJson(#[source] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing {row}: {source}")]
    Write {
        row: String,
        #[source]
        source: StoreError,
    },
    #[error(
        "Tollgate's database holds LiteLLM's tables ({0}): it is LiteLLM's own database or a copy \
         of it; import into a separate database (DATABASE_URL or --database-url)"
    )]
    LitellmTablesInStore(String),
    #[error(
        "a dry run changes nothing, and Tollgate's database is at schema version {found} where \
         this binary needs {needed}: run `tollgate migrate` first"
    )]
    DryRunNeedsMigration { found: i64, needed: i64 },
    #[error("a dry run on a store that does not exist yet: {0}")]
    Scratch(#[source] std::io::Error),
    #[error("generating an invitation link: {0}")]
    Invitation(#[source] tollgate_identity::tokens::TokenError),
    #[error(
        "--from and Tollgate's own database are the same database; import into a separate one"
    )]
    SameDatabase,
    #[error("nothing was imported: {} row(s) conflict with rows already in Tollgate's store:\n  {}", .0.len(), .0.join("\n  "))]
    Conflicts(Vec<String>),
}

/// What to import and how.
#[derive(Clone)]
pub struct Options {
    /// LiteLLM's database URL. Secret (it may hold a password): never printed.
    pub from: String,
    pub dry_run: bool,
    pub spend_logs: bool,
    /// Spend logs read and written per batch.
    pub batch_size: i64,
    /// The gateway's public URL, for the invitation links.
    pub base_url: String,
    /// Set to email each fresh invitation link to its user.
    pub mailer: Option<std::sync::Arc<tollgate_mailer::Mailer>>,
    /// Import keys, teams and users whose limits Tollgate cannot enforce, without those limits
    /// (otherwise they are skipped, each named).
    pub allow_weaker_limits: bool,
}

/// An import that stopped. `written` is what it had done before the error (links included),
/// `None` when nothing was written.
#[derive(Debug)]
pub struct Failed {
    pub error: ImportError,
    pub written: Option<Report>,
}

impl From<ImportError> for Failed {
    fn from(error: ImportError) -> Failed {
        Failed {
            error,
            written: None,
        }
    }
}

/// The store an import writes to (or, in a dry run, plans against).
pub struct ImportStore {
    pub store: Store,
    /// Holds the scratch store's folder for as long as the dry run needs it.
    _scratch: Option<tempfile::TempDir>,
}

/// Opens Tollgate's store for an import without changing anything first: a database that
/// holds LiteLLM's tables is refused before Tollgate's are created in it. A real run then
/// brings the schema up to date; a dry run never migrates: a store that does not exist yet (or
/// is empty) is planned against an empty scratch store, one at an older schema is refused.
pub async fn open_store(url: Option<&str>, dry_run: bool) -> Result<ImportStore, ImportError> {
    let store = match Store::connect_existing(url)? {
        Some(store) => store,
        None if dry_run => return scratch_store().await,
        None => Store::connect(url)?,
    };
    store.reach().await?;
    let tables = store.table_names().await?;
    let litellm: Vec<&str> = tables
        .iter()
        .map(String::as_str)
        .filter(|t| t.starts_with("LiteLLM_"))
        .take(3)
        .collect();
    if !litellm.is_empty() {
        store.close().await;
        return Err(ImportError::LitellmTablesInStore(litellm.join(", ")));
    }
    if !dry_run {
        store.prepare().await?;
        return Ok(ImportStore {
            store,
            _scratch: None,
        });
    }
    if tables.is_empty() {
        store.close().await;
        return scratch_store().await;
    }
    let found = store.schema_version().await?.unwrap_or(0);
    if found > tollgate_store::SCHEMA_VERSION {
        store.close().await;
        return Err(StoreError::SchemaTooNew {
            found,
            known: tollgate_store::SCHEMA_VERSION,
        }
        .into());
    }
    if found < tollgate_store::SCHEMA_VERSION {
        store.close().await;
        return Err(ImportError::DryRunNeedsMigration {
            found,
            needed: tollgate_store::SCHEMA_VERSION,
        });
    }
    Ok(ImportStore {
        store,
        _scratch: None,
    })
}

async fn scratch_store() -> Result<ImportStore, ImportError> {
    let dir = tempfile::tempdir().map_err(ImportError::Scratch)?;
    let path = dir.path().join("scratch.db");
    let store = Store::open_sqlite_file(&path.to_string_lossy()).await?;
    Ok(ImportStore {
        store,
        _scratch: Some(dir),
    })
}

/// Refuses to import a database into itself: with `DATABASE_URL` still pointing at LiteLLM's
/// database, Tollgate would otherwise create its tables there.
pub fn check_distinct(from: &str, store_url: Option<&str>) -> Result<(), ImportError> {
    let (Ok(a), Some(Ok(b))) = (url::Url::parse(from), store_url.map(url::Url::parse)) else {
        return Ok(());
    };
    let pg = |u: &url::Url| matches!(u.scheme(), "postgres" | "postgresql");
    if pg(&a)
        && pg(&b)
        && a.host_str() == b.host_str()
        && a.port().unwrap_or(5432) == b.port().unwrap_or(5432)
        && a.path() == b.path()
    {
        return Err(ImportError::SameDatabase);
    }
    Ok(())
}

pub async fn run(options: &Options, store: &Store) -> Result<Report, Failed> {
    let mut source = source::Source::open(&options.from).await?;
    let result = run_on(&mut source, options, store).await;
    source.close().await;
    result
}

async fn run_on(
    source: &mut source::Source,
    options: &Options,
    store: &Store,
) -> Result<Report, Failed> {
    let src = plan::Source {
        users: source.rows("LiteLLM_UserTable", "user_id").await?,
        teams: source.rows("LiteLLM_TeamTable", "team_id").await?,
        memberships: source
            .rows("LiteLLM_TeamMembership", "team_id, user_id")
            .await?,
        keys: source.rows("LiteLLM_VerificationToken", "token").await?,
        budgets: source.rows("LiteLLM_BudgetTable", "budget_id").await?,
        invitations: source.rows("LiteLLM_InvitationLink", "id").await?,
        models: source.rows("LiteLLM_ProxyModelTable", "model_id").await?,
    };
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    // Every kind gets a line, found or not, so the table reads the same on every run.
    for kind in [
        "users",
        "teams",
        "team members",
        "keys",
        "budgets",
        "invitations",
        "models",
    ] {
        report.count_mut(kind);
    }
    if options.spend_logs {
        report.count_mut("spend logs");
        report.count_mut("daily spend");
    }
    // Which team each LiteLLM key belongs to: its daily totals do not say.
    let team_of: std::collections::HashMap<String, String> = src
        .keys
        .iter()
        .filter_map(|k| Some((k.text("token")?, k.text("team_id")?)))
        .collect();
    let plan = plan::plan(
        &src,
        store,
        Utc::now(),
        options.allow_weaker_limits,
        &mut report,
    )
    .await?;
    if !plan.conflicts.is_empty() {
        return Err(ImportError::Conflicts(plan.conflicts).into());
    }
    if options.dry_run {
        for (user_id, email) in &plan.fresh_invitations {
            report
                .invitations
                .push(crate::import::report::FreshInvitation {
                    user_id: user_id.clone(),
                    email: email.clone(),
                    link: None,
                    email_sent: None,
                });
        }
    } else if let Err(error) = write::write(plan, store, options, &mut report).await {
        return Err(Failed {
            error,
            written: Some(report),
        });
    }
    if options.spend_logs {
        let history = async {
            let cutoff = daily::cutoff(source, store, options.dry_run).await?;
            spend_logs::import(
                source,
                store,
                &cutoff,
                options.batch_size,
                options.dry_run,
                &mut report,
            )
            .await?;
            Ok(cutoff)
        }
        .await;
        let logs = match history {
            Ok(cutoff) => {
                daily::import(
                    source,
                    store,
                    &team_of,
                    &cutoff,
                    options.batch_size,
                    options.dry_run,
                    &mut report,
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(error) = logs {
            return Err(Failed {
                error,
                written: (!options.dry_run).then_some(report),
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_import_a_database_into_itself() {
        let from = "postgresql://u:secret@db:5432/litellm";
        assert!(matches!(
            check_distinct(from, Some("postgres://other@db/litellm")),
            Err(ImportError::SameDatabase)
        ));
        assert!(check_distinct(from, Some("postgres://u@db/tollgate")).is_ok());
        assert!(check_distinct(from, Some("sqlite:tollgate.db")).is_ok());
        assert!(check_distinct(from, None).is_ok());
    }
}
