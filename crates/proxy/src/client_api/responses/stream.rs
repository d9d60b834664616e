//! A stream of `chat.completion.chunk`s → the Responses API's stream of events.
//!
//! Items are written one at a time, as OpenAI does: a new item (text after a tool call, the
//! next tool call) closes the one before it, so at most one item is open and it is the last.

use serde_json::{json, Map, Value};
use tollgate_domain::Usage;

use super::error::stream_error_event;
use super::object::{
    item_id, response_object, usage_from_chat, usage_from_counts, Parts, RequestEcho, Status,
};
use crate::providers::translate::{bad_upstream, TranslateError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartKind {
    Text,
    Refusal,
}

#[derive(Debug)]
enum OpenItem {
    Message {
        id: String,
        /// Finished content parts.
        parts: Vec<Value>,
        /// The part being written.
        current: Option<(PartKind, String)>,
    },
    Call {
        id: String,
        /// The chat stream's `tool_calls[].index` it came from.
        chat_index: u64,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// Feeds on parsed chat chunks and yields SSE event strings (`event: …\ndata: …\n\n`).
pub(crate) struct StreamTranslator {
    id: String,
    model: String,
    created_at: i64,
    echo: RequestEcho,
    sequence: u64,
    started: bool,
    finished: bool,
    /// Closed items, by output index; the open item, if any, is the next index.
    output: Vec<Value>,
    open: Option<OpenItem>,
    /// Chat tool-call indices already given an item, so a late fragment is noticed.
    seen_calls: Vec<u64>,
    finish_reason: Option<String>,
    /// The upstream's usage (the usage-only chunk `include_usage` adds).
    chat_usage: Option<Value>,
}

impl StreamTranslator {
    /// `id` is the Response id (`resp_…`), `model` the name the caller asked for.
    pub(crate) fn new(id: &str, model: &str, created_at: i64, echo: RequestEcho) -> Self {
        StreamTranslator {
            id: id.to_owned(),
            model: model.to_owned(),
            created_at,
            echo,
            sequence: 0,
            started: false,
            finished: false,
            output: Vec::new(),
            open: None,
            seen_calls: Vec::new(),
            finish_reason: None,
            chat_usage: None,
        }
    }

    /// The events one chunk produces. A usage-only chunk is remembered for the final event and
    /// produces none; an in-band upstream error is an `Err` (report it with [`Self::fail`]).
    pub(crate) fn on_chunk(&mut self, chunk: &Value) -> Result<Vec<String>, TranslateError> {
        let mut out = Vec::new();
        if self.finished {
            return Ok(out);
        }
        if let Some(err) = chunk.get("error").filter(|e| !e.is_null()) {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| err.as_str())
                .unwrap_or("the upstream reported an error mid-stream");
            return Err(bad_upstream(msg));
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.chat_usage = Some(u.clone());
        }
        // Only the first choice is translated: a Response has one output.
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|ch| ch.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            });
        let Some(choice) = choice else {
            return Ok(out);
        };
        self.start(&mut out);
        if let Some(delta) = choice.get("delta") {
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                self.write_text(PartKind::Text, text, &mut out);
            }
            if let Some(text) = delta.get("refusal").and_then(Value::as_str) {
                self.write_text(PartKind::Refusal, text, &mut out);
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    self.write_call(call, &mut out)?;
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        Ok(out)
    }

    /// Closes what is open and ends the stream with `response.completed` (or
    /// `response.incomplete` when the model was cut off). `usage` is the gateway's count when it
    /// has one (an estimate if the upstream reported none); otherwise the upstream's is used.
    pub(crate) fn finish(&mut self, usage: Option<&Usage>) -> Vec<String> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&mut out);
        let status = Status::from_finish_reason(self.finish_reason.as_deref());
        self.close_item(status.item_status(), &mut out);
        let usage = match (usage, &self.chat_usage) {
            (Some(u), chat) => usage_from_counts(u, chat.as_ref()),
            (None, Some(chat)) => usage_from_chat(chat),
            (None, None) => Value::Null,
        };
        let response = self.response(status, usage, Value::Null);
        let kind = match status {
            Status::Incomplete(_) => "response.incomplete",
            _ => "response.completed",
        };
        out.push(self.event(kind, json!({"response": response})));
        self.finished = true;
        out
    }

    /// Ends the stream on a failure after it began: an `error` event, then `response.failed`
    /// with the items finished so far. `code` is a Responses error code such as `server_error`.
    pub(crate) fn fail(&mut self, code: &str, message: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&mut out);
        // The item being written is dropped: it never finished.
        self.open = None;
        out.push(stream_error_event(code, message, self.sequence));
        self.sequence += 1;
        let error = json!({"code": code, "message": message});
        let response = self.response(Status::Failed, Value::Null, error);
        out.push(self.event("response.failed", json!({"response": response})));
        self.finished = true;
        out
    }

    fn response(&self, status: Status, usage: Value, error: Value) -> Value {
        response_object(
            Parts {
                id: &self.id,
                model: &self.model,
                created_at: self.created_at,
                status,
                output: self.output.clone(),
                usage,
                error,
            },
            &self.echo,
        )
    }

    fn event(&mut self, kind: &str, body: Value) -> String {
        let mut data = Map::new();
        data.insert("type".into(), json!(kind));
        if let Value::Object(fields) = body {
            data.extend(fields);
        }
        data.insert("sequence_number".into(), json!(self.sequence));
        self.sequence += 1;
        format!("event: {kind}\ndata: {}\n\n", Value::Object(data))
    }

    fn start(&mut self, out: &mut Vec<String>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.response(Status::InProgress, Value::Null, Value::Null);
        out.push(self.event("response.created", json!({"response": response})));
        let response = self.response(Status::InProgress, Value::Null, Value::Null);
        out.push(self.event("response.in_progress", json!({"response": response})));
    }

    fn write_text(&mut self, kind: PartKind, text: &str, out: &mut Vec<String>) {
        // Role-only and empty chunks carry nothing and must not open an empty message.
        if text.is_empty() {
            return;
        }
        if !matches!(self.open, Some(OpenItem::Message { .. })) {
            self.close_item("completed", out);
            let id = item_id(&self.id, "msg", self.output.len());
            let item = json!({
                "type": "message", "id": id, "status": "in_progress", "role": "assistant",
                "content": []
            });
            out.push(self.event(
                "response.output_item.added",
                json!({"output_index": self.output.len(), "item": item}),
            ));
            self.open = Some(OpenItem::Message {
                id,
                parts: Vec::new(),
                current: None,
            });
        }
        let output_index = self.output.len();
        let Some(OpenItem::Message { id, parts, current }) = &mut self.open else {
            return;
        };
        let id = id.clone();
        let mut events = Vec::new();
        if current.as_ref().is_some_and(|(k, _)| *k != kind) {
            if let Some((k, t)) = current.take() {
                events.push(close_part(&id, output_index, parts.len(), k, t, parts));
            }
        }
        let content_index = parts.len();
        let (_, written) = current.get_or_insert_with(|| {
            events.push(vec![(
                "response.content_part.added",
                json!({
                    "item_id": id, "output_index": output_index, "content_index": content_index,
                    "part": part_json(kind, "")
                }),
            )]);
            (kind, String::new())
        });
        written.push_str(text);
        let delta = match kind {
            PartKind::Text => (
                "response.output_text.delta",
                json!({
                    "item_id": id, "output_index": output_index, "content_index": content_index,
                    "delta": text, "logprobs": []
                }),
            ),
            PartKind::Refusal => (
                "response.refusal.delta",
                json!({
                    "item_id": id, "output_index": output_index, "content_index": content_index,
                    "delta": text
                }),
            ),
        };
        events.push(vec![delta]);
        for (kind, body) in events.into_iter().flatten() {
            out.push(self.event(kind, body));
        }
    }

    fn write_call(&mut self, call: &Value, out: &mut Vec<String>) -> Result<(), TranslateError> {
        let chat_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let function = call.get("function");
        let fragment = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let is_open =
            matches!(&self.open, Some(OpenItem::Call { chat_index: i, .. }) if *i == chat_index);
        if !is_open {
            if self.seen_calls.contains(&chat_index) {
                if fragment.is_empty() {
                    return Ok(());
                }
                return Err(bad_upstream(
                    "the upstream streamed arguments for a tool call after the next one began",
                ));
            }
            self.seen_calls.push(chat_index);
            self.close_item("completed", out);
            let output_index = self.output.len();
            let id = item_id(&self.id, "fc", output_index);
            let call_id = call
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| format!("call_{id}"), str::to_owned);
            let name = function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let item = json!({
                "type": "function_call", "id": id, "call_id": call_id, "name": name,
                "arguments": "", "status": "in_progress"
            });
            out.push(self.event(
                "response.output_item.added",
                json!({"output_index": output_index, "item": item}),
            ));
            self.open = Some(OpenItem::Call {
                id,
                chat_index,
                call_id,
                name,
                arguments: String::new(),
            });
        }
        if fragment.is_empty() {
            return Ok(());
        }
        let output_index = self.output.len();
        if let Some(OpenItem::Call { id, arguments, .. }) = &mut self.open {
            arguments.push_str(fragment);
            let body = json!({"item_id": id, "output_index": output_index, "delta": fragment});
            out.push(self.event("response.function_call_arguments.delta", body));
        }
        Ok(())
    }

    /// Closes the open item (if any) with the given status and files it in `output`.
    fn close_item(&mut self, status: &str, out: &mut Vec<String>) {
        let output_index = self.output.len();
        let item = match self.open.take() {
            None => return,
            Some(OpenItem::Message {
                id,
                mut parts,
                current,
            }) => {
                if let Some((kind, text)) = current {
                    let index = parts.len();
                    for (k, body) in close_part(&id, output_index, index, kind, text, &mut parts) {
                        out.push(self.event(k, body));
                    }
                }
                json!({
                    "type": "message", "id": id, "status": status, "role": "assistant",
                    "content": parts
                })
            }
            Some(OpenItem::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            }) => {
                let body =
                    json!({"item_id": id, "output_index": output_index, "arguments": arguments});
                out.push(self.event("response.function_call_arguments.done", body));
                json!({
                    "type": "function_call", "id": id, "call_id": call_id, "name": name,
                    "arguments": arguments, "status": status
                })
            }
        };
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        ));
        self.output.push(item);
    }
}

