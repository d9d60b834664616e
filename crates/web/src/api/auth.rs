//! Login and logout for API clients and scripts: `POST /login` (form, 303), `POST /v2/login`
//! (JSON), `POST /session/logout`, and `GET /sso/get/ui_settings`.

use super::openapi::RawJson;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use tollgate_proxy::ApiError;

use super::{client_ip, parse_json};
use crate::login::authenticate;
use crate::onboarding::login_token;
use crate::principal::Principal;
use crate::session::{base_url, clearing_cookie, same_origin_post, start};
use crate::state::WebState;

fn cross_site() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "auth_error",
        "Cross-site login requests are refused.",
    )
}

pub fn form_fields(body: &[u8]) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub async fn form_login(
    State(state): State<Arc<WebState>>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !same_origin_post(&state, &headers) {
        return cross_site().into_response();
    }
    let f = form_fields(&body);
    let (user, pw) = (
        f.get("username").cloned().unwrap_or_default(),
        f.get("password").cloned().unwrap_or_default(),
    );
    let ip = client_ip(&state, ci.as_ref().map(|e| &e.0), &headers);
    let logged = match authenticate(&state, &user, &pw, ip).await {
        Ok(l) => l,
        Err(e) => return e.into_api_error().into_response(),
    };
    let started = match start(&state, &logged.user_id, &headers).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let location = format!("{}/ui?login=success", base_url(&state, &headers));
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let (Ok(l), Ok(c)) = (
        HeaderValue::from_str(&location),
        HeaderValue::from_str(&started.set_cookie),
    ) {
        resp.headers_mut().insert(header::LOCATION, l);
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct JsonLogin {
    username: String,
    password: String,
}

pub async fn json_login(
    State(state): State<Arc<WebState>>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    RawJson(body, _): RawJson<JsonLogin>,
) -> Response {
    if !same_origin_post(&state, &headers) {
        return cross_site().into_response();
    }
    let req: JsonLogin = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let ip = client_ip(&state, ci.as_ref().map(|e| &e.0), &headers);
    let logged = match authenticate(&state, &req.username, &req.password, ip).await {
        Ok(l) => l,
        Err(e) => return e.into_api_error().into_response(),
    };
    let started = match start(&state, &logged.user_id, &headers).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let token = login_token(
        &state,
        &started.secret,
        &logged.user_id,
        logged.email.as_deref(),
        logged.role.as_str(),
    );
    let mut resp = Json(json!({
        "redirect_url": format!("{}/ui?login=success", base_url(&state, &headers)),
        "token": token,
    }))
    .into_response();
    if let Ok(c) = HeaderValue::from_str(&started.set_cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

pub async fn session_logout(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let Some(hash) = p.session_hash() else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "auth_error",
            "Only a login session can be logged out; the master key has no session.",
        )
        .into_response();
    };
    if let Err(e) = state.store.delete_session(hash).await {
        return crate::principal::store_unavailable(&e).into_response();
    }
    let mut resp = Json(json!({"message": "Logged out."})).into_response();
    if let Ok(c) = HeaderValue::from_str(&clearing_cookie(&state, &headers)) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

pub async fn ui_settings(State(state): State<Arc<WebState>>) -> Response {
    Json(json!({
        "PROXY_BASE_URL": state.config.base_url,
        "PROXY_LOGOUT_URL": state.config.logout_url,
        "DEFAULT_TEAM_DISABLED": false,
        "SSO_ENABLED": state.sso.is_some(),
        "NUM_SPEND_LOGS_ROWS": 0,
        "DISABLE_EXPENSIVE_DB_QUERIES": false,
    }))
    .into_response()
}
