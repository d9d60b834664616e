//! A `chat.completion` → the Response object a non-streaming `POST /v1/responses` answers.

use serde_json::{json, Value};

use super::object::{
    item_id, response_id_for, response_object, usage_from_chat, Parts, RequestEcho, Status,
};
use crate::providers::translate::{bad_upstream, TranslateError};

/// Translates a chat completion to a Response. `model` is the name the caller asked for,
/// `created_at` unix seconds. The message (if the model said anything) comes first, then one
/// `function_call` item per tool call, as chat keeps no finer order.
pub(crate) fn from_chat_response(
    chat: &Value,
    model: &str,
    created_at: i64,
    echo: &RequestEcho,
) -> Result<Value, TranslateError> {
    let id = response_id_for(chat.get("id").and_then(Value::as_str).unwrap_or_default());
    let choice = chat
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| bad_upstream("the chat completion has no choices"))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| bad_upstream("the chat completion's choice has no message"))?;
    let status = Status::from_finish_reason(choice.get("finish_reason").and_then(Value::as_str));

    let mut output = Vec::new();
    let mut parts = Vec::new();
    let text = content_text(message.get("content"))?;
    if !text.is_empty() {
        parts.push(json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []}));
    }
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
        if !refusal.is_empty() {
            parts.push(json!({"type": "refusal", "refusal": refusal}));
        }
    }
    if !parts.is_empty() {
        output.push(json!({
            "type": "message",
            "id": item_id(&id, "msg", output.len()),
            "status": "completed",
            "role": "assistant",
            "content": parts,
        }));
    }
    if let Some(calls) = message.get("tool_calls").filter(|v| !v.is_null()) {
        let calls = calls
            .as_array()
            .ok_or_else(|| bad_upstream("the chat message's tool_calls is not an array"))?;
        for call in calls {
            let item = function_call_item(call, &id, output.len())?;
            output.push(item);
        }
    }
    // Only the item the model was writing when it was cut off is unfinished.
    if let Some(last) = output.last_mut() {
        last["status"] = json!(status.item_status());
    }

    let usage = chat
        .get("usage")
        .filter(|u| u.is_object())
        .map(usage_from_chat)
        .unwrap_or(Value::Null);
    Ok(response_object(
        Parts {
            id: &id,
            model,
            created_at,
            status,
            output,
            usage,
            error: Value::Null,
        },
        echo,
    ))
}

/// Chat content is a string or null; a few servers answer text parts instead.
fn content_text(content: Option<&Value>) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect()),
        Some(_) => Err(bad_upstream(
            "the chat message's content is neither text nor null",
        )),
    }
}

