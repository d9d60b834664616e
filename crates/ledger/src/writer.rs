//! The batched spend writer. The hot path hands each finished call's record to a bounded queue
//! and moves on; one task commits records in batches (one transaction each, idempotent by
//! request id). A store outage keeps the pending batch and retries; past the bound, records are
//! dropped and counted, loudly, rather than growing memory without limit.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex, Notify};
use tokio::task::JoinHandle;
use tollgate_store::{SpendRecord, Store};

use crate::budgets::Budgets;
use crate::journal::Journal;

/// A queued record and its journal sequence number (0 without a journal).
type Queued = (u64, SpendRecord);

/// Records waiting for the store, oldest first, with their journal sequence numbers kept beside
/// them rather than with each: a batch is then the records themselves, moved out and back
/// (where it was once a copy of each, ~1 % of a call's CPU).
#[derive(Default)]
struct Pending {
    records: VecDeque<SpendRecord>,
    seqs: VecDeque<u64>,
}

impl Pending {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn push_back(&mut self, (seq, record): Queued) {
        self.seqs.push_back(seq);
        self.records.push_back(record);
    }

    fn pop_front(&mut self) -> Option<SpendRecord> {
        self.seqs.pop_front();
        self.records.pop_front()
    }

    /// Takes the oldest `n` records (at most all) out, to be written, with the last journal
    /// sequence number among them; their sequence numbers stay until `written` or `put_back`.
    fn take_oldest(&mut self, n: usize) -> (Vec<SpendRecord>, u64) {
        let n = n.min(self.records.len());
        let last_seq = self.seqs.iter().take(n).copied().max().unwrap_or(0);
        (self.records.drain(..n).collect(), last_seq)
    }

    /// The records taken out are committed: their sequence numbers go too.
    fn written(&mut self, n: usize) {
        let n = n.min(self.seqs.len());
        self.seqs.drain(..n);
    }

    /// The records taken out were not committed: they go back in front, in their order.
    fn put_back(&mut self, batch: Vec<SpendRecord>) {
        for r in batch.into_iter().rev() {
            self.records.push_front(r);
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Longest a record waits before it is committed (LiteLLM's `proxy_batch_write_at`, but
    /// ≤ 1 s by default so a crash loses at most a second).
    pub flush_interval: Duration,
    /// Most records in one transaction.
    pub max_batch: usize,
    /// Records that may wait (queued or pending a retry) before new ones are dropped.
    pub capacity: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            flush_interval: Duration::from_millis(500),
            max_batch: 500,
            capacity: 100_000,
        }
    }
}

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub written: AtomicU64,
    pub duplicates: AtomicU64,
    pub dropped: AtomicU64,
    pub flush_errors: AtomicU64,
    pub pending: AtomicU64,
    /// Records the journal could not take (disk full, …); they still went to the store.
    pub journal_errors: AtomicU64,
    /// The last batch the writer tried was not committed (the store is failing, not just busy).
    pub store_failing: AtomicBool,
}

pub struct SpendWriter {
    tx: mpsc::Sender<Queued>,
    journal: Option<Arc<Journal>>,
    stats: Arc<WriterStats>,
    capacity: u64,
    /// Woken after each committed batch: calls waiting for room in the backlog.
    room: Arc<Notify>,
    /// Grouped journal lines: `due` wakes the task that writes them, `written` the calls
    /// waiting for theirs.
    journal_due: Arc<Notify>,
    journal_written: Arc<Notify>,
    shutdown: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

/// A record's place in the journal, for `SpendWriter::journaled`.
#[must_use = "a call's answer should end only once its record is journaled"]
pub struct JournalTicket(Option<u64>);

impl SpendWriter {
    pub fn spawn(store: Store, config: WriterConfig) -> Arc<SpendWriter> {
        Self::spawn_with_budgets(store, config, Budgets::new(), None)
    }

