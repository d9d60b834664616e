//! Streaming answers: upstream SSE events pass to the client as they arrive, while a tee reads
//! usage from them. Only complete events are forwarded (a partial line waits for its end), the
//! usage-only chunk Tollgate asked for is dropped when the client did not ask for it, and an
//! upstream failure mid-stream ends the stream with an explicit error event.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::time::Sleep;

use crate::error::ApiError;
use crate::providers::anthropic::StreamTranslator;
use crate::providers::openai;
use crate::record::CallRecorder;
use crate::upstream::{BoxError, UpstreamResponse};
use tollgate_domain::Usage;

/// Longest single SSE event accepted from an upstream; past it the stream is failed instead of
/// buffering without bound.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

pub enum Translation {
    /// OpenAI-style events pass through; `drop_usage_chunk` when the client didn't ask for usage.
    OpenAi { drop_usage_chunk: bool },
    /// Anthropic events are translated to OpenAI chunks.
    Anthropic(Box<StreamTranslator>),
}

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>;

pub struct ProxyStream {
    upstream: Upstream,
    translation: Translation,
    buf: BytesMut,
    recorder: Option<CallRecorder>,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    saw_done: bool,
    finished: bool,
    upstream_error: Option<ApiError>,
    /// The deployment's provider key: an upstream may quote it in an in-band error event.
    secret: Option<String>,
}

impl ProxyStream {
    pub fn new(
        resp: UpstreamResponse,
        translation: Translation,
        recorder: CallRecorder,
        idle: Duration,
    ) -> Self {
        ProxyStream {
            upstream: Box::pin(http_body_util::BodyDataStream::new(resp.into_body())),
            translation,
            buf: BytesMut::new(),
            recorder: Some(recorder),
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            saw_done: false,
            finished: false,
            upstream_error: None,
            secret: None,
        }
    }

    /// Replaces `secret` (the provider key) wherever an upstream event quotes it.
    pub fn scrubbing(mut self, secret: Option<String>) -> Self {
        // As for upstream error bodies: a very short "key" would redact ordinary text.
        self.secret = secret.filter(|k| k.len() >= 8);
        self
    }

    fn recorder(&mut self) -> Option<&mut CallRecorder> {
        self.recorder.as_mut()
    }

