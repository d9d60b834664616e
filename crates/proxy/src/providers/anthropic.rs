//! Translation between the OpenAI chat-completions wire format and Anthropic's Messages API.
//!
//! Kept free of HTTP and gateway types so it can be tested on literal JSON alone.

use serde_json::{json, Map, Value};

use super::translate::{bad_request, bad_upstream};
pub use super::translate::{TranslateError, Usage};

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

/// Message content while building: a plain string is kept as-is unless a merge forces blocks.
enum Content {
    Text(String),
    Blocks(Vec<Value>),
}

impl Content {
    fn into_blocks(self) -> Vec<Value> {
        match self {
            // Anthropic rejects empty text blocks, so an empty string contributes nothing.
            Content::Text(s) if s.is_empty() => Vec::new(),
            Content::Text(s) => vec![json!({"type": "text", "text": s})],
            Content::Blocks(b) => b,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Content::Text(s) => Value::String(s),
            Content::Blocks(b) => Value::Array(b),
        }
    }
}

/// Appends a message, merging into the previous one when the role repeats,
/// because Anthropic requires strict user/assistant alternation.
fn push_message(out: &mut Vec<(&'static str, Content)>, role: &'static str, content: Content) {
    if let Some((last_role, last)) = out.last_mut() {
        if *last_role == role {
            let prev = std::mem::replace(last, Content::Blocks(Vec::new()));
            let mut blocks = prev.into_blocks();
            blocks.extend(content.into_blocks());
            *last = Content::Blocks(blocks);
            return;
        }
    }
    out.push((role, content));
}

/// Collects the text of a system/developer message (string or array of text parts).
fn system_text(content: Option<&Value>) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(text_of_part(part)?),
                    _ => return Err(bad_request("system messages may only contain text parts")),
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(bad_request(
            "message content must be a string or an array of content parts",
        )),
    }
}

fn text_of_part(part: &Value) -> Result<String, TranslateError> {
    part.get("text")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| bad_request("text content part is missing a string 'text'"))
}

fn image_block(part: &Value) -> Result<Value, TranslateError> {
    // OpenAI allows both `"image_url": "..."` (older clients) and `{"url": "..."}`.
    let url = match part.get("image_url") {
        Some(Value::String(s)) => s.as_str(),
        Some(obj) => obj
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("image_url content part is missing 'url'"))?,
        None => return Err(bad_request("image_url content part is missing 'image_url'")),
    };
    if let Some(rest) = url.strip_prefix("data:") {
        let (header, data) = rest
            .split_once(',')
            .ok_or_else(|| bad_request("malformed data URL in image_url"))?;
        let media_type = header
            .strip_suffix(";base64")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| bad_request("image data URLs must be base64 with a media type"))?;
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data}
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(bad_request(
        "image_url must be an http(s) URL or a base64 data URL",
    ))
}

/// Converts user/tool content (string or parts) to Anthropic content.
fn user_content(content: Option<&Value>, what: &str) -> Result<Content, TranslateError> {
    match content {
        Some(Value::String(s)) => Ok(Content::Text(s.clone())),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = text_of_part(part)?;
                        if !text.is_empty() {
                            blocks.push(json!({"type": "text", "text": text}));
                        }
                    }
                    Some("image_url") => blocks.push(image_block(part)?),
                    Some(other) => {
                        return Err(bad_request(format!(
                            "unsupported content part type '{other}' for Anthropic models"
                        )))
                    }
                    None => return Err(bad_request("content part is missing 'type'")),
                }
            }
            Ok(Content::Blocks(blocks))
        }
        _ => Err(bad_request(format!(
            "{what} content must be a string or an array of content parts"
        ))),
    }
}

fn assistant_content(msg: &Value) -> Result<Content, TranslateError> {
    let mut blocks = match msg.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => {
            let tool_calls_present = msg
                .get("tool_calls")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if !tool_calls_present {
                return Ok(Content::Text(s.clone()));
            }
            Content::Text(s.clone()).into_blocks()
        }
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                // A refusal is what the assistant said, so it is replayed as text.
                let text = match part.get("type").and_then(Value::as_str) {
                    Some("text") => text_of_part(part)?,
                    Some("refusal") => part
                        .get("refusal")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    _ => {
                        return Err(bad_request(
                            "assistant content parts must be of type 'text'",
                        ))
                    }
                };
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
            }
            blocks
        }
        Some(_) => {
            return Err(bad_request(
                "assistant content must be a string, an array or null",
            ))
        }
    };

    if let Some(calls) = msg.get("tool_calls").filter(|v| !v.is_null()) {
        let calls = calls
            .as_array()
            .ok_or_else(|| bad_request("tool_calls must be an array"))?;
        for call in calls {
            blocks.push(tool_use_block(call)?);
        }
    }
    Ok(Content::Blocks(blocks))
}

