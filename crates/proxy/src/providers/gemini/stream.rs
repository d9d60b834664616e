//! Gemini `streamGenerateContent?alt=sse` events → OpenAI `chat.completion.chunk`s.
//!
//! Every event is a whole GenerateContentResponse holding the next piece of each candidate;
//! function calls arrive whole. There is no terminal event: the stream is complete once every
//! candidate reported a finishReason.

use serde_json::{json, Value};

use super::{candidate_index, inband_error, map_finish_reason, usage_json, GeminiUsage, Parts};
use crate::providers::translate::{bad_upstream, TranslateError, Usage};

/// What has been sent for one candidate (an OpenAI choice).
struct Choice {
    index: u64,
    tool_calls: u64,
    finished: bool,
}

/// Feed each SSE event's data and get zero or more OpenAI `chat.completion.chunk` JSON strings
/// (without the `data: ` prefix) to send to the client.
pub(crate) struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    counts: GeminiUsage,
    choices: Vec<Choice>,
    /// Function calls given ids so far, across candidates.
    calls: usize,
    finished: bool,
    generated_bytes: usize,
}

impl StreamTranslator {
    pub(crate) fn new(id: &str, model: &str, created: i64, include_usage: bool) -> Self {
        Self {
            id: id.to_owned(),
            model: model.to_owned(),
            created,
            include_usage,
            counts: GeminiUsage::default(),
            choices: Vec::new(),
            calls: 0,
            finished: false,
            generated_bytes: 0,
        }
    }

