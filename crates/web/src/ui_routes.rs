//! The web UI's routes: plain HTML forms, every state change a POST with the session's CSRF
//! token, every permission checked against the same route policy as the management API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use chrono::{Datelike, NaiveDate};
use serde_json::{json, Value};
use tollgate_domain::model_name::list_allows;
use tollgate_domain::policy::{decide, Decision};
use tollgate_domain::role::Role;
use tollgate_domain::NanoUsd;
use tollgate_proxy::ApiError;
use tollgate_store::audit::AuditFilter;
use tollgate_store::keys::{KeyFilter, KeyRow};
use tollgate_store::users::{UserFilter, UserPatch};
use tollgate_store::{
    DailySpend, SpendGroup, SpendLogFilter, SpendScope, SpendStatus, SpendTotals,
};

use crate::api::auth::form_fields;
use crate::api::client_ip;
use crate::api::{invitations as inv_api, keys as key_api, teams as team_api, users as user_api};
use crate::login::{authenticate, LoginError};
use crate::onboarding::{self, Checked, ClaimError};
use crate::principal::{csrf_matches, from_ui_request, Principal};
use crate::session::{clearing_cookie, same_origin_post, start};
use crate::state::WebState;
use crate::views::ts;

pub fn routes(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/login", get(login_page).post(login_submit))
        .route(
            "/ui/onboarding",
            get(onboarding_page).post(onboarding_submit),
        )
        .route("/ui/logout", post(logout))
        .route("/ui/users", get(users_page).post(users_create))
        .route("/ui/users/{id}/role", post(user_role))
        .route("/ui/users/{id}/invite", post(user_invite))
        .route(
            "/ui/users/{id}/delete",
            get(user_delete_confirm).post(user_delete),
        )
        .route("/ui/invitations", get(invitations_page))
        .route(
            "/ui/invitations/{hash}/delete",
            get(invitation_delete_confirm).post(invitation_delete),
        )
        .route("/ui/teams", get(teams_page).post(team_create))
        .route("/ui/teams/{id}", get(team_page))
        .route("/ui/teams/{id}/members", post(team_member_add))
        .route("/ui/teams/{id}/members/{uid}/role", post(team_member_role))
        .route(
            "/ui/teams/{id}/members/{uid}/delete",
            get(team_member_delete_confirm).post(team_member_delete),
        )
        .route(
            "/ui/teams/{id}/delete",
            get(team_delete_confirm).post(team_delete),
        )
        .route("/ui/audit", get(audit_page))
        .route("/ui/account", get(account_page))
        .route("/ui/account/password", post(account_password))
        .route("/ui/keys", get(keys_page).post(keys_create))
        .route(
            "/ui/keys/{token}/delete",
            get(key_delete_confirm).post(key_delete),
        )
        .route("/ui/usage", get(usage_page))
        .route("/ui/models", get(models_page))
        .route("/ui/static/{name}", get(static_file))
        .layer(axum::middleware::from_fn(plain_paths_only))
        .with_state(state)
}

/// Ids from the path end up inside other URLs (confirm pages post to them), so an encoded `/`,
/// `\` or `.` could retarget a form (`x%2F..%2Fusers%2Fvictim`). The UI's ids never need them.
async fn plain_paths_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let raw = req.uri().path().to_ascii_lowercase();
    if raw.contains("%2f")
        || raw.contains("%5c")
        || raw.contains("%2e")
        || raw.contains("/../")
        || raw.ends_with("/..")
    {
        return (StatusCode::BAD_REQUEST, "Bad path").into_response();
    }
    next.run(req).await
}

// ---- rendering ----------------------------------------------------------------------------

/// `?` for handlers whose failures are already pages (a redirect to login, a refusal page).
macro_rules! or_page {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(page) => return page,
        }
    };
}

/// `form-action` also governs where a form's redirect may go, so logout's redirect to
/// `PROXY_LOGOUT_URL` needs that origin listed.
fn content_security_policy(state: &WebState) -> String {
    let logout_origin = state
        .config
        .logout_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    // An SSO session's logout goes on to the provider's end-session endpoint.
    let sso_origins: String = state
        .sso
        .as_ref()
        .map(|s| s.form_origins())
        .unwrap_or_default()
        .iter()
        .map(|o| format!(" {o}"))
        .collect();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         object-src 'none'; form-action 'self'{logout_origin}{sso_origins}; frame-ancestors 'none'; \
         base-uri 'none'"
    )
}

/// Headers every page carries: a strict CSP (the pages have no inline script or style), no
/// caching of personal pages, and no Referer leaving with an invitation id in it.
fn page(state: &WebState, status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&content_security_policy(state))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'; object-src 'none'")),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

pub(crate) fn render(state: &WebState, status: StatusCode, name: &str, ctx: &Value) -> Response {
    match state.ui.render(name, ctx) {
        Ok(html) => page(state, status, html),
        Err(e) => {
            tracing::error!(error = %e, "page failed to render");
            page(
                state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>This page could not be shown.</p>"
                    .to_string(),
            )
        }
    }
}

