//! What Tollgate does with each LiteLLM key it does not simply read: ignore it
//! with a warning, or refuse to start. Kept as one table so it is easy to
//! extend. The test for Refuse: would ignoring the key change which upstream
//! is called, who may call, or which spend rule applies?

use serde_yaml_ng::Value;

use super::raw::{item, Ctx};
use super::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Top,
    General,
    Litellm,
    Router,
    /// Keys of one `model_list` entry.
    Deployment,
    LitellmParams,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Rule {
    /// Read by the loader.
    Use,
    /// Ignored with a warning; the text says what is lost.
    Warn(&'static str),
    /// Refused unless null, false or empty.
    Refuse(&'static str),
    /// A callback list: logging integrations warn, Python hooks are refused,
    /// and with `strict` so is any other name (it may be a guardrail).
    Callbacks { strict: bool },
}

/// What the caller does next with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Disposition {
    /// The caller reads it.
    Use,
    /// Warned about or harmlessly off; nothing more to do.
    Done,
    /// Not in the table: settings sections warn, litellm_params forwards it.
    Unknown,
}

use Rule::{Callbacks, Refuse, Use, Warn};
use Section::{Deployment, General, Litellm, LitellmParams, Router, Top};

const LOGGING: &str =
    "ignored: logging integrations are not supported; Tollgate writes its own logs";
const CACHE: &str = "ignored: response caching is not supported, every request goes upstream";
const REDIS: &str = "ignored: with Redis configured, Tollgate shares keys, limits and budgets through it on its own";
const ALERTING: &str = "ignored: alerting is not supported";
const DB_TUNING: &str = "ignored: database tuning is not supported";
const HEALTH: &str = "ignored: background health checks are not supported";
const ADMIN: &str = "ignored: not supported by Tollgate";
const ROUTER_TUNING: &str = "ignored: not supported by Tollgate's router";
const PRICING: &str =
    "ignored: Tollgate prices by input_cost_per_token and output_cost_per_token only";
const INTERNAL: &str = "ignored: a LiteLLM-internal setting, not sent upstream";

const CUSTOM_HOOK: &str = "custom Python hooks cannot run in Tollgate";
const ROUTING: &str = "not supported; ignoring it would change which deployment serves a request";
const ACCESS: &str = "not supported; ignoring it would change who may call";
const BUDGET: &str = "budgets are not supported; ignoring them would let spend exceed the limit";
const GUARDRAILS: &str =
    "guardrails are not supported; ignoring them would let requests through unchecked";
const SECRET_MANAGER: &str =
    "secret managers are not supported; reference keys with os.environ/VAR instead";
const VERTEX_OTHER: &str = "not supported by Tollgate's Vertex AI provider";
const VERTEX_GLOBAL: &str = "not read here; ignoring it would send Vertex AI calls to another \
     project or region: set vertex_project / vertex_location on the deployments, or \
     VERTEXAI_PROJECT / VERTEXAI_LOCATION";
const AZURE_AD: &str = "Azure AD authentication is not supported; set api_key instead";
const AWS_AUTH: &str = "AWS profiles, role assumption and web identity are not supported; set \
     aws_access_key_id and aws_secret_access_key (and aws_session_token for temporary credentials)";
const AWS_REGION_NAME: &str = "not read by Tollgate; Bedrock deployments take aws_region_name";

/// Patterns: `foo` exact, `foo*` prefix, `*foo*` substring. First match wins,
/// so exact keys come before the patterns that would also match them.
pub(super) const TABLE: &[(Section, &str, Rule)] = &[
    // Top level.
    (Top, "model_list", Use),
    (Top, "general_settings", Use),
    (Top, "litellm_settings", Use),
    (Top, "router_settings", Use),
    (Top, "environment_variables", Use),
    (Top, "guardrails", Refuse(GUARDRAILS)),
    (Top, "include", Refuse("including other config files is not supported; merge them into this file")),
    (Top, "credential_list", Warn("ignored: deployments must carry their own api_key")),
    (Top, "callback_settings", Warn(LOGGING)),
    (Top, "mcp_servers", Warn(ADMIN)),
    (Top, "search_tools", Warn(ADMIN)),
    (Top, "vector_store_registry", Warn(ADMIN)),
    (Top, "assistant_settings", Warn(ADMIN)),
    (Top, "files_settings", Warn(ADMIN)),
    (Top, "finetune_settings", Warn(ADMIN)),
    // general_settings.
    (General, "master_key", Use),
    (General, "database_url", Use),
    (General, "max_request_size_mb", Use),
    (General, "dangerously_permit_weak_or_unset_master_key", Use),
    (General, "custom_auth", Refuse(CUSTOM_HOOK)),
    (General, "custom_key_generate", Refuse(CUSTOM_HOOK)),
    (General, "custom_sso", Refuse(CUSTOM_HOOK)),
    (General, "enforce_user_param", Refuse(ACCESS)),
    (General, "allowed_routes", Refuse(ACCESS)),
    (General, "admin_only_routes", Refuse(ACCESS)),
    (General, "public_routes", Refuse(ACCESS)),
    (General, "allowed_ips", Refuse(ACCESS)),
    (General, "enable_jwt_auth", Refuse(ACCESS)),
    (General, "litellm_jwtauth", Refuse(ACCESS)),
    (General, "litellm_key_header_name", Refuse(ACCESS)),
    (General, "key_generation_settings", Refuse(ACCESS)),
    (General, "allow_client_side_credentials", Refuse("client-side credentials are not supported; ignoring this would change who may call which upstream")),
    (General, "pass_through_endpoints", Refuse("pass-through endpoints are not supported")),
    (General, "key_management_system", Refuse(SECRET_MANAGER)),
    (General, "key_management_settings", Refuse(SECRET_MANAGER)),
    (General, "use_google_kms", Refuse(SECRET_MANAGER)),
    (General, "use_azure_key_vault", Refuse(SECRET_MANAGER)),
    (General, "alerting", Warn(ALERTING)),
    (General, "alert_types", Warn(ALERTING)),
    (General, "alerting_threshold", Warn(ALERTING)),
    (General, "alerting_args", Warn(ALERTING)),
    (General, "alert_to_webhook_url", Warn(ALERTING)),
    (General, "spend_report_frequency", Warn(ALERTING)),
    (General, "proxy_batch_write_at", Warn(DB_TUNING)),
    (General, "database_connection_pool_limit", Warn(DB_TUNING)),
    (General, "database_connection_timeout", Warn(DB_TUNING)),
    (General, "use_redis_transaction_buffer", Warn(REDIS)),
    (General, "coordination_redis", Warn(REDIS)),
    (General, "background_health_checks", Warn(HEALTH)),
    (General, "health_check_interval", Warn(HEALTH)),
    (General, "health_check_details", Warn(HEALTH)),
    (General, "store_model_in_db", Warn("ignored: models are only read from the config")),
    (General, "disable_spend_logs", Warn(ADMIN)),
    (General, "disable_error_logs", Warn(ADMIN)),
    (General, "store_prompts_in_spend_logs", Warn(ADMIN)),
    (General, "maximum_spend_logs_retention_period", Warn(ADMIN)),
    (General, "ui_access_mode", Warn(ADMIN)),
    (General, "disable_master_key_return", Warn(ADMIN)),
    (General, "user_api_key_cache_ttl", Warn(ADMIN)),
    (General, "max_parallel_requests", Warn(ADMIN)),
    (General, "global_max_parallel_requests", Warn(ADMIN)),
    (General, "infer_model_from_keys", Warn(ADMIN)),
    (General, "forward_openai_org_id", Warn(ADMIN)),
    (General, "forward_client_headers_to_llm_api", Warn(ADMIN)),
    (General, "max_response_size_mb", Warn(ADMIN)),
    // litellm_settings.
    (Litellm, "drop_params", Use),
    (Litellm, "num_retries", Use),
    (Litellm, "request_timeout", Use),
    (Litellm, "fallbacks", Use),
    (Litellm, "context_window_fallbacks", Use),
    (Litellm, "default_fallbacks", Use),
    (Litellm, "success_callback", Callbacks { strict: false }),
    (Litellm, "failure_callback", Callbacks { strict: false }),
    (Litellm, "service_callback", Callbacks { strict: false }),
    (Litellm, "callbacks", Callbacks { strict: true }),
    (Litellm, "cache", Warn(CACHE)),
    (Litellm, "cache_params", Warn(CACHE)),
    (Litellm, "enable_redis_auth_cache", Warn(REDIS)),
    (Litellm, "telemetry", Warn("ignored: Tollgate sends no telemetry")),
    (Litellm, "set_verbose", Warn(LOGGING)),
    (Litellm, "json_logs", Warn(LOGGING)),
    (Litellm, "turn_off_message_logging", Warn(LOGGING)),
    (Litellm, "redact_messages_in_exceptions", Warn(LOGGING)),
    (Litellm, "redact_user_api_key_info", Warn(LOGGING)),
    (Litellm, "log_raw_request_response", Warn(LOGGING)),
    (Litellm, "langfuse_default_tags", Warn(LOGGING)),
    (Litellm, "modify_params", Warn(ADMIN)),
    (Litellm, "ssl_verify", Warn(ADMIN)),
    (Litellm, "force_ipv4", Warn(ADMIN)),
    (Litellm, "default_team_settings", Warn(ADMIN)),
    (Litellm, "enable_json_schema_validation", Warn(ADMIN)),
    (Litellm, "max_budget", Refuse(BUDGET)),
    (Litellm, "budget_duration", Refuse(BUDGET)),
    (Litellm, "max_end_user_budget", Refuse(BUDGET)),
    (Litellm, "max_internal_user_budget", Refuse(BUDGET)),
    (Litellm, "internal_user_budget_duration", Refuse(BUDGET)),
    (Litellm, "default_key_generate_params", Refuse(BUDGET)),
    (Litellm, "upperbound_key_generate_params", Refuse(BUDGET)),
    (Litellm, "default_internal_user_params", Use),
    (Litellm, "guardrails", Refuse(GUARDRAILS)),
    (Litellm, "content_policy_fallbacks", Refuse(ROUTING)),
    (Litellm, "vertex_project", Refuse(VERTEX_GLOBAL)),
    (Litellm, "vertex_location", Refuse(VERTEX_GLOBAL)),
    // router_settings.
    (Router, "routing_strategy", Use),
    (Router, "num_retries", Use),
    (Router, "timeout", Use),
    (Router, "fallbacks", Use),
    (Router, "context_window_fallbacks", Use),
    (Router, "default_fallbacks", Use),
    (Router, "allowed_fails", Use),
    (Router, "cooldown_time", Use),
    (Router, "retry_after", Use),
    (Router, "redis_host", Use),
    (Router, "redis_port", Use),
    (Router, "redis_password", Use),
    (Router, "redis_url", Use),
    (Router, "redis_db", Use),
    (Router, "cache_responses", Warn(CACHE)),
    (Router, "enable_pre_call_checks", Warn(ROUTER_TUNING)),
    (Router, "routing_strategy_args", Warn(ROUTER_TUNING)),
    (Router, "stream_timeout", Warn(ROUTER_TUNING)),
    (Router, "max_fallbacks", Warn(ROUTER_TUNING)),
    (Router, "retry_policy", Warn(ROUTER_TUNING)),
    (Router, "model_group_retry_policy", Warn(ROUTER_TUNING)),
    (Router, "allowed_fails_policy", Warn(ROUTER_TUNING)),
    (Router, "disable_cooldowns", Warn(ROUTER_TUNING)),
    (Router, "default_max_parallel_requests", Warn(ROUTER_TUNING)),
    (Router, "default_litellm_params", Warn(ROUTER_TUNING)),
    (Router, "polling_interval", Warn(ROUTER_TUNING)),
    (Router, "client_ttl", Warn(ROUTER_TUNING)),
    (Router, "set_verbose", Warn(LOGGING)),
    (Router, "debug_level", Warn(LOGGING)),
    (Router, "model_group_alias", Refuse(ROUTING)),
    (Router, "content_policy_fallbacks", Refuse(ROUTING)),
    (Router, "routing_groups", Refuse(ROUTING)),
    (Router, "enable_tag_filtering", Refuse(ROUTING)),
    (Router, "provider_budget_config", Refuse(BUDGET)),
    // One model_list entry.
    (Deployment, "model_name", Use),
    (Deployment, "litellm_params", Use),
    (Deployment, "model_info", Use),
    // litellm_params: anything not listed is a default request param.
    (LitellmParams, "model", Use),
    (LitellmParams, "api_base", Use),
    (LitellmParams, "base_url", Use),
    (LitellmParams, "api_key", Use),
    (LitellmParams, "api_version", Use),
    (LitellmParams, "organization", Use),
    (LitellmParams, "rpm", Use),
    (LitellmParams, "tpm", Use),
    (LitellmParams, "timeout", Use),
    (LitellmParams, "max_retries", Use),
    (LitellmParams, "input_cost_per_token", Use),
    (LitellmParams, "output_cost_per_token", Use),
    (LitellmParams, "mock_response", Use),
    (LitellmParams, "custom_llm_provider", Use),
    (LitellmParams, "model_info", Use),
    (LitellmParams, "stream_timeout", Warn("ignored: only timeout is applied")),
    (LitellmParams, "tags", Warn("ignored: tag-based routing is not supported")),
    (LitellmParams, "tag_regex", Warn("ignored: tag-based routing is not supported")),
    (LitellmParams, "drop_params", Use),
    (LitellmParams, "additional_drop_params", Warn(INTERNAL)),
    (LitellmParams, "use_in_pass_through", Warn(INTERNAL)),
    (LitellmParams, "use_litellm_proxy", Warn(INTERNAL)),
    (LitellmParams, "use_chat_completions_api", Warn(INTERNAL)),
    (LitellmParams, "merge_reasoning_content_in_choices", Warn(INTERNAL)),
    (LitellmParams, "max_file_size_mb", Warn(INTERNAL)),
    (LitellmParams, "keepalive_seconds", Warn(INTERNAL)),
    (LitellmParams, "litellm_trace_id", Warn(INTERNAL)),
    (LitellmParams, "configurable_clientside_auth_params", Warn(INTERNAL)),
    (LitellmParams, "cache_control_injection_points", Warn(INTERNAL)),
    (LitellmParams, "region_name", Refuse(AWS_REGION_NAME)),
    (LitellmParams, "aws_access_key_id", Use),
    (LitellmParams, "aws_secret_access_key", Use),
    (LitellmParams, "aws_session_token", Use),
    (LitellmParams, "aws_region_name", Use),
    (LitellmParams, "aws_bedrock_runtime_endpoint", Use),
    (LitellmParams, "aws_*", Refuse(AWS_AUTH)),
    (LitellmParams, "vertex_project", Use),
    (LitellmParams, "vertex_location", Use),
    (LitellmParams, "vertex_credentials", Use),
    (LitellmParams, "vertex_ai_project", Use),
    (LitellmParams, "vertex_ai_location", Use),
    (LitellmParams, "vertex_ai_credentials", Use),
    (LitellmParams, "vertex_count_tokens_location", Warn("ignored: Tollgate counts no tokens through Vertex AI")),
    (LitellmParams, "vertex_*", Refuse(VERTEX_OTHER)),
    (LitellmParams, "azure_ad_token", Refuse(AZURE_AD)),
    (LitellmParams, "azure_username", Refuse(AZURE_AD)),
    (LitellmParams, "azure_password", Refuse(AZURE_AD)),
    (LitellmParams, "tenant_id", Refuse(AZURE_AD)),
    (LitellmParams, "client_id", Refuse(AZURE_AD)),
    (LitellmParams, "client_secret", Refuse(AZURE_AD)),
    (LitellmParams, "litellm_credential_name", Refuse("credential_list references are not supported; set api_key on the deployment")),
    (LitellmParams, "max_budget", Refuse(BUDGET)),
    (LitellmParams, "budget_duration", Refuse(BUDGET)),
    (LitellmParams, "tpd", Refuse(ROUTING)),
    (LitellmParams, "rpd", Refuse(ROUTING)),
    (LitellmParams, "itpm", Refuse(ROUTING)),
    (LitellmParams, "otpm", Refuse(ROUTING)),
    (LitellmParams, "default_api_key_tpm_limit", Refuse(ACCESS)),
    (LitellmParams, "default_api_key_rpm_limit", Refuse(ACCESS)),
    (LitellmParams, "auto_router_*", Refuse(ROUTING)),
    (LitellmParams, "complexity_router_*", Refuse(ROUTING)),
    (LitellmParams, "*cost*", Warn(PRICING)),
];

/// Logging integrations whose absence loses only observability.
const LOGGING_CALLBACKS: &[&str] = &[
    "langfuse",
    "langfuse_otel",
    "langsmith",
    "lunary",
    "helicone",
    "prometheus",
    "otel",
    "datadog",
    "datadog_llm_observability",
    "s3",
    "gcs_bucket",
    "gcs_pubsub",
    "azure_storage",
    "dynamodb",
    "sqs",
    "sentry",
    "slack",
    "email",
    "webhook",
    "generic_api",
    "arize",
    "arize_phoenix",
    "braintrust",
    "mlflow",
    "wandb",
    "weights_biases",
    "athina",
    "logfire",
    "opik",
    "openmeter",
    "greenscale",
    "humanloop",
    "supabase",
    "traceloop",
    "literalai",
    "posthog",
    "cloudzero",
    "deepeval",
    "agentops",
];

/// These belong under general_settings only; anywhere else they would be
/// ignored (an unprotected proxy) or, in litellm_params, sent upstream.
const GENERAL_ONLY: &[&str] = &["master_key", "database_url"];

fn matches(pattern: &str, key: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) if pattern.len() >= 2 => key.contains(&pattern[1..pattern.len() - 1]),
        (None, Some(prefix)) => key.starts_with(prefix),
        _ => pattern == key,
    }
}

