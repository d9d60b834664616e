//! Access tokens for a service account: fetched from its token endpoint with a signed assertion,
//! kept until shortly before they expire, and fetched by one caller at a time (the others wait for
//! its result instead of asking too).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use serde_json::Value;

use super::credentials::Credentials;
use super::jwt;
use crate::upstream::{read_all, UpstreamClient};

/// A token is replaced this long before it expires, so no call leaves with one about to lapse…
const REFRESH_EARLY: Duration = Duration::from_secs(300);
/// …unless it lives so briefly that this would be more than half its life.
const MAX_EARLY_SHARE: u32 = 2;
/// The longest wait for the token endpoint's answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a refusal's description passed on.
const MAX_DETAIL_CHARS: usize = 200;

const GRANT_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// Why no token could be had. Nothing here holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("{0}")]
    Sign(#[from] jwt::SignError),
    #[error("the token endpoint could not be reached")]
    Unreachable,
    #[error("the token endpoint did not answer in time")]
    TimedOut,
    /// The endpoint refused the account or its assertion (a 4xx other than 429).
    #[error("the token endpoint refused the service account (HTTP {status}{detail})")]
    Refused { status: u16, detail: String },
    #[error("the token endpoint failed (HTTP {status})")]
    Failed { status: u16 },
    #[error("the token endpoint's answer holds no access_token")]
    BadAnswer,
}

/// A token as the endpoint gave it.
pub(crate) struct Fetched {
    pub access_token: String,
    pub expires_in: Duration,
}

