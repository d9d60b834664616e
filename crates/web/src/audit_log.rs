//! Writing the audit log: who changed what, when, with the object before and after (never a
//! secret: rows reach here without password hashes or key material).

use chrono::Utc;
use serde_json::Value;
use tollgate_store::audit::AuditEntry;

use crate::principal::Principal;
use crate::state::WebState;

pub async fn record(
    state: &WebState,
    actor: &Principal,
    action: &str,
    object_type: &str,
    object_id: Option<&str>,
    before: Option<Value>,
    after: Option<Value>,
) {
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        at: Utc::now(),
        actor_id: Some(if actor.is_master_key() {
            "litellm_proxy_master_key".to_string()
        } else {
            actor.user_id.clone()
        }),
        actor_role: Some(actor.role.as_str().to_string()),
        action: action.to_string(),
        object_type: object_type.to_string(),
        object_id: object_id.map(str::to_string),
        before,
        after,
    };
    // The change itself already happened; a lost audit line is logged loudly, not hidden.
    if let Err(e) = state.store.insert_audit(&entry).await {
        tracing::error!(error = %e, action, object_type, "audit entry not written");
    }
}
