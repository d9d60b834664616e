//! Vertex AI (`vertex_ai/` deployments) through the gateway, against the fake upstream's Vertex
//! routes and token endpoint: Gemini chat, streams, tools and embeddings, Claude chat, streams and
//! tool calls, errors, the service account's token (cached, refreshed, refused), the ways
//! credentials are named, and the spend recorded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{json, Value};
use tollgate_store::SpendStatus;
use tollgate_testkit::upstream::{ServiceAccountFile, VERTEX_PROJECT};
use tollgate_testkit::{spawn_app, spawn_app_vars, Behavior, FakeUpstream, TestApp};

const FAKE_TEXT: &str = "Hello from the fake upstream";
const CLAUDE: &str = "claude-sonnet-4-5@20250929";

fn config(up: &FakeUpstream, key: &ServiceAccountFile) -> String {
    format!(
        r#"
model_list:
  - model_name: vgemini
    litellm_params: {{model: vertex_ai/gemini-2.5-flash, vertex_project: proj-1, vertex_location: europe-west4, vertex_credentials: "{path}", api_base: "{base}"}}
  - model_name: vembed
    litellm_params: {{model: vertex_ai/text-embedding-005, vertex_credentials: "{path}", api_base: "{base}"}}
  - model_name: vclaude
    litellm_params: {{model: vertex_ai/{CLAUDE}, vertex_project: proj-1, vertex_location: us-east5, vertex_credentials: "{path}", api_base: "{base}"}}
general_settings:
  master_key: "{{master_key}}"
"#,
        path = key.path.display(),
        base = up.base_url
    )
}

async fn setup() -> (TestApp, FakeUpstream, ServiceAccountFile) {
    let up = FakeUpstream::start().await;
    let key = up.vertex_service_account();
    let app = spawn_app(&config(&up, &key)).await;
    (app, up, key)
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Say hello"}
    ]})
}

fn call_id(resp: &reqwest::Response) -> String {
    resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string()
}

async fn record(app: &TestApp, id: &str, n: i64) -> tollgate_store::SpendRecord {
    app.wait_for_spend_logs(n).await;
    app.store.get_spend_log(id).await.unwrap().unwrap()
}

/// The data of every SSE event but `[DONE]`, and whether the stream ended with `[DONE]`.
fn events(text: &str) -> (Vec<Value>, bool) {
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    let done = data.last() == Some(&"[DONE]");
    let chunks = data
        .into_iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (chunks, done)
}

fn streamed_content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("error body is JSON");
    assert_eq!(v["error"]["code"], status.to_string(), "envelope: {v}");
    (status, v)
}

fn bearer(seen: &tollgate_testkit::upstream::Seen) -> String {
    seen.headers["authorization"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn gemini_chat_goes_to_the_project_location_and_model_with_a_token() {
    let (app, up, _key) = setup().await;
    let resp = app.post("/v1/chat/completions", &chat("vgemini")).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "vgemini");
    assert_eq!(v["choices"][0]["message"]["content"], FAKE_TEXT);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 12);
    assert_eq!(v["usage"]["completion_tokens"], 6);

    let seen = up.last();
    assert_eq!(
        seen.path,
        "/v1/projects/proj-1/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(seen.query, None);
    assert!(bearer(&seen).starts_with("Bearer ya29.fake-token-"));
    assert!(!seen.headers.contains_key("x-goog-api-key"));
    assert_eq!(
        seen.body,
        json!({
            "systemInstruction": {"parts": [{"text": "Be brief"}]},
            "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]
        })
    );

    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));
    assert!(!rec.usage_estimated);
    assert_eq!(rec.custom_llm_provider.as_deref(), Some("vertex_ai"));
    assert!(
        rec.priced && rec.spend_nanos > 0,
        "gemini-2.5-flash is priced for Vertex by its bare name"
    );
    app.stop().await;
}

#[tokio::test]
async fn gemini_stream_is_translated_with_usage_and_done() {
    let (app, up, _key) = setup().await;
    let mut body = chat("vgemini");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let text = resp.text().await.unwrap();
    let (chunks, done) = events(&text);
    assert!(done, "{text}");
    assert_eq!(streamed_content(&chunks), FAKE_TEXT);
    assert!(chunks.iter().all(|c| c["model"] == "vgemini"));
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 18);
    let seen = up.last();
    assert_eq!(
        seen.path,
        "/v1/projects/proj-1/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(seen.query.as_deref(), Some("alt=sse"));
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert!(rec.stream);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));

    // A stream broken midway fails and is billed by what it carried.
    up.set("gemini-2.5-flash", Behavior::ResetMidStream);
    body.as_object_mut().unwrap().remove("stream_options");
    let resp = app.post("/v1/chat/completions", &body).await;
    let id = call_id(&resp);
    let (chunks, done) = events(&resp.text().await.unwrap());
    assert!(!done);
    assert_eq!(streamed_content(&chunks), "partial answer ");
    assert!(chunks.last().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("in the middle of the stream"));
    let rec = record(&app, &id, 2).await;
    assert_eq!(rec.status, SpendStatus::Failure);
    assert!(rec.usage_estimated);
    app.stop().await;
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }
    }}])
}

