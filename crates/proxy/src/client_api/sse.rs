//! Re-framing a chat SSE stream (as the gateway sends it to chat callers) into another API's
//! events. The chat stream arrives in whole events, so each piece is converted on its own.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::Value;

use super::ChunkConverter;
use crate::error::ApiError;

type ChatStream = Pin<Box<dyn Stream<Item = Result<Bytes, Infallible>> + Send>>;

pub(crate) struct ConvertedStream {
    chat: ChatStream,
    converter: Box<dyn ChunkConverter>,
    ended: bool,
}

impl ConvertedStream {
    pub(crate) fn new(
        chat: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
        converter: Box<dyn ChunkConverter>,
    ) -> Self {
        ConvertedStream {
            chat: Box::pin(chat),
            converter,
            ended: false,
        }
    }
}

impl Stream for ConvertedStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                // Drain the chat stream so it can record the call; nothing more is sent.
                return match this.chat.as_mut().poll_next(cx) {
                    Poll::Ready(Some(_)) => continue,
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                };
            }
            match this.chat.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(piece))) => {
                    let (out, ended) = convert(this.converter.as_mut(), &piece);
                    this.ended = ended;
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Bytes::from(out))));
                    }
                }
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Converts whole chat SSE events; also says whether the converted stream has ended (an
/// error event ends it).
pub(crate) fn convert(converter: &mut dyn ChunkConverter, sse: &[u8]) -> (String, bool) {
    let mut out = String::new();
    let text = String::from_utf8_lossy(sse);
    for event in text.split("\n\n") {
        let Some(data) = data_of(event) else {
            continue;
        };
        if data.trim() == "[DONE]" {
            out.push_str(&converter.finish());
            continue;
        }
        let chunk: Value = match serde_json::from_str(&data) {
            Ok(v) => v,
            Err(_) => {
                let e = ApiError::bad_gateway("The stream held an event that is not JSON.");
                out.push_str(&converter.error_event(&e));
                return (out, true);
            }
        };
        if let Some(error) = chunk
            .get("error")
            .filter(|_| chunk.get("choices").is_none())
        {
            out.push_str(&converter.error_event(&error_of(error)));
            return (out, true);
        }
        match converter.on_chunk(&chunk) {
            Ok(s) => out.push_str(&s),
            Err(e) => {
                let e = ApiError::bad_gateway(e.to_string());
                out.push_str(&converter.error_event(&e));
                return (out, true);
            }
        }
    }
    (out, false)
}

/// The `data:` of one event, lines joined; None for comments and keep-alives.
fn data_of(event: &str) -> Option<String> {
    let mut data: Option<String> = None;
    for line in event.lines() {
        if let Some(v) = line.strip_prefix("data:") {
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
    data
}

/// The error a chat stream reported (the gateway's envelope or an upstream's in-band error).
fn error_of(error: &Value) -> ApiError {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("The upstream stream failed.");
    let status = error
        .get("code")
        .and_then(|c| match c {
            Value::String(s) => s.parse::<u16>().ok(),
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            _ => None,
        })
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|c| c.is_client_error() || c.is_server_error())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 => "timeout",
        429 => "rate_limit_error",
        _ => "api_error",
    };
    ApiError::new(status, kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::translate::TranslateError;

    /// Writes what it was given, so the framing can be checked.
    struct Echo;

    impl ChunkConverter for Echo {
        fn on_chunk(&mut self, chunk: &Value) -> Result<String, TranslateError> {
            match chunk.get("bad") {
                Some(_) => Err(TranslateError::BadUpstream("unreadable".into())),
                None => Ok(format!("chunk {chunk}\n")),
            }
        }
        fn finish(&mut self) -> String {
            "finish\n".into()
        }
        fn error_event(&mut self, error: &ApiError) -> String {
            format!("error {} {}\n", error.status.as_u16(), error.message)
        }
    }

    #[test]
    fn converts_chunks_done_and_skips_comments() {
        let sse = b"data: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        let (out, ended) = convert(&mut Echo, sse);
        assert_eq!(out, "chunk {\"a\":1}\nchunk {\"b\":2}\nfinish\n");
        assert!(!ended);
    }

    #[test]
    fn an_error_event_ends_the_stream_with_its_status() {
        let sse = b"data: {\"a\":1}\n\ndata: {\"error\":{\"message\":\"slow down\",\"code\":\"429\"}}\n\ndata: {\"c\":3}\n\n";
        let (out, ended) = convert(&mut Echo, sse);
        assert_eq!(out, "chunk {\"a\":1}\nerror 429 slow down\n");
        assert!(ended);
        let (out, ended) = convert(&mut Echo, b"data: {\"bad\":true}\n\n");
        assert_eq!(out, "error 502 unreadable\n");
        assert!(ended);
        let (out, _) = convert(&mut Echo, b"data: {not json\n\n");
        assert!(out.starts_with("error 502"), "{out}");
    }
}
