//! OpenAI embeddings ↔ Bedrock InvokeModel for Amazon Titan and Cohere embedding models.

use serde_json::{json, Map, Value};

use crate::providers::translate::{bad_request, bad_upstream, positive_int, TranslateError, Usage};

/// The embedding model families Bedrock serves through InvokeModel with their own bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// `amazon.titan-embed-text-v1`, `-v2:0`: one text per call.
    Titan,
    /// `cohere.embed-english-v3`, `cohere.embed-multilingual-v3`, …: a list of texts.
    Cohere,
}

impl Family {
    /// The family of a model id; region prefixes (`us.cohere.…`) don't matter.
    pub(super) fn of(model_id: &str) -> Option<Family> {
        if model_id.contains("amazon.titan-embed") {
            Some(Family::Titan)
        } else if model_id.contains("cohere.embed") {
            Some(Family::Cohere)
        } else {
            None
        }
    }
}

fn texts(req: &Map<String, Value>) -> Result<Vec<&str>, TranslateError> {
    match req.get("input") {
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) if items.is_empty() => Err(bad_request("input must not be empty")),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.as_str()),
                Value::Number(_) | Value::Array(_) => Err(bad_request(
                    "token-array inputs are not supported for Bedrock embedding models; send the text",
                )),
                _ => Err(bad_request("input must be a string or an array of strings")),
            })
            .collect(),
        _ => Err(bad_request("input must be a string or an array of strings")),
    }
}

/// The InvokeModel body for an OpenAI embeddings request.
pub(super) fn to_invoke_request(
    req: &Map<String, Value>,
    model_id: &str,
) -> Result<Value, TranslateError> {
    let family = Family::of(model_id).ok_or_else(|| {
        bad_request(format!(
            "'{model_id}' is not a Bedrock embedding model Tollgate can call; \
             Amazon Titan (amazon.titan-embed-…) and Cohere (cohere.embed-…) are supported"
        ))
    })?;
    let texts = texts(req)?;
    let dimensions = positive_int(req, "dimensions")?;
    match family {
        Family::Titan => {
            // Titan embeds one text per InvokeModel call, and a gateway call is one upstream call.
            let [text] = texts.as_slice() else {
                return Err(bad_request(
                    "Amazon Titan embedding models take one input per request; \
                     send the inputs one at a time",
                ));
            };
            let mut body = Map::new();
            body.insert("inputText".into(), json!(text));
            if let Some(d) = dimensions {
                body.insert("dimensions".into(), json!(d));
            }
            Ok(Value::Object(body))
        }
        Family::Cohere => {
            let input_type = match req.get("input_type") {
                None | Some(Value::Null) => "search_document",
                Some(Value::String(s)) => s.as_str(),
                Some(_) => return Err(bad_request("input_type must be a string")),
            };
            let mut body = Map::new();
            body.insert("texts".into(), json!(texts));
            body.insert("input_type".into(), json!(input_type));
            if let Some(d) = dimensions {
                body.insert("output_dimension".into(), json!(d));
            }
            Ok(Value::Object(body))
        }
    }
}

