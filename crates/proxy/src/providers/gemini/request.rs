//! OpenAI chat-completions request → Gemini `generateContent` request.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::schema::clean_schema;
use super::{split_tool_call_id, THOUGHT_SIGNATURE_FIELD};
use crate::providers::translate::{bad_request, copy_number, positive_int, TranslateError};

/// One `contents` entry while building.
struct Turn {
    role: &'static str,
    parts: Vec<Value>,
}

/// Appends parts as a turn of `role`, merging into the previous turn when the role repeats,
/// because Gemini wants user and model turns to alternate. A turn without parts is dropped:
/// Gemini rejects empty ones.
fn push_turn(turns: &mut Vec<Turn>, role: &'static str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => turns.push(Turn { role, parts }),
    }
}

fn text_of_part(part: &Value) -> Result<&str, TranslateError> {
    part.get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("text content part is missing a string 'text'"))
}

fn text_part(parts: &mut Vec<Value>, text: &str) {
    // Gemini rejects empty text parts.
    if !text.is_empty() {
        parts.push(json!({"text": text}));
    }
}

/// Text of a system/developer message (string or array of text parts).
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

/// A media type from a URL's file extension; Gemini needs one for every file it is given.
fn guess_mime(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "mov" => "video/mov",
        // Images are what image_url carries most; jpeg also covers .jpg/.jpeg.
        _ => "image/jpeg",
    }
}

/// A data URL or an http(s) URL as an inline or file part. `mime` overrides the guessed type.
fn media_part(url: &str, mime: Option<&str>, what: &str) -> Result<Value, TranslateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (header, data) = rest
            .split_once(',')
            .ok_or_else(|| bad_request(format!("malformed data URL in {what}")))?;
        let media_type = header
            .strip_suffix(";base64")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                bad_request(format!("{what} data URLs must be base64 with a media type"))
            })?;
        return Ok(json!({"inlineData": {"mimeType": mime.unwrap_or(media_type), "data": data}}));
    }
    if url.starts_with("https://") || url.starts_with("http://") || url.starts_with("gs://") {
        let mime = mime.unwrap_or_else(|| guess_mime(url));
        return Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}));
    }
    Err(bad_request(format!(
        "{what} must be an http(s) URL or a base64 data URL"
    )))
}

fn image_part(part: &Value) -> Result<Value, TranslateError> {
    // OpenAI allows both `"image_url": "..."` (older clients) and `{"url": "...", "format"?: "..."}`.
    let (url, format) = match part.get("image_url") {
        Some(Value::String(s)) => (s.as_str(), None),
        Some(obj) => (
            obj.get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("image_url content part is missing 'url'"))?,
            obj.get("format").and_then(Value::as_str),
        ),
        None => return Err(bad_request("image_url content part is missing 'image_url'")),
    };
    media_part(url, format, "image_url")
}

fn audio_part(part: &Value) -> Result<Value, TranslateError> {
    let audio = part
        .get("input_audio")
        .ok_or_else(|| bad_request("input_audio content part is missing 'input_audio'"))?;
    let data = audio
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("input_audio.data must be a base64 string"))?;
    let format = audio
        .get("format")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("input_audio.format must be a string"))?;
    Ok(json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}))
}

fn file_part(part: &Value) -> Result<Value, TranslateError> {
    let file = part
        .get("file")
        .ok_or_else(|| bad_request("file content part is missing 'file'"))?;
    let format = file.get("format").and_then(Value::as_str);
    if let Some(data) = file.get("file_data").and_then(Value::as_str) {
        return media_part(data, format, "file.file_data");
    }
    if let Some(id) = file.get("file_id").and_then(Value::as_str) {
        return media_part(id, format, "file.file_id");
    }
    Err(bad_request(
        "file content parts need 'file_data' (a data URL) or 'file_id' (a file URI)",
    ))
}

/// User content (string or parts) as Gemini parts.
fn user_parts(content: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::new();
    match content {
        Some(Value::String(s)) => text_part(&mut out, s),
        Some(Value::Array(parts)) => {
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => text_part(&mut out, text_of_part(part)?),
                    Some("image_url") => out.push(image_part(part)?),
                    Some("input_audio") => out.push(audio_part(part)?),
                    Some("file") => out.push(file_part(part)?),
                    Some(other) => {
                        return Err(bad_request(format!(
                            "unsupported content part type '{other}' for Gemini models"
                        )))
                    }
                    None => return Err(bad_request("content part is missing 'type'")),
                }
            }
        }
        _ => {
            return Err(bad_request(
                "user message content must be a string or an array of content parts",
            ))
        }
    }
    Ok(out)
}

