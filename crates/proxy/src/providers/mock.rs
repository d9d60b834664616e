//! Deployments with `mock_response`: answered by the gateway itself, offline, in exactly the
//! shapes a real upstream would use, so clients and spend tracking behave as with a real model.

use serde_json::json;
use tollgate_domain::usage::estimate_tokens;
use tollgate_domain::Usage;

use super::CallType;

pub fn usage(prompt_bytes: usize, text: &str) -> Usage {
    Usage {
        prompt_tokens: estimate_tokens(prompt_bytes),
        completion_tokens: estimate_tokens(text.len()),
        estimated: true,
        ..Usage::default()
    }
}

fn usage_json(u: &Usage) -> serde_json::Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens(),
    })
}

/// A complete non-streaming answer.
pub fn response(
    call: CallType,
    id: &str,
    model: &str,
    created: i64,
    text: &str,
    u: &Usage,
) -> Vec<u8> {
    let v = match call {
        CallType::Chat => json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }],
            "usage": usage_json(u),
        }),
        CallType::Completion => json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage_json(u),
        }),
        CallType::Embedding => json!({
            "object": "list",
            "model": model,
            "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]}],
            "usage": {"prompt_tokens": u.prompt_tokens, "total_tokens": u.prompt_tokens},
        }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The SSE events of a streamed chat answer (without the final `[DONE]`).
pub fn stream_events(
    id: &str,
    model: &str,
    created: i64,
    text: &str,
    u: &Usage,
    include_usage: bool,
) -> Vec<String> {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
        .to_string()
    };
    let mut out = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    // Word-sized pieces, like a model's tokens.
    let mut piece = String::new();
    for ch in text.chars() {
        piece.push(ch);
        if ch == ' ' && piece.len() >= 4 {
            out.push(chunk(json!({"content": piece}), None));
            piece = String::new();
        }
    }
    if !piece.is_empty() {
        out.push(chunk(json!({"content": piece}), None));
    }
    out.push(chunk(json!({}), Some("stop")));
    if include_usage {
        out.push(
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage_json(u),
            })
            .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_reassembles_to_the_text() {
        let u = usage(40, "Hello from the mock model");
        let events = stream_events("c1", "m", 1, "Hello from the mock model", &u, true);
        let mut text = String::new();
        for e in &events {
            let v: serde_json::Value = serde_json::from_str(e).unwrap();
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                text.push_str(c);
            }
        }
        assert_eq!(text, "Hello from the mock model");
        let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(last["usage"]["completion_tokens"], 7);
    }
}
