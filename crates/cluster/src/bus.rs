//! Key-cache invalidations across instances over Redis pub/sub. Each instance publishes what its
//! management API changed and applies what the others publish. A subscriber that lost its
//! connection may have missed messages, so on every (re)subscription it tells the cache to
//! forget everything.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::connection::Cluster;

/// What a management change makes stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// One key, by its hash.
    Key(String),
    /// Every cached key (a user or team change can touch many).
    All,
}

impl Invalidation {
    /// The message form, shared by the Redis and PostgreSQL buses.
    pub fn encode(&self) -> String {
        match self {
            Invalidation::Key(token) => format!("key:{token}"),
            Invalidation::All => "all".to_string(),
        }
    }

    pub fn decode(s: &str) -> Option<Invalidation> {
        match s {
            "all" => Some(Invalidation::All),
            _ => s
                .strip_prefix("key:")
                .filter(|t| !t.is_empty())
                .map(|t| Invalidation::Key(t.to_string())),
        }
    }
}

impl Cluster {
    fn channel(&self) -> String {
        self.key(&["invalidate"])
    }

    /// A sender for this instance's invalidations; a task publishes them in order.
    pub fn spawn_publisher(&self) -> mpsc::UnboundedSender<Invalidation> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Invalidation>();
        let me = self.clone();
        tokio::spawn(async move {
            let channel = me.channel();
            while let Some(inv) = rx.recv().await {
                let mut conn = me.conn.clone();
                let r = me
                    .timed(
                        redis::cmd("PUBLISH")
                            .arg(&channel)
                            .arg(inv.encode())
                            .query_async::<i64>(&mut conn),
                    )
                    .await;
                if let Err(e) = r {
                    // The other instances keep the old entry until their cache TTL ends.
                    tracing::warn!(error = %e, "could not publish a key-cache invalidation");
                }
            }
        });
        tx
    }

    /// Applies every invalidation another instance publishes with `apply`, resubscribing after
    /// a lost connection (and then invalidating everything, as messages may have been missed).
    pub fn spawn_subscriber<F>(&self, apply: F)
    where
        F: Fn(Invalidation) + Send + Sync + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move {
            let channel = me.channel();
            let mut backoff = Duration::from_millis(100);
            // After the first attempt, messages may have been missed.
            let mut resubscribing = false;
            loop {
                match me.client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                        Ok(()) => {
                            if resubscribing {
                                tracing::info!("key-cache invalidations resumed");
                                apply(Invalidation::All);
                            }
                            backoff = Duration::from_millis(100);
                            let mut messages = pubsub.into_on_message();
                            while let Some(msg) = messages.next().await {
                                let Ok(text) = msg.get_payload::<String>() else {
                                    continue;
                                };
                                if let Some(inv) = Invalidation::decode(&text) {
                                    apply(inv);
                                }
                            }
                            tracing::warn!(
                                "lost the key-cache invalidation subscription; reconnecting"
                            );
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot subscribe to key-cache invalidations")
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot connect for key-cache invalidations")
                    }
                }
                resubscribing = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidations_round_trip() {
        for inv in [Invalidation::All, Invalidation::Key("abc123".into())] {
            assert_eq!(Invalidation::decode(&inv.encode()), Some(inv));
        }
        assert_eq!(Invalidation::decode("key:"), None);
        assert_eq!(Invalidation::decode("nonsense"), None);
    }
}
