//! A Messages request as a chat request.
//!
//! Top-level fields fall in four groups:
//! - translated: model, max_tokens, system, messages, stop_sequences, temperature, top_p, stream,
//!   tools, tool_choice, metadata.user_id, `thinking` when disabled, and a JSON-schema output
//!   format (`output_config.format`, or the older `output_format`) as `response_format`;
//! - accepted and dropped: `top_k` (chat has no such parameter; it only narrows sampling) and
//!   fields that steer caching, routing, billing or diagnostics without changing what the model
//!   is asked (`cache_control`, `service_tier`, `inference_geo`, `speed`, `diagnostics`,
//!   `container`, `context_management`, and the `anthropic_version` / `anthropic_beta` body
//!   fields some clients send);
//! - refused: anything that would change the answer and has no chat form: extended thinking,
//!   an effort other than the default, MCP servers, server tools;
//! - unknown: refused as Anthropic itself refuses them ("Extra inputs are not permitted"), so a
//!   client never believes a parameter took effect when it did not.

use serde_json::{json, Map, Value};

use super::blocks::{convert_messages, system_message};
use crate::providers::translate::{bad_request, TranslateError};

/// What the translation is for: count_tokens requests carry no `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Create,
    CountTokens,
}

/// Messages request → OpenAI chat-completions request.
pub(crate) fn to_chat_request(
    req: &Map<String, Value>,
) -> Result<Map<String, Value>, TranslateError> {
    translate(req, Purpose::Create)
}

pub(super) fn translate(
    req: &Map<String, Value>,
    purpose: Purpose,
) -> Result<Map<String, Value>, TranslateError> {
    check_fields(req)?;
    let mut out = Map::new();

    let model = match req.get("model") {
        None | Some(Value::Null) => return Err(bad_request("model: Field required")),
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return Err(bad_request("model: Input should be a non-empty string")),
    };
    out.insert("model".into(), json!(model));

    let mut messages = Vec::new();
    if let Some(system) = system_message(req.get("system"))? {
        messages.push(system);
    }
    convert_messages(req.get("messages"), &mut messages)?;
    out.insert("messages".into(), Value::Array(messages));

    match (purpose, req.get("max_tokens")) {
        (Purpose::Create, None | Some(Value::Null)) => {
            return Err(bad_request("max_tokens: Field required"))
        }
        (_, None | Some(Value::Null)) => {}
        (_, Some(v)) => match v.as_u64() {
            Some(n) if n >= 1 => {
                out.insert("max_tokens".into(), json!(n));
            }
            _ => {
                return Err(bad_request(
                    "max_tokens: Input should be an integer greater than or equal to 1",
                ))
            }
        },
    }

    for key in ["temperature", "top_p"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(v) if v.is_number() => {
                out.insert(key.into(), v.clone());
            }
            Some(_) => {
                return Err(bad_request(format!(
                    "{key}: Input should be a valid number"
                )))
            }
        }
    }
    // Validated so a malformed value is still an error, then dropped (see the module comment).
    match req.get("top_k") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some() => {}
        Some(_) => return Err(bad_request("top_k: Input should be a non-negative integer")),
    }

    match req.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(seqs)) if seqs.iter().all(Value::is_string) => {
            if !seqs.is_empty() {
                out.insert("stop".into(), Value::Array(seqs.clone()));
            }
        }
        Some(_) => {
            return Err(bad_request(
                "stop_sequences: Input should be a list of strings",
            ))
        }
    }

    match req.get("stream") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), json!(true));
            // The usage-only final chunk is what message_delta reports its counts from.
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Some(_) => return Err(bad_request("stream: Input should be a valid boolean")),
    }

    match req.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(meta)) => match meta.get("user_id") {
            None | Some(Value::Null) => {}
            Some(Value::String(user)) => {
                out.insert("user".into(), json!(user));
            }
            Some(_) => {
                return Err(bad_request(
                    "metadata.user_id: Input should be a valid string",
                ))
            }
        },
        Some(_) => return Err(bad_request("metadata: Input should be a valid dictionary")),
    }

    check_thinking(req.get("thinking"))?;
    if let Some(format) = output_format(req)? {
        out.insert("response_format".into(), format);
    }

    let tools = match req.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(t) => convert_tools(t)?,
    };
    tool_choice(req.get("tool_choice"), !tools.is_empty(), &mut out)?;
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }

    Ok(out)
}

