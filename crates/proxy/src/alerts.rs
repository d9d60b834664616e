//! Budget alerts raised on the hot path and handled elsewhere (audit log, email): the hot path
//! only queues them.

use tokio::sync::mpsc;

/// A key's spend reached its `soft_budget` with this call.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftBudgetCrossed {
    /// The key's SHA-256 hex.
    pub token: String,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub spend_nanos: i64,
    pub soft_budget_nanos: i64,
}

/// Where alerts go; without a receiver they are only logged.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    tx: Option<mpsc::UnboundedSender<SoftBudgetCrossed>>,
}

impl Alerts {
    pub fn channel() -> (Alerts, mpsc::UnboundedReceiver<SoftBudgetCrossed>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Alerts { tx: Some(tx) }, rx)
    }

    pub fn soft_budget_crossed(&self, alert: SoftBudgetCrossed) {
        tracing::warn!(
            key_alias = alert.key_alias.as_deref().unwrap_or(""),
            user_id = alert.user_id.as_deref().unwrap_or(""),
            spend_usd = alert.spend_nanos as f64 / 1e9,
            soft_budget_usd = alert.soft_budget_nanos as f64 / 1e9,
            "a key crossed its soft budget"
        );
        if let Some(tx) = &self.tx {
            let _ = tx.send(alert);
        }
    }
}
