//! Virtual keys on the hot path: the key's hash is looked up in an in-process cache, filled from
//! the store on first use. Management changes evict the entry, so an update, block, delete or
//! regenerate takes effect on the next call. With several instances the evictions travel over
//! Redis to the others; the short TTL is only a safety net for a lost message.
//!
//! Calls that miss on the same key at once share one read of the store: when a busy key's entry
//! expires, every call in flight on it misses together (at c=50, about fifty reads of the same
//! rows every 30 s, spread over every pooled connection).

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tollgate_cluster::Invalidation;
use tollgate_domain::model_name::list_allows;
use tollgate_ledger::{BudgetLimit, Budgets, Owner};
use tollgate_store::{PathLimits, Store, StoreError};

use crate::limits::RateLimits;

/// What a call needs to know about its key and the key's owners. One is cached per key in use
/// (up to `MAX_ENTRIES`), so it is kept small: boxed slices instead of vectors (no spare
/// capacity, a narrower header), one list of owners with their budgets and limits beside them,
/// absent values as sentinels rather than `Option`s, and the key's and owners' ids are shared
/// `Arc<str>`s that the cache's map and the spend path point at too instead of holding copies.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub token: Arc<str>,
    pub user_id: Option<Arc<str>>,
    pub team_id: Option<Arc<str>>,
    pub models: Box<[String]>,
    /// The models the key's owner may use: the team's list for team keys, else the user's.
    pub owner_models: Box<[String]>,
    pub key_alias: Option<Box<str>>,
    /// The owners whose spend a call adds to (the key, its user, its team, the user within
    /// the team), each with the budget and rate limits LiteLLM checks for it on this key's calls.
    pub path: Box<[PathStep]>,
    /// Microseconds since 1970; `i64::MAX`: never.
    expires_micros: i64,
    /// `NO_BUDGET`: none.
    soft_budget_nanos: i64,
    /// When the entry was read from the store, on `clock_secs`' clock (4 bytes, not an
    /// `Instant`'s 16).
    fetched: u32,
    pub blocked: bool,
    pub team_blocked: bool,
    /// The owner's role is `proxy_admin_viewer`: the one role a call's checks ask about.
    pub owner_is_admin_viewer: bool,
}

/// A budget or spend that is not set.
const NO_BUDGET: i64 = i64::MIN;
/// A rate limit that is not set (a set one is at most `i64::MAX`).
const NO_LIMIT: u64 = u64::MAX;

fn stored_budget(nanos: Option<i64>) -> i64 {
    nanos.unwrap_or(NO_BUDGET)
}

fn budget_if_set(nanos: i64) -> Option<i64> {
    (nanos != NO_BUDGET).then_some(nanos)
}

fn stored_rate(n: Option<i64>) -> u64 {
    n.map_or(NO_LIMIT, |v| v.max(0).unsigned_abs())
}

fn rate_if_set(n: u64) -> Option<u64> {
    (n != NO_LIMIT).then_some(n)
}

/// An owner on a key's spend path, with what LiteLLM checks for it on this key's calls. The
/// absent ones are sentinels: 64 bytes a step rather than 104.
#[derive(Debug, Clone)]
pub struct PathStep {
    pub owner: Owner,
    /// The owner's spend in the store when the key was loaded: where a shared spend counter
    /// starts when Redis has none.
    pub spend_at_load: i64,
    max_budget_nanos: i64,
    rpm: u64,
    tpm: u64,
    max_parallel: u64,
}

impl BudgetLimit for PathStep {
    fn budget_owner(&self) -> &Owner {
        &self.owner
    }

    fn max_budget_nanos(&self) -> Option<i64> {
        budget_if_set(self.max_budget_nanos)
    }
}

impl RateLimits for PathStep {
    fn limited_owner(&self) -> &Owner {
        &self.owner
    }

    fn rpm(&self) -> Option<u64> {
        rate_if_set(self.rpm)
    }

    fn tpm(&self) -> Option<u64> {
        rate_if_set(self.tpm)
    }

    fn max_parallel(&self) -> Option<u64> {
        rate_if_set(self.max_parallel)
    }
}