    fn chunk(&self, index: u64, delta: Value, finish_reason: Value) -> String {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
        })
        .to_string()
    }

    /// The state of candidate `index`, created (with its role chunk) on first sight.
    fn choice(&mut self, index: u64, out: &mut Vec<String>) -> usize {
        if let Some(pos) = self.choices.iter().position(|c| c.index == index) {
            return pos;
        }
        self.choices.push(Choice {
            index,
            tool_calls: 0,
            finished: false,
        });
        out.push(self.chunk(
            index,
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        self.choices.len() - 1
    }

    /// `name` is the SSE event name, which Gemini doesn't use. Returns the chunks to emit, or
    /// Err on an in-band error or unreadable data.
    pub(crate) fn on_event(
        &mut self,
        _name: Option<&str>,
        data: &str,
    ) -> Result<Vec<String>, TranslateError> {
        if data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| bad_upstream(format!("unreadable Gemini stream event: {e}")))?;
        if let Some(msg) = inband_error(&v) {
            return Err(bad_upstream(msg));
        }
        // Usage is cumulative: each event's counts replace the previous ones.
        if let Some(meta) = v.get("usageMetadata") {
            self.counts = GeminiUsage::read(meta);
        }
        let candidates = match v.get("candidates") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(c)) => c.as_slice(),
            Some(_) => {
                return Err(bad_upstream(
                    "Gemini stream event 'candidates' is not an array",
                ))
            }
        };

        let mut out = Vec::new();
        if candidates.is_empty()
            && v.get("promptFeedback")
                .and_then(|f| f.get("blockReason"))
                .is_some()
        {
            // A blocked prompt: one empty choice, filtered.
            let pos = self.choice(0, &mut out);
            if let Some(c) = self.choices.get_mut(pos) {
                c.finished = true;
            }
            out.push(self.chunk(0, json!({}), json!("content_filter")));
        }
        for (position, candidate) in candidates.iter().enumerate() {
            let index = candidate_index(candidate, position);
            let pos = self.choice(index, &mut out);
            if self.choices.get(pos).is_some_and(|c| c.finished) {
                // Nothing may follow a choice's finish chunk.
                continue;
            }
            let parts = Parts::read(candidate, &self.id, self.calls)?;
            self.generated_bytes += parts.generated_bytes();
            self.calls += parts.calls.len();
            if !parts.reasoning.is_empty() {
                out.push(self.chunk(
                    index,
                    json!({"reasoning_content": parts.reasoning}),
                    Value::Null,
                ));
            }
            if !parts.text.is_empty() {
                out.push(self.chunk(index, json!({"content": parts.text}), Value::Null));
            }
            for (id, name, arguments) in parts.calls {
                let tool_index = match self.choices.get_mut(pos) {
                    Some(c) => {
                        c.tool_calls += 1;
                        c.tool_calls - 1
                    }
                    None => 0,
                };
                out.push(self.chunk(
                    index,
                    json!({"tool_calls": [{
                        "index": tool_index,
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments}
                    }]}),
                    Value::Null,
                ));
            }
            if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
                let called_tools = self.choices.get(pos).is_some_and(|c| c.tool_calls > 0);
                if let Some(c) = self.choices.get_mut(pos) {
                    c.finished = true;
                }
                out.push(self.chunk(
                    index,
                    json!({}),
                    json!(map_finish_reason(reason, called_tools)),
                ));
            }
        }

        if !self.finished && !self.choices.is_empty() && self.choices.iter().all(|c| c.finished) {
            self.finished = true;
            if self.include_usage {
                out.push(
                    json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage_json(&self.usage(), self.counts.thoughts),
                    })
                    .to_string(),
                );
            }
        }
        Ok(out)
    }

    /// Usage seen so far (the latest event's usageMetadata).
    pub(crate) fn usage(&self) -> Usage {
        self.counts.to_usage()
    }

    /// Bytes of generated text, thinking and tool arguments seen so far.
    pub(crate) fn generated_bytes(&self) -> usize {
        self.generated_bytes
    }

    /// True once every candidate reported a finishReason (the caller then appends `[DONE]`).
    pub(crate) fn finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// JSON built from the words Gemini's answers use, so random events reach the real paths.
    fn gemini_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
            prop::sample::select(vec!["STOP", "MAX_TOKENS", "SAFETY", "OTHER"])
                .prop_map(|s| json!(s)),
        ];
        let keys = prop::sample::select(vec![
            "candidates",
            "content",
            "parts",
            "text",
            "thought",
            "functionCall",
            "name",
            "args",
            "id",
            "finishReason",
            "index",
            "usageMetadata",
            "promptTokenCount",
            "candidatesTokenCount",
            "thoughtsTokenCount",
            "promptFeedback",
            "blockReason",
            "error",
            "message",
            "thoughtSignature",
        ]);
        leaf.prop_recursive(5, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn random_events_never_panic(events in prop::collection::vec(
            prop_oneof![gemini_json().prop_map(|v| v.to_string()), "\\PC{0,40}"],
            0..10,
        )) {
            let mut t = StreamTranslator::new("chatcmpl-p", "m", 0, true);
            for data in &events {
                if let Ok(chunks) = t.on_event(None, data) {
                    for c in chunks {
                        prop_assert!(serde_json::from_str::<Value>(&c).is_ok());
                    }
                }
            }
        }

        #[test]
        fn streamed_text_is_passed_on_and_counted_exactly(texts in prop::collection::vec("\\PC{0,30}", 1..10)) {
            let mut t = StreamTranslator::new("chatcmpl-p", "m", 0, false);
            let mut out = String::new();
            for (i, text) in texts.iter().enumerate() {
                let mut candidate = json!({"content": {"parts": [{"text": text}]}});
                if i + 1 == texts.len() {
                    candidate["finishReason"] = json!("STOP");
                }
                for c in t.on_event(None, &json!({"candidates": [candidate]}).to_string()).unwrap() {
                    let v: Value = serde_json::from_str(&c).unwrap();
                    out.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
                }
            }
            prop_assert_eq!(&out, &texts.concat());
            prop_assert_eq!(t.generated_bytes(), out.len());
            prop_assert!(t.finished());
        }
    }

    fn feed(t: &mut StreamTranslator, events: &[Value]) -> Vec<Value> {
        let mut out = Vec::new();
        for e in events {
            for c in t.on_event(None, &e.to_string()).unwrap() {
                out.push(serde_json::from_str(&c).unwrap());
            }
        }
        out
    }

    fn chunk(index: u64, delta: Value, finish: Value) -> Value {
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gemini",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}]
        })
    }

    #[test]
    fn streamed_text_with_usage() {
        let mut t = StreamTranslator::new("chatcmpl-1", "gemini", 1700000000, true);
        assert!(!t.finished());
        let chunks = feed(
            &mut t,
            &[
                json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}],
                       "usageMetadata": {"promptTokenCount": 25, "totalTokenCount": 25}}),
                json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "lo!"}]}}],
                       "usageMetadata": {"promptTokenCount": 25, "candidatesTokenCount": 2}}),
                json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}],
                       "usageMetadata": {"promptTokenCount": 25, "candidatesTokenCount": 4,
                                         "thoughtsTokenCount": 6, "cachedContentTokenCount": 10, "totalTokenCount": 35},
                       "modelVersion": "gemini-2.5-flash"}),
            ],
        );
        assert_eq!(
            chunks,
            vec![
                chunk(0, json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(0, json!({"content": "Hel"}), Value::Null),
                chunk(0, json!({"content": "lo!"}), Value::Null),
                chunk(0, json!({}), json!("stop")),
                json!({
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": "gemini",
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 25,
                        "completion_tokens": 10,
                        "total_tokens": 35,
                        "prompt_tokens_details": {"cached_tokens": 10},
                        "completion_tokens_details": {"reasoning_tokens": 6}
                    }
                }),
            ]
        );
        assert!(t.finished());
        assert_eq!(
            t.usage(),
            Usage {
                prompt_tokens: 25,
                completion_tokens: 10,
                cache_read_input_tokens: 10,
                cache_creation_input_tokens: 0
            }
        );
        assert_eq!(t.generated_bytes(), 6);
    }

    #[test]
    fn streamed_tool_calls_split_over_events() {
        let mut t = StreamTranslator::new("chatcmpl-1", "gemini", 1700000000, false);
        let chunks = feed(
            &mut t,
            &[
                json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"text": "Checking.", "thought": true},
                    {"text": "Let me check."}
                ]}}]}),
                json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"}
                ]}}]}),
                json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"functionCall": {"name": "now", "args": {}}}
                ]}, "finishReason": "STOP"}],
                       "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 30}}),
            ],
        );
        assert_eq!(
            chunks,
            vec![
                chunk(0, json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(0, json!({"reasoning_content": "Checking."}), Value::Null),
                chunk(0, json!({"content": "Let me check."}), Value::Null),
                chunk(
                    0,
                    json!({"tool_calls": [{"index": 0, "id": "call_1_0__thought__c2ln", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
                    Value::Null
                ),
                chunk(
                    0,
                    json!({"tool_calls": [{"index": 1, "id": "call_1_1", "type": "function",
                        "function": {"name": "now", "arguments": "{}"}}]}),
                    Value::Null
                ),
                chunk(0, json!({}), json!("tool_calls")),
            ]
        );
        assert!(t.finished());
        assert_eq!(t.usage().prompt_tokens, 50);
        assert_eq!(t.usage().completion_tokens, 30);
        assert_eq!(
            t.generated_bytes(),
            "Checking.".len() + "Let me check.".len() + "{\"city\":\"Paris\"}".len() + 2
        );
    }

    #[test]
    fn several_candidates_finish_separately() {
        let mut t = StreamTranslator::new("chatcmpl-1", "gemini", 1700000000, true);
        let first = feed(
            &mut t,
            &[json!({"candidates": [
                {"content": {"parts": [{"text": "A"}]}, "index": 0},
                {"content": {"parts": [{"text": "B"}]}, "index": 1, "finishReason": "MAX_TOKENS"}
            ]})],
        );
        assert_eq!(
            first,
            vec![
                chunk(0, json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(0, json!({"content": "A"}), Value::Null),
                chunk(1, json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(1, json!({"content": "B"}), Value::Null),
                chunk(1, json!({}), json!("length")),
            ]
        );
        assert!(!t.finished());
        let rest = feed(
            &mut t,
            &[
                json!({"candidates": [{"content": {"parts": [{"text": "!"}]}, "index": 0, "finishReason": "STOP"}],
                     "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}}),
            ],
        );
        assert_eq!(rest.len(), 3);
        assert_eq!(rest[0], chunk(0, json!({"content": "!"}), Value::Null));
        assert_eq!(rest[1], chunk(0, json!({}), json!("stop")));
        assert_eq!(rest[2]["choices"], json!([]));
        assert_eq!(rest[2]["usage"]["total_tokens"], 7);
        assert!(t.finished());
    }

    #[test]
    fn safety_stop_and_blocked_prompt() {
        let mut t = StreamTranslator::new("chatcmpl-1", "gemini", 1700000000, false);
        let chunks = feed(
            &mut t,
            &[
                json!({"candidates": [{"content": {"parts": [{"text": "Sure, here"}]}}]}),
                json!({"candidates": [{"finishReason": "SAFETY", "safetyRatings": []}]}),
            ],
        );
        assert_eq!(
            chunks.last(),
            Some(&chunk(0, json!({}), json!("content_filter")))
        );
        assert!(t.finished());

        let mut t = StreamTranslator::new("chatcmpl-1", "gemini", 1700000000, true);
        let chunks = feed(
            &mut t,
            &[json!({"promptFeedback": {"blockReason": "SAFETY"},
                     "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}})],
        );
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            chunks[0],
            chunk(0, json!({"role": "assistant", "content": ""}), Value::Null)
        );
        assert_eq!(chunks[1], chunk(0, json!({}), json!("content_filter")));
        assert_eq!(chunks[2]["usage"]["prompt_tokens"], 9);
        assert!(t.finished());
    }

    #[test]
    fn events_after_the_finish_add_nothing_but_usage() {
        let mut t = StreamTranslator::new("chatcmpl-1", "gemini", 1700000000, false);
        feed(
            &mut t,
            &[
                json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}]}),
            ],
        );
        let late = feed(
            &mut t,
            &[
                json!({"candidates": [{"content": {"parts": [{"text": "late"}]}}],
                     "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1}}),
            ],
        );
        assert!(late.is_empty());
        assert_eq!(t.usage().completion_tokens, 1);
    }

    #[test]
    fn errors_and_unreadable_events() {
        let mut t = StreamTranslator::new("chatcmpl-1", "gemini", 0, true);
        assert!(t.on_event(None, "").unwrap().is_empty());
        let err = json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}});
        match t.on_event(None, &err.to_string()) {
            Err(TranslateError::BadUpstream(m)) => assert_eq!(m, "The model is overloaded."),
            other => panic!("expected BadUpstream, got {other:?}"),
        }
        assert!(matches!(
            t.on_event(None, "{oops"),
            Err(TranslateError::BadUpstream(_))
        ));
        assert!(matches!(
            t.on_event(None, r#"{"candidates": {}}"#),
            Err(TranslateError::BadUpstream(_))
        ));
        assert!(!t.finished());
    }
}
