//! `/sso/key/generate` (start) and `/sso/callback` (the provider's answer), and the provider
//! logout that ends an SSO session.
//!
//! The pending sign-in (state, nonce, PKCE verifier) is a database row found by the SHA-256 of
//! a random id that only the browser's cookie holds (HttpOnly, SameSite=Lax, 10 minutes): bound
//! to that browser, taken on first use, and usable by whichever instance the answer reaches.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use axum::Router;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tollgate_identity::tokens::{hash_token, new_secret_token};
use tollgate_store::PendingLogin;

use super::account::{user_for, Refused};
use super::provider::SsoError;
use super::SsoState;
use crate::api::client_ip;
use crate::audit_log::{record_by, Change};
use crate::principal::cookie_value;
use crate::session::{base_url, is_https, start};
use crate::state::WebState;
use crate::ui_routes::{error_page, redirect, with_cookie};

/// The cookie naming the browser's pending sign-in. Over HTTPS it carries the `__Host-` prefix
/// (Secure, Path=/, no Domain), so a sibling subdomain cannot plant one of its own (a login
/// CSRF that would sign the victim in as the attacker).
const PENDING_COOKIE: &str = "tollgate_sso_pending";
const PENDING_COOKIE_HTTPS: &str = "__Host-tollgate_sso_pending";

fn pending_cookie_name(state: &WebState, headers: &HeaderMap) -> &'static str {
    if is_https(state, headers) {
        PENDING_COOKIE_HTTPS
    } else {
        PENDING_COOKIE
    }
}
/// How long a started sign-in may take at the provider.
const PENDING_TTL_SECS: i64 = 600;

pub fn routes(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/sso/key/generate", get(start_sign_in))
        .route("/sso/callback", get(callback))
        .with_state(state)
}

fn pending_cookie(state: &WebState, headers: &HeaderMap, value: &str, max_age: i64) -> String {
    let secure = if is_https(state, headers) {
        "; Secure"
    } else {
        ""
    };
    let name = pending_cookie_name(state, headers);
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

fn not_configured(state: &WebState) -> Response {
    error_page(
        state,
        None,
        StatusCode::NOT_FOUND,
        "Single sign-on is not set up",
        "This Tollgate has no sign-in provider configured. Sign in with your email and password.",
    )
}

async fn start_sign_in(
    State(state): State<Arc<WebState>>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let Some(sso) = &state.sso else {
        return not_configured(&state);
    };
    let ip = client_ip(&state, ci.as_ref().map(|e| &e.0), &headers);
    let minute = u64::try_from(Utc::now().timestamp() / 60).unwrap_or(0);
    if !sso.starts.allow(ip, minute) {
        let mut page = error_page(
            &state,
            None,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-ins",
            "Too many sign-ins were started from this address. Wait a minute, then try again.",
        );
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return page;
    }
    let redirect_uri = format!("{}/sso/callback", base_url(&state, &headers));
    let auth = match sso.provider.authorize(&redirect_uri).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "SSO sign-in could not start");
            return error_page(
                &state,
                None,
                StatusCode::BAD_GATEWAY,
                "Sign-in provider unavailable",
                "The sign-in provider could not be reached. Try again in a moment, or ask your administrator.",
            );
        }
    };
    let (id, id_hash) = match new_secret_token() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "no randomness for an SSO sign-in");
            return error_page(
                &state,
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in failed",
                "The sign-in could not be started.",
            );
        }
    };
    let now = Utc::now();
    // Starts need no sign-in, so expired rows go now rather than at the hourly sweep: the table
    // holds at most ten minutes of starts.
    if let Err(e) = state.store.delete_expired_sso_pending_logins(now).await {
        tracing::warn!(error = %e, "could not remove expired pending SSO sign-ins");
    }
    let pending = PendingLogin {
        id_hash,
        state: auth.state,
        nonce: auth.nonce,
        pkce_verifier: auth.pkce_verifier,
        redirect_uri,
        created_at: now,
        expires_at: now + chrono::Duration::seconds(PENDING_TTL_SECS),
    };
    if let Err(e) = state.store.create_sso_pending_login(&pending).await {
        tracing::warn!(error = %e, "could not store a pending SSO sign-in");
        return error_page(
            &state,
            None,
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in failed",
            "The sign-in could not be started: the database is not reachable. Try again shortly.",
        );
    }
    with_cookie(
        redirect(&auth.url),
        &pending_cookie(&state, &headers, &id, PENDING_TTL_SECS),
    )
}

