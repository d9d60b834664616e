//! OpenID Connect sign-in to the UI, end to end against the test provider in the testkit, with a
//! plain HTTP client that keeps the gateway's cookies itself: first sign-ins (created by allowed
//! domain, linked by email with the invitation consumed, later found by subject), the role map,
//! logout through the provider, the pending sign-in on another instance, and every attack the
//! flow must refuse with a page and no session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_store::{AuditFilter, Backend};
use tollgate_testkit::oidc::{IdpUser, Misbehave, OidcProvider};
use tollgate_testkit::services::TestDatabase;
use tollgate_testkit::{spawn_app_on, spawn_app_vars, TestApp};

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hi"}
general_settings: {master_key: "{master_key}"}
"#;

const CLIENT_ID: &str = "tollgate-test-client";
const CLIENT_SECRET: &str = "test-client-secret-4d9c";
const SESSION_COOKIE: &str = "tollgate_session";
const PENDING_COOKIE: &str = "tollgate_sso_pending";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A browser reduced to the gateway's cookies.
#[derive(Default, Clone)]
struct Jar {
    cookies: HashMap<String, String>,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
    csp: Option<String>,
}

impl Jar {
    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn has(&self, name: &str) -> bool {
        self.cookies.contains_key(name)
    }

    fn absorb(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let text = v.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
    }

    async fn answer(&mut self, resp: reqwest::Response) -> Answer {
        self.absorb(&resp);
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let csp = resp
            .headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_string());
        Answer {
            status,
            location,
            body: resp.text().await.unwrap_or_default(),
            csp,
        }
    }

    async fn get(&mut self, url: &str) -> Answer {
        let resp = http()
            .get(url)
            .header("cookie", self.header())
            .send()
            .await
            .unwrap();
        self.answer(resp).await
    }

    async fn post(&mut self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> Answer {
        let resp = http()
            .post(app.url(path))
            .header("cookie", self.header())
            .header("origin", app.base_url.as_str())
            .form(form)
            .send()
            .await
            .unwrap();
        self.answer(resp).await
    }
}

/// One trip through the provider: the start and the provider's redirect back; the callback is
/// left to the caller.
struct Trip {
    /// The callback URL the provider sent the browser to.
    callback: String,
}

async fn to_provider_and_back(app: &TestApp, jar: &mut Jar) -> Trip {
    let start = jar.get(&app.url("/sso/key/generate")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    assert!(
        jar.has(PENDING_COOKIE),
        "the start binds the sign-in to this browser"
    );
    let authorize = start.location.expect("a redirect to the provider");
    // The provider holds no cookies of the gateway.
    let back = Jar::default().get(&authorize).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    let callback = back.location.expect("a redirect back");
    assert!(
        callback.starts_with(&app.url("/sso/callback?")),
        "{callback}"
    );
    Trip { callback }
}

/// Signs in through the provider; returns the callback's answer.
async fn sign_in(app: &TestApp, jar: &mut Jar) -> Answer {
    let trip = to_provider_and_back(app, jar).await;
    jar.get(&trip.callback).await
}

fn assert_signed_in(a: &Answer, jar: &Jar) {
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some("/ui"));
    assert!(jar.has(SESSION_COOKIE), "a session cookie");
    assert!(
        !jar.has(PENDING_COOKIE),
        "the pending sign-in cookie is cleared"
    );
}

fn assert_refused(a: &Answer, jar: &Jar, words: &str) {
    assert!(
        a.status.is_client_error(),
        "refused with a 4xx page, got {}: {}",
        a.status,
        a.body
    );
    assert!(a.body.contains("Sign-in refused"), "{}", a.body);
    assert!(a.body.contains(words), "{words:?} in {}", a.body);
    assert!(!jar.has(SESSION_COOKIE), "no session");
    assert!(!a.body.contains(CLIENT_SECRET));
}

async fn idp() -> OidcProvider {
    OidcProvider::start(CLIENT_ID, CLIENT_SECRET).await
}

fn sso_vars<'a>(idp: &'a OidcProvider, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("GENERIC_CLIENT_ID", CLIENT_ID),
        ("GENERIC_CLIENT_SECRET", CLIENT_SECRET),
        ("GENERIC_ISSUER", idp.issuer.as_str()),
        ("TOLLGATE_SSO_PROVIDER_NAME", "Test IdP"),
        ("TOLLGATE_SSO_ALLOWED_DOMAINS", "example.com"),
    ];
    v.extend_from_slice(more);
    v
}