#[tokio::test]
async fn gemini_tool_calls_and_json_mode() {
    let (app, up, _key) = setup().await;
    let body = json!({
        "model": "vgemini",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": weather_tools(),
        "tool_choice": "required"
    });
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    let seen = up.last();
    assert_eq!(
        seen.body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert_eq!(
        seen.body["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );

    let mut json_mode = chat("vgemini");
    json_mode["response_format"] = json!({"type": "json_object"});
    let resp = app.post("/v1/chat/completions", &json_mode).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last().body["generationConfig"]["responseMimeType"],
        "application/json"
    );
    app.stop().await;
}

#[tokio::test]
async fn embeddings_use_predict_and_its_token_counts() {
    let (app, up, _key) = setup().await;
    let resp = app
        .post(
            "/v1/embeddings",
            &json!({"model": "vembed", "input": ["first text", "second text"], "dimensions": 2}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"], "vembed");
    assert_eq!(
        v["data"],
        json!([
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
            {"object": "embedding", "index": 1, "embedding": [1.1, 1.2]}
        ])
    );
    assert_eq!(v["usage"], json!({"prompt_tokens": 4, "total_tokens": 4}));
    let seen = up.last();
    // No project or location configured: the key's project and us-central1.
    assert_eq!(
        seen.path,
        format!("/v1/projects/{VERTEX_PROJECT}/locations/us-central1/publishers/google/models/text-embedding-005:predict")
    );
    assert_eq!(
        seen.body,
        json!({"instances": [{"content": "first text"}, {"content": "second text"}],
               "parameters": {"outputDimensionality": 2}})
    );
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!(rec.call_type, "aembedding");
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (4, 0));
    assert!(!rec.usage_estimated);
    assert!(rec.priced && rec.spend_nanos > 0);
    app.stop().await;
}

#[tokio::test]
async fn upstream_errors_are_mapped() {
    let (app, up, _key) = setup().await;
    up.set("gemini-2.5-flash", Behavior::Status(429, Some(7)));
    let resp = app.post("/v1/chat/completions", &chat("vgemini")).await;
    let retry_after = resp.headers().get("retry-after").cloned();
    let (status, v) = error_of(resp).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(
        v["error"]["message"],
        "VertexAIException - fake vertex error 429"
    );
    assert_eq!(retry_after.unwrap(), "7");

    up.set("gemini-2.5-flash", Behavior::ContextTooLong);
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("vgemini")).await).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "context_length_exceeded");

    up.set("gemini-2.5-flash", Behavior::Status(500, None));
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("vgemini")).await).await;
    assert_eq!(status, 500);
    assert_eq!(v["error"]["type"], "api_error");

    // Claude's own errors come in Anthropic's envelope, Vertex's quota in Google's.
    up.set(CLAUDE, Behavior::Status(529, None));
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("vclaude")).await).await;
    assert_eq!(status, 529);
    assert_eq!(
        v["error"]["message"],
        "VertexAIException - fake vertex claude error 529"
    );
    up.set(CLAUDE, Behavior::Status(429, None));
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("vclaude")).await).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["type"], "rate_limit_error");
    up.set(CLAUDE, Behavior::ContextTooLong);
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("vclaude")).await).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "context_length_exceeded");

    // Completions are not served, and nothing goes upstream for them.
    let before = up.requests();
    let (status, _) = error_of(
        app.post(
            "/v1/completions",
            &json!({"model": "vgemini", "prompt": "hi"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(up.requests(), before);
    app.stop().await;
}

#[tokio::test]
async fn claude_chat_goes_to_raw_predict_with_the_vertex_body() {
    let (app, up, _key) = setup().await;
    let resp = app.post("/v1/chat/completions", &chat("vclaude")).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"], "vclaude");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Claude");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 11);
    assert_eq!(v["usage"]["completion_tokens"], 4);
    let seen = up.last();
    assert_eq!(
        seen.path,
        format!("/v1/projects/proj-1/locations/us-east5/publishers/anthropic/models/{CLAUDE}:rawPredict")
    );
    assert!(bearer(&seen).starts_with("Bearer ya29.fake-token-"));
    assert!(!seen.headers.contains_key("x-api-key"));
    assert_eq!(seen.body["anthropic_version"], "vertex-2023-10-16");
    assert!(seen.body.get("model").is_none());
    assert_eq!(seen.body["system"], "Be brief");
    assert_eq!(seen.body["max_tokens"], 4096);
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (11, 4));
    assert!(
        rec.priced && rec.spend_nanos > 0,
        "vertex_ai/{CLAUDE} is in the price table"
    );

    // Streamed.
    let mut body = chat("vclaude");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let (chunks, done) = events(&resp.text().await.unwrap());
    assert!(done);
    assert_eq!(streamed_content(&chunks), "Hello from Claude");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 15);
    let seen = up.last();
    assert_eq!(
        seen.path,
        format!("/v1/projects/proj-1/locations/us-east5/publishers/anthropic/models/{CLAUDE}:streamRawPredict")
    );
    // Through an api_base LiteLLM asks every stream for SSE.
    assert_eq!(seen.query.as_deref(), Some("alt=sse"));
    assert_eq!(seen.body["stream"], true);
    let rec = record(&app, &id, 2).await;
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (11, 4));

    // A Claude stream broken midway fails and is billed by what it carried.
    up.set(CLAUDE, Behavior::ResetMidStream);
    body.as_object_mut().unwrap().remove("stream_options");
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let (chunks, done) = events(&resp.text().await.unwrap());
    assert!(!done);
    assert_eq!(streamed_content(&chunks), "partial answer ");
    assert!(chunks.last().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("in the middle of the stream"));
    let rec = record(&app, &id, 3).await;
    assert_eq!(rec.status, SpendStatus::Failure);
    assert_eq!(rec.prompt_tokens, 11);
    assert!(rec.completion_tokens > 0);
    app.stop().await;
}

