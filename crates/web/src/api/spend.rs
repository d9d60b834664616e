//! Spend views (LiteLLM's spend routes): the call log (`/spend/logs`, `/spend/logs/v2`),
//! per-day activity (`/user/daily/activity`, `/team/daily/activity`, in `spend_activity`),
//! the key and user tables by spend (`/spend/keys`, `/spend/users`, in `spend_tables`) and
//! the admin-only `/global/spend*` summaries. Summaries read the daily aggregates; the log is
//! paged newest first through indexes. Money is stored in nano-USD and shown in USD, as the
//! other `spend` fields are.
//!
//! Scoping follows LiteLLM: internal users' log queries are silently narrowed to their own
//! user id; the route policy keeps the global views for the admin roles.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tollgate_domain::NanoUsd;
use tollgate_proxy::ApiError;
use tollgate_store::{
    DailyDimension, SpendGroup, SpendLogFilter, SpendRecord, SpendScope, SpendStatus,
};

use super::keys::token_of;
use super::{non_empty, sees_all};
use crate::principal::{store_unavailable, Principal};
use crate::state::WebState;

/// Rows `/spend/logs` returns at most without `limit` (LiteLLM caps at 10,000; the default is
/// lower so an unfiltered call on a large log stays cheap).
const LOGS_DEFAULT_LIMIT: u32 = 1_000;
const LOGS_MAX_LIMIT: u32 = 10_000;
/// The window of LiteLLM's `Last30d…` views behind `/global/spend*`.
const GLOBAL_DAYS: i64 = 30;

pub fn usd(nanos: i64) -> f64 {
    NanoUsd(nanos).to_usd()
}

/// A `YYYY-MM-DD` query parameter.
pub fn parse_date(v: &str, param: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!(
            "Invalid {param} '{}': expected a date as YYYY-MM-DD.",
            v.chars().take(40).collect::<String>()
        ))
        .with_param(param)
    })
}

/// A date (`YYYY-MM-DD`, the start of that UTC day), a `YYYY-MM-DD HH:MM:SS` UTC time (as the
/// LiteLLM UI sends) or an RFC 3339 time.
fn parse_instant(v: &str, param: &str) -> Result<(DateTime<Utc>, bool), ApiError> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok((t.with_timezone(&Utc), false));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Ok((Utc.from_utc_datetime(&t), false));
        }
    }
    let d = parse_date(v, param)?;
    Ok((
        Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)),
        true,
    ))
}

/// Optional `[from, to)` bounds on a call's start time.
type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `[start, end)` from start/end parameters. A bare end date includes that whole day, as
/// LiteLLM's date filters do.
fn time_range(start: Option<&str>, end: Option<&str>) -> Result<TimeRange, ApiError> {
    let from = start
        .map(|s| parse_instant(s, "start_date"))
        .transpose()?
        .map(|(t, _)| t);
    let to = end
        .map(|s| parse_instant(s, "end_date"))
        .transpose()?
        .map(|(t, whole_day)| if whole_day { t + Duration::days(1) } else { t });
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(ApiError::bad_request("start_date must be before end_date.")
                .with_param("start_date"));
        }
    }
    Ok((from, to))
}

pub fn parse_u32(v: Option<&str>, param: &str, default: u32, max: u32) -> Result<u32, ApiError> {
    match v {
        None => Ok(default),
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) if n >= 1 && n <= max => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "Invalid {param} '{}': expected a whole number from 1 to {max}.",
                s.chars().take(40).collect::<String>()
            ))
            .with_param(param)),
        },
    }
}

/// The caller's scope: admin roles whatever they asked for; everyone else narrowed to their own
/// user id (LiteLLM overrides `user_id` the same way).
fn log_scope(
    p: &Principal,
    user_id: Option<&str>,
    team_id: Option<&str>,
    api_key: Option<&str>,
) -> SpendScope {
    SpendScope {
        user_id: if sees_all(p) {
            user_id.map(str::to_string)
        } else {
            Some(p.user_id.clone())
        },
        team_id: team_id.map(str::to_string),
        api_key: api_key.map(token_of),
    }
}

