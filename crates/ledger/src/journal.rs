//! The spend journal: every finished call's record is appended to a local file before the answer
//! ends, so a killed process loses no spend; the next start replays what the store never got.
//!
//! The append is a plain `write` into the page cache (a few microseconds, no fsync on the hot
//! path), which survives the process dying in any way. Calls that finish at the same moment can
//! share one `write`: their lines are buffered and written together before any of their answers
//! ends (the spend writer's `record_grouped` and `journaled`). The spend writer fsyncs the
//! journal on its own tick, so an operating-system crash or power loss loses at most one flush
//! interval. Files are segments of JSON lines; a segment is deleted once the writer has
//! committed every record in it. Replay inserts by request id, which the store does
//! idempotently, so replaying records that were in fact committed counts nothing twice.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tollgate_store::{SpendRecord, Store, StoreError};

/// A segment is closed and a new one started past this size, so committed records can be
/// deleted while the process runs.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Records per store transaction during replay (and so records held in memory at once).
const REPLAY_BATCH: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("spend journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("replaying the spend journal into the store failed")]
    Store(#[source] StoreError),
    #[error("a spend record could not be encoded for the journal")]
    Encode(#[source] serde_json::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a start found in the journal.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// Records read back and handed to the store.
    pub records: u64,
    /// Of those, the ones the store did not have yet (lost without the journal).
    pub inserted: u64,
    /// Lines that could not be read: the last one of a segment cut by a crash mid-write.
    pub torn: u64,
}

pub struct Journal {
    dir: PathBuf,
    /// Sequence numbers and the lines waiting: taken by every call, briefly.
    state: Mutex<State>,
    /// The open segment: held by the one writing, for the `write` itself, so a call buffering
    /// its line never waits on the disk. Taken before `state` wherever both are.
    segment: Mutex<Segment>,
    /// The writer committed every record up to this sequence number.
    committed: AtomicU64,
}

struct State {
    /// Sequence number of the last record appended.
    seq: u64,
    /// Sequence number of the last record whose line was written (or whose write failed).
    written: u64,
    /// Lines appended but not yet written, and how many.
    buffered: Vec<u8>,
    buffered_lines: u64,
    /// Closed segments and the last sequence number each holds.
    closed: Vec<(PathBuf, u64)>,
}

struct Segment {
    /// The open segment; opened by the first write after a start, a rotation or a clear.
    open: Option<(File, PathBuf)>,
    bytes: u64,
    /// Each start names its segments apart, so a segment left by an earlier run is never
    /// appended to.
    run: u64,
    /// The buffer written last, cleared: the next write swaps it in for the lines buffered by
    /// then, so neither side allocates.
    spare: Vec<u8>,
}

impl Journal {
    /// Replays whatever an earlier run left in `dir` into `store`, deletes it once stored, and
    /// opens a fresh segment. Segments that could not be replayed (the store is down) stay for
    /// the next start.
    pub async fn open(dir: &Path, store: &Store) -> Result<(Journal, Replay), JournalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let replay = replay(dir, store).await?;
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let journal = Journal {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                seq: 0,
                written: 0,
                buffered: Vec::with_capacity(16 * 1024),
                buffered_lines: 0,
                closed: Vec::new(),
            }),
            segment: Mutex::new(Segment {
                open: None,
                bytes: 0,
                run,
                spare: Vec::with_capacity(16 * 1024),
            }),
            committed: AtomicU64::new(0),
        };
        Ok((journal, replay))
    }

    /// Appends one record, then hands it with its sequence number to `then` under the same
    /// lock, so whatever `then` queues is queued in sequence order. The record is handed on even
    /// when the append failed; the error comes back beside `then`'s answer. Lines buffered by
    /// `append_buffered` go out in the same write.
    pub fn append<T>(
        &self,
        record: SpendRecord,
        then: impl FnOnce(u64, SpendRecord) -> T,
    ) -> (T, Option<JournalError>) {
        let mut seg = self.lock_segment();
        let (answer, _, encoded) = self.append_buffered(record, then);
        let written = encoded.map_or_else(|| self.write_with(&mut seg).map_err(|(e, _)| e), Err);
        (answer, written.err())
    }

    /// As `append`, but the line is only buffered: it is written by the next `write_buffered`,
    /// together with every other line buffered by then. Returns `then`'s answer, the record's
    /// sequence number and an encoding error, if any.
    pub fn append_buffered<T>(
        &self,
        record: SpendRecord,
        then: impl FnOnce(u64, SpendRecord) -> T,
    ) -> (T, u64, Option<JournalError>) {
        let mut st = self.lock();
        let (seq, encoded) = buffer_line(&mut st, &record);
        (then(seq, record), seq, encoded.err())
    }

    /// Writes every buffered line in one call. On failure the lines are not retried (their
    /// records still went to the store) and the error comes back with how many were lost.
    pub fn write_buffered(&self) -> Result<(), (JournalError, u64)> {
        self.write_with(&mut self.lock_segment())
    }

    /// `write_buffered` with the segment held: the lines are taken under the state lock and
    /// written outside it.
    fn write_with(&self, seg: &mut Segment) -> Result<(), (JournalError, u64)> {
        let (lines, through, first) = {
            let mut st = self.lock();
            if st.buffered_lines == 0 {
                return Ok(());
            }
            std::mem::swap(&mut st.buffered, &mut seg.spare);
            (
                std::mem::take(&mut st.buffered_lines),
                st.seq,
                st.written + 1,
            )
        };
        let result = write_lines(&self.dir, seg, first);
        seg.spare.clear();
        let closed = if seg.bytes >= SEGMENT_BYTES {
            seg.bytes = 0;
            seg.open.take().map(|(_, path)| path)
        } else {
            None
        };
        let mut st = self.lock();
        st.written = through;
        st.closed.extend(closed.map(|path| (path, through)));
        drop(st);
        result.map_err(|e| (e, lines))
    }

    /// Whether the line of record `seq` was written (or its write failed, already reported).
    pub fn written_through(&self, seq: u64) -> bool {
        self.lock().written >= seq
    }

    /// The writer committed (or gave up on) every record up to `seq`: segments holding only
    /// such records are deleted.
    pub fn committed_through(&self, seq: u64) {
        self.committed.fetch_max(seq, Ordering::Relaxed);
        let mut st = self.lock();
        let done = self.committed.load(Ordering::Relaxed);
        st.closed.retain(|(path, last)| {
            if *last > done {
                return true;
            }
            match remove_if_present(path) {
                Ok(()) => false,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not delete a committed spend journal segment");
                    true
                }
            }
        });
    }

    /// Forces what was appended so far to disk (an fsync on a second handle, so appends are
    /// not held up while the disk works).
    pub fn sync(&self) -> Result<(), JournalError> {
        let open = {
            let seg = self.lock_segment();
            match &seg.open {
                Some((file, path)) => Some((file.try_clone().map_err(io_err(path))?, path.clone())),
                None => None,
            }
        };
        match open {
            Some((file, path)) => file.sync_data().map_err(io_err(&path)),
            None => Ok(()),
        }
    }

    /// Everything appended was committed: the whole journal can go (a clean shutdown).
    pub fn clear(&self) -> Result<(), JournalError> {
        let mut seg = self.lock_segment();
        let mut st = self.lock();
        seg.bytes = 0;
        st.buffered.clear();
        st.buffered_lines = 0;
        st.written = st.seq;
        if let Some((_, path)) = seg.open.take() {
            remove_if_present(&path)?;
        }
        for (p, _) in std::mem::take(&mut st.closed) {
            remove_if_present(&p)?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_segment(&self) -> MutexGuard<'_, Segment> {
        self.segment.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Encodes `record` as the next buffered line; returns its sequence number.
fn buffer_line(st: &mut State, record: &SpendRecord) -> (u64, Result<(), JournalError>) {
    st.seq += 1;
    let start = st.buffered.len();
    let encoded = record
        .write_json(&mut st.buffered)
        .map_err(JournalError::Encode);
    match encoded {
        Ok(()) => {
            st.buffered.push(b'\n');
            st.buffered_lines += 1;
        }
        // Nothing of a line that could not be encoded is kept.
        Err(_) => st.buffered.truncate(start),
    }
    if st.buffered_lines == 0 {
        // Nothing waits to be written: this record counts as written (and failed) now.
        st.written = st.seq;
    }
    (st.seq, encoded)
}

/// Writes `seg.spare` (the lines taken) to the open segment, opening one named after `first`,
/// the first line's sequence number, if none is.
fn write_lines(dir: &Path, seg: &mut Segment, first: u64) -> Result<(), JournalError> {
    if seg.open.is_none() {
        seg.open = Some(open_segment(dir, seg.run, first)?);
    }
    if let Some((file, path)) = &mut seg.open {
        // One write call for all buffered lines: a crash leaves at most the last line cut short.
        file.write_all(&seg.spare).map_err(io_err(path))?;
    }
    seg.bytes += seg.spare.len() as u64;
    Ok(())
}

fn open_segment(dir: &Path, run: u64, first_seq: u64) -> Result<(File, PathBuf), JournalError> {
    let path = dir.join(format!("spend-{run:020}-{first_seq:020}.jsonl"));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    Ok((file, path))
}

fn remove_if_present(path: &Path) -> Result<(), JournalError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The segments in `dir`, oldest first (names sort by run, then by first sequence number).
fn segments(dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("spend-") && name.ends_with(".jsonl") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

async fn replay(dir: &Path, store: &Store) -> Result<Replay, JournalError> {
    let mut report = Replay::default();
    for path in segments(dir)? {
        let file = File::open(&path).map_err(io_err(&path))?;
        let mut batch = Vec::with_capacity(REPLAY_BATCH);
        for line in BufReader::new(file).split(b'\n') {
            let line = line.map_err(io_err(&path))?;
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<SpendRecord>(&line) {
                Ok(r) => batch.push(r),
                Err(_) => report.torn += 1,
            }
            if batch.len() >= REPLAY_BATCH {
                insert(store, &mut batch, &mut report).await?;
            }
        }
        insert(store, &mut batch, &mut report).await?;
        remove_if_present(&path)?;
    }
    Ok(report)
}

async fn insert(
    store: &Store,
    batch: &mut Vec<SpendRecord>,
    report: &mut Replay,
) -> Result<(), JournalError> {
    if batch.is_empty() {
        return Ok(());
    }
    let inserted = store
        .insert_spend_batch(batch)
        .await
        .map_err(JournalError::Store)?;
    report.records += batch.len() as u64;
    report.inserted += inserted.len() as u64;
    batch.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::tests::rec;

    async fn store(dir: &Path) -> Store {
        let url = format!("sqlite:{}", dir.join("j.db").display());
        Store::open(Some(&url)).await.unwrap()
    }

    #[tokio::test]
    async fn a_journal_left_by_a_crash_is_replayed_once() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("journal");
        let store = store(dir.path()).await;
        {
            let (j, replay) = Journal::open(&jdir, &store).await.unwrap();
            assert_eq!(replay, Replay::default());
            for i in 0..1200 {
                assert!(j.append(rec(&format!("r{i}")), |_, _| ()).1.is_none());
            }
            // One record reached the store before the "crash"; it must not count twice.
            store.insert_spend_batch(&[rec("r0")]).await.unwrap();
            // Dropped without clear(): as if the process was killed.
        }
        // A crash mid-write leaves a cut line at the end of a segment.
        let seg = segments(&jdir).unwrap().pop().unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"request_id\":\"cut").unwrap();
        drop(f);

        let (_j, replay) = Journal::open(&jdir, &store).await.unwrap();
        assert_eq!(replay.records, 1200);
        assert_eq!(replay.inserted, 1199);
        assert_eq!(replay.torn, 1);
        assert_eq!(store.count_spend_logs().await.unwrap(), 1200);
        assert!(
            segments(&jdir).unwrap().len() <= 1,
            "replayed segments are deleted"
        );

        let (_j, again) = Journal::open(&jdir, &store).await.unwrap();
        assert_eq!(again.records, 0, "nothing is replayed twice");
    }

    #[tokio::test]
    async fn committed_segments_are_deleted_and_clear_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("journal");
        let store = store(dir.path()).await;
        let (j, _) = Journal::open(&jdir, &store).await.unwrap();
        let mut big = rec("x");
        big.model = "m".repeat(64 * 1024);
        let mut last = 0;
        for i in 0..300 {
            big.request_id = format!("big{i}");
            last = j.append(big.clone(), |seq, _| seq).0;
        }
        assert_eq!(last, 300);
        assert!(segments(&jdir).unwrap().len() >= 2, "the journal rotated");
        j.committed_through(last);
        assert!(
            segments(&jdir).unwrap().len() <= 1,
            "only the open segment is left"
        );
        j.sync().unwrap();
        j.clear().unwrap();
        assert!(segments(&jdir).unwrap().is_empty());
        // Appends go on after a clear.
        assert_eq!(j.append(rec("after"), |seq, _| seq).0, 301);
    }

    /// Every segment's text, oldest first.
    fn on_disk(jdir: &Path) -> String {
        segments(jdir)
            .unwrap()
            .iter()
            .map(|p| fs::read_to_string(p).unwrap())
            .collect()
    }

    fn lines_on_disk(jdir: &Path) -> usize {
        on_disk(jdir).lines().count()
    }

    #[tokio::test]
    async fn buffered_lines_reach_the_file_together_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("journal");
        let store = store(dir.path()).await;
        let (j, _) = Journal::open(&jdir, &store).await.unwrap();
        let seqs: Vec<u64> = (0..3)
            .map(|i| j.append_buffered(rec(&format!("b{i}")), |_, _| ()).1)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert!(!j.written_through(1));
        assert_eq!(
            lines_on_disk(&jdir),
            0,
            "nothing is written before write_buffered"
        );
        j.write_buffered().unwrap();
        assert!(j.written_through(3));
        assert_eq!(lines_on_disk(&jdir), 3);
        // An immediate append writes whatever is buffered before it, in sequence order.
        j.append_buffered(rec("b3"), |_, _| ());
        j.append(rec("now"), |_, _| ());
        assert!(j.written_through(5));
        let ids: Vec<String> = on_disk(&jdir)
            .lines()
            .map(|l| serde_json::from_str::<SpendRecord>(l).unwrap().request_id)
            .collect();
        assert_eq!(ids, ["b0", "b1", "b2", "b3", "now"]);
        // Nothing is left to write: a second write is a no-op.
        j.write_buffered().unwrap();
        assert_eq!(lines_on_disk(&jdir), 5);
    }

    #[tokio::test]
    async fn calls_buffer_lines_while_a_write_is_under_way() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("journal");
        let (j, _) = Journal::open(&jdir, &store(dir.path()).await)
            .await
            .unwrap();
        let j = std::sync::Arc::new(j);
        j.append_buffered(rec("first"), |_, _| ());
        // The writer holds the segment for its `write`: on another thread, a call can still
        // buffer its line and ask whether an earlier one is written.
        let seg = j.lock_segment();
        let caller = {
            let j = j.clone();
            std::thread::spawn(move || {
                let (_, seq, err) = j.append_buffered(rec("during"), |_, _| ());
                (seq, err.is_none(), j.written_through(1))
            })
        };
        assert_eq!(caller.join().unwrap(), (2, true, false));
        drop(seg);
        j.write_buffered().unwrap();
        assert!(j.written_through(2));
        let ids: Vec<String> = on_disk(&jdir)
            .lines()
            .map(|l| serde_json::from_str::<SpendRecord>(l).unwrap().request_id)
            .collect();
        assert_eq!(ids, ["first", "during"]);
    }
}
