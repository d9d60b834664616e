//! Errors in the Responses API's shapes.
//!
//! Before a stream starts, the Responses API answers errors with OpenAI's usual HTTP envelope
//! `{"error": {"message", "type", "param", "code"}}`, which is what `ApiError` already renders,
//! so the route returns `ApiError`s unchanged. Once events have been sent, a failure can only be
//! told in band, as the `error` event built here.

use serde_json::json;

/// One SSE `error` event, as the Responses stream reports a failure after it began.
pub(crate) fn stream_error_event(code: &str, message: &str, sequence_number: u64) -> String {
    let data = json!({
        "type": "error",
        "code": code,
        "message": message,
        "param": null,
        "sequence_number": sequence_number,
    });
    format!("event: error\ndata: {data}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn error_event_has_the_sdk_fields() {
        let ev = stream_error_event("server_error", "upstream \"died\"", 7);
        let (head, data) = ev.split_once('\n').unwrap();
        assert_eq!(head, "event: error");
        assert!(ev.ends_with("\n\n"));
        let v: Value =
            serde_json::from_str(data.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(
            v,
            json!({"type": "error", "code": "server_error", "message": "upstream \"died\"",
                   "param": null, "sequence_number": 7})
        );
    }
}
