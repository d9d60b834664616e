//! A Responses call served by OpenAI or Azure: the caller's request goes as it is (so stored
//! responses, `previous_response_id`, reasoning items and built-in tools work), and the answer
//! comes back as it is; only its usage is read here.

use serde_json::{Map, Value};

use super::error::stream_error_event;
use crate::error::ApiError;
use crate::providers::native::StreamMeter;
use crate::providers::translate::{bad_upstream, TranslateError, Usage};

fn count(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

/// A Response's `usage`: input counts cached tokens in, as chat's prompt does.
fn usage_of(u: &Value) -> Usage {
    Usage {
        prompt_tokens: count(u.get("input_tokens")),
        completion_tokens: count(u.get("output_tokens")),
        cache_read_input_tokens: count(
            u.get("input_tokens_details")
                .and_then(|d| d.get("cached_tokens")),
        ),
        cache_creation_input_tokens: 0,
    }
}

pub(super) fn usage(answer: &Value) -> Option<Usage> {
    answer.get("usage").filter(|u| u.is_object()).map(usage_of)
}

/// OpenAI's `metadata` holds up to 16 string values; gateway callers also put tags (lists) in it.
pub(super) fn metadata(metadata: &Value) -> Option<Value> {
    let kept: Map<String, Value> = metadata
        .as_object()?
        .iter()
        .filter(|(_, v)| v.is_string())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!kept.is_empty()).then_some(Value::Object(kept))
}

#[derive(Default)]
pub(super) struct Meter {
    usage: Usage,
    generated: usize,
    finished: bool,
    last_sequence: Option<u64>,
}

impl StreamMeter for Meter {
    fn on_event(&mut self, name: Option<&str>, data: &str) -> Result<(), TranslateError> {
        let event: Value = serde_json::from_str(data)
            .map_err(|e| bad_upstream(format!("unreadable Responses stream event: {e}")))?;
        if let Some(n) = event.get("sequence_number").and_then(Value::as_u64) {
            self.last_sequence = Some(n);
        }
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .or(name)
            .unwrap_or_default();
        let response_usage = || event.pointer("/response/usage").filter(|u| u.is_object());
        match kind {
            "response.output_text.delta"
            | "response.function_call_arguments.delta"
            | "response.reasoning_summary_text.delta"
            | "response.reasoning_text.delta"
            | "response.refusal.delta" => {
                let delta = event.get("delta").and_then(Value::as_str).unwrap_or("");
                self.generated += delta.len();
            }
            "response.completed" | "response.incomplete" => {
                if let Some(u) = response_usage() {
                    self.usage = usage_of(u);
                }
                self.finished = true;
            }
            "response.failed" => {
                if let Some(u) = response_usage() {
                    self.usage = usage_of(u);
                }
                let message = event
                    .pointer("/response/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream reported the response failed");
                return Err(bad_upstream(message));
            }
            "error" => {
                let message = event
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream reported an error");
                return Err(bad_upstream(message));
            }
            _ => {}
        }
        Ok(())
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    fn generated_bytes(&self) -> usize {
        self.generated
    }

    fn finished(&self) -> bool {
        self.finished
    }

    fn error_event(&mut self, error: &ApiError) -> String {
        let code = match error.status.as_u16() {
            429 => "rate_limit_exceeded",
            _ => "server_error",
        };
        let next = self.last_sequence.map_or(0, |n| n + 1);
        stream_error_event(code, &error.message, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_and_metadata() {
        let u = usage(&json!({"usage": {"input_tokens": 30, "output_tokens": 5,
            "input_tokens_details": {"cached_tokens": 20}}}))
        .unwrap();
        assert_eq!(
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.cache_read_input_tokens
            ),
            (30, 5, 20)
        );
        assert!(usage(&json!({"usage": null})).is_none());
        assert_eq!(
            metadata(&json!({"team": "x", "tags": ["a"]})),
            Some(json!({"team": "x"}))
        );
        assert_eq!(metadata(&json!({"tags": ["a"]})), None);
    }

    #[test]
    fn meter_reads_usage_at_the_end_and_numbers_its_error_after_the_last_event() {
        let mut m = Meter::default();
        let ev = |v: Value| v.to_string();
        m.on_event(
            None,
            &ev(json!({"type": "response.created", "sequence_number": 0})),
        )
        .unwrap();
        m.on_event(
            None,
            &ev(json!({"type": "response.output_text.delta", "delta": "Hello", "sequence_number": 1})),
        )
        .unwrap();
        assert_eq!(m.generated_bytes(), 5);
        assert!(!m.finished());
        let err = m.error_event(&ApiError::bad_gateway("cut"));
        assert!(err.contains("\"sequence_number\":2"), "{err}");
        m.on_event(
            None,
            &ev(json!({"type": "response.completed", "sequence_number": 2,
                "response": {"usage": {"input_tokens": 4, "output_tokens": 2}}})),
        )
        .unwrap();
        assert!(m.finished());
        assert_eq!(m.usage().prompt_tokens, 4);
        let failed = m.on_event(
            None,
            &ev(json!({"type": "response.failed", "response": {"error": {"message": "boom"}}})),
        );
        assert!(failed.unwrap_err().to_string().contains("boom"));
    }
}
