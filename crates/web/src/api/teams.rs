//! `/team/*`: teams and their members (`admin` / `user`). Team admins may manage their own
//! team's members and limited fields; everything else is for proxy admins.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_domain::role::{Role, TeamRole};
use tollgate_proxy::ApiError;
use tollgate_store::teams::{NewTeam, TeamPatch, TeamRow};
use tollgate_store::StoreError;

use super::validate::{self, Count, Usd};
use super::{forbidden, not_found, sees_all, JsonBody};
use crate::audit_log;
use crate::principal::{store_unavailable, Principal};
use crate::state::WebState;
use crate::views;

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { what } => ApiError::bad_request(format!("Already exists: {what}.")),
        StoreError::NotFound { what } => ApiError::bad_request(format!("Not found: {what}.")),
        other => store_unavailable(&other),
    }
}

async fn team_view(state: &WebState, t: &TeamRow) -> Value {
    let members = state
        .store
        .list_members(&t.team_id)
        .await
        .unwrap_or_default();
    views::team(t, &members)
}

/// Whether the caller administers this team (as its `admin` member) or is a proxy admin.
pub async fn can_manage(state: &WebState, p: &Principal, team_id: &str) -> Result<bool, ApiError> {
    if p.role == Role::ProxyAdmin {
        return Ok(true);
    }
    if p.role.is_viewer() {
        return Ok(false);
    }
    let teams = state
        .store
        .teams_of_user(&p.user_id)
        .await
        .map_err(|e| store_unavailable(&e))?;
    Ok(teams
        .iter()
        .any(|(t, r)| t == team_id && r == TeamRole::Admin.as_str()))
}

