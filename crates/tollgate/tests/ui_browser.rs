//! The web UI in a real headless Chromium (driven through chromedriver): the self-serve
//! invitation story, what each role's pages offer, forged and cross-site posts, and narrow
//! screens. Without chromedriver these tests print "skipped: …" — except under CI, where they
//! fail. `TOLLGATE_CHROMEDRIVER` says where chromedriver is (default /usr/bin/chromedriver).
//!
//! `screenshots` (ignored) writes PNGs of the main pages as each role sees them:
//! `TOLLGATE_SCREENSHOTS_DIR=<dir> cargo test -p tollgate --test ui_browser screenshots -- --ignored`
//! (or `scripts/screenshots.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_testkit::browser::{chromedriver_or_skip, Browser, ChromeDriver};
use tollgate_testkit::oidc::{IdpUser, OidcProvider};
use tollgate_testkit::{spawn_app_vars, FakeUpstream, TestApp};

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hi", input_cost_per_token: 0, output_cost_per_token: 0}
  - model_name: gpt-4o-mini
    litellm_params: {model: openai/gpt-4o-mini, mock_response: "hi"}
  - model_name: claude-3-5-sonnet
    litellm_params: {model: anthropic/claude-3-5-sonnet-20241022, mock_response: "hi", input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}
  - model_name: in-house-llm
    litellm_params: {model: openai/in-house-llm, mock_response: "hi"}
general_settings: {master_key: "{master_key}"}
"#;

const STRONG: &str = "correct-horse-battery-staple-42";
const NEW_PASSWORD: &str = "a-very-strong-passphrase-4271";
const SESSION_COOKIE: &str = "tollgate_session";

/// Browser tests run one at a time: each starts Chromium, and CI machines are small.
static BROWSERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Setup {
    app: TestApp,
    upstream: FakeUpstream,
    driver: ChromeDriver,
}

impl Setup {
    fn logout_url(&self) -> String {
        format!("{}/logged-out", self.upstream.base_url)
    }

    async fn browser(&self, width: u32, height: u32) -> Browser {
        self.driver
            .open(width, height)
            .await
            .expect("a headless Chromium session")
    }
}

/// The app (admin `admin`, password = the master key; logout goes to the fake upstream's
/// `/logged-out` page) and a chromedriver — or `None` when the test is skipped.
async fn setup(test: &str) -> Option<Setup> {
    let path = chromedriver_or_skip(test)?;
    let upstream = FakeUpstream::start().await;
    let logout = format!("{}/logged-out", upstream.base_url);
    let app = spawn_app_vars(
        CONFIG,
        &[
            ("PROXY_LOGOUT_URL", logout.as_str()),
            ("UI_USERNAME", "admin"),
        ],
    )
    .await;
    let driver = ChromeDriver::start(&path)
        .await
        .expect("chromedriver starts");
    Some(Setup {
        app,
        upstream,
        driver,
    })
}

async fn admin_api(app: &TestApp, path: &str, body: Value) -> Value {
    let r = app.post(path, &body).await;
    let status = r.status();
    let v = r.json::<Value>().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "POST {path}: {v}");
    v
}

/// A user created through the API, with a password set by the admin; returns the user id.
async fn user_with_password(app: &TestApp, email: &str, role: &str) -> String {
    let v = admin_api(
        app,
        "/user/new",
        json!({"user_email": email, "user_role": role}),
    )
    .await;
    let id = v["user_id"].as_str().expect("user_id").to_string();
    admin_api(
        app,
        "/user/update",
        json!({"user_id": id, "password": STRONG}),
    )
    .await;
    id
}

async fn user_emails(app: &TestApp) -> Vec<String> {
    let r = app
        .client()
        .get(app.url("/user/list?page_size=100"))
        .bearer_auth(&app.master_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["user_email"].as_str().map(str::to_string))
        .collect()
}