#[derive(Debug, Deserialize)]
struct Answer {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Refusal pages say what went wrong in words for the person signing in; the audit log gets
/// the short reason.
struct Refusal {
    reason: &'static str,
    status: StatusCode,
    message: String,
    email: Option<String>,
    /// Whether the provider answered for someone: only then is the refusal audited. Anyone can
    /// call the callback, and an audit row per anonymous request would let them fill the log.
    vouched: bool,
}

impl Refusal {
    fn new(reason: &'static str, status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            status,
            message: message.into(),
            email: None,
            vouched: false,
        }
    }
}

async fn callback(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(answer): Query<Answer>,
) -> Response {
    let Some(sso) = &state.sso else {
        return not_configured(&state);
    };
    let clear = pending_cookie(&state, &headers, "", 0);
    let result = finish(&state, sso, &headers, answer).await;
    match result {
        Ok(resp) => with_cookie(resp, &clear),
        Err(r) => {
            if r.vouched {
                record_by(
                    &state,
                    None,
                    None,
                    Change {
                        action: "sso.refuse",
                        object_type: "sso",
                        object_id: r.email.as_deref(),
                        before: None,
                        after: Some(json!({"reason": r.reason, "issuer": sso.config.issuer})),
                    },
                )
                .await;
            } else {
                tracing::info!(reason = r.reason, "SSO callback refused");
            }
            let page = error_page(&state, None, r.status, "Sign-in refused", &r.message);
            with_cookie(page, &clear)
        }
    }
}

