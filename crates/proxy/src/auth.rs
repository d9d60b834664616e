//! Who is calling: the key is read from every header LiteLLM accepts and checked against the
//! master key's digest in constant time. (Virtual keys join here with the keys issue.)

use axum::http::HeaderMap;
use tollgate_domain::secret::{digest_eq, digest_hex, sha256};

use crate::error::ApiError;

/// Headers that may carry the key, after `Authorization`, in LiteLLM's order.
const KEY_HEADERS: &[&str] = &[
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "ocp-apim-subscription-key",
    "x-litellm-api-key",
];

/// The authenticated caller of an inference route.
#[derive(Debug, Clone)]
pub struct Caller {
    /// SHA-256 hex of the key used, as stored in spend logs.
    pub key_hash: String,
    pub is_master: bool,
    /// The virtual key, when one was used.
    pub key: Option<std::sync::Arc<crate::keys::KeyInfo>>,
}

impl Caller {
    pub fn may_use(&self, model: &str) -> bool {
        self.key.as_ref().is_none_or(|k| k.may_use(model))
    }

    pub fn user_id(&self) -> Option<&str> {
        self.key.as_ref().and_then(|k| k.user_id.as_deref())
    }

    pub fn team_id(&self) -> Option<&str> {
        self.key.as_ref().and_then(|k| k.team_id.as_deref())
    }
}

#[derive(Clone)]
pub struct MasterKey {
    digest: [u8; 32],
    hash_hex: String,
}

impl MasterKey {
    pub fn from_plaintext(key: &str) -> MasterKey {
        let digest = sha256(key);
        MasterKey {
            hash_hex: digest_hex(&digest),
            digest,
        }
    }

    /// For a generated master key only its hash is kept.
    pub fn from_hash_hex(hex_digest: &str) -> Option<MasterKey> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut bytes).ok()?;
        Some(MasterKey {
            digest: bytes,
            hash_hex: hex_digest.to_ascii_lowercase(),
        })
    }

    pub fn hash_hex(&self) -> &str {
        &self.hash_hex
    }

    /// Constant-time check of a presented secret against the master key.
    pub fn matches(&self, presented: &str) -> bool {
        digest_eq(&sha256(presented), &self.digest)
    }
}

/// The presented key, from `Authorization: Bearer …` or one of the other key headers.
pub fn presented_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| ApiError::auth("Authentication Error, Malformed API Key passed in."))?
            .trim();
        return match v.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() => {
                Ok(key.trim())
            }
            _ => Err(ApiError::auth(
                "Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.",
            )),
        };
    }
    for name in KEY_HEADERS {
        if let Some(v) = headers.get(*name) {
            let v = v
                .to_str()
                .map_err(|_| ApiError::auth("Authentication Error, Malformed API Key passed in."))?
                .trim();
            let v = v.strip_prefix("Bearer ").unwrap_or(v).trim();
            if !v.is_empty() {
                return Ok(v);
            }
        }
    }
    Err(ApiError::auth(
        "Authentication Error, No api key passed in.",
    ))
}

/// The master key only (for callers that have no store).
pub fn authenticate(master: &MasterKey, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let key = presented_key(headers)?;
    if digest_eq(&sha256(key), &master.digest) {
        return Ok(master_caller(master));
    }
    Err(unknown_key(key))
}

fn master_caller(master: &MasterKey) -> Caller {
    Caller {
        key_hash: master.hash_hex.clone(),
        is_master: true,
        key: None,
    }
}

fn unknown_key(key: &str) -> ApiError {
    if !key.starts_with("sk-") {
        // Never echo the key itself, not even partly: it may be a real secret from elsewhere.
        return ApiError::auth(
            "Authentication Error, LiteLLM Virtual Key expected. Expected to start with 'sk-'.",
        );
    }
    ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "token_not_found_in_db",
        "Authentication Error, Invalid proxy server token passed. Unable to find token in cache or `LiteLLM_VerificationTokenTable`",
    )
}

/// Keys of read-only admins may list models but not call them.
pub fn refuse_read_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.key.as_ref().is_some_and(|k| k.owner_is_admin_viewer) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "auth_error",
            "user not allowed to access this route, role= proxy_admin_viewer",
        ));
    }
    Ok(())
}

/// The master key or a virtual key: blocked and expired keys are refused.
pub async fn authenticate_call(
    state: &crate::state::ProxyState,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let key = presented_key(headers)?;
    let digest = sha256(key);
    if digest_eq(&digest, &state.master_key.digest) {
        return Ok(master_caller(&state.master_key));
    }
    if !key.starts_with("sk-") {
        return Err(unknown_key(key));
    }
    let token = digest_hex(&digest);
    let info = state.keys.get(&state.store, &token).await.map_err(|e| {
        tracing::error!(error = %e, "key lookup failed");
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "no_db_connection",
            "The key could not be checked because the database is unavailable; try again shortly.",
        )
    })?;
    let Some(info) = info else {
        return Err(unknown_key(key));
    };
    if info.blocked {
        return Err(ApiError::auth(
            "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin.",
        ));
    }
    if info.team_blocked {
        return Err(ApiError::auth(format!(
            "Authentication Error, Team={} is blocked or no longer exists. Update via `/team/unblock` if you're an admin.",
            info.team_id.as_deref().unwrap_or("")
        )));
    }
    if let Some(exp) = info.expires() {
        let now = chrono::Utc::now();
        if exp <= now {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "expired_key",
                format!("Authentication Error - Expired Key. Key Expiry time {exp} and current time {now}"),
            ));
        }
    }
    Ok(Caller {
        key_hash: token,
        is_master: false,
        key: Some(info),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn accepts_every_litellm_header() {
        let m = MasterKey::from_plaintext("sk-master-abcdefghijklmnop");
        for name in [
            "authorization",
            "api-key",
            "x-api-key",
            "x-goog-api-key",
            "ocp-apim-subscription-key",
            "x-litellm-api-key",
        ] {
            let v = if name == "authorization" {
                "Bearer sk-master-abcdefghijklmnop"
            } else {
                "sk-master-abcdefghijklmnop"
            };
            let c = authenticate(&m, &headers(name, v)).unwrap();
            assert!(c.is_master, "{name}");
        }
    }

    #[test]
    fn rejects_missing_malformed_and_wrong_keys() {
        let m = MasterKey::from_plaintext("sk-master-abcdefghijklmnop");
        let e = authenticate(&m, &HeaderMap::new()).unwrap_err();
        assert_eq!(e.status, 401);
        assert!(e.message.contains("No api key"));
        let e =
            authenticate(&m, &headers("authorization", "sk-master-abcdefghijklmnop")).unwrap_err();
        assert!(e.message.contains("Bearer"));
        let e = authenticate(&m, &headers("authorization", "Bearer ' OR '1'='1")).unwrap_err();
        assert_eq!(e.status, 401);
        assert!(!e.message.contains("OR '1'"));
        let e = authenticate(&m, &headers("authorization", "Bearer sk-wrong")).unwrap_err();
        assert_eq!(e.kind, "token_not_found_in_db");
    }

    #[test]
    fn hash_round_trip() {
        let m = MasterKey::from_plaintext("sk-master-abcdefghijklmnop");
        let again = MasterKey::from_hash_hex(m.hash_hex()).unwrap();
        assert!(authenticate(&again, &headers("x-api-key", "sk-master-abcdefghijklmnop")).is_ok());
        assert!(MasterKey::from_hash_hex("zz").is_none());
    }
}