/// Without the token.
impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Held {
    header: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

/// One account's current token.
#[derive(Default)]
pub(crate) struct TokenCache {
    held: Mutex<Option<Held>>,
    /// Held by the one caller fetching.
    fetching: tokio::sync::Mutex<()>,
    /// Fetches finished, and the error of the last one if it failed: a caller that waited
    /// through a failed fetch gets its error rather than trying again at once.
    fetches: AtomicU64,
    last_error: Mutex<Option<TokenError>>,
}

/// Longest token lifetime believed (Google's are an hour; 12 is the most it allows at all).
const MAX_TOKEN_LIFETIME_SECS: f64 = 12.0 * 3600.0;

/// When a token fetched at `fetched_at` should be replaced.
pub(crate) fn refresh_at(fetched_at: Instant, expires_in: Duration) -> Instant {
    let early = REFRESH_EARLY.min(expires_in / MAX_EARLY_SHARE);
    fetched_at + expires_in.saturating_sub(early)
}

impl TokenCache {
    /// The `Authorization` value to send now: the held token while it is fresh, else a new one
    /// from `fetch`. While a fetch runs, other callers wait for it. If a fetch fails while the
    /// held token has not yet expired, that token is used.
    pub(crate) async fn authorization<F, Fut>(&self, fetch: F) -> Result<HeaderValue, TokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, TokenError>>,
    {
        if let Some(h) = self.fresh(Instant::now()) {
            return Ok(h);
        }
        let seen = self.fetches.load(Ordering::Acquire);
        let _turn = self.fetching.lock().await;
        if let Some(h) = self.fresh(Instant::now()) {
            return Ok(h);
        }
        if self.fetches.load(Ordering::Acquire) != seen {
            if let Some(e) = self.last_error.lock().ok().and_then(|e| e.clone()) {
                return self.unexpired(Instant::now()).ok_or(e);
            }
        }
        let started = Instant::now();
        let result = fetch().await;
        self.fetches.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(f) => {
                let mut header = HeaderValue::from_str(&format!("Bearer {}", f.access_token))
                    .map_err(|_| TokenError::BadAnswer)?;
                header.set_sensitive(true);
                let held = Held {
                    header: header.clone(),
                    refresh_at: refresh_at(started, f.expires_in),
                    expires_at: started + f.expires_in,
                };
                if let Ok(mut slot) = self.held.lock() {
                    *slot = Some(held);
                }
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
                Ok(header)
            }
            Err(e) => {
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.clone());
                }
                self.unexpired(Instant::now()).ok_or(e)
            }
        }
    }

    /// Drops the held token if it is `sent` (one Vertex refused), so the next call fetches a new
    /// one; a newer token fetched meanwhile is kept.
    pub(crate) fn forget(&self, sent: &HeaderValue) {
        if let Ok(mut slot) = self.held.lock() {
            if slot.as_ref().is_some_and(|h| h.header == *sent) {
                *slot = None;
            }
        }
    }

    fn held(&self) -> Option<Held> {
        self.held.lock().ok().and_then(|h| h.clone())
    }

    fn fresh(&self, now: Instant) -> Option<HeaderValue> {
        self.held().filter(|h| now < h.refresh_at).map(|h| h.header)
    }

    fn unexpired(&self, now: Instant) -> Option<HeaderValue> {
        self.held().filter(|h| now < h.expires_at).map(|h| h.header)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Trades a fresh signed assertion for an access token at the account's token endpoint.
pub(crate) async fn fetch(
    creds: &Credentials,
    client: &UpstreamClient,
) -> Result<Fetched, TokenError> {
    let assertion = jwt::assertion(creds, &jwt::claims(creds, unix_now()))?;
    let uri: http::Uri = creds
        .token_uri()
        .parse()
        .map_err(|_| TokenError::Unreachable)?;
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    // The assertion is base64url and dots: nothing in it needs escaping in a form.
    let body = format!("grant_type={GRANT_TYPE}&assertion={assertion}");
    let exchange = async {
        let resp = client
            .post(&uri, headers, Bytes::from(body))
            .await
            .map_err(|_| TokenError::Unreachable)?;
        let status = resp.status().as_u16();
        let bytes = read_all(resp.into_body())
            .await
            .map_err(|_| TokenError::Unreachable)?;
        Ok::<_, TokenError>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| TokenError::TimedOut)??;
    read_token_answer(status, &bytes)
}

/// The token endpoint's answer: `{"access_token", "expires_in", "token_type"}`, or an OAuth error
/// (`{"error", "error_description"}`).
pub(crate) fn read_token_answer(status: u16, body: &[u8]) -> Result<Fetched, TokenError> {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        if status == 429 || status >= 500 {
            return Err(TokenError::Failed { status });
        }
        return Err(TokenError::Refused {
            status,
            detail: refusal_detail(v.as_ref()),
        });
    }
    let v = v.ok_or(TokenError::BadAnswer)?;
    let access_token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(TokenError::BadAnswer)?
        .to_owned();
    // Google always says; an hour is what it gives when it doesn't.
    let expires_in = v
        .get("expires_in")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0)
        // Capped, so that no answer can overflow the clock arithmetic below.
        .map_or(Duration::from_secs(3600), |s| {
            Duration::from_secs_f64(s.min(MAX_TOKEN_LIFETIME_SECS))
        });
    Ok(Fetched {
        access_token,
        expires_in,
    })
}

