//! `tollgate seed-spend`: fills a database with synthetic users, teams, keys and spend records,
//! **for benchmarking the spend views only** (never on a production database: the rows look
//! real). Records go through the same batch insert as the gateway's writer, so the daily
//! aggregates and the key/user/team spend are exactly what real traffic would leave.
//!
//! The data is deterministic (a fixed-seed generator) and request ids are `seed-<n>`, so running
//! the command again adds nothing.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use tollgate_domain::secret::sha256_hex;
use tollgate_store::{NewKey, NewTeam, NewUser, SpendRecord, SpendStatus, Store, StoreError};

use crate::cli::SeedArgs;

/// Public model names and their providers and prices (nano-USD per token: input, output).
const MODELS: &[(&str, &str, i64, i64)] = &[
    ("gpt-4o", "openai", 2_500, 10_000),
    ("gpt-4o-mini", "openai", 150, 600),
    ("claude-sonnet", "anthropic", 3_000, 15_000),
    ("claude-haiku", "anthropic", 800, 4_000),
    ("text-embedding-3-small", "openai", 20, 0),
];

/// Records per transaction: big batches, as a backlog flush would be.
const BATCH: usize = 5_000;

/// SplitMix64: a tiny, fixed-seed generator (no dependency, same data on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn user_id(i: u64) -> String {
    format!("seed-user-{i:04}")
}

fn team_id(i: u64) -> String {
    format!("seed-team-{i:02}")
}

fn key_token(i: u64) -> String {
    sha256_hex(&format!("sk-seed-key-{i:06}"))
}

/// Keys belong to users round-robin; every fourth key is a team key (25 teams at most).
fn key_owner(key: u64, users: u64) -> (u64, Option<u64>) {
    (
        key % users.max(1),
        key.is_multiple_of(4).then_some(key % 25),
    )
}

pub async fn run(args: &SeedArgs, store: &Store) -> Result<(), StoreError> {
    let started = Instant::now();
    create_owners(args, store).await?;
    let now = Utc::now();
    let mut rng = Rng(0x5EED_5EED);
    let mut written = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    for n in 0..args.rows {
        batch.push(record(n, args, now, &mut rng));
        if batch.len() == BATCH || n + 1 == args.rows {
            written += store.insert_spend_batch(&batch).await?.len() as u64;
            batch.clear();
            if (n + 1) % 100_000 < BATCH as u64 {
                println!("  {} records ({written} new)", n + 1);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {written} new spend records ({} asked) for {} users and {} keys over {} days \
         in {secs:.1} s ({:.0} records/s, {})",
        args.rows,
        args.users,
        args.keys,
        args.days,
        args.rows as f64 / secs.max(0.001),
        store.backend_name()
    );
    Ok(())
}

/// Users, teams and keys the records point at; ones that already exist are kept.
async fn create_owners(args: &SeedArgs, store: &Store) -> Result<(), StoreError> {
    let ignore_existing = |r: Result<(), StoreError>| match r {
        Err(StoreError::Conflict { .. }) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    };
    for u in 0..args.users {
        let mut nu = NewUser::new(user_id(u), "internal_user");
        nu.user_email = Some(format!("seed-user-{u:04}@example.invalid"));
        ignore_existing(store.create_user(&nu).await.map(drop))?;
    }
    for t in 0..25u64.min(args.keys) {
        let mut nt = NewTeam::new(team_id(t));
        nt.team_alias = Some(format!("Seed team {t:02}"));
        ignore_existing(store.create_team(&nt).await.map(drop))?;
    }
    for k in 0..args.keys {
        let (owner, team) = key_owner(k, args.users);
        let mut nk = NewKey::new(key_token(k), format!("sk-...{k:04}"));
        nk.key_alias = Some(format!("seed-key-{k:06}"));
        nk.user_id = Some(user_id(owner));
        nk.team_id = team.map(team_id);
        nk.created_by = Some("seed-spend".to_string());
        ignore_existing(store.create_key(&nk).await.map(drop))?;
    }
    Ok(())
}

fn record(n: u64, args: &SeedArgs, now: DateTime<Utc>, rng: &mut Rng) -> SpendRecord {
    let key = rng.below(args.keys);
    let (owner, team) = key_owner(key, args.users);
    let (model, provider, input_price, output_price) =
        MODELS[rng.below(MODELS.len() as u64) as usize];
    let ago_ms = rng.below(u64::from(args.days).max(1) * 86_400_000) as i64;
    let start = now - Duration::milliseconds(ago_ms);
    let duration_ms = 200 + rng.below(3_000) as i64;
    let failed = rng.below(50) == 0;
    let prompt = if failed {
        0
    } else {
        20 + rng.below(2_000) as i64
    };
    let completion = if failed || output_price == 0 {
        0
    } else {
        rng.below(800) as i64
    };
    SpendRecord {
        request_id: format!("seed-{n:09}"),
        call_type: if output_price == 0 {
            "embedding"
        } else {
            "chat_completion"
        }
        .to_string(),
        api_key: key_token(key),
        user_id: Some(user_id(owner)),
        team_id: team.map(team_id),
        end_user: None,
        model: model.to_string(),
        model_group: model.to_string(),
        model_id: Some("0".to_string()),
        custom_llm_provider: Some(provider.to_string()),
        spend_nanos: prompt * input_price + completion * output_price,
        priced: true,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 0,
        usage_estimated: false,
        stream: rng.below(2) == 0,
        status: if failed {
            SpendStatus::Failure
        } else {
            SpendStatus::Success
        },
        http_status: if failed { 502 } else { 200 },
        error_type: failed.then(|| "api_error".to_string()),
        attempts: 1,
        start_time: start,
        end_time: start + Duration::milliseconds(duration_ms),
        completion_start_time: None,
        request_duration_ms: duration_ms,
        ttft_ms: None,
        metadata: serde_json::json!({"seeded": true}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_records() {
        let args = SeedArgs {
            store: crate::cli::StoreArgs {
                config: None,
                database_url: None,
            },
            rows: 10,
            users: 3,
            keys: 7,
            days: 2,
        };
        let now = Utc::now();
        let a: Vec<_> = (0..10)
            .map(|n| record(n, &args, now, &mut Rng(1)))
            .collect();
        let b: Vec<_> = (0..10)
            .map(|n| record(n, &args, now, &mut Rng(1)))
            .collect();
        assert_eq!(a, b);
        assert!(a
            .iter()
            .all(|r| r.start_time <= now && r.start_time > now - Duration::days(2)));
        assert!(a.iter().all(|r| r
            .user_id
            .as_deref()
            .is_some_and(|u| u.starts_with("seed-user-"))));
    }
}
