//! JSON shapes of LiteLLM's management API, built from store rows.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tollgate_domain::NanoUsd;
use tollgate_store::invitations::InvitationRow;
use tollgate_store::teams::{TeamMemberRow, TeamRow};
use tollgate_store::users::UserRow;

pub fn usd(nanos: Option<i64>) -> Value {
    match nanos {
        Some(n) => json!(NanoUsd(n).to_usd()),
        None => Value::Null,
    }
}

pub fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn user(u: &UserRow) -> Value {
    json!({
        "user_id": u.user_id,
        "user_email": u.user_email,
        "user_alias": u.user_alias,
        "user_role": u.user_role,
        "teams": u.teams,
        "models": u.models,
        "max_budget": usd(u.max_budget_nanos),
        "budget_duration": u.budget_duration,
        "spend": NanoUsd(u.spend_nanos).to_usd(),
        "tpm_limit": u.tpm_limit,
        "rpm_limit": u.rpm_limit,
        "max_parallel_requests": u.max_parallel_requests,
        "metadata": u.metadata,
        "created_at": ts(&u.created_at),
        "updated_at": ts(&u.updated_at),
    })
}

pub fn team(t: &TeamRow, members: &[TeamMemberRow]) -> Value {
    let with_roles: Vec<Value> = members
        .iter()
        .map(|m| json!({"user_id": m.user_id, "user_email": Value::Null, "role": m.role}))
        .collect();
    let admins: Vec<&str> = members
        .iter()
        .filter(|m| m.role == "admin")
        .map(|m| m.user_id.as_str())
        .collect();
    let plain: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    json!({
        "team_id": t.team_id,
        "team_alias": t.team_alias,
        "models": t.models,
        "max_budget": usd(t.max_budget_nanos),
        "budget_duration": t.budget_duration,
        "spend": NanoUsd(t.spend_nanos).to_usd(),
        "tpm_limit": t.tpm_limit,
        "rpm_limit": t.rpm_limit,
        "max_parallel_requests": t.max_parallel_requests,
        "blocked": t.blocked,
        "metadata": t.metadata,
        "admins": admins,
        "members": plain,
        "members_with_roles": with_roles,
        "created_at": ts(&t.created_at),
        "updated_at": ts(&t.updated_at),
    })
}

pub fn membership(m: &TeamMemberRow) -> Value {
    json!({
        "team_id": m.team_id,
        "user_id": m.user_id,
        "role": m.role,
        "spend": NanoUsd(m.spend_nanos).to_usd(),
        "max_budget_in_team": usd(m.max_budget_in_team_nanos),
    })
}

/// LiteLLM's InvitationModel. `id` is only known when the invitation is created (it is stored
/// hashed); afterwards the caller's own copy is echoed back.
pub fn invitation(r: &InvitationRow, id: &str) -> Value {
    json!({
        "id": id,
        "user_id": r.user_id,
        "is_accepted": r.is_accepted,
        "accepted_at": r.accepted_at.as_ref().map(ts),
        "expires_at": ts(&r.expires_at),
        "created_at": ts(&r.created_at),
        "created_by": r.created_by,
        "updated_at": ts(&r.updated_at),
        "updated_by": r.updated_by,
    })
}
