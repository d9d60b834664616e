//! A Google service-account key (the JSON file Google hands out), read once when the config is
//! loaded: its identity, its token endpoint and its parsed RSA private key.

use base64::Engine;
use ring::signature::RsaKeyPair;
use serde_json::Value;

use super::token::TokenCache;

/// Where Google's tokens come from when the key file names no `token_uri`.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Why a service-account key cannot be used. Messages never quote the key's content.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("is not valid JSON ({0})")]
    NotJson(String),
    #[error("is not a JSON object")]
    NotAnObject,
    #[error(
        "holds '{0}' credentials; only service-account keys (type service_account) are supported"
    )]
    NotServiceAccount(String),
    #[error("has no '{0}'")]
    Missing(&'static str),
    #[error("has a token_uri that is not an http(s) URL")]
    BadTokenUri,
    #[error("has a private_key that is not a PEM-encoded private key")]
    NotPem,
    #[error("has a private_key that is not a usable RSA key ({0})")]
    BadKey(String),
}

/// One service account: who it is, where its tokens come from, its key, and the tokens it got.
pub struct Credentials {
    client_email: String,
    private_key_id: Option<String>,
    project_id: Option<String>,
    /// As written in the key file: it is the `aud` of every token request.
    token_uri: String,
    key: RsaKeyPair,
    pub(crate) tokens: TokenCache,
}

/// Only the identity: the key and the tokens stay out of every log line.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_email", &self.client_email)
            .field("project_id", &self.project_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads a service-account key file's JSON.
    pub fn from_json(text: &str) -> Result<Credentials, CredentialsError> {
        // Parsed as a plain value first: serde's messages then name only lines and columns,
        // never a field's content.
        let v: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|e| CredentialsError::NotJson(e.to_string()))?;
        let obj = v.as_object().ok_or(CredentialsError::NotAnObject)?;
        let text_field = |name: &'static str| {
            obj.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        match text_field("type") {
            None | Some("service_account") => {}
            Some(other) => {
                return Err(CredentialsError::NotServiceAccount(
                    other.chars().take(40).collect(),
                ))
            }
        }
        let client_email = text_field("client_email")
            .ok_or(CredentialsError::Missing("client_email"))?
            .to_owned();
        let pem = text_field("private_key").ok_or(CredentialsError::Missing("private_key"))?;
        let token_uri = text_field("token_uri")
            .unwrap_or(GOOGLE_TOKEN_URI)
            .to_owned();
        match url::Url::parse(&token_uri) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => return Err(CredentialsError::BadTokenUri),
        }
        Ok(Credentials {
            client_email,
            private_key_id: text_field("private_key_id").map(str::to_owned),
            project_id: text_field("project_id").map(str::to_owned),
            token_uri,
            key: parse_private_key(pem)?,
            tokens: TokenCache::default(),
        })
    }

    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// The project the key belongs to: where calls go when the deployment names none.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    /// Whether both are the same key of the same account (then they can share tokens).
    pub fn same_account(&self, other: &Credentials) -> bool {
        self.client_email == other.client_email
            && self.token_uri == other.token_uri
            && self.key.public().as_ref() == other.key.public().as_ref()
    }

    pub(crate) fn private_key_id(&self) -> Option<&str> {
        self.private_key_id.as_deref()
    }

    pub(crate) fn token_uri(&self) -> &str {
        &self.token_uri
    }

    pub(crate) fn key(&self) -> &RsaKeyPair {
        &self.key
    }
}

/// A PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what Google issues) or PKCS#1
/// (`BEGIN RSA PRIVATE KEY`).
fn parse_private_key(pem: &str) -> Result<RsaKeyPair, CredentialsError> {
    let (label, der) = pem_body(pem).ok_or(CredentialsError::NotPem)?;
    let parsed = match label {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        _ => return Err(CredentialsError::NotPem),
    };
    parsed.map_err(|e| CredentialsError::BadKey(e.to_string()))
}

/// The label and decoded bytes of the first PEM block.
fn pem_body(pem: &str) -> Option<(&str, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = &rest[..label_end];
    let body = &rest[label_end + "-----".len()..];
    let end = body.find(&format!("-----END {label}-----"))?;
    let b64: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_name_the_problem_not_the_content() {
        let err = |v: &str| Credentials::from_json(v).unwrap_err().to_string();
        assert_eq!(err("[1]"), "is not a JSON object");
        assert!(err("{\"private_key\": \"SECRET").starts_with("is not valid JSON (EOF"));
        assert!(!err("{\"private_key\": \"SECRET").contains("SECRET"));
        assert_eq!(
            err(&json!({"type": "authorized_user", "refresh_token": "SECRET"}).to_string()),
            "holds 'authorized_user' credentials; only service-account keys (type service_account) are supported"
        );
        assert_eq!(
            err(&json!({"type": "service_account", "private_key": "x"}).to_string()),
            "has no 'client_email'"
        );
        let no_pem = json!({"client_email": "a@b", "private_key": "SECRET-NOT-PEM"}).to_string();
        assert_eq!(
            err(&no_pem),
            "has a private_key that is not a PEM-encoded private key"
        );
        let bad_uri =
            json!({"client_email": "a@b", "private_key": "x", "token_uri": "ftp://x"}).to_string();
        assert_eq!(err(&bad_uri), "has a token_uri that is not an http(s) URL");
        let not_rsa = json!({"client_email": "a@b",
            "private_key": "-----BEGIN PRIVATE KEY-----\nU0VDUkVU\n-----END PRIVATE KEY-----\n"})
        .to_string();
        let shown = err(&not_rsa);
        assert!(
            shown.starts_with("has a private_key that is not a usable RSA key"),
            "{shown}"
        );
        assert!(!shown.contains("U0VDUkVU"));
    }

    #[test]
    fn pem_blocks_are_read_whatever_the_line_breaks() {
        let (label, der) =
            pem_body("junk\n-----BEGIN PRIVATE KEY-----\nAQID\nBA==\n-----END PRIVATE KEY-----\n")
                .unwrap();
        assert_eq!((label, der), ("PRIVATE KEY", vec![1, 2, 3, 4]));
        assert!(
            pem_body("-----BEGIN PRIVATE KEY-----\nAQID\n-----END RSA PRIVATE KEY-----").is_none()
        );
        assert!(pem_body("AQID").is_none());
    }
}