/// Signs in through the login form and checks the browser lands on /ui.
async fn ui_login(b: &Browser, app: &TestApp, username: &str, password: &str) {
    b.goto(&app.url("/ui/login")).await.unwrap();
    b.fill("#login-username", username).await.unwrap();
    b.fill("#login-password", password).await.unwrap();
    b.click_and_wait("form[action='/ui/login'] button[type='submit']")
        .await
        .unwrap();
    assert_eq!(
        b.path().await.unwrap(),
        "/ui",
        "signing in as {username} lands on /ui: {}",
        b.page_text().await.unwrap()
    );
}

/// Follows a link in the side navigation.
async fn nav(b: &Browser, href: &str) {
    b.click_and_wait(&format!("nav.side a[href='{href}']"))
        .await
        .unwrap();
    assert_eq!(b.path().await.unwrap(), href);
}

/// Builds a form in the page (hidden fields from `fields`) and submits it, as a forged page or
/// a malicious script would.
async fn submit_forged_form(b: &Browser, action: &str, fields: Value) {
    b.execute_and_wait(
        r#"
        const [action, fields] = arguments;
        const f = document.createElement('form');
        f.method = 'post';
        f.action = action;
        for (const [k, v] of Object.entries(fields)) {
            const i = document.createElement('input');
            i.type = 'hidden';
            i.name = k;
            i.value = v;
            f.appendChild(i);
        }
        document.body.appendChild(f);
        f.submit();
        "#,
        vec![json!(action), fields],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_invites_a_user_who_onboards_logs_out_and_back_in() {
    let _one = BROWSERS.lock().await;
    let Some(s) = setup("admin_invites_a_user_who_onboards_logs_out_and_back_in").await else {
        return;
    };
    let app = &s.app;

    // The admin signs in and adds a user on the Users page.
    let admin = s.browser(1280, 800).await;
    ui_login(&admin, app, "admin", &app.master_key).await;
    assert!(admin
        .text(".topbar .badge")
        .await
        .unwrap()
        .contains("Admin (All Permissions)"));
    nav(&admin, "/ui/users").await;
    admin
        .fill("#new-email", "new.user@example.com")
        .await
        .unwrap();
    admin.select("#new-role", "internal_user").await.unwrap();
    admin
        .click_and_wait("form[method='post'][action='/ui/users'] button[type='submit']")
        .await
        .unwrap();
    assert_eq!(admin.status().await.unwrap(), 200);
    let text = admin.page_text().await.unwrap();
    assert!(
        text.contains("User new.user@example.com was created."),
        "{text}"
    );
    let link = admin.value("#created-link").await.unwrap();
    assert!(
        link.starts_with(&format!("{}/ui/onboarding?id=", app.base_url)),
        "the invitation link points at this gateway: {link}"
    );
    assert_eq!(
        admin.attr("#created-link", "readonly").await.unwrap(),
        Some("true".to_string())
    );
    // app.js adds a Copy button next to the link.
    assert!(admin.exists(".copy-row button").await.unwrap());

    // The new user opens the link in their own, fresh browser.
    let user = s.browser(1280, 800).await;
    user.goto(&link).await.unwrap();
    assert_eq!(user.status().await.unwrap(), 200);
    assert_eq!(
        user.text("h1 .email").await.unwrap(),
        "new.user@example.com"
    );
    assert!(user.cookie(SESSION_COOKIE).await.unwrap().is_none());
    // Two different passwords are refused, and the form says why.
    user.fill("#onb-password", NEW_PASSWORD).await.unwrap();
    user.fill("#onb-confirm", "a-very-strong-passphrase-4272")
        .await
        .unwrap();
    user.click_and_wait("form[action='/ui/onboarding'] button[type='submit']")
        .await
        .unwrap();
    assert_eq!(user.status().await.unwrap(), 400);
    assert_eq!(
        user.text("#onb-error").await.unwrap(),
        "The two passwords are not the same."
    );
    assert_eq!(
        user.attr("#onb-password", "aria-invalid").await.unwrap(),
        Some("true".to_string())
    );
    // Then the same strong password twice.
    user.fill("#onb-password", NEW_PASSWORD).await.unwrap();
    user.fill("#onb-confirm", NEW_PASSWORD).await.unwrap();
    user.click_and_wait("form[action='/ui/onboarding'] button[type='submit']")
        .await
        .unwrap();
    assert_eq!(user.path().await.unwrap(), "/ui", "signed in right away");
    assert_eq!(
        user.text(".topbar .who").await.unwrap(),
        "new.user@example.com"
    );
    let badge = user.text(".topbar .badge").await.unwrap();
    assert!(badge.starts_with("Internal User"), "{badge}");
    let text = user.page_text().await.unwrap();
    assert!(text.contains("new.user@example.com"), "{text}");
    assert!(
        !user.exists("nav.side a[href='/ui/users']").await.unwrap(),
        "no admin navigation for an internal user"
    );
    let cookie = user
        .cookie(SESSION_COOKIE)
        .await
        .unwrap()
        .expect("a session cookie");
    assert!(cookie.http_only, "{cookie:?}");
    assert_eq!(cookie.same_site, "Lax");

    // Log out: the browser ends on PROXY_LOGOUT_URL, without the session cookie.
    if let Err(e) = user
        .click_and_wait(".topbar form[action='/ui/logout'] button[type='submit']")
        .await
    {
        panic!(
            "logout did not reach PROXY_LOGOUT_URL: {e}\nconsole: {:?}",
            user.console_log().await
        );
    }
    assert_eq!(user.url().await.unwrap(), s.logout_url());
    assert_eq!(user.text("h1").await.unwrap(), "Logged out");
    assert!(
        user.cookie(SESSION_COOKIE).await.unwrap().is_none(),
        "the cookie is gone (cookies are per host, not per port)"
    );
    user.goto(&app.url("/ui")).await.unwrap();
    assert_eq!(user.path().await.unwrap(), "/ui/login");

    // Email and the new password sign in again.
    ui_login(&user, app, "new.user@example.com", NEW_PASSWORD).await;
    assert_eq!(
        user.text(".topbar .who").await.unwrap(),
        "new.user@example.com"
    );

    // The link was single-use.
    user.goto(&link).await.unwrap();
    assert_eq!(user.status().await.unwrap(), 404);
    let text = user.page_text().await.unwrap();
    assert!(
        text.contains("This invitation link can't be used"),
        "{text}"
    );
    assert!(text.contains("already been used"), "{text}");
    assert!(!user.exists("#onb-password").await.unwrap());

    // The admin's list now shows the user as active.
    admin.goto(&app.url("/ui/users")).await.unwrap();
    let row = admin
        .execute(
            "return [...document.querySelectorAll('tbody tr')].map(r => r.innerText).find(t => t.includes('new.user@example.com')) || '';",
            vec![],
        )
        .await
        .unwrap();
    let row = row.as_str().unwrap();
    assert!(row.contains("Active"), "{row}");
    admin.goto(&app.url("/ui/invitations")).await.unwrap();
    assert!(admin.page_text().await.unwrap().contains("Accepted"));

    user.close().await.unwrap();
    admin.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_only_admin_sees_users_but_cannot_change_them() {
    let _one = BROWSERS.lock().await;
    let Some(s) = setup("a_view_only_admin_sees_users_but_cannot_change_them").await else {
        return;
    };
    let app = &s.app;
    user_with_password(app, "viewer@example.com", "proxy_admin_viewer").await;
    user_with_password(app, "someone@example.com", "internal_user").await;

    let b = s.browser(1280, 800).await;
    ui_login(&b, app, "viewer@example.com", STRONG).await;
    assert!(b
        .text(".topbar .badge")
        .await
        .unwrap()
        .contains("Admin (View Only)"));
    nav(&b, "/ui/users").await;
    let text = b.page_text().await.unwrap();
    for email in ["viewer@example.com", "someone@example.com"] {
        assert!(text.contains(email), "{email} listed: {text}");
    }
    assert!(
        !b.exists("#add-user-title").await.unwrap(),
        "no Add user form"
    );
    assert!(!b.exists("#new-email").await.unwrap());
    assert!(!b
        .exists("form[method='post'][action='/ui/users']")
        .await
        .unwrap());
    assert_eq!(b.count("table select").await.unwrap(), 0, "no role selects");
    assert_eq!(b.count("form[action$='/role']").await.unwrap(), 0);
    assert_eq!(
        b.count("a[href$='/delete']").await.unwrap(),
        0,
        "no delete links"
    );
    assert_eq!(b.count("form[action$='/invite']").await.unwrap(), 0);
    assert!(text.contains("Internal User (Create/Delete/View)"));

    // A form built inside the page, posted with a wrong or missing CSRF token, is refused.
    for fields in [
        json!({"csrf": "forged-token", "email": "forged@example.com", "role": "proxy_admin"}),
        json!({"email": "forged2@example.com", "role": "proxy_admin"}),
    ] {
        b.goto(&app.url("/ui/users")).await.unwrap();
        submit_forged_form(&b, "/ui/users", fields).await;
        assert_eq!(b.status().await.unwrap(), 403);
        let text = b.page_text().await.unwrap();
        assert!(text.contains("Request refused"), "{text}");
        assert!(text.contains("security token"), "{text}");
    }

    // The same with the viewer's session cookie outside the browser.
    b.goto(&app.url("/ui/users")).await.unwrap();
    let cookie = b
        .cookie(SESSION_COOKIE)
        .await
        .unwrap()
        .expect("the viewer's session cookie");
    let csrf = b.value("input[name='csrf']").await.unwrap();
    assert!(!csrf.is_empty());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |form: Vec<(&'static str, String)>| {
        http.post(app.url("/ui/users"))
            .header("cookie", format!("{SESSION_COOKIE}={}", cookie.value))
            .form(&form)
            .send()
    };
    let r = post(vec![
        ("email", "forged3@example.com".into()),
        ("role", "proxy_admin".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("Request refused"));
    // With the page's valid token the request gets through the CSRF check, and the role
    // check refuses it.
    let r = post(vec![
        ("csrf", csrf.clone()),
        ("email", "forged4@example.com".into()),
        ("role", "proxy_admin".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = r.text().await.unwrap();
    assert!(body.contains("Not allowed"), "{body}");
    assert!(body.contains("can&#x27;t do this") || body.contains("can't do this"));
    assert!(!body.contains("Request refused"));

    let emails = user_emails(app).await;
    assert!(
        !emails.iter().any(|e| e.starts_with("forged")),
        "nothing was created: {emails:?}"
    );
    assert_eq!(emails.len(), 2);
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_login_is_refused() {
    // Outside the browser: an Origin from another site gets 403 and no cookie.
    let upstream = FakeUpstream::start().await;
    let app = spawn_app_vars(CONFIG, &[("UI_USERNAME", "admin")]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let creds = [("username", "admin"), ("password", app.master_key.as_str())];
    let r = http
        .post(app.url("/ui/login"))
        .header("origin", "https://evil.example")
        .form(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("sent from another site and was refused"));
    // The same credentials from the gateway's own origin sign in.
    let r = http
        .post(app.url("/ui/login"))
        .header("origin", app.base_url.as_str())
        .form(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers().get("set-cookie").is_some());

    // In a real browser: a page on another origin posts the login form to the gateway.
    let _one = BROWSERS.lock().await;
    let Some(path) = chromedriver_or_skip("a_cross_site_login_is_refused (browser part)") else {
        return;
    };
    let driver = ChromeDriver::start(&path)
        .await
        .expect("chromedriver starts");
    let b = driver.open(1280, 800).await.unwrap();
    b.goto(&format!("{}/logged-out", upstream.base_url))
        .await
        .unwrap();
    submit_forged_form(
        &b,
        &app.url("/ui/login"),
        json!({"username": "admin", "password": app.master_key}),
    )
    .await;
    assert_eq!(b.path().await.unwrap(), "/ui/login");
    assert_eq!(b.status().await.unwrap(), 403);
    let text = b.page_text().await.unwrap();
    assert!(
        text.contains("This sign-in form was sent from another site and was refused."),
        "{text}"
    );
    assert!(b.cookie(SESSION_COOKIE).await.unwrap().is_none());
    b.goto(&app.url("/ui")).await.unwrap();
    assert_eq!(b.path().await.unwrap(), "/ui/login", "not signed in");
    b.close().await.unwrap();
}

/// `[scrollWidth, innerWidth, the elements sticking out furthest to the right]` of the page:
/// those past the viewport that no scroll box clips (an absolutely positioned element escapes
/// every scroll box between itself and its containing block).
const OVERFLOW_JS: &str = r#"
const W = window.innerWidth;
const clipped = (e) => {
    let pos = getComputedStyle(e).position;
    let out = pos === 'absolute' || pos === 'fixed';
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
        const cs = getComputedStyle(p);
        if (!out && cs.overflowX !== 'visible') return true;
        if (out && cs.position !== 'static') {
            if (cs.overflowX !== 'visible') return true;
            out = cs.position === 'absolute' || cs.position === 'fixed';
        }
    }
    return false;
};
const name = (e) => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '');
const far = [...document.querySelectorAll('body *')]
    .map(e => [e, e.getBoundingClientRect().right])
    .filter(([e, right]) => right > W && !clipped(e))
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([e, right]) => `${name(e)} (right ${Math.round(right)}px) in ${name(e.parentElement)}`);
return [document.documentElement.scrollWidth, W, far];
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_a_narrow_phone_screen() {
    let _one = BROWSERS.lock().await;
    let Some(s) = setup("pages_fit_a_narrow_phone_screen").await else {
        return;
    };
    let app = &s.app;
    user_with_password(
        app,
        "a.rather.long.email.address.for.layout@subdomain.example.com",
        "internal_user_viewer",
    )
    .await;
    user_with_password(app, "viewer@example.com", "proxy_admin_viewer").await;
    // One recorded call, so the Usage page has its chart and tables.
    let r = app
        .client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.master_key)
        .json(
            &json!({"model": "claude-3-5-sonnet", "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.wait_for_spend_logs(1).await, 1);
    let b = s.browser(390, 844).await;
    let size = b
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    assert_eq!(size, json!([390, 844]), "the viewport is a phone's");
    ui_login(&b, app, "admin", &app.master_key).await;
    let paths = [
        "/ui/users",
        "/ui",
        "/ui/invitations",
        "/ui/teams",
        "/ui/audit",
        "/ui/keys",
        "/ui/usage",
        "/ui/models",
    ];
    for width in [390, 360] {
        b.set_viewport(width, 844).await.unwrap();
        for path in paths {
            b.goto(&app.url(path)).await.unwrap();
            let v = b.execute(OVERFLOW_JS, vec![]).await.unwrap();
            let (scroll, inner) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
            assert!(
                scroll <= inner,
                "{path} overflows horizontally at {width}px: scrollWidth {scroll} > innerWidth {inner}; sticking out: {}",
                v[2]
            );
        }
        // The users list and the Usage tables fit without scrolling sideways (a user or a
        // request becomes a small block).
        for path in ["/ui/users", "/ui/usage"] {
            b.goto(&app.url(path)).await.unwrap();
            let v = b
                .execute(
                    "return [...document.querySelectorAll('.table-wrap')].filter(w => w.offsetParent).map(w => [w.scrollWidth, w.clientWidth, w.firstElementChild.className]);",
                    vec![],
                )
                .await
                .unwrap();
            for pair in v.as_array().unwrap() {
                assert!(
                    pair[0].as_u64().unwrap() <= pair[1].as_u64().unwrap(),
                    "a table on {path} scrolls sideways at {width}px: {pair}"
                );
            }
        }
    }
    b.close().await.unwrap();
}

// ---- screenshots --------------------------------------------------------------------------------

/// Where `screenshots` writes: `TOLLGATE_SCREENSHOTS_DIR`, else `./screenshots`.
fn screenshots_dir() -> PathBuf {
    std::env::var_os("TOLLGATE_SCREENSHOTS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("screenshots"))
}

async fn shoot(b: &Browser, dir: &Path, name: &str) {
    let path = dir.join(format!("{name}.png"));
    b.screenshot_full_page(&path).await.unwrap();
    println!("wrote {}", path.display());
}

/// A key made by the admin for `user_id`; returns its stored hash (never the secret).
async fn key_hash_for(app: &TestApp, user_id: &str, alias: &str) -> String {
    let v = admin_api(
        app,
        "/key/generate",
        json!({"user_id": user_id, "key_alias": alias, "max_budget": 25.0}),
    )
    .await;
    v["token"].as_str().expect("token").to_string()
}

/// Two weeks of made-up calls on these keys, written the way the spend writer writes them (so
/// the daily aggregates, users' and keys' spend move too): the Usage, Home and Keys pages then
/// have something to show.
async fn seed_spend(app: &TestApp, keys: &[(String, String, Option<String>)]) {
    use tollgate_store::{SpendRecord, SpendStatus};
    // (public name, upstream, provider, nano-USD per prompt token, per completion token)
    let models = [
        ("gpt-4o-mini", "gpt-4o-mini", "openai", 150, 600),
        (
            "claude-3-5-sonnet",
            "claude-3-5-sonnet-20241022",
            "anthropic",
            3_000,
            15_000,
        ),
    ];
    let now = chrono::Utc::now();
    let mut records = Vec::new();
    for day in 0..14_usize {
        for (k, (hash, user, team)) in keys.iter().enumerate() {
            let calls = (day * 7 + k * 3) % 5 + 1 + k;
            for c in 0..calls {
                let (group, upstream, provider, p_in, p_out) = models[(day + c + k) % 2];
                let prompt = 400 + ((day * 131 + c * 37 + k * 53) % 1600) as i64;
                let completion = 80 + ((day * 71 + c * 29) % 700) as i64;
                let failed = (day + c) % 17 == 3;
                let start = now
                    - chrono::TimeDelta::days(day as i64)
                    - chrono::TimeDelta::minutes((c * 47 + k * 13) as i64 + 5);
                let ms = 300 + ((day * 97 + c * 61) % 2400) as i64;
                records.push(SpendRecord {
                    request_id: format!("seed-{day}-{k}-{c}"),
                    call_type: "chat_completion".into(),
                    api_key: hash.clone(),
                    user_id: Some(user.clone()),
                    team_id: team.clone(),
                    end_user: None,
                    model: upstream.into(),
                    model_group: group.into(),
                    model_id: Some("0".into()),
                    custom_llm_provider: Some(provider.into()),
                    spend_nanos: if failed {
                        0
                    } else {
                        prompt * p_in + completion * p_out
                    },
                    priced: true,
                    prompt_tokens: if failed { 0 } else { prompt },
                    completion_tokens: if failed { 0 } else { completion },
                    cache_read_input_tokens: 0,
                    cache_creation_input_tokens: 0,
                    usage_estimated: false,
                    stream: c % 2 == 0,
                    status: if failed {
                        SpendStatus::Failure
                    } else {
                        SpendStatus::Success
                    },
                    http_status: if failed { 429 } else { 200 },
                    error_type: failed.then(|| "rate_limit_error".to_string()),
                    attempts: 1,
                    start_time: start,
                    end_time: start + chrono::TimeDelta::milliseconds(ms),
                    completion_start_time: None,
                    request_duration_ms: ms,
                    ttft_ms: None,
                    metadata: json!({}),
                });
            }
        }
    }
    app.store
        .insert_spend_batch(&records)
        .await
        .expect("seed spend records");
}

/// Not a check: PNGs of the main pages as each role sees them, for people to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes screenshots; run with --ignored (see scripts/screenshots.sh)"]
async fn screenshots() {
    let _one = BROWSERS.lock().await;
    let Some(s) = setup("screenshots").await else {
        return;
    };
    let app = &s.app;
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir).unwrap();

    // Seed: one user per role (with passwords), two teams, invitations in each state.
    user_with_password(app, "viewer@example.com", "proxy_admin_viewer").await;
    let dev = user_with_password(app, "dev@example.com", "internal_user").await;
    let reader = user_with_password(app, "reader@example.com", "internal_user_viewer").await;
    let lead = user_with_password(app, "lead@example.com", "internal_user").await;
    let research = admin_api(
        app,
        "/team/new",
        json!({"team_alias": "research", "members_with_roles": [
            {"user_id": lead, "role": "admin"}, {"user_id": dev, "role": "user"}, {"user_id": reader, "role": "user"}]}),
    )
    .await["team_id"]
        .as_str()
        .unwrap()
        .to_string();
    admin_api(
        app,
        "/team/new",
        json!({"team_alias": "platform", "members_with_roles": [{"user_id": lead, "role": "user"}]}),
    )
    .await;
    // Keys with two weeks of spend: the lead's two (one billed to the team), the developer's,
    // the reader's.
    let keys = vec![
        (key_hash_for(app, &lead, "laptop").await, lead.clone(), None),
        (
            key_hash_for(app, &lead, "research-batch").await,
            lead.clone(),
            Some(research.clone()),
        ),
        (key_hash_for(app, &dev, "notebook").await, dev.clone(), None),
        (
            key_hash_for(app, &reader, "dashboard").await,
            reader.clone(),
            None,
        ),
    ];
    seed_spend(app, &keys).await;
    let mut pending_link = String::new();
    for email in [
        "new.hire@example.com",
        "a.rather.long.email.address.for.layout@subdomain.example.com",
        "joiner@example.com",
    ] {
        let v = admin_api(
            app,
            "/user/new",
            json!({"user_email": email, "user_role": "internal_user"}),
        )
        .await;
        let inv = admin_api(app, "/invitation/new", json!({"user_id": v["user_id"]})).await;
        let id = inv["id"].as_str().unwrap();
        pending_link = app.url(&format!("/ui/onboarding?id={id}"));
    }

    // Public pages.
    let public = s.browser(1280, 800).await;
    public.goto(&app.url("/ui/login")).await.unwrap();
    shoot(&public, &dir, "login").await;
    public
        .fill("#login-username", "dev@example.com")
        .await
        .unwrap();
    public
        .fill("#login-password", "wrong-password-123")
        .await
        .unwrap();
    public
        .click_and_wait("form[action='/ui/login'] button[type='submit']")
        .await
        .unwrap();
    shoot(&public, &dir, "login-error").await;
    public.goto(&pending_link).await.unwrap();
    shoot(&public, &dir, "onboarding").await;
    public.fill("#onb-password", NEW_PASSWORD).await.unwrap();
    public.fill("#onb-confirm", NEW_PASSWORD).await.unwrap();
    public
        .click_and_wait("form[action='/ui/onboarding'] button[type='submit']")
        .await
        .unwrap();
    public.goto(&pending_link).await.unwrap();
    shoot(&public, &dir, "onboarding-used").await;
    public.close().await.unwrap();

    let team = format!("/ui/teams/{research}");
    let everyone = [
        ("home", "/ui"),
        ("teams", "/ui/teams"),
        ("team", team.as_str()),
        ("account", "/ui/account"),
        ("keys", "/ui/keys"),
        ("usage", "/ui/usage"),
        ("usage-7-days", "/ui/usage?days=7"),
        ("models", "/ui/models"),
    ];
    let usage_of_lead = format!("/ui/usage?scope=user:{lead}");
    let usage_of_team = format!("/ui/usage?scope=team:{research}");
    let admins_only = [
        ("users", "/ui/users"),
        ("invitations", "/ui/invitations"),
        ("audit", "/ui/audit"),
        ("usage-user", usage_of_lead.as_str()),
        ("usage-team", usage_of_team.as_str()),
    ];
    let master_key = app.master_key.clone();
    for (role, user, password, admin_pages) in [
        ("proxy_admin", "admin", master_key.as_str(), true),
        ("proxy_admin_viewer", "viewer@example.com", STRONG, true),
        ("internal_user", "lead@example.com", STRONG, false),
        ("internal_user_viewer", "reader@example.com", STRONG, false),
    ] {
        let b = s.browser(1280, 800).await;
        ui_login(&b, app, user, password).await;
        let pages = everyone
            .iter()
            .chain(admin_pages.then_some(&admins_only).into_iter().flatten());
        for (name, path) in pages {
            b.goto(&app.url(path)).await.unwrap();
            shoot(&b, &dir, &format!("{role}-{name}")).await;
        }
        if role == "proxy_admin" {
            // The panel with a new user's invitation link, and a delete confirmation.
            b.goto(&app.url("/ui/users")).await.unwrap();
            b.fill("#new-email", "just.added@example.com")
                .await
                .unwrap();
            b.click_and_wait("form[method='post'][action='/ui/users'] button[type='submit']")
                .await
                .unwrap();
            shoot(&b, &dir, "proxy_admin-users-created").await;
            b.click_and_wait("a[href$='/delete']").await.unwrap();
            shoot(&b, &dir, "proxy_admin-user-delete-confirm").await;
        }
        b.close().await.unwrap();
    }

    // A phone-sized screen.
    let narrow = s.browser(390, 844).await;
    ui_login(&narrow, app, "admin", &master_key).await;
    shoot(&narrow, &dir, "proxy_admin-home-narrow").await;
    for (name, path) in [
        ("users", "/ui/users"),
        ("usage", "/ui/usage"),
        ("keys", "/ui/keys"),
        ("models", "/ui/models"),
        ("audit", "/ui/audit"),
    ] {
        narrow.goto(&app.url(path)).await.unwrap();
        shoot(&narrow, &dir, &format!("proxy_admin-{name}-narrow")).await;
    }
    narrow.close().await.unwrap();
    let narrow = s.browser(360, 780).await;
    ui_login(&narrow, app, "lead@example.com", STRONG).await;
    for (name, path) in [
        ("home", "/ui"),
        ("usage", "/ui/usage"),
        ("keys", "/ui/keys"),
    ] {
        narrow.goto(&app.url(path)).await.unwrap();
        shoot(&narrow, &dir, &format!("internal_user-{name}-narrow-360")).await;
    }
    narrow.close().await.unwrap();
    println!("screenshots in {}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_sign_in_from_the_login_page_to_the_keys_page_and_out_through_the_provider() {
    let _one = BROWSERS.lock().await;
    let Some(path) = chromedriver_or_skip(
        "sso_sign_in_from_the_login_page_to_the_keys_page_and_out_through_the_provider",
    ) else {
        return;
    };
    let idp = OidcProvider::start("tollgate-browser", "browser-test-secret").await;
    idp.sign_in_as(IdpUser::new("sub-kim", "kim@example.com"));
    let upstream = FakeUpstream::start().await;
    let logout = format!("{}/logged-out", upstream.base_url);
    let app = spawn_app_vars(
        CONFIG,
        &[
            ("GENERIC_CLIENT_ID", "tollgate-browser"),
            ("GENERIC_CLIENT_SECRET", "browser-test-secret"),
            ("GENERIC_ISSUER", idp.issuer.as_str()),
            ("TOLLGATE_SSO_PROVIDER_NAME", "Test IdP"),
            ("TOLLGATE_SSO_ALLOWED_DOMAINS", "example.com"),
            ("PROXY_LOGOUT_URL", logout.as_str()),
        ],
    )
    .await;
    let driver = ChromeDriver::start(&path)
        .await
        .expect("chromedriver starts");
    let b = driver
        .open(1280, 800)
        .await
        .expect("a headless Chromium session");

    b.goto(&app.url("/ui/login")).await.unwrap();
    assert!(
        b.exists("#login-password").await.unwrap(),
        "the password form stays"
    );
    assert_eq!(
        b.text("#sso-login").await.unwrap().trim(),
        "Sign in with Test IdP"
    );
    b.click_and_wait("#sso-login").await.unwrap();
    b.wait_for_path("/ui").await.unwrap();
    assert!(b
        .text(".topbar .who")
        .await
        .unwrap()
        .contains("kim@example.com"));
    assert!(b.cookie(SESSION_COOKIE).await.unwrap().is_some());
    nav(&b, "/ui/keys").await;
    assert_eq!(b.text("main h1").await.unwrap().trim(), "Keys");

    // Logging out goes through the provider's end-session endpoint to PROXY_LOGOUT_URL.
    b.click_and_wait("form[action='/ui/logout'] button[type='submit']")
        .await
        .unwrap();
    b.wait_for_path("/logged-out").await.unwrap();
    let logouts = idp.logouts();
    assert_eq!(logouts.len(), 1);
    assert!(logouts[0].id_token_hint.is_some());
    b.goto(&app.url("/ui/keys")).await.unwrap();
    assert_eq!(b.path().await.unwrap(), "/ui/login");
    b.close().await.unwrap();
    app.stop().await;
}
