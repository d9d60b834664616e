//! Checking a username and password: the admin's `UI_USERNAME`/`UI_PASSWORD` (default: the master
//! key), else a user's email and password. Unknown emails cost the same time and get the same
//! answer as wrong passwords; repeated failures are throttled per account and address, per
//! address, and per account (a growing delay), each attempt counted before its password is checked.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use subtle::ConstantTimeEq;
use tollgate_cluster::{LoginLimits, LoginOutcome, SharedAttempt};
use tollgate_domain::role::Role;
use tollgate_identity::password::{self, PasswordError, BUSY_RETRY_AFTER};
use tollgate_identity::throttle;
use tollgate_proxy::ApiError;
use tollgate_store::users::{NewUser, UserPatch};

use crate::principal::store_unavailable;
use crate::state::WebState;

pub const INVALID: &str =
    "Invalid credentials used to access UI. Check 'UI_USERNAME' and 'UI_PASSWORD', or the password set for your user";

#[derive(Debug)]
pub enum LoginError {
    Invalid,
    Throttled(Duration),
    /// Too many passwords are being checked at once; nothing was checked.
    Busy(Duration),
    Unavailable(ApiError),
}

impl LoginError {
    pub fn into_api_error(self) -> ApiError {
        match self {
            LoginError::Invalid => ApiError::auth(INVALID),
            LoginError::Throttled(d) => {
                let secs = whole_seconds(d);
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    format!("Too many failed logins. Try again in {secs} seconds."),
                );
                e.retry_after = Some(secs);
                e
            }
            LoginError::Busy(d) => busy(d),
            LoginError::Unavailable(e) => e,
        }
    }
}

/// Seconds to wait, rounded up, at least 1 (a `Retry-After` of 0 invites an immediate retry).
pub fn whole_seconds(d: Duration) -> u64 {
    d.as_secs()
        .saturating_add(u64::from(d.subsec_nanos() > 0))
        .max(1)
}

/// 503 with `Retry-After`: the password hashing slots are all taken.
pub fn busy(retry: Duration) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable_error",
        "Too many passwords are being checked right now. Try again in a moment.",
    );
    e.retry_after = Some(whole_seconds(retry));
    e
}

/// The answer for a password hashing or checking error: 503 when busy, else 500.
pub fn password_error(e: PasswordError) -> ApiError {
    match e {
        PasswordError::Busy => busy(BUSY_RETRY_AFTER),
        other => ApiError::internal(other.to_string()),
    }
}

pub struct LoggedIn {
    pub user_id: String,
    pub email: Option<String>,
    pub role: Role,
}

pub async fn authenticate(
    state: &WebState,
    username: &str,
    pw: &str,
    ip: IpAddr,
) -> Result<LoggedIn, LoginError> {
    let username = username.trim();
    // With several instances the counts are also kept in Redis, so guesses spread over the
    // instances add up; each instance's own throttle still applies (and alone when Redis is
    // unreachable).
    let shared = match begin_shared(state, username, ip).await {
        Ok(shared) => shared,
        Err(wait) => return Err(LoginError::Throttled(wait)),
    };
    // Counted before the KDF runs, in one step with the check, so a burst of parallel attempts
    // cannot all pass the check before the first failure is recorded.
    let attempt = match state.throttle.begin(username, ip, Instant::now()) {
        Ok(a) => a,
        Err(wait) => {
            end_shared(state, shared, LoginOutcome::Abandoned).await;
            return Err(LoginError::Throttled(wait));
        }
    };
    let result = check(state, username, pw).await;
    let outcome = match &result {
        Ok(_) => {
            attempt.succeeded(Instant::now());
            LoginOutcome::Succeeded
        }
        Err(LoginError::Invalid) => {
            attempt.failed(Instant::now());
            LoginOutcome::Failed
        }
        Err(LoginError::Busy(_) | LoginError::Unavailable(_) | LoginError::Throttled(_)) => {
            attempt.abandoned();
            LoginOutcome::Abandoned
        }
    };
    end_shared(state, shared, outcome).await;
    result
}

fn shared_limits(state: &WebState) -> LoginLimits {
    let c = state.throttle.config();
    LoginLimits {
        per_pair: c.max_failures,
        per_address: c.max_failures_per_ip,
        account_free_failures: c.account_free_failures,
        account_delay: c.account_delay,
        account_max_delay: c.account_max_delay,
        window: c.window,
        block: c.block,
    }
}

