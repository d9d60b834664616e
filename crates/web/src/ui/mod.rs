//! Server-rendered pages.
//!
//! Every template, stylesheet and script is embedded in the binary. Templates are rendered with
//! HTML autoescaping; the pages need no JavaScript (`static/app.js` only adds Copy buttons and
//! local dates) and carry no inline scripts, styles or event handlers, so a strict
//! Content-Security-Policy (`default-src 'self'`) fits.
//!
//! The context each page expects is described in the template files and in the handlers' brief:
//! signed-in pages get `me`, `csrf`, `flash`, `nav_active` and `can`, plus their own fields.

use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

/// Templates by name. Names starting with `_` and the two layouts are building blocks, not pages.
const TEMPLATES: &[(&str, &str)] = &[
    ("_macros.html", include_str!("templates/_macros.html")),
    ("base.html", include_str!("templates/base.html")),
    ("public.html", include_str!("templates/public.html")),
    ("login.html", include_str!("templates/login.html")),
    ("onboarding.html", include_str!("templates/onboarding.html")),
    ("home.html", include_str!("templates/home.html")),
    ("users.html", include_str!("templates/users.html")),
    (
        "invitations.html",
        include_str!("templates/invitations.html"),
    ),
    ("teams.html", include_str!("templates/teams.html")),
    ("team.html", include_str!("templates/team.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("account.html", include_str!("templates/account.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
    ("error.html", include_str!("templates/error.html")),
    ("keys.html", include_str!("templates/keys.html")),
    ("usage.html", include_str!("templates/usage.html")),
    ("models.html", include_str!("templates/models.html")),
];

/// Static files served under `/ui/static/<name>`: name, content type, bytes.
const STATIC_ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/app.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("static/favicon.svg"),
    ),
];

/// The page renderer: a template environment holding every embedded template.
#[derive(Debug)]
pub struct Ui {
    env: Environment<'static>,
}

/// A template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("template {name}: {message}")]
    Render { name: String, message: String },
}

impl Ui {
    /// Loads all embedded templates, with HTML autoescaping on.
    pub fn new() -> Result<Ui, UiError> {
        Ui::build(UndefinedBehavior::Lenient)
    }

    fn build(undefined: UndefinedBehavior) -> Result<Ui, UiError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_undefined_behavior(undefined);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("utc_short", utc_short);
        env.add_filter("utc_title", utc_title);
        env.add_filter("utc_iso", utc_iso);
        env.add_filter("seg", path_segment);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|err| render_error(name, &err))?;
        }
        Ok(Ui { env })
    }

    /// Renders `page` (for example `"login.html"`) with `ctx` as its context.
    pub fn render<S: serde::Serialize>(&self, page: &str, ctx: &S) -> Result<String, UiError> {
        let template = self
            .env
            .get_template(page)
            .map_err(|err| render_error(page, &err))?;
        template.render(ctx).map_err(|err| render_error(page, &err))
    }
}

/// Embedded static files served under /ui/static/<name>: returns (content type, bytes).
pub fn static_asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    STATIC_ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

fn render_error(name: &str, err: &minijinja::Error) -> UiError {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    UiError::Render {
        name: name.to_owned(),
        message,
    }
}

/// The value as plain text: strings as they are, none/undefined as nothing.
fn plain(value: &Value) -> String {
    if let Some(text) = value.as_str() {
        text.to_owned()
    } else if value.is_none() || value.is_undefined() {
        String::new()
    } else {
        value.to_string()
    }
}

