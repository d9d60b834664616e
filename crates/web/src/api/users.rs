//! `/user/*`: LiteLLM's user management.

use super::openapi::RawJson;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_domain::role::Role;
use tollgate_identity::password;
use tollgate_proxy::ApiError;
use tollgate_store::users::{NewUser, UserFilter, UserPatch, UserRow};
use tollgate_store::StoreError;

use super::validate::{self, Count, Usd};
use super::{forbidden, not_found, parse_json, sees_all, JsonBody};
use crate::api::invitations::create_for_user;
use crate::audit_log;
use crate::principal::{store_unavailable, Principal};
use crate::state::WebState;
use crate::views;

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct NewUserRequest {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub user_role: Option<String>,
    pub teams: Option<Vec<Value>>,
    pub auto_create_key: Option<bool>,
    pub send_invite_email: Option<bool>,
    pub max_budget: Option<Usd>,
    pub budget_duration: Option<String>,
    pub models: Option<Vec<String>>,
    pub metadata: Option<Value>,
    pub tpm_limit: Option<Count>,
    pub rpm_limit: Option<Count>,
    pub max_parallel_requests: Option<Count>,
    pub password: Option<Value>,
    /// Passed to the first key when `auto_create_key` is on.
    pub key_alias: Option<String>,
    pub duration: Option<String>,
}

pub fn validate_email(email: &str) -> Result<String, ApiError> {
    let e = email.trim();
    let ok = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains('@'));
    if ok {
        Ok(e.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "'{}' is not a valid email address.",
            e.chars().take(80).collect::<String>()
        ))
        .with_param("user_email"))
    }
}

pub fn parse_role(role: Option<&str>) -> Result<Role, ApiError> {
    match role {
        None => Ok(Role::InternalUser),
        Some(r) => Role::parse(r).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                "user_role must be one of proxy_admin, proxy_admin_viewer, internal_user, internal_user_viewer.",
            )
            .with_param("user_role")
        }),
    }
}

fn conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { what } => {
            ApiError::bad_request(format!("A user with this {what} already exists."))
        }
        other => store_unavailable(&other),
    }
}

