//! Providers: how a call for a deployment becomes an upstream HTTP request, and how the answer
//! (or the failure) comes back in OpenAI's shape.

pub mod anthropic;
pub mod mock;
pub mod openai;
pub(crate) mod openai_stream;
pub mod translate;

use std::time::Duration;

use axum::http::StatusCode;
use http::header::{HeaderMap, HeaderValue};

use crate::body::RawBody;
use crate::deployment::{Credential, DeploymentSpec, ProviderKind};
use crate::error::ApiError;

/// Anthropic requires `max_tokens`; used when neither the caller nor the deployment set one.
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u64 = 4096;

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
    }
}

/// Builds an Anthropic request: the whole OpenAI body is translated to the Messages API.
pub fn build_request(
    spec: &DeploymentSpec,
    call: CallType,
    body: &RawBody,
    upstream_model: &str,
    stream: bool,
) -> Result<UpstreamRequest, AttemptError> {
    let key = credential(spec)?;
    let base = api_base(spec)?;
    if call != CallType::Chat {
        return Err(AttemptError::fatal(ApiError::bad_request(format!(
            "Anthropic deployments serve chat completions only; /{} is not available for this model.",
            call.path()
        ))));
    }
    let mut headers = json_headers();
    if let Some(k) = key {
        headers.insert("x-api-key", header_value(k)?);
    }
    headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    let map = body.to_map().map_err(AttemptError::fatal)?;
    let default_max = spec
        .default_params
        .get("max_tokens")
        .and_then(|v| v.as_u64())
        .or(spec.max_output_tokens)
        .unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS);
    let translated = anthropic::to_anthropic_request(&map, upstream_model, default_max, stream)
        .map_err(|e| AttemptError::fatal(ApiError::bad_request(e.to_string())))?;
    let base = base.trim_end_matches('/');
    let url = if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    };
    Ok(UpstreamRequest {
        url: parse_url(&url)?,
        headers,
        body: serde_json::to_vec(&translated).unwrap_or_default(),
    })
}

/// Builds an OpenAI-style or Azure request around an already serialized body.
pub fn build_request_with_body(
    dep: &crate::deployment::Deployment,
    call: CallType,
    body: Vec<u8>,
    upstream_model: &str,
) -> Result<UpstreamRequest, AttemptError> {
    let spec = &dep.spec;
    let key = credential(spec)?;
    let mut headers = json_headers();
    let idx = call as usize;
    if let (Some(url), ProviderKind::OpenAiCompatible(_)) = (&dep.urls[idx], spec.provider) {
        if let Some(b) = &dep.bearer {
            headers.insert(http::header::AUTHORIZATION, b.clone());
        }
        if let Some(org) = &spec.organization {
            headers.insert("openai-organization", header_value(org)?);
        }
        return Ok(UpstreamRequest {
            url: url.clone(),
            headers,
            body,
        });
    }
    let base = api_base(spec)?;
    let url = match spec.provider {
        ProviderKind::Azure => {
            if let Some(k) = key {
                headers.insert("api-key", header_value(k)?);
            }
            let version = spec
                .api_version
                .as_deref()
                .unwrap_or(openai::AZURE_DEFAULT_API_VERSION);
            let mut url = join(
                base,
                &format!("openai/deployments/{upstream_model}/{}", call.path()),
            );
            url.push_str("?api-version=");
            url.push_str(version);
            url
        }
        _ => {
            if let Some(k) = key {
                headers.insert(
                    http::header::AUTHORIZATION,
                    header_value(&format!("Bearer {k}"))?,
                );
            }
            if let Some(org) = &spec.organization {
                headers.insert("openai-organization", header_value(org)?);
            }
            join(base, call.path())
        }
    };
    Ok(UpstreamRequest {
        url: parse_url(&url)?,
        headers,
        body,
    })
}

