//! A record's timestamps as whole microseconds since the Unix epoch in its serialized form (the
//! spend journal): formatting RFC 3339 text was about 5 % of a call's instructions. Reading
//! also takes the RFC 3339 text that journals written before kept.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(t.timestamp_micros())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_any(InstantVisitor)
}

struct InstantVisitor;

impl Visitor<'_> for InstantVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("microseconds since the Unix epoch, or an RFC 3339 time")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        DateTime::from_timestamp_micros(v).ok_or_else(|| E::custom("time out of range"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let v = i64::try_from(v).map_err(|_| E::custom("time out of range"))?;
        self.visit_i64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(E::custom)
    }
}

/// The same for an optional time (`null` when absent).
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.timestamp_micros()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        d.deserialize_option(OptionVisitor)
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("null, microseconds since the Unix epoch, or an RFC 3339 time")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use chrono::TimeZone;

    use crate::spend::SpendStatus;
    use crate::SpendRecord;

    /// A record with every time set (also the spend journal line's tests start from it).
    pub(in crate::spend) fn record() -> SpendRecord {
        let t = Utc.with_ymd_and_hms(2026, 12, 5, 7, 30, 1).unwrap()
            + chrono::Duration::microseconds(123_456);
        SpendRecord {
            request_id: "r1".into(),
            call_type: "chat_completion".into(),
            api_key: "k".into(),
            user_id: None,
            team_id: None,
            end_user: None,
            model: "m".into(),
            model_group: "m".into(),
            model_id: None,
            custom_llm_provider: None,
            spend_nanos: 1,
            priced: true,
            prompt_tokens: 1,
            completion_tokens: 1,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
            usage_estimated: false,
            stream: false,
            status: SpendStatus::Success,
            http_status: 200,
            error_type: None,
            attempts: 1,
            start_time: t,
            end_time: t + chrono::Duration::milliseconds(5),
            completion_start_time: Some(t + chrono::Duration::milliseconds(1)),
            request_duration_ms: 5,
            ttft_ms: Some(1),
            metadata: serde_json::json!({}),
        }
    }

    use super::*;

    #[test]
    fn times_round_trip_as_microseconds_and_old_text_still_reads() {
        let r = record();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(&format!(
            "\"start_time\":{}",
            r.start_time.timestamp_micros()
        )));
        assert_eq!(serde_json::from_str::<SpendRecord>(&text).unwrap(), r);
        // A journal line written before: RFC 3339 text.
        let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
        old["start_time"] = serde_json::json!("2026-12-05T07:30:01.123456Z");
        old["end_time"] = serde_json::json!("2026-12-05T07:30:01.128456+00:00");
        old["completion_start_time"] = serde_json::json!("2026-12-05T07:30:01.124456Z");
        assert_eq!(
            serde_json::from_value::<SpendRecord>(old.clone()).unwrap(),
            r
        );
        old["completion_start_time"] = serde_json::Value::Null;
        let none = serde_json::from_value::<SpendRecord>(old).unwrap();
        assert_eq!(none.completion_start_time, None);
    }
}
