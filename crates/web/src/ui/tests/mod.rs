//! The templates rendered with contexts shaped like the handlers' (strict about undefined
//! values): every page's invariants, then one file per page.

use super::*;
use serde_json::{json, Value as Json};

pub(super) const CSRF: &str = "csrf-token-7f3a";

/// Pages a handler renders (layouts and macros excluded).
pub(super) const PAGES: &[&str] = &[
    "login.html",
    "onboarding.html",
    "home.html",
    "users.html",
    "invitations.html",
    "teams.html",
    "team.html",
    "audit.html",
    "account.html",
    "confirm.html",
    "error.html",
    "keys.html",
    "usage.html",
    "models.html",
];

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Who {
    Admin,
    Viewer,
}

pub(super) fn strict() -> Ui {
    match Ui::build(UndefinedBehavior::SemiStrict) {
        Ok(ui) => ui,
        Err(err) => panic!("templates do not load: {err}"),
    }
}

pub(super) fn merge(mut base: Json, extra: Json) -> Json {
    if let (Some(base), Json::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

pub(super) fn signed_in(who: Who, nav_active: &str, extra: Json) -> Json {
    let base = match who {
        Who::Admin => json!({
            "me": {"user_id": "u-admin", "email": "ada@example.com", "role": "proxy_admin", "role_label": "Admin"},
            "can": {"manage_users": true, "view_all": true, "write": true},
        }),
        Who::Viewer => json!({
            "me": {"user_id": "u-vic", "email": "vic@example.com", "role": "internal_user_viewer", "role_label": "Internal viewer"},
            "can": {"manage_users": false, "view_all": false, "write": false},
        }),
    };
    let base = merge(
        base,
        json!({"csrf": CSRF, "flash": null, "nav_active": nav_active}),
    );
    merge(base, extra)
}

pub(super) fn roles() -> Json {
    json!([
        {"value": "proxy_admin", "label": "Admin"},
        {"value": "proxy_admin_viewer", "label": "Admin viewer"},
        {"value": "internal_user", "label": "Internal user"},
        {"value": "internal_user_viewer", "label": "Internal viewer"},
    ])
}

pub(super) fn users_ctx(who: Who) -> Json {
    signed_in(
        who,
        "users",
        json!({
            "users": [
                {"user_id": "0193a1b2-0000-7000-8000-000000000001", "email": "bea@example.com", "alias": "Bea", "role": "internal_user", "role_label": "Internal user", "created_at": "2025-03-01T09:15:00Z", "has_password": true},
                {"user_id": "0193a1b2-0000-7000-8000-000000000002", "email": "carl@example.com", "alias": null, "role": "internal_user_viewer", "role_label": "Internal viewer", "created_at": "2025-03-04T17:40:12+01:00", "has_password": false},
                {"user_id": "weird/id?x", "email": "ops@example.com", "alias": "Ops", "role": "proxy_admin_viewer", "role_label": "Admin viewer", "created_at": "2025-02-11T08:00:00Z", "has_password": true},
            ],
            "q": "",
            "role_filter": "",
            "page": 1,
            "total_pages": 1,
            "total": 3,
            "roles": roles(),
            "form": {"email": "", "role": "internal_user", "errors": {"email": null, "role": null}},
            "created": null,
            "smtp_enabled": false,
        }),
    )
}

pub(super) fn usage_ctx(who: Who) -> Json {
    let admin = who == Who::Admin;
    let t = |spend: &str, requests: i64| {
        json!({"spend": spend, "tokens": "2,113,040", "prompt_tokens": "1,500,000",
               "completion_tokens": "613,040", "requests": requests.to_string(), "requests_n": requests,
               "failed": "3", "failed_n": if admin { 3 } else { 0 }})
    };
    let n = if admin { 1284 } else { 0 };
    signed_in(
        who,
        "usage",
        json!({
            "days": 30, "ranges": [7, 30, 90], "scope": if admin { "user:u-1" } else { "" },
            "scope_label": if admin { Json::from("bea@example.com") } else { Json::Null },
            "scope_kind": if admin { "user" } else { "" },
            "choices": if admin { json!({
                "users": [{"value": "user:u-1", "label": "bea@example.com"}, {"value": "user:u-2", "label": "carl@example.com"}],
                "teams": [{"value": "team:t-1", "label": "Research"}],
            }) } else { Json::Null },
            "from": "2025-02-03", "to": "2025-03-04",
            "totals": t("$4.1702", n),
            "chart": {"width": 300, "height": 100.0, "max_label": "$0.9120", "first_label": "Feb 3", "last_label": "Mar 4",
                      "bars": [{"x": 1, "w": 8, "y": "4.00", "h": "96.00", "title": "Feb 3: $0.9120 · 12 requests"},
                               {"x": 291, "w": 8, "y": "99.00", "h": "1.00", "title": "Mar 4: $0.000024 · 1 request"}],
                      "days": [{"day": "2025-02-03", "spend": "$0.9120", "requests": "12", "tokens": "1,200"}]},
            "by_model": [{"name": "gpt-4o-mini", "share": 80, "totals": t("$3.3361", 1000)}],
            "by_key": [{"key": {"alias": "notebook", "key_name": "sk-...2a5b", "gone": false}, "share": 80, "totals": t("$3.3361", 1000)},
                       {"key": {"alias": "Deleted key", "key_name": null, "gone": true}, "share": 20, "totals": t("$0.8341", 284)}],
            "recent": [{"at": "2025-03-04T16:40:12Z", "model": "gpt-4o-mini", "key": {"alias": "notebook", "key_name": "sk-...2a5b", "gone": false},
                        "prompt_tokens": "12", "completion_tokens": "6", "tokens": "18", "estimated": false,
                        "cost": "$0.0003", "priced": true, "ok": true, "http_status": 200, "latency": "340 ms", "request_id": "r-1"},
                       {"at": "2025-03-04T16:41:00Z", "model": "claude-sonnet", "key": {"alias": null, "key_name": "sk-...91c0", "gone": false},
                        "prompt_tokens": "0", "completion_tokens": "0", "tokens": "0", "estimated": true,
                        "cost": "$0.00", "priced": false, "ok": false, "http_status": 429, "latency": "1.2 s", "request_id": "r-2"}],
            "can_create_keys": !admin,
        }),
    )
}

pub(super) fn keys_ctx(who: Who) -> Json {
    let admin = who == Who::Admin;
    signed_in(
        who,
        "keys",
        json!({
            "keys": [
                {"token": "ab12cd34", "alias": "notebook", "key_name": "sk-...2a5b", "models": ["gpt-4o-mini"], "spend": 0.0417, "max_budget": 5.0, "budget_pct": 1, "spend_label": "$0.0417", "budget_label": "$5.00", "tpm_limit": 10000, "rpm_limit": 60, "expires": "2025-04-01T10:00:00Z", "status": "active", "user_id": "u-1", "user_email": "bea@example.com"},
                {"token": "ef56ab78", "alias": null, "key_name": "sk-...91c0", "models": [], "spend": 3.812, "max_budget": null, "budget_pct": null, "spend_label": "$3.8120", "budget_label": null, "tpm_limit": null, "rpm_limit": null, "expires": null, "status": "blocked", "user_id": "u-1", "user_email": null},
            ],
            "total": 2,
            "page": 1,
            "total_pages": 1,
            "user_filter": "",
            "can_create": admin,
            "can_delete": admin,
            "models": ["gpt-4o-mini", "claude-sonnet"],
            "created": null,
            "form": {"alias": "", "models": [], "duration": "", "errors": {"alias": null, "models": null}},
        }),
    )
}

pub(super) fn page_ctx(page: &str, who: Who) -> Json {
    match page {
        "login.html" => json!({"error": null, "email": null, "csrf": CSRF}),
        "onboarding.html" => json!({
            "state": "ok", "message": "", "email": "bea@example.com",
            "invitation_id": "inv-9f8e7d", "error": null, "min_len": 12, "csrf": CSRF,
        }),
        "home.html" => {
            let stats = if who == Who::Admin {
                json!({"users": 14, "invitations_pending": 2, "teams": 3})
            } else {
                json!({"users": null, "invitations_pending": null, "teams": null})
            };
            let gateway = if who == Who::Admin {
                json!({"month": "March 2025", "spend_label": "$41.2031", "requests": "1,284", "requests_n": 1284, "tokens": "2,113,040"})
            } else {
                Json::Null
            };
            signed_in(
                who,
                "home",
                json!({"stats": stats, "gateway": gateway,
                       "own_spend": {"spend_label": "$3.8120", "budget_label": "$10.00", "budget_pct": 38, "over": false}}),
            )
        }
        "users.html" => users_ctx(who),
        "invitations.html" => signed_in(
            who,
            "invitations",
            json!({
                "invitations": [
                    {"id_hash": "a1b2c3", "user_id": "u-2", "email": "carl@example.com", "status": "pending", "expires_at": "2025-03-11T17:40:12Z", "created_at": "2025-03-04T17:40:12Z", "created_by": "ada@example.com"},
                    {"id_hash": "d4e5f6", "user_id": "u-1", "email": "bea@example.com", "status": "accepted", "expires_at": "2025-03-08T09:15:00Z", "created_at": "2025-03-01T09:15:00Z", "created_by": "ada@example.com"},
                    {"id_hash": "0a0b0c", "user_id": "u-4", "email": "dan@example.com", "status": "expired", "expires_at": "2025-02-01T10:00:00Z", "created_at": "2025-01-25T10:00:00Z", "created_by": null},
                ],
                "new_link": {"link": "https://llm.example.com/ui/onboarding?id=inv-9f8e7d", "email": "carl@example.com"},
            }),
        ),
        "teams.html" => signed_in(
            who,
            "teams",
            json!({
                "teams": [
                    {"team_id": "team-research", "alias": "Research", "members": 5},
                    {"team_id": "team-support", "alias": "Support", "members": 12},
                ],
                "form": {"alias": "", "errors": {"alias": null}},
            }),
        ),
        "team.html" => signed_in(
            who,
            "teams",
            json!({
                "team": {"team_id": "team-research", "alias": "Research"},
                "members": [
                    {"user_id": "u-1", "email": "bea@example.com", "role": "admin"},
                    {"user_id": "u-2", "email": "carl@example.com", "role": "user"},
                ],
                "users": [{"user_id": "u-4", "email": "dan@example.com"}],
                "errors": null,
            }),
        ),
        "audit.html" => signed_in(
            who,
            "audit",
            json!({
                "entries": [
                    {"at": "2025-03-04T17:40:12Z", "actor": "ada@example.com", "action": "user.create", "object_type": "user", "object_id": "u-2", "before": null, "after": "{\"user_email\": \"carl@example.com\", \"user_role\": \"internal_user_viewer\"}"},
                    {"at": "2025-03-05T08:02:00Z", "actor": "ada@example.com", "action": "user.role", "object_type": "user", "object_id": "u-2", "before": "{\"user_role\": \"internal_user_viewer\"}", "after": "{\"user_role\": \"internal_user\"}"},
                ],
                "page": 1,
                "total_pages": 2,
            }),
        ),
        "account.html" => signed_in(
            who,
            "account",
            json!({"errors": {"current_password": null, "new_password": null}, "min_len": 12}),
        ),
        "confirm.html" => signed_in(
            who,
            "users",
            json!({
                "title": "Delete user carl@example.com?",
                "message": "Their keys stop working at once. This cannot be undone.",
                "action_url": "/ui/users/u-2/delete",
                "confirm_label": "Delete user",
                "cancel_url": "/ui/users",
            }),
        ),
        "error.html" => signed_in(
            who,
            "home",
            json!({"title": "Not allowed", "message": "Your role cannot open this page.", "status": 403}),
        ),
        "keys.html" => keys_ctx(who),
        "usage.html" => usage_ctx(who),
        "models.html" => signed_in(
            who,
            "models",
            json!({"restricted": false, "models": [
                {"name": "gpt-4o-mini", "pattern": false, "mode": "chat", "input": "$0.15", "output": "$0.60"},
                {"name": "claude-sonnet", "pattern": false, "mode": null, "input": null, "output": null},
                {"name": "text-embedding-3-small", "pattern": false, "mode": "embedding", "input": "$0.02", "output": "$0.00"},
                {"name": "openai/*", "pattern": true, "mode": null, "input": null, "output": null},
            ]}),
        ),
        other => panic!("no sample context for {other}"),
    }
}

pub(super) fn render(page: &str, ctx: &Json) -> String {
    match strict().render(page, ctx) {
        Ok(html) => html,
        Err(err) => panic!("{err}"),
    }
}

/// Every `<form ...>...</form>` in the page.
pub(super) fn forms(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let tail = &rest[start..];
        let end = tail
            .find("</form>")
            .map_or(tail.len(), |e| e + "</form>".len());
        out.push(&tail[..end]);
        rest = &tail[end..];
    }
    out
}

/// Every start tag (`<name ...>`) in the page, with its attributes.
pub(super) fn tags(html: &str) -> Vec<&str> {
    html.split('<')
        .skip(1)
        .filter(|t| t.starts_with(|c: char| c.is_ascii_alphabetic()))
        .map(|t| t.split('>').next().unwrap_or(t))
        .collect()
}

pub(super) fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

pub(super) fn check_page_invariants(page: &str, html: &str) {
    // Post forms carry the CSRF token; every form says its method.
    for form in forms(html) {
        let open = form.split('>').next().unwrap_or(form);
        assert!(
            open.contains("method=\"post\"") || open.contains("method=\"get\""),
            "{page}: form without method: {open}"
        );
        if open.contains("method=\"post\"") {
            assert!(
                form.contains(&format!(
                    "<input type=\"hidden\" name=\"csrf\" value=\"{CSRF}\">"
                )),
                "{page}: POST form without csrf: {form}"
            );
        }
    }
    assert!(
        html.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
    );
    assert!(html.contains("/ui/static/app.css"));
    // Strict CSP: no inline scripts, styles or handlers.
    for tag in tags(html) {
        let name = tag.split_whitespace().next().unwrap_or("");
        assert_ne!(name, "style", "{page}: inline <style>");
        if name == "script" {
            assert!(attr(tag, "src").is_some(), "{page}: inline <script>");
        }
        for part in tag.split_whitespace().skip(1).filter(|p| p.contains('=')) {
            let attr_name = part.split('=').next().unwrap_or("");
            assert!(
                !attr_name.starts_with("on") && attr_name != "style",
                "{page}: inline handler or style in <{tag}>"
            );
        }
    }
    // Every visible field has a label tied to it.
    for tag in tags(html) {
        let name = tag.split_whitespace().next().unwrap_or("");
        if name != "input" && name != "select" && name != "textarea" {
            continue;
        }
        if attr(tag, "type") == Some("hidden") || tag.split_whitespace().any(|a| a == "hidden") {
            continue;
        }
        let id = attr(tag, "id");
        assert!(id.is_some(), "{page}: field without id: <{tag}>");
        let id = id.unwrap_or_default();
        assert!(
            html.contains(&format!("for=\"{id}\"")),
            "{page}: no label for #{id}"
        );
    }
    // Ids are unique.
    let mut ids: Vec<&str> = tags(html).iter().filter_map(|t| attr(t, "id")).collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "{page}: duplicate id");
}

