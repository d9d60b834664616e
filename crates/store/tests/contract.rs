//! The store contract: every backend must pass the same checks (see `common` for which
//! backends run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{TimeZone, Utc};
use tollgate_store::{SpendRecord, SpendStatus, Store};

mod common;

use common::{backends, with_database};

fn record(id: &str, second: u32) -> SpendRecord {
    let t = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, second).unwrap();
    SpendRecord {
        request_id: id.to_string(),
        call_type: "chat_completion".into(),
        api_key: "ab".repeat(32),
        user_id: Some("u1".into()),
        team_id: None,
        end_user: None,
        model: "gpt-4o-mini".into(),
        model_group: "gpt-4o-mini".into(),
        model_id: Some("0".into()),
        custom_llm_provider: Some("openai".into()),
        spend_nanos: 1234,
        priced: true,
        prompt_tokens: 10,
        completion_tokens: 5,
        cache_read_input_tokens: 2,
        cache_creation_input_tokens: 0,
        usage_estimated: false,
        stream: true,
        status: SpendStatus::Success,
        http_status: 200,
        error_type: None,
        attempts: 1,
        start_time: t,
        end_time: t + chrono::Duration::milliseconds(250),
        completion_start_time: Some(t + chrono::Duration::milliseconds(40)),
        request_duration_ms: 250,
        ttft_ms: Some(40),
        metadata: serde_json::json!({"tags": ["a"]}),
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_ping_works() {
    for db in backends().await {
        db.store.ping().await.unwrap();
        // Opening again must not re-run or fail on the applied migrations.
        if let Some((url, name)) = &db.cleanup {
            let again = Store::open(Some(&with_database(url, name))).await.unwrap();
            again.ping().await.unwrap();
            again.close().await;
        }
        db.drop_db().await;
    }
}

/// A start that waits for its database reaches and migrates it from a spawned task; a store
/// handle is made without reaching anything, and says when the database cannot be reached.
#[tokio::test]
async fn a_lazy_store_prepares_on_a_spawned_task() {
    for empty in common::empty_databases().await {
        let store = Store::connect(Some(&empty.url)).unwrap();
        let s = store.clone();
        tokio::spawn(async move { s.prepare().await })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.schema_version().await.unwrap(),
            Some(tollgate_store::SCHEMA_VERSION)
        );
        store.close().await;
        common::drop_postgres(empty.cleanup.clone()).await;
    }
    let nowhere = Store::connect(Some("postgres://u:secret-pw@127.0.0.1:1/db")).unwrap();
    let e = nowhere.prepare().await.unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert!(!e.to_string().contains("secret-pw"), "{e}");
    assert!(Store::connect(Some("mysql://x")).is_err());
}

#[tokio::test]
async fn spend_batches_round_trip_and_are_idempotent() {
    for db in backends().await {
        let s = &db.store;
        let a = record("req-a", 1);
        let mut b = record("req-b", 2);
        b.status = SpendStatus::Failure;
        b.http_status = 502;
        b.error_type = Some("api_error".into());
        b.completion_start_time = None;
        b.ttft_ms = None;
        b.usage_estimated = true;
        let inserted = s.insert_spend_batch(&[a.clone(), b.clone()]).await.unwrap();
        assert_eq!(inserted, vec!["req-a".to_string(), "req-b".to_string()]);

        // A retried batch, overlapping the first, inserts only what is new.
        let c = record("req-c", 3);
        let inserted = s.insert_spend_batch(&[a.clone(), c.clone()]).await.unwrap();
        assert_eq!(inserted, vec!["req-c".to_string()], "{}", s.backend_name());
        assert_eq!(s.count_spend_logs().await.unwrap(), 3);

        let got = s.get_spend_log("req-b").await.unwrap().unwrap();
        assert_eq!(got, b, "{}", s.backend_name());
        let got = s.get_spend_log("req-a").await.unwrap().unwrap();
        assert_eq!(got, a);
        assert!(s.get_spend_log("missing").await.unwrap().is_none());

        let recent = s.recent_spend_logs(2).await.unwrap();
        let ids: Vec<_> = recent.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, vec!["req-c", "req-b"]);
        db.drop_db().await;
    }
}

