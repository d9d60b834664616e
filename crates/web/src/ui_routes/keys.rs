//! The Keys page: list, create (the secret shown once, with snippets), delete.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tollgate_domain::role::Role;
use tollgate_store::keys::{KeyFilter, KeyRow};

use crate::api::keys as key_api;
use crate::principal::Principal;
use crate::state::WebState;
use crate::views::ts;

use super::format::{budget_money, dollars};
use super::{
    api_message, confirm, denied, error_page, flash_for, form_post, may, redirect, render,
    signed_in, Page,
};

const KEY_PAGE_SIZE: u32 = 50;
/// The expiry choices the create form offers (value sent, as `duration`).
const KEY_DURATIONS: &[&str] = &["", "7d", "30d", "90d"];

pub(super) fn can_create_keys(p: &Principal) -> bool {
    may(p, "POST", "/key/generate") && p.role.can_write()
}

fn can_delete_keys(p: &Principal) -> bool {
    may(p, "POST", "/key/delete") && p.role.can_write()
}

/// Models the create form offers: configured names (no wildcard patterns), narrowed to the
/// caller's own model list when an admin restricted it.
async fn offered_models(state: &WebState, p: &Principal) -> Vec<String> {
    let mut names: Vec<String> = state
        .models
        .iter()
        .filter(|m| !m.contains('*'))
        .cloned()
        .collect();
    if p.role != Role::ProxyAdmin {
        let own = state
            .store
            .get_user(&p.user_id)
            .await
            .ok()
            .flatten()
            .map(|u| u.models)
            .unwrap_or_default();
        if !own.is_empty() {
            names.retain(|m| own.contains(m));
            for m in own {
                if !m.contains('*') && !names.contains(&m) {
                    names.push(m);
                }
            }
        }
    }
    names
}

/// The model the "Try it" snippets call `/v1/chat/completions` with: the first candidate the
/// price table calls a chat model, else the first whose mode is unknown; never an embedding,
/// image or audio model.
fn snippet_model<'a>(
    catalog: &[crate::state::ModelEntry],
    candidates: impl Iterator<Item = &'a String> + Clone,
) -> Option<String> {
    let mode = |name: &str| {
        catalog
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.mode.as_deref())
    };
    let chat = candidates.clone().find(|m| mode(m) == Some("chat"));
    chat.or_else(|| candidates.clone().find(|m| mode(m).is_none()))
        .cloned()
}

fn key_ctx(k: &KeyRow, user_email: Option<String>) -> KeyView {
    let pct = match k.max_budget_nanos {
        Some(b) if b > 0 => Some(
            ((k.spend_nanos as f64 / b as f64) * 100.0)
                .clamp(0.0, 100.0)
                .round() as i64,
        ),
        _ => None,
    };
    KeyView {
        token: k.token.clone(),
        alias: k.key_alias.clone(),
        key_name: k.key_name.clone(),
        models: k.models.clone(),
        budget_pct: pct,
        spend_label: dollars(k.spend_nanos),
        budget_label: k.max_budget_nanos.map(budget_money),
        tpm_limit: k.tpm_limit,
        rpm_limit: k.rpm_limit,
        expires: k.expires.as_ref().map(ts),
        status: key_api::status(k),
        user_id: k.user_id.clone(),
        user_email,
    }
}

async fn keys_ctx(state: &WebState, p: &Principal, q: &HashMap<String, String>) -> Page<KeysPage> {
    let page = q
        .get("page")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let user_filter = if p.role.sees_all() {
        q.get("user")
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
    } else {
        None
    };
    let filter = KeyFilter {
        user_id: if p.role.sees_all() {
            user_filter.clone()
        } else {
            Some(p.user_id.clone())
        },
        team_id: None,
        key_alias: None,
        page,
        size: KEY_PAGE_SIZE,
    };
    let (rows, total) = state.store.list_keys(&filter).await.unwrap_or_default();
    let mut emails: HashMap<String, Option<String>> = HashMap::new();
    let mut keys = Vec::new();
    for k in &rows {
        let email = match (&k.user_id, p.role.sees_all()) {
            (Some(uid), true) => {
                if !emails.contains_key(uid) {
                    let e = state
                        .store
                        .get_user(uid)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|u| u.user_email);
                    emails.insert(uid.clone(), e);
                }
                emails.get(uid).cloned().flatten()
            }
            _ => None,
        };
        keys.push(key_ctx(k, email));
    }
    let ctx = KeysPage {
        keys,
        total,
        page,
        total_pages: (total.max(0) as u64)
            .div_ceil(u64::from(KEY_PAGE_SIZE))
            .max(1),
        user_filter: user_filter.unwrap_or_default(),
        can_create: can_create_keys(p),
        can_delete: can_delete_keys(p),
        models: offered_models(state, p).await,
        created: None,
        form: KeyForm::default(),
    };
    Page::new(p, "keys", flash_for(q), ctx)
}

