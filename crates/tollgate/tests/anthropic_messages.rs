//! Anthropic's Messages API as a client-facing route (`/v1/messages`, `/anthropic/v1/messages`,
//! `/v1/messages/count_tokens`): answers from OpenAI and Anthropic deployments, whole and
//! streamed, with tools; the gateway's refusals in Anthropic's error envelope; spend recorded as
//! for chat. The last test drives the official `anthropic` Python SDK (see openai_sdk.rs for how
//! CI provides it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_store::SpendStatus;
use tollgate_testkit::upstream::FAKE_TEXT;
use tollgate_testkit::{spawn_app, Behavior, FakeUpstream, TestApp};

fn config(up: &FakeUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{b}/v1", api_key: sk-provider-secret-123456}}
  - model_name: gpt-tools
    litellm_params: {{model: openai/gpt-tools, api_base: "{b}/v1", api_key: sk-provider-secret-123456}}
  - model_name: always-429
    litellm_params: {{model: openai/always-429, api_base: "{b}/v1", api_key: sk-provider-secret-123456}}
  - model_name: priced
    litellm_params: {{model: openai/priced, api_base: "{b}/v1", api_key: sk-provider-secret-123456, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: claude-sonnet
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{b}", api_key: sk-ant-secret-123456}}
  - model_name: demo
    litellm_params: {{model: openai/demo, mock_response: "Hi from the mock"}}
router_settings: {{num_retries: 0}}
general_settings: {{master_key: "{{master_key}}"}}
"#,
        b = up.base_url
    )
}

async fn setup() -> (TestApp, FakeUpstream) {
    let up = FakeUpstream::start().await;
    up.set("always-429", Behavior::Status(429, Some(0)));
    let app = spawn_app(&config(&up)).await;
    (app, up)
}

/// POSTs a Messages body the way Anthropic's SDK does: the key in `x-api-key`.
async fn post(app: &TestApp, path: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client()
        .post(app.url(path))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": "Say hello"}]})
}

fn call_id(resp: &reqwest::Response) -> String {
    resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string()
}

/// The error envelope, checked for Anthropic's shape; returns (status, error type, message).
async fn anthropic_error(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("error body is JSON");
    assert_eq!(v["type"], "error", "envelope: {v}");
    assert!(
        v.get("code").is_none() && v["error"].get("code").is_none(),
        "{v}"
    );
    let kind = v["error"]["type"].as_str().expect("error.type").to_string();
    let message = v["error"]["message"].as_str().expect("error.message");
    (status, kind, message.to_string())
}

/// The SSE stream as (event name, data) pairs, each name checked against the data's type.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = None;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(d).unwrap());
                } else {
                    panic!("unexpected line {line:?} in {text}");
                }
            }
            let (name, data) = (name.unwrap(), data.unwrap());
            assert_eq!(data["type"], name.as_str(), "{text}");
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect()
}

#[tokio::test]
async fn openai_deployment_answers_a_message_and_the_call_is_recorded() {
    let (app, up) = setup().await;
    let body = json!({
        "model": "gpt-4o-mini",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
        "metadata": {"user_id": "end-user-42"},
        "stop_sequences": ["END"],
        "temperature": 0.5
    });
    let resp = post(&app, "/v1/messages", &app.master_key, &body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"), "{v}");
    assert_eq!(
        v,
        json!({
            "id": v["id"],
            "type": "message",
            "role": "assistant",
            "model": "gpt-4o-mini",
            "content": [{"type": "text", "text": FAKE_TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 6,
                      "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
        })
    );

    let seen = up.last();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.headers["authorization"],
        "Bearer sk-provider-secret-123456"
    );
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    );
    assert_eq!(seen.body["max_tokens"], 100);
    assert_eq!(seen.body["stop"], json!(["END"]));
    assert_eq!(seen.body["temperature"], 0.5);
    assert_eq!(seen.body["user"], "end-user-42");

    assert_eq!(app.wait_for_spend_logs(1).await, 1);
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));
    assert!(rec.priced && rec.spend_nanos > 0);
    assert_eq!(rec.model_group, "gpt-4o-mini");
    assert_eq!(rec.end_user.as_deref(), Some("end-user-42"));
    assert_eq!(rec.call_type, "anthropic_messages");
    assert!(!rec.stream);
    // The message id and the spend log name the same call.
    assert_eq!(
        v["id"].as_str().unwrap().strip_prefix("msg_"),
        id.strip_prefix("chatcmpl-")
    );
    app.stop().await;
}

