//! As passthrough-reqwest, on hyper's pooled client directly. Args: LISTEN UPSTREAM_URL.
//! An SSE answer (`text/event-stream`) is passed through frame by frame, as a gateway must; any
//! other answer is collected and sent whole.
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

type Upstream = (Client<HttpConnector, Full<Bytes>>, http::Uri);

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let uri: http::Uri = args[2].parse().expect("upstream url");
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state((client, uri));
    // TCP_NODELAY on accepted sockets, as Tollgate sets it: streamed frames go out at once.
    let listener = tokio::net::TcpListener::bind(&args[1])
        .await
        .expect("bind")
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await.expect("serve");
}

async fn forward(
    State((client, uri)): State<Upstream>,
    body: Bytes,
) -> Result<http::Response<Body>, StatusCode> {
    let req = http::Request::post(uri)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let resp = client.request(req).await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    let sse = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if sse {
        let (parts, body) = resp.into_parts();
        return Ok(http::Response::from_parts(parts, Body::new(body)));
    }
    let collected = resp
        .into_body()
        .collect()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok(http::Response::new(Body::from(collected.to_bytes())))
}
