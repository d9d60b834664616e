//! `/spend/keys` and `/spend/users`: LiteLLM's key and user tables with their spend. Admin roles
//! see every row; everyone else only their own keys and their own user row (LiteLLM answers a
//! request for another user's row with 403). Both are capped, so an answer stays bounded however
//! many keys there are; a capped answer says so in a header, as `/spend/logs` does.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;
use tollgate_proxy::ApiError;
use tollgate_store::{KeyFilter, StoreError, UserFilter};

use super::keys::key_view;
use super::sees_all;
use super::spend::not_your_spend;
use crate::principal::{store_unavailable, Principal};
use crate::state::WebState;
use crate::views;

/// Rows read per store call, and the most an answer holds.
const PAGE: u32 = 500;
const MAX_ROWS: usize = 10_000;
const TRUNCATED: &str = "x-litellm-spend-rows-truncated";

/// Reads page after page (1-based) until the last one or [`MAX_ROWS`]; also says whether rows
/// were left out.
async fn collect<T, F, Fut>(mut read: F) -> Result<(Vec<T>, bool), StoreError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, i64), StoreError>>,
{
    let mut rows = Vec::new();
    let mut page = 1;
    loop {
        let (got, total) = read(page).await?;
        let last = got.len() < PAGE as usize;
        rows.extend(got);
        if rows.len() >= MAX_ROWS {
            let truncated = total > MAX_ROWS as i64;
            rows.truncate(MAX_ROWS);
            return Ok((rows, truncated));
        }
        if last {
            return Ok((rows, false));
        }
        page += 1;
    }
}

fn answer(rows: Vec<Value>, truncated: bool) -> Response {
    let mut resp = Json(rows).into_response();
    if truncated {
        resp.headers_mut()
            .insert(TRUNCATED, HeaderValue::from_static("true"));
    }
    resp
}

/// `GET /spend/keys`: keys with their spend, largest first.
pub async fn keys(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
) -> Response {
    let own = (!sees_all(&p)).then(|| p.user_id.clone());
    let read = collect(|page| {
        let filter = KeyFilter {
            size: PAGE,
            page,
            user_id: own.clone(),
            ..KeyFilter::default()
        };
        let store = state.store.clone();
        async move { store.list_keys(&filter).await }
    });
    let (mut rows, truncated) = match read.await {
        Ok(r) => r,
        Err(e) => return store_unavailable(&e).into_response(),
    };
    rows.sort_by_key(|r| std::cmp::Reverse(r.spend_nanos));
    answer(rows.iter().map(key_view).collect(), truncated)
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct UsersQuery {
    user_id: Option<String>,
}

/// `GET /spend/users[?user_id=]`: user rows with their spend (never a password hash).
pub async fn users(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<UsersQuery>,
) -> Response {
    let asked = q
        .user_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let one = if sees_all(&p) {
        asked.map(str::to_string)
    } else {
        match asked {
            Some(id) if id != p.user_id => {
                return not_your_spend("Not authorized to view spend for another user.")
                    .into_response()
            }
            _ => Some(p.user_id.clone()),
        }
    };
    if let Some(id) = one {
        return match state.store.get_user(&id).await {
            Ok(Some(u)) => answer(vec![views::user(&u)], false),
            Ok(None) => ApiError::bad_request(format!("User not found, user_id={id}"))
                .with_param("user_id")
                .into_response(),
            Err(e) => store_unavailable(&e).into_response(),
        };
    }
    let read = collect(|page| {
        let filter = UserFilter {
            page_size: PAGE,
            page,
            ..UserFilter::default()
        };
        let store = state.store.clone();
        async move { store.list_users(&filter).await }
    });
    let (mut rows, truncated) = match read.await {
        Ok(r) => r,
        Err(e) => return store_unavailable(&e).into_response(),
    };
    rows.sort_by_key(|r| std::cmp::Reverse(r.spend_nanos));
    answer(rows.iter().map(views::user).collect(), truncated)
}