fn tool_use_block(call: &Value) -> Result<Value, TranslateError> {
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("tool_calls[].id must be a string"))?;
    let function = call
        .get("function")
        .ok_or_else(|| bad_request("tool_calls[].function is required"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("tool_calls[].function.name must be a string"))?;
    let input = match function.get("arguments") {
        // Some clients send "" (or nothing) for a call without arguments.
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| {
            bad_request(format!(
                "tool call '{id}' has arguments that are not valid JSON: {e}"
            ))
        })?,
        Some(_) => {
            return Err(bad_request(
                "tool_calls[].function.arguments must be a JSON string",
            ))
        }
    };
    // Anthropic's tool_use.input must be an object.
    if !input.is_object() {
        return Err(bad_request(format!(
            "tool call '{id}' arguments must be a JSON object"
        )));
    }
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

fn tool_result_block(msg: &Value) -> Result<Value, TranslateError> {
    let id = msg
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("tool messages require a string 'tool_call_id'"))?;
    let content = user_content(msg.get("content"), "tool message")?.into_value();
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

fn convert_tools(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| bad_request("tools must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    for tool in tools {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") | None => {}
            Some(other) => {
                return Err(bad_request(format!(
                    "tool type '{other}' is not supported for Anthropic models"
                )))
            }
        }
        let function = tool
            .get("function")
            .ok_or_else(|| bad_request("tools[].function is required"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("tools[].function.name must be a string"))?;
        // Anthropic requires input_schema; OpenAI allows omitting parameters for no-arg tools.
        let schema = match function.get("parameters") {
            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
            Some(p) => p.clone(),
        };
        let mut t = Map::new();
        t.insert("name".into(), json!(name));
        if let Some(desc) = function.get("description").and_then(Value::as_str) {
            t.insert("description".into(), json!(desc));
        }
        t.insert("input_schema".into(), schema);
        out.push(Value::Object(t));
    }
    Ok(out)
}

/// Returns None when no tool_choice should be sent.
fn convert_tool_choice(choice: &Value, has_tools: bool) -> Result<Option<Value>, TranslateError> {
    let mapped = match choice {
        Value::Null => return Ok(None),
        Value::String(s) => match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            other => return Err(bad_request(format!("unknown tool_choice '{other}'"))),
        },
        Value::Object(_) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("tool_choice.function.name must be a string"))?;
            json!({"type": "tool", "name": name})
        }
        _ => return Err(bad_request("tool_choice must be a string or an object")),
    };
    if !has_tools {
        // auto/none without tools are no-ops; forcing a call without tools is a caller error.
        return match mapped.get("type").and_then(Value::as_str) {
            Some("auto") | Some("none") => Ok(None),
            _ => Err(bad_request(
                "tool_choice requires a non-empty 'tools' array",
            )),
        };
    }
    Ok(Some(mapped))
}

fn positive_int(req: &Map<String, Value>, key: &str) -> Result<Option<u64>, TranslateError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(bad_request(format!("{key} must be a positive integer"))),
        },
    }
}

fn copy_number(
    req: &Map<String, Value>,
    key: &str,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.is_number() => {
            out.insert(key.into(), v.clone());
            Ok(())
        }
        Some(_) => Err(bad_request(format!("{key} must be a number"))),
    }
}

