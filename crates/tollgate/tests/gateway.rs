//! End-to-end tests of the gateway core: the real app on port 0, a fresh SQLite store, and a
//! fake OpenAI/Anthropic upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tollgate_store::SpendStatus;
use tollgate_testkit::{spawn_app, spawn_app_with, Behavior, FakeUpstream, TestApp};

fn config(up: &FakeUpstream, extra: &str) -> String {
    config_with(up, extra, "")
}

fn config_with(up: &FakeUpstream, extra: &str, general: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
  - model_name: flaky
    litellm_params: {{model: openai/flaky, api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
  - model_name: backup
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
  - model_name: text-embedding-3-small
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{base}", api_key: sk-ant-secret-123456}}
  - model_name: azure-4o
    litellm_params: {{model: azure/my-deployment, api_base: "{base}", api_key: azure-secret-123456, api_version: "2024-10-21"}}
  - model_name: "openai/*"
    litellm_params: {{model: "openai/*", api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
  - model_name: demo
    litellm_params: {{model: openai/demo, mock_response: "Hi from the mock", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: no-key
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{base}/v1", api_key: os.environ/TOLLGATE_TEST_UNSET_VARIABLE}}
{extra}
general_settings:
  master_key: "{{master_key}}"
  {general}
"#,
        base = up.base_url
    )
}

async fn setup(extra: &str) -> (TestApp, FakeUpstream) {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config(&up, extra)).await;
    (app, up)
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("error body is JSON");
    assert!(v["error"]["message"].is_string(), "envelope: {v}");
    assert_eq!(v["error"]["code"], status.to_string(), "envelope: {v}");
    (status, v)
}

#[tokio::test]
async fn chat_is_forwarded_and_recorded_with_cost() {
    let (app, up) = setup("").await;
    let resp = app.post("/v1/chat/completions", &chat("gpt-4o-mini")).await;
    assert_eq!(resp.status(), 200);
    let call_id = resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the fake upstream"
    );
    let seen = up.last();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body["model"], "gpt-4o-mini");
    assert_eq!(
        seen.headers["authorization"],
        "Bearer sk-provider-secret-123456"
    );
    assert_eq!(app.wait_for_spend_logs(1).await, 1);
    let rec = app.store.get_spend_log(&call_id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Success);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));
    assert!(!rec.usage_estimated);
    assert!(
        rec.priced && rec.spend_nanos > 0,
        "gpt-4o-mini is in the price table"
    );
    assert_eq!(rec.model_group, "gpt-4o-mini");
    assert_eq!(rec.custom_llm_provider.as_deref(), Some("openai"));
    assert_eq!(rec.api_key.len(), 64, "the key's hash, never the key");
    // Also without the /v1 prefix, and with the key in another LiteLLM header.
    let resp = app
        .client()
        .post(app.url("/chat/completions"))
        .header("x-api-key", &app.master_key)
        .json(&chat("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn completions_embeddings_and_models() {
    let (app, up) = setup("").await;
    let resp = app
        .post(
            "/v1/completions",
            &json!({"model": "gpt-4o-mini", "prompt": "Say hi"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().path, "/v1/completions");
    let resp = app
        .post(
            "/embeddings",
            &json!({"model": "text-embedding-3-small", "input": "hello"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"][0]["embedding"][2], 0.3);
    let models: Value = app
        .client()
        .get(app.url("/v1/models"))
        .bearer_auth(&app.master_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"gpt-4o-mini") && ids.contains(&"claude"));
    assert!(
        !ids.contains(&"openai/*"),
        "wildcards are listed only on request"
    );
    assert_eq!(models["object"], "list");
    let resp = app.client().get(app.url("/models")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn streaming_passes_chunks_and_bills_usage() {
    let (app, up) = setup("").await;
    let mut body = chat("gpt-4o-mini");
    body["stream"] = json!(true);
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let id = resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = resp.text().await.unwrap();
    assert!(text.contains("fake upstream"));
    assert!(text.trim_end().ends_with("data: [DONE]"));
    assert!(
        !text.contains("\"choices\":[]"),
        "the usage chunk the client did not ask for is dropped: {text}"
    );
    assert_eq!(
        up.last().body["stream_options"]["include_usage"],
        true,
        "usage is requested upstream"
    );
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert!(rec.stream && rec.status == SpendStatus::Success);
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (12, 6));
    assert!(
        rec.spend_nanos > 0,
        "streamed calls cost what their usage says"
    );
    assert!(rec.ttft_ms.is_some());

    // When the client asks for usage it gets the usage chunk.
    body["stream_options"] = json!({"include_usage": true});
    let text = app
        .post("/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"choices\":[]") && text.contains("\"total_tokens\":18"));
    app.stop().await;
}

#[tokio::test]
async fn streams_without_upstream_usage_are_estimated() {
    let (app, up) = setup("").await;
    up.set("gpt-4o-mini", Behavior::NoUsage);
    let mut body = chat("gpt-4o-mini");
    body["stream"] = json!(true);
    let resp = app.post("/v1/chat/completions", &body).await;
    let id = resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(resp.text().await.unwrap().contains("[DONE]"));
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert!(rec.usage_estimated);
    assert!(rec.completion_tokens > 0 && rec.prompt_tokens > 0);
    assert!(rec.spend_nanos > 0);
    app.stop().await;
}

#[tokio::test]
async fn mid_stream_failure_ends_with_an_error_event() {
    let (app, up) = setup("").await;
    up.set("gpt-4o-mini", Behavior::ResetMidStream);
    let mut body = chat("gpt-4o-mini");
    body["stream"] = json!(true);
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("partial"),
        "what arrived was passed on: {text}"
    );
    let last = text.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("data: {\"error\""),
        "ends with an error event: {text}"
    );
    assert!(
        !text.contains("\"finish_reason\":\"stop\""),
        "never a fake stop"
    );
    assert!(!text.contains("[DONE]"));
    assert_eq!(up.requests(), 1, "no retry after the first byte");
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Failure);
    assert!(
        rec.completion_tokens > 0,
        "partial output is billed (estimated)"
    );
    app.stop().await;
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_and_records_once() {
    let (app, up) = setup("").await;
    up.set("gpt-4o-mini", Behavior::Endless);
    let mut body = chat("gpt-4o-mini");
    body["stream"] = json!(true);
    let resp = app.post("/v1/chat/completions", &body).await;
    let id = resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut s = resp.bytes_stream();
    let first = s.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(s);
    let mut dropped = 0;
    for _ in 0..100 {
        dropped = up.streams_dropped_early();
        if dropped == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(dropped, 1, "the upstream stream was cancelled");
    assert_eq!(app.wait_for_spend_logs(1).await, 1);
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.http_status, 499);
    assert_eq!(rec.error_type.as_deref(), Some("client_disconnected"));
    assert!(rec.completion_tokens > 0, "what was produced is billed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.store.count_spend_logs().await.unwrap(),
        1,
        "exactly once"
    );
    app.stop().await;
}

#[tokio::test]
async fn retries_then_succeeds_and_honours_retry_after() {
    let (app, up) = setup("router_settings: {num_retries: 2}").await;
    up.script(
        "flaky",
        vec![Behavior::Status(503, None), Behavior::Status(429, Some(0))],
    );
    let resp = app.post("/v1/chat/completions", &chat("flaky")).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(up.requests(), 3);
    app.wait_for_spend_logs(1).await;
    assert_eq!(
        app.store
            .get_spend_log(&id)
            .await
            .unwrap()
            .unwrap()
            .attempts,
        3
    );

    // Out of retries: the caller sees the upstream's status in the envelope, with retry-after.
    up.set("flaky", Behavior::Status(429, Some(1)));
    let resp = app.post("/v1/chat/completions", &chat("flaky")).await;
    assert_eq!(resp.headers()["retry-after"], "1");
    let (status, v) = error_of(resp).await;
    assert_eq!(status, 429);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("fake upstream error 429"));
    // A 400 from the upstream is not retried.
    let before = up.requests();
    up.set("flaky", Behavior::Status(400, None));
    let (status, _) = error_of(app.post("/v1/chat/completions", &chat("flaky")).await).await;
    assert_eq!(status, 400);
    assert_eq!(up.requests(), before + 1);
    app.stop().await;
}

#[tokio::test]
async fn fallbacks_and_context_window_fallbacks() {
    let (app, up) = setup(
        "router_settings:\n  num_retries: 0\n  fallbacks: [{flaky: [backup]}]\n  context_window_fallbacks: [{gpt-4o-mini: [backup]}]",
    )
    .await;
    up.set("flaky", Behavior::Status(500, None));
    let resp = app.post("/v1/chat/completions", &chat("flaky")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last().body["model"],
        "gpt-4o-mini",
        "the fallback group answered"
    );
    up.script("gpt-4o-mini", vec![Behavior::ContextTooLong]);
    let resp = app.post("/v1/chat/completions", &chat("gpt-4o-mini")).await;
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn failing_deployment_is_cooled_down() {
    let up = FakeUpstream::start().await;
    let bad = FakeUpstream::start().await;
    bad.set("m", Behavior::Status(500, None));
    let cfg = format!(
        r#"
model_list:
  - model_name: m
    litellm_params: {{model: openai/m, api_base: "{good}/v1", api_key: k-123456789}}
  - model_name: m
    litellm_params: {{model: openai/m, api_base: "{bad}/v1", api_key: k-123456789}}
router_settings: {{num_retries: 1, allowed_fails: 1, cooldown_time: 60}}
general_settings: {{master_key: "{{master_key}}"}}
"#,
        good = up.base_url,
        bad = bad.base_url
    );
    let app = spawn_app(&cfg).await;
    for _ in 0..20 {
        let resp = app.post("/v1/chat/completions", &chat("m")).await;
        assert_eq!(
            resp.status(),
            200,
            "a retry lands on the healthy deployment"
        );
    }
    assert!(
        bad.requests() <= 2,
        "cooled down after allowed_fails: {} calls",
        bad.requests()
    );
    app.stop().await;
}

#[tokio::test]
async fn anthropic_is_translated_both_ways() {
    let (app, up) = setup("").await;
    let mut body = chat("claude");
    body["messages"] =
        json!([{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]);
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Claude");
    assert_eq!(v["usage"]["total_tokens"], 15);
    let seen = up.last();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.body["system"], "Be brief");
    assert_eq!(seen.body["model"], "claude-sonnet-4-5");
    assert_eq!(seen.headers["x-api-key"], "sk-ant-secret-123456");
    assert!(seen.headers.contains_key("anthropic-version"));
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (11, 4));

    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = app.post("/v1/chat/completions", &body).await;
    let text = resp.text().await.unwrap();
    let mut content = String::new();
    let mut usage = Value::Null;
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            continue;
        }
        let c: Value = serde_json::from_str(line).unwrap();
        if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
            content.push_str(t);
        }
        if !c["usage"].is_null() {
            usage = c["usage"].clone();
        }
    }
    assert_eq!(content, "Hello from Claude");
    assert_eq!(usage["completion_tokens"], 4);
    assert!(text.contains("\"finish_reason\":\"stop\"") && text.trim_end().ends_with("[DONE]"));
    app.stop().await;
}

