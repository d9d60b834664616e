//! Streaming answers: upstream SSE events pass to the client as they arrive (translated to
//! OpenAI chunks when the provider speaks another API), while a tee reads usage from them. Only complete events are forwarded (a partial line waits for its end), the
//! usage-only chunk Tollgate asked for is dropped when the client did not ask for it, and an
//! upstream failure mid-stream ends the stream with an explicit error event. Providers that
//! stream in AWS's binary event-stream framing have each frame decoded and translated instead.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::time::Sleep;

use crate::error::ApiError;
use crate::providers::openai::stream as openai_stream;
use crate::providers::{StreamFraming, Translation};
use crate::record::CallRecorder;
use crate::upstream::{BoxError, UpstreamResponse};

/// Longest single SSE event accepted from an upstream; past it the stream is failed instead of
/// buffering without bound.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>;

pub struct ProxyStream {
    upstream: Upstream,
    translation: Translation,
    buf: BytesMut,
    recorder: Option<CallRecorder>,
    idle: Duration,
    /// Fires no earlier than `idle` after the last upstream data. It is moved only when it fires
    /// (to `last_data + idle`), not on every chunk: resetting a timer per chunk costs a trip
    /// through the timer wheel, reading the clock does not.
    timer: Pin<Box<Sleep>>,
    /// The waker the timer was last polled with. A polled timer keeps that waker until it fires,
    /// so while the task's waker is the same and the timer has not fired, a `Pending` upstream
    /// needs no trip into the timer (a stream of small events meets one per event).
    timer_waker: Option<Waker>,
    last_data: tokio::time::Instant,
    saw_done: bool,
    finished: bool,
    upstream_error: Option<ApiError>,
    /// The deployment's provider key, which an upstream may quote in an in-band error event,
    /// and a searcher for it (every event is searched).
    secret: Option<(String, memchr::memmem::Finder<'static>)>,
    /// Set when the upstream streams binary event-stream frames instead of SSE.
    frames: Option<MessageFrameDecoder>,
    /// Reads passed-through OpenAI-style events.
    chunks: openai_stream::ChunkReader,
}

impl ProxyStream {
    pub fn new(
        resp: UpstreamResponse,
        translation: Translation,
        recorder: CallRecorder,
        idle: Duration,
    ) -> Self {
        let upstream = Box::pin(http_body_util::BodyDataStream::new(resp.into_body()));
        ProxyStream::over(upstream, translation, Some(recorder), idle)
    }

    /// A stream over any upstream body (the tests' bodies are made up, and record nothing).
    fn over(
        upstream: Upstream,
        translation: Translation,
        recorder: Option<CallRecorder>,
        idle: Duration,
    ) -> Self {
        ProxyStream {
            upstream,
            translation,
            buf: BytesMut::new(),
            recorder,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            timer_waker: None,
            last_data: tokio::time::Instant::now(),
            saw_done: false,
            finished: false,
            upstream_error: None,
            secret: None,
            frames: None,
            chunks: openai_stream::ChunkReader::default(),
        }
    }

    /// Reads the upstream body in `framing` (SSE unless told otherwise).
    pub fn framing(mut self, framing: StreamFraming) -> Self {
        self.frames = match framing {
            StreamFraming::Sse => None,
            StreamFraming::AwsEventStream => Some(MessageFrameDecoder::new()),
        };
        self
    }

    /// Replaces `secret` (the provider key) wherever an upstream event quotes it.
    pub fn scrubbing(mut self, secret: Option<String>) -> Self {
        // As for upstream error bodies: a very short "key" would redact ordinary text.
        self.secret = secret.filter(|k| k.len() >= 8).map(|k| {
            let finder = memchr::memmem::Finder::new(&k).into_owned();
            (k, finder)
        });
        self
    }

