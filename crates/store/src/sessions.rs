//! Server-side login sessions. Only the SHA-256 of the session id (and of its CSRF token) is
//! stored. A session is live while `now` is before both its idle and its absolute expiry.

use chrono::{DateTime, Utc};

use crate::connect::Store;
use crate::db::{on_backend, ReadRow};
use crate::error::{violation, QueryContext, StoreError, Violation};

/// Where a session is used: the browser UI (cookie + CSRF) or the management API (bearer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Ui,
    Api,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Ui => "ui",
            SessionKind::Api => "api",
        }
    }

    fn parse(s: &str) -> Result<SessionKind, sqlx::Error> {
        match s {
            "ui" => Ok(SessionKind::Ui),
            "api" => Ok(SessionKind::Api),
            other => Err(sqlx::Error::Decode(
                format!("unknown session kind {other:?}").into(),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    pub id_hash: String,
    pub user_id: String,
    pub kind: SessionKind,
    pub csrf_hash: Option<String>,
    /// Also the first `last_seen_at`.
    pub created_at: DateTime<Utc>,
    pub idle_expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id_hash: String,
    pub user_id: String,
    pub kind: SessionKind,
    pub csrf_hash: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub idle_expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
}

macro_rules! columns {
    () => {
        "id_hash, user_id, kind, csrf_hash, created_at, last_seen_at, idle_expires_at, \
         absolute_expires_at, user_agent"
    };
}

// The same text serves both backends: no JSON, few parameters.
const INSERT: &str = concat!(
    "INSERT INTO sessions (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) RETURNING ",
    columns!()
);
const GET_LIVE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM sessions WHERE id_hash = $1 AND idle_expires_at > $2 AND absolute_expires_at > $2"
);
// Only a live session is touched, so a late request cannot revive an expired one.
const TOUCH: &str = "UPDATE sessions SET last_seen_at = $2, idle_expires_at = $3 \
                     WHERE id_hash = $1 AND idle_expires_at > $2 AND absolute_expires_at > $2";
const DELETE: &str = "DELETE FROM sessions WHERE id_hash = $1";
const DELETE_OF_USER: &str = "DELETE FROM sessions WHERE user_id = $1";
const DELETE_EXPIRED: &str =
    "DELETE FROM sessions WHERE idle_expires_at <= $1 OR absolute_expires_at <= $1";

fn session_row(r: &impl ReadRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        id_hash: r.text("id_hash")?,
        user_id: r.text("user_id")?,
        kind: SessionKind::parse(&r.text("kind")?)?,
        csrf_hash: r.opt_text("csrf_hash")?,
        created_at: r.time("created_at")?,
        last_seen_at: r.time("last_seen_at")?,
        idle_expires_at: r.time("idle_expires_at")?,
        absolute_expires_at: r.time("absolute_expires_at")?,
        user_agent: r.opt_text("user_agent")?,
    })
}

impl Store {
    /// Stores a session. An unknown user is [`StoreError::NotFound`].
    pub async fn create_session(&self, session: &NewSession) -> Result<SessionRow, StoreError> {
        on_backend!(self, (INSERT, INSERT), |pool, q| {
            let row = sqlx::query(q)
                .bind(&session.id_hash)
                .bind(&session.user_id)
                .bind(session.kind.as_str())
                .bind(&session.csrf_hash)
                .bind(session.created_at)
                .bind(session.idle_expires_at)
                .bind(session.absolute_expires_at)
                .bind(&session.user_agent)
                .fetch_one(pool)
                .await
                .map_err(|source| match violation(&source) {
                    Some(Violation::Unique(_)) => StoreError::Conflict {
                        what: "session".to_string(),
                    },
                    Some(Violation::ForeignKey) => StoreError::NotFound {
                        what: "user".to_string(),
                    },
                    None => StoreError::Query {
                        context: "creating a session",
                        source,
                    },
                })?;
            session_row(&row)
        })
        .context("decoding a session")
    }

    /// The session, unless it does not exist or either of its expiries is at or before `now`.
    pub async fn get_live_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRow>, StoreError> {
        on_backend!(self, (GET_LIVE, GET_LIVE), |pool, q| {
            sqlx::query(q)
                .bind(id_hash)
                .bind(now)
                .fetch_optional(pool)
                .await
                .context("reading a session")?
                .map(|r| session_row(&r))
                .transpose()
        })
        .context("decoding a session")
    }

    /// Records activity on a live session and moves its idle expiry; returns false when the
    /// session is gone or already expired.
    pub async fn touch_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
        new_idle_expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_backend!(self, (TOUCH, TOUCH), |pool, q| {
            sqlx::query(q)
                .bind(id_hash)
                .bind(now)
                .bind(new_idle_expires_at)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .context("touching a session")?;
        Ok(n > 0)
    }

    /// Ends one session; returns whether it existed.
    pub async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let n = self
            .delete_sessions_where(DELETE, id_hash, "deleting a session")
            .await?;
        Ok(n > 0)
    }

    /// Ends every session of the user (logout everywhere, password change); returns how many.
    pub async fn delete_sessions_of_user(&self, user_id: &str) -> Result<u64, StoreError> {
        self.delete_sessions_where(DELETE_OF_USER, user_id, "deleting a user's sessions")
            .await
    }

    /// Removes sessions whose idle or absolute expiry is at or before `now`; returns how many.
    pub async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        on_backend!(self, (DELETE_EXPIRED, DELETE_EXPIRED), |pool, q| {
            sqlx::query(q)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .context("deleting expired sessions")
    }

    async fn delete_sessions_where(
        &self,
        sql: &'static str,
        key: &str,
        context: &'static str,
    ) -> Result<u64, StoreError> {
        on_backend!(self, (sql, sql), |pool, q| {
            sqlx::query(q)
                .bind(key)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .context(context)
    }
}
