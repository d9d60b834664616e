//! Spend views over HTTP: two users call models through the gateway with their own virtual keys,
//! then every view is checked for its numbers and for who may see what.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use chrono::Timelike;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_domain::policy::{decide, routes, Decision};
use tollgate_domain::role::Role;
use tollgate_testkit::{spawn_app, TestApp};

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hello from demo", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
  - model_name: other
    litellm_params: {model: openai/other, mock_response: "hello from other", input_cost_per_token: 0.000003, output_cost_per_token: 0.000001}
general_settings: {master_key: "{master_key}"}
"#;

const PW: &str = "correct-horse-battery-staple-42";

/// A user with `role`, signed in: (user id, login token).
async fn user(app: &TestApp, email: &str, role: &str) -> (String, String) {
    let m = app.master_key.clone();
    let (s, v) = app
        .api(
            &m,
            "POST",
            "/user/new",
            json!({"user_email": email, "user_role": role, "auto_create_key": false}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let id = v["user_id"].as_str().unwrap().to_string();
    let (s, _) = app
        .api(
            &m,
            "POST",
            "/user/update",
            json!({"user_id": id, "password": PW}),
        )
        .await;
    assert_eq!(s, 200);
    let r = app
        .client()
        .post(app.url("/v2/login"))
        .json(&json!({"username": email, "password": PW}))
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    (id, t["token"].as_str().unwrap().to_string())
}

/// A new key of the signed-in user: (plaintext, hash).
async fn key(app: &TestApp, token: &str) -> (String, String) {
    let (s, v) = app.api(token, "POST", "/key/generate", json!({})).await;
    assert_eq!(s, 200, "{v}");
    (
        v["key"].as_str().unwrap().to_string(),
        v["token_id"].as_str().unwrap().to_string(),
    )
}

async fn chat(app: &TestApp, key: &str, model: &str) {
    let r = app
        .client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn get(app: &TestApp, bearer: &str, path: &str) -> (StatusCode, Value) {
    app.api(bearer, "GET", path, Value::Null).await
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

fn sum_spend(rows: &[Value]) -> f64 {
    rows.iter().map(|r| r["spend"].as_f64().unwrap()).sum()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

struct World {
    app: TestApp,
    alice: (String, String),
    bob: (String, String),
    alice_key: (String, String),
    bob_key: (String, String),
}

/// Alice calls `demo` three times; Bob `demo` twice and `other` once.
async fn world() -> World {
    let app = spawn_app(CONFIG).await;
    let alice = user(&app, "alice@example.com", "internal_user").await;
    let bob = user(&app, "bob@example.com", "internal_user").await;
    let alice_key = key(&app, &alice.1).await;
    let bob_key = key(&app, &bob.1).await;
    for _ in 0..3 {
        chat(&app, &alice_key.0, "demo").await;
    }
    chat(&app, &bob_key.0, "demo").await;
    chat(&app, &bob_key.0, "demo").await;
    chat(&app, &bob_key.0, "other").await;
    assert_eq!(app.wait_for_spend_logs(6).await, 6);
    World {
        app,
        alice,
        bob,
        alice_key,
        bob_key,
    }
}

#[tokio::test]
async fn spend_logs_are_scoped_to_the_caller() {
    let w = world().await;
    let (app, m) = (&w.app, w.app.master_key.clone());

    let (s, all) = get(app, &m, "/spend/logs").await;
    assert_eq!(s, 200, "{all}");
    let all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|r| r["spend"].as_f64().unwrap() > 0.0));
    // Newest first.
    let times: Vec<&str> = all
        .iter()
        .map(|r| r["startTime"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);

    // Alice sees her own three, whatever user she names.
    for path in ["/spend/logs", &format!("/spend/logs?user_id={}", w.bob.0)] {
        let (s, v) = get(app, &w.alice.1, path).await;
        assert_eq!(s, 200, "{v}");
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 3, "{path}");
        assert!(rows.iter().all(|r| r["user"] == w.alice.0.as_str()));
        assert!(rows.iter().all(|r| r["api_key"] == w.alice_key.1.as_str()));
    }
    // Bob's key named by Alice finds nothing of Bob's.
    let (_, v) = get(
        app,
        &w.alice.1,
        &format!("/spend/logs?api_key={}", w.bob_key.0),
    )
    .await;
    assert_eq!(v.as_array().unwrap().len(), 0);

    // The admin filters by user, by key (plaintext or hash), by request id, by model.
    let (_, v) = get(app, &m, &format!("/spend/logs?user_id={}", w.bob.0)).await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    let (_, v) = get(app, &m, &format!("/spend/logs?api_key={}", w.alice_key.0)).await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    let (_, v) = get(app, &m, &format!("/spend/logs?api_key={}", w.bob_key.1)).await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    let rid = all[0]["request_id"].as_str().unwrap();
    let (_, v) = get(app, &m, &format!("/spend/logs?request_id={rid}")).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    let (_, v) = get(
        app,
        &m,
        &format!(
            "/spend/logs?model=other&summarize=false&start_date={}&end_date={}",
            today(),
            today()
        ),
    )
    .await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");

    // Summaries per day (LiteLLM's default with both dates).
    let (s, v) = get(
        app,
        &m,
        &format!("/spend/logs?start_date={}&end_date={}", today(), today()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let days = v.as_array().unwrap();
    assert_eq!(days.len(), 1, "{v}");
    assert!(close(days[0]["spend"].as_f64().unwrap(), sum_spend(&all)));
    let bob_spend = sum_spend(
        &all.iter()
            .filter(|r| r["user"] == w.bob.0.as_str())
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert!(close(
        days[0]["users"][&w.bob.0].as_f64().unwrap(),
        bob_spend
    ));
    assert!(days[0]["models"]["other"].as_f64().unwrap() > 0.0);
    assert!(days[0][&w.alice_key.1].as_f64().unwrap() > 0.0);

    // Bad dates are a 400 in the envelope.
    let (s, v) = get(
        app,
        &m,
        "/spend/logs?start_date=2026-13-01&end_date=2026-12-01",
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("YYYY-MM-DD"),
        "{v}"
    );
    let (s, _) = get(app, &m, "/spend/logs?start_date=yesterday").await;
    assert_eq!(s, 400);
    let (s, _) = get(app, &m, "/spend/logs?limit=0").await;
    assert_eq!(s, 400);
    app_stop(w).await;
}

async fn app_stop(w: World) {
    w.app.stop().await;
}

#[tokio::test]
async fn paged_logs_visit_every_row_once() {
    let w = world().await;
    let (app, m) = (&w.app, w.app.master_key.clone());
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/spend/logs/v2?page_size=4&cursor={}", urlencode(c)),
            None => "/spend/logs/v2?page_size=4".to_string(),
        };
        let (s, v) = get(app, &m, &path).await;
        assert_eq!(s, 200, "{v}");
        seen.extend(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["request_id"].as_str().unwrap().to_string()),
        );
        if v["has_more"] == false {
            assert!(v["next_cursor"].is_null());
            break;
        }
        cursor = Some(v["next_cursor"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 6);

    // Bob's pages hold only his calls; a status filter and a bad cursor are checked.
    let (_, v) = get(app, &w.bob.1, "/spend/logs/ui?page_size=50").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    let (_, v) = get(app, &m, "/spend/logs/v2?status_filter=failure").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    let (s, _) = get(app, &m, "/spend/logs/v2?cursor=nonsense").await;
    assert_eq!(s, 400);
    app_stop(w).await;
}

/// LiteLLM's numbered pages: `page`, `page_size`, `total`, `total_pages`, newest first, each row
/// once; a page past the end is empty; internal users count only their own calls.
#[tokio::test]
async fn numbered_pages_carry_totals() {
    let w = world().await;
    let (app, m) = (&w.app, w.app.master_key.clone());
    let mut seen = Vec::new();
    for page in 1..=2 {
        let (s, v) = get(app, &m, &format!("/spend/logs/v2?page_size=4&page={page}")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["page"], page);
        assert_eq!(v["page_size"], 4);
        assert_eq!(v["total"], 6);
        assert_eq!(v["total_pages"], 2);
        assert_eq!(v["total_is_capped"], false);
        assert_eq!(v["has_more"], page == 1);
        seen.extend(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["startTime"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(seen.len(), 6);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
    let (_, v) = get(app, &m, "/spend/logs/v2?page_size=4&page=3").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    assert_eq!(v["total"], 6);
    let (_, v) = get(app, &w.bob.1, "/spend/logs/ui?page=1").await;
    assert_eq!(v["total"], 3);
    let (_, v) = get(app, &m, "/spend/logs/v2?status_filter=failure&page=1").await;
    assert_eq!(v["total"], 0);
    assert_eq!(v["total_pages"], 0);
    let (s, _) = get(app, &m, "/spend/logs/v2?page=0").await;
    assert_eq!(s, 400);
    // A cursor page leaves the numbered fields out: no count is paid for.
    let (_, first) = get(app, &m, "/spend/logs/v2?page_size=4").await;
    let c = first["next_cursor"].as_str().unwrap();
    let (_, v) = get(
        app,
        &m,
        &format!("/spend/logs/v2?page_size=4&cursor={}", urlencode(c)),
    )
    .await;
    assert!(v.get("total").is_none(), "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    app_stop(w).await;
}

/// `/spend/keys`, `/spend/users`, `/global/spend/logs`, `/global/spend/provider`.
#[tokio::test]
async fn key_user_and_provider_tables() {
    let w = world().await;
    let (app, m) = (&w.app, w.app.master_key.clone());
    let (_, logs) = get(app, &m, "/spend/logs").await;
    let total = sum_spend(logs.as_array().unwrap());

    let (s, v) = get(app, &m, "/spend/keys").await;
    assert_eq!(s, 200, "{v}");
    let tokens: HashSet<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["token"].as_str().unwrap())
        .collect();
    assert_eq!(
        tokens,
        HashSet::from([w.alice_key.1.as_str(), w.bob_key.1.as_str()])
    );
    let (_, v) = get(app, &w.alice.1, "/spend/keys").await;
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0]["token"], w.alice_key.1.as_str());
    assert!(rows[0]["spend"].as_f64().unwrap() > 0.0);

    let (_, v) = get(app, &m, "/spend/users").await;
    let users = v.as_array().unwrap();
    assert!(users.len() >= 2, "{v}");
    assert!(users.iter().all(|u| u.get("password").is_none()));
    let spends: Vec<f64> = users.iter().map(|u| u["spend"].as_f64().unwrap()).collect();
    assert!(
        spends.windows(2).all(|p| p[0] >= p[1]),
        "largest first: {spends:?}"
    );
    let (_, v) = get(app, &m, &format!("/spend/users?user_id={}", w.bob.0)).await;
    assert_eq!(v[0]["user_id"], w.bob.0.as_str());
    let (_, v) = get(app, &w.alice.1, "/spend/users").await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["user_id"], w.alice.0.as_str());
    let (s, _) = get(
        app,
        &w.alice.1,
        &format!("/spend/users?user_id={}", w.bob.0),
    )
    .await;
    assert_eq!(s, 403);

    let (s, v) = get(app, &m, "/global/spend/logs").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["date"], today());
    assert!(close(sum_spend(v.as_array().unwrap()), total));
    let (_, v) = get(
        app,
        &m,
        &format!("/global/spend/logs?api_key={}", w.alice_key.0),
    )
    .await;
    assert_eq!(v[0]["api_key"], w.alice_key.1.as_str());
    let alice_total: f64 = logs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["api_key"] == w.alice_key.1.as_str())
        .map(|r| r["spend"].as_f64().unwrap())
        .sum();
    assert!(close(v[0]["spend"].as_f64().unwrap(), alice_total), "{v}");

    let range = format!("start_date={}&end_date={}", today(), today());
    let (s, v) = get(app, &m, &format!("/global/spend/provider?{range}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["provider"], "openai", "{v}");
    assert!(close(v[0]["spend"].as_f64().unwrap(), total));
    let (s, _) = get(app, &m, "/global/spend/provider").await;
    assert_eq!(s, 400);
    app_stop(w).await;
}

fn urlencode(s: &str) -> String {
    s.replace('|', "%7C")
}

/// Request tags (`tags`, or `metadata.tags`) are kept with each call: in the log's
/// `request_tags` and summed per tag by `/global/spend/tags`.
#[tokio::test]
async fn spend_per_request_tag() {
    let app = spawn_app(CONFIG).await;
    let m = app.master_key.clone();
    let (_, token) = user(&app, "tags@example.com", "internal_user").await;
    let (k, _) = key(&app, &token).await;
    let bodies = [
        json!({"model": "demo", "tags": ["prod", "exp"], "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "demo", "tags": ["prod", "exp"], "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "demo", "metadata": {"tags": ["exp"]}, "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}),
    ];
    for b in &bodies {
        let r = app
            .client()
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&k)
            .json(b)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(app.wait_for_spend_logs(4).await, 4);
    let (_, logs) = get(&app, &m, "/spend/logs").await;
    let tagged = logs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["request_tags"] == json!(["prod", "exp"]))
        .count();
    assert_eq!(tagged, 2, "{logs}");
    let range = format!("start_date={}&end_date={}", today(), today());
    let (s, v) = get(&app, &m, &format!("/global/spend/tags?{range}")).await;
    assert_eq!(s, 200, "{v}");
    let per_tag = v["spend_per_tag"].as_array().unwrap();
    let counts: Vec<(&str, i64)> = per_tag
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["log_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [("exp", 3), ("prod", 2)], "{v}");
    assert!(per_tag.iter().all(|t| t["spend"].as_f64().unwrap() > 0.0));
    let (_, v) = get(&app, &m, &format!("/global/spend/tags?{range}&tags=prod")).await;
    assert_eq!(v["spend_per_tag"].as_array().unwrap().len(), 1);
    let (s, _) = get(&app, &m, "/global/spend/tags").await;
    assert_eq!(s, 400);
    let (s, _) = get(&app, &token, &format!("/global/spend/tags?{range}")).await;
    assert_eq!(s, 401);

    // LiteLLM's /spend/tags: dates optional; an internal user sees the tags of their own calls.
    let tag_counts = |v: &Value| -> Vec<(String, i64)> {
        let mut c: Vec<(String, i64)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                assert!(t["total_spend"].as_f64().unwrap() > 0.0, "{t}");
                (
                    t["individual_request_tag"].as_str().unwrap().to_string(),
                    t["log_count"].as_i64().unwrap(),
                )
            })
            .collect();
        c.sort();
        c
    };
    let want = vec![("exp".to_string(), 3), ("prod".to_string(), 2)];
    let (s, v) = get(&app, &m, "/spend/tags").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(tag_counts(&v), want);
    let (s, v) = get(&app, &token, &format!("/spend/tags?{range}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(tag_counts(&v), want);
    let (_, other) = user(&app, "notags@example.com", "internal_user").await;
    let (s, v) = get(&app, &other, "/spend/tags").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(tag_counts(&v), vec![], "another user's tags are not theirs");
    let (s, v) = get(
        &app,
        &m,
        "/spend/tags?start_date=2000-01-01&end_date=2000-01-02",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(tag_counts(&v), vec![]);
    let (s, _) = get(&app, &m, "/spend/tags?start_date=yesterday").await;
    assert_eq!(s, 400);
    app.stop().await;
}

/// LiteLLM's `timezone` (minutes, as JavaScript's getTimezoneOffset gives them) with
/// `include_current_utc_day`: a range ending on the caller's local today also counts today's
/// UTC day, where calls made since UTC midnight are.
#[tokio::test]
async fn activity_takes_the_callers_timezone() {
    // The calls below are "today"; a run across UTC midnight would make them yesterday's.
    let to_midnight = 86_400 - i64::from(chrono::Utc::now().time().num_seconds_from_midnight());
    if to_midnight < 60 {
        tokio::time::sleep(std::time::Duration::from_secs(to_midnight as u64 + 1)).await;
    }
    let w = world().await;
    let (app, m) = (&w.app, w.app.master_key.clone());
    let now = chrono::Utc::now();
    let yesterday = (now - chrono::Duration::days(1)).date_naive();
    let spend = |v: &Value| v["metadata"]["total_spend"].as_f64().unwrap();
    let range = format!("start_date={yesterday}&end_date={yesterday}");
    let (s, v) = get(app, &m, &format!("/user/daily/activity?{range}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(spend(&v), 0.0, "nothing was spent yesterday (UTC)");
    // A caller for whom it is still yesterday: their offset puts them just before UTC midnight.
    // Only a caller up to 14 hours behind UTC exists, so from 13:55 UTC on there is none; the
    // rule itself is checked at every hour by `spend_activity.rs`'s unit tests, this checks
    // that the handler applies it.
    let since_midnight = i64::from(now.time().num_seconds_from_midnight()) / 60;
    if since_midnight + 5 <= 840 {
        let offset = since_midnight + 5;
        let path =
            format!("/user/daily/activity?{range}&timezone={offset}&include_current_utc_day=true");
        let (s, v) = get(app, &m, &path).await;
        assert_eq!(s, 200, "{v}");
        assert!(spend(&v) > 0.0, "today's UTC calls are counted: {v}");
        // Without the flag the days stay as asked.
        let (_, v) = get(
            app,
            &m,
            &format!("/user/daily/activity?{range}&timezone={offset}"),
        )
        .await;
        assert_eq!(spend(&v), 0.0);
    }
    let (s, _) = get(
        app,
        &m,
        &format!("/user/daily/activity?{range}&timezone=9999"),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = get(
        app,
        &m,
        &format!("/team/daily/activity?{range}&timezone=-60"),
    )
    .await;
    assert_eq!(s, 200);
    app_stop(w).await;
}

#[tokio::test]
async fn daily_activity_adds_up_and_is_scoped() {
    let w = world().await;
    let (app, m) = (&w.app, w.app.master_key.clone());
    let (_, logs) = get(app, &m, "/spend/logs").await;
    let logs = logs.as_array().unwrap().clone();
    let alice_logs: Vec<Value> = logs
        .iter()
        .filter(|r| r["user"] == w.alice.0.as_str())
        .cloned()
        .collect();
    let range = format!("start_date={}&end_date={}", today(), today());

    let (s, v) = get(app, &w.alice.1, &format!("/user/daily/activity?{range}")).await;
    assert_eq!(s, 200, "{v}");
    let md = &v["metadata"];
    assert_eq!(md["total_api_requests"], 3);
    assert_eq!(md["total_successful_requests"], 3);
    assert!(close(
        md["total_spend"].as_f64().unwrap(),
        sum_spend(&alice_logs)
    ));
    let prompt: i64 = alice_logs
        .iter()
        .map(|r| r["prompt_tokens"].as_i64().unwrap())
        .sum();
    assert_eq!(md["total_prompt_tokens"], prompt);
    let day = &v["results"][0];
    assert_eq!(day["date"], today());
    assert_eq!(day["metrics"]["api_requests"], 3);
    assert_eq!(
        day["breakdown"]["models"]["demo"]["metrics"]["api_requests"],
        3
    );
    assert!(day["breakdown"]["models"].get("other").is_none());
    assert_eq!(
        day["breakdown"]["api_keys"][&w.alice_key.1]["metrics"]["api_requests"],
        3
    );
    assert_eq!(
        day["breakdown"]["api_keys"][&w.alice_key.1]["metadata"]["key_exists"],
        true
    );

    // Naming someone else is refused for a non-admin; the admin sees anyone or everyone.
    let (s, v) = get(
        app,
        &w.alice.1,
        &format!("/user/daily/activity?{range}&user_id={}", w.bob.0),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "403");
    let (_, v) = get(
        app,
        &m,
        &format!("/user/daily/activity?{range}&user_id={}", w.bob.0),
    )
    .await;
    assert_eq!(v["metadata"]["total_api_requests"], 3);
    let (_, v) = get(app, &m, &format!("/user/daily/activity?{range}")).await;
    assert_eq!(v["metadata"]["total_api_requests"], 6);
    assert!(close(
        v["metadata"]["total_spend"].as_f64().unwrap(),
        sum_spend(&logs)
    ));
    let (_, v) = get(
        app,
        &m,
        &format!("/user/daily/activity?{range}&model=other"),
    )
    .await;
    assert_eq!(v["metadata"]["total_api_requests"], 1);
    let (_, v) = get(
        app,
        &m,
        &format!("/user/daily/activity?{range}&api_key={}", w.bob_key.0),
    )
    .await;
    assert_eq!(v["metadata"]["total_api_requests"], 3);

    // A range without calls is empty; dates are required and checked.
    let (_, v) = get(
        app,
        &m,
        "/user/daily/activity?start_date=2020-01-01&end_date=2020-01-31",
    )
    .await;
    assert_eq!(v["results"], json!([]));
    let (s, v) = get(app, &m, "/user/daily/activity").await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("start_date"));
    let (s, _) = get(
        app,
        &m,
        "/user/daily/activity?start_date=2026-02-30&end_date=2026-03-01",
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = get(
        app,
        &m,
        "/user/daily/activity?start_date=2026-03-02&end_date=2026-03-01",
    )
    .await;
    assert_eq!(s, 400);

    // Team activity: no teams here, so a member of none sees nothing and may name none.
    let (s, v) = get(app, &w.alice.1, &format!("/team/daily/activity?{range}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"], json!([]));
    let (s, _) = get(
        app,
        &w.alice.1,
        &format!("/team/daily/activity?{range}&team_ids=someone-elses"),
    )
    .await;
    assert_eq!(s, 403);
    let (_, v) = get(app, &m, &format!("/team/daily/activity?{range}")).await;
    assert_eq!(v["metadata"]["total_api_requests"], 6);
    assert_eq!(
        v["results"][0]["breakdown"]["entities"][""]["metrics"]["api_requests"],
        6
    );
    app_stop(w).await;
}

#[tokio::test]
async fn team_activity_counts_team_keys() {
    let app = spawn_app(CONFIG).await;
    let m = app.master_key.clone();
    let (carol, carol_t) = user(&app, "carol@example.com", "internal_user").await;
    let (_, dave_t) = user(&app, "dave@example.com", "internal_user").await;
    let (s, v) = app
        .api(
            &m,
            "POST",
            "/team/new",
            json!({"team_alias": "Research", "members_with_roles": [{"user_id": carol, "role": "user"}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let team = v["team_id"].as_str().unwrap().to_string();
    let (s, v) = app
        .api(
            &m,
            "POST",
            "/key/generate",
            json!({"user_id": carol, "team_id": team}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let team_key = v["key"].as_str().unwrap().to_string();
    chat(&app, &team_key, "demo").await;
    chat(&app, &team_key, "other").await;
    assert_eq!(app.wait_for_spend_logs(2).await, 2);
    let range = format!("start_date={}&end_date={}", today(), today());

    let (s, v) = get(
        &app,
        &carol_t,
        &format!("/team/daily/activity?{range}&team_ids={team}"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["metadata"]["total_api_requests"], 2);
    assert_eq!(
        v["results"][0]["breakdown"]["entities"][&team]["metrics"]["api_requests"],
        2
    );
    let (_, v) = get(&app, &carol_t, &format!("/team/daily/activity?{range}")).await;
    assert_eq!(v["metadata"]["total_api_requests"], 2);
    let (s, _) = get(
        &app,
        &dave_t,
        &format!("/team/daily/activity?{range}&team_ids={team}"),
    )
    .await;
    assert_eq!(s, 403);

    // The global team view names the team by its alias.
    let (s, v) = get(&app, &m, "/global/spend/teams").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["teams"], json!(["Research"]));
    assert_eq!(v["total_spend_per_team"][0]["team_id"], "Research");
    assert!(v["daily_spend"][0]["Research"].as_f64().unwrap() > 0.0);
    app.stop().await;
}

#[tokio::test]
async fn global_views_sum_everything_for_admins_only() {
    let w = world().await;
    let (app, m) = (&w.app, w.app.master_key.clone());
    let (_, logs) = get(app, &m, "/spend/logs").await;
    let total = sum_spend(logs.as_array().unwrap());

    let (s, v) = get(app, &m, "/global/spend").await;
    assert_eq!(s, 200, "{v}");
    assert!(close(v["spend"].as_f64().unwrap(), total));
    assert!(v["max_budget"].is_null());

    let (_, v) = get(app, &m, "/global/spend/keys").await;
    let keys = v.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let got: HashSet<&str> = keys
        .iter()
        .map(|k| k["api_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        HashSet::from([w.alice_key.1.as_str(), w.bob_key.1.as_str()])
    );
    assert!(keys[0]["total_spend"].as_f64() >= keys[1]["total_spend"].as_f64());
    assert!(keys[0]["key_name"].as_str().unwrap().starts_with("sk-"));
    let (_, v) = get(app, &m, "/global/spend/keys?limit=1").await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    let (s, _) = get(app, &m, "/global/spend/keys?limit=-3").await;
    assert_eq!(s, 400);

    let (_, v) = get(app, &m, "/global/spend/models").await;
    let models: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(models.len(), 2);
    assert!(models.contains(&"demo") && models.contains(&"other"));
    let model_total: f64 = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["total_spend"].as_f64().unwrap())
        .sum();
    assert!(close(model_total, total));

    let (_, v) = get(app, &m, "/global/spend/teams").await;
    assert_eq!(v["teams"], json!(["Unassigned"]));

    for path in [
        "/global/spend",
        "/global/spend/keys",
        "/global/spend/teams",
        "/global/spend/models",
        "/global/spend/logs",
        "/global/spend/provider",
    ] {
        let (s, v) = get(app, &w.alice.1, path).await;
        assert_eq!(s, 401, "{path}: {v}");
        assert_eq!(v["error"]["type"], "auth_error");
    }
    app_stop(w).await;
}

/// The RBAC matrix for the spend routes this app serves: every role against the policy table.
#[tokio::test]
async fn spend_routes_follow_the_policy_table() {
    let app = spawn_app(CONFIG).await;
    let served: HashSet<&str> = [
        "/spend/logs",
        "/spend/logs/v2",
        "/spend/logs/ui",
        "/user/daily/activity",
        "/team/daily/activity",
        "/global/spend",
        "/global/spend/keys",
        "/global/spend/teams",
        "/global/spend/models",
        "/global/spend/logs",
        "/global/spend/provider",
        "/global/spend/tags",
        "/spend/keys",
        "/spend/users",
    ]
    .into_iter()
    .collect();
    let mut tokens = Vec::new();
    for (i, role) in Role::ALL.iter().enumerate() {
        let (_, t) = user(&app, &format!("matrix{i}@example.com"), role.as_str()).await;
        tokens.push((*role, t));
    }
    let mut checked = 0;
    let range = format!("start_date={}&end_date={}", today(), today());
    for rule in routes().iter().filter(|r| served.contains(r.path)) {
        for (role, token) in &tokens {
            let (status, body) = get(&app, token, &format!("{}?{range}", rule.path)).await;
            match decide("GET", rule.path, *role) {
                Decision::Deny { status: want, .. } => {
                    assert_eq!(status.as_u16(), want, "{role:?} {}: {body}", rule.path)
                }
                _ => assert_eq!(status, 200, "{role:?} {}: {body}", rule.path),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, served.len() * Role::ALL.len());
    app.stop().await;
}

async fn chat_as(app: &TestApp, key: &str, end_user: &str, tags: Value) {
    let r = app
        .client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "demo", "user": end_user, "tags": tags,
            "messages": [{"role": "user", "content": "hi there"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// LiteLLM's spend reports, read from the log: per day by team, customer or key, the scoped
/// `/…/spend/report` routes, the end-user and tag lists, and the master key's reset.
#[tokio::test]
async fn spend_reports_as_litellm_answers_them() {
    let app = spawn_app(CONFIG).await;
    let m = app.master_key.clone();
    let (alice, token) = user(&app, "reports@example.com", "internal_user").await;
    let (personal, personal_hash) = key(&app, &token).await;
    let (s, t) = app
        .api(&m, "POST", "/team/new", json!({"team_alias": "Research"}))
        .await;
    assert_eq!(s, 200, "{t}");
    let team_id = t["team_id"].as_str().unwrap().to_string();
    let (s, v) = app
        .api(
            &m,
            "POST",
            "/team/member_add",
            json!({"team_id": team_id, "member": {"user_id": alice, "role": "user"}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = app
        .api(
            &m,
            "POST",
            "/key/generate",
            json!({"user_id": alice, "team_id": team_id}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let team_key = v["key"].as_str().unwrap().to_string();
    let team_hash = v["token_id"].as_str().unwrap().to_string();
    chat_as(&app, &personal, "cust-1", json!(["nightly"])).await;
    chat_as(&app, &personal, "cust-1", json!([])).await;
    chat_as(&app, &team_key, "cust-2", json!(["eval", "nightly"])).await;
    assert_eq!(app.wait_for_spend_logs(3).await, 3);
    let range = format!("start_date={}&end_date={}", today(), today());

    // By team (the default): one day, the team by its alias, keys without one "Unassigned".
    let (s, v) = get(&app, &m, &format!("/global/spend/report?{range}")).await;
    assert_eq!(s, 200, "{v}");
    let days = v.as_array().unwrap();
    assert_eq!(days.len(), 1, "{v}");
    assert_eq!(
        days[0]["group_by_day"],
        format!("{}T00:00:00+00:00", today())
    );
    let mut teams: Vec<(String, usize)> = days[0]["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let meta = t["metadata"].as_array().unwrap();
            assert!(t["total_spend"].as_f64().unwrap() > 0.0);
            for item in meta {
                assert_eq!(item["model"], "demo", "{item}");
                assert!(item["total_tokens"].as_i64().unwrap() > 0);
            }
            (t["team_name"].as_str().unwrap().to_string(), meta.len())
        })
        .collect();
    teams.sort();
    assert_eq!(
        teams,
        [
            ("Research".to_string(), 1),
            ("Unassigned Team".to_string(), 1)
        ]
    );
    // By customer, by key, one key, one user, one team and customer.
    let (_, v) = get(
        &app,
        &m,
        &format!("/global/spend/report?{range}&group_by=customer"),
    )
    .await;
    let customers: HashSet<&str> = v[0]["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"].as_str().unwrap())
        .collect();
    assert_eq!(customers, HashSet::from(["cust-1", "cust-2"]), "{v}");
    let (_, v) = get(
        &app,
        &m,
        &format!("/global/spend/report?{range}&group_by=api_key"),
    )
    .await;
    let keys = v.as_array().unwrap();
    assert_eq!(keys.len(), 2, "{v}");
    let mine = keys
        .iter()
        .find(|k| k["api_key"] == personal_hash.as_str())
        .unwrap();
    assert_eq!(mine["model_details"][0]["model"], "demo");
    assert!(mine["total_input_tokens"].as_i64().unwrap() > 0);
    assert!(
        (mine["total_cost"].as_f64().unwrap()
            - mine["model_details"][0]["total_cost"].as_f64().unwrap())
        .abs()
            < 1e-12
    );
    let (_, v) = get(
        &app,
        &m,
        &format!("/global/spend/report?{range}&api_key={personal}"),
    )
    .await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["api_key"], personal_hash.as_str());
    let (_, v) = get(
        &app,
        &m,
        &format!("/global/spend/report?{range}&internal_user_id={alice}"),
    )
    .await;
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    let (_, v) = get(
        &app,
        &m,
        &format!("/global/spend/report?{range}&team_id={team_id}&customer_id=cust-2"),
    )
    .await;
    assert_eq!(v[0]["teams_customers"][0]["team_name"], "Research", "{v}");
    assert_eq!(v[0]["teams_customers"][0]["customer"], "cust-2");
    let (s, v) = get(&app, &m, "/global/spend/report").await;
    assert_eq!(s, 400);
    assert_eq!(
        v["error"]["message"],
        "Please provide start_date and end_date"
    );
    let (s, _) = get(
        &app,
        &m,
        &format!("/global/spend/report?{range}&group_by=model"),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = get(&app, &token, &format!("/global/spend/report?{range}")).await;
    assert_eq!(s, 401, "admin roles only");

    // Scoped reports: a user sees their own, a key its own, a team key its team.
    let (s, v) = get(&app, &token, &format!("/user/spend/report?{range}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    let (s, v) = get(
        &app,
        &token,
        &format!("/user/spend/report?{range}&internal_user_id=someone-else"),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(
        v["error"]["message"],
        "Not authorized to view spend for a internal_user_id other than your own"
    );
    let (s, v) = get(&app, &personal, &format!("/key/spend/report?{range}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["api_key"], personal_hash.as_str());
    let (s, v) = get(&app, &token, &format!("/key/spend/report?{range}")).await;
    assert_eq!(s, 400, "a login token has no key: {v}");
    let (s, v) = get(&app, &team_key, &format!("/team/spend/report?{range}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["api_key"], team_hash.as_str());
    let (s, _) = get(
        &app,
        &m,
        &format!("/team/spend/report?{range}&team_id={team_id}"),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = get(
        &app,
        &token,
        "/user/spend/report?start_date=2024-01-01&end_date=2026-01-01",
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["error"]["message"],
        "Date range too large; maximum is 366 days"
    );
    let (s, v) = get(
        &app,
        &token,
        "/user/spend/report?start_date=2026-02-01&end_date=2026-01-01",
    )
    .await;
    assert_eq!(
        (s.as_u16(), v["error"]["message"].as_str()),
        (400, Some("start_date must be on or before end_date"))
    );

    // Tags, end users.
    let (s, v) = get(&app, &m, "/global/spend/all_tag_names").await;
    assert_eq!(s, 200);
    assert_eq!(v, json!({"tag_names": ["eval", "nightly"]}));
    let (s, v) = app
        .api(&m, "POST", "/global/spend/end_users", json!({}))
        .await;
    assert_eq!(s, 200, "{v}");
    let per_user: Vec<(&str, i64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["end_user"].as_str().unwrap(),
                u["total_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per_user, [("cust-1", 2), ("cust-2", 1)]);
    let (_, v) = app
        .api(
            &m,
            "POST",
            "/global/spend/end_users",
            json!({"api_key": team_key}),
        )
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let (s, v) = get(&app, &m, "/global/all_end_users").await;
    assert_eq!(s, 200);
    assert_eq!(v, json!({"end_users": ["cust-1", "cust-2"]}));

    // Activity: calls and tokens per day (LiteLLM's "May 10" labels), and per model group;
    // internal users see their own calls, read-only internal users are refused.
    let label = chrono::Utc::now().format("%b %d").to_string();
    let (s, v) = get(&app, &m, &format!("/global/activity?{range}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["daily_data"][0]["date"], label.as_str(), "{v}");
    assert_eq!(v["daily_data"][0]["api_requests"], 3);
    assert_eq!(v["sum_api_requests"], 3);
    assert!(v["sum_total_tokens"].as_i64().unwrap() > 0);
    let (_, own) = get(&app, &token, &format!("/global/activity?{range}")).await;
    assert_eq!(own["sum_api_requests"], 3, "{own}");
    let (_, stranger) = user(&app, "no-calls@example.com", "internal_user").await;
    let (s, v) = get(&app, &stranger, &format!("/global/activity?{range}")).await;
    assert_eq!((s.as_u16(), v["sum_api_requests"].as_i64()), (200, Some(0)));
    let (_, ro) = user(&app, "ro-activity@example.com", "internal_user_viewer").await;
    let (s, _) = get(&app, &ro, &format!("/global/activity?{range}")).await;
    assert_eq!(s, 401);
    let (s, v) = get(&app, &m, &format!("/global/activity/model?{range}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["model"], "demo", "{v}");
    assert_eq!(v[0]["sum_api_requests"], 3);
    assert_eq!(v[0]["daily_data"][0]["model_group"], "demo");
    let (s, _) = get(&app, &m, "/global/activity").await;
    assert_eq!(s, 400, "dates are required");

    // Refresh: nothing to refresh (the views are always current), LiteLLM's default answer;
    // a read-only admin may not call it.
    let (s, v) = app
        .api(&m, "POST", "/global/spend/refresh", Value::Null)
        .await;
    assert_eq!((s.as_u16(), v), (200, Value::Null));
    let (_, viewer) = user(&app, "refresh-viewer@example.com", "proxy_admin_viewer").await;
    let (s, _) = app
        .api(&viewer, "POST", "/global/spend/refresh", Value::Null)
        .await;
    assert_eq!(s, 403);

    // The reset: master key only; keys and teams back to 0, users keep theirs.
    let (_, admin_token) = user(&app, "reset-admin@example.com", "proxy_admin").await;
    let (s, v) = app
        .api(&admin_token, "POST", "/global/spend/reset", Value::Null)
        .await;
    assert_eq!(s, 401, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("only for MASTER KEY"));
    let (s, v) = app
        .api(&m, "POST", "/global/spend/reset", Value::Null)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "success");
    let (_, info) = get(&app, &m, &format!("/key/info?key={personal}")).await;
    assert_eq!(info["info"]["spend"], 0.0, "{info}");
    let (_, team) = get(&app, &m, &format!("/team/info?team_id={team_id}")).await;
    assert_eq!(team["team_info"]["spend"], 0.0, "{team}");
    let (_, me) = get(&app, &m, &format!("/user/info?user_id={alice}")).await;
    assert!(me["user_info"]["spend"].as_f64().unwrap() > 0.0, "{me}");
    // The next call counts from 0.
    chat_as(&app, &personal, "cust-1", json!([])).await;
    app.wait_for_spend_logs(4).await;
    let spent = app
        .store
        .get_key(&personal_hash)
        .await
        .unwrap()
        .unwrap()
        .spend_nanos;
    let one_call = mine["model_details"][0]["total_cost"].as_f64().unwrap() / 2.0;
    assert!(((spent as f64 / 1e9) - one_call).abs() < 1e-9, "{spent}");

    // A team member who is not its admin sees their own calls in the team's report; the
    // team's admin sees everyone's.
    let (bob, _) = user(&app, "reports-bob@example.com", "internal_user").await;
    let (s, v) = app
        .api(
            &m,
            "POST",
            "/team/member_add",
            json!({"team_id": team_id, "member": {"user_id": bob, "role": "user"}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = app
        .api(
            &m,
            "POST",
            "/key/generate",
            json!({"user_id": bob, "team_id": team_id}),
        )
        .await;
    let bob_key = v["key"].as_str().unwrap().to_string();
    chat_as(&app, &bob_key, "cust-3", json!([])).await;
    app.wait_for_spend_logs(5).await;
    let keys_seen = |v: &Value| -> usize { v.as_array().unwrap().len() };
    let (_, v) = get(&app, &team_key, &format!("/team/spend/report?{range}")).await;
    assert_eq!(keys_seen(&v), 1, "only alice's own key: {v}");
    assert_eq!(v[0]["api_key"], team_hash.as_str());
    let (_, v) = get(
        &app,
        &m,
        &format!("/team/spend/report?{range}&team_id={team_id}"),
    )
    .await;
    assert_eq!(keys_seen(&v), 2, "{v}");
    let (s, v) = app
        .api(
            &m,
            "POST",
            "/team/member_update",
            json!({"team_id": team_id, "user_id": alice, "role": "admin"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = get(&app, &team_key, &format!("/team/spend/report?{range}")).await;
    assert_eq!(keys_seen(&v), 2, "the team's admin sees the team: {v}");
    app.stop().await;
}
