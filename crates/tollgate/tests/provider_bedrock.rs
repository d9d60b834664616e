//! AWS Bedrock (`bedrock/` deployments) through the gateway: chat through Converse, streams as
//! binary event-stream frames, tools, Titan and Cohere embeddings and errors are translated both
//! ways against the fake Bedrock, which checks every request's SigV4 signature itself; spend is
//! recorded with the usage Bedrock reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use tollgate_store::SpendStatus;
use tollgate_testkit::bedrock::{FAKE_AWS_ACCESS_KEY_ID, FAKE_AWS_SECRET_ACCESS_KEY};
use tollgate_testkit::{spawn_app_vars, Behavior, FakeUpstream, TestApp};

const FAKE_TEXT: &str = "Hello from the fake upstream";
const CLAUDE: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const CLAUDE_PATH: &str = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0";
const TOKEN: &str = "FQoGZXIvYXdzEFAKESESSIONTOKEN0123456789";

/// The key id is written in the config, the secret comes from `os.environ/`, as real configs do.
fn config(up: &FakeUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: claude
    litellm_params:
      model: bedrock/{CLAUDE}
      aws_access_key_id: {FAKE_AWS_ACCESS_KEY_ID}
      aws_secret_access_key: os.environ/TEST_BEDROCK_SECRET
      aws_region_name: us-east-1
      api_base: "{base}"
  - model_name: claude-session
    litellm_params:
      model: bedrock/converse/{CLAUDE}
      aws_access_key_id: {FAKE_AWS_ACCESS_KEY_ID}
      aws_secret_access_key: os.environ/TEST_BEDROCK_SECRET
      aws_session_token: os.environ/TEST_BEDROCK_TOKEN
      aws_region_name: us-west-2
      aws_bedrock_runtime_endpoint: "{base}"
  - model_name: claude-eu
    litellm_params:
      model: bedrock/eu-west-1/{CLAUDE}
      aws_access_key_id: {FAKE_AWS_ACCESS_KEY_ID}
      aws_secret_access_key: os.environ/TEST_BEDROCK_SECRET
      api_base: "{base}"
  - model_name: claude-badsecret
    litellm_params:
      model: bedrock/{CLAUDE}
      aws_access_key_id: {FAKE_AWS_ACCESS_KEY_ID}
      aws_secret_access_key: not-the-right-secret-0123456789
      aws_region_name: us-east-1
      api_base: "{base}"
  - model_name: claude-unset
    litellm_params:
      model: bedrock/{CLAUDE}
      aws_access_key_id: {FAKE_AWS_ACCESS_KEY_ID}
      aws_secret_access_key: os.environ/UNSET_BEDROCK_SECRET_XYZ
      aws_region_name: us-east-1
      api_base: "{base}"
  - model_name: titan
    litellm_params:
      model: bedrock/amazon.titan-embed-text-v2:0
      aws_access_key_id: {FAKE_AWS_ACCESS_KEY_ID}
      aws_secret_access_key: os.environ/TEST_BEDROCK_SECRET
      aws_region_name: us-east-1
      api_base: "{base}"
  - model_name: cohere
    litellm_params:
      model: bedrock/cohere.embed-english-v3
      aws_access_key_id: {FAKE_AWS_ACCESS_KEY_ID}
      aws_secret_access_key: os.environ/TEST_BEDROCK_SECRET
      aws_region_name: us-east-1
      api_base: "{base}"
general_settings:
  master_key: "{{master_key}}"
"#,
        base = up.base_url
    )
}

