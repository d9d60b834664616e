//! One LiteLLM config that uses Gemini, Vertex AI and Bedrock together, written as LiteLLM users
//! write it (keys and credentials from `os.environ/`, LiteLLM's own parameter names), starts the
//! gateway unchanged; a chat or embedding call reaches each provider (the fakes stand in for
//! Google and AWS through `api_base`) and is recorded under its provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use tollgate_testkit::bedrock::{FAKE_AWS_ACCESS_KEY_ID, FAKE_AWS_SECRET_ACCESS_KEY};
use tollgate_testkit::upstream::FAKE_TEXT;
use tollgate_testkit::{spawn_app_vars, FakeUpstream};

fn config(base: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gemini-flash
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_key: os.environ/GEMINI_API_KEY
      api_base: "{base}"
  - model_name: vertex-gemini
    litellm_params:
      model: vertex_ai/gemini-2.5-flash
      vertex_project: my-project
      vertex_location: us-central1
      vertex_credentials: os.environ/VERTEX_KEY_FILE
      api_base: "{base}"
  - model_name: vertex-claude
    litellm_params:
      model: vertex_ai/claude-sonnet-4-5@20250929
      vertex_project: my-project
      vertex_location: us-east5
      vertex_credentials: os.environ/VERTEX_KEY_FILE
      api_base: "{base}"
  - model_name: vertex-embedding
    litellm_params:
      model: vertex_ai/text-embedding-005
      vertex_credentials: os.environ/VERTEX_KEY_FILE
      api_base: "{base}"
  - model_name: bedrock-claude
    litellm_params:
      model: bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0
      aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID
      aws_secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY
      aws_region_name: us-east-1
      api_base: "{base}"
  - model_name: bedrock-titan
    litellm_params:
      model: bedrock/amazon.titan-embed-text-v2:0
      aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID
      aws_secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY
      aws_region_name: us-east-1
      api_base: "{base}"
litellm_settings:
  drop_params: true
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 2
general_settings:
  master_key: "{{master_key}}"
"#
    )
}

#[tokio::test]
async fn a_litellm_config_with_gemini_vertex_and_bedrock_starts_and_serves_each() {
    let up = FakeUpstream::start().await;
    let key = up.vertex_service_account();
    let key_path = key.path.display().to_string();
    let app = spawn_app_vars(
        &config(&up.base_url),
        &[
            ("GEMINI_API_KEY", "gm-provider-secret-123456"),
            ("VERTEX_KEY_FILE", key_path.as_str()),
            ("AWS_ACCESS_KEY_ID", FAKE_AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", FAKE_AWS_SECRET_ACCESS_KEY),
        ],
    )
    .await;

    let (s, models) = app
        .api(&app.master_key, "GET", "/v1/models", json!(null))
        .await;
    assert_eq!(s, 200, "{models}");
    let mut names: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "bedrock-claude",
            "bedrock-titan",
            "gemini-flash",
            "vertex-claude",
            "vertex-embedding",
            "vertex-gemini"
        ]
    );

    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 50});
    for model in [
        "gemini-flash",
        "vertex-gemini",
        "vertex-claude",
        "bedrock-claude",
    ] {
        let (s, v) = app
            .api(&app.master_key, "POST", "/v1/chat/completions", chat(model))
            .await;
        assert_eq!(s, 200, "{model}: {v}");
        let text = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(
            text.starts_with("Hello from"),
            "{model} answered {text:?} ({FAKE_TEXT:?} expected or the fake Claude's)"
        );
        assert!(
            v["usage"]["total_tokens"].as_u64().unwrap() > 0,
            "{model}: {v}"
        );
    }
    // `litellm_settings.drop_params`: what Gemini and Bedrock can't honour is dropped, not refused.
    for model in ["gemini-flash", "bedrock-claude"] {
        let mut body = chat(model);
        body["logprobs"] = json!(true);
        let (s, v) = app
            .api(&app.master_key, "POST", "/v1/chat/completions", body)
            .await;
        assert_eq!(s, 200, "{model}: {v}");
    }
    for model in ["vertex-embedding", "bedrock-titan"] {
        let (s, v) = app
            .api(
                &app.master_key,
                "POST",
                "/v1/embeddings",
                json!({"model": model, "input": ["one", "two"]}),
            )
            .await;
        assert_eq!(s, 200, "{model}: {v}");
        assert_eq!(v["data"].as_array().unwrap().len(), 2, "{model}: {v}");
    }

    app.wait_for_spend_logs(8).await;
    let (s, logs) = app
        .api(&app.master_key, "GET", "/spend/logs", json!(null))
        .await;
    assert_eq!(s, 200, "{logs}");
    let mut providers: Vec<(String, String)> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["model_group"].as_str().unwrap().to_string(),
                l["custom_llm_provider"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    providers.sort();
    let expected: Vec<(String, String)> = [
        ("bedrock-claude", "bedrock"),
        ("bedrock-claude", "bedrock"),
        ("bedrock-titan", "bedrock"),
        ("gemini-flash", "gemini"),
        ("gemini-flash", "gemini"),
        ("vertex-claude", "vertex_ai"),
        ("vertex-embedding", "vertex_ai"),
        ("vertex-gemini", "vertex_ai"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(providers, expected, "{logs}");
    app.stop().await;
}
