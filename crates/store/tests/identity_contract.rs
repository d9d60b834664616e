//! The identity part of the store contract: users, teams, invitations, sessions and the audit
//! log, checked the same way on every backend (see `common` for which backends run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use tollgate_store::{
    AuditEntry, AuditFilter, Backend, ClaimOutcome, NewInvitation, NewSession, NewTeam, NewUser,
    SessionKind, Store, StoreError, TeamPatch, UserFilter, UserPatch,
};

mod common;

use common::{backends, empty_databases};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
}

fn user(id: &str, email: Option<&str>) -> NewUser {
    NewUser {
        user_email: email.map(str::to_string),
        ..NewUser::new(id, "internal_user")
    }
}

fn invitation(id_hash: &str, user_id: &str, expires_at: DateTime<Utc>) -> NewInvitation {
    NewInvitation {
        id_hash: id_hash.to_string(),
        user_id: user_id.to_string(),
        expires_at,
        created_by: "admin".to_string(),
    }
}

fn session(id_hash: &str, user_id: &str, at: DateTime<Utc>) -> NewSession {
    NewSession {
        id_hash: id_hash.to_string(),
        user_id: user_id.to_string(),
        kind: SessionKind::Ui,
        csrf_hash: Some("csrf".to_string()),
        created_at: at,
        idle_expires_at: at + Duration::minutes(30),
        absolute_expires_at: at + Duration::hours(8),
        user_agent: Some("test-agent".to_string()),
    }
}

fn conflict(err: &StoreError) -> Option<&str> {
    match err {
        StoreError::Conflict { what } => Some(what.as_str()),
        _ => None,
    }
}

fn not_found(err: &StoreError) -> Option<&str> {
    match err {
        StoreError::NotFound { what } => Some(what.as_str()),
        _ => None,
    }
}

