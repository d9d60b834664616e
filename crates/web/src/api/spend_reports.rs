//! LiteLLM's spend reports, read from the call log as LiteLLM reads its spend logs:
//! `/global/spend/report` (per day by team, end user or key; an Enterprise feature in LiteLLM,
//! served to every deployment here), the scoped `/key|user|team/spend/report`, the end-user and
//! tag lists, and the master key's `/global/spend/reset`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_proxy::ApiError;
use tollgate_store::{ReportFilter, ReportRow, SpendScope};

use super::keys::token_of;
use super::spend::usd;
use super::{non_empty, sees_all, JsonBody};
use crate::audit_log;
use crate::principal::{store_unavailable, Principal, Via};
use crate::state::WebState;

/// The longest range a scoped report covers, as LiteLLM bounds it.
const MAX_REPORT_DAYS: i64 = 366;
/// End users listed by `/global/spend/end_users`, as LiteLLM lists them.
const END_USERS_LISTED: u32 = 100;
/// How long a spend reset waits for the spend writer to commit what it holds.
const RESET_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn answer(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Both dates, whole UTC days with the end included: `[start 00:00, end + 1 day)`.
fn report_range(start: Option<&str>, end: Option<&str>) -> Result<ReportFilter, ApiError> {
    let (Some(s), Some(e)) = (start, end) else {
        return Err(ApiError::bad_request(
            "Please provide start_date and end_date",
        ));
    };
    let day = |v: &str| NaiveDate::parse_from_str(v, "%Y-%m-%d");
    let (Ok(from), Ok(to)) = (day(s), day(e)) else {
        return Err(ApiError::bad_request(
            "start_date and end_date must be in YYYY-MM-DD format",
        ));
    };
    if to < from {
        return Err(ApiError::bad_request(
            "start_date must be on or before end_date",
        ));
    }
    let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN));
    Ok(ReportFilter {
        from: midnight(from),
        to: midnight(to) + Duration::days(1),
        api_key: None,
        user_id: None,
        team_id: None,
        end_user: None,
    })
}

/// `2024-05-10T00:00:00+00:00`, as LiteLLM's reports give a day.
fn day_text(d: NaiveDate) -> String {
    format!("{}T00:00:00+00:00", d.format("%Y-%m-%d"))
}

/// Rows per key, each with its models: LiteLLM's key-grouped report, highest cost first.
fn by_key(rows: &[ReportRow]) -> Value {
    #[derive(Default)]
    struct Totals {
        cost: i64,
        input: i64,
        output: i64,
        models: BTreeMap<String, (i64, i64, i64)>,
    }
    let mut keys: BTreeMap<&str, Totals> = BTreeMap::new();
    for r in rows {
        let t = keys.entry(r.api_key.as_str()).or_default();
        t.cost += r.spend_nanos;
        t.input += r.prompt_tokens;
        t.output += r.completion_tokens;
        let m = t.models.entry(r.model.clone()).or_default();
        m.0 += r.spend_nanos;
        m.1 += r.prompt_tokens;
        m.2 += r.completion_tokens;
    }
    let mut out: Vec<(&str, Totals)> = keys.into_iter().collect();
    out.sort_by(|a, b| b.1.cost.cmp(&a.1.cost).then(a.0.cmp(b.0)));
    Value::Array(
        out.into_iter()
            .map(|(key, t)| {
                let details: Vec<Value> = t
                    .models
                    .into_iter()
                    .map(|(model, (cost, input, output))| {
                        json!({
                            "model": model,
                            "total_cost": usd(cost),
                            "total_input_tokens": input,
                            "total_output_tokens": output,
                        })
                    })
                    .collect();
                json!({
                    "api_key": key,
                    "total_cost": usd(t.cost),
                    "total_input_tokens": t.input,
                    "total_output_tokens": t.output,
                    "model_details": details,
                })
            })
            .collect(),
    )
}