/// The JSON object a function call carries, from OpenAI's JSON-encoded arguments string.
fn call_args(arguments: Option<&Value>, id: &str) -> Result<Value, TranslateError> {
    let args = match arguments {
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
    // Gemini's functionCall.args is a JSON object (a protobuf Struct).
    if !args.is_object() {
        return Err(bad_request(format!(
            "tool call '{id}' arguments must be a JSON object"
        )));
    }
    Ok(args)
}

/// The functionCall part replaying an assistant tool call; records the call's name under its id
/// so the tool message answering it can be named.
fn function_call_part(
    call: &Value,
    names: &mut HashMap<String, String>,
) -> Result<Value, TranslateError> {
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
    let args = call_args(function.get("arguments"), id)?;
    names.insert(id.to_owned(), name.to_owned());
    let mut part = Map::new();
    part.insert("functionCall".into(), json!({"name": name, "args": args}));
    // Thinking models refuse a replayed call without the signature they attached to it.
    let signature = call
        .get("provider_specific_fields")
        .and_then(|f| f.get("thought_signature"))
        .and_then(Value::as_str)
        .or_else(|| split_tool_call_id(id).1);
    if let Some(sig) = signature {
        part.insert(THOUGHT_SIGNATURE_FIELD.into(), json!(sig));
    }
    Ok(Value::Object(part))
}

fn assistant_parts(
    msg: &Value,
    names: &mut HashMap<String, String>,
) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::new();
    match msg.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => text_part(&mut out, s),
        Some(Value::Array(parts)) => {
            for part in parts {
                // A refusal is what the assistant said, so it is replayed as text.
                let text = match part.get("type").and_then(Value::as_str) {
                    Some("text") => text_of_part(part)?,
                    Some("refusal") => part
                        .get("refusal")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    _ => {
                        return Err(bad_request(
                            "assistant content parts must be of type 'text'",
                        ))
                    }
                };
                text_part(&mut out, text);
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
            out.push(function_call_part(call, names)?);
        }
    }
    // The legacy single `function_call` of older clients.
    if let Some(call) = msg.get("function_call").filter(|v| !v.is_null()) {
        let name = call
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("function_call.name must be a string"))?;
        let args = call_args(call.get("arguments"), name)?;
        out.push(json!({"functionCall": {"name": name, "args": args}}));
    }
    Ok(out)
}

/// The result text of a tool message: a string, or text parts joined.
fn tool_result_text(content: Option<&Value>) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(text_of_part(part)?),
                    _ => return Err(bad_request("tool messages may only contain text parts")),
                }
            }
            Ok(texts.concat())
        }
        Some(_) => Err(bad_request(
            "tool message content must be a string or an array of text parts",
        )),
    }
}

/// A tool (or legacy function) message as a functionResponse part. Gemini pairs a response with
/// its call by function name, which OpenAI's tool messages don't carry: it is found from the
/// earlier assistant tool call with the same id.
fn function_response_part(
    msg: &Value,
    names: &HashMap<String, String>,
) -> Result<Value, TranslateError> {
    let name = match msg.get("tool_call_id").and_then(Value::as_str) {
        Some(id) => names
            .get(id)
            .map(String::as_str)
            .or_else(|| msg.get("name").and_then(Value::as_str))
            .ok_or_else(|| {
                bad_request(format!(
                    "tool message answers tool call '{id}', which no earlier assistant message made"
                ))
            })?,
        None => msg
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("tool messages require a string 'tool_call_id'"))?,
    };
    let text = tool_result_text(msg.get("content"))?;
    // functionResponse.response must be an object: a JSON object result is passed as is.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"content": text}),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

/// Google's own tools, which LiteLLM callers may pass as `{"googleSearch": {}}` entries.
const NATIVE_TOOLS: [(&str, &str); 6] = [
    ("googleSearch", "googleSearch"),
    ("google_search", "googleSearch"),
    ("codeExecution", "codeExecution"),
    ("code_execution", "codeExecution"),
    ("urlContext", "urlContext"),
    ("url_context", "urlContext"),
];

