//! The whole self-serve story in a real headless Chromium, end to end: an admin adds a user and
//! gets an invitation link; the user sets a password, creates a key and reads its secret off the
//! page; the official `openai` Python SDK calls a model with it; the user finds the exact cost on
//! the Usage page; deletes the key (the SDK then gets 401) and logs out to PROXY_LOGOUT_URL.
//!
//! Without chromedriver the test prints "skipped: …" (fails under CI). The SDK runs from
//! `TOLLGATE_PYTHON` (a Python with `openai`); when that is unset outside CI, the same calls go
//! out over plain HTTP instead, so the rest of the story is still checked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_testkit::browser::{chromedriver_or_skip, Browser, ChromeDriver};
use tollgate_testkit::{spawn_app_vars, FakeUpstream, TestApp};

const PASSWORD: &str = "a-very-strong-passphrase-4271";
const EMAIL: &str = "story.user@example.com";
const MODEL: &str = "story-model";

/// The fake upstream reports 12 prompt and 6 completion tokens for every call, so one call
/// costs 12 × $0.00001 + 6 × $0.00003 = $0.0003.
const EXPECTED_COST: &str = "$0.0003";

fn config(upstream: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/story-upstream
      api_base: "{upstream}/v1"
      api_key: sk-provider-123456
      input_cost_per_token: 0.00001
      output_cost_per_token: 0.00003
router_settings: {{num_retries: 0}}
general_settings: {{master_key: "{{master_key}}"}}
"#
    )
}

/// What one chat call with `key` ended in: "ok <prompt> <completion>" or "status <code>".
const SDK_SCRIPT: &str = r#"
import os, sys
import openai
client = openai.OpenAI(base_url=os.environ["TOLLGATE_BASE_URL"], api_key=os.environ["TOLLGATE_API_KEY"], max_retries=0)
try:
    r = client.chat.completions.create(model=os.environ["TOLLGATE_MODEL"], messages=[{"role": "user", "content": "Hello"}])
    print("ok", r.usage.prompt_tokens, r.usage.completion_tokens)
except openai.APIStatusError as e:
    print("status", e.status_code)
"#;

enum Caller {
    Sdk(String),
    Http,
}

impl Caller {
    fn from_env() -> Caller {
        match std::env::var("TOLLGATE_PYTHON") {
            Ok(p) if !p.is_empty() => Caller::Sdk(p),
            _ => {
                assert!(
                    std::env::var("CI").is_err(),
                    "CI must set TOLLGATE_PYTHON to a Python with `openai`"
                );
                println!("note: TOLLGATE_PYTHON unset: the openai SDK part runs over plain HTTP");
                Caller::Http
            }
        }
    }

    async fn chat(&self, app: &TestApp, key: &str) -> String {
        match self {
            Caller::Sdk(python) => {
                let (python, base, key) = (python.clone(), app.url("/v1"), key.to_string());
                let out = tokio::task::spawn_blocking(move || {
                    Command::new(python)
                        .args(["-c", SDK_SCRIPT])
                        .env("TOLLGATE_BASE_URL", base)
                        .env("TOLLGATE_API_KEY", key)
                        .env("TOLLGATE_MODEL", MODEL)
                        .output()
                        .expect("run python")
                })
                .await
                .expect("python task");
                let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
                assert!(
                    out.status.success(),
                    "the SDK script failed: {stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                stdout
            }
            Caller::Http => {
                let r = app
                    .client()
                    .post(app.url("/v1/chat/completions"))
                    .bearer_auth(key)
                    .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "Hello"}]}))
                    .send()
                    .await
                    .expect("chat");
                let status = r.status().as_u16();
                if status != 200 {
                    return format!("status {status}");
                }
                let v: serde_json::Value = r.json().await.expect("json");
                format!(
                    "ok {} {}",
                    v["usage"]["prompt_tokens"], v["usage"]["completion_tokens"]
                )
            }
        }
    }
}

async fn ui_login(b: &Browser, app: &TestApp, username: &str, password: &str) {
    b.goto(&app.url("/ui/login")).await.unwrap();
    b.fill("#login-username", username).await.unwrap();
    b.fill("#login-password", password).await.unwrap();
    b.click_and_wait("form[action='/ui/login'] button[type='submit']")
        .await
        .unwrap();
    assert_eq!(b.path().await.unwrap(), "/ui", "{username} signed in");
}