/// OpenAI chat-completions request body (already parsed, `model` already removed or ignored) ->
/// Anthropic Messages API request body. `upstream_model` is the Anthropic model id.
/// `default_max_tokens` is used when the caller gave neither max_tokens nor max_completion_tokens
/// (Anthropic requires max_tokens).
pub fn to_anthropic_request(
    req: &Map<String, Value>,
    upstream_model: &str,
    default_max_tokens: u64,
    stream: bool,
) -> Result<Value, TranslateError> {
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad_request("messages must be a non-empty array"))?;

    if let Some(n) = req.get("n").filter(|v| !v.is_null()) {
        match n.as_u64() {
            Some(1) => {}
            Some(0) | None => return Err(bad_request("n must be a positive integer")),
            Some(_) => return Err(bad_request("n > 1 is not supported for Anthropic models")),
        }
    }

    // Plain-text response_format is the default anyway; JSON modes would be silently ignored
    // by Anthropic, so refuse them rather than return non-JSON to a caller expecting JSON.
    if let Some(rf) = req.get("response_format").filter(|v| !v.is_null()) {
        match rf.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some(other) => {
                return Err(bad_request(format!(
                    "response_format type '{other}' is not supported for Anthropic models"
                )))
            }
            None => return Err(bad_request("response_format.type must be a string")),
        }
    }

    let mut system_parts: Vec<String> = Vec::new();
    let mut out_msgs: Vec<(&'static str, Content)> = Vec::new();
    for msg in messages {
        let role = msg
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("every message needs a string 'role'"))?;
        match role {
            "system" | "developer" => {
                let text = system_text(msg.get("content"))?;
                if !text.is_empty() {
                    system_parts.push(text);
                }
            }
            "user" => push_message(
                &mut out_msgs,
                "user",
                user_content(msg.get("content"), "user message")?,
            ),
            "assistant" => push_message(&mut out_msgs, "assistant", assistant_content(msg)?),
            "tool" => push_message(
                &mut out_msgs,
                "user",
                Content::Blocks(vec![tool_result_block(msg)?]),
            ),
            other => {
                return Err(bad_request(format!(
                    "message role '{other}' is not supported for Anthropic models"
                )))
            }
        }
    }
    if out_msgs.is_empty() {
        return Err(bad_request(
            "messages must contain at least one user or assistant message",
        ));
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    out.insert(
        "messages".into(),
        Value::Array(
            out_msgs
                .into_iter()
                .map(|(role, c)| json!({"role": role, "content": c.into_value()}))
                .collect(),
        ),
    );
    if !system_parts.is_empty() {
        out.insert("system".into(), json!(system_parts.join("\n")));
    }

    // max_completion_tokens is OpenAI's newer name and wins when both are given.
    let max_tokens = match positive_int(req, "max_completion_tokens")? {
        Some(n) => n,
        None => positive_int(req, "max_tokens")?.unwrap_or(default_max_tokens),
    };
    out.insert("max_tokens".into(), json!(max_tokens));

    copy_number(req, "temperature", &mut out)?;
    copy_number(req, "top_p", &mut out)?;
    if let Some(k) = positive_int(req, "top_k")? {
        out.insert("top_k".into(), json!(k));
    }

    match req.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            if !a.iter().all(Value::is_string) {
                return Err(bad_request("stop must be a string or an array of strings"));
            }
            if !a.is_empty() {
                out.insert("stop_sequences".into(), Value::Array(a.clone()));
            }
        }
        Some(_) => return Err(bad_request("stop must be a string or an array of strings")),
    }

    if stream {
        out.insert("stream".into(), json!(true));
    }

    if let Some(user) = req.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }

    let tools = match req.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(t) => convert_tools(t)?,
    };
    if let Some(choice) = req.get("tool_choice") {
        if let Some(c) = convert_tool_choice(choice, !tools.is_empty())? {
            out.insert("tool_choice".into(), c);
        }
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }

    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------

fn map_stop_reason(reason: Option<&str>) -> Value {
    match reason {
        None => Value::Null,
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        // end_turn, stop_sequence, and anything newer: the model stopped on its own.
        Some(_) => json!("stop"),
    }
}

/// Overwrites the counts present in an Anthropic usage object, leaving absent ones untouched,
/// because message_delta repeats only some of them.
fn apply_usage(
    usage: &Value,
    input: &mut u64,
    output: &mut u64,
    cache_read: &mut u64,
    cache_creation: &mut u64,
) {
    let set = |key: &str, slot: &mut u64| {
        if let Some(n) = usage.get(key).and_then(Value::as_u64) {
            *slot = n;
        }
    };
    set("input_tokens", input);
    set("output_tokens", output);
    set("cache_read_input_tokens", cache_read);
    set("cache_creation_input_tokens", cache_creation);
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens}
    })
}

