//! Client APIs that some providers speak themselves. A call on such an API (Anthropic's
//! Messages, OpenAI's Responses) that lands on such a provider is sent as the caller wrote it, so
//! nothing is lost in translation (prompt caching, extended thinking, reasoning items, stored
//! responses); its answer goes back as it came, and only its usage is read.

use http::header::HeaderMap;
use serde_json::{Map, Value};

use super::translate::{TranslateError, Usage};
use crate::deployment::DeploymentSpec;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeApi {
    AnthropicMessages,
    OpenAiResponses,
}

impl NativeApi {
    /// The request field that bounds the answer's length (the budget check may lower it).
    pub fn output_limit_field(self) -> &'static str {
        match self {
            NativeApi::AnthropicMessages => "max_tokens",
            NativeApi::OpenAiResponses => "max_output_tokens",
        }
    }
}

/// A caller's request in its own API, ready to go to a provider that speaks that API.
pub struct NativeRequest {
    pub api: NativeApi,
    /// The caller's body without the gateway's own fields; `model` and `stream` are set per
    /// attempt.
    pub body: Map<String, Value>,
    /// The caller's headers that the API defines (Anthropic's `anthropic-beta`).
    pub headers: HeaderMap,
    /// Why the request cannot be translated for providers that do not speak the API, when it
    /// cannot: an attempt on such a provider fails with this message instead.
    pub untranslatable: Option<String>,
}

impl NativeRequest {
    /// The body for one attempt, with the deployment's model name.
    pub fn body_for(&self, spec: &DeploymentSpec, upstream_model: &str) -> Vec<u8> {
        let mut body = self.body_with_defaults(spec);
        body.insert("model".into(), Value::String(upstream_model.to_string()));
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The body with the deployment's default parameters where the caller set none (as chat
    /// calls get them; the budget check counted a default `max_tokens` as the output bound).
    pub fn body_with_defaults(&self, spec: &DeploymentSpec) -> Map<String, Value> {
        let mut body = self.body.clone();
        for (key, value) in &spec.default_params {
            let key = match key.as_str() {
                "max_tokens" | "max_completion_tokens" => self.api.output_limit_field(),
                other => other,
            };
            body.entry(key.to_string()).or_insert_with(|| value.clone());
        }
        body
    }

    /// Lowers the output bound to `limit` (never raises it).
    pub fn limit_output(&mut self, limit: u64) {
        let field = self.api.output_limit_field();
        let current = self.body.get(field).and_then(Value::as_u64);
        if current.is_none_or(|c| c > limit) {
            self.body.insert(field.into(), Value::from(limit));
        }
    }
}

/// Reads a native stream as it passes to the caller unchanged: what it used, and how it ended.
pub trait StreamMeter: Send {
    /// One SSE event (its name and data). An error ends the stream as failed.
    fn on_event(&mut self, name: Option<&str>, data: &str) -> Result<(), TranslateError>;
    /// Usage reported so far.
    fn usage(&self) -> Usage;
    /// Bytes of generated text so far: what an aborted stream is billed by.
    fn generated_bytes(&self) -> usize;
    /// The upstream said the answer is complete.
    fn finished(&self) -> bool;
    /// The event that ends a failed stream, in the API's own shape.
    fn error_event(&mut self, error: &ApiError) -> String;
}