#[tokio::test]
async fn messages_api_calls_reach_claude_on_vertex_as_sent() {
    let (app, up, _key) = setup().await;
    let body = json!({
        "model": "vclaude", "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "Be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Say hello"}]
    });
    let resp = app
        .client()
        .post(app.url("/v1/messages"))
        .header("x-api-key", &app.master_key)
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Hello from Claude");
    let seen = up.last();
    assert_eq!(
        seen.path,
        format!("/v1/projects/proj-1/locations/us-east5/publishers/anthropic/models/{CLAUDE}:rawPredict")
    );
    assert!(bearer(&seen).starts_with("Bearer ya29.fake-token-"));
    assert_eq!(
        seen.headers["anthropic-beta"],
        "interleaved-thinking-2025-05-14"
    );
    // The caller's body, with Vertex's version instead of the model (which is in the URL).
    let mut sent = body.clone();
    sent.as_object_mut().unwrap().remove("model");
    sent["anthropic_version"] = json!("vertex-2023-10-16");
    assert_eq!(seen.body, sent);
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!(rec.call_type, "anthropic_messages");
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (11, 4));

    // Gemini on Vertex does not speak Messages: translated, and thinking is refused there.
    let mut gemini = body;
    gemini["model"] = json!("vgemini");
    let resp = app
        .client()
        .post(app.url("/v1/messages"))
        .header("x-api-key", &app.master_key)
        .json(&gemini)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn claude_tool_calls_come_back_as_openai_tool_calls() {
    let (app, up, _key) = setup().await;
    up.set(
        CLAUDE,
        Behavior::Json(json!({"id": "msg_2", "type": "message", "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 20, "output_tokens": 9}})),
    );
    let body = json!({
        "model": "vclaude",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": weather_tools()
    });
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_1");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(up.last().body["tools"][0]["name"], "get_weather");
    app.stop().await;
}

#[tokio::test]
async fn the_token_is_cached_then_refreshed_before_it_expires() {
    let (app, up, key) = setup().await;
    for model in ["vgemini", "vclaude", "vembed", "vgemini"] {
        let body = match model {
            "vembed" => json!({"model": model, "input": "hi"}),
            _ => chat(model),
        };
        let path = match model {
            "vembed" => "/v1/embeddings",
            _ => "/v1/chat/completions",
        };
        assert_eq!(app.post(path, &body).await.status(), 200);
    }
    // Three deployments on one service account, four calls: one token.
    assert_eq!(up.vertex_token_requests(), 1);
    let first = bearer(&up.last());
    app.stop().await;

    // A token living 4 seconds is used for 2 seconds, then replaced by one fetch however many
    // calls are waiting for it.
    up.set_vertex_token_lifetime(4);
    let app = spawn_app(&config(&up, &key)).await;
    assert_eq!(
        app.post("/v1/chat/completions", &chat("vgemini"))
            .await
            .status(),
        200
    );
    assert_eq!(up.vertex_token_requests(), 2);
    let second = bearer(&up.last());
    assert_ne!(first, second);
    assert_eq!(
        app.post("/v1/chat/completions", &chat("vgemini"))
            .await
            .status(),
        200
    );
    assert_eq!(up.vertex_token_requests(), 2, "still fresh");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let app_ref = &app;
    let calls = (0..4).map(|_| async move {
        app_ref
            .post("/v1/chat/completions", &chat("vgemini"))
            .await
            .status()
    });
    for status in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200);
    }
    assert_eq!(up.vertex_token_requests(), 3, "one refresh for four calls");
    assert_ne!(bearer(&up.last()), second);

    // A token Vertex no longer accepts fails that call and is not sent again.
    up.set_vertex_token_lifetime(3600);
    up.revoke_vertex_tokens();
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("vgemini")).await).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["type"], "authentication_error");
    assert_eq!(up.vertex_token_requests(), 3);
    assert_eq!(
        app.post("/v1/chat/completions", &chat("vgemini"))
            .await
            .status(),
        200
    );
    assert_eq!(up.vertex_token_requests(), 4);
    app.stop().await;
}

