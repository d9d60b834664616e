//! The connection loop: accepts TCP connections up to a cap and serves each with hyper (HTTP/1.1
//! and HTTP/2), with bounds on how long a client may take to *send*. A client that trickles its
//! headers or body, or holds a connection open without asking anything, is cut off; a response
//! the gateway is still producing (a long upstream call, an SSE stream) is never timed out here.

use std::convert::Infallible;
use std::future::Future;
use std::io::Read as _;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body as AxumBody, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Version};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tollgate_proxy::ApiError;
use tower::Service;

use crate::error::StartError;

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `TOLLGATE_HTTP_HEADER_TIMEOUT_SECS`: from a connection's opening (or, on HTTP/1.1, from
    /// the end of the previous response) until a request's headers are complete.
    pub header_timeout: Duration,
    /// `TOLLGATE_HTTP_BODY_TIMEOUT_SECS`: time to send a request body, from the end of its
    /// headers, extended by `body_min_rate`.
    pub body_timeout: Duration,
    /// `TOLLGATE_HTTP_BODY_MIN_RATE_BYTES`: each this many body bytes received add a second to
    /// the body deadline, so large bodies on fair links are not cut (0: no extension).
    pub body_min_rate: u64,
    /// `TOLLGATE_HTTP_IDLE_TIMEOUT_SECS`: a connection with no request in progress this long is
    /// closed.
    pub idle_timeout: Duration,
    /// `TOLLGATE_MAX_CONNECTIONS`: open client connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// `TOLLGATE_HTTP_MAX_HEADER_BYTES`: the largest request head (HTTP/1.1) or header list
    /// (HTTP/2).
    pub max_header_bytes: u32,
    /// `TOLLGATE_HTTP2_MAX_STREAMS`: concurrent requests on one HTTP/2 connection.
    pub h2_max_streams: u32,
    /// `TOLLGATE_HTTP2_KEEPALIVE_SECS`: HTTP/2 ping interval; a peer that does not answer
    /// within the same time is disconnected.
    pub h2_keepalive: Duration,
}

/// Room left for the store, upstream connections and the rest when the connection cap is
/// derived from the open-files limit.
const RESERVED_FILES: u64 = 128;
const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;

impl Limits {
    /// Reads every bound through `number(name, default, range, expected)`; the warnings say
    /// when the connection cap exceeds what the open-files limit can hold.
    pub fn from_env(
        number: impl Fn(&str, u64, RangeInclusive<u64>, &str) -> Result<u64, StartError>,
        warnings: &mut Vec<String>,
    ) -> Result<Limits, StartError> {
        let secs = |name: &str, default: u64| {
            number(name, default, 1..=86_400, "seconds between 1 and 86400")
                .map(Duration::from_secs)
        };
        let files = open_files_limit();
        let fitting = fitting_connections(files);
        let max_connections = number(
            "TOLLGATE_MAX_CONNECTIONS",
            fitting,
            1..=1_000_000,
            "a number of connections between 1 and 1000000",
        )?;
        if let Some(files) = files {
            if max_connections.saturating_mul(2) + RESERVED_FILES > files {
                warnings.push(format!(
                    "TOLLGATE_MAX_CONNECTIONS={max_connections} may exceed the open-files limit \
                     ({files}; each connection can hold two: client and upstream): raise the \
                     limit (ulimit -n) or lower the cap"
                ));
            }
        }
        Ok(Limits {
            header_timeout: secs("TOLLGATE_HTTP_HEADER_TIMEOUT_SECS", 10)?,
            body_timeout: secs("TOLLGATE_HTTP_BODY_TIMEOUT_SECS", 30)?,
            body_min_rate: number(
                "TOLLGATE_HTTP_BODY_MIN_RATE_BYTES",
                500,
                0..=1 << 30,
                "bytes per second (0 to 1073741824)",
            )?,
            idle_timeout: secs("TOLLGATE_HTTP_IDLE_TIMEOUT_SECS", 30)?,
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            max_header_bytes: u32::try_from(number(
                "TOLLGATE_HTTP_MAX_HEADER_BYTES",
                64 * 1024,
                8192..=16 << 20,
                "bytes between 8192 and 16777216",
            )?)
            .unwrap_or(u32::MAX),
            h2_max_streams: u32::try_from(number(
                "TOLLGATE_HTTP2_MAX_STREAMS",
                100,
                1..=10_000,
                "a number of streams between 1 and 10000",
            )?)
            .unwrap_or(u32::MAX),
            h2_keepalive: secs("TOLLGATE_HTTP2_KEEPALIVE_SECS", 20)?,
        })
    }
}

