//! The Teams and team pages.

use super::*;

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
