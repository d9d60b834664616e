//! Talking to the identity provider with `openidconnect`: discovery (cached), the authorization
//! request (code flow with PKCE, `state` and `nonce`), and the answer: the code exchanged for
//! tokens, the ID token's signature, issuer, audience, expiry and nonce checked against the
//! provider's JWKS, and the claims read. Without discovery (LiteLLM's endpoint settings) the
//! user info endpoint, called with the access token, says who signed in. Errors carry no code,
//! token or secret.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreJwsSigningAlgorithm,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AccessToken, AuthType, AuthUrl, AuthorizationCode, ClientId, CsrfToken,
    EmptyAdditionalProviderMetadata, IssuerUrl, JsonWebKeySetUrl, LogoutProviderMetadata, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadataWithLogout,
    RedirectUrl, ResponseTypes, Scope, TokenResponse, TokenUrl, UserInfoUrl,
};
use openidconnect::{ClaimsVerificationError, SignatureVerificationError};
use serde_json::{Map, Value};
use tollgate_store::PendingLogin;

use super::config::{ProviderKind, SsoConfig};

/// Discovery (and the JWKS with it) is fetched again after this, so rotated keys are picked up.
const METADATA_TTL: Duration = Duration::from_secs(600);
/// The least time between two reads of discovery when a token names a key not in it.
const REFETCH_AFTER: Duration = Duration::from_secs(5);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("could not set up the HTTP client for the identity provider: {0}")]
    Client(String),
    #[error("the identity provider's discovery document could not be used: {0}")]
    Discovery(String),
    #[error("the sign-in could not be completed with the identity provider: {0}")]
    TokenExchange(String),
    #[error("the ID token was refused: {0}")]
    IdToken(String),
    #[error("the identity provider's user info could not be used: {0}")]
    UserInfo(String),
}

/// What the provider vouched for, after every check.
#[derive(Debug, Clone)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// The values of the role claim (a string or a list of strings).
    pub role_values: Vec<String>,
    /// The checked ID token, kept for the provider's logout (`id_token_hint`); none without
    /// discovery.
    pub id_token: Option<String>,
}

/// A sign-in ready to send the browser to the provider.
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The client as discovery builds it: the token and user info endpoints may be missing.
type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

pub struct Provider {
    pub config: SsoConfig,
    http: reqwest::Client,
    cached: RwLock<Option<(Instant, Arc<ProviderMetadataWithLogout>)>>,
}

impl Provider {
    pub fn new(config: SsoConfig) -> Result<Provider, SsoError> {
        // No redirects: the library's advice against SSRF through a provider's answers.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| SsoError::Client(e.to_string()))?;
        Ok(Provider {
            config,
            http,
            cached: RwLock::new(None),
        })
    }