/// The default cap: half the open-files limit (a proxied call holds a client and an upstream
/// connection) less a reserve, at most 10,000.
fn fitting_connections(files: Option<u64>) -> u64 {
    match files {
        Some(n) => (n.saturating_sub(RESERVED_FILES) / 2).clamp(1, DEFAULT_MAX_CONNECTIONS),
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

/// The soft limit on open files, where the system says (Linux); `None` when unknown or
/// unlimited.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&text)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// the open connections to finish (idle ones close at once, busy ones after their response).
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let limits = Arc::new(limits);
    let builder = Arc::new(builder(&limits));
    let cap = limits.max_connections;
    let connections = Arc::new(Semaphore::new(cap));
    // Every refused connection is answered at once; up to this many also linger to read what
    // the client sends after the answer (past it, closing may reset a client still sending).
    let refusal_slots = (cap / 4).clamp(64, 1024);
    let refusals = Arc::new(Semaphore::new(refusal_slots));
    let refusal = Bytes::from(refusal_bytes(cap));
    let mut pace = RefusalPace::new(Instant::now());
    let (stop_tx, stop_rx) = watch::channel(false);
    tracing::info!(
        max_connections = cap,
        header_timeout_secs = limits.header_timeout.as_secs(),
        body_timeout_secs = limits.body_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        "client limits"
    );
    let mut last_refusal_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Usually out of file descriptors: wait for some to be released.
                    tracing::error!(error = %e, "accept failed");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(Duration::from_millis(250)) => continue,
                    }
                }
            },
        };
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                // Without TCP_NODELAY each streamed chunk waits on Nagle/delayed-ACK (~40 ms).
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(
                    stream,
                    remote,
                    router.clone(),
                    builder.clone(),
                    limits.clone(),
                    stop_rx.clone(),
                    permit,
                ));
            }
            Err(_) => {
                let now = Instant::now();
                if last_refusal_warning.is_none_or(|t| now - t >= Duration::from_secs(10)) {
                    last_refusal_warning = Some(now);
                    tracing::warn!(
                        max_connections = cap,
                        "connection limit reached: new connections are refused (503) until some close (TOLLGATE_MAX_CONNECTIONS)"
                    );
                }
                if answer_refusal(&stream, &refusal) == Drained::Open {
                    if let Ok(slot) = refusals.clone().try_acquire_owned() {
                        tokio::spawn(linger(stream, slot));
                    }
                }
                // Refusing costs CPU the admitted calls need: past the pace, the next
                // connections wait in the listen backlog (and are admitted if room frees).
                if let Some(wait) = pace.refused(Instant::now()) {
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection and refusal holds a permit until it ends.
    let all = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let _ = connections.acquire_many(all(cap)).await;
    let _ = refusals.acquire_many(all(refusal_slots)).await;
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper runs the header timer from the connection's start and again from the end of each
    // response, so it also bounds how long a kept-alive HTTP/1.1 connection sits idle.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(usize::try_from(limits.max_header_bytes).unwrap_or(usize::MAX));
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.h2_keepalive)
        .keep_alive_timeout(limits.h2_keepalive)
        .max_concurrent_streams(limits.h2_max_streams)
        .max_header_list_size(limits.max_header_bytes);
    b
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// What a connection refused at the cap reads: a complete HTTP/1.1 answer, then the close.
fn refusal_bytes(cap: usize) -> Vec<u8> {
    let body = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable_error",
        format!(
            "The gateway is at its limit of {cap} open connections; retry shortly \
             (TOLLGATE_MAX_CONNECTIONS)."
        ),
    )
    .body_json();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Refusals answered per second at most, in windows of 10 ms.
const REFUSALS_PER_SEC: u32 = 2_000;
const PACE_WINDOW: Duration = Duration::from_millis(10);

/// How fast the accept loop refuses connections while at the cap.
struct RefusalPace {
    window_start: Instant,
    in_window: u32,
}

impl RefusalPace {
    fn new(now: Instant) -> RefusalPace {
        RefusalPace {
            window_start: now,
            in_window: 0,
        }
    }

    /// Counts a refusal; returns how long to wait before accepting again, if the pace is
    /// reached.
    fn refused(&mut self, now: Instant) -> Option<Duration> {
        if now.saturating_duration_since(self.window_start) >= PACE_WINDOW {
            self.window_start = now;
            self.in_window = 0;
        }
        self.in_window += 1;
        let per_window = REFUSALS_PER_SEC / 100;
        (self.in_window >= per_window)
            .then(|| (self.window_start + PACE_WINDOW).saturating_duration_since(now))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Drained {
    /// The client closed (or the socket failed): nothing more to read.
    Closed,
    /// Everything sent so far was read; the client may send more.
    Open,
}

/// Writes the refusal and reads what the client already sent, without waiting: the answer
/// fits a new connection's empty send buffer, and closing with unread data would reset the
/// connection (which can discard the answer before the client reads it).
fn answer_refusal(stream: &TcpStream, answer: &[u8]) -> Drained {
    let socket = socket2::SockRef::from(stream);
    if socket.send(answer).is_err() || socket.shutdown(std::net::Shutdown::Write).is_err() {
        return Drained::Closed;
    }
    let mut sink = [0u8; 4096];
    let mut left = 64 * 1024usize;
    while left > 0 {
        match (&*socket).read(&mut sink) {
            Ok(0) => return Drained::Closed,
            Ok(n) => left = left.saturating_sub(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Drained::Open,
            Err(_) => return Drained::Closed,
        }
    }
    Drained::Closed
}

/// Reads (and drops) what a refused client still sends until it closes, for a moment at most.
async fn linger(mut stream: TcpStream, _slot: OwnedSemaphorePermit) {
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left = 64 * 1024usize;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Whether a connection is serving anything, and since when it has not been.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when the last request ended.
    idle_since_ms: AtomicU64,
    any_request: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            any_request: AtomicBool::new(false),
        }
    }

    /// When the connection is to be closed for idleness, `None` while a request is in progress.
    /// Before its first request a connection gets the header timeout if that is shorter.
    fn idle_deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.any_request.load(Ordering::Acquire) {
            return Some(self.opened + limits.idle_timeout.min(limits.header_timeout));
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.opened + since + limits.idle_timeout)
    }
}

/// One request's share of the connection's activity: the request counts as in progress until
/// its body and its response (streamed or not) are both gone.
struct InFlight {
    activity: Arc<Activity>,
    body_timed_out: AtomicBool,
}

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Arc<InFlight> {
        activity.any_request.store(true, Ordering::Release);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Arc::new(InFlight {
            activity: activity.clone(),
            body_timed_out: AtomicBool::new(false),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.activity;
        let ms = u64::try_from(a.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.idle_since_ms.fetch_max(ms, Ordering::AcqRel);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<Limits>,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        let limits = limits.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            handle(
                router.clone(),
                req,
                remote,
                activity.clone(),
                limits.clone(),
            )
        })
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let first = activity
        .idle_deadline(&limits)
        .unwrap_or_else(|| Instant::now() + limits.idle_timeout);
    let idle = tokio::time::sleep_until(first);
    tokio::pin!(idle);
    let mut closing = *stop.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %remote, "connection ended with an error");
                }
                break;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut idle, if !closing => match activity.idle_deadline(&limits) {
                Some(at) if at <= Instant::now() => {
                    tracing::debug!(%remote, "closing an idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Some(at) => idle.as_mut().reset(at),
                None => idle.as_mut().reset(Instant::now() + limits.idle_timeout),
            },
        }
    }
}

