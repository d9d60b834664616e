//! LiteLLM rows turned into Tollgate's, keeping LiteLLM's meaning: money in USD floats becomes
//! nano-USD, roles keep their names, a key's referenced budget fills what the key leaves unset.
//! Pure functions: what cannot be carried is returned as notes, never dropped silently.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tollgate_domain::money::NanoUsd;
use tollgate_domain::role::Role;
use tollgate_domain::secret::sha256_hex;
use tollgate_proxy::body::{MAX_TAGS, MAX_TAG_CHARS};
use tollgate_store::{NewInvitation, NewKey, NewTeam, NewUser, SpendRecord, SpendStatus};

use super::row::Row;
use super::write::IMPORTER;

fn nanos(usd: Option<f64>) -> Option<i64> {
    usd.map(|u| NanoUsd::from_usd(u).0)
}

/// The columns of a row that hold something Tollgate has no place for.
fn not_carried(row: &Row, columns: &[&str]) -> Option<String> {
    let set: Vec<&str> = columns.iter().copied().filter(|c| row.is_set(c)).collect();
    (!set.is_empty()).then(|| format!("not carried: {}", set.join(", ")))
}

/// The columns of a row that limit what its holder may do and that Tollgate cannot enforce.
/// Carrying the row without them would give more than LiteLLM did, so the row is refused
/// unless the operator accepts that (`--allow-weaker-limits`); then each is a note.
fn weaker(row: &Row, columns: &[&str], allow: bool) -> Result<Option<String>, String> {
    let set: Vec<&str> = columns.iter().copied().filter(|c| row.is_set(c)).collect();
    match (set.is_empty(), allow) {
        (true, _) => Ok(None),
        (false, true) => Ok(Some(format!(
            "imported without limits Tollgate does not enforce: {}",
            set.join(", ")
        ))),
        (false, false) => Err(format!(
            "has limits Tollgate does not enforce ({}); not imported (--allow-weaker-limits \
             imports it without them)",
            set.join(", ")
        )),
    }
}

/// Columns that restrict a key, a team or a user, each kind's own.
const KEY_LIMITS: &[&str] = &[
    "permissions",
    "allowed_routes",
    "model_max_budget",
    "budget_limits",
    "tpd_limit",
    "organization_id",
    "project_id",
    "policies",
];
const TEAM_LIMITS: &[&str] = &[
    "tpd_limit",
    "organization_id",
    "model_max_budget",
    "budget_limits",
    "policies",
];
const USER_LIMITS: &[&str] = &["model_max_budget", "policies"];

/// A `LiteLLM_BudgetTable` row: limits that keys and team memberships point to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    pub max_budget: Option<f64>,
    pub soft_budget: Option<f64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<DateTime<Utc>>,
}

pub fn budgets(rows: &[Row]) -> HashMap<String, Budget> {
    rows.iter()
        .filter_map(|r| {
            Some((
                r.text("budget_id")?,
                Budget {
                    max_budget: r.float("max_budget"),
                    soft_budget: r.float("soft_budget"),
                    tpm_limit: r.int("tpm_limit"),
                    rpm_limit: r.int("rpm_limit"),
                    max_parallel_requests: r.int("max_parallel_requests"),
                    budget_duration: r.text("budget_duration"),
                    budget_reset_at: r.time("budget_reset_at"),
                },
            ))
        })
        .collect()
}

/// LiteLLM's proxy roles carry over by name; its other roles have no Tollgate equivalent and
/// become the nearest role with no more rights.
pub fn role(litellm: Option<&str>) -> (Role, Option<String>) {
    match litellm {
        Some(r) => match Role::parse(r) {
            Some(role) => (role, None),
            None if r == "org_admin" => (
                Role::InternalUser,
                Some(format!(
                    "role {r} has no Tollgate equivalent; imported as internal_user"
                )),
            ),
            None => (
                Role::InternalUserViewer,
                Some(format!(
                    "role {r} has no Tollgate equivalent; imported as internal_user_viewer"
                )),
            ),
        },
        None => (
            Role::InternalUserViewer,
            Some("no role in LiteLLM; imported as internal_user_viewer".to_string()),
        ),
    }
}

