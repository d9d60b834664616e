//! Spend views contract: the daily aggregates written with each batch equal the sums of the
//! records, retried batches add nothing, scopes and day boundaries hold, and log pages neither
//! skip nor repeat rows. Every check runs on every backend (see `common`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use tollgate_store::{
    DailyDimension, SpendGroup, SpendLogFilter, SpendRecord, SpendScope, SpendStatus, SpendTotals,
    Store,
};

mod common;

use common::backends;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn record(id: &str, at: DateTime<Utc>) -> SpendRecord {
    SpendRecord {
        request_id: id.to_string(),
        call_type: "chat_completion".into(),
        api_key: "k1".repeat(32),
        user_id: Some("u1".into()),
        team_id: None,
        end_user: None,
        model: "gpt-4o-mini-2024".into(),
        model_group: "gpt-4o-mini".into(),
        model_id: Some("0".into()),
        custom_llm_provider: Some("openai".into()),
        spend_nanos: 1_000,
        priced: true,
        prompt_tokens: 10,
        completion_tokens: 5,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 0,
        usage_estimated: false,
        stream: false,
        status: SpendStatus::Success,
        http_status: 200,
        error_type: None,
        attempts: 1,
        start_time: at,
        end_time: at + Duration::milliseconds(100),
        completion_start_time: None,
        request_duration_ms: 100,
        ttft_ms: None,
        metadata: serde_json::json!({}),
    }
}

/// A varied set: three users (one without a user id), two teams, four keys, three models,
/// failures, over five days with calls right at the day boundaries.
fn varied_records() -> Vec<SpendRecord> {
    let base = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let mut out = Vec::new();
    for i in 0..240i64 {
        // Spread over 5 days, landing on 00:00:00 and 23:59:59.999 now and then.
        let at = match i % 6 {
            0 => base + Duration::days(i % 5),
            1 => base + Duration::days(i % 5 + 1) - Duration::milliseconds(1),
            _ => base + Duration::days(i % 5) + Duration::minutes(i * 7 % 1400),
        };
        let mut r = record(&format!("req-{i:04}"), at);
        r.user_id = match i % 3 {
            0 => Some("alice".into()),
            1 => Some("bob".into()),
            _ => None,
        };
        r.team_id = (i % 4 == 0)
            .then(|| "team-a".to_string())
            .or_else(|| (i % 4 == 1).then(|| "team-b".to_string()));
        r.api_key = format!("{:064}", i % 4);
        r.model_group = ["gpt-4o", "gpt-4o-mini", "claude"][(i % 3 + i / 3) as usize % 3].into();
        r.custom_llm_provider = if r.model_group == "claude" {
            Some("anthropic".into())
        } else {
            Some("openai".into())
        };
        r.spend_nanos = 1_000 + i * 37;
        r.prompt_tokens = 10 + i;
        r.completion_tokens = i % 7;
        if i % 11 == 0 {
            r.status = SpendStatus::Failure;
            r.http_status = 500;
            r.spend_nanos = 0;
        }
        out.push(r);
    }
    out
}

fn add(t: &mut SpendTotals, r: &SpendRecord) {
    t.spend_nanos += r.spend_nanos;
    t.prompt_tokens += r.prompt_tokens;
    t.completion_tokens += r.completion_tokens;
    t.requests += 1;
    match r.status {
        SpendStatus::Success => t.successful_requests += 1,
        SpendStatus::Failure => t.failed_requests += 1,
    }
}

fn in_scope(r: &SpendRecord, s: &SpendScope) -> bool {
    let user = r.user_id.as_deref().unwrap_or("");
    let team = r.team_id.as_deref().unwrap_or("");
    s.user_id.as_deref().is_none_or(|u| u == user)
        && s.team_id.as_deref().is_none_or(|t| t == team)
        && s.api_key.as_deref().is_none_or(|k| k == r.api_key)
}