#[tokio::test]
async fn openai_deployment_streams_anthropic_events() {
    let (app, up) = setup().await;
    let mut body = hello("gpt-4o-mini");
    body["stream"] = json!(true);
    let resp = post(&app, "/v1/messages", &app.master_key, &body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let id = call_id(&resp);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    let ev = events(&text);
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{text}"
    );
    let start = &ev[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["model"], "gpt-4o-mini");
    assert_eq!(start["content"], json!([]));
    assert_eq!(
        ev[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert!(ev[1..6].iter().all(|(_, d)| d["index"] == 0));
    assert_eq!(text_of(&ev), "Hello from the fake upstream");
    assert_eq!(
        ev[6].1,
        json!({"type": "message_delta",
               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"input_tokens": 12, "output_tokens": 6,
                         "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}})
    );
    assert_eq!(
        up.last().body["stream_options"],
        json!({"include_usage": true})
    );
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert!(rec.stream && rec.status == SpendStatus::Success);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));
    assert!(rec.spend_nanos > 0);
    app.stop().await;
}

#[tokio::test]
async fn anthropic_deployment_gets_the_request_as_sent_whole_and_streamed() {
    let (app, up) = setup().await;
    let mut body = hello("claude-sonnet");
    body["system"] = json!("Be brief.");
    let resp = post(&app, "/v1/messages", &app.master_key, &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    // Anthropic's answer, as it came.
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello from Claude"}])
    );
    assert_eq!(v["id"], "msg_1");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"], json!({"input_tokens": 11, "output_tokens": 4}));
    let seen = up.last();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.headers["x-api-key"], "sk-ant-secret-123456");
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    let mut sent = body.clone();
    sent["model"] = json!("claude-sonnet-4-5");
    assert_eq!(seen.body, sent);

    body["stream"] = json!(true);
    let resp = post(&app, "/v1/messages", &app.master_key, &body).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let ev = events(&resp.text().await.unwrap());
    assert_eq!(names(&ev)[0], "message_start");
    assert!(names(&ev).contains(&"ping"));
    assert_eq!(text_of(&ev), "Hello from Claude");
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"], json!({"output_tokens": 4}));
    assert_eq!(ev.last().unwrap().0, "message_stop");
    app.wait_for_spend_logs(2).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert!(rec.stream && rec.status == SpendStatus::Success);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (11, 4));
    assert_eq!(rec.call_type, "anthropic_messages");
    app.stop().await;
}

/// What Claude Code sends: extended thinking, prompt-cache breakpoints, beta headers.
fn coding_agent_request(model: &str) -> Value {
    json!({
        "model": model, "max_tokens": 32000,
        "thinking": {"type": "enabled", "budget_tokens": 8000},
        "system": [{"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Fix the bug.", "cache_control": {"type": "ephemeral"}}]}],
        "metadata": {"user_id": "user-1", "tags": ["claude-code"]}
    })
}

