//! Admission of a virtual-key call before it is forwarded: rate limits first, then the budgets.
//! A call is admitted only with a reservation of its worst-case cost against every budget on
//! its path (key, user, team): concurrent calls can never spend past a budget together.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use serde_json::Value;
use tollgate_ledger::{BudgetExceeded, BudgetLimit, Owner, Refusal, Reservation};

use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::ApiError;
use crate::limits::{Admission, RateLimited, RateLimits, Remaining};
use crate::prompt_bound::prompt_token_bound;
use crate::providers::CallType;
use crate::state::ProxyState;

/// What an admitted call holds until it ends.
#[derive(Default)]
pub struct Admitted {
    pub rate: Option<Admission>,
    pub reservation: Option<Reservation>,
    /// Admitted through Redis, against every instance's calls.
    pub shared: Option<SharedAdmission>,
}

impl Admitted {
    /// What the call's limits have left, for the `x-ratelimit-*` headers.
    pub fn remaining(&self) -> &[Remaining] {
        match (&self.rate, &self.shared) {
            (Some(a), _) => a.remaining(),
            (None, Some(s)) => &s.remaining,
            (None, None) => &[],
        }
    }
}

pub struct SharedAdmission {
    pub ticket: tollgate_cluster::Ticket,
    pub remaining: Vec<Remaining>,
}

/// Output bound used when neither the request, the deployment nor the price map gives one.
const UNKNOWN_MAX_OUTPUT: u64 = 8_192;

pub async fn admit(
    state: &ProxyState,
    caller: &Caller,
    request_id: &str,
    call: CallType,
    body: &mut RawBody,
    model: &str,
) -> Result<Admitted, ApiError> {
    check_choices(body)?;
    let Some(key) = &caller.key else {
        return Ok(Admitted::default());
    };
    if let Some(cluster) = &state.cluster {
        if key.has_budget() || key.has_rate_limits() {
            match admit_shared(state, cluster, key, request_id, call, body, model).await? {
                Some(admitted) => return Ok(admitted),
                None if key.has_budget() && !state.settings.redis_budgets_fail_open => {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "service_unavailable",
                        "Budgets are shared through Redis, which is unreachable. Try again shortly.",
                    )
                    .with_retry_after(1));
                }
                // Redis is unreachable: this instance counts on its own until it is back.
                None => {}
            }
        }
    }
    // Budgets first (LiteLLM's order), so a call refused for its budget uses none of its rate
    // limits; a call refused by a rate limit drops its reservation again.
    let reservation = match reserve(state, key, call, body, model)? {
        Some(r) => r,
        None => {
            // An owner's account was dropped as idle while this call held its key: read the
            // key and its owners' spend again, then ask once more.
            let fresh = state
                .keys
                .reload(&state.store, &key.token)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "key reload failed");
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no_db_connection",
                        "The key's budget could not be read because the database is unavailable; try again shortly.",
                    )
                })?
                .ok_or_else(|| ApiError::auth("Authentication Error, the key was deleted."))?;
            reserve(state, &fresh, call, body, model)?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "The key's budget is being reloaded; try again shortly.",
                )
                .with_retry_after(1)
            })?
        }
    };
    let rate = if key.has_rate_limits() {
        Some(state.limiter.admit(&key.path).map_err(rate_limited)?)
    } else {
        None
    };
    Ok(Admitted {
        rate,
        reservation: Some(reservation),
        shared: None,
    })
}

