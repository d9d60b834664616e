//! Upstream failures → the caller's error, classified for the retry loop.

use std::time::Duration;

use axum::http::StatusCode;

use super::AttemptError;
use crate::deployment::{Credential, DeploymentSpec};
use crate::error::ApiError;

/// Turns an upstream error status and body into the caller's error, classified for retries.
pub fn upstream_error(
    spec: &DeploymentSpec,
    status: StatusCode,
    retry_after: Option<Duration>,
    headers: &http::HeaderMap,
    body: &[u8],
) -> AttemptError {
    let api = super::of(spec.provider);
    let (message, kind) = api.map_error_with_headers(status.as_u16(), headers, body);
    let message = scrub(spec, &message);
    let provider = api.error_label();
    let context_window = status == StatusCode::BAD_REQUEST && is_context_window_error(&message);
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
        Credential::Aws(aws) => {
            let mut m = message.to_string();
            for secret in std::iter::once(&aws.secret_access_key).chain(&aws.session_token) {
                if secret.len() >= 8 {
                    m = m.replace(secret.as_str(), "[redacted]");
                }
            }
            m.chars().take(1000).collect()
        }
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

/// Every provider words "the prompt is too long" in one of these ways.
fn is_context_window_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("context_length_exceeded")
        || m.contains("maximum context length")
        || m.contains("context window")
        || m.contains("prompt is too long")
        // Gemini: "The input token count (N) exceeds the maximum number of tokens allowed (M)."
        || m.contains("exceeds the maximum number of tokens allowed")
        // Bedrock: "Input is too long for requested model.", "… exceed context limit".
        || m.contains("input is too long")
        || m.contains("exceed context limit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_context_window_errors() {
        assert!(is_context_window_error(
            "This model's maximum context length is 8192 tokens"
        ));
        assert!(is_context_window_error("prompt is too long: 210000 tokens"));
        assert!(is_context_window_error(
            "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."
        ));
        assert!(is_context_window_error(
            "ValidationException: Input is too long for requested model."
        ));
        assert!(!is_context_window_error("rate limited"));
    }
}
