//! The login and onboarding pages.

use super::*;

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
    assert!(html.contains("<p class=\"field-error\" id=\"onb-error\">Passwords do not match.</p>"));
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