fn function_call_item(
    call: &Value,
    response_id: &str,
    output_index: usize,
) -> Result<Value, TranslateError> {
    let function = call
        .get("function")
        .ok_or_else(|| bad_upstream("a chat tool call has no function"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_upstream("a chat tool call has no function name"))?;
    let arguments = match function.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => "{}".to_owned(),
        // Some servers send the arguments as an object rather than its JSON text.
        Some(other) => other.to_string(),
    };
    let item_id = item_id(response_id, "fc", output_index);
    let call_id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("call_{item_id}"), str::to_owned);
    Ok(json!({
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn echo(req: Value) -> RequestEcho {
        match req {
            Value::Object(m) => RequestEcho::from_request(&m),
            _ => panic!("not an object"),
        }
    }

    fn default_echo() -> RequestEcho {
        RequestEcho::from_request(&Map::new())
    }

    #[test]
    fn text_answer_becomes_a_completed_message() {
        let chat = json!({
            "id": "chatcmpl-42", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
                      "prompt_tokens_details": {"cached_tokens": 2}}
        });
        let resp = from_chat_response(&chat, "gpt-4o", 1700, &default_echo()).unwrap();
        assert_eq!(
            resp,
            json!({
                "id": "resp_42", "object": "response", "created_at": 1700, "status": "completed",
                "error": null, "incomplete_details": null, "model": "gpt-4o",
                "output": [{
                    "type": "message", "id": "msg_42_0", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}]
                }],
                "usage": {
                    "input_tokens": 12,
                    "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
                    "output_tokens": 3,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": 15
                },
                "background": false, "instructions": null, "max_output_tokens": null,
                "metadata": {}, "parallel_tool_calls": true, "previous_response_id": null,
                "reasoning": {"effort": null, "summary": null}, "store": false,
                "temperature": null, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
                "tools": [], "top_p": null, "truncation": "disabled", "user": null
            })
        );
    }

    #[test]
    fn tool_calls_become_function_call_items_after_the_message() {
        let tools =
            json!([{"type": "function", "name": "weather", "parameters": {}, "strict": false}]);
        let chat = json!({
            "id": "chatcmpl-7",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me check.",
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": {"city": "Rome"}}}
                ]
            }}]
        });
        let e =
            echo(json!({"tools": tools, "tool_choice": "required", "parallel_tool_calls": true}));
        let resp = from_chat_response(&chat, "m", 1, &e).unwrap();
        assert_eq!(resp["status"], json!("completed"));
        assert_eq!(resp["usage"], Value::Null);
        assert_eq!(resp["tools"], tools);
        assert_eq!(resp["tool_choice"], json!("required"));
        assert_eq!(
            resp["output"],
            json!([
                {"type": "message", "id": "msg_7_0", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Let me check.", "annotations": [], "logprobs": []}]},
                {"type": "function_call", "id": "fc_7_1", "call_id": "call_a", "name": "weather",
                 "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
                {"type": "function_call", "id": "fc_7_2", "call_id": "call_b", "name": "weather",
                 "arguments": "{\"city\":\"Rome\"}", "status": "completed"}
            ])
        );
    }

    #[test]
    fn tool_calls_without_text_have_no_message_item() {
        let chat = json!({"id": "chatcmpl-8", "choices": [{"finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_z", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
        }}]});
        let resp = from_chat_response(&chat, "m", 1, &default_echo()).unwrap();
        let output = resp["output"].as_array().unwrap();
        assert_eq!(output.len(), 1);
        assert_eq!(output[0]["type"], json!("function_call"));
        assert_eq!(output[0]["id"], json!("fc_8_0"));
    }

    #[test]
    fn length_finish_is_incomplete_at_max_output_tokens() {
        let chat = json!({"id": "chatcmpl-9", "choices": [{"finish_reason": "length",
            "message": {"role": "assistant", "content": "Once upon a"}}]});
        let resp = from_chat_response(&chat, "m", 1, &default_echo()).unwrap();
        assert_eq!(resp["status"], json!("incomplete"));
        assert_eq!(
            resp["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(resp["output"][0]["status"], json!("incomplete"));
    }

    #[test]
    fn content_filter_is_incomplete_and_refusals_are_kept() {
        let chat = json!({"id": "chatcmpl-10", "choices": [{"finish_reason": "content_filter",
            "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]});
        let resp = from_chat_response(&chat, "m", 1, &default_echo()).unwrap();
        assert_eq!(resp["status"], json!("incomplete"));
        assert_eq!(
            resp["incomplete_details"],
            json!({"reason": "content_filter"})
        );
        assert_eq!(
            resp["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "I can't help with that."}])
        );
    }

    #[test]
    fn empty_answer_has_no_output_items() {
        let chat = json!({"id": "chatcmpl-11", "choices": [{"finish_reason": "stop",
            "message": {"role": "assistant", "content": ""}}]});
        let resp = from_chat_response(&chat, "m", 1, &default_echo()).unwrap();
        assert_eq!(resp["output"], json!([]));
        assert_eq!(resp["status"], json!("completed"));
    }

    #[test]
    fn unreadable_answers_are_bad_upstream() {
        for chat in [
            json!({"id": "x"}),
            json!({"id": "x", "choices": []}),
            json!({"id": "x", "choices": [{"finish_reason": "stop"}]}),
            json!({"id": "x", "choices": [{"message": {"content": 5}}]}),
            json!({"id": "x", "choices": [{"message": {"tool_calls": [{"id": "c"}]}}]}),
        ] {
            match from_chat_response(&chat, "m", 1, &default_echo()) {
                Err(TranslateError::BadUpstream(_)) => {}
                other => panic!("expected BadUpstream for {chat}, got {other:?}"),
            }
        }
    }
}
