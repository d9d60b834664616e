//! A Responses API request → the chat-completions request the pipeline runs.

use serde_json::{json, Map, Value};

use crate::providers::translate::{bad_request, copy_number, positive_int, TranslateError};

/// Translates a Responses request body to a chat-completions body. Refuses with a 400 what
/// needs state Tollgate does not keep, built-in tools, and what chat cannot express.
pub(crate) fn to_chat_request(
    req: &Map<String, Value>,
) -> Result<Map<String, Value>, TranslateError> {
    refuse_stateful(req)?;
    let mut out = Map::new();
    match req.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {
            out.insert("model".into(), json!(m));
        }
        _ => return Err(bad_request("model is required and must be a string")),
    }

    let mut messages = Vec::new();
    match req.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(bad_request("instructions must be a string")),
    }
    match req.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for item in items {
                push_item(item, &mut messages)?;
            }
        }
        None | Some(Value::Null) => return Err(bad_request("input is required")),
        Some(_) => return Err(bad_request("input must be a string or an array of items")),
    }
    if !messages
        .iter()
        .any(|m| m.get("role").and_then(Value::as_str) != Some("system"))
    {
        return Err(bad_request(
            "input must contain at least one message or function call output",
        ));
    }
    out.insert("messages".into(), Value::Array(messages));

    if let Some(tools) = given(req, "tools") {
        let tools = chat_tools(tools)?;
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = given(req, "tool_choice") {
        out.insert("tool_choice".into(), chat_tool_choice(choice)?);
    }
    if let Some(v) = given(req, "parallel_tool_calls") {
        if !v.is_boolean() {
            return Err(bad_request("parallel_tool_calls must be a boolean"));
        }
        out.insert("parallel_tool_calls".into(), v.clone());
    }
    if let Some(n) = positive_int(req, "max_output_tokens")? {
        out.insert("max_tokens".into(), json!(n));
    }
    for key in ["temperature", "top_p"] {
        copy_number(req, key, key, &mut out)?;
    }
    if let Some(text) = given(req, "text") {
        text_config(text, &mut out)?;
    }
    if let Some(reasoning) = given(req, "reasoning") {
        match reasoning.get("effort") {
            None | Some(Value::Null) => {}
            Some(Value::String(e)) => {
                out.insert("reasoning_effort".into(), json!(e));
            }
            Some(_) => return Err(bad_request("reasoning.effort must be a string")),
        }
    }
    // Chat takes these under the same names and meanings.
    for key in [
        "user",
        "prompt_cache_key",
        "safety_identifier",
        "service_tier",
    ] {
        match given(req, key) {
            None => {}
            Some(Value::String(s)) => {
                out.insert(key.into(), json!(s));
            }
            Some(_) => return Err(bad_request(format!("{key} must be a string"))),
        }
    }
    match given(req, "stream") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), json!(true));
            // The final Response event carries usage, which chat streams report only when asked.
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Some(_) => return Err(bad_request("stream must be a boolean")),
    }
    // metadata, store, include, truncation and the like have no chat counterpart; they only
    // shape the echoed Response (see RequestEcho).
    Ok(out)
}

fn given<'a>(req: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    req.get(key).filter(|v| !v.is_null())
}

