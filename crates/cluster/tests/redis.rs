//! The shared budgets and limits against a real Redis (127.0.0.1:6379, or
//! TOLLGATE_TEST_REDIS_URL), three handles standing for three instances. Each test uses its own
//! key prefix and deletes its keys at the end. Outside CI, no Redis means the tests say so and
//! pass; in CI (CI=true) they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use tollgate_cluster::{AdmitError, BudgetOwner, Cluster, RateOwner, RedisSettings, Refusal};
use tollgate_ledger::Owner;

fn url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tollgate-test-{}-{nanos}", std::process::id())
}

/// Three handles on one prefix, or None when there is no Redis outside CI.
async fn instances() -> Option<(Vec<Cluster>, String)> {
    let settings = RedisSettings {
        url: url(),
        prefix: unique_prefix(),
    };
    let mut out = Vec::new();
    for _ in 0..3 {
        match Cluster::connect(&settings).await {
            Ok(c) => out.push(c),
            Err(e) => {
                assert!(
                    std::env::var("CI").is_err(),
                    "CI needs Redis at {}: {e}",
                    settings.display_url()
                );
                eprintln!("skipped: no Redis ({e})");
                return None;
            }
        }
    }
    Some((out, settings.prefix))
}

async fn cleanup(prefix: &str) {
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

fn key(k: &str) -> Owner {
    Owner::Key(Arc::from(k))
}

fn budget(o: &Owner, max: i64) -> BudgetOwner {
    BudgetOwner {
        owner: o.clone(),
        max_budget_nanos: Some(max),
        store_spend_nanos: 0,
    }
}

#[tokio::test]
async fn two_hundred_calls_over_three_instances_never_overspend() {
    let Some((nodes, prefix)) = instances().await else {
        return;
    };
    let k = key("k1");
    let team = Owner::Team(Arc::from("t1"));
    let budgets = vec![budget(&k, 1_000), budget(&team, 100)];
    let calls = (0..200).map(|i| {
        let node = nodes[i % 3].clone();
        let budgets = budgets.clone();
        async move {
            node.admit(&format!("c{i}"), &budgets, &[], 10, 10, false, 60_000)
                .await
                .map(|a| (node, a))
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let mut admitted = Vec::new();
    for r in results {
        match r {
            Ok(a) => admitted.push(a),
            Err(AdmitError::Refused(Refusal::Budget { owner, .. })) => assert_eq!(owner, team),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(admitted.len(), 10, "a 100 budget holds ten calls of 10");
    for (node, a) in &admitted {
        let s = node.settle(&a.ticket, 10, 5).await.unwrap();
        assert!(s.key_spend.is_some());
    }
    let again = nodes[1]
        .admit("after", &budgets, &[], 10, 10, false, 60_000)
        .await;
    assert!(
        matches!(
            again,
            Err(AdmitError::Refused(Refusal::Budget {
                spend_nanos: 100,
                ..
            }))
        ),
        "{again:?}"
    );
    cleanup(&prefix).await;
}

#[tokio::test]
async fn rpm_counts_across_instances() {
    let Some((nodes, prefix)) = instances().await else {
        return;
    };
    let rates = vec![RateOwner {
        owner: key("k2"),
        rpm: Some(20),
        tpm: None,
        max_parallel: None,
    }];
    // Away from a minute boundary, so one window holds all 60 calls.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if secs > 55 {
        tokio::time::sleep(Duration::from_secs(61 - secs)).await;
    }
    let mut ok = 0;
    for i in 0..60 {
        match nodes[i % 3]
            .admit(&format!("r{i}"), &[], &rates, 0, 0, false, 60_000)
            .await
        {
            Ok(a) => {
                ok += 1;
                nodes[i % 3].settle(&a.ticket, 0, 0).await.unwrap();
            }
            Err(AdmitError::Refused(Refusal::Rate {
                kind: 0, limit: 20, ..
            })) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, 20);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn parallel_slots_and_leases_of_a_dead_instance_expire() {
    let Some((nodes, prefix)) = instances().await else {
        return;
    };
    let k = key("k3");
    let rates = vec![RateOwner {
        owner: k.clone(),
        rpm: None,
        tpm: None,
        max_parallel: Some(1),
    }];
    let budgets = vec![budget(&k, 50)];
    // An instance admits a call with a 1 s lease and dies before settling it: its parallel slot
    // and its reservation (30 of 50) block others until the lease ends.
    let held = nodes[0]
        .admit("dead", &budgets, &rates, 30, 30, false, 1_000)
        .await
        .unwrap();
    let blocked = nodes[1]
        .admit("live", &budgets, &rates, 20, 20, false, 1_000)
        .await;
    assert!(
        matches!(
            blocked,
            Err(AdmitError::Refused(Refusal::Rate { kind: 2, .. }))
        ),
        "{blocked:?}"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let live = nodes[1]
        .admit("live", &budgets, &rates, 40, 40, false, 60_000)
        .await;
    assert!(live.is_ok(), "the dead instance's lease expired: {live:?}");
    cleanup(&prefix).await;
}

#[tokio::test]
async fn spend_starts_from_the_store_and_restarts_at_zero_after_a_reset() {
    let Some((nodes, prefix)) = instances().await else {
        return;
    };
    let k = key("k4");
    let mut b = budget(&k, 100);
    b.store_spend_nanos = 95;
    let refused = nodes[0]
        .admit("a", &[b.clone()], &[], 10, 10, false, 60_000)
        .await;
    assert!(matches!(
        refused,
        Err(AdmitError::Refused(Refusal::Budget {
            spend_nanos: 95,
            ..
        }))
    ));
    // The store's budget period ended: spend is 0 there and in Redis, even for an instance
    // whose cache still holds the old spend (it must not seed the counter with it again).
    nodes[1]
        .reset_spend(std::slice::from_ref(&k))
        .await
        .unwrap();
    let a = nodes[2]
        .admit("b", &[b], &[], 10, 10, false, 60_000)
        .await
        .unwrap();
    let s = nodes[2].settle(&a.ticket, 7, 1).await.unwrap();
    assert_eq!(s.key_spend, Some((0, 7)));
    cleanup(&prefix).await;
}

#[tokio::test]
async fn calls_without_their_own_limit_share_a_budget_over_instances() {
    let Some((nodes, prefix)) = instances().await else {
        return;
    };
    let k = key("k5");
    let budgets = vec![budget(&k, 100_000)];
    let calls = (0..200).map(|i| {
        let node = nodes[i % 3].clone();
        let budgets = budgets.clone();
        async move {
            node.admit(&format!("s{i}"), &budgets, &[], 10_000, 1, true, 60_000)
                .await
        }
    });
    let granted: Vec<i64> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("every call fits its share").ticket.granted_nanos)
        .collect();
    assert!(granted.iter().sum::<i64>() <= 100_000);
    assert!(granted.iter().all(|g| *g >= 1));
    cleanup(&prefix).await;
}
