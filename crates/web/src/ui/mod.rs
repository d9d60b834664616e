//! Server-rendered pages.
//!
//! Every template, stylesheet and script is embedded in the binary. Templates are rendered with
//! HTML autoescaping; the pages need no JavaScript (`static/app.js` only adds Copy buttons and
//! local dates) and carry no inline scripts, styles or event handlers, so a strict
//! Content-Security-Policy (`default-src 'self'`) fits.
//!
//! The context each page gets is a typed struct next to its handler in `crate::ui_routes`:
//! signed-in pages get `me`, `csrf`, `flash`, `nav_active` and `can`, plus their own fields.
//! The template tests (`tests/`, one file per page) render them with contexts of that shape.

use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

/// Templates by name. Names starting with `_` and the two layouts are building blocks, not pages.
const TEMPLATES: &[(&str, &str)] = &[
    ("_macros.html", include_str!("templates/_macros.html")),
    ("base.html", include_str!("templates/base.html")),
    ("public.html", include_str!("templates/public.html")),
    ("login.html", include_str!("templates/login.html")),
    ("onboarding.html", include_str!("templates/onboarding.html")),
    ("home.html", include_str!("templates/home.html")),
    ("users.html", include_str!("templates/users.html")),
    (
        "invitations.html",
        include_str!("templates/invitations.html"),
    ),
    ("teams.html", include_str!("templates/teams.html")),
    ("team.html", include_str!("templates/team.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("account.html", include_str!("templates/account.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
    ("error.html", include_str!("templates/error.html")),
    ("keys.html", include_str!("templates/keys.html")),
    ("usage.html", include_str!("templates/usage.html")),
    ("models.html", include_str!("templates/models.html")),
];

/// Static files served under `/ui/static/<name>`: name, content type, bytes.
const STATIC_ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/app.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("static/favicon.svg"),
    ),
];

/// The page renderer: a template environment holding every embedded template.
#[derive(Debug)]
pub struct Ui {
    env: Environment<'static>,
}

/// A template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("template {name}: {message}")]
    Render { name: String, message: String },
}

impl Ui {
    /// Loads all embedded templates, with HTML autoescaping on.
    pub fn new() -> Result<Ui, UiError> {
        Ui::build(UndefinedBehavior::Lenient)
    }

    fn build(undefined: UndefinedBehavior) -> Result<Ui, UiError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_undefined_behavior(undefined);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("utc_short", utc_short);
        env.add_filter("utc_title", utc_title);
        env.add_filter("utc_iso", utc_iso);
        env.add_filter("seg", path_segment);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|err| render_error(name, &err))?;
        }
        Ok(Ui { env })
    }

    /// Renders `page` (for example `"login.html"`) with `ctx` as its context.
    pub fn render<S: serde::Serialize>(&self, page: &str, ctx: &S) -> Result<String, UiError> {
        let template = self
            .env
            .get_template(page)
            .map_err(|err| render_error(page, &err))?;
        template.render(ctx).map_err(|err| render_error(page, &err))
    }
}

/// Embedded static files served under /ui/static/<name>: returns (content type, bytes).
pub fn static_asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    STATIC_ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

fn render_error(name: &str, err: &minijinja::Error) -> UiError {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    UiError::Render {
        name: name.to_owned(),
        message,
    }
}

/// The value as plain text: strings as they are, none/undefined as nothing.
fn plain(value: &Value) -> String {
    if let Some(text) = value.as_str() {
        text.to_owned()
    } else if value.is_none() || value.is_undefined() {
        String::new()
    } else {
        value.to_string()
    }
}

fn parse_utc(value: &Value) -> Option<DateTime<Utc>> {
    let text = value.as_str()?;
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// `2025-01-02 03:04 UTC`; text that is not RFC 3339 passes through unchanged.
fn utc_short(value: &Value) -> String {
    match parse_utc(value) {
        Some(at) => at.format("%Y-%m-%d %H:%M UTC").to_string(),
        None => plain(value),
    }
}

/// `2025-01-02 03:04:05 UTC`, for the hover title.
fn utc_title(value: &Value) -> String {
    match parse_utc(value) {
        Some(at) => at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => plain(value),
    }
}

/// `2025-01-02T03:04:05Z`, for the `datetime` attribute.
fn utc_iso(value: &Value) -> String {
    match parse_utc(value) {
        Some(at) => at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => plain(value),
    }
}

/// Percent-encodes a value for use as one URL path segment (also encodes `/`, `?`, `#`).
fn path_segment(value: &Value) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let raw = plain(value);
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests;
