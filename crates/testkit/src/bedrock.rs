//! The fake upstream's AWS Bedrock runtime: `POST /model/{modelId}/converse`, `/converse-stream`
//! and `/invoke` (Titan and Cohere embeddings).
//!
//! Every request's SigV4 `Authorization` header is checked by computing the signature here,
//! with hmac and sha2 (not with the signer the gateway uses), for the key pair
//! [`FAKE_AWS_ACCESS_KEY_ID`] / [`FAKE_AWS_SECRET_ACCESS_KEY`]; a wrong one is answered 403 as
//! Bedrock answers it. Streams are real binary event-stream frames.
//!
//! The model id in the path picks the behaviour, as for the other fakes. For streams,
//! `Behavior::RawStream` events are frames written as `"<event-type> <json payload>"`; an event
//! type starting with `!` is sent as an exception frame (`"!throttlingException {…}"`).

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::upstream::{behavior, note, Behavior, Inner, FAKE_TEXT};

/// The only key pair the fake Bedrock accepts.
pub const FAKE_AWS_ACCESS_KEY_ID: &str = "AKIAFAKEBEDROCK00001";
pub const FAKE_AWS_SECRET_ACCESS_KEY: &str = "fAkE/sEcReT+kEy0123456789abcdefghijklmno";

const BAD_SIGNATURE: &str = "The request signature we calculated does not match the signature \
    you provided. Check your AWS Secret Access Key and signing method. Consult the service \
    documentation for details.";

