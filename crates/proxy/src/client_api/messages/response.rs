//! A chat completion as a Messages response, and the pieces the stream shares with it: the stop
//! reason and the usage counts.
//!
//! Usage: chat's `prompt_tokens` includes cached tokens, Anthropic's `input_tokens` does not
//! (it reports cache reads and writes beside it), so `input_tokens` is prompt tokens minus the
//! cache reads and writes the upstream reported. Chat reports cache writes only as a
//! non-standard `usage.cache_creation_input_tokens` (some gateways send it); without it they
//! count as ordinary input.
//!
//! Reasoning text (`reasoning_content`) is not returned: a Messages thinking block needs a
//! signature only Anthropic can make, and thinking is never requested through this API.

use serde_json::{json, Value};

use crate::providers::translate::{bad_upstream, TranslateError, Usage};

/// The Messages id for the gateway's `chatcmpl-…` request id: stable, so the answer and the
/// spend log name the same call.
pub(crate) fn message_id(chat_id: &str) -> String {
    if chat_id.starts_with("msg_") {
        return chat_id.to_owned();
    }
    let rest = chat_id.strip_prefix("chatcmpl-").unwrap_or(chat_id);
    format!("msg_{rest}")
}

/// OpenAI `chat.completion` → Messages response. `model` is the name the client asked for, `id`
/// the message id (see [`message_id`]): the upstream's own id is not used, since servers other
/// than OpenAI's may repeat theirs.
pub(crate) fn from_chat_response(
    chat: &Value,
    model: &str,
    id: &str,
) -> Result<Value, TranslateError> {
    let choice = chat
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| bad_upstream("the upstream's chat completion has no choices"))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| bad_upstream("the upstream's chat completion choice has no message"))?;

    let mut content = Vec::new();
    let mut text = message_text(message.get("content"))?;
    // A refusal is what the model said; Anthropic reports it as text with stop_reason refusal.
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
        text.push_str(refusal);
    }
    // Anthropic never sends an empty text block, and refuses one sent back to it.
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    if let Some(calls) = message.get("tool_calls").filter(|c| !c.is_null()) {
        let calls = calls
            .as_array()
            .ok_or_else(|| bad_upstream("the upstream's tool_calls is not a list"))?;
        for call in calls {
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_upstream("an upstream tool call has no id"))?;
            content.push(tool_use_block(id, call.get("function"))?);
        }
    }
    // The legacy single function call has no id of its own; one is made from the message's.
    if let Some(f) = message.get("function_call").filter(|f| !f.is_null()) {
        let call_id = format!("toolu_{}", id.trim_start_matches("msg_"));
        content.push(tool_use_block(&call_id, Some(f))?);
    }

    let has_tool_use = content.iter().any(|b| b["type"] == "tool_use");
    let (stop_reason, stop_sequence) = stop_reason(
        choice.get("finish_reason").and_then(Value::as_str),
        choice,
        has_tool_use,
    );
    let usage = chat.get("usage").map(parse_usage).unwrap_or_default();

    Ok(json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_json(&usage),
    }))
}

/// Message content as text: a string, null, or a list of text parts.
fn message_text(content: Option<&Value>) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect()),
        Some(_) => Err(bad_upstream(
            "the upstream's message content is neither text nor a list of parts",
        )),
    }
}

fn tool_use_block(id: &str, function: Option<&Value>) -> Result<Value, TranslateError> {
    let function = function.ok_or_else(|| bad_upstream("an upstream tool call has no function"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_upstream("an upstream tool call has no function name"))?;
    let input = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| {
            bad_upstream(format!(
                "the upstream's arguments for tool call '{id}' are not valid JSON: {e}"
            ))
        })?,
        // A few servers send the arguments as an object rather than its JSON text.
        Some(v) => v.clone(),
    };
    if !input.is_object() {
        return Err(bad_upstream(format!(
            "the upstream's arguments for tool call '{id}' are not a JSON object"
        )));
    }
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// Chat finish_reason → (stop_reason, stop_sequence). Chat does not say which stop sequence
/// matched; servers that do (a string `stop_reason` beside `finish_reason`, as vLLM sends)
/// get `stop_sequence`. A turn that called tools ends in `tool_use` whatever the upstream said,
/// because clients run tools on that signal and some servers answer "stop" there.
pub(super) fn stop_reason(
    finish_reason: Option<&str>,
    choice: &Value,
    has_tool_use: bool,
) -> (&'static str, Value) {
    let reason = match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        Some("stop") => {
            if let Some(seq) = choice.get("stop_reason").and_then(Value::as_str) {
                return ("stop_sequence", json!(seq));
            }
            "end_turn"
        }
        _ => "end_turn",
    };
    if reason == "end_turn" && has_tool_use {
        return ("tool_use", Value::Null);
    }
    (reason, Value::Null)
}

/// Reads a chat `usage` object; absent counts are zero.
pub(super) fn parse_usage(u: &Value) -> Usage {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let cached = u
        .get("prompt_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .or_else(|| u.get("cache_read_input_tokens"));
    Usage {
        prompt_tokens: n(u.get("prompt_tokens")),
        completion_tokens: n(u.get("completion_tokens")),
        cache_read_input_tokens: n(cached),
        cache_creation_input_tokens: n(u.get("cache_creation_input_tokens")),
    }
}

/// Anthropic's usage object for chat counts (see the module comment for input_tokens).
pub(super) fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": input_tokens(u),
        "output_tokens": u.completion_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
    })
}