fn check_fields(req: &Map<String, Value>) -> Result<(), TranslateError> {
    for key in req.keys() {
        match key.as_str() {
            "model" | "messages" | "max_tokens" | "system" | "stop_sequences" | "temperature"
            | "top_p" | "top_k" | "stream" | "tools" | "tool_choice" | "metadata" | "thinking"
            | "output_config" | "output_format" => {}
            "cache_control" | "service_tier" | "inference_geo" | "speed" | "diagnostics"
            | "container" | "context_management" | "anthropic_version" | "anthropic_beta" => {}
            "mcp_servers" => {
                return Err(bad_request(
                    "mcp_servers: MCP servers are not supported by this gateway",
                ))
            }
            other => {
                return Err(bad_request(format!(
                    "{other}: Extra inputs are not permitted"
                )))
            }
        }
    }
    Ok(())
}

/// Only "thinking disabled" has a chat equivalent (saying nothing); a model asked to think
/// would silently not, so the request is refused instead.
fn check_thinking(thinking: Option<&Value>) -> Result<(), TranslateError> {
    match thinking {
        None | Some(Value::Null) => Ok(()),
        Some(t) => match t.get("type").and_then(Value::as_str) {
            Some("disabled") => Ok(()),
            Some(kind) => Err(bad_request(format!(
                "thinking: extended thinking ('{kind}') is not supported by this gateway; \
                 send the request without 'thinking' or with {{\"type\": \"disabled\"}}"
            ))),
            None => Err(bad_request("thinking.type: Field required")),
        },
    }
}

/// `output_config.format` (or the older top-level `output_format`) as a chat response_format.
fn output_format(req: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let mut format = req.get("output_format").filter(|f| !f.is_null());
    match req.get("output_config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(config)) => {
            for (key, value) in config {
                match (key.as_str(), value) {
                    (_, Value::Null) => {}
                    ("format", f) => format = Some(f),
                    // "high" is what the model does when no effort is given.
                    ("effort", Value::String(e)) if e == "high" => {}
                    ("effort", _) => {
                        return Err(bad_request(
                            "output_config.effort: only the default effort ('high') is \
                             supported by this gateway",
                        ))
                    }
                    (other, _) => {
                        return Err(bad_request(format!(
                            "output_config.{other}: Extra inputs are not permitted"
                        )))
                    }
                }
            }
        }
        Some(_) => {
            return Err(bad_request(
                "output_config: Input should be a valid dictionary",
            ))
        }
    }
    let Some(format) = format else {
        return Ok(None);
    };
    if format.get("type").and_then(Value::as_str) != Some("json_schema") {
        return Err(bad_request(
            "output_config.format.type: Input should be 'json_schema'",
        ));
    }
    let schema = format
        .get("schema")
        .filter(|s| s.is_object())
        .ok_or_else(|| bad_request("output_config.format.schema: Field required"))?;
    // Anthropic guarantees the schema is followed; chat's strict mode is the same promise.
    Ok(Some(json!({
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": true}
    })))
}

fn convert_tools(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| bad_request("tools: Input should be a valid list"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let name = tool.get("name").and_then(Value::as_str);
        match tool.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "custom" => {}
            Some(other) => {
                // Server tools run inside Anthropic's API; no chat upstream can run them.
                let kind = other.as_str().unwrap_or("?");
                return Err(bad_request(format!(
                    "tools.{i}: tool '{}' of type '{kind}' is a server tool; this gateway \
                     supports only custom tools (name, description, input_schema)",
                    name.unwrap_or("?")
                )));
            }
        }
        let name = name.ok_or_else(|| bad_request(format!("tools.{i}.name: Field required")))?;
        let schema = tool
            .get("input_schema")
            .filter(|s| s.is_object())
            .ok_or_else(|| bad_request(format!("tools.{i}.input_schema: Field required")))?;
        let mut function = Map::new();
        function.insert("name".into(), json!(name));
        match tool.get("description") {
            None | Some(Value::Null) => {}
            Some(Value::String(d)) => {
                function.insert("description".into(), json!(d));
            }
            Some(_) => {
                return Err(bad_request(format!(
                    "tools.{i}.description: Input should be a valid string"
                )))
            }
        }
        function.insert("parameters".into(), schema.clone());
        if let Some(strict) = tool.get("strict").and_then(Value::as_bool) {
            function.insert("strict".into(), json!(strict));
        }
        // cache_control, defer_loading, eager_input_streaming and input_examples are
        // hints to Anthropic's serving, with no chat field: dropped.
        out.push(json!({"type": "function", "function": Value::Object(function)}));
    }
    Ok(out)
}

