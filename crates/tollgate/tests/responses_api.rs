//! `POST /v1/responses`: OpenAI's Responses API, passed through as it is to OpenAI and Azure
//! deployments (which speak it) and served through the chat pipeline for the others, against the
//! fake upstreams (plain and streamed, tools, refusals, budgets, spend).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_store::SpendStatus;
use tollgate_testkit::upstream::FAKE_RESPONSE_ID;
use tollgate_testkit::{spawn_app, Behavior, FakeUpstream, TestApp};

const FAKE_TEXT: &str = "Hello from the fake upstream";

async fn setup() -> (TestApp, FakeUpstream) {
    let up = FakeUpstream::start().await;
    let cfg = format!(
        r#"
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: hosted_vllm/gpt-4o-mini, api_base: "{b}/v1", api_key: sk-provider-secret-123456}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{b}", api_key: sk-ant-secret-123456}}
  - model_name: priced
    litellm_params: {{model: hosted_vllm/priced, api_base: "{b}/v1", api_key: sk-upstream, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
    model_info: {{max_output_tokens: 100000}}
  - model_name: gpt-native
    litellm_params: {{model: openai/gpt-native-up, api_base: "{b}/v1", api_key: sk-openai-secret-123456}}
  - model_name: priced-native
    litellm_params: {{model: openai/priced-native, api_base: "{b}/v1", api_key: sk-upstream, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
    model_info: {{max_output_tokens: 100000}}
  - model_name: azure-native
    litellm_params: {{model: azure/my-deployment, api_base: "{b}", api_key: azure-secret-123456, api_version: "2024-10-21"}}
general_settings:
  master_key: "{{master_key}}"
"#,
        b = up.base_url
    );
    let app = spawn_app(&cfg).await;
    (app, up)
}

async fn post(app: &TestApp, key: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client()
        .post(app.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The events of a Responses stream: (event name, data), checking name = type and that the
/// sequence numbers count up from 0.
async fn events(resp: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (name, data) = block
            .strip_prefix("event: ")
            .and_then(|r| r.split_once("\ndata: "))
            .unwrap_or_else(|| panic!("not a Responses event: {block:?}"));
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], name, "{block}");
        assert_eq!(v["sequence_number"], out.len(), "{block}");
        out.push((name.to_string(), v));
    }
    out
}

fn names(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter().map(|(n, _)| n.as_str()).collect()
}

fn text_deltas(evs: &[(String, Value)]) -> String {
    evs.iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, v)| v["delta"].as_str().unwrap())
        .collect()
}

