//! Invitation ids are 256-bit random tokens, not uuids (ASVS: at least 128 bits, and a uuid
//! does not count), and invitations stored with a uuid id before the change still onboard.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_identity::tokens::hash_token;
use tollgate_store::invitations::NewInvitation;
use tollgate_testkit::{spawn_app_vars, TestApp};

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hi", input_cost_per_token: 0, output_cost_per_token: 0}
general_settings: {master_key: "{master_key}"}
"#;

const STRONG: &str = "correct-horse-battery-staple-42";

const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Bits carried by an unpadded base64url text, refusing any other character.
fn base64url_bits(s: &str) -> usize {
    for c in s.chars() {
        assert!(BASE64URL.contains(c), "not base64url: {s:?}");
    }
    // Every 4 characters hold 3 bytes; 2 or 3 trailing characters hold 1 or 2 more.
    let bytes = s.len() / 4 * 3
        + match s.len() % 4 {
            0 => 0,
            2 => 1,
            3 => 2,
            _ => panic!("not an unpadded base64 length: {s:?}"),
        };
    bytes * 8
}

async fn new_user(app: &TestApp, email: &str) -> String {
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/user/new",
            json!({"user_email": email, "user_role": "internal_user"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["user_id"].as_str().unwrap().to_string()
}

/// Opens the link's page, then sets the password through the API onboarding.
async fn onboard(app: &TestApp, id: &str, user_id: &str, email: &str) {
    let page = app
        .client()
        .get(app.url(&format!("/ui/onboarding?id={id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(email));
    let (s, t) = app
        .api(
            &app.master_key,
            "GET",
            &format!("/onboarding/get_token?invite_link={id}"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let token = t["token"].as_str().unwrap();
    let ok = app
        .client()
        .post(app.url("/onboarding/claim_token"))
        .bearer_auth(token)
        .json(&json!({"invitation_link": id, "user_id": user_id, "password": STRONG}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn new_invitation_ids_are_256_bit_tokens_and_uuid_ids_still_onboard() {
    let app = spawn_app_vars(CONFIG, &[("PROXY_BASE_URL", "https://gw.example.com")]).await;

    let user = new_user(&app, "new@example.com").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, inv) = app
            .api(
                &app.master_key,
                "POST",
                "/invitation/new",
                json!({"user_id": user}),
            )
            .await;
        assert_eq!(s, 200, "{inv}");
        let id = inv["id"].as_str().unwrap().to_string();
        assert!(base64url_bits(&id) >= 256, "{id}");
        assert!(uuid::Uuid::parse_str(&id).is_err(), "a uuid: {id}");
        assert_eq!(
            inv["invitation_link"],
            Value::from(format!("https://gw.example.com/ui/onboarding?id={id}"))
        );
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    onboard(&app, &ids[0], &user, "new@example.com").await;

    // An invitation issued before the change: its uuid id is found by its hash as before.
    let old_user = new_user(&app, "old@example.com").await;
    let old_id = "0f8e2a64-3c1b-4d7e-9a52-6b1c8d0e4f37";
    app.store
        .create_invitation(&NewInvitation {
            id_hash: hash_token(old_id),
            user_id: old_user.clone(),
            expires_at: chrono::Utc::now() + chrono::Duration::days(1),
            created_by: "admin".to_string(),
        })
        .await
        .unwrap();
    onboard(&app, old_id, &old_user, "old@example.com").await;
    app.stop().await;
}