/// Admission through Redis: `Ok(None)` when Redis could not be reached.
async fn admit_shared(
    state: &ProxyState,
    cluster: &tollgate_cluster::Cluster,
    key: &crate::keys::KeyInfo,
    request_id: &str,
    call: CallType,
    body: &mut RawBody,
    model: &str,
) -> Result<Option<Admitted>, ApiError> {
    use tollgate_cluster::{AdmitError, BudgetOwner, RateOwner, Refusal};
    let (bound, want, min) = if key.has_budget() {
        let (bound, want, min) = budget_ask(state, call, body, model)?;
        (Some(bound), want, min)
    } else {
        (None, 0, 0)
    };
    let budgets: Vec<BudgetOwner> = if key.has_budget() {
        key.path
            .iter()
            .map(|p| BudgetOwner {
                owner: p.owner.clone(),
                max_budget_nanos: p.max_budget_nanos(),
                store_spend_nanos: p.spend_at_load,
            })
            .collect()
    } else {
        Vec::new()
    };
    let limited = || key.path.iter().filter(|p| !p.is_unlimited());
    let rates: Vec<RateOwner> = limited()
        .map(|p| RateOwner {
            owner: p.owner.clone(),
            rpm: p.rpm(),
            tpm: p.tpm(),
            max_parallel: p.max_parallel(),
        })
        .collect();
    // A lease outlives the longest call, so only a dead instance's calls expire.
    let lease_ms = (state.settings.default_timeout + std::time::Duration::from_secs(60))
        .as_millis()
        .min(u64::MAX as u128) as u64;
    let share = bound.as_ref().is_some_and(|b| !b.output_requested);
    match cluster
        .admit(request_id, &budgets, &rates, want, min, share, lease_ms)
        .await
    {
        Ok(a) => {
            if let Some(bound) = &bound {
                limit_output(body, call, bound, a.ticket.granted_nanos, want);
            }
            let remaining = limited()
                .zip(&a.remaining)
                .map(|(l, r)| Remaining {
                    owner: l.owner.clone(),
                    requests: l.rpm().map(|n| (n, n.saturating_sub(r.requests_used))),
                    tokens: l.tpm().map(|n| (n, n.saturating_sub(r.tokens_used))),
                })
                .collect();
            Ok(Some(Admitted {
                rate: None,
                reservation: None,
                shared: Some(SharedAdmission {
                    ticket: a.ticket,
                    remaining,
                }),
            }))
        }
        Err(AdmitError::Refused(Refusal::Budget {
            owner,
            spend_nanos,
            reserved_nanos,
            max_budget_nanos,
        })) => Err(budget_exceeded(&BudgetExceeded {
            owner,
            spend_nanos,
            reserved_nanos,
            max_budget_nanos,
        })),
        Err(AdmitError::Refused(Refusal::Rate { owner, kind, limit })) => {
            let kind = match kind {
                0 => crate::limits::LimitKind::Requests,
                1 => crate::limits::LimitKind::Tokens,
                _ => crate::limits::LimitKind::Parallel,
            };
            Err(rate_limited(RateLimited::now(owner, kind, limit)))
        }
        Err(AdmitError::Unavailable(e)) => {
            tracing::warn!(error = %e, "Redis unreachable; admission falls back to this instance");
            Ok(None)
        }
    }
}

/// OpenAI's bounds on `n`: whatever is forwarded is what the budget reservation counted.
const MAX_CHOICES: u64 = 128;

fn check_choices(body: &RawBody) -> Result<(), ApiError> {
    match body.decode::<Value>("n")? {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_u64().is_some_and(|n| (1..=MAX_CHOICES).contains(&n)) => Ok(()),
        Some(_) => Err(ApiError::bad_request(format!(
            "n must be a whole number from 1 to {MAX_CHOICES}."
        ))
        .with_param("n")),
    }
}

/// The call's worst-case cost and the least worth admitting it for.
fn budget_ask(
    state: &ProxyState,
    call: CallType,
    body: &RawBody,
    model: &str,
) -> Result<(CostBound, i64, i64), ApiError> {
    let bound = CostBound::of(state, call, body, model)?;
    let min_output = if call == CallType::Embedding {
        bound.output_tokens
    } else {
        bound
            .output_tokens
            .min(state.settings.budget_min_output_tokens)
    };
    let want = bound.cost(bound.output_tokens);
    let min = bound.cost(min_output);
    Ok((bound, want, min))
}