fn native_tool(tool: &Value) -> Option<Value> {
    let obj = tool.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (key, config) = obj.iter().next()?;
    let (_, name) = NATIVE_TOOLS.iter().find(|(k, _)| k == key)?;
    Some(json!({ *name: config }))
}

fn function_declaration(tool: &Value) -> Result<Value, TranslateError> {
    let function = tool
        .get("function")
        .ok_or_else(|| bad_request("tools[].function is required"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("tools[].function.name must be a string"))?;
    let mut decl = Map::new();
    decl.insert("name".into(), json!(name));
    if let Some(desc) = function.get("description").and_then(Value::as_str) {
        decl.insert("description".into(), json!(desc));
    }
    if let Some(params) = function.get("parameters").filter(|p| !p.is_null()) {
        let cleaned = clean_schema(params)?;
        // Gemini refuses an object schema with no properties; a tool without arguments
        // simply has no parameters.
        let has_properties = cleaned
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        let is_object = cleaned.get("type").and_then(Value::as_str) == Some("object");
        if has_properties || !is_object {
            decl.insert("parameters".into(), cleaned);
        }
    }
    Ok(Value::Object(decl))
}

/// OpenAI tools → Gemini `tools` entries: one entry holding every function declaration, then
/// one per Google tool.
fn convert_tools(tools: &Value) -> Result<(Vec<Value>, usize), TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| bad_request("tools must be an array"))?;
    let mut declarations = Vec::with_capacity(tools.len());
    let mut native = Vec::new();
    for tool in tools {
        if let Some(t) = native_tool(tool) {
            native.push(t);
            continue;
        }
        match tool.get("type").and_then(Value::as_str) {
            Some("function") | None => declarations.push(function_declaration(tool)?),
            Some(other) => {
                return Err(bad_request(format!(
                    "tool type '{other}' is not supported for Gemini models"
                )))
            }
        }
    }
    let n = declarations.len();
    let mut out = Vec::with_capacity(native.len() + 1);
    if !declarations.is_empty() {
        out.push(json!({"functionDeclarations": declarations}));
    }
    out.extend(native);
    Ok((out, n))
}

/// Returns None when no toolConfig should be sent.
fn convert_tool_choice(choice: &Value, functions: usize) -> Result<Option<Value>, TranslateError> {
    let (mode, allowed) = match choice {
        Value::Null => return Ok(None),
        Value::String(s) => match s.as_str() {
            "auto" => ("AUTO", None),
            "required" => ("ANY", None),
            "none" => ("NONE", None),
            other => return Err(bad_request(format!("unknown tool_choice '{other}'"))),
        },
        Value::Object(_) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("tool_choice.function.name must be a string"))?;
            ("ANY", Some(name))
        }
        _ => return Err(bad_request("tool_choice must be a string or an object")),
    };
    if functions == 0 {
        // auto/none without functions are no-ops; forcing a call without any is a caller error.
        return match mode {
            "AUTO" | "NONE" => Ok(None),
            _ => Err(bad_request(
                "tool_choice requires a non-empty 'tools' array of functions",
            )),
        };
    }
    let mut config = Map::new();
    config.insert("mode".into(), json!(mode));
    if let Some(name) = allowed {
        config.insert("allowedFunctionNames".into(), json!([name]));
    }
    Ok(Some(json!({"functionCallingConfig": config})))
}

fn stop_sequences(req: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    match req.get("stop") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            Ok((!a.is_empty()).then(|| Value::Array(a.clone())))
        }
        Some(_) => Err(bad_request("stop must be a string or an array of strings")),
    }
}

fn response_format(
    req: &Map<String, Value>,
    config: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let Some(rf) = req.get("response_format").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            let schema = rf
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .filter(|s| s.is_object())
                .ok_or_else(|| {
                    bad_request("response_format json_schema needs a 'json_schema.schema' object")
                })?;
            config.insert("responseMimeType".into(), json!("application/json"));
            config.insert("responseSchema".into(), clean_schema(schema)?);
        }
        Some(other) => {
            return Err(bad_request(format!(
                "response_format type '{other}' is not supported for Gemini models"
            )))
        }
        None => return Err(bad_request("response_format.type must be a string")),
    }
    Ok(())
}

