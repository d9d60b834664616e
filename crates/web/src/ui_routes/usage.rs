//! The Usage page: spend, calls and tokens over a range, per model, key, team or user.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::NaiveDate;
use serde::Serialize;
use tollgate_store::users::UserFilter;
use tollgate_store::{
    DailySpend, SpendGroup, SpendLogFilter, SpendScope, SpendStatus, SpendTotals,
};

use crate::principal::Principal;
use crate::state::WebState;
use crate::views::ts;

use super::format::{dollars, latency, thousands};
use super::keys::can_create_keys;
use super::{error_page, render, signed_in, Page};

/// The ranges the Usage page offers, in days (the last N UTC days, today included).
const USAGE_RANGES: &[u32] = &[7, 30, 90];
const USAGE_DEFAULT_DAYS: u32 = 30;
const BREAKDOWN_ROWS: u32 = 20;
const RECENT_ROWS: u32 = 25;

/// Whose usage the page shows. Admins (and view-only admins) choose any user or team, or the
/// whole gateway; everyone else sees their own, whatever the query says.
fn usage_scope(p: &Principal, q: &HashMap<String, String>) -> (SpendScope, String) {
    if !p.role.sees_all() {
        let scope = SpendScope {
            user_id: Some(p.user_id.clone()),
            ..SpendScope::default()
        };
        return (scope, String::new());
    }
    let chosen = q.get("scope").map(|s| s.trim()).unwrap_or_default();
    let mut scope = SpendScope::default();
    if let Some(id) = chosen.strip_prefix("user:").filter(|id| !id.is_empty()) {
        scope.user_id = Some(id.to_string());
    } else if let Some(id) = chosen.strip_prefix("team:").filter(|id| !id.is_empty()) {
        scope.team_id = Some(id.to_string());
    } else {
        return (scope, String::new());
    }
    (scope, chosen.to_string())
}

fn totals_ctx(t: &SpendTotals) -> Totals {
    Totals {
        spend: dollars(t.spend_nanos),
        tokens: thousands(t.prompt_tokens.saturating_add(t.completion_tokens)),
        prompt_tokens: thousands(t.prompt_tokens),
        completion_tokens: thousands(t.completion_tokens),
        requests: thousands(t.requests),
        requests_n: t.requests,
        failed: thousands(t.failed_requests),
        failed_n: t.failed_requests,
    }
}

/// Spend, tokens and requests as the page writes them (`_n`: the plain count, for plurals).
#[derive(Serialize)]
struct Totals {
    spend: String,
    tokens: String,
    prompt_tokens: String,
    completion_tokens: String,
    requests: String,
    requests_n: i64,
    failed: String,
    failed_n: i64,
}

/// Chart geometry in the SVG's own units: one 10-unit slot per day, bars 100 units tall at most.
const SLOT: i64 = 10;
const CHART_H: f64 = 100.0;

/// One bar per day in the range (days without spend are gaps), scaled to the highest day.
fn chart_ctx(daily: &[DailySpend], from: NaiveDate, days: u32) -> Chart {
    let by_day: HashMap<NaiveDate, &SpendTotals> =
        daily.iter().map(|d| (d.day, &d.totals)).collect();
    let max = daily
        .iter()
        .map(|d| d.totals.spend_nanos)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut bars = Vec::new();
    for i in 0..days {
        let Some(day) = from.checked_add_days(chrono::Days::new(u64::from(i))) else {
            break;
        };
        let Some(t) = by_day.get(&day) else { continue };
        if t.spend_nanos <= 0 && t.requests == 0 {
            continue;
        }
        // A day with requests but tiny spend still gets a visible sliver.
        let h = ((t.spend_nanos.max(0) as f64 / max as f64) * (CHART_H - 4.0)).max(1.0);
        bars.push(Bar {
            x: i64::from(i) * SLOT + 1,
            w: SLOT - 2,
            y: format!("{:.2}", CHART_H - h),
            h: format!("{h:.2}"),
            title: format!(
                "{}: {} · {} {}",
                day.format("%b %-d"),
                dollars(t.spend_nanos),
                thousands(t.requests),
                if t.requests == 1 {
                    "request"
                } else {
                    "requests"
                }
            ),
        });
    }
    let last = from
        .checked_add_days(chrono::Days::new(u64::from(days.saturating_sub(1))))
        .unwrap_or(from);
    Chart {
        width: i64::from(days) * SLOT,
        height: CHART_H,
        bars,
        max_label: dollars(
            daily
                .iter()
                .map(|d| d.totals.spend_nanos)
                .max()
                .unwrap_or(0),
        ),
        first_label: from.format("%b %-d").to_string(),
        last_label: last.format("%b %-d").to_string(),
        days: daily
            .iter()
            .map(|d| DayRow {
                day: d.day.format("%Y-%m-%d").to_string(),
                spend: dollars(d.totals.spend_nanos),
                requests: thousands(d.totals.requests),
                tokens: thousands(
                    d.totals
                        .prompt_tokens
                        .saturating_add(d.totals.completion_tokens),
                ),
            })
            .collect(),
    }
}

