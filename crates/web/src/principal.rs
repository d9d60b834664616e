//! Who is calling the management API or the UI, from which credential.
//!
//! Accepted (DESIGN "Who may present what"): the master key (as `proxy_admin`); the bearer from
//! `/v2/login` or onboarding (the whole signed token or its `key`); the UI session cookie, which
//! for anything but a read must come with the session's CSRF token; a virtual key, acting as its
//! user with that user's role (LiteLLM semantics: an `internal_user`'s key manages that user's
//! own keys).

use axum::http::{header, HeaderMap, Method};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tollgate_domain::role::Role;
use tollgate_identity::tokens::hash_token;
use tollgate_proxy::ApiError;
use tollgate_store::sessions::SessionRow;

use crate::jwt;
use crate::state::WebState;

pub const SESSION_COOKIE: &str = "tollgate_session";
pub const SECURE_SESSION_COOKIE: &str = "__Host-tollgate_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    MasterKey,
    /// A login session, by the hash of its secret.
    Session {
        id_hash: String,
        cookie: bool,
    },
    /// A virtual key, by its hash.
    VirtualKey {
        token: String,
    },
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub email: Option<String>,
    pub role: Role,
    pub via: Via,
    /// The CSRF token forms and `x-csrf-token` must carry (cookie sessions only).
    pub csrf: Option<String>,
}

impl Principal {
    pub fn is_master_key(&self) -> bool {
        self.via == Via::MasterKey
    }

    pub fn session_hash(&self) -> Option<&str> {
        match &self.via {
            Via::Session { id_hash, .. } => Some(id_hash),
            Via::MasterKey | Via::VirtualKey { .. } => None,
        }
    }
}

/// The claims of the token `/v2/login` returns; `key` is the session's bearer secret.
#[derive(Debug, Deserialize)]
struct LoginClaims {
    key: String,
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// The bearer of an API request: `Authorization: Bearer`, else `x-litellm-api-key`.
fn api_bearer(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| {
        headers
            .get("x-litellm-api-key")
            .and_then(|v| v.to_str().ok())
    })
}

/// The secret an API request was authenticated with, as [`from_api_request`] reads it: the
/// bearer, else the session cookie.
pub fn presented_secret<'a>(state: &WebState, headers: &'a HeaderMap) -> Option<&'a str> {
    api_bearer(headers)
        .or_else(|| cookie_value(headers, crate::session::cookie_name(state, headers)))
}

fn unauthenticated() -> ApiError {
    ApiError::auth("Authentication Error, No api key passed in.")
}

fn invalid_session() -> ApiError {
    ApiError::auth("Authentication Error, the session has expired or was ended. Log in again.")
}

/// Resolves the caller of a management API request.
pub async fn from_api_request(
    state: &WebState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    if let Some(token) = api_bearer(headers) {
        if state.master_key.matches(token) {
            return Ok(master_principal(state));
        }
        if token.starts_with("sk-") {
            if let Some(p) = key_principal(state, token).await? {
                return Ok(p);
            }
        }
        // The whole signed token from /v2/login, or just its `key`.
        let secret =
            match jwt::verify::<LoginClaims>(&state.signing_key, token, Utc::now().timestamp()) {
                Ok(c) => c.key,
                Err(_) => token.to_string(),
            };
        return session_principal(state, &secret, false).await;
    }
    if let Some(cookie) = cookie_value(headers, crate::session::cookie_name(state, headers)) {
        let p = session_principal(state, cookie, true).await?;
        if !is_read(method) {
            check_csrf_header(&p, headers)?;
        }
        return Ok(p);
    }
    Err(unauthenticated())
}

/// Resolves the signed-in user of a UI page from the session cookie.
pub async fn from_ui_request(state: &WebState, headers: &HeaderMap) -> Option<Principal> {
    let cookie = cookie_value(headers, crate::session::cookie_name(state, headers))?;
    session_principal(state, cookie, true).await.ok()
}

pub fn master_principal(state: &WebState) -> Principal {
    Principal {
        user_id: state.config.proxy_admin_id.clone(),
        email: None,
        role: Role::ProxyAdmin,
        via: Via::MasterKey,
        csrf: None,
    }
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn check_csrf_header(p: &Principal, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if csrf_matches(p, presented) {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "auth_error",
            "A session cookie may change something only with the page's CSRF token (x-csrf-token).",
        ))
    }
}

