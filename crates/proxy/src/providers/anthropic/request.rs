//! OpenAI chat request → Anthropic Messages request.

use serde_json::{json, Map, Value};

use crate::providers::translate::{bad_request, copy_number, positive_int, TranslateError};

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

    copy_number(req, "temperature", "temperature", &mut out)?;
    copy_number(req, "top_p", "top_p", &mut out)?;
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
