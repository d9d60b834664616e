//! Bedrock behind [`Provider`]: chat through Converse, embeddings through InvokeModel, each
//! request signed with the deployment's AWS key pair.

use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value};

use super::embeddings::{from_invoke_response, to_invoke_requests};
use super::error::map_error;
use super::request::to_converse_request;
use super::response::from_converse_response;
use super::sign::sign_request;
use super::stream::StreamTranslator;
use super::{default_endpoint, model_id, url, Action};
use crate::body::RawBody;
use crate::deployment::{Credential, Deployment, DeploymentSpec};
use crate::error::ApiError;
use crate::providers::request_parts::{self, json_headers, parse_url};
use crate::providers::translate::{TranslateError, Usage};
use crate::providers::{
    credential, AnswerContext, AttemptError, CallType, ChunkTranslator, FullAnswer, Provider,
    StreamFraming, Translation, UpstreamRequest, UsageSeen,
};

pub(crate) struct Bedrock;

/// OpenAI parameters Bedrock can't honour, refused unless `drop_params` drops them.
const UNSUPPORTED: &[&str] = &["logprobs", "top_logprobs", "reasoning_effort", "audio", "n"];

/// The caller's body as a map, with the deployment's defaults (and `drop_params`) applied.
fn request_map(body: &RawBody, spec: &DeploymentSpec) -> Result<Map<String, Value>, AttemptError> {
    request_parts::request_map(body, spec, UNSUPPORTED)
}

fn bad_request(e: TranslateError) -> AttemptError {
    AttemptError::fatal(ApiError::bad_request(e.to_string()))
}

impl Provider for Bedrock {
    fn error_label(&self) -> &'static str {
        "BedrockException"
    }

    fn build_request(
        &self,
        dep: &Deployment,
        call: CallType,
        body: &RawBody,
        upstream_model: &str,
        stream: bool,
    ) -> Result<UpstreamRequest, AttemptError> {
        let mut reqs = self
            .build_requests(dep, call, body, upstream_model, stream)?
            .into_iter();
        match (reqs.next(), reqs.next()) {
            (Some(req), None) => Ok(req),
            _ => Err(AttemptError::fatal(ApiError::internal(
                "This Bedrock call takes several upstream requests.",
            ))),
        }
    }

    fn build_requests(
        &self,
        dep: &Deployment,
        call: CallType,
        body: &RawBody,
        upstream_model: &str,
        stream: bool,
    ) -> Result<Vec<UpstreamRequest>, AttemptError> {
        let spec = &dep.spec;
        // An unset os.environ/ variable fails here, naming it.
        credential(spec)?;
        let Credential::Aws(aws) = &spec.credential else {
            return Err(AttemptError::fatal(ApiError::internal(format!(
                "Deployment '{}' of model '{}' has no AWS credentials to sign its requests with.",
                spec.id, spec.model_name
            ))));
        };
        let model = model_id(upstream_model);
        let map = request_map(body, spec)?;
        let (bodies, action) = match call {
            CallType::Chat => (
                vec![to_converse_request(&map).map_err(bad_request)?],
                if stream {
                    Action::ConverseStream
                } else {
                    Action::Converse
                },
            ),
            CallType::Embedding => (
                to_invoke_requests(&map, model).map_err(bad_request)?,
                Action::Invoke,
            ),
            CallType::Completion => {
                return Err(AttemptError::fatal(ApiError::bad_request(
                    "Bedrock deployments serve chat completions and embeddings only; \
                     /completions is not available for this model.",
                )))
            }
        };
        let base = match &spec.api_base {
            Some(u) => u.as_str().to_owned(),
            None => default_endpoint(&aws.region),
        };
        let uri = parse_url(&url(&base, model, action))?;
        let now = SystemTime::now();
        bodies
            .into_iter()
            .map(|translated| {
                let body = serde_json::to_vec(&translated).unwrap_or_default();
                let mut headers = json_headers();
                sign_request(aws, &uri, &mut headers, &body, now).map_err(|e| {
                    AttemptError::fatal(ApiError::internal(format!(
                        "The request to Bedrock for deployment '{}' could not be signed: {e}.",
                        spec.id
                    )))
                })?;
                Ok(UpstreamRequest {
                    url: uri.clone(),
                    headers,
                    body,
                })
            })
            .collect()
    }

    fn read_answer(
        &self,
        call: CallType,
        bytes: Bytes,
        ctx: &AnswerContext<'_>,
    ) -> Result<FullAnswer, ApiError> {
        let bad = |m: String| ApiError::bad_gateway(format!("{} - {m}", self.error_label()));
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|_| bad("The upstream answer is not valid JSON.".to_string()))?;
        let (out, usage) = match call {
            CallType::Embedding => {
                let (out, usage) =
                    from_invoke_response(&v, ctx.model).map_err(|e| bad(e.to_string()))?;
                // Without a count (Cohere) the gateway estimates the input's tokens.
                let usage = match usage {
                    Some(u) => UsageSeen::Reported(u.into_domain()),
                    None => UsageSeen::Unreported {
                        completion_bytes: 0,
                    },
                };
                (out, usage)
            }
            _ => {
                let a = from_converse_response(&v, ctx.id, ctx.model, ctx.created)
                    .map_err(|e| bad(e.to_string()))?;
                let usage = if a.reported {
                    UsageSeen::Reported(a.usage.into_domain())
                } else {
                    UsageSeen::Unreported {
                        completion_bytes: a.generated_bytes,
                    }
                };
                (a.body, usage)
            }
        };
        Ok(FullAnswer {
            body: Bytes::from(serde_json::to_vec(&out).unwrap_or_default()),
            usage,
        })
    }

    fn stream_translation(&self, ctx: &AnswerContext<'_>) -> Translation {
        Translation::Translate {
            translator: Box::new(StreamTranslator::new(
                ctx.id,
                ctx.model,
                ctx.created,
                ctx.include_usage,
            )),
            label: self.error_label(),
        }
    }

    fn map_error(&self, status: u16, body: &[u8]) -> (String, &'static str) {
        map_error(status, &HeaderMap::new(), body)
    }

    fn map_error_with_headers(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (String, &'static str) {
        map_error(status, headers, body)
    }

    fn stream_framing(&self) -> StreamFraming {
        StreamFraming::AwsEventStream
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
