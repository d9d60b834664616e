//! The Audit log page.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tollgate_store::audit::AuditFilter;

use crate::state::WebState;
use crate::views::ts;

use super::{page_for, render, Page};

pub(super) async fn audit_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "GET", "/audit").await);
    let page = q
        .get("page")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let (entries, total) = state
        .store
        .list_audit(&AuditFilter {
            actor_id: None,
            object_type: None,
            object_id: None,
            page,
            page_size: 50,
        })
        .await
        .unwrap_or_default();
    let rows = entries
        .iter()
        .map(|e| AuditRow {
            at: ts(&e.at),
            actor: e.actor_id.as_deref(),
            action: &e.action,
            object_type: &e.object_type,
            object_id: e.object_id.as_deref(),
            before: e.before.as_ref().map(pretty),
            after: e.after.as_ref().map(pretty),
        })
        .collect();
    let ctx = AuditPage {
        entries: rows,
        page,
        total_pages: (total as u64).div_ceil(50).max(1),
    };
    render(
        &state,
        StatusCode::OK,
        "audit.html",
        &Page::new(&p, "audit", None, ctx),
    )
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[derive(Serialize)]
struct AuditPage<'a> {
    entries: Vec<AuditRow<'a>>,
    page: u32,
    total_pages: u64,
}

#[derive(Serialize)]
struct AuditRow<'a> {
    at: String,
    actor: Option<&'a str>,
    action: &'a str,
    object_type: &'a str,
    object_id: Option<&'a str>,
    /// The object before and after, as indented JSON.
    before: Option<String>,
    after: Option<String>,
}
