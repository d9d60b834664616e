//! The Messages API as a [`ClientApi`]: the chat pipeline runs the call, these translations
//! frame it.

use serde_json::{Map, Value};

use super::error::{error_body, stream_error_event};
use super::native;
use super::request::to_chat_request;
use super::response::{from_chat_response, message_id};
use super::stream::{sse, StreamTranslator};
use crate::client_api::{ChunkConverter, ClientApi};
use crate::error::ApiError;
use crate::providers::native::{NativeApi, StreamMeter};
use crate::providers::translate::{TranslateError, Usage};
use crate::providers::AnswerContext;

pub(crate) struct Messages;

impl ClientApi for Messages {
    fn log_name(&self) -> &'static str {
        // What LiteLLM writes for its /v1/messages route.
        "anthropic_messages"
    }

    fn to_chat(&self, body: &Map<String, Value>) -> Result<Map<String, Value>, TranslateError> {
        to_chat_request(body)
    }

    fn answer_from_chat(
        &self,
        chat: &Value,
        ctx: &AnswerContext<'_>,
    ) -> Result<Value, TranslateError> {
        from_chat_response(chat, ctx.model, &message_id(ctx.id))
    }

    fn stream(&self, ctx: &AnswerContext<'_>) -> Box<dyn ChunkConverter> {
        Box::new(Converter(StreamTranslator::new(
            ctx.model,
            &message_id(ctx.id),
        )))
    }

    fn error_body(&self, error: &ApiError) -> String {
        error_body(error.status.as_u16(), &error.message).to_string()
    }

    fn native(&self) -> NativeApi {
        NativeApi::AnthropicMessages
    }

    fn native_usage(&self, answer: &Value) -> Option<Usage> {
        native::usage(answer)
    }

    fn native_meter(&self, ctx: &AnswerContext<'_>) -> Box<dyn StreamMeter> {
        Box::new(native::Meter::new(ctx))
    }

    fn native_metadata(&self, metadata: &Value) -> Option<Value> {
        native::metadata(metadata)
    }
}

struct Converter(StreamTranslator);

fn joined(events: Vec<(&'static str, String)>) -> String {
    events
        .into_iter()
        .map(|(name, data)| sse(name, &data))
        .collect()
}

impl ChunkConverter for Converter {
    fn on_chunk(&mut self, chunk: &Value) -> Result<String, TranslateError> {
        self.0.on_chunk(chunk).map(joined)
    }

    fn finish(&mut self) -> String {
        joined(self.0.finish())
    }

    fn error_event(&mut self, error: &ApiError) -> String {
        stream_error_event(error.status.as_u16(), &error.message)
    }
}
