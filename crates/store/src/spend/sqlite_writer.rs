//! SQLite's spend batches, written on a thread of their own through SQLite's C API (rusqlite)
//! rather than through sqlx. Through sqlx every bound value was copied into an owned argument
//! list to cross to its worker thread, and each statement's parameters were all cleared after
//! each run: about a tenth of a call's instructions (`bench/RESULTS.md`, "Stop 27"). Here the
//! values are bound straight from the records, which travel to the thread and back by move.
//!
//! Rows go in through multi-row inserts (SQLite keeps its index cursors positioned from one row
//! to the next within a statement; run once per row, each insert descended every index from its
//! root, which cost more than the binding saved). No query looks for already-stored ids first:
//! when an insert adds fewer rows than it was given, some id was stored before (a retried batch)
//! or repeated, and the batch is redone one row at a time, each run's change count saying
//! whether its record was new.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{mpsc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{
    params, CachedStatement, Connection, OpenFlags, ToSql, Transaction, TransactionBehavior,
};
use tokio::sync::oneshot;

use super::sql_time::rfc3339_into;
use super::{
    daily_deltas, day_text, insert_sql, json_pairs, owner_spend, pow2_chunks, rollup_deltas,
    upsert_sql, DailyDelta, DailyKey, OwnerSpend, OwnerTotals, SpendRecord, BY_KEY_KEYS,
    BY_TEAM_MODEL_KEYS, COLUMNS_PER_ROW, DAILY_KEYS,
};
use crate::error::StoreError;
use crate::worker_priority::deprioritize_this_thread;

/// The database the thread writes to: the file sqlx opened, or the shared in-memory database
/// sqlx named (`sqlite::memory:` or `mode=memory`).
#[derive(Debug, Clone)]
pub(crate) struct SqliteTarget {
    pub(crate) path: PathBuf,
    pub(crate) in_memory: bool,
}

/// The records, given back, and the batch positions of those that were new.
type Reply = (Vec<SpendRecord>, Result<Vec<usize>, StoreError>);

enum Job {
    Insert {
        records: Vec<SpendRecord>,
        owners: OwnerTotals,
        reply: oneshot::Sender<Reply>,
    },
    /// Closes the connection; answered once it is closed.
    Close(oneshot::Sender<()>),
}

/// Shared by a store's clones. The thread starts with the first batch and ends once its last
/// handle is dropped or the store is closed.
#[derive(Debug)]
pub(crate) struct SpendThread {
    target: SqliteTarget,
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    NotStarted,
    Running(mpsc::Sender<Job>),
    /// As a closed sqlx pool refuses queries, a closed store refuses batches.
    Closed,
}

/// As sqlx's connections wait for another writer's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl SpendThread {
    pub(crate) fn new(target: SqliteTarget) -> SpendThread {
        SpendThread {
            target,
            state: Mutex::new(State::NotStarted),
        }
    }

    /// Writes the records in one transaction on the thread: each new request id's row, the
    /// owners' running spend (`OwnerTotals::Add`) and the daily aggregates.
    pub(crate) async fn insert(&self, records: Vec<SpendRecord>, owners: OwnerTotals) -> Reply {
        let jobs = match self.sender() {
            Ok(jobs) => jobs,
            Err(e) => return (records, Err(e)),
        };
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::SendError(job)) = jobs.send(Job::Insert {
            records,
            owners,
            reply,
        }) {
            // The thread is gone; the next batch starts another.
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if matches!(*state, State::Running(_)) {
                *state = State::NotStarted;
            }
            drop(state);
            let records = match job {
                Job::Insert { records, .. } => records,
                Job::Close(_) => Vec::new(),
            };
            return (records, Err(StoreError::SpendThread("it has stopped")));
        }
        // The thread answers every batch it takes, a panic included; only an abort of the
        // process loses the answer, and then the spend journal replays the records.
        answer.await.unwrap_or_else(|_| {
            (
                Vec::new(),
                Err(StoreError::SpendThread("it stopped during a batch")),
            )
        })
    }

    /// Closes the thread's connection and ends the thread; later batches are refused.
    pub(crate) async fn close(&self) {
        let state = std::mem::replace(
            &mut *self.state.lock().unwrap_or_else(PoisonError::into_inner),
            State::Closed,
        );
        if let State::Running(jobs) = state {
            let (done, closed) = oneshot::channel();
            if jobs.send(Job::Close(done)).is_ok() {
                let _ = closed.await;
            }
        }
    }

    fn sender(&self) -> Result<mpsc::Sender<Job>, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &*state {
            State::Running(tx) => return Ok(tx.clone()),
            State::Closed => return Err(StoreError::SpendThread("the store is closed")),
            State::NotStarted => {}
        }
        let (tx, rx) = mpsc::channel();
        let target = self.target.clone();
        std::thread::Builder::new()
            .name("tollgate-spend".into())
            .spawn(move || serve(&target, rx))
            .map_err(|_| StoreError::SpendThread("the thread could not be started"))?;
        *state = State::Running(tx.clone());
        Ok(tx)
    }
}

