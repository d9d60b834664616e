//! Errors as callers see them: the OpenAI/LiteLLM envelope
//! `{"error": {"message", "type", "param", "code"}}` with LiteLLM's status codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    /// Seconds the caller should wait (sent as `retry-after` on 429).
    pub retry_after: Option<u64>,
    /// More response headers (the `x-ratelimit-*` family on 429).
    /// Boxed: errors travel in `Result`s on the hot path and should stay small.
    pub headers: Option<Box<Vec<(header::HeaderName, HeaderValue)>>>,
}

impl ApiError {
    /// Tells the client when to try again (`retry-after`, in seconds).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            retry_after: None,
            headers: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request_error", message)
    }

    /// The upstream answered something the gateway cannot read.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "api_error", message)
    }

    pub fn auth(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "auth_error", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            message,
        )
    }

    pub fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.to_string());
        self
    }

    /// The envelope as JSON text, for SSE error events too.
    pub fn body_json(&self) -> String {
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: String,
        }
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: Inner<'a>,
        }
        let env = Envelope {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.status.as_u16().to_string(),
            },
        };
        serde_json::to_string(&env).unwrap_or_else(|_| {
            r#"{"error":{"message":"internal error","type":"internal_server_error","param":null,"code":"500"}}"#.to_string()
        })
    }
}

impl ApiError {
    /// This error's status and headers around another API's error body.
    pub fn respond_with(self, body: String) -> Response {
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(extra) = self.headers {
            insert_headers(h, *extra);
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body_json();
        self.respond_with(body)
    }
}

/// Adds `extra` to `h`, room made first: a map grown one insert at a time rehashes itself on
/// the way (it was ~2 % of a virtual-key call's CPU with its eight rate-limit headers).
pub fn insert_headers(h: &mut header::HeaderMap, extra: Vec<(header::HeaderName, HeaderValue)>) {
    h.reserve(extra.len());
    for (name, value) in extra {
        h.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_litellm_fields() {
        let e = ApiError::bad_request("nope").with_param("model");
        let v: serde_json::Value = serde_json::from_str(&e.body_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "nope", "type": "bad_request_error", "param": "model", "code": "400"}})
        );
    }
}