/// A migrated SQLite store in a file, its URL, and the folder it lives in (kept as long as the
/// guard is).
async fn sqlite_file_store() -> (tempfile::TempDir, String, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store = Store::open(Some(&url)).await.unwrap();
    (dir, url, store)
}

/// The spend writer's way in moves the records to the store and back: they return as they
/// went, with how many were new, whether the batch was new, a retry, or refused.
#[tokio::test]
async fn owned_batches_come_back_whole() {
    for db in backends().await {
        let s = &db.store;
        let batch = vec![record("own-a", 1), record("own-b", 2)];
        let (back, inserted) = s.insert_spend_owned(batch.clone()).await;
        assert_eq!(back, batch);
        assert_eq!(inserted.unwrap(), 2, "{}", s.backend_name());
        let retry = vec![record("own-b", 2), record("own-c", 3), record("own-c", 3)];
        let (back, inserted) = s.insert_spend_owned(retry.clone()).await;
        assert_eq!(back, retry);
        assert_eq!(inserted.unwrap(), 1, "{}", s.backend_name());
        assert_eq!(s.count_spend_logs().await.unwrap(), 3);
        db.drop_db().await;
    }
}

/// A gated batch writes its rows with the gate open and takes the gate only to commit: while a
/// reader holds the gate the batch waits, uncommitted; once the gate is free the batch commits
/// and comes back with the gate still closed, its rows already visible.
#[tokio::test]
async fn a_gated_batch_takes_its_gate_to_commit_and_hands_it_back() {
    for db in backends().await {
        let s = &db.store;
        {
            let gate = tokio::sync::RwLock::new(());
            let reader = gate.read().await;
            let batch = vec![record("gate-a", 1), record("gate-b", 2)];
            let insert = s.insert_spend_gated(batch.clone(), &gate);
            tokio::pin!(insert);
            let wait = std::time::Duration::from_millis(300);
            assert!(
                tokio::time::timeout(wait, &mut insert).await.is_err(),
                "{}: committed while the gate was held",
                s.backend_name()
            );
            assert_eq!(s.count_spend_logs().await.unwrap(), 0);
            drop(reader);
            let (back, result) = insert.await;
            let (inserted, closed) = result.unwrap();
            assert_eq!((back, inserted), (batch, 2));
            assert!(gate.try_read().is_err(), "the gate comes back closed");
            assert_eq!(s.count_spend_logs().await.unwrap(), 2);
            drop(closed);
            assert!(gate.try_read().is_ok());
        }
        db.drop_db().await;
    }
}

/// A batch the database refuses part-way (here: an aggregate table gone) leaves nothing
/// behind, and its records come back for another try.
#[tokio::test]
async fn a_refused_sqlite_batch_writes_nothing_and_keeps_its_records() {
    let (_dir, url, s) = sqlite_file_store().await;
    let (_, first) = s.insert_spend_owned(vec![record("ok-a", 1)]).await;
    assert_eq!(first.unwrap(), 1);
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE daily_spend_by_team_model")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let batch = vec![record("no-b", 2), record("no-c", 3)];
    let (back, refused) = s.insert_spend_owned(batch.clone()).await;
    let e = refused.unwrap_err();
    assert!(e.to_string().contains("daily aggregates"), "{e}");
    assert_eq!(back, batch);
    assert_eq!(s.count_spend_logs().await.unwrap(), 1);
    assert!(s.get_spend_log("no-b").await.unwrap().is_none());
    s.close().await;
}

