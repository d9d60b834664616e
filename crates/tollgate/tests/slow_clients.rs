//! Slow clients are cut off (headers, body, idle keep-alive), connections are capped with a
//! clear refusal, and none of it touches a slow *response*: raw TCP against the real app with
//! the bounds set to a second or two.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_testkit::{spawn_app_vars, Behavior, FakeUpstream, TestApp};

fn config(up: &FakeUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
  - model_name: slow
    litellm_params: {{model: openai/slow, api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
  - model_name: endless
    litellm_params: {{model: openai/endless, api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
general_settings:
  master_key: "{{master_key}}"
"#,
        base = up.base_url
    )
}

async fn app_with(vars: &[(&str, &str)]) -> (TestApp, FakeUpstream) {
    let up = FakeUpstream::start().await;
    let app = spawn_app_vars(&config(&up), vars).await;
    (app, up)
}

/// Reads until the server closes (or `limit` passes); returns what was read and when the
/// connection ended, if it did.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Instant>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&out).into_owned(),
                    Some(Instant::now()),
                )
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `bytes` one at a time every `gap` until the server closes the connection; returns
/// what the server sent, the time it took to close (`None`: still open after `limit`), and
/// how many bytes went out.
async fn trickle(
    stream: TcpStream,
    bytes: &[u8],
    gap: Duration,
    limit: Duration,
) -> (String, Option<Duration>, usize) {
    let start = Instant::now();
    let (mut rd, mut wr) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        (String::from_utf8_lossy(&out).into_owned(), Instant::now())
    });
    let mut sent = 0;
    let deadline = start + limit;
    while !reader.is_finished() && Instant::now() < deadline {
        if let Some(b) = bytes.get(sent) {
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
            sent += 1;
        }
        tokio::time::sleep(gap).await;
    }
    match tokio::time::timeout(Duration::from_millis(500), reader).await {
        Ok(Ok((text, at))) => (text, Some(at - start), sent),
        _ => (String::new(), None, sent),
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.unwrap()
}

/// One complete keep-alive request on `stream`; returns the response head and body.
async fn request_keep_alive(stream: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "closed before the response");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if body.len() >= len {
                return text;
            }
        }
    }
}

fn json_body(text: &str) -> Value {
    let (_, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_at_the_header_timeout() {
    let (app, _up) = app_with(&[("TOLLGATE_HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}",
        app.master_key
    );
    let (_, closed, sent) = trickle(
        connect(&app).await,
        head.as_bytes(),
        Duration::from_millis(100),
        Duration::from_secs(6),
    )
    .await;
    let closed = closed.expect("the connection is closed");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_millis(2500),
        "closed after {closed:?}"
    );
    assert!(sent < head.len(), "cut before the headers were complete");

    // A client that connects and sends nothing gets the same.
    let mut silent = connect(&app).await;
    let start = Instant::now();
    let (_, at) = read_until_closed(&mut silent, Duration::from_secs(6)).await;
    let waited = at.expect("the silent connection is closed") - start;
    assert!(waited < Duration::from_millis(2500), "{waited:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_body_trickled_with_a_valid_key_gets_408_at_the_body_timeout() {
    let (app, up) = app_with(&[
        ("TOLLGATE_HTTP_HEADER_TIMEOUT_SECS", "30"),
        ("TOLLGATE_HTTP_BODY_TIMEOUT_SECS", "1"),
    ])
    .await;
    let body =
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]})
            .to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        app.master_key,
        body.len()
    );
    let mut stream = connect(&app).await;
    stream.write_all(head.as_bytes()).await.unwrap();
    let (text, closed, sent) = trickle(
        stream,
        body.as_bytes(),
        Duration::from_millis(100),
        Duration::from_secs(6),
    )
    .await;
    let closed = closed.expect("the connection is closed");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_millis(2500),
        "closed after {closed:?}"
    );
    assert!(sent < body.len());
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{text}"
    );
    let v = json_body(&text);
    assert_eq!(v["error"]["code"], "408", "{v}");
    assert_eq!(v["error"]["type"], "timeout_error", "{v}");
    assert!(v["error"].get("param").is_some(), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("body"));
    assert_eq!(up.requests(), 0);

    // The same body sent at once is served: the bound is on slowness, not on the request.
    let resp = app
        .post(
            "/v1/chat/completions",
            &serde_json::from_str(&body).unwrap(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // A body that arrives steadily, above the minimum rate (500 bytes/s earn a second), may
    // take longer than the timeout itself.
    let padded = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "y".repeat(40_000)}]})
        .to_string();
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        app.master_key,
        padded.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    for piece in padded.as_bytes().chunks(2000) {
        stream.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(start.elapsed() > Duration::from_millis(1800));
    let (text, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");

    // And so is a large one (the fake upstream takes up to 2 MB).
    let big = "x".repeat(1_500_000);
    let resp = app
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": big}]}),
        )
        .await;
    let status = resp.status();
    assert_eq!(status, 200, "{}", resp.text().await.unwrap());
    app.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    // The idle timeout, with the header timeout long.
    let (app, _up) = app_with(&[
        ("TOLLGATE_HTTP_HEADER_TIMEOUT_SECS", "30"),
        ("TOLLGATE_HTTP_IDLE_TIMEOUT_SECS", "1"),
    ])
    .await;
    let mut stream = connect(&app).await;
    for _ in 0..2 {
        let text = request_keep_alive(&mut stream, "/health/liveliness").await;
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
        // Busy connections are not idle: a pause shorter than the timeout changes nothing.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let start = Instant::now();
    let (_, at) = read_until_closed(&mut stream, Duration::from_secs(6)).await;
    let waited = at.expect("the idle connection is closed") - start;
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(2000),
        "{waited:?}"
    );
    app.stop().await;

    // On HTTP/1.1 the header timeout also runs while a kept-alive connection waits.
    let (app, _up) = app_with(&[
        ("TOLLGATE_HTTP_HEADER_TIMEOUT_SECS", "1"),
        ("TOLLGATE_HTTP_IDLE_TIMEOUT_SECS", "60"),
    ])
    .await;
    let mut stream = connect(&app).await;
    let text = request_keep_alive(&mut stream, "/health/liveliness").await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    let start = Instant::now();
    let (_, at) = read_until_closed(&mut stream, Duration::from_secs(6)).await;
    let waited = at.expect("the idle connection is closed") - start;
    assert!(waited < Duration::from_millis(2000), "{waited:?}");
    app.stop().await;
}