fn refuse_stateful(req: &Map<String, Value>) -> Result<(), TranslateError> {
    if given(req, "previous_response_id").is_some() {
        return Err(bad_request(
            "previous_response_id is not supported: Tollgate does not store responses; \
             send the whole conversation in input",
        ));
    }
    if given(req, "conversation").is_some() {
        return Err(bad_request(
            "conversation is not supported: Tollgate does not store conversations; \
             send the whole conversation in input",
        ));
    }
    if given(req, "background") == Some(&Value::Bool(true)) {
        return Err(bad_request(
            "background is not supported: Tollgate does not store responses to poll later; \
             send the request without background (stream it if it runs long)",
        ));
    }
    if given(req, "prompt").is_some() {
        return Err(bad_request(
            "prompt (a stored prompt template) is not supported: send instructions and input instead",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Input items
// ---------------------------------------------------------------------------

fn push_item(item: &Value, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let obj = item
        .as_object()
        .ok_or_else(|| bad_request("input items must be objects"))?;
    match obj.get("type").and_then(Value::as_str) {
        None | Some("message") => push_message(obj, out),
        Some("function_call") => push_function_call(obj, out),
        Some("function_call_output") => push_function_output(obj, out),
        // Reasoning a model did earlier: chat has no place to replay it.
        Some("reasoning") => Ok(()),
        Some("item_reference") => Err(bad_request(
            "input items of type 'item_reference' are not supported: Tollgate does not store \
             responses; send the items themselves",
        )),
        Some(other) => Err(bad_request(format!(
            "input items of type '{other}' are not supported: only messages, function_call and \
             function_call_output items translate to chat completions"
        ))),
    }
}

fn push_message(obj: &Map<String, Value>, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let role = obj
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("message input items need a string 'role'"))?;
    let content = obj.get("content");
    let message = match role {
        "user" => json!({"role": "user", "content": user_content(content)?}),
        // Chat models older than the developer role take its instructions as system ones.
        "system" | "developer" => {
            json!({"role": "system", "content": plain_text(content, role)?})
        }
        "assistant" => json!({"role": "assistant", "content": plain_text(content, role)?}),
        other => {
            return Err(bad_request(format!(
                "message role '{other}' is not supported; use user, assistant, system or developer"
            )))
        }
    };
    out.push(message);
    Ok(())
}

/// The text of a message that chat takes as a plain string: a string, or text parts joined.
fn plain_text(content: Option<&Value>, role: &str) -> Result<String, TranslateError> {
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("input_text") | Some("output_text") => text.push_str(part_text(part)?),
                    // A refusal is what the assistant said, so it is replayed as its text.
                    Some("refusal") if role == "assistant" => text.push_str(
                        part.get("refusal")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad_request("refusal parts need a string 'refusal'"))?,
                    ),
                    Some(other) => {
                        return Err(bad_request(format!(
                            "{role} messages may only contain text; content part type '{other}' \
                             is not supported there"
                        )))
                    }
                    None => return Err(bad_request("content parts need a string 'type'")),
                }
            }
            Ok(text)
        }
        _ => Err(bad_request(format!(
            "{role} message content must be a string or an array of content parts"
        ))),
    }
}

fn part_text(part: &Value) -> Result<&str, TranslateError> {
    part.get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("text content parts need a string 'text'"))
}

fn user_content(content: Option<&Value>) -> Result<Value, TranslateError> {
    match content {
        Some(Value::String(s)) => Ok(json!(s)),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                out.push(user_part(part)?);
            }
            Ok(Value::Array(out))
        }
        _ => Err(bad_request(
            "user message content must be a string or an array of content parts",
        )),
    }
}

fn user_part(part: &Value) -> Result<Value, TranslateError> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text") | Some("output_text") => {
            Ok(json!({"type": "text", "text": part_text(part)?}))
        }
        Some("input_image") => {
            if part.get("file_id").is_some_and(|v| !v.is_null()) {
                return Err(bad_request(
                    "input_image with file_id is not supported: Tollgate does not store files; \
                     send image_url (an https or base64 data URL)",
                ));
            }
            let url = part
                .get("image_url")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("input_image needs a string image_url"))?;
            let mut image = Map::new();
            image.insert("url".into(), json!(url));
            if let Some(detail) = part.get("detail").and_then(Value::as_str) {
                image.insert("detail".into(), json!(detail));
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        Some("input_file") => {
            if part.get("file_id").is_some_and(|v| !v.is_null()) {
                return Err(bad_request(
                    "input_file with file_id is not supported: Tollgate does not store files; \
                     send file_data",
                ));
            }
            let data = part.get("file_data").and_then(Value::as_str).ok_or_else(|| {
                bad_request("input_file needs file_data (file_url is not supported by chat completions)")
            })?;
            let mut file = Map::new();
            file.insert("file_data".into(), json!(data));
            if let Some(name) = part.get("filename").and_then(Value::as_str) {
                file.insert("filename".into(), json!(name));
            }
            Ok(json!({"type": "file", "file": file}))
        }
        Some(other) => Err(bad_request(format!(
            "content part type '{other}' is not supported"
        ))),
        None => Err(bad_request("content parts need a string 'type'")),
    }
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<&'a str, TranslateError> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("{what} items need a string '{key}'")))
}

