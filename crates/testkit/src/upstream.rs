//! A fake upstream that speaks OpenAI's (chat and Responses), Anthropic's, Gemini's, Vertex AI's
//! and Bedrock's APIs. Each request's `model` (for Gemini and Vertex, the model in the URL; for
//! Bedrock, the model id in the path) picks a behaviour: scripted ones (consumed in order) first,
//! then the model's standing behaviour.

use std::collections::{HashMap, VecDeque};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Html;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream;
use serde_json::{json, Value};

mod vertex;
pub use vertex::{ServiceAccountFile, VERTEX_CLIENT_EMAIL, VERTEX_PROJECT};

#[derive(Debug, Clone)]
pub enum Behavior {
    /// Answer normally (stream when asked), reporting usage.
    Answer,
    /// Answer normally but report no usage at all.
    NoUsage,
    /// Wait, then answer.
    Delay(Duration),
    /// Fail with this status and an OpenAI-style error body; `retry-after` in seconds.
    Status(u16, Option<u64>),
    /// Stream two content chunks, then break the connection.
    ResetMidStream,
    /// Stream content chunks slowly forever (until the client goes away).
    Endless,
    /// Answer 400 with OpenAI's context-length error.
    ContextTooLong,
    /// Stream exactly these raw SSE events (each written as given, with its own line ends), then
    /// break the connection when `reset` is set, else end it.
    RawStream { events: Vec<String>, reset: bool },
    /// Answer 200 with exactly this JSON body, whatever the request asked for.
    Json(Value),
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
pub(crate) struct Inner {
    /// The Vertex AI routes' token endpoint state.
    vertex: vertex::TokenState,
    standing: Mutex<HashMap<String, Behavior>>,
    scripts: Mutex<HashMap<String, VecDeque<Behavior>>>,
    seen: Mutex<Vec<Seen>>,
    requests: AtomicUsize,
    streams_dropped_early: AtomicUsize,
}

#[derive(Clone)]
pub struct FakeUpstream {
    pub base_url: String,
    inner: Arc<Inner>,
}

pub const FAKE_TEXT: &str = "Hello from the fake upstream";

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/completions", post(openai_completion))
            .route("/v1/embeddings", post(openai_embeddings))
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(azure_chat),
            )
            .route("/v1/messages", post(anthropic_messages))
            .route("/v1/responses", post(openai_responses))
            .route("/openai/responses", post(azure_responses))
            // The segment is `<model>:<method>`, e.g. `gemini-2.0-flash:generateContent`.
            .route("/v1beta/models/{model_action}", post(gemini))
            .route("/logged-out", get(logged_out))
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model_action}",
                post(vertex::publisher_model),
            )
            .route(
                "/v1/projects/{project}/locations/{location}/endpoints/{model_action}",
                post(vertex::endpoint),
            )
            .route(vertex::TOKEN_PATH, post(vertex::token))
            // Bedrock's runtime: `/model/{modelId}/converse|converse-stream|invoke`.
            .route("/model/{model_id}/{action}", post(crate::bedrock::model))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake upstream");
        let addr = listener.local_addr().expect("fake upstream address");
        inner.vertex.set_base_url(format!("http://{addr}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeUpstream {
            base_url: format!("http://{addr}"),
            inner,
        }
    }

    /// The standing behaviour for a model.
    pub fn set(&self, model: &str, b: Behavior) {
        self.inner
            .standing
            .lock()
            .unwrap()
            .insert(model.to_string(), b);
    }

    /// Behaviours used once each, in order, before the standing one.
    pub fn script(&self, model: &str, bs: Vec<Behavior>) {
        self.inner
            .scripts
            .lock()
            .unwrap()
            .insert(model.to_string(), bs.into());
    }

    pub fn requests(&self) -> usize {
        self.inner.requests.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the fake upstream saw no request")
    }

    /// Streams the gateway stopped reading before their end (upstream cancellation).
    pub fn streams_dropped_early(&self) -> usize {
        self.inner.streams_dropped_early.load(Ordering::SeqCst)
    }
}

/// A plain page to land on after logout (tests use `<base_url>/logged-out` as PROXY_LOGOUT_URL).
async fn logged_out() -> Html<&'static str> {
    Html("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Logged out</title></head><body><h1>Logged out</h1></body></html>")
}