fn expected_daily(
    records: &[SpendRecord],
    s: &SpendScope,
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<NaiveDate, SpendTotals> {
    let mut out: BTreeMap<NaiveDate, SpendTotals> = BTreeMap::new();
    for r in records.iter().filter(|r| in_scope(r, s)) {
        let d = r.start_time.date_naive();
        if d >= from && d <= to {
            add(out.entry(d).or_default(), r);
        }
    }
    out
}

fn group_name(r: &SpendRecord, by: SpendGroup) -> String {
    match by {
        SpendGroup::Model => r.model_group.clone(),
        SpendGroup::Key => r.api_key.clone(),
        SpendGroup::Team => r.team_id.clone().unwrap_or_default(),
        SpendGroup::User => r.user_id.clone().unwrap_or_default(),
    }
}

fn scopes() -> Vec<SpendScope> {
    vec![
        SpendScope::default(),
        SpendScope {
            user_id: Some("alice".into()),
            ..Default::default()
        },
        SpendScope {
            team_id: Some("team-b".into()),
            ..Default::default()
        },
        SpendScope {
            api_key: Some(format!("{:064}", 2)),
            ..Default::default()
        },
        SpendScope {
            user_id: Some("bob".into()),
            team_id: Some("team-a".into()),
            api_key: None,
        },
        SpendScope {
            user_id: Some("nobody".into()),
            ..Default::default()
        },
    ]
}

async fn insert_in_batches(s: &Store, records: &[SpendRecord]) {
    for chunk in records.chunks(64) {
        s.insert_spend_batch(chunk).await.unwrap();
    }
}

#[tokio::test]
async fn aggregates_equal_the_sums_of_the_records_in_every_scope() {
    let records = varied_records();
    let (from, to) = (day(2026, 3, 1), day(2026, 3, 5));
    for db in backends().await {
        let s = &db.store;
        insert_in_batches(s, &records).await;
        let backend = s.backend_name();
        for scope in scopes() {
            let want = expected_daily(&records, &scope, from, to);
            let got = s.daily_spend(&scope, from, to).await.unwrap();
            let got: BTreeMap<NaiveDate, SpendTotals> =
                got.into_iter().map(|d| (d.day, d.totals)).collect();
            assert_eq!(got, want, "{backend} {scope:?}");

            let mut total = SpendTotals::default();
            for r in records.iter().filter(|r| in_scope(r, &scope)) {
                add(&mut total, r);
            }
            assert_eq!(
                s.spend_totals(&scope, from, to).await.unwrap(),
                total,
                "{backend} {scope:?}"
            );

            for by in [
                SpendGroup::Model,
                SpendGroup::Key,
                SpendGroup::Team,
                SpendGroup::User,
            ] {
                let mut want: BTreeMap<String, SpendTotals> = BTreeMap::new();
                for r in records.iter().filter(|r| in_scope(r, &scope)) {
                    add(want.entry(group_name(r, by)).or_default(), r);
                }
                let got = s.spend_breakdown(&scope, from, to, by, 100).await.unwrap();
                let spends: Vec<i64> = got.iter().map(|b| b.totals.spend_nanos).collect();
                let mut sorted = spends.clone();
                sorted.sort_by(|a, b| b.cmp(a));
                assert_eq!(spends, sorted, "highest spend first: {by:?}");
                let got: BTreeMap<String, SpendTotals> =
                    got.into_iter().map(|b| (b.name, b.totals)).collect();
                assert_eq!(got, want, "{backend} {scope:?} {by:?}");
                // The limit keeps the top rows.
                let top = s.spend_breakdown(&scope, from, to, by, 1).await.unwrap();
                assert!(top.len() <= 1);
                if let Some(t) = top.first() {
                    assert_eq!(Some(&t.totals.spend_nanos), sorted.first());
                }
            }

            // Per-day breakdowns add up to the day's totals.
            let per_day = s
                .daily_spend_breakdown(&scope, from, to, DailyDimension::Provider)
                .await
                .unwrap();
            let mut sums: BTreeMap<NaiveDate, i64> = BTreeMap::new();
            for b in &per_day {
                *sums.entry(b.day).or_default() += b.totals.requests;
            }
            let want_requests: BTreeMap<NaiveDate, i64> =
                want.iter().map(|(d, t)| (*d, t.requests)).collect();
            assert_eq!(sums, want_requests, "{backend} {scope:?}");
        }
        db.drop_db().await;
    }
}

#[tokio::test]
async fn a_retried_batch_changes_no_aggregate() {
    let records = varied_records();
    let (from, to) = (day(2026, 3, 1), day(2026, 3, 5));
    for db in backends().await {
        let s = &db.store;
        let (first, rest) = records.split_at(100);
        s.insert_spend_batch(first).await.unwrap();
        let before = s
            .daily_spend(&SpendScope::default(), from, to)
            .await
            .unwrap();
        // The same batch again: nothing new, nothing added.
        assert!(s.insert_spend_batch(first).await.unwrap().is_empty());
        assert_eq!(
            s.daily_spend(&SpendScope::default(), from, to)
                .await
                .unwrap(),
            before
        );
        // Overlapping the rest: only the new records count.
        let mut overlap = first[50..].to_vec();
        overlap.extend_from_slice(rest);
        let inserted = s.insert_spend_batch(&overlap).await.unwrap();
        assert_eq!(inserted.len(), rest.len());
        let want = expected_daily(&records, &SpendScope::default(), from, to);
        let got: BTreeMap<NaiveDate, SpendTotals> = s
            .daily_spend(&SpendScope::default(), from, to)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.day, d.totals))
            .collect();
        assert_eq!(got, want, "{}", s.backend_name());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn days_are_utc_days_and_ranges_are_inclusive() {
    let midnight = Utc.with_ymd_and_hms(2026, 5, 10, 0, 0, 0).unwrap();
    let records = vec![
        record("last-of-9th", midnight - Duration::microseconds(1)),
        record("first-of-10th", midnight),
        record(
            "last-of-10th",
            midnight + Duration::days(1) - Duration::seconds(1),
        ),
        record("first-of-11th", midnight + Duration::days(1)),
    ];
    for db in backends().await {
        let s = &db.store;
        s.insert_spend_batch(&records).await.unwrap();
        let all = SpendScope::default();
        let days: Vec<(NaiveDate, i64)> = s
            .daily_spend(&all, day(2026, 5, 1), day(2026, 5, 31))
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.day, d.totals.requests))
            .collect();
        assert_eq!(
            days,
            vec![
                (day(2026, 5, 9), 1),
                (day(2026, 5, 10), 2),
                (day(2026, 5, 11), 1)
            ],
            "{}",
            s.backend_name()
        );
        // One-day range: both ends inclusive.
        let one = s
            .spend_totals(&all, day(2026, 5, 10), day(2026, 5, 10))
            .await
            .unwrap();
        assert_eq!(one.requests, 2);
        // An empty range sums to zero rather than failing.
        let none = s
            .spend_totals(&all, day(2026, 6, 1), day(2026, 6, 30))
            .await
            .unwrap();
        assert_eq!(none, SpendTotals::default());
        // Log pages: from inclusive, to exclusive, at the same instants.
        let f = SpendLogFilter {
            from: Some(midnight),
            to: Some(midnight + Duration::days(1)),
            ..Default::default()
        };
        let ids: Vec<String> = s
            .spend_logs_page(&f, None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(ids, vec!["last-of-10th", "first-of-10th"]);
        db.drop_db().await;
    }
}