pub struct UserImport {
    pub user: NewUser,
    pub budget_reset_at: Option<DateTime<Utc>>,
    /// Had a UI password in LiteLLM (not portable: the user gets an invitation link).
    pub had_password: bool,
    pub notes: Vec<String>,
}

/// A user; `Err` names why it cannot be carried.
pub fn user(r: &Row, allow_weaker: bool) -> Result<UserImport, String> {
    let id = r.text("user_id").ok_or("a row without user_id")?;
    let (role, role_note) = role(r.text("user_role").as_deref());
    let mut notes: Vec<String> = role_note.into_iter().collect();
    notes.extend(weaker(r, USER_LIMITS, allow_weaker)?);
    notes.extend(not_carried(
        r,
        &[
            "sso_user_id",
            "organization_id",
            "allowed_cache_controls",
            "object_permission_id",
        ],
    ));
    let mut u = NewUser::new(id, role.as_str());
    u.user_email = r.text("user_email");
    u.user_alias = r.text("user_alias");
    u.models = r.strings("models");
    u.max_budget_nanos = nanos(r.float("max_budget"));
    u.budget_duration = r.text("budget_duration");
    u.spend_nanos = nanos(r.float("spend")).unwrap_or(0);
    u.tpm_limit = r.int("tpm_limit");
    u.rpm_limit = r.int("rpm_limit");
    u.max_parallel_requests = r.int("max_parallel_requests");
    u.metadata = Value::Object(r.object("metadata"));
    Ok(UserImport {
        budget_reset_at: r.time("budget_reset_at"),
        had_password: r.text("password").is_some(),
        user: u,
        notes,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberImport {
    pub user_id: String,
    /// `admin` or `user`.
    pub role: &'static str,
    pub max_budget_in_team_nanos: Option<i64>,
    /// Spent within the team (`LiteLLM_TeamMembership.spend`): what the member budget has left.
    pub spend_nanos: i64,
    /// The `LiteLLM_BudgetTable` row the budget came from.
    pub budget_id: Option<String>,
}

pub struct TeamImport {
    pub team: NewTeam,
    pub spend_nanos: i64,
    pub budget_reset_at: Option<DateTime<Utc>>,
    pub members: Vec<MemberImport>,
    pub notes: Vec<String>,
}

/// A team with its members: `members_with_roles` (and the older `admins`/`members` lists) give
/// who and with which role; `LiteLLM_TeamMembership` rows give each member's budget.
/// `Err` names why the team cannot be carried.
pub fn team(
    r: &Row,
    memberships: &[Row],
    budgets: &HashMap<String, Budget>,
    allow_weaker: bool,
) -> Result<TeamImport, String> {
    let id = r.text("team_id").ok_or("a row without team_id")?;
    let mut notes: Vec<String> = weaker(r, TEAM_LIMITS, allow_weaker)?.into_iter().collect();
    notes.extend(not_carried(
        r,
        &[
            "soft_budget",
            "team_member_permissions",
            "router_settings",
            "access_group_ids",
            "default_team_member_models",
            "model_id",
            "object_permission_id",
        ],
    ));
    // Ordered by user id so the import (and its output) is the same on every run.
    let mut members: BTreeMap<String, MemberImport> = BTreeMap::new();
    fn add(members: &mut BTreeMap<String, MemberImport>, user_id: String, admin: bool) {
        let m = members
            .entry(user_id.clone())
            .or_insert_with(|| MemberImport {
                user_id,
                role: "user",
                max_budget_in_team_nanos: None,
                spend_nanos: 0,
                budget_id: None,
            });
        if admin {
            m.role = "admin";
        }
    }
    if let Value::Array(list) = r.json("members_with_roles") {
        for m in list {
            let m = Row::from_json(m);
            if let Some(user_id) = m.as_ref().and_then(|m| m.text("user_id")) {
                let admin = m.and_then(|m| m.text("role")).as_deref() == Some("admin");
                add(&mut members, user_id, admin);
            }
        }
    }
    for a in r.strings("admins") {
        add(&mut members, a, true);
    }
    for m in r.strings("members") {
        add(&mut members, m, false);
    }
    for m in memberships
        .iter()
        .filter(|m| m.text("team_id").as_deref() == Some(id.as_str()))
    {
        let Some(user_id) = m.text("user_id") else {
            continue;
        };
        add(&mut members, user_id.clone(), false);
        if let Some(member) = members.get_mut(&user_id) {
            member.spend_nanos = nanos(m.float("spend")).unwrap_or(0);
        }
        let budget_id = m.text("budget_id");
        let budget = budget_id.as_ref().and_then(|b| budgets.get(b));
        if let (Some(member), Some(b)) = (members.get_mut(&user_id), budget) {
            member.max_budget_in_team_nanos = nanos(b.max_budget);
            member.budget_id = budget_id;
            // Rate limits within the team are limits Tollgate does not enforce: the team is
            // refused unless allowed, as for the team's own. The rest only changes alerts or
            // resets (a member's spend within the team is never reset here): notes.
            let limits: Vec<&str> = [
                ("rpm_limit", b.rpm_limit.is_some()),
                ("tpm_limit", b.tpm_limit.is_some()),
                ("max_parallel_requests", b.max_parallel_requests.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
            if !limits.is_empty() {
                if !allow_weaker {
                    return Err(format!(
                        "member {user_id} has limits within the team Tollgate does not enforce \
                         ({}); not imported (--allow-weaker-limits imports it without them)",
                        limits.join(", ")
                    ));
                }
                notes.push(format!(
                    "member {user_id}: imported without limits Tollgate does not enforce: {}",
                    limits.join(", ")
                ));
            }
            let dropped: Vec<&str> = [
                ("soft_budget", b.soft_budget.is_some()),
                ("budget_duration", b.budget_duration.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
            if !dropped.is_empty() {
                notes.push(format!(
                    "member {user_id}: not carried from the member's budget: {} (the spend \
                     within the team does not reset)",
                    dropped.join(", ")
                ));
            }
        }
    }
    let mut t = NewTeam::new(id);
    t.team_alias = r.text("team_alias");
    t.models = r.strings("models");
    t.max_budget_nanos = nanos(r.float("max_budget"));
    t.budget_duration = r.text("budget_duration");
    t.tpm_limit = r.int("tpm_limit");
    t.rpm_limit = r.int("rpm_limit");
    t.max_parallel_requests = r.int("max_parallel_requests");
    t.blocked = r.flag("blocked");
    t.metadata = Value::Object(r.object("metadata"));
    Ok(TeamImport {
        team: t,
        spend_nanos: nanos(r.float("spend")).unwrap_or(0),
        budget_reset_at: r.time("budget_reset_at"),
        members: members.into_values().collect(),
        notes,
    })
}

pub struct KeyImport {
    pub key: NewKey,
    /// How the key is named in the output: its masked name and alias, never its hash.
    pub label: String,
    pub notes: Vec<String>,
}

/// How a key is named in output: LiteLLM's masked `key_name` (`sk-...abcd`) and its alias.
pub fn key_label(r: &Row) -> String {
    match (r.text("key_name"), r.text("key_alias")) {
        (Some(n), Some(a)) => format!("{n} ({a})"),
        (Some(n), None) => n,
        (None, Some(a)) => format!("alias {a}"),
        (None, None) => "(unnamed key)".to_string(),
    }
}

/// A key: its own limits, and for those it leaves unset, the limits of the budget it references.
/// `Err` names why it cannot be carried.
pub fn key(
    r: &Row,
    budgets: &HashMap<String, Budget>,
    allow_weaker: bool,
) -> Result<KeyImport, String> {
    let label = key_label(r);
    let token = r.text("token").unwrap_or_default();
    // LiteLLM stores sha256(plaintext) as lowercase hex; anything else cannot authenticate here.
    if token.len() != 64
        || !token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err("the stored token is not a SHA-256 hex digest".to_string());
    }
    let mut notes: Vec<String> = weaker(r, KEY_LIMITS, allow_weaker)?.into_iter().collect();
    notes.extend(not_carried(
        r,
        &[
            "aliases",
            "config",
            "allowed_cache_controls",
            "budget_fallbacks",
            "agent_id",
            "object_permission_id",
            "access_group_ids",
            "auto_rotate",
        ],
    ));
    let budget = match r.text("budget_id") {
        Some(b) => match budgets.get(&b) {
            Some(b) => b.clone(),
            None => {
                notes.push(format!("budget {b} is not in LiteLLM_BudgetTable"));
                Budget::default()
            }
        },
        None => Budget::default(),
    };
    let key_name = r.text("key_name").unwrap_or_else(|| "sk-...".to_string());
    let mut k = NewKey::new(token, key_name);
    k.key_alias = r.text("key_alias");
    k.user_id = r.text("user_id");
    k.team_id = r.text("team_id");
    k.models = r.strings("models");
    k.max_budget_nanos = nanos(r.float("max_budget").or(budget.max_budget));
    k.soft_budget_nanos = nanos(budget.soft_budget);
    k.budget_duration = r.text("budget_duration").or(budget.budget_duration);
    k.budget_reset_at = r.time("budget_reset_at").or(budget.budget_reset_at);
    k.spend_nanos = nanos(r.float("spend")).unwrap_or(0);
    k.expires = r.time("expires");
    k.blocked = r.flag("blocked");
    k.tpm_limit = r.int("tpm_limit").or(budget.tpm_limit);
    k.rpm_limit = r.int("rpm_limit").or(budget.rpm_limit);
    k.max_parallel_requests = r
        .int("max_parallel_requests")
        .or(budget.max_parallel_requests);
    k.metadata = match r.json("metadata") {
        Value::Object(m) => Value::Object(m),
        Value::Null => Value::Object(Default::default()),
        _ => {
            notes.push("metadata is not a JSON object; not carried".to_string());
            Value::Object(Default::default())
        }
    };
    k.created_by = r.text("created_by");
    Ok(KeyImport {
        key: k,
        label,
        notes,
    })
}

/// A pending invitation (not accepted, not expired). LiteLLM's link carries the id itself; the
/// store keeps its hash, so the link sent by LiteLLM still works.
pub fn invitation(r: &Row, now: DateTime<Utc>) -> Result<Option<NewInvitation>, String> {
    let (Some(id), Some(user_id)) = (r.text("id"), r.text("user_id")) else {
        return Err("no id or user".to_string());
    };
    if r.flag("is_accepted") {
        return Ok(None);
    }
    match r.time("expires_at") {
        Some(at) if at > now => Ok(Some(NewInvitation {
            id_hash: sha256_hex(&id),
            user_id,
            expires_at: at,
            created_by: r.text("created_by").unwrap_or_else(|| IMPORTER.to_string()),
        })),
        _ => Ok(None),
    }
}

/// LiteLLM's call types (`acompletion`, `aembedding`, …) as Tollgate names them.
fn call_type(litellm: &str) -> String {
    // The async forms carry an `a` in front (`acompletion`).
    match litellm.strip_prefix('a').unwrap_or(litellm) {
        "completion" | "chat_completion" => "chat_completion".to_string(),
        "text_completion" => "text_completion".to_string(),
        "embedding" => "embedding".to_string(),
        _ => litellm.to_string(),
    }
}

/// A `LiteLLM_SpendLogs` row as a spend record. Bodies are not read; the metadata keeps what
/// the spend views group by (tags) and marks the record as imported.
pub fn spend_record(r: &Row) -> Result<SpendRecord, String> {
    let request_id = r.text("request_id").ok_or("no request_id")?;
    let start = r.time("startTime").ok_or("no startTime")?;
    let end = r.time("endTime").unwrap_or(start);
    let completion_start = r.time("completionStartTime");
    let meta = r.object("metadata");
    let success = r.text("status").is_none_or(|s| s == "success");
    let error_type = meta
        .get("error_information")
        .and_then(|e| e.get("error_class"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let model = r.text("model").unwrap_or_default();
    let mut metadata = serde_json::Map::new();
    metadata.insert("imported_from".into(), Value::String("litellm".into()));
    let tags = request_tags(&r.json("request_tags"));
    if !tags.is_empty() {
        metadata.insert("tags".into(), Value::from(tags));
    }
    let prompt = r.int("prompt_tokens").unwrap_or(0);
    let completion = r.int("completion_tokens").unwrap_or(0);
    Ok(SpendRecord {
        request_id,
        call_type: call_type(&r.text("call_type").unwrap_or_default()),
        api_key: r.text("api_key").unwrap_or_default(),
        user_id: r.text("user"),
        team_id: r.text("team_id"),
        end_user: r.text("end_user"),
        model_group: r.text("model_group").unwrap_or_else(|| model.clone()),
        model,
        model_id: r.text("model_id"),
        custom_llm_provider: r.text("custom_llm_provider"),
        spend_nanos: nanos(r.float("spend")).unwrap_or(0),
        priced: true,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 0,
        usage_estimated: false,
        stream: false,
        status: if success {
            SpendStatus::Success
        } else {
            SpendStatus::Failure
        },
        // LiteLLM does not log the HTTP status; a failure is counted as a server error.
        http_status: if success { 200 } else { 500 },
        error_type,
        attempts: 1,
        start_time: start,
        end_time: end,
        completion_start_time: completion_start,
        request_duration_ms: r
            .int("request_duration_ms")
            .unwrap_or_else(|| (end - start).num_milliseconds().max(0)),
        ttft_ms: completion_start.map(|c| (c - start).num_milliseconds().max(0)),
        metadata: Value::Object(metadata),
    })
}

/// A log's request tags as the gateway keeps its own: text only, at most [`MAX_TAGS`] of at
/// most [`MAX_TAG_CHARS`] characters (LiteLLM stores whatever JSON the caller sent).
fn request_tags(v: &Value) -> Vec<String> {
    let Value::Array(list) = v else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_str)
        .filter(|t| !t.is_empty() && t.chars().count() <= MAX_TAG_CHARS)
        .take(MAX_TAGS)
        .map(str::to_string)
        .collect()
}

/// `litellm_params.model` of a stored model, when it is in the clear: LiteLLM encrypts the
/// values of models added through its UI, and those cannot be read without its salt key.
pub fn stored_model_name(r: &Row) -> Option<String> {
    let params = match r.json("litellm_params") {
        Value::Object(m) => m,
        Value::String(s) => serde_json::from_str::<serde_json::Map<String, Value>>(&s).ok()?,
        _ => return None,
    };
    let model = params.get("model")?.as_str()?;
    // An encrypted value is URL-safe base64, which never holds the provider's `/`.
    model.contains('/').then(|| model.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        Row::from_json(v).unwrap()
    }

    #[test]
    fn roles_keep_their_names_or_lose_rights() {
        assert_eq!(role(Some("proxy_admin")).0, Role::ProxyAdmin);
        assert!(role(Some("proxy_admin")).1.is_none());
        assert_eq!(role(Some("org_admin")).0, Role::InternalUser);
        assert_eq!(role(Some("customer")).0, Role::InternalUserViewer);
        assert_eq!(role(None).0, Role::InternalUserViewer);
        assert!(role(None).1.is_some());
    }

    #[test]
    fn key_takes_unset_limits_from_its_budget() {
        let mut budgets = HashMap::new();
        budgets.insert(
            "b1".to_string(),
            Budget {
                max_budget: Some(5.0),
                soft_budget: Some(4.0),
                rpm_limit: Some(7),
                ..Budget::default()
            },
        );
        let litellm = json!({
            "token": sha256_hex("sk-x"), "key_name": "sk-...ab12", "budget_id": "b1",
            "rpm_limit": null, "tpm_limit": 100, "spend": 1.25, "models": ["gpt-4o"],
            "aliases": {"a": "b"}, "permissions": {}, "blocked": null
        });
        let k = key(&row(litellm.clone()), &budgets, false).unwrap();
        assert_eq!(k.key.max_budget_nanos, Some(5_000_000_000));
        assert_eq!(k.key.soft_budget_nanos, Some(4_000_000_000));
        assert_eq!(k.key.rpm_limit, Some(7));
        assert_eq!(k.key.tpm_limit, Some(100));
        assert_eq!(k.key.spend_nanos, 1_250_000_000);
        assert!(!k.key.blocked);
        assert_eq!(k.notes, vec!["not carried: aliases"]);
        assert_eq!(k.label, "sk-...ab12");
        assert!(key(&row(json!({"token": "sk-plaintext"})), &budgets, true).is_err());
    }

    #[test]
    fn limits_tollgate_cannot_enforce_refuse_the_row_unless_allowed() {
        let budgets = HashMap::new();
        let mut limited = json!({"token": sha256_hex("sk-y"), "key_name": "sk-...cd34",
            "allowed_routes": ["/chat/completions"], "tpd_limit": 10, "permissions": {}});
        let why = key(&row(limited.clone()), &budgets, false).err().unwrap();
        assert!(why.contains("allowed_routes, tpd_limit"), "{why}");
        assert!(why.contains("--allow-weaker-limits"), "{why}");
        let k = key(&row(limited.clone()), &budgets, true).unwrap();
        assert_eq!(
            k.notes,
            vec!["imported without limits Tollgate does not enforce: allowed_routes, tpd_limit"]
        );
        limited["tpd_limit"] = Value::Null;
        limited["allowed_routes"] = json!([]);
        assert!(
            key(&row(limited), &budgets, false).is_ok(),
            "empty is unset"
        );
        let t = json!({"team_id": "t1", "model_max_budget": {"gpt-4o": 1.0}});
        assert!(team(&row(t.clone()), &[], &budgets, false).is_err());
        assert!(team(&row(t), &[], &budgets, true).is_ok());
        let u = json!({"user_id": "u1", "policies": ["no-pii"]});
        assert!(user(&row(u.clone()), false).is_err());
        assert!(user(&row(u), true).is_ok());
    }

    #[test]
    fn only_text_tags_are_kept_like_the_gateway_keeps_them() {
        let long = "x".repeat(MAX_TAG_CHARS + 1);
        let tags = request_tags(&json!(["a", 7, {"b": 1}, null, "", long, "c"]));
        assert_eq!(tags, vec!["a", "c"]);
        let many: Vec<String> = (0..MAX_TAGS + 5).map(|i| format!("t{i}")).collect();
        assert_eq!(request_tags(&json!(many)).len(), MAX_TAGS);
        assert!(request_tags(&json!({"not": "a list"})).is_empty());
    }

    #[test]
    fn team_members_merge_roles_and_budgets() {
        let mut budgets = HashMap::new();
        budgets.insert(
            "mb".to_string(),
            Budget {
                max_budget: Some(2.0),
                rpm_limit: Some(3),
                ..Budget::default()
            },
        );
        let t = team(
            &row(json!({
                "team_id": "t1", "admins": [], "members": ["u3"],
                "members_with_roles": [{"role": "admin", "user_id": "u1"}, {"role": "user", "user_id": "u2"}]
            })),
            &[row(
                json!({"team_id": "t1", "user_id": "u2", "budget_id": "mb", "spend": 0.5}),
            )],
            &budgets,
            true,
        )
        .unwrap();
        assert_eq!(
            t.notes,
            vec!["member u2: imported without limits Tollgate does not enforce: rpm_limit"]
        );
        // Without --allow-weaker-limits the team is refused, naming the member.
        let refused = team(
            &row(json!({"team_id": "t1", "members": ["u2"]})),
            &[row(
                json!({"team_id": "t1", "user_id": "u2", "budget_id": "mb", "spend": 0.5}),
            )],
            &budgets,
            false,
        )
        .err()
        .unwrap();
        assert!(
            refused.contains("member u2 has limits within the team"),
            "{refused}"
        );
        assert_eq!(
            t.members,
            vec![
                MemberImport {
                    user_id: "u1".into(),
                    role: "admin",
                    max_budget_in_team_nanos: None,
                    spend_nanos: 0,
                    budget_id: None
                },
                MemberImport {
                    user_id: "u2".into(),
                    role: "user",
                    max_budget_in_team_nanos: Some(2_000_000_000),
                    spend_nanos: 500_000_000,
                    budget_id: Some("mb".into())
                },
                MemberImport {
                    user_id: "u3".into(),
                    role: "user",
                    max_budget_in_team_nanos: None,
                    spend_nanos: 0,
                    budget_id: None
                },
            ]
        );
    }

    #[test]
    fn only_pending_invitations_come_over() {
        let now = Utc::now();
        let later = (now + chrono::Duration::days(1)).naive_utc().to_string();
        let earlier = (now - chrono::Duration::days(1)).naive_utc().to_string();
        let pending = row(json!({"id": "inv-1", "user_id": "u1", "is_accepted": false,
            "expires_at": later.replace(' ', "T"), "created_by": "admin"}));
        let inv = invitation(&pending, now).unwrap().unwrap();
        assert_eq!(inv.id_hash, sha256_hex("inv-1"));
        let expired = row(json!({"id": "inv-2", "user_id": "u1", "is_accepted": false,
            "expires_at": earlier.replace(' ', "T")}));
        assert!(invitation(&expired, now).unwrap().is_none());
    }

    #[test]
    fn spend_logs_map_call_types_and_status() {
        let r = spend_record(&row(json!({
            "request_id": "r1", "call_type": "acompletion", "api_key": "abc", "spend": 0.5,
            "prompt_tokens": 3, "completion_tokens": 4, "startTime": "2026-01-01T00:00:00",
            "endTime": "2026-01-01T00:00:01.500", "model": "gpt-4o", "model_group": "",
            "user": "u1", "status": "failure",
            "metadata": {"error_information": {"error_class": "RateLimitError"}}
        })))
        .unwrap();
        assert_eq!(r.call_type, "chat_completion");
        assert_eq!(r.model_group, "gpt-4o");
        assert_eq!(r.request_duration_ms, 1500);
        assert_eq!(r.status, SpendStatus::Failure);
        assert_eq!(r.error_type.as_deref(), Some("RateLimitError"));
        assert_eq!(r.spend_nanos, 500_000_000);
    }

    #[test]
    fn encrypted_model_params_are_not_shown() {
        let plain = row(json!({"litellm_params": {"model": "openai/gpt-4o"}}));
        assert_eq!(stored_model_name(&plain).as_deref(), Some("openai/gpt-4o"));
        let sealed = row(json!({"litellm_params": {"model": "bG9uZy1lbmNyeXB0ZWQtdmFsdWU"}}));
        assert_eq!(stored_model_name(&sealed), None);
    }
}