/// The daily spend chart (an SVG drawn by the template) and its table.
#[derive(Serialize)]
struct Chart {
    width: i64,
    height: f64,
    bars: Vec<Bar>,
    max_label: String,
    first_label: String,
    last_label: String,
    days: Vec<DayRow>,
}

#[derive(Serialize)]
struct Bar {
    x: i64,
    w: i64,
    y: String,
    h: String,
    title: String,
}

#[derive(Serialize)]
struct DayRow {
    day: String,
    spend: String,
    requests: String,
    tokens: String,
}

/// How a key is named on the page: its alias and masked name, never its hash or secret.
async fn key_label(
    state: &WebState,
    cache: &mut HashMap<String, KeyLabel>,
    hash: &str,
) -> KeyLabel {
    if let Some(v) = cache.get(hash) {
        return v.clone();
    }
    let named = |alias: &str, gone: bool| KeyLabel {
        alias: Some(alias.to_string()),
        key_name: None,
        gone,
    };
    let v = if hash == state.master_key.hash_hex() {
        named("Master key", false)
    } else {
        match state.store.get_key(hash).await.ok().flatten() {
            Some(k) => KeyLabel {
                alias: k.key_alias,
                key_name: Some(k.key_name),
                gone: false,
            },
            None if hash.is_empty() => named("No key", true),
            None => named("Deleted key", true),
        }
    };
    cache.insert(hash.to_string(), v.clone());
    v
}

#[derive(Serialize, Clone)]
struct KeyLabel {
    alias: Option<String>,
    key_name: Option<String>,
    /// Deleted, or no key at all.
    gone: bool,
}

/// The select's choices for admins: the whole gateway, then users and teams.
async fn usage_choices(state: &WebState, selected: &str) -> Choices {
    let users = state
        .store
        .list_users(&UserFilter {
            page_size: 500,
            ..UserFilter::default()
        })
        .await
        .map(|(u, _)| u)
        .unwrap_or_default();
    let teams = state.store.list_teams(None).await.unwrap_or_default();
    let mut users: Vec<Choice> = users
        .iter()
        .map(|u| Choice {
            value: format!("user:{}", u.user_id),
            label: u.user_email.clone().unwrap_or_else(|| u.user_id.clone()),
        })
        .collect();
    let teams: Vec<Choice> = teams
        .iter()
        .map(|t| Choice {
            value: format!("team:{}", t.team_id),
            label: t.team_alias.clone().unwrap_or_else(|| t.team_id.clone()),
        })
        .collect();
    // A chosen user past the list's end (or with spend but no row any more) stays selectable.
    if selected.starts_with("user:") && !users.iter().any(|u| u.value == selected) {
        users.push(Choice {
            value: selected.to_string(),
            label: selected.trim_start_matches("user:").to_string(),
        });
    }
    Choices { users, teams }
}

#[derive(Serialize)]
struct Choices {
    users: Vec<Choice>,
    teams: Vec<Choice>,
}

#[derive(Serialize)]
struct Choice {
    /// `user:<id>` or `team:<id>`.
    value: String,
    label: String,
}

