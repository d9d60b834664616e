//! Converse answer → OpenAI `chat.completion`.

use serde_json::{json, Value};

use super::{map_stop_reason, read_usage, usage_json, JSON_TOOL_NAME};
use crate::providers::translate::{bad_upstream, TranslateError, Usage};

/// What one Converse answer says, in OpenAI's terms.
pub(super) struct Answer {
    pub body: Value,
    pub usage: Usage,
    /// Bedrock sent a usage object.
    pub reported: bool,
    /// Bytes of generated text and tool arguments: what the call is billed by without usage.
    pub generated_bytes: usize,
}

pub(super) fn from_converse_response(
    v: &Value,
    id: &str,
    model: &str,
    created: i64,
) -> Result<Answer, TranslateError> {
    let content = v
        .get("output")
        .and_then(|o| o.get("message"))
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .ok_or_else(|| bad_upstream("Bedrock answer has no output.message.content array"))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    let mut json_answer: Option<String> = None;
    for block in content {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(use_) = block.get("toolUse") {
            let name = use_
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_upstream("Bedrock toolUse has no name"))?;
            let input = use_.get("input").cloned().unwrap_or_else(|| json!({}));
            let arguments = input.to_string();
            if name == JSON_TOOL_NAME {
                // The answer to a JSON response_format: it is the message's content.
                json_answer.get_or_insert(arguments);
                continue;
            }
            let call_id = use_
                .get("toolUseId")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_upstream("Bedrock toolUse has no toolUseId"))?;
            calls.push(json!({
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments}
            }));
        } else if let Some(r) = block
            .get("reasoningContent")
            .and_then(|r| r.get("reasoningText"))
            .and_then(|r| r.get("text"))
            .and_then(Value::as_str)
        {
            reasoning.push_str(r);
        }
        // Citations, guard content and the like have no OpenAI chat equivalent.
    }
    if let Some(j) = json_answer {
        text.push_str(&j);
    }
    let generated_bytes = text.len()
        + reasoning.len()
        + calls
            .iter()
            .filter_map(|c| c["function"]["arguments"].as_str())
            .map(str::len)
            .sum::<usize>();
    let stop = v
        .get("stopReason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let finish = match map_stop_reason(stop) {
        // A forced JSON tool is an answer, not a call the client must make.
        "tool_calls" if calls.is_empty() => "stop",
        other => other,
    };
    // OpenAI's tool-call answers carry null content rather than an empty string.
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let usage_obj = v.get("usage").filter(|u| u.is_object());
    let usage = usage_obj.map(read_usage).unwrap_or_default();
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage_json(&usage),
    });
    Ok(Answer {
        body,
        usage,
        reported: usage_obj.is_some(),
        generated_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(v: Value) -> Answer {
        from_converse_response(&v, "chatcmpl-1", "claude", 1700000000).unwrap()
    }

    #[test]
    fn text_answer_with_usage() {
        let a = answer(json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "Hello"}, {"text": " there"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 6, "totalTokens": 18},
            "metrics": {"latencyMs": 100}
        }));
        assert_eq!(
            a.body,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "claude",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18, "prompt_tokens_details": {"cached_tokens": 0}}
            })
        );
        assert!(a.reported);
        assert_eq!(a.generated_bytes, 11);
        assert_eq!((a.usage.prompt_tokens, a.usage.completion_tokens), (12, 6));
    }

    #[test]
    fn tool_uses_become_tool_calls() {
        let a = answer(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "Need weather.", "signature": "sig"}}},
                {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "tooluse_b", "name": "now", "input": {}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 30, "outputTokens": 20}
        }));
        let choice = &a.body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        assert_eq!(choice["message"]["reasoning_content"], "Need weather.");
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([
                {"id": "tooluse_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "tooluse_b", "type": "function", "function": {"name": "now", "arguments": "{}"}}
            ])
        );
    }

    #[test]
    fn json_tool_answer_is_content() {
        let a = answer(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "t", "name": "json_tool_call", "input": {"name": "Paris"}}}
            ]}},
            "stopReason": "tool_use"
        }));
        let choice = &a.body["choices"][0];
        assert_eq!(choice["message"]["content"], "{\"name\":\"Paris\"}");
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        assert!(!a.reported);
        assert_eq!(a.generated_bytes, 16);
    }

    #[test]
    fn unreadable_answers() {
        for bad in [
            json!({}),
            json!({"output": {"message": {"content": "x"}}}),
            json!({"output": {"message": {"content": [{"toolUse": {"toolUseId": "t"}}]}}}),
        ] {
            assert!(matches!(
                from_converse_response(&bad, "i", "m", 0),
                Err(TranslateError::BadUpstream(_))
            ));
        }
    }
}
