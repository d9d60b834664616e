//! The invitation's text and HTML bodies. Plain string building: two short messages don't
//! justify a template engine, and every interpolated value goes through `escape_html`.

use crate::mailer::Invitation;

/// Lines are joined with CRLF here so the body can go out as 7bit unchanged (see `mailer`).
pub(crate) fn invitation_text(inv: &Invitation<'_>) -> String {
    let opening = match inv.invited_by {
        Some(by) => format!("{} has invited you to Tollgate.", one_line(by)),
        None => "You have been invited to Tollgate.".to_owned(),
    };
    [
        "Hello,",
        "",
        &opening,
        "",
        "Open this link to set your password and sign in:",
        "",
        inv.link,
        "",
        &format!("The link is valid until {}.", one_line(inv.expires_at)),
        "If you were not expecting this invitation, you can ignore this email.",
        "",
    ]
    .join("\r\n")
}

pub(crate) fn invitation_html(inv: &Invitation<'_>) -> String {
    let opening = match inv.invited_by {
        Some(by) => format!(
            "<strong>{}</strong> has invited you to Tollgate.",
            escape_html(&one_line(by))
        ),
        None => "You have been invited to Tollgate.".to_owned(),
    };
    let link = escape_html(inv.link);
    [
        "<!DOCTYPE html>",
        "<html>",
        "<head><meta charset=\"utf-8\"><title>You're invited to Tollgate</title></head>",
        "<body style=\"font-family: sans-serif; line-height: 1.5;\">",
        "<p>Hello,</p>",
        &format!("<p>{opening}</p>"),
        "<p>Open this link to set your password and sign in:</p>",
        &format!("<p><a href=\"{link}\">{link}</a></p>"),
        &format!(
            "<p>The link is valid until {}.</p>",
            escape_html(&one_line(inv.expires_at))
        ),
        "<p>If you were not expecting this invitation, you can ignore this email.</p>",
        "</body>",
        "</html>",
        "",
    ]
    .join("\r\n")
}

/// Escapes text for use both in element content and inside double- or single-quoted
/// attributes.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A display name or date must not break the message's line structure.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn html_escapes_inviter_and_link() {
        let inv = Invitation {
            to: "a@example.com",
            link: "https://gw.example.com/ui/onboarding?invitation_id=abc&x=\"><script>",
            invited_by: Some("<b>Mallory</b>"),
            expires_at: "2030-01-01 00:00 UTC",
        };
        let html = invitation_html(&inv);
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>Mallory"));
        assert!(html.contains("&lt;b&gt;Mallory&lt;/b&gt;"));
        assert!(html.contains(
            "href=\"https://gw.example.com/ui/onboarding?invitation_id=abc&amp;x=&quot;&gt;&lt;script&gt;\""
        ));
    }

    #[test]
    fn text_keeps_link_verbatim_and_flattens_inviter() {
        let inv = Invitation {
            to: "a@example.com",
            link: "https://gw.example.com/ui/onboarding?invitation_id=abc&d=1",
            invited_by: Some("Eve\r\nBcc: x@example.com"),
            expires_at: "2030-01-01 00:00 UTC",
        };
        let text = invitation_text(&inv);
        assert!(text.contains("\r\nhttps://gw.example.com/ui/onboarding?invitation_id=abc&d=1\r\n"));
        assert!(text.contains("Eve  Bcc: x@example.com has invited you"));
    }
}
