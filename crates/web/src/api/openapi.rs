//! `/openapi.json`: the management API described from its own handlers. Each route is
//! registered through aide's router, which reads the request body and query types from the
//! handler's extractors (schemas derived from the same serde types that parse the requests), so
//! the description cannot drift from what is served. Routes behind the gate carry the bearer
//! requirement; the public ones (login, onboarding, SSO settings) carry none.

use std::marker::PhantomData;

use aide::generate::GenContext;
use aide::openapi::{
    Components, Info, OpenApi, Operation, PathItem, ReferenceOr, SecurityRequirement,
    SecurityScheme,
};
use aide::OperationInput;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;

use super::JsonBody;

/// The name of the bearer scheme in the description.
const BEARER: &str = "bearerAuth";

impl<T: JsonSchema> OperationInput for JsonBody<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        <axum::Json<T> as OperationInput>::operation_input(ctx, operation);
    }
}

/// A JSON body read as bytes (the handler parses it itself, to tell an absent field from a
/// null one) and described as `T`.
pub struct RawJson<T>(pub Bytes, pub(crate) PhantomData<fn() -> T>);

impl<T, S: Send + Sync> FromRequest<S> for RawJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(RawJson(bytes, PhantomData))
    }
}

impl<T: JsonSchema> OperationInput for RawJson<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        <axum::Json<T> as OperationInput>::operation_input(ctx, operation);
    }
}

/// The whole description, from the gated routes' description and the public ones'.
pub(crate) fn document(gated: OpenApi, public: OpenApi) -> OpenApi {
    let mut api = OpenApi {
        info: Info {
            title: "Tollgate".to_string(),
            description: Some(
                "LiteLLM-compatible management API: keys, users, teams, invitations, spend."
                    .to_string(),
            ),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Info::default()
        },
        ..OpenApi::default()
    };
    let mut components = Components::default();
    components.security_schemes.insert(
        BEARER.to_string(),
        ReferenceOr::Item(SecurityScheme::Http {
            scheme: "bearer".to_string(),
            bearer_format: Some("master key, virtual key or login token".to_string()),
            description: None,
            extensions: Default::default(),
        }),
    );
    for (from, gated) in [(gated, true), (public, false)] {
        merge_components(&mut components, from.components);
        let Some(paths) = from.paths else { continue };
        for (path, item) in paths.paths {
            let ReferenceOr::Item(mut item) = item else {
                continue;
            };
            for_each_operation(&mut item, |method, op| {
                if gated {
                    op.security = vec![bearer()];
                }
                op.tags = vec![tag_of(&path)];
                op.operation_id = Some(operation_id(method, &path));
            });
            api.paths
                .get_or_insert_with(Default::default)
                .paths
                .insert(path, ReferenceOr::Item(item));
        }
    }
    api.components = Some(components);
    api
}

fn bearer() -> SecurityRequirement {
    let mut r = SecurityRequirement::new();
    r.insert(BEARER.to_string(), Vec::new());
    r
}

fn merge_components(into: &mut Components, from: Option<Components>) {
    if let Some(c) = from {
        into.schemas.extend(c.schemas);
    }
}

fn for_each_operation(item: &mut PathItem, mut f: impl FnMut(&str, &mut Operation)) {
    for (method, op) in [
        ("get", &mut item.get),
        ("post", &mut item.post),
        ("put", &mut item.put),
        ("patch", &mut item.patch),
        ("delete", &mut item.delete),
    ] {
        if let Some(op) = op {
            f(method, op);
        }
    }
}

/// The resource a path belongs to: its first segment (`/key/info` → `key`), past a version.
fn tag_of(path: &str) -> String {
    path.split('/')
        .find(|s| !s.is_empty() && !matches!(*s, "v1" | "v2"))
        .unwrap_or("root")
        .to_string()
}

/// A stable id from method and path: `post_key_generate`, `get_spend_logs_ui_request_id`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for part in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !part.is_empty() {
            id.push('_');
            id.push_str(part);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tags_come_from_the_path() {
        assert_eq!(
            operation_id("post", "/key/{key}/regenerate"),
            "post_key_key_regenerate"
        );
        assert_eq!(tag_of("/v2/model/info"), "model");
        assert_eq!(tag_of("/global/spend/tags"), "global");
        assert_eq!(tag_of("/"), "root");
    }
}
