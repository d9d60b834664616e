//! AWS Bedrock's runtime API behind the OpenAI one: chat through Converse (`converse`,
//! `converse-stream`), embeddings through InvokeModel (Titan and Cohere), every request signed
//! with SigV4.
//!
//! The translations are free of HTTP and gateway types so they can be tested on literal JSON
//! alone; `provider` plugs them into [`crate::providers::Provider`], `sign` signs.

mod embeddings;
mod error;
mod provider;
mod request;
mod response;
mod sign;
mod stream;

use serde_json::{json, Value};

use super::translate::Usage;

pub(crate) use provider::Bedrock;

/// The service name requests are signed for.
const SIGNING_SERVICE: &str = "bedrock";

/// The tool a JSON-schema `response_format` becomes: Converse has no JSON mode, so the schema is
/// offered as a tool the model must call, and the call's input is the answer. The same name as
/// LiteLLM's, so conversations move between the two.
const JSON_TOOL_NAME: &str = "json_tool_call";

/// The runtime endpoint of a region, for deployments that set no `api_base`.
pub(crate) fn default_endpoint(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// The runtime operation a request calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Converse,
    ConverseStream,
    Invoke,
}

impl Action {
    fn path(self) -> &'static str {
        match self {
            Action::Converse => "converse",
            Action::ConverseStream => "converse-stream",
            Action::Invoke => "invoke",
        }
    }
}

/// The URL of `action` on `model_id` under `base` (which may carry a path, e.g. a proxy's).
fn url(base: &str, model_id: &str, action: Action) -> String {
    format!(
        "{}/model/{}/{}",
        base.trim_end_matches('/'),
        encode_model_id(model_id),
        action.path()
    )
}

/// The model id as one path segment: ids hold `:` (`…-v1:0`) and ARNs hold `/`, so everything
/// but unreserved characters is percent-encoded.
fn encode_model_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 8);
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The model id Bedrock is called with: LiteLLM's `converse/` route prefix names the API, not
/// the model (a wildcard deployment may get it per request).
fn model_id(upstream_model: &str) -> &str {
    upstream_model
        .strip_prefix("converse/")
        .unwrap_or(upstream_model)
}

/// Token counts from a Converse `usage` object. Bedrock's `inputTokens` leaves out the tokens
/// read from or written to the prompt cache; OpenAI's prompt count includes them.
fn read_usage(u: &Value) -> Usage {
    let n = |key: &str| u.get(key).and_then(Value::as_u64).unwrap_or(0);
    let read = n("cacheReadInputTokens");
    let write = n("cacheWriteInputTokens");
    Usage {
        prompt_tokens: n("inputTokens") + read + write,
        completion_tokens: n("outputTokens"),
        cache_read_input_tokens: read,
        cache_creation_input_tokens: write,
    }
}

/// OpenAI's usage object for counts read from Bedrock.
fn usage_json(u: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
    });
    if u.cache_read_input_tokens > 0 || u.cache_creation_input_tokens > 0 {
        v["cache_read_input_tokens"] = json!(u.cache_read_input_tokens);
        v["cache_creation_input_tokens"] = json!(u.cache_creation_input_tokens);
    }
    v
}

/// Converse's `stopReason` in OpenAI's terms.
fn map_stop_reason(reason: &str) -> &'static str {
    match reason {
        "tool_use" => "tool_calls",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence, and reasons added later.
        _ => "stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_the_model_id() {
        assert_eq!(
            url(
                &default_endpoint("us-east-1"),
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                Action::Converse
            ),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );
        assert_eq!(
            url(
                "http://127.0.0.1:9/proxy/",
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
                Action::ConverseStream
            ),
            "http://127.0.0.1:9/proxy/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
        );
        assert_eq!(
            url("http://h", "amazon.titan-embed-text-v2:0", Action::Invoke),
            "http://h/model/amazon.titan-embed-text-v2%3A0/invoke"
        );
        assert_eq!(
            model_id("converse/us.amazon.nova-pro-v1:0"),
            "us.amazon.nova-pro-v1:0"
        );
        assert_eq!(
            model_id("meta.llama3-70b-instruct-v1:0"),
            "meta.llama3-70b-instruct-v1:0"
        );
    }

    #[test]
    fn usage_counts_cached_tokens_as_prompt() {
        let u = read_usage(&json!({
            "inputTokens": 10, "outputTokens": 5, "totalTokens": 115,
            "cacheReadInputTokens": 80, "cacheWriteInputTokens": 20
        }));
        assert_eq!(
            u,
            Usage {
                prompt_tokens: 110,
                completion_tokens: 5,
                cache_read_input_tokens: 80,
                cache_creation_input_tokens: 20
            }
        );
        assert_eq!(
            usage_json(&u),
            json!({"prompt_tokens": 110, "completion_tokens": 5, "total_tokens": 115,
                   "prompt_tokens_details": {"cached_tokens": 80},
                   "cache_read_input_tokens": 80, "cache_creation_input_tokens": 20})
        );
        assert_eq!(
            usage_json(&read_usage(&json!({"inputTokens": 3, "outputTokens": 4}))),
            json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                   "prompt_tokens_details": {"cached_tokens": 0}})
        );
    }

    #[test]
    fn stop_reasons() {
        for (reason, expected) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("tool_use", "tool_calls"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            ("something_new", "stop"),
        ] {
            assert_eq!(map_stop_reason(reason), expected, "{reason}");
        }
    }
}
