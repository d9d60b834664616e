//! The identity provider, read from LiteLLM's environment variables (`GENERIC_*`, `GOOGLE_*`,
//! `MICROSOFT_*`) plus Tollgate's own `GENERIC_ISSUER`, `TOLLGATE_SSO_ALLOWED_DOMAINS` and
//! `TOLLGATE_SSO_ROLE_MAP`.

use std::fmt;

use tollgate_domain::role::Role;

/// Which preset the provider came from; decides the button's label and which claim vouches
/// for the email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Generic,
    Google,
    Microsoft,
}

/// The client secret: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SsoConfig {
    pub kind: ProviderKind,
    /// What the login button says after "Sign in with".
    pub label: String,
    /// The issuer URL whose `/.well-known/openid-configuration` describes the provider; without
    /// discovery, the origin of the authorization endpoint (it names the provider in links).
    pub issuer: String,
    /// False when only LiteLLM's `GENERIC_*_ENDPOINT` settings are given: no ID token is
    /// checked, the user info endpoint (called with the access token) says who signed in.
    pub discovery: bool,
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    /// `GENERIC_AUTHORIZATION_ENDPOINT` / `_TOKEN_` / `_USERINFO_`: replace what discovery says.
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    /// Scopes besides `openid` (`GENERIC_SCOPE`, default `openid email profile`).
    pub scopes: Vec<String>,
    /// The claim holding the email (`GENERIC_USER_EMAIL_ATTRIBUTE`, default `email`).
    pub email_claim: String,
    /// `TOLLGATE_SSO_TRUST_EMAIL_CLAIM`: take a custom email claim as verified by itself. Off,
    /// a custom claim counts only when it is the provider's own verified `email`: many
    /// providers let users edit attributes such as `preferred_username`.
    pub trust_email_claim: bool,
    /// The claim holding groups or roles (`GENERIC_USER_ROLE_ATTRIBUTE`), for [`Self::role_map`].
    pub role_claim: Option<String>,
    /// `TOLLGATE_SSO_ROLE_MAP`: claim value → role, in the order written.
    pub role_map: Vec<(String, Role)>,
    /// `TOLLGATE_SSO_ALLOWED_DOMAINS`, lower-case: whose unknown emails get a new user.
    pub allowed_domains: Vec<String>,
}

