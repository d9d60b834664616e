//! Gemini `generateContent` answer → OpenAI `chat.completion`.

use serde_json::{json, Map, Value};

use super::{candidate_index, inband_error, map_finish_reason, usage_json, GeminiUsage, Parts};
use crate::providers::translate::{bad_upstream, TranslateError, Usage};

/// The OpenAI message of a candidate.
fn message(parts: Parts) -> Value {
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert(
        "content".into(),
        if parts.has_text {
            json!(parts.text)
        } else {
            Value::Null
        },
    );
    // LiteLLM's field for thinking, which OpenAI's format lacks.
    if !parts.reasoning.is_empty() {
        message.insert("reasoning_content".into(), json!(parts.reasoning));
    }
    if !parts.calls.is_empty() {
        let calls = parts
            .calls
            .into_iter()
            .map(|(id, name, arguments)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
            })
            .collect();
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(message)
}

/// Gemini non-streaming answer → OpenAI `chat.completion` object, plus usage. `id` is the id to
/// put in the response (e.g. "chatcmpl-…"), `model` the name the client asked for, `created`
/// unix seconds.
pub(crate) fn from_gemini_response(
    v: &Value,
    id: &str,
    model: &str,
    created: i64,
) -> Result<(Value, Usage), TranslateError> {
    if let Some(msg) = inband_error(v) {
        return Err(bad_upstream(msg));
    }
    if !v.is_object() {
        return Err(bad_upstream("Gemini response is not a JSON object"));
    }
    let candidates = match v.get("candidates") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(c)) => c.as_slice(),
        Some(_) => return Err(bad_upstream("Gemini response 'candidates' is not an array")),
    };
    let counts = v
        .get("usageMetadata")
        .map(GeminiUsage::read)
        .unwrap_or_default();
    let usage = counts.to_usage();

    let mut choices = Vec::with_capacity(candidates.len().max(1));
    if candidates.is_empty() {
        // A blocked prompt gets no candidates at all, only the reason.
        if v.get("promptFeedback")
            .and_then(|f| f.get("blockReason"))
            .is_none()
        {
            return Err(bad_upstream("Gemini response has no candidates"));
        }
        choices.push(json!({
            "index": 0,
            "message": {"role": "assistant", "content": null},
            "finish_reason": "content_filter"
        }));
    }
    let mut calls = 0;
    for (position, candidate) in candidates.iter().enumerate() {
        let parts = Parts::read(candidate, id, calls)?;
        calls += parts.calls.len();
        let called_tools = !parts.calls.is_empty();
        let finish = candidate
            .get("finishReason")
            .and_then(Value::as_str)
            .unwrap_or("STOP");
        choices.push(json!({
            "index": candidate_index(candidate, position),
            "message": message(parts),
            "finish_reason": map_finish_reason(finish, called_tools),
        }));
    }

    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_json(&usage, counts.thoughts),
    });
    Ok((body, usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_answer_with_thoughts_and_cached_usage() {
        let resp = json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "Let me think about greetings.", "thought": true},
                    {"text": "Hello"},
                    {"text": " world", "thoughtSignature": "abc"}
                ]},
                "finishReason": "STOP",
                "index": 0,
                "safetyRatings": []
            }],
            "usageMetadata": {
                "promptTokenCount": 120, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
                "cachedContentTokenCount": 100, "totalTokenCount": 132
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "abc"
        });
        let (body, usage) =
            from_gemini_response(&resp, "chatcmpl-1", "gemini-alias", 1700000000).unwrap();
        assert_eq!(
            body,
            json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1700000000,
                "model": "gemini-alias",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Hello world",
                        "reasoning_content": "Let me think about greetings."
                    },
                    "finish_reason": "stop"
                }],
                "usage": {
                    "prompt_tokens": 120,
                    "completion_tokens": 12,
                    "total_tokens": 132,
                    "prompt_tokens_details": {"cached_tokens": 100},
                    "completion_tokens_details": {"reasoning_tokens": 7}
                }
            })
        );
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 120,
                completion_tokens: 12,
                cache_read_input_tokens: 100,
                cache_creation_input_tokens: 0
            }
        );
    }

    #[test]
    fn function_calls_become_tool_calls() {
        let resp = json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "now"}, "thoughtSignature": "c2ln"}
                ]},
                "finishReason": "STOP"
            }],
            "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 10}
        });
        let (body, usage) = from_gemini_response(&resp, "chatcmpl-xyz", "g", 1).unwrap();
        assert_eq!(
            body["choices"],
            json!([{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [
                        {"id": "call_xyz_0", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "call_xyz_1__thought__c2ln", "type": "function",
                         "function": {"name": "now", "arguments": "{}"}}
                    ]
                },
                "finish_reason": "tool_calls"
            }])
        );
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (7, 3));
    }

    #[test]
    fn several_candidates_become_several_choices() {
        let resp = json!({
            "candidates": [
                {"content": {"parts": [{"text": "A"}], "role": "model"}, "finishReason": "STOP"},
                {"content": {"parts": [{"text": "B"}, {"functionCall": {"name": "f", "args": {}}}], "role": "model"}, "finishReason": "STOP", "index": 1},
                {"content": {"parts": [{"text": "C"}], "role": "model"}, "finishReason": "MAX_TOKENS", "index": 2}
            ],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 9}
        });
        let (body, _) = from_gemini_response(&resp, "chatcmpl-r", "g", 1).unwrap();
        let choices = body["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 3);
        assert_eq!(choices[0]["index"], 0);
        assert_eq!(choices[0]["message"]["content"], "A");
        assert_eq!(choices[0]["finish_reason"], "stop");
        assert_eq!(choices[1]["index"], 1);
        assert_eq!(choices[1]["message"]["content"], "B");
        assert_eq!(choices[1]["message"]["tool_calls"][0]["id"], "call_r_0");
        assert_eq!(choices[1]["finish_reason"], "tool_calls");
        assert_eq!(choices[2]["finish_reason"], "length");
    }

    #[test]
    fn safety_stops() {
        let resp = json!({
            "candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}
            ]}],
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}
        });
        let (body, usage) = from_gemini_response(&resp, "i", "g", 1).unwrap();
        assert_eq!(
            body["choices"],
            json!([{"index": 0, "message": {"role": "assistant", "content": null}, "finish_reason": "content_filter"}])
        );
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (8, 0));

        // A blocked prompt has no candidates at all.
        let resp = json!({
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}
        });
        let (body, _) = from_gemini_response(&resp, "i", "g", 1).unwrap();
        assert_eq!(
            body["choices"],
            json!([{"index": 0, "message": {"role": "assistant", "content": null}, "finish_reason": "content_filter"}])
        );
    }

    #[test]
    fn unreadable_answers_are_bad_upstream() {
        for resp in [
            json!({}),
            json!([]),
            json!({"candidates": {}}),
            json!({"candidates": [{"content": {"parts": {}}}]}),
            json!({"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]}),
            json!({"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}),
        ] {
            assert!(
                matches!(
                    from_gemini_response(&resp, "i", "m", 0),
                    Err(TranslateError::BadUpstream(_))
                ),
                "{resp}"
            );
        }
    }
}
