//! Redis round trips as `/metrics` shows them: how many, how many failed, and their total time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug, Default)]
pub struct RedisMetrics {
    calls: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
}

impl RedisMetrics {
    pub(crate) fn observe(&self, started: Instant, ok: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
        self.micros.fetch_add(us, Ordering::Relaxed);
    }

    /// Prometheus text: a summary of round-trip time and an error counter.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let calls = self.calls.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let secs = self.micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP tollgate_redis_round_trip_seconds Time of Redis round trips (rate limits, budgets, pings).\n\
             # TYPE tollgate_redis_round_trip_seconds summary\n\
             tollgate_redis_round_trip_seconds_sum {secs}\n\
             tollgate_redis_round_trip_seconds_count {calls}\n\
             # HELP tollgate_redis_errors_total Redis round trips that failed or timed out.\n\
             # TYPE tollgate_redis_errors_total counter\n\
             tollgate_redis_errors_total {errors}"
        );
    }
}
