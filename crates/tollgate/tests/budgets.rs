//! Budgets hold as a hard cap under concurrency, rate limits answer 429 with LiteLLM's headers,
//! and a store outage fails closed and resumes without duplicates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_testkit::{spawn_app_vars, Behavior, FakeUpstream, TestApp};

/// The fake upstream reports 12 prompt + 6 completion tokens on every answer.
const PER_CALL_NANOS: i64 = 12 * 1_000 + 6 * 2_000;

fn config(upstream: &FakeUpstream) -> String {
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
        base = upstream.base_url
    )
}

async fn start(vars: &[(&str, &str)]) -> (TestApp, FakeUpstream) {
    let up = FakeUpstream::start().await;
    let app = spawn_app_vars(&config(&up), vars).await;
    (app, up)
}

async fn new_key(app: &TestApp, body: Value) -> String {
    let (s, v) = app
        .api(&app.master_key, "POST", "/key/generate", body)
        .await;
    assert_eq!(s, 200, "{v}");
    v["key"].as_str().unwrap().to_string()
}

async fn chat(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn hi(max_tokens: Option<u64>) -> Value {
    let mut b = json!({"model": "priced", "messages": [{"role": "user", "content": "hi"}]});
    if let Some(m) = max_tokens {
        b["max_tokens"] = json!(m);
    }
    b
}

/// Calls until one is refused for its budget: (calls answered 200, the refusal's error).
async fn spend_until_refused(app: &TestApp, key: &str) -> (usize, Value) {
    let mut ok = 0;
    loop {
        let r = chat(app, key, hi(Some(5))).await;
        if r.status() == 200 {
            ok += 1;
            assert!(ok < 10, "the budget never applied");
            continue;
        }
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "budget_exceeded", "{v}");
        assert!(ok >= 1, "refused at once: {v}");
        return (ok, v);
    }
}

async fn key_spend_nanos(app: &TestApp, key: &str) -> i64 {
    let token = tollgate_domain::secret::sha256_hex(key);
    app.store
        .get_key(&token)
        .await
        .unwrap()
        .unwrap()
        .spend_nanos
}

