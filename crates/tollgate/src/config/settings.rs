//! Top level, general_settings, litellm_settings and router_settings.

use serde_yaml_ng::Value;
use tollgate_domain::role::Role;

use super::deployment::parse_model_list;
use super::env::apply_environment_variables;
use super::policy::{self, Disposition, Section};
use super::raw::{child, field, item, Ctx, Text};
use super::validate::{non_negative_secs, positive_secs};
use super::{Config, ConfigError, RouterSettings, RoutingStrategy, Secret};

const MIB: usize = 1024 * 1024;
const DEFAULT_MAX_REQUEST_MB: usize = 8;

type Fallbacks = Vec<(String, Vec<String>)>;

pub(super) fn build(
    root: &Value,
    file: &str,
    process_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut ctx = Ctx::new(file, process_env);
    let config = build_in(&mut ctx, root);
    ctx.finish(config)
}

fn build_in(ctx: &mut Ctx<'_>, root: &Value) -> Result<Config, ConfigError> {
    if !(root.is_null() || root.is_mapping()) {
        return Err(ctx.invalid("(top level)", "a mapping of config sections"));
    }
    // First, because every os.environ/ lookup below must see these.
    if let Some(vars) = field(root, "environment_variables") {
        apply_environment_variables(ctx, vars)?;
    }
    check_keys(ctx, root, "", Section::Top)?;

    let empty = Value::Null;
    let general = field(root, "general_settings").unwrap_or(&empty);
    let litellm = field(root, "litellm_settings").unwrap_or(&empty);
    let router = field(root, "router_settings").unwrap_or(&empty);
    check_keys(ctx, general, "general_settings", Section::General)?;
    check_keys(ctx, litellm, "litellm_settings", Section::Litellm)?;
    check_keys(ctx, router, "router_settings", Section::Router)?;

    let master_key = secret_setting(ctx, general, "master_key", "LITELLM_MASTER_KEY")?;
    let database_url = secret_setting(ctx, general, "database_url", "DATABASE_URL")?;
    let permit_weak_master_key = match field(general, "dangerously_permit_weak_or_unset_master_key")
    {
        Some(v) => ctx.boolean(
            v,
            "general_settings.dangerously_permit_weak_or_unset_master_key",
        )?,
        None => false,
    } || ctx
        .env
        .flag("LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY");
    let max_request_body_bytes = match field(general, "max_request_size_mb") {
        Some(v) => {
            let path = "general_settings.max_request_size_mb";
            let expected = "a positive number of megabytes";
            let mb = ctx.number(v, path, expected)?;
            if !(mb.is_finite() && mb > 0.0) {
                return Err(ctx.invalid(path, expected));
            }
            // Saturating: an absurd limit just means "no practical limit".
            (mb * MIB as f64).min(usize::MAX as f64) as usize
        }
        None => DEFAULT_MAX_REQUEST_MB * MIB,
    };
    let drop_params = match field(litellm, "drop_params") {
        Some(v) => ctx.boolean(v, "litellm_settings.drop_params")?,
        None => false,
    };
    let default_user_role = default_user_role(ctx, litellm)?;
    let redis_url = super::redis::redis_url(ctx, router)?;
    let router = router_settings(ctx, litellm, router)?;
    let model_list = match field(root, "model_list") {
        Some(list) => parse_model_list(ctx, list)?,
        None => Vec::new(),
    };

    Ok(Config {
        model_list,
        master_key,
        database_url,
        router,
        redis_url,
        drop_params,
        max_request_body_bytes,
        permit_weak_master_key,
        default_user_role,
        warnings: std::mem::take(&mut ctx.warnings),
    })
}

