//! Joining the other instances: through Redis when one is configured (the connection, the
//! key-cache invalidation bus, the settings for when Redis cannot be reached), else key-cache
//! invalidations through PostgreSQL's NOTIFY.

use std::sync::Arc;

use tokio::sync::mpsc;
use tollgate_cluster::{Cluster, Invalidation, RedisSettings};
use tollgate_proxy::keys::KeyCache;
use tollgate_store::Store;

use crate::app::Options;
use crate::config::Config;
use crate::error::StartError;

/// `TOLLGATE_REDIS_PREFIX`: the start of every Redis key and channel, so deployments (or tests)
/// can share one Redis.
const DEFAULT_PREFIX: &str = "tollgate";

/// Connects to the configured Redis; `None` without one (one instance, state in this process).
pub async fn connect(cfg: &Config, opts: &Options) -> Result<Option<Cluster>, StartError> {
    let Some(url) = &cfg.redis_url else {
        return Ok(None);
    };
    let prefix = opts
        .env_var("TOLLGATE_REDIS_PREFIX")
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PREFIX.to_string());
    let settings = RedisSettings {
        url: url.expose().to_string(),
        prefix,
    };
    let cluster = Cluster::connect(&settings)
        .await
        .map_err(|e| StartError::Redis(settings.display_url(), e))?;
    tracing::info!(redis = %settings.display_url(), "sharing keys, rate limits and budgets through Redis");
    Ok(Some(cluster))
}

/// `TOLLGATE_REDIS_BUDGETS_ON_FAILURE`: `fail_closed` (default: calls on keys with a budget get
/// 503 while Redis is unreachable) or `fail_open` (each instance admits against its own accounts).
pub fn budgets_fail_open(opts: &Options) -> Result<bool, StartError> {
    match opts
        .env_var("TOLLGATE_REDIS_BUDGETS_ON_FAILURE")
        .as_deref()
        .map(str::trim)
    {
        None | Some("") | Some("fail_closed") => Ok(false),
        Some("fail_open") => Ok(true),
        Some(other) => Err(StartError::Settings(format!(
            "TOLLGATE_REDIS_BUDGETS_ON_FAILURE: expected fail_closed or fail_open, got {other:?}"
        ))),
    }
}

/// Every eviction this instance makes goes to the others, and theirs come here.
pub fn share_key_cache(cluster: &Cluster, keys: &Arc<KeyCache>) {
    keys.publish_to(cluster.spawn_publisher());
    let keys = keys.clone();
    cluster.spawn_subscriber(move |inv| keys.apply(inv));
}

const PG_CHANNEL: &str = "tollgate_key_cache";

/// Without Redis, instances on one PostgreSQL tell each other of key changes by NOTIFY.
/// Nothing happens on SQLite.
pub fn share_key_cache_through_store(store: &Store, keys: &Arc<KeyCache>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Invalidation>();
    let (applied, cleared) = (keys.clone(), keys.clone());
    let listening = store.listen(
        PG_CHANNEL,
        move |payload| {
            if let Some(inv) = Invalidation::decode(payload) {
                applied.apply(inv);
            }
        },
        move || cleared.apply(Invalidation::All),
    );
    if !listening {
        return;
    }
    keys.publish_to(tx);
    let store = store.clone();
    tokio::spawn(async move {
        while let Some(inv) = rx.recv().await {
            if let Err(e) = store.notify(PG_CHANNEL, &inv.encode()).await {
                tracing::warn!(error = %e, "could not tell the other instances of a key change");
            }
        }
    });
}
