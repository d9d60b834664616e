//! Anthropic error bodies → the caller's error message and OpenAI error type.

use serde_json::Value;

fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 | 413 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

/// Map an Anthropic error response (status + body) to (message, OpenAI error `type`).
pub fn map_error(status: u16, body: &[u8]) -> (String, &'static str) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let message = err.and_then(|e| e.get("message")).and_then(Value::as_str);
    let kind = err.and_then(|e| e.get("type")).and_then(Value::as_str);

    let openai_type = match kind {
        Some("invalid_request_error") | Some("request_too_large") => "invalid_request_error",
        Some("authentication_error") => "authentication_error",
        Some("permission_error") | Some("billing_error") => "permission_error",
        Some("not_found_error") => "not_found_error",
        Some("rate_limit_error") => "rate_limit_error",
        Some("overloaded_error") | Some("api_error") | Some("timeout_error") => "api_error",
        _ => error_type_for_status(status),
    };

    match message {
        Some(m) => (m.to_owned(), openai_type),
        None => {
            // Bodies can be large HTML error pages; cap what reaches the client.
            let shown = &body[..body.len().min(500)];
            let text = String::from_utf8_lossy(shown);
            let text = text.trim();
            let msg = if text.is_empty() {
                format!("Anthropic returned HTTP {status}")
            } else {
                format!("Anthropic returned HTTP {status}: {text}")
            };
            (msg, openai_type)
        }
    }
}