fn ids(users: &[tollgate_store::UserRow]) -> Vec<&str> {
    users.iter().map(|u| u.user_id.as_str()).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn migrations_reach_version_two() {
    for db in backends().await {
        // Later migrations (keys is 3) build on this one; the exact latest is checked there.
        assert!(db.store.schema_version().await.unwrap() >= Some(2));
        db.drop_db().await;
    }
}

#[tokio::test]
async fn users_round_trip_and_keep_the_password_apart() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        let new = NewUser {
            user_email: Some("Ada@Example.com".into()),
            user_alias: Some("Ada".into()),
            teams: strings(&["t1"]),
            models: strings(&["gpt-4o", "claude-3"]),
            max_budget_nanos: Some(5_000_000_000),
            budget_duration: Some("30d".into()),
            spend_nanos: 12,
            tpm_limit: Some(1000),
            rpm_limit: Some(10),
            max_parallel_requests: Some(2),
            metadata: json!({"team": "research", "n": 1, "nested": {"a": [1, 2]}}),
            ..NewUser::new("u1", "proxy_admin")
        };
        let created = s.create_user(&new).await.unwrap();
        assert_eq!(created.user_id, "u1");
        assert_eq!(created.user_email.as_deref(), Some("Ada@Example.com"));
        assert_eq!(created.user_alias.as_deref(), Some("Ada"));
        assert_eq!(created.user_role, "proxy_admin");
        assert_eq!(created.teams, new.teams);
        assert_eq!(created.models, new.models);
        assert_eq!(created.max_budget_nanos, Some(5_000_000_000));
        assert_eq!(created.budget_duration.as_deref(), Some("30d"));
        assert_eq!(created.spend_nanos, 12);
        assert_eq!(created.tpm_limit, Some(1000));
        assert_eq!(created.rpm_limit, Some(10));
        assert_eq!(created.max_parallel_requests, Some(2));
        assert_eq!(created.metadata, new.metadata);
        assert_eq!(created.created_at, created.updated_at);

        assert_eq!(
            s.get_user("u1").await.unwrap().as_ref(),
            Some(&created),
            "{name}"
        );
        assert_eq!(s.get_user("nobody").await.unwrap(), None);
        let by_email = s.get_user_by_email("ada@EXAMPLE.com").await.unwrap();
        assert_eq!(by_email.as_ref(), Some(&created));
        assert_eq!(s.get_user_by_email("eve@example.com").await.unwrap(), None);

        // A user without anything optional.
        let bare = s.create_user(&user("u2", None)).await.unwrap();
        assert_eq!(bare.user_email, None);
        assert!(bare.teams.is_empty() && bare.models.is_empty());
        assert_eq!(bare.metadata, json!({}));
        assert_eq!(bare.spend_nanos, 0);

        // Passwords: absent until set, and only through the password-specific reads.
        assert_eq!(s.get_password_hash("u1").await.unwrap(), None);
        let (login, hash) = s
            .get_login_by_email("ADA@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((login, hash), (created.clone(), None));
        assert!(s.set_password_hash("u1", "$argon2id$v=19$x").await.unwrap());
        assert!(!s.set_password_hash("nobody", "h").await.unwrap());
        assert_eq!(
            s.get_password_hash("u1").await.unwrap().as_deref(),
            Some("$argon2id$v=19$x")
        );
        assert_eq!(s.get_password_hash("nobody").await.unwrap(), None);
        let (login, hash) = s
            .get_login_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(login.user_id, "u1");
        assert_eq!(hash.as_deref(), Some("$argon2id$v=19$x"));
        assert!(login.updated_at >= created.updated_at);
        assert!(s.get_login_by_email("eve@x.com").await.unwrap().is_none());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn duplicate_ids_and_emails_conflict_whatever_the_case() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        s.create_user(&user("u1", Some("A@x.com"))).await.unwrap();
        let err = s
            .create_user(&user("u2", Some("a@x.com")))
            .await
            .unwrap_err();
        assert_eq!(conflict(&err), Some("user_email"), "{name}: {err}");
        let err = s
            .create_user(&user("u1", Some("other@x.com")))
            .await
            .unwrap_err();
        assert_eq!(conflict(&err), Some("user_id"), "{name}: {err}");
        // Users without an email do not collide with each other.
        s.create_user(&user("n1", None)).await.unwrap();
        s.create_user(&user("n2", None)).await.unwrap();

        // Changing an email to one taken in another case conflicts and changes nothing.
        let before = s.get_user("n1").await.unwrap().unwrap();
        let patch = UserPatch {
            user_email: Some(Some("a@X.COM".into())),
            user_alias: Some(Some("changed".into())),
            ..UserPatch::default()
        };
        let err = s.update_user("n1", &patch).await.unwrap_err();
        assert_eq!(conflict(&err), Some("user_email"), "{name}: {err}");
        assert_eq!(s.get_user("n1").await.unwrap().unwrap(), before);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn user_lists_filter_page_and_take_email_text_literally() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        let emails = [
            ("u1", Some("a%b@x.com"), "internal_user"),
            ("u2", Some("ab@x.com"), "internal_user"),
            ("u3", Some("a_b@x.com"), "proxy_admin"),
            ("u4", Some("axb@x.com"), "internal_user_viewer"),
            ("u5", Some("c\\d@x.com"), "internal_user"),
            ("u6", None, "internal_user"),
        ];
        for (id, email, role) in emails {
            let mut u = user(id, email);
            u.user_role = role.to_string();
            s.create_user(&u).await.unwrap();
        }
        let list = |f: UserFilter| async move { s.list_users(&f).await.unwrap() };
        let filter = UserFilter::default();

        let (all, total) = list(filter.clone()).await;
        assert_eq!(ids(&all), ["u1", "u2", "u3", "u4", "u5", "u6"], "{name}");
        assert_eq!(total, 6);

        // Wildcards typed by a user match only themselves.
        let contains = |needle: &str| UserFilter {
            email_contains: Some(needle.to_string()),
            ..filter.clone()
        };
        let (found, total) = list(contains("%")).await;
        assert_eq!((ids(&found), total), (vec!["u1"], 1), "{name}");
        let (found, total) = list(contains("_")).await;
        assert_eq!((ids(&found), total), (vec!["u3"], 1), "{name}");
        let (found, total) = list(contains("\\")).await;
        assert_eq!((ids(&found), total), (vec!["u5"], 1), "{name}");
        // Case-insensitive, anywhere in the address.
        let (found, _) = list(contains("B@X")).await;
        assert_eq!(ids(&found), ["u1", "u2", "u3", "u4"]);
        let (found, total) = list(contains("nothing")).await;
        assert_eq!((found.len(), total), (0, 0));

        let (found, total) = list(UserFilter {
            role: Some("internal_user".into()),
            ..filter.clone()
        })
        .await;
        assert_eq!((ids(&found), total), (vec!["u1", "u2", "u5", "u6"], 4));

        let (found, total) = list(UserFilter {
            user_ids: Some(strings(&["u6", "u2", "missing"])),
            ..filter.clone()
        })
        .await;
        assert_eq!((ids(&found), total), (vec!["u2", "u6"], 2));
        let (found, total) = list(UserFilter {
            user_ids: Some(Vec::new()),
            ..filter.clone()
        })
        .await;
        assert_eq!((found.len(), total), (0, 0));

        // Filters combine.
        let (found, total) = list(UserFilter {
            role: Some("internal_user".into()),
            email_contains: Some("b@".into()),
            user_ids: Some(strings(&["u1", "u2", "u3"])),
            ..filter.clone()
        })
        .await;
        assert_eq!((ids(&found), total), (vec!["u1", "u2"], 2));

        // Pages: the total is of all matches, whatever the page.
        let page = |page: u32| UserFilter {
            page,
            page_size: 4,
            ..filter.clone()
        };
        let (p1, t1) = list(page(1)).await;
        let (p2, t2) = list(page(2)).await;
        let (p3, t3) = list(page(3)).await;
        assert_eq!(ids(&p1), ["u1", "u2", "u3", "u4"]);
        assert_eq!(ids(&p2), ["u5", "u6"]);
        assert!(p3.is_empty());
        assert_eq!((t1, t2, t3), (6, 6, 6));
        db.drop_db().await;
    }
}

