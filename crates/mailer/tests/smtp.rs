//! The mailer against a real SMTP conversation (testkit's server) and the env-var mapping.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tollgate_mailer::{Invitation, MailError, Mailer, Security, SmtpConfig, INVITATION_SUBJECT};
use tollgate_testkit::smtp::{SmtpOptions, SmtpServer};

const SENDER: &str = "noreply@tollgate.test";
const LINK: &str = "https://gateway.example.com/ui/onboarding?invitation_id=Zm9v-YmFy_bGluay1pZC10aGF0LWlzLWxvbmctZW5vdWdoLXRvLWV4Y2VlZC03Ni1jaGFycw&x=1";
const PASSWORD: &str = "s3cret-smtp-pa55word";

fn config(server: &SmtpServer) -> SmtpConfig {
    SmtpConfig {
        host: server.addr.ip().to_string(),
        port: server.addr.port(),
        username: None,
        password: None,
        sender: SENDER.to_owned(),
        security: Security::None,
        timeout: Duration::from_secs(5),
    }
}

fn invitation(to: &str) -> Invitation<'_> {
    Invitation {
        to,
        link: LINK,
        invited_by: Some("Ada <admin> & co"),
        expires_at: "2030-01-02 03:04 UTC",
    }
}

/// The body of the MIME part whose Content-Type starts with `content_type`.
fn part<'a>(data: &'a str, content_type: &str) -> &'a str {
    let start = data
        .find(&format!("Content-Type: {content_type}"))
        .unwrap_or_else(|| panic!("no {content_type} part in:\n{data}"));
    let rest = &data[start..];
    let body_start = rest.find("\r\n\r\n").expect("part headers end") + 4;
    let body = &rest[body_start..];
    let end = body.find("\r\n--").unwrap_or(body.len());
    &body[..end]
}

#[tokio::test]
async fn invitation_is_delivered_with_the_link_in_both_parts() {
    let server = SmtpServer::start().await;
    let mailer = Mailer::new(&config(&server)).unwrap();

    mailer
        .send_invitation(&invitation("new.user@example.com"))
        .await
        .unwrap();

    let messages = server.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(messages.len(), 1);
    let mail = &messages[0];
    assert_eq!(mail.from, SENDER);
    assert_eq!(mail.to, vec!["new.user@example.com".to_owned()]);
    assert_eq!(mail.header("From").as_deref(), Some(SENDER));
    assert_eq!(mail.header("To").as_deref(), Some("new.user@example.com"));
    assert_eq!(mail.header("Subject").as_deref(), Some(INVITATION_SUBJECT));
    assert!(mail
        .header("Content-Type")
        .is_some_and(|ct| ct.starts_with("multipart/alternative")));

    let text = part(&mail.data, "text/plain");
    assert!(text.contains(LINK), "{text}");
    assert!(text.contains("Ada <admin> & co has invited you"), "{text}");
    assert!(text.contains("2030-01-02 03:04 UTC"), "{text}");

    let html = part(&mail.data, "text/html");
    let escaped_link = LINK.replace('&', "&amp;");
    assert!(
        html.contains(&format!("<a href=\"{escaped_link}\">{escaped_link}</a>")),
        "{html}"
    );
    assert!(html.contains("Ada &lt;admin&gt; &amp; co"), "{html}");
    // 7bit parts: the link is never split by quoted-printable soft line breaks.
    assert_eq!(
        mail.data.matches("Content-Transfer-Encoding: 7bit").count(),
        2
    );
}

