//! SQLite's spend batches, written on a thread of their own through SQLite's C API (rusqlite)
//! rather than through sqlx. Through sqlx every bound value was copied into an owned argument
//! list to cross to its worker thread, and each statement's parameters were all cleared after
//! each run: about a tenth of a call's instructions (`bench/RESULTS.md`, "Stop 27"). Here the
//! values are bound straight from the records, which travel to the thread and back by move.
//!
//! A batch is written in steps, one statement each (begin, 64 rows, 64 rows, …, aggregates,
//! commit), the next step sent only when the serving thread's runtime polls the batch again, as
//! sqlx's statements were. So the thread never holds the core for long while calls wait (the
//! kernel may let a running thread finish its time slice before a woken one runs), and spend
//! recording keeps the pace of the calls. Written in one go instead, with a yield between
//! statements, the thread fell far behind under full load, its records waiting in memory
//! (`bench/RESULTS.md`, "Stop 28"). Between steps it blocks; it is as nice as sqlx's workers
//! (`worker_priority`).
//!
//! Rows go in through multi-row inserts (SQLite keeps its index cursors positioned from one row
//! to the next within a statement; run once per row, each insert descended every index from its
//! root, which cost more than the binding saved). No query looks for already-stored ids first:
//! when an insert adds fewer rows than it was given, some id was stored before (a retried batch)
//! or repeated, and the batch is redone one row at a time, each run's change count saying
//! whether its record was new.
//!
//! Every statement runs with `OR FAIL` (`without_statement_journal`): see there.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{mpsc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Statement, ToSql};
use tokio::sync::{oneshot, RwLock, RwLockWriteGuard};

use super::sql_time::rfc3339_into;
use super::{
    close, daily_deltas, day_text, insert_sql, json_pairs, owner_spend, pow2_chunks, rollup_deltas,
    upsert_sql, DailyDelta, DailyKey, OwnerSpend, OwnerTotals, SpendRecord, BY_KEY_KEYS,
    BY_TEAM_MODEL_KEYS, COLUMNS_PER_ROW, DAILY_KEYS, ROWS_PER_STATEMENT,
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

/// The records, given back, and the batch positions of those that were new, with the commit
/// gate when one was given.
type Reply<'g> = (
    Vec<SpendRecord>,
    Result<(Vec<usize>, Option<RwLockWriteGuard<'g, ()>>), StoreError>,
);

/// One statement's worth of a batch, run on the thread against the batch's records.
enum Step {
    /// Opens the batch's transaction (one a vanished caller left open was rolled back by its
    /// `Job::Abandon`, which comes first).
    Begin,
    /// Inserts `len` records from `from` in one statement; answers how many went in.
    InsertRows {
        from: usize,
        len: usize,
    },
    /// Inserts `len` records from `from` one statement each; answers which went in.
    InsertEach {
        from: usize,
        len: usize,
    },
    /// Adds the new records to the owners and the daily aggregates.
    Finish {
        fresh: Vec<usize>,
        owners: OwnerTotals,
    },
    /// Commits: a step of its own, so that a gate taken for it covers the commit alone.
    Commit,
    Rollback,
}

enum Answer {
    Done,
    Inserted(usize),
    Fresh(Vec<usize>),
}

type StepReply = (Vec<SpendRecord>, Result<Answer, StoreError>);

enum Job {
    Step {
        records: Vec<SpendRecord>,
        step: Step,
        reply: oneshot::Sender<StepReply>,
    },
    /// A batch stopped part-way (its caller went away): roll its transaction back.
    Abandon,
    /// Closes the connection; answered once it is closed.
    Close(oneshot::Sender<()>),
}

/// Shared by a store's clones. The thread starts with the first batch and ends once its last
/// handle is dropped or the store is closed.
#[derive(Debug)]
pub(crate) struct SpendThread {
    target: SqliteTarget,
    state: Mutex<State>,
    /// One batch at a time: the steps of two would share one transaction.
    one_batch: tokio::sync::Mutex<()>,
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
            one_batch: tokio::sync::Mutex::new(()),
        }
    }

    /// Writes the records in one transaction on the thread: each new request id's row, the
    /// owners' running spend (`OwnerTotals::Add`) and the daily aggregates. With a `gate`, it
    /// is taken for writing just before the commit and handed back so.
    pub(crate) async fn insert<'g>(
        &self,
        records: Vec<SpendRecord>,
        owners: OwnerTotals,
        gate: Option<&'g RwLock<()>>,
    ) -> Reply<'g> {
        let _one_batch = self.one_batch.lock().await;
        let jobs = match self.sender() {
            Ok(jobs) => jobs,
            Err(e) => return (records, Err(e)),
        };
        let mut batch = Batch {
            thread: self,
            jobs,
            records,
            finished: false,
        };
        let result = batch.write(owners, gate).await;
        batch.finished = true;
        (std::mem::take(&mut batch.records), result)
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

    /// The thread is gone; the next batch starts another.
    fn stopped(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*state, State::Running(_)) {
            *state = State::NotStarted;
        }
    }
}

