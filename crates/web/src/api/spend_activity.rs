//! `/user/daily/activity` and `/team/daily/activity`: LiteLLM's per-day activity
//! (`SpendAnalyticsPaginatedResponse`), built from the daily aggregates in two reads per scope
//! (see `Store::daily_activity`). Days come back whole (no paging across days);
//! `metadata.page` is always 1. Like LiteLLM's, `breakdown.api_keys` lists only the range's
//! highest-spend keys, so an admin's everyone-view stays small with thousands of keys.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};
use tollgate_proxy::ApiError;
use tollgate_store::spend_views::{DailyGroupRow, KeyLabel};
use tollgate_store::{SpendScope, SpendTotals};

use super::keys::token_of;
use super::spend::{not_your_spend, parse_date, usd};
use super::{non_empty, sees_all};
use crate::principal::{store_unavailable, Principal};
use crate::state::WebState;

/// Keys listed in `breakdown.api_keys`: the range's highest-spend ones, as many as LiteLLM's
/// activity lists (its `USAGE_TOP_API_KEYS_LIMIT`; 100 as in LiteLLM's own tests). Day totals
/// and the other breakdowns still count every key.
const TOP_API_KEYS: u32 = 100;

/// Keys whose alias is looked up for `breakdown.api_keys` metadata; past this many distinct
/// keys the rest are listed without it (one lookup each would dominate a global view).
const KEY_METADATA_LOOKUPS: usize = 200;

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct ActivityQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    model: Option<String>,
    api_key: Option<String>,
    user_id: Option<String>,
    team_ids: Option<String>,
    team_id: Option<String>,
    /// The caller's offset from UTC in minutes, as JavaScript's `getTimezoneOffset()` gives it
    /// (480 for UTC-8).
    timezone: Option<String>,
    include_current_utc_day: Option<String>,
}

/// The most a real time zone is away from UTC, in minutes (UTC+14).
const MAX_OFFSET_MINUTES: i64 = 14 * 60;

/// Days are UTC days, as LiteLLM's are. A caller west of UTC whose local "today" is already
/// the next UTC day asks with `include_current_utc_day`: a range ending on their local today
/// then reaches today's UTC day, so calls made since UTC midnight are counted. Past ranges are
/// never moved.
fn end_with_current_utc_day(
    end: NaiveDate,
    offset_minutes: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> NaiveDate {
    let local_today = (now - chrono::Duration::minutes(offset_minutes)).date_naive();
    if end < local_today {
        end
    } else {
        end.max(now.date_naive())
    }
}

/// The range asked for, read at `now` (the handlers pass the clock; the tests a chosen hour).
fn dates(
    q: &ActivityQuery,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let (Some(s), Some(e)) = (non_empty(&q.start_date), non_empty(&q.end_date)) else {
        return Err(ApiError::bad_request(
            "Please provide start_date and end_date",
        ));
    };
    let (from, mut to) = (parse_date(s, "start_date")?, parse_date(e, "end_date")?);
    if from > to {
        return Err(
            ApiError::bad_request("start_date must not be after end_date.")
                .with_param("start_date"),
        );
    }
    let offset = match non_empty(&q.timezone) {
        None => None,
        Some(t) => match t.parse::<i64>() {
            Ok(m) if m.abs() <= MAX_OFFSET_MINUTES => Some(m),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid timezone '{}': expected an offset from UTC in minutes, as \
                     JavaScript's getTimezoneOffset() gives it (e.g. 480).",
                    t.chars().take(40).collect::<String>()
                ))
                .with_param("timezone"))
            }
        },
    };
    let include_today = matches!(
        non_empty(&q.include_current_utc_day),
        Some("true" | "True" | "1")
    );
    if let (true, Some(m)) = (include_today, offset) {
        to = end_with_current_utc_day(to, m, now);
    }
    Ok((from, to))
}

