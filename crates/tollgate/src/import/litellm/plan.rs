//! Deciding, before anything is written, what each LiteLLM row becomes: new in the store,
//! already imported (left as Tollgate has it now), skipped with a reason, or a conflict with a
//! row that is in the store for another reason (which stops the whole import).
//!
//! Rows are matched by their LiteLLM id. One recorded as imported (`imported_rows`) is never
//! imported again, even if it was changed, rotated or deleted here since. One in the store but not
//! recorded was written by an interrupted run when it has the same identity (a user's email, a
//! team's alias, a key's owner) and is then recorded; otherwise it is a conflict, as is an email or
//! key alias already used under another id.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tollgate_store::{NewInvitation, Store};

use super::convert::{self, Budget, KeyImport, MemberImport, TeamImport, UserImport};
use super::row::Row;
use super::ImportError;
use crate::import::report::{ModelEntry, Report};

/// The `source` of this importer's rows in `imported_rows`.
pub const SOURCE: &str = "litellm";

/// Kinds of rows recorded in `imported_rows`.
pub const USER: &str = "user";
pub const TEAM: &str = "team";
pub const MEMBER: &str = "team_member";
pub const KEY: &str = "key";
pub const INVITATION: &str = "invitation";

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
    /// Rows an interrupted run wrote but did not record: `(kind, id)`.
    pub adopt: Vec<(&'static str, String)>,
    pub conflicts: Vec<String>,
}

/// The id a membership is recorded under.
pub fn member_id(team_id: &str, user_id: &str) -> String {
    format!("{team_id}\t{user_id}")
}

fn same_email(a: Option<&str>, b: Option<&str>) -> bool {
    a.map(str::to_lowercase) == b.map(str::to_lowercase)
}

/// What the planning steps share.
struct Ctx<'a> {
    store: &'a Store,
    report: &'a mut Report,
    plan: Plan,
    budgets: HashMap<String, Budget>,
    /// Users and teams that exist once the import is written: members, owners and invitations
    /// are checked against them.
    known_users: HashSet<String>,
    known_teams: HashSet<String>,
    /// Budgets are carried inside the rows that reference them: "imported" with a new row,
    /// "unchanged" with one imported before.
    new_budget_refs: HashSet<String>,
    old_budget_refs: HashSet<String>,
}

impl Ctx<'_> {
    async fn imported(&self, kind: &str) -> Result<HashSet<String>, ImportError> {
        Ok(self.store.imported_ids(SOURCE, kind).await?)
    }

    async fn user_exists(&self, id: &str) -> Result<bool, ImportError> {
        Ok(self.known_users.contains(id) || self.store.get_user(id).await?.is_some())
    }
}

pub async fn plan(
    src: &Source,
    store: &Store,
    now: DateTime<Utc>,
    report: &mut Report,
) -> Result<Plan, ImportError> {
    let mut cx = Ctx {
        store,
        report,
        plan: Plan::default(),
        budgets: convert::budgets(&src.budgets),
        known_users: HashSet::new(),
        known_teams: HashSet::new(),
        new_budget_refs: HashSet::new(),
        old_budget_refs: HashSet::new(),
    };
    users(&mut cx, &src.users).await?;
    teams(&mut cx, &src.teams, &src.memberships).await?;
    keys(&mut cx, &src.keys).await?;
    budgets(&mut cx, &src.budgets);
    invitations(&mut cx, &src.invitations, now).await?;
    models(&mut cx, &src.models);
    Ok(cx.plan)
}

async fn users(cx: &mut Ctx<'_>, rows: &[Row]) -> Result<(), ImportError> {
    let done = cx.imported(USER).await?;
    let mut emails: HashMap<String, String> = HashMap::new();
    for row in rows {
        cx.report.count_mut("users").found += 1;
        let Some(u) = convert::user(row) else {
            cx.report.count_mut("users").skipped += 1;
            cx.report
                .except("user", "(no id)", "a row without user_id".to_string());
            continue;
        };
        let id = u.user.user_id.clone();
        if let Some(email) = &u.user.user_email {
            if let Some(other) = emails.insert(email.to_lowercase(), id.clone()) {
                cx.report.count_mut("users").skipped += 1;
                cx.report.except(
                    "user",
                    &id,
                    format!(
                        "email {email} is also LiteLLM user {other}'s; emails are unique in \
                         Tollgate"
                    ),
                );
                continue;
            }
        }
        let existing = cx.store.get_user(&id).await?;
        if done.contains(&id) {
            cx.report.count_mut("users").unchanged += 1;
            if existing.is_some() {
                cx.known_users.insert(id);
            }
            continue;
        }
        match existing {
            Some(e) if same_email(e.user_email.as_deref(), u.user.user_email.as_deref()) => {
                cx.report.count_mut("users").unchanged += 1;
                cx.plan.adopt.push((USER, id.clone()));
                cx.known_users.insert(id);
            }
            Some(_) => cx
                .plan
                .conflicts
                .push(format!("user {id}: already in Tollgate with another email")),
            None => {
                let taken = match &u.user.user_email {
                    Some(email) => cx.store.get_user_by_email(email).await?,
                    None => None,
                };
                if let Some(other) = taken {
                    cx.plan.conflicts.push(format!(
                        "user {id}: email {} belongs to Tollgate user {}",
                        u.user.user_email.as_deref().unwrap_or_default(),
                        other.user_id
                    ));
                    continue;
                }
                cx.report.count_mut("users").imported += 1;
                for n in &u.notes {
                    cx.report.except("user", &id, n.clone());
                }
                if u.had_password {
                    cx.plan
                        .fresh_invitations
                        .push((id.clone(), u.user.user_email.clone()));
                }
                cx.known_users.insert(id);
                cx.plan.users.push(u);
            }
        }
    }
    Ok(())
}