    /// `text` with the provider key replaced, when it quotes it.
    fn redacted(&self, text: &[u8]) -> Result<Option<String>, ApiError> {
        let Some((key, _)) = self
            .secret
            .as_ref()
            .filter(|(_, finder)| finder.find(text).is_some())
        else {
            return Ok(None);
        };
        Ok(Some(utf8(text)?.replace(key.as_str(), "[redacted]")))
    }

    fn recorder(&mut self) -> Option<&mut CallRecorder> {
        self.recorder.as_mut()
    }

    /// Takes every complete event or frame that `chunk` completes.
    fn drain(&mut self, chunk: Bytes) -> Drained {
        let mut out = BytesMut::new();
        let read = if self.frames.is_some() {
            self.buf.extend_from_slice(&chunk);
            self.drain_frames(&mut out)
        } else if self.buf.is_empty() && !matches!(self.translation, Translation::Translate { .. })
        {
            // A translator writes new chunks, so only events forwarded as they came can be sent
            // as a slice of the upstream's own bytes.
            return self.drain_chunk(chunk);
        } else {
            self.buf.extend_from_slice(&chunk);
            self.drain_events(&mut out)
        };
        Drained {
            out: out.freeze(),
            failed: read.err(),
        }
    }

    /// Takes every complete event-stream frame from the buffer (the decoder keeps a frame's
    /// prelude between calls), writing what to send now to `out`.
    fn drain_frames(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        while let Some(decoder) = self.frames.as_mut() {
            let message = match decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(m)) => m,
                Ok(DecodedFrame::Incomplete) => break,
                Err(_) => {
                    return Err(bad_stream(
                        "The upstream sent an event-stream frame that could not be read.",
                    ))
                }
            };
            self.on_frame(&message, out)?;
        }
        self.check_buffered()
    }

    /// One event-stream frame: an event goes to the translator as its `:event-type` and JSON
    /// payload; an exception or error frame ends the stream as failed.
    fn on_frame(&mut self, message: &Message, out: &mut BytesMut) -> Result<(), ApiError> {
        let header = |name: &str| {
            message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == name)
                .and_then(|h| h.value().as_string().ok())
                .map(|v| v.as_str().to_owned())
        };
        let payload = utf8(message.payload())?;
        let payload = self
            .redacted(payload.as_bytes())?
            .unwrap_or_else(|| payload.to_owned());
        let label = match &self.translation {
            Translation::Translate { label, .. } => *label,
            // Native pass-through is for SSE APIs only (Messages, Responses).
            Translation::PassThrough { .. } | Translation::Native { .. } => {
                return Err(bad_stream(
                    "The upstream's event-stream frames have no translation to chunks.",
                ))
            }
        };
        match header(":message-type").as_deref() {
            Some("event") => {
                let name = header(":event-type");
                self.translate(name.as_deref(), &payload, out)
            }
            Some("exception") => {
                let kind = header(":exception-type").unwrap_or_else(|| "exception".to_owned());
                Err(ApiError::bad_gateway(format!(
                    "{label} - {kind}: {}",
                    frame_error_message(&payload)
                )))
            }
            Some("error") => {
                let code = header(":error-code").unwrap_or_else(|| "error".to_owned());
                let text = header(":error-message").unwrap_or_default();
                Err(ApiError::bad_gateway(format!("{label} - {code}: {text}")))
            }
            _ => Err(bad_stream(
                "The upstream sent an event-stream frame without a known :message-type.",
            )),
        }
    }

    /// Takes every complete event from the buffer, writing what to send now to `out`.
    fn drain_events(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        while let Some((end, sep)) = find_event_end(&self.buf) {
            let event = self.buf.split_to(end + sep).freeze();
            match self.take_event(&event, end, out)? {
                Pass::Event => out.extend_from_slice(&event),
                Pass::Cleaned(clean) => out.extend_from_slice(&clean),
                Pass::Nothing => {}
            }
        }
        self.check_buffered()
    }

    /// `drain_events` for a chunk that starts on an event boundary (nothing buffered) and a
    /// translation that forwards events unchanged or not at all. While every event is forwarded
    /// as it came, what is sent is a slice of the chunk itself: no copy into the buffer and out
    /// again. An event dropped or redacted switches to copying for the rest of the chunk.
    fn drain_chunk(&mut self, chunk: Bytes) -> Drained {
        // While `copied` is false, `chunk[..sent]` is all there is to send.
        let mut sent = 0;
        let mut copied = false;
        let mut out = BytesMut::new();
        let read = self.drain_chunk_into(&chunk, &mut sent, &mut copied, &mut out);
        Drained {
            out: if copied {
                out.freeze()
            } else {
                chunk.slice(..sent)
            },
            failed: read.err(),
        }
    }

    fn drain_chunk_into(
        &mut self,
        chunk: &Bytes,
        sent: &mut usize,
        copied: &mut bool,
        out: &mut BytesMut,
    ) -> Result<(), ApiError> {
        let mut pos = 0;
        while let Some((end, sep)) = find_event_end(&chunk[pos..]) {
            let start = pos;
            pos += end + sep;
            let event = chunk.slice(start..pos);
            let pass = self.take_event(&event, end, out)?;
            if !*copied {
                match pass {
                    Pass::Event if *sent == start => {
                        *sent = pos;
                        continue;
                    }
                    Pass::Nothing => continue,
                    _ => {
                        *copied = true;
                        out.extend_from_slice(&chunk[..*sent]);
                    }
                }
            }
            match pass {
                Pass::Event => out.extend_from_slice(&event),
                Pass::Cleaned(clean) => out.extend_from_slice(&clean),
                Pass::Nothing => {}
            }
        }
        self.buf.extend_from_slice(&chunk[pos..]);
        self.check_buffered()
    }

    /// What is left of an event after the complete ones were taken must stay bounded.
    fn check_buffered(&self) -> Result<(), ApiError> {
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(bad_stream(
                "The upstream sent a stream event larger than the gateway accepts.",
            ));
        }
        Ok(())
    }

    /// One complete event, `event[..end]` its text and the rest its blank line: reads it and
    /// says what of it to forward (a translator writes its chunks to `out` itself). Its UTF-8 is
    /// checked as it is read, line by line and by the chunk reader, not in a pass of its own.
    fn take_event(
        &mut self,
        event: &Bytes,
        end: usize,
        out: &mut BytesMut,
    ) -> Result<Pass, ApiError> {
        let text = event.get(..end).unwrap_or_default();
        Ok(match self.redacted(text)? {
            Some(clean_text) => {
                if !self.on_event(clean_text.as_bytes(), out)? {
                    return Ok(Pass::Nothing);
                }
                let mut clean = BytesMut::from(clean_text.as_bytes());
                clean.extend_from_slice(&event[end..]);
                Pass::Cleaned(clean.freeze())
            }
            None if self.on_event(text, out)? => Pass::Event,
            None => Pass::Nothing,
        })
    }

    /// Reads one event; true when the event itself is to be forwarded.
    fn on_event(&mut self, text: &[u8], out: &mut BytesMut) -> Result<bool, ApiError> {
        let event = parse_event(text)?;
        if event.data.is_none() && event.unknown_lines {
            // Not SSE as the upstream API defines it: passing it on would hand the client
            // something no SDK reads, and the call would be recorded as a success.
            return Err(bad_stream(
                "The upstream sent a stream line that is not an SSE field.",
            ));
        }
        match &mut self.translation {
            Translation::PassThrough { drop_usage_chunk } => {
                let drop_usage_chunk = *drop_usage_chunk;
                let Some(data) = event.data else {
                    // Comments and keep-alives pass through.
                    return Ok(true);
                };
                if data.trim_ascii() == b"[DONE]" {
                    self.saw_done = true;
                    return Ok(true);
                }
                let chunk = self.chunks.read(&data).map_err(|e| match e {
                    openai_stream::ChunkError::NotUtf8 => not_utf8(),
                    openai_stream::ChunkError::Json(_) => bad_stream(
                        "The upstream sent a stream event that is not a valid JSON chunk.",
                    ),
                })?;
                let keep = !(drop_usage_chunk && chunk.usage.is_some() && chunk.no_choices);
                if let Some((message, code)) = chunk.error {
                    // An in-band upstream error: the client sees it as is; the call is a failure.
                    let status = code
                        .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                        .filter(|c| c.is_client_error() || c.is_server_error())
                        .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
                    self.upstream_error = Some(ApiError::new(status, "api_error", message));
                }
                if let Some(r) = self.recorder() {
                    if let Some(u) = chunk.usage {
                        r.set_usage(u);
                    }
                    if chunk.text_bytes > 0 {
                        r.mark_first_token();
                        r.add_completion_bytes(chunk.text_bytes);
                    }
                }
                Ok(keep)
            }
            Translation::Translate { .. } => {
                if let Some(data) = event.data {
                    self.translate(event.name, utf8(&data)?, out)?;
                }
                Ok(false)
            }
            Translation::Native { meter, label } => {
                if let Some(data) = event.data {
                    let data = utf8(&data)?;
                    let before = meter.generated_bytes();
                    let read = meter
                        .on_event(event.name, data)
                        .map_err(|e| ApiError::bad_gateway(format!("{label} - {e}")));
                    let generated = meter.generated_bytes() - before;
                    let usage = meter.usage();
                    self.saw_done |= meter.finished();
                    // A failed answer's usage (Responses' `response.failed`) is billed too.
                    self.tally(generated, usage);
                    read?;
                }
                Ok(true)
            }
        }
    }

    /// Feeds one event (name and data) to the translator and writes the chunks it makes.
    fn translate(
        &mut self,
        name: Option<&str>,
        data: &str,
        out: &mut BytesMut,
    ) -> Result<(), ApiError> {
        let Translation::Translate {
            translator: t,
            label,
        } = &mut self.translation
        else {
            return Ok(());
        };
        let before = t.generated_bytes();
        let chunks = t
            .on_event(name, data)
            .map_err(|e| ApiError::bad_gateway(format!("{label} - {e}")))?;
        let generated = t.generated_bytes() - before;
        let usage = t.usage();
        let finished = t.finished();
        for c in &chunks {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(c.as_bytes());
            out.extend_from_slice(b"\n\n");
        }
        self.tally(generated, usage);
        if finished && !self.saw_done {
            self.saw_done = true;
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
        Ok(())
    }

    /// Counts what one event carried. Usage is taken only once the upstream has reported some: an
    /// all-zero count from a translator that has not seen it yet would otherwise stand in for the
    /// estimate a stream cut short is billed by.
    fn tally(&mut self, generated: usize, usage: crate::providers::translate::Usage) {
        if let Some(r) = self.recorder() {
            if generated > 0 {
                r.mark_first_token();
                r.add_completion_bytes(generated);
            }
            if usage != crate::providers::translate::Usage::default() {
                r.set_usage(usage.into_domain());
            }
        }
    }

    /// Ends the stream as failed after `sent`, what came before the failure: the client gets
    /// it and then the error event.
    fn fail_after(&mut self, sent: Bytes, err: ApiError) -> Bytes {
        let end = self.fail(err);
        if sent.is_empty() {
            return end;
        }
        let mut out = BytesMut::from(sent);
        out.extend_from_slice(&end);
        out.freeze()
    }

    /// Ends the stream as failed: the client gets an error event, the record says failure.
    fn fail(&mut self, err: ApiError) -> Bytes {
        self.finished = true;
        let event = match &mut self.translation {
            Translation::Native { meter, .. } => meter.error_event(&err),
            _ => format!("data: {}\n\n", err.body_json()),
        };
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
                    this.last_data = tokio::time::Instant::now();
                    match this.drain(chunk) {
                        Drained { out, failed: None } if out.is_empty() => continue,
                        Drained { out, failed: None } => return Poll::Ready(Some(Ok(out))),
                        Drained {
                            out,
                            failed: Some(e),
                        } => return Poll::Ready(Some(Ok(this.fail_after(out, e)))),
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
                    // A last event without its blank line still counts (a cut frame never does).
                    let mut out = BytesMut::new();
                    if !this.buf.is_empty() && this.frames.is_none() {
                        this.buf.extend_from_slice(b"\n\n");
                        if let Err(e) = this.drain_events(&mut out) {
                            return Poll::Ready(Some(Ok(this.fail_after(out.freeze(), e))));
                        }
                    }
                    let out = out.freeze();
                    if this.saw_done {
                        this.succeed();
                        return Poll::Ready((!out.is_empty()).then_some(Ok(out)));
                    }
                    let e = ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        "api_error",
                        "The upstream closed the stream before it was complete; the answer is incomplete.",
                    );
                    return Poll::Ready(Some(Ok(this.fail_after(out, e))));
                }
                Poll::Pending => {
                    let armed = this
                        .timer_waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()));
                    if armed && !this.timer.is_elapsed() {
                        return Poll::Pending;
                    }
                    while this.timer.as_mut().poll(cx).is_ready() {
                        let deadline = this.last_data + this.idle;
                        if deadline > tokio::time::Instant::now() {
                            // Data came since the timer was set: wait out the rest.
                            this.timer.as_mut().reset(deadline);
                            continue;
                        }
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
                    if !armed {
                        this.timer_waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// What a piece of the upstream body gave: the bytes to send now, and the error that ends the
/// stream after them (events before a bad one still reach the client).
struct Drained {
    out: Bytes,
    failed: Option<ApiError>,
}

/// What of one upstream event goes to the client.
enum Pass {
    /// The event's bytes as they came.
    Event,
    /// The event with the provider key redacted.
    Cleaned(Bytes),
    Nothing,
}

/// Index of the end of the first complete event and the separator's length.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| match buf.get(i + 1..i + 3) {
        Some([b'\n', _]) => Some((i, 2)),
        Some([b'\r', b'\n']) => Some((i, 3)),
        None if buf.get(i + 1) == Some(&b'\n') => Some((i, 2)),
        _ => None,
    })
}

