//! Deciding, before anything is written, what each LiteLLM row becomes: new in the store,
//! already imported (left as Tollgate has it now), skipped with a reason, or a conflict with a
//! row that is in the store for another reason (which stops the whole import).
//!
//! Rows are matched by their LiteLLM id. One recorded as imported (`imported_rows`) is never
//! imported again, even if it was changed, rotated or deleted here since. The writer records
//! each row as begun before writing it, so a row in the store that was begun but not recorded
//! as imported was written by an interrupted run, and is completed now; any other row in the
//! store with the same id is a conflict, as is an email or key alias already used under another
//! id. (A membership already in the team is the one exception: it is the same fact, and is only
//! recorded.)

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tollgate_store::{NewInvitation, Store};

use super::convert::{self, Budget, KeyImport, MemberImport, TeamImport, UserImport};
use super::row::Row;
use super::write::IMPORTER;
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

/// The kind under which a row is recorded as begun, before it is written.
pub fn begun(kind: &str) -> String {
    format!("begun:{kind}")
}

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
    /// Memberships already in their team: recorded, nothing written.
    pub known_members: Vec<String>,
    pub conflicts: Vec<String>,
}

/// The id a membership is recorded under.
pub fn member_id(team_id: &str, user_id: &str) -> String {
    format!("{team_id}\t{user_id}")
}

/// What the planning steps share.
struct Ctx<'a> {
    store: &'a Store,
    report: &'a mut Report,
    now: DateTime<Utc>,
    allow_weaker: bool,
    plan: Plan,
    budgets: HashMap<String, Budget>,
    /// Users and teams that exist once the import is written: members, owners and invitations
    /// are checked against them.
    known_users: HashSet<String>,
    known_teams: HashSet<String>,
    /// Users and teams in LiteLLM's tables that are not carried: their keys are not either.
    skipped_users: HashSet<String>,
    skipped_teams: HashSet<String>,
    /// Budgets are carried inside the rows that reference them: "imported" with a new row,
    /// "unchanged" with one imported before.
    new_budget_refs: HashSet<String>,
    old_budget_refs: HashSet<String>,
}

/// The ids of one kind recorded as imported, and those recorded as begun but not imported.
struct Recorded {
    done: HashSet<String>,
    begun: HashSet<String>,
}

impl Ctx<'_> {
    async fn recorded(&self, kind: &str) -> Result<Recorded, ImportError> {
        let done = self.store.imported_ids(SOURCE, kind).await?;
        let mut begun = self.store.imported_ids(SOURCE, &begun(kind)).await?;
        begun.retain(|id| !done.contains(id));
        Ok(Recorded { done, begun })
    }

    /// A user who had a LiteLLM password and is in the store: a fresh invitation link unless
    /// they have set a password here or one is still open (then a note says where it is).
    async fn link_for(&mut self, user_id: &str, email: Option<&str>) -> Result<(), ImportError> {
        if self.store.get_password_hash(user_id).await?.is_some() {
            return Ok(());
        }
        let open = self
            .store
            .list_invitations(Some(user_id))
            .await?
            .into_iter()
            .filter(|i| !i.is_accepted && i.expires_at > self.now)
            .max_by_key(|i| i.expires_at);
        match open {
            Some(i) if i.created_by == IMPORTER => self.report.except(
                "user",
                user_id,
                format!(
                    "the invitation link of an earlier import is open until {}; if it was \
                     lost, send a new one from the Users page",
                    i.expires_at.format("%Y-%m-%d %H:%M UTC")
                ),
            ),
            Some(_) => {}
            None => self
                .plan
                .fresh_invitations
                .push((user_id.to_string(), email.map(str::to_string))),
        }
        Ok(())
    }

    async fn user_exists(&self, id: &str) -> Result<bool, ImportError> {
        Ok(self.known_users.contains(id) || self.store.get_user(id).await?.is_some())
    }
}