/// The key cache's clock, in whole seconds (its TTL is 30 s). It starts at one day rather than
/// zero so that an entry can be dated back to before the process started (tests).
fn clock_secs() -> u32 {
    static START: OnceLock<Instant> = OnceLock::new();
    let secs = START.get_or_init(Instant::now).elapsed().as_secs() + 86_400;
    u32::try_from(secs).unwrap_or(u32::MAX)
}

impl KeyInfo {
    /// LiteLLM's rule: the key's own list narrows what its owner may use; the owner is the team
    /// for team keys, else the user; an empty list means "whatever the owner may use", and an
    /// owner with an empty list may use every model. Lists may hold wildcard patterns,
    /// `all-proxy-models`, `all-team-models` and `no-default-models`.
    pub fn may_use(&self, model: &str) -> bool {
        if !list_allows(&self.owner_models, model) {
            return false;
        }
        if self.models.is_empty() {
            return true;
        }
        if self.models.iter().any(|m| m == "all-team-models") && self.team_id.is_some() {
            return true;
        }
        list_allows(&self.models, model)
    }

    /// The owners on the key's spend path, as the budgets take them.
    pub fn path_owners(&self) -> Vec<Owner> {
        self.path.iter().map(|p| p.owner.clone()).collect()
    }

    pub fn expires(&self) -> Option<DateTime<Utc>> {
        if self.expires_micros == i64::MAX {
            return None;
        }
        // Out of chrono's range only if it was out of range when read; then it never comes.
        DateTime::from_timestamp_micros(self.expires_micros)
    }

    pub fn soft_budget_nanos(&self) -> Option<i64> {
        budget_if_set(self.soft_budget_nanos)
    }

    /// Some owner on the path has a budget (asked of two to four steps, rather than kept in a
    /// field the entry has no room for).
    pub fn has_budget(&self) -> bool {
        self.path.iter().any(|p| p.max_budget_nanos().is_some())
    }

    /// Some owner on the path has a rate limit.
    pub fn has_rate_limits(&self) -> bool {
        self.path.iter().any(|p| !p.is_unlimited())
    }

    /// Whether the entry, read at `fetched`, is still within `ttl` at `now` (`clock_secs`).
    fn fresh_at(&self, now: u32, ttl: Duration) -> bool {
        u64::from(now.saturating_sub(self.fetched)) < ttl.as_secs()
    }

    /// The alert to raise when a call moved the key's spend from `before` to `after` across
    /// its soft budget.
    pub fn soft_budget_crossing(
        &self,
        before: i64,
        after: i64,
    ) -> Option<crate::alerts::SoftBudgetCrossed> {
        let soft = self.soft_budget_nanos()?;
        (before < soft && after >= soft).then(|| crate::alerts::SoftBudgetCrossed {
            token: self.token.to_string(),
            key_alias: self.key_alias.as_deref().map(String::from),
            user_id: self.user_id.as_deref().map(String::from),
            spend_nanos: after,
            soft_budget_nanos: soft,
        })
    }
}

/// The key, its user and its team as a call meets them: spend, budget and limits.
struct PathOwner {
    owner: Owner,
    spend_nanos: i64,
    /// The budget LiteLLM checks for this owner on this key's calls.
    max_budget_nanos: Option<i64>,
    rpm: Option<i64>,
    tpm: Option<i64>,
    parallel: Option<i64>,
}

impl PathOwner {
    fn new(owner: Owner, l: &PathLimits) -> PathOwner {
        PathOwner {
            owner,
            spend_nanos: l.spend_nanos,
            max_budget_nanos: l.max_budget_nanos,
            rpm: l.rpm_limit,
            tpm: l.tpm_limit,
            parallel: l.max_parallel_requests,
        }
    }
}

/// Most entries kept; past it (with every entry still fresh) the cache starts over.
const MAX_ENTRIES: usize = 100_000;
/// Expired entries are dropped at most once per TTL, and only past this many entries.
const SWEEP_ABOVE: usize = 1_024;

/// A cache entry, found by its key's `token`: a set of these holds one pointer per key where a
/// map from token to entry held two.
#[derive(Debug, Clone)]
struct Cached(Arc<KeyInfo>);

impl std::borrow::Borrow<str> for Cached {
    fn borrow(&self) -> &str {
        &self.0.token
    }
}