/// A statement that fails part-way through a batch, whether a row of a multi-row insert or an
/// aggregate's upsert after the rows and the key's spend went in, leaves the whole batch
/// unwritten and its records handed back. The spend thread runs its statements without a
/// statement journal (`OR FAIL` keeps a failing statement's earlier rows), so this holds only
/// because the batch's transaction goes with them. The failures are triggers raising `FAIL`.
#[tokio::test]
async fn a_statement_failing_part_way_leaves_its_sqlite_batch_unwritten() {
    let (_dir, url, s) = sqlite_file_store().await;
    let token = "ab".repeat(32);
    s.create_key(&tollgate_store::NewKey::new(token.clone(), "sk-...abab"))
        .await
        .unwrap();
    // One connection, not a pool: a pooled connection could still hold the read snapshot of
    // an earlier query, see the schema from before `DROP TRIGGER` and refuse the next trigger
    // as already there.
    let mut raw = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let batch: Vec<_> = (0..100)
        .map(|i| record(&format!("mid-{i:03}"), (i % 60) as u32))
        .collect();
    for trigger in [
        // The 31st row of the first 64-row insert.
        "CREATE TRIGGER poison BEFORE INSERT ON spend_logs WHEN NEW.request_id = 'mid-030' \
         BEGIN SELECT RAISE(FAIL, 'poisoned row'); END",
        // The last statements of the batch, after its rows and the key's spend.
        "CREATE TRIGGER poison BEFORE INSERT ON daily_spend_by_key \
         BEGIN SELECT RAISE(FAIL, 'poisoned rollup'); END",
    ] {
        sqlx::query(trigger).execute(&mut raw).await.unwrap();
        let (back, refused) = s.insert_spend_owned(batch.clone()).await;
        assert!(
            refused.unwrap_err().to_string().contains("spend"),
            "{trigger}"
        );
        assert_eq!(back, batch);
        assert_eq!(s.count_spend_logs().await.unwrap(), 0, "{trigger}");
        let daily: i64 = sqlx::query_scalar("SELECT count(*) FROM daily_spend")
            .fetch_one(&mut raw)
            .await
            .unwrap();
        assert_eq!(daily, 0, "{trigger}");
        assert_eq!(s.get_key(&token).await.unwrap().unwrap().spend_nanos, 0);
        sqlx::query("DROP TRIGGER poison")
            .execute(&mut raw)
            .await
            .unwrap();
    }
    sqlx::Connection::close(raw).await.unwrap();
    let (_, written) = s.insert_spend_owned(batch).await;
    assert_eq!(written.unwrap(), 100);
    assert_eq!(s.count_spend_logs().await.unwrap(), 100);
    assert_eq!(
        s.get_key(&token).await.unwrap().unwrap().spend_nanos,
        100 * 1234
    );
    s.close().await;
}

/// The spend thread checkpoints after each of its commits rather than inside them, so the WAL
/// holds about one batch: 30 batches, together several times SQLite's own checkpoint threshold
/// (1,000 pages), leave it no longer than two batches' frames, and every row is read back.
/// (Calls' times only move forward here, so each batch writes about as many pages as the last.)
#[tokio::test]
async fn the_spend_batches_wal_stays_about_one_batch_long() {
    let (dir, _, s) = sqlite_file_store().await;
    let wal = dir.path().join("t.db-wal");
    let batch = |b: i64| -> Vec<SpendRecord> {
        (0..500)
            .map(|i| {
                let mut r = record(&format!("wal-{b:02}-{i:03}"), 0);
                let later = chrono::Duration::seconds(b * 500 + i);
                r.start_time += later;
                r.end_time += later;
                r.completion_start_time = r.completion_start_time.map(|t| t + later);
                r
            })
            .collect()
    };
    let wal_bytes = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let (_, first) = s.insert_spend_owned(batch(0)).await;
    assert_eq!(first.unwrap(), 500);
    let one_batch = wal_bytes();
    assert!(one_batch > 0, "the batch went through the WAL");
    for b in 1..30 {
        let (_, written) = s.insert_spend_owned(batch(b)).await;
        assert_eq!(written.unwrap(), 500);
    }
    let after = wal_bytes();
    assert!(
        after <= 2 * one_batch,
        "the WAL grew to {after} bytes; one batch wrote {one_batch}"
    );
    assert_eq!(s.count_spend_logs().await.unwrap(), 30 * 500);
    s.close().await;
}

/// A batch whose caller goes away part-way (its future dropped between steps) is rolled back
/// whole, and frees SQLite's write lock for the other writers at once.
#[tokio::test]
async fn an_abandoned_sqlite_batch_leaves_nothing_half_written() {
    let (_dir, _, s) = sqlite_file_store().await;
    let big: Vec<_> = (0..2000)
        .map(|i| record(&format!("gone-{i:04}"), (i % 60) as u32))
        .collect();
    for (n, micros) in [20u64, 200, 1000, 3000, 10_000].into_iter().enumerate() {
        let wait = std::time::Duration::from_micros(micros);
        let _ = tokio::time::timeout(wait, s.insert_spend_owned(big.clone())).await;
        let gone = s.count_spend_logs().await.unwrap() - n as i64;
        assert!(
            gone == 0 || gone == 2000,
            "{gone} rows of a batch dropped after {micros} µs"
        );
        // Another connection's write does not wait for a transaction nobody will finish.
        let token = format!("{n:064}");
        tokio::time::timeout(
            std::time::Duration::from_secs(2),
            s.create_key(&tollgate_store::NewKey::new(token, "sk-...0000")),
        )
        .await
        .expect("the write lock was left held")
        .unwrap();
        let (_, after) = s
            .insert_spend_owned(vec![record(&format!("after-{n}"), 1)])
            .await;
        assert_eq!(after.unwrap(), 1);
    }
    s.close().await;
}

