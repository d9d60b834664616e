//! The spend side of the web UI over plain HTTP: the Models page's prices and the caller's own
//! model list, the Usage page's totals, breakdowns and recent requests, and its scope rule
//! (admins choose any user or team; everyone else sees only their own, whatever the query says).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_testkit::{spawn_app, FakeUpstream, TestApp};

const STRONG: &str = "correct-horse-battery-staple-42";

/// Three models: one priced in the config, one the price table knows, one unknown. The fake
/// upstream reports 12 prompt + 6 completion tokens per call: $0.0003 on `priced`.
fn config(upstream: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: priced
    litellm_params: {{model: openai/priced-upstream, api_base: "{upstream}/v1", api_key: sk-p-1, input_cost_per_token: 0.00001, output_cost_per_token: 0.00003}}
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{upstream}/v1", api_key: sk-p-1}}
  - model_name: mystery
    litellm_params: {{model: openai/mystery-model-x, api_base: "{upstream}/v1", api_key: sk-p-1}}
router_settings: {{num_retries: 0}}
general_settings: {{master_key: "{{master_key}}"}}
"#
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Creates a user with a password (and optionally a model list) and signs in through the form;
/// returns the user id and the session cookie.
async fn sign_in(app: &TestApp, email: &str, role: &str, models: Value) -> (String, String) {
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/user/new",
            json!({"user_email": email, "user_role": role, "auto_create_key": false, "models": models}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let id = v["user_id"].as_str().expect("user_id").to_string();
    let (s, _) = app
        .api(
            &app.master_key,
            "POST",
            "/user/update",
            json!({"user_id": id, "password": STRONG}),
        )
        .await;
    assert_eq!(s, 200);
    let r = http()
        .post(app.url("/ui/login"))
        .header("origin", app.base_url.as_str())
        .form(&[("username", email), ("password", STRONG)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    (id, cookie)
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> String {
    let r = http()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::OK, "GET {path}");
    r.text().await.expect("body")
}

async fn key_for(app: &TestApp, user_id: &str, alias: &str) -> String {
    let (s, v) = app
        .api(
            &app.master_key,
            "POST",
            "/key/generate",
            json!({"user_id": user_id, "key_alias": alias}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["key"].as_str().expect("key").to_string()
}

async fn chat(app: &TestApp, key: &str, model: &str) {
    let r = app
        .client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .expect("chat");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = html.find(start)? + start.len();
    let len = html[from..].find(end)?;
    Some(&html[from..from + len])
}

fn total(html: &str, id: &str) -> String {
    between(html, &format!("id=\"{id}\"><span class=\"value\">"), "<")
        .unwrap_or_else(|| panic!("no #{id} on the page"))
        .to_string()
}

#[tokio::test]
async fn models_page_shows_prices_and_only_the_callers_models() {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config(&up.base_url)).await;
    let (_, bea) = sign_in(&app, "bea@example.com", "internal_user", json!([])).await;
    let html = page(&app, &bea, "/ui/models").await;
    assert!(html.contains("3 models"), "{html}");
    let row = |name: &str| {
        between(&html, &format!("model-name\">{name}</td>"), "</tr>")
            .unwrap_or_else(|| panic!("no row for {name}"))
            .to_string()
    };
    let priced = row("priced");
    assert!(
        priced.contains("$10.00") && priced.contains("$30.00"),
        "{priced}"
    );
    // The shipped table's price and mode.
    let mini = row("gpt-4o-mini");
    assert!(mini.contains("$0.15") && mini.contains("$0.60"), "{mini}");
    assert!(mini.contains("chat"), "{mini}");
    assert!(row("mystery").contains("not priced"));

    // A user an admin restricted sees only their models (wildcards as the proxy reads them).
    let (_, carl) = sign_in(&app, "carl@example.com", "internal_user", json!(["gpt-*"])).await;
    let html = page(&app, &carl, "/ui/models").await;
    assert!(html.contains("1 model<"), "{html}");
    assert!(html.contains("gpt-4o-mini"));
    assert!(!html.contains(">priced<") && !html.contains("mystery"));
    let (_, dan) = sign_in(
        &app,
        "dan@example.com",
        "internal_user",
        json!(["all-proxy-models"]),
    )
    .await;
    assert!(page(&app, &dan, "/ui/models").await.contains("3 models"));
}

#[tokio::test]
async fn usage_page_shows_own_spend_and_admins_choose_whose() {
    let up = FakeUpstream::start().await;
    let app = spawn_app(&config(&up.base_url)).await;
    let (bea_id, bea) = sign_in(&app, "bea@example.com", "internal_user", json!([])).await;
    let (carl_id, carl) = sign_in(&app, "carl@example.com", "internal_user", json!([])).await;
    let (_, viewer) = sign_in(&app, "ops@example.com", "proxy_admin_viewer", json!([])).await;

    // Nothing yet: the empty state says what to do.
    let html = page(&app, &bea, "/ui/usage").await;
    assert!(html.contains("No requests in the last 30 days"));
    assert!(html.contains("href=\"/ui/keys\""));

    let bea_key = key_for(&app, &bea_id, "bea-laptop").await;
    let carl_key = key_for(&app, &carl_id, "carl-ci").await;
    chat(&app, &bea_key, "priced").await;
    chat(&app, &bea_key, "priced").await;
    chat(&app, &carl_key, "priced").await;
    chat(&app, &carl_key, "mystery").await;
    assert_eq!(app.wait_for_spend_logs(4).await, 4);

    // Bea sees her own: 2 requests, $0.0006, 36 tokens, her key by alias, never a secret.
    let html = page(&app, &bea, "/ui/usage?days=7").await;
    assert_eq!(total(&html, "total-spend"), "$0.0006");
    assert_eq!(total(&html, "total-requests"), "2");
    assert_eq!(total(&html, "total-tokens"), "36");
    assert!(html.contains("bea-laptop"));
    assert!(!html.contains("carl-ci"));
    assert!(!html.contains(&bea_key));
    assert!(html.contains("<option value=\"7\" selected>"));
    assert!(html.contains("class=\"chart-bar\""));
    assert!(!html.contains("id=\"usage-scope\""), "no scope select");
    // Asking for Carl's or everyone's usage changes nothing: the scope is decided on the server.
    for q in ["?scope=user:", "?scope=team:x", "?scope="] {
        let path = if q.ends_with("user:") {
            format!("/ui/usage{q}{carl_id}")
        } else {
            format!("/ui/usage{q}")
        };
        let html = page(&app, &bea, &path).await;
        assert_eq!(total(&html, "total-spend"), "$0.0006", "{path}");
        assert!(!html.contains("carl-ci"), "{path}");
    }
    // An unknown range falls back to 30 days.
    let html = page(&app, &bea, "/ui/usage?days=5").await;
    assert!(html.contains("<option value=\"30\" selected>"));

    // Carl's unpriced call shows as such.
    let html = page(&app, &carl, "/ui/usage").await;
    assert_eq!(total(&html, "total-spend"), "$0.0003");
    assert!(html.contains("not priced"));

    // A view-only admin sees the whole gateway, and picks Carl.
    let html = page(&app, &viewer, "/ui/usage").await;
    assert_eq!(total(&html, "total-spend"), "$0.0009");
    assert_eq!(total(&html, "total-requests"), "4");
    assert!(html.contains("id=\"usage-scope\""));
    assert!(html.contains(&format!(
        "<option value=\"user:{carl_id}\">carl@example.com</option>"
    )));
    let html = page(&app, &viewer, &format!("/ui/usage?scope=user:{carl_id}")).await;
    assert_eq!(total(&html, "total-spend"), "$0.0003");
    assert_eq!(total(&html, "total-requests"), "2");
    assert!(html.contains("carl-ci") && !html.contains("bea-laptop"));
    assert!(html.contains(&format!("<option value=\"user:{carl_id}\" selected>")));

    // Home: the user's spend against (no) budget; admins also see the gateway's month.
    let html = page(&app, &bea, "/ui").await;
    let own = between(&html, "id=\"own-spend\"", "</div>").expect("own spend card");
    assert!(
        own.contains("$0.0006") && own.contains("No budget"),
        "{own}"
    );
    assert!(!html.contains("id=\"gateway-spend\""));
    let (s, _) = app
        .api(
            &app.master_key,
            "POST",
            "/user/update",
            json!({"user_id": bea_id, "max_budget": 0.001}),
        )
        .await;
    assert_eq!(s, 200);
    let html = page(&app, &bea, "/ui").await;
    let own = between(&html, "id=\"own-spend\"", "</div>").expect("own spend card");
    assert!(own.contains("of $0.0010"), "{own}");
    assert!(
        own.contains("<meter") && own.contains("value=\"60\""),
        "{own}"
    );
    let html = page(&app, &viewer, "/ui").await;
    let gw = between(&html, "id=\"gateway-spend\"", "</div>").expect("gateway card");
    assert!(gw.contains("$0.0009") && gw.contains("4 requests"), "{gw}");
}
