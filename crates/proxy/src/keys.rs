//! Virtual keys on the hot path: the key's hash is looked up in an in-process cache, filled from
//! the store on first use. Management changes evict the entry, so an update, block, delete or
//! regenerate takes effect on the next call; a short TTL bounds staleness when another instance
//! made the change.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tollgate_domain::model_name::wildcard_match;
use tollgate_store::{Store, StoreError};

/// What a call needs to know about its key and the key's owner.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub token: String,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub models: Vec<String>,
    pub blocked: bool,
    pub expires: Option<DateTime<Utc>>,
    pub owner_role: Option<String>,
    pub owner_models: Vec<String>,
    fetched: Instant,
}

impl KeyInfo {
    /// LiteLLM's rule: the key's own list, else its owner's, else every model; a list may hold
    /// wildcard patterns and `all-proxy-models`.
    pub fn may_use(&self, model: &str) -> bool {
        let list = if !self.models.is_empty() {
            &self.models
        } else {
            &self.owner_models
        };
        list.is_empty()
            || list
                .iter()
                .any(|m| m == "all-proxy-models" || wildcard_match(m, model).is_some())
    }
}

/// Most entries kept; past it the cache starts over (keys are few; this only bounds a flood).
const MAX_ENTRIES: usize = 100_000;

pub struct KeyCache {
    map: RwLock<HashMap<String, Arc<KeyInfo>>>,
    ttl: Duration,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            map: RwLock::new(HashMap::new()),
            ttl: Duration::from_secs(30),
        }
    }
}

impl KeyCache {
    pub fn evict(&self, token: &str) {
        if let Ok(mut m) = self.map.write() {
            m.remove(token);
        }
    }

    /// Forgets every key (a user or team change may touch many).
    pub fn clear(&self) {
        if let Ok(mut m) = self.map.write() {
            m.clear();
        }
    }

    pub async fn get(
        &self,
        store: &Store,
        token: &str,
    ) -> Result<Option<Arc<KeyInfo>>, StoreError> {
        if let Ok(m) = self.map.read() {
            if let Some(k) = m.get(token) {
                if k.fetched.elapsed() < self.ttl {
                    return Ok(Some(k.clone()));
                }
            }
        }
        let Some(row) = store.get_key(token).await? else {
            return Ok(None);
        };
        let owner = match &row.user_id {
            Some(uid) => store.get_user(uid).await?,
            None => None,
        };
        let info = Arc::new(KeyInfo {
            token: row.token,
            user_id: row.user_id,
            team_id: row.team_id,
            models: row.models,
            blocked: row.blocked,
            expires: row.expires,
            owner_role: owner.as_ref().map(|u| u.user_role.clone()),
            owner_models: owner.map(|u| u.models).unwrap_or_default(),
            fetched: Instant::now(),
        });
        if let Ok(mut m) = self.map.write() {
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
            m.insert(info.token.clone(), info.clone());
        }
        Ok(Some(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(models: &[&str], owner: &[&str]) -> KeyInfo {
        KeyInfo {
            token: "t".into(),
            user_id: None,
            team_id: None,
            models: models.iter().map(|s| s.to_string()).collect(),
            blocked: false,
            expires: None,
            owner_role: None,
            owner_models: owner.iter().map(|s| s.to_string()).collect(),
            fetched: Instant::now(),
        }
    }

    #[test]
    fn model_rules() {
        assert!(info(&[], &[]).may_use("anything"));
        assert!(info(&["gpt-4o"], &[]).may_use("gpt-4o"));
        assert!(!info(&["gpt-4o"], &[]).may_use("claude"));
        assert!(info(&["openai/*"], &[]).may_use("openai/gpt-4.1"));
        assert!(
            !info(&[], &["gpt-4o"]).may_use("claude"),
            "inherits the owner's list"
        );
        assert!(info(&["all-proxy-models"], &["gpt-4o"]).may_use("claude"));
    }
}
