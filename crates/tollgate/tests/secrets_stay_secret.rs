//! Security case D1, the canary sweep: the real binary runs at debug log level with recognisable
//! secrets (master key, provider key, virtual keys, an unknown presented key, the SSO client
//! secret and authorization codes) and is driven through every success and failure path. Then
//! its logs, every error body, `/metrics`, the management API's JSON, the UI pages and every row
//! of every table are searched: no plaintext secret may appear anywhere, and a virtual key's
//! SHA-256 only where it is the key's identifier.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use sqlx::{Connection, Row};
use tollgate_domain::secret::sha256_hex;
use tollgate_testkit::oidc::{IdpUser, Misbehave, OidcProvider};
use tollgate_testkit::process::Gateway;
use tollgate_testkit::{Behavior, FakeUpstream};

fn canary(kind: &str) -> String {
    format!("sk-CANARY{kind}-{}", uuid::Uuid::new_v4().simple())
}

/// Everything the gateway said, by where it was said.
#[derive(Default)]
struct Evidence {
    /// Log output and client-facing bodies and headers: no secret and no key hash at all.
    public: Vec<(String, String)>,
    /// Of those, the error bodies (the master key's hash must not be there either).
    errors: Vec<(String, String)>,
    /// Management API JSON: a key's hash only in a `token`, `api_key` or `object_id` field.
    api: Vec<(String, Value)>,
    /// Admin UI pages: they name keys by their hash (links, audit entries), never the key.
    ui: Vec<(String, String)>,
    /// Database cells as text, by (table, column).
    db: Vec<(String, String, String)>,
}

struct Client<'a> {
    http: reqwest::Client,
    base: &'a str,
    ev: Evidence,
}

impl Client<'_> {
    /// Sends a request and keeps what came back: headers always, the body as an error body
    /// when the status is not 2xx.
    async fn send(&mut self, label: &str, req: reqwest::RequestBuilder) -> (u16, String) {
        let (status, headers, body) = Self::send_raw(req).await;
        self.ev
            .public
            .push((format!("response headers of {label}"), headers));
        self.ev
            .public
            .push((format!("response body of {label} ({status})"), body.clone()));
        if !(200..300).contains(&status) || body.contains("\"error\"") {
            self.ev
                .errors
                .push((format!("error body of {label} ({status})"), body.clone()));
        }
        (status, body)
    }

    /// Sends a request without keeping its answer (for answers that show a new key once).
    async fn send_raw(req: reqwest::RequestBuilder) -> (u16, String, String) {
        let resp = req.send().await.expect("request reaches tollgate");
        let status = resp.status().as_u16();
        let headers = format!("{:?}", resp.headers());
        // A broken stream still yields what arrived before the break.
        let mut body = Vec::new();
        let mut s = resp.bytes_stream();
        while let Some(chunk) = s.next().await {
            match chunk {
                Ok(c) => body.extend_from_slice(&c),
                Err(_) => break,
            }
        }
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    async fn post(&mut self, label: &str, key: &str, path: &str, body: Value) -> (u16, String) {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body);
        self.send(label, req).await
    }

    async fn chat(&mut self, label: &str, key: &str, model: &str, stream: bool) -> u16 {
        let mut body = json!({"model": model, "max_tokens": 5,
            "messages": [{"role": "user", "content": "Say hello"}]});
        if stream {
            body["stream"] = json!(true);
        }
        self.post(label, key, "/v1/chat/completions", body).await.0
    }

    /// A management call that must succeed; its JSON answer (not kept: it may show a new key).
    async fn admin(&mut self, master: &str, path: &str, body: Value) -> Value {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(master)
            .json(&body);
        let (s, _, b) = Self::send_raw(req).await;
        assert_eq!(s, 200, "{path}: {b}");
        serde_json::from_str(&b).expect("JSON answer")
    }

    async fn new_key(&mut self, master: &str, body: Value) -> String {
        let v = self.admin(master, "/key/generate", body).await;
        v["key"].as_str().expect("a key").to_string()
    }

    /// A GET whose JSON answer joins the API evidence.
    async fn collect(&mut self, master: &str, path: &str) -> Value {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(master);
        let (s, headers, b) = Self::send_raw(req).await;
        assert_eq!(s, 200, "{path}: {b}");
        self.ev
            .public
            .push((format!("response headers of {path}"), headers));
        let v: Value = serde_json::from_str(&b).expect("JSON answer");
        self.ev.api.push((path.to_string(), v.clone()));
        v
    }
}

