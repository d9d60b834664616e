//! Budgets and limits on keys, users, teams and team members: a negative, fractional, oversized
//! or non-numeric value is refused with LiteLLM's 422 envelope naming the field, on create and on
//! update, and the refused request changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_testkit::{spawn_app, TestApp};

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hi", input_cost_per_token: 0, output_cost_per_token: 0}
general_settings: {master_key: "{master_key}"}
"#;

/// JSON literals a money field must refuse: negative, out of f64's range, too large for
/// nano-USD in an i64, and not numbers.
const BAD_MONEY: &[&str] = &[
    "-1", "-0.01", "1e400", "-1e400", "1e10", "\"abc\"", "\"5\"", "true", "[1]", "{}",
];

/// JSON literals a count limit must refuse: negative, fractional, past i64, and not numbers.
const BAD_COUNT: &[&str] = &[
    "-5",
    "-1",
    "1.5",
    "1e400",
    "9223372036854775808",
    "-9223372036854775809",
    "\"10\"",
    "\"abc\"",
    "false",
    "{}",
];

const COUNTS: &[&str] = &["tpm_limit", "rpm_limit", "max_parallel_requests"];

/// Posts `prefix` + `"field": literal` + `}` as the raw body (`1e400` has no `serde_json::Value`).
async fn post_raw(app: &TestApp, path: &str, prefix: &str, field: &str, literal: &str) -> Value {
    let sep = if prefix.ends_with('{') { "" } else { ", " };
    let body = format!("{prefix}{sep}\"{field}\": {literal}}}");
    let r = app
        .client()
        .post(app.url(path))
        .bearer_auth(&app.master_key)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{path} {body}: {v}"
    );
    let e = &v["error"];
    assert_eq!(e["param"], field, "{path} {body}: {v}");
    assert_eq!(e["type"], "validation_error", "{path} {body}: {v}");
    assert_eq!(e["code"], "422", "{path} {body}: {v}");
    let message = e["message"].as_str().unwrap();
    assert!(message.starts_with(field), "{path} {body}: {message}");
    v
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (s, v) = app.api(&app.master_key, "GET", path, Value::Null).await;
    assert_eq!(s, 200, "{path}: {v}");
    v
}

async fn post(app: &TestApp, path: &str, body: Value) -> Value {
    let (s, v) = app.api(&app.master_key, "POST", path, body).await;
    assert_eq!(s, 200, "{path}: {v}");
    v
}

/// How many keys, users and teams exist.
async fn counts(app: &TestApp) -> (Value, Value, usize) {
    let keys = get(app, "/key/list?size=100").await["total_count"].clone();
    let users = get(app, "/user/list?page_size=100").await["total"].clone();
    let teams = get(app, "/team/list").await.as_array().unwrap().len();
    (keys, users, teams)
}

fn bad_values() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for literal in BAD_MONEY {
        out.push(("max_budget", *literal));
    }
    for field in COUNTS {
        for literal in BAD_COUNT {
            out.push((*field, *literal));
        }
    }
    out
}

