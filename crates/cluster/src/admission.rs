//! Budgets and rate limits counted across instances: one Lua script admits a call against every
//! budget and limit on its path at once (all or nothing, one round trip), another settles it.
//!
//! Per owner, Redis holds: its running spend (nano-USD, set from the store's value when absent,
//! expiring after an idle hour so it is re-read from the store), its reserved total with one
//! lease per call in flight (a sorted set scored by expiry, so the reservations of an instance
//! that died free themselves), requests and tokens of the current minute, and a lease per call
//! in flight for `max_parallel_requests`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use redis::Script;
use tollgate_ledger::Owner;

use crate::connection::{Cluster, ClusterError};

/// An owner whose spend the call adds to; `max_budget_nanos` when its budget is checked.
#[derive(Debug, Clone)]
pub struct BudgetOwner {
    pub owner: Owner,
    pub max_budget_nanos: Option<i64>,
    /// The store's spend when the key was loaded: the starting point if Redis has none.
    pub store_spend_nanos: i64,
}

#[derive(Debug, Clone)]
pub struct RateOwner {
    pub owner: Owner,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u64>,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Budget {
        owner: Owner,
        spend_nanos: i64,
        reserved_nanos: i64,
        max_budget_nanos: i64,
    },
    /// `kind`: 0 requests, 1 tokens, 2 parallel.
    Rate { owner: Owner, kind: u8, limit: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("refused")]
    Refused(Refusal),
    #[error(transparent)]
    Unavailable(#[from] ClusterError),
}

/// What an admitted call holds until it is settled.
#[derive(Debug)]
pub struct Ticket {
    call_id: String,
    minute: u64,
    /// Owners with a checked budget: their reservation is released on settle.
    limited: Vec<Owner>,
    /// Owners whose spend moves (the first one is the key).
    path: Vec<Owner>,
    rates: Vec<Owner>,
    pub granted_nanos: i64,
}

/// Requests and tokens left this minute, per rate owner (in the order given), for headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remaining {
    pub owner: Owner,
    pub requests_used: u64,
    pub tokens_used: u64,
}

#[derive(Debug)]
pub struct Admitted {
    pub ticket: Ticket,
    pub remaining: Vec<Remaining>,
}

/// The key's spend before and after the call, when Redis tracks it (for soft-budget alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub key_spend: Option<(i64, i64)>,
}

/// Idle spend counters expire and are re-read from the store: the store stays the truth, and a
/// budget reset or a manual spend change there is picked up.
const SPEND_TTL_MS: u64 = 3_600_000;

const ADMIT: &str = r#"
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local id = ARGV[3]
local want = tonumber(ARGV[4])
local min = tonumber(ARGV[5])
local nb = tonumber(ARGV[6])
local nr = tonumber(ARGV[7])
local ttl = tonumber(ARGV[8])
local slack = tonumber(ARGV[9])
if min < 0 then min = 0 end
local granted = want
for i = 0, nb - 1 do
  local spend_k, sum_k, z_k, h_k = KEYS[i*4+1], KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  local max = tonumber(ARGV[10 + i*2])
  redis.call('SET', spend_k, ARGV[11 + i*2], 'NX')
  redis.call('PEXPIRE', spend_k, ttl)
  if max >= 0 then
    local expired = redis.call('ZRANGEBYSCORE', z_k, '-inf', now)
    for _, rid in ipairs(expired) do
      local amt = redis.call('HGET', h_k, rid)
      if amt then
        redis.call('DECRBY', sum_k, amt)
        redis.call('HDEL', h_k, rid)
      end
      redis.call('ZREM', z_k, rid)
    end
    local spend = tonumber(redis.call('GET', spend_k))
    local reserved = tonumber(redis.call('GET', sum_k) or '0')
    local left = max - spend - reserved
    if spend >= max or left < min or (left <= 0 and want > 0) then
      return {0, i, spend, reserved, max}
    end
    if left < granted then granted = left end
    if slack > 0 then
      local share = math.floor(left / (redis.call('ZCARD', z_k) + slack))
      if share < min then share = min end
      if share < granted then granted = share end
    end
  end
end
local rbase = 10 + nb*2
local kbase = nb*4
for j = 0, nr - 1 do
  local req_k, tok_k, pz_k = KEYS[kbase+j*3+1], KEYS[kbase+j*3+2], KEYS[kbase+j*3+3]
  local rpm = tonumber(ARGV[rbase+j*3])
  local tpm = tonumber(ARGV[rbase+j*3+1])
  local par = tonumber(ARGV[rbase+j*3+2])
  if par >= 0 then
    redis.call('ZREMRANGEBYSCORE', pz_k, '-inf', now)
    if redis.call('ZCARD', pz_k) >= par then return {1, j, 2, par} end
  end
  if rpm >= 0 and tonumber(redis.call('GET', req_k) or '0') >= rpm then return {1, j, 0, rpm} end
  if tpm >= 0 and tonumber(redis.call('GET', tok_k) or '0') >= tpm then return {1, j, 1, tpm} end