fn parse_utc(value: &Value) -> Option<DateTime<Utc>> {
    let text = value.as_str()?;
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// `2025-01-02 03:04 UTC`; text that is not RFC 3339 passes through unchanged.
fn utc_short(value: &Value) -> String {
    match parse_utc(value) {
        Some(at) => at.format("%Y-%m-%d %H:%M UTC").to_string(),
        None => plain(value),
    }
}

/// `2025-01-02 03:04:05 UTC`, for the hover title.
fn utc_title(value: &Value) -> String {
    match parse_utc(value) {
        Some(at) => at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => plain(value),
    }
}

/// `2025-01-02T03:04:05Z`, for the `datetime` attribute.
fn utc_iso(value: &Value) -> String {
    match parse_utc(value) {
        Some(at) => at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => plain(value),
    }
}

/// Percent-encodes a value for use as one URL path segment (also encodes `/`, `?`, `#`).
fn path_segment(value: &Value) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let raw = plain(value);
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value as Json};

    const CSRF: &str = "csrf-token-7f3a";

    /// Pages a handler renders (layouts and macros excluded).
    const PAGES: &[&str] = &[
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
    enum Who {
        Admin,
        Viewer,
    }

    fn strict() -> Ui {
        match Ui::build(UndefinedBehavior::SemiStrict) {
            Ok(ui) => ui,
            Err(err) => panic!("templates do not load: {err}"),
        }
    }

    fn merge(mut base: Json, extra: Json) -> Json {
        if let (Some(base), Json::Object(extra)) = (base.as_object_mut(), extra) {
            base.extend(extra);
        }
        base
    }

    fn signed_in(who: Who, nav_active: &str, extra: Json) -> Json {
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

    fn roles() -> Json {
        json!([
            {"value": "proxy_admin", "label": "Admin"},
            {"value": "proxy_admin_viewer", "label": "Admin viewer"},
            {"value": "internal_user", "label": "Internal user"},
            {"value": "internal_user_viewer", "label": "Internal viewer"},
        ])
    }

    fn users_ctx(who: Who) -> Json {
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

    fn usage_ctx(who: Who) -> Json {
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

    fn keys_ctx(who: Who) -> Json {
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

    fn page_ctx(page: &str, who: Who) -> Json {
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

    fn render(page: &str, ctx: &Json) -> String {
        match strict().render(page, ctx) {
            Ok(html) => html,
            Err(err) => panic!("{err}"),
        }
    }

    /// Every `<form ...>...</form>` in the page.
    fn forms(html: &str) -> Vec<&str> {
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
    fn tags(html: &str) -> Vec<&str> {
        html.split('<')
            .skip(1)
            .filter(|t| t.starts_with(|c: char| c.is_ascii_alphabetic()))
            .map(|t| t.split('>').next().unwrap_or(t))
            .collect()
    }

    fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
        let needle = format!(" {name}=\"");
        let start = tag.find(&needle)? + needle.len();
        let len = tag[start..].find('"')?;
        Some(&tag[start..start + len])
    }

    fn check_page_invariants(page: &str, html: &str) {
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
        assert!(html
            .contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
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
            if attr(tag, "type") == Some("hidden") || tag.split_whitespace().any(|a| a == "hidden")
            {
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
    fn login_has_form_and_no_navigation() {
        let html = render("login.html", &page_ctx("login.html", Who::Admin));
        assert!(!html.contains("<nav"));
        assert!(!html.contains("Log out"));
        assert!(html.contains("action=\"/ui/login\""));
        assert!(html.contains("name=\"username\""));
        assert!(html.contains("<label for=\"login-username\">Email</label>"));
        assert!(html.contains("name=\"password\""));
        assert!(!html.contains("role=\"alert\""));

        let html = render(
            "login.html",
            &json!({"error": "Wrong email or password.", "email": "bea@example.com", "csrf": CSRF}),
        );
        assert!(html.contains("Wrong email or password."));
        assert!(html.contains("value=\"bea@example.com\""));
    }

    #[test]
    fn onboarding_ok_and_invalid() {
        let html = render("onboarding.html", &page_ctx("onboarding.html", Who::Admin));
        assert!(html.contains("Set your password for"));
        assert!(html.contains("bea@example.com"));
        assert!(html.contains("action=\"/ui/onboarding\""));
        assert!(html.contains("name=\"invitation_id\" value=\"inv-9f8e7d\""));
        assert!(html.contains("name=\"password_confirm\""));
        assert!(html.contains("minlength=\"12\""));
        assert!(!html.contains("<nav"));

        let html = render(
            "onboarding.html",
            &json!({"state": "ok", "message": "", "email": "bea@example.com", "invitation_id": "x",
                    "error": "Passwords do not match.", "min_len": 12, "csrf": CSRF}),
        );
        assert!(
            html.contains("<p class=\"field-error\" id=\"onb-error\">Passwords do not match.</p>")
        );
        assert!(html.contains("aria-invalid=\"true\""));

        let html = render(
            "onboarding.html",
            &json!({"state": "invalid", "message": "This invitation has expired.", "email": "",
                    "invitation_id": "", "error": null, "min_len": 12, "csrf": CSRF}),
        );
        assert!(html.contains("can&#x27;t be used") || html.contains("can't be used"));
        assert!(html.contains("This invitation has expired."));
        assert!(html.contains("href=\"/ui/login\""));
        assert!(!html.contains("name=\"password\""));
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
    fn users_page_admin_has_write_forms() {
        let html = render("users.html", &users_ctx(Who::Admin));
        assert!(html.contains("Add user"));
        assert!(html.contains("action=\"/ui/users\""));
        assert!(html.contains("name=\"email\""));
        assert!(!html.contains("type=\"password\""));
        assert!(html.contains("action=\"/ui/users/0193a1b2-0000-7000-8000-000000000001/role\""));
        assert!(html.contains("action=\"/ui/users/0193a1b2-0000-7000-8000-000000000001/invite\""));
        assert!(html.contains("href=\"/ui/users/0193a1b2-0000-7000-8000-000000000001/delete\""));
        // Path segments are encoded.
        assert!(html.contains("/ui/users/weird%2Fid%3Fx/delete"));
        // Current role preselected.
        assert!(html.contains("<option value=\"internal_user\" selected>Internal user</option>"));
        // Dates: UTC text, exact UTC on hover.
        assert!(html.contains(
            "<time datetime=\"2025-03-04T16:40:12Z\" title=\"2025-03-04 16:40:12 UTC\">2025-03-04 16:40 UTC</time>"
        ));
        assert!(html.contains("Invited"));
    }

    #[test]
    fn users_page_viewer_is_read_only() {
        let html = render("users.html", &users_ctx(Who::Viewer));
        assert!(!html.contains("Add user"));
        assert!(!html.contains("<form method=\"post\" action=\"/ui/users\""));
        assert!(!html.contains("/role\""));
        assert!(!html.contains("/delete\""));
        assert!(!html.contains("/invite\""));
        assert!(!html.contains("method=\"post\" action=\"/ui/users"));
        assert!(html.contains("bea@example.com"));
        assert!(html.contains("Internal viewer"));
        // The search form is a GET.
        assert!(html.contains("<form method=\"get\" action=\"/ui/users\""));
    }

    #[test]
    fn users_page_validation_created_panel_and_pager() {
        let ctx = merge(
            users_ctx(Who::Admin),
            json!({
                "form": {"email": "not-an-email", "role": "internal_user",
                         "errors": {"email": "Enter an email address like name@example.com.", "role": null}},
                "created": {"user_id": "u-9", "email": "new@example.com",
                            "invite_link": "https://llm.example.com/ui/onboarding?id=abc", "emailed": null, "email_error": null},
                "smtp_enabled": true,
                "q": "exa mple", "role_filter": "internal_user", "page": 2, "total_pages": 3, "total": 61,
            }),
        );
        let html = render("users.html", &ctx);
        assert!(html.contains(
            "<p class=\"field-error\" id=\"new-email-error\">Enter an email address like name@example.com.</p>"
        ));
        assert!(html.contains("aria-describedby=\"new-email-error\""));
        assert!(html.contains("value=\"not-an-email\""));
        assert!(html.contains(
            "value=\"https:&#x2f;&#x2f;llm.example.com&#x2f;ui&#x2f;onboarding?id=abc\" readonly data-copy"
        ));
        assert!(html.contains("action=\"/ui/users/u-9/invite\""));
        assert!(html.contains("name=\"send_email\" value=\"1\""));
        assert!(html.contains("Email invitation"));
        assert!(html.contains("Page 2 of 3"));
        let pager: Vec<&str> = tags(&html)
            .into_iter()
            .filter(|t| t.contains("rel=\"prev\"") || t.contains("rel=\"next\""))
            .collect();
        assert_eq!(pager.len(), 2);
        for link in pager {
            assert!(link.contains("q=exa%20mple"), "{link}");
            assert!(link.contains("role=internal_user"), "{link}");
        }
        assert!(html.contains("page=1"));
        assert!(html.contains("page=3"));

        // Without SMTP there is no email button; an email error is reported in words.
        let ctx = merge(
            users_ctx(Who::Admin),
            json!({"created": {"user_id": "u-9", "email": "new@example.com",
                               "invite_link": "https://x/ui/onboarding?id=abc", "emailed": false,
                               "email_error": "SMTP server refused the message"}}),
        );
        let html = render("users.html", &ctx);
        assert!(!html.contains("Email invitation"));
        assert!(html.contains("SMTP server refused the message"));
    }

    #[test]
    fn users_page_empty_states() {
        let ctx = merge(
            users_ctx(Who::Admin),
            json!({"users": [], "total": 0, "total_pages": 0}),
        );
        assert!(render("users.html", &ctx).contains("No users yet"));
        let ctx = merge(
            users_ctx(Who::Admin),
            json!({"users": [], "total": 0, "total_pages": 0, "q": "zzz"}),
        );
        assert!(render("users.html", &ctx).contains("No users match"));
    }

    #[test]
    fn user_content_is_escaped() {
        let evil = "<script>x</script>@a.com";
        let mut ctx = users_ctx(Who::Admin);
        ctx["me"]["email"] = json!(evil);
        ctx["users"][0]["email"] = json!(evil);
        ctx["users"][0]["alias"] = json!("\" onmouseover=\"alert(1)");
        ctx["flash"] = json!({"kind": "ok", "message": evil});
        let html = render("users.html", &ctx);
        assert!(!html.contains("<script>x"));
        assert!(html.contains("&lt;script&gt;x&lt;&#x2f;script&gt;@a.com"));
        assert!(!html.contains("\" onmouseover=\""));
        check_page_invariants("users.html", &html);
    }

    #[test]
    fn flash_messages() {
        let mut ctx = page_ctx("teams.html", Who::Admin);
        ctx["flash"] = json!({"kind": "ok", "message": "Team Research created."});
        let html = render("teams.html", &ctx);
        assert!(html.contains("class=\"flash flash-ok\" role=\"status\">Team Research created."));
        ctx["flash"] = json!({"kind": "error", "message": "That team no longer exists."});
        let html = render("teams.html", &ctx);
        assert!(
            html.contains("class=\"flash flash-error\" role=\"alert\">That team no longer exists.")
        );
    }

    #[test]
    fn invitations_page() {
        let admin = render(
            "invitations.html",
            &page_ctx("invitations.html", Who::Admin),
        );
        assert!(admin.contains("href=\"/ui/invitations/a1b2c3/delete\""));
        assert!(!admin.contains("/ui/invitations/d4e5f6/delete"));
        assert!(!admin.contains("/ui/invitations/0a0b0c/delete"));
        assert!(admin.contains("data-copy"));
        assert!(
            admin.contains("Pending") && admin.contains("Accepted") && admin.contains("Expired")
        );
        let viewer = render(
            "invitations.html",
            &page_ctx("invitations.html", Who::Viewer),
        );
        assert!(!viewer.contains("/delete"));
        let empty = merge(
            page_ctx("invitations.html", Who::Admin),
            json!({"invitations": [], "new_link": null}),
        );
        assert!(render("invitations.html", &empty).contains("No invitations yet"));
    }

    #[test]
    fn teams_pages() {
        let admin = render("teams.html", &page_ctx("teams.html", Who::Admin));
        assert!(admin.contains("action=\"/ui/teams\""));
        assert!(admin.contains("href=\"/ui/teams/team-research\">Research</a>"));
        assert!(admin.contains("<td class=\"num\">12</td>"));
        let viewer = render("teams.html", &page_ctx("teams.html", Who::Viewer));
        assert!(!viewer.contains("action=\"/ui/teams\""));
        let invalid = merge(
            page_ctx("teams.html", Who::Admin),
            json!({"form": {"alias": "", "errors": {"alias": "Give the team a name."}}, "teams": []}),
        );
        let html = render("teams.html", &invalid);
        assert!(html.contains("Give the team a name."));
        assert!(html.contains("No teams yet"));

        let team = render("team.html", &page_ctx("team.html", Who::Admin));
        assert!(team.contains("action=\"/ui/teams/team-research/members\""));
        assert!(team.contains("action=\"/ui/teams/team-research/members/u-1/role\""));
        assert!(team.contains("href=\"/ui/teams/team-research/members/u-2/delete\""));
        assert!(team.contains("href=\"/ui/teams/team-research/delete\""));
        assert!(team.contains("<option value=\"u-4\">dan@example.com</option>"));
        let viewer = render("team.html", &page_ctx("team.html", Who::Viewer));
        assert!(!viewer.contains("method=\"post\" action=\"/ui/teams"));
        assert!(!viewer.contains("/delete\""));
        assert!(viewer.contains("Team admin"));
        let failed = merge(
            page_ctx("team.html", Who::Admin),
            json!({"errors": "Dan is already a member."}),
        );
        assert!(render("team.html", &failed).contains("Dan is already a member."));
    }

    #[test]
    fn audit_page() {
        let html = render("audit.html", &page_ctx("audit.html", Who::Admin));
        assert!(html.contains("<details>"));
        assert!(html.contains("user.role"));
        assert!(html.contains("&quot;user_role&quot;"));
        assert!(html.contains("href=\"/ui/audit?page=2\""));
        let empty = merge(
            page_ctx("audit.html", Who::Admin),
            json!({"entries": [], "page": 1, "total_pages": 0}),
        );
        assert!(render("audit.html", &empty).contains("Nothing recorded yet"));
    }

    #[test]
    fn account_page() {
        let html = render("account.html", &page_ctx("account.html", Who::Viewer));
        assert!(html.contains("action=\"/ui/account/password\""));
        for field in ["current_password", "new_password", "new_password_confirm"] {
            assert!(html.contains(&format!("name=\"{field}\"")), "{field}");
        }
        let ctx = merge(
            page_ctx("account.html", Who::Viewer),
            json!({"errors": {"current_password": "That is not your current password.", "new_password": null}}),
        );
        let html = render("account.html", &ctx);
        assert!(html.contains("id=\"pw-current-error\">That is not your current password."));
    }

    #[test]
    fn confirm_page_posts_and_can_cancel() {
        let html = render("confirm.html", &page_ctx("confirm.html", Who::Admin));
        assert!(html
            .contains("<form method=\"post\" action=\"&#x2f;ui&#x2f;users&#x2f;u-2&#x2f;delete\""));
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
    fn placeholders_and_models() {
        let keys = merge(
            page_ctx("keys.html", Who::Admin),
            json!({"keys": [], "total": 0}),
        );
        assert!(render("keys.html", &keys).contains("No keys yet"));
        let usage = render("usage.html", &page_ctx("usage.html", Who::Viewer));
        assert!(usage.contains("No requests in the last 30 days"));
        assert!(
            !usage.contains("id=\"usage-scope\""),
            "no scope select for non-admins"
        );
        let usage = render("usage.html", &page_ctx("usage.html", Who::Admin));
        assert!(usage.contains("<svg class=\"chart\""));
        assert!(usage.contains("<rect class=\"chart-bar\" x=\"1\" y=\"4.00\" width=\"8\" height=\"96.00\"><title>Feb 3: $0.9120 · 12 requests</title></rect>"));
        assert!(usage.contains("<option value=\"user:u-1\" selected>bea@example.com</option>"));
        assert!(usage.contains("<option value=\"30\" selected>Last 30 days</option>"));
        assert!(usage.contains("Deleted key"));
        assert!(usage.contains("Failed 429"));
        assert!(usage.contains("not priced"));
        assert!(usage.contains("title=\"2025-03-04 16:40:12 UTC\""));
        let models = render("models.html", &page_ctx("models.html", Who::Viewer));
        assert!(models.contains("gpt-4o-mini"));
        assert!(models.contains("text-embedding-3-small"));
        assert!(models.contains("4 models"));
        assert!(models.contains("$0.15"));
        assert!(models.contains("not priced"));
        assert!(models.contains("Priced per model it matches"));
        let none = merge(page_ctx("models.html", Who::Viewer), json!({"models": []}));
        assert!(render("models.html", &none).contains("No models configured"));
    }

    #[test]
    fn keys_page_lists_keys_with_create_form_for_writers() {
        let html = render("keys.html", &page_ctx("keys.html", Who::Admin));
        assert!(html.contains("2 keys"));
        assert!(html.contains("notebook"));
        assert!(html.contains("sk-...2a5b"));
        assert!(html.contains("$0.0417 / $5.00"));
        assert!(html.contains("<meter"));
        assert!(html.contains("10000 TPM · 60 RPM"));
        assert!(html.contains("Unnamed"));
        assert!(html.contains("All allowed"));
        assert!(html.contains("bea@example.com"), "admins see owners");
        assert!(html.contains("Blocked"));
        assert!(html.contains("Never"));
        assert!(html.contains("action=\"/ui/keys\""));
        assert!(html.contains("name=\"models\" multiple"));
        assert!(html.contains("<option value=\"claude-sonnet\">"));
        for d in ["7d", "30d", "90d"] {
            assert!(html.contains(&format!("<option value=\"{d}\">")), "{d}");
        }
        assert!(html.contains("href=\"/ui/keys/ab12cd34/delete\""));
        assert!(html.contains("name=\"user\""), "admins filter by owner");
        assert!(!html.contains("data-copy"), "no secret without a new key");
    }

    #[test]
    fn keys_page_viewer_is_read_only() {
        let html = render("keys.html", &page_ctx("keys.html", Who::Viewer));
        assert!(html.contains("notebook"));
        assert!(!html.contains("action=\"/ui/keys\""), "no create form");
        assert!(!html.contains("/delete"), "no delete links");
        assert!(!html.contains("name=\"user\""), "no owner filter");
        assert!(!html.contains("bea@example.com"), "no owner column");
        let empty = merge(
            page_ctx("keys.html", Who::Viewer),
            json!({"keys": [], "total": 0}),
        );
        assert!(render("keys.html", &empty).contains("can view keys but not create them"));
    }

    #[test]
    fn keys_page_shows_new_secret_once_with_snippets() {
        let secret = "sk-Zx9f4c1a0b7e2d5c8f3a6b1e9d0c7f2a5bQ";
        let ctx = merge(
            page_ctx("keys.html", Who::Admin),
            json!({"created": {"key": secret, "key_name": "sk-...a5bQ", "alias": "notebook", "base_url": "https://llm.example.com", "model": "gpt-4o-mini"}}),
        );
        let html = render("keys.html", &ctx);
        check_page_invariants("keys.html", &html);
        // What a browser shows: minijinja also escapes `/` and quotes.
        let html = html
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"");
        assert!(html.contains(&format!("value=\"{secret}\" readonly data-copy")));
        assert!(html.contains("will not be shown again"));
        assert!(html.contains("curl https://llm.example.com/v1/chat/completions"));
        assert!(html.contains(&format!("Authorization: Bearer {secret}")));
        assert!(html.contains("from openai import OpenAI"));
        assert!(html.contains("base_url=\"https://llm.example.com/v1\""));
        assert!(html.contains("\"model\": \"gpt-4o-mini\""));
    }

    #[test]
    fn keys_page_form_errors_and_escaping() {
        let ctx = merge(
            page_ctx("keys.html", Who::Admin),
            json!({"form": {"alias": "<b>x</b>", "models": ["claude-sonnet"], "duration": "30d", "errors": {"alias": "Give the key a name.", "models": "Pick fewer models."}}}),
        );
        let html = render("keys.html", &ctx);
        check_page_invariants("keys.html", &html);
        assert!(html.contains("Give the key a name."));
        assert!(html.contains("Pick fewer models."));
        assert!(html
            .contains("aria-invalid=\"true\" aria-describedby=\"key-alias-error key-alias-hint\""));
        assert!(html.contains("<option value=\"claude-sonnet\" selected>"));
        assert!(html.contains("<option value=\"30d\" selected>"));
        assert!(html.contains("&lt;b&gt;x&lt;&#x2f;b&gt;"));
        assert!(!html.contains("<b>x</b>"));
    }

    #[test]
    fn static_assets_are_embedded() {
        let css = static_asset("app.css");
        assert!(
            matches!(css, Some((ct, bytes)) if ct.starts_with("text/css") && !bytes.is_empty())
        );
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

    /// Writes every page to `target/ui-preview/` for a look in a browser:
    /// `cargo test -p tollgate-web ui::tests::write_preview -- --ignored`.
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
}