#[tokio::test]
async fn user_patches_return_before_and_after() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        let created = s
            .create_user(&NewUser {
                user_alias: Some("old".into()),
                max_budget_nanos: Some(100),
                tpm_limit: Some(5),
                models: strings(&["m1"]),
                ..user("u1", Some("Old@x.com"))
            })
            .await
            .unwrap();
        s.set_password_hash("u1", "hash").await.unwrap();
        let before_patch = s.get_user("u1").await.unwrap().unwrap();

        let patch = UserPatch {
            user_email: Some(Some("New@x.com".into())),
            user_alias: Some(None),
            user_role: Some("proxy_admin_viewer".into()),
            models: Some(strings(&["m2", "m3"])),
            max_budget_nanos: Some(Some(200)),
            budget_duration: Some(Some("1mo".into())),
            spend_nanos: Some(7),
            rpm_limit: Some(Some(60)),
            metadata: Some(json!({"k": "v"})),
            ..UserPatch::default()
        };
        let (before, after) = s.update_user("u1", &patch).await.unwrap().unwrap();
        assert_eq!(before, before_patch, "{name}");
        assert_eq!(after.user_email.as_deref(), Some("New@x.com"));
        assert_eq!(after.user_alias, None);
        assert_eq!(after.user_role, "proxy_admin_viewer");
        assert_eq!(after.models, ["m2", "m3"]);
        assert_eq!(after.max_budget_nanos, Some(200));
        assert_eq!(after.budget_duration.as_deref(), Some("1mo"));
        assert_eq!(after.spend_nanos, 7);
        assert_eq!(after.rpm_limit, Some(60));
        assert_eq!(after.metadata, json!({"k": "v"}));
        // Untouched fields stay as they were.
        assert_eq!(after.tpm_limit, Some(5));
        assert_eq!(after.teams, created.teams);
        assert_eq!(after.max_parallel_requests, None);
        assert_eq!(after.created_at, created.created_at);
        assert!(after.updated_at >= before.updated_at);
        assert_eq!(s.get_user("u1").await.unwrap().unwrap(), after);
        // The password is not part of a patch and survives it.
        assert_eq!(
            s.get_password_hash("u1").await.unwrap().as_deref(),
            Some("hash")
        );

        // The email index follows the change.
        assert!(s.get_user_by_email("old@x.com").await.unwrap().is_none());
        assert_eq!(
            s.get_user_by_email("NEW@X.COM").await.unwrap().unwrap(),
            after
        );

        // An empty patch changes nothing but updated_at.
        let (b2, a2) = s
            .update_user("u1", &UserPatch::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b2, after);
        assert_eq!(
            tollgate_store::UserRow {
                updated_at: b2.updated_at,
                ..a2
            },
            b2
        );
        // Clearing the email frees it.
        let (_, a3) = s
            .update_user(
                "u1",
                &UserPatch {
                    user_email: Some(None),
                    ..UserPatch::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a3.user_email, None);
        s.create_user(&user("u2", Some("new@x.com"))).await.unwrap();

        assert!(s.update_user("nobody", &patch).await.unwrap().is_none());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn deleting_users_cascades_to_their_rows() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        for id in ["u1", "u2"] {
            s.create_user(&user(id, Some(&format!("{id}@x.com"))))
                .await
                .unwrap();
            s.create_invitation(&invitation(
                &format!("inv-{id}"),
                id,
                t0() + Duration::days(7),
            ))
            .await
            .unwrap();
            s.create_session(&session(&format!("sess-{id}"), id, t0()))
                .await
                .unwrap();
        }
        s.create_team(&NewTeam::new("t1")).await.unwrap();
        s.add_member("t1", "u1", "admin", None).await.unwrap();
        s.add_member("t1", "u2", "user", None).await.unwrap();

        let deleted = s
            .delete_users(&strings(&["missing", "u1", "u1"]))
            .await
            .unwrap();
        assert_eq!(deleted, ["u1"], "{name}");
        assert!(s.get_user("u1").await.unwrap().is_none());
        assert!(s.get_invitation("inv-u1").await.unwrap().is_none());
        assert!(s.get_live_session("sess-u1", t0()).await.unwrap().is_none());
        assert!(s.teams_of_user("u1").await.unwrap().is_empty());
        let members = s.list_members("t1").await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].user_id, "u2");
        // The email is free again.
        s.create_user(&user("u3", Some("U1@x.com"))).await.unwrap();

        // The other user keeps everything.
        assert!(s.get_invitation("inv-u2").await.unwrap().is_some());
        assert!(s.get_live_session("sess-u2", t0()).await.unwrap().is_some());
        assert!(s.delete_users(&[]).await.unwrap().is_empty());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn teams_round_trip_patch_and_delete() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        let new = NewTeam {
            team_alias: Some("Research".into()),
            models: strings(&["gpt-4o"]),
            max_budget_nanos: Some(1_000),
            budget_duration: Some("7d".into()),
            tpm_limit: Some(1),
            rpm_limit: Some(2),
            max_parallel_requests: Some(3),
            blocked: true,
            metadata: json!({"cost_center": 42}),
            ..NewTeam::new("t1")
        };
        let t1 = s.create_team(&new).await.unwrap();
        assert_eq!(t1.team_id, "t1");
        assert_eq!(t1.team_alias.as_deref(), Some("Research"));
        assert_eq!(t1.models, ["gpt-4o"]);
        assert_eq!(
            (t1.max_budget_nanos, t1.tpm_limit, t1.rpm_limit),
            (Some(1_000), Some(1), Some(2))
        );
        assert_eq!(t1.max_parallel_requests, Some(3));
        assert_eq!(t1.budget_duration.as_deref(), Some("7d"));
        assert!(t1.blocked);
        assert_eq!(t1.spend_nanos, 0);
        assert_eq!(t1.metadata, json!({"cost_center": 42}));
        assert_eq!(
            s.get_team("t1").await.unwrap().as_ref(),
            Some(&t1),
            "{name}"
        );
        assert!(s.get_team("nope").await.unwrap().is_none());
        let err = s.create_team(&NewTeam::new("t1")).await.unwrap_err();
        assert_eq!(conflict(&err), Some("team_id"), "{err}");

        let t2 = s.create_team(&NewTeam::new("t2")).await.unwrap();
        assert!(!t2.blocked);
        let all: Vec<_> = s.list_teams(None).await.unwrap();
        assert_eq!(all, vec![t1.clone(), t2.clone()]);

        let patch = TeamPatch {
            team_alias: Some(None),
            models: Some(Vec::new()),
            max_budget_nanos: Some(None),
            spend_nanos: Some(9),
            tpm_limit: Some(Some(10)),
            blocked: Some(false),
            metadata: Some(json!({})),
            ..TeamPatch::default()
        };
        let (before, after) = s.update_team("t1", &patch).await.unwrap().unwrap();
        assert_eq!(before, t1);
        assert_eq!(after.team_alias, None);
        assert!(after.models.is_empty());
        assert_eq!(after.max_budget_nanos, None);
        assert_eq!(after.spend_nanos, 9);
        assert_eq!(after.tpm_limit, Some(10));
        assert_eq!(after.rpm_limit, Some(2), "unchanged");
        assert_eq!(after.budget_duration.as_deref(), Some("7d"), "unchanged");
        assert!(!after.blocked);
        assert_eq!(after.metadata, json!({}));
        assert_eq!(after.created_at, t1.created_at);
        assert_eq!(s.get_team("t1").await.unwrap().unwrap(), after);
        assert!(s.update_team("nope", &patch).await.unwrap().is_none());

        s.create_user(&user("u1", None)).await.unwrap();
        s.add_member("t1", "u1", "user", None).await.unwrap();
        s.add_member("t2", "u1", "admin", None).await.unwrap();
        let deleted = s
            .delete_teams(&strings(&["t1", "nope", "t1"]))
            .await
            .unwrap();
        assert_eq!(deleted, ["t1"]);
        assert!(s.get_team("t1").await.unwrap().is_none());
        assert!(s.list_members("t1").await.unwrap().is_empty());
        assert_eq!(
            s.teams_of_user("u1").await.unwrap(),
            vec![("t2".to_string(), "admin".to_string())]
        );
        // The member's own team list no longer names the deleted team.
        assert_eq!(s.get_user("u1").await.unwrap().unwrap().teams, ["t2"]);
        assert_eq!(s.list_teams(None).await.unwrap().len(), 1);
        assert!(s.delete_teams(&[]).await.unwrap().is_empty());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn team_members_are_added_changed_and_removed() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        for id in ["t1", "t2", "t3"] {
            s.create_team(&NewTeam::new(id)).await.unwrap();
        }
        // A user created with a team already listed does not get it twice.
        s.create_user(&NewUser {
            teams: strings(&["t2"]),
            ..user("u1", None)
        })
        .await
        .unwrap();
        s.create_user(&user("u2", None)).await.unwrap();

        let m = s.add_member("t1", "u1", "admin", Some(500)).await.unwrap();
        assert_eq!(
            (m.team_id.as_str(), m.user_id.as_str(), m.role.as_str()),
            ("t1", "u1", "admin")
        );
        assert_eq!((m.max_budget_in_team_nanos, m.spend_nanos), (Some(500), 0));
        s.add_member("t2", "u1", "user", None).await.unwrap();
        s.add_member("t1", "u2", "user", None).await.unwrap();
        assert_eq!(
            s.get_user("u1").await.unwrap().unwrap().teams,
            ["t2", "t1"],
            "{name}"
        );

        let err = s.add_member("t1", "u1", "user", None).await.unwrap_err();
        assert_eq!(conflict(&err), Some("team member"), "{name}: {err}");
        let err = s.add_member("t1", "ghost", "user", None).await.unwrap_err();
        assert_eq!(not_found(&err), Some("user"), "{name}: {err}");
        let err = s.add_member("ghost", "u1", "user", None).await.unwrap_err();
        assert_eq!(not_found(&err), Some("team"), "{name}: {err}");
        let err = s.add_member("t3", "u1", "owner", None).await.unwrap_err();
        assert!(matches!(err, StoreError::Query { .. }), "{name}: {err}");
        // Failed adds leave no trace.
        assert_eq!(s.get_user("u1").await.unwrap().unwrap().teams, ["t2", "t1"]);
        assert!(s.list_members("t3").await.unwrap().is_empty());

        let members = s.list_members("t1").await.unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(
            (members[0].user_id.as_str(), members[0].role.as_str()),
            ("u1", "admin")
        );
        assert_eq!(
            (members[1].user_id.as_str(), members[1].role.as_str()),
            ("u2", "user")
        );

        let changed = s.update_member_role("t1", "u2", "admin").await.unwrap();
        assert_eq!(changed.unwrap().role, "admin");
        assert!(s
            .update_member_role("t3", "u2", "admin")
            .await
            .unwrap()
            .is_none());
        let changed = s
            .set_member_budget("t1", "u1", None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed.max_budget_in_team_nanos, None);
        let changed = s
            .set_member_budget("t1", "u2", Some(7))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed.max_budget_in_team_nanos, Some(7));
        assert!(s
            .set_member_budget("t3", "u2", Some(7))
            .await
            .unwrap()
            .is_none());

        assert_eq!(
            s.teams_of_user("u1").await.unwrap(),
            vec![
                ("t1".to_string(), "admin".to_string()),
                ("t2".to_string(), "user".to_string())
            ]
        );
        let mine: Vec<_> = s
            .list_teams(Some("u1"))
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.team_id)
            .collect();
        assert_eq!(mine, ["t1", "t2"]);
        assert!(s.list_teams(Some("nobody")).await.unwrap().is_empty());

        assert!(s.remove_member("t1", "u1").await.unwrap());
        assert!(!s.remove_member("t1", "u1").await.unwrap());
        assert_eq!(s.get_user("u1").await.unwrap().unwrap().teams, ["t2"]);
        assert_eq!(s.list_members("t1").await.unwrap().len(), 1);
        assert_eq!(
            s.teams_of_user("u1").await.unwrap(),
            vec![("t2".to_string(), "user".to_string())]
        );
        db.drop_db().await;
    }
}

