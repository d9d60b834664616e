//! Range checks and URL validation shared by all sections.

use serde_yaml_ng::Value;
use url::Url;

use super::raw::Ctx;
use super::ConfigError;

/// Longest stretch of a bad URL echoed back; enough to spot a typo.
const MAX_ECHO: usize = 120;

pub(super) fn http_url(ctx: &Ctx<'_>, raw: &str, path: &str) -> Result<Url, ConfigError> {
    match Url::parse(raw.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        _ => Err(ctx.invalid(path, format!("an http(s) URL, got \"{}\"", redact_url(raw)))),
    }
}

/// A URL may carry credentials (`user:pass@`, `?key=`), so those parts are
/// masked before the text appears in an error.
pub(super) fn redact_url(raw: &str) -> String {
    let mut shown = raw.trim().to_string();
    if let Some(q) = shown.find(['?', '#']) {
        shown.replace_range(q.., "?***");
    }
    let authority_start = shown.find("://").map_or(0, |i| i + 3);
    let authority_end = shown[authority_start..]
        .find('/')
        .map_or(shown.len(), |i| authority_start + i);
    if let Some(at) = shown[authority_start..authority_end].rfind('@') {
        shown.replace_range(authority_start..authority_start + at, "***");
    }
    if shown.chars().count() > MAX_ECHO {
        shown = shown.chars().take(MAX_ECHO).collect::<String>() + "...";
    }
    shown
}

/// Prices: finite and not negative (a NaN price would poison spend totals).
pub(super) fn cost(ctx: &Ctx<'_>, value: &Value, path: &str) -> Result<f64, ConfigError> {
    let expected = "a finite number >= 0";
    let n = ctx.number(value, path, expected)?;
    if n.is_finite() && n >= 0.0 {
        Ok(n)
    } else {
        Err(ctx.invalid(path, expected))
    }
}

pub(super) fn positive_secs(ctx: &Ctx<'_>, value: &Value, path: &str) -> Result<f64, ConfigError> {
    let expected = "a positive number of seconds";
    let n = ctx.number(value, path, expected)?;
    if n.is_finite() && n > 0.0 {
        Ok(n)
    } else {
        Err(ctx.invalid(path, expected))
    }
}

pub(super) fn non_negative_secs(
    ctx: &Ctx<'_>,
    value: &Value,
    path: &str,
) -> Result<f64, ConfigError> {
    let expected = "a number of seconds >= 0";
    let n = ctx.number(value, path, expected)?;
    if n.is_finite() && n >= 0.0 {
        Ok(n)
    } else {
        Err(ctx.invalid(path, expected))
    }
}
