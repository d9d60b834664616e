//! Cooldowns behave like Envoy's outlier ejection (security case E8): a group never has all its
//! deployments cooled down at once, and a deployment that keeps failing stays out longer each
//! time it is cooled down again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate_testkit::{spawn_app, Behavior, FakeUpstream};

fn chat() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "Say hello"}]})
}

fn two_deployments(a: &FakeUpstream, b: &FakeUpstream, router: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: m
    litellm_params: {{model: openai/m, api_base: "{a}/v1", api_key: k-123456789}}
  - model_name: m
    litellm_params: {{model: openai/m, api_base: "{b}/v1", api_key: k-123456789}}
router_settings: {router}
general_settings: {{master_key: "{{master_key}}"}}
"#,
        a = a.base_url,
        b = b.base_url
    )
}

#[tokio::test]
async fn both_deployments_failing_never_ejects_both() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.set("m", Behavior::Status(500, None));
    b.set("m", Behavior::Status(500, None));
    let app = spawn_app(&two_deployments(
        &a,
        &b,
        "{num_retries: 0, allowed_fails: 0, cooldown_time: 60}",
    ))
    .await;
    for i in 1..=10 {
        let resp = app.post("/v1/chat/completions", &chat()).await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_ne!(
            status, 429,
            "request {i}: the group must keep one deployment routable, got {body}"
        );
        assert_eq!(
            a.requests() + b.requests(),
            i,
            "request {i} reached an upstream"
        );
    }
    // The deployment still in rotation recovers at once, with no 60 s wait.
    a.set("m", Behavior::Answer);
    b.set("m", Behavior::Answer);
    let resp = app.post("/v1/chat/completions", &chat()).await;
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn repeated_ejections_grow() {
    let good = FakeUpstream::start().await;
    let bad = FakeUpstream::start().await;
    bad.set("m", Behavior::Status(500, None));
    let app = spawn_app(&two_deployments(
        &good,
        &bad,
        "{num_retries: 1, allowed_fails: 0, cooldown_time: 1}",
    ))
    .await;
    // When the bad deployment is hit (and so cooled down again) — seen after each answer.
    let mut hits: Vec<Instant> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while hits.len() < 4 && Instant::now() < deadline {
        let before = bad.requests();
        let resp = app.post("/v1/chat/completions", &chat()).await;
        assert_eq!(
            resp.status(),
            200,
            "a retry lands on the healthy deployment"
        );
        if bad.requests() > before {
            hits.push(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hits.len(), 4, "the bad deployment came back three times");
    // After its n-th cooldown it is out for n × 1 s (less the time an answer takes to arrive).
    for n in 1..=3u32 {
        let gap = hits[n as usize] - hits[n as usize - 1];
        let floor = Duration::from_secs(u64::from(n)) - Duration::from_millis(300);
        assert!(
            gap >= floor,
            "ejection {n} lasted {gap:?}, expected at least {floor:?}"
        );
    }
    app.stop().await;
}