async fn handle(
    mut router: Router,
    req: Request<Incoming>,
    remote: SocketAddr,
    activity: Arc<Activity>,
    limits: Arc<Limits>,
) -> Result<Response<TrackedBody>, Infallible> {
    let flight = InFlight::start(&activity);
    let http1 = req.version() <= Version::HTTP_11;
    let mut req = req.map(|body| {
        AxumBody::new(TimedBody::new(
            body,
            limits.body_timeout,
            limits.body_min_rate,
            flight.clone(),
        ))
    });
    req.extensions_mut().insert(ConnectInfo(remote));
    let resp = match router.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let resp = if flight.body_timed_out.load(Ordering::Acquire) {
        body_timeout_response(&limits, http1)
    } else {
        resp
    };
    Ok(resp.map(|inner| TrackedBody {
        inner,
        _flight: flight,
    }))
}

fn body_timeout_response(limits: &Limits, http1: bool) -> axum::response::Response {
    let mut resp = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "timeout_error",
        format!(
            "The request body was not received in time ({} s, TOLLGATE_HTTP_BODY_TIMEOUT_SECS).",
            limits.body_timeout.as_secs()
        ),
    )
    .into_response();
    // The rest of the body is never read, so the connection cannot carry another request.
    if http1 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

#[derive(Debug, thiserror::Error)]
#[error("the client did not send the request body in time")]
struct BodyTimeout;

