//! The LiteLLM-compatible management API. Every route below `authorized()` passes through one
//! gate: the caller is resolved (master key, login token, or cookie + CSRF) and the route policy
//! table in `tollgate_domain::policy` decides; handlers then scope rows to the caller.

pub mod audit;
pub mod auth;
pub mod invitations;
pub mod keys;
pub mod models;
pub mod onboarding;
pub mod openapi;
pub mod spend;
pub mod spend_activity;
pub mod spend_reports;
pub mod spend_tables;
pub mod teams;
pub mod users;
pub mod validate;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use aide::axum::routing::{get, post};
use aide::axum::ApiRouter;
use aide::openapi::OpenApi;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::de::DeserializeOwned;
use tollgate_domain::policy::{decide_for_user, Decision};
use tollgate_proxy::ApiError;

use crate::principal::{from_api_request, Principal};
use crate::state::WebState;

/// The management API's router; its description (`/openapi.json`) is built from the same list.
pub fn routes(state: Arc<WebState>) -> Router {
    // Create routes honour `Idempotency-Key`; inside the gate, so the caller is known.
    let idempotent =
        || axum::middleware::from_fn_with_state(state.clone(), crate::idempotency::idempotent);
    let authorized = ApiRouter::new()
        .api_route("/user/new", post(users::new_user).layer(idempotent()))
        .api_route("/user/info", get(users::info))
        .api_route("/user/update", post(users::update))
        .api_route("/user/delete", post(users::delete))
        .api_route("/user/list", get(users::list))
        .api_route("/user/available_roles", get(users::available_roles))
        .api_route("/user/password/change", post(users::change_password))
        .api_route(
            "/invitation/new",
            post(invitations::new_invitation).layer(idempotent()),
        )
        .api_route("/invitation/info", get(invitations::info))
        .api_route("/invitation/update", post(invitations::update))
        .api_route("/invitation/delete", post(invitations::delete))
        .api_route("/team/new", post(teams::new_team).layer(idempotent()))
        .api_route("/team/info", get(teams::info))
        .api_route("/team/list", get(teams::list))
        .api_route("/team/update", post(teams::update))
        .api_route("/team/delete", post(teams::delete))
        .api_route("/team/member_add", post(teams::member_add))
        .api_route("/team/member_delete", post(teams::member_delete))
        .api_route("/team/member_update", post(teams::member_update))
        .api_route(
            "/key/generate",
            post(keys::generate_route).layer(idempotent()),
        )
        .api_route("/key/info", get(keys::info))
        .api_route("/key/list", get(keys::list))
        .api_route("/key/update", post(keys::update))
        .api_route("/key/delete", post(keys::delete))
        .api_route("/key/regenerate", post(keys::regenerate))
        .api_route("/key/{key}/regenerate", post(keys::regenerate_path))
        .api_route("/key/block", post(keys::block))
        .api_route("/key/unblock", post(keys::unblock))
        .api_route("/audit", get(audit::list))
        .api_route("/spend/logs", get(spend::logs))
        .api_route("/spend/logs/v2", get(spend::logs_v2))
        .api_route("/spend/logs/ui", get(spend::logs_v2))
        .api_route("/user/daily/activity", get(spend_activity::user_activity))
        .api_route("/team/daily/activity", get(spend_activity::team_activity))
        .api_route("/global/spend", get(spend::global_spend))
        .api_route("/global/spend/keys", get(spend::global_spend_keys))
        .api_route("/global/spend/teams", get(spend::global_spend_teams))
        .api_route("/global/spend/models", get(spend::global_spend_models))
        .api_route("/global/spend/logs", get(spend::global_spend_logs))
        .api_route("/global/spend/provider", get(spend::global_spend_provider))
        .api_route("/global/spend/tags", get(spend::global_spend_tags))
        .api_route("/spend/tags", get(spend::spend_tags))
        .api_route("/global/spend/report", get(spend_reports::global_report))
        .api_route("/key/spend/report", get(spend_reports::key_report))
        .api_route("/user/spend/report", get(spend_reports::user_report))
        .api_route("/team/spend/report", get(spend_reports::team_report))
        .api_route(
            "/global/spend/all_tag_names",
            get(spend_reports::all_tag_names),
        )
        .api_route(
            "/global/spend/end_users",
            post(spend_reports::end_user_spend),
        )
        .api_route("/global/all_end_users", get(spend_reports::all_end_users))
        .api_route("/global/spend/reset", post(spend_reports::reset_spend))
        .api_route("/global/spend/refresh", post(spend_reports::refresh))
        .api_route("/global/activity", get(spend_reports::global_activity))
        .api_route(
            "/global/activity/model",
            get(spend_reports::global_activity_model),
        )
        .api_route("/spend/keys", get(spend_tables::keys))
        .api_route("/spend/users", get(spend_tables::users))
        .api_route("/model/info", get(models::model_info))
        .api_route("/v1/model/info", get(models::model_info))
        .api_route("/v2/model/info", get(models::model_info))
        .api_route("/session/logout", post(auth::session_logout))
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate));
    let public = ApiRouter::new()
        .api_route("/login", post(auth::form_login))
        .api_route("/v2/login", post(auth::json_login))
        .api_route("/onboarding/get_token", get(onboarding::get_token))
        .api_route("/onboarding/claim_token", post(onboarding::claim_token))
        .api_route("/sso/get/ui_settings", get(auth::ui_settings));
    let (mut gated_api, mut public_api) = (OpenApi::default(), OpenApi::default());
    let authorized = authorized.finish_api(&mut gated_api);
    let public = public.finish_api(&mut public_api);
    let description = openapi::document(gated_api, public_api);
    let spec = Bytes::from(serde_json::to_vec(&description).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the API description could not be serialized");
        Vec::new()
    }));
    let served = axum::Router::new().route(
        "/openapi.json",
        axum::routing::get(move || {
            let spec = spec.clone();
            async move { ([(CONTENT_TYPE, "application/json")], spec) }
        }),
    );
    authorized.merge(public).merge(served).with_state(state)
}

