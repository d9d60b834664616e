//! Login floods against the real app: password hashing stays bounded in memory and answers 503
//! when busy, and one account guessed at from many addresses is slowed down with 429s.
//!
//! The app runs inside this test process, so `/proc/self/status` shows its memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_testkit::{spawn_app_vars, TestApp};

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hi", input_cost_per_token: 0, output_cost_per_token: 0}
general_settings: {master_key: "{master_key}"}
"#;

const STRONG: &str = "correct-horse-battery-staple-42";

/// One argon2id work area (m = 19456 KiB).
const KDF_MIB: u64 = 19;
/// The most hashing slots the gateway uses on any machine.
const MAX_SLOTS: u64 = 4;
/// Sockets, request buffers, allocator slack.
const SLACK_MIB: u64 = 48;

/// Both tests measure the process and load the one hashing pool: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn app_behind_a_proxy() -> TestApp {
    spawn_app_vars(CONFIG, &[("TOLLGATE_TRUST_X_FORWARDED_FOR", "true")]).await
}

async fn user_with_password(app: &TestApp, email: &str) {
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/user/new",
            json!({"user_email": email, "user_role": "internal_user"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let id = v["user_id"].as_str().unwrap().to_string();
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/user/update",
            json!({"user_id": id, "password": STRONG}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

async fn login_from(
    client: &reqwest::Client,
    app: &TestApp,
    addr: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(app.url("/v2/login"))
        .header("x-forwarded-for", addr)
        .json(&json!({"username": email, "password": password}))
        .send()
        .await
        .unwrap()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Samples the resident memory on its own thread (the runtime may be too busy to) until stopped;
/// returns the peak.
struct PeakRss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl PeakRss {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        PeakRss { stop, peak, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.peak.load(Ordering::Relaxed).max(rss_kib())
    }
}

#[tokio::test]
async fn a_login_flood_from_many_addresses_is_bounded_in_memory_and_answers_503() {
    let _one_at_a_time = SERIAL.lock().await;
    let app = app_behind_a_proxy().await;
    user_with_password(&app, "real@example.com").await;
    let client = reqwest::Client::new();
    // Warm up: the hashing work area and the unknown-email dummy hash exist from here on.
    let r = login_from(
        &client,
        &app,
        "192.0.2.1",
        "nobody@example.com",
        "wrong-pw-123",
    )
    .await;
    assert_eq!(r.status(), 401);

    let before = rss_kib();
    let peak = PeakRss::start();
    let started = Instant::now();
    let flood: Vec<_> = (0..64u32)
        .map(|i| {
            let (client, url) = (client.clone(), app.url("/v2/login"));
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .header("x-forwarded-for", format!("10.{}.0.{}", i / 8, i % 8 + 1))
                    .json(&json!({"username": format!("nobody{i}@example.com"), "password": "wrong-pw-123"}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let retry_after = r.headers().get("retry-after").is_some();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (status, retry_after, body)
            })
        })
        .collect();
    // Inference is served meanwhile.
    let chat_started = Instant::now();
    let chat = client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.master_key)
        .json(&json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200, "inference during the flood");
    let chat_took = chat_started.elapsed();
    let mut answers = Vec::new();
    for f in flood {
        answers.push(f.await.unwrap());
    }
    let elapsed = started.elapsed();
    let peak = peak.finish();

    let busy = answers
        .iter()
        .filter(|a| a.0 == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    let checked = answers
        .iter()
        .filter(|a| a.0 == StatusCode::UNAUTHORIZED)
        .count();
    let grown_mib = peak.saturating_sub(before) / 1024;
    let bound_mib = MAX_SLOTS * KDF_MIB + SLACK_MIB;
    eprintln!(
        "flood: {checked} checked, {busy} busy, RSS {} -> peak {} MiB (+{grown_mib}), {elapsed:?}; a chat meanwhile took {chat_took:?}",
        before / 1024,
        peak / 1024
    );
    assert!(
        grown_mib < bound_mib,
        "resident memory grew by {grown_mib} MiB during the flood (bound {bound_mib} MiB)"
    );

    for (status, retry_after, body) in &answers {
        assert!(
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::SERVICE_UNAVAILABLE
            ]
            .contains(status),
            "{status}: {body}"
        );
        if *status != StatusCode::UNAUTHORIZED {
            assert!(retry_after, "{status} without retry-after");
            assert_eq!(body["error"]["code"], status.as_str(), "{body}");
        }
    }
    assert!(busy > 0, "no 503 among {answers:?}");
    assert!(checked > 0, "some logins were still checked");

    // The real user logs in afterwards.
    let r = login_from(&client, &app, "198.51.100.20", "real@example.com", STRONG).await;
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn one_account_guessed_from_fifty_addresses_is_slowed_down_not_locked() {
    let _one_at_a_time = SERIAL.lock().await;
    let app = app_behind_a_proxy().await;
    user_with_password(&app, "victim@example.com").await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..50u32 {
        let addr = format!("10.1.{}.{}", i / 200, i % 200 + 1);
        let r = login_from(&client, &app, &addr, "victim@example.com", "wrong-pw-123").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let secs: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            retry_after = Some(secs);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
            statuses.push(StatusCode::TOO_MANY_REQUESTS);
        } else {
            statuses.push(r.status());
        }
    }
    let wrong = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(wrong + throttled, 50, "{statuses:?}");
    assert!(throttled >= 40, "{statuses:?}");
    assert!(wrong <= 10, "{statuses:?}");

    // Not a lock: after the advertised wait the person logs in from their own address.
    let wait = retry_after.unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let r = login_from(&client, &app, "203.0.113.80", "victim@example.com", STRONG).await;
    assert_eq!(r.status(), 200);
    app.stop().await;
}