pub(crate) fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub(crate) fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The context every signed-in page receives.
fn base_ctx(p: &Principal, nav: &str, flash: Option<(&str, String)>) -> Value {
    json!({
        "me": {"user_id": p.user_id, "email": p.email.clone().unwrap_or_else(|| p.user_id.clone()), "role": p.role.as_str(), "role_label": p.role.ui_label()},
        "csrf": p.csrf.clone().unwrap_or_default(),
        "flash": flash.map(|(kind, message)| json!({"kind": kind, "message": message})),
        "nav_active": nav,
        "can": {
            "manage_users": may(p, "POST", "/user/new"),
            "view_all": p.role.sees_all(),
            "write": p.role.can_write(),
        },
    })
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// The UI asks the same policy table as the API, for the API route an action corresponds to.
fn may(p: &Principal, method: &str, api_path: &str) -> bool {
    matches!(
        decide(method, api_path, p.role),
        Decision::Allow | Decision::AllowScoped | Decision::HandlerDecides
    )
}

pub(crate) fn error_page(
    state: &WebState,
    p: Option<&Principal>,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    let mut ctx = json!({"title": title, "message": message, "status": status.as_u16()});
    if let Some(p) = p {
        ctx = merge(base_ctx(p, "", None), ctx);
    }
    render(state, status, "error.html", &ctx)
}

fn denied(state: &WebState, p: &Principal) -> Response {
    error_page(
        state,
        Some(p),
        StatusCode::FORBIDDEN,
        "Not allowed",
        &format!("Your role ({}) can't do this.", p.role.ui_label()),
    )
}

/// Flash messages come from a fixed list, so a link can't make the page say anything else.
fn flash_for(q: &HashMap<String, String>) -> Option<(&'static str, String)> {
    let msg = match q.get("done").map(String::as_str)? {
        "user_deleted" => "The user was deleted.",
        "role_changed" => "The role was changed. The user's sessions have ended.",
        "invitation_revoked" => "The invitation was revoked.",
        "team_deleted" => "The team was deleted.",
        "member_removed" => "The member was removed.",
        "member_added" => "The member was added.",
        "member_updated" => "The member's role was changed.",
        "team_created" => "The team was created.",
        "password_changed" => "Your password was changed. Log in again with the new one.",
        "key_deleted" => "The key was deleted. It stops working at once.",
        _ => return None,
    };
    Some(("ok", msg.to_string()))
}

// ---- session helpers --------------------------------------------------------------------------

async fn signed_in(state: &WebState, headers: &HeaderMap) -> Result<Principal, Response> {
    from_ui_request(state, headers)
        .await
        .ok_or_else(|| redirect("/ui/login"))
}

/// A page that stands for the API route `method api_path`: signed in, and the route policy
/// lets the role use it.
async fn page_for(
    state: &WebState,
    headers: &HeaderMap,
    method: &str,
    api_path: &str,
) -> Result<Principal, Response> {
    let p = signed_in(state, headers).await?;
    if may(&p, method, api_path) {
        Ok(p)
    } else {
        Err(denied(state, &p))
    }
}

/// A form that stands for the API route `method api_path`: [`form_post`]'s checks, and the
/// route policy lets the role use it.
async fn form_for(
    state: &WebState,
    headers: &HeaderMap,
    body: &Bytes,
    method: &str,
    api_path: &str,
) -> Result<(Principal, HashMap<String, String>), Response> {
    let (p, f) = form_post(state, headers, body).await?;
    if may(&p, method, api_path) {
        Ok((p, f))
    } else {
        Err(denied(state, &p))
    }
}

/// A state-changing form: signed in, same origin, and carrying this session's CSRF token.
async fn form_post(
    state: &WebState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Principal, HashMap<String, String>), Response> {
    let p = signed_in(state, headers).await?;
    let f = form_fields(body);
    if !same_origin_post(state, headers) || !csrf_matches(&p, f.get("csrf").map(String::as_str)) {
        return Err(error_page(state, Some(&p), StatusCode::FORBIDDEN, "Request refused", "This form was not sent from this site's own page (its security token is missing or stale). Reload the page and try again."));
    }
    Ok((p, f))
}

fn api_message(e: &ApiError) -> String {
    e.message.clone()
}

// ---- public pages -----------------------------------------------------------------------------

async fn home(State(state): State<Arc<WebState>>, headers: HeaderMap) -> Response {
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
        json!({"users": users, "teams": teams, "invitations_pending": pending})
    } else {
        json!({"users": null, "teams": null, "invitations_pending": null})
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
        Value::Null
    };
    render(
        &state,
        StatusCode::OK,
        "home.html",
        &merge(
            base_ctx(&p, "home", None),
            json!({"stats": stats, "own_spend": own, "gateway": gateway}),
        ),
    )
}

/// The whole gateway's spend this month (UTC), for admins' Home.
async fn gateway_month_ctx(state: &WebState) -> Value {
    let today = chrono::Utc::now().date_naive();
    let first = today.with_day(1).unwrap_or(today);
    match state
        .store
        .spend_totals(&SpendScope::default(), first, today)
        .await
    {
        Ok(t) => json!({
            "month": today.format("%B %Y").to_string(),
            "spend_label": dollars(t.spend_nanos),
            "requests": thousands(t.requests),
            "requests_n": t.requests,
            "tokens": thousands(t.total_tokens()),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "home: gateway spend could not be read");
            Value::Null
        }
    }
}

/// Spend against a budget, for the bar the Home and Keys pages draw.
fn budget_ctx(spend_nanos: i64, max_budget_nanos: Option<i64>) -> Value {
    let pct = match max_budget_nanos {
        Some(b) if b > 0 => Some(
            ((spend_nanos as f64 / b as f64) * 100.0)
                .clamp(0.0, 100.0)
                .round() as i64,
        ),
        _ => None,
    };
    json!({
        "spend_label": dollars(spend_nanos),
        "budget_label": max_budget_nanos.map(budget_money),
        "budget_pct": pct,
        "over": max_budget_nanos.is_some_and(|b| spend_nanos >= b),
    })
}

/// A budget: `$10.00` when it is whole cents, else as many digits as [`dollars`] needs.
fn budget_money(nanos: i64) -> String {
    if nanos % 10_000_000 == 0 {
        money(NanoUsd(nanos).to_usd(), 2)
    } else {
        dollars(nanos)
    }
}

/// Money as `$0.0123`: four decimals, more when a non-zero amount would otherwise read as zero.
fn dollars(nanos: i64) -> String {
    let usd = NanoUsd(nanos).to_usd();
    if nanos == 0 {
        "$0.00".to_string()
    } else if nanos.unsigned_abs() >= 100_000 {
        format!("${usd:.4}")
    } else {
        let s = format!("{usd:.9}");
        let t = s.trim_end_matches('0');
        let places = t.split('.').nth(1).map_or(0, str::len);
        if places < 6 {
            format!("${usd:.6}")
        } else {
            format!("${t}")
        }
    }
}

async fn login_page(State(state): State<Arc<WebState>>, headers: HeaderMap) -> Response {
    if from_ui_request(&state, &headers).await.is_some() {
        return redirect("/ui");
    }
    render(
        &state,
        StatusCode::OK,
        "login.html",
        &login_ctx(&state, None, None),
    )
}

/// The sign-in page: the password form, the provider's button, or both.
fn login_ctx(state: &WebState, error: Option<&str>, email: Option<&str>) -> Value {
    json!({
        "error": error,
        "email": email,
        "csrf": "",
        "sso": state.sso.as_ref().map(|s| json!({"label": s.config.label})),
        "password_login": state.config.password_login,
    })
}