/// `Err(wait)` when the shared counts refuse the attempt; `Ok(None)` without Redis (or while it
/// is unreachable).
async fn begin_shared(
    state: &WebState,
    username: &str,
    ip: IpAddr,
) -> Result<Option<SharedAttempt>, Duration> {
    let Some(cluster) = &state.cluster else {
        return Ok(None);
    };
    let account = throttle::email_key(username);
    let address = throttle::ip_key(ip).to_string();
    match cluster
        .begin_login(&account, &address, &shared_limits(state))
        .await
    {
        Ok(Ok(attempt)) => Ok(Some(attempt)),
        Ok(Err(wait)) => Err(wait),
        Err(e) => {
            tracing::warn!(error = %e, "shared login counts unavailable; this instance's own apply");
            Ok(None)
        }
    }
}

async fn end_shared(state: &WebState, attempt: Option<SharedAttempt>, outcome: LoginOutcome) {
    if let (Some(cluster), Some(attempt)) = (&state.cluster, attempt) {
        if let Err(e) = cluster
            .end_login(attempt, outcome, &shared_limits(state))
            .await
        {
            tracing::warn!(error = %e, "could not record a login outcome in Redis");
        }
    }
}

async fn check(state: &WebState, username: &str, pw: &str) -> Result<LoggedIn, LoginError> {
    if !username.is_empty() && username == state.config.ui_username {
        let ok = match &state.config.ui_password {
            Some(expected) => bool::from(expected.as_bytes().ct_eq(pw.as_bytes())),
            None => state.master_key.matches(pw),
        };
        if !ok {
            return Err(LoginError::Invalid);
        }
        let user_id = state.config.proxy_admin_id.clone();
        ensure_admin_row(state, &user_id)
            .await
            .map_err(LoginError::Unavailable)?;
        return Ok(LoggedIn {
            user_id,
            email: None,
            role: Role::ProxyAdmin,
        });
    }
    if !state.config.password_login {
        // Single sign-on only: no user's password is checked (the admin's login above stays).
        return Err(LoginError::Invalid);
    }
    let found = state
        .store
        .get_login_by_email(username)
        .await
        .map_err(|e| LoginError::Unavailable(store_unavailable(&e)))?;
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, None),
    };
    // Always run the KDF, against a dummy hash when there is no user or no password.
    let ok = password::verify(pw.to_string(), hash)
        .await
        .map_err(|e| match e {
            PasswordError::Busy => LoginError::Busy(BUSY_RETRY_AFTER),
            other => LoginError::Unavailable(ApiError::internal(format!(
                "password check failed: {other}"
            ))),
        })?;
    match (ok, user) {
        (true, Some(u)) => Ok(LoggedIn {
            role: Role::parse(&u.user_role).unwrap_or(Role::InternalUser),
            user_id: u.user_id,
            email: u.user_email,
        }),
        _ => Err(LoginError::Invalid),
    }
}

/// The admin login acts as a real user row (sessions belong to users), upserted as LiteLLM does.
async fn ensure_admin_row(state: &WebState, user_id: &str) -> Result<(), ApiError> {
    match state
        .store
        .get_user(user_id)
        .await
        .map_err(|e| store_unavailable(&e))?
    {
        Some(u) if u.user_role == Role::ProxyAdmin.as_str() => Ok(()),
        Some(_) => state
            .store
            .update_user(
                user_id,
                &UserPatch {
                    user_role: Some(Role::ProxyAdmin.as_str().to_string()),
                    ..UserPatch::default()
                },
            )
            .await
            .map(|_| ())
            .map_err(|e| store_unavailable(&e)),
        None => match state
            .store
            .create_user(&NewUser::new(user_id, Role::ProxyAdmin.as_str()))
            .await
        {
            Ok(_) | Err(tollgate_store::StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(store_unavailable(&e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_kdf_is_a_503_with_retry_after_in_the_openai_envelope() {
        let e = password_error(PasswordError::Busy);
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(1));
        let body: serde_json::Value = serde_json::from_str(&e.body_json()).unwrap();
        assert_eq!(body["error"]["code"], "503");
        assert_eq!(
            LoginError::Busy(Duration::from_millis(1500))
                .into_api_error()
                .retry_after,
            Some(2)
        );
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(200)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 60);
        assert_eq!(whole_seconds(Duration::from_millis(60_001)), 61);
    }
}
