//! SQLite runs each pooled connection on a worker thread of its own (sqlx). On a gateway with one
//! core those threads take turns with the thread that serves calls, so a spend batch being
//! committed can hold a call back for milliseconds. A higher nice value for the workers lets the
//! kernel run the serving thread first whenever it has work, and the database work in the gaps;
//! at a moderate value the workers still get a fair share under full load, so spend keeps up.

/// How much nicer than the calling thread SQLite's worker threads are made (nice values run
/// from -20 to 19; higher runs later).
const NICER_BY: i32 = 5;

/// The name prefix sqlx gives SQLite worker threads (a thread name is at most 15 bytes in
/// `/proc`, so only a prefix is compared).
const WORKER_PREFIX: &[u8] = b"sqlx-sqlite-wor";

/// Makes every SQLite worker thread of this process a little nicer than the calling thread
/// (the one serving calls), where it is not yet; returns how many threads it changed.
/// Connections are opened lazily and may be replaced, so callers repeat this now and then; a
/// thread already done costs only a read of its name.
#[cfg(target_os = "linux")]
pub fn deprioritize_sqlite_workers() -> usize {
    let Ok(own) = rustix::process::getpriority_process(None) else {
        return 0;
    };
    let nice = own.saturating_add(NICER_BY).min(19);
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_workers_get_the_nice_value_and_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = crate::Store::open_sqlite_file(path.to_str().unwrap())
            .await
            .unwrap();
        store.ping().await.unwrap();
        let own = rustix::process::getpriority_process(None).unwrap();
        assert!(deprioritize_sqlite_workers() >= 1);
        // Already done: nothing changes the second time.
        assert_eq!(deprioritize_sqlite_workers(), 0);
        let mut workers = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let name = std::fs::read(task.path().join("comm")).unwrap();
            if name.starts_with(WORKER_PREFIX) {
                workers += 1;
                let tid: i32 = task.file_name().to_str().unwrap().parse().unwrap();
                let pid = rustix::process::Pid::from_raw(tid).unwrap();
                assert_eq!(
                    rustix::process::getpriority_process(Some(pid)).unwrap(),
                    (own + NICER_BY).min(19)
                );
            }
        }
        assert!(workers >= 1);
        // The calling thread itself is left alone.
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), own);
        store.close().await;
    }
}
