//! The Users page: list, add (with an invitation), change a role, invite again, delete.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tollgate_domain::role::Role;
use tollgate_store::users::UserFilter;

use crate::api::{invitations as inv_api, users as user_api};
use crate::principal::Principal;
use crate::state::WebState;
use crate::views::ts;

use super::{
    api_message, confirm, denied, error_page, flash_for, form_for, form_post, may, page_for,
    redirect, render, Flash, Page,
};

fn roles_ctx() -> Vec<RoleChoice> {
    Role::ALL
        .iter()
        .map(|r| RoleChoice {
            value: r.as_str(),
            label: r.ui_label(),
        })
        .collect()
}

async fn users_ctx(
    state: &WebState,
    p: &Principal,
    q: &HashMap<String, String>,
) -> Page<UsersPage> {
    let page = q
        .get("page")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let search = q.get("q").cloned().unwrap_or_default();
    let role = q.get("role").cloned().unwrap_or_default();
    let filter = UserFilter {
        role: Some(role.clone()).filter(|r| !r.is_empty()),
        email_contains: Some(search.clone()).filter(|s| !s.is_empty()),
        user_ids: None,
        page,
        page_size: 25,
    };
    let (users, total) = state.store.list_users(&filter).await.unwrap_or_default();
    let mut rows = Vec::new();
    for u in users {
        let has_password = state
            .store
            .get_password_hash(&u.user_id)
            .await
            .ok()
            .flatten()
            .is_some();
        rows.push(UserView {
            role_label: Role::parse(&u.user_role).map_or("", |r| r.ui_label()),
            created_at: ts(&u.created_at),
            user_id: u.user_id,
            email: u.user_email,
            alias: u.user_alias,
            role: u.user_role,
            has_password,
        });
    }
    let ctx = UsersPage {
        users: rows,
        q: search,
        role_filter: role,
        page,
        total_pages: (total as u64).div_ceil(25).max(1),
        total,
        roles: roles_ctx(),
        form: UserForm::default(),
        created: None,
        smtp_enabled: state.mail.is_some(),
    };
    Page::new(p, "users", flash_for(q), ctx)
}

#[derive(Serialize)]
struct UsersPage {
    users: Vec<UserView>,
    /// The email search and role filter.
    q: String,
    role_filter: String,
    page: u32,
    total_pages: u64,
    total: i64,
    roles: Vec<RoleChoice>,
    form: UserForm,
    /// The invitation just made, its link shown once.
    created: Option<Invited>,
    smtp_enabled: bool,
}

#[derive(Serialize)]
struct UserView {
    user_id: String,
    email: Option<String>,
    alias: Option<String>,
    role: String,
    role_label: &'static str,
    created_at: String,
    has_password: bool,
}

#[derive(Serialize)]
struct RoleChoice {
    value: &'static str,
    label: &'static str,
}

/// The add-user form as it comes back.
#[derive(Serialize)]
struct UserForm {
    email: String,
    role: String,
    errors: UserFormErrors,
}

impl Default for UserForm {
    fn default() -> UserForm {
        UserForm {
            email: String::new(),
            role: "internal_user".to_string(),
            errors: UserFormErrors::default(),
        }
    }
}

#[derive(Serialize, Default)]
struct UserFormErrors {
    email: Option<String>,
    role: Option<String>,
}

/// The invitation panel: its link (once), and whether it was emailed.
#[derive(Serialize)]
struct Invited {
    user_id: String,
    email: String,
    invite_link: Option<String>,
    emailed: Option<bool>,
    email_error: Option<String>,
}

pub(super) async fn users_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "GET", "/user/list").await);
    render(
        &state,
        StatusCode::OK,
        "users.html",
        &users_ctx(&state, &p, &q).await,
    )
}

