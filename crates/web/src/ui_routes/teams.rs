//! The Teams pages: the list, one team with its members, and their changes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tollgate_store::users::UserFilter;

use crate::api::teams as team_api;
use crate::principal::Principal;
use crate::state::WebState;

use super::{
    api_message, confirm, denied, error_page, flash_for, form_for, form_post, page_for, redirect,
    render, signed_in, Page,
};

async fn teams_ctx(
    state: &WebState,
    p: &Principal,
    q: &HashMap<String, String>,
    alias_error: Option<&'static str>,
) -> Page<TeamsPage> {
    let member = if p.role.sees_all() {
        None
    } else {
        Some(p.user_id.as_str())
    };
    let teams = state.store.list_teams(member).await.unwrap_or_default();
    let mut rows = Vec::new();
    for t in teams {
        let n = state
            .store
            .list_members(&t.team_id)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        rows.push(TeamRow {
            team_id: t.team_id,
            alias: t.team_alias,
            members: n,
        });
    }
    let ctx = TeamsPage {
        teams: rows,
        form: TeamForm {
            alias: "",
            errors: TeamFormErrors { alias: alias_error },
        },
    };
    Page::new(p, "teams", flash_for(q), ctx)
}

#[derive(Serialize)]
struct TeamsPage {
    teams: Vec<TeamRow>,
    form: TeamForm,
}

#[derive(Serialize)]
struct TeamRow {
    team_id: String,
    alias: Option<String>,
    members: usize,
}

/// The new-team form as it comes back.
#[derive(Serialize)]
struct TeamForm {
    alias: &'static str,
    errors: TeamFormErrors,
}

#[derive(Serialize)]
struct TeamFormErrors {
    alias: Option<&'static str>,
}

pub(super) async fn teams_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    render(
        &state,
        StatusCode::OK,
        "teams.html",
        &teams_ctx(&state, &p, &q, None).await,
    )
}

pub(super) async fn team_create(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_for(&state, &headers, &body, "POST", "/team/new").await);
    let alias = f
        .get("alias")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if alias.is_empty() {
        let ctx = teams_ctx(&state, &p, &HashMap::new(), Some("Give the team a name.")).await;
        return render(&state, StatusCode::BAD_REQUEST, "teams.html", &ctx);
    }
    let req = team_api::NewTeamRequest {
        team_alias: Some(alias),
        ..Default::default()
    };
    match team_api::create_team(&state, &p, &req).await {
        Ok(t) => redirect(&format!("/ui/teams/{}?done=team_created", t.team_id)),
        Err(e) => error_page(&state, Some(&p), e.status, "Not created", &api_message(&e)),
    }
}