#[tokio::test]
async fn invitations_round_trip() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        s.create_user(&user("u1", None)).await.unwrap();
        s.create_user(&user("u2", None)).await.unwrap();
        // Expiry is kept to the second.
        let expires = t0() + Duration::milliseconds(1500);
        let inv = s
            .create_invitation(&invitation("h1", "u1", expires))
            .await
            .unwrap();
        assert_eq!(inv.id_hash, "h1");
        assert_eq!(inv.user_id, "u1");
        assert!(!inv.is_accepted);
        assert_eq!(inv.accepted_at, None);
        assert_eq!(inv.expires_at, t0() + Duration::seconds(1), "{name}");
        assert_eq!(
            (inv.created_by.as_str(), inv.updated_by.as_str()),
            ("admin", "admin")
        );
        assert_eq!(inv.created_at, inv.updated_at);
        assert_eq!(s.get_invitation("h1").await.unwrap().as_ref(), Some(&inv));
        assert!(s.get_invitation("nope").await.unwrap().is_none());

        let err = s
            .create_invitation(&invitation("h1", "u2", expires))
            .await
            .unwrap_err();
        assert_eq!(conflict(&err), Some("invitation"), "{err}");
        let err = s
            .create_invitation(&invitation("h9", "ghost", expires))
            .await
            .unwrap_err();
        assert_eq!(not_found(&err), Some("user"), "{name}: {err}");

        let other = s
            .create_invitation(&invitation("h2", "u2", expires))
            .await
            .unwrap();
        let all = s.list_invitations(None).await.unwrap();
        assert_eq!(all, vec![inv.clone(), other.clone()]);
        assert_eq!(s.list_invitations(Some("u2")).await.unwrap(), vec![other]);
        assert!(s.list_invitations(Some("nobody")).await.unwrap().is_empty());

        let accepted = s
            .update_invitation("h1", true, "root")
            .await
            .unwrap()
            .unwrap();
        assert!(accepted.is_accepted);
        assert!(accepted.accepted_at.is_some());
        assert_eq!(accepted.updated_by, "root");
        assert_eq!(accepted.created_by, "admin");
        assert!(accepted.updated_at >= inv.updated_at);
        // Accepting again keeps the first acceptance time.
        let again = s
            .update_invitation("h1", true, "root")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.accepted_at, accepted.accepted_at);
        let reopened = s
            .update_invitation("h1", false, "root")
            .await
            .unwrap()
            .unwrap();
        assert!(!reopened.is_accepted);
        assert_eq!(reopened.accepted_at, None);
        assert!(s
            .update_invitation("nope", true, "root")
            .await
            .unwrap()
            .is_none());

        let gone = s.delete_invitation("h1").await.unwrap().unwrap();
        assert_eq!(gone, reopened);
        assert!(s.delete_invitation("h1").await.unwrap().is_none());
        assert!(s.get_invitation("h1").await.unwrap().is_none());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn invitations_are_claimable_only_before_expiry_and_once() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        s.create_user(&user("u1", None)).await.unwrap();
        let expires = t0();
        for h in ["at", "before", "just-before", "after"] {
            s.create_invitation(&invitation(h, "u1", expires))
                .await
                .unwrap();
        }

        // now == expires_at: expired.
        assert_eq!(
            s.claim_invitation("at", expires).await.unwrap(),
            ClaimOutcome::Expired,
            "{name}"
        );
        assert_eq!(
            s.claim_invitation("after", expires + Duration::milliseconds(500))
                .await
                .unwrap(),
            ClaimOutcome::Expired
        );
        // One second before: claimable.
        let now = expires - Duration::seconds(1);
        assert_eq!(
            s.claim_invitation("before", now).await.unwrap(),
            ClaimOutcome::Claimed {
                user_id: "u1".into()
            },
            "{name}"
        );
        // Within the last second: still before the expiry.
        assert_eq!(
            s.claim_invitation("just-before", expires - Duration::milliseconds(1))
                .await
                .unwrap(),
            ClaimOutcome::Claimed {
                user_id: "u1".into()
            },
            "{name}"
        );
        let row = s.get_invitation("before").await.unwrap().unwrap();
        assert!(row.is_accepted);
        assert_eq!(row.accepted_at, Some(now));
        assert_eq!(row.updated_by, "u1");
        assert!(!s.get_invitation("at").await.unwrap().unwrap().is_accepted);

        // Once used, always used; even before the expiry.
        assert_eq!(
            s.claim_invitation("before", now).await.unwrap(),
            ClaimOutcome::AlreadyUsed
        );
        assert_eq!(
            s.claim_invitation("nope", now).await.unwrap(),
            ClaimOutcome::NotFound
        );
        assert_eq!(
            s.claim_invitation_and_set_password("nope", now, "h")
                .await
                .unwrap(),
            ClaimOutcome::NotFound
        );
        assert_eq!(
            s.claim_invitation_and_set_password("before", now, "h")
                .await
                .unwrap(),
            ClaimOutcome::AlreadyUsed
        );
        assert_eq!(
            s.claim_invitation_and_set_password("at", expires, "h")
                .await
                .unwrap(),
            ClaimOutcome::Expired
        );
        // No outcome but Claimed sets a password.
        assert_eq!(s.get_password_hash("u1").await.unwrap(), None);
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_have_exactly_one_winner() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        s.create_user(&user("u1", None)).await.unwrap();
        let expires = t0() + Duration::days(7);
        s.create_invitation(&invitation("race", "u1", expires))
            .await
            .unwrap();
        s.create_invitation(&invitation("race-pw", "u1", expires))
            .await
            .unwrap();

        let claims: Vec<_> = (0..10)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.claim_invitation("race", t0()).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for c in claims {
            outcomes.push(c.await.unwrap().unwrap());
        }
        let won = outcomes
            .iter()
            .filter(|o| matches!(o, ClaimOutcome::Claimed { .. }))
            .count();
        let used = outcomes
            .iter()
            .filter(|o| **o == ClaimOutcome::AlreadyUsed)
            .count();
        assert_eq!((won, used), (1, 9), "{name}: {outcomes:?}");

        let claims: Vec<_> = (0..10)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    let hash = format!("hash-{i}");
                    let outcome = s
                        .claim_invitation_and_set_password("race-pw", t0(), &hash)
                        .await;
                    (hash, outcome)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for c in claims {
            let (hash, outcome) = c.await.unwrap();
            match outcome.unwrap() {
                ClaimOutcome::Claimed { user_id } => {
                    assert_eq!(user_id, "u1");
                    winners.push(hash);
                }
                other => assert_eq!(other, ClaimOutcome::AlreadyUsed, "{name}"),
            }
        }
        assert_eq!(winners.len(), 1, "{name}: {winners:?}");
        // The stored password is the winner's.
        assert_eq!(s.get_password_hash("u1").await.unwrap(), winners.pop());
        db.drop_db().await;
    }
}