#[tokio::test]
async fn a_key_the_token_endpoint_does_not_know_is_a_clear_auth_error() {
    let up = FakeUpstream::start().await;
    let key = up.vertex_service_account_with_unknown_key();
    let app = spawn_app(&config(&up, &key)).await;
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("vgemini")).await).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["type"], "authentication_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("VertexAIException - could not get a Google access token"),
        "{message}"
    );
    assert!(
        message.contains("invalid_grant: Invalid JWT Signature."),
        "{message}"
    );
    assert!(!message.contains("PRIVATE KEY"), "{message}");
    assert!(!message.contains(tollgate_testkit::upstream::VERTEX_CLIENT_EMAIL));
    // The model was never called.
    assert_eq!(up.requests(), 0);
    assert!(up.vertex_token_requests() >= 1);
    app.stop().await;

    // A failing token endpoint is a server-side error, retried like one.
    let key = up.vertex_service_account();
    let app = spawn_app(&config(&up, &key)).await;
    up.fail_vertex_token_endpoint(Some(503));
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("vgemini")).await).await;
    assert_eq!(status, 500);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the token endpoint failed (HTTP 503)"),
        "{v}"
    );
    up.fail_vertex_token_endpoint(None);
    let resp = app.post("/v1/chat/completions", &chat("vgemini")).await;
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

fn single(up: &FakeUpstream, credentials: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: vgemini
    litellm_params: {{model: vertex_ai/gemini-2.5-flash, {credentials}api_base: "{base}"}}
general_settings:
  master_key: "{{master_key}}"
"#,
        base = up.base_url
    )
}

#[tokio::test]
async fn credentials_inline_from_the_environment_and_from_google_application_credentials() {
    let up = FakeUpstream::start().await;
    let key = up.vertex_service_account();
    let expected_path = format!(
        "/v1/projects/{VERTEX_PROJECT}/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    );

    // The JSON itself in the config.
    let app = spawn_app(&single(
        &up,
        &format!("vertex_credentials: '{}', ", key.json),
    ))
    .await;
    let resp = app.post("/v1/chat/completions", &chat("vgemini")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().path, expected_path);
    app.stop().await;

    // The JSON in a variable named by os.environ/, and the project from VERTEXAI_PROJECT.
    let app = spawn_app_vars(
        &single(&up, "vertex_credentials: os.environ/VTX_SA_JSON, "),
        &[
            ("VTX_SA_JSON", &key.json),
            ("VERTEXAI_PROJECT", "env-project"),
        ],
    )
    .await;
    let resp = app.post("/v1/chat/completions", &chat("vgemini")).await;
    assert_eq!(resp.status(), 200);
    assert!(up.last().path.starts_with("/v1/projects/env-project/"));
    app.stop().await;

    // A file path in a variable named by os.environ/.
    let path = key.path.display().to_string();
    let app = spawn_app_vars(
        &single(
            &up,
            "vertex_credentials: os.environ/VTX_SA_PATH, vertex_location: global, ",
        ),
        &[("VTX_SA_PATH", &path)],
    )
    .await;
    let resp = app.post("/v1/chat/completions", &chat("vgemini")).await;
    assert_eq!(resp.status(), 200);
    assert!(up
        .last()
        .path
        .starts_with(&format!("/v1/projects/{VERTEX_PROJECT}/locations/global/")));
    app.stop().await;

    // Nothing in the config: Google's own variable.
    let app = spawn_app_vars(
        &single(&up, ""),
        &[("GOOGLE_APPLICATION_CREDENTIALS", &path)],
    )
    .await;
    let resp = app.post("/v1/chat/completions", &chat("vgemini")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().path, expected_path);
    app.stop().await;
}
