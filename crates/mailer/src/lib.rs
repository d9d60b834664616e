//! Outgoing email over SMTP. Configuration comes from LiteLLM's `SMTP_*` environment variables
//! so an existing deployment keeps working. Messages: the invitation carrying the onboarding
//! link, and plain-text notices such as soft-budget alerts.

mod config;
mod mailer;
mod template;

pub use config::{MailConfigError, Security, SmtpConfig};
pub use mailer::{Invitation, MailError, Mailer, INVITATION_SUBJECT};
