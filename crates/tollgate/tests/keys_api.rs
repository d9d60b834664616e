//! Virtual keys: users create their own keys, call models with them through the gateway, and
//! every change (block, delete, regenerate, expiry, model list) takes effect on the next call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_testkit::{spawn_app, TestApp};

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hello from demo", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
  - model_name: other
    litellm_params: {model: openai/other, mock_response: "hello from other", input_cost_per_token: 0, output_cost_per_token: 0}
general_settings: {master_key: "{master_key}"}
"#;

const PW: &str = "correct-horse-battery-staple-42";

async fn call(
    app: &TestApp,
    bearer: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.api(bearer, method, path, body).await
}

async fn user(app: &TestApp, email: &str, role: &str) -> (String, String) {
    let m = app.master_key.clone();
    let (s, v) = call(
        app,
        &m,
        "POST",
        "/user/new",
        json!({"user_email": email, "user_role": role, "auto_create_key": false}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let id = v["user_id"].as_str().unwrap().to_string();
    let (s, _) = call(
        app,
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

async fn chat(app: &TestApp, key: &str, model: &str) -> StatusCode {
    app.client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn users_create_and_use_their_own_keys() {
    let app = spawn_app(CONFIG).await;
    let (alice, alice_t) = user(&app, "alice@example.com", "internal_user").await;
    let (bob, bob_t) = user(&app, "bob@example.com", "internal_user").await;

    let (s, k) = call(
        &app,
        &alice_t,
        "POST",
        "/key/generate",
        json!({"key_alias": "laptop"}),
    )
    .await;
    assert_eq!(s, 200, "{k}");
    let key = k["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-") && key.len() >= 40);
    assert_eq!(k["user_id"], alice.as_str());
    assert_eq!(k["key_name"], format!("sk-...{}", &key[key.len() - 4..]));
    assert_eq!(chat(&app, &key, "demo").await, 200);
    assert_eq!(app.wait_for_spend_logs(1).await, 1);
    let recent = app.store.recent_spend_logs(1).await.unwrap();
    assert_eq!(
        recent[0].user_id.as_deref(),
        Some(alice.as_str()),
        "spend is attributed to the key's owner"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (s, info) = call(
        &app,
        &alice_t,
        "GET",
        &format!("/key/info?key={key}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(info["info"]["spend"].as_f64().unwrap() > 0.0, "{info}");
    let (s, me) = call(&app, &alice_t, "GET", "/user/info", json!({})).await;
    assert_eq!(s, 200);
    assert!(
        me["user_info"]["spend"].as_f64().unwrap() > 0.0,
        "users see their own spend: {me}"
    );
    assert!(
        !info["info"].to_string().contains(&key[3..]),
        "the plaintext is shown only once"
    );

    // Ownership: no keys for others, no peeking at others' keys, no moving keys.
    let (s, _) = call(
        &app,
        &alice_t,
        "POST",
        "/key/generate",
        json!({"user_id": bob}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(
        &app,
        &bob_t,
        "GET",
        &format!("/key/info?key={key}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(&app, &bob_t, "POST", "/key/delete", json!({"keys": [key]})).await;
    assert_eq!(s, 403);
    let (s, _) = call(
        &app,
        &alice_t,
        "POST",
        "/key/update",
        json!({"key": key, "user_id": bob}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(
        &app,
        &alice_t,
        "POST",
        "/key/update",
        json!({"key": key, "max_budget": 1000}),
    )
    .await;
    assert_eq!(s, 403, "no raising one's own budget");
    let (s, _) = call(&app, &alice_t, "POST", "/key/block", json!({"key": key})).await;
    assert_eq!(s, 403);
    let (s, list) = call(&app, &alice_t, "GET", "/key/list", json!({})).await;
    assert_eq!((s, list["total_count"].clone()), (StatusCode::OK, json!(1)));
    let (s, _) = call(
        &app,
        &alice_t,
        "GET",
        &format!("/key/list?user_id={bob}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 403);

    // Every change takes effect on the next call.
    let m = app.master_key.clone();
    let (s, _) = call(&app, &m, "POST", "/key/block", json!({"key": key})).await;
    assert_eq!(s, 200);
    assert_eq!(chat(&app, &key, "demo").await, 401);
    let (s, _) = call(&app, &m, "POST", "/key/unblock", json!({"key": key})).await;
    assert_eq!(s, 200);
    assert_eq!(chat(&app, &key, "demo").await, 200);
    let (s, _) = call(
        &app,
        &alice_t,
        "POST",
        "/key/update",
        json!({"key": key, "models": ["demo"]}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(chat(&app, &key, "other").await, 403, "model not allowed");
    let (s, models) = call(&app, &key, "GET", "/v1/models", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(models["data"].as_array().unwrap().len(), 1);
    let (s, regen) = call(
        &app,
        &alice_t,
        "POST",
        "/key/regenerate",
        json!({"key": key}),
    )
    .await;
    assert_eq!(s, 200, "{regen}");
    let new_key = regen["key"].as_str().unwrap().to_string();
    assert_eq!(chat(&app, &key, "demo").await, 401, "the old key stops");
    assert_eq!(chat(&app, &new_key, "demo").await, 200);
    let (s, _) = call(
        &app,
        &alice_t,
        "POST",
        "/key/delete",
        json!({"keys": [new_key]}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(chat(&app, &new_key, "demo").await, 401);
    let (s, _) = call(
        &app,
        &alice_t,
        "GET",
        &format!("/key/info?key={new_key}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 404);

    // Expiry, by the key's duration.
    let (_, k) = call(
        &app,
        &bob_t,
        "POST",
        "/key/generate",
        json!({"duration": "1s"}),
    )
    .await;
    let short = k["key"].as_str().unwrap().to_string();
    assert_eq!(chat(&app, &short, "demo").await, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(chat(&app, &short, "demo").await, 401);

    // Deleting the user ends their keys.
    let (_, k) = call(&app, &bob_t, "POST", "/key/generate", json!({})).await;
    let bobs = k["key"].as_str().unwrap().to_string();
    assert_eq!(chat(&app, &bobs, "demo").await, 200);
    let (s, _) = call(&app, &m, "POST", "/user/delete", json!({"user_ids": [bob]})).await;
    assert_eq!(s, 200);
    assert_eq!(chat(&app, &bobs, "demo").await, 401);
    app.stop().await;
}

#[tokio::test]
async fn viewers_create_no_keys_and_admin_viewer_keys_cannot_call_models() {
    let app = spawn_app(CONFIG).await;
    let (_, viewer_t) = user(&app, "v@example.com", "internal_user_viewer").await;
    let (s, _) = call(&app, &viewer_t, "POST", "/key/generate", json!({})).await;
    assert!(s == 401 || s == 403, "{s}");
    let (admin_viewer, _) = user(&app, "av@example.com", "proxy_admin_viewer").await;
    let m = app.master_key.clone();
    let (s, k) = call(
        &app,
        &m,
        "POST",
        "/key/generate",
        json!({"user_id": admin_viewer}),
    )
    .await;
    assert_eq!(s, 200, "{k}");
    assert_eq!(chat(&app, k["key"].as_str().unwrap(), "demo").await, 403);
    app.stop().await;
}

#[tokio::test]
async fn a_users_key_manages_that_users_keys_with_the_users_role() {
    let app = spawn_app(CONFIG).await;
    let (alice, alice_t) = user(&app, "alice.k@example.com", "internal_user").await;
    let (_, k) = call(&app, &alice_t, "POST", "/key/generate", json!({})).await;
    let key = k["key"].as_str().unwrap().to_string();

    // The key acts as Alice: it creates and lists her keys.
    let (s, k2) = call(
        &app,
        &key,
        "POST",
        "/key/generate",
        json!({"key_alias": "ci"}),
    )
    .await;
    assert_eq!(s, 200, "{k2}");
    assert_eq!(k2["user_id"], alice.as_str());
    let (s, list) = call(&app, &key, "GET", "/key/list", json!({})).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["keys"].as_array().unwrap().len(), 2, "{list}");
    // …but with her role only: admin routes stay closed.
    let (s, _) = call(&app, &key, "GET", "/user/list", json!({})).await;
    assert!(s == 401 || s == 403, "{s}");
    let (s, _) = call(
        &app,
        &key,
        "POST",
        "/user/update",
        json!({"user_id": alice, "user_role": "proxy_admin"}),
    )
    .await;
    assert!(s == 401 || s == 403, "{s}");

    // A blocked key manages nothing; a key without a user is refused too.
    let m = app.master_key.clone();
    let (s, _) = call(&app, &m, "POST", "/key/block", json!({"key": key})).await;
    assert_eq!(s, 200);
    let (s, v) = call(&app, &key, "GET", "/key/list", json!({})).await;
    assert_eq!(s, 401, "{v}");
    let (_, orphan) = call(&app, &m, "POST", "/key/generate", json!({})).await;
    let orphan = orphan["key"].as_str().unwrap().to_string();
    let (s, v) = call(&app, &orphan, "GET", "/key/list", json!({})).await;
    assert_eq!(s, 401, "{v}");
    assert!(
        !v.to_string().contains(&orphan[3..]),
        "no key in the answer"
    );
    app.stop().await;
}

#[tokio::test]
async fn regenerate_by_path_replaces_the_secret() {
    let app = spawn_app(CONFIG).await;
    let (_, alice_t) = user(&app, "alice.r@example.com", "internal_user").await;
    let (_, k) = call(&app, &alice_t, "POST", "/key/generate", json!({})).await;
    let old = k["key"].as_str().unwrap().to_string();
    assert_eq!(chat(&app, &old, "demo").await, 200);
    let (s, v) = call(
        &app,
        &alice_t,
        "POST",
        &format!("/key/{old}/regenerate"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let new = v["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(
        chat(&app, &old, "demo").await,
        401,
        "the old secret stops working"
    );
    assert_eq!(chat(&app, &new, "demo").await, 200);
    // By hash too, and someone else's key is refused.
    let (_, bob_t) = user(&app, "bob.r@example.com", "internal_user").await;
    let hash = tollgate_domain::secret::sha256_hex(&new);
    let (s, _) = call(
        &app,
        &bob_t,
        "POST",
        &format!("/key/{hash}/regenerate"),
        json!({}),
    )
    .await;
    assert_eq!(s, 403);
    app.stop().await;
}

#[tokio::test]
async fn team_keys_follow_their_team() {
    let app = spawn_app(CONFIG).await;
    let m = app.master_key.clone();
    let (s, t) = call(
        &app,
        &m,
        "POST",
        "/team/new",
        json!({"team_alias": "t", "models": ["other"]}),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let team_id = t["team_id"].as_str().unwrap().to_string();
    let (_, k) = call(
        &app,
        &m,
        "POST",
        "/key/generate",
        json!({"team_id": team_id}),
    )
    .await;
    let key = k["key"].as_str().unwrap().to_string();
    // An empty key list inherits the team's models.
    assert_eq!(chat(&app, &key, "other").await, 200);
    assert_eq!(chat(&app, &key, "demo").await, 403);
    // Once the team is gone, its keys stop working instead of opening every model.
    let (s, v) = call(
        &app,
        &m,
        "POST",
        "/team/delete",
        json!({"team_ids": [team_id]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(chat(&app, &key, "other").await, 401);
    assert_eq!(chat(&app, &key, "demo").await, 401);
    app.stop().await;
}

#[tokio::test]
async fn an_absurd_duration_is_a_clear_400() {
    let app = spawn_app(CONFIG).await;
    let m = app.master_key.clone();
    // Far enough out to overflow a date: refused in the envelope, and the gateway keeps serving.
    let (s, v) = call(
        &app,
        &m,
        "POST",
        "/key/generate",
        json!({"duration": "99999999999d"}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "duration");
    let (s, _) = call(
        &app,
        &m,
        "POST",
        "/key/generate",
        json!({"duration": "30d"}),
    )
    .await;
    assert_eq!(s, 200);
    app.stop().await;
}
