//! How many sign-ins each address may start: a start needs no sign-in and stores a pending
//! sign-in, so one address could otherwise fill the table (expired rows go at each start; this
//! bounds the ten minutes in between). Per instance, per wall-clock minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Starts one address may make in a minute: far above what a person clicking needs.
const STARTS_PER_MINUTE: u32 = 30;
/// Addresses remembered at most; past it the counts start over (an attacker with this many
/// addresses is not slowed by a per-address count anyway).
const MAX_ADDRESSES: usize = 10_000;

#[derive(Default)]
pub struct StartLimit {
    counts: Mutex<(u64, HashMap<IpAddr, u32>)>,
}

impl StartLimit {
    /// Counts a start from `ip` in `minute`; false when the address is over its allowance.
    pub fn allow(&self, ip: IpAddr, minute: u64) -> bool {
        let Ok(mut guard) = self.counts.lock() else {
            return true;
        };
        let (at, counts) = &mut *guard;
        if *at != minute || counts.len() >= MAX_ADDRESSES {
            *at = minute;
            counts.clear();
        }
        let n = counts.entry(ip).or_default();
        *n += 1;
        *n <= STARTS_PER_MINUTE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_allowance_each_minute() {
        let limit = StartLimit::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..STARTS_PER_MINUTE {
            assert!(limit.allow(a, 1));
        }
        assert!(!limit.allow(a, 1));
        assert!(limit.allow(b, 1), "another address is not held back");
        assert!(limit.allow(a, 2), "the next minute starts over");
    }
}