// Hash and equality are the token's, as `Borrow<str>` requires.
impl std::hash::Hash for Cached {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.token.hash(state);
    }
}

impl PartialEq for Cached {
    fn eq(&self, other: &Self) -> bool {
        self.0.token == other.0.token
    }
}

impl Eq for Cached {}

struct Entries {
    map: HashSet<Cached>,
    swept: Instant,
    /// Counts evictions: a read that began before one may hold what it evicted, so its
    /// result answers the calls that waited for it but is not cached.
    generation: u64,
}

impl Entries {
    /// Keeps the cache to the keys used within the TTL (each expired entry would be read from
    /// the store again anyway), and to `MAX_ENTRIES` at most.
    fn make_room(&mut self, ttl: Duration) {
        let due = self.map.len() >= MAX_ENTRIES
            || self.map.len() > SWEEP_ABOVE && self.swept.elapsed() >= ttl;
        if !due {
            return;
        }
        self.swept = Instant::now();
        let now = clock_secs();
        self.map.retain(|k| k.0.fresh_at(now, ttl));
        if self.map.len() >= MAX_ENTRIES {
            self.map.clear();
        }
        if self.map.capacity() > 4 * self.map.len().max(SWEEP_ABOVE) {
            self.map.shrink_to_fit();
        }
    }
}

/// A read of one key from the store, shared by the calls that missed on it meanwhile. Its
/// outcome, an error included, goes to all of them: were errors not shared, the waiters would
/// each try again in turn, one store timeout after another.
type Load = tokio::sync::OnceCell<Result<Option<Arc<KeyInfo>>, Arc<StoreError>>>;

pub struct KeyCache {
    entries: RwLock<Entries>,
    /// The reads in progress, by token.
    loading: Mutex<HashMap<Box<str>, Arc<Load>>>,
    /// Keys read from the store (key cache misses, concurrent ones counted once).
    loads: AtomicU64,
    ttl: Duration,
    budgets: Arc<Budgets>,
    /// Where this instance's evictions go so the other instances make them too.
    publisher: OnceLock<mpsc::UnboundedSender<Invalidation>>,
}

impl KeyCache {
    pub fn new(budgets: Arc<Budgets>) -> KeyCache {
        KeyCache {
            entries: RwLock::new(Entries {
                map: HashSet::new(),
                swept: Instant::now(),
                generation: 0,
            }),
            loading: Mutex::new(HashMap::new()),
            loads: AtomicU64::new(0),
            ttl: Duration::from_secs(30),
            budgets,
            publisher: OnceLock::new(),
        }
    }

    /// Sends every later eviction to `tx` as well (the instances' shared invalidation bus).
    pub fn publish_to(&self, tx: mpsc::UnboundedSender<Invalidation>) {
        let _ = self.publisher.set(tx);
    }

    fn publish(&self, inv: Invalidation) {
        if let Some(tx) = self.publisher.get() {
            // A closed channel means the process is stopping; nothing is left to tell.
            let _ = tx.send(inv);
        }
    }

    /// An eviction made by another instance: applied here only.
    pub fn apply(&self, inv: Invalidation) {
        match inv {
            Invalidation::Key(token) => self.evict_here(&token),
            Invalidation::All => self.clear_here(),
        }
    }

    /// Keys cached here now.
    pub fn cached_keys(&self) -> usize {
        self.entries.read().map_or(0, |e| e.map.len())
    }

