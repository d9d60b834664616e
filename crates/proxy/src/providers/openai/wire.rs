//! OpenAI's wire format as upstreams send it: usage and error bodies.

use serde::Deserialize;
use tollgate_domain::Usage;

pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

#[derive(Deserialize)]
pub(crate) struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<RawUsage>,
}

impl RawUsage {
    pub(crate) fn into_usage(self) -> Usage {
        convert(self)
    }
}

fn convert(u: RawUsage) -> Usage {
    Usage {
        prompt_tokens: u.prompt_tokens.unwrap_or(0),
        completion_tokens: u.completion_tokens.unwrap_or(0),
        cache_read_input_tokens: u
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
        cache_creation_input_tokens: 0,
        estimated: false,
    }
}

/// The `usage` of a JSON response or stream chunk, if it reports one.
pub fn usage_of(json: &[u8]) -> Option<Usage> {
    if let Some(u) = usage_near_end(json) {
        return Some(u);
    }
    serde_json::from_slice::<WithUsage>(json)
        .ok()
        .and_then(|w| w.usage)
        .map(convert)
}

/// OpenAI-style bodies put `usage` after the (possibly large) choices or embeddings; reading
/// only from the last `"usage":` key avoids parsing a 1536-float embedding to find 3 numbers.
/// A `"usage":` inside a string would be escaped (`\"usage\"`), so an unescaped match is a key.
fn usage_near_end(json: &[u8]) -> Option<Usage> {
    const KEY: &[u8] = b"\"usage\":";
    let pos = memchr::memmem::rfind(json, KEY)?;
    if pos > 0 && json[pos - 1] == b'\\' {
        return None;
    }
    let mut de = serde_json::Deserializer::from_slice(&json[pos + KEY.len()..]);
    let u: Option<RawUsage> = serde::Deserialize::deserialize(&mut de).ok()?;
    u.map(convert)
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    Object {
        #[serde(default)]
        message: Option<String>,
    },
    Text(String),
}

/// Reads an OpenAI-style error body into (message, type).
pub fn map_error(status: u16, body: &[u8]) -> (String, &'static str) {
    let kind = match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 => "timeout",
        429 => "rate_limit_error",
        _ => "api_error",
    };
    let message = match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(ErrorEnvelope {
            error: ErrorBody::Object {
                message: Some(m), ..
            },
        }) => m,
        Ok(ErrorEnvelope {
            error: ErrorBody::Text(m),
        }) => m,
        _ => {
            let text = String::from_utf8_lossy(&body[..body.len().min(500)]);
            if text.trim().is_empty() {
                format!("upstream returned HTTP {status}")
            } else {
                format!("upstream returned HTTP {status}: {}", text.trim())
            }
        }
    };
    (message, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_with_cached_tokens() {
        let u = usage_of(br#"{"id":"x","usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4}}}"#).unwrap();
        assert_eq!(
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.cache_read_input_tokens
            ),
            (9, 3, 4)
        );
        assert!(usage_of(br#"{"id":"x","usage":null}"#).is_none());
        assert!(usage_of(br#"{"id":"x"}"#).is_none());
        let big = format!(
            r#"{{"data":[{{"embedding":[{}]}}],"usage":{{"prompt_tokens":5,"total_tokens":5}}}}"#,
            vec!["0.1"; 1536].join(",")
        );
        assert_eq!(usage_of(big.as_bytes()).unwrap().prompt_tokens, 5);
        let tricky = br#"{"choices":[{"message":{"content":"say \"usage\": {}"}}],"usage":{"prompt_tokens":2,"completion_tokens":1}}"#;
        assert_eq!(usage_of(tricky).unwrap().completion_tokens, 1);
    }

    #[test]
    fn maps_errors() {
        let (m, k) = map_error(
            429,
            br#"{"error":{"message":"slow down","type":"requests"}}"#,
        );
        assert_eq!((m.as_str(), k), ("slow down", "rate_limit_error"));
        let (m, _) = map_error(502, b"<html>bad gateway</html>");
        assert!(m.contains("502"));
    }
}