/// 300 records over only 4 distinct start times: pages of 7 must visit every record once, in
/// (start_time, request_id) descending order, for each filter.
#[tokio::test]
async fn log_pages_have_no_gaps_or_repeats_when_times_tie() {
    let t0 = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
    let records: Vec<SpendRecord> = (0..300)
        .map(|i| {
            let at = t0 + Duration::milliseconds(250 * (i % 4));
            let mut r = record(&format!("r{:03}", (i * 7919) % 1000), at);
            // Every seventh call has no user (a master-key call); two in three have no team.
            r.user_id = (i % 7 != 0).then(|| if i % 2 == 0 { "alice" } else { "bob" }.into());
            r.team_id = (i % 3 == 0).then(|| "team-a".to_string());
            r.api_key = format!("{:064}", i % 5);
            r.model_group = if i % 5 == 0 { "claude" } else { "gpt-4o" }.into();
            if i % 13 == 0 {
                r.status = SpendStatus::Failure;
            }
            r
        })
        .collect();
    let filters = vec![
        SpendLogFilter::default(),
        SpendLogFilter {
            scope: SpendScope {
                user_id: Some("alice".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        SpendLogFilter {
            scope: SpendScope {
                team_id: Some("team-a".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        SpendLogFilter {
            scope: SpendScope {
                api_key: Some(format!("{:064}", 3)),
                user_id: Some("bob".into()),
                team_id: None,
            },
            model: Some("gpt-4o".into()),
            ..Default::default()
        },
        SpendLogFilter {
            status: Some(SpendStatus::Failure),
            from: Some(t0 + Duration::milliseconds(250)),
            to: Some(t0 + Duration::milliseconds(750)),
            ..Default::default()
        },
    ];
    for db in backends().await {
        let s = &db.store;
        insert_in_batches(s, &records).await;
        for f in &filters {
            let mut want: Vec<&SpendRecord> = records
                .iter()
                .filter(|r| in_scope(r, &f.scope))
                .filter(|r| f.model.as_deref().is_none_or(|m| m == r.model_group))
                .filter(|r| f.status.is_none_or(|st| st == r.status))
                .filter(|r| f.from.is_none_or(|t| r.start_time >= t))
                .filter(|r| f.to.is_none_or(|t| r.start_time < t))
                .collect();
            want.sort_by(|a, b| (b.start_time, &b.request_id).cmp(&(a.start_time, &a.request_id)));
            let want: Vec<String> = want.iter().map(|r| r.request_id.clone()).collect();

            let mut got = Vec::new();
            let mut before = None;
            loop {
                let page = s.spend_logs_page(f, before.clone(), 7).await.unwrap();
                assert!(page.len() <= 7);
                let Some(last) = page.last() else { break };
                before = Some((last.start_time, last.request_id.clone()));
                got.extend(page.iter().map(|r| r.request_id.clone()));
            }
            let unique: HashSet<&String> = got.iter().collect();
            assert_eq!(unique.len(), got.len(), "repeats: {}", s.backend_name());
            assert_eq!(got, want, "{} {f:?}", s.backend_name());

            // Numbered pages (offsets) visit the same rows in the same order, and the count
            // stops at its cap.
            let mut numbered = Vec::new();
            for offset in (0..).step_by(7) {
                let page = s.spend_logs_at(f, offset, 7).await.unwrap();
                if page.is_empty() {
                    break;
                }
                numbered.extend(page.iter().map(|r| r.request_id.clone()));
            }
            assert_eq!(numbered, want, "{} {f:?}", s.backend_name());
            let n = want.len() as i64;
            assert_eq!(s.count_spend_logs_matching(f, 1_000).await.unwrap(), n);
            assert_eq!(
                s.count_spend_logs_matching(f, 3).await.unwrap(),
                n.min(3),
                "{f:?}"
            );
        }
        // A request id finds its one record.
        let one = SpendLogFilter {
            request_id: Some(records[5].request_id.clone()),
            ..Default::default()
        };
        let page = s.spend_logs_page(&one, None, 10).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0], records[5]);
        db.drop_db().await;
    }
}

/// The statement migration 0004 fills `daily_spend` with from an existing log, per backend.
fn backfill_sql(s: &Store) -> &'static str {
    let file = match s.backend() {
        tollgate_store::Backend::Sqlite(_) => {
            include_str!("../src/migrations/sqlite/0004_daily_spend.sql")
        }
        tollgate_store::Backend::Postgres(_) => {
            include_str!("../src/migrations/postgres/0004_daily_spend.sql")
        }
    };
    let at = file.find("INSERT INTO daily_spend").unwrap();
    let end = at + file[at..].find(';').unwrap();
    &file[at..=end]
}

/// A database upgraded with spend already logged: the migration's backfill rebuilds exactly the
/// aggregates the writer keeps, and later batches add to them. (Run on a cleared table rather
/// than a wound-back schema, so later migrations don't matter.)
#[tokio::test]
async fn the_migration_backfills_the_aggregates_from_the_log() {
    use tollgate_store::Backend;
    let records = varied_records();
    let (from, to) = (day(2026, 3, 1), day(2026, 3, 5));
    let (old, new) = records.split_at(200);
    for db in backends().await {
        let s = &db.store;
        insert_in_batches(s, old).await;
        let sql = format!("DELETE FROM daily_spend; {}", backfill_sql(s));
        match s.backend() {
            Backend::Sqlite(p) => sqlx::raw_sql(&sql).execute(p).await.map(drop),
            Backend::Postgres(p) => sqlx::raw_sql(&sql).execute(p).await.map(drop),
        }
        .unwrap();
        for scope in scopes() {
            let got: BTreeMap<NaiveDate, SpendTotals> = s
                .daily_spend(&scope, from, to)
                .await
                .unwrap()
                .into_iter()
                .map(|d| (d.day, d.totals))
                .collect();
            assert_eq!(got, expected_daily(old, &scope, from, to), "{scope:?}");
        }
        insert_in_batches(s, new).await;
        assert_eq!(
            s.spend_totals(&SpendScope::default(), from, to)
                .await
                .unwrap()
                .requests,
            records.len() as i64
        );
        db.drop_db().await;
    }
}

/// What `daily_activity` must answer, from the records themselves.
#[allow(clippy::type_complexity)]
fn expected_activity(
    records: &[SpendRecord],
    scope: &SpendScope,
    model: Option<&str>,
    key_limit: usize,
) -> (
    BTreeMap<(NaiveDate, String, String, String), SpendTotals>,
    BTreeMap<(NaiveDate, String), SpendTotals>,
    i64,
) {
    let chosen: Vec<&SpendRecord> = records
        .iter()
        .filter(|r| in_scope(r, scope) && model.is_none_or(|m| m == r.model_group))
        .collect();
    let mut groups = BTreeMap::new();
    let mut per_key: BTreeMap<String, i64> = BTreeMap::new();
    for r in &chosen {
        let k = (
            r.start_time.date_naive(),
            r.team_id.clone().unwrap_or_default(),
            r.model_group.clone(),
            r.custom_llm_provider.clone().unwrap_or_default(),
        );
        add(groups.entry(k).or_default(), r);
        *per_key.entry(r.api_key.clone()).or_default() += r.spend_nanos;
    }
    let mut ranked: Vec<(String, i64)> = per_key.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let distinct = ranked.len() as i64;
    let top: HashSet<String> = ranked.into_iter().take(key_limit).map(|k| k.0).collect();
    let mut keys = BTreeMap::new();
    for r in chosen.iter().filter(|r| top.contains(&r.api_key)) {
        add(
            keys.entry((r.start_time.date_naive(), r.api_key.clone()))
                .or_default(),
            r,
        );
    }
    (groups, keys, distinct)
}

/// The activity view's two reads (team/model/provider rows, and the top keys per day) equal
/// the sums of the records in every scope, with and without a model filter, and the key cap
/// keeps exactly the range's highest-spend keys.
#[tokio::test]
async fn activity_sums_the_records_and_keeps_the_top_keys() {
    let records = varied_records();
    let (from, to) = (day(2026, 3, 1), day(2026, 3, 5));
    for db in backends().await {
        let s = &db.store;
        insert_in_batches(s, &records).await;
        let backend = s.backend_name();
        for scope in scopes() {
            for model in [None, Some("claude")] {
                for limit in [1u32, 2, 100] {
                    let (want_groups, want_keys, distinct) =
                        expected_activity(&records, &scope, model, limit as usize);
                    let got = s
                        .daily_activity(&scope, model, from, to, limit)
                        .await
                        .unwrap();
                    let what = format!("{backend} {scope:?} {model:?} limit {limit}");
                    let days: Vec<NaiveDate> = got.groups.iter().map(|g| g.day).collect();
                    assert!(days.windows(2).all(|w| w[0] <= w[1]), "{what}");
                    let groups: BTreeMap<_, _> = got
                        .groups
                        .into_iter()
                        .map(|g| {
                            (
                                (g.day, g.team_id, g.model_group, g.custom_llm_provider),
                                g.totals,
                            )
                        })
                        .collect();
                    assert_eq!(groups, want_groups, "{what}");
                    let days: Vec<NaiveDate> = got.keys.iter().map(|k| k.day).collect();
                    assert!(days.windows(2).all(|w| w[0] <= w[1]), "{what}");
                    let keys: BTreeMap<_, _> = got
                        .keys
                        .into_iter()
                        .map(|k| ((k.day, k.name), k.totals))
                        .collect();
                    assert_eq!(keys, want_keys, "{what}");
                    assert_eq!(got.distinct_keys, distinct, "{what}");
                }
            }
        }
        // A range without spend: nothing, not an error.
        let none = s
            .daily_activity(
                &SpendScope::default(),
                None,
                day(2027, 1, 1),
                day(2027, 1, 2),
                100,
            )
            .await
            .unwrap();
        assert_eq!(none, Default::default());
        db.drop_db().await;
    }
}

type KeyRow = (String, String, i64, i64, i64, i64, i64, i64);
type TeamModelRow = (String, String, String, String, i64, i64, i64, i64, i64, i64);

const COUNTER_SUMS: &str = "CAST(SUM(spend_nanos) AS BIGINT), CAST(SUM(prompt_tokens) AS BIGINT), \
    CAST(SUM(completion_tokens) AS BIGINT), CAST(SUM(requests) AS BIGINT), \
    CAST(SUM(successful_requests) AS BIGINT), CAST(SUM(failed_requests) AS BIGINT)";
const COUNTERS: &str =
    "spend_nanos, prompt_tokens, completion_tokens, requests, successful_requests, failed_requests";

/// Both rollups as stored, and `daily_spend` summed the same ways.
async fn rollups(s: &Store) -> [(Vec<KeyRow>, Vec<TeamModelRow>); 2] {
    use tollgate_store::Backend;
    let stored_keys =
        format!("SELECT day, api_key, {COUNTERS} FROM daily_spend_by_key ORDER BY 1, 2");
    let summed_keys = format!(
        "SELECT day, api_key, {COUNTER_SUMS} FROM daily_spend GROUP BY day, api_key ORDER BY 1, 2"
    );
    let stored_tm = format!(
        "SELECT day, team_id, model_group, custom_llm_provider, {COUNTERS} \
         FROM daily_spend_by_team_model ORDER BY 1, 2, 3, 4"
    );
    let summed_tm = format!(
        "SELECT day, team_id, model_group, custom_llm_provider, {COUNTER_SUMS} FROM daily_spend \
         GROUP BY day, team_id, model_group, custom_llm_provider ORDER BY 1, 2, 3, 4"
    );
    macro_rules! read {
        ($p:expr) => {
            [
                (
                    sqlx::query_as(&stored_keys).fetch_all($p).await.unwrap(),
                    sqlx::query_as(&stored_tm).fetch_all($p).await.unwrap(),
                ),
                (
                    sqlx::query_as(&summed_keys).fetch_all($p).await.unwrap(),
                    sqlx::query_as(&summed_tm).fetch_all($p).await.unwrap(),
                ),
            ]
        };
    }
    match s.backend() {
        Backend::Sqlite(p) => read!(p),
        Backend::Postgres(p) => read!(p),
    }
}

/// The statements migration 0006 fills the rollups with, per backend.
fn rollup_backfill_sql(s: &Store) -> String {
    let file = match s.backend() {
        tollgate_store::Backend::Sqlite(_) => {
            include_str!("../src/migrations/sqlite/0006_spend_rollups.sql")
        }
        tollgate_store::Backend::Postgres(_) => {
            include_str!("../src/migrations/postgres/0006_spend_rollups.sql")
        }
    };
    let at = file.find("INSERT INTO daily_spend_by_key").unwrap();
    let last = file.find("INSERT INTO daily_spend_by_team_model").unwrap();
    let end = last + file[last..].find(';').unwrap();
    file[at..=end].to_string()
}

/// The rollups the writer keeps equal `daily_spend` summed per (day, key) and per (day, team,
/// model, provider), through retried and overlapping batches (and a batch repeating an id);
/// migration 0006's backfill rebuilds exactly what the writer kept; later batches add to it.
#[tokio::test]
async fn the_rollups_equal_daily_spend_and_the_backfill_rebuilds_them() {
    use tollgate_store::Backend;
    let records = varied_records();
    let (old, new) = records.split_at(200);
    for db in backends().await {
        let s = &db.store;
        let backend = s.backend_name();
        let (first, rest) = old.split_at(100);
        s.insert_spend_batch(first).await.unwrap();
        assert!(s.insert_spend_batch(first).await.unwrap().is_empty());
        let mut overlap = first[60..].to_vec();
        overlap.extend_from_slice(rest);
        overlap.push(rest[0].clone());
        assert_eq!(
            s.insert_spend_batch(&overlap).await.unwrap().len(),
            rest.len()
        );
        let [stored, summed] = rollups(s).await;
        assert!(!stored.0.is_empty() && !stored.1.is_empty());
        assert_eq!(stored, summed, "{backend}");
        let expected = expected_daily(
            old,
            &SpendScope::default(),
            day(2026, 3, 1),
            day(2026, 3, 5),
        );
        let requests: i64 = stored.0.iter().map(|r| r.5).sum();
        assert_eq!(requests, expected.values().map(|t| t.requests).sum::<i64>());

        let sql = format!(
            "DELETE FROM daily_spend_by_key; DELETE FROM daily_spend_by_team_model; {}",
            rollup_backfill_sql(s)
        );
        match s.backend() {
            Backend::Sqlite(p) => sqlx::raw_sql(&sql).execute(p).await.map(drop),
            Backend::Postgres(p) => sqlx::raw_sql(&sql).execute(p).await.map(drop),
        }
        .unwrap();
        let [backfilled, _] = rollups(s).await;
        assert_eq!(backfilled, stored, "{backend}");

        insert_in_batches(s, new).await;
        let [stored, summed] = rollups(s).await;
        assert_eq!(stored, summed, "{backend}");
        let requests: i64 = stored.1.iter().map(|r| r.7).sum();
        assert_eq!(requests, records.len() as i64);
        db.drop_db().await;
    }
}

/// Writers racing on overlapping batches (several gateway instances on one PostgreSQL, or a
/// retry overlapping a slow first attempt): every record is counted exactly once, in the log,
/// the aggregates and the returned ids.
#[tokio::test]
async fn concurrent_overlapping_batches_count_each_record_once() {
    let records = varied_records();
    let (from, to) = (day(2026, 3, 1), day(2026, 3, 5));
    for db in backends().await {
        let s = &db.store;
        let mut tasks = Vec::new();
        for w in 0..4usize {
            let s = s.clone();
            // Each writer covers half the records, starting at a different place.
            let mine: Vec<SpendRecord> = records
                .iter()
                .cycle()
                .skip(w * 60)
                .take(records.len() / 2)
                .cloned()
                .collect();
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for chunk in mine.chunks(30) {
                    ids.extend(s.insert_spend_batch(chunk).await.unwrap());
                }
                ids
            }));
        }
        let mut inserted = Vec::new();
        for t in tasks {
            inserted.extend(t.await.unwrap());
        }
        inserted.sort();
        let unique: HashSet<&String> = inserted.iter().collect();
        assert_eq!(unique.len(), inserted.len(), "{}", s.backend_name());
        assert_eq!(inserted.len(), records.len());
        let got: BTreeMap<NaiveDate, SpendTotals> = s
            .daily_spend(&SpendScope::default(), from, to)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.day, d.totals))
            .collect();
        assert_eq!(
            got,
            expected_daily(&records, &SpendScope::default(), from, to)
        );
        let [stored, summed] = rollups(s).await;
        assert_eq!(stored, summed);
        db.drop_db().await;
    }
}