fn parse_url(url: &str) -> Result<http::Uri, AttemptError> {
    url.parse::<http::Uri>().map_err(|_| {
        AttemptError::fatal(ApiError::internal(
            "The upstream URL built from the deployment's api_base is not valid.",
        ))
    })
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

fn api_base(spec: &DeploymentSpec) -> Result<&str, AttemptError> {
    spec.api_base.as_ref().map(|u| u.as_str()).ok_or_else(|| {
        AttemptError::fatal(ApiError::internal(format!(
            "Deployment '{}' has no api_base configured.",
            spec.id
        )))
    })
}

fn header_value(v: &str) -> Result<HeaderValue, AttemptError> {
    HeaderValue::from_str(v).map_err(|_| {
        AttemptError::fatal(ApiError::internal(
            "A configured provider credential contains characters not allowed in an HTTP header.",
        ))
    })
}

fn join(base: &str, path: &str) -> String {
    let mut s = String::with_capacity(base.len() + path.len() + 1);
    s.push_str(base.trim_end_matches('/'));
    s.push('/');
    s.push_str(path);
    s
}

/// Turns an upstream error status and body into the caller's error, classified for retries.
pub fn upstream_error(
    spec: &DeploymentSpec,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> AttemptError {
    let (message, kind) = match spec.provider {
        ProviderKind::Anthropic => anthropic::map_error(status.as_u16(), body),
        _ => openai::map_error(status.as_u16(), body),
    };
    let message = scrub(spec, &message);
    let provider = match spec.provider {
        ProviderKind::Anthropic => "AnthropicException",
        ProviderKind::Azure => "AzureException",
        ProviderKind::OpenAiCompatible(_) => "OpenAIException",
    };
    let context_window =
        status == StatusCode::BAD_REQUEST && openai::is_context_window_error(&message);
    let retryable = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    let kind = if context_window {
        "context_length_exceeded"
    } else {
        kind
    };
    let mut error = ApiError::new(status, kind, format!("{provider} - {message}"));
    if status == StatusCode::TOO_MANY_REQUESTS {
        error.retry_after = retry_after.map(|d| d.as_secs().max(1));
    }
    AttemptError {
        error,
        retryable,
        counts_as_failure: retryable || status == StatusCode::UNAUTHORIZED,
        retry_after,
        context_window,
    }
}

/// Upstream messages sometimes quote the key they were sent; never pass it on.
fn scrub(spec: &DeploymentSpec, message: &str) -> String {
    // Redact before cutting: a cut through the key would leave most of it unmatched.
    match &spec.credential {
        Credential::Key(k) if k.len() >= 8 && message.contains(k.as_str()) => message
            .replace(k.as_str(), "[redacted]")
            .chars()
            .take(1000)
            .collect(),
        _ => message.chars().take(1000).collect(),
    }
}

/// A connect error, timeout or reset before the answer started.
pub fn transport_error(spec: &DeploymentSpec, e: &crate::upstream::TransportError) -> AttemptError {
    let (status, kind, what) = if e.timeout {
        (StatusCode::REQUEST_TIMEOUT, "timeout", "timed out")
    } else if e.connect {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_connection_error",
            "could not connect",
        )
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_connection_error",
            "connection failed",
        )
    };
    AttemptError {
        error: ApiError::new(
            status,
            kind,
            format!(
                "APIConnectionError - the upstream for model '{}' (deployment '{}') {what}.",
                spec.model_name, spec.id
            ),
        ),
        retryable: true,
        counts_as_failure: true,
        retry_after: None,
        context_window: false,
    }
}

pub fn timeout_error(spec: &DeploymentSpec, after: Duration) -> AttemptError {
    AttemptError {
        error: ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "Timeout - the upstream for model '{}' (deployment '{}') did not answer within {:.1}s.",
                spec.model_name,
                spec.id,
                after.as_secs_f64()
            ),
        ),
        retryable: true,
        counts_as_failure: true,
        retry_after: None,
        context_window: false,
    }
}