async fn teams(cx: &mut Ctx<'_>, rows: &[Row], memberships: &[Row]) -> Result<(), ImportError> {
    let done = cx.imported(TEAM).await?;
    let members_done = cx.imported(MEMBER).await?;
    for row in rows {
        cx.report.count_mut("teams").found += 1;
        let Some(t) = convert::team(row, memberships, &cx.budgets) else {
            cx.report.count_mut("teams").skipped += 1;
            cx.report
                .except("team", "(no id)", "a row without team_id".to_string());
            continue;
        };
        let id = t.team.team_id.clone();
        let existing = cx.store.get_team(&id).await?;
        let is_new = existing.is_none() && !done.contains(&id);
        // A team imported before and deleted here since stays deleted, members and all.
        let exists = is_new || existing.is_some();
        match &existing {
            _ if done.contains(&id) => cx.report.count_mut("teams").unchanged += 1,
            Some(e) if e.team_alias == t.team.team_alias => {
                cx.report.count_mut("teams").unchanged += 1;
                cx.plan.adopt.push((TEAM, id.clone()));
            }
            Some(_) => {
                cx.plan
                    .conflicts
                    .push(format!("team {id}: already in Tollgate with another alias"));
                continue;
            }
            None => {
                cx.report.count_mut("teams").imported += 1;
                for n in &t.notes {
                    cx.report.except("team", &id, n.clone());
                }
            }
        }
        let current: HashSet<String> = match existing {
            Some(_) => cx
                .store
                .list_members(&id)
                .await?
                .into_iter()
                .map(|m| m.user_id)
                .collect(),
            None => HashSet::new(),
        };
        if exists {
            cx.known_teams.insert(id.clone());
        }
        for m in &t.members {
            cx.report.count_mut("team members").found += 1;
            let mid = member_id(&id, &m.user_id);
            if members_done.contains(&mid) || !exists {
                cx.report.count_mut("team members").unchanged += 1;
                cx.old_budget_refs.extend(m.budget_id.clone());
            } else if current.contains(&m.user_id) {
                cx.report.count_mut("team members").unchanged += 1;
                cx.old_budget_refs.extend(m.budget_id.clone());
                cx.plan.adopt.push((MEMBER, mid));
            } else if cx.user_exists(&m.user_id).await? {
                cx.report.count_mut("team members").imported += 1;
                cx.new_budget_refs.extend(m.budget_id.clone());
                cx.plan.members.push((id.clone(), m.clone()));
            } else {
                cx.report.count_mut("team members").skipped += 1;
                cx.report.except(
                    "team",
                    &id,
                    format!("member {} is not a user; membership skipped", m.user_id),
                );
            }
        }
        if is_new {
            cx.plan.teams.push(t);
        }
    }
    Ok(())
}

/// The team LiteLLM gives the keys behind its own UI sessions.
const UI_SESSION_TEAM: &str = "litellm-dashboard";

