//! Anthropic's Messages API: OpenAI chat requests are translated to it, and its answers, stream
//! events and errors back. The translations are free of HTTP and gateway types so they can be
//! tested on literal JSON alone.

mod error;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use http::header::HeaderValue;

use super::native::{NativeApi, NativeRequest};
use super::request_parts::{self, api_base, header_value, json_headers, parse_url};
use super::translate::{TranslateError, Usage};
use super::{
    credential, AnswerContext, AttemptError, CallType, ChunkTranslator, FullAnswer, Provider,
    Translation, UpstreamRequest, UsageSeen,
};
use crate::body::RawBody;
use crate::deployment::{Deployment, DeploymentSpec};
use crate::error::ApiError;

pub use error::map_error;
pub use request::to_anthropic_request;
pub use response::{from_anthropic_response, usage_of};
pub use stream::StreamTranslator;

/// Anthropic requires `max_tokens`; used when neither the caller nor the deployment set one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

pub struct Anthropic;

impl Provider for Anthropic {
    fn error_label(&self) -> &'static str {
        "AnthropicException"
    }

    fn build_request(
        &self,
        dep: &Deployment,
        call: CallType,
        body: &RawBody,
        upstream_model: &str,
        stream: bool,
    ) -> Result<UpstreamRequest, AttemptError> {
        let spec = &dep.spec;
        let key = credential(spec)?;
        let base = api_base(spec)?;
        if call != CallType::Chat {
            return Err(AttemptError::fatal(ApiError::bad_request(format!(
                "Anthropic deployments serve chat completions only; /{} is not available for this model.",
                call.path()
            ))));
        }
        let headers = headers(key)?;
        let translated = messages_body(dep, body, upstream_model, stream)?;
        Ok(UpstreamRequest {
            url: messages_url(base)?,
            headers,
            body: serde_json::to_vec(&translated).unwrap_or_default(),
        })
    }

    fn speaks(&self, _spec: &DeploymentSpec, api: NativeApi) -> bool {
        api == NativeApi::AnthropicMessages
    }

    fn build_native_request(
        &self,
        dep: &Deployment,
        native: &NativeRequest,
        upstream_model: &str,
        _stream: bool,
    ) -> Result<UpstreamRequest, AttemptError> {
        let spec = &dep.spec;
        let mut headers = headers(credential(spec)?)?;
        if let Some(beta) = native.headers.get(ANTHROPIC_BETA) {
            headers.insert(ANTHROPIC_BETA, beta.clone());
        }
        Ok(UpstreamRequest {
            url: messages_url(api_base(spec)?)?,
            headers,
            body: native.body_for(spec, upstream_model),
        })
    }

    fn read_answer(
        &self,
        _call: CallType,
        bytes: Bytes,
        ctx: &AnswerContext<'_>,
    ) -> Result<FullAnswer, ApiError> {
        read_messages_answer(self.error_label(), bytes, ctx)
    }

    fn stream_translation(&self, ctx: &AnswerContext<'_>) -> Translation {
        stream_translation(self.error_label(), ctx)
    }

    fn map_error(&self, status: u16, body: &[u8]) -> (String, &'static str) {
        map_error(status, body)
    }
}

/// The header that opts a Messages request into Anthropic's beta features; a native request
/// keeps the caller's.
pub const ANTHROPIC_BETA: &str = "anthropic-beta";

fn headers(key: Option<&str>) -> Result<http::HeaderMap, AttemptError> {
    let mut headers = json_headers();
    if let Some(k) = key {
        headers.insert("x-api-key", header_value(k)?);
    }
    headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    Ok(headers)
}

fn messages_url(base: &str) -> Result<http::Uri, AttemptError> {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1") {
        parse_url(&format!("{base}/messages"))
    } else {
        parse_url(&format!("{base}/v1/messages"))
    }
}

/// The Messages body for a chat call: the caller's request translated, with `max_tokens` from the
/// caller, else the deployment (Anthropic requires one). Claude on Vertex AI sends the same body.
pub(crate) fn messages_body(
    dep: &Deployment,
    body: &RawBody,
    upstream_model: &str,
    stream: bool,
) -> Result<serde_json::Value, AttemptError> {
    let spec = &dep.spec;
    // Anthropic answers with one choice: `n` is refused unless `drop_params` drops it.
    let map = request_parts::request_map(body, spec, &["n"])?;
    let default_max = spec
        .default_params
        .get("max_tokens")
        .and_then(|v| v.as_u64())
        .or(spec.max_output_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    to_anthropic_request(&map, upstream_model, default_max, stream)
        .map_err(|e| AttemptError::fatal(ApiError::bad_request(e.to_string())))
}

/// A complete Messages answer in OpenAI's shape; `label` prefixes the errors met reading it.
pub(crate) fn read_messages_answer(
    label: &'static str,
    bytes: Bytes,
    ctx: &AnswerContext<'_>,
) -> Result<FullAnswer, ApiError> {
    let bad = |m: String| ApiError::bad_gateway(format!("{label} - {m}"));
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| bad("The upstream answer is not valid JSON.".to_string()))?;
    let (out, u) = from_anthropic_response(&v, ctx.id, ctx.model, ctx.created)
        .map_err(|e| bad(e.to_string()))?;
    Ok(FullAnswer {
        body: Bytes::from(serde_json::to_vec(&out).unwrap_or_default()),
        usage: UsageSeen::Reported(u.into_domain()),
    })
}

/// Messages stream events translated into OpenAI chunks.
pub(crate) fn stream_translation(label: &'static str, ctx: &AnswerContext<'_>) -> Translation {
    Translation::Translate {
        translator: Box::new(StreamTranslator::new(
            ctx.id,
            ctx.model,
            ctx.created,
            ctx.include_usage,
        )),
        label,
    }
}

impl ChunkTranslator for StreamTranslator {
    fn on_event(&mut self, name: Option<&str>, data: &str) -> Result<Vec<String>, TranslateError> {
        StreamTranslator::on_event(self, name, data)
    }

    fn usage(&self) -> Usage {
        StreamTranslator::usage(self)
    }

    fn generated_bytes(&self) -> usize {
        StreamTranslator::generated_bytes(self)
    }

    fn finished(&self) -> bool {
        StreamTranslator::finished(self)
    }
}