/// A batch being written: its records go to the thread with each step and come back with the
/// answer.
struct Batch<'t> {
    thread: &'t SpendThread,
    jobs: mpsc::Sender<Job>,
    records: Vec<SpendRecord>,
    finished: bool,
}

impl Batch<'_> {
    async fn write<'g>(
        &mut self,
        owners: OwnerTotals,
        gate: Option<&'g RwLock<()>>,
    ) -> Result<(Vec<usize>, Option<RwLockWriteGuard<'g, ()>>), StoreError> {
        let n = self.records.len();
        let lens: Vec<usize> = pow2_chunks(&self.records, ROWS_PER_STATEMENT)
            .map(<[SpendRecord]>::len)
            .collect();
        self.step(Step::Begin).await?;
        let mut from = 0;
        for len in lens {
            match self.step(Step::InsertRows { from, len }).await? {
                Answer::Inserted(added) if added == len => from += len,
                _ => break,
            }
        }
        let fresh = if from == n {
            (0..n).collect()
        } else {
            self.step(Step::Rollback).await?;
            self.step(Step::Begin).await?;
            let mut fresh = Vec::new();
            let mut from = 0;
            while from < n {
                let len = ROWS_PER_STATEMENT.min(n - from);
                if let Answer::Fresh(new) = self.step(Step::InsertEach { from, len }).await? {
                    fresh.extend(new);
                }
                from += len;
            }
            fresh
        };
        self.step(Step::Finish {
            fresh: fresh.clone(),
            owners,
        })
        .await?;
        let closed = close(gate).await;
        self.step(Step::Commit).await?;
        Ok((fresh, closed))
    }

    async fn step(&mut self, step: Step) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Step {
            records: std::mem::take(&mut self.records),
            step,
            reply,
        };
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            if let Job::Step { records, .. } = job {
                self.records = records;
            }
            self.thread.stopped();
            return Err(StoreError::SpendThread("it has stopped"));
        }
        // The thread answers every step it takes, a panic included; only an abort of the
        // process loses the answer (and the records), and then the spend journal replays them.
        let (records, result) = answer
            .await
            .map_err(|_| StoreError::SpendThread("it stopped during a batch"))?;
        self.records = records;
        result
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // Processed before any later batch's first step.
            let _ = self.jobs.send(Job::Abandon);
        }
    }
}

