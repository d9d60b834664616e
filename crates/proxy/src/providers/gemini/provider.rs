//! Gemini behind [`Provider`]: chat completions and embeddings are translated to Google AI
//! Studio's API, and its answers, stream events and errors back.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::{
    from_gemini_embed_response, from_gemini_response, map_error, to_gemini_embed_request,
    to_gemini_request, url, Action, StreamTranslator, API_KEY_HEADER, DEFAULT_API_BASE,
};
use crate::body::RawBody;
use crate::deployment::{Credential, Deployment, DeploymentSpec, Prepared};
use crate::error::ApiError;
use crate::providers::request_parts::{self, header_value, json_headers, parse_url};
use crate::providers::translate::{TranslateError, Usage};
use crate::providers::{
    credential, AnswerContext, AttemptError, CallType, ChunkTranslator, FullAnswer, Provider,
    Translation, UpstreamRequest, UsageSeen,
};

pub(crate) struct Gemini;

/// OpenAI parameters Gemini can't honour, refused unless `drop_params` drops them.
const UNSUPPORTED: &[&str] = &[
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "audio",
    "modalities",
    "prediction",
];

/// The caller's body as a map, with the deployment's defaults (and `drop_params`) applied.
pub(crate) fn request_map(
    body: &RawBody,
    spec: &DeploymentSpec,
) -> Result<Map<String, Value>, AttemptError> {
    request_parts::request_map(body, spec, UNSUPPORTED)
}

fn bad_request(e: TranslateError) -> AttemptError {
    AttemptError::fatal(ApiError::bad_request(e.to_string()))
}

/// Bytes of generated text in a translated chat answer: what it is billed by when Google
/// reported no usage.
fn answer_text_bytes(chat: &Value) -> usize {
    let Some(choices) = chat.get("choices").and_then(Value::as_array) else {
        return 0;
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map_or(0, str::len);
    choices
        .iter()
        .filter_map(|c| c.get("message"))
        .map(|m| {
            let calls = m
                .get("tool_calls")
                .and_then(Value::as_array)
                .map_or(0, |calls| {
                    calls
                        .iter()
                        .map(|c| text(c.get("function").and_then(|f| f.get("arguments"))))
                        .sum()
                });
            text(m.get("content")) + text(m.get("reasoning_content")) + calls
        })
        .sum()
}

impl Provider for Gemini {
    fn error_label(&self) -> &'static str {
        "GeminiException"
    }

    fn prepare(&self, spec: &DeploymentSpec) -> Prepared {
        // The URL names the model, which a wildcard deployment learns per request, and the
        // method, which depends on streaming: only the key header is made ready.
        let auth = match &spec.credential {
            Credential::Key(k) => http::HeaderValue::from_str(k).ok().map(|mut v| {
                v.set_sensitive(true);
                v
            }),
            _ => None,
        };
        Prepared {
            auth,
            ..Prepared::default()
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
        // The config gives every Gemini deployment a base; a mock one may come without.
        let base = spec
            .api_base
            .as_ref()
            .map_or(DEFAULT_API_BASE, |u| u.as_str());
        let map = request_map(body, spec)?;
        let (translated, action) = match call {
            CallType::Chat => (
                generate_body(&map)?,
                if stream {
                    Action::Stream
                } else {
                    Action::Generate
                },
            ),
            CallType::Embedding => (
                to_gemini_embed_request(&map, upstream_model).map_err(bad_request)?,
                Action::BatchEmbed,
            ),
            CallType::Completion => {
                return Err(AttemptError::fatal(ApiError::bad_request(
                    "Gemini deployments serve chat completions and embeddings only; \
                     /completions is not available for this model.",
                )))
            }
        };
        let mut headers = json_headers();
        // The key goes in a header, never in the `?key=` query: URLs get logged.
        match (&dep.prepared.auth, key) {
            (Some(auth), _) => {
                headers.insert(API_KEY_HEADER, auth.clone());
            }
            (None, Some(k)) => {
                let mut v = header_value(k)?;
                v.set_sensitive(true);
                headers.insert(API_KEY_HEADER, v);
            }
            (None, None) => {}
        }
        Ok(UpstreamRequest {
            url: parse_url(&url(base, upstream_model, action))?,
            headers,
            body: serde_json::to_vec(&translated).unwrap_or_default(),
        })
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
        if call != CallType::Embedding {
            return read_generate_answer(self.error_label(), &v, ctx);
        }
        // Google's batch embedding answer carries no token count (newer models may): without
        // one the gateway estimates the input's tokens when recording, and the caller is shown
        // what Google reported.
        let counted = v
            .get("usageMetadata")
            .and_then(|u| u.get("promptTokenCount"))
            .and_then(Value::as_u64);
        let (out, u) = from_gemini_embed_response(&v, ctx.model, counted.unwrap_or(0))
            .map_err(|e| bad(e.to_string()))?;
        let usage = match counted {
            Some(_) => UsageSeen::Reported(u.into_domain()),
            None => UsageSeen::Unreported {
                completion_bytes: 0,
            },
        };
        Ok(FullAnswer {
            body: Bytes::from(serde_json::to_vec(&out).unwrap_or_default()),
            usage,
        })
    }

    fn stream_translation(&self, ctx: &AnswerContext<'_>) -> Translation {
        stream_translation(self.error_label(), ctx)
    }

    fn map_error(&self, status: u16, body: &[u8]) -> (String, &'static str) {
        map_error(status, body)
    }
}

/// The `generateContent` body for a chat request (Gemini on Vertex AI sends the same).
pub(crate) fn generate_body(map: &Map<String, Value>) -> Result<Value, AttemptError> {
    to_gemini_request(map, None).map_err(bad_request)
}

/// A complete `generateContent` answer in OpenAI's shape; `label` prefixes the errors met
/// reading it.
pub(crate) fn read_generate_answer(
    label: &'static str,
    v: &Value,
    ctx: &AnswerContext<'_>,
) -> Result<FullAnswer, ApiError> {
    let (out, u) = from_gemini_response(v, ctx.id, ctx.model, ctx.created)
        .map_err(|e| ApiError::bad_gateway(format!("{label} - {e}")))?;
    let usage = if v.get("usageMetadata").is_some() {
        UsageSeen::Reported(u.into_domain())
    } else {
        UsageSeen::Unreported {
            completion_bytes: answer_text_bytes(&out),
        }
    };
    Ok(FullAnswer {
        body: Bytes::from(serde_json::to_vec(&out).unwrap_or_default()),
        usage,
    })
}

/// `streamGenerateContent` events translated into OpenAI chunks.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn billed_text_of_an_answer() {
        let chat = json!({"choices": [
            {"message": {"content": "abc", "reasoning_content": "de"}},
            {"message": {"content": null, "tool_calls": [{"function": {"arguments": "{}"}}]}}
        ]});
        assert_eq!(answer_text_bytes(&chat), 7);
        assert_eq!(answer_text_bytes(&json!({})), 0);
    }
}