fn part_json(kind: PartKind, text: &str) -> Value {
    match kind {
        PartKind::Text => {
            json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
        }
        PartKind::Refusal => json!({"type": "refusal", "refusal": text}),
    }
}

/// The events that finish a content part; the finished part is appended to `parts`.
fn close_part(
    item_id: &str,
    output_index: usize,
    content_index: usize,
    kind: PartKind,
    text: String,
    parts: &mut Vec<Value>,
) -> Vec<(&'static str, Value)> {
    let done = match kind {
        PartKind::Text => (
            "response.output_text.done",
            json!({
                "item_id": item_id, "output_index": output_index, "content_index": content_index,
                "text": text, "logprobs": []
            }),
        ),
        PartKind::Refusal => (
            "response.refusal.done",
            json!({
                "item_id": item_id, "output_index": output_index, "content_index": content_index,
                "refusal": text
            }),
        ),
    };
    let part = part_json(kind, &text);
    parts.push(part.clone());
    vec![
        done,
        (
            "response.content_part.done",
            json!({
                "item_id": item_id, "output_index": output_index, "content_index": content_index,
                "part": part
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translator() -> StreamTranslator {
        let req = json!({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "weather"}]});
        let Value::Object(req) = req else {
            panic!("not an object")
        };
        StreamTranslator::new("resp_abc", "gpt-4o", 1700, RequestEcho::from_request(&req))
    }

    /// Splits an SSE event into its name and data, checking the name repeats the data's type.
    fn parse(ev: &str) -> (String, Value) {
        let rest = ev.strip_prefix("event: ").unwrap();
        let (name, data) = rest.split_once("\ndata: ").unwrap();
        let data = data.strip_suffix("\n\n").unwrap();
        assert!(!data.contains('\n'), "data spans lines: {data}");
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], json!(name), "event name and type differ");
        (name.to_owned(), v)
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn feed(t: &mut StreamTranslator, chunks: &[Value]) -> Vec<(String, Value)> {
        let mut events = Vec::new();
        for c in chunks {
            events.extend(t.on_chunk(c).unwrap().iter().map(|e| parse(e)));
        }
        events
    }

    #[test]
    fn text_then_two_tool_calls_in_order() {
        let mut t = translator();
        let mut events = feed(
            &mut t,
            &[
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Hel"}), Value::Null),
                chunk(json!({"content": "lo"}), Value::Null),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                            "function": {"name": "weather", "arguments": ""}}]}),
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
                                            "function": {"name": "clock", "arguments": "{}"}}]}),
                    Value::Null,
                ),
                chunk(json!({}), json!("tool_calls")),
            ],
        );
        let usage_only = json!({"id": "chatcmpl-abc", "object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
                      "completion_tokens_details": {"reasoning_tokens": 5}}});
        assert!(t.on_chunk(&usage_only).unwrap().is_empty());
        events.extend(t.finish(None).iter().map(|e| parse(e)));

        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, (_, v)) in events.iter().enumerate() {
            assert_eq!(v["sequence_number"], json!(i), "event {i}: {v}");
        }
        let ev = |i: usize| {
            let mut v = events[i].1.clone();
            let m = v.as_object_mut().unwrap();
            m.remove("type");
            m.remove("sequence_number");
            v
        };

        let created = &events[0].1["response"];
        assert_eq!(created["id"], json!("resp_abc"));
        assert_eq!(created["status"], json!("in_progress"));
        assert_eq!(created["output"], json!([]));
        assert_eq!(created["model"], json!("gpt-4o"));
        assert_eq!(
            created["tools"],
            json!([{"type": "function", "name": "weather"}])
        );
        assert_eq!(events[1].1["response"]["status"], json!("in_progress"));

        assert_eq!(
            ev(2),
            json!({"output_index": 0, "item": {"type": "message", "id": "msg_abc_0",
                   "status": "in_progress", "role": "assistant", "content": []}})
        );
        assert_eq!(
            ev(3),
            json!({"item_id": "msg_abc_0", "output_index": 0, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        );
        assert_eq!(
            ev(4),
            json!({"item_id": "msg_abc_0", "output_index": 0, "content_index": 0, "delta": "Hel", "logprobs": []})
        );
        assert_eq!(ev(5)["delta"], json!("lo"));
        assert_eq!(
            ev(6),
            json!({"item_id": "msg_abc_0", "output_index": 0, "content_index": 0, "text": "Hello", "logprobs": []})
        );
        let text_part =
            json!({"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []});
        assert_eq!(
            ev(7),
            json!({"item_id": "msg_abc_0", "output_index": 0, "content_index": 0, "part": text_part})
        );
        let message = json!({"type": "message", "id": "msg_abc_0", "status": "completed",
                             "role": "assistant", "content": [text_part]});
        assert_eq!(ev(8), json!({"output_index": 0, "item": message}));
        assert_eq!(
            ev(9),
            json!({"output_index": 1, "item": {"type": "function_call", "id": "fc_abc_1", "call_id": "call_a",
                   "name": "weather", "arguments": "", "status": "in_progress"}})
        );
        assert_eq!(
            ev(10),
            json!({"item_id": "fc_abc_1", "output_index": 1, "delta": "{\"city\":"})
        );
        assert_eq!(ev(11)["delta"], json!("\"Paris\"}"));
        assert_eq!(
            ev(12),
            json!({"item_id": "fc_abc_1", "output_index": 1, "arguments": "{\"city\":\"Paris\"}"})
        );
        let call_a = json!({"type": "function_call", "id": "fc_abc_1", "call_id": "call_a", "name": "weather",
                            "arguments": "{\"city\":\"Paris\"}", "status": "completed"});
        assert_eq!(ev(13), json!({"output_index": 1, "item": call_a}));
        assert_eq!(
            ev(14),
            json!({"output_index": 2, "item": {"type": "function_call", "id": "fc_abc_2", "call_id": "call_b",
                   "name": "clock", "arguments": "", "status": "in_progress"}})
        );
        assert_eq!(
            ev(15),
            json!({"item_id": "fc_abc_2", "output_index": 2, "delta": "{}"})
        );
        assert_eq!(
            ev(16),
            json!({"item_id": "fc_abc_2", "output_index": 2, "arguments": "{}"})
        );
        let call_b = json!({"type": "function_call", "id": "fc_abc_2", "call_id": "call_b", "name": "clock",
                            "arguments": "{}", "status": "completed"});
        assert_eq!(ev(17), json!({"output_index": 2, "item": call_b}));

        let done = &events[18].1["response"];
        assert_eq!(done["id"], json!("resp_abc"));
        assert_eq!(done["status"], json!("completed"));
        assert_eq!(done["incomplete_details"], Value::Null);
        assert_eq!(done["output"], json!([message, call_a, call_b]));
        assert_eq!(
            done["usage"],
            json!({"input_tokens": 30, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                   "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 5}, "total_tokens": 42})
        );

        // The stream is over: nothing more comes out.
        assert!(t.finish(None).is_empty());
        assert!(t
            .on_chunk(&chunk(json!({"content": "late"}), Value::Null))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn usage_only_chunk_is_remembered_silently() {
        let mut t = translator();
        let events = feed(&mut t, &[chunk(json!({"content": "Hi"}), json!("stop"))]);
        assert_eq!(events.len(), 5);
        let usage_only = json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}});
        assert!(t.on_chunk(&usage_only).unwrap().is_empty());
        let last = t.finish(None);
        let names: Vec<String> = last.iter().map(|e| parse(e).0).collect();
        assert_eq!(
            names,
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let (_, done) = parse(&last[3]);
        assert_eq!(done["sequence_number"], json!(8));
        assert_eq!(done["response"]["usage"]["total_tokens"], json!(4));
        assert_eq!(done["response"]["usage"]["input_tokens"], json!(3));
    }

    #[test]
    fn gateway_usage_wins_over_the_upstream_chunk() {
        let mut t = translator();
        feed(&mut t, &[chunk(json!({"content": "Hi"}), json!("stop"))]);
        let counts = Usage {
            prompt_tokens: 9,
            completion_tokens: 2,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
            estimated: true,
        };
        let last = t.finish(Some(&counts));
        let (_, done) = parse(last.last().unwrap());
        assert_eq!(done["response"]["usage"]["input_tokens"], json!(9));
        assert_eq!(done["response"]["usage"]["total_tokens"], json!(11));
    }

    #[test]
    fn length_finish_ends_incomplete() {
        let mut t = translator();
        feed(
            &mut t,
            &[
                chunk(
                    json!({"role": "assistant", "content": "Once upon"}),
                    Value::Null,
                ),
                chunk(json!({"content": " a"}), json!("length")),
            ],
        );
        let last: Vec<(String, Value)> = t.finish(None).iter().map(|e| parse(e)).collect();
        let (name, item_done) = &last[2];
        assert_eq!(name, "response.output_item.done");
        assert_eq!(item_done["item"]["status"], json!("incomplete"));
        let (name, done) = &last[3];
        assert_eq!(name, "response.incomplete");
        assert_eq!(done["response"]["status"], json!("incomplete"));
        assert_eq!(
            done["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(
            done["response"]["output"][0]["content"][0]["text"],
            json!("Once upon a")
        );
        assert_eq!(done["response"]["usage"], Value::Null);
    }

    #[test]
    fn empty_stream_still_opens_and_completes() {
        let mut t = translator();
        let events: Vec<(String, Value)> = t.finish(None).iter().map(|e| parse(e)).collect();
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.completed"
            ]
        );
        assert_eq!(events[2].1["response"]["output"], json!([]));
    }

    #[test]
    fn refusal_streams_as_its_own_part() {
        let mut t = translator();
        let mut events = feed(
            &mut t,
            &[
                chunk(json!({"content": "Well"}), Value::Null),
                chunk(json!({"refusal": "No."}), json!("stop")),
            ],
        );
        events.extend(t.finish(None).iter().map(|e| parse(e)));
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.content_part.added",
                "response.refusal.delta",
                "response.refusal.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert_eq!(events[7].1["content_index"], json!(1));
        assert_eq!(
            events[7].1["part"],
            json!({"type": "refusal", "refusal": ""})
        );
        assert_eq!(events[9].1["refusal"], json!("No."));
        assert_eq!(
            events[12].1["response"]["output"][0]["content"],
            json!([
                {"type": "output_text", "text": "Well", "annotations": [], "logprobs": []},
                {"type": "refusal", "refusal": "No."}
            ])
        );
    }

    #[test]
    fn text_after_a_tool_call_opens_a_new_message() {
        let mut t = translator();
        let mut events = feed(
            &mut t,
            &[
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}]}),
                    Value::Null,
                ),
                chunk(json!({"content": "done"}), json!("stop")),
            ],
        );
        events.extend(t.finish(None).iter().map(|e| parse(e)));
        let output = &events.last().unwrap().1["response"]["output"];
        assert_eq!(output[0]["id"], json!("fc_abc_0"));
        assert_eq!(output[1]["id"], json!("msg_abc_1"));
        assert_eq!(output[1]["content"][0]["text"], json!("done"));
    }

    #[test]
    fn late_arguments_for_a_closed_call_are_an_upstream_error() {
        let mut t = translator();
        feed(
            &mut t,
            &[
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{"}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "g", "arguments": "{}"}}]}),
                    Value::Null,
                ),
            ],
        );
        let late = chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
            Value::Null,
        );
        assert!(matches!(
            t.on_chunk(&late),
            Err(TranslateError::BadUpstream(_))
        ));
        // An empty fragment for it is harmless.
        let empty = chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}),
            Value::Null,
        );
        assert!(t.on_chunk(&empty).unwrap().is_empty());
    }

    #[test]
    fn in_band_error_chunk_is_an_upstream_error() {
        let mut t = translator();
        let err = json!({"error": {"message": "overloaded", "code": 529}});
        match t.on_chunk(&err) {
            Err(TranslateError::BadUpstream(m)) => assert_eq!(m, "overloaded"),
            other => panic!("expected BadUpstream, got {other:?}"),
        }
    }

    #[test]
    fn failure_mid_stream_sends_error_then_failed() {
        let mut t = translator();
        let events = feed(
            &mut t,
            &[
                chunk(json!({"content": "Hi"}), Value::Null),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{"}}]}),
                    Value::Null,
                ),
            ],
        );
        let n = events.len();
        let tail: Vec<(String, Value)> = t
            .fail("server_error", "the upstream connection was lost")
            .iter()
            .map(|e| parse(e))
            .collect();
        assert_eq!(tail[0].0, "error");
        assert_eq!(
            tail[0].1,
            json!({"type": "error", "code": "server_error", "message": "the upstream connection was lost",
                   "param": null, "sequence_number": n})
        );
        assert_eq!(tail[1].0, "response.failed");
        assert_eq!(tail[1].1["sequence_number"], json!(n + 1));
        let resp = &tail[1].1["response"];
        assert_eq!(resp["status"], json!("failed"));
        assert_eq!(
            resp["error"],
            json!({"code": "server_error", "message": "the upstream connection was lost"})
        );
        // The finished message is kept, the half-written call is not.
        assert_eq!(resp["output"].as_array().unwrap().len(), 1);
        assert_eq!(resp["output"][0]["type"], json!("message"));
        assert!(t.finish(None).is_empty());
        assert!(t.fail("server_error", "again").is_empty());
    }
}