/// Creates a user; shared by the API and the UI.
pub async fn create_user(
    state: &WebState,
    actor: &Principal,
    req: &NewUserRequest,
) -> Result<UserRow, ApiError> {
    if req.password.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "A password can't be set here: invite the user (/invitation/new) so they choose their own.",
        )
        .with_param("password"));
    }
    let role = parse_role(req.user_role.as_deref())?;
    if role.sees_all() && actor.role != Role::ProxyAdmin {
        return Err(forbidden("Only a proxy_admin may create admin users."));
    }
    let email = req.user_email.as_deref().map(validate_email).transpose()?;
    let user_id = match req.user_id.as_deref().map(str::trim) {
        Some("") => {
            return Err(ApiError::bad_request("user_id must not be empty.").with_param("user_id"))
        }
        Some(id) if id.contains('\0') || id.len() > 200 => {
            return Err(ApiError::bad_request("user_id is not valid.").with_param("user_id"))
        }
        Some(id) => id.to_string(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let mut new = NewUser::new(user_id, role.as_str());
    new.user_email = email;
    new.user_alias = req.user_alias.clone();
    new.models = req.models.clone().unwrap_or_default();
    new.max_budget_nanos = req.max_budget.map(Usd::nanos);
    if let Some(d) = &req.budget_duration {
        validate::budget_duration(d)?;
    }
    new.budget_duration = req.budget_duration.clone();
    new.tpm_limit = req.tpm_limit.map(Count::get);
    new.rpm_limit = req.rpm_limit.map(Count::get);
    new.max_parallel_requests = req.max_parallel_requests.map(Count::get);
    if let Some(m) = &req.metadata {
        new.metadata = m.clone();
    }
    let row = state.store.create_user(&new).await.map_err(conflict)?;
    audit_log::record(
        state,
        actor,
        "user.create",
        "user",
        Some(&row.user_id),
        None,
        Some(views::user(&row)),
    )
    .await;
    Ok(row)
}

pub async fn new_user(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<NewUserRequest>,
) -> Response {
    let row = match create_user(&state, &p, &req).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut out = views::user(&row);
    out["key"] = Value::Null;
    out["key_alias"] = Value::Null;
    out["key_name"] = Value::Null;
    out["token_id"] = Value::Null;
    out["expires"] = Value::Null;
    out["model_max_budget"] = json!({});
    // LiteLLM's default: a first key for the new user, returned once in this answer.
    if req.auto_create_key.unwrap_or(true) {
        let key_req = crate::api::keys::GenerateRequest {
            user_id: Some(row.user_id.clone()),
            key_alias: req.key_alias.clone(),
            duration: req.duration.clone(),
            models: req.models.clone(),
            ..Default::default()
        };
        match crate::api::keys::generate(&state, &p, &key_req).await {
            Ok((plain, key)) => {
                out["key"] = json!(plain);
                out["key_name"] = json!(key.key_name);
                out["key_alias"] = json!(key.key_alias);
                out["token_id"] = json!(key.token);
                out["expires"] = json!(key.expires.as_ref().map(views::ts));
                out["message"] = json!("User created with a first API key (shown only in this answer). Invite the user so they can sign in.");
            }
            Err(e) => {
                out["message"] = json!(format!(
                    "User created, but the first key was not: {}",
                    e.message
                ))
            }
        }
    } else {
        out["message"] = json!("User created without an API key (auto_create_key: false). Invite the user so they can sign in.");
    }
    if req.send_invite_email.unwrap_or(false) {
        match create_for_user(&state, &p, &row.user_id, &headers).await {
            Ok(created) => {
                let mail =
                    crate::mail::send_invitation(&state, &row, &created.link, &created.row, &p)
                        .await;
                out["invitation_link"] = json!(created.link);
                out["invitation_email"] = mail.to_json();
            }
            Err(e) => out["invitation_email"] = json!({"sent": false, "error": e.message}),
        }
    }
    Json(out).into_response()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct InfoQuery {
    user_id: Option<String>,
}

pub async fn info(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<InfoQuery>,
) -> Response {
    let user_id = q
        .user_id
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| p.user_id.clone());
    if user_id != p.user_id && !sees_all(&p) {
        return forbidden("key not allowed to access this user's info").into_response();
    }
    let user = match state.store.get_user(&user_id).await {
        Ok(Some(u)) => u,
        Ok(None) if user_id == p.user_id => {
            return Json(
                json!({"user_id": user_id, "user_info": Value::Null, "keys": [], "teams": []}),
            )
            .into_response()
        }
        Ok(None) => return not_found(format!("User {user_id} not found.")).into_response(),
        Err(e) => return store_unavailable(&e).into_response(),
    };
    let mut teams = Vec::new();
    for t in &user.teams {
        if let Ok(Some(row)) = state.store.get_team(t).await {
            let members = state.store.list_members(t).await.unwrap_or_default();
            teams.push(views::team(&row, &members));
        }
    }
    Json(json!({"user_id": user.user_id, "user_info": views::user(&user), "keys": [], "teams": teams})).into_response()
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct UpdateRequest {
    user_id: Option<String>,
    user_email: Option<String>,
    password: Option<String>,
    user_role: Option<String>,
    user_alias: Option<String>,
    max_budget: Option<Usd>,
    budget_duration: Option<String>,
    spend: Option<Usd>,
    metadata: Option<Value>,
    models: Option<Vec<String>>,
    tpm_limit: Option<Count>,
    rpm_limit: Option<Count>,
    max_parallel_requests: Option<Count>,
}

pub async fn update(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    RawJson(body, _): RawJson<UpdateRequest>,
) -> Response {
    match do_update(&state, &p, body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn do_update(state: &WebState, p: &Principal, body: Bytes) -> Result<Value, ApiError> {
    let req: UpdateRequest = parse_json(&body)?;
    let target = match (&req.user_id, &req.user_email) {
        (Some(id), _) => state
            .store
            .get_user(id)
            .await
            .map_err(|e| store_unavailable(&e))?,
        (None, Some(email)) => state
            .store
            .get_user_by_email(email)
            .await
            .map_err(|e| store_unavailable(&e))?,
        (None, None) => {
            return Err(ApiError::bad_request(
                "Send user_id or user_email to say which user to update.",
            ))
        }
    }
    .ok_or_else(|| not_found("User not found."))?;
    let mut patch = UserPatch::default();
    let mut kill_sessions = false;
    if let Some(r) = &req.user_role {
        let role = parse_role(Some(r))?;
        if target.user_id == p.user_id && role.as_str() != target.user_role {
            return Err(forbidden("You can't change your own role."));
        }
        if role.as_str() != target.user_role {
            kill_sessions = true;
        }
        patch.user_role = Some(role.as_str().to_string());
    }
    if let (Some(email), Some(_)) = (&req.user_email, &req.user_id) {
        patch.user_email = Some(Some(validate_email(email)?));
    }
    if let Some(a) = &req.user_alias {
        patch.user_alias = Some(Some(a.clone()));
    }
    if let Some(b) = req.max_budget {
        patch.max_budget_nanos = Some(Some(b.nanos()));
    }
    if let Some(d) = &req.budget_duration {
        validate::budget_duration(d)?;
        patch.budget_duration = Some(Some(d.clone()));
    }
    if let Some(s) = req.spend {
        patch.spend_nanos = Some(s.nanos());
    }
    if let Some(m) = &req.metadata {
        patch.metadata = Some(m.clone());
    }
    if let Some(m) = &req.models {
        patch.models = Some(m.clone());
    }
    if let Some(n) = req.tpm_limit {
        patch.tpm_limit = Some(Some(n.get()));
    }
    if let Some(n) = req.rpm_limit {
        patch.rpm_limit = Some(Some(n.get()));
    }
    if let Some(n) = req.max_parallel_requests {
        patch.max_parallel_requests = Some(Some(n.get()));
    }
    if let Some(pw) = &req.password {
        let inputs: Vec<&str> = target.user_email.iter().map(String::as_str).collect();
        state
            .config
            .password_policy
            .check(pw, &inputs)
            .map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "validation_error", e.to_string())
                    .with_param("password")
            })?;
        let hash = password::hash(pw.clone())
            .await
            .map_err(crate::login::password_error)?;
        state
            .store
            .set_password_hash(&target.user_id, &hash)
            .await
            .map_err(|e| store_unavailable(&e))?;
        // The password changed: end every session now, whatever happens to the rest.
        let _ = state.store.delete_sessions_of_user(&target.user_id).await;
        kill_sessions = true;
    }
    let (before, after) = state
        .store
        .update_user(&target.user_id, &patch)
        .await
        .map_err(conflict)?
        .ok_or_else(|| not_found("User not found."))?;
    // The key cache holds each key's owner role and models.
    state.keys.clear();
    if kill_sessions {
        let _ = state.store.delete_sessions_of_user(&after.user_id).await;
        // A pending invitation would let its holder set the password of the user as they are
        // now (e.g. after a promotion): revoke them; the admin can invite again.
        revoke_pending_invitations(state, &after.user_id).await;
    }
    let mut after_json = views::user(&after);
    if req.password.is_some() {
        after_json["password_changed"] = json!(true);
    }
    audit_log::record(
        state,
        p,
        "user.update",
        "user",
        Some(&after.user_id),
        Some(views::user(&before)),
        Some(after_json.clone()),
    )
    .await;
    Ok(after_json)
}

/// Sets one user's role (the UI's role form): never one's own; a change ends the user's
/// sessions (see [`role_changed`]); audited as `user.update`.
pub async fn change_role(
    state: &WebState,
    p: &Principal,
    user_id: &str,
    role: Role,
) -> Result<UserRow, ApiError> {
    if user_id == p.user_id {
        return Err(forbidden("You can't change your own role."));
    }
    let patch = UserPatch {
        user_role: Some(role.as_str().to_string()),
        ..UserPatch::default()
    };
    let (before, after) = state
        .store
        .update_user(user_id, &patch)
        .await
        .map_err(conflict)?
        .ok_or_else(|| not_found("That user does not exist."))?;
    if before.user_role != after.user_role {
        role_changed(state, user_id).await;
    }
    audit_log::record(
        state,
        p,
        "user.update",
        "user",
        Some(user_id),
        Some(views::user(&before)),
        Some(views::user(&after)),
    )
    .await;
    Ok(after)
}

/// After a user's role changed, by whatever route: their sessions end, their pending
/// invitations go (see [`do_update`]), and cached keys forget the old role.
pub async fn role_changed(state: &WebState, user_id: &str) {
    let _ = state.store.delete_sessions_of_user(user_id).await;
    revoke_pending_invitations(state, user_id).await;
    state.keys.clear();
}

pub async fn revoke_pending_invitations(state: &WebState, user_id: &str) {
    if let Ok(pending) = state.store.list_invitations(Some(user_id)).await {
        for inv in pending.iter().filter(|i| !i.is_accepted) {
            let _ = state.store.delete_invitation(&inv.id_hash).await;
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DeleteRequest {
    user_ids: Vec<String>,
}

pub async fn delete(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<DeleteRequest>,
) -> Response {
    match delete_users(&state, &p, &req.user_ids).await {
        Ok(deleted) => Json(json!({"deleted_users": deleted, "status": "success"})).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn delete_users(
    state: &WebState,
    p: &Principal,
    ids: &[String],
) -> Result<Vec<String>, ApiError> {
    if !p.is_master_key() && ids.contains(&p.user_id) {
        return Err(ApiError::bad_request("You can't delete your own user."));
    }
    let mut befores = Vec::new();
    for id in ids {
        if let Ok(Some(u)) = state.store.get_user(id).await {
            befores.push(u);
        }
    }
    // Sessions, invitations and memberships go with the user (foreign keys cascade).
    let deleted = state
        .store
        .delete_users(ids)
        .await
        .map_err(|e| store_unavailable(&e))?;
    // Their keys are archived (LiteLLM deletes a user's keys with the user) and stop working now.
    for id in &deleted {
        let _ = state.store.delete_keys_of_user(id, &p.user_id).await;
    }
    state.keys.clear();
    for u in befores.iter().filter(|u| deleted.contains(&u.user_id)) {
        audit_log::record(
            state,
            p,
            "user.delete",
            "user",
            Some(&u.user_id),
            Some(views::user(u)),
            None,
        )
        .await;
    }
    Ok(deleted)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListQuery {
    role: Option<String>,
    user_ids: Option<String>,
    user_email: Option<String>,
    search: Option<String>,
    page: Option<u32>,
    page_size: Option<u32>,
}

pub async fn list(State(state): State<Arc<WebState>>, Query(q): Query<ListQuery>) -> Response {
    let page = q.page.unwrap_or(1).max(1);
    let page_size = q.page_size.unwrap_or(25).clamp(1, 100);
    let filter = UserFilter {
        role: q.role.filter(|r| !r.is_empty()),
        email_contains: q.user_email.or(q.search).filter(|s| !s.is_empty()),
        user_ids: q.user_ids.map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        }),
        page,
        page_size,
    };
    match state.store.list_users(&filter).await {
        Ok((users, total)) => {
            let total_pages = (total as u64).div_ceil(page_size as u64).max(1);
            Json(json!({
                "users": users.iter().map(views::user).collect::<Vec<_>>(),
                "total": total,
                "page": page,
                "page_size": page_size,
                "total_pages": total_pages,
            }))
            .into_response()
        }
        Err(e) => store_unavailable(&e).into_response(),
    }
}

pub async fn available_roles() -> Response {
    let mut out = serde_json::Map::new();
    for r in Role::ALL {
        out.insert(
            r.as_str().to_string(),
            json!({"description": r.description(), "ui_label": r.ui_label()}),
        );
    }
    Json(Value::Object(out)).into_response()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<PasswordChange>,
) -> Response {
    match change_own_password(&state, &p, &req.current_password, &req.new_password).await {
        Ok(()) => Json(json!({"user_id": p.user_id, "message": "Password changed. Every session of this user has ended; log in again."})).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn change_own_password(
    state: &WebState,
    p: &Principal,
    current: &str,
    new: &str,
) -> Result<(), ApiError> {
    if p.is_master_key() {
        return Err(ApiError::bad_request(
            "The master key has no password to change.",
        ));
    }
    let hash = state
        .store
        .get_password_hash(&p.user_id)
        .await
        .map_err(|e| store_unavailable(&e))?;
    let ok = password::verify(current.to_string(), hash)
        .await
        .map_err(crate::login::password_error)?;
    if !ok {
        return Err(
            ApiError::bad_request("The current password is not correct.")
                .with_param("current_password"),
        );
    }
    let inputs: Vec<&str> = p.email.iter().map(String::as_str).collect();
    state
        .config
        .password_policy
        .check(new, &inputs)
        .map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "validation_error", e.to_string())
                .with_param("new_password")
        })?;
    let hash = password::hash(new.to_string())
        .await
        .map_err(crate::login::password_error)?;
    state
        .store
        .set_password_hash(&p.user_id, &hash)
        .await
        .map_err(|e| store_unavailable(&e))?;
    let _ = state.store.delete_sessions_of_user(&p.user_id).await;
    audit_log::record(
        state,
        p,
        "user.password_change",
        "user",
        Some(&p.user_id),
        None,
        None,
    )
    .await;
    Ok(())
}
