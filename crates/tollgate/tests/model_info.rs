//! `/model/info` lists only what the caller may use, with prices, and never a credential.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use tollgate_testkit::spawn_app;

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, api_base: "http://10.1.2.3:8000/v1", api_key: sk-upstream-secret-1, mock_response: "hi", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
    model_info: {id: demo-1, max_output_tokens: 4096}
  - model_name: other
    litellm_params: {model: openai/other, api_key: sk-upstream-secret-2, mock_response: "hi"}
    model_info: {id: other-1}
general_settings: {master_key: "{master_key}"}
"#;

fn names(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["model_name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn model_info_is_scoped_priced_and_secret_free() {
    let app = spawn_app(CONFIG).await;
    let m = app.master_key.clone();
    let (s, all) = app.api(&m, "GET", "/model/info", json!({})).await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(names(&all), vec!["demo", "other"]);
    let demo = &all["data"][0];
    assert_eq!(demo["litellm_params"]["model"], "openai/demo");
    assert_eq!(
        demo["litellm_params"]["api_base"],
        "http://10.1.2.3:8000/v1"
    );
    assert_eq!(demo["model_info"]["id"], "demo-1");
    assert_eq!(demo["model_info"]["input_cost_per_token"], 0.000001);
    assert_eq!(demo["model_info"]["output_cost_per_token"], 0.000002);
    assert_eq!(demo["model_info"]["max_output_tokens"], 4096);
    assert_eq!(all["data"][1]["model_info"]["priced"], false);
    assert!(!all.to_string().contains("sk-upstream-secret"), "{all}");
    let (_, one) = app
        .api(
            &m,
            "GET",
            "/v2/model/info?litellm_model_id=other-1",
            json!({}),
        )
        .await;
    assert_eq!(names(&one), vec!["other"]);

    // A user limited to `demo`: their key sees only it, without the upstream host.
    let (s, u) = app
        .api(
            &m,
            "POST",
            "/user/new",
            json!({"user_email": "mi@example.com", "models": ["demo"], "auto_create_key": true}),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    let key = u["key"].as_str().unwrap().to_string();
    let (s, mine) = app.api(&key, "GET", "/model/info", json!({})).await;
    assert_eq!(s, 200, "{mine}");
    assert_eq!(names(&mine), vec!["demo"]);
    assert!(mine["data"][0]["litellm_params"]["api_base"].is_null());
    assert_eq!(
        mine["data"][0]["model_info"]["input_cost_per_token"],
        0.000001
    );
    // …and so does /v1/models for the same key.
    let r = app
        .client()
        .get(app.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["demo"]);

    // No credential, no list.
    let r = app
        .client()
        .get(app.url("/model/info"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}
