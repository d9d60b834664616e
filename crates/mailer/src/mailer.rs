//! The SMTP transport and the messages it sends.

use std::fmt;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailConfigError, Security, SmtpConfig};
use crate::template;

pub const INVITATION_SUBJECT: &str = "You're invited to Tollgate";

/// RFC 5322's limit for a line, without its CRLF.
const MAX_LINE: usize = 998;

const MIN_SCRUBBED_LEN: usize = 6;

/// Sending failed. Reasons come from the server or the network; the SMTP password is scrubbed
/// from them, so these may be logged and shown to an administrator.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid recipient address {address:?}: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("SMTP authentication with {server} failed: {reason}")]
    Auth { server: String, reason: String },
    /// The server refused the sender, a recipient or the message itself (4xx/5xx reply).
    #[error("SMTP server {server} rejected the message ({code}): {reason}")]
    Rejected {
        server: String,
        code: u16,
        reason: String,
    },
    #[error("timed out talking to SMTP server {server}")]
    Timeout { server: String },
    #[error("TLS with SMTP server {server} failed: {reason}")]
    Tls { server: String, reason: String },
    /// Connection refused, name not resolved, connection dropped, garbled reply…
    #[error("could not talk to SMTP server {server}: {reason}")]
    Transport { server: String, reason: String },
    #[error("could not build the email: {0}")]
    Message(String),
}

/// A pending invitation to announce.
pub struct Invitation<'a> {
    pub to: &'a str,
    /// The onboarding link, put verbatim in the text part and escaped in the HTML part.
    pub link: &'a str,
    pub invited_by: Option<&'a str>,
    /// When the link stops working, human readable, in UTC.
    pub expires_at: &'a str,
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    sender: Mailbox,
    /// `host:port`, to say which server an error is about.
    server: String,
    /// Kept only to scrub it from server replies quoted in errors.
    password: Option<String>,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("sender", &self.sender.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Builds the transport; nothing is sent or connected yet.
    pub fn new(cfg: &SmtpConfig) -> Result<Mailer, MailConfigError> {
        let sender: Mailbox =
            cfg.sender
                .trim()
                .parse()
                .map_err(
                    |e: lettre::address::AddressError| MailConfigError::Invalid {
                        var: "SMTP_SENDER_EMAIL",
                        value: cfg.sender.clone(),
                        reason: e.to_string(),
                    },
                )?;

        let tls_error = |e: SmtpError| MailConfigError::Tls {
            host: cfg.host.clone(),
            reason: e.to_string(),
        };
        let builder = match cfg.security {
            Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
                .map_err(tls_error)?,
            Security::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host).map_err(tls_error)?
            }
            Security::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
        };
        let mut builder = builder.port(cfg.port).timeout(Some(cfg.timeout));
        // LiteLLM logs in only when both are set; a lone username means an open relay.
        if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }

        Ok(Mailer {
            transport: builder.build(),
            sender,
            server: format!("{}:{}", cfg.host, cfg.port),
            password: cfg.password.clone().filter(|p| !p.is_empty()),
        })
    }

    /// Plain-text + HTML (multipart/alternative) message with the real onboarding link in both
    /// parts; subject "You're invited to Tollgate".
    pub async fn send_invitation(&self, inv: &Invitation<'_>) -> Result<(), MailError> {
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(body(template::invitation_text(inv)));
        let html = SinglePart::builder()
            .header(ContentType::TEXT_HTML)
            .body(body(template::invitation_html(inv)));
        self.send(inv.to, INVITATION_SUBJECT, |m| {
            m.multipart(MultiPart::alternative().singlepart(text).singlepart(html))
        })
        .await
    }

    /// A plain-text notice (budget alerts and the like) to one address.
    pub async fn send_notice(&self, to: &str, subject: &str, text: &str) -> Result<(), MailError> {
        let part = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(body(text.to_string()));
        self.send(to, subject, |m| m.singlepart(part)).await
    }

    /// Addresses, builds (with `content`) and sends one message.
    async fn send(
        &self,
        to: &str,
        subject: &str,
        content: impl FnOnce(lettre::message::MessageBuilder) -> Result<Message, lettre::error::Error>,
    ) -> Result<(), MailError> {
        let mailbox: Mailbox = to
            .trim()
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::BadAddress {
                address: to.to_owned(),
                reason: e.to_string(),
            })?;
        let builder = Message::builder()
            .from(self.sender.clone())
            .to(mailbox)
            .subject(subject)
            .message_id(None);
        let message = content(builder).map_err(|e| MailError::Message(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| self.classify(&e))
    }

    fn classify(&self, e: &SmtpError) -> MailError {
        let server = self.server.clone();
        let reason = self.scrub(e.to_string());
        if e.is_timeout() {
            return MailError::Timeout { server };
        }
        if e.is_tls() {
            return MailError::Tls { server, reason };
        }
        if let Some(code) = e.status() {
            let code = u16::from(code);
            // 530 auth required, 534 mechanism too weak, 535 bad credentials, 538 encryption
            // required for the mechanism (RFC 4954).
            if matches!(code, 530 | 534 | 535 | 538) {
                return MailError::Auth { server, reason };
            }
            return MailError::Rejected {
                server,
                code,
                reason,
            };
        }
        // lettre reports "the server offers no mechanism we speak" as a client error; only its
        // message tells it apart.
        if e.is_client() && reason.contains("authentication mechanism") {
            return MailError::Auth { server, reason };
        }
        MailError::Transport { server, reason }
    }

    /// A server may quote what it received back in its reply; keep the password out of errors.
    /// Very short passwords are left alone: they match ordinary words and would garble the
    /// reason while hiding nothing.
    fn scrub(&self, reason: String) -> String {
        match &self.password {
            Some(p) if p.len() >= MIN_SCRUBBED_LEN && reason.contains(p.as_str()) => {
                reason.replace(p.as_str(), "[redacted]")
            }
            _ => reason,
        }
    }
}