/// Makes every change to a password hash fail, to see that a claim is undone with it.
async fn refuse_password_changes(store: &Store, refuse: bool) {
    match store.backend() {
        Backend::Sqlite(p) => {
            let sql = if refuse {
                "CREATE TRIGGER refuse_password BEFORE UPDATE OF password_hash ON users \
                 BEGIN SELECT RAISE(ABORT, 'password changes refused'); END"
            } else {
                "DROP TRIGGER refuse_password"
            };
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
        Backend::Postgres(p) => {
            let sql = if refuse {
                "CREATE FUNCTION refuse_password() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'password changes refused'; END $$; \
                 CREATE TRIGGER refuse_password BEFORE UPDATE OF password_hash ON users \
                 FOR EACH ROW EXECUTE FUNCTION refuse_password();"
            } else {
                "DROP TRIGGER refuse_password ON users; DROP FUNCTION refuse_password();"
            };
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_claim_and_its_password_commit_together_or_not_at_all() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        s.create_user(&user("u1", Some("u1@x.com"))).await.unwrap();
        s.create_invitation(&invitation("h1", "u1", t0() + Duration::days(7)))
            .await
            .unwrap();

        refuse_password_changes(s, true).await;
        let err = s
            .claim_invitation_and_set_password("h1", t0(), "new-hash")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Query { .. }), "{name}: {err}");
        let row = s.get_invitation("h1").await.unwrap().unwrap();
        assert!(!row.is_accepted, "{name}: the claim must be rolled back");
        assert_eq!(row.accepted_at, None);
        assert_eq!(s.get_password_hash("u1").await.unwrap(), None);

        refuse_password_changes(s, false).await;
        assert_eq!(
            s.claim_invitation_and_set_password("h1", t0(), "new-hash")
                .await
                .unwrap(),
            ClaimOutcome::Claimed {
                user_id: "u1".into()
            }
        );
        let row = s.get_invitation("h1").await.unwrap().unwrap();
        assert!(row.is_accepted);
        assert_eq!(row.accepted_at, Some(t0()));
        let (_, hash) = s.get_login_by_email("u1@x.com").await.unwrap().unwrap();
        assert_eq!(hash.as_deref(), Some("new-hash"));
        db.drop_db().await;
    }
}