/// Writes every page to `target/ui-preview/` for a look in a browser:
/// `cargo test -p tollgate-web ui::tests::write_preview -- --ignored`.

#[test]
fn every_page_renders_for_admin_and_viewer() {
    for page in PAGES {
        for who in [Who::Admin, Who::Viewer] {
            let html = render(page, &page_ctx(page, who));
            assert!(html.starts_with("<!doctype html>"), "{page}");
            assert!(html.contains("Tollgate"), "{page}");
            check_page_invariants(page, &html);
        }
    }
}

#[test]
fn public_ui_new_loads_and_renders() {
    let ui = match Ui::new() {
        Ok(ui) => ui,
        Err(err) => panic!("{err}"),
    };
    let html = ui.render("login.html", &page_ctx("login.html", Who::Admin));
    assert!(matches!(html, Ok(ref h) if h.contains("Sign in")));
    // Lenient in production: a missing optional field does not break a page.
    let html = ui.render("login.html", &json!({"csrf": CSRF}));
    assert!(html.is_ok());
}

#[test]
fn unknown_page_is_an_error() {
    let err = strict().render("nope.html", &json!({}));
    match err {
        Err(UiError::Render { name, message }) => {
            assert_eq!(name, "nope.html");
            assert!(!message.is_empty());
        }
        Ok(_) => panic!("rendered an unknown page"),
    }
}