pub(crate) fn behavior(inner: &Inner, model: &str) -> Behavior {
    if let Some(q) = inner.scripts.lock().unwrap().get_mut(model) {
        if let Some(b) = q.pop_front() {
            return b;
        }
    }
    inner
        .standing
        .lock()
        .unwrap()
        .get(model)
        .cloned()
        .unwrap_or(Behavior::Answer)
}

pub(crate) fn note(
    inner: &Inner,
    path: &str,
    query: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Value {
    inner.requests.fetch_add(1, Ordering::SeqCst);
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    inner.seen.lock().unwrap().push(Seen {
        path: path.to_string(),
        query,
        headers: headers.clone(),
        body: v.clone(),
    });
    v
}

fn error_response(status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (
        code,
        axum::Json(json!({"error": {"message": format!("fake upstream error {status}"), "type": "fake", "code": null}})),
    )
        .into_response();
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

fn usage_json() -> Value {
    json!({"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18})
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    )
}

/// Marks a stream dropped before its natural end.
struct DropFlag {
    inner: Arc<Inner>,
    finished: Arc<AtomicBool>,
}
impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::SeqCst) {
            self.inner
                .streams_dropped_early
                .fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn sse(
    events: Vec<Result<String, std::io::Error>>,
    delay: Duration,
    inner: Arc<Inner>,
    endless: Option<fn(&str) -> String>,
    model: String,
) -> Response {
    let finished = Arc::new(AtomicBool::new(false));
    let flag = DropFlag {
        inner,
        finished: finished.clone(),
    };
    let total = events.len();
    let s = stream::unfold(
        (events.into_iter(), 0usize, flag),
        move |(mut it, i, flag)| {
            let finished = finished.clone();
            let model = model.clone();
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if let Some(tick) = endless {
                    let ev = tick(&model);
                    return Some((Ok::<_, std::io::Error>(Bytes::from(ev)), (it, i + 1, flag)));
                }
                match it.next() {
                    Some(Ok(ev)) => {
                        if i + 1 == total {
                            finished.store(true, Ordering::SeqCst);
                        }
                        Some((Ok(Bytes::from(ev)), (it, i + 1, flag)))
                    }
                    Some(Err(e)) => {
                        finished.store(true, Ordering::SeqCst);
                        Some((Err(e), (it, i + 1, flag)))
                    }
                    None => {
                        finished.store(true, Ordering::SeqCst);
                        None
                    }
                }
            }
        },
    );
    let mut r = Response::new(Body::from_stream(s));
    r.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    r
}

fn raw_sse(events: Vec<String>, reset: bool, inner: Arc<Inner>, model: String) -> Response {
    let mut events: Vec<Result<String, std::io::Error>> = events.into_iter().map(Ok).collect();
    if reset {
        events.push(Err(std::io::Error::other("connection reset")));
    }
    sse(events, Duration::from_millis(2), inner, None, model)
}

fn openai_tick(model: &str) -> String {
    chunk(model, json!({"content": "tick "}), None)
}

async fn openai_chat(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    chat(inner, "/v1/chat/completions".into(), None, headers, body).await
}

async fn azure_chat(
    State(inner): State<Arc<Inner>>,
    Path(deployment): Path<String>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat(
        inner,
        format!("/openai/deployments/{deployment}/chat/completions"),
        q,
        headers,
        body,
    )
    .await
}

async fn chat(
    inner: Arc<Inner>,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = note(&inner, &path, query, &headers, &body);
    let model = req["model"].as_str().unwrap_or("").to_string();
    let stream = req["stream"].as_bool().unwrap_or(false);
    let include_usage = req["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let mut report_usage = true;
    match behavior(&inner, &model) {
        Behavior::Answer => {}
        Behavior::NoUsage => report_usage = false,
        Behavior::Delay(d) => tokio::time::sleep(d).await,
        Behavior::Status(s, ra) => return error_response(s, ra),
        Behavior::ContextTooLong => {
            return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": "This model's maximum context length is 8192 tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}}))).into_response()
        }
        Behavior::ResetMidStream => {
            let events = vec![
                Ok(chunk(&model, json!({"role": "assistant", "content": ""}), None)),
                Ok(chunk(&model, json!({"content": "partial "}), None)),
                Err(std::io::Error::other("connection reset")),
            ];
            return sse(events, Duration::from_millis(5), inner, None, model);
        }
        Behavior::Endless => {
            return sse(
                vec![],
                Duration::from_millis(20),
                inner,
                Some(openai_tick),
                model,
            );
        }
        Behavior::RawStream { events, reset } => {
            return raw_sse(events, reset, inner, model);
        }
        Behavior::Json(v) => return axum::Json(v).into_response(),
    }
    if stream {
        let mut events = vec![Ok(chunk(
            &model,
            json!({"role": "assistant", "content": ""}),
            None,
        ))];
        for piece in ["Hello ", "from the ", "fake upstream"] {
            events.push(Ok(chunk(&model, json!({"content": piece}), None)));
        }
        events.push(Ok(chunk(&model, json!({}), Some("stop"))));
        if include_usage && report_usage {
            events.push(Ok(format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage_json()})
            )));
        }
        events.push(Ok("data: [DONE]\n\n".to_string()));
        return sse(events, Duration::ZERO, inner, None, model);
    }
    let mut v = json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": FAKE_TEXT}, "finish_reason": "stop"}],
    });
    if report_usage {
        v["usage"] = usage_json();
    }
    axum::Json(v).into_response()
}

