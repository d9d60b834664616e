//! Per-key, per-user and per-team rate limits: requests and tokens per minute (fixed windows of
//! one wall-clock minute, as LiteLLM's limiter) and requests in flight. Counters live in this
//! process; with several instances each enforces the limit on its own traffic.

use foldhash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_ledger::Owner;

/// The limits one owner puts on a call, as the limiter reads them. A caller keeps them where it
/// likes (a key keeps them on its spend path, beside each owner's budget); an owner with none
/// is passed over.
pub trait RateLimits {
    fn limited_owner(&self) -> &Owner;
    fn rpm(&self) -> Option<u64>;
    fn tpm(&self) -> Option<u64>;
    fn max_parallel(&self) -> Option<u64>;

    fn is_unlimited(&self) -> bool {
        self.rpm().is_none() && self.tpm().is_none() && self.max_parallel().is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
    Parallel,
}

/// A refused call: which owner's limit, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    pub owner: Owner,
    pub kind: LimitKind,
    pub limit: u64,
    pub retry_after_secs: u64,
    /// Unix time at which the window resets.
    pub resets_at: u64,
}

impl RateLimited {
    /// A refusal at `now` (Unix seconds): per-minute limits reset at the next wall-clock minute;
    /// a parallel limit may be retried in a second.
    fn at(owner: Owner, kind: LimitKind, limit: u64, now: u64) -> RateLimited {
        let resets_at = (now / 60 + 1) * 60;
        RateLimited {
            owner,
            kind,
            limit,
            retry_after_secs: if kind == LimitKind::Parallel {
                1
            } else {
                (resets_at - now).max(1)
            },
            resets_at,
        }
    }

    pub fn now(owner: Owner, kind: LimitKind, limit: u64) -> RateLimited {
        RateLimited::at(owner, kind, limit, now_secs())
    }

    /// LiteLLM's v3 limiter message.
    pub fn message(&self) -> String {
        let kind = match self.kind {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::Parallel => "max_parallel_requests",
        };
        let at = chrono::DateTime::from_timestamp(self.resets_at as i64, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        // The key is named by kind only: its hash must not reach a client-facing body.
        format!(
            "Rate limit exceeded for {}. Limit type: {kind}. Current limit: {}, Remaining: 0. Limit resets at: {at}",
            descriptor(&self.owner),
            self.limit
        )
    }
}

/// LiteLLM's descriptor names for the header and message.
fn descriptor(o: &Owner) -> &'static str {
    match o {
        Owner::Key(_) => "api_key",
        Owner::User(_) => "user",
        Owner::Team(_) => "team",
        Owner::Member(_) => "team-member",
    }
}

/// One owner's counts. Held per owner in use (every key with a limit), so narrow: requests in a
/// minute and calls in flight fit 32 bits (they saturate), the minute too (minutes since 1970).
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    tokens: u64,
    minute: u32,
    requests: u32,
    in_flight: u32,
}

fn minute_stamp(minute: u64) -> u32 {
    u32::try_from(minute).unwrap_or(u32::MAX)
}

impl Counters {
    fn roll(&mut self, minute: u64) {
        let minute = minute_stamp(minute);
        if self.minute != minute {
            self.minute = minute;
            self.requests = 0;
            self.tokens = 0;
        }
    }
}

#[derive(Debug, Default)]
pub struct RateLimiter {
    counters: Mutex<HashMap<Owner, Counters>>,
    /// The minute of the last pass dropping owners with nothing counted this minute.
    pruned_minute: AtomicU64,
}

/// Remaining allowance after admission, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remaining {
    pub owner: Owner,
    pub requests: Option<(u64, u64)>,
    pub tokens: Option<(u64, u64)>,
}