async fn login_submit(
    State(state): State<Arc<WebState>>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = form_fields(&body);
    let email = f.get("username").cloned().unwrap_or_default();
    let fail = |status: StatusCode, msg: &str| {
        render(
            &state,
            status,
            "login.html",
            &login_ctx(&state, Some(msg), Some(&email)),
        )
    };
    if !same_origin_post(&state, &headers) {
        return fail(
            StatusCode::FORBIDDEN,
            "This sign-in form was sent from another site and was refused.",
        );
    }
    let pw = f.get("password").cloned().unwrap_or_default();
    let ip = client_ip(&state, ci.as_ref().map(|e| &e.0), &headers);
    match authenticate(&state, &email, &pw, ip).await {
        Ok(l) => match start(&state, &l.user_id, &headers).await {
            Ok(s) => with_cookie(redirect("/ui"), &s.set_cookie),
            Err(e) => fail(e.status, &api_message(&e)),
        },
        Err(LoginError::Invalid) => fail(
            StatusCode::UNAUTHORIZED,
            "The email or password is not correct.",
        ),
        Err(LoginError::Throttled(d)) => with_retry_after(
            fail(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many failed sign-ins. Wait {} and try again.",
                    wait_text(d)
                ),
            ),
            d,
        ),
        Err(LoginError::Busy(d)) => with_retry_after(
            fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "Many sign-ins are being checked right now. Wait a few seconds and try again.",
            ),
            d,
        ),
        Err(LoginError::Unavailable(e)) => fail(e.status, &api_message(&e)),
    }
}

async fn onboarding_page(
    State(state): State<Arc<WebState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let id = q
        .get("id")
        .or_else(|| q.get("invitation_id"))
        .cloned()
        .or_else(|| {
            q.get("token")
                .and_then(|t| crate::api::onboarding::invitation_from_token(&state, t))
        })
        .unwrap_or_default();
    let min_len = state.config.password_policy.min_len();
    match onboarding::check(&state, &id).await {
        Ok(Checked::Usable(_, user)) => render(
            &state,
            StatusCode::OK,
            "onboarding.html",
            &json!({"state": "ok", "message": "", "email": user.user_email.unwrap_or(user.user_id), "invitation_id": id, "error": null, "min_len": min_len, "csrf": ""}),
        ),
        Ok(Checked::Unusable(p)) => render(
            &state,
            StatusCode::NOT_FOUND,
            "onboarding.html",
            &json!({"state": "invalid", "message": problem_text(p), "email": "", "invitation_id": "", "error": null, "min_len": min_len, "csrf": ""}),
        ),
        Err(e) => error_page(
            &state,
            None,
            e.status,
            "Something went wrong",
            &api_message(&e),
        ),
    }
}

fn problem_text(p: onboarding::Problem) -> &'static str {
    match p {
        onboarding::Problem::Unknown => "This invitation link is not valid. It may have been mistyped or revoked. Ask your administrator for a new one.",
        onboarding::Problem::Expired => "This invitation link has expired (links are valid for 7 days). Ask your administrator for a new one.",
        onboarding::Problem::Used => "This invitation link has already been used. Sign in with your email and password instead.",
        onboarding::Problem::UserMissing => "The account this invitation was for no longer exists. Ask your administrator.",
    }
}

async fn onboarding_submit(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = form_fields(&body);
    let id = f.get("invitation_id").cloned().unwrap_or_default();
    let pw = f.get("password").cloned().unwrap_or_default();
    let confirm = f.get("password_confirm").cloned().unwrap_or_default();
    let min_len = state.config.password_policy.min_len();
    let email = match onboarding::check(&state, &id).await {
        Ok(Checked::Usable(_, u)) => u.user_email.unwrap_or(u.user_id),
        _ => String::new(),
    };
    let again = |msg: &str| {
        render(
            &state,
            StatusCode::BAD_REQUEST,
            "onboarding.html",
            &json!({"state": "ok", "message": "", "email": email, "invitation_id": id, "error": msg, "min_len": min_len, "csrf": ""}),
        )
    };
    if !same_origin_post(&state, &headers) {
        return again("This form was sent from another site and was refused.");
    }
    if pw != confirm {
        return again("The two passwords are not the same.");
    }
    match onboarding::claim(&state, &id, &pw).await {
        Ok(user) => match start(&state, &user.user_id, &headers).await {
            Ok(s) => with_cookie(redirect("/ui"), &s.set_cookie),
            Err(e) => again(&api_message(&e)),
        },
        Err(ClaimError::WeakPassword(m)) => again(&m),
        Err(ClaimError::Unusable(p)) => render(
            &state,
            StatusCode::GONE,
            "onboarding.html",
            &json!({"state": "invalid", "message": problem_text(p), "email": "", "invitation_id": "", "error": null, "min_len": min_len, "csrf": ""}),
        ),
        Err(ClaimError::Busy(d)) => with_retry_after(
            render(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "onboarding.html",
                &json!({"state": "ok", "message": "", "email": email, "invitation_id": id, "error": "Many passwords are being set or checked right now. Wait a few seconds and submit again.", "min_len": min_len, "csrf": ""}),
            ),
            d,
        ),
        Err(ClaimError::Failed(e)) => again(&api_message(&e)),
    }
}

/// "N seconds" under two minutes, else whole minutes (rounded up).
fn wait_text(d: std::time::Duration) -> String {
    let secs = crate::login::whole_seconds(d);
    if secs < 120 {
        format!("{secs} seconds")
    } else {
        format!("{} minutes", secs.div_ceil(60))
    }
}