pub fn csrf_matches(p: &Principal, presented: Option<&str>) -> bool {
    match (&p.csrf, presented) {
        (Some(expected), Some(token)) if !token.is_empty() => {
            subtle::ConstantTimeEq::ct_eq(token.as_bytes(), expected.as_bytes()).into()
        }
        _ => false,
    }
}

/// A session's CSRF token: derived from its secret with the server key, so pages can render it
/// on every load while the store keeps only the secret's hash.
pub fn csrf_token(signing_key: &[u8], session_secret: &str) -> String {
    use hmac::Mac;
    match hmac::Hmac::<sha2::Sha256>::new_from_slice(signing_key) {
        Ok(mut m) => {
            m.update(b"csrf:");
            m.update(session_secret.as_bytes());
            hex::encode(&m.finalize().into_bytes()[..16])
        }
        Err(_) => String::new(),
    }
}

async fn session_principal(
    state: &WebState,
    secret: &str,
    cookie: bool,
) -> Result<Principal, ApiError> {
    let id_hash = &hash_token(secret);
    let now = Utc::now();
    let session = state
        .store
        .get_live_session(id_hash, now)
        .await
        .map_err(|e| store_unavailable(&e))?
        .ok_or_else(invalid_session)?;
    let user = state
        .store
        .get_user(&session.user_id)
        .await
        .map_err(|e| store_unavailable(&e))?
        .ok_or_else(invalid_session)?;
    touch(state, &session, now).await;
    Ok(Principal {
        role: Role::parse(&user.user_role).unwrap_or(Role::InternalUser),
        user_id: user.user_id,
        email: user.user_email,
        via: Via::Session {
            id_hash: id_hash.to_string(),
            cookie,
        },
        csrf: cookie.then(|| csrf_token(&state.signing_key, secret)),
    })
}

/// The user a virtual key belongs to, with the user's role; `None` when it is no key at all.
async fn key_principal(state: &WebState, key: &str) -> Result<Option<Principal>, ApiError> {
    let token = tollgate_domain::secret::sha256_hex(key);
    let Some(k) = state
        .store
        .get_key(&token)
        .await
        .map_err(|e| store_unavailable(&e))?
    else {
        return Ok(None);
    };
    if k.blocked {
        return Err(ApiError::auth(
            "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin.",
        ));
    }
    let now = Utc::now();
    if let Some(exp) = k.expires.filter(|e| *e <= now) {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "expired_key",
            format!(
                "Authentication Error - Expired Key. Key Expiry time {exp} and current time {now}"
            ),
        ));
    }
    let no_user = || {
        ApiError::auth(
            "Authentication Error, this key belongs to no user; management routes need a user's key, a login token or the master key.",
        )
    };
    let Some(user_id) = k.user_id.as_deref() else {
        return Err(no_user());
    };
    let user = state
        .store
        .get_user(user_id)
        .await
        .map_err(|e| store_unavailable(&e))?
        .ok_or_else(no_user)?;
    Ok(Some(Principal {
        role: Role::parse(&user.user_role).unwrap_or(Role::InternalUser),
        user_id: user.user_id,
        email: user.user_email,
        via: Via::VirtualKey { token },
        csrf: None,
    }))
}

/// Slides the idle expiry forward, at most once a minute per session to spare the database.
async fn touch(state: &WebState, s: &SessionRow, now: DateTime<Utc>) {
    if now - s.last_seen_at < chrono::Duration::seconds(60) {
        return;
    }
    let idle =
        chrono::Duration::from_std(state.config.session_idle).unwrap_or(chrono::Duration::hours(2));
    let next = (now + idle).min(s.absolute_expires_at);
    if let Err(e) = state.store.touch_session(&s.id_hash, now, next).await {
        tracing::warn!(error = %e, "could not extend a session");
    }
}

pub fn store_unavailable(e: &tollgate_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "store error");
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "no_db_connection",
        "The database is unavailable; try again shortly.",
    )
}
