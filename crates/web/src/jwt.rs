//! Compact HS256 tokens, in the shape LiteLLM's UI and scripts expect from `/v2/login` and the
//! onboarding endpoints. Only Tollgate issues and checks them, with a key kept in the store.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

pub fn sign<C: Serialize>(key: &[u8], claims: &C) -> String {
    let header = URL_SAFE_NO_PAD.encode(HEADER);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let sig = mac(key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Checks the signature and `exp` (unix seconds, required), then decodes the claims.
pub fn verify<C: DeserializeOwned>(key: &[u8], token: &str, now_unix: i64) -> Result<C, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    let mut m = HmacSha256::new_from_slice(key).map_err(|_| JwtError::Malformed)?;
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    m.verify_slice(&sig).map_err(|_| JwtError::BadSignature)?;
    let header = URL_SAFE_NO_PAD.decode(h).map_err(|_| JwtError::Malformed)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| JwtError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(JwtError::Malformed);
    }
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| JwtError::Malformed)?;
    let v: serde_json::Value = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;
    let exp = v
        .get("exp")
        .and_then(|e| e.as_i64())
        .ok_or(JwtError::Malformed)?;
    if exp <= now_unix {
        return Err(JwtError::Expired);
    }
    serde_json::from_value(v).map_err(|_| JwtError::Malformed)
}

fn mac(key: &[u8], input: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct C {
        sub: String,
        exp: i64,
    }

    #[test]
    fn round_trip_and_rejections() {
        let key = b"0123456789abcdef0123456789abcdef";
        let t = sign(
            key,
            &C {
                sub: "u1".into(),
                exp: 100,
            },
        );
        assert_eq!(
            verify::<C>(key, &t, 99).unwrap(),
            C {
                sub: "u1".into(),
                exp: 100
            }
        );
        assert_eq!(verify::<C>(key, &t, 100), Err(JwtError::Expired));
        assert_eq!(
            verify::<C>(b"other-key-other-key-other-key-00", &t, 1),
            Err(JwtError::BadSignature)
        );
        let mut tampered = t.clone();
        tampered.insert(t.find('.').unwrap() + 2, 'x');
        assert!(verify::<C>(key, &tampered, 1).is_err());
        assert_eq!(verify::<C>(key, "a.b", 1), Err(JwtError::Malformed));
    }
}
