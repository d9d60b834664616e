//! POST /v1/chat/completions → the upstream, answer back as is. Args: LISTEN UPSTREAM_URL.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;

#[derive(Clone)]
struct Up {
    client: reqwest::Client,
    url: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let up = Up {
        client,
        url: args[2].clone(),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(up);
    // TCP_NODELAY on accepted sockets, as Tollgate sets it: streamed frames go out at once.
    let listener = tokio::net::TcpListener::bind(&args[1])
        .await
        .expect("bind")
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await.expect("serve");
}

async fn forward(State(up): State<Up>, body: Bytes) -> Result<Bytes, StatusCode> {
    let resp = up
        .client
        .post(&up.url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    resp.bytes().await.map_err(|_| StatusCode::BAD_GATEWAY)
}