pub(super) fn rule(section: Section, key: &str) -> Option<Rule> {
    TABLE
        .iter()
        .find(|(s, pattern, _)| *s == section && matches(pattern, key))
        .map(|(_, _, rule)| *rule)
}

/// Whether a Refuse key is actually switched on.
fn is_set(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::Sequence(s) => !s.is_empty(),
        Value::Mapping(m) => !m.is_empty(),
        Value::String(s) => !s.is_empty() && !s.eq_ignore_ascii_case("false"),
        _ => true,
    }
}

/// Applies the table to one key found at `path`.
pub(super) fn check(
    ctx: &mut Ctx<'_>,
    section: Section,
    key: &str,
    value: &Value,
    path: &str,
) -> Result<Disposition, ConfigError> {
    if section != General && GENERAL_ONLY.contains(&key) {
        if is_set(value) {
            let e = ctx.unsupported(path, format!("{key} belongs under general_settings"));
            ctx.refuse(e);
        }
        return Ok(Disposition::Done);
    }
    match rule(section, key) {
        None => Ok(Disposition::Unknown),
        Some(Use) => Ok(Disposition::Use),
        Some(Warn(reason)) => {
            if !value.is_null() {
                ctx.warn(path, reason);
            }
            Ok(Disposition::Done)
        }
        Some(Refuse(reason)) => {
            if is_set(value) {
                let e = ctx.unsupported(path, reason);
                ctx.refuse(e);
            }
            Ok(Disposition::Done)
        }
        Some(Callbacks { strict }) => {
            check_callbacks(ctx, value, path, strict)?;
            Ok(Disposition::Done)
        }
    }
}

fn check_callbacks(
    ctx: &mut Ctx<'_>,
    value: &Value,
    path: &str,
    strict: bool,
) -> Result<(), ConfigError> {
    if value.is_null() {
        return Ok(());
    }
    let names = ctx.strings(value, path)?;
    let single = value.is_string();
    for (i, name) in names.iter().enumerate() {
        let at = if single {
            path.to_string()
        } else {
            item(path, i)
        };
        // LiteLLM imports dotted names as `module.attribute`: Python code.
        if name.contains('.') {
            return Err(
                ctx.unsupported(&at, format!("'{name}' is a Python callback; {CUSTOM_HOOK}"))
            );
        }
        if LOGGING_CALLBACKS.contains(&name.as_str()) {
            ctx.warn(
                &at,
                &format!("logging integration '{name}' is not supported; ignored"),
            );
        } else if strict {
            return Err(ctx.unsupported(
                &at,
                format!("callback '{name}' is not a known logging integration; it may be a guardrail or hook, which Tollgate cannot run"),
            ));
        } else {
            ctx.warn(&at, &format!("unknown callback '{name}' ignored"));
        }
    }
    Ok(())
}