/// One SSE event: its name, its data (several `data:` lines joined by newlines), and whether it
/// held a line that is none of the SSE fields or a comment.
struct Event<'a> {
    name: Option<&'a str>,
    /// Borrowed when the event has one `data:` line, as nearly every event has. Not yet checked
    /// as UTF-8: whoever reads it does (the chunk reader as it scans).
    data: Option<Cow<'a, [u8]>>,
    unknown_lines: bool,
}

/// Splits an event into its lines; every line but the data is checked as UTF-8 here.
fn parse_event(text: &[u8]) -> Result<Event<'_>, ApiError> {
    let mut event = Event {
        name: None,
        data: None,
        unknown_lines: false,
    };
    // memchr finds the line ends: an event is one line of a few hundred bytes, nearly always.
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text).chain(std::iter::once(text.len()));
    for end in ends {
        let line = text.get(start..end).unwrap_or_default();
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(v) = line.strip_prefix(b"data:") {
            let v = v.strip_prefix(b" ").unwrap_or(v);
            match &mut event.data {
                Some(d) => {
                    let d = d.to_mut();
                    d.push(b'\n');
                    d.extend_from_slice(v);
                }
                None => event.data = Some(Cow::Borrowed(v)),
            }
            continue;
        }
        let line = utf8(line)?;
        if let Some(v) = line.strip_prefix("event:") {
            event.name = Some(v.trim());
        } else if !(line.is_empty()
            || line.starts_with(':')
            || line.starts_with("id:")
            || line.starts_with("retry:"))
        {
            event.unknown_lines = true;
        }
    }
    Ok(event)
}