#[derive(Serialize)]
struct KeysPage {
    keys: Vec<KeyView>,
    total: i64,
    page: u32,
    total_pages: u64,
    /// The admin roles' filter by user id.
    user_filter: String,
    can_create: bool,
    can_delete: bool,
    /// What the create form offers.
    models: Vec<String>,
    /// The key just made, shown once.
    created: Option<Created>,
    form: KeyForm,
}

/// One row of the list: never the secret.
#[derive(Serialize)]
struct KeyView {
    token: String,
    alias: Option<String>,
    key_name: String,
    models: Vec<String>,
    budget_pct: Option<i64>,
    spend_label: String,
    budget_label: Option<String>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    expires: Option<String>,
    status: &'static str,
    user_id: Option<String>,
    user_email: Option<String>,
}

/// The new key, with what the "Try it" snippets need.
#[derive(Serialize)]
struct Created {
    key: String,
    key_name: String,
    alias: Option<String>,
    base_url: String,
    model: String,
}

/// The create form as it comes back.
#[derive(Serialize, Default)]
struct KeyForm {
    alias: String,
    models: Vec<String>,
    duration: String,
    errors: KeyFormErrors,
}

#[derive(Serialize, Default)]
struct KeyFormErrors {
    alias: Option<String>,
    models: Option<String>,
}

pub(super) async fn keys_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    render(
        &state,
        StatusCode::OK,
        "keys.html",
        &keys_ctx(&state, &p, &q).await,
    )
}

pub(super) async fn keys_create(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, f) = or_page!(form_post(&state, &headers, &body).await);
    if !can_create_keys(&p) {
        return denied(&state, &p);
    }
    // A multi-select sends `models` once per chosen option.
    let mut models: Vec<String> = url::form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "models")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    models.dedup();
    let alias = f
        .get("alias")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let duration = f
        .get("duration")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let offered = offered_models(&state, &p).await;
    let again = |ctx: &mut Page<KeysPage>, field: &str, msg: String| {
        let mut errors = KeyFormErrors::default();
        if field == "models" {
            errors.models = Some(msg);
        } else {
            errors.alias = Some(msg);
        }
        ctx.page.form = KeyForm {
            alias: alias.clone(),
            models: models.clone(),
            duration: duration.clone(),
            errors,
        };
    };
    let mut ctx = keys_ctx(&state, &p, &HashMap::new()).await;
    if alias.is_empty() {
        again(
            &mut ctx,
            "alias",
            "Give the key a name so you can tell it apart later.".to_string(),
        );
        return render(&state, StatusCode::BAD_REQUEST, "keys.html", &ctx);
    }
    if let Some(m) = models.iter().find(|m| !offered.contains(m)) {
        again(
            &mut ctx,
            "models",
            format!("{m} is not a model you can choose here."),
        );
        return render(&state, StatusCode::BAD_REQUEST, "keys.html", &ctx);
    }
    if !KEY_DURATIONS.contains(&duration.as_str()) {
        return error_page(
            &state,
            Some(&p),
            StatusCode::BAD_REQUEST,
            "Not created",
            "Choose one of the listed expiry times.",
        );
    }
    // "None selected" means every model the caller may use; for a user an admin restricted to
    // some models, that is exactly their list (the service refuses an unrestricted key for them).
    let chosen = if models.is_empty() && p.role != Role::ProxyAdmin {
        state
            .store
            .get_user(&p.user_id)
            .await
            .ok()
            .flatten()
            .map(|u| u.models)
            .unwrap_or_default()
    } else {
        models.clone()
    };
    let req = key_api::GenerateRequest {
        key_alias: Some(alias.clone()),
        duration: Some(duration.clone()).filter(|d| !d.is_empty()),
        models: Some(chosen).filter(|m| !m.is_empty()),
        ..Default::default()
    };
    match key_api::generate(&state, &p, &req).await {
        Ok((plaintext, row)) => {
            let mut ctx = keys_ctx(&state, &p, &HashMap::new()).await;
            let model = snippet_model(&state.model_catalog, row.models.iter().chain(&offered))
                .unwrap_or_else(|| "MODEL_NAME".to_string());
            ctx.page.created = Some(Created {
                key: plaintext,
                key_name: row.key_name,
                alias: row.key_alias,
                base_url: crate::session::base_url(&state, &headers)
                    .trim_end_matches('/')
                    .to_string(),
                model,
            });
            render(&state, StatusCode::OK, "keys.html", &ctx)
        }
        Err(e) => {
            let field = if e.message.to_ascii_lowercase().contains("model") {
                "models"
            } else {
                "alias"
            };
            again(&mut ctx, field, api_message(&e));
            render(&state, e.status, "keys.html", &ctx)
        }
    }
}