pub(super) async fn usage_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    let days = q
        .get("days")
        .and_then(|d| d.trim().parse::<u32>().ok())
        .filter(|d| USAGE_RANGES.contains(d))
        .unwrap_or(USAGE_DEFAULT_DAYS);
    let (scope, selected) = usage_scope(&p, &q);
    let to = chrono::Utc::now().date_naive();
    let from = to
        .checked_sub_days(chrono::Days::new(u64::from(days - 1)))
        .unwrap_or(to);
    let since = from.and_time(chrono::NaiveTime::MIN).and_utc();
    let loaded = async {
        let daily = state.store.daily_spend(&scope, from, to).await?;
        let totals = state.store.spend_totals(&scope, from, to).await?;
        let by_model = state
            .store
            .spend_breakdown(&scope, from, to, SpendGroup::Model, BREAKDOWN_ROWS)
            .await?;
        let by_key = state
            .store
            .spend_breakdown(&scope, from, to, SpendGroup::Key, BREAKDOWN_ROWS)
            .await?;
        let recent = state
            .store
            .spend_logs_page(
                &SpendLogFilter {
                    scope: scope.clone(),
                    from: Some(since),
                    ..SpendLogFilter::default()
                },
                None,
                RECENT_ROWS,
            )
            .await?;
        Ok::<_, tollgate_store::StoreError>((daily, totals, by_model, by_key, recent))
    }
    .await;
    let (daily, totals, by_model, by_key, recent) = match loaded {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "usage page: spend could not be read");
            return error_page(
                &state,
                Some(&p),
                StatusCode::SERVICE_UNAVAILABLE,
                "Usage is unavailable",
                "The spend records could not be read just now. Reload the page in a moment.",
            );
        }
    };
    let total_spend = totals.spend_nanos.max(1) as f64;
    let share = |n: i64| ((n.max(0) as f64 / total_spend) * 100.0).round() as i64;
    let models: Vec<ModelShare> = by_model
        .iter()
        .map(|b| ModelShare {
            name: if b.name.is_empty() {
                "(unknown)".to_string()
            } else {
                b.name.clone()
            },
            share: share(b.totals.spend_nanos),
            totals: totals_ctx(&b.totals),
        })
        .collect();
    let mut labels = HashMap::new();
    let mut keys = Vec::new();
    for b in &by_key {
        let label = key_label(&state, &mut labels, &b.name).await;
        keys.push(KeyShare {
            key: label,
            share: share(b.totals.spend_nanos),
            totals: totals_ctx(&b.totals),
        });
    }
    let mut requests = Vec::new();
    for r in &recent {
        let label = key_label(&state, &mut labels, &r.api_key).await;
        requests.push(Recent {
            at: ts(&r.start_time),
            model: r.model_group.clone(),
            key: label,
            prompt_tokens: thousands(r.prompt_tokens),
            completion_tokens: thousands(r.completion_tokens),
            tokens: thousands(r.total_tokens()),
            estimated: r.usage_estimated,
            cost: dollars(r.spend_nanos),
            priced: r.priced,
            ok: r.status == SpendStatus::Success,
            http_status: r.http_status,
            latency: latency(r.request_duration_ms),
            request_id: r.request_id.clone(),
        });
    }
    let choices = if p.role.sees_all() {
        Some(usage_choices(&state, &selected).await)
    } else {
        None
    };
    let scope_label = if selected.is_empty() {
        None
    } else {
        choices.as_ref().and_then(|c| {
            c.users
                .iter()
                .chain(&c.teams)
                .find(|c| c.value == selected)
                .map(|c| c.label.clone())
        })
    };
    let ctx = UsagePage {
        days,
        ranges: USAGE_RANGES,
        scope_kind: selected.split(':').next().unwrap_or_default().to_string(),
        scope: selected,
        scope_label,
        choices,
        from: from.format("%Y-%m-%d").to_string(),
        to: to.format("%Y-%m-%d").to_string(),
        totals: totals_ctx(&totals),
        chart: chart_ctx(&daily, from, days),
        by_model: models,
        by_key: keys,
        recent: requests,
        can_create_keys: can_create_keys(&p),
    };
    render(
        &state,
        StatusCode::OK,
        "usage.html",
        &Page::new(&p, "usage", None, ctx),
    )
}

#[derive(Serialize)]
struct UsagePage {
    days: u32,
    ranges: &'static [u32],
    /// `user:<id>`, `team:<id>`, or empty for the caller's own (or the whole gateway's).
    scope: String,
    scope_label: Option<String>,
    scope_kind: String,
    /// The scope picker, for the admin roles.
    choices: Option<Choices>,
    from: String,
    to: String,
    totals: Totals,
    chart: Chart,
    by_model: Vec<ModelShare>,
    by_key: Vec<KeyShare>,
    recent: Vec<Recent>,
    can_create_keys: bool,
}

#[derive(Serialize)]
struct ModelShare {
    name: String,
    /// Percent of the range's spend.
    share: i64,
    totals: Totals,
}

#[derive(Serialize)]
struct KeyShare {
    key: KeyLabel,
    share: i64,
    totals: Totals,
}

/// One recent request.
#[derive(Serialize)]
struct Recent {
    at: String,
    model: String,
    key: KeyLabel,
    prompt_tokens: String,
    completion_tokens: String,
    tokens: String,
    estimated: bool,
    cost: String,
    priced: bool,
    ok: bool,
    http_status: i32,
    latency: String,
    request_id: String,
}
