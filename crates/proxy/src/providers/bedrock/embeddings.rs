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

/// Most inputs one Titan request is fanned out to: each is an upstream call, made in turn.
const MAX_TITAN_INPUTS: usize = 128;

/// The InvokeModel bodies for an OpenAI embeddings request: Titan embeds one text per call, so
/// it gets one body per input (as LiteLLM sends them); Cohere gets one body for all.
pub(super) fn to_invoke_requests(
    req: &Map<String, Value>,
    model_id: &str,
) -> Result<Vec<Value>, TranslateError> {
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
            if texts.len() > MAX_TITAN_INPUTS {
                return Err(bad_request(format!(
                    "Amazon Titan embedding models are called once per input; send at most \
                     {MAX_TITAN_INPUTS} inputs per request"
                )));
            }
            Ok(texts
                .into_iter()
                .map(|text| {
                    let mut body = Map::new();
                    body.insert("inputText".into(), json!(text));
                    if let Some(d) = dimensions {
                        body.insert("dimensions".into(), json!(d));
                    }
                    Value::Object(body)
                })
                .collect())
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
            Ok(vec![Value::Object(body)])
        }
    }
}

/// InvokeModel embedding answers → the OpenAI list, with the prompt tokens Bedrock reported
/// (Titan does, Cohere does not). Titan's answers, one per input, come as one array.
pub(super) fn from_invoke_response(
    v: &Value,
    model: &str,
) -> Result<(Value, Option<Usage>), TranslateError> {
    let answers = match v {
        Value::Array(answers) => answers.as_slice(),
        one => std::slice::from_ref(one),
    };
    let mut data = Vec::new();
    let mut tokens: Option<u64> = None;
    for answer in answers {
        let (vectors, counted) = read_answer(answer)?;
        for vector in vectors {
            data.push(json!({"object": "embedding", "index": data.len(), "embedding": vector}));
        }
        if let Some(n) = counted {
            tokens = Some(tokens.unwrap_or(0) + n);
        }
    }
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

/// The vectors of one InvokeModel answer, and the tokens it reports.
fn read_answer(v: &Value) -> Result<(Vec<Vec<Value>>, Option<u64>), TranslateError> {
    let numeric = |e: &Value| {
        e.as_array()
            .filter(|vals| vals.iter().all(Value::is_number))
            .cloned()
    };
    if let Some(e) = v.get("embedding") {
        let vector =
            numeric(e).ok_or_else(|| bad_upstream("Titan 'embedding' is not a list of numbers"))?;
        return Ok((
            vec![vector],
            v.get("inputTextTokenCount").and_then(Value::as_u64),
        ));
    }
    let Some(e) = v.get("embeddings") else {
        return Err(bad_upstream(
            "Bedrock embedding answer has no 'embedding' or 'embeddings'",
        ));
    };
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
    Ok((vectors, None))
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
        match to_invoke_requests(&req(v), model) {
            Err(TranslateError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn titan_and_cohere_bodies() {
        let bodies = |v: Value, model: &str| to_invoke_requests(&req(v), model).unwrap();
        assert_eq!(
            bodies(json!({"input": "hello"}), "amazon.titan-embed-text-v1"),
            vec![json!({"inputText": "hello"})]
        );
        // Titan: one call per input.
        assert_eq!(
            bodies(
                json!({"input": ["hello", "world"], "dimensions": 256}),
                "amazon.titan-embed-text-v2:0"
            ),
            vec![
                json!({"inputText": "hello", "dimensions": 256}),
                json!({"inputText": "world", "dimensions": 256})
            ]
        );
        assert_eq!(
            bodies(json!({"input": ["a", "b"]}), "cohere.embed-english-v3"),
            vec![json!({"texts": ["a", "b"], "input_type": "search_document"})]
        );
        assert_eq!(
            bodies(
                json!({"input": "q", "input_type": "search_query"}),
                "us.cohere.embed-v4:0"
            ),
            vec![json!({"texts": ["q"], "input_type": "search_query"})]
        );
    }

    #[test]
    fn refusals() {
        let many: Vec<String> = (0..129).map(|i| i.to_string()).collect();
        assert!(
            refused(json!({"input": many}), "amazon.titan-embed-text-v2:0").contains("at most 128")
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
        // Titan's answers to one call per input come joined in an array.
        let (body, usage) = from_invoke_response(
            &json!([
                {"embedding": [0.1], "inputTextTokenCount": 2},
                {"embedding": [0.2], "inputTextTokenCount": 5}
            ]),
            "titan",
        )
        .unwrap();
        assert_eq!(
            body["data"][1],
            json!({"object": "embedding", "index": 1, "embedding": [0.2]})
        );
        assert_eq!(body["usage"]["prompt_tokens"], 7);
        assert_eq!(usage.map(|u| u.prompt_tokens), Some(7));
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
