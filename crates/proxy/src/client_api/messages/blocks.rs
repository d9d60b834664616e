//! The conversation of a Messages request (`system` and `messages`) as chat messages.
//!
//! Choices that have no exact chat equivalent:
//! - `thinking` / `redacted_thinking` blocks are dropped: chat has no way to replay them, and
//!   their signatures are only meaningful to Anthropic.
//! - `cache_control` markers are dropped: they are caching hints, not content.
//! - `tool_result` blocks become `tool` messages placed before the rest of their user turn,
//!   because chat requires a tool answer to follow the assistant turn that called it directly.
//!   Images inside a tool result cannot go in a `tool` message (text only), so they move into the
//!   user message that follows the tool messages. `is_error` has no chat field; the text stays.
//! - Within an assistant turn, text and tool calls are separated (chat keeps them in two fields),
//!   so text written after a tool call is replayed before it.

use serde_json::{json, Map, Value};

use crate::providers::translate::{bad_request, TranslateError};

/// The `system` field as a leading system message, or None when it is absent or empty.
pub(super) fn system_message(system: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let text = match system {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (i, block) in blocks.iter().enumerate() {
                if block_type(block) != Some("text") {
                    return Err(bad_request(format!(
                        "system.{i}: system blocks must be of type 'text'"
                    )));
                }
                texts.push(text_of(block, &format!("system.{i}"))?);
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(bad_request(
                "system: Input should be a string or a list of text blocks",
            ))
        }
    };
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({"role": "system", "content": text})))
}

/// Appends the chat messages for `messages` to `out`.
pub(super) fn convert_messages(
    messages: Option<&Value>,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let messages = match messages {
        None | Some(Value::Null) => return Err(bad_request("messages: Field required")),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(bad_request("messages: Input should be a valid list")),
    };
    if messages.is_empty() {
        return Err(bad_request("messages: at least one message is required"));
    }
    for (i, msg) in messages.iter().enumerate() {
        let at = format!("messages.{i}");
        let role = msg
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request(format!("{at}.role: Field required")))?;
        let content = msg
            .get("content")
            .filter(|c| !c.is_null())
            .ok_or_else(|| bad_request(format!("{at}.content: Field required")))?;
        match role {
            "user" => user_turn(content, &at, out)?,
            "assistant" => {
                if let Some(m) = assistant_turn(content, &at)? {
                    out.push(m);
                }
            }
            other => {
                return Err(bad_request(format!(
                    "{at}.role: Input should be 'user' or 'assistant', not '{other}'"
                )))
            }
        }
    }
    Ok(())
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

fn text_of(block: &Value, at: &str) -> Result<String, TranslateError> {
    block
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| bad_request(format!("{at}.text: Field required")))
}

fn blocks_of<'a>(content: &'a Value, at: &str) -> Result<&'a [Value], TranslateError> {
    content.as_array().map(Vec::as_slice).ok_or_else(|| {
        bad_request(format!(
            "{at}.content: Input should be a string or a list of content blocks"
        ))
    })
}

fn user_turn(content: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    if let Value::String(s) = content {
        out.push(json!({"role": "user", "content": s}));
        return Ok(());
    }
    let mut parts = Vec::new();
    for (j, block) in blocks_of(content, at)?.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match block_type(block) {
            Some("tool_result") => {
                let (tool_message, media) = tool_result(block, &at)?;
                // Pushed straight away: tool messages come before the rest of the turn.
                out.push(tool_message);
                parts.extend(media);
            }
            Some("thinking" | "redacted_thinking") => {}
            _ => parts.push(content_part(block, &at)?),
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts_content(parts)}));
    }
    Ok(())
}

/// One text, image or document block as a chat content part.
fn content_part(block: &Value, at: &str) -> Result<Value, TranslateError> {
    match block_type(block) {
        Some("text") => Ok(json!({"type": "text", "text": text_of(block, at)?})),
        Some("image") => image_part(block, at),
        Some("document") => document_part(block, at),
        Some(other) => Err(bad_request(format!(
            "{at}: content block type '{other}' is not supported by this gateway"
        ))),
        None => Err(bad_request(format!("{at}.type: Field required"))),
    }
}

fn source_of<'a>(block: &'a Value, at: &str) -> Result<(&'a Value, &'a str), TranslateError> {
    let source = block
        .get("source")
        .ok_or_else(|| bad_request(format!("{at}.source: Field required")))?;
    let kind = source
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("{at}.source.type: Field required")))?;
    Ok((source, kind))
}

