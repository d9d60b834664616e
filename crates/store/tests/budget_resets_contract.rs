//! Budget periods on every backend: due budgets reset once, new ones are scheduled, the next
//! reset snaps to the calendar.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use tollgate_store::{BudgetOwnerKind, KeyPatch, NewKey, NewTeam, NewUser, TeamPatch, UserPatch};

mod common;

use common::backends;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 30, 0).unwrap()
}

#[tokio::test]
async fn due_budgets_reset_once_and_new_ones_are_scheduled() {
    for db in backends().await {
        let s = &db.store;
        let token = "a".repeat(64);
        s.create_key(&NewKey {
            budget_duration: Some("1d".into()),
            budget_reset_at: Some(t0() - Duration::minutes(1)),
            spend_nanos: 500,
            ..NewKey::new(&token, "sk-...aaaa")
        })
        .await
        .unwrap();
        // A key without a period is never touched.
        let other = "b".repeat(64);
        s.create_key(&NewKey {
            spend_nanos: 7,
            ..NewKey::new(&other, "sk-...bbbb")
        })
        .await
        .unwrap();
        s.create_user(&NewUser {
            budget_duration: Some("7d".into()),
            ..NewUser::new("u1", "internal_user")
        })
        .await
        .unwrap();
        s.update_user(
            "u1",
            &UserPatch {
                spend_nanos: Some(900),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
        s.create_team(&NewTeam {
            budget_duration: Some("1mo".into()),
            ..NewTeam::new("t1")
        })
        .await
        .unwrap();
        s.update_team(
            "t1",
            &TeamPatch {
                spend_nanos: Some(300),
                ..TeamPatch::default()
            },
        )
        .await
        .unwrap();

        // First run: the key is due and resets; the user and team only get a schedule.
        let done = s.reset_due_budgets(t0()).await.unwrap();
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(done[0].kind, BudgetOwnerKind::Key);
        assert_eq!(done[0].id, token);
        let k = s.get_key(&token).await.unwrap().unwrap();
        assert_eq!(k.spend_nanos, 0);
        assert_eq!(
            k.budget_reset_at,
            Some(Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap())
        );
        assert_eq!(s.get_key(&other).await.unwrap().unwrap().spend_nanos, 7);
        assert_eq!(s.get_user("u1").await.unwrap().unwrap().spend_nanos, 900);

        // Running again at the same time changes nothing (another instance did it already).
        assert!(s.reset_due_budgets(t0()).await.unwrap().is_empty());

        // After Monday the user's week resets; after the 1st the team's month; the key's day too.
        let later = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 1).unwrap();
        s.update_key(
            &token,
            &KeyPatch {
                spend_nanos: Some(42),
                ..KeyPatch::default()
            },
            "test",
        )
        .await
        .unwrap();
        let mut done = s.reset_due_budgets(later).await.unwrap();
        done.sort_by_key(|d| d.id.clone());
        let kinds: Vec<BudgetOwnerKind> = done.iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            vec![
                BudgetOwnerKind::Key,
                BudgetOwnerKind::Team,
                BudgetOwnerKind::User
            ]
        );
        assert_eq!(s.get_user("u1").await.unwrap().unwrap().spend_nanos, 0);
        assert_eq!(s.get_team("t1").await.unwrap().unwrap().spend_nanos, 0);
        assert_eq!(s.get_key(&token).await.unwrap().unwrap().spend_nanos, 0);
        let team_next = done
            .iter()
            .find(|d| d.kind == BudgetOwnerKind::Team)
            .unwrap()
            .next_reset_at;
        assert_eq!(
            team_next,
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        db.drop_db().await;
    }
}

/// Every instance runs the reset pass; when three run it at once, each due budget is reset by
/// exactly one of them (so a period's spend is dropped once and the shared counters once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_passes_reset_each_due_budget_once() {
    for db in backends().await {
        let s = &db.store;
        for i in 0..30 {
            s.create_key(&NewKey {
                budget_duration: Some("1d".into()),
                budget_reset_at: Some(t0() - Duration::minutes(1)),
                spend_nanos: 100,
                ..NewKey::new(format!("{i:064}"), "sk-...k")
            })
            .await
            .unwrap();
        }
        let passes: Vec<_> = (0..3)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.reset_due_budgets(t0()).await })
            })
            .collect();
        let mut reset = Vec::new();
        for p in passes {
            reset.extend(p.await.unwrap().unwrap().into_iter().map(|r| r.id));
        }
        reset.sort();
        let before = reset.len();
        reset.dedup();
        assert_eq!(
            before,
            reset.len(),
            "a budget was reset twice ({})",
            s.backend_name()
        );
        assert_eq!(reset.len(), 30, "{}", s.backend_name());
        db.drop_db().await;
    }
}

/// A reset time carried over from another gateway is kept: the budget resets when it passes,
/// not a full period after the import.
#[tokio::test]
async fn a_set_reset_time_is_the_one_used() {
    for db in backends().await {
        let s = &db.store;
        s.create_user(&NewUser {
            budget_duration: Some("30d".into()),
            spend_nanos: 900,
            ..NewUser::new("u1", "internal_user")
        })
        .await
        .unwrap();
        s.create_team(&NewTeam {
            budget_duration: Some("30d".into()),
            ..NewTeam::new("t1")
        })
        .await
        .unwrap();
        let at = t0() + Duration::hours(2);
        for (kind, id) in [(BudgetOwnerKind::User, "u1"), (BudgetOwnerKind::Team, "t1")] {
            assert!(s.set_budget_reset_at(kind, id, Some(at)).await.unwrap());
        }
        assert!(!s
            .set_budget_reset_at(BudgetOwnerKind::User, "nobody", Some(at))
            .await
            .unwrap());
        assert!(s.reset_due_budgets(t0()).await.unwrap().is_empty());
        let done = s.reset_due_budgets(at).await.unwrap();
        let mut ids: Vec<&str> = done.iter().map(|d| d.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["t1", "u1"]);
        assert_eq!(s.get_user("u1").await.unwrap().unwrap().spend_nanos, 0);
        db.drop_db().await;
    }
}
