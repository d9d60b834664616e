//! Three spend writers at once (as three instances on one database) on the same keys, users,
//! teams and days: every record counted exactly once, no batch lost to a deadlock, and a batch
//! two writers both hold (a replay) stored once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{TimeZone, Utc};
use tollgate_store::{NewKey, NewTeam, NewUser, SpendRecord, SpendStatus, Store};

mod common;

use common::backends;

fn record(id: String, key: &str, user: &str, team: &str) -> SpendRecord {
    let at = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    SpendRecord {
        request_id: id,
        call_type: "chat_completion".into(),
        api_key: key.to_string(),
        user_id: Some(user.to_string()),
        team_id: Some(team.to_string()),
        end_user: None,
        model: "m".into(),
        model_group: "m".into(),
        model_id: Some("0".into()),
        custom_llm_provider: Some("openai".into()),
        spend_nanos: 7,
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
        start_time: at,
        end_time: at,
        completion_start_time: None,
        request_duration_ms: 1,
        ttft_ms: None,
        metadata: serde_json::json!({}),
    }
}

const OWNERS: usize = 4;

fn key(i: usize) -> String {
    format!("{i}").repeat(64)
}

async fn writer(store: Store, w: usize, batches: usize) {
    for b in 0..batches {
        // Each writer walks the owners in its own order, the way calls arrive.
        let batch: Vec<SpendRecord> = (0..24)
            .map(|n| {
                let o = (n + w * 3 + b) % OWNERS;
                record(
                    format!("w{w}-b{b}-n{n}"),
                    &key(o),
                    &format!("u{}", (o + w) % OWNERS),
                    &format!("t{}", (o + 2 * w) % OWNERS),
                )
            })
            .collect();
        store.insert_spend_batch(&batch).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_writers_at_full_speed_count_every_record_once() {
    for db in backends().await {
        let s = &db.store;
        for i in 0..OWNERS {
            s.create_user(&NewUser::new(format!("u{i}"), "internal_user"))
                .await
                .unwrap();
            s.create_team(&NewTeam::new(format!("t{i}"))).await.unwrap();
            s.create_key(&NewKey::new(key(i), "sk-...k")).await.unwrap();
        }
        let batches = 30;
        let tasks: Vec<_> = (0..3)
            .map(|w| tokio::spawn(writer(s.clone(), w, batches)))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // A replay of one writer's first batch (a journal replayed after a crash) adds nothing.
        writer(s.clone(), 0, 1).await;
        let total = 3 * batches as i64 * 24;
        assert_eq!(s.count_spend_logs().await.unwrap(), total);
        let mut keys = 0;
        let mut users = 0;
        let mut teams = 0;
        for i in 0..OWNERS {
            keys += s.get_key(&key(i)).await.unwrap().unwrap().spend_nanos;
            users += s
                .get_user(&format!("u{i}"))
                .await
                .unwrap()
                .unwrap()
                .spend_nanos;
            teams += s
                .get_team(&format!("t{i}"))
                .await
                .unwrap()
                .unwrap()
                .spend_nanos;
        }
        assert_eq!(
            (keys, users, teams),
            (total * 7, total * 7, total * 7),
            "{}",
            s.backend_name()
        );
        db.drop_db().await;
    }
}

/// SQLite: spend batches have a connection of their own, so calls holding every connection of
/// the shared pool (key lookups under load) do not hold the spend writer back (and the
/// writer's large multi-row statements are prepared on that one connection only).
#[tokio::test]
async fn sqlite_spend_batches_commit_while_every_shared_connection_is_taken() {
    for db in backends().await {
        let s = &db.store;
        let tollgate_store::Backend::Sqlite(pool) = s.backend() else {
            db.drop_db().await;
            continue;
        };
        s.create_user(&NewUser::new("u0", "internal_user"))
            .await
            .unwrap();
        s.create_team(&NewTeam::new("t0")).await.unwrap();
        s.create_key(&NewKey::new(key(0), "sk-...0")).await.unwrap();
        let mut held = Vec::new();
        for _ in 0..pool.options().get_max_connections() {
            held.push(pool.acquire().await.unwrap());
        }
        let batch = vec![record("held-1".into(), &key(0), "u0", "t0")];
        let stored = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            s.insert_spend_batch(&batch),
        )
        .await
        .expect("the batch waited for a connection of the shared pool")
        .unwrap();
        assert_eq!(stored, vec!["held-1".to_string()]);
        drop(held);
        assert_eq!(s.count_spend_logs().await.unwrap(), 1);
        db.drop_db().await;
    }
}

/// A spend batch is a few multi-row statements in one transaction; each keeps a statement
/// journal, which SQLite spills to a temporary file past 64 KiB unless temporary storage is
/// memory. 2 is MEMORY.
#[tokio::test]
async fn sqlite_keeps_statement_journals_in_memory() {
    for db in backends().await {
        if let tollgate_store::Backend::Sqlite(pool) = db.store.backend() {
            // Every connection of the pool, each held so the next is another.
            let mut held = Vec::new();
            for _ in 0..pool.options().get_max_connections() {
                let mut conn = pool.acquire().await.unwrap();
                let mode: i64 = sqlx::query_scalar("PRAGMA temp_store")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(mode, 2);
                held.push(conn);
            }
        }
        db.drop_db().await;
    }
}
