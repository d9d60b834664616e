//! The Invitations page: pending and used invitations, and revoking one.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;

use crate::api::invitations as inv_api;
use crate::state::WebState;
use crate::views::ts;

use super::{
    api_message, confirm, error_page, flash_for, form_for, page_for, redirect, render, Page,
};

pub(super) async fn invitations_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "GET", "/invitation/info").await);
    let now = chrono::Utc::now();
    let rows = state.store.list_invitations(None).await.unwrap_or_default();
    let mut out = Vec::new();
    for r in rows {
        let email = state
            .store
            .get_user(&r.user_id)
            .await
            .ok()
            .flatten()
            .and_then(|u| u.user_email);
        let status = if r.is_accepted {
            "accepted"
        } else if r.expires_at <= now {
            "expired"
        } else {
            "pending"
        };
        out.push(InvitationRow {
            expires_at: ts(&r.expires_at),
            created_at: ts(&r.created_at),
            id_hash: r.id_hash,
            user_id: r.user_id,
            email,
            status,
            created_by: r.created_by,
        });
    }
    let ctx = InvitationsPage { invitations: out };
    render(
        &state,
        StatusCode::OK,
        "invitations.html",
        &Page::new(&p, "invitations", flash_for(&q), ctx),
    )
}

#[derive(Serialize)]
struct InvitationsPage {
    invitations: Vec<InvitationRow>,
}

#[derive(Serialize)]
struct InvitationRow {
    id_hash: String,
    user_id: String,
    email: Option<String>,
    /// `pending`, `accepted` or `expired`.
    status: &'static str,
    expires_at: String,
    created_at: String,
    created_by: String,
}

pub(super) async fn invitation_delete_confirm(
    State(state): State<Arc<WebState>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "POST", "/invitation/delete").await);
    confirm(
        &state,
        &p,
        "Revoke invitation",
        "Revoke this invitation? Its link stops working at once.",
        &format!("/ui/invitations/{hash}/delete"),
        "Revoke",
        "/ui/invitations",
    )
}

pub(super) async fn invitation_delete(
    State(state): State<Arc<WebState>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, _) = or_page!(form_for(&state, &headers, &body, "POST", "/invitation/delete").await);
    match inv_api::delete_by_hash(&state, &p, &hash).await {
        Ok(_) => redirect("/ui/invitations?done=invitation_revoked"),
        Err(e) => error_page(&state, Some(&p), e.status, "Not revoked", &api_message(&e)),
    }
}
