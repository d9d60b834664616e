//! SQLite's worker threads are made nicer than the thread serving calls. Alone in its test
//! binary: it looks at every thread of the process, which other tests would add to meanwhile.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tollgate_store::{deprioritize_sqlite_workers, Store};

fn nice_of(tid: i32) -> i32 {
    let pid = rustix::process::Pid::from_raw(tid).unwrap();
    rustix::process::getpriority_process(Some(pid)).unwrap()
}

fn threads_named(prefix: &[u8]) -> Vec<i32> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        // A thread that ended since the listing has no name to read.
        .filter(|t| std::fs::read(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix)))
        .map(|t| t.file_name().to_str().unwrap().parse().unwrap())
        .collect()
}

fn sqlite_workers() -> Vec<i32> {
    threads_named(b"sqlx-sqlite-wor")
}

#[tokio::test]
async fn sqlite_workers_run_nicer_than_the_caller_and_stay_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = Store::open_sqlite_file(path.to_str().unwrap())
        .await
        .unwrap();
    store.ping().await.unwrap();
    let own = rustix::process::getpriority_process(None).unwrap();
    let workers = sqlite_workers();
    assert!(!workers.is_empty());
    assert!(workers.iter().all(|&t| nice_of(t) == own));

    assert_eq!(deprioritize_sqlite_workers(), workers.len());
    for &t in &workers {
        assert_eq!(nice_of(t), (own + 5).min(19));
    }
    // Already done: nothing changes the second time, and the caller is left alone.
    assert_eq!(deprioritize_sqlite_workers(), 0);
    assert_eq!(rustix::process::getpriority_process(None).unwrap(), own);

    // The spend batches' own thread starts with the first batch, as nice as sqlx's workers.
    assert!(threads_named(b"tollgate-spend").is_empty());
    store.insert_spend_batch(&[]).await.unwrap();
    let (_, inserted) = store.insert_spend_owned(Vec::new()).await;
    assert_eq!(inserted.unwrap(), 0);
    let spend = threads_named(b"tollgate-spend");
    assert_eq!(spend.len(), 1);
    assert_eq!(nice_of(spend[0]), (own + 5).min(19));
    assert_eq!(rustix::process::getpriority_process(None).unwrap(), own);
    store.close().await;
    // Closing the store ends it.
    for _ in 0..100 {
        if threads_named(b"tollgate-spend").is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(threads_named(b"tollgate-spend").is_empty());
}