/// `litellm_settings.default_internal_user_params`: only `user_role` is used (the role of users
/// made at their first SSO sign-in); a budget, model list or limit there is refused, as
/// ignoring it would give new users more than meant.
fn default_user_role(ctx: &mut Ctx<'_>, litellm: &Value) -> Result<Role, ConfigError> {
    let base = "litellm_settings.default_internal_user_params";
    let Some(params) = field(litellm, "default_internal_user_params") else {
        return Ok(Role::InternalUserViewer);
    };
    let mut role = Role::InternalUserViewer;
    for (key, value) in ctx.entries(params, base)? {
        let path = child(base, key);
        if key == "user_role" {
            let text = match ctx.text(value, &path)? {
                Text::Plain(s) => Some(s),
                Text::Env { value, .. } => value,
            };
            if let Some(t) = text {
                role = Role::parse(t.trim()).ok_or_else(|| {
                    ctx.invalid(
                        &path,
                        "one of proxy_admin, proxy_admin_viewer, internal_user, internal_user_viewer",
                    )
                })?;
            }
        } else if !value.is_null() {
            return Err(ctx.unsupported(
                &path,
                "only user_role is supported here; budgets, models and limits for new users are not, and ignoring them would give new users more than meant",
            ));
        }
    }
    Ok(role)
}

/// Runs every key of a section through the policy table; unknown keys warn.
fn check_keys(
    ctx: &mut Ctx<'_>,
    section: &Value,
    path: &str,
    kind: Section,
) -> Result<(), ConfigError> {
    let at = if path.is_empty() { "(top level)" } else { path };
    for (key, value) in ctx.entries(section, at)? {
        let key_path = child(path, key);
        if policy::check(ctx, kind, key, value, &key_path)? == Disposition::Unknown {
            ctx.warn(&key_path, "unknown key; ignored");
        }
    }
    Ok(())
}

/// master_key / database_url: the config value, else the env variable.
/// An unresolvable reference leaves it unset with a warning, as in LiteLLM
/// (the gateway then decides whether it may start without one).
fn secret_setting(
    ctx: &mut Ctx<'_>,
    general: &Value,
    key: &str,
    env_name: &str,
) -> Result<Option<Secret>, ConfigError> {
    let path = child("general_settings", key);
    let Some(value) = field(general, key) else {
        return Ok(ctx.env.get(env_name).map(Secret::new));
    };
    Ok(match ctx.text(value, &path)? {
        // An empty master key is a weak key, refused at start; an empty database URL means
        // the embedded default.
        Text::Plain(s) if s.is_empty() && key != "master_key" => {
            ctx.warn(
                &path,
                &format!("is empty; {key} is treated as not configured"),
            );
            None
        }
        Text::Plain(s) | Text::Env { value: Some(s), .. } => Some(Secret::new(s)),
        // Silently falling back (to a generated key, or to the local SQLite file) would hide a
        // deployment mistake: refuse instead.
        Text::Env { var, value: None } => {
            return Err(ctx.invalid(
                &path,
                format!("the environment variable {var} (from os.environ/{var}) to be set"),
            ));
        }
    })
}

fn router_settings(
    ctx: &mut Ctx<'_>,
    litellm: &Value,
    router: &Value,
) -> Result<RouterSettings, ConfigError> {
    let mut out = RouterSettings::default();
    if let Some(v) = field(router, "routing_strategy") {
        out.routing_strategy = routing_strategy(ctx, v)?;
    }
    // router_settings wins over litellm_settings, as the Router's own
    // argument wins over the litellm module default.
    if let Some((v, path)) = first(
        router,
        "router_settings",
        litellm,
        "litellm_settings",
        "num_retries",
        "num_retries",
    ) {
        out.num_retries = ctx.u32(v, &path)?;
    }
    if let Some((v, path)) = first(
        router,
        "router_settings",
        litellm,
        "litellm_settings",
        "timeout",
        "request_timeout",
    ) {
        out.timeout_secs = Some(positive_secs(ctx, v, &path)?);
    }
    if let Some(v) = field(router, "allowed_fails") {
        out.allowed_fails = ctx.u32(v, "router_settings.allowed_fails")?;
    }
    if let Some(v) = field(router, "cooldown_time") {
        out.cooldown_time_secs = non_negative_secs(ctx, v, "router_settings.cooldown_time")?;
    }
    if let Some(v) = field(router, "retry_after") {
        out.retry_after_secs = non_negative_secs(ctx, v, "router_settings.retry_after")?;
    }
    out.fallbacks = merged_fallbacks(ctx, litellm, router, "fallbacks", true)?;
    out.context_window_fallbacks =
        merged_fallbacks(ctx, litellm, router, "context_window_fallbacks", false)?;
    Ok(out)
}

