//! The Audit log page.

use super::*;

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
