//! Writing a checked [`Plan`] into the store, parents first (users, teams, memberships, keys,
//! invitations), recording each kind in `imported_rows` once written. Each row is its own
//! write: an interrupted import is completed by running it again (rows it wrote but did not
//! record are recognised and recorded then).

use chrono::{DurationRound, Utc};
use tollgate_identity::tokens::new_invitation_id;
use tollgate_store::{BudgetOwnerKind, NewInvitation, Store, TeamPatch};

use super::plan::{member_id, Plan, INVITATION, KEY, MEMBER, SOURCE, TEAM, USER};
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
    for (kind, id) in &plan.adopt {
        store
            .record_imported(SOURCE, kind, std::slice::from_ref(id))
            .await?;
    }
    for u in &plan.users {
        store.create_user(&u.user).await?;
        if u.budget_reset_at.is_some() {
            store
                .set_budget_reset_at(BudgetOwnerKind::User, &u.user.user_id, u.budget_reset_at)
                .await?;
        }
    }
    record(
        store,
        USER,
        plan.users.iter().map(|u| u.user.user_id.clone()),
    )
    .await?;
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
    record(
        store,
        TEAM,
        plan.teams.iter().map(|t| t.team.team_id.clone()),
    )
    .await?;
    for (team_id, m) in &plan.members {
        store
            .add_member(team_id, &m.user_id, m.role, m.max_budget_in_team_nanos)
            .await?;
    }
    let members = plan.members.iter().map(|(t, m)| member_id(t, &m.user_id));
    record(store, MEMBER, members).await?;
    for k in &plan.keys {
        store.create_key(&k.key).await?;
    }
    record(store, KEY, plan.keys.iter().map(|k| k.key.token.clone())).await?;
    for inv in &plan.invitations {
        store.create_invitation(inv).await?;
    }
    let invitations = plan.invitations.iter().map(|i| i.id_hash.clone());
    record(store, INVITATION, invitations).await?;
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

async fn record(
    store: &Store,
    kind: &str,
    ids: impl Iterator<Item = String>,
) -> Result<(), ImportError> {
    let ids: Vec<String> = ids.collect();
    Ok(store.record_imported(SOURCE, kind, &ids).await?)
}
