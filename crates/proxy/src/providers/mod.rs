//! Providers: how a call for a deployment becomes an upstream HTTP request, and how the answer
//! (or the failure) comes back in OpenAI's shape.
//!
//! Each provider lives in its own folder behind [`Provider`]; the handler, the forwarder and the
//! stream name no provider, so adding one touches its folder and [`of`].

pub mod anthropic;
pub(crate) mod bedrock;
mod errors;
pub(crate) mod gemini;
pub mod mock;
pub mod native;
pub mod openai;
mod request_parts;
pub mod translate;
pub mod vertex;

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{HeaderMap, HeaderValue};

use crate::body::RawBody;
use crate::deployment::{Credential, Deployment, DeploymentSpec, Prepared, ProviderKind};
use crate::error::ApiError;
use crate::upstream::UpstreamClient;
use native::{NativeApi, NativeRequest, StreamMeter};
use translate::TranslateError;

pub use errors::{timeout_error, transport_error, upstream_error};

/// The discriminants index `Deployment::urls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallType {
    Chat = 0,
    Completion = 1,
    Embedding = 2,
}

impl CallType {
    pub fn path(self) -> &'static str {
        match self {
            CallType::Chat => "chat/completions",
            CallType::Completion => "completions",
            CallType::Embedding => "embeddings",
        }
    }

    /// The name LiteLLM writes in `call_type`.
    pub fn log_name(self) -> &'static str {
        match self {
            CallType::Chat => "acompletion",
            CallType::Completion => "atext_completion",
            CallType::Embedding => "aembedding",
        }
    }

    pub fn metric_name(self) -> &'static str {
        match self {
            CallType::Chat => "chat",
            CallType::Completion => "completion",
            CallType::Embedding => "embedding",
        }
    }
}

pub struct UpstreamRequest {
    pub url: http::Uri,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why an attempt failed, and what the retry loop may do about it.
#[derive(Debug)]
pub struct AttemptError {
    pub error: ApiError,
    /// Another attempt (same or other deployment) may succeed.
    pub retryable: bool,
    /// Counts against the deployment's health.
    pub counts_as_failure: bool,
    pub retry_after: Option<Duration>,
    /// The prompt was too long for the model: a `context_window_fallbacks` case.
    pub context_window: bool,
}

impl AttemptError {
    pub fn fatal(error: ApiError) -> Self {
        AttemptError {
            error,
            retryable: false,
            counts_as_failure: false,
            retry_after: None,
            context_window: false,
        }
    }
}

/// The provider key for a deployment, or an error naming the unset variable.
pub fn credential(spec: &DeploymentSpec) -> Result<Option<&str>, AttemptError> {
    match &spec.credential {
        Credential::None => Ok(None),
        Credential::Key(k) => Ok(Some(k.as_str())),
        Credential::MissingEnv(var) => Err(AttemptError {
            error: ApiError::internal(format!(
                "Deployment '{}' of model '{}' has no API key: the environment variable {var} \
                 (from os.environ/{var}) was not set when the gateway started.",
                spec.id, spec.model_name
            )),
            // Another deployment of the group may have its key.
            retryable: true,
            counts_as_failure: false,
            retry_after: None,
            context_window: false,
        }),
        // Signed per request by the provider, which reads the key pair itself.
        Credential::Aws(_) => Ok(None),
    }
}

/// What a provider does for one call; routing, limits, retries and recording are the same for all.
pub trait Provider: Sync {
    /// How LiteLLM prefixes this provider's upstream error messages (`AnthropicException`).
    fn error_label(&self) -> &'static str;

    /// Work done once per deployment when the config is loaded, so no request pays for it.
    fn prepare(&self, _spec: &DeploymentSpec) -> Prepared {
        Prepared::default()
    }

    /// The upstream request for one attempt.
    fn build_request(
        &self,
        dep: &Deployment,
        call: CallType,
        body: &RawBody,
        upstream_model: &str,
        stream: bool,
    ) -> Result<UpstreamRequest, AttemptError>;

