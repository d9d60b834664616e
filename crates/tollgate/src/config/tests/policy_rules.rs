//! Rules 6 and 7: warn-and-start versus refuse, misplaced secrets.

use super::*;
use crate::config::policy::{rule, Rule, Section};

#[test]
fn telemetry_false_is_a_warning_only() {
    let config = ok("litellm_settings:\n  telemetry: false\n");
    assert_eq!(
        config.warnings,
        ["litellm_settings.telemetry: ignored: Tollgate sends no telemetry".to_string()]
    );
}

#[test]
fn harmless_settings_warn_naming_the_key() {
    let yaml = "
litellm_settings:
  cache: true
  cache_params: {type: redis}
  set_verbose: true
  json_logs: true
  turn_off_message_logging: true
  redact_messages_in_exceptions: true
general_settings:
  alerting: [slack]
  alert_types: [llm_exceptions]
  alerting_threshold: 300
  proxy_batch_write_at: 60
  database_connection_pool_limit: 10
  database_connection_timeout: 60
  background_health_checks: true
  health_check_interval: 300
  store_model_in_db: true
  use_redis_transaction_buffer: true
  ui_access_mode: admin_only
router_settings:
  redis_host: localhost
  redis_port: 6379
  redis_password: hunter2-redis
  enable_pre_call_checks: true
";
    let config = ok(yaml);
    for key in [
        "litellm_settings.cache",
        "litellm_settings.cache_params",
        "litellm_settings.set_verbose",
        "litellm_settings.json_logs",
        "litellm_settings.turn_off_message_logging",
        "litellm_settings.redact_messages_in_exceptions",
        "general_settings.alerting",
        "general_settings.alert_types",
        "general_settings.alerting_threshold",
        "general_settings.proxy_batch_write_at",
        "general_settings.database_connection_pool_limit",
        "general_settings.database_connection_timeout",
        "general_settings.background_health_checks",
        "general_settings.health_check_interval",
        "general_settings.use_redis_transaction_buffer",
        "general_settings.ui_access_mode",
        "router_settings.enable_pre_call_checks",
    ] {
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.starts_with(&format!("{key}: "))),
            "no warning for {key}"
        );
    }
    assert!(has_warning(
        &config,
        "general_settings.store_model_in_db: ignored: models are only read from the config"
    ));
    assert!(config.warnings.iter().all(|w| !w.contains("hunter2-redis")));
    // The router's Redis settings are read, not warned about.
    assert!(config.warnings.iter().all(|w| !w.contains("redis_host")));
    assert_eq!(
        config.redis_url.as_ref().map(|u| u.expose()),
        Some("redis://:hunter2-redis@localhost:6379/")
    );
}

#[test]
fn redis_comes_from_the_router_or_the_environment() {
    let url = |yaml: &str, env: &[(&str, &str)]| {
        let env: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::config::parse(yaml, "t.yaml", &|k| env.get(k).cloned())
            .unwrap()
            .redis_url
            .map(|u| u.expose().to_string())
    };
    assert_eq!(url("", &[]), None);
    assert_eq!(
        url(
            "router_settings: {redis_url: os.environ/MY_REDIS}",
            &[("MY_REDIS", "redis://r:1/2")]
        ),
        Some("redis://r:1/2".into())
    );
    assert_eq!(
        url(
            "router_settings: {redis_host: os.environ/RH, redis_port: 7000, redis_password: 'p@ss w/rd', redis_db: 3}",
            &[("RH", "cache.internal")]
        ),
        Some("redis://:p%40ss%20w%2Frd@cache.internal:7000/3".into())
    );
    assert_eq!(
        url("", &[("REDIS_URL", "redis://u:1/")]),
        Some("redis://u:1/".into())
    );
    assert_eq!(
        url(
            "",
            &[
                ("REDIS_HOST", "h"),
                ("REDIS_PORT", "6380"),
                ("REDIS_USERNAME", "app"),
                ("REDIS_PASSWORD", "pw"),
                ("REDIS_SSL", "true"),
            ]
        ),
        Some("rediss://app:pw@h:6380/".into())
    );
}

#[test]
fn unknown_keys_in_known_sections_warn() {
    let config = ok("general_settings: {shiny_new_flag: 1}\nrouter_settings: {other: 2}\nlitellm_settings: {third: 3}\n");
    for key in [
        "general_settings.shiny_new_flag",
        "router_settings.other",
        "litellm_settings.third",
    ] {
        assert!(
            has_warning(&config, &format!("{key}: unknown key; ignored")),
            "{key}"
        );
    }
}

#[test]
fn logging_callbacks_warn() {
    let config = ok("litellm_settings:\n  success_callback: [langfuse, prometheus]\n  failure_callback: sentry\n  callbacks: [otel]\n");
    for at in [
        "litellm_settings.success_callback[0]: logging integration 'langfuse'",
        "litellm_settings.success_callback[1]: logging integration 'prometheus'",
        "litellm_settings.failure_callback: logging integration 'sentry'",
        "litellm_settings.callbacks[0]: logging integration 'otel'",
    ] {
        assert!(has_warning(&config, at), "{at}: {:?}", config.warnings);
    }
}

#[test]
fn python_callbacks_are_refused() {
    for key in ["callbacks", "success_callback", "failure_callback"] {
        let e = err(&format!(
            "litellm_settings:\n  {key}: [langfuse, custom_callbacks.proxy_handler_instance]\n"
        ));
        let (path, message) = unsupported(&e);
        assert_eq!(path, format!("litellm_settings.{key}[1]"));
        assert!(
            message.contains("custom_callbacks.proxy_handler_instance"),
            "{message}"
        );
    }
}