/// The exception name Bedrock gives an HTTP status.
fn exception_for(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

/// An error as Bedrock answers it: the exception in `x-amzn-ErrorType`, `{"message"}` in the body.
fn bedrock_error(
    status: u16,
    exception: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (code, axum::Json(json!({"message": message}))).into_response();
    r.headers_mut().insert(
        "x-amzn-errortype",
        format!("{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/")
            .parse()
            .unwrap(),
    );
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The path as SigV4 canonicalises it for every service but S3: each byte of the path as sent
/// (already percent-encoded once) is encoded again unless unreserved or `/`.
fn canonical_uri(raw_path: &str) -> String {
    let mut out = String::new();
    for b in raw_path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks the request's SigV4 signature; Err is the answer to send instead.
fn verify_signature(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(), Box<Response>> {
    let denied = |exception: &str, message: &str| {
        Err(Box::new(bedrock_error(403, exception, message, None)))
    };
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return denied(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    };
    let Some(fields) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return denied(
            "IncompleteSignatureException",
            "Unsupported signing algorithm",
        );
    };
    let mut credential = "";
    let mut signed_headers = "";
    let mut signature = "";
    for part in fields.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = v;
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = v;
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = v;
        }
    }
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return denied("IncompleteSignatureException", "Malformed credential scope");
    };
    if *key_id != FAKE_AWS_ACCESS_KEY_ID {
        return denied(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    }
    if *service != "bedrock" {
        return denied("InvalidSignatureException", BAD_SIGNATURE);
    }
    let Some(amz_date) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else {
        return denied("IncompleteSignatureException", "x-amz-date is missing");
    };
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let canonical_request = format!(
        "POST\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        canonical_uri(uri.path()),
        uri.query().unwrap_or(""),
        hex(&Sha256::digest(body)),
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{FAKE_AWS_SECRET_ACCESS_KEY}").as_bytes(), date);
    for part in [*region, *service, "aws4_request"] {
        key = hmac(&key, part);
    }
    if hex(&hmac(&key, &string_to_sign)) != signature {
        return denied("InvalidSignatureException", BAD_SIGNATURE);
    }
    Ok(())
}

/// `POST /model/{modelId}/{action}`.
pub(crate) async fn model(
    State(inner): State<Arc<Inner>>,
    Path((model, action)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = note(
        &inner,
        uri.path(),
        uri.query().map(str::to_owned),
        &headers,
        &body,
    );
    if let Err(denied) = verify_signature(&uri, &headers, &body) {
        return *denied;
    }
    let behavior = behavior(&inner, &model);
    match &behavior {
        Behavior::Status(s, ra) => {
            return bedrock_error(
                *s,
                exception_for(*s),
                &format!("fake bedrock error {s}"),
                *ra,
            )
        }
        Behavior::ContextTooLong => {
            return bedrock_error(
                400,
                "ValidationException",
                "Input is too long for requested model.",
                None,
            )
        }
        Behavior::Delay(d) => tokio::time::sleep(*d).await,
        Behavior::Json(v) if action != "converse-stream" => {
            return axum::Json(v.clone()).into_response()
        }
        _ => {}
    }
    match action.as_str() {
        "converse" => converse(&req, &behavior),
        "converse-stream" => converse_stream(&req, behavior),
        "invoke" => invoke(&req, &model),
        _ => bedrock_error(404, "UnknownOperationException", "Unknown operation", None),
    }
}

/// The tool the fake calls: the forced one, else the first offered, unless the conversation's
/// last turn already answers a call. Its input sets each declared property to a value of its
/// type.
fn tool_use(req: &Value) -> Option<(String, Value)> {
    let answered = req["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|turn| turn["content"].as_array())
        .is_some_and(|blocks| blocks.iter().any(|b| b.get("toolResult").is_some()));
    if answered {
        return None;
    }
    let tools = req["toolConfig"]["tools"].as_array()?;
    let forced = req["toolConfig"]["toolChoice"]["tool"]["name"].as_str();
    let spec = tools
        .iter()
        .map(|t| &t["toolSpec"])
        .find(|s| forced.is_none_or(|f| s["name"] == f))?;
    let mut input = serde_json::Map::new();
    if let Some(props) = spec["inputSchema"]["json"]["properties"].as_object() {
        for (name, schema) in props {
            let value = match schema["type"].as_str() {
                Some("string") => json!("Paris"),
                Some("integer") | Some("number") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => Value::Null,
            };
            input.insert(name.clone(), value);
        }
    }
    Some((spec["name"].as_str()?.to_string(), Value::Object(input)))
}

fn usage() -> Value {
    json!({"inputTokens": 12, "outputTokens": 6, "totalTokens": 18})
}

fn converse(req: &Value, behavior: &Behavior) -> Response {
    let (content, stop) = match tool_use(req) {
        Some((name, input)) => (
            json!([{"toolUse": {"toolUseId": "tooluse_fake1", "name": name, "input": input}}]),
            "tool_use",
        ),
        None => (json!([{"text": FAKE_TEXT}]), "end_turn"),
    };
    let mut v = json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "metrics": {"latencyMs": 10}
    });
    if !matches!(behavior, Behavior::NoUsage) {
        v["usage"] = usage();
    }
    axum::Json(v).into_response()
}

/// One event-stream frame.
fn frame(
    message_type: &'static str,
    type_header: &'static str,
    name: &str,
    payload: &Value,
) -> Bytes {
    let message = Message::new_from_parts(
        vec![
            Header::new(":message-type", HeaderValue::String(message_type.into())),
            Header::new(type_header, HeaderValue::String(name.to_string().into())),
            Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
        ],
        payload.to_string(),
    );
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    Bytes::from(out)
}

/// An event frame (`messageStart`, `contentBlockDelta`, …).
pub fn event_frame(name: &str, payload: &Value) -> Bytes {
    frame("event", ":event-type", name, payload)
}

/// An exception frame (`throttlingException`, `modelStreamErrorException`, …).
pub fn exception_frame(name: &str, payload: &Value) -> Bytes {
    frame("exception", ":exception-type", name, payload)
}

fn delta(text: &str) -> Bytes {
    event_frame(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": text}, "p": "abcd"}),
    )
}

fn stream_response(frames: Vec<Result<Bytes, std::io::Error>>, delay: Duration) -> Response {
    let s = stream::unfold(frames.into_iter(), move |mut it| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        it.next().map(|f| (f, it))
    });
    let mut r = Response::new(Body::from_stream(s));
    r.headers_mut().insert(
        "content-type",
        "application/vnd.amazon.eventstream".parse().unwrap(),
    );
    r
}

fn converse_stream(req: &Value, behavior: Behavior) -> Response {
    let start = event_frame("messageStart", &json!({"role": "assistant"}));
    match behavior {
        Behavior::ResetMidStream => {
            return stream_response(
                vec![
                    Ok(start),
                    Ok(delta("partial ")),
                    Ok(delta("answer ")),
                    Err(std::io::Error::other("connection reset")),
                ],
                Duration::from_millis(5),
            )
        }
        Behavior::RawStream { events, reset } => {
            let mut frames: Vec<Result<Bytes, std::io::Error>> = events
                .iter()
                .map(|e| {
                    let (name, payload) = e.split_once(' ').unwrap_or((e.as_str(), "{}"));
                    let payload: Value = serde_json::from_str(payload).unwrap();
                    Ok(match name.strip_prefix('!') {
                        Some(exception) => exception_frame(exception, &payload),
                        None => event_frame(name, &payload),
                    })
                })
                .collect();
            if reset {
                frames.push(Err(std::io::Error::other("connection reset")));
            }
            return stream_response(frames, Duration::from_millis(2));
        }
        Behavior::Endless => {
            let ticks = stream::unfold(0u64, |i| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let f = if i == 0 {
                    event_frame("messageStart", &json!({"role": "assistant"}))
                } else {
                    delta("tick ")
                };
                Some((Ok::<_, std::io::Error>(f), i + 1))
            });
            let mut r = Response::new(Body::from_stream(ticks));
            r.headers_mut().insert(
                "content-type",
                "application/vnd.amazon.eventstream".parse().unwrap(),
            );
            return r;
        }
        _ => {}
    }
    let mut frames = vec![start];
    let stop = match tool_use(req) {
        Some((name, input)) => {
            frames.push(event_frame(
                "contentBlockStart",
                &json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_fake1", "name": name}}}),
            ));
            // The input arrives as JSON text cut in two, as Bedrock streams it.
            let text = input.to_string();
            let (a, b) = text.split_at(text.len() / 2);
            for piece in [a, b] {
                frames.push(event_frame(
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}}),
                ));
            }
            "tool_use"
        }
        None => {
            for piece in ["Hello ", "from the ", "fake upstream"] {
                frames.push(delta(piece));
            }
            "end_turn"
        }
    };
    frames.push(event_frame(
        "contentBlockStop",
        &json!({"contentBlockIndex": 0}),
    ));
    frames.push(event_frame("messageStop", &json!({"stopReason": stop})));
    let mut metadata = json!({"metrics": {"latencyMs": 10}});
    if !matches!(behavior, Behavior::NoUsage) {
        metadata["usage"] = usage();
    }
    frames.push(event_frame("metadata", &metadata));
    stream_response(frames.into_iter().map(Ok).collect(), Duration::ZERO)
}

