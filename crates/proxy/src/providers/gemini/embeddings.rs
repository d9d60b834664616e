//! OpenAI embeddings ↔ Gemini `batchEmbedContents`.

use serde_json::{json, Map, Value};

use super::model_id;
use crate::providers::translate::{bad_request, bad_upstream, TranslateError, Usage};

/// OpenAI embeddings request → `batchEmbedContents` body: one request per input text.
/// `encoding_format` is accepted but floats are always returned; the OpenAI SDKs, which ask for
/// base64 by default, read either.
pub(crate) fn to_gemini_embed_request(
    req: &Map<String, Value>,
    upstream_model: &str,
) -> Result<Value, TranslateError> {
    let texts: Vec<&str> = match req.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(bad_request("input must not be empty"))
        }
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => texts.push(s.as_str()),
                    Value::Number(_) | Value::Array(_) => {
                        return Err(bad_request(
                            "token-array inputs are not supported for Gemini embedding models; \
                             send the text",
                        ))
                    }
                    _ => return Err(bad_request("input must be a string or an array of strings")),
                }
            }
            texts
        }
        _ => return Err(bad_request("input must be a string or an array of strings")),
    };
    let dimensions = match req.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Some(n),
            _ => return Err(bad_request("dimensions must be a positive integer")),
        },
    };
    match req.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") | Some("base64") => {}
        Some(other) => {
            return Err(bad_request(format!(
                "encoding_format '{other}' is not supported"
            )))
        }
    }
    // LiteLLM's name for Gemini's task type (RETRIEVAL_QUERY, SEMANTIC_SIMILARITY, ...).
    let task_type = match req.get("task_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(bad_request("task_type must be a string")),
    };

    let model = format!("models/{}", model_id(upstream_model));
    let requests: Vec<Value> = texts
        .into_iter()
        .map(|text| {
            let mut r = Map::new();
            r.insert("model".into(), json!(model));
            r.insert("content".into(), json!({"parts": [{"text": text}]}));
            if let Some(n) = dimensions {
                r.insert("outputDimensionality".into(), json!(n));
            }
            if let Some(t) = task_type {
                r.insert("taskType".into(), json!(t));
            }
            Value::Object(r)
        })
        .collect();
    Ok(json!({"requests": requests}))
}

/// `batchEmbedContents` answer → OpenAI embeddings list. Google reports no token count for
/// embeddings, so `prompt_tokens` is the caller's estimate of the input's tokens; it becomes the
/// usage (and the spend) as given.
pub(crate) fn from_gemini_embed_response(
    v: &Value,
    model: &str,
    prompt_tokens: u64,
) -> Result<(Value, Usage), TranslateError> {
    let embeddings = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_upstream("Gemini embedding response has no 'embeddings' array"))?;
    let mut data = Vec::with_capacity(embeddings.len());
    for (index, e) in embeddings.iter().enumerate() {
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .filter(|vals| vals.iter().all(Value::is_number))
            .ok_or_else(|| bad_upstream("Gemini embedding has no numeric 'values' array"))?;
        data.push(json!({"object": "embedding", "index": index, "embedding": values}));
    }
    let usage = Usage {
        prompt_tokens,
        ..Usage::default()
    };
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    });
    Ok((body, usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test request must be an object"),
        }
    }

    fn bad_request_msg(v: Value) -> String {
        match to_gemini_embed_request(&req(v), "text-embedding-004") {
            Err(TranslateError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn string_and_list_inputs() {
        let out = to_gemini_embed_request(
            &req(json!({"model": "alias", "input": "hello", "encoding_format": "float", "user": "u"})),
            "text-embedding-004",
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello"}]}}]})
        );
        let out = to_gemini_embed_request(
            &req(json!({"input": ["a", "b"], "dimensions": 256, "task_type": "RETRIEVAL_QUERY"})),
            "models/gemini-embedding-001",
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]},
                 "outputDimensionality": 256, "taskType": "RETRIEVAL_QUERY"},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]},
                 "outputDimensionality": 256, "taskType": "RETRIEVAL_QUERY"}
            ]})
        );
    }

    #[test]
    fn bad_inputs() {
        let tokens =
            "token-array inputs are not supported for Gemini embedding models; send the text";
        assert_eq!(bad_request_msg(json!({"input": [1, 2, 3]})), tokens);
        assert_eq!(bad_request_msg(json!({"input": [[1, 2], [3]]})), tokens);
        assert_eq!(
            bad_request_msg(json!({"input": []})),
            "input must not be empty"
        );
        assert_eq!(
            bad_request_msg(json!({})),
            "input must be a string or an array of strings"
        );
        assert_eq!(
            bad_request_msg(json!({"input": "x", "dimensions": 0})),
            "dimensions must be a positive integer"
        );
        assert_eq!(
            bad_request_msg(json!({"input": "x", "encoding_format": "int8"})),
            "encoding_format 'int8' is not supported"
        );
    }

    #[test]
    fn response_becomes_an_openai_list() {
        let resp = json!({"embeddings": [{"values": [0.1, -0.2]}, {"values": [0.3, 0.4]}]});
        let (body, usage) = from_gemini_embed_response(&resp, "alias", 7).unwrap();
        assert_eq!(
            body,
            json!({
                "object": "list",
                "data": [
                    {"object": "embedding", "index": 0, "embedding": [0.1, -0.2]},
                    {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]}
                ],
                "model": "alias",
                "usage": {"prompt_tokens": 7, "total_tokens": 7}
            })
        );
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 7,
                ..Usage::default()
            }
        );
        for bad in [
            json!({}),
            json!({"embeddings": [{}]}),
            json!({"embeddings": [{"values": ["x"]}]}),
        ] {
            assert!(matches!(
                from_gemini_embed_response(&bad, "m", 1),
                Err(TranslateError::BadUpstream(_))
            ));
        }
    }
}
