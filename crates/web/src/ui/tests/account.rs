//! The Account page.

use super::*;

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
