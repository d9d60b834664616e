//! A fake upstream that speaks OpenAI's and Anthropic's APIs. Each request's `model` picks a
//! behaviour: scripted ones (consumed in order) first, then the model's standing behaviour.

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
struct Inner {
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
            .route("/logged-out", get(logged_out))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake upstream");
        let addr = listener.local_addr().expect("fake upstream address");
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

fn behavior(inner: &Inner, model: &str) -> Behavior {
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

fn note(
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
    endless: bool,
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
                if endless {
                    let ev = chunk(&model, json!({"content": "tick "}), None);
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
    sse(events, Duration::from_millis(2), inner, false, model)
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
            return sse(events, Duration::from_millis(5), inner, false, model);
        }
        Behavior::Endless => {
            return sse(vec![], Duration::from_millis(20), inner, true, model);
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
        return sse(events, Duration::ZERO, inner, false, model);
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
    match behavior(&inner, &model) {
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
        return sse(events, Duration::ZERO, inner, false, model);
    }
    axum::Json(
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "Hello from Claude"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 11, "output_tokens": 4}}),
    )
    .into_response()
}
