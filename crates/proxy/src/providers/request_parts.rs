//! Pieces every provider's request builder uses.

use http::header::{HeaderMap, HeaderValue};

use serde_json::{Map, Value};

use super::AttemptError;
use crate::body::RawBody;
use crate::deployment::DeploymentSpec;
use crate::error::ApiError;

pub(super) fn parse_url(url: &str) -> Result<http::Uri, AttemptError> {
    url.parse::<http::Uri>().map_err(|_| {
        AttemptError::fatal(ApiError::internal(
            "The upstream URL built from the deployment's api_base is not valid.",
        ))
    })
}

pub(super) fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

pub(super) fn api_base(spec: &DeploymentSpec) -> Result<&str, AttemptError> {
    spec.api_base.as_ref().map(|u| u.as_str()).ok_or_else(|| {
        AttemptError::fatal(ApiError::internal(format!(
            "Deployment '{}' has no api_base configured.",
            spec.id
        )))
    })
}

pub(super) fn header_value(v: &str) -> Result<HeaderValue, AttemptError> {
    HeaderValue::from_str(v).map_err(|_| {
        AttemptError::fatal(ApiError::internal(
            "A configured provider credential contains characters not allowed in an HTTP header.",
        ))
    })
}

pub(super) fn join(base: &str, path: &str) -> String {
    let mut s = String::with_capacity(base.len() + path.len() + 1);
    s.push_str(base.trim_end_matches('/'));
    s.push('/');
    s.push_str(path);
    s
}

/// The caller's body as a map for a translating provider: the deployment's default parameters
/// fill what the caller left unset, and with `drop_params` the OpenAI parameters the provider
/// can't honour (`unsupported`) are removed rather than refused, as LiteLLM does.
pub(super) fn request_map(
    body: &RawBody,
    spec: &DeploymentSpec,
    unsupported: &[&str],
) -> Result<Map<String, Value>, AttemptError> {
    let mut map = body.to_map().map_err(AttemptError::fatal)?;
    for (k, v) in &spec.default_params {
        map.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if spec.drop_params {
        for key in unsupported {
            map.remove(*key);
        }
    }
    Ok(map)
}