fn serve(target: &SqliteTarget, jobs: mpsc::Receiver<Job>) {
    deprioritize_this_thread();
    for job in &jobs {
        let (records, step, reply) = match job {
            Job::Step {
                records,
                step,
                reply,
            } => (records, step, reply),
            // No connection is open, so neither is a transaction.
            Job::Abandon => continue,
            Job::Close(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let conn = match open(target) {
            Ok(conn) => conn,
            Err(e) => {
                let _ = reply.send((records, Err(e)));
                continue;
            }
        };
        let exit = serve_on(&conn, (records, step, reply), &jobs);
        // Closing the connection rolls back a transaction left open.
        drop(conn);
        match exit {
            Exit::Reopen => {}
            Exit::Failed(reply, answer) => {
                let _ = reply.send(answer);
            }
            Exit::Close(done) => {
                let _ = done.send(());
            }
            Exit::Ended => return,
        }
    }
}

/// Why `serve_on` gave its connection up.
enum Exit {
    /// A batch was abandoned part-way: the next step opens a fresh connection.
    Reopen,
    /// A step failed: answered once the connection, and so the batch, is gone.
    Failed(oneshot::Sender<StepReply>, StepReply),
    Close(oneshot::Sender<()>),
    /// Every handle to the thread is gone.
    Ended,
}

/// Runs steps on one connection, with its inserts kept prepared (taken from and put back into
/// rusqlite's cache, each insert's ~1,900 parameters were cleared after every run).
fn serve_on(
    conn: &Connection,
    first: (Vec<SpendRecord>, Step, oneshot::Sender<StepReply>),
    jobs: &mpsc::Receiver<Job>,
) -> Exit {
    let mut inserts = Inserts {
        conn,
        by_size: INSERTS.iter().map(|_| None).collect(),
    };
    let (mut records, mut step, mut reply) = first;
    loop {
        let commit = matches!(step, Step::Commit);
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_step(conn, &mut inserts, &records, step)
        }))
        .unwrap_or_else(|_| Err(StoreError::SpendThread("a step of a batch panicked")));
        if result.is_err() {
            return Exit::Failed(reply, (records, result));
        }
        let _ = reply.send((records, result));
        if commit {
            checkpoint(conn);
        }
        loop {
            match jobs.recv() {
                Ok(Job::Step {
                    records: r,
                    step: s,
                    reply: a,
                }) => {
                    (records, step, reply) = (r, s, a);
                    break;
                }
                Ok(Job::Abandon) if conn.is_autocommit() => {}
                Ok(Job::Abandon) => return Exit::Reopen,
                Ok(Job::Close(done)) => return Exit::Close(done),
                Err(_) => return Exit::Ended,
            }
        }
    }
}

/// The connection's inserts, by row count (1, 2, 4, … `ROWS_PER_STATEMENT`), prepared when
/// first needed.
struct Inserts<'c> {
    conn: &'c Connection,
    by_size: Vec<Option<Statement<'c>>>,
}

impl<'c> Inserts<'c> {
    fn for_rows(&mut self, rows: usize) -> Result<&mut Statement<'c>, StoreError> {
        let at = rows.trailing_zeros() as usize;
        let (Some(sql), Some(slot), true) = (
            INSERTS.get(at),
            self.by_size.get_mut(at),
            rows.is_power_of_two(),
        ) else {
            return Err(StoreError::SpendThread(
                "a step has no insert for its row count",
            ));
        };
        if slot.is_none() {
            let prepared = self
                .conn
                .prepare(sql)
                .map_err(ctx("preparing the spend insert"))?;
            *slot = Some(prepared);
        }
        slot.as_mut()
            .ok_or(StoreError::SpendThread("the spend insert was not prepared"))
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
    if !target.in_memory {
        // The thread appends rows and updates rollups, so the pages it reads again are mostly
        // the B-trees' right edges and the rollups'. SQLite's default cache (2,000 KiB) filled
        // within seconds of load with pages written once, about 2 MB resident; with 512 KiB
        // batches measured no slower (bench/RESULTS.md, stop 35). An in-memory database is its
        // own cache, so it is left alone.
        conn.execute_batch(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB};"))
            .map_err(ctx(opening))?;
        // Checkpoints run after each commit instead (`checkpoint`).
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(ctx(opening))?;
    }
    Ok(conn)
}

