//! A request body whose JSON escapes a lone UTF-16 surrogate is not Unicode text: it is refused
//! like invalid UTF-8, never forwarded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use tollgate_testkit::{spawn_app, FakeUpstream};

fn config(up: &FakeUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
general_settings:
  master_key: "{{master_key}}"
"#,
        base = up.base_url
    )
}

#[tokio::test]
async fn lone_surrogate_escapes_are_refused_and_pairs_pass() {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config(&up)).await;
    let send = |content: &'static str| {
        let body = format!(
            r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{content}"}}]}}"#
        );
        app.client()
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&app.master_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    for lone in [r"\ud800", r"\uDFFF", r"x\ud83d y"] {
        let resp = send(lone).await.unwrap();
        assert_eq!(resp.status(), 400, "{lone}");
        let v: Value = resp.json().await.unwrap();
        let e = &v["error"];
        assert!(e["message"].as_str().unwrap().contains("surrogate"), "{v}");
        assert_eq!(e["code"], "400", "{v}");
        assert!(e["type"].is_string() && e.get("param").is_some(), "{v}");
    }
    assert_eq!(up.requests(), 0, "nothing was forwarded");

    let resp = send(r"\ud83d\ude00").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().body["messages"][0]["content"], "😀");
    app.stop().await;
}
