//! Gemini (`gemini/` deployments, Google AI Studio) through the gateway: chat, streams, tools,
//! embeddings and errors are translated both ways against the fake Gemini upstream, and spend is
//! recorded with the usage Google reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use tollgate_store::SpendStatus;
use tollgate_testkit::{spawn_app, spawn_app_vars, Behavior, FakeUpstream, TestApp};

const KEY: &str = "gm-provider-secret-123456";
const FAKE_TEXT: &str = "Hello from the fake upstream";

fn config(up: &FakeUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: gemini
    litellm_params: {{model: gemini/gemini-2.5-flash, api_base: "{base}", api_key: {KEY}}}
  - model_name: gemini-versioned
    litellm_params: {{model: gemini/gemini-2.0-flash, api_base: "{base}/v1beta/", api_key: {KEY}}}
  - model_name: gemini-embed
    litellm_params: {{model: gemini/gemini-embedding-001, api_base: "{base}", api_key: {KEY}}}
general_settings:
  master_key: "{{master_key}}"
"#,
        base = up.base_url
    )
}

async fn setup() -> (TestApp, FakeUpstream) {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config(&up)).await;
    (app, up)
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

#[tokio::test]
async fn chat_is_translated_both_ways_and_spend_recorded() {
    let (app, up) = setup().await;
    let resp = app.post("/v1/chat/completions", &chat("gemini")).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gemini");
    assert_eq!(v["choices"][0]["message"]["content"], FAKE_TEXT);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 12);
    assert_eq!(v["usage"]["completion_tokens"], 6);
    assert_eq!(v["usage"]["total_tokens"], 18);

    let seen = up.last();
    assert_eq!(seen.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    // The key travels in its header, never in the URL.
    assert_eq!(seen.query, None);
    assert_eq!(seen.headers["x-goog-api-key"], KEY);
    assert!(!seen.headers.contains_key("authorization"));
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
    assert_eq!(rec.custom_llm_provider.as_deref(), Some("gemini"));
    assert!(
        rec.priced && rec.spend_nanos > 0,
        "gemini/gemini-2.5-flash is in the price table"
    );

    // A base that already names the API version is used as is.
    let resp = app
        .post("/v1/chat/completions", &chat("gemini-versioned"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last().path,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    app.stop().await;
}

#[tokio::test]
async fn stream_is_translated_with_usage_and_done() {
    let (app, up) = setup().await;
    let mut body = chat("gemini");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let text = resp.text().await.unwrap();
    let (chunks, done) = events(&text);
    assert!(done, "{text}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(streamed_content(&chunks), FAKE_TEXT);
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "gemini"));
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("stop")]);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 18);

    let seen = up.last();
    assert_eq!(
        seen.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(seen.query.as_deref(), Some("alt=sse"));

    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert!(rec.stream);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));
    assert!(!rec.usage_estimated);

    // Without include_usage there is no usage chunk, and the usage is still recorded.
    body.as_object_mut().unwrap().remove("stream_options");
    let resp = app.post("/v1/chat/completions", &body).await;
    let id = call_id(&resp);
    let (chunks, done) = events(&resp.text().await.unwrap());
    assert!(done);
    assert!(chunks.iter().all(|c| c["usage"].is_null()));
    let rec = record(&app, &id, 2).await;
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));
    app.stop().await;
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "additionalProperties": false,
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }
    }}])
}

#[tokio::test]
async fn tool_calls_round_trip() {
    let (app, up) = setup().await;
    let mut body = json!({
        "model": "gemini",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": weather_tools(),
        "tool_choice": "required"
    });
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    let call_id = call["id"].as_str().unwrap().to_string();
    assert!(call_id.starts_with("call_"), "{call_id}");

    let seen = up.last();
    assert_eq!(
        seen.body["tools"],
        json!([{"functionDeclarations": [{
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }]}])
    );
    assert_eq!(
        seen.body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );

    // The result goes back as a functionResponse named after the call; the model then answers.
    body["messages"].as_array_mut().unwrap().extend([
        choice["message"].clone(),
        json!({"role": "tool", "tool_call_id": call_id, "content": "{\"temp_c\": 21}"}),
    ]);
    body["tool_choice"] = json!("auto");
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], FAKE_TEXT);
    let contents = up.last().body["contents"].clone();
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]})
    );
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]})
    );

    // Streamed, the call arrives as one tool_calls delta with its id, name and arguments.
    let body = json!({
        "model": "gemini", "stream": true,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": weather_tools()
    });
    let resp = app.post("/v1/chat/completions", &body).await;
    let (chunks, done) = events(&resp.text().await.unwrap());
    assert!(done);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
    app.stop().await;
}

