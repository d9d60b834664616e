//! Streaming answers: upstream SSE events pass to the client as they arrive (translated to
//! OpenAI chunks when the provider speaks another API), while a tee reads usage from them. Only complete events are forwarded (a partial line waits for its end), the
//! usage-only chunk Tollgate asked for is dropped when the client did not ask for it, and an
//! upstream failure mid-stream ends the stream with an explicit error event. Providers that
//! stream in AWS's binary event-stream framing have each frame decoded and translated instead.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
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
        ProxyStream {
            upstream: Box::pin(http_body_util::BodyDataStream::new(resp.into_body())),
            translation,
            buf: BytesMut::new(),
            recorder: Some(recorder),
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
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
    fn redacted(&self, text: &str) -> Option<String> {
        self.secret
            .as_ref()
            .filter(|(_, finder)| finder.find(text.as_bytes()).is_some())
            .map(|(k, _)| text.replace(k.as_str(), "[redacted]"))
    }

    fn recorder(&mut self) -> Option<&mut CallRecorder> {
        self.recorder.as_mut()
    }

    /// Takes every complete event or frame that `chunk` completes; returns the bytes to send now.
    fn drain(&mut self, chunk: Bytes) -> Result<Bytes, ApiError> {
        if self.frames.is_some() {
            self.buf.extend_from_slice(&chunk);
            return self.drain_frames().map(BytesMut::freeze);
        }
        // A translator writes new chunks, so only events forwarded as they came can be sent as
        // a slice of the upstream's own bytes.
        if self.buf.is_empty() && !matches!(self.translation, Translation::Translate { .. }) {
            return self.drain_chunk(chunk);
        }
        self.buf.extend_from_slice(&chunk);
        self.drain_events().map(BytesMut::freeze)
    }

    /// Takes every complete event-stream frame from the buffer (the decoder keeps a frame's
    /// prelude between calls); returns the bytes to send now.
    fn drain_frames(&mut self) -> Result<BytesMut, ApiError> {
        let mut out = BytesMut::new();
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
            self.on_frame(&message, &mut out)?;
        }
        self.check_buffered()?;
        Ok(out)
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
        let payload = std::str::from_utf8(message.payload())
            .map_err(|_| bad_stream("The upstream sent a stream event that is not valid UTF-8."))?;
        let payload = self.redacted(payload).unwrap_or_else(|| payload.to_owned());
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

    /// Takes every complete event from the buffer; returns the bytes to send now.
    fn drain_events(&mut self) -> Result<BytesMut, ApiError> {
        let mut out = BytesMut::new();
        while let Some((end, sep)) = find_event_end(&self.buf) {
            let event = self.buf.split_to(end + sep).freeze();
            match self.take_event(&event, end, &mut out)? {
                Pass::Event => out.extend_from_slice(&event),
                Pass::Cleaned(clean) => out.extend_from_slice(&clean),
                Pass::Nothing => {}
            }
        }
        self.check_buffered()?;
        Ok(out)
    }

    /// `drain_events` for a chunk that starts on an event boundary (nothing buffered) and a
    /// translation that forwards events unchanged or not at all. While every event is forwarded
    /// as it came, what is sent is a slice of the chunk itself: no copy into the buffer and out
    /// again. An event dropped or redacted switches to copying for the rest of the chunk.
    fn drain_chunk(&mut self, chunk: Bytes) -> Result<Bytes, ApiError> {
        let mut pos = 0;
        // While `copied` is false, `chunk[..sent]` is all there is to send.
        let mut sent = 0;
        let mut copied = false;
        let mut out = BytesMut::new();
        while let Some((end, sep)) = find_event_end(&chunk[pos..]) {
            let start = pos;
            pos += end + sep;
            let event = chunk.slice(start..pos);
            let pass = self.take_event(&event, end, &mut out)?;
            if !copied {
                match pass {
                    Pass::Event if sent == start => {
                        sent = pos;
                        continue;
                    }
                    Pass::Nothing => continue,
                    _ => {
                        copied = true;
                        out.extend_from_slice(&chunk[..sent]);
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
        self.check_buffered()?;
        Ok(if copied {
            out.freeze()
        } else {
            chunk.slice(..sent)
        })
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
    /// says what of it to forward (a translator writes its chunks to `out` itself).
    fn take_event(
        &mut self,
        event: &Bytes,
        end: usize,
        out: &mut BytesMut,
    ) -> Result<Pass, ApiError> {
        let text = std::str::from_utf8(&event[..end])
            .map_err(|_| bad_stream("The upstream sent a stream event that is not valid UTF-8."))?;
        let cleaned = self.redacted(text);
        Ok(match cleaned {
            Some(clean_text) => {
                if !self.on_event(&clean_text, out)? {
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
    fn on_event(&mut self, text: &str, out: &mut BytesMut) -> Result<bool, ApiError> {
        let event = parse_event(text);
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
                if data.trim() == "[DONE]" {
                    self.saw_done = true;
                    return Ok(true);
                }
                let chunk = self.chunks.read(&data).map_err(|_| {
                    bad_stream("The upstream sent a stream event that is not a valid JSON chunk.")
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
                    self.translate(event.name, &data, out)?;
                }
                Ok(false)
            }
            Translation::Native { meter, label } => {
                if let Some(data) = event.data {
                    let before = meter.generated_bytes();
                    let read = meter
                        .on_event(event.name, &data)
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
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(out))),
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
                    // A last event without its blank line still counts (a cut frame never does).
                    if !this.buf.is_empty() && this.frames.is_none() {
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
                    return Poll::Pending;
                }
            }
        }
    }
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
    /// Borrowed when the event has one `data:` line, as nearly every event has.
    data: Option<Cow<'a, str>>,
    unknown_lines: bool,
}

fn parse_event(text: &str) -> Event<'_> {
    let mut event = Event {
        name: None,
        data: None,
        unknown_lines: false,
    };
    // memchr finds the line ends: an event is one line of a few hundred bytes, nearly always.
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    for end in ends {
        let line = text.get(start..end).unwrap_or_default();
        start = end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(v) = line.strip_prefix("event:") {
            event.name = Some(v.trim());
        } else if let Some(v) = line.strip_prefix("data:") {
            let v = v.strip_prefix(' ').unwrap_or(v);
            match &mut event.data {
                Some(d) => {
                    let d = d.to_mut();
                    d.push('\n');
                    d.push_str(v);
                }
                None => event.data = Some(Cow::Borrowed(v)),
            }
        } else if !(line.is_empty()
            || line.starts_with(':')
            || line.starts_with("id:")
            || line.starts_with("retry:"))
        {
            event.unknown_lines = true;
        }
    }
    event
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
        let e = parse_event("event: message_start\ndata: {\"a\":1}");
        assert_eq!(e.name, Some("message_start"));
        assert_eq!(e.data.as_deref(), Some("{\"a\":1}"));
        let e = parse_event("data: a\ndata: b");
        assert_eq!(e.data.as_deref(), Some("a\nb"));
        let e = parse_event(": keep-alive");
        assert_eq!(e.data, None);
        assert!(!e.unknown_lines);
        assert!(parse_event("id: 7\nretry: 10\ndata: x").data.is_some());
        assert!(parse_event("{\"choices\":[]}").unknown_lines);
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
            let idle = Duration::from_secs(60);
            let stream = ProxyStream {
                upstream: Box::pin(upstream),
                translation: Translation::PassThrough { drop_usage_chunk },
                buf: BytesMut::new(),
                recorder: None,
                idle,
                timer: Box::pin(tokio::time::sleep(idle)),
                last_data: tokio::time::Instant::now(),
                saw_done: false,
                finished: false,
                upstream_error: None,
                secret: None,
                frames: None,
                chunks: openai_stream::ChunkReader::default(),
            }
            .scrubbing(secret.map(str::to_owned));
            stream.map(|sent| sent.unwrap()).collect().await
        })
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
                let _ = parse_event(&text);
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
                        let text = std::str::from_utf8(&ev[..end]).unwrap();
                        got.push(parse_event(text).data.unwrap_or_default().into_owned());
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
