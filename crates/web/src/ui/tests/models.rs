//! The Models page and placeholders.

use super::*;

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