/// Copies the committed batch from the WAL into the database file, once the batch's caller has
/// its answer. SQLite would do this inside `COMMIT` whenever the WAL passed 1,000 pages
/// (`wal_autocheckpoint`, off on this connection: `open`), while the caller still held the
/// budgets' commit gate and key loads waited for it (`bench/RESULTS.md`, "Stop 37"). PASSIVE
/// waits for no reader or writer; frames a reader still needs are copied by a later checkpoint.
/// The next batch's first step waits for it on this thread, so the WAL stays about one batch
/// long. A failed checkpoint loses nothing (the batch is committed in the WAL) and is retried
/// after the next commit.
fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "checkpointing the spend batches' WAL failed; retried after the next batch");
    }
}

fn run_step(
    c: &Connection,
    inserts: &mut Inserts<'_>,
    records: &[SpendRecord],
    step: Step,
) -> Result<Answer, StoreError> {
    let rows = |from: usize, len: usize| {
        records
            .get(from..from.saturating_add(len))
            .ok_or(StoreError::SpendThread(
                "a step named records the batch does not have",
            ))
    };
    let in_batch = !matches!(step, Step::Begin);
    if in_batch && c.is_autocommit() {
        // The batch's transaction is gone (its connection was closed meanwhile): going on
        // would commit each statement alone.
        return Err(StoreError::SpendThread(
            "the batch's transaction ended before the batch",
        ));
    }
    match step {
        Step::Begin => {
            // IMMEDIATE: the write lock from the start, so no other writer commits in between.
            c.execute_batch("BEGIN IMMEDIATE")
                .map_err(ctx("starting a spend batch"))?;
            Ok(Answer::Done)
        }
        Step::InsertRows { from, len } => {
            insert_rows(inserts, rows(from, len)?).map(Answer::Inserted)
        }
        Step::InsertEach { from, len } => {
            let new = insert_each(inserts, rows(from, len)?)?;
            Ok(Answer::Fresh(new.into_iter().map(|i| from + i).collect()))
        }
        Step::Finish { fresh, owners } => {
            let inserted: Vec<&SpendRecord> =
                fresh.iter().filter_map(|&i| records.get(i)).collect();
            if owners == OwnerTotals::Add {
                add_owner_spend(c, &owner_spend(&inserted))?;
            }
            apply_daily(c, &daily_deltas(&inserted))?;
            Ok(Answer::Done)
        }
        Step::Commit => {
            c.execute_batch("COMMIT")
                .map_err(ctx("committing a spend batch"))?;
            Ok(Answer::Done)
        }
        Step::Rollback => {
            c.execute_batch("ROLLBACK")
                .map_err(ctx("rolling back a spend batch"))?;
            Ok(Answer::Done)
        }
    }
}

/// The insert for 1, 2, 4, … `ROWS_PER_STATEMENT` rows (`pow2_chunks` cuts batches in these
/// sizes), each prepared once per connection.
static INSERTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..=ROWS_PER_STATEMENT.ilog2())
        .map(|p| without_statement_journal(&insert_sql(1 << p, "", false, false)))
        .collect()
});

/// The statement with `OR FAIL` as its conflict resolution. Within a transaction SQLite keeps a
/// statement journal for any statement that may abort part-way (the default resolution of a
/// NOT NULL column, `ABORT`, is one): a copy of every page the statement changes, so that the
/// statement alone can be undone. Without those copies a batch takes about a sixth less CPU
/// (`bench/RESULTS.md`, "Stop 34"). A batch never undoes one statement: a step that fails
/// drops its connection and with it the whole transaction (`serve`), so `FAIL`, which stops
/// at the same errors without undoing the statement's earlier rows, loses nothing.
/// (The owner updates below are written with `UPDATE OR FAIL` for the same reason.)
fn without_statement_journal(insert: &str) -> String {
    insert.replacen("INSERT INTO ", "INSERT OR FAIL INTO ", 1)
}