async fn app_with(idp: &OidcProvider, more: &[(&str, &str)]) -> TestApp {
    spawn_app_vars(CONFIG, &sso_vars(idp, more)).await
}

async fn audit_actions(app: &TestApp) -> Vec<(String, Option<String>, Value)> {
    let (rows, _) = app
        .store
        .list_audit(&AuditFilter {
            page_size: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    rows.into_iter()
        .map(|e| (e.action, e.object_id, e.after.unwrap_or(Value::Null)))
        .collect()
}

async fn refusal_reasons(app: &TestApp) -> Vec<String> {
    audit_actions(app)
        .await
        .into_iter()
        .filter(|(a, _, _)| a == "sso.refuse")
        .map(|(_, _, after)| after["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn user_by_email(app: &TestApp, email: &str) -> Option<tollgate_store::UserRow> {
    app.store.get_user_by_email(email).await.unwrap()
}

fn csrf(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let len = html[start..].find('"').unwrap();
    html[start..start + len].to_string()
}

#[tokio::test]
async fn an_allowed_domain_gets_a_new_user_with_the_default_role_and_a_session() {
    let idp = idp().await;
    idp.sign_in_as(IdpUser::new("sub-ann", "Ann@Example.com"));
    let app = app_with(&idp, &[]).await;

    // The login page offers the provider beside the password form.
    let mut jar = Jar::default();
    let login = jar.get(&app.url("/ui/login")).await;
    assert!(
        login.body.contains("Sign in with Test IdP"),
        "{}",
        login.body
    );
    assert!(login.body.contains("name=\"password\""));
    let (_, settings) = app
        .api(&app.master_key, "GET", "/sso/get/ui_settings", Value::Null)
        .await;
    assert_eq!(settings["SSO_ENABLED"], true);

    let a = sign_in(&app, &mut jar).await;
    assert_signed_in(&a, &jar);
    let home = jar.get(&app.url("/ui")).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("ann@example.com"), "{}", home.body);

    let user = user_by_email(&app, "ann@example.com")
        .await
        .expect("a new user");
    assert_eq!(user.user_role, "internal_user_viewer");

    // The authorization request: code flow, PKCE S256, state and nonce, the callback URL.
    let auth = &idp.authorizations()[0];
    assert_eq!(auth["response_type"], "code");
    assert_eq!(auth["code_challenge_method"], "S256");
    assert!(auth["code_challenge"].len() >= 43);
    assert!(auth["state"].len() >= 16);
    assert!(auth["nonce"].len() >= 16);
    assert_eq!(auth["redirect_uri"], app.url("/sso/callback"));
    assert!(auth["scope"].split(' ').any(|s| s == "openid"));

    let actions: Vec<String> = audit_actions(&app).await.into_iter().map(|a| a.0).collect();
    for want in ["sso.user_create", "sso.link", "sso.sign_in"] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_default_role_comes_from_default_internal_user_params() {
    let idp = idp().await;
    idp.sign_in_as(IdpUser::new("sub-dan", "dan@example.com"));
    let config = format!(
        "{CONFIG}litellm_settings:\n  default_internal_user_params: {{user_role: internal_user}}\n"
    );
    let app = spawn_app_vars(&config, &sso_vars(&idp, &[])).await;
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    let user = user_by_email(&app, "dan@example.com").await.unwrap();
    assert_eq!(user.user_role, "internal_user");
    app.stop().await;
}

#[tokio::test]
async fn an_existing_user_is_linked_by_email_and_their_invitation_consumed() {
    let idp = idp().await;
    let app = app_with(&idp, &[]).await;
    // Outside the allowed domains: only an existing user may sign in with this email.
    let (s, created) = app
        .api(
            &app.master_key,
            "POST",
            "/user/new",
            json!({"user_email": "bob@partner.org", "user_role": "internal_user", "auto_create_key": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{created}");
    let bob = created["user_id"].as_str().unwrap().to_string();
    let (s, inv) = app
        .api(
            &app.master_key,
            "POST",
            "/invitation/new",
            json!({"user_id": bob}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    let pending = app.store.list_invitations(Some(&bob)).await.unwrap();
    assert!(pending.iter().all(|i| !i.is_accepted));

    idp.sign_in_as(IdpUser::new("sub-bob", "bob@partner.org"));
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    let link = app
        .store
        .get_sso_identity(&idp.issuer, "sub-bob")
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(link.user_id, bob);
    let after = app.store.list_invitations(Some(&bob)).await.unwrap();
    assert!(
        after.iter().all(|i| i.is_accepted),
        "the invitation is used"
    );
    let actions = audit_actions(&app).await;
    assert!(actions
        .iter()
        .any(|(a, id, _)| a == "sso.link" && id.as_deref() == Some(&bob)));
    assert!(actions
        .iter()
        .any(|(a, _, _)| a == "invitation.accept_by_sso"));
    assert!(!actions.iter().any(|(a, _, _)| a == "sso.user_create"));

    // Later sign-ins find the user by the provider's subject, even with a new email there.
    idp.sign_in_as(IdpUser::new("sub-bob", "robert@partner.org"));
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    let home = jar.get(&app.url("/ui")).await;
    assert!(home.body.contains("bob@partner.org"), "{}", home.body);
    assert!(user_by_email(&app, "robert@partner.org").await.is_none());
    app.stop().await;
}

#[tokio::test]
async fn an_email_outside_the_allowed_domains_is_refused() {
    let idp = idp().await;
    idp.sign_in_as(IdpUser::new("sub-eve", "eve@elsewhere.org"));
    let app = app_with(&idp, &[]).await;
    let mut jar = Jar::default();
    let a = sign_in(&app, &mut jar).await;
    assert_refused(&a, &jar, "not opened for its domain");
    assert!(user_by_email(&app, "eve@elsewhere.org").await.is_none());
    assert_eq!(refusal_reasons(&app).await, ["domain_not_allowed"]);
    app.stop().await;
}

#[tokio::test]
async fn an_unverified_email_is_refused() {
    let idp = idp().await;
    let app = app_with(&idp, &[]).await;
    for verified in [Some(false), None] {
        let mut user = IdpUser::new("sub-uma", "uma@example.com");
        user.email_verified = verified;
        idp.sign_in_as(user);
        let mut jar = Jar::default();
        let a = sign_in(&app, &mut jar).await;
        assert_refused(&a, &jar, "has not verified your email");
    }
    assert!(user_by_email(&app, "uma@example.com").await.is_none());
    assert_eq!(
        refusal_reasons(&app).await,
        ["email_not_verified", "email_not_verified"]
    );
    app.stop().await;
}

/// The provider signs a token that is wrong in one way: no session, no user.
async fn refused_token(how: Misbehave) {
    let idp = idp().await;
    idp.sign_in_as(IdpUser::new("sub-tom", "tom@example.com"));
    idp.misbehave(how);
    let app = app_with(&idp, &[]).await;
    let mut jar = Jar::default();
    let a = sign_in(&app, &mut jar).await;
    assert_refused(&a, &jar, "could not be verified");
    assert_eq!(idp.token_calls(), 1);
    assert!(user_by_email(&app, "tom@example.com").await.is_none());
    assert!(user_by_email(&app, "mallory@example.com").await.is_none());
    assert_eq!(refusal_reasons(&app).await, ["id_token_invalid"], "{how:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    refused_token(Misbehave::WrongAudience).await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    refused_token(Misbehave::Expired).await;
}

#[tokio::test]
async fn a_token_with_a_bad_signature_is_refused() {
    refused_token(Misbehave::BadSignature).await;
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    refused_token(Misbehave::AlgNone).await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    refused_token(Misbehave::WrongIssuer).await;
}

#[tokio::test]
async fn a_token_with_another_nonce_is_refused() {
    refused_token(Misbehave::WrongNonce).await;
}

#[tokio::test]
async fn a_wrong_or_missing_state_is_refused() {
    let idp = idp().await;
    idp.sign_in_as(IdpUser::new("sub-sam", "sam@example.com"));
    let app = app_with(&idp, &[]).await;

    let mut jar = Jar::default();
    let trip = to_provider_and_back(&app, &mut jar).await;
    let wrong = with_state(&trip.callback, Some("forged-state"));
    assert_refused(
        &jar.get(&wrong).await,
        &jar,
        "does not belong to the sign-in",
    );

    let mut jar = Jar::default();
    let trip = to_provider_and_back(&app, &mut jar).await;
    let missing = with_state(&trip.callback, None);
    assert_refused(
        &jar.get(&missing).await,
        &jar,
        "does not belong to the sign-in",
    );

    // The pending sign-in was used by the refused answer: the real one is refused too.
    assert_refused(
        &jar.get(&trip.callback).await,
        &jar,
        "expired, was already used, or was started in another browser",
    );
    assert_eq!(
        idp.token_calls(),
        0,
        "no code is exchanged without the state"
    );
    assert!(user_by_email(&app, "sam@example.com").await.is_none());
    app.stop().await;
}

fn with_state(callback: &str, state: Option<&str>) -> String {
    let mut u = url::Url::parse(callback).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "state")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    u.query_pairs_mut().clear();
    for (k, v) in pairs {
        u.query_pairs_mut().append_pair(&k, &v);
    }
    if let Some(s) = state {
        u.query_pairs_mut().append_pair("state", s);
    }
    u.to_string()
}

#[tokio::test]
async fn an_answer_in_a_browser_that_did_not_start_the_sign_in_is_refused() {
    let idp = idp().await;
    idp.sign_in_as(IdpUser::new("sub-mal", "mallory@example.com"));
    let app = app_with(&idp, &[]).await;
    // The attacker starts a sign-in and hands the callback link to a victim (login CSRF).
    let mut attacker = Jar::default();
    let trip = to_provider_and_back(&app, &mut attacker).await;
    let mut victim = Jar::default();
    let a = victim.get(&trip.callback).await;
    assert_refused(&a, &victim, "started in another browser");
    // Anyone can call the callback: refusals before the provider vouched for someone are not
    // audited (an audit row each would let them fill the log).
    assert!(refusal_reasons(&app).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let idp = idp().await;
    idp.sign_in_as(IdpUser::new("sub-rae", "rae@example.com"));
    let app = app_with(&idp, &[]).await;
    let mut jar = Jar::default();
    let trip = to_provider_and_back(&app, &mut jar).await;
    let pending = jar.cookies[PENDING_COOKIE].clone();
    assert_signed_in(&jar.get(&trip.callback).await, &jar);

    // The same answer again, even with the pending cookie put back: used once.
    let mut replay = Jar::default();
    replay.cookies.insert(PENDING_COOKIE.into(), pending);
    let a = replay.get(&trip.callback).await;
    assert_refused(&a, &replay, "already used");

    // A fresh sign-in in the same browser, answered with the old code: the provider refuses
    // the code, so does Tollgate.
    let mut jar = Jar::default();
    let fresh = to_provider_and_back(&app, &mut jar).await;
    let old_code = url::Url::parse(&trip.callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let mut u = url::Url::parse(&fresh.callback).unwrap();
    let state = u
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    u.query_pairs_mut()
        .clear()
        .append_pair("code", &old_code)
        .append_pair("state", &state);
    let a = jar.get(u.as_str()).await;
    assert_refused(&a, &jar, "could not be verified");
    assert!(!a.body.contains(&old_code), "the code is not shown back");
    // The replayed code reached the token exchange: recorded; the answer without a pending
    // sign-in is anyone's request: not.
    assert_eq!(refusal_reasons(&app).await, ["code_refused"]);
    app.stop().await;
}

#[tokio::test]
async fn an_error_answer_from_the_provider_is_refused() {
    let idp = idp().await;
    idp.answer_with_error(Some("access_denied"));
    let app = app_with(&idp, &[]).await;
    let mut jar = Jar::default();
    let a = sign_in(&app, &mut jar).await;
    assert_refused(&a, &jar, "access_denied");
    assert_eq!(idp.token_calls(), 0);
    assert!(refusal_reasons(&app).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_expired_pending_sign_in_is_refused() {
    let idp = idp().await;
    idp.sign_in_as(IdpUser::new("sub-old", "old@example.com"));
    let app = app_with(&idp, &[]).await;
    let mut jar = Jar::default();
    let trip = to_provider_and_back(&app, &mut jar).await;
    // Ten minutes pass.
    let sql = "UPDATE sso_pending_logins SET expires_at = created_at";
    match app.store.backend() {
        Backend::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
        Backend::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
    }
    .unwrap();
    let a = jar.get(&trip.callback).await;
    assert_refused(&a, &jar, "expired");
    assert_eq!(idp.token_calls(), 0);
    app.stop().await;
}

/// Two instances on one database: the sign-in starts on one and its answer reaches the other.
async fn answer_on_another_instance(db: &str) {
    let idp = idp().await;
    idp.sign_in_as(IdpUser::new("sub-ivy", "ivy@example.com"));
    let vars = sso_vars(&idp, &[]);
    let a = spawn_app_on(CONFIG, db, &vars).await;
    let b = spawn_app_on(CONFIG, db, &vars).await;
    let mut jar = Jar::default();
    let trip = to_provider_and_back(&a, &mut jar).await;
    let pending = jar.cookies[PENDING_COOKIE].clone();
    let on_b = trip.callback.replace(&a.base_url, &b.base_url);
    let answer = jar.get(&on_b).await;
    assert_signed_in(&answer, &jar);
    assert_eq!(jar.get(&b.url("/ui")).await.status, StatusCode::OK);
    assert_eq!(jar.get(&a.url("/ui")).await.status, StatusCode::OK);
    // …and only once: replayed on the first instance, with the same cookie, it is refused.
    let mut replay = Jar::default();
    replay.cookies.insert(PENDING_COOKIE.into(), pending);
    assert_refused(&replay.get(&trip.callback).await, &replay, "already used");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_answer_may_reach_another_instance() {
    let dir = tempfile::tempdir().unwrap();
    answer_on_another_instance(&format!(
        "sqlite:{}",
        dir.path().join("shared.db").display()
    ))
    .await;
}

#[tokio::test]
async fn the_answer_may_reach_another_instance_on_postgres() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    answer_on_another_instance(&db.url).await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_group_claim_maps_to_a_role() {
    let idp = idp().await;
    let app = app_with(
        &idp,
        &[
            ("GENERIC_USER_ROLE_ATTRIBUTE", "groups"),
            (
                "TOLLGATE_SSO_ROLE_MAP",
                "admins=proxy_admin,viewers=proxy_admin_viewer",
            ),
        ],
    )
    .await;
    // A new user in the viewers group.
    idp.sign_in_as(
        IdpUser::new("sub-vic", "vic@example.com").claim("groups", json!(["staff", "viewers"])),
    );
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    let vic = user_by_email(&app, "vic@example.com").await.unwrap();
    assert_eq!(vic.user_role, "proxy_admin_viewer");

    // Moved to the admins group: the next sign-in makes the user an admin, and the sessions
    // the old role had end.
    let old_session = jar.clone();
    idp.sign_in_as(
        IdpUser::new("sub-vic", "vic@example.com").claim("groups", json!(["admins", "viewers"])),
    );
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    let vic = user_by_email(&app, "vic@example.com").await.unwrap();
    assert_eq!(vic.user_role, "proxy_admin");
    let mut old = old_session;
    assert_eq!(old.get(&app.url("/ui")).await.status, StatusCode::SEE_OTHER);
    assert_eq!(jar.get(&app.url("/ui/users")).await.status, StatusCode::OK);
    assert!(audit_actions(&app)
        .await
        .iter()
        .any(|(a, _, _)| a == "sso.role_map"));

    // Removed from the mapped groups: with a role map the provider decides, so the user falls
    // back to the default role, and the admin's session ends.
    let admin_session = jar.clone();
    idp.sign_in_as(IdpUser::new("sub-vic", "vic@example.com").claim("groups", json!(["staff"])));
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    assert_eq!(
        user_by_email(&app, "vic@example.com")
            .await
            .unwrap()
            .user_role,
        "internal_user_viewer"
    );
    let mut old = admin_session;
    assert_eq!(old.get(&app.url("/ui")).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        jar.get(&app.url("/ui/users")).await.status,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

#[tokio::test]
async fn logout_ends_the_provider_session_then_goes_to_the_logout_url() {
    let idp = idp().await;
    idp.sign_in_as(IdpUser::new("sub-liz", "liz@example.com"));
    let bye = "https://intranet.example.com/bye";
    let app = app_with(&idp, &[("PROXY_LOGOUT_URL", bye)]).await;
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    let home = jar.get(&app.url("/ui")).await;
    // The logout form may send the browser on to the provider.
    assert!(
        home.csp.as_deref().unwrap().contains(&idp.issuer),
        "{:?}",
        home.csp
    );
    let token = csrf(&home.body);
    let out = jar.post(&app, "/ui/logout", &[("csrf", &token)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let to = out.location.unwrap();
    assert!(to.starts_with(&format!("{}/logout?", idp.issuer)), "{to}");
    assert!(!jar.has(SESSION_COOKIE));
    let at_idp = Jar::default().get(&to).await;
    assert_eq!(at_idp.location.as_deref(), Some(bye));
    let logout = &idp.logouts()[0];
    assert_eq!(logout.post_logout_redirect_uri.as_deref(), Some(bye));
    assert_eq!(logout.client_id.as_deref(), Some(CLIENT_ID));
    let hint = logout.id_token_hint.clone().unwrap();
    assert_eq!(hint.split('.').count(), 3, "an ID token");
    // The session is over.
    assert_eq!(jar.get(&app.url("/ui")).await.status, StatusCode::SEE_OTHER);

    // A password session's logout does not involve the provider.
    let r = http()
        .post(app.url("/ui/login"))
        .header("origin", app.base_url.as_str())
        .form(&[("username", "admin"), ("password", app.master_key.as_str())])
        .send()
        .await
        .unwrap();
    let mut admin = Jar::default();
    let a = admin.answer(r).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let home = admin.get(&app.url("/ui")).await;
    let out = admin
        .post(&app, "/ui/logout", &[("csrf", &csrf(&home.body))])
        .await;
    assert_eq!(out.location.as_deref(), Some(bye));
    assert_eq!(idp.logouts().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn password_login_can_be_turned_off_while_the_admin_keeps_a_way_in() {
    let idp = idp().await;
    let app = app_with(&idp, &[("TOLLGATE_PASSWORD_LOGIN", "false")]).await;
    let (_, created) = app
        .api(
            &app.master_key,
            "POST",
            "/user/new",
            json!({"user_email": "pat@example.com", "user_role": "internal_user", "auto_create_key": false}),
        )
        .await;
    let id = created["user_id"].as_str().unwrap();
    let (s, _) = app
        .api(
            &app.master_key,
            "POST",
            "/user/update",
            json!({"user_id": id, "password": "correct-horse-battery-staple-42"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut jar = Jar::default();
    let page = jar.get(&app.url("/ui/login")).await;
    assert!(page.body.contains("Sign in with Test IdP"));
    assert!(page.body.contains("Administrator sign-in"));
    let refused = jar
        .post(
            &app,
            "/ui/login",
            &[
                ("username", "pat@example.com"),
                ("password", "correct-horse-battery-staple-42"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(!jar.has(SESSION_COOKIE));
    let admin = jar
        .post(
            &app,
            "/ui/login",
            &[("username", "admin"), ("password", app.master_key.as_str())],
        )
        .await;
    assert_eq!(admin.status, StatusCode::SEE_OTHER);
    assert!(jar.has(SESSION_COOKIE));
    app.stop().await;
}

#[tokio::test]
async fn claims_missing_from_the_id_token_come_from_user_info() {
    let idp = idp().await;
    idp.sign_in_as(
        IdpUser::new("sub-uli", "uli@example.com")
            .claim("mail", json!("Uli@Example.com"))
            .claim("groups", json!(["admins"])),
    );
    idp.userinfo_only(&["mail", "groups"]);
    let app = app_with(
        &idp,
        &[
            ("GENERIC_USER_EMAIL_ATTRIBUTE", "mail"),
            ("GENERIC_USER_ROLE_ATTRIBUTE", "groups"),
            ("TOLLGATE_SSO_ROLE_MAP", "admins=proxy_admin_viewer"),
        ],
    )
    .await;
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    let uli = user_by_email(&app, "uli@example.com")
        .await
        .expect("made from user info");
    assert_eq!(uli.user_role, "proxy_admin_viewer");
    app.stop().await;
}

/// A custom email claim (an attribute users may be able to edit, such as `preferred_username`)
/// counts only when it is the provider's own verified email, unless the operator trusts it.
#[tokio::test]
async fn a_custom_email_claim_is_not_trusted_unless_it_is_the_verified_email() {
    let idp = idp().await;
    // Mallory's verified email is hers; she set her editable attribute to the admin's address.
    idp.sign_in_as(
        IdpUser::new("sub-mal", "mallory@example.com").claim("mail", json!("admin@example.com")),
    );
    let app = app_with(&idp, &[("GENERIC_USER_EMAIL_ATTRIBUTE", "mail")]).await;
    let (s, v) = app
        .api(
            &app.master_key.clone(),
            "POST",
            "/user/new",
            json!({"user_email": "admin@example.com", "user_role": "proxy_admin"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut jar = Jar::default();
    let a = sign_in(&app, &mut jar).await;
    assert_refused(&a, &jar, "not verified");
    assert_eq!(refusal_reasons(&app).await, ["email_not_verified"]);
    let admin = user_by_email(&app, "admin@example.com").await.unwrap();
    assert!(app
        .store
        .get_sso_identity(&idp.issuer, "sub-mal")
        .await
        .unwrap()
        .is_none());
    assert_eq!(admin.user_role, "proxy_admin");
    app.stop().await;

    // An operator who knows the attribute cannot be edited may trust it.
    let app = app_with(
        &idp,
        &[
            ("GENERIC_USER_EMAIL_ATTRIBUTE", "mail"),
            ("TOLLGATE_SSO_TRUST_EMAIL_CLAIM", "true"),
        ],
    )
    .await;
    idp.sign_in_as(
        IdpUser::new("sub-kim", "kim.personal@example.org").claim("mail", json!("kim@example.com")),
    );
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    assert!(user_by_email(&app, "kim@example.com").await.is_some());
    app.stop().await;
}

/// An address that changed hands (a new hire given a leaver's address, a new account at the
/// provider) does not inherit the user already linked to another account there.
#[tokio::test]
async fn a_reused_email_does_not_take_over_a_linked_user() {
    let idp = idp().await;
    let app = app_with(&idp, &[]).await;
    idp.sign_in_as(IdpUser::new("sub-alice-2019", "alice@example.com"));
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    idp.sign_in_as(IdpUser::new("sub-alice-2026", "alice@example.com"));
    let mut jar = Jar::default();
    let a = sign_in(&app, &mut jar).await;
    assert_refused(&a, &jar, "belongs to another account");
    assert_eq!(refusal_reasons(&app).await, ["linked_to_another_account"]);
    // The first account still signs in.
    idp.sign_in_as(IdpUser::new("sub-alice-2019", "alice@example.com"));
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    app.stop().await;
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_client_secret_is_refused() {
    refused_token(Misbehave::Hs256).await;
}

#[tokio::test]
async fn a_token_issued_to_another_client_is_refused() {
    refused_token(Misbehave::OtherAuthorizedParty).await;
}

/// The provider rotates its signing key: a token naming a key Tollgate has not seen makes it
/// read discovery again (at most every few seconds) instead of refusing every sign-in until its
/// cache expires.
#[tokio::test]
async fn a_rotated_signing_key_is_fetched_again() {
    let idp = idp().await;
    let app = app_with(&idp, &[]).await;
    idp.sign_in_as(IdpUser::new("sub-rio", "rio@example.com"));
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    idp.rotate_keys();
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    app.stop().await;
}

/// With passwords off, an invitation is accepted by signing in through the provider, not by
/// setting a password (which would go around the provider and its second factor).
#[tokio::test]
async fn with_passwords_off_an_invitation_sets_no_password() {
    let idp = idp().await;
    let app = app_with(&idp, &[("TOLLGATE_PASSWORD_LOGIN", "false")]).await;
    let m = app.master_key.clone();
    let (s, v) = app
        .api(
            &m,
            "POST",
            "/user/new",
            json!({"user_email": "ivy@corp.example"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let user_id = v["user_id"].as_str().unwrap().to_string();
    let (s, inv) = app
        .api(&m, "POST", "/invitation/new", json!({"user_id": user_id}))
        .await;
    assert_eq!(s, 200, "{inv}");
    let id = inv["id"].as_str().unwrap().to_string();
    let mut jar = Jar::default();
    let page = jar.get(&app.url(&format!("/ui/onboarding?id={id}"))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let a = jar
        .post(
            &app,
            "/ui/onboarding",
            &[
                ("invitation_id", id.as_str()),
                ("password", "correct-horse-battery-staple-42"),
                ("password_confirm", "correct-horse-battery-staple-42"),
            ],
        )
        .await;
    assert!(a.body.contains("Passwords are turned off"), "{}", a.body);
    assert!(!jar.has(SESSION_COOKIE));
    assert!(app
        .store
        .get_password_hash(&user_id)
        .await
        .unwrap()
        .is_none());
    // Through the provider, with the invited email, the invitation is accepted.
    idp.sign_in_as(IdpUser::new("sub-ivy", "ivy@corp.example"));
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    let pending = app.store.list_invitations(Some(&user_id)).await.unwrap();
    assert!(pending.iter().all(|i| i.is_accepted), "{pending:?}");
    app.stop().await;
}

#[tokio::test]
async fn user_info_about_another_subject_is_refused() {
    let idp = idp().await;
    idp.sign_in_as(IdpUser::new("sub-ola", "ola@example.com"));
    idp.userinfo_only(&["email"]);
    idp.userinfo_subject(Some("sub-someone-else"));
    let app = app_with(&idp, &[]).await;
    let mut jar = Jar::default();
    let a = sign_in(&app, &mut jar).await;
    assert_refused(&a, &jar, "could not be verified");
    assert!(user_by_email(&app, "ola@example.com").await.is_none());
    assert_eq!(refusal_reasons(&app).await, ["userinfo_invalid"]);
    app.stop().await;
}

#[tokio::test]
async fn litellms_endpoint_settings_work_without_discovery() {
    let idp = idp().await;
    let (auth, token, info) = (
        format!("{}/authorize", idp.issuer),
        format!("{}/token", idp.issuer),
        format!("{}/userinfo", idp.issuer),
    );
    let app = spawn_app_vars(
        CONFIG,
        &[
            ("GENERIC_CLIENT_ID", CLIENT_ID),
            ("GENERIC_CLIENT_SECRET", CLIENT_SECRET),
            ("GENERIC_AUTHORIZATION_ENDPOINT", auth.as_str()),
            ("GENERIC_TOKEN_ENDPOINT", token.as_str()),
            ("GENERIC_USERINFO_ENDPOINT", info.as_str()),
            ("GENERIC_SCOPE", "openid email"),
            ("TOLLGATE_SSO_ALLOWED_DOMAINS", "example.com"),
        ],
    )
    .await;
    // The user is who user info says, for the access token the code was exchanged for.
    idp.sign_in_as(IdpUser::new("sub-lee", "lee@example.com"));
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    let lee = user_by_email(&app, "lee@example.com")
        .await
        .expect("a user");
    let link = app
        .store
        .get_sso_identity(&idp.issuer, "sub-lee")
        .await
        .unwrap()
        .expect("linked under the provider's origin");
    assert_eq!(link.user_id, lee.user_id);
    let auth_query = &idp.authorizations()[0];
    assert_eq!(auth_query["code_challenge_method"], "S256");
    assert!(!auth_query["state"].is_empty());

    // The same refusals hold: an unverified email, a wrong state.
    let mut user = IdpUser::new("sub-una", "una@example.com");
    user.email_verified = Some(false);
    idp.sign_in_as(user);
    let mut jar = Jar::default();
    assert_refused(
        &sign_in(&app, &mut jar).await,
        &jar,
        "has not verified your email",
    );
    let mut jar = Jar::default();
    let trip = to_provider_and_back(&app, &mut jar).await;
    let forged = with_state(&trip.callback, Some("forged"));
    assert_refused(
        &jar.get(&forged).await,
        &jar,
        "does not belong to the sign-in",
    );
    // No end-session endpoint is known: logout stays with Tollgate.
    idp.sign_in_as(IdpUser::new("sub-lee", "lee@example.com"));
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    let home = jar.get(&app.url("/ui")).await;
    let out = jar
        .post(&app, "/ui/logout", &[("csrf", &csrf(&home.body))])
        .await;
    assert_eq!(out.location.as_deref(), Some("/ui/login"));
    assert!(idp.logouts().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_mapped_role_change_reaches_the_users_keys_at_once() {
    let idp = idp().await;
    let app = app_with(
        &idp,
        &[
            ("GENERIC_USER_ROLE_ATTRIBUTE", "groups"),
            (
                "TOLLGATE_SSO_ROLE_MAP",
                "admins=proxy_admin,viewers=proxy_admin_viewer",
            ),
        ],
    )
    .await;
    idp.sign_in_as(IdpUser::new("sub-kai", "kai@example.com").claim("groups", json!(["viewers"])));
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    let kai = user_by_email(&app, "kai@example.com").await.unwrap();
    let (s, k) = app
        .api(
            &app.master_key,
            "POST",
            "/key/generate",
            json!({"user_id": kai.user_id}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{k}");
    let key = k["key"].as_str().unwrap().to_string();
    let chat = || async {
        app.client()
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
            .status()
    };
    // A view-only admin's key may not call models (and is now cached with that role).
    assert_eq!(chat().await, StatusCode::FORBIDDEN);
    idp.sign_in_as(IdpUser::new("sub-kai", "kai@example.com").claim("groups", json!(["admins"])));
    let mut jar = Jar::default();
    assert_signed_in(&sign_in(&app, &mut jar).await, &jar);
    assert_eq!(
        chat().await,
        StatusCode::OK,
        "the cached key forgot the old role"
    );
    app.stop().await;
}

/// A start needs no sign-in and stores a pending sign-in: one address gets 30 a minute.
#[tokio::test]
async fn one_address_cannot_start_sign_ins_without_end() {
    let idp = idp().await;
    let app = app_with(&idp, &[]).await;
    tollgate_testkit::away_from_minute_edge(10).await;
    let mut refused = None;
    for i in 0..40 {
        let a = Jar::default().get(&app.url("/sso/key/generate")).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((i, a));
            break;
        }
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    }
    let (i, a) = refused.expect("the 31st start is refused");
    assert_eq!(i, 30);
    assert!(a.body.contains("Too many sign-ins"), "{}", a.body);
    app.stop().await;
}
