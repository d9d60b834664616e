//! Sending invitation emails. A failure is reported to the admin and logged; the invitation
//! itself is already stored, so nothing is lost.

use serde_json::{json, Value};
use tollgate_mailer::{Invitation, Mailer};
use tollgate_store::invitations::InvitationRow;
use tollgate_store::users::UserRow;

use crate::principal::Principal;
use crate::state::WebState;

pub struct Mail {
    pub mailer: Mailer,
}

pub enum MailOutcome {
    Sent,
    NotConfigured,
    NoAddress,
    Failed(String),
}

impl MailOutcome {
    pub fn to_json(&self) -> Value {
        match self {
            MailOutcome::Sent => json!({"sent": true}),
            MailOutcome::NotConfigured => {
                json!({"sent": false, "error": "SMTP is not configured (set SMTP_HOST and SMTP_SENDER_EMAIL)."})
            }
            MailOutcome::NoAddress => {
                json!({"sent": false, "error": "The user has no email address."})
            }
            MailOutcome::Failed(e) => json!({"sent": false, "error": e}),
        }
    }

    pub fn error(&self) -> Option<String> {
        match self {
            MailOutcome::Sent => None,
            other => other.to_json()["error"].as_str().map(str::to_string),
        }
    }
}

pub async fn send_invitation(
    state: &WebState,
    user: &UserRow,
    link: &str,
    inv: &InvitationRow,
    by: &Principal,
) -> MailOutcome {
    let Some(mail) = &state.mail else {
        return MailOutcome::NotConfigured;
    };
    let Some(to) = user.user_email.as_deref() else {
        return MailOutcome::NoAddress;
    };
    let expires = inv.expires_at.format("%Y-%m-%d %H:%M UTC").to_string();
    let result = mail
        .mailer
        .send_invitation(&Invitation {
            to,
            link,
            invited_by: by.email.as_deref(),
            expires_at: &expires,
        })
        .await;
    match result {
        Ok(()) => {
            tracing::info!(user_id = %user.user_id, "invitation email sent");
            MailOutcome::Sent
        }
        Err(e) => {
            tracing::error!(user_id = %user.user_id, error = %e, "invitation email failed");
            MailOutcome::Failed(e.to_string())
        }
    }
}
