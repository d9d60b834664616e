//! Secret tokens handed to people: session ids, invitation ids and the like. The plaintext goes
//! to the person once; only its SHA-256 is stored, so a copy of the database yields no token
//! that works. All randomness comes from the OS generator, never from a uuid v7 or a counter.

use tollgate_domain::secret::{random_token, sha256_hex, RandomError};

/// Random bytes in a secret token: 256 bits, far above the 128 an online guesser could dent.
pub const SECRET_TOKEN_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("generating a secret token failed")]
    Random(#[from] RandomError),
}

/// A new secret token and the hash to store: `(plaintext, sha256 hex)`. The plaintext is
/// URL-safe base64 without padding (43 characters), safe in links and cookies as is.
pub fn new_secret_token() -> Result<(String, String), TokenError> {
    let token = random_token(SECRET_TOKEN_BYTES)?;
    let hash = sha256_hex(&token);
    Ok((token, hash))
}

/// A new invitation id and the hash to store: `(plaintext, sha256 hex)`. The id is a secret
/// token like any other (256 OS-random bits, URL-safe base64): a uuid v4 holds only 122 random
/// bits, below the 128 ASVS asks of a link that sets a password. Ids issued as uuids earlier are
/// still found, since lookups go by the hash of whatever text the link carries.
pub fn new_invitation_id() -> Result<(String, String), TokenError> {
    new_secret_token()
}

/// The stored form of a token presented by a person: SHA-256, lowercase hex.
pub fn hash_token(token: &str) -> String {
    sha256_hex(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn secret_tokens_are_long_random_and_hashed() {
        let (a, a_hash) = new_secret_token().unwrap();
        let (b, _) = new_secret_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(a_hash, sha256_hex(&a));
        assert_eq!(a_hash, hash_token(&a));
        assert_eq!(a_hash.len(), 64);
    }

    #[test]
    fn invitation_ids_carry_256_random_bits_and_are_not_uuids() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let (id, hash) = new_invitation_id().unwrap();
            // 43 base64url characters without padding encode exactly 32 bytes = 256 bits.
            assert_eq!(id.len(), 43, "{id}");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "URL-safe as is: {id}"
            );
            // Not the 8-4-4-4-12 uuid layout, dashed or not.
            assert_ne!(id.len(), 36, "{id}");
            assert_ne!(id.len(), 32, "{id}");
            assert_eq!(hash, hash_token(&id));
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
