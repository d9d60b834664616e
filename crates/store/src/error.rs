#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL is not valid: {0}")]
    BadUrl(String),
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("the database schema is at version {found}, newer than this Tollgate knows ({known}); upgrade Tollgate")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("database query failed while {context}: {source}")]
    Query {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A write collided with an existing row (a duplicate id, email, membership, …).
    #[error("{what} already exists")]
    Conflict { what: String },
    /// A write referred to a row that does not exist (e.g. an invitation for an unknown user).
    #[error("{what} does not exist")]
    NotFound { what: String },
}

/// Adds what the query was doing to a sqlx error.
pub(crate) trait QueryContext<T> {
    fn context(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, sqlx::Error> {
    fn context(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { context, source })
    }
}

impl StoreError {
    /// A transaction PostgreSQL aborted to break a deadlock or a serialization conflict with
    /// another writer (several instances committing spend at once): retrying it is safe.
    pub(crate) fn is_transient_conflict(&self) -> bool {
        let StoreError::Query { source, .. } = self else {
            return false;
        };
        source
            .as_database_error()
            .and_then(|db| db.code())
            .is_some_and(|code| code == "40P01" || code == "40001")
    }
}

/// The constraint a failed write broke, when it was one the caller can act on.
pub(crate) enum Violation {
    /// Carries the constraint's name (PostgreSQL) or the error message (SQLite, which names
    /// the columns there), so callers can tell which unique key collided.
    Unique(String),
    ForeignKey,
}

pub(crate) fn violation(e: &sqlx::Error) -> Option<Violation> {
    let db = e.as_database_error()?;
    if db.is_unique_violation() {
        let detail = db.constraint().unwrap_or_else(|| db.message());
        Some(Violation::Unique(detail.to_string()))
    } else if db.is_foreign_key_violation() {
        Some(Violation::ForeignKey)
    } else {
        None
    }
}
