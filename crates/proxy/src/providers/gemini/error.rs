//! Google API error bodies → the caller's OpenAI-style error.

use serde_json::Value;

/// The OpenAI error type for an HTTP status, when the body names nothing more precise.
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

/// Google's canonical error status (`{"error": {"status": ...}}`) in OpenAI's terms.
fn error_type_for_google_status(status: &str) -> Option<&'static str> {
    Some(match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => "invalid_request_error",
        "UNAUTHENTICATED" => "authentication_error",
        "PERMISSION_DENIED" => "permission_error",
        "NOT_FOUND" => "not_found_error",
        "RESOURCE_EXHAUSTED" => "rate_limit_error",
        "INTERNAL" | "UNAVAILABLE" | "DEADLINE_EXCEEDED" | "UNKNOWN" => "api_error",
        _ => return None,
    })
}

/// Map a Gemini error response (status + body) to (message, OpenAI error `type`).
pub(crate) fn map_error(status: u16, body: &[u8]) -> (String, &'static str) {
    map_google_error(status, body, "Gemini")
}

/// Map a Google API error response to (message, OpenAI error `type`); `service` names the API
/// when the body carries no message of its own.
pub(crate) fn map_google_error(status: u16, body: &[u8], service: &str) -> (String, &'static str) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    // The streaming method answers errors as a one-element array.
    let err = parsed.as_ref().and_then(|v| {
        v.get("error")
            .or_else(|| v.get(0).and_then(|e| e.get("error")))
    });
    let message = err.and_then(|e| e.get("message")).and_then(Value::as_str);
    // A wrong key is a 400 INVALID_ARGUMENT to Google; to OpenAI clients it is an auth failure.
    let bad_key = err
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .is_some_and(|d| {
            d.iter()
                .any(|x| x.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
        });
    let kind = if bad_key {
        "authentication_error"
    } else {
        err.and_then(|e| e.get("status"))
            .and_then(Value::as_str)
            .and_then(error_type_for_google_status)
            .unwrap_or_else(|| error_type_for_status(status))
    };

    match message {
        Some(m) => (m.to_owned(), kind),
        None => {
            // Bodies can be large HTML error pages; cap what reaches the client.
            let shown = &body[..body.len().min(500)];
            let text = String::from_utf8_lossy(shown);
            let text = text.trim();
            let msg = if text.is_empty() {
                format!("{service} returned HTTP {status}")
            } else {
                format!("{service} returned HTTP {status}: {text}")
            };
            (msg, kind)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn google_errors_mapped() {
        let cases = [
            (400, "INVALID_ARGUMENT", "invalid_request_error"),
            (400, "FAILED_PRECONDITION", "invalid_request_error"),
            (401, "UNAUTHENTICATED", "authentication_error"),
            (403, "PERMISSION_DENIED", "permission_error"),
            (404, "NOT_FOUND", "not_found_error"),
            (429, "RESOURCE_EXHAUSTED", "rate_limit_error"),
            (500, "INTERNAL", "api_error"),
            (503, "UNAVAILABLE", "api_error"),
            (504, "DEADLINE_EXCEEDED", "api_error"),
            // An unknown status falls back to the HTTP code.
            (429, "SOMETHING_NEW", "rate_limit_error"),
        ];
        for (code, status, openai) in cases {
            let body = json!({"error": {"code": code, "message": "boom", "status": status}});
            assert_eq!(
                map_error(code, body.to_string().as_bytes()),
                ("boom".to_owned(), openai),
                "{status}"
            );
        }
    }

    #[test]
    fn invalid_key_is_an_authentication_error() {
        let body = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT", "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}
        ]}});
        assert_eq!(
            map_error(400, body.to_string().as_bytes()),
            (
                "API key not valid. Please pass a valid API key.".to_owned(),
                "authentication_error"
            )
        );
    }

    #[test]
    fn array_wrapped_and_unreadable_bodies() {
        let body = json!([{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}]);
        assert_eq!(
            map_error(429, body.to_string().as_bytes()),
            ("Quota exceeded".to_owned(), "rate_limit_error")
        );
        assert_eq!(
            map_error(502, b"<html>Bad Gateway</html>"),
            (
                "Gemini returned HTTP 502: <html>Bad Gateway</html>".to_owned(),
                "api_error"
            )
        );
        assert_eq!(
            map_error(404, b""),
            ("Gemini returned HTTP 404".to_owned(), "not_found_error")
        );
        let (msg, kind) = map_error(500, &vec![b'x'; 2000]);
        assert_eq!(kind, "api_error");
        assert_eq!(
            msg,
            format!("Gemini returned HTTP 500: {}", "x".repeat(500))
        );
    }
}
