//! Vertex AI behind [`Provider`]: the request is the Gemini or Anthropic body sent to the model's
//! Vertex URL, with a service-account access token fetched before each attempt.

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::HeaderValue;
use serde_json::{json, Value};

use super::address::{url, Address, Method, Publisher};
use super::embeddings::{from_predict_response, to_predict_request};
use super::token::{self, TokenError};
use super::{family, model_in_url, Family, Target};
use crate::body::RawBody;
use crate::deployment::{Deployment, DeploymentSpec};
use crate::error::ApiError;
use crate::providers::native::{NativeApi, NativeRequest};
use crate::providers::request_parts::{json_headers, parse_url};
use crate::providers::{
    anthropic, gemini, AnswerContext, AttemptError, CallType, FullAnswer, Provider, Translation,
    UpstreamRequest, UsageSeen,
};
use crate::upstream::UpstreamClient;

pub(crate) struct VertexAi;

/// How LiteLLM prefixes Vertex errors, whichever model family failed.
const LABEL: &str = "VertexAIException";

/// Claude on Vertex names the Messages API version in the body rather than in a header.
const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

fn target(spec: &DeploymentSpec) -> Result<&Target, AttemptError> {
    spec.vertex.as_ref().ok_or_else(|| {
        AttemptError::fatal(ApiError::internal(format!(
            "Deployment '{}' has no Vertex AI project and credentials configured.",
            spec.id
        )))
    })
}

fn refused(message: String) -> AttemptError {
    AttemptError::fatal(ApiError::bad_request(message))
}

/// A failed token fetch as the caller's error. The account is named in the log only.
fn token_error(spec: &DeploymentSpec, target: &Target, e: TokenError) -> AttemptError {
    tracing::warn!(
        deployment = %spec.id,
        model_name = %spec.model_name,
        service_account = %target.credentials.client_email(),
        error = %e,
        "no Vertex AI access token"
    );
    let (status, kind, retryable) = match &e {
        TokenError::Refused { .. } => (StatusCode::UNAUTHORIZED, "authentication_error", false),
        TokenError::Sign(_) => (StatusCode::INTERNAL_SERVER_ERROR, "api_error", false),
        TokenError::Unreachable | TokenError::TimedOut => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_connection_error",
            true,
        ),
        TokenError::Failed { .. } | TokenError::BadAnswer => {
            (StatusCode::INTERNAL_SERVER_ERROR, "api_error", true)
        }
    };
    AttemptError {
        error: ApiError::new(
            status,
            kind,
            format!(
                "{LABEL} - could not get a Google access token for deployment '{}' of model \
                 '{}': {e}",
                spec.id, spec.model_name
            ),
        ),
        retryable,
        counts_as_failure: true,
        retry_after: None,
        context_window: false,
    }
}

/// Whether an error body is Anthropic's envelope (`{"type": "error", "error": {"type": …}}`):
/// Claude's own errors come so, Vertex's (quota, permissions) in Google's.
fn is_anthropic_error(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| {
        v.get("type").and_then(Value::as_str) == Some("error")
            && v.get("error")
                .and_then(|e| e.get("type"))
                .is_some_and(Value::is_string)
    })
}