/// The first section that sets its key, with that key's path.
fn first<'v>(
    a: &'v Value,
    a_name: &str,
    b: &'v Value,
    b_name: &str,
    a_key: &str,
    b_key: &str,
) -> Option<(&'v Value, String)> {
    field(a, a_key)
        .map(|v| (v, child(a_name, a_key)))
        .or_else(|| field(b, b_key).map(|v| (v, child(b_name, b_key))))
}

fn routing_strategy(ctx: &Ctx<'_>, value: &Value) -> Result<RoutingStrategy, ConfigError> {
    let path = "router_settings.routing_strategy";
    let name = ctx.string(value, path)?;
    Ok(match name.as_str() {
        "simple-shuffle" => RoutingStrategy::SimpleShuffle,
        "least-busy" => RoutingStrategy::LeastBusy,
        "usage-based-routing" | "usage-based-routing-v2" => RoutingStrategy::UsageBased,
        "latency-based-routing" => RoutingStrategy::LatencyBased,
        "cost-based-routing" => {
            return Err(ctx.unsupported(
                path,
                "cost-based-routing is not supported; ignoring it would change which deployment serves a request",
            ))
        }
        _ => {
            return Err(ctx.invalid(
                path,
                "one of simple-shuffle, least-busy, usage-based-routing-v2, latency-based-routing",
            ))
        }
    })
}

/// litellm_settings entries first, then router_settings ones replacing any
/// with the same model group; `default_fallbacks` become the `"*"` group.
fn merged_fallbacks(
    ctx: &mut Ctx<'_>,
    litellm: &Value,
    router: &Value,
    key: &str,
    with_defaults: bool,
) -> Result<Fallbacks, ConfigError> {
    let mut merged = section_fallbacks(ctx, litellm, "litellm_settings", key, with_defaults)?;
    for (group, targets) in section_fallbacks(ctx, router, "router_settings", key, with_defaults)? {
        match merged.iter_mut().find(|(g, _)| *g == group) {
            Some(existing) => existing.1 = targets,
            None => merged.push((group, targets)),
        }
    }
    Ok(merged)
}

fn section_fallbacks(
    ctx: &mut Ctx<'_>,
    section: &Value,
    section_name: &str,
    key: &str,
    with_defaults: bool,
) -> Result<Fallbacks, ConfigError> {
    let mut out = match field(section, key) {
        Some(v) => fallback_list(ctx, v, &child(section_name, key))?,
        None => Vec::new(),
    };
    if with_defaults {
        if let Some(v) = field(section, "default_fallbacks") {
            let path = child(section_name, "default_fallbacks");
            let targets = ctx.strings(v, &path)?;
            // An explicit "*" entry in fallbacks is more specific; keep it.
            if !out.iter().any(|(g, _)| g == "*") {
                out.push(("*".to_string(), targets));
            }
        }
    }
    Ok(out)
}

/// `[{"gpt-4": ["gpt-3.5-turbo", "claude"]}, ...]`.
fn fallback_list(ctx: &mut Ctx<'_>, value: &Value, path: &str) -> Result<Fallbacks, ConfigError> {
    let shape = "a list of single-key mappings like {\"gpt-4\": [\"gpt-3.5-turbo\"]}";
    let items = ctx
        .list(value, path)
        .map_err(|_| ctx.invalid(path, shape))?;
    let mut out: Fallbacks = Vec::new();
    for (i, entry) in items.iter().enumerate() {
        let at = item(path, i);
        let pairs = ctx
            .entries(entry, &at)
            .map_err(|_| ctx.invalid(&at, shape))?;
        let [(group, targets)] = pairs.as_slice() else {
            return Err(ctx.invalid(&at, shape));
        };
        let target_path = child(&at, group);
        if !targets.is_sequence() {
            return Err(ctx.invalid(&target_path, "a list of model names"));
        }
        let targets = ctx.strings(targets, &target_path)?;
        // LiteLLM uses the first entry for a group; later ones never apply.
        if out.iter().any(|(g, _)| g == group) {
            ctx.warn(
                &at,
                &format!("duplicate fallbacks for '{group}'; the first entry is used"),
            );
            continue;
        }
        out.push((group.to_string(), targets));
    }
    Ok(out)
}
