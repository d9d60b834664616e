//! Timing harness for the spend writer's batch insert (not a test of behaviour; ignored by
//! default). Inserts, as the writer does (`insert_spend_owned`), 50 batches of 500 records
//! shaped like live traffic (one day, 20 keys, 5 users, 2 teams, 3 models) into a fresh
//! database per backend and prints records/s and the time per batch.
//!
//! cargo test --release -p tollgate-store --test spend_writer_bench -- --ignored --nocapture

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tollgate_store::{NewKey, NewTeam, NewUser, SpendRecord, SpendStatus, Store};

mod common;

const BATCHES: usize = 50;
const PER_BATCH: usize = 500;
const KEYS: usize = 20;
const USERS: usize = 5;
const MODELS: &[(&str, &str, &str)] = &[
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai"),
    ("gpt-4o", "gpt-4o-2024-08-06", "openai"),
    ("claude-sonnet", "claude-3-5-sonnet-20241022", "anthropic"),
];

fn key_token(k: usize) -> String {
    format!("{k:064x}")
}

async fn create_owners(s: &Store) {
    for u in 0..USERS {
        s.create_user(&NewUser::new(format!("user-{u}"), "internal_user"))
            .await
            .unwrap();
    }
    for t in 0..2 {
        s.create_team(&NewTeam::new(format!("team-{t}")))
            .await
            .unwrap();
    }
    for k in 0..KEYS {
        let mut nk = NewKey::new(key_token(k), format!("sk-...{k:04}"));
        nk.user_id = Some(format!("user-{}", k % USERS));
        nk.team_id = k.is_multiple_of(3).then(|| format!("team-{}", k % 2));
        s.create_key(&nk).await.unwrap();
    }
}

fn record(n: usize) -> SpendRecord {
    let start = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap()
        + chrono::Duration::microseconds(n as i64 * 70);
    let k = (n * 7 + n / 13) % KEYS;
    let (group, model, provider) = MODELS[(n / 3 + k) % MODELS.len()];
    let failed = n.is_multiple_of(61);
    let prompt = if failed { 0 } else { 40 + (n % 900) as i64 };
    let completion = if failed { 0 } else { 10 + (n % 300) as i64 };
    SpendRecord {
        request_id: format!(
            "chatcmpl-{:032x}",
            (n as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ),
        call_type: "chat_completion".into(),
        api_key: key_token(k),
        user_id: Some(format!("user-{}", k % USERS)),
        team_id: k.is_multiple_of(3).then(|| format!("team-{}", k % 2)),
        end_user: None,
        model: model.into(),
        model_group: group.into(),
        model_id: Some((n % 2).to_string()),
        custom_llm_provider: Some(provider.into()),
        spend_nanos: prompt * 150 + completion * 600,
        priced: true,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 0,
        usage_estimated: false,
        stream: n.is_multiple_of(4),
        status: if failed {
            SpendStatus::Failure
        } else {
            SpendStatus::Success
        },
        http_status: if failed { 502 } else { 200 },
        error_type: failed.then(|| "APIConnectionError".to_string()),
        attempts: 1,
        start_time: start,
        end_time: start + chrono::Duration::milliseconds(180),
        completion_start_time: n
            .is_multiple_of(4)
            .then(|| start + chrono::Duration::milliseconds(40)),
        request_duration_ms: 180,
        ttft_ms: n.is_multiple_of(4).then_some(40),
        metadata: serde_json::json!({
            "user_api_key_alias": format!("key-{k}"),
            "requester_ip_address": "127.0.0.1",
            "deployment": model,
        }),
    }
}

/// CPU time of the whole process (all threads, sqlx's SQLite worker included), in ms, from
/// /proc (Linux only; 0 elsewhere).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15; `f` starts at field 3. Ticks are 10 ms.
    (ticks(11) + ticks(12)) * 10.0
}

/// Context switches of every thread of the process (a row or a statement crossing to sqlx's
/// SQLite worker thread and back costs a couple).
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut n = 0;
    for t in tasks.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches")
                || line.starts_with("nonvoluntary_ctxt_switches")
            {
                n += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    n
}

#[tokio::test]
#[ignore = "timing harness; run with --ignored --nocapture"]
async fn spend_writer_batches() {
    for db in common::backends().await {
        let s = &db.store;
        create_owners(s).await;
        let batches: Vec<Vec<SpendRecord>> = (0..BATCHES)
            .map(|b| (0..PER_BATCH).map(|i| record(b * PER_BATCH + i)).collect())
            .collect();
        let mut times: Vec<Duration> = Vec::with_capacity(BATCHES);
        let (cpu0, switches0) = (cpu_ms(), context_switches());
        let started = Instant::now();
        let first = batches[0].clone();
        for batch in batches {
            let t = Instant::now();
            let (back, inserted) = s.insert_spend_owned(batch).await;
            times.push(t.elapsed());
            assert_eq!(inserted.unwrap(), back.len());
        }
        let total = started.elapsed();
        let cpu = cpu_ms() - cpu0;
        let switches = context_switches() - switches0;
        // A retried batch (the writer's ambiguous-failure path): nothing new.
        let t = Instant::now();
        let (_, again) = s.insert_spend_owned(first).await;
        assert_eq!(again.unwrap(), 0);
        let retry = t.elapsed();
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{}: {} batches of {PER_BATCH}: {:.0} records/s; per batch mean {:.2} ms, \
             median {:.2} ms, max {:.2} ms; CPU {:.1} ms and {:.0} context switches per batch; \
             a retried batch {:.2} ms",
            s.backend_name(),
            BATCHES,
            (BATCHES * PER_BATCH) as f64 / total.as_secs_f64(),
            ms(total) / BATCHES as f64,
            ms(times[BATCHES / 2]),
            ms(times[BATCHES - 1]),
            cpu / BATCHES as f64,
            switches as f64 / BATCHES as f64,
            ms(retry),
        );
        db.drop_db().await;
    }
}
