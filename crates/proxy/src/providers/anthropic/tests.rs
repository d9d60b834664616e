use serde_json::{json, Map, Value};

use super::*;

fn req(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("test request must be an object"),
    }
}

fn bad_request_msg(r: Result<Value, TranslateError>) -> String {
    match r {
        Err(TranslateError::BadRequest(m)) => m,
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

fn parse(chunks: &[String]) -> Vec<Value> {
    chunks
        .iter()
        .map(|c| serde_json::from_str(c).unwrap())
        .collect()
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "claude",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
}

// ---- request ----

#[test]
fn missing_or_empty_messages_rejected() {
    for body in [
        json!({}),
        json!({"messages": []}),
        json!({"messages": "hi"}),
    ] {
        let msg = bad_request_msg(to_anthropic_request(&req(body), "m", 1024, false));
        assert_eq!(msg, "messages must be a non-empty array");
    }
}

#[test]
fn only_system_messages_rejected() {
    let r = req(json!({"messages": [{"role": "system", "content": "x"}]}));
    let msg = bad_request_msg(to_anthropic_request(&r, "m", 1024, false));
    assert_eq!(
        msg,
        "messages must contain at least one user or assistant message"
    );
}

#[test]
fn basic_request_with_params_and_dropped_fields() {
    let r = req(json!({
        "model": "my-alias",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "stop": "END",
        "user": "u-42",
        "n": 1,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "logit_bias": {"50256": -100},
        "seed": 7,
        "logprobs": true,
        "top_logprobs": 2,
        "response_format": {"type": "text"},
        "stream_options": {"include_usage": true},
        "parallel_tool_calls": false,
        "some_unknown_field": {"x": 1}
    }));
    let out = to_anthropic_request(&r, "claude-3-5-sonnet-20241022", 4096, true).unwrap();
    assert_eq!(
        out,
        json!({
            "model": "claude-3-5-sonnet-20241022",
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "stop_sequences": ["END"],
            "stream": true,
            "metadata": {"user_id": "u-42"}
        })
    );
}

#[test]
fn default_max_tokens_and_no_stream_key() {
    let r = req(json!({"messages": [{"role": "user", "content": "Hi"}], "stream": true}));
    let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
    assert_eq!(
        out,
        json!({
            "model": "m",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 1024
        })
    );
}

#[test]
fn max_completion_tokens_wins_and_stop_array() {
    let r = req(json!({
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 10,
        "max_completion_tokens": 20,
        "stop": ["a", "b"]
    }));
    let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
    assert_eq!(out["max_tokens"], json!(20));
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));

    let r = req(json!({
        "messages": [{"role": "user", "content": "Hi"}],
        "max_completion_tokens": 33
    }));
    let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
    assert_eq!(out["max_tokens"], json!(33));
}

#[test]
fn invalid_scalar_params_rejected() {
    let base = |k: &str, v: Value| {
        let mut r = req(json!({"messages": [{"role": "user", "content": "Hi"}]}));
        r.insert(k.into(), v);
        to_anthropic_request(&r, "m", 1024, false)
    };
    assert_eq!(
        bad_request_msg(base("max_tokens", json!(0))),
        "max_tokens must be a positive integer"
    );
    assert_eq!(
        bad_request_msg(base("temperature", json!("hot"))),
        "temperature must be a number"
    );
    assert_eq!(
        bad_request_msg(base("stop", json!([1]))),
        "stop must be a string or an array of strings"
    );
}

#[test]
fn n_greater_than_one_rejected() {
    let r = req(json!({"messages": [{"role": "user", "content": "Hi"}], "n": 2}));
    assert_eq!(
        bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
        "n > 1 is not supported for Anthropic models"
    );
}

#[test]
fn json_response_format_rejected() {
    let r = req(json!({
        "messages": [{"role": "user", "content": "Hi"}],
        "response_format": {"type": "json_object"}
    }));
    assert_eq!(
        bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
        "response_format type 'json_object' is not supported for Anthropic models"
    );
}

