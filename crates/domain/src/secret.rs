//! Secrets: generation from the OS random source, hashing for storage, constant-time comparison.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomError(String);

/// `bytes` random bytes from the OS, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> Result<String, RandomError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// A new key in LiteLLM's format: `sk-` followed by 256 random bits.
pub fn new_api_key() -> Result<String, RandomError> {
    Ok(format!("sk-{}", random_token(32)?))
}

/// SHA-256 of the whole secret, as lowercase hex: how LiteLLM stores keys, so a LiteLLM database
/// can be imported with its keys still working.
pub fn sha256_hex(secret: &str) -> String {
    digest_hex(&sha256(secret))
}

/// A digest as lowercase hex. Written here because `hex::encode` collects its output char by
/// char, ten times the work, and every virtual-key call encodes its key's digest.
pub fn digest_hex(digest: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

pub fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares two digests without leaking where they differ.
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// A display form that reveals only the last four characters: `sk-...abcd`.
pub fn mask(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if secret.chars().count() <= 8 {
        "****".to_string()
    } else {
        format!("sk-...{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_long() {
        let a = new_api_key().unwrap();
        let b = new_api_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("sk-"));
        assert_eq!(a.len(), 3 + 43);
    }

    #[test]
    fn hash_matches_known_sha256() {
        assert_eq!(
            sha256_hex("sk-1234"),
            "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
        );
    }

    #[test]
    fn digests_are_written_as_hex_encodes_them() {
        for secret in [
            "",
            "sk-1234",
            "\u{0}\u{ff}",
            "a much longer secret with spaces",
        ] {
            let d = sha256(secret);
            assert_eq!(digest_hex(&d), hex::encode(d));
        }
        assert_eq!(digest_hex(&[0xff; 32]), "f".repeat(64));
        assert_eq!(digest_hex(&[0; 32]), "0".repeat(64));
    }

    #[test]
    fn digest_comparison() {
        assert!(digest_eq(&sha256("a"), &sha256("a")));
        assert!(!digest_eq(&sha256("a"), &sha256("b")));
    }

    #[test]
    fn masking_hides_all_but_the_tail() {
        assert_eq!(mask("sk-abcdefghijkl"), "sk-...ijkl");
        assert_eq!(mask("short"), "****");
    }
}