/// A function call joins the assistant message just before it: the calls of one turn (and the
/// text said with them) are one assistant message in chat.
fn push_function_call(
    obj: &Map<String, Value>,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let call_id = required_str(obj, "call_id", "function_call")?;
    let name = required_str(obj, "name", "function_call")?;
    let arguments = required_str(obj, "arguments", "function_call")?;
    let call = json!({
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments}
    });
    if let Some(Value::Object(last)) = out.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some("assistant") {
            match last.get_mut("tool_calls") {
                Some(Value::Array(calls)) => calls.push(call),
                _ => {
                    // Chat wants null, not "", beside tool calls when nothing was said.
                    if last.get("content").and_then(Value::as_str) == Some("") {
                        last.insert("content".into(), Value::Null);
                    }
                    last.insert("tool_calls".into(), json!([call]));
                }
            }
            return Ok(());
        }
    }
    out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
    Ok(())
}

fn push_function_output(
    obj: &Map<String, Value>,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let call_id = required_str(obj, "call_id", "function_call_output")?;
    let content = match obj.get("output") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("input_text") | Some("output_text") => text.push_str(part_text(part)?),
                    _ => {
                        return Err(bad_request(
                            "function_call_output may only contain text: chat tool messages \
                             carry no images or files",
                        ))
                    }
                }
            }
            text
        }
        _ => {
            return Err(bad_request(
                "function_call_output items need 'output': a string or an array of text parts",
            ))
        }
    };
    out.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
    Ok(())
}

// ---------------------------------------------------------------------------
// Tools and output format
// ---------------------------------------------------------------------------

/// Responses' flat function tools → chat's nested ones. Built-in tools run inside OpenAI's
/// Responses service; chat models have none, so they are refused by name.
fn chat_tools(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| bad_request("tools must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    let mut built_in: Vec<&str> = Vec::new();
    for tool in tools {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                if !built_in.contains(&other) {
                    built_in.push(other);
                }
                continue;
            }
            None => return Err(bad_request("tools[].type must be a string")),
        }
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("function tools need a string 'name'"))?;
        let mut function = Map::new();
        function.insert("name".into(), json!(name));
        for key in ["description", "parameters", "strict"] {
            if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                function.insert(key.into(), v.clone());
            }
        }
        out.push(json!({"type": "function", "function": function}));
    }
    if !built_in.is_empty() {
        return Err(bad_request(format!(
            "tools of type {} are not supported: Tollgate serves the Responses API through chat \
             completions, which have function tools only",
            built_in
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(out)
}

fn chat_tool_choice(choice: &Value) -> Result<Value, TranslateError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" | "none" | "required" => Ok(json!(s)),
            other => Err(bad_request(format!(
                "tool_choice '{other}' is not supported; use auto, none or required"
            ))),
        },
        Value::Object(obj) => match obj.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = obj
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_request("tool_choice of type function needs a 'name'"))?;
                Ok(json!({"type": "function", "function": {"name": name}}))
            }
            Some(other) => Err(bad_request(format!(
                "tool_choice of type '{other}' is not supported: only auto, none, required and \
                 a named function translate to chat completions"
            ))),
            None => Err(bad_request("tool_choice.type must be a string")),
        },
        _ => Err(bad_request("tool_choice must be a string or an object")),
    }
}