#[tokio::test]
async fn thinking_and_prompt_caching_reach_anthropic_and_cache_use_is_billed() {
    let (app, up) = setup().await;
    let answer = json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "thinking", "thinking": "Look at the loop.", "signature": "sig=="},
                    {"type": "text", "text": "Fixed."}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 3000, "output_tokens": 50}});
    up.set("claude-sonnet-4-5", Behavior::Json(answer.clone()));
    let resp = app
        .client()
        .post(app.url("/v1/messages"))
        .header("x-api-key", &app.master_key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&coding_agent_request("claude-sonnet"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, answer);
    let seen = up.last();
    assert_eq!(
        seen.headers["anthropic-beta"],
        "interleaved-thinking-2025-05-14"
    );
    assert_eq!(seen.body["thinking"]["budget_tokens"], 8000);
    assert_eq!(seen.body["system"][0]["cache_control"]["type"], "ephemeral");
    assert_eq!(
        seen.body["messages"][0]["content"][0]["cache_control"]["type"],
        "ephemeral"
    );
    // Tags are the gateway's; Anthropic takes only user_id.
    assert_eq!(seen.body["metadata"], json!({"user_id": "user-1"}));
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (3210, 50));
    assert_eq!(rec.cache_read_input_tokens, 3000);
    assert_eq!(rec.cache_creation_input_tokens, 200);
    assert!(rec.priced && rec.spend_nanos > 0);

    // A streamed thinking answer passes through event by event; thinking counts as generated.
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    up.set(
        "claude-sonnet-4-5",
        Behavior::RawStream {
            events: vec![
                ev("message_start", json!({"type": "message_start", "message": {"id": "msg_3", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null,
                    "usage": {"input_tokens": 10, "cache_read_input_tokens": 3000, "output_tokens": 1}}})),
                ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}})),
                ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Look."}})),
                ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig=="}})),
                ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
                ev("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}})),
                ev("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Fixed."}})),
                ev("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
                ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 42}})),
                ev("message_stop", json!({"type": "message_stop"})),
            ],
            reset: false,
        },
    );
    let mut body = coding_agent_request("claude-sonnet");
    body["stream"] = json!(true);
    let resp = post(&app, "/v1/messages", &app.master_key, &body).await;
    let id = call_id(&resp);
    let text = resp.text().await.unwrap();
    let got = events(&text);
    assert_eq!(got.len(), 10, "{text}");
    assert_eq!(got[2].1["delta"]["thinking"], "Look.");
    assert_eq!(got[3].1["delta"]["signature"], "sig==");
    app.wait_for_spend_logs(2).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert!(rec.stream && rec.status == SpendStatus::Success);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (3010, 42));
    assert_eq!(rec.cache_read_input_tokens, 3000);

    // A deployment that only speaks chat still refuses thinking, with the reason.
    let resp = post(
        &app,
        "/v1/messages",
        &app.master_key,
        &coding_agent_request("gpt-4o-mini"),
    )
    .await;
    let (status, _, message) = anthropic_error(resp).await;
    assert_eq!(status, 400);
    assert!(message.contains("thinking"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn anthropic_stream_cut_short_ends_with_an_error_event_and_a_failure() {
    let (app, up) = setup().await;
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    up.set(
        "claude-sonnet-4-5",
        Behavior::RawStream {
            events: vec![
                ev("message_start", json!({"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}})),
                ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Par"}})),
            ],
            reset: true,
        },
    );
    let mut body = hello("claude-sonnet");
    body["stream"] = json!(true);
    let resp = post(&app, "/v1/messages", &app.master_key, &body).await;
    let id = call_id(&resp);
    let text = resp.text().await.unwrap();
    let got = events(&text);
    assert_eq!(
        names(&got),
        ["message_start", "content_block_delta", "error"],
        "{text}"
    );
    assert_eq!(got[2].1["error"]["type"], "api_error");
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Failure);
    app.stop().await;
}

#[tokio::test]
async fn mock_deployments_answer_in_messages_shape() {
    let (app, up) = setup().await;
    let resp = post(&app, "/v1/messages", &app.master_key, &hello("demo")).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hi from the mock"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    let mut body = hello("demo");
    body["stream"] = json!(true);
    let resp = post(&app, "/v1/messages", &app.master_key, &body).await;
    assert_eq!(resp.status(), 200);
    let ev = events(&resp.text().await.unwrap());
    assert_eq!(text_of(&ev), "Hi from the mock");
    assert_eq!(names(&ev)[0], "message_start");
    assert_eq!(
        names(&ev)[ev.len() - 2..],
        ["message_delta", "message_stop"]
    );
    assert!(
        ev[ev.len() - 2].1["usage"]["output_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(up.requests(), 0);
    app.stop().await;
}

fn tools() -> Value {
    json!([
        {"name": "get_weather", "description": "Weather in a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
    ])
}

#[tokio::test]
async fn tool_calls_whole() {
    let (app, up) = setup().await;
    up.set(
        "gpt-tools",
        Behavior::Json(json!({
            "id": "chatcmpl-tools1", "object": "chat.completion", "created": 1, "model": "gpt-tools",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                ]
            }}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60}
        })),
    );
    let body = json!({
        "model": "gpt-tools", "max_tokens": 200,
        "messages": [{"role": "user", "content": "Weather and time in Paris?"}],
        "tools": tools(),
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
    });
    let resp = post(&app, "/v1/messages", &app.master_key, &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["content"],
        json!([
            {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}}
        ])
    );
    assert_eq!(v["stop_reason"], "tool_use");
    let seen = up.last().body;
    assert_eq!(
        seen["tools"][0],
        json!({"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
    );
    assert_eq!(seen["tool_choice"], "required");
    assert_eq!(seen["parallel_tool_calls"], false);
    app.stop().await;
}

fn chunk(delta: Value, finish: Value) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-tools",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    )
}

/// A chat stream: some text, then two tool calls, the finish, the usage chunk and [DONE].
fn tool_stream() -> Behavior {
    Behavior::RawStream {
        events: vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Let me check."}), Value::Null),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                       "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                       "function": {"name": "get_time", "arguments": "{}"}}]}),
                Value::Null,
            ),
            chunk(json!({}), json!("tool_calls")),
            format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-tools",
                       "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60}})
            ),
            "data: [DONE]\n\n".to_string(),
        ],
        reset: false,
    }
}

