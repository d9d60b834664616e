//! `kill -9` under load loses no spend: every call answered 200 before the kill has its spend
//! record after the next start (the journal is replayed), and none is counted twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tollgate_store::{SpendStatus, Store};
use tollgate_testkit::process::Gateway;
use tollgate_testkit::{FakeUpstream, TEST_MASTER_KEY};

fn config(up: &FakeUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: m
    litellm_params:
      model: openai/m
      api_base: {base}/v1
      api_key: sk-upstream
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings: {{master_key: "{TEST_MASTER_KEY}"}}
"#,
        base = up.base_url
    )
}

/// Calls from `workers` loops until `stop`; returns the ids of the calls answered 200 in full.
async fn load(gw_base: String, workers: usize, stop: Arc<AtomicBool>) -> HashSet<String> {
    let answered = Arc::new(Mutex::new(HashSet::new()));
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (http, base, stop, answered) = (
            http.clone(),
            gw_base.clone(),
            stop.clone(),
            answered.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let stream = (w + n as usize).is_multiple_of(3);
                let sent = http
                    .post(format!("{base}/v1/chat/completions"))
                    .bearer_auth(TEST_MASTER_KEY)
                    .json(&json!({"model": "m", "stream": stream,
                        "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await;
                let Ok(resp) = sent else { continue };
                if resp.status() != 200 {
                    continue;
                }
                let id = resp
                    .headers()
                    .get("x-litellm-call-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                // Only an answer the client read to its end counts as answered.
                let body = resp.text().await;
                let complete = match &body {
                    Ok(b) if stream => b.trim_end().ends_with("data: [DONE]"),
                    Ok(b) => b.contains("\"choices\""),
                    Err(_) => false,
                };
                if let (true, Some(id)) = (complete, id) {
                    answered.lock().unwrap().insert(id);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let out = answered.lock().unwrap().clone();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_loses_no_answered_call() {
    let up = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&up);
    let http = reqwest::Client::new();
    // A long flush interval is not settable from outside, so the calls of the last 500 ms are
    // what a kill would lose without the journal: load until well past one flush, then kill.
    let mut gw = Gateway::start(env!("CARGO_BIN_EXE_tollgate"), dir.path(), &cfg, &[]);
    gw.wait_ready(&http).await;
    let stop = Arc::new(AtomicBool::new(false));
    let loader = tokio::spawn(load(gw.base.clone(), 16, stop.clone()));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    gw.kill();
    stop.store(true, Ordering::Relaxed);
    let answered = loader.await.unwrap();
    assert!(
        answered.len() > 50,
        "only {} calls answered",
        answered.len()
    );

    // The next start replays the journal before it serves.
    let mut gw = Gateway::start(env!("CARGO_BIN_EXE_tollgate"), dir.path(), &cfg, &[]);
    gw.wait_ready(&http).await;
    gw.stop().await;

    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store = Store::open(Some(&url)).await.unwrap();
    let mut missing = Vec::new();
    for id in &answered {
        match store.get_spend_log(id).await.unwrap() {
            Some(r) => assert_eq!(r.status, SpendStatus::Success, "{id}"),
            None => missing.push(id.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} answered calls have no spend record: {:?}\n{}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)],
        gw.output()
    );
    // Records of calls cut by the kill may exist too, but never twice (request id is unique),
    // and the key-less master calls' spend adds up to the rows.
    let rows = store.count_spend_logs().await.unwrap();
    assert!(rows >= answered.len() as i64);
    assert!(
        gw.output().contains("replayed the spend journal"),
        "{}",
        gw.output()
    );
}