async fn setup() -> (TestApp, FakeUpstream) {
    let up = FakeUpstream::start().await;
    let app = spawn_app_vars(
        &config(&up),
        &[
            ("TEST_BEDROCK_SECRET", FAKE_AWS_SECRET_ACCESS_KEY),
            ("TEST_BEDROCK_TOKEN", TOKEN),
        ],
    )
    .await;
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

/// The spend record of call `id`, once written (`n` records are expected by then).
async fn record(app: &TestApp, id: &str, n: i64) -> tollgate_store::SpendRecord {
    app.wait_for_spend_logs(n).await;
    for _ in 0..200 {
        if let Some(r) = app.store.get_spend_log(id).await.unwrap() {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no spend record for {id}");
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

fn authorization(seen: &tollgate_testkit::upstream::Seen) -> String {
    seen.headers["authorization"].to_str().unwrap().to_string()
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("error body is JSON");
    assert_eq!(v["error"]["code"], status.to_string(), "envelope: {v}");
    (status, v)
}

#[tokio::test]
async fn chat_is_translated_signed_and_spend_recorded() {
    let (app, up) = setup().await;
    let resp = app.post("/v1/chat/completions", &chat("claude")).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude");
    assert_eq!(v["choices"][0]["message"]["content"], FAKE_TEXT);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 12);
    assert_eq!(v["usage"]["completion_tokens"], 6);
    assert_eq!(v["usage"]["total_tokens"], 18);

    let seen = up.last();
    assert_eq!(seen.path, format!("{CLAUDE_PATH}/converse"));
    assert_eq!(
        seen.body,
        json!({
            "system": [{"text": "Be brief"}],
            "messages": [{"role": "user", "content": [{"text": "Say hello"}]}]
        })
    );
    // Signed for Bedrock in the deployment's region, with no session token.
    let auth = authorization(&seen);
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={FAKE_AWS_ACCESS_KEY_ID}/"
        )),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
    assert!(!auth.contains(FAKE_AWS_SECRET_ACCESS_KEY));
    assert!(!seen.headers.contains_key("x-amz-security-token"));

    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));
    assert!(!rec.usage_estimated);
    assert_eq!(rec.custom_llm_provider.as_deref(), Some("bedrock"));
    assert!(
        rec.priced && rec.spend_nanos > 0,
        "{CLAUDE} is in the price table"
    );
    app.stop().await;
}

#[tokio::test]
async fn session_token_endpoint_and_region_in_the_model_path() {
    let (app, up) = setup().await;
    let resp = app
        .post("/v1/chat/completions", &chat("claude-session"))
        .await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    // `converse/` names the API, not the model.
    assert_eq!(seen.path, format!("{CLAUDE_PATH}/converse"));
    assert_eq!(seen.headers["x-amz-security-token"], TOKEN);
    let auth = authorization(&seen);
    assert!(auth.contains("/us-west-2/bedrock/aws4_request"), "{auth}");
    assert!(auth.contains("x-amz-security-token"), "{auth}");
    assert!(!auth.contains(TOKEN));

    let resp = app.post("/v1/chat/completions", &chat("claude-eu")).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.path, format!("{CLAUDE_PATH}/converse"));
    assert!(
        authorization(&seen).contains("/eu-west-1/bedrock/aws4_request"),
        "{}",
        authorization(&seen)
    );
    app.stop().await;
}

#[tokio::test]
async fn stream_is_translated_with_usage_and_done() {
    let (app, up) = setup().await;
    let mut body = chat("claude");
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
        .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "claude"));
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("stop")]);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 18);
    assert_eq!(up.last().path, format!("{CLAUDE_PATH}/converse-stream"));

    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert!(rec.stream);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));
    assert!(!rec.usage_estimated);
    assert!(rec.priced && rec.spend_nanos > 0);

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
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }
    }}])
}

#[tokio::test]
async fn tool_calls_round_trip() {
    let (app, up) = setup().await;
    let mut body = json!({
        "model": "claude",
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
    assert_eq!(call["id"], "tooluse_fake1");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(
        up.last().body["toolConfig"],
        json!({
            "tools": [{"toolSpec": {"name": "get_weather", "description": "Current weather",
                "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}}],
            "toolChoice": {"any": {}}
        })
    );

    // The result goes back as a toolResult; the model then answers.
    body["messages"].as_array_mut().unwrap().extend([
        choice["message"].clone(),
        json!({"role": "tool", "tool_call_id": "tooluse_fake1", "content": "{\"temp_c\": 21}"}),
    ]);
    body["tool_choice"] = json!("auto");
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], FAKE_TEXT);
    let messages = up.last().body["messages"].clone();
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_fake1", "name": "get_weather", "input": {"city": "Paris"}}}]})
    );
    assert_eq!(
        messages[2],
        json!({"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_fake1", "content": [{"text": "{\"temp_c\": 21}"}]}}]})
    );

    // Streamed, the call opens with its id and name and its arguments follow in pieces.
    let body = json!({
        "model": "claude", "stream": true,
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
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls.iter().all(|c| c["index"] == 0));
    assert_eq!(calls[0]["id"], "tooluse_fake1");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
    app.stop().await;
}