/// OpenAI's reasoning_effort as a thinking budget in tokens (thinking stays visible as
/// `reasoning_content`).
fn thinking_config(req: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let budget = match req.get("reasoning_effort") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "none" | "disable" => 0,
            "minimal" => 128,
            "low" => 1024,
            "medium" => 2048,
            "high" => 4096,
            other => {
                return Err(bad_request(format!(
                    "reasoning_effort '{other}' is not supported for Gemini models"
                )))
            }
        },
        Some(_) => return Err(bad_request("reasoning_effort must be a string")),
    };
    Ok(Some(if budget == 0 {
        json!({"thinkingBudget": 0})
    } else {
        json!({"thinkingBudget": budget, "includeThoughts": true})
    }))
}

/// OpenAI fields whose meaning Gemini can't honour: refused rather than silently dropped, so a
/// caller relying on them learns it. Fields that change nothing in the answer (`user`,
/// `stream_options`, `metadata`, `parallel_tool_calls`, …) are ignored.
fn refuse_unsupported(req: &Map<String, Value>) -> Result<(), TranslateError> {
    let set = |key: &str| req.get(key).is_some_and(|v| !v.is_null());
    if req.get("logprobs").and_then(Value::as_bool) == Some(true) || set("top_logprobs") {
        return Err(bad_request(
            "logprobs are not supported for Gemini models through this gateway",
        ));
    }
    if req
        .get("logit_bias")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        return Err(bad_request("logit_bias is not supported for Gemini models"));
    }
    if set("functions") || set("function_call") {
        return Err(bad_request(
            "the legacy 'functions'/'function_call' parameters are not supported for Gemini \
             models; use 'tools' and 'tool_choice'",
        ));
    }
    if set("audio") {
        return Err(bad_request(
            "audio output is not supported for Gemini models",
        ));
    }
    if let Some(m) = req.get("modalities").and_then(Value::as_array) {
        if m.iter().any(|x| x.as_str() != Some("text")) {
            return Err(bad_request(
                "only the 'text' output modality is supported for Gemini models",
            ));
        }
    }
    if set("prediction") {
        return Err(bad_request(
            "predicted outputs ('prediction') are not supported for Gemini models",
        ));
    }
    Ok(())
}

