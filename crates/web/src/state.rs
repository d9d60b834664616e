//! What the management API and the UI share: the store, the master key, identity settings.

use std::time::Duration;

use tollgate_domain::duration::parse_length;
use tollgate_identity::password::PasswordPolicy;
use tollgate_identity::throttle::LoginThrottle;
use tollgate_proxy::auth::MasterKey;
use tollgate_store::Store;

use crate::mail::Mail;
use crate::ui::Ui;

/// Settings read from LiteLLM's environment variables.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// `PROXY_BASE_URL`: used for links in emails and redirects; else the request's origin.
    pub base_url: Option<String>,
    /// `PROXY_LOGOUT_URL`: where logout sends the browser.
    pub logout_url: Option<String>,
    /// `UI_USERNAME` (default `admin`).
    pub ui_username: String,
    /// `UI_PASSWORD`; unset means the master key is the admin password, as in LiteLLM.
    pub ui_password: Option<String>,
    /// `PROXY_ADMIN_ID`: the user id the admin login acts as.
    pub proxy_admin_id: String,
    /// `LITELLM_UI_SESSION_DURATION` (default 24h): a session's absolute lifetime.
    pub session_absolute: Duration,
    /// A session unused this long ends (default 2h).
    pub session_idle: Duration,
    pub password_policy: PasswordPolicy,
    /// Invitations are valid this long (7 days).
    pub invitation_ttl: Duration,
    /// `TOLLGATE_TRUST_X_FORWARDED_FOR`: a trusted reverse proxy sets the client address.
    pub trust_forwarded_for: bool,
    /// `TOLLGATE_PASSWORD_LOGIN` (default true): false leaves users single sign-on only; the
    /// admin's `UI_USERNAME` login stays as the break-glass way in.
    pub password_login: bool,
    /// The OpenID Connect provider, when one is configured.
    pub sso: Option<crate::sso::SsoConfig>,
}

impl WebConfig {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<WebConfig, String> {
        let get = |k: &str| {
            env(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let session_absolute = match get("LITELLM_UI_SESSION_DURATION") {
            Some(v) => parse_length(&v).ok_or_else(|| {
                format!(
                    "LITELLM_UI_SESSION_DURATION: expected a duration like 24h or 30m, got {v:?}"
                )
            })?,
            None => Duration::from_secs(24 * 3600),
        };
        let min_len = match get("TOLLGATE_PASSWORD_MIN_LENGTH") {
            Some(v) => v.parse::<usize>().map_err(|_| {
                format!("TOLLGATE_PASSWORD_MIN_LENGTH: expected a number, got {v:?}")
            })?,
            None => tollgate_identity::password::DEFAULT_MIN_LEN,
        };
        let password_policy =
            PasswordPolicy::new(min_len, tollgate_identity::password::DEFAULT_MAX_LEN)
                .map_err(|e| format!("TOLLGATE_PASSWORD_MIN_LENGTH: {e}"))?;
        Ok(WebConfig {
            base_url: get("PROXY_BASE_URL").map(|u| u.trim_end_matches('/').to_string()),
            logout_url: get("PROXY_LOGOUT_URL"),
            ui_username: get("UI_USERNAME").unwrap_or_else(|| "admin".to_string()),
            ui_password: get("UI_PASSWORD"),
            proxy_admin_id: get("PROXY_ADMIN_ID").unwrap_or_else(|| "default_user_id".to_string()),
            session_absolute,
            session_idle: Duration::from_secs(2 * 3600).min(session_absolute),
            password_policy,
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            trust_forwarded_for: get("TOLLGATE_TRUST_X_FORWARDED_FOR")
                .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes")),
            password_login: match get("TOLLGATE_PASSWORD_LOGIN") {
                None => true,
                Some(v) => match v.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" => true,
                    "0" | "false" | "no" => false,
                    _ => {
                        return Err(format!(
                            "TOLLGATE_PASSWORD_LOGIN: expected true or false, got {v:?}"
                        ))
                    }
                },
            },
            sso: crate::sso::SsoConfig::from_env(env)?,
        })
    }
}

pub struct WebState {
    pub store: Store,
    pub master_key: MasterKey,
    pub config: WebConfig,
    pub throttle: LoginThrottle,
    /// Key for the tokens `/v2/login` and onboarding hand out; kept in the store so every
    /// instance signs and checks with the same one.
    pub signing_key: Vec<u8>,
    pub ui: Ui,
    pub mail: Option<Mail>,
    /// Public model names (wildcard patterns included), for the key form.
    pub models: Vec<String>,
    /// Each public model name with its price, for the Models page (built by [`model_catalog`]).
    pub model_catalog: Vec<ModelEntry>,
    /// Every deployment as `/model/info` shows it (built by [`deployment_catalog`]).
    pub deployments: Vec<DeploymentEntry>,
    /// The proxy's key cache, evicted when a key changes.
    pub keys: std::sync::Arc<tollgate_proxy::keys::KeyCache>,
    /// Failed-login counts shared with the other instances, when they share a Redis.
    pub cluster: Option<tollgate_cluster::Cluster>,
    /// Single sign-on, when a provider is configured.
    pub sso: Option<crate::sso::SsoState>,
    /// The proxy's spend writer: a spend reset waits for what it still holds.
    pub spend_writer: std::sync::Arc<tollgate_ledger::SpendWriter>,
}

/// One public model name with what it costs, as the proxy will charge it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelEntry {
    pub name: String,
    /// Dollars per token; `None` when no price is known.
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    /// `chat`, `embedding`, `completion` … from the price table, when it says.
    pub mode: Option<String>,
    /// A wildcard pattern (`openai/*`): priced per concrete model at call time.
    pub pattern: bool,
}