async fn openai_completion(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = note(&inner, "/v1/completions", None, &headers, &body);
    let model = req["model"].as_str().unwrap_or("").to_string();
    if let Behavior::Status(s, ra) = behavior(&inner, &model) {
        return error_response(s, ra);
    }
    axum::Json(json!({"id": "cmpl-fake", "object": "text_completion", "created": 1, "model": model,
        "choices": [{"index": 0, "text": FAKE_TEXT, "logprobs": null, "finish_reason": "stop"}], "usage": usage_json()}))
    .into_response()
}

async fn openai_embeddings(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = note(&inner, "/v1/embeddings", None, &headers, &body);
    let model = req["model"].as_str().unwrap_or("").to_string();
    if let Behavior::Status(s, ra) = behavior(&inner, &model) {
        return error_response(s, ra);
    }
    axum::Json(json!({"object": "list", "model": model,
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
        "usage": {"prompt_tokens": 5, "total_tokens": 5}}))
    .into_response()
}

async fn anthropic_messages(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = note(&inner, "/v1/messages", None, &headers, &body);
    let model = req["model"].as_str().unwrap_or("").to_string();
    let behavior = behavior(&inner, &model);
    anthropic_answer(inner, &req, model, behavior)
}

/// A Messages API answer (streamed when the request asks) for `model`, as `behavior` says.
fn anthropic_answer(inner: Arc<Inner>, req: &Value, model: String, behavior: Behavior) -> Response {
    match behavior {
        Behavior::Status(s, _) => {
            return (
                StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                axum::Json(json!({"type": "error", "error": {"type": "overloaded_error", "message": "fake anthropic error"}})),
            )
                .into_response();
        }
        Behavior::RawStream { events, reset } => {
            return raw_sse(events, reset, inner, model);
        }
        Behavior::Json(v) => return axum::Json(v).into_response(),
        _ => {}
    }
    if req["stream"].as_bool().unwrap_or(false) {
        let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
        let events: Vec<Result<String, std::io::Error>> = vec![
            Ok(ev(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": 11, "output_tokens": 1}}}),
            )),
            Ok(ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            )),
            Ok(ev("ping", json!({"type": "ping"}))),
            Ok(ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello from "}}),
            )),
            Ok(ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Claude"}}),
            )),
            Ok(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            )),
            Ok(ev(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 4}}),
            )),
            Ok(ev("message_stop", json!({"type": "message_stop"}))),
        ];
        return sse(events, Duration::ZERO, inner, None, model);
    }
    axum::Json(
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "Hello from Claude"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 11, "output_tokens": 4}}),
    )
    .into_response()
}

// ---------------------------------------------------------------------------
// OpenAI's Responses API (also Azure's `/openai/responses`)
// ---------------------------------------------------------------------------

/// The one Response id the fake knows, for `previous_response_id`.
pub const FAKE_RESPONSE_ID: &str = "resp_fake_1";

async fn openai_responses(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    responses(inner, "/v1/responses", None, headers, body)
}