/// Rows per day and group (team, end user, or both), each group with its spend per model and
/// key: LiteLLM's daily report. `group` names a row's group; `describe` turns it into the
/// group's fields.
fn by_day<G: Ord + Clone>(
    rows: &[ReportRow],
    list: &str,
    group: impl Fn(&ReportRow) -> G,
    describe: impl Fn(&G) -> serde_json::Map<String, Value>,
) -> Value {
    let mut days: BTreeMap<NaiveDate, BTreeMap<G, Vec<&ReportRow>>> = BTreeMap::new();
    for r in rows {
        days.entry(r.day)
            .or_default()
            .entry(group(r))
            .or_default()
            .push(r);
    }
    Value::Array(
        days.into_iter()
            .map(|(day, groups)| {
                let items: Vec<Value> = groups
                    .iter()
                    .map(|(g, rows)| {
                        let mut item = describe(g);
                        let metadata: Vec<Value> = rows
                            .iter()
                            .map(|r| {
                                json!({
                                    "model": r.model,
                                    "spend": usd(r.spend_nanos),
                                    "api_key": r.api_key,
                                    "total_tokens": r.prompt_tokens + r.completion_tokens,
                                })
                            })
                            .collect();
                        let total: i64 = rows.iter().map(|r| r.spend_nanos).sum();
                        item.insert("total_spend".into(), json!(usd(total)));
                        item.insert("metadata".into(), Value::Array(metadata));
                        Value::Object(item)
                    })
                    .collect();
                json!({"group_by_day": day_text(day), list: items})
            })
            .collect(),
    )
}

/// LiteLLM names a team in reports by its alias, or "Unassigned Team".
async fn team_names(
    state: &WebState,
    rows: &[ReportRow],
) -> Result<BTreeMap<Option<String>, String>, ApiError> {
    let mut names = BTreeMap::new();
    for id in rows.iter().map(|r| r.team_id.clone()) {
        if names.contains_key(&id) {
            continue;
        }
        let alias = match &id {
            Some(t) => state
                .store
                .get_team(t)
                .await
                .map_err(|e| store_unavailable(&e))?
                .and_then(|t| t.team_alias),
            None => None,
        };
        names.insert(id, alias.unwrap_or_else(|| "Unassigned Team".to_string()));
    }
    Ok(names)
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct GlobalReportQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    /// `team` (the default), `customer` or `api_key`.
    group_by: Option<String>,
    /// A key (`sk-…`) or its hash: that key's spend per model.
    api_key: Option<String>,
    /// A user's spend per key and model.
    internal_user_id: Option<String>,
    team_id: Option<String>,
    customer_id: Option<String>,
}

/// `GET /global/spend/report`: admin roles only.
pub async fn global_report(
    State(state): State<Arc<WebState>>,
    Query(q): Query<GlobalReportQuery>,
) -> Response {
    answer(global_report_inner(&state, &q).await)
}

async fn global_report_inner(state: &WebState, q: &GlobalReportQuery) -> Result<Value, ApiError> {
    let mut filter = report_range(non_empty(&q.start_date), non_empty(&q.end_date))?;
    let group_by = non_empty(&q.group_by).unwrap_or("team");
    if !matches!(group_by, "team" | "customer" | "api_key") {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "group_by must be one of team, customer, api_key",
        )
        .with_param("group_by"));
    }
    let (team, customer) = (non_empty(&q.team_id), non_empty(&q.customer_id));
    let rows = |f: ReportFilter| async move {
        state
            .store
            .spend_report_rows(&f)
            .await
            .map_err(|e| store_unavailable(&e))
    };
    if let Some(k) = non_empty(&q.api_key) {
        filter.api_key = Some(token_of(k));
        return Ok(by_key(&rows(filter).await?));
    }
    if let Some(u) = non_empty(&q.internal_user_id) {
        filter.user_id = Some(u.to_string());
        return Ok(by_key(&rows(filter).await?));
    }
    if let (Some(t), Some(c)) = (team, customer) {
        filter.team_id = Some(t.to_string());
        filter.end_user = Some(c.to_string());
        let rows = rows(filter).await?;
        let names = team_names(state, &rows).await?;
        return Ok(by_day(
            &rows,
            "teams_customers",
            |r| (r.team_id.clone(), r.end_user.clone()),
            |(t, c)| {
                let mut m = serde_json::Map::new();
                m.insert("team_name".into(), json!(names.get(t)));
                m.insert("customer".into(), json!(c));
                m
            },
        ));
    }
    match group_by {
        "team" => {
            filter.team_id = team.map(str::to_string);
            let rows = rows(filter).await?;
            let names = team_names(state, &rows).await?;
            Ok(by_day(
                &rows,
                "teams",
                |r| r.team_id.clone(),
                |t| {
                    let mut m = serde_json::Map::new();
                    m.insert("team_name".into(), json!(names.get(t)));
                    m
                },
            ))
        }
        "customer" => {
            let rows = rows(filter).await?;
            Ok(by_day(
                &rows,
                "customers",
                |r| r.end_user.clone(),
                |c| {
                    let mut m = serde_json::Map::new();
                    m.insert("customer".into(), json!(c));
                    m
                },
            ))
        }
        _ => Ok(by_key(&rows(filter).await?)),
    }
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct ScopedReportQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    /// `/key/spend/report`: a key (`sk-…`) or its hash; others: their own key.
    api_key: Option<String>,
    /// `/user/spend/report`: a user; others: themselves.
    internal_user_id: Option<String>,
    /// `/team/spend/report`: a team; others: their key's team.
    team_id: Option<String>,
}

