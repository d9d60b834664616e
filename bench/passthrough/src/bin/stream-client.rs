//! The streaming load for bench/stream_floor.sh, timed in Rust rather than Python: CONC
//! connections, each posting BODY_FILE to URL in a loop for DUR seconds and reading the SSE
//! answer frame by frame as it arrives.
//! Args: URL CONC DUR BODY_FILE [AUTHORIZATION]. Prints one JSON line: streams completed,
//! SSE events received, errors, time to the first body byte (p50/p99, µs, from the request
//! being sent), whole-stream time (p50/p99, µs) and events per second.
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

#[derive(Default)]
struct Tally {
    streams: u64,
    events: u64,
    errors: u64,
    ttfb_us: Vec<u32>,
    total_us: Vec<u32>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: stream-client URL CONC DUR BODY_FILE [AUTHORIZATION]");
        std::process::exit(2);
    }
    let uri: http::Uri = args[1].parse().expect("url");
    let conc: usize = args[2].parse().expect("conc");
    let dur = Duration::from_secs_f64(args[3].parse().expect("dur"));
    let body = Bytes::from(std::fs::read(&args[4]).expect("body file"));
    let auth = args.get(5).cloned();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, uri, body, auth) = (client.clone(), uri.clone(), body.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            while start.elapsed() < dur {
                match one(&client, &uri, &body, auth.as_deref()).await {
                    Some((ttfb, total, events)) => {
                        t.streams += 1;
                        t.events += events;
                        t.ttfb_us.push(ttfb);
                        t.total_us.push(total);
                    }
                    None => t.errors += 1,
                }
            }
            t
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await.expect("task");
        all.streams += t.streams;
        all.events += t.events;
        all.errors += t.errors;
        all.ttfb_us.extend(t.ttfb_us);
        all.total_us.extend(t.total_us);
    }
    let secs = start.elapsed().as_secs_f64();
    all.ttfb_us.sort_unstable();
    all.total_us.sort_unstable();
    println!(
        "{{\"streams\":{},\"events\":{},\"errors\":{},\"secs\":{:.3},\"events_per_s\":{:.1},\"ttfb_p50_us\":{},\"ttfb_p99_us\":{},\"stream_p50_us\":{},\"stream_p99_us\":{}}}",
        all.streams,
        all.events,
        all.errors,
        secs,
        all.events as f64 / secs,
        pct(&all.ttfb_us, 0.50),
        pct(&all.ttfb_us, 0.99),
        pct(&all.total_us, 0.50),
        pct(&all.total_us, 0.99),
    );
}

fn pct(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// One stream: (µs to the first body byte, µs to the end, SSE events). None on any failure,
/// a status other than 200 included.
async fn one(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &http::Uri,
    body: &Bytes,
    auth: Option<&str>,
) -> Option<(u32, u32, u64)> {
    let mut req = http::Request::post(uri.clone()).header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let req = req.body(Full::new(body.clone())).ok()?;
    let t0 = Instant::now();
    let resp = client.request(req).await.ok()?;
    if resp.status() != http::StatusCode::OK {
        return None;
    }
    let mut body = resp.into_body();
    let mut ttfb = None;
    let mut events = 0u64;
    let mut last = 0u8;
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        let Some(data) = frame.data_ref() else { continue };
        if data.is_empty() {
            continue;
        }
        if ttfb.is_none() {
            ttfb = Some(t0.elapsed());
        }
        // An event ends with a blank line; count "\n\n", also across frame boundaries.
        if last == b'\n' && data[0] == b'\n' {
            events += 1;
        }
        events += data.windows(2).filter(|w| w == b"\n\n").count() as u64;
        last = data[data.len() - 1];
    }
    let total = t0.elapsed();
    Some((ttfb?.as_micros() as u32, total.as_micros() as u32, events))
}