/// Key labels come back for existing keys only, in one read whatever the number asked.
#[tokio::test]
async fn key_labels_cover_the_existing_keys() {
    for db in backends().await {
        let s = &db.store;
        s.create_user(&tollgate_store::NewUser::new("u1", "internal_user"))
            .await
            .unwrap();
        let mut nk = tollgate_store::NewKey::new("a".repeat(64), "sk-...aaaa");
        nk.key_alias = Some("first".into());
        nk.user_id = Some("u1".into());
        s.create_key(&nk).await.unwrap();
        s.create_key(&tollgate_store::NewKey::new("b".repeat(64), "sk-...bbbb"))
            .await
            .unwrap();
        assert!(s.key_labels(&[]).await.unwrap().is_empty());
        let mut got = s
            .key_labels(&["a".repeat(64), "b".repeat(64), "gone".into()])
            .await
            .unwrap();
        got.sort_by(|x, y| x.token.cmp(&y.token));
        assert_eq!(got.len(), 2, "{}", s.backend_name());
        assert_eq!(got[0].key_alias.as_deref(), Some("first"));
        assert_eq!(got[0].user_id.as_deref(), Some("u1"));
        assert_eq!(got[0].key_name, "sk-...aaaa");
        assert_eq!(got[1].key_alias, None);
        assert_eq!(got[1].team_id, None);
        db.drop_db().await;
    }
}

