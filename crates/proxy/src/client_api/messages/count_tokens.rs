//! `POST /v1/messages/count_tokens`, estimated: the gateway has no tokenizer for the models
//! behind it, so the count is about one token per four bytes of text (system, messages, tool
//! calls and results, tool definitions), a few tokens per message for its framing, and a fixed
//! count per image or document, which is what a full-size image costs on Anthropic's models.
//! The request is validated exactly as a Messages request is, except that `max_tokens` is not
//! required.

use serde_json::{Map, Value};

use super::request::{translate, Purpose};
use crate::providers::translate::TranslateError;

const BYTES_PER_TOKEN: u64 = 4;
const TOKENS_PER_MESSAGE: u64 = 3;
const TOKENS_PER_ATTACHMENT: u64 = 1600;

pub(crate) fn count_tokens(req: &Map<String, Value>) -> Result<u64, TranslateError> {
    let chat = translate(req, Purpose::CountTokens)?;
    let mut bytes = 0usize;
    let mut fixed = 0u64;
    let messages = chat.get("messages").and_then(Value::as_array);
    for msg in messages.into_iter().flatten() {
        fixed += TOKENS_PER_MESSAGE;
        match msg.get("content") {
            Some(Value::String(s)) => bytes += s.len(),
            Some(Value::Array(parts)) => {
                for part in parts {
                    match part.get("text").and_then(Value::as_str) {
                        Some(t) => bytes += t.len(),
                        None => fixed += TOKENS_PER_ATTACHMENT,
                    }
                }
            }
            _ => {}
        }
        let calls = msg.get("tool_calls").and_then(Value::as_array);
        for function in calls
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("function"))
        {
            for key in ["name", "arguments"] {
                bytes += function
                    .get(key)
                    .and_then(Value::as_str)
                    .map_or(0, str::len);
            }
        }
    }
    let tools = chat.get("tools").and_then(Value::as_array);
    for function in tools
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("function"))
    {
        // The definition's JSON text, schema included, is what the model reads.
        bytes += function.to_string().len();
    }
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    Ok((bytes.div_ceil(BYTES_PER_TOKEN) + fixed).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn count(v: Value) -> Result<u64, TranslateError> {
        match v {
            Value::Object(m) => count_tokens(&m),
            _ => panic!("test request must be an object"),
        }
    }

    #[test]
    fn estimates_from_text_bytes() {
        // 16 bytes of user text: 4 tokens, plus one message's framing.
        assert_eq!(
            count(
                json!({"model": "m", "messages": [{"role": "user", "content": "abcdefghijklmnop"}]})
            )
            .unwrap(),
            4 + TOKENS_PER_MESSAGE
        );
        // System (8 bytes) + user (1 byte) + assistant tool call ("f" + "{\"a\":1}" = 8 bytes) + tool
        // result (4 bytes) = 21 bytes → 6 tokens; four messages.
        let n = count(json!({
            "model": "m",
            "system": "12345678",
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "done"}]}
            ]
        }))
        .unwrap();
        assert_eq!(n, 6 + 4 * TOKENS_PER_MESSAGE);
    }

    #[test]
    fn tools_and_images_add_to_the_count() {
        let plain = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let base = count(plain.clone()).unwrap();
        let mut with_tool = plain.clone();
        with_tool["tools"] = json!([{"name": "get_weather", "description": "Current weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
        assert!(count(with_tool).unwrap() > base + 20);
        let with_image = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "hi"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
        ]}]});
        assert_eq!(count(with_image).unwrap(), base + TOKENS_PER_ATTACHMENT);
    }

    #[test]
    fn validates_like_a_messages_request_without_max_tokens() {
        assert!(matches!(
            count(json!({"model": "m", "messages": []})),
            Err(TranslateError::BadRequest(_))
        ));
        assert!(matches!(
            count(
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                         "tools": [{"type": "web_search_20250305", "name": "web_search"}]})
            ),
            Err(TranslateError::BadRequest(_))
        ));
        assert!(count(
            json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]})
        )
        .is_ok());
    }
}
