//! The numbers and durations a client sets on keys, users, teams and team members, checked in
//! one place. Budgets and limits are typed ([`Usd`], [`Count`]) so a request is refused while
//! its body is parsed, before a handler reads or writes anything: a request with one bad field
//! changes nothing. Every refusal is LiteLLM's 422 `validation_error` naming the field.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::de::{Deserialize, Deserializer, Error as _};
use tollgate_domain::NanoUsd;
use tollgate_proxy::ApiError;

/// Money fields: US dollars, stored as nano-USD in an `i64`.
const MONEY_FIELDS: &[&str] = &["max_budget", "soft_budget", "spend", "max_budget_in_team"];

/// Count limits: stored as `i64`; 0 is kept because the rate limiter reads it as "admit
/// nothing", as LiteLLM does.
const COUNT_FIELDS: &[&str] = &["tpm_limit", "rpm_limit", "max_parallel_requests"];

/// The largest amount whose nano-USD still fits the `i64` column (about 9.2 billion USD).
const MAX_USD_TEXT: &str = "9223372036";

/// An amount of money a client set: finite, ≥ 0, and small enough to store exactly in nano-USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usd(i64);

impl Usd {
    pub fn from_usd(usd: f64) -> Option<Usd> {
        if !usd.is_finite() || usd < 0.0 {
            return None;
        }
        // `i64::MAX as f64` rounds up to 2^63, so `<` keeps the cast below exact, not saturated.
        let nanos = (usd * 1e9).round();
        (nanos < i64::MAX as f64).then(|| Usd(NanoUsd::from_usd(usd).0))
    }

    pub fn nanos(self) -> i64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let usd = f64::deserialize(d)?;
        Usd::from_usd(usd).ok_or_else(|| D::Error::custom(money_rule()))
    }
}

/// A request, token or parallel-call limit a client set: a whole number ≥ 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(i64);

impl Count {
    pub fn new(n: i64) -> Option<Count> {
        (n >= 0).then_some(Count(n))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // i64 refuses fractions, strings and anything past i64::MAX instead of truncating.
        let n = i64::deserialize(d)?;
        Count::new(n).ok_or_else(|| D::Error::custom(count_rule()))
    }
}

impl schemars::JsonSchema for Usd {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Usd".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "number",
            "minimum": 0,
            "maximum": 9_223_372_036_u64,
            "description": "US dollars",
        })
    }
}

impl schemars::JsonSchema for Count {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Count".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "minimum": 0, "format": "int64"})
    }
}

fn money_rule() -> String {
    format!("must be a number of US dollars from 0 to {MAX_USD_TEXT}")
}

fn count_rule() -> String {
    format!(
        "must be a whole number from 0 (admits nothing) to {}",
        i64::MAX
    )
}

fn refusal(field: &str, rule: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
        format!("{field} {rule}."),
    )
    .with_param(field)
}

/// The refusal for a field of the request body that could not be read, `path` as serde names
/// it (`max_budget`, `members_with_roles[0].role`). Budgets and limits get their rule whatever
/// went wrong (negative, fractional, too large, a string); other fields keep serde's detail.
pub fn body_error(path: Option<&str>, detail: &str) -> ApiError {
    let Some(path) = path else {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            format!("Invalid request body: {detail}"),
        );
    };
    let field = path.rsplit('.').next().unwrap_or(path);
    if MONEY_FIELDS.contains(&field) {
        return refusal(path, &money_rule());
    }
    if COUNT_FIELDS.contains(&field) {
        return refusal(path, &count_rule());
    }
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
        format!("Invalid request body: {path}: {detail}"),
    )
    .with_param(path)
}

/// A `budget_duration` LiteLLM would accept ("30s", "1h", "1d", "7d", "30d", "1mo"), and the
/// first reset of its period.
pub fn budget_duration(d: &str) -> Result<DateTime<Utc>, ApiError> {
    tollgate_domain::duration::next_reset(d, Utc::now()).ok_or_else(|| {
        ApiError::bad_request(
            "budget_duration is not a duration: use a number and a unit, like 30s, 10m, 1h, 1d, 7d, 30d or 1mo.",
        )
        .with_param("budget_duration")
    })
}