/// Statements rusqlite's cache keeps prepared: the upserts and the owner updates.
const STATEMENT_CACHE: usize = 16;
/// The spend connection's page cache, in KiB (`open`).
const WRITER_CACHE_KIB: u32 = 512;

/// Reused buffers for a record's times as text (bound values are copied by SQLite).
#[derive(Default)]
struct TimeTexts {
    start: String,
    end: String,
    first: String,
}

/// Binds `r` as the row whose first parameter follows `at`, in `INSERT_COLUMNS` order.
fn bind_record(
    insert: &mut Statement<'_>,
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

/// Inserts the records in one statement (their count a power of two up to
/// `ROWS_PER_STATEMENT`); returns how many went in (fewer: some id was stored or repeated).
fn insert_rows(inserts: &mut Inserts<'_>, records: &[SpendRecord]) -> Result<usize, StoreError> {
    let inserting = "inserting spend records";
    let insert = inserts.for_rows(records.len())?;
    let mut times = TimeTexts::default();
    for (row, r) in records.iter().enumerate() {
        bind_record(insert, row * COLUMNS_PER_ROW, r, &mut times).map_err(ctx(inserting))?;
    }
    insert.raw_execute().map_err(ctx(inserting))
}

/// Inserts each record whose request id is not stored yet (a repeat counts as stored), one
/// statement each; returns the positions of those inserted.
fn insert_each(
    inserts: &mut Inserts<'_>,
    records: &[SpendRecord],
) -> Result<Vec<usize>, StoreError> {
    let inserting = "inserting spend records";
    let insert = inserts.for_rows(1)?;
    let mut times = TimeTexts::default();
    let mut fresh = Vec::new();
    for (i, r) in records.iter().enumerate() {
        bind_record(insert, 0, r, &mut times).map_err(ctx(inserting))?;
        if insert.raw_execute().map_err(ctx(inserting))? == 1 {
            fresh.push(i);
        }
    }
    Ok(fresh)
}

/// One statement per owner table, whatever the number of owners: the (owner, nanos) pairs
/// travel as one JSON parameter. Each owner appears once (summed in Rust), as UPDATE … FROM
/// applies one source row per target row.
fn add_spend_sql(table: &str, key: &str) -> String {
    format!(
        "UPDATE OR FAIL {table} SET spend_nanos = spend_nanos + d.n FROM (SELECT \
         json_extract(value, '$[0]') AS k, json_extract(value, '$[1]') AS n FROM json_each(?)) \
         AS d WHERE {table}.{key} = d.k"
    )
}

/// Keys, users and teams, in `OwnerSpend`'s order.
static ADD_OWNER_SPEND: LazyLock<[String; 3]> = LazyLock::new(|| {
    [
        add_spend_sql("verification_tokens", "token"),
        add_spend_sql("users", "user_id"),
        add_spend_sql("teams", "team_id"),
    ]
});
const ADD_MEMBER_SPEND: &str = "UPDATE OR FAIL team_members \
    SET spend_nanos = spend_nanos + d.n FROM (SELECT json_extract(value, '$[0]') AS t, \
    json_extract(value, '$[1]') AS u, json_extract(value, '$[2]') AS n FROM json_each(?)) AS d \
    WHERE team_members.team_id = d.t AND team_members.user_id = d.u";

fn add_owner_spend(tx: &Connection, owners: &OwnerSpend<'_>) -> Result<(), StoreError> {
    let adding = "adding spend to keys, users and teams";
    for (sql, pairs) in ADD_OWNER_SPEND
        .iter()
        .zip([&owners.keys, &owners.users, &owners.teams])
    {
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
    LazyLock::new(|| without_statement_journal(&upsert_sql("daily_spend", DAILY_KEYS, 1, false)));
static BY_KEY_UPSERT: LazyLock<String> = LazyLock::new(|| {
    without_statement_journal(&upsert_sql("daily_spend_by_key", BY_KEY_KEYS, 1, false))
});
static BY_TEAM_MODEL_UPSERT: LazyLock<String> = LazyLock::new(|| {
    without_statement_journal(&upsert_sql(
        "daily_spend_by_team_model",
        BY_TEAM_MODEL_KEYS,
        1,
        false,
    ))
});

/// Adds the inserted records' per-day sums to `daily_spend` and its two rollups, one prepared
/// upsert per row (a live batch has a few rows: one per key, model and day).
fn apply_daily(
    tx: &Connection,
    daily: &BTreeMap<DailyKey<'_>, DailyDelta>,
) -> Result<(), StoreError> {
    let (by_key, by_team_model) = rollup_deltas(daily);
    (|| {
        let mut upsert = tx.prepare_cached(&DAILY_UPSERT)?;
        for (k, d) in daily {
            add_counters(
                &mut upsert,
                &[&day_text(k.0), &k.1, &k.2, &k.3, &k.4, &k.5],
                d,
            )?;
        }
        let mut upsert = tx.prepare_cached(&BY_KEY_UPSERT)?;
        for (k, d) in &by_key {
            add_counters(&mut upsert, &[&day_text(k.0), &k.1], d)?;
        }
        let mut upsert = tx.prepare_cached(&BY_TEAM_MODEL_UPSERT)?;
        for (k, d) in &by_team_model {
            add_counters(&mut upsert, &[&day_text(k.0), &k.1, &k.2, &k.3], d)?;
        }
        Ok(())
    })()
    .map_err(ctx("adding spend to the daily aggregates"))
}

/// Runs an aggregate's upsert for one row: its key columns, then the counters it adds.
fn add_counters(
    upsert: &mut Statement<'_>,
    keys: &[&dyn ToSql],
    d: &DailyDelta,
) -> rusqlite::Result<usize> {
    let counters: [&dyn ToSql; 6] = [
        &d.spend_nanos,
        &d.prompt_tokens,
        &d.completion_tokens,
        &d.requests,
        &d.successful_requests,
        &d.failed_requests,
    ];
    let row: Vec<&dyn ToSql> = keys.iter().copied().chain(counters).collect();
    upsert.execute(row.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_of_a_batch_fails_without_a_statement_journal() {
        let statements = INSERTS
            .iter()
            .chain(ADD_OWNER_SPEND.iter())
            .map(String::as_str)
            .chain([ADD_MEMBER_SPEND])
            .chain([&*DAILY_UPSERT, &*BY_KEY_UPSERT, &*BY_TEAM_MODEL_UPSERT].map(String::as_str));
        let mut n = 0;
        for sql in statements {
            assert!(
                sql.starts_with("INSERT OR FAIL INTO ") || sql.starts_with("UPDATE OR FAIL "),
                "{sql}"
            );
            n += 1;
        }
        assert_eq!(n, INSERTS.len() + 7);
    }

    #[test]
    fn the_spend_connection_keeps_a_small_page_cache_of_a_file_database() {
        let dir = tempfile::tempdir().unwrap();
        let cache_kib = |target: &SqliteTarget| -> i64 {
            let conn = open(target).unwrap();
            conn.query_row("PRAGMA cache_size", [], |r| r.get(0))
                .unwrap()
        };
        let file = SqliteTarget {
            path: dir.path().join("spend.db"),
            in_memory: false,
        };
        // sqlx creates the file; the thread only opens it.
        std::fs::File::create(&file.path).unwrap();
        assert_eq!(cache_kib(&file), -i64::from(WRITER_CACHE_KIB));
        let memory = SqliteTarget {
            path: PathBuf::from("file:writer-cache-test?mode=memory&cache=shared"),
            in_memory: true,
        };
        assert_eq!(cache_kib(&memory), -2000, "SQLite's default");
    }
}
