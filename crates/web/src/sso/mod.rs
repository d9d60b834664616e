//! OpenID Connect single sign-on for the UI: `/sso/key/generate` sends the browser to the
//! provider, `/sso/callback` takes its answer and starts an ordinary login session.

mod account;
pub mod config;
mod provider;
mod routes;
mod starts;

use tollgate_domain::role::Role;

pub use config::SsoConfig;
pub use provider::SsoError;
pub use routes::{end_session_url, routes};

/// The configured provider, ready to use.
pub struct SsoState {
    pub config: SsoConfig,
    /// Whom an unknown email gets made as: `litellm_settings.default_internal_user_params.
    /// user_role` (default `internal_user_viewer`), unless the role map says otherwise.
    pub default_role: Role,
    provider: provider::Provider,
    starts: starts::StartLimit,
}

impl SsoState {
    pub fn new(config: SsoConfig, default_role: Role) -> Result<SsoState, SsoError> {
        Ok(SsoState {
            provider: provider::Provider::new(config.clone())?,
            config,
            default_role,
            starts: starts::StartLimit::default(),
        })
    }

    /// Origins the browser may be sent to from a form (logout): the issuer's, and the
    /// end-session endpoint's once discovery has been read.
    pub fn form_origins(&self) -> Vec<String> {
        let mut out = Vec::new();
        let urls = [
            Some(self.config.issuer.clone()),
            self.provider.cached_end_session_endpoint(),
        ];
        for u in urls.into_iter().flatten() {
            if let Ok(u) = url::Url::parse(&u) {
                let o = u.origin().ascii_serialization();
                if o != "null" && !out.contains(&o) {
                    out.push(o);
                }
            }
        }
        out
    }
}
