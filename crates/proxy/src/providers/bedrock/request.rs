//! OpenAI chat request → Converse request.

use serde_json::{json, Map, Value};

use super::JSON_TOOL_NAME;
use crate::providers::translate::{bad_request, copy_number, positive_int, TranslateError};

/// A Converse message being built: Converse wants user and assistant turns to alternate, so
/// consecutive turns of one role (several tool results, say) are merged.
struct Turns(Vec<(&'static str, Vec<Value>)>);

impl Turns {
    fn push(&mut self, role: &'static str, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => self.0.push((role, blocks)),
        }
    }
}

/// The Converse request body for an OpenAI chat request.
pub(super) fn to_converse_request(req: &Map<String, Value>) -> Result<Value, TranslateError> {
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_request("messages must be an array"))?;
    let mut system: Vec<Value> = Vec::new();
    let mut turns = Turns(Vec::new());
    for msg in messages {
        let role = msg
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("every message needs a string 'role'"))?;
        match role {
            "system" | "developer" => system.extend(system_blocks(msg.get("content"))?),
            "user" => turns.push("user", user_blocks(msg.get("content"))?),
            "assistant" => turns.push("assistant", assistant_blocks(msg)?),
            "tool" => turns.push("user", vec![tool_result_block(msg)?]),
            "function" => {
                return Err(bad_request(
                    "function messages are not supported for Bedrock models; use tool messages",
                ))
            }
            other => return Err(bad_request(format!("unknown message role '{other}'"))),
        }
    }

    let mut out = Map::new();
    let messages: Vec<Value> = turns
        .0
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }

    let inference = inference_config(req)?;
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(tool_config) = tool_config(req)? {
        out.insert("toolConfig".into(), tool_config);
    }
    // Anthropic's extended thinking is a model field Converse passes through.
    if let Some(thinking) = req.get("thinking").filter(|v| !v.is_null()) {
        out.insert(
            "additionalModelRequestFields".into(),
            json!({"thinking": thinking}),
        );
    }
    for unsupported in ["logprobs", "top_logprobs", "reasoning_effort", "audio"] {
        if req
            .get(unsupported)
            .is_some_and(|v| !v.is_null() && v.as_bool() != Some(false))
        {
            return Err(bad_request(format!(
                "{unsupported} is not supported for Bedrock models"
            )));
        }
    }
    if positive_int(req, "n")?.is_some_and(|n| n > 1) {
        return Err(bad_request("Bedrock models return one choice; n must be 1"));
    }
    Ok(Value::Object(out))
}

fn inference_config(req: &Map<String, Value>) -> Result<Map<String, Value>, TranslateError> {
    let mut out = Map::new();
    // max_completion_tokens is the newer name; it wins when both are sent.
    let newer = positive_int(req, "max_completion_tokens")?;
    let older = positive_int(req, "max_tokens")?;
    if let Some(n) = newer.or(older) {
        out.insert("maxTokens".into(), json!(n));
    }
    copy_number(req, "temperature", "temperature", &mut out)?;
    copy_number(req, "top_p", "topP", &mut out)?;
    match req.get("stop") {
        None | Some(Value::Null) => {}
        // Converse rejects empty stop sequences.
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => {
            out.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(items)) => {
            let mut stops = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some("") => {}
                    Some(s) => stops.push(json!(s)),
                    None => {
                        return Err(bad_request("stop must be a string or an array of strings"))
                    }
                }
            }
            if !stops.is_empty() {
                out.insert("stopSequences".into(), Value::Array(stops));
            }
        }
        Some(_) => return Err(bad_request("stop must be a string or an array of strings")),
    }
    Ok(out)
}

/// A `cachePoint` block after a content part marked with Anthropic-style `cache_control`.
fn push_cache_point(part: &Value, blocks: &mut Vec<Value>) {
    if part.get("cache_control").is_some_and(|c| !c.is_null()) {
        blocks.push(json!({"cachePoint": {"type": "default"}}));
    }
}

fn text_of(part: &Value) -> Result<&str, TranslateError> {
    part.get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("text content part is missing a string 'text'"))
}