pub(super) async fn key_delete_confirm(
    State(state): State<Arc<WebState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    if !can_delete_keys(&p) {
        return denied(&state, &p);
    }
    let key = match state.store.get_key(&key_api::token_of(&token)).await {
        Ok(Some(k)) => k,
        _ => {
            return error_page(
                &state,
                Some(&p),
                StatusCode::NOT_FOUND,
                "Not found",
                "That key does not exist.",
            )
        }
    };
    // Only name keys the caller could list; delete_rows decides whether the delete goes through.
    let own = key.user_id.as_deref() == Some(p.user_id.as_str());
    let what = if own || p.role.sees_all() {
        match &key.key_alias {
            Some(a) => format!("the key “{a}” ({})", key.key_name),
            None => format!("the key {}", key.key_name),
        }
    } else {
        "this key".to_string()
    };
    confirm(
        &state,
        &p,
        "Delete key",
        &format!("Delete {what}? Programs using it stop working at once. This cannot be undone."),
        &format!("/ui/keys/{}/delete", key.token),
        "Delete key",
        "/ui/keys",
    )
}

pub(super) async fn key_delete(
    State(state): State<Arc<WebState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, _) = or_page!(form_post(&state, &headers, &body).await);
    if !can_delete_keys(&p) {
        return denied(&state, &p);
    }
    let key = match state.store.get_key(&key_api::token_of(&token)).await {
        Ok(Some(k)) => k,
        Ok(None) => {
            return error_page(
                &state,
                Some(&p),
                StatusCode::NOT_FOUND,
                "Not found",
                "That key does not exist.",
            )
        }
        Err(e) => {
            return error_page(
                &state,
                Some(&p),
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                &e.to_string(),
            )
        }
    };
    match key_api::delete_rows(&state, &p, std::slice::from_ref(&key)).await {
        Ok(()) => redirect("/ui/keys?done=key_deleted"),
        Err(e) => error_page(&state, Some(&p), e.status, "Not deleted", &api_message(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_call_a_chat_model() {
        let entry = |name: &str, mode: Option<&str>| crate::state::ModelEntry {
            name: name.to_string(),
            input_cost_per_token: None,
            output_cost_per_token: None,
            mode: mode.map(str::to_string),
            pattern: false,
        };
        let catalog = [
            entry("cheap-embed", Some("embedding")),
            entry("mystery", None),
            entry("gpt-4o-mini", Some("chat")),
        ];
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = names(&["cheap-embed", "mystery", "gpt-4o-mini"]);
        assert_eq!(
            snippet_model(&catalog, all.iter()).as_deref(),
            Some("gpt-4o-mini")
        );
        let no_chat = names(&["cheap-embed", "mystery"]);
        assert_eq!(
            snippet_model(&catalog, no_chat.iter()).as_deref(),
            Some("mystery")
        );
        let only_embed = names(&["cheap-embed"]);
        assert_eq!(snippet_model(&catalog, only_embed.iter()), None);
    }
}
