//! Talking to the identity provider with `openidconnect`: discovery (cached), the authorization
//! request (code flow with PKCE, `state` and `nonce`), and the answer: the code exchanged for
//! tokens, the ID token's signature, issuer, audience, expiry and nonce checked against the
//! provider's JWKS, and the claims read. Without discovery (LiteLLM's endpoint settings) the
//! user info endpoint, called with the access token, says who signed in. Errors carry no code,
//! token or secret.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AccessToken, AuthType, AuthUrl, AuthorizationCode, ClientId, CsrfToken,
    EmptyAdditionalProviderMetadata, IssuerUrl, JsonWebKeySetUrl, LogoutProviderMetadata, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadataWithLogout,
    RedirectUrl, ResponseTypes, Scope, TokenResponse, TokenUrl, UserInfoUrl,
};
use serde_json::{Map, Value};
use tollgate_store::PendingLogin;

use super::config::{ProviderKind, SsoConfig};

/// Discovery (and the JWKS with it) is fetched again after this, so rotated keys are picked up.
const METADATA_TTL: Duration = Duration::from_secs(600);
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
        let (issuer, subject, mut all, raw) = if c.discovery {
            let id_token = tokens
                .id_token()
                .ok_or_else(|| SsoError::IdToken("the provider sent no ID token".to_string()))?;
            let verifier = client.id_token_verifier();
            let claims = id_token
                .claims(&verifier, &Nonce::new(pending.nonce.clone()))
                .map_err(|e| SsoError::IdToken(e.to_string()))?;
            let raw = id_token.to_string();
            // The signature over this exact text was just checked, so its claims can be read
            // as JSON for the configured email and role claims.
            (
                claims.issuer().as_str().to_string(),
                claims.subject().as_str().to_string(),
                payload(&raw)?,
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
                || c.role_claim.as_ref().is_some_and(|r| !all.contains_key(r))
        };
        if c.discovery && missing(&all) && client.user_info_url().is_some() {
            let info = self
                .user_info(&client, tokens.access_token(), Some(&subject))
                .await?;
            for (k, v) in info {
                all.entry(k).or_insert(v);
            }
        }
        let email = all
            .get(&c.email_claim)
            .and_then(Value::as_str)
            .map(|e| e.trim().to_lowercase());
        let email_verified = truthy(all.get("email_verified"))
            // Entra ID sends no email_verified; its optional `xms_edov` claim says the email's
            // domain is verified by the tenant.
            || (c.kind == ProviderKind::Microsoft && truthy(all.get("xms_edov")));
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
fn token_error<RE: std::error::Error, T: openidconnect::ErrorResponse>(
    e: &openidconnect::RequestTokenError<RE, T>,
) -> String {
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => {
            format!("the token endpoint refused the code ({r})")
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
