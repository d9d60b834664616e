//! A spend record's times as SQLite stores them: sqlx wrote a `DateTime` as RFC 3339 text
//! through chrono's formatter (~900 instructions and an allocation per time, two or three times a
//! record); SQLite's spend thread writes the same text by hand. PostgreSQL gets the time itself.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// `t.to_rfc3339_opts(SecondsFormat::AutoSi, false)`, which is what sqlx stores and what the
/// spend views compare and order as text: `2026-12-06T18:00:00.123456+00:00`, the fraction as
/// 3, 6 or 9 digits as the time needs, none when whole. Years outside 0–9999 and leap seconds
/// are left to chrono. Into `out` (cleared first): the spend thread reuses one buffer per time
/// column across a batch.
pub(super) fn rfc3339_into(t: &DateTime<Utc>, out: &mut String) {
    out.clear();
    let utc = t.naive_utc();
    let (date, time) = (utc.date(), utc.time());
    let nanos = time.nanosecond();
    let year = match u32::try_from(date.year()) {
        Ok(year) if year <= 9999 && nanos < 1_000_000_000 => year,
        _ => return out.push_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, false)),
    };
    let secs = time.num_seconds_from_midnight();
    let mut b = *b"0000-00-00T00:00:00.000000000";
    digits(&mut b[0..4], year);
    digits(&mut b[5..7], date.month());
    digits(&mut b[8..10], date.day());
    digits(&mut b[11..13], secs / 3600);
    digits(&mut b[14..16], secs / 60 % 60);
    digits(&mut b[17..19], secs % 60);
    let end = if nanos == 0 {
        19
    } else if nanos.is_multiple_of(1_000_000) {
        digits(&mut b[20..23], nanos / 1_000_000);
        23
    } else if nanos.is_multiple_of(1_000) {
        digits(&mut b[20..26], nanos / 1_000);
        26
    } else {
        digits(&mut b[20..29], nanos);
        29
    };
    // Always ASCII digits and punctuation; chrono stays the answer should that ever not hold.
    match std::str::from_utf8(&b[..end]) {
        Ok(text) => {
            out.push_str(text);
            out.push_str("+00:00");
        }
        Err(_) => out.push_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, false)),
    }
}

/// `n`'s last `dst.len()` decimal digits, zero-padded, into `dst`.
fn digits(dst: &mut [u8], mut n: u32) {
    for c in dst.iter_mut().rev() {
        *c = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc3339(t: &DateTime<Utc>) -> String {
        let mut s = String::new();
        rfc3339_into(t, &mut s);
        s
    }
    use proptest::prelude::*;

    fn at(micros_or_nanos: i64, nanos: bool) -> DateTime<Utc> {
        if nanos {
            DateTime::from_timestamp_nanos(micros_or_nanos)
        } else {
            DateTime::from_timestamp_micros(micros_or_nanos).unwrap()
        }
    }

    #[test]
    fn each_fraction_width_reads_as_chronos() {
        for (t, text) in [
            (
                at(1_796_580_000_000_000, false),
                "2026-12-06T18:00:00+00:00",
            ),
            (
                at(1_796_580_000_123_000, false),
                "2026-12-06T18:00:00.123+00:00",
            ),
            (
                at(1_796_580_000_000_042, false),
                "2026-12-06T18:00:00.000042+00:00",
            ),
            (
                at(1_796_580_000_000_000_007, true),
                "2026-12-06T18:00:00.000000007+00:00",
            ),
            (at(0, false), "1970-01-01T00:00:00+00:00"),
        ] {
            assert_eq!(rfc3339(&t), text);
            assert_eq!(rfc3339(&t), t.to_rfc3339_opts(SecondsFormat::AutoSi, false));
        }
    }

    #[test]
    fn far_years_are_left_to_chrono() {
        let t = DateTime::from_timestamp(300_000_000_000, 0).unwrap();
        assert_eq!(rfc3339(&t), t.to_rfc3339_opts(SecondsFormat::AutoSi, false));
    }

    proptest! {
        #[test]
        fn any_time_reads_as_chronos(secs in -62_135_596_800i64..253_402_300_799, nanos in 0u32..1_000_000_000, round in 0usize..4) {
            // Whole seconds, milliseconds and microseconds as often as arbitrary nanoseconds.
            let nanos = match round { 0 => 0, 1 => nanos / 1_000_000 * 1_000_000, 2 => nanos / 1_000 * 1_000, _ => nanos };
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            prop_assert_eq!(rfc3339(&t), t.to_rfc3339_opts(SecondsFormat::AutoSi, false));
            // A reused buffer holds this time only, whatever it held before.
            let mut reused = String::from("2026-12-06T18:00:00.123456789+00:00 and more");
            rfc3339_into(&t, &mut reused);
            prop_assert_eq!(reused, t.to_rfc3339_opts(SecondsFormat::AutoSi, false));
        }
    }
}
