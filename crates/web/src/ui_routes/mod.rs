//! The web UI's routes: plain HTML forms, every state change a POST with the session's CSRF
//! token, every permission checked against the same route policy as the management API. This
//! file holds the one table of UI routes, rendering and the session checks; each page's
//! handlers are in their own file.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use tollgate_domain::policy::{decide, Decision};
use tollgate_proxy::ApiError;

use crate::api::auth::form_fields;
use crate::principal::{csrf_matches, from_ui_request, Principal};
use crate::session::same_origin_post;
use crate::state::WebState;

pub fn routes(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/ui", get(home::home))
        .route("/ui/", get(home::home))
        .route(
            "/ui/login",
            get(login::login_page).post(login::login_submit),
        )
        .route(
            "/ui/onboarding",
            get(login::onboarding_page).post(login::onboarding_submit),
        )
        .route("/ui/logout", post(login::logout))
        .route(
            "/ui/users",
            get(users::users_page).post(users::users_create),
        )
        .route("/ui/users/{id}/role", post(users::user_role))
        .route("/ui/users/{id}/invite", post(users::user_invite))
        .route(
            "/ui/users/{id}/delete",
            get(users::user_delete_confirm).post(users::user_delete),
        )
        .route("/ui/invitations", get(invitations::invitations_page))
        .route(
            "/ui/invitations/{hash}/delete",
            get(invitations::invitation_delete_confirm).post(invitations::invitation_delete),
        )
        .route("/ui/teams", get(teams::teams_page).post(teams::team_create))
        .route("/ui/teams/{id}", get(teams::team_page))
        .route("/ui/teams/{id}/members", post(teams::team_member_add))
        .route(
            "/ui/teams/{id}/members/{uid}/role",
            post(teams::team_member_role),
        )
        .route(
            "/ui/teams/{id}/members/{uid}/delete",
            get(teams::team_member_delete_confirm).post(teams::team_member_delete),
        )
        .route(
            "/ui/teams/{id}/delete",
            get(teams::team_delete_confirm).post(teams::team_delete),
        )
        .route("/ui/audit", get(audit::audit_page))
        .route("/ui/account", get(account::account_page))
        .route("/ui/account/password", post(account::account_password))
        .route("/ui/keys", get(keys::keys_page).post(keys::keys_create))
        .route(
            "/ui/keys/{token}/delete",
            get(keys::key_delete_confirm).post(keys::key_delete),
        )
        .route("/ui/usage", get(usage::usage_page))
        .route("/ui/models", get(models::models_page))
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

/// `?` for handlers whose failures are already pages (a redirect to login, a refusal page).
macro_rules! or_page {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(page) => return page,
        }
    };
}

// One file per page, as `api/` has one per resource; they use `or_page!` above, so come after it.
mod account;
mod audit;
mod format;
mod home;
mod invitations;
mod keys;
mod login;
mod models;
mod teams;
mod usage;
mod users;

// ---- rendering ----------------------------------------------------------------------------

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

pub(crate) fn render<S: Serialize>(
    state: &WebState,
    status: StatusCode,
    name: &str,
    ctx: &S,
) -> Response {
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

/// Who is signed in, as the page header shows them.
#[derive(Serialize)]
struct Me {
    user_id: String,
    email: String,
    role: &'static str,
    role_label: &'static str,
}

/// What the navigation offers the role.
#[derive(Serialize)]
struct Can {
    manage_users: bool,
    view_all: bool,
    write: bool,
}

#[derive(Serialize)]
struct Flash {
    kind: String,
    message: String,
}

/// What every signed-in page receives, besides its own context.
#[derive(Serialize)]
struct SignedIn {
    me: Me,
    csrf: String,
    flash: Option<Flash>,
    nav_active: String,
    can: Can,
}

/// A signed-in page's context: the shared part and the page's own fields, side by side.
#[derive(Serialize)]
struct Page<T: Serialize> {
    #[serde(flatten)]
    signed_in: SignedIn,
    #[serde(flatten)]
    page: T,
}

impl<T: Serialize> Page<T> {
    fn new(p: &Principal, nav: &str, flash: Option<(&str, String)>, page: T) -> Page<T> {
        Page {
            signed_in: SignedIn {
                me: Me {
                    user_id: p.user_id.clone(),
                    email: p.email.clone().unwrap_or_else(|| p.user_id.clone()),
                    role: p.role.as_str(),
                    role_label: p.role.ui_label(),
                },
                csrf: p.csrf.clone().unwrap_or_default(),
                flash: flash.map(|(kind, message)| Flash {
                    kind: kind.to_string(),
                    message,
                }),
                nav_active: nav.to_string(),
                can: Can {
                    manage_users: may(p, "POST", "/user/new"),
                    view_all: p.role.sees_all(),
                    write: p.role.can_write(),
                },
            },
            page,
        }
    }
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
    let ctx = ErrorPage {
        title,
        message,
        status: status.as_u16(),
    };
    match p {
        Some(p) => render(state, status, "error.html", &Page::new(p, "", None, ctx)),
        None => render(state, status, "error.html", &ctx),
    }
}

#[derive(Serialize)]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    status: u16,
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

/// The page that asks before a delete: `action` is where its form posts.
fn confirm(
    state: &WebState,
    p: &Principal,
    title: &str,
    message: &str,
    action: &str,
    label: &str,
    cancel: &str,
) -> Response {
    let ctx = ConfirmPage {
        title,
        message,
        action_url: action,
        confirm_label: label,
        cancel_url: cancel,
    };
    render(
        state,
        StatusCode::OK,
        "confirm.html",
        &Page::new(p, "", None, ctx),
    )
}

#[derive(Serialize)]
struct ConfirmPage<'a> {
    title: &'a str,
    message: &'a str,
    action_url: &'a str,
    confirm_label: &'a str,
    cancel_url: &'a str,
}

/// The UI's CSS, script and icons, embedded in the binary.
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
