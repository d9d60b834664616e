//! Google AI Studio's Gemini API (`generateContent`, `streamGenerateContent`,
//! `batchEmbedContents`) behind the OpenAI one.
//!
//! The translations are free of HTTP and gateway types so they can be tested on literal JSON
//! alone; `provider` plugs them into [`crate::providers::Provider`].

mod embeddings;
mod error;
mod provider;
mod request;
mod response;
mod schema;
mod stream;

use serde_json::{json, Value};

use super::translate::{bad_upstream, TranslateError, Usage};

pub(crate) use embeddings::{from_gemini_embed_response, to_gemini_embed_request};
pub(crate) use error::{map_error, map_google_error};
pub(crate) use provider::{
    generate_body, read_generate_answer, request_map, stream_translation, Gemini,
};
pub(crate) use request::to_gemini_request;
pub(crate) use response::from_gemini_response;
pub(crate) use stream::StreamTranslator;

/// Where Google AI Studio serves the Gemini API when a deployment sets no `api_base`.
pub(crate) const DEFAULT_API_BASE: &str = "https://generativelanguage.googleapis.com";

/// The header carrying the API key. The `?key=` query form is never used: URLs get logged.
pub(crate) const API_KEY_HEADER: &str = "x-goog-api-key";

/// The model method a request calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Generate,
    Stream,
    BatchEmbed,
}

impl Action {
    fn method(self) -> &'static str {
        match self {
            Action::Generate => "generateContent",
            // Without alt=sse Google streams one long JSON array instead of server-sent events.
            Action::Stream => "streamGenerateContent?alt=sse",
            Action::BatchEmbed => "batchEmbedContents",
        }
    }
}

/// The URL of `action` on `upstream_model`. `base` may or may not carry the API version
/// (`https://generativelanguage.googleapis.com` or `…/v1beta`); `v1beta` is added when it doesn't.
pub(crate) fn url(base: &str, upstream_model: &str, action: Action) -> String {
    let base = base.trim_end_matches('/');
    let model = model_id(upstream_model);
    let version = if base.ends_with("/v1beta") || base.ends_with("/v1") {
        ""
    } else {
        "/v1beta"
    };
    format!("{base}{version}/models/{model}:{}", action.method())
}

/// The bare model id: callers may write either `gemini-2.0-flash` or `models/gemini-2.0-flash`.
fn model_id(upstream_model: &str) -> &str {
    upstream_model
        .strip_prefix("models/")
        .unwrap_or(upstream_model)
}

/// OpenAI's usage object for the counts read from a Gemini answer.
fn usage_json(u: &Usage, reasoning_tokens: u64) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}
    })
}

/// Token counts from a `usageMetadata` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct GeminiUsage {
    prompt: u64,
    candidates: u64,
    thoughts: u64,
    cached: u64,
    tool_use_prompt: u64,
}

impl GeminiUsage {
    fn read(meta: &Value) -> GeminiUsage {
        let n = |key: &str| meta.get(key).and_then(Value::as_u64).unwrap_or(0);
        GeminiUsage {
            prompt: n("promptTokenCount"),
            candidates: n("candidatesTokenCount"),
            thoughts: n("thoughtsTokenCount"),
            cached: n("cachedContentTokenCount"),
            tool_use_prompt: n("toolUsePromptTokenCount"),
        }
    }

    /// Thinking is billed as output, so it counts as completion. The cached tokens are part of
    /// `promptTokenCount` already; tool-use prompt tokens (search results fed back) are not but are
    /// billed as input.
    fn to_usage(self) -> Usage {
        Usage {
            prompt_tokens: self.prompt + self.tool_use_prompt,
            completion_tokens: self.candidates + self.thoughts,
            cache_read_input_tokens: self.cached,
            cache_creation_input_tokens: 0,
        }
    }
}

