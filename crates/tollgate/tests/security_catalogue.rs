//! Cases of the security catalogue (docs/security-cases.md) that no other test file checked: one
//! test per case, named after its id. Each drives the real app (`spawn_app`) with a fake upstream
//! and asserts the safe behaviour from the outside.
//!
//! A case the gateway does not meet would be marked `#[ignore = "fails: …"]` here and listed as
//! `fails` in the map; every case in this file passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tollgate_store::SpendStatus;
use tollgate_testkit::{
    spawn_app, spawn_app_vars, spawn_app_with, Behavior, FakeUpstream, TestApp,
};

const PW: &str = "correct-horse-battery-staple-42";

/// Deployments on the fake upstream. It reports 12 prompt + 6 completion tokens per answer.
fn config(up: &FakeUpstream, extra: &str) -> String {
    let base = &up.base_url;
    format!(
        r#"
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a, api_base: "{base}/v1", api_key: sk-provider-secret-123456, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: gpt-b
    litellm_params: {{model: openai/gpt-b, api_base: "{base}/v1", api_key: sk-provider-secret-123456, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: embed
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
  - model_name: "openai/*"
    litellm_params: {{model: "openai/*", api_base: "{base}/v1", api_key: sk-provider-secret-123456}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{base}", api_key: sk-ant-secret-123456}}
  - model_name: flaky
    litellm_params: {{model: openai/flaky, api_base: "{base}/v1", api_key: sk-provider-secret-123456, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: backup
    litellm_params: {{model: openai/backup, api_base: "{base}/v1", api_key: sk-provider-secret-123456, input_cost_per_token: 0.000002, output_cost_per_token: 0.000004}}
  - model_name: slow
    litellm_params: {{model: openai/slow, api_base: "{base}/v1", api_key: sk-provider-secret-123456, timeout: 1}}
router_settings: {{num_retries: 0, fallbacks: [{{flaky: [backup]}}]}}
{extra}
general_settings: {{master_key: "{{master_key}}"}}
"#
    )
}

async fn setup() -> (TestApp, FakeUpstream) {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config(&up, "")).await;
    (app, up)
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

async fn admin(app: &TestApp, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    app.api(&app.master_key, method, path, body).await
}

async fn new_user(app: &TestApp, email: &str, role: &str) -> String {
    let (s, v) = admin(
        app,
        "POST",
        "/user/new",
        json!({"user_email": email, "user_role": role, "auto_create_key": false}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let id = v["user_id"].as_str().unwrap().to_string();
    let (s, v) = admin(
        app,
        "POST",
        "/user/update",
        json!({"user_id": id, "password": PW}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    id
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client()
        .post(app.url("/v2/login"))
        .json(&json!({"username": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// A user with a password, signed in: (user id, `/v2/login` token).
async fn user_with_login(app: &TestApp, email: &str, role: &str) -> (String, String) {
    let id = new_user(app, email, role).await;
    let r = login(app, email, PW).await;
    assert_eq!(r.status(), 200, "login {email}");
    let v: Value = r.json().await.unwrap();
    (id, v["token"].as_str().unwrap().to_string())
}

async fn key_for(app: &TestApp, bearer: &str, body: Value) -> String {
    let (s, v) = app.api(bearer, "POST", "/key/generate", body).await;
    assert_eq!(s, 200, "{v}");
    v["key"].as_str().unwrap().to_string()
}

async fn chat_with(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn user_count(app: &TestApp) -> u64 {
    let (s, v) = admin(app, "GET", "/user/list?page_size=100", json!({})).await;
    assert_eq!(s, 200, "{v}");
    v["total"].as_u64().unwrap()
}

async fn key_count(app: &TestApp) -> u64 {
    let (s, v) = admin(app, "GET", "/key/list?size=100", json!({})).await;
    assert_eq!(s, 200, "{v}");
    v["total_count"].as_u64().unwrap()
}

/// Sends raw bytes on a fresh connection and returns whatever the server answered before it
/// closed the connection or `wait` passed.
async fn raw(app: &TestApp, request: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let _ = s.write_all(request).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The status code of a raw HTTP/1.1 answer; 0 when there was none.
fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A listener that counts every connection made to it: a host no request should ever reach.
struct Trap {
    url: String,
    hits: Arc<AtomicUsize>,
}

impl Trap {
    async fn start() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
            }
        });
        Trap {
            url: format!("http://{addr}"),
            hits,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64url(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn b64url_decode(s: &str) -> Vec<u8> {
    let vals: Vec<u32> = s
        .bytes()
        .filter_map(|c| B64.iter().position(|&b| b == c).map(|p| p as u32))
        .collect();
    let mut out = Vec::new();
    for chunk in vals.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, v)| acc | (v << (18 - 6 * i)));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A. Authorization

/// A2: a key asked for with admin routes gains nothing its user doesn't have.
#[tokio::test]
async fn a2_a_key_never_gains_routes_beyond_its_user() {
    let (app, _up) = setup().await;
    let (_, alice_t) = user_with_login(&app, "a2-alice@example.com", "internal_user").await;
    let (_, bob_t) = user_with_login(&app, "a2-bob@example.com", "internal_user").await;
    let bobs_key = key_for(&app, &bob_t, json!({})).await;
    let users_before = user_count(&app).await;
    for routes in [
        json!(["/*"]),
        json!(["/user/update"]),
        json!(["/key/block"]),
    ] {
        let (s, v) = app
            .api(
                &alice_t,
                "POST",
                "/key/generate",
                json!({"allowed_routes": routes}),
            )
            .await;
        if s != 200 {
            assert!(s.is_client_error(), "{s} {v}");
            continue;
        }
        let key = v["key"].as_str().unwrap().to_string();
        let (s, v) = app.api(&key, "GET", "/user/list", json!({})).await;
        assert!(s == 401 || s == 403, "{routes}: /user/list {s} {v}");
        let (s, v) = app
            .api(
                &key,
                "POST",
                "/user/new",
                json!({"user_email": "a2-made@example.com", "user_role": "proxy_admin"}),
            )
            .await;
        assert!(s == 401 || s == 403, "{routes}: /user/new {s} {v}");
        let (s, v) = app
            .api(&key, "POST", "/key/block", json!({"key": bobs_key}))
            .await;
        assert!(s == 401 || s == 403, "{routes}: /key/block {s} {v}");
    }
    assert_eq!(user_count(&app).await, users_before);
    assert_eq!(
        chat_with(&app, &bobs_key, &chat_body("gpt-a"))
            .await
            .status(),
        200,
        "Bob's key was not blocked"
    );
    app.stop().await;
}

/// A8: a member of team A can neither change team A as a plain member nor touch team B, nor put
/// a key on team B.
#[tokio::test]
async fn a8_members_cannot_manage_teams_or_key_another_team() {
    let (app, _up) = setup().await;
    let (member, member_t) = user_with_login(&app, "a8-member@example.com", "internal_user").await;
    let (other, _) = user_with_login(&app, "a8-other@example.com", "internal_user").await;
    let team = |alias: &str, uid: &str, role: &str| json!({"team_alias": alias, "max_budget": 5, "members_with_roles": [{"user_id": uid, "role": role}]});
    let (_, a) = admin(&app, "POST", "/team/new", team("a8-a", &member, "user")).await;
    let (_, b) = admin(&app, "POST", "/team/new", team("a8-b", &other, "admin")).await;
    let (a, b) = (
        a["team_id"].as_str().unwrap().to_string(),
        b["team_id"].as_str().unwrap().to_string(),
    );
    let keys_before = key_count(&app).await;
    let refused = [
        ("/key/generate", json!({"team_id": b})),
        ("/team/update", json!({"team_id": a, "max_budget": 1000})),
        (
            "/team/update",
            json!({"team_id": b, "team_alias": "hijacked"}),
        ),
        (
            "/team/member_add",
            json!({"team_id": b, "member": {"user_id": member, "role": "admin"}}),
        ),
        (
            "/team/member_update",
            json!({"team_id": a, "user_id": member, "role": "admin"}),
        ),
        ("/team/delete", json!({"team_ids": [a]})),
        ("/team/delete", json!({"team_ids": [b]})),
    ];
    for (path, body) in refused {
        let (s, v) = app.api(&member_t, "POST", path, body.clone()).await;
        assert!(s == 401 || s == 403, "{path} {body}: {s} {v}");
    }
    assert_eq!(key_count(&app).await, keys_before);
    for (id, alias) in [(&a, "a8-a"), (&b, "a8-b")] {
        let (s, v) = admin(&app, "GET", &format!("/team/info?team_id={id}"), json!({})).await;
        assert_eq!(s, 200, "{v}");
        let t = &v["team_info"];
        assert_eq!(t["team_alias"], alias, "{v}");
        assert_eq!(t["max_budget"], 5.0, "{v}");
    }
    app.stop().await;
}

/// A9: a key limited to one model reaches no other, by exact name, wildcard deployment or the
/// embeddings route, and the upstream never sees those calls.
#[tokio::test]
async fn a9_a_key_limited_to_one_model_reaches_no_other() {
    let (app, up) = setup().await;
    let key = key_for(&app, &app.master_key, json!({"models": ["gpt-a"]})).await;
    assert_eq!(
        chat_with(&app, &key, &chat_body("gpt-a")).await.status(),
        200
    );
    let before = up.requests();
    for model in ["gpt-b", "openai/gpt-4o", "claude", "GPT-A", "gpt-a "] {
        let r = chat_with(&app, &key, &chat_body(model)).await;
        let s = r.status();
        assert!(
            s == 401 || s == 403 || s == 400,
            "{model:?}: {s} {}",
            r.text().await.unwrap()
        );
    }
    let r = app
        .client()
        .post(app.url("/v1/embeddings"))
        .bearer_auth(&key)
        .json(&json!({"model": "embed", "input": "hello"}))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 401 || r.status() == 403, "{}", r.status());
    assert_eq!(
        up.requests(),
        before,
        "no refused call reached the upstream"
    );
    app.stop().await;
}

/// A10: odd spellings of an admin route never run its handler without admin rights.
#[tokio::test]
async fn a10_odd_paths_never_reach_admin_handlers_without_admin_auth() {
    let (app, _up) = setup().await;
    let (_, token) = user_with_login(&app, "a10@example.com", "internal_user").await;
    let key = key_for(&app, &token, json!({})).await;
    let before = user_count(&app).await;
    let paths = [
        "//user//new",
        "/user//new",
        "/v1/../user/new",
        "/v1/chat/completions/../../user/new",
        "/./user/new",
        "/%75ser/new",
        "/user%2Fnew",
        "/%2Fuser%2Fnew",
        "/user/new/",
        "/USER/NEW",
        "/User/New",
        "/user/new;x=1",
        "/user/new%00",
        "/user/new%20",
        "/user/new#frag",
        "/user/new?/../v1/models",
        "http://evil.example/user/new",
        "http://127.0.0.1/user/new",
    ];
    let body = r#"{"user_email":"a10-made@example.com","user_role":"proxy_admin"}"#;
    for creds in ["", key.as_str(), token.as_str()] {
        for path in paths {
            for host in ["localhost", "evil.example/..", "localhost/v1/models"] {
                let auth = if creds.is_empty() {
                    String::new()
                } else {
                    format!("Authorization: Bearer {creds}\r\n")
                };
                let req = format!(
                    "POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let answer = raw(&app, req.as_bytes(), Duration::from_secs(5)).await;
                let status = status_of(&answer);
                assert!(
                    !(200..300).contains(&status) && status < 500,
                    "{path} (host {host}, creds {}): {answer}",
                    !creds.is_empty()
                );
            }
        }
    }
    assert_eq!(user_count(&app).await, before, "no user was created");
    app.stop().await;
}

/// A11: without `TOLLGATE_TRUST_X_FORWARDED_FOR`, a client choosing its own `X-Forwarded-For`
/// (and `X-Real-IP`) per attempt is still one address to the login throttle.
#[tokio::test]
async fn a11_forwarded_for_headers_from_an_untrusted_peer_are_ignored() {
    let (app, _up) = setup().await;
    let mut statuses = Vec::new();
    for i in 0..24 {
        let r = app
            .client()
            .post(app.url("/v2/login"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .header("x-real-ip", format!("198.51.100.{i}"))
            .json(&json!({"username": format!("a11-{i}@example.com"), "password": "wrong-password-123"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    // 20 failures from one address start a block of that address, whatever the headers said.
    assert!(
        statuses[20..].iter().all(|s| *s == 429),
        "one peer spraying many emails behind made-up addresses: {statuses:?}"
    );
    app.stop().await;
}

/// A12: no route runs caller-supplied code, templates or commands; even the master key gets a
/// 404 for LiteLLM's "test this" endpoints.
#[tokio::test]
async fn a12_no_route_runs_caller_supplied_code() {
    let (app, _up) = setup().await;
    let body = json!({
        "command": "touch", "args": ["/tmp/tollgate-a12"], "env": {},
        "prompt_template": "{{7*7}} {{''.__class__.__mro__}}",
        "custom_code": "import os; os.system('id')",
        "config": {"model_list": []}
    });
    for path in [
        "/prompts/test",
        "/guardrails/test_custom_code",
        "/mcp-rest/test/connection",
        "/mcp-rest/test/tools/list",
        "/config/update",
        "/config/field/update",
        "/utils/transform_request",
    ] {
        let (s, v) = admin(&app, "POST", path, body.clone()).await;
        assert_eq!(s, 404, "{path}: {v}");
        assert!(!v.to_string().contains("49"), "{path}: {v}");
    }
    assert!(!std::path::Path::new("/tmp/tollgate-a12").exists());
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// B. Authentication and sessions

/// B5: the stored password hash, presented as the password, does not log anyone in.
#[tokio::test]
async fn b5_the_stored_hash_is_not_a_password() {
    let (app, _up) = setup().await;
    let id = new_user(&app, "b5@example.com", "internal_user").await;
    let hash = app.store.get_password_hash(&id).await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let r = login(&app, "b5@example.com", &hash).await;
    assert_eq!(r.status(), 401);
    let form = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/login"))
        .form(&[("username", "b5@example.com"), ("password", hash.as_str())])
        .send()
        .await
        .unwrap();
    assert!(form.headers().get("set-cookie").is_none());
    assert_ne!(form.status(), 303);
    assert_eq!(login(&app, "b5@example.com", PW).await.status(), 200);
    app.stop().await;
}

/// B6: a session id planted before login is never adopted: the login answers with a new,
/// long, random one, and the planted one opens nothing.
#[tokio::test]
async fn b6_a_planted_session_id_is_never_adopted() {
    let (app, _up) = setup().await;
    new_user(&app, "b6@example.com", "internal_user").await;
    let planted = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(app.url("/login"))
        .header("cookie", format!("tollgate_session={planted}"))
        .form(&[("username", "b6@example.com"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let value = set
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("tollgate_session=")
        .to_string();
    assert_ne!(value, planted);
    assert!(value.len() >= 22, "at least 128 bits: {value}");
    let info = |cookie: String| {
        let http = http.clone();
        let url = app.url("/user/info");
        async move {
            http.get(url)
                .header("cookie", format!("tollgate_session={cookie}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(info(planted.to_string()).await, 401);
    assert_eq!(info(value.clone()).await, 200);
    // Two logins never share a session id.
    let again = http
        .post(app.url("/login"))
        .header("cookie", format!("tollgate_session={value}"))
        .form(&[("username", "b6@example.com"), ("password", PW)])
        .send()
        .await
        .unwrap();
    let second = again.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(!second.contains(&value));
    app.stop().await;
}

/// Pages and the session cookie as a browser over HTTPS sees them.
async fn https_page_and_cookie() -> (TestApp, reqwest::header::HeaderMap, String) {
    let up = FakeUpstream::start().await;
    let app = spawn_app_vars(
        &config(&up, ""),
        &[("PROXY_BASE_URL", "https://gw.example.com")],
    )
    .await;
    new_user(&app, "b7@example.com", "internal_user").await;
    let page = app.client().get(app.url("/ui/login")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/login"))
        .form(&[("username", "b7@example.com"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    (app, headers, cookie)
}

/// B7: over HTTPS the session cookie is `__Host-` prefixed, `Secure`, `HttpOnly`,
/// `SameSite=Lax`, `Path=/`, without `Domain`; pages carry a CSP, `nosniff`, a referrer policy
/// and refuse framing. (HSTS has its own test file.)
#[tokio::test]
async fn b7_session_cookie_attributes_and_page_headers() {
    let (app, h, cookie) = https_page_and_cookie().await;
    assert!(cookie.starts_with("__Host-tollgate_session="), "{cookie}");
    let attrs: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} in {cookie}");
    }
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{cookie}");
    let csp = h["content-security-policy"].to_str().unwrap();
    for want in [
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "script-src 'self'",
    ] {
        assert!(csp.contains(want), "{want} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    let referrer = h["referrer-policy"].to_str().unwrap();
    assert!(
        ["no-referrer", "same-origin", "strict-origin"].contains(&referrer),
        "{referrer}"
    );
    app.stop().await;
}

/// B7 (ASVS 3.4.3): the CSP says `object-src 'none'`, on the login page and on a signed-in page.
#[tokio::test]
async fn b7_csp_forbids_plugins() {
    let (app, h, cookie) = https_page_and_cookie().await;
    let session = cookie.split(';').next().unwrap().to_string();
    let home = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/ui"))
        .header("cookie", &session)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let home_status = home.status();
    let home_csp = home.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let login_csp = h["content-security-policy"].to_str().unwrap().to_string();
    app.stop().await;
    assert_eq!(home_status, 200);
    for csp in [login_csp, home_csp] {
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        assert!(directives.contains(&"object-src 'none'"), "{csp}");
    }
}

/// B8: state changes need a POST with a JSON body and, from a cookie, the CSRF token: a GET
/// changes nothing, and a cross-site form post (urlencoded or text/plain) with the session
/// cookie is refused.
#[tokio::test]
async fn b8_forms_and_gets_cannot_change_state() {
    let (app, _up) = setup().await;
    new_user(&app, "b8@example.com", "proxy_admin").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(app.url("/login"))
        .form(&[("username", "b8@example.com"), ("password", PW)])
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (keys, users) = (key_count(&app).await, user_count(&app).await);
    for (path, form) in [
        ("/key/generate", "key_alias=b8"),
        ("/user/new", "user_email=b8-made%40example.com"),
        ("/team/new", "team_alias=b8"),
    ] {
        for ct in [
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data; boundary=x",
        ] {
            for origin in [None, Some("https://evil.example")] {
                let mut req = http
                    .post(app.url(path))
                    .header("cookie", &cookie)
                    .header("content-type", ct)
                    .body(form);
                if let Some(o) = origin {
                    req = req
                        .header("origin", o)
                        .header("sec-fetch-site", "cross-site");
                }
                let s = req.send().await.unwrap().status();
                assert!(s.is_client_error(), "{path} {ct} {origin:?}: {s}");
            }
        }
        // A GET on a state-changing route, even with the master key.
        let s = http
            .get(app.url(&format!("{path}?{form}")))
            .bearer_auth(&app.master_key)
            .send()
            .await
            .unwrap()
            .status();
        assert!(s == 405 || s == 404, "GET {path}: {s}");
    }
    assert_eq!(
        (key_count(&app).await, user_count(&app).await),
        (keys, users)
    );
    app.stop().await;
}

/// B9: a request from another origin gets no CORS grant, on the management API, inference or
/// a preflight.
#[tokio::test]
async fn b9_other_origins_get_no_cors_grant() {
    let (app, _up) = setup().await;
    let c = app.client();
    let evil = "https://evil.example";
    let answers = vec![
        c.request(reqwest::Method::OPTIONS, app.url("/key/generate"))
            .header("origin", evil)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap(),
        c.get(app.url("/key/list"))
            .header("origin", evil)
            .bearer_auth(&app.master_key)
            .send()
            .await
            .unwrap(),
        c.post(app.url("/v1/chat/completions"))
            .header("origin", evil)
            .bearer_auth(&app.master_key)
            .json(&chat_body("gpt-a"))
            .send()
            .await
            .unwrap(),
        c.request(reqwest::Method::OPTIONS, app.url("/v1/chat/completions"))
            .header("origin", evil)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap(),
    ];
    for r in answers {
        let h = r.headers();
        assert!(
            h.get("access-control-allow-origin").is_none(),
            "{} {:?}",
            r.url(),
            h
        );
        assert!(h.get("access-control-allow-credentials").is_none());
    }
    app.stop().await;
}

/// B10: a password change ends every session of the user (the one that changed it too), and
/// the old password stops working; a wrong current password changes nothing.
#[tokio::test]
async fn b10_a_password_change_ends_every_session() {
    let (app, _up) = setup().await;
    let (_, first) = user_with_login(&app, "b10@example.com", "internal_user").await;
    let second: Value = login(&app, "b10@example.com", PW)
        .await
        .json()
        .await
        .unwrap();
    let second = second["token"].as_str().unwrap().to_string();
    let new_pw = "another-correct-horse-staple-77";
    let (s, _) = app
        .api(
            &first,
            "POST",
            "/user/password/change",
            json!({"current_password": "not-the-password-1", "new_password": new_pw}),
        )
        .await;
    assert!(s.is_client_error(), "{s}");
    assert_eq!(
        app.api(&second, "GET", "/user/info", json!({})).await.0,
        200,
        "a refused change ends nothing"
    );
    let (s, v) = app
        .api(
            &first,
            "POST",
            "/user/password/change",
            json!({"current_password": PW, "new_password": new_pw}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    for t in [&first, &second] {
        assert_eq!(app.api(t, "GET", "/user/info", json!({})).await.0, 401);
    }
    assert_eq!(login(&app, "b10@example.com", PW).await.status(), 401);
    assert_eq!(login(&app, "b10@example.com", new_pw).await.status(), 200);
    app.stop().await;
}

/// B12: a login mints no API key, and its token carries none.
#[tokio::test]
async fn b12_logins_mint_no_api_keys() {
    let (app, _up) = setup().await;
    new_user(&app, "b12@example.com", "proxy_admin").await;
    let before = key_count(&app).await;
    for _ in 0..20 {
        let r = login(&app, "b12@example.com", PW).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let token = v["token"].as_str().unwrap();
        let claims = b64url_decode(token.split('.').nth(1).unwrap());
        let claims = String::from_utf8_lossy(&claims).into_owned();
        assert!(claims.contains("\"key\""), "a login token: {claims}");
        assert!(!claims.contains("sk-"), "no API key inside: {claims}");
        assert!(!token.starts_with("sk-"));
        // The session's secret is no inference key.
        let r = chat_with(&app, token, &chat_body("gpt-a")).await;
        assert_eq!(r.status(), 401);
    }
    assert_eq!(key_count(&app).await, before, "no key per login");
    app.stop().await;
}

/// B13: onboarding tokens are checked whole: `alg: none`, a missing or foreign signature, or
/// an edited payload is refused, and the invitation stays usable.
#[tokio::test]
async fn b13_forged_onboarding_tokens_are_refused() {
    let (app, _up) = setup().await;
    let (s, v) = admin(
        &app,
        "POST",
        "/user/new",
        json!({"user_email": "b13@example.com", "auto_create_key": false}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let user_id = v["user_id"].as_str().unwrap().to_string();
    let (_, inv) = admin(&app, "POST", "/invitation/new", json!({"user_id": user_id})).await;
    let id = inv["id"].as_str().unwrap().to_string();
    let (_, t) = admin(
        &app,
        "GET",
        &format!("/onboarding/get_token?invite_link={id}"),
        json!({}),
    )
    .await;
    let real = t["token"].as_str().unwrap().to_string();
    let parts: Vec<&str> = real.split('.').collect();
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let mut edited: Value = serde_json::from_slice(&b64url_decode(parts[1])).unwrap();
    edited["user_id"] = json!("someone-else");
    let edited = b64url(edited.to_string().as_bytes());
    let forged = [
        format!("{none_header}.{}.", parts[1]),
        format!("{none_header}.{}", parts[1]),
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}.{}.{}", parts[0], edited, parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], b64url(&[0u8; 32])),
        real[..real.len() - 4].to_string(),
        format!("{real}x"),
    ];
    for token in &forged {
        let r = app
            .client()
            .post(app.url("/onboarding/claim_token"))
            .bearer_auth(token)
            .json(&json!({"invitation_link": id, "user_id": user_id, "password": PW}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{token}: {}", r.status());
        assert!(r.headers().get("set-cookie").is_none());
    }
    assert_eq!(login(&app, "b13@example.com", PW).await.status(), 401);
    let r = app
        .client()
        .post(app.url("/onboarding/claim_token"))
        .bearer_auth(&real)
        .json(&json!({"invitation_link": id, "user_id": user_id, "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the genuine token still works");
    app.stop().await;
}

/// B15: the invitation page tells the browser not to send its URL (with the id) to other
/// sites.
#[tokio::test]
async fn b15_the_invitation_page_keeps_its_url_to_itself() {
    let (app, _up) = setup().await;
    let (_, v) = admin(
        &app,
        "POST",
        "/user/new",
        json!({"user_email": "b15@example.com", "auto_create_key": false}),
    )
    .await;
    let (_, inv) = admin(
        &app,
        "POST",
        "/invitation/new",
        json!({"user_id": v["user_id"]}),
    )
    .await;
    let id = inv["id"].as_str().unwrap();
    for path in [
        format!("/ui/onboarding?id={id}"),
        "/ui/onboarding?id=not-an-invitation".to_string(),
    ] {
        let r = app.client().get(app.url(&path)).send().await.unwrap();
        let policy = r.headers()["referrer-policy"].to_str().unwrap().to_string();
        assert!(
            ["no-referrer", "same-origin"].contains(&policy.as_str()),
            "{path}: {policy}"
        );
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
    app.stop().await;
}

/// B16: only the exact key opens: not its hash, not a case change, not a prefix or suffix.
#[tokio::test]
async fn b16_only_the_exact_key_opens() {
    let (app, _up) = setup().await;
    let key = key_for(&app, &app.master_key, json!({})).await;
    assert_eq!(
        chat_with(&app, &key, &chat_body("gpt-a")).await.status(),
        200
    );
    let swapped: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let near = [
        tollgate_domain::secret::sha256_hex(&key),
        key.to_uppercase(),
        swapped,
        key[..key.len() - 1].to_string(),
        key[..12].to_string(),
        format!("{key}x"),
        format!("{key}\u{a0}"),
        format!("x{key}"),
        key.replacen("sk-", "sk_", 1),
    ];
    for k in &near {
        let r = chat_with(&app, k, &chat_body("gpt-a")).await;
        assert_eq!(r.status(), 401, "{k:?}");
        let (s, _) = app.api(k, "GET", "/key/list", json!({})).await;
        assert_eq!(s, 401, "{k:?} on the management API");
    }
    app.stop().await;
}

/// B17: hostile `Authorization` values all get the same 401 envelope, never a 5xx or a
/// database message; malformed header bytes get a 4xx.
#[tokio::test]
async fn b17_hostile_authorization_headers_get_the_same_401() {
    let (app, up) = setup().await;
    let values: Vec<Vec<u8>> = vec![
        b"Bearer ' OR '1'='1".to_vec(),
        b"Bearer x' UNION SELECT token FROM verification_tokens--".to_vec(),
        b"Bearer sk-' OR 1=1--".to_vec(),
        b"Bearer sk-%' OR token LIKE '%".to_vec(),
        b"Bearer \"; DROP TABLE users; --".to_vec(),
        b"Bearer Bearer sk-abc".to_vec(),
        b"Basic YWRtaW46YWRtaW4=".to_vec(),
        b"".to_vec(),
        b"Bearer".to_vec(),
        b"Bearer    ".to_vec(),
        b"Bearer sk-\xc3\xa9\xc3\xa9".to_vec(),
        b"Bearer sk-\xff\xfe".to_vec(),
        format!("Bearer sk-{}", "a".repeat(8000)).into_bytes(),
    ];
    let mut envelope = None;
    for path in ["/v1/chat/completions", "/key/list"] {
        for v in &values {
            let value = reqwest::header::HeaderValue::from_bytes(v).unwrap();
            let req = if path == "/key/list" {
                app.client().get(app.url(path))
            } else {
                app.client().post(app.url(path)).json(&chat_body("gpt-a"))
            };
            let r = req.header("authorization", value).send().await.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            let what = String::from_utf8_lossy(v);
            assert_eq!(status, 401, "{path} {what}: {body}");
            let text = body.to_string().to_ascii_lowercase();
            for leak in [
                "select",
                "sqlite",
                "syntax",
                "sqlx",
                "panicked",
                "union",
                "drop table",
            ] {
                assert!(!text.contains(leak), "{path} {what}: {body}");
            }
            assert_eq!(body["error"]["code"], "401", "{body}");
            // The message differs with the key's form (as LiteLLM's does); the envelope doesn't.
            let mut shape: Vec<String> = body["error"]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            shape.sort();
            if path == "/v1/chat/completions" {
                match &envelope {
                    None => envelope = Some(shape),
                    Some(e) => assert_eq!(e, &shape, "{what}: {body}"),
                }
            }
        }
    }
    // Bytes no header may hold, and a header far past any sane size: refused, not a 5xx.
    for head in [
        b"Authorization: Bearer sk-\x00abc\r\n".to_vec(),
        b"Authorization: Bearer sk-\x01\x7fabc\r\n".to_vec(),
        format!("Authorization: Bearer sk-{}\r\n", "a".repeat(1024 * 1024)).into_bytes(),
    ] {
        let mut req =
            b"GET /key/list HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_vec();
        req.extend_from_slice(&head);
        req.extend_from_slice(b"\r\n");
        let answer = raw(&app, &req, Duration::from_secs(5)).await;
        let s = status_of(&answer);
        assert!(s == 0 || (400..500).contains(&s), "{s}: {answer}");
    }
    assert_eq!(up.requests(), 0);
    // The gateway still serves.
    assert_eq!(
        app.post("/v1/chat/completions", &chat_body("gpt-a"))
            .await
            .status(),
        200
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// C. Input, SSRF and parser abuse

/// C1: every way a caller could name an upstream (body fields, nested containers, headers) is
/// refused or ignored on chat and embeddings; a listener named that way sees no connection.
#[tokio::test]
async fn c1_callers_cannot_choose_the_upstream() {
    let (app, up) = setup().await;
    let trap = Trap::start().await;
    let t = format!("{}/v1", trap.url);
    let fields = [
        "api_base",
        "base_url",
        "api_key",
        "azure_endpoint",
        "aws_region_name",
        "vertex_project",
        "extra_headers",
        "custom_llm_provider",
        "organization",
    ];
    for (route, mut body) in [
        ("/v1/chat/completions", chat_body("gpt-a")),
        (
            "/v1/embeddings",
            json!({"model": "embed", "input": "hello"}),
        ),
    ] {
        for field in fields {
            let value = match field {
                "extra_headers" => json!({"Host": trap.url, "x-portkey-custom-host": t}),
                "custom_llm_provider" => json!("hosted_vllm"),
                _ => json!(t),
            };
            for nested in [None, Some("extra_body"), Some("litellm_params")] {
                let mut b = body.clone();
                match nested {
                    None => b[field] = value.clone(),
                    Some(n) => b[n] = json!({ field: value.clone() }),
                }
                let r = app
                    .client()
                    .post(app.url(route))
                    .bearer_auth(&app.master_key)
                    .header("x-portkey-custom-host", &t)
                    .header("x-litellm-api-base", &t)
                    .json(&b)
                    .send()
                    .await
                    .unwrap();
                let s = r.status();
                assert!(s == 200 || s == 400, "{route} {field} {nested:?}: {s}");
                if s == 200 {
                    let seen = up.last();
                    assert_eq!(
                        seen.headers["authorization"],
                        "Bearer sk-provider-secret-123456"
                    );
                }
            }
        }
        body["model"] = json!("gpt-a");
    }
    assert_eq!(trap.hits(), 0, "the trap was never contacted");
    app.stop().await;
}

/// C2: an upstream that redirects is not followed, so the provider key never goes on to
/// another host.
#[tokio::test]
async fn c2_upstream_redirects_are_not_followed() {
    let trap = Trap::start().await;
    let target = format!("{}/v1/chat/completions", trap.url);
    let redirector = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_url = format!("http://{}", redirector.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = redirector.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf).await;
                // 307 keeps the method and body: a follower would re-send the key with them.
                let resp = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    let cfg = format!(
        r#"
model_list:
  - model_name: hop
    litellm_params: {{model: openai/hop, api_base: "{redirect_url}/v1", api_key: sk-provider-secret-123456}}
router_settings: {{num_retries: 1}}
general_settings: {{master_key: "{{master_key}}"}}
"#
    );
    let app = spawn_app(&cfg).await;
    let r = app.post("/v1/chat/completions", &chat_body("hop")).await;
    let s = r.status();
    let text = r.text().await.unwrap();
    assert_ne!(s, 200, "{text}");
    assert!(!text.contains("sk-provider-secret"), "{text}");
    let mut b = chat_body("hop");
    b["stream"] = json!(true);
    let r = app.post("/v1/chat/completions", &b).await;
    assert_ne!(r.status(), 200);
    assert_eq!(trap.hits(), 0, "the redirect target was never contacted");
    app.stop().await;
}

/// C3: image URLs in messages are passed on as URLs, never fetched by the gateway, for OpenAI
/// and Anthropic deployments alike.
#[tokio::test]
async fn c3_image_urls_are_forwarded_not_fetched() {
    let (app, up) = setup().await;
    let trap = Trap::start().await;
    for model in ["gpt-a", "claude"] {
        for url in [
            format!("{}/cat.png", trap.url),
            "http://169.254.169.254/latest/meta-data/".to_string(),
        ] {
            let body = json!({"model": model, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": url}}
            ]}]});
            let r = app.post("/v1/chat/completions", &body).await;
            assert_eq!(r.status(), 200, "{model} {url}");
            assert!(
                up.last().body.to_string().contains(&url),
                "passed on as a URL"
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(trap.hits(), 0);
    app.stop().await;
}

/// C4: list filters take `%`, `_`, `\` and quotes literally, answer fast, and leak no SQL.
#[tokio::test]
async fn c4_list_filters_are_literal() {
    let (app, _up) = setup().await;
    for email in [
        "c4.one@example.com",
        "c4_two@example.com",
        "c4.three@example.com",
    ] {
        new_user(&app, email, "internal_user").await;
    }
    let total = user_count(&app).await;
    let count = |q: String| {
        let app = &app;
        async move {
            let start = Instant::now();
            let (s, v) = admin(app, "GET", &q, json!({})).await;
            assert_eq!(s, 200, "{q}: {v}");
            assert!(start.elapsed() < Duration::from_secs(2), "{q} was slow");
            let text = v.to_string().to_ascii_lowercase();
            assert!(!text.contains("syntax") && !text.contains("sqlite"), "{v}");
            v
        }
    };
    let enc = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    for (needle, want) in [
        ("%", 0),
        ("%%%%", 0),
        ("_", 1),
        ("c4_", 1),
        ("\\", 0),
        ("'", 0),
        ("') OR 1=1--", 0),
        ("\" OR \"\"=\"", 0),
        ("c4.", 2),
    ] {
        let v = count(format!("/user/list?user_email={}", enc(needle))).await;
        assert_eq!(v["total"], want, "user_email={needle}: {v}");
    }
    let v = count(format!("/user/list?user_email={}", "%25".repeat(10_000))).await;
    assert_eq!(v["total"], 0, "{v}");
    assert_eq!(user_count(&app).await, total);
    key_for(&app, &app.master_key, json!({"key_alias": "c4-alias"})).await;
    for needle in ["%", "_", "c4%", "' OR 1=1--"] {
        let v = count(format!("/key/list?key_alias={}", enc(needle))).await;
        assert_eq!(v["total_count"], 0, "key_alias={needle}: {v}");
    }
    app.stop().await;
}

/// C5: malformed JSON of every kind gets a 400 in the OpenAI envelope, and the upstream is
/// never called.
#[tokio::test]
async fn c5_malformed_json_gets_400_and_never_reaches_the_upstream() {
    let (app, up) = setup().await;
    let bodies: [&[u8]; 10] = [
        b"",
        b"{\"model\":\"gpt-a\",\"messages\":[]",
        b"{\"model\":\"gpt-a\",\"messages\":[],}",
        b"{\"model\":\"gpt-a\",\"temperature\":NaN,\"messages\":[]}",
        b"{\"model\":\"gpt-a\",\"temperature\":Infinity,\"messages\":[]}",
        b"[{\"model\":\"gpt-a\",\"messages\":[]}]",
        b"\"gpt-a\"",
        b"null",
        b"{'model':'gpt-a'}",
        b"{\"model\":\"gpt-a\",\"messages\":[]}garbage",
    ];
    for route in ["/v1/chat/completions", "/v1/embeddings"] {
        for body in bodies {
            let r = app
                .client()
                .post(app.url(route))
                .bearer_auth(&app.master_key)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            let what = String::from_utf8_lossy(body);
            assert_eq!(status, 400, "{route} {what}: {text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["error"]["code"], "400", "{text}");
            assert!(
                !text.contains("panicked") && !text.contains(".rs:"),
                "{text}"
            );
        }
    }
    assert_eq!(up.requests(), 0);
    app.stop().await;
}

/// C7: 10,000 levels of nesting, wherever they are, get a 400 and the process stays up.
#[tokio::test]
async fn c7_ten_thousand_levels_of_nesting_get_400() {
    let (app, up) = setup().await;
    let n = 10_000;
    let arrays = format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let objects = format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    for deep in [arrays, objects] {
        for body in [
            format!(r#"{{"model":"gpt-a","messages":[{{"role":"user","content":{deep}}}]}}"#),
            format!(
                r#"{{"model":"gpt-a","messages":[{{"role":"user","content":"hi"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{deep}}}}}]}}"#
            ),
            format!(r#"{{"model":"gpt-a","input":{deep}}}"#),
        ] {
            let r = app
                .client()
                .post(app.url("/v1/chat/completions"))
                .bearer_auth(&app.master_key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400);
        }
    }
    assert_eq!(up.requests(), 0);
    assert_eq!(
        app.post("/v1/chat/completions", &chat_body("gpt-a"))
            .await
            .status(),
        200
    );
    app.stop().await;
}

/// C8: a body announced far over the limit is refused from its headers, before any of it is
/// sent; a body larger than it claimed to be is not read past its length.
#[tokio::test]
async fn c8_an_oversized_body_is_refused_before_it_is_read() {
    let (app, up) = setup().await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{{",
        app.master_key
    );
    let start = Instant::now();
    let answer = raw(&app, head.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(status_of(&answer), 413, "{answer}");
    assert!(start.elapsed() < Duration::from_secs(3));
    // A short Content-Length followed by much more: only the announced bytes are the body.
    let body = serde_json::to_string(&chat_body("gpt-a")).unwrap();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}{}",
        app.master_key,
        body.len(),
        "x".repeat(4 * 1024 * 1024)
    );
    let answer = raw(&app, req.as_bytes(), Duration::from_secs(5)).await;
    let s = status_of(&answer);
    assert!(s == 200 || s == 0 || (400..500).contains(&s), "{answer}");
    assert!(up.requests() <= 1);
    assert_eq!(
        app.post("/v1/chat/completions", &chat_body("gpt-a"))
            .await
            .status(),
        200
    );
    app.stop().await;
}

/// C11: absurd but well-formed generation parameters are refused or passed on, never a 5xx,
/// and a budget key's admission is not fooled by them.
#[tokio::test]
async fn c11_absurd_parameters_do_not_break_admission() {
    let (app, up) = setup().await;
    let key = key_for(&app, &app.master_key, json!({"max_budget": 0.01})).await;
    let raw_bodies = [
        r#"{"model":"gpt-a","messages":[{"role":"user","content":"hi"}],"max_tokens":9223372036854775807}"#.to_string(),
        r#"{"model":"gpt-a","messages":[{"role":"user","content":"hi"}],"max_tokens":18446744073709551616}"#.to_string(),
        r#"{"model":"gpt-a","messages":[{"role":"user","content":"hi"}],"max_tokens":-1}"#.to_string(),
        r#"{"model":"gpt-a","messages":[{"role":"user","content":"hi"}],"max_tokens":1.5}"#.to_string(),
        r#"{"model":"gpt-a","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":-5}"#.to_string(),
    ];
    for body in &raw_bodies {
        let before = up.requests();
        let r = app
            .client()
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let s = r.status();
        let text = r.text().await.unwrap();
        assert!(s.as_u16() < 500, "{body}: {s} {text}");
        if s == 200 {
            // Passed on: the upstream saw an output limit the budget can pay for.
            let seen = up.last().body;
            let max = seen["max_tokens"]
                .as_u64()
                .or(seen["max_completion_tokens"].as_u64());
            assert!(
                max.is_some_and(|m| m as f64 * 0.000002 <= 0.01),
                "{body}: forwarded {seen}"
            );
        } else {
            assert_eq!(
                up.requests(),
                before,
                "{body}: refused calls are not forwarded"
            );
        }
    }
    // A temperature past f64's range is the upstream's to judge: passed on, no 5xx here.
    let r = app
        .client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(
            r#"{"model":"gpt-a","messages":[{"role":"user","content":"hi"}],"temperature":1e309}"#,
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().as_u16() < 500, "{}", r.status());
    // 100,000 messages: within the body limit, handled without a 5xx.
    let many: Vec<Value> = (0..100_000)
        .map(|_| json!({"role": "user", "content": "x"}))
        .collect();
    let r = chat_with(&app, &key, &json!({"model": "gpt-a", "messages": many})).await;
    assert!(r.status().as_u16() < 500, "{}", r.status());
    app.stop().await;
}

/// C11: `n` choices are paid for as they are sent: a call asking for more choices than the
/// budget reservation counted is refused or clamped.
#[tokio::test]
async fn c11_the_choices_sent_are_the_choices_reserved() {
    let (app, up) = setup().await;
    let key = key_for(&app, &app.master_key, json!({"max_budget": 0.01})).await;
    let mut body = chat_body("gpt-a");
    body["n"] = json!(10_000);
    let r = chat_with(&app, &key, &body).await;
    let status = r.status();
    let seen = (up.requests() > 0).then(|| up.last().body);
    app.stop().await;
    if status == 200 {
        let seen = seen.expect("forwarded");
        let n = seen["n"].as_u64().unwrap_or(1);
        let max = seen["max_tokens"].as_u64().unwrap_or(u64::MAX);
        let worst = n as f64 * max as f64 * 0.000002;
        assert!(
            worst <= 0.01,
            "forwarded n={n} max_tokens={max}: up to ${worst:.2}"
        );
    } else {
        assert_eq!(status, 400, "refused as a bad request");
        assert!(seen.is_none(), "a refused call is not forwarded");
    }
}

/// C13: asset paths stay inside the embedded assets whatever the spelling.
#[tokio::test]
async fn c13_asset_paths_cannot_leave_the_assets() {
    let (app, _up) = setup().await;
    let paths = [
        "/ui/static/../../Cargo.toml",
        "/ui/static/..%2F..%2FCargo.toml",
        "/ui/static/%2e%2e%2f%2e%2e%2fCargo.toml",
        "/ui/static/..%5c..%5cCargo.toml",
        "/ui/static/%2e%2e/%2e%2e/etc/passwd",
        "/ui/static/....//....//etc/passwd",
        "/ui/static//etc/passwd",
        "/ui/static/%2Fetc%2Fpasswd",
        "/ui/static/C:%5cWindows%5cwin.ini",
    ];
    for path in paths {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let answer = raw(&app, req.as_bytes(), Duration::from_secs(5)).await;
        let s = status_of(&answer);
        assert!(s == 404 || s == 400, "{path}: {answer}");
        assert!(
            !answer.contains("[package]")
                && !answer.contains("[workspace]")
                && !answer.contains("root:"),
            "{path}: {answer}"
        );
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// D. Secret hygiene

const CREDS_IN_URL: &str = r#"
model_list:
  - model_name: creds-in-url
    litellm_params: {model: openai/creds-in-url, api_base: "http://tguser:CANARYpass1234@127.0.0.1:9/v1?key=AIzaCANARYkey5678", api_key: sk-provider-secret-123456}
router_settings: {num_retries: 0}
general_settings: {master_key: "{master_key}"}
"#;

fn assert_no_url_credentials(text: &str) {
    assert!(
        !text.contains("CANARYpass") && !text.contains("CANARYkey"),
        "{text}"
    );
}

/// D3: credentials inside a deployment's URL (user info, a `?key=` query) never show in error
/// bodies, spend records or metrics.
#[tokio::test]
async fn d3_credentials_in_upstream_urls_stay_out_of_errors_records_and_metrics() {
    let app = spawn_app(CREDS_IN_URL).await;
    for stream in [false, true] {
        let mut body = chat_body("creds-in-url");
        body["stream"] = json!(stream);
        let r = app.post("/v1/chat/completions", &body).await;
        assert!(r.status().as_u16() >= 400, "port 9 answers nothing");
        assert_no_url_credentials(&r.text().await.unwrap());
    }
    let metrics = app.client().get(app.url("/metrics")).send().await.unwrap();
    assert_no_url_credentials(&metrics.text().await.unwrap());
    assert_eq!(app.wait_for_spend_logs(2).await, 2);
    for rec in app.store.recent_spend_logs(10).await.unwrap() {
        assert_no_url_credentials(&format!("{rec:?}"));
    }
    app.stop().await;
}

/// D3: `/model/info` shows admins (and view-only admins) a deployment's host, but not the
/// credentials in its URL.
#[tokio::test]
async fn d3_model_info_hides_credentials_in_api_base() {
    let app = spawn_app(CREDS_IN_URL).await;
    let (_, viewer_token) =
        user_with_login(&app, "d3-viewer@example.com", "proxy_admin_viewer").await;
    let mut answers = Vec::new();
    for bearer in [app.master_key.clone(), viewer_token] {
        for path in ["/model/info", "/v1/model/info", "/v2/model/info"] {
            answers.push(app.api(&bearer, "GET", path, json!({})).await);
        }
    }
    app.stop().await;
    for (s, info) in answers {
        assert_eq!(s, 200, "{info}");
        assert_no_url_credentials(&info.to_string());
        let base = info["data"][0]["litellm_params"]["api_base"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(base, "http://***@127.0.0.1:9/v1?key=***", "{info}");
    }
}

// ---------------------------------------------------------------------------------------------
// E. Upstream faults

/// E1: an upstream that never sends its headers is given up on at the deployment's timeout
/// (408, LiteLLM's status), and the call is recorded as a failure without cost.
#[tokio::test]
async fn e1_an_upstream_that_never_answers_times_out() {
    let (app, up) = setup().await;
    up.set("slow", Behavior::Delay(Duration::from_secs(30)));
    let start = Instant::now();
    let r = app.post("/v1/chat/completions", &chat_body("slow")).await;
    let elapsed = start.elapsed();
    let id = r.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(r.status(), 408);
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Failure);
    assert_eq!(rec.spend_nanos, 0);
    app.stop().await;
}

/// An OpenAI-style upstream that sends one chunk and then nothing, holding the stream open.
async fn stalling_upstream() -> String {
    async fn chat() -> axum::response::Response {
        let first = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial answer \"},\"finish_reason\":null}]}\n\n";
        let s = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(axum::body::Bytes::from(
            first,
        ))])
        .chain(futures_util::stream::pending());
        let mut r = axum::response::Response::new(axum::body::Body::from_stream(s));
        r.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        r
    }
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(chat));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// E2: an upstream that stalls mid-stream for longer than the timeout ends the client's stream
/// with an error event (no fake stop), and the partial call is recorded once, as a failure.
#[tokio::test]
async fn e2_a_stream_stalled_mid_way_ends_with_an_error_event() {
    let base = stalling_upstream().await;
    let cfg = format!(
        r#"
model_list:
  - model_name: stall
    litellm_params: {{model: openai/stall, api_base: "{base}/v1", api_key: sk-provider-secret-123456, timeout: 1, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
general_settings: {{master_key: "{{master_key}}"}}
"#
    );
    let app = spawn_app(&cfg).await;
    let mut body = chat_body("stall");
    body["stream"] = json!(true);
    let start = Instant::now();
    let r = app.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = tokio::time::timeout(Duration::from_secs(10), r.text())
        .await
        .expect("the stream ends")
        .unwrap_or_default();
    assert!(start.elapsed() < Duration::from_secs(6));
    assert!(text.contains("partial answer"), "{text}");
    let last = text.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("data: {\"error\""), "{text}");
    assert!(!text.contains("\"finish_reason\":\"stop\""));
    app.wait_for_spend_logs(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.store.count_spend_logs().await.unwrap(), 1);
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Failure);
    assert!(rec.completion_tokens > 0, "the partial text is billed");
    app.stop().await;
}

/// E6: an error event inside a 200 stream reaches the client as an error event with the
/// upstream's code: not swallowed, not turned into a 503 or an empty success.
#[tokio::test]
async fn e6_an_in_band_upstream_error_reaches_the_client() {
    let (app, up) = setup().await;
    up.set(
        "gpt-a",
        Behavior::RawStream {
            events: vec![
                "data: {\"error\":{\"message\":\"upstream says no\",\"type\":\"invalid_request_error\",\"code\":400}}\n\n".to_string(),
                "data: [DONE]\n\n".to_string(),
            ],
            reset: false,
        },
    );
    let mut body = chat_body("gpt-a");
    body["stream"] = json!(true);
    let r = app.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = r.text().await.unwrap();
    let error_line = text
        .lines()
        .find(|l| l.starts_with("data: {\"error\""))
        .unwrap_or_else(|| panic!("an error event: {text}"));
    let v: Value = serde_json::from_str(error_line.trim_start_matches("data: ")).unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("upstream says no"));
    assert!(
        v["error"]["code"] == 400 || v["error"]["code"] == "400",
        "{v}"
    );
    assert!(!text.contains("\"finish_reason\":\"stop\""), "{text}");
    app.wait_for_spend_logs(1).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Failure, "recorded as an error");
    app.stop().await;
}

/// E12: an event past the size bound (one 5 MB line) fails the stream with an error event, and
/// CRLF line ends are read like LF.
#[tokio::test]
async fn e12_an_endless_line_fails_the_stream_and_crlf_reads_like_lf() {
    let (app, up) = setup().await;
    let chunk = |text: &str, end: &str| {
        format!(
            "data: {}{end}{end}",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-a",
                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        )
    };
    let mut body = chat_body("gpt-a");
    body["stream"] = json!(true);
    up.set(
        "gpt-a",
        Behavior::RawStream {
            events: vec![
                chunk("first part ", "\n"),
                format!("data: {{\"x\":\"{}", "a".repeat(5 * 1024 * 1024)),
            ],
            reset: false,
        },
    );
    let r = app.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.len() < 64 * 1024, "the long line was not passed on");
    let last = text.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("data: {\"error\""), "{text}");
    up.set(
        "gpt-a",
        Behavior::RawStream {
            events: vec![
                chunk("crlf ", "\r\n"),
                chunk("lines", "\r\n"),
                "data: [DONE]\r\n\r\n".to_string(),
            ],
            reset: false,
        },
    );
    let r = app.post("/v1/chat/completions", &body).await;
    let id = r.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = r.text().await.unwrap();
    assert!(text.contains("crlf ") && text.contains("lines"), "{text}");
    assert!(!text.contains("\"error\""), "{text}");
    app.wait_for_spend_logs(2).await;
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, SpendStatus::Success);
    assert!(rec.completion_tokens > 0);
    app.stop().await;
}

/// E11: a client that leaves during a non-streaming call leaves exactly one spend record.
#[tokio::test]
async fn e11_a_client_gone_during_a_plain_call_is_recorded_once() {
    let (app, up) = setup().await;
    up.set("gpt-a", Behavior::Delay(Duration::from_millis(1500)));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = impatient
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.master_key)
        .json(&chat_body("gpt-a"))
        .send()
        .await;
    assert!(r.is_err(), "the client gave up");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(up.requests(), 1);
    assert_eq!(app.wait_for_spend_logs(1).await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recent = app.store.recent_spend_logs(5).await.unwrap();
    assert_eq!(recent.len(), 1, "exactly one record");
    let rec = &recent[0];
    assert!(
        rec.status == SpendStatus::Success
            || rec.error_type.as_deref() == Some("client_disconnected"),
        "{:?} {:?}",
        rec.status,
        rec.error_type
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// F. Storage faults

/// Forwards every connection on `listener` to `target` (a database that "comes back").
fn forward_to(listener: TcpListener, target: String) {
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut server) = TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
}

/// Asserts the gateway is up but unready: liveness 200, readiness 503 with a reason that
/// names no password, management and inference routes 503 in the error envelope.
async fn assert_up_but_unready(app: &TestApp, password: &str) {
    let c = app.client();
    let live = c.get(app.url("/health/liveliness")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = c.get(app.url("/health/readiness")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["db"], "disconnected", "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("database unreachable"), "{body}");
    assert!(!body.to_string().contains(password), "{body}");
    for (path, bearer) in [
        ("/v1/chat/completions", "sk-unknown-key-123456789"),
        ("/v1/chat/completions", app.master_key.as_str()),
        ("/key/generate", app.master_key.as_str()),
        ("/user/new", app.master_key.as_str()),
    ] {
        let r = c
            .post(app.url(path))
            .bearer_auth(bearer)
            .json(&chat_body("gpt-a"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "no_db_connection", "{path}: {v}");
        assert_eq!(v["error"]["code"], "503", "{path}: {v}");
    }
    let (s, v) = admin(app, "GET", "/key/list", json!({})).await;
    assert_eq!(s, 503, "{v}");
    let ui = c.get(app.url("/ui/login")).send().await.unwrap();
    assert_eq!(ui.status(), 503);
}

/// F1: with its database unreachable at start, the gateway starts, answers liveness with 200,
/// readiness with 503 and why, and everything else with 503; it keeps trying, and when the
/// database comes it migrates it and serves (a key made, a call answered and recorded).
#[tokio::test]
async fn f1_an_unreachable_database_at_start_leaves_the_gateway_up_but_unready() {
    let up = FakeUpstream::start().await;
    let started = tokio::time::timeout(
        Duration::from_secs(60),
        spawn_app_with(
            &config(&up, ""),
            Some("postgres://tollgate:CANARYdbpass@127.0.0.1:1/tollgate".to_string()),
            &|_| None,
        ),
    )
    .await
    .expect("the start returns");
    let app = started.expect("the gateway starts without its database");
    assert_up_but_unready(&app, "CANARYdbpass").await;
    app.stop().await;

    // The database comes later: its port refuses connections at start, then forwards to a
    // real, empty PostgreSQL database.
    let Some(db) = tollgate_testkit::services::TestDatabase::create().await else {
        return;
    };
    let real = url::Url::parse(&db.url).unwrap();
    let target = format!(
        "{}:{}",
        real.host_str().unwrap(),
        real.port().unwrap_or(5432)
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut later = real.clone();
    later.set_host(Some("127.0.0.1")).unwrap();
    later.set_port(Some(port)).unwrap();
    let app = spawn_app_with(&config(&up, ""), Some(later.to_string()), &|_| None)
        .await
        .expect("the gateway starts without its database");
    assert_up_but_unready(&app, real.password().unwrap_or("no password set")).await;
    forward_to(
        TcpListener::bind(("127.0.0.1", port)).await.unwrap(),
        target,
    );
    let c = app.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = c.get(app.url("/health/readiness")).send().await.unwrap();
        if r.status() == 200 {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["db"], "connected", "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        app.store.schema_version().await.unwrap(),
        Some(tollgate_store::SCHEMA_VERSION)
    );
    let key = key_for(&app, &app.master_key, json!({"key_alias": "f1"})).await;
    let r = chat_with(&app, &key, &chat_body("gpt-a")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.wait_for_spend_logs(1).await, 1);
    let r = chat_with(&app, "sk-unknown-key-123456789", &chat_body("gpt-a")).await;
    assert_eq!(r.status(), 401);
    app.stop().await;
    db.drop_db().await;
}

// ---------------------------------------------------------------------------------------------
// G. Concurrency, budgets, limits

/// G3: calls that fail upstream or whose client leaves release what they reserved: afterwards
/// the key's budget still admits a full-size call.
#[tokio::test]
async fn g3_failed_and_abandoned_calls_release_their_reservations() {
    let (app, up) = setup().await;
    // One call with max_tokens 1000 reserves about $0.002 (+ its prompt); two don't fit.
    let key = key_for(&app, &app.master_key, json!({"max_budget": 0.003})).await;
    let mut body = chat_body("gpt-a");
    body["max_tokens"] = json!(1000);
    up.set("gpt-a", Behavior::Status(500, None));
    for _ in 0..30 {
        let r = chat_with(&app, &key, &body).await;
        assert_eq!(r.status(), 500);
    }
    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    for _ in 0..10 {
        let r = chat_with(&app, &key, &stream_body).await;
        assert_ne!(r.status(), 200);
    }
    up.set("gpt-a", Behavior::Delay(Duration::from_millis(800)));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    for _ in 0..3 {
        let r = impatient
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await;
        assert!(r.is_err());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    up.set("gpt-a", Behavior::Answer);
    let r = chat_with(&app, &key, &body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        up.last().body["max_tokens"],
        1000,
        "the whole budget was free again: nothing reserved was kept"
    );
    app.stop().await;
}

/// Calls `n` chats at once with `key`; returns how many were refused as over budget.
async fn concurrent_budget_refusals(app: &TestApp, key: &str, body: &Value, n: usize) -> usize {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let c = app.client();
        let url = app.url("/v1/chat/completions");
        let (key, body) = (key.to_string(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v)
        }));
    }
    let mut refused = 0;
    for t in tasks {
        let (status, v) = t.await.unwrap();
        if v["error"]["type"] == "budget_exceeded" {
            refused += 1;
        } else {
            assert_eq!(status, 200, "{v}");
        }
    }
    refused
}

/// A user at half of a $1 budget, with a key: (app, upstream, key).
async fn half_spent_user() -> (TestApp, FakeUpstream, String) {
    let (app, up) = setup().await;
    let user = new_user(&app, "g4@example.com", "internal_user").await;
    let (s, v) = admin(
        &app,
        "POST",
        "/user/update",
        json!({"user_id": user, "max_budget": 1.0, "spend": 0.5}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let key = key_for(&app, &app.master_key, json!({"user_id": user})).await;
    (app, up, key)
}

/// G4: at half its budget, a user's key under 200 concurrent calls that say how much they may
/// produce is never refused as over budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_half_a_budget_is_not_refused_under_200_concurrent_calls() {
    let (app, _up, key) = half_spent_user().await;
    let mut body = chat_body("gpt-a");
    body["max_tokens"] = json!(256);
    let refused = concurrent_budget_refusals(&app, &key, &body, 200).await;
    assert_eq!(refused, 0);
    app.stop().await;
}

/// G4: the same without `max_tokens`, on a model whose output limit is unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_half_a_budget_is_not_refused_when_calls_leave_max_tokens_unset() {
    let (app, _up, key) = half_spent_user().await;
    let refused = concurrent_budget_refusals(&app, &key, &chat_body("gpt-a"), 200).await;
    app.stop().await;
    assert_eq!(refused, 0);
}

/// G6: a team's budget caps its team keys, and each call's spend lands on the key, its user
/// and its team.
#[tokio::test]
async fn g6_a_team_budget_caps_its_keys_and_spend_reaches_every_level() {
    let (app, up) = setup().await;
    let user = new_user(&app, "g6@example.com", "internal_user").await;
    // One call costs 12 × $0.000001 + 6 × $0.000002 = $0.000024.
    let (s, team) = admin(
        &app,
        "POST",
        "/team/new",
        json!({"team_alias": "g6", "max_budget": 0.00006,
               "members_with_roles": [{"user_id": user, "role": "user"}]}),
    )
    .await;
    assert_eq!(s, 200, "{team}");
    let team_id = team["team_id"].as_str().unwrap().to_string();
    let key = key_for(
        &app,
        &app.master_key,
        json!({"team_id": team_id, "user_id": user}),
    )
    .await;
    let mut body = chat_body("gpt-a");
    body["max_tokens"] = json!(6);
    let mut ok = 0;
    let refusal = loop {
        let r = chat_with(&app, &key, &body).await;
        if r.status() != 200 {
            break r;
        }
        ok += 1;
        assert!(ok < 10, "the team's budget never applied");
        // Let the spend writer settle each call into the budgets before the next one.
        app.wait_for_spend_logs(ok).await;
    };
    assert!(ok >= 1);
    assert_eq!(refusal.status(), 422);
    let v: Value = refusal.json().await.unwrap();
    assert_eq!(v["error"]["type"], "budget_exceeded", "{v}");
    assert_eq!(up.requests(), ok as usize);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spend = |path: String, field: &'static str| {
        let app = &app;
        async move {
            let (s, v) = admin(app, "GET", &path, json!({})).await;
            assert_eq!(s, 200, "{v}");
            v.pointer(field).and_then(Value::as_f64).unwrap_or(0.0)
        }
    };
    let expected = ok as f64 * 0.000024;
    for (path, field) in [
        (format!("/key/info?key={key}"), "/info/spend"),
        (format!("/user/info?user_id={user}"), "/user_info/spend"),
        (format!("/team/info?team_id={team_id}"), "/team_info/spend"),
    ] {
        let got = spend(path.clone(), field).await;
        assert!((got - expected).abs() < 1e-9, "{path}: {got} vs {expected}");
    }
    app.stop().await;
}

/// G7: a per-key rpm limit holds across two instances sharing one database and one Redis
/// (without Redis each instance counts for itself, as the README says).
#[tokio::test]
async fn g7_an_rpm_limit_holds_across_two_instances() {
    let Some(redis) = tollgate_testkit::services::TestRedis::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("shared.db").display());
    let vars = [
        ("REDIS_URL", redis.url.as_str()),
        ("TOLLGATE_REDIS_PREFIX", redis.prefix.as_str()),
    ];
    let one = tollgate_testkit::spawn_app_on(&config(&up, ""), &url, &vars).await;
    let two = tollgate_testkit::spawn_app_on(&config(&up, ""), &url, &vars).await;
    let key = key_for(&one, &one.master_key, json!({"rpm_limit": 2})).await;
    // All four calls in one wall-clock minute.
    if chrono::Utc::now().timestamp() % 60 > 55 {
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    }
    let mut ok = 0;
    for app in [&one, &two, &one, &two] {
        if chat_with(app, &key, &chat_body("gpt-a")).await.status() == 200 {
            ok += 1;
        }
    }
    one.stop().await;
    two.stop().await;
    redis.cleanup().await;
    assert_eq!(ok, 2, "{ok} calls admitted under rpm_limit 2");
}

async fn create_with_key(
    app: &TestApp,
    bearer: &str,
    path: &str,
    idempotency_key: &str,
    body: &Value,
) -> (StatusCode, Option<String>, Value) {
    let r = app
        .client()
        .post(app.url(path))
        .bearer_auth(bearer)
        .header("idempotency-key", idempotency_key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_string());
    (status, replayed, r.json().await.unwrap_or(Value::Null))
}

async fn team_count(app: &TestApp) -> usize {
    let (s, v) = admin(app, "GET", "/team/list", json!({})).await;
    assert_eq!(s, 200, "{v}");
    v.as_array().unwrap().len()
}

/// Every text of the idempotency table, to look for secrets in it.
async fn idempotency_rows(app: &TestApp) -> String {
    let sql = "SELECT scope || ' ' || route || ' ' || key_hash || ' ' || request_hash || ' ' || \
               COALESCE(response, '') FROM idempotency_keys";
    let rows: Vec<String> = match app.store.backend() {
        tollgate_store::Backend::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await,
        tollgate_store::Backend::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await,
    }
    .unwrap();
    rows.join("\n")
}

/// G9: a retried create with the same `Idempotency-Key` (on `/key/generate`, `/user/new`,
/// `/team/new` and `/invitation/new`) gets the first answer again, marked
/// `idempotent-replayed`, and creates nothing more. The store never holds the answers' secrets
/// (the new key, the invitation id) in clear.
#[tokio::test]
async fn g9_a_retried_create_with_an_idempotency_key_creates_once() {
    let (app, _up) = setup().await;
    let m = app.master_key.clone();
    let (keys, users, teams) = (
        key_count(&app).await,
        user_count(&app).await,
        team_count(&app).await,
    );
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (s, replayed, v) = create_with_key(
            &app,
            &m,
            "/key/generate",
            "g9-5f0c1d2e-retry",
            &json!({"key_alias": "g9"}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        answers.push((replayed, v));
    }
    assert_eq!(key_count(&app).await, keys + 1, "one key");
    assert_eq!(answers[0].0, None, "the first answer is no replay");
    for (replayed, v) in &answers[1..] {
        assert_eq!(replayed.as_deref(), Some("true"));
        assert_eq!(v, &answers[0].1, "the same key every time");
    }
    let key = answers[0].1["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-"));
    // The replayed key works.
    let r = chat_with(&app, &key, &chat_body("gpt-a")).await;
    assert_eq!(r.status(), 200);

    // /user/new: a second create would be refused as a duplicate email; the retry is answered.
    let body = json!({"user_email": "g9@example.com", "user_role": "internal_user"});
    let (s, _, first) = create_with_key(&app, &m, "/user/new", "g9-user", &body).await;
    assert_eq!(s, 200, "{first}");
    let (s, replayed, again) = create_with_key(&app, &m, "/user/new", "g9-user", &body).await;
    assert_eq!(
        (s, replayed.as_deref()),
        (StatusCode::OK, Some("true")),
        "{again}"
    );
    assert_eq!(again, first);
    assert_eq!(user_count(&app).await, users + 1);
    let user_id = first["user_id"].as_str().unwrap().to_string();
    let user_key = first["key"].as_str().unwrap_or("sk-none-made").to_string();

    // /team/new would make a second team of the same alias.
    for _ in 0..2 {
        let (s, _, v) = create_with_key(
            &app,
            &m,
            "/team/new",
            "g9-team",
            &json!({"team_alias": "g9"}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    assert_eq!(team_count(&app).await, teams + 1);

    // /invitation/new would make a second invitation with another id.
    let body = json!({"user_id": user_id});
    let (s, _, invite) = create_with_key(&app, &m, "/invitation/new", "g9-invite", &body).await;
    assert_eq!(s, 200, "{invite}");
    let (s, replayed, again) =
        create_with_key(&app, &m, "/invitation/new", "g9-invite", &body).await;
    assert_eq!(
        (s, replayed.as_deref()),
        (StatusCode::OK, Some("true")),
        "{again}"
    );
    assert_eq!(again["id"], invite["id"]);
    let invitation_id = invite["id"].as_str().unwrap().to_string();

    let stored = idempotency_rows(&app).await;
    app.stop().await;
    assert_eq!(stored.lines().count(), 4, "{stored}");
    for secret in [&key, &user_key, &invitation_id, &m] {
        assert!(!stored.contains(secret.as_str()), "{secret} in {stored}");
    }
    assert!(
        !stored.contains("g9-5f0c1d2e-retry"),
        "keys are stored hashed: {stored}"
    );
}

/// G9: the same key with another body is refused (422) and creates nothing; keys over 255
/// characters are refused (400); a key is per caller (another user's same key creates their
/// own); and the same user retrying with another credential gets 409, since the first answer
/// is sealed for the credential that made it, and still nothing is created twice.
#[tokio::test]
async fn g9_idempotency_keys_are_per_request_and_per_caller() {
    let (app, _up) = setup().await;
    let m = app.master_key.clone();
    let keys = key_count(&app).await;
    let (s, _, first) = create_with_key(
        &app,
        &m,
        "/key/generate",
        "g9-body",
        &json!({"key_alias": "one"}),
    )
    .await;
    assert_eq!(s, 200, "{first}");
    // The same body with its fields in another order and other spacing is the same request.
    let (s, replayed, _) = create_with_key(
        &app,
        &m,
        "/key/generate",
        "g9-body",
        &json!({ "key_alias" : "one" }),
    )
    .await;
    assert_eq!((s, replayed.as_deref()), (StatusCode::OK, Some("true")));
    let (s, _, v) = create_with_key(
        &app,
        &m,
        "/key/generate",
        "g9-body",
        &json!({"key_alias": "two"}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["type"], "idempotency_key_mismatch", "{v}");
    assert_eq!(v["error"]["param"], "Idempotency-Key", "{v}");
    // The same key on another route is another key.
    let (s, replayed, v) = create_with_key(
        &app,
        &m,
        "/team/new",
        "g9-body",
        &json!({"team_alias": "g9b"}),
    )
    .await;
    assert_eq!((s, replayed), (StatusCode::OK, None), "{v}");
    for long in ["k".repeat(256), "é".repeat(200)] {
        let r = app
            .client()
            .post(app.url("/key/generate"))
            .bearer_auth(&m)
            .header("idempotency-key", long.as_bytes())
            .json(&json!({"key_alias": "long"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], "Idempotency-Key", "{v}");
    }
    let (s, _, _) = create_with_key(
        &app,
        &m,
        "/key/generate",
        &"k".repeat(255),
        &json!({"key_alias": "longest"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(key_count(&app).await, keys + 2, "one + longest");

    // Two users, the same key value: each gets their own create.
    let (alice, alice_token) = user_with_login(&app, "g9-alice@example.com", "internal_user").await;
    let (bob, bob_token) = user_with_login(&app, "g9-bob@example.com", "internal_user").await;
    let (s, _, a) = create_with_key(
        &app,
        &alice_token,
        "/key/generate",
        "shared",
        &json!({"key_alias": "k"}),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    let (s, replayed, b) = create_with_key(
        &app,
        &bob_token,
        "/key/generate",
        "shared",
        &json!({"key_alias": "k"}),
    )
    .await;
    assert_eq!((s, replayed), (StatusCode::OK, None), "{b}");
    assert_ne!(a["key"], b["key"]);
    assert_eq!(b["user_id"].as_str(), Some(bob.as_str()));
    // Alice again, with her new key instead of her login token: refused, nothing created.
    let before = key_count(&app).await;
    let alice_key = a["key"].as_str().unwrap().to_string();
    let (s, _, v) = create_with_key(
        &app,
        &alice_key,
        "/key/generate",
        "shared",
        &json!({"key_alias": "k"}),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["type"], "idempotency_key_in_use", "{v}");
    assert!(!v.to_string().contains("sk-"), "{v}");
    assert_eq!(key_count(&app).await, before);
    // With the login token that made it, the answer is replayed.
    let (s, replayed, again) = create_with_key(
        &app,
        &alice_token,
        "/key/generate",
        "shared",
        &json!({"key_alias": "k"}),
    )
    .await;
    assert_eq!((s, replayed.as_deref()), (StatusCode::OK, Some("true")));
    assert_eq!(again, a);
    assert_eq!(a["user_id"].as_str(), Some(alice.as_str()));
    app.stop().await;
}

/// G9: concurrent retries of one create make one object: every answer is the first one's, or a
/// 409 `idempotency_key_in_use` while it runs; and a retry that reaches another instance on the
/// same database is answered from the store.
#[tokio::test]
async fn g9_concurrent_and_cross_instance_retries_create_once() {
    let up = FakeUpstream::start().await;
    let pg = if std::env::var("TOLLGATE_TEST_POSTGRES_URL").is_ok() {
        tollgate_testkit::services::TestDatabase::create().await
    } else {
        None
    };
    let dir = tempfile::tempdir().unwrap();
    let url = pg
        .as_ref()
        .map(|d| d.url.clone())
        .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("shared.db").display()));
    let one = tollgate_testkit::spawn_app_on(&config(&up, ""), &url, &[]).await;
    let two = tollgate_testkit::spawn_app_on(&config(&up, ""), &url, &[]).await;
    let keys = key_count(&one).await;
    let body = json!({"key_alias": "g9-race"});
    let mut tasks = Vec::new();
    for i in 0..12 {
        let app = if i % 2 == 0 {
            one.base_url.clone()
        } else {
            two.base_url.clone()
        };
        let (master, body) = (one.master_key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(format!("{app}/key/generate"))
                .bearer_auth(master)
                .header("idempotency-key", "g9-race")
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap())
        }));
    }
    let mut made = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        match s.as_u16() {
            200 => made.push(v["key"].as_str().unwrap().to_string()),
            409 => assert_eq!(v["error"]["type"], "idempotency_key_in_use", "{v}"),
            _ => panic!("{s} {v}"),
        }
    }
    assert!(!made.is_empty());
    assert!(made.iter().all(|k| k == &made[0]), "{made:?}");
    // Settled: each instance replays the same key.
    for app in [&one, &two] {
        let (s, replayed, v) =
            create_with_key(app, &app.master_key, "/key/generate", "g9-race", &body).await;
        assert_eq!(
            (s, replayed.as_deref()),
            (StatusCode::OK, Some("true")),
            "{v}"
        );
        assert_eq!(v["key"].as_str(), Some(made[0].as_str()));
    }
    assert_eq!(key_count(&two).await, keys + 1);
    one.stop().await;
    two.stop().await;
    if let Some(db) = pg {
        db.drop_db().await;
    }
}

/// G10: a call that failed on its model and succeeded on the fallback is recorded once, at the
/// fallback's price, with both attempts counted.
#[tokio::test]
async fn g10_a_fallback_is_billed_once_at_the_model_that_answered() {
    let (app, up) = setup().await;
    up.set("flaky", Behavior::Status(500, None));
    let r = app.post("/v1/chat/completions", &chat_body("flaky")).await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    app.wait_for_spend_logs(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.store.count_spend_logs().await.unwrap(),
        1,
        "billed once"
    );
    let rec = app.store.get_spend_log(&id).await.unwrap().unwrap();
    assert_eq!(rec.model, "backup");
    assert_eq!(rec.attempts, 2);
    // 12 prompt tokens at $0.000002 and 6 completion tokens at $0.000004 (backup's prices).
    assert_eq!(rec.spend_nanos, 48_000);
    app.stop().await;
}