fn system_blocks(content: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = text_of(part)?;
                        if !text.is_empty() {
                            blocks.push(json!({"text": text}));
                        }
                        push_cache_point(part, &mut blocks);
                    }
                    _ => return Err(bad_request("system messages may only contain text parts")),
                }
            }
            Ok(blocks)
        }
        Some(_) => Err(bad_request(
            "message content must be a string or an array of content parts",
        )),
    }
}

/// A base64 data URL → a Converse image block. Bedrock takes image bytes only, and the gateway
/// fetches nothing on a caller's behalf, so http(s) image URLs are refused.
fn image_block(part: &Value) -> Result<Value, TranslateError> {
    let url = match part.get("image_url") {
        Some(Value::String(s)) => s.as_str(),
        Some(obj) => obj
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("image_url content part is missing 'url'"))?,
        None => return Err(bad_request("image_url content part is missing 'image_url'")),
    };
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(bad_request(
            "Bedrock models take images as base64 data URLs (data:image/png;base64,...)",
        ));
    };
    let (header, data) = rest
        .split_once(',')
        .ok_or_else(|| bad_request("malformed data URL in image_url"))?;
    let media_type = header
        .strip_suffix(";base64")
        .ok_or_else(|| bad_request("image data URLs must be base64 with a media type"))?;
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(bad_request(format!(
                "image type '{other}' is not supported by Bedrock; use png, jpeg, gif or webp"
            )))
        }
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

fn user_blocks(content: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    match content {
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = text_of(part)?;
                        if !text.is_empty() {
                            blocks.push(json!({"text": text}));
                        }
                    }
                    Some("image_url") => blocks.push(image_block(part)?),
                    Some(other) => {
                        return Err(bad_request(format!(
                            "unsupported content part type '{other}' for Bedrock models"
                        )))
                    }
                    None => return Err(bad_request("content part is missing 'type'")),
                }
                push_cache_point(part, &mut blocks);
            }
            Ok(blocks)
        }
        _ => Err(bad_request(
            "user content must be a string or an array of content parts",
        )),
    }
}

fn assistant_blocks(msg: &Value) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = Vec::new();
    match msg.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                blocks.push(json!({"text": s}));
            }
        }
        Some(Value::Array(parts)) => {
            for part in parts {
                let text = match part.get("type").and_then(Value::as_str) {
                    Some("text") => text_of(part)?,
                    // A refusal is what the assistant said, so it is replayed as text.
                    Some("refusal") => part.get("refusal").and_then(Value::as_str).unwrap_or(""),
                    _ => {
                        return Err(bad_request(
                            "assistant content parts must be of type 'text'",
                        ))
                    }
                };
                if !text.is_empty() {
                    blocks.push(json!({"text": text}));
                }
            }
        }
        Some(_) => {
            return Err(bad_request(
                "assistant content must be a string, an array or null",
            ))
        }
    }
    if let Some(calls) = msg.get("tool_calls").filter(|v| !v.is_null()) {
        let calls = calls
            .as_array()
            .ok_or_else(|| bad_request("tool_calls must be an array"))?;
        for call in calls {
            blocks.push(tool_use_block(call)?);
        }
    }
    Ok(blocks)
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
    // Converse wants the input as an object; OpenAI carries it as JSON text.
    let input = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| {
            bad_request(format!(
                "tool call '{id}' has arguments that are not valid JSON"
            ))
        })?,
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(bad_request("tool call arguments must be a JSON string")),
    };
    Ok(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}))
}

fn tool_result_block(msg: &Value) -> Result<Value, TranslateError> {
    let id = msg
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("tool messages need a string 'tool_call_id'"))?;
    let mut content = Vec::new();
    match msg.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                content.push(json!({"text": s}));
            }
        }
        Some(Value::Array(parts)) => {
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = text_of(part)?;
                        if !text.is_empty() {
                            content.push(json!({"text": text}));
                        }
                    }
                    Some("image_url") => content.push(image_block(part)?),
                    _ => {
                        return Err(bad_request(
                            "tool message content parts must be text or image_url",
                        ))
                    }
                }
            }
        }
        Some(_) => {
            return Err(bad_request(
                "tool message content must be a string or an array of content parts",
            ))
        }
    }
    // Converse refuses a tool result without content.
    if content.is_empty() {
        content.push(json!({"text": "."}));
    }
    Ok(json!({"toolResult": {"toolUseId": id, "content": content}}))
}

