//! The Redis connection: one multiplexed connection that reconnects by itself, with short
//! timeouts so an unreachable Redis is noticed in milliseconds rather than stalling calls.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::metrics::RedisMetrics;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is never part of the message: it may hold a password.
    #[error("the Redis URL is not valid ({0})")]
    BadUrl(String),
    #[error("Redis did not answer: {0}")]
    Redis(#[source] redis::RedisError),
}

/// Where Redis is and how this deployment's keys are named there.
#[derive(Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Prepended to every key and channel, so several deployments (or tests) can share a Redis.
    pub prefix: String,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"[redacted]")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisSettings {
    /// The URL without its password, for messages.
    pub fn display_url(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("***"));
                }
                u.to_string()
            }
            Err(_) => "(unparsable URL)".to_string(),
        }
    }
}

/// This instance's handle on the shared state.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) client: redis::Client,
    pub(crate) conn: ConnectionManager,
    pub(crate) prefix: Arc<str>,
    pub(crate) metrics: Arc<RedisMetrics>,
}

/// A command that takes longer than this counts as failed: calls must not wait on a stuck Redis.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

impl Cluster {
    /// Connects (the first connection must succeed; later drops reconnect in the background).
    pub async fn connect(settings: &RedisSettings) -> Result<Cluster, ClusterError> {
        if settings.url.starts_with("rediss:") {
            // rustls needs a process-wide crypto provider for TLS to Redis; ring is the one the
            // upstream client already uses. Installing twice is refused harmlessly.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| ClusterError::BadUrl(format!("{:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(ClusterError::Redis)?;
        Ok(Cluster {
            client,
            conn,
            prefix: Arc::from(settings.prefix.as_str()),
            metrics: Arc::new(RedisMetrics::default()),
        })
    }

    pub fn metrics(&self) -> &RedisMetrics {
        &self.metrics
    }

    /// A round trip, for readiness.
    pub async fn ping(&self) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        self.timed(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(|_| ())
    }

    /// Runs one Redis round trip, counting it (and its time) in the metrics.
    pub(crate) async fn timed<T>(
        &self,
        round_trip: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        let started = std::time::Instant::now();
        let r = round_trip.await;
        self.metrics.observe(started, r.is_ok());
        r.map_err(ClusterError::Redis)
    }

    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut k = String::with_capacity(self.prefix.len() + 64);
        k.push_str(&self.prefix);
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }
}
