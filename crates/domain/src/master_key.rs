//! Rules for a configured master key: it is the admin credential, so a guessable one is refused.

/// Keys published in LiteLLM's docs and examples, tried first by anyone scanning for gateways.
const KNOWN_EXAMPLE_KEYS: &[&str] = &[
    "sk-1234",
    "sk-12345",
    "sk-123456",
    "sk-1234567890",
    "sk-master-key",
    "sk-my-master-key",
    "sk-litellm",
    "sk-litellm-master-key",
    "sk-admin",
    "sk-test",
    "sk-password",
    "sk-changeme",
];

/// Shortest master key accepted: 16 characters after `sk-` gives ≥ 80 bits even for a
/// hand-typed alphanumeric key.
pub const MIN_LEN: usize = 19;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WeakMasterKey {
    #[error("the master key is empty")]
    Empty,
    #[error("the master key must start with \"sk-\"")]
    NoPrefix,
    #[error("the master key is too short ({len} characters; at least {MIN_LEN} are required)")]
    TooShort { len: usize },
    #[error("the master key is a well-known example value")]
    KnownExample,
    #[error("the master key has too little variety (it repeats a few characters)")]
    LowVariety,
}

pub fn check_strength(key: &str) -> Result<(), WeakMasterKey> {
    let key = key.trim();
    if key.is_empty() {
        return Err(WeakMasterKey::Empty);
    }
    if KNOWN_EXAMPLE_KEYS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
    {
        return Err(WeakMasterKey::KnownExample);
    }
    if !key.starts_with("sk-") {
        return Err(WeakMasterKey::NoPrefix);
    }
    let len = key.chars().count();
    if len < MIN_LEN {
        return Err(WeakMasterKey::TooShort { len });
    }
    let mut distinct: Vec<char> = key[3..].chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 6 {
        return Err(WeakMasterKey::LowVariety);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_weak_keys() {
        assert_eq!(check_strength(""), Err(WeakMasterKey::Empty));
        assert_eq!(check_strength("   "), Err(WeakMasterKey::Empty));
        assert_eq!(check_strength("sk-1234"), Err(WeakMasterKey::KnownExample));
        assert_eq!(check_strength("SK-1234"), Err(WeakMasterKey::KnownExample));
        assert_eq!(
            check_strength("sk-short"),
            Err(WeakMasterKey::TooShort { len: 8 })
        );
        assert_eq!(
            check_strength("abcdefghijklmnopqrstuvwxyz"),
            Err(WeakMasterKey::NoPrefix)
        );
        assert_eq!(
            check_strength("sk-aaaaaaaaaaaaaaaaaaaaaaaa"),
            Err(WeakMasterKey::LowVariety)
        );
    }

    #[test]
    fn accepts_strong_keys() {
        assert_eq!(
            check_strength("sk-bench-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e"),
            Ok(())
        );
    }
}
