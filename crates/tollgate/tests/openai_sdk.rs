//! The official `openai` Python SDK against the gateway: chat, streaming, embeddings, models,
//! and the SDK's own exception types for 401/429/400. `.ci/run` installs the SDK into a venv and
//! sets `TOLLGATE_PYTHON`; outside CI the test is skipped when no such Python is available.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use tollgate_testkit::{spawn_app, Behavior, FakeUpstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_sdk_works_against_the_gateway() {
    let python = match std::env::var("TOLLGATE_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must set TOLLGATE_PYTHON to a Python with `openai` and `pytest`"
            );
            eprintln!("skipped: set TOLLGATE_PYTHON to a Python with openai and pytest installed");
            return;
        }
    };
    let up = FakeUpstream::start().await;
    up.set("always-429", Behavior::Status(429, Some(0)));
    let cfg = format!(
        r#"
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{b}/v1", api_key: sk-provider-123456}}
  - model_name: text-embedding-3-small
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{b}/v1", api_key: sk-provider-123456}}
  - model_name: always-429
    litellm_params: {{model: openai/always-429, api_base: "{b}/v1", api_key: sk-provider-123456}}
  - model_name: claude-3-5-sonnet
    litellm_params: {{model: anthropic/claude-3-5-sonnet-20241022, api_base: "{b}", api_key: sk-ant-123456}}
router_settings: {{num_retries: 0}}
general_settings: {{master_key: "{{master_key}}"}}
"#,
        b = up.base_url
    );
    let app = spawn_app(&cfg).await;
    // Its own file only: the anthropic SDK's tests need the gateway anthropic_messages.rs starts.
    let tests = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/test_openai_sdk.py"
    );
    let base_url = app.url("/v1");
    let key = app.master_key.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", tests])
            .env("TOLLGATE_BASE_URL", base_url)
            .env("TOLLGATE_API_KEY", key)
            .output()
            .expect("run pytest")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("passed"), "pytest ran no test:\n{stdout}");
    app.stop().await;
}