/// A provider that quotes the key it was sent in its errors, as some do: in a 401, at the end
/// of a long message (where a cut at the length limit would keep part of it), and in an error
/// event inside a 200 stream.
async fn echoing_upstream() -> String {
    async fn chat(
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let key = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_start_matches("Bearer ").to_string())
            .unwrap_or_default();
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let err = |status: u16, message: String| {
            (
                axum::http::StatusCode::from_u16(status).expect("status"),
                axum::Json(json!({"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}})),
            )
                .into_response()
        };
        match req["model"].as_str().unwrap_or("") {
            "echo401" => err(401, format!("Incorrect API key provided: {key}.")),
            // A cut at 1,000 characters would keep all of the key but its last 4 characters.
            "echolong" => err(400, format!("{} {key}", "x".repeat(1003 - key.len() - 1))),
            _ => {
                let sse = format!(
                    "data: {}\n\ndata: [DONE]\n\n",
                    json!({"error": {"message": format!("Invalid key {key}"), "code": 401}})
                );
                ([("content-type", "text/event-stream")], sse).into_response()
            }
        }
    }
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(chat));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the echoing upstream");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn config(up: &FakeUpstream, echo: &str, master: &str, provider: &str) -> String {
    let dep = |name: &str| {
        format!(
            "  - model_name: {name}\n    litellm_params: {{model: openai/{name}, api_base: \"{base}/v1\", api_key: \"{provider}\", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}\n",
            base = up.base_url
        )
    };
    let mut models: String = [
        "good", "other", "fail400", "fail401", "fail500", "fail429", "reset",
    ]
    .iter()
    .map(|m| dep(m))
    .collect();
    for name in ["echo401", "echolong", "echostream"] {
        models.push_str(&format!(
            "  - model_name: {name}\n    litellm_params: {{model: openai/{name}, api_base: \"{echo}/v1\", api_key: \"{provider}\"}}\n"
        ));
    }
    format!(
        "model_list:\n{models}router_settings: {{num_retries: 0}}\ngeneral_settings: {{master_key: \"{master}\"}}\n"
    )
}

/// Vertex AI deployments on the fake's token endpoint: one whose key it trusts, one it refuses.
fn vertex_models(
    up: &FakeUpstream,
    good: &tollgate_testkit::upstream::ServiceAccountFile,
    bad: &tollgate_testkit::upstream::ServiceAccountFile,
) -> String {
    let dep = |name: &str, key: &tollgate_testkit::upstream::ServiceAccountFile| {
        format!(
            "  - model_name: {name}\n    litellm_params: {{model: vertex_ai/gemini-2.5-flash, vertex_credentials: \"{}\", api_base: \"{}\"}}\n",
            key.path.display(),
            up.base_url
        )
    };
    format!("model_list:\n{}{}", dep("vgood", good), dep("vbadkey", bad))
}

/// Signs in through the test provider (start, provider, callback) and keeps every answer;
/// returns the authorization code.
async fn sso_trip(c: &mut Client<'_>, label: &str, succeeds: bool) -> String {
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let location = |r: &reqwest::Response| {
        r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("a redirect")
            .to_string()
    };
    let start = plain
        .get(format!("{}/sso/key/generate", c.base))
        .send()
        .await
        .expect("start");
    let pending = start
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the pending sign-in cookie")
        .to_string();
    let to_idp = location(&start);
    let back = plain.get(&to_idp).send().await.expect("provider");
    let callback = location(&back);
    let code = url::Url::parse(&callback)
        .expect("callback URL")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .expect("a code");
    let req = plain.get(&callback).header("cookie", pending);
    let (status, _) = c.send(label, req).await;
    assert_eq!(status == 303, succeeds, "{label}: {status}");
    code
}

async fn dump_db(path: &Path) -> Vec<(String, String, String)> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}?mode=ro", path.display()))
        .await
        .expect("open the database");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .expect("list tables");
    let mut out = Vec::new();
    for t in tables {
        let cols: Vec<String> = sqlx::query(&format!("PRAGMA table_info(\"{t}\")"))
            .fetch_all(&mut conn)
            .await
            .expect("table columns")
            .iter()
            .map(|r| r.get::<String, _>("name"))
            .collect();
        let select = cols
            .iter()
            .map(|c| format!("CAST(\"{c}\" AS TEXT)"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!("SELECT {select} FROM \"{t}\""))
            .fetch_all(&mut conn)
            .await
            .expect("table rows");
        for r in rows {
            for (i, c) in cols.iter().enumerate() {
                if let Some(v) = r.get::<Option<String>, _>(i) {
                    out.push((t.clone(), c.clone(), v));
                }
            }
        }
    }
    conn.close().await.expect("close the database");
    out
}