/// Anthropic non-streaming Messages response -> OpenAI `chat.completion` object, plus usage.
/// `id` is the id to put in the response (e.g. "chatcmpl-…"), `model` the name the client asked for, `created` unix seconds.
pub fn from_anthropic_response(
    resp: &Value,
    id: &str,
    model: &str,
    created: i64,
) -> Result<(Value, Usage), TranslateError> {
    let blocks = resp
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_upstream("Anthropic response has no 'content' array"))?;

    let mut text = String::new();
    let mut has_text = false;
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                has_text = true;
                text.push_str(
                    block
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
            }
            Some("tool_use") => {
                let id = block
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_upstream("Anthropic tool_use block has no id"))?;
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_upstream("Anthropic tool_use block has no name"))?;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()}
                }));
            }
            // Thinking and other block kinds have no OpenAI chat equivalent.
            _ => {}
        }
    }

    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert(
        "content".into(),
        if has_text { json!(text) } else { Value::Null },
    );
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }

    let (mut input, mut output, mut cache_read, mut cache_creation) = (0, 0, 0, 0);
    if let Some(u) = resp.get("usage") {
        apply_usage(
            u,
            &mut input,
            &mut output,
            &mut cache_read,
            &mut cache_creation,
        );
    }
    let usage = Usage {
        prompt_tokens: input + cache_read + cache_creation,
        completion_tokens: output,
        cache_read_input_tokens: cache_read,
        cache_creation_input_tokens: cache_creation,
    };

    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": Value::Object(message),
            "finish_reason": map_stop_reason(resp.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": usage_json(&usage),
    });
    Ok((body, usage))
}