fn serve(target: &SqliteTarget, jobs: mpsc::Receiver<Job>) {
    // Like sqlx's workers: calls on the serving thread go first, batches fill the gaps.
    deprioritize_this_thread();
    let mut conn: Option<Connection> = None;
    for job in jobs {
        match job {
            Job::Insert {
                records,
                owners,
                reply,
            } => {
                let result = catch_unwind(AssertUnwindSafe(|| {
                    write_batch(&mut conn, target, &records, owners)
                }))
                .unwrap_or_else(|_| Err(StoreError::SpendThread("a batch's write panicked")));
                if result.is_err() {
                    // A fresh connection for the next attempt.
                    conn = None;
                }
                let _ = reply.send((records, result));
            }
            Job::Close(done) => {
                conn = None;
                let _ = done.send(());
            }
        }
    }
}

fn ctx(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { context, source }
}

fn open(target: &SqliteTarget) -> Result<Connection, StoreError> {
    // The flags sqlx opens with: a URI-style name is understood, a plain path is a path.
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if target.in_memory {
        flags |= OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
    }
    let opening = "opening the spend writer's connection";
    let conn = Connection::open_with_flags(&target.path, flags).map_err(ctx(opening))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(ctx(opening))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Per connection, as sqlx sets them on its own (`Store::sqlite`); WAL is the file's.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
    )
    .map_err(ctx(opening))?;
    Ok(conn)
}

fn write_batch(
    conn: &mut Option<Connection>,
    target: &SqliteTarget,
    records: &[SpendRecord],
    owners: OwnerTotals,
) -> Result<Vec<usize>, StoreError> {
    let c = match conn.take() {
        Some(c) => c,
        None => open(target)?,
    };
    let c = conn.insert(c);
    let mut tx = begin(c)?;
    let fresh: Vec<usize> = if insert_all(&tx, records)? {
        (0..records.len()).collect()
    } else {
        tx.rollback().map_err(ctx("rolling back a spend batch"))?;
        tx = begin(c)?;
        insert_each(&tx, records)?
    };
    let inserted: Vec<&SpendRecord> = fresh.iter().filter_map(|&i| records.get(i)).collect();
    if owners == OwnerTotals::Add {
        add_owner_spend(&tx, &owner_spend(&inserted))?;
    }
    apply_daily(&tx, &daily_deltas(&inserted))?;
    tx.commit().map_err(ctx("committing a spend batch"))?;
    Ok(fresh)
}

/// IMMEDIATE: the write lock from the start, so no other writer commits in between.
fn begin(c: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ctx("starting a spend batch"))
}

/// Rows per insert statement, and how many the thread writes before it lets the serving thread
/// run if that has work. The kernel lets a thread it is running use up its time slice (1.5 ms
/// on a 2-core machine) before a woken thread may take the core, whatever their nice values: a
/// batch written in one go kept calls waiting that long (c=1 p99 1.2 -> 2.0 ms). At ~15 µs a
/// row, 16 rows hold a call back at most ~0.25 ms, and still share most of a statement's
/// cursor savings.
const ROWS_PER_TURN: usize = 16;

/// The insert for 1, 2, 4, … `ROWS_PER_TURN` rows (`pow2_chunks` cuts batches in these sizes),
/// each prepared once per connection.
static INSERTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..=ROWS_PER_TURN.ilog2())
        .map(|p| insert_sql(1 << p, "", false, false))
        .collect()
});

/// Statements the connection keeps prepared: the inserts, the upserts and the owner updates.
const STATEMENT_CACHE: usize = 32;