/// `GET /user/daily/activity`. Admin roles see anyone (or everyone); others only themselves,
/// and naming another user is refused as LiteLLM refuses it.
pub async fn user_activity(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ActivityQuery>,
) -> Response {
    let result = async {
        let (from, to) = dates(&q, chrono::Utc::now())?;
        let asked = non_empty(&q.user_id);
        let user_id = if sees_all(&p) {
            asked.map(str::to_string)
        } else {
            if asked.is_some_and(|u| u != p.user_id) {
                return Err(not_your_spend(
                    "Non-admin users can only view their own spend data.",
                ));
            }
            Some(p.user_id.clone())
        };
        let scope = SpendScope {
            user_id,
            team_id: None,
            api_key: non_empty(&q.api_key).map(token_of),
        };
        activity(&state, &[scope], non_empty(&q.model), from, to, false).await
    };
    match result.await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// `GET /team/daily/activity?team_ids=a,b`. Admin roles see any team (no ids: all traffic);
/// others only teams they belong to (no ids: all of theirs).
pub async fn team_activity(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ActivityQuery>,
) -> Response {
    let result = async {
        let (from, to) = dates(&q, chrono::Utc::now())?;
        let mut asked: Vec<String> = non_empty(&q.team_ids)
            .or(non_empty(&q.team_id))
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        asked.sort();
        asked.dedup();
        if !sees_all(&p) {
            let mine: HashSet<String> = state
                .store
                .teams_of_user(&p.user_id)
                .await
                .map_err(|e| store_unavailable(&e))?
                .into_iter()
                .map(|(t, _)| t)
                .collect();
            if asked.iter().any(|t| !mine.contains(t)) {
                return Err(not_your_spend(
                    "Non-admin users can only view spend of teams they belong to.",
                ));
            }
            if asked.is_empty() {
                asked = mine.into_iter().collect();
                asked.sort();
                if asked.is_empty() {
                    return Ok(render(&BTreeMap::new(), &BTreeMap::new()));
                }
            }
        }
        let api_key = non_empty(&q.api_key).map(token_of);
        let scopes: Vec<SpendScope> = if asked.is_empty() {
            vec![SpendScope {
                api_key,
                ..Default::default()
            }]
        } else {
            asked
                .iter()
                .map(|t| SpendScope {
                    user_id: None,
                    team_id: Some(t.clone()),
                    api_key: api_key.clone(),
                })
                .collect()
        };
        activity(&state, &scopes, non_empty(&q.model), from, to, true).await
    };
    match result.await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// One day's totals and breakdowns.
#[derive(Default)]
struct Day {
    totals: SpendTotals,
    models: BTreeMap<String, SpendTotals>,
    providers: BTreeMap<String, SpendTotals>,
    api_keys: BTreeMap<String, SpendTotals>,
    /// Teams, for the team view.
    entities: BTreeMap<String, SpendTotals>,
}

fn add(t: &mut SpendTotals, o: &SpendTotals) {
    t.spend_nanos = t.spend_nanos.saturating_add(o.spend_nanos);
    t.prompt_tokens = t.prompt_tokens.saturating_add(o.prompt_tokens);
    t.completion_tokens = t.completion_tokens.saturating_add(o.completion_tokens);
    t.requests += o.requests;
    t.successful_requests += o.successful_requests;
    t.failed_requests += o.failed_requests;
}

fn accumulate(days: &mut BTreeMap<NaiveDate, Day>, g: &DailyGroupRow, entities: bool) {
    let d = days.entry(g.day).or_default();
    add(&mut d.totals, &g.totals);
    add(
        d.models.entry(g.model_group.clone()).or_default(),
        &g.totals,
    );
    add(
        d.providers
            .entry(g.custom_llm_provider.clone())
            .or_default(),
        &g.totals,
    );
    if entities {
        add(d.entities.entry(g.team_id.clone()).or_default(), &g.totals);
    }
}

/// Keeps the `limit` highest-spend keys of the whole range in every day's `api_keys` (several
/// team scopes each bring their own top keys).
fn keep_top_keys(days: &mut BTreeMap<NaiveDate, Day>, limit: usize) {
    let mut spend: BTreeMap<String, i64> = BTreeMap::new();
    for d in days.values() {
        for (k, t) in &d.api_keys {
            *spend.entry(k.clone()).or_default() += t.spend_nanos;
        }
    }
    if spend.len() <= limit {
        return;
    }
    let mut ranked: Vec<(String, i64)> = spend.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let keep: HashSet<String> = ranked.into_iter().take(limit).map(|(k, _)| k).collect();
    for d in days.values_mut() {
        d.api_keys.retain(|k, _| keep.contains(k));
    }
}

async fn activity(
    state: &WebState,
    scopes: &[SpendScope],
    model: Option<&str>,
    from: NaiveDate,
    to: NaiveDate,
    entities: bool,
) -> Result<Response, ApiError> {
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    for scope in scopes {
        let a = state
            .store
            .daily_activity(scope, model, from, to, TOP_API_KEYS)
            .await
            .map_err(|e| store_unavailable(&e))?;
        for g in &a.groups {
            accumulate(&mut days, g, entities);
        }
        for k in &a.keys {
            let d = days.entry(k.day).or_default();
            add(d.api_keys.entry(k.name.clone()).or_default(), &k.totals);
        }
    }
    keep_top_keys(&mut days, TOP_API_KEYS as usize);
    let keys = key_metadata(state, &days).await?;
    Ok(render(&days, &keys))
}

/// Alias and team of the keys in the breakdown, highest-spend keys first, in one read.
async fn key_metadata(
    state: &WebState,
    days: &BTreeMap<NaiveDate, Day>,
) -> Result<BTreeMap<String, Value>, ApiError> {
    let mut spend: BTreeMap<&str, i64> = BTreeMap::new();
    for d in days.values() {
        for (k, t) in &d.api_keys {
            *spend.entry(k.as_str()).or_default() += t.spend_nanos;
        }
    }
    let mut ranked: Vec<(&str, i64)> = spend.into_iter().collect();
    ranked.sort_by_key(|k| std::cmp::Reverse(k.1));
    let wanted: Vec<String> = ranked
        .into_iter()
        .take(KEY_METADATA_LOOKUPS)
        .map(|(k, _)| k.to_string())
        .collect();
    let labels: BTreeMap<String, KeyLabel> = state
        .store
        .key_labels(&wanted)
        .await
        .map_err(|e| store_unavailable(&e))?
        .into_iter()
        .map(|l| (l.token.clone(), l))
        .collect();
    Ok(wanted
        .into_iter()
        .map(|k| {
            let row = labels.get(&k);
            let meta = json!({
                "key_alias": row.and_then(|r| r.key_alias.clone()),
                "team_id": row.and_then(|r| r.team_id.clone()),
                "user_id": row.and_then(|r| r.user_id.clone()),
                "key_exists": row.is_some(),
            });
            (k, meta)
        })
        .collect())
}

/// LiteLLM's `SpendMetrics` (Tollgate records no cache-token detail per day: zero).
#[derive(Serialize)]
struct Metrics {
    spend: f64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    cache_read_input_tokens: i64,
    cache_creation_input_tokens: i64,
    api_requests: i64,
    successful_requests: i64,
    failed_requests: i64,
}

impl From<&SpendTotals> for Metrics {
    fn from(t: &SpendTotals) -> Metrics {
        Metrics {
            spend: usd(t.spend_nanos),
            prompt_tokens: t.prompt_tokens,
            completion_tokens: t.completion_tokens,
            total_tokens: t.total_tokens(),
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
            api_requests: t.requests,
            successful_requests: t.successful_requests,
            failed_requests: t.failed_requests,
        }
    }
}

/// `{}`.
#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Grouped {
    metrics: Metrics,
    metadata: Empty,
    api_key_breakdown: Empty,
}

/// A breakdown serialized straight from the day's sums.
struct GroupMap<'a>(&'a BTreeMap<String, SpendTotals>);