    /// Takes every complete event from the buffer; returns the bytes to send now.
    fn drain_events(&mut self) -> Result<BytesMut, ApiError> {
        let mut out = BytesMut::new();
        while let Some((end, sep)) = find_event_end(&self.buf) {
            let event = self.buf.split_to(end + sep).freeze();
            let text = std::str::from_utf8(&event[..end]).map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::BAD_GATEWAY,
                    "api_error",
                    "The upstream sent a stream event that is not valid UTF-8.",
                )
            })?;
            if let Some(k) = self.secret.as_deref().filter(|k| text.contains(k)) {
                let clean_text = text.replace(k, "[redacted]");
                let mut clean = BytesMut::from(clean_text.as_bytes());
                clean.extend_from_slice(&event[end..]);
                self.on_event(&clean_text, &clean.freeze(), &mut out)?;
            } else {
                self.on_event(text, &event, &mut out)?;
            }
        }
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "api_error",
                "The upstream sent a stream event larger than the gateway accepts.",
            ));
        }
        Ok(out)
    }

    fn on_event(&mut self, text: &str, raw: &Bytes, out: &mut BytesMut) -> Result<(), ApiError> {
        let (name, data) = parse_event(text);
        match &mut self.translation {
            Translation::OpenAi { drop_usage_chunk } => {
                let drop_usage_chunk = *drop_usage_chunk;
                let Some(data) = data else {
                    // Comments and keep-alives pass through.
                    out.extend_from_slice(raw);
                    return Ok(());
                };
                if data.trim() == "[DONE]" {
                    self.saw_done = true;
                    out.extend_from_slice(raw);
                    return Ok(());
                }
                let content = content_bytes(&data);
                let mut keep = true;
                if data.contains("\"usage\"") {
                    if let Some(u) = openai::usage_of(data.as_bytes()) {
                        if let Some(r) = self.recorder() {
                            r.set_usage(u);
                        }
                        if drop_usage_chunk && is_usage_only(&data) {
                            keep = false;
                        }
                    }
                }
                if data.starts_with("{\"error\"") || data.contains("\"error\":{") {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&data) {
                        if let Some(e) = v.get("error").filter(|e| e.is_object()) {
                            // An in-band upstream error: the client sees it as is; the call is a failure.
                            let message = e
                                .get("message")
                                .and_then(|m| m.as_str())
                                .unwrap_or("upstream error");
                            let code = e
                                .get("code")
                                .and_then(|c| {
                                    c.as_u64()
                                        .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
                                })
                                .and_then(|c| u16::try_from(c).ok())
                                .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                                .filter(|c| c.is_client_error() || c.is_server_error())
                                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
                            self.upstream_error =
                                Some(ApiError::new(code, "api_error", message.to_string()));
                        }
                    }
                }
                if content > 0 {
                    if let Some(r) = self.recorder() {
                        r.mark_first_token();
                        r.add_completion_bytes(content);
                    }
                }
                if keep {
                    out.extend_from_slice(raw);
                }
                Ok(())
            }
            Translation::Anthropic(t) => {
                let Some(data) = data else {
                    return Ok(());
                };
                let chunks = t.on_event(name, &data).map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        "api_error",
                        format!("AnthropicException - {e}"),
                    )
                })?;
                let usage = t.usage();
                let finished = t.finished();
                let is_content = matches!(
                    name,
                    Some("content_block_delta") | Some("content_block_start")
                );
                for c in &chunks {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(c.as_bytes());
                    out.extend_from_slice(b"\n\n");
                }
                if let Some(r) = self.recorder() {
                    if is_content && !chunks.is_empty() {
                        r.mark_first_token();
                        r.add_completion_bytes(chunks.iter().map(|c| content_bytes(c)).sum());
                    }
                    r.set_usage(Usage {
                        prompt_tokens: usage.prompt_tokens,
                        completion_tokens: usage.completion_tokens,
                        cache_read_input_tokens: usage.cache_read_input_tokens,
                        cache_creation_input_tokens: usage.cache_creation_input_tokens,
                        estimated: false,
                    });
                }
                if finished && !self.saw_done {
                    self.saw_done = true;
                    out.extend_from_slice(b"data: [DONE]\n\n");
                }
                Ok(())
            }
        }
    }

    /// Ends the stream as failed: the client gets an error event, the record says failure.
    fn fail(&mut self, err: ApiError) -> Bytes {
        self.finished = true;
        let event = format!("data: {}\n\n", err.body_json());
        if let Some(r) = self.recorder.take() {
            r.finish_error(&err);
        }
        Bytes::from(event)
    }

    fn succeed(&mut self) {
        self.finished = true;
        if let Some(r) = self.recorder.take() {
            match self.upstream_error.take() {
                Some(e) => r.finish_error(&e),
                None => r.finish_success(200),
            }
        }
    }
}