async fn azure_responses(
    State(inner): State<Arc<Inner>>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    responses(inner, "/openai/responses", q, headers, body)
}

/// A Response object as OpenAI writes it, echoing the request's settings.
fn response_object(req: &Value, status: &str, output: Value, usage: Value) -> Value {
    let echo = |k: &str, default: Value| req.get(k).cloned().unwrap_or(default);
    json!({
        "id": FAKE_RESPONSE_ID, "object": "response", "created_at": 1_700_000_000,
        "status": status, "error": null, "incomplete_details": null,
        "instructions": echo("instructions", Value::Null),
        "max_output_tokens": echo("max_output_tokens", Value::Null),
        "model": echo("model", Value::Null), "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": echo("previous_response_id", Value::Null),
        "reasoning": {"effort": null, "summary": null}, "store": echo("store", json!(true)),
        "temperature": echo("temperature", json!(1.0)), "text": {"format": {"type": "text"}},
        "tool_choice": echo("tool_choice", json!("auto")), "tools": echo("tools", json!([])),
        "top_p": echo("top_p", json!(1.0)), "truncation": "disabled", "usage": usage,
        "user": null, "metadata": echo("metadata", json!({})),
    })
}

fn responses_usage() -> Value {
    json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 6,
           "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 18})
}

fn responses(
    inner: Arc<Inner>,
    path: &str,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = note(&inner, path, query, &headers, &body);
    let model = req["model"].as_str().unwrap_or("").to_string();
    if let Some(prev) = req["previous_response_id"].as_str() {
        if prev != FAKE_RESPONSE_ID {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"message": format!("Previous response with id '{prev}' not found."),
                    "type": "invalid_request_error", "param": "previous_response_id", "code": "previous_response_not_found"}})),
            )
                .into_response();
        }
    }
    match behavior(&inner, &model) {
        Behavior::Status(s, retry_after) => return error_response(s, retry_after),
        Behavior::RawStream { events, reset } => return raw_sse(events, reset, inner, model),
        Behavior::Json(v) => return axum::Json(v).into_response(),
        _ => {}
    }
    let item_id = "msg_fake_1";
    let message = |status: &str, text: &str| {
        json!({"type": "message", "id": item_id, "status": status, "role": "assistant",
               "content": if text.is_empty() { json!([]) } else {
                   json!([{"type": "output_text", "text": text, "annotations": []}]) }})
    };
    if !req["stream"].as_bool().unwrap_or(false) {
        let done = response_object(
            &req,
            "completed",
            json!([message("completed", FAKE_TEXT)]),
            responses_usage(),
        );
        return axum::Json(done).into_response();
    }
    let (first, second) = FAKE_TEXT.split_at(FAKE_TEXT.len() / 2);
    let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
    let started = response_object(&req, "in_progress", json!([]), Value::Null);
    let events = [
        json!({"type": "response.created", "response": started}),
        json!({"type": "response.in_progress", "response": started}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": message("in_progress", "")}),
        json!({"type": "response.content_part.added", "item_id": item_id, "output_index": 0, "content_index": 0, "part": part("")}),
        json!({"type": "response.output_text.delta", "item_id": item_id, "output_index": 0, "content_index": 0, "delta": first, "logprobs": []}),
        json!({"type": "response.output_text.delta", "item_id": item_id, "output_index": 0, "content_index": 0, "delta": second, "logprobs": []}),
        json!({"type": "response.output_text.done", "item_id": item_id, "output_index": 0, "content_index": 0, "text": FAKE_TEXT, "logprobs": []}),
        json!({"type": "response.content_part.done", "item_id": item_id, "output_index": 0, "content_index": 0, "part": part(FAKE_TEXT)}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": message("completed", FAKE_TEXT)}),
        json!({"type": "response.completed", "response": response_object(&req, "completed", json!([message("completed", FAKE_TEXT)]), responses_usage())}),
    ];
    let events = events
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e["sequence_number"] = json!(i);
            let name = e["type"].as_str().unwrap_or_default().to_string();
            Ok(format!("event: {name}\ndata: {e}\n\n"))
        })
        .collect();
    sse(events, Duration::ZERO, inner, None, model)
}

// ---------------------------------------------------------------------------
// Gemini (Google AI Studio)
// ---------------------------------------------------------------------------