fn tool_choice(
    choice: Option<&Value>,
    has_tools: bool,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let choice = match choice {
        None | Some(Value::Null) => return Ok(()),
        Some(c @ Value::Object(_)) => c,
        Some(_) => {
            return Err(bad_request(
                "tool_choice: Input should be a valid dictionary",
            ))
        }
    };
    let mapped = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("tool_choice.name: Field required"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        Some(other) => {
            return Err(bad_request(format!(
                "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none', not '{other}'"
            )))
        }
        None => return Err(bad_request("tool_choice.type: Field required")),
    };
    if !has_tools {
        // Chat upstreams refuse tool_choice without tools; auto and none mean nothing then,
        // while forcing a call to no tool is the caller's mistake.
        return if mapped == json!("auto") || mapped == json!("none") {
            Ok(())
        } else {
            Err(bad_request(
                "tool_choice: a tool use can only be forced when 'tools' are given",
            ))
        };
    }
    out.insert("tool_choice".into(), mapped);
    if choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true)
    {
        out.insert("parallel_tool_calls".into(), json!(false));
    }
    Ok(())
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

    fn chat(v: Value) -> Value {
        Value::Object(to_chat_request(&req(v)).unwrap())
    }

    fn refused(v: Value) -> String {
        match to_chat_request(&req(v)) {
            Err(TranslateError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn minimal_request() {
        assert_eq!(
            chat(json!({
                "model": "claude-sonnet",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "Hi"}]
            })),
            json!({
                "model": "claude-sonnet",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "Hi"}]
            })
        );
    }

    #[test]
    fn every_scalar_parameter() {
        assert_eq!(
            chat(json!({
                "model": "m",
                "max_tokens": 50,
                "system": "Be brief.",
                "messages": [{"role": "user", "content": "Hi"}],
                "stop_sequences": ["END", "STOP"],
                "temperature": 0.2,
                "top_p": 0.9,
                "top_k": 40,
                "stream": true,
                "metadata": {"user_id": "u-1"},
                "thinking": {"type": "disabled"},
                "service_tier": "auto",
                "anthropic_version": "bedrock-2023-05-31",
                "cache_control": {"type": "ephemeral"}
            })),
            json!({
                "model": "m",
                "max_tokens": 50,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"}
                ],
                "stop": ["END", "STOP"],
                "temperature": 0.2,
                "top_p": 0.9,
                "stream": true,
                "stream_options": {"include_usage": true},
                "user": "u-1"
            })
        );
    }

    #[test]
    fn system_blocks_are_joined_and_empty_system_is_dropped() {
        let out = chat(json!({
            "model": "m", "max_tokens": 5,
            "system": [
                {"type": "text", "text": "You are a coder.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Be careful."}
            ],
            "messages": [{"role": "user", "content": "x"}]
        }));
        assert_eq!(
            out["messages"][0],
            json!({"role": "system", "content": "You are a coder.\nBe careful."})
        );
        let out = chat(json!({
            "model": "m", "max_tokens": 5, "system": "",
            "messages": [{"role": "user", "content": "x"}]
        }));
        assert_eq!(out["messages"], json!([{"role": "user", "content": "x"}]));
        assert_eq!(
            refused(json!({
                "model": "m", "max_tokens": 5, "system": [{"type": "image"}],
                "messages": [{"role": "user", "content": "x"}]
            })),
            "system.0: system blocks must be of type 'text'"
        );
    }

    #[test]
    fn multi_block_tool_turns() {
        let out = chat(json!({
            "model": "m", "max_tokens": 500,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather and time in Paris?"}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Checking both."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Here you go."},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, cloudy"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                     "content": [{"type": "text", "text": "clock"}, {"type": "text", "text": "unavailable"}]}
                ]}
            ]
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "Weather and time in Paris?"},
                {"role": "assistant", "content": "Checking both.", "tool_calls": [
                    {"id": "toolu_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function",
                     "function": {"name": "get_time", "arguments": "{}"}}
                ]},
                // Tool answers first, then the rest of the user's turn.
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18C, cloudy"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "clock\nunavailable"},
                {"role": "user", "content": "Here you go."}
            ])
        );
    }

    #[test]
    fn tool_only_assistant_turn_has_null_content_and_thinking_only_turn_vanishes() {
        let out = chat(json!({
            "model": "m", "max_tokens": 5,
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [
                    {"type": "redacted_thinking", "data": "xx"},
                    {"type": "tool_use", "id": "t1", "name": "ls", "input": {"path": "."}}
                ]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "…", "signature": "s"}]}
            ]
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\".\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "t1", "content": ""}
            ])
        );
    }

    #[test]
    fn image_and_document_blocks() {
        let out = chat(json!({
            "model": "m", "max_tokens": 5,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                {"type": "document", "title": "spec.pdf",
                 "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
                {"type": "text", "text": "Describe these."}
            ]}]
        }));
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
                {"type": "text", "text": "plain"},
                {"type": "text", "text": "Describe these."}
            ]}])
        );
        assert!(refused(json!({
            "model": "m", "max_tokens": 5,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "file", "file_id": "file_1"}}
            ]}]
        }))
        .starts_with("messages.0.content.0.source: image source type 'file'"));
    }

    #[test]
    fn images_in_tool_results_follow_the_tool_message() {
        let out = chat(json!({
            "model": "m", "max_tokens": 5,
            "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "screenshot", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [
                        {"type": "text", "text": "captured"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAA"}}
                    ]},
                    {"type": "text", "text": "What do you see?"}
                ]}
            ]
        }));
        assert_eq!(
            out["messages"].as_array().unwrap()[1..],
            json!([
                {"role": "tool", "tool_call_id": "t1", "content": "captured"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA"}},
                    {"type": "text", "text": "What do you see?"}
                ]}
            ])
            .as_array()
            .unwrap()[..]
        );
    }

    #[test]
    fn tools_and_tool_choice() {
        let base = json!({
            "model": "m", "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [
                {"name": "get_weather", "description": "Weather now",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                 "cache_control": {"type": "ephemeral"}},
                {"type": "custom", "name": "noop", "input_schema": {"type": "object"}, "strict": true}
            ]
        });
        let with_choice = |choice: Value| {
            let mut r = base.clone();
            r["tool_choice"] = choice;
            chat(r)
        };
        let out = with_choice(json!({"type": "auto"}));
        assert_eq!(
            out["tools"],
            json!([
                {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}, "strict": true}}
            ])
        );
        assert_eq!(out["tool_choice"], json!("auto"));
        assert!(out.get("parallel_tool_calls").is_none());
        let out = with_choice(json!({"type": "any", "disable_parallel_tool_use": true}));
        assert_eq!(out["tool_choice"], json!("required"));
        assert_eq!(out["parallel_tool_calls"], json!(false));
        let out = with_choice(json!({"type": "tool", "name": "noop"}));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "noop"}})
        );
        assert_eq!(
            with_choice(json!({"type": "none"}))["tool_choice"],
            json!("none")
        );
        assert_eq!(
            refused(json!({
                "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                "tool_choice": {"type": "any"}
            })),
            "tool_choice: a tool use can only be forced when 'tools' are given"
        );
        let out = chat(json!({
            "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}
        }));
        assert!(out.get("tool_choice").is_none() && out.get("parallel_tool_calls").is_none());
    }

    #[test]
    fn server_tools_are_refused_by_name() {
        let m = refused(json!({
            "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [
                {"name": "ok", "input_schema": {"type": "object"}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
            ]
        }));
        assert!(
            m.starts_with(
                "tools.1: tool 'web_search' of type 'web_search_20250305' is a server tool"
            ),
            "{m}"
        );
        let m = refused(json!({
            "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "bash_20250124", "name": "bash"}]
        }));
        assert!(m.contains("'bash_20250124'"), "{m}");
    }

    #[test]
    fn output_format_becomes_a_strict_json_schema() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false});
        let expected = json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}});
        let out = chat(json!({
            "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "high"}
        }));
        assert_eq!(out["response_format"], expected);
        let out = chat(json!({
            "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "output_format": {"type": "json_schema", "schema": schema}
        }));
        assert_eq!(out["response_format"], expected);
        assert!(refused(json!({
            "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "output_config": {"effort": "low"}
        }))
        .starts_with("output_config.effort"));
    }

    #[test]
    fn answer_changing_and_unknown_fields_are_refused() {
        let base = || json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
        let mut r = base();
        r["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
        assert!(refused(r).starts_with("thinking: extended thinking ('enabled')"));
        let mut r = base();
        r["thinking"] = json!({"type": "adaptive"});
        assert!(refused(r).contains("('adaptive')"));
        let mut r = base();
        r["mcp_servers"] = json!([{"type": "url", "url": "https://mcp.example", "name": "x"}]);
        assert!(refused(r).starts_with("mcp_servers:"));
        let mut r = base();
        r["frequency_penalty"] = json!(1);
        assert_eq!(
            refused(r),
            "frequency_penalty: Extra inputs are not permitted"
        );
    }

    #[test]
    fn a_coding_agent_request() {
        // The shape Claude Code sends: cached system blocks, JSON-schema tools, a session id in
        // metadata, context management, and cache markers in the conversation.
        let out = chat(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 32000,
            "temperature": 1,
            "stream": true,
            "system": [
                {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Work in /repo.", "cache_control": {"type": "ephemeral"}}
            ],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<reminder>be careful</reminder>"},
                {"type": "text", "text": "fix the bug", "cache_control": {"type": "ephemeral"}}
            ]}],
            "tools": [{
                "name": "Bash",
                "description": "Run a command",
                "input_schema": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {"command": {"type": "string"}},
                    "required": ["command"],
                    "additionalProperties": false
                }
            }],
            "metadata": {"user_id": "user_abc_account__session_123"},
            "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}
        }));
        assert_eq!(
            out,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 32000,
                "temperature": 1,
                "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [
                    {"role": "system", "content": "You are a coding agent.\nWork in /repo."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "<reminder>be careful</reminder>"},
                        {"type": "text", "text": "fix the bug"}
                    ]}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "Bash",
                    "description": "Run a command",
                    "parameters": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "type": "object",
                        "properties": {"command": {"type": "string"}},
                        "required": ["command"],
                        "additionalProperties": false
                    }
                }}],
                "user": "user_abc_account__session_123"
            })
        );
    }

    #[test]
    fn malformed_requests() {
        assert_eq!(
            refused(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})),
            "max_tokens: Field required"
        );
        assert_eq!(
            refused(
                json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]})
            ),
            "max_tokens: Input should be an integer greater than or equal to 1"
        );
        assert_eq!(
            refused(json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})),
            "model: Field required"
        );
        assert_eq!(
            refused(json!({"model": "m", "max_tokens": 5})),
            "messages: Field required"
        );
        assert_eq!(
            refused(json!({"model": "m", "max_tokens": 5, "messages": []})),
            "messages: at least one message is required"
        );
        assert_eq!(
            refused(
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]})
            ),
            "messages.0.role: Input should be 'user' or 'assistant', not 'system'"
        );
        assert_eq!(
            refused(
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text"}]}]})
            ),
            "messages.0.content.0.text: Field required"
        );
        assert_eq!(
            refused(json!({"model": "m", "max_tokens": 5, "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}
            ]})),
            "messages.0.content.0.input: Input should be a valid dictionary"
        );
        assert_eq!(
            refused(json!({"model": "m", "max_tokens": 5, "messages": [
                {"role": "user", "content": [{"type": "tool_result", "content": "x"}]}
            ]})),
            "messages.0.content.0.tool_use_id: Field required"
        );
        assert!(refused(json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}
        ]}))
        .contains("'server_tool_use'"));
        assert_eq!(
            refused(json!({"model": "m", "max_tokens": 5, "stream": "yes",
                           "messages": [{"role": "user", "content": "x"}]})),
            "stream: Input should be a valid boolean"
        );
    }
}