    /// The end-session endpoint the provider names, if any.
    pub async fn end_session_endpoint(&self) -> Result<Option<String>, SsoError> {
        let m = self.metadata().await?;
        Ok(m.additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| u.url().to_string()))
    }

    /// [`Self::end_session_endpoint`] without fetching: `None` until discovery was read.
    pub fn cached_end_session_endpoint(&self) -> Option<String> {
        let cached = self.cached.read().ok()?;
        let (_, m) = cached.as_ref()?;
        m.additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| u.url().to_string())
    }

    /// Whether discovery may be read again before its time: not within five seconds of the
    /// last read, so tokens naming unknown keys cannot make Tollgate hammer the provider.
    fn may_refetch(&self) -> bool {
        self.cached
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|(at, _)| at.elapsed() >= REFETCH_AFTER))
            .unwrap_or(true)
    }

    async fn refetch_metadata(&self) -> Result<Arc<ProviderMetadataWithLogout>, SsoError> {
        if let Ok(mut cached) = self.cached.write() {
            *cached = None;
        }
        self.metadata().await
    }

    async fn metadata(&self) -> Result<Arc<ProviderMetadataWithLogout>, SsoError> {
        if let Ok(cached) = self.cached.read() {
            if let Some((at, m)) = cached.as_ref() {
                if at.elapsed() < METADATA_TTL {
                    return Ok(m.clone());
                }
            }
        }
        let c = &self.config;
        let issuer = IssuerUrl::new(c.issuer.clone())
            .map_err(|e| SsoError::Discovery(format!("issuer URL: {e}")))?;
        let mut m = if c.discovery {
            ProviderMetadataWithLogout::discover_async(issuer, &self.http)
                .await
                .map_err(|e| SsoError::Discovery(e.to_string()))?
        } else {
            // Only the endpoints below are used; there are no keys, since no ID token is read.
            let auth = c.authorization_endpoint.clone().unwrap_or_default();
            ProviderMetadataWithLogout::new(
                issuer,
                AuthUrl::new(auth.clone()).map_err(|e| SsoError::Discovery(e.to_string()))?,
                JsonWebKeySetUrl::new(auth).map_err(|e| SsoError::Discovery(e.to_string()))?,
                vec![ResponseTypes::new(vec![CoreResponseType::Code])],
                vec![CoreSubjectIdentifierType::Public],
                vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
                LogoutProviderMetadata {
                    end_session_endpoint: None,
                    additional_metadata: EmptyAdditionalProviderMetadata {},
                },
            )
        };
        if let Some(u) = &c.authorization_endpoint {
            m = m.set_authorization_endpoint(
                AuthUrl::new(u.clone()).map_err(|e| SsoError::Discovery(e.to_string()))?,
            );
        }
        if let Some(u) = &c.token_endpoint {
            m = m.set_token_endpoint(Some(
                TokenUrl::new(u.clone()).map_err(|e| SsoError::Discovery(e.to_string()))?,
            ));
        }
        if let Some(u) = &c.userinfo_endpoint {
            m = m.set_userinfo_endpoint(Some(
                UserInfoUrl::new(u.clone()).map_err(|e| SsoError::Discovery(e.to_string()))?,
            ));
        }
        let m = Arc::new(m);
        if let Ok(mut cached) = self.cached.write() {
            *cached = Some((Instant::now(), m.clone()));
        }
        Ok(m)
    }

    fn client(
        &self,
        m: &ProviderMetadataWithLogout,
        redirect_uri: &str,
    ) -> Result<Client, SsoError> {
        let secret = self
            .config
            .client_secret
            .as_ref()
            .map(|s| openidconnect::ClientSecret::new(s.expose().to_string()));
        // client_secret_basic unless the provider only takes the secret in the form.
        let post_only = m.token_endpoint_auth_methods_supported().is_some_and(|v| {
            let names: Vec<&str> = v.iter().map(|a| a.as_ref()).collect();
            names.contains(&"client_secret_post") && !names.contains(&"client_secret_basic")
        });
        let client = CoreClient::from_provider_metadata(
            m.clone(),
            ClientId::new(self.config.client_id.clone()),
            secret,
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_string())
                .map_err(|e| SsoError::Discovery(format!("redirect URL: {e}")))?,
        );
        Ok(if post_only {
            client.set_auth_type(AuthType::RequestBody)
        } else {
            client
        })
    }

    /// The provider's authorization URL for a new sign-in, with fresh `state`, `nonce` and PKCE
    /// verifier (S256).
    pub async fn authorize(&self, redirect_uri: &str) -> Result<Authorization, SsoError> {
        let m = self.metadata().await?;
        let client = self.client(&m, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for s in &self.config.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code (with the pending sign-in's PKCE verifier) and checks the ID token.
    pub async fn sign_in(&self, code: &str, pending: &PendingLogin) -> Result<Identity, SsoError> {
        let m = self.metadata().await?;
        let client = self.client(&m, &pending.redirect_uri)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SsoError::TokenExchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| SsoError::TokenExchange(token_error(&e)))?;
        let c = &self.config;
        let (issuer, subject, id_claims, raw) = if c.discovery {
            let id_token = tokens
                .id_token()
                .ok_or_else(|| SsoError::IdToken("the provider sent no ID token".to_string()))?;
            let claims = match check_id_token(&client, id_token, &pending.nonce) {
                // The provider rotated its keys since discovery was read: read it again (at
                // most every five seconds) and check once more.
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) if self.may_refetch() => {
                    let m = self.refetch_metadata().await?;
                    let client = self.client(&m, &pending.redirect_uri)?;
                    check_id_token(&client, id_token, &pending.nonce)
                }
                other => other,
            }
            .map_err(|e| SsoError::IdToken(e.to_string()))?;
            let raw = id_token.to_string();
            // The signature over this exact text was just checked, so its claims can be read
            // as JSON for the configured email and role claims.
            let json = payload(&raw)?;
            // The library checks the audience; an authorized party, when named, must be us.
            if json
                .get("azp")
                .is_some_and(|azp| azp.as_str() != Some(c.client_id.as_str()))
            {
                return Err(SsoError::IdToken(
                    "it was issued to another client (azp)".to_string(),
                ));
            }
            (
                claims.issuer().as_str().to_string(),
                claims.subject().as_str().to_string(),
                json,
                Some(raw),
            )
        } else {
            let info = self.user_info(&client, tokens.access_token(), None).await?;
            let subject = info
                .get("sub")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| SsoError::UserInfo("it names no subject".to_string()))?
                .to_string();
            (c.issuer.clone(), subject, info, None)
        };
        let missing = |all: &Map<String, Value>| {
            !all.contains_key(&c.email_claim)
                || !all.contains_key("email")
                || c.role_claim.as_ref().is_some_and(|r| !all.contains_key(r))
        };
        let info = if c.discovery && missing(&id_claims) && client.user_info_url().is_some() {
            self.user_info(&client, tokens.access_token(), Some(&subject))
                .await?
        } else {
            Map::new()
        };
        let (email, email_verified) = verified_email(c, &[&id_claims, &info]);
        let mut all = id_claims;
        for (k, v) in info {
            all.entry(k).or_insert(v);
        }
        let role_values = match c.role_claim.as_ref().and_then(|r| all.get(r)) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Identity {
            issuer,
            subject,
            email,
            email_verified,
            role_values,
            id_token: raw,
        })
    }

    /// The user info endpoint's claims, for the same subject as the ID token.
    async fn user_info(
        &self,
        client: &Client,
        token: &AccessToken,
        subject: Option<&str>,
    ) -> Result<Map<String, Value>, SsoError> {
        let Some(url) = client.user_info_url() else {
            return Ok(Map::new());
        };
        let resp = self
            .http
            .get(url.url().clone())
            .bearer_auth(token.secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|_| SsoError::UserInfo("the request failed".to_string()))?;
        if !resp.status().is_success() {
            return Err(SsoError::UserInfo(format!("status {}", resp.status())));
        }
        let info: Map<String, Value> = resp
            .json()
            .await
            .map_err(|_| SsoError::UserInfo("not a JSON object".to_string()))?;
        // A user info answer about someone else is refused (token substitution).
        if subject.is_some_and(|s| info.get("sub").and_then(Value::as_str) != Some(s)) {
            return Err(SsoError::UserInfo(
                "its subject is not the ID token's".to_string(),
            ));
        }
        Ok(info)
    }
}