    /// A writer that tells `budgets` which records it committed, under the budgets' commit lock,
    /// and, with a journal, appends each record to it before queueing it.
    pub fn spawn_with_budgets(
        store: Store,
        config: WriterConfig,
        budgets: Arc<Budgets>,
        journal: Option<Arc<Journal>>,
    ) -> Arc<SpendWriter> {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let stats = Arc::new(WriterStats::default());
        let capacity = config.capacity as u64;
        let sink = Sink {
            store,
            budgets,
            journal: journal.clone(),
        };
        let room = Arc::new(Notify::new());
        let task = tokio::spawn(run(sink, config, rx, stop_rx, stats.clone(), room.clone()));
        let journal_due = Arc::new(Notify::new());
        let journal_written = Arc::new(Notify::new());
        if let Some(j) = journal.clone() {
            // Not stopped by `shutdown`: a call still finishing then waits for its line, and a
            // line written after the journal was cleared is replayed by the next start.
            tokio::spawn(write_journal_when_due(
                j,
                journal_due.clone(),
                journal_written.clone(),
                stats.clone(),
            ));
        }
        Arc::new(SpendWriter {
            tx,
            journal,
            stats,
            capacity,
            room,
            journal_due,
            journal_written,
            shutdown: Mutex::new(Some((stop_tx, task))),
        })
    }

    /// Queues a record without waiting (after appending it to the journal, when there is
    /// one). A full queue drops it and counts the loss.
    pub fn record(&self, record: SpendRecord) {
        // A refused record comes back as its request id, for the log line.
        let sent = match &self.journal {
            None => self.send(0, record),
            Some(j) => {
                let (sent, failed) = j.append(record, |seq, r| self.send(seq, r));
                self.journal_failed(failed);
                sent
            }
        };
        self.sent(sent);
    }

    /// As `record`, but the journal line is written together with those of the other calls
    /// finishing at the same moment (one `write` for all, instead of one each): the caller
    /// awaits `journaled` with the ticket before its answer ends.
    pub fn record_grouped(&self, record: SpendRecord) -> JournalTicket {
        let Some(j) = &self.journal else {
            self.record(record);
            return JournalTicket(None);
        };
        let (sent, seq, failed) = j.append_buffered(record, |seq, r| self.send(seq, r));
        self.journal_failed(failed);
        self.sent(sent);
        // The writing task runs once the calls ready now have had their turn (and buffered
        // their lines), so one write carries them all.
        self.journal_due.notify_one();
        JournalTicket(Some(seq))
    }

    /// Returns once the ticket's journal line is written (or its write failed, which is
    /// logged and counted).
    pub async fn journaled(&self, ticket: JournalTicket) {
        let (Some(j), Some(seq)) = (&self.journal, ticket.0) else {
            return;
        };
        loop {
            // Registered before the check, so a write finishing in between still wakes it.
            let written = self.journal_written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if j.written_through(seq) {
                return;
            }
            written.await;
        }
    }

    fn send(&self, seq: u64, r: SpendRecord) -> Result<(), String> {
        self.tx
            .try_send((seq, r))
            .map_err(|e| e.into_inner().1.request_id)
    }

    /// Counts and logs a record the journal could not take.
    fn journal_failed(&self, failed: Option<crate::journal::JournalError>) {
        if let Some(e) = failed {
            self.stats.journal_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "spend record not journaled; it is still queued for the store");
        }
    }

    /// Counts a record queued, or logs and counts one dropped (its request id given).
    fn sent(&self, sent: Result<(), String>) {
        match sent {
            Ok(()) => {
                self.stats.pending.fetch_add(1, Ordering::Relaxed);
            }
            Err(request_id) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    request_id = %request_id,
                    "spend record dropped: the spend queue is full or closed"
                );
            }
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// False while the store has been failing long enough that the buffer is nearly full: new
    /// calls are then refused (fail closed) rather than served without a record of their cost.
    /// The margin leaves room for calls already in flight.
    pub fn accepting(&self) -> bool {
        let pending = self.stats.pending.load(Ordering::Relaxed);
        pending.saturating_add(self.capacity / 10) < self.capacity
    }

    /// Whether a new call may go ahead, waiting up to `max_wait` for room while the store is
    /// committing but slower than calls arrive: the gateway then slows to the database's pace
    /// instead of refusing calls. A failing store is not waited for.
    pub async fn wait_for_room(&self, max_wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            // Registered before the checks, so a batch committed in between still wakes it.
            let committed = self.room.notified();
            tokio::pin!(committed);
            committed.as_mut().enable();
            if self.accepting() {
                return true;
            }
            if self.stats.store_failing.load(Ordering::Relaxed) {
                return false;
            }
            if tokio::time::timeout_at(deadline, committed).await.is_err() {
                return self.accepting();
            }
        }
    }

    /// Commits everything queued so far and stops the writer. Idempotent.
    pub async fn shutdown(&self) {
        let taken = self.shutdown.lock().await.take();
        if let Some((stop, task)) = taken {
            let _ = stop.send(());
            if let Err(e) = task.await {
                tracing::error!(error = %e, "spend writer task failed");
            }
        }
    }
}