/// Reused buffers for a record's times as text (bound values are copied by SQLite).
#[derive(Default)]
struct TimeTexts {
    start: String,
    end: String,
    first: String,
}

/// Binds `r` as the row whose first parameter follows `at`, in `INSERT_COLUMNS` order.
fn bind_record(
    insert: &mut CachedStatement<'_>,
    at: usize,
    r: &SpendRecord,
    times: &mut TimeTexts,
) -> rusqlite::Result<()> {
    rfc3339_into(&r.start_time, &mut times.start);
    rfc3339_into(&r.end_time, &mut times.end);
    let first = r.completion_start_time.map(|t| {
        rfc3339_into(&t, &mut times.first);
        times.first.as_str()
    });
    let mut i = at;
    let mut bind = |v: &dyn ToSql| {
        i += 1;
        insert.raw_bind_parameter(i, v)
    };
    bind(&r.request_id)?;
    bind(&r.call_type)?;
    bind(&r.api_key)?;
    bind(&r.user_id)?;
    bind(&r.team_id)?;
    bind(&r.end_user)?;
    bind(&r.model)?;
    bind(&r.model_group)?;
    bind(&r.model_id)?;
    bind(&r.custom_llm_provider)?;
    bind(&r.spend_nanos)?;
    bind(&r.priced)?;
    bind(&r.prompt_tokens)?;
    bind(&r.completion_tokens)?;
    bind(&r.total_tokens())?;
    bind(&r.cache_read_input_tokens)?;
    bind(&r.cache_creation_input_tokens)?;
    bind(&r.usage_estimated)?;
    bind(&r.stream)?;
    bind(&r.status.as_str())?;
    bind(&r.http_status)?;
    bind(&r.error_type)?;
    bind(&r.attempts)?;
    bind(&times.start.as_str())?;
    bind(&times.end.as_str())?;
    bind(&first)?;
    bind(&r.request_duration_ms)?;
    bind(&r.ttft_ms)?;
    bind(&r.metadata.to_string())
}

/// Inserts every record, several rows a statement; false as soon as a statement adds fewer rows
/// than it was given (an id stored already or repeated), leaving the transaction to be undone.
fn insert_all(tx: &Transaction<'_>, records: &[SpendRecord]) -> Result<bool, StoreError> {
    let inserting = "inserting spend records";
    let mut times = TimeTexts::default();
    for chunk in pow2_chunks(records, ROWS_PER_TURN) {
        let sql =
            INSERTS
                .get(chunk.len().trailing_zeros() as usize)
                .ok_or(StoreError::SpendThread(
                    "a batch was cut in a size it has no insert for",
                ))?;
        let mut insert = tx.prepare_cached(sql).map_err(ctx(inserting))?;
        for (row, r) in chunk.iter().enumerate() {
            bind_record(&mut insert, row * COLUMNS_PER_ROW, r, &mut times)
                .map_err(ctx(inserting))?;
        }
        if insert.raw_execute().map_err(ctx(inserting))? != chunk.len() {
            return Ok(false);
        }
        std::thread::yield_now();
    }
    Ok(true)
}

/// Inserts each record whose request id is not stored yet (a repeat within the batch counts as
/// stored), one row a statement; returns the batch positions of those inserted.
fn insert_each(tx: &Transaction<'_>, records: &[SpendRecord]) -> Result<Vec<usize>, StoreError> {
    let inserting = "inserting spend records";
    let sql = INSERTS
        .first()
        .ok_or(StoreError::SpendThread("there is no single-row insert"))?;
    let mut insert = tx.prepare_cached(sql).map_err(ctx(inserting))?;
    let mut times = TimeTexts::default();
    let mut fresh = Vec::new();
    for (i, r) in records.iter().enumerate() {
        bind_record(&mut insert, 0, r, &mut times).map_err(ctx(inserting))?;
        if insert.raw_execute().map_err(ctx(inserting))? == 1 {
            fresh.push(i);
        }
        if i % ROWS_PER_TURN == ROWS_PER_TURN - 1 {
            std::thread::yield_now();
        }
    }
    Ok(fresh)
}

/// One statement per owner table, whatever the number of owners: the (owner, nanos) pairs
/// travel as one JSON parameter. Each owner appears once (summed in Rust), as UPDATE … FROM
/// applies one source row per target row.
const ADD_KEY_SPEND: &str = "UPDATE verification_tokens \
    SET spend_nanos = spend_nanos + d.n FROM (SELECT json_extract(value, '$[0]') AS k, \
    json_extract(value, '$[1]') AS n FROM json_each(?)) AS d WHERE verification_tokens.token = d.k";