impl Serialize for GroupMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, t)| {
            (
                k,
                Grouped {
                    metrics: t.into(),
                    metadata: Empty {},
                    api_key_breakdown: Empty {},
                },
            )
        }))
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum KeyMeta<'a> {
    Known(&'a Value),
    Unknown(Empty),
}

#[derive(Serialize)]
struct KeyEntry<'a> {
    metrics: Metrics,
    metadata: KeyMeta<'a>,
}

struct KeyMap<'a> {
    day: &'a BTreeMap<String, SpendTotals>,
    labels: &'a BTreeMap<String, Value>,
}

impl Serialize for KeyMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.day.iter().map(|(k, t)| {
            let metadata = match self.labels.get(k) {
                Some(v) => KeyMeta::Known(v),
                None => KeyMeta::Unknown(Empty {}),
            };
            (
                k,
                KeyEntry {
                    metrics: t.into(),
                    metadata,
                },
            )
        }))
    }
}

#[derive(Serialize)]
struct Breakdown<'a> {
    models: GroupMap<'a>,
    model_groups: GroupMap<'a>,
    providers: GroupMap<'a>,
    endpoints: Empty,
    mcp_servers: Empty,
    api_keys: KeyMap<'a>,
    entities: GroupMap<'a>,
}

#[derive(Serialize)]
struct DayOut<'a> {
    date: String,
    metrics: Metrics,
    breakdown: Breakdown<'a>,
}

struct Results<'a> {
    days: &'a BTreeMap<NaiveDate, Day>,
    labels: &'a BTreeMap<String, Value>,
}

impl Serialize for Results<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.days.iter().map(|(day, d)| DayOut {
            date: day.to_string(),
            metrics: (&d.totals).into(),
            breakdown: Breakdown {
                models: GroupMap(&d.models),
                model_groups: GroupMap(&d.models),
                providers: GroupMap(&d.providers),
                endpoints: Empty {},
                mcp_servers: Empty {},
                api_keys: KeyMap {
                    day: &d.api_keys,
                    labels: self.labels,
                },
                entities: GroupMap(&d.entities),
            },
        }))
    }
}