/// `: invalid_grant: Invalid JWT Signature.` from an OAuth error body; printable text only.
fn refusal_detail(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let text: String = [field("error"), field("error_description")]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(": ")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_DETAIL_CHARS)
        .collect();
    if text.is_empty() {
        text
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    fn token(s: &str, secs: u64) -> Result<Fetched, TokenError> {
        Ok(Fetched {
            access_token: s.to_owned(),
            expires_in: Duration::from_secs(secs),
        })
    }

    #[test]
    fn tokens_are_replaced_early() {
        let t = Instant::now();
        assert_eq!(
            refresh_at(t, Duration::from_secs(3600)),
            t + Duration::from_secs(3300)
        );
        // A short-lived token is replaced halfway through its life.
        assert_eq!(
            refresh_at(t, Duration::from_secs(60)),
            t + Duration::from_secs(30)
        );
        assert_eq!(refresh_at(t, Duration::ZERO), t);
    }

    #[tokio::test]
    async fn a_fresh_token_is_reused_and_a_stale_one_replaced() {
        let cache = TokenCache::default();
        let a = cache
            .authorization(|| async { token("a", 3600) })
            .await
            .unwrap();
        assert_eq!(a, "Bearer a");
        assert!(a.is_sensitive());
        // A fetch now would give "other": the held token is reused instead.
        let again = cache
            .authorization(|| async { token("other", 3600) })
            .await
            .unwrap();
        assert_eq!(again, "Bearer a");

        // A token living 40 ms is replaced after 20 ms.
        let cache = TokenCache::default();
        cache
            .authorization(|| async { token("short", 0) })
            .await
            .unwrap();
        let b = cache
            .authorization(|| async {
                Ok(Fetched {
                    access_token: "b".into(),
                    expires_in: Duration::from_millis(40),
                })
            })
            .await
            .unwrap();
        assert_eq!(b, "Bearer b");
        tokio::time::sleep(Duration::from_millis(25)).await;
        let c = cache
            .authorization(|| async { token("c", 3600) })
            .await
            .unwrap();
        assert_eq!(c, "Bearer c");
    }

    #[tokio::test]
    async fn a_refused_token_is_forgotten_unless_already_replaced() {
        let cache = TokenCache::default();
        let a = cache
            .authorization(|| async { token("a", 3600) })
            .await
            .unwrap();
        cache.forget(&HeaderValue::from_static("Bearer other"));
        let still = cache
            .authorization(|| async { token("b", 3600) })
            .await
            .unwrap();
        assert_eq!(still, "Bearer a");
        cache.forget(&a);
        let b = cache
            .authorization(|| async { token("b", 3600) })
            .await
            .unwrap();
        assert_eq!(b, "Bearer b");
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .authorization(|| async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        token("shared", 3600)
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "Bearer shared");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn callers_waiting_on_a_failed_fetch_get_its_error() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .authorization(|| async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        Err(TokenError::Failed { status: 503 })
                    })
                    .await
            }));
        }
        for t in tasks {
            assert!(matches!(
                t.await.unwrap(),
                Err(TokenError::Failed { status: 503 })
            ));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // The next caller tries again, and a success clears the error.
        let ok = cache.authorization(|| async { token("back", 3600) }).await;
        assert_eq!(ok.unwrap(), "Bearer back");
    }

    #[tokio::test]
    async fn an_unexpired_token_outlives_a_failed_refresh() {
        let cache = TokenCache::default();
        cache
            .authorization(|| async {
                Ok(Fetched {
                    access_token: "old".into(),
                    expires_in: Duration::from_secs(2),
                })
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1050)).await;
        let h = cache
            .authorization(|| async { Err(TokenError::Unreachable) })
            .await
            .unwrap();
        assert_eq!(h, "Bearer old");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(cache
            .authorization(|| async { Err(TokenError::Unreachable) })
            .await
            .is_err());
    }

    #[test]
    fn token_answers_and_refusals() {
        let f = read_token_answer(
            200,
            br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(f.access_token, "ya29.x");
        assert_eq!(f.expires_in, Duration::from_secs(3599));
        assert!(matches!(
            read_token_answer(200, br#"{"token_type":"Bearer"}"#),
            Err(TokenError::BadAnswer)
        ));
        let refused = read_token_answer(
            400,
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        )
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the token endpoint refused the service account (HTTP 400: invalid_grant: Invalid JWT Signature.)"
        );
        assert_eq!(
            read_token_answer(401, b"<html>").unwrap_err().to_string(),
            "the token endpoint refused the service account (HTTP 401)"
        );
        assert!(matches!(
            read_token_answer(503, b""),
            Err(TokenError::Failed { status: 503 })
        ));
        assert!(matches!(
            read_token_answer(429, b""),
            Err(TokenError::Failed { status: 429 })
        ));
    }
}