#[test]
fn navigation_follows_role() {
    let admin = render("home.html", &page_ctx("home.html", Who::Admin));
    for href in [
        "/ui\"",
        "/ui/keys\"",
        "/ui/usage\"",
        "/ui/models\"",
        "/ui/users\"",
        "/ui/teams\"",
        "/ui/invitations\"",
        "/ui/audit\"",
        "/ui/account\"",
    ] {
        assert!(
            admin.contains(&format!("href=\"{href}")),
            "admin nav lacks {href}"
        );
    }
    assert!(admin.contains("<a href=\"/ui\" aria-current=\"page\">Home</a>"));
    assert!(admin.contains("ada@example.com"));
    assert!(admin.contains("<span class=\"badge\" title=\"Your role\">Admin</span>"));
    assert!(admin.contains("action=\"/ui/logout\""));
    assert!(admin.contains(">14</span>"));

    let viewer = render("home.html", &page_ctx("home.html", Who::Viewer));
    // Non-admins reach the teams they belong to under "You", never the admin pages.
    assert!(viewer.contains("href=\"/ui/teams\">My teams</a>"));
    for href in ["/ui/users\"", "/ui/invitations\"", "/ui/audit\""] {
        assert!(
            !viewer.contains(&format!("href=\"{href}")),
            "viewer nav has {href}"
        );
    }
    assert!(viewer.contains("href=\"/ui/keys\""));
    assert!(viewer.contains("href=\"/ui/account\""));
    assert!(!viewer.contains("class=\"stats\""));
    assert!(viewer.contains("You can't create or delete keys"));
}