async fn nav(b: &Browser, href: &str) {
    b.click_and_wait(&format!("nav.side a[href='{href}']"))
        .await
        .unwrap();
    assert_eq!(b.path().await.unwrap(), href);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_invited_creates_a_key_calls_a_model_sees_the_cost_and_deletes_the_key() {
    let Some(driver_path) = chromedriver_or_skip("ui_story") else {
        return;
    };
    let caller = Caller::from_env();
    let upstream = FakeUpstream::start().await;
    let logout_url = format!("{}/logged-out", upstream.base_url);
    let app = spawn_app_vars(
        &config(&upstream.base_url),
        &[
            ("PROXY_LOGOUT_URL", logout_url.as_str()),
            ("UI_USERNAME", "admin"),
        ],
    )
    .await;
    let driver = ChromeDriver::start(&driver_path)
        .await
        .expect("chromedriver starts");

    // The admin adds an internal user on the Users page and gets the invitation link.
    let admin = driver.open(1280, 800).await.expect("a browser");
    ui_login(&admin, &app, "admin", &app.master_key).await;
    nav(&admin, "/ui/users").await;
    admin.fill("#new-email", EMAIL).await.unwrap();
    admin.select("#new-role", "internal_user").await.unwrap();
    admin
        .click_and_wait("form[method='post'][action='/ui/users'] button[type='submit']")
        .await
        .unwrap();
    let link = admin.value("#created-link").await.unwrap();
    assert!(
        link.starts_with(&format!("{}/ui/onboarding?id=", app.base_url)),
        "{link}"
    );
    admin.close().await.unwrap();

    // The user opens it in their own browser, sets a password and is signed in.
    let b = driver.open(1280, 800).await.expect("a browser");
    b.goto(&link).await.unwrap();
    b.fill("#onb-password", PASSWORD).await.unwrap();
    b.fill("#onb-confirm", PASSWORD).await.unwrap();
    b.click_and_wait("form[action='/ui/onboarding'] button[type='submit']")
        .await
        .unwrap();
    assert_eq!(b.path().await.unwrap(), "/ui");
    assert_eq!(b.text(".topbar .who").await.unwrap(), EMAIL);
    let own = b.text("#own-spend").await.unwrap();
    assert!(own.contains("$0.00"), "{own}");
    assert!(own.contains("No budget"), "{own}");

    // The Models page shows the model with its configured prices per million tokens.
    nav(&b, "/ui/models").await;
    let row = b.text("tbody tr").await.unwrap();
    assert!(row.contains(MODEL), "{row}");
    assert!(row.contains("$10.00"), "input price: {row}");
    assert!(row.contains("$30.00"), "output price: {row}");

    // Nothing spent yet: the Usage page says what to do next.
    nav(&b, "/ui/usage").await;
    let text = b.page_text().await.unwrap();
    assert!(text.contains("No requests in the last 30 days"), "{text}");
    assert!(b.exists("a[href='/ui/keys']").await.unwrap());

    // A key, created on the Keys page; its secret is on the page once.
    nav(&b, "/ui/keys").await;
    b.fill("#key-alias", "story-laptop").await.unwrap();
    b.click_and_wait("form[action='/ui/keys'] button[type='submit']")
        .await
        .unwrap();
    assert_eq!(b.status().await.unwrap(), 200);
    let secret = b.value("#created-key").await.unwrap();
    assert!(secret.starts_with("sk-"), "{secret}");
    assert!(b.exists(".copy-row button").await.unwrap(), "a Copy button");
    let panel = b.text(".key-secret").await.unwrap();
    assert!(panel.contains("will not be shown again"), "{panel}");
    assert!(
        panel.contains(&format!("curl {}/v1/chat/completions", app.base_url)),
        "{panel}"
    );
    assert!(
        panel.contains(&format!("base_url=\"{}/v1\"", app.base_url)),
        "{panel}"
    );

    // The SDK calls the model with it.
    assert_eq!(caller.chat(&app, &secret).await, "ok 12 6");

    // The spend shows on the Usage page once the writer has flushed it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        b.goto(&app.url("/ui/usage")).await.unwrap();
        if b.exists("#total-spend").await.unwrap()
            && b.text("#total-spend .value").await.unwrap() == EXPECTED_COST
            && b.exists("table.recent tbody tr").await.unwrap()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Usage page never showed {EXPECTED_COST}: {}",
            b.page_text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(b.text("#total-tokens .value").await.unwrap(), "18");
    assert_eq!(b.text("#total-requests .value").await.unwrap(), "1");
    assert!(b.exists("svg.chart rect.chart-bar").await.unwrap());
    let by_model = b.text("table.breakdown tbody tr").await.unwrap();
    assert!(by_model.contains(MODEL), "{by_model}");
    assert!(by_model.contains(EXPECTED_COST), "{by_model}");
    let recent = b.text("table.recent tbody tr").await.unwrap();
    for want in [MODEL, "18", EXPECTED_COST, "OK"] {
        assert!(
            recent.contains(want),
            "recent request lacks {want}: {recent}"
        );
    }
    let page = b.page_text().await.unwrap();
    assert!(page.contains("story-laptop"), "by key: {page}");
    assert!(!page.contains(&secret), "never the secret");
    // Hover gives the exact UTC time.
    let title = b.attr("table.recent time", "title").await.unwrap();
    assert!(title.is_some_and(|t| t.ends_with(" UTC")));

    // Home shows the user's spend too, and the key's row its spend.
    nav(&b, "/ui").await;
    assert!(b.text("#own-spend").await.unwrap().contains(EXPECTED_COST));
    nav(&b, "/ui/keys").await;
    assert!(b
        .text("table.keys-table tbody tr")
        .await
        .unwrap()
        .contains(EXPECTED_COST));

    // Delete the key, confirming once; the SDK then gets 401.
    b.click_and_wait("a[href^='/ui/keys/'][href$='/delete']")
        .await
        .unwrap();
    assert!(b.page_text().await.unwrap().contains("story-laptop"));
    b.click_and_wait("main form[method='post'] button[type='submit']")
        .await
        .unwrap();
    assert_eq!(b.path().await.unwrap(), "/ui/keys");
    let text = b.page_text().await.unwrap();
    assert!(text.contains("The key was deleted"), "{text}");
    assert!(text.contains("No keys yet"), "{text}");
    assert_eq!(caller.chat(&app, &secret).await, "status 401");

    // Log out: the browser lands on PROXY_LOGOUT_URL.
    b.click_and_wait(".topbar form[action='/ui/logout'] button[type='submit']")
        .await
        .unwrap();
    assert_eq!(b.url().await.unwrap(), logout_url);
    b.goto(&app.url("/ui/usage")).await.unwrap();
    assert_eq!(b.path().await.unwrap(), "/ui/login");
    b.close().await.unwrap();
    app.stop().await;
}
