//! The Account page: who you are, and changing your own password.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::api::users as user_api;
use crate::session::clearing_cookie;
use crate::state::WebState;

use super::{
    api_message, base_ctx, flash_for, form_post, merge, redirect, render, signed_in, with_cookie,
};

pub(super) async fn account_page(
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

pub(super) async fn account_password(
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