/// The error a token request failed with, without the provider's answer body.
fn token_error<RE: std::error::Error>(
    e: &openidconnect::RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> String {
    match e {
        // Its code only: a provider's description or URI may echo what the request carried.
        openidconnect::RequestTokenError::ServerResponse(r) => {
            format!(
                "the token endpoint refused the code ({})",
                r.error().as_ref()
            )
        }
        openidconnect::RequestTokenError::Request(_) => {
            "the token endpoint could not be reached".to_string()
        }
        openidconnect::RequestTokenError::Parse(..) => {
            "the token endpoint's answer could not be read".to_string()
        }
        openidconnect::RequestTokenError::Other(m) => m.clone(),
    }
}

/// Checks an ID token's signature (with the provider's keys only: an HMAC token keyed with the
/// client secret, which the client holds too, would prove nothing about the provider), issuer,
/// audience, expiry and nonce.
fn check_id_token<'a>(
    client: &Client,
    id_token: &'a CoreIdToken,
    nonce: &str,
) -> Result<&'a CoreIdTokenClaims, ClaimsVerificationError> {
    let verifier = client.id_token_verifier().set_allowed_algs([
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
        CoreJwsSigningAlgorithm::RsaSsaPssSha256,
        CoreJwsSigningAlgorithm::RsaSsaPssSha384,
        CoreJwsSigningAlgorithm::RsaSsaPssSha512,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::EcdsaP384Sha384,
        CoreJwsSigningAlgorithm::EcdsaP521Sha512,
        CoreJwsSigningAlgorithm::EdDsa,
    ]);
    id_token.claims(&verifier, &Nonce::new(nonce.to_string()))
}

