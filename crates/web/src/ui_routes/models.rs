//! The Models page: the models the caller may use, with their prices.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tollgate_domain::model_name::list_allows;
use tollgate_domain::role::Role;

use crate::principal::Principal;
use crate::state::WebState;

use super::format::per_million;
use super::{render, signed_in, Page};

/// The caller's own model list (empty: no restriction). Proxy admins are never restricted.
async fn own_model_list(state: &WebState, p: &Principal) -> Vec<String> {
    if p.role == Role::ProxyAdmin {
        return Vec::new();
    }
    state
        .store
        .get_user(&p.user_id)
        .await
        .ok()
        .flatten()
        .map(|u| u.models)
        .unwrap_or_default()
}

pub(super) async fn models_page(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
) -> Response {
    let p = or_page!(signed_in(&state, &headers).await);
    let own = own_model_list(&state, &p).await;
    let models = state
        .model_catalog
        .iter()
        .filter(|m| list_allows(&own, &m.name))
        .map(|m| ModelRow {
            name: &m.name,
            pattern: m.pattern,
            mode: m.mode.as_deref(),
            input: per_million(m.input_cost_per_token),
            output: per_million(m.output_cost_per_token),
        })
        .collect();
    let restricted = !own.is_empty() && !own.iter().any(|m| m == "all-proxy-models");
    let ctx = ModelsPage { models, restricted };
    render(
        &state,
        StatusCode::OK,
        "models.html",
        &Page::new(&p, "models", None, ctx),
    )
}

#[derive(Serialize)]
struct ModelsPage<'a> {
    models: Vec<ModelRow<'a>>,
    /// The caller's own model list narrows what is shown.
    restricted: bool,
}

#[derive(Serialize)]
struct ModelRow<'a> {
    name: &'a str,
    pattern: bool,
    mode: Option<&'a str>,
    /// Dollars per million tokens.
    input: Option<String>,
    output: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_lists_follow_the_proxy_rule() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(list_allows(&[], "gpt-4o"));
        assert!(list_allows(&list(&["all-proxy-models"]), "gpt-4o"));
        assert!(list_allows(&list(&["gpt-*"]), "gpt-4o"));
        assert!(list_allows(&list(&["gpt-4o"]), "gpt-4o"));
        assert!(!list_allows(&list(&["gpt-4o"]), "gpt-4o-mini"));
        assert!(!list_allows(&list(&["claude-*"]), "gpt-4o"));
    }
}