#[tokio::test]
async fn sessions_live_until_idle_or_absolute_expiry() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        s.create_user(&user("u1", None)).await.unwrap();
        s.create_user(&user("u2", None)).await.unwrap();
        let new = session("s1", "u1", t0());
        let created = s.create_session(&new).await.unwrap();
        assert_eq!(created.id_hash, "s1");
        assert_eq!(created.user_id, "u1");
        assert_eq!(created.kind, SessionKind::Ui);
        assert_eq!(created.csrf_hash.as_deref(), Some("csrf"));
        assert_eq!(created.created_at, t0());
        assert_eq!(created.last_seen_at, t0());
        assert_eq!(created.idle_expires_at, new.idle_expires_at);
        assert_eq!(created.absolute_expires_at, new.absolute_expires_at);
        assert_eq!(created.user_agent.as_deref(), Some("test-agent"));

        let api = s
            .create_session(&NewSession {
                kind: SessionKind::Api,
                csrf_hash: None,
                user_agent: None,
                ..session("s2", "u1", t0())
            })
            .await
            .unwrap();
        assert_eq!(
            (api.kind, api.csrf_hash, api.user_agent),
            (SessionKind::Api, None, None)
        );

        let err = s.create_session(&new).await.unwrap_err();
        assert_eq!(conflict(&err), Some("session"), "{err}");
        let err = s
            .create_session(&session("s9", "ghost", t0()))
            .await
            .unwrap_err();
        assert_eq!(not_found(&err), Some("user"), "{name}: {err}");

        let minute = Duration::minutes(1);
        let live = |at: DateTime<Utc>| async move { s.get_live_session("s1", at).await.unwrap() };
        assert_eq!(live(t0() + minute).await.as_ref(), Some(&created), "{name}");
        // Idle expiry: live until, not at, the idle deadline.
        assert!(live(t0() + Duration::minutes(29)).await.is_some());
        assert!(live(t0() + Duration::minutes(30)).await.is_none(), "{name}");
        assert!(s.get_live_session("nope", t0()).await.unwrap().is_none());

        // Activity moves the idle deadline.
        assert!(s
            .touch_session(
                "s1",
                t0() + Duration::minutes(20),
                t0() + Duration::minutes(50)
            )
            .await
            .unwrap());
        let touched = live(t0() + Duration::minutes(45)).await.unwrap();
        assert_eq!(touched.last_seen_at, t0() + Duration::minutes(20));
        assert_eq!(touched.idle_expires_at, t0() + Duration::minutes(50));
        assert_eq!(touched.created_at, t0());
        // An expired session cannot be revived by a late touch.
        assert!(!s
            .touch_session(
                "s1",
                t0() + Duration::minutes(50),
                t0() + Duration::minutes(80)
            )
            .await
            .unwrap());
        assert!(live(t0() + Duration::minutes(50)).await.is_none());
        assert!(!s.touch_session("nope", t0(), t0() + minute).await.unwrap());

        // Absolute expiry ends a session however recently it was used.
        let eight_hours = t0() + Duration::hours(8);
        assert!(s
            .touch_session("s2", t0() + Duration::minutes(20), eight_hours - minute)
            .await
            .unwrap());
        assert!(s
            .touch_session(
                "s2",
                eight_hours - minute * 2,
                eight_hours + Duration::minutes(30)
            )
            .await
            .unwrap());
        let s2 = |at| async move { s.get_live_session("s2", at).await.unwrap() };
        assert!(s2(eight_hours - Duration::seconds(1)).await.is_some());
        assert!(s2(eight_hours).await.is_none(), "{name}");
        assert!(!s
            .touch_session("s2", eight_hours, eight_hours + minute)
            .await
            .unwrap());

        // Clean-up of expired sessions leaves live ones.
        s.create_session(&session("s3", "u2", eight_hours))
            .await
            .unwrap();
        assert_eq!(s.delete_expired_sessions(eight_hours).await.unwrap(), 2);
        assert!(s
            .get_live_session("s3", eight_hours)
            .await
            .unwrap()
            .is_some());
        assert_eq!(s.delete_expired_sessions(eight_hours).await.unwrap(), 0);

        assert!(s.delete_session("s3").await.unwrap());
        assert!(!s.delete_session("s3").await.unwrap());
        for id in ["a", "b"] {
            s.create_session(&session(id, "u2", t0())).await.unwrap();
        }
        s.create_session(&session("c", "u1", t0())).await.unwrap();
        assert_eq!(s.delete_sessions_of_user("u2").await.unwrap(), 2);
        assert_eq!(s.delete_sessions_of_user("u2").await.unwrap(), 0);
        assert!(s.get_live_session("c", t0()).await.unwrap().is_some());
        db.drop_db().await;
    }
}

