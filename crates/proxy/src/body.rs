//! The request body, parsed once into its top-level fields with every value kept as raw JSON.
//! Only the few fields the gateway acts on are decoded; the rest (messages, tools, …) are copied
//! through untouched when the upstream body is serialized.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::ApiError;

/// Deepest nesting accepted. Real requests (JSON-schema tools included) stay far below it; the
/// bound keeps hostile bodies from costing stack or time anywhere downstream.
pub const MAX_DEPTH: usize = 64;

/// Fields that would let a caller choose where the provider's key is sent, or which provider is
/// called. The caller never chooses that (LiteLLM CVE-2024-6587 and its successors).
const UPSTREAM_SETTINGS: &[&str] = &[
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "azure_ad_token",
    "azure_endpoint",
    "custom_llm_provider",
    "organization",
    "user_config",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_region_name",
    "vertex_credentials",
    "vertex_project",
    "vertex_location",
    "vertex_ai_project",
    "vertex_ai_location",
    "vertex_ai_credentials",
];

/// Containers LiteLLM merges into the call's parameters, where the same fields hide.
const NESTED_CONTAINERS: &[&str] = &[
    "extra_body",
    "litellm_params",
    "litellm_embedding_config",
    "model_config",
];

/// Request tags kept per call, and the longest tag kept.
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_CHARS: usize = 128;

/// Whether a request field is LiteLLM's own, never sent upstream.
pub(crate) fn is_gateway_only(key: &str) -> bool {
    GATEWAY_ONLY.contains(&key)
}

/// LiteLLM-only request fields that are not sent upstream.
const GATEWAY_ONLY: &[&str] = &[
    "metadata",
    "litellm_metadata",
    "tags",
    "mock_response",
    "caching",
    "cache",
    "num_retries",
    "fallbacks",
    "context_window_fallbacks",
    "drop_params",
    "guardrails",
    "proxy_server_request",
];

#[derive(Clone)]
pub struct RawBody {
    fields: Vec<(String, Box<RawValue>)>,
}

/// Shows field names only: values are the caller's prompts.
impl fmt::Debug for RawBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys()).finish()
    }
}

impl<'de> Deserialize<'de> for RawBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawBody;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawBody, A::Error> {
                let mut fields: Vec<(String, Box<RawValue>)> = Vec::with_capacity(12);
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    // Last one wins, as in a JSON parser that builds a map.
                    if let Some(slot) = fields.iter_mut().find(|(name, _)| *name == k) {
                        slot.1 = v;
                    } else {
                        fields.push((k, v));
                    }
                }
                Ok(RawBody { fields })
            }
        }
        d.deserialize_map(V)
    }
}

impl RawBody {
    /// Checks and parses a request body: valid UTF-8 without lone surrogate escapes, bounded
    /// depth, a JSON object.
    pub fn parse(bytes: &[u8]) -> Result<RawBody, ApiError> {
        if std::str::from_utf8(bytes).is_err() {
            return Err(ApiError::bad_request("Request body is not valid UTF-8."));
        }
        check_scan(bytes)?;
        serde_json::from_slice::<RawBody>(bytes).map_err(|e| {
            ApiError::bad_request(format!("Request body is not a valid JSON object: {e}"))
        })
    }

    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// LiteLLM's request tags, for the spend log: `tags`, else `metadata.tags`. Only strings
    /// count, at most [`MAX_TAGS`] of at most [`MAX_TAG_CHARS`] characters each; anything else is
    /// left out rather than refused (tags only label spend).
    pub fn request_tags(&self) -> Vec<String> {
        let listed = |v: Option<serde_json::Value>| match v {
            Some(serde_json::Value::Array(a)) => Some(a),
            _ => None,
        };
        let tags = listed(self.decode("tags").ok().flatten()).or_else(|| {
            let meta: Option<serde_json::Value> = self.decode("metadata").ok().flatten();
            listed(meta.and_then(|mut m| m.get_mut("tags").map(serde_json::Value::take)))
        });
        let mut out: Vec<String> = Vec::new();
        for t in tags.unwrap_or_default() {
            if let serde_json::Value::String(t) = t {
                if !t.is_empty() && t.chars().count() <= MAX_TAG_CHARS && !out.contains(&t) {
                    out.push(t);
                }
            }
            if out.len() == MAX_TAGS {
                break;
            }
        }
        out
    }

