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
    /// A statement on SQLite's spend writer connection (its own, outside sqlx) failed.
    #[error("database query failed while {context}: {source}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite's spend writer thread could not take or finish a batch.
    #[error("the spend writer's database thread failed: {0}")]
    SpendThread(&'static str),
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
    /// The database could not be reached (refused, timed out, not accepting connections yet,
    /// out of connection slots) rather than refusing what was asked: waiting and trying again
    /// may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Connect(source)
            | StoreError::Query { source, .. }
            | StoreError::Migration { source, .. } => unreachable_error(source),
            // The file cannot be opened (gone, unreadable, its folder unmounted).
            StoreError::Sqlite { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen)
            }
            StoreError::SpendThread(_) => false,
            StoreError::BadUrl(_)
            | StoreError::SchemaTooNew { .. }
            | StoreError::Conflict { .. }
            | StoreError::NotFound { .. } => false,
        }
    }

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

fn unreachable_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL's classes 08 (connection exception) and 53 (insufficient resources, e.g.
        // too many connections), and 57P01-57P03 (shutting down, starting up).
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || c.starts_with("53") || matches!(&*c, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailability_and_refusals_are_not() {
        let io = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(StoreError::Connect(io()).is_unavailable());
        assert!(StoreError::Connect(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::Query {
            context: "reading",
            source: io()
        }
        .is_unavailable());
        assert!(!StoreError::BadUrl("x".into()).is_unavailable());
        assert!(!StoreError::SchemaTooNew { found: 9, known: 7 }.is_unavailable());
        assert!(!StoreError::Connect(sqlx::Error::Configuration("bad".into())).is_unavailable());
        assert!(!StoreError::Query {
            context: "reading",
            source: sqlx::Error::RowNotFound
        }
        .is_unavailable());
    }
}