fn with_retry_after(mut r: Response, d: std::time::Duration) -> Response {
    if let Ok(v) = HeaderValue::from_str(&crate::login::whole_seconds(d).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

async fn logout(State(state): State<Arc<WebState>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = state
        .config
        .logout_url
        .clone()
        .unwrap_or_else(|| "/ui/login".to_string());
    let (p, _) = match form_post(&state, &headers, &body).await {
        Ok(x) => x,
        // Not signed in any more: just go where logout goes.
        Err(_) if from_ui_request(&state, &headers).await.is_none() => {
            return with_cookie(redirect(&target), &clearing_cookie(&state, &headers))
        }
        Err(r) => return r,
    };
    let mut target = target;
    if let Some(h) = p.session_hash() {
        if let Some(end) = crate::sso::end_session_url(&state, h, &headers).await {
            target = end;
        }
        let _ = state.store.delete_session(h).await;
    }
    with_cookie(redirect(&target), &clearing_cookie(&state, &headers))
}

// ---- users ------------------------------------------------------------------------------------

fn roles_ctx() -> Value {
    Value::Array(
        Role::ALL
            .iter()
            .map(|r| json!({"value": r.as_str(), "label": r.ui_label()}))
            .collect(),
    )
}

async fn users_ctx(state: &WebState, p: &Principal, q: &HashMap<String, String>) -> Value {
    let page = q
        .get("page")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let search = q.get("q").cloned().unwrap_or_default();
    let role = q.get("role").cloned().unwrap_or_default();
    let filter = UserFilter {
        role: Some(role.clone()).filter(|r| !r.is_empty()),
        email_contains: Some(search.clone()).filter(|s| !s.is_empty()),
        user_ids: None,
        page,
        page_size: 25,
    };
    let (users, total) = state.store.list_users(&filter).await.unwrap_or_default();
    let mut rows = Vec::new();
    for u in &users {
        let has_password = state
            .store
            .get_password_hash(&u.user_id)
            .await
            .ok()
            .flatten()
            .is_some();
        rows.push(json!({
            "user_id": u.user_id, "email": u.user_email, "alias": u.user_alias, "role": u.user_role,
            "role_label": Role::parse(&u.user_role).map(|r| r.ui_label()).unwrap_or(""),
            "created_at": ts(&u.created_at), "has_password": has_password,
        }));
    }
    merge(
        base_ctx(p, "users", flash_for(q)),
        json!({
            "users": rows, "q": search, "role_filter": role, "page": page,
            "total_pages": (total as u64).div_ceil(25).max(1), "total": total,
            "roles": roles_ctx(), "form": {"email": "", "role": "internal_user", "errors": {"email": null, "role": null}},
            "created": null, "smtp_enabled": state.mail.is_some(),
        }),
    )
}

async fn users_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "GET", "/user/list").await);
    render(
        &state,
        StatusCode::OK,
        "users.html",
        &users_ctx(&state, &p, &q).await,
    )
}

async fn users_create(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_for(&state, &headers, &body, "POST", "/user/new").await);
    let email = f.get("email").cloned().unwrap_or_default();
    let role = f
        .get("role")
        .cloned()
        .unwrap_or_else(|| "internal_user".to_string());
    let req = user_api::NewUserRequest {
        user_email: Some(email.clone()),
        user_role: Some(role.clone()),
        ..Default::default()
    };
    let mut ctx = users_ctx(&state, &p, &HashMap::new()).await;
    match user_api::create_user(&state, &p, &req).await {
        Ok(user) => {
            let created = invite_panel(
                &state,
                &p,
                &user.user_id,
                &headers,
                f.contains_key("send_email"),
            )
            .await;
            ctx = users_ctx(&state, &p, &HashMap::new()).await;
            ctx["created"] = created;
            ctx["flash"] =
                json!({"kind": "ok", "message": format!("User {} was created.", email.trim())});
            render(&state, StatusCode::OK, "users.html", &ctx)
        }
        Err(e) => {
            let field = if e.param.as_deref() == Some("user_role") {
                "role"
            } else {
                "email"
            };
            ctx["form"] =
                json!({"email": email, "role": role, "errors": {"email": null, "role": null}});
            ctx["form"]["errors"][field] = json!(api_message(&e));
            render(&state, StatusCode::BAD_REQUEST, "users.html", &ctx)
        }
    }
}

/// Creates an invitation (and emails it when asked) for the panel that shows the link once.
async fn invite_panel(
    state: &WebState,
    p: &Principal,
    user_id: &str,
    headers: &HeaderMap,
    send: bool,
) -> Value {
    let user = state.store.get_user(user_id).await.ok().flatten();
    let email = user
        .as_ref()
        .and_then(|u| u.user_email.clone())
        .unwrap_or_default();
    match inv_api::create_for_user(state, p, user_id, headers).await {
        Ok(c) => {
            let (emailed, email_error) = match (send, &user) {
                (true, Some(u)) => {
                    let outcome = crate::mail::send_invitation(state, u, &c.link, &c.row, p).await;
                    (
                        Some(matches!(outcome, crate::mail::MailOutcome::Sent)),
                        outcome.error(),
                    )
                }
                _ => (None, None),
            };
            json!({"user_id": user_id, "email": email, "invite_link": c.link, "emailed": emailed, "email_error": email_error})
        }
        Err(e) => {
            json!({"user_id": user_id, "email": email, "invite_link": null, "emailed": null, "email_error": api_message(&e)})
        }
    }
}

async fn user_invite(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    if !may(&p, "POST", "/invitation/new") || !p.role.can_write() {
        return denied(&state, &p);
    }
    let created = invite_panel(&state, &p, &id, &headers, f.contains_key("send_email")).await;
    let mut ctx = users_ctx(&state, &p, &HashMap::new()).await;
    ctx["created"] = created;
    render(&state, StatusCode::OK, "users.html", &ctx)
}

async fn user_role(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    if !may(&p, "POST", "/user/update") || p.role != Role::ProxyAdmin {
        return denied(&state, &p);
    }
    let Some(role) = f.get("role").and_then(|r| Role::parse(r)) else {
        return error_page(
            &state,
            Some(&p),
            StatusCode::BAD_REQUEST,
            "Unknown role",
            "Choose one of the listed roles.",
        );
    };
    if id == p.user_id {
        return error_page(
            &state,
            Some(&p),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "You can't change your own role.",
        );
    }
    let patch = UserPatch {
        user_role: Some(role.as_str().to_string()),
        ..UserPatch::default()
    };
    match state.store.update_user(&id, &patch).await {
        Ok(Some((before, after))) => {
            if before.user_role != after.user_role {
                user_api::role_changed(&state, &id).await;
            }
            crate::audit_log::record(
                &state,
                &p,
                "user.update",
                "user",
                Some(&id),
                Some(crate::views::user(&before)),
                Some(crate::views::user(&after)),
            )
            .await;
            redirect("/ui/users?done=role_changed")
        }
        Ok(None) => error_page(
            &state,
            Some(&p),
            StatusCode::NOT_FOUND,
            "Not found",
            "That user does not exist.",
        ),
        Err(e) => error_page(
            &state,
            Some(&p),
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again",
            &e.to_string(),
        ),
    }
}

fn confirm(
    state: &WebState,
    p: &Principal,
    title: &str,
    message: &str,
    action: &str,
    label: &str,
    cancel: &str,
) -> Response {
    render(
        state,
        StatusCode::OK,
        "confirm.html",
        &merge(
            base_ctx(p, "", None),
            json!({"title": title, "message": message, "action_url": action, "confirm_label": label, "cancel_url": cancel}),
        ),
    )
}

