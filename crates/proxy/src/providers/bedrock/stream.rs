//! ConverseStream events → OpenAI `chat.completion.chunk`s.
//!
//! Each event-stream frame arrives as its event type and JSON payload: `messageStart`, then per
//! content block `contentBlockStart` (tool uses only), `contentBlockDelta`s and
//! `contentBlockStop`, then `messageStop` with the stop reason and `metadata` with the usage,
//! which is the last event.

use serde_json::{json, Value};

use super::{map_stop_reason, read_usage, usage_json, JSON_TOOL_NAME};
use crate::providers::translate::{bad_upstream, TranslateError, Usage};

/// What a content block that is a tool use became.
enum ToolBlock {
    /// A tool call for the client, with its OpenAI index.
    Call(u64),
    /// The forced JSON `response_format` tool: its input streams as content.
    Json,
}

pub(super) struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    started: bool,
    /// Tool-use blocks by their `contentBlockIndex`.
    tool_blocks: Vec<(u64, ToolBlock)>,
    tool_calls: u64,
    usage: Usage,
    finished: bool,
    generated_bytes: usize,
}

impl StreamTranslator {
    pub(super) fn new(id: &str, model: &str, created: i64, include_usage: bool) -> Self {
        StreamTranslator {
            id: id.to_owned(),
            model: model.to_owned(),
            created,
            include_usage,
            started: false,
            tool_blocks: Vec::new(),
            tool_calls: 0,
            usage: Usage::default(),
            finished: false,
            generated_bytes: 0,
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Value) -> String {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        })
        .to_string()
    }

    /// The role chunk, once, before anything else.
    fn start(&mut self, out: &mut Vec<String>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), Value::Null));
        }
    }

    fn block(&self, index: u64) -> Option<&ToolBlock> {
        self.tool_blocks
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }

    /// One event: `name` is its `:event-type`, `data` its JSON payload.
    pub(super) fn on_event(
        &mut self,
        name: Option<&str>,
        data: &str,
    ) -> Result<Vec<String>, TranslateError> {
        let mut out = Vec::new();
        if self.finished || data.trim().is_empty() {
            return Ok(out);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| bad_upstream(format!("unreadable Bedrock stream event: {e}")))?;
        let block_index = v
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match name {
            Some("messageStart") => self.start(&mut out),
            Some("contentBlockStart") => {
                let Some(tool) = v.get("start").and_then(|s| s.get("toolUse")) else {
                    return Ok(out);
                };
                self.start(&mut out);
                let tool_name = tool
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_upstream("Bedrock toolUse start has no name"))?;
                if tool_name == JSON_TOOL_NAME {
                    self.tool_blocks.push((block_index, ToolBlock::Json));
                    return Ok(out);
                }
                let call_id = tool
                    .get("toolUseId")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_upstream("Bedrock toolUse start has no toolUseId"))?;
                let index = self.tool_calls;
                self.tool_calls += 1;
                self.tool_blocks.push((block_index, ToolBlock::Call(index)));
                out.push(self.chunk(
                    json!({"tool_calls": [{
                        "index": index,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": tool_name, "arguments": ""}
                    }]}),
                    Value::Null,
                ));
            }
            Some("contentBlockDelta") => {
                self.start(&mut out);
                let delta = v.get("delta");
                let field = |name: &str| delta.and_then(|d| d.get(name));
                if let Some(text) = field("text").and_then(Value::as_str) {
                    self.generated_bytes += text.len();
                    if !text.is_empty() {
                        out.push(self.chunk(json!({"content": text}), Value::Null));
                    }
                } else if let Some(input) = field("toolUse")
                    .and_then(|t| t.get("input"))
                    .and_then(Value::as_str)
                {
                    self.generated_bytes += input.len();
                    let chunk = match self.block(block_index) {
                        Some(ToolBlock::Call(index)) => json!({"tool_calls": [{
                            "index": index,
                            "function": {"arguments": input}
                        }]}),
                        Some(ToolBlock::Json) => json!({"content": input}),
                        None => {
                            return Err(bad_upstream(
                                "Bedrock streamed tool input for a block that never started",
                            ))
                        }
                    };
                    if !input.is_empty() {
                        out.push(self.chunk(chunk, Value::Null));
                    }
                } else if let Some(text) = field("reasoningContent")
                    .and_then(|r| r.get("text"))
                    .and_then(Value::as_str)
                {
                    self.generated_bytes += text.len();
                    if !text.is_empty() {
                        out.push(self.chunk(json!({"reasoning_content": text}), Value::Null));
                    }
                }
            }
            Some("messageStop") => {
                self.start(&mut out);
                let reason = v
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("end_turn");
                let finish = match map_stop_reason(reason) {
                    // Only the forced JSON tool was used: that is an answer, not a call.
                    "tool_calls" if self.tool_calls == 0 => "stop",
                    other => other,
                };
                out.push(self.chunk(json!({}), json!(finish)));
            }
            Some("metadata") => {
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.usage = read_usage(u);
                }
                self.finished = true;
                if self.include_usage {
                    out.push(
                        json!({
                            "id": self.id,
                            "object": "chat.completion.chunk",
                            "created": self.created,
                            "model": self.model,
                            "choices": [],
                            "usage": usage_json(&self.usage),
                        })
                        .to_string(),
                    );
                }
            }
            // contentBlockStop, and events added later.
            _ => {}
        }
        Ok(out)
    }

    pub(super) fn usage(&self) -> Usage {
        self.usage
    }

    pub(super) fn generated_bytes(&self) -> usize {
        self.generated_bytes
    }

    /// True once the closing `metadata` event came (the caller then appends `[DONE]`).
    pub(super) fn finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed(t: &mut StreamTranslator, events: &[(&str, Value)]) -> Vec<Value> {
        let mut out = Vec::new();
        for (name, data) in events {
            for c in t.on_event(Some(name), &data.to_string()).unwrap() {
                out.push(serde_json::from_str(&c).unwrap());
            }
        }
        out
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "claude",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        })
    }

    #[test]
    fn streamed_text_with_usage() {
        let mut t = StreamTranslator::new("chatcmpl-1", "claude", 1700000000, true);
        let chunks = feed(
            &mut t,
            &[
                ("messageStart", json!({"role": "assistant"})),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "lo!"}}),
                ),
                ("contentBlockStop", json!({"contentBlockIndex": 0})),
                ("messageStop", json!({"stopReason": "end_turn"})),
            ],
        );
        assert!(!t.finished());
        let end = feed(
            &mut t,
            &[(
                "metadata",
                json!({"usage": {"inputTokens": 25, "outputTokens": 4, "totalTokens": 29}, "metrics": {"latencyMs": 5}}),
            )],
        );
        assert_eq!(
            chunks,
            vec![
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Hel"}), Value::Null),
                chunk(json!({"content": "lo!"}), Value::Null),
                chunk(json!({}), json!("stop")),
            ]
        );
        assert_eq!(
            end,
            vec![json!({
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "claude",
                "choices": [],
                "usage": {"prompt_tokens": 25, "completion_tokens": 4, "total_tokens": 29, "prompt_tokens_details": {"cached_tokens": 0}}
            })]
        );
        assert!(t.finished());
        assert_eq!(t.usage().prompt_tokens, 25);
        assert_eq!(t.generated_bytes(), 6);
        // Nothing follows the end.
        assert!(t
            .on_event(Some("contentBlockDelta"), r#"{"delta":{"text":"late"}}"#)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn streamed_tool_calls_get_their_own_indices() {
        let mut t = StreamTranslator::new("chatcmpl-1", "claude", 1700000000, false);
        let chunks = feed(
            &mut t,
            &[
                ("messageStart", json!({"role": "assistant"})),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "Checking."}}),
                ),
                ("contentBlockStop", json!({"contentBlockIndex": 0})),
                (
                    "contentBlockStart",
                    json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather"}}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
                ),
                ("contentBlockStop", json!({"contentBlockIndex": 1})),
                (
                    "contentBlockStart",
                    json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_b", "name": "now"}}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": ""}}}),
                ),
                ("contentBlockStop", json!({"contentBlockIndex": 2})),
                ("messageStop", json!({"stopReason": "tool_use"})),
                (
                    "metadata",
                    json!({"usage": {"inputTokens": 50, "outputTokens": 30}}),
                ),
            ],
        );
        assert_eq!(
            chunks,
            vec![
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Checking."}), Value::Null),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "tooluse_a", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}]}),
                    Value::Null
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                    Value::Null
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                    Value::Null
                ),
                chunk(
                    json!({"tool_calls": [{"index": 1, "id": "tooluse_b", "type": "function",
                    "function": {"name": "now", "arguments": ""}}]}),
                    Value::Null
                ),
                chunk(json!({}), json!("tool_calls")),
            ]
        );
        assert!(t.finished());
        assert_eq!(t.usage().completion_tokens, 30);
    }

    #[test]
    fn json_tool_input_streams_as_content() {
        let mut t = StreamTranslator::new("chatcmpl-1", "claude", 1700000000, false);
        let chunks = feed(
            &mut t,
            &[
                ("messageStart", json!({"role": "assistant"})),
                (
                    "contentBlockStart",
                    json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": "json_tool_call"}}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"a\":1}"}}}),
                ),
                ("messageStop", json!({"stopReason": "tool_use"})),
            ],
        );
        assert_eq!(
            chunks,
            vec![
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "{\"a\":1}"}), Value::Null),
                chunk(json!({}), json!("stop")),
            ]
        );
    }

    #[test]
    fn reasoning_and_bad_events() {
        let mut t = StreamTranslator::new("chatcmpl-1", "claude", 1700000000, false);
        let chunks = feed(
            &mut t,
            &[(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Hmm."}}}),
            )],
        );
        assert_eq!(
            chunks[1],
            chunk(json!({"reasoning_content": "Hmm."}), Value::Null)
        );
        assert!(matches!(
            t.on_event(Some("messageStart"), "{oops"),
            Err(TranslateError::BadUpstream(_))
        ));
        assert!(matches!(
            t.on_event(
                Some("contentBlockDelta"),
                r#"{"contentBlockIndex":7,"delta":{"toolUse":{"input":"x"}}}"#
            ),
            Err(TranslateError::BadUpstream(_))
        ));
        assert!(t.on_event(Some("somethingNew"), "{}").unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn random_events_never_panic(events in prop::collection::vec(
            (prop::sample::select(vec!["messageStart", "contentBlockStart", "contentBlockDelta",
                "contentBlockStop", "messageStop", "metadata", "x"]), "\\PC{0,60}"),
            0..12,
        )) {
            let mut t = StreamTranslator::new("chatcmpl-p", "m", 0, true);
            for (name, data) in &events {
                if let Ok(chunks) = t.on_event(Some(name), data) {
                    for c in chunks {
                        prop_assert!(serde_json::from_str::<Value>(&c).is_ok());
                    }
                }
            }
        }
    }
}