impl Stream for ProxyStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let idle = this.idle;
                    this.timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + idle);
                    this.buf.extend_from_slice(&chunk);
                    match this.drain_events() {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(out.freeze()))),
                        Err(e) => return Poll::Ready(Some(Ok(this.fail(e)))),
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    let e = ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        "api_error",
                        "The upstream connection failed in the middle of the stream; the answer is incomplete.",
                    );
                    return Poll::Ready(Some(Ok(this.fail(e))));
                }
                Poll::Ready(None) => {
                    // A last event without its blank line still counts.
                    if !this.buf.is_empty() {
                        this.buf.extend_from_slice(b"\n\n");
                        match this.drain_events() {
                            Ok(out) if !out.is_empty() && this.saw_done => {
                                this.succeed();
                                return Poll::Ready(Some(Ok(out.freeze())));
                            }
                            Ok(_) => {}
                            Err(e) => return Poll::Ready(Some(Ok(this.fail(e)))),
                        }
                    }
                    if this.saw_done {
                        this.succeed();
                        return Poll::Ready(None);
                    }
                    let e = ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        "api_error",
                        "The upstream closed the stream before it was complete; the answer is incomplete.",
                    );
                    return Poll::Ready(Some(Ok(this.fail(e))));
                }
                Poll::Pending => {
                    if this.timer.as_mut().poll(cx).is_ready() {
                        let e = ApiError::new(
                            axum::http::StatusCode::REQUEST_TIMEOUT,
                            "timeout",
                            format!(
                                "The upstream sent nothing for {:.0}s in the middle of the stream; the answer is incomplete.",
                                this.idle.as_secs_f64()
                            ),
                        );
                        return Poll::Ready(Some(Ok(this.fail(e))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Index of the end of the first complete event and the separator's length.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if buf[i + 1] == b'\r' && i + 2 < buf.len() && buf[i + 2] == b'\n' {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

/// The event name and the data (several `data:` lines joined by newlines).
fn parse_event(text: &str) -> (Option<&str>, Option<String>) {
    let mut name = None;
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(v) = line.strip_prefix("event:") {
            name = Some(v.trim());
        } else if let Some(v) = line.strip_prefix("data:") {
            let v = v.strip_prefix(' ').unwrap_or(v);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(v);
                }
                None => data = Some(v.to_string()),
            }
        }
    }
    (name, data)
}

/// A usage-only chunk: no choices, only usage (what `include_usage` adds at the end).
fn is_usage_only(data: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        choices: Option<Vec<serde::de::IgnoredAny>>,
    }
    serde_json::from_str::<Probe>(data)
        .map(|p| p.choices.is_none_or(|c| c.is_empty()))
        .unwrap_or(false)
}

/// Rough size of generated text in a chunk: the bytes of its `content` strings (and tool-call
/// arguments), for token estimates and time-to-first-token.
fn content_bytes(data: &str) -> usize {
    let mut total = 0;
    for key in ["\"content\":\"", "\"arguments\":\"", "\"text\":\""] {
        let mut rest = data;
        while let Some(pos) = rest.find(key) {
            let s = &rest[pos + key.len()..];
            let mut len = 0;
            let mut escaped = false;
            for b in s.bytes() {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    break;
                }
                len += 1;
            }
            total += len;
            rest = &s[len.min(s.len())..];
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_event_boundaries() {
        assert_eq!(find_event_end(b"data: x\n\ndata: y"), Some((7, 2)));
        assert_eq!(find_event_end(b"data: x\r\n\r\n"), Some((8, 3)));
        assert_eq!(find_event_end(b"data: x\n"), None);
    }

    #[test]
    fn parses_events() {
        let (n, d) = parse_event("event: message_start\ndata: {\"a\":1}");
        assert_eq!(n, Some("message_start"));
        assert_eq!(d.as_deref(), Some("{\"a\":1}"));
        let (_, d) = parse_event("data: a\ndata: b");
        assert_eq!(d.as_deref(), Some("a\nb"));
        let (_, d) = parse_event(": keep-alive");
        assert_eq!(d, None);
    }

    #[test]
    fn detects_usage_only_chunks() {
        assert!(is_usage_only(
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":1}}"#
        ));
        assert!(!is_usage_only(
            r#"{"id":"x","choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}"#
        ));
    }

    #[test]
    fn counts_content_bytes() {
        assert_eq!(
            content_bytes(r#"{"choices":[{"delta":{"content":"he\"llo"}}]}"#),
            7
        );
        assert_eq!(
            content_bytes(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#),
            0
        );
    }
}
