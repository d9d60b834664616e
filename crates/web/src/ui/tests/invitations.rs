//! The Invitations page.

use super::*;

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
    assert!(admin.contains("Pending") && admin.contains("Accepted") && admin.contains("Expired"));
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