async fn finish(
    state: &WebState,
    sso: &SsoState,
    headers: &HeaderMap,
    answer: Answer,
) -> Result<Response, Refusal> {
    // Taken first, whatever the answer: a pending sign-in is used at most once.
    let name = pending_cookie_name(state, headers);
    let pending = match cookie_value(headers, name).filter(|v| !v.is_empty()) {
        Some(id) => state
            .store
            .take_sso_pending_login(&hash_token(id), Utc::now())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "could not read a pending SSO sign-in");
                Refusal::new(
                    "store_unavailable",
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database is not reachable. Try again shortly.",
                )
            })?,
        None => None,
    };
    if let Some(error) = &answer.error {
        // The provider's own word, reduced to the characters its error codes use.
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(Refusal::new(
            "provider_error",
            StatusCode::FORBIDDEN,
            format!("The sign-in provider did not sign you in (it answered \"{code}\")."),
        ));
    }
    let Some(pending) = pending else {
        return Err(Refusal::new(
            "no_pending_sign_in",
            StatusCode::BAD_REQUEST,
            "This sign-in has expired, was already used, or was started in another browser. Start again from the sign-in page.",
        ));
    };
    let given = answer.state.unwrap_or_default();
    if given.is_empty() || !bool::from(given.as_bytes().ct_eq(pending.state.as_bytes())) {
        return Err(Refusal::new(
            "state_mismatch",
            StatusCode::BAD_REQUEST,
            "This sign-in answer does not belong to the sign-in this browser started. Start again from the sign-in page.",
        ));
    }
    let Some(code) = answer.code.filter(|c| !c.is_empty()) else {
        return Err(Refusal::new(
            "no_code",
            StatusCode::BAD_REQUEST,
            "The sign-in provider's answer has no authorization code. Start again from the sign-in page.",
        ));
    };
    let identity = sso.provider.sign_in(&code, &pending).await.map_err(|e| {
        tracing::warn!(error = %e, "SSO sign-in refused");
        let reason = match e {
            SsoError::Client(_) | SsoError::Discovery(_) => "provider_unavailable",
            SsoError::TokenExchange(_) => "code_refused",
            SsoError::IdToken(_) => "id_token_invalid",
            SsoError::UserInfo(_) => "userinfo_invalid",
        };
        Refusal {
            // A sign-in that reached the token exchange with this browser's pending sign-in
            // (a replayed code, a forged or expired token) is worth recording.
            vouched: matches!(
                reason,
                "code_refused" | "id_token_invalid" | "userinfo_invalid"
            ),
            ..Refusal::new(
                reason,
                StatusCode::FORBIDDEN,
                "The sign-in could not be verified with the sign-in provider. Start again from the sign-in page; if it keeps failing, ask your administrator.",
            )
        }
    })?;
    let user = user_for(state, sso, &identity).await.map_err(|r| {
        let message = match &r {
            Refused::NoEmail => "The sign-in provider did not tell Tollgate your email address.".to_string(),
            Refused::Unverified => "The sign-in provider has not verified your email address. Verify it there, then sign in again.".to_string(),
            Refused::DomainNotAllowed => "There is no Tollgate account for this email address, and accounts are not opened for its domain. Ask your administrator for an invitation.".to_string(),
            Refused::LinkedToAnotherAccount => "The Tollgate account with this email address belongs to another account at the sign-in provider. Ask your administrator.".to_string(),
            Refused::Unavailable(m) => m.clone(),
        };
        let status = match r {
            Refused::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        };
        Refusal {
            reason: r.reason(),
            status,
            message,
            email: identity.email.clone(),
            vouched: true,
        }
    })?;
    let started = start(state, &user.user_id, headers)
        .await
        .map_err(|e| Refusal::new("session_failed", e.status, e.message))?;
    if let Some(id_token) = &identity.id_token {
        if let Err(e) = state
            .store
            .set_session_id_token(&hash_token(&started.secret), id_token)
            .await
        {
            // The session works; only the provider's logout will lack its hint.
            tracing::warn!(error = %e, "could not keep an SSO session's ID token");
        }
    }
    record_by(
        state,
        Some(&user.user_id),
        Some(&user.user_role),
        Change {
            action: "sso.sign_in",
            object_type: "user",
            object_id: Some(&user.user_id),
            before: None,
            after: Some(json!({"issuer": identity.issuer, "email": identity.email})),
        },
    )
    .await;
    Ok(with_cookie(redirect("/ui"), &started.set_cookie))
}

/// Where logout sends a browser whose session came from SSO, when the provider offers an
/// end-session endpoint: there, with the session's ID token as `id_token_hint` and
/// `post_logout_redirect_uri` = `PROXY_LOGOUT_URL` (else this Tollgate's login page).
pub async fn end_session_url(
    state: &WebState,
    session_hash: &str,
    headers: &HeaderMap,
) -> Option<String> {
    let sso = state.sso.as_ref()?;
    let id_token = state
        .store
        .get_session_id_token(session_hash)
        .await
        .ok()
        .flatten()?;
    let endpoint = match sso.provider.end_session_endpoint().await {
        Ok(e) => e?,
        Err(e) => {
            tracing::warn!(error = %e, "provider logout skipped");
            return None;
        }
    };
    let after = state
        .config
        .logout_url
        .clone()
        .unwrap_or_else(|| format!("{}/ui/login", base_url(state, headers)));
    let mut url = url::Url::parse(&endpoint).ok()?;
    url.query_pairs_mut()
        .append_pair("id_token_hint", &id_token)
        .append_pair("post_logout_redirect_uri", &after)
        .append_pair("client_id", &sso.config.client_id);
    Some(url.to_string())
}