/// A LiteLLM_SpendLogs row.
pub fn log_view(r: &SpendRecord) -> Value {
    json!({
        "request_id": r.request_id,
        "call_type": r.call_type,
        "api_key": r.api_key,
        "spend": usd(r.spend_nanos),
        "total_tokens": r.total_tokens(),
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "startTime": rfc3339(&r.start_time),
        "endTime": rfc3339(&r.end_time),
        "completionStartTime": r.completion_start_time.as_ref().map(rfc3339),
        "request_duration_ms": r.request_duration_ms,
        "model": r.model,
        "model_id": r.model_id,
        "model_group": r.model_group,
        "custom_llm_provider": r.custom_llm_provider,
        "user": r.user_id,
        "team_id": r.team_id,
        "end_user": r.end_user,
        "status": r.status.as_str(),
        "metadata": r.metadata,
        "cache_hit": "False",
        "request_tags": r.metadata.get("tags").cloned().unwrap_or_else(|| json!([])),
    })
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct LogsQuery {
    api_key: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    request_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    model: Option<String>,
    summarize: Option<String>,
    limit: Option<String>,
}

/// `GET /spend/logs`: LiteLLM's v1 list, newest first. With both dates and `summarize` (the
/// default, as in LiteLLM) it answers per-day summaries instead.
pub async fn logs(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<LogsQuery>,
) -> Response {
    match logs_inner(&state, &p, &q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn logs_inner(state: &WebState, p: &Principal, q: &LogsQuery) -> Result<Response, ApiError> {
    let scope = log_scope(
        p,
        non_empty(&q.user_id),
        non_empty(&q.team_id),
        non_empty(&q.api_key),
    );
    let summarize = !matches!(non_empty(&q.summarize), Some("false" | "False" | "0"));
    if let (true, Some(s), Some(e)) = (summarize, non_empty(&q.start_date), non_empty(&q.end_date))
    {
        let (from, to) = (parse_date(s, "start_date")?, parse_date(e, "end_date")?);
        return Ok(Json(day_summaries(state, &scope, from, to).await?).into_response());
    }
    let (from, to) = time_range(non_empty(&q.start_date), non_empty(&q.end_date))?;
    let limit = parse_u32(
        non_empty(&q.limit),
        "limit",
        LOGS_DEFAULT_LIMIT,
        LOGS_MAX_LIMIT,
    )?;
    let filter = SpendLogFilter {
        scope,
        model: non_empty(&q.model).map(str::to_string),
        status: None,
        from,
        to,
        request_id: non_empty(&q.request_id).map(str::to_string),
    };
    let rows = state
        .store
        .spend_logs_page(&filter, None, limit)
        .await
        .map_err(|e| store_unavailable(&e))?;
    let truncated = rows.len() == limit as usize;
    let mut resp = Json(rows.iter().map(log_view).collect::<Vec<_>>()).into_response();
    if truncated {
        resp.headers_mut().insert(
            "x-litellm-spend-logs-truncated",
            HeaderValue::from_static("true"),
        );
    }
    Ok(resp)
}

/// LiteLLM's summarised `/spend/logs`: per day `{startTime, spend, users, models, <key>: spend}`,
/// padded with empty days up to `end_date` after the last day with spend.
async fn day_summaries(
    state: &WebState,
    scope: &SpendScope,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Value>, ApiError> {
    let st = &state.store;
    let err = |e: tollgate_store::StoreError| store_unavailable(&e);
    let days = st.daily_spend(scope, from, to).await.map_err(err)?;
    let mut out: BTreeMap<NaiveDate, Map<String, Value>> = BTreeMap::new();
    for d in &days {
        let mut m = Map::new();
        m.insert("startTime".into(), json!(d.day.to_string()));
        m.insert("spend".into(), json!(usd(d.totals.spend_nanos)));
        m.insert("users".into(), json!({}));
        m.insert("models".into(), json!({}));
        out.insert(d.day, m);
    }
    for (dim, field) in [
        (DailyDimension::Group(SpendGroup::User), Some("users")),
        (DailyDimension::Group(SpendGroup::Model), Some("models")),
        (DailyDimension::Group(SpendGroup::Key), None),
    ] {
        for b in st
            .daily_spend_breakdown(scope, from, to, dim)
            .await
            .map_err(err)?
        {
            let Some(m) = out.get_mut(&b.day) else {
                continue;
            };
            let spend = json!(usd(b.totals.spend_nanos));
            match field
                .and_then(|f| m.get_mut(f))
                .and_then(Value::as_object_mut)
            {
                Some(inner) => {
                    inner.insert(b.name, spend);
                }
                None => {
                    m.insert(b.name, spend);
                }
            }
        }
    }
    let last = out.keys().next_back().copied();
    let mut rows: Vec<Value> = out.into_values().map(Value::Object).collect();
    if let Some(mut d) = last {
        while d < to {
            d = d.succ_opt().unwrap_or(to);
            rows.push(json!({"startTime": d.to_string(), "spend": 0, "users": {}, "models": {}}));
        }
    }
    Ok(rows)
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct LogsV2Query {
    api_key: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    request_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    model: Option<String>,
    status_filter: Option<String>,
    page_size: Option<String>,
    /// LiteLLM's 1-based page number (when no `cursor` is given).
    page: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// Matching rows counted at most for `total` (LiteLLM caps its count too, and says so with
/// `total_is_capped`).
const LOGS_TOTAL_CAP: i64 = 100_000;
const LOGS_MAX_PAGE: u32 = 1_000_000;

/// `GET /spend/logs/v2` (= `/spend/logs/ui`): pages newest first. Without `cursor` it answers
/// LiteLLM's numbered page (`page`, `page_size`, `total`, `total_pages`, `total_is_capped`);
/// every page also carries `next_cursor`, and passing it back as `cursor` pages by keyset
/// instead, so a deep page costs the same as the first and rows arriving meanwhile shift
/// nothing.
pub async fn logs_v2(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<LogsV2Query>,
) -> Response {
    match logs_v2_inner(&state, &p, &q).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn logs_v2_inner(
    state: &WebState,
    p: &Principal,
    q: &LogsV2Query,
) -> Result<Value, ApiError> {
    let (from, to) = time_range(non_empty(&q.start_date), non_empty(&q.end_date))?;
    let page_size = parse_u32(non_empty(&q.page_size), "page_size", 50, 1000)?;
    let status = match non_empty(&q.status_filter) {
        None => None,
        Some("success") => Some(SpendStatus::Success),
        Some("failure") => Some(SpendStatus::Failure),
        Some(_) => {
            return Err(
                ApiError::bad_request("status_filter must be success or failure.")
                    .with_param("status_filter"),
            )
        }
    };
    let before = non_empty(&q.cursor).map(parse_cursor).transpose()?;
    let page = parse_u32(non_empty(&q.page), "page", 1, LOGS_MAX_PAGE)?;
    let filter = SpendLogFilter {
        scope: log_scope(
            p,
            non_empty(&q.user_id),
            non_empty(&q.team_id),
            non_empty(&q.api_key),
        ),
        model: non_empty(&q.model).map(str::to_string),
        status,
        from,
        to,
        request_id: non_empty(&q.request_id).map(str::to_string),
    };
    let err = |e: tollgate_store::StoreError| store_unavailable(&e);
    // One extra row tells whether another page exists.
    let mut rows = match &before {
        Some(_) => {
            state
                .store
                .spend_logs_page(&filter, before.clone(), page_size + 1)
                .await
        }
        None => {
            state
                .store
                .spend_logs_at(
                    &filter,
                    i64::from(page - 1) * i64::from(page_size),
                    page_size + 1,
                )
                .await
        }
    }
    .map_err(err)?;
    let has_more = rows.len() > page_size as usize;
    rows.truncate(page_size as usize);
    let next = has_more
        .then(|| {
            rows.last()
                .map(|r| format!("{}|{}", r.start_time.timestamp_micros(), r.request_id))
        })
        .flatten();
    let mut v = json!({
        "data": rows.iter().map(log_view).collect::<Vec<_>>(),
        "page_size": page_size,
        "has_more": has_more,
        "next_cursor": next,
    });
    if before.is_none() {
        let counted = state
            .store
            .count_spend_logs_matching(&filter, LOGS_TOTAL_CAP + 1)
            .await
            .map_err(err)?;
        let total = counted.min(LOGS_TOTAL_CAP);
        v["page"] = json!(page);
        v["total"] = json!(total);
        v["total_pages"] = json!((total + i64::from(page_size) - 1) / i64::from(page_size));
        v["total_is_capped"] = json!(counted > LOGS_TOTAL_CAP);
    }
    Ok(v)
}

fn parse_cursor(c: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let bad = || {
        ApiError::bad_request("Invalid cursor: pass back a next_cursor unchanged.")
            .with_param("cursor")
    };
    let (micros, id) = c.split_once('|').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let t = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((t, id.to_string()))
}

/// The last [`GLOBAL_DAYS`] UTC days, today included.
fn last_30_days() -> (NaiveDate, NaiveDate) {
    let today = Utc::now().date_naive();
    (today - Duration::days(GLOBAL_DAYS), today)
}

/// `GET /global/spend`: spend over the last 30 days, and the proxy-wide budget (Tollgate has
/// none: `litellm_settings.max_budget` is refused at load).
pub async fn global_spend(State(state): State<Arc<WebState>>) -> Response {
    let (from, to) = last_30_days();
    match state
        .store
        .spend_totals(&SpendScope::default(), from, to)
        .await
    {
        Ok(t) => {
            Json(json!({"spend": usd(t.spend_nanos), "max_budget": Value::Null})).into_response()
        }
        Err(e) => store_unavailable(&e).into_response(),
    }
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct GlobalLogsQuery {
    api_key: Option<String>,
}

/// `GET /global/spend/logs[?api_key=]`: spend per day over the last 30 days, the whole gateway's
/// or one key's (LiteLLM's `MonthlyGlobalSpend` and `MonthlyGlobalSpendPerKey` views).
pub async fn global_spend_logs(
    State(state): State<Arc<WebState>>,
    Query(q): Query<GlobalLogsQuery>,
) -> Response {
    let (from, to) = last_30_days();
    let key = non_empty(&q.api_key).map(token_of);
    let scope = SpendScope {
        api_key: key.clone(),
        ..SpendScope::default()
    };
    match state.store.daily_spend(&scope, from, to).await {
        Ok(days) => Json(
            days.iter()
                .map(|d| {
                    let mut row =
                        json!({"date": d.day.to_string(), "spend": usd(d.totals.spend_nanos)});
                    if let Some(k) = &key {
                        row["api_key"] = json!(k);
                    }
                    row
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => store_unavailable(&e).into_response(),
    }
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct DateRangeQuery {
    start_date: Option<String>,
    end_date: Option<String>,
}

/// `GET /global/spend/provider?start_date=&end_date=`: spend per provider over whole UTC days,
/// `[{provider, spend}]`, largest first.
pub async fn global_spend_provider(
    State(state): State<Arc<WebState>>,
    Query(q): Query<DateRangeQuery>,
) -> Response {
    let result = async {
        let (Some(s), Some(e)) = (non_empty(&q.start_date), non_empty(&q.end_date)) else {
            return Err(
                ApiError::bad_request("Please provide start_date and end_date")
                    .with_param("start_date"),
            );
        };
        let (from, to) = (parse_date(s, "start_date")?, parse_date(e, "end_date")?);
        let rows = state
            .store
            .daily_spend_breakdown(&SpendScope::default(), from, to, DailyDimension::Provider)
            .await
            .map_err(|e| store_unavailable(&e))?;
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for r in rows {
            let name = if r.name.is_empty() {
                "Unknown".to_string()
            } else {
                r.name
            };
            *totals.entry(name).or_default() += r.totals.spend_nanos;
        }
        let mut ranked: Vec<(String, i64)> = totals.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(ranked
            .into_iter()
            .map(|(p, n)| json!({"provider": p, "spend": usd(n)}))
            .collect::<Vec<_>>())
    };
    match result.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct TagsQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    /// Comma-separated tags to keep (`all-tags`, or none, keeps all).
    tags: Option<String>,
}

/// `GET /global/spend/tags?start_date=&end_date=[&tags=a,b]`: spend and calls per request tag
/// over whole UTC days, largest first: `{"spend_per_tag": [{name, spend, log_count}]}`.
pub async fn global_spend_tags(
    State(state): State<Arc<WebState>>,
    Query(q): Query<TagsQuery>,
) -> Response {
    let result = async {
        let (Some(s), Some(e)) = (non_empty(&q.start_date), non_empty(&q.end_date)) else {
            return Err(
                ApiError::bad_request("Please provide start_date and end_date")
                    .with_param("start_date"),
            );
        };
        let (from, to) = (parse_date(s, "start_date")?, parse_date(e, "end_date")?);
        let start = Utc.from_utc_datetime(&from.and_time(chrono::NaiveTime::MIN));
        let end = Utc.from_utc_datetime(&to.and_time(chrono::NaiveTime::MIN)) + Duration::days(1);
        let wanted: Vec<&str> = non_empty(&q.tags)
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let all = wanted.is_empty() || wanted.contains(&"all-tags");
        let rows = state
            .store
            .spend_by_tag(&SpendScope::default(), Some(start), Some(end))
            .await
            .map_err(|e| store_unavailable(&e))?;
        let per_tag: Vec<Value> = rows
            .into_iter()
            .filter(|r| all || wanted.contains(&r.tag.as_str()))
            .map(|r| json!({"name": r.tag, "spend": usd(r.spend_nanos), "log_count": r.requests}))
            .collect();
        Ok(json!({ "spend_per_tag": per_tag }))
    };
    match result.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct SpendTagsQuery {
    start_date: Option<String>,
    end_date: Option<String>,
}

/// `GET /spend/tags?start_date=&end_date=`: spend and calls per request tag, as LiteLLM lists
/// them (`individual_request_tag`, `log_count`, `total_spend`). Admin roles see every call;
/// everyone else the calls made as themselves. Both dates are optional (whole UTC days, the
/// end included).
pub async fn spend_tags(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<SpendTagsQuery>,
) -> Response {
    let result = async {
        let (from, to) = time_range(non_empty(&q.start_date), non_empty(&q.end_date))?;
        let scope = log_scope(&p, None, None, None);
        let rows = state
            .store
            .spend_by_tag(&scope, from, to)
            .await
            .map_err(|e| store_unavailable(&e))?;
        let tags: Vec<Value> = rows
            .into_iter()
            .map(|r| {
                json!({
                    "individual_request_tag": r.tag,
                    "log_count": r.requests,
                    "total_spend": usd(r.spend_nanos),
                })
            })
            .collect();
        Ok::<_, ApiError>(tags)
    };
    match result.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct LimitQuery {
    limit: Option<String>,
}

/// `GET /global/spend/keys?limit=`: the top keys by spend over the last 30 days, with their
/// alias and masked name (LiteLLM's `Last30dKeysBySpend`).
pub async fn global_spend_keys(
    State(state): State<Arc<WebState>>,
    Query(q): Query<LimitQuery>,
) -> Response {
    let result = async {
        let limit = parse_u32(non_empty(&q.limit), "limit", 100, 1000)?;
        let (from, to) = last_30_days();
        let err = |e: tollgate_store::StoreError| store_unavailable(&e);
        let top = state
            .store
            .spend_breakdown(&SpendScope::default(), from, to, SpendGroup::Key, limit)
            .await
            .map_err(err)?;
        // One read for all the keys' labels (a lookup per key was most of this view's time).
        let tokens: Vec<String> = top.iter().map(|b| b.name.clone()).collect();
        let labels: BTreeMap<String, tollgate_store::spend_views::KeyLabel> = state
            .store
            .key_labels(&tokens)
            .await
            .map_err(err)?
            .into_iter()
            .map(|l| (l.token.clone(), l))
            .collect();
        let mut out = Vec::with_capacity(top.len());
        for b in top {
            let key = labels.get(&b.name);
            out.push(json!({
                "api_key": b.name,
                "key_alias": key.and_then(|k| k.key_alias.clone()),
                "key_name": key.map(|k| k.key_name.clone()),
                "total_spend": usd(b.totals.spend_nanos),
            }));
        }
        Ok::<_, ApiError>(out)
    };
    match result.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /global/spend/models?limit=10`: the top models (public names) by spend, last 30 days.
pub async fn global_spend_models(
    State(state): State<Arc<WebState>>,
    Query(q): Query<LimitQuery>,
) -> Response {
    let limit = match parse_u32(non_empty(&q.limit), "limit", 10, 1000) {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let (from, to) = last_30_days();
    match state
        .store
        .spend_breakdown(&SpendScope::default(), from, to, SpendGroup::Model, limit)
        .await
    {
        Ok(rows) => Json(
            rows.iter()
                .map(|b| json!({"model": b.name, "total_spend": usd(b.totals.spend_nanos)}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => store_unavailable(&e).into_response(),
    }
}

/// `GET /global/spend/teams`: per day and team (by alias; "Unassigned" for calls without a
/// team) over the last 30 days, the team names, and the top 10 teams' totals.
pub async fn global_spend_teams(State(state): State<Arc<WebState>>) -> Response {
    match global_spend_teams_inner(&state).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn global_spend_teams_inner(state: &WebState) -> Result<Value, ApiError> {
    let (from, to) = last_30_days();
    let err = |e: tollgate_store::StoreError| store_unavailable(&e);
    let rows = state
        .store
        .daily_spend_breakdown(
            &SpendScope::default(),
            from,
            to,
            DailyDimension::Group(SpendGroup::Team),
        )
        .await
        .map_err(err)?;
    let mut alias: BTreeMap<String, String> = BTreeMap::new();
    let mut by_day: BTreeMap<NaiveDate, Map<String, Value>> = BTreeMap::new();
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for r in rows {
        if !alias.contains_key(&r.name) {
            let shown = if r.name.is_empty() {
                "Unassigned".to_string()
            } else {
                state
                    .store
                    .get_team(&r.name)
                    .await
                    .map_err(err)?
                    .and_then(|t| t.team_alias)
                    .unwrap_or_else(|| r.name.clone())
            };
            alias.insert(r.name.clone(), shown);
        }
        let shown = alias.get(&r.name).cloned().unwrap_or_default();
        let day = by_day.entry(r.day).or_default();
        let prev = day.get(&shown).and_then(Value::as_f64).unwrap_or(0.0);
        day.insert(shown.clone(), json!(prev + usd(r.totals.spend_nanos)));
        *totals.entry(shown).or_default() += r.totals.spend_nanos;
    }
    let daily: Vec<Value> = by_day
        .into_iter()
        .map(|(d, mut m)| {
            m.insert("date".into(), json!(d.to_string()));
            Value::Object(m)
        })
        .collect();
    let mut ranked: Vec<(String, i64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let teams: Vec<&String> = ranked.iter().map(|(n, _)| n).collect();
    let top: Vec<Value> = ranked
        .iter()
        .take(10)
        .map(|(n, s)| json!({"team_id": n, "total_spend": usd(*s)}))
        .collect();
    Ok(json!({"daily_spend": daily, "teams": teams, "total_spend_per_team": top}))
}

/// 403 in the envelope, with LiteLLM's wording for spend scopes.
pub fn not_your_spend(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "auth_error", message)
}