/// Where a string occurs in JSON outside the allowed fields (arrays inherit their field).
fn json_leaks(v: &Value, needle: &str, field: &str, allowed: &[&str], path: &str) -> Vec<String> {
    match v {
        Value::String(s) if s.contains(needle) && !allowed.contains(&field) => vec![path.into()],
        Value::Array(a) => a
            .iter()
            .enumerate()
            .flat_map(|(i, x)| json_leaks(x, needle, field, allowed, &format!("{path}[{i}]")))
            .collect(),
        Value::Object(o) => o
            .iter()
            .flat_map(|(k, x)| {
                let mut found = Vec::new();
                if k.contains(needle) {
                    found.push(format!("{path}.{k} (as a field name)"));
                }
                found.extend(json_leaks(x, needle, k, allowed, &format!("{path}.{k}")));
                found
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Columns that hold a virtual key's hash on purpose (the key's identifier).
const HASH_COLUMNS: &[(&str, &str)] = &[
    ("verification_tokens", "token"),
    ("deleted_verification_tokens", "token"),
    ("spend_logs", "api_key"),
    ("daily_spend", "api_key"),
    ("daily_spend_by_key", "api_key"),
    ("audit_log", "object_id"),
];

fn excerpt(hay: &str, needle: &str) -> String {
    let i = hay.find(needle).unwrap_or(0);
    let start = hay[..i].char_indices().rev().nth(80).map_or(0, |(j, _)| j);
    let end = (i + needle.len() + 80).min(hay.len());
    let end = (end..=hay.len())
        .find(|&j| hay.is_char_boundary(j))
        .unwrap_or(hay.len());
    hay[start..end].to_string()
}

fn sweep(ev: &Evidence, secrets: &BTreeMap<String, String>, master_hash: &str) -> Vec<String> {
    let mut leaks = Vec::new();
    let texts = ev
        .public
        .iter()
        .map(|(p, t)| (p.clone(), t.clone()))
        .chain(
            ev.api
                .iter()
                .map(|(p, v)| (format!("API {p}"), v.to_string())),
        )
        .chain(
            ev.ui
                .iter()
                .map(|(p, t)| (format!("UI page {p}"), t.clone())),
        )
        .chain(
            ev.db
                .iter()
                .map(|(t, c, v)| (format!("database {t}.{c}"), v.clone())),
        );
    for (place, text) in texts {
        for (name, s) in secrets {
            // Without its last characters: a truncated key is still a leak.
            if text.contains(&s[..s.len() - 6]) {
                leaks.push(format!(
                    "plaintext {name} in {place}: …{}…",
                    excerpt(&text, &s[..s.len() - 6])
                ));
            }
        }
    }
    let hashes: Vec<(String, String)> = secrets
        .iter()
        .filter(|(n, _)| n.starts_with("virtual key"))
        .map(|(n, s)| (n.clone(), sha256_hex(s)))
        .collect();
    for (name, h) in &hashes {
        for (place, text) in &ev.public {
            if text.contains(h.as_str()) {
                leaks.push(format!("hash of {name} in {place}: …{}…", excerpt(text, h)));
            }
        }
        for (place, v) in &ev.api {
            for at in json_leaks(v, h, "", &["token", "api_key", "object_id"], "") {
                leaks.push(format!("hash of {name} in API {place} at {at}"));
            }
        }
        for (t, c, v) in &ev.db {
            if !v.contains(h.as_str()) || HASH_COLUMNS.contains(&(t.as_str(), c.as_str())) {
                continue;
            }
            // The audit log's before/after snapshots name the key by its `token` field.
            let snapshot = t == "audit_log" && (c == "before" || c == "after");
            let at = match serde_json::from_str::<Value>(v) {
                Ok(j) if snapshot => json_leaks(&j, h, "", &["token"], ""),
                _ => vec![String::new()],
            };
            for at in at {
                leaks.push(format!(
                    "hash of {name} in database {t}.{c}{at}: …{}…",
                    excerpt(v, h)
                ));
            }
        }
    }
    for (place, text) in ev.errors.iter().chain(&ev.public) {
        if text.contains(master_hash) {
            leaks.push(format!("hash of the master key in {place}"));
        }
    }
    leaks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_bodies_metrics_or_the_database() {
    let master = canary("MASTER");
    let provider = canary("PROVIDER");
    let unknown = canary("UNKNOWN");
    let body_key = canary("BODYKEY");
    let up = FakeUpstream::start().await;
    for (m, b) in [
        ("fail400", Behavior::Status(400, None)),
        ("fail401", Behavior::Status(401, None)),
        ("fail500", Behavior::Status(500, None)),
        ("fail429", Behavior::Status(429, Some(1))),
        ("reset", Behavior::ResetMidStream),
    ] {
        up.set(m, b);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let vertex_key = up.vertex_service_account();
    let unknown_vertex_key = up.vertex_service_account_with_unknown_key();
    let echo = echoing_upstream().await;
    let sso_secret = canary("SSOSECRET");
    let idp = OidcProvider::start("canary-client", &sso_secret).await;
    idp.sign_in_as(IdpUser::new("sub-canary", "canary@example.com"));
    let mut gw = Gateway::start(
        env!("CARGO_BIN_EXE_tollgate"),
        dir.path(),
        &config(&up, &echo, &master, &provider).replacen(
            "model_list:\n",
            &vertex_models(&up, &vertex_key, &unknown_vertex_key),
            1,
        ),
        &[
            ("TOLLGATE_LOG", "debug"),
            ("GENERIC_CLIENT_ID", "canary-client"),
            ("GENERIC_CLIENT_SECRET", sso_secret.as_str()),
            ("GENERIC_ISSUER", idp.issuer.as_str()),
            ("TOLLGATE_SSO_ALLOWED_DOMAINS", "example.com"),
        ],
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("http client");
    gw.wait_ready(&http).await;
    let base = gw.base.clone();
    let mut c = Client {
        http: http.clone(),
        base: &base,
        ev: Evidence::default(),
    };
    let mut secrets = BTreeMap::new();
    secrets.insert("master key".to_string(), master.clone());
    secrets.insert("provider key".to_string(), provider.clone());
    secrets.insert("unknown presented key".to_string(), unknown.clone());
    secrets.insert("api_key sent in a body".to_string(), body_key.clone());
    secrets.insert("SSO client secret".to_string(), sso_secret.clone());

    // Virtual keys; every plaintext is a canary.
    let expiring = c
        .new_key(&master, json!({"key_alias": "expiring", "duration": "1s"}))
        .await;
    let expires_at = Instant::now() + Duration::from_millis(1100);
    let main = c.new_key(&master, json!({"key_alias": "main"})).await;
    let v = c
        .admin(
            &master,
            "/user/new",
            json!({"user_email": "canary@example.com", "auto_create_key": true}),
        )
        .await;
    let user_key = v["key"].as_str().expect("user key").to_string();
    let only_good = c.new_key(&master, json!({"models": ["good"]})).await;
    let tiny_budget = c.new_key(&master, json!({"max_budget": 0.000001})).await;
    let rpm1 = c.new_key(&master, json!({"rpm_limit": 1})).await;
    let blocked = c.new_key(&master, json!({"key_alias": "blocked"})).await;
    let regen_old = c.new_key(&master, json!({"key_alias": "rotated"})).await;
    let deleted = c.new_key(&master, json!({"key_alias": "deleted"})).await;
    for (n, k) in [
        ("expiring", &expiring),
        ("main", &main),
        ("of /user/new", &user_key),
        ("limited to one model", &only_good),
        ("with a tiny budget", &tiny_budget),
        ("with rpm 1", &rpm1),
        ("blocked", &blocked),
        ("before regeneration", &regen_old),
        ("deleted", &deleted),
    ] {
        secrets.insert(format!("virtual key {n}"), k.clone());
    }

    // Successes, plain and streaming, with several keys.
    assert_eq!(c.chat("chat", &main, "good", false).await, 200);
    assert_eq!(c.chat("stream", &main, "good", true).await, 200);
    assert_eq!(c.chat("user key chat", &user_key, "good", false).await, 200);
    assert_eq!(c.chat("master chat", &master, "good", false).await, 200);
    assert_eq!(c.chat("deleted before", &deleted, "good", false).await, 200);
    assert_eq!(
        c.chat("rotated before", &regen_old, "good", true).await,
        200
    );

    // Upstream failures, and a stream that breaks halfway.
    assert_eq!(c.chat("upstream 400", &main, "fail400", false).await, 400);
    assert_eq!(c.chat("upstream 401", &main, "fail401", false).await, 401);
    assert_eq!(c.chat("upstream 500", &main, "fail500", false).await, 500);
    assert_eq!(c.chat("upstream 429", &main, "fail429", false).await, 429);
    assert_eq!(
        c.chat("upstream 500 stream", &main, "fail500", true).await,
        500
    );
    let (s, b) = c
        .post(
            "reset mid-stream",
            &main,
            "/v1/chat/completions",
            json!({"model": "reset", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        b.contains("error"),
        "the broken stream ends in an error: {b}"
    );
    c.ev.errors
        .push(("reset stream body".into(), b.to_string()));
    assert_eq!(
        c.chat("upstream echoes the key", &main, "echo401", false)
            .await,
        401
    );
    assert_eq!(
        c.chat("long upstream error", &main, "echolong", false)
            .await,
        400
    );
    let (s, b) = c
        .post(
            "in-band stream error",
            &main,
            "/v1/chat/completions",
            json!({"model": "echostream", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert!(b.contains("error"), "in-band error: {s} {b}");
    c.ev.errors.push(("in-band stream error".into(), b));

    // Vertex AI: a service account's key signs token requests; neither the key nor the
    // tokens it gets may show, also when the token endpoint refuses the key.
    assert_eq!(c.chat("vertex chat", &main, "vgood", false).await, 200);
    assert_eq!(c.chat("vertex stream", &main, "vgood", true).await, 200);
    assert_eq!(
        c.chat("vertex key refused", &main, "vbadkey", false).await,
        401
    );
    for (n, file) in [("", &vertex_key), (" (refused)", &unknown_vertex_key)] {
        let v: Value = serde_json::from_str(&file.json).unwrap();
        let pem = v["private_key"].as_str().unwrap();
        // A line from the middle of the key.
        let line = pem.lines().nth(8).unwrap().to_string();
        secrets.insert(format!("Vertex service-account private key{n}"), line);
    }
    let tokens = up.vertex_tokens_issued();
    assert!(!tokens.is_empty());
    for (i, t) in tokens.into_iter().enumerate() {
        secrets.insert(format!("Vertex access token {i}"), t);
    }

    // Authentication failures.
    assert_eq!(c.chat("unknown key", &unknown, "good", false).await, 401);
    let req = c
        .http
        .post(format!("{base}/v1/chat/completions"))
        .header("authorization", format!("Basic {unknown}"))
        .json(&json!({"model": "good", "messages": []}));
    assert_eq!(c.send("malformed Authorization", req).await.0, 401);
    let req = c
        .http
        .post(format!("{base}/v1/chat/completions"))
        .header("authorization", unknown.clone())
        .json(&json!({"model": "good", "messages": []}));
    assert_eq!(c.send("Authorization without Bearer", req).await.0, 401);
    let req = c
        .http
        .post(format!("{base}/v1/chat/completions"))
        .header("x-api-key", unknown.clone())
        .json(&json!({"model": "good", "messages": []}));
    assert_eq!(c.send("unknown key in x-api-key", req).await.0, 401);
    c.admin(&master, "/key/block", json!({"key": blocked}))
        .await;
    assert_eq!(c.chat("blocked key", &blocked, "good", false).await, 401);
    tokio::time::sleep(expires_at.saturating_duration_since(Instant::now())).await;
    assert_eq!(c.chat("expired key", &expiring, "good", false).await, 401);

    // Authorization, budget and rate limits.
    assert_eq!(
        c.chat("model not allowed", &only_good, "other", false)
            .await,
        403
    );
    let mut budget_status = 200;
    for _ in 0..5 {
        budget_status = c.chat("tiny budget", &tiny_budget, "good", false).await;
        if budget_status != 200 {
            break;
        }
        // The spend lands in the key's budget with the next flush.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(budget_status, 422, "the tiny budget refuses");
    assert_eq!(c.chat("rpm first", &rpm1, "good", false).await, 200);
    // A third try covers a minute boundary between the first two.
    let mut rpm_status = 200;
    for _ in 0..2 {
        rpm_status = c.chat("rpm again", &rpm1, "good", false).await;
        if rpm_status != 200 {
            break;
        }
    }
    assert_eq!(rpm_status, 429, "rpm_limit 1 refuses");

    // Malformed chat bodies that quote a key (the first may be left to the provider to judge).
    c.post(
        "odd chat body",
        &main,
        "/v1/chat/completions",
        json!({"model": "good", "messages": main, "max_tokens": unknown}),
    )
    .await;
    let req = c
        .http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&main)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"model\": \"good\", \"user\": \"{unknown}\", \"messages\": ["
        ));
    assert_eq!(c.send("truncated chat body", req).await.0, 400);

    // Upstream settings in the body are refused.
    for field in ["api_key", "api_base"] {
        let mut b = json!({"model": "good", "messages": [{"role": "user", "content": "hi"}]});
        b[field] = json!(if field == "api_key" {
            body_key.clone()
        } else {
            format!("http://127.0.0.1:9/?key={body_key}")
        });
        let (s, _) = c
            .post(
                &format!("{field} in body"),
                &main,
                "/v1/chat/completions",
                b,
            )
            .await;
        assert_eq!(s, 400, "{field} in the body");
    }

    // Key lifecycle: regenerate (body and path), delete.
    let v = c
        .admin(&master, "/key/regenerate", json!({"key": regen_old}))
        .await;
    let regen_new = v["key"].as_str().expect("regenerated key").to_string();
    secrets.insert("virtual key after regeneration".into(), regen_new.clone());
    let v = c
        .admin(&master, &format!("/key/{regen_new}/regenerate"), json!({}))
        .await;
    let regen_path = v["key"].as_str().expect("regenerated key").to_string();
    secrets.insert(
        "virtual key after path regeneration".into(),
        regen_path.clone(),
    );
    assert_eq!(
        c.chat("old key after regenerate", &regen_old, "good", false)
            .await,
        401
    );
    assert_eq!(
        c.chat("new key after regenerate", &regen_path, "good", true)
            .await,
        200
    );
    c.admin(&master, "/key/delete", json!({"keys": [deleted]}))
        .await;
    assert_eq!(c.chat("deleted key", &deleted, "good", false).await, 401);

    // Management calls with bad bodies, unknown keys and the wrong caller.
    let bad: Vec<(&str, &str, Value)> = vec![
        ("/key/delete", &master, json!({"keys": main})),
        ("/key/delete", &master, json!({"keys": [unknown]})),
        ("/key/regenerate", &master, json!({"key": unknown})),
        ("/key/regenerate", &master, json!({"key": [main]})),
        ("/key/block", &master, json!({"key": unknown})),
        (
            "/key/update",
            &master,
            json!({"key": main, "max_budget": main}),
        ),
        (
            "/key/update",
            &master,
            json!({"key": unknown, "max_budget": 1}),
        ),
        ("/key/generate", &master, json!({"duration": main})),
        ("/key/generate", &master, json!({"max_budget": main})),
        ("/key/generate", &master, json!({"models": main})),
        ("/key/generate", &master, json!({"budget_duration": main})),
        ("/user/new", &master, json!({"budget_duration": unknown})),
        ("/user/new", &master, json!({"user_role": unknown})),
        (
            "/user/new",
            &master,
            json!({"user_email": main, "max_budget": unknown}),
        ),
        ("/user/new", &unknown, json!({})),
        ("/key/generate", &main, json!({})),
        ("/user/update", &master, json!({"user_id": main})),
        (
            "/team/new",
            &master,
            json!({"team_alias": 1, "models": main}),
        ),
    ];
    for (path, key, body) in bad {
        let (s, b) = c.post(&format!("bad {path}"), key, path, body).await;
        assert!(s >= 400, "{path}: {s} {b}");
    }
    let req = c
        .http
        .post(format!("{base}/key/generate"))
        .bearer_auth(&master)
        .header("content-type", "application/json")
        .body(format!("{{\"key_alias\": \"{main}"));
    assert!(c.send("truncated JSON", req).await.0 >= 400);
    let req = c
        .http
        .get(format!("{base}/key/info?key={unknown}"))
        .bearer_auth(&master);
    assert_eq!(c.send("/key/info unknown", req).await.0, 404);
    let (s, _) = c
        .post(
            "/key/{unknown}/regenerate",
            &master,
            &format!("/key/{unknown}/regenerate"),
            json!({}),
        )
        .await;
    assert!(s >= 400);

    // Login failures: wrong password (a secret), a virtual key as password, bad bodies.
    for (label, body) in [
        (
            "login wrong password",
            json!({"username": "admin", "password": unknown}),
        ),
        (
            "login key as password",
            json!({"username": "admin", "password": main}),
        ),
        (
            "login key as username",
            json!({"username": main, "password": unknown}),
        ),
        ("login missing password", json!({"username": unknown})),
        (
            "login bad type",
            json!({"username": "admin", "password": [master]}),
        ),
    ] {
        let req = c.http.post(format!("{base}/v2/login")).json(&body);
        assert!(c.send(label, req).await.0 >= 400, "{label}");
    }
    let req = c
        .http
        .post(format!("{base}/login"))
        .form(&[("username", "admin"), ("password", unknown.as_str())]);
    assert!(c.send("form login wrong password", req).await.0 >= 400);
    // A good login, to see the UI pages as the admin.
    let req = c
        .http
        .post(format!("{base}/v2/login"))
        .json(&json!({"username": "admin", "password": master}));
    let resp = req.send().await.expect("login");
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();

    // Single sign-on: one sign-in that works and one whose ID token is forged; neither the
    // client secret nor an authorization code may show anywhere.
    for (label, how) in [
        ("SSO sign-in", Misbehave::Nothing),
        ("forged SSO sign-in", Misbehave::BadSignature),
    ] {
        idp.misbehave(how);
        let code = sso_trip(&mut c, label, how == Misbehave::Nothing).await;
        secrets.insert(format!("authorization code of the {label}"), code);
    }

    // Wait for the spend writer: the log stops growing once every record is in.
    let mut last = usize::MAX;
    let mut stable_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = c.collect(&master, "/spend/logs").await;
        c.ev.api.pop();
        c.ev.public.pop();
        let n = v.as_array().map_or(0, Vec::len);
        if n != last {
            last = n;
            stable_since = Instant::now();
        } else if stable_since.elapsed() > Duration::from_millis(1200) {
            break;
        }
        assert!(Instant::now() < deadline, "spend logs never settled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(last >= 15, "spend records of the calls: {last}");

    for path in [
        "/spend/logs",
        "/audit",
        "/key/list?return_full_object=true&size=100",
        "/user/list",
        "/model/info",
        "/global/spend/keys",
    ] {
        c.collect(&master, path).await;
    }
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(metrics.contains("tollgate_"), "metrics: {metrics}");
    c.ev.public.push(("/metrics".into(), metrics));
    for page in ["/ui", "/ui/keys", "/ui/usage", "/ui/audit", "/ui/models"] {
        let req = http.get(format!("{base}{page}")).header("cookie", &cookie);
        let (s, headers, body) = Client::send_raw(req).await;
        assert_eq!(s, 200, "{page}");
        c.ev.public
            .push((format!("response headers of {page}"), headers));
        c.ev.ui.push((page.to_string(), body));
    }

    gw.stop().await;
    let read = |p: &Path| std::fs::read_to_string(p).expect("read the log");
    let (stdout, stderr) = (read(&gw.stdout), read(&gw.stderr));
    // tracing's fmt layer writes to stdout.
    assert!(
        stdout.contains("DEBUG"),
        "the log is at debug level: {stdout}"
    );
    c.ev.public.push(("the debug log (stdout)".into(), stdout));
    c.ev.public.push(("stderr".into(), stderr));
    c.ev.db = dump_db(&dir.path().join("t.db")).await;
    assert!(
        c.ev.db.iter().any(|(t, _, _)| t == "spend_logs"),
        "the database was read"
    );
    // The hash is where it belongs, so the sweep looks at the right data.
    let main_hash = sha256_hex(&main);
    assert!(c
        .ev
        .db
        .iter()
        .any(|(t, col, v)| t == "spend_logs" && col == "api_key" && v == &main_hash));

    let leaks = sweep(&c.ev, &secrets, &sha256_hex(&master));
    assert!(
        leaks.is_empty(),
        "{} secret leak(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