/// A key's `duration` ("30m", "24h", "7d", "1mo") as its expiry; blank means it never expires.
pub fn expiry(duration: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(d) = duration.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let refused = || {
        ApiError::bad_request("duration must look like 30m, 24h, 7d or 1mo.").with_param("duration")
    };
    let length = tollgate_domain::duration::parse_length(d).ok_or_else(refused)?;
    let length = chrono::Duration::from_std(length).map_err(|_| refused())?;
    Utc::now()
        .checked_add_signed(length)
        .map(Some)
        .ok_or_else(refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, schemars::JsonSchema)]
    struct Body {
        max_budget: Option<Usd>,
        rpm_limit: Option<Count>,
    }

    fn parse(s: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn money_is_finite_non_negative_and_fits_nano_usd() {
        assert_eq!(Usd::from_usd(0.0).map(Usd::nanos), Some(0));
        assert_eq!(Usd::from_usd(1.5).map(Usd::nanos), Some(1_500_000_000));
        assert_eq!(
            Usd::from_usd(9_223_372_036.0).map(Usd::nanos),
            Some(9_223_372_036_000_000_000)
        );
        for bad in [
            -0.01,
            -5.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e10,
            1e300,
        ] {
            assert_eq!(Usd::from_usd(bad), None, "{bad}");
        }
    }

    #[test]
    fn counts_are_non_negative() {
        assert_eq!(Count::new(0).map(Count::get), Some(0));
        assert_eq!(Count::new(i64::MAX).map(Count::get), Some(i64::MAX));
        assert_eq!(Count::new(-1), None);
        assert_eq!(Count::new(i64::MIN), None);
    }

    #[test]
    fn bodies_with_bad_numbers_do_not_parse() {
        let ok = parse(r#"{"max_budget": 2, "rpm_limit": 0}"#).unwrap();
        assert_eq!(ok.max_budget.map(Usd::nanos), Some(2_000_000_000));
        assert_eq!(ok.rpm_limit.map(Count::get), Some(0));
        let none = parse(r#"{"max_budget": null, "rpm_limit": null}"#).unwrap();
        assert!(none.max_budget.is_none() && none.rpm_limit.is_none());
        for bad in [
            r#"{"max_budget": -1, "rpm_limit": null}"#,
            r#"{"max_budget": 1e400, "rpm_limit": null}"#,
            r#"{"max_budget": "abc", "rpm_limit": null}"#,
            r#"{"max_budget": 1e20, "rpm_limit": null}"#,
            r#"{"max_budget": null, "rpm_limit": -5}"#,
            r#"{"max_budget": null, "rpm_limit": 1.5}"#,
            r#"{"max_budget": null, "rpm_limit": 9223372036854775808}"#,
            r#"{"max_budget": null, "rpm_limit": "10"}"#,
            r#"{"max_budget": null, "rpm_limit": true}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn budget_and_limit_fields_get_their_rule_and_name() {
        let e = body_error(Some("max_budget"), "invalid type: string, expected f64");
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.kind, "validation_error");
        assert_eq!(e.param.as_deref(), Some("max_budget"));
        assert!(e
            .message
            .starts_with("max_budget must be a number of US dollars"));
        let e = body_error(Some("rpm_limit"), "number out of range");
        assert_eq!(e.param.as_deref(), Some("rpm_limit"));
        assert!(e
            .message
            .starts_with("rpm_limit must be a whole number from 0"));
        let e = body_error(Some("members_with_roles[0].role"), "invalid type: integer");
        assert_eq!(e.param.as_deref(), Some("members_with_roles[0].role"));
        assert!(e
            .message
            .contains("members_with_roles[0].role: invalid type"));
        let e = body_error(None, "expected value at line 1 column 1");
        assert_eq!(e.param, None);
        assert_eq!(
            e.message,
            "Invalid request body: expected value at line 1 column 1"
        );
    }

    #[test]
    fn durations() {
        assert!(budget_duration("30d").is_ok());
        for bad in ["", "fortnight", "-1d", "0d", "1.5h"] {
            let e = budget_duration(bad).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("budget_duration"), "{bad}");
        }
        assert_eq!(expiry(None).unwrap(), None);
        assert_eq!(expiry(Some("  ")).unwrap(), None);
        assert!(expiry(Some("7d")).unwrap().is_some());
        for bad in ["-1d", "0s", "99999999999d", "soon"] {
            let e = expiry(Some(bad)).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("duration"), "{bad}");
        }
    }
}
