//! OpenAI-style upstreams: OpenAI itself, Azure OpenAI, and every server that speaks the same
//! API. Their bodies pass through (the `Provider` defaults); only the model name, defaults and
//! stream usage are set.

mod chunk_scan;
pub(crate) mod stream;
pub(crate) mod wire;

use bytes::Bytes;
use http::header::HeaderMap;

use super::native::{NativeApi, NativeRequest};
use super::request_parts::{api_base, header_value, join, json_headers, parse_url};
use super::{credential, AttemptError, CallType, FullAnswer, Provider, UpstreamRequest, UsageSeen};
use crate::body::RawBody;
use crate::deployment::{Credential, Deployment, DeploymentSpec, Prepared};

pub use wire::AZURE_DEFAULT_API_VERSION;

/// OpenAI and the servers that copy its API (the name in `ProviderKind` is LiteLLM's prefix).
pub struct OpenAiCompatible;

/// Azure OpenAI: the same bodies, its own URL layout and key header.
pub struct Azure;

/// Ask OpenAI-style upstreams for usage in streams, so streamed calls are billed.
const STREAM_USAGE: &[(&str, &str)] = &[("stream_options", r#"{"include_usage":true}"#)];

fn body_for(dep: &Deployment, body: &RawBody, upstream_model: &str, stream: bool) -> Vec<u8> {
    let overrides = if stream { STREAM_USAGE } else { &[] };
    body.to_json_with(upstream_model, overrides, &dep.spec.default_params)
}

impl Provider for OpenAiCompatible {
    fn error_label(&self) -> &'static str {
        "OpenAIException"
    }

    fn prepare(&self, spec: &DeploymentSpec) -> Prepared {
        let url_for = |call: CallType| {
            let base = spec.api_base.as_ref()?;
            join(base.as_str(), call.path()).parse::<http::Uri>().ok()
        };
        let auth = match &spec.credential {
            Credential::Key(k) => http::HeaderValue::from_str(&format!("Bearer {k}"))
                .ok()
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                }),
            _ => None,
        };
        Prepared {
            urls: [
                url_for(CallType::Chat),
                url_for(CallType::Completion),
                url_for(CallType::Embedding),
            ],
            auth,
        }
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
        let mut headers = json_headers();
        let url = match &dep.prepared.urls[call as usize] {
            Some(url) => {
                if let Some(auth) = &dep.prepared.auth {
                    headers.insert(http::header::AUTHORIZATION, auth.clone());
                }
                url.clone()
            }
            None => {
                if let Some(k) = key {
                    headers.insert(
                        http::header::AUTHORIZATION,
                        header_value(&format!("Bearer {k}"))?,
                    );
                }
                parse_url(&join(api_base(spec)?, call.path()))?
            }
        };
        organization(spec, &mut headers)?;
        Ok(UpstreamRequest {
            url,
            headers,
            body: body_for(dep, body, upstream_model, stream),
        })
    }

    /// OpenAI serves the Responses API. As in LiteLLM, an `openai/` deployment gets Responses
    /// calls as they are whatever its `api_base`; servers reached through their own prefixes
    /// (`hosted_vllm/`, `ollama/`, …) keep the chat translation.
    fn speaks(&self, spec: &DeploymentSpec, api: NativeApi) -> bool {
        api == NativeApi::OpenAiResponses && spec.provider.name() == "openai"
    }

    fn build_native_request(
        &self,
        dep: &Deployment,
        native: &NativeRequest,
        upstream_model: &str,
        _stream: bool,
    ) -> Result<UpstreamRequest, AttemptError> {
        let spec = &dep.spec;
        let mut headers = json_headers();
        if let Some(k) = credential(spec)? {
            headers.insert(
                http::header::AUTHORIZATION,
                header_value(&format!("Bearer {k}"))?,
            );
        }
        organization(spec, &mut headers)?;
        Ok(UpstreamRequest {
            url: parse_url(&join(api_base(spec)?, "responses"))?,
            headers,
            body: native.body_for(spec, upstream_model),
        })
    }
}

impl Provider for Azure {
    fn error_label(&self) -> &'static str {
        "AzureException"
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
        let mut headers = json_headers();
        if let Some(k) = key {
            headers.insert("api-key", header_value(k)?);
        }
        let version = spec
            .api_version
            .as_deref()
            .unwrap_or(AZURE_DEFAULT_API_VERSION);
        let mut url = join(
            api_base(spec)?,
            &format!("openai/deployments/{upstream_model}/{}", call.path()),
        );
        url.push_str("?api-version=");
        url.push_str(version);
        Ok(UpstreamRequest {
            url: parse_url(&url)?,
            headers,
            body: body_for(dep, body, upstream_model, stream),
        })
    }

    fn speaks(&self, _spec: &DeploymentSpec, api: NativeApi) -> bool {
        api == NativeApi::OpenAiResponses
    }

    fn build_native_request(
        &self,
        dep: &Deployment,
        native: &NativeRequest,
        upstream_model: &str,
        _stream: bool,
    ) -> Result<UpstreamRequest, AttemptError> {
        let spec = &dep.spec;
        let mut headers = json_headers();
        if let Some(k) = credential(spec)? {
            headers.insert("api-key", header_value(k)?);
        }
        let mut url = join(api_base(spec)?, "openai/responses");
        url.push_str("?api-version=");
        url.push_str(azure_responses_version(spec));
        Ok(UpstreamRequest {
            url: parse_url(&url)?,
            headers,
            body: native.body_for(spec, upstream_model),
        })
    }
}

/// The Responses API arrived on Azure after its dated GA versions (`2024-10-21`), which answer 404
/// there: a deployment pinned to one for chat uses the preview version for Responses.
fn azure_responses_version(spec: &DeploymentSpec) -> &str {
    match spec.api_version.as_deref() {
        Some(v) if !is_dated_ga(v) => v,
        _ => "preview",
    }
}

fn is_dated_ga(version: &str) -> bool {
    let b = version.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

fn organization(spec: &DeploymentSpec, headers: &mut HeaderMap) -> Result<(), AttemptError> {
    if let Some(org) = &spec.organization {
        headers.insert("openai-organization", header_value(org)?);
    }
    Ok(())
}

/// The body goes to the caller as it came; usage is read from it.
pub(super) fn pass_through(bytes: Bytes) -> FullAnswer {
    let usage = match wire::usage_of(&bytes) {
        Some(u) => UsageSeen::Reported(u),
        None => UsageSeen::Unreported {
            completion_bytes: completion_text_bytes(&bytes),
        },
    };
    FullAnswer { body: bytes, usage }
}

/// For upstreams that report no usage on a full answer: the generated text's size.
fn completion_text_bytes(bytes: &[u8]) -> usize {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return 0;
    };
    v.get("choices")
        .and_then(|c| c.as_array())
        .map(|choices| {
            choices
                .iter()
                .map(|c| {
                    c.pointer("/message/content")
                        .or_else(|| c.get("text"))
                        .and_then(|t| t.as_str())
                        .map(str::len)
                        .unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_responses_use_preview_unless_a_preview_version_is_set() {
        assert!(is_dated_ga("2024-10-21"));
        assert!(!is_dated_ga("2025-03-01-preview"));
        assert!(!is_dated_ga("preview"));
        assert!(!is_dated_ga("2024-1a-21"));
    }
}
