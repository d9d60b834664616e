//! The Usage page: spend, calls and tokens over a range, per model, key, team or user.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::NaiveDate;
use serde_json::{json, Value};
use tollgate_store::users::UserFilter;
use tollgate_store::{
    DailySpend, SpendGroup, SpendLogFilter, SpendScope, SpendStatus, SpendTotals,
};

use crate::principal::Principal;
use crate::state::WebState;
use crate::views::ts;

use super::format::{dollars, latency, thousands};
use super::keys::can_create_keys;
use super::{base_ctx, error_page, merge, render, signed_in};

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

fn totals_ctx(t: &SpendTotals) -> Value {
    json!({
        "spend": dollars(t.spend_nanos),
        "tokens": thousands(t.prompt_tokens.saturating_add(t.completion_tokens)),
        "prompt_tokens": thousands(t.prompt_tokens),
        "completion_tokens": thousands(t.completion_tokens),
        "requests": thousands(t.requests),
        "requests_n": t.requests,
        "failed": thousands(t.failed_requests),
        "failed_n": t.failed_requests,
    })
}

/// Chart geometry in the SVG's own units: one 10-unit slot per day, bars 100 units tall at most.
const SLOT: i64 = 10;
const CHART_H: f64 = 100.0;

/// One bar per day in the range (days without spend are gaps), scaled to the highest day.
fn chart_ctx(daily: &[DailySpend], from: NaiveDate, days: u32) -> Value {
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
        bars.push(json!({
            "x": i64::from(i) * SLOT + 1, "w": SLOT - 2,
            "y": format!("{:.2}", CHART_H - h), "h": format!("{h:.2}"),
            "title": format!("{}: {} · {} {}", day.format("%b %-d"), dollars(t.spend_nanos),
                thousands(t.requests), if t.requests == 1 { "request" } else { "requests" }),
        }));
    }
    let last = from
        .checked_add_days(chrono::Days::new(u64::from(days.saturating_sub(1))))
        .unwrap_or(from);
    json!({
        "width": i64::from(days) * SLOT,
        "height": CHART_H,
        "bars": bars,
        "max_label": dollars(daily.iter().map(|d| d.totals.spend_nanos).max().unwrap_or(0)),
        "first_label": from.format("%b %-d").to_string(),
        "last_label": last.format("%b %-d").to_string(),
        "days": daily.iter().map(|d| json!({
            "day": d.day.format("%Y-%m-%d").to_string(),
            "spend": dollars(d.totals.spend_nanos),
            "requests": thousands(d.totals.requests),
            "tokens": thousands(d.totals.prompt_tokens.saturating_add(d.totals.completion_tokens)),
        })).collect::<Vec<_>>(),
    })
}

/// How a key is named on the page: its alias and masked name, never its hash or secret.
async fn key_label(state: &WebState, cache: &mut HashMap<String, Value>, hash: &str) -> Value {
    if let Some(v) = cache.get(hash) {
        return v.clone();
    }
    let v = if hash == state.master_key.hash_hex() {
        json!({"alias": "Master key", "key_name": null, "gone": false})
    } else {
        match state.store.get_key(hash).await.ok().flatten() {
            Some(k) => json!({"alias": k.key_alias, "key_name": k.key_name, "gone": false}),
            None if hash.is_empty() => json!({"alias": "No key", "key_name": null, "gone": true}),
            None => json!({"alias": "Deleted key", "key_name": null, "gone": true}),
        }
    };
    cache.insert(hash.to_string(), v.clone());
    v
}

/// The select's choices for admins: the whole gateway, then users and teams.
async fn usage_choices(state: &WebState, selected: &str) -> Value {
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
    let mut users: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({"value": format!("user:{}", u.user_id),
                   "label": u.user_email.clone().unwrap_or_else(|| u.user_id.clone())})
        })
        .collect();
    let teams: Vec<Value> = teams
        .iter()
        .map(|t| {
            json!({"value": format!("team:{}", t.team_id),
                   "label": t.team_alias.clone().unwrap_or_else(|| t.team_id.clone())})
        })
        .collect();
    // A chosen user past the list's end (or with spend but no row any more) stays selectable.
    if selected.starts_with("user:") && !users.iter().any(|u| u["value"] == selected) {
        users.push(json!({"value": selected, "label": selected.trim_start_matches("user:")}));
    }
    json!({"users": users, "teams": teams})
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
    let models: Vec<Value> = by_model
        .iter()
        .map(|b| {
            json!({"name": if b.name.is_empty() { "(unknown)" } else { b.name.as_str() },
                   "share": share(b.totals.spend_nanos), "totals": totals_ctx(&b.totals)})
        })
        .collect();
    let mut labels = HashMap::new();
    let mut keys = Vec::new();
    for b in &by_key {
        let label = key_label(&state, &mut labels, &b.name).await;
        keys.push(json!({"key": label, "share": share(b.totals.spend_nanos), "totals": totals_ctx(&b.totals)}));
    }
    let mut requests = Vec::new();
    for r in &recent {
        let label = key_label(&state, &mut labels, &r.api_key).await;
        requests.push(json!({
            "at": ts(&r.start_time), "model": r.model_group, "key": label,
            "prompt_tokens": thousands(r.prompt_tokens), "completion_tokens": thousands(r.completion_tokens),
            "tokens": thousands(r.total_tokens()), "estimated": r.usage_estimated,
            "cost": dollars(r.spend_nanos), "priced": r.priced,
            "ok": r.status == SpendStatus::Success, "http_status": r.http_status,
            "latency": latency(r.request_duration_ms), "request_id": r.request_id,
        }));
    }
    let choices = if p.role.sees_all() {
        usage_choices(&state, &selected).await
    } else {
        Value::Null
    };
    let scope_label = if selected.is_empty() {
        None
    } else {
        choices["users"]
            .as_array()
            .into_iter()
            .chain(choices["teams"].as_array())
            .flatten()
            .find(|c| c["value"] == selected.as_str())
            .and_then(|c| c["label"].as_str().map(str::to_string))
    };
    render(
        &state,
        StatusCode::OK,
        "usage.html",
        &merge(
            base_ctx(&p, "usage", None),
            json!({
                "days": days, "ranges": USAGE_RANGES, "scope": selected, "scope_label": scope_label,
                "scope_kind": selected.split(':').next().unwrap_or_default(),
                "choices": choices,
                "from": from.format("%Y-%m-%d").to_string(), "to": to.format("%Y-%m-%d").to_string(),
                "totals": totals_ctx(&totals), "chart": chart_ctx(&daily, from, days),
                "by_model": models, "by_key": keys, "recent": requests,
                "can_create_keys": can_create_keys(&p),
            }),
        ),
    )
}