pub async fn plan(
    src: &Source,
    store: &Store,
    now: DateTime<Utc>,
    allow_weaker: bool,
    report: &mut Report,
) -> Result<Plan, ImportError> {
    let mut cx = Ctx {
        store,
        report,
        now,
        allow_weaker,
        plan: Plan::default(),
        budgets: convert::budgets(&src.budgets),
        known_users: HashSet::new(),
        known_teams: HashSet::new(),
        skipped_users: HashSet::new(),
        skipped_teams: HashSet::new(),
        new_budget_refs: HashSet::new(),
        old_budget_refs: HashSet::new(),
    };
    users(&mut cx, &src.users).await?;
    teams(&mut cx, &src.teams, &src.memberships).await?;
    keys(&mut cx, &src.keys).await?;
    budgets(&mut cx, &src.budgets);
    invitations(&mut cx, &src.invitations).await?;
    models(&mut cx, &src.models);
    Ok(cx.plan)
}

async fn users(cx: &mut Ctx<'_>, rows: &[Row]) -> Result<(), ImportError> {
    let rec = cx.recorded(USER).await?;
    let mut emails: HashMap<String, String> = HashMap::new();
    for row in rows {
        cx.report.count_mut("users").found += 1;
        let u = match convert::user(row, cx.allow_weaker) {
            Ok(u) => u,
            Err(why) => {
                cx.report.count_mut("users").skipped += 1;
                let id = row.text("user_id");
                cx.report
                    .except("user", id.as_deref().unwrap_or("(no id)"), why);
                cx.skipped_users.extend(id);
                continue;
            }
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
                cx.skipped_users.insert(id);
                continue;
            }
        }
        let existing = cx.store.get_user(&id).await?;
        let email = u.user.user_email.clone();
        if rec.done.contains(&id) {
            cx.report.count_mut("users").unchanged += 1;
            if existing.is_some() {
                cx.known_users.insert(id.clone());
                if u.had_password {
                    cx.link_for(&id, email.as_deref()).await?;
                }
            }
            continue;
        }
        match existing {
            // Written by an interrupted run: completed now.
            Some(_) if rec.begun.contains(&id) => {
                if u.had_password {
                    cx.link_for(&id, email.as_deref()).await?;
                }
            }
            Some(_) => {
                cx.plan.conflicts.push(format!(
                    "user {id}: already in Tollgate, not imported from LiteLLM"
                ));
                continue;
            }
            None => {
                let taken = match &email {
                    Some(email) => cx.store.get_user_by_email(email).await?,
                    None => None,
                };
                if let Some(other) = taken {
                    cx.plan.conflicts.push(format!(
                        "user {id}: email {} belongs to Tollgate user {}",
                        email.as_deref().unwrap_or_default(),
                        other.user_id
                    ));
                    continue;
                }
                if u.had_password {
                    cx.plan.fresh_invitations.push((id.clone(), email));
                }
            }
        }
        cx.report.count_mut("users").imported += 1;
        for n in &u.notes {
            cx.report.except("user", &id, n.clone());
        }
        cx.known_users.insert(id);
        cx.plan.users.push(u);
    }
    Ok(())
}