#[tokio::test]
async fn idle_http2_connections_are_closed() {
    let (app, _up) = app_with(&[
        ("TOLLGATE_HTTP_HEADER_TIMEOUT_SECS", "30"),
        ("TOLLGATE_HTTP_IDLE_TIMEOUT_SECS", "1"),
    ])
    .await;
    let tcp = connect(&app).await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(async move {
        let _ = conn.await;
        Instant::now()
    });
    let req = axum::http::Request::get(format!("{}/health/liveliness", app.base_url))
        .body(String::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), axum::http::Version::HTTP_2);
    drop(resp);
    let start = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(6), conn)
        .await
        .expect("the idle HTTP/2 connection is closed")
        .unwrap();
    assert!(ended - start < Duration::from_millis(2000));
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_clearly_and_the_count_recovers() {
    let (app, _up) = app_with(&[
        ("TOLLGATE_MAX_CONNECTIONS", "3"),
        ("TOLLGATE_HTTP_HEADER_TIMEOUT_SECS", "30"),
        ("TOLLGATE_HTTP_IDLE_TIMEOUT_SECS", "30"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&app).await;
        let text = request_keep_alive(&mut s, "/health/liveliness").await;
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
        held.push(s);
    }
    for _ in 0..2 {
        let mut extra = connect(&app).await;
        // The refusal comes whether or not the client has sent anything yet.
        let (text, closed) = read_until_closed(&mut extra, Duration::from_secs(3)).await;
        assert!(closed.is_some(), "the refused connection is closed: {text}");
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        let lower = text.to_ascii_lowercase();
        assert!(lower.contains("\r\nconnection: close\r\n"), "{text}");
        assert!(
            lower.contains("\r\ncontent-type: application/json\r\n"),
            "{text}"
        );
        let v = json_body(&text);
        assert_eq!(v["error"]["code"], "503", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("limit"));
    }
    // A refused client that had sent its request still reads the answer.
    let mut eager = connect(&app).await;
    let _ = eager
        .write_all(b"GET /health/liveliness HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await;
    let (text, _) = read_until_closed(&mut eager, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");

    // The held connections still work, then close; the count comes back down.
    let text = request_keep_alive(&mut held[0], "/health/liveliness").await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    drop(held);
    let mut served = 0;
    let start = Instant::now();
    while served < 3 && start.elapsed() < Duration::from_secs(5) {
        let mut s = connect(&app).await;
        let _ = s
            .write_all(
                b"GET /health/liveliness HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
            )
            .await;
        let (text, _) = read_until_closed(&mut s, Duration::from_secs(3)).await;
        if text.starts_with("HTTP/1.1 200 ") {
            served += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(served, 3, "connections are accepted again");
    app.stop().await;
}

/// H3: a flood of connections past the cap. Every refused one reads a 503 (none is closed
/// unanswered), while a held connection keeps being served.
#[tokio::test]
async fn every_connection_in_a_flood_past_the_cap_reads_its_503() {
    let (app, _up) = app_with(&[
        ("TOLLGATE_MAX_CONNECTIONS", "2"),
        ("TOLLGATE_HTTP_HEADER_TIMEOUT_SECS", "30"),
        ("TOLLGATE_HTTP_IDLE_TIMEOUT_SECS", "30"),
    ])
    .await;
    let mut held = connect(&app).await;
    let text = request_keep_alive(&mut held, "/health/liveliness").await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    let mut second = connect(&app).await;
    let text = request_keep_alive(&mut second, "/health/liveliness").await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");

    let flood: Vec<_> = (0..400)
        .map(|i| {
            let addr = app.addr;
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                // Half send their request at once, half only after a moment.
                if i % 2 == 1 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = s
                    .write_all(b"GET /health/liveliness HTTP/1.1\r\nhost: localhost\r\n\r\n")
                    .await;
                let (text, _) = read_until_closed(&mut s, Duration::from_secs(10)).await;
                text
            })
        })
        .collect();
    let mut refused = 0;
    for t in flood {
        let text = t.await.unwrap();
        assert!(text.starts_with("HTTP/1.1 503 "), "answered: {text:?}");
        refused += 1;
    }
    assert_eq!(refused, 400);
    let text = request_keep_alive(&mut held, "/health/liveliness").await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    app.stop().await;
}

/// A client without a connection pool, so each call opens its own connection.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test]
async fn slow_upstreams_and_long_streams_are_not_cut() {
    let (app, up) = app_with(&[
        ("TOLLGATE_HTTP_HEADER_TIMEOUT_SECS", "1"),
        ("TOLLGATE_HTTP_BODY_TIMEOUT_SECS", "1"),
        ("TOLLGATE_HTTP_IDLE_TIMEOUT_SECS", "1"),
    ])
    .await;
    up.set("slow", Behavior::Delay(Duration::from_millis(2500)));
    up.set("endless", Behavior::Endless);
    let chat = |model: &str, stream: bool| {
        fresh_client()
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&app.master_key)
            .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };

    // A streamed call whose upstream takes longer than every client bound.
    let start = Instant::now();
    let resp = chat("slow", true).await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(2500));
    assert!(
        text.contains("fake upstream") && text.contains("data: [DONE]"),
        "{text}"
    );

    // The same without streaming.
    let resp = chat("slow", false).await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");

    // A stream that keeps flowing for three seconds, while a silent client beside it is cut:
    // the bounds are in force, only not on responses.
    let resp = chat("endless", true).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let start = Instant::now();
    let mut silent = connect(&app).await;
    let silent = tokio::spawn(async move {
        let (_, at) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
        at
    });
    let mut chunks = 0;
    while start.elapsed() < Duration::from_secs(3) {
        let next = tokio::time::timeout(Duration::from_secs(1), body.next())
            .await
            .expect("chunks keep coming");
        let bytes = next.expect("the stream goes on").unwrap();
        chunks += usize::from(!bytes.is_empty());
    }
    assert!(chunks > 20, "{chunks}");
    let cut = silent
        .await
        .unwrap()
        .expect("the silent connection was closed");
    assert!(
        cut - start < Duration::from_millis(2500),
        "{:?}",
        cut - start
    );
    drop(body);
    app.stop().await;
}

#[tokio::test]
async fn client_bounds_come_from_the_environment_and_bad_values_stop_the_start() {
    let build = |vars: &[(&str, &str)]| {
        let env = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let cfg = tollgate::config::parse(
                "general_settings: {master_key: sk-test-master-7d1f0c9a2b4e6f8a}\n",
                "test.yaml",
                &|_| None,
            )
            .unwrap();
            let opts = tollgate::Options {
                database_url: Some(format!("sqlite:{}", dir.path().join("t.db").display())),
                env,
                ..Default::default()
            };
            tollgate::App::build(cfg, opts).await.map(|app| app.limits)
        }
    };
    let limits = build(&[]).await.unwrap();
    assert_eq!(limits.header_timeout, Duration::from_secs(10));
    assert_eq!(limits.body_timeout, Duration::from_secs(30));
    assert_eq!(limits.idle_timeout, Duration::from_secs(30));
    assert!((1..=10_000).contains(&limits.max_connections));
    let limits = build(&[
        ("TOLLGATE_MAX_CONNECTIONS", "250"),
        ("TOLLGATE_HTTP2_MAX_STREAMS", "7"),
    ])
    .await
    .unwrap();
    assert_eq!((limits.max_connections, limits.h2_max_streams), (250, 7));
    for (name, bad) in [
        ("TOLLGATE_HTTP_HEADER_TIMEOUT_SECS", "0"),
        ("TOLLGATE_HTTP_BODY_TIMEOUT_SECS", "soon"),
        ("TOLLGATE_MAX_CONNECTIONS", "0"),
        ("TOLLGATE_HTTP_MAX_HEADER_BYTES", "100"),
    ] {
        let err = build(&[(name, bad)]).await.map(|_| ()).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
}