#[tokio::test]
async fn tool_calls_streamed() {
    let (app, up) = setup().await;
    up.set("gpt-tools", tool_stream());
    let body = json!({
        "model": "gpt-tools", "max_tokens": 200, "stream": true,
        "messages": [{"role": "user", "content": "Weather and time in Paris?"}],
        "tools": tools()
    });
    let resp = post(&app, "/v1/messages", &app.master_key, &body).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let ev = events(&resp.text().await.unwrap());
    let shape: Vec<(&str, Value)> = ev
        .iter()
        .map(|(n, d)| (n.as_str(), d["index"].clone()))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("message_start", Value::Null),
            ("content_block_start", json!(0)),
            ("content_block_delta", json!(0)),
            ("content_block_stop", json!(0)),
            ("content_block_start", json!(1)),
            ("content_block_delta", json!(1)),
            ("content_block_delta", json!(1)),
            ("content_block_stop", json!(1)),
            ("content_block_start", json!(2)),
            ("content_block_delta", json!(2)),
            ("content_block_stop", json!(2)),
            ("message_delta", Value::Null),
            ("message_stop", Value::Null),
        ]
    );
    assert_eq!(
        ev[4].1["content_block"],
        json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})
    );
    let partial: String = ev[5..7]
        .iter()
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(partial, "{\"city\":\"Paris\"}");
    assert_eq!(
        ev[8].1["content_block"],
        json!({"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}})
    );
    assert_eq!(ev[11].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(ev[11].1["usage"]["output_tokens"], 20);
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (40, 20));
    app.stop().await;
}

fn tool_conversation(model: &str) -> Value {
    json!({
        "model": model, "max_tokens": 100, "tools": tools(),
        "messages": [
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
                {"type": "text", "text": "Summarize."}
            ]}
        ]
    })
}

