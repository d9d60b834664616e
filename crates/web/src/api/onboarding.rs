//! `/onboarding/get_token` and `/onboarding/claim_token`, as LiteLLM's UI and scripts call them.

use super::openapi::RawJson;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tollgate_proxy::ApiError;

use super::parse_json;
use crate::onboarding::{check, claim, login_token, Checked, ClaimError};
use crate::session::{base_url, same_origin_post, start};
use crate::state::WebState;

/// The short-lived token that lets its holder set the password of one invitation.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct OnboardingClaims {
    token_type: String,
    invitation_link: String,
    user_id: String,
    exp: i64,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct Wrapped {
    key: String,
}

const TOKEN_TYPE: &str = "litellm_onboarding";

fn onboarding_error(message: &str) -> ApiError {
    ApiError::auth(message.to_string())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GetTokenQuery {
    invite_link: Option<String>,
    invitation_id: Option<String>,
}

pub async fn get_token(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<GetTokenQuery>,
) -> Response {
    let Some(id) = q.invite_link.or(q.invitation_id).filter(|s| !s.is_empty()) else {
        return onboarding_error("Invitation link does not exist in db.").into_response();
    };
    let (row, user) = match check(&state, &id).await {
        Ok(Checked::Usable(r, u)) => (r, u),
        Ok(Checked::Unusable(p)) => return onboarding_error(p.message()).into_response(),
        Err(e) => return e.into_response(),
    };
    let exp = Utc::now().timestamp() + 15 * 60;
    let inner = crate::jwt::sign(
        &state.signing_key,
        &OnboardingClaims {
            token_type: TOKEN_TYPE.to_string(),
            invitation_link: id.clone(),
            user_id: row.user_id.clone(),
            exp,
        },
    );
    let outer = crate::jwt::sign(
        &state.signing_key,
        &json!({"user_id": user.user_id, "key": inner, "user_email": user.user_email, "user_role": user.user_role, "login_method": "username_password", "exp": exp}),
    );
    let base = base_url(&state, &headers);
    let email = user.user_email.clone().unwrap_or_default();
    Json(json!({
        "login_url": format!("{base}/ui/onboarding?token={outer}&user_email={}", form_encode(&email)),
        "token": outer,
        "user_email": user.user_email,
    }))
    .into_response()
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The invitation id inside a token from `get_token` (LiteLLM's UI links carry `?token=`).
pub fn invitation_from_token(state: &WebState, token: &str) -> Option<String> {
    let now = Utc::now().timestamp();
    let inner = crate::jwt::verify::<Wrapped>(&state.signing_key, token, now)
        .map(|w| w.key)
        .unwrap_or_else(|_| token.to_string());
    crate::jwt::verify::<OnboardingClaims>(&state.signing_key, &inner, now)
        .ok()
        .filter(|c| c.token_type == TOKEN_TYPE)
        .map(|c| c.invitation_link)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ClaimRequest {
    invitation_link: String,
    user_id: String,
    password: String,
}

pub async fn claim_token(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    RawJson(body, _): RawJson<ClaimRequest>,
) -> Response {
    match do_claim(&state, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn do_claim(
    state: &WebState,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !same_origin_post(state, headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth_error",
            "Cross-site requests may not claim invitations.",
        ));
    }
    let req: ClaimRequest = parse_json(&body)?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            onboarding_error("Missing onboarding session token. Open the invitation link again.")
        })?;
    let now = Utc::now().timestamp();
    // The inner onboarding token, or the outer token that wraps it (as LiteLLM's UI holds it).
    let claims = crate::jwt::verify::<OnboardingClaims>(&state.signing_key, token, now)
        .ok()
        .or_else(|| {
            crate::jwt::verify::<Wrapped>(&state.signing_key, token, now)
                .ok()
                .and_then(|w| {
                    crate::jwt::verify::<OnboardingClaims>(&state.signing_key, &w.key, now).ok()
                })
        })
        .filter(|c| c.token_type == TOKEN_TYPE)
        .ok_or_else(|| {
            onboarding_error("Invalid onboarding session token. Open the invitation link again.")
        })?;
    if claims.invitation_link != req.invitation_link || claims.user_id != req.user_id {
        return Err(onboarding_error(
            "Invalid onboarding session token for this invitation.",
        ));
    }
    let user = match claim(state, &req.invitation_link, &req.password).await {
        Ok(u) => u,
        Err(ClaimError::Unusable(p)) => return Err(onboarding_error(p.message())),
        Err(ClaimError::WeakPassword(m)) => {
            return Err(
                ApiError::new(StatusCode::BAD_REQUEST, "validation_error", m)
                    .with_param("password"),
            )
        }
        Err(ClaimError::Busy(d)) => return Err(crate::login::busy(d)),
        Err(ClaimError::Failed(e)) => return Err(e),
    };
    let started = start(state, &user.user_id, headers).await?;
    let token = login_token(
        state,
        &started.secret,
        &user.user_id,
        user.user_email.as_deref(),
        &user.user_role,
    );
    let base = base_url(state, headers);
    let mut resp = Json(json!({"login_url": format!("{base}/ui?login=success"), "token": token, "user_email": user.user_email})).into_response();
    if let Ok(v) = HeaderValue::from_str(&started.set_cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}