fn tools() -> Value {
    json!([{"type": "function", "name": "weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}])
}

#[tokio::test]
async fn openai_upstream_plain_answer_is_a_response_and_is_billed() {
    let (app, up) = setup().await;
    let body = json!({
        "model": "gpt-4o-mini", "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}],
        "tools": tools(), "tool_choice": "auto", "max_output_tokens": 50, "store": true,
        "metadata": {"trace": "t1"}
    });
    let resp = post(&app, &app.master_key, "/v1/responses", &body).await;
    assert_eq!(resp.status(), 200);
    let call_id = resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-4o-mini");
    // Named by the gateway's request id, like the spend log.
    assert_eq!(
        v["id"].as_str().unwrap(),
        call_id.replacen("chatcmpl-", "resp_", 1)
    );
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(v["output"][0]["content"][0]["text"], FAKE_TEXT);
    assert_eq!(v["usage"]["input_tokens"], 12);
    assert_eq!(v["usage"]["output_tokens"], 6);
    assert_eq!(v["usage"]["total_tokens"], 18);
    // The request's settings are echoed; nothing is stored.
    assert_eq!(v["tools"], tools());
    assert_eq!(v["max_output_tokens"], 50);
    assert_eq!(v["metadata"], json!({"trace": "t1"}));
    assert_eq!(v["store"], false);

    let seen = up.last();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "system", "content": "Be brief."},
               {"role": "user", "content": [{"type": "text", "text": "Say hello"}]}])
    );
    assert_eq!(seen.body["tools"][0]["function"]["name"], "weather");
    assert_eq!(seen.body["max_tokens"], 50);
    assert!(seen.body.get("input").is_none() && seen.body.get("store").is_none());

    assert_eq!(app.wait_for_spend_logs(1).await, 1);
    let rec = app.store.get_spend_log(&call_id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!(rec.call_type, "aresponses");
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));
    assert_eq!(rec.model_group, "gpt-4o-mini");

    // Also served without the /v1 prefix.
    let resp = post(
        &app,
        &app.master_key,
        "/responses",
        &json!({"model": "gpt-4o-mini", "input": "hi"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn openai_upstream_streams_response_events() {
    let (app, up) = setup().await;
    let body = json!({"model": "gpt-4o-mini", "input": "Say hello", "stream": true});
    let evs = events(post(&app, &app.master_key, "/v1/responses", &body).await).await;
    let n = names(&evs);
    assert_eq!(
        n[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        n[n.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(text_deltas(&evs), FAKE_TEXT);
    let done = &evs.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], FAKE_TEXT);
    assert_eq!(done["usage"]["total_tokens"], 18);
    assert_eq!(done["id"], evs[0].1["response"]["id"]);
    // The pipeline asked the upstream for usage so the last event can carry it.
    assert_eq!(up.last().body["stream_options"]["include_usage"], true);
    assert_eq!(app.wait_for_spend_logs(1).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn streamed_tool_calls_become_function_call_items() {
    let (app, up) = setup().await;
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    up.set(
        "gpt-4o-mini",
        Behavior::RawStream {
            events: vec![
                chunk(
                    json!({"role": "assistant", "content": "Checking."}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":"}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]}),
                    Value::Null,
                ),
                chunk(json!({}), json!("tool_calls")),
                format!(
                    "data: {}\n\n",
                    json!({"id": "chatcmpl-x", "object": "chat.completion.chunk", "choices": [],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}})
                ),
                "data: [DONE]\n\n".to_string(),
            ],
            reset: false,
        },
    );
    let body = json!({"model": "gpt-4o-mini", "input": "Weather in Paris and Rome?", "tools": tools(), "stream": true});
    let evs = events(post(&app, &app.master_key, "/v1/responses", &body).await).await;
    let added: Vec<&Value> = evs
        .iter()
        .filter(|(n, _)| n == "response.output_item.added")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(added.len(), 3);
    assert_eq!(added[1]["item"]["type"], "function_call");
    assert_eq!(added[1]["output_index"], 1);
    let args: Vec<&str> = evs
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.done")
        .map(|(_, v)| v["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(args, ["{\"city\":\"Paris\"}", "{\"city\":\"Rome\"}"]);
    let done = &evs.last().unwrap().1;
    assert_eq!(done["type"], "response.completed");
    let output = done["response"]["output"].as_array().unwrap();
    assert_eq!(output.len(), 3);
    assert_eq!(output[0]["content"][0]["text"], "Checking.");
    assert_eq!(
        (&output[1]["call_id"], &output[2]["call_id"]),
        (&json!("call_a"), &json!("call_b"))
    );
    assert_eq!(done["response"]["usage"]["input_tokens"], 20);
    assert_eq!(app.wait_for_spend_logs(1).await, 1);

    // The client runs the tools and sends the whole conversation back.
    let turn2 = json!({"model": "gpt-4o-mini", "tools": tools(), "input": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        output[0], output[1], output[2],
        {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
        {"type": "function_call_output", "call_id": "call_b", "output": "21C"}
    ]});
    up.set("gpt-4o-mini", Behavior::Answer);
    let resp = post(&app, &app.master_key, "/v1/responses", &turn2).await;
    assert_eq!(resp.status(), 200);
    let msgs = up.last().body["messages"].clone();
    assert_eq!(msgs.as_array().unwrap().len(), 4);
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["content"], "Checking.");
    assert_eq!(msgs[1]["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(
        msgs[2],
        json!({"role": "tool", "tool_call_id": "call_a", "content": "18C"})
    );
    app.stop().await;
}

#[tokio::test]
async fn anthropic_upstream_plain_and_streamed() {
    let (app, up) = setup().await;
    let resp = post(
        &app,
        &app.master_key,
        "/v1/responses",
        &json!({"model": "claude", "instructions": "Be brief.", "input": "Say hello", "max_output_tokens": 100}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], "Hello from Claude");
    assert_eq!(v["usage"]["input_tokens"], 11);
    assert_eq!(v["usage"]["output_tokens"], 4);
    let seen = up.last();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.body["system"], "Be brief.");
    assert_eq!(seen.body["max_tokens"], 100);

    // A streamed tool call from Claude.
    let ev = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    up.set(
        "claude-sonnet-4-5",
        Behavior::RawStream {
            events: vec![
                ev(json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                    "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "usage": {"input_tokens": 30, "output_tokens": 1}}})),
                ev(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}})),
                ev(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Oslo\"}"}})),
                ev(json!({"type": "content_block_stop", "index": 0})),
                ev(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 7}})),
                ev(json!({"type": "message_stop"})),
            ],
            reset: false,
        },
    );
    let body =
        json!({"model": "claude", "input": "Weather in Oslo?", "tools": tools(), "stream": true});
    let evs = events(post(&app, &app.master_key, "/v1/responses", &body).await).await;
    assert_eq!(
        names(&evs),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let done = &evs.last().unwrap().1["response"];
    assert_eq!(done["output"][0]["call_id"], "toolu_1");
    assert_eq!(done["output"][0]["name"], "weather");
    assert_eq!(done["output"][0]["arguments"], "{\"city\": \"Oslo\"}");
    assert_eq!(done["usage"]["input_tokens"], 30);
    assert_eq!(done["usage"]["output_tokens"], 7);
    assert_eq!(app.wait_for_spend_logs(2).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn refusals_use_openai_error_envelope() {
    let (app, up) = setup().await;
    // Stored state Tollgate does not keep.
    let resp = post(
        &app,
        &app.master_key,
        "/v1/responses",
        &json!({"model": "gpt-4o-mini", "input": "hi", "previous_response_id": "resp_123"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "previous_response_id is not supported: Tollgate does not store responses; send the whole conversation in input"
    );
    // Built-in tools.
    let resp = post(
        &app,
        &app.master_key,
        "/v1/responses",
        &json!({"model": "gpt-4o-mini", "input": "hi", "tools": [{"type": "web_search"}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'web_search'"),
        "{v}"
    );
    assert_eq!(up.requests(), 0, "refused before any upstream call");

    // A key limited to one model.
    let (s, k) = app
        .api(
            &app.master_key,
            "POST",
            "/key/generate",
            json!({"models": ["gpt-4o-mini"]}),
        )
        .await;
    assert_eq!(s, 200, "{k}");
    let key = k["key"].as_str().unwrap();
    let resp = post(
        &app,
        key,
        "/v1/responses",
        &json!({"model": "claude", "input": "hi"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "key_model_access_denied");
    // No key at all.
    let resp = post(
        &app,
        "sk-wrong",
        "/v1/responses",
        &json!({"model": "gpt-4o-mini", "input": "hi"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"].is_string(), "{v}");
    app.stop().await;
}

#[tokio::test]
async fn budget_refuses_responses_calls() {
    let (app, _up) = setup().await;
    let (s, k) = app
        .api(
            &app.master_key,
            "POST",
            "/key/generate",
            json!({"max_budget": 0.00005}),
        )
        .await;
    assert_eq!(s, 200, "{k}");
    let key = k["key"].as_str().unwrap();
    let body = json!({"model": "priced", "input": "hi", "max_output_tokens": 5});
    let mut ok = 0;
    loop {
        let resp = post(&app, key, "/v1/responses", &body).await;
        if resp.status() == 200 {
            ok += 1;
            assert!(ok < 10, "the budget never applied");
            // Spend is recorded before the next call is admitted.
            app.wait_for_spend_logs(ok).await;
            continue;
        }
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["type"], "budget_exceeded", "{v}");
        break;
    }
    assert!(ok >= 1, "refused at once");
    app.stop().await;
}

#[tokio::test]
async fn upstream_lost_mid_stream_ends_with_error_and_failed() {
    let (app, up) = setup().await;
    up.set("gpt-4o-mini", Behavior::ResetMidStream);
    let body = json!({"model": "gpt-4o-mini", "input": "Say hello", "stream": true});
    let evs = events(post(&app, &app.master_key, "/v1/responses", &body).await).await;
    let n = names(&evs);
    assert_eq!(n[0], "response.created");
    assert!(n.contains(&"response.output_text.delta"), "{n:?}");
    assert_eq!(n[n.len() - 2..], ["error", "response.failed"]);
    let (_, err) = &evs[evs.len() - 2];
    assert_eq!(err["code"], "server_error");
    assert!(err["message"].as_str().unwrap().len() > 5, "{err}");
    let failed = &evs.last().unwrap().1["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "server_error");
    assert!(!n.contains(&"response.completed"));
    app.stop().await;
}

fn call_id(resp: &reqwest::Response) -> String {
    resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn openai_deployment_gets_the_request_as_sent_and_the_call_is_billed() {
    let (app, up) = setup().await;
    // What the chat translation can't carry: a stored conversation, reasoning, a built-in tool.
    let body = json!({
        "model": "gpt-native", "input": "And in French?",
        "previous_response_id": FAKE_RESPONSE_ID, "reasoning": {"effort": "low"},
        "tools": [{"type": "web_search_preview"}], "store": true,
        "metadata": {"trace": "t1", "tags": ["team-a"]}
    });
    let resp = post(&app, &app.master_key, "/v1/responses", &body).await;
    assert_eq!(resp.status(), 200);
    let id = call_id(&resp);
    let v: Value = resp.json().await.unwrap();
    // The upstream's Response, as it came.
    assert_eq!(v["id"], FAKE_RESPONSE_ID);
    assert_eq!(v["model"], "gpt-native-up");
    assert_eq!(v["previous_response_id"], FAKE_RESPONSE_ID);
    assert_eq!(v["output"][0]["content"][0]["text"], FAKE_TEXT);
    assert_eq!(v["store"], true);

    let seen = up.last();
    assert_eq!(seen.path, "/v1/responses");
    assert_eq!(
        seen.headers["authorization"],
        "Bearer sk-openai-secret-123456"
    );
    assert_eq!(seen.body["model"], "gpt-native-up");
    assert_eq!(seen.body["input"], "And in French?");
    assert_eq!(seen.body["previous_response_id"], FAKE_RESPONSE_ID);
    assert_eq!(seen.body["reasoning"], json!({"effort": "low"}));
    assert_eq!(seen.body["tools"], json!([{"type": "web_search_preview"}]));
    // Tags are the gateway's; OpenAI's metadata takes strings only.
    assert_eq!(seen.body["metadata"], json!({"trace": "t1"}));

    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!(rec.call_type, "aresponses");
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));
    assert_eq!(rec.cache_read_input_tokens, 2);
    assert_eq!(rec.model_group, "gpt-native");

    // The upstream's own refusal comes back in OpenAI's envelope.
    let mut unknown = body.clone();
    unknown["previous_response_id"] = json!("resp_unknown");
    let resp = post(&app, &app.master_key, "/v1/responses", &unknown).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resp_unknown"),
        "{v}"
    );

    // Translated deployments still refuse what they can't serve.
    let mut translated = body;
    translated["model"] = json!("gpt-4o-mini");
    let resp = post(&app, &app.master_key, "/v1/responses", &translated).await;
    assert_eq!(resp.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn openai_deployment_streams_its_own_events() {
    let (app, up) = setup().await;
    let body = json!({"model": "gpt-native", "input": "Say hello", "stream": true});
    let resp = post(&app, &app.master_key, "/v1/responses", &body).await;
    let id = call_id(&resp);
    let evs = events(resp).await;
    assert_eq!(names(&evs)[0], "response.created");
    assert_eq!(evs.last().unwrap().0, "response.completed");
    assert_eq!(evs[0].1["response"]["id"], FAKE_RESPONSE_ID);
    assert_eq!(text_deltas(&evs), FAKE_TEXT);
    // Sent as the caller asked: no chat stream options.
    assert!(up.last().body.get("stream_options").is_none());
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert!(rec.stream && rec.status == SpendStatus::Success);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));

    // Cut off after two events: the stream ends with an error event numbered after them.
    let cut: Vec<String> = [
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_x"}}),
        json!({"type": "response.output_text.delta", "sequence_number": 1, "delta": "Hel",
               "item_id": "m", "output_index": 0, "content_index": 0}),
    ]
    .iter()
    .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
    .collect();
    up.set(
        "gpt-native-up",
        Behavior::RawStream {
            events: cut,
            reset: true,
        },
    );
    let resp = post(&app, &app.master_key, "/v1/responses", &body).await;
    let id = call_id(&resp);
    let evs = events(resp).await;
    assert_eq!(
        names(&evs),
        ["response.created", "response.output_text.delta", "error"]
    );
    assert_eq!(evs[2].1["code"], "server_error");
    app.wait_for_spend_logs(2).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Failure);
    // Cut before the upstream reported usage: the prompt is estimated, not taken as 0.
    assert!(rec.prompt_tokens > 0 && rec.usage_estimated, "{rec:?}");
    app.stop().await;
}

#[tokio::test]
async fn azure_deployment_gets_responses_at_its_own_path() {
    let (app, up) = setup().await;
    let body = json!({"model": "azure-native", "input": "Say hello"});
    let resp = post(&app, &app.master_key, "/v1/responses", &body).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.path, "/openai/responses");
    // Its chat api_version predates the Responses API on Azure.
    assert_eq!(seen.query.as_deref(), Some("api-version=preview"));
    assert_eq!(seen.headers["api-key"], "azure-secret-123456");
    assert_eq!(seen.body["model"], "my-deployment");
    app.stop().await;
}

#[tokio::test]
async fn budget_lowers_a_native_requests_output_bound() {
    let (app, up) = setup().await;
    let (s, k) = app
        .api(
            &app.master_key,
            "POST",
            "/key/generate",
            json!({"max_budget": 0.001}),
        )
        .await;
    assert_eq!(s, 200, "{k}");
    let key = k["key"].as_str().unwrap();
    // 100,000 output tokens would cost 0.2; the budget affords about 500.
    let body = json!({"model": "priced-native", "input": "hi", "max_output_tokens": 100000});
    let resp = post(&app, key, "/v1/responses", &body).await;
    assert_eq!(resp.status(), 200);
    let bound = up.last().body["max_output_tokens"].as_u64().unwrap();
    assert!((16..=500).contains(&bound), "max_output_tokens {bound}");
    app.stop().await;
}
