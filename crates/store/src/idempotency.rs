//! Idempotency keys of create requests (Stripe's semantics): the first request with a key claims
//! it, its answer is stored against it, and a retry with the same key reads that answer instead
//! of creating again. Rows are per caller and route; what the answer holds is opaque here (the
//! caller stores it encrypted).

use chrono::{DateTime, Utc};

use crate::connect::Store;
use crate::db::{on_backend, ReadRow};
use crate::error::{QueryContext, StoreError};

/// Which key: whose (`scope`), on which route, and the hash of the client's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyId {
    pub scope: String,
    pub route: String,
    pub key_hash: String,
}

/// A request claiming a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub id: IdempotencyId,
    pub request_hash: String,
    /// Random, chosen by the claimer; completing or releasing the key needs it.
    pub lease_id: String,
    pub now: DateTime<Utc>,
    /// Until then an unanswered key stays with this request; after it a retry may take it over.
    pub locked_until: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What claiming found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is now this request's: run it, then complete or release the key.
    Claimed,
    /// Another request holds the key and has not answered yet.
    InProgress { request_hash: String },
    /// The key was answered: `response` is what the first request stored.
    Answered {
        request_hash: String,
        status: i64,
        response: String,
    },
}

// A finished key is taken over only once expired; an unanswered one also when its lease ended
// (the instance running it died) and the retry is the same request.
const CLAIM: &str =
    "INSERT INTO idempotency_keys (scope, route, key_hash, request_hash, lease_id, \
     status, response, created_at, locked_until, expires_at) \
     VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7, $8) \
     ON CONFLICT (scope, route, key_hash) DO UPDATE SET request_hash = excluded.request_hash, \
     lease_id = excluded.lease_id, status = NULL, response = NULL, \
     created_at = excluded.created_at, locked_until = excluded.locked_until, \
     expires_at = excluded.expires_at \
     WHERE idempotency_keys.expires_at <= excluded.created_at \
     OR (idempotency_keys.status IS NULL AND idempotency_keys.locked_until <= excluded.created_at \
     AND idempotency_keys.request_hash = excluded.request_hash) \
     RETURNING lease_id";
const GET: &str = "SELECT request_hash, status, response FROM idempotency_keys \
     WHERE scope = $1 AND route = $2 AND key_hash = $3";
const COMPLETE: &str = "UPDATE idempotency_keys SET status = $5, response = $6 \
     WHERE scope = $1 AND route = $2 AND key_hash = $3 AND lease_id = $4 AND status IS NULL";
const RELEASE: &str = "DELETE FROM idempotency_keys \
     WHERE scope = $1 AND route = $2 AND key_hash = $3 AND lease_id = $4 AND status IS NULL";
const DELETE_EXPIRED: &str = "DELETE FROM idempotency_keys WHERE expires_at <= $1";

/// Claims attempted before giving up on a key that keeps being released under us.
const CLAIM_ATTEMPTS: usize = 3;

impl Store {
    /// Claims `claim.id` for this request, or says who has it. Atomic: of two requests claiming
    /// one key at once, exactly one gets [`Claim::Claimed`].
    pub async fn claim_idempotency_key(
        &self,
        claim: &IdempotencyClaim,
    ) -> Result<Claim, StoreError> {
        for _ in 0..CLAIM_ATTEMPTS {
            let id = &claim.id;
            let won: Option<String> = on_backend!(self, (CLAIM, CLAIM), |pool, q| {
                sqlx::query_scalar(q)
                    .bind(&id.scope)
                    .bind(&id.route)
                    .bind(&id.key_hash)
                    .bind(&claim.request_hash)
                    .bind(&claim.lease_id)
                    .bind(claim.now)
                    .bind(claim.locked_until)
                    .bind(claim.expires_at)
                    .fetch_optional(pool)
                    .await
            })
            .context("claiming an idempotency key")?;
            if won.is_some() {
                return Ok(Claim::Claimed);
            }
            let found = on_backend!(self, (GET, GET), |pool, q| {
                match sqlx::query(q)
                    .bind(&id.scope)
                    .bind(&id.route)
                    .bind(&id.key_hash)
                    .fetch_optional(pool)
                    .await
                {
                    Ok(Some(row)) => claim_of(&row).map(Some),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .context("reading an idempotency key")?;
            // None: the holder released the key between the two statements; claim again.
            if let Some(found) = found {
                return Ok(found);
            }
        }
        Err(StoreError::Conflict {
            what: "a request with this idempotency key".to_string(),
        })
    }

    /// Stores the answer of the request holding the key; false when it no longer holds it.
    pub async fn complete_idempotency_key(
        &self,
        id: &IdempotencyId,
        lease_id: &str,
        status: i64,
        response: &str,
    ) -> Result<bool, StoreError> {
        let n = on_backend!(self, (COMPLETE, COMPLETE), |pool, q| {
            sqlx::query(q)
                .bind(&id.scope)
                .bind(&id.route)
                .bind(&id.key_hash)
                .bind(lease_id)
                .bind(status)
                .bind(response)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .context("storing an idempotent answer")?;
        Ok(n == 1)
    }

    /// Gives an unanswered key up, so a retry runs the request again.
    pub async fn release_idempotency_key(
        &self,
        id: &IdempotencyId,
        lease_id: &str,
    ) -> Result<(), StoreError> {
        on_backend!(self, (RELEASE, RELEASE), |pool, q| {
            sqlx::query(q)
                .bind(&id.scope)
                .bind(&id.route)
                .bind(&id.key_hash)
                .bind(lease_id)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .context("releasing an idempotency key")
    }

    /// Removes keys expired at `now`; returns how many.
    pub async fn delete_expired_idempotency_keys(
        &self,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        on_backend!(self, (DELETE_EXPIRED, DELETE_EXPIRED), |pool, q| {
            sqlx::query(q)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .context("removing expired idempotency keys")
    }
}

fn claim_of(r: &impl ReadRow) -> Result<Claim, sqlx::Error> {
    let request_hash = r.text("request_hash")?;
    Ok(match (r.opt_int("status")?, r.opt_text("response")?) {
        (Some(status), Some(response)) => Claim::Answered {
            request_hash,
            status,
            response,
        },
        _ => Claim::InProgress { request_hash },
    })
}
