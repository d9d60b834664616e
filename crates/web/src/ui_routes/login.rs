//! Signing in and out: the login form (with the SSO button), invitations' onboarding form, and logout (through the provider's end-session endpoint for an SSO session).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde::Serialize;

use crate::api::auth::form_fields;
use crate::api::client_ip;
use crate::login::{authenticate, LoginError};
use crate::onboarding::{self, Checked, ClaimError};
use crate::principal::from_ui_request;
use crate::session::{clearing_cookie, same_origin_post, start};
use crate::state::WebState;

use super::{api_message, error_page, form_post, redirect, render, with_cookie};

pub(super) async fn login_page(State(state): State<Arc<WebState>>, headers: HeaderMap) -> Response {
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
fn login_ctx<'a>(
    state: &'a WebState,
    error: Option<&'a str>,
    email: Option<&'a str>,
) -> LoginPage<'a> {
    LoginPage {
        error,
        email,
        csrf: "",
        sso: state.sso.as_ref().map(|s| SsoButton {
            label: &s.config.label,
        }),
        password_login: state.config.password_login,
    }
}

#[derive(Serialize)]
struct LoginPage<'a> {
    error: Option<&'a str>,
    email: Option<&'a str>,
    csrf: &'a str,
    sso: Option<SsoButton<'a>>,
    /// False: users' passwords are off; the form is the admin's, folded away.
    password_login: bool,
}

#[derive(Serialize)]
struct SsoButton<'a> {
    label: &'a str,
}

/// The onboarding page: the form for an invitation's first password, or why it can't be used.
#[derive(Serialize)]
struct OnboardingPage<'a> {
    /// `ok` (the form) or `invalid` (the message).
    state: &'a str,
    message: &'a str,
    email: &'a str,
    invitation_id: &'a str,
    error: Option<&'a str>,
    min_len: usize,
    csrf: &'a str,
}

impl<'a> OnboardingPage<'a> {
    fn form(
        email: &'a str,
        invitation_id: &'a str,
        error: Option<&'a str>,
        min_len: usize,
    ) -> Self {
        OnboardingPage {
            state: "ok",
            message: "",
            email,
            invitation_id,
            error,
            min_len,
            csrf: "",
        }
    }

    fn unusable(p: onboarding::Problem, min_len: usize) -> Self {
        OnboardingPage {
            state: "invalid",
            message: problem_text(p),
            email: "",
            invitation_id: "",
            error: None,
            min_len,
            csrf: "",
        }
    }
}

pub(super) async fn login_submit(
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

pub(super) async fn onboarding_page(
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
        Ok(Checked::Usable(_, user)) => {
            let email = user.user_email.unwrap_or(user.user_id);
            render(
                &state,
                StatusCode::OK,
                "onboarding.html",
                &OnboardingPage::form(&email, &id, None, min_len),
            )
        }
        Ok(Checked::Unusable(p)) => render(
            &state,
            StatusCode::NOT_FOUND,
            "onboarding.html",
            &OnboardingPage::unusable(p, min_len),
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

pub(super) async fn onboarding_submit(
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
            &OnboardingPage::form(&email, &id, Some(msg), min_len),
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
            &OnboardingPage::unusable(p, min_len),
        ),
        Err(ClaimError::Busy(d)) => with_retry_after(
            render(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "onboarding.html",
                &OnboardingPage::form(
                    &email,
                    &id,
                    Some("Many passwords are being set or checked right now. Wait a few seconds and submit again."),
                    min_len,
                ),
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

pub(super) async fn logout(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