/// The one authorization gate of the management API.
async fn gate(State(state): State<Arc<WebState>>, mut req: Request, next: Next) -> Response {
    let principal = match from_api_request(&state, req.method(), req.headers()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let decision = decide_for_user(
        req.method().as_str(),
        req.uri().path(),
        principal.role,
        Some(&principal.user_id),
    );
    if let Decision::Deny { status, message } = &decision {
        let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::FORBIDDEN);
        return ApiError::new(status, "auth_error", message.clone()).into_response();
    }
    req.extensions_mut().insert(principal);
    req.extensions_mut().insert(decision);
    next.run(req).await
}

/// A JSON request body, parsed by [`parse_json`]: handlers take the value, and bad input is
/// answered in the error envelope before they run.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let bytes = <Bytes as axum::extract::FromRequest<S>>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        parse_json(&bytes)
            .map(JsonBody)
            .map_err(IntoResponse::into_response)
    }
}

/// Parses a JSON body into `T`, answering bad input in the error envelope.
pub fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return serde_json::from_slice(b"{}")
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")));
    }
    match axum::Json::<T>::from_bytes(body) {
        Ok(axum::Json(value)) => Ok(value),
        Err(rejection) => {
            let (path, detail) = failing_field::<T>(&rejection, body);
            Err(validate::body_error(
                path.as_deref(),
                &without_values(&detail),
            ))
        }
    }
}

/// Which field of the body failed, and serde's detail. axum's rejection reads the body with
/// serde_path_to_error, so its message is serde's prefixed with the field's path; reading the
/// body again without the path tells the two apart (this runs on refusals only).
fn failing_field<T: DeserializeOwned>(
    rejection: &axum::extract::rejection::JsonRejection,
    body: &[u8],
) -> (Option<String>, String) {
    let with_path = std::error::Error::source(rejection)
        .map(ToString::to_string)
        .unwrap_or_else(|| rejection.body_text());
    let detail = match serde_json::from_slice::<T>(body) {
        Err(e) => e.to_string(),
        Ok(_) => return (None, with_path),
    };
    let path = with_path
        .strip_suffix(detail.as_str())
        .and_then(|p| p.strip_suffix(": "))
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    (path, detail)
}

