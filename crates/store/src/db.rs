//! Helpers shared by the per-concern modules: running one body against either pool, reading
//! columns the same way from both row types, and small conversions.

use std::future::Future;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{PgPool, Postgres, Row, Sqlite, SqlitePool, Transaction};

/// Runs `$body` with `$pool` bound to the store's pool and `$q` to that backend's queries.
/// The body is compiled once per backend, so it is written once but typed for each.
macro_rules! on_backend {
    ($store:expr, ($sqlite:expr, $pg:expr), |$pool:ident, $q:ident| $body:expr) => {
        match &$store.backend {
            $crate::connect::Backend::Sqlite($pool) => {
                let $q = &$sqlite;
                $body
            }
            $crate::connect::Backend::Postgres($pool) => {
                let $q = &$pg;
                $body
            }
        }
    };
}
pub(crate) use on_backend;

/// Starting a transaction that will write.
pub(crate) trait WritePool {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl WritePool for SqlitePool {
    type Db = Sqlite;
    /// IMMEDIATE takes the write lock up front: a deferred transaction that reads first and
    /// writes later fails with SQLITE_BUSY when another writer commits in between, instead of
    /// waiting for it.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl WritePool for PgPool {
    type Db = Postgres;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Postgres>, sqlx::Error>> + Send {
        self.begin()
    }
}

/// Reads typed columns from either backend's rows, so each row struct is decoded by one function.
pub(crate) trait ReadRow {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn flag(&self, col: &str) -> Result<bool, sqlx::Error>;
    fn time(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error>;
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error>;

    /// JSON columns are TEXT in SQLite and selected as `col::text` from PostgreSQL's JSONB.
    fn json(&self, col: &str) -> Result<Value, sqlx::Error> {
        parse_json(&self.text(col)?)
    }

    fn opt_json(&self, col: &str) -> Result<Option<Value>, sqlx::Error> {
        self.opt_text(col)?.as_deref().map(parse_json).transpose()
    }

    fn strings(&self, col: &str) -> Result<Vec<String>, sqlx::Error> {
        serde_json::from_str(&self.text(col)?).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }
}

fn parse_json(s: &str) -> Result<Value, sqlx::Error> {
    serde_json::from_str(s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

macro_rules! impl_read_row {
    ($row:ty) => {
        impl ReadRow for $row {
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(col)
            }
            fn flag(&self, col: &str) -> Result<bool, sqlx::Error> {
                self.try_get(col)
            }
            fn time(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
                self.try_get(col)
            }
        }
    };
}

impl_read_row!(SqliteRow);
impl_read_row!(PgRow);

/// The current time at the precision both backends keep (PostgreSQL stores microseconds), so
/// a row reads back equal to what was written on either.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A JSON array of strings, as bound for a JSON column or a `json_each` / `jsonb_array_elements`
/// list parameter (one parameter however long the list).
pub(crate) fn json_strings<S: AsRef<str>>(items: &[S]) -> String {
    let mut out =
        String::with_capacity(2 + items.iter().map(|s| s.as_ref().len() + 3).sum::<usize>());
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, s.as_ref());
    }
    out.push(']');
    out
}

/// Appends `s` as a JSON string literal. Written here rather than through `serde_json::Value`,
/// which would copy every string of a list once more (a spend batch binds hundreds of ids).
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if u32::from(c) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        plain = i + c.len_utf8();
        if escaped.is_empty() {
            // Other control characters have no short form.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push_str(escaped);
        }
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// A LIKE pattern matching `needle` anywhere, with `\` as the escape character, so `%`, `_`
/// and `\` typed by a user match themselves instead of acting as wildcards.
pub(crate) fn like_contains(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// LIMIT and OFFSET for a 1-based page; page 0 is read as 1 and a page size of 0 as 1.
pub(crate) fn limit_offset(page: u32, page_size: u32) -> (i64, i64) {
    let size = i64::from(page_size.max(1));
    let offset = i64::from(page.max(1) - 1).saturating_mul(size);
    (size, offset)
}

/// Keeps `ids` that appear in `done`, in the caller's order and without repeats.
pub(crate) fn in_given_order(ids: &[String], done: &[String]) -> Vec<String> {
    let done: std::collections::HashSet<&str> = done.iter().map(String::as_str).collect();
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .filter(|id| done.contains(id.as_str()) && seen.insert(id.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(like_contains(""), "%%");
    }

    #[test]
    fn string_lists_are_the_json_serde_writes() {
        let tricky = [
            "",
            "plain-id",
            "quote \" and backslash \\",
            "lines\nand\r\ttabs",
            "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f} controls",
            "ünïcödé ✓ 🦀",
            "</script>",
        ];
        let ours = json_strings(&tricky);
        assert_eq!(ours, serde_json::to_string(&tricky).unwrap());
        let back: Vec<String> = serde_json::from_str(&ours).unwrap();
        assert_eq!(back, tricky);
        let owned: Vec<String> = tricky.iter().map(|s| s.to_string()).collect();
        assert_eq!(json_strings(&owned), ours);
        assert_eq!(json_strings::<&str>(&[]), "[]");
    }

    #[test]
    fn pages_are_one_based() {
        assert_eq!(limit_offset(1, 25), (25, 0));
        assert_eq!(limit_offset(0, 25), (25, 0));
        assert_eq!(limit_offset(3, 10), (10, 20));
        assert_eq!(limit_offset(2, 0), (1, 1));
    }

    #[test]
    fn order_follows_the_caller() {
        let ids: Vec<String> = ["b", "a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let done: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(in_given_order(&ids, &done), vec!["b", "a"]);
    }
}