    /// Keys read from the store since the start.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    pub fn budgets(&self) -> &Arc<Budgets> {
        &self.budgets
    }

    /// Forgets a key here and on every other instance.
    pub fn evict(&self, token: &str) {
        self.evict_here(token);
        self.publish(Invalidation::Key(token.to_string()));
    }

    /// Forgets every key (a user or team change may touch many), here and everywhere.
    pub fn clear(&self) {
        self.clear_here();
        self.publish(Invalidation::All);
    }

    // Held only to look a token up, add or remove one: never across an await.
    fn reads_under_way(&self) -> MutexGuard<'_, HashMap<Box<str>, Arc<Load>>> {
        self.loading.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // A read in progress is forgotten first, so that a call arriving after the eviction starts
    // a read of its own rather than wait for one that may predate the change.
    fn evict_here(&self, token: &str) {
        self.reads_under_way().remove(token);
        if let Ok(mut e) = self.entries.write() {
            e.generation += 1;
            e.map.remove(token);
        }
    }

    fn clear_here(&self) {
        self.reads_under_way().clear();
        if let Ok(mut e) = self.entries.write() {
            e.generation += 1;
            e.map.clear();
        }
    }

    /// Reads the key and its owners from the store again, here only.
    pub async fn reload(
        &self,
        store: &Store,
        token: &str,
    ) -> Result<Option<Arc<KeyInfo>>, Arc<StoreError>> {
        self.evict_here(token);
        self.get(store, token).await
    }

    pub async fn get(
        &self,
        store: &Store,
        token: &str,
    ) -> Result<Option<Arc<KeyInfo>>, Arc<StoreError>> {
        if let Ok(e) = self.entries.read() {
            if let Some(k) = e.map.get(token) {
                if k.0.fresh_at(clock_secs(), self.ttl) {
                    return Ok(Some(k.0.clone()));
                }
            }
        }
        let load = {
            let mut loading = self.reads_under_way();
            loading.entry(token.into()).or_default().clone()
        };
        let _done = LoadDone {
            cache: self,
            token,
            load: &load,
        };
        // A waiter whose call is dropped hands the read to the next one (`OnceCell`).
        load.get_or_init(|| async { self.load(store, token).await.map_err(Arc::new) })
            .await
            .clone()
    }

    async fn load(&self, store: &Store, token: &str) -> Result<Option<Arc<KeyInfo>>, StoreError> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        let generation = self.entries.read().map_or(0, |e| e.generation);
        // Spend read from the store and what this process has not committed yet must be one
        // consistent pair: no spend batch commits while they are read.
        let guard = self.budgets.read_guard().await;
        let Some(row) = store.get_key_path(token).await? else {
            return Ok(None);
        };
        let token: Arc<str> = Arc::from(row.token);
        let user_id: Option<Arc<str>> = row.user_id.map(Arc::from);
        let team_id: Option<Arc<str>> = row.team_id.map(Arc::from);
        let (owner, team) = (row.user, row.team);
        let mut path = Vec::with_capacity(4);
        path.push(PathOwner::new(Owner::Key(token.clone()), &row.limits));
        if let (Some(u), Some(uid)) = (&owner, &user_id) {
            let mut step = PathOwner::new(Owner::User(uid.clone()), &u.limits);
            // A user's budget covers their personal keys; team keys answer to the team's.
            step.max_budget_nanos = step.max_budget_nanos.filter(|_| team_id.is_none());
            path.push(step);
        }
        if let (Some(t), Some(tid)) = (&team, &team_id) {
            path.push(PathOwner::new(Owner::Team(tid.clone()), &t.limits));
        }
        // A team key's user may have a budget within the team (`max_budget_in_team`).
        let member = row.member.filter(|m| m.max_budget_in_team_nanos.is_some());
        if let (Some(m), Some(tid), Some(uid)) = (member, &team_id, &user_id) {
            path.push(PathOwner {
                owner: Owner::member(tid, uid),
                spend_nanos: m.spend_nanos,
                max_budget_nanos: m.max_budget_in_team_nanos,
                rpm: None,
                tpm: None,
                parallel: None,
            });
        }
        // The key's own account is kept only when something reads it: its budget, or its soft
        // budget (a crossing is told from the account's spend before and after a call). Most
        // keys have neither, and an account is a map slot per cached key. The owners' accounts
        // are kept either way: one serves all of an owner's keys, and its id with it.
        let key_needs_account =
            row.limits.max_budget_nanos.is_some() || row.soft_budget_nanos.is_some();
        for (i, p) in path.iter_mut().enumerate() {
            if i > 0 || key_needs_account {
                p.owner = self.budgets.load(&p.owner, p.spend_nanos);
            }
        }
        drop(guard);
        // The ids as the budget accounts hold them, so that a user's or team's many keys share
        // one copy.
        let (mut token, mut user_id, mut team_id) = (token, user_id, team_id);
        for p in &path {
            match &p.owner {
                Owner::Key(id) => token = id.clone(),
                Owner::User(id) => user_id = Some(id.clone()),
                Owner::Team(id) => team_id = Some(id.clone()),
                Owner::Member(_) => {}
            }
        }
        let path: Box<[PathStep]> = path
            .iter()
            .map(|p| PathStep {
                owner: p.owner.clone(),
                spend_at_load: p.spend_nanos,
                max_budget_nanos: stored_budget(p.max_budget_nanos),
                rpm: stored_rate(p.rpm),
                tpm: stored_rate(p.tpm),
                max_parallel: stored_rate(p.parallel),
            })
            .collect();
        // A team key whose team is gone must not fall back to "every model, no budget".
        let team_blocked = team_id.is_some() && team.as_ref().is_none_or(|t| t.blocked);
        let owner_is_admin_viewer = owner
            .as_ref()
            .is_some_and(|u| u.user_role == "proxy_admin_viewer");
        let owner_models = if team_id.is_some() {
            team.map(|t| t.models)
        } else {
            owner.map(|u| u.models)
        }
        .unwrap_or_default()
        .into_boxed_slice();
        let info = Arc::new(KeyInfo {
            token,
            user_id,
            team_id,
            models: row.models.into_boxed_slice(),
            owner_models,
            key_alias: row.key_alias.map(String::into_boxed_str),
            path,
            expires_micros: row.expires.map_or(i64::MAX, |t| t.timestamp_micros()),
            soft_budget_nanos: stored_budget(row.soft_budget_nanos),
            fetched: clock_secs(),
            blocked: row.blocked,
            team_blocked,
            owner_is_admin_viewer,
        });
        if let Ok(mut e) = self.entries.write() {
            if e.generation == generation {
                e.make_room(self.ttl);
                e.map.replace(Cached(info.clone()));
            }
        }
        Ok(Some(info))
    }
}