pub(super) fn input_tokens(u: &Usage) -> u64 {
    u.prompt_tokens
        .saturating_sub(u.cache_read_input_tokens)
        .saturating_sub(u.cache_creation_input_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_answer() {
        let chat = json!({
            "id": "chatcmpl-abc123",
            "object": "chat.completion",
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127,
                      "prompt_tokens_details": {"cached_tokens": 100}}
        });
        assert_eq!(
            from_chat_response(&chat, "claude-sonnet", "msg_abc123").unwrap(),
            json!({
                "id": "msg_abc123",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet",
                "content": [{"type": "text", "text": "Hello!"}],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": {"input_tokens": 20, "output_tokens": 7,
                          "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0}
            })
        );
    }

    #[test]
    fn text_and_tool_calls() {
        let chat = json!({
            "id": "chatcmpl-1",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]
            }}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 20, "cache_creation_input_tokens": 10}
        });
        let out = from_chat_response(&chat, "m", "msg_1").unwrap();
        assert_eq!(
            out["content"],
            json!([
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}}
            ])
        );
        assert_eq!(out["stop_reason"], "tool_use");
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 40, "output_tokens": 20, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 10})
        );
    }

    #[test]
    fn stop_reasons() {
        let answer = |finish: Value, extra: Value| {
            let mut choice = json!({"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": finish});
            if let (Some(c), Value::Object(e)) = (choice.as_object_mut(), extra) {
                c.extend(e);
            }
            let out =
                from_chat_response(&json!({"id": "i", "choices": [choice]}), "m", "msg_1").unwrap();
            (out["stop_reason"].clone(), out["stop_sequence"].clone())
        };
        assert_eq!(
            answer(json!("stop"), json!({})),
            (json!("end_turn"), Value::Null)
        );
        assert_eq!(
            answer(json!("length"), json!({})),
            (json!("max_tokens"), Value::Null)
        );
        assert_eq!(
            answer(json!("tool_calls"), json!({})),
            (json!("tool_use"), Value::Null)
        );
        assert_eq!(
            answer(json!("function_call"), json!({})),
            (json!("tool_use"), Value::Null)
        );
        assert_eq!(
            answer(json!("content_filter"), json!({})),
            (json!("refusal"), Value::Null)
        );
        assert_eq!(
            answer(Value::Null, json!({})),
            (json!("end_turn"), Value::Null)
        );
        // A server that names the stop sequence it hit.
        assert_eq!(
            answer(json!("stop"), json!({"stop_reason": "END"})),
            (json!("stop_sequence"), json!("END"))
        );
        // A token id there is not a sequence.
        assert_eq!(
            answer(json!("stop"), json!({"stop_reason": 128009})),
            (json!("end_turn"), Value::Null)
        );
    }

    #[test]
    fn tool_calls_ending_in_stop_are_tool_use_and_empty_text_is_no_block() {
        let chat = json!({"id": "chatcmpl-9", "choices": [{"finish_reason": "stop", "message": {
            "role": "assistant", "content": "",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"k": 1}}}]
        }}]});
        let out = from_chat_response(&chat, "m", "msg_1").unwrap();
        assert_eq!(
            out["content"],
            json!([{"type": "tool_use", "id": "c", "name": "f", "input": {"k": 1}}])
        );
        assert_eq!(out["stop_reason"], "tool_use");
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
        );
    }

    #[test]
    fn refusal_and_part_lists_are_text() {
        let chat = json!({"id": "x", "choices": [{"finish_reason": "content_filter", "message": {
            "role": "assistant", "content": null, "refusal": "I can't help with that."
        }}]});
        let out = from_chat_response(&chat, "m", "msg_1").unwrap();
        assert_eq!(
            out["content"],
            json!([{"type": "text", "text": "I can't help with that."}])
        );
        assert_eq!(out["stop_reason"], "refusal");
        let chat = json!({"id": "x", "choices": [{"finish_reason": "stop", "message": {
            "role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
        }}]});
        assert_eq!(
            from_chat_response(&chat, "m", "msg_1").unwrap()["content"],
            json!([{"type": "text", "text": "ab"}])
        );
    }

    #[test]
    fn unreadable_answers_are_bad_upstream() {
        let bad = |chat: Value| {
            assert!(
                matches!(
                    from_chat_response(&chat, "m", "msg_1"),
                    Err(TranslateError::BadUpstream(_))
                ),
                "{chat} was accepted"
            );
        };
        bad(json!({"id": "x", "choices": []}));
        bad(json!({"id": "x"}));
        bad(json!({"id": "x", "choices": [{"finish_reason": "stop"}]}));
        bad(json!({"id": "x", "choices": [{"message": {"content": 5}}]}));
        bad(json!({"id": "x", "choices": [{"message": {"tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "{not json"}}
        ]}}]}));
        bad(json!({"id": "x", "choices": [{"message": {"tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "[1,2]"}}
        ]}}]}));
        bad(json!({"id": "x", "choices": [{"message": {"tool_calls": [
            {"function": {"name": "f", "arguments": "{}"}}
        ]}}]}));
    }

    #[test]
    fn legacy_function_call_is_a_tool_use() {
        let chat = json!({"id": "x", "choices": [{"finish_reason": "function_call", "message": {
            "role": "assistant", "content": null,
            "function_call": {"name": "lookup", "arguments": "{\"q\":\"rust\"}"}
        }}]});
        let out = from_chat_response(&chat, "m", "msg_42").unwrap();
        assert_eq!(
            out["content"],
            json!([{"type": "tool_use", "id": "toolu_42", "name": "lookup", "input": {"q": "rust"}}])
        );
        assert_eq!(out["stop_reason"], "tool_use");
        assert_eq!(out["id"], "msg_42");
    }

    #[test]
    fn message_ids() {
        assert_eq!(message_id("chatcmpl-AbC"), "msg_AbC");
        assert_eq!(message_id("msg_01XYZ"), "msg_01XYZ");
        assert_eq!(message_id("gen-123"), "msg_gen-123");
    }
}