    /// Decodes one field; `Ok(None)` when absent or JSON `null`.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self, key: &str) -> Result<Option<T>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => serde_json::from_str(raw.get()).map(Some).map_err(|e| {
                ApiError::bad_request(format!("Invalid value for '{key}': {e}")).with_param(key)
            }),
        }
    }

    pub fn set_raw(&mut self, key: &str, value: Box<RawValue>) {
        if let Some(slot) = self.fields.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            self.fields.push((key.to_string(), value));
        }
    }

    pub fn set<T: serde::Serialize>(&mut self, key: &str, value: &T) {
        if let Ok(raw) = serde_json::value::to_raw_value(value) {
            self.set_raw(key, raw);
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        let idx = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(idx).1)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_str())
    }

    /// Refuses caller-supplied upstream settings, at the top level and in the containers LiteLLM
    /// merges into a call.
    pub fn reject_upstream_settings(&self) -> Result<(), ApiError> {
        for (k, _) in &self.fields {
            if UPSTREAM_SETTINGS.contains(&k.as_str()) {
                return Err(upstream_setting_error(k));
            }
        }
        for container in NESTED_CONTAINERS {
            let Some(raw) = self.get(container) else {
                continue;
            };
            if let Ok(obj) =
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw.get())
            {
                if let Some(k) = obj.keys().find(|k| UPSTREAM_SETTINGS.contains(&k.as_str())) {
                    return Err(upstream_setting_error(&format!("{container}.{k}")));
                }
            }
        }
        Ok(())
    }

    /// Drops LiteLLM-only fields that must not reach the upstream.
    pub fn strip_gateway_fields(&mut self) {
        self.fields.retain(|(k, _)| !is_gateway_only(k));
    }

    /// Fills in deployment defaults the caller did not set.
    pub fn apply_defaults(&mut self, defaults: &serde_json::Map<String, serde_json::Value>) {
        for (k, v) in defaults {
            if !self.contains(k) {
                self.set(k, v);
            }
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let len: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(len + 2);
        out.push(b'{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Keys came from JSON and are re-escaped the same way; this cannot fail for a String.
            if serde_json::to_writer(&mut out, k).is_err() {
                continue;
            }
            out.push(b':');
            out.extend_from_slice(v.get().as_bytes());
        }
        out.push(b'}');
        out
    }

    /// Serializes with the upstream model name, `overrides` replacing or adding fields, and
    /// `defaults` added where the caller set nothing. The body itself is not changed, so each
    /// retry can target another deployment.
    pub fn to_json_with(
        &self,
        model: &str,
        overrides: &[(&str, &str)],
        defaults: &serde_json::Map<String, serde_json::Value>,
    ) -> Vec<u8> {
        let len: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(len + 64);
        out.push(b'{');
        let mut first = true;
        let mut push = |out: &mut Vec<u8>, k: &str, raw: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            if serde_json::to_writer(&mut *out, k).is_ok() {
                out.push(b':');
                out.extend_from_slice(raw.as_bytes());
            }
        };
        let model_json = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".to_string());
        let mut wrote_model = false;
        for (k, v) in &self.fields {
            if k == "model" {
                push(&mut out, k, &model_json);
                wrote_model = true;
            } else if let Some((_, raw)) = overrides.iter().find(|(name, _)| name == k) {
                push(&mut out, k, raw);
            } else {
                push(&mut out, k, v.get());
            }
        }
        if !wrote_model {
            push(&mut out, "model", &model_json);
        }
        for (k, raw) in overrides {
            if !self.contains(k) {
                push(&mut out, k, raw);
            }
        }
        for (k, v) in defaults {
            if !self.contains(k) && !overrides.iter().any(|(name, _)| name == k) {
                push(&mut out, k, &v.to_string());
            }
        }
        out.push(b'}');
        out
    }

    /// A JSON object view, for translations that need the whole request (e.g. Anthropic).
    pub fn to_map(&self) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        let mut map = serde_json::Map::with_capacity(self.fields.len());
        for (k, v) in &self.fields {
            let value: serde_json::Value = serde_json::from_str(v.get())
                .map_err(|e| ApiError::bad_request(format!("Invalid value for '{k}': {e}")))?;
            map.insert(k.clone(), value);
        }
        Ok(map)
    }
}