#[tokio::test]
async fn budget_is_a_hard_cap_under_50_concurrent_calls() {
    let (app, up) = start(&[]).await;
    up.set("priced", Behavior::Delay(Duration::from_millis(300)));
    // Room for 8 calls at their real cost, but only ~3 at their worst case (max_tokens 10).
    let max_budget = 0.0002;
    let key = new_key(&app, json!({"max_budget": max_budget})).await;

    let calls = (0..50).map(|_| chat(&app, &key, hi(Some(10))));
    let answers = futures_util::future::join_all(calls).await;
    let mut ok = 0;
    for r in answers {
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::UNPROCESSABLE_ENTITY => {
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["error"]["type"], "budget_exceeded", "{v}");
                assert_eq!(v["error"]["code"], "422");
                assert!(v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Budget has been exceeded"));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1, "the calls that fit were admitted");
    // Keep going one at a time: calls keep succeeding while their worst case still fits.
    let mut sequential_ok = 0;
    loop {
        let r = chat(&app, &key, hi(Some(10))).await;
        if r.status() != StatusCode::OK {
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
            break;
        }
        sequential_ok += 1;
        assert!(sequential_ok < 20, "the budget never ran out");
    }
    app.wait_for_spend_logs(1).await;
    let total = ok + sequential_ok;
    // Spend settles to the real cost and never passes the budget.
    let mut spend = 0;
    for _ in 0..100 {
        spend = key_spend_nanos(&app, &key).await;
        if spend == total * PER_CALL_NANOS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(spend, total * PER_CALL_NANOS);
    let max_nanos = (max_budget * 1e9) as i64;
    assert!(
        spend <= max_nanos,
        "spend {spend} passed the budget {max_nanos}"
    );
    // Refused only when one more worst-case call (prompt bound + 10 output tokens) no longer fits.
    let worst_case = 31_000 + 10 * 2_000 + 10_000;
    assert!(
        spend + worst_case > max_nanos,
        "refused too early: spend {spend}"
    );
    assert_eq!(
        up.requests() as i64,
        total,
        "refused calls never reach the upstream"
    );
    app.stop().await;
}

#[tokio::test]
async fn at_the_edge_the_output_limit_is_lowered_instead_of_refused() {
    let (app, up) = start(&[]).await;
    // $0.001: the model's 100k-token max output would cost $0.2, far more than is left.
    let key = new_key(&app, json!({"max_budget": 0.001})).await;
    let r = chat(&app, &key, hi(None)).await;
    assert_eq!(r.status(), 200);
    let sent = up.last().body;
    let max_tokens = sent["max_tokens"]
        .as_u64()
        .expect("the gateway set max_tokens");
    assert!(
        (16..500).contains(&max_tokens),
        "lowered to what is affordable: {max_tokens}"
    );
    // A caller's own larger limit is lowered the same way.
    let r = chat(&app, &key, hi(Some(50_000))).await;
    assert_eq!(r.status(), 200);
    assert!(up.last().body["max_tokens"].as_u64().unwrap() < 500);
    app.stop().await;
}

#[tokio::test]
async fn a_spent_budget_refuses_and_user_budgets_cover_personal_keys() {
    let (app, up) = start(&[]).await;
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/user/new",
            json!({"user_email": "cap@example.com", "max_budget": 0.00005, "auto_create_key": true}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let user_id = v["user_id"].as_str().unwrap().to_string();
    let key = v["key"].as_str().unwrap().to_string();
    let (ok, v) = spend_until_refused(&app, &key).await;
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("User={user_id}")), "{msg}");
    assert!(!msg.contains(&tollgate_domain::secret::sha256_hex(&key)));
    // An admin raises the user's budget: the next call goes through.
    let (s, _) = app
        .api(
            &app.master_key,
            "POST",
            "/user/update",
            json!({"user_id": user_id, "max_budget": 1.0}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(chat(&app, &key, hi(Some(5))).await.status(), 200);
    assert_eq!(up.requests(), ok + 1);
    app.stop().await;
}

/// A member's budget within a team (`max_budget_in_team`) caps their calls on the team's keys,
/// as LiteLLM's does: the member's spend moves with each call, other members are not held back,
/// and raising the budget lets the next call through.
#[tokio::test]
async fn a_member_budget_caps_the_member_within_the_team() {
    let (app, _up) = start(&[]).await;
    let m = app.master_key.clone();
    let mut users = Vec::new();
    for email in ["capped@example.com", "free@example.com"] {
        let (s, v) = app
            .api(&m, "POST", "/user/new", json!({"user_email": email}))
            .await;
        assert_eq!(s, 200, "{v}");
        users.push(v["user_id"].as_str().unwrap().to_string());
    }
    let (s, v) = app
        .api(
            &m,
            "POST",
            "/team/new",
            json!({"team_alias": "capped-team"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let team_id = v["team_id"].as_str().unwrap().to_string();
    for (uid, budget) in [(&users[0], json!(0.00005)), (&users[1], Value::Null)] {
        let mut body = json!({"team_id": team_id, "member": {"user_id": uid, "role": "user"}});
        if !budget.is_null() {
            body["max_budget_in_team"] = budget;
        }
        let (s, v) = app.api(&m, "POST", "/team/member_add", body).await;
        assert_eq!(s, 200, "{v}");
    }
    let capped = new_key(&app, json!({"user_id": users[0], "team_id": team_id})).await;
    let free = new_key(&app, json!({"user_id": users[1], "team_id": team_id})).await;
    let (ok, v) = spend_until_refused(&app, &capped).await;
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "Budget has been exceeded! User={} in Team={team_id} Current cost:",
            users[0]
        )),
        "{msg}"
    );
    // The other member is not held back by it.
    assert_eq!(chat(&app, &free, hi(Some(5))).await.status(), 200);
    // The member's spend within the team moved with their calls, and only theirs.
    // The refused call is logged too: `ok` calls, the refusal, and the other member's call.
    app.wait_for_spend_logs(ok as i64 + 2).await;
    let mut spent = std::collections::HashMap::new();
    for _ in 0..50 {
        spent = app
            .store
            .list_members(&team_id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.user_id, m.spend_nanos))
            .collect();
        if spent[&users[0]] == PER_CALL_NANOS * ok as i64 && spent[&users[1]] == PER_CALL_NANOS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(spent[&users[0]], PER_CALL_NANOS * ok as i64);
    assert_eq!(spent[&users[1]], PER_CALL_NANOS);
    // Raising the member's budget lets the next call through at once.
    let (s, v) = app
        .api(
            &m,
            "POST",
            "/team/member_update",
            json!({"team_id": team_id, "user_id": users[0], "max_budget_in_team": 1.0}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(chat(&app, &capped, hi(Some(5))).await.status(), 200);
    app.stop().await;
}

/// The master key's `/global/spend/reset`: a key that spent its budget is admitted again at
/// once, though part of its spend may not have reached the store yet.
#[tokio::test]
async fn a_spend_reset_admits_a_spent_key_again() {
    let (app, _up) = start(&[]).await;
    let key = new_key(&app, json!({"max_budget": 0.00005})).await;
    spend_until_refused(&app, &key).await;
    let (s, v) = app
        .api(&app.master_key, "POST", "/global/spend/reset", Value::Null)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(chat(&app, &key, hi(Some(5))).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn requests_per_minute_answer_429_with_litellm_headers() {
    tollgate_testkit::away_from_minute_edge(10).await;
    let (app, _up) = start(&[]).await;
    let key = new_key(&app, json!({"rpm_limit": 2})).await;
    let r = chat(&app, &key, hi(Some(5))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-limit-requests"], "2");
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "1");
    assert_eq!(r.headers()["x-ratelimit-api_key-remaining-requests"], "1");
    assert_eq!(chat(&app, &key, hi(Some(5))).await.status(), 200);
    let r = chat(&app, &key, hi(Some(5))).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(r.headers()["x-ratelimit-api_key-remaining-requests"], "0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "429");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("Rate limit exceeded for api_key"), "{msg}");
    assert!(msg.contains("Limit type: requests"));
    // The limit is the key's: another key is unaffected.
    let other = new_key(&app, json!({})).await;
    assert_eq!(chat(&app, &other, hi(Some(5))).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn tokens_per_minute_and_parallel_limits() {
    tollgate_testkit::away_from_minute_edge(10).await;
    let (app, up) = start(&[]).await;
    let tpm = new_key(&app, json!({"tpm_limit": 10})).await;
    assert_eq!(chat(&app, &tpm, hi(Some(5))).await.status(), 200);
    // 18 tokens used: the next call in this minute is refused.
    let r = chat(&app, &tpm, hi(Some(5))).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Limit type: tokens"));

    up.set("priced", Behavior::Delay(Duration::from_millis(400)));
    let par = new_key(&app, json!({"max_parallel_requests": 1})).await;
    let (a, b) = tokio::join!(chat(&app, &par, hi(Some(5))), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        chat(&app, &par, hi(Some(5))).await
    });
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), StatusCode::TOO_MANY_REQUESTS);
    // The slot is free again once the first call ended.
    assert_eq!(chat(&app, &par, hi(Some(5))).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_store_outage_fails_closed_and_resumes_without_duplicates() {
    let (app, _up) = start(&[("TOLLGATE_SPEND_BUFFER_RECORDS", "20")]).await;
    let key = new_key(&app, json!({})).await;
    assert_eq!(chat(&app, &key, hi(Some(5))).await.status(), 200);
    assert_eq!(app.wait_for_spend_logs(1).await, 1);

    // Another connection holds SQLite's write lock: the spend writer cannot commit.
    let tollgate_store::Backend::Sqlite(pool) = app.store.backend() else {
        panic!("this test runs on SQLite");
    };
    let mut blocker = pool.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *blocker)
        .await
        .unwrap();

    let mut served = 0;
    let mut refused = None;
    for _ in 0..40 {
        let r = chat(&app, &key, hi(Some(5))).await;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
        served += 1;
    }
    let r = refused.expect("calls are refused once the buffer is nearly full");
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "no_db_connection", "{v}");
    assert!(
        served >= 10,
        "the buffer carried calls through the outage: {served}"
    );

    // The store is back: buffered records are written once and calls are served again.
    sqlx::query("ROLLBACK")
        .execute(&mut *blocker)
        .await
        .unwrap();
    drop(blocker);
    let want = 1 + served as i64;
    let mut ok_again = false;
    for _ in 0..200 {
        if chat(&app, &key, hi(Some(5))).await.status() == 200 {
            ok_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok_again, "calls resume after the outage");
    assert_eq!(app.wait_for_spend_logs(want + 1).await, want + 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.store.count_spend_logs().await.unwrap(), want + 1);
    assert_eq!(
        key_spend_nanos(&app, &key).await,
        (want + 1) * PER_CALL_NANOS,
        "each call counted exactly once"
    );
    app.stop().await;
}

#[tokio::test]
async fn budgets_reset_when_their_period_ends() {
    let (app, _up) = start(&[("TOLLGATE_BUDGET_RESET_INTERVAL_SECS", "1")]).await;
    // A nonsense period is refused with the field named.
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/key/generate",
            json!({"budget_duration": "fortnight"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "budget_duration");

    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/key/generate",
            json!({"max_budget": 0.0001, "budget_duration": "2s"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["budget_reset_at"].is_string(), "{v}");
    let key = v["key"].as_str().unwrap().to_string();
    // Each call costs 24e-6 of the 100e-6 budget: a few fit, then the budget is spent.
    let mut ok = 0;
    while chat(&app, &key, hi(Some(1))).await.status() == 200 {
        ok += 1;
        assert!(ok < 10, "the budget never ran out");
    }
    // The period ends within ~2 s and the job runs every second: the budget is whole again.
    let mut reopened = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if chat(&app, &key, hi(Some(1))).await.status() == 200 {
            reopened = true;
            break;
        }
    }
    assert!(reopened, "the budget never reset");
    app.stop().await;
}

#[tokio::test]
async fn crossing_a_soft_budget_is_recorded_and_emailed_once() {
    use tollgate_testkit::smtp::SmtpServer;
    let smtp = SmtpServer::start().await;
    let port = smtp.addr.port().to_string();
    let (app, _up) = start(&[
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &port),
        ("SMTP_SENDER_EMAIL", "gateway@example.com"),
        ("SMTP_TLS", "False"),
    ])
    .await;
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/user/new",
            json!({"user_email": "soft@example.com", "auto_create_key": false}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let user_id = v["user_id"].as_str().unwrap().to_string();
    // Two calls (48e-6) cross a 40e-6 soft budget; the third does not cross it again.
    let key = new_key(
        &app,
        json!({"user_id": user_id, "key_alias": "soft-key", "soft_budget": 0.00004}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(chat(&app, &key, hi(Some(5))).await.status(), 200);
    }
    let mails = smtp.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["soft@example.com".to_string()]);
    assert!(mails[0].data.contains("soft-key"));
    assert!(!mails[0].data.contains(&key), "never the key itself");
    let (entries, _) = app
        .store
        .list_audit(&tollgate_store::AuditFilter {
            object_type: Some("key".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let crossings: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "key.soft_budget_crossed")
        .collect();
    assert_eq!(crossings.len(), 1);
    assert_eq!(
        crossings[0].after.as_ref().unwrap()["key_alias"],
        "soft-key"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1, "one crossing, one email");
    app.stop().await;
}