/// Spend per request tag: each record counts once under each of its tags, only within the
/// range; records without tags, or with tags that are not a list, count under none, and tags
/// that are not text (an imported log may hold any JSON) are left out rather than failing.
#[tokio::test]
async fn spend_by_tag_sums_each_tag_of_each_record() {
    let t0 = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
    let mut records = Vec::new();
    for (i, tags) in [
        serde_json::json!({"tags": ["prod", "team-a"]}),
        serde_json::json!({"tags": ["prod"]}),
        serde_json::json!({}),
        serde_json::json!({"tags": "not-a-list"}),
        serde_json::json!({"tags": [7, {"a": 1}, null, ["x"], true]}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = record(&format!("tag-{i}"), t0 + Duration::minutes(i as i64));
        r.spend_nanos = 1_000 * (i as i64 + 1);
        r.metadata = tags;
        records.push(r);
    }
    // Outside the range asked for.
    let mut late = record("tag-late", t0 + Duration::days(2));
    late.metadata = serde_json::json!({"tags": ["prod"]});
    records.push(late);
    for db in backends().await {
        let s = &db.store;
        s.insert_spend_batch(&records).await.unwrap();
        let got = s
            .spend_by_tag(
                &SpendScope::default(),
                Some(t0 - Duration::hours(1)),
                Some(t0 + Duration::days(1)),
            )
            .await
            .unwrap();
        let got: Vec<(String, i64, i64)> = got
            .into_iter()
            .map(|t| (t.tag, t.spend_nanos, t.requests))
            .collect();
        assert_eq!(
            got,
            vec![("prod".into(), 3_000, 2), ("team-a".into(), 1_000, 1)],
            "{}",
            s.backend_name()
        );
        // Scoped to a user, with the range open at either end.
        let mine = SpendScope {
            user_id: Some("u1".into()),
            ..SpendScope::default()
        };
        let all = s.spend_by_tag(&mine, None, None).await.unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!((all[0].tag.as_str(), all[0].requests), ("prod", 3));
        let later = s
            .spend_by_tag(&mine, Some(t0 + Duration::days(1)), None)
            .await
            .unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!((later[0].tag.as_str(), later[0].requests), ("prod", 1));
        let someone = SpendScope {
            user_id: Some("someone-else".into()),
            ..SpendScope::default()
        };
        assert!(s
            .spend_by_tag(&someone, None, None)
            .await
            .unwrap()
            .is_empty());
        db.drop_db().await;
    }
}

/// The log-read reports: per day (UTC, right at the boundary), team, end user, model and key;
/// spend per end user with its limit; the end users seen; and the reset of key and team spend,
/// which leaves users' spend alone.
#[tokio::test]
async fn reports_read_from_the_log() {
    let t0 = Utc.with_ymd_and_hms(2026, 6, 1, 23, 59, 59).unwrap();
    let mut a = record("rep-a", t0);
    a.team_id = Some("t1".into());
    a.end_user = Some("cust-1".into());
    let mut b = record("rep-b", t0 + Duration::seconds(1));
    b.end_user = Some("cust-1".into());
    b.spend_nanos = 3_000;
    let mut c = record("rep-c", t0 + Duration::seconds(2));
    c.end_user = Some("Cust-2".into());
    c.api_key = "k2".repeat(32);
    let d = record("rep-d", t0 + Duration::seconds(3));
    for db in backends().await {
        let s = &db.store;
        let name = s.backend_name();
        s.create_user(&tollgate_store::NewUser::new("u1", "internal_user"))
            .await
            .unwrap();
        s.create_team(&tollgate_store::NewTeam::new("t1"))
            .await
            .unwrap();
        let mut key = tollgate_store::NewKey::new("k1".repeat(32), "sk-...k1k1");
        key.user_id = Some("u1".into());
        s.create_key(&key).await.unwrap();
        s.insert_spend_batch(&[a.clone(), b.clone(), c.clone(), d.clone()])
            .await
            .unwrap();
        let filter = tollgate_store::ReportFilter {
            from: t0 - Duration::days(1),
            to: t0 + Duration::days(1),
            api_key: None,
            user_id: None,
            team_id: None,
            end_user: None,
        };
        let rows = s.spend_report_rows(&filter).await.unwrap();
        let got: Vec<(NaiveDate, Option<&str>, Option<&str>, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.day,
                    r.team_id.as_deref(),
                    r.end_user.as_deref(),
                    r.spend_nanos,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (day(2026, 6, 1), Some("t1"), Some("cust-1"), 1_000),
                (day(2026, 6, 2), None, Some("cust-1"), 3_000),
                (day(2026, 6, 2), None, None, 1_000),
                (day(2026, 6, 2), None, Some("Cust-2"), 1_000),
            ],
            "{name}"
        );
        assert_eq!(rows[0].model, "gpt-4o-mini-2024");
        assert_eq!(rows[0].prompt_tokens, 10);
        let only_k2 = tollgate_store::ReportFilter {
            api_key: Some("k2".repeat(32)),
            ..filter.clone()
        };
        assert_eq!(s.spend_report_rows(&only_k2).await.unwrap().len(), 1);
        let users = s
            .spend_by_end_user(t0 - Duration::days(1), t0 + Duration::days(1), None, 2)
            .await
            .unwrap();
        let users: Vec<(Option<&str>, i64, i64)> = users
            .iter()
            .map(|u| (u.end_user.as_deref(), u.requests, u.spend_nanos))
            .collect();
        assert_eq!(
            users,
            [(Some("cust-1"), 2, 4_000), (Some("Cust-2"), 1, 1_000)],
            "{name}"
        );
        let all = s.end_users().await.unwrap();
        assert_eq!(
            all,
            // Byte order on both backends: upper case first.
            [Some("Cust-2".to_string()), Some("cust-1".to_string()), None],
            "{name}"
        );

        let (keys, teams) = s.reset_key_and_team_spend().await.unwrap();
        assert_eq!(
            (keys, teams),
            (vec!["k1".repeat(32)], vec!["t1".to_string()]),
            "{name}"
        );
        assert_eq!(
            s.get_key(&"k1".repeat(32))
                .await
                .unwrap()
                .unwrap()
                .spend_nanos,
            0
        );
        assert_eq!(s.get_team("t1").await.unwrap().unwrap().spend_nanos, 0);
        assert_eq!(s.get_user("u1").await.unwrap().unwrap().spend_nanos, 6_000);
        db.drop_db().await;
    }
}

