//! `/invitation/*`: single-use, 7-day invitation links. The id is a 256-bit random token handed
//! out once; the store keeps only its hash.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DurationRound, Utc};
use serde::Deserialize;
use tollgate_domain::role::Role;
use tollgate_identity::tokens::{hash_token, new_invitation_id};
use tollgate_proxy::ApiError;
use tollgate_store::invitations::{InvitationRow, NewInvitation};
use tollgate_store::users::UserRow;

use super::{not_found, JsonBody};
use crate::audit_log;
use crate::principal::{store_unavailable, Principal};
use crate::session::base_url;
use crate::state::WebState;
use crate::views;

pub struct Created {
    pub id: String,
    pub link: String,
    pub row: InvitationRow,
}

/// Who may invite whom. An invitation lets its holder set the user's password, so only proxy
/// admins create them. (LiteLLM also lets team and org admins invite their members; combined with
/// adding any existing user to one's team, that is an account takeover, so Tollgate does not.)
async fn may_invite(
    _state: &WebState,
    actor: &Principal,
    _target: &UserRow,
) -> Result<bool, ApiError> {
    Ok(actor.role == Role::ProxyAdmin)
}

pub fn link_for(base: &str, id: &str) -> String {
    format!("{base}/ui/onboarding?id={id}")
}

/// Creates an invitation for an existing user; shared by the API, `/user/new` and the UI.
pub async fn create_for_user(
    state: &WebState,
    actor: &Principal,
    user_id: &str,
    headers: &HeaderMap,
) -> Result<Created, ApiError> {
    let user = state
        .store
        .get_user(user_id)
        .await
        .map_err(|e| store_unavailable(&e))?;
    let Some(user) = user else {
        return Err(ApiError::bad_request(format!(
            "User id does not exist in 'LiteLLM_UserTable'. User id={user_id}"
        ))
        .with_param("user_id"));
    };
    if !may_invite(state, actor, &user).await? {
        return Err(ApiError::bad_request(
            "You can only create invitations for users in your organization or team.",
        ));
    }
    let (id, id_hash) = new_invitation_id().map_err(|e| ApiError::internal(e.to_string()))?;
    let now = Utc::now()
        .duration_trunc(chrono::Duration::seconds(1))
        .unwrap_or_else(|_| Utc::now());
    let ttl = chrono::Duration::from_std(state.config.invitation_ttl)
        .unwrap_or(chrono::Duration::days(7));
    let row = state
        .store
        .create_invitation(&NewInvitation {
            id_hash,
            user_id: user_id.to_string(),
            expires_at: now + ttl,
            created_by: actor.user_id.clone(),
        })
        .await
        .map_err(|e| store_unavailable(&e))?;
    // The audit log names the invitation by its hash, never by the usable id.
    audit_log::record(
        state,
        actor,
        "invitation.create",
        "invitation",
        Some(&row.id_hash),
        None,
        Some(views::invitation(&row, "[redacted]")),
    )
    .await;
    let link = link_for(&base_url(state, headers), &id);
    Ok(Created { id, link, row })
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NewRequest {
    user_id: String,
}

pub async fn new_invitation(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<NewRequest>,
) -> Response {
    match create_for_user(&state, &p, &req.user_id, &headers).await {
        Ok(c) => {
            let mut v = views::invitation(&c.row, &c.id);
            v["invitation_link"] = serde_json::json!(c.link);
            Json(v).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct InfoQuery {
    invitation_id: Option<String>,
}

pub async fn info(State(state): State<Arc<WebState>>, Query(q): Query<InfoQuery>) -> Response {
    let Some(id) = q.invitation_id.filter(|s| !s.is_empty()) else {
        return ApiError::bad_request("invitation_id is required.")
            .with_param("invitation_id")
            .into_response();
    };
    match state.store.get_invitation(&hash_token(&id)).await {
        Ok(Some(row)) => Json(views::invitation(&row, &id)).into_response(),
        Ok(None) => ApiError::bad_request(format!(
            "Invitation id does not exist in the database. Invitation id={id}"
        ))
        .into_response(),
        Err(e) => store_unavailable(&e).into_response(),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct UpdateRequest {
    invitation_id: String,
    is_accepted: bool,
}

pub async fn update(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> Response {
    let hash = hash_token(&req.invitation_id);
    let before = match state.store.get_invitation(&hash).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found("Invitation not found.").into_response(),
        Err(e) => return store_unavailable(&e).into_response(),
    };
    match state
        .store
        .update_invitation(&hash, req.is_accepted, &p.user_id)
        .await
    {
        Ok(Some(row)) => {
            audit_log::record(
                &state,
                &p,
                "invitation.update",
                "invitation",
                Some(&hash),
                Some(views::invitation(&before, "[redacted]")),
                Some(views::invitation(&row, "[redacted]")),
            )
            .await;
            Json(views::invitation(&row, &req.invitation_id)).into_response()
        }
        Ok(None) => not_found("Invitation not found.").into_response(),
        Err(e) => store_unavailable(&e).into_response(),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DeleteRequest {
    invitation_id: String,
}

pub async fn delete(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<DeleteRequest>,
) -> Response {
    let hash = hash_token(&req.invitation_id);
    match delete_by_hash(&state, &p, &hash).await {
        Ok(row) => Json(views::invitation(&row, &req.invitation_id)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Revokes an invitation (the UI knows invitations by hash only).
pub async fn delete_by_hash(
    state: &WebState,
    p: &Principal,
    id_hash: &str,
) -> Result<InvitationRow, ApiError> {
    if p.role != Role::ProxyAdmin {
        match state
            .store
            .get_invitation(id_hash)
            .await
            .map_err(|e| store_unavailable(&e))?
        {
            Some(row) if row.created_by == p.user_id => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "You can only delete invitations you created.",
                ))
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found_error",
                    "Invitation not found.",
                ))
            }
        }
    }
    match state.store.delete_invitation(id_hash).await {
        Ok(Some(row)) => {
            audit_log::record(
                state,
                p,
                "invitation.delete",
                "invitation",
                Some(id_hash),
                Some(views::invitation(&row, "[redacted]")),
                None,
            )
            .await;
            Ok(row)
        }
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "Invitation not found.",
        )),
        Err(e) => Err(store_unavailable(&e)),
    }
}