#[tokio::test]
async fn tool_results_reach_both_kinds_of_upstream() {
    let (app, up) = setup().await;
    let resp = post(
        &app,
        "/v1/messages",
        &app.master_key,
        &tool_conversation("gpt-4o-mini"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last().body["messages"],
        json!([
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "noon"},
            {"role": "user", "content": "Summarize."}
        ])
    );

    // Through chat and back to Anthropic's format, the conversation keeps its blocks.
    let resp = post(
        &app,
        "/v1/messages",
        &app.master_key,
        &tool_conversation("claude-sonnet"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let seen = up.last().body;
    assert_eq!(
        seen["messages"][1]["content"],
        json!([
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
        ])
    );
    let results = seen["messages"][2]["content"].as_array().unwrap();
    assert_eq!(results[0]["type"], "tool_result");
    assert_eq!(results[0]["tool_use_id"], "toolu_1");
    assert_eq!(results[1]["tool_use_id"], "toolu_2");
    assert_eq!(results[2], json!({"type": "text", "text": "Summarize."}));
    assert_eq!(seen["tools"][0]["name"], "get_weather");
    app.stop().await;
}

#[tokio::test]
async fn anthropic_prefix_bearer_keys_and_authentication_errors() {
    let (app, up) = setup().await;
    let resp = app
        .client()
        .post(app.url("/anthropic/v1/messages"))
        .bearer_auth(&app.master_key)
        .json(&hello("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "message");

    let resp = app
        .client()
        .post(app.url("/v1/messages"))
        .json(&hello("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    let (status, kind, _) = anthropic_error(resp).await;
    assert_eq!((status, kind.as_str()), (401, "authentication_error"));
    let resp = post(&app, "/v1/messages", "sk-not-a-key", &hello("gpt-4o-mini")).await;
    let (status, kind, message) = anthropic_error(resp).await;
    assert_eq!((status, kind.as_str()), (401, "authentication_error"));
    assert!(!message.contains("sk-not-a-key"), "{message}");
    assert_eq!(up.requests(), 1);
    app.stop().await;
}

#[tokio::test]
async fn count_tokens_is_estimated_locally() {
    let (app, up) = setup().await;
    let body = json!({
        "model": "gpt-4o-mini",
        "system": "You are a helpful assistant.",
        "messages": [{"role": "user", "content": "Hello there, how are you today?"}],
        "tools": tools()
    });
    for path in [
        "/v1/messages/count_tokens",
        "/anthropic/v1/messages/count_tokens",
    ] {
        let resp = post(&app, path, &app.master_key, &body).await;
        assert_eq!(resp.status(), 200, "{path}");
        let v: Value = resp.json().await.unwrap();
        let n = v["input_tokens"].as_u64().unwrap();
        assert!((20..400).contains(&n), "{v}");
        assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    }
    let resp = post(
        &app,
        "/v1/messages/count_tokens",
        &app.master_key,
        &json!({"model": "gpt-4o-mini", "messages": []}),
    )
    .await;
    let (status, kind, _) = anthropic_error(resp).await;
    assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
    let resp = post(&app, "/v1/messages/count_tokens", "sk-nope", &body).await;
    assert_eq!(anthropic_error(resp).await.0, 401);
    assert_eq!(up.requests(), 0, "nothing is sent upstream");
    app.stop().await;
}

#[tokio::test]
async fn invalid_requests_are_refused_before_the_upstream() {
    let (app, up) = setup().await;
    let mut no_max = hello("gpt-4o-mini");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let mut server_tool = hello("gpt-4o-mini");
    server_tool["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let mut thinking = hello("gpt-4o-mini");
    thinking["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    for (body, expected) in [
        (no_max, "max_tokens: Field required"),
        (server_tool, "web_search_20250305"),
        (thinking, "thinking"),
        (hello("no-such-model"), "no-such-model"),
    ] {
        let resp = post(&app, "/v1/messages", &app.master_key, &body).await;
        let (status, kind, message) = anthropic_error(resp).await;
        assert_eq!(
            (status, kind.as_str()),
            (400, "invalid_request_error"),
            "{message}"
        );
        assert!(message.contains(expected), "{message}");
    }
    let resp = app
        .client()
        .post(app.url("/v1/messages"))
        .header("x-api-key", &app.master_key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, kind, _) = anthropic_error(resp).await;
    assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
    assert_eq!(up.requests(), 0);
    app.stop().await;
}

async fn new_key(app: &TestApp, body: Value) -> String {
    let (s, v) = app
        .api(&app.master_key, "POST", "/key/generate", body)
        .await;
    assert_eq!(s, 200, "{v}");
    v["key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn gateway_refusals_use_anthropics_envelope() {
    let (app, up) = setup().await;

    // A key limited to one model.
    let key = new_key(&app, json!({"models": ["gpt-4o-mini"]})).await;
    let resp = post(&app, "/v1/messages", &key, &hello("claude-sonnet")).await;
    let (status, kind, message) = anthropic_error(resp).await;
    assert_eq!(
        (status, kind.as_str()),
        (403, "permission_error"),
        "{message}"
    );
    assert!(message.contains("claude-sonnet"), "{message}");

    // A rate-limited key.
    let key = new_key(&app, json!({"rpm_limit": 1})).await;
    assert_eq!(
        post(&app, "/v1/messages", &key, &hello("gpt-4o-mini"))
            .await
            .status(),
        200
    );
    let resp = post(&app, "/v1/messages", &key, &hello("gpt-4o-mini")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    let (_, kind, _) = anthropic_error(resp).await;
    assert_eq!(kind, "rate_limit_error");

    // A key over its budget: each call costs 12 × 1e-6 + 6 × 2e-6 = 24e-6.
    let key = new_key(&app, json!({"max_budget": 0.00005})).await;
    let mut body = hello("priced");
    body["max_tokens"] = json!(5);
    let mut ok = 0;
    let (status, kind, message) = loop {
        let resp = post(&app, "/v1/messages", &key, &body).await;
        if resp.status() != 200 {
            break anthropic_error(resp).await;
        }
        ok += 1;
        assert!(ok < 10, "the budget never applied");
    };
    assert!(ok >= 1, "refused at once: {message}");
    assert_eq!(
        (status, kind.as_str()),
        (422, "invalid_request_error"),
        "{message}"
    );
    assert!(message.to_lowercase().contains("budget"), "{message}");

    // The upstream's own 429.
    let before = up.requests();
    let resp = post(&app, "/v1/messages", &app.master_key, &hello("always-429")).await;
    let (status, kind, _) = anthropic_error(resp).await;
    assert_eq!((status, kind.as_str()), (429, "rate_limit_error"));
    assert_eq!(up.requests(), before + 1);
    app.stop().await;
}

#[tokio::test]
async fn mid_stream_failure_ends_with_an_error_event() {
    let (app, up) = setup().await;
    up.set("gpt-4o-mini", Behavior::ResetMidStream);
    let mut body = hello("gpt-4o-mini");
    body["stream"] = json!(true);
    let resp = post(&app, "/v1/messages", &app.master_key, &body).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let text = resp.text().await.unwrap();
    let ev = events(&text);
    assert_eq!(text_of(&ev), "partial ", "{text}");
    let (name, data) = ev.last().unwrap();
    assert_eq!(name, "error", "{text}");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(!names(&ev).contains(&"message_stop"), "{text}");
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Failure);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_python_sdk_works_against_the_gateway() {
    let python = match std::env::var("TOLLGATE_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must set TOLLGATE_PYTHON to a Python with `anthropic` and `pytest`"
            );
            eprintln!(
                "skipped: set TOLLGATE_PYTHON to a Python with anthropic and pytest installed"
            );
            return;
        }
    };
    let (app, up) = setup().await;
    up.set("gpt-tools", tool_stream());
    let test = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/test_anthropic_sdk.py"
    );
    let base_url = app.base_url.clone();
    let key = app.master_key.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", test])
            .env("TOLLGATE_ANTHROPIC_BASE_URL", base_url)
            .env("TOLLGATE_API_KEY", key)
            .output()
            .expect("run pytest")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("passed"), "pytest ran no test:\n{stdout}");
    assert!(!stdout.contains("skipped"), "{stdout}");
    app.stop().await;
}

#[tokio::test]
async fn a_request_only_anthropic_can_serve_goes_to_the_anthropic_deployment_of_a_mixed_group() {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&format!(
        r#"
model_list:
  - model_name: mixed
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{b}/v1", api_key: sk-provider-secret-123456}}
  - model_name: mixed
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{b}", api_key: sk-ant-secret-123456}}
router_settings: {{num_retries: 2}}
general_settings: {{master_key: "{{master_key}}"}}
"#,
        b = up.base_url
    ))
    .await;
    for _ in 0..6 {
        let resp = post(
            &app,
            "/v1/messages",
            &app.master_key,
            &coding_agent_request("mixed"),
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    // The OpenAI deployment was never sent what it can't be told.
    assert!(up.seen().iter().all(|s| s.path == "/v1/messages"));
    assert_eq!(up.requests(), 6);
    // What both can serve still goes to either.
    for _ in 0..12 {
        let resp = post(&app, "/v1/messages", &app.master_key, &hello("mixed")).await;
        assert_eq!(resp.status(), 200);
    }
    assert!(up.seen().iter().any(|s| s.path == "/v1/chat/completions"));
    app.stop().await;
}
