//! Invitations: single-use, expiring links that let a user set their first password. Only the
//! SHA-256 of the invitation id is stored, so a database dump does not hold usable links.

use chrono::{DateTime, SubsecRound, Utc};

use crate::connect::Store;
use crate::db::{now, on_backend, ReadRow, WritePool};
use crate::error::{violation, QueryContext, StoreError, Violation};

#[derive(Debug, Clone, PartialEq)]
pub struct InvitationRow {
    pub id_hash: String,
    pub user_id: String,
    pub is_accepted: bool,
    pub accepted_at: Option<DateTime<Utc>>,
    /// Whole seconds: expiry is decided to the second.
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewInvitation {
    /// SHA-256 hex of the invitation id.
    pub id_hash: String,
    pub user_id: String,
    /// Stored truncated to the whole second.
    pub expires_at: DateTime<Utc>,
    pub created_by: String,
}

/// What happened to an attempt to use an invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This call, and no other, accepted the invitation.
    Claimed {
        user_id: String,
    },
    NotFound,
    AlreadyUsed,
    Expired,
}

macro_rules! columns {
    () => {
        "id_hash, user_id, is_accepted, accepted_at, expires_at, created_at, created_by, \
         updated_at, updated_by"
    };
}

struct Queries {
    insert: &'static str,
    get: &'static str,
    list: &'static str,
    claim: &'static str,
    state: &'static str,
    set_password: &'static str,
    update: &'static str,
    delete: &'static str,
}

// The claim is one conditional UPDATE, so of any number of concurrent claims exactly one
// matches `is_accepted = false` (SQLite serialises writers; PostgreSQL re-checks the condition
// on the row after waiting for a concurrent writer's lock). Expiry is compared with `now`
// truncated to the second, against an expiry stored to the second.
const SQLITE: Queries = Queries {
    insert: concat!(
        "INSERT INTO invitations (id_hash, user_id, expires_at, created_at, created_by, \
         updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $4, $5) RETURNING ",
        columns!()
    ),
    get: concat!(
        "SELECT ",
        columns!(),
        " FROM invitations WHERE id_hash = $1"
    ),
    list: concat!(
        "SELECT ",
        columns!(),
        " FROM invitations WHERE ($1 IS NULL OR user_id = $1) ORDER BY created_at, id_hash"
    ),
    claim: "UPDATE invitations SET is_accepted = 1, accepted_at = $2, updated_at = $2, \
            updated_by = user_id \
            WHERE id_hash = $1 AND is_accepted = 0 AND expires_at > $3 RETURNING user_id",
    state: "SELECT is_accepted FROM invitations WHERE id_hash = $1",
    set_password: "UPDATE users SET password_hash = $1, updated_at = $2 WHERE user_id = $3",
    update: concat!(
        "UPDATE invitations SET is_accepted = $2, \
         accepted_at = CASE WHEN $2 THEN COALESCE(accepted_at, $3) ELSE NULL END, \
         updated_at = $3, updated_by = $4 WHERE id_hash = $1 RETURNING ",
        columns!()
    ),
    delete: concat!(
        "DELETE FROM invitations WHERE id_hash = $1 RETURNING ",
        columns!()
    ),
};

const POSTGRES: Queries = Queries {
    insert: SQLITE.insert,
    get: SQLITE.get,
    list: concat!(
        "SELECT ",
        columns!(),
        " FROM invitations WHERE ($1::text IS NULL OR user_id = $1) ORDER BY created_at, id_hash"
    ),
    claim: "UPDATE invitations SET is_accepted = TRUE, accepted_at = $2, updated_at = $2, \
            updated_by = user_id \
            WHERE id_hash = $1 AND is_accepted = FALSE AND expires_at > $3 RETURNING user_id",
    state: SQLITE.state,
    set_password: SQLITE.set_password,
    update: concat!(
        "UPDATE invitations SET is_accepted = $2::boolean, \
         accepted_at = CASE WHEN $2::boolean THEN COALESCE(accepted_at, $3) ELSE NULL END, \
         updated_at = $3, updated_by = $4 WHERE id_hash = $1 RETURNING ",
        columns!()
    ),
    delete: SQLITE.delete,
};

fn invitation_row(r: &impl ReadRow) -> Result<InvitationRow, sqlx::Error> {
    Ok(InvitationRow {
        id_hash: r.text("id_hash")?,
        user_id: r.text("user_id")?,
        is_accepted: r.flag("is_accepted")?,
        accepted_at: r.opt_time("accepted_at")?,
        expires_at: r.time("expires_at")?,
        created_at: r.time("created_at")?,
        created_by: r.text("created_by")?,
        updated_at: r.time("updated_at")?,
        updated_by: r.text("updated_by")?,
    })
}