#[test]
fn confirm_page_posts_and_can_cancel() {
    let html = render("confirm.html", &page_ctx("confirm.html", Who::Admin));
    assert!(
        html.contains("<form method=\"post\" action=\"&#x2f;ui&#x2f;users&#x2f;u-2&#x2f;delete\"")
    );
    assert!(html.contains(">Delete user</button>"));
    assert!(html.contains("href=\"&#x2f;ui&#x2f;users\">Cancel</a>"));
    assert!(html.contains("Delete user carl@example.com?"));
}

#[test]
fn error_page_with_and_without_session() {
    let html = render("error.html", &page_ctx("error.html", Who::Admin));
    assert!(html.contains("Error 403"));
    assert!(html.contains("<nav class=\"side\""));
    let html = render(
        "error.html",
        &json!({"title": "Page not found", "message": "There is nothing at this address.", "status": 404}),
    );
    assert!(html.contains("Error 404"));
    assert!(html.contains("Page not found"));
    assert!(!html.contains("<nav"));
    assert!(html.contains("href=\"/ui/login\""));
}

#[test]
fn static_assets_are_embedded() {
    let css = static_asset("app.css");
    assert!(matches!(css, Some((ct, bytes)) if ct.starts_with("text/css") && !bytes.is_empty()));
    let js = static_asset("app.js");
    assert!(matches!(js, Some((ct, _)) if ct.starts_with("text/javascript")));
    assert!(matches!(
        static_asset("favicon.svg"),
        Some(("image/svg+xml", _))
    ));
    assert!(static_asset("../mod.rs").is_none());
    assert!(static_asset("").is_none());
}

