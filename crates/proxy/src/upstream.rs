//! The HTTP client for upstream calls. Normally a plain hyper client (pooled keep-alive
//! connections, TLS by rustls with HTTP/2 where offered, no redirects): per call it costs about
//! half the CPU of reqwest, whose URL re-parsing and redirect/retry layers showed in profiles.
//! When an egress proxy is configured in the environment (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, as LiteLLM's httpx honours them) calls go through reqwest, which speaks to proxies.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// An upstream answer's body, whichever client fetched it.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;
pub type UpstreamResponse = Response<UpstreamBody>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const POOL_MAX_IDLE_PER_HOST: usize = 1024;
/// Environment variables that configure an egress proxy (either case).
const PROXY_VARS: &[&str] = &["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"];

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up TLS for upstream calls: {0}")]
    Tls(#[source] rustls::Error),
    #[error("cannot build the proxied HTTP client: {0}")]
    Proxied(#[source] reqwest::Error),
}

/// Why a call got no answer: `connect` when no connection could be made.
#[derive(Debug)]
pub struct TransportError {
    pub connect: bool,
    pub timeout: bool,
}

#[derive(Clone)]
// Built once at start and shared, so the direct client's size is no cost.
#[allow(clippy::large_enum_variant)]
pub enum UpstreamClient {
    Direct(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
    Proxied(reqwest::Client),
}

impl UpstreamClient {
    /// The direct client, or the proxied one when the environment names an egress proxy.
    pub fn from_env() -> Result<UpstreamClient, ClientError> {
        let proxied = PROXY_VARS.iter().any(|v| {
            [v.to_string(), v.to_ascii_lowercase()]
                .iter()
                .any(|name| std::env::var_os(name).is_some_and(|x| !x.is_empty()))
        });
        if proxied {
            UpstreamClient::proxied()
        } else {
            UpstreamClient::direct()
        }
    }

    pub fn direct() -> Result<UpstreamClient, ClientError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        // No Nagle delay: a request is written whole and must leave at once.
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(ClientError::Tls)?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(UpstreamClient::Direct(client))
    }

    pub fn proxied() -> Result<UpstreamClient, ClientError> {
        reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .connect_timeout(CONNECT_TIMEOUT)
            // An upstream redirect must not carry the provider key to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map(UpstreamClient::Proxied)
            .map_err(ClientError::Proxied)
    }

    pub fn is_proxied(&self) -> bool {
        matches!(self, UpstreamClient::Proxied(_))
    }

    /// POSTs `body` to `uri` and returns once the answer's head has arrived.
    pub async fn post(
        &self,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, TransportError> {
        match self {
            UpstreamClient::Direct(client) => {
                let mut req = Request::post(uri.clone())
                    .body(Full::new(body))
                    .map_err(|_| TransportError {
                        connect: false,
                        timeout: false,
                    })?;
                *req.headers_mut() = headers;
                let resp = client.request(req).await.map_err(|e| TransportError {
                    connect: e.is_connect(),
                    timeout: false,
                })?;
                Ok(resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()))
            }
            UpstreamClient::Proxied(client) => {
                let resp = client
                    .post(uri.to_string())
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| TransportError {
                        connect: e.is_connect(),
                        timeout: e.is_timeout(),
                    })?;
                let resp: Response<reqwest::Body> = resp.into();
                Ok(resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()))
            }
        }
    }
}

/// The whole body of an answer.
pub async fn read_all(body: UpstreamBody) -> Result<Bytes, BoxError> {
    Ok(own_copy(body.collect().await?.to_bytes()))
}

/// A small body that arrived in one piece is a view into its connection's read buffer (8 KiB
/// or more), and while the call holds it the connection must take a new buffer for its next
/// read: two buffers per call in flight, one each side. A copy the size of the body lets the
/// connection keep reusing its buffer. A large body fills most of its buffer (or arrived in
/// pieces and is already a copy), so it is kept as it is rather than copied again.
pub(crate) fn own_copy(body: Bytes) -> Bytes {
    if body.len() <= COPY_BELOW {
        Bytes::copy_from_slice(&body)
    } else {
        body
    }
}

/// Bodies up to this size are copied out of their connection's read buffer.
const COPY_BELOW: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_small_body_stops_sharing_its_read_buffer() {
        let buffer = Bytes::from(vec![b'x'; 4 * COPY_BELOW]);
        let small = own_copy(buffer.slice(..100));
        assert_eq!(small, buffer.slice(..100));
        assert!(!buffer.as_ptr_range().contains(&small.as_ptr()));
        let large = buffer.slice(..2 * COPY_BELOW);
        assert_eq!(
            own_copy(large).as_ptr(),
            buffer.as_ptr(),
            "a large body is not copied"
        );
    }

    /// A one-shot HTTP/1.1 server that answers `answer` and returns what it was sent.
    async fn one_shot(answer: &'static str) -> (Uri, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if got.len() >= head_end + 4 + len {
                        break;
                    }
                }
            }
            sock.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&got).to_string()
        });
        (
            format!("http://{addr}/v1/chat/completions")
                .parse()
                .unwrap(),
            task,
        )
    }

    async fn round_trip(client: UpstreamClient) {
        let (uri, server) = one_shot(
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 11\r\nx-up: 1\r\n\r\n{\"ok\":true}",
        )
        .await;
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer sk-up".parse().unwrap());
        let resp = client
            .post(&uri, headers, Bytes::from_static(b"{\"model\":\"m\"}"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["x-up"], "1");
        let body = read_all(resp.into_body()).await.unwrap();
        assert_eq!(&body[..], b"{\"ok\":true}");
        let sent = server.await.unwrap().to_ascii_lowercase();
        assert!(
            sent.starts_with("post /v1/chat/completions http/1.1\r\n"),
            "{sent}"
        );
        assert!(sent.contains("authorization: bearer sk-up\r\n"), "{sent}");
        assert!(sent.contains("host: 127.0.0.1:"), "{sent}");
        assert!(sent.ends_with("{\"model\":\"m\"}"), "{sent}");
    }

    #[tokio::test]
    async fn direct_client_posts_headers_and_body_and_reads_the_answer() {
        round_trip(UpstreamClient::direct().unwrap()).await;
    }

    #[tokio::test]
    async fn proxied_client_behaves_the_same() {
        round_trip(UpstreamClient::proxied().unwrap()).await;
    }

    #[tokio::test]
    async fn refused_connection_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let uri: Uri = format!("http://{addr}/v1/embeddings").parse().unwrap();
        for client in [
            UpstreamClient::direct().unwrap(),
            UpstreamClient::proxied().unwrap(),
        ] {
            let e = client
                .post(&uri, HeaderMap::new(), Bytes::new())
                .await
                .err()
                .unwrap();
            assert!(e.connect);
        }
    }
}
