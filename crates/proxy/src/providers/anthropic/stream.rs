//! Anthropic stream events → OpenAI chat completion chunks.

use serde_json::{json, Value};

use super::response::{apply_usage, map_stop_reason, usage_json};
use crate::providers::translate::{bad_upstream, TranslateError, Usage};

/// Streaming: feed each Anthropic SSE event (event name, data payload string) and get zero or more
/// OpenAI `chat.completion.chunk` JSON strings (without the `data: ` prefix) to send to the client.
pub struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    input_tokens: u64,
    output_tokens: u64,
    cache_read: u64,
    cache_creation: u64,
    /// (Anthropic content block index, OpenAI tool_calls index) for each tool_use block seen.
    tool_blocks: Vec<(u64, u64)>,
    finished: bool,
    /// Bytes of text the model generated so far (text, tool input, thinking): what an aborted
    /// stream is billed by when its final usage never came.
    generated_bytes: usize,
}

impl StreamTranslator {
    pub fn new(id: &str, model: &str, created: i64, include_usage: bool) -> Self {
        Self {
            id: id.to_owned(),
            model: model.to_owned(),
            created,
            include_usage,
            input_tokens: 0,
            output_tokens: 0,
            cache_read: 0,
            cache_creation: 0,
            tool_blocks: Vec::new(),
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

    fn record_usage(&mut self, usage: Option<&Value>) {
        if let Some(u) = usage {
            apply_usage(
                u,
                &mut self.input_tokens,
                &mut self.output_tokens,
                &mut self.cache_read,
                &mut self.cache_creation,
            );
        }
    }

    fn tool_index(&self, block: u64) -> Option<u64> {
        self.tool_blocks
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, t)| *t)
    }

    /// Returns the chunks to emit, or Err on an Anthropic `error` event / unreadable data.
    pub fn on_event(
        &mut self,
        event: Option<&str>,
        data: &str,
    ) -> Result<Vec<String>, TranslateError> {
        // Pings may come with an empty payload; there is nothing to read in them.
        if event == Some("ping") {
            return Ok(Vec::new());
        }
        let data: Value = serde_json::from_str(data)
            .map_err(|e| bad_upstream(format!("unreadable Anthropic stream event: {e}")))?;
        // The payload's own type is authoritative; the SSE event name is only a fallback.
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(event)
            .unwrap_or_default();

        let mut out = Vec::new();
        match kind {
            "message_start" => {
                self.record_usage(data.get("message").and_then(|m| m.get("usage")));
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            }
            "content_block_start" => {
                let block = data.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                        self.generated_bytes += text.len();
                        if !text.is_empty() {
                            out.push(self.chunk(json!({"content": text}), Value::Null));
                        }
                    }
                    Some("tool_use") => {
                        let block_index =
                            data.get("index").and_then(Value::as_u64).ok_or_else(|| {
                                bad_upstream("Anthropic content_block_start has no index")
                            })?;
                        let tool_index = self.tool_blocks.len() as u64;
                        self.tool_blocks.push((block_index, tool_index));
                        let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                        let name = block
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        out.push(self.chunk(
                            json!({"tool_calls": [{
                                "index": tool_index,
                                "id": id,
                                "type": "function",
                                "function": {"name": name, "arguments": ""}
                            }]}),
                            Value::Null,
                        ));
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta.get("text").and_then(Value::as_str).unwrap_or("");
                        self.generated_bytes += text.len();
                        out.push(self.chunk(json!({"content": text}), Value::Null));
                    }
                    Some("input_json_delta") => {
                        let partial = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        self.generated_bytes += partial.len();
                        let tool_index = data
                            .get("index")
                            .and_then(Value::as_u64)
                            .and_then(|b| self.tool_index(b));
                        // Anthropic often opens with an empty fragment; it carries nothing. A
                        // block that is not a client tool call (a server tool's input, in a
                        // stream passed through as it is) has no chat chunk either.
                        if let (false, Some(tool_index)) = (partial.is_empty(), tool_index) {
                            out.push(self.chunk(
                                json!({"tool_calls": [{
                                    "index": tool_index,
                                    "function": {"arguments": partial}
                                }]}),
                                Value::Null,
                            ));
                        }
                    }
                    // Thinking is generated (and billed) though it has no OpenAI equivalent.
                    Some("thinking_delta") => {
                        let text = delta.get("thinking").and_then(Value::as_str).unwrap_or("");
                        self.generated_bytes += text.len();
                    }
                    // signature_delta, ...: no OpenAI equivalent.
                    _ => {}
                }
            }
            "message_delta" => {
                self.record_usage(data.get("usage"));
                let reason = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                out.push(self.chunk(json!({}), map_stop_reason(reason)));
            }
            "message_stop" => {
                self.finished = true;
                if self.include_usage {
                    out.push(
                        json!({
                            "id": self.id,
                            "object": "chat.completion.chunk",
                            "created": self.created,
                            "model": self.model,
                            "choices": [],
                            "usage": usage_json(&self.usage()),
                        })
                        .to_string(),
                    );
                }
            }
            "error" => {
                let msg = data
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("Anthropic stream reported an error");
                return Err(bad_upstream(msg));
            }
            // ping, content_block_stop, and event types added later carry nothing to forward.
            _ => {}
        }
        Ok(out)
    }

    /// Usage seen so far (message_start gives input tokens, message_delta gives output tokens).
    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.input_tokens + self.cache_read + self.cache_creation,
            completion_tokens: self.output_tokens,
            cache_read_input_tokens: self.cache_read,
            cache_creation_input_tokens: self.cache_creation,
        }
    }

    /// Bytes of generated text seen so far.
    pub fn generated_bytes(&self) -> usize {
        self.generated_bytes
    }

    /// True once `message_stop` was seen.
    pub fn finished(&self) -> bool {
        self.finished
    }
}