struct Sink {
    store: Store,
    budgets: Arc<Budgets>,
    journal: Option<Arc<Journal>>,
}

async fn run(
    store: Sink,
    config: WriterConfig,
    mut rx: mpsc::Receiver<Queued>,
    mut stop: oneshot::Receiver<()>,
    stats: Arc<WriterStats>,
    room: Arc<Notify>,
) {
    let mut pending = Pending::default();
    let mut ticker = tokio::time::interval(config.flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            got = rx.recv() => match got {
                Some(r) => {
                    pending.push_back(r);
                    while pending.len() < config.max_batch {
                        match rx.try_recv() {
                            Ok(r) => pending.push_back(r),
                            Err(_) => break,
                        }
                    }
                    enforce_bound(&mut pending, config.capacity, &stats);
                    if pending.len() >= config.max_batch && failures == 0 {
                        failures = flush(&store, &mut pending, config.max_batch, &stats, failures).await;
                        after_flush(failures, &stats, &room);
                    }
                }
                None => break,
            },
            _ = ticker.tick() => {
                // The pool opens connections (and so worker threads) as it needs them.
                tollgate_store::deprioritize_sqlite_workers();
                if !pending.is_empty() {
                    failures = flush(&store, &mut pending, config.max_batch, &stats, failures).await;
                    after_flush(failures, &stats, &room);
                }
                if let Some(j) = &store.journal {
                    // Lines of calls whose answers were dropped before they waited for them.
                    write_buffered_lines(j, &stats);
                    sync_journal(j.clone()).await;
                }
            }
        }
    }
    // Shutdown: take what is still queued and commit it, retrying briefly.
    while let Ok(r) = rx.try_recv() {
        pending.push_back(r);
    }
    for attempt in 0..5u32 {
        while !pending.is_empty() {
            let before = pending.len();
            flush(&store, &mut pending, config.max_batch, &stats, 0).await;
            if pending.len() == before {
                break;
            }
        }
        if pending.is_empty() {
            if let Some(j) = &store.journal {
                if let Err(e) = j.clear() {
                    tracing::warn!(error = %e, "the spend journal was committed but could not be cleared; the next start replays it harmlessly");
                }
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(200 * (attempt as u64 + 1))).await;
    }
    if !pending.is_empty() {
        stats
            .dropped
            .fetch_add(pending.len() as u64, Ordering::Relaxed);
        tracing::error!(
            records = pending.len(),
            "spend records could not be written before shutdown"
        );
    }
}

/// Writes the journal's buffered lines each time calls have buffered some, then wakes the
/// calls waiting for them.
async fn write_journal_when_due(
    journal: Arc<Journal>,
    due: Arc<Notify>,
    written: Arc<Notify>,
    stats: Arc<WriterStats>,
) {
    loop {
        due.notified().await;
        write_buffered_lines(&journal, &stats);
        written.notify_waiters();
    }
}

fn write_buffered_lines(journal: &Journal, stats: &WriterStats) {
    if let Err((e, lines)) = journal.write_buffered() {
        stats.journal_errors.fetch_add(lines, Ordering::Relaxed);
        tracing::error!(error = %e, records = lines, "spend records not journaled; they are still queued for the store");
    }
}

/// Tells calls waiting for room how the last batch went.
fn after_flush(failures: u32, stats: &WriterStats, room: &Notify) {
    stats.store_failing.store(failures > 0, Ordering::Relaxed);
    if failures == 0 {
        room.notify_waiters();
    }
}

/// Fsyncs the journal on the blocking pool: the disk's latency must not stall the writer.
async fn sync_journal(journal: Arc<Journal>) {
    match tokio::task::spawn_blocking(move || journal.sync()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "spend journal sync failed"),
        Err(e) => tracing::warn!(error = %e, "spend journal sync task failed"),
    }
}

fn enforce_bound(pending: &mut Pending, capacity: usize, stats: &WriterStats) {
    while pending.len() > capacity {
        if let Some(r) = pending.pop_front() {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            stats.pending.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(request_id = %r.request_id, "spend record dropped: the store has been failing and the buffer is full");
        }
    }
}

