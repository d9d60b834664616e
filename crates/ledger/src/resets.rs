//! The budget-period job: resets due budgets in the store and in this process's accounts
//! together, under the spend writer's locks, so a batch committed meanwhile is counted in
//! exactly one period.

use std::sync::Arc;
use std::time::Duration;

use tollgate_store::{BudgetOwnerKind, BudgetReset, Store, StoreError};

use crate::budgets::{Budgets, Owner};

/// One pass: returns what was reset.
pub async fn reset_due(store: &Store, budgets: &Budgets) -> Result<Vec<BudgetReset>, StoreError> {
    let _guard = budgets.exclusive_guard().await;
    let done = store.reset_due_budgets(chrono::Utc::now()).await?;
    for r in &done {
        budgets.reset(&owner_of(r));
    }
    Ok(done)
}

/// Every key's and team's spend back to 0 (`/global/spend/reset`), in the store and in this
/// process's accounts under the same locks as a period's end; returns the owners reset,
/// those loaded here included (their spend may not have reached the store yet), for the shared
/// counters to forget.
pub async fn reset_all_keys_and_teams(
    store: &Store,
    budgets: &Budgets,
) -> Result<Vec<Owner>, StoreError> {
    let _guard = budgets.exclusive_guard().await;
    let (keys, teams) = store.reset_key_and_team_spend().await?;
    let mut owners: std::collections::HashSet<Owner> = keys
        .iter()
        .map(|k| Owner::Key(Arc::from(k.as_str())))
        .chain(teams.iter().map(|t| Owner::Team(Arc::from(t.as_str()))))
        .collect();
    owners.extend(budgets.loaded_keys_and_teams());
    for o in &owners {
        budgets.reset(o);
    }
    Ok(owners.into_iter().collect())
}

fn owner_of(r: &BudgetReset) -> Owner {
    let id: Arc<str> = Arc::from(r.id.as_str());
    match r.kind {
        BudgetOwnerKind::Key => Owner::Key(id),
        BudgetOwnerKind::User => Owner::User(id),
        BudgetOwnerKind::Team => Owner::Team(id),
    }
}

/// Runs [`reset_due`] every `every` until the process ends; `on_reset` hears which owners'
/// spend this instance reset (another instance's pass never resets the same row twice).
pub fn spawn_reset_job(
    store: Store,
    budgets: Arc<Budgets>,
    every: Duration,
    on_reset: impl Fn(Vec<Owner>) + Send + 'static,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match reset_due(&store, &budgets).await {
                Ok(done) if !done.is_empty() => {
                    tracing::info!(budgets = done.len(), "budget periods ended; spend reset");
                    on_reset(done.iter().map(owner_of).collect());
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "budget reset pass failed; retrying later"),
            }
        }
    });
}
