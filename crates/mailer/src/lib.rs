//! Outgoing email over SMTP. Configuration comes from LiteLLM's `SMTP_*` environment variables
//! so an existing deployment keeps working; the only message today is the invitation carrying
//! the onboarding link.

mod config;
mod mailer;
mod template;

pub use config::{MailConfigError, Security, SmtpConfig};
pub use mailer::{Invitation, MailError, Mailer, INVITATION_SUBJECT};
