//! Which user a verified provider account signs in as: the user it was linked to; else the
//! user with its (verified) email, linked now, with any pending invitation consumed; else a new
//! user, when the email's domain is allowed. A mapped group or role claim sets the user's role.

use chrono::Utc;
use serde_json::json;
use tollgate_domain::role::Role;
use tollgate_store::users::{NewUser, UserPatch, UserRow};
use tollgate_store::{SsoIdentity, StoreError};

use super::provider::Identity;
use super::SsoState;
use crate::audit_log::{record_by, Change};
use crate::principal::store_unavailable;
use crate::state::WebState;
use crate::views;

/// Why a verified sign-in still gets no session.
#[derive(Debug)]
pub enum Refused {
    NoEmail,
    Unverified,
    DomainNotAllowed,
    /// The user with this email is linked to another account at this provider: an address
    /// that changed hands (a new hire given a leaver's address) must not inherit the user.
    LinkedToAnotherAccount,
    Unavailable(String),
}

impl Refused {
    /// Short and stable, for the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::NoEmail => "no_email",
            Refused::Unverified => "email_not_verified",
            Refused::DomainNotAllowed => "domain_not_allowed",
            Refused::LinkedToAnotherAccount => "linked_to_another_account",
            Refused::Unavailable(_) => "store_unavailable",
        }
    }
}

fn unavailable(e: &StoreError) -> Refused {
    Refused::Unavailable(store_unavailable(e).message)
}

/// Finds, links or creates the user, and applies the role map.
pub async fn user_for(state: &WebState, sso: &SsoState, id: &Identity) -> Result<UserRow, Refused> {
    let email = id.email.clone().filter(|e| e.contains('@'));
    let Some(email) = email else {
        return Err(Refused::NoEmail);
    };
    if !id.email_verified {
        return Err(Refused::Unverified);
    }
    let store = &state.store;
    let linked = store
        .get_sso_identity(&id.issuer, &id.subject)
        .await
        .map_err(|e| unavailable(&e))?;
    let linked_user = match linked {
        Some(link) => store
            .get_user(&link.user_id)
            .await
            .map_err(|e| unavailable(&e))?,
        None => None,
    };
    let user = match linked_user {
        Some(u) => u,
        None => match store
            .get_user_by_email(&email)
            .await
            .map_err(|e| unavailable(&e))?
        {
            Some(u) => {
                let other = store
                    .sso_identity_of_user(&u.user_id, &id.issuer)
                    .await
                    .map_err(|e| unavailable(&e))?;
                if other.is_some_and(|o| o.subject != id.subject) {
                    return Err(Refused::LinkedToAnotherAccount);
                }
                link(state, id, &u, &email).await?;
                consume_invitations(state, &u).await;
                u
            }
            None if sso.config.domain_allowed(&email) => {
                let role = sso
                    .config
                    .mapped_role(&id.role_values)
                    .unwrap_or(sso.default_role);
                let mut new = NewUser::new(uuid::Uuid::new_v4().to_string(), role.as_str());
                new.user_email = Some(email.clone());
                let u = store.create_user(&new).await.map_err(|e| unavailable(&e))?;
                record_by(
                    state,
                    Some(&u.user_id),
                    Some(&u.user_role),
                    Change {
                        action: "sso.user_create",
                        object_type: "user",
                        object_id: Some(&u.user_id),
                        before: None,
                        after: Some(views::user(&u)),
                    },
                )
                .await;
                link(state, id, &u, &email).await?;
                u
            }
            None => return Err(Refused::DomainNotAllowed),
        },
    };
    apply_role_map(state, sso, id, user).await
}

async fn link(state: &WebState, id: &Identity, user: &UserRow, email: &str) -> Result<(), Refused> {
    let row = SsoIdentity {
        issuer: id.issuer.clone(),
        subject: id.subject.clone(),
        user_id: user.user_id.clone(),
        email: Some(email.to_string()),
        linked_at: Utc::now(),
    };
    match state.store.link_sso_identity(&row).await {
        // A concurrent first sign-in linked it a moment ago.
        Ok(()) | Err(StoreError::Conflict { .. }) => {}
        Err(e) => return Err(unavailable(&e)),
    }
    record_by(
        state,
        Some(&user.user_id),
        Some(&user.user_role),
        Change {
            action: "sso.link",
            object_type: "user",
            object_id: Some(&user.user_id),
            before: None,
            after: Some(json!({"issuer": id.issuer, "subject": id.subject, "email": email})),
        },
    )
    .await;
    Ok(())
}

/// Signing in through the provider accepts the user's pending invitations: the email they
/// were sent to is now proven.
async fn consume_invitations(state: &WebState, user: &UserRow) {
    let now = Utc::now();
    let pending = match state.store.list_invitations(Some(&user.user_id)).await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %e, "could not read a user's invitations at SSO sign-in");
            return;
        }
    };
    for inv in pending
        .iter()
        .filter(|i| !i.is_accepted && i.expires_at > now)
    {
        if let Ok(tollgate_store::ClaimOutcome::Claimed { .. }) =
            state.store.claim_invitation(&inv.id_hash, now).await
        {
            record_by(
                state,
                Some(&user.user_id),
                Some(&user.user_role),
                Change {
                    action: "invitation.accept_by_sso",
                    object_type: "invitation",
                    object_id: Some(&inv.id_hash),
                    before: None,
                    after: Some(json!({"user_id": user.user_id, "is_accepted": true})),
                },
            )
            .await;
        }
    }
}

/// With a role map, the provider decides the role at every sign-in: the mapped role, or the
/// default role when no value maps (a user removed from the admins' group stops being an
/// admin). Without one, roles are Tollgate's own. As with any role change, the user's other
/// sessions and pending invitations end and cached keys forget the old role.
async fn apply_role_map(
    state: &WebState,
    sso: &SsoState,
    id: &Identity,
    user: UserRow,
) -> Result<UserRow, Refused> {
    if sso.config.role_map.is_empty() {
        return Ok(user);
    }
    let role = sso
        .config
        .mapped_role(&id.role_values)
        .unwrap_or(sso.default_role);
    if Role::parse(&user.user_role) == Some(role) {
        return Ok(user);
    }
    let patch = UserPatch {
        user_role: Some(role.as_str().to_string()),
        ..UserPatch::default()
    };
    let Some((_, after)) = state
        .store
        .update_user(&user.user_id, &patch)
        .await
        .map_err(|e| unavailable(&e))?
    else {
        return Ok(user);
    };
    crate::api::users::role_changed(state, &user.user_id).await;
    record_by(
        state,
        Some(&user.user_id),
        Some(&user.user_role),
        Change {
            action: "sso.role_map",
            object_type: "user",
            object_id: Some(&user.user_id),
            before: Some(views::user(&user)),
            after: Some(views::user(&after)),
        },
    )
    .await;
    Ok(after)
}