/// serde quotes a mistyped string value (`invalid type: string "sk-…", expected f64`); a client
/// that put a key in the wrong field must not get it back in the error body. Keeps the rest.
fn without_values(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(QUOTED) {
        out.push_str(&rest[..i + "string".len()]);
        let value = &rest[i + QUOTED.len()..];
        // The value is Debug-escaped: it ends at the first quote not escaped by a backslash.
        let mut escaped = false;
        let end = value.char_indices().find_map(|(j, c)| {
            let closing = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closing.then_some(j)
        });
        rest = end.map_or("", |j| &value[j + 1..]);
    }
    out.push_str(rest);
    out
}

/// The client address, for login throttling. `X-Forwarded-For` is used only when the operator
/// says a trusted reverse proxy sets it (`TOLLGATE_TRUST_X_FORWARDED_FOR=true`): any client could
/// otherwise pick its own address and escape throttling.
pub fn client_ip(
    state: &WebState,
    req_ext: Option<&ConnectInfo<SocketAddr>>,
    headers: &HeaderMap,
) -> IpAddr {
    if state.config.trust_forwarded_for {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    req_ext
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "auth_error", message)
}

pub fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found_error", message)
}

/// A query parameter that is present and not blank, trimmed.
pub(crate) fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `sees_all` roles read everything; the others only what is theirs.
pub fn sees_all(p: &Principal) -> bool {
    p.role.sees_all()
}

#[cfg(test)]
mod value_tests {
    use super::{parse_json, without_values};
    use axum::body::Bytes;

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Body {
        max_budget: Option<super::validate::Usd>,
        tpm_limit: Option<super::validate::Count>,
        alias: Option<String>,
        members: Option<Vec<Member>>,
    }

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Member {
        role: String,
    }

    fn param_and_message(body: &str) -> (Option<String>, String) {
        let e = parse_json::<Body>(&Bytes::from(body.to_string())).unwrap_err();
        assert_eq!(e.status.as_u16(), 422, "{body}");
        assert_eq!(e.kind, "validation_error", "{body}");
        (e.param, e.message)
    }

    #[test]
    fn refusals_name_the_field_that_failed() {
        for (body, field) in [
            (r#"{"max_budget": -1}"#, "max_budget"),
            (r#"{"max_budget": 1e400}"#, "max_budget"),
            (r#"{"max_budget": "sk-secret"}"#, "max_budget"),
            (r#"{"alias": "a", "tpm_limit": -5}"#, "tpm_limit"),
            (r#"{"tpm_limit": 18446744073709551615}"#, "tpm_limit"),
            (r#"{"tpm_limit": 2.5}"#, "tpm_limit"),
            (r#"{"alias": 7}"#, "alias"),
            (r#"{"members": [{"role": 1}]}"#, "members[0].role"),
        ] {
            let (param, message) = param_and_message(body);
            assert_eq!(param.as_deref(), Some(field), "{body}: {message}");
            assert!(message.contains(field), "{body}: {message}");
            assert!(!message.contains("sk-secret"), "{message}");
        }
        let (param, message) = param_and_message("1");
        assert_eq!(param, None);
        assert!(
            message.starts_with("Invalid request body: invalid type"),
            "{message}"
        );
        let (param, _) = param_and_message(r#"{"alias": "a""#);
        assert_eq!(param, None);
    }

    #[test]
    fn serde_messages_lose_quoted_values_only() {
        assert_eq!(
            without_values(r#"invalid type: string "sk-abc\"d", expected f64 at line 1 column 9"#),
            "invalid type: string, expected f64 at line 1 column 9"
        );
        assert_eq!(
            without_values("missing field `key` at line 1 column 2"),
            "missing field `key` at line 1 column 2"
        );
        assert_eq!(without_values(r#"string "unterminated"#), "string");
    }
}
