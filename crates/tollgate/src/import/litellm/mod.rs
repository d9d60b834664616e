//! `tollgate import litellm`: a LiteLLM proxy database carried into Tollgate's store, so every
//! existing `sk-…` key keeps working (LiteLLM and Tollgate both store the SHA-256 hex of a key).
//!
//! The run reads the LiteLLM database in one read-only transaction ([`source`]), converts its
//! rows ([`convert`]), decides what each becomes against the store ([`plan`]), stops before
//! writing if anything conflicts, then writes ([`write`]) and streams the spend logs
//! ([`spend_logs`]).

mod convert;
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

pub async fn run(options: &Options, store: &Store) -> Result<Report, ImportError> {
    let mut source = source::Source::open(&options.from).await?;
    let result = run_on(&mut source, options, store).await;
    source.close().await;
    result
}

async fn run_on(
    source: &mut source::Source,
    options: &Options,
    store: &Store,
) -> Result<Report, ImportError> {
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
    }
    let plan = plan::plan(&src, store, Utc::now(), &mut report).await?;
    if !plan.conflicts.is_empty() {
        return Err(ImportError::Conflicts(plan.conflicts));
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
    } else {
        write::write(plan, store, options, &mut report).await?;
    }
    if options.spend_logs {
        spend_logs::import(
            source,
            store,
            options.batch_size,
            options.dry_run,
            &mut report,
        )
        .await?;
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