#[tokio::test]
async fn streamed_tool_calls_keep_their_indices() {
    let (app, up) = setup().await;
    let ev = |name: &str, v: Value| format!("{name} {v}");
    up.set(
        CLAUDE,
        Behavior::RawStream {
            events: vec![
                ev("messageStart", json!({"role": "assistant"})),
                ev("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Both."}})),
                ev("contentBlockStop", json!({"contentBlockIndex": 0})),
                ev("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t_a", "name": "get_weather"}}})),
                ev("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":\"Paris\"}"}}})),
                ev("contentBlockStop", json!({"contentBlockIndex": 1})),
                ev("contentBlockStart", json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t_b", "name": "get_weather"}}})),
                ev("contentBlockDelta", json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"city\":"}}})),
                ev("contentBlockDelta", json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "\"Rome\"}"}}})),
                ev("contentBlockStop", json!({"contentBlockIndex": 2})),
                ev("messageStop", json!({"stopReason": "tool_use"})),
                ev("metadata", json!({"usage": {"inputTokens": 40, "outputTokens": 30, "totalTokens": 70}})),
            ],
            reset: false,
        },
    );
    let body = json!({"model": "claude", "stream": true,
        "messages": [{"role": "user", "content": "Weather in Paris and Rome?"}],
        "tools": weather_tools()});
    let resp = app.post("/v1/chat/completions", &body).await;
    let id = call_id(&resp);
    let (chunks, done) = events(&resp.text().await.unwrap());
    assert!(done);
    assert_eq!(streamed_content(&chunks), "Both.");
    let mut by_index: Vec<(String, String)> = vec![Default::default(); 2];
    for c in chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
    {
        let slot = &mut by_index[c["index"].as_u64().unwrap() as usize];
        if let Some(id) = c["id"].as_str() {
            slot.0 = id.to_string();
        }
        slot.1
            .push_str(c["function"]["arguments"].as_str().unwrap_or(""));
    }
    assert_eq!(
        by_index,
        vec![
            ("t_a".to_string(), "{\"city\":\"Paris\"}".to_string()),
            ("t_b".to_string(), "{\"city\":\"Rome\"}".to_string()),
        ]
    );
    let rec = record(&app, &id, 1).await;
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (40, 30));
    app.stop().await;
}