/// One deployment for `/model/info`, in LiteLLM's shape. Never holds a credential.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentEntry {
    pub model_name: String,
    /// `litellm_params` without `api_key`; `api_base` is kept apart so only admins see hosts.
    pub litellm_params: serde_json::Value,
    /// Redacted: credentials written into the URL never leave the process.
    pub api_base: Option<String>,
    pub model_info: serde_json::Value,
}

/// `/model/info`'s list: each deployment's public settings and the price the proxy charges by.
pub fn deployment_catalog(proxy: &tollgate_proxy::ProxyState) -> Vec<DeploymentEntry> {
    let mut out: Vec<DeploymentEntry> = proxy
        .router
        .deployments()
        .map(|d| {
            let s = &d.spec;
            let provider = s.provider.name();
            let price = if s.upstream_model.contains('*') {
                None
            } else {
                proxy.price_for(s, &s.upstream_model)
            };
            let max_output = s
                .max_output_tokens
                .or(price.and_then(|p| p.max_output_tokens));
            DeploymentEntry {
                model_name: s.model_name.clone(),
                litellm_params: serde_json::json!({
                    "model": format!("{provider}/{}", s.upstream_model),
                    "custom_llm_provider": provider,
                    "api_version": s.api_version,
                    "rpm": s.rpm,
                    "tpm": s.tpm,
                    "timeout": s.timeout.map(|t| t.as_secs_f64()),
                    "max_retries": s.max_retries,
                }),
                api_base: s
                    .api_base
                    .as_ref()
                    .map(tollgate_proxy::deployment::redact_url),
                model_info: serde_json::json!({
                    "id": s.id,
                    "db_model": false,
                    "key": s.base_model.clone().unwrap_or_else(|| s.upstream_model.clone()),
                    "base_model": s.base_model,
                    "litellm_provider": provider,
                    "mode": price.and_then(|p| p.mode.clone()),
                    "input_cost_per_token": price.and_then(|p| p.input_cost_per_token),
                    "output_cost_per_token": price.and_then(|p| p.output_cost_per_token),
                    "cache_read_input_token_cost": price.and_then(|p| p.cache_read_input_token_cost),
                    "cache_creation_input_token_cost": price.and_then(|p| p.cache_creation_input_token_cost),
                    "max_tokens": max_output,
                    "max_input_tokens": price.and_then(|p| p.max_input_tokens),
                    "max_output_tokens": max_output,
                    "priced": price.is_some(),
                }),
            }
        })
        .collect();
    let id = |e: &DeploymentEntry| e.model_info["id"].as_str().unwrap_or("").to_string();
    out.sort_by_key(|e| (e.model_name.clone(), id(e)));
    out
}

/// The Models page's list, priced the way the proxy prices a call (a deployment's configured
/// `input_cost_per_token`/`output_cost_per_token` first, then the price table), so the page
/// never disagrees with what spend records say. With several deployments under one name, the
/// first priced one is shown.
pub fn model_catalog(proxy: &tollgate_proxy::ProxyState) -> Vec<ModelEntry> {
    proxy
        .router
        .model_names(true)
        .into_iter()
        .map(|name| {
            let pattern = name.contains('*');
            let specs: Vec<_> = proxy
                .router
                .deployments()
                .map(|d| &d.spec)
                .filter(|s| s.model_name == name && !s.upstream_model.contains('*'))
                .collect();
            let price = specs
                .iter()
                .find_map(|s| proxy.price_for(s, &s.upstream_model));
            // A config override carries no mode; the table entry for the model may.
            let mode = price.and_then(|p| p.mode.clone()).or_else(|| {
                specs.iter().find_map(|s| {
                    let provider = s.provider.name();
                    s.base_model
                        .as_deref()
                        .and_then(|b| proxy.prices.lookup(provider, b))
                        .or_else(|| proxy.prices.lookup(provider, &s.upstream_model))
                        .and_then(|p| p.mode.clone())
                })
            });
            ModelEntry {
                name,
                input_cost_per_token: price.and_then(|p| p.input_cost_per_token),
                output_cost_per_token: price.and_then(|p| p.output_cost_per_token),
                mode,
                pattern,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_length("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_length("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_length("1mo"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_length("h"), None);
        assert_eq!(parse_length("0s"), None);
        assert_eq!(parse_length("5y"), None);
    }
}