#[test]
fn unknown_names_in_callbacks_are_refused_but_only_warn_in_success_callback() {
    let e = err("litellm_settings:\n  callbacks: [presidio]\n");
    assert_eq!(unsupported(&e).0, "litellm_settings.callbacks[0]");
    let config = ok("litellm_settings:\n  success_callback: [some_new_logger]\n");
    assert!(has_warning(&config, "unknown callback 'some_new_logger'"));
}

#[test]
fn refused_settings() {
    let cases = [
        (
            "general_settings: {custom_auth: custom_auth.user_api_key_auth}",
            "general_settings.custom_auth",
        ),
        (
            "general_settings: {enforce_user_param: true}",
            "general_settings.enforce_user_param",
        ),
        (
            "general_settings: {allowed_routes: [/chat/completions]}",
            "general_settings.allowed_routes",
        ),
        (
            "general_settings: {admin_only_routes: [/key/generate]}",
            "general_settings.admin_only_routes",
        ),
        (
            "general_settings: {pass_through_endpoints: [{path: /x, target: 'http://y'}]}",
            "general_settings.pass_through_endpoints",
        ),
        (
            "general_settings: {allow_client_side_credentials: true}",
            "general_settings.allow_client_side_credentials",
        ),
        (
            "general_settings: {key_management_system: aws_secret_manager}",
            "general_settings.key_management_system",
        ),
        (
            "litellm_settings: {max_budget: 100}",
            "litellm_settings.max_budget",
        ),
        (
            "litellm_settings: {guardrails: [{prompt_injection: {callbacks: [lakera]}}]}",
            "litellm_settings.guardrails",
        ),
        (
            "litellm_settings: {content_policy_fallbacks: [{a: [b]}]}",
            "litellm_settings.content_policy_fallbacks",
        ),
        ("guardrails: [{guardrail_name: g}]", "guardrails"),
        ("include: [other.yaml]", "include"),
        (
            "router_settings: {model_group_alias: {gpt-4: gpt-4o}}",
            "router_settings.model_group_alias",
        ),
        (
            "router_settings: {provider_budget_config: {openai: {budget_limit: 1}}}",
            "router_settings.provider_budget_config",
        ),
    ];
    for (yaml, path) in cases {
        assert_eq!(unsupported(&err(yaml)).0, path, "{yaml}");
    }
}

#[test]
fn refusable_settings_that_are_off_are_fine() {
    let config = ok("general_settings:\n  enforce_user_param: false\n  allow_client_side_credentials: false\n  custom_auth: null\nguardrails: []\n");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn custom_auth_message() {
    let e = err("general_settings:\n  custom_auth: custom_auth.user_api_key_auth\n");
    assert_eq!(
        e.to_string(),
        "config.yaml: general_settings.custom_auth: custom Python hooks cannot run in Tollgate"
    );
}

#[test]
fn deployment_keys_for_foreign_providers_are_refused() {
    for key in [
        "region_name",
        "aws_access_key_id",
        "aws_secret_access_key",
        "vertex_project",
        "vertex_location",
    ] {
        let e = err(&one(&format!("{{model: openai/x, api_key: k, {key}: v}}")));
        assert_eq!(
            unsupported(&e).0,
            format!("model_list[0].litellm_params.{key}"),
            "{key}"
        );
    }
    let e = err(&one("{model: azure/x, api_base: 'https://r.openai.azure.com', tenant_id: t, client_id: c, client_secret: s}"));
    // All three Azure AD settings are named in one error.
    let shown = e.to_string();
    for key in ["tenant_id", "client_id", "client_secret"] {
        assert!(
            shown.contains(&format!("model_list[0].litellm_params.{key}: Azure AD")),
            "{shown}"
        );
    }
}

#[test]
fn master_key_outside_general_settings_is_refused() {
    let cases = [
        ("master_key: sk-top-secret", "master_key"),
        (
            "litellm_settings: {master_key: sk-top-secret}",
            "litellm_settings.master_key",
        ),
        (
            "router_settings: {master_key: sk-top-secret}",
            "router_settings.master_key",
        ),
        ("database_url: postgres://u:top-secret@h/d", "database_url"),
        (
            "litellm_settings: {database_url: postgres://u:top-secret@h/d}",
            "litellm_settings.database_url",
        ),
    ];
    for (yaml, path) in cases {
        let e = err(yaml);
        let (got_path, message) = unsupported(&e);
        assert_eq!(got_path, path);
        assert!(
            message.ends_with("belongs under general_settings"),
            "{message}"
        );
        assert!(!e.to_string().contains("top-secret"));
    }
    let e = err(&one(
        "{model: openai/x, api_key: k, master_key: sk-top-secret}",
    ));
    assert_eq!(
        unsupported(&e),
        (
            "model_list[0].litellm_params.master_key",
            "master_key belongs under general_settings"
        )
    );
}

#[test]
fn table_has_no_duplicate_exact_keys_per_section() {
    use crate::config::policy::TABLE;
    for (i, (section, key, _)) in TABLE.iter().enumerate() {
        let dup = TABLE[..i].iter().any(|(s, k, _)| s == section && k == key);
        assert!(!dup, "{section:?} {key} listed twice");
    }
}

#[test]
fn table_patterns_match_as_documented() {
    assert!(matches!(
        rule(Section::LitellmParams, "aws_role_name"),
        Some(Rule::Refuse(_))
    ));
    assert!(matches!(
        rule(Section::LitellmParams, "output_cost_per_second"),
        Some(Rule::Warn(_))
    ));
    assert!(matches!(
        rule(Section::LitellmParams, "input_cost_per_token"),
        Some(Rule::Use)
    ));
    assert!(rule(Section::LitellmParams, "temperature").is_none());
    assert!(rule(Section::General, "aws_role_name").is_none());
}
