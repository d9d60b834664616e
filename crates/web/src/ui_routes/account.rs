//! The Account page: who you are, and changing your own password.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;

use crate::api::users as user_api;
use crate::session::clearing_cookie;
use crate::state::WebState;

use super::{api_message, flash_for, form_post, redirect, render, signed_in, with_cookie, Page};

pub(super) async fn account_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    let ctx = AccountPage {
        errors: PasswordErrors::default(),
        min_len: state.config.password_policy.min_len(),
    };
    render(
        &state,
        StatusCode::OK,
        "account.html",
        &Page::new(&p, "account", flash_for(&q), ctx),
    )
}

#[derive(Serialize)]
struct AccountPage {
    errors: PasswordErrors,
    min_len: usize,
}

/// What the password form says under each field.
#[derive(Serialize, Default)]
struct PasswordErrors {
    current_password: Option<String>,
    new_password: Option<String>,
}

pub(super) async fn account_password(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    let current = f.get("current_password").cloned().unwrap_or_default();
    let new = f.get("new_password").cloned().unwrap_or_default();
    let again = |errors: PasswordErrors| {
        let ctx = AccountPage {
            errors,
            min_len: state.config.password_policy.min_len(),
        };
        render(
            &state,
            StatusCode::BAD_REQUEST,
            "account.html",
            &Page::new(&p, "account", None, ctx),
        )
    };
    let on_new = |msg: String| PasswordErrors {
        new_password: Some(msg),
        ..PasswordErrors::default()
    };
    if f.get("new_password_confirm") != Some(&new) {
        return again(on_new(
            "The two new passwords are not the same.".to_string(),
        ));
    }
    match user_api::change_own_password(&state, &p, &current, &new).await {
        // Every session ended, this one included: sign in again with the new password.
        Ok(()) => with_cookie(redirect("/ui/login"), &clearing_cookie(&state, &headers)),
        Err(e) if e.param.as_deref() == Some("current_password") => again(PasswordErrors {
            current_password: Some(api_message(&e)),
            ..PasswordErrors::default()
        }),
        Err(e) => again(on_new(api_message(&e))),
    }
}
