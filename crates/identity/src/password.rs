//! Passwords: the strength policy a new password must meet, and argon2id hashing.
//!
//! Hashing and verifying are deliberately slow (tens of milliseconds of CPU and 19 MiB of
//! memory), so they run on tokio's blocking pool and never stall the async workers.

use std::sync::OnceLock;

use argon2::password_hash::Error as HashError;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
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
    #[error("the argon2 parameters are invalid")]
    Params(#[source] argon2::Error),
    #[error("hashing a password failed")]
    Hash(#[source] HashError),
    #[error("a stored password hash is not a valid argon2 PHC string")]
    StoredHash(#[source] HashError),
    #[error("verifying a password against its stored hash failed")]
    Verify(#[source] HashError),
    #[error("the password hashing task did not complete")]
    Task(#[from] tokio::task::JoinError),
}

/// Hashes a password with argon2id and a fresh random salt from the OS; returns the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) to store.
pub async fn hash(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
}

/// Whether `password` matches the stored hash. With no stored hash (unknown email, or a user
/// who never set a password) the password is checked against a dummy hash of the same cost and
/// the answer is `false`, so a login for an unknown email takes as long as a wrong password.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_blocking(&password, &phc),
        None => {
            verify_blocking(&password, dummy_hash()?)?;
            Ok(false)
        }
    })
    .await?
}

/// Computes the dummy hash ahead of time, so even the first unknown-email login costs one KDF
/// run, not two. Optional: [`verify`] computes it on first use otherwise.
pub async fn warm_up() -> Result<(), PasswordError> {
    tokio::task::spawn_blocking(|| dummy_hash().map(|_| ())).await?
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(PasswordError::Params)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let phc = hasher()?
        .hash_password(password.as_bytes())
        .map_err(PasswordError::Hash)?;
    Ok(phc.to_string())
}

fn verify_blocking(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::StoredHash(e.into()))?;
    // argon2 takes the cost from the stored hash and compares in constant time.
    match hasher()?.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(HashError::PasswordInvalid) => Ok(false),
        Err(e) => Err(PasswordError::Verify(e)),
    }
}

static DUMMY_HASH: OnceLock<String> = OnceLock::new();

/// A hash of a fixed throwaway password with the current parameters, computed once per process.
/// Nothing can log in with it: [`verify`] answers `false` on this path whatever the input.
fn dummy_hash() -> Result<&'static str, PasswordError> {
    if let Some(h) = DUMMY_HASH.get() {
        return Ok(h);
    }
    let computed = hash_blocking("tollgate dummy password, never matches")?;
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