fn utf8(bytes: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(bytes).map_err(|_| not_utf8())
}

fn not_utf8() -> ApiError {
    bad_stream("The upstream sent a stream event that is not valid UTF-8.")
}

/// The message of an event-stream exception frame: its JSON `message` (AWS also writes
/// `Message`), else the payload itself, cut short.
fn frame_error_message(payload: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(payload).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.get("message")
            .or_else(|| v.get("Message"))
            .and_then(serde_json::Value::as_str)
    });
    match message {
        Some(m) => m.chars().take(1000).collect(),
        None => payload.trim().chars().take(500).collect(),
    }
}

fn bad_stream(message: &str) -> ApiError {
    ApiError::new(axum::http::StatusCode::BAD_GATEWAY, "api_error", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_frame_messages() {
        assert_eq!(
            frame_error_message(r#"{"message":"Too many tokens"}"#),
            "Too many tokens"
        );
        assert_eq!(frame_error_message(r#"{"Message":"Boom"}"#), "Boom");
        assert_eq!(frame_error_message(" not json "), "not json");
    }

    #[test]
    fn finds_event_boundaries() {
        assert_eq!(find_event_end(b"data: x\n\ndata: y"), Some((7, 2)));
        assert_eq!(find_event_end(b"data: x\r\n\r\n"), Some((8, 3)));
        assert_eq!(find_event_end(b"data: x\n"), None);
        assert_eq!(find_event_end(b"data: x\n\r"), None);
        assert_eq!(find_event_end(b"a\nb\n\n"), Some((3, 2)));
        assert_eq!(find_event_end(b"\n\n"), Some((0, 2)));
    }

    #[test]
    fn parses_events() {
        let e = parse_event(b"event: message_start\ndata: {\"a\":1}").unwrap();
        assert_eq!(e.name, Some("message_start"));
        assert_eq!(e.data.as_deref(), Some(&b"{\"a\":1}"[..]));
        let e = parse_event(b"data: a\ndata: b").unwrap();
        assert_eq!(e.data.as_deref(), Some(&b"a\nb"[..]));
        let e = parse_event(b": keep-alive").unwrap();
        assert_eq!(e.data, None);
        assert!(!e.unknown_lines);
        assert!(parse_event(b"id: 7\nretry: 10\ndata: x")
            .unwrap()
            .data
            .is_some());
        assert!(parse_event(b"{\"choices\":[]}").unwrap().unknown_lines);
        // Lines other than data are checked here; data is checked by whoever reads it.
        assert!(parse_event(b": keep\xff-alive").is_err());
        assert!(parse_event(b"event: \xc3").is_err());
        assert!(parse_event(b"data: \xc3").is_ok());
    }

    /// Runs a pass-through stream whose upstream body arrives as `pieces`; returns what the
    /// client is sent, piece by piece.
    fn pass_through(
        pieces: Vec<Bytes>,
        drop_usage_chunk: bool,
        secret: Option<&str>,
    ) -> Vec<Bytes> {
        use futures_util::StreamExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let upstream = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, BoxError>));
            let stream = proxy_stream(
                Box::pin(upstream),
                drop_usage_chunk,
                Duration::from_secs(60),
            )
            .scrubbing(secret.map(str::to_owned));
            stream.map(|sent| sent.unwrap()).collect().await
        })
    }

    /// Upstream events `CONTENT` (or `DONE` at the end), each `gap` after the one before.
    fn paced(gaps: Vec<Duration>) -> Upstream {
        let n = gaps.len();
        Box::pin(futures_util::stream::unfold(0, move |i| {
            let gap = gaps.get(i).copied();
            async move {
                tokio::time::sleep(gap?).await;
                let event = if i + 1 == n { DONE } else { CONTENT };
                Some((Ok::<_, BoxError>(Bytes::from(event)), i + 1))
            }
        }))
    }

    #[test]
    fn the_idle_timeout_counts_from_the_last_data_however_often_the_stream_is_polled() {
        use futures_util::StreamExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let idle = Duration::from_secs(10);
        let secs = |s: &[u64]| s.iter().map(|&s| Duration::from_secs(s)).collect();
        rt.block_on(async {
            // An event every 6 s for 36 s: the timer fires twice while data keeps coming, and
            // moves to 10 s after the last data each time.
            let sent: Vec<Bytes> = proxy_stream(paced(secs(&[6; 6])), false, idle)
                .map(|sent| sent.unwrap())
                .collect()
                .await;
            let sent = String::from_utf8(sent.concat()).unwrap();
            assert_eq!(sent, format!("{}{DONE}", CONTENT.repeat(5)));

            // Then 11 s of nothing after two events: cut off 10 s after the second.
            let start = tokio::time::Instant::now();
            let sent: Vec<Bytes> = proxy_stream(paced(secs(&[6, 6, 11, 1])), false, idle)
                .map(|sent| sent.unwrap())
                .collect()
                .await;
            let sent = String::from_utf8(sent.concat()).unwrap();
            assert!(sent.starts_with(&CONTENT.repeat(2)), "{sent}");
            assert!(sent.contains("sent nothing for 10s"), "{sent}");
            assert_eq!(start.elapsed(), Duration::from_secs(22));
        });
    }

    fn proxy_stream(upstream: Upstream, drop_usage_chunk: bool, idle: Duration) -> ProxyStream {
        ProxyStream::over(
            upstream,
            Translation::PassThrough { drop_usage_chunk },
            None,
            idle,
        )
    }

    const CONTENT: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    #[test]
    fn whole_events_are_sent_as_the_upstreams_own_bytes() {
        let piece = Bytes::from(format!("{CONTENT}: keep-alive\n\n{CONTENT}{DONE}"));
        let sent = pass_through(vec![piece.clone()], true, None);
        assert_eq!(sent, vec![piece.clone()]);
        // Not a copy: the same memory the upstream's body arrived in.
        assert_eq!(sent[0].as_ptr(), piece.as_ptr());
    }

    #[test]
    fn a_dropped_usage_chunk_leaves_the_events_around_it_in_order() {
        let piece = Bytes::from(format!("{CONTENT}{USAGE}{CONTENT}{DONE}"));
        let sent = pass_through(vec![piece], true, None);
        assert_eq!(
            sent.concat(),
            format!("{CONTENT}{CONTENT}{DONE}").as_bytes()
        );
        let kept = pass_through(vec![Bytes::from(format!("{USAGE}{DONE}"))], false, None);
        assert_eq!(kept.concat(), format!("{USAGE}{DONE}").as_bytes());
    }

    #[test]
    fn a_stream_cut_short_sends_what_came_and_then_the_error() {
        // The last event has no blank line after it, and no [DONE] follows.
        let piece = Bytes::from(format!("{CONTENT}{}", CONTENT.trim_end()));
        let sent = String::from_utf8(pass_through(vec![piece], false, None).concat()).unwrap();
        let rest = sent
            .strip_prefix(&CONTENT.repeat(2))
            .unwrap_or_else(|| panic!("{sent}"));
        assert!(rest.starts_with("data: {\"error\""), "{sent}");
        assert!(rest.contains("before it was complete"), "{sent}");
    }

    #[test]
    fn an_event_that_is_not_utf8_fails_the_stream_wherever_it_is() {
        let events: [&[u8]; 4] = [
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h\xffi\"}}]}\n\n",
            b"data: {\"id\":\"\xc3\",\"choices\":[],\"usage\":null}\n\n",
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1},\"x\":\"\xe2\x9c\"}\n\n",
            b": keep-alive \xff\n\n",
        ];
        for bad in events {
            // In one piece: the event before the bad one is sent all the same.
            let wire = [CONTENT.as_bytes(), bad, DONE.as_bytes()].concat();
            let sent = pass_through(vec![Bytes::from(wire)], false, None).concat();
            let sent = String::from_utf8(sent).unwrap();
            assert!(
                sent.starts_with(CONTENT)
                    && sent.contains("not valid UTF-8")
                    && !sent.contains("[DONE]"),
                "{bad:?}: {sent}"
            );
        }
    }

    mod props {
        use super::*;
        use crate::providers::openai::stream::read_chunk;
        use proptest::prelude::*;

        /// A chat chunk carrying `text`, written with `gap` after every colon and comma, the
        /// way servers other than OpenAI's often write it.
        fn chunk_text(text: &str, gap: &str) -> String {
            let text = serde_json::to_string(text).unwrap();
            format!(
                "{{\"id\":{gap}\"x\",{gap}\"choices\":{gap}[{{\"index\":{gap}0,{gap}\"delta\":{gap}{{\"content\":{gap}{text}}}}}]}}"
            )
        }

        proptest! {
            #[test]
            fn any_event_text_is_read_without_panic(text in "\\PC{0,200}") {
                let _ = parse_event(text.as_bytes());
                let _ = read_chunk(&text);
                let _ = find_event_end(text.as_bytes());
            }

            #[test]
            fn text_is_measured_whatever_the_spacing(text in "\\PC{0,60}", gap in "[ \t\n]{0,3}") {
                let c = read_chunk(&chunk_text(&text, &gap)).unwrap();
                prop_assert_eq!(c.text_bytes, text.len());
            }

            #[test]
            fn a_pass_through_stream_sends_the_same_whatever_the_pieces(
                kinds in prop::collection::vec(0u8..5, 0..8),
                cuts in prop::collection::vec(0usize..600, 0..4),
                drop_usage_chunk in any::<bool>(),
            ) {
                const SECRET: &str = "sk-test-secret-1234";
                let leak = format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{SECRET}\"}}}}]}}\n\n");
                let crlf = CONTENT.replace("\n\n", "\r\n\r\n");
                let mut wire = String::new();
                let mut expected = String::new();
                for k in kinds {
                    let event = match k {
                        0 => CONTENT.to_owned(),
                        1 => ": keep-alive\n\n".to_owned(),
                        2 => USAGE.to_owned(),
                        3 => leak.clone(),
                        _ => crlf.clone(),
                    };
                    wire.push_str(&event);
                    if !(k == 2 && drop_usage_chunk) {
                        expected.push_str(&event.replace(SECRET, "[redacted]"));
                    }
                }
                wire.push_str(DONE);
                expected.push_str(DONE);
                let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(wire.len())).collect();
                cuts.extend([0, wire.len()]);
                cuts.sort_unstable();
                cuts.dedup();
                let pieces = cuts
                    .windows(2)
                    .map(|w| Bytes::copy_from_slice(&wire.as_bytes()[w[0]..w[1]]))
                    .collect();
                let sent = pass_through(pieces, drop_usage_chunk, Some(SECRET));
                prop_assert_eq!(String::from_utf8(sent.concat()).unwrap(), expected);
            }

            #[test]
            fn events_split_anywhere_are_found_whole(
                datas in prop::collection::vec("[a-z0-9 ]{1,20}", 1..6),
                cut in 0usize..200,
            ) {
                let wire: String = datas.iter().map(|d| format!("data: {d}\n\n")).collect();
                // However the bytes arrive, only whole events come out, in order.
                let cut = cut.min(wire.len());
                let mut buf = BytesMut::from(&wire.as_bytes()[..cut]);
                let mut got = Vec::new();
                let take = |buf: &mut BytesMut, got: &mut Vec<String>| {
                    while let Some((end, sep)) = find_event_end(buf) {
                        let ev = buf.split_to(end + sep);
                        let data = parse_event(&ev[..end]).unwrap().data.unwrap_or_default();
                        got.push(String::from_utf8(data.into_owned()).unwrap());
                    }
                };
                take(&mut buf, &mut got);
                buf.extend_from_slice(&wire.as_bytes()[cut..]);
                take(&mut buf, &mut got);
                prop_assert_eq!(got, datas);
            }
        }
    }
}