pub(super) async fn users_create(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_for(&state, &headers, &body, "POST", "/user/new").await);
    let email = f.get("email").cloned().unwrap_or_default();
    let role = f
        .get("role")
        .cloned()
        .unwrap_or_else(|| "internal_user".to_string());
    let req = user_api::NewUserRequest {
        user_email: Some(email.clone()),
        user_role: Some(role.clone()),
        ..Default::default()
    };
    let mut ctx = users_ctx(&state, &p, &HashMap::new()).await;
    match user_api::create_user(&state, &p, &req).await {
        Ok(user) => {
            let created = invite_panel(
                &state,
                &p,
                &user.user_id,
                &headers,
                f.contains_key("send_email"),
            )
            .await;
            ctx = users_ctx(&state, &p, &HashMap::new()).await;
            ctx.page.created = Some(created);
            ctx.signed_in.flash = Some(Flash {
                kind: "ok".to_string(),
                message: format!("User {} was created.", email.trim()),
            });
            render(&state, StatusCode::OK, "users.html", &ctx)
        }
        Err(e) => {
            let field = if e.param.as_deref() == Some("user_role") {
                "role"
            } else {
                "email"
            };
            let mut errors = UserFormErrors::default();
            if field == "role" {
                errors.role = Some(api_message(&e));
            } else {
                errors.email = Some(api_message(&e));
            }
            ctx.page.form = UserForm {
                email: email.clone(),
                role: role.clone(),
                errors,
            };
            render(&state, StatusCode::BAD_REQUEST, "users.html", &ctx)
        }
    }
}

/// Creates an invitation (and emails it when asked) for the panel that shows the link once.
async fn invite_panel(
    state: &WebState,
    p: &Principal,
    user_id: &str,
    headers: &HeaderMap,
    send: bool,
) -> Invited {
    let user = state.store.get_user(user_id).await.ok().flatten();
    let email = user
        .as_ref()
        .and_then(|u| u.user_email.clone())
        .unwrap_or_default();
    match inv_api::create_for_user(state, p, user_id, headers).await {
        Ok(c) => {
            let (emailed, email_error) = match (send, &user) {
                (true, Some(u)) => {
                    let outcome = crate::mail::send_invitation(state, u, &c.link, &c.row, p).await;
                    (
                        Some(matches!(outcome, crate::mail::MailOutcome::Sent)),
                        outcome.error(),
                    )
                }
                _ => (None, None),
            };
            Invited {
                user_id: user_id.to_string(),
                email,
                invite_link: Some(c.link),
                emailed,
                email_error,
            }
        }
        Err(e) => Invited {
            user_id: user_id.to_string(),
            email,
            invite_link: None,
            emailed: None,
            email_error: Some(api_message(&e)),
        },
    }
}

pub(super) async fn user_invite(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    if !may(&p, "POST", "/invitation/new") || !p.role.can_write() {
        return denied(&state, &p);
    }
    let created = invite_panel(&state, &p, &id, &headers, f.contains_key("send_email")).await;
    let mut ctx = users_ctx(&state, &p, &HashMap::new()).await;
    ctx.page.created = Some(created);
    render(&state, StatusCode::OK, "users.html", &ctx)
}

pub(super) async fn user_role(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    if !may(&p, "POST", "/user/update") || p.role != Role::ProxyAdmin {
        return denied(&state, &p);
    }
    let Some(role) = f.get("role").and_then(|r| Role::parse(r)) else {
        return error_page(
            &state,
            Some(&p),
            StatusCode::BAD_REQUEST,
            "Unknown role",
            "Choose one of the listed roles.",
        );
    };
    match user_api::change_role(&state, &p, &id, role).await {
        Ok(_) => redirect("/ui/users?done=role_changed"),
        Err(e) => {
            let title = match e.status {
                StatusCode::FORBIDDEN => "Not allowed",
                StatusCode::NOT_FOUND => "Not found",
                _ => "Try again",
            };
            error_page(&state, Some(&p), e.status, title, &api_message(&e))
        }
    }
}

pub(super) async fn user_delete_confirm(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "POST", "/user/delete").await);
    let who = state
        .store
        .get_user(&id)
        .await
        .ok()
        .flatten()
        .and_then(|u| u.user_email)
        .unwrap_or(id.clone());
    confirm(
        &state,
        &p,
        "Delete user",
        &format!("Delete {who}? Their sessions, invitations and team memberships go with them."),
        &format!("/ui/users/{id}/delete"),
        "Delete user",
        "/ui/users",
    )
}

pub(super) async fn user_delete(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, _) = or_page!(form_for(&state, &headers, &body, "POST", "/user/delete").await);
    match user_api::delete_users(&state, &p, std::slice::from_ref(&id)).await {
        Ok(_) => redirect("/ui/users?done=user_deleted"),
        Err(e) => error_page(&state, Some(&p), e.status, "Not deleted", &api_message(&e)),
    }
}