#[tokio::test]
async fn azure_wildcard_mock_and_missing_env_key() {
    let (app, up) = setup("").await;
    assert_eq!(
        app.post("/v1/chat/completions", &chat("azure-4o"))
            .await
            .status(),
        200
    );
    let seen = up.last();
    assert_eq!(
        seen.path,
        "/openai/deployments/my-deployment/chat/completions"
    );
    assert_eq!(seen.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(seen.headers["api-key"], "azure-secret-123456");

    assert_eq!(
        app.post("/v1/chat/completions", &chat("openai/gpt-4.1-nano"))
            .await
            .status(),
        200
    );
    assert_eq!(
        up.last().body["model"],
        "gpt-4.1-nano",
        "the wildcard's capture is the upstream model"
    );

    let before = up.requests();
    let resp = app.post("/v1/chat/completions", &chat("demo")).await;
    let id = resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hi from the mock");
    assert_eq!(up.requests(), before, "mock answers offline");
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert!(rec.usage_estimated && rec.spend_nanos > 0);

    let (status, v) = error_of(app.post("/v1/chat/completions", &chat("no-key")).await).await;
    assert_eq!(status, 500);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("TOLLGATE_TEST_UNSET_VARIABLE"));
    assert!(app
        .warnings
        .iter()
        .any(|w| w.contains("TOLLGATE_TEST_UNSET_VARIABLE")));
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_get_the_error_envelope() {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config_with(&up, "", "max_request_size_mb: 1")).await;
    let key = app.master_key.clone();
    let send = |body: Vec<u8>, ct: &'static str| {
        let c = app.client();
        let url = app.url("/v1/chat/completions");
        let key = key.clone();
        async move {
            c.post(url)
                .bearer_auth(key)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let (s, _) = error_of(send(b"{not json".to_vec(), "application/json").await).await;
    assert_eq!(s, 400);
    let (s, v) = error_of(
        send(
            vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
            "application/json",
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("UTF-8"));
    let deep = format!(
        "{{\"model\":\"gpt-4o-mini\",\"x\":{}1{}}}",
        "[".repeat(500),
        "]".repeat(500)
    );
    let (s, _) = error_of(send(deep.into_bytes(), "application/json").await).await;
    assert_eq!(s, 400);
    let big = format!(
        "{{\"model\":\"gpt-4o-mini\",\"x\":\"{}\"}}",
        "a".repeat(2 * 1024 * 1024)
    );
    let (s, _) = error_of(send(big.into_bytes(), "application/json").await).await;
    assert_eq!(s, 413);
    let (s, _) = error_of(send(b"{}".to_vec(), "text/plain").await).await;
    assert_eq!(s, 400);
    let (s, v) = error_of(
        app.post("/v1/chat/completions", &json!({"messages": []}))
            .await,
    )
    .await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("model")));
    let (s, v) = error_of(
        app.post("/v1/chat/completions", &chat("no-such-model"))
            .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Invalid model name"));
    let mut b = chat("gpt-4o-mini");
    b["api_base"] = json!("http://169.254.169.254/latest/meta-data/");
    let (s, _) = error_of(app.post("/v1/chat/completions", &b).await).await;
    assert_eq!(s, 400);
    let mut b = chat("gpt-4o-mini");
    b["extra_body"] = json!({"base_url": "http://evil.example"});
    assert_eq!(
        error_of(app.post("/v1/chat/completions", &b).await).await.0,
        400
    );
    assert_eq!(up.requests(), 0, "nothing bad reached the upstream");

    // Authentication failures never echo the presented key.
    let resp = app
        .client()
        .post(app.url("/v1/chat/completions"))
        .json(&chat("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 401);
    let resp = app
        .client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth("sk-not-the-key-but-secret-9999")
        .json(&chat("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    let (s, v) = error_of(resp).await;
    assert_eq!(s, 401);
    assert!(!v.to_string().contains("secret-9999"));
    let resp = app
        .client()
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn upstream_errors_never_leak_the_provider_key() {
    let (app, up) = setup("router_settings: {num_retries: 0}").await;
    up.set("gpt-4o-mini", Behavior::Status(401, None));
    let resp = app.post("/v1/chat/completions", &chat("gpt-4o-mini")).await;
    let text = resp.text().await.unwrap();
    assert!(!text.contains("sk-provider-secret-123456"), "{text}");
    let metrics = app
        .client()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("sk-provider-secret"));
    assert!(!metrics.contains(&app.master_key));
    app.stop().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let (app, _up) = setup("").await;
    let c = app.client();
    for path in ["/health/liveliness", "/health/liveness"] {
        let r = c.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap(), json!("I'm alive!"));
    }
    let r: Value = c
        .get(app.url("/health/readiness"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"status": "healthy", "db": "connected"}));
    app.post("/v1/chat/completions", &chat("gpt-4o-mini")).await;
    app.post("/v1/chat/completions", &chat("openai/some-new-model-xyz"))
        .await;
    app.wait_for_spend_logs(2).await;
    let m = c
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(
            "tollgate_requests_total{route=\"chat\",model=\"gpt-4o-mini\",status_class=\"2xx\"} 1"
        ),
        "{m}"
    );
    assert!(m.contains("tollgate_request_duration_seconds_bucket"));
    assert!(m.contains(
        "tollgate_tokens_total{route=\"chat\",model=\"gpt-4o-mini\",kind=\"prompt\"} 12"
    ));
    assert!(
        m.contains("model=\"openai/*\""),
        "wildcard calls are labelled by their pattern"
    );
    assert!(
        !m.contains("some-new-model-xyz"),
        "caller-chosen names never become labels"
    );
    assert!(m.contains("tollgate_spend_records_written_total 2"));
    assert!(
        m.contains(
            "# TYPE tollgate_spend_records_pending gauge\ntollgate_spend_records_pending 0\n"
        ),
        "both records are written, none waits: {m}"
    );
    assert!(
        m.contains("# TYPE tollgate_key_cache_entries gauge\ntollgate_key_cache_entries 0\n"),
        "master-key calls cache no key: {m}"
    );
    // A virtual key's first call caches it and, as the key has a budget, loads its account (a
    // key without a budget or soft budget has none of its own).
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/key/generate",
            json!({"max_budget": 10}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let r = c
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(v["key"].as_str().unwrap())
        .json(&chat("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = c
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("\ntollgate_key_cache_entries 1\n"), "{m}");
    assert!(
        m.contains(
            "# TYPE tollgate_key_cache_loads_total counter\ntollgate_key_cache_loads_total 1\n"
        ),
        "{m}"
    );
    assert!(m.contains("\ntollgate_budget_accounts 1\n"), "{m}");
    assert!(m.contains("# TYPE tollgate_budget_accounts gauge\n"), "{m}");
    app.stop().await;
}

#[tokio::test]
async fn master_key_rules() {
    let up = FakeUpstream::start().await;
    let env = |_: &str| None;
    let weak = format!(
        "{}\ngeneral_settings: {{master_key: sk-1234}}",
        "model_list: []"
    );
    let err = spawn_app_with(&weak, None, &env)
        .await
        .err()
        .expect("weak key refused");
    assert!(err.to_string().contains("well-known"));
    let short = "model_list: []\ngeneral_settings: {master_key: sk-abc}";
    assert!(spawn_app_with(short, None, &env).await.is_err());
    let empty = "model_list: []\ngeneral_settings: {master_key: \"\"}";
    let err = spawn_app_with(empty, None, &env)
        .await
        .err()
        .expect("empty key refused");
    assert!(err.to_string().contains("empty"), "{err}");

    // None configured: one is generated once and kept (as a hash) across restarts.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("k.db").display());
    let cfg = format!(
        "model_list:\n  - model_name: m\n    litellm_params: {{model: openai/m, api_base: \"{}/v1\", api_key: k-123456789}}\n",
        up.base_url
    );
    let app = spawn_app_with(&cfg, Some(url.clone()), &env).await.unwrap();
    let key = app.generated_master_key.clone().expect("generated");
    assert!(key.starts_with("sk-") && key.len() >= 40);
    assert_eq!(
        app.post("/v1/chat/completions", &chat("m")).await.status(),
        200
    );
    app.stop().await;
    let again = spawn_app_with(&cfg, Some(url), &env).await.unwrap();
    assert!(again.generated_master_key.is_none());
    let resp = again
        .client()
        .post(again.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "the generated key keeps working after a restart"
    );
    again.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_flushes_spend() {
    let up = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("s.db").display());
    let app = spawn_app_with(&config(&up, ""), Some(url.clone()), &|k| {
        std::env::var(k).ok()
    })
    .await
    .unwrap();
    for _ in 0..5 {
        assert_eq!(
            app.post("/v1/chat/completions", &chat("gpt-4o-mini"))
                .await
                .status(),
            200
        );
    }
    app.stop().await;
    let store = tollgate_store::Store::open(Some(&url)).await.unwrap();
    assert_eq!(
        store.count_spend_logs().await.unwrap(),
        5,
        "nothing lost on shutdown"
    );
}

/// The same call path against PostgreSQL, when CI provides a server.
#[tokio::test]
async fn records_spend_in_postgres() {
    let Ok(admin_url) = std::env::var("TOLLGATE_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set TOLLGATE_TEST_POSTGRES_URL"
        );
        return;
    };
    let name = format!("tollgate_gw_{}", std::process::id());
    let admin = sqlx_admin(&admin_url).await;
    let _ = admin
        .execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))
        .await;
    admin
        .execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let mut u = url::Url::parse(&admin_url).unwrap();
    u.set_path(&format!("/{name}"));
    let up = FakeUpstream::start().await;
    let app = spawn_app_with(&config(&up, ""), Some(u.to_string()), &|k| {
        std::env::var(k).ok()
    })
    .await
    .unwrap();
    assert_eq!(app.store.backend_name(), "postgresql");
    let resp = app.post("/v1/chat/completions", &chat("gpt-4o-mini")).await;
    let id = resp.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(app.wait_for_spend_logs(1).await, 1);
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert!(rec.spend_nanos > 0);
    app.stop().await;
    admin
        .execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
}

struct Admin(sqlx::PgPool);

impl Admin {
    async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::query(sql).execute(&self.0).await.map(|_| ())
    }
}

