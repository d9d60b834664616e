//! Typed reads from a LiteLLM row fetched as JSON (`to_jsonb(t)`), so a column a given LiteLLM
//! version lacks reads as absent instead of failing the query.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

pub struct Row(pub Map<String, Value>);

impl Row {
    pub fn from_json(v: Value) -> Option<Row> {
        match v {
            Value::Object(m) => Some(Row(m)),
            _ => None,
        }
    }

    fn get(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    /// A non-empty string.
    pub fn text(&self, k: &str) -> Option<String> {
        self.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    pub fn float(&self, k: &str) -> Option<f64> {
        self.get(k).and_then(Value::as_f64)
    }

    pub fn int(&self, k: &str) -> Option<i64> {
        let v = self.get(k)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
    }

    pub fn flag(&self, k: &str) -> bool {
        self.get(k).and_then(Value::as_bool).unwrap_or(false)
    }

    pub fn strings(&self, k: &str) -> Vec<String> {
        match self.get(k) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn json(&self, k: &str) -> Value {
        self.get(k).cloned().unwrap_or(Value::Null)
    }

    /// A JSON object column; anything else reads as an empty object.
    pub fn object(&self, k: &str) -> Map<String, Value> {
        match self.get(k) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    }

    /// Prisma's `DateTime` is `timestamp(3)` without a zone, written in UTC.
    pub fn time(&self, k: &str) -> Option<DateTime<Utc>> {
        let s = self.get(k)?.as_str()?;
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(t.with_timezone(&Utc));
        }
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc())
    }

    /// Whether a column holds something beyond its empty default (`[]`, `{}`, null, false, 0).
    pub fn is_set(&self, k: &str) -> bool {
        match self.get(k) {
            None => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(m)) => !m.is_empty(),
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(Value::Null) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_prisma_timestamps_and_missing_columns() {
        let r = Row::from_json(json!({
            "expires": "2030-01-02T03:04:05.678",
            "zoned": "2030-01-02T03:04:05+00:00",
            "spend": 1.5, "tpm_limit": 10, "models": ["a", "b"], "metadata": {},
            "blocked": null, "alias": ""
        }))
        .unwrap();
        assert_eq!(
            r.time("expires").unwrap().to_rfc3339(),
            "2030-01-02T03:04:05.678+00:00"
        );
        assert!(r.time("zoned").is_some());
        assert_eq!(r.float("spend"), Some(1.5));
        assert_eq!(r.int("tpm_limit"), Some(10));
        assert_eq!(r.strings("models"), vec!["a", "b"]);
        assert!(!r.flag("blocked"));
        assert_eq!(r.text("alias"), None);
        assert_eq!(r.text("absent"), None);
        assert!(!r.is_set("metadata"));
        assert!(r.is_set("models"));
    }
}
