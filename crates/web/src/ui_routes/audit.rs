//! The Audit log page.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use tollgate_store::audit::AuditFilter;

use crate::state::WebState;
use crate::views::ts;

use super::{base_ctx, merge, page_for, render};

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
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| json!({"at": ts(&e.at), "actor": e.actor_id, "action": e.action, "object_type": e.object_type, "object_id": e.object_id,
            "before": e.before.as_ref().map(|v| serde_json::to_string_pretty(v).unwrap_or_default()),
            "after": e.after.as_ref().map(|v| serde_json::to_string_pretty(v).unwrap_or_default())}))
        .collect();
    render(
        &state,
        StatusCode::OK,
        "audit.html",
        &merge(
            base_ctx(&p, "audit", None),
            json!({"entries": rows, "page": page, "total_pages": (total as u64).div_ceil(50).max(1)}),
        ),
    )
}