#[tokio::test]
async fn embeddings_titan_and_cohere() {
    let (app, up) = setup().await;
    let resp = app
        .post(
            "/v1/embeddings",
            &json!({"model": "titan", "input": "hello bedrock world", "dimensions": 256}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "titan");
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 3);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let seen = up.last();
    assert_eq!(seen.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    assert_eq!(
        seen.body,
        json!({"inputText": "hello bedrock world", "dimensions": 256})
    );
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!(rec.prompt_tokens, 3);
    assert!(!rec.usage_estimated);
    assert!(rec.priced && rec.spend_nanos > 0);

    // Titan embeds one text per call: one signed upstream call per input, answers joined.
    let before = up.requests();
    let resp = app
        .post(
            "/v1/embeddings",
            &json!({"model": "titan", "input": ["one two", "three"]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_ne!(v["data"][0]["embedding"], v["data"][1]["embedding"]);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(up.requests(), before + 2);
    let seen = up.seen();
    assert_eq!(seen[seen.len() - 2].body, json!({"inputText": "one two"}));
    assert_eq!(seen[seen.len() - 1].body, json!({"inputText": "three"}));
    let rec = record(&app, &id, 2).await;
    assert_eq!(rec.prompt_tokens, 3);
    assert!(!rec.usage_estimated);

    // A failing input fails the call.
    up.set("amazon.titan-embed-text-v2:0", Behavior::Status(429, None));
    let (status, v) = error_of(
        app.post(
            "/v1/embeddings",
            &json!({"model": "titan", "input": ["a", "b"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["type"], "rate_limit_error");
    up.set("amazon.titan-embed-text-v2:0", Behavior::Answer);

    let resp = app
        .post(
            "/v1/embeddings",
            &json!({"model": "cohere", "input": ["first text", "second"]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    let seen = up.last();
    assert_eq!(seen.path, "/model/cohere.embed-english-v3/invoke");
    assert_eq!(
        seen.body,
        json!({"texts": ["first text", "second"], "input_type": "search_document"})
    );
    // Cohere reports no token count: the gateway estimates the input's.
    let rec = record(&app, &id, 4).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert!(rec.usage_estimated);
    assert!(rec.prompt_tokens > 0);
    app.stop().await;
}

#[tokio::test]
async fn upstream_errors_are_mapped() {
    let (app, up) = setup().await;
    up.set(CLAUDE, Behavior::Status(429, Some(7)));
    let resp = app.post("/v1/chat/completions", &chat("claude")).await;
    let id = call_id(&resp);
    let retry_after = resp.headers().get("retry-after").cloned();
    let (status, v) = error_of(resp).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(
        v["error"]["message"],
        "BedrockException - ThrottlingException: fake bedrock error 429"
    );
    assert_eq!(retry_after.unwrap(), "7");
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Failure);
    assert_eq!(rec.http_status, 429);

    up.set(CLAUDE, Behavior::ContextTooLong);
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("claude")).await).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "context_length_exceeded");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Input is too long"));

    up.set(CLAUDE, Behavior::Status(500, None));
    let before = up.requests();
    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("claude")).await).await;
    assert_eq!(status, 500);
    assert_eq!(v["error"]["type"], "api_error");
    assert!(up.requests() > before);
    up.set(CLAUDE, Behavior::Answer);

    // A wrong secret: the fake computes another signature and refuses, and the caller is told
    // what to check, without the secret.
    let (status, v) = error_of(
        app.post("/v1/chat/completions", &chat("claude-badsecret"))
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(v["error"]["type"], "authentication_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("BedrockException - InvalidSignatureException: The request signature we calculated does not match"),
        "{message}"
    );
    assert!(message.contains("aws_secret_access_key"), "{message}");
    assert!(!message.contains("not-the-right-secret"), "{message}");

    // What Converse can't express is refused before any upstream call.
    let before = up.requests();
    let mut body = chat("claude");
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
async fn an_unset_secret_variable_fails_calls_naming_it() {
    let (app, up) = setup().await;
    let before = up.requests();
    let (status, v) = error_of(
        app.post("/v1/chat/completions", &chat("claude-unset"))
            .await,
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UNSET_BEDROCK_SECRET_XYZ"),
        "{v}"
    );
    assert_eq!(up.requests(), before);
    assert!(app
        .warnings
        .iter()
        .any(|w| w.contains("UNSET_BEDROCK_SECRET_XYZ")));
    app.stop().await;
}

#[tokio::test]
async fn a_mid_stream_exception_ends_the_stream_with_an_error_event() {
    let (app, up) = setup().await;
    let ev = |name: &str, v: Value| format!("{name} {v}");
    up.set(
        CLAUDE,
        Behavior::RawStream {
            events: vec![
                ev("messageStart", json!({"role": "assistant"})),
                ev(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "partial "}}),
                ),
                ev(
                    "!throttlingException",
                    json!({"message": "Too many tokens, please wait before trying again."}),
                ),
            ],
            reset: false,
        },
    );
    let mut body = chat("claude");
    body["stream"] = json!(true);
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let text = resp.text().await.unwrap();
    let (chunks, done) = events(&text);
    assert!(!done, "{text}");
    assert_eq!(streamed_content(&chunks), "partial ");
    let last = chunks.last().unwrap();
    assert_eq!(
        last["error"]["message"],
        "BedrockException - throttlingException: Too many tokens, please wait before trying again.",
        "{last}"
    );
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Failure);
    app.stop().await;
}

#[tokio::test]
async fn a_stream_reset_midway_fails_and_bills_what_it_carried() {
    let (app, up) = setup().await;
    up.set(CLAUDE, Behavior::ResetMidStream);
    let mut body = chat("claude");
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
    assert!(rec.usage_estimated);
    assert!(rec.completion_tokens > 0);
    app.stop().await;
}

#[tokio::test]
async fn credentials_and_region_come_from_the_aws_variables() {
    let up = FakeUpstream::start().await;
    let cfg = format!(
        r#"
model_list:
  - model_name: claude
    litellm_params: {{model: bedrock/{CLAUDE}, api_base: "{base}"}}
general_settings:
  master_key: "{{master_key}}"
"#,
        base = up.base_url
    );
    let app = spawn_app_vars(
        &cfg,
        &[
            ("AWS_ACCESS_KEY_ID", FAKE_AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", FAKE_AWS_SECRET_ACCESS_KEY),
            ("AWS_SESSION_TOKEN", TOKEN),
            ("AWS_REGION", "ap-southeast-2"),
        ],
    )
    .await;
    let resp = app.post("/v1/chat/completions", &chat("claude")).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert!(
        authorization(&seen).contains("/ap-southeast-2/bedrock/aws4_request"),
        "{}",
        authorization(&seen)
    );
    assert_eq!(seen.headers["x-amz-security-token"], TOKEN);
    app.stop().await;
}

#[tokio::test]
async fn the_messages_api_reaches_bedrock_streamed() {
    let (app, up) = setup().await;
    let body = json!({"model": "claude", "max_tokens": 100, "stream": true,
        "system": "Be brief", "messages": [{"role": "user", "content": "Say hello"}]});
    let resp = app
        .client()
        .post(app.url("/v1/messages"))
        .header("x-api-key", &app.master_key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let said: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|e| e["type"] == "content_block_delta")
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(said, FAKE_TEXT, "{text}");
    assert!(text.contains("event: message_stop"), "{text}");
    let seen = up.last();
    assert_eq!(seen.path, format!("{CLAUDE_PATH}/converse-stream"));
    assert_eq!(seen.body["system"], json!([{"text": "Be brief"}]));
    assert_eq!(seen.body["inferenceConfig"]["maxTokens"], 100);
    app.stop().await;
}
