//! Three instances on one PostgreSQL database and one Redis behave as one: a budget holds across
//! them under concurrency, a rate limit counts all their calls, a key blocked through one is
//! refused by the others at once, and a Redis outage degrades as configured and recovers by
//! itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_testkit::services::{TestDatabase, TestRedis};
use tollgate_testkit::{spawn_app_on, Behavior, FakeUpstream, TestApp};

/// The fake upstream reports 12 prompt + 6 completion tokens on every answer.
const PER_CALL_NANOS: i64 = 12 * 1_000 + 6 * 2_000;

fn config(up: &FakeUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: priced
    litellm_params:
      model: openai/priced
      api_base: {base}/v1
      api_key: sk-upstream
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
    model_info: {{max_output_tokens: 100000}}
general_settings: {{master_key: "{{master_key}}"}}
"#,
        base = up.base_url
    )
}

/// 18 bytes of prompt: the reservation's prompt bound (18 tokens) covers the 12 reported.
fn call(max_tokens: u64) -> Value {
    json!({"model": "priced", "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hello there friend"}]})
}

async fn cluster(
    up: &FakeUpstream,
    db: &TestDatabase,
    redis_url: &str,
    prefix: &str,
) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(
            spawn_app_on(
                &config(up),
                &db.url,
                &[("REDIS_URL", redis_url), ("TOLLGATE_REDIS_PREFIX", prefix)],
            )
            .await,
        );
    }
    apps
}

async fn new_key(app: &TestApp, body: Value) -> String {
    let (s, v) = app
        .api(&app.master_key, "POST", "/key/generate", body)
        .await;
    assert_eq!(s, 200, "{v}");
    v["key"].as_str().unwrap().to_string()
}

