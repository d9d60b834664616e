//! The Keys page: list, create form, the secret shown once, errors.

use super::*;

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
    assert!(
        html.contains("aria-invalid=\"true\" aria-describedby=\"key-alias-error key-alias-hint\"")
    );
    assert!(html.contains("<option value=\"claude-sonnet\" selected>"));
    assert!(html.contains("<option value=\"30d\" selected>"));
    assert!(html.contains("&lt;b&gt;x&lt;&#x2f;b&gt;"));
    assert!(!html.contains("<b>x</b>"));
}
