//! Errors in Anthropic's envelope: `{"type":"error","error":{"type":…,"message":…}}`. Anthropic's
//! SDKs pick their exception class from the HTTP status; the type string names the same thing.

use serde_json::{json, Value};

use super::stream::sse;

fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        408 | 504 => "timeout_error",
        529 => "overloaded_error",
        s if (400..500).contains(&s) => "invalid_request_error",
        _ => "api_error",
    }
}

pub(crate) fn error_body(status: u16, message: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    })
}

/// An `error` event, for failures after a stream has begun (the status line is already sent).
pub(crate) fn stream_error_event(status: u16, message: &str) -> String {
    sse("error", &error_body(status, message).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_by_status() {
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (408, "timeout_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ] {
            assert_eq!(
                error_body(status, "nope"),
                json!({"type": "error", "error": {"type": kind, "message": "nope"}}),
                "status {status}"
            );
        }
    }

    #[test]
    fn stream_error_event_is_one_sse_event() {
        let event = stream_error_event(529, "Overloaded");
        let data = event
            .strip_prefix("event: error\ndata: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .unwrap();
        assert!(!data.contains('\n'));
        assert_eq!(
            serde_json::from_str::<Value>(data).unwrap(),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        );
    }
}
