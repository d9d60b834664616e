//! Rule 1: YAML features, document shape and error paths.

use super::*;
use crate::config::{ApiKey, ConfigError, Provider, RoutingStrategy};

const REALISTIC: &str = include_str!("../../../tests/fixtures/litellm_realistic.yaml");

fn realistic() -> Config {
    ok_env(
        REALISTIC,
        &[
            ("OPENAI_API_KEY", "sk-openai-test"),
            ("AZURE_API_KEY", "azure-test"),
            ("ANTHROPIC_API_KEY", "sk-ant-test"),
            ("OPENROUTER_API_KEY", "sk-or-test"),
            ("GROQ_API_KEY", "gsk-test"),
            ("LITELLM_MASTER_KEY", "sk-master-test"),
            ("DATABASE_URL", "postgres://u:p@db/tollgate"),
            // The fixture's router_settings.redis_host is os.environ/REDIS_HOST.
            ("REDIS_HOST", "redis.internal"),
        ],
    )
}

#[test]
fn realistic_config_loads_every_deployment_in_order() {
    let config = realistic();
    let names: Vec<&str> = config
        .model_list
        .iter()
        .map(|d| d.model_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "gpt-4o",
            "gpt-4o",
            "gpt-4o-mini",
            "claude-3-5-sonnet",
            "llama3",
            "mixtral",
            "local-qwen",
            "openai/*",
            "*",
            "fake-gpt"
        ]
    );
    for (i, d) in config.model_list.iter().enumerate() {
        assert_eq!(d.index, i);
    }
}

#[test]
fn merge_keys_fill_litellm_params_and_explicit_keys_win() {
    let config = realistic();
    let first = &config.model_list[0];
    assert_eq!(first.provider, Provider::OpenAi);
    assert_eq!(first.upstream_model, "gpt-4o");
    assert_eq!(first.rpm, Some(500));
    assert_eq!(first.tpm, Some(200_000));
    assert_eq!(first.timeout_secs, Some(60.0));
    assert_eq!(
        first.api_key,
        Some(ApiKey::Env {
            var: "OPENAI_API_KEY".into(),
            value: Some(crate::config::Secret::new("sk-openai-test".into())),
        })
    );
    assert_eq!(first.input_cost_per_token, Some(0.0000025));
    assert_eq!(first.output_cost_per_token, Some(0.00001));

    let azure = &config.model_list[1];
    assert_eq!(azure.provider, Provider::Azure);
    assert_eq!(azure.upstream_model, "gpt-4o-eu");
    // rpm set on the entry beats nothing in the anchor; max_retries comes from it.
    assert_eq!(azure.rpm, Some(300));
    assert_eq!(azure.max_retries, Some(2));
    assert_eq!(azure.api_version.as_deref(), Some("2024-08-01-preview"));
    assert_eq!(
        azure.api_base.as_ref().map(|u| u.as_str()),
        Some("https://tollgate-eu.openai.azure.com/")
    );
}

#[test]
fn merge_key_inside_flow_mapping_model_info() {
    let info = &realistic().model_list[0].model_info;
    assert_eq!(info.id.as_deref(), Some("gpt-4o-primary"));
    assert_eq!(info.mode.as_deref(), Some("chat"));
    assert_eq!(info.access_groups, ["beta-models"]);
    assert_eq!(info.max_input_tokens, Some(128_000));
}

#[test]
fn flow_mapping_litellm_params_with_default_params() {
    let mini = &realistic().model_list[2];
    assert_eq!(mini.provider, Provider::OpenAi);
    assert_eq!(mini.upstream_model, "gpt-4o-mini");
    assert_eq!(mini.default_params["temperature"], serde_json::json!(0.2));
    assert_eq!(mini.default_params["max_tokens"], serde_json::json!(1024));
    assert!(!mini.default_params.contains_key("api_key"));
    assert!(!mini.default_params.contains_key("model"));
}

#[test]
fn realistic_settings_sections() {
    let config = realistic();
    assert!(config.drop_params);
    assert_eq!(config.router.routing_strategy, RoutingStrategy::UsageBased);
    assert_eq!(config.router.num_retries, 3);
    assert_eq!(config.router.timeout_secs, Some(600.0));
    assert_eq!(config.router.allowed_fails, 2);
    assert_eq!(config.router.cooldown_time_secs, 30.0);
    assert_eq!(
        config.router.fallbacks,
        [
            (
                "gpt-4o".to_string(),
                vec!["claude-3-5-sonnet".to_string(), "gpt-4o-mini".to_string()]
            ),
            ("*".to_string(), vec!["claude-3-5-sonnet".to_string()]),
            ("llama3".to_string(), vec!["gpt-4o-mini".to_string()]),
        ]
    );
    assert_eq!(
        config.router.context_window_fallbacks,
        [("gpt-4o-mini".to_string(), vec!["gpt-4o".to_string()])]
    );
    assert_eq!(config.max_request_body_bytes, 32 * 1024 * 1024);
    assert_eq!(
        config.master_key.as_ref().map(|s| s.expose()),
        Some("sk-master-test")
    );
    assert!(config.database_url.is_some());
    // Redis settings are used now, not warned about.
    assert_eq!(
        config.redis_url.as_ref().map(|s| s.expose()),
        Some("redis://redis.internal:6379/")
    );
    assert!(!has_warning(&config, "router_settings.redis_host"));
    for key in [
        "x-openai-defaults",
        "litellm_settings.telemetry",
        "litellm_settings.success_callback[0]",
        "general_settings.alerting",
        "general_settings.store_model_in_db",
    ] {
        assert!(
            has_warning(&config, key),
            "no warning for {key}: {:?}",
            config.warnings
        );
    }
}