fn tool_spec(tool: &Value) -> Result<Value, TranslateError> {
    match tool.get("type").and_then(Value::as_str) {
        Some("function") | None => {}
        Some(other) => {
            return Err(bad_request(format!(
                "tool type '{other}' is not supported for Bedrock models"
            )))
        }
    }
    let function = tool
        .get("function")
        .ok_or_else(|| bad_request("tools[].function is required"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad_request("tools[].function.name must be a non-empty string"))?;
    let schema = match function.get("parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(bad_request("tools[].function.parameters must be an object")),
    };
    let mut spec = Map::new();
    spec.insert("name".into(), json!(name));
    if let Some(d) = function
        .get("description")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
    {
        spec.insert("description".into(), json!(d));
    }
    spec.insert("inputSchema".into(), json!({"json": schema}));
    Ok(json!({"toolSpec": spec}))
}

/// The schema of a JSON `response_format`, with its name and description; None when the
/// format asks for no schema (plain text, or JSON without one, which the prompt must ask for).
fn response_schema(
    req: &Map<String, Value>,
) -> Result<Option<(Value, Option<&str>)>, TranslateError> {
    let Some(format) = req.get("response_format").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(format.get("response_schema").cloned().map(|s| (s, None))),
        Some("json_schema") => {
            let js = format
                .get("json_schema")
                .ok_or_else(|| bad_request("response_format.json_schema is required"))?;
            let schema = js
                .get("schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            Ok(Some((
                schema,
                js.get("description").and_then(Value::as_str),
            )))
        }
        _ => Err(bad_request(
            "response_format.type must be text, json_object or json_schema",
        )),
    }
}

fn tool_choice(choice: &Value) -> Result<Option<Value>, TranslateError> {
    match choice {
        Value::Null => Ok(None),
        Value::String(s) => match s.as_str() {
            "auto" => Ok(Some(json!({"auto": {}}))),
            "required" => Ok(Some(json!({"any": {}}))),
            "none" => Err(bad_request(
                "Bedrock doesn't support tool_choice=none; leave the tools out instead",
            )),
            other => Err(bad_request(format!("unknown tool_choice '{other}'"))),
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("tool_choice.function.name must be a string"))?;
            Ok(Some(json!({"tool": {"name": name}})))
        }
        _ => Err(bad_request("tool_choice must be a string or an object")),
    }
}

