//! `/key/*`: virtual keys. A key is `sk-` + 256 random bits, stored only as its SHA-256 and
//! shown once. Ownership follows LiteLLM's key rules: internal users create,
//! list, update and delete only their own keys, within their own models; viewers write nothing;
//! team admins manage their team's keys; no non-admin moves a key to someone else.

use super::openapi::RawJson;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};

use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_domain::role::{Role, TeamRole};
use tollgate_domain::secret::{mask, new_api_key, sha256_hex};
use tollgate_domain::NanoUsd;
use tollgate_proxy::ApiError;
use tollgate_store::keys::{KeyFilter, KeyPatch, KeyRow, NewKey};
use tollgate_store::StoreError;

use super::validate::{self, Count, Usd};
use super::{forbidden, not_found, parse_json, sees_all, JsonBody};
use crate::audit_log;
use crate::principal::{store_unavailable, Principal};
use crate::state::WebState;
use crate::views::{ts, usd};

pub fn key_view(k: &KeyRow) -> Value {
    json!({
        "token": k.token,
        "key_name": k.key_name,
        "key_alias": k.key_alias,
        "user_id": k.user_id,
        "team_id": k.team_id,
        "models": k.models,
        "max_budget": usd(k.max_budget_nanos),
        "soft_budget": usd(k.soft_budget_nanos),
        "budget_duration": k.budget_duration,
        "budget_reset_at": k.budget_reset_at.as_ref().map(ts),
        "spend": NanoUsd(k.spend_nanos).to_usd(),
        "expires": k.expires.as_ref().map(ts),
        "blocked": k.blocked,
        "tpm_limit": k.tpm_limit,
        "rpm_limit": k.rpm_limit,
        "max_parallel_requests": k.max_parallel_requests,
        "metadata": k.metadata,
        "created_at": ts(&k.created_at),
        "created_by": k.created_by,
        "updated_at": ts(&k.updated_at),
        "rotation_count": k.rotation_count,
        "status": status(k),
    })
}

/// `active`, `blocked` or `expired`.
pub fn status(k: &KeyRow) -> &'static str {
    match k.expires {
        Some(e) if e <= Utc::now() => "expired",
        _ if k.blocked => "blocked",
        _ => "active",
    }
}

/// A `key` parameter: the plaintext (hashed here) or already the hash.
pub fn token_of(key: &str) -> String {
    let key = key.trim();
    if key.starts_with("sk-") {
        sha256_hex(key)
    } else {
        key.to_ascii_lowercase()
    }
}

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { .. } => {
            ApiError::bad_request("A key with this value already exists.")
        }
        other => store_unavailable(&other),
    }
}

async fn team_role_of(
    state: &WebState,
    user_id: &str,
    team_id: &str,
) -> Result<Option<String>, ApiError> {
    let teams = state
        .store
        .teams_of_user(user_id)
        .await
        .map_err(|e| store_unavailable(&e))?;
    Ok(teams
        .into_iter()
        .find(|(t, _)| t == team_id)
        .map(|(_, r)| r))
}

/// Who may change or delete a key: proxy admins any; the owner their own; a team admin their
/// team's keys.
async fn may_modify(state: &WebState, p: &Principal, k: &KeyRow) -> Result<bool, ApiError> {
    if p.role == Role::ProxyAdmin {
        return Ok(true);
    }
    if !p.role.can_write() {
        return Ok(false);
    }
    if k.user_id.as_deref() == Some(p.user_id.as_str()) {
        return Ok(true);
    }
    match &k.team_id {
        Some(t) => {
            Ok(team_role_of(state, &p.user_id, t).await?.as_deref()
                == Some(TeamRole::Admin.as_str()))
        }
        None => Ok(false),
    }
}

async fn may_read(state: &WebState, p: &Principal, k: &KeyRow) -> Result<bool, ApiError> {
    if sees_all(p) || k.user_id.as_deref() == Some(p.user_id.as_str()) {
        return Ok(true);
    }
    match &k.team_id {
        Some(t) => Ok(team_role_of(state, &p.user_id, t).await?.is_some()),
        None => Ok(false),
    }
}

async fn load(state: &WebState, key: &str) -> Result<KeyRow, ApiError> {
    state
        .store
        .get_key(&token_of(key))
        .await
        .map_err(|e| store_unavailable(&e))?
        .ok_or_else(|| not_found("Key not found."))
}

#[derive(Debug, Deserialize, Default, Clone, schemars::JsonSchema)]
#[serde(default)]
pub struct GenerateRequest {
    pub key_alias: Option<String>,
    pub duration: Option<String>,
    pub models: Option<Vec<String>>,
    pub max_budget: Option<Usd>,
    pub soft_budget: Option<Usd>,
    pub budget_duration: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub metadata: Option<Value>,
    pub tpm_limit: Option<Count>,
    pub rpm_limit: Option<Count>,
    pub max_parallel_requests: Option<Count>,
    pub blocked: Option<bool>,
    pub key: Option<String>,
}

