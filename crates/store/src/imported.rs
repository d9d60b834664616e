//! Which rows of another gateway's database were already imported (`tollgate import`), by their
//! id there. A row recorded here is never imported again, so re-running an import cannot bring
//! back a key that was rotated or deleted since, or undo a change.

use std::collections::HashSet;

use crate::connect::Store;
use crate::db::{json_strings, now, on_backend};
use crate::error::{QueryContext, StoreError};

const SELECT: &str = "SELECT source_id FROM imported_rows WHERE source = $1 AND kind = $2";

pub(crate) const SQLITE_RECORD: &str =
    "INSERT INTO imported_rows (source, kind, source_id, imported_at) \
    SELECT $1, $2, value, $3 FROM json_each($4) WHERE true ON CONFLICT DO NOTHING";

pub(crate) const PG_RECORD: &str =
    "INSERT INTO imported_rows (source, kind, source_id, imported_at) \
    SELECT $1, $2, value, $3 FROM jsonb_array_elements_text($4::jsonb) AS ids(value) \
    ON CONFLICT DO NOTHING";

impl Store {
    /// The ids of one kind of row (`user`, `key`, …) already imported from `source`.
    pub async fn imported_ids(
        &self,
        source: &str,
        kind: &str,
    ) -> Result<HashSet<String>, StoreError> {
        let ids: Vec<String> = on_backend!(self, ((), ()), |pool, _q| {
            sqlx::query_scalar(SELECT)
                .bind(source)
                .bind(kind)
                .fetch_all(pool)
                .await
                .context("reading imported row ids")?
        });
        Ok(ids.into_iter().collect())
    }

    /// Records rows as imported from `source`; ids already recorded are left as they are.
    pub async fn record_imported(
        &self,
        source: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let list = json_strings(ids);
        on_backend!(self, (SQLITE_RECORD, PG_RECORD), |pool, sql| {
            sqlx::query(sql)
                .bind(source)
                .bind(kind)
                .bind(now())
                .bind(&list)
                .execute(pool)
                .await
                .context("recording imported rows")?;
        });
        Ok(())
    }
}
