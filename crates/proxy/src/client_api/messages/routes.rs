//! The Messages routes: `POST /v1/messages` runs through the chat pipeline; count_tokens is
//! answered here, without an upstream.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::api::Messages;
use super::count_tokens::count_tokens;
use crate::auth::authenticate_call;
use crate::client_api::ClientApi;
use crate::error::ApiError;
use crate::handlers::{self, check_content_type, read_body};
use crate::providers::translate::TranslateError;
use crate::providers::CallType;
use crate::state::ProxyState;

/// `POST /v1/messages` (and `/anthropic/v1/messages`).
pub(crate) async fn messages(State(state): State<Arc<ProxyState>>, req: Request) -> Response {
    handlers::handle(state, CallType::Chat, Some(&Messages), req).await
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": n}`, estimated (see `count_tokens`).
pub(crate) async fn messages_count_tokens(
    State(state): State<Arc<ProxyState>>,
    req: Request,
) -> Response {
    match count(&state, req).await {
        Ok(n) => {
            let mut r = json!({"input_tokens": n}).to_string().into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => Messages.error_response(e),
    }
}

async fn count(state: &ProxyState, req: Request) -> Result<u64, ApiError> {
    let caller = authenticate_call(state, req.headers()).await?;
    check_content_type(req.headers())?;
    let bytes = read_body(req, state.settings.max_body_bytes).await?;
    let body: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::bad_request("The request body must be a JSON object."))?;
    let n = count_tokens(&body).map_err(|e| match e {
        TranslateError::BadRequest(m) | TranslateError::BadUpstream(m) => ApiError::bad_request(m),
    })?;
    // As for a call: a key counts only for the models it may use, and only for real ones.
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !caller.may_use(model) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "key_model_access_denied",
            format!("key not allowed to access model. Tried to access {model}."),
        ));
    }
    if !state.router.knows(model) {
        return Err(ApiError::bad_request(format!(
            "Invalid model name passed in model={model}."
        )));
    }
    Ok(n)
}