#[tokio::test]
async fn keys_refuse_bad_budgets_and_limits_and_store_nothing() {
    let app = spawn_app(CONFIG).await;
    let limits = json!({"key_alias": "kept", "max_budget": 10, "soft_budget": 5,
        "tpm_limit": 1000, "rpm_limit": 10, "max_parallel_requests": 2});
    let key = post(&app, "/key/generate", limits).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let info = format!("/key/info?key={key}");
    let before = get(&app, &info).await["info"].clone();
    let stored = counts(&app).await;

    let mut fields = bad_values();
    for literal in BAD_MONEY {
        fields.push(("soft_budget", *literal));
    }
    for (field, literal) in fields {
        post_raw(
            &app,
            "/key/generate",
            r#"{"key_alias": "new""#,
            field,
            literal,
        )
        .await;
        assert_eq!(
            counts(&app).await,
            stored,
            "{field}: {literal} created a key"
        );
        let prefix = format!(r#"{{"key": "{key}", "key_alias": "changed""#);
        post_raw(&app, "/key/update", &prefix, field, literal).await;
        let now = get(&app, &info).await["info"].clone();
        assert_eq!(now, before, "{field}: {literal} changed the key");
    }

    // 0 is a limit (nothing is admitted), not a refusal.
    let zero = json!({"key": key, "max_budget": 0, "rpm_limit": 0, "tpm_limit": 0,
        "max_parallel_requests": 0});
    let after = post(&app, "/key/update", zero).await;
    assert_eq!(after["rpm_limit"], 0);
    assert_eq!(after["max_parallel_requests"], 0);
    assert_eq!(after["max_budget"], 0.0);
    app.stop().await;
}

#[tokio::test]
async fn users_refuse_bad_budgets_limits_and_spend_and_store_nothing() {
    let app = spawn_app(CONFIG).await;
    let created = post(
        &app,
        "/user/new",
        json!({"user_email": "kept@example.com", "max_budget": 10, "tpm_limit": 1000,
            "rpm_limit": 10, "max_parallel_requests": 2}),
    )
    .await;
    let id = created["user_id"].as_str().unwrap().to_string();
    let info = format!("/user/info?user_id={id}");
    let before = get(&app, &info).await["user_info"].clone();
    let stored = counts(&app).await;

    let mut fields = bad_values();
    for literal in BAD_MONEY {
        fields.push(("spend", *literal));
    }
    for (n, (field, literal)) in fields.into_iter().enumerate() {
        if field != "spend" {
            let prefix = format!(r#"{{"user_email": "new{n}@example.com""#);
            post_raw(&app, "/user/new", &prefix, field, literal).await;
            assert_eq!(
                counts(&app).await,
                stored,
                "{field}: {literal} created a user"
            );
        }
        let prefix = format!(r#"{{"user_id": "{id}", "user_alias": "changed""#);
        post_raw(&app, "/user/update", &prefix, field, literal).await;
        let now = get(&app, &info).await["user_info"].clone();
        assert_eq!(now, before, "{field}: {literal} changed the user");
    }
    app.stop().await;
}

#[tokio::test]
async fn teams_refuse_bad_budgets_and_limits_and_store_nothing() {
    let app = spawn_app(CONFIG).await;
    let team = post(
        &app,
        "/team/new",
        json!({"team_alias": "kept", "max_budget": 10, "tpm_limit": 1000, "rpm_limit": 10,
            "max_parallel_requests": 2}),
    )
    .await["team_id"]
        .as_str()
        .unwrap()
        .to_string();
    let info = format!("/team/info?team_id={team}");
    let before = get(&app, &info).await["team_info"].clone();
    let stored = counts(&app).await;

    for (field, literal) in bad_values() {
        post_raw(&app, "/team/new", r#"{"team_alias": "new""#, field, literal).await;
        assert_eq!(
            counts(&app).await,
            stored,
            "{field}: {literal} created a team"
        );
        let prefix = format!(r#"{{"team_id": "{team}", "team_alias": "changed""#);
        post_raw(&app, "/team/update", &prefix, field, literal).await;
        let now = get(&app, &info).await["team_info"].clone();
        assert_eq!(now, before, "{field}: {literal} changed the team");
    }
    app.stop().await;
}

#[tokio::test]
async fn team_members_refuse_bad_budgets_and_change_nothing() {
    let app = spawn_app(CONFIG).await;
    let team = post(&app, "/team/new", json!({"team_alias": "t"})).await["team_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut users = Vec::new();
    for email in ["member@example.com", "other@example.com"] {
        let u = post(
            &app,
            "/user/new",
            json!({"user_email": email, "auto_create_key": false}),
        )
        .await;
        users.push(u["user_id"].as_str().unwrap().to_string());
    }
    post(
        &app,
        "/team/member_add",
        json!({"team_id": team, "member": {"user_id": users[0], "role": "user"},
            "max_budget_in_team": 3}),
    )
    .await;
    let info = format!("/team/info?team_id={team}");
    let before = get(&app, &info).await["team_memberships"].clone();
    assert_eq!(before.as_array().unwrap().len(), 1);

    for literal in BAD_MONEY {
        let prefix = format!(
            r#"{{"team_id": "{team}", "member": {{"user_id": "{}", "role": "user"}}"#,
            users[1]
        );
        post_raw(
            &app,
            "/team/member_add",
            &prefix,
            "max_budget_in_team",
            literal,
        )
        .await;
        // The role is sent too: it must not change when the budget is refused.
        let prefix = format!(
            r#"{{"team_id": "{team}", "user_id": "{}", "role": "admin""#,
            users[0]
        );
        post_raw(
            &app,
            "/team/member_update",
            &prefix,
            "max_budget_in_team",
            literal,
        )
        .await;
        let now = get(&app, &info).await["team_memberships"].clone();
        assert_eq!(now, before, "{literal} changed members");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_team_with_a_bad_member_is_not_created() {
    let app = spawn_app(CONFIG).await;
    let u = post(
        &app,
        "/user/new",
        json!({"user_email": "m@example.com", "auto_create_key": false}),
    )
    .await;
    let stored = counts(&app).await;
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/team/new",
            json!({"team_alias": "half", "members_with_roles": [
                {"user_id": u["user_id"], "role": "owner"}]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "role");
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/team/new",
            json!({"team_alias": "half", "members_with_roles": [
                {"user_email": "nobody@example.com"}]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(counts(&app).await, stored, "a refused team was created");

    // Adding several members: one bad member adds none of them.
    let team = post(&app, "/team/new", json!({"team_alias": "whole"})).await["team_id"].clone();
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/team/member_add",
            json!({"team_id": team, "member": [
                {"user_id": u["user_id"], "role": "user"},
                {"user_email": "nobody@example.com"}]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let info = get(
        &app,
        &format!("/team/info?team_id={}", team.as_str().unwrap()),
    )
    .await;
    assert_eq!(info["team_memberships"], json!([]), "{info}");
    app.stop().await;
}

#[tokio::test]
async fn a_team_admin_refused_a_member_budget_changes_no_role() {
    let app = spawn_app(CONFIG).await;
    let pw = "correct-horse-battery-staple-42";
    let mut ids = Vec::new();
    for email in ["lead@example.com", "member@example.com"] {
        let u = post(
            &app,
            "/user/new",
            json!({"user_email": email, "auto_create_key": false}),
        )
        .await;
        ids.push(u["user_id"].as_str().unwrap().to_string());
    }
    post(
        &app,
        "/user/update",
        json!({"user_id": ids[0], "password": pw}),
    )
    .await;
    let login: Value = app
        .client()
        .post(app.url("/v2/login"))
        .json(&json!({"username": "lead@example.com", "password": pw}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lead = login["token"].as_str().unwrap().to_string();
    let team = post(
        &app,
        "/team/new",
        json!({"team_alias": "t", "members_with_roles": [
            {"user_id": ids[0], "role": "admin"}, {"user_id": ids[1], "role": "user"}]}),
    )
    .await["team_id"]
        .as_str()
        .unwrap()
        .to_string();
    let info = format!("/team/info?team_id={team}");
    let before = get(&app, &info).await["team_memberships"].clone();

    let (s, v) = app
        .api(
            &lead,
            "POST",
            "/team/member_update",
            json!({"team_id": team, "user_id": ids[1], "role": "admin", "max_budget_in_team": 1}),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(get(&app, &info).await["team_memberships"], before);
    // The role alone is the team admin's to change.
    let (s, v) = app
        .api(
            &lead,
            "POST",
            "/team/member_update",
            json!({"team_id": team, "user_id": ids[1], "role": "admin"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["role"], "admin");
    app.stop().await;
}