    /// The `Authorization` value for one attempt when it must be fetched first (a short-lived
    /// access token); None, the default, when `build_request` sets every header itself. The
    /// forwarder awaits it within the attempt's timeout.
    fn authorization<'a>(
        &'a self,
        _dep: &'a Deployment,
        _client: &'a UpstreamClient,
    ) -> Option<BoxFuture<'a, Result<HeaderValue, AttemptError>>> {
        None
    }

    /// The upstream answered 401 to a call carrying `sent`, a value from `authorization`: it
    /// should not be sent again.
    fn authorization_refused(&self, _dep: &Deployment, _sent: &HeaderValue) {}

    /// The upstream requests for one attempt: one, unless the upstream API takes one input per
    /// call (the answers then reach [`Provider::read_answer`] as one JSON array, in order).
    fn build_requests(
        &self,
        dep: &Deployment,
        call: CallType,
        body: &RawBody,
        upstream_model: &str,
        stream: bool,
    ) -> Result<Vec<UpstreamRequest>, AttemptError> {
        Ok(vec![self.build_request(
            dep,
            call,
            body,
            upstream_model,
            stream,
        )?])
    }

    /// A complete (non-streaming) answer in OpenAI's shape, and what it used. By default the
    /// answer already is in OpenAI's shape and passes through.
    fn read_answer(
        &self,
        _call: CallType,
        bytes: Bytes,
        _ctx: &AnswerContext<'_>,
    ) -> Result<FullAnswer, ApiError> {
        Ok(openai::pass_through(bytes))
    }

    /// How this provider's stream events become OpenAI chunks (by default they already are).
    fn stream_translation(&self, ctx: &AnswerContext<'_>) -> Translation {
        Translation::PassThrough {
            drop_usage_chunk: !ctx.include_usage,
        }
    }

    /// An upstream error body → (message, OpenAI error type); by default OpenAI's envelope.
    fn map_error(&self, status: u16, body: &[u8]) -> (String, &'static str) {
        openai::wire::map_error(status, body)
    }

    /// Like [`Provider::map_error`], for providers that name the error in a response header.
    fn map_error_with_headers(
        &self,
        status: u16,
        _headers: &HeaderMap,
        body: &[u8],
    ) -> (String, &'static str) {
        self.map_error(status, body)
    }

    /// Whether this deployment takes `api`'s requests as they are (see [`native`]).
    fn speaks(&self, _spec: &DeploymentSpec, _api: NativeApi) -> bool {
        false
    }

    /// The upstream request for a call in an API the deployment [`speaks`](Provider::speaks).
    fn build_native_request(
        &self,
        dep: &Deployment,
        _native: &NativeRequest,
        _upstream_model: &str,
        _stream: bool,
    ) -> Result<UpstreamRequest, AttemptError> {
        Err(AttemptError::fatal(ApiError::internal(format!(
            "Deployment '{}' was sent a request in an API it does not speak.",
            dep.spec.id
        ))))
    }

    /// How this provider's streamed answers are framed on the wire.
    fn stream_framing(&self) -> StreamFraming {
        StreamFraming::Sse
    }
}

/// How a streamed answer's bytes divide into events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFraming {
    /// Server-sent events (`event:` and `data:` lines).
    Sse,
    /// AWS's binary event stream (`application/vnd.amazon.eventstream`): each frame reaches the
    /// translator as its `:event-type` header and its payload; exception frames end the stream
    /// with an error.
    AwsEventStream,
}

/// The provider for a deployment: the one place that maps a kind to its code.
pub fn of(kind: ProviderKind) -> &'static dyn Provider {
    match kind {
        ProviderKind::OpenAiCompatible(_) => &openai::OpenAiCompatible,
        ProviderKind::Azure => &openai::Azure,
        ProviderKind::Anthropic => &anthropic::Anthropic,
        ProviderKind::Gemini => &gemini::Gemini,
        ProviderKind::VertexAi => &vertex::VertexAi,
        ProviderKind::Bedrock => &bedrock::Bedrock,
    }
}

/// A deployment with its provider's request parts prepared.
pub fn deploy(spec: DeploymentSpec) -> Deployment {
    let prepared = of(spec.provider).prepare(&spec);
    Deployment::new(spec, prepared)
}

/// What the answer to the client is labelled with.
pub struct AnswerContext<'a> {
    pub id: &'a str,
    /// The model name the caller asked for.
    pub model: &'a str,
    /// The model the deployment called upstream (a wildcard deployment's expanded).
    pub upstream_model: &'a str,
    pub created: i64,
    /// The caller asked for a usage chunk at the end of a stream.
    pub include_usage: bool,
    /// A client API's own request as the caller sent it, before its translation to chat (for
    /// answers that repeat its settings); None on the chat routes.
    pub client_request: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// A complete answer for the caller, in OpenAI's shape.
pub struct FullAnswer {
    pub body: Bytes,
    pub usage: UsageSeen,
}

pub enum UsageSeen {
    Reported(tollgate_domain::Usage),
    /// The upstream reported no usage: the size of the generated text, to estimate from.
    Unreported {
        completion_bytes: usize,
    },
}

/// How a stream's events reach the client.
pub enum Translation {
    /// OpenAI-style events pass through; the usage-only chunk Tollgate asked for is dropped
    /// when the client did not ask for it.
    PassThrough { drop_usage_chunk: bool },
    /// Each event is translated into OpenAI chunks.
    Translate {
        translator: Box<dyn ChunkTranslator>,
        /// Prefixes errors met while translating, as upstream errors are.
        label: &'static str,
    },
    /// A client API's own events pass through unchanged; the meter reads them.
    Native {
        meter: Box<dyn StreamMeter>,
        label: &'static str,
    },
}

/// Turns one provider's stream events into OpenAI `chat.completion.chunk`s.
pub trait ChunkTranslator: Send {
    /// One SSE event (its name and data) → zero or more chunk JSON texts.
    fn on_event(&mut self, name: Option<&str>, data: &str) -> Result<Vec<String>, TranslateError>;
    /// Usage reported so far.
    fn usage(&self) -> translate::Usage;
    /// Bytes of generated text so far: what an aborted stream is billed by.
    fn generated_bytes(&self) -> usize;
    /// The upstream said the answer is complete.
    fn finished(&self) -> bool;
}