#[test]
fn chained_and_list_merges_resolve() {
    let config = ok("
base: &base {model: openai/gpt-4o, rpm: 1, tpm: 1}
mid: &mid
  <<: *base
  rpm: 2
limits: &limits {tpm: 3}
model_list:
  - model_name: chained
    litellm_params:
      <<: *mid
      api_key: k
  - model_name: listed
    litellm_params:
      <<: [*limits, *base]
      api_key: k
");
    let chained = &config.model_list[0];
    assert_eq!((chained.rpm, chained.tpm), (Some(2), Some(1)));
    assert!(
        chained.default_params.is_empty(),
        "{:?}",
        chained.default_params
    );
    // Earlier mappings in a merge list take precedence.
    let listed = &config.model_list[1];
    assert_eq!((listed.rpm, listed.tpm), (Some(1), Some(3)));
}

#[test]
fn unknown_top_level_key_warns_naming_it() {
    let config = ok("model_list: []\nsome_future_setting: 1\n");
    assert_eq!(
        config.warnings,
        ["some_future_setting: unknown key; ignored".to_string()]
    );
}

#[test]
fn type_error_names_the_field_path() {
    let e = err("
model_list:
  - model_name: a
    litellm_params: {model: openai/a, api_key: k}
  - model_name: b
    litellm_params: {model: openai/b, api_key: k, rpm: abc}
");
    assert_eq!(
        invalid(&e),
        ("model_list[1].litellm_params.rpm", "a non-negative integer")
    );
    assert_eq!(
        e.to_string(),
        "config.yaml: model_list[1].litellm_params.rpm: expected a non-negative integer"
    );
}

#[test]
fn empty_file_and_empty_model_list_are_allowed() {
    for text in [
        "",
        "# only a comment\n",
        "---\n",
        "model_list:\n",
        "model_list: []\n",
    ] {
        let config = ok(text);
        assert!(config.model_list.is_empty());
        assert!(
            config.warnings.is_empty(),
            "{text:?}: {:?}",
            config.warnings
        );
    }
}

#[test]
fn invalid_yaml_is_a_yaml_error_naming_the_file() {
    let e = err("model_list:\n  - model_name: a\n   bad indent: [\n");
    match &e {
        ConfigError::Yaml { file, message } => {
            assert_eq!(file, FILE);
            assert!(!message.is_empty());
        }
        other => panic!("expected Yaml, got {other:?}"),
    }
    assert!(e.to_string().starts_with("config.yaml: invalid YAML: "));
}

#[test]
fn merging_a_scalar_is_a_yaml_error() {
    let e = err("model_list:\n  - <<: 5\n");
    assert!(matches!(e, ConfigError::Yaml { .. }), "{e:?}");
}

#[test]
fn top_level_must_be_a_mapping() {
    assert_eq!(invalid(&err("- a\n- b\n")).0, "(top level)");
}

#[test]
fn model_list_must_be_a_list_of_mappings() {
    assert_eq!(
        invalid(&err("model_list: {a: b}\n")),
        ("model_list", "a list of deployments")
    );
    assert_eq!(invalid(&err("model_list: [gpt-4]\n")).0, "model_list[0]");
    assert_eq!(
        invalid(&err("model_list:\n  - litellm_params: {model: openai/x}\n")),
        ("model_list[0].model_name", "a non-empty string")
    );
    assert_eq!(
        invalid(&err("model_list:\n  - model_name: x\n")),
        ("model_list[0].litellm_params", "a mapping")
    );
    assert_eq!(
        invalid(&err(
            "model_list:\n  - model_name: x\n    litellm_params: {rpm: 1}\n"
        ))
        .0,
        "model_list[0].litellm_params.model"
    );
}

#[test]
fn section_of_wrong_type_names_the_section() {
    assert_eq!(
        invalid(&err("general_settings: [a]\n")),
        ("general_settings", "a mapping")
    );
}

#[test]
fn unknown_deployment_key_warns() {
    let config = ok("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: k}\n    comment: hi\n");
    assert!(has_warning(&config, "model_list[0].comment: unknown key"));
}
