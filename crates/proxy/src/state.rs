//! Everything the hot path needs, built once at start and shared by every request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tollgate_ledger::{ModelPrice, PriceTable, SpendWriter};
use tollgate_store::Store;

use crate::auth::MasterKey;
use crate::deployment::DeploymentSpec;
use crate::metrics::Metrics;
use crate::router::ModelRouter;

#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Largest request body accepted (LiteLLM's `max_request_size_mb`).
    pub max_body_bytes: usize,
    /// Retries per model group before moving to its fallbacks.
    pub num_retries: u32,
    /// Time allowed for an upstream to start answering, and between streamed chunks.
    pub default_timeout: Duration,
    pub fallbacks: HashMap<String, Vec<String>>,
    pub context_window_fallbacks: HashMap<String, Vec<String>>,
    /// Failures per minute a deployment may have before it is cooled down.
    pub allowed_fails: u32,
    pub cooldown: Duration,
    /// Longest wait honoured from an upstream's `retry-after`.
    pub max_retry_after: Duration,
    /// At a budget's edge, the fewest output tokens worth forwarding a call for; below this the
    /// call is refused with `budget_exceeded`.
    pub budget_min_output_tokens: u64,
    /// With Redis unreachable: refuse calls on keys with a budget (503), or admit them against
    /// this instance's own accounts.
    pub redis_budgets_fail_open: bool,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            max_body_bytes: 8 * 1024 * 1024,
            num_retries: 2,
            default_timeout: Duration::from_secs(600),
            fallbacks: HashMap::new(),
            context_window_fallbacks: HashMap::new(),
            allowed_fails: 3,
            cooldown: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            budget_min_output_tokens: 16,
            redis_budgets_fail_open: false,
        }
    }
}

impl ProxySettings {
    /// Fallback groups for a model: its own entry, else the `*` default.
    pub fn fallbacks_for(&self, model: &str) -> &[String] {
        self.fallbacks
            .get(model)
            .or_else(|| self.fallbacks.get("*"))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

pub struct ProxyState {
    pub router: ModelRouter,
    pub client: crate::upstream::UpstreamClient,
    pub master_key: MasterKey,
    pub prices: PriceTable,
    pub writer: Arc<SpendWriter>,
    pub metrics: Metrics,
    pub settings: ProxySettings,
    pub store: Store,
    /// Virtual keys seen recently; the management API evicts what it changes.
    pub keys: Arc<crate::keys::KeyCache>,
    /// Requests, tokens and calls in flight per key, user and team.
    pub limiter: Arc<crate::limits::RateLimiter>,
    pub alerts: crate::alerts::Alerts,
    /// Shared budgets, limits and invalidations when several instances run on one Redis.
    pub cluster: Option<tollgate_cluster::Cluster>,
}

impl ProxyState {
    /// The price of a call: see [`price_for`].
    pub fn price_for<'a>(
        &'a self,
        spec: &'a DeploymentSpec,
        upstream_model: &str,
    ) -> Option<&'a ModelPrice> {
        price_for(&self.prices, spec, upstream_model)
    }
}

/// The price of a call: the deployment's own price, else the table by base model, else by the
/// upstream model name.
pub fn price_for<'a>(
    prices: &'a PriceTable,
    spec: &'a DeploymentSpec,
    upstream_model: &str,
) -> Option<&'a ModelPrice> {
    if let Some(p) = &spec.price_override {
        if p.is_priced() {
            return Some(p);
        }
    }
    let provider = spec.provider.name();
    spec.base_model
        .as_deref()
        .and_then(|b| prices.lookup(provider, b))
        .or_else(|| prices.lookup(provider, upstream_model))
}
