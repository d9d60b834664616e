//! OpenID Connect sign-in: sign-ins in progress (single-use, expiring), the provider accounts
//! linked to users, and the ID token each SSO session was started with.

use chrono::{DateTime, Utc};

use crate::connect::Store;
use crate::db::{on_backend, ReadRow};
use crate::error::{violation, QueryContext, StoreError, Violation};

/// A sign-in between the redirect to the provider and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingLogin {
    /// SHA-256 hex of the id the browser's cookie holds.
    pub id_hash: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// The `redirect_uri` the authorization request named; the token request repeats it.
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A provider account linked to a user.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoIdentity {
    pub issuer: String,
    pub subject: String,
    pub user_id: String,
    pub email: Option<String>,
    pub linked_at: DateTime<Utc>,
}

macro_rules! pending_columns {
    () => {
        "id_hash, state, nonce, pkce_verifier, redirect_uri, created_at, expires_at"
    };
}

const INSERT_PENDING: &str = concat!(
    "INSERT INTO sso_pending_logins (",
    pending_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
);
// Taken whether or not it expired: a pending sign-in is used at most once.
const TAKE_PENDING: &str = concat!(
    "DELETE FROM sso_pending_logins WHERE id_hash = $1 RETURNING ",
    pending_columns!()
);
const DELETE_EXPIRED_PENDING: &str = "DELETE FROM sso_pending_logins WHERE expires_at <= $1";
const GET_IDENTITY: &str = "SELECT issuer, subject, user_id, email, linked_at FROM sso_identities \
     WHERE issuer = $1 AND subject = $2";
const USER_IDENTITY: &str =
    "SELECT issuer, subject, user_id, email, linked_at FROM sso_identities \
     WHERE user_id = $1 AND issuer = $2 ORDER BY linked_at LIMIT 1";
const INSERT_IDENTITY: &str = "INSERT INTO sso_identities (issuer, subject, user_id, email, \
     linked_at) VALUES ($1, $2, $3, $4, $5)";
const SET_ID_TOKEN: &str = "INSERT INTO session_id_tokens (session_hash, id_token) VALUES ($1, $2)";
const GET_ID_TOKEN: &str = "SELECT id_token FROM session_id_tokens WHERE session_hash = $1";

fn pending_row(r: &impl ReadRow) -> Result<PendingLogin, sqlx::Error> {
    Ok(PendingLogin {
        id_hash: r.text("id_hash")?,
        state: r.text("state")?,
        nonce: r.text("nonce")?,
        pkce_verifier: r.text("pkce_verifier")?,
        redirect_uri: r.text("redirect_uri")?,
        created_at: r.time("created_at")?,
        expires_at: r.time("expires_at")?,
    })
}

fn identity_row(r: &impl ReadRow) -> Result<SsoIdentity, sqlx::Error> {
    Ok(SsoIdentity {
        issuer: r.text("issuer")?,
        subject: r.text("subject")?,
        user_id: r.text("user_id")?,
        email: r.opt_text("email")?,
        linked_at: r.time("linked_at")?,
    })
}

impl Store {
    /// Stores a sign-in in progress; a repeated id is a `Conflict`.
    pub async fn create_sso_pending_login(&self, p: &PendingLogin) -> Result<(), StoreError> {
        on_backend!(self, (INSERT_PENDING, INSERT_PENDING), |pool, q| {
            sqlx::query(q)
                .bind(&p.id_hash)
                .bind(&p.state)
                .bind(&p.nonce)
                .bind(&p.pkce_verifier)
                .bind(&p.redirect_uri)
                .bind(p.created_at)
                .bind(p.expires_at)
                .execute(pool)
                .await
                .map(drop)
                .map_err(|source| match violation(&source) {
                    Some(Violation::Unique(_)) => StoreError::Conflict {
                        what: "pending sign-in".to_string(),
                    },
                    _ => StoreError::Query {
                        context: "storing a pending sign-in",
                        source,
                    },
                })
        })
    }