/// OpenAI chat-completions request body → Gemini `generateContent` body (the model goes in the
/// URL, streaming in the method, so neither appears here). `default_max_tokens` applies when the
/// caller set neither max_tokens nor max_completion_tokens; Gemini itself needs none.
pub(crate) fn to_gemini_request(
    req: &Map<String, Value>,
    default_max_tokens: Option<u64>,
) -> Result<Value, TranslateError> {
    refuse_unsupported(req)?;
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad_request("messages must be a non-empty array"))?;

    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    let mut call_names = HashMap::new();
    for msg in messages {
        let role = msg
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("every message needs a string 'role'"))?;
        match role {
            "system" | "developer" => {
                let text = system_text(msg.get("content"))?;
                text_part(&mut system, &text);
            }
            "user" => push_turn(&mut turns, "user", user_parts(msg.get("content"))?),
            "assistant" => push_turn(&mut turns, "model", assistant_parts(msg, &mut call_names)?),
            "tool" | "function" => push_turn(
                &mut turns,
                "user",
                vec![function_response_part(msg, &call_names)?],
            ),
            other => {
                return Err(bad_request(format!(
                    "message role '{other}' is not supported for Gemini models"
                )))
            }
        }
    }
    if turns.is_empty() {
        if system.is_empty() {
            return Err(bad_request("messages have no content to send"));
        }
        // Gemini refuses a request with a system instruction but no contents.
        turns.push(Turn {
            role: "user",
            parts: vec![json!({"text": "."})],
        });
    }

    let mut out = Map::new();
    out.insert(
        "contents".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|t| json!({"role": t.role, "parts": t.parts}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }

    let mut tools = match req.get("tools") {
        None | Some(Value::Null) => (Vec::new(), 0),
        Some(t) => convert_tools(t)?,
    };
    // OpenAI's search-grounded chat maps onto Google Search grounding.
    if req.get("web_search_options").is_some_and(Value::is_object) {
        tools.0.push(json!({"googleSearch": {}}));
    }
    if let Some(choice) = req.get("tool_choice") {
        if let Some(c) = convert_tool_choice(choice, tools.1)? {
            out.insert("toolConfig".into(), c);
        }
    }
    if !tools.0.is_empty() {
        out.insert("tools".into(), Value::Array(tools.0));
    }

    let mut config = Map::new();
    // max_completion_tokens is OpenAI's newer name and wins when both are given.
    let max_tokens = match positive_int(req, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => positive_int(req, "max_tokens")?.or(default_max_tokens),
    };
    if let Some(n) = max_tokens {
        config.insert("maxOutputTokens".into(), json!(n));
    }
    copy_number(req, "temperature", "temperature", &mut config)?;
    copy_number(req, "top_p", "topP", &mut config)?;
    if let Some(k) = positive_int(req, "top_k")? {
        config.insert("topK".into(), json!(k));
    }
    if let Some(n) = positive_int(req, "n")? {
        config.insert("candidateCount".into(), json!(n));
    }
    match req.get("seed") {
        None | Some(Value::Null) => {}
        Some(v) if v.is_i64() => {
            config.insert("seed".into(), v.clone());
        }
        Some(_) => return Err(bad_request("seed must be an integer")),
    }
    copy_number(req, "presence_penalty", "presencePenalty", &mut config)?;
    copy_number(req, "frequency_penalty", "frequencyPenalty", &mut config)?;
    if let Some(stop) = stop_sequences(req)? {
        config.insert("stopSequences".into(), stop);
    }
    response_format(req, &mut config)?;
    if let Some(thinking) = thinking_config(req)? {
        config.insert("thinkingConfig".into(), thinking);
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }

    // LiteLLM passes Google's safety settings through under this name.
    match req.get("safety_settings") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Array(_)) => {
            out.insert("safetySettings".into(), v.clone());
        }
        Some(_) => return Err(bad_request("safety_settings must be an array")),
    }

    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// JSON built from the words OpenAI requests and JSON schemas use.
    fn request_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
            prop::sample::select(vec![
                "user",
                "assistant",
                "tool",
                "system",
                "text",
                "image_url",
                "function",
                "object",
                "string",
                "#/$defs/a",
                "data:image/png;base64,AA",
                "https://x/y.png",
            ])
            .prop_map(|s| json!(s)),
        ];
        let keys = prop::sample::select(vec![
            "role",
            "content",
            "type",
            "text",
            "image_url",
            "url",
            "tool_calls",
            "id",
            "function",
            "name",
            "arguments",
            "tool_call_id",
            "parameters",
            "properties",
            "items",
            "anyOf",
            "allOf",
            "$ref",
            "$defs",
            "a",
            "required",
        ]);
        leaf.prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn random_requests_are_translated_or_refused(
            messages in request_json(),
            tools in request_json(),
            choice in request_json(),
        ) {
            let body = req(json!({"messages": messages, "tools": tools, "tool_choice": choice}));
            match to_gemini_request(&body, None) {
                Ok(v) => prop_assert!(v["contents"].as_array().is_some_and(|c| !c.is_empty())),
                Err(TranslateError::BadRequest(m)) => prop_assert!(!m.is_empty()),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }
    }

    fn req(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test request must be an object"),
        }
    }

    fn translate(v: Value) -> Value {
        to_gemini_request(&req(v), None).unwrap()
    }

    fn bad_request_msg(v: Value) -> String {
        match to_gemini_request(&req(v), None) {
            Err(TranslateError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn system_user_assistant_and_generation_config() {
        let out = to_gemini_request(
            &req(json!({
                "model": "alias",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                    {"role": "user", "content": "Hello"},
                    {"role": "assistant", "content": "Bonjour"},
                    {"role": "user", "content": "Again"}
                ],
                "max_tokens": 50,
                "temperature": 0.5,
                "top_p": 0.9,
                "top_k": 40,
                "stop": "END",
                "n": 2,
                "seed": 7,
                "presence_penalty": 0.1,
                "frequency_penalty": 0.2,
                "user": "u-42",
                "stream": true,
                "stream_options": {"include_usage": true},
                "parallel_tool_calls": false,
                "metadata": {"x": "y"},
                "logprobs": false
            })),
            Some(1024),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use French."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "Hello"}]},
                    {"role": "model", "parts": [{"text": "Bonjour"}]},
                    {"role": "user", "parts": [{"text": "Again"}]}
                ],
                "generationConfig": {
                    "maxOutputTokens": 50,
                    "temperature": 0.5,
                    "topP": 0.9,
                    "topK": 40,
                    "stopSequences": ["END"],
                    "candidateCount": 2,
                    "seed": 7,
                    "presencePenalty": 0.1,
                    "frequencyPenalty": 0.2
                }
            })
        );
    }

    #[test]
    fn max_tokens_precedence_and_default() {
        let msgs = json!([{"role": "user", "content": "Hi"}]);
        let out = to_gemini_request(
            &req(json!({"messages": msgs, "max_tokens": 10, "max_completion_tokens": 20})),
            Some(99),
        )
        .unwrap();
        assert_eq!(out["generationConfig"], json!({"maxOutputTokens": 20}));
        let out = to_gemini_request(&req(json!({"messages": msgs})), Some(99)).unwrap();
        assert_eq!(out["generationConfig"], json!({"maxOutputTokens": 99}));
        // Without a default nothing is sent: Gemini uses the model's own limit.
        let out = translate(json!({"messages": msgs}));
        assert_eq!(out.get("generationConfig"), None);
        assert_eq!(
            bad_request_msg(json!({"messages": msgs, "max_tokens": 0})),
            "max_tokens must be a positive integer"
        );
    }

    #[test]
    fn stop_list_and_type_errors() {
        let msgs = json!([{"role": "user", "content": "Hi"}]);
        let out = translate(json!({"messages": msgs, "stop": ["a", "b"]}));
        assert_eq!(out["generationConfig"]["stopSequences"], json!(["a", "b"]));
        let out = translate(json!({"messages": msgs, "stop": []}));
        assert_eq!(out.get("generationConfig"), None);
        assert_eq!(
            bad_request_msg(json!({"messages": msgs, "stop": [1]})),
            "stop must be a string or an array of strings"
        );
        assert_eq!(
            bad_request_msg(json!({"messages": msgs, "temperature": "hot"})),
            "temperature must be a number"
        );
        assert_eq!(
            bad_request_msg(json!({"messages": msgs, "seed": 1.5})),
            "seed must be an integer"
        );
    }

    #[test]
    fn consecutive_same_role_turns_merge() {
        let out = translate(json!({"messages": [
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": [{"type": "text", "text": "four"}, {"type": "refusal", "refusal": "no"}]},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "five"}
        ]}));
        assert_eq!(
            out["contents"],
            json!([
                {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
                {"role": "model", "parts": [{"text": "three"}, {"text": "four"}, {"text": "no"}]},
                {"role": "user", "parts": [{"text": "five"}]}
            ])
        );
    }

    #[test]
    fn images_audio_and_files() {
        let out = translate(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.PNG?size=large"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/picture"}},
            {"type": "image_url", "image_url": "http://example.com/a.webp"},
            {"type": "image_url", "image_url": {"url": "https://example.com/x", "format": "image/gif"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}},
            {"type": "file", "file": {"file_id": "https://generativelanguage.googleapis.com/v1beta/files/abc", "format": "application/pdf"}}
        ]}]}));
        assert_eq!(
            out["contents"][0]["parts"],
            json!([
                {"text": "What is this?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.PNG?size=large"}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/picture"}},
                {"fileData": {"mimeType": "image/webp", "fileUri": "http://example.com/a.webp"}},
                {"fileData": {"mimeType": "image/gif", "fileUri": "https://example.com/x"}},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
                {"fileData": {"mimeType": "application/pdf", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}
            ])
        );
    }

    #[test]
    fn bad_content_parts_rejected() {
        let with = |part: Value| json!({"messages": [{"role": "user", "content": [part]}]});
        assert_eq!(
            bad_request_msg(with(
                json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}})
            )),
            "image_url must be an http(s) URL or a base64 data URL"
        );
        assert_eq!(
            bad_request_msg(with(
                json!({"type": "image_url", "image_url": {"url": "data:image/png,abc"}})
            )),
            "image_url data URLs must be base64 with a media type"
        );
        assert_eq!(
            bad_request_msg(with(json!({"type": "video", "video": {}}))),
            "unsupported content part type 'video' for Gemini models"
        );
        assert_eq!(
            bad_request_msg(with(json!({"text": "no type"}))),
            "content part is missing 'type'"
        );
        assert_eq!(
            bad_request_msg(json!({"messages": [{"role": "user", "content": null}]})),
            "user message content must be a string or an array of content parts"
        );
        assert_eq!(
            bad_request_msg(json!({"messages": [{"role": "critic", "content": "x"}]})),
            "message role 'critic' is not supported for Gemini models"
        );
    }

    #[test]
    fn messages_required_and_system_only_gets_a_placeholder_turn() {
        for body in [
            json!({}),
            json!({"messages": []}),
            json!({"messages": "hi"}),
        ] {
            assert_eq!(bad_request_msg(body), "messages must be a non-empty array");
        }
        assert_eq!(
            bad_request_msg(json!({"messages": [{"role": "user", "content": ""}]})),
            "messages have no content to send"
        );
        let out = translate(json!({"messages": [{"role": "system", "content": "Say hi."}]}));
        assert_eq!(
            out,
            json!({
                "systemInstruction": {"parts": [{"text": "Say hi."}]},
                "contents": [{"role": "user", "parts": [{"text": "."}]}]
            })
        );
    }

    #[test]
    fn tool_calls_and_results_round_trip() {
        let out = translate(json!({"messages": [
            {"role": "user", "content": "Weather in Paris and the time?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2__thought__c2lnbmF0dXJl", "type": "function", "function": {"name": "now", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"},
            {"role": "tool", "tool_call_id": "call_2__thought__c2lnbmF0dXJl", "content": [{"type": "text", "text": "12:00"}]},
            {"role": "user", "content": "Thanks"}
        ]}));
        assert_eq!(
            out["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Weather in Paris and the time?"}]},
                {"role": "model", "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "now", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl"}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                    {"functionResponse": {"name": "now", "response": {"content": "12:00"}}},
                    {"text": "Thanks"}
                ]}
            ])
        );
    }

    #[test]
    fn tool_call_errors() {
        let call = |args: &str| {
            json!({"messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": args}}]}
            ]})
        };
        assert!(bad_request_msg(call("{not json"))
            .starts_with("tool call 'c1' has arguments that are not valid JSON"));
        assert_eq!(
            bad_request_msg(call("[1, 2]")),
            "tool call 'c1' arguments must be a JSON object"
        );
        assert_eq!(
            bad_request_msg(json!({"messages": [
                {"role": "user", "content": "x"},
                {"role": "tool", "tool_call_id": "nope", "content": "r"}
            ]})),
            "tool message answers tool call 'nope', which no earlier assistant message made"
        );
        // A result whose call isn't in the history may still name its function.
        let out = translate(json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "old", "name": "f", "content": "[1]"}
        ]}));
        assert_eq!(
            out["contents"][0]["parts"][1],
            json!({"functionResponse": {"name": "f", "response": {"content": "[1]"}}})
        );
    }

    #[test]
    fn tools_choice_and_schema_cleaning() {
        let out = translate(json!({
            "messages": [{"role": "user", "content": "x"}],
            "tools": [
                {"type": "function", "function": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "strict": true,
                    "parameters": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {
                            "city": {"type": "string", "format": "uri", "examples": ["Paris"]},
                            "units": {"type": ["string", "null"], "enum": ["c", "f"]},
                            "days": {"type": "array", "items": {"type": "object", "additionalProperties": false, "properties": {"n": {"type": "integer"}}}}
                        },
                        "required": ["city"]
                    }
                }},
                {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
                {"googleSearch": {}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }));
        assert_eq!(
            out["tools"],
            json!([
                {"functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "city": {"type": "string"},
                                "units": {"type": "string", "nullable": true, "enum": ["c", "f"]},
                                "days": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}}
                            },
                            "required": ["city"]
                        }
                    },
                    {"name": "now"}
                ]},
                {"googleSearch": {}}
            ])
        );
        assert_eq!(
            out["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
        );
    }

    #[test]
    fn tool_choice_modes() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        for (choice, mode) in [("none", "NONE"), ("auto", "AUTO"), ("required", "ANY")] {
            let out = translate(json!({
                "messages": [{"role": "user", "content": "x"}],
                "tools": tools,
                "tool_choice": choice
            }));
            assert_eq!(
                out["toolConfig"],
                json!({"functionCallingConfig": {"mode": mode}})
            );
        }
        // Without tools: auto/none are no-ops, forcing a call is an error.
        let out = translate(
            json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}),
        );
        assert_eq!(out.get("toolConfig"), None);
        assert_eq!(
            bad_request_msg(
                json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})
            ),
            "tool_choice requires a non-empty 'tools' array of functions"
        );
        assert_eq!(
            bad_request_msg(
                json!({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "sometimes"})
            ),
            "unknown tool_choice 'sometimes'"
        );
        assert_eq!(
            bad_request_msg(
                json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "file_search"}]})
            ),
            "tool type 'file_search' is not supported for Gemini models"
        );
    }

    #[test]
    fn response_formats() {
        let msgs = json!([{"role": "user", "content": "x"}]);
        let out = translate(json!({"messages": msgs, "response_format": {"type": "json_object"}}));
        assert_eq!(
            out["generationConfig"],
            json!({"responseMimeType": "application/json"})
        );
        let out = translate(
            json!({"messages": msgs, "response_format": {"type": "json_schema", "json_schema": {
                "name": "person", "strict": true,
                "schema": {"type": "object", "additionalProperties": false,
                           "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                           "required": ["name", "age"]}
            }}}),
        );
        assert_eq!(
            out["generationConfig"],
            json!({
                "responseMimeType": "application/json",
                "responseSchema": {"type": "object",
                    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                    "required": ["name", "age"]}
            })
        );
        let out = translate(json!({"messages": msgs, "response_format": {"type": "text"}}));
        assert_eq!(out.get("generationConfig"), None);
        assert_eq!(
            bad_request_msg(json!({"messages": msgs, "response_format": {"type": "json_schema"}})),
            "response_format json_schema needs a 'json_schema.schema' object"
        );
        assert_eq!(
            bad_request_msg(json!({"messages": msgs, "response_format": {"type": "yaml"}})),
            "response_format type 'yaml' is not supported for Gemini models"
        );
    }

    #[test]
    fn reasoning_effort_becomes_a_thinking_budget() {
        let msgs = json!([{"role": "user", "content": "x"}]);
        let out = translate(json!({"messages": msgs, "reasoning_effort": "low"}));
        assert_eq!(
            out["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 1024, "includeThoughts": true})
        );
        let out = translate(json!({"messages": msgs, "reasoning_effort": "none"}));
        assert_eq!(
            out["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 0})
        );
        assert_eq!(
            bad_request_msg(json!({"messages": msgs, "reasoning_effort": "extreme"})),
            "reasoning_effort 'extreme' is not supported for Gemini models"
        );
    }

    #[test]
    fn unsupported_fields_refused_harmless_ones_ignored() {
        let msgs = json!([{"role": "user", "content": "x"}]);
        for (field, value, msg) in [
            (
                "logprobs",
                json!(true),
                "logprobs are not supported for Gemini models through this gateway",
            ),
            (
                "top_logprobs",
                json!(3),
                "logprobs are not supported for Gemini models through this gateway",
            ),
            (
                "logit_bias",
                json!({"50256": -100}),
                "logit_bias is not supported for Gemini models",
            ),
            (
                "audio",
                json!({"voice": "alloy"}),
                "audio output is not supported for Gemini models",
            ),
            (
                "modalities",
                json!(["text", "audio"]),
                "only the 'text' output modality is supported for Gemini models",
            ),
        ] {
            let mut body = json!({"messages": msgs});
            body[field] = value;
            assert_eq!(bad_request_msg(body), msg, "{field}");
        }
        let out = translate(json!({
            "messages": msgs, "logit_bias": {}, "modalities": ["text"], "store": false,
            "service_tier": "auto", "some_gateway_extra": {"a": 1}
        }));
        assert_eq!(
            out,
            json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}]})
        );
    }

    #[test]
    fn web_search_and_safety_settings_pass_through() {
        let settings = json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]);
        let out = translate(json!({
            "messages": [{"role": "user", "content": "news?"}],
            "web_search_options": {},
            "safety_settings": settings
        }));
        assert_eq!(out["tools"], json!([{"googleSearch": {}}]));
        assert_eq!(out["safetySettings"], settings);
    }
}