async fn teams(cx: &mut Ctx<'_>, rows: &[Row], memberships: &[Row]) -> Result<(), ImportError> {
    let rec = cx.recorded(TEAM).await?;
    let members_rec = cx.recorded(MEMBER).await?;
    for row in rows {
        cx.report.count_mut("teams").found += 1;
        let t = match convert::team(row, memberships, &cx.budgets, cx.allow_weaker) {
            Ok(t) => t,
            Err(why) => {
                cx.report.count_mut("teams").skipped += 1;
                let id = row.text("team_id");
                cx.report
                    .except("team", id.as_deref().unwrap_or("(no id)"), why);
                cx.skipped_teams.extend(id);
                continue;
            }
        };
        let id = t.team.team_id.clone();
        let existing = cx.store.get_team(&id).await?;
        let done = rec.done.contains(&id);
        let write = match &existing {
            _ if done => false,
            Some(_) if rec.begun.contains(&id) => true,
            Some(_) => {
                cx.plan.conflicts.push(format!(
                    "team {id}: already in Tollgate, not imported from LiteLLM"
                ));
                continue;
            }
            None => true,
        };
        if write {
            cx.report.count_mut("teams").imported += 1;
            for n in &t.notes {
                cx.report.except("team", &id, n.clone());
            }
        } else {
            cx.report.count_mut("teams").unchanged += 1;
        }
        // A team imported before and deleted here since stays deleted, members and all.
        let exists = write || existing.is_some();
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
            if members_rec.done.contains(&mid) || !exists {
                cx.report.count_mut("team members").unchanged += 1;
                cx.old_budget_refs.extend(m.budget_id.clone());
            } else if current.contains(&m.user_id) && members_rec.begun.contains(&mid) {
                // Added by an interrupted run: finished now (its spend within the team set).
                cx.report.count_mut("team members").imported += 1;
                cx.new_budget_refs.extend(m.budget_id.clone());
                cx.plan.members.push((id.clone(), m.clone()));
            } else if current.contains(&m.user_id) {
                cx.report.count_mut("team members").unchanged += 1;
                cx.old_budget_refs.extend(m.budget_id.clone());
                cx.plan.known_members.push(mid);
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
        if write {
            cx.plan.teams.push(t);
        }
    }
    Ok(())
}

/// The team LiteLLM gives the keys behind its own UI sessions.
const UI_SESSION_TEAM: &str = "litellm-dashboard";

async fn keys(cx: &mut Ctx<'_>, rows: &[Row]) -> Result<(), ImportError> {
    let rec = cx.recorded(KEY).await?;
    let mut ui_sessions = 0u64;
    for row in rows {
        cx.report.count_mut("keys").found += 1;
        if row.text("team_id").as_deref() == Some(UI_SESSION_TEAM) {
            ui_sessions += 1;
            cx.report.count_mut("keys").skipped += 1;
            continue;
        }
        let k = match convert::key(row, &cx.budgets, cx.allow_weaker) {
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
        if rec.done.contains(&k.key.token) {
            cx.report.count_mut("keys").unchanged += 1;
            cx.old_budget_refs.extend(budget_id);
            continue;
        }
        // An owner LiteLLM has but this import does not carry: the key would lose its owner's
        // limits and budget.
        let lost_owner = [
            k.key
                .user_id
                .as_ref()
                .filter(|u| cx.skipped_users.contains(*u)),
            k.key
                .team_id
                .as_ref()
                .filter(|t| cx.skipped_teams.contains(*t)),
        ];
        if let Some(owner) = lost_owner.into_iter().flatten().next() {
            cx.report.count_mut("keys").skipped += 1;
            cx.report.except(
                "key",
                &k.label,
                format!("its owner {owner} is not imported (see its row); the key is not either"),
            );
            continue;
        }
        let resumed = match cx.store.get_key(&k.key.token).await? {
            Some(_) if rec.begun.contains(&k.key.token) => true,
            Some(_) => {
                cx.plan.conflicts.push(format!(
                    "key {}: already in Tollgate, not imported from LiteLLM",
                    k.label
                ));
                continue;
            }
            None => false,
        };
        if !resumed && cx.store.get_deleted_key(&k.key.token).await?.is_some() {
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
                if other.token != k.key.token {
                    cx.plan.conflicts.push(format!(
                        "key {}: alias {alias} is already used by Tollgate key {}",
                        k.label, other.key_name
                    ));
                    continue;
                }
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
                    format!("owner {user} is not a user in LiteLLM either; the key keeps the id"),
                );
            }
        }
        if let Some(team) = &k.key.team_id {
            if !cx.known_teams.contains(team) && cx.store.get_team(team).await?.is_none() {
                cx.report.except(
                    "key",
                    &k.label,
                    format!("team {team} is not a team in LiteLLM either; the key keeps the id"),
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

async fn invitations(cx: &mut Ctx<'_>, rows: &[Row]) -> Result<(), ImportError> {
    let rec = cx.recorded(INVITATION).await?;
    for row in rows {
        cx.report.count_mut("invitations").found += 1;
        let inv = match convert::invitation(row, cx.now) {
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
        if rec.done.contains(&inv.id_hash) {
            cx.report.count_mut("invitations").unchanged += 1;
            continue;
        }
        if cx.store.get_invitation(&inv.id_hash).await?.is_some()
            && !rec.begun.contains(&inv.id_hash)
        {
            cx.plan.conflicts.push(format!(
                "invitation for {}: already in Tollgate, not imported from LiteLLM",
                inv.user_id
            ));
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