/// Google's canonical status name for an HTTP error code.
fn google_status(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

fn google_error(code: u16, message: &str, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (
        status,
        axum::Json(
            json!({"error": {"code": code, "message": message, "status": google_status(code)}}),
        ),
    )
        .into_response();
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

fn gemini_usage(candidates: u64) -> Value {
    json!({"promptTokenCount": 12, "candidatesTokenCount": candidates, "totalTokenCount": 12 + candidates})
}

/// One streamed GenerateContentResponse; Google ends its SSE events with CRLF pairs.
fn gemini_event(v: Value) -> String {
    format!("data: {v}\r\n\r\n")
}

fn gemini_text_event(model: &str, text: &str) -> String {
    gemini_event(json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
        "usageMetadata": gemini_usage(0),
        "modelVersion": model
    }))
}

fn gemini_tick(model: &str) -> String {
    gemini_text_event(model, "tick ")
}

/// The function call the fake makes when the request offers functions and the conversation
/// doesn't already answer one: the first declared function, with each declared parameter set
/// to a value of its type.
fn gemini_function_call(req: &Value) -> Option<Value> {
    if req["toolConfig"]["functionCallingConfig"]["mode"] == "NONE" {
        return None;
    }
    let answered = req["contents"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|turn| turn["parts"].as_array())
        .is_some_and(|parts| parts.iter().any(|p| p.get("functionResponse").is_some()));
    if answered {
        return None;
    }
    let decl = req["tools"]
        .as_array()?
        .iter()
        .find_map(|t| t["functionDeclarations"].as_array()?.first())?;
    let mut args = serde_json::Map::new();
    if let Some(props) = decl["parameters"]["properties"].as_object() {
        for (name, schema) in props {
            let value = match schema["type"].as_str() {
                Some("string") => json!("Paris"),
                Some("integer") | Some("number") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => Value::Null,
            };
            args.insert(name.clone(), value);
        }
    }
    Some(json!({"functionCall": {"name": decl["name"], "args": args}}))
}

async fn gemini(
    State(inner): State<Arc<Inner>>,
    Path(model_action): Path<String>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1beta/models/{model_action}");
    let req = note(&inner, &path, q.clone(), &headers, &body);
    if headers.get("x-goog-api-key").is_none() {
        return google_error(
            401,
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API.",
            None,
        );
    }
    let Some((model, action)) = model_action.split_once(':') else {
        return google_error(404, "The requested method was not found.", None);
    };
    let model = model.to_string();
    let behavior = behavior(&inner, &model);
    match behavior {
        Behavior::Status(s, ra) => {
            return google_error(s, &format!("fake gemini error {s}"), ra);
        }
        Behavior::Delay(d) => tokio::time::sleep(d).await,
        _ => {}
    }
    match action {
        "generateContent" => gemini_generate(&req, &model, behavior),
        "streamGenerateContent" => {
            if q.as_deref() != Some("alt=sse") {
                // Without alt=sse Google streams a JSON array, which the gateway must not ask for.
                return google_error(400, "the fake Gemini streams with alt=sse only", None);
            }
            gemini_stream(&req, model, behavior, inner)
        }
        "batchEmbedContents" => gemini_embed(&req),
        _ => google_error(404, "The requested method was not found.", None),
    }
}

fn gemini_context_error() -> Response {
    google_error(
        400,
        "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576).",
        None,
    )
}

fn gemini_generate(req: &Value, model: &str, behavior: Behavior) -> Response {
    if let Behavior::ContextTooLong = behavior {
        return gemini_context_error();
    }
    let parts = match gemini_function_call(req) {
        Some(call) => vec![call],
        None => vec![json!({"text": FAKE_TEXT})],
    };
    let n = req["generationConfig"]["candidateCount"]
        .as_u64()
        .unwrap_or(1);
    let candidates: Vec<Value> = (0..n)
        .map(|i| {
            json!({"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": i})
        })
        .collect();
    let mut v =
        json!({"candidates": candidates, "modelVersion": model, "responseId": "fake-gemini"});
    if !matches!(behavior, Behavior::NoUsage) {
        v["usageMetadata"] = gemini_usage(6);
    }
    axum::Json(v).into_response()
}

