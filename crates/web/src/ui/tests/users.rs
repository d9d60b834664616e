//! The Users page: write forms by role, validation, the invitation panel, escaping, flash messages.

use super::*;

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
    assert!(html.contains("class=\"flash flash-error\" role=\"alert\">That team no longer exists."));
}