async fn chat(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn stop_all(apps: Vec<TestApp>) {
    for a in apps {
        a.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_holds_across_three_instances_under_200_concurrent_calls() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let Some(redis) = TestRedis::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    up.set("priced", Behavior::Delay(Duration::from_millis(200)));
    let apps = cluster(&up, &db, &redis.url, &redis.prefix).await;
    // Room for exactly ten calls at their real cost.
    let max_nanos = 10 * PER_CALL_NANOS;
    let key = new_key(&apps[0], json!({"max_budget": max_nanos as f64 / 1e9})).await;

    let body = call(6);
    let calls = (0..200).map(|i| chat(&apps[i % 3], &key, &body));
    let answers = futures_util::future::join_all(calls).await;
    let mut ok = 0;
    for r in answers {
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::UNPROCESSABLE_ENTITY => {}
            other => panic!("unexpected {other}: {}", r.text().await.unwrap_or_default()),
        }
    }
    // Then one at a time, round robin, until the budget refuses.
    let mut i = 0;
    loop {
        let r = chat(&apps[i % 3], &key, &body).await;
        if r.status() != StatusCode::OK {
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
            break;
        }
        ok += 1;
        i += 1;
        assert!(i < 20, "the budget never ran out");
    }
    assert!(
        ok as i64 * PER_CALL_NANOS <= max_nanos,
        "{ok} calls admitted on a ten-call budget"
    );
    // Each call reserves its worst case (30,000 nano-USD: the prompt bound is 18 tokens), so
    // at least eight fit; refusing more would mean a budget wrongly held.
    assert!(ok >= 8, "only {ok} calls admitted");
    // Every instance's writer commits its calls: the store agrees.
    for a in &apps {
        a.wait_for_spend_logs(ok as i64).await;
    }
    let token = tollgate_domain::secret::sha256_hex(&key);
    let mut spend = 0;
    for _ in 0..100 {
        spend = apps[0]
            .store
            .get_key(&token)
            .await
            .unwrap()
            .unwrap()
            .spend_nanos;
        if spend == ok as i64 * PER_CALL_NANOS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        spend,
        ok as i64 * PER_CALL_NANOS,
        "spend is exact: each call counted once"
    );
    stop_all(apps).await;
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_20_admits_20_of_60_calls_spread_over_three_instances() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let Some(redis) = TestRedis::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let apps = cluster(&up, &db, &redis.url, &redis.prefix).await;
    let key = new_key(&apps[1], json!({"rpm_limit": 20})).await;
    tollgate_testkit::away_from_minute_edge(15).await;
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..60 {
        let r = chat(&apps[i % 3], &key, &call(5)).await;
        match r.status() {
            StatusCode::OK => {
                ok += 1;
                assert_eq!(r.headers()["x-ratelimit-limit-requests"], "20");
            }
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert!(r.headers().contains_key("retry-after"));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (20, 40));
    stop_all(apps).await;
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_blocked_through_one_instance_is_refused_by_the_others_at_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let Some(redis) = TestRedis::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let apps = cluster(&up, &db, &redis.url, &redis.prefix).await;
    let key = new_key(&apps[0], json!({})).await;
    // Every instance has the key cached.
    for a in &apps {
        assert_eq!(chat(a, &key, &call(5)).await.status(), StatusCode::OK);
    }
    let (s, v) = apps[0]
        .api(
            &apps[0].master_key,
            "POST",
            "/key/block",
            json!({"key": key}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let blocked_at = Instant::now();
    // Both other instances are watched at once: the first call each refuses is timed.
    let watch = |a: &TestApp| {
        let (client, url, key) = (a.client(), a.url("/v1/chat/completions"), key.clone());
        async move {
            loop {
                let status = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&call(5))
                    .send()
                    .await
                    .unwrap()
                    .status();
                if status == StatusCode::UNAUTHORIZED {
                    return blocked_at.elapsed();
                }
                assert!(
                    blocked_at.elapsed() < Duration::from_secs(5),
                    "still served 5 s after the block (the cache TTL is 30 s)"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    let delays = futures_util::future::join_all(apps[1..].iter().map(watch)).await;
    eprintln!("block propagated to the other instances in {delays:?}");
    stop_all(apps).await;
    redis.cleanup().await;
    db.drop_db().await;
}

/// This process's resident memory (the apps under test run in it).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A Redis of this test's own, so it can be stopped without touching the machine's.
struct OwnRedis {
    child: Option<Child>,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Option<OwnRedis> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(OwnRedis {
            child: Some(child),
            port,
        })
    }

    async fn wait_up(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start on {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_redis_outages_fail_budgets_closed_and_recover_without_a_restart() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let port = tollgate_testkit::process::free_port();
    let Some(mut own) = OwnRedis::start(port) else {
        assert!(std::env::var("CI").is_err(), "CI needs redis-server");
        eprintln!("skipped: redis-server is not installed");
        return;
    };
    own.wait_up().await;
    let url = format!("redis://127.0.0.1:{port}/");
    let up = FakeUpstream::start().await;
    let app = spawn_app_on(&config(&up), &db.url, &[("REDIS_URL", &url)]).await;
    let budgeted = new_key(&app, json!({"max_budget": 1.0})).await;
    let limited = new_key(&app, json!({"rpm_limit": 1000})).await;
    assert_eq!(
        chat(&app, &budgeted, &call(5)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        chat(&app, &limited, &call(5)).await.status(),
        StatusCode::OK
    );

    let rss_before = rss_kb();
    for cycle in 0..10 {
        own.kill();
        for _ in 0..3 {
            let r = chat(&app, &budgeted, &call(5)).await;
            assert_eq!(
                r.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "budgets fail closed"
            );
            assert!(r.headers().contains_key("retry-after"));
            let v: Value = r.json().await.unwrap();
            assert!(
                v["error"]["message"].as_str().unwrap().contains("Redis"),
                "{v}"
            );
            // Rate limits fall back to this instance's own counting.
            assert_eq!(
                chat(&app, &limited, &call(5)).await.status(),
                StatusCode::OK
            );
        }
        if cycle == 0 {
            let (s, v) = app
                .api(&app.master_key, "GET", "/health/readiness", json!(null))
                .await;
            assert_eq!(s, 200, "the database is fine: {v}");
            assert_eq!(v["redis"], "disconnected");
        }
        own = OwnRedis::start(port).expect("restart redis-server");
        own.wait_up().await;
        let mut recovered = false;
        for _ in 0..100 {
            if chat(&app, &budgeted, &call(5)).await.status() == StatusCode::OK {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            recovered,
            "cycle {cycle}: calls work again once Redis is back, with no restart"
        );
    }
    let grown_kb = rss_kb().saturating_sub(rss_before);
    eprintln!("RSS grew by {grown_kb} KiB over 10 Redis outage cycles");
    assert!(
        grown_kb < 32 * 1024,
        "memory grew by {grown_kb} KiB over 10 outages"
    );
    let (_, v) = app
        .api(&app.master_key, "GET", "/health/readiness", json!(null))
        .await;
    assert_eq!(v["redis"], "connected");
    app.stop().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_add_up_across_instances() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let Some(redis) = TestRedis::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let apps = cluster(&up, &db, &redis.url, &redis.prefix).await;
    // Twelve wrong passwords for one account from one address, round robin: each instance
    // alone sees four, under its limit of five; together they pass it.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let r = apps[i % 3]
            .client()
            .post(apps[i % 3].url("/v2/login"))
            .json(&json!({"username": "ada@example.com", "password": "not the password"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    stop_all(apps).await;
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_key_changes_travel_through_postgres() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let a = spawn_app_on(&config(&up), &db.url, &[]).await;
    let b = spawn_app_on(&config(&up), &db.url, &[]).await;
    let key = new_key(&a, json!({})).await;
    assert_eq!(chat(&b, &key, &call(5)).await.status(), StatusCode::OK);
    let (s, v) = a
        .api(&a.master_key, "POST", "/key/block", json!({"key": key}))
        .await;
    assert_eq!(s, 200, "{v}");
    let blocked_at = Instant::now();
    loop {
        if chat(&b, &key, &call(5)).await.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            blocked_at.elapsed() < Duration::from_secs(5),
            "the other instance still served the key 5 s after the block (cache TTL 30 s)"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!(
        "block reached the other instance through NOTIFY in {:?}",
        blocked_at.elapsed()
    );
    a.stop().await;
    b.stop().await;
    db.drop_db().await;
}