async fn is_member(state: &WebState, p: &Principal, team_id: &str) -> Result<bool, ApiError> {
    let teams = state
        .store
        .teams_of_user(&p.user_id)
        .await
        .map_err(|e| store_unavailable(&e))?;
    Ok(teams.iter().any(|(t, _)| t == team_id))
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct NewTeamRequest {
    pub team_id: Option<String>,
    pub team_alias: Option<String>,
    pub models: Option<Vec<String>>,
    pub max_budget: Option<Usd>,
    pub budget_duration: Option<String>,
    pub tpm_limit: Option<Count>,
    pub rpm_limit: Option<Count>,
    pub max_parallel_requests: Option<Count>,
    pub blocked: Option<bool>,
    pub metadata: Option<Value>,
    pub members_with_roles: Option<Vec<MemberSpec>>,
}

#[derive(Debug, Deserialize, Clone, schemars::JsonSchema)]
pub struct MemberSpec {
    user_id: Option<String>,
    user_email: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

fn team_role(r: Option<&str>) -> Result<&'static str, ApiError> {
    match r.unwrap_or("user") {
        "admin" => Ok(TeamRole::Admin.as_str()),
        "user" => Ok(TeamRole::User.as_str()),
        _ => Err(ApiError::bad_request("Team role must be 'admin' or 'user'.").with_param("role")),
    }
}

async fn resolve_member(state: &WebState, m: &MemberSpec) -> Result<String, ApiError> {
    if let Some(id) = &m.user_id {
        return Ok(id.clone());
    }
    if let Some(email) = &m.user_email {
        return match state
            .store
            .get_user_by_email(email)
            .await
            .map_err(|e| store_unavailable(&e))?
        {
            Some(u) => Ok(u.user_id),
            None => Err(ApiError::bad_request(format!(
                "No user with email {email}; create the user first."
            ))),
        };
    }
    Err(ApiError::bad_request(
        "A member needs user_id or user_email.",
    ))
}

pub async fn create_team(
    state: &WebState,
    p: &Principal,
    req: &NewTeamRequest,
) -> Result<TeamRow, ApiError> {
    let mut new = NewTeam::new(
        req.team_id
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
    );
    new.team_alias = req.team_alias.clone();
    new.models = req.models.clone().unwrap_or_default();
    new.max_budget_nanos = req.max_budget.map(Usd::nanos);
    if let Some(d) = &req.budget_duration {
        validate::budget_duration(d)?;
    }
    new.budget_duration = req.budget_duration.clone();
    new.tpm_limit = req.tpm_limit.map(Count::get);
    new.rpm_limit = req.rpm_limit.map(Count::get);
    new.max_parallel_requests = req.max_parallel_requests.map(Count::get);
    new.blocked = req.blocked.unwrap_or(false);
    if let Some(m) = &req.metadata {
        new.metadata = m.clone();
    }
    // Members are resolved before the team exists, so a bad member leaves no team behind.
    let mut members = Vec::new();
    for m in req.members_with_roles.as_deref().unwrap_or_default() {
        members.push((
            resolve_member(state, m).await?,
            team_role(m.role.as_deref())?,
        ));
    }
    let team = state.store.create_team(&new).await.map_err(store_err)?;
    for (uid, role) in members {
        state
            .store
            .add_member(&team.team_id, &uid, role, None)
            .await
            .map_err(store_err)?;
    }
    let view = team_view(state, &team).await;
    audit_log::record(
        state,
        p,
        "team.create",
        "team",
        Some(&team.team_id),
        None,
        Some(view),
    )
    .await;
    Ok(team)
}

pub async fn new_team(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<NewTeamRequest>,
) -> Response {
    match create_team(&state, &p, &req).await {
        Ok(t) => Json(team_view(&state, &t).await).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct InfoQuery {
    team_id: Option<String>,
}

pub async fn info(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<InfoQuery>,
) -> Response {
    let Some(team_id) = q.team_id else {
        return ApiError::bad_request("team_id is required.")
            .with_param("team_id")
            .into_response();
    };
    let team = match state.store.get_team(&team_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return not_found(format!("Team {team_id} not found.")).into_response(),
        Err(e) => return store_unavailable(&e).into_response(),
    };
    match (sees_all(&p), is_member(&state, &p, &team_id).await) {
        (true, _) | (_, Ok(true)) => {}
        (_, Err(e)) => return e.into_response(),
        _ => return forbidden("You are not a member of this team.").into_response(),
    }
    let members = state.store.list_members(&team_id).await.unwrap_or_default();
    Json(json!({
        "team_id": team.team_id,
        "team_info": views::team(&team, &members),
        "keys": [],
        "team_memberships": members.iter().map(views::membership).collect::<Vec<_>>(),
    }))
    .into_response()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListQuery {
    user_id: Option<String>,
}

pub async fn list(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Response {
    let member = if sees_all(&p) {
        q.user_id
    } else {
        Some(p.user_id.clone())
    };
    match state.store.list_teams(member.as_deref()).await {
        Ok(teams) => {
            let mut out = Vec::with_capacity(teams.len());
            for t in &teams {
                out.push(team_view(&state, t).await);
            }
            Json(Value::Array(out)).into_response()
        }
        Err(e) => store_unavailable(&e).into_response(),
    }
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct UpdateRequest {
    team_id: String,
    team_alias: Option<String>,
    models: Option<Vec<String>>,
    max_budget: Option<Usd>,
    budget_duration: Option<String>,
    tpm_limit: Option<Count>,
    rpm_limit: Option<Count>,
    max_parallel_requests: Option<Count>,
    blocked: Option<bool>,
    metadata: Option<Value>,
}

pub async fn update(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> Response {
    match can_manage(&state, &p, &req.team_id).await {
        Ok(true) => {}
        Ok(false) => {
            return forbidden("Only proxy admins and this team's admins can update it.")
                .into_response()
        }
        Err(e) => return e.into_response(),
    }
    // Team admins may rename and re-describe their team; money, limits, models and blocking
    // stay with proxy admins.
    let admin_only = req.models.is_some()
        || req.max_budget.is_some()
        || req.budget_duration.is_some()
        || req.tpm_limit.is_some()
        || req.rpm_limit.is_some()
        || req.max_parallel_requests.is_some()
        || req.blocked.is_some();
    if admin_only && p.role != Role::ProxyAdmin {
        return forbidden("Team admins may change team_alias and metadata only.").into_response();
    }
    let mut patch = TeamPatch::default();
    if let Some(a) = req.team_alias {
        patch.team_alias = Some(Some(a));
    }
    patch.models = req.models;
    if let Some(b) = req.max_budget {
        patch.max_budget_nanos = Some(Some(b.nanos()));
    }
    if let Some(d) = req.budget_duration {
        if let Err(e) = validate::budget_duration(&d) {
            return e.into_response();
        }
        patch.budget_duration = Some(Some(d));
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
    patch.blocked = req.blocked;
    patch.metadata = req.metadata;
    match state.store.update_team(&req.team_id, &patch).await {
        Ok(Some((before, after))) => {
            // Team keys carry the team's models, budget, limits and blocking: the next call
            // must see the change.
            state.keys.clear();
            let (b, a) = (
                team_view(&state, &before).await,
                team_view(&state, &after).await,
            );
            audit_log::record(
                &state,
                &p,
                "team.update",
                "team",
                Some(&after.team_id),
                Some(b),
                Some(a.clone()),
            )
            .await;
            Json(a).into_response()
        }
        Ok(None) => not_found("Team not found.").into_response(),
        Err(e) => store_err(e).into_response(),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DeleteRequest {
    team_ids: Vec<String>,
}

pub async fn delete(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<DeleteRequest>,
) -> Response {
    match delete_teams(&state, &p, &req.team_ids).await {
        Ok(d) => Json(json!({"deleted_teams": d})).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn delete_teams(
    state: &WebState,
    p: &Principal,
    ids: &[String],
) -> Result<Vec<String>, ApiError> {
    let mut befores = Vec::new();
    for id in ids {
        if let Ok(Some(t)) = state.store.get_team(id).await {
            befores.push(team_view(state, &t).await);
        }
    }
    let deleted = state.store.delete_teams(ids).await.map_err(store_err)?;
    if !deleted.is_empty() {
        state.keys.clear();
    }
    for b in befores {
        let id = b["team_id"].as_str().unwrap_or_default().to_string();
        if deleted.contains(&id) {
            audit_log::record(state, p, "team.delete", "team", Some(&id), Some(b), None).await;
        }
    }
    Ok(deleted)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum OneOrMany {
    One(MemberSpec),
    Many(Vec<MemberSpec>),
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct MemberAdd {
    team_id: String,
    member: OneOrMany,
    max_budget_in_team: Option<Usd>,
}

pub async fn member_add(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<MemberAdd>,
) -> Response {
    let members = match req.member {
        OneOrMany::One(m) => vec![m],
        OneOrMany::Many(v) => v,
    };
    match add_members(&state, &p, &req.team_id, &members, req.max_budget_in_team).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn add_members(
    state: &WebState,
    p: &Principal,
    team_id: &str,
    members: &[MemberSpec],
    budget: Option<Usd>,
) -> Result<Value, ApiError> {
    if !can_manage(state, p, team_id).await? {
        return Err(forbidden(
            "Only proxy admins and this team's admins can add members.",
        ));
    }
    let team = state
        .store
        .get_team(team_id)
        .await
        .map_err(|e| store_unavailable(&e))?
        .ok_or_else(|| not_found("Team not found."))?;
    if budget.is_some() && p.role != Role::ProxyAdmin {
        return Err(forbidden(
            "Only proxy admins set a member's budget in a team.",
        ));
    }
    let budget_nanos = budget.map(Usd::nanos);
    // Every member is resolved before the first is added: one bad member adds none.
    let mut resolved = Vec::new();
    for m in members {
        resolved.push((
            resolve_member(state, m).await?,
            team_role(m.role.as_deref())?,
        ));
    }
    let mut added = Vec::new();
    for (uid, role) in resolved {
        let row = state
            .store
            .add_member(team_id, &uid, role, budget_nanos)
            .await
            .map_err(store_err)?;
        audit_log::record(
            state,
            p,
            "team.member_add",
            "team",
            Some(team_id),
            None,
            Some(views::membership(&row)),
        )
        .await;
        added.push(views::membership(&row));
    }
    if budget_nanos.is_some() {
        // A member's budget is on their team keys' path: the next call must see it.
        state.keys.clear();
    }
    let mut v = team_view(state, &team).await;
    v["updated_team_memberships"] = Value::Array(added);
    Ok(v)
}

/// Adds one member; for the UI.
pub async fn add_member(
    state: &WebState,
    p: &Principal,
    team_id: &str,
    user_id: &str,
    role: &str,
) -> Result<(), ApiError> {
    let spec = MemberSpec {
        user_id: Some(user_id.to_string()),
        user_email: None,
        role: Some(role.to_string()),
    };
    add_members(state, p, team_id, &[spec], None)
        .await
        .map(|_| ())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct MemberDelete {
    team_id: String,
    user_id: Option<String>,
    user_email: Option<String>,
}

pub async fn member_delete(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<MemberDelete>,
) -> Response {
    let spec = MemberSpec {
        user_id: req.user_id,
        user_email: req.user_email,
        role: None,
    };
    let uid = match resolve_member(&state, &spec).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    match remove_member(&state, &p, &req.team_id, &uid).await {
        Ok(()) => {
            Json(json!({"team_id": req.team_id, "user_id": uid, "removed": true})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub async fn remove_member(
    state: &WebState,
    p: &Principal,
    team_id: &str,
    user_id: &str,
) -> Result<(), ApiError> {
    if !can_manage(state, p, team_id).await? {
        return Err(forbidden(
            "Only proxy admins and this team's admins can remove members.",
        ));
    }
    if !state
        .store
        .remove_member(team_id, user_id)
        .await
        .map_err(store_err)?
    {
        return Err(not_found("That user is not a member of this team."));
    }
    state.keys.clear();
    audit_log::record(
        state,
        p,
        "team.member_delete",
        "team",
        Some(team_id),
        Some(json!({"user_id": user_id})),
        None,
    )
    .await;
    Ok(())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct MemberUpdate {
    team_id: String,
    user_id: Option<String>,
    user_email: Option<String>,
    role: Option<String>,
    max_budget_in_team: Option<Usd>,
}

pub async fn member_update(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    JsonBody(req): JsonBody<MemberUpdate>,
) -> Response {
    let spec = MemberSpec {
        user_id: req.user_id,
        user_email: req.user_email,
        role: None,
    };
    let uid = match resolve_member(&state, &spec).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    match update_member(
        &state,
        &p,
        &req.team_id,
        &uid,
        req.role.as_deref(),
        req.max_budget_in_team,
    )
    .await
    {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn update_member(
    state: &WebState,
    p: &Principal,
    team_id: &str,
    user_id: &str,
    role: Option<&str>,
    budget: Option<Usd>,
) -> Result<Value, ApiError> {
    if !can_manage(state, p, team_id).await? {
        return Err(forbidden(
            "Only proxy admins and this team's admins can change members.",
        ));
    }
    // Every refusal comes before the first write: a refused request changes nothing.
    if budget.is_some() && p.role != Role::ProxyAdmin {
        return Err(forbidden(
            "Only proxy admins set a member's budget in a team.",
        ));
    }
    let role = role.map(|r| team_role(Some(r))).transpose()?;
    let mut row = None;
    if let Some(r) = role {
        row = state
            .store
            .update_member_role(team_id, user_id, r)
            .await
            .map_err(store_err)?;
        if row.is_none() {
            return Err(not_found("That user is not a member of this team."));
        }
    }
    if let Some(b) = budget {
        row = state
            .store
            .set_member_budget(team_id, user_id, Some(b.nanos()))
            .await
            .map_err(store_err)?;
        if row.is_none() {
            return Err(not_found("That user is not a member of this team."));
        }
        state.keys.clear();
    }
    let row = row.ok_or_else(|| {
        ApiError::bad_request("Nothing to change: send role or max_budget_in_team.")
    })?;
    let v = views::membership(&row);
    audit_log::record(
        state,
        p,
        "team.member_update",
        "team",
        Some(team_id),
        None,
        Some(v.clone()),
    )
    .await;
    Ok(v)
}
