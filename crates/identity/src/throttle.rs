//! Login throttling: after repeated failed logins, refuse further attempts for a while, per email
//! (guessing one person's password) and per client address (trying one password on many
//! people). In memory, per instance; the time is passed in so tests control it.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed logins for one email, within `window`, that start a block.
    pub max_failures: u32,
    /// Failed logins from one address (an IPv6 /64 counts as one), within `window`, that start a
    /// block. Higher than per email because an office or a carrier NAT shares one address.
    pub max_failures_per_ip: u32,
    /// How far back failures count.
    pub window: Duration,
    /// How long a block lasts.
    pub block: Duration,
    /// Most emails, and most addresses, remembered at once; bounds memory under a flood of
    /// made-up emails or addresses.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures: 5,
            max_failures_per_ip: 20,
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
    emails: Counters<String>,
    ips: Counters<IpAddr>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(ThrottleConfig::default())
    }
}

impl LoginThrottle {
    /// Limits of 0 are read as 1 (a zero would block before any attempt could fail).
    pub fn new(mut config: ThrottleConfig) -> Self {
        config.max_failures = config.max_failures.max(1);
        config.max_failures_per_ip = config.max_failures_per_ip.max(1);
        config.max_entries = config.max_entries.max(1);
        LoginThrottle {
            config,
            state: Mutex::new(State::default()),
        }
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// `Ok` when a login attempt may proceed; otherwise how long until it may (for
    /// `Retry-After`). Check before verifying the password, so a blocked caller costs no KDF run.
    pub fn check(&self, email: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let state = self.lock();
        let block = self.config.block;
        let by_email = state.emails.retry_after(&email_key(email), now, block);
        let by_ip = state.ips.retry_after(&ip_key(ip), now, block);
        match by_email.max(by_ip) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed login (wrong password, or an unknown email) against both the email and
    /// the address.
    pub fn record_failure(&self, email: &str, ip: IpAddr, now: Instant) {
        let mut state = self.lock();
        let c = &self.config;
        state.emails.fail(email_key(email), now, c, c.max_failures);
        state.ips.fail(ip_key(ip), now, c, c.max_failures_per_ip);
    }

    /// Forgets the email's failures after a successful login. A block still running is kept
    /// (a success should not happen while blocked, since `check` comes first), and the address's
    /// count is kept: one good login must not reset a spray from that address.
    pub fn record_success(&self, email: &str, now: Instant) {
        let mut state = self.lock();
        let key = email_key(email);
        let block = self.config.block;
        if state.emails.retry_after(&key, now, block).is_none() {
            state.emails.map.remove(&key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The counters stay consistent even if a holder panicked; keep throttling.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// One key per client: IPv4-mapped IPv6 as the IPv4 address, and IPv6 by its /64, since one
/// host usually holds a whole /64 and could otherwise rotate addresses freely.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: Instant,
    /// Durations are measured from stored instants, never added to them, so no configured
    /// duration can overflow an `Instant`.
    blocked_at: Option<Instant>,
    last_seen: Instant,
}

impl Entry {
    fn block_left(&self, now: Instant, block: Duration) -> Option<Duration> {
        let since = now.saturating_duration_since(self.blocked_at?);
        block.checked_sub(since).filter(|d| !d.is_zero())
    }

    /// Nothing left to remember: no running block and no failure still inside the window.
    fn is_stale(&self, now: Instant, config: &ThrottleConfig) -> bool {
        self.block_left(now, config.block).is_none()
            && now.saturating_duration_since(self.window_start) >= config.window
    }
}

#[derive(Debug)]
struct Counters<K> {
    map: HashMap<K, Entry>,
}

impl<K> Default for Counters<K> {
    fn default() -> Self {
        Counters {
            map: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Counters<K> {
    fn retry_after(&self, key: &K, now: Instant, block: Duration) -> Option<Duration> {
        self.map.get(key)?.block_left(now, block)
    }

    fn fail(&mut self, key: K, now: Instant, config: &ThrottleConfig, limit: u32) {
        if !self.map.contains_key(&key) && self.map.len() >= config.max_entries {
            self.make_room(now, config);
        }
        let entry = self.map.entry(key).or_insert(Entry {
            failures: 0,
            window_start: now,
            blocked_at: None,
            last_seen: now,
        });
        entry.last_seen = now;
        if entry.block_left(now, config.block).is_some() {
            // Already blocked; attempts should not reach here, and must not extend the block
            // (that would let anyone keep a person locked out indefinitely at no cost).
            return;
        }
        if entry.blocked_at.take().is_some()
            || now.saturating_duration_since(entry.window_start) >= config.window
        {
            entry.failures = 0;
            entry.window_start = now;
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures >= limit {
            entry.blocked_at = Some(now);
            entry.failures = 0;
            entry.window_start = now;
        }
    }

    /// Drops everything stale; if the map is still full, drops the least recently seen entry,
    /// preferring ones not currently blocked so a flood of new keys cannot lift a block.
    fn make_room(&mut self, now: Instant, config: &ThrottleConfig) {
        self.map.retain(|_, e| !e.is_stale(now, config));
        if self.map.len() < config.max_entries {
            return;
        }
        let victim = self
            .map
            .iter()
            .min_by_key(|(_, e)| (e.block_left(now, config.block).is_some(), e.last_seen))
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            self.map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn throttle() -> LoginThrottle {
        LoginThrottle::default()
    }

    #[test]
    fn blocks_an_email_after_five_failures_for_fifteen_minutes() {
        let t = throttle();
        let t0 = Instant::now();
        let addr = ip("192.0.2.1");
        for i in 0..4 {
            t.record_failure("alice@example.com", addr, t0 + Duration::from_secs(i));
            assert_eq!(
                t.check("alice@example.com", addr, t0 + Duration::from_secs(i)),
                Ok(())
            );
        }
        let t5 = t0 + Duration::from_secs(10);
        t.record_failure("alice@example.com", addr, t5);
        assert_eq!(t.check("alice@example.com", addr, t5), Err(15 * MIN));
        assert_eq!(
            t.check("alice@example.com", ip("198.51.100.7"), t5 + 14 * MIN),
            Err(MIN)
        );
        // Others are unaffected.
        assert_eq!(t.check("bob@example.com", ip("198.51.100.7"), t5), Ok(()));
        // The block ends, and a fresh count starts.
        let after = t5 + 15 * MIN;
        assert_eq!(t.check("alice@example.com", addr, after), Ok(()));
        t.record_failure("alice@example.com", addr, after);
        assert_eq!(t.check("alice@example.com", addr, after), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = throttle();
        let t0 = Instant::now();
        for i in 0..4 {
            t.record_failure("a@example.com", ip("192.0.2.1"), t0 + i * MIN);
        }
        // The window restarts once 15 minutes have passed since it opened.
        let later = t0 + 16 * MIN;
        t.record_failure("a@example.com", ip("192.0.2.1"), later);
        assert_eq!(t.check("a@example.com", ip("192.0.2.1"), later), Ok(()));
    }

    #[test]
    fn emails_are_matched_case_insensitively() {
        let t = throttle();
        let now = Instant::now();
        for (i, email) in [
            "Alice@Example.com",
            " alice@example.com",
            "ALICE@EXAMPLE.COM",
        ]
        .into_iter()
        .cycle()
        .take(5)
        .enumerate()
        {
            t.record_failure(email, ip(&format!("192.0.2.{i}")), now);
        }
        assert!(t
            .check("alice@example.com", ip("203.0.113.9"), now)
            .is_err());
    }

    #[test]
    fn success_clears_the_email_count_but_not_the_address_count() {
        let t = throttle();
        let now = Instant::now();
        let addr = ip("192.0.2.1");
        for _ in 0..4 {
            t.record_failure("a@example.com", addr, now);
        }
        t.record_success("A@example.com", now);
        for _ in 0..4 {
            t.record_failure("a@example.com", addr, now);
        }
        assert_eq!(t.check("a@example.com", addr, now), Ok(()));
        // The address has 8 failures on record; 12 more block it.
        for i in 0..12 {
            t.record_failure(&format!("u{i}@example.com"), addr, now);
        }
        assert_eq!(t.check("someone@example.com", addr, now), Err(15 * MIN));
    }

    #[test]
    fn success_does_not_lift_a_running_block() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..5 {
            t.record_failure("a@example.com", ip("192.0.2.1"), now);
        }
        t.record_success("a@example.com", now + MIN);
        assert_eq!(
            t.check("a@example.com", ip("192.0.2.2"), now + MIN),
            Err(14 * MIN)
        );
    }

    #[test]
    fn failures_while_blocked_do_not_extend_the_block() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..5 {
            t.record_failure("a@example.com", ip("192.0.2.1"), now);
        }
        for i in 1..15 {
            t.record_failure("a@example.com", ip("192.0.2.1"), now + i * MIN);
        }
        assert_eq!(
            t.check("a@example.com", ip("192.0.2.1"), now + 15 * MIN),
            Ok(())
        );
    }

    #[test]
    fn one_address_spraying_many_emails_is_blocked() {
        let t = throttle();
        let now = Instant::now();
        let attacker = ip("203.0.113.5");
        for i in 0..20 {
            let email = format!("user{i}@example.com");
            assert_eq!(t.check(&email, attacker, now), Ok(()));
            t.record_failure(&email, attacker, now);
        }
        assert_eq!(t.check("victim@example.com", attacker, now), Err(15 * MIN));
        assert_eq!(
            t.check("victim@example.com", ip("203.0.113.6"), now),
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
            t.record_failure(&format!("u{i}@example.com"), addr, now);
        }
        assert!(t.check("x@example.com", ip("2001:db8::abcd"), now).is_err());
        assert_eq!(t.check("x@example.com", ip("2001:db8:0:1::1"), now), Ok(()));
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
            t.record_failure("victim@example.com", ip("192.0.2.1"), now);
        }
        for i in 0..1_000u32 {
            let addr = IpAddr::V4((0x0a00_0000 + i).into());
            t.record_failure(&format!("junk{i}@example.com"), addr, now + MIN);
        }
        {
            let state = t.lock();
            assert!(state.emails.map.len() <= 10);
            assert!(state.ips.map.len() <= 10);
        }
        assert!(t
            .check("victim@example.com", ip("192.0.2.99"), now + MIN)
            .is_err());
    }

    #[test]
    fn stale_entries_are_purged_before_evicting_live_ones() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_entries: 3,
            ..ThrottleConfig::default()
        });
        let now = Instant::now();
        let addr = ip("192.0.2.1");
        t.record_failure("old1@example.com", addr, now);
        t.record_failure("old2@example.com", addr, now);
        t.record_failure("live@example.com", addr, now + 10 * MIN);
        // old1/old2 are outside the window by now: they go, live stays.
        t.record_failure("new@example.com", addr, now + 20 * MIN);
        let state = t.lock();
        assert!(state.emails.map.contains_key("live@example.com"));
        assert!(state.emails.map.contains_key("new@example.com"));
        assert_eq!(state.emails.map.len(), 2);
    }

    #[test]
    fn zero_limits_are_read_as_one() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_failures: 0,
            max_failures_per_ip: 0,
            max_entries: 0,
            ..ThrottleConfig::default()
        });
        let now = Instant::now();
        assert_eq!(t.check("a@example.com", ip("192.0.2.1"), now), Ok(()));
        t.record_failure("a@example.com", ip("192.0.2.1"), now);
        assert!(t.check("a@example.com", ip("192.0.2.1"), now).is_err());
        assert_eq!(t.config().max_failures, 1);
    }
}
