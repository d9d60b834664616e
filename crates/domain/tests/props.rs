//! Property tests of the parsers that read what users and upstreams write: durations and money.
//! CI runs proptest's default number of cases; `fuzz/run.sh` runs the same tests for minutes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use tollgate_domain::duration::{next_reset, parse_length, BudgetPeriod};
use tollgate_domain::money::NanoUsd;

proptest! {
    #[test]
    fn durations_never_panic(s in ".{0,40}", secs in 0i64..4_102_444_800) {
        let _ = parse_length(&s);
        let _ = BudgetPeriod::parse(&s);
        let now = Utc.timestamp_opt(secs, 0).unwrap();
        if let Some(next) = next_reset(&s, now) {
            prop_assert!(next > now, "{s:?} reset at {next} from {now}");
        }
    }

    #[test]
    fn well_formed_durations_mean_what_they_say(
        n in 1u64..100_000,
        (unit, secs) in prop_oneof![
            Just(("s", 1u64)), Just(("m", 60)), Just(("h", 3_600)), Just(("d", 86_400)),
            Just(("w", 604_800)), Just(("mo", 2_592_000)),
        ],
        pad in "[ \t]{0,3}",
    ) {
        let text = format!("{pad}{n}{unit}{pad}");
        let got = parse_length(&text).map(|d| d.as_secs());
        // Lengths past 1,000 years are refused (a date that far out could overflow).
        let want = Some(n * secs).filter(|s| *s <= 1_000 * 366 * 86_400);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn money_never_wraps_negative(usd in any::<f64>()) {
        let n = NanoUsd::from_usd(usd);
        if usd >= 0.0 || usd.is_nan() {
            prop_assert!(n.0 >= 0, "{usd} became {}", n.0);
        }
    }

    #[test]
    // Up to $1,000,000: far past any budget, and within what an f64 holds to the nano.
    fn money_round_trips_to_the_nano(nanos in 0i64..1_000_000_000_000_000i64 / 1_000) {
        prop_assert_eq!(NanoUsd::from_usd(NanoUsd(nanos).to_usd()).0, nanos);
    }
}