/// Closing the store while a batch is being written ends that batch whole or not at all.
#[tokio::test]
async fn closing_the_store_mid_batch_leaves_nothing_half_written() {
    for micros in [100u64, 500, 2000, 5000] {
        let (_dir, url, s) = sqlite_file_store().await;
        let big: Vec<_> = (0..2000)
            .map(|i| record(&format!("closing-{i:04}"), (i % 60) as u32))
            .collect();
        let writing = tokio::spawn({
            let s = s.clone();
            async move { s.insert_spend_owned(big).await.1 }
        });
        tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
        s.close().await;
        let result = writing.await.unwrap();
        let again = Store::open(Some(&url)).await.unwrap();
        let rows = again.count_spend_logs().await.unwrap();
        match result {
            Ok(inserted) => assert_eq!((inserted, rows), (2000, 2000), "closed after {micros} µs"),
            Err(_) => assert_eq!(rows, 0, "closed after {micros} µs"),
        }
        again.close().await;
    }
}

/// An in-memory SQLite database is one database for the pool and the spend thread alike.
#[tokio::test]
async fn in_memory_sqlite_records_spend() {
    let s = Store::open(Some("sqlite::memory:")).await.unwrap();
    let inserted = s.insert_spend_batch(&[record("mem-a", 1)]).await.unwrap();
    assert_eq!(inserted, vec!["mem-a".to_string()]);
    assert_eq!(s.count_spend_logs().await.unwrap(), 1);
    assert_eq!(
        s.get_spend_log("mem-a").await.unwrap().unwrap(),
        record("mem-a", 1)
    );
    s.close().await;
}

/// A team key's call adds to the user's spend within the team, and only to that member's; a
/// retried batch adds nothing.
#[tokio::test]
async fn team_calls_move_the_members_spend() {
    for db in backends().await {
        let s = &db.store;
        for u in ["u1", "u2"] {
            s.create_user(&tollgate_store::NewUser::new(u, "internal_user"))
                .await
                .unwrap();
        }
        s.create_team(&tollgate_store::NewTeam::new("t1"))
            .await
            .unwrap();
        s.add_member("t1", "u1", "user", Some(10_000))
            .await
            .unwrap();
        s.add_member("t1", "u2", "user", None).await.unwrap();
        let mut a = record("team-a", 1);
        a.team_id = Some("t1".into());
        let mut b = record("team-b", 2);
        b.team_id = Some("t1".into());
        let personal = record("personal", 3);
        s.insert_spend_batch(&[a.clone(), b, personal])
            .await
            .unwrap();
        s.insert_spend_batch(&[a]).await.unwrap();
        let m = s.get_member("t1", "u1").await.unwrap().unwrap();
        assert_eq!(m.spend_nanos, 2 * 1234, "{}", s.backend_name());
        assert_eq!(m.max_budget_in_team_nanos, Some(10_000));
        let other = s.get_member("t1", "u2").await.unwrap().unwrap();
        assert_eq!(other.spend_nanos, 0);
        assert!(s.get_member("t1", "nobody").await.unwrap().is_none());
        db.drop_db().await;
    }
}

