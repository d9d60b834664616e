//! A stream is billed by what it carried, however the upstream spaces its JSON and however the
//! stream ends; an upstream that sends something other than SSE JSON chunks fails the call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use tollgate_store::SpendStatus;
use tollgate_testkit::{spawn_app, Behavior, FakeUpstream, TestApp};

fn config(upstream: &FakeUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: priced
    litellm_params:
      model: openai/priced
      api_base: {base}/v1
      api_key: sk-upstream
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
    model_info: {{max_output_tokens: 64}}
  - model_name: claude
    litellm_params:
      model: anthropic/claude-priced
      api_base: "{base}"
      api_key: sk-ant-upstream
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
    model_info: {{max_output_tokens: 64}}
general_settings: {{master_key: "{{master_key}}"}}
"#,
        base = upstream.base_url
    )
}

/// 40 bytes of text: 10 estimated tokens.
const PIECE: &str = "forty bytes of generated text, exactly..";

/// An OpenAI chunk written the way Python's json.dumps writes it: a space after every colon
/// and comma.
fn spaced_chunk(delta: Value, finish: Option<&str>) -> String {
    let compact = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
        "model": "priced", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let spaced = serde_json::to_string(&compact)
        .unwrap()
        .replace("\":", "\": ")
        .replace(",\"", ", \"");
    assert!(spaced.contains("\"content\": \"") || !delta.to_string().contains("content"));
    format!("data: {spaced}\n\n")
}

fn spaced_pieces(n: usize) -> Vec<String> {
    let mut events = vec![spaced_chunk(
        json!({"role": "assistant", "content": ""}),
        None,
    )];
    events.extend((0..n).map(|_| spaced_chunk(json!({"content": PIECE}), None)));
    events
}

async fn stream_call(app: &TestApp, key: &str, model: &str) -> (u16, String, String) {
    let resp = app
        .client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("x-litellm-call-id")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, id, resp.text().await.unwrap_or_default())
}

async fn record(app: &TestApp, id: &str, n: i64) -> tollgate_store::SpendRecord {
    app.wait_for_spend_logs(n).await;
    app.store.get_spend_log(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_completed_spaced_stream_without_usage_is_billed_by_its_text() {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config(&up)).await;
    let mut events = spaced_pieces(50);
    events.push(spaced_chunk(json!({}), Some("stop")));
    events.push("data: [DONE]\n\n".to_string());
    up.set(
        "priced",
        Behavior::RawStream {
            events,
            reset: false,
        },
    );
    let (status, id, text) = stream_call(&app, &app.master_key, "priced").await;
    assert_eq!(status, 200);
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Success);
    assert!(rec.usage_estimated);
    assert_eq!(rec.completion_tokens, 500, "50 chunks of 10 tokens");
    assert!(rec.spend_nanos >= 500 * 2_000);
    assert!(rec.ttft_ms.is_some(), "the first content chunk was seen");
    app.stop().await;
}

#[tokio::test]
async fn a_spaced_stream_cut_by_the_upstream_is_billed_for_what_it_carried() {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config(&up)).await;
    up.set(
        "priced",
        Behavior::RawStream {
            events: spaced_pieces(3),
            reset: true,
        },
    );
    let (status, id, text) = stream_call(&app, &app.master_key, "priced").await;
    assert_eq!(status, 200);
    assert!(text
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .starts_with("data: {\"error\""));
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Failure);
    assert_eq!(rec.completion_tokens, 30);
    assert!(rec.prompt_tokens > 0 && rec.spend_nanos > 0);
    app.stop().await;
}

#[tokio::test]
async fn aborted_spaced_streams_cannot_get_around_a_budget() {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config(&up)).await;
    up.set(
        "priced",
        Behavior::RawStream {
            events: spaced_pieces(5),
            reset: true,
        },
    );
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/key/generate",
            json!({"max_budget": 0.0005}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let key = v["key"].as_str().unwrap().to_string();
    // Each stream carries 50 tokens of output ($0.0001), so a $0.0005 budget lasts about five.
    let mut delivered = 0;
    let mut refused = false;
    for _ in 0..15 {
        let (status, _, text) = stream_call(&app, &key, "priced").await;
        if status == 422 {
            refused = true;
            break;
        }
        assert_eq!(status, 200, "{text}");
        delivered += 1;
        app.wait_for_spend_logs(delivered).await;
    }
    assert!(
        refused,
        "15 aborted streams were all admitted on a $0.0005 budget"
    );
    assert!((3..=6).contains(&delivered), "{delivered} streams fit");
    let token = tollgate_domain::secret::sha256_hex(&key);
    let spend = app
        .store
        .get_key(&token)
        .await
        .unwrap()
        .unwrap()
        .spend_nanos;
    // The fake upstream ignores the output limit lowered at the budget's edge, so the last stream
    // admitted may pass the budget by at most its own cost.
    assert!(
        spend > 0 && spend <= 500_000 + 101_000,
        "key spend {spend} nano-USD"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_anthropic_stream_cut_after_its_first_usage_bills_the_text_it_sent() {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config(&up)).await;
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "m", "type": "message",
                "role": "assistant", "model": "claude-priced", "content": [],
                "usage": {"input_tokens": 7, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for _ in 0..4 {
        events.push(ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": PIECE}}),
        ));
    }
    up.set(
        "claude-priced",
        Behavior::RawStream {
            events,
            reset: true,
        },
    );
    let (status, id, text) = stream_call(&app, &app.master_key, "claude").await;
    assert_eq!(status, 200);
    assert!(text.contains("forty bytes"), "{text}");
    let rec = record(&app, &id, 1).await;
    assert_eq!(rec.status, SpendStatus::Failure);
    assert_eq!(rec.prompt_tokens, 7, "the reported input is kept");
    assert_eq!(
        rec.completion_tokens, 40,
        "not the 1 token message_start reported"
    );
    assert!(rec.usage_estimated);
    app.stop().await;
}

#[tokio::test]
async fn malformed_upstream_events_end_the_stream_with_an_error() {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config(&up)).await;
    let cases = [
        "data: {not json\n\n".to_string(),
        "this line is not SSE\n\n".to_string(),
        "data: [1, 2]\n\n".to_string(),
    ];
    for (n, bad) in cases.into_iter().enumerate() {
        let mut events = spaced_pieces(1);
        events.push(bad.clone());
        events.push("data: [DONE]\n\n".to_string());
        up.set(
            "priced",
            Behavior::RawStream {
                events,
                reset: false,
            },
        );
        let (status, id, text) = stream_call(&app, &app.master_key, "priced").await;
        assert_eq!(status, 200);
        let last = text.trim_end().lines().last().unwrap();
        assert!(last.starts_with("data: {\"error\""), "{bad:?} gave: {text}");
        assert!(
            !text.contains("[DONE]"),
            "{bad:?} was ended as a success: {text}"
        );
        assert!(!text.contains("not json") && !text.contains("not SSE"));
        let rec = record(&app, &id, n as i64 + 1).await;
        assert_eq!(rec.status, SpendStatus::Failure, "{bad:?}");
        assert_eq!(
            rec.completion_tokens, 10,
            "{bad:?}: the chunk before it is billed"
        );
    }
    app.stop().await;
}