async fn sqlx_admin(url: &str) -> Admin {
    Admin(
        sqlx::PgPool::connect(url)
            .await
            .expect("connect to TOLLGATE_TEST_POSTGRES_URL"),
    )
}

#[tokio::test]
async fn a_deployments_max_retries_overrides_num_retries() {
    let up = FakeUpstream::start().await;
    let cfg = format!(
        r#"
model_list:
  - model_name: once
    litellm_params: {{model: openai/once, api_base: "{base}/v1", api_key: sk-provider-secret-123456, max_retries: 0}}
  - model_name: twice
    litellm_params: {{model: openai/twice, api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
router_settings: {{num_retries: 2}}
general_settings: {{master_key: "{{master_key}}"}}
"#,
        base = up.base_url
    );
    let app = spawn_app(&cfg).await;
    up.script("once", vec![Behavior::Status(503, None)]);
    let resp = app.post("/v1/chat/completions", &chat("once")).await;
    assert_eq!(resp.status(), 503, "max_retries: 0 means one attempt");
    assert_eq!(up.requests(), 1);
    up.script("twice", vec![Behavior::Status(503, None)]);
    let resp = app.post("/v1/chat/completions", &chat("twice")).await;
    assert_eq!(
        resp.status(),
        200,
        "num_retries applies without a deployment setting"
    );
    assert_eq!(up.requests(), 3);
    app.stop().await;
}
