//! Deciding, before anything is written, what each LiteLLM row becomes: new in the store,
//! already there from an earlier import (left alone), skipped with a reason, or a conflict with a
//! row that is in the store for another reason (which stops the whole import).
//!
//! A row counts as "already imported" when the store holds the same LiteLLM id with the same
//! identity (a user's email, a team's alias, a key's owner); the same id with another identity,
//! or the same email or key alias under another id, is a conflict.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tollgate_store::{NewInvitation, Store};

use super::convert::{self, KeyImport, MemberImport, TeamImport, UserImport};
use super::row::Row;
use super::ImportError;
use crate::import::report::{ModelEntry, Report};

/// Everything read from LiteLLM's database except the spend logs (which are streamed).
pub struct Source {
    pub users: Vec<Row>,
    pub teams: Vec<Row>,
    pub memberships: Vec<Row>,
    pub keys: Vec<Row>,
    pub budgets: Vec<Row>,
    pub invitations: Vec<Row>,
    pub models: Vec<Row>,
}

/// What to write, in order.
#[derive(Default)]
pub struct Plan {
    pub users: Vec<UserImport>,
    pub teams: Vec<TeamImport>,
    pub members: Vec<(String, MemberImport)>,
    pub keys: Vec<KeyImport>,
    pub invitations: Vec<NewInvitation>,
    /// Users to send a fresh invitation: `(user id, email)`.
    pub fresh_invitations: Vec<(String, Option<String>)>,
    pub conflicts: Vec<String>,
}

fn same_email(a: Option<&str>, b: Option<&str>) -> bool {
    a.map(str::to_lowercase) == b.map(str::to_lowercase)
}

