//! The audit log: who changed what, with the object before and after. Entries are only ever
//! added; callers make sure no secret reaches `before` / `after`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::connect::Store;
use crate::db::{limit_offset, on_backend, ReadRow};
use crate::error::{violation, QueryContext, StoreError, Violation};

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// A uuid v7 string from the caller, so ids sort by time too.
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    /// E.g. `user.create`.
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Which entries to list, and which page of them (newest first).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
}

impl Default for AuditFilter {
    fn default() -> AuditFilter {
        AuditFilter {
            actor_id: None,
            object_type: None,
            object_id: None,
            page: 1,
            page_size: 25,
        }
    }
}

macro_rules! filter_sqlite {
    () => {
        "WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR object_type = $2) \
         AND ($3 IS NULL OR object_id = $3)"
    };
}

macro_rules! filter_pg {
    () => {
        "WHERE ($1::text IS NULL OR actor_id = $1) AND ($2::text IS NULL OR object_type = $2) \
         AND ($3::text IS NULL OR object_id = $3)"
    };
}

struct Queries {
    insert: &'static str,
    list: &'static str,
    count: &'static str,
}

const SQLITE: Queries = Queries {
    insert: "INSERT INTO audit_log (id, at, actor_id, actor_role, action, object_type, \
             object_id, \"before\", \"after\") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    list: concat!(
        "SELECT id, at, actor_id, actor_role, action, object_type, object_id, \
         \"before\", \"after\" FROM audit_log ",
        filter_sqlite!(),
        " ORDER BY at DESC, id DESC LIMIT $4 OFFSET $5"
    ),
    count: concat!("SELECT COUNT(*) FROM audit_log ", filter_sqlite!()),
};

const POSTGRES: Queries = Queries {
    insert: "INSERT INTO audit_log (id, at, actor_id, actor_role, action, object_type, \
             object_id, \"before\", \"after\") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb)",
    list: concat!(
        "SELECT id, at, actor_id, actor_role, action, object_type, object_id, \
         \"before\"::text AS \"before\", \"after\"::text AS \"after\" FROM audit_log ",
        filter_pg!(),
        " ORDER BY at DESC, id DESC LIMIT $4 OFFSET $5"
    ),
    count: concat!("SELECT COUNT(*) FROM audit_log ", filter_pg!()),
};

fn audit_row(r: &impl ReadRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        id: r.text("id")?,
        at: r.time("at")?,
        actor_id: r.opt_text("actor_id")?,
        actor_role: r.opt_text("actor_role")?,
        action: r.text("action")?,
        object_type: r.text("object_type")?,
        object_id: r.opt_text("object_id")?,
        before: r.opt_json("before")?,
        after: r.opt_json("after")?,
    })
}

impl Store {
    /// Appends an entry; a repeated id is a `Conflict`.
    pub async fn insert_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            sqlx::query(q.insert)
                .bind(&entry.id)
                .bind(entry.at)
                .bind(&entry.actor_id)
                .bind(&entry.actor_role)
                .bind(&entry.action)
                .bind(&entry.object_type)
                .bind(&entry.object_id)
                .bind(entry.before.as_ref().map(Value::to_string))
                .bind(entry.after.as_ref().map(Value::to_string))
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|source| match violation(&source) {
            Some(Violation::Unique(_)) => StoreError::Conflict {
                what: "audit entry".to_string(),
            },
            _ => StoreError::Query {
                context: "writing an audit entry",
                source,
            },
        })
    }

    /// One page of the entries matching `filter`, newest first, and how many match in all.
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, i64), StoreError> {
        let (limit, offset) = limit_offset(filter.page, filter.page_size);
        on_backend!(self, (SQLITE, POSTGRES), |pool, q| {
            let rows = sqlx::query(q.list)
                .bind(&filter.actor_id)
                .bind(&filter.object_type)
                .bind(&filter.object_id)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await
                .context("listing audit entries")?;
            let total: i64 = sqlx::query_scalar(q.count)
                .bind(&filter.actor_id)
                .bind(&filter.object_type)
                .bind(&filter.object_id)
                .fetch_one(pool)
                .await
                .context("counting audit entries")?;
            let entries = rows
                .iter()
                .map(audit_row)
                .collect::<Result<Vec<_>, _>>()
                .context("decoding an audit entry")?;
            Ok((entries, total))
        })
    }
}