/// Sends the part as 7bit when it already is valid 7bit (ASCII, CRLF lines of at most 998
/// bytes), so links stay unbroken in the raw message: lettre itself would quoted-print any line
/// over 76 characters, splitting a long link with soft breaks. Anything else gets lettre's
/// choice.
fn body(s: String) -> Body {
    let is_7bit = s.is_ascii()
        && !s.contains('\0')
        && s.split("\r\n")
            .all(|line| line.len() <= MAX_LINE && !line.contains(['\r', '\n']));
    if is_7bit {
        Body::dangerous_pre_encoded(s.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer_with_password(password: &str) -> Mailer {
        Mailer::new(&SmtpConfig {
            host: "127.0.0.1".to_owned(),
            port: 25,
            username: Some("u".to_owned()),
            password: Some(password.to_owned()),
            sender: "a@example.com".to_owned(),
            security: Security::None,
            timeout: std::time::Duration::from_secs(1),
        })
        .unwrap()
    }

    #[test]
    fn echoed_password_is_scrubbed() {
        let mailer = mailer_with_password("hunter22");
        assert_eq!(
            mailer.scrub("535 bad password hunter22 for u".to_owned()),
            "535 bad password [redacted] for u"
        );
        // A tiny password would only garble the text.
        let mailer = mailer_with_password("p");
        assert_eq!(mailer.scrub("permanent".to_owned()), "permanent");
    }

    #[test]
    fn long_ascii_lines_stay_7bit() {
        let link = format!("https://gw.example.com/{}", "a".repeat(200));
        let b = body(format!("x\r\n{link}\r\n"));
        assert_eq!(b.encoding(), ContentTransferEncoding::SevenBit);
        assert!(String::from_utf8_lossy(b.as_ref()).contains(&link));
    }

    #[test]
    fn non_ascii_or_bare_newlines_fall_back() {
        assert_ne!(
            body("José\r\n".to_owned()).encoding(),
            ContentTransferEncoding::SevenBit
        );
        let b = body("a\nb\r\n".to_owned());
        // lettre normalises the bare LF; whatever it picks must not be our raw shortcut.
        assert!(!b
            .as_ref()
            .windows(2)
            .any(|w| w[0] != b'\r' && w[1] == b'\n'));
        let long = "a".repeat(MAX_LINE + 1);
        assert_ne!(body(long).encoding(), ContentTransferEncoding::SevenBit);
    }
}