pub async fn plan(
    src: &Source,
    store: &Store,
    now: DateTime<Utc>,
    report: &mut Report,
) -> Result<Plan, ImportError> {
    let mut plan = Plan::default();
    let budgets = convert::budgets(&src.budgets);
    // Users that will exist after the import: members and owners are checked against these.
    let mut known_users: HashSet<String> = HashSet::new();
    let mut emails: HashMap<String, String> = HashMap::new();

    for row in &src.users {
        report.count_mut("users").found += 1;
        let Some(u) = convert::user(row) else {
            report.count_mut("users").skipped += 1;
            report.except("user", "(no id)", "a row without user_id".to_string());
            continue;
        };
        let id = u.user.user_id.clone();
        if let Some(email) = &u.user.user_email {
            if let Some(other) = emails.insert(email.to_lowercase(), id.clone()) {
                report.count_mut("users").skipped += 1;
                report.except(
                    "user",
                    &id,
                    format!("email {email} is also LiteLLM user {other}'s; emails are unique in Tollgate"),
                );
                continue;
            }
        }
        match store.get_user(&id).await? {
            Some(existing) => {
                if same_email(existing.user_email.as_deref(), u.user.user_email.as_deref()) {
                    report.count_mut("users").unchanged += 1;
                    known_users.insert(id);
                } else {
                    plan.conflicts
                        .push(format!("user {id}: already in Tollgate with another email"));
                }
            }
            None => {
                let taken = match &u.user.user_email {
                    Some(email) => store.get_user_by_email(email).await?,
                    None => None,
                };
                if let Some(other) = taken {
                    plan.conflicts.push(format!(
                        "user {id}: email {} belongs to Tollgate user {}",
                        u.user.user_email.as_deref().unwrap_or_default(),
                        other.user_id
                    ));
                    continue;
                }
                report.count_mut("users").imported += 1;
                for n in &u.notes {
                    report.except("user", &id, n.clone());
                }
                if u.had_password {
                    plan.fresh_invitations
                        .push((id.clone(), u.user.user_email.clone()));
                }
                known_users.insert(id);
                plan.users.push(u);
            }
        }
    }

    let mut known_teams: HashSet<String> = HashSet::new();
    // Budgets are carried inside the rows that reference them: "imported" with a new row,
    // "unchanged" with one already imported.
    let mut new_budget_refs: HashSet<String> = HashSet::new();
    let mut old_budget_refs: HashSet<String> = HashSet::new();
    for row in &src.teams {
        report.count_mut("teams").found += 1;
        let Some(t) = convert::team(row, &src.memberships, &budgets) else {
            report.count_mut("teams").skipped += 1;
            report.except("team", "(no id)", "a row without team_id".to_string());
            continue;
        };
        let id = t.team.team_id.clone();
        let existing = store.get_team(&id).await?;
        let is_new = existing.is_none();
        let existing_members: HashSet<String> = match existing {
            Some(existing) if existing.team_alias == t.team.team_alias => {
                report.count_mut("teams").unchanged += 1;
                store
                    .list_members(&id)
                    .await?
                    .into_iter()
                    .map(|m| m.user_id)
                    .collect()
            }
            Some(_) => {
                plan.conflicts
                    .push(format!("team {id}: already in Tollgate with another alias"));
                continue;
            }
            None => {
                report.count_mut("teams").imported += 1;
                for n in &t.notes {
                    report.except("team", &id, n.clone());
                }
                HashSet::new()
            }
        };
        known_teams.insert(id.clone());
        for m in &t.members {
            report.count_mut("team members").found += 1;
            if existing_members.contains(&m.user_id) {
                report.count_mut("team members").unchanged += 1;
                old_budget_refs.extend(m.budget_id.clone());
            } else if known_users.contains(&m.user_id)
                || store.get_user(&m.user_id).await?.is_some()
            {
                report.count_mut("team members").imported += 1;
                new_budget_refs.extend(m.budget_id.clone());
                plan.members.push((id.clone(), m.clone()));
            } else {
                report.count_mut("team members").skipped += 1;
                report.except(
                    "team",
                    &id,
                    format!("member {} is not a user; membership skipped", m.user_id),
                );
            }
        }
        if is_new {
            plan.teams.push(t);
        }
    }

    for row in &src.keys {
        report.count_mut("keys").found += 1;
        let k = match convert::key(row, &budgets) {
            Ok(k) => k,
            Err(why) => {
                report.count_mut("keys").skipped += 1;
                report.except("key", convert::key_label(row), why);
                continue;
            }
        };
        if let Some(existing) = store.get_key(&k.key.token).await? {
            if existing.user_id == k.key.user_id && existing.team_id == k.key.team_id {
                report.count_mut("keys").unchanged += 1;
                old_budget_refs.extend(row.text("budget_id"));
            } else {
                plan.conflicts.push(format!(
                    "key {}: already in Tollgate with another owner",
                    k.label
                ));
            }
            continue;
        }
        if let Some(alias) = &k.key.key_alias {
            if let Some(other) = store.get_key_by_alias(alias).await? {
                if other.token != k.key.token {
                    plan.conflicts.push(format!(
                        "key {}: alias {alias} is already used by Tollgate key {}",
                        k.label, other.key_name
                    ));
                    continue;
                }
            }
        }
        report.count_mut("keys").imported += 1;
        new_budget_refs.extend(row.text("budget_id"));
        for n in &k.notes {
            report.except("key", &k.label, n.clone());
        }
        if let Some(user) = &k.key.user_id {
            if !known_users.contains(user) && store.get_user(user).await?.is_none() {
                report.except(
                    "key",
                    &k.label,
                    format!("owner {user} is not a user; the key keeps the id"),
                );
            }
        }
        if let Some(team) = &k.key.team_id {
            if !known_teams.contains(team) && store.get_team(team).await?.is_none() {
                report.except(
                    "key",
                    &k.label,
                    format!("team {team} is not a team; the key keeps the id"),
                );
            }
        }
        plan.keys.push(k);
    }

    for row in &src.budgets {
        report.count_mut("budgets").found += 1;
        let id = row.text("budget_id").unwrap_or_default();
        if new_budget_refs.contains(&id) {
            report.count_mut("budgets").imported += 1;
        } else if old_budget_refs.contains(&id) {
            report.count_mut("budgets").unchanged += 1;
        } else {
            report.count_mut("budgets").skipped += 1;
            report.except(
                "budget",
                id,
                "not referenced by a key or team member (end-user, organization or tag \
                 budgets have no Tollgate equivalent)"
                    .to_string(),
            );
        }
    }

    for row in &src.invitations {
        report.count_mut("invitations").found += 1;
        let inv = match convert::invitation(row, now) {
            Ok(Some(inv)) => inv,
            Ok(None) => {
                // Accepted or expired: nothing to carry.
                report.count_mut("invitations").skipped += 1;
                continue;
            }
            Err(why) => {
                report.count_mut("invitations").skipped += 1;
                report.except("invitation", "(unknown)", why);
                continue;
            }
        };
        if !known_users.contains(&inv.user_id) {
            report.count_mut("invitations").skipped += 1;
            report.except(
                "invitation",
                format!("for {}", inv.user_id),
                "the user is not imported".to_string(),
            );
        } else if store.get_invitation(&inv.id_hash).await?.is_some() {
            report.count_mut("invitations").unchanged += 1;
        } else {
            report.count_mut("invitations").imported += 1;
            plan.invitations.push(inv);
        }
    }

    for row in &src.models {
        report.count_mut("models").found += 1;
        report.count_mut("models").skipped += 1;
        report.models.push(ModelEntry {
            model_id: row.text("model_id").unwrap_or_default(),
            model_name: row.text("model_name").unwrap_or_default(),
            model: convert::stored_model_name(row),
        });
    }
    Ok(plan)
}