const ADD_USER_SPEND: &str = "UPDATE users \
    SET spend_nanos = spend_nanos + d.n FROM (SELECT json_extract(value, '$[0]') AS k, \
    json_extract(value, '$[1]') AS n FROM json_each(?)) AS d WHERE users.user_id = d.k";
const ADD_TEAM_SPEND: &str = "UPDATE teams \
    SET spend_nanos = spend_nanos + d.n FROM (SELECT json_extract(value, '$[0]') AS k, \
    json_extract(value, '$[1]') AS n FROM json_each(?)) AS d WHERE teams.team_id = d.k";
const ADD_MEMBER_SPEND: &str = "UPDATE team_members \
    SET spend_nanos = spend_nanos + d.n FROM (SELECT json_extract(value, '$[0]') AS t, \
    json_extract(value, '$[1]') AS u, json_extract(value, '$[2]') AS n FROM json_each(?)) AS d \
    WHERE team_members.team_id = d.t AND team_members.user_id = d.u";

fn add_owner_spend(tx: &Transaction<'_>, owners: &OwnerSpend<'_>) -> Result<(), StoreError> {
    let adding = "adding spend to keys, users and teams";
    for (sql, pairs) in [
        (ADD_KEY_SPEND, &owners.keys),
        (ADD_USER_SPEND, &owners.users),
        (ADD_TEAM_SPEND, &owners.teams),
    ] {
        if pairs.is_empty() {
            continue;
        }
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([json_pairs(pairs)]))
            .map_err(ctx(adding))?;
    }
    if !owners.members.is_empty() {
        let triples: Vec<serde_json::Value> = owners
            .members
            .iter()
            .map(|((t, u), n)| serde_json::json!([t, u, n]))
            .collect();
        tx.prepare_cached(ADD_MEMBER_SPEND)
            .and_then(|mut s| s.execute([serde_json::Value::Array(triples).to_string()]))
            .map_err(ctx("adding spend to team members"))?;
    }
    Ok(())
}

static DAILY_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("daily_spend", DAILY_KEYS, 1, false));
static BY_KEY_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("daily_spend_by_key", BY_KEY_KEYS, 1, false));
static BY_TEAM_MODEL_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("daily_spend_by_team_model", BY_TEAM_MODEL_KEYS, 1, false));

/// Adds the inserted records' per-day sums to `daily_spend` and its two rollups, one prepared
/// upsert per row (a live batch has a few rows: one per key, model and day).
fn apply_daily(
    tx: &Transaction<'_>,
    daily: &BTreeMap<DailyKey<'_>, DailyDelta>,
) -> Result<(), StoreError> {
    let adding = ctx("adding spend to the daily aggregates");
    let (by_key, by_team_model) = rollup_deltas(daily);
    (|| {
        let mut upsert = tx.prepare_cached(&DAILY_UPSERT)?;
        for (k, d) in daily {
            let day = day_text(k.0);
            upsert.execute(params![
                day,
                k.1,
                k.2,
                k.3,
                k.4,
                k.5,
                d.spend_nanos,
                d.prompt_tokens,
                d.completion_tokens,
                d.requests,
                d.successful_requests,
                d.failed_requests,
            ])?;
        }
        let mut upsert = tx.prepare_cached(&BY_KEY_UPSERT)?;
        for (k, d) in &by_key {
            let day = day_text(k.0);
            upsert.execute(params![
                day,
                k.1,
                d.spend_nanos,
                d.prompt_tokens,
                d.completion_tokens,
                d.requests,
                d.successful_requests,
                d.failed_requests,
            ])?;
        }
        let mut upsert = tx.prepare_cached(&BY_TEAM_MODEL_UPSERT)?;
        for (k, d) in &by_team_model {
            let day = day_text(k.0);
            upsert.execute(params![
                day,
                k.1,
                k.2,
                k.3,
                d.spend_nanos,
                d.prompt_tokens,
                d.completion_tokens,
                d.requests,
                d.successful_requests,
                d.failed_requests,
            ])?;
        }
        Ok(())
    })()
    .map_err(adding)
}