fn gemini_stream(req: &Value, model: String, behavior: Behavior, inner: Arc<Inner>) -> Response {
    match behavior {
        Behavior::ContextTooLong => return gemini_context_error(),
        Behavior::ResetMidStream => {
            let events = vec![
                Ok(gemini_text_event(&model, "partial ")),
                Ok(gemini_text_event(&model, "answer ")),
                Err(std::io::Error::other("connection reset")),
            ];
            return sse(events, Duration::from_millis(5), inner, None, model);
        }
        Behavior::Endless => {
            return sse(
                vec![],
                Duration::from_millis(20),
                inner,
                Some(gemini_tick),
                model,
            );
        }
        Behavior::RawStream { events, reset } => return raw_sse(events, reset, inner, model),
        _ => {}
    }
    let mut last =
        json!({"content": {"role": "model", "parts": []}, "finishReason": "STOP", "index": 0});
    let mut events = Vec::new();
    match gemini_function_call(req) {
        Some(call) => last["content"]["parts"] = json!([call]),
        None => {
            for piece in ["Hello ", "from the "] {
                events.push(Ok(gemini_text_event(&model, piece)));
            }
            last["content"]["parts"] = json!([{"text": "fake upstream"}]);
        }
    }
    let mut end = json!({"candidates": [last], "modelVersion": model});
    if !matches!(behavior, Behavior::NoUsage) {
        end["usageMetadata"] = gemini_usage(6);
    }
    events.push(Ok(gemini_event(end)));
    sse(events, Duration::ZERO, inner, None, model)
}

fn gemini_embed(req: &Value) -> Response {
    let Some(requests) = req["requests"].as_array() else {
        return google_error(400, "requests is required", None);
    };
    let embeddings: Vec<Value> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let dims = r["outputDimensionality"].as_u64().unwrap_or(3) as usize;
            let values: Vec<f64> = (0..dims).map(|d| (i * 10 + d + 1) as f64 / 10.0).collect();
            json!({"values": values})
        })
        .collect();
    axum::Json(json!({"embeddings": embeddings})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(up: &FakeUpstream, path: &str, key: Option<&str>, body: Value) -> (u16, String) {
        let mut rb = reqwest::Client::new()
            .post(format!("{}{path}", up.base_url))
            .json(&body);
        if let Some(k) = key {
            rb = rb.header("x-goog-api-key", k);
        }
        let r = rb.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    fn hello() -> Value {
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    }

    #[tokio::test]
    async fn fake_gemini_answers_streams_embeds_and_fails() {
        let up = FakeUpstream::start().await;
        let generate = "/v1beta/models/gemini-2.0-flash:generateContent";

        let (status, body) = post(&up, generate, None, hello()).await;
        assert_eq!(status, 401);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["error"]["status"],
            "UNAUTHENTICATED"
        );

        let (status, body) = post(&up, generate, Some("k"), hello()).await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], FAKE_TEXT);
        assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 6);
        let seen = up.last();
        assert_eq!(seen.path, generate);
        assert_eq!(seen.headers["x-goog-api-key"], "k");
        assert_eq!(seen.body, hello());

        let mut with_tools = hello();
        with_tools["tools"] = json!([{"functionDeclarations": [{"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}]);
        let (_, body) = post(&up, generate, Some("k"), with_tools).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0],
            json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}})
        );

        let (status, body) = post(
            &up,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
            Some("k"),
            hello(),
        )
        .await;
        assert_eq!(status, 200);
        let events: Vec<Value> = body
            .split("\r\n\r\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(events.len(), 3);
        let text: String = events
            .iter()
            .map(|e| {
                e["candidates"][0]["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(text, FAKE_TEXT);
        assert_eq!(events[2]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(events[2]["usageMetadata"]["totalTokenCount"], 18);

        let (status, body) = post(
            &up,
            "/v1beta/models/text-embedding-004:batchEmbedContents",
            Some("k"),
            json!({"requests": [
                {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
                {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 2}
            ]}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"embeddings": [{"values": [0.1, 0.2, 0.3]}, {"values": [1.1, 1.2]}]})
        );

        up.set("gemini-2.0-flash", Behavior::Status(429, Some(3)));
        let r = reqwest::Client::new()
            .post(format!("{}{generate}", up.base_url))
            .header("x-goog-api-key", "k")
            .json(&hello())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(r.headers()["retry-after"], "3");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(up.requests(), 6);
    }
}
