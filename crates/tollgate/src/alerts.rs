//! Handles budget alerts off the hot path: each soft-budget crossing becomes an audit-log entry
//! and, when SMTP is configured and the key's user has an email address, an email to them.

use tokio::sync::mpsc::UnboundedReceiver;
use tollgate_mailer::Mailer;
use tollgate_proxy::alerts::SoftBudgetCrossed;
use tollgate_store::{AuditEntry, Store};

pub const SOFT_BUDGET_SUBJECT: &str = "Tollgate: a key reached its soft budget";

pub fn spawn_alert_handler(
    mut rx: UnboundedReceiver<SoftBudgetCrossed>,
    store: Store,
    mailer: Option<Mailer>,
) {
    tokio::spawn(async move {
        while let Some(a) = rx.recv().await {
            handle(&store, mailer.as_ref(), &a).await;
        }
    });
}

fn usd(nanos: i64) -> String {
    format!("${:.4}", nanos as f64 / 1e9)
}

async fn handle(store: &Store, mailer: Option<&Mailer>, a: &SoftBudgetCrossed) {
    let detail = serde_json::json!({
        "key_alias": a.key_alias,
        "user_id": a.user_id,
        "spend": a.spend_nanos as f64 / 1e9,
        "soft_budget": a.soft_budget_nanos as f64 / 1e9,
    });
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        at: chrono::Utc::now(),
        actor_id: Some("tollgate".to_string()),
        actor_role: None,
        action: "key.soft_budget_crossed".to_string(),
        object_type: "key".to_string(),
        object_id: Some(a.token.clone()),
        before: None,
        after: Some(detail),
    };
    if let Err(e) = store.insert_audit(&entry).await {
        tracing::error!(error = %e, "soft-budget alert not written to the audit log");
    }
    let Some(mailer) = mailer else {
        return;
    };
    let Some(user_id) = &a.user_id else {
        return;
    };
    let email = match store.get_user(user_id).await {
        Ok(Some(u)) => u.user_email,
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "soft-budget alert: the key's user could not be read");
            None
        }
    };
    let Some(email) = email else {
        return;
    };
    let name = a.key_alias.as_deref().unwrap_or("(no alias)");
    let text = format!(
        "Your Tollgate key {name} has spent {} and reached its soft budget of {}.\n\n\
         Calls keep working until the key's hard budget, if it has one. \
         Check your usage in the Tollgate UI.\n",
        usd(a.spend_nanos),
        usd(a.soft_budget_nanos)
    );
    if let Err(e) = mailer.send_notice(&email, SOFT_BUDGET_SUBJECT, &text).await {
        tracing::error!(error = %e, "soft-budget alert email not sent");
    }
}