end
if granted < 0 then granted = 0 end
for i = 0, nb - 1 do
  if tonumber(ARGV[10 + i*2]) >= 0 then
    local sum_k, z_k, h_k = KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
    redis.call('ZADD', z_k, now + lease, id)
    redis.call('HSET', h_k, id, granted)
    redis.call('INCRBY', sum_k, granted)
    redis.call('PEXPIRE', z_k, lease * 2)
    redis.call('PEXPIRE', h_k, lease * 2)
    redis.call('PEXPIRE', sum_k, lease * 2)
  end
end
local out = {2, granted}
for j = 0, nr - 1 do
  local req_k, tok_k, pz_k = KEYS[kbase+j*3+1], KEYS[kbase+j*3+2], KEYS[kbase+j*3+3]
  local r = redis.call('INCR', req_k)
  redis.call('EXPIRE', req_k, 120)
  if tonumber(ARGV[rbase+j*3+2]) >= 0 then
    redis.call('ZADD', pz_k, now + lease, id)
    redis.call('PEXPIRE', pz_k, lease * 2)
  end
  table.insert(out, r)
  table.insert(out, tonumber(redis.call('GET', tok_k) or '0'))
end
return out
"#;

const SETTLE: &str = r#"
local id = ARGV[1]
local actual = ARGV[2]
local tokens = tonumber(ARGV[3])
local nb = tonumber(ARGV[4])
local np = tonumber(ARGV[5])
local nr = tonumber(ARGV[6])
for i = 0, nb - 1 do
  local sum_k, z_k, h_k = KEYS[i*3+1], KEYS[i*3+2], KEYS[i*3+3]
  if redis.call('ZREM', z_k, id) == 1 then
    local amt = redis.call('HGET', h_k, id)
    if amt then
      redis.call('DECRBY', sum_k, amt)
      redis.call('HDEL', h_k, id)
    end
  end
end
local before, after = -1, -1
for k = 0, np - 1 do
  local spend_k = KEYS[nb*3 + k + 1]
  if redis.call('EXISTS', spend_k) == 1 then
    local b = tonumber(redis.call('GET', spend_k))
    local a = redis.call('INCRBY', spend_k, actual)
    if k == 0 then before = b; after = a end
  end
end
local base = nb*3 + np
for j = 0, nr - 1 do
  local tok_k, pz_k = KEYS[base+j*2+1], KEYS[base+j*2+2]
  if tokens > 0 then
    redis.call('INCRBY', tok_k, tokens)
    redis.call('EXPIRE', tok_k, 120)
  end
  redis.call('ZREM', pz_k, id)
end
return {before, after}
"#;

fn scripts() -> &'static (Script, Script) {
    static S: std::sync::OnceLock<(Script, Script)> = std::sync::OnceLock::new();
    S.get_or_init(|| (Script::new(ADMIT), Script::new(SETTLE)))
}