/// A small embedding whose values depend on the text's position and length.
fn vector(i: usize, text: &str) -> Vec<f64> {
    (0..3)
        .map(|d| ((i * 10 + d + 1) as f64 + text.len() as f64 / 100.0) / 10.0)
        .collect()
}

fn invoke(req: &Value, model: &str) -> Response {
    if model.contains("amazon.titan-embed") {
        let Some(text) = req["inputText"].as_str() else {
            return bedrock_error(400, "ValidationException", "inputText is required", None);
        };
        let tokens = text.split_whitespace().count().max(1);
        return axum::Json(json!({"embedding": vector(0, text), "inputTextTokenCount": tokens}))
            .into_response();
    }
    if model.contains("cohere.embed") {
        let Some(texts) = req["texts"].as_array() else {
            return bedrock_error(400, "ValidationException", "texts is required", None);
        };
        if req["input_type"].as_str().is_none() {
            return bedrock_error(400, "ValidationException", "input_type is required", None);
        }
        let embeddings: Vec<Vec<f64>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| vector(i, t.as_str().unwrap_or("")))
            .collect();
        return axum::Json(json!({"id": "fake-cohere", "embeddings": embeddings,
            "response_type": "embeddings_floats", "texts": texts}))
        .into_response();
    }
    bedrock_error(
        400,
        "ValidationException",
        "The fake Bedrock invokes embedding models only",
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uri_encodes_the_encoded_path_again() {
        assert_eq!(
            canonical_uri("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse"
        );
    }

    #[tokio::test]
    async fn unsigned_and_badly_signed_requests_are_refused() {
        let up = crate::FakeUpstream::start().await;
        let url = format!("{}/model/amazon.titan-embed-text-v1/invoke", up.base_url);
        let client = reqwest::Client::new();
        let r = client
            .post(&url)
            .json(&json!({"inputText": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        assert!(r.headers()["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("MissingAuthenticationTokenException:"));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={FAKE_AWS_ACCESS_KEY_ID}/20250101/us-east-1/bedrock/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature={}",
            "0".repeat(64)
        );
        let r = client
            .post(&url)
            .header("authorization", auth)
            .header("x-amz-date", "20250101T000000Z")
            .json(&json!({"inputText": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["message"], BAD_SIGNATURE);
        assert_eq!(up.requests(), 2);
    }

    /// AWS's published SigV4 example (IAM ListUsers, GET) gives this signing key and signature;
    /// the same HMAC chain must come out of `hmac`.
    #[test]
    fn signing_key_chain_matches_aws_example() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let mut key = hmac(format!("AWS4{secret}").as_bytes(), "20150830");
        for part in ["us-east-1", "iam", "aws4_request"] {
            key = hmac(&key, part);
        }
        assert_eq!(
            hex(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let string_to_sign = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59";
        assert_eq!(
            hex(&hmac(&key, string_to_sign)),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }
}
