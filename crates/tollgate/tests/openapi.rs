//! `/openapi.json`: the management API as its handlers describe it. Every route of the policy
//! table that the gateway serves through the management API is in it with its method, and each
//! path in it is served; request bodies and queries carry the fields the handlers parse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tollgate_domain::policy::routes;
use tollgate_testkit::spawn_app;

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hi"}
general_settings: {master_key: "{master_key}"}
"#;

/// A schema's properties, following a `$ref` into the components.
fn properties<'a>(spec: &'a Value, schema: &'a Value) -> &'a serde_json::Map<String, Value> {
    let schema = match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &spec["components"]["schemas"][name]
        }
        None => schema,
    };
    schema["properties"].as_object().expect("an object schema")
}

#[tokio::test]
async fn the_description_covers_what_is_served() {
    let app = spawn_app(CONFIG).await;
    // Public, like LiteLLM's: no key needed to read it.
    let r = app
        .client()
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let spec: Value = r.json().await.unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{spec}"
    );
    assert_eq!(spec["info"]["title"], "Tollgate");

    let described: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    // Each described route is served (the master key never gets the "no such route" fallback).
    let m = app.master_key.clone();
    for (method, path) in &described {
        let concrete = path
            .replace("{key}", "sk-none")
            .replace("{request_id}", "none");
        let (status, body) = app.api(&m, method, &concrete, json!({})).await;
        let fallback = status == 404 && body.to_string().contains("no such route");
        assert!(!fallback, "{method} {path} is described but not served");
    }
    // Each route of the policy table served by the management API is described. Routes the
    // policy table holds for other parts of the gateway (inference, health, UI) answer there.
    let mut missing = Vec::new();
    for rule in routes() {
        let key = (rule.method.as_str().to_string(), rule.path.to_string());
        if described.contains(&key) || rule.path.contains('?') {
            continue;
        }
        let concrete = rule
            .path
            .replace("{key}", "sk-none")
            .replace("{request_id}", "none")
            .replace("{id}", "none");
        let (status, body) = app
            .api(&m, rule.method.as_str(), &concrete, json!({}))
            .await;
        let fallback = status == 404 && body.to_string().contains("no such route");
        let elsewhere = ["/v1/", "/chat/", "/embeddings", "/models", "/health", "/ui"]
            .iter()
            .any(|p| rule.path.starts_with(p) || rule.path.contains(p));
        if !fallback && !elsewhere {
            missing.push(key);
        }
    }
    assert!(missing.is_empty(), "served but not described: {missing:?}");
    for must in [
        ("POST", "/key/generate"),
        ("GET", "/key/info"),
        ("POST", "/key/update"),
        ("GET", "/spend/logs/v2"),
        ("POST", "/v2/login"),
    ] {
        assert!(
            described.contains(&(must.0.to_string(), must.1.to_string())),
            "{must:?}"
        );
    }

    // The gated routes ask for the bearer token; the public ones do not.
    assert_eq!(
        spec["paths"]["/key/generate"]["post"]["security"],
        json!([{"bearerAuth": []}])
    );
    assert!(spec["paths"]["/v2/login"]["post"]["security"].is_null());
    assert_eq!(
        spec["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    // Bodies and queries come from the handlers' types.
    let generate = &spec["paths"]["/key/generate"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    let fields = properties(&spec, generate);
    for f in ["key_alias", "models", "max_budget", "rpm_limit", "metadata"] {
        assert!(fields.contains_key(f), "{f} in {fields:?}");
    }
    assert_eq!(
        fields["max_budget"]["minimum"], 0,
        "{:?}",
        fields["max_budget"]
    );
    let update = &spec["paths"]["/key/update"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert!(properties(&spec, update).contains_key("key"));
    let info_params: Vec<&str> = spec["paths"]["/key/info"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(info_params, ["key"]);
    app.stop().await;
}
