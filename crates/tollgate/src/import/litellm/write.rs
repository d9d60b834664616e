//! Writing a checked [`Plan`] into the store, parents first (users, teams, memberships, keys,
//! invitations). Each kind is recorded in `imported_rows` as begun before its rows are written
//! and as imported once they are: an interrupted import is completed by running it again (a
//! begun row found in the store is finished, not taken for a conflict), and no row that merely
//! shares an id is ever taken for one of ours.

use chrono::{DateTime, DurationRound, Utc};
use tollgate_identity::tokens::new_invitation_id;
use tollgate_mailer::{Invitation, Mailer};
use tollgate_store::{BudgetOwnerKind, NewInvitation, Store, StoreError, TeamPatch};

use super::plan::{begun, member_id, Plan, INVITATION, KEY, MEMBER, SOURCE, TEAM, USER};
use super::{ImportError, Options};
use crate::import::report::{FreshInvitation, Report};

/// Who the store records as creating rows that LiteLLM did not attribute.
pub(super) const IMPORTER: &str = "litellm-import";

/// How long the links sent to users who had a password stay valid (Tollgate's invitation TTL).
const FRESH_INVITATION_DAYS: i64 = 7;

/// A store error, with the row it was writing.
fn at(row: String) -> impl FnOnce(StoreError) -> ImportError {
    move |source| ImportError::Write { row, source }
}

pub async fn write(
    plan: Plan,
    store: &Store,
    options: &Options,
    report: &mut Report,
) -> Result<(), ImportError> {
    let ids: Vec<String> = plan.users.iter().map(|u| u.user.user_id.clone()).collect();
    begin(store, USER, &ids).await?;
    for u in &plan.users {
        let id = &u.user.user_id;
        if store
            .get_user(id)
            .await
            .map_err(at(format!("user {id}")))?
            .is_none()
        {
            store
                .create_user(&u.user)
                .await
                .map_err(at(format!("user {id}")))?;
        }
        if u.budget_reset_at.is_some() {
            store
                .set_budget_reset_at(BudgetOwnerKind::User, id, u.budget_reset_at)
                .await
                .map_err(at(format!("user {id}")))?;
        }
    }
    record(store, USER, &ids).await?;

    let ids: Vec<String> = plan.teams.iter().map(|t| t.team.team_id.clone()).collect();
    begin(store, TEAM, &ids).await?;
    for t in &plan.teams {
        let id = &t.team.team_id;
        if store
            .get_team(id)
            .await
            .map_err(at(format!("team {id}")))?
            .is_none()
        {
            store
                .create_team(&t.team)
                .await
                .map_err(at(format!("team {id}")))?;
        }
        // Set, not added: finishing a begun team writes the same value again.
        if t.spend_nanos != 0 {
            let patch = TeamPatch {
                spend_nanos: Some(t.spend_nanos),
                ..TeamPatch::default()
            };
            store
                .update_team(id, &patch)
                .await
                .map_err(at(format!("team {id}")))?;
        }
        if t.budget_reset_at.is_some() {
            store
                .set_budget_reset_at(BudgetOwnerKind::Team, id, t.budget_reset_at)
                .await
                .map_err(at(format!("team {id}")))?;
        }
    }
    record(store, TEAM, &ids).await?;

    record(store, MEMBER, &plan.known_members).await?;
    let ids: Vec<String> = plan
        .members
        .iter()
        .map(|(t, m)| member_id(t, &m.user_id))
        .collect();
    begin(store, MEMBER, &ids).await?;
    for (team_id, m) in &plan.members {
        let added = store
            .add_member(team_id, &m.user_id, m.role, m.max_budget_in_team_nanos)
            .await;
        let row = || format!("team {team_id} member {}", m.user_id);
        match added {
            // Added by the interrupted run this one finishes.
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(at(row())(e)),
        }
        if m.spend_nanos != 0 {
            store
                .set_member_spend(team_id, &m.user_id, m.spend_nanos)
                .await
                .map_err(at(row()))?;
        }
    }
    record(store, MEMBER, &ids).await?;

    let ids: Vec<String> = plan.keys.iter().map(|k| k.key.token.clone()).collect();
    begin(store, KEY, &ids).await?;
    for k in &plan.keys {
        let row = || format!("key {}", k.label);
        if store
            .get_key(&k.key.token)
            .await
            .map_err(at(row()))?
            .is_none()
        {
            store.create_key(&k.key).await.map_err(at(row()))?;
        }
    }
    record(store, KEY, &ids).await?;

    let ids: Vec<String> = plan.invitations.iter().map(|i| i.id_hash.clone()).collect();
    begin(store, INVITATION, &ids).await?;
    for inv in &plan.invitations {
        let row = || format!("invitation for {}", inv.user_id);
        if store
            .get_invitation(&inv.id_hash)
            .await
            .map_err(at(row()))?
            .is_none()
        {
            store.create_invitation(inv).await.map_err(at(row()))?;
        }
    }
    record(store, INVITATION, &ids).await?;

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
            .await
            .map_err(at(format!("a fresh invitation for user {user_id}")))?;
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

async fn begin(store: &Store, kind: &str, ids: &[String]) -> Result<(), ImportError> {
    store
        .record_imported(SOURCE, &begun(kind), ids)
        .await
        .map_err(at(format!("the record of {kind} rows begun")))
}

async fn record(store: &Store, kind: &str, ids: &[String]) -> Result<(), ImportError> {
    store
        .record_imported(SOURCE, kind, ids)
        .await
        .map_err(at(format!("the record of {kind} rows imported")))
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