#[test]
fn system_and_developer_messages_extracted() {
    let r = req(json!({"messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": [
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": "Use English."}
        ]},
        {"role": "developer", "content": "No emojis."}
    ]}));
    let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
    assert_eq!(
        out,
        json!({
            "model": "m",
            "messages": [{"role": "user", "content": "Hi"}],
            "system": "You are helpful.\nBe brief.\nUse English.\nNo emojis.",
            "max_tokens": 1024
        })
    );
}

#[test]
fn system_with_image_rejected() {
    let r = req(json!({"messages": [
        {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "user", "content": "Hi"}
    ]}));
    assert_eq!(
        bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
        "system messages may only contain text parts"
    );
}

#[test]
fn image_blocks() {
    let r = req(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}
    ]}]}));
    let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
        ]}])
    );
}

#[test]
fn bad_image_urls_rejected() {
    for url in ["ftp://x/y.png", "data:image/png,abc", "data:;base64,abc"] {
        let r = req(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}
        ]}]}));
        assert!(matches!(
            to_anthropic_request(&r, "m", 1024, false),
            Err(TranslateError::BadRequest(_))
        ));
    }
}

#[test]
fn unsupported_part_and_role_rejected() {
    let r = req(json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}
    ]}]}));
    assert_eq!(
        bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
        "unsupported content part type 'input_audio' for Anthropic models"
    );
    let r = req(json!({"messages": [{"role": "function", "content": "x", "name": "f"}]}));
    assert_eq!(
        bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
        "message role 'function' is not supported for Anthropic models"
    );
}

#[test]
fn tool_calls_and_results() {
    let r = req(json!({"messages": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
        {"role": "user", "content": "Thanks"}
    ]}));
    let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
                {"type": "text", "text": "Thanks"}
            ]}
        ])
    );
}

#[test]
fn assistant_null_content_and_empty_arguments() {
    let r = req(json!({"messages": [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": ""}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "noon"}
    ]}));
    let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
    assert_eq!(
        out["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "now", "input": {}}
        ]})
    );
}

#[test]
fn unparsable_tool_arguments_rejected() {
    let r = req(json!({"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
        ]}
    ]}));
    let msg = bad_request_msg(to_anthropic_request(&r, "m", 1024, false));
    assert!(msg.starts_with("tool call 'call_1' has arguments that are not valid JSON"));

    let r = req(json!({"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
        ]}
    ]}));
    assert_eq!(
        bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
        "tool call 'call_1' arguments must be a JSON object"
    );
}

#[test]
fn tool_message_without_id_rejected() {
    let r = req(json!({"messages": [{"role": "tool", "content": "x"}]}));
    assert_eq!(
        bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
        "tool messages require a string 'tool_call_id'"
    );
}

#[test]
fn consecutive_same_role_merged() {
    let r = req(json!({"messages": [
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "three"}
    ]}));
    let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "one"},
                {"type": "text", "text": "two"}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b"}
            ]},
            {"role": "user", "content": "three"}
        ])
    );
}

fn with_tools(choice: Value) -> Result<Value, TranslateError> {
    let r = req(json!({
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [
            {"type": "function", "function": {
                "name": "get_weather",
                "description": "Get weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
            }},
            {"type": "function", "function": {"name": "now"}}
        ],
        "tool_choice": choice
    }));
    to_anthropic_request(&r, "m", 1024, false)
}

#[test]
fn tools_translated() {
    let out = with_tools(Value::Null).unwrap();
    assert_eq!(
        out["tools"],
        json!([
            {
                "name": "get_weather",
                "description": "Get weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
            },
            {"name": "now", "input_schema": {"type": "object", "properties": {}}}
        ])
    );
    assert!(out.get("tool_choice").is_none());
}

