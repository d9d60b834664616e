//! SQLite runs each pooled connection on a worker thread of its own (sqlx), and spend batches on
//! the store's spend thread (`spend/sqlite_writer.rs`). On a gateway with one core those threads
//! take turns with the thread that serves calls, so database work can hold a call back. A higher
//! nice value for them lets the kernel run the serving thread first whenever it has work, and
//! the database work in the gaps; at a moderate value they still get a fair share under full
//! load, so spend keeps up.

/// How much nicer than the calling thread SQLite's worker threads are made (nice values run
/// from -20 to 19; higher runs later).
const NICER_BY: i32 = 5;

/// The name prefix sqlx gives SQLite worker threads (a thread name is at most 15 bytes in
/// `/proc`, so only a prefix is compared).
const WORKER_PREFIX: &[u8] = b"sqlx-sqlite-wor";

/// The nice value for a database thread started by a thread at nice `own`.
#[cfg(target_os = "linux")]
fn nicer_than(own: i32) -> i32 {
    own.saturating_add(NICER_BY).min(19)
}

/// Makes every SQLite worker thread of this process a little nicer than the calling thread
/// (the one serving calls), where it is not yet; returns how many threads it changed.
/// Connections are opened lazily and may be replaced, so callers repeat this now and then; a
/// thread already done costs only a read of its name.
#[cfg(target_os = "linux")]
pub fn deprioritize_sqlite_workers() -> usize {
    let Ok(own) = rustix::process::getpriority_process(None) else {
        return 0;
    };
    let nice = nicer_than(own);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut changed = 0;
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        else {
            continue;
        };
        let is_worker = std::fs::read(task.path().join("comm"))
            .is_ok_and(|name| name.starts_with(WORKER_PREFIX));
        if !is_worker {
            continue;
        }
        // On Linux a thread id names that one thread for getpriority/setpriority.
        let current = rustix::process::getpriority_process(Some(tid));
        if current.is_ok_and(|p| p == nice) {
            continue;
        }
        if rustix::process::setpriority_process(Some(tid), nice).is_ok() {
            changed += 1;
        }
    }
    changed
}

#[cfg(not(target_os = "linux"))]
pub fn deprioritize_sqlite_workers() -> usize {
    0
}

/// Makes the calling thread (the store's own spend thread) as much nicer than the thread that
/// started it as sqlx's workers are made. Returns whether it changed.
#[cfg(target_os = "linux")]
pub(crate) fn deprioritize_this_thread() -> bool {
    // On Linux the nice value is per thread, and "this process" (None) means the calling thread.
    let Ok(own) = rustix::process::getpriority_process(None) else {
        return false;
    };
    rustix::process::setpriority_process(None, nicer_than(own)).is_ok()
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn deprioritize_this_thread() -> bool {
    false
}
