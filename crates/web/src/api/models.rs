//! `GET /model/info` (and `/v1/model/info`, `/v2/model/info`): the deployments the caller may use,
//! in LiteLLM's shape, with the prices calls are charged by. Admin roles see every deployment and
//! its upstream host (credentials inside the URL masked); others see only the models their key
//! or user may call, without hosts.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_domain::model_name::list_allows;

use crate::principal::{store_unavailable, Principal, Via};
use crate::state::{DeploymentEntry, WebState};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ModelInfoQuery {
    litellm_model_id: Option<String>,
}

/// Which model names the caller may use.
enum Allowed {
    All,
    /// A virtual key: the proxy's own rule (the key's list narrows its owner's).
    Key(Arc<tollgate_proxy::keys::KeyInfo>),
    /// A signed-in user: their list; empty means every model.
    List(Vec<String>),
}

impl Allowed {
    fn permits(&self, model: &str) -> bool {
        match self {
            Allowed::All => true,
            Allowed::Key(k) => k.may_use(model),
            Allowed::List(l) => list_allows(l, model),
        }
    }
}

pub async fn model_info(
    State(state): State<Arc<WebState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ModelInfoQuery>,
) -> Response {
    let allowed = if p.role.sees_all() {
        Allowed::All
    } else if let Via::VirtualKey { token } = &p.via {
        match state.keys.get(&state.store, token).await {
            Ok(Some(k)) => Allowed::Key(k),
            Ok(None) => Allowed::List(vec!["no-default-models".into()]),
            Err(e) => return store_unavailable(&e).into_response(),
        }
    } else {
        match state.store.get_user(&p.user_id).await {
            Ok(Some(u)) => Allowed::List(u.models),
            Ok(None) => Allowed::List(vec!["no-default-models".into()]),
            Err(e) => return store_unavailable(&e).into_response(),
        }
    };
    let data: Vec<Value> = state
        .deployments
        .iter()
        .filter(|d| allowed.permits(&d.model_name))
        .filter(|d| {
            q.litellm_model_id
                .as_deref()
                .is_none_or(|id| d.model_info["id"] == id)
        })
        .map(|d| view(d, p.role.sees_all()))
        .collect();
    Json(json!({ "data": data })).into_response()
}

fn view(d: &DeploymentEntry, show_host: bool) -> Value {
    let mut params = d.litellm_params.clone();
    if show_host {
        if let (Some(base), Some(obj)) = (&d.api_base, params.as_object_mut()) {
            obj.insert("api_base".into(), json!(base));
        }
    }
    json!({
        "model_name": d.model_name,
        "litellm_params": params,
        "model_info": d.model_info,
    })
}
