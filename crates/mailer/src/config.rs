//! SMTP settings, read from the same environment variables LiteLLM uses.

use std::fmt;
use std::time::Duration;

use lettre::message::Mailbox;

const DEFAULT_PORT: u16 = 587;
/// Port 465 is "submissions": TLS from the first byte, whatever `SMTP_TLS` says.
const SUBMISSIONS_PORT: u16 = 465;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS; fails if the server can't upgrade, so
    /// credentials never travel in clear.
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption at all: only for a relay on localhost or a trusted network.
    None,
}

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    /// Never printed: `Debug` shows only whether it is set.
    pub password: Option<String>,
    /// The From address, e.g. `Tollgate <noreply@example.com>` or a bare address.
    pub sender: String,
    pub security: Security,
    /// Limit for connecting and for each SMTP command.
    pub timeout: Duration,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sender", &self.sender)
            .field("security", &self.security)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Email is misconfigured. Names the setting at fault; the password's value is never included.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("{var} must be set when SMTP_HOST is set")]
    Missing { var: &'static str },
    #[error("{var} is invalid ({value:?}): {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot set up TLS for SMTP host {host:?}: {reason}")]
    Tls { host: String, reason: String },
}

impl SmtpConfig {
    /// From LiteLLM's env vars: `SMTP_HOST` (unset → `Ok(None)`), `SMTP_PORT` (default 587),
    /// `SMTP_USERNAME`, `SMTP_PASSWORD`, `SMTP_SENDER_EMAIL` (required when `SMTP_HOST` is set),
    /// `SMTP_TLS` (`True`/`False`, default `True` → STARTTLS), `SMTP_USE_SSL` (or port 465 →
    /// TLS from the start), `SMTP_TIMEOUT` in seconds (default 30). Empty values count as unset,
    /// as compose files often write `SMTP_HOST=` to switch a feature off.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<SmtpConfig>, MailConfigError> {
        let get = |var: &str| env(var).filter(|v| !v.trim().is_empty());

        let Some(host) = get("SMTP_HOST") else {
            return Ok(None);
        };
        let host = host.trim().to_owned();

        let port = match get("SMTP_PORT") {
            None => DEFAULT_PORT,
            Some(raw) => match raw.trim().parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(invalid("SMTP_PORT", raw, "expected a port number 1-65535")),
            },
        };

        let sender = get("SMTP_SENDER_EMAIL").ok_or(MailConfigError::Missing {
            var: "SMTP_SENDER_EMAIL",
        })?;
        let sender = sender.trim().to_owned();
        if let Err(e) = sender.parse::<Mailbox>() {
            return Err(invalid("SMTP_SENDER_EMAIL", sender, &e.to_string()));
        }

        let starttls = parse_bool("SMTP_TLS", get("SMTP_TLS"))?.unwrap_or(true);
        let use_ssl = parse_bool("SMTP_USE_SSL", get("SMTP_USE_SSL"))?.unwrap_or(false);
        let security = if use_ssl || port == SUBMISSIONS_PORT {
            Security::Tls
        } else if starttls {
            Security::StartTls
        } else {
            Security::None
        };

        let timeout = match get("SMTP_TIMEOUT") {
            None => DEFAULT_TIMEOUT,
            Some(raw) => match raw.trim().parse::<f64>() {
                // Sub-second values are allowed (tests), but zero would fail every send.
                Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 3600.0 => {
                    Duration::from_secs_f64(secs)
                }
                _ => {
                    return Err(invalid(
                        "SMTP_TIMEOUT",
                        raw,
                        "expected a number of seconds between 0 and 3600",
                    ))
                }
            },
        };

        Ok(Some(SmtpConfig {
            host,
            port,
            username: get("SMTP_USERNAME"),
            password: env("SMTP_PASSWORD").filter(|p| !p.is_empty()),
            sender,
            security,
            timeout,
        }))
    }
}

fn invalid(var: &'static str, value: String, reason: &str) -> MailConfigError {
    MailConfigError::Invalid {
        var,
        value,
        reason: reason.to_owned(),
    }
}

/// LiteLLM's settings are Python-style `True`/`False`; accept the other usual spellings too.
fn parse_bool(var: &'static str, raw: Option<String>) -> Result<Option<bool>, MailConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(Some(true)),
        "false" | "0" | "no" | "off" => Ok(Some(false)),
        _ => Err(invalid(var, raw, "expected True or False")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Option<SmtpConfig>, MailConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SmtpConfig::from_env(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let cfg = from(&[
            ("SMTP_HOST", "mail.example.com"),
            ("SMTP_SENDER_EMAIL", "a@example.com"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(cfg.port, 587);
        assert_eq!(cfg.security, Security::StartTls);
        assert_eq!(cfg.timeout, Duration::from_secs(30));
        assert!(cfg.username.is_none() && cfg.password.is_none());
    }

    #[test]
    fn empty_host_means_unset() {
        assert!(from(&[("SMTP_HOST", "")]).unwrap().is_none());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let base = [("SMTP_HOST", "h"), ("SMTP_SENDER_EMAIL", "a@example.com")];
        for (var, value) in [
            ("SMTP_PORT", "smtp"),
            ("SMTP_PORT", "0"),
            ("SMTP_TLS", "maybe"),
            ("SMTP_USE_SSL", "2"),
            ("SMTP_TIMEOUT", "-1"),
            ("SMTP_TIMEOUT", "NaN"),
        ] {
            let mut vars = base.to_vec();
            vars.push((var, value));
            let err = from(&vars).unwrap_err().to_string();
            assert!(err.contains(var), "{err}");
        }
        let err = from(&[("SMTP_HOST", "h"), ("SMTP_SENDER_EMAIL", "not an address")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SMTP_SENDER_EMAIL"), "{err}");
    }

    #[test]
    fn use_ssl_and_fractional_timeout() {
        let cfg = from(&[
            ("SMTP_HOST", "h"),
            ("SMTP_SENDER_EMAIL", "Tollgate <a@example.com>"),
            ("SMTP_USE_SSL", "True"),
            ("SMTP_TIMEOUT", "0.5"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(cfg.security, Security::Tls);
        assert_eq!(cfg.timeout, Duration::from_millis(500));
    }

    #[test]
    fn debug_hides_password() {
        let cfg = from(&[
            ("SMTP_HOST", "h"),
            ("SMTP_SENDER_EMAIL", "a@example.com"),
            ("SMTP_USERNAME", "user"),
            ("SMTP_PASSWORD", "hunter2-secret"),
        ])
        .unwrap()
        .unwrap();
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