pub(super) async fn team_page(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    let Ok(Some(team)) = state.store.get_team(&id).await else {
        return error_page(
            &state,
            Some(&p),
            StatusCode::NOT_FOUND,
            "Not found",
            "That team does not exist.",
        );
    };
    let members = state.store.list_members(&id).await.unwrap_or_default();
    if !p.role.sees_all() && !members.iter().any(|m| m.user_id == p.user_id) {
        return denied(&state, &p);
    }
    let mut rows = Vec::new();
    for m in &members {
        let email = state
            .store
            .get_user(&m.user_id)
            .await
            .ok()
            .flatten()
            .and_then(|u| u.user_email);
        rows.push(MemberRow {
            user_id: m.user_id.clone(),
            email,
            role: m.role.clone(),
        });
    }
    let manage = team_api::can_manage(&state, &p, &id).await.unwrap_or(false);
    // Only roles that may list users get a picker; a team admin types the email instead, so the
    // page never lists everyone's address to them.
    let candidates = if manage && p.role.sees_all() {
        let (all, _) = state
            .store
            .list_users(&UserFilter {
                page_size: 100,
                ..UserFilter::default()
            })
            .await
            .unwrap_or_default();
        all.into_iter()
            .filter(|u| !members.iter().any(|m| m.user_id == u.user_id))
            .map(|u| Candidate {
                user_id: u.user_id,
                email: u.user_email.unwrap_or_default(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let page = TeamPage {
        team: TeamName {
            team_id: team.team_id,
            alias: team.team_alias,
        },
        members: rows,
        users: candidates,
        add_by_email: manage && !p.role.sees_all(),
    };
    let mut ctx = Page::new(&p, "teams", flash_for(&q), page);
    // Team admins manage their own team's members even without the proxy-admin role.
    ctx.signed_in.can.manage_users = manage;
    render(&state, StatusCode::OK, "team.html", &ctx)
}

#[derive(Serialize)]
struct TeamPage {
    team: TeamName,
    members: Vec<MemberRow>,
    /// Users who could be added (for the roles that may list users).
    users: Vec<Candidate>,
    /// A team admin adds members by email instead of picking them.
    add_by_email: bool,
}

#[derive(Serialize)]
struct TeamName {
    team_id: String,
    alias: Option<String>,
}

#[derive(Serialize)]
struct MemberRow {
    user_id: String,
    email: Option<String>,
    role: String,
}

#[derive(Serialize)]
struct Candidate {
    user_id: String,
    email: String,
}

pub(super) async fn team_member_add(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    let uid = match (f.get("user_id"), f.get("user_email")) {
        (Some(uid), _) => uid.clone(),
        (None, Some(email)) => match state.store.get_user_by_email(email.trim()).await {
            Ok(Some(u)) => u.user_id,
            _ => {
                return error_page(
                    &state,
                    Some(&p),
                    StatusCode::BAD_REQUEST,
                    "Member not added",
                    "No user has that email. Ask an admin to add the user first.",
                )
            }
        },
        (None, None) => String::new(),
    };
    let role = f.get("role").cloned().unwrap_or_else(|| "user".to_string());
    match team_api::add_member(&state, &p, &id, &uid, &role).await {
        Ok(()) => redirect(&format!("/ui/teams/{id}?done=member_added")),
        Err(e) => error_page(
            &state,
            Some(&p),
            e.status,
            "Member not added",
            &api_message(&e),
        ),
    }
}

pub(super) async fn team_member_role(
    State(state): State<Arc<WebState>>,
    Path((id, uid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    let role = f.get("role").cloned().unwrap_or_else(|| "user".to_string());
    match team_api::update_member(&state, &p, &id, &uid, Some(&role), None).await {
        Ok(_) => redirect(&format!("/ui/teams/{id}?done=member_updated")),
        Err(e) => error_page(&state, Some(&p), e.status, "Not changed", &api_message(&e)),
    }
}

pub(super) async fn team_member_delete_confirm(
    State(state): State<Arc<WebState>>,
    Path((id, uid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    if !team_api::can_manage(&state, &p, &id).await.unwrap_or(false) {
        return denied(&state, &p);
    }
    confirm(
        &state,
        &p,
        "Remove member",
        "Remove this member from the team?",
        &format!("/ui/teams/{id}/members/{uid}/delete"),
        "Remove",
        &format!("/ui/teams/{id}"),
    )
}

pub(super) async fn team_member_delete(
    State(state): State<Arc<WebState>>,
    Path((id, uid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, _) = or_page!(form_post(&state, &headers, &body).await);
    match team_api::remove_member(&state, &p, &id, &uid).await {
        Ok(()) => redirect(&format!("/ui/teams/{id}?done=member_removed")),
        Err(e) => error_page(&state, Some(&p), e.status, "Not removed", &api_message(&e)),
    }
}

pub(super) async fn team_delete_confirm(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "POST", "/team/delete").await);
    confirm(
        &state,
        &p,
        "Delete team",
        "Delete this team? Its memberships go with it.",
        &format!("/ui/teams/{id}/delete"),
        "Delete team",
        &format!("/ui/teams/{id}"),
    )
}

pub(super) async fn team_delete(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, _) = or_page!(form_for(&state, &headers, &body, "POST", "/team/delete").await);
    match team_api::delete_teams(&state, &p, std::slice::from_ref(&id)).await {
        Ok(_) => redirect("/ui/teams?done=team_deleted"),
        Err(e) => error_page(&state, Some(&p), e.status, "Not deleted", &api_message(&e)),
    }
}