impl SsoConfig {
    /// `Ok(None)` when no provider is configured.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<SsoConfig>, String> {
        let get = |k: &str| {
            env(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut discovery = true;
        let (kind, label, issuer, client_id, secret) = if let Some(id) = get("GENERIC_CLIENT_ID") {
            let issuer = match get("GENERIC_ISSUER") {
                Some(issuer) => issuer,
                None => {
                    // LiteLLM's setup: the three endpoints, no discovery, no ID token checks;
                    // the user is who the user info endpoint says.
                    discovery = false;
                    let needed = [
                        "GENERIC_AUTHORIZATION_ENDPOINT",
                        "GENERIC_TOKEN_ENDPOINT",
                        "GENERIC_USERINFO_ENDPOINT",
                    ];
                    if let Some(missing) = needed.iter().find(|n| get(n).is_none()) {
                        return Err(format!(
                            "GENERIC_CLIENT_ID is set but neither GENERIC_ISSUER (discovery) nor \
                             {missing} is: set the issuer URL, or all three GENERIC_*_ENDPOINT"
                        ));
                    }
                    let auth = get("GENERIC_AUTHORIZATION_ENDPOINT").unwrap_or_default();
                    let u = url::Url::parse(&auth)
                        .map_err(|e| format!("GENERIC_AUTHORIZATION_ENDPOINT: not a URL: {e}"))?;
                    u.origin().ascii_serialization()
                }
            };
            let label = get("TOLLGATE_SSO_PROVIDER_NAME").unwrap_or_else(|| "SSO".to_string());
            (
                ProviderKind::Generic,
                label,
                issuer,
                id,
                get("GENERIC_CLIENT_SECRET"),
            )
        } else if let Some(id) = get("GOOGLE_CLIENT_ID") {
            (
                ProviderKind::Google,
                "Google".to_string(),
                "https://accounts.google.com".to_string(),
                id,
                get("GOOGLE_CLIENT_SECRET"),
            )
        } else if let Some(id) = get("MICROSOFT_CLIENT_ID") {
            let tenant = get("MICROSOFT_TENANT").ok_or_else(|| {
                "MICROSOFT_CLIENT_ID is set but MICROSOFT_TENANT is not: give the directory \
                 (tenant) ID whose users may sign in"
                    .to_string()
            })?;
            // Only a tenant's own id pins the issuer: `common`, `organizations` or a domain
            // name makes discovery name another issuer, and no token would match.
            if !is_guid(&tenant) {
                return Err(format!(
                    "MICROSOFT_TENANT: not a directory (tenant) ID such as \
                     72f988bf-86f1-41af-91ab-2d7cd011db47: {tenant:?}"
                ));
            }
            (
                ProviderKind::Microsoft,
                "Microsoft".to_string(),
                format!("https://login.microsoftonline.com/{tenant}/v2.0"),
                id,
                get("MICROSOFT_CLIENT_SECRET"),
            )
        } else {
            return Ok(None);
        };
        let endpoint = |name: &str| -> Result<Option<String>, String> {
            match get(name) {
                Some(u) => secure_url(name, &u).map(|_| Some(u)),
                None => Ok(None),
            }
        };
        secure_url("the SSO issuer", &issuer)?;
        let generic = kind == ProviderKind::Generic;
        let scopes = get("GENERIC_SCOPE")
            .filter(|_| generic)
            .unwrap_or_else(|| "openid email profile".to_string())
            .split([' ', ','])
            .filter(|s| !s.is_empty() && *s != "openid")
            .map(str::to_string)
            .collect();
        Ok(Some(SsoConfig {
            kind,
            label,
            issuer,
            discovery,
            client_id,
            client_secret: secret.map(ClientSecret),
            authorization_endpoint: if generic {
                endpoint("GENERIC_AUTHORIZATION_ENDPOINT")?
            } else {
                None
            },
            token_endpoint: if generic {
                endpoint("GENERIC_TOKEN_ENDPOINT")?
            } else {
                None
            },
            userinfo_endpoint: if generic {
                endpoint("GENERIC_USERINFO_ENDPOINT")?
            } else {
                None
            },
            scopes,
            email_claim: get("GENERIC_USER_EMAIL_ATTRIBUTE")
                .filter(|_| generic)
                .unwrap_or_else(|| "email".to_string()),
            trust_email_claim: get("TOLLGATE_SSO_TRUST_EMAIL_CLAIM")
                .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes")),
            role_claim: get("GENERIC_USER_ROLE_ATTRIBUTE"),
            role_map: match get("TOLLGATE_SSO_ROLE_MAP") {
                Some(m) => parse_role_map(&m)?,
                None => Vec::new(),
            },
            allowed_domains: get("TOLLGATE_SSO_ALLOWED_DOMAINS")
                .map(|d| {
                    d.split(',')
                        .map(|s| s.trim().trim_start_matches('@').to_ascii_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }))
    }

    /// Whether a new user may be made for this (already lower-cased) email.
    pub fn domain_allowed(&self, email: &str) -> bool {
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        self.allowed_domains.iter().any(|d| d == domain)
    }

    /// The most privileged role any of `values` maps to.
    pub fn mapped_role(&self, values: &[String]) -> Option<Role> {
        let mapped: Vec<Role> = self
            .role_map
            .iter()
            .filter(|(v, _)| values.iter().any(|x| x == v))
            .map(|(_, r)| *r)
            .collect();
        Role::ALL.into_iter().find(|r| mapped.contains(r))
    }
}

/// A provider URL: HTTPS, or HTTP to this machine only (tests, a local provider). The client
/// secret, the code and the tokens travel to it.
fn secure_url(name: &str, u: &str) -> Result<(), String> {
    let url = url::Url::parse(u).map_err(|e| format!("{name}: not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{name}: must be an https:// URL (http:// only to this machine)"
        )),
    }
}

/// `72f988bf-86f1-41af-91ab-2d7cd011db47`.
fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `admins=proxy_admin,viewers=proxy_admin_viewer`.
fn parse_role_map(text: &str) -> Result<Vec<(String, Role)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (value, role) = pair.rsplit_once('=').ok_or_else(|| {
                format!("TOLLGATE_SSO_ROLE_MAP: expected value=role, got {pair:?}")
            })?;
            let role = Role::parse(role.trim()).ok_or_else(|| {
                format!(
                    "TOLLGATE_SSO_ROLE_MAP: {:?} is not a role (one of proxy_admin, \
                     proxy_admin_viewer, internal_user, internal_user_viewer)",
                    role.trim()
                )
            })?;
            Ok((value.trim().to_string(), role))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Option<SsoConfig>, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SsoConfig::from_env(&|k| map.get(k).cloned())
    }

    #[test]
    fn presets_and_generic_providers() {
        assert_eq!(read(&[]).unwrap(), None);
        let g = read(&[("GOOGLE_CLIENT_ID", "g"), ("GOOGLE_CLIENT_SECRET", "s")])
            .unwrap()
            .unwrap();
        assert_eq!(g.issuer, "https://accounts.google.com");
        assert_eq!(g.scopes, ["email", "profile"]);
        assert_eq!(format!("{:?}", g.client_secret), "Some(***)");
        let m = read(&[
            ("MICROSOFT_CLIENT_ID", "m"),
            ("MICROSOFT_TENANT", "9f3c1a2e-0000-4000-8000-000000000001"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            m.issuer,
            "https://login.microsoftonline.com/9f3c1a2e-0000-4000-8000-000000000001/v2.0"
        );
        assert!(read(&[("MICROSOFT_CLIENT_ID", "m")]).is_err());
        for tenant in ["a/b", "common", "organizations", "contoso.com"] {
            assert!(
                read(&[("MICROSOFT_CLIENT_ID", "m"), ("MICROSOFT_TENANT", tenant)]).is_err(),
                "{tenant}"
            );
        }
        // The secret, the code and the tokens go to the provider: HTTPS, or this machine.
        for issuer in ["http://idp.example.com", "ftp://idp.example.com"] {
            assert!(
                read(&[("GENERIC_CLIENT_ID", "c"), ("GENERIC_ISSUER", issuer)]).is_err(),
                "{issuer}"
            );
        }
        for issuer in [
            "http://127.0.0.1:9000",
            "http://localhost:9000",
            "http://[::1]:9",
        ] {
            assert!(
                read(&[("GENERIC_CLIENT_ID", "c"), ("GENERIC_ISSUER", issuer)]).is_ok(),
                "{issuer}"
            );
        }
        assert!(read(&[("GENERIC_CLIENT_ID", "c")]).is_err());
        assert!(read(&[
            ("GENERIC_CLIENT_ID", "c"),
            (
                "GENERIC_AUTHORIZATION_ENDPOINT",
                "https://idp.example.com/auth"
            ),
            ("GENERIC_TOKEN_ENDPOINT", "https://idp.example.com/token"),
        ])
        .is_err());
        let e = read(&[
            ("GENERIC_CLIENT_ID", "c"),
            (
                "GENERIC_AUTHORIZATION_ENDPOINT",
                "https://idp.example.com/auth",
            ),
            ("GENERIC_TOKEN_ENDPOINT", "https://idp.example.com/token"),
            ("GENERIC_USERINFO_ENDPOINT", "https://idp.example.com/me"),
        ])
        .unwrap()
        .unwrap();
        assert!(!e.discovery);
        assert_eq!(e.issuer, "https://idp.example.com");
        assert!(g.discovery);
        let c = read(&[
            ("GENERIC_CLIENT_ID", "c"),
            ("GENERIC_ISSUER", "https://idp.example.com"),
            ("GENERIC_SCOPE", "openid email groups"),
            ("GENERIC_USER_EMAIL_ATTRIBUTE", "mail"),
            ("GENERIC_USER_ROLE_ATTRIBUTE", "groups"),
            (
                "TOLLGATE_SSO_ROLE_MAP",
                "admins=proxy_admin, viewers=proxy_admin_viewer",
            ),
            ("TOLLGATE_SSO_ALLOWED_DOMAINS", "Example.com, @corp.example"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.scopes, ["email", "groups"]);
        assert_eq!(c.email_claim, "mail");
        assert_eq!(c.allowed_domains, ["example.com", "corp.example"]);
        assert!(c.domain_allowed("ann@example.com"));
        assert!(!c.domain_allowed("ann@evil-example.com"));
        assert!(!c.domain_allowed("ann@sub.example.com"));
        let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            c.mapped_role(&values(&["viewers", "admins"])),
            Some(Role::ProxyAdmin)
        );
        assert_eq!(
            c.mapped_role(&values(&["viewers"])),
            Some(Role::ProxyAdminViewer)
        );
        assert_eq!(c.mapped_role(&values(&["others"])), None);
        assert!(read(&[
            ("GENERIC_CLIENT_ID", "c"),
            ("GENERIC_ISSUER", "https://idp.example.com"),
            ("TOLLGATE_SSO_ROLE_MAP", "admins=root"),
        ])
        .is_err());
    }
}