/// The request body under a deadline: `timeout` from the end of the headers, plus a second for
/// every `min_rate` bytes received. The timer exists only once the body is waited for.
struct TimedBody<B> {
    inner: B,
    started: Instant,
    timeout: Duration,
    min_rate: u64,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
    flight: Arc<InFlight>,
}

impl<B> TimedBody<B> {
    fn new(inner: B, timeout: Duration, min_rate: u64, flight: Arc<InFlight>) -> TimedBody<B> {
        TimedBody {
            inner,
            started: Instant::now(),
            timeout,
            min_rate,
            received: 0,
            timer: None,
            flight,
        }
    }

    fn deadline(&self) -> Instant {
        // Capped, so the sum below cannot overflow whatever a client sends.
        const YEAR_SECS: u64 = 365 * 86_400;
        let earned = match self.min_rate {
            0 => Duration::ZERO,
            rate => {
                let whole = (self.received / rate).min(YEAR_SECS);
                let part = (self.received % rate).saturating_mul(1000) / rate;
                Duration::from_secs(whole) + Duration::from_millis(part)
            }
        };
        self.started + self.timeout + earned
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.flight.body_timed_out.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline();
                let timer = match &mut this.timer {
                    Some(t) => t,
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // The timer was armed earlier; the bytes received since may have earned more
                // time. Re-arming only here keeps fast uploads free of timer updates.
                if deadline > Instant::now() {
                    timer.as_mut().reset(deadline);
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                this.flight.body_timed_out.store(true, Ordering::Release);
                Poll::Ready(Some(Err(BodyTimeout.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in progress until it is sent or dropped.
pub struct TrackedBody {
    inner: AxumBody,
    _flight: Arc<InFlight>,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_open_files_soft_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(text), Some(1024));
        let unlimited = text.replace("1024  ", "unlimited");
        assert_eq!(parse_open_files_limit(&unlimited), None);
    }

    #[test]
    fn the_default_cap_fits_the_open_files_limit() {
        assert_eq!(fitting_connections(Some(1024)), 448);
        assert_eq!(fitting_connections(Some(1_048_576)), 10_000);
        assert_eq!(fitting_connections(Some(100)), 1);
        assert_eq!(fitting_connections(None), 10_000);
    }

    #[tokio::test]
    async fn received_bytes_earn_body_time_at_the_minimum_rate() {
        let flight = InFlight::start(&Arc::new(Activity::new()));
        let mut body = TimedBody::new((), Duration::from_secs(30), 500, flight);
        let base = body.started + Duration::from_secs(30);
        assert_eq!(body.deadline(), base);
        body.received = 1250;
        assert_eq!(body.deadline(), base + Duration::from_millis(2500));
        body.received = u64::MAX;
        assert!(body.deadline() > base + Duration::from_secs(86_400 * 364));
        body.min_rate = 0;
        assert_eq!(body.deadline(), base);
    }

    #[test]
    fn refusals_are_paced_per_window() {
        let t0 = Instant::now();
        let mut pace = RefusalPace::new(t0);
        let per_window = REFUSALS_PER_SEC / 100;
        for _ in 1..per_window {
            assert_eq!(pace.refused(t0), None);
        }
        let later = t0 + Duration::from_millis(4);
        assert_eq!(
            pace.refused(later),
            Some(Duration::from_millis(6)),
            "the window's last refusal waits for the window's end"
        );
        // A new window starts counting again.
        assert_eq!(pace.refused(t0 + PACE_WINDOW), None);
    }

    #[test]
    fn refusal_is_a_complete_http_answer() {
        let text = String::from_utf8(refusal_bytes(7)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("\r\nconnection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "503");
        assert!(v["error"]["message"].as_str().unwrap().contains("7 open"));
    }
}