async fn user_delete_confirm(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "POST", "/user/delete").await);
    let who = state
        .store
        .get_user(&id)
        .await
        .ok()
        .flatten()
        .and_then(|u| u.user_email)
        .unwrap_or(id.clone());
    confirm(
        &state,
        &p,
        "Delete user",
        &format!("Delete {who}? Their sessions, invitations and team memberships go with them."),
        &format!("/ui/users/{id}/delete"),
        "Delete user",
        "/ui/users",
    )
}

async fn user_delete(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, _) = or_page!(form_for(&state, &headers, &body, "POST", "/user/delete").await);
    match user_api::delete_users(&state, &p, std::slice::from_ref(&id)).await {
        Ok(_) => redirect("/ui/users?done=user_deleted"),
        Err(e) => error_page(&state, Some(&p), e.status, "Not deleted", &api_message(&e)),
    }
}

// ---- invitations ------------------------------------------------------------------------------

async fn invitations_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "GET", "/invitation/info").await);
    let now = chrono::Utc::now();
    let rows = state.store.list_invitations(None).await.unwrap_or_default();
    let mut out = Vec::new();
    for r in rows {
        let email = state
            .store
            .get_user(&r.user_id)
            .await
            .ok()
            .flatten()
            .and_then(|u| u.user_email);
        let status = if r.is_accepted {
            "accepted"
        } else if r.expires_at <= now {
            "expired"
        } else {
            "pending"
        };
        out.push(json!({"id_hash": r.id_hash, "user_id": r.user_id, "email": email, "status": status, "expires_at": ts(&r.expires_at), "created_at": ts(&r.created_at), "created_by": r.created_by}));
    }
    render(
        &state,
        StatusCode::OK,
        "invitations.html",
        &merge(
            base_ctx(&p, "invitations", flash_for(&q)),
            json!({"invitations": out, "new_link": null}),
        ),
    )
}

async fn invitation_delete_confirm(
    State(state): State<Arc<WebState>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "POST", "/invitation/delete").await);
    confirm(
        &state,
        &p,
        "Revoke invitation",
        "Revoke this invitation? Its link stops working at once.",
        &format!("/ui/invitations/{hash}/delete"),
        "Revoke",
        "/ui/invitations",
    )
}

async fn invitation_delete(
    State(state): State<Arc<WebState>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, _) = or_page!(form_for(&state, &headers, &body, "POST", "/invitation/delete").await);
    match inv_api::delete_by_hash(&state, &p, &hash).await {
        Ok(_) => redirect("/ui/invitations?done=invitation_revoked"),
        Err(e) => error_page(&state, Some(&p), e.status, "Not revoked", &api_message(&e)),
    }
}

// ---- teams ------------------------------------------------------------------------------------

async fn teams_ctx(state: &WebState, p: &Principal, q: &HashMap<String, String>) -> Value {
    let member = if p.role.sees_all() {
        None
    } else {
        Some(p.user_id.as_str())
    };
    let teams = state.store.list_teams(member).await.unwrap_or_default();
    let mut rows = Vec::new();
    for t in &teams {
        let n = state
            .store
            .list_members(&t.team_id)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        rows.push(json!({"team_id": t.team_id, "alias": t.team_alias, "members": n}));
    }
    merge(
        base_ctx(p, "teams", flash_for(q)),
        json!({"teams": rows, "form": {"alias": "", "errors": {"alias": null}}}),
    )
}

async fn teams_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    render(
        &state,
        StatusCode::OK,
        "teams.html",
        &teams_ctx(&state, &p, &q).await,
    )
}

async fn team_create(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_for(&state, &headers, &body, "POST", "/team/new").await);
    let alias = f
        .get("alias")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if alias.is_empty() {
        let mut ctx = teams_ctx(&state, &p, &HashMap::new()).await;
        ctx["form"]["errors"]["alias"] = json!("Give the team a name.");
        return render(&state, StatusCode::BAD_REQUEST, "teams.html", &ctx);
    }
    let req = team_api::NewTeamRequest {
        team_alias: Some(alias),
        ..Default::default()
    };
    match team_api::create_team(&state, &p, &req).await {
        Ok(t) => redirect(&format!("/ui/teams/{}?done=team_created", t.team_id)),
        Err(e) => error_page(&state, Some(&p), e.status, "Not created", &api_message(&e)),
    }
}

async fn team_page(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    let Ok(Some(team)) = state.store.get_team(&id).await else {
        return error_page(
            &state,
            Some(&p),
            StatusCode::NOT_FOUND,
            "Not found",
            "That team does not exist.",
        );
    };
    let members = state.store.list_members(&id).await.unwrap_or_default();
    if !p.role.sees_all() && !members.iter().any(|m| m.user_id == p.user_id) {
        return denied(&state, &p);
    }
    let mut rows = Vec::new();
    for m in &members {
        let email = state
            .store
            .get_user(&m.user_id)
            .await
            .ok()
            .flatten()
            .and_then(|u| u.user_email);
        rows.push(json!({"user_id": m.user_id, "email": email, "role": m.role}));
    }
    let manage = team_api::can_manage(&state, &p, &id).await.unwrap_or(false);
    // Only roles that may list users get a picker; a team admin types the email instead, so the
    // page never lists everyone's address to them.
    let candidates = if manage && p.role.sees_all() {
        let (all, _) = state
            .store
            .list_users(&UserFilter {
                page_size: 100,
                ..UserFilter::default()
            })
            .await
            .unwrap_or_default();
        all.into_iter()
            .filter(|u| !members.iter().any(|m| m.user_id == u.user_id))
            .map(|u| json!({"user_id": u.user_id, "email": u.user_email.unwrap_or_default()}))
            .collect()
    } else {
        Vec::new()
    };
    let mut ctx = merge(
        base_ctx(&p, "teams", flash_for(&q)),
        json!({"team": {"team_id": team.team_id, "alias": team.team_alias}, "members": rows, "users": candidates, "errors": null, "add_by_email": manage && !p.role.sees_all()}),
    );
    // Team admins manage their own team's members even without the proxy-admin role.
    ctx["can"]["manage_users"] = json!(manage);
    render(&state, StatusCode::OK, "team.html", &ctx)
}

async fn team_member_add(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    let uid = match (f.get("user_id"), f.get("user_email")) {
        (Some(uid), _) => uid.clone(),
        (None, Some(email)) => match state.store.get_user_by_email(email.trim()).await {
            Ok(Some(u)) => u.user_id,
            _ => {
                return error_page(
                    &state,
                    Some(&p),
                    StatusCode::BAD_REQUEST,
                    "Member not added",
                    "No user has that email. Ask an admin to add the user first.",
                )
            }
        },
        (None, None) => String::new(),
    };
    let role = f.get("role").cloned().unwrap_or_else(|| "user".to_string());
    match team_api::add_member(&state, &p, &id, &uid, &role).await {
        Ok(()) => redirect(&format!("/ui/teams/{id}?done=member_added")),
        Err(e) => error_page(
            &state,
            Some(&p),
            e.status,
            "Member not added",
            &api_message(&e),
        ),
    }
}

