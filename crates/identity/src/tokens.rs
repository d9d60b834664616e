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
    #[error("the operating system's random source failed while generating an invitation id: {0}")]
    InvitationRandom(getrandom::Error),
}

/// A new secret token and the hash to store: `(plaintext, sha256 hex)`. The plaintext is
/// URL-safe base64 without padding (43 characters), safe in links and cookies as is.
pub fn new_secret_token() -> Result<(String, String), TokenError> {
    let token = random_token(SECRET_TOKEN_BYTES)?;
    let hash = sha256_hex(&token);
    Ok((token, hash))
}

/// A new invitation id and the hash to store: `(plaintext, sha256 hex)`. The id has the shape
/// of a uuid v4 (LiteLLM's invitation ids are uuids, and clients may validate that), made of
/// 122 OS-random bits.
pub fn new_invitation_id() -> Result<(String, String), TokenError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(TokenError::InvitationRandom)?;
    // RFC 9562: version 4 in the high nibble of byte 6, variant 0b10 in the top bits of byte 8.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let id = format_uuid(&bytes);
    let hash = sha256_hex(&id);
    Ok((id, hash))
}

/// The stored form of a token presented by a person: SHA-256, lowercase hex.
pub fn hash_token(token: &str) -> String {
    sha256_hex(token)
}

fn format_uuid(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
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
    fn invitation_ids_are_uuid_v4_shaped() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let (id, hash) = new_invitation_id().unwrap();
            assert_eq!(id.len(), 36, "{id}");
            for (i, c) in id.char_indices() {
                if matches!(i, 8 | 13 | 18 | 23) {
                    assert_eq!(c, '-', "{id}");
                } else {
                    assert!(c.is_ascii_digit() || ('a'..='f').contains(&c), "{id}");
                }
            }
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
            assert_eq!(hash, hash_token(&id));
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn uuid_layout() {
        let bytes: [u8; 16] = core::array::from_fn(|i| i as u8 * 17);
        assert_eq!(format_uuid(&bytes), "00112233-4455-6677-8899-aabbccddeeff");
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