impl Store {
    /// Stores an invitation. An unknown user is [`StoreError::NotFound`]; a repeated
    /// `id_hash` is a `Conflict`.
    pub async fn create_invitation(
        &self,
        invitation: &NewInvitation,
    ) -> Result<InvitationRow, StoreError> {
        let at = now();
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let row = sqlx::query(q.insert)
                .bind(&invitation.id_hash)
                .bind(&invitation.user_id)
                .bind(invitation.expires_at.trunc_subsecs(0))
                .bind(at)
                .bind(&invitation.created_by)
                .fetch_one(pool)
                .await
                .map_err(|source| match violation(&source) {
                    Some(Violation::Unique(_)) => StoreError::Conflict {
                        what: "invitation".to_string(),
                    },
                    Some(Violation::ForeignKey) => StoreError::NotFound {
                        what: "user".to_string(),
                    },
                    None => StoreError::Query {
                        context: "creating an invitation",
                        source,
                    },
                })?;
            invitation_row(&row)
        })
        .context("decoding an invitation")
    }

    pub async fn get_invitation(&self, id_hash: &str) -> Result<Option<InvitationRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.get)
                .bind(id_hash)
                .fetch_optional(pool)
                .await
                .context("reading an invitation")?
                .map(|r| invitation_row(&r))
                .transpose()
        })
        .context("decoding an invitation")
    }

    /// All invitations, or one user's, oldest first.
    pub async fn list_invitations(
        &self,
        user_id: Option<&str>,
    ) -> Result<Vec<InvitationRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.list)
                .bind(user_id)
                .fetch_all(pool)
                .await
                .context("listing invitations")?
                .iter()
                .map(invitation_row)
                .collect::<Result<Vec<_>, _>>()
        })
        .context("decoding an invitation")
    }

    /// Accepts the invitation if it is unused and `now` is before its expiry (to the second).
    /// Race-safe: of concurrent claims, exactly one gets [`ClaimOutcome::Claimed`].
    pub async fn claim_invitation(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, StoreError> {
        let claimed: Option<String> = on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query_scalar(q.claim)
                .bind(id_hash)
                .bind(now)
                .bind(now.trunc_subsecs(0))
                .fetch_optional(pool)
                .await
        })
        .context("claiming an invitation")?;
        match claimed {
            Some(user_id) => Ok(ClaimOutcome::Claimed { user_id }),
            None => self.why_not_claimed(id_hash).await,
        }
    }

    /// Claims the invitation and sets its user's password hash in one transaction: either
    /// both happen or neither does.
    pub async fn claim_invitation_and_set_password(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
        password_hash: &str,
    ) -> Result<ClaimOutcome, StoreError> {
        let user_id: String = on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let mut tx = pool
                .begin_write()
                .await
                .context("starting an invitation claim")?;
            let claimed: Option<String> = sqlx::query_scalar(q.claim)
                .bind(id_hash)
                .bind(now)
                .bind(now.trunc_subsecs(0))
                .fetch_optional(&mut *tx)
                .await
                .context("claiming an invitation")?;
            let Some(user_id) = claimed else {
                tx.rollback().await.context("ending an invitation claim")?;
                return self.why_not_claimed(id_hash).await;
            };
            let updated = sqlx::query(q.set_password)
                .bind(password_hash)
                .bind(now)
                .bind(&user_id)
                .execute(&mut *tx)
                .await
                .context("storing a password hash")?
                .rows_affected();
            if updated == 0 {
                // Unreachable while the foreign key cascades; never accept without a password.
                tx.rollback().await.context("ending an invitation claim")?;
                return Ok(ClaimOutcome::NotFound);
            }
            tx.commit()
                .await
                .context("committing an invitation claim")?;
            user_id
        });
        Ok(ClaimOutcome::Claimed { user_id })
    }

    /// After a claim matched nothing: tells apart a missing, used or expired invitation.
    async fn why_not_claimed(&self, id_hash: &str) -> Result<ClaimOutcome, StoreError> {
        let accepted: Option<bool> = on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query_scalar(q.state)
                .bind(id_hash)
                .fetch_optional(pool)
                .await
        })
        .context("reading an invitation")?;
        Ok(match accepted {
            None => ClaimOutcome::NotFound,
            Some(true) => ClaimOutcome::AlreadyUsed,
            Some(false) => ClaimOutcome::Expired,
        })
    }

    /// Sets whether the invitation is accepted (an admin action). Accepting stamps
    /// `accepted_at` unless already set; un-accepting clears it. `None` if no such invitation.
    pub async fn update_invitation(
        &self,
        id_hash: &str,
        is_accepted: bool,
        updated_by: &str,
    ) -> Result<Option<InvitationRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.update)
                .bind(id_hash)
                .bind(is_accepted)
                .bind(now())
                .bind(updated_by)
                .fetch_optional(pool)
                .await
                .context("updating an invitation")?
                .map(|r| invitation_row(&r))
                .transpose()
        })
        .context("decoding an invitation")
    }

    /// Deletes the invitation and returns it as it was.
    pub async fn delete_invitation(
        &self,
        id_hash: &str,
    ) -> Result<Option<InvitationRow>, StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.delete)
                .bind(id_hash)
                .fetch_optional(pool)
                .await
                .context("deleting an invitation")?
                .map(|r| invitation_row(&r))
                .transpose()
        })
        .context("decoding an invitation")
    }
}