fn owner_id(o: &Owner) -> (&'static str, &str) {
    match o {
        Owner::Key(k) => ("k", k),
        Owner::User(u) => ("u", u),
        Owner::Team(t) => ("t", t),
        Owner::Member(m) => ("m", m),
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Cluster {
    fn owner_key(&self, what: &str, o: &Owner) -> String {
        let (kind, id) = owner_id(o);
        self.key(&[what, kind, id])
    }

    fn minute_key(&self, what: &str, o: &Owner, minute: u64) -> String {
        let (kind, id) = owner_id(o);
        self.key(&[what, kind, id, &minute.to_string()])
    }

    /// Admits a call against every budget and rate limit given, all or nothing: reserves `want`
    /// nano-USD (or as much as the tightest budget allows, if at least `min`) for `lease_ms`.
    /// With `share`, the call set no output limit of its own and is granted at most its fair
    /// share of each budget (`tollgate_ledger::budgets::fair_share`, counted over every
    /// instance's calls in flight).
    #[allow(clippy::too_many_arguments)]
    pub async fn admit(
        &self,
        call_id: &str,
        budgets: &[BudgetOwner],
        rates: &[RateOwner],
        want: i64,
        min: i64,
        share: bool,
        lease_ms: u64,
    ) -> Result<Admitted, AdmitError> {
        let now = now_ms();
        let minute = now / 60_000;
        let (admit, _) = scripts();
        let mut inv = admit.prepare_invoke();
        for b in budgets {
            inv.key(self.owner_key("spend", &b.owner));
            inv.key(self.owner_key("rsum", &b.owner));
            inv.key(self.owner_key("rz", &b.owner));
            inv.key(self.owner_key("rh", &b.owner));
        }
        for r in rates {
            inv.key(self.minute_key("rq", &r.owner, minute));
            inv.key(self.minute_key("tk", &r.owner, minute));
            inv.key(self.owner_key("pz", &r.owner));
        }
        inv.arg(now)
            .arg(lease_ms.max(1_000))
            .arg(call_id)
            .arg(want.max(0))
            .arg(min)
            .arg(budgets.len())
            .arg(rates.len())
            .arg(SPEND_TTL_MS)
            .arg(if share {
                tollgate_ledger::budgets::FAIR_SHARE_SLACK
            } else {
                0
            });
        for b in budgets {
            inv.arg(b.max_budget_nanos.unwrap_or(-1))
                .arg(b.store_spend_nanos.max(0));
        }
        let opt = |v: Option<u64>| v.map_or(-1, |n| n.min(i64::MAX as u64) as i64);
        for r in rates {
            inv.arg(opt(r.rpm)).arg(opt(r.tpm)).arg(opt(r.max_parallel));
        }
        let mut conn = self.conn.clone();
        let out: Vec<i64> = self.timed(inv.invoke_async(&mut conn)).await?;
        let at = |i: usize| out.get(i).copied().unwrap_or(0);
        match at(0) {
            0 => {
                let owner = budgets
                    .get(at(1) as usize)
                    .map(|b| b.owner.clone())
                    .unwrap_or_else(|| Owner::Key(Arc::from("")));
                Err(AdmitError::Refused(Refusal::Budget {
                    owner,
                    spend_nanos: at(2),
                    reserved_nanos: at(3),
                    max_budget_nanos: at(4),
                }))
            }
            1 => {
                let owner = rates
                    .get(at(1) as usize)
                    .map(|r| r.owner.clone())
                    .unwrap_or_else(|| Owner::Key(Arc::from("")));
                Err(AdmitError::Refused(Refusal::Rate {
                    owner,
                    kind: at(2).clamp(0, 2) as u8,
                    limit: at(3).max(0) as u64,
                }))
            }
            _ => {
                let remaining = rates
                    .iter()
                    .enumerate()
                    .map(|(j, r)| Remaining {
                        owner: r.owner.clone(),
                        requests_used: at(2 + j * 2).max(0) as u64,
                        tokens_used: at(3 + j * 2).max(0) as u64,
                    })
                    .collect();
                Ok(Admitted {
                    ticket: Ticket {
                        call_id: call_id.to_string(),
                        minute,
                        limited: budgets
                            .iter()
                            .filter(|b| b.max_budget_nanos.is_some())
                            .map(|b| b.owner.clone())
                            .collect(),
                        path: budgets.iter().map(|b| b.owner.clone()).collect(),
                        rates: rates.iter().map(|r| r.owner.clone()).collect(),
                        granted_nanos: at(1),
                    },
                    remaining,
                })
            }
        }
    }

    /// Ends a call: releases its reservations and parallel slots, adds its real cost to every
    /// owner's spend and its tokens to this minute's counts.
    pub async fn settle(
        &self,
        ticket: &Ticket,
        actual_nanos: i64,
        tokens: u64,
    ) -> Result<Settled, ClusterError> {
        let (_, settle) = scripts();
        let mut inv = settle.prepare_invoke();
        for o in &ticket.limited {
            inv.key(self.owner_key("rsum", o));
            inv.key(self.owner_key("rz", o));
            inv.key(self.owner_key("rh", o));
        }
        for o in &ticket.path {
            inv.key(self.owner_key("spend", o));
        }
        for o in &ticket.rates {
            inv.key(self.minute_key("tk", o, ticket.minute));
            inv.key(self.owner_key("pz", o));
        }
        inv.arg(&ticket.call_id)
            .arg(actual_nanos.max(0))
            .arg(tokens)
            .arg(ticket.limited.len())
            .arg(ticket.path.len())
            .arg(ticket.rates.len());
        let mut conn = self.conn.clone();
        let out: Vec<i64> = self.timed(inv.invoke_async(&mut conn)).await?;
        let before = out.first().copied().unwrap_or(-1);
        let after = out.get(1).copied().unwrap_or(-1);
        Ok(Settled {
            key_spend: (before >= 0).then_some((before, after)),
        })
    }

    /// A budget period ended in the store: the running spend starts again from 0. (Set, not
    /// deleted: an instance holding the key's pre-reset spend in its cache must not seed the
    /// counter with it again.)
    pub async fn reset_spend(&self, owners: &[Owner]) -> Result<(), ClusterError> {
        if owners.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for o in owners {
            pipe.cmd("SET")
                .arg(self.owner_key("spend", o))
                .arg(0)
                .arg("PX")
                .arg(SPEND_TTL_MS)
                .ignore();
        }
        let mut conn = self.conn.clone();
        self.timed(pipe.query_async::<()>(&mut conn)).await
    }
}