const MAX_OWNERS: usize = 200_000;
/// Past this many owners, those with nothing counted this minute and no call in flight are
/// dropped once a minute: the table holds the owners in use, not every key ever used.
const PRUNE_ABOVE: usize = 1_024;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl RateLimiter {
    pub fn new() -> Arc<RateLimiter> {
        Arc::new(RateLimiter::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Owner, Counters>> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a call if every limit has room, counting it against all of them at once.
    pub fn admit<L: RateLimits>(self: &Arc<Self>, limits: &[L]) -> Result<Admission, RateLimited> {
        self.admit_at(limits, now_secs())
    }

    fn admit_at<L: RateLimits>(
        self: &Arc<Self>,
        limits: &[L],
        now: u64,
    ) -> Result<Admission, RateLimited> {
        let most = limits.len();
        let limits = || limits.iter().filter(|l| !l.is_unlimited());
        let minute = now / 60;
        let mut map = self.lock();
        let prune_due =
            map.len() > PRUNE_ABOVE && self.pruned_minute.swap(minute, Ordering::Relaxed) != minute;
        if prune_due || map.len() >= MAX_OWNERS {
            let stamp = minute_stamp(minute);
            map.retain(|_, c| c.in_flight > 0 || c.minute == stamp);
        }
        for l in limits() {
            let owner = l.limited_owner();
            let mut c = map.get(owner).copied().unwrap_or_default();
            c.roll(minute);
            let refuse = |kind, limit| RateLimited::at(owner.clone(), kind, limit, now);
            if let Some(p) = l.max_parallel() {
                if u64::from(c.in_flight) >= p {
                    return Err(refuse(LimitKind::Parallel, p));
                }
            }
            if let Some(r) = l.rpm() {
                if u64::from(c.requests) >= r {
                    return Err(refuse(LimitKind::Requests, r));
                }
            }
            if let Some(t) = l.tpm() {
                if c.tokens >= t {
                    return Err(refuse(LimitKind::Tokens, t));
                }
            }
        }
        let mut remaining = Vec::with_capacity(most);
        for l in limits() {
            let c = map.entry(l.limited_owner().clone()).or_default();
            c.roll(minute);
            c.requests = c.requests.saturating_add(1);
            c.in_flight = c.in_flight.saturating_add(1);
            remaining.push(Remaining {
                owner: l.limited_owner().clone(),
                requests: l
                    .rpm()
                    .map(|r| (r, r.saturating_sub(u64::from(c.requests)))),
                tokens: l.tpm().map(|t| (t, t.saturating_sub(c.tokens))),
            });
        }
        drop(map);
        Ok(Admission {
            limiter: self.clone(),
            owners: remaining.iter().map(|r| r.owner.clone()).collect(),
            remaining,
        })
    }

    #[cfg(test)]
    fn in_flight(&self, o: &Owner) -> u64 {
        self.lock().get(o).map_or(0, |c| u64::from(c.in_flight))
    }
}

/// A call counted against its limits; dropping it ends the call's "in flight".
#[derive(Debug)]
pub struct Admission {
    limiter: Arc<RateLimiter>,
    owners: Vec<Owner>,
    remaining: Vec<Remaining>,
}

impl Admission {
    /// The tokens the call used count against this minute's token limits.
    pub fn add_tokens(&self, tokens: u64) {
        if tokens == 0 || self.owners.is_empty() {
            return;
        }
        let minute = now_secs() / 60;
        let mut map = self.limiter.lock();
        for o in &self.owners {
            if let Some(c) = map.get_mut(o) {
                c.roll(minute);
                c.tokens = c.tokens.saturating_add(tokens);
            }
        }
    }

    pub fn remaining(&self) -> &[Remaining] {
        &self.remaining
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.owners.is_empty() {
            return;
        }
        let mut map = self.limiter.lock();
        for o in &self.owners {
            if let Some(c) = map.get_mut(o) {
                c.in_flight = c.in_flight.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits one owner puts on a call, written out.
    struct RateLimit {
        owner: Owner,
        rpm: Option<u64>,
        tpm: Option<u64>,
        max_parallel: Option<u64>,
    }

    impl RateLimits for RateLimit {
        fn limited_owner(&self) -> &Owner {
            &self.owner
        }
        fn rpm(&self) -> Option<u64> {
            self.rpm
        }
        fn tpm(&self) -> Option<u64> {
            self.tpm
        }
        fn max_parallel(&self) -> Option<u64> {
            self.max_parallel
        }
    }

    fn key() -> Owner {
        Owner::Key(Arc::from("k"))
    }

    fn lim(rpm: Option<u64>, tpm: Option<u64>, par: Option<u64>) -> Vec<RateLimit> {
        vec![RateLimit {
            owner: key(),
            rpm,
            tpm,
            max_parallel: par,
        }]
    }

    #[test]
    fn requests_per_minute_reset_with_the_window() {
        let l = RateLimiter::new();
        let t = 6_000_000; // the start of a minute
        let a = l.admit_at(&lim(Some(2), None, None), t).unwrap();
        assert_eq!(a.remaining()[0].requests, Some((2, 1)));
        let _b = l.admit_at(&lim(Some(2), None, None), t + 1).unwrap();
        let e = l.admit_at(&lim(Some(2), None, None), t + 50).unwrap_err();
        assert_eq!(e.kind, LimitKind::Requests);
        assert_eq!(e.retry_after_secs, 10);
        assert!(e.message().contains("Limit type: requests"));
        assert!(e.message().contains("api_key"));
        assert!(l.admit_at(&lim(Some(2), None, None), t + 60).is_ok());
    }

    #[test]
    fn tokens_count_after_the_call() {
        let l = RateLimiter::new();
        let secret_hash = Owner::Key(Arc::from("0123456789abcdef0123456789abcdef"));
        let a = l
            .admit(&[RateLimit {
                owner: secret_hash.clone(),
                rpm: None,
                tpm: Some(5),
                max_parallel: None,
            }])
            .unwrap();
        a.add_tokens(9);
        let e = l
            .admit(&[RateLimit {
                owner: secret_hash,
                rpm: None,
                tpm: Some(5),
                max_parallel: None,
            }])
            .unwrap_err();
        assert!(
            !e.message().contains("0123456789abcdef"),
            "the key hash stays out of errors"
        );
        let a = l.admit(&lim(None, Some(100), None)).unwrap();
        a.add_tokens(100);
        let e = l.admit(&lim(None, Some(100), None)).unwrap_err();
        assert_eq!(e.kind, LimitKind::Tokens);
    }

    #[test]
    fn owners_without_limits_are_passed_over() {
        let l = RateLimiter::new();
        let path = [
            RateLimit {
                owner: key(),
                rpm: Some(5),
                tpm: None,
                max_parallel: None,
            },
            RateLimit {
                owner: Owner::User(Arc::from("u")),
                rpm: None,
                tpm: None,
                max_parallel: None,
            },
        ];
        let a = l.admit(&path).unwrap();
        assert_eq!(a.remaining().len(), 1);
        assert_eq!(a.remaining()[0].owner, key());
        assert_eq!(l.lock().len(), 1, "nothing is counted for the user");
    }

    #[test]
    fn parallel_limit_follows_calls_in_flight() {
        let l = RateLimiter::new();
        let a = l.admit(&lim(None, None, Some(1))).unwrap();
        assert_eq!(l.in_flight(&key()), 1);
        let e = l.admit(&lim(None, None, Some(1))).unwrap_err();
        assert_eq!(e.kind, LimitKind::Parallel);
        drop(a);
        assert_eq!(l.in_flight(&key()), 0);
        assert!(l.admit(&lim(None, None, Some(1))).is_ok());
    }

    #[test]
    fn a_refusal_counts_nothing() {
        let l = RateLimiter::new();
        let user = Owner::User(Arc::from("u"));
        let both = vec![
            RateLimit {
                owner: key(),
                rpm: Some(10),
                tpm: None,
                max_parallel: None,
            },
            RateLimit {
                owner: user.clone(),
                rpm: Some(0),
                tpm: None,
                max_parallel: None,
            },
        ];
        let e = l.admit(&both).unwrap_err();
        assert_eq!(e.owner, user);
        let a = l.admit(&lim(Some(10), None, None)).unwrap();
        assert_eq!(a.remaining()[0].requests, Some((10, 9)));
    }

    #[test]
    fn owners_idle_for_a_minute_are_dropped() {
        let l = RateLimiter::new();
        let now = 600;
        let held = l.admit_at(&lim(None, None, Some(5)), now).unwrap();
        for i in 0..PRUNE_ABOVE {
            let one = vec![RateLimit {
                owner: Owner::Key(Arc::from(format!("k{i}").as_str())),
                rpm: Some(10),
                tpm: None,
                max_parallel: None,
            }];
            drop(l.admit_at(&one, now).unwrap());
        }
        assert_eq!(l.lock().len(), PRUNE_ABOVE + 1);
        // The next minute's first call drops the idle ones; the call in flight keeps its owner.
        drop(l.admit_at(&lim(Some(10), None, None), now + 60).unwrap());
        assert_eq!(l.lock().len(), 1);
        assert_eq!(l.in_flight(&key()), 1);
        drop(held);
    }
}