/// `text.format` → `response_format`; `text.verbosity` → `verbosity`.
fn text_config(text: &Value, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let text = text
        .as_object()
        .ok_or_else(|| bad_request("text must be an object"))?;
    if let Some(format) = text.get("format").filter(|v| !v.is_null()) {
        match format.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                out.insert("response_format".into(), json!({"type": "json_object"}));
            }
            Some("json_schema") => {
                let name = format
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_request("text.format of type json_schema needs a 'name'"))?;
                let schema = format
                    .get("schema")
                    .filter(|s| s.is_object())
                    .ok_or_else(|| {
                        bad_request("text.format of type json_schema needs a 'schema' object")
                    })?;
                let mut js = Map::new();
                js.insert("name".into(), json!(name));
                js.insert("schema".into(), schema.clone());
                for key in ["strict", "description"] {
                    if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                        js.insert(key.into(), v.clone());
                    }
                }
                out.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": js}),
                );
            }
            Some(other) => {
                return Err(bad_request(format!(
                "text.format type '{other}' is not supported; use text, json_object or json_schema"
            )))
            }
            None => return Err(bad_request("text.format.type must be a string")),
        }
    }
    if let Some(v) = text.get("verbosity").filter(|v| !v.is_null()) {
        out.insert("verbosity".into(), v.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn chat(v: Value) -> Value {
        Value::Object(to_chat_request(&map(v)).unwrap())
    }

    fn refused(v: Value) -> String {
        match to_chat_request(&map(v)) {
            Err(TranslateError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn string_input_with_instructions() {
        assert_eq!(
            chat(json!({"model": "gpt-4o", "instructions": "Be brief.", "input": "Hi"})),
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"}
                ]
            })
        );
    }

    #[test]
    fn message_items_of_every_role_and_part() {
        let out = chat(json!({
            "model": "m",
            "input": [
                {"role": "developer", "content": "Use tools."},
                {"type": "message", "role": "system",
                 "content": [{"type": "input_text", "text": "A"}, {"type": "input_text", "text": "B"}]},
                {"role": "user", "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                    {"type": "input_file", "file_data": "data:application/pdf;base64,QQ==", "filename": "a.pdf"}
                ]},
                {"type": "message", "role": "assistant", "status": "completed", "id": "msg_1",
                 "content": [{"type": "output_text", "text": "A cat.", "annotations": []}]},
                {"role": "user", "content": "Thanks"}
            ]
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "system", "content": "Use tools."},
                {"role": "system", "content": "AB"},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,QQ==", "filename": "a.pdf"}}
                ]},
                {"role": "assistant", "content": "A cat."},
                {"role": "user", "content": "Thanks"}
            ])
        );
    }

    #[test]
    fn function_calls_and_outputs_round_trip() {
        // The items a client sends back after running two tools the model called.
        let out = chat(json!({
            "model": "m",
            "input": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "weather", "arguments": "{\"city\":\"Rome\"}"},
                {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "21C"}]},
                {"type": "function_call", "call_id": "call_c", "name": "clock", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_c", "output": "noon"}
            ]
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_b", "content": "21C"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_c", "type": "function", "function": {"name": "clock", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_c", "content": "noon"}
            ])
        );
    }

    #[test]
    fn function_call_after_an_empty_assistant_message_gets_null_content() {
        let out = chat(json!({"model": "m", "input": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": ""},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
        ]}));
        assert_eq!(out["messages"][1]["content"], Value::Null);
        assert_eq!(out["messages"][1]["tool_calls"][0]["id"], json!("c"));
    }

    #[test]
    fn tools_and_sampling_settings() {
        let out = chat(json!({
            "model": "m",
            "input": "hi",
            "tools": [
                {"type": "function", "name": "weather", "description": "Weather for a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true},
                {"type": "function", "name": "clock", "parameters": null, "strict": null}
            ],
            "tool_choice": {"type": "function", "name": "weather"},
            "parallel_tool_calls": false,
            "max_output_tokens": 256,
            "temperature": 0.3,
            "top_p": 0.8,
            "user": "u-1",
            "metadata": {"k": "v"},
            "store": true,
            "reasoning": {"effort": "high", "summary": "auto"},
            "truncation": "disabled",
            "include": ["reasoning.encrypted_content"]
        }));
        assert_eq!(
            out,
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [
                    {"type": "function", "function": {
                        "name": "weather", "description": "Weather for a city",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                        "strict": true}},
                    {"type": "function", "function": {"name": "clock"}}
                ],
                "tool_choice": {"type": "function", "function": {"name": "weather"}},
                "parallel_tool_calls": false,
                "max_tokens": 256,
                "temperature": 0.3,
                "top_p": 0.8,
                "user": "u-1",
                "reasoning_effort": "high"
            })
        );
    }

    #[test]
    fn tool_choice_strings_pass_through() {
        for c in ["auto", "none", "required"] {
            let out = chat(json!({"model": "m", "input": "hi", "tool_choice": c}));
            assert_eq!(out["tool_choice"], json!(c));
        }
        assert!(refused(
            json!({"model": "m", "input": "hi", "tool_choice": {"type": "web_search_preview"}})
        )
        .contains("'web_search_preview'"));
        assert!(
            refused(json!({"model": "m", "input": "hi", "tool_choice": "sometimes"}))
                .contains("sometimes")
        );
    }

    #[test]
    fn built_in_tools_are_refused_by_name() {
        let msg = refused(json!({
            "model": "m", "input": "hi",
            "tools": [
                {"type": "web_search"}, {"type": "function", "name": "f"},
                {"type": "file_search", "vector_store_ids": ["vs_1"]}, {"type": "web_search"},
                {"type": "computer_use_preview", "display_width": 1, "display_height": 1, "environment": "linux"}
            ]
        }));
        assert!(
            msg.contains("'web_search', 'file_search', 'computer_use_preview'"),
            "{msg}"
        );
    }

    #[test]
    fn text_formats() {
        let out = chat(json!({"model": "m", "input": "hi", "text": {"format": {
            "type": "json_schema", "name": "answer", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": "number"}}}
        }, "verbosity": "low"}}));
        assert_eq!(
            out["response_format"],
            json!({"type": "json_schema", "json_schema": {
                "name": "answer", "strict": true,
                "schema": {"type": "object", "properties": {"a": {"type": "number"}}}
            }})
        );
        assert_eq!(out["verbosity"], json!("low"));
        let out =
            chat(json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}}));
        assert_eq!(out["response_format"], json!({"type": "json_object"}));
        let out = chat(json!({"model": "m", "input": "hi", "text": {"format": {"type": "text"}}}));
        assert!(out.get("response_format").is_none());
        assert!(refused(
            json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}})
        )
        .contains("schema"));
    }

    #[test]
    fn streaming_asks_for_usage() {
        let out = chat(json!({"model": "m", "input": "hi", "stream": true}));
        assert_eq!(out["stream"], json!(true));
        assert_eq!(out["stream_options"], json!({"include_usage": true}));
        let out = chat(json!({"model": "m", "input": "hi", "stream": false}));
        assert!(out.get("stream").is_none() && out.get("stream_options").is_none());
    }

    #[test]
    fn stateful_features_are_refused_clearly() {
        assert_eq!(
            refused(json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"})),
            "previous_response_id is not supported: Tollgate does not store responses; \
             send the whole conversation in input"
        );
        assert!(
            refused(json!({"model": "m", "input": "hi", "background": true}))
                .starts_with("background is not supported")
        );
        assert!(
            refused(json!({"model": "m", "input": "hi", "conversation": "conv_1"}))
                .starts_with("conversation is not supported")
        );
        assert!(
            refused(json!({"model": "m", "input": "hi", "prompt": {"id": "p"}}))
                .starts_with("prompt")
        );
        assert!(refused(
            json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]})
        )
        .contains("item_reference"));
        // Explicitly off is fine.
        chat(
            json!({"model": "m", "input": "hi", "background": false, "previous_response_id": null}),
        );
    }

    #[test]
    fn image_and_file_ids_are_refused() {
        let msg = refused(json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_image", "file_id": "file-1", "detail": "auto"}
        ]}]}));
        assert!(
            msg.contains("file_id") && msg.contains("image_url"),
            "{msg}"
        );
        let msg = refused(json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_file", "file_id": "file-1"}
        ]}]}));
        assert!(msg.contains("file_id"), "{msg}");
    }

    #[test]
    fn malformed_requests_are_bad_requests() {
        assert!(refused(json!({"input": "hi"})).contains("model"));
        assert!(refused(json!({"model": "m"})).contains("input"));
        assert!(refused(json!({"model": "m", "input": []})).contains("at least one"));
        assert!(
            refused(json!({"model": "m", "instructions": "x", "input": []}))
                .contains("at least one")
        );
        assert!(
            refused(json!({"model": "m", "input": [{"role": "tool", "content": "x"}]}))
                .contains("'tool'")
        );
        assert!(
            refused(json!({"model": "m", "input": [{"type": "web_search_call", "id": "w"}]}))
                .contains("'web_search_call'")
        );
        assert!(refused(json!({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}))
            .contains("call_id"));
        assert!(
            refused(json!({"model": "m", "input": "hi", "max_output_tokens": 0}))
                .contains("max_output_tokens")
        );
        assert!(
            refused(json!({"model": "m", "input": "hi", "temperature": "hot"}))
                .contains("temperature")
        );
        assert!(refused(
            json!({"model": "m", "input": [{"role": "system", "content": [
                {"type": "input_image", "image_url": "https://x"}
            ]}]})
        )
        .contains("system messages may only contain text"));
        assert!(refused(json!({"model": "m", "input": [
            {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image", "image_url": "https://x"}]}
        ]}))
        .contains("only contain text"));
    }
}