#[tokio::test]
async fn embeddings_are_translated_and_estimated() {
    let (app, up) = setup().await;
    let resp = app
        .post(
            "/v1/embeddings",
            &json!({"model": "gemini-embed", "input": ["first text", "second text"], "dimensions": 2}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "gemini-embed");
    assert_eq!(
        v["data"],
        json!([
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
            {"object": "embedding", "index": 1, "embedding": [1.1, 1.2]}
        ])
    );
    let seen = up.last();
    assert_eq!(
        seen.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(seen.headers["x-goog-api-key"], KEY);
    assert_eq!(
        seen.body["requests"][1],
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "second text"}]}, "outputDimensionality": 2})
    );
    // Google reports no tokens for embeddings: the input is estimated (21 bytes → 6 tokens).
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!(rec.call_type, "aembedding");
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (6, 0));
    assert!(rec.usage_estimated);
    assert!(rec.priced && rec.spend_nanos > 0);

    let resp = app
        .post(
            "/v1/embeddings",
            &json!({"model": "gemini-embed", "input": [[1, 2, 3]]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token-array inputs are not supported"),
        "{v}"
    );
    app.stop().await;
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("error body is JSON");
    assert_eq!(v["error"]["code"], status.to_string(), "envelope: {v}");
    (status, v)
}

#[tokio::test]
async fn upstream_errors_are_mapped() {
    let (app, up) = setup().await;
    up.set("gemini-2.5-flash", Behavior::Status(429, Some(7)));
    let resp = app.post("/v1/chat/completions", &chat("gemini")).await;
    let id = call_id(&resp);
    let retry_after = resp.headers().get("retry-after").cloned();
    let (status, v) = error_of(resp).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(
        v["error"]["message"],
        "GeminiException - fake gemini error 429"
    );
    assert_eq!(retry_after.unwrap(), "7");
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Failure);
    assert_eq!(rec.http_status, 429);

    up.set("gemini-2.5-flash", Behavior::Status(400, None));
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("gemini")).await).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");

    up.set("gemini-2.5-flash", Behavior::Status(500, None));
    let before = up.requests();
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("gemini")).await).await;
    assert_eq!(status, 500);
    assert_eq!(v["error"]["type"], "api_error");
    assert!(up.requests() > before);

    up.set("gemini-2.5-flash", Behavior::ContextTooLong);
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("gemini")).await).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "context_length_exceeded");

    // What Gemini can't express is refused before any upstream call.
    let before = up.requests();
    let mut body = chat("gemini");
    body["logprobs"] = json!(true);
    let (status, v) = error_of(app.post("/v1/chat/completions", &body).await).await;
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("logprobs"),
        "{v}"
    );
    assert_eq!(up.requests(), before);
    app.stop().await;
}

#[tokio::test]
async fn a_stream_reset_midway_fails_and_bills_what_it_carried() {
    let (app, up) = setup().await;
    up.set("gemini-2.5-flash", Behavior::ResetMidStream);
    let mut body = chat("gemini");
    body["stream"] = json!(true);
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let text = resp.text().await.unwrap();
    let (chunks, done) = events(&text);
    assert!(!done, "{text}");
    assert_eq!(streamed_content(&chunks), "partial answer ");
    let last = chunks.last().unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in the middle of the stream"),
        "{last}"
    );
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Failure);
    // 15 bytes of text: 4 estimated tokens; the prompt count came with the first event.
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 4));
    assert!(rec.usage_estimated);
    app.stop().await;
}

#[tokio::test]
async fn the_key_comes_from_gemini_api_key() {
    let up = FakeUpstream::start().await;
    let cfg = format!(
        r#"
model_list:
  - model_name: gemini
    litellm_params: {{model: gemini/gemini-2.0-flash, api_base: "{base}"}}
general_settings:
  master_key: "{{master_key}}"
"#,
        base = up.base_url
    );
    let app = spawn_app_vars(&cfg, &[("GEMINI_API_KEY", "gm-from-env-987654")]).await;
    let resp = app.post("/v1/chat/completions", &chat("gemini")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().headers["x-goog-api-key"], "gm-from-env-987654");
    app.stop().await;
}

#[tokio::test]
async fn drop_params_drops_what_gemini_cannot_honour_instead_of_refusing_it() {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&format!(
        r#"
model_list:
  - model_name: strict
    litellm_params: {{model: gemini/gemini-2.5-flash, api_base: "{base}", api_key: {KEY}}}
  - model_name: lenient
    litellm_params: {{model: gemini/gemini-2.5-flash, api_base: "{base}", api_key: {KEY}, drop_params: true}}
general_settings:
  master_key: "{{master_key}}"
"#,
        base = up.base_url
    ))
    .await;
    let with_logprobs = |model: &str| {
        let mut body = chat(model);
        body["logprobs"] = json!(true);
        body["logit_bias"] = json!({"50256": -100});
        body
    };
    let resp = app
        .post("/v1/chat/completions", &with_logprobs("strict"))
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("logprobs"),
        "{v}"
    );
    assert_eq!(up.requests(), 0);
    let resp = app
        .post("/v1/chat/completions", &with_logprobs("lenient"))
        .await;
    assert_eq!(resp.status(), 200);
    let seen = up.last().body;
    assert!(
        seen.get("logprobs").is_none()
            && seen["generationConfig"].get("responseLogprobs").is_none()
    );
    app.stop().await;
}
