//! OpenAI embeddings ↔ Vertex AI text embedding `predict`.

use serde_json::{json, Map, Value};

use crate::providers::translate::{bad_request, bad_upstream, TranslateError, Usage};

/// OpenAI embeddings request → `predict` body: one instance per input text. `dimensions` becomes
/// `outputDimensionality`; Vertex's own `task_type` (or OpenAI-style `input_type`) and `title`
/// go on each instance, `auto_truncate` with the parameters. `encoding_format` is accepted but
/// floats are always returned.
pub(crate) fn to_predict_request(req: &Map<String, Value>) -> Result<Value, TranslateError> {
    let texts: Vec<&str> = match req.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(bad_request("input must not be empty"))
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.as_str()),
                Value::Number(_) | Value::Array(_) => Err(bad_request(
                    "token-array inputs are not supported for Vertex AI embedding models; \
                     send the text",
                )),
                _ => Err(bad_request("input must be a string or an array of strings")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad_request("input must be a string or an array of strings")),
    };
    match req.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") | Some("base64") => {}
        Some(other) => {
            return Err(bad_request(format!(
                "encoding_format '{other}' is not supported"
            )))
        }
    }
    let text_param = |key: &str| match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(bad_request(format!("{key} must be a string"))),
    };
    let task_type = match text_param("task_type")? {
        Some(t) => Some(t),
        None => text_param("input_type")?,
    };
    let title = text_param("title")?;

    let mut parameters = Map::new();
    match req.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => {
                parameters.insert("outputDimensionality".into(), json!(n));
            }
            _ => return Err(bad_request("dimensions must be a positive integer")),
        },
    }
    match req.get("auto_truncate") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => {
            parameters.insert("autoTruncate".into(), json!(b));
        }
        Some(_) => return Err(bad_request("auto_truncate must be true or false")),
    }

    let instances: Vec<Value> = texts
        .into_iter()
        .map(|text| {
            let mut instance = Map::new();
            instance.insert("content".into(), json!(text));
            if let Some(t) = task_type {
                instance.insert("task_type".into(), json!(t));
            }
            if let Some(t) = title {
                instance.insert("title".into(), json!(t));
            }
            Value::Object(instance)
        })
        .collect();
    Ok(json!({"instances": instances, "parameters": parameters}))
}

/// `predict` answer → OpenAI embeddings list, and the input tokens Vertex counted (None when a
/// prediction carries no count).
pub(crate) fn from_predict_response(
    v: &Value,
    model: &str,
) -> Result<(Value, Option<Usage>), TranslateError> {
    let predictions = v
        .get("predictions")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_upstream("Vertex AI embedding response has no 'predictions' array"))?;
    let mut data = Vec::with_capacity(predictions.len());
    let mut tokens = Some(0u64);
    for (index, p) in predictions.iter().enumerate() {
        let embeddings = p.get("embeddings");
        let values = embeddings
            .and_then(|e| e.get("values"))
            .and_then(Value::as_array)
            .filter(|vals| vals.iter().all(Value::is_number))
            .ok_or_else(|| bad_upstream("Vertex AI embedding has no numeric 'values' array"))?;
        data.push(json!({"object": "embedding", "index": index, "embedding": values}));
        let count = embeddings
            .and_then(|e| e.get("statistics"))
            .and_then(|s| s.get("token_count"))
            .and_then(Value::as_f64)
            .filter(|n| n.is_finite() && *n >= 0.0);
        tokens = match (tokens, count) {
            (Some(sum), Some(n)) => Some(sum + n.round() as u64),
            _ => None,
        };
    }
    let prompt_tokens = tokens.unwrap_or(0);
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    });
    let usage = tokens.map(|prompt_tokens| Usage {
        prompt_tokens,
        ..Usage::default()
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

    fn refused(v: Value) -> String {
        match to_predict_request(&req(v)) {
            Err(TranslateError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn inputs_become_instances() {
        assert_eq!(
            to_predict_request(&req(json!({"input": "hello"}))).unwrap(),
            json!({"instances": [{"content": "hello"}], "parameters": {}})
        );
        assert_eq!(
            to_predict_request(&req(json!({
                "input": ["a", "b"], "dimensions": 256, "input_type": "RETRIEVAL_QUERY",
                "title": "t", "auto_truncate": false, "encoding_format": "base64"
            })))
            .unwrap(),
            json!({
                "instances": [
                    {"content": "a", "task_type": "RETRIEVAL_QUERY", "title": "t"},
                    {"content": "b", "task_type": "RETRIEVAL_QUERY", "title": "t"}
                ],
                "parameters": {"outputDimensionality": 256, "autoTruncate": false}
            })
        );
        // Vertex's own name wins over OpenAI's.
        let v = to_predict_request(&req(
            json!({"input": "a", "task_type": "CLUSTERING", "input_type": "X"}),
        ))
        .unwrap();
        assert_eq!(v["instances"][0]["task_type"], "CLUSTERING");
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(refused(json!({"input": [[1, 2]]})).contains("token-array"));
        assert_eq!(refused(json!({"input": []})), "input must not be empty");
        assert_eq!(
            refused(json!({"input": "a", "dimensions": 0})),
            "dimensions must be a positive integer"
        );
        assert_eq!(
            refused(json!({"input": "a", "encoding_format": "int8"})),
            "encoding_format 'int8' is not supported"
        );
        assert_eq!(
            refused(json!({"input": "a", "task_type": 3})),
            "task_type must be a string"
        );
        assert_eq!(
            refused(json!({})),
            "input must be a string or an array of strings"
        );
    }

    #[test]
    fn predictions_become_embeddings_with_their_token_counts() {
        let answer = json!({"predictions": [
            {"embeddings": {"values": [0.1, 0.2], "statistics": {"token_count": 3, "truncated": false}}},
            {"embeddings": {"values": [1.1, 1.2], "statistics": {"token_count": 4.0}}}
        ], "metadata": {"billableCharacterCount": 20}});
        let (body, usage) = from_predict_response(&answer, "embed").unwrap();
        assert_eq!(
            body,
            json!({"object": "list", "model": "embed", "data": [
                {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
                {"object": "embedding", "index": 1, "embedding": [1.1, 1.2]}
            ], "usage": {"prompt_tokens": 7, "total_tokens": 7}})
        );
        assert_eq!(usage.unwrap().prompt_tokens, 7);

        let uncounted = json!({"predictions": [{"embeddings": {"values": [0.5]}}]});
        let (_, usage) = from_predict_response(&uncounted, "embed").unwrap();
        assert!(usage.is_none());
        assert!(from_predict_response(&json!({}), "m").is_err());
        assert!(from_predict_response(&json!({"predictions": [{"embeddings": {}}]}), "m").is_err());
    }
}