#[test]
fn tool_choice_variants() {
    let cases = [
        (json!("auto"), json!({"type": "auto"})),
        (json!("required"), json!({"type": "any"})),
        (json!("none"), json!({"type": "none"})),
        (
            json!({"type": "function", "function": {"name": "now"}}),
            json!({"type": "tool", "name": "now"}),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(with_tools(input).unwrap()["tool_choice"], expected);
    }
    assert_eq!(
        bad_request_msg(with_tools(json!("sometimes"))),
        "unknown tool_choice 'sometimes'"
    );
}

#[test]
fn tool_choice_without_tools() {
    let r = req(json!({"messages": [{"role": "user", "content": "Hi"}], "tool_choice": "none"}));
    let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
    assert!(out.get("tool_choice").is_none());
    let r =
        req(json!({"messages": [{"role": "user", "content": "Hi"}], "tool_choice": "required"}));
    assert_eq!(
        bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
        "tool_choice requires a non-empty 'tools' array"
    );
}

#[test]
fn non_function_tool_rejected() {
    let r = req(json!({
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [{"type": "web_search"}]
    }));
    assert_eq!(
        bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
        "tool type 'web_search' is not supported for Anthropic models"
    );
}

// ---- response ----

#[test]
fn text_response() {
    let resp = json!({
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-sonnet-20241022",
        "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}
    });
    let (body, usage) = from_anthropic_response(&resp, "chatcmpl-1", "claude", 1700000000).unwrap();
    assert_eq!(
        body,
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "claude",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "Hello world"},
                "finish_reason": "stop"
            }],
            "usage": {
                "prompt_tokens": 130,
                "completion_tokens": 5,
                "total_tokens": 135,
                "prompt_tokens_details": {"cached_tokens": 100}
            }
        })
    );
    assert_eq!(
        usage,
        Usage {
            prompt_tokens: 130,
            completion_tokens: 5,
            cache_read_input_tokens: 100,
            cache_creation_input_tokens: 20
        }
    );
}

#[test]
fn tool_use_response() {
    let resp = json!({
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 7, "output_tokens": 3}
    });
    let (body, usage) = from_anthropic_response(&resp, "chatcmpl-2", "claude", 1).unwrap();
    assert_eq!(
        body["choices"],
        json!([{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
                }]
            },
            "finish_reason": "tool_calls"
        }])
    );
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert_eq!(usage.prompt_tokens, 7);
}

#[test]
fn stop_reason_mapping() {
    for (reason, expected) in [
        (json!("end_turn"), json!("stop")),
        (json!("stop_sequence"), json!("stop")),
        (json!("max_tokens"), json!("length")),
        (json!("tool_use"), json!("tool_calls")),
        (json!(null), json!(null)),
    ] {
        let resp = json!({"content": [], "stop_reason": reason, "usage": {}});
        let (body, _) = from_anthropic_response(&resp, "i", "m", 0).unwrap();
        assert_eq!(body["choices"][0]["finish_reason"], expected);
    }
}

#[test]
fn unreadable_response_is_bad_upstream() {
    let r = from_anthropic_response(&json!({"type": "message"}), "i", "m", 0);
    assert!(matches!(r, Err(TranslateError::BadUpstream(_))));
}

// ---- streaming ----

fn feed(t: &mut StreamTranslator, events: &[(&str, Value)]) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, data) in events {
        out.extend(parse(&t.on_event(Some(name), &data.to_string()).unwrap()));
    }
    out
}

#[test]
fn streamed_text_conversation() {
    let mut t = StreamTranslator::new("chatcmpl-1", "claude", 1700000000, true);
    assert!(!t.finished());
    let chunks = feed(
        &mut t,
        &[
            (
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": "msg_1", "type": "message", "role": "assistant", "content": [],
                    "model": "claude-3-5-sonnet-20241022", "stop_reason": null,
                    "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 5}
                }}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ("ping", json!({"type": "ping"})),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 15}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ],
    );
    assert_eq!(
        chunks,
        vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hello"}), Value::Null),
            chunk(json!({"content": "!"}), Value::Null),
            chunk(json!({}), json!("stop")),
            json!({
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": "claude",
                "choices": [],
                "usage": {
                    "prompt_tokens": 40,
                    "completion_tokens": 15,
                    "total_tokens": 55,
                    "prompt_tokens_details": {"cached_tokens": 10}
                }
            }),
        ]
    );
    assert!(t.finished());
    assert_eq!(
        t.usage(),
        Usage {
            prompt_tokens: 40,
            completion_tokens: 15,
            cache_read_input_tokens: 10,
            cache_creation_input_tokens: 5
        }
    );
}