/// History carried over from another gateway: logged and in the daily views, but the owners'
/// running spend (carried over with them) is not added to a second time.
#[tokio::test]
async fn spend_history_leaves_owner_totals_alone() {
    for db in backends().await {
        let s = &db.store;
        let mut key = tollgate_store::NewKey::new("ab".repeat(32), "sk-...abab");
        key.spend_nanos = 5_000;
        s.create_key(&key).await.unwrap();
        let inserted = s
            .insert_spend_history(&[record("old-a", 1), record("old-b", 2)])
            .await
            .unwrap();
        assert_eq!(inserted.len(), 2);
        assert!(s
            .insert_spend_history(&[record("old-a", 1)])
            .await
            .unwrap()
            .is_empty());
        let k = s.get_key(&"ab".repeat(32)).await.unwrap().unwrap();
        assert_eq!(k.spend_nanos, 5_000, "{}", s.backend_name());
        let day = Utc
            .with_ymd_and_hms(2026, 11, 27, 0, 0, 0)
            .unwrap()
            .date_naive();
        let daily = s
            .daily_spend(&tollgate_store::SpendScope::default(), day, day)
            .await
            .unwrap();
        assert_eq!(daily.len(), 1, "{daily:?}");
        assert_eq!(daily[0].totals.spend_nanos, 2 * 1234);
        assert_eq!(daily[0].totals.requests, 2);
        // The gateway's own calls still add to the key.
        s.insert_spend_batch(&[record("new-c", 3)]).await.unwrap();
        let k = s.get_key(&"ab".repeat(32)).await.unwrap().unwrap();
        assert_eq!(k.spend_nanos, 5_000 + 1234);
        db.drop_db().await;
    }
}

/// The record of imported rows: per source and kind, each id once however often recorded.
#[tokio::test]
async fn imported_rows_are_recorded_once_per_source_and_kind() {
    for db in backends().await {
        let s = &db.store;
        assert!(s.imported_ids("litellm", "key").await.unwrap().is_empty());
        let ids = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        s.record_imported("litellm", "key", &ids(&["a", "b"]))
            .await
            .unwrap();
        s.record_imported("litellm", "key", &ids(&["b", "c"]))
            .await
            .unwrap();
        s.record_imported("litellm", "user", &ids(&["a"]))
            .await
            .unwrap();
        s.record_imported("litellm", "key", &[]).await.unwrap();
        let keys = s.imported_ids("litellm", "key").await.unwrap();
        assert_eq!(keys.len(), 3, "{}", s.backend_name());
        assert!(keys.contains("c"));
        assert_eq!(s.imported_ids("litellm", "user").await.unwrap().len(), 1);
        assert!(s.imported_ids("other", "key").await.unwrap().is_empty());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn large_batches_span_several_statements() {
    for db in backends().await {
        let s = &db.store;
        let records: Vec<_> = (0..250)
            .map(|i| record(&format!("bulk-{i:03}"), (i % 60) as u32))
            .collect();
        let inserted = s.insert_spend_batch(&records[..150]).await.unwrap();
        assert_eq!(inserted.len(), 150);
        let inserted = s.insert_spend_batch(&records).await.unwrap();
        assert_eq!(
            inserted.len(),
            100,
            "only the new ones, {}",
            s.backend_name()
        );
        assert_eq!(inserted[0], "bulk-150", "in batch order");
        assert_eq!(s.count_spend_logs().await.unwrap(), 250);

        // Stored ids found only after several new rows went in are still counted once: the
        // key's running spend sees each record one time.
        s.create_key(&tollgate_store::NewKey::new("ab".repeat(32), "sk-...abab"))
            .await
            .unwrap();
        let later: Vec<_> = (0..250)
            .map(|i| record(&format!("late-{i:03}"), (i % 60) as u32))
            .collect();
        s.insert_spend_batch(&later[200..]).await.unwrap();
        let inserted = s.insert_spend_batch(&later).await.unwrap();
        assert_eq!(inserted.len(), 200, "{}", s.backend_name());
        assert_eq!(inserted[199], "late-199");
        assert_eq!(s.count_spend_logs().await.unwrap(), 500);
        let key = s.get_key(&"ab".repeat(32)).await.unwrap().unwrap();
        assert_eq!(key.spend_nanos, 250 * 1234, "{}", s.backend_name());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn settings_keep_the_first_value() {
    for db in backends().await {
        let s = &db.store;
        assert_eq!(s.get_setting("k").await.unwrap(), None);
        assert!(s.put_setting_if_absent("k", "one").await.unwrap());
        assert!(!s.put_setting_if_absent("k", "two").await.unwrap());
        assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("one"));
        s.put_setting("k", "three").await.unwrap();
        assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("three"));
        db.drop_db().await;
    }
}

#[tokio::test]
async fn refuses_bad_urls_without_echoing_them() {
    let err = Store::open(Some("mysql://user:hunter2@localhost/db"))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
}
