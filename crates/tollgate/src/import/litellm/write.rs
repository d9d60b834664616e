//! Writing a checked [`Plan`] into the store, parents first (users, teams, memberships, keys,
//! invitations), recording each kind in `imported_rows` once written. Each row is its own
//! write: an interrupted import is completed by running it again (rows it wrote but did not
//! record are recognised and recorded then).

use chrono::{DateTime, DurationRound, Utc};
use tollgate_identity::tokens::new_invitation_id;
use tollgate_mailer::{Invitation, Mailer};
use tollgate_store::{BudgetOwnerKind, NewInvitation, Store, TeamPatch};

use super::plan::{member_id, Plan, INVITATION, KEY, MEMBER, SOURCE, TEAM, USER};
use super::{ImportError, Options};
use crate::import::report::{FreshInvitation, Report};

/// Who the store records as creating rows that LiteLLM did not attribute.
pub(super) const IMPORTER: &str = "litellm-import";

/// How long the links sent to users who had a password stay valid (Tollgate's invitation TTL).
const FRESH_INVITATION_DAYS: i64 = 7;

pub async fn write(
    plan: Plan,
    store: &Store,
    options: &Options,
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
        let link = tollgate_web::api::invitations::link_for(&options.base_url, &id);
        let expires_at = now + chrono::Duration::days(FRESH_INVITATION_DAYS);
        let email_sent = match &options.mailer {
            Some(mailer) => Some(send(mailer, email.as_deref(), &link, expires_at).await),
            None => None,
        };
        report.invitations.push(FreshInvitation {
            user_id,
            email,
            link: Some(link),
            email_sent,
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

/// Emails one invitation link; a failure is reported, not fatal (the link is printed anyway).
async fn send(
    mailer: &Mailer,
    to: Option<&str>,
    link: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), String> {
    let Some(to) = to else {
        return Err("the user has no email address".to_string());
    };
    let expires = expires_at.format("%Y-%m-%d %H:%M UTC").to_string();
    mailer
        .send_invitation(&Invitation {
            to,
            link,
            invited_by: None,
            expires_at: &expires,
        })
        .await
        .map_err(|e| e.to_string())
}
