//! Anthropic Messages response → OpenAI chat completion.

use serde_json::{json, Map, Value};

use crate::providers::translate::{bad_upstream, TranslateError, Usage};

pub(super) fn map_stop_reason(reason: Option<&str>) -> Value {
    match reason {
        None => Value::Null,
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        // end_turn, stop_sequence, and anything newer: the model stopped on its own.
        Some(_) => json!("stop"),
    }
}

/// Overwrites the counts present in an Anthropic usage object, leaving absent ones untouched,
/// because message_delta repeats only some of them.
pub(super) fn apply_usage(
    usage: &Value,
    input: &mut u64,
    output: &mut u64,
    cache_read: &mut u64,
    cache_creation: &mut u64,
) {
    let set = |key: &str, slot: &mut u64| {
        if let Some(n) = usage.get(key).and_then(Value::as_u64) {
            *slot = n;
        }
    };
    set("input_tokens", input);
    set("output_tokens", output);
    set("cache_read_input_tokens", cache_read);
    set("cache_creation_input_tokens", cache_creation);
}

/// The counts of an Anthropic usage object, with the prompt counted as OpenAI does (cache reads
/// and writes included).
pub fn usage_of(usage: &Value) -> Usage {
    let (mut input, mut output, mut cache_read, mut cache_creation) = (0, 0, 0, 0);
    apply_usage(
        usage,
        &mut input,
        &mut output,
        &mut cache_read,
        &mut cache_creation,
    );
    Usage {
        prompt_tokens: input + cache_read + cache_creation,
        completion_tokens: output,
        cache_read_input_tokens: cache_read,
        cache_creation_input_tokens: cache_creation,
    }
}

pub(super) fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens}
    })
}

/// Anthropic non-streaming Messages response -> OpenAI `chat.completion` object, plus usage.
/// `id` is the id to put in the response (e.g. "chatcmpl-…"), `model` the name the client asked for, `created` unix seconds.
pub fn from_anthropic_response(
    resp: &Value,
    id: &str,
    model: &str,
    created: i64,
) -> Result<(Value, Usage), TranslateError> {
    let blocks = resp
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_upstream("Anthropic response has no 'content' array"))?;

    let mut text = String::new();
    let mut has_text = false;
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                has_text = true;
                text.push_str(
                    block
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
            }
            Some("tool_use") => {
                let id = block
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_upstream("Anthropic tool_use block has no id"))?;
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_upstream("Anthropic tool_use block has no name"))?;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()}
                }));
            }
            // Thinking and other block kinds have no OpenAI chat equivalent.
            _ => {}
        }
    }

    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert(
        "content".into(),
        if has_text { json!(text) } else { Value::Null },
    );
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }

    let usage = resp.get("usage").map(usage_of).unwrap_or_default();

    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": Value::Object(message),
            "finish_reason": map_stop_reason(resp.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": usage_json(&usage),
    });
    Ok((body, usage))
}