/// Gemini's `finishReason` in OpenAI's terms. A candidate that called functions and stopped
/// normally reports `tool_calls`, as OpenAI does.
fn map_finish_reason(reason: &str, called_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "LANGUAGE"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "IMAGE_OTHER"
        | "NO_IMAGE"
        | "OTHER" => "content_filter",
        _ if called_tools => "tool_calls",
        // STOP, FINISH_REASON_UNSPECIFIED, MALFORMED_FUNCTION_CALL, and reasons added later.
        _ => "stop",
    }
}

/// The part field holding the signature thinking models attach to a function call.
const THOUGHT_SIGNATURE_FIELD: &str = "thoughtSignature";

/// Joins a function call's thought signature to the tool call id handed to the client, so the
/// signature comes back when the client replays the call (OpenAI's format has no other place
/// for it). The same separator as LiteLLM's, so conversations move between the two.
const THOUGHT_SIGNATURE_SEPARATOR: &str = "__thought__";

/// A tool call id and the thought signature joined to it, if any.
fn split_tool_call_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(THOUGHT_SIGNATURE_SEPARATOR) {
        Some((id, sig)) if !sig.is_empty() => (id, Some(sig)),
        _ => (id, None),
    }
}

/// The OpenAI tool call id for the `n`-th function call of a response. Gemini returns calls
/// without ids (or with ids only some models set), while OpenAI clients need one to answer the
/// call; `response_id` differs per answer, which keeps ids unique within a conversation.
fn tool_call_id(part: &Value, response_id: &str, n: usize) -> String {
    let given = part
        .get("functionCall")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let mut id = match given {
        Some(id) => id.to_owned(),
        None => {
            let suffix = response_id
                .rsplit(['-', '_'])
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or(response_id);
            format!("call_{suffix}_{n}")
        }
    };
    if let Some(sig) = part
        .get(THOUGHT_SIGNATURE_FIELD)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        id.push_str(THOUGHT_SIGNATURE_SEPARATOR);
        id.push_str(sig);
    }
    id
}

/// What one candidate's `content.parts` say, in OpenAI's terms.
#[derive(Debug, Default)]
struct Parts {
    /// The answer text; thought parts are excluded.
    text: String,
    has_text: bool,
    /// Thought summaries (only sent when thoughts were asked for).
    reasoning: String,
    /// OpenAI tool calls without their index (the stream numbers them).
    calls: Vec<(String, String, String)>,
}

impl Parts {
    /// Reads a candidate's parts. `calls_before` counts the function calls already given ids in
    /// this response, so each id is new.
    fn read(
        candidate: &Value,
        response_id: &str,
        calls_before: usize,
    ) -> Result<Parts, TranslateError> {
        let mut out = Parts::default();
        let parts = match candidate.get("content").and_then(|c| c.get("parts")) {
            None | Some(Value::Null) => return Ok(out),
            Some(Value::Array(p)) => p,
            Some(_) => {
                return Err(bad_upstream(
                    "Gemini candidate content.parts is not an array",
                ))
            }
        };
        for part in parts {
            if let Some(call) = part.get("functionCall") {
                let name = call
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_upstream("Gemini functionCall has no name"))?;
                let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
                let id = tool_call_id(part, response_id, calls_before + out.calls.len());
                out.calls.push((id, name.to_owned(), args.to_string()));
            } else if let Some(text) = part.get("text").and_then(Value::as_str) {
                if part.get("thought").and_then(Value::as_bool) == Some(true) {
                    out.reasoning.push_str(text);
                } else {
                    out.has_text = true;
                    out.text.push_str(text);
                }
            }
            // inlineData, executableCode, ...: no OpenAI chat equivalent.
        }
        Ok(out)
    }

    /// Bytes generated: what an aborted stream is billed by when its final usage never came.
    fn generated_bytes(&self) -> usize {
        self.text.len()
            + self.reasoning.len()
            + self.calls.iter().map(|(_, _, a)| a.len()).sum::<usize>()
    }
}