/// Forgets a finished (or abandoned) read, unless an eviction already replaced it.
struct LoadDone<'a> {
    cache: &'a KeyCache,
    token: &'a str,
    load: &'a Arc<Load>,
}

impl Drop for LoadDone<'_> {
    fn drop(&mut self) {
        let mut loading = self.cache.reads_under_way();
        if loading
            .get(self.token)
            .is_some_and(|l| Arc::ptr_eq(l, self.load))
        {
            loading.remove(self.token);
            // A burst of distinct misses (many keys, or many made-up ones) leaves no big table.
            if loading.capacity() > 4 * loading.len().max(256) {
                loading.shrink_to_fit();
            }
        }
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
            owner_models: owner.iter().map(|s| s.to_string()).collect(),
            key_alias: None,
            path: Box::default(),
            expires_micros: i64::MAX,
            soft_budget_nanos: NO_BUDGET,
            fetched: clock_secs(),
            blocked: false,
            team_blocked: false,
            owner_is_admin_viewer: false,
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
        assert!(
            !info(&["all-proxy-models"], &["gpt-4o"]).may_use("claude"),
            "a key's list only narrows its owner's"
        );
        assert!(
            !info(&["claude"], &["gpt-4o"]).may_use("claude"),
            "a key cannot name a model its owner may not use"
        );
        assert!(!info(&[], &["no-default-models"]).may_use("gpt-4o"));
        let mut team_key = info(&["all-team-models"], &["gpt-4o"]);
        team_key.team_id = Some("t".into());
        team_key.owner_models = Box::new(["claude".to_string()]);
        assert!(
            team_key.may_use("claude"),
            "team keys answer to the team's list"
        );
        assert!(!team_key.may_use("gpt-4o"));
    }

    #[tokio::test]
    async fn cached_keys_share_their_owners_ids_instead_of_copying_them() {
        use tollgate_store::{NewKey, NewUser};
        let store = Store::open(Some("sqlite::memory:")).await.unwrap();
        store
            .create_user(&NewUser::new("u1", "proxy_admin_viewer"))
            .await
            .unwrap();
        for t in ["k1", "k2"] {
            let mut k = NewKey::new(t, t);
            k.user_id = Some("u1".into());
            k.rpm_limit = Some(10);
            store.create_key(&k).await.unwrap();
        }
        let cache = KeyCache::new(Budgets::new());
        let a = cache.get(&store, "k1").await.unwrap().unwrap();
        let b = cache.get(&store, "k2").await.unwrap().unwrap();
        let (ua, ub) = (a.user_id.clone().unwrap(), b.user_id.clone().unwrap());
        assert_eq!(&*ua, "u1");
        assert!(
            Arc::ptr_eq(&ua, &ub),
            "one copy of the user's id for both keys"
        );
        assert!(
            matches!(&a.path[..], [PathStep { owner: Owner::Key(k), .. }, PathStep { owner: Owner::User(u), .. }]
            if Arc::ptr_eq(k, &a.token) && Arc::ptr_eq(u, &ua))
        );
        assert!(a.has_rate_limits() && !a.has_budget());
        assert_eq!(
            (a.path[0].rpm(), a.path[0].tpm(), a.path[1].rpm()),
            (Some(10), None, None)
        );
        assert!(a.owner_is_admin_viewer);
        let budgets = cache.budgets();
        assert_eq!(
            (budgets.accounts(), budgets.spend(&Owner::User(ua.clone()))),
            (1, Some(0)),
            "keys without a budget or soft budget keep no account of their own; their user does"
        );
        // A key read again (its entry evicted) still shares the user's id.
        let a2 = cache.reload(&store, "k1").await.unwrap().unwrap();
        assert!(Arc::ptr_eq(a2.user_id.as_ref().unwrap(), &ua));
        assert_eq!(cache.cached_keys(), 2);
    }

    #[tokio::test]
    async fn a_key_keeps_an_account_of_its_own_only_for_a_budget_or_soft_budget() {
        use tollgate_store::NewKey;
        let store = Store::open(Some("sqlite::memory:")).await.unwrap();
        let mut plain = NewKey::new("plain", "plain");
        plain.rpm_limit = Some(10);
        let mut capped = NewKey::new("capped", "capped");
        capped.max_budget_nanos = Some(1_000);
        let mut soft = NewKey::new("soft", "soft");
        soft.soft_budget_nanos = Some(1_000);
        for k in [&plain, &capped, &soft] {
            store.create_key(k).await.unwrap();
        }
        let cache = KeyCache::new(Budgets::new());
        for t in ["plain", "capped", "soft"] {
            cache.get(&store, t).await.unwrap().unwrap();
        }
        let spend = |t: &str| cache.budgets().spend(&Owner::Key(Arc::from(t)));
        assert_eq!(
            (spend("plain"), spend("capped"), spend("soft")),
            (None, Some(0), Some(0))
        );
    }

    async fn store_with_key(token: &str) -> Store {
        let store = Store::open(Some("sqlite::memory:")).await.unwrap();
        store
            .create_key(&tollgate_store::NewKey::new(token, token))
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn calls_that_miss_on_one_key_at_once_share_one_read() {
        let store = store_with_key("k").await;
        let cache = Arc::new(KeyCache::new(Budgets::new()));
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (cache, store) = (cache.clone(), store.clone());
            calls.spawn(async move { cache.get(&store, "k").await.unwrap().unwrap() });
        }
        let infos = calls.join_all().await;
        assert_eq!(cache.loads(), 1, "one read of the store for fifty calls");
        assert!(infos.iter().all(|i| Arc::ptr_eq(i, &infos[0])));
        assert!(cache.reads_under_way().is_empty(), "no read left behind");
        // A miss after that is a read of its own.
        cache.reload(&store, "k").await.unwrap().unwrap();
        assert_eq!(cache.loads(), 2);
        // A key that is not there is not cached: calls that overlap share a read, a call that
        // starts after one has ended reads again (the runtime decides how many overlap).
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (cache, store) = (cache.clone(), store.clone());
            calls.spawn(async move { cache.get(&store, "absent").await.unwrap() });
        }
        assert!(calls.join_all().await.iter().all(Option::is_none));
        let reads = cache.loads() - 2;
        assert!((1..10).contains(&reads), "{reads} reads for ten calls");
    }

    #[tokio::test]
    async fn a_read_under_way_when_its_key_is_evicted_is_neither_cached_nor_joined() {
        let store = store_with_key("k").await;
        let cache = Arc::new(KeyCache::new(Budgets::new()));
        let spawn_get = || {
            let (cache, store) = (cache.clone(), store.clone());
            tokio::spawn(async move { cache.get(&store, "k").await.unwrap().unwrap() })
        };
        // A spawned call runs until it waits for the store (this runtime has one thread).
        let early = spawn_get();
        tokio::task::yield_now().await;
        assert_eq!(cache.loads(), 1, "the read is under way");
        cache.evict("k");
        early.await.unwrap();
        assert_eq!(
            cache.cached_keys(),
            0,
            "what it read may predate the eviction"
        );

        let early = spawn_get();
        tokio::task::yield_now().await;
        cache.evict("k");
        let late = spawn_get();
        tokio::task::yield_now().await;
        assert_eq!(
            cache.loads(),
            3,
            "a call after the eviction reads the key itself"
        );
        let (early, late) = (early.await.unwrap(), late.await.unwrap());
        assert!(!Arc::ptr_eq(&early, &late));
        let cached = cache.get(&store, "k").await.unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&cached, &late),
            "the later read is the one cached"
        );
    }

    /// One entry per cached key (up to `MAX_ENTRIES`): its size is memory per key. With the
    /// `Arc`'s counts and the allocator's header it takes a 160-byte block (208 when the budgets
    /// and rate limits were lists of their own, 256 when it held an `Instant`, the team's model
    /// list and the spend at load apart), and its path of two owners a 144-byte one.
    #[test]
    fn a_cache_entry_stays_small() {
        assert!(
            std::mem::size_of::<KeyInfo>() <= 136,
            "{}",
            std::mem::size_of::<KeyInfo>()
        );
        assert!(std::mem::size_of::<PathStep>() <= 64);
        assert_eq!(std::mem::size_of::<Cached>(), 8);
    }

    #[test]
    fn absent_budgets_and_limits_read_back_as_absent() {
        let step = PathStep {
            owner: Owner::Key(Arc::from("k")),
            spend_at_load: 0,
            max_budget_nanos: stored_budget(Some(0)),
            rpm: stored_rate(Some(0)),
            tpm: stored_rate(None),
            max_parallel: stored_rate(Some(i64::MAX)),
        };
        assert_eq!(step.max_budget_nanos(), Some(0));
        assert_eq!(
            (step.rpm(), step.tpm(), step.max_parallel()),
            (Some(0), None, Some(i64::MAX.unsigned_abs()))
        );
        assert_eq!(
            stored_rate(Some(-5)),
            0,
            "a negative limit admits nothing, as before"
        );
        let mut k = info(&[], &[]);
        assert_eq!((k.expires(), k.soft_budget_nanos()), (None, None));
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        k.expires_micros = at.timestamp_micros();
        k.soft_budget_nanos = stored_budget(Some(-1));
        assert_eq!((k.expires(), k.soft_budget_nanos()), (Some(at), Some(-1)));
    }

    fn aged(token: &str, age: Duration) -> Cached {
        let mut k = info(&[], &[]);
        k.token = Arc::from(token);
        k.fetched = clock_secs() - u32::try_from(age.as_secs()).unwrap();
        Cached(Arc::new(k))
    }

    #[test]
    fn the_cache_keeps_only_fresh_keys_and_a_bounded_number() {
        let ttl = Duration::from_secs(30);
        let mut e = Entries {
            map: HashSet::new(),
            swept: Instant::now().checked_sub(ttl).unwrap(),
            generation: 0,
        };
        for i in 0..2 * SWEEP_ABOVE {
            let age = if i % 2 == 0 { ttl * 2 } else { Duration::ZERO };
            e.map.insert(aged(&format!("k{i}"), age));
        }
        e.make_room(ttl);
        assert_eq!(e.map.len(), SWEEP_ABOVE, "the expired half is gone");
        // Swept once per TTL at most.
        e.map.insert(aged("stale", ttl * 2));
        e.make_room(ttl);
        assert!(e.map.contains("stale"));
        // At the cap with every entry fresh, the cache starts over.
        for i in 0..MAX_ENTRIES {
            e.map.insert(aged(&format!("f{i}"), Duration::ZERO));
        }
        e.make_room(ttl);
        assert!(e.map.is_empty());
    }
}