async fn keys(cx: &mut Ctx<'_>, rows: &[Row]) -> Result<(), ImportError> {
    let done = cx.imported(KEY).await?;
    let mut ui_sessions = 0u64;
    for row in rows {
        cx.report.count_mut("keys").found += 1;
        if row.text("team_id").as_deref() == Some(UI_SESSION_TEAM) {
            ui_sessions += 1;
            cx.report.count_mut("keys").skipped += 1;
            continue;
        }
        let k = match convert::key(row, &cx.budgets) {
            Ok(k) => k,
            Err(why) => {
                cx.report.count_mut("keys").skipped += 1;
                cx.report.except("key", convert::key_label(row), why);
                continue;
            }
        };
        let budget_id = row.text("budget_id");
        // Imported before: left alone, even if it was rotated or deleted since (a rotated-away
        // key must not come back).
        if done.contains(&k.key.token) {
            cx.report.count_mut("keys").unchanged += 1;
            cx.old_budget_refs.extend(budget_id);
            continue;
        }
        if let Some(existing) = cx.store.get_key(&k.key.token).await? {
            if existing.user_id == k.key.user_id && existing.team_id == k.key.team_id {
                cx.report.count_mut("keys").unchanged += 1;
                cx.old_budget_refs.extend(budget_id);
                cx.plan.adopt.push((KEY, k.key.token.clone()));
            } else {
                cx.plan.conflicts.push(format!(
                    "key {}: already in Tollgate with another owner",
                    k.label
                ));
            }
            continue;
        }
        if cx.store.get_deleted_key(&k.key.token).await?.is_some() {
            cx.report.count_mut("keys").skipped += 1;
            cx.report.except(
                "key",
                &k.label,
                "deleted in Tollgate; not brought back".to_string(),
            );
            continue;
        }
        if let Some(alias) = &k.key.key_alias {
            if let Some(other) = cx.store.get_key_by_alias(alias).await? {
                cx.plan.conflicts.push(format!(
                    "key {}: alias {alias} is already used by Tollgate key {}",
                    k.label, other.key_name
                ));
                continue;
            }
        }
        cx.report.count_mut("keys").imported += 1;
        cx.new_budget_refs.extend(budget_id);
        for n in &k.notes {
            cx.report.except("key", &k.label, n.clone());
        }
        if let Some(user) = &k.key.user_id {
            if !cx.user_exists(user).await? {
                cx.report.except(
                    "key",
                    &k.label,
                    format!("owner {user} is not a user; the key keeps the id"),
                );
            }
        }
        if let Some(team) = &k.key.team_id {
            if !cx.known_teams.contains(team) && cx.store.get_team(team).await?.is_none() {
                cx.report.except(
                    "key",
                    &k.label,
                    format!("team {team} is not a team; the key keeps the id"),
                );
            }
        }
        cx.plan.keys.push(k);
    }
    if ui_sessions > 0 {
        cx.report.except(
            "key",
            format!("(team {UI_SESSION_TEAM})"),
            format!(
                "{ui_sessions} LiteLLM UI session keys skipped: sessions do not carry over \
                 (people sign in to Tollgate's UI anew)"
            ),
        );
    }
    Ok(())
}

fn budgets(cx: &mut Ctx<'_>, rows: &[Row]) {
    for row in rows {
        cx.report.count_mut("budgets").found += 1;
        let id = row.text("budget_id").unwrap_or_default();
        if cx.new_budget_refs.contains(&id) {
            cx.report.count_mut("budgets").imported += 1;
        } else if cx.old_budget_refs.contains(&id) {
            cx.report.count_mut("budgets").unchanged += 1;
        } else {
            cx.report.count_mut("budgets").skipped += 1;
            cx.report.except(
                "budget",
                id,
                "not referenced by a key or team member (end-user, organization or tag \
                 budgets have no Tollgate equivalent)"
                    .to_string(),
            );
        }
    }
}

async fn invitations(
    cx: &mut Ctx<'_>,
    rows: &[Row],
    now: DateTime<Utc>,
) -> Result<(), ImportError> {
    let done = cx.imported(INVITATION).await?;
    for row in rows {
        cx.report.count_mut("invitations").found += 1;
        let inv = match convert::invitation(row, now) {
            Ok(Some(inv)) => inv,
            Ok(None) => {
                // Accepted or expired: nothing to carry.
                cx.report.count_mut("invitations").skipped += 1;
                continue;
            }
            Err(why) => {
                cx.report.count_mut("invitations").skipped += 1;
                cx.report.except("invitation", "(unknown)", why);
                continue;
            }
        };
        if done.contains(&inv.id_hash) {
            cx.report.count_mut("invitations").unchanged += 1;
        } else if cx.store.get_invitation(&inv.id_hash).await?.is_some() {
            cx.report.count_mut("invitations").unchanged += 1;
            cx.plan.adopt.push((INVITATION, inv.id_hash.clone()));
        } else if !cx.user_exists(&inv.user_id).await? {
            cx.report.count_mut("invitations").skipped += 1;
            cx.report.except(
                "invitation",
                format!("for {}", inv.user_id),
                "the user is not imported".to_string(),
            );
        } else {
            cx.report.count_mut("invitations").imported += 1;
            cx.plan.invitations.push(inv);
        }
    }
    Ok(())
}

fn models(cx: &mut Ctx<'_>, rows: &[Row]) {
    for row in rows {
        cx.report.count_mut("models").found += 1;
        cx.report.count_mut("models").skipped += 1;
        cx.report.models.push(ModelEntry {
            model_id: row.text("model_id").unwrap_or_default(),
            model_name: row.text("model_name").unwrap_or_default(),
            model: convert::stored_model_name(row),
        });
    }
}