/// Creates a key; shared by the API, `/user/new` with `auto_create_key`, and the UI.
pub async fn generate(
    state: &WebState,
    p: &Principal,
    req: &GenerateRequest,
) -> Result<(String, KeyRow), ApiError> {
    let is_admin = p.role == Role::ProxyAdmin;
    let user_id = match (&req.user_id, is_admin) {
        (Some(u), false) if *u != p.user_id => {
            return Err(forbidden("You can only create keys for yourself."))
        }
        (Some(u), _) => Some(u.clone()),
        (None, true) if p.is_master_key() => None,
        (None, _) => Some(p.user_id.clone()),
    };
    if let (Some(team), false) = (&req.team_id, is_admin) {
        if team_role_of(state, &p.user_id, team).await?.as_deref() != Some(TeamRole::Admin.as_str())
        {
            return Err(forbidden("Only the team's admins create keys for a team."));
        }
    }
    if !is_admin
        && (req.max_budget.is_some()
            || req.tpm_limit.is_some()
            || req.rpm_limit.is_some()
            || req.max_parallel_requests.is_some())
    {
        // Limits can only narrow what an admin granted; setting them is an admin's call.
        return Err(forbidden(
            "Only proxy admins set a key's budget and rate limits.",
        ));
    }
    let models = req.models.clone().unwrap_or_default();
    if !is_admin {
        let own = state
            .store
            .get_user(&p.user_id)
            .await
            .map_err(|e| store_unavailable(&e))?
            .map(|u| u.models)
            .unwrap_or_default();
        if !own.is_empty() && (models.is_empty() || models.iter().any(|m| !own.contains(m))) {
            return Err(forbidden(format!(
                "A key can only use models you may use: {}.",
                own.join(", ")
            )));
        }
    }
    let plaintext = match &req.key {
        Some(k) if k.starts_with("sk-") && k.len() >= 20 => k.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "A custom key must start with 'sk-' and have at least 20 characters.",
            )
            .with_param("key"))
        }
        None => new_api_key().map_err(|e| ApiError::internal(e.to_string()))?,
    };
    let mut new = NewKey::new(sha256_hex(&plaintext), mask(&plaintext));
    new.key_alias = req.key_alias.clone();
    new.user_id = user_id;
    new.team_id = req.team_id.clone();
    new.models = models;
    new.max_budget_nanos = req.max_budget.map(Usd::nanos);
    new.soft_budget_nanos = req.soft_budget.map(Usd::nanos);
    if let Some(d) = &req.budget_duration {
        new.budget_reset_at = Some(validate::budget_duration(d)?);
        new.budget_duration = Some(d.clone());
    }
    new.expires = validate::expiry(req.duration.as_deref())?;
    new.blocked = req.blocked.unwrap_or(false) && is_admin;
    new.tpm_limit = req.tpm_limit.map(Count::get);
    new.rpm_limit = req.rpm_limit.map(Count::get);
    new.max_parallel_requests = req.max_parallel_requests.map(Count::get);
    if let Some(m) = &req.metadata {
        new.metadata = m.clone();
    }
    new.created_by = Some(p.user_id.clone());
    let row = state.store.create_key(&new).await.map_err(store_err)?;
    audit_log::record(
        state,
        p,
        "key.create",
        "key",
        Some(&row.token),
        None,
        Some(key_view(&row)),
    )
    .await;
    Ok((plaintext, row))
}

pub fn generated_view(plaintext: &str, row: &KeyRow) -> Value {
    let mut v = key_view(row);
    v["key"] = json!(plaintext);
    v["token_id"] = json!(row.token);
    v
}

