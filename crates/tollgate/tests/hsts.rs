//! Strict-Transport-Security on every response to a request that came over HTTPS (the test that
//! makes the session cookie `Secure`), and on none that came over plain HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use tollgate_testkit::{spawn_app, spawn_app_vars, TestApp};

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hi", input_cost_per_token: 0, output_cost_per_token: 0}
general_settings: {master_key: "{master_key}"}
"#;

const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The HSTS header of each response across the UI, the management API, inference, health and
/// unknown routes, with `forwarded_proto` sent as `X-Forwarded-Proto` when given.
async fn hsts_headers(
    app: &TestApp,
    forwarded_proto: Option<&str>,
) -> Vec<(String, Option<String>)> {
    let c = app.client();
    let with = |rb: reqwest::RequestBuilder| match forwarded_proto {
        Some(p) => rb.header("x-forwarded-proto", p),
        None => rb,
    };
    let requests = vec![
        ("ui login page", with(c.get(app.url("/ui")))),
        (
            "ui onboarding",
            with(c.get(app.url("/ui/onboarding?id=nope"))),
        ),
        (
            "login form",
            with(c.post(app.url("/v2/login")))
                .json(&json!({"username": "admin", "password": "wrong"})),
        ),
        (
            "management api",
            with(c.get(app.url("/key/list"))).bearer_auth(&app.master_key),
        ),
        ("management api, no key", with(c.get(app.url("/key/list")))),
        (
            "inference",
            with(c.post(app.url("/v1/chat/completions")))
                .bearer_auth(&app.master_key)
                .json(&json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]})),
        ),
        ("models, no key", with(c.get(app.url("/v1/models")))),
        ("health", with(c.get(app.url("/health/liveliness")))),
        ("unknown route", with(c.get(app.url("/no/such/route")))),
        (
            "wrong method",
            with(c.delete(app.url("/v1/chat/completions"))),
        ),
    ];
    let mut out = Vec::new();
    for (what, rb) in requests {
        let resp = rb.send().await.unwrap();
        let h = resp
            .headers()
            .get_all("strict-transport-security")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect::<Vec<_>>();
        assert!(h.len() <= 1, "{what}: {h:?}");
        out.push((format!("{what} ({})", resp.status()), h.into_iter().next()));
    }
    out
}

#[tokio::test]
async fn hsts_on_every_response_to_a_forwarded_https_request_only() {
    let app = spawn_app(CONFIG).await;
    for (what, h) in hsts_headers(&app, Some("https")).await {
        assert_eq!(h.as_deref(), Some(HSTS), "{what}");
    }
    for (what, h) in hsts_headers(&app, Some("HTTPS")).await {
        assert_eq!(h.as_deref(), Some(HSTS), "{what}");
    }
    for proto in [None, Some("http")] {
        for (what, h) in hsts_headers(&app, proto).await {
            assert_eq!(h, None, "{what} over {proto:?}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn hsts_on_every_response_when_the_base_url_is_https() {
    let app = spawn_app_vars(CONFIG, &[("PROXY_BASE_URL", "https://gw.example.com")]).await;
    for (what, h) in hsts_headers(&app, None).await {
        assert_eq!(h.as_deref(), Some(HSTS), "{what}");
    }
    app.stop().await;
}