fn tool_config(req: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let mut tools = Vec::new();
    if let Some(list) = req.get("tools").filter(|v| !v.is_null()) {
        let list = list
            .as_array()
            .ok_or_else(|| bad_request("tools must be an array"))?;
        for tool in list {
            tools.push(tool_spec(tool)?);
        }
    }
    let mut choice = match req.get("tool_choice") {
        Some(c) if !tools.is_empty() => tool_choice(c)?,
        _ => None,
    };
    if let Some((schema, description)) = response_schema(req)? {
        let mut spec = Map::new();
        spec.insert("name".into(), json!(JSON_TOOL_NAME));
        if let Some(d) = description {
            spec.insert("description".into(), json!(d));
        }
        spec.insert("inputSchema".into(), json!({"json": schema}));
        tools.push(json!({"toolSpec": spec}));
        // The answer must come as a call of the schema's tool.
        choice = Some(json!({"tool": {"name": JSON_TOOL_NAME}}));
    }
    if tools.is_empty() {
        return Ok(None);
    }
    let mut config = Map::new();
    config.insert("tools".into(), Value::Array(tools));
    if let Some(c) = choice {
        config.insert("toolChoice".into(), c);
    }
    Ok(Some(Value::Object(config)))
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

    fn converse(v: Value) -> Value {
        to_converse_request(&req(v)).unwrap()
    }

    fn refused(v: Value) -> String {
        match to_converse_request(&req(v)) {
            Err(TranslateError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn system_messages_and_inference_settings() {
        let out = converse(json!({
            "model": "claude",
            "messages": [
                {"role": "system", "content": "Be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "No jokes", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": "Say hello"},
                {"role": "user", "content": [{"type": "text", "text": "twice"}]}
            ],
            "max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "stop": "END", "user": "u1"
        }));
        assert_eq!(
            out,
            json!({
                "system": [{"text": "Be brief"}, {"text": "No jokes"}, {"cachePoint": {"type": "default"}}],
                "messages": [{"role": "user", "content": [{"text": "Say hello"}, {"text": "twice"}]}],
                "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]}
            })
        );
        let out = converse(json!({"messages": [{"role": "user", "content": "x"}],
            "max_tokens": 10, "max_completion_tokens": 20, "stop": ["", "a", "b"]}));
        assert_eq!(
            out["inferenceConfig"],
            json!({"maxTokens": 20, "stopSequences": ["a", "b"]})
        );
    }

    #[test]
    fn images_come_as_bytes() {
        let out = converse(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
        ]}]}));
        assert_eq!(
            out["messages"][0]["content"][1],
            json!({"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}})
        );
        assert!(refused(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}]}))
        .contains("base64 data URLs"));
        assert!(refused(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": "data:image/tiff;base64,AAAA"}
        ]}]}))
        .contains("image/tiff"));
    }

    #[test]
    fn tools_and_tool_turns() {
        let out = converse(json!({
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "tooluse_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "tooluse_2", "content": [{"type": "text", "text": "21C"}]}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "now"}}],
            "tool_choice": "required"
        }));
        assert_eq!(
            out,
            json!({
                "messages": [
                    {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]},
                    {"role": "assistant", "content": [
                        {"text": "Checking."},
                        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
                        {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {}}}
                    ]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}]}},
                        {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "21C"}]}}
                    ]}
                ],
                "toolConfig": {
                    "tools": [
                        {"toolSpec": {"name": "get_weather", "description": "Weather of a city",
                            "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}},
                        {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
                    ],
                    "toolChoice": {"any": {}}
                }
            })
        );
        let named = converse(json!({"messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}}));
        assert_eq!(
            named["toolConfig"]["toolChoice"],
            json!({"tool": {"name": "f"}})
        );
        let auto = converse(json!({"messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"}));
        assert_eq!(auto["toolConfig"]["toolChoice"], json!({"auto": {}}));
        assert!(
            refused(json!({"messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"}))
            .contains("tool_choice=none")
        );
        assert!(refused(
            json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]})
        )
        .contains("not valid JSON"));
    }

    #[test]
    fn json_schema_becomes_a_forced_tool() {
        let out = converse(
            json!({"messages": [{"role": "user", "content": "A city as JSON"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "city", "description": "A city",
                "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}}),
        );
        assert_eq!(
            out["toolConfig"],
            json!({"tools": [{"toolSpec": {"name": "json_tool_call", "description": "A city",
                "inputSchema": {"json": {"type": "object", "properties": {"name": {"type": "string"}}}}}}],
                "toolChoice": {"tool": {"name": "json_tool_call"}}})
        );
        // JSON without a schema, and plain text, add nothing.
        for format in [json!({"type": "json_object"}), json!({"type": "text"})] {
            let out = converse(
                json!({"messages": [{"role": "user", "content": "x"}], "response_format": format}),
            );
            assert!(out.get("toolConfig").is_none(), "{out}");
        }
    }

    #[test]
    fn thinking_passes_through_and_unsupported_settings_are_refused() {
        let out = converse(json!({"messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}}));
        assert_eq!(
            out["additionalModelRequestFields"],
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})
        );
        assert!(
            refused(json!({"messages": [{"role": "user", "content": "x"}], "logprobs": true}))
                .contains("logprobs")
        );
        assert!(
            refused(json!({"messages": [{"role": "user", "content": "x"}], "n": 2}))
                .contains("n must be 1")
        );
        assert!(
            refused(json!({"messages": [{"role": "wizard", "content": "x"}]})).contains("wizard")
        );
        assert!(refused(json!({"messages": "hi"})).contains("messages"));
        // logprobs: false asks for nothing.
        converse(
            json!({"messages": [{"role": "user", "content": "x"}], "logprobs": false, "n": 1}),
        );
    }
}