/// A candidate's index: Gemini omits it for the first.
fn candidate_index(candidate: &Value, position: usize) -> u64 {
    candidate
        .get("index")
        .and_then(Value::as_u64)
        .unwrap_or(position as u64)
}

/// The message of an in-band `{"error": {...}}` answer.
fn inband_error(v: &Value) -> Option<String> {
    let err = v.get("error")?;
    Some(
        err.get("message")
            .and_then(Value::as_str)
            .unwrap_or("Gemini reported an error")
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_adds_the_version_unless_the_base_has_one() {
        assert_eq!(
            url(DEFAULT_API_BASE, "gemini-2.0-flash", Action::Generate),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            url(
                "http://127.0.0.1:9/",
                "models/gemini-2.0-flash",
                Action::Stream
            ),
            "http://127.0.0.1:9/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            url(
                "https://proxy.example/gemini/v1beta/",
                "text-embedding-004",
                Action::BatchEmbed
            ),
            "https://proxy.example/gemini/v1beta/models/text-embedding-004:batchEmbedContents"
        );
        assert_eq!(
            url(
                "https://proxy.example/v1",
                "gemini-1.5-pro",
                Action::Generate
            ),
            "https://proxy.example/v1/models/gemini-1.5-pro:generateContent"
        );
        // A base merely containing "v1" somewhere is not versioned.
        assert_eq!(
            url("https://v1.example", "m", Action::Generate),
            "https://v1.example/v1beta/models/m:generateContent"
        );
    }

    #[test]
    fn usage_counts_thoughts_as_completion_and_cached_as_prompt_detail() {
        let counts = GeminiUsage::read(&json!({
            "promptTokenCount": 100,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30,
            "cachedContentTokenCount": 60,
            "toolUsePromptTokenCount": 5,
            "totalTokenCount": 155
        }));
        let usage = counts.to_usage();
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 105,
                completion_tokens: 50,
                cache_read_input_tokens: 60,
                cache_creation_input_tokens: 0
            }
        );
        assert_eq!(
            usage_json(&usage, counts.thoughts),
            json!({
                "prompt_tokens": 105,
                "completion_tokens": 50,
                "total_tokens": 155,
                "prompt_tokens_details": {"cached_tokens": 60},
                "completion_tokens_details": {"reasoning_tokens": 30}
            })
        );
    }

    #[test]
    fn finish_reasons() {
        for (reason, tools, expected) in [
            ("STOP", false, "stop"),
            ("STOP", true, "tool_calls"),
            ("MAX_TOKENS", true, "length"),
            ("SAFETY", false, "content_filter"),
            ("RECITATION", false, "content_filter"),
            ("BLOCKLIST", false, "content_filter"),
            ("PROHIBITED_CONTENT", false, "content_filter"),
            ("SPII", false, "content_filter"),
            ("MALFORMED_FUNCTION_CALL", false, "stop"),
            ("SOMETHING_NEW", false, "stop"),
        ] {
            assert_eq!(map_finish_reason(reason, tools), expected, "{reason}");
        }
    }

    #[test]
    fn tool_call_ids_and_signatures() {
        let part = json!({"functionCall": {"name": "f", "args": {}}});
        assert_eq!(tool_call_id(&part, "chatcmpl-abc123", 2), "call_abc123_2");
        let part = json!({"functionCall": {"id": "g-1", "name": "f", "args": {}}});
        assert_eq!(tool_call_id(&part, "chatcmpl-abc123", 0), "g-1");
        let part = json!({"functionCall": {"name": "f"}, "thoughtSignature": "c2ln"});
        let id = tool_call_id(&part, "r", 0);
        assert_eq!(id, "call_r_0__thought__c2ln");
        assert_eq!(split_tool_call_id(&id), ("call_r_0", Some("c2ln")));
        assert_eq!(split_tool_call_id("call_1"), ("call_1", None));
    }
}