/// Spend must not pass the budget: when less than the worst case was granted (or the output
/// bound was only a default), the upstream is told to produce only what is affordable.
fn limit_output(body: &mut RawBody, call: CallType, bound: &CostBound, granted: i64, want: i64) {
    if call != CallType::Embedding && (granted < want || bound.output_guessed) {
        let affordable = bound.affordable_output(granted).min(bound.output_tokens);
        let field = if body.contains("max_completion_tokens") {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body.set(field, &affordable.max(1));
    }
}

/// `None` when an owner's account was not loaded (see [`Refusal::NotLoaded`]).
fn reserve(
    state: &ProxyState,
    key: &crate::keys::KeyInfo,
    call: CallType,
    body: &mut RawBody,
    model: &str,
) -> Result<Option<Reservation>, ApiError> {
    let budgets = state.keys.budgets();
    let refused = |e: Refusal| match e {
        Refusal::Exceeded(e) => Err(budget_exceeded(&e)),
        Refusal::NotLoaded(_) => Ok(None),
    };
    if !key.has_budget() {
        // No budget to hold against, but the spend still moves the in-process accounts.
        return budgets
            .reserve(key.path_owners(), &key.path, 0, 0, false)
            .map(Some)
            .or_else(refused);
    }
    let (bound, want, min) = budget_ask(state, call, body, model)?;
    let reservation = match budgets.reserve(
        key.path_owners(),
        &key.path,
        want,
        min,
        !bound.output_requested,
    ) {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    limit_output(body, call, &bound, reservation.amount(), want);
    Ok(Some(reservation))
}

/// LiteLLM's rate-limit headers, `x-ratelimit-{owner}-{limit|remaining}-{what}`, one row per
/// owner kind, the last row OpenAI's unprefixed `x-ratelimit-{limit|remaining}-{what}`. Spelled
/// out so that no call formats a header name, and built at compile time: `from_static` at run
/// time validates the text and searches the standard names on every call.
static LIMIT_HEADERS: [[[HeaderName; 2]; 2]; 5] = [
    [
        [
            HeaderName::from_static("x-ratelimit-api_key-limit-requests"),
            HeaderName::from_static("x-ratelimit-api_key-limit-tokens"),
        ],
        [
            HeaderName::from_static("x-ratelimit-api_key-remaining-requests"),
            HeaderName::from_static("x-ratelimit-api_key-remaining-tokens"),
        ],
    ],
    [
        [
            HeaderName::from_static("x-ratelimit-user-limit-requests"),
            HeaderName::from_static("x-ratelimit-user-limit-tokens"),
        ],
        [
            HeaderName::from_static("x-ratelimit-user-remaining-requests"),
            HeaderName::from_static("x-ratelimit-user-remaining-tokens"),
        ],
    ],
    [
        [
            HeaderName::from_static("x-ratelimit-team-limit-requests"),
            HeaderName::from_static("x-ratelimit-team-limit-tokens"),
        ],
        [
            HeaderName::from_static("x-ratelimit-team-remaining-requests"),
            HeaderName::from_static("x-ratelimit-team-remaining-tokens"),
        ],
    ],
    [
        [
            HeaderName::from_static("x-ratelimit-team-member-limit-requests"),
            HeaderName::from_static("x-ratelimit-team-member-limit-tokens"),
        ],
        [
            HeaderName::from_static("x-ratelimit-team-member-remaining-requests"),
            HeaderName::from_static("x-ratelimit-team-member-remaining-tokens"),
        ],
    ],
    [
        [
            HeaderName::from_static("x-ratelimit-limit-requests"),
            HeaderName::from_static("x-ratelimit-limit-tokens"),
        ],
        [
            HeaderName::from_static("x-ratelimit-remaining-requests"),
            HeaderName::from_static("x-ratelimit-remaining-tokens"),
        ],
    ],
];

/// One of `LIMIT_HEADERS`; owner None for the unprefixed names.
fn limit_header(owner: Option<&Owner>, remaining: bool, tokens: bool) -> HeaderName {
    let row = match owner {
        Some(Owner::Key(_)) => 0,
        Some(Owner::User(_)) => 1,
        Some(Owner::Team(_)) => 2,
        Some(Owner::Member(_)) => 3,
        None => 4,
    };
    LIMIT_HEADERS[row][usize::from(remaining)][usize::from(tokens)].clone()
}

/// A number as a header value in one allocation of its digits: `HeaderValue::from(u64)` makes
/// two (a 20-byte buffer, then the shared header its shorter contents need).
fn number(n: u64) -> HeaderValue {
    HeaderValue::from_str(itoa::Buffer::new().format(n)).unwrap_or_else(|_| HeaderValue::from(n))
}

/// Each rate-limit header for what an admitted call left, in order, with its number.
fn each_limit_value(remaining: &[Remaining], mut f: impl FnMut(HeaderName, u64)) {
    for r in remaining {
        for (tokens, counts) in [(false, r.requests), (true, r.tokens)] {
            let Some((limit, left)) = counts else {
                continue;
            };
            let mut push = |owner: Option<&Owner>| {
                f(limit_header(owner, false, tokens), limit);
                f(limit_header(owner, true, tokens), left);
            };
            push(Some(&r.owner));
            // OpenAI's unprefixed names carry the key's own limits.
            if matches!(r.owner, Owner::Key(_)) {
                push(None);
            }
        }
    }
}

/// The headers LiteLLM sets for rate limits, from what an admitted call left. A key's rpm and
/// tpm limits make eight headers (its own names and OpenAI's unprefixed ones), so the digits of
/// all values are written into one buffer and each value is a slice of it: three allocations a
/// call (the digits, their shared header, the list) rather than one a value and the list.
pub fn rate_limit_headers(remaining: &[Remaining]) -> Vec<(HeaderName, HeaderValue)> {
    let mut digits = Vec::with_capacity(remaining.len() * 4 * 20);
    let mut count = 0;
    each_limit_value(remaining, |_, n| {
        digits.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        count += 1;
    });
    let digits = bytes::Bytes::from(digits);
    let mut headers = Vec::with_capacity(count);
    let mut at = 0;
    each_limit_value(remaining, |name, n| {
        let end = at + n.checked_ilog10().map_or(1, |d| d as usize + 1);
        // Digits are always a valid header value; the fallback spares this a panic path.
        let value =
            HeaderValue::from_maybe_shared(digits.slice(at..end)).unwrap_or_else(|_| number(n));
        headers.push((name, value));
        at = end;
    });
    headers
}

fn rate_limited(e: RateLimited) -> ApiError {
    let mut err = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        e.message(),
    );
    err.retry_after = Some(e.retry_after_secs);
    let tokens = e.kind == crate::limits::LimitKind::Tokens;
    err.headers = Some(Box::new(vec![
        (limit_header(Some(&e.owner), false, tokens), number(e.limit)),
        (
            limit_header(Some(&e.owner), true, tokens),
            HeaderValue::from_static("0"),
        ),
        (
            HeaderName::from_static("x-ratelimit-reset"),
            number(e.resets_at),
        ),
    ]));
    err
}

fn usd(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

fn budget_exceeded(e: &BudgetExceeded) -> ApiError {
    let message = match &e.owner {
        // LiteLLM's key message; the key is not named (its hash stays out of error bodies).
        Owner::Key(_) => format!(
            "Budget has been exceeded! Current cost: {}, Max budget: {}",
            usd(e.spend_nanos + e.reserved_nanos),
            usd(e.max_budget_nanos)
        ),
        Owner::User(id) | Owner::Team(id) => format!(
            "ExceededBudget: {}={id} over budget. Spend={}, Budget={}",
            e.owner.kind(),
            usd(e.spend_nanos + e.reserved_nanos),
            usd(e.max_budget_nanos)
        ),
        // LiteLLM's team member message.
        Owner::Member(_) => {
            let (team, user) = e.owner.member_parts().unwrap_or_default();
            format!(
                "Budget has been exceeded! User={user} in Team={team} Current cost: {}, Max budget: {}",
                usd(e.spend_nanos + e.reserved_nanos),
                usd(e.max_budget_nanos)
            )
        }
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "budget_exceeded", message)
}

/// The most a call can cost, by its parts: an upper bound on prompt tokens and the priciest
/// deployment that may serve it (its own group and its fallbacks).
#[derive(Debug, Clone, PartialEq)]
struct CostBound {
    prompt_tokens: u64,
    output_tokens: u64,
    /// The output bound is a default, not a known limit: the upstream is told it.
    output_guessed: bool,
    /// The caller set the output limit (`max_tokens` / `max_completion_tokens`); otherwise the
    /// bound is the gateway's, and the call takes a fair share of a budget under contention.
    output_requested: bool,
    input_price: f64,
    /// Per output token, times `n` choices.
    output_price: f64,
}

impl CostBound {
    fn of(
        state: &ProxyState,
        call: CallType,
        body: &RawBody,
        model: &str,
    ) -> Result<CostBound, ApiError> {
        let mut input_price: f64 = 0.0;
        let mut output_price: f64 = 0.0;
        let mut max_output: Option<u64> = None;
        let groups = std::iter::once(model)
            .chain(
                state
                    .settings
                    .fallbacks_for(model)
                    .iter()
                    .map(String::as_str),
            )
            .chain(
                state
                    .settings
                    .context_window_fallbacks
                    .get(model)
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            );
        for g in groups {
            let Some(resolved) = state.router.resolve(g) else {
                continue;
            };
            for d in resolved.deployments.iter() {
                let spec = &d.spec;
                let upstream = if spec.upstream_model.contains('*') {
                    std::borrow::Cow::Owned(spec.upstream_model.replace('*', &resolved.captured))
                } else {
                    std::borrow::Cow::Borrowed(spec.upstream_model.as_str())
                };
                let price = state.price_for(spec, &upstream);
                if let Some(p) = price {
                    input_price = input_price.max(p.input_cost_per_token.unwrap_or(0.0));
                    output_price = output_price.max(p.output_cost_per_token.unwrap_or(0.0));
                }
                let out = spec
                    .default_params
                    .get("max_tokens")
                    .and_then(Value::as_u64)
                    .or(spec.max_output_tokens)
                    .or(price.and_then(|p| p.max_output_tokens));
                if let Some(o) = out {
                    max_output = Some(max_output.map_or(o, |m| m.max(o)));
                }
            }
        }
        let requested = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|f| body.decode::<Value>(f).ok().flatten())
            .and_then(|v| v.as_u64());
        let n = body
            .decode::<Value>("n")?
            .and_then(|v| v.as_u64())
            .unwrap_or(1)
            .clamp(1, MAX_CHOICES);
        let (output_tokens, output_guessed) = if call == CallType::Embedding {
            (0, false)
        } else {
            match (requested, max_output) {
                (Some(r), Some(m)) => (r.min(m), false),
                (Some(r), None) => (r, false),
                (None, Some(m)) => (m, false),
                (None, None) => (UNKNOWN_MAX_OUTPUT, true),
            }
        };
        let output_requested = requested.is_some() || call == CallType::Embedding;
        Ok(CostBound {
            output_requested,
            prompt_tokens: prompt_token_bound(body),
            output_tokens,
            output_guessed,
            input_price,
            output_price: output_price * n as f64,
        })
    }

    /// Nano-USD for the prompt and `output` tokens, rounded up.
    fn cost(&self, output: u64) -> i64 {
        let usd = self.prompt_tokens as f64 * self.input_price + output as f64 * self.output_price;
        let nanos = (usd * 1e9).ceil();
        if nanos >= i64::MAX as f64 {
            i64::MAX
        } else {
            nanos.max(0.0) as i64
        }
    }

    /// Output tokens that `granted` nano-USD pays for after the prompt.
    fn affordable_output(&self, granted: i64) -> u64 {
        if self.output_price <= 0.0 {
            return self.output_tokens;
        }
        let left = granted as f64 / 1e9 - self.prompt_tokens as f64 * self.input_price;
        if left <= 0.0 {
            return 0;
        }
        (left / self.output_price).floor() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_the_same_header_values_as_before() {
        for n in [0, 7, 1_000_000_000, u64::MAX] {
            assert_eq!(number(n), HeaderValue::from(n));
        }
    }

    #[test]
    fn rate_limit_header_names_follow_litellms_pattern() {
        let id: std::sync::Arc<str> = "x".into();
        let owners = [
            (Some(Owner::Key(id.clone())), "api_key-"),
            (Some(Owner::User(id.clone())), "user-"),
            (Some(Owner::Team(id.clone())), "team-"),
            (Some(Owner::Member(id)), "team-member-"),
            (None, ""),
        ];
        for (owner, prefix) in &owners {
            for (remaining, field) in [(false, "limit"), (true, "remaining")] {
                for (tokens, what) in [(false, "requests"), (true, "tokens")] {
                    assert_eq!(
                        limit_header(owner.as_ref(), remaining, tokens).as_str(),
                        format!("x-ratelimit-{prefix}{field}-{what}")
                    );
                }
            }
        }
    }

    #[test]
    fn rate_limit_headers_carry_each_owners_numbers() {
        use crate::limits::Remaining;
        let key: std::sync::Arc<str> = "k".into();
        let user: std::sync::Arc<str> = "u".into();
        let remaining = [
            Remaining {
                owner: Owner::Key(key),
                requests: Some((100, 99)),
                tokens: Some((u64::MAX, 0)),
            },
            Remaining {
                owner: Owner::User(user),
                requests: None,
                tokens: Some((7_000, 6_955)),
            },
        ];
        let got: Vec<(String, String)> = rate_limit_headers(&remaining)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let want = [
            ("x-ratelimit-api_key-limit-requests", "100"),
            ("x-ratelimit-api_key-remaining-requests", "99"),
            ("x-ratelimit-limit-requests", "100"),
            ("x-ratelimit-remaining-requests", "99"),
            ("x-ratelimit-api_key-limit-tokens", "18446744073709551615"),
            ("x-ratelimit-api_key-remaining-tokens", "0"),
            ("x-ratelimit-limit-tokens", "18446744073709551615"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-user-limit-tokens", "7000"),
            ("x-ratelimit-user-remaining-tokens", "6955"),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()));
        assert_eq!(got, want);
        assert!(rate_limit_headers(&[]).is_empty());
    }

    #[test]
    fn affordable_output_leaves_room_for_the_prompt() {
        let b = CostBound {
            prompt_tokens: 100,
            output_tokens: 1000,
            output_guessed: false,
            output_requested: true,
            input_price: 1e-6,
            output_price: 2e-6,
        };
        assert_eq!(b.cost(1000), 2_100_000);
        assert_eq!(b.affordable_output(b.cost(1000)), 1000);
        assert_eq!(b.affordable_output(1_100_000), 500);
        assert_eq!(b.affordable_output(50_000), 0);
    }
}