async fn team_member_role(
    State(state): State<Arc<WebState>>,
    Path((id, uid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    let role = f.get("role").cloned().unwrap_or_else(|| "user".to_string());
    match team_api::update_member(&state, &p, &id, &uid, Some(&role), None).await {
        Ok(_) => redirect(&format!("/ui/teams/{id}?done=member_updated")),
        Err(e) => error_page(&state, Some(&p), e.status, "Not changed", &api_message(&e)),
    }
}

async fn team_member_delete_confirm(
    State(state): State<Arc<WebState>>,
    Path((id, uid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    if !team_api::can_manage(&state, &p, &id).await.unwrap_or(false) {
        return denied(&state, &p);
    }
    confirm(
        &state,
        &p,
        "Remove member",
        "Remove this member from the team?",
        &format!("/ui/teams/{id}/members/{uid}/delete"),
        "Remove",
        &format!("/ui/teams/{id}"),
    )
}

async fn team_member_delete(
    State(state): State<Arc<WebState>>,
    Path((id, uid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, _) = or_page!(form_post(&state, &headers, &body).await);
    match team_api::remove_member(&state, &p, &id, &uid).await {
        Ok(()) => redirect(&format!("/ui/teams/{id}?done=member_removed")),
        Err(e) => error_page(&state, Some(&p), e.status, "Not removed", &api_message(&e)),
    }
}

async fn team_delete_confirm(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "POST", "/team/delete").await);
    confirm(
        &state,
        &p,
        "Delete team",
        "Delete this team? Its memberships go with it.",
        &format!("/ui/teams/{id}/delete"),
        "Delete team",
        &format!("/ui/teams/{id}"),
    )
}

async fn team_delete(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, _) = or_page!(form_for(&state, &headers, &body, "POST", "/team/delete").await);
    match team_api::delete_teams(&state, &p, std::slice::from_ref(&id)).await {
        Ok(_) => redirect("/ui/teams?done=team_deleted"),
        Err(e) => error_page(&state, Some(&p), e.status, "Not deleted", &api_message(&e)),
    }
}

// ---- audit, account, placeholders -------------------------------------------------------------

async fn audit_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(page_for(&state, &headers, "GET", "/audit").await);
    let page = q
        .get("page")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let (entries, total) = state
        .store
        .list_audit(&AuditFilter {
            actor_id: None,
            object_type: None,
            object_id: None,
            page,
            page_size: 50,
        })
        .await
        .unwrap_or_default();
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| json!({"at": ts(&e.at), "actor": e.actor_id, "action": e.action, "object_type": e.object_type, "object_id": e.object_id,
            "before": e.before.as_ref().map(|v| serde_json::to_string_pretty(v).unwrap_or_default()),
            "after": e.after.as_ref().map(|v| serde_json::to_string_pretty(v).unwrap_or_default())}))
        .collect();
    render(
        &state,
        StatusCode::OK,
        "audit.html",
        &merge(
            base_ctx(&p, "audit", None),
            json!({"entries": rows, "page": page, "total_pages": (total as u64).div_ceil(50).max(1)}),
        ),
    )
}

async fn account_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    render(
        &state,
        StatusCode::OK,
        "account.html",
        &merge(
            base_ctx(&p, "account", flash_for(&q)),
            json!({"errors": {"current_password": null, "new_password": null}, "min_len": state.config.password_policy.min_len()}),
        ),
    )
}

async fn account_password(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    let current = f.get("current_password").cloned().unwrap_or_default();
    let new = f.get("new_password").cloned().unwrap_or_default();
    let again = |field: &str, msg: String| {
        let mut errors = json!({"current_password": null, "new_password": null});
        errors[field] = json!(msg);
        render(
            &state,
            StatusCode::BAD_REQUEST,
            "account.html",
            &merge(
                base_ctx(&p, "account", None),
                json!({"errors": errors, "min_len": state.config.password_policy.min_len()}),
            ),
        )
    };
    if f.get("new_password_confirm") != Some(&new) {
        return again(
            "new_password",
            "The two new passwords are not the same.".to_string(),
        );
    }
    match user_api::change_own_password(&state, &p, &current, &new).await {
        // Every session ended, this one included: sign in again with the new password.
        Ok(()) => with_cookie(redirect("/ui/login"), &clearing_cookie(&state, &headers)),
        Err(e) if e.param.as_deref() == Some("current_password") => {
            again("current_password", api_message(&e))
        }
        Err(e) => again("new_password", api_message(&e)),
    }
}

// ---- keys ---------------------------------------------------------------------------------

const KEY_PAGE_SIZE: u32 = 50;
/// The expiry choices the create form offers (value sent, as `duration`).
const KEY_DURATIONS: &[&str] = &["", "7d", "30d", "90d"];

fn can_create_keys(p: &Principal) -> bool {
    may(p, "POST", "/key/generate") && p.role.can_write()
}

fn can_delete_keys(p: &Principal) -> bool {
    may(p, "POST", "/key/delete") && p.role.can_write()
}

/// Models the create form offers: configured names (no wildcard patterns), narrowed to the
/// caller's own model list when an admin restricted it.
async fn offered_models(state: &WebState, p: &Principal) -> Vec<String> {
    let mut names: Vec<String> = state
        .models
        .iter()
        .filter(|m| !m.contains('*'))
        .cloned()
        .collect();
    if p.role != Role::ProxyAdmin {
        let own = state
            .store
            .get_user(&p.user_id)
            .await
            .ok()
            .flatten()
            .map(|u| u.models)
            .unwrap_or_default();
        if !own.is_empty() {
            names.retain(|m| own.contains(m));
            for m in own {
                if !m.contains('*') && !names.contains(&m) {
                    names.push(m);
                }
            }
        }
    }
    names
}

/// The model the "Try it" snippets call `/v1/chat/completions` with: the first candidate the
/// price table calls a chat model, else the first whose mode is unknown; never an embedding,
/// image or audio model.
fn snippet_model<'a>(
    catalog: &[crate::state::ModelEntry],
    candidates: impl Iterator<Item = &'a String> + Clone,
) -> Option<String> {
    let mode = |name: &str| {
        catalog
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.mode.as_deref())
    };
    let chat = candidates.clone().find(|m| mode(m) == Some("chat"));
    chat.or_else(|| candidates.clone().find(|m| mode(m).is_none()))
        .cloned()
}

