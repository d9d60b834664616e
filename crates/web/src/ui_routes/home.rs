//! The Home page: who is signed in, and for the admin roles the gateway's month so far.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Datelike;
use serde::Serialize;
use tollgate_store::users::UserFilter;
use tollgate_store::SpendScope;

use crate::state::WebState;

use super::format::{budget_money, dollars, thousands};
use super::{render, signed_in, Page};

pub(super) async fn home(State(state): State<Arc<WebState>>, headers: HeaderMap) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    let stats = if p.role.sees_all() {
        let users = state
            .store
            .list_users(&UserFilter {
                page_size: 1,
                ..UserFilter::default()
            })
            .await
            .map(|(_, t)| t)
            .ok();
        let teams = state.store.list_teams(None).await.map(|t| t.len()).ok();
        let pending = state
            .store
            .list_invitations(None)
            .await
            .map(|v| {
                v.iter()
                    .filter(|i| !i.is_accepted && i.expires_at > chrono::Utc::now())
                    .count()
            })
            .ok();
        Stats {
            users,
            teams,
            invitations_pending: pending,
        }
    } else {
        Stats::default()
    };
    // The admin login acts as PROXY_ADMIN_ID, which may have no user row: then no budget card.
    let own = state
        .store
        .get_user(&p.user_id)
        .await
        .ok()
        .flatten()
        .map(|u| budget_ctx(u.spend_nanos, u.max_budget_nanos));
    let gateway = if p.role.sees_all() {
        gateway_month_ctx(&state).await
    } else {
        None
    };
    let ctx = HomePage {
        stats,
        own_spend: own,
        gateway,
    };
    render(
        &state,
        StatusCode::OK,
        "home.html",
        &Page::new(&p, "home", None, ctx),
    )
}

#[derive(Serialize)]
struct HomePage {
    stats: Stats,
    /// The caller's own spend and budget (none for an admin login without a user row).
    own_spend: Option<Budget>,
    gateway: Option<GatewayMonth>,
}

/// Counts for the admin roles; `None` for everyone else, or when unreadable.
#[derive(Serialize, Default)]
struct Stats {
    users: Option<i64>,
    teams: Option<usize>,
    invitations_pending: Option<usize>,
}

#[derive(Serialize)]
struct GatewayMonth {
    month: String,
    spend_label: String,
    requests: String,
    requests_n: i64,
    tokens: String,
}

/// Spend against a budget, for the bar the Home page draws.
#[derive(Serialize)]
struct Budget {
    spend_label: String,
    budget_label: Option<String>,
    budget_pct: Option<i64>,
    over: bool,
}

/// The whole gateway's spend this month (UTC), for admins' Home.
async fn gateway_month_ctx(state: &WebState) -> Option<GatewayMonth> {
    let today = chrono::Utc::now().date_naive();
    let first = today.with_day(1).unwrap_or(today);
    match state
        .store
        .spend_totals(&SpendScope::default(), first, today)
        .await
    {
        Ok(t) => Some(GatewayMonth {
            month: today.format("%B %Y").to_string(),
            spend_label: dollars(t.spend_nanos),
            requests: thousands(t.requests),
            requests_n: t.requests,
            tokens: thousands(t.total_tokens()),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "home: gateway spend could not be read");
            None
        }
    }
}

/// Spend against a budget, for the bar the Home page draws.
fn budget_ctx(spend_nanos: i64, max_budget_nanos: Option<i64>) -> Budget {
    let pct = match max_budget_nanos {
        Some(b) if b > 0 => Some(
            ((spend_nanos as f64 / b as f64) * 100.0)
                .clamp(0.0, 100.0)
                .round() as i64,
        ),
        _ => None,
    };
    Budget {
        spend_label: dollars(spend_nanos),
        budget_label: max_budget_nanos.map(budget_money),
        budget_pct: pct,
        over: max_budget_nanos.is_some_and(|b| spend_nanos >= b),
    }
}