/// What a scoped report narrows to.
#[derive(Clone, Copy)]
enum Scope {
    Key,
    User,
    Team,
}

impl Scope {
    /// LiteLLM's name for the scope in its messages.
    fn name(self) -> &'static str {
        match self {
            Scope::Key => "api_key",
            Scope::User => "internal_user_id",
            Scope::Team => "team_id",
        }
    }
}

/// The caller's own key, user or team.
async fn own_value(
    state: &WebState,
    p: &Principal,
    scope: Scope,
) -> Result<Option<String>, ApiError> {
    let key = match &p.via {
        Via::VirtualKey { token } => Some(token.clone()),
        _ => None,
    };
    Ok(match scope {
        Scope::Key => key,
        Scope::User => Some(p.user_id.clone()),
        Scope::Team => match key {
            Some(k) => state
                .store
                .get_key(&k)
                .await
                .map_err(|e| store_unavailable(&e))?
                .and_then(|k| k.team_id),
            None => None,
        },
    })
}

async fn scoped_report(
    state: &WebState,
    p: &Principal,
    q: &ScopedReportQuery,
    scope: Scope,
) -> Result<Value, ApiError> {
    let mut filter = report_range(non_empty(&q.start_date), non_empty(&q.end_date))?;
    if filter.to - filter.from > Duration::days(MAX_REPORT_DAYS + 1) {
        return Err(ApiError::bad_request(
            "Date range too large; maximum is 366 days",
        ));
    }
    let asked = match scope {
        Scope::Key => non_empty(&q.api_key).map(token_of),
        Scope::User => non_empty(&q.internal_user_id).map(str::to_string),
        Scope::Team => non_empty(&q.team_id).map(str::to_string),
    };
    let own = own_value(state, p, scope).await?;
    let value = match (asked, own) {
        (Some(a), _) if sees_all(p) => a,
        (Some(a), Some(o)) if a == o => a,
        (Some(_), _) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "auth_error",
                format!(
                    "Not authorized to view spend for a {} other than your own",
                    scope.name()
                ),
            ))
        }
        (None, Some(o)) => o,
        (None, None) => {
            let name = scope.name();
            return Err(ApiError::bad_request(format!(
                "No {name} associated with this API key; pass a {name} query param"
            )));
        }
    };
    if let Scope::Team = scope {
        // A team's admins see the whole team; its other members their own calls in it (the
        // others' keys and spend are not theirs to see, as everywhere else).
        if !sees_all(p) {
            let role = state
                .store
                .get_member(&value, &p.user_id)
                .await
                .map_err(|e| store_unavailable(&e))?
                .map(|m| m.role);
            if role.as_deref() != Some("admin") {
                filter.user_id = Some(p.user_id.clone());
            }
        }
    }
    match scope {
        Scope::Key => filter.api_key = Some(value),
        Scope::User => filter.user_id = Some(value),
        Scope::Team => filter.team_id = Some(value),
    }
    let rows = state
        .store
        .spend_report_rows(&filter)
        .await
        .map_err(|e| store_unavailable(&e))?;
    Ok(by_key(&rows))
}

/// `GET /key/spend/report`: a key's spend per model; anyone for their own key.
pub async fn key_report(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ScopedReportQuery>,
) -> Response {
    answer(scoped_report(&state, &p, &q, Scope::Key).await)
}