#[tokio::test]
async fn correct_credentials_authenticate() {
    let server = SmtpServer::start_with(SmtpOptions {
        credentials: Some(("mailer".to_owned(), PASSWORD.to_owned())),
        reject_rcpt: None,
    })
    .await;
    let mut cfg = config(&server);
    cfg.username = Some("mailer".to_owned());
    cfg.password = Some(PASSWORD.to_owned());

    Mailer::new(&cfg)
        .unwrap()
        .send_invitation(&invitation("a@example.com"))
        .await
        .unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn wrong_credentials_fail_without_revealing_the_password() {
    let server = SmtpServer::start_with(SmtpOptions {
        credentials: Some(("mailer".to_owned(), "the-right-one".to_owned())),
        reject_rcpt: None,
    })
    .await;
    let mut cfg = config(&server);
    cfg.username = Some("mailer".to_owned());
    cfg.password = Some(PASSWORD.to_owned());

    let err = Mailer::new(&cfg)
        .unwrap()
        .send_invitation(&invitation("a@example.com"))
        .await
        .unwrap_err();

    assert!(matches!(err, MailError::Auth { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.to_lowercase().contains("authentication"), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn missing_credentials_are_an_auth_error() {
    let server = SmtpServer::start_with(SmtpOptions {
        credentials: Some(("mailer".to_owned(), PASSWORD.to_owned())),
        reject_rcpt: None,
    })
    .await;

    let err = Mailer::new(&config(&server))
        .unwrap()
        .send_invitation(&invitation("a@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Auth { .. }), "{err:?}");
}

#[tokio::test]
async fn rejected_recipient_is_an_error() {
    let server = SmtpServer::start_with(SmtpOptions {
        credentials: None,
        reject_rcpt: Some("nobody@example.com".to_owned()),
    })
    .await;

    let err = Mailer::new(&config(&server))
        .unwrap()
        .send_invitation(&invitation("nobody@example.com"))
        .await
        .unwrap_err();

    match &err {
        MailError::Rejected { code, reason, .. } => {
            assert_eq!(*code, 550);
            assert!(reason.contains("Recipient address rejected"), "{reason}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn closed_port_fails_quickly() {
    // Bind and drop a listener so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port,
        username: None,
        password: None,
        sender: SENDER.to_owned(),
        security: Security::None,
        timeout: Duration::from_millis(500),
    };

    let started = Instant::now();
    let err = Mailer::new(&cfg)
        .unwrap()
        .send_invitation(&invitation("a@example.com"))
        .await
        .unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(err, MailError::Transport { .. } | MailError::Timeout { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_recipient_is_a_bad_address() {
    let server = SmtpServer::start().await;
    let err = Mailer::new(&config(&server))
        .unwrap()
        .send_invitation(&invitation("not an address"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::BadAddress { .. }), "{err:?}");

    let err = Mailer::new(&config(&server))
        .unwrap()
        .send_invitation(&invitation("a@example.com\r\nBcc: evil@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::BadAddress { .. }), "{err:?}");
    assert!(server.messages().is_empty());
}

fn from_env(vars: &[(&str, &str)]) -> Result<Option<SmtpConfig>, tollgate_mailer::MailConfigError> {
    let map: HashMap<&str, &str> = vars.iter().copied().collect();
    SmtpConfig::from_env(&|k| map.get(k).map(|v| (*v).to_owned()))
}

#[test]
fn from_env_without_host_is_none() {
    assert!(from_env(&[]).unwrap().is_none());
    assert!(from_env(&[("SMTP_SENDER_EMAIL", "a@example.com")])
        .unwrap()
        .is_none());
}

#[test]
fn from_env_requires_a_sender() {
    let err = from_env(&[("SMTP_HOST", "smtp.example.com")]).unwrap_err();
    assert!(err.to_string().contains("SMTP_SENDER_EMAIL"), "{err}");
}

#[test]
fn from_env_port_465_means_tls() {
    let cfg = from_env(&[
        ("SMTP_HOST", "smtp.example.com"),
        ("SMTP_PORT", "465"),
        ("SMTP_SENDER_EMAIL", "a@example.com"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(cfg.port, 465);
    assert_eq!(cfg.security, Security::Tls);
}

#[test]
fn from_env_tls_false_means_no_encryption() {
    let cfg = from_env(&[
        ("SMTP_HOST", "smtp.example.com"),
        ("SMTP_PORT", "25"),
        ("SMTP_TLS", "False"),
        ("SMTP_SENDER_EMAIL", "a@example.com"),
        ("SMTP_USERNAME", "u"),
        ("SMTP_PASSWORD", PASSWORD),
        ("SMTP_TIMEOUT", "7"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(cfg.security, Security::None);
    assert_eq!(cfg.port, 25);
    assert_eq!(cfg.username.as_deref(), Some("u"));
    assert_eq!(cfg.password.as_deref(), Some(PASSWORD));
    assert_eq!(cfg.timeout, Duration::from_secs(7));
    assert!(!format!("{cfg:?}").contains(PASSWORD));
}

#[test]
fn tls_modes_build_a_mailer() {
    for security in [Security::StartTls, Security::Tls] {
        let cfg = SmtpConfig {
            host: "smtp.example.com".to_owned(),
            port: 587,
            username: Some("u".to_owned()),
            password: Some(PASSWORD.to_owned()),
            sender: "Tollgate <noreply@example.com>".to_owned(),
            security,
            timeout: Duration::from_secs(1),
        };
        let mailer = Mailer::new(&cfg).unwrap();
        assert!(!format!("{mailer:?}").contains(PASSWORD));
    }
}