fn source_str<'a>(source: &'a Value, key: &str, at: &str) -> Result<&'a str, TranslateError> {
    source
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("{at}.source.{key}: Field required")))
}

fn image_part(block: &Value, at: &str) -> Result<Value, TranslateError> {
    let (source, kind) = source_of(block, at)?;
    let url = match kind {
        "base64" => format!(
            "data:{};base64,{}",
            source_str(source, "media_type", at)?,
            source_str(source, "data", at)?
        ),
        "url" => source_str(source, "url", at)?.to_owned(),
        other => {
            return Err(bad_request(format!(
                "{at}.source: image source type '{other}' is not supported by this gateway \
                 (use base64 or url)"
            )))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// PDFs travel as chat `file` parts; plain-text documents are just text.
fn document_part(block: &Value, at: &str) -> Result<Value, TranslateError> {
    let (source, kind) = source_of(block, at)?;
    match kind {
        "base64" => {
            let media_type = source_str(source, "media_type", at)?;
            let data = source_str(source, "data", at)?;
            let filename = block
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("document.pdf");
            Ok(json!({
                "type": "file",
                "file": {"filename": filename, "file_data": format!("data:{media_type};base64,{data}")}
            }))
        }
        "text" => Ok(json!({"type": "text", "text": source_str(source, "data", at)?})),
        other => Err(bad_request(format!(
            "{at}.source: document source type '{other}' is not supported by this gateway \
             (use base64 or text)"
        ))),
    }
}

/// A tool_result block as a `tool` message, plus the non-text parts it carried.
fn tool_result(block: &Value, at: &str) -> Result<(Value, Vec<Value>), TranslateError> {
    let id = block
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("{at}.tool_use_id: Field required")))?;
    let mut texts = Vec::new();
    let mut media = Vec::new();
    match block.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => texts.push(s.clone()),
        Some(Value::Array(inner)) => {
            for (k, b) in inner.iter().enumerate() {
                let part = content_part(b, &format!("{at}.content.{k}"))?;
                match part.get("text").and_then(Value::as_str) {
                    Some(t) if part.get("type").and_then(Value::as_str) == Some("text") => {
                        texts.push(t.to_owned())
                    }
                    _ => media.push(part),
                }
            }
        }
        Some(_) => {
            return Err(bad_request(format!(
                "{at}.content: Input should be a string or a list of content blocks"
            )))
        }
    }
    Ok((
        json!({"role": "tool", "tool_call_id": id, "content": texts.join("\n")}),
        media,
    ))
}

/// The assistant turn as one chat message; None when nothing in it survives (thinking only).
fn assistant_turn(content: &Value, at: &str) -> Result<Option<Value>, TranslateError> {
    if let Value::String(s) = content {
        return Ok(Some(json!({"role": "assistant", "content": s})));
    }
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks_of(content, at)?.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match block_type(block) {
            Some("text") => parts.push(json!({"type": "text", "text": text_of(block, &at)?})),
            Some("tool_use") => calls.push(tool_call(block, &at)?),
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => {
                return Err(bad_request(format!(
                    "{at}: content block type '{other}' is not supported in assistant turns \
                     by this gateway"
                )))
            }
            None => return Err(bad_request(format!("{at}.type: Field required"))),
        }
    }
    if parts.is_empty() && calls.is_empty() {
        return Ok(None);
    }
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    msg.insert(
        "content".into(),
        if parts.is_empty() {
            Value::Null
        } else {
            parts_content(parts)
        },
    );
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Some(Value::Object(msg)))
}

fn tool_call(block: &Value, at: &str) -> Result<Value, TranslateError> {
    let field = |key: &str| {
        block
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request(format!("{at}.{key}: Field required")))
    };
    let (id, name) = (field("id")?, field("name")?);
    let arguments = match block.get("input") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(input @ Value::Object(_)) => input.to_string(),
        Some(_) => {
            return Err(bad_request(format!(
                "{at}.input: Input should be a valid dictionary"
            )))
        }
    };
    Ok(json!({
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": arguments}
    }))
}

/// A lone text part is sent as a plain string: every chat server accepts that form.
fn parts_content(parts: Vec<Value>) -> Value {
    if let [only] = parts.as_slice() {
        if only.get("type").and_then(Value::as_str) == Some("text") {
            if let Some(text) = only.get("text") {
                return text.clone();
            }
        }
    }
    Value::Array(parts)
}
