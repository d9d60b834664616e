//! Where Redis is, in LiteLLM's words: `router_settings.redis_url`, or `redis_host` / `redis_port`
//! / `redis_password` / `redis_db` (each may be `os.environ/VAR`); else the environment's
//! `REDIS_URL`, or `REDIS_HOST` / `REDIS_PORT` / `REDIS_PASSWORD` / `REDIS_USERNAME` /
//! `REDIS_SSL`. Everything ends up as one URL, held as a secret because it may carry a password.

use serde_yaml_ng::Value;

use super::raw::{field, Ctx};
use super::{ConfigError, Secret};

/// A setting that may be written as a number (a port) or a string.
fn scalar(ctx: &Ctx<'_>, value: &Value, path: &str) -> Result<String, ConfigError> {
    match value {
        Value::Number(n) => Ok(n.to_string()),
        _ => ctx.string(value, path),
    }
}

fn router_part(ctx: &Ctx<'_>, router: &Value, key: &str) -> Result<Option<String>, ConfigError> {
    match field(router, key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar(ctx, v, &format!("router_settings.{key}")).map(Some),
    }
}

struct Parts {
    host: String,
    port: Option<String>,
    username: Option<String>,
    password: Option<String>,
    db: Option<String>,
    tls: bool,
}

fn url_of(ctx: &Ctx<'_>, p: Parts, path: &str) -> Result<String, ConfigError> {
    let scheme = if p.tls { "rediss" } else { "redis" };
    let port = p.port.unwrap_or_else(|| "6379".to_string());
    let mut url = url::Url::parse(&format!("{scheme}://{}:{port}/", p.host))
        .map_err(|_| ctx.invalid(path, "a Redis host name and port"))?;
    if let Some(user) = p.username.filter(|u| !u.is_empty()) {
        url.set_username(&user)
            .map_err(|_| ctx.invalid(path, "a Redis user name"))?;
    }
    if let Some(pw) = p.password.filter(|p| !p.is_empty()) {
        // set_password percent-encodes, so any character may stand in a password.
        url.set_password(Some(&pw))
            .map_err(|_| ctx.invalid(path, "a Redis password"))?;
    }
    if let Some(db) = p.db {
        let n: u32 = db
            .trim()
            .parse()
            .map_err(|_| ctx.invalid("router_settings.redis_db", "a database number"))?;
        url.set_path(&n.to_string());
    }
    Ok(url.to_string())
}

pub(super) fn redis_url(ctx: &Ctx<'_>, router: &Value) -> Result<Option<Secret>, ConfigError> {
    if let Some(url) = router_part(ctx, router, "redis_url")? {
        return Ok(Some(Secret::new(url)));
    }
    if let Some(host) = router_part(ctx, router, "redis_host")? {
        let parts = Parts {
            host,
            port: router_part(ctx, router, "redis_port")?,
            username: ctx.env.get("REDIS_USERNAME"),
            password: router_part(ctx, router, "redis_password")?,
            db: router_part(ctx, router, "redis_db")?,
            tls: ctx.env.flag("REDIS_SSL"),
        };
        return url_of(ctx, parts, "router_settings.redis_host").map(|u| Some(Secret::new(u)));
    }
    if let Some(url) = ctx.env.get("REDIS_URL").filter(|u| !u.trim().is_empty()) {
        return Ok(Some(Secret::new(url)));
    }
    if let Some(host) = ctx.env.get("REDIS_HOST").filter(|h| !h.trim().is_empty()) {
        let parts = Parts {
            host,
            port: ctx.env.get("REDIS_PORT"),
            username: ctx.env.get("REDIS_USERNAME"),
            password: ctx.env.get("REDIS_PASSWORD"),
            db: None,
            tls: ctx.env.flag("REDIS_SSL"),
        };
        return url_of(ctx, parts, "REDIS_HOST").map(|u| Some(Secret::new(u)));
    }
    Ok(None)
}
