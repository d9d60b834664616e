//! `GET /audit`: the audit log, newest first (admin roles only, by the route policy).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tollgate_store::audit::AuditFilter;

use crate::principal::store_unavailable;
use crate::state::WebState;
use crate::views::ts;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AuditQuery {
    actor_id: Option<String>,
    object_type: Option<String>,
    object_id: Option<String>,
    page: Option<u32>,
    page_size: Option<u32>,
}

pub async fn list(State(state): State<Arc<WebState>>, Query(q): Query<AuditQuery>) -> Response {
    let page = q.page.unwrap_or(1).max(1);
    let page_size = q.page_size.unwrap_or(50).clamp(1, 200);
    let filter = AuditFilter {
        actor_id: q.actor_id,
        object_type: q.object_type,
        object_id: q.object_id,
        page,
        page_size,
    };
    match state.store.list_audit(&filter).await {
        Ok((entries, total)) => Json(json!({
            "entries": entries.iter().map(|e| json!({
                "id": e.id,
                "at": ts(&e.at),
                "actor_id": e.actor_id,
                "actor_role": e.actor_role,
                "action": e.action,
                "object_type": e.object_type,
                "object_id": e.object_id,
                "before": e.before,
                "after": e.after,
            })).collect::<Vec<_>>(),
            "total": total,
            "page": page,
            "page_size": page_size,
            "total_pages": (total as u64).div_ceil(page_size as u64).max(1),
        }))
        .into_response(),
        Err(e) => store_unavailable(&e).into_response(),
    }
}
