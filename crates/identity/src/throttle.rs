//! Login throttling, in memory, per instance; the time is passed in so tests control it.
//!
//! Three counts, each over a sliding `window` of failed logins:
//! - per account and address: a few failures block that pair for a while (guessing one
//!   person's password from one place);
//! - per address (an IPv6 /64 counts as one): more failures block the address (trying a
//!   password on many people);
//! - per account alone, across addresses: past a few failures, each further attempt must wait
//!   a delay that doubles with every failure, up to a cap. A delay rather than a block, so
//!   nobody can lock a person out of their account, only slow guessing to a trickle.
//!
//! An attempt is counted when it begins ([`LoginThrottle::begin`]), in the same lock as the
//! check, so parallel attempts cannot all pass the check before any failure is recorded.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The wait suggested when a limit is reached only by attempts still being checked: they end
/// within a KDF run, well under a second.
const IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed logins for one account from one address, within `window`, that start a block of
    /// that pair.
    pub max_failures: u32,
    /// Failed logins from one address (an IPv6 /64 counts as one), within `window`, that start a
    /// block. Higher than per account because an office or a carrier NAT shares one address.
    pub max_failures_per_ip: u32,
    /// Failed logins for one account, from anywhere, before each further attempt is delayed.
    pub account_free_failures: u32,
    /// The delay after the first failure past `account_free_failures`; it doubles with each
    /// further failure.
    pub account_delay: Duration,
    /// The longest per-account delay.
    pub account_max_delay: Duration,
    /// How far back failures count.
    pub window: Duration,
    /// How long a block lasts.
    pub block: Duration,
    /// Most entries of each kind (pairs, addresses, accounts) remembered at once; bounds memory
    /// under a flood of made-up emails or addresses.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures: 5,
            max_failures_per_ip: 20,
            account_free_failures: 5,
            account_delay: Duration::from_secs(1),
            account_max_delay: Duration::from_secs(60),
            window: Duration::from_secs(15 * 60),
            block: Duration::from_secs(15 * 60),
            max_entries: 100_000,
        }
    }
}

#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    pairs: Bounded<(String, IpAddr), Strict>,
    ips: Bounded<IpAddr, Strict>,
    accounts: Bounded<String, Delayed>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(ThrottleConfig::default())
    }
}

/// How a begun attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    /// The password was never checked (the KDF was busy, the store was down): counts nothing.
    Abandoned,
}

impl LoginThrottle {
    /// Limits of 0 are read as 1 (a zero would refuse before any attempt could fail).
    pub fn new(mut config: ThrottleConfig) -> Self {
        config.max_failures = config.max_failures.max(1);
        config.max_failures_per_ip = config.max_failures_per_ip.max(1);
        config.account_free_failures = config.account_free_failures.max(1);
        config.account_max_delay = config.account_max_delay.max(config.account_delay);
        config.max_entries = config.max_entries.max(1);
        LoginThrottle {
            config,
            state: Mutex::new(State::default()),
        }
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Starts a login attempt: `Err` with how long to wait (for `Retry-After`) when a limit is
    /// reached, else an [`Attempt`] that already counts against every limit until it ends.
    /// Call before verifying the password, so a refused caller costs no KDF run. End the attempt
    /// with [`Attempt::succeeded`], [`Attempt::failed`] or [`Attempt::abandoned`]; one dropped
    /// unended (say, the client hung up mid-check) counts as failed.
    pub fn begin(&self, email: &str, ip: IpAddr, now: Instant) -> Result<Attempt<'_>, Duration> {
        let account = email_key(email);
        let ip = ip_key(ip);
        let pair = (account.clone(), ip);
        let c = &self.config;
        let mut state = self.lock();
        let refusals = [
            state
                .pairs
                .get(&pair)
                .and_then(|e| e.refusal(now, c, c.max_failures)),
            state
                .ips
                .get(&ip)
                .and_then(|e| e.refusal(now, c, c.max_failures_per_ip)),
            state.accounts.get(&account).and_then(|e| e.refusal(now, c)),
        ];
        if let Some(wait) = refusals.into_iter().flatten().max() {
            return Err(wait);
        }
        state.pairs.get_or_insert(pair, now, c).begin(now);
        state.ips.get_or_insert(ip, now, c).begin(now);
        state
            .accounts
            .get_or_insert(account.clone(), now, c)
            .begin(now);
        Ok(Attempt {
            throttle: self,
            account,
            ip,
            begun: now,
            open: true,
        })
    }