fn money(v: f64, places: usize) -> String {
    format!("${v:.places$}")
}

fn key_ctx(k: &KeyRow, user_email: Option<String>) -> Value {
    let v = key_api::key_view(k);
    let spend = v["spend"].as_f64().unwrap_or(0.0);
    let budget = v["max_budget"].as_f64();
    let pct = match k.max_budget_nanos {
        Some(b) if b > 0 => Some(
            ((k.spend_nanos as f64 / b as f64) * 100.0)
                .clamp(0.0, 100.0)
                .round() as i64,
        ),
        _ => None,
    };
    json!({
        "token": k.token, "alias": k.key_alias, "key_name": k.key_name, "models": k.models,
        "spend": spend, "max_budget": budget, "budget_pct": pct,
        "spend_label": dollars(k.spend_nanos), "budget_label": k.max_budget_nanos.map(budget_money),
        "tpm_limit": k.tpm_limit, "rpm_limit": k.rpm_limit, "expires": v["expires"],
        "status": v["status"], "user_id": k.user_id, "user_email": user_email,
    })
}

async fn keys_ctx(state: &WebState, p: &Principal, q: &HashMap<String, String>) -> Value {
    let page = q
        .get("page")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let user_filter = if p.role.sees_all() {
        q.get("user")
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
    } else {
        None
    };
    let filter = KeyFilter {
        user_id: if p.role.sees_all() {
            user_filter.clone()
        } else {
            Some(p.user_id.clone())
        },
        team_id: None,
        key_alias: None,
        page,
        size: KEY_PAGE_SIZE,
    };
    let (rows, total) = state.store.list_keys(&filter).await.unwrap_or_default();
    let mut emails: HashMap<String, Option<String>> = HashMap::new();
    let mut keys = Vec::new();
    for k in &rows {
        let email = match (&k.user_id, p.role.sees_all()) {
            (Some(uid), true) => {
                if !emails.contains_key(uid) {
                    let e = state
                        .store
                        .get_user(uid)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|u| u.user_email);
                    emails.insert(uid.clone(), e);
                }
                emails.get(uid).cloned().flatten()
            }
            _ => None,
        };
        keys.push(key_ctx(k, email));
    }
    merge(
        base_ctx(p, "keys", flash_for(q)),
        json!({
            "keys": keys, "total": total, "page": page,
            "total_pages": (total.max(0) as u64).div_ceil(u64::from(KEY_PAGE_SIZE)).max(1),
            "user_filter": user_filter.unwrap_or_default(),
            "can_create": can_create_keys(p), "can_delete": can_delete_keys(p),
            "models": offered_models(state, p).await,
            "created": null,
            "form": {"alias": "", "models": [], "duration": "", "errors": {"alias": null, "models": null}},
        }),
    )
}

async fn keys_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    render(
        &state,
        StatusCode::OK,
        "keys.html",
        &keys_ctx(&state, &p, &q).await,
    )
}

async fn keys_create(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    if !can_create_keys(&p) {
        return denied(&state, &p);
    }
    // A multi-select sends `models` once per chosen option.
    let mut models: Vec<String> = url::form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "models")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    models.dedup();
    let alias = f
        .get("alias")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let duration = f
        .get("duration")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let offered = offered_models(&state, &p).await;
    let again = |ctx: &mut Value, field: &str, msg: String| {
        ctx["form"] = json!({"alias": alias, "models": models, "duration": duration,
            "errors": {"alias": null, "models": null}});
        ctx["form"]["errors"][field] = json!(msg);
    };
    let mut ctx = keys_ctx(&state, &p, &HashMap::new()).await;
    if alias.is_empty() {
        again(
            &mut ctx,
            "alias",
            "Give the key a name so you can tell it apart later.".to_string(),
        );
        return render(&state, StatusCode::BAD_REQUEST, "keys.html", &ctx);
    }
    if let Some(m) = models.iter().find(|m| !offered.contains(m)) {
        again(
            &mut ctx,
            "models",
            format!("{m} is not a model you can choose here."),
        );
        return render(&state, StatusCode::BAD_REQUEST, "keys.html", &ctx);
    }
    if !KEY_DURATIONS.contains(&duration.as_str()) {
        return error_page(
            &state,
            Some(&p),
            StatusCode::BAD_REQUEST,
            "Not created",
            "Choose one of the listed expiry times.",
        );
    }
    // "None selected" means every model the caller may use; for a user an admin restricted to
    // some models, that is exactly their list (the service refuses an unrestricted key for them).
    let chosen = if models.is_empty() && p.role != Role::ProxyAdmin {
        state
            .store
            .get_user(&p.user_id)
            .await
            .ok()
            .flatten()
            .map(|u| u.models)
            .unwrap_or_default()
    } else {
        models.clone()
    };
    let req = key_api::GenerateRequest {
        key_alias: Some(alias.clone()),
        duration: Some(duration.clone()).filter(|d| !d.is_empty()),
        models: Some(chosen).filter(|m| !m.is_empty()),
        ..Default::default()
    };
    match key_api::generate(&state, &p, &req).await {
        Ok((plaintext, row)) => {
            let mut ctx = keys_ctx(&state, &p, &HashMap::new()).await;
            let model = snippet_model(&state.model_catalog, row.models.iter().chain(&offered))
                .unwrap_or_else(|| "MODEL_NAME".to_string());
            ctx["created"] = json!({
                "key": plaintext, "key_name": row.key_name, "alias": row.key_alias,
                "base_url": crate::session::base_url(&state, &headers).trim_end_matches('/'),
                "model": model,
            });
            render(&state, StatusCode::OK, "keys.html", &ctx)
        }
        Err(e) => {
            let field = if e.message.to_ascii_lowercase().contains("model") {
                "models"
            } else {
                "alias"
            };
            again(&mut ctx, field, api_message(&e));
            render(&state, e.status, "keys.html", &ctx)
        }
    }
}

