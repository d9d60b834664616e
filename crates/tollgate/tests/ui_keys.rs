//! The web UI's Keys page over plain HTTP: sign in with a form, create a key (its secret shown
//! once, with snippets), use it, delete it through the confirm page; viewers only look.

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

const STRONG: &str = "correct-horse-battery-staple-42";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A signed-in browser, reduced to its session cookie.
struct Session {
    cookie: String,
}

impl Session {
    async fn get(&self, app: &TestApp, path: &str) -> (StatusCode, String) {
        let r = http()
            .get(app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("GET");
        let status = r.status();
        (status, r.text().await.unwrap_or_default())
    }

    async fn post(
        &self,
        app: &TestApp,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String) {
        let r = http()
            .post(app.url(path))
            .header("cookie", &self.cookie)
            .header("origin", app.base_url.as_str())
            .form(form)
            .send()
            .await
            .expect("POST");
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, location, r.text().await.unwrap_or_default())
    }
}

/// Creates a user with a password through the management API and signs in through the UI form.
async fn sign_in(app: &TestApp, email: &str, role: &str) -> (String, Session) {
    let r = app
        .post(
            "/user/new",
            &json!({"user_email": email, "user_role": role, "auto_create_key": false}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    let id = v["user_id"].as_str().expect("user_id").to_string();
    let r = app
        .post("/user/update", &json!({"user_id": id, "password": STRONG}))
        .await;
    assert_eq!(r.status(), 200);

    let r = http()
        .post(app.url("/ui/login"))
        .header("origin", app.base_url.as_str())
        .form(&[("username", email), ("password", STRONG)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "login {email}");
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    (id, Session { cookie })
}

/// The text a browser would show for escaped markup (minijinja escapes `/` and quotes too).
fn shown(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = html.find(start)? + start.len();
    let len = html[from..].find(end)?;
    Some(&html[from..from + len])
}

fn csrf(html: &str) -> String {
    between(html, "name=\"csrf\" value=\"", "\"")
        .expect("a csrf field")
        .to_string()
}

async fn chat(app: &TestApp, key: &str) -> StatusCode {
    app.client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .expect("chat")
        .status()
}

#[tokio::test]
async fn internal_user_creates_uses_and_deletes_a_key() {
    let app = spawn_app(CONFIG).await;
    let (_, bea) = sign_in(&app, "bea@example.com", "internal_user").await;

    let (s, page) = bea.get(&app, "/ui/keys").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("action=\"/ui/keys\""), "a create form");
    assert!(page.contains("<option value=\"demo\">"));
    assert!(page.contains("No keys yet"));
    let token = csrf(&page);

    // Missing name: the form comes back with the error and nothing is created.
    let (s, _, body) = bea
        .post(&app, "/ui/keys", &[("csrf", &token), ("alias", " ")])
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("Give the key a name"));

    let (s, _, body) = bea
        .post(
            &app,
            "/ui/keys",
            &[
                ("csrf", &token),
                ("alias", "notebook"),
                ("models", "demo"),
                ("duration", "30d"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let body = shown(&body);
    let secret = between(&body, "id=\"created-key\" value=\"", "\"")
        .expect("the new secret")
        .to_string();
    assert!(secret.starts_with("sk-"), "{secret}");
    assert!(body.contains("will not be shown again"));
    assert!(body.contains(&format!(
        "curl {}/v1/chat/completions",
        app.base_url.trim_end_matches('/')
    )));
    assert!(body.contains(&format!("Authorization: Bearer {secret}")));
    assert!(body.contains("from openai import OpenAI"));
    assert!(body.contains("\"model\": \"demo\""));
    assert!(body.contains("1 key"));

    // The key works.
    assert_eq!(chat(&app, &secret).await, StatusCode::OK);

    // Reloading the page lists the key but never shows the secret again.
    let (s, page) = bea.get(&app, "/ui/keys").await;
    assert_eq!(s, StatusCode::OK);
    let page = shown(&page);
    assert!(page.contains("notebook"));
    assert!(!page.contains(&secret), "the secret is shown only once");
    assert!(!page.contains("created-key"));
    let key_token = between(&page, "href=\"/ui/keys/", "/delete\"")
        .expect("a delete link")
        .to_string();

    // Another internal user can't delete it (ownership is the key service's rule).
    let (_, carl) = sign_in(&app, "carl@example.com", "internal_user").await;
    let (_, carl_page) = carl.get(&app, "/ui/keys").await;
    assert!(
        !shown(&carl_page).contains("notebook"),
        "only own keys listed"
    );
    let (s, _, _) = carl
        .post(
            &app,
            &format!("/ui/keys/{key_token}/delete"),
            &[("csrf", &csrf(&carl_page))],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(chat(&app, &secret).await, StatusCode::OK);

    // Delete: a confirm page, then the POST it makes.
    let (s, confirm) = bea.get(&app, &format!("/ui/keys/{key_token}/delete")).await;
    assert_eq!(s, StatusCode::OK);
    let confirm = shown(&confirm);
    assert!(confirm.contains(&format!("action=\"/ui/keys/{key_token}/delete\"")));
    assert!(confirm.contains("notebook"));
    // Without the CSRF token it is refused.
    let (s, _, _) = bea
        .post(&app, &format!("/ui/keys/{key_token}/delete"), &[])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, location, _) = bea
        .post(
            &app,
            &format!("/ui/keys/{key_token}/delete"),
            &[("csrf", &csrf(&confirm))],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/ui/keys?done=key_deleted"));
    assert_ne!(
        chat(&app, &secret).await,
        StatusCode::OK,
        "a deleted key stops"
    );
    let (_, page) = bea.get(&app, "/ui/keys?done=key_deleted").await;
    assert!(page.contains("The key was deleted"));
    assert!(page.contains("No keys yet"));
}

#[tokio::test]
async fn a_viewer_sees_keys_but_cannot_create_or_delete() {
    let app = spawn_app(CONFIG).await;
    let (vic_id, vic) = sign_in(&app, "vic@example.com", "internal_user_viewer").await;
    // An admin made a key for the viewer through the API.
    let r = app
        .post(
            "/key/generate",
            &json!({"user_id": vic_id, "key_alias": "vic-key"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    let key = v["key"].as_str().expect("key").to_string();
    let key_token = v["token"].as_str().expect("token").to_string();

    let (s, page) = vic.get(&app, "/ui/keys").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("vic-key"));
    assert!(!page.contains("action=\"/ui/keys\""), "no create form");
    assert!(!page.contains("/delete\""), "no delete links");
    let token = csrf(&page);

    // Forged posts with a valid token are refused all the same.
    let (s, _, _) = vic
        .post(
            &app,
            "/ui/keys",
            &[("csrf", &token), ("alias", "sneaky"), ("models", "demo")],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = vic.get(&app, &format!("/ui/keys/{key_token}/delete")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = vic
        .post(
            &app,
            &format!("/ui/keys/{key_token}/delete"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, page) = vic.get(&app, "/ui/keys").await;
    assert!(!page.contains("sneaky"));
    assert!(page.contains("vic-key"));
    assert_eq!(chat(&app, &key).await, StatusCode::OK);

    // A cross-site post is refused even for a writer.
    let (_, bea) = sign_in(&app, "bea@example.com", "internal_user").await;
    let (_, page) = bea.get(&app, "/ui/keys").await;
    let r = http()
        .post(app.url("/ui/keys"))
        .header("cookie", &bea.cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf(&page).as_str()), ("alias", "evil")])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_curl_snippet_calls_a_chat_model_not_an_embedding_model() {
    let config = r#"
model_list:
  - model_name: cheap-embed
    litellm_params: {model: openai/text-embedding-3-small, mock_response: "hi"}
  - model_name: demo
    litellm_params: {model: openai/gpt-4o-mini, mock_response: "hi"}
general_settings: {master_key: "{master_key}"}
"#;
    let app = spawn_app(config).await;
    let (_, bea) = sign_in(&app, "bea@example.com", "internal_user").await;
    let (_, page) = bea.get(&app, "/ui/keys").await;
    let token = csrf(&page);
    // A key for every model: the embedding model comes first in its list.
    let (s, _, body) = bea
        .post(&app, "/ui/keys", &[("csrf", &token), ("alias", "all")])
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let body = shown(&body);
    assert!(body.contains("\"model\": \"demo\""), "{body}");
    assert!(!body.contains("\"model\": \"cheap-embed\""));
    app.stop().await;
}
