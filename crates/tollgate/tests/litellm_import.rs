//! `tollgate import litellm` against LiteLLM's real schema: a fresh PostgreSQL database gets
//! LiteLLM's own migrations (from the litellm-proxy-extras wheel, fetched by
//! scripts/litellm-schema.sh into TOLLGATE_TEST_LITELLM_MIGRATIONS), rows are written the way
//! LiteLLM writes them, and after the import the original `sk-…` keys call the gateway with the
//! same owner, models, remaining budget and limits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use serde_json::{json, Value};
use tollgate::import::litellm::{self, ImportError, Options};
use tollgate::import::Report;
use tollgate_domain::secret::sha256_hex;
use tollgate_store::{KeyFilter, NewUser, Store, UserFilter};
use tollgate_testkit::services::TestDatabase;
use tollgate_testkit::{spawn_app_on, TestApp};

const CONFIG: &str = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hello from demo", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
  - model_name: other
    litellm_params: {model: openai/other, mock_response: "hello from other", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
general_settings: {master_key: "{master_key}"}
"#;

/// The plaintext keys LiteLLM handed out; only their SHA-256 is in its database.
const ALICE: &str = "sk-LiteLLMalicePersonal0001";
const TEAM: &str = "sk-LiteLLMteamShared00002";
const OVER: &str = "sk-LiteLLMoverBudget000003";
const BLOCKED: &str = "sk-LiteLLMblocked000000004";
const EXPIRED: &str = "sk-LiteLLMexpired000000005";
const LIMITED: &str = "sk-LiteLLMrpmLimited000006";
/// A key limited to some routes: Tollgate cannot enforce that, so it is not carried over.
const ROUTED: &str = "sk-LiteLLMroutesOnly000008";
/// A key of a user with per-model budgets (not enforced here): neither is carried over.
const CAPPED: &str = "sk-LiteLLMcappedOwner00009";
/// A key behind a LiteLLM UI session (team `litellm-dashboard`): not carried over.
const UI_SESSION: &str = "sk-LiteLLMuiSession0000007";
/// The id of a pending LiteLLM invitation (its link carries it in the clear).
const PENDING_INVITE: &str = "6f1c2d9e-4b7a-4e21-9a51-0c3b8d7e6f10";

/// LiteLLM's migrations folder, or `None` (skip) outside CI when it was not fetched.
fn migrations() -> Option<PathBuf> {
    match std::env::var("TOLLGATE_TEST_LITELLM_MIGRATIONS") {
        Ok(dir) => Some(PathBuf::from(dir)),
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI needs LiteLLM's migrations: run scripts/litellm-schema.sh and set \
                 TOLLGATE_TEST_LITELLM_MIGRATIONS"
            );
            eprintln!(
                "skipped: TOLLGATE_TEST_LITELLM_MIGRATIONS is not set (scripts/litellm-schema.sh)"
            );
            None
        }
    }
}

/// A fresh PostgreSQL database with LiteLLM's schema, made by its own migration SQL in order.
async fn litellm_database() -> Option<TestDatabase> {
    let dir = migrations()?;
    let db = TestDatabase::create().await?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path().join("migration.sql"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() > 10, "LiteLLM migrations in {}", dir.display());
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    for f in &files {
        let sql = std::fs::read_to_string(f).unwrap();
        sqlx::raw_sql(&sql)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("applying {}: {e}", f.display()));
    }
    fill(&pool).await;
    pool.close().await;
    Some(db)
}

/// Rows as LiteLLM's proxy writes them: SHA-256 hex tokens, `sk-...abcd` key names, USD floats,
/// text[] model lists, JSON metadata, UTC timestamps without a zone.
async fn fill(pool: &sqlx::PgPool) {
    let now = "(now() AT TIME ZONE 'UTC')";
    let sql = format!(
        r#"
INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role, password, models, max_budget, spend, teams, metadata)
VALUES
 ('u-admin', 'admin@example.com', 'proxy_admin', 'scrypt:c2FsdHNhbHRzYWx0c2FsdGRrZGtka2RrZGtka2RrZGtka2Rr', '{{}}', NULL, 0, '{{}}', '{{}}'),
 ('u-viewer', 'viewer@example.com', 'proxy_admin_viewer', NULL, '{{}}', NULL, 0, '{{}}', '{{}}'),
 ('u-alice', 'Alice@Example.com', 'internal_user', 'scrypt:c2FsdHNhbHRzYWx0c2FsdGRrZGtka2RrZGtka2RrZGtka2Rr', '{{demo}}', 10.0, 2.5, '{{team-1}}', '{{"department": "ml"}}'),
 ('u-bob', 'bob@example.com', 'internal_user_viewer', NULL, '{{}}', NULL, 0, '{{team-1}}', '{{}}'),
 ('u-org', 'org@example.com', 'org_admin', NULL, '{{}}', NULL, 0, '{{}}', '{{}}'),
 ('u-capped', 'capped@example.com', 'internal_user', NULL, '{{}}', NULL, 0, '{{}}', '{{}}');
UPDATE "LiteLLM_UserTable" SET model_max_budget = '{{"gpt-4o": 1.0}}' WHERE user_id = 'u-capped';
UPDATE "LiteLLM_UserTable" SET budget_duration = '30d', budget_reset_at = {now} + interval '20 days' WHERE user_id = 'u-alice';

INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, soft_budget, rpm_limit, created_by, updated_by)
VALUES ('b-key', 50.0, 40.0, 2, 'u-admin', 'u-admin'),
       ('b-member', 3.0, NULL, NULL, 'u-admin', 'u-admin'),
       ('b-orphan', 9.0, NULL, NULL, 'u-admin', 'u-admin');

INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, admins, members, members_with_roles, models, max_budget, spend, metadata, blocked)
VALUES ('team-1', 'Team One', '{{}}', '{{}}',
        '[{{"role": "admin", "user_id": "u-alice", "user_email": "Alice@Example.com"}}, {{"role": "user", "user_id": "u-bob", "user_email": "bob@example.com"}}]',
        '{{demo,other}}', 100.0, 5.0, '{{"cost_center": "42"}}', false);
INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id, spend, budget_id) VALUES ('u-bob', 'team-1', 1.25, 'b-member');

INSERT INTO "LiteLLM_VerificationToken"
  (token, key_name, key_alias, user_id, team_id, models, max_budget, spend, rpm_limit, tpm_limit,
   max_parallel_requests, budget_duration, budget_reset_at, expires, blocked, metadata, budget_id, created_by)
VALUES
 ('{alice}', 'sk-...0001', 'alice-ci', 'u-alice', NULL, '{{demo}}', 1.0, 0.25, 100, 10000, 5, '30d', {now} + interval '10 days', NULL, NULL, '{{"purpose": "ci"}}', NULL, 'u-alice'),
 ('{team}', 'sk-...0002', 'team-shared', 'u-bob', 'team-1', '{{}}', NULL, 0.0, NULL, NULL, NULL, NULL, NULL, NULL, false, '{{}}', NULL, 'u-admin'),
 ('{over}', 'sk-...0003', NULL, 'u-alice', NULL, '{{}}', 1.0, 1.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{{}}', NULL, 'u-alice'),
 ('{blocked}', 'sk-...0004', NULL, 'u-alice', NULL, '{{}}', NULL, 0.0, NULL, NULL, NULL, NULL, NULL, NULL, true, '{{}}', NULL, 'u-alice'),
 ('{expired}', 'sk-...0005', NULL, 'u-alice', NULL, '{{}}', NULL, 0.0, NULL, NULL, NULL, NULL, NULL, {now} - interval '1 day', NULL, '{{}}', NULL, 'u-alice'),
 ('{limited}', 'sk-...0006', NULL, 'u-bob', NULL, '{{}}', NULL, 0.0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{{}}', 'b-key', 'u-admin'),
 ('{routed}', 'sk-...0007', 'routed-ci', 'u-alice', NULL, '{{}}', NULL, 0.0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{{}}', NULL, 'u-alice'),
 ('{capped}', 'sk-...0008', NULL, 'u-capped', NULL, '{{}}', NULL, 0.0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{{}}', NULL, 'u-capped'),
 ('{ui_session}', 'sk-...sess', NULL, 'u-admin', 'litellm-dashboard', '{{}}', NULL, 0.0, NULL, NULL, NULL, NULL, NULL, {now} + interval '1 day', NULL, '{{}}', NULL, 'u-admin'),
 ('not-a-sha256-digest', 'sk-...junk', NULL, 'u-bob', NULL, '{{}}', NULL, 0.0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{{}}', NULL, 'u-admin');
UPDATE "LiteLLM_VerificationToken" SET allowed_routes = '{{/chat/completions}}' WHERE key_alias = 'routed-ci';

INSERT INTO "LiteLLM_InvitationLink" (id, user_id, is_accepted, accepted_at, expires_at, created_at, created_by, updated_at, updated_by)
VALUES ('{pending}', 'u-bob', false, NULL, {now} + interval '5 days', {now}, 'u-admin', {now}, 'u-admin'),
       ('expired-invite', 'u-bob', false, NULL, {now} - interval '1 day', {now} - interval '8 days', 'u-admin', {now}, 'u-admin'),
       ('accepted-invite', 'u-viewer', true, {now}, {now} + interval '5 days', {now}, 'u-admin', {now}, 'u-viewer');

INSERT INTO "LiteLLM_DailyUserSpend" (id, user_id, date, api_key, model, model_group, custom_llm_provider, prompt_tokens, completion_tokens, spend, api_requests, updated_at)
VALUES ('d-1', 'u-alice', to_char({now} - interval '1 day', 'YYYY-MM-DD'), '{alice}', 'gpt-4o', 'demo', 'openai', 10, 20, 0.15, 1, {now}),
       ('d-0', 'u-bob', to_char({now} - interval '40 days', 'YYYY-MM-DD'), '{team}', 'gpt-4o', 'other', 'openai', 100, 200, 2.0, 4, {now});
UPDATE "LiteLLM_DailyUserSpend" SET successful_requests = 3, failed_requests = 1 WHERE id = 'd-0';

INSERT INTO "LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, created_by, updated_by)
VALUES ('m-1', 'db-model', '{{"model": "openai/gpt-4o-mini"}}', 'u-admin', 'u-admin');

INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, api_key, spend, total_tokens, prompt_tokens, completion_tokens,
  "startTime", "endTime", model, model_group, custom_llm_provider, "user", team_id, metadata, status, request_tags)
VALUES
 ('chatcmpl-1', 'acompletion', '{alice}', 0.1, 30, 10, 20, {now} - interval '2 days', {now} - interval '2 days' + interval '1 second', 'gpt-4o', 'demo', 'openai', 'u-alice', NULL, '{{}}', 'success', '["nightly"]'),
 ('chatcmpl-2', 'acompletion', '{alice}', 0.15, 30, 10, 20, {now} - interval '1 day', {now} - interval '1 day' + interval '2 seconds', 'gpt-4o', 'demo', 'openai', 'u-alice', NULL, '{{}}', 'success', '[]'),
 ('chatcmpl-3', 'aembedding', '{team}', 0.0, 5, 5, 0, {now} - interval '1 day', {now} - interval '1 day', 'text-embedding-3-small', 'other', 'openai', 'u-bob', 'team-1', '{{"error_information": {{"error_class": "RateLimitError"}}}}', 'failure', '[7, {{"a": 1}}]');
"#,
        alice = sha256_hex(ALICE),
        team = sha256_hex(TEAM),
        over = sha256_hex(OVER),
        blocked = sha256_hex(BLOCKED),
        expired = sha256_hex(EXPIRED),
        limited = sha256_hex(LIMITED),
        routed = sha256_hex(ROUTED),
        capped = sha256_hex(CAPPED),
        ui_session = sha256_hex(UI_SESSION),
        pending = PENDING_INVITE,
    );
    sqlx::raw_sql(&sql)
        .execute(pool)
        .await
        .expect("insert LiteLLM rows");
}

fn options(from: &str) -> Options {
    Options {
        from: from.to_string(),
        dry_run: false,
        spend_logs: false,
        batch_size: 2,
        base_url: "http://gateway.test".to_string(),
        mailer: None,
        allow_weaker_limits: false,
    }
}

async fn import(from: &str, store: &Store, dry_run: bool, spend_logs: bool) -> Report {
    let o = Options {
        dry_run,
        spend_logs,
        ..options(from)
    };
    litellm::run(&o, store).await.expect("the import runs")
}

fn counts(r: &Report, kind: &str) -> [u64; 4] {
    let c = r.count(kind);
    [c.found, c.imported, c.unchanged, c.skipped]
}

/// Everything the store holds that the import writes, for "nothing changed" comparisons.
async fn snapshot(store: &Store) -> Value {
    let (users, _) = store
        .list_users(&UserFilter {
            page_size: 100,
            ..UserFilter::default()
        })
        .await
        .unwrap();
    let (keys, _) = store
        .list_keys(&KeyFilter {
            size: 100,
            ..KeyFilter::default()
        })
        .await
        .unwrap();
    let teams = store.list_teams(None).await.unwrap();
    let mut members = Vec::new();
    for t in &teams {
        members.extend(store.list_members(&t.team_id).await.unwrap());
    }
    let invitations = store.list_invitations(None).await.unwrap();
    json!({
        "users": format!("{users:?}"),
        "keys": format!("{keys:?}"),
        "teams": format!("{teams:?}"),
        "members": format!("{members:?}"),
        "invitations": format!("{invitations:?}"),
        "spend_logs": store.count_spend_logs().await.unwrap(),
    })
}

async fn chat(app: &TestApp, key: &str, model: &str) -> (u16, String) {
    let r = app
        .client()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn key_info(app: &TestApp, key: &str) -> Value {
    let (s, v) = app
        .api(
            &app.master_key.clone(),
            "GET",
            &format!("/key/info?key={key}"),
            Value::Null,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["info"].clone()
}

/// The whole story on one store: import, prove the keys, import again, then the spend logs.
async fn keys_keep_working(store_url: &str, litellm_url: &str) {
    let store = Store::open(Some(store_url)).await.unwrap();
    let report = import(litellm_url, &store, false, false).await;
    let text = report.to_string();
    assert_eq!(counts(&report, "users"), [6, 5, 0, 1], "{text}");
    assert_eq!(counts(&report, "teams"), [1, 1, 0, 0], "{text}");
    assert_eq!(counts(&report, "team members"), [2, 2, 0, 0], "{text}");
    assert_eq!(counts(&report, "keys"), [10, 6, 0, 4], "{text}");
    assert_eq!(counts(&report, "budgets"), [3, 2, 0, 1], "{text}");
    assert_eq!(counts(&report, "invitations"), [3, 1, 0, 2], "{text}");
    assert_eq!(counts(&report, "models"), [1, 0, 0, 1], "{text}");
    // What could not be carried is named by row, keys by their masked name only.
    assert!(
        text.contains("key sk-...junk: the stored token is not a SHA-256"),
        "{text}"
    );
    // Limits Tollgate cannot enforce keep the row out (with --allow-weaker-limits, in without
    // them), and a key whose owner stayed out stays out too.
    assert!(
        text.contains(
            "key sk-...0007 (routed-ci): has limits Tollgate does not enforce (allowed_routes)"
        ),
        "{text}"
    );
    assert!(
        text.contains("user u-capped: has limits Tollgate does not enforce (model_max_budget)"),
        "{text}"
    );
    assert!(
        text.contains("key sk-...0008: its owner u-capped is not imported"),
        "{text}"
    );
    assert!(
        text.contains("user u-org: role org_admin has no Tollgate equivalent"),
        "{text}"
    );
    assert!(text.contains("budget b-orphan"), "{text}");
    assert!(text.contains("1 LiteLLM UI session keys skipped"), "{text}");
    assert!(text.contains("- model_name: db-model"), "{text}");
    assert!(text.contains("{model: openai/gpt-4o-mini}"), "{text}");
    for secret in [
        ALICE,
        TEAM,
        &sha256_hex(ALICE),
        &sha256_hex(TEAM),
        PENDING_INVITE,
    ] {
        assert!(!text.contains(secret), "the report shows a secret: {text}");
    }
    // Users who had a UI password get a fresh invitation link each.
    let mut invited: Vec<&str> = report
        .invitations
        .iter()
        .map(|i| i.user_id.as_str())
        .collect();
    invited.sort();
    assert_eq!(invited, ["u-admin", "u-alice"], "{text}");
    let alice_link = report
        .invitations
        .iter()
        .find(|i| i.user_id == "u-alice")
        .and_then(|i| i.link.clone())
        .unwrap();
    assert!(
        alice_link.starts_with("http://gateway.test/ui/onboarding?id="),
        "{alice_link}"
    );
    assert!(text.contains(&alice_link), "{text}");

    // Rows as stored.
    let alice = store.get_user("u-alice").await.unwrap().unwrap();
    assert_eq!(alice.user_role, "internal_user");
    assert_eq!(alice.user_email.as_deref(), Some("Alice@Example.com"));
    assert_eq!(alice.models, vec!["demo"]);
    assert_eq!(alice.max_budget_nanos, Some(10_000_000_000));
    assert_eq!(alice.spend_nanos, 2_500_000_000);
    assert_eq!(alice.metadata, json!({"department": "ml"}));
    assert_eq!(
        store.get_user("u-viewer").await.unwrap().unwrap().user_role,
        "proxy_admin_viewer"
    );
    let team = store.get_team("team-1").await.unwrap().unwrap();
    assert_eq!(team.team_alias.as_deref(), Some("Team One"));
    assert_eq!(team.spend_nanos, 5_000_000_000);
    assert_eq!(team.max_budget_nanos, Some(100_000_000_000));
    let members: Vec<(String, String, Option<i64>)> = store
        .list_members("team-1")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user_id, m.role, m.max_budget_in_team_nanos))
        .collect();
    assert!(members.contains(&("u-alice".into(), "admin".into(), None)));
    assert!(members.contains(&("u-bob".into(), "user".into(), Some(3_000_000_000))));
    let bob = store.get_member("team-1", "u-bob").await.unwrap().unwrap();
    assert_eq!(
        bob.spend_nanos, 1_250_000_000,
        "spend within the team carried"
    );
    let key = store.get_key(&sha256_hex(ALICE)).await.unwrap().unwrap();
    assert_eq!(key.budget_duration.as_deref(), Some("30d"));
    let reset = key.budget_reset_at.unwrap() - chrono::Utc::now();
    assert!(
        reset > chrono::Duration::days(9) && reset < chrono::Duration::days(11),
        "{reset}"
    );
    let limited = store.get_key(&sha256_hex(LIMITED)).await.unwrap().unwrap();
    assert_eq!(limited.rpm_limit, Some(2), "from LiteLLM_BudgetTable");
    assert_eq!(limited.max_budget_nanos, Some(50_000_000_000));
    assert_eq!(limited.soft_budget_nanos, Some(40_000_000_000));

    // The gateway, on this store: the original plaintext keys.
    store.close().await;
    let app = spawn_app_on(CONFIG, store_url, &[]).await;
    let (s, body) = chat(&app, ALICE, "demo").await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = chat(&app, ALICE, "other").await;
    assert!(
        s == 401 || s == 403,
        "a model outside the key's list: {s} {body}"
    );
    let info = key_info(&app, ALICE).await;
    assert_eq!(info["user_id"], "u-alice", "{info}");
    assert_eq!(info["key_alias"], "alice-ci");
    assert_eq!(info["key_name"], "sk-...0001");
    assert_eq!(info["models"], json!(["demo"]));
    assert_eq!(info["max_budget"], json!(1.0));
    let spent = info["spend"].as_f64().unwrap();
    assert!(
        (0.25..0.26).contains(&spent),
        "imported spend plus one call: {info}"
    );
    assert_eq!(info["rpm_limit"], 100);
    assert_eq!(info["tpm_limit"], 10000);
    assert_eq!(info["max_parallel_requests"], 5);
    assert_eq!(info["metadata"]["purpose"], "ci");
    // A team key inherits the team's models.
    let (s, body) = chat(&app, TEAM, "other").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(key_info(&app, TEAM).await["team_id"], "team-1");
    let (s, body) = chat(&app, OVER, "demo").await;
    assert_ne!(s, 200, "{body}");
    assert!(body.contains("Budget has been exceeded"), "{body}");
    let (s, body) = chat(&app, BLOCKED, "demo").await;
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("blocked"), "{body}");
    let (s, body) = chat(&app, UI_SESSION, "demo").await;
    assert_eq!(s, 401, "a UI session key is not a key here: {body}");
    let (s, body) = chat(&app, EXPIRED, "demo").await;
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("Expired"), "{body}");
    // rpm_limit 2 came from the key's LiteLLM budget.
    tollgate_testkit::away_from_minute_edge(10).await;
    for _ in 0..2 {
        let (s, body) = chat(&app, LIMITED, "demo").await;
        assert_eq!(s, 200, "{body}");
    }
    let (s, body) = chat(&app, LIMITED, "demo").await;
    assert_eq!(s, 429, "{body}");
    // LiteLLM's pending invitation link still works, and so does the fresh one.
    let m = app.master_key.clone();
    let (s, v) = app
        .api(
            &m,
            "GET",
            &format!("/invitation/info?invitation_id={PENDING_INVITE}"),
            Value::Null,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user_id"], "u-bob");
    let fresh_id = alice_link.rsplit('=').next().unwrap();
    let (s, v) = app
        .api(
            &m,
            "GET",
            &format!("/invitation/info?invitation_id={fresh_id}"),
            Value::Null,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user_id"], "u-alice");
    app.wait_for_spend_logs(5).await;
    app.stop().await;

    // A second import changes nothing (not even the spend the calls above added).
    let store = Store::open(Some(store_url)).await.unwrap();
    let before = snapshot(&store).await;
    let again = import(litellm_url, &store, false, false).await;
    assert!(again.nothing_imported(), "{again}");
    assert_eq!(counts(&again, "users"), [6, 0, 5, 1], "{again}");
    assert_eq!(counts(&again, "keys"), [10, 0, 6, 4], "{again}");
    assert_eq!(counts(&again, "team members"), [2, 0, 2, 0], "{again}");
    assert_eq!(counts(&again, "invitations"), [3, 0, 1, 2], "{again}");
    assert_eq!(counts(&again, "budgets"), [3, 0, 2, 1], "{again}");
    assert!(again.invitations.is_empty(), "no new links the second time");
    // The links of the first run are still open: the report says where to get another.
    assert!(
        again
            .to_string()
            .contains("user u-alice: the invitation link of an earlier import is open until"),
        "{again}"
    );
    assert_eq!(snapshot(&store).await, before);

    // The spend history comes over in batches, without adding to the carried-over totals.
    let key_spend = store
        .get_key(&sha256_hex(ALICE))
        .await
        .unwrap()
        .unwrap()
        .spend_nanos;
    let logs = store.count_spend_logs().await.unwrap();
    let with_logs = import(litellm_url, &store, false, true).await;
    assert_eq!(
        counts(&with_logs, "spend logs"),
        [3, 3, 0, 0],
        "{with_logs}"
    );
    // Days before the oldest log come from LiteLLM's daily totals (it keeps those past its log
    // retention); days with logs come from the logs, so the row of yesterday is not added again.
    assert_eq!(
        counts(&with_logs, "daily spend"),
        [1, 1, 0, 0],
        "{with_logs}"
    );
    let old_day = (chrono::Utc::now() - chrono::Duration::days(40)).date_naive();
    let team_scope = tollgate_store::SpendScope {
        team_id: Some("team-1".into()),
        ..Default::default()
    };
    let days = store
        .daily_spend(&team_scope, old_day, old_day)
        .await
        .unwrap();
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(days[0].totals.spend_nanos, 2_000_000_000);
    assert_eq!(days[0].totals.requests, 4);
    assert_eq!(days[0].totals.failed_requests, 1);
    assert_eq!(days[0].totals.prompt_tokens, 100);
    assert_eq!(store.count_spend_logs().await.unwrap(), logs + 3);
    let imported = store.get_spend_log("chatcmpl-3").await.unwrap().unwrap();
    assert_eq!(imported.call_type, "embedding");
    assert_eq!(imported.team_id.as_deref(), Some("team-1"));
    assert_eq!(imported.error_type.as_deref(), Some("RateLimitError"));
    // LiteLLM's request tags count in the tag view.
    let now = chrono::Utc::now();
    let tags = store
        .spend_by_tag(
            &tollgate_store::SpendScope::default(),
            Some(now - chrono::Duration::days(3)),
            Some(now),
        )
        .await
        .unwrap();
    assert_eq!(tags.len(), 1, "{tags:?}");
    assert_eq!((tags[0].tag.as_str(), tags[0].requests), ("nightly", 1));
    assert_eq!(
        store
            .get_key(&sha256_hex(ALICE))
            .await
            .unwrap()
            .unwrap()
            .spend_nanos,
        key_spend
    );
    let before = snapshot(&store).await;
    let third = import(litellm_url, &store, false, true).await;
    assert_eq!(counts(&third, "spend logs"), [3, 0, 3, 0], "{third}");
    assert_eq!(counts(&third, "daily spend"), [1, 0, 1, 0], "{third}");
    assert_eq!(snapshot(&store).await, before);
    // LiteLLM's retention then deletes every log: the days the first import took from the logs
    // do not come again from the daily totals (yesterday's row would count twice).
    let pool = sqlx::PgPool::connect(litellm_url).await.unwrap();
    sqlx::query(r#"DELETE FROM "LiteLLM_SpendLogs""#)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let before = snapshot(&store).await;
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    let all_scope = tollgate_store::SpendScope::default();
    let spent_yesterday = store
        .daily_spend(&all_scope, yesterday, yesterday)
        .await
        .unwrap();
    let after_retention = import(litellm_url, &store, false, true).await;
    assert_eq!(
        counts(&after_retention, "daily spend"),
        [1, 0, 1, 0],
        "{after_retention}"
    );
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(
        store
            .daily_spend(&all_scope, yesterday, yesterday)
            .await
            .unwrap(),
        spent_yesterday
    );
    assert_eq!(snapshot(&store).await, before);

    // A key rotated or deleted in Tollgate since is not brought back by another run.
    let rotated = sha256_hex("sk-rotated-in-tollgate-0001");
    store
        .regenerate_key(&sha256_hex(ALICE), &rotated, "sk-...0001", "u-admin")
        .await
        .unwrap()
        .unwrap();
    store
        .delete_keys(&[sha256_hex(BLOCKED)], "u-admin")
        .await
        .unwrap();
    let after = import(litellm_url, &store, false, false).await;
    assert!(after.nothing_imported(), "{after}");
    assert!(store.get_key(&sha256_hex(ALICE)).await.unwrap().is_none());
    assert!(store.get_key(&sha256_hex(BLOCKED)).await.unwrap().is_none());
    assert!(store.get_key(&rotated).await.unwrap().is_some());
    store.close().await;
}

/// Runs one statement on the store's database directly, as a crash or another writer would
/// leave it.
async fn on_store_db(store_url: &str, sql: &str) {
    if store_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(store_url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(store_url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

#[tokio::test]
async fn keys_keep_working_on_sqlite() {
    let Some(litellm_db) = litellm_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("tollgate.db").display());
    keys_keep_working(&url, &litellm_db.url).await;
    litellm_db.drop_db().await;
}

#[tokio::test]
async fn keys_keep_working_on_postgres() {
    let Some(litellm_db) = litellm_database().await else {
        return;
    };
    let Some(store_db) = TestDatabase::create().await else {
        return;
    };
    keys_keep_working(&store_db.url, &litellm_db.url).await;
    store_db.drop_db().await;
    litellm_db.drop_db().await;
}

/// A run stopped part-way (rows begun, some written, none recorded as imported) is finished by
/// the next: a team written without its spend gets it, a key not written yet is written, users
/// who had a password and have no link yet get one. A row that no import began is a conflict,
/// never taken for the import's own.
#[tokio::test]
async fn an_interrupted_import_is_finished_by_the_next_run() {
    let Some(litellm_db) = litellm_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("tollgate.db").display());
    let store = Store::open(Some(&url)).await.unwrap();
    let first = import(&litellm_db.url, &store, false, false).await;
    assert_eq!(first.invitations.len(), 2, "{first}");
    // What a crash after writing, before recording, leaves.
    on_store_db(
        &url,
        "DELETE FROM imported_rows WHERE kind NOT LIKE 'begun:%'",
    )
    .await;
    on_store_db(
        &url,
        "UPDATE teams SET spend_nanos = 0 WHERE team_id = 'team-1'",
    )
    .await;
    on_store_db(&url, "UPDATE team_members SET spend_nanos = 0").await;
    let limited = sha256_hex(LIMITED);
    on_store_db(
        &url,
        &format!("DELETE FROM verification_tokens WHERE token = '{limited}'"),
    )
    .await;
    on_store_db(
        &url,
        "DELETE FROM invitations WHERE created_by = 'litellm-import'",
    )
    .await;

    let resumed = import(&litellm_db.url, &store, false, false).await;
    assert_eq!(counts(&resumed, "users"), [6, 5, 0, 1], "{resumed}");
    assert_eq!(counts(&resumed, "keys"), [10, 6, 0, 4], "{resumed}");
    let team = store.get_team("team-1").await.unwrap().unwrap();
    assert_eq!(team.spend_nanos, 5_000_000_000);
    let bob = store.get_member("team-1", "u-bob").await.unwrap().unwrap();
    assert_eq!(
        bob.spend_nanos, 1_250_000_000,
        "the member's spend is set again"
    );
    assert_eq!(
        store.get_key(&limited).await.unwrap().unwrap().rpm_limit,
        Some(2)
    );
    let mut invited: Vec<&str> = resumed
        .invitations
        .iter()
        .map(|i| i.user_id.as_str())
        .collect();
    invited.sort();
    assert_eq!(invited, ["u-admin", "u-alice"], "lost links come again");
    assert_eq!(store.imported_ids("litellm", "key").await.unwrap().len(), 6);
    let before = snapshot(&store).await;
    let third = import(&litellm_db.url, &store, false, false).await;
    assert!(third.nothing_imported(), "{third}");
    assert_eq!(snapshot(&store).await, before);

    // Rows with LiteLLM's ids that no import began (here: the record of them is gone): each is
    // named, nothing is written.
    on_store_db(&url, "DELETE FROM imported_rows").await;
    let failed = litellm::run(&options(&litellm_db.url), &store)
        .await
        .expect_err("rows not begun by an import are conflicts");
    assert!(failed.written.is_none(), "nothing was written");
    match failed.error {
        ImportError::Conflicts(c) => {
            assert!(
                c.iter()
                    .any(|c| c == "user u-alice: already in Tollgate, not imported from LiteLLM"),
                "{c:?}"
            );
            assert!(
                c.iter()
                    .any(|c| c == "team team-1: already in Tollgate, not imported from LiteLLM"),
                "{c:?}"
            );
        }
        e => panic!("expected conflicts, got {e}"),
    }
    assert_eq!(snapshot(&store).await, before);
    store.close().await;
    litellm_db.drop_db().await;
}

#[tokio::test]
async fn dry_run_writes_nothing_and_conflicts_stop_before_writing() {
    let Some(litellm_db) = litellm_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("tollgate.db").display());
    let store = Store::open(Some(&url)).await.unwrap();
    let empty = snapshot(&store).await;

    let dry = import(&litellm_db.url, &store, true, true).await;
    let text = dry.to_string();
    assert!(text.starts_with("Dry run"), "{text}");
    assert_eq!(counts(&dry, "users"), [6, 5, 0, 1], "{text}");
    assert_eq!(counts(&dry, "keys"), [10, 6, 0, 4], "{text}");
    assert_eq!(counts(&dry, "spend logs")[0], 3, "{text}");
    assert!(dry.invitations.iter().all(|i| i.link.is_none()));
    assert_eq!(snapshot(&store).await, empty);

    // A Tollgate user with LiteLLM's id (even with the same email: it was not imported): the
    // import names it and writes nothing at all.
    let mut other = NewUser::new("u-alice", "internal_user");
    other.user_email = Some("alice@example.com".to_string());
    store.create_user(&other).await.unwrap();
    // And a Tollgate key already using a LiteLLM alias.
    let mut k = tollgate_store::NewKey::new(sha256_hex("sk-tollgate-own-key"), "sk-...-key");
    k.key_alias = Some("team-shared".to_string());
    store.create_key(&k).await.unwrap();
    let before = snapshot(&store).await;
    let failed = litellm::run(&options(&litellm_db.url), &store)
        .await
        .expect_err("conflicts stop the import");
    assert!(failed.written.is_none());
    let msg = failed.error.to_string();
    match failed.error {
        ImportError::Conflicts(c) => assert_eq!(c.len(), 2, "{c:?}"),
        e => panic!("expected conflicts, got {e}"),
    }
    assert!(
        msg.contains("user u-alice: already in Tollgate, not imported from LiteLLM"),
        "{msg}"
    );
    assert!(
        msg.contains("key sk-...0002 (team-shared): alias team-shared"),
        "{msg}"
    );
    assert_eq!(snapshot(&store).await, before);
    store.close().await;
    litellm_db.drop_db().await;
}

#[tokio::test]
async fn the_litellm_database_is_only_read() {
    let Some(litellm_db) = litellm_database().await else {
        return;
    };
    let count = |pool: sqlx::PgPool| async move {
        let n: i64 = sqlx::query_scalar(
            r#"SELECT (SELECT count(*) FROM "LiteLLM_UserTable") + (SELECT count(*) FROM "LiteLLM_VerificationToken") + (SELECT count(*) FROM "LiteLLM_InvitationLink")"#,
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        n
    };
    let before = count(sqlx::PgPool::connect(&litellm_db.url).await.unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("tollgate.db").display());
    let store = Store::open(Some(&url)).await.unwrap();
    import(&litellm_db.url, &store, false, true).await;
    store.close().await;
    assert_eq!(
        count(sqlx::PgPool::connect(&litellm_db.url).await.unwrap()).await,
        before
    );
    litellm_db.drop_db().await;
}

/// The command itself: `tollgate import litellm --from … --dry-run`, then for real, printing the
/// table and the links; and a store that is LiteLLM's own database is refused.
#[tokio::test]
async fn the_command_prints_the_report() {
    let Some(litellm_db) = litellm_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite:{}", dir.path().join("tollgate.db").display());
    let smtp = tollgate_testkit::smtp::SmtpServer::start().await;
    let smtp_port = smtp.addr.port().to_string();
    // Blocking calls: the test SMTP server runs on this test's runtime, so the import that
    // mails goes through spawn_blocking.
    let run = move |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["import", "litellm"])
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("CONFIG_FILE_PATH")
            .env("PROXY_BASE_URL", "https://llm.example.com/")
            .env("TOLLGATE_LOG", "error")
            .env("SMTP_HOST", "127.0.0.1")
            .env("SMTP_PORT", &smtp_port)
            .env("SMTP_SENDER_EMAIL", "gateway@example.com")
            .env("SMTP_TLS", "False")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = run(&[
        "--from",
        &litellm_db.url,
        "--database-url",
        &store_url,
        "--dry-run",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("Dry run: nothing was written."), "{out}");
    assert!(out.contains("a link would be made"), "{out}");
    assert!(
        !dir.path().join("tollgate.db").exists(),
        "a dry run creates no store"
    );
    let (ok, out, err) = tokio::task::spawn_blocking({
        let (url, store_url) = (litellm_db.url.clone(), store_url.clone());
        let run = run.clone();
        move || {
            run(&[
                "--from",
                &url,
                "--database-url",
                &store_url,
                "--email-invitations",
            ])
        }
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("https://llm.example.com/ui/onboarding?id="),
        "{out}"
    );
    // Each user who had a password is emailed their own link.
    let mails = smtp
        .wait_for_messages(2, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(mails.len(), 2, "{out}");
    for (addr, user) in [
        ("admin@example.com", "u-admin"),
        ("Alice@Example.com", "u-alice"),
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("({user})")))
            .unwrap_or_else(|| panic!("{user} in {out}"));
        let link = line.rsplit(' ').next().unwrap();
        let mail = mails
            .iter()
            .find(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(addr)))
            .unwrap_or_else(|| panic!("a mail to {addr}"));
        assert!(mail.data.contains(link), "{link} in {}", mail.data);
    }
    assert_eq!(out.matches("    emailed").count(), 2, "{out}");
    for secret in [ALICE, &sha256_hex(ALICE), PENDING_INVITE] {
        assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    }
    let (ok, out, err) = run(&["--from", &litellm_db.url, "--database-url", &litellm_db.url]);
    assert!(!ok, "{out}");
    assert!(err.contains("the same database"), "{err}");
    // The same database under another name: its LiteLLM tables give it away before anything
    // of Tollgate's is created in it.
    let same = if litellm_db.url.contains("127.0.0.1") {
        litellm_db.url.replace("127.0.0.1", "localhost")
    } else {
        litellm_db.url.replace("localhost", "127.0.0.1")
    };
    assert_ne!(same, litellm_db.url);
    for dry in [true, false] {
        let mut args = vec!["--from", &litellm_db.url, "--database-url", &same];
        if dry {
            args.push("--dry-run");
        }
        let (ok, out, err) = run(&args);
        assert!(!ok, "{out}");
        assert!(err.contains("holds LiteLLM's tables"), "{err}");
    }
    let pool = sqlx::PgPool::connect(&litellm_db.url).await.unwrap();
    let ours: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('tollgate_migrations')::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(ours, None, "no Tollgate table in LiteLLM's database");
    pool.close().await;
    // Only PostgreSQL is read, and a URL's password never shows in an error.
    for from in [
        "mysql://u:pw-sekrit@127.0.0.1/litellm",
        "postgresql://u:pw-sekrit@127.0.0.1:1/litellm",
    ] {
        let (ok, out, err) = run(&["--from", from, "--database-url", &store_url]);
        assert!(!ok, "{out}");
        assert!(
            !err.contains("pw-sekrit") && !out.contains("pw-sekrit"),
            "{err}"
        );
    }
    litellm_db.drop_db().await;
}
