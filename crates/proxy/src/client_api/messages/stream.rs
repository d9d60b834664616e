//! A streamed chat completion as the Messages API's event stream.
//!
//! Anthropic's order: `message_start`; per content block `content_block_start`, its deltas,
//! `content_block_stop`; then `message_delta` (stop reason, usage) and `message_stop`. Chat
//! chunks map onto that one block at a time: text opens a text block, each new tool call index
//! closes the open block and opens a `tool_use` block whose argument fragments become
//! `input_json_delta`s. The input token count is only known at the end of a chat stream (its
//! usage-only chunk), so `message_start` reports 0 unless usage already arrived, and the
//! full counts go in `message_delta`, as Anthropic's own stream also repeats them there.

use serde_json::{json, Value};

use super::response::{input_tokens, parse_usage, stop_reason};
use crate::providers::translate::{bad_upstream, TranslateError, Usage};

/// One SSE event as sent to the client.
pub(crate) fn sse(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

pub(crate) type Event = (&'static str, String);

fn event(name: &'static str, data: Value) -> Event {
    (name, data.to_string())
}

enum Block {
    Text {
        index: u64,
    },
    Tool {
        index: u64,
        /// The chat `tool_calls[].index`, when the upstream gives one.
        call: Option<u64>,
        id: String,
    },
}

impl Block {
    fn index(&self) -> u64 {
        match self {
            Block::Text { index } | Block::Tool { index, .. } => *index,
        }
    }
}

pub(crate) struct StreamTranslator {
    model: String,
    id: String,
    started: bool,
    open: Option<Block>,
    next_index: u64,
    /// Chat tool call indexes already given a block: a block cannot be reopened.
    seen_calls: Vec<u64>,
    saw_tool_use: bool,
    stop: Option<(&'static str, Value)>,
    usage: Option<Usage>,
    done: bool,
}

impl StreamTranslator {
    /// `model` is the name the client asked for, `id` the Messages id to report.
    pub(crate) fn new(model: &str, id: &str) -> Self {
        StreamTranslator {
            model: model.to_owned(),
            id: id.to_owned(),
            started: false,
            open: None,
            next_index: 0,
            seen_calls: Vec::new(),
            saw_tool_use: false,
            stop: None,
            usage: None,
            done: false,
        }
    }

    /// The events for one parsed `chat.completion.chunk`. An in-band error chunk is an Err
    /// (the caller ends the stream with an error event).
    pub(crate) fn on_chunk(&mut self, chunk: &Value) -> Result<Vec<Event>, TranslateError> {
        if let Some(err) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .or(err.as_str())
                .unwrap_or("the upstream failed mid-stream");
            return Err(bad_upstream(message));
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(parse_usage(u));
        }
        let mut out = Vec::new();
        if self.done {
            return Ok(out);
        }
        let choices = match chunk.get("choices") {
            None | Some(Value::Null) => return Ok(out),
            Some(Value::Array(c)) => c,
            Some(_) => {
                return Err(bad_upstream(
                    "the upstream's stream chunk choices is not a list",
                ))
            }
        };
        for choice in choices {
            // Only the first choice: a Messages request never asks for more than one.
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            self.start(&mut out);
            // Past the finish, stray deltas would reopen closed blocks; they are ignored.
            if self.stop.is_some() {
                continue;
            }
            if let Some(delta) = choice.get("delta").filter(|d| d.is_object()) {
                for key in ["content", "refusal"] {
                    if let Some(text) = delta.get(key).and_then(Value::as_str) {
                        self.text(text, &mut out);
                    }
                }
                if let Some(calls) = delta.get("tool_calls").filter(|c| !c.is_null()) {
                    let calls = calls.as_array().ok_or_else(|| {
                        bad_upstream("the upstream's streamed tool_calls is not a list")
                    })?;
                    for call in calls {
                        self.tool_call(call, &mut out)?;
                    }
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.close(&mut out);
                self.stop = Some(stop_reason(Some(reason), choice, self.saw_tool_use));
            }
        }
        Ok(out)
    }

    /// The closing events, once the chat stream has ended (`[DONE]`), with the usage the stream
    /// reported. A second call returns nothing.
    pub(crate) fn finish(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.done = true;
        self.start(&mut out);
        self.close(&mut out);
        let (reason, sequence) = self.stop.take().unwrap_or_else(|| {
            let reason = if self.saw_tool_use {
                "tool_use"
            } else {
                "end_turn"
            };
            (reason, Value::Null)
        });
        let usage = match self.usage {
            Some(u) => json!({
                "input_tokens": input_tokens(&u),
                "output_tokens": u.completion_tokens,
                "cache_read_input_tokens": u.cache_read_input_tokens,
                "cache_creation_input_tokens": u.cache_creation_input_tokens,
            }),
            None => json!({"output_tokens": 0}),
        };
        out.push(event(
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": usage,
            }),
        ));
        out.push(event("message_stop", json!({"type": "message_stop"})));
        out
    }

    fn start(&mut self, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        let usage = self.usage.unwrap_or_default();
        out.push(event(
            "message_start",
            json!({
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {
                        "input_tokens": input_tokens(&usage),
                        "output_tokens": 0,
                        "cache_read_input_tokens": usage.cache_read_input_tokens,
                        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                    },
                },
            }),
        ));
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        if let Some(block) = self.open.take() {
            out.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": block.index()}),
            ));
        }
    }

    fn open(&mut self, block: Block, content_block: Value, out: &mut Vec<Event>) {
        self.close(out);
        out.push(event(
            "content_block_start",
            json!({
                "type": "content_block_start",
                "index": block.index(),
                "content_block": content_block,
            }),
        ));
        self.next_index += 1;
        self.open = Some(block);
    }

    fn text(&mut self, text: &str, out: &mut Vec<Event>) {
        if text.is_empty() {
            return;
        }
        let index = match self.open {
            Some(Block::Text { index }) => index,
            _ => {
                let index = self.next_index;
                self.open(
                    Block::Text { index },
                    json!({"type": "text", "text": ""}),
                    out,
                );
                index
            }
        };
        out.push(event(
            "content_block_delta",
            json!({
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": text},
            }),
        ));
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<Event>) -> Result<(), TranslateError> {
        let call_index = call.get("index").and_then(Value::as_u64);
        let call_id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let function = call.get("function");
        let has_name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        // Without an index (some servers omit it), a new id starts a new call, and so does a
        // name without an id: names come only at the start of a call.
        let continues = match &self.open {
            Some(Block::Tool { call, id, .. }) => match (call_index, call_id) {
                (Some(i), _) => *call == Some(i),
                (None, Some(c)) => c == id,
                (None, None) => !has_name,
            },
            _ => false,
        };
        let index = if continues {
            self.open.as_ref().map_or(0, Block::index)
        } else {
            if let Some(i) = call_index {
                if self.seen_calls.contains(&i) {
                    return Err(bad_upstream(format!(
                        "the upstream resumed tool call {i} after another had begun"
                    )));
                }
                self.seen_calls.push(i);
            }
            let name = function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad_upstream("the upstream started a tool call without a name"))?;
            let index = self.next_index;
            let id = match call_id {
                Some(id) => id.to_owned(),
                None => format!("toolu_{}_{index}", self.id),
            };
            let content_block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
            self.open(
                Block::Tool {
                    index,
                    call: call_index,
                    id,
                },
                content_block,
                out,
            );
            self.saw_tool_use = true;
            index
        };
        let partial = match function.and_then(|f| f.get("arguments")) {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(s)) => s.clone(),
            // A few servers send the arguments as an object rather than its JSON text.
            Some(v) => v.to_string(),
        };
        if !partial.is_empty() {
            out.push(event(
                "content_block_delta",
                json!({
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": partial},
                }),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        })
    }

    fn usage_chunk(prompt: u64, completion: u64, cached: u64) -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": cached}}
        })
    }

    fn parsed(events: Vec<Event>) -> Vec<(&'static str, Value)> {
        events
            .into_iter()
            .map(|(name, data)| (name, serde_json::from_str(&data).unwrap()))
            .collect()
    }

    fn feed(t: &mut StreamTranslator, chunks: &[Value]) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        for c in chunks {
            out.extend(parsed(t.on_chunk(c).unwrap()));
        }
        out
    }

    fn message_start(input: u64, cached: u64) -> (&'static str, Value) {
        (
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input, "output_tokens": 0,
                          "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}
            }}),
        )
    }

    fn block_start(index: u64, block: Value) -> (&'static str, Value) {
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        )
    }

    fn text_delta(index: u64, text: &str) -> (&'static str, Value) {
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
        )
    }

    fn json_delta(index: u64, partial: &str) -> (&'static str, Value) {
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
                   "delta": {"type": "input_json_delta", "partial_json": partial}}),
        )
    }

    fn block_stop(index: u64) -> (&'static str, Value) {
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        )
    }

    fn message_stop() -> (&'static str, Value) {
        ("message_stop", json!({"type": "message_stop"}))
    }

    #[test]
    fn text_then_two_tool_calls() {
        let mut t = StreamTranslator::new("claude-x", "msg_1");
        let events = feed(
            &mut t,
            &[
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Let me "}), Value::Null),
                chunk(json!({"content": "check."}), Value::Null),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                           "function": {"name": "get_weather", "arguments": ""}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                           "function": {"name": "get_time", "arguments": "{}"}}]}),
                    Value::Null,
                ),
                chunk(json!({}), json!("tool_calls")),
                usage_chunk(300, 42, 200),
            ],
        );
        assert_eq!(
            events,
            vec![
                message_start(0, 0),
                block_start(0, json!({"type": "text", "text": ""})),
                text_delta(0, "Let me "),
                text_delta(0, "check."),
                block_stop(0),
                block_start(
                    1,
                    json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})
                ),
                json_delta(1, "{\"city\":"),
                json_delta(1, "\"Paris\"}"),
                block_stop(1),
                block_start(
                    2,
                    json!({"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}})
                ),
                json_delta(2, "{}"),
                block_stop(2),
            ]
        );
        assert_eq!(
            parsed(t.finish()),
            vec![
                (
                    "message_delta",
                    json!({"type": "message_delta",
                           "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                           "usage": {"input_tokens": 100, "output_tokens": 42,
                                     "cache_read_input_tokens": 200, "cache_creation_input_tokens": 0}})
                ),
                message_stop(),
            ]
        );
        assert!(t.finish().is_empty());
        assert!(t
            .on_chunk(&chunk(json!({"content": "late"}), Value::Null))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn usage_only_chunk_makes_no_events_but_counts() {
        let mut t = StreamTranslator::new("claude-x", "msg_1");
        assert!(t.on_chunk(&usage_chunk(10, 3, 0)).unwrap().is_empty());
        // Usage known before the answer began: message_start reports it.
        let events = feed(&mut t, &[chunk(json!({"content": "Hi"}), json!("length"))]);
        assert_eq!(
            events,
            vec![
                message_start(10, 0),
                block_start(0, json!({"type": "text", "text": ""})),
                text_delta(0, "Hi"),
                block_stop(0),
            ]
        );
        let end = parsed(t.finish());
        assert_eq!(end[0].1["delta"]["stop_reason"], "max_tokens");
        assert_eq!(end[0].1["usage"]["output_tokens"], 3);
    }

    #[test]
    fn finish_without_usage_or_finish_reason() {
        let mut t = StreamTranslator::new("claude-x", "msg_1");
        let mut events = feed(&mut t, &[chunk(json!({"content": "partial"}), Value::Null)]);
        events.extend(parsed(t.finish()));
        assert_eq!(
            events,
            vec![
                message_start(0, 0),
                block_start(0, json!({"type": "text", "text": ""})),
                text_delta(0, "partial"),
                block_stop(0),
                (
                    "message_delta",
                    json!({"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                           "usage": {"output_tokens": 0}})
                ),
                message_stop(),
            ]
        );
    }

    #[test]
    fn empty_stream_still_has_a_message() {
        let mut t = StreamTranslator::new("claude-x", "msg_1");
        assert!(t.on_chunk(&usage_chunk(9, 0, 0)).unwrap().is_empty());
        let events = parsed(t.finish());
        assert_eq!(events.len(), 3);
        assert_eq!(events[0], message_start(9, 0));
        assert_eq!(events[1].1["usage"]["input_tokens"], 9);
        assert_eq!(events[2], message_stop());
    }

    #[test]
    fn stop_sequence_and_tool_calls_without_index() {
        let mut t = StreamTranslator::new("claude-x", "msg_1");
        let mut choice = chunk(json!({"content": "a"}), json!("stop"));
        choice["choices"][0]["stop_reason"] = json!("###");
        feed(&mut t, &[choice]);
        let end = parsed(t.finish());
        assert_eq!(
            end[0].1["delta"],
            json!({"stop_reason": "stop_sequence", "stop_sequence": "###"})
        );

        // Whole calls in one chunk each, no index, one ending with "stop".
        let mut t = StreamTranslator::new("claude-x", "msg_2");
        let events = feed(
            &mut t,
            &[
                chunk(
                    json!({"tool_calls": [{"id": "c1", "function": {"name": "a", "arguments": "{}"}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"function": {"name": "b", "arguments": {"k": 1}}}]}),
                    json!("stop"),
                ),
            ],
        );
        let starts: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| *n == "content_block_start")
            .map(|(_, d)| &d["content_block"])
            .collect();
        assert_eq!(
            starts,
            vec![
                &json!({"type": "tool_use", "id": "c1", "name": "a", "input": {}}),
                &json!({"type": "tool_use", "id": "toolu_msg_2_1", "name": "b", "input": {}}),
            ]
        );
        assert_eq!(events.last().unwrap(), &block_stop(1));
        assert_eq!(parsed(t.finish())[0].1["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn upstream_failures_are_errors() {
        let mut t = StreamTranslator::new("claude-x", "msg_1");
        match t.on_chunk(&json!({"error": {"message": "overloaded", "code": 503}})) {
            Err(TranslateError::BadUpstream(m)) => assert_eq!(m, "overloaded"),
            other => panic!("expected BadUpstream, got {other:?}"),
        }
        assert!(matches!(
            t.on_chunk(&json!({"choices": {"0": {}}})),
            Err(TranslateError::BadUpstream(_))
        ));
        assert!(matches!(
            t.on_chunk(&chunk(
                json!({"tool_calls": [{"index": 0, "id": "c"}]}),
                Value::Null
            )),
            Err(TranslateError::BadUpstream(_))
        ));
        let mut t = StreamTranslator::new("claude-x", "msg_1");
        let calls = |i: u64| {
            chunk(
                json!({"tool_calls": [{"index": i, "id": format!("c{i}"), "function": {"name": "f"}}]}),
                Value::Null,
            )
        };
        t.on_chunk(&calls(0)).unwrap();
        t.on_chunk(&calls(1)).unwrap();
        assert!(matches!(
            t.on_chunk(&calls(0)),
            Err(TranslateError::BadUpstream(_))
        ));
    }

    #[test]
    fn sse_format() {
        assert_eq!(
            sse("message_stop", "{\"type\":\"message_stop\"}"),
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
    }
}
