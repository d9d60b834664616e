//! Passwords: the strength policy a new password must meet, and argon2id hashing.
//!
//! Hashing and verifying are deliberately slow (tens of milliseconds of CPU and 19 MiB of
//! memory), so they run on tokio's blocking pool and never stall the async workers, a few at a
//! time, each in a work area allocated once and reused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::password_hash::Error as HashError;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use zxcvbn::Score;

/// Default shortest password, in characters (LiteLLM's default).
pub const DEFAULT_MIN_LEN: usize = 12;
/// No configuration may allow passwords shorter than this (LiteLLM's floor).
pub const MIN_LEN_FLOOR: usize = 8;
/// Default longest password, in characters: long enough for any passphrase, short enough that
/// nobody can make the server hash megabytes.
pub const DEFAULT_MAX_LEN: usize = 1024;
/// A configured maximum may not go below this, so passphrases and manager-generated
/// passwords always fit.
pub const MAX_LEN_FLOOR: usize = 128;

/// argon2id cost (OWASP's first recommended setting): 19 MiB of memory, 2 passes, 1 lane.
pub const ARGON2_M_COST_KIB: u32 = 19 * 1024;
pub const ARGON2_T_COST: u32 = 2;
pub const ARGON2_P_COST: u32 = 1;

/// zxcvbn score a password must reach: 3 means about 10^10 guesses, which resists offline
/// guessing against an argon2id hash for a long time.
const MIN_SCORE: Score = Score::Three;

/// Which passwords are accepted when someone sets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_len: usize,
    max_len: usize,
}

/// A configured policy that would weaken the guarantees above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyConfigError {
    #[error("the minimum password length {min_len} is below the allowed floor of {MIN_LEN_FLOOR}")]
    MinTooLow { min_len: usize },
    #[error("the maximum password length {max_len} is below the allowed floor of {MAX_LEN_FLOOR}")]
    MaxTooLow { max_len: usize },
    #[error("the minimum password length {min_len} is above the maximum {max_len}")]
    MinAboveMax { min_len: usize, max_len: usize },
}

/// Why a password was refused. The messages are written for a person setting a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("Password must be at least {min_len} characters")]
    TooShort { min_len: usize },
    #[error("Password must be at most {max_len} characters")]
    TooLong { max_len: usize },
    /// `hint` is zxcvbn's warning (or, lacking one, its first suggestion).
    #[error("This password is too easy to guess{}", hint_suffix(.hint))]
    TooEasyToGuess { hint: Option<String> },
}

