//! The self-serve identity flow through the management API: users, invitations, onboarding,
//! login, sessions, roles and the audit log, on the real app with a fresh store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_domain::policy::{decide, routes, Decision, Method};
use tollgate_domain::role::Role;
use tollgate_testkit::{spawn_app, spawn_app_vars, TestApp};

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hi", input_cost_per_token: 0, output_cost_per_token: 0}
general_settings: {master_key: "{master_key}"}
"#;

const STRONG: &str = "correct-horse-battery-staple-42";

async fn admin(app: &TestApp, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    call(app, &app.master_key, method, path, body).await
}

async fn call(
    app: &TestApp,
    bearer: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.api(bearer, method, path, body).await
}

async fn new_user(app: &TestApp, email: &str, role: &str) -> String {
    let (s, v) = admin(
        app,
        "POST",
        "/user/new",
        json!({"user_email": email, "user_role": role}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["user_id"].as_str().unwrap().to_string()
}

/// Creates a user with a password (admin reset) and logs in; returns (user_id, bearer token).
async fn user_with_login(app: &TestApp, email: &str, role: &str) -> (String, String) {
    let id = new_user(app, email, role).await;
    let (s, v) = admin(
        app,
        "POST",
        "/user/update",
        json!({"user_id": id, "password": STRONG}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    (id, login(app, email, STRONG).await)
}

async fn login(app: &TestApp, email: &str, password: &str) -> String {
    let resp = app
        .client()
        .post(app.url("/v2/login"))
        .json(&json!({"username": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "login {email}");
    let v: Value = resp.json().await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn admin_creates_user_and_invitation_user_onboards_and_logs_in() {
    let app = spawn_app_vars(CONFIG, &[("PROXY_BASE_URL", "https://gw.example.com")]).await;
    let (s, v) = admin(
        &app,
        "POST",
        "/user/new",
        json!({"user_email": "Ada@Example.com", "user_role": "internal_user", "auto_create_key": false}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["key"].is_null(),
        "no key when auto_create_key is false, and it says so"
    );
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("without an API key"));
    // LiteLLM's default creates a first key for the user, which works at once.
    let (s, w) = admin(
        &app,
        "POST",
        "/user/new",
        json!({"user_email": "keyed@example.com"}),
    )
    .await;
    assert_eq!(s, 200, "{w}");
    let first = w["key"].as_str().unwrap();
    let r = app
        .client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(first)
        .json(&json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let user_id = v["user_id"].as_str().unwrap().to_string();
    assert_eq!(user_id.len(), 36, "a uuid");
    assert!(v.get("password").is_none());

    // Duplicates (any case) and passwords are refused.
    let (s, _) = admin(
        &app,
        "POST",
        "/user/new",
        json!({"user_email": "ada@example.com"}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = admin(
        &app,
        "POST",
        "/user/new",
        json!({"user_email": "b@example.com", "password": "x"}),
    )
    .await;
    assert_eq!(s, 422);

    let (s, inv) = admin(&app, "POST", "/invitation/new", json!({"user_id": user_id})).await;
    assert_eq!(s, 200, "{inv}");
    let id = inv["id"].as_str().unwrap().to_string();
    assert_eq!(inv["is_accepted"], false);
    assert!(inv["accepted_at"].is_null());
    let created =
        chrono::DateTime::parse_from_rfc3339(inv["created_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(inv["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 7 * 86_400);
    assert_eq!(
        inv["invitation_link"],
        format!("https://gw.example.com/ui/onboarding?id={id}")
    );
    let (s, _) = admin(
        &app,
        "POST",
        "/invitation/new",
        json!({"user_id": "nobody"}),
    )
    .await;
    assert_eq!(s, 400);

    // The API onboarding: get_token changes nothing; claim sets the password once.
    let (s, t) = admin(
        &app,
        "GET",
        &format!("/onboarding/get_token?invite_link={id}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let outer = t["token"].as_str().unwrap().to_string();
    assert!(t["login_url"]
        .as_str()
        .unwrap()
        .starts_with("https://gw.example.com/ui/onboarding?token="));
    let (s, again) = admin(
        &app,
        "GET",
        &format!("/invitation/info?invitation_id={id}"),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, again["is_accepted"].clone()),
        (StatusCode::OK, json!(false)),
        "opening changes nothing"
    );
    // A second invitation coexists until the user has set a password.
    let (_, second) = admin(&app, "POST", "/invitation/new", json!({"user_id": user_id})).await;
    let second = second["id"].as_str().unwrap().to_string();
    // LiteLLM's UI links carry the token instead of the id; the page understands both.
    let page = app
        .client()
        .get(app.url(&format!("/ui/onboarding?token={outer}")))
        .send()
        .await
        .unwrap();
    let status = page.status();
    let text = page.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Ada@Example.com"));
    let claim = |pw: &str| {
        let c = app.client();
        let url = app.url("/onboarding/claim_token");
        let body = json!({"invitation_link": id, "user_id": user_id, "password": pw});
        let outer = outer.clone();
        async move {
            c.post(url)
                .bearer_auth(outer)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        claim("password1234").await.status(),
        400,
        "weak passwords are refused"
    );
    let ok = claim(STRONG).await;
    assert_eq!(ok.status(), 200);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Secure"),
        "{cookie}"
    );
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["login_url"], "https://gw.example.com/ui?login=success");
    let r = claim(STRONG).await;
    assert_eq!(r.status(), 401, "single use");
    assert!(r.text().await.unwrap().contains("already been used"));
    let (s, _) = admin(
        &app,
        "GET",
        &format!("/invitation/info?invitation_id={second}"),
        json!({}),
    )
    .await;
    assert_eq!(
        s, 400,
        "the other pending invitation was revoked by the claim"
    );

    // Login with the email in any case; the token is a management bearer for that user.
    let token = login(&app, "ADA@example.COM", STRONG).await;
    let (s, me) = call(&app, &token, "GET", "/user/info", json!({})).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["user_info"]["user_email"], "Ada@Example.com");
    assert!(
        !me.to_string().contains("argon2"),
        "no password hash ever leaves"
    );
    // Logout ends the session: the token stops working.
    let (s, _) = call(&app, &token, "POST", "/session/logout", json!({})).await;
    assert_eq!(s, 200);
    let (s, _) = call(&app, &token, "GET", "/user/info", json!({})).await;
    assert_eq!(s, 401);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_claims_have_one_winner() {
    let app = spawn_app(CONFIG).await;
    let user_id = new_user(&app, "race@example.com", "internal_user").await;
    let (_, inv) = admin(&app, "POST", "/invitation/new", json!({"user_id": user_id})).await;
    let id = inv["id"].as_str().unwrap().to_string();
    let (_, t) = admin(
        &app,
        "GET",
        &format!("/onboarding/get_token?invite_link={id}"),
        json!({}),
    )
    .await;
    let token = t["token"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let c = app.client();
        let url = app.url("/onboarding/claim_token");
        let body =
            json!({"invitation_link": id, "user_id": user_id, "password": format!("{STRONG}-{i}")});
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            c.post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    app.stop().await;
}

#[tokio::test]
async fn roles_scope_what_each_user_sees_and_does() {
    let app = spawn_app(CONFIG).await;
    let (alice, alice_t) = user_with_login(&app, "alice@example.com", "internal_user").await;
    let (bob, _) = user_with_login(&app, "bob@example.com", "internal_user").await;
    let (_, viewer_t) = user_with_login(&app, "viewer@example.com", "proxy_admin_viewer").await;

    let (s, _) = call(
        &app,
        &alice_t,
        "GET",
        &format!("/user/info?user_id={alice}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = call(
        &app,
        &alice_t,
        "GET",
        &format!("/user/info?user_id={bob}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    let (s, _) = call(&app, &alice_t, "GET", "/user/list", json!({})).await;
    assert!(s == 401 || s == 403);
    let (s, _) = call(
        &app,
        &alice_t,
        "POST",
        "/user/new",
        json!({"user_email": "x@example.com"}),
    )
    .await;
    assert_eq!(s, 401, "LiteLLM's status for admin-only routes");
    // No one raises their own role.
    let (s, _) = call(
        &app,
        &alice_t,
        "POST",
        "/user/update",
        json!({"user_id": alice, "user_role": "proxy_admin"}),
    )
    .await;
    assert!(s == 401 || s == 403);

    // The viewer sees everything and changes nothing.
    let (s, v) = call(&app, &viewer_t, "GET", "/user/list?page_size=10", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(v["total"], 3);
    assert!(!v.to_string().contains("argon2"));
    let (s, _) = call(
        &app,
        &viewer_t,
        "GET",
        &format!("/user/info?user_id={bob}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &app,
        &viewer_t,
        "POST",
        "/user/delete",
        json!({"user_ids": [bob]}),
    )
    .await;
    assert!(s == 401 || s == 403);

    // A role change ends the user's sessions.
    let (s, _) = admin(
        &app,
        "POST",
        "/user/update",
        json!({"user_id": alice, "user_role": "internal_user_viewer"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(&app, &alice_t, "GET", "/user/info", json!({})).await;
    assert_eq!(s, 401);

    // Deleting a user ends everything of theirs.
    let bob_t = login(&app, "bob@example.com", STRONG).await;
    let (s, v) = admin(&app, "POST", "/user/delete", json!({"user_ids": [bob]})).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = call(&app, &bob_t, "GET", "/user/info", json!({})).await;
    assert_eq!(s, 401);

    // Every write so far is in the audit log, without secrets.
    let (s, audit) = admin(&app, "GET", "/audit?page_size=100", json!({})).await;
    assert_eq!(s, 200);
    let actions: HashSet<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["user.create", "user.update", "user.delete"] {
        assert!(actions.contains(a), "{a} missing: {actions:?}");
    }
    assert!(!audit.to_string().contains(STRONG));
    assert!(!audit.to_string().contains("argon2"));
    let (s, _) = call(&app, &viewer_t, "GET", "/audit", json!({})).await;
    assert_eq!(s, 200, "admin roles read the audit log");
    app.stop().await;
}

#[tokio::test]
async fn login_is_throttled_and_unknown_emails_look_like_wrong_passwords() {
    let app = spawn_app(CONFIG).await;
    user_with_login(&app, "t@example.com", "internal_user").await;
    let attempt = |user: &'static str| {
        let c = app.client();
        let url = app.url("/v2/login");
        async move {
            c.post(url)
                .json(&json!({"username": user, "password": "wrong-password-123"}))
                .send()
                .await
                .unwrap()
        }
    };
    let unknown = attempt("nobody@example.com").await;
    let wrong = attempt("t@example.com").await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        unknown.text().await.unwrap(),
        wrong.text().await.unwrap(),
        "same answer"
    );
    let mut last = StatusCode::OK;
    let mut retry_after = None;
    for _ in 0..6 {
        let r = attempt("t@example.com").await;
        last = r.status();
        retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
    }
    assert_eq!(last, 429);
    assert!(retry_after.is_some());
    app.stop().await;
}

#[tokio::test]
async fn admin_ui_credentials_and_cross_site_logins() {
    let app = spawn_app_vars(
        CONFIG,
        &[
            ("UI_USERNAME", "root"),
            ("UI_PASSWORD", "ui-secret-password-99"),
        ],
    )
    .await;
    let t = login(&app, "root", "ui-secret-password-99").await;
    let (s, v) = call(&app, &t, "GET", "/user/list", json!({})).await;
    assert_eq!(s, 200, "the admin login is a proxy_admin: {v}");
    // A form post from another site must not log anyone in.
    let r = app
        .client()
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("username", "root"), ("password", "ui-secret-password-99")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A script's form post (no browser headers) works, LiteLLM-style: 303 and a cookie.
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c
        .post(app.url("/login"))
        .form(&[("username", "root"), ("password", "ui-secret-password-99")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("/ui?login=success"));
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("tollgate_session="));
    // A UI session is not an API key: it can't call inference.
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = app
        .client()
        .post(app.url("/v1/chat/completions"))
        .header("cookie", &cookie)
        .json(&json!({"model": "demo", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Nor may a cookie change anything without the CSRF token.
    let r = app
        .client()
        .post(app.url("/user/new"))
        .header("cookie", &cookie)
        .json(&json!({"user_email": "z@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn teams_and_team_admins() {
    let app = spawn_app(CONFIG).await;
    let (lead, lead_t) = user_with_login(&app, "lead@example.com", "internal_user").await;
    let (dev, dev_t) = user_with_login(&app, "dev@example.com", "internal_user").await;
    let (s, team) = admin(&app, "POST", "/team/new", json!({"team_alias": "research", "members_with_roles": [{"user_id": lead, "role": "admin"}]})).await;
    assert_eq!(s, 200, "{team}");
    let team_id = team["team_id"].as_str().unwrap().to_string();
    // The team admin adds a member; the member can't.
    let (s, v) = call(
        &app,
        &lead_t,
        "POST",
        "/team/member_add",
        json!({"team_id": team_id, "member": {"user_email": "dev@example.com", "role": "user"}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = call(
        &app,
        &dev_t,
        "POST",
        "/team/member_delete",
        json!({"team_id": team_id, "user_id": lead}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, info) = call(
        &app,
        &dev_t,
        "GET",
        &format!("/team/info?team_id={team_id}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(info["team_memberships"].as_array().unwrap().len(), 2);
    // Team admins can't raise their team's budget.
    let (s, _) = call(
        &app,
        &lead_t,
        "POST",
        "/team/update",
        json!({"team_id": team_id, "max_budget": 1000}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(
        &app,
        &lead_t,
        "POST",
        "/team/member_update",
        json!({"team_id": team_id, "user_id": dev, "role": "admin"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, list) = call(&app, &dev_t, "GET", "/team/list", json!({})).await;
    assert_eq!((s, list.as_array().unwrap().len()), (StatusCode::OK, 1));

    // Invitations let their holder set a password: only proxy admins create them. (A team admin
    // who could invite could add any not-yet-onboarded user to their team and take the account.)
    let newbie = new_user(&app, "newbie@example.com", "internal_user").await;
    let (s, _) = admin(
        &app,
        "POST",
        "/team/member_add",
        json!({"team_id": team_id, "member": {"user_id": newbie, "role": "user"}}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = call(
        &app,
        &lead_t,
        "POST",
        "/invitation/new",
        json!({"user_id": newbie}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = admin(&app, "POST", "/invitation/new", json!({"user_id": newbie})).await;
    assert_eq!(s, 200, "{v}");
    let inv_id = v["id"].as_str().unwrap().to_string();
    let (s, _) = call(
        &app,
        &lead_t,
        "POST",
        "/invitation/delete",
        json!({"invitation_id": inv_id}),
    )
    .await;
    assert_eq!(
        s, 400,
        "only its creator or a proxy admin revokes an invitation"
    );
    // Team admins don't set money: not even their own budget inside the team.
    let (s, _) = call(
        &app,
        &lead_t,
        "POST",
        "/team/member_update",
        json!({"team_id": team_id, "user_id": lead, "max_budget_in_team": 1000000}),
    )
    .await;
    assert_eq!(s, 403);
    // A role change revokes pending invitations (the link would otherwise open the new role).
    let (s, _) = admin(
        &app,
        "POST",
        "/user/update",
        json!({"user_id": newbie, "user_role": "proxy_admin"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = admin(
        &app,
        "GET",
        &format!("/invitation/info?invitation_id={inv_id}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 400, "revoked");
    // Encoded slashes can't retarget a confirm page's form.
    let r = app
        .client()
        .get(app.url("/ui/invitations/x%2F..%2F..%2Fusers%2Fvictim/delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;
}

/// The generated RBAC matrix: every role × every management route the app serves, checked
/// against the policy table. Scoped and handler-decided routes must not be refused by the gate;
/// denied ones must be refused with the table's status.
#[tokio::test]
async fn rbac_matrix_follows_the_policy_table() {
    let app = spawn_app(CONFIG).await;
    let mut tokens = Vec::new();
    for (i, role) in Role::ALL.iter().enumerate() {
        let (_, t) = user_with_login(&app, &format!("matrix{i}@example.com"), role.as_str()).await;
        tokens.push((*role, t));
    }
    // Each role presents both credentials it may hold: a login token and a virtual key of its own.
    let mut creds = Vec::new();
    for (role, token) in &tokens {
        let (_, me) = call(&app, token, "GET", "/user/info", json!({})).await;
        let uid = me["user_id"].as_str().unwrap().to_string();
        let (s, k) = admin(&app, "POST", "/key/generate", json!({"user_id": uid})).await;
        assert_eq!(s, 200, "{k}");
        creds.push((*role, token.clone(), "login token"));
        creds.push((*role, k["key"].as_str().unwrap().to_string(), "virtual key"));
    }
    // Every route of the policy table that the gateway serves (the master key gets anything but
    // the "no such route" fallback) is checked, so a new route cannot slip past this matrix.
    // Logout is left out: it would end the session the other calls use (tested on its own).
    let mut served: HashSet<&str> = HashSet::new();
    for rule in routes() {
        let (status, body) = admin(&app, rule.method.as_str(), rule.path, json!({})).await;
        let fallback = status == 404 && body.to_string().contains("no such route");
        if !fallback && rule.path != "/session/logout" {
            served.insert(rule.path);
        }
    }
    for must in [
        "/key/generate",
        "/spend/logs",
        "/global/spend",
        "/model/info",
        "/user/daily/activity",
    ] {
        assert!(served.contains(must), "{must} is not served");
    }
    let mut checked = 0;
    for rule in routes().iter().filter(|r| served.contains(r.path)) {
        let method = rule.method.as_str();
        // The model list is an inference route: keys only, never a login session (DESIGN).
        let inference = matches!(
            rule.path,
            "/v1/models" | "/models" | "/v1/models/{model}" | "/models/{model}"
        );
        for (role, token, what) in &creds {
            let (status, body) = call(&app, token, method, rule.path, json!({})).await;
            if inference && *what == "login token" {
                assert_eq!(status, 401, "{role:?} login token {} : {body}", rule.path);
                checked += 1;
                continue;
            }
            match decide(method, rule.path, *role) {
                Decision::Deny { status: want, .. } => {
                    assert_eq!(
                        status.as_u16(),
                        want,
                        "{role:?} ({what}) {method} {}: {body}",
                        rule.path
                    );
                }
                // The master key's own route: the handler refuses every other credential,
                // proxy admins included, as LiteLLM does.
                _ if rule.path == "/global/spend/reset" => {
                    assert_eq!(status, 401, "{role:?} ({what}): {body}");
                    assert!(body.to_string().contains("only for MASTER KEY"), "{body}");
                }
                _ => {
                    let gate_refusal = status == 401
                        || (status == 403
                            && body
                                .to_string()
                                .contains("not allowed to access this route"));
                    assert!(
                        !gate_refusal,
                        "{role:?} ({what}) {method} {} was refused: {status} {body}",
                        rule.path
                    );
                }
            }
            checked += 1;
        }
        let _ = Method::Get;
    }
    assert!(checked >= 300, "only {checked} cases checked");
    app.stop().await;
}

#[tokio::test]
async fn invitation_emails_go_through_a_real_smtp_server() {
    use tollgate_testkit::smtp::SmtpServer;
    let smtp = SmtpServer::start().await;
    let port = smtp.addr.port().to_string();
    let app = spawn_app_vars(
        CONFIG,
        &[
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", &port),
            ("SMTP_SENDER_EMAIL", "gateway@example.com"),
            ("SMTP_TLS", "False"),
            ("PROXY_BASE_URL", "https://gw.example.com"),
        ],
    )
    .await;
    let (s, v) = admin(
        &app,
        "POST",
        "/user/new",
        json!({"user_email": "mail.me@example.com", "send_invite_email": true}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["invitation_email"]["sent"], true, "{v}");
    let link = v["invitation_link"].as_str().unwrap().to_string();
    assert!(link.starts_with("https://gw.example.com/ui/onboarding?id="));
    let mails = smtp
        .wait_for_messages(1, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["mail.me@example.com".to_string()]);
    assert!(
        mails[0].data.contains(&link),
        "the real link, not the base URL"
    );
    app.stop().await;

    // With the SMTP server gone, the admin is told; the invitation still exists.
    let app = spawn_app_vars(
        CONFIG,
        &[
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", "9"),
            ("SMTP_SENDER_EMAIL", "gateway@example.com"),
            ("SMTP_TLS", "False"),
            ("SMTP_TIMEOUT", "3"),
        ],
    )
    .await;
    let (s, v) = admin(
        &app,
        "POST",
        "/user/new",
        json!({"user_email": "down@example.com", "send_invite_email": true}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["invitation_email"]["sent"], false);
    assert!(v["invitation_email"]["error"].as_str().unwrap().len() > 5);
    let link = v["invitation_link"].as_str().unwrap();
    let id = link.split("id=").nth(1).unwrap();
    let (s, inv) = admin(
        &app,
        "GET",
        &format!("/invitation/info?invitation_id={id}"),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, inv["is_accepted"].clone()),
        (StatusCode::OK, json!(false))
    );
    app.stop().await;
}

/// The object dimension of the matrix: for the scoped routes, each role against its own object
/// and someone else's.
#[tokio::test]
async fn rbac_matrix_own_and_other_objects() {
    let app = spawn_app(CONFIG).await;
    let mut people = Vec::new();
    for (i, role) in Role::ALL.iter().enumerate() {
        let (id, t) = user_with_login(&app, &format!("own{i}@example.com"), role.as_str()).await;
        people.push((*role, id, t));
    }
    let (other_user, _) = user_with_login(&app, "someone.else@example.com", "internal_user").await;
    let (s, other_team) = admin(&app, "POST", "/team/new", json!({"team_alias": "others", "members_with_roles": [{"user_id": other_user, "role": "admin"}]})).await;
    assert_eq!(s, 200);
    let other_team = other_team["team_id"].as_str().unwrap().to_string();
    for (role, id, token) in &people {
        // Each person administers a team of their own.
        let (s, own_team) = admin(&app, "POST", "/team/new", json!({"team_alias": format!("team-of-{id}"), "members_with_roles": [{"user_id": id, "role": "admin"}]})).await;
        assert_eq!(s, 200);
        let own_team = own_team["team_id"].as_str().unwrap().to_string();
        let sees_all = role.sees_all();
        let writes = role.can_write();
        let cases: Vec<(&str, String, Value, bool)> = vec![
            ("GET", format!("/user/info?user_id={id}"), json!({}), true),
            (
                "GET",
                format!("/user/info?user_id={other_user}"),
                json!({}),
                sees_all,
            ),
            (
                "GET",
                format!("/team/info?team_id={own_team}"),
                json!({}),
                true,
            ),
            (
                "GET",
                format!("/team/info?team_id={other_team}"),
                json!({}),
                sees_all,
            ),
            (
                "POST",
                "/team/update".to_string(),
                json!({"team_id": own_team, "team_alias": "renamed"}),
                writes && *role != Role::ProxyAdminViewer,
            ),
            (
                "POST",
                "/team/update".to_string(),
                json!({"team_id": other_team, "team_alias": "hijacked"}),
                *role == Role::ProxyAdmin,
            ),
            (
                "POST",
                "/team/member_update".to_string(),
                json!({"team_id": other_team, "user_id": other_user, "role": "user"}),
                *role == Role::ProxyAdmin,
            ),
        ];
        for (method, path, body, allowed) in cases {
            let (status, v) = call(&app, token, method, &path, body).await;
            if allowed {
                assert_eq!(status, 200, "{role:?} {method} {path}: {v}");
            } else {
                assert!(
                    status == 401 || status == 403,
                    "{role:?} {method} {path} should be refused: {status} {v}"
                );
            }
        }
        // Restore the other team's admin for the next role's checks.
        if *role == Role::ProxyAdmin {
            let (s, _) = admin(
                &app,
                "POST",
                "/team/member_update",
                json!({"team_id": other_team, "user_id": other_user, "role": "admin"}),
            )
            .await;
            assert_eq!(s, 200);
        }
    }
    app.stop().await;
}