impl Provider for VertexAi {
    fn error_label(&self) -> &'static str {
        LABEL
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
        let target = target(spec)?;
        let family = family(upstream_model).map_err(refused)?;
        let (publisher, method, translated) = match (call, family) {
            (CallType::Chat, Family::Gemini) => {
                let map = gemini::request_map(body, spec)?;
                let method = if stream {
                    Method::StreamGenerate
                } else {
                    Method::Generate
                };
                (Publisher::Google, method, gemini::generate_body(&map)?)
            }
            (CallType::Chat, Family::Claude) => {
                let mut messages = anthropic::messages_body(dep, body, upstream_model, stream)?;
                // The model is in the URL; Vertex refuses it in the body.
                if let Some(obj) = messages.as_object_mut() {
                    obj.remove("model");
                    obj.insert("anthropic_version".into(), json!(ANTHROPIC_VERSION));
                }
                let method = if stream {
                    Method::StreamRawPredict
                } else {
                    Method::RawPredict
                };
                (Publisher::Anthropic, method, messages)
            }
            (CallType::Embedding, Family::Gemini) => {
                let map = gemini::request_map(body, spec)?;
                let predict = to_predict_request(&map)
                    .map_err(|e| AttemptError::fatal(ApiError::bad_request(e.to_string())))?;
                (Publisher::Google, Method::Predict, predict)
            }
            (CallType::Embedding, Family::Claude) | (CallType::Completion, _) => {
                return Err(refused(format!(
                    "Vertex AI deployments serve chat completions (and embeddings for Google's \
                     embedding models); /{} is not available for model '{upstream_model}'.",
                    call.path()
                )))
            }
        };
        let address = Address {
            project: &target.project,
            location: &target.location,
            publisher,
            model: model_in_url(upstream_model),
            method,
        };
        Ok(UpstreamRequest {
            url: parse_url(&url(spec.api_base.as_ref(), &address))?,
            headers: json_headers(),
            body: serde_json::to_vec(&translated).unwrap_or_default(),
        })
    }

    /// Claude on Vertex takes the Messages API's own body (without `model`, which is in the URL).
    fn speaks(&self, spec: &DeploymentSpec, api: NativeApi) -> bool {
        api == NativeApi::AnthropicMessages && family(&spec.upstream_model) == Ok(Family::Claude)
    }

    fn build_native_request(
        &self,
        dep: &Deployment,
        native: &NativeRequest,
        upstream_model: &str,
        stream: bool,
    ) -> Result<UpstreamRequest, AttemptError> {
        let spec = &dep.spec;
        let target = target(spec)?;
        if family(upstream_model) != Ok(Family::Claude) {
            return Err(refused(format!(
                "Vertex AI model '{upstream_model}' does not take Anthropic Messages requests."
            )));
        }
        let mut body = native.body_with_defaults(spec);
        body.remove("model");
        body.insert("anthropic_version".into(), json!(ANTHROPIC_VERSION));
        let address = Address {
            project: &target.project,
            location: &target.location,
            publisher: Publisher::Anthropic,
            model: model_in_url(upstream_model),
            method: if stream {
                Method::StreamRawPredict
            } else {
                Method::RawPredict
            },
        };
        let mut headers = json_headers();
        if let Some(beta) = native.headers.get(anthropic::ANTHROPIC_BETA) {
            headers.insert(anthropic::ANTHROPIC_BETA, beta.clone());
        }
        Ok(UpstreamRequest {
            url: parse_url(&url(spec.api_base.as_ref(), &address))?,
            headers,
            body: serde_json::to_vec(&body).unwrap_or_default(),
        })
    }

    fn authorization<'a>(
        &'a self,
        dep: &'a Deployment,
        client: &'a UpstreamClient,
    ) -> Option<BoxFuture<'a, Result<HeaderValue, AttemptError>>> {
        Some(Box::pin(async move {
            let spec = &dep.spec;
            let target = target(spec)?;
            let creds = &target.credentials;
            creds
                .tokens
                .authorization(|| token::fetch(creds, client))
                .await
                .map_err(|e| token_error(spec, target, e))
        }))
    }

    fn authorization_refused(&self, dep: &Deployment, sent: &HeaderValue) {
        if let Some(target) = &dep.spec.vertex {
            target.credentials.tokens.forget(sent);
        }
    }

    fn read_answer(
        &self,
        call: CallType,
        bytes: Bytes,
        ctx: &AnswerContext<'_>,
    ) -> Result<FullAnswer, ApiError> {
        let claude = family(ctx.upstream_model) == Ok(Family::Claude);
        if call == CallType::Chat && claude {
            return anthropic::read_messages_answer(LABEL, bytes, ctx);
        }
        let bad = |m: String| ApiError::bad_gateway(format!("{LABEL} - {m}"));
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|_| bad("The upstream answer is not valid JSON.".to_string()))?;
        if call != CallType::Embedding {
            return gemini::read_generate_answer(LABEL, &v, ctx);
        }
        let (out, usage) = from_predict_response(&v, ctx.model).map_err(|e| bad(e.to_string()))?;
        Ok(FullAnswer {
            body: Bytes::from(serde_json::to_vec(&out).unwrap_or_default()),
            // Without Vertex's counts the gateway estimates the input's tokens.
            usage: match usage {
                Some(u) => UsageSeen::Reported(u.into_domain()),
                None => UsageSeen::Unreported {
                    completion_bytes: 0,
                },
            },
        })
    }

    fn stream_translation(&self, ctx: &AnswerContext<'_>) -> Translation {
        match family(ctx.upstream_model) {
            Ok(Family::Claude) => anthropic::stream_translation(LABEL, ctx),
            _ => gemini::stream_translation(LABEL, ctx),
        }
    }

    fn map_error(&self, status: u16, body: &[u8]) -> (String, &'static str) {
        if is_anthropic_error(body) {
            anthropic::map_error(status, body)
        } else {
            gemini::map_google_error(status, body, "Vertex AI")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_read_in_the_envelope_they_come_in() {
        let google = br#"{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(
            VertexAi.map_error(429, google),
            ("Quota exceeded".to_owned(), "rate_limit_error")
        );
        let claude =
            br#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#;
        assert_eq!(
            VertexAi.map_error(529, claude),
            ("Overloaded".to_owned(), "api_error")
        );
        assert_eq!(
            VertexAi.map_error(502, b"<html>"),
            (
                "Vertex AI returned HTTP 502: <html>".to_owned(),
                "api_error"
            )
        );
    }
}
