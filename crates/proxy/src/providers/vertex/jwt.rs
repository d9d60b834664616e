//! The signed assertion a service account trades for an access token (OAuth 2.0 JWT bearer grant):
//! an RS256 JWT naming the account, the scope it asks for and the token endpoint it is for.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::credentials::Credentials;

/// Vertex AI needs the whole Cloud Platform scope.
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How long an assertion is valid: Google accepts at most an hour.
pub(crate) const LIFETIME_SECS: u64 = 3600;

/// The signature could not be made (ring reports no more than that).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the token request could not be signed")]
pub(crate) struct SignError;

/// The claims of an assertion made at `now` (unix seconds).
pub(crate) fn claims(creds: &Credentials, now: u64) -> Value {
    json!({
        "iss": creds.client_email(),
        "scope": SCOPE,
        "aud": creds.token_uri(),
        "iat": now,
        "exp": now + LIFETIME_SECS,
    })
}

/// The compact JWT for `claims`, signed with the account's key.
pub(crate) fn assertion(creds: &Credentials, claims: &Value) -> Result<String, SignError> {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = creds.private_key_id() {
        header["kid"] = json!(kid);
    }
    let mut jwt = String::with_capacity(1024);
    jwt.push_str(&URL_SAFE_NO_PAD.encode(header.to_string()));
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let key = creds.key();
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        jwt.as_bytes(),
        &mut signature,
    )
    .map_err(|_| SignError)?;
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(jwt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::vertex::test_key::service_account_json;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn claims_name_the_account_scope_and_token_endpoint() {
        let creds = Credentials::from_json(&service_account_json()).unwrap();
        assert_eq!(
            claims(&creds, 1_700_000_000),
            json!({
                "iss": "tollgate@test-project.iam.gserviceaccount.com",
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "aud": "http://127.0.0.1:9/token",
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
            })
        );
    }

    #[test]
    fn assertion_is_an_rs256_jwt_the_public_key_verifies() {
        let creds = Credentials::from_json(&service_account_json()).unwrap();
        let c = claims(&creds, 1_700_000_000);
        let jwt = assertion(&creds, &c).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            decode(parts[0]),
            json!({"alg": "RS256", "typ": "JWT", "kid": "test-key-1"})
        );
        assert_eq!(decode(parts[1]), c);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            creds.key().public().as_ref(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &signature).unwrap();
        assert!(public.verify(b"something else", &signature).is_err());
    }
}