/// Commits up to `max_batch` records. Returns the new consecutive-failure count; on failure the
/// records stay pending for the next tick.
async fn flush(
    sink: &Sink,
    pending: &mut Pending,
    max_batch: usize,
    stats: &WriterStats,
    failures: u32,
) -> u32 {
    let (batch, last_seq) = pending.take_oldest(max_batch);
    let n = batch.len();
    let batch_guard = sink.budgets.batch_guard().await;
    // Moved to the store and back: with SQLite the batch is written on a thread of its own. The
    // store closes the commit gate just before it commits and hands it back closed, so the
    // budgets never see a batch both in the store and as unflushed.
    let (batch, result) = sink
        .store
        .insert_spend_gated(batch, sink.budgets.commit_gate())
        .await;
    let result = result.map(|(inserted, commit_guard)| {
        sink.budgets.committed(&batch);
        drop(commit_guard);
        inserted
    });
    drop(batch_guard);
    match result {
        Ok(inserted) => {
            pending.written(n);
            if let Some(j) = &sink.journal {
                j.committed_through(last_seq);
            }
            // First off the backlog, then counted as written: in the other order /metrics
            // could read a batch as both written and waiting.
            stats.pending.fetch_sub(n as u64, Ordering::Relaxed);
            stats.written.fetch_add(inserted as u64, Ordering::Relaxed);
            stats
                .duplicates
                .fetch_add(n.saturating_sub(inserted) as u64, Ordering::Relaxed);
            if failures > 0 {
                tracing::info!("spend writer recovered; the store accepts writes again");
            }
            0
        }
        Err(e) => {
            pending.put_back(batch);
            stats.flush_errors.fetch_add(1, Ordering::Relaxed);
            if failures == 0 || failures.is_power_of_two() {
                tracing::error!(error = %e, pending = pending.len(), "spend batch not written; will retry");
            }
            failures.saturating_add(1)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::Utc;
    use tollgate_store::SpendStatus;

    pub(crate) fn rec(id: &str) -> SpendRecord {
        let now = Utc::now();
        SpendRecord {
            request_id: id.into(),
            call_type: "chat_completion".into(),
            api_key: String::new(),
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
            start_time: now,
            end_time: now,
            completion_start_time: None,
            request_duration_ms: 1,
            ttft_ms: None,
            metadata: serde_json::json!({}),
        }
    }

    /// A migrated SQLite store in a folder that lives as long as the returned guard.
    async fn sqlite_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("w.db").display());
        (dir, Store::open(Some(&url)).await.unwrap())
    }

    /// Another connection holding SQLite's write lock (until it commits): batches wait for it.
    async fn hold_write_lock(store: &Store) -> sqlx::pool::PoolConnection<sqlx::Sqlite> {
        let tollgate_store::Backend::Sqlite(pool) = store.backend() else {
            panic!("SQLite");
        };
        let mut blocker = pool.acquire().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *blocker)
            .await
            .unwrap();
        blocker
    }

    #[tokio::test]
    async fn shutdown_flushes_everything_once() {
        let (_dir, store) = sqlite_store().await;
        let w = SpendWriter::spawn(
            store.clone(),
            WriterConfig {
                flush_interval: Duration::from_secs(3600),
                max_batch: 7,
                capacity: 1000,
            },
        );
        for i in 0..50 {
            w.record(rec(&format!("r{i}")));
        }
        // The same request id twice is stored once.
        w.record(rec("r0"));
        w.shutdown().await;
        assert_eq!(store.count_spend_logs().await.unwrap(), 50);
        assert_eq!(w.stats().written.load(Ordering::Relaxed), 50);
        assert_eq!(w.stats().duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(w.stats().pending.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_busy_store_slows_calls_to_its_pace_and_a_failing_one_refuses_them() {
        let (_dir, store) = sqlite_store().await;
        let w = SpendWriter::spawn(
            store.clone(),
            WriterConfig {
                flush_interval: Duration::from_millis(20),
                max_batch: 100,
                capacity: 20,
            },
        );
        // Another connection holds SQLite's write lock: the writer's batch waits for it.
        let mut blocker = hold_write_lock(&store).await;
        for i in 0..19 {
            w.record(rec(&format!("r{i}")));
        }
        assert!(!w.accepting(), "the backlog is past the refusal line");
        let waiting = tokio::spawn({
            let w = w.clone();
            async move { w.wait_for_room(Duration::from_secs(4)).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "a call waits while the batch does");
        sqlx::query("COMMIT").execute(&mut *blocker).await.unwrap();
        assert!(waiting.await.unwrap(), "room once the batch committed");
        assert!(w.accepting());
        assert_eq!(store.count_spend_logs().await.unwrap(), 19);

        // A store that fails is not waited for.
        drop(blocker);
        store.close().await;
        for i in 0..19 {
            w.record(rec(&format!("f{i}")));
        }
        for _ in 0..200 {
            if w.stats().store_failing.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(w.stats().store_failing.load(Ordering::Relaxed));
        let asked = std::time::Instant::now();
        assert!(!w.wait_for_room(Duration::from_secs(4)).await);
        assert!(asked.elapsed() < Duration::from_secs(1), "refused at once");
    }

    /// A batch takes the budgets' commit lock only to commit: while it waits for SQLite's write
    /// lock (as it would while writing its rows), a key can still be loaded from the store.
    #[tokio::test]
    async fn a_batch_before_its_commit_holds_no_key_load_back() {
        let (_dir, store) = sqlite_store().await;
        let budgets = Budgets::new();
        let w = SpendWriter::spawn_with_budgets(
            store.clone(),
            WriterConfig {
                flush_interval: Duration::from_millis(20),
                max_batch: 100,
                capacity: 1000,
            },
            budgets.clone(),
            None,
        );
        let mut blocker = hold_write_lock(&store).await;
        w.record(rec("a"));
        // The batch has started and waits for the write lock.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let load = tokio::time::timeout(Duration::from_millis(200), budgets.read_guard()).await;
        assert!(
            load.is_ok(),
            "a key load waited for a batch that had not reached its commit"
        );
        drop(load);
        sqlx::query("COMMIT").execute(&mut *blocker).await.unwrap();
        drop(blocker);
        w.shutdown().await;
        assert_eq!(store.count_spend_logs().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn flushes_on_the_interval() {
        let (_dir, store) = sqlite_store().await;
        let w = SpendWriter::spawn(
            store.clone(),
            WriterConfig {
                flush_interval: Duration::from_millis(50),
                ..WriterConfig::default()
            },
        );
        w.record(rec("a"));
        let mut n = 0;
        for _ in 0..100 {
            n = store.count_spend_logs().await.unwrap();
            if n == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(n, 1);
        w.shutdown().await;
    }

    /// Lines in the journal's files that name `id` (all lines when `id` is empty).
    fn journal_lines(jdir: &std::path::Path, id: &str) -> usize {
        std::fs::read_dir(jdir)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .map(|t| {
                t.lines()
                    .filter(|l| l.contains(&format!("\"request_id\":\"{id}")))
                    .count()
            })
            .sum()
    }

    #[tokio::test]
    async fn grouped_records_are_journaled_in_one_write_before_their_calls_go_on() {
        let (dir, store) = sqlite_store().await;
        let jdir = dir.path().join("journal");
        let (journal, _) = Journal::open(&jdir, &store).await.unwrap();
        let w = SpendWriter::spawn_with_budgets(
            store.clone(),
            WriterConfig {
                flush_interval: Duration::from_secs(3600),
                ..WriterConfig::default()
            },
            Budgets::new(),
            Some(Arc::new(journal)),
        );
        // Twenty calls finishing in the same turn of this single-threaded runtime.
        let calls: Vec<_> = (0..20)
            .map(|i| {
                let (w, jdir) = (w.clone(), jdir.clone());
                tokio::spawn(async move {
                    let id = format!("g{i}-");
                    let ticket = w.record_grouped(rec(&id));
                    w.journaled(ticket).await;
                    // Its own line is on disk when the call goes on, and so are the others'.
                    (journal_lines(&jdir, &id), journal_lines(&jdir, ""))
                })
            })
            .collect();
        let mut seen = Vec::new();
        for c in calls {
            seen.push(c.await.unwrap());
        }
        assert!(seen.iter().all(|&(own, _)| own == 1), "{seen:?}");
        assert_eq!(seen[0].1, 20, "one write carried every call's line");
        assert_eq!(w.stats().journal_errors.load(Ordering::Relaxed), 0);
        w.shutdown().await;
        assert_eq!(store.count_spend_logs().await.unwrap(), 20);
    }
}