#[derive(Serialize)]
struct Totals {
    total_spend: f64,
    total_prompt_tokens: i64,
    total_completion_tokens: i64,
    total_tokens: i64,
    total_api_requests: i64,
    total_successful_requests: i64,
    total_failed_requests: i64,
    total_cache_read_input_tokens: i64,
    total_cache_creation_input_tokens: i64,
    page: u32,
    total_pages: u32,
    has_more: bool,
}

#[derive(Serialize)]
struct ActivityOut<'a> {
    results: Results<'a>,
    metadata: Totals,
}

/// The answer, serialized straight from the day maps: a `serde_json::Value` tree of a 30-day
/// everyone-view (~3,000 key entries) took as long to build and free as the queries took.
fn render(days: &BTreeMap<NaiveDate, Day>, labels: &BTreeMap<String, Value>) -> Response {
    let mut total = SpendTotals::default();
    for d in days.values() {
        add(&mut total, &d.totals);
    }
    Json(ActivityOut {
        results: Results { days, labels },
        metadata: Totals {
            total_spend: usd(total.spend_nanos),
            total_prompt_tokens: total.prompt_tokens,
            total_completion_tokens: total.completion_tokens,
            total_tokens: total.total_tokens(),
            total_api_requests: total.requests,
            total_successful_requests: total.successful_requests,
            total_failed_requests: total.failed_requests,
            total_cache_read_input_tokens: 0,
            total_cache_creation_input_tokens: 0,
            page: 1,
            total_pages: 1,
            has_more: false,
        },
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spent(n: i64) -> SpendTotals {
        SpendTotals {
            spend_nanos: n,
            requests: 1,
            ..Default::default()
        }
    }

    /// Across days (and scopes), the keys kept are the range's top spenders, not each day's.
    #[test]
    fn the_key_breakdown_keeps_the_ranges_top_keys() {
        let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
        let d1 = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let d2 = d1.succ_opt().unwrap();
        for (day, key, n) in [(d1, "a", 5), (d1, "b", 1), (d2, "b", 2), (d2, "c", 4)] {
            days.entry(day)
                .or_default()
                .api_keys
                .insert(key.to_string(), spent(n));
        }
        keep_top_keys(&mut days, 2);
        let kept: Vec<Vec<&str>> = days
            .values()
            .map(|d| d.api_keys.keys().map(String::as_str).collect())
            .collect();
        assert_eq!(kept, [vec!["a"], vec!["c"]]);
    }

    #[test]
    fn a_range_ending_on_the_local_today_reaches_the_utc_today() {
        use chrono::TimeZone;
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        // 02:00 UTC on the 5th is still the evening of the 4th at UTC-8 (offset 480).
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 5, 2, 0, 0).unwrap();
        assert_eq!(end_with_current_utc_day(day(4), 480, now), day(5));
        // A past range is never moved; east of UTC the UTC day is not ahead.
        assert_eq!(end_with_current_utc_day(day(3), 480, now), day(3));
        assert_eq!(end_with_current_utc_day(day(5), -600, now), day(5));
        // Later in the UTC day, the local day caught up.
        let noon = chrono::Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        assert_eq!(end_with_current_utc_day(day(4), 480, noon), day(4));
    }

    /// The query as a handler reads it: the offset moves the end only with the flag, and only
    /// a real offset is taken, at any hour of the UTC day.
    #[test]
    fn the_query_takes_the_offset_with_the_flag() {
        use chrono::TimeZone;
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        let q = |tz: Option<&str>, flag: Option<&str>| ActivityQuery {
            start_date: Some("2026-12-04".into()),
            end_date: Some("2026-12-04".into()),
            timezone: tz.map(str::to_string),
            include_current_utc_day: flag.map(str::to_string),
            ..ActivityQuery::default()
        };
        for hour in [0, 6, 13, 14, 20, 23] {
            let now = chrono::Utc
                .with_ymd_and_hms(2026, 12, 5, hour, 30, 0)
                .unwrap();
            // A caller 14 hours behind UTC still has the 4th as today until 14:00 UTC.
            let moved = if hour < 14 { day(5) } else { day(4) };
            let got = dates(&q(Some("840"), Some("true")), now).unwrap();
            assert_eq!(got, (day(4), moved), "at {hour}:30");
            assert_eq!(dates(&q(Some("840"), None), now).unwrap(), (day(4), day(4)));
            assert_eq!(
                dates(&q(None, Some("true")), now).unwrap(),
                (day(4), day(4))
            );
            assert!(dates(&q(Some("841"), Some("true")), now).is_err());
            assert!(dates(&q(Some("west"), None), now).is_err());
        }
    }
}
