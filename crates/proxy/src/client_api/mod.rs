//! The client-facing APIs other than chat completions (Anthropic's Messages, OpenAI's Responses).
//! Each is translated to a chat request on the way in and from the chat answer on the way out,
//! so every call takes the same path: authentication, limits, budgets, routing, retries and
//! recording are those of a chat completion.

pub(crate) mod messages;
pub(crate) mod responses;
mod sse;

use axum::response::Response;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::providers::translate::TranslateError;
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