#[test]
fn filters() {
    assert_eq!(
        utc_short(&Value::from("2025-01-02T03:04:05+02:00")),
        "2025-01-02 01:04 UTC"
    );
    assert_eq!(
        utc_title(&Value::from("2025-01-02T03:04:05Z")),
        "2025-01-02 03:04:05 UTC"
    );
    assert_eq!(
        utc_iso(&Value::from("2025-01-02T03:04:05.123+00:00")),
        "2025-01-02T03:04:05.123Z"
    );
    assert_eq!(utc_short(&Value::from("yesterday")), "yesterday");
    assert_eq!(utc_short(&Value::from(())), "");
    assert_eq!(
        path_segment(&Value::from("a b/c?d#é")),
        "a%20b%2Fc%3Fd%23%C3%A9"
    );
    assert_eq!(path_segment(&Value::from("Ab-1._~")), "Ab-1._~");
}

#[test]
#[ignore]
fn write_preview() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-preview");
    let static_dir = dir.join("static");
    if let Err(err) = std::fs::create_dir_all(&static_dir) {
        panic!("{err}");
    }
    for (name, _, bytes) in STATIC_ASSETS {
        if let Err(err) = std::fs::write(static_dir.join(name), bytes) {
            panic!("{err}");
        }
    }
    let mut pages: Vec<(String, Json)> = Vec::new();
    for page in PAGES {
        let stem = page.trim_end_matches(".html");
        pages.push((format!("{stem}-admin.html"), page_ctx(page, Who::Admin)));
        pages.push((format!("{stem}-viewer.html"), page_ctx(page, Who::Viewer)));
    }
    pages.push((
        "users-created.html".into(),
        merge(
            users_ctx(Who::Admin),
            json!({
                "created": {"user_id": "u-9", "email": "new@example.com",
                            "invite_link": "https://llm.example.com/ui/onboarding?id=2c1f0e9a7b6d5c4e3f2a1b0c9d8e7f6a",
                            "emailed": null, "email_error": null},
                "smtp_enabled": true,
                "form": {"email": "bad", "role": "internal_user",
                         "errors": {"email": "Enter an email address like name@example.com.", "role": null}},
                "flash": {"kind": "ok", "message": "User new@example.com created."},
                "page": 2, "total_pages": 4, "total": 61,
            }),
        ),
    ));
    pages.push((
        "onboarding-invalid.html".into(),
        json!({"state": "invalid", "message": "This invitation expired on 2025-03-11. Invitations are valid for 7 days.",
               "email": "", "invitation_id": "", "error": null, "min_len": 12, "csrf": CSRF}),
    ));
    pages.push((
        "login-error.html".into(),
        json!({"error": "Wrong email or password.", "email": "bea@example.com", "csrf": CSRF}),
    ));
    pages.push((
        "error-signed-out.html".into(),
        json!({"title": "Page not found", "message": "There is nothing at this address.", "status": 404}),
    ));
    for (file, ctx) in pages {
        let template = if let Some(stem) = file.split('-').next() {
            format!("{stem}.html")
        } else {
            file.clone()
        };
        let html = render(&template, &ctx).replace("/ui/static/", "static/");
        if let Err(err) = std::fs::write(dir.join(&file), html) {
            panic!("{err}");
        }
    }
}

mod account;
mod audit;
mod invitations;
mod keys;
mod login;
mod models;
mod teams;
mod users;
