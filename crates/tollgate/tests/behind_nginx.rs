//! The deployment in `deploy/` as written: nginx (deploy/nginx/tollgate.conf, only its ports
//! changed) in front of three Tollgate processes on one PostgreSQL database and one Redis, and
//! the self-serve story through it: an admin adds a user and invites them, the user onboards,
//! logs in, makes a key, calls a model, and sees the spend; a deleted key stops working at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tollgate_testkit::process::{free_port, Gateway};
use tollgate_testkit::services::{TestDatabase, TestRedis};
use tollgate_testkit::{FakeUpstream, TEST_MASTER_KEY};

const PASSWORD: &str = "violet tangerine harbour lantern 42";

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> Option<String> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
}

/// The repository's nginx file with this test's ports, inside a minimal main config.
fn start_nginx(bin: &str, dir: &Path, listen: u16, instances: &[u16]) -> Nginx {
    let shipped = include_str!("../../../deploy/nginx/tollgate.conf");
    let mut site = shipped.replace("listen 80;", &format!("listen 127.0.0.1:{listen};"));
    for (i, port) in instances.iter().enumerate() {
        site = site.replace(
            &format!("127.0.0.1:{}", 4001 + i),
            &format!("127.0.0.1:{port}"),
        );
    }
    assert!(
        !site.contains(":4001"),
        "the shipped upstream list changed shape"
    );
    std::fs::write(dir.join("tollgate.conf"), site).unwrap();
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let main = format!(
        "worker_processes 1;\nerror_log {d}/nginx-error.log;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {t};\n  proxy_temp_path {t};\n\
         fastcgi_temp_path {t};\n  uwsgi_temp_path {t};\n  scgi_temp_path {t};\n\
         include {d}/tollgate.conf;\n}}\n",
        d = dir.display(),
        t = tmp.display()
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let child = Command::new(bin)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off; user root;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    Nginx(child)
}

async fn wait_for(http: &reqwest::Client, url: &str) {
    for _ in 0..200 {
        if let Ok(r) = http.get(url).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered");
}

async fn post(
    http: &reqwest::Client,
    url: String,
    bearer: &str,
    body: Value,
) -> (reqwest::StatusCode, Value) {
    let r = http
        .post(url)
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn served_chat_calls(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("tollgate_requests_total{route=\"chat\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_serve_story_through_nginx_and_three_instances() {
    let Some(nginx) = nginx_binary() else {
        assert!(std::env::var("CI").is_err(), "CI installs nginx");
        eprintln!("skipped: nginx is not installed");
        return;
    };
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let Some(redis) = TestRedis::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "model_list:\n  - model_name: chat\n    litellm_params: {{model: openai/chat, api_base: \"{}/v1\", api_key: sk-upstream, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}\ngeneral_settings: {{master_key: \"{TEST_MASTER_KEY}\"}}\n",
        up.base_url
    );
    let http = reqwest::Client::new();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut instances = Vec::new();
    for port in &ports {
        let journal = dir.path().join(format!("journal-{port}"));
        let journal = journal.display().to_string();
        let mut gw = Gateway::start_on(
            env!("CARGO_BIN_EXE_tollgate"),
            dir.path(),
            &config,
            &db.url,
            *port,
            &[
                ("REDIS_URL", &redis.url),
                ("TOLLGATE_REDIS_PREFIX", &redis.prefix),
                ("TOLLGATE_SPEND_JOURNAL_DIR", &journal),
                ("TOLLGATE_TRUST_X_FORWARDED_FOR", "true"),
            ],
        );
        gw.wait_ready(&http).await;
        instances.push(gw);
    }
    let front = free_port();
    let _nginx = start_nginx(&nginx, dir.path(), front, &ports);
    let base = format!("http://127.0.0.1:{front}");
    let url = |p: &str| format!("{base}{p}");
    wait_for(&http, &url("/health/readiness")).await;

    // The admin adds a user with a role and invites them.
    let (s, user) = post(
        &http,
        url("/user/new"),
        TEST_MASTER_KEY,
        json!({"user_email": "grace@example.com", "user_role": "internal_user"}),
    )
    .await;
    assert_eq!(s, 200, "{user}");
    let user_id = user["user_id"].as_str().unwrap().to_string();
    let (s, inv) = post(
        &http,
        url("/invitation/new"),
        TEST_MASTER_KEY,
        json!({"user_id": user_id}),
    )
    .await;
    assert_eq!(s, 200, "{inv}");
    let invitation = inv["id"].as_str().unwrap().to_string();

    // The user onboards (each step may land on another instance).
    let t: Value = http
        .get(url(&format!(
            "/onboarding/get_token?invite_link={invitation}"
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outer = t["token"]
        .as_str()
        .expect("an onboarding token")
        .to_string();
    let (s, v) = post(
        &http,
        url("/onboarding/claim_token"),
        &outer,
        json!({"invitation_link": invitation, "user_id": user_id, "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // Logs in and makes a key.
    let login: Value = http
        .post(url("/v2/login"))
        .json(&json!({"username": "grace@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().expect("a login token").to_string();
    let (s, k) = post(
        &http,
        url("/key/generate"),
        &token,
        json!({"key_alias": "laptop"}),
    )
    .await;
    assert_eq!(s, 200, "{k}");
    let key = k["key"].as_str().unwrap().to_string();

    // Calls spread over the instances.
    for _ in 0..9 {
        let (s, v) = post(
            &http,
            url("/v1/chat/completions"),
            &key,
            json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let mut serving = 0;
    for port in &ports {
        let m = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if served_chat_calls(&m) > 0 {
            serving += 1;
        }
    }
    assert!(
        serving >= 2,
        "nginx spread the calls over {serving} instance(s)"
    );

    // The user sees their spend once every instance has written its calls.
    let mut spend = 0.0;
    for _ in 0..100 {
        let info: Value = http
            .get(url(&format!("/user/info?user_id={user_id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        spend = info["user_info"]["spend"].as_f64().unwrap_or(0.0);
        if spend >= 9.0 * 24e-6 - 1e-12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        (spend - 9.0 * 24e-6).abs() < 1e-9,
        "nine calls of 12 + 6 tokens: {spend}"
    );

    // A deleted key stops working everywhere at once.
    let (s, v) = post(&http, url("/key/delete"), &token, json!({"keys": [key]})).await;
    assert_eq!(s, 200, "{v}");
    for _ in 0..6 {
        let (s, _) = post(
            &http,
            url("/v1/chat/completions"),
            &key,
            json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(s, 401);
    }
    for mut gw in instances {
        gw.stop().await;
    }
    redis.cleanup().await;
    db.drop_db().await;
}