async fn key_delete_confirm(
    State(state): State<Arc<WebState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    if !can_delete_keys(&p) {
        return denied(&state, &p);
    }
    let key = match state.store.get_key(&key_api::token_of(&token)).await {
        Ok(Some(k)) => k,
        _ => {
            return error_page(
                &state,
                Some(&p),
                StatusCode::NOT_FOUND,
                "Not found",
                "That key does not exist.",
            )
        }
    };
    // Only name keys the caller could list; delete_rows decides whether the delete goes through.
    let own = key.user_id.as_deref() == Some(p.user_id.as_str());
    let what = if own || p.role.sees_all() {
        match &key.key_alias {
            Some(a) => format!("the key “{a}” ({})", key.key_name),
            None => format!("the key {}", key.key_name),
        }
    } else {
        "this key".to_string()
    };
    confirm(
        &state,
        &p,
        "Delete key",
        &format!("Delete {what}? Programs using it stop working at once. This cannot be undone."),
        &format!("/ui/keys/{}/delete", key.token),
        "Delete key",
        "/ui/keys",
    )
}

async fn key_delete(
    State(state): State<Arc<WebState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, _) = or_page!(form_post(&state, &headers, &body).await);
    if !can_delete_keys(&p) {
        return denied(&state, &p);
    }
    let key = match state.store.get_key(&key_api::token_of(&token)).await {
        Ok(Some(k)) => k,
        Ok(None) => {
            return error_page(
                &state,
                Some(&p),
                StatusCode::NOT_FOUND,
                "Not found",
                "That key does not exist.",
            )
        }
        Err(e) => {
            return error_page(
                &state,
                Some(&p),
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                &e.to_string(),
            )
        }
    };
    match key_api::delete_rows(&state, &p, std::slice::from_ref(&key)).await {
        Ok(()) => redirect("/ui/keys?done=key_deleted"),
        Err(e) => error_page(&state, Some(&p), e.status, "Not deleted", &api_message(&e)),
    }
}

// ---- usage --------------------------------------------------------------------------------

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

/// `1,234,567`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

fn latency(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
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

async fn usage_page(
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

/// The caller's own model list (empty: no restriction). Proxy admins are never restricted.
async fn own_model_list(state: &WebState, p: &Principal) -> Vec<String> {
    if p.role == Role::ProxyAdmin {
        return Vec::new();
    }
    state
        .store
        .get_user(&p.user_id)
        .await
        .ok()
        .flatten()
        .map(|u| u.models)
        .unwrap_or_default()
}

/// Dollars per million tokens, with enough digits for cheap models (`$0.075`, `$2.50`).
fn per_million(cost_per_token: Option<f64>) -> Option<String> {
    let m = cost_per_token? * 1_000_000.0;
    if m == 0.0 {
        return Some("$0.00".to_string());
    }
    if m < 0.0001 {
        return Some("< $0.0001".to_string());
    }
    let s = format!("{m:.4}");
    let trimmed = s.trim_end_matches('0');
    let places = trimmed.split('.').nth(1).map_or(0, str::len);
    Some(if places < 2 {
        format!("${m:.2}")
    } else {
        format!("${trimmed}")
    })
}

async fn models_page(State(state): State<Arc<WebState>>, headers: HeaderMap) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    let own = own_model_list(&state, &p).await;
    let models: Vec<Value> = state
        .model_catalog
        .iter()
        .filter(|m| list_allows(&own, &m.name))
        .map(|m| {
            json!({
                "name": m.name, "pattern": m.pattern, "mode": m.mode,
                "input": per_million(m.input_cost_per_token),
                "output": per_million(m.output_cost_per_token),
            })
        })
        .collect();
    let restricted = !own.is_empty() && !own.iter().any(|m| m == "all-proxy-models");
    render(
        &state,
        StatusCode::OK,
        "models.html",
        &merge(
            base_ctx(&p, "models", None),
            json!({ "models": models, "restricted": restricted }),
        ),
    )
}

async fn static_file(Path(name): Path<String>) -> Response {
    match crate::ui::static_asset(&name) {
        Some((ct, bytes)) => {
            let mut r = bytes.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            r
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_call_a_chat_model() {
        let entry = |name: &str, mode: Option<&str>| crate::state::ModelEntry {
            name: name.to_string(),
            input_cost_per_token: None,
            output_cost_per_token: None,
            mode: mode.map(str::to_string),
            pattern: false,
        };
        let catalog = [
            entry("cheap-embed", Some("embedding")),
            entry("mystery", None),
            entry("gpt-4o-mini", Some("chat")),
        ];
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = names(&["cheap-embed", "mystery", "gpt-4o-mini"]);
        assert_eq!(
            snippet_model(&catalog, all.iter()).as_deref(),
            Some("gpt-4o-mini")
        );
        let no_chat = names(&["cheap-embed", "mystery"]);
        assert_eq!(
            snippet_model(&catalog, no_chat.iter()).as_deref(),
            Some("mystery")
        );
        let only_embed = names(&["cheap-embed"]);
        assert_eq!(snippet_model(&catalog, only_embed.iter()), None);
    }

    #[test]
    fn money_shows_small_spend() {
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(12_300_000), "$0.0123");
        assert_eq!(dollars(300_000), "$0.0003");
        assert_eq!(dollars(24_000), "$0.000024");
        assert_eq!(dollars(1_234), "$0.000001234");
        assert_eq!(dollars(4_170_200_000), "$4.1702");
        assert_eq!(budget_money(10_000_000_000), "$10.00");
        assert_eq!(budget_money(1_000_000), "$0.0010");
    }

    #[test]
    fn counts_and_latency() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(2_113_040), "2,113,040");
        assert_eq!(thousands(-1_234), "-1,234");
        assert_eq!(latency(340), "340 ms");
        assert_eq!(latency(1_250), "1.2 s");
    }

    #[test]
    fn prices_per_million_tokens() {
        assert_eq!(per_million(None), None);
        assert_eq!(per_million(Some(0.0)).as_deref(), Some("$0.00"));
        assert_eq!(per_million(Some(0.000_000_15)).as_deref(), Some("$0.15"));
        assert_eq!(per_million(Some(0.000_000_075)).as_deref(), Some("$0.075"));
        assert_eq!(per_million(Some(0.000_002_5)).as_deref(), Some("$2.50"));
        assert_eq!(per_million(Some(0.000_01)).as_deref(), Some("$10.00"));
    }

    #[test]
    fn model_lists_follow_the_proxy_rule() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(list_allows(&[], "gpt-4o"));
        assert!(list_allows(&list(&["all-proxy-models"]), "gpt-4o"));
        assert!(list_allows(&list(&["gpt-*"]), "gpt-4o"));
        assert!(list_allows(&list(&["gpt-4o"]), "gpt-4o"));
        assert!(!list_allows(&list(&["gpt-4o"]), "gpt-4o-mini"));
        assert!(!list_allows(&list(&["claude-*"]), "gpt-4o"));
    }
}