/// The signed-in person's email (lower-case) and whether the provider vouches for it, each
/// read from one document (the ID token first, then user info), never the email from one and
/// its verification from the other.
///
/// A custom email claim (`GENERIC_USER_EMAIL_ATTRIBUTE`) counts as verified only when it is the
/// provider's own verified `email`, unless the operator trusts it (`trust_email_claim`). A
/// Google address outside gmail.com counts only when the Workspace domain (`hd`) vouches for it:
/// Google's `email_verified` says the address was checked when the account was made, and such
/// an address may have changed hands since.
fn verified_email(c: &SsoConfig, docs: &[&Map<String, Value>]) -> (Option<String>, bool) {
    let text = |d: &Map<String, Value>, k: &str| {
        d.get(k)
            .and_then(Value::as_str)
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
    };
    let standard = docs.iter().find_map(|d| {
        let email = text(d, "email")?;
        let mut verified = truthy(d.get("email_verified"))
            // Entra ID sends no email_verified; its optional `xms_edov` claim says the
            // email's domain is verified by the tenant.
            || (c.kind == ProviderKind::Microsoft && truthy(d.get("xms_edov")));
        if c.kind == ProviderKind::Google && !email.ends_with("@gmail.com") {
            let domain = email.rsplit_once('@').map(|(_, d)| d);
            verified &= domain.is_some() && text(d, "hd").as_deref() == domain;
        }
        Some((email, verified))
    });
    if c.email_claim == "email" {
        return match standard {
            Some((email, verified)) => (Some(email), verified),
            None => (None, false),
        };
    }
    let Some(custom) = docs.iter().find_map(|d| text(d, &c.email_claim)) else {
        return (None, false);
    };
    let verified = c.trust_email_claim
        || standard.is_some_and(|(email, verified)| verified && email == custom);
    (Some(custom), verified)
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The JSON claims of a compact JWS (`header.payload.signature`).
fn payload(jwt: &str) -> Result<Map<String, Value>, SsoError> {
    use base64::Engine;
    let part = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| SsoError::IdToken("not a compact JWT".to_string()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| SsoError::IdToken("its payload is not base64url".to_string()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| SsoError::IdToken("its payload is not a JSON object".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: ProviderKind, email_claim: &str, trust: bool) -> SsoConfig {
        SsoConfig {
            kind,
            label: "x".into(),
            issuer: "https://idp.example".into(),
            discovery: true,
            client_id: "c".into(),
            client_secret: None,
            authorization_endpoint: None,
            token_endpoint: None,
            userinfo_endpoint: None,
            scopes: Vec::new(),
            email_claim: email_claim.into(),
            trust_email_claim: trust,
            role_claim: None,
            role_map: Vec::new(),
            allowed_domains: Vec::new(),
        }
    }

    fn doc(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn an_email_and_its_verification_come_from_one_document() {
        let g = config(ProviderKind::Generic, "email", false);
        let verified = doc(serde_json::json!({"email": "A@B.example", "email_verified": true}));
        assert_eq!(
            verified_email(&g, &[&verified]),
            (Some("a@b.example".into()), true)
        );
        // The ID token's email, unverified there; user info vouches for another address.
        let token = doc(serde_json::json!({"email": "victim@b.example"}));
        let info = doc(serde_json::json!({"email": "me@b.example", "email_verified": true}));
        assert_eq!(
            verified_email(&g, &[&token, &info]),
            (Some("victim@b.example".into()), false)
        );
        // A custom claim: only as the verified email, or when trusted.
        let mail = config(ProviderKind::Generic, "mail", false);
        let edited = doc(serde_json::json!({
            "mail": "admin@b.example", "email": "me@b.example", "email_verified": true}));
        assert_eq!(
            verified_email(&mail, &[&edited]),
            (Some("admin@b.example".into()), false)
        );
        let same = doc(serde_json::json!({
            "mail": "Me@B.example", "email": "me@b.example", "email_verified": true}));
        assert!(verified_email(&mail, &[&same]).1);
        let trusted = config(ProviderKind::Generic, "mail", true);
        assert!(verified_email(&trusted, &[&edited]).1);
        assert_eq!(
            verified_email(&mail, &[&doc(serde_json::json!({}))]),
            (None, false)
        );
    }

    #[test]
    fn google_vouches_for_a_non_gmail_address_only_through_its_workspace_domain() {
        let google = config(ProviderKind::Google, "email", false);
        let gmail = doc(serde_json::json!({"email": "x@gmail.com", "email_verified": true}));
        assert!(verified_email(&google, &[&gmail]).1);
        let consumer = doc(serde_json::json!({"email": "x@corp.example", "email_verified": true}));
        assert!(!verified_email(&google, &[&consumer]).1);
        let workspace = doc(serde_json::json!({
            "email": "x@corp.example", "email_verified": true, "hd": "corp.example"}));
        assert!(verified_email(&google, &[&workspace]).1);
        let other_hd = doc(serde_json::json!({
            "email": "x@corp.example", "email_verified": true, "hd": "evil.example"}));
        assert!(!verified_email(&google, &[&other_hd]).1);
        // Entra: the tenant-verified domain claim.
        let ms = config(ProviderKind::Microsoft, "email", false);
        let edov = doc(serde_json::json!({"email": "x@corp.example", "xms_edov": true}));
        assert!(verified_email(&ms, &[&edov]).1);
    }

    #[test]
    fn claims_are_read_from_the_payload() {
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.sig",
            b("{}"),
            b(r#"{"email":"a@b.c","groups":["x"]}"#)
        );
        let m = payload(&jwt).unwrap();
        assert_eq!(m["email"], "a@b.c");
        assert!(payload("nodots").is_err());
        assert!(truthy(Some(&Value::Bool(true))));
        assert!(truthy(Some(&Value::String("true".into()))));
        assert!(!truthy(Some(&Value::Bool(false))));
        assert!(!truthy(None));
    }
}
