//! Wall-clock helpers for tests of per-minute limits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Waits for the next wall-clock minute when fewer than `margin_secs` seconds are left in this
/// one, so that a per-minute count started now is not cut by a minute boundary mid-test.
pub async fn away_from_minute_edge(margin_secs: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let left = 60 - now % 60;
    if left < margin_secs {
        tokio::time::sleep(Duration::from_secs(left + 1)).await;
    }
}
