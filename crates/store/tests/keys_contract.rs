//! The virtual-key part of the store contract: keys and their archive, checked the same way on
//! every backend (see `common` for which backends run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use tollgate_store::{Backend, KeyFilter, KeyPatch, KeyRow, NewKey, Store, StoreError};

mod common;

use common::{backends, empty_databases};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
}

fn key(token: &str) -> NewKey {
    NewKey::new(
        token,
        format!("sk-...{}", &token[token.len().saturating_sub(4)..]),
    )
}

fn owned(token: &str, user: Option<&str>, team: Option<&str>) -> NewKey {
    NewKey {
        user_id: user.map(str::to_string),
        team_id: team.map(str::to_string),
        ..key(token)
    }
}

fn tokens(keys: &[KeyRow]) -> Vec<&str> {
    keys.iter().map(|k| k.token.as_str()).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn is_conflict(err: &StoreError, what: &str) -> bool {
    matches!(err, StoreError::Conflict { what: w } if w == what)
}

/// Creates the keys one after another, so each is newer than the one before.
async fn create_all(s: &Store, keys: &[NewKey]) {
    for k in keys {
        s.create_key(k).await.unwrap();
    }
}

#[tokio::test]
async fn migrations_reach_the_latest_version() {
    for db in backends().await {
        assert_eq!(
            db.store.schema_version().await.unwrap(),
            Some(tollgate_store::SCHEMA_VERSION)
        );
        db.drop_db().await;
    }
}

#[tokio::test]
async fn create_and_get_round_trip_every_field() {
    for db in backends().await {
        let s = &db.store;
        let full = NewKey {
            token: "a".repeat(64),
            key_name: "sk-...abcd".to_string(),
            key_alias: Some("ci key".to_string()),
            user_id: Some("u1".to_string()),
            team_id: Some("t1".to_string()),
            models: strings(&["gpt-4o", "openai/*"]),
            max_budget_nanos: Some(10_000_000_000),
            soft_budget_nanos: Some(8_000_000_000),
            budget_duration: Some("30d".to_string()),
            budget_reset_at: Some(t0()),
            spend_nanos: 123_456_789,
            expires: Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()),
            blocked: true,
            tpm_limit: Some(100_000),
            rpm_limit: Some(60),
            max_parallel_requests: Some(4),
            metadata: json!({"tags": ["a", "b"], "n": 1, "nested": {"x": null}}),
            created_by: Some("admin".to_string()),
        };
        let created = s.create_key(&full).await.unwrap();
        let expected = KeyRow {
            token: full.token.clone(),
            key_name: full.key_name.clone(),
            key_alias: full.key_alias.clone(),
            user_id: full.user_id.clone(),
            team_id: full.team_id.clone(),
            models: full.models.clone(),
            max_budget_nanos: full.max_budget_nanos,
            soft_budget_nanos: full.soft_budget_nanos,
            budget_duration: full.budget_duration.clone(),
            budget_reset_at: full.budget_reset_at,
            spend_nanos: full.spend_nanos,
            expires: full.expires,
            blocked: true,
            tpm_limit: full.tpm_limit,
            rpm_limit: full.rpm_limit,
            max_parallel_requests: full.max_parallel_requests,
            metadata: full.metadata.clone(),
            created_at: created.created_at,
            created_by: Some("admin".to_string()),
            updated_at: created.created_at,
            updated_by: Some("admin".to_string()),
            last_active: None,
            rotation_count: 0,
        };
        assert_eq!(created, expected);
        assert!((Utc::now() - created.created_at).num_seconds().abs() < 60);
        assert_eq!(s.get_key(&full.token).await.unwrap(), Some(expected));

        // The defaults: nulls, empty lists and an empty object read back as such.
        let bare = s.create_key(&key("b0")).await.unwrap();
        assert_eq!(s.get_key("b0").await.unwrap().as_ref(), Some(&bare));
        assert_eq!(bare.key_name, "sk-...b0");
        assert_eq!(bare.key_alias, None);
        assert_eq!(bare.user_id, None);
        assert!(bare.models.is_empty());
        assert_eq!(bare.metadata, json!({}));
        assert_eq!((bare.spend_nanos, bare.blocked), (0, false));
        assert_eq!((bare.expires, bare.created_by), (None, None));

        assert_eq!(s.get_key("missing").await.unwrap(), None);
        let err = s.create_key(&key("b0")).await.unwrap_err();
        assert!(is_conflict(&err, "token"), "{err:?}");
        db.drop_db().await;
    }
}