    fn end(&self, account: &str, ip: IpAddr, outcome: Outcome, now: Instant) {
        let c = &self.config;
        let mut state = self.lock();
        let pair = (account.to_string(), ip);
        if let Some(e) = state.pairs.get_mut(&pair) {
            e.end();
        }
        if let Some(e) = state.ips.get_mut(&ip) {
            e.end();
        }
        if let Some(e) = state.accounts.get_mut(account) {
            e.end();
        }
        match outcome {
            Outcome::Failed => {
                state
                    .pairs
                    .get_or_insert(pair, now, c)
                    .fail(now, c, c.max_failures);
                state
                    .ips
                    .get_or_insert(ip, now, c)
                    .fail(now, c, c.max_failures_per_ip);
                state
                    .accounts
                    .get_or_insert(account.to_string(), now, c)
                    .fail(now, c);
            }
            // The person is there: forget the account's failures, and the pair's unless a block
            // is running (a success can only start before it). The address keeps its failures:
            // one good login must not reset a spray from there, and its attempt counts nothing.
            Outcome::Succeeded => {
                if let Some(e) = state.pairs.get_mut(&pair) {
                    e.forget_failures(now, c);
                }
                if let Some(e) = state.accounts.get_mut(account) {
                    e.forget_failures();
                }
            }
            Outcome::Abandoned => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The counters stay consistent even if a holder panicked; keep throttling.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A login attempt that counts against the limits until it ends.
#[derive(Debug)]
#[must_use = "an attempt dropped without an outcome counts as a failure"]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    account: String,
    ip: IpAddr,
    begun: Instant,
    open: bool,
}

impl Attempt<'_> {
    /// The password was right: the attempt counts nothing, and the account's failures are
    /// forgotten.
    pub fn succeeded(mut self, now: Instant) {
        self.finish(Outcome::Succeeded, now);
    }

    /// Wrong password or unknown account: a failure on every count.
    pub fn failed(mut self, now: Instant) {
        self.finish(Outcome::Failed, now);
    }

    /// The password could not be checked (the KDF was busy, the store down): counts nothing.
    pub fn abandoned(mut self) {
        let begun = self.begun;
        self.finish(Outcome::Abandoned, begun);
    }

    fn finish(&mut self, outcome: Outcome, now: Instant) {
        if std::mem::take(&mut self.open) {
            self.throttle.end(&self.account, self.ip, outcome, now);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        // Hanging up mid-check must not be a way to guess without being counted.
        let begun = self.begun;
        self.finish(Outcome::Failed, begun);
    }
}

/// How an account is named for throttling: trimmed and lower-cased.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// One key per client: IPv4-mapped IPv6 as the IPv4 address, and IPv6 by its /64, since one
/// host usually holds a whole /64 and could otherwise rotate addresses freely.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// What a bounded map needs to know of its entries to choose what to forget.
trait Remembered {
    fn new(now: Instant) -> Self;
    /// Nothing left to remember.
    fn is_stale(&self, now: Instant, config: &ThrottleConfig) -> bool;
    /// Holding someone back (a block, a delay, an attempt being checked): forgotten last.
    fn is_holding(&self, now: Instant, config: &ThrottleConfig) -> bool;
    fn last_seen(&self) -> Instant;
}

/// A count with a hard limit: `limit` failures within the window start a block.
///
/// Durations are measured from stored instants, never added to them, so no configured
/// duration can overflow an `Instant`.
#[derive(Debug, Clone, Copy)]
struct Strict {
    failures: u32,
    /// Attempts begun and not yet ended; they count toward the limit.
    in_flight: u32,
    window_start: Instant,
    blocked_at: Option<Instant>,
    last_seen: Instant,
}

impl Strict {
    fn block_left(&self, now: Instant, block: Duration) -> Option<Duration> {
        let since = now.saturating_duration_since(self.blocked_at?);
        block.checked_sub(since).filter(|d| !d.is_zero())
    }

    fn live_failures(&self, now: Instant, window: Duration) -> u32 {
        if now.saturating_duration_since(self.window_start) >= window {
            0
        } else {
            self.failures
        }
    }

    fn refusal(&self, now: Instant, config: &ThrottleConfig, limit: u32) -> Option<Duration> {
        if let Some(left) = self.block_left(now, config.block) {
            return Some(left);
        }
        let counted = self
            .live_failures(now, config.window)
            .saturating_add(self.in_flight);
        (counted >= limit).then_some(IN_FLIGHT_RETRY)
    }

    fn begin(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_add(1);
        self.last_seen = now;
    }

    fn end(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn fail(&mut self, now: Instant, config: &ThrottleConfig, limit: u32) {
        self.last_seen = now;
        if self.block_left(now, config.block).is_some() {
            // Already blocked (an attempt begun before the block ended after it); must not
            // extend the block, or anyone could keep a person locked out indefinitely.
            return;
        }
        if self.blocked_at.take().is_some()
            || now.saturating_duration_since(self.window_start) >= config.window
        {
            self.failures = 0;
            self.window_start = now;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= limit {
            self.blocked_at = Some(now);
            self.failures = 0;
            self.window_start = now;
        }
    }

    /// A running block is kept: it started before the successful attempt could have.
    fn forget_failures(&mut self, now: Instant, config: &ThrottleConfig) {
        if self.block_left(now, config.block).is_none() {
            self.failures = 0;
            self.blocked_at = None;
        }
    }
}

impl Remembered for Strict {
    fn new(now: Instant) -> Self {
        Strict {
            failures: 0,
            in_flight: 0,
            window_start: now,
            blocked_at: None,
            last_seen: now,
        }
    }

    fn is_stale(&self, now: Instant, config: &ThrottleConfig) -> bool {
        self.in_flight == 0
            && self.block_left(now, config.block).is_none()
            && self.live_failures(now, config.window) == 0
    }

    fn is_holding(&self, now: Instant, config: &ThrottleConfig) -> bool {
        self.in_flight > 0 || self.block_left(now, config.block).is_some()
    }

    fn last_seen(&self) -> Instant {
        self.last_seen
    }
}

/// A per-account count with a growing delay instead of a block: past the free failures, each
/// failure makes the next attempt wait `account_delay × 2^(extra failures)`, capped. Failures
/// are forgotten once none happened for a whole window.
#[derive(Debug, Clone, Copy)]
struct Delayed {
    failures: u32,
    in_flight: u32,
    last_failure: Option<Instant>,
    /// The wait after `last_failure`.
    delay: Duration,
    last_seen: Instant,
}

impl Delayed {
    fn live_failures(&self, now: Instant, window: Duration) -> u32 {
        match self.last_failure {
            Some(at) if now.saturating_duration_since(at) < window => self.failures,
            _ => 0,
        }
    }

    fn delay_left(&self, now: Instant) -> Option<Duration> {
        let since = now.saturating_duration_since(self.last_failure?);
        self.delay.checked_sub(since).filter(|d| !d.is_zero())
    }

    fn refusal(&self, now: Instant, config: &ThrottleConfig) -> Option<Duration> {
        let failures = self.live_failures(now, config.window);
        if failures < config.account_free_failures {
            // Attempts in flight count as failures, so a parallel burst can't exceed the
            // free allowance.
            let counted = failures.saturating_add(self.in_flight);
            return (counted >= config.account_free_failures).then_some(IN_FLIGHT_RETRY);
        }
        if let Some(left) = self.delay_left(now) {
            return Some(left);
        }
        // Past the allowance, one attempt at a time, each followed by its delay if it fails.
        (self.in_flight > 0).then_some(IN_FLIGHT_RETRY)
    }

    fn begin(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_add(1);
        self.last_seen = now;
    }

    fn end(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn fail(&mut self, now: Instant, config: &ThrottleConfig) {
        self.last_seen = now;
        self.failures = self.live_failures(now, config.window).saturating_add(1);
        self.last_failure = Some(now);
        self.delay = match self.failures.checked_sub(config.account_free_failures) {
            Some(extra) => config
                .account_delay
                .saturating_mul(1u32 << extra.min(31))
                .min(config.account_max_delay),
            None => Duration::ZERO,
        };
    }

    fn forget_failures(&mut self) {
        self.failures = 0;
        self.last_failure = None;
        self.delay = Duration::ZERO;
    }
}

impl Remembered for Delayed {
    fn new(now: Instant) -> Self {
        Delayed {
            failures: 0,
            in_flight: 0,
            last_failure: None,
            delay: Duration::ZERO,
            last_seen: now,
        }
    }

    fn is_stale(&self, now: Instant, config: &ThrottleConfig) -> bool {
        self.in_flight == 0
            && self.delay_left(now).is_none()
            && self.live_failures(now, config.window) == 0
    }

    /// Past the free failures the account is being guessed at: forgetting it would restart
    /// the delays from nothing.
    fn is_holding(&self, now: Instant, config: &ThrottleConfig) -> bool {
        self.in_flight > 0
            || self.delay_left(now).is_some()
            || self.live_failures(now, config.window) >= config.account_free_failures
    }

    fn last_seen(&self) -> Instant {
        self.last_seen
    }
}

/// A map of at most `max_entries` entries.
#[derive(Debug)]
struct Bounded<K, E> {
    map: HashMap<K, E>,
}

impl<K, E> Default for Bounded<K, E> {
    fn default() -> Self {
        Bounded {
            map: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, E: Remembered> Bounded<K, E> {
    fn get<Q>(&self, key: &Q) -> Option<&E>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut E>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key)
    }

    fn get_or_insert(&mut self, key: K, now: Instant, config: &ThrottleConfig) -> &mut E {
        if !self.map.contains_key(&key) && self.map.len() >= config.max_entries {
            self.make_room(now, config);
        }
        self.map.entry(key).or_insert_with(|| E::new(now))
    }

    /// Drops everything stale; if the map is still full, drops the least recently seen entry,
    /// preferring ones holding nobody back, so a flood of new keys cannot lift a block.
    fn make_room(&mut self, now: Instant, config: &ThrottleConfig) {
        self.map.retain(|_, e| !e.is_stale(now, config));
        if self.map.len() < config.max_entries {
            return;
        }
        let victim = self
            .map
            .iter()
            .min_by_key(|(_, e)| (e.is_holding(now, config), e.last_seen()))
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            self.map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nth_ip(i: u32) -> IpAddr {
        IpAddr::V4((0x0a00_0000 + i).into())
    }

    fn throttle() -> LoginThrottle {
        LoginThrottle::default()
    }

    fn fail(t: &LoginThrottle, email: &str, addr: IpAddr, now: Instant) {
        t.begin(email, addr, now).unwrap().failed(now);
    }

    /// Whether an attempt would be let in now, leaving no trace.
    fn check(t: &LoginThrottle, email: &str, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        t.begin(email, addr, now).map(Attempt::abandoned)
    }

    #[test]
    fn blocks_an_account_from_one_address_after_five_failures_for_fifteen_minutes() {
        let t = throttle();
        let t0 = Instant::now();
        let addr = ip("192.0.2.1");
        for i in 0..4 {
            fail(&t, "alice@example.com", addr, t0 + i * SEC);
            assert_eq!(check(&t, "alice@example.com", addr, t0 + i * SEC), Ok(()));
        }
        let t5 = t0 + 10 * SEC;
        fail(&t, "alice@example.com", addr, t5);
        assert_eq!(check(&t, "alice@example.com", addr, t5), Err(15 * MIN));
        assert_eq!(
            check(&t, "alice@example.com", addr, t5 + 14 * MIN),
            Err(MIN)
        );
        // From elsewhere the account is only delayed (1 s after the fifth failure).
        let other = ip("198.51.100.7");
        assert_eq!(check(&t, "alice@example.com", other, t5), Err(SEC));
        assert_eq!(check(&t, "alice@example.com", other, t5 + SEC), Ok(()));
        // Others are unaffected.
        assert_eq!(check(&t, "bob@example.com", addr, t5), Ok(()));
        // The block ends, and a fresh count starts.
        let after = t5 + 15 * MIN;
        assert_eq!(check(&t, "alice@example.com", addr, after), Ok(()));
        fail(&t, "alice@example.com", addr, after);
        assert_eq!(check(&t, "alice@example.com", addr, after), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = throttle();
        let t0 = Instant::now();
        let addr = ip("192.0.2.1");
        for i in 0..4 {
            fail(&t, "a@example.com", addr, t0 + i * MIN);
        }
        // The pair's window restarts once 15 minutes have passed since it opened.
        let later = t0 + 16 * MIN;
        fail(&t, "a@example.com", addr, later);
        assert_eq!(check(&t, "a@example.com", addr, later + SEC), Ok(()));
        // The account's failures lapse after a quiet window.
        let quiet = later + 15 * MIN;
        let state = t.lock();
        assert_eq!(
            state
                .accounts
                .get("a@example.com")
                .unwrap()
                .live_failures(quiet, 15 * MIN),
            0
        );
    }

    #[test]
    fn emails_are_matched_case_insensitively() {
        let t = throttle();
        let now = Instant::now();
        let variants = [
            "Alice@Example.com",
            " alice@example.com",
            "ALICE@EXAMPLE.COM",
        ];
        for email in variants.iter().cycle().take(5) {
            fail(&t, email, ip("192.0.2.1"), now);
        }
        assert_eq!(
            check(&t, "alice@example.com", ip("192.0.2.1"), now),
            Err(15 * MIN)
        );
        let t = throttle();
        for (i, email) in variants.iter().cycle().take(5).enumerate() {
            fail(&t, email, ip(&format!("192.0.2.{i}")), now);
        }
        assert_eq!(
            check(&t, "alice@example.com", ip("203.0.113.9"), now),
            Err(SEC)
        );
    }

    #[test]
    fn success_clears_the_account_counts_but_not_the_address_count() {
        let t = throttle();
        let now = Instant::now();
        let addr = ip("192.0.2.1");
        for _ in 0..4 {
            fail(&t, "a@example.com", addr, now);
        }
        t.begin("A@example.com", addr, now).unwrap().succeeded(now);
        for _ in 0..4 {
            fail(&t, "a@example.com", addr, now);
        }
        assert_eq!(check(&t, "a@example.com", addr, now), Ok(()));
        // The address has 8 failures on record; 12 more block it.
        for i in 0..12 {
            fail(&t, &format!("u{i}@example.com"), addr, now);
        }
        assert_eq!(check(&t, "someone@example.com", addr, now), Err(15 * MIN));
    }

    #[test]
    fn a_success_gives_the_address_count_back() {
        let t = throttle();
        let now = Instant::now();
        let office = ip("192.0.2.1");
        for i in 0..19 {
            fail(&t, &format!("typo{i}@example.com"), office, now);
        }
        // Many good logins from the same address: each is counted while it is checked, and
        // given back when it succeeds.
        for i in 0..50 {
            let attempt = t
                .begin(&format!("user{i}@example.com"), office, now)
                .unwrap();
            attempt.succeeded(now);
        }
        assert_eq!(t.lock().ips.get(&office).unwrap().in_flight, 0);
        assert_eq!(check(&t, "user0@example.com", office, now), Ok(()));
        // The twentieth failure still blocks.
        fail(&t, "typo@example.com", office, now);
        assert_eq!(check(&t, "user0@example.com", office, now), Err(15 * MIN));
    }

    #[test]
    fn attempts_count_before_the_password_is_checked() {
        let t = throttle();
        let now = Instant::now();
        let addr = ip("192.0.2.1");
        // Five parallel guesses for one account from one address fill its allowance while they
        // are still being checked.
        let pair: Vec<_> = (0..5)
            .map(|_| t.begin("a@example.com", addr, now).unwrap())
            .collect();
        assert_eq!(check(&t, "a@example.com", addr, now), Err(SEC));
        // Twenty from one address, across accounts, fill the address's.
        let spray: Vec<_> = (0..15)
            .map(|i| t.begin(&format!("u{i}@example.com"), addr, now).unwrap())
            .collect();
        assert_eq!(check(&t, "fresh@example.com", addr, now), Err(SEC));
        // Five for one account from five addresses fill the account's free failures.
        let spread: Vec<_> = (0..5)
            .map(|i| t.begin("b@example.com", nth_ip(i), now).unwrap())
            .collect();
        assert_eq!(check(&t, "b@example.com", nth_ip(99), now), Err(SEC));
        // When they end unchecked nothing is left counted.
        for a in pair.into_iter().chain(spray).chain(spread) {
            a.abandoned();
        }
        assert_eq!(check(&t, "a@example.com", addr, now), Ok(()));
        assert_eq!(check(&t, "b@example.com", nth_ip(99), now), Ok(()));
        // When they fail, the failures are recorded: the pair is blocked.
        let pair: Vec<_> = (0..5)
            .map(|_| t.begin("a@example.com", addr, now).unwrap())
            .collect();
        for a in pair {
            a.failed(now);
        }
        assert_eq!(check(&t, "a@example.com", addr, now), Err(15 * MIN));
    }

    #[test]
    fn an_attempt_dropped_unended_counts_as_a_failure() {
        let t = throttle();
        let now = Instant::now();
        let addr = ip("192.0.2.1");
        for _ in 0..5 {
            drop(t.begin("a@example.com", addr, now).unwrap());
        }
        assert_eq!(check(&t, "a@example.com", addr, now), Err(15 * MIN));
    }

    #[test]
    fn one_account_guessed_from_fifty_addresses_gets_a_growing_delay_not_a_lock() {
        let t = throttle();
        let t0 = Instant::now();
        let mut now = t0;
        let mut answers = Vec::new();
        // Each of 50 addresses guesses once, as soon as it may.
        for i in 0..50 {
            let addr = nth_ip(i);
            loop {
                match t.begin("victim@example.com", addr, now) {
                    Ok(a) => {
                        a.failed(now);
                        answers.push(None);
                        break;
                    }
                    Err(wait) => {
                        answers.push(Some(wait));
                        now += wait;
                    }
                }
            }
        }
        let waits: Vec<u64> = answers.iter().flatten().map(Duration::as_secs).collect();
        let mut expected = vec![1, 2, 4, 8, 16, 32];
        expected.resize(45, 60);
        assert_eq!(waits, expected, "the delay doubles from 1 s up to a minute");
        assert_eq!(answers.iter().filter(|a| a.is_none()).count(), 50);
        // 50 guesses took over 40 minutes instead of a moment.
        assert!(now - t0 > 40 * MIN);
        // The person is never locked out: once the current delay has passed they get in, and
        // that clears the account's failures.
        let home = ip("203.0.113.80");
        assert_eq!(check(&t, "victim@example.com", home, now), Err(MIN));
        let later = now + MIN;
        t.begin("victim@example.com", home, later)
            .unwrap()
            .succeeded(later);
        fail(&t, "victim@example.com", nth_ip(0), later);
        assert_eq!(check(&t, "victim@example.com", home, later), Ok(()));
    }

    #[test]
    fn parallel_guesses_for_one_account_past_the_allowance_go_one_at_a_time() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..5 {
            fail(&t, "v@example.com", nth_ip(i), now);
        }
        let later = now + SEC;
        let first = t.begin("v@example.com", nth_ip(10), later).unwrap();
        assert_eq!(check(&t, "v@example.com", nth_ip(11), later), Err(SEC));
        first.failed(later);
        assert_eq!(check(&t, "v@example.com", nth_ip(11), later), Err(2 * SEC));
    }

    #[test]
    fn success_does_not_lift_a_running_block() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..5 {
            fail(&t, "a@example.com", ip("192.0.2.1"), now);
        }
        t.begin("a@example.com", ip("192.0.2.2"), now + MIN)
            .unwrap()
            .succeeded(now + MIN);
        assert_eq!(
            check(&t, "a@example.com", ip("192.0.2.1"), now + MIN),
            Err(14 * MIN)
        );
    }

    #[test]
    fn attempts_while_blocked_are_refused_and_do_not_extend_the_block() {
        let t = throttle();
        let now = Instant::now();
        let addr = ip("192.0.2.1");
        for _ in 0..5 {
            fail(&t, "a@example.com", addr, now);
        }
        for i in 1..15 {
            assert!(t.begin("a@example.com", addr, now + i * MIN).is_err());
        }
        assert_eq!(check(&t, "a@example.com", addr, now + 15 * MIN), Ok(()));
        // A failure arriving during a block (from an attempt begun before it) adds nothing.
        let mut entry = Strict::new(now);
        let c = ThrottleConfig::default();
        for _ in 0..5 {
            entry.fail(now, &c, 5);
        }
        entry.fail(now + 10 * MIN, &c, 5);
        assert_eq!(entry.block_left(now + 10 * MIN, c.block), Some(5 * MIN));
    }

    #[test]
    fn one_address_spraying_many_emails_is_blocked() {
        let t = throttle();
        let now = Instant::now();
        let attacker = ip("203.0.113.5");
        for i in 0..20 {
            let email = format!("user{i}@example.com");
            assert_eq!(check(&t, &email, attacker, now), Ok(()));
            fail(&t, &email, attacker, now);
        }
        assert_eq!(
            check(&t, "victim@example.com", attacker, now),
            Err(15 * MIN)
        );
        assert_eq!(
            check(&t, "victim@example.com", ip("203.0.113.6"), now),
            Ok(())
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(ip_key(ip("2001:db8::1")), ip_key(ip("2001:db8::ffff:2")));
        assert_ne!(ip_key(ip("2001:db8::1")), ip_key(ip("2001:db8:0:1::1")));
        assert_eq!(ip_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_ne!(ip_key(ip("192.0.2.1")), ip_key(ip("192.0.2.2")));

        let t = throttle();
        let now = Instant::now();
        for i in 0..20u16 {
            let addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i + 1));
            fail(&t, &format!("u{i}@example.com"), addr, now);
        }
        assert!(check(&t, "x@example.com", ip("2001:db8::abcd"), now).is_err());
        assert_eq!(
            check(&t, "x@example.com", ip("2001:db8:0:1::1"), now),
            Ok(())
        );
    }

    #[test]
    fn memory_is_bounded_and_blocks_survive_a_flood() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_entries: 10,
            max_failures_per_ip: 1_000,
            ..ThrottleConfig::default()
        });
        let now = Instant::now();
        for _ in 0..5 {
            fail(&t, "victim@example.com", ip("192.0.2.1"), now);
        }
        for i in 0..1_000u32 {
            fail(&t, &format!("junk{i}@example.com"), nth_ip(i), now + MIN);
        }
        {
            let state = t.lock();
            assert!(state.pairs.map.len() <= 10);
            assert!(state.ips.map.len() <= 10);
            assert!(state.accounts.map.len() <= 10);
            // The account being guessed at keeps its failures.
            assert!(state.accounts.map.contains_key("victim@example.com"));
        }
        assert!(check(&t, "victim@example.com", ip("192.0.2.1"), now + MIN).is_err());
    }

    #[test]
    fn stale_entries_are_purged_before_evicting_live_ones() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_entries: 3,
            ..ThrottleConfig::default()
        });
        let now = Instant::now();
        let addr = ip("192.0.2.1");
        fail(&t, "old1@example.com", addr, now);
        fail(&t, "old2@example.com", addr, now);
        fail(&t, "live@example.com", addr, now + 10 * MIN);
        // old1/old2 are outside the window by now: they go, live stays.
        fail(&t, "new@example.com", addr, now + 20 * MIN);
        let state = t.lock();
        for map in [
            state.accounts.map.keys().cloned().collect::<Vec<_>>(),
            state.pairs.map.keys().map(|k| k.0.clone()).collect(),
        ] {
            let mut keys = map;
            keys.sort();
            assert_eq!(keys, ["live@example.com", "new@example.com"]);
        }
    }

    #[test]
    fn zero_limits_are_read_as_one() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_failures: 0,
            max_failures_per_ip: 0,
            account_free_failures: 0,
            max_entries: 0,
            ..ThrottleConfig::default()
        });
        let now = Instant::now();
        assert_eq!(check(&t, "a@example.com", ip("192.0.2.1"), now), Ok(()));
        fail(&t, "a@example.com", ip("192.0.2.1"), now);
        assert!(check(&t, "a@example.com", ip("192.0.2.1"), now).is_err());
        assert_eq!(t.config().max_failures, 1);
        assert_eq!(t.config().account_free_failures, 1);
    }
}
