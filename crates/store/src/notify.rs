//! PostgreSQL's LISTEN/NOTIFY as a message bus between instances that share a database but no
//! Redis: what one instance's management API changed reaches the others' caches at once. On
//! SQLite (one instance) there is no one to tell.

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::connect::{Backend, Store};
use crate::error::{QueryContext, StoreError};

impl Store {
    /// Sends `payload` to every listener on `channel` (PostgreSQL); nothing on SQLite.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(p) => sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(p)
                .await
                .map(|_| ())
                .context("sending a notification"),
        }
    }

    /// Calls `apply` with every notification on `channel`, reconnecting after a lost connection
    /// and then calling `on_gap` (messages may have been missed). Returns false on SQLite.
    pub fn listen<F, G>(&self, channel: &str, apply: F, on_gap: G) -> bool
    where
        F: Fn(&str) + Send + 'static,
        G: Fn() + Send + 'static,
    {
        let Backend::Postgres(pool) = &self.backend else {
            return false;
        };
        let (pool, channel) = (pool.clone(), channel.to_string());
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let mut resumed = false;
            loop {
                match PgListener::connect_with(&pool).await {
                    Ok(mut listener) => {
                        if listener.listen(&channel).await.is_ok() {
                            if resumed {
                                on_gap();
                            }
                            backoff = Duration::from_millis(100);
                            loop {
                                match listener.try_recv().await {
                                    Ok(Some(n)) => apply(n.payload()),
                                    // The connection dropped; the next call reconnects, but
                                    // what was sent meanwhile is gone.
                                    Ok(None) => on_gap(),
                                    Err(_) => break,
                                }
                            }
                        }
                        tracing::warn!(channel = %channel, "lost the notification listener; reconnecting");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for notifications; retrying")
                    }
                }
                if pool.is_closed() {
                    return;
                }
                resumed = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
        true
    }
}
