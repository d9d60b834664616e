//! Accepting an invitation: the checks every entry point shares (API and UI), and the claim that
//! sets the password exactly once.

use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use tollgate_identity::password::{self, PasswordError, BUSY_RETRY_AFTER};
use tollgate_identity::tokens::hash_token;
use tollgate_proxy::ApiError;
use tollgate_store::invitations::{ClaimOutcome, InvitationRow};
use tollgate_store::users::UserRow;

use crate::principal::store_unavailable;
use crate::state::WebState;

/// Why an invitation can't be used, in LiteLLM's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Unknown,
    Expired,
    Used,
    UserMissing,
}

impl Problem {
    pub fn message(self) -> &'static str {
        match self {
            Problem::Unknown => "Invitation link does not exist in db.",
            Problem::Expired => "Invitation link has expired.",
            Problem::Used => "Invitation link has already been used.",
            Problem::UserMissing => "User does not exist in db.",
        }
    }
}

pub enum Checked {
    Usable(Box<InvitationRow>, Box<UserRow>),
    Unusable(Problem),
}

/// Looks an invitation up without changing anything (opening a link must not use it).
pub async fn check(state: &WebState, invitation_id: &str) -> Result<Checked, ApiError> {
    let Some(row) = state
        .store
        .get_invitation(&hash_token(invitation_id.trim()))
        .await
        .map_err(|e| store_unavailable(&e))?
    else {
        return Ok(Checked::Unusable(Problem::Unknown));
    };
    if row.is_accepted {
        return Ok(Checked::Unusable(Problem::Used));
    }
    if Utc::now() >= row.expires_at {
        return Ok(Checked::Unusable(Problem::Expired));
    }
    match state
        .store
        .get_user(&row.user_id)
        .await
        .map_err(|e| store_unavailable(&e))?
    {
        Some(u) => Ok(Checked::Usable(Box::new(row), Box::new(u))),
        None => Ok(Checked::Unusable(Problem::UserMissing)),
    }
}

pub enum ClaimError {
    Unusable(Problem),
    /// The password does not meet the policy; the message is for the user.
    WeakPassword(String),
    /// Too many passwords are being hashed at once; nothing was changed. Try again after this.
    Busy(Duration),
    Failed(ApiError),
}

/// Checks the password, then atomically marks the invitation used and stores the password hash.
/// Of two racing claims exactly one succeeds. Existing sessions of the user end.
pub async fn claim(
    state: &WebState,
    invitation_id: &str,
    new_password: &str,
) -> Result<UserRow, ClaimError> {
    if !state.config.password_login {
        // Single sign-on only: an invitation is accepted by signing in through the provider
        // with the email it was sent to; a password set here would be a way around it.
        let provider = state
            .sso
            .as_ref()
            .map_or("single sign-on", |s| s.config.label.as_str());
        return Err(ClaimError::Failed(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "auth_error",
            format!(
                "Passwords are turned off on this Tollgate. Sign in with {provider} using the \
                 email this invitation was sent to; that accepts the invitation."
            ),
        )));
    }
    let (_, user) = match check(state, invitation_id)
        .await
        .map_err(ClaimError::Failed)?
    {
        Checked::Usable(r, u) => (r, u),
        Checked::Unusable(p) => return Err(ClaimError::Unusable(p)),
    };
    let inputs: Vec<&str> = user.user_email.iter().map(String::as_str).collect();
    state
        .config
        .password_policy
        .check(new_password, &inputs)
        .map_err(|e| ClaimError::WeakPassword(e.to_string()))?;
    let hash = password::hash(new_password.to_string())
        .await
        .map_err(|e| match e {
            PasswordError::Busy => ClaimError::Busy(BUSY_RETRY_AFTER),
            other => ClaimError::Failed(ApiError::internal(other.to_string())),
        })?;
    let outcome = state
        .store
        .claim_invitation_and_set_password(&hash_token(invitation_id.trim()), Utc::now(), &hash)
        .await
        .map_err(|e| ClaimError::Failed(store_unavailable(&e)))?;
    match outcome {
        ClaimOutcome::Claimed { .. } => {}
        ClaimOutcome::NotFound => return Err(ClaimError::Unusable(Problem::Unknown)),
        ClaimOutcome::AlreadyUsed => return Err(ClaimError::Unusable(Problem::Used)),
        ClaimOutcome::Expired => return Err(ClaimError::Unusable(Problem::Expired)),
    }
    let _ = state.store.delete_sessions_of_user(&user.user_id).await;
    // The password is set: the user's other pending invitations are no longer needed, and a
    // leaked one must not let anyone reset it.
    if let Ok(others) = state.store.list_invitations(Some(&user.user_id)).await {
        for other in others.iter().filter(|i| !i.is_accepted) {
            let _ = state.store.delete_invitation(&other.id_hash).await;
        }
    }
    Ok(*user)
}

/// The claims of the token `/v2/login` and `/onboarding/claim_token` return (LiteLLM's
/// `ReturnedUITokenObject`); `key` is the management-API bearer of the session.
#[derive(Serialize)]
pub struct LoginClaims<'a> {
    pub user_id: &'a str,
    pub key: &'a str,
    pub user_email: Option<&'a str>,
    pub user_role: &'a str,
    pub login_method: &'a str,
    pub premium_user: bool,
    pub auth_header_name: &'a str,
    pub exp: i64,
}

pub fn login_token(
    state: &WebState,
    secret: &str,
    user_id: &str,
    email: Option<&str>,
    role: &str,
) -> String {
    let exp = Utc::now().timestamp() + state.config.session_absolute.as_secs() as i64;
    crate::jwt::sign(
        &state.signing_key,
        &LoginClaims {
            user_id,
            key: secret,
            user_email: email,
            user_role: role,
            login_method: "username_password",
            premium_user: false,
            auth_header_name: "Authorization",
            exp,
        },
    )
}