#[test]
fn streamed_tool_call() {
    let mut t = StreamTranslator::new("chatcmpl-1", "claude", 1700000000, false);
    let chunks = feed(
        &mut t,
        &[
            (
                "message_start",
                json!({"type": "message_start", "message": {"usage": {"input_tokens": 50, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 2}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ],
    );
    assert_eq!(
        chunks,
        vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Checking."}), Value::Null),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
                Value::Null
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                Value::Null
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": ""}}]}),
                Value::Null
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
                Value::Null
            ),
            chunk(json!({}), json!("tool_calls")),
        ]
    );
    assert!(t.finished());
    assert_eq!(t.usage().prompt_tokens, 50);
    assert_eq!(t.usage().completion_tokens, 30);
}

#[test]
fn stream_error_event() {
    let mut t = StreamTranslator::new("chatcmpl-1", "claude", 0, true);
    let data =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    match t.on_event(Some("error"), &data.to_string()) {
        Err(TranslateError::BadUpstream(m)) => assert_eq!(m, "Overloaded"),
        other => panic!("expected BadUpstream, got {other:?}"),
    }
    assert!(!t.finished());
}

#[test]
fn stream_ping_unknown_and_bad_data() {
    let mut t = StreamTranslator::new("chatcmpl-1", "claude", 0, true);
    assert!(t.on_event(Some("ping"), "").unwrap().is_empty());
    assert!(t.on_event(None, r#"{"type":"ping"}"#).unwrap().is_empty());
    assert!(t
        .on_event(Some("future_event"), r#"{"type":"future_event"}"#)
        .unwrap()
        .is_empty());
    assert!(matches!(
        t.on_event(Some("content_block_delta"), "{oops"),
        Err(TranslateError::BadUpstream(_))
    ));
    // Input for a block that is no client tool call (a server tool's) has no chat chunk.
    let before = t.generated_bytes();
    assert!(t
        .on_event(
            None,
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{"}}"#
        )
        .unwrap()
        .is_empty());
    assert_eq!(t.generated_bytes(), before + 1);
}

#[test]
fn stream_event_name_fallback_and_delta_usage_update() {
    let mut t = StreamTranslator::new("chatcmpl-1", "claude", 0, false);
    // No "type" in the payload: the SSE event name decides.
    let out = t
        .on_event(
            Some("message_start"),
            r#"{"message":{"usage":{"input_tokens":3}}}"#,
        )
        .unwrap();
    assert_eq!(out.len(), 1);
    // Newer APIs repeat input counts in message_delta; those override.
    t.on_event(
        Some("message_delta"),
        r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"input_tokens":4,"output_tokens":9}}"#,
    )
    .unwrap();
    assert_eq!(t.usage().prompt_tokens, 4);
    assert_eq!(t.usage().completion_tokens, 9);
    assert!(t
        .on_event(None, r#"{"type":"message_stop"}"#)
        .unwrap()
        .is_empty());
    assert!(t.finished());
}

// ---- errors ----

#[test]
fn map_error_types() {
    let cases = [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "authentication_error", "authentication_error"),
        (403, "permission_error", "permission_error"),
        (404, "not_found_error", "not_found_error"),
        (429, "rate_limit_error", "rate_limit_error"),
        (529, "overloaded_error", "api_error"),
        (500, "api_error", "api_error"),
    ];
    for (status, anthropic, openai) in cases {
        let body = json!({"type": "error", "error": {"type": anthropic, "message": "boom"}});
        assert_eq!(
            map_error(status, body.to_string().as_bytes()),
            ("boom".to_owned(), openai)
        );
    }
}

#[test]
fn map_error_unparseable_body() {
    assert_eq!(
        map_error(502, b"<html>Bad Gateway</html>"),
        (
            "Anthropic returned HTTP 502: <html>Bad Gateway</html>".to_owned(),
            "api_error"
        )
    );
    assert_eq!(
        map_error(429, b""),
        ("Anthropic returned HTTP 429".to_owned(), "rate_limit_error")
    );
    let big = vec![b'x'; 2000];
    let (msg, kind) = map_error(500, &big);
    assert_eq!(kind, "api_error");
    assert_eq!(
        msg,
        format!("Anthropic returned HTTP 500: {}", "x".repeat(500))
    );
}