/// `GET /user/spend/report`: a user's spend per key and model; anyone for themselves.
pub async fn user_report(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ScopedReportQuery>,
) -> Response {
    answer(scoped_report(&state, &p, &q, Scope::User).await)
}

/// `GET /team/spend/report`: a team's spend per key and model; anyone for their key's team (a
/// member who is not its admin: their own calls in it).
pub async fn team_report(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ScopedReportQuery>,
) -> Response {
    answer(scoped_report(&state, &p, &q, Scope::Team).await)
}

/// `GET /global/spend/all_tag_names`: every request tag in the log.
pub async fn all_tag_names(State(state): State<Arc<WebState>>) -> Response {
    let result = async {
        let mut names: Vec<String> = state
            .store
            .spend_by_tag(&SpendScope::default(), None, None)
            .await
            .map_err(|e| store_unavailable(&e))?
            .into_iter()
            .map(|t| t.tag)
            .collect();
        names.sort();
        Ok(json!({ "tag_names": names }))
    };
    answer(result.await)
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct EndUsersRequest {
    /// A key (`sk-…`) or its hash: only its calls.
    api_key: Option<String>,
    /// From (default: 30 days ago).
    #[serde(rename = "startTime")]
    start_time: Option<DateTime<Utc>>,
    /// Until, excluded (default: now).
    #[serde(rename = "endTime")]
    end_time: Option<DateTime<Utc>>,
}

/// `POST /global/spend/end_users`: the 100 end users who spent most, with their calls.
pub async fn end_user_spend(
    State(state): State<Arc<WebState>>,
    JsonBody(req): JsonBody<EndUsersRequest>,
) -> Response {
    let result = async {
        let now = Utc::now();
        let from = req.start_time.unwrap_or(now - Duration::days(30));
        let to = req.end_time.unwrap_or(now);
        let key = non_empty(&req.api_key).map(token_of);
        let rows = state
            .store
            .spend_by_end_user(from, to, key.as_deref(), END_USERS_LISTED)
            .await
            .map_err(|e| store_unavailable(&e))?;
        let list: Vec<Value> = rows
            .into_iter()
            .map(|r| {
                json!({
                    "end_user": r.end_user,
                    "total_count": r.requests,
                    "total_spend": usd(r.spend_nanos),
                })
            })
            .collect();
        Ok(Value::Array(list))
    };
    answer(result.await)
}

/// `GET /global/all_end_users`: every end user in the log.
pub async fn all_end_users(State(state): State<Arc<WebState>>) -> Response {
    let result = async {
        let users = state
            .store
            .end_users()
            .await
            .map_err(|e| store_unavailable(&e))?;
        Ok(json!({ "end_users": users }))
    };
    answer(result.await)
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct ActivityRangeQuery {
    start_date: Option<String>,
    end_date: Option<String>,
}

/// LiteLLM's day label in the activity views (`May 10`).
fn activity_day(d: NaiveDate) -> String {
    d.format("%b %d").to_string()
}

/// The range and scope of `/global/activity*`: both dates required; internal users see their
/// own calls.
fn activity_scope(
    p: &Principal,
    q: &ActivityRangeQuery,
) -> Result<(SpendScope, NaiveDate, NaiveDate), ApiError> {
    let f = report_range(non_empty(&q.start_date), non_empty(&q.end_date))?;
    let scope = SpendScope {
        user_id: (!sees_all(p)).then(|| p.user_id.clone()),
        ..SpendScope::default()
    };
    let to = (f.to - Duration::days(1)).date_naive();
    Ok((scope, f.from.date_naive(), to))
}

/// `GET /global/activity`: calls and tokens per day. LiteLLM orders the days by their label's
/// text (`Apr 30` before `May 01`), and so does this.
pub async fn global_activity(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ActivityRangeQuery>,
) -> Response {
    let result = async {
        let (scope, from, to) = activity_scope(&p, &q)?;
        let days = state
            .store
            .daily_spend(&scope, from, to)
            .await
            .map_err(|e| store_unavailable(&e))?;
        let mut daily: Vec<ActivityDay> = days
            .iter()
            .map(|d| {
                (
                    activity_day(d.day),
                    d.totals.requests,
                    d.totals.total_tokens(),
                )
            })
            .collect();
        daily.sort();
        let (requests, tokens) = daily
            .iter()
            .fold((0, 0), |(r, t), (_, dr, dt)| (r + dr, t + dt));
        let daily: Vec<Value> = daily
            .into_iter()
            .map(|(date, r, t)| json!({"date": date, "api_requests": r, "total_tokens": t}))
            .collect();
        Ok(json!({
            "daily_data": daily,
            "sum_api_requests": requests,
            "sum_total_tokens": tokens,
        }))
    };
    answer(result.await)
}

/// Model groups listed by `/global/activity/model`, as LiteLLM lists them.
const ACTIVITY_MODELS: usize = 10;

/// A day's label, calls and tokens.
type ActivityDay = (String, i64, i64);

/// `GET /global/activity/model`: the ten model groups with the most calls, each with its calls
/// and tokens per day.
pub async fn global_activity_model(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ActivityRangeQuery>,
) -> Response {
    let result = async {
        let (scope, from, to) = activity_scope(&p, &q)?;
        let rows = state
            .store
            .daily_spend_breakdown(
                &scope,
                from,
                to,
                tollgate_store::DailyDimension::Group(tollgate_store::SpendGroup::Model),
            )
            .await
            .map_err(|e| store_unavailable(&e))?;
        let mut models: BTreeMap<String, Vec<ActivityDay>> = BTreeMap::new();
        for r in &rows {
            models.entry(r.name.clone()).or_default().push((
                activity_day(r.day),
                r.totals.requests,
                r.totals.total_tokens(),
            ));
        }
        let mut out: Vec<(i64, i64, String, Vec<ActivityDay>)> = models
            .into_iter()
            .map(|(model, mut days)| {
                days.sort();
                let requests = days.iter().map(|d| d.1).sum();
                let tokens = days.iter().map(|d| d.2).sum();
                (requests, tokens, model, days)
            })
            .collect();
        out.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)));
        out.truncate(ACTIVITY_MODELS);
        let list: Vec<Value> = out
            .into_iter()
            .map(|(requests, tokens, model, days)| {
                let daily: Vec<Value> = days
                    .into_iter()
                    .map(|(date, r, t)| {
                        json!({"model_group": model, "date": date, "api_requests": r,
                            "total_tokens": t})
                    })
                    .collect();
                json!({
                    "model": model,
                    "daily_data": daily,
                    "sum_api_requests": requests,
                    "sum_total_tokens": tokens,
                })
            })
            .collect();
        Ok(Value::Array(list))
    };
    answer(result.await)
}