fn hint_suffix(hint: &Option<String>) -> String {
    match hint {
        Some(h) => format!(": {h}"),
        None => ". Try a longer phrase of several unrelated words.".to_string(),
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_len: DEFAULT_MIN_LEN,
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

impl PasswordPolicy {
    /// A policy with the given bounds, in characters. Refuses bounds below the floors rather than
    /// raising them silently, so a mistyped setting is noticed at start.
    pub fn new(min_len: usize, max_len: usize) -> Result<Self, PolicyConfigError> {
        if min_len < MIN_LEN_FLOOR {
            return Err(PolicyConfigError::MinTooLow { min_len });
        }
        if max_len < MAX_LEN_FLOOR {
            return Err(PolicyConfigError::MaxTooLow { max_len });
        }
        if min_len > max_len {
            return Err(PolicyConfigError::MinAboveMax { min_len, max_len });
        }
        Ok(PasswordPolicy { min_len, max_len })
    }

    pub fn min_len(&self) -> usize {
        self.min_len
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Checks a new password. `user_inputs` are words about the person (email, name, alias)
    /// that must not make the password guessable; their pieces count too (see `personal_words`).
    ///
    /// Length counts characters, not bytes, and the password is never trimmed or truncated.
    /// zxcvbn rates only the first 100 characters (its own guard against slow inputs); a
    /// longer password is at least as hard to guess as its first 100 characters.
    pub fn check(&self, password: &str, user_inputs: &[&str]) -> Result<(), PolicyError> {
        let len = password.chars().count();
        if len < self.min_len {
            return Err(PolicyError::TooShort {
                min_len: self.min_len,
            });
        }
        if len > self.max_len {
            return Err(PolicyError::TooLong {
                max_len: self.max_len,
            });
        }

        let words = personal_words(user_inputs);
        let inputs: Vec<&str> = words.iter().map(String::as_str).collect();
        let estimate = zxcvbn::zxcvbn(password, &inputs);
        if estimate.score() >= MIN_SCORE {
            return Ok(());
        }
        let hint = estimate.feedback().and_then(|f| {
            f.warning()
                .map(|w| w.to_string())
                .or_else(|| f.suggestions().first().map(|s| s.to_string()))
        });
        Err(PolicyError::TooEasyToGuess { hint })
    }
}

/// The inputs as given, plus the pieces people build passwords from: an email's local part, and
/// the words of a name or address joined and alone ("Jonathan Quigley", "j.quigley").
fn personal_words(user_inputs: &[&str]) -> Vec<String> {
    let mut words = Vec::new();
    for input in user_inputs.iter().map(|s| s.trim()) {
        if input.is_empty() {
            continue;
        }
        words.push(input.to_string());
        let name = input.split_once('@').map_or(input, |(local, _)| local);
        if name != input && !name.is_empty() {
            words.push(name.to_string());
        }
        let pieces: Vec<&str> = name
            .split(|c: char| !c.is_alphanumeric())
            .filter(|p| p.chars().count() >= 3)
            .collect();
        if pieces.len() > 1 {
            words.push(pieces.concat());
        }
        words.extend(
            pieces
                .into_iter()
                .filter(|p| *p != name)
                .map(str::to_string),
        );
    }
    words
}

/// Hashing or verifying could not be carried out (as opposed to a wrong password, which is
/// `Ok(false)`). No variant ever carries the password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Every KDF slot is taken and the short queue is full (or waiting took too long). Callers
    /// answer 503 with `Retry-After` ([`BUSY_RETRY_AFTER`]); nothing was checked or stored.
    #[error("too many passwords are being checked at once; try again shortly")]
    Busy,
    #[error("the argon2 parameters are invalid")]
    Params(#[source] argon2::Error),
    #[error("hashing a password failed")]
    Hash(#[source] HashError),
    // getrandom's error is not a std error here (no "std" feature), so it goes in the message.
    #[error("the operating system's random source failed while making a salt: {0}")]
    Salt(getrandom::Error),
    #[error("no memory for the password hashing work area ({kib} KiB)")]
    OutOfMemory { kib: usize },
    #[error("a stored password hash is not a valid argon2 PHC string")]
    StoredHash(#[source] HashError),
    #[error("verifying a password against its stored hash failed")]
    Verify(#[source] HashError),
    #[error("the password hashing task did not complete")]
    Task(#[from] tokio::task::JoinError),
}

/// How long a caller turned away with [`PasswordError::Busy`] should wait before trying again.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Most KDF runs at once, whatever the machine: each holds 19 MiB.
const MAX_SLOTS: usize = 4;
/// Callers allowed to wait for a slot, per slot, before the next is turned away. Waiters hold
/// no work area, only their place, so the queue absorbs ordinary bursts (several people
/// signing in at once) at no memory cost.
const WAITERS_PER_SLOT: usize = 8;
/// Longest wait for a slot. A queue this short drains in a fraction of a second; waiting longer
/// means the machine is overloaded, and a quick 503 serves the caller better.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// Hashes a password with argon2id and a fresh random salt from the OS; returns the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) to store.
pub async fn hash(password: String) -> Result<String, PasswordError> {
    pool()
        .run(move |memory| hash_with(memory, password.as_bytes()))
        .await
}

/// Whether `password` matches the stored hash. With no stored hash (unknown email, or a user
/// who never set a password) the password is checked against a dummy hash of the same cost and
/// the answer is `false`, so a login for an unknown email takes as long as a wrong password.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool, PasswordError> {
    pool()
        .run(move |memory| match phc {
            Some(phc) => verify_with(memory, password.as_bytes(), &phc),
            None => {
                let dummy = dummy_hash(memory)?;
                verify_with(memory, password.as_bytes(), dummy)?;
                Ok(false)
            }
        })
        .await
}

/// Computes the dummy hash ahead of time, so even the first unknown-email login costs one KDF
/// run, not two. Optional: [`verify`] computes it on first use otherwise.
pub async fn warm_up() -> Result<(), PasswordError> {
    pool().run(|memory| dummy_hash(memory).map(|_| ())).await
}

/// Slots: half the cores (at least 1, at most [`MAX_SLOTS`]), so a login flood leaves the other
/// half to the async workers that serve inference.
fn pool() -> &'static Arc<KdfPool> {
    static POOL: OnceLock<Arc<KdfPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let slots = (cores / 2).clamp(1, MAX_SLOTS);
        Arc::new(KdfPool::new(slots, WAITERS_PER_SLOT, MAX_WAIT))
    })
}

/// Bounds argon2 work and memory. Each run needs 19 MiB: unbounded, a flood of logins would hold
/// one per blocking thread (hundreds), and the allocator keeps much of it afterwards. Here at
/// most `slots` runs go at once, each in a work area allocated once and reused; a few callers
/// may wait briefly for a slot, the rest get [`PasswordError::Busy`] at once.
struct KdfPool {
    slots: Arc<Semaphore>,
    /// Callers inside the pool: running or waiting for a slot.
    inside: AtomicUsize,
    capacity: usize,
    max_wait: Duration,
    /// Idle work areas; never more than `slots`, since only a slot holder takes one.
    areas: Mutex<Vec<Box<[Block]>>>,
    /// Work areas allocated so far (for tests: reuse means this stays at most `slots`).
    allocated: AtomicUsize,
}

impl KdfPool {
    fn new(slots: usize, waiters_per_slot: usize, max_wait: Duration) -> Self {
        let slots = slots.max(1);
        KdfPool {
            slots: Arc::new(Semaphore::new(slots)),
            inside: AtomicUsize::new(0),
            capacity: slots.saturating_mul(waiters_per_slot.saturating_add(1)),
            max_wait,
            areas: Mutex::new(Vec::new()),
            allocated: AtomicUsize::new(0),
        }
    }

    /// Runs `job` on the blocking pool with a work area, once a slot is free.
    async fn run<T, F>(self: &Arc<Self>, job: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce(&mut [Block]) -> Result<T, PasswordError> + Send + 'static,
    {
        let ticket = Ticket::take(self)?;
        let slot = tokio::time::timeout(self.max_wait, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Busy)?;
        let pool = Arc::clone(self);
        // The ticket and the slot move into the blocking task: if the caller goes away (a
        // client hanging up), they are still held until the KDF run really ends.
        tokio::task::spawn_blocking(move || {
            let _held = (ticket, slot);
            let mut area = pool.take_area()?;
            let result = job(&mut area);
            pool.put_area(area);
            result
        })
        .await?
    }

    fn take_area(&self) -> Result<Box<[Block]>, PasswordError> {
        if let Some(area) = self.lock_areas().pop() {
            return Ok(area);
        }
        let blocks = default_params()?.block_count();
        let mut area = Vec::new();
        area.try_reserve_exact(blocks)
            .map_err(|_| PasswordError::OutOfMemory { kib: blocks })?;
        area.resize(blocks, Block::new());
        self.allocated.fetch_add(1, Ordering::Relaxed);
        Ok(area.into_boxed_slice())
    }

    fn put_area(&self, area: Box<[Block]>) {
        self.lock_areas().push(area);
    }

    fn lock_areas(&self) -> std::sync::MutexGuard<'_, Vec<Box<[Block]>>> {
        // A list of buffers cannot be left inconsistent by a panicking holder.
        self.areas.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A place inside the pool (running or queued); given back on drop.
struct Ticket(Arc<KdfPool>);

impl Ticket {
    fn take(pool: &Arc<KdfPool>) -> Result<Ticket, PasswordError> {
        pool.inside
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < pool.capacity).then_some(n + 1)
            })
            .map_err(|_| PasswordError::Busy)?;
        Ok(Ticket(Arc::clone(pool)))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::AcqRel);
    }
}

fn default_params() -> Result<Params, PasswordError> {
    Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(PasswordError::Params)
}

/// argon2id with the current parameters, computed in `memory`; builds the PHC string the
/// argon2 crate's own `hash_password` would.
fn hash_with(memory: &mut [Block], password: &[u8]) -> Result<String, PasswordError> {
    let params = default_params()?;
    let mut salt = [0u8; argon2::RECOMMENDED_SALT_LEN];
    getrandom::fill(&mut salt).map_err(PasswordError::Salt)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut out, &mut *memory)
        .map_err(|e| PasswordError::Hash(e.into()))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(PasswordError::Hash)?,
        salt: Some(Salt::new(&salt).map_err(|e| PasswordError::Hash(e.into()))?),
        hash: Some(Output::new(&out).map_err(|e| PasswordError::Hash(e.into()))?),
    };
    Ok(phc.to_string())
}

