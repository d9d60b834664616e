//! The client-facing APIs other than chat completions (Anthropic's Messages, OpenAI's Responses).
//! Each is translated to a chat request on the way in, so every call takes the same path:
//! authentication, limits, budgets, routing, retries and recording are those of a chat
//! completion. A deployment that speaks the API itself is sent the caller's own request and its
//! answer passes back unchanged; for the others the chat answer is translated back.

pub(crate) mod messages;
pub(crate) mod responses;
mod sse;

use axum::response::Response;
use serde_json::{Map, Value};

use crate::body::is_gateway_only;
use crate::error::ApiError;
use crate::providers::native::{NativeApi, StreamMeter};
use crate::providers::translate::{TranslateError, Usage};
use crate::providers::AnswerContext;

pub(crate) use sse::{convert, ConvertedStream};

/// One client API's translations to and from chat.
pub(crate) trait ClientApi: Sync {
    /// What spend logs name the call (`call_type`), as LiteLLM does for this route.
    fn log_name(&self) -> &'static str;

    /// The caller's request → a chat completions request (with `stream_options.include_usage`
    /// set when it streams, so usage reaches the converter).
    fn to_chat(&self, body: &Map<String, Value>) -> Result<Map<String, Value>, TranslateError>;

    /// A complete chat completion → this API's answer.
    fn answer_from_chat(
        &self,
        chat: &Value,
        ctx: &AnswerContext<'_>,
    ) -> Result<Value, TranslateError>;

    /// A converter for a streamed answer's chat chunks.
    fn stream(&self, ctx: &AnswerContext<'_>) -> Box<dyn ChunkConverter>;

    /// An error before the answer started, in this API's error envelope.
    fn error_body(&self, error: &ApiError) -> String;

    fn error_response(&self, error: ApiError) -> Response {
        let body = self.error_body(&error);
        error.respond_with(body)
    }

    /// The API as providers that speak it natively know it.
    fn native(&self) -> NativeApi;

    /// What a native answer used.
    fn native_usage(&self, answer: &Value) -> Option<Usage>;

    /// Reads a native stream as it passes through.
    fn native_meter(&self, ctx: &AnswerContext<'_>) -> Box<dyn StreamMeter>;

    /// This API's `metadata`, as far as its providers accept it (gateway callers put tags there).
    fn native_metadata(&self, metadata: &Value) -> Option<Value>;

    /// The caller's body as a native provider gets it: without the gateway's own fields.
    fn native_body(&self, body: &Map<String, Value>) -> Map<String, Value> {
        let mut out: Map<String, Value> = body
            .iter()
            .filter(|(k, _)| !is_gateway_only(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(m) = body.get("metadata").and_then(|m| self.native_metadata(m)) {
            out.insert("metadata".into(), m);
        }
        out
    }

    /// A chat request standing in for one that has no chat translation but goes to a provider
    /// that speaks the API: enough for the gateway's own checks (model access, limits, the
    /// budget's cost bound, tags). The whole body counts as prompt, a generous bound.
    fn chat_outline(&self, body: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for key in ["model", "stream", "metadata", "tags", "user"] {
            if let Some(v) = body.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        if let Some(limit) = body.get(self.native().output_limit_field()) {
            out.insert("max_tokens".into(), limit.clone());
        }
        let prompt = Value::Object(body.clone()).to_string();
        out.insert(
            "messages".into(),
            serde_json::json!([{"role": "user", "content": prompt}]),
        );
        out
    }
}

/// Turns a stream of chat chunks into this API's stream events (SSE text, whole events).
pub(crate) trait ChunkConverter: Send {
    /// One chat chunk (already parsed).
    fn on_chunk(&mut self, chunk: &Value) -> Result<String, TranslateError>;
    /// The chat stream ended complete (`[DONE]`).
    fn finish(&mut self) -> String;
    /// The stream failed: the error event this API sends, which ends it.
    fn error_event(&mut self, error: &ApiError) -> String;
}