/// `POST /global/spend/refresh`: LiteLLM refreshes its monthly spend view here when it is a
/// materialized view, and answers `null` when it is a plain one (its default). Tollgate's views
/// read aggregates kept current with every spend batch, so there is never anything to refresh:
/// LiteLLM's default answer.
pub async fn refresh() -> Response {
    Json(Value::Null).into_response()
}

/// `POST /global/spend/reset`: every key's and team's spend back to 0 (users keep theirs, as in
/// LiteLLM). Master key only. The store, this process's budget accounts and the shared
/// counters are reset together, and every instance reloads its keys.
pub async fn reset_spend(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
) -> Response {
    if !p.is_master_key() {
        return ApiError::auth(
            "Authentication Error, Tried to access route=/global/spend/reset, which is only for \
             MASTER KEY",
        )
        .into_response();
    }
    let result = async {
        // Calls already answered whose records the writer still holds belong to the spend
        // being reset: let it commit them first (it flushes every half second).
        let deadline = std::time::Instant::now() + RESET_WAIT;
        while state.spend_writer.stats().pending.load(Ordering::Relaxed) > 0
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let owners =
            tollgate_ledger::resets::reset_all_keys_and_teams(&state.store, state.keys.budgets())
                .await
                .map_err(|e| store_unavailable(&e))?;
        state.keys.clear();
        if let Some(c) = &state.cluster {
            if let Err(e) = c.reset_spend(&owners).await {
                tracing::warn!(error = %e, "could not reset shared spend in Redis; it is re-read from the store after an idle hour");
            }
        }
        audit_log::record(
            &state,
            &p,
            "spend.reset",
            "spend",
            None,
            None,
            Some(json!({"keys_and_teams_reset": owners.len()})),
        )
        .await;
        Ok(json!({
            "message": "Spend for all API Keys and Teams reset successfully",
            "status": "success",
        }))
    };
    answer(result.await)
}