fn entry(id: &str, second: i64, actor: Option<&str>, object: (&str, Option<&str>)) -> AuditEntry {
    AuditEntry {
        id: id.to_string(),
        at: t0() + Duration::seconds(second),
        actor_id: actor.map(str::to_string),
        actor_role: actor.map(|_| "proxy_admin".to_string()),
        action: format!("{}.update", object.0),
        object_type: object.0.to_string(),
        object_id: object.1.map(str::to_string),
        before: Some(json!({"user_role": "internal_user"})),
        after: Some(json!({"user_role": "proxy_admin", "models": ["a", "b"]})),
    }
}

#[tokio::test]
async fn audit_entries_page_newest_first() {
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        let entries = vec![
            entry("01", 1, Some("admin"), ("user", Some("u1"))),
            entry("02", 2, Some("admin"), ("team", Some("t1"))),
            AuditEntry {
                before: None,
                after: None,
                ..entry("03", 3, None, ("user", Some("u2")))
            },
            AuditEntry {
                before: Some(serde_json::Value::Null),
                ..entry("04", 4, Some("ops"), ("user", Some("u1")))
            },
            // Same instant as 04: the later id comes first.
            entry("05", 4, Some("admin"), ("invitation", None)),
        ];
        for e in &entries {
            s.insert_audit(e).await.unwrap();
        }
        let err = s.insert_audit(&entries[0]).await.unwrap_err();
        assert_eq!(conflict(&err), Some("audit entry"), "{err}");

        let ids = |es: &[AuditEntry]| es.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        let page = |page: u32| AuditFilter {
            page,
            page_size: 2,
            ..AuditFilter::default()
        };
        let (p1, t1) = s.list_audit(&page(1)).await.unwrap();
        let (p2, t2) = s.list_audit(&page(2)).await.unwrap();
        let (p3, t3) = s.list_audit(&page(3)).await.unwrap();
        let (p4, _) = s.list_audit(&page(4)).await.unwrap();
        assert_eq!(ids(&p1), ["05", "04"], "{name}");
        assert_eq!(ids(&p2), ["03", "02"]);
        assert_eq!(ids(&p3), ["01"]);
        assert!(p4.is_empty());
        assert_eq!((t1, t2, t3), (5, 5, 5));
        // Entries read back as written, JSON null and SQL NULL kept apart.
        assert_eq!(p1[1], entries[3]);
        assert_eq!(p2[0], entries[2]);
        assert_eq!(p3[0], entries[0]);

        let (found, total) = s
            .list_audit(&AuditFilter {
                object_type: Some("user".into()),
                object_id: Some("u1".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!((ids(&found), total), (strings(&["04", "01"]), 2));
        let (found, total) = s
            .list_audit(&AuditFilter {
                actor_id: Some("admin".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!((ids(&found), total), (strings(&["05", "02", "01"]), 3));
        let (found, total) = s
            .list_audit(&AuditFilter {
                actor_id: Some("admin".into()),
                object_type: Some("user".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!((ids(&found), total), (strings(&["01"]), 1));
        db.drop_db().await;
    }
}

const V1_SQLITE: &str = include_str!("../src/migrations/sqlite/0001_init.sql");
const V1_POSTGRES: &str = include_str!("../src/migrations/postgres/0001_init.sql");
const MIGRATIONS_TABLE: &str = "CREATE TABLE tollgate_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";
const INSERT_V1_SPEND: &str = "INSERT INTO spend_logs (request_id, call_type, api_key, model, \
    model_group, spend_nanos, prompt_tokens, completion_tokens, total_tokens, status, \
    http_status, start_time, end_time, request_duration_ms) \
    VALUES ($1, 'chat_completion', 'k', 'gpt-4o', 'gpt-4o', 4321, 10, 5, 15, 'success', 200, \
    $2, $3, 250)";

#[tokio::test]
async fn a_version_one_database_upgrades_without_touching_spend_logs() {
    for empty in empty_databases().await {
        let start = t0();
        let end = t0() + Duration::milliseconds(250);
        // Lay down exactly what Tollgate's first schema version left behind.
        if empty.is_postgres() {
            let pool = sqlx::PgPool::connect(&empty.url).await.unwrap();
            sqlx::raw_sql(V1_POSTGRES).execute(&pool).await.unwrap();
            sqlx::raw_sql(MIGRATIONS_TABLE)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO tollgate_migrations VALUES (1, 'settings and spend logs', $1)",
            )
            .bind(Utc::now().to_rfc3339())
            .execute(&pool)
            .await
            .unwrap();
            for id in ["v1-a", "v1-b"] {
                sqlx::query(INSERT_V1_SPEND)
                    .bind(id)
                    .bind(start)
                    .bind(end)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        } else {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&empty.url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            sqlx::raw_sql(V1_SQLITE).execute(&pool).await.unwrap();
            sqlx::raw_sql(MIGRATIONS_TABLE)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO tollgate_migrations VALUES (1, 'settings and spend logs', $1)",
            )
            .bind(Utc::now().to_rfc3339())
            .execute(&pool)
            .await
            .unwrap();
            for id in ["v1-a", "v1-b"] {
                sqlx::query(INSERT_V1_SPEND)
                    .bind(id)
                    .bind(start)
                    .bind(end)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }

        let db = empty.open().await;
        let s = &db.store;
        let name = s.backend_name();
        assert!(s.schema_version().await.unwrap() >= Some(2), "{name}");
        assert_eq!(s.count_spend_logs().await.unwrap(), 2);
        let rec = s.get_spend_log("v1-a").await.unwrap().unwrap();
        assert_eq!(rec.spend_nanos, 4321);
        assert_eq!((rec.prompt_tokens, rec.completion_tokens), (10, 5));
        assert_eq!((rec.start_time, rec.end_time), (start, end));
        assert_eq!(rec.metadata, json!({}));
        // And the new tables are there.
        s.create_user(&user("u1", Some("u1@x.com"))).await.unwrap();
        assert_eq!(s.list_users(&UserFilter::default()).await.unwrap().1, 1);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn store_futures_can_move_between_threads() {
    fn send<T: Send>(_: T) {}
    for db in backends().await {
        let s = &db.store;
        send(s.update_user("u", &UserPatch::default()));
        send(s.update_team("t", &TeamPatch::default()));
        send(s.add_member("t", "u", "user", None));
        send(s.remove_member("t", "u"));
        send(s.delete_teams(&[]));
        send(s.claim_invitation_and_set_password("h", t0(), "p"));
        send(s.list_users(&UserFilter::default()));
        send(s.list_audit(&AuditFilter::default()));
        send(s.create_session(&session("x", "u", t0())));
        db.drop_db().await;
    }
}