    /// Removes and returns the sign-in in progress, if it exists and `now` is before its
    /// expiry. Of concurrent takers at most one gets it.
    pub async fn take_sso_pending_login(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingLogin>, StoreError> {
        let taken = on_backend!(self, (TAKE_PENDING, TAKE_PENDING), |pool, q| {
            sqlx::query(q)
                .bind(id_hash)
                .fetch_optional(pool)
                .await
                .context("taking a pending sign-in")?
                .map(|r| pending_row(&r))
                .transpose()
        })
        .context("decoding a pending sign-in")?;
        Ok(taken.filter(|p| now < p.expires_at))
    }

    /// Removes sign-ins in progress that expired at or before `now`; returns how many.
    pub async fn delete_expired_sso_pending_logins(
        &self,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        on_backend!(
            self,
            (DELETE_EXPIRED_PENDING, DELETE_EXPIRED_PENDING),
            |pool, q| {
                sqlx::query(q)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            }
        )
        .context("removing expired pending sign-ins")
    }

    /// The user a provider account is linked to.
    pub async fn get_sso_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<SsoIdentity>, StoreError> {
        on_backend!(self, (GET_IDENTITY, GET_IDENTITY), |pool, q| {
            sqlx::query(q)
                .bind(issuer)
                .bind(subject)
                .fetch_optional(pool)
                .await
                .context("reading a linked identity")?
                .map(|r| identity_row(&r))
                .transpose()
        })
        .context("decoding a linked identity")
    }

    /// The provider account at `issuer` already linked to a user, if any.
    pub async fn sso_identity_of_user(
        &self,
        user_id: &str,
        issuer: &str,
    ) -> Result<Option<SsoIdentity>, StoreError> {
        on_backend!(self, (USER_IDENTITY, USER_IDENTITY), |pool, q| {
            sqlx::query(q)
                .bind(user_id)
                .bind(issuer)
                .fetch_optional(pool)
                .await
                .context("reading a user's linked identity")?
                .map(|r| identity_row(&r))
                .transpose()
        })
        .context("decoding a linked identity")
    }

    /// Links a provider account to a user. Already linked is a `Conflict`; an unknown user is
    /// `NotFound`.
    pub async fn link_sso_identity(&self, id: &SsoIdentity) -> Result<(), StoreError> {
        on_backend!(self, (INSERT_IDENTITY, INSERT_IDENTITY), |pool, q| {
            sqlx::query(q)
                .bind(&id.issuer)
                .bind(&id.subject)
                .bind(&id.user_id)
                .bind(&id.email)
                .bind(id.linked_at)
                .execute(pool)
                .await
                .map(drop)
                .map_err(|source| match violation(&source) {
                    Some(Violation::Unique(_)) => StoreError::Conflict {
                        what: "linked identity".to_string(),
                    },
                    Some(Violation::ForeignKey) => StoreError::NotFound {
                        what: "user".to_string(),
                    },
                    None => StoreError::Query {
                        context: "linking an identity",
                        source,
                    },
                })
        })
    }

    /// Keeps the ID token a session was started with; it goes when the session goes.
    pub async fn set_session_id_token(
        &self,
        session_hash: &str,
        id_token: &str,
    ) -> Result<(), StoreError> {
        on_backend!(self, (SET_ID_TOKEN, SET_ID_TOKEN), |pool, q| {
            sqlx::query(q)
                .bind(session_hash)
                .bind(id_token)
                .execute(pool)
                .await
                .map(drop)
        })
        .context("storing a session's ID token")
    }

    /// The ID token of a session started by SSO.
    pub async fn get_session_id_token(
        &self,
        session_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        on_backend!(self, (GET_ID_TOKEN, GET_ID_TOKEN), |pool, q| {
            sqlx::query_scalar(q)
                .bind(session_hash)
                .fetch_optional(pool)
                .await
        })
        .context("reading a session's ID token")
    }
}