/// An InvokeModel embedding answer → the OpenAI list, with the prompt tokens Bedrock reported
/// (Titan does, Cohere does not).
pub(super) fn from_invoke_response(
    v: &Value,
    model: &str,
) -> Result<(Value, Option<Usage>), TranslateError> {
    let numeric = |e: &Value| {
        e.as_array()
            .filter(|vals| vals.iter().all(Value::is_number))
            .cloned()
    };
    let (vectors, tokens) = if let Some(e) = v.get("embedding") {
        let vector =
            numeric(e).ok_or_else(|| bad_upstream("Titan 'embedding' is not a list of numbers"))?;
        (
            vec![vector],
            v.get("inputTextTokenCount").and_then(Value::as_u64),
        )
    } else if let Some(e) = v.get("embeddings") {
        // Cohere answers a plain list, or one list per requested embedding type.
        let lists = match e {
            Value::Array(lists) => lists,
            Value::Object(by_type) => by_type
                .get("float")
                .and_then(Value::as_array)
                .ok_or_else(|| bad_upstream("Cohere answer has no float embeddings"))?,
            _ => return Err(bad_upstream("Cohere 'embeddings' is not a list")),
        };
        let vectors = lists
            .iter()
            .map(|l| {
                numeric(l).ok_or_else(|| bad_upstream("Cohere embedding is not a list of numbers"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        (vectors, None)
    } else {
        return Err(bad_upstream(
            "Bedrock embedding answer has no 'embedding' or 'embeddings'",
        ));
    };
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| json!({"object": "embedding", "index": index, "embedding": vector}))
        .collect();
    let prompt = tokens.unwrap_or(0);
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    });
    let usage = tokens.map(|t| Usage {
        prompt_tokens: t,
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

    fn refused(v: Value, model: &str) -> String {
        match to_invoke_request(&req(v), model) {
            Err(TranslateError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn titan_and_cohere_bodies() {
        assert_eq!(
            to_invoke_request(
                &req(json!({"input": "hello"})),
                "amazon.titan-embed-text-v1"
            )
            .unwrap(),
            json!({"inputText": "hello"})
        );
        assert_eq!(
            to_invoke_request(
                &req(json!({"input": ["hello"], "dimensions": 256})),
                "amazon.titan-embed-text-v2:0"
            )
            .unwrap(),
            json!({"inputText": "hello", "dimensions": 256})
        );
        assert_eq!(
            to_invoke_request(
                &req(json!({"input": ["a", "b"]})),
                "cohere.embed-english-v3"
            )
            .unwrap(),
            json!({"texts": ["a", "b"], "input_type": "search_document"})
        );
        assert_eq!(
            to_invoke_request(
                &req(json!({"input": "q", "input_type": "search_query"})),
                "us.cohere.embed-v4:0"
            )
            .unwrap(),
            json!({"texts": ["q"], "input_type": "search_query"})
        );
    }

    #[test]
    fn refusals() {
        assert!(
            refused(json!({"input": ["a", "b"]}), "amazon.titan-embed-text-v2:0")
                .contains("one input")
        );
        assert!(refused(json!({"input": "a"}), "anthropic.claude-v2")
            .contains("not a Bedrock embedding model"));
        assert!(
            refused(json!({"input": [1, 2]}), "cohere.embed-english-v3").contains("token-array")
        );
        assert!(refused(json!({"input": []}), "cohere.embed-english-v3").contains("empty"));
    }

    #[test]
    fn answers_become_openai_lists() {
        let (body, usage) = from_invoke_response(
            &json!({"embedding": [0.1, 0.2], "inputTextTokenCount": 3}),
            "titan",
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                   "model": "titan", "usage": {"prompt_tokens": 3, "total_tokens": 3}})
        );
        assert_eq!(usage.map(|u| u.prompt_tokens), Some(3));
        let (body, usage) = from_invoke_response(
            &json!({"id": "x", "embeddings": [[1.0], [2.0]], "response_type": "embeddings_floats"}),
            "cohere",
        )
        .unwrap();
        assert_eq!(
            body["data"][1],
            json!({"object": "embedding", "index": 1, "embedding": [2.0]})
        );
        assert!(usage.is_none());
        let (body, _) =
            from_invoke_response(&json!({"embeddings": {"float": [[0.5]]}}), "cohere").unwrap();
        assert_eq!(body["data"][0]["embedding"], json!([0.5]));
        for bad in [
            json!({}),
            json!({"embedding": ["x"]}),
            json!({"embeddings": "x"}),
        ] {
            assert!(matches!(
                from_invoke_response(&bad, "m"),
                Err(TranslateError::BadUpstream(_))
            ));
        }
    }
}
