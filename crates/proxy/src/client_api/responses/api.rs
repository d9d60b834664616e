//! The Responses API as a [`ClientApi`] and its route: the chat pipeline runs the call (keys,
//! limits, budgets, routing, retries, spend), these translations frame it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{Map, Value};

use super::native;
use super::object::{response_id_for, RequestEcho};
use super::request::to_chat_request;
use super::response::from_chat_response;
use super::stream::StreamTranslator;
use crate::client_api::{ChunkConverter, ClientApi};
use crate::error::ApiError;
use crate::handlers;
use crate::providers::native::{NativeApi, StreamMeter};
use crate::providers::translate::{TranslateError, Usage};
use crate::providers::{AnswerContext, CallType};
use crate::state::ProxyState;

/// `POST /v1/responses` (and `/responses`).
pub(crate) async fn responses(State(state): State<Arc<ProxyState>>, req: Request) -> Response {
    handlers::handle(state, CallType::Chat, Some(&Responses), req).await
}

pub(crate) struct Responses;

fn echo(ctx: &AnswerContext<'_>) -> RequestEcho {
    match ctx.client_request {
        Some(req) => RequestEcho::from_request(req),
        None => RequestEcho::from_request(&Map::new()),
    }
}

impl ClientApi for Responses {
    fn log_name(&self) -> &'static str {
        // What LiteLLM writes for its /v1/responses route.
        "aresponses"
    }

    fn to_chat(&self, body: &Map<String, Value>) -> Result<Map<String, Value>, TranslateError> {
        to_chat_request(body)
    }

    fn answer_from_chat(
        &self,
        chat: &Value,
        ctx: &AnswerContext<'_>,
    ) -> Result<Value, TranslateError> {
        // The gateway's request id, not the upstream's, names the Response (as it names chat
        // answers), so the id a caller sees matches the spend log.
        let mut chat = chat.clone();
        chat["id"] = Value::String(ctx.id.to_owned());
        from_chat_response(&chat, ctx.model, ctx.created, &echo(ctx))
    }

    fn stream(&self, ctx: &AnswerContext<'_>) -> Box<dyn ChunkConverter> {
        Box::new(Converter(StreamTranslator::new(
            &response_id_for(ctx.id),
            ctx.model,
            ctx.created,
            echo(ctx),
        )))
    }

    /// The Responses API answers HTTP errors in OpenAI's usual envelope.
    fn error_body(&self, error: &ApiError) -> String {
        error.body_json()
    }

    fn native(&self) -> NativeApi {
        NativeApi::OpenAiResponses
    }

    fn native_usage(&self, answer: &Value) -> Option<Usage> {
        native::usage(answer)
    }

    fn native_meter(&self, _ctx: &AnswerContext<'_>) -> Box<dyn StreamMeter> {
        Box::<native::Meter>::default()
    }

    fn native_metadata(&self, metadata: &Value) -> Option<Value> {
        native::metadata(metadata)
    }
}

struct Converter(StreamTranslator);

impl ChunkConverter for Converter {
    fn on_chunk(&mut self, chunk: &Value) -> Result<String, TranslateError> {
        self.0.on_chunk(chunk).map(|events| events.concat())
    }

    fn finish(&mut self) -> String {
        // The pipeline asked the upstream for its usage chunk; the translator kept it.
        self.0.finish(None).concat()
    }

    fn error_event(&mut self, error: &ApiError) -> String {
        let code = match error.status.as_u16() {
            429 => "rate_limit_exceeded",
            _ => "server_error",
        };
        self.0.fail(code, &error.message).concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx<'a>(req: &'a Map<String, Value>) -> AnswerContext<'a> {
        AnswerContext {
            id: "chatcmpl-0192abc",
            model: "gpt-4o",
            upstream_model: "gpt-4o",
            created: 1700,
            include_usage: true,
            client_request: Some(req),
        }
    }

    #[test]
    fn answer_is_named_by_the_gateway_id_and_echoes_the_request() {
        let Value::Object(req) =
            json!({"model": "gpt-4o", "input": "hi", "tool_choice": "none", "temperature": 0.5})
        else {
            panic!("not an object")
        };
        let chat = json!({"id": "chatcmpl-upstream", "choices": [{"finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hello"}}]});
        let out = Responses.answer_from_chat(&chat, &ctx(&req)).unwrap();
        assert_eq!(out["id"], json!("resp_0192abc"));
        assert_eq!(out["output"][0]["id"], json!("msg_0192abc_0"));
        assert_eq!(out["tool_choice"], json!("none"));
        assert_eq!(out["temperature"], json!(0.5));
        assert_eq!(out["created_at"], json!(1700));
    }

    #[test]
    fn converter_streams_events_and_ends_on_errors() {
        let req = Map::new();
        let mut c = Responses.stream(&ctx(&req));
        let first = c
            .on_chunk(&json!({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}))
            .unwrap();
        assert!(first.starts_with("event: response.created\n"), "{first}");
        assert!(first.contains("\"id\":\"resp_0192abc\""));
        let err = c.error_event(&ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "slow down",
        ));
        assert!(err.starts_with("event: error\n"), "{err}");
        assert!(err.contains("\"code\":\"rate_limit_exceeded\""));
        assert!(err.contains("event: response.failed\n"));
        assert!(c.finish().is_empty());
    }

    #[test]
    fn errors_use_openai_envelope() {
        let body = Responses.error_body(&ApiError::bad_request("nope"));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["message"], json!("nope"));
        assert_eq!(v["error"]["type"], json!("bad_request_error"));
    }
}
