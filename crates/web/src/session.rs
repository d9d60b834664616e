//! Starting and ending login sessions, and the cookie that carries one.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use tollgate_identity::tokens::new_secret_token;
use tollgate_proxy::ApiError;
use tollgate_store::sessions::{NewSession, SessionKind};

use crate::principal::{store_unavailable, SECURE_SESSION_COOKIE, SESSION_COOKIE};
use crate::state::WebState;

pub struct Started {
    /// The session secret: the cookie value, and the `key` of the `/v2/login` token.
    pub secret: String,
    pub set_cookie: String,
}

/// Whether the browser reached us over HTTPS: `PROXY_BASE_URL` says so, or a front proxy's
/// `X-Forwarded-Proto` does.
pub fn is_https(state: &WebState, headers: &HeaderMap) -> bool {
    state
        .config
        .base_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The HSTS policy: a year, subdomains included (ASVS V3.4.1 asks for both).
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000; includeSubDomains";

/// Middleware for every route (UI, management API, inference): a request that came over HTTPS,
/// by the same test that makes the session cookie `Secure`, is answered with HSTS so the
/// browser never again tries the site over plain HTTP.
pub async fn strict_transport_security(
    State(state): State<Arc<WebState>>,
    req: Request,
    next: Next,
) -> Response {
    let https = is_https(&state, req.headers());
    let mut resp = next.run(req).await;
    if https {
        resp.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        );
    }
    resp
}

pub async fn start(
    state: &WebState,
    user_id: &str,
    headers: &HeaderMap,
) -> Result<Started, ApiError> {
    let (secret, id_hash) = new_secret_token().map_err(|e| ApiError::internal(e.to_string()))?;
    let now = Utc::now();
    let absolute = now
        + chrono::Duration::from_std(state.config.session_absolute)
            .unwrap_or(chrono::Duration::hours(24));
    let idle = (now
        + chrono::Duration::from_std(state.config.session_idle)
            .unwrap_or(chrono::Duration::hours(2)))
    .min(absolute);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect());
    state
        .store
        .create_session(&NewSession {
            id_hash,
            user_id: user_id.to_string(),
            kind: SessionKind::Ui,
            csrf_hash: None,
            created_at: now,
            idle_expires_at: idle,
            absolute_expires_at: absolute,
            user_agent,
        })
        .await
        .map_err(|e| store_unavailable(&e))?;
    let max_age = state.config.session_absolute.as_secs();
    let name = cookie_name(state, headers);
    let secure = if is_https(state, headers) {
        "; Secure"
    } else {
        ""
    };
    let set_cookie =
        format!("{name}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    Ok(Started { secret, set_cookie })
}

pub fn clearing_cookie(state: &WebState, headers: &HeaderMap) -> String {
    let name = cookie_name(state, headers);
    let secure = if is_https(state, headers) {
        "; Secure"
    } else {
        ""
    };
    format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
}

/// Over HTTPS the cookie carries the `__Host-` prefix, so a sibling subdomain can't plant one.
pub fn cookie_name(state: &WebState, headers: &HeaderMap) -> &'static str {
    if is_https(state, headers) {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// A browser post that sets or uses a cookie must come from our own pages: refuse cross-site
/// posts (login CSRF), while scripts that send no browser headers still work.
pub fn same_origin_post(state: &WebState, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if origin == "null" {
        return false;
    }
    own_origins(state, headers)
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
}

fn own_origins(state: &WebState, headers: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(base) = &state.config.base_url {
        if let Ok(u) = url::Url::parse(base) {
            out.push(u.origin().ascii_serialization());
        }
    }
    if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        out.push(format!("http://{host}"));
        out.push(format!("https://{host}"));
    }
    out
}

/// Where links should point: `PROXY_BASE_URL`, else the origin this request came to.
pub fn base_url(state: &WebState, headers: &HeaderMap) -> String {
    if let Some(b) = &state.config.base_url {
        return b.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost:4000");
    let scheme = if is_https(state, headers) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}
