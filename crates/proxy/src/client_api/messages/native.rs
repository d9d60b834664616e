//! A Messages call served by an Anthropic deployment: the caller's request goes as it is, and
//! the answer comes back as it is; only its usage is read here.

use serde_json::{Map, Value};

use super::error::stream_error_event;
use crate::error::ApiError;
use crate::providers::anthropic::{self, StreamTranslator};
use crate::providers::native::StreamMeter;
use crate::providers::translate::{TranslateError, Usage};
use crate::providers::AnswerContext;

pub(super) fn usage(answer: &Value) -> Option<Usage> {
    answer.get("usage").map(anthropic::usage_of)
}

/// Anthropic accepts only `user_id` in `metadata`; gateway callers also put tags there.
pub(super) fn metadata(metadata: &Value) -> Option<Value> {
    let user = metadata.get("user_id")?;
    let mut kept = Map::new();
    kept.insert("user_id".into(), user.clone());
    Some(Value::Object(kept))
}

/// Reads the stream with the Anthropic translator (whose chat chunks are not used): it already
/// knows where Anthropic puts usage, generated text and the end.
pub(super) struct Meter(StreamTranslator);

impl Meter {
    pub(super) fn new(ctx: &AnswerContext<'_>) -> Self {
        Meter(StreamTranslator::new(ctx.id, ctx.model, ctx.created, false))
    }
}

impl StreamMeter for Meter {
    fn on_event(&mut self, name: Option<&str>, data: &str) -> Result<(), TranslateError> {
        self.0.on_event(name, data).map(drop)
    }

    fn usage(&self) -> Usage {
        self.0.usage()
    }

    fn generated_bytes(&self) -> usize {
        self.0.generated_bytes()
    }

    fn finished(&self) -> bool {
        self.0.finished()
    }

    fn error_event(&mut self, error: &ApiError) -> String {
        stream_error_event(error.status.as_u16(), &error.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_counts_cache_reads_and_writes_as_prompt() {
        let u = usage(&json!({"usage": {"input_tokens": 10, "output_tokens": 7,
            "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}}))
        .unwrap();
        assert_eq!(u.prompt_tokens, 130);
        assert_eq!(u.completion_tokens, 7);
        assert_eq!(u.cache_read_input_tokens, 100);
        assert_eq!(u.cache_creation_input_tokens, 20);
        assert!(usage(&json!({"content": []})).is_none());
    }

    #[test]
    fn metadata_keeps_only_the_user_id() {
        assert_eq!(
            metadata(&json!({"user_id": "u1", "tags": ["a"]})),
            Some(json!({"user_id": "u1"}))
        );
        assert_eq!(metadata(&json!({"tags": ["a"]})), None);
    }

    #[test]
    fn meter_reads_a_thinking_stream() {
        let ctx = AnswerContext {
            id: "chatcmpl-1",
            model: "claude",
            upstream_model: "claude",
            created: 0,
            include_usage: false,
            client_request: None,
        };
        let mut m = Meter::new(&ctx);
        let events = [
            (
                "message_start",
                json!({"type": "message_start", "message": {"usage": {"input_tokens": 5, "cache_read_input_tokens": 50}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi!"}}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}),
            ),
        ];
        for (name, data) in events {
            m.on_event(Some(name), &data.to_string()).unwrap();
        }
        assert!(!m.finished());
        m.on_event(Some("message_stop"), r#"{"type":"message_stop"}"#)
            .unwrap();
        assert!(m.finished());
        assert_eq!(m.generated_bytes(), 6);
        assert_eq!(m.usage().prompt_tokens, 55);
        assert_eq!(m.usage().completion_tokens, 9);
        let err = m.error_event(&ApiError::bad_gateway("gone"));
        assert!(err.starts_with("event: error\n"), "{err}");
    }
}
