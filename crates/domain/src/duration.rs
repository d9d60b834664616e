//! LiteLLM's duration strings ("30s", "10m", "1h", "1d", "7d", "30d", "1mo"), read one way for
//! all their uses: as a length of time (a key's `duration`, a session's lifetime) and as a budget
//! period (`budget_duration`) with the next time a budget resets. Like LiteLLM, resets snap to
//! calendar boundaries (UTC here): hours to the top of the hour, days to midnight, 7 days to
//! Monday, 30 days and months to the 1st.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};

/// A duration string split into its count and unit: "30d" → (30, "d").
fn split(s: &str) -> Option<(u64, &str)> {
    let s = s.trim();
    let at = s.find(|c: char| !c.is_ascii_digit())?;
    let (count, unit) = s.split_at(at);
    Some((count.parse().ok()?, unit))
}

/// The longest length accepted: a date computed that far from now must not overflow.
const MAX_LENGTH_SECS: u64 = 1_000 * 366 * 86_400;

/// A duration as a length of time, months counted as 30 days ("30s", "10m", "24h", "7d", "2w",
/// "1mo"). `None` for anything else, for zero, and for more than 1,000 years.
pub fn parse_length(s: &str) -> Option<std::time::Duration> {
    let (count, unit) = split(s)?;
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "mo" => 30 * 86_400,
        _ => return None,
    };
    let secs = count
        .checked_mul(unit_secs)
        .filter(|secs| (1..=MAX_LENGTH_SECS).contains(secs))?;
    Some(std::time::Duration::from_secs(secs))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    Seconds(u32),
    Minutes(u32),
    Hours(u32),
    Days(u32),
    Months(u32),
}

impl BudgetPeriod {
    /// Parses LiteLLM's duration strings. `None` for anything else (zero included).
    pub fn parse(s: &str) -> Option<BudgetPeriod> {
        let (count, unit) = split(s)?;
        let n = u32::try_from(count)
            .ok()
            .filter(|n| *n > 0 && *n <= 10_000)?;
        Some(match unit {
            "s" => BudgetPeriod::Seconds(n),
            "m" | "min" => BudgetPeriod::Minutes(n),
            "h" => BudgetPeriod::Hours(n),
            "d" => BudgetPeriod::Days(n),
            "w" => BudgetPeriod::Days(n.checked_mul(7)?),
            "mo" => BudgetPeriod::Months(n),
            _ => return None,
        })
    }

    /// The first reset strictly after `now`.
    pub fn next_reset(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            BudgetPeriod::Seconds(n) => now + Duration::seconds(n.into()),
            BudgetPeriod::Minutes(n) => now + Duration::minutes(n.into()),
            BudgetPeriod::Hours(n) => {
                let top = now
                    .with_minute(0)
                    .and_then(|t| t.with_second(0))
                    .and_then(|t| t.with_nanosecond(0))
                    .unwrap_or(now);
                top + Duration::hours(n.into())
            }
            BudgetPeriod::Days(7) => {
                let midnight = midnight(now);
                let to_monday = 7 - i64::from(midnight.weekday().num_days_from_monday());
                midnight + Duration::days(to_monday)
            }
            BudgetPeriod::Days(30) | BudgetPeriod::Days(31) => first_of_month_after(now, 1),
            BudgetPeriod::Days(n) => midnight(now) + Duration::days(n.into()),
            BudgetPeriod::Months(n) => first_of_month_after(now, n),
        }
    }
}

fn midnight(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn first_of_month_after(t: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    let total = t.year() * 12 + t.month0() as i32 + months as i32;
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| Utc.from_utc_datetime(&d))
        .unwrap_or(t + Duration::days(30))
}

/// The next reset for a stored `budget_duration`, if it is one.
pub fn next_reset(budget_duration: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    BudgetPeriod::parse(budget_duration).map(|p| p.next_reset(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_litellm_durations() {
        assert_eq!(BudgetPeriod::parse("30s"), Some(BudgetPeriod::Seconds(30)));
        assert_eq!(BudgetPeriod::parse("1h"), Some(BudgetPeriod::Hours(1)));
        assert_eq!(BudgetPeriod::parse("7d"), Some(BudgetPeriod::Days(7)));
        assert_eq!(BudgetPeriod::parse("1mo"), Some(BudgetPeriod::Months(1)));
        for bad in ["", "d", "0d", "1y", "-1d", "1.5h", "99999999d"] {
            assert_eq!(BudgetPeriod::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn lengths() {
        use std::time::Duration as Std;
        assert_eq!(parse_length("24h"), Some(Std::from_secs(86_400)));
        assert_eq!(parse_length("30m"), Some(Std::from_secs(1_800)));
        assert_eq!(parse_length(" 2w "), Some(Std::from_secs(14 * 86_400)));
        assert_eq!(parse_length("1mo"), Some(Std::from_secs(30 * 86_400)));
        assert_eq!(parse_length("86400s"), Some(Std::from_secs(86_400)));
        for bad in ["", "h", "0s", "5y", "1min", "-1d", "1.5h"] {
            assert_eq!(parse_length(bad), None, "{bad}");
        }
        // Far enough out to overflow a date (or the multiplication) is refused, not a panic.
        assert_eq!(parse_length("99999999999d"), None);
        assert_eq!(parse_length("99999999999999999999s"), None);
    }

    #[test]
    fn snaps_to_calendar_boundaries() {
        let now = t("2026-11-27T16:47:43Z"); // a Friday
        assert_eq!(next_reset("1h", now), Some(t("2026-11-27T17:00:00Z")));
        assert_eq!(next_reset("1d", now), Some(t("2026-11-28T00:00:00Z")));
        assert_eq!(next_reset("7d", now), Some(t("2026-11-30T00:00:00Z")));
        assert_eq!(next_reset("30d", now), Some(t("2026-12-01T00:00:00Z")));
        assert_eq!(
            next_reset("1mo", t("2026-12-15T00:00:00Z")),
            Some(t("2027-01-01T00:00:00Z"))
        );
        assert_eq!(next_reset("30s", now), Some(t("2026-11-27T16:48:13Z")));
        // A Monday at midnight resets the next Monday, not now.
        let monday = t("2026-11-30T00:00:00Z");
        assert_eq!(next_reset("7d", monday), Some(t("2026-12-07T00:00:00Z")));
    }
}