/// Recomputes the stored hash's KDF with its own algorithm, version and parameters and compares
/// in constant time. Work fitting in `memory` (our parameters or cheaper) is done there; a
/// costlier stored hash gets its own allocation, still inside a slot.
fn verify_with(memory: &mut [Block], password: &[u8], phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::StoredHash(e.into()))?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        // Nothing to compare against: no password matches (as the argon2 crate answers).
        return Ok(false);
    };
    let verify_err = |e: argon2::Error| PasswordError::Verify(e.into());
    let algorithm = Algorithm::new(parsed.algorithm.as_str()).map_err(verify_err)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(verify_err)?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(PasswordError::Verify)?;
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer
        .get_mut(..expected.len())
        .ok_or(PasswordError::Verify(HashError::OutputSize))?;
    let kdf = Argon2::new(algorithm, version, params.clone());
    if params.block_count() <= memory.len() {
        kdf.hash_password_into_with_memory(password, salt, out, &mut *memory)
    } else {
        kdf.hash_password_into(password, salt, out)
    }
    .map_err(verify_err)?;
    Ok(bool::from(out.ct_eq(expected.as_bytes())))
}

static DUMMY_HASH: OnceLock<String> = OnceLock::new();

/// A hash of a fixed throwaway password with the current parameters, computed once per process.
/// Nothing can log in with it: [`verify`] answers `false` on this path whatever the input.
fn dummy_hash(memory: &mut [Block]) -> Result<&'static str, PasswordError> {
    if let Some(h) = DUMMY_HASH.get() {
        return Ok(h);
    }
    let computed = hash_with(memory, b"tollgate dummy password, never matches")?;
    // Two first callers may both compute one; either result is as good.
    Ok(DUMMY_HASH.get_or_init(|| computed))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A strong passphrase; reused to keep the (slow in debug builds) KDF runs few.
    const GOOD: &str = "correct horse battery staple violet";

    #[tokio::test]
    async fn hash_and_verify_round_trip() {
        let phc = hash(GOOD.to_string()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains(GOOD));
        assert!(verify(GOOD.to_string(), Some(phc.clone())).await.unwrap());
        assert!(
            !verify("correct horse battery staple violeT".to_string(), Some(phc))
                .await
                .unwrap()
        );
    }

    /// A pool of its own, so these tests neither wait on nor crowd the process-wide one.
    fn small_pool(slots: usize, waiters_per_slot: usize, max_wait: Duration) -> Arc<KdfPool> {
        Arc::new(KdfPool::new(slots, waiters_per_slot, max_wait))
    }

    async fn pooled_verify(
        pool: &Arc<KdfPool>,
        pw: &str,
        phc: &str,
    ) -> Result<bool, PasswordError> {
        let (pw, phc) = (pw.to_string(), phc.to_string());
        pool.run(move |m| verify_with(m, pw.as_bytes(), &phc)).await
    }

    fn plain_hash(algorithm: Algorithm, version: Version, params: Params, pw: &str) -> String {
        use argon2::PasswordHasher;
        Argon2::new(algorithm, version, params)
            .hash_password(pw.as_bytes())
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn callers_beyond_the_slots_and_the_queue_are_turned_away() {
        // One slot and one waiter: of four simultaneous callers two get in, two are refused.
        let pool = small_pool(1, 1, Duration::from_secs(30));
        let phc = hash(GOOD.to_string()).await.unwrap();
        let started = std::time::Instant::now();
        let (a, b, c, d) = tokio::join!(
            pooled_verify(&pool, GOOD, &phc),
            pooled_verify(&pool, GOOD, &phc),
            pooled_verify(&pool, GOOD, &phc),
            pooled_verify(&pool, GOOD, &phc),
        );
        let results = [a, b, c, d];
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(PasswordError::Busy)))
            .count();
        let ok = results.iter().filter(|r| matches!(r, Ok(true))).count();
        assert_eq!((ok, busy), (2, 2), "{results:?}");
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(pool.inside.load(Ordering::Acquire), 0, "tickets given back");
        // Once the pool is free again, callers get in.
        assert!(pooled_verify(&pool, GOOD, &phc).await.unwrap());
    }

    #[tokio::test]
    async fn a_caller_that_waits_too_long_for_a_slot_is_turned_away() {
        let pool = small_pool(1, 4, Duration::from_millis(50));
        let phc = hash(GOOD.to_string()).await.unwrap();
        let held = Arc::clone(&pool.slots).acquire_owned().await.unwrap();
        let err = pooled_verify(&pool, GOOD, &phc).await.unwrap_err();
        assert!(matches!(err, PasswordError::Busy), "{err:?}");
        assert!(!err.to_string().contains(GOOD));
        drop(held);
        assert!(pooled_verify(&pool, GOOD, &phc).await.unwrap());
    }

    #[tokio::test]
    async fn work_areas_are_allocated_once_per_slot_and_reused() {
        let pool = small_pool(2, 8, Duration::from_secs(30));
        let phc = hash(GOOD.to_string()).await.unwrap();
        let calls: Vec<_> = (0..6)
            .map(|i| {
                let (pool, phc) = (Arc::clone(&pool), phc.clone());
                let pw = if i % 2 == 0 { GOOD } else { "wrong password" };
                tokio::spawn(async move { pooled_verify(&pool, pw, &phc).await.unwrap() })
            })
            .collect();
        let mut answers = Vec::new();
        for c in calls {
            answers.push(c.await.unwrap());
        }
        assert_eq!(answers, [true, false, true, false, true, false]);
        for _ in 0..3 {
            let phc = pool.run(|m| hash_with(m, GOOD.as_bytes())).await.unwrap();
            // A reused (dirty) work area gives the same answers as a fresh one.
            assert!(pooled_verify(&pool, GOOD, &phc).await.unwrap());
        }
        let allocated = pool.allocated.load(Ordering::Relaxed);
        assert!((1..=2).contains(&allocated), "{allocated} work areas");
        assert!(pool.lock_areas().len() <= 2);
    }

    #[tokio::test]
    async fn pooled_hashes_and_the_argon2_crate_agree() {
        use argon2::PasswordVerifier;
        let ours = hash(GOOD.to_string()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        Argon2::default()
            .verify_password(GOOD.as_bytes(), &parsed)
            .expect("the argon2 crate accepts our hash");
        assert!(Argon2::default()
            .verify_password(b"wrong password", &parsed)
            .is_err());

        // A hash stored before pooling (the argon2 crate's own `hash_password`).
        let theirs = plain_hash(
            Algorithm::Argon2id,
            Version::V0x13,
            default_params().unwrap(),
            GOOD,
        );
        assert_eq!(ours[..30], theirs[..30], "{ours} / {theirs}");
        assert_eq!(ours.len(), theirs.len());
        assert!(verify(GOOD.to_string(), Some(theirs.clone()))
            .await
            .unwrap());
        assert!(!verify("wrong password".to_string(), Some(theirs))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn stored_hashes_with_other_parameters_still_verify() {
        let pool = small_pool(1, 4, Duration::from_secs(30));
        let cases = [
            // Cheaper than ours, several lanes: computed in the pooled work area.
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(8 * 1024, 3, 2, Some(24)),
            ),
            (
                Algorithm::Argon2i,
                Version::V0x13,
                Params::new(19 * 1024, 2, 1, None),
            ),
            (
                Algorithm::Argon2d,
                Version::V0x10,
                Params::new(4 * 1024, 1, 1, None),
            ),
            // Costlier than ours: its own allocation, still inside a slot.
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(24 * 1024, 1, 1, None),
            ),
        ];
        for (algorithm, version, params) in cases {
            let phc = plain_hash(algorithm, version, params.unwrap(), GOOD);
            assert!(pooled_verify(&pool, GOOD, &phc).await.unwrap(), "{phc}");
            assert!(
                !pooled_verify(&pool, "wrong password", &phc).await.unwrap(),
                "{phc}"
            );
        }
        assert_eq!(pool.allocated.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn salts_are_random() {
        let a = hash(GOOD.to_string()).await.unwrap();
        let b = hash(GOOD.to_string()).await.unwrap();
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn no_stored_hash_runs_the_kdf_and_answers_false() {
        assert!(!verify(GOOD.to_string(), None).await.unwrap());
        // The unknown-user path went through a real argon2id hash with the live parameters.
        let dummy = DUMMY_HASH.get().expect("dummy hash computed by verify");
        assert!(
            dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{dummy}"
        );
        // Even the dummy's own password does not log in on this path.
        assert!(
            !verify("tollgate dummy password, never matches".to_string(), None)
                .await
                .unwrap()
        );
        warm_up().await.unwrap();
    }

    #[tokio::test]
    async fn long_passwords_are_not_truncated() {
        let words = "violet otter granite lantern quiver mosaic tundra falcon ember walnut \
                     harbor meadow cobalt thistle orbit saffron glacier pepper canyon willow \
                     marble comet juniper basalt heron quartz lilac bramble sorrel ";
        let mut long: String = words.split_whitespace().collect::<Vec<_>>().join("-");
        long.truncate(199);
        long.push('x');
        assert_eq!(long.chars().count(), 200);
        PasswordPolicy::default().check(&long, &[]).unwrap();

        let phc = hash(long.clone()).await.unwrap();
        assert!(verify(long.clone(), Some(phc.clone())).await.unwrap());
        let mut last_changed = long[..199].to_string();
        last_changed.push('2');
        assert!(!verify(last_changed, Some(phc)).await.unwrap());
    }

    #[tokio::test]
    async fn a_malformed_stored_hash_is_an_error_not_a_mismatch() {
        let err = verify(GOOD.to_string(), Some("not a hash".to_string()))
            .await
            .unwrap_err();
        assert!(matches!(err, PasswordError::StoredHash(_)), "{err:?}");
        assert!(!err.to_string().contains(GOOD));
    }

    #[test]
    fn length_limits_count_characters() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("short", &[]),
            Err(PolicyError::TooShort { min_len: 12 })
        );
        assert_eq!(
            policy.check("short", &[]).unwrap_err().to_string(),
            "Password must be at least 12 characters"
        );
        // 11 characters but 22 bytes: still too short.
        assert!(matches!(
            policy.check("ééééééééééé", &[]),
            Err(PolicyError::TooShort { .. })
        ));
        let too_long = "x".repeat(1025);
        assert_eq!(
            policy.check(&too_long, &[]),
            Err(PolicyError::TooLong { max_len: 1024 })
        );
    }

    #[test]
    fn guessable_passwords_are_refused_with_a_readable_reason() {
        let policy = PasswordPolicy::default();
        for weak in [
            "password1234",
            "qwertyuiop123",
            "aaaaaaaaaaaaaaaa",
            "123456789012",
        ] {
            let err = policy.check(weak, &[]).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("This password is too easy to guess"),
                "{weak}: {err}"
            );
        }
        let err = policy.check("password1234", &[]).unwrap_err();
        assert!(
            matches!(&err, PolicyError::TooEasyToGuess { hint: Some(_) }),
            "{err:?}"
        );
        assert!(err.to_string().contains(": "), "{err}");
    }

    #[test]
    fn the_persons_own_details_do_not_count_as_strength() {
        let policy = PasswordPolicy::default();
        let password = "jonathanquigley2024";
        let inputs = ["jonathanquigley@example.com", "Jonathan Quigley"];
        // Strong enough for a stranger, guessable for someone who knows the person.
        policy.check(password, &[]).unwrap();
        assert!(policy.check(password, &inputs).is_err());
        // The email's local part counts on its own, and so do a name's words.
        assert!(policy
            .check(password, &["jonathanquigley@example.com"])
            .is_err());
        assert!(policy.check(password, &["Jonathan Quigley"]).is_err());
        assert_eq!(
            personal_words(&["j.quigley@example.com", " Jonathan Quigley ", ""]),
            [
                "j.quigley@example.com",
                "j.quigley",
                "quigley",
                "Jonathan Quigley",
                "JonathanQuigley",
                "Jonathan",
                "Quigley"
            ]
        );
        // An unrelated strong password passes with the same inputs.
        policy.check(GOOD, &inputs).unwrap();
    }

    #[test]
    fn strong_passwords_pass() {
        let policy = PasswordPolicy::default();
        policy.check(GOOD, &["alice@example.com"]).unwrap();
        policy.check("Tr0ub4dor&3-velvet-otter", &[]).unwrap();
    }

    #[test]
    fn configuration_has_floors() {
        assert_eq!(
            PasswordPolicy::new(7, 1024),
            Err(PolicyConfigError::MinTooLow { min_len: 7 })
        );
        assert_eq!(
            PasswordPolicy::new(12, 127),
            Err(PolicyConfigError::MaxTooLow { max_len: 127 })
        );
        assert_eq!(
            PasswordPolicy::new(200, 150),
            Err(PolicyConfigError::MinAboveMax {
                min_len: 200,
                max_len: 150
            })
        );
        let p = PasswordPolicy::new(8, 128).unwrap();
        assert_eq!((p.min_len(), p.max_len()), (8, 128));
        let d = PasswordPolicy::default();
        assert_eq!((d.min_len(), d.max_len()), (12, 1024));
        assert!(p.check("short", &[]).is_err());
    }
}
