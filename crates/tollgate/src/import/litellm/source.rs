//! The LiteLLM database, read inside one read-only, repeatable-read transaction: every table is
//! read from the same snapshot and nothing can be written to it, even by mistake.

use std::str::FromStr;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Row as _};

use super::row::Row;
use super::ImportError;

pub struct Source {
    conn: PgConnection,
}

/// Columns of `LiteLLM_SpendLogs` never read: the request and answer bodies can be large, and
/// Tollgate's log does not keep them.
const SPEND_LOG_BODIES: &str = "- 'messages' - 'response' - 'proxy_server_request'";

impl Source {
    pub async fn open(url: &str) -> Result<Source, ImportError> {
        if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
            return Err(ImportError::NotPostgres);
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| ImportError::Source("reading the --from URL", e))?
            // Refused by the server itself should anything try to write.
            .options([("default_transaction_read_only", "on")]);
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(|e| ImportError::Source("connecting to the LiteLLM database", e))?;
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut conn)
            .await
            .map_err(|e| {
                ImportError::Source(
                    "starting a read-only transaction on the LiteLLM database",
                    e,
                )
            })?;
        Ok(Source { conn })
    }

    pub async fn has_table(&mut self, table: &str) -> Result<bool, ImportError> {
        let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(format!("\"{table}\""))
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| ImportError::Source("looking up a LiteLLM table", e))?;
        Ok(found.is_some())
    }

    /// Every row of a table (absent table: none), each as a JSON object, in `order_by` order.
    pub async fn rows(&mut self, table: &str, order_by: &str) -> Result<Vec<Row>, ImportError> {
        if !self.has_table(table).await? {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT to_jsonb(t)::text AS r FROM \"{table}\" t ORDER BY {order_by}");
        let rows = sqlx::query(&sql)
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| ImportError::Source("reading a table of the LiteLLM database", e))?;
        decode(&rows)
    }

    /// Rows in a table (absent table: 0).
    pub async fn count(&mut self, table: &str) -> Result<i64, ImportError> {
        if !self.has_table(table).await? {
            return Ok(0);
        }
        sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| ImportError::Source("counting the rows of a LiteLLM table", e))
    }

    /// The next `limit` spend logs after request id `after`, in request id order (keyset paging
    /// on the primary key: memory stays bounded however large the table).
    pub async fn spend_logs_after(
        &mut self,
        after: &str,
        since: &str,
        limit: i64,
    ) -> Result<Vec<Row>, ImportError> {
        let sql = format!(
            "SELECT (to_jsonb(t) {SPEND_LOG_BODIES})::text AS r FROM \"LiteLLM_SpendLogs\" t \
             WHERE request_id > $1 AND \"startTime\" >= $2::date ORDER BY request_id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(since)
            .bind(limit)
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| ImportError::Source("reading LiteLLM spend logs", e))?;
        decode(&rows)
    }

    /// The UTC day of the oldest spend log (`None`: no logs), as `YYYY-MM-DD`.
    pub async fn first_log_day(&mut self) -> Result<Option<String>, ImportError> {
        if !self.has_table("LiteLLM_SpendLogs").await? {
            return Ok(None);
        }
        sqlx::query_scalar(
            "SELECT to_char(min(\"startTime\"), 'YYYY-MM-DD') FROM \"LiteLLM_SpendLogs\"",
        )
        .fetch_one(&mut self.conn)
        .await
        .map_err(|e| ImportError::Source("reading the oldest LiteLLM spend log", e))
    }

    /// Spend logs started before the UTC day `day` (`YYYY-MM-DD`).
    pub async fn count_logs_before(&mut self, day: &str) -> Result<i64, ImportError> {
        if !self.has_table("LiteLLM_SpendLogs").await? {
            return Ok(0);
        }
        sqlx::query_scalar(
            "SELECT count(*) FROM \"LiteLLM_SpendLogs\" WHERE \"startTime\" < $1::date",
        )
        .bind(day)
        .fetch_one(&mut self.conn)
        .await
        .map_err(|e| ImportError::Source("counting LiteLLM spend logs", e))
    }

    /// Daily per-user totals of the days before `before` (all days when `None`).
    pub async fn count_daily_before(&mut self, before: Option<&str>) -> Result<i64, ImportError> {
        sqlx::query_scalar(
            "SELECT count(*) FROM \"LiteLLM_DailyUserSpend\" WHERE $1::text IS NULL OR \"date\" < $1",
        )
        .bind(before)
        .fetch_one(&mut self.conn)
        .await
        .map_err(|e| ImportError::Source("counting LiteLLM daily spend", e))
    }

    /// The next `limit` daily per-user totals after id `after`, of the days before `before`,
    /// in id order (keyset paging, bounded memory).
    pub async fn daily_after(
        &mut self,
        after: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Row>, ImportError> {
        let rows = sqlx::query(
            "SELECT to_jsonb(t)::text AS r FROM \"LiteLLM_DailyUserSpend\" t \
             WHERE id > $1 AND ($2::text IS NULL OR \"date\" < $2) ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(before)
        .bind(limit)
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| ImportError::Source("reading LiteLLM daily spend", e))?;
        decode(&rows)
    }

    /// Ends the transaction; nothing was written, so rolling back only releases the snapshot.
    pub async fn close(mut self) {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }
}

/// Rows selected as one JSON text column `r`.
fn decode(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<Row>, ImportError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let text: String = r
            .try_get("r")
            .map_err(|e| ImportError::Source("decoding a LiteLLM row", e))?;
        let v: Value = serde_json::from_str(&text).map_err(ImportError::RowJson)?;
        out.extend(Row::from_json(v));
    }
    Ok(out)
}
