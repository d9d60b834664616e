//! Money as integer nano-USD: sums of many tiny per-token costs must not drift the way floats do.

use serde::{Deserialize, Serialize};

/// An amount of US dollars in units of 1e-9 USD.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct NanoUsd(pub i64);

const NANOS_PER_USD: f64 = 1_000_000_000.0;

impl NanoUsd {
    pub const ZERO: NanoUsd = NanoUsd(0);

    /// Rounds to the nearest nano-USD. Non-finite input is treated as zero, and huge values
    /// saturate, so a bad price can never wrap around into a negative spend.
    pub fn from_usd(usd: f64) -> Self {
        if !usd.is_finite() {
            return NanoUsd::ZERO;
        }
        let nanos = (usd * NANOS_PER_USD).round();
        if nanos >= i64::MAX as f64 {
            NanoUsd(i64::MAX)
        } else if nanos <= i64::MIN as f64 {
            NanoUsd(i64::MIN)
        } else {
            NanoUsd(nanos as i64)
        }
    }

    /// Dollars as a float, the way LiteLLM's API shows money.
    pub fn to_usd(self) -> f64 {
        self.0 as f64 / NANOS_PER_USD
    }

    pub fn saturating_add(self, other: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_add(other.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_nano() {
        assert_eq!(NanoUsd::from_usd(0.000_000_001_4), NanoUsd(1));
        assert_eq!(NanoUsd::from_usd(0.000_000_001_6), NanoUsd(2));
        assert_eq!(NanoUsd::from_usd(1.5), NanoUsd(1_500_000_000));
        assert_eq!(NanoUsd(2_500_000).to_usd(), 0.0025);
    }

    #[test]
    fn non_finite_and_huge_values_are_safe() {
        assert_eq!(NanoUsd::from_usd(f64::NAN), NanoUsd::ZERO);
        assert_eq!(NanoUsd::from_usd(f64::INFINITY), NanoUsd::ZERO);
        assert_eq!(NanoUsd::from_usd(1e30), NanoUsd(i64::MAX));
        assert_eq!(
            NanoUsd(i64::MAX).saturating_add(NanoUsd(1)),
            NanoUsd(i64::MAX)
        );
    }
}