/// The user and team log indexes leave out rows without a user or team (the writer skips those
/// inserts), yet a page scoped to a user or a team is still read from its index, in order,
/// without scanning the log or sorting it (`log_pages_have_no_gaps_or_repeats_when_times_tie`
/// checks such pages' rows, with ownerless rows among them).
#[tokio::test]
async fn user_and_team_log_pages_read_their_partial_indexes() {
    use tollgate_store::Backend;
    for db in backends().await {
        let s = &db.store;
        insert_in_batches(s, &varied_records()).await;
        for (column, value, index) in [
            ("user_id", "alice", "spend_logs_user_time_id"),
            ("team_id", "team-a", "spend_logs_team_time_id"),
        ] {
            // Bound, as the store binds it: the planner must see that any value implies the
            // column is not null, not only this one.
            let page = format!(
                "SELECT request_id FROM spend_logs WHERE {column} = $1 \
                 ORDER BY start_time DESC, request_id DESC LIMIT 50"
            );
            let plan: Vec<String> = match s.backend() {
                Backend::Sqlite(p) => {
                    let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {page}"))
                        .bind(value)
                        .fetch_all(p)
                        .await
                        .unwrap();
                    use sqlx::Row;
                    rows.iter().map(|r| r.get::<String, _>("detail")).collect()
                }
                Backend::Postgres(p) => {
                    // A few hundred rows fit one page: only with scans and sorts priced out does
                    // the plan show which index the planner can use.
                    let mut tx = p.begin().await.unwrap();
                    sqlx::query("SET LOCAL enable_seqscan = off")
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    sqlx::query("SET LOCAL enable_sort = off")
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    let plan = sqlx::query_scalar(&format!("EXPLAIN {page}"))
                        .bind(value)
                        .fetch_all(&mut *tx)
                        .await
                        .unwrap();
                    tx.rollback().await.unwrap();
                    plan
                }
            };
            let definition: String = match s.backend() {
                Backend::Sqlite(p) => {
                    sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = ?")
                        .bind(index)
                        .fetch_one(p)
                        .await
                        .unwrap()
                }
                Backend::Postgres(p) => {
                    sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE indexname = $1")
                        .bind(index)
                        .fetch_one(p)
                        .await
                        .unwrap()
                }
            };
            assert!(
                definition.contains(&format!("{column} IS NOT NULL")),
                "{definition}"
            );
            let plan = plan.join("\n");
            assert!(plan.contains(index), "{column}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{column}: {plan}");
            assert!(!plan.contains("Sort"), "{column}: {plan}");
        }
        db.drop_db().await;
    }
}