fn upstream_setting_error(field: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Rejected '{field}' in the request body: upstream settings (api_base, base_url, api_key, …) \
         are configured on the gateway, not chosen by the caller."
    ))
    .with_param(field)
}

/// One pass over the bytes: bracket depth outside strings, and inside strings every `\u` escape
/// of a UTF-16 surrogate must be a high half followed by a low half. serde_json checks that only
/// when it decodes a string, not when it keeps a value raw, so a lone half would otherwise reach
/// the upstream and the logs as text that is not Unicode.
fn check_scan(bytes: &[u8]) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if in_string {
            match b {
                b'\\' => {
                    i = if bytes.get(i) == Some(&b'u') {
                        after_unicode_escape(bytes, i + 1)?
                    } else {
                        // The escaped character, whatever it is, ends nothing.
                        i + 1
                    };
                }
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ApiError::bad_request(format!(
                        "Request body is nested too deeply (more than {MAX_DEPTH} levels)."
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Checks the `\u` escape whose four hex digits start at `at`; returns where scanning resumes
/// (past a surrogate pair as a whole). Malformed hex is left for the JSON parser to report.
fn after_unicode_escape(bytes: &[u8], at: usize) -> Result<usize, ApiError> {
    let Some(unit) = hex4(bytes, at) else {
        return Ok(at);
    };
    match unit {
        0xD800..=0xDBFF => {
            let low = match bytes.get(at + 4..at + 6) {
                Some(b"\\u") => hex4(bytes, at + 6),
                _ => None,
            };
            match low {
                Some(0xDC00..=0xDFFF) => Ok(at + 10),
                _ => Err(lone_surrogate(unit)),
            }
        }
        0xDC00..=0xDFFF => Err(lone_surrogate(unit)),
        _ => Ok(at + 4),
    }
}

fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0u16, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some((acc << 4) | v as u16)
    })
}

fn lone_surrogate(unit: u16) -> ApiError {
    ApiError::bad_request(format!(
        "Request body is not valid Unicode: the escape \\u{unit:04x} is half of a UTF-16 \
         surrogate pair without its other half."
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_tags_come_from_tags_or_metadata() {
        let b = RawBody::parse(br#"{"model":"m","tags":["a","b","a",1,""]}"#).unwrap();
        assert_eq!(b.request_tags(), vec!["a", "b"]);
        let b = RawBody::parse(br#"{"model":"m","metadata":{"tags":["x"]}}"#).unwrap();
        assert_eq!(b.request_tags(), vec!["x"]);
        let b = RawBody::parse(br#"{"model":"m","tags":"not-a-list"}"#).unwrap();
        assert!(b.request_tags().is_empty());
        let long = "t".repeat(MAX_TAG_CHARS + 1);
        let many: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        let body = serde_json::json!({"model": "m", "tags": [long], "metadata": {"tags": many}});
        let b = RawBody::parse(body.to_string().as_bytes()).unwrap();
        assert!(
            b.request_tags().is_empty(),
            "tags wins, even when nothing in it is kept"
        );
        let body = serde_json::json!({"model": "m", "tags": many});
        let b = RawBody::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(b.request_tags().len(), MAX_TAGS);
    }

    use super::*;

    #[test]
    fn round_trips_fields_untouched() {
        let src = br#"{"model":"a","messages":[{"role":"user","content":"h\u00e9 \"x\""}],"x":{"deep":[1,2]}}"#;
        let mut b = RawBody::parse(src).unwrap();
        b.set("model", &"upstream-model");
        let out: serde_json::Value = serde_json::from_slice(&b.to_json()).unwrap();
        assert_eq!(out["model"], "upstream-model");
        assert_eq!(out["messages"][0]["content"], "hé \"x\"");
        assert_eq!(out["x"]["deep"][1], 2);
        assert_eq!(b.keys().collect::<Vec<_>>(), vec!["model", "messages", "x"]);
    }

    #[test]
    fn serializes_with_model_overrides_and_defaults() {
        let b = RawBody::parse(br#"{"model":"public","stream":true,"stream_options":{"include_usage":false},"max_tokens":5}"#).unwrap();
        let defaults = serde_json::json!({"max_tokens": 100, "temperature": 0.2});
        let out = b.to_json_with(
            "up",
            &[("stream_options", r#"{"include_usage":true}"#)],
            defaults.as_object().unwrap(),
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"model":"up","stream":true,"stream_options":{"include_usage":true},"max_tokens":5,"temperature":0.2})
        );
    }

    #[test]
    fn refuses_bad_bodies() {
        assert!(RawBody::parse(b"[1,2]").is_err());
        assert!(RawBody::parse(b"{\"a\":").is_err());
        assert!(RawBody::parse(&[b'{', b'"', 0xff, b'"', b':', b'1', b'}']).is_err());
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        let e = RawBody::parse(deep.as_bytes()).unwrap_err();
        assert!(e.message.contains("nested too deeply"));
        // Brackets inside strings don't count.
        let ok = format!("{{\"a\":\"{}\"}}", "[".repeat(100));
        assert!(RawBody::parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn refuses_lone_surrogate_escapes() {
        for body in [
            r#"{"content":"\ud800"}"#,
            r#"{"content":"\uDBFF"}"#,
            r#"{"content":"\udc00"}"#,
            r#"{"content":"a\uDFFFb"}"#,
            r#"{"content":"\ud800\u0041"}"#,
            r#"{"content":"\ud800\ud800"}"#,
            r#"{"content":"\ud83d\ude00\ude00"}"#,
            r#"{"content":"\ud800\n"}"#,
            r#"{"content":"\ud800"#,
            r#"{"\udc00":1}"#,
            r#"{"m":[{"x":"ok"},{"y":"\ud800x"}]}"#,
        ] {
            let e = RawBody::parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert!(e.message.contains("surrogate"), "{body}: {}", e.message);
        }
    }

    #[test]
    fn accepts_surrogate_pairs_and_other_escapes() {
        for (body, text) in [
            (r#"{"content":"\ud83d\ude00"}"#, "😀"),
            (r#"{"content":"\uD83D\uDE00!"}"#, "😀!"),
            (r#"{"content":"\\ud800"}"#, "\\ud800"),
            (r#"{"content":"\\\ud83d\ude00"}"#, "\\😀"),
            (
                r#"{"content":"\u00e9\ud7ff\ue000\"\u0022"}"#,
                "é\u{d7ff}\u{e000}\"\"",
            ),
        ] {
            let b = RawBody::parse(body.as_bytes()).unwrap();
            assert_eq!(
                b.decode::<String>("content").unwrap().as_deref(),
                Some(text)
            );
        }
        // Malformed escapes are the JSON parser's to report.
        let e = RawBody::parse(br#"{"content":"\uZZZZ"}"#).unwrap_err();
        assert!(
            e.message.contains("not a valid JSON object"),
            "{}",
            e.message
        );
    }

    #[test]
    fn rejects_upstream_settings_top_level_and_nested() {
        for body in [
            r#"{"model":"m","api_base":"http://169.254.169.254/"}"#,
            r#"{"model":"m","base_url":"http://evil"}"#,
            r#"{"model":"m","api_key":"sk-x"}"#,
            r#"{"model":"m","extra_body":{"api_base":"http://evil"}}"#,
            r#"{"model":"m","litellm_embedding_config":{"api_base":"http://evil"}}"#,
        ] {
            let b = RawBody::parse(body.as_bytes()).unwrap();
            let e = b.reject_upstream_settings().unwrap_err();
            assert_eq!(e.status, 400, "{body}");
        }
        let b = RawBody::parse(br#"{"model":"m","extra_body":{"top_k":3}}"#).unwrap();
        assert!(b.reject_upstream_settings().is_ok());
    }

    #[test]
    fn defaults_fill_only_missing_fields() {
        let mut b = RawBody::parse(br#"{"model":"m","max_tokens":5}"#).unwrap();
        let defaults = serde_json::json!({"max_tokens": 100, "temperature": 0.2});
        b.apply_defaults(defaults.as_object().unwrap());
        assert_eq!(b.decode::<u64>("max_tokens").unwrap(), Some(5));
        assert_eq!(b.decode::<f64>("temperature").unwrap(), Some(0.2));
    }

    #[test]
    fn strips_gateway_fields_and_keeps_last_duplicate() {
        let mut b =
            RawBody::parse(br#"{"model":"a","model":"b","metadata":{"x":1},"user":"u"}"#).unwrap();
        b.strip_gateway_fields();
        assert_eq!(b.decode::<String>("model").unwrap().as_deref(), Some("b"));
        assert!(!b.contains("metadata"));
        assert!(b.contains("user"));
    }
}
