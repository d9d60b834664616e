//! Schema migrations, one list per backend, applied in order inside a transaction each.
//! A database newer than this binary is refused rather than used with a schema we don't know.

use crate::connect::{Backend, Store};
use crate::error::{QueryContext, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// The schema this binary writes: the last migration of each backend.
pub const SCHEMA_VERSION: i64 = 10;

const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "settings and spend logs",
        sql: include_str!("migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "users, teams, invitations, sessions, audit log",
        sql: include_str!("migrations/sqlite/0002_identity.sql"),
    },
    Migration {
        version: 3,
        name: "virtual keys and deleted keys",
        sql: include_str!("migrations/sqlite/0003_keys.sql"),
    },
    Migration {
        version: 4,
        name: "daily spend aggregates and spend log paging indexes",
        sql: include_str!("migrations/sqlite/0004_daily_spend.sql"),
    },
    Migration {
        version: 5,
        name: "budget periods for users and teams",
        sql: include_str!("migrations/sqlite/0005_budget_resets.sql"),
    },
    Migration {
        version: 6,
        name: "spend rollups per key and per team and model",
        sql: include_str!("migrations/sqlite/0006_spend_rollups.sql"),
    },
    Migration {
        version: 7,
        name: "idempotency keys of create requests",
        sql: include_str!("migrations/sqlite/0007_idempotency_keys.sql"),
    },
    Migration {
        version: 8,
        name: "rows imported from another gateway",
        sql: include_str!("migrations/sqlite/0008_imported_rows.sql"),
    },
    Migration {
        version: 9,
        name: "OpenID Connect sign-ins in progress, linked identities, ID tokens of sessions",
        sql: include_str!("migrations/sqlite/0009_sso.sql"),
    },
    Migration {
        version: 10,
        name: "user and team log indexes without the rows that have none",
        sql: include_str!("migrations/sqlite/0010_spend_log_owner_indexes.sql"),
    },
];

const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "settings and spend logs",
        sql: include_str!("migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "users, teams, invitations, sessions, audit log",
        sql: include_str!("migrations/postgres/0002_identity.sql"),
    },
    Migration {
        version: 3,
        name: "virtual keys and deleted keys",
        sql: include_str!("migrations/postgres/0003_keys.sql"),
    },
    Migration {
        version: 4,
        name: "daily spend aggregates and spend log paging indexes",
        sql: include_str!("migrations/postgres/0004_daily_spend.sql"),
    },
    Migration {
        version: 5,
        name: "budget periods for users and teams",
        sql: include_str!("migrations/postgres/0005_budget_resets.sql"),
    },
    Migration {
        version: 6,
        name: "spend rollups per key and per team and model",
        sql: include_str!("migrations/postgres/0006_spend_rollups.sql"),
    },
    Migration {
        version: 7,
        name: "idempotency keys of create requests",
        sql: include_str!("migrations/postgres/0007_idempotency_keys.sql"),
    },
    Migration {
        version: 8,
        name: "rows imported from another gateway",
        sql: include_str!("migrations/postgres/0008_imported_rows.sql"),
    },
    Migration {
        version: 9,
        name: "OpenID Connect sign-ins in progress, linked identities, ID tokens of sessions",
        sql: include_str!("migrations/postgres/0009_sso.sql"),
    },
    Migration {
        version: 10,
        name: "user and team log indexes without the rows that have none",
        sql: include_str!("migrations/postgres/0010_spend_log_owner_indexes.sql"),
    },
];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS tollgate_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

// Each migration's text runs as a query without arguments, which both backends execute as a
// plain multi-statement script; unlike `sqlx::raw_sql`'s, that future is `Send`, so a start that
// waits for its database can migrate from a spawned task.
pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    match &store.backend {
        Backend::Sqlite(pool) => {
            sqlx::query(CREATE_TABLE)
                .execute(pool)
                .await
                .context("creating the migrations table")?;
            let current: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM tollgate_migrations")
                    .fetch_one(pool)
                    .await
                    .context("reading the schema version")?;
            check_not_newer(current, SQLITE)?;
            for m in SQLITE.iter().filter(|m| Some(m.version) > current) {
                let mut tx = pool.begin().await.context("starting a migration")?;
                sqlx::Executor::execute(&mut *tx, m.sql)
                    .await
                    .map_err(|source| StoreError::Migration {
                        version: m.version,
                        name: m.name,
                        source,
                    })?;
                sqlx::query(
                    "INSERT INTO tollgate_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                )
                .bind(m.version)
                .bind(m.name)
                .bind(chrono::Utc::now().to_rfc3339())
                .execute(&mut *tx)
                .await
                .context("recording a migration")?;
                tx.commit().await.context("committing a migration")?;
            }
        }
        Backend::Postgres(pool) => {
            // Several instances may start at once: serialise migrations on an advisory lock.
            let mut conn = pool.acquire().await.context("acquiring a connection")?;
            sqlx::query("SELECT pg_advisory_lock(7461626)")
                .execute(&mut *conn)
                .await
                .context("taking the migration lock")?;
            let result = run_postgres(&mut conn).await;
            sqlx::query("SELECT pg_advisory_unlock(7461626)")
                .execute(&mut *conn)
                .await
                .context("releasing the migration lock")?;
            result?;
        }
    }
    Ok(())
}

async fn run_postgres(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    sqlx::query(CREATE_TABLE)
        .execute(&mut *conn)
        .await
        .context("creating the migrations table")?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM tollgate_migrations")
        .fetch_one(&mut *conn)
        .await
        .context("reading the schema version")?;
    check_not_newer(current, POSTGRES)?;
    for m in POSTGRES.iter().filter(|m| Some(m.version) > current) {
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .context("starting a migration")?;
        sqlx::Executor::execute(&mut *tx, m.sql)
            .await
            .map_err(|source| StoreError::Migration {
                version: m.version,
                name: m.name,
                source,
            })?;
        sqlx::query(
            "INSERT INTO tollgate_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await
        .context("recording a migration")?;
        tx.commit().await.context("committing a migration")?;
    }
    Ok(())
}

impl Store {
    /// The highest migration applied to the database (`None` before the first).
    pub async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        let sql = "SELECT MAX(version) FROM tollgate_migrations";
        match &self.backend {
            Backend::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Backend::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .context("reading the schema version")
    }
}

fn check_not_newer(current: Option<i64>, known: &[Migration]) -> Result<(), StoreError> {
    let latest = known.last().map(|m| m.version).unwrap_or(0);
    match current {
        Some(found) if found > latest => Err(StoreError::SchemaTooNew {
            found,
            known: latest,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn schema_version_is_the_last_migration_on_both_backends() {
        for list in [SQLITE, POSTGRES] {
            assert_eq!(list.last().map(|m| m.version), Some(SCHEMA_VERSION));
            for (i, m) in list.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1, "{}", m.name);
            }
        }
    }
}
