//! Failed-login counts shared by every instance, so that spreading guesses over instances gains
//! nothing. The same limits as each instance's own throttle: per (account, address), per
//! address, and a growing delay per account. Every attempt counts as a failure before the
//! password is checked; a success or an attempt that could not be checked gives it back. An
//! instance that dies mid-check leaves its attempt counted, which errs on the safe side.

use std::time::Duration;

use redis::Script;

use crate::connection::{Cluster, ClusterError};

#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_pair: u32,
    pub per_address: u32,
    pub account_free_failures: u32,
    pub account_delay: Duration,
    pub account_max_delay: Duration,
    pub window: Duration,
    pub block: Duration,
}

/// An attempt counted in Redis; end it with [`Cluster::end_login`].
#[derive(Debug)]
pub struct SharedAttempt {
    keys: [String; 3],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Succeeded,
    Failed,
    /// The password could not be checked (hashing busy, store down): nothing counts.
    Abandoned,
}

/// KEYS: pair, address, account (hashes: f = failures counted, b = blocked until, l = last
/// attempt). ARGV: now, pair limit, address limit, free failures, delay, max delay, window,
/// block (ms). Returns the milliseconds to wait, or 0 when the attempt was counted.
const BEGIN: &str = r#"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[7])
local wait = 0
for i, limit in ipairs({tonumber(ARGV[2]), tonumber(ARGV[3])}) do
  local b = tonumber(redis.call('HGET', KEYS[i], 'b') or '0')
  local f = tonumber(redis.call('HGET', KEYS[i], 'f') or '0')
  if b > now then
    wait = math.max(wait, b - now)
  elseif f >= limit then
    wait = math.max(wait, 1000)
  end
end
local fa = tonumber(redis.call('HGET', KEYS[3], 'f') or '0')
local free = tonumber(ARGV[4])
if fa >= free then
  local delay = math.min(tonumber(ARGV[5]) * (2 ^ (fa - free)), tonumber(ARGV[6]))
  local last = tonumber(redis.call('HGET', KEYS[3], 'l') or '0')
  if now < last + delay then wait = math.max(wait, last + delay - now) end
end
if wait > 0 then return wait end
for i = 1, 3 do
  redis.call('HINCRBY', KEYS[i], 'f', 1)
  redis.call('PEXPIRE', KEYS[i], math.max(window, tonumber(ARGV[8])))
end
redis.call('HSET', KEYS[3], 'l', now)
return 0
"#;

/// ARGV: outcome (s, f or a), now, pair limit, address limit, block.
const END: &str = r#"
local outcome = ARGV[1]
local now = tonumber(ARGV[2])
if outcome == 's' then
  redis.call('HSET', KEYS[1], 'f', 0)
  local fi = tonumber(redis.call('HGET', KEYS[2], 'f') or '0')
  if fi > 0 then redis.call('HINCRBY', KEYS[2], 'f', -1) end
  redis.call('HSET', KEYS[3], 'f', 0)
elseif outcome == 'a' then
  for i = 1, 3 do
    local f = tonumber(redis.call('HGET', KEYS[i], 'f') or '0')
    if f > 0 then redis.call('HINCRBY', KEYS[i], 'f', -1) end
  end
else
  for i, limit in ipairs({tonumber(ARGV[3]), tonumber(ARGV[4])}) do
    local f = tonumber(redis.call('HGET', KEYS[i], 'f') or '0')
    if f >= limit then
      redis.call('HSET', KEYS[i], 'b', now + tonumber(ARGV[5]), 'f', 0)
      redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[5]))
    end
  end
end
return 0
"#;

fn scripts() -> &'static (Script, Script) {
    static S: std::sync::OnceLock<(Script, Script)> = std::sync::OnceLock::new();
    S.get_or_init(|| (Script::new(BEGIN), Script::new(END)))
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl Cluster {
    /// Counts a login attempt before its password is checked: `Ok(Err(wait))` when a shared
    /// limit refuses it. `account` and `address` come already normalised by the caller.
    pub async fn begin_login(
        &self,
        account: &str,
        address: &str,
        limits: &LoginLimits,
    ) -> Result<Result<SharedAttempt, Duration>, ClusterError> {
        let keys = [
            self.key(&["login", "pair", account, address]),
            self.key(&["login", "addr", address]),
            self.key(&["login", "acct", account]),
        ];
        let (begin, _) = scripts();
        let mut inv = begin.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        inv.arg(crate::admission::now_ms())
            .arg(limits.per_pair.max(1))
            .arg(limits.per_address.max(1))
            .arg(limits.account_free_failures)
            .arg(ms(limits.account_delay))
            .arg(ms(limits.account_max_delay))
            .arg(ms(limits.window))
            .arg(ms(limits.block));
        let mut conn = self.conn.clone();
        let wait: u64 = self.timed(inv.invoke_async(&mut conn)).await?;
        Ok(if wait == 0 {
            Ok(SharedAttempt { keys })
        } else {
            Err(Duration::from_millis(wait))
        })
    }

    pub async fn end_login(
        &self,
        attempt: SharedAttempt,
        outcome: LoginOutcome,
        limits: &LoginLimits,
    ) -> Result<(), ClusterError> {
        let (_, end) = scripts();
        let mut inv = end.prepare_invoke();
        for k in &attempt.keys {
            inv.key(k);
        }
        let code = match outcome {
            LoginOutcome::Succeeded => "s",
            LoginOutcome::Failed => "f",
            LoginOutcome::Abandoned => "a",
        };
        inv.arg(code)
            .arg(crate::admission::now_ms())
            .arg(limits.per_pair.max(1))
            .arg(limits.per_address.max(1))
            .arg(ms(limits.block));
        let mut conn = self.conn.clone();
        self.timed(inv.invoke_async::<i64>(&mut conn))
            .await
            .map(|_| ())
    }
}