// ---------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------

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
                        // Anthropic often opens with an empty fragment; it carries nothing.
                        if !partial.is_empty() {
                            let tool_index = data
                                .get("index")
                                .and_then(Value::as_u64)
                                .and_then(|b| self.tool_index(b))
                                .ok_or_else(|| {
                                    bad_upstream("Anthropic input_json_delta for an unknown block")
                                })?;
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

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

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

/// Map an Anthropic error response (status + body) to (message, OpenAI error `type`).
pub fn map_error(status: u16, body: &[u8]) -> (String, &'static str) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let message = err.and_then(|e| e.get("message")).and_then(Value::as_str);
    let kind = err.and_then(|e| e.get("type")).and_then(Value::as_str);

    let openai_type = match kind {
        Some("invalid_request_error") | Some("request_too_large") => "invalid_request_error",
        Some("authentication_error") => "authentication_error",
        Some("permission_error") | Some("billing_error") => "permission_error",
        Some("not_found_error") => "not_found_error",
        Some("rate_limit_error") => "rate_limit_error",
        Some("overloaded_error") | Some("api_error") | Some("timeout_error") => "api_error",
        _ => error_type_for_status(status),
    };

    match message {
        Some(m) => (m.to_owned(), openai_type),
        None => {
            // Bodies can be large HTML error pages; cap what reaches the client.
            let shown = &body[..body.len().min(500)];
            let text = String::from_utf8_lossy(shown);
            let text = text.trim();
            let msg = if text.is_empty() {
                format!("Anthropic returned HTTP {status}")
            } else {
                format!("Anthropic returned HTTP {status}: {text}")
            };
            (msg, openai_type)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test request must be an object"),
        }
    }

    fn bad_request_msg(r: Result<Value, TranslateError>) -> String {
        match r {
            Err(TranslateError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    fn parse(chunks: &[String]) -> Vec<Value> {
        chunks
            .iter()
            .map(|c| serde_json::from_str(c).unwrap())
            .collect()
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "claude",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        })
    }

    // ---- request ----

    #[test]
    fn missing_or_empty_messages_rejected() {
        for body in [
            json!({}),
            json!({"messages": []}),
            json!({"messages": "hi"}),
        ] {
            let msg = bad_request_msg(to_anthropic_request(&req(body), "m", 1024, false));
            assert_eq!(msg, "messages must be a non-empty array");
        }
    }

    #[test]
    fn only_system_messages_rejected() {
        let r = req(json!({"messages": [{"role": "system", "content": "x"}]}));
        let msg = bad_request_msg(to_anthropic_request(&r, "m", 1024, false));
        assert_eq!(
            msg,
            "messages must contain at least one user or assistant message"
        );
    }

    #[test]
    fn basic_request_with_params_and_dropped_fields() {
        let r = req(json!({
            "model": "my-alias",
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "stop": "END",
            "user": "u-42",
            "n": 1,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.2,
            "logit_bias": {"50256": -100},
            "seed": 7,
            "logprobs": true,
            "top_logprobs": 2,
            "response_format": {"type": "text"},
            "stream_options": {"include_usage": true},
            "parallel_tool_calls": false,
            "some_unknown_field": {"x": 1}
        }));
        let out = to_anthropic_request(&r, "claude-3-5-sonnet-20241022", 4096, true).unwrap();
        assert_eq!(
            out,
            json!({
                "model": "claude-3-5-sonnet-20241022",
                "messages": [{"role": "user", "content": "Hello"}],
                "max_tokens": 50,
                "temperature": 0.5,
                "top_p": 0.9,
                "top_k": 40,
                "stop_sequences": ["END"],
                "stream": true,
                "metadata": {"user_id": "u-42"}
            })
        );
    }

    #[test]
    fn default_max_tokens_and_no_stream_key() {
        let r = req(json!({"messages": [{"role": "user", "content": "Hi"}], "stream": true}));
        let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
        assert_eq!(
            out,
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 1024
            })
        );
    }

    #[test]
    fn max_completion_tokens_wins_and_stop_array() {
        let r = req(json!({
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "stop": ["a", "b"]
        }));
        let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
        assert_eq!(out["max_tokens"], json!(20));
        assert_eq!(out["stop_sequences"], json!(["a", "b"]));

        let r = req(json!({
            "messages": [{"role": "user", "content": "Hi"}],
            "max_completion_tokens": 33
        }));
        let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
        assert_eq!(out["max_tokens"], json!(33));
    }

    #[test]
    fn invalid_scalar_params_rejected() {
        let base = |k: &str, v: Value| {
            let mut r = req(json!({"messages": [{"role": "user", "content": "Hi"}]}));
            r.insert(k.into(), v);
            to_anthropic_request(&r, "m", 1024, false)
        };
        assert_eq!(
            bad_request_msg(base("max_tokens", json!(0))),
            "max_tokens must be a positive integer"
        );
        assert_eq!(
            bad_request_msg(base("temperature", json!("hot"))),
            "temperature must be a number"
        );
        assert_eq!(
            bad_request_msg(base("stop", json!([1]))),
            "stop must be a string or an array of strings"
        );
    }

    #[test]
    fn n_greater_than_one_rejected() {
        let r = req(json!({"messages": [{"role": "user", "content": "Hi"}], "n": 2}));
        assert_eq!(
            bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
            "n > 1 is not supported for Anthropic models"
        );
    }

    #[test]
    fn json_response_format_rejected() {
        let r = req(json!({
            "messages": [{"role": "user", "content": "Hi"}],
            "response_format": {"type": "json_object"}
        }));
        assert_eq!(
            bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
            "response_format type 'json_object' is not supported for Anthropic models"
        );
    }

    #[test]
    fn system_and_developer_messages_extracted() {
        let r = req(json!({"messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": [
                {"type": "text", "text": "Be brief."},
                {"type": "text", "text": "Use English."}
            ]},
            {"role": "developer", "content": "No emojis."}
        ]}));
        let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
        assert_eq!(
            out,
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": "Hi"}],
                "system": "You are helpful.\nBe brief.\nUse English.\nNo emojis.",
                "max_tokens": 1024
            })
        );
    }

    #[test]
    fn system_with_image_rejected() {
        let r = req(json!({"messages": [
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "user", "content": "Hi"}
        ]}));
        assert_eq!(
            bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
            "system messages may only contain text parts"
        );
    }

    #[test]
    fn image_blocks() {
        let r = req(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}
        ]}]}));
        let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
            ]}])
        );
    }

    #[test]
    fn bad_image_urls_rejected() {
        for url in ["ftp://x/y.png", "data:image/png,abc", "data:;base64,abc"] {
            let r = req(json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}
            ]}]}));
            assert!(matches!(
                to_anthropic_request(&r, "m", 1024, false),
                Err(TranslateError::BadRequest(_))
            ));
        }
    }

    #[test]
    fn unsupported_part_and_role_rejected() {
        let r = req(json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}
        ]}]}));
        assert_eq!(
            bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
            "unsupported content part type 'input_audio' for Anthropic models"
        );
        let r = req(json!({"messages": [{"role": "function", "content": "x", "name": "f"}]}));
        assert_eq!(
            bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
            "message role 'function' is not supported for Anthropic models"
        );
    }

    #[test]
    fn tool_calls_and_results() {
        let r = req(json!({"messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
            {"role": "user", "content": "Thanks"}
        ]}));
        let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
                    {"type": "text", "text": "Thanks"}
                ]}
            ])
        );
    }

    #[test]
    fn assistant_null_content_and_empty_arguments() {
        let r = req(json!({"messages": [
            {"role": "user", "content": "time?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "noon"}
        ]}));
        let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
        assert_eq!(
            out["messages"][1],
            json!({"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "now", "input": {}}
            ]})
        );
    }

    #[test]
    fn unparsable_tool_arguments_rejected() {
        let r = req(json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
            ]}
        ]}));
        let msg = bad_request_msg(to_anthropic_request(&r, "m", 1024, false));
        assert!(msg.starts_with("tool call 'call_1' has arguments that are not valid JSON"));

        let r = req(json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
            ]}
        ]}));
        assert_eq!(
            bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
            "tool call 'call_1' arguments must be a JSON object"
        );
    }

    #[test]
    fn tool_message_without_id_rejected() {
        let r = req(json!({"messages": [{"role": "tool", "content": "x"}]}));
        assert_eq!(
            bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
            "tool messages require a string 'tool_call_id'"
        );
    }

    #[test]
    fn consecutive_same_role_merged() {
        let r = req(json!({"messages": [
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "three"}
        ]}));
        let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "one"},
                    {"type": "text", "text": "two"}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "a"},
                    {"type": "text", "text": "b"}
                ]},
                {"role": "user", "content": "three"}
            ])
        );
    }

    fn with_tools(choice: Value) -> Result<Value, TranslateError> {
        let r = req(json!({
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [
                {"type": "function", "function": {
                    "name": "get_weather",
                    "description": "Get weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
                }},
                {"type": "function", "function": {"name": "now"}}
            ],
            "tool_choice": choice
        }));
        to_anthropic_request(&r, "m", 1024, false)
    }

    #[test]
    fn tools_translated() {
        let out = with_tools(Value::Null).unwrap();
        assert_eq!(
            out["tools"],
            json!([
                {
                    "name": "get_weather",
                    "description": "Get weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
                },
                {"name": "now", "input_schema": {"type": "object", "properties": {}}}
            ])
        );
        assert!(out.get("tool_choice").is_none());
    }

    #[test]
    fn tool_choice_variants() {
        let cases = [
            (json!("auto"), json!({"type": "auto"})),
            (json!("required"), json!({"type": "any"})),
            (json!("none"), json!({"type": "none"})),
            (
                json!({"type": "function", "function": {"name": "now"}}),
                json!({"type": "tool", "name": "now"}),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(with_tools(input).unwrap()["tool_choice"], expected);
        }
        assert_eq!(
            bad_request_msg(with_tools(json!("sometimes"))),
            "unknown tool_choice 'sometimes'"
        );
    }

    #[test]
    fn tool_choice_without_tools() {
        let r =
            req(json!({"messages": [{"role": "user", "content": "Hi"}], "tool_choice": "none"}));
        let out = to_anthropic_request(&r, "m", 1024, false).unwrap();
        assert!(out.get("tool_choice").is_none());
        let r = req(
            json!({"messages": [{"role": "user", "content": "Hi"}], "tool_choice": "required"}),
        );
        assert_eq!(
            bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
            "tool_choice requires a non-empty 'tools' array"
        );
    }

    #[test]
    fn non_function_tool_rejected() {
        let r = req(json!({
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [{"type": "web_search"}]
        }));
        assert_eq!(
            bad_request_msg(to_anthropic_request(&r, "m", 1024, false)),
            "tool type 'web_search' is not supported for Anthropic models"
        );
    }

    // ---- response ----

    #[test]
    fn text_response() {
        let resp = json!({
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-sonnet-20241022",
            "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}
        });
        let (body, usage) =
            from_anthropic_response(&resp, "chatcmpl-1", "claude", 1700000000).unwrap();
        assert_eq!(
            body,
            json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1700000000,
                "model": "claude",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello world"},
                    "finish_reason": "stop"
                }],
                "usage": {
                    "prompt_tokens": 130,
                    "completion_tokens": 5,
                    "total_tokens": 135,
                    "prompt_tokens_details": {"cached_tokens": 100}
                }
            })
        );
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 130,
                completion_tokens: 5,
                cache_read_input_tokens: 100,
                cache_creation_input_tokens: 20
            }
        );
    }

    #[test]
    fn tool_use_response() {
        let resp = json!({
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 7, "output_tokens": 3}
        });
        let (body, usage) = from_anthropic_response(&resp, "chatcmpl-2", "claude", 1).unwrap();
        assert_eq!(
            body["choices"],
            json!([{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
                    }]
                },
                "finish_reason": "tool_calls"
            }])
        );
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "prompt_tokens_details": {"cached_tokens": 0}})
        );
        assert_eq!(usage.prompt_tokens, 7);
    }

    #[test]
    fn stop_reason_mapping() {
        for (reason, expected) in [
            (json!("end_turn"), json!("stop")),
            (json!("stop_sequence"), json!("stop")),
            (json!("max_tokens"), json!("length")),
            (json!("tool_use"), json!("tool_calls")),
            (json!(null), json!(null)),
        ] {
            let resp = json!({"content": [], "stop_reason": reason, "usage": {}});
            let (body, _) = from_anthropic_response(&resp, "i", "m", 0).unwrap();
            assert_eq!(body["choices"][0]["finish_reason"], expected);
        }
    }

    #[test]
    fn unreadable_response_is_bad_upstream() {
        let r = from_anthropic_response(&json!({"type": "message"}), "i", "m", 0);
        assert!(matches!(r, Err(TranslateError::BadUpstream(_))));
    }

    // ---- streaming ----

    fn feed(t: &mut StreamTranslator, events: &[(&str, Value)]) -> Vec<Value> {
        let mut out = Vec::new();
        for (name, data) in events {
            out.extend(parse(&t.on_event(Some(name), &data.to_string()).unwrap()));
        }
        out
    }

    #[test]
    fn streamed_text_conversation() {
        let mut t = StreamTranslator::new("chatcmpl-1", "claude", 1700000000, true);
        assert!(!t.finished());
        let chunks = feed(
            &mut t,
            &[
                (
                    "message_start",
                    json!({"type": "message_start", "message": {
                        "id": "msg_1", "type": "message", "role": "assistant", "content": [],
                        "model": "claude-3-5-sonnet-20241022", "stop_reason": null,
                        "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 5}
                    }}),
                ),
                (
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                ("ping", json!({"type": "ping"})),
                (
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
                ),
                (
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}),
                ),
                (
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0}),
                ),
                (
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 15}}),
                ),
                ("message_stop", json!({"type": "message_stop"})),
            ],
        );
        assert_eq!(
            chunks,
            vec![
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Hello"}), Value::Null),
                chunk(json!({"content": "!"}), Value::Null),
                chunk(json!({}), json!("stop")),
                json!({
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": "claude",
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 40,
                        "completion_tokens": 15,
                        "total_tokens": 55,
                        "prompt_tokens_details": {"cached_tokens": 10}
                    }
                }),
            ]
        );
        assert!(t.finished());
        assert_eq!(
            t.usage(),
            Usage {
                prompt_tokens: 40,
                completion_tokens: 15,
                cache_read_input_tokens: 10,
                cache_creation_input_tokens: 5
            }
        );
    }

    #[test]
    fn streamed_tool_call() {
        let mut t = StreamTranslator::new("chatcmpl-1", "claude", 1700000000, false);
        let chunks = feed(
            &mut t,
            &[
                (
                    "message_start",
                    json!({"type": "message_start", "message": {"usage": {"input_tokens": 50, "output_tokens": 1}}}),
                ),
                (
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                (
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}}),
                ),
                (
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0}),
                ),
                (
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
                ),
                (
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
                ),
                (
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
                ),
                (
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
                ),
                (
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 1}),
                ),
                (
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}}),
                ),
                (
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
                ),
                (
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 2}),
                ),
                (
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}),
                ),
                ("message_stop", json!({"type": "message_stop"})),
            ],
        );
        assert_eq!(
            chunks,
            vec![
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Checking."}), Value::Null),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                    Value::Null
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
                    Value::Null
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                    Value::Null
                ),
                chunk(
                    json!({"tool_calls": [{"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": ""}}]}),
                    Value::Null
                ),
                chunk(
                    json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
                    Value::Null
                ),
                chunk(json!({}), json!("tool_calls")),
            ]
        );
        assert!(t.finished());
        assert_eq!(t.usage().prompt_tokens, 50);
        assert_eq!(t.usage().completion_tokens, 30);
    }

    #[test]
    fn stream_error_event() {
        let mut t = StreamTranslator::new("chatcmpl-1", "claude", 0, true);
        let data = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        match t.on_event(Some("error"), &data.to_string()) {
            Err(TranslateError::BadUpstream(m)) => assert_eq!(m, "Overloaded"),
            other => panic!("expected BadUpstream, got {other:?}"),
        }
        assert!(!t.finished());
    }

    #[test]
    fn stream_ping_unknown_and_bad_data() {
        let mut t = StreamTranslator::new("chatcmpl-1", "claude", 0, true);
        assert!(t.on_event(Some("ping"), "").unwrap().is_empty());
        assert!(t.on_event(None, r#"{"type":"ping"}"#).unwrap().is_empty());
        assert!(t
            .on_event(Some("future_event"), r#"{"type":"future_event"}"#)
            .unwrap()
            .is_empty());
        assert!(matches!(
            t.on_event(Some("content_block_delta"), "{oops"),
            Err(TranslateError::BadUpstream(_))
        ));
        assert!(matches!(
            t.on_event(
                None,
                r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{"}}"#
            ),
            Err(TranslateError::BadUpstream(_))
        ));
    }

    #[test]
    fn stream_event_name_fallback_and_delta_usage_update() {
        let mut t = StreamTranslator::new("chatcmpl-1", "claude", 0, false);
        // No "type" in the payload: the SSE event name decides.
        let out = t
            .on_event(
                Some("message_start"),
                r#"{"message":{"usage":{"input_tokens":3}}}"#,
            )
            .unwrap();
        assert_eq!(out.len(), 1);
        // Newer APIs repeat input counts in message_delta; those override.
        t.on_event(
            Some("message_delta"),
            r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"input_tokens":4,"output_tokens":9}}"#,
        )
        .unwrap();
        assert_eq!(t.usage().prompt_tokens, 4);
        assert_eq!(t.usage().completion_tokens, 9);
        assert!(t
            .on_event(None, r#"{"type":"message_stop"}"#)
            .unwrap()
            .is_empty());
        assert!(t.finished());
    }

    // ---- errors ----

    #[test]
    fn map_error_types() {
        let cases = [
            (400, "invalid_request_error", "invalid_request_error"),
            (401, "authentication_error", "authentication_error"),
            (403, "permission_error", "permission_error"),
            (404, "not_found_error", "not_found_error"),
            (429, "rate_limit_error", "rate_limit_error"),
            (529, "overloaded_error", "api_error"),
            (500, "api_error", "api_error"),
        ];
        for (status, anthropic, openai) in cases {
            let body = json!({"type": "error", "error": {"type": anthropic, "message": "boom"}});
            assert_eq!(
                map_error(status, body.to_string().as_bytes()),
                ("boom".to_owned(), openai)
            );
        }
    }

    #[test]
    fn map_error_unparseable_body() {
        assert_eq!(
            map_error(502, b"<html>Bad Gateway</html>"),
            (
                "Anthropic returned HTTP 502: <html>Bad Gateway</html>".to_owned(),
                "api_error"
            )
        );
        assert_eq!(
            map_error(429, b""),
            ("Anthropic returned HTTP 429".to_owned(), "rate_limit_error")
        );
        let big = vec![b'x'; 2000];
        let (msg, kind) = map_error(500, &big);
        assert_eq!(kind, "api_error");
        assert_eq!(
            msg,
            format!("Anthropic returned HTTP 500: {}", "x".repeat(500))
        );
    }
}
