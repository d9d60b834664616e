//! How the pages write money, counts, latencies and prices.

use tollgate_domain::NanoUsd;

/// A budget: `$10.00` when it is whole cents, else as many digits as [`dollars`] needs.
pub(super) fn budget_money(nanos: i64) -> String {
    if nanos % 10_000_000 == 0 {
        money(NanoUsd(nanos).to_usd(), 2)
    } else {
        dollars(nanos)
    }
}

/// Money as `$0.0123`: four decimals, more when a non-zero amount would otherwise read as zero.
pub(super) fn dollars(nanos: i64) -> String {
    let usd = NanoUsd(nanos).to_usd();
    if nanos == 0 {
        "$0.00".to_string()
    } else if nanos.unsigned_abs() >= 100_000 {
        format!("${usd:.4}")
    } else {
        let s = format!("{usd:.9}");
        let t = s.trim_end_matches('0');
        let places = t.split('.').nth(1).map_or(0, str::len);
        if places < 6 {
            format!("${usd:.6}")
        } else {
            format!("${t}")
        }
    }
}

pub(super) fn money(v: f64, places: usize) -> String {
    format!("${v:.places$}")
}

/// `1,234,567`.
pub(super) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

pub(super) fn latency(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Dollars per million tokens, with enough digits for cheap models (`$0.075`, `$2.50`).
pub(super) fn per_million(cost_per_token: Option<f64>) -> Option<String> {
    let m = cost_per_token? * 1_000_000.0;
    if m == 0.0 {
        return Some("$0.00".to_string());
    }
    if m < 0.0001 {
        return Some("< $0.0001".to_string());
    }
    let s = format!("{m:.4}");
    let trimmed = s.trim_end_matches('0');
    let places = trimmed.split('.').nth(1).map_or(0, str::len);
    Some(if places < 2 {
        format!("${m:.2}")
    } else {
        format!("${trimmed}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_shows_small_spend() {
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(12_300_000), "$0.0123");
        assert_eq!(dollars(300_000), "$0.0003");
        assert_eq!(dollars(24_000), "$0.000024");
        assert_eq!(dollars(1_234), "$0.000001234");
        assert_eq!(dollars(4_170_200_000), "$4.1702");
        assert_eq!(budget_money(10_000_000_000), "$10.00");
        assert_eq!(budget_money(1_000_000), "$0.0010");
    }

    #[test]
    fn counts_and_latency() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(2_113_040), "2,113,040");
        assert_eq!(thousands(-1_234), "-1,234");
        assert_eq!(latency(340), "340 ms");
        assert_eq!(latency(1_250), "1.2 s");
    }

    #[test]
    fn prices_per_million_tokens() {
        assert_eq!(per_million(None), None);
        assert_eq!(per_million(Some(0.0)).as_deref(), Some("$0.00"));
        assert_eq!(per_million(Some(0.000_000_15)).as_deref(), Some("$0.15"));
        assert_eq!(per_million(Some(0.000_000_075)).as_deref(), Some("$0.075"));
        assert_eq!(per_million(Some(0.000_002_5)).as_deref(), Some("$2.50"));
        assert_eq!(per_million(Some(0.000_01)).as_deref(), Some("$10.00"));
    }
}
