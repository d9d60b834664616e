//! As passthrough-reqwest, on hyper's pooled client directly. Args: LISTEN UPSTREAM_URL.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
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
    let listener = tokio::net::TcpListener::bind(&args[1]).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}

async fn forward(State((client, uri)): State<Upstream>, body: Bytes) -> Result<Bytes, StatusCode> {
    let req = http::Request::post(uri)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let resp = client.request(req).await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    let collected = resp
        .into_body()
        .collect()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok(collected.to_bytes())
}
