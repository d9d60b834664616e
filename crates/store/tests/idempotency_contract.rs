//! Idempotency keys on every backend: one claim wins, answers are kept until they expire,
//! and only the request holding a key completes or releases it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use tollgate_store::{Claim, IdempotencyClaim, IdempotencyId};

mod common;

use common::backends;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, minute, 0).unwrap()
}

fn id(scope: &str, route: &str, key: &str) -> IdempotencyId {
    IdempotencyId {
        scope: scope.into(),
        route: route.into(),
        key_hash: format!("hash-of-{key}"),
    }
}

/// A claim at `now` with a 5-minute lease and a 24-hour expiry.
fn claim(id: &IdempotencyId, request: &str, lease: &str, now: DateTime<Utc>) -> IdempotencyClaim {
    IdempotencyClaim {
        id: id.clone(),
        request_hash: request.into(),
        lease_id: lease.into(),
        now,
        locked_until: now + Duration::minutes(5),
        expires_at: now + Duration::hours(24),
    }
}

fn answered(request: &str, status: i64, response: &str) -> Claim {
    Claim::Answered {
        request_hash: request.into(),
        status,
        response: response.into(),
    }
}

#[tokio::test]
async fn a_key_is_claimed_once_answered_and_replayed() {
    for db in backends().await {
        let s = &db.store;
        let k = id("user-1", "/key/generate", "k1");
        assert_eq!(
            s.claim_idempotency_key(&claim(&k, "r1", "lease-a", at(0)))
                .await
                .unwrap(),
            Claim::Claimed
        );
        // A retry while the first runs, with the same request or another one.
        for request in ["r1", "r2"] {
            assert_eq!(
                s.claim_idempotency_key(&claim(&k, request, "lease-b", at(1)))
                    .await
                    .unwrap(),
                Claim::InProgress {
                    request_hash: "r1".into()
                }
            );
        }
        // Only the holder's lease completes it.
        assert!(!s
            .complete_idempotency_key(&k, "lease-b", 200, "sealed-answer")
            .await
            .unwrap());
        assert!(s
            .complete_idempotency_key(&k, "lease-a", 200, "sealed-answer")
            .await
            .unwrap());
        assert!(
            !s.complete_idempotency_key(&k, "lease-a", 200, "again")
                .await
                .unwrap(),
            "an answer is stored once"
        );
        // Replayed until it expires, even after the lease time.
        for minute in [2, 59] {
            assert_eq!(
                s.claim_idempotency_key(&claim(&k, "r1", "lease-c", at(minute)))
                    .await
                    .unwrap(),
                answered("r1", 200, "sealed-answer")
            );
        }
        // The answer is per caller and per route.
        for other in [
            id("user-2", "/key/generate", "k1"),
            id("user-1", "/team/new", "k1"),
        ] {
            assert_eq!(
                s.claim_idempotency_key(&claim(&other, "r1", "lease-d", at(3)))
                    .await
                    .unwrap(),
                Claim::Claimed
            );
        }
        db.drop_db().await;
    }
}

#[tokio::test]
async fn a_released_key_runs_again_and_a_dead_holders_key_is_taken_over() {
    for db in backends().await {
        let s = &db.store;
        let k = id("user-1", "/user/new", "k2");
        assert_eq!(
            s.claim_idempotency_key(&claim(&k, "r1", "lease-a", at(0)))
                .await
                .unwrap(),
            Claim::Claimed
        );
        // Another lease cannot release it; its holder can.
        s.release_idempotency_key(&k, "lease-x").await.unwrap();
        assert!(matches!(
            s.claim_idempotency_key(&claim(&k, "r1", "lease-b", at(1)))
                .await
                .unwrap(),
            Claim::InProgress { .. }
        ));
        s.release_idempotency_key(&k, "lease-a").await.unwrap();
        assert_eq!(
            s.claim_idempotency_key(&claim(&k, "r1", "lease-b", at(1)))
                .await
                .unwrap(),
            Claim::Claimed
        );
        // The holder (lease-b, locked until minute 6) dies. Before its lease ends the key stays
        // its own; after, the same request takes it over, and another request does not.
        assert!(matches!(
            s.claim_idempotency_key(&claim(&k, "r1", "lease-c", at(5)))
                .await
                .unwrap(),
            Claim::InProgress { .. }
        ));
        assert_eq!(
            s.claim_idempotency_key(&claim(&k, "r2", "lease-c", at(7)))
                .await
                .unwrap(),
            Claim::InProgress {
                request_hash: "r1".into()
            }
        );
        assert_eq!(
            s.claim_idempotency_key(&claim(&k, "r1", "lease-c", at(7)))
                .await
                .unwrap(),
            Claim::Claimed
        );
        // The old holder, back late, can neither answer nor release what is no longer its own.
        assert!(!s
            .complete_idempotency_key(&k, "lease-b", 200, "late")
            .await
            .unwrap());
        s.release_idempotency_key(&k, "lease-b").await.unwrap();
        assert!(s
            .complete_idempotency_key(&k, "lease-c", 201, "fresh")
            .await
            .unwrap());
        // A released answered key stays answered.
        s.release_idempotency_key(&k, "lease-c").await.unwrap();
        assert_eq!(
            s.claim_idempotency_key(&claim(&k, "r1", "lease-d", at(8)))
                .await
                .unwrap(),
            answered("r1", 201, "fresh")
        );
        db.drop_db().await;
    }
}

#[tokio::test]
async fn answers_expire_and_are_swept() {
    for db in backends().await {
        let s = &db.store;
        let k = id("user-1", "/invitation/new", "k3");
        let other = id("user-1", "/invitation/new", "k4");
        for (key, minute) in [(&k, 0), (&other, 30)] {
            s.claim_idempotency_key(&claim(key, "r1", "lease-a", at(minute)))
                .await
                .unwrap();
            assert!(s
                .complete_idempotency_key(key, "lease-a", 200, "answer")
                .await
                .unwrap());
        }
        let day_later = at(0) + Duration::hours(24);
        // An expired answer is not replayed: the key is claimed anew, even for another request.
        assert_eq!(
            s.claim_idempotency_key(&claim(&k, "r2", "lease-b", day_later))
                .await
                .unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            s.delete_expired_idempotency_keys(day_later + Duration::minutes(1))
                .await
                .unwrap(),
            0,
            "k3 was renewed and k4 has 29 minutes left"
        );
        assert_eq!(
            s.delete_expired_idempotency_keys(day_later + Duration::minutes(30))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.claim_idempotency_key(&claim(&other, "r9", "lease-c", day_later))
                .await
                .unwrap(),
            Claim::Claimed
        );
        db.drop_db().await;
    }
}

#[tokio::test]
async fn of_many_concurrent_claims_one_wins() {
    for db in backends().await {
        let k = id("user-1", "/key/generate", "race");
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = db.store.clone();
            let c = claim(&k, "r1", &format!("lease-{i}"), at(0));
            tasks.push(tokio::spawn(
                async move { s.claim_idempotency_key(&c).await },
            ));
        }
        let mut claimed = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                Claim::Claimed => claimed += 1,
                Claim::InProgress { request_hash } => assert_eq!(request_hash, "r1"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(claimed, 1, "{}", db.store.backend_name());
        db.drop_db().await;
    }
}
