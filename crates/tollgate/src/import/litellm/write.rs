//! Writing a checked [`Plan`] into the store, parents first (users, teams, memberships, keys,
//! invitations). Each row is its own write: an interrupted import is completed by running it
//! again, since rows already written count as imported.

use chrono::{DurationRound, Utc};
use tollgate_identity::tokens::new_invitation_id;
use tollgate_store::{BudgetOwnerKind, NewInvitation, Store, TeamPatch};

use super::plan::Plan;
use super::ImportError;
use crate::import::report::{FreshInvitation, Report};

/// Who the store records as creating rows that LiteLLM did not attribute.
pub const IMPORTER: &str = "litellm-import";

/// How long the links sent to users who had a password stay valid (Tollgate's invitation TTL).
const FRESH_INVITATION_DAYS: i64 = 7;

pub async fn write(
    plan: Plan,
    store: &Store,
    base_url: &str,
    report: &mut Report,
) -> Result<(), ImportError> {
    for u in &plan.users {
        store.create_user(&u.user).await?;
        if u.budget_reset_at.is_some() {
            store
                .set_budget_reset_at(BudgetOwnerKind::User, &u.user.user_id, u.budget_reset_at)
                .await?;
        }
    }
    for t in &plan.teams {
        store.create_team(&t.team).await?;
        if t.spend_nanos != 0 {
            let patch = TeamPatch {
                spend_nanos: Some(t.spend_nanos),
                ..TeamPatch::default()
            };
            store.update_team(&t.team.team_id, &patch).await?;
        }
        if t.budget_reset_at.is_some() {
            store
                .set_budget_reset_at(BudgetOwnerKind::Team, &t.team.team_id, t.budget_reset_at)
                .await?;
        }
    }
    for (team_id, m) in &plan.members {
        store
            .add_member(team_id, &m.user_id, m.role, m.max_budget_in_team_nanos)
            .await?;
    }
    for k in &plan.keys {
        store.create_key(&k.key).await?;
    }
    for inv in &plan.invitations {
        store.create_invitation(inv).await?;
    }
    let now = Utc::now()
        .duration_trunc(chrono::Duration::seconds(1))
        .unwrap_or_else(|_| Utc::now());
    for (user_id, email) in plan.fresh_invitations {
        let (id, id_hash) = new_invitation_id().map_err(ImportError::Invitation)?;
        store
            .create_invitation(&NewInvitation {
                id_hash,
                user_id: user_id.clone(),
                expires_at: now + chrono::Duration::days(FRESH_INVITATION_DAYS),
                created_by: IMPORTER.to_string(),
            })
            .await?;
        report.invitations.push(FreshInvitation {
            user_id,
            email,
            link: Some(tollgate_web::api::invitations::link_for(base_url, &id)),
        });
    }
    Ok(())
}