#[tokio::test]
async fn get_by_alias_finds_the_newest_match() {
    for db in backends().await {
        let s = &db.store;
        let aliased = |token: &str, alias: &str| NewKey {
            key_alias: Some(alias.to_string()),
            ..key(token)
        };
        create_all(
            s,
            &[
                aliased("k1", "prod"),
                aliased("k2", "prod"),
                aliased("k3", "dev"),
            ],
        )
        .await;
        let found = s.get_key_by_alias("prod").await.unwrap().unwrap();
        assert_eq!(found.token, "k2");
        let found = s.get_key_by_alias("dev").await.unwrap().unwrap();
        assert_eq!(found.token, "k3");
        assert_eq!(s.get_key_by_alias("PROD").await.unwrap(), None);
        assert_eq!(s.get_key_by_alias("none").await.unwrap(), None);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn list_filters_and_pages_newest_first() {
    for db in backends().await {
        let s = &db.store;
        create_all(
            s,
            &[
                owned("k1", Some("u1"), None),
                owned("k2", Some("u1"), Some("t1")),
                owned("k3", Some("u2"), Some("t1")),
                NewKey {
                    key_alias: Some("svc".to_string()),
                    ..owned("k4", None, Some("t2"))
                },
                owned("k5", Some("u1"), Some("t1")),
            ],
        )
        .await;
        let list = |f: KeyFilter| async move {
            let (keys, total) = s.list_keys(&f).await.unwrap();
            (
                tokens(&keys)
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>(),
                total,
            )
        };
        let all = KeyFilter {
            size: 100,
            ..KeyFilter::default()
        };
        assert_eq!(
            list(all.clone()).await,
            (strings(&["k5", "k4", "k3", "k2", "k1"]), 5)
        );
        let by_user = KeyFilter {
            user_id: Some("u1".to_string()),
            ..all.clone()
        };
        assert_eq!(
            list(by_user.clone()).await,
            (strings(&["k5", "k2", "k1"]), 3)
        );
        let by_team = KeyFilter {
            team_id: Some("t1".to_string()),
            ..all.clone()
        };
        assert_eq!(list(by_team).await, (strings(&["k5", "k3", "k2"]), 3));
        let both = KeyFilter {
            team_id: Some("t1".to_string()),
            ..by_user.clone()
        };
        assert_eq!(list(both).await, (strings(&["k5", "k2"]), 2));
        let by_alias = KeyFilter {
            key_alias: Some("svc".to_string()),
            ..all.clone()
        };
        assert_eq!(list(by_alias).await, (strings(&["k4"]), 1));
        let alias_is_exact = KeyFilter {
            key_alias: Some("sv".to_string()),
            ..all.clone()
        };
        assert_eq!(list(alias_is_exact).await, (Vec::new(), 0));
        let nobody = KeyFilter {
            user_id: Some("u9".to_string()),
            ..all.clone()
        };
        assert_eq!(list(nobody).await, (Vec::new(), 0));

        // Pages are 1-based; the total counts every match, not the page.
        let page = |page, size| KeyFilter {
            page,
            size,
            ..KeyFilter::default()
        };
        assert_eq!(list(page(1, 2)).await, (strings(&["k5", "k4"]), 5));
        assert_eq!(list(page(2, 2)).await, (strings(&["k3", "k2"]), 5));
        assert_eq!(list(page(3, 2)).await, (strings(&["k1"]), 5));
        assert_eq!(list(page(4, 2)).await, (Vec::new(), 5));
        let user_page = KeyFilter {
            page: 2,
            size: 2,
            ..by_user
        };
        assert_eq!(list(user_page).await, (strings(&["k1"]), 3));
        db.drop_db().await;
    }
}

#[tokio::test]
async fn update_returns_before_and_after() {
    for db in backends().await {
        let s = &db.store;
        let original = s
            .create_key(&NewKey {
                key_alias: Some("old".to_string()),
                max_budget_nanos: Some(5),
                tpm_limit: Some(10),
                metadata: json!({"a": 1}),
                created_by: Some("admin".to_string()),
                ..owned("k1", Some("u1"), Some("t1"))
            })
            .await
            .unwrap();
        let patch = KeyPatch {
            key_alias: Some(Some("new".to_string())),
            user_id: Some(None),
            models: Some(strings(&["gpt-4o"])),
            max_budget_nanos: Some(Some(7)),
            soft_budget_nanos: Some(Some(6)),
            budget_duration: Some(Some("1d".to_string())),
            budget_reset_at: Some(Some(t0())),
            spend_nanos: Some(3),
            expires: Some(Some(t0())),
            blocked: Some(true),
            tpm_limit: Some(None),
            rpm_limit: Some(Some(9)),
            max_parallel_requests: Some(Some(2)),
            metadata: Some(json!({"b": [1, 2]})),
            ..KeyPatch::default()
        };
        let (before, after) = s.update_key("k1", &patch, "editor").await.unwrap().unwrap();
        assert_eq!(before, original);
        let expected = KeyRow {
            key_alias: Some("new".to_string()),
            user_id: None,
            models: strings(&["gpt-4o"]),
            max_budget_nanos: Some(7),
            soft_budget_nanos: Some(6),
            budget_duration: Some("1d".to_string()),
            budget_reset_at: Some(t0()),
            spend_nanos: 3,
            expires: Some(t0()),
            blocked: true,
            tpm_limit: None,
            rpm_limit: Some(9),
            max_parallel_requests: Some(2),
            metadata: json!({"b": [1, 2]}),
            updated_at: after.updated_at,
            updated_by: Some("editor".to_string()),
            ..original.clone()
        };
        assert_eq!(after, expected);
        assert!(after.updated_at >= original.updated_at);
        assert_eq!(after.team_id.as_deref(), Some("t1"));
        assert_eq!(after.created_by.as_deref(), Some("admin"));
        assert_eq!(s.get_key("k1").await.unwrap(), Some(after.clone()));

        // An empty patch changes only who touched it last.
        let (b2, a2) = s
            .update_key("k1", &KeyPatch::default(), "other")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b2, after);
        assert_eq!(
            a2,
            KeyRow {
                updated_at: a2.updated_at,
                updated_by: Some("other".to_string()),
                ..after
            }
        );

        assert_eq!(
            s.update_key("missing", &patch, "editor").await.unwrap(),
            None
        );
        assert_eq!(s.get_key("missing").await.unwrap(), None);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn block_and_unblock() {
    for db in backends().await {
        let s = &db.store;
        let original = s.create_key(&key("k1")).await.unwrap();
        let blocked = s
            .set_key_blocked("k1", true, "admin")
            .await
            .unwrap()
            .unwrap();
        assert!(blocked.blocked);
        assert_eq!(blocked.updated_by.as_deref(), Some("admin"));
        assert_eq!(
            blocked,
            KeyRow {
                blocked: true,
                updated_at: blocked.updated_at,
                updated_by: Some("admin".to_string()),
                ..original.clone()
            }
        );
        assert!(s.get_key("k1").await.unwrap().unwrap().blocked);
        // Blocking twice is not an error.
        assert!(
            s.set_key_blocked("k1", true, "admin")
                .await
                .unwrap()
                .unwrap()
                .blocked
        );
        let unblocked = s
            .set_key_blocked("k1", false, "ops")
            .await
            .unwrap()
            .unwrap();
        assert!(!unblocked.blocked);
        assert_eq!(unblocked.updated_by.as_deref(), Some("ops"));
        assert!(!s.get_key("k1").await.unwrap().unwrap().blocked);
        assert_eq!(
            s.set_key_blocked("missing", true, "admin").await.unwrap(),
            None
        );
        db.drop_db().await;
    }
}

#[tokio::test]
async fn delete_moves_keys_to_the_archive() {
    for db in backends().await {
        let s = &db.store;
        create_all(
            s,
            &[
                NewKey {
                    key_alias: Some("one".to_string()),
                    metadata: json!({"m": true}),
                    models: strings(&["x"]),
                    ..owned("k1", Some("u1"), Some("t1"))
                },
                owned("k2", Some("u1"), None),
                owned("k3", Some("u2"), None),
            ],
        )
        .await;
        s.add_key_spend("k1", 42).await.unwrap();
        let k1 = s.get_key("k1").await.unwrap().unwrap();
        let k2 = s.get_key("k2").await.unwrap().unwrap();
        let started = Utc::now() - chrono::Duration::seconds(1);

        let deleted = s
            .delete_keys(&strings(&["k2", "missing", "k1", "k2"]), "admin")
            .await
            .unwrap();
        assert_eq!(deleted, strings(&["k2", "k1"]));
        for (live, token) in [(&k1, "k1"), (&k2, "k2")] {
            assert_eq!(s.get_key(token).await.unwrap(), None);
            let (row, at, by) = s.get_deleted_key(token).await.unwrap().unwrap();
            assert_eq!(&row, live);
            assert!(at >= started && at <= Utc::now());
            assert_eq!(by.as_deref(), Some("admin"));
        }
        assert!(s.get_key("k3").await.unwrap().is_some());
        assert_eq!(s.get_deleted_key("k3").await.unwrap(), None);
        let (left, total) = s.list_keys(&KeyFilter::default()).await.unwrap();
        assert_eq!((tokens(&left), total), (vec!["k3"], 1));

        // Deleting what is gone, or nothing, deletes nothing.
        assert!(s
            .delete_keys(&strings(&["k1"]), "admin")
            .await
            .unwrap()
            .is_empty());
        assert!(s.delete_keys(&[], "admin").await.unwrap().is_empty());
        assert_eq!(s.get_deleted_key("k1").await.unwrap().unwrap().0, k1);

        // A custom key re-created and deleted again replaces its archive entry.
        s.create_key(&NewKey {
            key_alias: Some("again".to_string()),
            ..key("k1")
        })
        .await
        .unwrap();
        assert_eq!(
            s.delete_keys(&strings(&["k1"]), "second").await.unwrap(),
            strings(&["k1"])
        );
        let (row, _, by) = s.get_deleted_key("k1").await.unwrap().unwrap();
        assert_eq!(row.key_alias.as_deref(), Some("again"));
        assert_eq!(by.as_deref(), Some("second"));
        db.drop_db().await;
    }
}

/// Makes every delete from the live key table fail, to see that the archive insert before it
/// is undone with it.
async fn refuse_key_deletes(store: &Store, refuse: bool) {
    match store.backend() {
        Backend::Sqlite(p) => {
            let sql = if refuse {
                "CREATE TRIGGER refuse_key_delete BEFORE DELETE ON verification_tokens \
                 BEGIN SELECT RAISE(ABORT, 'key deletes refused'); END"
            } else {
                "DROP TRIGGER refuse_key_delete"
            };
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
        Backend::Postgres(p) => {
            let sql = if refuse {
                "CREATE FUNCTION refuse_key_delete() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'key deletes refused'; END $$; \
                 CREATE TRIGGER refuse_key_delete BEFORE DELETE ON verification_tokens \
                 FOR EACH ROW EXECUTE FUNCTION refuse_key_delete();"
            } else {
                "DROP TRIGGER refuse_key_delete ON verification_tokens; \
                 DROP FUNCTION refuse_key_delete();"
            };
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_failed_delete_archives_nothing() {
    for db in backends().await {
        let s = &db.store;
        create_all(
            s,
            &[owned("k1", Some("u1"), None), owned("k2", Some("u1"), None)],
        )
        .await;
        refuse_key_deletes(s, true).await;
        assert!(s
            .delete_keys(&strings(&["k1", "k2"]), "admin")
            .await
            .is_err());
        assert!(s.delete_keys_of_user("u1", "admin").await.is_err());
        for token in ["k1", "k2"] {
            assert!(s.get_key(token).await.unwrap().is_some());
            assert_eq!(s.get_deleted_key(token).await.unwrap(), None);
        }
        refuse_key_deletes(s, false).await;
        assert_eq!(
            s.delete_keys(&strings(&["k1", "k2"]), "admin")
                .await
                .unwrap(),
            strings(&["k1", "k2"])
        );
        assert!(s.get_deleted_key("k2").await.unwrap().is_some());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn delete_keys_of_user_archives_only_theirs() {
    for db in backends().await {
        let s = &db.store;
        create_all(
            s,
            &[
                owned("k2", Some("u1"), Some("t1")),
                owned("k1", Some("u1"), None),
                owned("k3", Some("u2"), Some("t1")),
                owned("k4", None, Some("t1")),
            ],
        )
        .await;
        assert_eq!(
            s.delete_keys_of_user("u1", "admin").await.unwrap(),
            strings(&["k1", "k2"])
        );
        for token in ["k1", "k2"] {
            assert_eq!(s.get_key(token).await.unwrap(), None);
            let (row, _, by) = s.get_deleted_key(token).await.unwrap().unwrap();
            assert_eq!(row.user_id.as_deref(), Some("u1"));
            assert_eq!(by.as_deref(), Some("admin"));
        }
        for token in ["k3", "k4"] {
            assert!(s.get_key(token).await.unwrap().is_some());
        }
        assert!(s
            .delete_keys_of_user("u1", "admin")
            .await
            .unwrap()
            .is_empty());
        assert!(s
            .delete_keys_of_user("nobody", "admin")
            .await
            .unwrap()
            .is_empty());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn regenerate_moves_the_token_and_keeps_the_rest() {
    for db in backends().await {
        let s = &db.store;
        create_all(
            s,
            &[
                NewKey {
                    key_alias: Some("prod".to_string()),
                    max_budget_nanos: Some(100),
                    metadata: json!({"k": "v"}),
                    ..owned("old", Some("u1"), Some("t1"))
                },
                key("other"),
            ],
        )
        .await;
        s.add_key_spend("old", 77).await.unwrap();
        let original = s.get_key("old").await.unwrap().unwrap();

        let new = s
            .regenerate_key("old", "new", "sk-...wxyz", "admin")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            new,
            KeyRow {
                token: "new".to_string(),
                key_name: "sk-...wxyz".to_string(),
                rotation_count: 1,
                updated_at: new.updated_at,
                updated_by: Some("admin".to_string()),
                ..original.clone()
            }
        );
        assert_eq!(new.spend_nanos, 77);
        assert_eq!(new.key_alias.as_deref(), Some("prod"));
        assert_eq!(s.get_key("old").await.unwrap(), None);
        assert_eq!(s.get_key("new").await.unwrap(), Some(new.clone()));
        // The old token is replaced, not deleted: nothing is archived.
        assert_eq!(s.get_deleted_key("old").await.unwrap(), None);

        let again = s
            .regenerate_key("new", "newer", "sk-...abcd", "admin")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.rotation_count, 2);
        assert_eq!(s.add_key_spend("newer", 3).await.unwrap(), Some(80));

        assert_eq!(
            s.regenerate_key("missing", "x", "sk-...x", "admin")
                .await
                .unwrap(),
            None
        );
        let err = s
            .regenerate_key("newer", "other", "sk-...x", "admin")
            .await
            .unwrap_err();
        assert!(is_conflict(&err, "token"), "{err:?}");
        assert_eq!(s.get_key("newer").await.unwrap().unwrap().rotation_count, 2);
        assert_eq!(s.get_key("other").await.unwrap().unwrap().rotation_count, 0);
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_spend_increments_all_land() {
    for db in backends().await {
        let s = &db.store;
        s.create_key(&key("k1")).await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.add_key_spend("k1", 1_000_000_007 + i).await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap().is_some());
        }
        let expected: i64 = (0..20).map(|i| 1_000_000_007 + i).sum();
        assert_eq!(
            s.get_key("k1").await.unwrap().unwrap().spend_nanos,
            expected
        );
        assert_eq!(s.add_key_spend("k1", -7).await.unwrap(), Some(expected - 7));
        assert_eq!(s.add_key_spend("missing", 1).await.unwrap(), None);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn a_version_two_database_gains_keys_and_keeps_users() {
    for empty in empty_databases().await {
        let url = empty.url.clone();
        let db = empty.open().await;
        let s = &db.store;
        s.create_user(&tollgate_store::NewUser::new("u1", "internal_user"))
            .await
            .unwrap();
        // Wind the schema back to version 2, as a database from before keys would be (undoing
        // the SSO, imported rows, idempotency key, spend rollup, budget-period and daily spend
        // migrations first).
        // (SQLite 3.46 refuses the teams column once the users one is gone; this order works.)
        let sql = "DROP TABLE session_id_tokens; DROP TABLE sso_identities; \
                   DROP TABLE sso_pending_logins; \
                   DROP TABLE imported_rows; DROP TABLE idempotency_keys; \
                   ALTER TABLE teams DROP COLUMN budget_reset_at; \
                   ALTER TABLE users DROP COLUMN budget_reset_at; \
                   DROP TABLE daily_spend_by_key; DROP TABLE daily_spend_by_team_model; \
                   DROP INDEX spend_logs_failures_time_id; \
                   DROP TABLE daily_spend; DROP INDEX spend_logs_time_id; \
                   DROP INDEX spend_logs_api_key_time_id; DROP INDEX spend_logs_user_time_id; \
                   DROP INDEX spend_logs_team_time_id; \
                   CREATE INDEX spend_logs_start_time ON spend_logs (start_time); \
                   CREATE INDEX spend_logs_api_key_time ON spend_logs (api_key, start_time); \
                   CREATE INDEX spend_logs_user_time ON spend_logs (user_id, start_time); \
                   DROP TABLE verification_tokens; DROP TABLE deleted_verification_tokens; \
                   DELETE FROM tollgate_migrations WHERE version >= 3;";
        match s.backend() {
            Backend::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Backend::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
        }
        .unwrap();
        assert_eq!(s.schema_version().await.unwrap(), Some(2));

        let again = Store::open(Some(&url)).await.unwrap();
        assert_eq!(
            again.schema_version().await.unwrap(),
            Some(tollgate_store::SCHEMA_VERSION)
        );
        assert!(again.get_user("u1").await.unwrap().is_some());
        again
            .create_key(&owned("k1", Some("u1"), None))
            .await
            .unwrap();
        assert!(again.get_key("k1").await.unwrap().is_some());
        again.close().await;
        db.drop_db().await;
    }
}

#[tokio::test]
async fn key_futures_can_move_between_threads() {
    fn send<T: Send>(_: T) {}
    for db in backends().await {
        let s = &db.store;
        send(s.create_key(&key("k")));
        send(s.update_key("k", &KeyPatch::default(), "a"));
        send(s.delete_keys(&[], "a"));
        send(s.delete_keys_of_user("u", "a"));
        send(s.regenerate_key("a", "b", "c", "d"));
        send(s.list_keys(&KeyFilter::default()));
        db.drop_db().await;
    }
}

/// A call's cost reaches its key in the same transaction as the call's record, exactly once.
#[tokio::test]
async fn spend_batches_add_to_keys_once() {
    use tollgate_store::{SpendRecord, SpendStatus};
    for db in backends().await {
        let s = &db.store;
        let token = "a".repeat(64);
        s.create_key(&NewKey::new(token.clone(), "sk-...aaaa"))
            .await
            .unwrap();
        s.create_user(&tollgate_store::NewUser::new("spender", "internal_user"))
            .await
            .unwrap();
        let rec = |id: &str, nanos: i64, key: &str| SpendRecord {
            request_id: id.into(),
            call_type: "acompletion".into(),
            api_key: key.into(),
            user_id: None,
            team_id: None,
            end_user: None,
            model: "m".into(),
            model_group: "m".into(),
            model_id: None,
            custom_llm_provider: None,
            spend_nanos: nanos,
            priced: true,
            prompt_tokens: 1,
            completion_tokens: 1,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
            usage_estimated: false,
            stream: false,
            status: SpendStatus::Success,
            http_status: 200,
            error_type: None,
            attempts: 1,
            start_time: Utc::now(),
            end_time: Utc::now(),
            completion_start_time: None,
            request_duration_ms: 1,
            ttft_ms: None,
            metadata: serde_json::json!({}),
        };
        let mut owned = rec("k1", 100, &token);
        owned.user_id = Some("spender".into());
        let batch = vec![
            owned,
            rec("k2", 250, &token),
            rec("other", 999, &"b".repeat(64)),
        ];
        s.insert_spend_batch(&batch).await.unwrap();
        assert_eq!(s.get_key(&token).await.unwrap().unwrap().spend_nanos, 350);
        let user_spend = |s: &tollgate_store::Store| {
            let s = s.clone();
            async move { s.get_user("spender").await.unwrap().unwrap().spend_nanos }
        };
        assert_eq!(user_spend(s).await, 100, "the user's spend moves too");
        // The same batch again (a retry after an ambiguous failure) adds nothing.
        s.insert_spend_batch(&batch).await.unwrap();
        assert_eq!(s.get_key(&token).await.unwrap().unwrap().spend_nanos, 350);
        assert_eq!(user_spend(s).await, 100);
        db.drop_db().await;
    }
}

/// A key cache miss reads the key and what it answers to in one statement: each owner's
/// limits from its own row, and nothing for an owner the key names but that does not exist.
#[tokio::test]
async fn key_path_joins_the_owners_that_exist() {
    use tollgate_store::{KeyPath, NewTeam, NewUser, PathLimits, PathMember, PathTeam, PathUser};
    for db in backends().await {
        let s = &db.store;
        s.create_user(&NewUser {
            models: strings(&["gpt-4o"]),
            max_budget_nanos: Some(5_000),
            spend_nanos: 40,
            rpm_limit: Some(10),
            tpm_limit: Some(1_000),
            max_parallel_requests: Some(2),
            ..NewUser::new("u1", "proxy_admin_viewer")
        })
        .await
        .unwrap();
        s.create_team(&NewTeam {
            models: strings(&["claude", "openai/*"]),
            max_budget_nanos: Some(7_000),
            rpm_limit: Some(20),
            tpm_limit: Some(2_000),
            max_parallel_requests: Some(3),
            blocked: true,
            ..NewTeam::new("t1")
        })
        .await
        .unwrap();
        s.add_member("t1", "u1", "user", Some(3_000)).await.unwrap();
        let expires = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        s.create_key(&NewKey {
            key_alias: Some("team key".to_string()),
            models: strings(&["claude"]),
            max_budget_nanos: Some(1_000),
            soft_budget_nanos: Some(800),
            spend_nanos: 7,
            expires: Some(expires),
            blocked: true,
            rpm_limit: Some(5),
            tpm_limit: Some(500),
            max_parallel_requests: Some(1),
            ..owned("k1", Some("u1"), Some("t1"))
        })
        .await
        .unwrap();
        create_all(
            s,
            &[
                key("k2"),
                owned("k3", Some("ghost"), Some("gone")),
                owned("k4", Some("u1"), None),
            ],
        )
        .await;

        let none = PathLimits {
            spend_nanos: 0,
            max_budget_nanos: None,
            rpm_limit: None,
            tpm_limit: None,
            max_parallel_requests: None,
        };
        let user = PathUser {
            user_role: "proxy_admin_viewer".to_string(),
            models: strings(&["gpt-4o"]),
            limits: PathLimits {
                spend_nanos: 40,
                max_budget_nanos: Some(5_000),
                rpm_limit: Some(10),
                tpm_limit: Some(1_000),
                max_parallel_requests: Some(2),
            },
        };
        assert_eq!(
            s.get_key_path("k1").await.unwrap(),
            Some(KeyPath {
                token: "k1".to_string(),
                key_alias: Some("team key".to_string()),
                user_id: Some("u1".to_string()),
                team_id: Some("t1".to_string()),
                models: strings(&["claude"]),
                soft_budget_nanos: Some(800),
                expires: Some(expires),
                blocked: true,
                limits: PathLimits {
                    spend_nanos: 7,
                    max_budget_nanos: Some(1_000),
                    rpm_limit: Some(5),
                    tpm_limit: Some(500),
                    max_parallel_requests: Some(1),
                },
                user: Some(user.clone()),
                team: Some(PathTeam {
                    models: strings(&["claude", "openai/*"]),
                    blocked: true,
                    limits: PathLimits {
                        spend_nanos: 0,
                        max_budget_nanos: Some(7_000),
                        rpm_limit: Some(20),
                        tpm_limit: Some(2_000),
                        max_parallel_requests: Some(3),
                    },
                }),
                member: Some(PathMember {
                    spend_nanos: 0,
                    max_budget_in_team_nanos: Some(3_000),
                }),
            })
        );
        let bare = |token: &str, user_id: Option<&str>, team_id: Option<&str>| KeyPath {
            token: token.to_string(),
            key_alias: None,
            user_id: user_id.map(str::to_string),
            team_id: team_id.map(str::to_string),
            models: Vec::new(),
            soft_budget_nanos: None,
            expires: None,
            blocked: false,
            limits: none.clone(),
            user: None,
            team: None,
            member: None,
        };
        assert_eq!(
            s.get_key_path("k2").await.unwrap(),
            Some(bare("k2", None, None))
        );
        // Owners named but gone: the ids stay (a team key must not pass for a personal one).
        assert_eq!(
            s.get_key_path("k3").await.unwrap(),
            Some(bare("k3", Some("ghost"), Some("gone")))
        );
        // A personal key of a team member: no team, so no membership either.
        assert_eq!(
            s.get_key_path("k4").await.unwrap(),
            Some(KeyPath {
                user: Some(user),
                ..bare("k4", Some("u1"), None)
            })
        );
        assert_eq!(s.get_key_path("missing").await.unwrap(), None);
        db.drop_db().await;
    }
}
