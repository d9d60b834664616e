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
    let actor_id = if actor.is_master_key() {
        "litellm_proxy_master_key"
    } else {
        actor.user_id.as_str()
    };
    let change = Change {
        action,
        object_type,
        object_id,
        before,
        after,
    };
    record_by(state, Some(actor_id), Some(actor.role.as_str()), change).await;
}

/// One audited change, for [`record_by`].
pub struct Change<'a> {
    pub action: &'a str,
    pub object_type: &'a str,
    pub object_id: Option<&'a str>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Like [`record`], for actions with no signed-in principal yet (an SSO sign-in, or its
/// refusal, where the actor may be unknown).
pub async fn record_by(
    state: &WebState,
    actor_id: Option<&str>,
    actor_role: Option<&str>,
    change: Change<'_>,
) {
    let Change {
        action,
        object_type,
        object_id,
        before,
        after,
    } = change;
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        at: Utc::now(),
        actor_id: actor_id.map(str::to_string),
        actor_role: actor_role.map(str::to_string),
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