pub async fn generate_route(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<GenerateRequest>,
) -> Response {
    match generate(&state, &p, &req).await {
        Ok((plain, row)) => Json(generated_view(&plain, &row)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct InfoQuery {
    key: Option<String>,
}

pub async fn info(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<InfoQuery>,
) -> Response {
    let Some(key) = q.key else {
        return ApiError::bad_request("key is required.")
            .with_param("key")
            .into_response();
    };
    let row = match load(&state, &key).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match may_read(&state, &p, &row).await {
        Ok(true) => Json(json!({"key": key, "info": key_view(&row)})).into_response(),
        Ok(false) => forbidden("You are not allowed to see this key.").into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListQuery {
    page: Option<u32>,
    size: Option<u32>,
    user_id: Option<String>,
    team_id: Option<String>,
    key_alias: Option<String>,
    return_full_object: Option<bool>,
}

pub async fn list(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Response {
    let user_id = if sees_all(&p) {
        q.user_id
    } else {
        if q.user_id.as_deref().is_some_and(|u| u != p.user_id) {
            return forbidden("You are not authorized to check another user's keys")
                .into_response();
        }
        Some(p.user_id.clone())
    };
    let size = q.size.unwrap_or(10).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let filter = KeyFilter {
        user_id,
        team_id: q.team_id,
        key_alias: q.key_alias,
        page,
        size,
    };
    match state.store.list_keys(&filter).await {
        Ok((keys, total)) => {
            let full = q.return_full_object.unwrap_or(false);
            let items: Vec<Value> = keys
                .iter()
                .map(|k| if full { key_view(k) } else { json!(k.token) })
                .collect();
            Json(json!({"keys": items, "total_count": total, "current_page": page, "total_pages": (total as u64).div_ceil(size as u64).max(1)})).into_response()
        }
        Err(e) => store_unavailable(&e).into_response(),
    }
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct DeleteRequest {
    keys: Vec<String>,
    key_aliases: Vec<String>,
}

pub async fn delete(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<DeleteRequest>,
) -> Response {
    let mut rows = Vec::new();
    for k in &req.keys {
        match load(&state, k).await {
            Ok(r) => rows.push((k.clone(), r)),
            Err(e) => return e.into_response(),
        }
    }
    for a in &req.key_aliases {
        match state.store.get_key_by_alias(a).await {
            Ok(Some(r)) => rows.push((a.clone(), r)),
            Ok(None) => return not_found(format!("No key with alias {a}.")).into_response(),
            Err(e) => return store_unavailable(&e).into_response(),
        }
    }
    if rows.is_empty() {
        return ApiError::bad_request("Send keys or key_aliases to delete.").into_response();
    }
    match delete_rows(
        &state,
        &p,
        &rows.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
    )
    .await
    {
        Ok(()) => Json(json!({"deleted_keys": rows.iter().map(|(k, _)| k).collect::<Vec<_>>()}))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Deletes (archives) keys after checking every one may be deleted by the caller.
pub async fn delete_rows(state: &WebState, p: &Principal, rows: &[KeyRow]) -> Result<(), ApiError> {
    for r in rows {
        if !may_modify(state, p, r).await? {
            return Err(forbidden(
                "You may only delete your own keys (or your team's, as its admin).",
            ));
        }
    }
    let tokens: Vec<String> = rows.iter().map(|r| r.token.clone()).collect();
    state
        .store
        .delete_keys(&tokens, &p.user_id)
        .await
        .map_err(|e| store_unavailable(&e))?;
    for r in rows {
        state.keys.evict(&r.token);
        audit_log::record(
            state,
            p,
            "key.delete",
            "key",
            Some(&r.token),
            Some(key_view(r)),
            None,
        )
        .await;
    }
    Ok(())
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct UpdateRequest {
    key: Option<String>,
    key_alias: Option<String>,
    models: Option<Vec<String>>,
    max_budget: Option<Usd>,
    soft_budget: Option<Usd>,
    budget_duration: Option<String>,
    duration: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    metadata: Option<Value>,
    tpm_limit: Option<Count>,
    rpm_limit: Option<Count>,
    max_parallel_requests: Option<Count>,
    blocked: Option<bool>,
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
    let row = match &req.key {
        Some(k) => load(state, k).await?,
        None => return Err(ApiError::bad_request("key is required.").with_param("key")),
    };
    if !may_modify(state, p, &row).await? {
        return Err(forbidden(
            "You may only update your own keys (or your team's, as its admin).",
        ));
    }
    let is_admin = p.role == Role::ProxyAdmin;
    let money_or_owner = req.max_budget.is_some()
        || req.soft_budget.is_some()
        || req.budget_duration.is_some()
        || req.tpm_limit.is_some()
        || req.rpm_limit.is_some()
        || req.max_parallel_requests.is_some()
        || req.user_id.is_some()
        || req.team_id.is_some()
        || req.blocked.is_some();
    if money_or_owner && !is_admin {
        return Err(forbidden(
            "Only proxy admins change a key's owner, team, budget, limits or blocking.",
        ));
    }
    let mut patch = KeyPatch::default();
    if let Some(a) = req.key_alias {
        patch.key_alias = Some(Some(a));
    }
    if let Some(m) = req.models {
        if !is_admin {
            let own = state
                .store
                .get_user(&p.user_id)
                .await
                .map_err(|e| store_unavailable(&e))?
                .map(|u| u.models)
                .unwrap_or_default();
            if !own.is_empty() && (m.is_empty() || m.iter().any(|x| !own.contains(x))) {
                return Err(forbidden("A key can only use models you may use."));
            }
        }
        patch.models = Some(m);
    }
    if let Some(b) = req.max_budget {
        patch.max_budget_nanos = Some(Some(b.nanos()));
    }
    if let Some(b) = req.soft_budget {
        patch.soft_budget_nanos = Some(Some(b.nanos()));
    }
    if let Some(d) = req.budget_duration {
        // A new period starts now, snapped to the calendar.
        patch.budget_reset_at = Some(Some(validate::budget_duration(&d)?));
        patch.budget_duration = Some(Some(d));
    }
    if req.duration.is_some() {
        patch.expires = Some(validate::expiry(req.duration.as_deref())?);
    }
    if let Some(u) = req.user_id {
        patch.user_id = Some(Some(u));
    }
    if let Some(t) = req.team_id {
        patch.team_id = Some(Some(t));
    }
    patch.metadata = req.metadata;
    if let Some(n) = req.tpm_limit {
        patch.tpm_limit = Some(Some(n.get()));
    }
    if let Some(n) = req.rpm_limit {
        patch.rpm_limit = Some(Some(n.get()));
    }
    if let Some(n) = req.max_parallel_requests {
        patch.max_parallel_requests = Some(Some(n.get()));
    }
    patch.blocked = req.blocked;
    let (before, after) = state
        .store
        .update_key(&row.token, &patch, &p.user_id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| not_found("Key not found."))?;
    state.keys.evict(&after.token);
    audit_log::record(
        state,
        p,
        "key.update",
        "key",
        Some(&after.token),
        Some(key_view(&before)),
        Some(key_view(&after)),
    )
    .await;
    Ok(key_view(&after))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct KeyOnly {
    key: String,
}

async fn set_blocked(
    state: &WebState,
    p: &Principal,
    body: Bytes,
    blocked: bool,
) -> Result<Value, ApiError> {
    let req: KeyOnly = parse_json(&body)?;
    let row = load(state, &req.key).await?;
    let team_admin = match &row.team_id {
        Some(t) => {
            team_role_of(state, &p.user_id, t).await?.as_deref() == Some(TeamRole::Admin.as_str())
        }
        None => false,
    };
    if p.role != Role::ProxyAdmin && !(team_admin && p.role.can_write()) {
        return Err(forbidden(
            "Only proxy admins, team admins, or org admins can call /key/block and /key/unblock.",
        ));
    }
    let after = state
        .store
        .set_key_blocked(&row.token, blocked, &p.user_id)
        .await
        .map_err(|e| store_unavailable(&e))?
        .ok_or_else(|| not_found("Key not found."))?;
    state.keys.evict(&after.token);
    let action = if blocked { "key.block" } else { "key.unblock" };
    audit_log::record(
        state,
        p,
        action,
        "key",
        Some(&after.token),
        Some(key_view(&row)),
        Some(key_view(&after)),
    )
    .await;
    Ok(key_view(&after))
}

pub async fn block(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    RawJson(body, _): RawJson<KeyOnly>,
) -> Response {
    match set_blocked(&state, &p, body, true).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn unblock(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    RawJson(body, _): RawJson<KeyOnly>,
) -> Response {
    match set_blocked(&state, &p, body, false).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn regenerate(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<KeyOnly>,
) -> Response {
    regenerate_key(&state, &p, &req.key).await
}

/// `POST /key/{key}/regenerate`: the key (plaintext or hash) in the path.
pub async fn regenerate_path(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    axum::extract::Path(key): axum::extract::Path<String>,
) -> Response {
    regenerate_key(&state, &p, &key).await
}

async fn regenerate_key(state: &Arc<WebState>, p: &Principal, key: &str) -> Response {
    let row = match load(state, key).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match may_modify(state, p, &row).await {
        Ok(true) => {}
        Ok(false) => return forbidden("You may only regenerate your own keys.").into_response(),
        Err(e) => return e.into_response(),
    }
    let plaintext = match new_api_key() {
        Ok(k) => k,
        Err(e) => return ApiError::internal(e.to_string()).into_response(),
    };
    match state
        .store
        .regenerate_key(
            &row.token,
            &sha256_hex(&plaintext),
            &mask(&plaintext),
            &p.user_id,
        )
        .await
    {
        Ok(Some(after)) => {
            state.keys.evict(&row.token);
            audit_log::record(
                state,
                p,
                "key.regenerate",
                "key",
                Some(&after.token),
                Some(key_view(&row)),
                Some(key_view(&after)),
            )
            .await;
            Json(generated_view(&plaintext, &after)).into_response()
        }
        Ok(None) => not_found("Key not found.").into_response(),
        Err(e) => store_err(e).into_response(),
    }
}
